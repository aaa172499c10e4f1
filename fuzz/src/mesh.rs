//! Two meshes wired back to back: the one fuzzed ([`Pair::a`]) and a real peer
//! ([`Pair::b`]) it may have joined.

use std::time::Duration;

use gamenet_core::{Bytes, Channel, Instant, Mesh, MeshConfig, PeerId};

/// The fuzzed mesh's id.
pub const A: PeerId = PeerId(1);
/// The real peer's id.
pub const B: PeerId = PeerId(2);
/// A peer the fuzzed mesh has not heard of.
pub const STRANGER: PeerId = PeerId(3);

/// Mesh `a` and its peer `b`, and the time.
pub struct Pair {
    /// The simulated clock.
    pub now: Instant,
    /// The mesh fed the fuzz input.
    pub a: Mesh,
    /// A real peer of it.
    pub b: Mesh,
}

impl Pair {
    /// Two meshes whose transports report each other connected; joined
    /// (handshake done) if `join`.
    pub fn new(join: bool) -> Self {
        let now = Instant::now();
        let mut pair = Self {
            now,
            a: Mesh::new(MeshConfig::default()).unwrap_or_else(|e| panic!("config: {e}")),
            b: Mesh::new(MeshConfig::default()).unwrap_or_else(|e| panic!("config: {e}")),
        };
        pair.a.handle_connected(now, B);
        if join {
            pair.b.handle_connected(now, A);
            pair.pump();
        }
        pair
    }

    /// Delivers everything either mesh wants sent to the other until both are
    /// quiet (packets for other peers are dropped); returns them, as
    /// `(from, channel, bytes)`.
    pub fn pump(&mut self) -> Vec<(PeerId, Channel, Bytes)> {
        let mut seen = Vec::new();
        for _ in 0..64 {
            let mut moved = false;
            while let Some(t) = self.a.poll_transmit() {
                if t.peer == B {
                    self.b.handle_packet(self.now, A, t.channel, t.data.clone());
                    moved = true;
                }
            }
            while let Some(t) = self.b.poll_transmit() {
                if t.peer == A {
                    seen.push((B, t.channel, t.data.clone()));
                    self.a.handle_packet(self.now, B, t.channel, t.data);
                    moved = true;
                }
            }
            while self.a.poll_event().is_some() {}
            while self.b.poll_event().is_some() {}
            if !moved {
                break;
            }
        }
        seen
    }

    /// Moves time on and runs both meshes' timers.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
        self.a.handle_timeout(self.now);
        self.b.handle_timeout(self.now);
    }

    /// One chunk of the `mesh_peer` target: control bit 0 picks the channel
    /// (reliable when clear), bit 1 a stranger as the sender instead of `b`,
    /// bits 2 and 3 time moving on (0, 0.1, 1 or 10 s, the timers run),
    /// bit 4 `b` sending a message of its own to `a` first, bit 5 the pair
    /// exchanging what they want sent afterwards.
    pub fn chunk(&mut self, control: u8, data: &[u8]) {
        if control & 0x10 != 0 {
            let channel = if control & 1 == 0 {
                Channel::Reliable
            } else {
                Channel::Unreliable
            };
            let _ = self.b.send(A, channel, data);
        }
        let channel = if control & 1 == 0 {
            Channel::Reliable
        } else {
            Channel::Unreliable
        };
        let from = if control & 2 == 0 { B } else { STRANGER };
        self.a
            .handle_packet(self.now, from, channel, Bytes::copy_from_slice(data));
        match (control >> 2) & 3 {
            0 => {}
            1 => self.advance(Duration::from_millis(100)),
            2 => self.advance(Duration::from_secs(1)),
            _ => self.advance(Duration::from_secs(10)),
        }
        if control & 0x20 != 0 {
            self.pump();
        } else {
            while self.a.poll_transmit().is_some() {}
        }
        while self.a.poll_event().is_some() {}
        let _ = self.a.poll_timeout();
        let _ = self.a.stats(from);
    }
}
