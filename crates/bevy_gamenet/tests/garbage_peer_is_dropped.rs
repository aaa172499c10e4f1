//! A peer that sends bytes the mesh cannot decode is dropped by the apps it
//! sent them to, its slot disconnected, and they play on in step.

mod common;

use std::time::Duration;

use bevy_gamenet::test_app::TestNetwork;
use gamenet::rollback::{Checksum, RollbackEvent};
use gamenet::{Channel, LeaveReason, PeerId};

use common::{assert_no_desync, bad_link, confirmed, rollback_app, seen, stats};

const LIAR: PeerId = PeerId(3);

#[test]
fn garbage_gets_its_sender_dropped_and_the_others_play_on() {
    let mut net = TestNetwork::new(bad_link(9));
    for id in 1..=3 {
        net.add_app(PeerId(id), |t| rollback_app(t, 3));
    }
    net.run_until(Duration::from_secs(4), |apps| {
        apps.iter()
            .all(|a| stats(a).is_some_and(|s| s.confirmed > 60))
    });
    for to in [PeerId(1), PeerId(2)] {
        net.network()
            .inject(LIAR, to, Channel::Reliable, vec![0xff; 40]);
    }

    // A checksum frame well after the drop, which both honest apps confirm.
    let target = stats(net.app(0)).unwrap().frame.next_multiple_of(16) + 64;
    let mut sums: [Option<Checksum>; 2] = [None, None];
    net.run_until(Duration::from_secs(4), |apps| {
        for (sum, app) in sums.iter_mut().zip(apps) {
            if sum.is_none() {
                *sum = confirmed(app, target);
            }
        }
        sums.iter().all(Option::is_some)
    });
    assert_eq!(sums[0], sums[1], "the honest apps disagree at {target}");

    for i in 0..2 {
        let (app, id) = (net.app(i), net.id(i));
        let seen = seen(app);
        let left: Vec<_> = seen.left.iter().filter(|l| l.peer == LIAR).collect();
        assert!(
            matches!(left[..], [l] if matches!(l.reason, LeaveReason::ProtocolViolation(_))),
            "{id}: {:?}",
            seen.left
        );
        assert!(
            seen.events
                .iter()
                .any(|e| matches!(e, RollbackEvent::Disconnected { peer, .. } if *peer == LIAR)),
            "{id}: {:?}",
            seen.events
        );
        assert!(
            seen.left.iter().all(|l| l.peer == LIAR),
            "{id}: {:?}",
            seen.left
        );
        assert_no_desync(app, id);
    }
}
