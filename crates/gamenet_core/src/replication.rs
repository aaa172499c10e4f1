//! State replication, sans-IO: entities owned by one peer each, sent to every
//! other peer that may see them, delta-encoded against the last state that
//! receiver acknowledged.
//!
//! - An entity has a type (its field widths come from the [`Schema`]) and a
//!   list of quantised fields (see [`crate::quantize`]). Its owner changes it
//!   with [`Replicator::set`]; every tick, [`Replicator::tick`] packs the
//!   changes for each peer into one unreliable packet.
//! - Each entity is encoded against the last state of it the receiver acked
//!   (a full state when none is acked); lost packets are not resent: the next
//!   delta covers them. Unchanged entities cost nothing.
//! - Per peer, priorities accumulate every tick for changed entities and the
//!   most urgent go first within the peer's byte budget, so none starves.
//! - The owner decides who sees what ([`Replicator::set_visible`]); entities
//!   entering a peer's scope are spawned there, leaving it despawned.
//! - Spawns, despawns, ownership changes and game events travel reliably.
//! - Ownership can be requested and handed over; when a peer leaves, the peer
//!   with the lowest id takes over what it owned and announces it; the others
//!   follow the announcement only from the successor they computed themselves.
//! - Entity ids carry their creator's namespace (a fold of its peer id in the
//!   32 high bits); who may send each message is checked on receipt (see
//!   `wire`), and what one peer may make others hold is bounded.
//!
//! - Refused calls return a [`ReplicationError`]; a peer that breaks the
//!   protocol is reported as [`ReplicationEvent::PeerMisbehaved`] with the
//!   [`Misbehavior`](crate::Misbehavior), for the caller to drop it.
//!
//! Where things live: `types` (what callers see), `config` (settings and why
//! they are refused), `error` (why a call is refused), `replicator` (the [`Replicator`] and its public
//! calls), `table` (the entity table by row), `scope` (which entities each
//! peer sees), `authority` (requests, hand-over, host migration), `outgoing`
//! (what each peer is sent: priorities, budget, packets, the acks of them),
//! `incoming` (what each peer sent: baselines, acks to send) and `wire`
//! (message kinds, who may send each, and their encoding).

mod authority;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod incoming;
mod outgoing;
mod replicator;
#[cfg(feature = "rogue")]
pub mod rogue;
mod scope;
mod table;
mod types;
pub(crate) mod wire;

pub use config::{ConfigError, ReplicationConfig};
pub use error::ReplicationError;
pub use replicator::Replicator;
pub use types::{EntityState, Fields, NetId, ReplicationEvent, Schema};
pub use wire::MAX_EVENT;

#[cfg(test)]
mod tests;
