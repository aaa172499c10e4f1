//! The replication wire format alone: any bytes decode to a message or an
//! error, never a panic; a message that decodes encodes back to bytes that
//! decode to it. Update packets are read against a stand-in for the
//! receiver's entities, picked by id: of each type of the schema (fields 0 to
//! 32 bits wide), of a type it lacks, or unknown (which stops the packet);
//! and by baseline distance: the baseline at hand, or gone (its fields are
//! skipped).
#![no_main]

use gamenet_core::replication::fuzzing::{Known, Message, decode};
use gamenet_core::replication::{Fields, NetId, Schema};
use libfuzzer_sys::fuzz_target;

/// Largest game event a sender writes.
const MAX_EVENT: usize = 64 * 1024;

fn schema() -> Schema {
    Schema {
        types: vec![
            vec![16, 16, 9],
            vec![32, 1],
            vec![],
            vec![0, 12, 13, 31, 32],
        ],
    }
}

/// The receiver's entity `id`, and its baseline `back` packets back.
fn known(schema: &Schema, id: NetId, back: u32) -> Known {
    let ty = match id.0 % 7 {
        t @ 0..=3 => t as u16,
        4 => 9,
        _ => return Known::Unknown,
    };
    let baseline = (back % 3 != 0).then(|| {
        let widths = schema.types.get(ty as usize).map_or(&[][..], |w| &w[..]);
        let values: Vec<u32> = widths
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                let v = id.0.wrapping_mul(i as u64 + 1).wrapping_add(back as u64) as u32;
                if w >= 32 { v } else { v & ((1 << w) - 1) }
            })
            .collect();
        Fields::from(&values[..])
    });
    Known::Entity { ty, baseline }
}

fuzz_target!(|data: &[u8]| {
    let schema = schema();
    let read = |bytes: &[u8]| decode(&schema, bytes, |id, back| known(&schema, id, back));
    let Ok(mut m) = read(data) else {
        return;
    };
    if matches!(&m, Message::Event(p) if p.len() > MAX_EVENT) {
        return;
    }
    let Some(bytes) = m.encode(&schema) else {
        return;
    };
    // What follows an unknown entity is not written back.
    if let Message::Update(u) = &mut m {
        u.complete = true;
    }
    assert_eq!(read(&bytes), Ok(m));
});
