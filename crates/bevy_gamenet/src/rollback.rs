//! The rollback plugin: game logic in [`RollbackSchedule`], on a fixed
//! timestep with its own [`Time<RollbackTime>`], saved, restored and
//! re-simulated by a [`gamenet::rollback::RollbackSession`].
//!
//! Register what is rolled back with [`RollbackApp`]; give each frame's local
//! inputs from systems in [`ReadInputs`] by filling [`LocalInputs`]; read every
//! player's input in the rollback schedule from [`PlayerInputs`]. Over a
//! network, peers joining and leaving and application messages (sent with
//! [`RollbackNet::send`]) arrive as the mesh plugin's messages:
//! [`crate::PeerJoined`], [`crate::PeerLeft`], [`crate::MessageReceived`].
//!
//! The plugin keeps Bevy diagnostics for an overlay or a log: frames and
//! re-simulated frames per second ([`FRAMES_PER_SEC`], [`RESIMULATED_PER_SEC`]),
//! the mesh's peers, worst RTT and loss, bytes/s in and out ([`PEERS`],
//! [`RTT_MS`], [`LOSS_PERCENT`], [`BYTES_IN_PER_SEC`], [`BYTES_OUT_PER_SEC`]) and
//! desyncs detected ([`DESYNCS`]).

use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;

use bevy_app::{App, Plugin, PostUpdate, PreUpdate};
use bevy_diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy_ecs::component::Mutable;
use bevy_ecs::entity::MapEntities;
use bevy_ecs::hierarchy::ChildOf;
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::{ScheduleLabel, SingleThreadedExecutor};
use bevy_state::state::{FreelyMutableState, NextState, State, StateTransition};
use bevy_time::Time;
use gamenet::rollback::{
    Checksum, ChecksumPart, Frame, Input, InputStatus, Request, RollbackConfig, RollbackError,
    RollbackEvent, RollbackNet, RollbackSession, RollbackStart,
};
use gamenet::{Instant, PeerMeshBuilder};

use crate::GamenetSet;
use crate::link::SharedMesh;

pub use crate::snapshot::{AddRollback, Rollback, RollbackIds, stable_hash};
use crate::snapshot::{
    ComponentSnapshot, EntitySnapshot, ImmutableSnapshot, LoadContext, Registry, ResourceSerde,
    ResourceSnapshot, Serde, decode, encode,
};

/// The schedule the game's simulation runs in, once per rollback frame.
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct RollbackSchedule;

/// The schedule that reads local input, before each new frame: fill
/// [`LocalInputs`] for every slot in [`LocalPlayers`].
#[derive(ScheduleLabel, Debug, Clone, PartialEq, Eq, Hash)]
pub struct ReadInputs;

/// The context of the rollback clock: `Res<Time<RollbackTime>>` advances by
/// exactly one frame per simulated frame and rolls back with the state. While
/// the rollback schedule runs, plain `Res<Time>` shows the same.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RollbackTime;

/// The slots played on this peer.
#[derive(Resource, Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalPlayers(pub Vec<usize>);

/// Local inputs for the next frame, by slot; filled in [`ReadInputs`].
#[derive(Resource, Debug, Clone, PartialEq, Eq)]
pub struct LocalInputs<I: Input>(pub BTreeMap<usize, I>);

impl<I: Input> Default for LocalInputs<I> {
    fn default() -> Self {
        Self(BTreeMap::new())
    }
}

/// Every slot's input for the frame being simulated.
#[derive(Resource, Debug, Clone, PartialEq)]
pub struct PlayerInputs<I: Input>(pub Vec<(I, InputStatus)>);

/// The frame being simulated (in the rollback schedule) or the next one.
#[derive(Resource, Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollbackFrame(pub Frame);

/// A session event, as a Bevy message.
#[derive(Message, Debug, Clone, PartialEq)]
pub struct SessionEvent(pub RollbackEvent);

