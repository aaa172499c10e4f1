//! Per-type snapshot ring buffers: saving, loading and checksumming the
//! rolled-back part of a Bevy world.

use std::any::type_name;
use std::hash::{BuildHasher, Hash};

use bevy_ecs::component::Mutable;
use bevy_ecs::entity::{EntityHashMap, MapEntities};
use bevy_ecs::prelude::*;
use bevy_ecs::query::QueryState;
use gamenet::rollback::Frame;

/// Marks an entity for rollback, with an id that is the same on every peer.
///
/// Add it with [`AddRollback::add_rollback`] from systems of the rollback
/// schedule (ids come from a rolled-back counter, so every peer hands out the
/// same ones in the same order).
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Rollback(pub u32);

/// The next rollback id; rolled back itself.
#[derive(
    Resource, Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RollbackIds {
    next: u32,
}

impl RollbackIds {
    /// Takes the next id.
    pub fn take(&mut self) -> Rollback {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        Rollback(id)
    }
}

/// Adds [`Rollback`] to entities being spawned.
pub trait AddRollback {
    /// Marks the entity for rollback with the next id.
    fn add_rollback(&mut self) -> &mut Self;
}

impl AddRollback for EntityCommands<'_> {
    fn add_rollback(&mut self) -> &mut Self {
        self.queue(|mut entity: EntityWorldMut| {
            let id = entity.world_scope(|world| {
                world
                    .get_resource_or_insert_with(RollbackIds::default)
                    .take()
            });
            entity.insert(id);
        })
    }
}

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

/// Largest decoded snapshot part, against hostile sizes.
const MAX_PART: usize = 64 << 20;

/// Encodes a value for a snapshot.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, String> {
    bitcode::serialize(value).map_err(|e| e.to_string())
}

/// Decodes a snapshot value from a peer.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    if bytes.len() > MAX_PART {
        return Err("snapshot part too large".into());
    }
    bitcode::deserialize(bytes).map_err(|e| e.to_string())
}

pub(crate) fn saved<'a, T>(
    ring: &'a [(Frame, T)],
    len: usize,
    frame: Frame,
    name: &str,
) -> Result<&'a T, String> {
    match ring.get(frame as usize % len.max(1)) {
        Some((f, v)) if *f == frame && ring.len() == len.max(1) => Ok(v),
        _ => Err(format!("no saved {name} at frame {frame}")),
    }
}

/// Serializer and deserializer of a type's saved entries.
pub(crate) struct Serde<T> {
    pub ser: Encoder<T>,
    pub de: Decoder<T>,
}

/// Encodes a type's saved entries.
type Encoder<T> = fn(&[(u32, T)]) -> Result<Vec<u8>, String>;
/// Decodes a type's saved entries: (rollback id, value).
type Decoder<T> = fn(&[u8]) -> Result<Entries<T>, String>;
type Entries<T> = Vec<(u32, T)>;

impl<T> Clone for Serde<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Serde<T> {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Serde<T> {
    pub fn new() -> Self {
        Self {
            ser: |v| encode(v),
            de: |b| decode(b),
        }
    }
}

/// Rollback entities of the current world, by id.
fn entities_by_id(world: &mut World) -> std::collections::HashMap<u32, Entity> {
    world
        .query::<(Entity, &Rollback)>()
        .iter(world)
        .map(|(e, r)| (r.0, e))
        .collect()
}

/// The ring slot of `frame`, the ring grown to `len` first.
fn slot_of<T: Default>(ring: &mut Vec<(Frame, T)>, len: usize, frame: Frame) -> usize {
    if ring.len() != len {
        ring.clear();
        ring.resize_with(len.max(1), || (Frame::MAX, T::default()));
    }
    frame as usize % ring.len()
}

type Checksummer<T> = fn(&T) -> u64;
type Mapper<T> = fn(&mut T, &mut EntityHashMap<Entity>);

/// The set of rollback entities per frame; loading it despawns entities born
/// after the frame and respawns those that died after it.
pub(crate) struct EntitySnapshot {
    ring: Vec<(Frame, Vec<(u32, Entity)>)>,
    query: Option<QueryState<(Entity, &'static Rollback)>>,
}

impl EntitySnapshot {
    pub fn new() -> Self {
        Self {
            ring: Vec::new(),
            query: None,
        }
    }
}

impl Snapshotter for EntitySnapshot {
    fn name(&self) -> &'static str {
        "rollback entities"
    }

    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, String> {
        let saved = saved(&self.ring, len, frame, self.name())?;
        let ids: Vec<(u32, u64)> = saved.iter().map(|(id, e)| (*id, e.to_bits())).collect();
        encode(&ids)
    }

