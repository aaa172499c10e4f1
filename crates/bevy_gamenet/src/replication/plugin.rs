//! [`ReplicationPlugin`] and [`ReplicationApp`]: wiring the replication
//! systems, registering state types, connecting once the app is built.

use std::marker::PhantomData;
use std::sync::Mutex;
use std::time::Duration;

use bevy_app::{App, Plugin, PostUpdate, PreUpdate};
use bevy_ecs::prelude::*;
use bevy_ecs::reflect::ReflectResource;
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use bevy_transform::components::Transform;
#[cfg(feature = "memory")]
use gamenet::MemoryTransport;
use gamenet::PeerMeshBuilder;
use gamenet::replication::{ReplicationConfig, ReplicationNet, Schema};
use gamenet::rollback::Input;

use super::components::{Index, TypeIndex, Types};
use super::interpolation::Timeline;
use super::messages::{
    AuthorityRequested, FromPeer, HandOver, MessageIndex, MessageTypes, NetMessage, OwnerChanged,
    RequestAuthority, ToPeers, decode, send_messages,
};
use super::systems::{
    apply_remote, authority, despawned, publish, receive, send, state_removed, visibility,
};
use super::transform::{TransformState, from_transforms, to_transforms};
use super::{AppTransport, NetState, ReplicationSocket, diagnostics};
use crate::link::SharedMesh;
use crate::{Failures, GamenetSet};

/// Settings of the plugin.
#[derive(Resource, Reflect, Debug, Clone)]
#[reflect(Resource, Debug, Default)]
pub struct ReplicationSettings {
    /// Update packets per second.
    pub tick_hz: u32,
    /// How far in the past remote entities are shown, to interpolate between
    /// received states.
    pub interpolation_delay: Duration,
    /// Where received states are placed in time.
    pub timeline: Timeline,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        Self {
            tick_hz: 30,
            interpolation_delay: Duration::from_millis(100),
            timeline: Timeline::Sender,
        }
    }
}

/// Replicates marked entities over a mesh.
pub struct ReplicationPlugin {
    /// Where to replicate; taken when the plugin is built.
    on: Mutex<Option<On>>,
    /// The replication settings of the core.
    config: ReplicationConfig,
}

/// Where replication runs.
enum On {
    /// A mesh of its own, connected with this builder.
    Mesh(Box<PeerMeshBuilder>),
    /// A mesh made later, by [`ConnectReplication`].
    Later,
    /// The rollback session's mesh, through a [`SharedMesh`] the rollback
    /// plugin serves.
    Rollback,
    /// A simulated network.
    #[cfg(feature = "memory")]
    Memory(MemoryTransport),
}

impl ReplicationPlugin {
    /// Connects with `builder` and replicates with `config`.
    pub fn connect(builder: PeerMeshBuilder, config: ReplicationConfig) -> Self {
        Self {
            on: Mutex::new(Some(On::Mesh(Box::new(builder)))),
            config,
        }
    }

    /// Replicates with `config` once the app connects, with a
    /// [`ConnectReplication`] command (after choosing a lobby, say).
    pub fn manual(config: ReplicationConfig) -> Self {
        Self {
            on: Mutex::new(Some(On::Later)),
            config,
        }
    }

    /// Replicates over the mesh of the app's
    /// [`RollbackPlugin`](crate::rollback::RollbackPlugin) with inputs `I`
    /// (add that plugin too): players under rollback and shared objects
    /// replicated, on one connection.
    pub fn over_rollback<I: Input>(config: ReplicationConfig) -> Self {
        Self {
            on: Mutex::new(Some(On::Rollback)),
            config,
        }
    }

    /// Replicates over a simulated network, for tests (see
    /// `test_app::TestNetwork`).
    #[cfg(feature = "memory")]
    pub fn memory(transport: MemoryTransport, config: ReplicationConfig) -> Self {
        Self {
            on: Mutex::new(Some(On::Memory(transport))),
            config,
        }
    }
}

