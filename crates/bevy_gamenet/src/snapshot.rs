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

pub(crate) use component::{ComponentSnapshot, ImmutableSnapshot};
pub(crate) use entity::EntitySnapshot;
pub use entity::{AddRollback, Rollback, RollbackIds};
pub(crate) use message::{MessageClears, MessageSnapshot, clear_messages};
pub(crate) use registry::Registry;
pub(crate) use resource::{ResourceSerde, ResourceSnapshot};
use ring::Ring;
pub(crate) use self::serde::{Serde, decode, encode};
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

/// One rolled-back type's snapshots.
pub(crate) trait Snapshotter: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Saves the state at `frame` into a ring of `len` snapshots; returns the
    /// checksum if the type has one.
    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64>;
    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>);
    /// Serializes the state saved at `frame`, for a late joiner.
    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, String> {
        let _ = (len, frame);
        Err(not_serializable(self.name()))
    }
    /// Replaces the world's part of this type with a late-join snapshot.
    fn read(
        &mut self,
        world: &mut World,
        bytes: &[u8],
        cx: &mut LoadContext<'_>,
    ) -> Result<(), String> {
        let _ = (world, bytes, cx);
        Err(not_serializable(self.name()))
    }
}

fn not_serializable(name: &str) -> String {
    format!(
        "{name} is rolled back without serde, so late joiners cannot get it (register it with a `_with_serde` method)"
    )
}

/// Hashes a value for a checksum.
type Checksummer<T> = fn(&T) -> u64;
/// Fixes a value's entity references after respawns.
type Mapper<T> = fn(&mut T, &mut EntityHashMap<Entity>);
