//! The replication plugin: entities marked [`Replicated`] with a registered
//! [`NetState`] component are sent to every peer; remote ones appear with a
//! [`Remote`] marker, their state interpolated from a snapshot buffer a little
//! in the past. It connects a mesh of its own
//! ([`ReplicationPlugin::connect`]) or shares the app's rollback session's
//! ([`ReplicationPlugin::over_rollback`]): players under rollback, shared
//! objects replicated, one connection.
//!
//! ```no_run
//! use bevy_app::App;
//! use bevy_ecs::prelude::*;
//! use bevy_gamenet::replication::{NetState, Replicated, ReplicationApp, ReplicationPlugin};
//! use gamenet::replication::ReplicationConfig;
//! use gamenet::replication::quantize::BoundedFloat;
//! use gamenet::{IceServer, PeerMesh};
//!
//! #[derive(Component, Clone, PartialEq, Debug)]
//! struct Ball { x: f32, y: f32 }
//!
//! /// ±100 m in 16 bits (steps of 3 mm).
//! const AXIS: BoundedFloat = BoundedFloat::new(-100.0, 100.0, 16);
//!
//! impl NetState for Ball {
//!     const WIDTHS: &'static [u8] = &[AXIS.bits() as u8, AXIS.bits() as u8];
//!     fn to_fields(&self) -> Vec<u32> {
//!         vec![AXIS.quantize(self.x), AXIS.quantize(self.y)]
//!     }
//!     fn from_fields(f: &[u32]) -> Self {
//!         Ball { x: AXIS.dequantize(f[0]), y: AXIS.dequantize(f[1]) }
//!     }
//!     fn interpolate(&self, next: &Self, t: f32) -> Self {
//!         Ball { x: self.x + (next.x - self.x) * t, y: self.y + (next.y - self.y) * t }
//!     }
//! }
//!
//! let builder = PeerMesh::builder("ws://localhost:3000/world").ice_server(IceServer::none());
//! App::new()
//!     .add_plugins(ReplicationPlugin::connect(builder, ReplicationConfig::default()))
//!     .replicate::<Ball>()
//!     .add_systems(bevy_app::Startup, |mut c: Commands| {
//!         c.spawn((Ball { x: 1.0, y: 2.0 }, Replicated));
//!     })
//!     .run();
//! ```

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use bevy_app::{App, Plugin, PostUpdate, PreUpdate};
use bevy_diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy_ecs::prelude::*;
use gamenet::replication::{
    Fields, NetId, ReplicationConfig, ReplicationEvent, ReplicationNet, Replicator, Schema,
    Transport,
};
use gamenet::rollback::Input;
use gamenet::{Channel, Event, Instant, PeerId, PeerMesh, PeerMeshBuilder, SendError};

use crate::GamenetSet;
pub use crate::link::SharedMesh;

/// A component whose state is replicated, as quantised fields: choose each
/// field's width and precision with the types of
/// [`gamenet::replication::quantize`] (bounded floats, positions,
/// smallest-three rotations, bounded integers).
pub trait NetState: Component<Mutability = bevy_ecs::component::Mutable> + Clone {
    /// Width in bits (1 to 32) of each field.
    const WIDTHS: &'static [u8];
    /// The fields of this state.
    fn to_fields(&self) -> Vec<u32>;
    /// The state of some fields.
    fn from_fields(fields: &[u32]) -> Self;
    /// The state `t` (0 to 1) of the way from `self` to `next`; the default
    /// jumps.
    fn interpolate(&self, next: &Self, t: f32) -> Self {
        if t < 1.0 { self.clone() } else { next.clone() }
    }
}

/// Marks an entity of this peer for replication.
#[derive(Component, Debug, Clone, Copy, Default)]
pub struct Replicated;

/// An entity's replication id.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetEntity(pub NetId);

/// An entity owned by another peer.
#[derive(Component, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remote {
    /// Its owner.
    pub owner: PeerId,
}

/// Settings of the plugin.
#[derive(Resource, Debug, Clone)]
pub struct ReplicationSettings {
    /// Update packets per second.
    pub tick_hz: u32,
    /// How far in the past remote entities are shown, to interpolate between
    /// received states.
    pub interpolation_delay: Duration,
}

