//! [`GamenetPlugin`], the one plugin a game adds: where to play (a server
//! and a room, quick-match or lobby code, or a mesh builder of its own), what
//! to run on the connection (the mesh alone, rollback, replication, or
//! rollback and replication together), and the ICE servers taken from the
//! signaling server and fetched again while the game runs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bevy_app::{App, Plugin, PreUpdate};
use bevy_ecs::prelude::*;
use gamenet::lobby::{LobbyClient, LobbyError};
use gamenet::replication::ReplicationConfig;
use gamenet::rollback::{Input, RollbackConfig, RollbackStart};
use gamenet::{IceServer, Instant, PeerMesh, PeerMeshBuilder};

use crate::conditions::FreshIce;
use crate::mesh::{MeshSocket, receive};
use crate::replication::{ConnectReplication, ReplicationPlugin};
use crate::rollback::{ConnectRollback, RollbackPlugin};
use crate::{Failures, GamenetSet, NetClock, PeerInterrupted, add_shared, spawn_driver};

/// Where the players meet on a `gamenet-signaling` server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Room {
    /// The room of this name: everyone who asks for it meets there.
    Named(String),
    /// The next quick-match group of `players` in `mode` (any name; empty
    /// for the server's default): the game starts when the group is full.
    QuickMatch {
        /// The game mode, grouping players who want the same game.
        mode: String,
        /// Players in a group.
        players: usize,
    },
    /// The lobby of this join code (see [`lobby`](crate::lobby)): refused
    /// when there is none or it is full; its size is the game's.
    Lobby(String),
}

/// Where a task on the IO pool leaves its answer for the next frame.
type Slot<T> = Arc<Mutex<Option<T>>>;

/// Fills in what the plugin's own settings leave open on the mesh builder.
type Configure = Arc<dyn Fn(PeerMeshBuilder) -> PeerMeshBuilder + Send + Sync>;

/// How the chosen layers connect once the place to play is known.
#[derive(Clone, Copy)]
enum Layers {
    /// The mesh alone, as [`MeshSocket`].
    Mesh,
    /// Replication on a mesh of its own.
    Replication,
    /// Rollback (and replication over it, if asked).
    Rollback {
        /// Queues the rollback plugin's connection.
        connect: fn(&mut World, PeerMeshBuilder, RollbackStart, u64, Option<usize>),
        /// How the session starts; by default once the room's players are in.
        start: Option<RollbackStart>,
        /// The player's key for reconnecting.
        key: u64,
        /// The players the settings ask for, when the room does not say.
        players: usize,
    },
}

/// Rollback with inputs `I`, type-erased so the plugin is not generic.
struct RollbackPart {
    /// Adds `RollbackPlugin::<I>::manual`.
    add: Box<dyn Fn(&mut App) + Send + Sync>,
    /// `ReplicationPlugin::over_rollback::<I>`.
    replication: fn(ReplicationConfig) -> ReplicationPlugin,
    /// `ConnectRollback::<I>` queued.
    connect: fn(&mut World, PeerMeshBuilder, RollbackStart, u64, Option<usize>),
    start: Option<RollbackStart>,
    key: Option<u64>,
    players: usize,
}

