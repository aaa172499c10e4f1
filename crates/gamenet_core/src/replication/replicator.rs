//! [`Replicator`]: one peer's replication, the calls an application makes and
//! the dispatch of what peers send; the state lives in the satellites.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use crate::codec::DecodeError;
use crate::{Channel, Instant, Misbehavior, PeerId, Transmit};

use super::config::{ConfigError, ReplicationConfig};
use super::error::ReplicationError;
use super::outgoing::PeerLink;
use super::table::{EntityRow, Table, fold};
use super::types::{EntityState, NetId, ReplicationEvent, Schema, clamp, clamp_one};
use super::wire::{self, DESPAWN, EVENT, MISSING, OWNER, REQUEST, RESYNC, SPAWN, TAKEOVER, UPDATE};

/// One peer's replication: its own entities out, the others' in.
#[derive(Debug)]
pub struct Replicator {
    /// The settings.
    pub(super) config: ReplicationConfig,
    /// Field widths per entity type.
    pub(super) schema: Schema,
    /// This peer's id.
    pub(super) id: PeerId,
    /// The counter of this peer's next entity id.
    next: u32,
    /// The entity table.
    pub(super) table: Table,
    /// Per peer replicated with: what goes out to it and what came in.
    pub(super) links: BTreeMap<PeerId, PeerLink>,
    /// When the last tick ran (acks sent between ticks are timed by it).
    pub(super) last_tick: Option<Instant>,
    /// The start of this peer's replication clock, which stamps update
    /// packets: the first packet sent.
    pub(super) epoch: Option<Instant>,
    /// Messages to send, oldest first.
    pub(super) transmits: VecDeque<Transmit>,
    /// Events for the application, oldest first.
    pub(super) events: VecDeque<ReplicationEvent>,
    /// Departed peers whose entities wait for their successor's take-over
    /// announcement: departed peer -> the successor computed here.
    pub(super) departed: BTreeMap<PeerId, PeerId>,
}

impl Replicator {
    /// A replicator for peer `id`, unless the settings do not fit the
    /// schema (see [`ReplicationConfig::validate`]).
    pub fn new(config: ReplicationConfig, schema: Schema, id: PeerId) -> Result<Self, ConfigError> {
        config.validate(&schema)?;
        Ok(Self {
            config,
            schema,
            id,
            next: 0,
            table: Table::default(),
            links: BTreeMap::new(),
            last_tick: None,
            epoch: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            departed: BTreeMap::new(),
        })
    }

    /// This peer's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The entity, if known here.
    pub fn entity(&self, id: NetId) -> Option<&EntityState> {
        self.table.find(id).map(|(_, r)| &r.entity)
    }

