//! A dropped player comes back with its key and gets its slot back.

use super::*;

#[test]
fn a_dropped_peer_reconnects_into_its_slot() {
    let mut net = Net::new(3, bad_link(6), 10_000);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[1].session.current_frame() >= 4_000
    });
    let key = net.nodes[1].session.key();
    let old = net.nodes[1].id;
    net.kill(1, true);
    // Back a second later, with a new connection (so a new peer id).
    let back = net.now + Duration::from_secs(1);
    net.run(Duration::from_secs(200), |n| n.now >= back);
    let id = net.new_id();
    let session = RollbackSession::join(net.config.clone(), id, key, 1).unwrap();
    net.add_node(id, session);
    net.run(Duration::from_secs(400), |n| n.all_done());
    net.assert_in_step();
    let rejoined = net.nodes.iter().find(|n| n.id == id).unwrap();
    assert_eq!(rejoined.session.local_slots(), vec![1]);
    for n in net.nodes.iter().filter(|n| n.alive && n.id != id) {
        assert!(
            n.events
                .iter()
                .any(|e| matches!(e, RollbackEvent::Disconnected { peer, .. } if *peer == old))
        );
        assert!(n.events.iter().any(
            |e| matches!(e, RollbackEvent::PlayerJoined { peer, slots, .. } if *peer == id && slots == &vec![1])
        ));
    }
    let state = net.nodes[0].game.at_target.as_ref().unwrap();
    assert!(state.present.iter().all(|&p| p), "{state:?}");
}
