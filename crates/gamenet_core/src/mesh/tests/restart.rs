//! A link that timed out, packet by packet: no goodbye, probes, the reset and
//! fresh handshake that bring it back, the stragglers of the old link, resets
//! that cross, and what still closes a peer for good.

use std::time::Duration;

use super::*;
use crate::wire::UnreliablePacket;

/// The kind of packet `t` carries.
fn kind(t: &Transmit) -> &'static str {
    match t.channel {
        Channel::Reliable => match ReliablePacket::decode(&t.data).unwrap() {
            ReliablePacket::Hello { .. } => "hello",
            ReliablePacket::HelloAck => "hello-ack",
            ReliablePacket::Goodbye(_) => "goodbye",
            ReliablePacket::Reset => "reset",
            _ => "data",
        },
        Channel::Unreliable => match UnreliablePacket::decode(&t.data).unwrap() {
            UnreliablePacket::Ping { seq: 0, acked: 0 } => "probe",
            UnreliablePacket::Ping { .. } => "ping",
            UnreliablePacket::Pong { .. } => "pong",
            _ => "other",
        },
    }
}

/// What `mesh` wants sent, by kind, in order.
fn sent(mesh: &mut Mesh) -> Vec<&'static str> {
    std::iter::from_fn(|| mesh.poll_transmit())
        .map(|t| kind(&t))
        .collect()
}

/// Every event `mesh` reported since last asked.
fn events(mesh: &mut Mesh) -> Vec<Event> {
    std::iter::from_fn(|| mesh.poll_event()).collect()
}

/// A mesh joined to one peer whose link then timed out: the mesh, the peer,
/// and the instant it timed out.
fn lapsed_mesh() -> (Mesh, PeerId, Instant) {
    let (mut mesh, peer, start) = joined_mesh(MeshConfig::default());
    sent(&mut mesh);
    let now = start + Duration::from_secs(10);
    mesh.handle_timeout(now);
    assert_eq!(
        events(&mut mesh),
        vec![Event::PeerLeft {
            peer,
            reason: LeaveReason::TimedOut
        }]
    );
    (mesh, peer, now)
}

/// Delivers everything `a` and `b` want sent to each other until both are quiet.
fn pump(now: Instant, a: &mut Mesh, a_id: PeerId, b: &mut Mesh, b_id: PeerId) {
    loop {
        let mut moved = false;
        while let Some(t) = a.poll_transmit() {
            b.handle_packet(now, a_id, t.channel, t.data);
            moved = true;
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_packet(now, b_id, t.channel, t.data);
            moved = true;
        }
        if !moved {
            return;
        }
    }
}

#[test]
fn a_timed_out_link_says_no_goodbye_and_probes_the_peer() {
    let (mut mesh, peer, now) = lapsed_mesh();
    assert_eq!(sent(&mut mesh), Vec::<&str>::new(), "no goodbye");
    assert!(!mesh.is_joined(peer));
    assert_eq!(mesh.connected_peers().collect::<Vec<_>>(), vec![peer]);
    let probe_at = now + Duration::from_millis(100);
    assert_eq!(mesh.poll_timeout(), Some(probe_at));
    mesh.handle_timeout(probe_at);
    assert_eq!(sent(&mut mesh), vec!["probe"]);
    assert_eq!(
        mesh.poll_timeout(),
        Some(probe_at + Duration::from_millis(100))
    );
    // The peer is not closed: dropping it is still possible, and says goodbye.
    assert!(mesh.drop_peer(peer));
    assert_eq!(sent(&mut mesh), vec!["goodbye"]);
    assert_eq!(
        events(&mut mesh),
        vec![],
        "its departure was reported already"
    );
    assert_eq!(mesh.poll_timeout(), None);
}

