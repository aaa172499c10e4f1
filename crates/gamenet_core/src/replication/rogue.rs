//! Well-formed hostile replication messages (feature `rogue`), for testing
//! that a game's peers withstand a peer who breaks the replication rules on
//! purpose. Each function returns a message as the replication layer puts it
//! on the wire (without the layer's tag); every rule it breaks is one the
//! receivers check (see the "Who may send this" notes on the message kinds).
//! Never enable this feature in a game you ship.

use crate::bits::BitWriter;
use crate::peer::PeerId;

use super::table::fold;
use super::wire::{OWNER, SPAWN};

/// Entity id `counter` of `creator`'s namespace (one it has not spawned yet,
/// say).
pub fn id_of(creator: PeerId, counter: u32) -> u64 {
    fold(creator) << 32 | u64::from(counter)
}

/// A spawn of entity `id` as type `ty` (the registration index) with
/// `fields`, each a value and its width in bits.
pub fn spawn(id: u64, ty: u16, fields: &[(u32, u8)]) -> Vec<u8> {
    let mut m = vec![SPAWN];
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&ty.to_le_bytes());
    m.extend(bits(fields));
    m
}

/// A hand-over of entity `id` (of type `ty`, with `fields`) to `to`.
pub fn hand_over(id: u64, to: PeerId, ty: u16, fields: &[(u32, u8)]) -> Vec<u8> {
    let mut m = vec![OWNER];
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&to.0.to_le_bytes());
    m.extend_from_slice(&ty.to_le_bytes());
    m.extend(bits(fields));
    m
}

fn bits(fields: &[(u32, u8)]) -> Vec<u8> {
    let mut w = BitWriter::new();
    for &(value, width) in fields {
        w.write(u64::from(value), u32::from(width));
    }
    w.finish()
}
