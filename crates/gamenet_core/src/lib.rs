//! Sans-IO core of [gamenet](https://docs.rs/gamenet): the wire protocol and the
//! per-peer state machines of a peer mesh, with no clock, no socket and no runtime.
//!
//! A [`Mesh`] is fed time and transport happenings and tells what to send, what
//! happened and when to wake it next. That makes every algorithm testable with a
//! simulated network, deterministically and fast; the `gamenet` crate drives it
//! over WebRTC data channels.
//!
//! The same way, [`rollback::RollbackSession`] runs rollback networking
//! (prediction, time sync, desync detection, late join) as plain requests, and
//! [`LinkConditioner`] delays, drops and duplicates packets deterministically.
//!
//! # Example
//!
//! Two meshes wired back to back, the way a test or a custom transport drives them:
//!
//! ```
//! use gamenet_core::{Channel, Event, Instant, Mesh, MeshConfig, PeerId};
//!
//! let now = Instant::now();
//! let (a_id, b_id) = (PeerId(1), PeerId(2));
//! let mut a = Mesh::new(MeshConfig::default()).unwrap();
//! let mut b = Mesh::new(MeshConfig::default()).unwrap();
//! a.handle_connected(now, b_id);
//! b.handle_connected(now, a_id);
//!
//! // Deliver everything each side wants sent until both are quiet.
//! fn pump(now: Instant, a: &mut Mesh, a_id: PeerId, b: &mut Mesh, b_id: PeerId) {
//!     loop {
//!         let mut moved = false;
//!         while let Some(t) = a.poll_transmit() {
//!             b.handle_packet(now, a_id, t.channel, t.data);
//!             moved = true;
//!         }
//!         while let Some(t) = b.poll_transmit() {
//!             a.handle_packet(now, b_id, t.channel, t.data);
//!             moved = true;
//!         }
//!         if !moved {
//!             break;
//!         }
//!     }
//! }
//!
//! pump(now, &mut a, a_id, &mut b, b_id);
//! assert_eq!(a.poll_event(), Some(Event::PeerJoined(b_id)));
//! assert_eq!(b.poll_event(), Some(Event::PeerJoined(a_id)));
//!
//! a.send(b_id, Channel::Reliable, b"hello").unwrap();
//! pump(now, &mut a, a_id, &mut b, b_id);
//! match b.poll_event() {
//!     Some(Event::Message { peer, payload, .. }) => {
//!         assert_eq!(peer, a_id);
//!         assert_eq!(&payload[..], b"hello");
//!     }
//!     other => panic!("unexpected {other:?}"),
//! }
//! ```
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bits;
pub mod codec;
pub mod conditioner;
pub mod hash;
mod mesh;
mod misbehavior;
mod peer;
pub mod quantize;
pub mod replication;
pub mod rollback;
#[cfg(any(test, feature = "sim"))]
pub mod sim;
pub mod stats;

pub use bytes::Bytes;
pub use conditioner::{ConditionerConfig, LinkConditioner};
pub use mesh::wire;
pub use mesh::{
    ConfigError, DEFAULT_FRAGMENT_SIZE, DEFAULT_SEND_WINDOW, Event, HandshakeError, LeaveReason,
    Mesh, MeshConfig, PROTOCOL_VERSION, ProtocolError, SendError, TypeSchema,
};
pub use misbehavior::Misbehavior;
pub use peer::{Channel, PeerId, Transmit};
pub use stats::PeerStats;
pub use wire::{DecodeError, GoodbyeReason};

/// The instant type the core measures time in: `std::time::Instant` natively, a
/// `performance.now()`-based one in the browser. The core never reads it; callers
/// pass it in.
pub use web_time::Instant;

#[cfg(test)]
mod golden;
