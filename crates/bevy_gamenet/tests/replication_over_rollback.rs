//! Replication over the rollback session's mesh, on the simulated network:
//! an object one app owns shows on the other, follows its owner's changes,
//! while the rollback session plays on in step.

mod common;

use std::time::Duration;

use bevy_app::{App, Startup};
use bevy_ecs::prelude::*;
use bevy_gamenet::replication::{Remote, Replicated, ReplicationApp, ReplicationPlugin};
use bevy_gamenet::test_app::TestNetwork;
use gamenet::PeerId;
use gamenet::replication::ReplicationConfig;

use common::{Ball, assert_no_desync, bad_link, confirmed, rollback_app};

/// The ball `app` shows as another peer's, with its owner.
fn remote_ball(app: &mut App) -> Option<(PeerId, Ball)> {
    let world = app.world_mut();
    let mut q = world.query::<(&Ball, &Remote)>();
    q.iter(world).next().map(|(b, r)| (r.owner, *b))
}

#[test]
fn an_object_replicated_over_the_rollback_mesh_follows_its_owner() {
    let mut net = TestNetwork::new(bad_link(13));
    for id in 1..=2 {
        net.add_app(PeerId(id), |t| {
            let mut app = rollback_app(t, 2);
            app.add_plugins(ReplicationPlugin::over_rollback::<u8>(
                ReplicationConfig::default(),
            ))
            .replicate::<Ball>();
            if id == 1 {
                app.add_systems(Startup, |mut commands: Commands| {
                    commands.spawn((Ball { x: 1, y: 2 }, Replicated));
                });
            }
            app
        });
    }
    let limit = Duration::from_secs(4);
    net.run_until(limit, |apps| {
        remote_ball(&mut apps[1]) == Some((PeerId(1), Ball { x: 1, y: 2 }))
    });

    let world = net.app_mut(0).world_mut();
    let mut q = world.query_filtered::<&mut Ball, With<Replicated>>();
    *q.single_mut(world).expect("one ball") = Ball { x: 40, y: 2 };
    net.run_until(limit, |apps| {
        remote_ball(&mut apps[1]).is_some_and(|(_, b)| b.x == 40)
    });
    assert!(
        remote_ball(net.app_mut(0)).is_none(),
        "the owner's ball is its own"
    );

    // The session plays on in step.
    let target = common::stats(net.app(0))
        .unwrap()
        .frame
        .next_multiple_of(16)
        + 16;
    let mut sums = [None, None];
    net.run_until(limit, |apps| {
        for (sum, app) in sums.iter_mut().zip(apps.iter()) {
            if sum.is_none() {
                *sum = confirmed(app, target);
            }
        }
        sums.iter().all(Option::is_some)
    });
    assert_eq!(sums[0], sums[1], "the apps disagree at {target}");
    for i in 0..2 {
        assert_no_desync(net.app(i), net.id(i));
    }
}
