//! Per-type snapshot rings: saving, loading and checksumming the rolled-back
//! part of a Bevy world, and encoding it for late joiners.
//!
//! Every strategy keeps its snapshots in one kind of ring ([`ring`]); one file
//! per strategy: [`entity`] (which rollback entities exist), [`component`]
//! (mutable and immutable components), [`resource`], [`state`] (`State<S>`),
//! [`message`] (messages, cleared each frame). [`registry`] lists the
//! registered types in order; [`serde`] encodes them for late joiners.

mod component;
mod entity;
mod message;
mod registry;
mod resource;
mod ring;
mod serde;
mod state;

use std::hash::{BuildHasher, Hash};

use bevy_ecs::entity::EntityHashMap;
use bevy_ecs::prelude::*;
use gamenet::rollback::Frame;

pub use self::serde::SnapshotLimits;
pub(crate) use self::serde::{Serde, decode, encode};
pub(crate) use component::{ComponentSnapshot, ImmutableSnapshot};
pub(crate) use entity::EntitySnapshot;
pub use entity::{AddRollback, Rollback, RollbackIds};
pub(crate) use message::{MessageClears, MessageSnapshot, clear_messages};
pub(crate) use registry::Registry;

/// The names of the rolled-back types registered so far, in order.
pub(crate) fn registered_names(world: &World) -> Vec<&'static str> {
    world
        .get_resource::<Registry>()
        .map(|r| r.types.iter().map(|t| t.name()).collect())
        .unwrap_or_default()
}
pub(crate) use resource::{ResourceSerde, ResourceSnapshot};
use ring::Ring;
pub(crate) use state::{RollbackStates, StateSnapshot};

/// A hash that is the same on every peer and every run (no random seed).
pub fn stable_hash<T: Hash + ?Sized>(value: &T) -> u64 {
    gamenet::hash::StableState::default().hash_one(value)
}

/// What loading a frame needs to know about entities respawned on the way.
pub(crate) struct LoadContext<'a> {
    /// Old entity → the entity that now stands for the same rollback id.
    pub remap: &'a mut EntityHashMap<Entity>,
}

/// What the parts of a late-join snapshot are checked against while they are
/// decoded, before any is applied.
pub(crate) struct StageContext {
    /// The bounds.
    pub limits: SnapshotLimits,
    /// Component values still allowed (over every component type).
    pub components_left: usize,
    /// The rollback ids the snapshot holds (its entity part comes first).
    pub ids: std::collections::HashSet<u32>,
    /// The sender's entities (as bits) the snapshot holds, by rollback id:
    /// what references between them may name.
    pub entities: std::collections::HashMap<u64, u32>,
}

impl StageContext {
    /// Checks before decoding a snapshot bounded by `limits`.
    pub fn new(limits: SnapshotLimits) -> Self {
        Self {
            limits,
            components_left: limits.max_components,
            ids: std::collections::HashSet::new(),
            entities: std::collections::HashMap::new(),
        }
    }

    /// Fails unless every entry's reference (`refers`) names another entity
    /// of the snapshot, and the references form no cycle (a parent chain
    /// that comes back to where it began).
    pub fn check_references<T>(
        &self,
        entries: &[(u32, T)],
        refers: fn(&T) -> bevy_ecs::entity::Entity,
    ) -> Result<(), SnapshotError> {
        let mut parent = std::collections::HashMap::with_capacity(entries.len());
        for (id, t) in entries {
            let bits = refers(t).to_bits();
            match self.entities.get(&bits) {
                Some(target) if target != id => {
                    parent.insert(*id, *target);
                }
                _ => return Err(SnapshotError::BadEntity { bits }),
            }
        }
        for &start in parent.keys() {
            let mut at = start;
            for _ in 0..parent.len() {
                match parent.get(&at) {
                    Some(&next) if next == start => {
                        return Err(SnapshotError::ReferenceCycle { id: start });
                    }
                    Some(&next) => at = next,
                    None => break,
                }
            }
        }
        Ok(())
    }

