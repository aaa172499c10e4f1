//! Who owns what: authority requests, hand-over to another peer, and host
//! migration (what a departed peer owned passes to the lowest remaining id,
//! which announces it).
//!
//! Host migration without agreed membership: each peer sees departures on
//! its own links, so two peers can compute different successors (one lost
//! its link to the lowest id, or has not seen the departure yet). So the
//! successor announces its take-over ([`TAKEOVER`](super::wire::TAKEOVER)),
//! and the others pass the departed peer's entities on only when the
//! announcement comes from the successor they computed themselves from the
//! peers they replicated with when it left: until then the entities stay
//! with the departed owner (shown as they were, never moved by anyone), so no
//! two peers that hear each other name different owners. A peer that cannot
//! hear the successor keeps them unowned until a link heals (then the
//! contest rule of [`Replicator::contested`] settles two take-overs).

use crate::{Misbehavior, PeerId};

use super::Replicator;
use super::error::ReplicationError;
use super::table::EntityRow;
use super::types::{NetId, ReplicationEvent};
use super::wire::{self, REQUEST};

impl Replicator {
    /// Asks an entity's owner for it.
    pub fn request_authority(&mut self, id: NetId) {
        if let Some(e) = self.entity(id)
            && e.owner != self.id
        {
            let owner = e.owner;
            self.reliable(owner, wire::id_msg(REQUEST, id));
        }
    }

    /// Gives an owned entity to another peer, with its current state; every
    /// peer learns the new owner.
    pub fn hand_over(&mut self, id: NetId, to: PeerId) -> Result<(), ReplicationError> {
        if to == self.id {
            return Err(ReplicationError::HandOverToSelf);
        }
        if !self.links.contains_key(&to) {
            return Err(ReplicationError::UnknownPeer(to));
        }
        let row = self.owned_row(id)?;
        let Some(r) = self.table.get_mut(row) else {
            return Err(ReplicationError::UnknownEntity(id));
        };
        r.entity.owner = to;
        // Given away on purpose: no longer the departed owner's to take back.
        r.inherited_from = None;
        let msg = wire::owner_msg(id, &r.entity, &self.schema);
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for p in peers {
            if let Some(link) = self.links.get_mut(&p) {
                link.out.leave(row);
            }
            self.reliable(p, msg.clone());
        }
        self.events
            .push_back(ReplicationEvent::OwnerChanged { id, owner: to });
        Ok(())
    }

    /// A peer left here: what it owned passes to the successor (see
    /// [`Replicator::settle`]); entities waiting for a successor that left
    /// now look for the next one.
    pub(super) fn migrate_from(&mut self, peer: PeerId, was_linked: bool) {
        let waiting: Vec<PeerId> = self
            .departed
            .iter()
            .filter(|(_, s)| **s == peer)
            .map(|(d, _)| *d)
            .collect();
        if was_linked || self.table.iter().any(|r| r.entity.owner == peer) {
            self.settle(peer, was_linked);
        }
        for d in waiting {
            self.settle(d, false);
        }
        for link in self.links.values_mut() {
            link.inc.claims.remove(&peer);
        }
    }

    /// What the departed peer `d` owns here passes to the successor: the
    /// lowest id among this peer and the peers it replicates with. If this
    /// peer is it, it takes the entities over now and announces it (to
    /// everyone when `announce`: `d` was linked, so it may own entities
    /// elsewhere); otherwise they wait for the successor's announcement
    /// (perhaps here already).
    pub(super) fn settle(&mut self, d: PeerId, announce: bool) {
        let successor = self.links.keys().copied().fold(self.id, PeerId::min);
        let rows = self.table.sorted_ids(|e| e.owner == d);
        for &(_, row) in &rows {
            if let Some(r) = self.table.get_mut(row) {
                r.inherited_from.get_or_insert(d);
            }
        }
        let claimed = self
            .links
            .get(&successor)
            .is_some_and(|l| l.inc.claims.contains(&d));
        if successor == self.id {
            self.departed.remove(&d);
            self.assign(d, successor);
            if announce || !rows.is_empty() {
                let peers: Vec<PeerId> = self.links.keys().copied().collect();
                for p in peers {
                    self.reliable(p, wire::takeover_msg(d));
                }
            }
        } else if claimed {
            self.departed.remove(&d);
            self.assign(d, successor);
        } else if !rows.is_empty() {
            self.departed.insert(d, successor);
        } else {
            self.departed.remove(&d);
        }
    }

    /// Every entity `d` owns here passes to `owner`.
    fn assign(&mut self, d: PeerId, owner: PeerId) {
        for (id, row) in self.table.sorted_ids(|e| e.owner == d) {
            if let Some(r) = self.table.get_mut(row) {
                r.entity.owner = owner;
                r.witnessed = true;
            }
            self.events
                .push_back(ReplicationEvent::OwnerChanged { id, owner });
            if owner == self.id {
                self.take_over(row);
            }
        }
    }

