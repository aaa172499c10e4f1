//! Per-peer interest: which of this peer's entities each peer sees. An owned
//! entity entering a peer's scope is spawned there; leaving it, despawned.

use std::collections::BTreeSet;

use super::Replicator;
use super::table::EntityRow;
use super::types::{Fields, NetId};
use super::wire::{self, DESPAWN};
use crate::PeerId;

/// An owned entity in a peer's scope.
#[derive(Debug)]
pub(super) struct Scoped {
    /// The last packet sent before it entered scope: acks of that one and
    /// older say nothing about it.
    pub(super) since: u32,
    /// The newest state the peer acked, and the packet that carried it.
    pub(super) acked: Option<(u32, Fields)>,
    /// Accumulated priority.
    pub(super) priority: f32,
    /// Differs from what the peer acked (and is in the dirty list).
    pub(super) dirty: bool,
    /// The tick that last looked at it: a reused row can be listed twice.
    pub(super) pass: u32,
}

/// Which owned entities a peer has (spawned there), and which it may not see.
#[derive(Debug, Default)]
pub(super) struct Scope {
    /// Per row: the entity, if it is in this peer's scope.
    entries: Vec<Option<Scoped>>,
    /// Entities in scope (the filled entries).
    len: usize,
    /// Entities hidden from this peer.
    pub(super) hidden: BTreeSet<NetId>,
}

impl Scope {
    /// The entity in a row, if in scope.
    pub(super) fn get(&self, row: EntityRow) -> Option<&Scoped> {
        self.entries.get(row as usize).and_then(Option::as_ref)
    }

    /// The entity in a row, if in scope, to change it.
    pub(super) fn get_mut(&mut self, row: EntityRow) -> Option<&mut Scoped> {
        self.entries.get_mut(row as usize).and_then(Option::as_mut)
    }

    /// Entities in scope.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Puts an entity in scope, acks of packets up to `since` saying nothing
    /// about it; false if it was in scope.
    pub(super) fn enter(&mut self, row: EntityRow, since: u32) -> bool {
        let i = row as usize;
        if self.entries.len() <= i {
            self.entries.resize_with(i + 1, || None);
        }
        if self.entries[i].is_some() {
            return false;
        }
        self.entries[i] = Some(Scoped {
            since,
            acked: None,
            priority: 0.0,
            dirty: false,
            pass: 0,
        });
        self.len += 1;
        true
    }

    /// Takes an entity out of scope; false if it was not in it.
    pub(super) fn leave(&mut self, row: EntityRow) -> bool {
        let left = self
            .entries
            .get_mut(row as usize)
            .and_then(Option::take)
            .is_some();
        if left {
            self.len -= 1;
        }
        left
    }
}

impl Replicator {
    /// Shows or hides an owned entity from a peer.
    pub fn set_visible(&mut self, peer: PeerId, id: NetId, visible: bool) {
        let Some(row) = self.table.row_of(id) else {
            return;
        };
        if self
            .table
            .get(row)
            .is_none_or(|r| r.entity.owner != self.id)
        {
            return;
        }
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if visible {
            link.out.scope.hidden.remove(&id);
            self.enter_scope(peer, row);
        } else {
            link.out.scope.hidden.insert(id);
            self.leave_scope(peer, row);
        }
    }

    /// Entities of this peer in a peer's scope.
    pub fn in_scope(&self, peer: PeerId) -> usize {
        self.links.get(&peer).map_or(0, |l| l.out.scope.len())
    }

    /// Spawns an owned entity at a peer, unless hidden from it or there.
    pub(super) fn enter_scope(&mut self, peer: PeerId, row: EntityRow) {
        let Some(r) = self.table.get(row) else {
            return;
        };
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if r.entity.owner != self.id
            || link.out.scope.hidden.contains(&r.id)
            || !link.out.enter(row)
        {
            return;
        }
        let msg = wire::spawn_msg(r.id, &r.entity, &self.schema);
        self.reliable(peer, msg);
    }

    /// Despawns an entity at a peer, if it was in its scope.
    pub(super) fn leave_scope(&mut self, peer: PeerId, row: EntityRow) {
        let Some(id) = self.table.get(row).map(|r| r.id) else {
            return;
        };
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if link.out.leave(row) {
            self.reliable(peer, wire::id_msg(DESPAWN, id));
        }
    }
}
