//! Every rolled-back type, in registration order, and the late-join snapshot
//! of them all.

use bevy_ecs::component::Mutable;
use bevy_ecs::entity::{EntityHashMap, MapEntities};
use bevy_ecs::prelude::*;
use gamenet::rollback::Frame;

use super::serde::{Serde, decode, encode};
use super::{
    Checksummer, ComponentSnapshot, LoadContext, ResourceSerde, ResourceSnapshot, SnapshotError,
    Snapshotter,
};

/// Checksum and entity mapping set on a registered type after the fact.
pub(crate) trait Configure: Snapshotter {
    fn as_any(&mut self) -> &mut dyn std::any::Any;
}

impl<T: Snapshotter> Configure for T {
    fn as_any(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// Every rolled-back type, in registration order.
#[derive(Resource, Default)]
pub(crate) struct Registry {
    /// The types' snapshots; the set of rollback entities first.
    pub types: Vec<Box<dyn Configure>>,
    /// Entities respawned by loads: the old entity → the one standing for the
    /// same rollback id now.
    pub remap: EntityHashMap<Entity>,
}

impl Registry {
    /// Serializes every rolled-back type's state at `frame`.
    pub fn write_all(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        let mut parts = Vec::with_capacity(self.types.len());
        for t in &mut self.types {
            parts.push((gamenet::rollback::part_id(t.name()), t.write(len, frame)?));
        }
        encode(&parts)
    }

    /// Replaces the rolled-back world with a snapshot from `write_all`.
    pub fn read_all(&mut self, world: &mut World, bytes: &[u8]) -> Result<(), SnapshotError> {
        let parts: Vec<(u64, Vec<u8>)> = decode(bytes)?;
        if parts.len() != self.types.len() {
            return Err(SnapshotError::PartCount {
                theirs: parts.len(),
                ours: self.types.len(),
            });
        }
        let mut remap = EntityHashMap::default();
        let mut cx = LoadContext { remap: &mut remap };
        for (t, (id, bytes)) in self.types.iter_mut().zip(parts) {
            if id != gamenet::rollback::part_id(t.name()) {
                return Err(SnapshotError::PartMismatch { name: t.name() });
            }
            t.read(world, &bytes, &mut cx)?;
        }
        Ok(())
    }

    pub fn find<S: 'static>(&mut self) -> Option<&mut S> {
        self.types
            .iter_mut()
            .find_map(|t| t.as_any().downcast_mut::<S>())
    }

    /// Sets a component's checksum function, registering it if needed.
    pub fn component_checksum<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
        f: Checksummer<T>,
    ) {
        if self.find::<ComponentSnapshot<T>>().is_none() {
            self.types.push(Box::new(ComponentSnapshot::<T>::new()));
        }
        if let Some(s) = self.find::<ComponentSnapshot<T>>() {
            s.checksum = Some(f);
        }
    }

    pub fn component_serde<
        T: Component<Mutability = Mutable> + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) {
        if let Some(s) = self.find::<ComponentSnapshot<T>>() {
            s.serde = Some(Serde::new());
        }
    }

    pub fn resource_serde<R: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned>(
        &mut self,
    ) {
        if let Some(s) = self.find::<ResourceSnapshot<R>>() {
            s.serde = Some(ResourceSerde::new());
        }
    }

    pub fn component_map<T: Component<Mutability = Mutable> + Clone + MapEntities>(&mut self) {
        if let Some(s) = self.find::<ComponentSnapshot<T>>() {
            s.map = Some(|t, m| t.map_entities(m));
        }
    }

    pub fn resource_checksum<R: Resource + Clone>(&mut self, f: Checksummer<R>) {
        if self.find::<ResourceSnapshot<R>>().is_none() {
            self.types.push(Box::new(ResourceSnapshot::<R>::new()));
        }
        if let Some(s) = self.find::<ResourceSnapshot<R>>() {
            s.checksum = Some(f);
        }
    }

    pub fn resource_map<R: Resource + Clone + MapEntities>(&mut self) {
        if let Some(s) = self.find::<ResourceSnapshot<R>>() {
            s.map = Some(|t, m| t.map_entities(m));
        }
    }
}
