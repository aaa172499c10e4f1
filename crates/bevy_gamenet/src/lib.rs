//! Bevy plugin for [`gamenet`]: peer-to-peer multiplayer over WebRTC data
//! channels, natively and in the browser.
//!
//! [`GamenetPlugin`] is the one plugin a game adds. It takes where to play (a
//! `gamenet-signaling` server and a [`Room`]: a name, quick-match or a lobby's
//! join code) and what to run there: the mesh alone ([`MeshSocket`]),
//! rollback ([`GamenetPlugin::rollback`]), replication
//! ([`GamenetPlugin::replication`]) or both on one connection. The ICE
//! servers come from the server, and are fetched again while the game runs.
//!
//! The mesh's events come as Bevy messages: [`PeerJoined`], [`PeerLeft`],
//! [`HandshakeFailed`] and [`MessageReceived`]. Systems of a mesh-only game
//! send through `ResMut<MeshSocket>`, which dereferences to
//! [`gamenet::PeerMesh`].
//!
//! Rollback game logic runs in [`rollback::RollbackSchedule`], with the
//! rolled-back types registered with [`rollback::RollbackApp`] (see
//! `examples/rollback.rs`). Replicated states are registered with
//! [`replication::ReplicationApp`] (see `examples/transforms.rs`). Their
//! plugins can also be added alone ([`rollback::RollbackPlugin`],
//! [`replication::ReplicationPlugin`]), for a synctest or tests on a
//! simulated network.
//!
//! Every layer runs its systems in the public [`GamenetSet`]s, in this order:
//! packets in ([`GamenetSet::ReceivePackets`]) and what they mean
//! ([`GamenetSet::Receive`]) in [`PreUpdate`]; what to send
//! ([`GamenetSet::Send`]) and packets out ([`GamenetSet::SendPackets`]) in
//! [`PostUpdate`]. Order a game's own networking systems against them.
//!
//! In an app with Bevy's states (`StatesPlugin`, part of `DefaultPlugins`),
//! every plugin keeps the [`Connection`] state: in a lobby, connecting,
//! playing, reconnecting while a link is silent, failed ([`ConnectionFailed`]
//! says why). Menus and overlays run `OnEnter` of its variants.
//!
//! `use bevy_gamenet::prelude::*;` brings in what a game uses most.
//!
//! [`lobby::LobbyPlugin`] lets the player choose the game to join through
//! the server's lobbies (create, list, join by code) before connecting: the
//! [`Connection`] state is `InLobby` until [`rollback::ConnectRollback`] or
//! [`replication::ConnectReplication`] connects the chosen lobby.
//!
//! The public components and resources derive `bevy_reflect::Reflect` and are
//! registered by every plugin, for inspectors and editors.
//!
//! The plugins' systems go by the [`NetClock`] resource, read once per app
//! update; a test inserts [`NetClock::manual`] and moves time itself.
//! With the feature `memory`, the module `test_app` joins apps through a
//! simulated network and steps them on its clock.
//!
//! # Example
//!
//! ```no_run
//! use bevy_app::{App, Update};
//! use bevy_ecs::prelude::*;
//! use bevy_gamenet::prelude::*;
//!
//! fn greet(mut joined: MessageReader<PeerJoined>, mut socket: ResMut<MeshSocket>) {
//!     for PeerJoined(peer) in joined.read() {
//!         let _ = socket.send(*peer, Channel::Reliable, b"hello");
//!     }
//! }
//!
//! fn show(mut received: MessageReader<MessageReceived>) {
//!     for message in received.read() {
//!         println!("{}: {:?}", message.peer, message.payload);
//!     }
//! }
//!
//! App::new()
//!     .add_plugins(
//!         GamenetPlugin::server("ws://localhost:3000")
//!             .room(Room::Named("hello".into()))
//!             .app_id("my-game/1"),
//!     )
//!     .add_systems(Update, (greet, show))
//!     .run();
//! ```

// `#[derive(NetState)]` names this crate `::bevy_gamenet`, here too.
extern crate self as bevy_gamenet;

mod clock;
mod conditions;
mod connect;
pub mod diagnostics;
mod link;
pub mod lobby;
mod mesh;
#[cfg(feature = "overlay")]
pub mod overlay;
pub mod prelude;
pub mod replication;
pub mod rollback;
mod schema;
mod snapshot;
mod state;
#[cfg(feature = "memory")]
pub mod test_app;

use bevy_app::{App, PostUpdate, PreUpdate};
use bevy_ecs::prelude::*;

pub use clock::NetClock;
pub use conditions::LinkConditions;
pub use connect::{DEFAULT_ICE_REFRESH, GamenetPlugin, IceRefreshed, Room};
pub use mesh::{
    ConnectionFailed, HandshakeFailed, MeshSocket, MessageReceived, PeerInterrupted, PeerJoined,
    PeerLeft, PeerResumed, SignalRefused,
};
pub(crate) use mesh::{Failures, add_mesh_messages, spawn_driver, write_event};
pub use state::Connection;

/// The stages every gamenet layer (mesh, rollback, replication) runs its
/// systems in; layers order against these sets, never against each other's
/// systems.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GamenetSet {
    /// [`PreUpdate`]: take in what arrived from the network (the mesh's
    /// events, a rollback session's inputs and due frames).
    ReceivePackets,
    /// [`PreUpdate`], after [`GamenetSet::ReceivePackets`]: apply what arrived
    /// to the world (replicated entities spawned, updated, interpolated).
    Receive,
    /// [`PostUpdate`]: gather what to send from the world (changed replicated
    /// state, update packets at the tick rate).
    Send,
    /// [`PostUpdate`], after [`GamenetSet::Send`]: hand the packets to the
    /// network (a shared mesh's queued sends).
    SendPackets,
}