#[test]
fn a_packet_from_a_timed_out_peer_starts_over_and_stragglers_are_ignored() {
    let (mut mesh, peer, now) = lapsed_mesh();
    // A straggler of the old link.
    feed(&mut mesh, now, peer, ReliablePacket::Data(b"old"));
    assert_eq!(sent(&mut mesh), vec!["reset", "hello"]);
    let start = ReliablePacket::FragmentStart {
        total_len: 5000,
        chunk: b"abc",
    };
    feed(&mut mesh, now, peer, start);
    feed(&mut mesh, now, peer, ReliablePacket::FragmentCont(b"def"));
    // An old acknowledgement does not stand for the fresh hello's.
    feed(&mut mesh, now, peer, ReliablePacket::HelloAck);
    assert_eq!(events(&mut mesh), vec![]);
    assert!(!mesh.is_joined(peer));
    // The fresh hello ends the leniency: from here on, data stands for a
    // lost acknowledgement, as in any handshake.
    feed(&mut mesh, now, peer, HELLO);
    assert_eq!(sent(&mut mesh), vec!["hello-ack"]);
    feed(&mut mesh, now, peer, ReliablePacket::Data(b"new"));
    let got = events(&mut mesh);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0], Event::PeerJoined(peer));
    assert!(matches!(&got[1], Event::Message { payload, .. } if &payload[..] == b"new"));
    // The reliable stream starts from zero.
    mesh.send(peer, Channel::Reliable, b"x").unwrap();
    assert_eq!(mesh.stats(peer).unwrap().reliable_in_flight, 2);
    let ack = |acked| Bytes::from(UnreliablePacket::Ack { acked }.encode());
    mesh.handle_packet(now, peer, Channel::Unreliable, ack(2));
    assert_eq!(mesh.stats(peer).unwrap().reliable_in_flight, 0);
    // An acknowledgement of the old stream, overtaken by the handshake, is
    // forgiven for a moment after the join, not later.
    mesh.handle_packet(now, peer, Channel::Unreliable, ack(1 << 20));
    assert!(mesh.is_joined(peer));
    let later = now + MeshConfig::default().interrupt_timeout;
    mesh.handle_packet(later, peer, Channel::Unreliable, ack(1 << 20));
    assert!(matches!(
        violation(&mut mesh),
        Some(ProtocolError::AckBeyondSent { .. })
    ));
}

#[test]
fn a_reset_ends_a_joined_link_and_starts_a_fresh_handshake() {
    let (mut mesh, peer, now) = joined_mesh(MeshConfig::default());
    mesh.send(peer, Channel::Reliable, b"lost").unwrap();
    sent(&mut mesh);
    feed(&mut mesh, now, peer, ReliablePacket::Reset);
    assert_eq!(
        events(&mut mesh),
        vec![Event::PeerLeft {
            peer,
            reason: LeaveReason::Lapsed
        }]
    );
    // A hello, but neither a goodbye nor a reset of our own.
    assert_eq!(sent(&mut mesh), vec!["hello"]);
    assert!(!mesh.is_joined(peer));
    feed(&mut mesh, now, peer, HELLO);
    feed(&mut mesh, now, peer, ReliablePacket::HelloAck);
    assert_eq!(events(&mut mesh), vec![Event::PeerJoined(peer)]);
    let stats = mesh.stats(peer).unwrap();
    assert_eq!(stats.reliable_in_flight, 0, "{stats:?}");
    assert_eq!(stats.reliable_queued, 0, "{stats:?}");
}

#[test]
fn after_a_reset_data_before_the_hello_still_fails_the_handshake() {
    // Everything the peer sends after its reset belongs to the fresh link, so
    // no straggler can follow it: nothing is forgiven.
    let (mut mesh, peer, now) = joined_mesh(MeshConfig::default());
    feed(&mut mesh, now, peer, ReliablePacket::Reset);
    feed(&mut mesh, now, peer, ReliablePacket::Data(b"x"));
    let got = events(&mut mesh);
    assert!(
        matches!(
            got.last(),
            Some(Event::HandshakeFailed {
                error: HandshakeError::Protocol(ProtocolError::Unexpected(_)),
                ..
            })
        ),
        "{got:?}"
    );
}

