//! Replication through the Bevy plugin converges after an owner leaves: the
//! apps that remain agree that its entities passed to the lowest remaining
//! id, the new owner moves them, and every app ends with the same entities
//! and values.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bevy_app::{App, Startup};
use bevy_ecs::prelude::*;
use bevy_gamenet::replication::{NetEntity, Remote, Replicated, ReplicationApp, ReplicationPlugin};
use bevy_gamenet::test_app::TestNetwork;
use gamenet::replication::{NetId, ReplicationConfig};
use gamenet::{ConditionerConfig, MemoryTransport, PeerId};

use common::Ball;

/// An app replicating [`Ball`]s, spawning `balls` as its own.
fn replica(transport: MemoryTransport, balls: Vec<Ball>) -> App {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::memory(
        transport,
        ReplicationConfig::default(),
    ))
    .replicate::<Ball>()
    .add_systems(Startup, move |mut commands: Commands| {
        for ball in &balls {
            commands.spawn((*ball, Replicated));
        }
    });
    app
}

/// Every ball an app shows, by id, with its owner (`me` for its own).
fn balls(app: &mut App, me: PeerId) -> BTreeMap<NetId, (PeerId, Ball)> {
    let world = app.world_mut();
    let mut q = world.query::<(&NetEntity, &Ball, Option<&Remote>)>();
    q.iter(world)
        .map(|(id, ball, remote)| (id.0, (remote.map_or(me, |r| r.owner), *ball)))
        .collect()
}

/// The apps, with their ids, all show the same `n` balls.
fn agree(apps: &mut [App], ids: &[PeerId], n: usize) -> bool {
    let seen: Vec<_> = apps
        .iter_mut()
        .zip(ids)
        .map(|(app, &id)| balls(app, id))
        .collect();
    seen[0].len() == n && seen.iter().all(|b| *b == seen[0])
}

#[test]
fn entities_of_an_owner_that_leaves_pass_on_and_converge() {
    let mut net = TestNetwork::new(ConditionerConfig {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(10),
        loss: 0.05,
        duplicate: 0.02,
        seed: 11,
    });
    // Peer 1 (the lowest id, the one to leave) owns two balls, peer 3 one.
    let ball = |x, y| Ball { x, y };
    net.add_app(PeerId(1), |t| {
        replica(t, vec![ball(100, 200), ball(101, 200)])
    });
    net.add_app(PeerId(2), |t| replica(t, Vec::new()));
    net.add_app(PeerId(3), |t| replica(t, vec![ball(7, 7)]));
    let limit = Duration::from_secs(6);
    let ids = [PeerId(1), PeerId(2), PeerId(3)];
    net.run_until(limit, |apps| agree(apps, &ids, 3));
    let hosted: Vec<NetId> = balls(net.app_mut(0), PeerId(1))
        .into_iter()
        .filter(|(_, (owner, _))| *owner == PeerId(1))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(hosted.len(), 2);

    drop(net.remove_app(0));
    let ids = [PeerId(2), PeerId(3)];
    // Killed without a word: the others find out after the mesh's 10 s
    // disconnect timeout.
    net.run_until(limit + Duration::from_secs(10), |apps| {
        agree(apps, &ids, 3)
            && hosted
                .iter()
                .all(|id| balls(&mut apps[1], ids[1])[id].0 == PeerId(2))
    });

    // The new owner moves what it took over, peer 3 its own; all follow.
    let world = net.app_mut(0).world_mut();
    let mut q =
        world.query_filtered::<(&NetEntity, &mut Ball), (With<Replicated>, Without<Remote>)>();
    let mut moved = 0;
    for (id, mut ball) in q.iter_mut(world) {
        let i = hosted.iter().position(|h| *h == id.0).expect("took over");
        *ball = Ball {
            x: 1000 + i as u32,
            y: 2000,
        };
        moved += 1;
    }
    assert_eq!(moved, 2);
    let world = net.app_mut(1).world_mut();
    let mut q = world.query_filtered::<&mut Ball, (With<Replicated>, Without<Remote>)>();
    for mut ball in q.iter_mut(world) {
        *ball = Ball { x: 8, y: 9 };
    }
    net.run_until(limit, |apps| {
        agree(apps, &ids, 3) && balls(&mut apps[1], ids[1])[&hosted[1]].1.x == 1001
    });

    let end = balls(net.app_mut(1), PeerId(3));
    let own: Vec<_> = end.values().filter(|(o, _)| *o == PeerId(3)).collect();
    assert_eq!(own, [&(PeerId(3), ball(8, 9))]);
    for (i, id) in hosted.iter().enumerate() {
        assert_eq!(end[id], (PeerId(2), ball(1000 + i as u32, 2000)));
    }
}
