//! Bevy plugin for [`gamenet`]: peer-to-peer multiplayer over WebRTC data
//! channels, natively and in the browser.
//!
//! [`GamenetPlugin`] drives a [`MeshSocket`] resource once a frame, in
//! [`PreUpdate`], and turns what happened into Bevy messages: [`PeerJoined`],
//! [`PeerLeft`], [`HandshakeFailed`] and [`MessageReceived`]. Systems send through
//! `ResMut<MeshSocket>`, which dereferences to [`gamenet::PeerMesh`].
//!
//! For rollback games, [`rollback::RollbackPlugin`] runs a rollback session
//! instead: game logic in [`rollback::RollbackSchedule`], rolled-back types
//! registered with [`rollback::RollbackApp`]. See `examples/rollback.rs`.
//!
//! Every layer runs its systems in the public [`GamenetSet`]s, in this order:
//! packets in ([`GamenetSet::ReceivePackets`]) and what they mean
//! ([`GamenetSet::Receive`]) in [`PreUpdate`]; what to send
//! ([`GamenetSet::Send`]) and packets out ([`GamenetSet::SendPackets`]) in
//! [`PostUpdate`]. Order a game's own networking systems against them.
//!
//! # Example
//!
//! ```no_run
//! use bevy_app::{App, Update};
//! use bevy_ecs::prelude::*;
//! use bevy_gamenet::{GamenetPlugin, MeshSocket, MessageReceived, PeerJoined};
//! use gamenet::{Channel, IceServer, PeerMesh};
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
//! let builder = PeerMesh::builder("ws://localhost:3000/room")
//!     .app_id("my-game/1")
//!     .ice_server(IceServer::none());
//! App::new()
//!     .add_plugins(GamenetPlugin::connect(builder))
//!     .add_systems(Update, (greet, show))
//!     .run();
//! ```

mod link;
pub mod replication;
pub mod rollback;
mod snapshot;

use std::ops::{Deref, DerefMut};

use bevy_app::{App, Plugin, PostUpdate, PreUpdate};
use bevy_ecs::prelude::*;
use gamenet::{
    Bytes, Channel, Event, HandshakeError, LeaveReason, MeshDriver, PeerId, PeerMesh,
    PeerMeshBuilder,
};

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

/// Orders the [`GamenetSet`]s; every plugin calls it (configuring twice is
/// harmless).
pub(crate) fn configure_sets(app: &mut App) {
    app.configure_sets(
        PreUpdate,
        (GamenetSet::ReceivePackets, GamenetSet::Receive).chain(),
    )
    .configure_sets(
        PostUpdate,
        (GamenetSet::Send, GamenetSet::SendPackets).chain(),
    );
}

/// Adds the gamenet messages and the system that drives [`MeshSocket`].
///
/// With [`GamenetPlugin::connect`] it also builds the mesh, spawns its driver on
/// Bevy's IO task pool and inserts the resource; with [`GamenetPlugin::default`]
/// the app inserts a [`MeshSocket`] itself when it wants to connect.
#[derive(Default)]
pub struct GamenetPlugin {
    connect: Option<PeerMeshBuilder>,
}

impl GamenetPlugin {
    /// A plugin that connects with `builder` when added.
    pub fn connect(builder: PeerMeshBuilder) -> Self {
        Self {
            connect: Some(builder),
        }
    }
}

impl Plugin for GamenetPlugin {
    fn build(&self, app: &mut App) {
        configure_sets(app);
        add_mesh_messages(app);
        app.add_systems(PreUpdate, receive.in_set(GamenetSet::ReceivePackets));
        if let Some(builder) = self.connect.clone() {
            match MeshSocket::connect(builder) {
                Ok(socket) => {
                    app.insert_resource(socket);
                }
                Err(error) => tracing::error!("gamenet: could not connect: {error}"),
            }
        }
    }
}

/// The peer mesh as a Bevy resource; dereferences to [`PeerMesh`].
#[derive(Resource, Debug)]
pub struct MeshSocket(PeerMesh);

impl MeshSocket {
    /// Wraps a mesh whose driver the caller has spawned.
    pub fn new(mesh: PeerMesh) -> Self {
        Self(mesh)
    }

    /// Builds a mesh and spawns its driver on Bevy's IO task pool.
    pub fn connect(builder: PeerMeshBuilder) -> Result<Self, gamenet::Error> {
        let (mesh, driver) = builder.build()?;
        spawn_driver(driver);
        Ok(Self(mesh))
    }
}

fn spawn_driver(driver: MeshDriver) {
    let pool = bevy_tasks::IoTaskPool::get_or_init(bevy_tasks::TaskPool::new);
    pool.spawn(async move {
        if let Err(error) = driver.await {
            tracing::warn!("gamenet: mesh driver ended: {error}");
        }
    })
    .detach();
}

impl Deref for MeshSocket {
    type Target = PeerMesh;

    fn deref(&self) -> &PeerMesh {
        &self.0
    }
}

impl DerefMut for MeshSocket {
    fn deref_mut(&mut self) -> &mut PeerMesh {
        &mut self.0
    }
}

/// A peer completed the handshake.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerJoined(pub PeerId);

/// A joined peer left.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct PeerLeft {
    /// The peer.
    pub peer: PeerId,
    /// Why.
    pub reason: LeaveReason,
}

/// A connected peer failed the handshake (another protocol version or application).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct HandshakeFailed {
    /// The peer.
    pub peer: PeerId,
    /// Why.
    pub error: HandshakeError,
}

/// A message from a joined peer.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct MessageReceived {
    /// The sender.
    pub peer: PeerId,
    /// The channel it came on.
    pub channel: Channel,
    /// Its bytes.
    pub payload: Bytes,
}

/// Takes in what arrived and turns the mesh's events into messages.
fn receive(world: &mut World) {
    let Some(mut socket) = world.get_resource_mut::<MeshSocket>() else {
        return;
    };
    socket.update();
    let events: Vec<Event> = std::iter::from_fn(|| socket.poll_event()).collect();
    for event in events {
        write_event(world, event);
    }
}

/// Writes a mesh event as its Bevy message.
pub(crate) fn write_event(world: &mut World, event: Event) {
    match event {
        Event::PeerJoined(peer) => {
            world.write_message(PeerJoined(peer));
        }
        Event::PeerLeft { peer, reason } => {
            world.write_message(PeerLeft { peer, reason });
        }
        Event::HandshakeFailed { peer, error } => {
            world.write_message(HandshakeFailed { peer, error });
        }
        Event::Message {
            peer,
            channel,
            payload,
        } => {
            world.write_message(MessageReceived {
                peer,
                channel,
                payload,
            });
        }
        _ => {}
    }
}

/// Registers the mesh's messages.
pub(crate) fn add_mesh_messages(app: &mut App) {
    app.add_message::<PeerJoined>()
        .add_message::<PeerLeft>()
        .add_message::<HandshakeFailed>()
        .add_message::<MessageReceived>();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_runs_without_a_socket() {
        let mut app = App::new();
        app.add_plugins(GamenetPlugin::default());
        app.update();
        app.update();
        let messages = app.world().resource::<Messages<PeerJoined>>();
        assert!(messages.is_empty());
    }

    #[test]
    fn the_resource_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MeshSocket>();
    }
}