    /// Fails unless every id is one of the snapshot's entities, each at
    /// most once.
    pub fn check_ids<T>(&self, entries: &[(u32, T)]) -> Result<(), SnapshotError> {
        let mut seen = std::collections::HashSet::with_capacity(entries.len());
        for &(id, _) in entries {
            if !self.ids.contains(&id) {
                return Err(SnapshotError::UnknownEntity { id });
            }
            if !seen.insert(id) {
                return Err(SnapshotError::DuplicateEntity { id });
            }
        }
        Ok(())
    }
}

/// A decoded and checked part of a late-join snapshot: applying it cannot fail.
pub(crate) type Staged = Box<dyn FnOnce(&mut World, &mut LoadContext<'_>)>;

/// One rolled-back type's snapshots.
pub(crate) trait Snapshotter: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Saves the state at `frame` into a ring of `len` snapshots; returns the
    /// checksum if the type has one.
    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64>;
    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>);
    /// Serializes the state saved at `frame`, for a late joiner.
    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        let _ = (len, frame);
        Err(not_serializable(self.name()))
    }
    /// Decodes and checks this type's part of a late-join snapshot, without
    /// touching the world; what it returns replaces the world's part of this
    /// type.
    fn stage(&mut self, bytes: &[u8], cx: &mut StageContext) -> Result<Staged, SnapshotError> {
        let _ = (bytes, cx);
        Err(not_serializable(self.name()))
    }
}

/// The error for a type without serde that a late joiner needs.
fn not_serializable(name: &'static str) -> SnapshotError {
    SnapshotError::NotSerializable { name }
}

/// Why a snapshot for a late joiner cannot be written or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// A rolled-back type has no serde, so late joiners cannot get it.
    #[error(
        "{name} is rolled back without serde, so late joiners cannot get it (register it with a `_with_serde` method)"
    )]
    NotSerializable {
        /// The type.
        name: &'static str,
    },
    /// The ring no longer (or never) held the frame asked for.
    #[error("no saved {name} at frame {frame}")]
    NotSaved {
        /// The type.
        name: &'static str,
        /// The frame.
        frame: Frame,
    },
    /// A part from a peer is larger than any snapshot part may be.
    #[error("snapshot part of {len} bytes is over the limit of {max}")]
    TooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A value would not encode.
    #[error("could not encode a snapshot part: {0}")]
    Encode(#[source] bitcode::Error),
    /// Bytes from a peer would not decode.
    #[error("could not decode a snapshot part: {0}")]
    Decode(#[source] bitcode::Error),
    /// A snapshot holds more of something than the [`SnapshotLimits`] allow.
    #[error("snapshot holds {count} {what}, over the limit of {max}")]
    TooMany {
        /// What.
        what: &'static str,
        /// How many it holds.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A snapshot ends before what it frames.
    #[error("snapshot truncated")]
    Truncated,
    /// A snapshot part has bytes after what it frames.
    #[error("snapshot part has trailing bytes")]
    Trailing,
    /// A snapshot names a rollback entity twice.
    #[error("snapshot holds rollback entity {id} twice")]
    DuplicateEntity {
        /// The rollback id.
        id: u32,
    },
    /// The snapshot names a rollback entity it does not hold.
    #[error("snapshot names rollback entity {id}, which it does not hold")]
    UnknownEntity {
        /// The rollback id.
        id: u32,
    },
    /// References between the snapshot's entities that form a cycle.
    #[error("snapshot's references from rollback entity {id} come back to it")]
    ReferenceCycle {
        /// A rollback id on the cycle.
        id: u32,
    },
    /// The snapshot holds bits that are no entity, or not one of its own.
    #[error("bad entity {bits:#x} in a snapshot")]
    BadEntity {
        /// The bits.
        bits: u64,
    },
    /// The snapshot has another number of parts than this game rolls back types.
    #[error("snapshot has {theirs} parts, this game rolls back {ours} types")]
    PartCount {
        /// Parts in the snapshot.
        theirs: usize,
        /// Types rolled back here.
        ours: usize,
    },
    /// A part of the snapshot is of another type than ours at its place.
    #[error("snapshot parts differ from ours at {name}")]
    PartMismatch {
        /// Our type at that place.
        name: &'static str,
    },
}

/// Hashes a value for a checksum.
type Checksummer<T> = fn(&T) -> u64;
/// Fixes a value's entity references after respawns.
type Mapper<T> = fn(&mut T, &mut EntityHashMap<Entity>);
