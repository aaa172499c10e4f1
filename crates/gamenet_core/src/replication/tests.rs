//! Replication over a simulated network: real meshes, seeded link
//! conditioners, a 60 Hz tick; time jumps between deadlines. The harness
//! ([`Net`]) is here; the tests, one behaviour a file, are in `tests/`.

mod authority;
mod baselines;
mod budget;
mod convergence;
mod hostile;
mod interest;

use std::time::Duration;

use super::{NetId, ReplicationConfig, ReplicationEvent, Replicator, Schema};
use crate::sim::SimLinks;
use crate::{ConditionerConfig, Event, Instant, Mesh, MeshConfig, PeerId};

const TICK: Duration = Duration::from_nanos(16_666_667);

/// Type 0: x, y (16 bits each), angle (9 bits).
fn schema() -> Schema {
    Schema {
        types: vec![vec![16, 16, 9]],
    }
}

struct Node {
    id: PeerId,
    mesh: Mesh,
    rep: Replicator,
    alive: bool,
    events: Vec<(Instant, ReplicationEvent)>,
}

struct Net {
    now: Instant,
    nodes: Vec<Node>,
    links: SimLinks,
    next_tick: Instant,
}

impl Net {
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
                rep: Replicator::new(config.clone(), schema(), id),
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

    fn index(&self, id: PeerId) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

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
                        Event::PeerJoined(p) => n.rep.handle_peer_joined(p),
                        Event::PeerLeft { peer, .. } => n.rep.handle_peer_left(peer),
                        Event::Message { peer, payload, .. } => {
                            n.rep.handle_message(peer, &payload)
                        }
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

    fn same_everywhere(&self, id: NetId) -> bool {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.alive).collect();
        let first = live[0].rep.entity(id);
        first.is_some() && live.iter().all(|n| n.rep.entity(id) == first)
    }
}

fn link(loss: f64, seed: u64) -> ConditionerConfig {
    ConditionerConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        loss,
        duplicate: 0.01,
        seed,
    }
}

fn moving(t: u32, k: u32) -> Vec<u32> {
    vec![
        (1000 + t * 3 + k) % 65536,
        (2000 + t * (k % 5)) % 65536,
        (t + k) % 512,
    ]
}
