//! Deterministic tests of the mesh over a simulated network.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use proptest::prelude::*;

use crate::wire::{ReliablePacket, UnreliablePacket};
use crate::*;

/// A small seeded generator; the tests need repeatable coin flips, not quality.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn chance(&mut self, p: f64) -> bool {
        (self.next() % 1_000_000) as f64 / 1_000_000.0 < p
    }
}

/// A packet on the simulated wire: arrival, tie-break, from, to, reliable, bytes.
type InFlight = (Instant, u64, usize, usize, bool, Vec<u8>);

/// Two or more meshes joined by a simulated network: one-way latency, loss on
/// the unreliable channel, the reliable channel ordered and lossless.
struct Sim {
    start: Instant,
    now: Instant,
    nodes: Vec<(PeerId, Mesh, bool)>,
    in_flight: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    latency: Duration,
    loss: f64,
    rng: XorShift,
    events: Vec<Vec<Event>>,
}

impl Sim {
    fn new(n: usize, config: MeshConfig) -> Self {
        let now = Instant::now();
        let nodes: Vec<_> = (0..n)
            .map(|i| {
                (
                    PeerId(i as u128 + 1),
                    Mesh::new(config.clone()).unwrap(),
                    true,
                )
            })
            .collect();
        let mut sim = Sim {
            start: now,
            now,
            nodes,
            in_flight: BinaryHeap::new(),
            seq: 0,
            latency: Duration::from_millis(20),
            loss: 0.0,
            rng: XorShift(0x9e37_79b9_7f4a_7c15),
            events: vec![Vec::new(); n],
        };
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    let id = sim.nodes[j].0;
                    sim.nodes[i].1.handle_connected(now, id);
                }
            }
        }
        sim
    }

    fn id(&self, i: usize) -> PeerId {
        self.nodes[i].0
    }

    fn index(&self, id: PeerId) -> usize {
        self.nodes.iter().position(|n| n.0 == id).unwrap()
    }

    fn flush(&mut self) {
        for i in 0..self.nodes.len() {
            while let Some(t) = self.nodes[i].1.poll_transmit() {
                if !self.nodes[i].2 {
                    continue;
                }
                let to = self.index(t.peer);
                let reliable = t.channel == Channel::Reliable;
                if !reliable && self.rng.chance(self.loss) {
                    continue;
                }
                self.seq += 1;
                let at = self.now + self.latency;
                self.in_flight
                    .push(Reverse((at, self.seq, i, to, reliable, t.data.to_vec())));
            }
            while let Some(e) = self.nodes[i].1.poll_event() {
                self.events[i].push(e);
            }
        }
    }

    /// Runs the network until `until`, jumping from one deadline to the next.
    fn run_until(&mut self, until: Instant) {
        loop {
            self.flush();
            let next_packet = self.in_flight.peek().map(|Reverse(p)| p.0);
            let next_timer = self
                .nodes
                .iter()
                .filter(|n| n.2)
                .filter_map(|n| n.1.poll_timeout())
                .min();
            let next = [next_packet, next_timer].into_iter().flatten().min();
            let Some(next) = next.filter(|&t| t <= until) else {
                self.now = until;
                return;
            };
            self.now = self.now.max(next);
            while let Some(Reverse(p)) = self.in_flight.peek() {
                if p.0 > self.now {
                    break;
                }
                let Some(Reverse((_, _, from, to, reliable, data))) = self.in_flight.pop() else {
                    break;
                };
                if !self.nodes[to].2 {
                    continue;
                }
                let channel = if reliable {
                    Channel::Reliable
                } else {
                    Channel::Unreliable
                };
                let from_id = self.id(from);
                self.nodes[to]
                    .1
                    .handle_packet(self.now, from_id, channel, data.into());
            }
            for node in self.nodes.iter_mut().filter(|n| n.2) {
                node.1.handle_timeout(self.now);
            }
        }
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    fn take_events(&mut self, i: usize) -> Vec<Event> {
        self.flush();
        std::mem::take(&mut self.events[i])
    }

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
}

fn joined(sim: &mut Sim) {
    sim.run_for(Duration::from_millis(100));
    for i in 0..sim.nodes.len() {
        let events = sim.take_events(i);
        let n = events
            .iter()
            .filter(|e| matches!(e, Event::PeerJoined(_)))
            .count();
        assert_eq!(n, sim.nodes.len() - 1, "node {i}: {events:?}");
    }
}

