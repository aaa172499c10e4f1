//! Replication over a simulated network: real meshes, seeded link
//! conditioners, a 60 Hz tick; time jumps between deadlines. The harness
//! ([`Net`]) is here; the tests, one behaviour a file, are in `tests/`.

mod authority;
mod baselines;
mod budget;
mod convergence;
mod errors;
mod hostile;
mod interest;

use std::time::Duration;

use super::{NetId, ReplicationConfig, ReplicationEvent, Replicator, Schema};
use crate::sim::SimLinks;
use crate::{ConditionerConfig, Event, Instant, Mesh, MeshConfig, PeerId};

/// The replication tick: 60 Hz.
const TICK: Duration = Duration::from_nanos(16_666_667);

/// Type 0: x, y (16 bits each), angle (9 bits).
fn schema() -> Schema {
    Schema {
        types: vec![vec![16, 16, 9]],
    }
}

/// One simulated peer: a mesh with a replicator on it.
struct Node {
    /// Its id.
    id: PeerId,
    /// Its mesh, linked to the others through [`SimLinks`].
    mesh: Mesh,
    /// Its replication.
    rep: Replicator,
    /// False once killed.
    alive: bool,
    /// Every replication event it had, and when.
    events: Vec<(Instant, ReplicationEvent)>,
}

/// Peers on a simulated network, ticking at 60 Hz.
struct Net {
    /// The simulated clock.
    now: Instant,
    /// The peers.
    nodes: Vec<Node>,
    /// The network between them.
    links: SimLinks,
    /// When the next replication tick runs.
    next_tick: Instant,
}

impl Net {
    /// `n` linked peers with the same link and settings each.
    fn new(n: usize, link: ConditionerConfig, config: ReplicationConfig) -> Self {
        let now = Instant::now();
        let mut net = Net {
            now,
            nodes: Vec::new(),
            links: SimLinks::default(),
            next_tick: now,
        };
        for i in 0..n {
            let id = PeerId(i as u128 + 1);
            net.nodes.push(Node {
                id,
                mesh: Mesh::new(MeshConfig::default()).unwrap(),
                rep: Replicator::new(config.clone(), schema(), id).unwrap(),
                alive: true,
                events: Vec::new(),
            });
        }
        for a in 0..n {
            for b in 0..n {
                let (ia, ib) = (net.nodes[a].id, net.nodes[b].id);
                if a < b {
                    net.links.connect(ia, ib, &link);
                }
                if a != b {
                    net.nodes[a].mesh.handle_connected(now, ib);
                }
            }
        }
        net
    }

    /// Where the peer with this id is in `nodes`.
    fn index(&self, id: PeerId) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    /// Cuts a peer off; the others see it leave.
    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        let id = self.nodes[i].id;
        self.links.cut(id);
        let now = self.now;
        for n in self.nodes.iter_mut().filter(|n| n.alive) {
            n.mesh.handle_disconnected(now, id);
        }
    }

    /// Runs for `d`, calling `each_tick` before every replication tick.
    fn run(&mut self, d: Duration, mut each_tick: impl FnMut(&mut Net)) {
        let end = self.now + d;
        while self.now < end {
            let now = self.now;
            for (from, to, ch, data) in self.links.due(now) {
                let i = self.index(to);
                self.nodes[i].mesh.handle_packet(now, from, ch, data);
            }
            let tick = now >= self.next_tick;
            if tick {
                each_tick(self);
                self.next_tick += TICK;
            }
            for n in self.nodes.iter_mut().filter(|n| n.alive) {
                if n.mesh.poll_timeout().is_some_and(|t| t <= now) {
                    n.mesh.handle_timeout(now);
                }
                while let Some(e) = n.mesh.poll_event() {
                    match e {
                        Event::PeerJoined(p) => n.rep.handle_peer_joined(now, p),
                        Event::PeerLeft { peer, .. } => n.rep.handle_peer_left(now, peer),
                        Event::Message { peer, payload, .. } => {
                            n.rep.handle_message(now, peer, &payload)
                        }
                        Event::PeerInterrupted(_) | Event::PeerResumed(_) => {}
                        other => panic!("{other:?}"),
                    }
                }
                if tick {
                    n.rep.tick(now);
                }
                while let Some(e) = n.rep.poll_event() {
                    if let ReplicationEvent::PeerMisbehaved { .. } = e {
                        panic!("{}: {e:?}", n.id);
                    }
                    n.events.push((now, e));
                }
                while let Some(t) = n.rep.poll_transmit() {
                    let _ = n.mesh.send(t.peer, t.channel, &t.data);
                }
            }
            for n in self.nodes.iter_mut().filter(|n| n.alive) {
                self.links.send_from(now, n.id, &mut n.mesh);
            }
            let next = self
                .links
                .poll_timeout()
                .into_iter()
                .chain(
                    self.nodes
                        .iter()
                        .filter(|n| n.alive)
                        .filter_map(|n| n.mesh.poll_timeout()),
                )
                .chain([self.next_tick])
                .min()
                .unwrap_or(self.now + TICK);
            self.now = next.max(self.now + Duration::from_micros(50)).min(end);
        }
    }

    /// Whether every live peer has the entity, with the same state.
    fn same_everywhere(&self, id: NetId) -> bool {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.alive).collect();
        let first = live[0].rep.entity(id);
        first.is_some() && live.iter().all(|n| n.rep.entity(id) == first)
    }
}

/// A link of 50 ms ± 10 ms with `loss` and 1 % duplicates.
fn link(loss: f64, seed: u64) -> ConditionerConfig {
    ConditionerConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        loss,
        duplicate: 0.01,
        seed,
    }
}

/// The state at tick `t` of entity `k`.
fn moving(t: u32, k: u32) -> Vec<u32> {
    vec![
        (1000 + t * 3 + k) % 65536,
        (2000 + t * (k % 5)) % 65536,
        (t + k) % 512,
    ]
}
