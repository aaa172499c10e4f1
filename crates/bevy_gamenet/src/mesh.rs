//! The mesh: [`MeshSocket`] driven once a frame, its events as Bevy
//! messages, its driver spawned on Bevy's IO task pool.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use crate::GamenetSet;
use bevy_app::{App, PreUpdate};
use bevy_ecs::prelude::*;
use gamenet::{
    Bytes, Channel, Event, HandshakeError, LeaveReason, MeshDriver, PeerId, PeerMesh,
    PeerMeshBuilder,
};

/// The peer mesh as a Bevy resource; dereferences to [`PeerMesh`].
#[derive(Resource, Debug)]
pub struct MeshSocket(PeerMesh);

impl MeshSocket {
    /// Wraps a mesh whose driver the caller has spawned.
    pub fn new(mesh: PeerMesh) -> Self {
        Self(mesh)
    }

    /// Builds a mesh and spawns its driver on Bevy's IO task pool (a driver
    /// that stops on an error is only logged: [`GamenetPlugin`](crate::GamenetPlugin)
    /// also reports it as [`ConnectionFailed`]).
    pub fn connect(builder: PeerMeshBuilder) -> Result<Self, gamenet::Error> {
        let (mesh, driver) = builder.build()?;
        spawn_driver(driver, None);
        Ok(Self(mesh))
    }
}

/// The connection could not be made, or is over for good: the mesh could not
/// be built (its settings, ICE servers or reconnect key), or its driver
/// stopped on an error (the signaling server unreachable after its attempts,
/// or gone past the resume limit; the WebRTC stack failed). Nothing more is
/// sent or received on it: show `error` and offer to try again.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFailed {
    /// What failed, for the player.
    pub error: String,
}

/// Connection failures, from the plugins' set-up and from drivers on the IO
/// task pool, written as [`ConnectionFailed`] at the next frame.
#[derive(Resource, Clone, Default)]
pub(crate) struct Failures(Arc<Mutex<Vec<String>>>);

impl Failures {
    /// Notes a failure (and logs it).
    pub fn push(&self, error: String) {
        tracing::error!("{error}");
        if let Ok(mut list) = self.0.lock() {
            list.push(error);
        }
    }

    /// Builds a mesh for `part` of the app, noting a failure.
    pub fn build(&self, part: &str, builder: PeerMeshBuilder) -> Option<(PeerMesh, MeshDriver)> {
        builder
            .build()
            .map_err(|error| self.push(format!("{part}: could not connect: {error}")))
            .ok()
    }
}

/// Writes the failures noted since the last frame.
fn report_failures(failures: Res<Failures>, mut out: MessageWriter<ConnectionFailed>) {
    let noted = failures.0.lock().map(|mut l| std::mem::take(&mut *l));
    for error in noted.unwrap_or_default() {
        out.write(ConnectionFailed { error });
    }
}

/// Spawns a mesh's driver on Bevy's IO task pool; a driver that stops on an
/// error is noted in `failures` (or only logged).
pub(crate) fn spawn_driver(driver: MeshDriver, failures: Option<Failures>) {
    let pool = bevy_tasks::IoTaskPool::get_or_init(bevy_tasks::TaskPool::new);
    pool.spawn(async move {
        if let Err(error) = driver.await {
            let error = format!("gamenet: the connection ended: {error}");
            match failures {
                Some(failures) => failures.push(error),
                None => tracing::warn!("{error}"),
            }
        }
    })
    .detach();
}

impl crate::conditions::OnPeerMesh for MeshSocket {
    fn peer_mesh(&mut self) -> Option<&mut PeerMesh> {
        Some(&mut self.0)
    }
    fn peer_mesh_ref(&self) -> Option<&PeerMesh> {
        Some(&self.0)
    }
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
pub(crate) fn receive(world: &mut World) {
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
    if !app.world().contains_resource::<Failures>() {
        app.init_resource::<Failures>()
            .add_message::<ConnectionFailed>()
            .add_systems(
                PreUpdate,
                report_failures.in_set(GamenetSet::ReceivePackets),
            );
    }
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
    fn the_resource_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<MeshSocket>();
    }
}
