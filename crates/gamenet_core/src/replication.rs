//! State replication, sans-IO: entities owned by one peer each, sent to every
//! other peer that may see them, delta-encoded against the last state that
//! receiver acknowledged.
//!
//! - An entity has a type (its field widths come from the [`Schema`]) and a
//!   list of quantised fields (see [`crate::quantize`]). Its owner changes it
//!   with [`Replicator::set`]; every tick, [`Replicator::tick`] packs the
//!   changes for each peer into one unreliable packet.
//! - Each entity is encoded against the last state of it the receiver acked
//!   (a full state when none is acked); lost packets are not resent: the next
//!   delta covers them. Unchanged entities cost nothing.
//! - Per peer, priorities accumulate every tick for changed entities and the
//!   most urgent go first within the peer's byte budget, so none starves.
//! - The owner decides who sees what ([`Replicator::set_visible`]); entities
//!   entering a peer's scope are spawned there, leaving it despawned.
//! - Spawns, despawns, ownership changes and game events travel reliably.
//! - Ownership can be requested and handed over; when a peer leaves, the peer
//!   with the lowest id takes over what it owned, on every peer alike.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::bits::{BitReader, BitWriter};
use crate::codec::{DecodeError, Reader};
use crate::{Channel, Instant, PeerId, Transmit};

/// Field widths in bits, per entity type.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schema {
    /// `types[t]` lists the widths (1 to 32 bits) of the fields of type `t`.
    pub types: Vec<Vec<u8>>,
}

impl Schema {
    fn widths(&self, ty: u16) -> Option<&[u8]> {
        self.types.get(ty as usize).map(Vec::as_slice)
    }
}

/// An entity's id, the same on every peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NetId(pub u64);

/// Replication settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicationConfig {
    /// Bytes per second each peer may be sent, by default.
    pub budget_bytes_per_sec: u32,
    /// Largest update packet (fits one SCTP chunk).
    pub max_packet: usize,
    /// Most entities one peer may have spawned at others.
    pub max_entities_per_peer: usize,
}

impl Default for ReplicationConfig {
    fn default() -> Self {
        Self {
            budget_bytes_per_sec: 64_000,
            max_packet: 1_100,
            max_entities_per_peer: 65_536,
        }
    }
}

/// What happened to replicated state.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ReplicationEvent {
    /// A remote entity appeared (entered scope or was created).
    Spawned {
        /// The entity.
        id: NetId,
        /// Its type.
        ty: u16,
        /// Its owner.
        owner: PeerId,
    },
    /// A remote entity's fields changed.
    Updated {
        /// The entity.
        id: NetId,
    },
    /// A remote entity is gone (despawned or out of scope).
    Despawned {
        /// The entity.
        id: NetId,
    },
    /// An entity has a new owner (hand-over or the owner left).
    OwnerChanged {
        /// The entity.
        id: NetId,
        /// The new owner.
        owner: PeerId,
    },
    /// A peer asks for an entity this peer owns; grant it with
    /// [`Replicator::hand_over`].
    AuthorityRequested {
        /// The entity.
        id: NetId,
        /// Who asks.
        peer: PeerId,
    },
    /// A reliable game event from a peer.
    Event {
        /// The sender.
        peer: PeerId,
        /// Its bytes.
        payload: Bytes,
    },
    /// A peer sent something malformed; drop it.
    PeerMisbehaved {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        error: String,
    },
}

/// An entity's quantised fields, shared (not copied) between the entity,
/// the packets that carried it and the baselines deltas refer to.
pub type Fields = Arc<[u32]>;

/// An entity as this peer knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entity {
    /// Its type.
    pub ty: u16,
    /// Its owner.
    pub owner: PeerId,
    /// Its quantised fields.
    pub fields: Fields,
}

const UPDATE: u8 = 0x01;
const SPAWN: u8 = 0x10;
const DESPAWN: u8 = 0x11;
const OWNER: u8 = 0x12;
const REQUEST: u8 = 0x13;
const EVENT: u8 = 0x14;
const RESYNC: u8 = 0x15;

/// Received states kept per entity, to decode deltas against.
const HISTORY: usize = 32;
/// Sent packets remembered per peer, waiting for acks.
const IN_FLIGHT: usize = 4096;
/// Farthest baseline (in packets) a delta may refer to: a fast sender sends
/// hundreds of packets a round trip.
const MAX_BACK: u32 = u16::MAX as u32;
/// Largest game event.
const MAX_EVENT: usize = 64 * 1024;
/// Update packets taken from a peer before acks go back at once rather than
/// with the next tick: a sender of many packets a tick would otherwise
/// outrun the 64-packet ack window.
const ACK_EVERY: u32 = 24;

/// An index into the entity table; ids map to slots, which are reused.
type Slot = u32;

/// What one update packet carried: slot, entity and fields.
type SentStates = Vec<(Slot, NetId, Fields)>;

/// An entity in the table.
#[derive(Debug)]
struct Record {
    id: NetId,
    entity: Entity,
    /// How urgent its updates are, when this peer owns it.
    priority: f32,
}

/// An owned entity in a peer's scope.
#[derive(Debug)]
struct Scoped {
    /// The last packet sent before it entered scope: acks of that one and
    /// older say nothing about it.
    since: u32,
    /// The newest state the peer acked, and the packet that carried it.
    acked: Option<(u32, Fields)>,
    /// Accumulated priority.
    priority: f32,
    /// Differs from what the peer acked (and is in the dirty list).
    dirty: bool,
    /// The tick that last looked at it: a reused slot can be listed twice.
    pass: u32,
}

