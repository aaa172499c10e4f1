//! The game in the browser: the room, the players and the server come from
//! the page's URL (`?room=CODE&players=2&server=ws://host:port`; without a
//! room a join code is made up and put in the address bar, so the link can be
//! shared), the ICE servers from the server's `/api/ice` (its STUN responder,
//! TURN with fresh credentials) unless `&stun=stun:host:port` names one, the
//! game draws into the canvas `#arena` with WebGL2, and a small JS hook reports
//! its state (`arena_state()`, `arena_checksum(frame)`).

use std::cell::RefCell;
use std::collections::BTreeMap;

use bevy::prelude::*;
use bevy_gamenet::overlay::NetworkOverlay;
use bevy_gamenet::replication::Remote;
use bevy_gamenet::rollback::RollbackSocket;
use gamenet::IceServer;
use serde::Serialize;
use wasm_bindgen::prelude::*;

use crate::window::{Lobby, window_app};
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

/// A join code: six letters and digits that do not look alike.
fn make_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    (0..6)
        .map(|_| {
            let i = (js_sys::Math::random() * ALPHABET.len() as f64) as usize;
            ALPHABET[i.min(ALPHABET.len() - 1)] as char
        })
        .collect()
}

/// Keeps what a room name may hold: letters, digits, `-` and `_`.
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
    let mut room = clean(&param("room").unwrap_or_default());
    let players = param("players")
        .and_then(|p| p.parse().ok())
        .unwrap_or(2)
        .clamp(2, MAX_PLAYERS);
    let origin = location.origin().unwrap_or_default();
    let path = location.pathname().unwrap_or_default();
    if room.is_empty() {
        room = make_code();
        let query = format!("?room={room}&players={players}");
        if let Ok(history) = window.history() {
            let _ = history.replace_state_with_url(&JsValue::NULL, "", Some(&query));
        }
    }
    let link = format!("{origin}{path}?room={room}&players={players}");
    let server = param("server").unwrap_or_else(|| {
        let host = location.host().unwrap_or_default();
        let scheme = if location.protocol().unwrap_or_default() == "https:" {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{host}")
    });
    let stun = param("stun");
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
    let seed = (js_sys::Math::random() * u32::MAX as f64) as u64;
    wasm_bindgen_futures::spawn_local(async move {
        let ice = match stun {
            Some(stun) => vec![IceServer::stun(stun)],
            None => server_ice(&server).await,
        };
        SHARED.with(|s| s.borrow_mut().ice = ice.iter().flat_map(|i| i.urls.clone()).collect());
        let mut app = window_app(&url, lobby, ice, seed);
        app.add_systems(Last, (record_events, publish));
        app.run();
    });
}

/// The ICE servers the signaling server hands out at `/api/ice`; none (host
/// candidates only, enough on one network) if it has none or cannot say.
async fn server_ice(server: &str) -> Vec<IceServer> {
    use wasm_bindgen_futures::JsFuture;
    let http = server.trim_end_matches('/').replacen("ws", "http", 1);
    let url = format!("{http}/api/ice");
    let fetched = async {
        let window = web_sys::window()?;
        let response: web_sys::Response = JsFuture::from(window.fetch_with_str(&url))
            .await
            .ok()?
            .dyn_into()
            .ok()?;
        if !response.ok() {
            return None;
        }
        let text = JsFuture::from(response.text().ok()?)
            .await
            .ok()?
            .as_string()?;
        IceServer::list_from_json(&text).ok()
    };
    let servers = fetched.await;
    if servers.is_none() {
        warn!("no ICE servers from {url}: host candidates only");
    }
    servers.unwrap_or_default()
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
