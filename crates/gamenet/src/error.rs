//! The error type of the runtime.

use crate::{ConfigError, SendError};
#[cfg(doc)]
use crate::{IceServer, PeerMeshBuilder};

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No ICE server was set. gamenet never falls back on public STUN hosts: set one
    /// with [`PeerMeshBuilder::ice_server`], or [`IceServer::none`] for host candidates.
    #[error(
        "no ICE server configured; set one explicitly (IceServer::none() for host candidates only)"
    )]
    IceServerNotSet,
    /// The mesh settings cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A message could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The signaling connection failed or was lost.
    #[error("signaling: {0}")]
    Signaling(#[from] matchbox_socket::Error),
    /// An ICE server list cannot be used: its JSON is unreadable, or its TURN
    /// servers have different credentials (matchbox_socket takes one
    /// `RTCIceServer`, so one set for all; servers on one coturn secret share it).
    #[error("ICE servers: {0}")]
    IceServers(String),
    /// A [reconnect key](crate::PeerMeshBuilder::reconnect_key) the signaling
    /// server would refuse: 16 to 128 characters of `[A-Za-z0-9_-]`.
    #[error("reconnect keys are 16 to 128 characters of [A-Za-z0-9_-]")]
    ReconnectKey,
    /// The mesh's driver has stopped; nothing more can be sent or received.
    #[error("the mesh is closed")]
    Closed,
    /// The WebRTC stack under the mesh panicked inside its driver. The mesh is
    /// closed. A failed WebRTC handshake no longer gets here: the patched
    /// matchbox_socket (`vendor/matchbox_socket/PATCHES.md`) drops only that
    /// peer; this catches whatever panic is left.
    #[error("the WebRTC driver failed: {0}")]
    Driver(String),
}
