//! Peers over a bad link stay in step: with prediction, in lockstep, and
//! when one starts late (time sync).

use super::*;

fn run_in_step(players: usize, seed: u64) {
    let mut net = Net::new(players, bad_link(seed), 10_000);
    net.run(Duration::from_secs(400), |n| n.all_done());
    net.assert_in_step();
    for n in &net.nodes {
        assert!(
            n.session.stats().rollbacks > 0,
            "a bad link must cause rollbacks"
        );
    }
}

#[test]
fn two_peers_stay_in_step_over_a_bad_link() {
    run_in_step(2, 1);
}

#[test]
fn three_peers_stay_in_step_over_a_bad_link() {
    run_in_step(3, 2);
}

#[test]
fn four_peers_stay_in_step_over_a_bad_link() {
    run_in_step(4, 3);
}

#[test]
fn lockstep_and_a_changed_input_delay_stay_in_step() {
    let mut net = Net::new(2, bad_link(8), 2_000);
    for n in &mut net.nodes {
        n.session.config.prediction_window = 0;
    }
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 500
    });
    net.nodes[0].session.set_input_delay(5);
    net.nodes[1].session.set_input_delay(0);
    net.run(Duration::from_secs(300), |n| n.all_done());
    net.assert_in_step();
    for n in &net.nodes {
        assert_eq!(n.session.stats().rollbacks, 0, "lockstep never rolls back");
    }
}

#[test]
fn time_sync_brings_a_late_starter_into_step() {
    let mut net = Net::new(2, bad_link(10), 3_008);
    // Peer 1 starts a second late: peer 0 runs into its prediction window
    // and waits; then the session must close the gap by itself.
    net.nodes[1].stop_at = Some(0);
    let release = net.now + Duration::from_secs(1);
    net.run(Duration::from_secs(100), |n| n.now >= release);
    assert_eq!(net.nodes[1].session.current_frame(), 0);
    net.nodes[1].stop_at = None;
    let mut widest_late_gap = 0i64;
    net.run(Duration::from_secs(200), |n| {
        let (a, b) = (
            n.nodes[0].session.current_frame() as i64,
            n.nodes[1].session.current_frame() as i64,
        );
        if a.min(b) > 1_000 {
            widest_late_gap = widest_late_gap.max((a - b).abs());
        }
        n.all_done()
    });
    net.assert_in_step();
    println!("widest gap after frame 1000: {widest_late_gap} frames");
    assert!(
        widest_late_gap <= 4,
        "peers stay within 4 frames: {widest_late_gap}"
    );
    for n in &net.nodes {
        let ahead = n.session.stats().frames_ahead;
        assert!(ahead.abs() < 2.0, "{}: {ahead} frames ahead", n.id);
    }
}
