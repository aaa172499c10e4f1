//! Partitions that heal, on links that stay up (packets held, reliable ones
//! released when it ends): short ones stall and resume, long ones end with
//! one side's timeline and the other side rejoining it, under the same ids.

use super::*;

/// Runs to frame 600 on node 0, cuts `left` from `right` for `outage`, heals,
/// and runs every node to the target; asserts one timeline and in step.
fn partition(net: &mut Net, left: &[usize], right: &[usize], outage: Duration) {
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 600
    });
    for &l in left {
        for &r in right {
            let (a, b) = (net.nodes[l].id, net.nodes[r].id);
            net.links.partition(a, b);
        }
    }
    let until = net.now + outage;
    net.run(Duration::from_secs(400), |n| n.now >= until);
    let now = net.now;
    net.links.heal(now);
    net.run(Duration::from_secs(800), |n| n.all_done());
    net.assert_in_step();
    net.assert_one_timeline();
}

fn count(net: &Net, i: usize, pred: impl Fn(&RollbackEvent) -> bool) -> usize {
    net.nodes[i].events.iter().filter(|e| pred(e)).count()
}

#[test]
fn a_four_second_outage_stalls_and_resumes_without_anyone_leaving() {
    let mut net = Net::new(2, bad_link(51), 2_000);
    partition(&mut net, &[0], &[1], Duration::from_secs(4));
    for i in 0..2 {
        assert!(
            count(&net, i, |e| matches!(
                e,
                RollbackEvent::PeerInterrupted { .. }
            )) > 0
        );
        assert!(count(&net, i, |e| matches!(e, RollbackEvent::PeerResumed { .. })) > 0);
        let churn = count(&net, i, |e| {
            matches!(
                e,
                RollbackEvent::Disconnected { .. }
                    | RollbackEvent::CutOff { .. }
                    | RollbackEvent::Rejoining { .. }
            )
        });
        assert_eq!(churn, 0, "{:?}", net.nodes[i].events);
    }
}

#[test]
fn after_a_fifteen_second_outage_the_lowest_id_plays_on_and_the_other_rejoins() {
    let mut net = Net::new(2, bad_link(52), 3_008);
    partition(&mut net, &[0], &[1], Duration::from_secs(15));
    let b = net.nodes[1].id;
    assert_eq!(
        count(
            &net,
            0,
            |e| matches!(e, RollbackEvent::Disconnected { peer, .. } if *peer == b)
        ),
        1
    );
    assert_eq!(
        count(
            &net,
            0,
            |e| matches!(e, RollbackEvent::PlayerJoined { peer, .. } if *peer == b)
        ),
        1
    );
    assert_eq!(
        count(&net, 1, |e| matches!(e, RollbackEvent::CutOff { .. })),
        1
    );
    assert_eq!(
        count(&net, 1, |e| matches!(e, RollbackEvent::Rejoining { .. })),
        1
    );
    assert_eq!(net.nodes[1].session.local_slots(), vec![1]);
}

#[test]
fn a_three_player_split_heals_into_the_majoritys_timeline() {
    let mut net = Net::new(3, bad_link(53), 3_008);
    partition(&mut net, &[0], &[1, 2], Duration::from_secs(15));
    // The lowest id was alone: it stalled and rejoined the majority.
    assert_eq!(
        count(&net, 0, |e| matches!(e, RollbackEvent::Rejoining { .. })),
        1
    );
    for i in [1, 2] {
        assert_eq!(
            count(&net, i, |e| matches!(e, RollbackEvent::Rejoining { .. })),
            0
        );
    }
    assert_eq!(net.nodes[0].session.local_slots(), vec![0]);
    assert_eq!(net.nodes[1].session.host(), Some(net.nodes[0].id));
}

#[test]
fn four_players_split_two_and_two_heal_toward_the_lowest_id() {
    let mut net = Net::new(4, bad_link(54), 3_008);
    partition(&mut net, &[0, 1], &[2, 3], Duration::from_secs(15));
    for i in [0, 1] {
        assert_eq!(
            count(&net, i, |e| matches!(e, RollbackEvent::Rejoining { .. })),
            0
        );
    }
    for i in [2, 3] {
        assert_eq!(
            count(&net, i, |e| matches!(e, RollbackEvent::Rejoining { .. })),
            1,
            "{:?}",
            net.nodes[i].events
        );
        assert_eq!(net.nodes[i].session.local_slots(), vec![i]);
    }
}

