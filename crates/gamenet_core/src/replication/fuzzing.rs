//! The replication wire decoders for the fuzz targets (feature `fuzzing`,
//! hidden from the docs): not part of the API, and not to be enabled in a
//! game.
//!
//! [`decode`] reads a message with the decoders a [`Replicator`](super::Replicator)
//! reads every peer's bytes with, and [`Message::encode`] writes it back with
//! its encoders. What an update packet decodes to depends on the receiver's
//! entities and baselines; the caller stands in for them.

use crate::PeerId;
use crate::bits::BitWriter;
use crate::codec::DecodeError;

use super::types::{EntityState, Fields, NetId, Schema};
use super::wire::{self, Chosen};

/// A decoded replication message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Entity states and acks.
    Update(Update),
    /// An entity, whole.
    Spawn {
        /// Its id.
        id: NetId,
        /// Its type.
        ty: u16,
        /// Its fields.
        fields: Fields,
    },
    /// An entity is gone.
    Despawn(NetId),
    /// An entity has a new owner.
    Owner {
        /// Its id.
        id: NetId,
        /// The new owner.
        owner: PeerId,
        /// Its type.
        ty: u16,
        /// Its fields.
        fields: Fields,
    },
    /// A request for an entity's authority.
    Request(NetId),
    /// A request to send an entity whole.
    Resync(NetId),
    /// A request to spawn an entity again.
    Missing(NetId),
    /// A take-over of what a departed peer owned.
    Takeover(PeerId),
    /// A game event.
    Event(Vec<u8>),
}

/// An update packet, as far as the receiver could read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// Its seq.
    pub seq: u32,
    /// The sender's clock, in milliseconds (wrapping).
    pub clock: u16,
    /// The sender's acks: the newest seq and the 64 before it.
    pub ack: (u32, u64),
    /// The entities read, in packet order.
    pub entities: Vec<UpdateEntity>,
    /// Whether every entity was read (not stopped at one unknown).
    pub complete: bool,
}

/// One entity of an update packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateEntity {
    /// Its id.
    pub id: NetId,
    /// Packets back to its baseline (0: none).
    pub back: u32,
    /// Its type, as the receiver knows it.
    pub ty: u16,
    /// Its baseline, if the receiver had it (and it was needed).
    pub baseline: Option<Fields>,
    /// Its fields, or `None` if its baseline was gone and they were skipped.
    pub fields: Option<Fields>,
}

/// What the receiver knows of an entity an update names, given its id and
/// baseline distance.
pub enum Known {
    /// Nothing: the packet cannot be read further.
    Unknown,
    /// An entity of a type, with its baseline at that distance if it has it
    /// (ignored for a distance of 0).
    Entity {
        /// Its type.
        ty: u16,
        /// Its baseline.
        baseline: Option<Fields>,
    },
}

/// Decodes a message as a replicator with `schema` does; `known` stands in
/// for the receiver's entities and baselines.
pub fn decode(
    schema: &Schema,
    bytes: &[u8],
    mut known: impl FnMut(NetId, u32) -> Known,
) -> Result<Message, DecodeError> {
    let (&kind, rest) = bytes.split_first().ok_or(DecodeError::Empty)?;
    Ok(match kind {
        wire::UPDATE => Message::Update(update(schema, rest, &mut known)?),
        wire::SPAWN => {
            let (id, ty, fields) = wire::read_spawn(rest, schema)?;
            Message::Spawn { id, ty, fields }
        }
        wire::DESPAWN => Message::Despawn(wire::read_id_msg(rest)?),
        wire::OWNER => {
            let (id, owner, ty, fields) = wire::read_owner(rest, schema)?;
            Message::Owner {
                id,
                owner,
                ty,
                fields,
            }
        }
        wire::REQUEST => Message::Request(wire::read_id_msg(rest)?),
        wire::RESYNC => Message::Resync(wire::read_id_msg(rest)?),
        wire::MISSING => Message::Missing(wire::read_id_msg(rest)?),
        wire::TAKEOVER => Message::Takeover(wire::read_takeover(rest)?),
        wire::EVENT => Message::Event(rest.to_vec()),
        other => return Err(DecodeError::UnknownType(other)),
    })
}

/// Reads an update packet the way `Replicator::on_update` does.
fn update(
    schema: &Schema,
    bytes: &[u8],
    known: &mut impl FnMut(NetId, u32) -> Known,
) -> Result<Update, DecodeError> {
    let mut packet = wire::UpdateReader::new(bytes)?;
    let mut update = Update {
        seq: packet.seq,
        clock: packet.clock,
        ack: (packet.ack, packet.ack_bits),
        entities: Vec::new(),
        complete: true,
    };
    let mut scratch = Vec::new();
    while let Some((id, back)) = packet.next_entity()? {
        let Known::Entity { ty, baseline } = known(id, back) else {
            update.complete = false;
            break;
        };
        let widths = schema
            .widths(ty)
            .ok_or(DecodeError::Invalid("entity type"))?;
        let baseline = if back == 0 { None } else { baseline };
        let fields = if back != 0 && baseline.is_none() {
            packet.skip(widths)?;
            None
        } else {
            packet.fields(widths, baseline.as_deref(), &mut scratch)?;
            Some(Fields::from(&scratch[..]))
        };
        update.entities.push(UpdateEntity {
            id,
            back,
            ty,
            baseline,
            fields,
        });
    }
    Ok(update)
}

impl Message {
    /// The message's bytes, as a replicator with `schema` writes it; `None`
    /// for an update with skipped entities or ids out of order (which no
    /// sender writes).
    pub fn encode(&self, schema: &Schema) -> Option<Vec<u8>> {
        let entity = |ty: u16, fields: &Fields| EntityState {
            ty,
            owner: PeerId(0),
            fields: fields.clone(),
        };
        Some(match self {
            Message::Update(u) => encode_update(schema, u)?,
            Message::Spawn { id, ty, fields } => wire::spawn_msg(*id, &entity(*ty, fields), schema),
            Message::Despawn(id) => wire::id_msg(wire::DESPAWN, *id),
            Message::Owner {
                id,
                owner,
                ty,
                fields,
            } => {
                let mut e = entity(*ty, fields);
                e.owner = *owner;
                wire::owner_msg(*id, &e, schema)
            }
            Message::Request(id) => wire::id_msg(wire::REQUEST, *id),
            Message::Resync(id) => wire::id_msg(wire::RESYNC, *id),
            Message::Missing(id) => wire::id_msg(wire::MISSING, *id),
            Message::Takeover(peer) => wire::takeover_msg(*peer),
            Message::Event(payload) => wire::event_msg(payload),
        })
    }
}

/// An update packet of the entities, each delta-encoded against its baseline.
fn encode_update(schema: &Schema, u: &Update) -> Option<Vec<u8>> {
    let ascending = u.entities.windows(2).all(|w| w[0].id < w[1].id);
    if !ascending {
        return None;
    }
    let mut deltas = BitWriter::new();
    let mut chosen = Vec::with_capacity(u.entities.len());
    for e in &u.entities {
        let fields = e.fields.clone()?;
        let widths = schema.widths(e.ty)?;
        let start = deltas.bit_len();
        wire::write_delta(&mut deltas, widths, e.baseline.as_deref(), &fields);
        chosen.push(Chosen {
            row: 0,
            id: e.id,
            back: e.back,
            fields,
            start,
            len: deltas.bit_len() - start,
        });
    }
    Some(wire::encode_update(
        u.seq,
        u.clock,
        u.ack,
        &chosen,
        &deltas.finish(),
    ))
}
