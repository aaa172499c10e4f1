//! Fuzz targets for gamenet: every decoder of bytes from the network and the
//! message entry point of every state machine a peer can talk to.
//!
//! The targets (`fuzz_targets/`, one binary each) are run by
//! [cargo-fuzz](https://github.com/rust-fuzz/cargo-fuzz) under libFuzzer:
//!
//! | target | what it feeds | feature |
//! |---|---|---|
//! | `mesh_wire` | `wire::{ReliablePacket, UnreliablePacket}::decode`, re-encoding what decodes | |
//! | `mesh_peer` | packets to a [`gamenet_core::Mesh`] from a peer, fresh or joined | |
//! | `rollback_wire` | the rollback message and input-record decoders, re-encoding what decodes | |
//! | `rollback_session` | messages to a `RollbackSession` in every phase ([`rollback::Phase`]) | |
//! | `replication_wire` | the replication message decoders, re-encoding what decodes | |
//! | `replication` | messages to a `Replicator` with entities in play | |
//! | `bits_quantize` | bit readers and quantisers: arbitrary bits, and round trips within the quantum | |
//! | `bevy_snapshot` | a late-join snapshot loaded into a Bevy world | `bevy` |
//! | `bevy_snapshot_decode` | a late-join snapshot decoded and checked alone, against the limits | `bevy` |
//! | `signaling_ws` | a WebSocket client's JSON message and room request | `signaling` |
//! | `signaling_api` | the HTTP API's lobby bodies, join codes and listing | `signaling` |
//! | `stun` | the STUN responder | `signaling` |
//! | `token` | auth tokens, TURN credentials, resume ids | `signaling` |
//! | `ice_json` | `IceServer::list_from_json` | `net` |
//!
//! Run them with `cargo xtask fuzz [target] [seconds]` from the repository
//! root: it installs cargo-fuzz when missing, builds with the stable
//! toolchain and `RUSTC_BOOTSTRAP=1` (cargo-fuzz passes nightly-only `-Z`
//! flags to rustc for the coverage instrumentation), seeds each target from
//! `corpus/<target>/` and fails on a crash. `cargo xtask test` runs a short
//! smoke of the targets that build quickly. By hand:
//!
//! ```sh
//! cd fuzz
//! RUSTC_BOOTSTRAP=1 cargo fuzz run -s none mesh_wire corpus/mesh_wire -- -max_total_time=60
//! ```
//!
//! The `_wire` targets call the decoders `gamenet_core` makes public for them
//! with its `fuzzing` feature (`rollback::fuzzing`, `replication::fuzzing`);
//! `bevy_snapshot_decode` calls `bevy_gamenet`'s (`rollback::fuzzing`), which
//! decodes and checks a snapshot the way loading it does, with no world.
//!
//! The targets build without a sanitizer (`-s none`): the workspace forbids
//! unsafe code, so what they hunt is panics (overflow checks and debug
//! assertions are on), hangs and runaway allocation.
//!
//! `corpus/` holds a few valid encodings per target, written by
//! `cargo run --example gen_corpus` (in this directory) from real sessions;
//! `regressions/<target>/` holds every input that once crashed a target
//! (each also a unit test in the crate that owns the decoder).
//!
//! This library holds what the targets share: reading a fuzz input as a
//! sequence of messages ([`Chunks`]) and the small worlds of real sessions the
//! messages are fed into ([`mesh`], [`rollback`], [`replication`], and
//! `bevy` with the `bevy` feature).

#[cfg(feature = "bevy")]
pub mod bevy;
pub mod mesh;
pub mod replication;
pub mod rollback;

/// Reads a fuzz input as a sequence of `(control byte, message)` chunks: a
/// control byte, a length byte, then that many bytes (fewer at the end).
pub struct Chunks<'a> {
    data: &'a [u8],
}

impl<'a> Chunks<'a> {
    /// The chunks of `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    /// Encodes messages the way [`Chunks`] reads them (for seed inputs).
    pub fn encode<'m>(messages: impl IntoIterator<Item = (u8, &'m [u8])>) -> Vec<u8> {
        let mut out = Vec::new();
        for (control, message) in messages {
            // Longer messages are split; the control byte repeats.
            for part in message.chunks(255) {
                out.push(control);
                out.push(part.len() as u8);
                out.extend_from_slice(part);
            }
            if message.is_empty() {
                out.extend([control, 0]);
            }
        }
        out
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let (&control, rest) = self.data.split_first()?;
        let (&len, rest) = rest.split_first().unwrap_or((&0, rest));
        let len = (len as usize).min(rest.len());
        let (message, rest) = rest.split_at(len);
        self.data = rest;
        Some((control, message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_read_what_encode_wrote() {
        let msgs: [(u8, &[u8]); 3] = [(1, b"abc"), (2, b""), (3, &[7; 300])];
        let bytes = Chunks::encode(msgs);
        let read: Vec<(u8, Vec<u8>)> = Chunks::new(&bytes).map(|(c, m)| (c, m.to_vec())).collect();
        assert_eq!(read.len(), 4);
        assert_eq!(read[0], (1, b"abc".to_vec()));
        assert_eq!(read[1], (2, vec![]));
        assert_eq!(read[2].1.len() + read[3].1.len(), 300);
    }
}