#[test]
fn four_players_all_cut_from_each_other_stall_and_resume_without_rejoining() {
    let mut net = Net::new(4, bad_link(55), 3_008);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 600
    });
    let ids: Vec<PeerId> = net.nodes.iter().map(|n| n.id).collect();
    for (i, &a) in ids.iter().enumerate() {
        for &b in &ids[i + 1..] {
            net.links.partition(a, b);
        }
    }
    let until = net.now + Duration::from_secs(15);
    net.run(Duration::from_secs(400), |n| n.now >= until);
    // Nobody held a quorum: nobody played on.
    for i in 0..4 {
        assert_eq!(
            count(&net, i, |e| matches!(e, RollbackEvent::CutOff { .. })),
            1
        );
        assert_eq!(
            count(&net, i, |e| matches!(e, RollbackEvent::Disconnected { .. })),
            0
        );
    }
    let now = net.now;
    net.links.heal(now);
    net.run(Duration::from_secs(800), |n| n.all_done());
    net.assert_in_step();
    net.assert_one_timeline();
    for i in 0..4 {
        assert_eq!(
            count(&net, i, |e| matches!(e, RollbackEvent::Rejoining { .. })),
            0,
            "{:?}",
            net.nodes[i].events
        );
        assert!(!net.nodes[i].session.is_cut_off());
    }
}

/// The lowest id is cut off from the other two, which play on; when the
/// split heals, its link to the new host comes back first and it rejoins
/// there; its link to the third player comes back only after that player
/// took the host's admit of it, while it still waits for the snapshot, so
/// its intro as a joiner reaches a player that counts it a member again. That
/// intro is the request the admit answered, not a new one: nobody puts the
/// rejoined player out again.
#[test]
fn a_rejoiners_intro_that_arrives_after_its_admit_does_not_put_it_out() {
    let mut net = Net::new(3, bad_link(56), 3_008);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 600
    });
    let (a, b, c) = (net.nodes[0].id, net.nodes[1].id, net.nodes[2].id);
    net.links.partition(a, b);
    net.links.partition(a, c);
    let until = net.now + Duration::from_secs(15);
    net.run(Duration::from_secs(400), |n| n.now >= until);
    let now = net.now;
    net.links.heal_pair(now, a, b);
    net.run(Duration::from_secs(400), |n| {
        n.nodes[0].session.is_joining()
    });
    // The host's snapshot waits; its admit reaches c.
    net.links.hold(b, a);
    net.run(Duration::from_secs(400), |n| reported_joined(n, 2, a));
    let now = net.now;
    net.links.heal_pair(now, a, c);
    let until = net.now + Duration::from_secs(2);
    net.run(Duration::from_secs(400), |n| n.now >= until);
    assert!(net.nodes[0].session.is_joining(), "a got its snapshot");
    let now = net.now;
    net.links.heal_pair(now, a, b);
    net.run(Duration::from_secs(800), |n| n.all_done());
    net.assert_in_step();
    net.assert_one_timeline();
    for i in 0..3 {
        let members: BTreeSet<PeerId> = net.nodes[i].session.members().collect();
        let others: BTreeSet<PeerId> = [a, b, c]
            .into_iter()
            .filter(|&p| p != net.nodes[i].id)
            .collect();
        assert_eq!(members, others, "node {i}: {:?}", net.nodes[i].events);
    }
    assert_eq!(
        count(&net, 0, |e| matches!(e, RollbackEvent::Rejoining { .. })),
        1
    );
    // Nobody but a left, once, and nobody but a rejoined.
    for i in 0..3 {
        let left: Vec<PeerId> = net.nodes[i]
            .events
            .iter()
            .filter_map(|e| match e {
                RollbackEvent::Disconnected { peer, .. } => Some(*peer),
                _ => None,
            })
            .collect();
        let want = if i == 0 { vec![] } else { vec![a] };
        assert_eq!(left, want, "node {i}: {:?}", net.nodes[i].events);
    }
    for i in [1, 2] {
        assert_eq!(
            count(&net, i, |e| matches!(e, RollbackEvent::Rejoining { .. })),
            0,
            "node {i}: {:?}",
            net.nodes[i].events
        );
    }
}

/// Whether node `i` applied an admit of `peer`.
fn reported_joined(net: &Net, i: usize, peer: PeerId) -> bool {
    net.nodes[i]
        .events
        .iter()
        .any(|e| matches!(e, RollbackEvent::PlayerJoined { peer: p, .. } if *p == peer))
}
