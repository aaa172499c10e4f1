//! The entity table: every entity known here, in rows that are reused. Ids
//! map to slots; per-peer state is kept by slot too, so the paths that run
//! for every update index arrays instead of looking ids up.

use std::collections::HashMap;

use super::types::{Entity, NetId};

/// An index into the entity table; ids map to slots, which are reused.
pub(super) type Slot = u32;

/// An entity in the table.
#[derive(Debug)]
pub(super) struct Record {
    /// Its id.
    pub(super) id: NetId,
    /// Its type, owner and fields.
    pub(super) entity: Entity,
    /// How urgent its updates are, when this peer owns it.
    pub(super) priority: f32,
}

/// Every entity known here, by slot.
#[derive(Debug, Default)]
pub(super) struct Table {
    /// Per slot: the entity there, if any.
    records: Vec<Option<Record>>,
    /// Emptied slots, reused first.
    free: Vec<Slot>,
    /// Slots by id (std's keyed hasher: ids come from peers).
    index: HashMap<NetId, Slot>,
}

impl Table {
    /// The entity in a slot.
    pub(super) fn get(&self, slot: Slot) -> Option<&Record> {
        self.records.get(slot as usize).and_then(Option::as_ref)
    }

    /// The entity in a slot, to change it.
    pub(super) fn get_mut(&mut self, slot: Slot) -> Option<&mut Record> {
        self.records.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// The slot of an id.
    pub(super) fn slot_of(&self, id: NetId) -> Option<Slot> {
        self.index.get(&id).copied()
    }

    /// Whether an id is in use.
    pub(super) fn contains(&self, id: NetId) -> bool {
        self.index.contains_key(&id)
    }

    /// The slot of an id and its entity.
    pub(super) fn find(&self, id: NetId) -> Option<(Slot, &Record)> {
        let slot = self.slot_of(id)?;
        Some((slot, self.get(slot)?))
    }

    /// Every entity, in slot order.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Record> + '_ {
        self.records.iter().flatten()
    }

    /// Adds an entity in a free slot (or a new one).
    pub(super) fn insert(&mut self, id: NetId, entity: Entity) -> Slot {
        let record = Record {
            id,
            entity,
            priority: 1.0,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                self.records[slot as usize] = Some(record);
                slot
            }
            None => {
                self.records.push(Some(record));
                (self.records.len() - 1) as Slot
            }
        };
        self.index.insert(id, slot);
        slot
    }

    /// Empties a slot; the entity that was there.
    pub(super) fn remove(&mut self, slot: Slot) -> Option<Record> {
        let record = self.records.get_mut(slot as usize).and_then(Option::take)?;
        self.index.remove(&record.id);
        self.free.push(slot);
        Some(record)
    }

    /// Ids of entities matching `keep`, in id order.
    pub(super) fn sorted_ids(&self, keep: impl Fn(&Entity) -> bool) -> Vec<(NetId, Slot)> {
        let mut ids: Vec<(NetId, Slot)> = self
            .records
            .iter()
            .enumerate()
            .filter_map(|(slot, r)| r.as_ref().map(|r| (r, slot as Slot)))
            .filter(|(r, _)| keep(&r.entity))
            .map(|(r, slot)| (r.id, slot))
            .collect();
        ids.sort_unstable();
        ids
    }
}
