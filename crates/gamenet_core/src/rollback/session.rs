//! [`RollbackSession`]: one peer of a networked rollback session. It keeps
//! the orchestration: the calls a game and a transport make, each handed to
//! the part that owns the state it touches.

use std::collections::VecDeque;
use std::fmt;

use super::admission::Admission;
use super::checksum::Checksums;
use super::departure::Departures;
use super::keys::{PlayerKey, Verifier};
use super::late_join::LateJoin;
use super::local::{Me, SessionPhase, join_attempt};
use super::membership::{Leave, Membership};
use super::peers::{Member, Peers};
use super::sync_layer::{SlotState, SyncLayer};
use super::time_sync::{TimeSync, Timer};
use super::wire::{IntroMsg, Msg};
use super::{
    Checksum, ConfigError, Frame, Input, PlayerKind, Request, RollbackConfig, RollbackError,
    RollbackEvent, RollbackStats,
};
use crate::{Instant, Misbehavior, PeerId, Transmit};

/// A rollback session of one peer: a player (one or more local slots) or a
/// spectator. (A local sync test is a [`SyncTestSession`](super::SyncTestSession).)
pub struct RollbackSession<I: Input> {
    /// The settings; the input delay may change while running.
    pub(super) config: RollbackConfig,
    /// Who this peer is and where the session stands.
    pub(super) me: Me,
    /// The slot table, the inputs and the frames simulated with them.
    pub(super) sync: SyncLayer<I>,
    /// The remote members and what goes out to them.
    pub(super) peers: Peers,
    /// The clock, time sync and pacing.
    pub(super) time: TimeSync,
    /// Local and remote checksums of confirmed frames.
    pub(super) checksums: Checksums,
    /// The host side of joins.
    pub(super) admission: Admission,
    /// The joiner side of a join.
    pub(super) late_join: LateJoin,
    /// Loss rounds of departed players.
    pub(super) departure: Departures<I>,
    /// Who counts in the quorum, and whether this peer is cut off.
    pub(super) membership: Membership,
    /// What happened, not polled yet.
    pub(super) events: VecDeque<RollbackEvent>,
    /// The last [`MAX_RULE_BREAKERS`] peers reported for breaking the
    /// protocol: reported once, and nothing more from them is read.
    rule_breakers: VecDeque<PeerId>,
}

/// How many rule breakers a session remembers.
const MAX_RULE_BREAKERS: usize = 1024;

impl<I: Input> fmt::Debug for RollbackSession<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollbackSession")
            .field("id", &self.me.id)
            .field("spectator", &self.sync.spectator)
            .field("phase", &self.me.phase)
            .field("frame", &self.sync.current)
            .finish_non_exhaustive()
    }
}

impl<I: Input> RollbackSession<I> {
    fn empty(config: RollbackConfig, spectator: bool, id: PeerId, key: u64) -> Self {
        Self {
            sync: SyncLayer::new(config.num_players, spectator),
            config,
            me: Me {
                id,
                key: PlayerKey::new(key),
                local_players: 0,
                phase: SessionPhase::Synchronizing,
                attempt: 0,
            },
            peers: Peers::default(),
            time: TimeSync::default(),
            checksums: Checksums::default(),
            admission: Admission::default(),
            late_join: LateJoin::default(),
            departure: Departures::default(),
            membership: Membership::default(),
            events: VecDeque::new(),
            rule_breakers: VecDeque::new(),
        }
    }

    /// A session that joins, its settings already checked.
    pub(super) fn joining(config: RollbackConfig, id: PeerId, key: u64, players: usize) -> Self {
        let mut s = Self::empty(config, players == 0, id, key);
        s.me.local_players = players;
        s.me.phase = SessionPhase::Joining;
        s.me.attempt = join_attempt();
        s.sync.skip_initial_save();
        s
    }

