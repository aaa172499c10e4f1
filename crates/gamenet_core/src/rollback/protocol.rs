//! Inputs in and out: each member gets every input it has not acknowledged
//! (up to a message's worth) with acks and clock echoes; inputs that arrive
//! are logged in order, and a member's first ones mark it synced.

use std::time::Duration;

use super::local::SessionPhase;
use super::wire::{InputRun, InputsMsg, MAX_FRAMES_PER_MESSAGE, Msg};
use super::{Frame, Input, RollbackEvent, RollbackSession};
use crate::{Instant, Misbehavior, PeerId};

/// Inputs further ahead of this peer's frame than this are not kept (an
/// honest peer is never that far ahead; the sender repeats them later).
pub(crate) const MAX_INPUT_LEAD: Frame = 512;
/// Round trips longer than this are taken for clock trouble, not samples.
const MAX_RTT_MS: u32 = 10_000;

impl<I: Input> RollbackSession<I> {
    /// A member's inputs (or, to a spectator, the host's feed), acks and clock.
    pub(super) fn on_inputs(&mut self, now: Instant, peer: PeerId, body: InputsMsg<I>) {
        let InputsMsg {
            ack,
            frame,
            time_ms,
            echo_ms,
            echo_hold_ms,
            feed,
            run,
        } = body;
        let my_ms = self.time.time_ms(now);
        let lost = self.departure.lost.contains(&peer);
        let Some(m) = self.peers.members.get_mut(&peer) else {
            return;
        };
        m.acked = m.acked.max(ack);
        m.remote_frame = Some((frame, now));
        m.echo = Some((time_ms, now));
        if echo_ms != 0 || echo_hold_ms != 0 {
            let rtt = my_ms
                .wrapping_sub(echo_ms)
                .saturating_sub(echo_hold_ms as u32);
            if rtt < MAX_RTT_MS {
                m.rtt.sample(Duration::from_millis(rtt as u64));
            }
        }
        let (member_slots, first_input) = (m.slots.clone(), !m.synced);
        if lost || run.records.is_empty() || self.sync.spectator != feed {
            return;
        }
        let slots: Vec<usize> = run.slots.iter().map(|&s| s as usize).collect();
        if slots.iter().any(|&s| s >= self.sync.slots.len())
            || run.records.iter().any(|r| r.len() != slots.len())
        {
            self.misbehaved(
                peer,
                Misbehavior::Rule("inputs for slots the session does not have"),
            );
            return;
        }
        // A feed carries the confirmed inputs of every slot, from the host to
        // a spectator; otherwise the sender's own slots.
        if !feed && member_slots != slots {
            self.misbehaved(peer, Misbehavior::Rule("inputs for slots not the sender's"));
            return;
        }
        // A feed from a peer this spectator does not take for the host is
        // dropped, not reported: the host may have changed on the way.
        if feed && (slots.len() != self.sync.slots.len() || self.host() != Some(peer)) {
            return;
        }
        let mut got_any = false;
        let horizon = self.sync.current.saturating_add(MAX_INPUT_LEAD);
        for (k, &s) in slots.iter().enumerate() {
            let slot = &mut self.sync.slots[s];
            for (i, record) in run.records.iter().enumerate() {
                let f = run.start + i as Frame;
                if f > horizon {
                    break;
                }
                if !feed && (!slot.active_at(f) || record[k].is_none()) {
                    continue;
                }
                if f == slot.log.end() {
                    slot.log.push(f, record[k]);
                    got_any = true;
                }
            }
        }
        if got_any && let Some(m) = self.peers.members.get_mut(&peer) {
            m.progressed_at = Some(now);
        }
        if got_any && first_input && !feed && self.me.phase == SessionPhase::Running {
            if let Some(m) = self.peers.members.get_mut(&peer) {
                m.synced = true;
            }
            if self.joined_after_start(peer) {
                self.events.push_back(RollbackEvent::JoinerSynced { peer });
            }
        }
    }