/// Connects once the app is built, when every state type is registered.
#[derive(Resource)]
struct Pending(On, ReplicationConfig);

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        crate::add_shared(app);
        app.init_resource::<ReplicationSettings>()
            .init_resource::<Types>()
            .init_resource::<Index>()
            .init_resource::<MessageTypes>()
            .add_message::<AuthorityRequested>()
            .add_message::<OwnerChanged>()
            .add_message::<RequestAuthority>()
            .add_message::<HandOver>()
            .add_observer(despawned)
            .add_systems(PreUpdate, receive.in_set(GamenetSet::Receive))
            .add_systems(
                PostUpdate,
                (authority.before(send), visibility.before(send), send).in_set(GamenetSet::Send),
            )
            .add_systems(
                PostUpdate,
                diagnostics::measure.after(GamenetSet::SendPackets),
            );
        diagnostics::register(app);
        crate::conditions::follow::<ReplicationSocket>(app);
        crate::diagnostics::measure_mesh::<ReplicationSocket>(app);
        match self.on.lock().ok().and_then(|mut on| on.take()) {
            Some(On::Rollback) => {
                app.init_resource::<SharedMesh>()
                    .insert_resource(Pending(On::Rollback, self.config.clone()));
            }
            Some(on) => {
                app.insert_resource(Pending(on, self.config.clone()));
            }
            None => {}
        }
    }

    fn finish(&self, app: &mut App) {
        crate::state::init(app);
        let world = app.world_mut();
        match world.remove_resource::<Pending>() {
            Some(Pending(On::Later, config)) => {
                world.insert_resource(Later(config));
            }
            Some(Pending(on, config)) => {
                if let Some(socket) = connect(world, on, config) {
                    world.insert_resource(socket);
                }
            }
            None => {}
        }
    }
}

/// The settings of a [`ReplicationPlugin::manual`] app, until it connects.
#[derive(Resource)]
struct Later(ReplicationConfig);

/// Connects a [`ReplicationPlugin::manual`] app with `builder`, once it has
/// chosen where to play; a failure comes as
/// [`ConnectionFailed`](crate::ConnectionFailed).
pub struct ConnectReplication(pub PeerMeshBuilder);

impl Command for ConnectReplication {
    type Out = ();

    fn apply(self, world: &mut World) {
        if world.contains_resource::<ReplicationSocket>() {
            tracing::warn!("replication: already connected; the new connection is not made");
            return;
        }
        let Some(Later(config)) = world.remove_resource::<Later>() else {
            let failures = world.resource::<Failures>();
            failures.push("replication: not a manual app, or connected before it was built".into());
            return;
        };
        world.remove_resource::<crate::state::Choosing>();
        if let Some(socket) = connect(world, On::Mesh(Box::new(self.0)), config) {
            world.insert_resource(socket);
        }
    }
}

/// The replication network, once every state type is registered: over a
/// mesh of its own (its driver spawned) or the link to the rollback
/// session's; none if the plugin was not asked to connect, or on an error
/// (written as [`ConnectionFailed`](crate::ConnectionFailed)).
fn connect(world: &mut World, on: On, config: ReplicationConfig) -> Option<ReplicationSocket> {
    let schema = Schema {
        types: world.resource::<Types>().widths.clone(),
    };
    let failures = world.resource::<Failures>().clone();
    let mut transport = match on {
        On::Mesh(builder) => {
            let (mesh, driver) = failures.build("replication", *builder)?;
            crate::spawn_driver(driver, Some(failures.clone()));
            AppTransport::Mesh(Box::new(mesh))
        }
        On::Rollback => AppTransport::Rollback(world.resource::<SharedMesh>().clone()),
        On::Later => return None,
        #[cfg(feature = "memory")]
        On::Memory(transport) => AppTransport::Memory(transport),
    };
    // On the rollback session's mesh, the rollback plugin sets it.
    gamenet::Transport::set_schema(&mut transport, crate::schema::of(world, Vec::new()));
    match ReplicationNet::new(transport, config, schema) {
        Ok(net) => Some(ReplicationSocket(net)),
        Err(e) => {
            failures.push(format!("replication: {e}"));
            None
        }
    }
}

