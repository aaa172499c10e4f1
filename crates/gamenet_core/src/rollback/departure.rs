//! Departures: when a player leaves, every remaining player reports how far it
//! has the leaver's inputs (and what they are); once all have reported, all
//! take the furthest run, and the leaver's slots are disconnected from the
//! frame after it, the same on every peer.
//!
//! A report is a vote, not a verdict: a player joins the agreement on a peer
//! only on its own evidence (its transport lost the peer, the peer went
//! silent or kept back its inputs while this player waited on them, or it
//! asked to join again), when more than half of the other players report the
//! peer, or when two members report each other (a link between them broke;
//! the higher id goes, the same choice on every peer). So one liar can make
//! nobody leave. A player whose report finds no agreement within twice the
//! drop timeout, while it holds a quorum, is the odd one out: the others keep
//! playing with a peer it cannot play with (the link between them broke, or
//! one of the two lies), so it leaves the session
//! ([`RollbackEvent::Ended`]) and the game never waits on it for ever.
//!
//! The departed peer hears two things: while the others decide, their
//! reports (a sign they wait on it; it answers with its intro, which calls
//! the loss off on a peer that is cut off, since neither side played on);
//! once a player plays on without it, a `Dropped` message, on which it ends
//! its timeline and rejoins. So the side that played on stays, and two sides
//! that both stalled resume together.

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
    /// When this peer opened it.
    opened: Instant,
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
    /// Reports on peers this one has no round on: votes, by accused peer then
    /// by reporter, with when they came.
    accusations: BTreeMap<PeerId, BTreeMap<PeerId, (Instant, InputRun<I>)>>,
    /// Since when this peer cannot run a frame for want of remote inputs.
    pub(crate) stalled_since: Option<Instant>,
    /// Players that told this peer they play on without it, with when.
    dropped_me: BTreeMap<PeerId, Instant>,
    /// Peers put out by the others' votes or for breaking a rule, with when:
    /// a host does not admit them again within the reclaim window.
    pub(crate) contested: BTreeMap<PeerId, Instant>,
}