    /// A session that starts at frame 0 with every slot assigned, the same
    /// assignment on every peer (for instance slots in order of peer id).
    /// `key` identifies this player should it need to reconnect; `id` is this
    /// peer's id in the mesh.
    pub fn start(
        config: RollbackConfig,
        id: PeerId,
        key: u64,
        players: &[PlayerKind],
    ) -> Result<Self, RollbackError> {
        config.validate()?;
        if players.len() != config.num_players {
            return Err(ConfigError::PlayerKinds.into());
        }
        let mut s = Self::empty(config, false, id, key);
        let verifier = s.me.key.verifier();
        for (i, kind) in players.iter().enumerate() {
            if *kind == PlayerKind::Open {
                continue;
            }
            let slot = &mut s.sync.slots[i];
            slot.state = SlotState::Occupied;
            slot.active_from = 0;
            match kind {
                PlayerKind::Local => {
                    slot.local = true;
                    slot.peer = id;
                    slot.key = verifier;
                    s.me.local_players += 1;
                }
                PlayerKind::Remote(peer) => {
                    slot.peer = *peer;
                    s.peers
                        .members
                        .entry(*peer)
                        .or_insert_with(|| Member::new([0; 32], Vec::new(), false, 0))
                        .slots
                        .push(i);
                }
                PlayerKind::Open => {}
            }
        }
        if s.peers.members.contains_key(&id) {
            return Err(ConfigError::RemoteHasOurId.into());
        }
        if s.peers.members.is_empty() {
            s.me.phase = SessionPhase::Running;
            s.events.push_back(RollbackEvent::Running { frame: 0 });
        } else {
            for &peer in s.peers.members.keys() {
                s.events.push_back(RollbackEvent::Synchronizing { peer });
            }
        }
        Ok(s)
    }

    /// A session that joins a running one: it asks the host for `players` slots
    /// (0 to spectate), loads the host's snapshot and catches up. A `key` that
    /// held slots before reclaims them.
    pub fn join(
        config: RollbackConfig,
        id: PeerId,
        key: u64,
        players: usize,
    ) -> Result<Self, RollbackError> {
        config.validate()?;
        if players > config.num_players {
            return Err(ConfigError::MorePlayersThanSlots.into());
        }
        Ok(Self::joining(config, id, key, players))
    }

    /// Replaces the input prediction (the default repeats the last known input).
    pub fn set_predictor(&mut self, predictor: impl Fn(Option<I>) -> I + Send + Sync + 'static) {
        self.sync.set_predictor(Box::new(predictor));
    }

    /// The configuration.
    pub fn config(&self) -> &RollbackConfig {
        &self.config
    }

    /// This peer's id.
    pub fn id(&self) -> PeerId {
        self.me.id
    }

    /// This player's key (for reconnecting with [`RollbackSession::join`]).
    pub fn key(&self) -> u64 {
        self.me.key.key
    }

    /// Whether this peer left the session ([`RollbackEvent::Ended`]).
    pub fn has_ended(&self) -> bool {
        self.me.phase == SessionPhase::Ended
    }

    /// Whether frames run (not synchronizing or waiting for a snapshot).
    pub fn is_running(&self) -> bool {
        self.me.phase == SessionPhase::Running
    }

    /// Whether this session only watches.
    pub fn is_spectator(&self) -> bool {
        self.sync.spectator
    }

    /// The next frame to simulate.
    pub fn current_frame(&self) -> Frame {
        self.sync.current
    }

    /// Frames before this one have every input known.
    pub fn confirmed_frame(&self) -> Frame {
        self.sync.confirmed_frame()
    }

    /// The slots played on this peer.
    pub fn local_slots(&self) -> Vec<usize> {
        self.sync.local_slots()
    }

    /// The peer playing a slot, if any, and whether it is active now.
    pub fn slot_peer(&self, slot: usize) -> Option<PeerId> {
        self.sync
            .slots
            .get(slot)
            .filter(|s| s.state == SlotState::Occupied)
            .map(|s| s.peer)
    }

    /// Peers this session exchanges messages with.
    pub fn members(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.peers.members.keys().copied()
    }

    /// The host: the player peer with the lowest id.
    pub fn host(&self) -> Option<PeerId> {
        let me =
            (!self.sync.spectator && self.me.phase != SessionPhase::Joining).then_some(self.me.id);
        self.peers.host(me, &self.departure.lost)
    }

    /// Whether this peer is the host.
    pub(super) fn is_host(&self) -> bool {
        self.host() == Some(self.me.id)
    }

    /// Counters.
    pub fn stats(&self) -> RollbackStats {
        RollbackStats {
            frame: self.sync.current,
            confirmed: self.confirmed_frame(),
            rollbacks: self.sync.rollbacks,
            resimulated_frames: self.sync.resimulated,
            checksums_matched: self.checksums.matched,
            frames_ahead: self.time.frames_ahead,
        }
    }

