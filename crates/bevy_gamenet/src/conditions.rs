//! [`LinkConditions`]: the link conditioner of the app's mesh as a
//! resource, changeable while the game runs.

use bevy_app::{App, PreUpdate};
use bevy_ecs::component::Mutable;
use bevy_ecs::prelude::*;
use bevy_ecs::reflect::ReflectResource;
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use gamenet::{ConditionerConfig, IceServer, PeerMesh};

use crate::GamenetSet;

/// The link conditioner between the app's [`PeerMesh`] and the network:
/// `None` for none. Change it while the game runs to try it on a worse
/// network (`ConditionerConfig::preset("mobile")`); packets already held
/// keep their delays. It starts as the mesh builder's `link_conditioner`.
/// Over the in-memory test network, the network's own links apply instead.
#[derive(Resource, Reflect, Debug, Clone, Default, PartialEq)]
#[reflect(Resource, Debug, Default, PartialEq)]
pub struct LinkConditions(pub Option<ConditionerConfig>);

/// A resource that may hold the app's [`PeerMesh`].
pub(crate) trait OnPeerMesh: Resource + Component<Mutability = Mutable> {
    /// The mesh, if this resource runs on one of its own.
    fn peer_mesh(&mut self) -> Option<&mut PeerMesh>;
    /// The mesh, to read, if this resource runs on one of its own.
    fn peer_mesh_ref(&self) -> Option<&PeerMesh>;
}

/// Keeps the mesh of `S`'s conditioner as [`LinkConditions`] says.
pub(crate) fn follow<S: OnPeerMesh>(app: &mut App) {
    app.init_resource::<LinkConditions>()
        .init_resource::<FreshIce>()
        .add_systems(
            PreUpdate,
            (apply::<S>, apply_ice::<S>).before(GamenetSet::ReceivePackets),
        );
}

/// ICE servers fetched again from the signaling server, until the mesh
/// takes them.
#[derive(Resource, Default)]
pub(crate) struct FreshIce(pub Option<Vec<IceServer>>);

/// Hands fresh ICE servers to the app's mesh, for the connections it makes
/// from now on.
fn apply_ice<S: OnPeerMesh>(mut fresh: ResMut<FreshIce>, socket: Option<ResMut<S>>) {
    let Some(mut socket) = socket else {
        return;
    };
    let Some(mesh) = socket.peer_mesh() else {
        return;
    };
    if let Some(servers) = fresh.0.take()
        && let Err(error) = mesh.set_ice_servers(servers)
    {
        tracing::warn!("gamenet: the server's fresh ICE servers are unusable: {error}");
    }
}

/// Adopts the builder's conditioner when the mesh first shows up (unless
/// the game set one), then hands every change to the mesh.
fn apply<S: OnPeerMesh>(
    mut adopted: Local<bool>,
    mut conditions: ResMut<LinkConditions>,
    socket: Option<ResMut<S>>,
) {
    let Some(mut socket) = socket else {
        return;
    };
    let Some(mesh) = socket.peer_mesh() else {
        return;
    };
    let on = mesh.link_conditioner();
    if !*adopted {
        *adopted = true;
        if conditions.0.is_none() && on.is_some() {
            conditions.0 = on;
            return;
        }
    }
    if on != conditions.0 {
        mesh.set_link_conditioner(conditions.0.clone());
    }
}
