//! What this peer sends each peer: which owned entities differ from what the
//! peer acked, their accumulated priorities, the byte budget, the update
//! packets built from them and the acks that come back for those packets.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::bits::BitWriter;
use crate::{Channel, Instant, Misbehavior, PeerId, Transmit};

use super::Replicator;
use super::incoming::Incoming;
use super::scope::Scope;
use super::table::{EntityRow, Table};
use super::types::{Fields, NetId, Schema};
use super::wire::{self, Chosen, HEADER, MAX_BACK, MIN_PACKET};

/// What this peer sends one peer and what it took from it.
#[derive(Debug, Default)]
pub(super) struct PeerLink {
    /// What this peer sends it.
    pub(super) out: Outgoing,
    /// What it sent this peer.
    pub(super) inc: Incoming,
}

/// Sent packets remembered per peer, waiting for acks.
const IN_FLIGHT: usize = 4096;

/// What one update packet carried: row, entity and fields.
type SentStates = Vec<(EntityRow, NetId, Fields)>;

/// What this peer sends one peer.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    /// The owned entities in this peer's scope (spawned there), and those
    /// hidden from it.
    pub(super) scope: Scope,
    /// Rows that may be dirty: what a tick looks at, so entities at rest
    /// cost nothing. Cleaned ones leave it at the next tick.
    dirty: Vec<EntityRow>,
    /// The dirty list's spare allocation.
    spare: Vec<EntityRow>,
    /// Ticks so far (wrapping): marks the entries a tick has looked at.
    pass: u32,
    /// Packets sent and what they carried.
    in_flight: VecDeque<(u32, SentStates)>,
    /// The seq of the last update packet sent (the next one is one more).
    pub(super) seq: u32,
    /// Budget bytes carried to the next tick.
    credit: f64,
    /// Bytes per second for this peer, if set apart from the default.
    pub(super) budget: Option<u32>,
    /// Bytes sent in the last second, for diagnostics.
    pub(super) sent: VecDeque<(Instant, usize)>,
    /// A reliable message to this peer was lost: every entity in its scope is
    /// spawned there anew at the next tick.
    pub(super) respawn: bool,
}

impl Outgoing {
    /// Lists an entity in scope for the next tick to look at.
    pub(super) fn mark_dirty(&mut self, row: EntityRow) {
        if let Some(s) = self.scope.get_mut(row)
            && !s.dirty
        {
            s.dirty = true;
            self.dirty.push(row);
        }
    }

    /// Puts an entity in scope; false if it was.
    pub(super) fn enter(&mut self, row: EntityRow) -> bool {
        if !self.scope.enter(row, self.seq) {
            return false;
        }
        self.mark_dirty(row);
        true
    }

    /// Takes an entity out of scope; false if it was not in it.
    pub(super) fn leave(&mut self, row: EntityRow) -> bool {
        self.scope.leave(row)
    }
}

impl Replicator {
    /// This peer's replication clock at `now`, as update packets carry it:
    /// milliseconds since its first packet, wrapping.
    pub(super) fn clock(&mut self, now: Instant) -> u16 {
        let epoch = *self.epoch.get_or_insert(now);
        now.saturating_duration_since(epoch).as_millis() as u16
    }

    /// Sends `peer` an update packet with acks alone, now.
    pub(super) fn send_acks_now(&mut self, now: Instant, peer: PeerId) {
        let clock = self.clock(now);
        if let Some(link) = self.links.get_mut(&peer) {
            send_acks(link, &mut self.transmits, now, peer, clock);
        }
    }