/// Diagnostic: frames simulated per second, not counting re-simulation.
pub const FRAMES_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/rollback/frames_per_sec");
/// Diagnostic: frames re-simulated per second by rollbacks.
pub const RESIMULATED_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/rollback/resimulated_per_sec");
/// Diagnostic: peers linked on the session's mesh.
pub const PEERS: DiagnosticPath = DiagnosticPath::const_new("gamenet/mesh/peers");
/// Diagnostic: the worst smoothed round-trip time among the peers, in ms.
pub const RTT_MS: DiagnosticPath = DiagnosticPath::const_new("gamenet/mesh/rtt_ms");
/// Diagnostic: the worst heartbeat loss among the peers, in percent.
pub const LOSS_PERCENT: DiagnosticPath = DiagnosticPath::const_new("gamenet/mesh/loss_percent");
/// Diagnostic: bytes per second received from all peers (every layer).
pub const BYTES_IN_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/mesh/bytes_in_per_sec");
/// Diagnostic: bytes per second sent to all peers (every layer).
pub const BYTES_OUT_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/mesh/bytes_out_per_sec");
/// Diagnostic: desyncs detected since the session started.
pub const DESYNCS: DiagnosticPath = DiagnosticPath::const_new("gamenet/rollback/desyncs");

/// Most frames run in one app update (catching up after a hitch).
const MAX_FRAMES_PER_UPDATE: usize = 32;

/// The session and, for networked play, its mesh.
#[derive(Resource)]
pub struct RollbackSocket<I: Input> {
    inner: Inner<I>,
}

enum Inner<I: Input> {
    Local(Box<RollbackSession<I>>),
    Net(Box<RollbackNet<I>>),
}

impl<I: Input> RollbackSocket<I> {
    /// Networked play over a [`RollbackNet`].
    pub fn net(net: RollbackNet<I>) -> Self {
        Self {
            inner: Inner::Net(Box::new(net)),
        }
    }

    /// A local session (sync test, or a game with every player local).
    pub fn local(session: RollbackSession<I>) -> Self {
        Self {
            inner: Inner::Local(Box::new(session)),
        }
    }

    /// The session, once started.
    pub fn session(&self) -> Option<&RollbackSession<I>> {
        match &self.inner {
            Inner::Local(s) => Some(s),
            Inner::Net(n) => n.session(),
        }
    }

    /// The session, once started.
    pub fn session_mut(&mut self) -> Option<&mut RollbackSession<I>> {
        match &mut self.inner {
            Inner::Local(s) => Some(s),
            Inner::Net(n) => n.session_mut(),
        }
    }

    /// The network side, for networked play.
    pub fn net_ref(&self) -> Option<&RollbackNet<I>> {
        match &self.inner {
            Inner::Local(_) => None,
            Inner::Net(n) => Some(n),
        }
    }

    /// The network side, for networked play.
    pub fn net_mut(&mut self) -> Option<&mut RollbackNet<I>> {
        match &mut self.inner {
            Inner::Local(_) => None,
            Inner::Net(n) => Some(n),
        }
    }

    fn update(&mut self, now: Instant) {
        match &mut self.inner {
            Inner::Local(s) => {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
            Inner::Net(n) => n.update(),
        }
    }

    fn flush(&mut self) {
        if let Inner::Net(n) = &mut self.inner {
            n.flush();
        }
    }

    fn poll_event(&mut self) -> Option<RollbackEvent> {
        match &mut self.inner {
            Inner::Local(s) => s.poll_event(),
            Inner::Net(n) => n.poll_rollback_event(),
        }
    }
}

/// How the plugin gets its session.
enum Setup {
    SyncTest(u32),
    Net(Box<PeerMeshBuilder>, RollbackStart, u64),
    Manual,
}

/// Who decides when a rollback frame runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FrameClock {
    /// The session, at its frame rate, sped up or slowed down to stay in step
    /// with the other peers (the default).
    #[default]
    Session,
    /// One frame per app update whenever the session allows: for apps that
    /// run their update on a fixed timestep of their own.
    EveryUpdate,
}

/// Rollback for a Bevy app with inputs of type `I`.
pub struct RollbackPlugin<I: Input> {
    config: RollbackConfig,
    clock: FrameClock,
    setup: std::sync::Mutex<Option<Setup>>,
    _input: PhantomData<fn() -> I>,
}

impl<I: Input> RollbackPlugin<I> {
    /// Plays over the network: connects with `builder` and starts as `start`
    /// says; `key` identifies this player for reconnecting.
    pub fn connect(
        config: RollbackConfig,
        builder: PeerMeshBuilder,
        start: RollbackStart,
        key: u64,
    ) -> Self {
        Self::with(config, Setup::Net(Box::new(builder), start, key))
    }