impl Default for ReplicationSettings {
    fn default() -> Self {
        Self {
            tick_hz: 30,
            interpolation_delay: Duration::from_millis(100),
        }
    }
}

/// Bytes per second sent to all peers.
pub const BYTES_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/replication/bytes_per_sec");
/// Entities of this peer in other peers' scope, summed over peers.
pub const ENTITIES_IN_SCOPE: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/replication/entities_in_scope");

/// The replication network.
#[derive(Resource)]
pub struct ReplicationSocket(pub ReplicationNet<AppTransport>);

/// What replication runs on in a Bevy app.
#[derive(Debug)]
pub enum AppTransport {
    /// A mesh of its own ([`ReplicationPlugin::connect`]).
    Mesh(Box<PeerMesh>),
    /// The mesh of the app's rollback session
    /// ([`ReplicationPlugin::over_rollback`]).
    Rollback(SharedMesh),
}

impl Transport for AppTransport {
    fn update(&mut self) {
        match self {
            Self::Mesh(m) => Transport::update(&mut **m),
            Self::Rollback(_) => {}
        }
    }
    fn poll_event(&mut self) -> Option<Event> {
        match self {
            Self::Mesh(m) => Transport::poll_event(&mut **m),
            Self::Rollback(s) => s.poll_event(),
        }
    }
    fn send(&mut self, peer: PeerId, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        match self {
            Self::Mesh(m) => Transport::send(&mut **m, peer, channel, payload),
            Self::Rollback(s) => {
                s.send(peer, channel, payload);
                Ok(())
            }
        }
    }
    fn drop_peer(&mut self, peer: PeerId) -> bool {
        match self {
            Self::Mesh(m) => Transport::drop_peer(&mut **m, peer),
            Self::Rollback(s) => {
                s.drop_peer(peer);
                true
            }
        }
    }
    fn local_id(&mut self) -> Option<PeerId> {
        match self {
            Self::Mesh(m) => Transport::local_id(&mut **m),
            Self::Rollback(s) => s.local_id(),
        }
    }
    fn linked_peers(&self) -> Vec<PeerId> {
        match self {
            Self::Mesh(m) => Transport::linked_peers(&**m),
            Self::Rollback(s) => s.linked_peers(),
        }
    }
}

/// Registered state types, in registration order (the type index on the wire).
#[derive(Resource, Default)]
struct Types {
    widths: Vec<Vec<u8>>,
    names: Vec<&'static str>,
}

/// Received states of a remote entity, for interpolation.
#[derive(Component, Default)]
struct Buffer(VecDeque<(Instant, Fields)>);

/// Entities by replication id.
#[derive(Resource, Default)]
struct Index(BTreeMap<NetId, Entity>);

/// Replicates marked entities over a mesh.
pub struct ReplicationPlugin {
    on: Mutex<Option<On>>,
    config: ReplicationConfig,
}

/// Where replication runs.
enum On {
    Mesh(Box<PeerMeshBuilder>),
    /// The rollback session's mesh, through a [`SharedMesh`] the rollback
    /// plugin serves.
    Rollback,
}

impl ReplicationPlugin {
    /// Connects with `builder` and replicates with `config`.
    pub fn connect(builder: PeerMeshBuilder, config: ReplicationConfig) -> Self {
        Self {
            on: Mutex::new(Some(On::Mesh(Box::new(builder)))),
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
}

/// Connects once the app is built, when every state type is registered.
#[derive(Resource)]
struct Pending(On, ReplicationConfig);

impl Plugin for ReplicationPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<ReplicationSettings>()
            .init_resource::<Types>()
            .init_resource::<Index>()
            .register_diagnostic(Diagnostic::new(BYTES_PER_SEC))
            .register_diagnostic(Diagnostic::new(ENTITIES_IN_SCOPE))
            .add_systems(PreUpdate, receive.in_set(GamenetSet::Receive))
            .add_systems(PostUpdate, send.in_set(GamenetSet::Send))
            .add_systems(PostUpdate, diagnostics.after(GamenetSet::SendPackets));
        crate::configure_sets(app);
        crate::add_mesh_messages(app);
        match self.on.lock().ok().and_then(|mut on| on.take()) {
            Some(On::Rollback) => {
                app.init_resource::<SharedMesh>();
                app.insert_resource(Pending(On::Rollback, self.config.clone()));
            }
            Some(on) => {
                app.insert_resource(Pending(on, self.config.clone()));
            }
            None => {}
        }
    }