/// What every gamenet plugin needs, whichever are added: the sets in order,
/// the clock, the mesh's messages (adding them twice is harmless).
pub(crate) fn add_shared(app: &mut App) {
    configure_sets(app);
    register_types(app);
    clock::init(app);
    add_mesh_messages(app);
}

/// Registers the public components and resources for reflection (editors,
/// inspectors, scenes). Handles to the network (`MeshSocket`,
/// `RollbackSocket`, `ReplicationSocket`, `Lobbies`) and the clock are not
/// reflected: they hold connections and instants, not data.
fn register_types(app: &mut App) {
    app.register_type::<Connection>()
        .register_type::<LinkConditions>()
        .register_type::<rollback::Rollback>()
        .register_type::<rollback::RollbackFrame>()
        .register_type::<rollback::LocalPlayers>()
        .register_type::<rollback::SnapshotLimits>()
        .register_type::<replication::Replicated>()
        .register_type::<replication::HiddenFrom>()
        .register_type::<replication::NetEntity>()
        .register_type::<replication::Remote>()
        .register_type::<replication::Transform2d>()
        .register_type::<replication::Transform3d>()
        .register_type::<replication::ReplicationSettings>();
    #[cfg(feature = "overlay")]
    app.register_type::<overlay::NetworkOverlay>();
}

/// Orders the [`GamenetSet`]s.
fn configure_sets(app: &mut App) {
    app.configure_sets(
        PreUpdate,
        (GamenetSet::ReceivePackets, GamenetSet::Receive).chain(),
    )
    .configure_sets(
        PostUpdate,
        (GamenetSet::Send, GamenetSet::SendPackets).chain(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use gamenet::replication::ReplicationConfig;
    use gamenet::rollback::RollbackConfig;

    #[test]
    fn the_sets_run_in_order() {
        #[derive(Resource, Default)]
        struct Order(Vec<GamenetSet>);
        let mut app = App::new();
        app.add_plugins(GamenetPlugin::default())
            .init_resource::<Order>();
        for set in [
            GamenetSet::SendPackets,
            GamenetSet::Send,
            GamenetSet::Receive,
            GamenetSet::ReceivePackets,
        ] {
            let record = move |mut order: ResMut<Order>| order.0.push(set);
            match set {
                GamenetSet::ReceivePackets | GamenetSet::Receive => {
                    app.add_systems(PreUpdate, record.in_set(set));
                }
                GamenetSet::Send | GamenetSet::SendPackets => {
                    app.add_systems(PostUpdate, record.in_set(set));
                }
            }
        }
        app.update();
        assert_eq!(
            app.world().resource::<Order>().0,
            [
                GamenetSet::ReceivePackets,
                GamenetSet::Receive,
                GamenetSet::Send,
                GamenetSet::SendPackets
            ]
        );
    }

    #[test]
    fn every_plugin_builds_together_and_runs_unconnected() {
        let mut app = App::new();
        app.add_plugins((
            GamenetPlugin::default(),
            rollback::RollbackPlugin::<u8>::manual(RollbackConfig::default()),
            replication::ReplicationPlugin::over_rollback::<u8>(ReplicationConfig::default()),
        ));
        app.finish();
        app.cleanup();
        app.update();
        app.update();
        assert!(app.world().contains_resource::<link::SharedMesh>());
        assert!(
            app.world()
                .contains_resource::<replication::ReplicationSocket>()
        );
        assert!(app.world().contains_resource::<NetClock>());
    }

    #[test]
    fn public_components_and_resources_are_reflected() {
        use bevy_ecs::reflect::{AppTypeRegistry, ReflectComponent};
        use bevy_reflect::{GetPath, PartialReflect};
        let mut app = App::new();
        app.add_plugins(GamenetPlugin::default());
        let registry = app.world().resource::<AppTypeRegistry>().clone();
        let registry = registry.read();
        for name in [
            "bevy_gamenet::state::Connection",
            "bevy_gamenet::conditions::LinkConditions",
            "bevy_gamenet::replication::components::HiddenFrom",
            "bevy_gamenet::replication::components::Remote",
            "bevy_gamenet::replication::transform::Transform3d",
            "bevy_gamenet::replication::plugin::ReplicationSettings",
            "bevy_gamenet::rollback::schedule::RollbackFrame",
        ] {
            assert!(registry.get_with_type_path(name).is_some(), "{name}");
        }
        // An inspector's path into a component, and its insertion by reflection.
        let remote = replication::Remote {
            owner: gamenet::PeerId(7),
        };
        assert_eq!(remote.path::<u128>("owner.0"), Ok(&7));
        let reflect = registry
            .get_type_data::<ReflectComponent>(std::any::TypeId::of::<replication::Transform2d>())
            .expect("Transform2d reflects as a component");
        let entity = app.world_mut().spawn_empty().id();
        let state = replication::Transform2d {
            translation: bevy_math::Vec2::new(1.5, -2.0),
            angle: 0.25,
        };
        reflect.insert(
            &mut app.world_mut().entity_mut(entity),
            state.as_partial_reflect(),
            &registry,
        );
        assert_eq!(
            app.world().get::<replication::Transform2d>(entity),
            Some(&state)
        );
    }
}

/// The guides under `docs/`, whose code runs as doc tests.
#[cfg(doctest)]
mod guides {
    #[doc = include_str!("../../../docs/choosing.md")]
    struct Choosing;

    #[doc = include_str!("../../../docs/determinism.md")]
    struct Determinism;
}
