//! Replication on the wire: message kinds (the first byte of each message),
//! and the encoding of ids, deltas and update packets.
//!
//! Every message comes from a peer this one replicates with; messages from
//! any other peer are ignored unread.

use crate::PeerId;
use crate::bits::{BitReader, BitWriter};
use crate::codec::{DecodeError, Reader};

use super::table::EntityRow;
use super::types::{EntityState, Fields, NetId, Schema};

/// An entity picked for a packet: its row, id, baseline distance and
/// fields, and where its delta-encoded fields sit in the packet's delta bits
/// (encoded once; the packet copies the bits in id order).
pub(super) struct Chosen {
    /// Its row in the table.
    pub(super) row: EntityRow,
    /// Its id.
    pub(super) id: NetId,
    /// Packets back to its baseline (0: none, the fields are whole).
    pub(super) back: u32,
    /// The state sent, remembered until acked.
    pub(super) fields: Fields,
    /// The first of its bits in the packet's delta bits.
    pub(super) start: usize,
    /// How many bits.
    pub(super) len: usize,
}

/// Entity states and acks, unreliable: seq, the sender's clock, ack, ack
/// bits, count, then the entities (see [`encode_update`]).
///
/// The clock (milliseconds since the sender's first packet, wrapping at
/// 2^16) places each state on the sender's timeline, so the receiver's
/// interpolation does not follow network jitter; a sender that lies about
/// it only misplaces its own entities' motion.
///
/// Who may send this: any peer; its acks always count, and a state is applied
/// only if the sender owns the entity here (others are kept as baselines
/// only). An entity never spawned here stops the packet unacked and, after
/// `MISSING_AFTER` (500 ms, see `incoming`), is asked for with
/// [`MISSING`].
pub(super) const UPDATE: u8 = 0x01;
/// An entity, whole: id, type, fields.
///
/// Who may send this: for an id not known here, any peer, up to
/// [`max_entities_per_peer`](super::ReplicationConfig::max_entities_per_peer)
/// ids charged to its namespace (more is reported): an id in its own namespace
/// (the 32 high bits are the fold of its peer id) is its own; an id outside it
/// is taken as an entity it was handed or took over before this peer could
/// see it (say this peer joined later), an unchecked claim that the id's
/// creator's own spawn overrides. For a known id: its owner, with the same type
/// (another type is reported); the creator (by namespace) over an unchecked
/// claim; or, for an entity that passed to a successor here, a lower-id peer
/// that took it over too on the other side of a healed split. Anything else is
/// ignored (two peers whose ids fold alike: the owner known first keeps it).
pub(super) const SPAWN: u8 = 0x10;
/// An entity is gone: id.
///
/// Who may send this: the owner (from others it is ignored).
pub(super) const DESPAWN: u8 = 0x11;
/// An entity has a new owner: id, new owner, type, fields.
///
/// Who may send this: the current owner, with the entity's type (another type
/// is reported), handing it to a peer replicated with here or to this peer
/// (a hand-over to anyone else, or from anyone else, is ignored).
pub(super) const OWNER: u8 = 0x12;
/// A request for an entity's authority: id.
///
/// Who may send this: any peer; reported only if this peer owns the entity.
pub(super) const REQUEST: u8 = 0x13;
/// A game event: the payload.
///
/// Who may send this: any peer.
pub(super) const EVENT: u8 = 0x14;
/// A request to send an entity whole, its baseline being gone: id.
///
/// Who may send this: any peer, for an entity of this peer in its scope (for
/// others it is ignored).
pub(crate) const RESYNC: u8 = 0x15;
/// A take-over announcement: the peer that left (16 bytes), whose entities the
/// sender now owns.
///
/// Who may send this: the successor of the departed peer as computed here
/// (the lowest id among this peer and the peers it replicated with when the
/// departed one left here); a claim from any other peer is ignored, one about
/// a peer still replicated with here waits until it leaves here too, and one
/// naming the sender itself is reported.
pub(super) const TAKEOVER: u8 = 0x16;
/// A request to spawn an entity again, an update having named it before its
/// spawn arrived: id.
///
/// Who may send this: any peer, for an entity of this peer in its scope (for
/// others it is ignored).
pub(super) const MISSING: u8 = 0x17;