#[test]
fn three_peers_join_and_exchange_on_both_channels() {
    let mut sim = Sim::new(3, MeshConfig::default());
    joined(&mut sim);
    let (b, c) = (sim.id(1), sim.id(2));
    for i in 0..100u32 {
        sim.nodes[0]
            .1
            .send(b, Channel::Reliable, &i.to_le_bytes())
            .unwrap();
        sim.nodes[0]
            .1
            .send(c, Channel::Unreliable, &i.to_le_bytes())
            .unwrap();
    }
    sim.run_for(Duration::from_millis(100));
    let got: Vec<u32> = sim
        .messages(1)
        .iter()
        .map(|(_, ch, p)| {
            assert_eq!(*ch, Channel::Reliable);
            u32::from_le_bytes(p[..].try_into().unwrap())
        })
        .collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(sim.messages(2).len(), 100);
}

#[test]
fn large_message_is_fragmented_flow_controlled_and_reassembled() {
    let config = MeshConfig {
        fragment_size: 1024,
        send_window: 64 << 10,
        ..MeshConfig::default()
    };
    let mut sim = Sim::new(2, config);
    joined(&mut sim);
    let b = sim.id(1);
    let big: Vec<u8> = (0..(1 << 20) + 17)
        .map(|i: u32| (i * 7 % 251) as u8)
        .collect();
    sim.nodes[0].1.send(b, Channel::Reliable, &big).unwrap();
    sim.nodes[0].1.send(b, Channel::Reliable, b"after").unwrap();
    // The window holds 64 KiB, so the rest waits for acknowledgements.
    let stats = sim.nodes[0].1.stats(b).unwrap();
    assert!(stats.reliable_in_flight <= 64 << 10, "{stats:?}");
    assert!(stats.reliable_queued > 900 << 10, "{stats:?}");
    sim.run_for(Duration::from_secs(2));
    let got = sim.messages(1);
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].2[..], &big[..]);
    assert_eq!(&got[1].2[..], b"after");
    let stats = sim.nodes[0].1.stats(b).unwrap();
    assert_eq!(stats.reliable_queued, 0);
}

#[test]
fn full_queue_and_oversized_messages_are_refused_to_the_sender() {
    let config = MeshConfig {
        max_message_size: 100_000,
        max_queued_bytes: 150_000,
        send_window: 16 << 10,
        max_unreliable_size: 1000,
        ..MeshConfig::default()
    };
    let mut sim = Sim::new(2, config);
    joined(&mut sim);
    let b = sim.id(1);
    let mesh = &mut sim.nodes[0].1;
    assert_eq!(
        mesh.send(b, Channel::Reliable, &vec![0; 100_001]),
        Err(SendError::MessageTooLarge {
            size: 100_001,
            max: 100_000
        })
    );
    assert_eq!(
        mesh.send(b, Channel::Unreliable, &[0; 1001]),
        Err(SendError::MessageTooLarge {
            size: 1001,
            max: 1000
        })
    );
    mesh.send(b, Channel::Reliable, &vec![1; 100_000]).unwrap();
    assert!(matches!(
        mesh.send(b, Channel::Reliable, &vec![2; 60_000]),
        Err(SendError::QueueFull {
            capacity: 150_000,
            ..
        })
    ));
    assert_eq!(
        mesh.send(PeerId(99), Channel::Reliable, b"x"),
        Err(SendError::UnknownPeer(PeerId(99)))
    );
    // Once the peer has taken the data, there is room again.
    sim.run_for(Duration::from_secs(1));
    sim.nodes[0]
        .1
        .send(b, Channel::Reliable, &vec![2; 60_000])
        .unwrap();
}

#[test]
fn mismatched_application_fails_the_handshake_on_both_sides() {
    let now = Instant::now();
    let mut a = Mesh::new(MeshConfig {
        app_id: "game-a".into(),
        ..MeshConfig::default()
    })
    .unwrap();
    let mut b = Mesh::new(MeshConfig {
        app_id: "game-b".into(),
        ..MeshConfig::default()
    })
    .unwrap();
    a.handle_connected(now, PeerId(2));
    b.handle_connected(now, PeerId(1));
    for _ in 0..3 {
        while let Some(t) = a.poll_transmit() {
            b.handle_packet(now, PeerId(1), t.channel, t.data);
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_packet(now, PeerId(2), t.channel, t.data);
        }
    }
    let ev = a.poll_event();
    assert!(
        matches!(&ev, Some(Event::HandshakeFailed { peer: PeerId(2), error: HandshakeError::AppMismatch { theirs, .. } }) if theirs == "game-b"),
        "{ev:?}"
    );
    assert!(matches!(
        b.poll_event(),
        Some(Event::HandshakeFailed {
            peer: PeerId(1),
            ..
        })
    ));
    assert_eq!(
        a.send(PeerId(2), Channel::Reliable, b"x"),
        Err(SendError::UnknownPeer(PeerId(2)))
    );
    assert_eq!(a.poll_event(), None);
}

