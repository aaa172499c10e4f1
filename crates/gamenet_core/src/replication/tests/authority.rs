//! Authority: hand-over on request, and a successor when the owner leaves.

use super::*;

#[test]
fn authority_hand_off_mid_motion_loses_no_update() {
    // Wide jitter: updates sent before the hand-over still arrive after it.
    let jittery = ConditionerConfig {
        jitter: Duration::from_millis(80),
        ..link(0.1, 4)
    };
    let mut net = Net::new(3, jittery, ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let b = net.nodes[1].id;
    let id = net.nodes[0].rep.spawn(0, &[0, 0, 0]).unwrap();
    // Whoever owns it moves it one step a tick.
    let step = |n: &mut Net| {
        for node in n.nodes.iter_mut() {
            if let Some(e) = node.rep.entity(id).cloned()
                && e.owner == node.id
            {
                node.rep.set(id, &[e.fields[0] + 1, 0, 0]).unwrap();
            }
        }
    };
    net.run(Duration::from_secs(1), step);
    net.nodes[1].rep.request_authority(id);
    let mut handed = false;
    let mut seen_at_c: Vec<u32> = Vec::new();
    net.run(Duration::from_secs(2), |n| {
        step(n);
        if let Some(e) = n.nodes[2].rep.entity(id) {
            seen_at_c.push(e.fields[0]);
        }
        if !handed
            && n.nodes[0].events.iter().any(|(_, e)| {
                matches!(e, ReplicationEvent::AuthorityRequested { id: i, peer } if *i == id && *peer == b)
            })
        {
            handed = n.nodes[0].rep.hand_over(id, b).is_ok();
        }
    });
    assert!(handed);
    assert_eq!(net.nodes[2].rep.entity(id).unwrap().owner, b);
    // c saw the value only ever grow: no update from the old owner after the
    // hand-over, and the new owner went on from where the old one stopped.
    assert!(
        seen_at_c.windows(2).all(|w| w[0] <= w[1]),
        "c saw the value go back: no stale update may win after the hand-over"
    );
    let moved = seen_at_c.last().copied().unwrap_or(0) - seen_at_c[0];
    assert!(
        moved > 100,
        "c followed the motion across the hand-over: {moved}"
    );
    net.run(Duration::from_secs(1), |_| {});
    assert!(net.same_everywhere(id));
}

#[test]
fn the_owner_leaves_and_a_successor_carries_on() {
    let mut net = Net::new(3, link(0.1, 5), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..20)
        .map(|k| net.nodes[2].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    net.run(Duration::from_secs(1), |_| {});
    net.kill(2);
    net.run(Duration::from_millis(200), |_| {});
    let successor = net.nodes[0].id.min(net.nodes[1].id);
    for id in &ids {
        for n in &net.nodes[..2] {
            let e = n.rep.entity(*id).expect("still present");
            assert_eq!(e.owner, successor);
        }
    }
    // The successor moves them; the other peer follows.
    let mut t = 0;
    net.run(Duration::from_secs(1), |n| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t + 100, k as u32)).unwrap();
        }
    });
    net.run(Duration::from_millis(500), |_| {});
    for id in &ids {
        assert!(net.same_everywhere(*id));
        assert_eq!(
            &net.nodes[1].rep.entity(*id).unwrap().fields[..],
            &moving(t + 100, (id.0 & 0xff) as u32 % 20)[..]
        );
    }
}

