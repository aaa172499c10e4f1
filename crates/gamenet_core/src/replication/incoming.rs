//! What each peer sends this one: spawns, despawns and update packets, the
//! received states kept as baselines for the deltas that follow, and the
//! record of packets to ack.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use crate::codec::DecodeError;
use crate::{Instant, Misbehavior, PeerId};

use super::Replicator;
use super::table::{EntityRow, fold, namespace};
use super::types::{EntityState, Fields, NetId, ReplicationEvent};
use super::wire::{self, MISSING, RESYNC};

/// Received states kept per entity, to decode deltas against.
pub(super) const BASELINE_HISTORY: usize = 32;
/// Update packets taken from a peer before acks go back at once rather than
/// with the next tick: a sender of many packets a tick would otherwise
/// outrun the 64-packet ack window.
const ACK_EVERY: u32 = 24;
/// How long updates may name an entity never spawned here before its owner
/// is asked to spawn it again ([`MISSING`]), and again after that: longer
/// than a spawn in flight on the reliable channel usually takes.
pub(super) const MISSING_AFTER: Duration = Duration::from_millis(500);
/// Entities named by updates but never spawned, remembered per peer.
const MAX_MISSING: usize = 256;

/// What one peer sent this one.
#[derive(Debug, Default)]
pub(super) struct Incoming {
    /// Per row: received states of the entity, oldest first.
    history: Vec<Option<VecDeque<(u32, Fields)>>>,
    /// Newest update seq received and the 64 before it.
    pub(super) latest: Option<u32>,
    /// Bit `n` set: packet `latest - n - 1` was received.
    bits: u64,
    /// Update packets received since acks last went back.
    pub(super) unacked: u32,
    /// Entities whose baseline was gone, asked to be sent whole.
    pub(super) resync: BTreeSet<NetId>,
    /// Entities updates named before their spawn arrived, and when they were
    /// last asked for (or first named).
    pub(super) missing: BTreeMap<NetId, Instant>,
    /// Departed peers this peer announced it took over while they were still
    /// replicated with here (see [`TAKEOVER`](super::wire::TAKEOVER)).
    pub(super) claims: BTreeSet<PeerId>,
    /// The newest clock the peer's update packets carried, unwrapped.
    clock: Option<u64>,
}

impl Incoming {
    /// A packet's clock unwrapped against the newest one seen (packets come
    /// reordered by far less than the 32 s a wrap is apart), from 2^32.
    fn unwrap_clock(&mut self, clock: u16) -> u64 {
        let last = self.clock.unwrap_or((1 << 32) + clock as u64);
        let back = clock.wrapping_sub(last as u16) as i16;
        let at = last.saturating_add_signed(back as i64);
        self.clock = Some(last.max(at));
        at
    }

    /// The received states of the entity in a row.
    fn history(&self, row: EntityRow) -> Option<&VecDeque<(u32, Fields)>> {
        self.history.get(row as usize).and_then(Option::as_ref)
    }

    /// The received states of the entity in a row, started if there were none.
    fn history_mut(&mut self, row: EntityRow) -> &mut VecDeque<(u32, Fields)> {
        let i = row as usize;
        if self.history.len() <= i {
            self.history.resize_with(i + 1, || None);
        }
        self.history[i].get_or_insert_with(VecDeque::new)
    }

    /// Starts the entity's history afresh.
    fn reset(&mut self, row: EntityRow) {
        self.forget(row);
        self.history_mut(row);
    }

    /// Drops the entity's history.
    pub(super) fn forget(&mut self, row: EntityRow) {
        if let Some(h) = self.history.get_mut(row as usize) {
            *h = None;
        }
    }

    /// Notes an update packet received, for the acks.
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

    /// The acks an update packet carries: the newest seq received (0: none)
    /// and bits for the 64 before it.
    pub(super) fn acks(&self) -> (u32, u64) {
        (self.latest.unwrap_or(0), self.bits)
    }
}

impl Replicator {
    /// A [`SPAWN`](super::wire::SPAWN): a new entity, or a known one sent
    /// whole again (see the rules there).
    pub(super) fn on_spawn(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), Misbehavior> {
        let (id, ty, fields) = wire::read_spawn(bytes, &self.schema)?;
        let theirs = fold(peer);
        let creator = namespace(id) == theirs;
        let entity = EntityState {
            ty,
            owner: peer,
            fields,
        };
        let row = match self.table.row_of(id) {
            None => {
                self.check_quota(theirs)?;
                let row = self.table.insert(id, entity, theirs, creator);
                self.events.push_back(ReplicationEvent::Spawned {
                    id,
                    ty,
                    owner: peer,
                });
                row
            }
            Some(row) => {
                let Some(rec) = self.table.get(row) else {
                    return Ok(());
                };
                let (owner, witnessed, known_ty) = (rec.entity.owner, rec.witnessed, rec.entity.ty);
                if known_ty != ty {
                    // An entity never changes type; from its owner that is a
                    // lie, from another peer a claim that cannot stand.
                    if owner == peer {
                        return Err(Misbehavior::Rule("re-spawn of an entity with another type"));
                    }
                    return Ok(());
                }
                if owner == peer {
                    // Its owner sends it again (it left and re-entered scope,
                    // or was asked for it).
                } else if creator && !witnessed {
                    // The creator's own spawn beats a claim never checked here.
                    self.check_quota(theirs)?;
                    self.table.recharge(row, theirs);
                    self.events
                        .push_back(ReplicationEvent::OwnerChanged { id, owner: peer });
                } else if creator && namespace(id) == fold(owner) {
                    // Two peers whose ids fold alike: the owner known first
                    // keeps the id.
                    return Ok(());
                } else if !self.contested(peer, row, id) {
                    return Ok(());
                }
                let Some(r) = self.table.get_mut(row) else {
                    return Ok(());
                };
                if owner != peer {
                    r.witnessed = true;
                }
                r.entity = entity;
                self.events.push_back(ReplicationEvent::Updated {
                    id,
                    sent: None,
                    fields: r.entity.fields.clone(),
                });
                row
            }
        };
        if let Some(link) = self.links.get_mut(&peer) {
            link.inc.reset(row);
            link.inc.missing.remove(&id);
        }
        Ok(())
    }

