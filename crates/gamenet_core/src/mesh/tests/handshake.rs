//! The handshake: hellos, their acknowledgements and their repetition, and
//! the ways it fails.

use std::time::Duration;

use super::*;

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
        link: 1,
        app_id: "gamenet",
        schema: &[],
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

/// A schema of `entries`.
fn schema(entries: &[&str]) -> TypeSchema {
    let mut schema = TypeSchema::new();
    for e in entries {
        schema.push(*e);
    }
    schema
}

#[test]
fn peers_that_register_other_types_fail_the_handshake_naming_them() {
    let now = Instant::now();
    let mut a = Mesh::new(MeshConfig::default()).unwrap();
    let mut b = Mesh::new(MeshConfig::default()).unwrap();
    let (ida, idb) = (PeerId(1), PeerId(2));
    a.handle_connected(now, idb);
    b.handle_connected(now, ida);
    // Set after the hellos were queued: they are rewritten.
    a.set_schema(schema(&[
        "rollback input u8",
        "replication state game::Ball",
    ]));
    b.set_schema(schema(&[
        "rollback input u8",
        "replication state game::Score",
    ]));
    for _ in 0..4 {
        while let Some(t) = a.poll_transmit() {
            b.handle_packet(now, ida, t.channel, t.data);
        }
        while let Some(t) = b.poll_transmit() {
            a.handle_packet(now, idb, t.channel, t.data);
        }
    }
    let failure = |m: &mut Mesh| {
        std::iter::from_fn(|| m.poll_event()).find_map(|e| match e {
            Event::HandshakeFailed { error, .. } => Some(error),
            _ => None,
        })
    };
    let (ea, eb) = (failure(&mut a), failure(&mut b));
    assert!(
        matches!(&ea, Some(HandshakeError::SchemaMismatch { index: 1, detail })
            if detail.contains("`replication state game::Ball`")),
        "{ea:?}"
    );
    assert!(
        matches!(&eb, Some(HandshakeError::SchemaMismatch { index: 1, detail })
            if detail.contains("`replication state game::Score`")),
        "{eb:?}"
    );
    assert_eq!(a.joined_peers().count(), 0);
}

#[test]
fn peers_that_register_the_same_types_join() {
    let mut net = Net::new(2, MeshConfig::default());
    for i in 0..2 {
        net.mesh(i).set_schema(schema(&["rollback input u8"]));
    }
    net.join_all();
}

#[test]
fn handshake_times_out() {
    let mut net = Net::new(2, MeshConfig::default());
    net.kill(1); // node 1 never answers
    net.run_for(Duration::from_secs(11));
    let events = net.take_events(0);
    assert_eq!(
        events,
        vec![Event::HandshakeFailed {
            peer: net.id(1),
            error: HandshakeError::TimedOut
        }]
    );
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
    let mut net = Net::new(2, MeshConfig::default());
    // Both first hellos vanish, as when sent before the far end of a fresh data
    // channel is open.
    for i in 0..2 {
        let hello = net.mesh(i).poll_transmit().unwrap();
        assert!(matches!(
            ReliablePacket::decode(&hello.data),
            Ok(ReliablePacket::Hello { .. })
        ));
    }
    net.run_for(Duration::from_millis(500));
    for i in 0..2 {
        let events = net.take_events(i);
        assert_eq!(events, vec![Event::PeerJoined(net.id(1 - i))]);
    }
    let b = net.id(1);
    net.mesh(0).send(b, Channel::Reliable, b"after").unwrap();
    net.run_for(Duration::from_millis(100));
    assert_eq!(net.messages(1).len(), 1);
    let stats = net.mesh(0).stats(b).unwrap();
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