#[test]
fn a_reset_to_a_timed_out_side_is_answered_with_a_hello_only() {
    let (mut mesh, peer, now) = lapsed_mesh();
    feed(&mut mesh, now, peer, ReliablePacket::Reset);
    assert_eq!(sent(&mut mesh), vec!["hello"]);
    feed(&mut mesh, now, peer, HELLO);
    assert_eq!(sent(&mut mesh), vec!["hello-ack"]);
    feed(&mut mesh, now, peer, ReliablePacket::HelloAck);
    assert_eq!(events(&mut mesh), vec![Event::PeerJoined(peer)]);
}

#[test]
fn resets_that_cross_meet_in_one_handshake() {
    let start = Instant::now();
    let (a_id, b_id) = (PeerId(1), PeerId(2));
    let mut a = Mesh::new(MeshConfig::default()).unwrap();
    let mut b = Mesh::new(MeshConfig::default()).unwrap();
    a.handle_connected(start, b_id);
    b.handle_connected(start, a_id);
    pump(start, &mut a, a_id, &mut b, b_id);
    a.send(b_id, Channel::Reliable, &[1; 3000]).unwrap();
    b.send(a_id, Channel::Reliable, &[2; 3000]).unwrap();
    pump(start, &mut a, a_id, &mut b, b_id);
    events(&mut a);
    events(&mut b);
    // Both time out, then each probes the other at the same moment.
    let now = start + Duration::from_secs(10);
    a.handle_timeout(now);
    b.handle_timeout(now);
    let now = now + Duration::from_millis(100);
    a.handle_timeout(now);
    b.handle_timeout(now);
    let from_a: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
    let from_b: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
    assert_eq!(from_a.iter().map(kind).collect::<Vec<_>>(), vec!["probe"]);
    assert_eq!(from_b.iter().map(kind).collect::<Vec<_>>(), vec!["probe"]);
    for t in from_a {
        b.handle_packet(now, a_id, t.channel, t.data);
    }
    for t in from_b {
        a.handle_packet(now, b_id, t.channel, t.data);
    }
    // Each starts over; the resets cross.
    let from_a: Vec<_> = std::iter::from_fn(|| a.poll_transmit()).collect();
    let from_b: Vec<_> = std::iter::from_fn(|| b.poll_transmit()).collect();
    assert_eq!(
        from_a.iter().map(kind).collect::<Vec<_>>(),
        ["reset", "hello"]
    );
    assert_eq!(
        from_b.iter().map(kind).collect::<Vec<_>>(),
        ["reset", "hello"]
    );
    for t in from_a {
        b.handle_packet(now, a_id, t.channel, t.data);
    }
    for t in from_b {
        a.handle_packet(now, b_id, t.channel, t.data);
    }
    pump(now, &mut a, a_id, &mut b, b_id);
    let left = |peer| Event::PeerLeft {
        peer,
        reason: LeaveReason::TimedOut,
    };
    assert_eq!(events(&mut a), vec![left(b_id), Event::PeerJoined(b_id)]);
    assert_eq!(events(&mut b), vec![left(a_id), Event::PeerJoined(a_id)]);
    // One timeline: fresh streams both ways, flow control consistent.
    a.send(b_id, Channel::Reliable, &[3; 300_000]).unwrap();
    b.send(a_id, Channel::Reliable, b"back").unwrap();
    for _ in 0..4 {
        pump(now, &mut a, a_id, &mut b, b_id);
        a.handle_timeout(now + Duration::from_millis(200));
        b.handle_timeout(now + Duration::from_millis(200));
    }
    pump(now, &mut a, a_id, &mut b, b_id);
    assert_eq!(events(&mut a).len(), 1);
    let got = events(&mut b);
    assert!(
        matches!(&got[..], [Event::Message { payload, .. }] if payload.len() == 300_000),
        "{got:?}"
    );
    // Taken messages are acknowledged with the next heartbeats.
    a.handle_timeout(now + Duration::from_millis(400));
    b.handle_timeout(now + Duration::from_millis(400));
    pump(now, &mut a, a_id, &mut b, b_id);
    assert_eq!(a.stats(b_id).unwrap().reliable_in_flight, 0);
    assert_eq!(b.stats(a_id).unwrap().reliable_in_flight, 0);
}

