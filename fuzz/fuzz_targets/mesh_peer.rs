//! Packets from a peer to a `Mesh`: the first byte says whether the link
//! joined first; the rest is `(control, packet)` chunks (see
//! `gamenet_fuzz::mesh::Pair::chunk`).
#![no_main]

use gamenet_fuzz::Chunks;
use gamenet_fuzz::mesh::Pair;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut pair = Pair::new(first & 1 == 1);
    for (control, packet) in Chunks::new(rest).take(64) {
        pair.chunk(control, packet);
    }
});
