//! The mesh plugin: [`MeshSocket`] driven once a frame, its events as Bevy
//! messages, its driver spawned on Bevy's IO task pool.

use std::ops::{Deref, DerefMut};

use bevy_app::{App, Plugin, PreUpdate};
use bevy_ecs::prelude::*;
use gamenet::{
    Bytes, Channel, Event, HandshakeError, LeaveReason, MeshDriver, PeerId, PeerMesh,
    PeerMeshBuilder,
};

use crate::{GamenetSet, add_shared};

/// Adds the gamenet messages and the system that drives [`MeshSocket`].
///
/// With [`GamenetPlugin::connect`] it also builds the mesh, spawns its driver on
/// Bevy's IO task pool and inserts the resource; with [`GamenetPlugin::default`]
/// the app inserts a [`MeshSocket`] itself when it wants to connect.
#[derive(Default)]
pub struct GamenetPlugin {
    /// The mesh to build and connect when the plugin is added, if any.
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
        add_shared(app);
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

/// Spawns a mesh's driver on Bevy's IO task pool.
pub(crate) fn spawn_driver(driver: MeshDriver) {
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

/// Nothing arrived from a joined peer for the mesh's interrupt timeout: it
/// may be back ([`PeerResumed`]) or gone ([`PeerLeft`]) later.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerInterrupted(pub PeerId);

/// An interrupted peer is heard again.
#[derive(Message, Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerResumed(pub PeerId);

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

/// A room-mate's WebRTC signal failed gamenet's checks before reaching the
/// WebRTC stack; the peer is banned (never linked).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct SignalRefused {
    /// The sender, as the signaling server named it.
    pub peer: PeerId,
    /// What was wrong with the signal.
    pub reason: String,
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
        Event::PeerInterrupted(peer) => {
            world.write_message(PeerInterrupted(peer));
        }
        Event::PeerResumed(peer) => {
            world.write_message(PeerResumed(peer));
        }
        Event::HandshakeFailed { peer, error } => {
            world.write_message(HandshakeFailed { peer, error });
        }
        Event::SignalRefused { peer, reason } => {
            tracing::warn!("gamenet: refused a signal from {peer}: {reason}");
            world.write_message(SignalRefused { peer, reason });
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
        .add_message::<PeerInterrupted>()
        .add_message::<PeerResumed>()
        .add_message::<SignalRefused>()
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