    fn finish(&self, app: &mut App) {
        let Some(Pending(on, config)) = app.world_mut().remove_resource::<Pending>() else {
            return;
        };
        let schema = Schema {
            types: app.world().resource::<Types>().widths.clone(),
        };
        let transport = match on {
            On::Mesh(builder) => match builder.build() {
                Ok((mesh, driver)) => {
                    crate::spawn_driver(driver);
                    AppTransport::Mesh(Box::new(mesh))
                }
                Err(e) => {
                    tracing::error!("replication: could not connect: {e}");
                    return;
                }
            },
            On::Rollback => AppTransport::Rollback(app.world().resource::<SharedMesh>().clone()),
        };
        app.insert_resource(ReplicationSocket(ReplicationNet::new(
            transport, config, schema,
        )));
    }
}

/// Registration of replicated state types.
pub trait ReplicationApp {
    /// Replicates `T` (register in the same order on every peer).
    fn replicate<T: NetState>(&mut self) -> &mut Self;
}

impl ReplicationApp for App {
    fn replicate<T: NetState>(&mut self) -> &mut Self {
        self.init_resource::<Types>();
        let ty = {
            let mut types = self.world_mut().resource_mut::<Types>();
            types.widths.push(T::WIDTHS.to_vec());
            types.names.push(std::any::type_name::<T>());
            (types.widths.len() - 1) as u16
        };
        self.insert_resource(TypeIndex::<T>(ty, std::marker::PhantomData))
            .add_systems(
                PreUpdate,
                apply_remote::<T>.in_set(GamenetSet::Receive).after(receive),
            )
            .add_systems(
                PostUpdate,
                publish::<T>.in_set(GamenetSet::Send).before(send),
            )
    }
}

/// Takes in what arrived: spawns, despawns and buffers remote states.
fn receive(
    mut commands: Commands,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
    mut buffers: Query<&mut Buffer>,
    mut remotes: Query<&mut Remote>,
) {
    let Some(mut socket) = socket else {
        return;
    };
    let net = &mut socket.0;
    net.update();
    // Peers and application messages of a mesh of its own, as the mesh
    // plugin's messages (over rollback, the rollback plugin writes them).
    while let Some(event) = net.poll_event() {
        if matches!(net.transport(), AppTransport::Mesh(_)) {
            commands.queue(move |world: &mut World| crate::write_event(world, event));
        }
    }
    let now = Instant::now();
    let mut events = Vec::new();
    while let Some(e) = net.poll_replication_event() {
        events.push(e);
    }
    let Some(r) = net.replicator() else {
        return;
    };
    for e in events {
        match e {
            ReplicationEvent::Spawned { id, ty: _, owner } => {
                let Some(ent) = r.entity(id) else { continue };
                let entity = commands
                    .spawn((
                        NetEntity(id),
                        Remote { owner },
                        Buffer(VecDeque::from([(now, ent.fields.clone())])),
                    ))
                    .id();
                index.0.insert(id, entity);
            }
            ReplicationEvent::Updated { id } => {
                if let (Some(&entity), Some(ent)) = (index.0.get(&id), r.entity(id))
                    && let Ok(mut b) = buffers.get_mut(entity)
                {
                    b.0.push_back((now, ent.fields.clone()));
                    while b.0.len() > 64 {
                        b.0.pop_front();
                    }
                }
            }
            ReplicationEvent::Despawned { id } => {
                if let Some(entity) = index.0.remove(&id) {
                    commands.entity(entity).despawn();
                }
            }
            ReplicationEvent::OwnerChanged { id, owner } => {
                let Some(&entity) = index.0.get(&id) else {
                    continue;
                };
                if owner == r.id() {
                    // Ours now: it is published from its current state.
                    commands
                        .entity(entity)
                        .remove::<(Remote, Buffer)>()
                        .insert(Replicated);
                } else if let Ok(mut remote) = remotes.get_mut(entity) {
                    remote.owner = owner;
                }
            }
            _ => {}
        }
    }
}

