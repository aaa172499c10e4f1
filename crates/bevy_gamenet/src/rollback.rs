//! The rollback plugin: game logic in [`RollbackSchedule`], on a fixed
//! timestep with its own [`Time<RollbackTime>`](bevy_time::Time), saved, restored and
//! re-simulated by a [`gamenet::rollback::RollbackSession`].
//!
//! Register what is rolled back with [`RollbackApp`]; give each frame's local
//! inputs from systems in [`ReadInputs`] by filling [`LocalInputs`]; read every
//! player's input in the rollback schedule from [`PlayerInputs`]. Over a
//! network, peers joining and leaving and application messages (sent with
//! [`RollbackNet::send`](gamenet::rollback::RollbackNet::send)) arrive as the mesh plugin's messages:
//! [`crate::PeerJoined`], [`crate::PeerLeft`], [`crate::MessageReceived`].
//!
//! The plugin keeps Bevy diagnostics for an overlay or a log: frames and
//! re-simulated frames per second ([`FRAMES_PER_SEC`], [`RESIMULATED_PER_SEC`]),
//! the mesh's peers, worst RTT and loss, bytes/s in and out ([`PEERS`],
//! [`RTT_MS`], [`LOSS_PERCENT`], [`BYTES_IN_PER_SEC`], [`BYTES_OUT_PER_SEC`]) and
//! desyncs detected ([`DESYNCS`]).

mod app_ext;
mod diagnostics;
mod drive;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod plugin;
mod schedule;
mod socket;

/// The mesh's diagnostics, here too (see [`crate::diagnostics`]).
pub use crate::diagnostics::{BYTES_IN_PER_SEC, BYTES_OUT_PER_SEC, LOSS_PERCENT, PEERS, RTT_MS};
pub use crate::snapshot::{
    AddRollback, Rollback, RollbackIds, SnapshotError, SnapshotLimits, stable_hash,
};
pub use app_ext::RollbackApp;
/// Derives [`Input`] for a struct of inputs or an enum of unit variants;
/// see [`bevy_gamenet_derive::Input`].
pub use bevy_gamenet_derive::Input;
pub use diagnostics::{DESYNCS, FRAMES_PER_SEC, RESIMULATED_PER_SEC};
pub use drive::{FrameClock, run_requests};
/// A player's input for one frame (derive it with `#[derive(Input)]`).
pub use gamenet::rollback::Input;
pub use plugin::{ConnectRollback, RollbackPlugin};
pub use schedule::{
    LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, RollbackFrame, RollbackSchedule,
    RollbackTime, SessionEvent,
};
pub use socket::{FrameSession, RollbackSocket};
