//! Resource snapshots, cloned.

use std::any::type_name;

use bevy_ecs::prelude::*;
use gamenet::rollback::Frame;

use super::serde::{decode, encode};
use super::{
    Checksummer, LoadContext, Mapper, Ring, SnapshotError, Snapshotter, StageContext, Staged,
    not_serializable,
};

/// Snapshots of a resource, cloned.
pub(crate) struct ResourceSnapshot<R: Resource + Clone> {
    /// The resource (none if absent), per frame.
    ring: Ring<Option<R>>,
    /// Its checksum, if it is checksummed.
    pub checksum: Option<Checksummer<R>>,
    /// Fixes its entity references after respawns.
    pub map: Option<Mapper<R>>,
    /// Its encoding for late joiners, if it has one.
    pub serde: Option<ResourceSerde<R>>,
}

/// Serializer and deserializer of a resource.
pub(crate) struct ResourceSerde<R> {
    /// Encodes the resource (or its absence) saved at a frame.
    pub ser: fn(&Option<R>) -> Result<Vec<u8>, SnapshotError>,
    /// Decodes it from a late-join snapshot.
    pub de: fn(&[u8]) -> Result<Option<R>, SnapshotError>,
}

impl<R> Clone for ResourceSerde<R> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R> Copy for ResourceSerde<R> {}

impl<R: serde::Serialize + serde::de::DeserializeOwned> ResourceSerde<R> {
    pub fn new() -> Self {
        Self {
            ser: |v| encode(v),
            de: |b| decode(b),
        }
    }
}

impl<R: Resource + Clone> ResourceSnapshot<R> {
    pub fn new() -> Self {
        Self {
            ring: Ring::default(),
            checksum: None,
            map: None,
            serde: None,
        }
    }
}

impl<R: Resource + Clone> Snapshotter for ResourceSnapshot<R> {
    fn name(&self) -> &'static str {
        type_name::<R>()
    }

    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        let serde = self.serde.ok_or_else(|| not_serializable(self.name()))?;
        (serde.ser)(self.ring.saved(len, frame, self.name())?)
    }

    fn stage(&mut self, bytes: &[u8], _: &mut StageContext) -> Result<Staged, SnapshotError> {
        let serde = self.serde.ok_or_else(|| not_serializable(self.name()))?;
        let value = (serde.de)(bytes)?;
        let map = self.map;
        Ok(Box::new(
            move |world: &mut World, cx: &mut LoadContext<'_>| match value {
                Some(mut r) => {
                    if let Some(map) = map {
                        map(&mut r, cx.remap);
                    }
                    world.insert_resource(r);
                }
                None => {
                    world.remove_resource::<R>();
                }
            },
        ))
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let r = world.get_resource::<R>();
        let sum = self.checksum.map(|hash| r.map(hash).unwrap_or(0));
        *self.ring.slot_for(len, frame) = r.cloned();
        sum
    }

    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>) {
        let Some(saved) = self.ring.get(len, frame) else {
            tracing::error!(
                "rollback: no snapshot of {} at frame {frame}",
                type_name::<R>()
            );
            return;
        };
        match saved {
            Some(r) => {
                let mut r = r.clone();
                if let Some(map) = self.map.filter(|_| !cx.remap.is_empty()) {
                    map(&mut r, cx.remap);
                }
                world.insert_resource(r);
            }
            None => {
                world.remove_resource::<R>();
            }
        }
    }
}