/// The one plugin of a gamenet game: the mesh's messages and the
/// [`Connection`](crate::Connection) state, and, as asked, rollback and
/// replication on one connection, made with the room and ICE servers the
/// signaling server gives.
///
/// ```no_run
/// use bevy_app::App;
/// use bevy_gamenet::prelude::*;
///
/// # #[derive(Clone, Copy, PartialEq, Default, Debug, serde::Serialize, serde::Deserialize, Input)]
/// # struct Pad(u8);
/// App::new().add_plugins(
///     GamenetPlugin::server("wss://play.example.org")
///         .room(Room::QuickMatch { mode: "duel".into(), players: 2 })
///         .app_id("my-game/1")
///         .rollback::<Pad>(RollbackConfig::default())
///         .replication(ReplicationConfig::default()),
/// );
/// ```
///
/// With a server, the plugin reaches it on Bevy's IO task pool when the app
/// starts: the lobby's size (for [`Room::Lobby`]) and the ICE servers (unless
/// [`ice_servers`](Self::ice_servers) sets them), then connects at the next
/// frame. It asks the server for ICE servers again every
/// [`ice_refresh`](Self::ice_refresh) and whenever a peer goes silent, so
/// that TURN credentials stay fresh for reconnections under a running game
/// ([`IceRefreshed`] says so). Anything that fails comes as
/// [`ConnectionFailed`](crate::ConnectionFailed), never only in the log.
///
/// [`GamenetPlugin::default`] connects nothing: the app inserts a
/// [`MeshSocket`] itself.
pub struct GamenetPlugin {
    /// A mesh of the app's own making, instead of a server and room.
    builder: Option<PeerMeshBuilder>,
    /// The signaling server.
    server: Option<String>,
    /// The server's access token, if it wants one.
    token: Option<String>,
    /// Where to play on the server.
    room: Option<Room>,
    /// ICE servers that replace the server's.
    ice: Option<Vec<IceServer>>,
    /// The game's name and version for the handshake.
    app_id: Option<String>,
    /// More mesh settings.
    configure: Option<Configure>,
    /// Rollback, if asked.
    rollback: Option<RollbackPart>,
    /// Replication, if asked.
    replication: Option<ReplicationConfig>,
    /// How often ICE servers are fetched again.
    ice_refresh: Duration,
}

impl Default for GamenetPlugin {
    fn default() -> Self {
        Self {
            builder: None,
            server: None,
            token: None,
            room: None,
            ice: None,
            app_id: None,
            configure: None,
            rollback: None,
            replication: None,
            ice_refresh: DEFAULT_ICE_REFRESH,
        }
    }
}

/// How often a plugin with a server fetches ICE servers again by default:
/// well within the hour that `gamenet-signaling`'s TURN credentials last.
pub const DEFAULT_ICE_REFRESH: Duration = Duration::from_secs(20 * 60);

/// Fewest seconds between two fetches that peers going silent set off.
const ICE_RETRY: Duration = Duration::from_secs(5);

impl GamenetPlugin {
    /// Plays on the `gamenet-signaling` server at `server` (`ws://`, `wss://`,
    /// `http://` or `https://`, host and port; a path is ignored), in a
    /// quick-match group of two unless [`room`](Self::room) says otherwise
    /// (or of the rollback settings' `num_players`).
    pub fn server(server: impl Into<String>) -> Self {
        Self {
            server: Some(server.into()),
            ..Self::default()
        }
    }

    /// Connects with `builder` as it is (its room URL and ICE servers): at
    /// once for the mesh alone, at the first frame with rollback or
    /// replication.
    pub fn connect(builder: PeerMeshBuilder) -> Self {
        Self {
            builder: Some(builder),
            ..Self::default()
        }
    }

    /// Where to play on the server.
    pub fn room(mut self, room: Room) -> Self {
        self.room = Some(room);
        self
    }

    /// The server's access token (its `--auth-secret`), for its API and rooms.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Uses these ICE servers instead of asking the server for its own
    /// (they are then never fetched again).
    pub fn ice_servers(mut self, servers: impl IntoIterator<Item = IceServer>) -> Self {
        self.ice = Some(servers.into_iter().collect());
        self
    }

