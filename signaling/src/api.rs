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
//! endpoint needs a token. Every request counts against the address's rate
//! (`--rate`); an address holds at most `--max-lobbies-per-address` lobbies;
//! unknown codes asked for count against a small budget of misses per address
//! (shared with joins by code), so that private lobbies cannot be enumerated.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

use crate::auth::{IceServerEntry, turn_credentials};
use crate::limits::address_key;
use crate::rooms::{JoinCode, LobbyInfo, LobbySpec, RoomError};
use crate::shared::{HeldLobby, SharedError, SharedState, now_millis};
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
        // A body sent slowly holds its connection no longer than headers may.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            request_timeout(app),
        ))
        .layer(cors)
}

/// How long one API request may take, its body included.
fn request_timeout(app: &App) -> std::time::Duration {
    match app.config.header_timeout {
        t if t.is_zero() => std::time::Duration::from_secs(3600),
        t => t,
    }
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
    let created = async {
        check(&app, &headers, &query)?;
        let ip = app.client_ip(addr, &headers);
        app.check_rate(ip).await?;
        let spec = lobby_request(&body).map_err(|e| {
            Refusal::new(
                StatusCode::BAD_REQUEST,
                "bad_json",
                format!("invalid lobby request: {e}"),
            )
        })?;
        // With at most `--max-lobbies` taken out of ~890 million codes, a few
        // random draws find a free one.
        let codes: Vec<JoinCode> = (0..16)
            .map(|_| JoinCode::from_random(rand::random::<u32>()))
            .collect();
        let now = now_millis();
        let held = spec.clone();
        app.shared
            .create_lobby(Some(address_key(ip)), spec, &codes, now)
            .await
            .inspect(|info| {
                app.mirror(|mirror| {
                    mirror.lobby(HeldLobby {
                        code: info.code,
                        spec: held,
                        owner: Some(address_key(ip)),
                        created: now,
                    });
                });
            })
            .map_err(|e| {
                let e = match e {
                    SharedError::Refused(e) => e,
                    e => return app.unavailable(&e),
                };
                let (status, reason) = match e {
                    RoomError::TooManyLobbies(_) => (StatusCode::SERVICE_UNAVAILABLE, "bad_lobby"),
                    RoomError::TooManyLobbiesFrom(_) => {
                        (StatusCode::TOO_MANY_REQUESTS, "lobbies_per_address")
                    }
                    _ => (StatusCode::BAD_REQUEST, "bad_lobby"),
                };
                Refusal::new(status, reason, e.to_string())
            })
    }
    .await;
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
    let checked = match check(&app, &headers, &query) {
        Ok(_) => app.check_rate(app.client_ip(addr, &headers)).await,
        Err(refusal) => Err(refusal),
    };
    if let Err(refusal) = checked {
        return refusal.respond(&app);
    }
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(50)
        .min(MAX_LIST);
    let mode = query.get("mode").map(String::as_str);
    let lobbies: Vec<LobbyView> = match app.shared.public_lobbies(mode, limit).await {
        Ok(lobbies) => lobbies.into_iter().map(LobbyView::from).collect(),
        Err(error) => return app.unavailable(&error).respond(&app),
    };
    Json(serde_json::json!({ "lobbies": lobbies })).into_response()
}

async fn get_lobby(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    Path(code): Path<String>,
) -> Response {
    let found = async {
        check(&app, &headers, &query)?;
        let ip = app.client_ip(addr, &headers);
        app.check_rate(ip).await?;
        let code: JoinCode = code.parse().map_err(|e: RoomError| {
            Refusal::new(StatusCode::BAD_REQUEST, "bad_lobby", e.to_string())
        })?;
        app.find_lobby(ip, code).await
    }
    .await;
    match found {
        Ok(info) => Json(LobbyView::from(info)).into_response(),
        Err(refusal) => refusal.respond(&app),
    }
}

/// The ICE servers clients should use: this server's STUN responder (at the
/// public host, or the host the request was made to) and the TURN servers with
/// fresh credentials. Minting credentials counts against the address's rate.
async fn ice_servers(
    State(app): State<Arc<App>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let checked = match check(&app, &headers, &query) {
        Ok(subject) => app
            .check_rate(app.client_ip(addr, &headers))
            .await
            .map(|()| subject),
        Err(refusal) => Err(refusal),
    };
    let subject = match checked {
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
