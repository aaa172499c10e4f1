//! The joiner side of a join: the host's snapshot in (slot table, members,
//! inputs since), loading it, catching up with the others, and
//! [`RollbackEvent::JoinerSynced`] once caught up; or the host's refusal.

use std::collections::BTreeSet;

use bytes::Bytes;

use super::local::SessionPhase;
use super::membership::Leave;
use super::peers::Member;
use super::sync_layer::SlotState;
use super::time_sync::CATCH_UP_FRAMES;
use super::wire::{RefuseMsg, SnapshotMsg};
use super::{Frame, Input, RollbackEvent, RollbackSession};
use crate::{Instant, Misbehavior, PeerId};

/// A joiner's progress.
#[derive(Debug, Default)]
pub(crate) struct LateJoin {
    /// The host's snapshot, to load before the next frame.
    pub(crate) snapshot_to_load: Option<(Frame, Bytes)>,
    /// This peer's first frame, until it has caught up with the others.
    joined_at: Option<Frame>,
    /// While joining: the linked peers that introduced themselves as running
    /// players. The lowest id among them is the host, the only peer whose
    /// snapshot or refusal counts.
    pub(crate) running: BTreeSet<PeerId>,
}

impl<I: Input> RollbackSession<I> {
    /// The host's snapshot, while joining: the slot table, the members and
    /// the inputs since; frames run from its frame.
    pub(super) fn on_snapshot(&mut self, now: Instant, peer: PeerId, body: SnapshotMsg<I>) {
        if self.me.phase != SessionPhase::Joining {
            // A late copy from the host is harmless; from anyone else, a
            // snapshot is a forgery.
            if self.host() != Some(peer) {
                self.misbehaved(peer, Misbehavior::WrongSender { what: "snapshot" });
            }
            return;
        }
        let table_host = body
            .table
            .iter()
            .filter(|e| e.state == 1 && e.peer != self.me.id)
            .map(|e| e.peer)
            .min();
        if self.late_join.running.first() != Some(&peer) || table_host != Some(peer) {
            self.misbehaved(peer, Misbehavior::WrongSender { what: "snapshot" });
            return;
        }
        let SnapshotMsg {
            frame,
            from,
            your_slots,
            table,
            spectators,
            runs,
            data,
        } = body;
        let your: Vec<usize> = your_slots.iter().map(|&s| s as usize).collect();
        if table.len() != self.sync.slots.len()
            || your.len() != self.me.local_players
            || your.iter().any(|&s| s >= table.len())
            || from < frame
        {
            self.misbehaved(
                peer,
                Misbehavior::Rule("snapshot does not fit this session"),
            );
            return;
        }
        for (i, e) in table.iter().enumerate() {
            let slot = &mut self.sync.slots[i];
            slot.state = match e.state {
                0 => SlotState::Free,
                1 => SlotState::Occupied,
                _ => SlotState::Vacant,
            };
            slot.peer = e.peer;
            slot.key = e.key;
            slot.active_from = e.active_from;
            slot.until = e.until;
            slot.local = your.contains(&i);
            slot.log.reset(frame.max(if slot.active_from == Frame::MAX {
                frame
            } else {
                slot.active_from
            }));
            if slot.local {
                slot.log.reset(from);
            }
            if slot.state != SlotState::Occupied {
                continue;
            }
            if !slot.local && slot.peer != self.me.id {
                let member = self
                    .peers
                    .members
                    .entry(slot.peer)
                    .or_insert_with(|| Member::new(e.key, Vec::new(), false, from));
                member.slots.push(i);
            }
        }
        for (p, k) in spectators {
            if p != self.me.id && !self.peers.members.contains_key(&p) {
                self.peers
                    .members
                    .entry(p)
                    .or_insert_with(|| Member::new(k, Vec::new(), true, from));
            }
        }
        if self.sync.spectator {
            for slot in &mut self.sync.slots {
                slot.log.reset(frame);
            }
        } else {
            for run in runs {
                for (k, &s) in run.slots.iter().enumerate() {
                    let Some(slot) = self.sync.slots.get_mut(s as usize) else {
                        continue;
                    };
                    if slot.local {
                        continue;
                    }
                    for (i, record) in run.records.iter().enumerate() {
                        let f = run.start + i as Frame;
                        if slot.active_at(f)
                            && let Some(Some(input)) = record.get(k)
                        {
                            slot.log.push(f, Some(*input));
                        }
                    }
                }
            }
        }
        let connected = &self.peers.connected;
        for (p, m) in &mut self.peers.members {
            m.connected = connected.contains(p);
            m.introduced = true;
            m.last_heard = Some(now);
            m.synced = true;
        }
        self.sync.restart_at(frame);
        self.late_join.snapshot_to_load = Some((frame, Bytes::from(data)));
        self.late_join.joined_at = Some(from);
        self.me.phase = SessionPhase::Running;
        self.time.next_frame_at = Some(now);
        // Until its inputs arrive, assume the host is where it was when it
        // admitted us, so catching up starts at once.
        let host_frame = from.saturating_sub(self.config.input_delay + self.config.join_margin);
        if let Some(m) = self.peers.members.get_mut(&peer) {
            m.remote_frame = Some((host_frame, now));
        }
        self.events.push_back(RollbackEvent::Running { frame });
        self.replay_deferred(now);
        // Peers that left while the snapshot travelled.
        let gone: Vec<PeerId> = self
            .peers
            .members
            .keys()
            .copied()
            .filter(|p| self.peers.departed.contains(p))
            .collect();
        for p in gone {
            self.handle_peer_left(now, p, Leave::Lost);
        }
    }

    /// The host's refusal, while joining.
    pub(super) fn on_refuse(&mut self, _now: Instant, peer: PeerId, body: RefuseMsg) {
        if self.me.phase == SessionPhase::Joining && self.late_join.running.first() == Some(&peer) {
            self.events.push_back(RollbackEvent::JoinRefused {
                reason: body.reason,
            });
        }
    }

    /// After a frame: a joiner that reached its first frame and no longer
    /// runs behind has caught up.
    pub(super) fn check_caught_up(&mut self) {
        if self
            .late_join
            .joined_at
            .is_some_and(|f| self.sync.current >= f)
            && self.time.frames_ahead > -CATCH_UP_FRAMES
        {
            self.late_join.joined_at = None;
            self.events
                .push_back(RollbackEvent::JoinerSynced { peer: self.me.id });
        }
    }
}
