//! The host side of a join: a joiner's intro, the choice of its slots (a
//! returning key gets its own back), the admit every member applies, and the
//! snapshot the joiner starts from.

use super::keys::{self, Verifier};
use super::local::SessionPhase;
use super::peers::Member;
use super::sync_layer::{PlayerSlot, SlotState};
use super::wire::{AdmitMsg, InputRun, IntroMsg, Msg, RefuseMsg, SnapshotMsg};
use super::{Frame, Input, Request, RollbackEvent, RollbackSession};
use crate::{Instant, Misbehavior, PeerId};

/// Most join requests a host keeps waiting.
const MAX_PENDING_JOINS: usize = 16;

/// A peer asking to join.
#[derive(Debug, Clone)]
struct JoinRequest {
    /// The joiner.
    peer: PeerId,
    /// Its player key's verifier (proven by its intro).
    key: Verifier,
    /// The slots it asks for (0: to spectate).
    players: usize,
    /// Its attempt ([`IntroMsg::attempt`]).
    attempt: u64,
}

/// A joiner waiting for the game to serialize a snapshot.
#[derive(Debug)]
struct PendingSnapshot {
    /// The joiner.
    peer: PeerId,
    /// The frame of the snapshot.
    frame: Frame,
    /// The joiner's first frame.
    from: Frame,
    /// The joiner's slots.
    slots: Vec<usize>,
}

/// The host's joins in progress.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// Joiners not admitted yet, oldest first.
    joins: Vec<JoinRequest>,
    /// Admitted joiners waiting for their snapshot.
    pending_snapshots: Vec<PendingSnapshot>,
}

impl Admission {
    /// Forgets the joins of a peer the transport lost.
    pub(crate) fn forget(&mut self, peer: PeerId) {
        self.joins.retain(|j| j.peer != peer);
        self.pending_snapshots.retain(|p| p.peer != peer);
    }
}

impl<I: Input> RollbackSession<I> {
    /// A peer's intro: a joiner's is a join request (kept by a running
    /// player); a start player's completes synchronization.
    pub(super) fn on_intro(&mut self, now: Instant, peer: PeerId, body: IntroMsg) {
        let num_players = body.num_players as usize;
        if num_players != self.config.num_players {
            self.misbehaved(
                peer,
                Misbehavior::Rule("intro for a session of another size"),
            );
            return;
        }
        if !body.joiner {
            if self.me.phase == SessionPhase::Joining && body.players > 0 {
                self.late_join.running.insert(peer);
            }
            self.lost_member_back(now, peer);
            self.on_member_intro(now, peer, body.key);
            return;
        }
        if !body
            .proof
            .is_some_and(|proof| keys::check(&body.key, peer, &proof))
        {
            self.misbehaved(peer, Misbehavior::Rule("join without a proof of its key"));
            return;
        }
        if self.sync.spectator || self.me.phase == SessionPhase::Joining {
            return;
        }
        // The joiner may have been linked before it asked (it rejoins): it
        // learns who runs the session from the intros it gets back.
        self.send_intro(peer);
        if self
            .peers
            .members
            .get(&peer)
            .is_some_and(|m| m.attempt == Some(body.attempt))
        {
            // The request this peer took the host's admit of: it came over a
            // link that was up again only after the admit.
            return;
        }
        // A member asking to join again (it dropped its timeline), or a new
        // peer with a member's key (that player restarted): the old member has
        // left for good. Its departure is agreed on; the join waits for it.
        let old_selves: Vec<PeerId> = self
            .peers
            .members
            .iter()
            .filter(|(p, m)| **p == peer || (m.introduced && m.key == body.key && !m.spectator))
            .map(|(p, _)| *p)
            .collect();
        for old in old_selves {
            self.member_quit(now, old);
        }
        let joins = &mut self.admission.joins;
        joins.retain(|j| j.peer != peer);
        if joins.len() >= MAX_PENDING_JOINS {
            self.refuse(peer, "too many joins pending".into());
            return;
        }
        joins.push(JoinRequest {
            peer,
            key: body.key,
            players: body.players as usize,
            attempt: body.attempt,
        });
    }

