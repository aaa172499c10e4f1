//! Rollback networking, sans-IO: a session for players and spectators that
//! turns local inputs and peers' messages into plain requests (save, load,
//! advance) for the game to carry out.
//!
//! The session is fed time, connection changes and the peers' messages, and
//! tells what to send ([`RollbackSession::poll_transmit`]), what happened
//! ([`RollbackSession::poll_event`]) and when a frame is due
//! ([`RollbackSession::frame_due`]). It paces frames itself: a peer that runs
//! ahead of the others slows down slightly, one that lags (or just joined)
//! catches up.
//!
//! Beyond GGRS it does late join and reconnect: a peer joining a running
//! session gets a state snapshot and the inputs since, then plays in step; a
//! player that drops and comes back (with the same key) gets its slot back.
//!
//! # Protocol in brief
//!
//! - Inputs go unreliably, every unacknowledged frame in every packet (up to
//!   64), XOR- and run-length-encoded; acks, the sender's frame and a clock
//!   echo for round-trip time ride along.
//! - The *host* is the player peer with the lowest id. It admits joiners: it
//!   picks slots and a start frame beyond any frame another peer can have
//!   confirmed, tells every peer, and sends the joiner a snapshot. It also
//!   feeds confirmed inputs to spectators.
//! - When a player leaves, every remaining player tells the others how far it
//!   has that player's inputs (and what they are); once all have reported, all
//!   agree that the player is disconnected from the frame after the furthest
//!   input anyone has. No confirmed frame ever changes.
//! - Checksums of confirmed frames are exchanged on an interval; parts are sent
//!   as hashes of their names, so a desync names what differs.
//!
//! # Example
//!
//! A sync test of a one-number game: every frame re-runs the last 4 and
//! compares checksums.
//!
//! ```
//! use gamenet_core::rollback::{Checksum, Request, RollbackConfig, RollbackSession};
//! use gamenet_core::Instant;
//! use std::collections::HashMap;
//!
//! let config = RollbackConfig { num_players: 2, ..RollbackConfig::default() };
//! let mut session = RollbackSession::<u8>::sync_test(config, 4).unwrap();
//! let (mut state, mut saved) = (0u64, HashMap::new());
//! for frame in 0..100u8 {
//!     session.add_local_input(0, frame % 3).unwrap();
//!     session.add_local_input(1, 1).unwrap();
//!     for request in session.advance_frame(Instant::now()).unwrap() {
//!         match request {
//!             Request::Save { frame } => {
//!                 saved.insert(frame, state);
//!                 session.set_checksum(frame, Checksum::total(state));
//!             }
//!             Request::Load { frame } => state = saved[&frame],
//!             Request::Advance { inputs, .. } => {
//!                 let sum: u64 = inputs.iter().map(|(i, _)| *i as u64).sum();
//!                 state = state.wrapping_mul(31).wrapping_add(sum);
//!             }
//!             _ => {}
//!         }
//!     }
//! }
//! assert!(session.poll_event().into_iter().all(|e| !matches!(
//!     e,
//!     gamenet_core::rollback::RollbackEvent::DesyncDetected { .. }
//! )));
//! assert!(session.stats().checksums_matched > 0);
//! ```

pub(crate) mod wire;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use thiserror::Error;

pub use crate::hash::part_id;
use crate::{Channel, Instant, PeerId, Transmit};
pub use wire::MAX_PLAYERS;
use wire::{InputRun, MAX_FRAMES_PER_MESSAGE, Msg, SlotEntry};

/// A simulation frame number; the first frame is 0.
pub type Frame = u32;

/// Frames of inputs kept behind the confirmed frame, for joiners and for
/// players that report a leaver's inputs.
const HISTORY: u32 = 240;
/// Most join requests a host keeps waiting.
const MAX_PENDING_JOINS: usize = 16;
/// Most reliable messages queued for a member that is not connected yet.
const MAX_PENDING_RELIABLE: usize = 256;
/// Confirmed checksums kept, local and remote.
const CHECKSUM_MEMORY: usize = 64;
/// Inputs further ahead of this peer's frame than this are not kept (an
/// honest peer is never that far ahead; the sender repeats them later).
const MAX_INPUT_LEAD: Frame = 512;
/// Most spectators a host admits.
const MAX_SPECTATORS: usize = 32;
/// Behind the others by more than this many frames, a peer runs frames
/// without waiting for the clock.
const CATCH_UP_FRAMES: f64 = 3.0;

/// An input of one player for one frame: plain bytes of a fixed size.
///
/// Implemented for unsigned integers and byte arrays; a game's input struct
/// implements it by writing its fields.
pub trait Input: Copy + PartialEq + Default + fmt::Debug + Send + Sync + 'static {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes the input into `out` (exactly `SIZE` bytes).
    fn write(&self, out: &mut [u8]);
    /// Reads an input from `bytes` (exactly `SIZE` bytes). Any bytes must give
    /// some input: they come from peers.
    fn read(bytes: &[u8]) -> Self;
}

macro_rules! int_input {
    ($($t:ty),*) => {$(
        impl Input for $t {
            const SIZE: usize = std::mem::size_of::<$t>();
            fn write(&self, out: &mut [u8]) {
                out.copy_from_slice(&self.to_le_bytes());
            }
            fn read(bytes: &[u8]) -> Self {
                let mut b = [0; std::mem::size_of::<$t>()];
                b.copy_from_slice(bytes);
                <$t>::from_le_bytes(b)
            }
        }
    )*};
}
int_input!(u8, u16, u32, u64);

impl<const N: usize> Input for [u8; N]
where
    [u8; N]: Default,
{
    const SIZE: usize = N;
    fn write(&self, out: &mut [u8]) {
        out.copy_from_slice(self);
    }
    fn read(bytes: &[u8]) -> Self {
        let mut b = [0; N];
        b.copy_from_slice(bytes);
        b
    }
}

/// How an input handed to the game came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputStatus {
    /// The player's real input.
    Confirmed,
    /// A guess; a rollback follows if the real one differs.
    Predicted,
    /// The slot has no player for this frame; the input is the default.
    Disconnected,
}

/// Who plays a slot, as given to [`RollbackSession::start`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlayerKind {
    /// A player on this peer.
    Local,
    /// A player on another peer.
    Remote(PeerId),
    /// Nobody yet: a peer joining later can take it.
    Open,
}

/// Settings of a rollback session; every peer must use the same.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackConfig {
    /// Player slots.
    pub num_players: usize,
    /// Simulation frames per second.
    pub fps: u32,
    /// Frames a peer may run ahead of the last confirmed frame, predicting;
    /// 0 is lockstep.
    pub prediction_window: u32,
    /// Frames between a local input and the frame it applies to.
    pub input_delay: u32,
    /// Confirmed frames between checksum exchanges; 0 turns them off.
    pub checksum_interval: u32,
    /// Silence after which a peer is reported interrupted.
    pub interrupt_timeout: Duration,
    /// How long a departed player's slot waits for that player to come back.
    pub reclaim_window: Duration,
    /// Extra frames between admitting a joiner and its first frame, to cover
    /// the snapshot transfer and catch-up.
    pub join_margin: u32,
    /// Largest state snapshot accepted, in bytes.
    pub max_snapshot_bytes: usize,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            num_players: 2,
            fps: 60,
            prediction_window: 8,
            input_delay: 2,
            checksum_interval: 16,
            interrupt_timeout: Duration::from_millis(500),
            reclaim_window: Duration::from_secs(60),
            join_margin: 30,
            max_snapshot_bytes: 8 << 20,
        }
    }
}

