//! Two and three peers stay in step through a rollback session over links
//! with latency, jitter, loss and duplication: every peer confirms the same
//! state and checksum at the target frame, and the checksums they exchanged
//! on the way matched.

mod common;

use common::bad_link;
use common::game::{LIMIT, Player, assert_in_step, game};

/// A checksum frame (a multiple of the default checksum interval).
const TARGET: u32 = 320;

fn play(players: usize, seed: u64) {
    let mut sim = game(players, bad_link(seed), TARGET);
    sim.drive(LIMIT, |players| players.iter().all(Player::done));
    assert_in_step(&sim.peers);
    let rollbacks: u64 = sim
        .peers
        .iter()
        .map(|p| p.net.session().map_or(0, |s| s.stats().rollbacks))
        .sum();
    assert!(rollbacks > 0, "a bad link must cause rollbacks");
}

#[test]
fn two_peers_stay_in_step_over_a_bad_link() {
    play(2, 1);
}

#[test]
fn three_peers_stay_in_step_over_a_bad_link() {
    play(3, 2);
}
