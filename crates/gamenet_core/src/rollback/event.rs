//! What a session asks of the game, what it tells, why a call fails, and its
//! counters.

use bytes::Bytes;
use thiserror::Error;

use super::{ConfigError, Frame, InputStatus, RejoinCause};
use crate::{Misbehavior, PeerId};

#[cfg(doc)]
use super::SyncTestSession;

/// What the game must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Request<I> {
    /// Save the current state as the state at `frame` (before it is simulated),
    /// then report its checksum with [`RollbackSession::set_checksum`](super::RollbackSession::set_checksum). Keep at
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
        /// The bytes the host's game gave [`RollbackSession::submit_snapshot`](super::RollbackSession::submit_snapshot).
        data: Bytes,
    },
    /// Serialize the state saved at `frame` and give it to
    /// [`RollbackSession::submit_snapshot`](super::RollbackSession::submit_snapshot); a peer is joining.
    Snapshot {
        /// The frame.
        frame: Frame,
    },
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
    /// A confirmed frame's checksum differs from a peer's (or, in a
    /// [`SyncTestSession`], from an earlier run of the same frame).
    DesyncDetected {
        /// The frame.
        frame: Frame,
        /// The peer compared with (`PeerId(0)` in a sync test).
        peer: PeerId,
        /// Local total checksum.
        local: u64,
        /// Remote total checksum.
        remote: u64,
        /// Names of the checksum parts that differ.
        parts: Vec<String>,
    },
    /// This peer lost players without keeping a quorum of the membership: it
    /// stalls (the others may play on) until one of them is back, then rejoins
    /// (they played on) or resumes with them ([`RollbackEvent::PeerResumed`]:
    /// they stalled too).
    CutOff {
        /// The players lost.
        lost: Vec<PeerId>,
    },
    /// This peer drops its own frames and joins again from the host's
    /// snapshot, into its key's slots; [`RollbackEvent::JoinerSynced`] follows
    /// once it has caught up.
    Rejoining {
        /// Why.
        cause: RejoinCause,
    },
    /// This peer can no longer play in the session and has left it: it lost
    /// a player the others keep playing with. Close its connections (a
    /// [`RollbackNet`](https://docs.rs/gamenet) does); it may join again
    /// later as a new session.
    Ended {
        /// Why.
        reason: String,
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
        /// The rule it broke.
        reason: Misbehavior,
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
    InvalidConfig(#[from] ConfigError),
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