    /// Sends a join refusal.
    fn refuse(&mut self, peer: PeerId, reason: String) {
        self.peers
            .send(peer, &Msg::<I>::Refuse(RefuseMsg { reason }));
    }

    /// The host admits the joiners it can: each gets slots, every member an
    /// admit, and the game a snapshot request. Not while a loss round runs.
    pub(super) fn host_duties(&mut self, now: Instant, requests: &mut Vec<Request<I>>) {
        if self.sync.spectator || !self.is_host() || self.departure.deciding() {
            return;
        }
        let joins = std::mem::take(&mut self.admission.joins);
        for j in joins {
            if self.peers.members.contains_key(&j.peer) {
                // Its old self's departure is not agreed yet.
                self.admission.joins.push(j);
                continue;
            }
            let ghost = self
                .sync
                .slots
                .iter()
                .any(|s| s.state == SlotState::Occupied && s.key == j.key && s.peer != j.peer);
            if !self.peers.connected.contains(&j.peer) || ghost {
                // Not connected (yet), or its old self has not been seen to
                // leave yet: ask again next frame.
                self.admission.joins.push(j);
                continue;
            }
            if self.is_contested(now, j.peer) {
                self.refuse(j.peer, "put out by the other players".into());
                continue;
            }
            let Some(slots) = self.choose_slots(now, &j) else {
                self.refuse(j.peer, "the session is full".into());
                continue;
            };
            let from = self.sync.current + self.config.input_delay + self.config.join_margin;
            let snapshot = self.sync.confirmed_frame();
            self.apply_admit(now, &j, &slots, from, snapshot);
            let msg = Msg::<I>::Admit(AdmitMsg {
                peer: j.peer,
                key: j.key,
                slots: slots.iter().map(|&s| s as u8).collect(),
                from,
                snapshot,
                attempt: j.attempt,
            });
            let others: Vec<PeerId> = self
                .peers
                .members
                .keys()
                .copied()
                .filter(|&p| p != j.peer)
                .collect();
            for p in others {
                self.peers.send(p, &msg);
            }
            let pending = &mut self.admission.pending_snapshots;
            if !pending.iter().any(|p| p.frame == snapshot) {
                requests.push(Request::Snapshot { frame: snapshot });
            }
            pending.push(PendingSnapshot {
                peer: j.peer,
                frame: snapshot,
                from,
                slots,
            });
        }
    }

