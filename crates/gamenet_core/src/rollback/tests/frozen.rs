//! A player whose game loop stops (a hidden tab, a laptop lid) while its mesh
//! still answers heartbeats: a short hold stalls the others, a long one drops
//! it and it rejoins when it is back.

use super::*;

/// Runs until `net` reaches `frame` on node 0, holds node `i`'s game loop for
/// `hold`, then runs every node to the target.
fn hold(net: &mut Net, i: usize, frame: Frame, hold: Duration) {
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= frame
    });
    net.nodes[i].frozen = true;
    let until = net.now + hold;
    net.run(Duration::from_secs(400), |n| n.now >= until);
    net.nodes[i].frozen = false;
    net.run(Duration::from_secs(600), |n| n.all_done());
    net.assert_in_step();
}

#[test]
fn a_tab_held_for_three_seconds_stalls_the_others_and_resumes_in_step() {
    let mut net = Net::new(2, bad_link(41), 1_600);
    hold(&mut net, 1, 600, Duration::from_secs(3));
    let held = net.nodes[1].id;
    let other = &net.nodes[0];
    assert!(other.events.iter().any(|e| matches!(
        e,
        RollbackEvent::PeerInterrupted { peer } if *peer == held
    )));
    assert!(other.events.iter().any(|e| matches!(
        e,
        RollbackEvent::PeerResumed { peer } if *peer == held
    )));
    for n in &net.nodes {
        assert!(
            !n.events.iter().any(|e| matches!(
                e,
                RollbackEvent::Disconnected { .. } | RollbackEvent::Rejoining { .. }
            )),
            "{}: {:?}",
            n.id,
            n.events
        );
    }
}

#[test]
fn a_tab_held_for_twenty_seconds_is_dropped_and_rejoins_when_shown() {
    let mut net = Net::new(3, bad_link(42), 3_008);
    hold(&mut net, 2, 600, Duration::from_secs(20));
    let held = net.nodes[2].id;
    for n in &net.nodes[..2] {
        assert!(n.events.iter().any(|e| matches!(
            e,
            RollbackEvent::Disconnected { peer, .. } if *peer == held
        )));
        assert!(n.events.iter().any(|e| matches!(
            e,
            RollbackEvent::PlayerJoined { peer, slots, .. } if *peer == held && slots == &vec![2]
        )));
    }
    assert!(net.nodes[2].events.iter().any(|e| matches!(
        e,
        RollbackEvent::Rejoining {
            cause: RejoinCause::Partition
        }
    )));
    assert_eq!(net.nodes[2].session.local_slots(), vec![2]);
}

#[test]
fn the_lowest_id_held_for_twenty_seconds_rejoins_the_game_it_stalled() {
    let mut net = Net::new(2, bad_link(43), 3_008);
    hold(&mut net, 0, 600, Duration::from_secs(20));
    // The other could not play on alone (half, without the lowest id): it was
    // cut off, and took the returning player back.
    assert!(
        net.nodes[1]
            .events
            .iter()
            .any(|e| matches!(e, RollbackEvent::CutOff { .. }))
    );
    assert_eq!(net.nodes[0].session.local_slots(), vec![0]);
}

#[test]
fn of_two_the_higher_id_held_for_twenty_seconds_rejoins_and_the_game_goes_on_at_once() {
    let mut net = Net::new(2, bad_link(44), 3_008);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 600
    });
    net.nodes[1].frozen = true;
    let held_at = net.nodes[0].session.current_frame();
    let until = net.now + Duration::from_secs(20);
    net.run(Duration::from_secs(400), |n| n.now >= until);
    net.nodes[1].frozen = false;
    let shown = net.now;
    // Alone, it kept the game's pace (60 frames a second, not faster): the
    // held peer's frame, estimated on while it was silent, no longer counts.
    let ran = net.nodes[0].session.current_frame() - held_at;
    assert!(ran <= 20 * 60 + 60, "{ran} frames in 20 s");
    // The lowest id played on alone (half, with the lowest id, holds a
    // quorum); the held one rejoins it.
    let played_on = net.nodes[0].session.current_frame();
    net.run(Duration::from_secs(120), |n| {
        n.nodes[1].session.is_running() && n.nodes[1].session.confirmed_frame() > played_on + 60
    });
    let back = net.now - shown;
    assert!(
        back < Duration::from_secs(5),
        "back in step {back:?} after it was shown"
    );
    net.run(Duration::from_secs(600), |n| n.all_done());
    net.assert_in_step();
    for e in &net.nodes[1].events {
        assert!(
            !matches!(e, RollbackEvent::CutOff { .. }),
            "{:?}",
            net.nodes[1].events
        );
    }
}

#[test]
fn a_held_player_that_missed_one_players_drop_notice_is_told_again_when_it_reports() {
    let mut net = Net::new(3, bad_link(45), 3_008);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 600
    });
    let held = net.nodes[2].id;
    // Nothing from node 1 reaches node 2 from now until long after it is
    // back: node 2 hears that it was dropped from node 0 only.
    let blocked = std::rc::Rc::new(std::cell::Cell::new(true));
    let block = blocked.clone();
    net.nodes[1].outbox = Some(Box::new(move |to, _| to != held || !block.get()));
    net.nodes[2].frozen = true;
    let until = net.now + Duration::from_secs(20);
    net.run(Duration::from_secs(400), |n| n.now >= until);
    net.nodes[2].frozen = false;
    // Back in the game through node 0 alone, before node 1 is heard again.
    net.run(Duration::from_secs(60), |n| {
        n.nodes[2]
            .events
            .iter()
            .any(|e| matches!(e, RollbackEvent::Rejoining { .. }))
    });
    assert!(
        net.nodes[2]
            .events
            .iter()
            .any(|e| matches!(e, RollbackEvent::Rejoining { .. })),
        "{:?}",
        net.nodes[2].events
    );
    blocked.set(false);
    net.run(Duration::from_secs(600), |n| n.all_done());
    net.assert_in_step();
    assert_eq!(net.nodes[2].session.local_slots(), vec![2]);
}
