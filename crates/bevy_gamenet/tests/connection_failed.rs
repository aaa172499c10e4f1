//! A connection that cannot be made is a message the game can show, never
//! only a log line: a mesh that cannot be built, and a signaling server that
//! cannot be reached (a closed port on this machine).

use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;

/// Updates `app` until it writes a [`ConnectionFailed`], for up to `limit`.
fn failure(app: &mut App, limit: Duration) -> Option<ConnectionFailed> {
    let start = Instant::now();
    while start.elapsed() < limit {
        app.update();
        let mut messages = app.world_mut().resource_mut::<Messages<ConnectionFailed>>();
        if let Some(failed) = messages.drain().next() {
            return Some(failed);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

#[test]
fn a_mesh_that_cannot_be_built_is_reported() {
    // No ICE server set: gamenet never falls back on public hosts.
    let builder = PeerMesh::builder("ws://127.0.0.1:9/room");
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::connect(
        builder,
        ReplicationConfig::default(),
    ));
    app.finish();
    let failed = failure(&mut app, Duration::from_secs(1)).expect("reported");
    println!("RESULT {}", failed.error);
    assert!(
        failed.error.starts_with("replication: could not connect"),
        "{}",
        failed.error
    );
    assert!(failed.error.contains("ICE"), "{}", failed.error);
}

#[test]
fn an_unreachable_signaling_server_is_reported() {
    // Port 9 (discard) on loopback: nothing listens, the connection is refused.
    let builder = PeerMesh::builder("ws://127.0.0.1:9/room")
        .ice_server(IceServer::none())
        .signaling_attempts(Some(1));
    let mut app = App::new();
    app.add_plugins(GamenetPlugin::connect(builder));
    let failed = failure(&mut app, Duration::from_secs(20)).expect("reported");
    println!("RESULT {}", failed.error);
    assert!(
        failed.error.contains("the connection ended"),
        "{}",
        failed.error
    );
    assert!(failed.error.contains("signaling"), "{}", failed.error);
}

#[test]
fn a_server_that_cannot_be_reached_for_ice_servers_is_reported() {
    // The one plugin asks the server for its ICE servers before connecting.
    let mut app = App::new();
    app.add_plugins(
        GamenetPlugin::server("ws://127.0.0.1:9")
            .room(Room::Named("room".into()))
            .rollback::<u8>(RollbackConfig::default())
            .replication(ReplicationConfig::default()),
    );
    app.finish();
    let failed = failure(&mut app, Duration::from_secs(20)).expect("reported");
    println!("RESULT {}", failed.error);
    assert!(failed.error.contains("ICE servers"), "{}", failed.error);
    assert!(
        failed.error.contains("cannot be reached"),
        "{}",
        failed.error
    );
    assert!(!app.world().contains_resource::<RollbackSocket<u8>>());
}