    /// The slots for a join: the key's own vacant ones first, then free ones
    /// and vacant ones out of their reclaim window; `None` if too few.
    fn choose_slots(&self, now: Instant, j: &JoinRequest) -> Option<Vec<usize>> {
        if j.players == 0 {
            return self.spectator_room().then(Vec::new);
        }
        let reclaim = self.config.reclaim_window;
        let reserved = |s: &PlayerSlot<I>| {
            s.state == SlotState::Vacant
                && s.released_at.is_some_and(|t| now < t + reclaim)
                && s.key != j.key
        };
        let slots = &self.sync.slots;
        let mut chosen: Vec<usize> = (0..slots.len())
            .filter(|&i| slots[i].state == SlotState::Vacant && slots[i].key == j.key)
            .take(j.players)
            .collect();
        for (i, s) in slots.iter().enumerate() {
            if chosen.len() >= j.players {
                break;
            }
            if s.state != SlotState::Occupied && !reserved(s) && !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        (chosen.len() == j.players).then_some(chosen)
    }

    /// The host's admit of a joiner, applied by every other player.
    pub(super) fn on_admit(&mut self, now: Instant, from_peer: PeerId, body: AdmitMsg) {
        if self.me.phase == SessionPhase::Joining || self.sync.spectator {
            return;
        }
        if self.host() != Some(from_peer) {
            self.misbehaved(from_peer, Misbehavior::WrongSender { what: "admit" });
            return;
        }
        let joiner = body.peer;
        let slots: Vec<usize> = body.slots.into_iter().map(usize::from).collect();
        if joiner == self.me.id
            || self.peers.members.contains_key(&joiner)
            || slots.iter().any(|&s| {
                s >= self.sync.slots.len() || self.sync.slots[s].state == SlotState::Occupied
            })
            || (slots.is_empty() && !self.spectator_room())
            || body.from < self.sync.sim_base
        {
            self.misbehaved(from_peer, Misbehavior::Rule("admit that cannot apply here"));
            return;
        }
        let join = JoinRequest {
            peer: joiner,
            key: body.key,
            players: slots.len(),
            attempt: body.attempt,
        };
        self.apply_admit(now, &join, &slots, body.from, body.snapshot);
    }

    /// Gives `joiner` its slots from frame `from` and makes it a member.
    fn apply_admit(
        &mut self,
        now: Instant,
        join: &JoinRequest,
        slots: &[usize],
        from: Frame,
        snapshot: Frame,
    ) {
        let (joiner, key) = (join.peer, join.key);
        for &s in slots {
            let slot = &mut self.sync.slots[s];
            slot.state = SlotState::Occupied;
            slot.peer = joiner;
            slot.key = key;
            slot.local = false;
            slot.active_from = from;
            slot.until = None;
            slot.released_at = None;
            slot.log.reset(from);
        }
        let mut m = Member::new(key, slots.to_vec(), slots.is_empty(), snapshot);
        m.connected = self.peers.connected.contains(&joiner);
        m.introduced = true;
        m.attempt = Some(join.attempt);
        self.peers.members.insert(joiner, m);
        self.admission.joins.retain(|j| j.peer != joiner);
        self.events.push_back(RollbackEvent::PlayerJoined {
            peer: joiner,
            slots: slots.to_vec(),
            frame: from,
        });
        self.replay_deferred(now);
    }

    /// The admitted joiners waiting for a snapshot of `frame`.
    fn take_pending(&mut self, frame: Frame) -> Vec<PendingSnapshot> {
        let (ready, rest) = std::mem::take(&mut self.admission.pending_snapshots)
            .into_iter()
            .partition(|p| p.frame == frame);
        self.admission.pending_snapshots = rest;
        ready
    }

    /// Turns away the peers waiting for a snapshot of `frame`: the game cannot
    /// make one. They get [`RollbackEvent::JoinRefused`] with `reason` (its
    /// first 1,024 bytes), and their admission is undone as a departure (the
    /// members stop waiting for their inputs).
    pub fn decline_snapshot(&mut self, frame: Frame, reason: &str) {
        let now = self.time.last;
        for p in self.take_pending(frame) {
            self.refuse(p.peer, reason.to_string());
            if let Some(now) = now {
                self.member_quit(now, p.peer);
            }
        }
    }

    /// The serialized state the host's game made for a [`Request::Snapshot`].
    pub fn submit_snapshot(&mut self, frame: Frame, data: Vec<u8>) {
        for p in self.take_pending(frame) {
            if data.len() > self.config.max_snapshot_bytes {
                self.refuse(p.peer, "state snapshot too large".into());
                continue;
            }
            let slots = &self.sync.slots;
            let table = slots.iter().map(PlayerSlot::entry).collect();
            let runs = (0..slots.len())
                .filter(|&s| slots[s].state == SlotState::Occupied && slots[s].peer != p.peer)
                .map(|s| {
                    let log = &slots[s].log;
                    let start = frame.max(log.base);
                    InputRun {
                        start,
                        slots: vec![s as u8],
                        records: (start..log.end())
                            .map(|f| vec![log.get(f).flatten()])
                            .collect(),
                    }
                })
                .collect();
            let msg = Msg::Snapshot(SnapshotMsg {
                frame,
                from: p.from,
                your_slots: p.slots.iter().map(|&s| s as u8).collect(),
                table,
                spectators: self.spectators_but(p.peer),
                runs,
                data: data.clone(),
            });
            self.peers.send(p.peer, &msg);
        }
    }
}
