//! What the request handlers share: the rooms and the peers' send queues, the
//! limits and counters around them, and the admission checks every WebSocket
//! and API request passes (client address, rate, origin, token).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use matchbox_protocol::PeerId;
use tokio::sync::{Notify, watch};

use crate::Config;
use crate::auth::{self, OriginPolicy, TokenError};
use crate::limits::{RateLimiter, address_key, describe_key};
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::rooms::{JoinCode, LobbyInfo, RoomLimits, Rooms};

/// Refused connections being told why at once, at most.
pub(crate) const REFUSING: usize = 64;

/// Unknown lobby codes one address may try at once (API lookups and
/// WebSocket joins together), and how many more a second after that: ten a
/// minute. Guessing one of 10,000 private lobbies among ~890 million codes
/// then takes an address (an IPv6 /64) about 6 days on average, instead of
/// 5 hours at the general request rate.
const LOBBY_MISS_BURST: u32 = 10;
/// See [`LOBBY_MISS_BURST`].
const LOBBY_MISS_RATE: f64 = 10.0 / 60.0;

/// Rooms and the send queues of the peers in them.
pub(crate) struct Hub {
    /// Every room and lobby, and who is in which.
    pub(crate) rooms: Rooms,
    /// The send queue of each connected peer.
    pub(crate) peers: HashMap<PeerId, Outbox>,
    /// Which connection holds each peer id in its room: the one connected now,
    /// or the last one while its client may still reconnect.
    pub(crate) owners: HashMap<PeerId, u64>,
}

impl Hub {
    /// No rooms and no peers yet.
    fn new(config: &Config) -> Self {
        Self {
            rooms: Rooms::new(RoomLimits {
                max_room_size: config.max_room_size,
                max_lobbies: config.max_lobbies,
                lobby_ttl: config.lobby_ttl,
                max_lobbies_per_owner: config.max_lobbies_per_address,
            }),
            peers: HashMap::new(),
            owners: HashMap::new(),
        }
    }
}

/// What every request handler shares.
pub(crate) struct App {
    /// The settings the server was bound with.
    pub(crate) config: Config,
    /// Rooms and peers, behind one lock.
    hub: Mutex<Hub>,
    /// Connection and API request rates per address.
    limiter: Mutex<RateLimiter>,
    /// Unknown lobby codes tried per address.
    lobby_misses: Mutex<RateLimiter>,
    /// Open TCP connections per address (by [`address_key`]).
    connections: Mutex<HashMap<IpAddr, usize>>,
    /// Connections over the per-address limit being answered now.
    pub(crate) refusing: Arc<tokio::sync::Semaphore>,
    /// Counters and gauges served at `/metrics`.
    pub(crate) metrics: Metrics,
    /// The web origins allowed to connect.
    pub(crate) origins: OriginPolicy,
    /// WebSocket clients connected or being upgraded now (seats taken).
    pub(crate) clients: AtomicUsize,
    /// A wake-up when a client leaves.
    pub(crate) client_left: Notify,
    /// Set once shutdown begins: `/ready` answers 503 and new clients are refused.
    pub(crate) shutting_down: AtomicBool,
    /// Becomes `true` when every connection and task is to close.
    pub(crate) shutdown: watch::Receiver<bool>,
    /// The bound UDP address of the STUN responder, if any.
    pub(crate) stun_addr: Option<SocketAddr>,
    /// The secret resume keys derive peer ids from.
    pub(crate) resume_secret: Vec<u8>,
    /// Numbers WebSocket connections.
    pub(crate) next_connection: AtomicU64,
}

