//! Deterministic tests of the mesh, over the crate's one simulated network
//! ([`SimLinks`]): one file per behaviour, this one holding the harness.
//!
//! [`Net`] joins meshes by conditioned links and runs them by jumping the clock
//! from one deadline (a packet falling due or a mesh's timer) to the next, so a
//! run of seconds takes milliseconds and is the same every time.

mod handshake;
mod heartbeat;
mod hostile;
mod leave;
mod outage;
mod reliable;
mod restart;

use std::time::Duration;

use crate::sim::SimLinks;
use crate::wire::ReliablePacket;
use crate::*;

/// The one-way latency of the links [`Net::new`] builds.
const LATENCY: Duration = Duration::from_millis(20);

/// One simulated peer.
struct Node {
    /// Its id.
    id: PeerId,
    /// Its mesh.
    mesh: Mesh,
    /// False once killed: it sends, receives and wakes no more.
    alive: bool,
    /// What its mesh reported, not yet taken by the test.
    events: Vec<Event>,
}

/// Meshes joined pairwise by simulated links.
struct Net {
    /// The simulated clock.
    now: Instant,
    /// The peers, node `i` with id `i + 1`.
    nodes: Vec<Node>,
    /// The links between them.
    links: SimLinks,
}

impl Net {
    /// `n` meshes, each told by its transport of all the others, linked by
    /// lossless links of [`LATENCY`] one way. Nothing is sent yet.
    fn new(n: usize, config: MeshConfig) -> Self {
        let link = ConditionerConfig {
            latency: LATENCY,
            ..ConditionerConfig::default()
        };
        Self::with_link(n, config, link)
    }

    /// Like [`Net::new`], every direction conditioned by `link`.
    fn with_link(n: usize, config: MeshConfig, link: ConditionerConfig) -> Self {
        Self::with_configs(vec![config; n], link)
    }

    /// Like [`Net::with_link`], node `i` with settings `configs[i]`.
    fn with_configs(configs: Vec<MeshConfig>, link: ConditionerConfig) -> Self {
        let now = Instant::now();
        let n = configs.len();
        let mut net = Net {
            now,
            nodes: configs
                .into_iter()
                .enumerate()
                .map(|(i, config)| Node {
                    id: PeerId(i as u128 + 1),
                    mesh: Mesh::new(config).unwrap(),
                    alive: true,
                    events: Vec::new(),
                })
                .collect(),
            links: SimLinks::default(),
        };
        for i in 0..n {
            for j in 0..n {
                if i < j {
                    net.links.connect(net.id(i), net.id(j), &link);
                }
                if i != j {
                    let id = net.id(j);
                    net.nodes[i].mesh.handle_connected(now, id);
                }
            }
        }
        net
    }

    /// The id of node `i`.
    fn id(&self, i: usize) -> PeerId {
        self.nodes[i].id
    }

    /// The node of `id`.
    fn index(&self, id: PeerId) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    /// The mesh of node `i`.
    fn mesh(&mut self, i: usize) -> &mut Mesh {
        &mut self.nodes[i].mesh
    }

    /// Node `i` goes silent for good: its links are cut and it is never woken
    /// again. Its transport does not tell the others; their heartbeats find out.
    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        let id = self.id(i);
        self.links.cut(id);
    }

    /// Cuts nodes `i` and `j` apart, both ways, until [`Net::heal`]; their
    /// transports keep reporting each other connected.
    fn partition(&mut self, i: usize, j: usize) {
        self.flush();
        let (a, b) = (self.id(i), self.id(j));
        self.links.partition(a, b);
    }

    /// Ends every partition now.
    fn heal(&mut self) {
        self.flush();
        self.links.heal(self.now);
    }

    /// Puts what every mesh wants sent on the links and collects its events.
    fn flush(&mut self) {
        let now = self.now;
        for node in &mut self.nodes {
            if node.alive {
                self.links.send_from(now, node.id, &mut node.mesh);
            } else {
                while node.mesh.poll_transmit().is_some() {}
            }
            node.events
                .extend(std::iter::from_fn(|| node.mesh.poll_event()));
        }
    }

    /// Runs the network until `until`, jumping from one deadline to the next.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.flush();
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.alive)
                .filter_map(|n| n.mesh.poll_timeout())
                .min();
            let next = [self.links.poll_timeout(), next_timer]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|&t| t <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            let now = self.now;
            for (from, to, channel, data) in self.links.due(now) {
                let i = self.index(to);
                if self.nodes[i].alive {
                    self.nodes[i].mesh.handle_packet(now, from, channel, data);
                }
            }
            for node in self.nodes.iter_mut().filter(|n| n.alive) {
                node.mesh.handle_timeout(now);
            }
        }
    }

    /// Runs the network for `d`.
    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Everything node `i` reported since last asked.
    fn take_events(&mut self, i: usize) -> Vec<Event> {
        self.flush();
        std::mem::take(&mut self.nodes[i].events)
    }

    /// The messages node `i` received since last asked: sender, channel, bytes.
    fn messages(&mut self, i: usize) -> Vec<(PeerId, Channel, Bytes)> {
        self.take_events(i)
            .into_iter()
            .filter_map(|e| match e {
                Event::Message {
                    peer,
                    channel,
                    payload,
                } => Some((peer, channel, payload)),
                _ => None,
            })
            .collect()
    }

    /// Runs the handshakes and checks that every node joined every other.
    fn join_all(&mut self) {
        self.run_for(Duration::from_millis(100));
        for i in 0..self.nodes.len() {
            let events = self.take_events(i);
            let n = events
                .iter()
                .filter(|e| matches!(e, Event::PeerJoined(_)))
                .count();
            assert_eq!(n, self.nodes.len() - 1, "node {i}: {events:?}");
        }
    }
}

/// The hello of a peer of the default application.
const HELLO: ReliablePacket<'static> = ReliablePacket::Hello {
    version: PROTOCOL_VERSION,
    link: 1,
    app_id: "gamenet",
    schema: &[],
};

/// Hands `packet` to `mesh` as if `peer` had sent it on the reliable channel.
fn feed(mesh: &mut Mesh, now: Instant, peer: PeerId, packet: ReliablePacket<'_>) {
    mesh.handle_packet(now, peer, Channel::Reliable, packet.encode().into());
}

/// A mesh joined to one peer by hand, without a network: the mesh, the peer's
/// id and the instant it joined.
fn joined_mesh(config: MeshConfig) -> (Mesh, PeerId, Instant) {
    let now = Instant::now();
    let mut mesh = Mesh::new(config).unwrap();
    let peer = PeerId(7);
    mesh.handle_connected(now, peer);
    feed(&mut mesh, now, peer, HELLO);
    feed(&mut mesh, now, peer, ReliablePacket::HelloAck);
    assert_eq!(mesh.poll_event(), Some(Event::PeerJoined(peer)));
    (mesh, peer, now)
}

/// The protocol violation a peer was dropped for, if the mesh reported one.
fn violation(mesh: &mut Mesh) -> Option<ProtocolError> {
    std::iter::from_fn(|| mesh.poll_event()).find_map(|e| match e {
        Event::PeerLeft {
            reason: LeaveReason::ProtocolViolation(e),
            ..
        } => Some(e),
        _ => None,
    })
}