    /// The game's name and version: peers with another fail the handshake.
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.app_id = Some(app_id.into());
        self
    }

    /// Sets more of the mesh's settings (timeouts, reconnect key, link
    /// conditioner) on the builder the plugin makes.
    pub fn mesh(
        mut self,
        configure: impl Fn(PeerMeshBuilder) -> PeerMeshBuilder + Send + Sync + 'static,
    ) -> Self {
        self.configure = Some(Arc::new(configure));
        self
    }

    /// Runs a rollback session with inputs `I` on the connection (see
    /// [`RollbackPlugin`]). It starts once the room's players are in: the
    /// quick-match group's or lobby's size, or `config.num_players`.
    pub fn rollback<I: Input>(mut self, config: RollbackConfig) -> Self {
        let players = config.num_players;
        self.rollback = Some(RollbackPart {
            add: Box::new(move |app| {
                app.add_plugins(RollbackPlugin::<I>::manual(config.clone()));
            }),
            replication: ReplicationPlugin::over_rollback::<I>,
            connect: connect_rollback::<I>,
            start: None,
            key: None,
            players,
        });
        self
    }

    /// How the rollback session starts (to join a running one, say);
    /// after [`rollback`](Self::rollback).
    pub fn rollback_start(mut self, start: RollbackStart) -> Self {
        if let Some(part) = &mut self.rollback {
            part.start = Some(start);
        }
        self
    }

    /// This player's key for taking its rollback slot back after a restart
    /// (random by default); after [`rollback`](Self::rollback).
    pub fn rollback_key(mut self, key: u64) -> Self {
        if let Some(part) = &mut self.rollback {
            part.key = Some(key);
        }
        self
    }

    /// Replicates entities on the connection (see [`ReplicationPlugin`]),
    /// over the rollback session's mesh when there is one.
    pub fn replication(mut self, config: ReplicationConfig) -> Self {
        self.replication = Some(config);
        self
    }

    /// How often ICE servers are fetched again from the server
    /// ([`DEFAULT_ICE_REFRESH`] by default).
    pub fn ice_refresh(mut self, every: Duration) -> Self {
        self.ice_refresh = every;
        self
    }

    /// How the layers connect.
    fn layers(&self) -> Layers {
        match (&self.rollback, &self.replication) {
            (Some(part), _) => Layers::Rollback {
                connect: part.connect,
                start: part.start,
                key: part
                    .key
                    .unwrap_or_else(|| uuid::Uuid::new_v4().as_u64_pair().0),
                players: part.players,
            },
            (None, Some(_)) => Layers::Replication,
            (None, None) => Layers::Mesh,
        }
    }

    /// The server's client, if the plugin has a server.
    fn client(&self) -> Option<LobbyClient> {
        let mut client = LobbyClient::new(self.server.as_deref()?);
        if let Some(token) = &self.token {
            client = client.token(token.clone());
        }
        Some(client)
    }
}

impl Plugin for GamenetPlugin {
    fn build(&self, app: &mut App) {
        add_shared(app);
        crate::conditions::follow::<MeshSocket>(app);
        crate::diagnostics::measure_mesh::<MeshSocket>(app);
        app.add_message::<IceRefreshed>()
            .add_systems(PreUpdate, receive.in_set(GamenetSet::ReceivePackets));
        if let Some(part) = &self.rollback {
            (part.add)(app);
        }
        if let Some(config) = self.replication.clone() {
            app.add_plugins(match &self.rollback {
                Some(part) => (part.replication)(config),
                None => ReplicationPlugin::manual(config),
            });
        }
        let layers = self.layers();
        let client = self.client();
        if let (Some(client), None) = (&client, &self.ice) {
            app.insert_resource(IceSource {
                client: client.clone(),
                every: self.ice_refresh,
                next: None,
                fetched: Arc::default(),
                asking: false,
                calm_until: None,
            })
            .add_systems(PreUpdate, refresh_ice.after(GamenetSet::ReceivePackets));
        }
        let place = Arc::new(Mutex::new(None));
        if let Some(builder) = self.builder.clone() {
            if matches!(layers, Layers::Mesh) {
                // The mesh alone connects at once, as it always has.
                connect(app.world_mut(), self.finish_builder(builder), layers, None);
                return;
            }
            *lock(&place) = Some(Ok(Place {
                builder,
                players: None,
            }));
        } else if let Some(client) = client {
            let room = self.room.clone().unwrap_or(Room::QuickMatch {
                mode: String::new(),
                players: match layers {
                    Layers::Rollback { players, .. } => players,
                    _ => 2,
                },
            });
            if matches!(room, Room::Lobby(_)) {
                app.insert_resource(crate::state::Choosing);
            }
            let (ice, found) = (self.ice.clone(), place.clone());
            bevy_tasks::IoTaskPool::get_or_init(bevy_tasks::TaskPool::new)
                .spawn(async move {
                    let resolved = resolve(&client, &room, ice).await;
                    *lock(&found) = Some(resolved);
                })
                .detach();
        } else {
            return;
        }
        app.insert_resource(Plan {
            layers,
            app_id: self.app_id.clone(),
            configure: self.configure.clone(),
            place,
        })
        .add_systems(
            PreUpdate,
            connect_when_found.before(GamenetSet::ReceivePackets),
        );
    }

