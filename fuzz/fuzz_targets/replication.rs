//! Messages from peers to a `Replicator` with entities in play: `(control,
//! message)` chunks (see `gamenet_fuzz::replication::World::chunk`).
#![no_main]

use gamenet_fuzz::Chunks;
use gamenet_fuzz::replication::World;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut world = World::new(false);
    for (control, message) in Chunks::new(data).take(32) {
        world.chunk(control, message);
    }
});
