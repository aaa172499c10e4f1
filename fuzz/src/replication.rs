//! Three replicators wired to each other directly, with entities of every
//! type in play: the fuzzed one (peer 1) and its real peers 2 and 3.

use std::time::Duration;

use gamenet_core::replication::{NetId, ReplicationConfig, Replicator, Schema};
use gamenet_core::{Instant, PeerId};

/// Type 0: x, y (16 bits), angle (9 bits); type 1: a 32-bit and a 1-bit
/// field; type 2: no field.
pub fn schema() -> Schema {
    Schema {
        types: vec![vec![16, 16, 9], vec![32, 1], vec![]],
    }
}

/// The replicators and the time.
pub struct World {
    /// The simulated clock.
    pub now: Instant,
    /// Peers 1 (fuzzed), 2 and 3.
    pub reps: Vec<Replicator>,
    /// Entities peer 2 spawned.
    pub theirs: Vec<NetId>,
    /// Every message delivered so far: (from, to, bytes); for seed inputs.
    pub log: Vec<(PeerId, PeerId, Vec<u8>)>,
    /// Whether to record [`World::log`].
    pub logging: bool,
}

/// One tick at 60 Hz.
const TICK: Duration = Duration::from_nanos(16_666_667);

impl World {
    /// Three linked peers; peers 1 and 2 own a few entities each, and the
    /// first ticks went out.
    pub fn new(logging: bool) -> Self {
        let config = ReplicationConfig {
            // Small limits, so that the fuzzer can reach them.
            max_entities_per_peer: 64,
            ..ReplicationConfig::default()
        };
        let reps = (1..=3)
            .map(|i| {
                Replicator::new(config.clone(), schema(), PeerId(i))
                    .unwrap_or_else(|e| panic!("config: {e}"))
            })
            .collect();
        let mut w = World {
            now: Instant::now(),
            reps,
            theirs: Vec::new(),
            log: Vec::new(),
            logging,
        };
        let now = w.now;
        for i in 0..3 {
            for j in 0..3 {
                if i != j {
                    w.reps[i].handle_peer_joined(now, PeerId(j as u128 + 1));
                }
            }
        }
        for (ty, fields) in [(0u16, &[100u32, 200, 300][..]), (1, &[7, 1]), (2, &[])] {
            if let Ok(id) = w.reps[1].spawn(ty, fields) {
                w.theirs.push(id);
            }
            let _ = w.reps[0].spawn(ty, fields);
        }
        w.reps[1].send_event(PeerId(1), b"hello");
        w.run(3);
        for (k, id) in w.theirs.clone().into_iter().enumerate() {
            let _ = w.reps[1].set(id, &[k as u32 * 1000 + 5, 0, 17]);
        }
        w.run(3);
        w
    }

    /// Delivers every message until all are quiet.
    pub fn pump(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            for i in 0..self.reps.len() {
                let from = self.reps[i].id();
                while let Some(t) = self.reps[i].poll_transmit() {
                    // Peers 1 to 3 are delivered to; others (a stranger,
                    // or an owner a hostile message named) are not there.
                    let j = (t.peer.0 as usize).wrapping_sub(1);
                    if j < self.reps.len() {
                        if self.logging {
                            self.log.push((from, t.peer, t.data.to_vec()));
                        }
                        let now = self.now;
                        self.reps[j].handle_message(now, from, &t.data);
                        moved = true;
                    }
                }
            }
            for r in &mut self.reps {
                while r.poll_event().is_some() {}
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs `ticks` ticks on every peer, delivering as it goes.
    pub fn run(&mut self, ticks: usize) {
        for _ in 0..ticks {
            self.now += TICK;
            let now = self.now;
            for r in &mut self.reps {
                r.tick(now);
            }
            self.pump();
        }
    }

    /// Feeds one chunk of the `replication` target to peer 1: control bits
    /// 0-1 pick the sender (peer 2, 3, 1 itself or a stranger), bit 2 runs
    /// a tick everywhere afterwards, bit 3 has peer 2 change its entities
    /// first, bit 4 has the sender leave and come back first, bit 5 has peer
    /// 1 ask for an entity of peer 2's and hand one of its own over.
    pub fn chunk(&mut self, control: u8, data: &[u8]) {
        let from = [PeerId(2), PeerId(3), PeerId(1), PeerId(99)][control as usize & 3];
        let now = self.now;
        if control & 8 != 0 {
            for (k, id) in self.theirs.clone().into_iter().enumerate() {
                let v = data.first().copied().unwrap_or(0) as u32 + k as u32;
                let _ = self.reps[1].set(id, &[v, v << 3, v >> 1]);
            }
        }
        if control & 0x10 != 0 {
            self.reps[0].handle_peer_left(now, from);
            self.reps[0].handle_peer_joined(now, from);
        }
        if control & 0x20 != 0 {
            if let Some(&id) = self.theirs.first() {
                self.reps[0].request_authority(id);
            }
            let mine: Vec<NetId> = self.reps[0]
                .entities()
                .filter(|(_, e)| e.owner == PeerId(1))
                .map(|(id, _)| id)
                .collect();
            if let Some(&id) = mine.first() {
                let _ = self.reps[0].hand_over(id, PeerId(2));
            }
        }
        self.reps[0].handle_message(now, from, data);
        if control & 4 != 0 {
            self.run(1);
        } else {
            while self.reps[0].poll_transmit().is_some() {}
            while self.reps[0].poll_event().is_some() {}
        }
        let _ = self.reps[0].entities().count();
    }
}
