//! Departures: when a player leaves, every remaining player reports how far it
//! has the leaver's inputs (and what they are); once all have reported, all
//! take the furthest run, and the leaver's slots are disconnected from the
//! frame after it, the same on every peer.

use std::collections::{BTreeMap, BTreeSet};

use super::input_log::INPUT_HISTORY_FRAMES;
use super::keys::Verifier;
use super::local::SessionPhase;
use super::membership::RejoinCause;
use super::sync_layer::SlotState;
use super::wire::{InputRun, LostMsg, Msg};
use super::{Frame, Input, MAX_PLAYERS, RollbackEvent, RollbackSession};
use crate::{Instant, Misbehavior, PeerId};

/// The reports on one departed player.
#[derive(Debug)]
struct LossRound<I> {
    /// The departed player's slots.
    slots: Vec<usize>,
    /// Its key's verifier (its slots keep it, for reclaiming).
    key: Verifier,
    /// Each player's run of the departed player's inputs, this peer's included.
    reports: BTreeMap<PeerId, InputRun<I>>,
}

/// Departures being agreed on.
#[derive(Debug)]
pub(crate) struct Departures<I> {
    /// Loss rounds by departed peer.
    rounds: BTreeMap<PeerId, LossRound<I>>,
    /// Departed peers whose round is open: no longer waited for or sent to.
    pub(crate) lost: BTreeSet<PeerId>,
    /// Reports not ours to judge yet (joining, or the departed peer's admit
    /// not in), with their senders.
    deferred: Vec<(PeerId, LostMsg<I>)>,
}

impl<I> Default for Departures<I> {
    fn default() -> Self {
        Self {
            rounds: BTreeMap::new(),
            lost: BTreeSet::new(),
            deferred: Vec::new(),
        }
    }
}

impl<I> Departures<I> {
    /// Whether a departure is being agreed on (no joins are admitted meanwhile).
    pub(crate) fn deciding(&self) -> bool {
        !self.rounds.is_empty()
    }
}

impl<I: Input> RollbackSession<I> {
    /// A peer the transport lost (or that left for good): a spectator (or a
    /// member without slots) is forgotten, a player's departure is agreed on.
    pub(super) fn player_left(&mut self, now: Instant, peer: PeerId) {
        let Some(member) = self.peers.members.get(&peer) else {
            return;
        };
        if member.spectator || member.slots.is_empty() {
            self.peers.members.remove(&peer);
            return;
        }
        self.begin_loss_round(now, peer);
        self.try_finish_rounds(now);
    }

    /// Replays the loss reports kept for later.
    pub(super) fn replay_deferred(&mut self, now: Instant) {
        let deferred = std::mem::take(&mut self.departure.deferred);
        for (from, body) in deferred {
            self.on_lost(now, from, body);
        }
    }

    /// Opens the round on `gone`: this peer's report, sent to the other players.
    fn begin_loss_round(&mut self, _now: Instant, gone: PeerId) {
        if self.departure.rounds.contains_key(&gone) {
            return;
        }
        let Some(m) = self.peers.members.get(&gone) else {
            return;
        };
        let slots = m.slots.clone();
        let key = m.key;
        self.departure.lost.insert(gone);
        let run = self.report_run(&slots);
        let mut round = LossRound {
            slots,
            key,
            reports: BTreeMap::new(),
        };
        round.reports.insert(self.me.id, run.clone());
        self.departure.rounds.insert(gone, round);
        let msg = Msg::Lost(LostMsg { peer: gone, run });
        let lost = &self.departure.lost;
        let others: Vec<PeerId> = self
            .peers
            .members
            .iter()
            .filter(|(p, m)| !m.spectator && (**p == gone || !lost.contains(p)))
            .map(|(p, _)| *p)
            .collect();
        for p in others {
            self.peers.send(p, &msg);
        }
    }

    /// This peer's inputs of `slots`, back to twice the history kept.
    pub(super) fn report_run(&self, slots: &[usize]) -> InputRun<I> {
        let logs = &self.sync.slots;
        let end = slots.iter().map(|&s| logs[s].log.end()).min().unwrap_or(0);
        let base = slots.iter().map(|&s| logs[s].log.base).max().unwrap_or(0);
        let start = base
            .max(end.saturating_sub(2 * INPUT_HISTORY_FRAMES))
            .min(end);
        let records = (start..end)
            .map(|f| {
                slots
                    .iter()
                    .map(|&s| logs[s].log.get(f).flatten())
                    .collect()
            })
            .collect();
        InputRun {
            start,
            slots: slots.iter().map(|&s| s as u8).collect(),
            records,
        }
    }

