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