    /// The final checksum of a confirmed frame, if it was a checksum frame
    /// and is still remembered.
    pub fn confirmed_checksum(&self, frame: Frame) -> Option<&Checksum> {
        self.checksums.confirmed(frame)
    }

    /// Changes the input delay while running. Frames already given an input
    /// keep it; a longer delay repeats the next input over the gap.
    pub fn set_input_delay(&mut self, delay: u32) {
        self.config.input_delay = delay.min(120);
    }

    /// Sets a local player's input for the next frame.
    pub fn add_local_input(&mut self, slot: usize, input: I) -> Result<(), RollbackError> {
        self.sync.add_local_input(slot, input)
    }

    /// Whether a local slot has no input yet for the frame the next step would
    /// give one to.
    fn local_input_wanted(&self) -> bool {
        self.sync
            .local_input_wanted(self.sync.current + self.config.input_delay)
    }

    /// Whether the session runs and the prediction window allows a frame.
    fn can_advance(&self) -> bool {
        if self.me.phase != SessionPhase::Running {
            return false;
        }
        let window = if self.sync.spectator {
            0
        } else {
            self.config.prediction_window
        };
        self.sync.can_advance(window)
    }

    /// Whether a frame can run now, the clock aside: for games that keep
    /// their own fixed timestep (the session's pacing is then theirs to do).
    pub fn frame_ready(&self) -> bool {
        self.me.phase == SessionPhase::Running && (self.can_advance() || self.local_input_wanted())
    }

    /// Whether the game should run a frame now: the session is running, the
    /// prediction window allows it, and the (time-synced) clock says so. Call
    /// [`RollbackSession::advance_frame`] each time it says yes.
    pub fn frame_due(&mut self, now: Instant) -> bool {
        if !self.can_advance() {
            // Stalled; but the local input for the next frame must go out
            // first, or lockstep peers would wait on each other for ever.
            return self.me.phase == SessionPhase::Running
                && self.time.next_frame_at.is_none_or(|t| now >= t)
                && self.local_input_wanted();
        }
        if self.late_join.snapshot_to_load.is_some() {
            return true;
        }
        let next = *self.time.next_frame_at.get_or_insert(now);
        if self.sync.spectator {
            let behind = self
                .sync
                .confirmed_until()
                .saturating_sub(self.sync.current);
            return now >= next || behind > 2 * (self.config.input_delay + 2);
        }
        now >= next || self.time.catching_up()
    }

