//! The entity table: every entity known here, in rows that are reused. Ids
//! map to rows; per-peer state is kept by row too, so the paths that run
//! for every update index arrays instead of looking ids up.

use std::collections::HashMap;

use super::types::{EntityState, NetId};
use crate::PeerId;

/// An index into the entity table; ids map to rows, which are reused.
pub(super) type EntityRow = u32;

/// An entity in the table.
#[derive(Debug)]
pub(super) struct Record {
    /// Its id.
    pub(super) id: NetId,
    /// Its type, owner and fields.
    pub(super) entity: EntityState,
    /// How urgent its updates are, when this peer owns it.
    pub(super) priority: f32,
    /// The peer it was taken over from when that peer left (see
    /// [`Replicator::migrate_from`](super::Replicator)): if it joins again, the
    /// entity is forgotten and it sends what it owns now.
    pub(super) inherited_from: Option<PeerId>,
    /// The namespace (see [`namespace`]) it counts against for
    /// [`max_entities_per_peer`](super::ReplicationConfig::max_entities_per_peer):
    /// the peer that announced it first here. It stays charged through
    /// hand-overs and take-overs, until the entity is gone.
    pub(super) charged: u64,
    /// Whether its owner's claim was checked here: it spawned the entity in
    /// its own namespace, was handed it or took it over in view of this peer.
    /// False for an id outside its announcer's namespace that this peer never
    /// saw change hands (it joined later): its creator's own spawn overrides it.
    pub(super) witnessed: bool,
}

/// The namespace of an id: the 32 high bits, the [`fold`] of the peer that
/// made it.
pub(super) fn namespace(id: NetId) -> u64 {
    id.0 >> 32
}

/// A peer id folded into the 32 high bits of the entity ids it makes.
///
/// Two peers' ids (random 128-bit numbers the signaling server hands out)
/// fold alike with odds of 2^-32 per pair: then they share a namespace and a
/// quota, and where both announce the same id, the owner known first keeps it
/// (the other's entity is not shown there) rather than either taking the
/// other's.
pub(super) fn fold(peer: PeerId) -> u64 {
    let v = peer.0;
    ((v >> 64) as u64 ^ v as u64).rotate_left(17) & 0xffff_ffff
}

/// Every entity known here, by row.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// Per row: the entity there, if any.
    records: Vec<Option<Record>>,
    /// Emptied rows, reused first.
    free: Vec<EntityRow>,
    /// Rows by id (std's keyed hasher: ids come from peers).
    index: HashMap<NetId, EntityRow>,
    /// Entities per namespace charged (see [`Record::charged`]).
    charges: HashMap<u64, usize>,
}

impl Table {
    /// The entity in a row.
    pub(super) fn get(&self, row: EntityRow) -> Option<&Record> {
        self.records.get(row as usize).and_then(Option::as_ref)
    }

    /// The entity in a row, to change it.
    pub(super) fn get_mut(&mut self, row: EntityRow) -> Option<&mut Record> {
        self.records.get_mut(row as usize).and_then(Option::as_mut)
    }

    /// The row of an id.
    pub(super) fn row_of(&self, id: NetId) -> Option<EntityRow> {
        self.index.get(&id).copied()
    }

    /// Whether an id is in use.
    pub(super) fn contains(&self, id: NetId) -> bool {
        self.index.contains_key(&id)
    }

    /// The row of an id and its entity.
    pub(super) fn find(&self, id: NetId) -> Option<(EntityRow, &Record)> {
        let row = self.row_of(id)?;
        Some((row, self.get(row)?))
    }

    /// Every entity, in row order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        self.records.iter().flatten()
    }

    /// Every entity with its row, in row order.
    pub(super) fn iter_rows(&self) -> impl Iterator<Item = (EntityRow, &Record)> + '_ {
        self.records
            .iter()
            .enumerate()
            .filter_map(|(row, r)| Some((row as EntityRow, r.as_ref()?)))
    }

    /// Entities charged to a namespace.
    pub(super) fn charged(&self, namespace: u64) -> usize {
        self.charges.get(&namespace).copied().unwrap_or(0)
    }

    /// Charges the entity in a row to another namespace.
    pub(super) fn recharge(&mut self, row: EntityRow, namespace: u64) {
        let Some(r) = self.records.get_mut(row as usize).and_then(Option::as_mut) else {
            return;
        };
        let old = std::mem::replace(&mut r.charged, namespace);
        uncharge(&mut self.charges, old);
        *self.charges.entry(namespace).or_default() += 1;
    }

    /// Adds an entity in a free row (or a new one), charged to `charged`,
    /// its owner's claim `witnessed` or not.
    pub(super) fn insert(
        &mut self,
        id: NetId,
        entity: EntityState,
        charged: u64,
        witnessed: bool,
    ) -> EntityRow {
        *self.charges.entry(charged).or_default() += 1;
        let record = Record {
            id,
            entity,
            priority: 1.0,
            inherited_from: None,
            charged,
            witnessed,
        };
        let row = match self.free.pop() {
            Some(row) => {
                self.records[row as usize] = Some(record);
                row
            }
            None => {
                self.records.push(Some(record));
                (self.records.len() - 1) as EntityRow
            }
        };
        self.index.insert(id, row);
        row
    }

    /// Empties a row; the entity that was there.
    pub(super) fn remove(&mut self, row: EntityRow) -> Option<Record> {
        let record = self.records.get_mut(row as usize).and_then(Option::take)?;
        self.index.remove(&record.id);
        uncharge(&mut self.charges, record.charged);
        self.free.push(row);
        Some(record)
    }

    /// Ids of entities matching `keep`, in id order.
    pub(super) fn sorted_ids(
        &self,
        keep: impl Fn(&EntityState) -> bool,
    ) -> Vec<(NetId, EntityRow)> {
        let mut ids: Vec<(NetId, EntityRow)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(row, r)| r.as_ref().map(|r| (r, row as EntityRow)))
            .filter(|(r, _)| keep(&r.entity))
            .map(|(r, row)| (r.id, row))
            .collect();
        ids.sort_unstable();
        ids
    }
}

/// One entity less charged to a namespace.
fn uncharge(charges: &mut HashMap<u64, usize>, namespace: u64) {
    if let Some(n) = charges.get_mut(&namespace) {
        *n -= 1;
        if *n == 0 {
            charges.remove(&namespace);
        }
    }
}