#[test]
fn version_mismatch_is_reported() {
    let now = Instant::now();
    let mut a = Mesh::new(MeshConfig::default()).unwrap();
    a.handle_connected(now, PeerId(2));
    let hello = ReliablePacket::Hello {
        version: PROTOCOL_VERSION + 1,
        app_id: "gamenet",
    };
    a.handle_packet(now, PeerId(2), Channel::Reliable, hello.encode().into());
    assert_eq!(
        a.poll_event(),
        Some(Event::HandshakeFailed {
            peer: PeerId(2),
            error: HandshakeError::VersionMismatch {
                ours: PROTOCOL_VERSION,
                theirs: PROTOCOL_VERSION + 1
            },
        })
    );
}

#[test]
fn handshake_times_out() {
    let mut sim = Sim::new(2, MeshConfig::default());
    sim.nodes[1].2 = false; // node 1 never answers
    sim.run_for(Duration::from_secs(11));
    let events = sim.take_events(0);
    assert_eq!(
        events,
        vec![Event::HandshakeFailed {
            peer: sim.id(1),
            error: HandshakeError::TimedOut
        }]
    );
}

#[test]
fn silent_peer_is_reported_left_after_the_timeout() {
    let mut sim = Sim::new(3, MeshConfig::default());
    joined(&mut sim);
    sim.run_for(Duration::from_secs(1));
    let silenced_at = sim.now;
    sim.nodes[2].2 = false;
    sim.run_for(Duration::from_millis(1900));
    assert!(sim.take_events(0).is_empty(), "reported too early");
    sim.run_for(Duration::from_millis(200));
    let events = sim.take_events(0);
    assert_eq!(
        events,
        vec![Event::PeerLeft {
            peer: sim.id(2),
            reason: LeaveReason::TimedOut
        }]
    );
    assert!(sim.now - silenced_at <= Duration::from_millis(2100));
    // The other link is unaffected.
    assert!(sim.nodes[0].1.is_joined(sim.id(1)));
}

#[test]
fn stats_measure_rtt_loss_and_rates() {
    let mut sim = Sim::new(2, MeshConfig::default());
    sim.latency = Duration::from_millis(40);
    sim.loss = 0.2;
    joined(&mut sim);
    let b = sim.id(1);
    for _ in 0..100 {
        sim.nodes[0]
            .1
            .send(b, Channel::Unreliable, &[0; 1000])
            .unwrap();
        sim.run_for(Duration::from_millis(100));
    }
    let stats = sim.nodes[0].1.stats(b).unwrap();
    assert_eq!(stats.rtt, Some(Duration::from_millis(80)));
    assert_eq!(stats.rtt_p99, Some(Duration::from_millis(80)));
    // A heartbeat survives only if ping and pong both do: 1 - 0.8^2 = 0.36.
    assert!(stats.loss > 0.25 && stats.loss < 0.47, "{stats:?}");
    // 1000 bytes every 100 ms plus heartbeats.
    assert!(
        stats.bytes_out_per_sec > 10_000.0 && stats.bytes_out_per_sec < 11_000.0,
        "{stats:?}"
    );
    let peer_stats = sim.nodes[1].1.stats(sim.id(0)).unwrap();
    // 80 % of 10 kB/s arrive, give or take a few messages in a one-second window.
    assert!(
        peer_stats.bytes_in_per_sec > 4_000.0 && peer_stats.bytes_in_per_sec < 11_000.0,
        "{peer_stats:?}"
    );
}

