//! Messages on both channels: order, fragmentation and reassembly, the send
//! window and the send queue, and what a sender is refused.

use std::time::Duration;

use super::*;

#[test]
fn three_peers_join_and_exchange_on_both_channels() {
    let mut net = Net::new(3, MeshConfig::default());
    net.join_all();
    let (b, c) = (net.id(1), net.id(2));
    for i in 0..100u32 {
        net.mesh(0)
            .send(b, Channel::Reliable, &i.to_le_bytes())
            .unwrap();
        net.mesh(0)
            .send(c, Channel::Unreliable, &i.to_le_bytes())
            .unwrap();
    }
    net.run_for(Duration::from_millis(100));
    let got: Vec<u32> = net
        .messages(1)
        .iter()
        .map(|(_, ch, p)| {
            assert_eq!(*ch, Channel::Reliable);
            u32::from_le_bytes(p[..].try_into().unwrap())
        })
        .collect();
    assert_eq!(got, (0..100).collect::<Vec<_>>());
    assert_eq!(net.messages(2).len(), 100);
}

#[test]
fn large_message_is_fragmented_flow_controlled_and_reassembled() {
    let config = MeshConfig {
        fragment_size: 1024,
        send_window: 64 << 10,
        ..MeshConfig::default()
    };
    let mut net = Net::new(2, config);
    net.join_all();
    let b = net.id(1);
    let big: Vec<u8> = (0..(1 << 20) + 17)
        .map(|i: u32| (i * 7 % 251) as u8)
        .collect();
    net.mesh(0).send(b, Channel::Reliable, &big).unwrap();
    net.mesh(0).send(b, Channel::Reliable, b"after").unwrap();
    // The window holds 64 KiB, so the rest waits for acknowledgements.
    let stats = net.mesh(0).stats(b).unwrap();
    assert!(stats.reliable_in_flight <= 64 << 10, "{stats:?}");
    assert!(stats.reliable_queued > 900 << 10, "{stats:?}");
    net.run_for(Duration::from_secs(2));
    let got = net.messages(1);
    assert_eq!(got.len(), 2);
    assert_eq!(&got[0].2[..], &big[..]);
    assert_eq!(&got[1].2[..], b"after");
    let stats = net.mesh(0).stats(b).unwrap();
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
    let mut net = Net::new(2, config);
    net.join_all();
    let b = net.id(1);
    let mesh = net.mesh(0);
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
    net.run_for(Duration::from_secs(1));
    net.mesh(0)
        .send(b, Channel::Reliable, &vec![2; 60_000])
        .unwrap();
}
