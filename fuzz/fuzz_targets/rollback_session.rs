//! Messages from peers to a `RollbackSession`: the first byte picks the
//! phase it is in (`gamenet_fuzz::rollback::Phase`); the rest is
//! `(control, message)` chunks (see `gamenet_fuzz::rollback::World::chunk`).
#![no_main]

use gamenet_fuzz::Chunks;
use gamenet_fuzz::rollback::{Phase, World};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut world = World::new(Phase::from_byte(first), false);
    for (control, message) in Chunks::new(rest).take(32) {
        world.chunk(control, message);
    }
});