    /// Runs a local sync test: each frame re-simulates the last `distance`
    /// frames and reports any checksum that differs.
    pub fn sync_test(config: RollbackConfig, distance: u32) -> Self {
        Self::with(config, Setup::SyncTest(distance))
    }

    /// Sets up schedules and snapshots only; insert a [`RollbackSocket`] later
    /// (say, after a lobby).
    pub fn manual(config: RollbackConfig) -> Self {
        Self::with(config, Setup::Manual)
    }

    /// Sets who decides when frames run.
    pub fn with_clock(mut self, clock: FrameClock) -> Self {
        self.clock = clock;
        self
    }

    fn with(config: RollbackConfig, setup: Setup) -> Self {
        Self {
            config,
            clock: FrameClock::Session,
            setup: std::sync::Mutex::new(Some(setup)),
            _input: PhantomData,
        }
    }
}

/// Settings the driver needs.
#[derive(Resource, Debug, Clone)]
struct Settings {
    ring: usize,
    step: Duration,
    clock: FrameClock,
}

impl<I: Input> Plugin for RollbackPlugin<I> {
    fn build(&self, app: &mut App) {
        crate::configure_sets(app);
        crate::add_mesh_messages(app);
        let setup = self.setup.lock().ok().and_then(|mut s| s.take());
        let ring = self.config.prediction_window as usize + 2;
        let ring = match &setup {
            Some(Setup::SyncTest(d)) => ring.max(*d as usize + 2),
            _ => ring,
        };
        app.insert_resource(Settings {
            ring,
            step: Duration::from_secs_f64(1.0 / self.config.fps.max(1) as f64),
            clock: self.clock,
        })
        .init_resource::<LocalPlayers>()
        .init_resource::<LocalInputs<I>>()
        .init_resource::<RollbackFrame>()
        .init_resource::<RollbackIds>()
        .insert_resource(Time::<RollbackTime>::default())
        .add_message::<SessionEvent>()
        .init_schedule(ReadInputs)
        .init_schedule(RollbackSchedule)
        .edit_schedule(RollbackSchedule, |s| {
            // One order of systems on every peer and every re-run.
            s.set_executor(SingleThreadedExecutor::new());
        })
        .register_diagnostic(Diagnostic::new(FRAMES_PER_SEC))
        .register_diagnostic(Diagnostic::new(RESIMULATED_PER_SEC))
        .register_diagnostic(Diagnostic::new(PEERS))
        .register_diagnostic(Diagnostic::new(RTT_MS))
        .register_diagnostic(Diagnostic::new(LOSS_PERCENT))
        .register_diagnostic(Diagnostic::new(BYTES_IN_PER_SEC))
        .register_diagnostic(Diagnostic::new(BYTES_OUT_PER_SEC))
        .register_diagnostic(Diagnostic::new(DESYNCS))
        .add_systems(PreUpdate, drive::<I>.in_set(GamenetSet::ReceivePackets))
        .add_systems(PostUpdate, diagnostics::<I>.after(GamenetSet::SendPackets));
        if !app.world().contains_resource::<Registry>() {
            app.init_resource::<Registry>();
        }
        {
            let mut registry = app.world_mut().resource_mut::<Registry>();
            registry.types.insert(0, Box::new(EntitySnapshot::new()));
        }
        app.rollback_resource_with_serde::<RollbackIds>()
            .rollback_resource_with_clone::<Time<RollbackTime>>();
        {
            let mut registry = app.world_mut().resource_mut::<Registry>();
            if let Some(s) = registry.find::<ResourceSnapshot<Time<RollbackTime>>>() {
                s.serde = Some(ResourceSerde {
                    ser: |t| encode(&t.as_ref().map(|t| t.elapsed())),
                    de: |b| {
                        Ok(decode::<Option<Duration>>(b)?.map(|elapsed| {
                            let mut t = Time::<RollbackTime>::default();
                            t.advance_by(elapsed);
                            t
                        }))
                    },
                });
            }
            if registry.find::<ImmutableSnapshot<ChildOf>>().is_none() {
                registry
                    .types
                    .push(Box::new(ImmutableSnapshot::<ChildOf>::new(
                        Some(|c, m| c.0 = m.get(&c.0).copied().unwrap_or(c.0)),
                        Some(Serde {
                            ser: |v| {
                                let v: Vec<(u32, u64)> =
                                    v.iter().map(|(id, c)| (*id, c.0.to_bits())).collect();
                                encode(&v)
                            },
                            de: |b| {
                                decode::<Vec<(u32, u64)>>(b)?
                                    .into_iter()
                                    .map(|(id, bits)| {
                                        Entity::try_from_bits(bits)
                                            .map(|e| (id, ChildOf(e)))
                                            .ok_or_else(|| "bad entity in a snapshot".to_string())
                                    })
                                    .collect()
                            },
                        }),
                    )));
            }
        }
        match setup {
            Some(Setup::SyncTest(distance)) => {
                match RollbackSession::<I>::sync_test(self.config.clone(), distance) {
                    Ok(s) => {
                        app.insert_resource(RollbackSocket::local(s));
                    }
                    Err(e) => tracing::error!("rollback: {e}"),
                }
            }
            Some(Setup::Net(builder, start, key)) => match builder.build() {
                Ok((mesh, driver)) => {
                    crate::spawn_driver(driver);
                    let net = RollbackNet::<I>::new(mesh, self.config.clone(), start, key);
                    app.insert_resource(RollbackSocket::net(net));
                }
                Err(e) => tracing::error!("rollback: could not connect: {e}"),
            },
            Some(Setup::Manual) | None => {}
        }
    }
}

