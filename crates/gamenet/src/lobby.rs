//! Lobbies and ICE servers from a `gamenet-signaling` server's HTTP API, natively
//! and in the browser.
//!
//! A lobby is a room with a short join code: one player creates it (a name, a
//! most-players count, listed or not), shares its code or link, and others find
//! it by code or in the list of public lobbies. Each player then joins its room
//! with a [`PeerMesh`](crate::PeerMesh) at [`LobbyClient::join_url`].
//!
//! ```no_run
//! # async fn run() -> Result<(), gamenet::lobby::LobbyError> {
//! use gamenet::lobby::{LobbyClient, LobbySpec};
//!
//! let client = LobbyClient::new("ws://localhost:3000");
//! let lobby = client
//!     .create(&LobbySpec { name: "Friday".into(), max_players: 3, ..LobbySpec::default() })
//!     .await?;
//! println!("join code {}", lobby.code);
//! let listed = client.list("", 50).await?;
//! assert!(listed.iter().any(|l| l.code == lobby.code));
//! let url = client.join_url(&lobby.code); // for PeerMesh::builder
//! # let _ = url;
//! # Ok(())
//! # }
//! ```
//!
//! Natively each request runs on a thread of its own (the futures need no
//! particular runtime); in the browser it is a `fetch`. Requests time out after
//! ten seconds; a GET that times out or finds no server is tried twice more
//! (after half a second, then a second). With auth on, set the token with
//! [`LobbyClient::token`].

use serde::{Deserialize, Serialize};

use crate::IceServer;

/// Why a lobby request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LobbyError {
    /// The server answered with an error status (404: no lobby has that code;
    /// 429: too many requests or lobbies from this address; 503: the server
    /// cannot serve now) and this reason.
    #[error("the server answered {status}: {reason}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's `error` text, or the body.
        reason: String,
    },
    /// The server could not be reached, or the request timed out.
    #[error("the server cannot be reached: {0}")]
    Unreachable(String),
    /// The server's answer is not what the API returns.
    #[error("unreadable answer: {0}")]
    BadAnswer(String),
}

/// A lobby as the server describes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Lobby {
    /// Its join code (six letters and digits).
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its game mode ("" for none).
    pub mode: String,
    /// Whether it is listed.
    pub public: bool,
    /// Players in it now.
    pub players: usize,
    /// Most players.
    pub max_players: usize,
}

impl Lobby {
    /// Whether another player fits in.
    pub fn has_room(&self) -> bool {
        self.players < self.max_players
    }
}

/// The lobby to create.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LobbySpec {
    /// Its name, shown in lists (at most 64 characters, no control characters).
    pub name: String,
    /// Whether it is listed; a private lobby is joined by code only.
    pub public: bool,
    /// Most players (2 to the server's room size).
    pub max_players: usize,
    /// A game mode that lists can be filtered by ("" for none).
    pub mode: String,
}

impl Default for LobbySpec {
    fn default() -> Self {
        Self {
            name: String::new(),
            public: true,
            max_players: 2,
            mode: String::new(),
        }
    }
}

/// A client of a signaling server's lobby and ICE API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbyClient {
    /// `http(s)://host:port`, without a trailing slash.
    http: String,
    /// `ws(s)://host:port`, without a trailing slash.
    ws: String,
    /// The auth token, if the server wants one.
    token: Option<String>,
}

impl LobbyClient {
    /// A client of the server at `server`: `ws://`, `wss://`, `http://` or
    /// `https://` and the host (a path after it is ignored).
    pub fn new(server: &str) -> Self {
        let server = server.trim();
        let (secure, rest) = if let Some(rest) = server.strip_prefix("wss://") {
            (true, rest)
        } else if let Some(rest) = server.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = server.strip_prefix("ws://") {
            (false, rest)
        } else {
            (false, server.strip_prefix("http://").unwrap_or(server))
        };
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (http, ws) = if secure {
            ("https", "wss")
        } else {
            ("http", "ws")
        };
        Self {
            http: format!("{http}://{host}"),
            ws: format!("{ws}://{host}"),
            token: None,
        }
    }

    /// Sends `token` with every request and in [join URLs](Self::join_url).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Creates a lobby.
    pub async fn create(&self, spec: &LobbySpec) -> Result<Lobby, LobbyError> {
        let body = serde_json::to_string(spec).map_err(|e| LobbyError::BadAnswer(e.to_string()))?;
        let text = http::request(self.url("/api/lobbies"), Some(body), self.token.clone()).await?;
        read(&text)
    }

    /// Public lobbies, newest first: of `mode` ("" for every mode), at most
    /// `limit` of them (the server returns 100 at most).
    pub async fn list(&self, mode: &str, limit: usize) -> Result<Vec<Lobby>, LobbyError> {
        #[derive(Deserialize)]
        struct Listing {
            lobbies: Vec<Lobby>,
        }
        let mut path = format!("/api/lobbies?limit={limit}");
        if !mode.is_empty() {
            path.push_str("&mode=");
            path.push_str(&encode(mode));
        }
        let text = self.fetch(&path).await?;
        read::<Listing>(&text).map(|l| l.lobbies)
    }