    fn finish(&self, app: &mut App) {
        crate::state::init(app);
    }
}

impl GamenetPlugin {
    /// `builder` with the plugin's app id and settings.
    fn finish_builder(&self, builder: PeerMeshBuilder) -> PeerMeshBuilder {
        finish_builder(builder, self.app_id.as_deref(), self.configure.as_ref())
    }
}

/// `builder` with the app id and settings.
fn finish_builder(
    mut builder: PeerMeshBuilder,
    app_id: Option<&str>,
    configure: Option<&Configure>,
) -> PeerMeshBuilder {
    if let Some(app_id) = app_id {
        builder = builder.app_id(app_id);
    }
    match configure {
        Some(configure) => configure(builder),
        None => builder,
    }
}

/// Where to connect, as the server told.
struct Place {
    /// The mesh, with its room URL and ICE servers.
    builder: PeerMeshBuilder,
    /// The players the room is for, if it says.
    players: Option<usize>,
}

/// The connection to make once the place is found.
#[derive(Resource)]
struct Plan {
    layers: Layers,
    app_id: Option<String>,
    configure: Option<Configure>,
    /// Filled in by the task that asks the server.
    place: Slot<Result<Place, String>>,
}

/// The room URL and ICE servers for `room` on the server of `client`.
async fn resolve(
    client: &LobbyClient,
    room: &Room,
    ice: Option<Vec<IceServer>>,
) -> Result<Place, String> {
    let failed = |what: &str, e: LobbyError| format!("gamenet: {what}: {e}");
    let (url, players) = match room {
        Room::Named(name) => (client.room_url(name), None),
        Room::QuickMatch { mode, players } => {
            (client.quick_match_url(mode, *players), Some(*players))
        }
        Room::Lobby(code) => {
            let lobby = client
                .get(code)
                .await
                .map_err(|e| failed(&format!("lobby {code}"), e))?;
            if !lobby.has_room() {
                return Err(format!("gamenet: lobby {code} is full"));
            }
            (client.join_url(&lobby.code), Some(lobby.max_players))
        }
    };
    let ice = match ice {
        Some(ice) => ice,
        None => client
            .ice_servers()
            .await
            .map_err(|e| failed("ICE servers", e))?,
    };
    Ok(Place {
        builder: PeerMesh::builder(url).ice_servers(ice),
        players,
    })
}

/// Connects once the place to play is known, or reports why it is not.
fn connect_when_found(world: &mut World) {
    let found = {
        let Some(plan) = world.get_resource::<Plan>() else {
            return;
        };
        lock(&plan.place).take()
    };
    let Some(found) = found else {
        return;
    };
    let Some(plan) = world.remove_resource::<Plan>() else {
        return;
    };
    match found {
        Ok(place) => {
            let builder = finish_builder(
                place.builder,
                plan.app_id.as_deref(),
                plan.configure.as_ref(),
            );
            connect(world, builder, plan.layers, place.players);
        }
        Err(error) => {
            world.remove_resource::<crate::state::Choosing>();
            world.resource::<Failures>().push(error);
        }
    }
}

/// Connects the layers with `builder`, for a room of `players` if it says.
fn connect(world: &mut World, builder: PeerMeshBuilder, layers: Layers, players: Option<usize>) {
    match layers {
        Layers::Mesh => {
            world.remove_resource::<crate::state::Choosing>();
            let failures = world.resource::<Failures>().clone();
            if let Some((mesh, driver)) = failures.build("gamenet", builder) {
                spawn_driver(driver, Some(failures));
                world.insert_resource(MeshSocket::new(mesh));
            }
        }
        Layers::Replication => ConnectReplication(builder).apply(world),
        Layers::Rollback {
            connect,
            start,
            key,
            players: asked,
        } => {
            let start = start.unwrap_or(RollbackStart::Players(players.unwrap_or(asked)));
            connect(world, builder, start, key, players);
        }
    }
}

/// Connects rollback with inputs `I`, with the room's size as its slots.
fn connect_rollback<I: Input>(
    world: &mut World,
    builder: PeerMeshBuilder,
    start: RollbackStart,
    key: u64,
    players: Option<usize>,
) {
    let mut command = ConnectRollback::<I>::new(builder, start, key);
    if let Some(players) = players {
        command = command.slots(players);
    }
    command.apply(world);
}