/// Farthest baseline (in packets) a delta may refer to: a fast sender sends
/// hundreds of packets a round trip.
pub(super) const MAX_BACK: u32 = u16::MAX as u32;
/// Largest game event, in bytes; longer ones are cut.
pub const MAX_EVENT: usize = 64 * 1024;
/// Bytes of an update packet's header.
pub(super) const HEADER: usize = 21;
/// Smallest update packet worth starting: the header and a few entities.
pub(super) const MIN_PACKET: usize = HEADER + 16;

/// A message of one kind carrying one entity id.
pub(crate) fn id_msg(kind: u8, id: NetId) -> Vec<u8> {
    let mut m = vec![kind];
    m.extend_from_slice(&id.0.to_le_bytes());
    m
}

/// A [`TAKEOVER`] of what `departed` owned.
pub(super) fn takeover_msg(departed: crate::PeerId) -> Vec<u8> {
    let mut m = vec![TAKEOVER];
    m.extend_from_slice(&departed.0.to_le_bytes());
    m
}

/// A game event, cut to [`MAX_EVENT`] bytes.
pub(super) fn event_msg(payload: &[u8]) -> Vec<u8> {
    let mut m = vec![EVENT];
    m.extend_from_slice(&payload[..payload.len().min(MAX_EVENT)]);
    m
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

/// Reads a baseline distance (see [`write_back`]).
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

/// An update packet: header (seq, clock, ack, ack bits, count), then the entities
/// in id order: a shared baseline distance, and per entity its id gap, a
/// baseline bit (or distance) and its fields.
pub(super) fn encode_update(
    seq: u32,
    clock: u16,
    (ack, ack_bits): (u32, u64),
    chosen: &[Chosen],
    deltas: &[u8],
) -> Vec<u8> {
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
    data.extend_from_slice(&clock.to_le_bytes());
    data.extend_from_slice(&ack.to_le_bytes());
    data.extend_from_slice(&ack_bits.to_le_bytes());
    data.extend_from_slice(&(sorted.len() as u16).to_le_bytes());
    data.extend(w.finish());
    data
}

/// A [`SPAWN`] of an entity, whole.
pub(super) fn spawn_msg(id: NetId, e: &EntityState, schema: &Schema) -> Vec<u8> {
    let mut m = vec![SPAWN];
    m.extend_from_slice(&id.0.to_le_bytes());
    m.extend_from_slice(&e.ty.to_le_bytes());
    m.extend(full_fields(e, schema));
    m
}

/// An [`OWNER`] message: the entity with its new owner, whole.
pub(super) fn owner_msg(id: NetId, e: &EntityState, schema: &Schema) -> Vec<u8> {
    let mut m = vec![OWNER];
    m.extend_from_slice(&id.0.to_le_bytes());
    m.extend_from_slice(&e.owner.0.to_le_bytes());
    m.extend_from_slice(&e.ty.to_le_bytes());
    m.extend(full_fields(e, schema));
    m
}

/// An entity's fields, each in its width.
fn full_fields(e: &EntityState, schema: &Schema) -> Vec<u8> {
    let mut w = BitWriter::new();
    for (f, &width) in e.fields.iter().zip(schema.widths(e.ty).unwrap_or(&[])) {
        w.write(*f as u64, width as u32);
    }
    w.finish()
}

/// Reads the whole fields of an entity of type `ty`.
fn read_fields(schema: &Schema, ty: u16, r: &mut BitReader<'_>) -> Result<Fields, DecodeError> {
    let widths = schema
        .widths(ty)
        .ok_or(DecodeError::Invalid("entity type"))?;
    widths
        .iter()
        .map(|&w| Ok(r.read(w as u32)? as u32))
        .collect()
}

/// Reads a [`SPAWN`] (after its kind byte): id, type and fields.
pub(super) fn read_spawn(
    bytes: &[u8],
    schema: &Schema,
) -> Result<(NetId, u16, Fields), DecodeError> {
    let mut r = Reader { bytes };
    let id = NetId(r.u64("id")?);
    let ty = r.u16("type")?;
    let fields = read_fields(schema, ty, &mut BitReader::new(r.rest()))?;
    Ok((id, ty, fields))
}

/// Reads an [`OWNER`] (after its kind byte): id, new owner, type and fields.
pub(super) fn read_owner(
    bytes: &[u8],
    schema: &Schema,
) -> Result<(NetId, PeerId, u16, Fields), DecodeError> {
    let mut r = Reader { bytes };
    let id = NetId(r.u64("id")?);
    let owner = PeerId(u128::from_le_bytes(r.array("owner")?));
    let ty = r.u16("type")?;
    let fields = read_fields(schema, ty, &mut BitReader::new(r.rest()))?;
    Ok((id, owner, ty, fields))
}

/// Reads a message of one id (see [`id_msg`]), after its kind byte.
pub(super) fn read_id_msg(bytes: &[u8]) -> Result<NetId, DecodeError> {
    let mut r = Reader { bytes };
    let id = NetId(r.u64("id")?);
    r.finish(id)
}

/// Reads a [`TAKEOVER`] (after its kind byte): the departed peer.
pub(super) fn read_takeover(bytes: &[u8]) -> Result<PeerId, DecodeError> {
    let mut r = Reader { bytes };
    let departed = PeerId(u128::from_le_bytes(r.array("departed")?));
    r.finish(departed)
}

/// Reads an [`UPDATE`] (after its kind byte; see [`encode_update`]): the
/// header first, then entity by entity, each entity's fields read against
/// the baseline the caller finds (or skipped, the baseline being gone).
pub(super) struct UpdateReader<'a> {
    /// The packet's seq.
    pub(super) seq: u32,
    /// The sender's clock when it sent the packet, in milliseconds (wrapping).
    pub(super) clock: u16,
    /// The newest seq of the receiver's the sender got.
    pub(super) ack: u32,
    /// Which of the 64 before it the sender got.
    pub(super) ack_bits: u64,
    /// Entities in the packet.
    pub(super) count: u16,
    bits: BitReader<'a>,
    /// The shared baseline distance, read before the first entity.
    common: u32,
    /// The last id read.
    id: u64,
    /// Entities read so far.
    read: u16,
}

