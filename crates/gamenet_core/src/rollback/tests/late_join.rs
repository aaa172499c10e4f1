//! A peer joins a running session into an open slot and ends in step.

use super::*;

#[test]
fn a_peer_late_joins_and_ends_in_step() {
    // Three slots, two players at the start, the third slot open.
    let mut net = Net::with_kinds(3, 2, bad_link(5), 10_000);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 5_000
    });
    let id = net.new_id();
    let session = RollbackSession::join(net.config.clone(), id, 77, 1).unwrap();
    net.add_node(id, session);
    net.run(Duration::from_secs(400), |n| n.all_done());
    net.assert_in_step();
    let joiner = &net.nodes[2];
    assert_eq!(joiner.session.local_slots(), vec![2]);
    assert!(
        joiner
            .events
            .iter()
            .any(|e| matches!(e, RollbackEvent::JoinerSynced { peer } if *peer == id))
    );
    for n in &net.nodes[..2] {
        let joined = n.events.iter().find_map(|e| match e {
            RollbackEvent::PlayerJoined { peer, slots, frame } if *peer == id => {
                Some((slots.clone(), *frame))
            }
            _ => None,
        });
        let (slots, frame) = joined.expect("join reported");
        assert_eq!(slots, vec![2]);
        assert!(frame > 5_000, "{frame}");
    }
    let state = net.nodes[0].game.at_target.as_ref().unwrap();
    assert!(state.present.iter().all(|&p| p), "{state:?}");
}
