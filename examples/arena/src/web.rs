//! The game in the browser. The page's URL says how it finds its players:
//! - `?lobby=CODE` joins the server's lobby of that code;
//! - `?pick` lists the open games to pick one from (keys 1–9);
//! - otherwise it creates a lobby (`&players=2`–`4`, `&name=`) and puts its
//!   code in the address bar, so the link can be shared;
//! - `?room=NAME&players=N` joins a quick-match room instead.
//!
//! `&server=ws://host:port` names another signaling server. The ICE servers
//! come from the server's `/api/ice` (its STUN responder, TURN with fresh
//! credentials) unless `&stun=stun:host:port` names one (rooms only). The game
//! draws into the canvas `#arena` with WebGL2, and a small JS hook reports its
//! state (`arena_state()`, `arena_checksum(frame)`).

use std::cell::RefCell;
use std::collections::BTreeMap;

use bevy::prelude::*;
use bevy_gamenet::overlay::NetworkOverlay;
use bevy_gamenet::replication::Remote;
use bevy_gamenet::rollback::RollbackSocket;
use gamenet::IceServer;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::lobbies::{LobbyChoice, LobbyFlow};
use crate::window::{Join, Lobby, window_app};
use crate::{Ball, MAX_PLAYERS, Player, Score};

/// Confirmed checksums kept for [`arena_checksum`].
const CHECKSUMS_KEPT: usize = 512;

/// What the page can read about the game.
#[derive(Default, Serialize)]
struct Shared {
    room: String,
    link: String,
    /// The URLs of the ICE servers in use.
    ice: Vec<String>,
    players: usize,
    connected: usize,
    running: bool,
    slot: Option<usize>,
    frame: Option<u32>,
    checksum: Option<String>,
    /// Every player's centre, by slot.
    positions: Vec<(usize, f32, f32)>,
    ball: Option<(f32, f32)>,
    /// Whether this tab owns (simulates and sends) the ball.
    ball_owned: bool,
    score: Option<(u16, u16)>,
    /// What the game waits for, as its status line says ("" when nothing).
    status: String,
    /// The smoothed round-trip time to each other peer, in milliseconds, as
    /// the overlay shows it.
    rtt_ms: Vec<u32>,
    /// Frames the page drew in the last second.
    fps: usize,
    /// The network overlay: whether it shows, its figures by name and the
    /// link conditioner's preset.
    overlay: Overlay,
    /// This tab's peer id, once its session has one.
    id: Option<String>,
    /// The open games listed while picking one: code, name, players, most
    /// players.
    lobbies: Vec<(String, String, usize, usize)>,
    /// Whether the player is choosing a lobby (none joined yet).
    choosing: bool,
    /// The lobby choice's last error.
    lobby_error: String,
    /// The newest session and link events (the last 48), oldest first, as
    /// text: what a failed browser test prints.
    events: std::collections::VecDeque<String>,
    #[serde(skip)]
    checksums: BTreeMap<u32, u64>,
}

/// The network overlay, as the page reads it.
#[derive(Default, Serialize)]
struct Overlay {
    shown: bool,
    readings: BTreeMap<&'static str, f64>,
    link: String,
}

thread_local! {
    static SHARED: RefCell<Shared> = RefCell::new(Shared::default());
}

/// The game's state as JSON: room, link, ICE server URLs, players, connected, running, slot,
/// the newest confirmed frame with a checksum, positions, ball, score.
#[wasm_bindgen]
pub fn arena_state() -> String {
    SHARED.with(|s| serde_json::to_string(&*s.borrow()).unwrap_or_default())
}

/// The checksum of the rolled-back state at a confirmed `frame` (hex), if this
/// tab recorded one.
#[wasm_bindgen]
pub fn arena_checksum(frame: u32) -> Option<String> {
    SHARED.with(|s| {
        s.borrow()
            .checksums
            .get(&frame)
            .map(|c| format!("{c:#018x}"))
    })
}