/// The wire type index of a state type.
#[derive(Resource)]
struct TypeIndex<T>(u16, std::marker::PhantomData<fn() -> T>);

/// Sets remote entities' state, interpolated at `now - delay`.
fn apply_remote<T: NetState>(
    mut commands: Commands,
    socket: Option<Res<ReplicationSocket>>,
    settings: Res<ReplicationSettings>,
    index: Res<TypeIndex<T>>,
    mut q: Query<(Entity, &NetEntity, &Buffer, Option<&mut T>), With<Remote>>,
) {
    let ty = index.0;
    {
        let Some(r) = socket.as_ref().and_then(|s| s.0.replicator()) else {
            return;
        };
        let at = Instant::now()
            .checked_sub(settings.interpolation_delay)
            .unwrap_or_else(Instant::now);
        for (entity, net, buffer, current) in &mut q {
            if r.entity(net.0).is_none_or(|e| e.ty != ty) {
                continue;
            }
            let Some(state) = sample::<T>(&buffer.0, at) else {
                continue;
            };
            match current {
                Some(mut c) => *c = state,
                None => {
                    commands.entity(entity).insert(state);
                }
            }
        }
    }
}

fn sample<T: NetState>(buffer: &VecDeque<(Instant, Fields)>, at: Instant) -> Option<T> {
    let after = buffer.iter().position(|(t, _)| *t > at);
    match after {
        Some(0) => buffer.front().map(|(_, f)| T::from_fields(f)),
        Some(i) => {
            let (t0, f0) = &buffer[i - 1];
            let (t1, f1) = &buffer[i];
            let span = t1.saturating_duration_since(*t0).as_secs_f32().max(1e-6);
            let t = at.saturating_duration_since(*t0).as_secs_f32() / span;
            Some(T::from_fields(f0).interpolate(&T::from_fields(f1), t.clamp(0.0, 1.0)))
        }
        None => buffer.back().map(|(_, f)| T::from_fields(f)),
    }
}

/// Entities this peer replicates.
type Owned = (With<Replicated>, Without<Remote>);

/// This peer's new entities, and its ones whose state changed.
type ToPublish<T> = (Owned, Or<(Changed<T>, Without<NetEntity>)>);

/// Spawns this peer's new replicated entities of type `T` and updates the
/// ones whose state changed (entities at rest cost nothing).
fn publish<T: NetState>(
    mut commands: Commands,
    socket: Option<ResMut<ReplicationSocket>>,
    mut index: ResMut<Index>,
    ty: Res<TypeIndex<T>>,
    q: Query<(Entity, &T, Option<&NetEntity>), ToPublish<T>>,
) {
    let ty = ty.0;
    {
        let Some(mut socket) = socket else {
            return;
        };
        let Some(r) = socket.0.replicator_mut() else {
            return;
        };
        for (entity, state, net) in &q {
            let fields = state.to_fields();
            match net {
                Some(net) => {
                    r.set(net.0, &fields);
                }
                None => {
                    if let Some(id) = r.spawn(ty, &fields) {
                        commands.entity(entity).insert(NetEntity(id));
                        index.0.insert(id, entity);
                    }
                }
            }
        }
    }
}

/// Sends an update packet at the tick rate.
fn send(
    socket: Option<ResMut<ReplicationSocket>>,
    settings: Res<ReplicationSettings>,
    mut last: Local<Option<Instant>>,
) {
    let Some(mut socket) = socket else {
        return;
    };
    let now = Instant::now();
    let period = Duration::from_secs_f64(1.0 / settings.tick_hz.max(1) as f64);
    if last.is_some_and(|t| now.saturating_duration_since(t) < period) {
        socket.0.flush();
        return;
    }
    *last = Some(now);
    socket.0.tick(now);
}

fn diagnostics(socket: Option<Res<ReplicationSocket>>, mut diagnostics: Diagnostics) {
    let Some(r) = socket.as_ref().and_then(|s| s.0.replicator()) else {
        return;
    };
    let r: &Replicator = r;
    diagnostics.add_measurement(&BYTES_PER_SEC, || {
        r.peers().map(|p| r.bytes_per_sec(p)).sum()
    });
    diagnostics.add_measurement(&ENTITIES_IN_SCOPE, || {
        r.peers().map(|p| r.in_scope(p) as f64).sum()
    });
}
