//! [`RollbackPlugin`]: wires the schedules, resources, snapshots and systems
//! of rollback, and starts the session.

use std::marker::PhantomData;
use std::time::Duration;

use bevy_app::{App, Plugin, PostUpdate, PreUpdate};
use bevy_ecs::prelude::*;
use bevy_ecs::schedule::SingleThreadedExecutor;
use bevy_time::Time;
#[cfg(feature = "memory")]
use gamenet::MemoryTransport;
use gamenet::PeerMeshBuilder;
use gamenet::rollback::{Input, RollbackConfig, RollbackNet, RollbackStart, SyncTestSession};

use super::app_ext::register_builtins;
use super::drive::{FrameClock, Settings, drive, pump_link};
use super::{
    LocalInputs, LocalPlayers, ReadInputs, RollbackFrame, RollbackIds, RollbackSchedule,
    RollbackSocket, RollbackTime, SessionEvent, diagnostics,
};
use crate::snapshot::SnapshotLimits;
use crate::{Failures, GamenetSet};

/// How the plugin gets its session.
enum Setup {
    /// A local sync test re-simulating this many frames.
    SyncTest(u32),
    /// A mesh to connect, how to start, and this player's reconnect key.
    Net(Box<PeerMeshBuilder>, RollbackStart, u64),
    /// The app inserts a [`RollbackSocket`] itself.
    Manual,
    /// A simulated network's transport, how to start, this player's key.
    #[cfg(feature = "memory")]
    Memory(Box<MemoryTransport>, RollbackStart, u64),
}

/// Rollback for a Bevy app with inputs of type `I`.
pub struct RollbackPlugin<I: Input> {
    /// The session's settings.
    config: RollbackConfig,
    /// Who decides when frames run.
    clock: FrameClock,
    /// How to get the session; taken when the plugin is built.
    setup: std::sync::Mutex<Option<Setup>>,
    /// The input type.
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

