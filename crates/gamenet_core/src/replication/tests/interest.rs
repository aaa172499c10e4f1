//! Interest: entities entering and leaving a peer's scope.

use super::*;

#[test]
fn interest_spawns_and_despawns_on_the_right_peers_only() {
    let mut net = Net::new(3, link(0.1, 3), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let (b, c) = (net.nodes[1].id, net.nodes[2].id);
    let id = net.nodes[0].rep.spawn(0, &moving(0, 1)).unwrap();
    net.run(Duration::from_millis(500), |_| {});
    assert!(net.nodes[1].rep.entity(id).is_some() && net.nodes[2].rep.entity(id).is_some());
    net.nodes[0].rep.set_visible(b, id, false);
    net.run(Duration::from_millis(500), |_| {});
    assert!(net.nodes[1].rep.entity(id).is_none(), "hidden from b");
    assert!(net.nodes[2].rep.entity(id).is_some(), "still at c");
    assert!(
        net.nodes[1]
            .events
            .iter()
            .any(|(_, e)| *e == ReplicationEvent::Despawned { id })
    );
    assert!(
        !net.nodes[2]
            .events
            .iter()
            .any(|(_, e)| *e == ReplicationEvent::Despawned { id })
    );
    net.nodes[0].rep.set(id, &moving(9, 1)).unwrap();
    net.nodes[0].rep.set_visible(b, id, true);
    net.run(Duration::from_millis(500), |_| {});
    assert!(net.same_everywhere(id));
    let spawns = |n: &Node| {
        n.events
            .iter()
            .filter(|(_, e)| matches!(e, ReplicationEvent::Spawned { id: i, .. } if *i == id))
            .count()
    };
    assert_eq!(spawns(&net.nodes[1]), 2);
    assert_eq!(spawns(&net.nodes[2]), 1);
    let _ = c;
}

#[test]
fn a_new_owner_can_hide_and_show_an_entity_to_the_peer_that_made_it() {
    let mut net = Net::new(2, link(0.0, 11), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    let id = net.nodes[0].rep.spawn(0, &moving(0, 1)).unwrap();
    net.run(Duration::from_millis(300), |_| {});
    net.nodes[0].rep.hand_over(id, b).unwrap();
    net.run(Duration::from_millis(300), |_| {});
    net.nodes[1].rep.set_visible(a, id, false);
    net.run(Duration::from_millis(300), |_| {});
    assert!(
        net.nodes[0].rep.entity(id).is_none(),
        "hidden from its maker"
    );
    net.nodes[1].rep.set(id, &moving(5, 1)).unwrap();
    net.nodes[1].rep.set_visible(a, id, true);
    net.run(Duration::from_millis(300), |_| {});
    assert!(net.same_everywhere(id), "shown to its maker again");
    // Its maker's next own entity still gets an id of its own.
    let next = net.nodes[0].rep.spawn(0, &moving(0, 2)).unwrap();
    assert_ne!(next, id);
}

#[test]
fn hiding_and_showing_within_a_round_trip_does_not_stall_the_stream() {
    // Updates sent before the hide are acked after the show: those acks
    // must not become baselines the receiver (which despawned and respawned
    // the entity) no longer has.
    let mut net = Net::new(2, link(0.0, 9), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let b = net.nodes[1].id;
    let ids: Vec<NetId> = (0..4)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    let mut t = 0;
    let mut step = |n: &mut Net| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32)).unwrap();
        }
    };
    net.run(Duration::from_millis(500), &mut step);
    for _ in 0..5 {
        net.nodes[0].rep.set_visible(b, ids[0], false);
        net.run(Duration::from_millis(20), &mut step);
        net.nodes[0].rep.set_visible(b, ids[0], true);
        net.run(Duration::from_millis(300), &mut step);
    }
    net.run(Duration::from_millis(500), |_| {});
    for id in &ids {
        assert!(net.same_everywhere(*id), "{id:?} stalled at b");
    }
}
