//! Peer-to-peer multiplayer networking over WebRTC data channels, natively and
//! in the browser.
//!
//! A [`PeerMesh`] joins a room on a signaling server (such as `gamenet-signaling`)
//! and links to every other peer in it over two data channels, one reliable and
//! ordered, one unreliable and unordered. On top of the WebRTC connection it
//! runs gamenet's own protocol ([`gamenet_core`]): a versioned handshake, heartbeats
//! with per-peer round-trip time, loss and throughput, disconnect detection that
//! works the same everywhere, flow control, and fragmentation of large messages.
//!
//! The runtime is the caller's: [`PeerMeshBuilder::build`] returns the mesh and a
//! [`MeshDriver`] future to spawn on tokio, smol, or `wasm_bindgen_futures`.
//!
//! # Example
//!
//! ```no_run
//! use gamenet::{Channel, Event, IceServer, PeerMesh};
//!
//! # async fn run() -> Result<(), gamenet::Error> {
//! let (mut mesh, driver) = PeerMesh::builder("ws://localhost:3000/my-room")
//!     .app_id("my-game/1")
//!     .ice_server(IceServer::stun("stun:stun.example.org:3478"))
//!     .build()?;
//! tokio::spawn(driver);
//!
//! loop {
//!     match mesh.next_event().await? {
//!         Event::PeerJoined(peer) => mesh.send(peer, Channel::Reliable, b"hello")?,
//!         Event::Message { peer, payload, .. } => println!("{peer}: {payload:?}"),
//!         Event::PeerLeft { peer, reason } => println!("{peer} left: {reason}"),
//!         other => println!("{other:?}"),
//!     }
//! }
//! # }
//! ```
//!
//! A game loop calls [`PeerMesh::update`] once a frame instead and drains
//! [`PeerMesh::poll_event`].
//!
//! # Layers
//!
//! [`rollback::RollbackNet`] and [`replication::ReplicationNet`] run the core's
//! rollback session and replicator on a [`Transport`]: a [`PeerMesh`], or
//! (feature `memory`) a `MemoryTransport`, real core meshes on a simulated
//! network for tests. [`layer`] holds what they share: the tag bytes that let
//! them use one mesh, the trait, and the transport's clock, the only one they read.
//!
//! # Lobbies
//!
//! [`lobby::LobbyClient`] creates, lists and finds lobbies on a
//! `gamenet-signaling` server and gives the URL that joins one, and fetches
//! the server's ICE servers.
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod driver;
mod error;
mod ice;
pub mod lobby;
#[cfg(target_arch = "wasm32")]
mod page;
mod peer_mesh;
mod pump;
pub mod signals;

pub mod layer;
pub mod replication;
pub mod rollback;

pub use driver::MeshDriver;
pub use error::Error;
pub use ice::IceServer;
pub use layer::Transport;
#[cfg(feature = "memory")]
pub use layer::{MemoryNetwork, MemoryTransport};
pub use peer_mesh::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_SIGNALING_RESUME, PeerMesh, PeerMeshBuilder, Route,
};

pub use gamenet_core::hash;
pub use gamenet_core::{
    Bytes, Channel, ConditionerConfig, ConfigError, Event, GoodbyeReason, HandshakeError, Instant,
    LeaveReason, MeshConfig, PeerId, PeerStats, ProtocolError, SendError, TypeSchema,
};
