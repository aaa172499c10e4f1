//! Leaving on purpose: the goodbye, and the stragglers that follow it.

use std::time::Duration;

use super::*;

#[test]
fn drop_peer_says_goodbye() {
    let mut net = Net::new(2, MeshConfig::default());
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    assert!(net.mesh(0).drop_peer(b));
    assert!(!net.mesh(0).drop_peer(b));
    net.run_for(Duration::from_millis(100));
    assert_eq!(
        net.take_events(0),
        vec![Event::PeerLeft {
            peer: b,
            reason: LeaveReason::Dropped
        }]
    );
    assert_eq!(
        net.take_events(1),
        vec![Event::PeerLeft {
            peer: a,
            reason: LeaveReason::Left(GoodbyeReason::Dropped)
        }]
    );
    // Stragglers from a dropped peer are ignored, not re-joined.
    let now = net.now;
    feed(net.mesh(0), now, b, ReliablePacket::Data(b"x"));
    assert_eq!(net.take_events(0), vec![]);
}
