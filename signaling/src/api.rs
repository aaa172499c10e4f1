//! The HTTP JSON API under `/api`: lobbies and ICE servers.
//!
//! - `POST /api/lobbies` `{"name": "..", "public": true, "max_players": 4, "mode": "ctf"}`
//!   (every field optional) → `201` with the lobby, its `code` and the WebSocket
//!   `path` to join it;
//! - `GET /api/lobbies?mode=ctf&limit=50` → `{"lobbies": [..]}`, public ones, newest first;
//! - `GET /api/lobbies/<CODE>` → the lobby, public or private;
//! - `GET /api/ice` → `{"iceServers": [..], "ttl": 3600}` in `RTCIceServer` form.
//!
//! Errors are `{"error": "why"}` with a fitting status. With auth on, every
//! endpoint needs a token; creating and listing lobbies count against the
//! address's rate.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::{IceServerEntry, turn_credentials};
use crate::rooms::{JoinCode, LobbyInfo, LobbySpec};
use crate::state::{App, Refusal};

/// Largest request body, in bytes.
const MAX_BODY: usize = 4096;
/// Most lobbies one listing returns.
const MAX_LIST: usize = 100;

pub(crate) fn router(app: &App) -> Router<Arc<App>> {
    let cors = CorsLayer::new()
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION]);
    let cors = if app.origins.is_restricted() {
        let allowed = app
            .origins
            .allowed()
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok());
        cors.allow_origin(AllowOrigin::list(allowed))
    } else {
        cors.allow_origin(tower_http::cors::Any)
    };
    Router::new()
        .route("/lobbies", get(list_lobbies).post(create_lobby))
        .route("/lobbies/{code}", get(get_lobby))
        .route("/ice", get(ice_servers))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(serde_json::json!({ "error": "no such endpoint" })),
            )
        })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(cors)
}

/// A lobby as the API returns it.
#[derive(Serialize)]
struct LobbyView {
    #[serde(flatten)]
    info: LobbyInfo,
    /// The WebSocket path that joins it.
    path: String,
}

impl From<LobbyInfo> for LobbyView {
    fn from(info: LobbyInfo) -> Self {
        let path = format!("/join/{}", info.code);
        Self { info, path }
    }
}

fn default_public() -> bool {
    true
}

fn default_max_players() -> usize {
    2
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateLobby {
    #[serde(default)]
    name: String,
    #[serde(default = "default_public")]
    public: bool,
    #[serde(default = "default_max_players")]
    max_players: usize,
    #[serde(default)]
    mode: String,
}

/// The lobby a `POST /api/lobbies` body asks for (checked by
/// [`Rooms::create_lobby`](crate::rooms::Rooms::create_lobby)). Public with the
/// `fuzzing` feature only, for the fuzz targets; not part of the API.
pub fn lobby_request(body: &[u8]) -> Result<LobbySpec, serde_json::Error> {
    let request: CreateLobby = serde_json::from_slice(body)?;
    Ok(LobbySpec {
        name: request.name,
        public: request.public,
        max_players: request.max_players,
        mode: request.mode,
    })
}

/// Origin and token checks shared by every endpoint.
fn check(
    app: &App,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
) -> Result<String, Refusal> {
    app.check_origin(headers)?;
    app.check_token(headers, query)
}

async fn create_lobby(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    let created = (|| {
        check(&app, &headers, &query)?;
        app.check_rate(app.client_ip(addr, &headers))?;
        let spec = lobby_request(&body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("invalid lobby request: {e}"),
            )
        })?;
        app.hub()
            .rooms
            .create_lobby(spec, Instant::now(), rand::random::<u32>)
            .map_err(|e| {
                let status = match e {
                    crate::rooms::RoomError::TooManyLobbies(_) => StatusCode::SERVICE_UNAVAILABLE,
                    _ => StatusCode::BAD_REQUEST,
                };
                Refusal::new(status, "bad_lobby", e.to_string())
            })
    })();
    match created {
        Ok(info) => {
            app.metrics.lobbies_created.inc();
            (StatusCode::CREATED, Json(LobbyView::from(info))).into_response()
        }
        Err(refusal) => refusal.respond(&app),
    }
}

async fn list_lobbies(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    // A listing sorts every public lobby: it counts against the rate too.
    let checked =
        check(&app, &headers, &query).and_then(|_| app.check_rate(app.client_ip(addr, &headers)));
    if let Err(refusal) = checked {
        return refusal.respond(&app);
    }
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .min(MAX_LIST);
    let mode = query.get("mode").map(String::as_str);
    let lobbies: Vec<LobbyView> = app
        .hub()
        .rooms
        .public_lobbies(mode, limit)
        .into_iter()
        .map(LobbyView::from)
        .collect();
    Json(serde_json::json!({ "lobbies": lobbies })).into_response()
}

async fn get_lobby(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    Path(code): Path<String>,
) -> Response {
    let found = (|| {
        check(&app, &headers, &query)?;
        let code: JoinCode = code.parse().map_err(|e: crate::rooms::RoomError| {
            Refusal::new(StatusCode::BAD_REQUEST, "bad_lobby", e.to_string())
        })?;
        app.hub().rooms.lobby(code).ok_or_else(|| {
            Refusal::new(
                StatusCode::NOT_FOUND,
                "unknown_lobby",
                format!("no lobby with code {code}"),
            )
        })
    })();
    match found {
        Ok(info) => Json(LobbyView::from(info)).into_response(),
        Err(refusal) => refusal.respond(&app),
    }
}

/// The ICE servers clients should use: this server's STUN responder (at the
/// public host, or the host the request was made to) and the TURN servers with
/// fresh credentials.
async fn ice_servers(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let subject = match check(&app, &headers, &query) {
        Ok(subject) => subject,
        Err(refusal) => return refusal.respond(&app),
    };
    let mut servers = Vec::new();
    if let Some(stun) = app.stun_addr {
        let host = app.config.public_host.clone().or_else(|| {
            let host = headers.get(header::HOST)?.to_str().ok()?;
            // Drop the port; keep IPv6 brackets.
            let host = match host.rsplit_once(':') {
                Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
                _ => host,
            };
            Some(host.to_owned())
        });
        if let Some(host) = host {
            servers.push(IceServerEntry {
                urls: vec![format!("stun:{host}:{}", stun.port())],
                username: None,
                credential: None,
            });
        }
    }
    let ttl = app.config.turn_ttl;
    if let (Some(secret), false) = (&app.config.turn_secret, app.config.turn_urls.is_empty()) {
        let (username, credential) =
            turn_credentials(secret.as_bytes(), &subject, ttl, SystemTime::now());
        servers.push(IceServerEntry {
            urls: app.config.turn_urls.clone(),
            username: Some(username),
            credential: Some(credential),
        });
    }
    Json(serde_json::json!({ "iceServers": servers, "ttl": ttl.as_secs() })).into_response()
}