/// Keeps what a room name or code may hold: letters, digits, `-` and `_`.
fn clean(room: &str) -> String {
    room.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(32)
        .collect()
}

/// Starts the game in the page.
pub fn start() {
    let Some(window) = web_sys::window() else {
        return;
    };
    let location = window.location();
    let search = location.search().unwrap_or_default();
    let params = web_sys::UrlSearchParams::new_with_str(&search).ok();
    let param = |name: &str| params.as_ref().and_then(|p| p.get(name));
    let room = clean(&param("room").unwrap_or_default());
    let players = param("players")
        .and_then(|p| p.parse().ok())
        .unwrap_or(2)
        .clamp(2, MAX_PLAYERS);
    let origin = location.origin().unwrap_or_default();
    let path = location.pathname().unwrap_or_default();
    let server = param("server").unwrap_or_else(|| {
        let host = location.host().unwrap_or_default();
        let scheme = if location.protocol().unwrap_or_default() == "https:" {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{host}")
    });
    let seed = (js_sys::Math::random() * u32::MAX as f64) as u64;
    if room.is_empty() {
        let choice = match (clean(&param("lobby").unwrap_or_default()), param("pick")) {
            (code, _) if !code.is_empty() => LobbyChoice::Code(code),
            (_, Some(_)) => LobbyChoice::Pick,
            _ => LobbyChoice::Create {
                name: param("name")
                    .map(|n| n.chars().filter(|c| !c.is_control()).take(40).collect())
                    .filter(|n: &String| !n.is_empty())
                    .unwrap_or_else(|| "arena".into()),
                players,
            },
        };
        let mut invite_base = format!("{origin}{path}?lobby=");
        if let Some(server) = param("server") {
            invite_base = format!("{origin}{path}?server={server}&lobby=");
        }
        let join = Join::Lobby {
            server,
            choice,
            invite_base,
        };
        let lobby = Lobby {
            room: String::new(),
            players,
            invite: String::new(),
        };
        let mut app = window_app(join, lobby, seed);
        app.add_systems(Last, (record_events, publish, show_code));
        app.run();
        return;
    }
    let stun = param("stun");
    let link = format!("{origin}{path}?room={room}&players={players}");
    let url = format!("{}/{room}?next={players}", server.trim_end_matches('/'));
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        s.room = room.clone();
        s.link = link.clone();
        s.players = players;
    });
    let lobby = Lobby {
        room,
        players,
        invite: link,
    };
    wasm_bindgen_futures::spawn_local(async move {
        let ice = match stun {
            Some(stun) => vec![IceServer::stun(stun)],
            None => server_ice(&server).await,
        };
        SHARED.with(|s| s.borrow_mut().ice = ice.iter().flat_map(|i| i.urls.clone()).collect());
        let mut app = window_app(Join::Room { url, ice }, lobby, seed);
        app.add_systems(Last, (record_events, publish));
        app.run();
    });
}

/// Once a lobby is joined: its code and link for the page, and the link in
/// the address bar (so that it can be shared or reloaded).
fn show_code(flow: Res<LobbyFlow>, lobby: Res<Lobby>, mut shown: Local<bool>) {
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        s.choosing = flow.joined.is_none();
        s.lobby_error = flow.error.clone();
        s.lobbies = flow
            .listed
            .iter()
            .map(|l| (l.code.clone(), l.name.clone(), l.players, l.max_players))
            .collect();
        if flow.joined.is_some() {
            s.room = lobby.room.clone();
            s.link = lobby.invite.clone();
            s.players = lobby.players;
        }
    });
    if *shown || flow.joined.is_none() {
        return;
    }
    *shown = true;
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&lobby.invite));
    }
}

/// The ICE servers the signaling server hands out at `/api/ice`; none (host
/// candidates only, enough on one network) if it has none or cannot say.
async fn server_ice(server: &str) -> Vec<IceServer> {
    match gamenet::lobby::LobbyClient::new(server).ice_servers().await {
        Ok(servers) => servers,
        Err(e) => {
            warn!("no ICE servers from {server}: {e}; host candidates only");
            Vec::new()
        }
    }
}

