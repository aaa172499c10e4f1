//! Bevy apps playing through the rollback plugin over lossy, jittery links
//! stay in step: every app confirms the same checksum of the game state at a
//! frame, none sees a desync, and mispredictions were rolled back.

mod common;

use std::time::Duration;

use bevy_gamenet::test_app::TestNetwork;
use gamenet::PeerId;
use gamenet::rollback::Checksum;

use common::{assert_no_desync, bad_link, confirmed, rollback_app, stats};

/// The frame whose confirmed checksum every app must agree on: a checksum
/// frame (every 16th), 2.7 s in at 60 Hz.
const TARGET: u32 = 160;

/// `players` apps play until each confirms [`TARGET`].
fn in_step(players: usize, seed: u64) {
    let mut net = TestNetwork::new(bad_link(seed));
    for id in 1..=players {
        net.add_app(PeerId(id as u128), |t| rollback_app(t, players));
    }
    let mut sums: Vec<Option<Checksum>> = vec![None; players];
    net.run_until(Duration::from_secs(8), |apps| {
        for (sum, app) in sums.iter_mut().zip(apps) {
            if sum.is_none() {
                *sum = confirmed(app, TARGET);
            }
        }
        sums.iter().all(Option::is_some)
    });
    let first = sums[0].clone();
    for (i, sum) in sums.iter().enumerate() {
        assert_eq!(*sum, first, "{} disagrees at frame {TARGET}", net.id(i));
    }
    for (i, app) in net.apps().iter().enumerate() {
        assert_no_desync(app, net.id(i));
        let s = stats(app).expect("started");
        assert!(s.frame > TARGET, "{}: {s:?}", net.id(i));
        assert!(
            s.rollbacks > 0 && s.checksums_matched > 0,
            "{}: {s:?}",
            net.id(i)
        );
    }
}

#[test]
fn two_apps() {
    in_step(2, 3);
}

#[test]
fn three_apps() {
    in_step(3, 5);
}
