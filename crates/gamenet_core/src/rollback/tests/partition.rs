//! Splits: only a side holding a quorum plays on; a side without one stalls
//! and rejoins; a desync heals the same way.

use super::*;

/// Whether node `i` reported `pred`.
fn reported(net: &Net, i: usize, pred: impl Fn(&RollbackEvent) -> bool) -> bool {
    net.nodes[i].events.iter().any(pred)
}

#[test]
fn a_lone_peer_cut_off_stalls_while_the_majority_plays_on() {
    let mut net = Net::new(3, bad_link(21), 4_000);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 1_000
    });
    let (a, b, c) = (net.nodes[0].id, net.nodes[1].id, net.nodes[2].id);
    net.links.partition(a, b);
    net.links.partition(a, c);
    // Inputs sent before the split may still arrive: up to the frame the
    // furthest peer had reached, plus the input delay.
    let split_at = net.config.input_delay
        + net
            .nodes
            .iter()
            .map(|n| n.session.current_frame())
            .max()
            .unwrap_or(0);
    net.run(Duration::from_secs(400), |n| {
        n.nodes[1..]
            .iter()
            .all(|n| n.session.confirmed_checksum(n.game.target).is_some())
    });
    net.assert_in_step_among(&[1, 2]);
    // The lowest id was the one cut off: the others agreed on its departure...
    for i in [1, 2] {
        assert!(reported(&net, i, |e| matches!(
            e,
            RollbackEvent::Disconnected { peer, .. } if *peer == a
        )));
    }
    // ...while it never confirmed a frame past the split, and knows why.
    let lone = &net.nodes[0];
    assert!(reported(&net, 0, |e| matches!(
        e,
        RollbackEvent::CutOff { lost } if lost == &vec![b, c]
    )));
    assert!(!reported(&net, 0, |e| matches!(
        e,
        RollbackEvent::Disconnected { .. }
    )));
    let confirmed = lone.session.confirmed_frame();
    assert!(
        confirmed <= split_at + 1,
        "confirmed {confirmed} past the split at {split_at}"
    );
    assert!(lone.session.current_frame() <= confirmed + net.config.prediction_window);
}

#[test]
fn the_lowest_id_dies_and_the_other_waits_for_it_to_come_back_with_its_key() {
    let mut net = Net::new(2, bad_link(22), 3_008);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[1].session.current_frame() >= 800
    });
    let key = net.nodes[0].session.key();
    let old = net.nodes[0].id;
    net.kill(0, false);
    // Half of two without the lowest id is no quorum: it stalls, cut off.
    let wait_until = net.now + Duration::from_secs(14);
    net.run(Duration::from_secs(200), |n| n.now >= wait_until);
    assert!(reported(&net, 1, |e| matches!(
        e,
        RollbackEvent::CutOff { .. }
    )));
    assert!(!reported(&net, 1, |e| matches!(
        e,
        RollbackEvent::Disconnected { .. }
    )));
    let stalled = net.nodes[1].session.current_frame();
    assert!(stalled < 800 + 60, "it ran on to {stalled}");
    // The player restarts with its key: it cannot be playing elsewhere, so the
    // survivor agrees it left, plays on and gives its slot back.
    let id = net.new_id();
    let session = RollbackSession::join(net.config.clone(), id, key, 1).unwrap();
    net.add_node(id, session);
    net.run(Duration::from_secs(400), |n| n.all_done());
    net.assert_in_step();
    assert!(reported(&net, 1, |e| matches!(
        e,
        RollbackEvent::Disconnected { peer, .. } if *peer == old
    )));
    let back = net.nodes.iter().find(|n| n.id == id).unwrap();
    assert_eq!(back.session.local_slots(), vec![0]);
}

#[test]
fn the_highest_id_dies_and_the_lowest_plays_on() {
    let mut net = Net::new(2, bad_link(23), 2_000);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 600
    });
    net.kill(1, false);
    net.run(Duration::from_secs(200), |n| n.all_done());
    assert!(reported(&net, 0, |e| matches!(
        e,
        RollbackEvent::Disconnected { .. }
    )));
    assert!(!reported(&net, 0, |e| matches!(
        e,
        RollbackEvent::CutOff { .. }
    )));
}

#[test]
fn a_desync_heals_by_the_player_off_the_hosts_timeline_rejoining() {
    let mut net = Net::new(2, bad_link(24), 3_008);
    net.nodes[1].game.perturb = Some(0);
    net.run(Duration::from_secs(100), |n| {
        reported(n, 1, |e| matches!(e, RollbackEvent::Rejoining { .. }))
    });
    assert!(reported(&net, 1, |e| matches!(
        e,
        RollbackEvent::Rejoining {
            cause: RejoinCause::Desync
        }
    )));
    // The host keeps its timeline.
    assert!(!reported(&net, 0, |e| matches!(
        e,
        RollbackEvent::Rejoining { .. }
    )));
    // The bug is gone after the reload (say, the game fixed what the
    // desync report named): from here on both agree.
    net.nodes[1].game.perturb = None;
    net.run(Duration::from_secs(400), |n| n.all_done());
    let desynced_after: Vec<&RollbackEvent> = net.nodes[1]
        .events
        .iter()
        .skip_while(|e| !matches!(e, RollbackEvent::JoinerSynced { .. }))
        .filter(|e| matches!(e, RollbackEvent::DesyncDetected { .. }))
        .collect();
    assert!(desynced_after.is_empty(), "{desynced_after:?}");
    let (a, b) = (&net.nodes[0], &net.nodes[1]);
    assert_eq!(a.game.at_target, b.game.at_target);
    assert_eq!(b.session.local_slots(), vec![1]);
}