/// The publishing of one state type, by its index: they run in
/// registration order, so an entity's first registered state is the entity
/// on the wire and the others its parts.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Publish(u16);

/// Registration of replicated state types and game events.
pub trait ReplicationApp {
    /// Replicates `T` (register in the same order on every peer; the
    /// handshake's schema hash names a mismatch). An entity may carry
    /// several replicated states: the first registered of those it has when
    /// first published is the entity on the wire, each other one (or one
    /// added later) a part tied to it, shown, hidden, handed over and
    /// despawned with it, and despawned alone when removed. Removing the
    /// entity's first state sends it again as a new entity. What always
    /// changes together is cheapest in one type.
    fn replicate<T: NetState>(&mut self) -> &mut Self;

    /// Replicates `T` and links it to the entity's `Transform` (see
    /// [`TransformState`]): [`Transform2d`](super::Transform2d) and
    /// [`Transform3d`](super::Transform3d) are ready-made. `T` requires
    /// `Transform` from then on, so spawning `T` alone is enough.
    fn replicate_transform<T: TransformState>(&mut self) -> &mut Self;

    /// Sends `M` as game events ([`ToPeers`]) and writes those that arrive
    /// as [`FromPeer`] (register in the same order on every peer).
    fn replicate_message<M: NetMessage>(&mut self) -> &mut Self;
}

impl ReplicationApp for App {
    fn replicate<T: NetState>(&mut self) -> &mut Self {
        self.init_resource::<Types>();
        let ty = self.world_mut().resource_mut::<Types>().add(T::WIDTHS);
        crate::schema::register(
            self,
            format!(
                "replication state {} {:?}",
                std::any::type_name::<T>(),
                T::WIDTHS
            ),
        );
        self.insert_resource(TypeIndex::<T>(ty, PhantomData))
            .add_observer(state_removed::<T>)
            .add_systems(
                PreUpdate,
                apply_remote::<T>.in_set(GamenetSet::Receive).after(receive),
            )
            .add_systems(
                PostUpdate,
                publish::<T>
                    .in_set(GamenetSet::Send)
                    .in_set(Publish(ty))
                    .after(Publish(ty.wrapping_sub(2)))
                    .before(visibility)
                    .before(send),
            )
    }

    fn replicate_transform<T: TransformState>(&mut self) -> &mut Self {
        // Already required when `T` says `#[require(Transform)]` itself.
        let _ = self.try_register_required_components::<T, Transform>();
        self.replicate::<T>()
            .add_systems(
                PreUpdate,
                to_transforms::<T>
                    .in_set(GamenetSet::Receive)
                    .after(apply_remote::<T>),
            )
            .add_systems(
                PostUpdate,
                from_transforms::<T>
                    .in_set(GamenetSet::Send)
                    .before(publish::<T>),
            )
    }

    fn replicate_message<M: NetMessage>(&mut self) -> &mut Self {
        self.init_resource::<MessageTypes>();
        let index = {
            let mut types = self.world_mut().resource_mut::<MessageTypes>();
            types.names.push(std::any::type_name::<M>());
            types.decoders.push(decode::<M>);
            u16::try_from(types.names.len() - 1).unwrap_or(u16::MAX)
        };
        crate::schema::register(
            self,
            format!("replication message {}", std::any::type_name::<M>()),
        );
        self.insert_resource(MessageIndex::<M>(index, PhantomData))
            .add_message::<ToPeers<M>>()
            .add_message::<FromPeer<M>>()
            .add_systems(
                PostUpdate,
                send_messages::<M>.in_set(GamenetSet::Send).before(send),
            )
    }
}
