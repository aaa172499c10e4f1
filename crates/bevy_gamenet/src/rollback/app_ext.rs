//! [`RollbackApp`]: registering rolled-back and checksummed types on an
//! [`App`].

use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use bevy_app::App;
use bevy_ecs::component::Mutable;
use bevy_ecs::entity::MapEntities;
use bevy_ecs::hierarchy::ChildOf;
use bevy_ecs::prelude::*;
use bevy_state::state::{FreelyMutableState, NextState};
use bevy_time::Time;

use super::{RollbackIds, RollbackTime, stable_hash};
use crate::snapshot::{
    ComponentSnapshot, EntitySnapshot, ImmutableSnapshot, MessageClears, MessageSnapshot, Registry,
    ResourceSerde, ResourceSnapshot, RollbackStates, Serde, SnapshotError, StateSnapshot,
    clear_messages, decode, encode,
};

/// Registration of rolled-back types on an [`App`].
pub trait RollbackApp {
    /// Rolls back a component by cloning it.
    fn rollback_component_with_clone<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
    ) -> &mut Self;
    /// Rolls back a `Copy` component.
    fn rollback_component_with_copy<T: Component<Mutability = Mutable> + Copy>(
        &mut self,
    ) -> &mut Self;
    /// Rolls back an immutable component (re-inserted on load where it differs);
    /// `map` fixes its entity references after respawns.
    fn rollback_immutable_component<T: Component + Clone + PartialEq>(
        &mut self,
        map: Option<fn(&mut T, &mut bevy_ecs::entity::EntityHashMap<Entity>)>,
    ) -> &mut Self;
    /// Rolls back a resource by cloning it.
    fn rollback_resource_with_clone<R: Resource + Clone>(&mut self) -> &mut Self;
    /// Rolls back a component by cloning it, and sends it to late joiners
    /// with serde. Late join works when every rolled-back type can be sent.
    fn rollback_component_with_serde<
        T: Component<Mutability = Mutable> + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self;
    /// Rolls back a resource by cloning it, and sends it to late joiners.
    fn rollback_resource_with_serde<
        R: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self;
    /// Rolls back a `Copy` resource.
    fn rollback_resource_with_copy<R: Resource + Copy>(&mut self) -> &mut Self;
    /// Fixes a rolled-back component's entity references when rollback
    /// respawns entities.
    fn rollback_component_map_entities<T: Component<Mutability = Mutable> + Clone + MapEntities>(
        &mut self,
    ) -> &mut Self;
    /// Fixes a rolled-back resource's entity references.
    fn rollback_resource_map_entities<R: Resource + Clone + MapEntities>(&mut self) -> &mut Self;
    /// Includes a component in checksums, hashed with `Hash`; a desync names it.
    /// Only for types without `Entity` fields: entity ids differ between peers
    /// (use [`RollbackApp::checksum_component`] and hash the other fields).
    fn checksum_component_with_hash<T: Component<Mutability = Mutable> + Clone + Hash>(
        &mut self,
    ) -> &mut Self;
    /// Includes a component in checksums, hashed with `f`.
    fn checksum_component<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
        f: fn(&T) -> u64,
    ) -> &mut Self;
    /// Includes a resource in checksums, hashed with `Hash`.
    fn checksum_resource_with_hash<R: Resource + Clone + Hash>(&mut self) -> &mut Self;
    /// Includes a resource in checksums, hashed with `f`.
    fn checksum_resource<R: Resource + Clone>(&mut self, f: fn(&R) -> u64) -> &mut Self;
    /// Rolls back a message type: messages written in a rollback frame are read
    /// in that frame and are gone before the next one (and on load).
    fn rollback_message<M: Message>(&mut self) -> &mut Self;
    /// Rolls back a state: `State<S>` and `NextState<S>` are restored on load,
    /// and transitions run at the start of each rollback frame. The state is
    /// sent to late joiners with serde.
    fn rollback_state<
        S: FreelyMutableState + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self;
}

/// The app's registry of rolled-back types, created on first use.
fn registry(app: &mut App) -> Mut<'_, Registry> {
    if !app.world().contains_resource::<Registry>() {
        app.init_resource::<Registry>();
    }
    app.world_mut().resource_mut::<Registry>()
}

