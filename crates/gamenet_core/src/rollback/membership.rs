//! Membership: who plays in the session, and which timeline survives when the
//! players are split apart.
//!
//! A player the transport loses may have quit, crashed, or be playing on behind
//! a partition. The players that lost it agree where its inputs end (a loss
//! round, see the [rollback protocol](super)), but only a side that holds a *quorum* of the
//! membership may finish that agreement and play on without it:
//!
//! - the membership counted is every player in the session as this peer knows it
//!   (itself included), less the players known to have left for good: one that
//!   said goodbye ([`Leave::Quit`]), or asked to join again (its intro as a
//!   joiner, under its own id or under a new one with its key);
//! - a side holds a quorum when more than half of that membership is still
//!   present, or exactly half and the lowest id of the membership is present.
//!
//! Two sides of one split cannot both hold a quorum, so at most one plays on. A
//! side without one is *cut off* ([`RollbackEvent::CutOff`]): it stalls at its
//! prediction window (it never confirms a frame past the split, since the lost
//! players' inputs are missing). When a lost player's link comes back, that
//! player's side says how it went. If it played on, it tells this peer so
//! (`Dropped`), and this peer *rejoins* ([`RollbackEvent::Rejoining`]): it
//! drops its own frames and loads the surviving side's snapshot through the
//! late-join path, into the slots its key holds. If it stalled too (no side
//! held a quorum), its intro (sent on the link's return, or in answer to this
//! peer's loss report) says it still counts this peer as a member: the loss
//! is called off on both sides and the game resumes where it stalled.
//!
//! A healed partition, a peer that restarts with its key and a detected desync
//! take the same path: a desync is healed by every player whose checksum
//! differs from the host's (the lowest-id player) rejoining.

use std::collections::BTreeSet;

use super::local::SessionPhase;
use super::sync_layer::SlotState;
use super::wire::{LostMsg, Msg};
use super::{Input, RollbackEvent, RollbackSession};
use crate::{Instant, PeerId};

/// How the transport lost a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// It said goodbye: it plays no more anywhere, and does not count against
    /// the quorum of the players left.
    Quit,
    /// It went silent or its connection failed: it may be playing on behind a
    /// partition, so it still counts in the membership until the loss is agreed.
    Lost,
}

/// Why a session rejoins through the host's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejoinCause {
    /// This peer was cut off from a quorum of the players, and one of them is
    /// back: the others played on, this side's frames since the split are dropped.
    Partition,
    /// This peer's checksum of a confirmed frame differs from the host's.
    Desync,
}

/// This peer's view of the membership beyond the member list.
#[derive(Debug, Default)]
pub(crate) struct Membership {
    /// Members known to have left for good: not counted in the quorum.
    pub(crate) quit: BTreeSet<PeerId>,
    /// Whether this peer lost players without keeping a quorum (reported once).
    pub(crate) cut_off: bool,
}

impl<I: Input> RollbackSession<I> {
    /// Members not heard for the interrupt timeout: the game waits for them
    /// (it stalls at its prediction window), and may show so.
    pub fn interrupted(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers
            .members
            .iter()
            .filter(|(_, m)| m.interrupted)
            .map(|(p, _)| *p)
    }

    /// Whether this peer lost players without keeping a quorum: it stalls
    /// until one of them is back, then rejoins ([`RollbackEvent::CutOff`]).
    pub fn is_cut_off(&self) -> bool {
        self.membership.cut_off
    }

    /// Whether this peer waits for the host's snapshot (joining, or rejoining
    /// after a split or a desync).
    pub fn is_joining(&self) -> bool {
        self.me.phase == SessionPhase::Joining
    }

    /// The players of the membership as this peer counts it (itself included),
    /// less those known to have quit.
    fn counted_players(&self) -> BTreeSet<PeerId> {
        let quit = &self.membership.quit;
        let mut players: BTreeSet<PeerId> = self
            .peers
            .members
            .iter()
            .filter(|(p, m)| !m.spectator && !quit.contains(p))
            .map(|(p, _)| *p)
            .collect();
        players.insert(self.me.id);
        players
    }

