//! Choosing a game through the server's lobbies: create one (a name, 2–4
//! players) and invite others with its code or link, join one by code, or
//! pick one from the list of open games (keys 1–9; N creates a new one). The
//! game connects once a lobby is chosen and starts when it is full.

use bevy::prelude::*;
use bevy_gamenet::lobby::{Lobbies, LobbyAnswer, LobbyPlugin, LobbySpec};
use bevy_gamenet::rollback::ConnectRollback;
use gamenet::rollback::RollbackStart;

use crate::MAX_PLAYERS;

/// The game mode arena's lobbies are listed under.
pub const MODE: &str = "arena";

/// How often the list of open games is asked for again, in seconds.
const RELIST_SECS: f32 = 2.0;

/// Room and size of the game, for the lobby screen.
#[derive(Resource, Debug, Clone)]
pub struct Lobby {
    /// The room's name (the join code).
    pub room: String,
    /// Players the game waits for.
    pub players: usize,
    /// How another player joins: a link on the web, a command natively.
    pub invite: String,
}

/// What the player chose to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LobbyChoice {
    /// Create a lobby of this name for this many players.
    Create {
        /// Its name in the list.
        name: String,
        /// Most players (2–4); the game starts when they are all in.
        players: usize,
    },
    /// Join the lobby of this code.
    Code(String),
    /// Pick a game from the list of open ones.
    Pick,
}

/// Where choosing a lobby stands, for the lobby screen and the page.
#[derive(Resource, Debug)]
pub struct LobbyFlow {
    /// What the player chose.
    pub choice: LobbyChoice,
    /// The open games, newest first, as last listed.
    pub listed: Vec<bevy_gamenet::lobby::Lobby>,
    /// The last error, for the player.
    pub error: String,
    /// The lobby joined, once there is one.
    pub joined: Option<bevy_gamenet::lobby::Lobby>,
    /// The invitation link without its code (`…?lobby=` on the web).
    pub invite_base: String,
    /// This player's reconnect key.
    seed: u64,
    /// Whether a request is on its way.
    asked: bool,
    /// Seconds until the list is asked for again.
    relist_in: f32,
}

/// Adds the lobby choice to a game built with
/// [`add_network_later`](crate::add_network_later): `server` is the signaling
/// server, `invite_base` the link a code is appended to.
pub fn add_lobbies(
    app: &mut App,
    server: &str,
    choice: LobbyChoice,
    invite_base: String,
    seed: u64,
) {
    app.add_plugins(LobbyPlugin::new(server))
        .insert_resource(LobbyFlow {
            choice,
            listed: Vec::new(),
            error: String::new(),
            joined: None,
            invite_base,
            seed,
            asked: false,
            relist_in: 0.0,
        })
        .add_systems(Update, (ask, answers, pick).chain());
}

/// Sends what the choice needs: a lobby created, a code looked up, the list.
fn ask(mut flow: ResMut<LobbyFlow>, lobbies: Res<Lobbies>, time: Res<Time>) {
    if flow.joined.is_some() || flow.asked {
        return;
    }
    match flow.choice.clone() {
        LobbyChoice::Create { name, players } => {
            lobbies.create(LobbySpec {
                name,
                max_players: players.clamp(2, MAX_PLAYERS),
                mode: MODE.into(),
                ..LobbySpec::default()
            });
            flow.asked = true;
        }
        LobbyChoice::Code(code) => {
            lobbies.join(&code);
            flow.asked = true;
        }
        LobbyChoice::Pick => {
            flow.relist_in -= time.delta_secs();
            if flow.relist_in <= 0.0 {
                lobbies.list(MODE, 9);
                flow.asked = true;
                flow.relist_in = RELIST_SECS;
            }
        }
    }
}

/// Connects to a lobby once it is ready; keeps the list; shows errors.
fn answers(
    mut flow: ResMut<LobbyFlow>,
    mut answers: MessageReader<LobbyAnswer>,
    mut lobby: ResMut<Lobby>,
    mut commands: Commands,
) {
    for answer in answers.read() {
        flow.asked = false;
        match answer {
            LobbyAnswer::Ready(ticket) if flow.joined.is_none() => {
                let max = ticket.lobby.max_players.clamp(2, MAX_PLAYERS);
                let builder = ticket.builder().app_id("gamenet-arena");
                commands.queue(
                    ConnectRollback::<u8>::new(builder, RollbackStart::Players(max), flow.seed)
                        .slots(max),
                );
                *lobby = Lobby {
                    room: ticket.lobby.code.clone(),
                    players: max,
                    invite: format!("{}{}", flow.invite_base, ticket.lobby.code),
                };
                flow.error.clear();
                flow.joined = Some(ticket.lobby.clone());
            }
            LobbyAnswer::Listed(list) => {
                flow.listed = list.iter().filter(|l| l.has_room()).cloned().collect();
            }
            LobbyAnswer::Failed { request, error } => {
                flow.error = format!("Could not {request}: {error}");
                // A code that does not work, a lobby that cannot be made:
                // back to the list (asked for again shortly).
                flow.choice = LobbyChoice::Pick;
                flow.relist_in = RELIST_SECS;
            }
            _ => {}
        }
    }
}

/// Keys 1–9 join a listed game, N creates one for two.
fn pick(mut flow: ResMut<LobbyFlow>, keys: Res<ButtonInput<KeyCode>>) {
    if flow.choice != LobbyChoice::Pick || flow.joined.is_some() {
        return;
    }
    const DIGITS: [KeyCode; 9] = [
        KeyCode::Digit1,
        KeyCode::Digit2,
        KeyCode::Digit3,
        KeyCode::Digit4,
        KeyCode::Digit5,
        KeyCode::Digit6,
        KeyCode::Digit7,
        KeyCode::Digit8,
        KeyCode::Digit9,
    ];
    let picked = DIGITS
        .iter()
        .position(|&k| keys.just_pressed(k))
        .and_then(|i| flow.listed.get(i));
    if let Some(lobby) = picked {
        flow.choice = LobbyChoice::Code(lobby.code.clone());
        flow.asked = false;
    } else if keys.just_pressed(KeyCode::KeyN) {
        flow.choice = LobbyChoice::Create {
            name: "arena".into(),
            players: 2,
        };
        flow.asked = false;
    }
}

/// The lobby screen's lines while no game is chosen.
pub(crate) fn lines(flow: &LobbyFlow) -> Vec<String> {
    let mut lines = vec!["gamenet arena".to_owned(), String::new()];
    match &flow.choice {
        LobbyChoice::Create { name, players } => {
            lines.push(format!(
                "Creating the lobby \"{name}\" for {players} players..."
            ));
        }
        LobbyChoice::Code(code) => lines.push(format!("Joining lobby {code}...")),
        LobbyChoice::Pick => {
            lines.push("Open games:".to_owned());
            if flow.listed.is_empty() {
                lines.push("(none yet)".to_owned());
            }
            for (i, l) in flow.listed.iter().enumerate() {
                lines.push(format!(
                    "{}. {} ({}), {} of {} players",
                    i + 1,
                    l.name,
                    l.code,
                    l.players,
                    l.max_players
                ));
            }
            lines.push(String::new());
            lines.push("Press 1-9 to join a game, N to create one for two.".to_owned());
        }
    }
    if !flow.error.is_empty() {
        lines.push(String::new());
        lines.push(flow.error.clone());
    }
    lines
}