    /// Acks of packets sent to a peer: the states they carried become baselines.
    pub(super) fn on_ack(&mut self, peer: PeerId, ack: u32, bits: u64) {
        let table = &self.table;
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
            for (row, id, fields) in std::mem::take(states) {
                let Some(rec) = table.get(row) else {
                    continue;
                };
                let Some(s) = scope.get_mut(row) else {
                    continue;
                };
                // A reused row, or a packet from before it entered scope.
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

    /// The peer lacks the baseline of an entity of ours: the next update
    /// sends it whole, and acks of packets sent before now do not count.
    pub(super) fn on_resync(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), Misbehavior> {
        let id = wire::read_id_msg(bytes)?;
        if let Some(row) = self.table.row_of(id)
            && let Some(link) = self.links.get_mut(&peer)
            && let Some(s) = link.out.scope.get_mut(row)
        {
            s.acked = None;
            s.since = link.out.seq;
            link.out.mark_dirty(row);
        }
        Ok(())
    }

    /// An update named an entity of ours the peer never saw spawned (its
    /// spawn was lost): it is spawned there again, whole, if in its scope.
    pub(super) fn on_missing(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), Misbehavior> {
        let id = wire::read_id_msg(bytes)?;
        if let Some(row) = self.table.row_of(id) {
            self.respawn(peer, row);
        }
        Ok(())
    }

    /// Sends an owned entity in a peer's scope whole again as a spawn; acks of
    /// packets sent before now do not count for it.
    fn respawn(&mut self, peer: PeerId, row: EntityRow) {
        let Some(rec) = self.table.get(row) else {
            return;
        };
        if rec.entity.owner != self.id {
            return;
        }
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let Some(s) = link.out.scope.get_mut(row) else {
            return;
        };
        s.acked = None;
        s.since = link.out.seq;
        link.out.mark_dirty(row);
        let msg = wire::spawn_msg(rec.id, &rec.entity, &self.schema);
        self.reliable(peer, msg);
    }

    /// After a lost reliable message (see
    /// [`Replicator::handle_send_failed`]): every entity in the peer's scope
    /// is spawned there again.
    pub(super) fn respawn_if_lost(&mut self, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if !std::mem::take(&mut link.out.respawn) {
            return;
        }
        let me = self.id;
        for (_, row) in self.table.sorted_ids(|e| e.owner == me) {
            self.respawn(peer, row);
        }
    }

    /// One tick for one peer: budget, priorities, and as many update packets as the
    /// budget allows.
    pub(super) fn tick_peer(&mut self, now: Instant, peer: PeerId, dt: Duration) {
        let default_budget = self.config.budget_bytes_per_sec;
        let max_packet = self.config.max_packet;
        let me = self.id;
        let clock = self.clock(now);
        let table = &self.table;
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
        let mut candidates: Vec<(f32, NetId, EntityRow)> = Vec::with_capacity(listed.len());
        for &row in &listed {
            let Some(s) = out.scope.get_mut(row) else {
                continue;
            };
            if !s.dirty || s.pass == pass {
                continue;
            }
            s.pass = pass;
            let Some(rec) = table.get(row) else {
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
            candidates.push((s.priority, rec.id, row));
            out.dirty.push(row);
        }
        listed.clear();
        out.spare = listed;
        candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut next = 0;
        let mut sent_any = false;
        // As many packets as the budget allows, most urgent entities first.
        while next < candidates.len() && link.out.credit >= MIN_PACKET as f64 {
            let limit = (link.out.credit as usize).min(max_packet);
            let seq = link.out.seq.wrapping_add(1);
            let mut chosen: Vec<Chosen> = Vec::new();
            let mut deltas = BitWriter::new();
            let mut estimate = HEADER * 8 + 17;
            while next < candidates.len() {
                let row = candidates[next].2;
                let Some(c) = chosen_entry(table, schema, &link.out, row, seq, &mut deltas) else {
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
            let mut data = wire::encode_update(seq, clock, link.inc.acks(), &chosen, &deltas);
            // The estimate was short: give back the least urgent until it fits.
            while data.len() > limit && chosen.len() > 1 {
                chosen.pop();
                next -= 1;
                data = wire::encode_update(seq, clock, link.inc.acks(), &chosen, &deltas);
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
            send_acks(link, transmits, now, peer, clock);
        }
    }
}

/// Delta-encodes an entity for the packet `seq` against what the peer acked.
fn chosen_entry(
    table: &Table,
    schema: &Schema,
    out: &Outgoing,
    row: EntityRow,
    seq: u32,
    deltas: &mut BitWriter,
) -> Option<Chosen> {
    let rec = table.get(row)?;
    let widths = schema.widths(rec.entity.ty)?;
    let acked = out.scope.get(row).and_then(|s| s.acked.as_ref());
    let (back, base) = match acked {
        Some((s, f)) if seq.wrapping_sub(*s) <= MAX_BACK => (seq.wrapping_sub(*s), Some(&f[..])),
        _ => (0, None),
    };
    let start = deltas.bit_len();
    wire::write_delta(deltas, widths, base, &rec.entity.fields);
    Some(Chosen {
        row,
        id: rec.id,
        back,
        fields: rec.entity.fields.clone(),
        start,
        len: deltas.bit_len() - start,
    })
}

/// An update packet with acks alone.
fn send_acks(
    link: &mut PeerLink,
    transmits: &mut VecDeque<Transmit>,
    now: Instant,
    peer: PeerId,
    clock: u16,
) {
    let seq = link.out.seq.wrapping_add(1);
    let data = wire::encode_update(seq, clock, link.inc.acks(), &[], &[]);
    finish_packet(link, transmits, now, peer, seq, data, Vec::new());
}

/// Sends an update packet and remembers what it carried.
fn finish_packet(
    link: &mut PeerLink,
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
        if let Some(s) = out.scope.get_mut(c.row) {
            s.priority = 0.0;
        }
    }
    out.in_flight.push_back((
        seq,
        chosen
            .into_iter()
            .map(|c| (c.row, c.id, c.fields))
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