/// Registration of rolled-back types on an [`App`].
pub trait RollbackApp {
    /// Rolls back a component by cloning it.
    fn rollback_component_with_clone<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
    ) -> &mut Self;
    /// Rolls back a `Copy` component.
    fn rollback_component_with_copy<T: Component<Mutability = Mutable> + Copy>(
        &mut self,
    ) -> &mut Self;
    /// Rolls back an immutable component (re-inserted on load where it differs);
    /// `map` fixes its entity references after respawns.
    fn rollback_immutable_component<T: Component + Clone + PartialEq>(
        &mut self,
        map: Option<fn(&mut T, &mut bevy_ecs::entity::EntityHashMap<Entity>)>,
    ) -> &mut Self;
    /// Rolls back a resource by cloning it.
    fn rollback_resource_with_clone<R: Resource + Clone>(&mut self) -> &mut Self;
    /// Rolls back a component by cloning it, and sends it to late joiners
    /// with serde. Late join works when every rolled-back type can be sent.
    fn rollback_component_with_serde<
        T: Component<Mutability = Mutable> + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self;
    /// Rolls back a resource by cloning it, and sends it to late joiners.
    fn rollback_resource_with_serde<
        R: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self;
    /// Rolls back a `Copy` resource.
    fn rollback_resource_with_copy<R: Resource + Copy>(&mut self) -> &mut Self;
    /// Fixes a rolled-back component's entity references when rollback
    /// respawns entities.
    fn rollback_component_map_entities<T: Component<Mutability = Mutable> + Clone + MapEntities>(
        &mut self,
    ) -> &mut Self;
    /// Fixes a rolled-back resource's entity references.
    fn rollback_resource_map_entities<R: Resource + Clone + MapEntities>(&mut self) -> &mut Self;
    /// Includes a component in checksums, hashed with `Hash`; a desync names it.
    /// Only for types without `Entity` fields: entity ids differ between peers
    /// (use [`RollbackApp::checksum_component`] and hash the other fields).
    fn checksum_component_with_hash<T: Component<Mutability = Mutable> + Clone + Hash>(
        &mut self,
    ) -> &mut Self;
    /// Includes a component in checksums, hashed with `f`.
    fn checksum_component<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
        f: fn(&T) -> u64,
    ) -> &mut Self;
    /// Includes a resource in checksums, hashed with `Hash`.
    fn checksum_resource_with_hash<R: Resource + Clone + Hash>(&mut self) -> &mut Self;
    /// Includes a resource in checksums, hashed with `f`.
    fn checksum_resource<R: Resource + Clone>(&mut self, f: fn(&R) -> u64) -> &mut Self;
    /// Rolls back a message type: messages written in a rollback frame are read
    /// in that frame and are gone before the next one (and on load).
    fn rollback_message<M: Message>(&mut self) -> &mut Self;
    /// Rolls back a state: `State<S>` and `NextState<S>` are restored on load,
    /// and transitions run at the start of each rollback frame. The state is
    /// sent to late joiners with serde.
    fn rollback_state<
        S: FreelyMutableState + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self;
}