/// What the game must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Request<I> {
    /// Save the current state as the state at `frame` (before it is simulated),
    /// then report its checksum with [`RollbackSession::set_checksum`]. Keep at
    /// least `prediction_window + 2` saved states.
    Save {
        /// The frame.
        frame: Frame,
    },
    /// Restore the state saved at `frame`.
    Load {
        /// The frame.
        frame: Frame,
    },
    /// Simulate `frame` with one input per slot.
    Advance {
        /// The frame.
        frame: Frame,
        /// Input and status per slot. The simulation may depend on inputs and
        /// on whether a slot is disconnected, not on confirmed vs predicted.
        inputs: Vec<(I, InputStatus)>,
    },
    /// Replace the whole state with a snapshot from the host (late join).
    LoadSnapshot {
        /// The frame the snapshot is the state at.
        frame: Frame,
        /// The bytes the host's game gave [`RollbackSession::submit_snapshot`].
        data: Bytes,
    },
    /// Serialize the state saved at `frame` and give it to
    /// [`RollbackSession::submit_snapshot`]; a peer is joining.
    Snapshot {
        /// The frame.
        frame: Frame,
    },
}

/// One named part of a checksum (say, one component type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumPart {
    /// The part's name, the same on every peer.
    pub name: Cow<'static, str>,
    /// Its checksum.
    pub value: u64,
}

/// A state's checksum: the whole, and optionally by part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checksum {
    /// Checksum of the whole state.
    pub total: u64,
    /// Checksums of parts of the state, for desync reports.
    pub parts: Vec<ChecksumPart>,
}

impl Checksum {
    /// A checksum without parts.
    pub fn total(total: u64) -> Self {
        Self {
            total,
            parts: Vec::new(),
        }
    }
}

/// What happened in a session.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum RollbackEvent {
    /// Waiting for this peer before the first frame.
    Synchronizing {
        /// The peer.
        peer: PeerId,
    },
    /// This peer is ready.
    Synchronized {
        /// The peer.
        peer: PeerId,
    },
    /// All peers are ready (or the snapshot is in): frames run from `frame`.
    Running {
        /// The first frame this peer runs.
        frame: Frame,
    },
    /// Nothing heard from this peer for the interrupt timeout.
    PeerInterrupted {
        /// The peer.
        peer: PeerId,
    },
    /// The peer is heard again.
    PeerResumed {
        /// The peer.
        peer: PeerId,
    },
    /// A peer joined (or came back), playing `slots` from `frame`.
    PlayerJoined {
        /// The peer.
        peer: PeerId,
        /// Its slots; empty for a spectator.
        slots: Vec<usize>,
        /// Its first frame.
        frame: Frame,
    },
    /// A joined peer's first inputs arrived; on the joiner itself, it has
    /// caught up with the others.
    JoinerSynced {
        /// The peer.
        peer: PeerId,
    },
    /// A player left; its slots are disconnected from `frame` on, the same on
    /// every peer.
    Disconnected {
        /// The peer.
        peer: PeerId,
        /// Its slots.
        slots: Vec<usize>,
        /// The first frame without it.
        frame: Frame,
    },
    /// A confirmed frame's checksum differs from a peer's (or, in sync-test
    /// mode, from an earlier run of the same frame).
    DesyncDetected {
        /// The frame.
        frame: Frame,
        /// The peer compared with (this peer in sync-test mode).
        peer: PeerId,
        /// Local total checksum.
        local: u64,
        /// Remote total checksum.
        remote: u64,
        /// Names of the checksum parts that differ.
        parts: Vec<String>,
    },
    /// The host refused to let this peer join.
    JoinRefused {
        /// Why.
        reason: String,
    },
    /// A peer broke the protocol; drop it.
    PeerMisbehaved {
        /// The peer.
        peer: PeerId,
        /// What it did.
        error: String,
    },
}

