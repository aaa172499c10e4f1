//! [`MemoryTransport`]: the layers on real core meshes ([`Mesh`]) joined
//! through the core's simulated network ([`SimLinks`]), on a simulated clock,
//! with no socket and no runtime. The handshake, heartbeats, flow control and
//! disconnect detection are the real ones; the links add the latency, jitter,
//! loss and duplication of their [`ConditionerConfig`].
//!
//! ```
//! use std::time::Duration;
//! use gamenet::{Channel, ConditionerConfig, Event, MemoryNetwork, PeerId, Transport};
//!
//! let net = MemoryNetwork::new(ConditionerConfig {
//!     latency: Duration::from_millis(20),
//!     ..ConditionerConfig::default()
//! });
//! let mut a = net.transport(PeerId(1)).unwrap();
//! let mut b = net.transport(PeerId(2)).unwrap();
//! while b.linked_peers().is_empty() {
//!     a.update();
//!     b.update();
//!     net.step();
//! }
//! b.send(PeerId(1), Channel::Reliable, b"hi").unwrap();
//! net.advance(Duration::from_millis(20));
//! a.update();
//! assert!(std::iter::from_fn(|| a.poll_event())
//!     .any(|e| matches!(e, Event::Message { payload, .. } if &payload[..] == b"hi")));
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gamenet_core::Mesh;
use gamenet_core::sim::SimLinks;

use crate::{
    Bytes, Channel, ConditionerConfig, ConfigError, Event, Instant, MeshConfig, PeerId, PeerStats,
    SendError, Transport,
};

/// A simulated network: its clock, its links and the meshes of its peers.
/// Clones share the one network. Hand each peer its [`MemoryTransport`] with
/// [`MemoryNetwork::transport`], pump them with [`Transport::update`], and move
/// the clock with [`MemoryNetwork::step`] or [`MemoryNetwork::advance`].
#[derive(Clone)]
pub struct MemoryNetwork(Arc<Mutex<Network>>);

/// The state behind a [`MemoryNetwork`].
struct Network {
    /// The simulated clock.
    now: Instant,
    /// The directed links between peers, each with its conditioner.
    links: SimLinks,
    /// How every new link misbehaves (each direction seeded on its own).
    link: ConditionerConfig,
    /// The protocol settings of every new peer's mesh.
    config: MeshConfig,
    /// Every peer that joined, killed ones included, by id.
    nodes: BTreeMap<PeerId, Node>,
}

/// One peer of the network.
struct Node {
    /// Its protocol state machine.
    mesh: Mesh,
    /// Packets that arrived and that it has not taken in: sender, channel, bytes.
    inbox: VecDeque<(PeerId, Channel, Bytes)>,
    /// False once killed or closed: it neither sends nor receives.
    alive: bool,
}

impl MemoryNetwork {
    /// A network whose links all behave as `link`, peers on default settings.
    pub fn new(link: ConditionerConfig) -> Self {
        Self::build(link, MeshConfig::default())
    }