    fn read(
        &mut self,
        world: &mut World,
        bytes: &[u8],
        cx: &mut LoadContext<'_>,
    ) -> Result<(), String> {
        let ids: Vec<(u32, u64)> = decode(bytes)?;
        let current: Vec<Entity> = entities_by_id(world).into_values().collect();
        for e in current {
            world.despawn(e);
        }
        for (id, theirs) in ids {
            let ours = world.spawn(Rollback(id)).id();
            if let Some(theirs) = Entity::try_from_bits(theirs) {
                cx.remap.insert(theirs, ours);
            }
        }
        Ok(())
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let slot = slot_of(&mut self.ring, len, frame);
        let query = self.query.get_or_insert_with(|| world.query());
        let (f, buf) = &mut self.ring[slot];
        *f = frame;
        buf.clear();
        let mut sum = 0u64;
        for (e, r) in query.iter(world) {
            buf.push((r.0, e));
            sum = sum.wrapping_add(stable_hash(&r.0));
        }
        Some(sum)
    }

    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>) {
        let slot = slot_of(&mut self.ring, len, frame);
        let query = self.query.get_or_insert_with(|| world.query());
        let (f, saved) = &self.ring[slot];
        if *f != frame {
            tracing::error!("rollback: no entity snapshot of frame {frame}");
            return;
        }
        let current: EntityHashMap<u32> = query.iter(world).map(|(e, r)| (e, r.0)).collect();
        if saved.len() == current.len() && saved.iter().all(|(id, e)| current.get(e) == Some(id)) {
            return;
        }
        let saved_ids: std::collections::HashSet<u32> = saved.iter().map(|(id, _)| *id).collect();
        let current_ids: std::collections::HashMap<u32, Entity> =
            current.iter().map(|(e, id)| (*id, *e)).collect();
        for (e, id) in &current {
            if !saved_ids.contains(id) {
                world.despawn(*e);
            }
        }
        for &(id, old) in saved {
            match current_ids.get(&id) {
                Some(&now) if now == old => {}
                Some(&now) => {
                    cx.remap.insert(old, now);
                }
                None => {
                    let new = world.spawn(Rollback(id)).id();
                    for target in cx.remap.values_mut() {
                        if *target == old {
                            *target = new;
                        }
                    }
                    cx.remap.insert(old, new);
                }
            }
        }
    }
}

/// Snapshots of a mutable component, cloned.
pub(crate) struct ComponentSnapshot<T: Component<Mutability = Mutable> + Clone> {
    ring: Vec<(Frame, Vec<(u32, T)>)>,
    save_query: Option<QueryState<(&'static Rollback, &'static T)>>,
    load_query: Option<QueryState<(Entity, &'static Rollback, Option<&'static mut T>)>>,
    checksum: Option<Checksummer<T>>,
    map: Option<Mapper<T>>,
    pub serde: Option<Serde<T>>,
}

