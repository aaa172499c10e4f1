//! Bevy apps through partitions that heal: a short one stalls both and they
//! resume in step; after a long one the lowest id has played on, and the other
//! app drops its frames and loads the survivor's state from a snapshot, under
//! the same peer id, and both end in step.

mod common;

use std::time::Duration;

use bevy_gamenet::test_app::TestNetwork;
use gamenet::PeerId;
use gamenet::rollback::{Checksum, RollbackEvent};

use common::{assert_no_desync, bad_link, confirmed, rollback_app, seen, stats};

/// Two apps play to frame 120, are cut apart for `outage`, heal, and play
/// until both confirm the same checksum of a frame past where they were.
fn through(outage: Duration) -> TestNetwork {
    let mut net = TestNetwork::new(bad_link(7));
    for id in 1..=2 {
        net.add_app(PeerId(id), |t| rollback_app(t, 2));
    }
    net.run_until(Duration::from_secs(10), |apps| {
        apps.iter()
            .all(|a| stats(a).is_some_and(|s| s.confirmed >= 120))
    });
    let (a, b) = (net.id(0), net.id(1));
    net.network().partition(a, b);
    net.run_for(outage);
    net.network().heal();
    let frame = stats(net.app(0)).map_or(0, |s| s.frame) / 16 * 16 + 160;
    let mut sums: Vec<Option<Checksum>> = vec![None; 2];
    net.run_until(Duration::from_secs(30), |apps| {
        for (sum, app) in sums.iter_mut().zip(apps) {
            if sum.is_none() {
                *sum = confirmed(app, frame);
            }
        }
        sums.iter().all(Option::is_some)
    });
    assert_eq!(sums[0], sums[1], "out of step at frame {frame}");
    for (i, app) in net.apps().iter().enumerate() {
        assert_no_desync(app, net.id(i));
    }
    net
}

fn count(net: &TestNetwork, i: usize, pred: impl Fn(&RollbackEvent) -> bool) -> usize {
    seen(net.app(i)).events.iter().filter(|e| pred(e)).count()
}

#[test]
fn a_three_second_partition_stalls_and_resumes_in_step() {
    let net = through(Duration::from_secs(3));
    for i in 0..2 {
        assert!(
            count(&net, i, |e| matches!(
                e,
                RollbackEvent::PeerInterrupted { .. }
            )) > 0
        );
        assert_eq!(
            count(&net, i, |e| matches!(
                e,
                RollbackEvent::Disconnected { .. } | RollbackEvent::Rejoining { .. }
            )),
            0
        );
    }
}

#[test]
fn after_a_fifteen_second_partition_the_second_app_rejoins_from_a_snapshot() {
    let net = through(Duration::from_secs(15));
    assert_eq!(
        count(&net, 0, |e| matches!(e, RollbackEvent::Disconnected { .. })),
        1
    );
    assert_eq!(
        count(&net, 0, |e| matches!(e, RollbackEvent::Rejoining { .. })),
        0
    );
    assert_eq!(
        count(&net, 1, |e| matches!(e, RollbackEvent::Rejoining { .. })),
        1
    );
    let socket = net
        .app(1)
        .world()
        .resource::<bevy_gamenet::rollback::RollbackSocket<u8>>();
    assert_eq!(socket.session().map(|s| s.local_slots()), Some(vec![1]));
}
