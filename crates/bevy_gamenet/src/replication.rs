//! The replication plugin: entities marked [`Replicated`] with a registered
//! [`NetState`] component are sent to every peer; remote ones appear with a
//! [`Remote`] marker, their state interpolated from a snapshot buffer a little
//! in the past. It connects a mesh of its own
//! ([`ReplicationPlugin::connect`]) or shares the app's rollback session's
//! ([`ReplicationPlugin::over_rollback`]): players under rollback, shared
//! objects replicated, one connection. Despawning an entity of this peer
//! despawns it on every peer; game events travel as typed messages
//! ([`ToPeers`], [`FromPeer`]); ownership moves by [`RequestAuthority`] and
//! [`HandOver`], and is told by [`OwnerChanged`].
//!
//! ```no_run
//! use bevy_app::App;
//! use bevy_ecs::prelude::*;
//! use bevy_gamenet::prelude::*;
//!
//! /// ±100 m to 1 cm, and a heading.
//! #[derive(Component, Clone, PartialEq, Debug, NetState)]
//! struct Ball {
//!     #[net(range = -100.0..100.0, precision = 0.01)]
//!     x: f32,
//!     #[net(range = -100.0..100.0, precision = 0.01)]
//!     y: f32,
//!     #[net(angle, bits = 10)]
//!     heading: f32,
//! }
//!
//! let builder = PeerMesh::builder("ws://localhost:3000/world").ice_server(IceServer::none());
//! App::new()
//!     .add_plugins(ReplicationPlugin::connect(builder, ReplicationConfig::default()))
//!     .replicate::<Ball>()
//!     .add_systems(bevy_app::Startup, |mut c: Commands| {
//!         c.spawn((Ball { x: 1.0, y: 2.0, heading: 0.0 }, Replicated));
//!     })
//!     .run();
//! ```

mod components;
mod diagnostics;
mod fields;
mod interpolation;
mod messages;
mod parts;
mod plugin;
mod socket;
mod systems;
mod transform;

pub use crate::link::SharedMesh;
pub use bevy_gamenet_derive::NetState;
pub use components::{HiddenFrom, NetEntity, NetState, Remote, Replicated};
pub use fields::{FieldReader, NetField, QuantizedFloats, QuantizedInt};
pub use transform::{AsRotation, AsScale, AsTranslation, Transform2d, Transform3d, TransformState};

/// What `#[derive(NetState)]` expands to uses; not part of the API.
#[doc(hidden)]
pub mod __derive {
    pub use super::fields::*;
    pub use super::transform::{AsRotation, AsScale, AsTranslation};
    pub use bevy_transform::components::Transform;
    pub use gamenet::replication::quantize::{BoundedFloat, BoundedInt, SmallestThree};
}
pub use diagnostics::{BYTES_PER_SEC, ENTITIES_IN_SCOPE};
pub use interpolation::Timeline;
pub use messages::{
    AuthorityRequested, FromPeer, HandOver, NetMessage, OwnerChanged, RequestAuthority, ToPeers,
};
pub use plugin::{ConnectReplication, ReplicationApp, ReplicationPlugin, ReplicationSettings};
pub use socket::{AppTransport, ReplicationSocket};