    /// A network whose links all behave as `link`, peers on `config`.
    pub fn with_mesh_config(
        link: ConditionerConfig,
        config: MeshConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self::build(link, config))
    }

    fn build(link: ConditionerConfig, config: MeshConfig) -> Self {
        Self(Arc::new(Mutex::new(Network {
            now: Instant::now(),
            links: SimLinks::default(),
            link,
            config,
            nodes: BTreeMap::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Network> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds peer `id`, linked to every live peer (their transports report the
    /// connection at once and the handshakes begin), and hands out its
    /// transport; `None` if `id` was taken.
    pub fn transport(&self, id: PeerId) -> Option<MemoryTransport> {
        let mut net = self.lock();
        if net.nodes.contains_key(&id) {
            return None;
        }
        let mut mesh = Mesh::new(net.config.clone()).ok()?;
        let now = net.now;
        let Network {
            links, link, nodes, ..
        } = &mut *net;
        for (&other, node) in nodes.iter_mut().filter(|(_, n)| n.alive) {
            links.connect(id, other, link);
            mesh.handle_connected(now, other);
            node.mesh.handle_connected(now, id);
        }
        nodes.insert(
            id,
            Node {
                mesh,
                inbox: VecDeque::new(),
                alive: true,
            },
        );
        Some(MemoryTransport {
            id,
            net: self.clone(),
        })
    }

    /// The simulated time now.
    pub fn now(&self) -> Instant {
        self.lock().now
    }

    /// Moves the clock on by `d`.
    pub fn advance(&self, d: Duration) {
        let mut net = self.lock();
        net.now += d;
        net.deliver();
    }

    /// Moves the clock to `at`, if that is later than now.
    pub fn advance_to(&self, at: Instant) {
        let mut net = self.lock();
        net.now = net.now.max(at);
        net.deliver();
    }

    /// When the network next has something to do: a packet arrives or a live
    /// peer's mesh has a timer due (which its [`Transport::update`] runs).
    pub fn next_deadline(&self) -> Option<Instant> {
        let net = self.lock();
        let meshes = net
            .nodes
            .values()
            .filter(|n| n.alive)
            .filter_map(|n| n.mesh.poll_timeout());
        net.links.poll_timeout().into_iter().chain(meshes).min()
    }

    /// Moves the clock to [`MemoryNetwork::next_deadline`] (never back) and
    /// returns the time now; `None`, the clock unmoved, when nothing is pending.
    pub fn step(&self) -> Option<Instant> {
        let next = self.next_deadline()?;
        self.advance_to(next);
        Some(self.now())
    }

    /// Cuts `a` and `b` apart, both ways, until [`MemoryNetwork::heal`] (an
    /// outage): unreliable packets they send each other meanwhile are lost,
    /// reliable ones arrive after the heal, what was on its way still arrives.
    pub fn partition(&self, a: PeerId, b: PeerId) {
        self.lock().links.partition(a, b);
    }

    /// Ends every partition now.
    pub fn heal(&self) {
        let mut net = self.lock();
        let now = net.now;
        net.links.heal(now);
    }

    /// Kills peer `id` without a word: its links go, and the others find out
    /// from their heartbeats (the mesh's disconnect timeout).
    pub fn kill(&self, id: PeerId) {
        let mut net = self.lock();
        net.links.cut(id);
        if let Some(node) = net.nodes.get_mut(&id) {
            node.alive = false;
            node.inbox.clear();
        }
    }

    /// Puts `data` before peer `to` as if `from` had sent it on `channel`,
    /// past the links: it arrives at `to`'s next [`Transport::update`]. For
    /// tests of what a peer does with bytes a broken or hostile peer sends.
    pub fn inject(&self, from: PeerId, to: PeerId, channel: Channel, data: impl Into<Bytes>) {
        if let Some(node) = self.lock().nodes.get_mut(&to).filter(|n| n.alive) {
            node.inbox.push_back((from, channel, data.into()));
        }
    }
}

impl std::fmt::Debug for MemoryNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let net = self.lock();
        f.debug_struct("MemoryNetwork")
            .field("peers", &net.nodes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Network {
    /// Moves the packets due by now from the links into their receivers' inboxes.
    fn deliver(&mut self) {
        for (from, to, channel, data) in self.links.due(self.now) {
            if let Some(node) = self.nodes.get_mut(&to).filter(|n| n.alive) {
                node.inbox.push_back((from, channel, data));
            }
        }
    }

    /// The live node of `id`.
    fn live(&mut self, id: PeerId) -> Option<&mut Node> {
        self.nodes.get_mut(&id).filter(|n| n.alive)
    }

    /// Puts what `id`'s mesh wants sent on the links.
    fn flush(&mut self, id: PeerId) {
        let now = self.now;
        if let Some(node) = self.nodes.get_mut(&id).filter(|n| n.alive) {
            self.links.send_from(now, id, &mut node.mesh);
        }
    }

    /// What [`PeerMesh::update`](crate::PeerMesh::update) does, in memory:
    /// packets in, timers due, packets out.
    fn update(&mut self, id: PeerId) {
        self.deliver();
        let now = self.now;
        let Some(node) = self.live(id) else {
            return;
        };
        while let Some((from, channel, data)) = node.inbox.pop_front() {
            node.mesh.handle_packet(now, from, channel, data);
        }
        if node.mesh.poll_timeout().is_some_and(|t| t <= now) {
            node.mesh.handle_timeout(now);
        }
        self.flush(id);
    }
}

/// One peer's end of a [`MemoryNetwork`]: a [`Transport`] on a real core mesh
/// and the network's simulated clock.
pub struct MemoryTransport {
    /// This peer's id.
    id: PeerId,
    /// The network it is on.
    net: MemoryNetwork,
}

impl MemoryTransport {
    /// This peer's id.
    pub fn id(&self) -> PeerId {
        self.id
    }

    /// The network this transport is on.
    pub fn network(&self) -> &MemoryNetwork {
        &self.net
    }

    /// Link statistics of `peer`.
    pub fn stats(&self, peer: PeerId) -> Option<PeerStats> {
        let mut net = self.net.lock();
        net.live(self.id)?.mesh.stats(peer)
    }

    /// Whether this peer was killed or closed.
    pub fn is_closed(&self) -> bool {
        !self.net.lock().nodes.get(&self.id).is_some_and(|n| n.alive)
    }

    /// Says goodbye to every peer and leaves the network, as
    /// [`PeerMesh::close`](crate::PeerMesh::close) does.
    pub fn close(&mut self) {
        let mut net = self.net.lock();
        if let Some(node) = net.live(self.id) {
            node.mesh.close();
        }
        net.flush(self.id);
        if let Some(node) = net.nodes.get_mut(&self.id) {
            node.alive = false;
        }
    }
}

/// A peer whose transport is gone is gone: dropping the transport kills it
/// ([`MemoryNetwork::kill`]).
impl Drop for MemoryTransport {
    fn drop(&mut self) {
        self.net.kill(self.id);
    }
}

impl std::fmt::Debug for MemoryTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTransport")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Transport for MemoryTransport {
    fn update(&mut self) {
        self.net.lock().update(self.id);
    }

    fn set_schema(&mut self, schema: gamenet_core::TypeSchema) {
        if let Some(node) = self.net.lock().live(self.id) {
            node.mesh.set_schema(schema);
        }
    }

    fn poll_event(&mut self) -> Option<Event> {
        let mut net = self.net.lock();
        let event = net.live(self.id)?.mesh.poll_event();
        // Taking a message may have let an acknowledgement out.
        if matches!(event, Some(Event::Message { .. })) {
            net.flush(self.id);
        }
        event
    }

    fn send(&mut self, peer: PeerId, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        let mut net = self.net.lock();
        let Some(node) = net.live(self.id) else {
            return Err(SendError::UnknownPeer(peer));
        };
        let sent = node.mesh.send(peer, channel, payload);
        net.flush(self.id);
        sent
    }

    fn drop_peer(&mut self, peer: PeerId) -> bool {
        let mut net = self.net.lock();
        let dropped = net
            .live(self.id)
            .is_some_and(|node| node.mesh.drop_peer(peer));
        net.flush(self.id);
        dropped
    }

    fn ban_peer(&mut self, peer: PeerId) -> bool {
        let mut net = self.net.lock();
        let banned = net
            .live(self.id)
            .is_some_and(|node| node.mesh.ban_peer(peer));
        net.flush(self.id);
        banned
    }

    fn local_id(&mut self) -> Option<PeerId> {
        Some(self.id)
    }

    fn linked_peers(&self) -> Vec<PeerId> {
        let mut net = self.net.lock();
        net.live(self.id)
            .map(|node| node.mesh.joined_peers().collect())
            .unwrap_or_default()
    }

    fn now(&self) -> Instant {
        self.net.now()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let mut net = self.net.lock();
        net.live(self.id)?.mesh.poll_timeout()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LeaveReason;

    /// Pumps both transports and steps the clock until `done` or 30 s pass.
    fn run(
        net: &MemoryNetwork,
        peers: &mut [&mut MemoryTransport],
        mut done: impl FnMut(&[Event]) -> bool,
    ) -> Vec<Event> {
        let end = net.now() + Duration::from_secs(30);
        let mut events = Vec::new();
        while !done(&events) {
            assert!(net.now() < end, "{events:?}");
            for p in peers.iter_mut() {
                p.update();
                events.extend(std::iter::from_fn(|| p.poll_event()));
            }
            let next = net.next_deadline().unwrap_or(net.now());
            net.advance_to(next.max(net.now() + Duration::from_millis(1)));
        }
        events
    }

    fn left(events: &[Event]) -> Vec<(PeerId, LeaveReason)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::PeerLeft { peer, reason } => Some((*peer, reason.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn peers_link_through_the_handshake_and_a_partition_times_them_out() {
        let net = MemoryNetwork::new(ConditionerConfig::default());
        let (mut a, mut b) = (
            net.transport(PeerId(1)).unwrap(),
            net.transport(PeerId(2)).unwrap(),
        );
        assert!(net.transport(PeerId(1)).is_none(), "an id is taken once");
        let joined = |e: &[Event]| {
            e.iter()
                .filter(|e| matches!(e, Event::PeerJoined(_)))
                .count()
                == 2
        };
        run(&net, &mut [&mut a, &mut b], joined);
        assert_eq!(a.linked_peers(), [PeerId(2)]);

        net.partition(PeerId(1), PeerId(2));
        let events = run(&net, &mut [&mut a, &mut b], |e| left(e).len() == 2);
        assert!(
            left(&events)
                .iter()
                .all(|(_, r)| *r == LeaveReason::TimedOut)
        );
    }

    #[test]
    fn injected_garbage_reaches_the_mesh_as_if_sent_by_the_peer() {
        let net = MemoryNetwork::new(ConditionerConfig::default());
        let (mut a, mut b) = (
            net.transport(PeerId(1)).unwrap(),
            net.transport(PeerId(2)).unwrap(),
        );
        let joined = |e: &[Event]| {
            e.iter()
                .filter(|e| matches!(e, Event::PeerJoined(_)))
                .count()
                == 2
        };
        run(&net, &mut [&mut a, &mut b], joined);
        net.inject(PeerId(2), PeerId(1), Channel::Reliable, vec![0xee; 8]);
        let events = run(&net, &mut [&mut a, &mut b], |e| left(e).len() == 2);
        let reasons = left(&events);
        assert!(matches!(
            reasons[0],
            (PeerId(2), LeaveReason::ProtocolViolation(_))
        ));
        assert_eq!(reasons[1].0, PeerId(1));
    }
}