fn registry(app: &mut App) -> Mut<'_, Registry> {
    if !app.world().contains_resource::<Registry>() {
        app.init_resource::<Registry>();
    }
    app.world_mut().resource_mut::<Registry>()
}

impl RollbackApp for App {
    fn rollback_component_with_clone<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
    ) -> &mut Self {
        let mut r = registry(self);
        if r.find::<ComponentSnapshot<T>>().is_none() {
            r.types.push(Box::new(ComponentSnapshot::<T>::new()));
        }
        self
    }

    fn rollback_component_with_copy<T: Component<Mutability = Mutable> + Copy>(
        &mut self,
    ) -> &mut Self {
        self.rollback_component_with_clone::<T>()
    }

    fn rollback_immutable_component<T: Component + Clone + PartialEq>(
        &mut self,
        map: Option<fn(&mut T, &mut bevy_ecs::entity::EntityHashMap<Entity>)>,
    ) -> &mut Self {
        let mut r = registry(self);
        if r.find::<ImmutableSnapshot<T>>().is_none() {
            r.types
                .push(Box::new(ImmutableSnapshot::<T>::new(map, None)));
        }
        self
    }

    fn rollback_resource_with_clone<R: Resource + Clone>(&mut self) -> &mut Self {
        let mut r = registry(self);
        if r.find::<ResourceSnapshot<R>>().is_none() {
            r.types.push(Box::new(ResourceSnapshot::<R>::new()));
        }
        self
    }

    fn rollback_resource_with_copy<R: Resource + Copy>(&mut self) -> &mut Self {
        self.rollback_resource_with_clone::<R>()
    }

    fn rollback_component_with_serde<
        T: Component<Mutability = Mutable> + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self {
        self.rollback_component_with_clone::<T>();
        registry(self).component_serde::<T>();
        self
    }

    fn rollback_resource_with_serde<
        R: Resource + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self {
        self.rollback_resource_with_clone::<R>();
        registry(self).resource_serde::<R>();
        self
    }

    fn rollback_component_map_entities<T: Component<Mutability = Mutable> + Clone + MapEntities>(
        &mut self,
    ) -> &mut Self {
        self.rollback_component_with_clone::<T>();
        registry(self).component_map::<T>();
        self
    }

    fn rollback_resource_map_entities<R: Resource + Clone + MapEntities>(&mut self) -> &mut Self {
        self.rollback_resource_with_clone::<R>();
        registry(self).resource_map::<R>();
        self
    }

    fn checksum_component_with_hash<T: Component<Mutability = Mutable> + Clone + Hash>(
        &mut self,
    ) -> &mut Self {
        registry(self).component_checksum::<T>(|t| stable_hash(t));
        self
    }

    fn checksum_component<T: Component<Mutability = Mutable> + Clone>(
        &mut self,
        f: fn(&T) -> u64,
    ) -> &mut Self {
        registry(self).component_checksum::<T>(f);
        self
    }

    fn checksum_resource_with_hash<R: Resource + Clone + Hash>(&mut self) -> &mut Self {
        registry(self).resource_checksum::<R>(|r| stable_hash(r));
        self
    }

    fn checksum_resource<R: Resource + Clone>(&mut self, f: fn(&R) -> u64) -> &mut Self {
        registry(self).resource_checksum::<R>(f);
        self
    }

    fn rollback_message<M: Message>(&mut self) -> &mut Self {
        self.add_message::<M>();
        registry(self)
            .types
            .push(Box::new(MessageSnapshot::<M>(PhantomData)));
        self.world_mut()
            .get_resource_or_insert_with(MessageClears::default)
            .0
            .push(clear_messages::<M>);
        self
    }

    fn rollback_state<
        S: FreelyMutableState + Clone + serde::Serialize + serde::de::DeserializeOwned,
    >(
        &mut self,
    ) -> &mut Self {
        self.rollback_resource_with_clone::<NextState<S>>();
        if let Some(s) = registry(self).find::<ResourceSnapshot<NextState<S>>>() {
            s.serde = Some(ResourceSerde {
                ser: |n| {
                    let pending = n.as_ref().map(|n| match n {
                        NextState::Unchanged => None,
                        NextState::Pending(s) => Some((s.clone(), true)),
                        NextState::PendingIfDifferent(s) => Some((s.clone(), false)),
                    });
                    encode(&pending)
                },
                de: |b| {
                    Ok(decode::<Option<Option<(S, bool)>>>(b)?.map(|n| match n {
                        None => NextState::Unchanged,
                        Some((s, true)) => NextState::Pending(s),
                        Some((s, false)) => NextState::PendingIfDifferent(s),
                    }))
                },
            });
        }
        registry(self)
            .types
            .push(Box::new(StateSnapshot::<S>(Vec::new())));
        self.world_mut()
            .get_resource_or_insert_with(RollbackStates::default)
            .0 = true;
        self
    }
}