    /// Every entity known here, in no particular order.
    pub fn entities(&self) -> impl Iterator<Item = (NetId, &EntityState)> + '_ {
        self.table.iter().map(|r| (r.id, &r.entity))
    }

    /// Peers replicated with.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.links.keys().copied()
    }

    /// The row of an entity this peer owns.
    pub(super) fn owned_row(&self, id: NetId) -> Result<EntityRow, ReplicationError> {
        let (row, r) = self
            .table
            .find(id)
            .ok_or(ReplicationError::UnknownEntity(id))?;
        if r.entity.owner != self.id {
            return Err(ReplicationError::NotOwner {
                id,
                owner: r.entity.owner,
            });
        }
        Ok(row)
    }

    /// Takes an entity out of the table and out of every peer's state.
    pub(super) fn remove(&mut self, row: EntityRow) {
        let Some(record) = self.table.remove(row) else {
            return;
        };
        for link in self.links.values_mut() {
            link.out.leave(row);
            link.inc.forget(row);
            link.inc.resync.remove(&record.id);
        }
    }

    /// Creates an entity owned by this peer (values too wide for a field
    /// are clamped).
    pub fn spawn(&mut self, ty: u16, fields: &[u32]) -> Result<NetId, ReplicationError> {
        let widths = self
            .schema
            .widths(ty)
            .ok_or(ReplicationError::UnknownType(ty))?;
        if widths.len() != fields.len() {
            return Err(ReplicationError::FieldCount {
                ty,
                expected: widths.len(),
                got: fields.len(),
            });
        }
        // The next id not in use (a wrapped counter, or ids a peer spawned).
        let mut id = NetId(fold(self.id) << 32 | self.next as u64);
        self.next = self.next.wrapping_add(1);
        while self.table.contains(id) {
            id = NetId(fold(self.id) << 32 | self.next as u64);
            self.next = self.next.wrapping_add(1);
        }
        let entity = EntityState {
            ty,
            owner: self.id,
            fields: clamp(widths, fields),
        };
        let row = self.table.insert(id, entity, fold(self.id), true);
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for p in peers {
            self.enter_scope(p, row);
        }
        Ok(id)
    }

    /// Sets an owned entity's fields (values too wide for a field are
    /// clamped).
    pub fn set(&mut self, id: NetId, fields: &[u32]) -> Result<(), ReplicationError> {
        let unknown = ReplicationError::UnknownEntity(id);
        let row = self.table.row_of(id).ok_or(unknown.clone())?;
        let r = self.table.get_mut(row).ok_or(unknown)?;
        let e = &mut r.entity;
        let widths = self
            .schema
            .widths(e.ty)
            .ok_or(ReplicationError::UnknownType(e.ty))?;
        if e.owner != self.id {
            return Err(ReplicationError::NotOwner { id, owner: e.owner });
        }
        if widths.len() != fields.len() {
            return Err(ReplicationError::FieldCount {
                ty: e.ty,
                expected: widths.len(),
                got: fields.len(),
            });
        }
        let unchanged = e
            .fields
            .iter()
            .zip(widths.iter().zip(fields))
            .all(|(&now, (&w, &f))| now == clamp_one(f, w));
        if unchanged {
            return Ok(());
        }
        e.fields = clamp(widths, fields);
        for link in self.links.values_mut() {
            link.out.mark_dirty(row);
        }
        Ok(())
    }

    /// Removes an owned entity everywhere.
    pub fn despawn(&mut self, id: NetId) -> Result<(), ReplicationError> {
        let row = self.owned_row(id)?;
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for p in peers {
            self.leave_scope(p, row);
        }
        self.remove(row);
        Ok(())
    }

    /// How urgent an owned entity's updates are (default 1).
    pub fn set_priority(&mut self, id: NetId, priority: f32) {
        if let Some(row) = self.table.row_of(id)
            && let Some(r) = self.table.get_mut(row)
        {
            r.priority = priority.max(0.0);
        }
    }

    /// Sets a peer's byte budget per second.
    pub fn set_budget(&mut self, peer: PeerId, bytes_per_sec: u32) {
        if let Some(link) = self.links.get_mut(&peer) {
            link.out.budget = Some(bytes_per_sec);
        }
    }

    /// Bytes per second sent to a peer over the last second.
    pub fn bytes_per_sec(&self, peer: PeerId) -> f64 {
        self.links
            .get(&peer)
            .map(|l| l.out.sent.iter().map(|(_, b)| *b).sum::<usize>() as f64)
            .unwrap_or(0.0)
    }

    /// Sends a game event reliably.
    pub fn send_event(&mut self, peer: PeerId, payload: &[u8]) {
        self.reliable(peer, wire::event_msg(payload));
    }

    /// Queues a message on the reliable channel.
    pub(super) fn reliable(&mut self, peer: PeerId, data: Vec<u8>) {
        self.transmits.push_back(Transmit {
            peer,
            channel: Channel::Reliable,
            data: Bytes::from(data),
        });
    }

    /// A peer to replicate with joined: it gets every owned entity it may
    /// see. A peer back after it left gets the same, and what was taken over
    /// from it when it left is forgotten: it sends what it owns now.
    pub fn handle_peer_joined(&mut self, _now: Instant, peer: PeerId) {
        if peer == self.id {
            return;
        }
        self.forget_inherited(peer);
        self.links.entry(peer).or_default();
        let me = self.id;
        for (_, row) in self.table.sorted_ids(|e| e.owner == me) {
            self.enter_scope(peer, row);
        }
    }

    /// A peer left: what it owned passes to the remaining peer with the
    /// lowest id (this one, perhaps), the same choice on every peer, until
    /// it joins again.
    pub fn handle_peer_left(&mut self, _now: Instant, peer: PeerId) {
        let was_linked = self.links.remove(&peer).is_some();
        self.migrate_from(peer, was_linked);
    }

    /// A reliable message to `peer` could not be queued (its send queue was
    /// full, say): whatever it carried is lost. Reported as
    /// [`ReplicationEvent::SendFailed`]; at the next tick every entity of this
    /// peer in its scope is spawned there anew, whole (game events and
    /// despawns the lost message carried stay lost).
    pub fn handle_send_failed(&mut self, _now: Instant, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if !link.out.respawn {
            link.out.respawn = true;
            self.events.push_back(ReplicationEvent::SendFailed { peer });
        }
    }

    /// A message from a peer (ignored unless replicating with it). A peer
    /// that breaks the protocol is reported with
    /// [`ReplicationEvent::PeerMisbehaved`].
    pub fn handle_message(&mut self, now: Instant, peer: PeerId, data: &[u8]) {
        if !self.links.contains_key(&peer) {
            return;
        }
        let Some((&kind, rest)) = data.split_first() else {
            self.misbehaved(peer, DecodeError::Empty.into());
            return;
        };
        let result = match kind {
            UPDATE => self.on_update(now, peer, rest),
            SPAWN => self.on_spawn(peer, rest),
            DESPAWN => self.on_despawn(peer, rest),
            OWNER => self.on_owner(peer, rest),
            REQUEST => self.on_request(peer, rest),
            RESYNC => self.on_resync(peer, rest),
            MISSING => self.on_missing(peer, rest),
            TAKEOVER => self.on_takeover(peer, rest),
            // Senders cut events to the limit: a longer one is a lie.
            EVENT if rest.len() > wire::MAX_EVENT => Err(Misbehavior::Oversize {
                what: "game event",
                len: rest.len(),
                max: wire::MAX_EVENT,
            }),
            EVENT => {
                self.events.push_back(ReplicationEvent::Event {
                    peer,
                    payload: Bytes::copy_from_slice(rest),
                });
                Ok(())
            }
            other => Err(DecodeError::UnknownType(other).into()),
        };
        if let Err(reason) = result {
            self.misbehaved(peer, reason);
        }
    }

    /// Reports a peer that broke the protocol.
    fn misbehaved(&mut self, peer: PeerId, reason: Misbehavior) {
        self.events
            .push_back(ReplicationEvent::PeerMisbehaved { peer, reason });
    }

    /// Builds this tick's update packet for every peer (call at the
    /// simulation's tick rate).
    pub fn tick(&mut self, now: Instant) {
        let dt = self
            .last_tick
            .map(|t| now.saturating_duration_since(t))
            .unwrap_or(Duration::from_millis(16))
            .min(Duration::from_millis(250));
        self.last_tick = Some(now);
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for peer in peers {
            self.respawn_if_lost(peer);
            self.tick_peer(now, peer, dt);
        }
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ReplicationEvent> {
        self.events.pop_front()
    }
}