    /// Whether the players this peer still has form a quorum of the membership
    /// (see the [module doc](self)).
    pub(super) fn has_quorum(&self) -> bool {
        let counted = self.counted_players();
        let lost = &self.departure.lost;
        let present = counted.iter().filter(|p| !lost.contains(p)).count();
        let lowest_present = counted.first().is_some_and(|p| !lost.contains(p));
        2 * present > counted.len() || (2 * present == counted.len() && lowest_present)
    }

    /// No quorum: reports this peer cut off, once.
    pub(super) fn note_cut_off(&mut self) {
        if self.membership.cut_off {
            return;
        }
        self.membership.cut_off = true;
        let lost: Vec<PeerId> = self.departure.lost.iter().copied().collect();
        self.events.push_back(RollbackEvent::CutOff { lost });
    }

    /// `peer` has left for good (a goodbye, or a join request in its name):
    /// it no longer counts in the quorum, and its departure is agreed on.
    pub(super) fn member_quit(&mut self, now: Instant, peer: PeerId) {
        if !self.peers.members.contains_key(&peer) {
            return;
        }
        self.membership.quit.insert(peer);
        self.player_left(now, peer);
    }

    /// If `peer` played here and its departure was agreed (this side plays on
    /// without it), tells it so ([`Msg::Dropped`]; it rejoins if it believes
    /// it, see `on_lost_me`) and returns true. Called when a round finishes,
    /// when such a peer reports this one lost, and when a link is up again;
    /// there, if this returns false, the caller sends the usual intro, which a
    /// member lost while this peer was cut off takes as a sign that both
    /// sides stalled.
    pub(super) fn tell_ex_member(&mut self, peer: PeerId) -> bool {
        if self.me.phase != SessionPhase::Running
            || self.sync.spectator
            || self.peers.members.contains_key(&peer)
        {
            return false;
        }
        let slots: Vec<usize> = (0..self.sync.slots.len())
            .filter(|&s| {
                let slot = &self.sync.slots[s];
                slot.state == SlotState::Vacant && slot.peer == peer && !slot.local
            })
            .collect();
        if slots.is_empty() {
            return false;
        }
        let run = self.report_run(&slots);
        self.peers
            .send(peer, &Msg::<I>::Dropped(LostMsg { peer, run }));
        true
    }

    /// A member's intro while it is lost and this peer is cut off: it counts
    /// this peer as a member still, so neither side played on; the loss is
    /// called off.
    pub(super) fn lost_member_back(&mut self, now: Instant, peer: PeerId) {
        if self.membership.cut_off && self.departure.lost.contains(&peer) {
            self.call_off_loss(now, peer);
        }
    }

    /// Checks the desyncs reported since event `from`: a player whose checksum
    /// differs from the host's rejoins.
    pub(super) fn heal_desyncs(&mut self, now: Instant, from: usize) {
        if self.sync.spectator || self.me.phase != SessionPhase::Running {
            return;
        }
        let host = self.host();
        if host == Some(self.me.id) {
            return;
        }
        let with_host = self.events.iter().skip(from).any(
            |e| matches!(e, RollbackEvent::DesyncDetected { peer, .. } if Some(*peer) == host),
        );
        if with_host {
            self.rejoin(now, RejoinCause::Desync);
        }
    }

    /// Drops this peer's timeline and joins again under the same id and key:
    /// the host's snapshot replaces the state, the key's slots are given back.
    pub(super) fn rejoin(&mut self, now: Instant, cause: RejoinCause) {
        let mut fresh = Self::joining(
            self.config.clone(),
            self.me.id,
            self.me.key.key,
            self.me.local_players,
        );
        std::mem::swap(&mut fresh.sync.predictor, &mut self.sync.predictor);
        fresh.events = std::mem::take(&mut self.events);
        fresh.events.push_back(RollbackEvent::Rejoining { cause });
        let connected = std::mem::take(&mut self.peers.connected);
        *self = fresh;
        for peer in connected {
            self.handle_peer_joined(now, peer);
        }
    }
}
