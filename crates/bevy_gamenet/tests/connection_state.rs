//! The [`Connection`] state follows the mesh: connecting until a peer links,
//! playing, reconnecting while a link is silent (a partition) and playing
//! again when it heals, connecting once the last peer is gone, and failed
//! when the connection cannot be made; in a replication app and in a
//! rollback app.

mod common;

use std::time::Duration;

use bevy_app::App;
use bevy_gamenet::prelude::*;
use bevy_gamenet::test_app::TestNetwork;
use bevy_state::app::StatesPlugin;
use bevy_state::state::State;
use gamenet::{ConditionerConfig, MemoryTransport};

/// An app with Bevy's states, replicating over `transport`.
fn app(transport: MemoryTransport) -> App {
    let mut app = App::new();
    app.add_plugins((
        StatesPlugin,
        ReplicationPlugin::memory(transport, ReplicationConfig::default()),
    ));
    app
}

fn state(app: &App) -> Connection {
    **app.world().resource::<State<Connection>>()
}

/// Steps `net` for `d`, appending each app's state to `seen` when it changes.
fn watch(net: &mut TestNetwork, seen: &mut [Vec<Connection>], d: Duration) {
    let end = net.network().now() + d;
    while net.network().now() < end {
        net.step();
        for (i, seen) in seen.iter_mut().enumerate() {
            let now = state(net.app(i));
            if seen.last() != Some(&now) {
                seen.push(now);
            }
        }
    }
}

#[test]
fn the_state_follows_links_through_a_partition_and_a_departure() {
    let mut net = TestNetwork::new(ConditionerConfig {
        latency: Duration::from_millis(20),
        ..ConditionerConfig::default()
    });
    for id in 1..=2 {
        net.add_app(PeerId(id), app);
    }
    let mut seen = vec![vec![Connection::Connecting]; 2];
    watch(&mut net, &mut seen, Duration::from_secs(1));
    let (a, b) = (net.id(0), net.id(1));
    net.network().partition(a, b);
    // Past the interrupt timeout (1 s), short of the disconnect timeout.
    watch(&mut net, &mut seen, Duration::from_secs(3));
    net.network().heal();
    watch(&mut net, &mut seen, Duration::from_secs(1));
    let healed = seen.clone();
    // b goes without a word: a finds out at the disconnect timeout (10 s).
    drop(net.remove_app(1));
    seen.truncate(1);
    watch(&mut net, &mut seen, Duration::from_secs(12));
    println!("RESULT healed: {healed:?}; a after b went: {:?}", seen[0]);
    use Connection::{Connecting, Playing, Reconnecting};
    for states in &healed {
        assert_eq!(states, &[Connecting, Playing, Reconnecting, Playing]);
    }
    assert_eq!(
        seen[0],
        [
            Connecting,
            Playing,
            Reconnecting,
            Playing,
            Reconnecting,
            Connecting
        ]
    );
}

#[test]
fn a_rollback_app_keeps_the_state_too() {
    let mut net = TestNetwork::new(ConditionerConfig::default());
    for id in 1..=2 {
        net.add_app(PeerId(id), |t| {
            let mut app = common::rollback_app(t, 2);
            app.add_plugins(StatesPlugin);
            app
        });
    }
    let mut seen = vec![vec![Connection::Connecting]; 2];
    watch(&mut net, &mut seen, Duration::from_secs(1));
    for states in &seen {
        assert_eq!(states, &[Connection::Connecting, Connection::Playing]);
    }
}

/// Updates `app` until its state is [`Connection::Failed`], for up to
/// `limit`; returns the [`ConnectionFailed`] messages written meanwhile.
fn until_failed(app: &mut App, limit: Duration) -> Vec<ConnectionFailed> {
    let start = std::time::Instant::now();
    let mut failures = Vec::new();
    while state(app) != Connection::Failed {
        assert!(start.elapsed() < limit, "not failed after {limit:?}");
        app.update();
        let mut messages = app
            .world_mut()
            .resource_mut::<bevy_ecs::message::Messages<ConnectionFailed>>();
        failures.extend(messages.drain());
        std::thread::sleep(Duration::from_millis(10));
    }
    failures
}

#[test]
fn a_bad_server_url_ends_failed_with_a_message() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let mut app = App::new();
    app.add_plugins((
        StatesPlugin,
        GamenetPlugin::connect(
            PeerMesh::builder("ws://127.0.0.1:9/room")
                .ice_server(IceServer::none())
                .signaling_attempts(Some(1)),
        ),
    ));
    app.finish();
    let failures = until_failed(&mut app, Duration::from_secs(20));
    println!("RESULT failed: {failures:?}");
    assert!(
        failures.iter().any(|f| f.error.contains("signaling")),
        "{failures:?}"
    );
}

#[test]
fn a_mesh_that_cannot_be_built_ends_failed_with_a_message() {
    // No ICE server set: the mesh cannot be built.
    let mut app = App::new();
    app.add_plugins((
        StatesPlugin,
        ReplicationPlugin::connect(
            PeerMesh::builder("ws://127.0.0.1:9/room"),
            ReplicationConfig::default(),
        ),
    ));
    app.finish();
    let failures = until_failed(&mut app, Duration::from_secs(1));
    assert!(
        failures.iter().any(|f| f.error.contains("ICE")),
        "{failures:?}"
    );
}