impl<T: Component<Mutability = Mutable> + Clone> ComponentSnapshot<T> {
    pub fn new() -> Self {
        Self {
            ring: Vec::new(),
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
    ring: &[(Frame, Vec<(u32, T)>)],
    len: usize,
    frame: Frame,
) -> Result<Vec<u8>, String> {
    let name = type_name::<T>();
    let serde = serde.ok_or_else(|| not_serializable(name))?;
    (serde.ser)(saved(ring, len, frame, name)?)
}

/// Inserts a component type's entries from a late-join snapshot.
fn read_entries<T: Component + Clone>(
    serde: Option<Serde<T>>,
    world: &mut World,
    bytes: &[u8],
    map: Option<Mapper<T>>,
    cx: &mut LoadContext<'_>,
) -> Result<(), String> {
    let serde = serde.ok_or_else(|| not_serializable(type_name::<T>()))?;
    insert_entries(world, (serde.de)(bytes)?, map, cx)
}

/// Inserts late-join entries by rollback id, fixing entity references.
fn insert_entries<T: Component + Clone>(
    world: &mut World,
    entries: Vec<(u32, T)>,
    map: Option<Mapper<T>>,
    cx: &mut LoadContext<'_>,
) -> Result<(), String> {
    let by_id = entities_by_id(world);
    for (id, mut t) in entries {
        let Some(&e) = by_id.get(&id) else {
            return Err(format!(
                "snapshot names rollback entity {id}, which it does not hold"
            ));
        };
        if let Some(map) = map {
            map(&mut t, cx.remap);
        }
        world.entity_mut(e).insert(t);
    }
    Ok(())
}

impl<T: Component<Mutability = Mutable> + Clone> Snapshotter for ComponentSnapshot<T> {
    fn name(&self) -> &'static str {
        type_name::<T>()
    }

    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, String> {
        write_entries(self.serde, &self.ring, len, frame)
    }

    fn read(
        &mut self,
        world: &mut World,
        bytes: &[u8],
        cx: &mut LoadContext<'_>,
    ) -> Result<(), String> {
        read_entries(self.serde, world, bytes, self.map, cx)
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let slot = slot_of(&mut self.ring, len, frame);
        let query = self.save_query.get_or_insert_with(|| world.query());
        let (f, buf) = &mut self.ring[slot];
        *f = frame;
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
        let slot = slot_of(&mut self.ring, len, frame);
        let query = self.load_query.get_or_insert_with(|| world.query());
        let (f, saved) = &self.ring[slot];
        if *f != frame {
            tracing::error!(
                "rollback: no snapshot of {} at frame {frame}",
                type_name::<T>()
            );
            return;
        }
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
    ring: Vec<(Frame, Vec<(u32, T)>)>,
    checksum: Option<Checksummer<T>>,
    map: Option<Mapper<T>>,
    serde: Option<Serde<T>>,
}

impl<T: Component + Clone + PartialEq> ImmutableSnapshot<T> {
    pub fn new(map: Option<Mapper<T>>, serde: Option<Serde<T>>) -> Self {
        Self {
            ring: Vec::new(),
            checksum: None,
            map,
            serde,
        }
    }
}

impl<T: Component + Clone + PartialEq> Snapshotter for ImmutableSnapshot<T> {
    fn name(&self) -> &'static str {
        type_name::<T>()
    }

    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, String> {
        write_entries(self.serde, &self.ring, len, frame)
    }

    fn read(
        &mut self,
        world: &mut World,
        bytes: &[u8],
        cx: &mut LoadContext<'_>,
    ) -> Result<(), String> {
        read_entries(self.serde, world, bytes, self.map, cx)
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let slot = slot_of(&mut self.ring, len, frame);
        let mut query = world.query::<(&Rollback, &T)>();
        let (f, buf) = &mut self.ring[slot];
        *f = frame;
        buf.clear();
        buf.extend(query.iter(world).map(|(r, t)| (r.0, t.clone())));
        self.checksum.map(|hash| {
            buf.iter().fold(0u64, |s, (id, t)| {
                s.wrapping_add(stable_hash(&(id, hash(t))))
            })
        })
    }

    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>) {
        let slot = slot_of(&mut self.ring, len, frame);
        let (f, saved) = &self.ring[slot];
        if *f != frame {
            tracing::error!(
                "rollback: no snapshot of {} at frame {frame}",
                type_name::<T>()
            );
            return;
        }
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

/// Snapshots of a resource, cloned.
pub(crate) struct ResourceSnapshot<R: Resource + Clone> {
    ring: Vec<(Frame, Option<R>)>,
    checksum: Option<Checksummer<R>>,
    map: Option<Mapper<R>>,
    pub serde: Option<ResourceSerde<R>>,
}

/// Serializer and deserializer of a resource.
pub(crate) struct ResourceSerde<R> {
    pub ser: fn(&Option<R>) -> Result<Vec<u8>, String>,
    pub de: fn(&[u8]) -> Result<Option<R>, String>,
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
            ring: Vec::new(),
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

    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, String> {
        let serde = self.serde.ok_or_else(|| not_serializable(self.name()))?;
        (serde.ser)(saved(&self.ring, len, frame, self.name())?)
    }

    fn read(
        &mut self,
        world: &mut World,
        bytes: &[u8],
        cx: &mut LoadContext<'_>,
    ) -> Result<(), String> {
        let serde = self.serde.ok_or_else(|| not_serializable(self.name()))?;
        match (serde.de)(bytes)? {
            Some(mut r) => {
                if let Some(map) = self.map {
                    map(&mut r, cx.remap);
                }
                world.insert_resource(r);
            }
            None => {
                world.remove_resource::<R>();
            }
        }
        Ok(())
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let slot = slot_of(&mut self.ring, len, frame);
        let r = world.get_resource::<R>();
        let sum = self.checksum.map(|hash| r.map(hash).unwrap_or(0));
        self.ring[slot] = (frame, r.cloned());
        sum
    }

    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>) {
        let slot = slot_of(&mut self.ring, len, frame);
        let (f, saved) = &self.ring[slot];
        if *f != frame {
            tracing::error!(
                "rollback: no snapshot of {} at frame {frame}",
                type_name::<R>()
            );
            return;
        }
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
    pub types: Vec<Box<dyn Configure>>,
    pub remap: EntityHashMap<Entity>,
}

impl Registry {
    /// Serializes every rolled-back type's state at `frame`.
    pub fn write_all(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, String> {
        let mut parts = Vec::with_capacity(self.types.len());
        for t in &mut self.types {
            parts.push((gamenet::rollback::part_id(t.name()), t.write(len, frame)?));
        }
        encode(&parts)
    }

    /// Replaces the rolled-back world with a snapshot from `write_all`.
    pub fn read_all(&mut self, world: &mut World, bytes: &[u8]) -> Result<(), String> {
        let parts: Vec<(u64, Vec<u8>)> = decode(bytes)?;
        if parts.len() != self.types.len() {
            return Err(format!(
                "snapshot has {} parts, this game rolls back {} types",
                parts.len(),
                self.types.len()
            ));
        }
        let mut remap = EntityHashMap::default();
        let mut cx = LoadContext { remap: &mut remap };
        for (t, (id, bytes)) in self.types.iter_mut().zip(parts) {
            if id != gamenet::rollback::part_id(t.name()) {
                return Err(format!("snapshot parts differ from ours at {}", t.name()));
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