#[test]
fn two_owners_after_a_healed_split_settle_on_the_lower_id() {
    let mut net = Net::new(3, link(0.05, 31), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    let id = net.nodes[2].rep.spawn(0, &[5, 5, 5]).unwrap();
    net.run(Duration::from_secs(1), |_| {});
    assert!(net.same_everywhere(id));
    // Split a | b, then c leaves for good: each side takes c's entity over
    // (a and b are the lowest remaining id of their side). Both move it
    // their own way.
    let now = net.now;
    net.nodes[0].rep.handle_peer_left(now, b);
    net.nodes[1].rep.handle_peer_left(now, a);
    net.kill(2);
    net.run(Duration::from_millis(200), |_| {});
    assert_eq!(net.nodes[0].rep.entity(id).unwrap().owner, a);
    assert_eq!(net.nodes[1].rep.entity(id).unwrap().owner, b);
    net.run(Duration::from_secs(1), |n| {
        for (i, node) in n.nodes[..2].iter_mut().enumerate() {
            let x = node.rep.entity(id).unwrap().fields[0];
            node.rep.set(id, &[x + 1 + i as u32, 0, 0]).unwrap();
        }
    });
    assert_ne!(net.nodes[0].rep.entity(id), net.nodes[1].rep.entity(id));
    // Healed: both claim it; the lower id keeps it on both, and b follows a.
    let now = net.now;
    net.nodes[0].rep.handle_peer_joined(now, b);
    net.nodes[1].rep.handle_peer_joined(now, a);
    net.run(Duration::from_secs(2), |n| {
        let node = &mut n.nodes[0];
        let x = node.rep.entity(id).unwrap().fields[0];
        node.rep.set(id, &[x + 1, 0, 0]).unwrap();
    });
    net.run(Duration::from_secs(1), |_| {});
    for n in &net.nodes[..2] {
        assert_eq!(n.rep.entity(id).unwrap().owner, a, "{}", n.id);
    }
    assert!(net.same_everywhere(id));
    assert!(net.nodes[1].events.iter().any(|(_, e)| {
        matches!(e, ReplicationEvent::OwnerChanged { id: i, owner } if *i == id && *owner == a)
    }));
}

#[test]
fn an_owner_back_under_its_id_brings_its_world_back() {
    let mut net = Net::new(2, link(0.05, 17), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    // b (the higher id: the successor would win a contest) owns three
    // entities, a one.
    let kept = net.nodes[1].rep.spawn(0, &[1, 1, 1]).unwrap();
    let changed = net.nodes[1].rep.spawn(0, &[2, 2, 2]).unwrap();
    let despawned = net.nodes[1].rep.spawn(0, &[3, 3, 3]).unwrap();
    let of_a = net.nodes[0].rep.spawn(0, &[4, 4, 4]).unwrap();
    net.run(Duration::from_secs(1), |_| {});
    for id in [kept, changed, despawned, of_a] {
        assert!(net.same_everywhere(id));
    }
    // Each side sees the other leave (its link timed out) and takes the
    // other's entities over; a moves what it took from b, b changes,
    // despawns and spawns its own.
    let now = net.now;
    net.nodes[0].rep.handle_peer_left(now, b);
    net.nodes[1].rep.handle_peer_left(now, a);
    assert_eq!(net.nodes[0].rep.entity(changed).unwrap().owner, a);
    assert_eq!(net.nodes[1].rep.entity(of_a).unwrap().owner, b);
    net.nodes[0].rep.set(changed, &[99, 99, 99]).unwrap();
    net.nodes[0].rep.set(despawned, &[98, 98, 98]).unwrap();
    net.nodes[1].rep.set(of_a, &[97, 97, 97]).unwrap();
    net.nodes[1].rep.set(changed, &[20, 20, 20]).unwrap();
    net.nodes[1].rep.despawn(despawned).unwrap();
    let spawned = net.nodes[1].rep.spawn(0, &[5, 5, 5]).unwrap();
    net.run(Duration::from_millis(500), |_| {});
    // Back under their ids: each forgets what it took over from the other,
    // and gets the other's own entities as they are now.
    let now = net.now;
    net.nodes[0].rep.handle_peer_joined(now, b);
    net.nodes[1].rep.handle_peer_joined(now, a);
    net.run(Duration::from_secs(1), |_| {});
    for n in &net.nodes {
        assert!(n.rep.entity(despawned).is_none(), "{}: despawned", n.id);
        assert_eq!(n.rep.entities().count(), 4, "{}", n.id);
    }
    for (id, owner, fields) in [
        (kept, b, [1, 1, 1]),
        (changed, b, [20, 20, 20]),
        (spawned, b, [5, 5, 5]),
        (of_a, a, [4, 4, 4]),
    ] {
        assert!(net.same_everywhere(id), "{id:?}");
        let e = net.nodes[0].rep.entity(id).unwrap();
        assert_eq!((e.owner, &e.fields[..]), (owner, &fields[..]), "{id:?}");
    }
    assert!(
        net.nodes[0]
            .events
            .iter()
            .any(|(_, e)| { matches!(e, ReplicationEvent::Despawned { id } if *id == despawned) })
    );
}

#[test]
fn an_entity_handed_over_after_a_take_over_stays_when_its_first_owner_returns() {
    let mut net = Net::new(3, link(0.0, 18), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let (a, b, c) = (net.nodes[0].id, net.nodes[1].id, net.nodes[2].id);
    let id = net.nodes[2].rep.spawn(0, &[7, 7, 7]).unwrap();
    net.run(Duration::from_secs(1), |_| {});
    assert!(net.same_everywhere(id));
    // c's link times out everywhere; a (the lowest id left) takes its entity
    // over and hands it to b on purpose.
    let now = net.now;
    net.nodes[0].rep.handle_peer_left(now, c);
    net.nodes[1].rep.handle_peer_left(now, c);
    net.nodes[2].rep.handle_peer_left(now, a);
    net.nodes[2].rep.handle_peer_left(now, b);
    assert_eq!(net.nodes[0].rep.entity(id).unwrap().owner, a);
    net.nodes[0].rep.hand_over(id, b).unwrap();
    net.run(Duration::from_millis(500), |_| {});
    assert_eq!(net.nodes[1].rep.entity(id).unwrap().owner, b);
    // c comes back: b's entity is b's now, not c's to take back.
    let now = net.now;
    net.nodes[1].rep.handle_peer_joined(now, c);
    assert!(
        net.nodes[1].rep.entity(id).is_some_and(|e| e.owner == b),
        "b forgot the entity it was handed"
    );
}

#[test]
fn a_successor_is_agreed_when_one_peers_link_set_differs() {
    use super::hostile::Room;
    let (a, b, c) = (PeerId(1), PeerId(2), PeerId(3));
    let mut room = Room::new(&[a, b, c], ReplicationConfig::default(), schema());
    let id = room.at(c).spawn(0, &[5, 5, 5]).unwrap();
    room.pump(|_| true);
    // c's link to b times out at b; a still hears c. b computes a as the
    // successor, but a does not see c gone: the entity stays c's at b until
    // a announces a take-over (it never becomes a's at b while a says c's).
    let now = room.now;
    room.at(b).handle_peer_left(now, c);
    room.pump(|_| true);
    assert_eq!(room.at(a).entity(id).unwrap().owner, c);
    assert_eq!(room.at(b).entity(id).unwrap().owner, c);
    // c moves it; a follows (b does not hear c).
    room.at(c).set(id, &[6, 6, 6]).unwrap();
    room.tick(TICK, |t| t.peer != b);
    assert_eq!(room.at(a).entity(id).unwrap().fields[0], 6);
    // Now a sees c leave: it takes over and says so; b follows a.
    let now = room.now;
    room.at(a).handle_peer_left(now, c);
    room.at(c).handle_peer_left(now, a);
    room.pump(|_| true);
    assert_eq!(room.at(a).entity(id).unwrap().owner, a);
    assert_eq!(room.at(b).entity(id).unwrap().owner, a);
    room.at(a).set(id, &[7, 7, 7]).unwrap();
    room.tick(TICK, |_| true);
    room.tick(TICK, |_| true);
    assert_eq!(room.at(b).entity(id).unwrap().fields[0], 7);
    assert!(room.reports(a).is_empty() && room.reports(b).is_empty());
}

#[test]
fn a_take_over_claim_is_taken_only_from_the_successor_computed_here() {
    use super::hostile::Room;
    use crate::replication::wire::TAKEOVER;
    let (a, b, c, d) = (PeerId(1), PeerId(2), PeerId(3), PeerId(4));
    let mut room = Room::new(&[a, b, c, d], ReplicationConfig::default(), schema());
    let id = room.at(d).spawn(0, &[5, 5, 5]).unwrap();
    room.pump(|_| true);
    let takeover = |departed: PeerId| {
        let mut m = vec![TAKEOVER];
        m.extend_from_slice(&departed.0.to_le_bytes());
        m
    };
    // d leaves b first: b waits for a, its successor.
    let now = room.now;
    room.at(b).handle_peer_left(now, d);
    room.pump(|_| true);
    assert_eq!(room.at(b).entity(id).unwrap().owner, d);
    // c claims d's entities at b: c is not the lowest id there, refused.
    room.inject(b, c, &takeover(d));
    assert_eq!(room.at(b).entity(id).unwrap().owner, d);
    // A claim naming the sender itself is reported.
    room.inject(b, c, &takeover(c));
    room.pump(|_| true);
    assert_eq!(
        room.reports(b),
        vec![(
            c,
            crate::Misbehavior::Rule("take-over of the sender's own entities")
        )]
    );
    // a sees d leave and announces; c still hears d and keeps the claim
    // until d leaves there too.
    room.at(a).handle_peer_left(now, d);
    room.pump(|_| true);
    assert_eq!(room.at(a).entity(id).unwrap().owner, a);
    assert_eq!(room.at(b).entity(id).unwrap().owner, a);
    assert_eq!(room.at(c).entity(id).unwrap().owner, d);
    room.at(c).handle_peer_left(now, d);
    room.pump(|_| true);
    assert_eq!(room.at(c).entity(id).unwrap().owner, a);
}
