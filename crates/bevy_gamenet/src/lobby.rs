//! Lobbies from a Bevy app: [`LobbyPlugin`] and the [`Lobbies`] resource
//! create, list and find lobbies on a `gamenet-signaling` server in the
//! background (`gamenet::lobby`), and write each answer as a [`LobbyAnswer`]
//! message. A lobby to play in comes as a [`LobbyTicket`]: its join URL and the
//! server's ICE servers, fetched fresh, ready for a mesh builder.
//!
//! ```no_run
//! use bevy_app::{App, Startup, Update};
//! use bevy_ecs::prelude::*;
//! use bevy_gamenet::lobby::{Lobbies, LobbyAnswer, LobbyPlugin};
//! use bevy_gamenet::prelude::*;
//!
//! fn ask(lobbies: Res<Lobbies>) {
//!     lobbies.list("my-game", 20);
//! }
//!
//! fn pick(mut answers: MessageReader<LobbyAnswer>, lobbies: Res<Lobbies>, mut commands: Commands) {
//!     for answer in answers.read() {
//!         match answer {
//!             LobbyAnswer::Listed(list) => {
//!                 if let Some(lobby) = list.iter().find(|l| l.has_room()) {
//!                     lobbies.join(&lobby.code);
//!                 }
//!             }
//!             LobbyAnswer::Ready(ticket) => {
//!                 let builder = ticket.builder().app_id("my-game/1");
//!                 let start = RollbackStart::Players(ticket.lobby.max_players);
//!                 commands.queue(ConnectRollback::<u8>::new(builder, start, 7));
//!             }
//!             LobbyAnswer::Failed { error, .. } => eprintln!("{error}"),
//!             _ => {}
//!         }
//!     }
//! }
//!
//! App::new()
//!     .add_plugins(RollbackPlugin::<u8>::manual(RollbackConfig::default()))
//!     .add_plugins(LobbyPlugin::new("ws://localhost:3000"))
//!     .add_systems(Startup, ask)
//!     .add_systems(Update, pick)
//!     .run();
//! ```

use std::sync::{Arc, Mutex};

use bevy_app::{App, Plugin, PreUpdate};
use bevy_ecs::prelude::*;
pub use gamenet::lobby::{Lobby, LobbyClient, LobbyError, LobbySpec};
use gamenet::{IceServer, PeerMesh, PeerMeshBuilder};

use crate::GamenetSet;

/// Adds [`Lobbies`] for the server at `server` and writes [`LobbyAnswer`]s.
pub struct LobbyPlugin {
    /// The signaling server's address (`ws://host:port` or `http://host:port`).
    pub server: String,
    /// Its auth token, if it wants one.
    pub token: Option<String>,
}

impl LobbyPlugin {
    /// Lobbies on the server at `server`.
    pub fn new(server: impl Into<String>) -> Self {
        Self {
            server: server.into(),
            token: None,
        }
    }
}

impl Plugin for LobbyPlugin {
    fn build(&self, app: &mut App) {
        crate::add_shared(app);
        let mut client = LobbyClient::new(&self.server);
        if let Some(token) = &self.token {
            client = client.token(token.clone());
        }
        app.insert_resource(Lobbies {
            client,
            answers: Arc::default(),
        })
        .insert_resource(crate::state::Choosing)
        .add_message::<LobbyAnswer>()
        .add_systems(PreUpdate, answer.in_set(GamenetSet::Receive));
    }

    fn finish(&self, app: &mut App) {
        crate::state::init(app);
    }
}

/// A lobby to play in: where to join it and the ICE servers to join with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbyTicket {
    /// The lobby, as the server described it.
    pub lobby: Lobby,
    /// The WebSocket URL that joins its room.
    pub url: String,
    /// The server's ICE servers (its STUN, TURN with fresh credentials);
    /// none if it hands out none.
    pub ice_servers: Vec<IceServer>,
}

impl LobbyTicket {
    /// A mesh builder for the lobby's room with the server's ICE servers;
    /// set the app id and anything else, then connect.
    pub fn builder(&self) -> PeerMeshBuilder {
        PeerMesh::builder(self.url.clone()).ice_servers(self.ice_servers.clone())
    }
}