    /// The lobby of join code `code`, public or private.
    pub async fn get(&self, code: &str) -> Result<Lobby, LobbyError> {
        let path = format!("/api/lobbies/{}", encode(code));
        let text = self.fetch(&path).await?;
        read(&text)
    }

    /// The ICE servers the server hands out (its STUN responder, TURN with
    /// fresh credentials): ask again before each connection, as TURN
    /// credentials expire.
    pub async fn ice_servers(&self) -> Result<Vec<IceServer>, LobbyError> {
        let text = self.fetch("/api/ice").await?;
        IceServer::list_from_json(&text).map_err(|e| LobbyError::BadAnswer(e.to_string()))
    }

    /// The WebSocket URL that joins the lobby of join code `code`, for
    /// [`PeerMesh::builder`](crate::PeerMesh::builder).
    pub fn join_url(&self, code: &str) -> String {
        self.with_token(format!("{}/join/{}", self.ws, encode(code)))
    }

    /// The WebSocket URL of the room named `room`: everyone who asks for
    /// that name meets there.
    pub fn room_url(&self, room: &str) -> String {
        self.with_token(format!("{}/{}", self.ws, encode(room)))
    }

    /// The WebSocket URL that puts this peer in the next quick-match group
    /// of `players` in `mode` (any name; empty for the server's default).
    pub fn quick_match_url(&self, mode: &str, players: usize) -> String {
        let mut url = format!("{}/?next={players}", self.ws);
        if !mode.is_empty() {
            url.push_str("&mode=");
            url.push_str(&encode(mode));
        }
        self.with_token(url)
    }

    /// `url` with the token in its query, if one is set.
    fn with_token(&self, mut url: String) -> String {
        if let Some(token) = &self.token {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str("token=");
            url.push_str(&encode(token));
        }
        url
    }

    /// The server's WebSocket base, `ws(s)://host:port`.
    pub fn server(&self) -> &str {
        &self.ws
    }

    /// A GET of `path`, tried again after a pause when the server could not
    /// be reached or did not answer in time (GETs change nothing, so a
    /// second try is safe); refusals and bad answers are final.
    async fn fetch(&self, path: &str) -> Result<String, LobbyError> {
        let mut pause = FIRST_PAUSE;
        for _ in 1..GET_TRIES {
            match http::request(self.url(path), None, self.token.clone()).await {
                Err(LobbyError::Unreachable(why)) => {
                    tracing::debug!("gamenet: {path}: {why}; trying again in {pause:?}");
                    futures_timer::Delay::new(pause).await;
                    pause *= 2;
                }
                answer => return answer,
            }
        }
        http::request(self.url(path), None, self.token.clone()).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.http)
    }
}

/// `text` percent-encoded for a URL's path or query.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An answer's JSON as `T`.
fn read<T: for<'a> Deserialize<'a>>(text: &str) -> Result<T, LobbyError> {
    serde_json::from_str(text).map_err(|e| LobbyError::BadAnswer(e.to_string()))
}

/// An error answer's reason: its `error` field, or the body.
fn reason(status: u16, body: &str) -> LobbyError {
    #[derive(Deserialize)]
    struct Answer {
        error: String,
    }
    let reason = serde_json::from_str::<Answer>(body)
        .map(|a| a.error)
        .unwrap_or_else(|_| body.chars().take(200).collect());
    LobbyError::Refused { status, reason }
}

/// Tries of a GET whose server cannot be reached.
const GET_TRIES: u32 = 3;
/// The pause before the second try; it doubles before each next one.
const FIRST_PAUSE: std::time::Duration = std::time::Duration::from_millis(500);
/// Longest a request may take.
const TIMEOUT_SECS: u64 = 10;
/// Largest answer read, in bytes.
const MAX_ANSWER: u64 = 256 * 1024;

#[cfg(not(target_arch = "wasm32"))]
mod http {
    use std::time::Duration;

    use super::{LobbyError, MAX_ANSWER, TIMEOUT_SECS, reason};

    /// A GET (or a POST of JSON `body`) on a thread of its own; the answer's
    /// body on a 2xx status.
    pub(super) async fn request(
        url: String,
        body: Option<String>,
        token: Option<String>,
    ) -> Result<String, LobbyError> {
        let (tx, rx) = futures::channel::oneshot::channel();
        std::thread::Builder::new()
            .name("gamenet-lobby".into())
            .spawn(move || {
                let _ = tx.send(blocking(&url, body, token));
            })
            .map_err(|e| LobbyError::Unreachable(e.to_string()))?;
        rx.await
            .unwrap_or_else(|_| Err(LobbyError::Unreachable("the request was lost".into())))
    }

