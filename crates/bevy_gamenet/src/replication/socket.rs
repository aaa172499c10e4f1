//! The replication network as a Bevy resource, and what it runs on: a mesh
//! of its own or the rollback session's, through the link.

use bevy_ecs::prelude::*;
use gamenet::replication::{ReplicationNet, Transport};
use gamenet::{Channel, Event, Instant, PeerId, PeerMesh, SendError};

use crate::link::SharedMesh;
#[cfg(feature = "memory")]
use gamenet::MemoryTransport;

/// The replication network.
#[derive(Resource)]
pub struct ReplicationSocket(pub ReplicationNet<AppTransport>);

/// What replication runs on in a Bevy app.
#[derive(Debug)]
pub enum AppTransport {
    /// A mesh of its own ([`ReplicationPlugin::connect`](super::ReplicationPlugin::connect)).
    Mesh(Box<PeerMesh>),
    /// The mesh of the app's rollback session
    /// ([`ReplicationPlugin::over_rollback`](super::ReplicationPlugin::over_rollback)).
    Rollback(SharedMesh),
    /// A simulated network, for tests
    /// (`ReplicationPlugin::memory`, feature `memory`).
    #[cfg(feature = "memory")]
    Memory(MemoryTransport),
}

impl Transport for AppTransport {
    fn set_schema(&mut self, schema: gamenet::TypeSchema) {
        match self {
            Self::Mesh(m) => m.set_schema(schema),
            #[cfg(feature = "memory")]
            Self::Memory(m) => m.set_schema(schema),
            Self::Rollback(_) => {}
        }
    }
    fn update(&mut self) {
        match self {
            Self::Mesh(m) => Transport::update(&mut **m),
            #[cfg(feature = "memory")]
            Self::Memory(m) => Transport::update(m),
            Self::Rollback(_) => {}
        }
    }
    fn poll_event(&mut self) -> Option<Event> {
        match self {
            Self::Mesh(m) => Transport::poll_event(&mut **m),
            #[cfg(feature = "memory")]
            Self::Memory(m) => Transport::poll_event(m),
            Self::Rollback(s) => s.poll_event(),
        }
    }
    fn send(&mut self, peer: PeerId, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        match self {
            Self::Mesh(m) => Transport::send(&mut **m, peer, channel, payload),
            #[cfg(feature = "memory")]
            Self::Memory(m) => Transport::send(m, peer, channel, payload),
            Self::Rollback(s) => {
                s.send(peer, channel, payload);
                Ok(())
            }
        }
    }
    fn drop_peer(&mut self, peer: PeerId) -> bool {
        match self {
            Self::Mesh(m) => Transport::drop_peer(&mut **m, peer),
            #[cfg(feature = "memory")]
            Self::Memory(m) => Transport::drop_peer(m, peer),
            Self::Rollback(s) => {
                s.drop_peer(peer);
                true
            }
        }
    }
    fn local_id(&mut self) -> Option<PeerId> {
        match self {
            Self::Mesh(m) => Transport::local_id(&mut **m),
            #[cfg(feature = "memory")]
            Self::Memory(m) => Transport::local_id(m),
            Self::Rollback(s) => s.local_id(),
        }
    }
    fn linked_peers(&self) -> Vec<PeerId> {
        match self {
            Self::Mesh(m) => Transport::linked_peers(&**m),
            #[cfg(feature = "memory")]
            Self::Memory(m) => Transport::linked_peers(m),
            Self::Rollback(s) => s.linked_peers(),
        }
    }
    fn now(&self) -> Instant {
        match self {
            #[cfg(feature = "memory")]
            Self::Memory(m) => m.now(),
            Self::Mesh(_) => Instant::now(),
            Self::Rollback(s) => s.now(),
        }
    }
}

impl crate::conditions::OnPeerMesh for ReplicationSocket {
    fn peer_mesh(&mut self) -> Option<&mut PeerMesh> {
        match self.0.transport_mut() {
            AppTransport::Mesh(mesh) => Some(mesh),
            _ => None,
        }
    }
    fn peer_mesh_ref(&self) -> Option<&PeerMesh> {
        match self.0.transport() {
            AppTransport::Mesh(mesh) => Some(mesh),
            _ => None,
        }
    }
}