#[test]
fn a_restarted_handshake_that_times_out_lapses_again() {
    let (mut mesh, peer, now) = lapsed_mesh();
    let probe = UnreliablePacket::Ping { seq: 0, acked: 0 }.encode();
    mesh.handle_packet(now, peer, Channel::Unreliable, probe.into());
    assert_eq!(sent(&mut mesh), vec!["reset", "hello"]);
    let deadline = now + MeshConfig::default().handshake_timeout;
    mesh.handle_timeout(deadline);
    assert_eq!(
        events(&mut mesh),
        vec![],
        "its departure was reported already"
    );
    assert!(!sent(&mut mesh).contains(&"goodbye"));
    mesh.handle_timeout(deadline + Duration::from_millis(100));
    assert_eq!(sent(&mut mesh), vec!["probe"]);
    // The transport losing the peer ends it for good.
    mesh.handle_disconnected(deadline, peer);
    assert_eq!(mesh.poll_timeout(), None);
    assert_eq!(mesh.connected_peers().count(), 0);
    feed(&mut mesh, deadline, peer, HELLO);
    assert_eq!(sent(&mut mesh), Vec::<&str>::new());
    assert_eq!(events(&mut mesh), vec![]);
    // A new transport connection (the peer reconnected through signaling)
    // starts a fresh link.
    mesh.handle_connected(deadline, peer);
    assert_eq!(sent(&mut mesh), vec!["hello"]);
    feed(&mut mesh, deadline, peer, HELLO);
    assert_eq!(sent(&mut mesh), vec!["hello-ack"]);
}

#[test]
fn a_goodbye_to_a_timed_out_side_closes_the_peer() {
    let (mut mesh, peer, now) = lapsed_mesh();
    feed(
        &mut mesh,
        now,
        peer,
        ReliablePacket::Goodbye(GoodbyeReason::Leaving),
    );
    assert_eq!(sent(&mut mesh), Vec::<&str>::new());
    assert_eq!(events(&mut mesh), vec![]);
    assert_eq!(mesh.poll_timeout(), None, "no more probes");
    feed(&mut mesh, now, peer, ReliablePacket::Reset);
    feed(&mut mesh, now, peer, HELLO);
    assert_eq!(sent(&mut mesh), Vec::<&str>::new());
    assert!(!mesh.drop_peer(peer));
}

/// Meshes `a` (peer 1) and `b` (peer 2), joined.
fn joined_pair(now: Instant) -> (Mesh, Mesh) {
    let (ida, idb) = (PeerId(1), PeerId(2));
    let mut a = Mesh::new(MeshConfig::default()).unwrap();
    let mut b = Mesh::new(MeshConfig::default()).unwrap();
    a.handle_connected(now, idb);
    b.handle_connected(now, ida);
    pump(now, &mut a, ida, &mut b, idb);
    assert!(a.is_joined(idb) && b.is_joined(ida));
    events(&mut a);
    (a, b)
}

/// Whether `mesh` reported a failed handshake or a peer that broke the
/// protocol.
fn no_failure(events: &[Event]) -> bool {
    !events.iter().any(|e| {
        matches!(
            e,
            Event::HandshakeFailed { .. }
                | Event::PeerLeft {
                    reason: LeaveReason::Left(GoodbyeReason::ProtocolViolation)
                        | LeaveReason::ProtocolViolation(_),
                    ..
                }
        )
    })
}

