//! Apps that register other types never link: the handshake carries the
//! schema of every registered rollback and replication type, and a
//! mismatch is a `HandshakeFailed` naming the type, on both sides.

mod common;

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::replication::{NetMessage, ReplicationApp, ReplicationPlugin};
use bevy_gamenet::rollback::RollbackApp;
use bevy_gamenet::test_app::TestNetwork;
use bevy_gamenet::{HandshakeFailed, PeerJoined};
use gamenet::replication::ReplicationConfig;
use gamenet::{HandshakeError, MemoryTransport, PeerId};
use serde::{Deserialize, Serialize};

use common::{Ball, bad_link, rollback_app};

/// A game event one build sends.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Chat(String);

/// The event another build registers in its place.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Score(u32);

/// A component only one rollback build rolls back.
#[derive(Component, Clone, Copy, Hash, PartialEq, Eq, Debug, Serialize, Deserialize)]
struct Health(u8);

/// What an app's mesh reported.
#[derive(Resource, Default)]
struct Heard {
    joined: Vec<PeerId>,
    failed: Vec<(PeerId, HandshakeError)>,
}

fn listen(
    mut heard: ResMut<Heard>,
    mut joined: MessageReader<PeerJoined>,
    mut failed: MessageReader<HandshakeFailed>,
) {
    heard.joined.extend(joined.read().map(|m| m.0));
    heard
        .failed
        .extend(failed.read().map(|m| (m.peer, m.error.clone())));
}

fn heard(app: &App) -> &Heard {
    app.world().resource::<Heard>()
}

/// An app replicating [`Ball`]s and, after them, the event `M`.
fn replica<M: NetMessage>(transport: MemoryTransport) -> App {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::memory(
        transport,
        ReplicationConfig::default(),
    ))
    .replicate::<Ball>()
    .replicate_message::<M>()
    .init_resource::<Heard>()
    .add_systems(bevy_app::Update, listen);
    app
}

/// The error an app got from `peer`, as text.
fn error_from(app: &App, peer: PeerId) -> Option<String> {
    heard(app)
        .failed
        .iter()
        .find(|(p, _)| *p == peer)
        .map(|(_, e)| e.to_string())
}

#[test]
fn replication_apps_registering_other_types_fail_the_handshake_naming_them() {
    let mut net = TestNetwork::new(bad_link(3));
    let ids = [PeerId(1), PeerId(2), PeerId(3)];
    // Peers 1 and 3 run one build; peer 2 registers `Score` where they
    // register `Chat`.
    net.add_app(ids[0], replica::<Chat>);
    net.add_app(ids[1], replica::<Score>);
    net.add_app(ids[2], replica::<Chat>);
    let limit = Duration::from_secs(10);
    net.run_until(limit, |apps| {
        heard(&apps[0]).joined.contains(&ids[2])
            && heard(&apps[2]).joined.contains(&ids[0])
            && heard(&apps[1]).failed.len() == 2
            && heard(&apps[0]).failed.len() == 1
            && heard(&apps[2]).failed.len() == 1
    });
    net.run_for(Duration::from_secs(1));

    let of_1 = error_from(net.app(0), ids[1]).expect("peer 1 refused peer 2");
    let of_2 = error_from(net.app(1), ids[0]).expect("peer 2 refused peer 1");
    println!("RESULT peer 1 about peer 2: {of_1}");
    println!("RESULT peer 2 about peer 1: {of_2}");
    for (app, theirs) in [(0, "Score"), (2, "Score")] {
        let error = error_from(net.app(app), ids[1]).expect("refused peer 2");
        assert!(
            error.contains("schema_mismatch::Chat") && !error.contains(theirs),
            "names its own type at the first difference: {error}"
        );
        assert!(error.contains("#1"), "the second entry: {error}");
    }
    for peer in [ids[0], ids[2]] {
        let error = error_from(net.app(1), peer).expect("refused by peer 2");
        assert!(error.contains("schema_mismatch::Score"), "{error}");
    }
    // The two builds never linked; the matching ones did, and play on.
    assert!(heard(net.app(1)).joined.is_empty());
    assert!(!heard(net.app(0)).joined.contains(&ids[1]));
    assert!(!heard(net.app(2)).joined.contains(&ids[1]));
    assert!(
        heard(net.app(0))
            .failed
            .iter()
            .all(|(peer, _)| *peer == ids[1])
    );
}

#[test]
fn rollback_apps_rolling_back_other_components_fail_the_handshake_naming_them() {
    let mut net = TestNetwork::new(bad_link(4));
    let ids = [PeerId(1), PeerId(2)];
    net.add_app(ids[0], |t| {
        let mut app = rollback_app(t, 2);
        app.init_resource::<Heard>()
            .add_systems(bevy_app::Update, listen);
        app
    });
    net.add_app(ids[1], |t| {
        let mut app = rollback_app(t, 2);
        app.rollback_component_with_serde::<Health>()
            .init_resource::<Heard>()
            .add_systems(bevy_app::Update, listen);
        app
    });
    net.run_until(Duration::from_secs(10), |apps| {
        apps.iter().all(|app| !heard(app).failed.is_empty())
    });
    let short = error_from(net.app(0), ids[1]).expect("refused");
    let long = error_from(net.app(1), ids[0]).expect("refused");
    println!("RESULT without Health: {short}");
    println!("RESULT with Health: {long}");
    assert!(long.contains("schema_mismatch::Health"), "{long}");
    assert!(short.contains("we register no more types"), "{short}");
    assert!(heard(net.app(0)).joined.is_empty() && heard(net.app(1)).joined.is_empty());
    assert!(
        common::stats(net.app(0)).is_none(),
        "the game never started"
    );
}