    /// Whether one more entity may be charged to a namespace.
    fn check_quota(&self, namespace: u64) -> Result<(), Misbehavior> {
        let charged = self.table.charged(namespace);
        if charged >= self.config.max_entities_per_peer {
            return Err(Misbehavior::Oversize {
                what: "entities spawned",
                len: charged + 1,
                max: self.config.max_entities_per_peer,
            });
        }
        Ok(())
    }

    /// A [`DESPAWN`](super::wire::DESPAWN) from the entity's owner.
    pub(super) fn on_despawn(&mut self, peer: PeerId, bytes: &[u8]) -> Result<(), Misbehavior> {
        let id = wire::read_id_msg(bytes)?;
        if let Some(row) = self.table.row_of(id)
            && self.table.get(row).is_some_and(|r| r.entity.owner == peer)
        {
            self.remove(row);
            self.events.push_back(ReplicationEvent::Despawned { id });
        }
        Ok(())
    }

    /// An [`UPDATE`](super::wire::UPDATE): its acks, then each entity decoded against its
    /// baseline, kept as a baseline and applied if it is the newest state from the owner.
    pub(super) fn on_update(
        &mut self,
        now: Instant,
        peer: PeerId,
        bytes: &[u8],
    ) -> Result<(), Misbehavior> {
        let mut packet = wire::UpdateReader::new(bytes)?;
        let seq = packet.seq;
        let clock = packet.clock;
        self.on_ack(peer, packet.ack, packet.ack_bits);
        let Self {
            table,
            links,
            schema,
            events,
            transmits,
            ..
        } = self;
        let Some(inc) = links.get_mut(&peer).map(|l| &mut l.inc) else {
            return Ok(());
        };
        let sent = inc.unwrap_clock(clock);
        let mut updates: Vec<(EntityRow, Fields, bool)> = Vec::with_capacity(packet.count as usize);
        let mut scratch = Vec::new();
        let mut resync = Vec::new();
        while let Some((id, back)) = packet.next_entity()? {
            let Some((row, rec)) = table.find(id) else {
                // Its spawn is still on the reliable channel (or was lost):
                // the rest of the packet cannot be read, and nothing is
                // acked, so the sender sends full states again. Named for
                // long, its owner is asked to spawn it again.
                let ask = match inc.missing.get(&id) {
                    Some(&t) => now.saturating_duration_since(t) >= MISSING_AFTER,
                    None => {
                        if inc.missing.len() < MAX_MISSING {
                            inc.missing.insert(id, now);
                        }
                        false
                    }
                };
                if ask {
                    inc.missing.insert(id, now);
                    transmits.push_back(crate::Transmit {
                        peer,
                        channel: crate::Channel::Reliable,
                        data: wire::id_msg(MISSING, id).into(),
                    });
                }
                return Ok(());
            };
            let widths = schema
                .widths(rec.entity.ty)
                .ok_or(DecodeError::Invalid("entity type"))?;
            let baseline = if back == 0 {
                inc.resync.remove(&id);
                None
            } else {
                let base_seq = seq.wrapping_sub(back);
                let found = inc
                    .history(row)
                    .and_then(|h| h.iter().rev().find(|(s, _)| *s == base_seq));
                match found {
                    Some((_, f)) => Some(&f[..]),
                    None => {
                        // Its baseline is gone (acks lost for longer than
                        // the history reaches): read past it and ask for it
                        // whole, once until a whole state comes.
                        packet.skip(widths)?;
                        if inc.resync.insert(id) {
                            resync.push(id);
                        }
                        continue;
                    }
                }
            };
            packet.fields(widths, baseline, &mut scratch)?;
            updates.push((row, Fields::from(&scratch[..]), rec.entity.owner == peer));
        }
        inc.record(seq);
        for (row, fields, from_owner) in updates {
            // Kept in seq order as a baseline; applied only if it is the
            // newest state of the entity (unreliable packets come reordered).
            let h = inc.history_mut(row);
            let at = h.iter().rposition(|(s, _)| *s < seq).map_or(0, |p| p + 1);
            if h.get(at).is_some_and(|(s, _)| *s == seq) {
                continue;
            }
            h.insert(at, (seq, fields.clone()));
            let newest = at + 1 == h.len();
            while h.len() > BASELINE_HISTORY {
                h.pop_front();
            }
            // A stale packet from before a hand-over is not applied either.
            if from_owner
                && newest
                && let Some(rec) = table.get_mut(row)
                && rec.entity.fields != fields
            {
                rec.entity.fields = fields.clone();
                events.push_back(ReplicationEvent::Updated {
                    id: rec.id,
                    sent: Some(sent),
                    fields,
                });
            }
        }
        let ack_now = inc.unacked >= ACK_EVERY;
        for id in resync {
            self.reliable(peer, wire::id_msg(RESYNC, id));
        }
        if ack_now && let Some(now) = self.last_tick {
            self.send_acks_now(now, peer);
        }
        Ok(())
    }
}