impl RollbackApp for App {
    fn rollback_component_with_clone<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
    ) -> &mut Self {
        let mut r = registry(self);
        if r.find::<ComponentSnapshot<T>>().is_none() {
            r.types.push(Box::new(ComponentSnapshot::<T>::new()));
        }
        self
    }

    fn rollback_component_with_copy<T: Component<Mutability = Mutable> + Copy>(
        &mut self,
    ) -> &mut Self {
        self.rollback_component_with_clone::<T>()
    }

    fn rollback_immutable_component<T: Component + Clone + PartialEq>(
        &mut self,
        map: Option<fn(&mut T, &mut bevy_ecs::entity::EntityHashMap<Entity>)>,
    ) -> &mut Self {
        let mut r = registry(self);
        if r.find::<ImmutableSnapshot<T>>().is_none() {
            r.types
                .push(Box::new(ImmutableSnapshot::<T>::new(map, None)));
        }
        self
    }

    fn rollback_resource_with_clone<R: Resource + Clone>(&mut self) -> &mut Self {
        let mut r = registry(self);
        if r.find::<ResourceSnapshot<R>>().is_none() {
            r.types.push(Box::new(ResourceSnapshot::<R>::new()));
        }
        self
    }

    fn rollback_resource_with_copy<R: Resource + Copy>(&mut self) -> &mut Self {
        self.rollback_resource_with_clone::<R>()
    }

    fn rollback_component_with_serde<
        T: Component<Mutability = Mutable> + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self {
        self.rollback_component_with_clone::<T>();
        registry(self).component_serde::<T>();
        self
    }

    fn rollback_resource_with_serde<
        R: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self {
        self.rollback_resource_with_clone::<R>();
        registry(self).resource_serde::<R>();
        self
    }

    fn rollback_component_map_entities<T: Component<Mutability = Mutable> + Clone + MapEntities>(
        &mut self,
    ) -> &mut Self {
        self.rollback_component_with_clone::<T>();
        registry(self).component_map::<T>();
        self
    }

    fn rollback_resource_map_entities<R: Resource + Clone + MapEntities>(&mut self) -> &mut Self {
        self.rollback_resource_with_clone::<R>();
        registry(self).resource_map::<R>();
        self
    }

    fn checksum_component_with_hash<T: Component<Mutability = Mutable> + Clone + Hash>(
        &mut self,
    ) -> &mut Self {
        registry(self).component_checksum::<T>(|t| stable_hash(t));
        self
    }

    fn checksum_component<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
        f: fn(&T) -> u64,
    ) -> &mut Self {
        registry(self).component_checksum::<T>(f);
        self
    }

    fn checksum_resource_with_hash<R: Resource + Clone + Hash>(&mut self) -> &mut Self {
        registry(self).resource_checksum::<R>(|r| stable_hash(r));
        self
    }

    fn checksum_resource<R: Resource + Clone>(&mut self, f: fn(&R) -> u64) -> &mut Self {
        registry(self).resource_checksum::<R>(f);
        self
    }

    fn rollback_message<M: Message>(&mut self) -> &mut Self {
        self.add_message::<M>();
        registry(self)
            .types
            .push(Box::new(MessageSnapshot::<M>(PhantomData)));
        self.world_mut()
            .get_resource_or_insert_with(MessageClears::default)
            .0
            .push(clear_messages::<M>);
        self
    }

    fn rollback_state<
        S: FreelyMutableState + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self {
        self.rollback_resource_with_clone::<NextState<S>>();
        if let Some(s) = registry(self).find::<ResourceSnapshot<NextState<S>>>() {
            s.serde = Some(ResourceSerde {
                ser: |n| {
                    let pending = n.as_ref().map(|n| match n {
                        NextState::Unchanged => None,
                        NextState::Pending(s) => Some((s.clone(), true)),
                        NextState::PendingIfDifferent(s) => Some((s.clone(), false)),
                    });
                    encode(&pending)
                },
                de: |b| {
                    Ok(decode::<Option<Option<(S, bool)>>>(b)?.map(|n| match n {
                        None => NextState::Unchanged,
                        Some((s, true)) => NextState::Pending(s),
                        Some((s, false)) => NextState::PendingIfDifferent(s),
                    }))
                },
            });
        }
        registry(self)
            .types
            .push(Box::new(StateSnapshot::<S>::new()));
        self.world_mut()
            .get_resource_or_insert_with(RollbackStates::default)
            .0 = true;
        self
    }
}

/// Registers what every rollback app rolls back: the set of rollback entities
/// (first), the id counter, the rollback clock and `ChildOf`.
pub(super) fn register_builtins(app: &mut App) {
    if !app.world().contains_resource::<Registry>() {
        app.init_resource::<Registry>();
    }
    {
        let mut registry = app.world_mut().resource_mut::<Registry>();
        registry.types.insert(0, Box::new(EntitySnapshot::new()));
    }
    app.rollback_resource_with_serde::<RollbackIds>()
        .rollback_resource_with_clone::<Time<RollbackTime>>();
    {
        let mut registry = app.world_mut().resource_mut::<Registry>();
        if let Some(s) = registry.find::<ResourceSnapshot<Time<RollbackTime>>>() {
            s.serde = Some(ResourceSerde {
                ser: |t| encode(&t.as_ref().map(|t| t.elapsed())),
                de: |b| {
                    Ok(decode::<Option<Duration>>(b)?.map(|elapsed| {
                        let mut t = Time::<RollbackTime>::default();
                        t.advance_by(elapsed);
                        t
                    }))
                },
            });
        }
        if registry.find::<ImmutableSnapshot<ChildOf>>().is_none() {
            registry.types.push(Box::new(
                ImmutableSnapshot::<ChildOf>::new(
                    Some(|c, m| c.0 = m.get(&c.0).copied().unwrap_or(c.0)),
                    Some(Serde {
                        ser: |c| encode(&c.0.to_bits()),
                        de: |b| {
                            let bits = decode::<u64>(b)?;
                            Entity::try_from_bits(bits)
                                .map(ChildOf)
                                .ok_or(SnapshotError::BadEntity { bits })
                        },
                    }),
                )
                .referring(|c| c.0),
            ));
        }
    }
}
