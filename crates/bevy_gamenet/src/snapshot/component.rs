//! Component snapshots: mutable components cloned and written back,
//! immutable ones (such as `ChildOf`) re-inserted where they differ.

use std::any::type_name;

use bevy_ecs::component::Mutable;
use bevy_ecs::entity::EntityHashMap;
use bevy_ecs::prelude::*;
use bevy_ecs::query::QueryState;
use gamenet::rollback::Frame;

use super::entity::{Rollback, entities_by_id};
use super::serde::Serde;
use super::{
    Checksummer, LoadContext, Mapper, Ring, SnapshotError, Snapshotter, StageContext, Staged,
    not_serializable, stable_hash,
};

/// Snapshots of a mutable component, cloned.
pub(crate) struct ComponentSnapshot<T: Component<Mutability = Mutable> + Clone> {
    /// (rollback id, value) of every entity with `T`, per frame.
    ring: Ring<Vec<(u32, T)>>,
    /// The query saving reads with, made on the first save.
    save_query: Option<QueryState<(&'static Rollback, &'static T)>>,
    /// The query loading writes with, made on the first load.
    load_query: Option<QueryState<(Entity, &'static Rollback, Option<&'static mut T>)>>,
    /// Its checksum, if it is checksummed.
    pub checksum: Option<Checksummer<T>>,
    /// Fixes its entity references after respawns.
    pub map: Option<Mapper<T>>,
    /// Its encoding for late joiners, if it has one.
    pub serde: Option<Serde<T>>,
}

impl<T: Component<Mutability = Mutable> + Clone> ComponentSnapshot<T> {
    pub fn new() -> Self {
        Self {
            ring: Ring::default(),
            save_query: None,
            load_query: None,
            checksum: None,
            map: None,
            serde: None,
        }
    }
}

/// Serializes the entries of a component type saved at `frame`.
fn write_entries<T>(
    serde: Option<Serde<T>>,
    ring: &Ring<Vec<(u32, T)>>,
    len: usize,
    frame: Frame,
) -> Result<Vec<u8>, SnapshotError> {
    let name = type_name::<T>();
    let serde = serde.ok_or_else(|| not_serializable(name))?;
    serde.write_entries(ring.saved(len, frame, name)?)
}

/// Decodes a component type's entries from a late-join snapshot, within the
/// limit and for the snapshot's entities only; applying them inserts each on
/// the entity standing for its rollback id, entity references fixed.
fn stage_entries<T: Component + Clone>(
    serde: Option<Serde<T>>,
    bytes: &[u8],
    map: Option<Mapper<T>>,
    refers: Option<fn(&T) -> Entity>,
    cx: &mut StageContext,
) -> Result<Staged, SnapshotError> {
    let serde = serde.ok_or_else(|| not_serializable(type_name::<T>()))?;
    let entries = serde.read_entries(bytes, cx.components_left)?;
    cx.components_left -= entries.len();
    cx.check_ids(&entries)?;
    if let Some(refers) = refers {
        cx.check_references(&entries, refers)?;
    }
    Ok(Box::new(
        move |world: &mut World, cx: &mut LoadContext<'_>| {
            let by_id = entities_by_id(world);
            for (id, mut t) in entries {
                let Some(&e) = by_id.get(&id) else {
                    continue;
                };
                if let Some(map) = map {
                    map(&mut t, cx.remap);
                }
                world.entity_mut(e).insert(t);
            }
        },
    ))
}