/// Whether any state is rolled back (then transitions run in rollback frames).
#[derive(Resource, Default)]
struct RollbackStates(bool);

/// Messages in rollback live for one frame (they are cleared before each
/// rollback frame and on load), so there is nothing to save. The last frame's
/// messages stay readable by ordinary systems until the next rollback frame.
struct MessageSnapshot<M: Message>(PhantomData<fn() -> M>);

impl<M: Message> crate::snapshot::Snapshotter for MessageSnapshot<M> {
    fn name(&self) -> &'static str {
        std::any::type_name::<M>()
    }
    fn save(&mut self, _: &mut World, _: usize, _: Frame) -> Option<u64> {
        None
    }
    fn load(&mut self, world: &mut World, _: usize, _: Frame, _: &mut LoadContext<'_>) {
        if let Some(mut m) = world.get_resource_mut::<Messages<M>>() {
            m.clear();
        }
    }
    fn write(&mut self, _: usize, _: Frame) -> Result<Vec<u8>, String> {
        Ok(Vec::new())
    }
    fn read(
        &mut self,
        world: &mut World,
        _: &[u8],
        cx: &mut LoadContext<'_>,
    ) -> Result<(), String> {
        self.load(world, 0, 0, cx);
        Ok(())
    }
}

/// `State<S>` snapshots (it is not `Clone`, so it is rebuilt on load).
struct StateSnapshot<S: FreelyMutableState + Clone>(Vec<(Frame, Option<S>)>);

impl<S: FreelyMutableState + Clone + serde::Serialize + serde::de::DeserializeOwned>
    crate::snapshot::Snapshotter for StateSnapshot<S>
{
    fn write(&mut self, len: usize, frame: Frame) -> Result<Vec<u8>, String> {
        encode(crate::snapshot::saved(&self.0, len, frame, self.name())?)
    }
    fn read(
        &mut self,
        world: &mut World,
        bytes: &[u8],
        _: &mut LoadContext<'_>,
    ) -> Result<(), String> {
        match decode::<Option<S>>(bytes)? {
            Some(s) => world.insert_resource(State::new(s)),
            None => {
                world.remove_resource::<State<S>>();
            }
        }
        Ok(())
    }
    fn name(&self) -> &'static str {
        std::any::type_name::<State<S>>()
    }
    fn save(&mut self, world: &mut World, len: usize, frame: Frame) -> Option<u64> {
        if self.0.len() != len {
            self.0 = vec![(Frame::MAX, None); len.max(1)];
        }
        let at = frame as usize % self.0.len();
        self.0[at] = (
            frame,
            world.get_resource::<State<S>>().map(|s| s.get().clone()),
        );
        None
    }
    fn load(&mut self, world: &mut World, len: usize, frame: Frame, _: &mut LoadContext<'_>) {
        if self.0.len() != len {
            return;
        }
        match &self.0[frame as usize % len] {
            (f, Some(s)) if *f == frame => world.insert_resource(State::new(s.clone())),
            (f, None) if *f == frame => {
                world.remove_resource::<State<S>>();
            }
            _ => tracing::error!("rollback: no snapshot of {} at frame {frame}", self.name()),
        }
    }
}