#[test]
fn drop_peer_says_goodbye() {
    let mut sim = Sim::new(2, MeshConfig::default());
    joined(&mut sim);
    let (a, b) = (sim.id(0), sim.id(1));
    assert!(sim.nodes[0].1.drop_peer(b));
    assert!(!sim.nodes[0].1.drop_peer(b));
    sim.run_for(Duration::from_millis(100));
    assert_eq!(
        sim.take_events(0),
        vec![Event::PeerLeft {
            peer: b,
            reason: LeaveReason::Dropped
        }]
    );
    assert_eq!(
        sim.take_events(1),
        vec![Event::PeerLeft {
            peer: a,
            reason: LeaveReason::Left(GoodbyeReason::Leaving)
        }]
    );
    // Stragglers from a dropped peer are ignored, not re-joined.
    feed(&mut sim.nodes[0].1, sim.now, b, ReliablePacket::Data(b"x"));
    assert_eq!(sim.take_events(0), vec![]);
}

/// The hello of a peer of the default application.
const HELLO: ReliablePacket<'static> = ReliablePacket::Hello {
    version: PROTOCOL_VERSION,
    app_id: "gamenet",
};

/// Hands `packet` to `mesh` as if `peer` had sent it on the reliable channel.
fn feed(mesh: &mut Mesh, now: Instant, peer: PeerId, packet: ReliablePacket<'_>) {
    mesh.handle_packet(now, peer, Channel::Reliable, packet.encode().into());
}

/// A joined mesh and the id of its one peer.
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

fn violation(mesh: &mut Mesh) -> Option<ProtocolError> {
    std::iter::from_fn(|| mesh.poll_event()).find_map(|e| match e {
        Event::PeerLeft {
            reason: LeaveReason::ProtocolViolation(e),
            ..
        } => Some(e),
        _ => None,
    })
}

#[test]
fn oversized_announcements_drop_the_peer_before_allocating() {
    let (mut mesh, peer, now) = joined_mesh(MeshConfig::default());
    let start = ReliablePacket::FragmentStart {
        total_len: u32::MAX,
        chunk: b"x",
    };
    mesh.handle_packet(now, peer, Channel::Reliable, start.encode().into());
    assert_eq!(
        violation(&mut mesh),
        Some(ProtocolError::MessageTooLarge {
            size: u32::MAX as usize,
            max: 16 << 20
        })
    );
    assert!(!mesh.is_joined(peer));
    // It is told why.
    let goodbye = std::iter::from_fn(|| mesh.poll_transmit()).last().unwrap();
    assert_eq!(
        ReliablePacket::decode(&goodbye.data),
        Ok(ReliablePacket::Goodbye(GoodbyeReason::ProtocolViolation))
    );
}

#[test]
fn fragments_out_of_sequence_and_false_acks_drop_the_peer() {
    let (mut mesh, peer, now) = joined_mesh(MeshConfig::default());
    feed(&mut mesh, now, peer, ReliablePacket::FragmentCont(b"abc"));
    assert_eq!(violation(&mut mesh), Some(ProtocolError::BadFragment));

    let (mut mesh, peer, now) = joined_mesh(MeshConfig::default());
    let start = ReliablePacket::FragmentStart {
        total_len: 5,
        chunk: b"abc",
    };
    mesh.handle_packet(now, peer, Channel::Reliable, start.encode().into());
    feed(&mut mesh, now, peer, ReliablePacket::FragmentCont(b"defg"));
    assert_eq!(violation(&mut mesh), Some(ProtocolError::BadFragment));

    let (mut mesh, peer, now) = joined_mesh(MeshConfig::default());
    let ack = UnreliablePacket::Ack { acked: 1 << 40 };
    mesh.handle_packet(now, peer, Channel::Unreliable, ack.encode().into());
    assert!(matches!(
        violation(&mut mesh),
        Some(ProtocolError::AckBeyondSent { .. })
    ));
}

#[test]
fn config_is_validated() {
    let bad = MeshConfig {
        fragment_size: 10,
        ..MeshConfig::default()
    };
    assert_eq!(
        Mesh::new(bad).err(),
        Some(ConfigError::FragmentTooSmall(10))
    );
    let bad = MeshConfig {
        app_id: "x".repeat(300),
        ..MeshConfig::default()
    };
    assert_eq!(Mesh::new(bad).err(), Some(ConfigError::AppIdTooLong(300)));
}