    fn blocking(
        url: &str,
        body: Option<String>,
        token: Option<String>,
    ) -> Result<String, LobbyError> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(TIMEOUT_SECS)))
            .http_status_as_error(false)
            .build()
            .into();
        let bearer = token.map(|t| format!("Bearer {t}"));
        let answer = match body {
            Some(body) => {
                let mut request = agent.post(url).content_type("application/json");
                if let Some(bearer) = &bearer {
                    request = request.header("authorization", bearer);
                }
                request.send(body)
            }
            None => {
                let mut request = agent.get(url);
                if let Some(bearer) = &bearer {
                    request = request.header("authorization", bearer);
                }
                request.call()
            }
        };
        let mut answer = answer.map_err(|e| LobbyError::Unreachable(e.to_string()))?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| LobbyError::BadAnswer(e.to_string()))?;
        if (200..300).contains(&status) {
            Ok(text)
        } else {
            Err(reason(status, &text))
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod http {
    use futures::FutureExt;
    use wasm_bindgen::JsCast;
    use wasm_bindgen_futures::JsFuture;

    use super::{LobbyError, MAX_ANSWER, TIMEOUT_SECS, reason};

    /// A `fetch` GET (or POST of JSON `body`); the answer's body on a 2xx status.
    pub(super) async fn request(
        url: String,
        body: Option<String>,
        token: Option<String>,
    ) -> Result<String, LobbyError> {
        let fetch = fetch(url, body, token).fuse();
        let timeout =
            futures_timer::Delay::new(std::time::Duration::from_secs(TIMEOUT_SECS)).fuse();
        futures::pin_mut!(fetch, timeout);
        futures::select! {
            answer = fetch => answer,
            _ = timeout => Err(LobbyError::Unreachable("the request timed out".into())),
        }
    }

    fn js_error(e: wasm_bindgen::JsValue) -> LobbyError {
        LobbyError::Unreachable(format!("{e:?}"))
    }

    async fn fetch(
        url: String,
        body: Option<String>,
        token: Option<String>,
    ) -> Result<String, LobbyError> {
        let window =
            web_sys::window().ok_or_else(|| LobbyError::Unreachable("no window".into()))?;
        let init = web_sys::RequestInit::new();
        let headers = web_sys::Headers::new().map_err(js_error)?;
        if let Some(token) = token {
            headers
                .set("authorization", &format!("Bearer {token}"))
                .map_err(js_error)?;
        }
        match body {
            Some(body) => {
                init.set_method("POST");
                headers
                    .set("content-type", "application/json")
                    .map_err(js_error)?;
                init.set_body(&wasm_bindgen::JsValue::from_str(&body));
            }
            None => init.set_method("GET"),
        }
        init.set_headers(&headers);
        let request = web_sys::Request::new_with_str_and_init(&url, &init).map_err(js_error)?;
        let answer: web_sys::Response = JsFuture::from(window.fetch_with_request(&request))
            .await
            .map_err(js_error)?
            .dyn_into()
            .map_err(js_error)?;
        let text = JsFuture::from(answer.text().map_err(js_error)?)
            .await
            .map_err(js_error)?
            .as_string()
            .unwrap_or_default();
        if text.len() as u64 > MAX_ANSWER {
            return Err(LobbyError::BadAnswer("the answer is too long".into()));
        }
        if answer.ok() {
            Ok(text)
        } else {
            Err(reason(answer.status(), &text))
        }
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_server_address() {
        let client = LobbyClient::new("wss://play.example.org/some/room?next=2");
        assert_eq!(client.url("/api/ice"), "https://play.example.org/api/ice");
        assert_eq!(
            client.join_url("AB3 DE"),
            "wss://play.example.org/join/AB3%20DE"
        );
        let client = LobbyClient::new("http://127.0.0.1:3000/").token("t.k");
        assert_eq!(client.server(), "ws://127.0.0.1:3000");
        assert_eq!(
            client.join_url("ABCDEF"),
            "ws://127.0.0.1:3000/join/ABCDEF?token=t.k"
        );
        assert_eq!(
            client.room_url("duel"),
            "ws://127.0.0.1:3000/duel?token=t.k"
        );
        assert_eq!(
            client.quick_match_url("ranked 2v2", 4),
            "ws://127.0.0.1:3000/?next=4&mode=ranked%202v2&token=t.k"
        );
        assert_eq!(
            LobbyClient::new("ws://h:1").quick_match_url("", 2),
            "ws://h:1/?next=2"
        );
    }

    #[test]
    fn an_error_answer_gives_the_servers_reason() {
        assert_eq!(
            reason(404, r#"{"error":"no such lobby"}"#),
            LobbyError::Refused {
                status: 404,
                reason: "no such lobby".into()
            }
        );
        assert!(
            matches!(reason(502, "<html>"), LobbyError::Refused { status: 502, reason } if reason == "<html>")
        );
    }

    #[test]
    fn nothing_listening_is_unreachable() {
        let client = LobbyClient::new("ws://127.0.0.1:9");
        let got = futures::executor::block_on(client.list("", 10));
        assert!(matches!(got, Err(LobbyError::Unreachable(_))), "{got:?}");
    }
}