impl<T: Component<Mutability = Mutable> + Clone> Snapshotter for ComponentSnapshot<T> {
    fn name(&self) -> &'static str {
        type_name::<T>()
    }

    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        write_entries(self.serde, &self.ring, len, frame)
    }

    fn stage(&mut self, bytes: &[u8], cx: &mut StageContext) -> Result<Staged, SnapshotError> {
        stage_entries(self.serde, bytes, self.map, None, cx)
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let query = self.save_query.get_or_insert_with(|| world.query());
        let buf = self.ring.slot_for(len, frame);
        buf.clear();
        let mut sum = 0u64;
        match self.checksum {
            Some(hash) => {
                for (r, t) in query.iter(world) {
                    sum = sum.wrapping_add(stable_hash(&(r.0, hash(t))));
                    buf.push((r.0, t.clone()));
                }
                Some(sum)
            }
            None => {
                buf.extend(query.iter(world).map(|(r, t)| (r.0, t.clone())));
                None
            }
        }
    }

    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>) {
        let query = self.load_query.get_or_insert_with(|| world.query());
        let Some(saved) = self.ring.get(len, frame) else {
            tracing::error!(
                "rollback: no snapshot of {} at frame {frame}",
                type_name::<T>()
            );
            return;
        };
        let map = self.map.filter(|_| !cx.remap.is_empty());
        let value = |t: &T, remap: &mut EntityHashMap<Entity>| {
            let mut t = t.clone();
            if let Some(map) = map {
                map(&mut t, remap);
            }
            t
        };
        // Fast path: entities in the order they were saved in.
        let mut index: Option<std::collections::HashMap<u32, usize>> = None;
        let mut seen = 0usize;
        let mut inserts: Vec<(Entity, T)> = Vec::new();
        let mut removes: Vec<Entity> = Vec::new();
        for (k, (e, r, t)) in query.iter_mut(world).enumerate() {
            let at = match &index {
                None if saved.get(k).is_some_and(|(id, _)| *id == r.0) => Some(k),
                _ => {
                    let index = index.get_or_insert_with(|| {
                        saved
                            .iter()
                            .enumerate()
                            .map(|(i, (id, _))| (*id, i))
                            .collect()
                    });
                    index.get(&r.0).copied()
                }
            };
            match (at, t) {
                (Some(i), Some(mut t)) => {
                    *t = value(&saved[i].1, cx.remap);
                    seen += 1;
                }
                (Some(i), None) => {
                    inserts.push((e, value(&saved[i].1, cx.remap)));
                    seen += 1;
                }
                (None, Some(_)) => removes.push(e),
                (None, None) => {}
            }
        }
        if seen != saved.len() {
            tracing::error!("rollback: {} of {} saved", seen, type_name::<T>());
        }
        for (e, t) in inserts {
            world.entity_mut(e).insert(t);
        }
        for e in removes {
            world.entity_mut(e).remove::<T>();
        }
    }
}

/// Snapshots of an immutable component (such as `ChildOf`): loaded by
/// re-inserting where the value differs.
pub(crate) struct ImmutableSnapshot<T: Component + Clone + PartialEq> {
    /// (rollback id, value) of every entity with `T`, per frame.
    /// (rollback id, value) of every entity with `T`, per frame.
    ring: Ring<Vec<(u32, T)>>,
    /// Its checksum, if it is checksummed.
    checksum: Option<Checksummer<T>>,
    /// Fixes its entity references after respawns.
    map: Option<Mapper<T>>,
    /// Its encoding for late joiners, if it has one.
    serde: Option<Serde<T>>,
    /// The entity a value refers to, which a late-join snapshot must hold
    /// (as `ChildOf`'s parent), if it refers to one.
    refers: Option<fn(&T) -> Entity>,
}

impl<T: Component + Clone + PartialEq> ImmutableSnapshot<T> {
    pub fn new(map: Option<Mapper<T>>, serde: Option<Serde<T>>) -> Self {
        Self {
            ring: Ring::default(),
            checksum: None,
            map,
            serde,
            refers: None,
        }
    }

    /// Checks, in late-join snapshots, that the entity each value refers to
    /// is another of the snapshot's entities and that references make no
    /// cycle.
    pub fn referring(mut self, refers: fn(&T) -> Entity) -> Self {
        self.refers = Some(refers);
        self
    }
}

impl<T: Component + Clone + PartialEq> Snapshotter for ImmutableSnapshot<T> {
    fn name(&self) -> &'static str {
        type_name::<T>()
    }

    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        write_entries(self.serde, &self.ring, len, frame)
    }

    fn stage(&mut self, bytes: &[u8], cx: &mut StageContext) -> Result<Staged, SnapshotError> {
        stage_entries(self.serde, bytes, self.map, self.refers, cx)
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let mut query = world.query::<(&Rollback, &T)>();
        let buf = self.ring.slot_for(len, frame);
        buf.clear();
        buf.extend(query.iter(world).map(|(r, t)| (r.0, t.clone())));
        self.checksum.map(|hash| {
            buf.iter().fold(0u64, |s, (id, t)| {
                s.wrapping_add(stable_hash(&(id, hash(t))))
            })
        })
    }

    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>) {
        let Some(saved) = self.ring.get(len, frame) else {
            tracing::error!(
                "rollback: no snapshot of {} at frame {frame}",
                type_name::<T>()
            );
            return;
        };
        let saved: std::collections::HashMap<u32, &T> =
            saved.iter().map(|(id, t)| (*id, t)).collect();
        let mut query = world.query::<(Entity, &Rollback, Option<&T>)>();
        let mut changes: Vec<(Entity, Option<T>)> = Vec::new();
        for (e, r, t) in query.iter(world) {
            match (saved.get(&r.0), t) {
                (Some(s), current) => {
                    let mut s = (*s).clone();
                    if let Some(map) = self.map {
                        map(&mut s, cx.remap);
                    }
                    if current != Some(&s) {
                        changes.push((e, Some(s)));
                    }
                }
                (None, Some(_)) => changes.push((e, None)),
                (None, None) => {}
            }
        }
        for (e, t) in changes {
            match t {
                Some(t) => {
                    world.entity_mut(e).insert(t);
                }
                None => {
                    world.entity_mut(e).remove::<T>();
                }
            }
        }
    }
}
