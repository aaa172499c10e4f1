//! What callers of replication see: the schema, ids, settings, events and
//! the state of an entity.

use std::sync::Arc;

use bytes::Bytes;

use crate::{Misbehavior, PeerId};

/// Field widths in bits, per entity type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// `types[t]` lists the widths (up to 32 bits) of the fields of type `t`.
    pub types: Vec<Vec<u8>>,
}

impl Schema {
    /// The field widths of a type.
    pub(super) fn widths(&self, ty: u16) -> Option<&[u8]> {
        self.types.get(ty as usize).map(Vec::as_slice)
    }
}

/// An entity's id, the same on every peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "reflect", derive(bevy_reflect::Reflect))]
pub struct NetId(pub u64);

/// What happened to replicated state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReplicationEvent {
    /// A remote entity appeared (entered scope or was created).
    Spawned {
        /// The entity.
        id: NetId,
        /// Its type.
        ty: u16,
        /// Its owner.
        owner: PeerId,
    },
    /// A remote entity's fields changed.
    Updated {
        /// The entity.
        id: NetId,
        /// When its owner sent this state: milliseconds on the owner's
        /// replication clock, from an origin of its own (compare only stamps
        /// of one sender); `None` for a state that came whole on the reliable
        /// channel. Interpolating on these stamps instead of arrival times
        /// keeps network jitter out of the motion.
        sent: Option<u64>,
        /// The state, as it was sent (several may arrive between two reads
        /// of [`Replicator::entity`](super::Replicator::entity), which holds
        /// the newest).
        fields: Fields,
    },
    /// A remote entity is gone (despawned or out of scope).
    Despawned {
        /// The entity.
        id: NetId,
    },
    /// An entity has a new owner (hand-over or the owner left).
    OwnerChanged {
        /// The entity.
        id: NetId,
        /// The new owner.
        owner: PeerId,
    },
    /// A peer asks for an entity this peer owns; grant it with
    /// [`Replicator::hand_over`](super::Replicator::hand_over).
    AuthorityRequested {
        /// The entity.
        id: NetId,
        /// Who asks.
        peer: PeerId,
    },
    /// A reliable game event from a peer.
    Event {
        /// The sender.
        peer: PeerId,
        /// Its bytes.
        payload: Bytes,
    },
    /// A reliable message to a peer could not be queued (see
    /// [`Replicator::handle_send_failed`](super::Replicator::handle_send_failed)):
    /// every entity of this peer in its scope is spawned there anew at the next
    /// tick; game events and despawns the message carried are lost.
    SendFailed {
        /// The peer.
        peer: PeerId,
    },
    /// A peer broke the protocol (sent something malformed, or more than
    /// allowed); drop it.
    PeerMisbehaved {
        /// The peer.
        peer: PeerId,
        /// The rule it broke.
        reason: Misbehavior,
    },
}

/// An entity's quantised fields, shared (not copied) between the entity,
/// the packets that carried it and the baselines deltas refer to.
pub type Fields = Arc<[u32]>;

/// An entity as this peer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityState {
    /// Its type.
    pub ty: u16,
    /// Its owner.
    pub owner: PeerId,
    /// Its quantised fields.
    pub fields: Fields,
}

/// A value clamped to a field width.
pub(super) fn clamp_one(f: u32, width: u8) -> u32 {
    if width < 32 {
        f.min((1u32 << width) - 1)
    } else {
        f
    }
}

/// Values clamped to the field widths.
pub(super) fn clamp(widths: &[u8], fields: &[u32]) -> Fields {
    fields
        .iter()
        .zip(widths)
        .map(|(&f, &w)| clamp_one(f, w))
        .collect()
}