/// Why a session call failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum RollbackError {
    /// The session is not running yet (synchronizing or joining).
    #[error("the session is not running yet")]
    NotRunning,
    /// The prediction window is used up: waiting for remote inputs.
    #[error("waiting for remote inputs")]
    Stalled,
    /// The slot is not played on this peer.
    #[error("slot {0} is not a local player")]
    NotLocal(usize),
    /// A local player's input for this frame was not given.
    #[error("no input given for local slot {0}")]
    MissingLocalInput(usize),
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Counters of a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RollbackStats {
    /// The next frame to simulate.
    pub frame: Frame,
    /// Frames before this one have every input known.
    pub confirmed: Frame,
    /// Rollbacks done.
    pub rollbacks: u64,
    /// Frames re-simulated by rollbacks.
    pub resimulated_frames: u64,
    /// Confirmed checksums compared with a peer's and found equal.
    pub checksums_matched: u64,
    /// Frames this peer runs ahead of the others (negative: behind), smoothed.
    pub frames_ahead: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Player,
    Spectator,
    SyncTest { distance: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Synchronizing,
    Joining,
    Running,
}

/// Inputs of one slot from a base frame on.
#[derive(Debug, Clone)]
struct InputLog<I> {
    base: Frame,
    entries: VecDeque<Option<I>>,
}

impl<I: Input> InputLog<I> {
    fn new(base: Frame) -> Self {
        Self {
            base,
            entries: VecDeque::new(),
        }
    }
    fn end(&self) -> Frame {
        self.base + self.entries.len() as Frame
    }
    fn get(&self, f: Frame) -> Option<Option<I>> {
        if f < self.base {
            return None;
        }
        self.entries.get((f - self.base) as usize).copied()
    }
    fn last_input(&self) -> Option<I> {
        self.entries.back().copied().flatten()
    }
    fn push(&mut self, f: Frame, v: Option<I>) {
        if f == self.end() {
            self.entries.push_back(v);
        }
    }
    fn prune_before(&mut self, f: Frame) {
        while self.base < f && !self.entries.is_empty() {
            self.entries.pop_front();
            self.base += 1;
        }
    }
    fn reset(&mut self, base: Frame) {
        self.entries.clear();
        self.base = base;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlotState {
    Free,
    Occupied,
    Vacant,
}

#[derive(Debug, Clone)]
struct Slot<I> {
    state: SlotState,
    peer: PeerId,
    key: u64,
    local: bool,
    active_from: Frame,
    until: Option<Frame>,
    released_at: Option<Instant>,
    log: InputLog<I>,
}

impl<I: Input> Slot<I> {
    fn free() -> Self {
        Self {
            state: SlotState::Free,
            peer: PeerId(0),
            key: 0,
            local: false,
            active_from: Frame::MAX,
            until: None,
            released_at: None,
            log: InputLog::new(0),
        }
    }

    fn active_at(&self, f: Frame) -> bool {
        f >= self.active_from && self.until.is_none_or(|u| f < u)
    }

    /// First frame whose input for this slot is not known, `Frame::MAX` if all are.
    fn first_unknown(&self) -> Frame {
        if self.active_from == Frame::MAX {
            return Frame::MAX;
        }
        let start = self.log.end().max(self.active_from);
        match self.until {
            Some(u) if start >= u => Frame::MAX,
            _ => start,
        }
    }

    fn entry(&self) -> SlotEntry {
        SlotEntry {
            state: match self.state {
                SlotState::Free => 0,
                SlotState::Occupied => 1,
                SlotState::Vacant => 2,
            },
            peer: self.peer,
            key: self.key,
            active_from: self.active_from,
            until: self.until,
        }
    }
}

#[derive(Debug, Clone)]
struct Member {
    key: u64,
    slots: Vec<usize>,
    spectator: bool,
    connected: bool,
    introduced: bool,
    /// Frames of my inputs (or feed) below this the member has.
    acked: Frame,
    last_heard: Option<Instant>,
    interrupted: bool,
    remote_frame: Option<(Frame, Instant)>,
    echo: Option<(u32, Instant)>,
    rtt: Option<Duration>,
    pending: Vec<Bytes>,
    synced: bool,
}

impl Member {
    fn new(key: u64, slots: Vec<usize>, spectator: bool, acked: Frame) -> Self {
        Self {
            key,
            slots,
            spectator,
            connected: false,
            introduced: false,
            acked,
            last_heard: None,
            interrupted: false,
            remote_frame: None,
            echo: None,
            rtt: None,
            pending: Vec::new(),
            synced: false,
        }
    }
}

#[derive(Debug, Clone)]
struct JoinRequest {
    peer: PeerId,
    key: u64,
    players: usize,
}

#[derive(Debug)]
struct LossRound<I> {
    slots: Vec<usize>,
    key: u64,
    reports: BTreeMap<PeerId, InputRun<I>>,
}

struct PendingSnapshot {
    peer: PeerId,
    frame: Frame,
    from: Frame,
    slots: Vec<usize>,
}

/// A peer's checksum of a frame: the peer, the total, and parts by id.
type RemoteChecksum = (PeerId, u64, Vec<(u64, u64)>);

/// Input prediction: the input to assume for a slot whose input is not known,
/// given that slot's last known input.
pub type Predictor<I> = Box<dyn Fn(Option<I>) -> I + Send + Sync>;

/// A rollback session of one peer: a player (one or more local slots), a
/// spectator, or a local sync test.
pub struct RollbackSession<I: Input> {
    config: RollbackConfig,
    mode: Mode,
    phase: Phase,
    id: PeerId,
    key: u64,
    local_players: usize,
    slots: Vec<Slot<I>>,
    members: BTreeMap<PeerId, Member>,
    connected: BTreeSet<PeerId>,
    pending_input: Vec<Option<I>>,
    current: Frame,
    sim_base: Frame,
    sim_inputs: VecDeque<Vec<(I, InputStatus)>>,
    initial_save: bool,
    snapshot_to_load: Option<(Frame, Bytes)>,
    epoch: Option<Instant>,
    next_frame_at: Option<Instant>,
    last_sent: Option<Instant>,
    joins: Vec<JoinRequest>,
    pending_snapshots: Vec<PendingSnapshot>,
    rounds: BTreeMap<PeerId, LossRound<I>>,
    lost: BTreeSet<PeerId>,
    deferred_lost: Vec<(PeerId, PeerId, InputRun<I>)>,
    departed: BTreeSet<PeerId>,
    saved_checksums: BTreeMap<Frame, Checksum>,
    local_checksums: BTreeMap<Frame, Checksum>,
    remote_checksums: BTreeMap<Frame, Vec<RemoteChecksum>>,
    synctest_checksums: BTreeMap<Frame, Checksum>,
    joined_at: Option<Frame>,
    predictor: Predictor<I>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<RollbackEvent>,
    stats: RollbackStats,
}

impl<I: Input> fmt::Debug for RollbackSession<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RollbackSession")
            .field("id", &self.id)
            .field("mode", &self.mode)
            .field("phase", &self.phase)
            .field("frame", &self.current)
            .finish_non_exhaustive()
    }
}

fn validate(config: &RollbackConfig) -> Result<(), RollbackError> {
    if config.num_players == 0 || config.num_players > MAX_PLAYERS {
        return Err(RollbackError::InvalidConfig("num_players must be 1 to 64"));
    }
    if config.fps == 0 {
        return Err(RollbackError::InvalidConfig("fps must be positive"));
    }
    if config.input_delay > 120 || config.prediction_window > 120 {
        return Err(RollbackError::InvalidConfig(
            "input_delay and prediction_window must be at most 120",
        ));
    }
    Ok(())
}

impl<I: Input> RollbackSession<I> {
    fn empty(config: RollbackConfig, mode: Mode, id: PeerId, key: u64) -> Self {
        let slots = (0..config.num_players).map(|_| Slot::free()).collect();
        Self {
            pending_input: vec![None; config.num_players],
            config,
            mode,
            phase: Phase::Synchronizing,
            id,
            key,
            local_players: 0,
            slots,
            members: BTreeMap::new(),
            connected: BTreeSet::new(),
            current: 0,
            sim_base: 0,
            sim_inputs: VecDeque::new(),
            initial_save: true,
            snapshot_to_load: None,
            epoch: None,
            next_frame_at: None,
            last_sent: None,
            joins: Vec::new(),
            pending_snapshots: Vec::new(),
            rounds: BTreeMap::new(),
            lost: BTreeSet::new(),
            deferred_lost: Vec::new(),
            departed: BTreeSet::new(),
            saved_checksums: BTreeMap::new(),
            local_checksums: BTreeMap::new(),
            remote_checksums: BTreeMap::new(),
            synctest_checksums: BTreeMap::new(),
            joined_at: None,
            predictor: Box::new(|last| last.unwrap_or_default()),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: RollbackStats::default(),
        }
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
        validate(&config)?;
        if players.len() != config.num_players {
            return Err(RollbackError::InvalidConfig(
                "one player kind per slot is needed",
            ));
        }
        let mut s = Self::empty(config, Mode::Player, id, key);
        for (i, kind) in players.iter().enumerate() {
            if *kind == PlayerKind::Open {
                continue;
            }
            let slot = &mut s.slots[i];
            slot.state = SlotState::Occupied;
            slot.active_from = 0;
            match kind {
                PlayerKind::Local => {
                    slot.local = true;
                    slot.peer = id;
                    slot.key = key;
                    s.local_players += 1;
                }
                PlayerKind::Remote(peer) => {
                    slot.peer = *peer;
                    s.members
                        .entry(*peer)
                        .or_insert_with(|| Member::new(0, Vec::new(), false, 0))
                        .slots
                        .push(i);
                }
                PlayerKind::Open => {}
            }
        }
        if s.members.contains_key(&id) {
            return Err(RollbackError::InvalidConfig("a remote player has our id"));
        }
        if s.members.is_empty() {
            s.phase = Phase::Running;
            s.events.push_back(RollbackEvent::Running { frame: 0 });
        } else {
            for &peer in s.members.keys() {
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
        validate(&config)?;
        if players > config.num_players {
            return Err(RollbackError::InvalidConfig("more players than slots"));
        }
        let mode = if players == 0 {
            Mode::Spectator
        } else {
            Mode::Player
        };
        let mut s = Self::empty(config, mode, id, key);
        s.local_players = players;
        s.phase = Phase::Joining;
        s.initial_save = false;
        Ok(s)
    }

    /// A local sync test: every slot local; each frame, the last `distance`
    /// frames are loaded and simulated again, and a checksum that differs from
    /// the first run's raises [`RollbackEvent::DesyncDetected`].
    pub fn sync_test(config: RollbackConfig, distance: u32) -> Result<Self, RollbackError> {
        validate(&config)?;
        if distance == 0 {
            return Err(RollbackError::InvalidConfig(
                "sync test distance must be positive",
            ));
        }
        let mut s = Self::empty(config, Mode::SyncTest { distance }, PeerId(0), 0);
        for slot in &mut s.slots {
            slot.state = SlotState::Occupied;
            slot.active_from = 0;
            slot.local = true;
        }
        s.local_players = s.slots.len();
        s.phase = Phase::Running;
        s.events.push_back(RollbackEvent::Running { frame: 0 });
        Ok(s)
    }

    /// Replaces the input prediction (the default repeats the last known input).
    pub fn set_predictor(&mut self, predictor: impl Fn(Option<I>) -> I + Send + Sync + 'static) {
        self.predictor = Box::new(predictor);
    }

    /// The configuration.
    pub fn config(&self) -> &RollbackConfig {
        &self.config
    }

    /// This peer's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// This player's key (for reconnecting with [`RollbackSession::join`]).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// Whether frames run (not synchronizing or waiting for a snapshot).
    pub fn is_running(&self) -> bool {
        self.phase == Phase::Running
    }

    /// Whether this session only watches.
    pub fn is_spectator(&self) -> bool {
        self.mode == Mode::Spectator
    }

    /// The next frame to simulate.
    pub fn current_frame(&self) -> Frame {
        self.current
    }

    /// Frames before this one have every input known.
    pub fn confirmed_frame(&self) -> Frame {
        self.confirmed_until().min(self.current)
    }

    /// The slots played on this peer.
    pub fn local_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].local)
            .collect()
    }

    /// The peer playing a slot, if any, and whether it is active now.
    pub fn slot_peer(&self, slot: usize) -> Option<PeerId> {
        self.slots
            .get(slot)
            .filter(|s| s.state == SlotState::Occupied)
            .map(|s| s.peer)
    }

    /// Peers this session exchanges messages with.
    pub fn members(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.members.keys().copied()
    }

    /// The host: the player peer with the lowest id.
    pub fn host(&self) -> Option<PeerId> {
        let mut best = if self.mode == Mode::Player && self.phase != Phase::Joining {
            Some(self.id)
        } else {
            None
        };
        for (&p, m) in &self.members {
            if !m.spectator && !self.lost.contains(&p) && best.is_none_or(|b| p < b) {
                best = Some(p);
            }
        }
        best
    }

    /// Counters.
    pub fn stats(&self) -> RollbackStats {
        let mut s = self.stats.clone();
        s.frame = self.current;
        s.confirmed = self.confirmed_frame();
        s
    }

    /// The final checksum of a confirmed frame, if it was a checksum frame
    /// and is still remembered.
    pub fn confirmed_checksum(&self, frame: Frame) -> Option<&Checksum> {
        self.local_checksums.get(&frame)
    }

    /// Changes the input delay while running. Frames already given an input
    /// keep it; a longer delay repeats the next input over the gap.
    pub fn set_input_delay(&mut self, delay: u32) {
        self.config.input_delay = delay.min(120);
    }

    /// Sets a local player's input for the next frame.
    pub fn add_local_input(&mut self, slot: usize, input: I) -> Result<(), RollbackError> {
        match self.slots.get(slot) {
            Some(s) if s.local => {
                self.pending_input[slot] = Some(input);
                Ok(())
            }
            _ => Err(RollbackError::NotLocal(slot)),
        }
    }

    fn time_ms(&mut self, now: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_millis() as u32
    }

    fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.config.fps as f64)
    }

    /// First frame some slot's input is unknown for (`Frame::MAX`: none).
    fn confirmed_until(&self) -> Frame {
        self.slots
            .iter()
            .map(|s| {
                if self.mode == Mode::Spectator {
                    s.log.end()
                } else {
                    s.first_unknown()
                }
            })
            .min()
            .unwrap_or(Frame::MAX)
    }

    fn remote_confirmed_until(&self) -> Frame {
        if self.mode == Mode::Spectator {
            return self.confirmed_until();
        }
        self.slots
            .iter()
            .filter(|s| !s.local)
            .map(Slot::first_unknown)
            .min()
            .unwrap_or(Frame::MAX)
    }

    /// Whether a local slot has no input yet for the frame the next step would
    /// give one to.
    fn local_input_wanted(&self) -> bool {
        let target = self.current + self.config.input_delay;
        self.mode == Mode::Player
            && self
                .slots
                .iter()
                .any(|s| s.local && s.active_at(target) && s.log.end().max(s.active_from) <= target)
    }

    fn can_advance(&self) -> bool {
        if self.phase != Phase::Running {
            return false;
        }
        let window = match self.mode {
            Mode::Player => self.config.prediction_window,
            Mode::Spectator | Mode::SyncTest { .. } => 0,
        };
        let until = self.remote_confirmed_until();
        until == Frame::MAX || self.current < until.saturating_add(window)
    }

    /// Whether a frame can run now, the clock aside: for games that keep
    /// their own fixed timestep (the session's pacing is then theirs to do).
    pub fn frame_ready(&self) -> bool {
        self.phase == Phase::Running && (self.can_advance() || self.local_input_wanted())
    }

    /// Whether the game should run a frame now: the session is running, the
    /// prediction window allows it, and the (time-synced) clock says so. Call
    /// [`RollbackSession::advance_frame`] each time it says yes.
    pub fn frame_due(&mut self, now: Instant) -> bool {
        if !self.can_advance() {
            // Stalled; but the local input for the next frame must go out
            // first, or lockstep peers would wait on each other for ever.
            return self.phase == Phase::Running
                && self.next_frame_at.is_none_or(|t| now >= t)
                && self.local_input_wanted();
        }
        if self.snapshot_to_load.is_some() {
            return true;
        }
        let next = *self.next_frame_at.get_or_insert(now);
        if self.mode == Mode::Spectator {
            let behind = self.confirmed_until().saturating_sub(self.current);
            return now >= next || behind > 2 * (self.config.input_delay + 2);
        }
        now >= next || self.stats.frames_ahead < -CATCH_UP_FRAMES
    }

    /// When [`RollbackSession::handle_timeout`] or
    /// [`RollbackSession::frame_due`] next want calling.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let resend = self.last_sent.map(|t| t + self.interval());
        let frame = if self.can_advance() {
            self.next_frame_at.or(self.epoch)
        } else {
            None
        };
        let interrupt = self
            .members
            .values()
            .filter(|m| !m.interrupted)
            .filter_map(|m| m.last_heard)
            .min()
            .map(|t| t + self.config.interrupt_timeout);
        [resend, frame, interrupt].into_iter().flatten().min()
    }

    /// Runs timers: resends inputs while no frame runs, reports interrupted peers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.time_ms(now);
        if self.last_sent.is_none_or(|t| now >= t + self.interval()) {
            self.send_inputs(now);
        }
        let timeout = self.config.interrupt_timeout;
        for (&peer, m) in &mut self.members {
            if let Some(heard) = m.last_heard
                && !m.interrupted
                && now >= heard + timeout
            {
                m.interrupted = true;
                self.events
                    .push_back(RollbackEvent::PeerInterrupted { peer });
            }
        }
    }

    /// The transport connected a peer (or it was connected before the session
    /// was made).
    pub fn handle_peer_joined(&mut self, _now: Instant, peer: PeerId) {
        self.connected.insert(peer);
        if let Some(m) = self.members.get_mut(&peer) {
            m.connected = true;
            let pending = std::mem::take(&mut m.pending);
            for data in pending {
                self.transmits.push_back(Transmit {
                    peer,
                    channel: Channel::Reliable,
                    data,
                });
            }
        }
        if matches!(self.mode, Mode::SyncTest { .. }) {
            return;
        }
        let intro = Msg::<I>::Intro {
            key: self.key,
            joiner: self.phase == Phase::Joining,
            players: self.local_players as u8,
            num_players: self.config.num_players as u8,
        };
        self.send_to(peer, &intro);
    }

    /// The transport lost a peer.
    pub fn handle_peer_left(&mut self, now: Instant, peer: PeerId) {
        self.connected.remove(&peer);
        if self.departed.len() < 1024 {
            self.departed.insert(peer);
        }
        self.joins.retain(|j| j.peer != peer);
        self.pending_snapshots.retain(|p| p.peer != peer);
        let Some(member) = self.members.get(&peer) else {
            return;
        };
        if member.spectator || member.slots.is_empty() {
            self.members.remove(&peer);
            return;
        }
        self.begin_loss_round(now, peer);
        self.try_finish_rounds(now);
    }

    /// A message from a peer, on the channel it came.
    pub fn handle_message(&mut self, now: Instant, peer: PeerId, data: &[u8]) {
        self.time_ms(now);
        let msg = match Msg::<I>::decode(data, self.config.max_snapshot_bytes) {
            Ok(m) => m,
            Err(e) => {
                self.misbehaved(peer, format!("undecodable rollback message: {e}"));
                return;
            }
        };
        if let Some(m) = self.members.get_mut(&peer) {
            m.last_heard = Some(now);
            if m.interrupted {
                m.interrupted = false;
                self.events.push_back(RollbackEvent::PeerResumed { peer });
            }
        }
        match msg {
            Msg::Inputs {
                ack,
                frame,
                time_ms,
                echo_ms,
                echo_hold_ms,
                feed,
                run,
            } => self.on_inputs(
                now,
                peer,
                ack,
                frame,
                (time_ms, echo_ms, echo_hold_ms),
                feed,
                run,
            ),
            Msg::Intro {
                key,
                joiner,
                players,
                num_players,
            } => self.on_intro(
                now,
                peer,
                key,
                joiner,
                players as usize,
                num_players as usize,
            ),
            Msg::Admit {
                peer: joiner,
                key,
                slots,
                from,
                snapshot,
            } => self.on_admit(now, peer, joiner, key, slots, from, snapshot),
            Msg::Snapshot {
                frame,
                from,
                your_slots,
                table,
                spectators,
                runs,
                data,
            } => self.on_snapshot(
                now, peer, frame, from, your_slots, table, spectators, runs, data,
            ),
            Msg::Lost { peer: gone, run } => self.on_lost(now, peer, gone, run),
            Msg::Checksum {
                frame,
                total,
                parts,
            } => self.on_checksum(peer, frame, total, parts),
            Msg::Refuse { reason } => {
                if self.phase == Phase::Joining {
                    self.events.push_back(RollbackEvent::JoinRefused { reason });
                }
            }
        }
    }

    fn misbehaved(&mut self, peer: PeerId, error: String) {
        self.events
            .push_back(RollbackEvent::PeerMisbehaved { peer, error });
    }

    #[allow(clippy::too_many_arguments)]
    fn on_inputs(
        &mut self,
        now: Instant,
        peer: PeerId,
        ack: Frame,
        frame: Frame,
        clock: (u32, u32, u16),
        feed: bool,
        run: InputRun<I>,
    ) {
        let my_ms = self.time_ms(now);
        let lost = self.lost.contains(&peer);
        let Some(m) = self.members.get_mut(&peer) else {
            return;
        };
        m.acked = m.acked.max(ack);
        m.remote_frame = Some((frame, now));
        m.echo = Some((clock.0, now));
        if clock.1 != 0 || clock.2 != 0 {
            let rtt = my_ms.wrapping_sub(clock.1).saturating_sub(clock.2 as u32);
            if rtt < 10_000 {
                let rtt = Duration::from_millis(rtt as u64);
                m.rtt = Some(match m.rtt {
                    Some(old) => (old * 7 + rtt) / 8,
                    None => rtt,
                });
            }
        }
        if lost || run.records.is_empty() || (self.mode == Mode::Spectator) != feed {
            return;
        }
        let slots: Vec<usize> = run.slots.iter().map(|&s| s as usize).collect();
        if slots.iter().any(|&s| s >= self.slots.len())
            || run.records.iter().any(|r| r.len() != slots.len())
        {
            self.misbehaved(peer, "inputs for slots the session does not have".into());
            return;
        }
        // A feed carries the confirmed inputs of every slot, from the host to
        // a spectator; otherwise the sender's own slots.
        if (feed && slots.len() != self.slots.len()) || (!feed && m.slots != slots) {
            return;
        }
        let first_input = !m.synced;
        let mut got_any = false;
        let horizon = self.current.saturating_add(MAX_INPUT_LEAD);
        for (k, &s) in slots.iter().enumerate() {
            let slot = &mut self.slots[s];
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
        if got_any && first_input && !feed && self.phase == Phase::Running {
            if let Some(m) = self.members.get_mut(&peer) {
                m.synced = true;
            }
            if self.joined_members_wait(peer) {
                self.events.push_back(RollbackEvent::JoinerSynced { peer });
            }
        }
    }

    /// Whether `peer` joined after the start (so its first inputs are news).
    fn joined_members_wait(&self, peer: PeerId) -> bool {
        self.members
            .get(&peer)
            .and_then(|m| m.slots.first())
            .is_some_and(|&s| self.slots[s].active_from > 0)
    }

    fn on_intro(
        &mut self,
        now: Instant,
        peer: PeerId,
        key: u64,
        joiner: bool,
        players: usize,
        num_players: usize,
    ) {
        if num_players != self.config.num_players {
            self.misbehaved(
                peer,
                format!(
                    "session of {num_players} players, ours has {}",
                    self.config.num_players
                ),
            );
            return;
        }
        if joiner {
            if self.mode != Mode::Player || self.phase == Phase::Joining {
                return;
            }
            if self.members.contains_key(&peer) {
                return;
            }
            self.joins.retain(|j| j.peer != peer);
            if self.joins.len() >= MAX_PENDING_JOINS {
                self.send_to(
                    peer,
                    &Msg::<I>::Refuse {
                        reason: "too many joins pending".into(),
                    },
                );
                return;
            }
            self.joins.push(JoinRequest { peer, key, players });
            return;
        }
        let Some(m) = self.members.get_mut(&peer) else {
            return;
        };
        if m.introduced {
            return;
        }
        m.introduced = true;
        m.key = key;
        m.last_heard = Some(now);
        for &s in &m.slots {
            self.slots[s].key = key;
        }
        self.events.push_back(RollbackEvent::Synchronized { peer });
        if self.phase == Phase::Synchronizing
            && self
                .members
                .iter()
                .all(|(p, m)| m.introduced || self.lost.contains(p))
        {
            self.phase = Phase::Running;
            self.next_frame_at = Some(now);
            self.events.push_back(RollbackEvent::Running { frame: 0 });
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_admit(
        &mut self,
        now: Instant,
        from_peer: PeerId,
        joiner: PeerId,
        key: u64,
        slots: Vec<u8>,
        from: Frame,
        snapshot: Frame,
    ) {
        if self.phase == Phase::Joining || self.mode == Mode::Spectator {
            return;
        }
        if self.members.get(&from_peer).is_none_or(|m| m.spectator) {
            return;
        }
        let slots: Vec<usize> = slots.into_iter().map(usize::from).collect();
        if joiner == self.id
            || self.members.contains_key(&joiner)
            || slots
                .iter()
                .any(|&s| s >= self.slots.len() || self.slots[s].state == SlotState::Occupied)
            || from < self.sim_base
        {
            self.misbehaved(from_peer, format!("admit of {joiner} cannot apply here"));
            return;
        }
        self.apply_admit(now, joiner, key, &slots, from, snapshot);
    }

    fn apply_admit(
        &mut self,
        now: Instant,
        joiner: PeerId,
        key: u64,
        slots: &[usize],
        from: Frame,
        snapshot: Frame,
    ) {
        for &s in slots {
            let slot = &mut self.slots[s];
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
        m.connected = self.connected.contains(&joiner);
        m.introduced = true;
        self.members.insert(joiner, m);
        self.joins.retain(|j| j.peer != joiner);
        self.events.push_back(RollbackEvent::PlayerJoined {
            peer: joiner,
            slots: slots.to_vec(),
            frame: from,
        });
        self.replay_deferred(now);
    }

    fn replay_deferred(&mut self, now: Instant) {
        let deferred = std::mem::take(&mut self.deferred_lost);
        for (from, gone, run) in deferred {
            self.on_lost(now, from, gone, run);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn on_snapshot(
        &mut self,
        now: Instant,
        peer: PeerId,
        frame: Frame,
        from: Frame,
        your_slots: Vec<u8>,
        table: Vec<SlotEntry>,
        spectators: Vec<(PeerId, u64)>,
        runs: Vec<InputRun<I>>,
        data: Vec<u8>,
    ) {
        if self.phase != Phase::Joining {
            return;
        }
        let your: Vec<usize> = your_slots.iter().map(|&s| s as usize).collect();
        if table.len() != self.slots.len()
            || your.len() != self.local_players
            || your.iter().any(|&s| s >= table.len())
            || from < frame
        {
            self.misbehaved(peer, "snapshot does not fit this session".into());
            return;
        }
        for (i, e) in table.iter().enumerate() {
            let slot = &mut self.slots[i];
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
            if !slot.local && slot.peer != self.id {
                let member = self
                    .members
                    .entry(slot.peer)
                    .or_insert_with(|| Member::new(e.key, Vec::new(), false, from));
                member.slots.push(i);
            }
        }
        for (p, k) in spectators {
            if p != self.id {
                self.members
                    .entry(p)
                    .or_insert_with(|| Member::new(k, Vec::new(), true, from));
            }
        }
        if self.mode == Mode::Spectator {
            for slot in &mut self.slots {
                slot.log.reset(frame);
            }
        } else {
            for run in runs {
                for (k, &s) in run.slots.iter().enumerate() {
                    let Some(slot) = self.slots.get_mut(s as usize) else {
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
        let connected = self.connected.clone();
        for (p, m) in &mut self.members {
            m.connected = connected.contains(p);
            m.introduced = true;
            m.last_heard = Some(now);
            m.synced = true;
        }
        self.current = frame;
        self.sim_base = frame;
        self.sim_inputs.clear();
        self.snapshot_to_load = Some((frame, Bytes::from(data)));
        self.joined_at = Some(from);
        self.phase = Phase::Running;
        self.next_frame_at = Some(now);
        // Until its inputs arrive, assume the host is where it was when it
        // admitted us, so catching up starts at once.
        let host_frame = from.saturating_sub(self.config.input_delay + self.config.join_margin);
        if let Some(m) = self.members.get_mut(&peer) {
            m.remote_frame = Some((host_frame, now));
        }
        self.events.push_back(RollbackEvent::Running { frame });
        self.replay_deferred(now);
        // Peers that left while the snapshot travelled.
        let gone: Vec<PeerId> = self
            .members
            .keys()
            .copied()
            .filter(|p| self.departed.contains(p))
            .collect();
        for p in gone {
            self.handle_peer_left(now, p);
        }
    }

    fn begin_loss_round(&mut self, now: Instant, gone: PeerId) {
        if self.rounds.contains_key(&gone) {
            return;
        }
        let Some(m) = self.members.get(&gone) else {
            return;
        };
        let slots = m.slots.clone();
        let key = m.key;
        self.lost.insert(gone);
        let run = self.report_run(&slots);
        let mut round = LossRound {
            slots,
            key,
            reports: BTreeMap::new(),
        };
        round.reports.insert(self.id, run.clone());
        self.rounds.insert(gone, round);
        let msg = Msg::Lost { peer: gone, run };
        let others: Vec<PeerId> = self
            .members
            .iter()
            .filter(|(p, m)| !m.spectator && **p != gone && !self.lost.contains(p))
            .map(|(p, _)| *p)
            .collect();
        for p in others {
            self.send_to(p, &msg);
        }
        let _ = now;
    }

    fn report_run(&self, slots: &[usize]) -> InputRun<I> {
        let end = slots
            .iter()
            .map(|&s| self.slots[s].log.end())
            .min()
            .unwrap_or(0);
        let base = slots
            .iter()
            .map(|&s| self.slots[s].log.base)
            .max()
            .unwrap_or(0);
        let start = base.max(end.saturating_sub(2 * HISTORY)).min(end);
        let records = (start..end)
            .map(|f| {
                slots
                    .iter()
                    .map(|&s| self.slots[s].log.get(f).flatten())
                    .collect()
            })
            .collect();
        InputRun {
            start,
            slots: slots.iter().map(|&s| s as u8).collect(),
            records,
        }
    }

    fn on_lost(&mut self, now: Instant, from: PeerId, gone: PeerId, run: InputRun<I>) {
        if self.mode != Mode::Player {
            return;
        }
        if self.phase == Phase::Joining || !self.members.contains_key(&gone) {
            // Not ours to judge yet: the snapshot or the admit of that peer may
            // still be on the way. Kept until then.
            if self.deferred_lost.len() < 4 * MAX_PLAYERS {
                self.deferred_lost.push((from, gone, run));
            }
            return;
        }
        if self.members.get(&from).is_none_or(|m| m.spectator) || self.lost.contains(&from) {
            return;
        }
        if gone == self.id {
            // Someone lost us: we are cut off from them; they will carry on
            // without us and we will see them leave.
            return;
        }
        if !self.rounds.contains_key(&gone) {
            if self.members.get(&gone).is_none_or(|m| m.spectator) {
                return;
            }
            self.begin_loss_round(now, gone);
        }
        if let Some(round) = self.rounds.get_mut(&gone) {
            let expected: Vec<u8> = round.slots.iter().map(|&s| s as u8).collect();
            if run.slots != expected {
                self.misbehaved(from, "loss report for the wrong slots".into());
                return;
            }
            round.reports.insert(from, run);
        }
        self.try_finish_rounds(now);
    }

    fn try_finish_rounds(&mut self, now: Instant) {
        loop {
            let ready = self.rounds.iter().find_map(|(&gone, round)| {
                let waiting = self.members.iter().any(|(p, m)| {
                    !m.spectator
                        && *p != gone
                        && !self.lost.contains(p)
                        && !round.reports.contains_key(p)
                });
                (!waiting).then_some(gone)
            });
            let Some(gone) = ready else {
                return;
            };
            let Some(round) = self.rounds.remove(&gone) else {
                return;
            };
            self.finish_round(now, gone, round);
        }
    }

    fn finish_round(&mut self, now: Instant, gone: PeerId, round: LossRound<I>) {
        let end_of = |r: &InputRun<I>| r.start + r.records.len() as Frame;
        let best = round.reports.values().max_by_key(|r| end_of(r));
        let until = best.map(end_of).unwrap_or(0);
        if let Some(best) = best {
            for (k, &s) in round.slots.iter().enumerate() {
                let slot = &mut self.slots[s];
                for (i, record) in best.records.iter().enumerate() {
                    let f = best.start + i as Frame;
                    if f == slot.log.end() && slot.active_at(f) {
                        slot.log.push(f, record.get(k).copied().flatten());
                    }
                }
            }
        }
        for &s in &round.slots {
            let slot = &mut self.slots[s];
            let until = until.max(slot.active_from);
            slot.until = Some(until);
            slot.state = SlotState::Vacant;
            slot.key = round.key;
            slot.released_at = Some(now);
        }
        self.members.remove(&gone);
        self.lost.remove(&gone);
        self.events.push_back(RollbackEvent::Disconnected {
            peer: gone,
            slots: round.slots.clone(),
            frame: until,
        });
        // The departed peer's reports in other rounds no longer count as waited for.
        for r in self.rounds.values_mut() {
            r.reports.remove(&gone);
        }
    }

    fn on_checksum(&mut self, peer: PeerId, frame: Frame, total: u64, parts: Vec<(u64, u64)>) {
        if !self.members.contains_key(&peer) {
            return;
        }
        if let Some(local) = self.local_checksums.get(&frame).cloned() {
            self.compare(peer, frame, &local, total, &parts);
            return;
        }
        let oldest = self
            .local_checksums
            .keys()
            .next_back()
            .copied()
            .unwrap_or(0);
        if frame + 1024 < oldest {
            return;
        }
        let entry = self.remote_checksums.entry(frame).or_default();
        if entry.len() < MAX_PLAYERS {
            entry.push((peer, total, parts));
        }
        while self.remote_checksums.len() > 4 * CHECKSUM_MEMORY {
            self.remote_checksums.pop_first();
        }
    }

    fn compare(
        &mut self,
        peer: PeerId,
        frame: Frame,
        local: &Checksum,
        total: u64,
        parts: &[(u64, u64)],
    ) {
        if local.total == total {
            self.stats.checksums_matched += 1;
            return;
        }
        let mut differ = Vec::new();
        for part in &local.parts {
            let id = part_id(&part.name);
            match parts.iter().find(|(i, _)| *i == id) {
                Some((_, v)) if *v == part.value => {}
                _ => differ.push(part.name.to_string()),
            }
        }
        for (id, _) in parts {
            if !local.parts.iter().any(|p| part_id(&p.name) == *id) {
                differ.push(format!("unknown part {id:#018x}"));
            }
        }
        self.events.push_back(RollbackEvent::DesyncDetected {
            frame,
            peer,
            local: local.total,
            remote: total,
            parts: differ,
        });
    }

    /// Reports the checksum of the state saved at `frame` (after a
    /// [`Request::Save`]).
    pub fn set_checksum(&mut self, frame: Frame, checksum: Checksum) {
        if let Mode::SyncTest { .. } = self.mode {
            match self.synctest_checksums.get(&frame) {
                Some(first) if first.total != checksum.total => {
                    let first = first.clone();
                    let parts: Vec<(u64, u64)> = first
                        .parts
                        .iter()
                        .map(|p| (part_id(&p.name), p.value))
                        .collect();
                    // Name what differs from the point of view of the re-run.
                    self.compare(self.id, frame, &checksum, first.total, &parts);
                }
                Some(_) => self.stats.checksums_matched += 1,
                None => {
                    self.synctest_checksums.insert(frame, checksum);
                    while self.synctest_checksums.len() > CHECKSUM_MEMORY {
                        self.synctest_checksums.pop_first();
                    }
                }
            }
            return;
        }
        self.saved_checksums.insert(frame, checksum);
    }

    /// Turns away the peers waiting for a snapshot of `frame`: the game cannot
    /// make one. They get [`RollbackEvent::JoinRefused`] with `reason`.
    pub fn decline_snapshot(&mut self, frame: Frame, reason: &str) {
        let (declined, rest): (Vec<PendingSnapshot>, Vec<PendingSnapshot>) =
            std::mem::take(&mut self.pending_snapshots)
                .into_iter()
                .partition(|p| p.frame == frame);
        self.pending_snapshots = rest;
        for p in declined {
            self.send_to(
                p.peer,
                &Msg::<I>::Refuse {
                    reason: reason.to_string(),
                },
            );
        }
    }

    /// The serialized state the host's game made for a [`Request::Snapshot`].
    pub fn submit_snapshot(&mut self, frame: Frame, data: Vec<u8>) {
        let ready: Vec<PendingSnapshot> = {
            let (ready, rest) = std::mem::take(&mut self.pending_snapshots)
                .into_iter()
                .partition(|p| p.frame == frame);
            self.pending_snapshots = rest;
            ready
        };
        for p in ready {
            if data.len() > self.config.max_snapshot_bytes {
                self.send_to(
                    p.peer,
                    &Msg::<I>::Refuse {
                        reason: "state snapshot too large".into(),
                    },
                );
                continue;
            }
            let table = self.slots.iter().map(Slot::entry).collect();
            let spectators = self
                .members
                .iter()
                .filter(|(q, m)| m.spectator && **q != p.peer)
                .map(|(q, m)| (*q, m.key))
                .collect();
            let runs = (0..self.slots.len())
                .filter(|&s| {
                    self.slots[s].state == SlotState::Occupied && self.slots[s].peer != p.peer
                })
                .map(|s| {
                    let log = &self.slots[s].log;
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
            let msg = Msg::Snapshot {
                frame,
                from: p.from,
                your_slots: p.slots.iter().map(|&s| s as u8).collect(),
                table,
                spectators,
                runs,
                data: data.clone(),
            };
            self.send_to(p.peer, &msg);
        }
    }

    fn inputs_at(&self, f: Frame) -> Vec<(I, InputStatus)> {
        self.slots
            .iter()
            .map(|slot| {
                let known = if self.mode == Mode::Spectator {
                    slot.log.get(f)
                } else if !slot.active_at(f) {
                    Some(None)
                } else {
                    slot.log.get(f)
                };
                match known {
                    Some(Some(i)) => (i, InputStatus::Confirmed),
                    Some(None) => (I::default(), InputStatus::Disconnected),
                    None => (
                        (self.predictor)(slot.log.last_input()),
                        InputStatus::Predicted,
                    ),
                }
            })
            .collect()
    }

    fn same_inputs(a: &[(I, InputStatus)], b: &[(I, InputStatus)]) -> bool {
        a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0 && (x.1 == InputStatus::Disconnected) == (y.1 == InputStatus::Disconnected)
        })
    }

    /// Runs one frame: takes the local inputs given with
    /// [`RollbackSession::add_local_input`], and returns what the game must do,
    /// rollback included. Fails with [`RollbackError::Stalled`] while the
    /// prediction window is used up: the local inputs were taken and sent, no
    /// frame ran.
    pub fn advance_frame(&mut self, now: Instant) -> Result<Vec<Request<I>>, RollbackError> {
        if self.phase != Phase::Running {
            return Err(RollbackError::NotRunning);
        }
        let local = self.local_slots();
        for &s in &local {
            if self.pending_input[s].is_none() {
                return Err(RollbackError::MissingLocalInput(s));
            }
        }
        self.time_ms(now);

        // Local inputs, for the frame `input_delay` ahead.
        let target = self.current + self.config.input_delay;
        for &s in &local {
            let Some(input) = self.pending_input[s].take() else {
                continue;
            };
            let slot = &mut self.slots[s];
            if slot.log.end() < slot.active_from {
                slot.log.reset(slot.active_from);
            }
            while slot.log.end() <= target && slot.active_at(slot.log.end()) {
                let f = slot.log.end();
                slot.log.push(f, Some(input));
            }
        }
        if !self.can_advance() {
            self.send_inputs(now);
            return Err(RollbackError::Stalled);
        }
        self.finalize_checksums();
        let mut requests = Vec::new();
        if let Some((frame, data)) = self.snapshot_to_load.take() {
            requests.push(Request::LoadSnapshot { frame, data });
            requests.push(Request::Save { frame });
        } else if self.initial_save {
            requests.push(Request::Save {
                frame: self.current,
            });
        }
        self.initial_save = false;

        // Roll back to the first frame simulated with inputs now known wrong.
        if let Mode::SyncTest { distance } = self.mode {
            let inputs = self.inputs_at(self.current);
            self.simulate(&mut requests, inputs);
            if self.current > distance {
                let from = self.current - distance;
                requests.push(Request::Load { frame: from });
                for f in from..self.current {
                    let inputs = self.sim_inputs[(f - self.sim_base) as usize].clone();
                    requests.push(Request::Advance { frame: f, inputs });
                    requests.push(Request::Save { frame: f + 1 });
                }
                self.stats.rollbacks += 1;
                self.stats.resimulated_frames += distance as u64;
            }
            while self.sim_inputs.len() > distance as usize {
                self.sim_inputs.pop_front();
                self.sim_base += 1;
            }
            self.prune_logs();
            return Ok(requests);
        }
        let mismatch = (self.sim_base..self.current).find(|&f| {
            let used = &self.sim_inputs[(f - self.sim_base) as usize];
            !Self::same_inputs(used, &self.inputs_at(f))
        });
        if let Some(from) = mismatch {
            requests.push(Request::Load { frame: from });
            self.sim_inputs.truncate((from - self.sim_base) as usize);
            let end = self.current;
            self.current = from;
            while self.current < end {
                let inputs = self.inputs_at(self.current);
                self.simulate(&mut requests, inputs);
            }
            self.stats.rollbacks += 1;
            self.stats.resimulated_frames += (end - from) as u64;
        }
        let inputs = self.inputs_at(self.current);
        self.simulate(&mut requests, inputs);

        // Frames below the confirmed frame are final.
        let confirmed = self.confirmed_until().min(self.current);
        while self.sim_base < confirmed {
            self.sim_inputs.pop_front();
            self.sim_base += 1;
        }
        self.prune_logs();

        // Pace: next frame one interval on, stretched or shrunk by time sync.
        self.update_frames_ahead(now);
        let interval = self.interval().as_secs_f64();
        let factor = 1.0 + (self.stats.frames_ahead * 0.05).clamp(-0.3, 0.3);
        let next = self.next_frame_at.unwrap_or(now);
        let floor = now.checked_sub(self.interval() * 4).unwrap_or(now);
        self.next_frame_at = Some(next.max(floor) + Duration::from_secs_f64(interval * factor));

        if self.joined_at.is_some_and(|f| self.current >= f)
            && self.stats.frames_ahead > -CATCH_UP_FRAMES
        {
            self.joined_at = None;
            self.events
                .push_back(RollbackEvent::JoinerSynced { peer: self.id });
        }

        self.host_duties(now, &mut requests);
        self.send_inputs(now);
        Ok(requests)
    }

    fn simulate(&mut self, requests: &mut Vec<Request<I>>, inputs: Vec<(I, InputStatus)>) {
        self.sim_inputs.push_back(inputs.clone());
        requests.push(Request::Advance {
            frame: self.current,
            inputs,
        });
        self.current += 1;
        requests.push(Request::Save {
            frame: self.current,
        });
    }

    fn prune_logs(&mut self) {
        let confirmed = self.confirmed_until().min(self.current);
        let mut keep = confirmed.saturating_sub(HISTORY);
        for m in self.members.values() {
            keep = keep.min(m.acked.max(confirmed.saturating_sub(4 * HISTORY)));
        }
        for slot in &mut self.slots {
            slot.log.prune_before(keep);
        }
    }

    fn update_frames_ahead(&mut self, now: Instant) {
        let fps = self.config.fps as f64;
        let mut sum = 0.0;
        let mut n = 0;
        for (p, m) in &self.members {
            if m.spectator || self.lost.contains(p) {
                continue;
            }
            if let Some((frame, at)) = m.remote_frame {
                let rtt = m.rtt.unwrap_or_default();
                let elapsed = now.saturating_duration_since(at) + rtt / 2;
                let estimate = frame as f64 + elapsed.as_secs_f64() * fps;
                sum += self.current as f64 - estimate;
                n += 1;
            }
        }
        if n > 0 {
            let sample = sum / n as f64;
            let a = &mut self.stats.frames_ahead;
            *a = if sample < -CATCH_UP_FRAMES {
                sample
            } else {
                *a * 0.9 + sample * 0.1
            };
        }
    }

    fn finalize_checksums(&mut self) {
        let interval = self.config.checksum_interval;
        let base = self.sim_base;
        let ready: Vec<Frame> = self
            .saved_checksums
            .range(..=base)
            .map(|(f, _)| *f)
            .collect();
        for f in ready {
            let Some(c) = self.saved_checksums.remove(&f) else {
                continue;
            };
            if interval == 0 || f % interval != 0 {
                continue;
            }
            if self.mode == Mode::Player {
                let msg = Msg::<I>::Checksum {
                    frame: f,
                    total: c.total,
                    parts: c
                        .parts
                        .iter()
                        .map(|p| (part_id(&p.name), p.value))
                        .collect(),
                };
                let peers: Vec<PeerId> = self.members.keys().copied().collect();
                for p in peers {
                    self.send_to(p, &msg);
                }
            }
            if let Some(remote) = self.remote_checksums.remove(&f) {
                for (peer, total, parts) in remote {
                    self.compare(peer, f, &c, total, &parts);
                }
            }
            self.local_checksums.insert(f, c);
            while self.local_checksums.len() > CHECKSUM_MEMORY {
                self.local_checksums.pop_first();
            }
        }
        let stale: Vec<Frame> = self
            .remote_checksums
            .range(..base.saturating_sub(1024))
            .map(|(f, _)| *f)
            .collect();
        for f in stale {
            self.remote_checksums.remove(&f);
        }
    }

    fn is_host(&self) -> bool {
        self.host() == Some(self.id)
    }

    fn host_duties(&mut self, now: Instant, requests: &mut Vec<Request<I>>) {
        if self.mode != Mode::Player || !self.is_host() || !self.rounds.is_empty() {
            return;
        }
        let joins = std::mem::take(&mut self.joins);
        for j in joins {
            if self.members.contains_key(&j.peer) {
                continue;
            }
            let ghost = self
                .slots
                .iter()
                .any(|s| s.state == SlotState::Occupied && s.key == j.key && s.peer != j.peer);
            if !self.connected.contains(&j.peer) || ghost {
                // Not connected (yet), or its old self has not been seen to
                // leave yet: ask again next frame.
                self.joins.push(j);
                continue;
            }
            let Some(slots) = self.choose_slots(now, &j) else {
                self.send_to(
                    j.peer,
                    &Msg::<I>::Refuse {
                        reason: "the session is full".into(),
                    },
                );
                continue;
            };
            let from = self.current + self.config.input_delay + self.config.join_margin;
            let snapshot = self.confirmed_until().min(self.current);
            self.apply_admit(now, j.peer, j.key, &slots, from, snapshot);
            let msg = Msg::<I>::Admit {
                peer: j.peer,
                key: j.key,
                slots: slots.iter().map(|&s| s as u8).collect(),
                from,
                snapshot,
            };
            let others: Vec<PeerId> = self
                .members
                .keys()
                .copied()
                .filter(|&p| p != j.peer)
                .collect();
            for p in others {
                self.send_to(p, &msg);
            }
            if !self.pending_snapshots.iter().any(|p| p.frame == snapshot) {
                requests.push(Request::Snapshot { frame: snapshot });
            }
            self.pending_snapshots.push(PendingSnapshot {
                peer: j.peer,
                frame: snapshot,
                from,
                slots,
            });
        }
    }

    fn choose_slots(&self, now: Instant, j: &JoinRequest) -> Option<Vec<usize>> {
        if j.players == 0 {
            let spectators = self.members.values().filter(|m| m.spectator).count();
            return (spectators < MAX_SPECTATORS).then(Vec::new);
        }
        let reclaim = self.config.reclaim_window;
        let reserved = |s: &Slot<I>| {
            s.state == SlotState::Vacant
                && s.released_at.is_some_and(|t| now < t + reclaim)
                && s.key != j.key
        };
        let mut chosen: Vec<usize> = (0..self.slots.len())
            .filter(|&i| self.slots[i].state == SlotState::Vacant && self.slots[i].key == j.key)
            .take(j.players)
            .collect();
        for i in 0..self.slots.len() {
            if chosen.len() >= j.players {
                break;
            }
            let s = &self.slots[i];
            if s.state != SlotState::Occupied && !reserved(s) && !chosen.contains(&i) {
                chosen.push(i);
            }
        }
        (chosen.len() == j.players).then_some(chosen)
    }

    fn send_to(&mut self, peer: PeerId, msg: &Msg<I>) {
        let data = Bytes::from(msg.encode());
        let reliable = msg.is_reliable();
        if reliable
            && let Some(m) = self.members.get_mut(&peer)
            && !m.connected
        {
            if m.pending.len() < MAX_PENDING_RELIABLE {
                m.pending.push(data);
            }
            return;
        }
        self.transmits.push_back(Transmit {
            peer,
            channel: if reliable {
                Channel::Reliable
            } else {
                Channel::Unreliable
            },
            data,
        });
    }

    fn send_inputs(&mut self, now: Instant) {
        if self.phase != Phase::Running || matches!(self.mode, Mode::SyncTest { .. }) {
            return;
        }
        self.last_sent = Some(now);
        let my_ms = self.time_ms(now);
        let local = self.local_slots();
        let is_host = self.is_host();
        let confirmed = self.confirmed_until().min(self.current);
        let peers: Vec<PeerId> = self.members.keys().copied().collect();
        for peer in peers {
            if self.lost.contains(&peer) || !self.connected.contains(&peer) {
                continue;
            }
            let Some(m) = self.members.get(&peer) else {
                continue;
            };
            let ack = if self.mode == Mode::Spectator {
                self.confirmed_until()
            } else {
                m.slots
                    .iter()
                    .map(|&s| self.slots[s].log.end())
                    .min()
                    .unwrap_or(0)
            };
            let (echo_ms, hold) = match m.echo {
                Some((t, at)) => (
                    t,
                    now.saturating_duration_since(at).as_millis().min(60_000) as u16,
                ),
                None => (0, 0),
            };
            let (feed, run) = if m.spectator && is_host {
                let start = m
                    .acked
                    .max(self.slots.iter().map(|s| s.log.base).max().unwrap_or(0));
                let end = confirmed.min(start + MAX_FRAMES_PER_MESSAGE as Frame);
                let records = (start..end)
                    .map(|f| {
                        self.inputs_at(f)
                            .into_iter()
                            .map(|(i, st)| (st == InputStatus::Confirmed).then_some(i))
                            .collect()
                    })
                    .collect();
                let slots = (0..self.slots.len()).map(|s| s as u8).collect();
                (
                    true,
                    InputRun {
                        start,
                        slots,
                        records,
                    },
                )
            } else if self.mode == Mode::Player && !local.is_empty() {
                let end = local
                    .iter()
                    .map(|&s| self.slots[s].log.end())
                    .min()
                    .unwrap_or(0);
                let base = local
                    .iter()
                    .map(|&s| self.slots[s].log.base)
                    .max()
                    .unwrap_or(0);
                let start = m.acked.max(base).min(end);
                let end = end.min(start + MAX_FRAMES_PER_MESSAGE as Frame);
                let records = (start..end)
                    .map(|f| {
                        local
                            .iter()
                            .map(|&s| self.slots[s].log.get(f).flatten())
                            .collect()
                    })
                    .collect();
                (
                    false,
                    InputRun {
                        start,
                        slots: local.iter().map(|&s| s as u8).collect(),
                        records,
                    },
                )
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
            let msg = Msg::Inputs {
                ack,
                frame: self.current,
                time_ms: my_ms,
                echo_ms,
                echo_hold_ms: hold,
                feed,
                run,
            };
            self.send_to(peer, &msg);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RollbackEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod tests;