/// An answer of the server, or why there is none.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
pub enum LobbyAnswer {
    /// [`Lobbies::list`]: public lobbies, newest first.
    Listed(Vec<Lobby>),
    /// [`Lobbies::get`]: the lobby of that code.
    Found(Lobby),
    /// [`Lobbies::create`] or [`Lobbies::join`]: a lobby to play in.
    Ready(LobbyTicket),
    /// A request failed: which (`"create"`, `"list"`, `"get"`, `"join"`) and why.
    Failed {
        /// The request.
        request: &'static str,
        /// Why, for the player.
        error: LobbyError,
    },
}

/// The lobby API of the app's signaling server. Each call sends a request
/// in the background; its answer arrives as a [`LobbyAnswer`] message.
#[derive(Resource)]
pub struct Lobbies {
    client: LobbyClient,
    answers: Arc<Mutex<Vec<LobbyAnswer>>>,
}

impl Lobbies {
    /// The client underneath, for its URLs.
    pub fn client(&self) -> &LobbyClient {
        &self.client
    }

    /// Creates a lobby: [`LobbyAnswer::Ready`] with the new lobby.
    pub fn create(&self, spec: LobbySpec) {
        let client = self.client.clone();
        self.spawn("create", async move {
            let lobby = client.create(&spec).await?;
            ticket(&client, lobby).await
        });
    }

    /// Lists public lobbies of `mode` ("" for all), at most `limit`:
    /// [`LobbyAnswer::Listed`].
    pub fn list(&self, mode: &str, limit: usize) {
        let (client, mode) = (self.client.clone(), mode.to_owned());
        self.spawn("list", async move {
            client.list(&mode, limit).await.map(LobbyAnswer::Listed)
        });
    }

    /// Looks up the lobby of join code `code`: [`LobbyAnswer::Found`].
    pub fn get(&self, code: &str) {
        let (client, code) = (self.client.clone(), code.to_owned());
        self.spawn("get", async move {
            client.get(&code).await.map(LobbyAnswer::Found)
        });
    }

    /// Gets ready to join the lobby of join code `code`:
    /// [`LobbyAnswer::Ready`], or `Failed` if there is no such lobby or it
    /// is full.
    pub fn join(&self, code: &str) {
        let (client, code) = (self.client.clone(), code.to_owned());
        self.spawn("join", async move {
            let lobby = client.get(&code).await?;
            if !lobby.has_room() {
                return Err(LobbyError::Refused {
                    status: 409,
                    reason: format!("lobby {} is full", lobby.code),
                });
            }
            ticket(&client, lobby).await
        });
    }

    fn spawn(
        &self,
        request: &'static str,
        work: impl bevy_tasks::ConditionalSendFuture<Output = Result<LobbyAnswer, LobbyError>> + 'static,
    ) {
        let answers = self.answers.clone();
        let pool = bevy_tasks::IoTaskPool::get_or_init(bevy_tasks::TaskPool::new);
        pool.spawn(async move {
            let answer = work
                .await
                .unwrap_or_else(|error| LobbyAnswer::Failed { request, error });
            if let Ok(mut answers) = answers.lock() {
                answers.push(answer);
            }
        })
        .detach();
    }
}

/// The ticket to `lobby`: its join URL and the server's ICE servers.
async fn ticket(client: &LobbyClient, lobby: Lobby) -> Result<LobbyAnswer, LobbyError> {
    let ice_servers = client.ice_servers().await?;
    Ok(LobbyAnswer::Ready(LobbyTicket {
        url: client.join_url(&lobby.code),
        lobby,
        ice_servers,
    }))
}

/// Writes the answers that arrived since the last frame.
fn answer(lobbies: Res<Lobbies>, mut out: MessageWriter<LobbyAnswer>) {
    let arrived = lobbies.answers.lock().map(|mut a| std::mem::take(&mut *a));
    out.write_batch(arrived.unwrap_or_default());
}