/// Locks `mutex`, also when a panic elsewhere poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    /// The shared state of a server with `config`, told to close by `shutdown`.
    pub(crate) fn new(
        config: &Config,
        shutdown: watch::Receiver<bool>,
        stun_addr: Option<SocketAddr>,
    ) -> Self {
        Self {
            hub: Mutex::new(Hub::new(config)),
            limiter: Mutex::new(RateLimiter::new(config.rate, config.rate_burst, 100_000)),
            lobby_misses: Mutex::new(RateLimiter::new(LOBBY_MISS_RATE, LOBBY_MISS_BURST, 100_000)),
            connections: Mutex::new(HashMap::new()),
            refusing: Arc::new(tokio::sync::Semaphore::new(REFUSING)),
            metrics: Metrics::default(),
            origins: OriginPolicy::new(config.allowed_origins.iter().cloned()),
            clients: AtomicUsize::new(0),
            client_left: Notify::new(),
            shutting_down: AtomicBool::new(false),
            shutdown,
            stun_addr,
            resume_secret: match &config.resume_secret {
                Some(secret) => secret.as_bytes().to_vec(),
                None => rand::random::<[u8; 32]>().to_vec(),
            },
            next_connection: AtomicU64::new(0),
            config: config.clone(),
        }
    }

    /// Locks the rooms and peers.
    pub(crate) fn hub(&self) -> MutexGuard<'_, Hub> {
        lock(&self.hub)
    }

    /// The client's address: the connection's, or behind a trusted proxy the
    /// last `X-Forwarded-For` entry.
    pub(crate) fn client_ip(&self, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
        if self.config.trust_proxy
            && let Some(ip) = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
                .next_back()
        {
            return ip;
        }
        peer.ip()
    }

    /// Takes a token from `ip`'s rate limit.
    pub(crate) fn check_rate(&self, ip: IpAddr) -> Result<(), Refusal> {
        lock(&self.limiter)
            .check(ip, Instant::now())
            .map_err(|retry| Refusal {
                status: StatusCode::TOO_MANY_REQUESTS,
                reason: "rate_limit",
                message: format!(
                    "too many requests from {}; retry in {:.1} s",
                    describe_key(address_key(ip)),
                    retry.0.as_secs_f64()
                ),
                retry_after: Some(retry.0),
            })
    }

    /// The lobby with `code`, for a client at `ip`: an unknown code counts
    /// against the address's budget of misses, so that private lobbies cannot
    /// be found by trying codes, through the API or by joining.
    pub(crate) fn find_lobby(&self, ip: IpAddr, code: JoinCode) -> Result<LobbyInfo, Refusal> {
        let now = Instant::now();
        let too_many = |retry: crate::limits::RetryAfter| Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason: "lobby_misses",
            message: format!(
                "too many unknown lobby codes from {}; retry in {:.0} s",
                describe_key(address_key(ip)),
                retry.0.as_secs_f64().ceil()
            ),
            retry_after: Some(retry.0),
        };
        lock(&self.lobby_misses).peek(ip, now).map_err(too_many)?;
        match self.hub().rooms.lobby(code) {
            Some(info) => Ok(info),
            None => {
                let _ = lock(&self.lobby_misses).check(ip, now);
                Err(Refusal::new(
                    StatusCode::NOT_FOUND,
                    "unknown_lobby",
                    format!("no lobby with code {code}"),
                ))
            }
        }
    }

    /// Counts a new TCP connection from `ip`; `None` if that address has as
    /// many open as it may (`--max-connections-per-address`, not applied
    /// behind a trusted proxy). The count goes down when the guard drops.
    pub(crate) fn open_connection(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionGuard> {
        let key = address_key(ip);
        let max = self.config.max_connections_per_address;
        let limited = max > 0 && !self.config.trust_proxy;
        {
            let mut open = lock(&self.connections);
            let count = open.entry(key).or_default();
            if limited && *count >= max {
                if *count == 0 {
                    open.remove(&key);
                }
                return None;
            }
            *count += 1;
        }
        self.metrics.tcp_connections.inc();
        Some(ConnectionGuard {
            app: self.clone(),
            key,
        })
    }

    /// Checks the request's `Origin` against the allow-list.
    pub(crate) fn check_origin(&self, headers: &HeaderMap) -> Result<(), Refusal> {
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        if self.origins.allows(origin) {
            Ok(())
        } else {
            Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "origin",
                format!("origin {} is not allowed", origin.unwrap_or_default()),
            ))
        }
    }

    /// Checks the access token when auth is on; returns its subject.
    pub(crate) fn check_token(
        &self,
        headers: &HeaderMap,
        query: &HashMap<String, String>,
    ) -> Result<String, Refusal> {
        let Some(secret) = &self.config.auth_secret else {
            return Ok(String::new());
        };
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        let token = bearer.or(query.get("token").map(String::as_str));
        let checked = match token {
            None => Err(TokenError::Missing),
            Some(token) => auth::verify_token(secret.as_bytes(), token, SystemTime::now()),
        };
        checked.map_err(|e| Refusal::new(StatusCode::UNAUTHORIZED, "token", e.to_string()))
    }
}

/// An open TCP connection, counted against its address until dropped.
pub(crate) struct ConnectionGuard {
    app: Arc<App>,
    key: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut open = lock(&self.app.connections);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
        drop(open);
        self.app.metrics.tcp_connections.dec();
    }
}

/// A refused request: status, a metric reason and a message for the client.
#[derive(Debug)]
pub(crate) struct Refusal {
    /// The HTTP status.
    status: StatusCode,
    /// The `reason` label of the refusal counter.
    reason: &'static str,
    /// Why, for the client.
    message: String,
    /// How long to wait before asking again (`Retry-After`), if it is a rate limit.
    retry_after: Option<Duration>,
}

impl Refusal {
    /// A refusal without `Retry-After`.
    pub(crate) fn new(
        status: StatusCode,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            reason,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Counts it and turns it into a JSON error response.
    pub(crate) fn respond(self, app: &App) -> Response {
        app.metrics.refuse(self.reason);
        tracing::debug!(reason = self.reason, "{}", self.message);
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response();
        if let Some(retry) = self.retry_after
            && let Ok(value) = retry.as_secs().saturating_add(1).to_string().parse()
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