/// ICE servers were fetched again from the signaling server and handed to
/// the mesh, for the connections it makes from now on (TURN credentials
/// expire).
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub struct IceRefreshed {
    /// The servers, with fresh credentials.
    pub servers: Vec<IceServer>,
}

/// Where fresh ICE servers come from, and when they are next due.
#[derive(Resource)]
struct IceSource {
    client: LobbyClient,
    every: Duration,
    /// When to ask next; set at the first frame.
    next: Option<Instant>,
    /// What the last request brought, once it is back.
    fetched: Slot<Result<Vec<IceServer>, LobbyError>>,
    /// A request is out.
    asking: bool,
    /// No request for a silent peer before this.
    calm_until: Option<Instant>,
}

impl IceSource {
    /// Whether to ask now: when due, or when a peer went silent (but not
    /// more often than every few seconds).
    fn due(&mut self, now: Instant, silent: bool) -> bool {
        let next = *self.next.get_or_insert(now + self.every);
        let calm = self.calm_until.is_some_and(|until| now < until);
        if self.asking || !(now >= next || silent && !calm) {
            return false;
        }
        self.next = Some(now + self.every);
        self.calm_until = Some(now + ICE_RETRY);
        true
    }
}

/// Fetches ICE servers again when due, and hands what came to the mesh.
fn refresh_ice(
    mut source: ResMut<IceSource>,
    clock: Res<NetClock>,
    mut interrupted: MessageReader<PeerInterrupted>,
    mut fresh: ResMut<FreshIce>,
    mut refreshed: MessageWriter<IceRefreshed>,
) {
    let arrived = lock(&source.fetched).take();
    if let Some(result) = arrived {
        source.asking = false;
        match result {
            Ok(servers) => {
                fresh.0 = Some(servers.clone());
                refreshed.write(IceRefreshed { servers });
            }
            Err(error) => tracing::warn!("gamenet: could not fetch ICE servers again: {error}"),
        }
    }
    let silent = interrupted.read().count() > 0;
    if source.due(clock.now(), silent) {
        source.asking = true;
        let (client, fetched) = (source.client.clone(), source.fetched.clone());
        bevy_tasks::IoTaskPool::get_or_init(bevy_tasks::TaskPool::new)
            .spawn(async move {
                let result = client.ice_servers().await;
                *lock(&fetched) = Some(result);
            })
            .detach();
    }
}

/// Locks `m`, whether or not a thread panicked holding it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(every: Duration) -> IceSource {
        IceSource {
            client: LobbyClient::new("ws://127.0.0.1:9"),
            every,
            next: None,
            fetched: Arc::default(),
            asking: false,
            calm_until: None,
        }
    }

    #[test]
    fn the_plugin_runs_without_a_socket() {
        let mut app = App::new();
        app.add_plugins(GamenetPlugin::default());
        app.update();
        app.update();
        let messages = app.world().resource::<Messages<crate::PeerJoined>>();
        assert!(messages.is_empty());
        assert!(!app.world().contains_resource::<MeshSocket>());
    }

    #[test]
    fn ice_servers_are_due_on_the_interval_and_when_a_peer_goes_silent() {
        let t0 = Instant::now();
        let mut s = source(Duration::from_secs(60));
        assert!(!s.due(t0, false), "not at the first frame");
        assert!(!s.due(t0 + Duration::from_secs(59), false));
        assert!(s.due(t0 + Duration::from_secs(60), false));
        s.asking = true;
        assert!(
            !s.due(t0 + Duration::from_secs(200), true),
            "one request at a time"
        );
        s.asking = false;
        let t1 = t0 + Duration::from_secs(70);
        assert!(s.due(t1, true), "a peer went silent");
        assert!(
            !s.due(t1 + Duration::from_secs(1), true),
            "not again at once"
        );
        assert!(s.due(t1 + ICE_RETRY, true), "again after a few seconds");
        assert!(!s.due(t1 + 2 * ICE_RETRY, false), "then on the interval");
        assert!(s.due(t1 + ICE_RETRY + Duration::from_secs(60), false));
    }
}