    /// A player's report on a departed peer.
    pub(super) fn on_lost(&mut self, now: Instant, from: PeerId, body: LostMsg<I>) {
        if self.sync.spectator {
            return;
        }
        let gone = body.peer;
        if gone == self.me.id {
            self.on_lost_me(now, from, &body.run);
            return;
        }
        if self.me.phase == SessionPhase::Joining || !self.peers.members.contains_key(&gone) {
            // Not ours to judge yet: the snapshot or the admit of that peer may
            // still be on the way. Kept until then.
            if self.departure.deferred.len() < 4 * MAX_PLAYERS {
                self.departure.deferred.push((from, body));
            }
            return;
        }
        if self.peers.members.get(&from).is_none_or(|m| m.spectator)
            || self.departure.lost.contains(&from)
        {
            return;
        }
        if !self.departure.rounds.contains_key(&gone) {
            if self.peers.members.get(&gone).is_none_or(|m| m.spectator) {
                return;
            }
            self.begin_loss_round(now, gone);
        }
        if let Some(round) = self.departure.rounds.get_mut(&gone) {
            let expected: Vec<u8> = round.slots.iter().map(|&s| s as u8).collect();
            if body.run.slots != expected {
                self.misbehaved(from, Misbehavior::Rule("loss report for the wrong slots"));
                return;
            }
            round.reports.insert(from, body.run);
        }
        self.try_finish_rounds(now);
    }

    /// A member reports this peer lost: the others are agreeing on its
    /// departure and, if they hold a quorum, play on without it. Its timeline
    /// ends there; it joins theirs again. A report that ends before this
    /// peer's slots began is from before an earlier rejoin and is ignored.
    fn on_lost_me(&mut self, now: Instant, from: PeerId, run: &InputRun<I>) {
        let from_member = self
            .peers
            .members
            .get(&from)
            .is_some_and(|m| !m.spectator && m.introduced);
        if self.me.phase != SessionPhase::Running || !from_member {
            return;
        }
        let end = run.start + run.records.len() as Frame;
        let began = self
            .sync
            .local_slots()
            .iter()
            .map(|&s| self.sync.slots[s].active_from)
            .max()
            .unwrap_or(0);
        if end < began {
            return;
        }
        self.rejoin(now, RejoinCause::Partition);
    }

    /// A lost player is heard as a member again while this peer is cut off:
    /// it stalled too (no side of the split held a quorum, or none finished),
    /// so no frame was confirmed without it; its departure is called off and
    /// the game resumes where it stalled.
    pub(super) fn call_off_loss(&mut self, peer: PeerId) {
        if self.departure.rounds.remove(&peer).is_none() {
            return;
        }
        self.departure.lost.remove(&peer);
        self.membership.quit.remove(&peer);
        if !self.departure.deciding() {
            self.membership.cut_off = false;
        }
        self.events.push_back(RollbackEvent::PeerResumed { peer });
    }

    /// Finishes every round all remaining players have reported in, if they
    /// hold a quorum of the membership; without one, this peer is cut off.
    pub(super) fn try_finish_rounds(&mut self, now: Instant) {
        loop {
            if !self.departure.deciding() {
                return;
            }
            if !self.has_quorum() {
                self.note_cut_off();
                return;
            }
            self.membership.cut_off = false;
            let lost = &self.departure.lost;
            let members = &self.peers.members;
            let ready = self.departure.rounds.iter().find_map(|(&gone, round)| {
                let waiting = members.iter().any(|(p, m)| {
                    !m.spectator
                        && *p != gone
                        && !lost.contains(p)
                        && !round.reports.contains_key(p)
                });
                (!waiting).then_some(gone)
            });
            let Some(gone) = ready else {
                return;
            };
            let Some(round) = self.departure.rounds.remove(&gone) else {
                return;
            };
            self.finish_round(now, gone, round);
        }
    }

    /// Takes the furthest report's inputs and disconnects the departed
    /// player's slots from the frame after them.
    fn finish_round(&mut self, now: Instant, gone: PeerId, round: LossRound<I>) {
        let end_of = |r: &InputRun<I>| r.start + r.records.len() as Frame;
        let best = round.reports.values().max_by_key(|r| end_of(r));
        let until = best.map(end_of).unwrap_or(0);
        if let Some(best) = best {
            for (k, &s) in round.slots.iter().enumerate() {
                let slot = &mut self.sync.slots[s];
                for (i, record) in best.records.iter().enumerate() {
                    let f = best.start + i as Frame;
                    if f == slot.log.end() && slot.active_at(f) {
                        slot.log.push(f, record.get(k).copied().flatten());
                    }
                }
            }
        }
        for &s in &round.slots {
            let slot = &mut self.sync.slots[s];
            let until = until.max(slot.active_from);
            slot.until = Some(until);
            slot.state = SlotState::Vacant;
            slot.key = round.key;
            slot.released_at = Some(now);
        }
        self.peers.members.remove(&gone);
        self.departure.lost.remove(&gone);
        self.membership.quit.remove(&gone);
        self.events.push_back(RollbackEvent::Disconnected {
            peer: gone,
            slots: round.slots.clone(),
            frame: until,
        });
        // The departed peer's reports in other rounds no longer count as waited for.
        for r in self.departure.rounds.values_mut() {
            r.reports.remove(&gone);
        }
    }
}