#[derive(Debug, Default)]
struct Outgoing {
    /// Per slot: the entity, if it is in this peer's scope (spawned there).
    scope: Vec<Option<Scoped>>,
    in_scope: usize,
    /// Slots that may be dirty: what a tick looks at, so entities at rest
    /// cost nothing. Cleaned ones leave it at the next tick.
    dirty: Vec<Slot>,
    /// The dirty list's spare allocation.
    spare: Vec<Slot>,
    pass: u32,
    /// Entities hidden from this peer.
    hidden: BTreeSet<NetId>,
    /// Packets sent and what they carried.
    in_flight: VecDeque<(u32, SentStates)>,
    seq: u32,
    /// Budget bytes carried to the next tick.
    credit: f64,
    budget: Option<u32>,
    /// Bytes sent in the last second, for diagnostics.
    sent: VecDeque<(Instant, usize)>,
}

impl Outgoing {
    fn mark_dirty(&mut self, slot: Slot) {
        if let Some(s) = self.scope.get_mut(slot as usize).and_then(Option::as_mut)
            && !s.dirty
        {
            s.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Puts an entity in scope; false if it was.
    fn enter(&mut self, slot: Slot) -> bool {
        let i = slot as usize;
        if self.scope.len() <= i {
            self.scope.resize_with(i + 1, || None);
        }
        if self.scope[i].is_some() {
            return false;
        }
        self.scope[i] = Some(Scoped {
            since: self.seq,
            acked: None,
            priority: 0.0,
            dirty: false,
            pass: 0,
        });
        self.in_scope += 1;
        self.mark_dirty(slot);
        true
    }

    /// Takes an entity out of scope; false if it was not in it.
    fn leave(&mut self, slot: Slot) -> bool {
        let left = self
            .scope
            .get_mut(slot as usize)
            .and_then(Option::take)
            .is_some();
        if left {
            self.in_scope -= 1;
        }
        left
    }
}

#[derive(Debug, Default)]
struct Incoming {
    /// Per slot: received states of the entity, oldest first.
    history: Vec<Option<VecDeque<(u32, Fields)>>>,
    /// Entities with a history here (bounds what this peer may spawn).
    tracked: usize,
    /// Newest update seq received and the 64 before it.
    latest: Option<u32>,
    bits: u64,
    /// Update packets received since acks last went back.
    unacked: u32,
    /// Entities whose baseline was gone, asked to be sent whole.
    resync: BTreeSet<NetId>,
}

impl Incoming {
    fn history(&self, slot: Slot) -> Option<&VecDeque<(u32, Fields)>> {
        self.history.get(slot as usize).and_then(Option::as_ref)
    }

    fn history_mut(&mut self, slot: Slot) -> &mut VecDeque<(u32, Fields)> {
        let i = slot as usize;
        if self.history.len() <= i {
            self.history.resize_with(i + 1, || None);
        }
        if self.history[i].is_none() {
            self.tracked += 1;
        }
        self.history[i].get_or_insert_with(VecDeque::new)
    }

    /// Starts the entity's history afresh.
    fn reset(&mut self, slot: Slot) {
        self.forget(slot);
        self.history_mut(slot);
    }

    fn forget(&mut self, slot: Slot) {
        if self
            .history
            .get_mut(slot as usize)
            .and_then(Option::take)
            .is_some()
        {
            self.tracked -= 1;
        }
    }

    fn record(&mut self, seq: u32) {
        self.unacked += 1;
        match self.latest {
            None => {
                self.latest = Some(seq);
                self.bits = 0;
            }
            Some(l) if seq > l => {
                let shift = seq - l;
                self.bits = if shift > 64 {
                    0
                } else if shift == 64 {
                    1 << 63
                } else {
                    (self.bits << shift) | (1 << (shift - 1))
                };
                self.latest = Some(seq);
            }
            Some(l) if seq < l && l - seq <= 64 => self.bits |= 1 << (l - seq - 1),
            _ => {}
        }
    }
}

#[derive(Debug, Default)]
struct Link {
    out: Outgoing,
    inc: Incoming,
}

/// One peer's replication: its own entities out, the others' in.
#[derive(Debug)]
pub struct Replicator {
    config: ReplicationConfig,
    schema: Schema,
    id: PeerId,
    next: u32,
    /// The entity table. Per-peer state is kept by slot too, so the paths
    /// that run for every update index arrays instead of looking ids up.
    records: Vec<Option<Record>>,
    free: Vec<Slot>,
    /// Slots by id (std's keyed hasher: ids come from peers).
    index: HashMap<NetId, Slot>,
    links: BTreeMap<PeerId, Link>,
    last_tick: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ReplicationEvent>,
}

fn fold(peer: PeerId) -> u64 {
    let v = peer.0;
    ((v >> 64) as u64 ^ v as u64).rotate_left(17) & 0xffff_ffff
}

impl Replicator {
    /// A replicator for peer `id`.
    pub fn new(config: ReplicationConfig, schema: Schema, id: PeerId) -> Self {
        Self {
            config,
            schema,
            id,
            next: 0,
            records: Vec::new(),
            free: Vec::new(),
            index: HashMap::new(),
            links: BTreeMap::new(),
            last_tick: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// This peer's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    fn record(&self, slot: Slot) -> Option<&Record> {
        self.records.get(slot as usize).and_then(Option::as_ref)
    }

    fn record_mut(&mut self, slot: Slot) -> Option<&mut Record> {
        self.records.get_mut(slot as usize).and_then(Option::as_mut)
    }

    fn slot_of(&self, id: NetId) -> Option<Slot> {
        self.index.get(&id).copied()
    }

    /// The entity, if known here.
    pub fn entity(&self, id: NetId) -> Option<&Entity> {
        self.slot_of(id)
            .and_then(|s| self.record(s))
            .map(|r| &r.entity)
    }

    /// Every entity known here, in no particular order.
    pub fn entities(&self) -> impl Iterator<Item = (NetId, &Entity)> + '_ {
        self.records.iter().flatten().map(|r| (r.id, &r.entity))
    }

    /// Peers replicated with.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.links.keys().copied()
    }

    fn insert(&mut self, id: NetId, entity: Entity) -> Slot {
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

    fn remove(&mut self, slot: Slot) {
        let Some(record) = self.records.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        self.index.remove(&record.id);
        self.free.push(slot);
        for link in self.links.values_mut() {
            link.out.leave(slot);
            link.inc.forget(slot);
            link.inc.resync.remove(&record.id);
        }
    }

    /// Ids of entities matching `keep`, in id order.
    fn sorted_ids(&self, keep: impl Fn(&Entity) -> bool) -> Vec<(NetId, Slot)> {
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

    /// Creates an entity owned by this peer.
    pub fn spawn(&mut self, ty: u16, fields: &[u32]) -> Option<NetId> {
        let widths = self.schema.widths(ty)?;
        if widths.len() != fields.len() {
            return None;
        }
        // The next id not in use (a wrapped counter, or ids a peer spawned).
        let mut id = NetId(fold(self.id) << 32 | self.next as u64);
        self.next = self.next.wrapping_add(1);
        while self.index.contains_key(&id) {
            id = NetId(fold(self.id) << 32 | self.next as u64);
            self.next = self.next.wrapping_add(1);
        }
        let entity = Entity {
            ty,
            owner: self.id,
            fields: clamp(widths, fields),
        };
        let slot = self.insert(id, entity);
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for p in peers {
            self.enter_scope(p, slot);
        }
        Some(id)
    }

    /// Sets an owned entity's fields (values too wide for a field are
    /// clamped); false if it is not ours or the count does not fit its type.
    pub fn set(&mut self, id: NetId, fields: &[u32]) -> bool {
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        let Some(r) = self.records.get_mut(slot as usize).and_then(Option::as_mut) else {
            return false;
        };
        let e = &mut r.entity;
        let Some(widths) = self.schema.widths(e.ty) else {
            return false;
        };
        if e.owner != self.id || widths.len() != fields.len() {
            return false;
        }
        let unchanged = e
            .fields
            .iter()
            .zip(widths.iter().zip(fields))
            .all(|(&now, (&w, &f))| now == clamp_one(f, w));
        if unchanged {
            return true;
        }
        e.fields = clamp(widths, fields);
        for link in self.links.values_mut() {
            link.out.mark_dirty(slot);
        }
        true
    }

    /// Removes an owned entity everywhere.
    pub fn despawn(&mut self, id: NetId) -> bool {
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        if self.record(slot).is_none_or(|r| r.entity.owner != self.id) {
            return false;
        }
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for p in peers {
            self.leave_scope(p, slot);
        }
        self.remove(slot);
        true
    }

    /// How urgent an owned entity's updates are (default 1).
    pub fn set_priority(&mut self, id: NetId, priority: f32) {
        if let Some(slot) = self.slot_of(id)
            && let Some(r) = self.record_mut(slot)
        {
            r.priority = priority.max(0.0);
        }
    }

    /// Shows or hides an owned entity from a peer.
    pub fn set_visible(&mut self, peer: PeerId, id: NetId, visible: bool) {
        let Some(slot) = self.slot_of(id) else {
            return;
        };
        if self.record(slot).is_none_or(|r| r.entity.owner != self.id) {
            return;
        }
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if visible {
            link.out.hidden.remove(&id);
            self.enter_scope(peer, slot);
        } else {
            link.out.hidden.insert(id);
            self.leave_scope(peer, slot);
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

    /// Entities of this peer in a peer's scope.
    pub fn in_scope(&self, peer: PeerId) -> usize {
        self.links.get(&peer).map_or(0, |l| l.out.in_scope)
    }

    /// Asks an entity's owner for it.
    pub fn request_authority(&mut self, id: NetId) {
        if let Some(e) = self.entity(id)
            && e.owner != self.id
        {
            let owner = e.owner;
            let mut m = vec![REQUEST];
            m.extend_from_slice(&id.0.to_le_bytes());
            self.reliable(owner, m);
        }
    }

    /// Gives an owned entity to another peer, with its current state; every
    /// peer learns the new owner.
    pub fn hand_over(&mut self, id: NetId, to: PeerId) -> bool {
        if to == self.id || !self.links.contains_key(&to) {
            return false;
        }
        let Some(slot) = self.slot_of(id) else {
            return false;
        };
        let me = self.id;
        let Some(r) = self
            .records
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .filter(|r| r.entity.owner == me)
        else {
            return false;
        };
        r.entity.owner = to;
        let msg = owner_msg(id, &r.entity, &self.schema);
        let peers: Vec<PeerId> = self.links.keys().copied().collect();
        for p in peers {
            if let Some(link) = self.links.get_mut(&p) {
                link.out.leave(slot);
            }
            self.reliable(p, msg.clone());
        }
        self.events
            .push_back(ReplicationEvent::OwnerChanged { id, owner: to });
        true
    }

    /// Sends a game event reliably.
    pub fn send_event(&mut self, peer: PeerId, payload: &[u8]) {
        let mut m = vec![EVENT];
        m.extend_from_slice(&payload[..payload.len().min(MAX_EVENT)]);
        self.reliable(peer, m);
    }

    fn reliable(&mut self, peer: PeerId, data: Vec<u8>) {
        self.transmits.push_back(Transmit {
            peer,
            channel: Channel::Reliable,
            data: Bytes::from(data),
        });
    }

    fn enter_scope(&mut self, peer: PeerId, slot: Slot) {
        let Some(r) = self.records.get(slot as usize).and_then(Option::as_ref) else {
            return;
        };
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if r.entity.owner != self.id || link.out.hidden.contains(&r.id) || !link.out.enter(slot) {
            return;
        }
        let msg = spawn_msg(r.id, &r.entity, &self.schema);
        self.reliable(peer, msg);
    }

    fn leave_scope(&mut self, peer: PeerId, slot: Slot) {
        let Some(id) = self.record(slot).map(|r| r.id) else {
            return;
        };
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if link.out.leave(slot) {
            let mut m = vec![DESPAWN];
            m.extend_from_slice(&id.0.to_le_bytes());
            self.reliable(peer, m);
        }
    }

    /// A peer to replicate with joined: it gets every owned entity it may see.
    pub fn handle_peer_joined(&mut self, peer: PeerId) {
        if peer == self.id {
            return;
        }
        self.links.entry(peer).or_default();
        let me = self.id;
        for (_, slot) in self.sorted_ids(|e| e.owner == me) {
            self.enter_scope(peer, slot);
        }
    }

    /// A peer left: what it owned passes to the remaining peer with the
    /// lowest id (this one, perhaps), the same choice on every peer.
    pub fn handle_peer_left(&mut self, peer: PeerId) {
        self.links.remove(&peer);
        let mut successor = self.id;
        for &p in self.links.keys() {
            successor = successor.min(p);
        }
        for (id, slot) in self.sorted_ids(|e| e.owner == peer) {
            if let Some(r) = self.record_mut(slot) {
                r.entity.owner = successor;
            }
            self.events.push_back(ReplicationEvent::OwnerChanged {
                id,
                owner: successor,
            });
            if successor == self.id {
                self.take_over(slot);
            }
        }
    }

    /// This peer now owns an entity every peer knows: they start from what
    /// they have, and deltas flow once they ack a full state.
    fn take_over(&mut self, slot: Slot) {
        for link in self.links.values_mut() {
            link.out.enter(slot);
        }
    }

    fn misbehaved(&mut self, peer: PeerId, error: impl Into<String>) {
        self.events.push_back(ReplicationEvent::PeerMisbehaved {
            peer,
            error: error.into(),
        });
    }

    /// A message from a peer.
    pub fn handle_message(&mut self, peer: PeerId, data: &[u8]) {
        if !self.links.contains_key(&peer) {
            return;
        }
        let Some((&kind, rest)) = data.split_first() else {
            self.misbehaved(peer, "empty replication message");
            return;
        };
        let result = match kind {
            UPDATE => self.on_update(peer, rest),
            SPAWN => self.on_spawn(peer, rest),
            DESPAWN => self.on_despawn(peer, rest),
            OWNER => self.on_owner(peer, rest),
            REQUEST => self.on_request(peer, rest),
            RESYNC => self.on_resync(peer, rest),
            EVENT => {
                self.events.push_back(ReplicationEvent::Event {
                    peer,
                    payload: Bytes::copy_from_slice(rest),
                });
                Ok(())
            }
            other => Err(DecodeError::UnknownType(other)),
        };
        if let Err(e) = result {
            self.misbehaved(peer, format!("bad replication message: {e}"));
        }
    }

    fn read_fields(&self, ty: u16, r: &mut BitReader<'_>) -> Result<Fields, DecodeError> {
        let widths = self
            .schema
            .widths(ty)
            .ok_or(DecodeError::Invalid("entity type"))?;
        widths
            .iter()
            .map(|&w| Ok(r.read(w as u32)? as u32))
            .collect()
    }

    fn on_spawn(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { bytes };
        let id = NetId(r.u64("id")?);
        let ty = r.u16("type")?;
        let fields = self.read_fields(ty, &mut BitReader::new(r.rest()))?;
        let existing = self.slot_of(id);
        let tracked = self.links.get(&peer).map_or(0, |l| l.inc.tracked);
        if existing.is_none() && tracked >= self.config.max_entities_per_peer {
            return Err(DecodeError::Invalid("too many entities"));
        }
        let entity = Entity {
            ty,
            owner: peer,
            fields,
        };
        let slot = match existing {
            // Only its owner may send it again (it left and re-entered scope).
            Some(slot) => {
                let Some(r) = self.record_mut(slot).filter(|r| r.entity.owner == peer) else {
                    return Ok(());
                };
                r.entity = entity;
                self.events.push_back(ReplicationEvent::Updated { id });
                slot
            }
            None => {
                let slot = self.insert(id, entity);
                self.events.push_back(ReplicationEvent::Spawned {
                    id,
                    ty,
                    owner: peer,
                });
                slot
            }
        };
        if let Some(link) = self.links.get_mut(&peer) {
            link.inc.reset(slot);
        }
        Ok(())
    }

    fn on_despawn(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { bytes };
        let id = NetId(r.u64("id")?);
        r.finish(())?;
        if let Some(slot) = self.slot_of(id)
            && self.record(slot).is_some_and(|r| r.entity.owner == peer)
        {
            self.remove(slot);
            self.events.push_back(ReplicationEvent::Despawned { id });
        }
        Ok(())
    }

    fn on_owner(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { bytes };
        let id = NetId(r.u64("id")?);
        let owner = PeerId(u128::from_le_bytes(r.array("owner")?));
        let ty = r.u16("type")?;
        let fields = self.read_fields(ty, &mut BitReader::new(r.rest()))?;
        let Some(slot) = self.slot_of(id) else {
            return Ok(());
        };
        let Some(rec) = self.record_mut(slot) else {
            return Ok(());
        };
        if rec.entity.owner != peer || rec.entity.ty != ty {
            return Ok(());
        }
        rec.entity.owner = owner;
        rec.entity.fields = fields;
        if let Some(link) = self.links.get_mut(&peer) {
            link.inc.forget(slot);
            link.inc.resync.remove(&id);
        }
        self.events
            .push_back(ReplicationEvent::OwnerChanged { id, owner });
        if owner == self.id {
            self.take_over(slot);
        }
        Ok(())
    }

    fn on_request(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { bytes };
        let id = NetId(r.u64("id")?);
        r.finish(())?;
        if self.entity(id).is_some_and(|e| e.owner == self.id) {
            self.events
                .push_back(ReplicationEvent::AuthorityRequested { id, peer });
        }
        Ok(())
    }

    /// The peer lacks the baseline of an entity of ours: the next update
    /// sends it whole, and acks of packets sent before now do not count.
    fn on_resync(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { bytes };
        let id = NetId(r.u64("id")?);
        r.finish(())?;
        if let Some(slot) = self.slot_of(id)
            && let Some(link) = self.links.get_mut(&peer)
            && let Some(s) = link
                .out
                .scope
                .get_mut(slot as usize)
                .and_then(Option::as_mut)
        {
            s.acked = None;
            s.since = link.out.seq;
            link.out.mark_dirty(slot);
        }
        Ok(())
    }

    fn on_update(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), DecodeError> {
        let mut r = Reader { bytes };
        let seq = r.u32("seq")?;
        let ack = r.u32("ack")?;
        let ack_bits = r.u64("ack bits")?;
        let count = r.u16("count")? as usize;
        self.on_ack(peer, ack, ack_bits);
        let Self {
            records,
            index,
            links,
            schema,
            events,
            ..
        } = self;
        let Some(inc) = links.get_mut(&peer).map(|l| &mut l.inc) else {
            return Ok(());
        };
        let mut bits = BitReader::new(r.rest());
        let common = if count > 0 { read_back(&mut bits)? } else { 0 };
        let mut id = 0u64;
        let mut updates: Vec<(Slot, Fields, bool)> = Vec::with_capacity(count);
        let mut scratch = Vec::new();
        let mut resync = Vec::new();
        for k in 0..count {
            id = read_id(&mut bits, id, k == 0)?;
            let back = if bits.read_bool()? {
                common
            } else {
                read_back(&mut bits)?
            };
            let found = index
                .get(&NetId(id))
                .and_then(|&s| Some((s, records.get(s as usize)?.as_ref()?)));
            let Some((slot, rec)) = found else {
                // Its spawn is still on the reliable channel: the rest of the
                // packet cannot be read, and nothing is acked, so the sender
                // sends full states again.
                return Ok(());
            };
            let widths = schema
                .widths(rec.entity.ty)
                .ok_or(DecodeError::Invalid("entity type"))?;
            let baseline = if back == 0 {
                inc.resync.remove(&NetId(id));
                None
            } else {
                let base_seq = seq.wrapping_sub(back);
                let found = inc
                    .history(slot)
                    .and_then(|h| h.iter().rev().find(|(s, _)| *s == base_seq));
                match found {
                    Some((_, f)) => Some(&f[..]),
                    None => {
                        // Its baseline is gone (acks lost for longer than
                        // the history reaches): read past it and ask for it
                        // whole, once until a whole state comes.
                        skip_delta(&mut bits, widths)?;
                        if inc.resync.insert(NetId(id)) {
                            resync.push(NetId(id));
                        }
                        continue;
                    }
                }
            };
            read_delta(&mut bits, widths, baseline, &mut scratch)?;
            updates.push((slot, Fields::from(&scratch[..]), rec.entity.owner == peer));
        }
        inc.record(seq);
        for (slot, fields, from_owner) in updates {
            // Kept in seq order as a baseline; applied only if it is the
            // newest state of the entity (unreliable packets come reordered).
            let h = inc.history_mut(slot);
            let at = h.iter().rposition(|(s, _)| *s < seq).map_or(0, |p| p + 1);
            if h.get(at).is_some_and(|(s, _)| *s == seq) {
                continue;
            }
            h.insert(at, (seq, fields.clone()));
            let newest = at + 1 == h.len();
            while h.len() > HISTORY {
                h.pop_front();
            }
            // A stale packet from before a hand-over is not applied either.
            if from_owner
                && newest
                && let Some(rec) = records.get_mut(slot as usize).and_then(Option::as_mut)
                && rec.entity.fields != fields
            {
                rec.entity.fields = fields;
                events.push_back(ReplicationEvent::Updated { id: rec.id });
            }
        }
        let ack_now = inc.unacked >= ACK_EVERY;
        for id in resync {
            let mut m = vec![RESYNC];
            m.extend_from_slice(&id.0.to_le_bytes());
            self.reliable(peer, m);
        }
        if ack_now
            && let Some(now) = self.last_tick
            && let Some(link) = self.links.get_mut(&peer)
        {
            let seq = link.out.seq.wrapping_add(1);
            let data = encode_update(seq, &link.inc, &[], &[]);
            finish_packet(link, &mut self.transmits, now, peer, seq, data, Vec::new());
        }
        Ok(())
    }

    fn on_ack(&mut self, peer: PeerId, ack: u32, bits: u64) {
        let records = &self.records;
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let acked = |seq: u32| {
            seq == ack || (ack > seq && ack - seq <= 64 && bits & (1 << (ack - seq - 1)) != 0)
        };
        let out = &mut link.out;
        // Only the 65 packets up to `ack` can be acked by this message.
        let oldest = ack.saturating_sub(64);
        let from = out.in_flight.partition_point(|(s, _)| *s < oldest);
        let scope = &mut out.scope;
        for (seq, states) in out.in_flight.range_mut(from..) {
            if *seq > ack {
                break;
            }
            if !acked(*seq) {
                continue;
            }
            for (slot, id, fields) in std::mem::take(states) {
                let Some(rec) = records.get(slot as usize).and_then(Option::as_ref) else {
                    continue;
                };
                let Some(s) = scope.get_mut(slot as usize).and_then(Option::as_mut) else {
                    continue;
                };
                // A reused slot, or a packet from before it entered scope.
                if rec.id != id
                    || *seq <= s.since
                    || s.acked.as_ref().is_some_and(|(a, _)| *a >= *seq)
                {
                    continue;
                }
                // `set` replaces the fields only when they change, so the
                // same allocation means the same state (no read of it).
                if Arc::ptr_eq(&rec.entity.fields, &fields) {
                    s.dirty = false;
                    s.priority = 0.0;
                }
                s.acked = Some((*seq, fields));
            }
        }
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
            self.tick_peer(now, peer, dt);
        }
    }

    fn tick_peer(&mut self, now: Instant, peer: PeerId, dt: Duration) {
        let default_budget = self.config.budget_bytes_per_sec;
        let max_packet = self.config.max_packet;
        let me = self.id;
        let records = &self.records;
        let schema = &self.schema;
        let transmits = &mut self.transmits;
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let budget = link.out.budget.unwrap_or(default_budget) as f64;
        link.out.credit =
            (link.out.credit + budget * dt.as_secs_f64()).min(budget * 0.25 + max_packet as f64);
        // Entities that differ from what the peer acked gain priority.
        let out = &mut link.out;
        out.pass = out.pass.wrapping_add(1);
        let pass = out.pass;
        let spare = std::mem::take(&mut out.spare);
        let mut listed = std::mem::replace(&mut out.dirty, spare);
        let mut candidates: Vec<(f32, NetId, Slot)> = Vec::with_capacity(listed.len());
        for &slot in &listed {
            let Some(s) = out.scope.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            if !s.dirty || s.pass == pass {
                continue;
            }
            s.pass = pass;
            let Some(rec) = records.get(slot as usize).and_then(Option::as_ref) else {
                s.dirty = false;
                continue;
            };
            if rec.entity.owner != me
                || s.acked
                    .as_ref()
                    .is_some_and(|(_, f)| Arc::ptr_eq(f, &rec.entity.fields))
            {
                s.dirty = false;
                s.priority = 0.0;
                continue;
            }
            s.priority += rec.priority;
            candidates.push((s.priority, rec.id, slot));
            out.dirty.push(slot);
        }
        listed.clear();
        out.spare = listed;
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut next = 0;
        let mut sent_any = false;
        // As many packets as the budget allows, most urgent entities first.
        while next < candidates.len() && link.out.credit >= (HEADER + 16) as f64 {
            let limit = (link.out.credit as usize).min(max_packet);
            let seq = link.out.seq.wrapping_add(1);
            let mut chosen: Vec<Chosen> = Vec::new();
            let mut deltas = BitWriter::new();
            let mut estimate = HEADER * 8 + 17;
            while next < candidates.len() {
                let slot = candidates[next].2;
                let Some(c) = chosen_entry(records, schema, &link.out, slot, seq, &mut deltas)
                else {
                    next += 1;
                    continue;
                };
                // Sorted ids and a shared baseline cost a few bits each.
                let cost = 8 + c.len;
                if estimate + cost > limit * 8 && !chosen.is_empty() {
                    break;
                }
                estimate += cost;
                chosen.push(c);
                next += 1;
            }
            let deltas = deltas.finish();
            let mut data = encode_update(seq, &link.inc, &chosen, &deltas);
            // The estimate was short: give back the least urgent until it fits.
            while data.len() > limit && chosen.len() > 1 {
                chosen.pop();
                next -= 1;
                data = encode_update(seq, &link.inc, &chosen, &deltas);
            }
            if data.len() > max_packet {
                // One entity too large for any packet: skipped.
                continue;
            }
            finish_packet(link, transmits, now, peer, seq, data, chosen);
            sent_any = true;
        }
        if !sent_any && link.inc.latest.is_some() {
            // Nothing to send: the acks go anyway.
            let seq = link.out.seq.wrapping_add(1);
            let data = encode_update(seq, &link.inc, &[], &[]);
            finish_packet(link, transmits, now, peer, seq, data, Vec::new());
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

/// Bytes of an update packet's header.
const HEADER: usize = 19;

/// An entity picked for a packet: its slot, id, baseline distance and
/// fields, and where its delta-encoded fields sit in the packet's delta bits
/// (encoded once; the packet copies the bits in id order).
struct Chosen {
    slot: Slot,
    id: NetId,
    back: u32,
    fields: Fields,
    start: usize,
    len: usize,
}

fn chosen_entry(
    records: &[Option<Record>],
    schema: &Schema,
    out: &Outgoing,
    slot: Slot,
    seq: u32,
    deltas: &mut BitWriter,
) -> Option<Chosen> {
    let rec = records.get(slot as usize)?.as_ref()?;
    let widths = schema.widths(rec.entity.ty)?;
    let acked = out
        .scope
        .get(slot as usize)
        .and_then(Option::as_ref)
        .and_then(|s| s.acked.as_ref());
    let (back, base) = match acked {
        Some((s, f)) if seq.wrapping_sub(*s) <= MAX_BACK => (seq.wrapping_sub(*s), Some(&f[..])),
        _ => (0, None),
    };
    let start = deltas.bit_len();
    write_delta(deltas, widths, base, &rec.entity.fields);
    Some(Chosen {
        slot,
        id: rec.id,
        back,
        fields: rec.entity.fields.clone(),
        start,
        len: deltas.bit_len() - start,
    })
}

/// A baseline distance in packets (0: none): `0` + 7 bits, or `1` + 16.
fn write_back(w: &mut BitWriter, back: u32) {
    if back < 1 << 7 {
        w.write_bool(false);
        w.write(back as u64, 7);
    } else {
        w.write_bool(true);
        w.write(back.min(MAX_BACK) as u64, 16);
    }
}

fn read_back(r: &mut BitReader<'_>) -> Result<u32, DecodeError> {
    let long = r.read_bool()?;
    Ok(r.read(if long { 16 } else { 7 })? as u32)
}

/// The most frequent baseline distance.
fn common_back(chosen: &[&Chosen]) -> u32 {
    let mut backs: Vec<u32> = chosen.iter().map(|c| c.back).collect();
    backs.sort_unstable();
    let (mut best, mut best_run, mut run) = (0, 0, 0);
    for (i, &b) in backs.iter().enumerate() {
        run = if i > 0 && backs[i - 1] == b {
            run + 1
        } else {
            1
        };
        if run > best_run {
            (best, best_run) = (b, run);
        }
    }
    best
}

/// An update packet: header (seq, ack, ack bits, count), then the entities
/// in id order: a shared baseline distance, and per entity its id gap, a
/// baseline bit (or distance) and its fields.
fn encode_update(seq: u32, inc: &Incoming, chosen: &[Chosen], deltas: &[u8]) -> Vec<u8> {
    let mut sorted: Vec<&Chosen> = chosen.iter().collect();
    sorted.sort_by_key(|c| c.id);
    let common = common_back(&sorted);
    let mut w = BitWriter::new();
    if !sorted.is_empty() {
        write_back(&mut w, common);
    }
    let mut prev = None;
    for c in &sorted {
        write_id(&mut w, c.id.0, prev);
        if c.back == common {
            w.write_bool(true);
        } else {
            w.write_bool(false);
            write_back(&mut w, c.back);
        }
        w.append_bits(deltas, c.start, c.len);
        prev = Some(c.id.0);
    }
    let mut data = Vec::with_capacity(HEADER + w.bit_len() / 8 + 1);
    data.push(UPDATE);
    data.extend_from_slice(&seq.to_le_bytes());
    data.extend_from_slice(&inc.latest.unwrap_or(0).to_le_bytes());
    data.extend_from_slice(&inc.bits.to_le_bytes());
    data.extend_from_slice(&(sorted.len() as u16).to_le_bytes());
    data.extend(w.finish());
    data
}

fn finish_packet(
    link: &mut Link,
    transmits: &mut VecDeque<Transmit>,
    now: Instant,
    peer: PeerId,
    seq: u32,
    data: Vec<u8>,
    chosen: Vec<Chosen>,
) {
    let out = &mut link.out;
    out.seq = seq;
    out.credit -= data.len() as f64;
    for c in &chosen {
        if let Some(s) = out.scope.get_mut(c.slot as usize).and_then(Option::as_mut) {
            s.priority = 0.0;
        }
    }
    out.in_flight.push_back((
        seq,
        chosen
            .into_iter()
            .map(|c| (c.slot, c.id, c.fields))
            .collect(),
    ));
    // Every update packet carries the acks.
    link.inc.unacked = 0;
    while out.in_flight.len() > IN_FLIGHT {
        out.in_flight.pop_front();
    }
    out.sent.push_back((now, data.len()));
    while out
        .sent
        .front()
        .is_some_and(|(t, _)| now.saturating_duration_since(*t) > Duration::from_secs(1))
    {
        out.sent.pop_front();
    }
    transmits.push_back(Transmit {
        peer,
        channel: Channel::Unreliable,
        data: Bytes::from(data),
    });
}

fn clamp_one(f: u32, width: u8) -> u32 {
    if width < 32 {
        f.min((1u32 << width) - 1)
    } else {
        f
    }
}

fn clamp(widths: &[u8], fields: &[u32]) -> Fields {
    fields
        .iter()
        .zip(widths)
        .map(|(&f, &w)| clamp_one(f, w))
        .collect()
}

fn spawn_msg(id: NetId, e: &Entity, schema: &Schema) -> Vec<u8> {
    let mut m = vec![SPAWN];
    m.extend_from_slice(&id.0.to_le_bytes());
    m.extend_from_slice(&e.ty.to_le_bytes());
    m.extend(full_fields(e, schema));
    m
}

fn owner_msg(id: NetId, e: &Entity, schema: &Schema) -> Vec<u8> {
    let mut m = vec![OWNER];
    m.extend_from_slice(&id.0.to_le_bytes());
    m.extend_from_slice(&e.owner.0.to_le_bytes());
    m.extend_from_slice(&e.ty.to_le_bytes());
    m.extend(full_fields(e, schema));
    m
}

fn full_fields(e: &Entity, schema: &Schema) -> Vec<u8> {
    let mut w = BitWriter::new();
    for (f, &width) in e.fields.iter().zip(schema.widths(e.ty).unwrap_or(&[])) {
        w.write(*f as u64, width as u32);
    }
    w.finish()
}

/// Ids in a packet ascend, so each is sent as the gap from the one before:
/// `0` for a gap of 1, `10` + 2 bits for 2 to 5, `110` + 5 bits for 6 to 37,
/// `111` + 64 bits for the id itself (and for the first id).
fn write_id(w: &mut BitWriter, id: u64, prev: Option<u64>) {
    match prev.and_then(|p| id.checked_sub(p)) {
        Some(1) => w.write_bool(false),
        Some(g @ 2..=5) => {
            w.write(0b01, 2);
            w.write(g - 2, 2);
        }
        Some(g @ 6..=37) => {
            w.write(0b011, 3);
            w.write(g - 6, 5);
        }
        _ => {
            w.write(0b111, 3);
            w.write(id, 64);
        }
    }
}

fn read_id(r: &mut BitReader<'_>, prev: u64, first: bool) -> Result<u64, DecodeError> {
    let gap = if !r.read_bool()? {
        1
    } else if !r.read_bool()? {
        2 + r.read(2)?
    } else if !r.read_bool()? {
        6 + r.read(5)?
    } else {
        return r.read(64);
    };
    if first {
        return Err(DecodeError::Invalid("relative id first"));
    }
    prev.checked_add(gap)
        .ok_or(DecodeError::Invalid("id overflow"))
}

/// Per field: without a baseline, the value; with one, a changed bit, then
/// for fields wider than 12 bits a difference of sign + 5 bits (`0`), sign +
/// 10 bits (`10`) or the value (`11`); narrower fields send the value.
fn write_delta(w: &mut BitWriter, widths: &[u8], base: Option<&[u32]>, fields: &[u32]) {
    for (i, (&f, &width)) in fields.iter().zip(widths).enumerate() {
        let width = width as u32;
        match base.and_then(|b| b.get(i)) {
            None => w.write(f as u64, width),
            Some(&b) if b == f => w.write_bool(false),
            Some(&b) => {
                w.write_bool(true);
                let d = f as i64 - b as i64;
                if width <= 12 {
                    w.write(f as u64, width);
                } else if d.abs() < 1 << 5 {
                    w.write_bool(false);
                    w.write_bool(d < 0);
                    w.write(d.unsigned_abs(), 5);
                } else if d.abs() < 1 << 10 {
                    w.write(0b01, 2);
                    w.write_bool(d < 0);
                    w.write(d.unsigned_abs(), 10);
                } else {
                    w.write(0b11, 2);
                    w.write(f as u64, width);
                }
            }
        }
    }
}

/// Reads past one entity's fields delta-encoded against a baseline that is
/// not at hand.
fn skip_delta(r: &mut BitReader<'_>, widths: &[u8]) -> Result<(), DecodeError> {
    for &width in widths {
        let width = width as u32;
        if !r.read_bool()? {
            continue;
        }
        if width <= 12 {
            r.read(width)?;
        } else if !r.read_bool()? {
            r.read(6)?;
        } else if !r.read_bool()? {
            r.read(11)?;
        } else {
            r.read(width)?;
        }
    }
    Ok(())
}

/// Reads one entity's fields (see [`write_delta`]) into `out`.
fn read_delta(
    r: &mut BitReader<'_>,
    widths: &[u8],
    base: Option<&[u32]>,
    out: &mut Vec<u32>,
) -> Result<(), DecodeError> {
    out.clear();
    for (i, &width) in widths.iter().enumerate() {
        let width = width as u32;
        let max = if width >= 32 {
            u32::MAX as i64
        } else {
            (1i64 << width) - 1
        };
        let v = match base.and_then(|b| b.get(i)) {
            None => r.read(width)? as i64,
            Some(&b) => {
                if !r.read_bool()? {
                    b as i64
                } else if width <= 12 {
                    r.read(width)? as i64
                } else {
                    let small = !r.read_bool()?;
                    let medium = !small && !r.read_bool()?;
                    if small || medium {
                        let neg = r.read_bool()?;
                        let m = r.read(if small { 5 } else { 10 })? as i64;
                        b as i64 + if neg { -m } else { m }
                    } else {
                        r.read(width)? as i64
                    }
                }
            }
        };
        if !(0..=max).contains(&v) {
            return Err(DecodeError::Invalid("field out of range"));
        }
        out.push(v as u32);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