    /// Whether `peer` joined after the start (so its first inputs are news).
    fn joined_after_start(&self, peer: PeerId) -> bool {
        self.peers
            .members
            .get(&peer)
            .and_then(|m| m.slots.first())
            .is_some_and(|&s| self.sync.slots[s].active_from > 0)
    }

    /// Sends every connected member (not being reported lost) the inputs it
    /// has not acknowledged: a player's own slots, or the host's feed to a
    /// spectator; with acks and the clock echo.
    /// While the members introduce themselves, this peer repeats its intro
    /// to the linked ones every [`SYNC_KEEPALIVE`]: the members that did are
    /// not silent while one that does not is timed out (see
    /// `handle_peer_joined`).
    fn keep_synchronizing(&mut self, now: Instant) {
        // The resend timer fires an interval after `last_sent`.
        self.time.last_sent = Some(now + SYNC_KEEPALIVE.saturating_sub(self.config.interval()));
        let peers: Vec<PeerId> = self
            .peers
            .members
            .keys()
            .copied()
            .filter(|p| self.peers.connected.contains(p))
            .collect();
        for peer in peers {
            self.send_intro(peer);
        }
    }

    pub(super) fn send_inputs(&mut self, now: Instant) {
        if self.me.phase == SessionPhase::Synchronizing {
            self.keep_synchronizing(now);
            return;
        }
        if self.me.phase != SessionPhase::Running {
            return;
        }
        self.time.last_sent = Some(now);
        let my_ms = self.time.time_ms(now);
        let local = self.sync.local_slots();
        let is_host = self.is_host();
        let confirmed = self.sync.confirmed_frame();
        let peers: Vec<PeerId> = self.peers.members.keys().copied().collect();
        for peer in peers {
            if self.departure.lost.contains(&peer) || !self.peers.connected.contains(&peer) {
                continue;
            }
            let Some(m) = self.peers.members.get(&peer) else {
                continue;
            };
            let ack = if self.sync.spectator {
                self.sync.confirmed_until()
            } else {
                m.slots
                    .iter()
                    .map(|&s| self.sync.slots[s].log.end())
                    .min()
                    .unwrap_or(0)
            };
            let (echo_ms, echo_hold_ms) = match m.echo {
                Some((t, at)) => (
                    t,
                    now.saturating_duration_since(at).as_millis().min(60_000) as u16,
                ),
                None => (0, 0),
            };
            let (feed, run) = if m.spectator && is_host {
                (true, self.feed_run(m.acked, confirmed))
            } else if !self.sync.spectator && !local.is_empty() {
                (false, self.own_run(&local, m.acked))
            } else {
                (
                    false,
                    InputRun {
                        start: 0,
                        slots: Vec::new(),
                        records: Vec::new(),
                    },
                )
            };
            let msg = Msg::Inputs(InputsMsg {
                ack,
                frame: self.sync.current,
                time_ms: my_ms,
                echo_ms,
                echo_hold_ms,
                feed,
                run,
            });
            self.peers.send(peer, &msg);
        }
    }

    /// The `local` slots' inputs from `acked` on, a message's worth.
    fn own_run(&self, local: &[usize], acked: Frame) -> InputRun<I> {
        let slots = &self.sync.slots;
        let end = local.iter().map(|&s| slots[s].log.end()).min().unwrap_or(0);
        let base = local.iter().map(|&s| slots[s].log.base).max().unwrap_or(0);
        let start = acked.max(base).min(end);
        let end = end.min(start + MAX_FRAMES_PER_MESSAGE as Frame);
        let records = (start..end)
            .map(|f| {
                local
                    .iter()
                    .map(|&s| slots[s].log.get(f).flatten())
                    .collect()
            })
            .collect();
        InputRun {
            start,
            slots: local.iter().map(|&s| s as u8).collect(),
            records,
        }
    }
}

/// How often a synchronizing peer repeats its intro (a keep-alive).
const SYNC_KEEPALIVE: std::time::Duration = std::time::Duration::from_millis(250);