proptest! {
    /// Whatever a joined peer sends, the mesh does not panic and stays usable
    /// towards its other peers.
    #[test]
    fn arbitrary_packets_never_panic(
        packets in proptest::collection::vec(
            (any::<bool>(), proptest::collection::vec(any::<u8>(), 0..40)),
            0..40,
        )
    ) {
        let (mut mesh, peer, now) = joined_mesh(MeshConfig::default());
        let other = PeerId(8);
        mesh.handle_connected(now, other);
        feed(&mut mesh, now, other, HELLO);
        feed(&mut mesh, now, other, ReliablePacket::HelloAck);
        for (reliable, bytes) in packets {
            let channel = if reliable { Channel::Reliable } else { Channel::Unreliable };
            mesh.handle_packet(now, peer, channel, Bytes::from(bytes));
        }
        mesh.handle_timeout(now + Duration::from_millis(150));
        while mesh.poll_event().is_some() {}
        prop_assert!(mesh.is_joined(other));
        prop_assert!(mesh.send(other, Channel::Reliable, b"still here").is_ok());
    }
}

#[test]
fn peer_id_displays_as_uuid() {
    let id = PeerId(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    assert_eq!(id.to_string(), "01234567-89ab-cdef-0123-456789abcdef");
    let _ = Sim::new(1, MeshConfig::default()).start;
}

#[test]
fn a_hello_before_the_transport_reports_the_connection_waits_for_it() {
    let now = Instant::now();
    let mut mesh = Mesh::new(MeshConfig::default()).unwrap();
    let peer = PeerId(3);
    feed(&mut mesh, now, peer, HELLO);
    // Nothing may be sent before the transport can carry it.
    assert_eq!(mesh.poll_transmit(), None);
    mesh.handle_connected(now, peer);
    let sent: Vec<_> = std::iter::from_fn(|| mesh.poll_transmit())
        .map(|t| ReliablePacket::decode(&t.data).unwrap().encode())
        .collect();
    assert_eq!(sent.len(), 2);
    assert!(matches!(
        ReliablePacket::decode(&sent[0]),
        Ok(ReliablePacket::Hello { .. })
    ));
    assert_eq!(
        ReliablePacket::decode(&sent[1]),
        Ok(ReliablePacket::HelloAck)
    );
    assert_eq!(mesh.poll_event(), None);
    feed(&mut mesh, now, peer, ReliablePacket::HelloAck);
    assert_eq!(mesh.poll_event(), Some(Event::PeerJoined(peer)));
    mesh.handle_connected(now, peer);
    assert_eq!(mesh.poll_transmit(), None);
}

#[test]
fn lost_hellos_are_repeated_until_acknowledged() {
    let mut sim = Sim::new(2, MeshConfig::default());
    // Both first hellos vanish, as when sent before the far end of a fresh data
    // channel is open.
    for i in 0..2 {
        let hello = sim.nodes[i].1.poll_transmit().unwrap();
        assert!(matches!(
            ReliablePacket::decode(&hello.data),
            Ok(ReliablePacket::Hello { .. })
        ));
    }
    sim.run_for(Duration::from_millis(500));
    for i in 0..2 {
        let events = sim.take_events(i);
        assert_eq!(events, vec![Event::PeerJoined(sim.id(1 - i))]);
    }
    let b = sim.id(1);
    sim.nodes[0].1.send(b, Channel::Reliable, b"after").unwrap();
    sim.run_for(Duration::from_millis(100));
    assert_eq!(sim.messages(1).len(), 1);
    let stats = sim.nodes[0].1.stats(b).unwrap();
    assert_eq!(
        stats.reliable_in_flight, 0,
        "handshake packets must not count as in flight"
    );
}

#[test]
fn data_after_a_lost_acknowledgement_completes_the_handshake() {
    let now = Instant::now();
    let mut mesh = Mesh::new(MeshConfig::default()).unwrap();
    let peer = PeerId(4);
    mesh.handle_connected(now, peer);
    feed(&mut mesh, now, peer, HELLO);
    // The peer's acknowledgement of our hello was lost; its data says it had it.
    feed(&mut mesh, now, peer, ReliablePacket::Data(b"first"));
    assert_eq!(mesh.poll_event(), Some(Event::PeerJoined(peer)));
    match mesh.poll_event() {
        Some(Event::Message { payload, .. }) => assert_eq!(&payload[..], b"first"),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn data_before_any_hello_fails_the_handshake() {
    let now = Instant::now();
    let mut mesh = Mesh::new(MeshConfig::default()).unwrap();
    let peer = PeerId(5);
    mesh.handle_connected(now, peer);
    feed(&mut mesh, now, peer, ReliablePacket::Data(b"x"));
    assert!(matches!(
        mesh.poll_event(),
        Some(Event::HandshakeFailed {
            error: HandshakeError::Protocol(ProtocolError::Unexpected(_)),
            ..
        })
    ));
}
