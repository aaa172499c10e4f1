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

use gamenet_fuzz::bevy::{app, load, snapshot, snapshot_input, state};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(input) = snapshot_input(data) else {
        return;
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