    /// Plays over a simulated network, for tests (see
    /// `test_app::TestNetwork`): starts as `start` says; `key` identifies
    /// this player for reconnecting.
    #[cfg(feature = "memory")]
    pub fn memory(
        config: RollbackConfig,
        transport: MemoryTransport,
        start: RollbackStart,
        key: u64,
    ) -> Self {
        Self::with(config, Setup::Memory(Box::new(transport), start, key))
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

impl<I: Input> Plugin for RollbackPlugin<I> {
    fn build(&self, app: &mut App) {
        crate::add_shared(app);
        let setup = self.setup.lock().ok().and_then(|mut s| s.take());
        app.insert_resource(settings(&self.config, self.clock, setup.as_ref()))
            .init_resource::<LocalPlayers>()
            .init_resource::<LocalInputs<I>>()
            .init_resource::<RollbackFrame>()
            .init_resource::<RollbackIds>()
            .init_resource::<SnapshotLimits>()
            .insert_resource(Time::<RollbackTime>::default())
            .add_message::<SessionEvent>()
            .init_schedule(ReadInputs)
            .init_schedule(RollbackSchedule)
            .edit_schedule(RollbackSchedule, |s| {
                // One order of systems on every peer and every re-run.
                s.set_executor(SingleThreadedExecutor::new());
            })
            .add_systems(PreUpdate, drive::<I>.in_set(GamenetSet::ReceivePackets))
            .add_systems(PostUpdate, pump_link::<I>.in_set(GamenetSet::SendPackets))
            .add_systems(
                PostUpdate,
                diagnostics::measure::<I>.after(GamenetSet::SendPackets),
            );
        diagnostics::register(app);
        crate::conditions::follow::<RollbackSocket<I>>(app);
        crate::diagnostics::measure_mesh::<RollbackSocket<I>>(app);
        register_builtins(app);
        let failures = app.world().resource::<Failures>().clone();
        if let Some(socket) = setup.and_then(|setup| start::<I>(&self.config, setup, &failures)) {
            app.insert_resource(socket);
        }
    }

    fn finish(&self, app: &mut App) {
        crate::state::init(app);
        // Every type is registered by now, and no link is up yet.
        let mut first = vec![format!("rollback input {}", std::any::type_name::<I>())];
        first.extend(
            crate::snapshot::registered_names(app.world())
                .into_iter()
                .map(|name| format!("rollback {name}")),
        );
        let schema = crate::schema::of(app.world(), first);
        if let Some(mut socket) = app.world_mut().get_resource_mut::<RollbackSocket<I>>() {
            socket.set_schema(schema.clone());
        }
        app.insert_resource(Later::<I> {
            config: self.config.clone(),
            schema,
            _input: PhantomData,
        });
    }
}

/// What a later connection ([`ConnectRollback`]) starts with: the session's
/// settings and the registered types.
#[derive(Resource)]
struct Later<I: Input> {
    config: RollbackConfig,
    schema: gamenet::TypeSchema,
    _input: PhantomData<fn() -> I>,
}

/// Connects the rollback game of an app set up with
/// [`RollbackPlugin::manual`], once it knows where to play (say, after
/// choosing a lobby: see [`lobby`](crate::lobby)): `commands.queue(ConnectRollback::<I>::new(..))`.
/// A mesh that cannot be built is a [`ConnectionFailed`](crate::ConnectionFailed);
/// an app that already has a session keeps it.
pub struct ConnectRollback<I: Input> {
    builder: PeerMeshBuilder,
    slots: Option<usize>,
    start: RollbackStart,
    key: u64,
    _input: PhantomData<fn() -> I>,
}

impl<I: Input> ConnectRollback<I> {
    /// Connects with `builder` and starts as `start` says; `key` identifies
    /// this player for reconnecting.
    pub fn new(builder: PeerMeshBuilder, start: RollbackStart, key: u64) -> Self {
        Self {
            builder,
            slots: None,
            start,
            key,
            _input: PhantomData,
        }
    }

    /// Sets the session's player slots (say, the lobby's most players)
    /// instead of the plugin's `num_players`.
    pub fn slots(mut self, slots: usize) -> Self {
        self.slots = Some(slots);
        self
    }
}

impl<I: Input> Command for ConnectRollback<I> {
    type Out = ();

    fn apply(self, world: &mut World) {
        let failures = world.resource::<Failures>().clone();
        if world.contains_resource::<RollbackSocket<I>>() {
            tracing::warn!("rollback: already connected; the new connection is not made");
            return;
        }
        let Some(later) = world.get_resource::<Later<I>>() else {
            failures.push("rollback: connected before the app was built".into());
            return;
        };
        let (mut config, schema) = (later.config.clone(), later.schema.clone());
        if let Some(slots) = self.slots {
            config.num_players = slots;
        }
        world.remove_resource::<crate::state::Choosing>();
        let setup = Setup::Net(Box::new(self.builder), self.start, self.key);
        if let Some(mut socket) = start::<I>(&config, setup, &failures) {
            socket.set_schema(schema);
            world.insert_resource(socket);
        }
    }
}

/// The driver's settings: a ring long enough for the prediction window (and
/// a sync test's distance), the frame step, the clock.
fn settings(config: &RollbackConfig, clock: FrameClock, setup: Option<&Setup>) -> Settings {
    let ring = config.prediction_window as usize + 2;
    let ring = match setup {
        Some(Setup::SyncTest(d)) => ring.max(*d as usize + 2),
        _ => ring,
    };
    Settings {
        ring,
        step: Duration::from_secs_f64(1.0 / config.fps.max(1) as f64),
        clock,
    }
}

/// The session a setup asks for: a sync test, or a mesh connecting (its
/// driver spawned); none for a manual setup or on an error (noted in
/// `failures`, written as [`ConnectionFailed`](crate::ConnectionFailed)).
fn start<I: Input>(
    config: &RollbackConfig,
    setup: Setup,
    failures: &Failures,
) -> Option<RollbackSocket<I>> {
    match setup {
        Setup::SyncTest(distance) => match SyncTestSession::<I>::new(config.clone(), distance) {
            Ok(s) => Some(RollbackSocket::sync_test(s)),
            Err(e) => {
                failures.push(format!("rollback: {e}"));
                None
            }
        },
        Setup::Net(builder, start, key) => {
            let (mesh, driver) = failures.build("rollback", *builder)?;
            crate::spawn_driver(driver, Some(failures.clone()));
            Some(RollbackSocket::net(RollbackNet::<I>::new(
                mesh,
                config.clone(),
                start,
                key,
            )))
        }
        Setup::Manual => None,
        #[cfg(feature = "memory")]
        Setup::Memory(transport, start, key) => Some(RollbackSocket::memory(RollbackNet::new(
            *transport,
            config.clone(),
            start,
            key,
        ))),
    }
}