/// Keeps the newest session and link events for the page.
fn record_events(
    mut session: MessageReader<bevy_gamenet::rollback::SessionEvent>,
    mut joined: MessageReader<bevy_gamenet::PeerJoined>,
    mut left: MessageReader<bevy_gamenet::PeerLeft>,
) {
    let lines = session
        .read()
        .map(|e| format!("{:?}", e.0))
        .chain(joined.read().map(|e| format!("link up {}", e.0)))
        .chain(
            left.read()
                .map(|e| format!("link down {} ({:?})", e.peer, e.reason)),
        );
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        for line in lines {
            s.events.push_back(line);
            while s.events.len() > 48 {
                s.events.pop_front();
            }
        }
    });
}

/// Copies the game's state for the page.
fn publish(world: &mut World, mut drawn: Local<std::collections::VecDeque<f64>>) {
    if let Some(now) = web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
    {
        drawn.push_back(now);
        while drawn.front().is_some_and(|&t| t < now - 1000.0) {
            drawn.pop_front();
        }
    }
    // Every checksum since the last one recorded, so that the page can compare
    // any frame it saw with another tab's, even when this tab renders slowly.
    let after = SHARED.with(|s| s.borrow().checksums.last_key_value().map(|(&f, _)| f));
    let confirmed = crate::confirmed_checksums_after(world, after);
    let (connected, running, slot, status, rtt_ms, id) =
        match world.get_resource_mut::<RollbackSocket<u8>>() {
            Some(mut socket) => {
                let id = socket.session().map(|s| s.id().to_string());
                let status = socket
                    .session()
                    .map(crate::window::waiting_for)
                    .unwrap_or_default();
                let running = socket.session().is_some_and(|s| s.is_running());
                let slot = socket
                    .session()
                    .and_then(|s| s.local_slots().first().copied());
                let (connected, rtt_ms) = socket
                    .net_mut()
                    .map(|n| {
                        let mesh = n.mesh();
                        let rtt = mesh
                            .peers()
                            .filter_map(|p| mesh.stats(p)?.rtt)
                            .map(|r| r.as_millis() as u32)
                            .collect();
                        (mesh.peers().count() + 1, rtt)
                    })
                    .unwrap_or((1, Vec::new()));
                (connected, running, slot, status, rtt_ms, id)
            }
            None => (1, false, None, String::new(), Vec::new(), None),
        };
    let overlay = world
        .get_resource::<NetworkOverlay>()
        .map(|o| Overlay {
            shown: o.shown,
            readings: o.readings.iter().copied().collect(),
            link: o.link.clone(),
        })
        .unwrap_or_default();
    let positions: Vec<_> = world
        .query::<&Player>()
        .iter(world)
        .map(|p| {
            let (x, y) = p.centre();
            (p.slot as usize, x, y)
        })
        .collect();
    let ball = world
        .query::<(&Ball, Has<Remote>)>()
        .iter(world)
        .next()
        .map(|(b, remote)| ((b.x, b.y), !remote));
    let score = world
        .query::<&Score>()
        .iter(world)
        .next()
        .map(|s| (s.left, s.right));
    SHARED.with(|s| {
        let mut s = s.borrow_mut();
        s.connected = connected;
        s.running = running;
        s.slot = slot;
        let mut positions = positions;
        positions.sort_by_key(|p| p.0);
        s.positions = positions;
        s.ball = ball.map(|b| b.0);
        s.ball_owned = ball.is_some_and(|b| b.1);
        s.score = score;
        s.status = status;
        s.rtt_ms = rtt_ms;
        s.id = id;
        s.fps = drawn.len();
        s.overlay = overlay;
        if let Some(&(frame, checksum)) = confirmed.last() {
            s.frame = Some(frame);
            s.checksum = Some(format!("{checksum:#018x}"));
        }
        s.checksums.extend(confirmed);
        while s.checksums.len() > CHECKSUMS_KEPT {
            s.checksums.pop_first();
        }
    });
}