impl<I> Default for Departures<I> {
    fn default() -> Self {
        Self {
            rounds: BTreeMap::new(),
            lost: BTreeSet::new(),
            deferred: Vec::new(),
            accusations: BTreeMap::new(),
            stalled_since: None,
            dropped_me: BTreeMap::new(),
            contested: BTreeMap::new(),
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

    /// Opens the round on `gone`: this peer's report, sent to the other
    /// players; the votes already in count.
    fn begin_loss_round(&mut self, now: Instant, gone: PeerId) {
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
            opened: now,
            slots,
            key,
            reports: BTreeMap::new(),
        };
        for (from, (_, run)) in self.departure.accusations.remove(&gone).unwrap_or_default() {
            round.reports.insert(from, run);
        }
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
            self.on_lost_me(now, from, &body.run, false);
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
        let Some(accused) = self.peers.members.get(&gone).filter(|m| !m.spectator) else {
            return;
        };
        let expected: Vec<u8> = accused.slots.iter().map(|&s| s as u8).collect();
        if body.run.slots != expected {
            self.misbehaved(from, Misbehavior::Rule("loss report for the wrong slots"));
            return;
        }
        if let Some(round) = self.departure.rounds.get_mut(&gone) {
            round.reports.insert(from, body.run);
        } else {
            self.departure
                .accusations
                .entry(gone)
                .or_default()
                .insert(from, (now, body.run));
            // A mutual report may make the reporter the one to go.
            for accused in [gone, from] {
                if !self.departure.rounds.contains_key(&accused) && self.vote_carries(now, accused)
                {
                    self.contest(now, accused);
                    self.begin_loss_round(now, accused);
                }
            }
        }
        self.try_finish_rounds(now);
    }

    /// The players that count in a vote on `gone`: the members playing, not
    /// being reported lost, but `gone` (this peer not included).
    fn voters(&self, gone: PeerId) -> Vec<PeerId> {
        let lost = &self.departure.lost;
        self.peers
            .members
            .iter()
            .filter(|(p, m)| !m.spectator && **p != gone && !lost.contains(p))
            .map(|(p, _)| *p)
            .collect()
    }

    /// The voters that reported `accused` within the vote's lifetime.
    fn accusers(&self, now: Instant, accused: PeerId) -> Vec<PeerId> {
        let fresh = 2 * self.config.drop_timeout;
        let voters = self.voters(accused);
        self.departure
            .accusations
            .get(&accused)
            .into_iter()
            .flatten()
            .filter(|(p, (at, _))| voters.contains(p) && now < *at + fresh)
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether the others' reports on `gone` are enough for this peer to
    /// join the agreement without evidence of its own: more than half of the
    /// other players (this one counted, not reporting), or `gone` and a
    /// reporter of lower id report each other.
    fn vote_carries(&self, now: Instant, gone: PeerId) -> bool {
        let accusers = self.accusers(now, gone);
        let players = self.voters(gone).len() + 1;
        2 * accusers.len() > players
            || accusers
                .iter()
                .any(|&a| a < gone && self.accusers(now, a).contains(&gone))
    }

    /// Remembers `peer` as put out by the others or for a broken rule.
    pub(super) fn contest(&mut self, now: Instant, peer: PeerId) {
        let window = self.config.reclaim_window;
        let contested = &mut self.departure.contested;
        contested.retain(|_, at| now < *at + window);
        if contested.len() < 4 * MAX_PLAYERS {
            contested.insert(peer, now);
        }
    }

    /// Whether a host turns `peer` away: put out by the others' votes or for
    /// a broken rule within the reclaim window.
    pub(super) fn is_contested(&self, now: Instant, peer: PeerId) -> bool {
        self.departure
            .contested
            .get(&peer)
            .is_some_and(|at| now < *at + self.config.reclaim_window)
    }

    /// Forgets votes past their lifetime.
    pub(super) fn expire_accusations(&mut self, now: Instant) {
        let fresh = 2 * self.config.drop_timeout;
        for votes in self.departure.accusations.values_mut() {
            votes.retain(|_, (at, _)| now < *at + fresh);
        }
        self.departure.accusations.retain(|_, v| !v.is_empty());
    }

    /// When the oldest round this peer opened without agreement gives up,
    /// while it holds a quorum (a peer cut off waits for the split to heal).
    pub(super) fn next_dispute(&self) -> Option<Instant> {
        if !self.has_quorum() {
            return None;
        }
        let patience = 2 * self.config.drop_timeout;
        self.departure
            .rounds
            .values()
            .map(|r| r.opened + patience)
            .min()
    }

    /// A round open for twice the drop timeout while this peer holds a
    /// quorum: the others keep playing with the peer this one reported, so
    /// this one cannot follow their game; it leaves.
    pub(super) fn check_disputes(&mut self, now: Instant) {
        if self.me.phase != SessionPhase::Running || self.next_dispute().is_none_or(|t| now < t) {
            return;
        }
        let disputed: Vec<PeerId> = self.departure.rounds.keys().copied().collect();
        self.me.phase = SessionPhase::Ended;
        self.events.push_back(RollbackEvent::Ended {
            reason: format!(
                "the other players keep playing with {disputed:?}, whom this peer lost"
            ),
        });
    }

    /// When a member that keeps back the inputs this peer waits on counts as
    /// lost: twice the drop timeout after this peer stalled on it or its
    /// inputs last moved on, whichever is later.
    pub(super) fn next_withheld(&self) -> Option<Instant> {
        self.withholding().into_iter().map(|(_, at)| at).min()
    }

    /// The members this peer waits on, with when they count as keeping
    /// their inputs back. None while a round is open (the wait may be on the
    /// departed peer) or while a member says it waits on someone else.
    fn withholding(&self) -> Vec<(PeerId, Instant)> {
        let Some(stalled) = self.departure.stalled_since else {
            return Vec::new();
        };
        if self.departure.deciding() || self.me.phase != SessionPhase::Running {
            return Vec::new();
        }
        let until = self.sync.remote_confirmed_until();
        let patience = 2 * self.config.drop_timeout;
        let mut out = Vec::new();
        for (&p, m) in &self.peers.members {
            let blocks = m
                .slots
                .iter()
                .any(|&s| self.sync.slots[s].first_unknown() == until);
            let waits_itself = self
                .departure
                .accusations
                .values()
                .any(|votes| votes.contains_key(&p));
            if m.spectator || !blocks || waits_itself || self.departure.lost.contains(&p) {
                continue;
            }
            let since = m.progressed_at.map_or(stalled, |t| t.max(stalled));
            out.push((p, since + patience));
        }
        out
    }

    /// Members that kept their inputs back past their time are lost, on this
    /// peer's own evidence.
    pub(super) fn check_withheld(&mut self, now: Instant) {
        let due: Vec<PeerId> = self
            .withholding()
            .into_iter()
            .filter(|(_, at)| now >= *at)
            .map(|(p, _)| p)
            .collect();
        for peer in due {
            self.contest(now, peer);
            self.player_left(now, peer);
        }
    }

    /// A player tells this peer it plays on without it: only the departed
    /// peer itself may be named.
    pub(super) fn on_dropped(&mut self, now: Instant, from: PeerId, body: LostMsg<I>) {
        if self.sync.spectator {
            return;
        }
        if body.peer != self.me.id {
            self.misbehaved(from, Misbehavior::Rule("dropped report on another peer"));
            return;
        }
        self.on_lost_me(now, from, &body.run, true);
    }

    /// A member reports this peer lost. While it is only deciding
    /// ([`Msg::Lost`], `settled` false: it may be cut off, or waiting for the
    /// others' reports) the report is a vote and a sign that the sender waits
    /// on this peer; this peer answers with its intro, which calls the loss
    /// off on a sender that is cut off (neither side played on), or, if the
    /// sender is a player this peer already plays on without, with
    /// [`Msg::Dropped`] (it missed being told). Once the sender plays on
    /// without this peer ([`Msg::Dropped`]), this peer's timeline ends there
    /// and it joins theirs again, if the sender is a player it lost while cut
    /// off (the side that played on) or more than half of the other players
    /// say so. A report that ends before this peer's slots began is from
    /// before an earlier rejoin and is ignored. So two sides that both
    /// stalled never take each other's reports for a verdict, and the side
    /// that played on is the one that stays.
    fn on_lost_me(&mut self, now: Instant, from: PeerId, run: &InputRun<I>, settled: bool) {
        let from_member = self
            .peers
            .members
            .get(&from)
            .is_some_and(|m| !m.spectator && m.introduced);
        if self.me.phase != SessionPhase::Running {
            return;
        }
        if !from_member {
            // A player this peer plays on without, deciding on this peer: it
            // missed being told (its link was down, or the teller's was).
            if !settled {
                self.tell_ex_member(from);
            }
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
        let me = self.me.id;
        self.departure
            .accusations
            .entry(me)
            .or_default()
            .insert(from, (now, run.clone()));
        if !settled {
            // Not to a peer this peer has lost while it holds a quorum: that
            // round finishes without it, and the intro would call the loss off
            // on the other side just before it hears `Dropped`.
            if !(self.departure.lost.contains(&from) && self.has_quorum()) {
                self.send_intro(from);
            }
            return;
        }
        if !(self.membership.cut_off && self.departure.lost.contains(&from)) {
            let fresh = 2 * self.config.drop_timeout;
            let dropped_me = &mut self.departure.dropped_me;
            dropped_me.retain(|_, at| now < *at + fresh);
            if dropped_me.len() < 4 * MAX_PLAYERS {
                dropped_me.insert(from, now);
            }
            let voters = self.voters(me);
            let dropped_me = &self.departure.dropped_me;
            let told = dropped_me.keys().filter(|p| voters.contains(p)).count();
            if 2 * told <= voters.len() {
                return;
            }
        }
        self.rejoin(now, RejoinCause::Partition);
    }

    /// A lost player is heard as a member again while this peer is cut off:
    /// it stalled too (no side of the split held a quorum, or none finished),
    /// so no frame was confirmed without it; its departure is called off and
    /// the game resumes where it stalled.
    pub(super) fn call_off_loss(&mut self, now: Instant, peer: PeerId) {
        if self.departure.rounds.remove(&peer).is_none() {
            return;
        }
        // Its withholding is timed afresh from now, or a peer cut off because
        // the other kept its inputs back would lose it again at once.
        if let Some(m) = self.peers.members.get_mut(&peer) {
            m.progressed_at = Some(now);
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
        self.departure.accusations.remove(&gone);
        for votes in self.departure.accusations.values_mut() {
            votes.remove(&gone);
        }
        // This peer plays on without `gone`: told so now if its link is up (a
        // frame loop that stopped while its mesh still answered), otherwise
        // when it is back.
        self.tell_ex_member(gone);
    }
}
