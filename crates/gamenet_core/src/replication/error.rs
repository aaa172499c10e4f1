//! Why a replication call was refused.

use thiserror::Error;

use super::types::NetId;
use crate::PeerId;

/// Why [`Replicator`](super::Replicator) refused a call.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ReplicationError {
    /// The schema has no such entity type.
    #[error("no entity type {0} in the schema")]
    UnknownType(u16),
    /// The fields given do not match the entity type's.
    #[error("entity type {ty} has {expected} fields, not {got}")]
    FieldCount {
        /// The entity type.
        ty: u16,
        /// Fields of that type.
        expected: usize,
        /// Fields given.
        got: usize,
    },
    /// No entity with this id is known here.
    #[error("no entity {0:?}")]
    UnknownEntity(NetId),
    /// Another peer owns the entity: only its owner may change it.
    #[error("entity {id:?} is owned by {owner}")]
    NotOwner {
        /// The entity.
        id: NetId,
        /// Its owner.
        owner: PeerId,
    },
    /// No replication with this peer (it never joined, or it left).
    #[error("no replication with {0}")]
    UnknownPeer(PeerId),
    /// An entity can only be handed over to another peer.
    #[error("hand-over to this peer itself")]
    HandOverToSelf,
}
