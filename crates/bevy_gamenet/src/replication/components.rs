//! What replicated entities carry, and what the replication systems share:
//! the registered state types and the entities by replication id.

use std::collections::{BTreeMap, BTreeSet};
use std::marker::PhantomData;

use bevy_ecs::prelude::*;
use bevy_ecs::reflect::ReflectComponent;
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use gamenet::PeerId;
use gamenet::replication::NetId;

/// A component whose state is replicated, as quantised fields: choose each
/// field's width and precision with the types of
/// [`gamenet::replication::quantize`] (bounded floats, positions,
/// smallest-three rotations, bounded integers).
pub trait NetState: Component<Mutability = bevy_ecs::component::Mutable> + Clone {
    /// Width in bits (1 to 32) of each field.
    const WIDTHS: &'static [u8];
    /// The fields of this state.
    fn to_fields(&self) -> Vec<u32>;
    /// The state of some fields.
    fn from_fields(fields: &[u32]) -> Self;
    /// The state `t` (0 to 1) of the way from `self` to `next`; the default
    /// jumps.
    fn interpolate(&self, next: &Self, t: f32) -> Self {
        if t < 1.0 { self.clone() } else { next.clone() }
    }
}

/// Marks an entity of this peer for replication.
#[derive(Component, Reflect, Debug, Clone, Copy, Default)]
#[reflect(Component, Debug, Default)]
pub struct Replicated;

/// Hides an entity of this peer from these peers: it is despawned there
/// (or never spawned) and nowhere else; change the set to show or hide it
/// again, remove the component to show it to everyone. A peer that links
/// later gets it spawned, then despawned within a frame or two.
#[derive(Component, Reflect, Debug, Clone, Default, PartialEq, Eq)]
#[reflect(Component, Debug, Default, PartialEq)]
pub struct HiddenFrom(pub BTreeSet<PeerId>);

/// An entity's replication id.
#[derive(Component, Reflect, Debug, Clone, Copy, PartialEq, Eq)]
#[reflect(Component, Debug, PartialEq)]
pub struct NetEntity(pub NetId);

/// An entity owned by another peer.
#[derive(Component, Reflect, Debug, Clone, Copy, PartialEq, Eq)]
#[reflect(Component, Debug, PartialEq)]
pub struct Remote {
    /// Its owner.
    pub owner: PeerId,
}

/// Registered state types, in registration order (the type index on the
/// wire): each state type is followed by its part type (see `parts`).
#[derive(Resource, Default)]
pub(super) struct Types {
    /// Each type's field widths, in bits.
    pub widths: Vec<Vec<u8>>,
    /// Whether each type is a part type.
    pub parts: Vec<bool>,
}

impl Types {
    /// Registers a state type and its part type; returns the state's index.
    pub fn add(&mut self, widths: &[u8]) -> u16 {
        let ty = self.widths.len() as u16;
        self.widths.push(widths.to_vec());
        // A part: the entity's id in two fields, then the state's.
        self.widths
            .push([32, 32].iter().chain(widths).copied().collect());
        self.parts.extend([false, true]);
        ty
    }

    /// Whether `ty` is a part type.
    pub fn is_part(&self, ty: u16) -> bool {
        self.parts.get(ty as usize).copied().unwrap_or(false)
    }
}

/// Entities by replication id.
#[derive(Resource, Default)]
pub(super) struct Index {
    /// Entities by their own id (their first state's).
    pub entities: BTreeMap<NetId, Entity>,
    /// This peer's entities given their id in this frame (the
    /// [`NetEntity`] itself is inserted by deferred commands).
    pub published_now: BTreeMap<Entity, NetId>,
    /// Entities by the ids of their further states.
    pub parts: BTreeMap<NetId, Entity>,
    /// Further states that arrived before their entity.
    pub waiting: BTreeSet<NetId>,
}

/// The wire type index of a state type.
#[derive(Resource)]
pub(super) struct TypeIndex<T>(pub u16, pub PhantomData<fn() -> T>);

impl<T> TypeIndex<T> {
    /// The index of the state's part type.
    pub fn part(&self) -> u16 {
        self.0 + 1
    }
}
