//! A late-join snapshot from a peer loaded into a Bevy world
//! (`bevy_gamenet`'s snapshot decoding, through `run_requests`): never a
//! panic; and whatever world it leaves, its own snapshot loads back to the
//! same world (the same entities and values: a snapshot's bytes may list
//! them in another order).
//!
//! The first byte picks what is loaded: the rest of the input as it is, or
//! a valid snapshot of the world (made once) with the rest of the input as
//! `(offset, offset, byte)` triples written into it, or cut short at the
//! offset the next two bytes give and the rest appended.
#![no_main]

use std::sync::OnceLock;

use gamenet_fuzz::bevy::{app, load, snapshot, state};
use libfuzzer_sys::fuzz_target;

fn valid() -> &'static [u8] {
    static VALID: OnceLock<Vec<u8>> = OnceLock::new();
    VALID.get_or_init(|| snapshot(&mut app(), 0))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let input = match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut v = valid().to_vec();
            for t in rest.chunks_exact(3) {
                let at = u16::from_le_bytes([t[0], t[1]]) as usize % v.len();
                v[at] = t[2];
            }
            v
        }
        _ => {
            let mut v = valid().to_vec();
            if let [a, b, tail @ ..] = rest {
                v.truncate(u16::from_le_bytes([*a, *b]) as usize % (v.len() + 1));
                v.extend_from_slice(tail);
            }
            v
        }
    };
    let mut app = app();
    load(&mut app, 5, &input);
    let loaded = state(&mut app);
    let first = snapshot(&mut app, 6);
    load(&mut app, 7, &first);
    assert_eq!(
        state(&mut app),
        loaded,
        "the world's own snapshot loads another world"
    );
});