/// Runs due frames: reads inputs, advances the session, carries out its
/// requests, and forwards its events.
pub(crate) fn drive<I: Input>(world: &mut World) {
    if !world.contains_resource::<RollbackSocket<I>>() {
        return;
    }
    let clock = world.resource::<Settings>().clock;
    world.resource_scope(|world, mut socket: Mut<RollbackSocket<I>>| {
        let now = Instant::now();
        socket.update(now);
        let mut frames = 0;
        while frames < MAX_FRAMES_PER_UPDATE {
            let Some(session) = socket.session_mut() else {
                break;
            };
            let due = match clock {
                FrameClock::Session => session.frame_due(now),
                FrameClock::EveryUpdate => frames == 0 && session.frame_ready(),
            };
            if !due {
                break;
            }
            let local = session.local_slots();
            world.resource_mut::<LocalPlayers>().0.clone_from(&local);
            world.resource_mut::<LocalInputs<I>>().0.clear();
            world.run_schedule(ReadInputs);
            let inputs = world.resource::<LocalInputs<I>>().0.clone();
            for slot in local {
                let input = inputs.get(&slot).copied().unwrap_or_default();
                let _ = session.add_local_input(slot, input);
            }
            match session.advance_frame(now) {
                Ok(requests) => run_requests(world, session, requests),
                Err(RollbackError::Stalled) => break,
                Err(e) => {
                    tracing::warn!("rollback: {e}");
                    break;
                }
            }
            frames += 1;
        }
        socket.flush();
        while let Some(event) = socket.poll_event() {
            world.write_message(SessionEvent(event));
        }
        // Peers and application messages, as the mesh plugin's messages
        // (read every frame, so what peers send cannot pile up).
        // Replication over this mesh takes its messages, and its sends go out.
        if let Some(net) = socket.net_mut() {
            let events: Vec<gamenet::Event> = std::iter::from_fn(|| net.poll_event()).collect();
            let shared = world.get_resource::<SharedMesh>().cloned();
            if let Some(shared) = &shared {
                shared.pump(net);
            }
            for event in events {
                if shared.as_ref().is_some_and(|s| s.take(&event)) {
                    continue;
                }
                crate::write_event(world, event);
            }
        }
    });
}

/// Sends what a layer sharing this session's mesh (replication over
/// rollback) queued.
fn pump_link<I: Input>(link: Option<Res<SharedMesh>>, socket: Option<ResMut<RollbackSocket<I>>>) {
    if let (Some(link), Some(net)) = (link, socket.and_then(|s| s.into_inner().net_mut())) {
        link.pump(net);
    }
}

/// Carries out a session's requests on the world.
pub fn run_requests<I: Input>(
    world: &mut World,
    session: &mut RollbackSession<I>,
    requests: Vec<Request<I>>,
) {
    let settings = world.resource::<Settings>().clone();
    world.resource_scope(|world, mut registry: Mut<Registry>| {
        let registry = &mut *registry;
        for request in requests {
            match request {
                Request::Save { frame } => {
                    let mut parts = Vec::new();
                    let mut total = 0u64;
                    for t in &mut registry.types {
                        if let Some(sum) = t.save(world, settings.ring, frame) {
                            total = total.rotate_left(5) ^ sum;
                            parts.push(ChecksumPart {
                                name: t.name().into(),
                                value: sum,
                            });
                        }
                    }
                    session.set_checksum(frame, Checksum { total, parts });
                }
                Request::Load { frame } => {
                    let mut cx = LoadContext {
                        remap: &mut registry.remap,
                    };
                    for t in &mut registry.types {
                        t.load(world, settings.ring, frame, &mut cx);
                    }
                    world.resource_mut::<RollbackFrame>().0 = frame;
                }
                Request::Advance { frame, inputs } => {
                    world.resource_mut::<RollbackFrame>().0 = frame;
                    world.insert_resource(PlayerInputs(inputs));
                    advance(world, settings.step);
                    world.resource_mut::<RollbackFrame>().0 = frame + 1;
                }
                Request::Snapshot { frame } => match registry.write_all(settings.ring, frame) {
                    Ok(data) => session.submit_snapshot(frame, data),
                    Err(reason) => {
                        tracing::warn!("rollback: turning a late joiner away: {reason}");
                        session.decline_snapshot(frame, &reason);
                    }
                },
                Request::LoadSnapshot { frame, data } => {
                    if let Err(e) = registry.read_all(world, &data) {
                        tracing::error!("rollback: the host's snapshot does not load: {e}");
                    }
                    world.resource_mut::<RollbackFrame>().0 = frame;
                }
            }
        }
        // Respawn mappings only matter while snapshots from before them exist.
        if registry.remap.len() > 4096 {
            registry.remap.clear();
        }
    });
}

