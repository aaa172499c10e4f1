//! Hostile input: a peer that breaks the protocol is dropped and told why,
//! before anything is allocated for it, and nothing it sends makes a panic.

use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::wire::UnreliablePacket;

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
fn a_banned_peer_is_never_linked_again() {
    let now = Instant::now();
    let mut mesh = Mesh::new(MeshConfig::default()).unwrap();
    let rogue = PeerId(9);
    mesh.handle_connected(now, rogue);
    while mesh.poll_transmit().is_some() {}
    mesh.ban_peer(rogue);
    assert!(mesh.is_banned(rogue));
    while mesh.poll_transmit().is_some() {}
    // It reconnects through signaling: no handshake, nothing it sends counts.
    mesh.handle_disconnected(now, rogue);
    mesh.handle_connected(now, rogue);
    assert!(mesh.poll_transmit().is_none());
    mesh.handle_packet(
        now,
        rogue,
        Channel::Reliable,
        Bytes::from_static(&[1, 2, 3]),
    );
    assert!(std::iter::from_fn(|| mesh.poll_event()).all(|e| !matches!(e, Event::PeerJoined(_))));
    assert_eq!(mesh.joined_peers().count(), 0);
}

/// Unreliable data packet `i` as `peer` would send it.
fn unreliable(i: u32) -> Bytes {
    UnreliablePacket::Data(&i.to_le_bytes()).encode().into()
}

fn messages_taken(mesh: &mut Mesh) -> usize {
    std::iter::from_fn(|| mesh.poll_event())
        .filter(|e| matches!(e, Event::Message { .. }))
        .count()
}

#[test]
fn a_flood_of_unreliable_packets_is_cut_to_the_budget() {
    let config = MeshConfig {
        inbound_packets_per_sec: 100,
        ..MeshConfig::default()
    };
    let (mut mesh, peer, now) = joined_mesh(config);
    // Ten thousand packets at once: the second's burst passes, the rest is
    // dropped unread.
    for i in 0..10_000 {
        mesh.handle_packet(now, peer, Channel::Unreliable, unreliable(i));
    }
    assert_eq!(messages_taken(&mut mesh), 100);
    assert_eq!(mesh.stats(peer).unwrap().dropped_in, 9_900);
    // Half a second later, half the budget is back.
    let later = now + Duration::from_millis(500);
    for i in 0..1_000 {
        mesh.handle_packet(later, peer, Channel::Unreliable, unreliable(i));
    }
    assert_eq!(messages_taken(&mut mesh), 50);
    assert!(mesh.is_joined(peer), "a flood is not a violation");
}

#[test]
fn unreliable_messages_the_application_has_not_taken_are_capped() {
    let config = MeshConfig {
        max_unpolled_unreliable: 10,
        ..MeshConfig::default()
    };
    let (mut mesh, peer, now) = joined_mesh(config);
    for i in 0..100 {
        mesh.handle_packet(now, peer, Channel::Unreliable, unreliable(i));
    }
    assert_eq!(messages_taken(&mut mesh), 10);
    assert_eq!(mesh.stats(peer).unwrap().dropped_in, 90);
    // Taken, they make room again.
    for i in 0..5 {
        mesh.handle_packet(now, peer, Channel::Unreliable, unreliable(i));
    }
    assert_eq!(messages_taken(&mut mesh), 5);
}

/// The acknowledgements among what `mesh` sends.
fn acks(mesh: &mut Mesh) -> Vec<u64> {
    std::iter::from_fn(|| mesh.poll_transmit())
        .filter_map(|t| match UnreliablePacket::decode(&t.data) {
            Ok(UnreliablePacket::Ack { acked }) if t.channel == Channel::Unreliable => Some(acked),
            _ => None,
        })
        .collect()
}

#[test]
fn reliable_data_is_acknowledged_as_the_application_takes_it() {
    let config = MeshConfig {
        send_window: 16 << 10,
        ..MeshConfig::default()
    };
    let (mut mesh, peer, now) = joined_mesh(config);
    let _ = acks(&mut mesh);
    let payload = [7u8; 1000];
    for _ in 0..10 {
        feed(&mut mesh, now, peer, ReliablePacket::Data(&payload));
    }
    assert_eq!(acks(&mut mesh), Vec::<u64>::new(), "nothing taken yet");
    for _ in 0..5 {
        assert!(matches!(mesh.poll_event(), Some(Event::Message { .. })));
    }
    // A quarter window (4 KiB) taken: five messages of 1,001 encoded bytes.
    assert_eq!(acks(&mut mesh), vec![5 * 1001]);
}

#[test]
fn reliable_data_past_the_window_drops_the_peer() {
    let config = MeshConfig {
        send_window: 4096,
        ..MeshConfig::default()
    };
    let limit = 2 * 4096 + config.fragment_size as u64;
    let (mut mesh, peer, now) = joined_mesh(config);
    let payload = [7u8; 999];
    // A peer that ignores the window, to an application that does not take
    // its messages: dropped once past twice the window.
    for _ in 0..20 {
        feed(&mut mesh, now, peer, ReliablePacket::Data(&payload));
        if !mesh.is_joined(peer) {
            break;
        }
    }
    assert_eq!(
        violation(&mut mesh),
        Some(ProtocolError::WindowExceeded {
            unacked: 10_000,
            limit
        })
    );
}