    /// When [`RollbackSession::handle_timeout`] or
    /// [`RollbackSession::frame_due`] next want calling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let interrupt = self.next_silence();
        self.time
            .timers(self.config.interval(), self.can_advance(), interrupt)
            .into_iter()
            .filter_map(|(_, at)| at)
            .min()
    }

    /// Runs timers: resends inputs while no frame runs, reports interrupted peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.time.time_ms(now);
        if self.me.phase == SessionPhase::Running && !self.can_advance() {
            self.departure.stalled_since.get_or_insert(now);
        } else {
            self.departure.stalled_since = None;
        }
        let interrupt = self.next_silence();
        for (timer, at) in self
            .time
            .timers(self.config.interval(), self.can_advance(), interrupt)
        {
            match timer {
                Timer::Resend if at.is_none_or(|t| now >= t) => self.send_inputs(now),
                Timer::Interrupt => {
                    let silent = self.peers.check_silence(
                        now,
                        self.config.interrupt_timeout,
                        self.config.drop_timeout,
                        &self.departure.lost,
                        &mut self.events,
                    );
                    for peer in silent {
                        self.player_left(now, peer);
                    }
                    self.expire_accusations(now);
                    self.check_withheld(now);
                    self.check_disputes(now);
                }
                _ => {}
            }
        }
        self.check_synchronized(now);
    }

    /// When a member is next reported interrupted, or lost for its silence
    /// or for keeping its inputs back, or a disputed report of this peer's
    /// gives up.
    fn next_silence(&self) -> Option<Instant> {
        let silence = self.peers.next_silence(
            self.config.interrupt_timeout,
            self.config.drop_timeout,
            &self.departure.lost,
        );
        [silence, self.next_withheld(), self.next_dispute()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The transport connected a peer (or it was connected before the session
    /// was made, or its link came back).
    pub fn handle_peer_joined(&mut self, now: Instant, peer: PeerId) {
        self.peers.connect(peer);
        // A member linked but not yet introduced is timed from its link: one
        // that never introduces itself is silent, and dropped like one after
        // the drop timeout and `SYNC_GRACE` (the synchronization does not
        // wait for it for ever).
        if let Some(m) = self.peers.members.get_mut(&peer)
            && !m.introduced
            && m.last_heard.is_none()
        {
            m.last_heard = Some(now);
        }
        if self.me.phase == SessionPhase::Synchronizing {
            // Starts the keep-alive intros.
            self.time.last_sent.get_or_insert(now);
        }
        if self.tell_ex_member(peer) {
            return;
        }
        self.send_intro(peer);
    }

    /// Tells `peer` who this peer is and what it wants.
    pub(super) fn send_intro(&mut self, peer: PeerId) {
        if self.me.phase == SessionPhase::Ended {
            return;
        }
        let joiner = self.me.phase == SessionPhase::Joining;
        let intro = Msg::<I>::Intro(IntroMsg {
            key: self.me.key.verifier(),
            proof: joiner.then(|| self.me.key.prove(self.me.id)),
            attempt: if joiner { self.me.attempt } else { 0 },
            joiner,
            players: self.me.local_players as u8,
            num_players: self.config.num_players as u8,
        });
        self.peers.send(peer, &intro);
    }

    /// The transport lost a peer: it said goodbye ([`Leave::Quit`]) or went
    /// silent ([`Leave::Lost`]; it may be playing on behind a partition, see
    /// [`membership`](super::membership)).
    pub fn handle_peer_left(&mut self, now: Instant, peer: PeerId, how: Leave) {
        self.peers.disconnect(peer);
        self.admission.forget(peer);
        self.late_join.running.remove(&peer);
        if how == Leave::Quit && self.peers.members.contains_key(&peer) {
            self.membership.quit.insert(peer);
        }
        self.player_left(now, peer);
    }

    /// A message from a peer, on the channel it came.
    pub fn handle_message(&mut self, now: Instant, peer: PeerId, data: &[u8]) {
        self.time.time_ms(now);
        if self.me.phase == SessionPhase::Ended || self.rule_breakers.contains(&peer) {
            return;
        }
        let msg = match Msg::<I>::decode(data, &self.config.limits()) {
            Ok(m) => m,
            Err(e) => {
                self.misbehaved(peer, Misbehavior::Decode(e));
                return;
            }
        };
        self.peers.heard(now, peer, &mut self.events);
        let events_before = self.events.len();
        match msg {
            Msg::Inputs(body) => self.on_inputs(now, peer, body),
            Msg::Intro(body) => self.on_intro(now, peer, body),
            Msg::Admit(body) => self.on_admit(now, peer, body),
            Msg::Snapshot(body) => self.on_snapshot(now, peer, body),
            Msg::Lost(body) => self.on_lost(now, peer, body),
            Msg::Dropped(body) => self.on_dropped(now, peer, body),
            Msg::Checksum(body) => self.on_checksum(now, peer, body),
            Msg::Refuse(body) => self.on_refuse(now, peer, body),
        }
        self.heal_desyncs(now, events_before);
        self.check_synchronized(now);
    }

    /// Reports a peer that broke the protocol.
    pub(super) fn misbehaved(&mut self, peer: PeerId, reason: Misbehavior) {
        if self.rule_breakers.contains(&peer) {
            return;
        }
        self.rule_breakers.push_back(peer);
        if self.rule_breakers.len() > MAX_RULE_BREAKERS {
            self.rule_breakers.pop_front();
        }
        if let Some(now) = self.time.last {
            self.contest(now, peer);
        }
        self.events
            .push_back(RollbackEvent::PeerMisbehaved { peer, reason });
    }

    /// A start player's intro: once every one is in, frames run.
    pub(super) fn on_member_intro(&mut self, now: Instant, peer: PeerId, key: Verifier) {
        let Some(m) = self.peers.members.get_mut(&peer) else {
            return;
        };
        if m.introduced {
            return;
        }
        m.introduced = true;
        m.key = key;
        m.last_heard = Some(now);
        for &s in &m.slots {
            self.sync.slots[s].key = key;
        }
        self.events.push_back(RollbackEvent::Synchronized { peer });
        self.check_synchronized(now);
    }

    /// Starts running once every start player introduced itself or was
    /// agreed gone (one that never introduces itself is timed out as silent).
    fn check_synchronized(&mut self, now: Instant) {
        if self.me.phase == SessionPhase::Synchronizing
            && self
                .peers
                .members
                .iter()
                .all(|(p, m)| m.introduced || self.departure.lost.contains(p))
        {
            self.me.phase = SessionPhase::Running;
            self.time.next_frame_at = Some(now);
            self.events.push_back(RollbackEvent::Running { frame: 0 });
        }
    }

    /// Reports the checksum of the state saved at `frame` (after a
    /// [`Request::Save`]).
    pub fn set_checksum(&mut self, frame: Frame, checksum: Checksum) {
        self.checksums.set(frame, checksum);
    }

    /// Makes the checksums of final frames final, sending them to the
    /// members (a player does) and comparing them with theirs.
    fn finalize_checksums(&mut self, now: Instant) {
        let events_before = self.events.len();
        let msgs = self.checksums.finalize(
            self.sync.sim_base,
            self.config.checksum_interval,
            &mut self.events,
        );
        self.heal_desyncs(now, events_before);
        if self.sync.spectator || self.me.phase != SessionPhase::Running {
            return;
        }
        for body in msgs {
            let msg = Msg::<I>::Checksum(body);
            let peers: Vec<PeerId> = self.peers.members.keys().copied().collect();
            for p in peers {
                self.peers.send(p, &msg);
            }
        }
    }

    /// Runs one frame: takes the local inputs given with
    /// [`RollbackSession::add_local_input`], and returns what the game must do,
    /// rollback included. Fails with [`RollbackError::Stalled`] while the
    /// prediction window is used up: the local inputs were taken and sent, no
    /// frame ran.
    pub fn advance_frame(&mut self, now: Instant) -> Result<Vec<Request<I>>, RollbackError> {
        if self.me.phase != SessionPhase::Running {
            return Err(RollbackError::NotRunning);
        }
        self.sync.check_local_inputs()?;
        self.time.time_ms(now);
        // Local inputs, for the frame `input_delay` ahead.
        self.sync
            .take_local_inputs(self.sync.current + self.config.input_delay);
        if !self.can_advance() {
            self.send_inputs(now);
            return Err(RollbackError::Stalled);
        }
        self.finalize_checksums(now);
        if self.me.phase != SessionPhase::Running {
            return Err(RollbackError::NotRunning);
        }
        let mut requests = Vec::new();
        let initial_save = self.sync.take_initial_save();
        if let Some((frame, data)) = self.late_join.snapshot_to_load.take() {
            requests.push(Request::LoadSnapshot { frame, data });
            requests.push(Request::Save { frame });
        } else if initial_save {
            requests.push(Request::Save {
                frame: self.sync.current,
            });
        }
        self.sync.advance(&mut requests);
        self.departure.stalled_since = None;
        let acks: Vec<Frame> = self.peers.members.values().map(|m| m.acked).collect();
        self.sync.prune_logs(acks.into_iter());

        // Pace: next frame one interval on, stretched or shrunk by time sync.
        self.update_frames_ahead(now);
        self.time.pace(now, self.config.interval());

        self.check_caught_up();
        self.host_duties(now, &mut requests);
        self.send_inputs(now);
        Ok(requests)
    }

    /// Updates how far ahead of the playing members this peer runs. A member
    /// not heard for the interrupt timeout does not count: its frame,
    /// estimated on from its last report, would grow without it and make
    /// this peer run as fast as it can (and on alone, for ever).
    fn update_frames_ahead(&mut self, now: Instant) {
        let lost = &self.departure.lost;
        let remote = self
            .peers
            .members
            .iter()
            .filter(|(p, m)| !m.spectator && !m.interrupted && !lost.contains(p))
            .filter_map(|(_, m)| {
                let (frame, at) = m.remote_frame?;
                Some((frame, at, m.rtt.smoothed().unwrap_or_default()))
            });
        self.time
            .update_frames_ahead(now, self.sync.current, self.config.fps, remote);
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.peers.poll_transmit()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RollbackEvent> {
        self.events.pop_front()
    }
}