impl<'a> UpdateReader<'a> {
    /// Reads the header.
    pub(super) fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let mut r = Reader { bytes };
        Ok(Self {
            seq: r.u32("seq")?,
            clock: r.u16("clock")?,
            ack: r.u32("ack")?,
            ack_bits: r.u64("ack bits")?,
            count: r.u16("count")?,
            bits: BitReader::new(r.rest()),
            common: 0,
            id: 0,
            read: 0,
        })
    }

    /// The next entity's id and baseline distance (0: its fields are whole),
    /// or `None` after the last; then [`UpdateReader::fields`] or
    /// [`UpdateReader::skip`] reads its fields.
    pub(super) fn next_entity(&mut self) -> Result<Option<(NetId, u32)>, DecodeError> {
        if self.read >= self.count {
            return Ok(None);
        }
        let first = self.read == 0;
        if first {
            self.common = read_back(&mut self.bits)?;
        }
        self.id = read_id(&mut self.bits, self.id, first)?;
        self.read += 1;
        let back = if self.bits.read_bool()? {
            self.common
        } else {
            read_back(&mut self.bits)?
        };
        Ok(Some((NetId(self.id), back)))
    }

    /// Reads the entity's fields (see [`read_delta`]) into `out`.
    pub(super) fn fields(
        &mut self,
        widths: &[u8],
        base: Option<&[u32]>,
        out: &mut Vec<u32>,
    ) -> Result<(), DecodeError> {
        read_delta(&mut self.bits, widths, base, out)
    }

    /// Reads past the entity's fields, delta-encoded against a baseline that
    /// is not at hand.
    pub(super) fn skip(&mut self, widths: &[u8]) -> Result<(), DecodeError> {
        skip_delta(&mut self.bits, widths)
    }
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

/// Reads an id (see [`write_id`]) after `prev`; `first` refuses a gap.
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
pub(super) fn write_delta(w: &mut BitWriter, widths: &[u8], base: Option<&[u32]>, fields: &[u32]) {
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
