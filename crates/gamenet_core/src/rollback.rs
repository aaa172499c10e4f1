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
//! A [`SyncTestSession`] checks a game's determinism locally.
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
//! - Only a side holding a quorum of the players may finish that agreement:
//!   more than half of them, or half with the lowest id. A side without one is
//!   cut off: it stalls, and when a lost player's link returns it rejoins
//!   through the host's snapshot if that side played on, or both resume where
//!   they stalled if neither did, so a split never leaves two timelines (see
//!   [`membership`]).
//! - Checksums of confirmed frames are exchanged on an interval; parts are sent
//!   as hashes of their names, so a desync names what differs, and a player
//!   whose checksum differs from the host's rejoins from the host's snapshot.
//!
//! # Example
//!
//! A sync test of a one-number game: every frame re-runs the last 4 and
//! compares checksums.
//!
//! ```
//! use gamenet_core::rollback::{Checksum, Request, RollbackConfig, SyncTestSession};
//! use gamenet_core::Instant;
//! use std::collections::HashMap;
//!
//! let config = RollbackConfig { num_players: 2, ..RollbackConfig::default() };
//! let mut session = SyncTestSession::<u8>::new(config, 4).unwrap();
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

mod admission;
mod checksum;
mod config;
mod departure;
mod event;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod input;
mod input_log;
mod keys;
mod late_join;
mod local;
pub mod membership;
mod peers;
mod protocol;
#[cfg(feature = "rogue")]
pub mod rogue;
mod session;
mod spectators;
mod sync_layer;
mod sync_test;
mod time_sync;
pub(crate) mod wire;

pub use crate::hash::part_id;
pub use checksum::{Checksum, ChecksumPart};
pub use config::{ConfigError, RollbackConfig};
pub use event::{Request, RollbackError, RollbackEvent, RollbackStats};
pub use input::{Input, InputStatus, PlayerKind, Predictor};
pub use membership::{Leave, RejoinCause};
pub use session::RollbackSession;
pub use sync_test::SyncTestSession;
pub use wire::MAX_PLAYERS;

/// A simulation frame number; the first frame is 0.
pub type Frame = u32;

#[cfg(test)]
mod tests;
