//! Every rolled-back type, in registration order, and the late-join snapshot
//! of them all.

use bevy_ecs::component::Mutable;
use bevy_ecs::entity::{EntityHashMap, MapEntities};
use bevy_ecs::prelude::*;
use gamenet::rollback::Frame;

use super::serde::{Frames, Serde, SnapshotLimits, put_u32};
use super::{
    Checksummer, ComponentSnapshot, LoadContext, ResourceSerde, ResourceSnapshot, SnapshotError,
    Snapshotter, StageContext, Staged,
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
    /// Serializes every rolled-back type's state at `frame`: the number of
    /// parts, then per type its part id, length and bytes.
    pub fn write_all(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, SnapshotError> {
        let mut out = Vec::new();
        put_u32(&mut out, self.types.len());
        for t in &mut self.types {
            let part = t.write(len, frame)?;
            out.extend_from_slice(&gamenet::rollback::part_id(t.name()).to_le_bytes());
            put_u32(&mut out, part.len());
            out.extend_from_slice(&part);
        }
        Ok(out)
    }

    /// Replaces the rolled-back world with a snapshot from `write_all`, all or
    /// nothing: every part is decoded and checked within `limits` first
    /// ([`Registry::stage_all`]), and on an error the world is left as it was.
    pub fn read_all(
        &mut self,
        world: &mut World,
        bytes: &[u8],
        limits: SnapshotLimits,
    ) -> Result<(), SnapshotError> {
        let (staged, _) = self.stage_all(bytes, limits)?;
        let mut remap = EntityHashMap::default();
        let mut lcx = LoadContext { remap: &mut remap };
        for apply in staged {
            apply(world, &mut lcx);
        }
        Ok(())
    }

    /// Decodes and checks every part of a snapshot from `write_all` within
    /// `limits`, without touching a world: the parts, each ready to apply,
    /// and what the checks counted.
    pub fn stage_all(
        &mut self,
        bytes: &[u8],
        limits: SnapshotLimits,
    ) -> Result<(Vec<Staged>, StageContext), SnapshotError> {
        if bytes.len() > limits.max_bytes {
            return Err(SnapshotError::TooLarge {
                len: bytes.len(),
                max: limits.max_bytes,
            });
        }
        let mut f = Frames(bytes);
        let parts = f.u32()? as usize;
        if parts != self.types.len() {
            return Err(SnapshotError::PartCount {
                theirs: parts,
                ours: self.types.len(),
            });
        }
        let mut cx = StageContext::new(limits);
        let mut staged = Vec::with_capacity(parts);
        for t in &mut self.types {
            let id = f.u64()?;
            let len = f.u32()? as usize;
            let part = f.take(len)?;
            if id != gamenet::rollback::part_id(t.name()) {
                return Err(SnapshotError::PartMismatch { name: t.name() });
            }
            staged.push(t.stage(part, &mut cx)?);
        }
        f.finish()?;
        Ok((staged, cx))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{EntitySnapshot, Rollback};

    /// A rolled-back position.
    #[derive(Component, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Pos(i32);

    /// A rolled-back score.
    #[derive(Resource, Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Score(u32);

    const RING: usize = 8;

    /// A registry of rollback entities, `Pos` and `Score`, all with serde.
    fn registry() -> Registry {
        let mut r = Registry::default();
        r.types.push(Box::new(EntitySnapshot::new()));
        r.component_checksum::<Pos>(|p| p.0 as u64);
        r.component_serde::<Pos>();
        r.resource_checksum::<Score>(|s| s.0 as u64);
        r.resource_serde::<Score>();
        r
    }

    /// A world of `n` rollback entities at `Pos(k * step)`, and a score.
    fn world(n: u32, step: i32, score: u32) -> World {
        let mut w = World::new();
        for k in 0..n {
            w.spawn((Rollback(k), Pos(k as i32 * step)));
        }
        w.insert_resource(Score(score));
        w
    }

    /// The world's rollback entities with their positions, and the score.
    fn contents(w: &mut World) -> (Vec<(u32, Option<i32>)>, Option<u32>) {
        let mut q = w.query::<(&Rollback, Option<&Pos>)>();
        let mut v: Vec<_> = q.iter(w).map(|(r, p)| (r.0, p.map(|p| p.0))).collect();
        v.sort();
        (v, w.get_resource::<Score>().map(|s| s.0))
    }

    /// The snapshot of `w` at frame 0.
    fn snapshot(w: &mut World) -> Vec<u8> {
        let mut r = registry();
        for t in &mut r.types {
            t.save(w, RING, 0);
        }
        r.write_all(RING, 0).unwrap()
    }

    /// A snapshot whose parts are `parts`, each with the part id of the
    /// registry's type at its place.
    fn framed(parts: &[Vec<u8>]) -> Vec<u8> {
        let r = registry();
        let mut out = Vec::new();
        put_u32(&mut out, parts.len());
        for (t, p) in r.types.iter().zip(parts) {
            out.extend_from_slice(&gamenet::rollback::part_id(t.name()).to_le_bytes());
            put_u32(&mut out, p.len());
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn a_snapshot_loads_whole() {
        let mut host = world(3, 10, 7);
        let data = snapshot(&mut host);
        let mut joiner = world(5, 1, 1);
        registry()
            .read_all(&mut joiner, &data, SnapshotLimits::default())
            .unwrap();
        assert_eq!(contents(&mut joiner), contents(&mut host));
    }

    #[test]
    fn a_snapshot_naming_ten_million_entities_is_refused_untouched() {
        // Ten million entities in a few bytes: the count alone says so.
        let mut entities = Vec::new();
        put_u32(&mut entities, 10_000_000);
        entities.extend_from_slice(&[0; 12]);
        let mut empty = Vec::new();
        put_u32(&mut empty, 0);
        let data = framed(&[
            entities,
            empty,
            crate::snapshot::encode(&Some(Score(1))).unwrap(),
        ]);
        let mut joiner = world(2, 5, 3);
        let before = contents(&mut joiner);
        let started = std::time::Instant::now();
        let e = registry().read_all(&mut joiner, &data, SnapshotLimits::default());
        assert!(
            matches!(
                e,
                Err(SnapshotError::TooMany {
                    what: "rollback entities",
                    count: 10_000_000,
                    max: 65_536
                })
            ),
            "{e:?}"
        );
        assert_eq!(contents(&mut joiner), before);
        // Within the limit but more than the bytes could hold: refused too,
        // before anything is allocated for them.
        let generous = SnapshotLimits {
            max_entities: usize::MAX,
            ..SnapshotLimits::default()
        };
        let e = registry().read_all(&mut joiner, &data, generous);
        assert!(matches!(e, Err(SnapshotError::Truncated)), "{e:?}");
        assert_eq!(contents(&mut joiner), before);
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn a_snapshot_failing_half_way_leaves_the_world_unchanged() {
        let mut host = world(4, 10, 7);
        let data = snapshot(&mut host);
        let mut joiner = world(2, 5, 3);
        let before = contents(&mut joiner);
        // Over the component limit: the entity part decoded fine first.
        let tight = SnapshotLimits {
            max_components: 3,
            ..SnapshotLimits::default()
        };
        let e = registry().read_all(&mut joiner, &data, tight);
        assert!(
            matches!(
                e,
                Err(SnapshotError::TooMany {
                    what: "component values",
                    ..
                })
            ),
            "{e:?}"
        );
        assert_eq!(contents(&mut joiner), before);
        // The last part cut short: everything before it decoded, nothing
        // applied.
        let e = registry().read_all(
            &mut joiner,
            &data[..data.len() - 1],
            SnapshotLimits::default(),
        );
        assert!(e.is_err());
        assert_eq!(contents(&mut joiner), before);
        // A component of an entity the snapshot does not hold.
        let mut entities = Vec::new();
        put_u32(&mut entities, 1);
        entities.extend_from_slice(&0u32.to_le_bytes());
        entities.extend_from_slice(&0u64.to_le_bytes());
        let pos = Serde::<Pos>::new()
            .write_entries(&[(0, Pos(1)), (9, Pos(2))])
            .unwrap();
        let data = framed(&[
            entities,
            pos,
            crate::snapshot::encode(&Some(Score(1))).unwrap(),
        ]);
        let e = registry().read_all(&mut joiner, &data, SnapshotLimits::default());
        assert!(
            matches!(e, Err(SnapshotError::UnknownEntity { id: 9 })),
            "{e:?}"
        );
        assert_eq!(contents(&mut joiner), before);
        // Over the byte limit.
        let small = SnapshotLimits {
            max_bytes: 16,
            ..SnapshotLimits::default()
        };
        let e = registry().read_all(&mut joiner, &data, small);
        assert!(matches!(e, Err(SnapshotError::TooLarge { .. })), "{e:?}");
        assert_eq!(contents(&mut joiner), before);
    }
}