#[test]
fn a_restarted_peer_whose_hello_beats_the_transports_news_links_again() {
    // b's process restarts under its id; its new connection's hello reaches
    // a before a's transport reports the old connection's end and the new
    // one (a WebRTC stack reports the replacement after the first packets).
    let now = Instant::now();
    let (ida, idb) = (PeerId(1), PeerId(2));
    let (mut a, _old_b) = joined_pair(now);
    let mut b = Mesh::new(MeshConfig::default()).unwrap();
    b.handle_connected(now, ida);
    pump(now, &mut a, ida, &mut b, idb);
    b.send(ida, Channel::Reliable, b"from the new b").unwrap();
    pump(now, &mut a, ida, &mut b, idb);
    // The transport's news, late.
    a.handle_disconnected(now, idb);
    a.handle_connected(now, idb);
    b.send(ida, Channel::Reliable, b"more from the new b")
        .unwrap();
    pump(now, &mut a, ida, &mut b, idb);
    let (ea, eb) = (events(&mut a), events(&mut b));
    assert!(no_failure(&ea), "a: {ea:?}");
    assert!(no_failure(&eb), "b: {eb:?}");
    assert!(a.is_joined(idb) && b.is_joined(ida), "a: {ea:?}\nb: {eb:?}");
    a.send(idb, Channel::Reliable, b"to the new b").unwrap();
    pump(now, &mut a, ida, &mut b, idb);
    let got: Vec<Event> = events(&mut b);
    assert!(
        got.iter().any(
            |e| matches!(e, Event::Message { payload, .. } if &payload[..] == b"to the new b")
        ),
        "{got:?}"
    );
}

#[test]
fn a_restarted_peer_reported_first_links_again() {
    // The same restart, the transport's news first.
    let now = Instant::now();
    let (ida, idb) = (PeerId(1), PeerId(2));
    let (mut a, _old_b) = joined_pair(now);
    a.handle_disconnected(now, idb);
    a.handle_connected(now, idb);
    let mut b = Mesh::new(MeshConfig::default()).unwrap();
    b.handle_connected(now, ida);
    pump(now, &mut a, ida, &mut b, idb);
    let (ea, eb) = (events(&mut a), events(&mut b));
    assert!(no_failure(&ea) && no_failure(&eb), "a: {ea:?}\nb: {eb:?}");
    assert!(a.is_joined(idb) && b.is_joined(ida), "a: {ea:?}\nb: {eb:?}");
}

/// b's process dies and a restarted b comes `after` later: a's link to the
/// old b is interrupted (or lapsed); `news` says what a's transport reports
/// and when. Runs a's and b's timers for 20 s and returns whether both end
/// joined, with their events.
fn restart_after(after: Duration, news: Option<bool>) -> (bool, Vec<Event>, Vec<Event>) {
    let start = Instant::now();
    let (ida, idb) = (PeerId(1), PeerId(2));
    let (mut a, _old_b) = joined_pair(start);
    let mut now = start;
    let step = Duration::from_millis(50);
    while now < start + after {
        now += step;
        a.handle_timeout(now);
        while a.poll_transmit().is_some() {}
    }
    if news == Some(true) {
        a.handle_disconnected(now, idb);
        a.handle_connected(now, idb);
    }
    let mut b = Mesh::new(MeshConfig::default()).unwrap();
    b.handle_connected(now, ida);
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    for i in 0..400 {
        pump(now, &mut a, ida, &mut b, idb);
        if news == Some(false) && i == 3 {
            a.handle_disconnected(now, idb);
            a.handle_connected(now, idb);
        }
        now += step;
        a.handle_timeout(now);
        b.handle_timeout(now);
        ea.extend(events(&mut a));
        eb.extend(events(&mut b));
    }
    (a.is_joined(idb) && b.is_joined(ida), ea, eb)
}

#[test]
fn a_restarted_peer_links_again_whenever_it_comes_and_whatever_the_transport_says() {
    for after in [500, 1_500, 2_600, 9_000, 12_000] {
        for news in [None, Some(true), Some(false)] {
            let (joined, ea, eb) = restart_after(Duration::from_millis(after), news);
            assert!(
                joined && no_failure(&ea) && no_failure(&eb),
                "restarted after {after} ms, news {news:?}:\na: {ea:?}\nb: {eb:?}"
            );
        }
    }
}