    /// A [`TAKEOVER`](super::wire::TAKEOVER): the sender owns what the departed
    /// peer owned, if it is the successor computed here.
    pub(super) fn on_takeover(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), Misbehavior> {
        let departed = wire::read_takeover(bytes)?;
        if departed == peer {
            return Err(Misbehavior::Rule("take-over of the sender's own entities"));
        }
        if departed == self.id {
            // It lost its link to this peer, which still hears it: nothing
            // of this peer's passes on a claim.
            return Ok(());
        }
        if self.links.contains_key(&departed) {
            // Still here: the claim counts once it leaves here too.
            if let Some(link) = self.links.get_mut(&peer) {
                link.inc.claims.insert(departed);
            }
            return Ok(());
        }
        if self.departed.get(&departed) == Some(&peer) {
            self.departed.remove(&departed);
            self.assign(departed, peer);
        }
        Ok(())
    }

    /// A peer that left joins again under its id (its link came back after
    /// a timeout, or a partition healed): every entity taken over from it
    /// when it left (and not handed over since) is forgotten here, as on
    /// every peer that saw it leave, and it sends
    /// what it owns now whole as it would to any peer that joins. Its world
    /// wins over what its successors did meanwhile: entities it despawned
    /// while away are gone, those it spawned or changed arrive as they are.
    pub(super) fn forget_inherited(&mut self, peer: PeerId) {
        let rows: Vec<(NetId, EntityRow)> = self
            .table
            .iter_rows()
            .filter(|(_, r)| r.inherited_from == Some(peer))
            .map(|(row, r)| (r.id, row))
            .collect();
        for (id, row) in rows {
            self.remove(row);
            self.events.push_back(ReplicationEvent::Despawned { id });
        }
        self.departed.remove(&peer);
    }

    /// A spawn from `peer` of an entity that is here already: whether `peer`'s
    /// claim stands. Its owner re-sending it stands. Two owners happen when
    /// peers that could not hear each other each took a departed owner's
    /// entities over and the partition healed while that owner stayed away
    /// (were it back, its entities would be forgotten first: see
    /// [`Replicator::forget_inherited`]): the lower id keeps the entity, the
    /// same choice on every peer, and a claim on an entity whose owner is
    /// gone from here stands too. Only entities that passed to a successor
    /// here can be contested: any other stays with its owner.
    pub(super) fn contested(&mut self, peer: PeerId, row: EntityRow, id: NetId) -> bool {
        let Some((owner, inherited)) = self
            .table
            .get(row)
            .map(|r| (r.entity.owner, r.inherited_from.is_some()))
        else {
            return false;
        };
        if owner == peer {
            return true;
        }
        let owner_here = owner == self.id || self.links.contains_key(&owner);
        if owner_here && (owner < peer || !inherited) {
            return false;
        }
        if owner == self.id {
            for link in self.links.values_mut() {
                link.out.leave(row);
            }
        }
        self.events
            .push_back(ReplicationEvent::OwnerChanged { id, owner: peer });
        true
    }

    /// This peer now owns an entity every peer knows: they start from what
    /// they have, and deltas flow once they ack a full state.
    fn take_over(&mut self, row: EntityRow) {
        for link in self.links.values_mut() {
            link.out.enter(row);
        }
    }

    /// An [`OWNER`](super::wire::OWNER) message: the entity passes to the new owner with
    /// the state it was given.
    pub(super) fn on_owner(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), Misbehavior> {
        let (id, owner, ty, fields) = wire::read_owner(bytes, &self.schema)?;
        let Some(row) = self.table.row_of(id) else {
            return Ok(());
        };
        let Some(rec) = self.table.get_mut(row) else {
            return Ok(());
        };
        if rec.entity.owner != peer {
            return Ok(());
        }
        if rec.entity.ty != ty {
            return Err(Misbehavior::Rule(
                "hand-over of an entity with another type",
            ));
        }
        // Only to a member of the room as seen here (never to made-up ids).
        if owner != self.id && !self.links.contains_key(&owner) {
            return Ok(());
        }
        rec.entity.owner = owner;
        rec.entity.fields = fields;
        rec.inherited_from = None;
        rec.witnessed = true;
        if let Some(link) = self.links.get_mut(&peer) {
            link.inc.forget(row);
            link.inc.resync.remove(&id);
        }
        self.events
            .push_back(ReplicationEvent::OwnerChanged { id, owner });
        if owner == self.id {
            self.take_over(row);
        }
        Ok(())
    }

    /// A [`REQUEST`]: reported if this peer owns the entity.
    pub(super) fn on_request(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), Misbehavior> {
        let id = wire::read_id_msg(bytes)?;
        if self.entity(id).is_some_and(|e| e.owner == self.id) {
            self.events
                .push_back(ReplicationEvent::AuthorityRequested { id, peer });
        }
        Ok(())
    }
}