/// Runs one rollback frame with the rollback clock as `Time`.
fn advance(world: &mut World, step: Duration) {
    world.resource_mut::<Time<RollbackTime>>().advance_by(step);
    let rollback_time = world.resource::<Time<RollbackTime>>().as_generic();
    let outer = world.remove_resource::<Time>();
    world.insert_resource(rollback_time);
    let clears = world.get_resource::<MessageClears>().map(|c| c.0.clone());
    for clear in clears.into_iter().flatten() {
        clear(world);
    }
    if world.get_resource::<RollbackStates>().is_some_and(|s| s.0) {
        let _ = world.try_run_schedule(StateTransition);
    }
    world.run_schedule(RollbackSchedule);
    match outer {
        Some(outer) => world.insert_resource(outer),
        None => {
            world.remove_resource::<Time>();
        }
    }
}

/// Clears every rolled-back message type; run before each rollback frame.
#[derive(Resource, Default, Clone)]
struct MessageClears(Vec<fn(&mut World)>);

fn clear_messages<M: Message>(world: &mut World) {
    if let Some(mut m) = world.get_resource_mut::<Messages<M>>() {
        m.clear();
    }
}

/// What the last rate measurement started from.
#[derive(Default)]
struct RateMark {
    at: Option<Instant>,
    frame: Frame,
    resimulated: u64,
    desyncs: u64,
}

/// How often rates are measured.
const RATE_PERIOD: Duration = Duration::from_millis(250);

fn diagnostics<I: Input>(
    socket: Option<Res<RollbackSocket<I>>>,
    mut events: MessageReader<SessionEvent>,
    mut mark: Local<RateMark>,
    mut diagnostics: Diagnostics,
) {
    let desyncs = events
        .read()
        .filter(|e| matches!(e.0, RollbackEvent::DesyncDetected { .. }))
        .count() as u64;
    mark.desyncs += desyncs;
    let Some(socket) = socket else {
        return;
    };
    if let Some(net) = socket.net_ref() {
        let mesh = net.mesh();
        let stats: Vec<_> = mesh.peers().filter_map(|p| mesh.stats(p)).collect();
        diagnostics.add_measurement(&PEERS, || stats.len() as f64);
        if let Some(rtt) = stats.iter().filter_map(|s| s.rtt).max() {
            diagnostics.add_measurement(&RTT_MS, || rtt.as_secs_f64() * 1e3);
        }
        diagnostics.add_measurement(&LOSS_PERCENT, || {
            stats
                .iter()
                .map(|s| s.loss as f64 * 100.0)
                .fold(0.0, f64::max)
        });
        diagnostics.add_measurement(&BYTES_IN_PER_SEC, || {
            stats.iter().map(|s| s.bytes_in_per_sec).sum()
        });
        diagnostics.add_measurement(&BYTES_OUT_PER_SEC, || {
            stats.iter().map(|s| s.bytes_out_per_sec).sum()
        });
    }
    let total_desyncs = mark.desyncs;
    diagnostics.add_measurement(&DESYNCS, || total_desyncs as f64);
    let Some(stats) = socket.session().map(|s| s.stats()) else {
        return;
    };
    let now = Instant::now();
    match mark.at {
        Some(at) if now.duration_since(at) < RATE_PERIOD => {}
        Some(at) => {
            let secs = now.duration_since(at).as_secs_f64();
            let frames = stats.frame.saturating_sub(mark.frame) as f64 / secs;
            let resimulated =
                stats.resimulated_frames.saturating_sub(mark.resimulated) as f64 / secs;
            diagnostics.add_measurement(&FRAMES_PER_SEC, || frames);
            diagnostics.add_measurement(&RESIMULATED_PER_SEC, || resimulated);
            (mark.at, mark.frame, mark.resimulated) =
                (Some(now), stats.frame, stats.resimulated_frames);
        }
        None => {
            (mark.at, mark.frame, mark.resimulated) =
                (Some(now), stats.frame, stats.resimulated_frames);
        }
    }
}
