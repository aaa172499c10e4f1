//! Rollback entities: the [`Rollback`] marker with ids the same on every
//! peer, and the snapshot of which of them exist.

use bevy_ecs::entity::EntityHashMap;
use bevy_ecs::prelude::*;
use bevy_ecs::query::QueryState;
use bevy_ecs::reflect::ReflectComponent;
use bevy_reflect::Reflect;
use gamenet::rollback::Frame;

use super::serde::{Frames, put_u32};
use super::{LoadContext, Ring, SnapshotError, Snapshotter, StageContext, Staged, stable_hash};

/// Marks an entity for rollback, with an id that is the same on every peer.
///
/// Add it with [`AddRollback::add_rollback`] from systems of the rollback
/// schedule (ids come from a rolled-back counter, so every peer hands out the
/// same ones in the same order).
#[derive(Component, Reflect, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[reflect(Component, Debug, PartialEq)]
pub struct Rollback(pub u32);

/// The next rollback id; rolled back itself.
#[derive(
    Resource, Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct RollbackIds {
    /// The id the next entity gets.
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

/// Rollback entities of the current world, by id.
pub(super) fn entities_by_id(world: &mut World) -> std::collections::HashMap<u32, Entity> {
    world
        .query::<(Entity, &Rollback)>()
        .iter(world)
        .map(|(e, r)| (r.0, e))
        .collect()
}

/// The set of rollback entities per frame; loading it despawns entities born
/// after the frame and respawns those that died after it.
pub(crate) struct EntitySnapshot {
    /// (rollback id, entity) of every rollback entity, per frame.
    ring: Ring<Vec<(u32, Entity)>>,
    /// The query saving and loading read with, made on first use.
    query: Option<QueryState<(Entity, &'static Rollback)>>,
}

impl EntitySnapshot {
    pub fn new() -> Self {
        Self {
            ring: Ring::default(),
            query: None,
        }
    }
}

impl Snapshotter for EntitySnapshot {
    fn name(&self) -> &'static str {
        "rollback entities"
    }

    /// The count, then per entity its rollback id and entity bits.
    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        let saved = self.ring.saved(len, frame, self.name())?;
        let mut out = Vec::with_capacity(4 + saved.len() * 12);
        put_u32(&mut out, saved.len());
        for (id, e) in saved {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&e.to_bits().to_le_bytes());
        }
        Ok(out)
    }

    fn stage(&mut self, bytes: &[u8], cx: &mut StageContext) -> Result<Staged, SnapshotError> {
        let mut f = Frames(bytes);
        let n = f.count("rollback entities", 12, cx.limits.max_entities)?;
        let mut ids = Vec::with_capacity(n);
        for _ in 0..n {
            let id = f.u32()?;
            let bits = f.u64()?;
            if !cx.ids.insert(id) {
                return Err(SnapshotError::DuplicateEntity { id });
            }
            if cx.entities.insert(bits, id).is_some() {
                return Err(SnapshotError::BadEntity { bits });
            }
            ids.push((id, bits));
        }
        f.finish()?;
        Ok(Box::new(
            move |world: &mut World, cx: &mut LoadContext<'_>| {
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
            },
        ))
    }

    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        let query = self.query.get_or_insert_with(|| world.query());
        let buf = self.ring.slot_for(len, frame);
        buf.clear();
        let mut sum = 0u64;
        for (e, r) in query.iter(world) {
            buf.push((r.0, e));
            sum = sum.wrapping_add(stable_hash(&r.0));
        }
        Some(sum)
    }

    fn load(&mut self, world: &mut World, len: usize, frame: Frame, cx: &mut LoadContext<'_>) {
        let query = self.query.get_or_insert_with(|| world.query());
        let Some(saved) = self.ring.get(len, frame) else {
            tracing::error!("rollback: no entity snapshot of frame {frame}");
            return;
        };
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
