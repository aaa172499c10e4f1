//! What the request handlers share: the rooms and the peers' send queues, the
//! limits and counters around them, and the admission checks every WebSocket
//! and API request passes (client address, rate, origin, token).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use matchbox_protocol::PeerId;
use tokio::sync::{Notify, watch};

use crate::Config;
use crate::auth::{self, OriginPolicy, TokenError};
use crate::limits::{RetryAfter, address_key, describe_key};
use crate::metrics::Metrics;
use crate::outbox::{NotQueued, Outbox};
use crate::rooms::{JoinCode, Joined, LobbyInfo, RoomKey};
use crate::shared::{
    Bucket, Held, HeldLobby, HeldPeer, Location, Millis, Shared, SharedError, SharedState, Synced,
    now_millis,
};

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
/// The bucket of unknown lobby codes per address.
const LOBBY_MISSES: Bucket = Bucket {
    name: "lobby_miss",
    rate: LOBBY_MISS_RATE,
    burst: LOBBY_MISS_BURST,
};

/// What became of a message for a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// Queued here, or handed to Redis for the instance holding the peer.
    Queued,
    /// The peer's queue is full: its client is being closed.
    Overflow,
    /// The peer is not connected (any more).
    Gone,
    /// Redis could not take it.
    Unavailable,
}

/// The clients connected to this process.
#[derive(Default)]
pub(crate) struct Local {
    /// The send queue of each connected peer.
    pub(crate) peers: HashMap<PeerId, Outbox>,
    /// Which connection holds each peer id in its room: the one connected now,
    /// or the last one while its client may still reconnect.
    pub(crate) owners: HashMap<PeerId, u64>,
    /// With Redis: what this instance holds of the shared state.
    pub(crate) mirror: Mirror,
}

/// With Redis, what this instance holds of the shared state: kept to write it
/// back should Redis lose it, and to pass signals between its own clients
/// while Redis is out of reach. Empty in memory.
#[derive(Default)]
pub(crate) struct Mirror {
    /// The room of each client here that is in one.
    rooms: HashMap<PeerId, RoomKey>,
    /// Quick-match groups still filling that clients here wait in, with
    /// since when each waits.
    filling: HashMap<RoomKey, Vec<(PeerId, Millis)>>,
    /// Lobbies made here or that clients here joined.
    lobbies: HashMap<JoinCode, HeldLobby>,
    /// Seats taken here per client address (by its limit key).
    addresses: HashMap<IpAddr, usize>,
}

impl Mirror {
    /// `peer` joined as `joined` says, at `now`.
    pub(crate) fn joined(&mut self, peer: PeerId, joined: &Joined, now: Millis) {
        self.rooms.insert(peer, joined.room.clone());
        if matches!(joined.room, RoomKey::Quick { .. }) {
            if joined.matched.is_empty() {
                let waiting = self.filling.entry(joined.room.clone()).or_default();
                waiting.push((peer, now));
            } else {
                self.filling.remove(&joined.room);
            }
        }
    }

    /// `peer` resumed here, in `room`.
    pub(crate) fn resumed(&mut self, peer: PeerId, room: RoomKey) {
        self.rooms.insert(peer, room);
    }

    /// `peer` left its room.
    pub(crate) fn left(&mut self, peer: PeerId) {
        let Some(room) = self.rooms.remove(&peer) else {
            return;
        };
        if let Some(waiting) = self.filling.get_mut(&room) {
            waiting.retain(|(p, _)| *p != peer);
            if waiting.is_empty() {
                self.filling.remove(&room);
            }
        }
    }

    /// A client at `address` took a seat here.
    pub(crate) fn seat_taken(&mut self, address: IpAddr) {
        *self.addresses.entry(address).or_default() += 1;
    }

    /// A client at `address` gave its seat back.
    pub(crate) fn seat_given(&mut self, address: IpAddr) {
        if let Some(seats) = self.addresses.get_mut(&address) {
            *seats = seats.saturating_sub(1);
            if *seats == 0 {
                self.addresses.remove(&address);
            }
        }
    }

    /// A lobby made here, or joined by a client here.
    pub(crate) fn lobby(&mut self, lobby: HeldLobby) {
        self.lobbies.entry(lobby.code).or_insert(lobby);
    }

    /// What to ask Redis about: the groups still filling, the lobbies held.
    pub(crate) fn asked(&self) -> (Vec<RoomKey>, Vec<JoinCode>) {
        (
            self.filling.keys().cloned().collect(),
            self.lobbies.keys().copied().collect(),
        )
    }

    /// Forgets the groups Redis says are complete and the lobbies it says
    /// expired (only when Redis did not lose its data).
    pub(crate) fn synced(&mut self, synced: &Synced) {
        for room in &synced.complete {
            self.filling.remove(room);
        }
        for code in &synced.gone {
            self.lobbies.remove(code);
        }
    }

    /// Whether `a` and `b` are both in one room, as far as this instance knows.
    pub(crate) fn same_room(&self, a: PeerId, b: PeerId) -> bool {
        a != b && matches!((self.rooms.get(&a), self.rooms.get(&b)), (Some(x), Some(y)) if x == y)
    }
}

impl Local {
    /// Whether a signal from `from` to `to` may pass to `to`'s client here
    /// without Redis: both in one room, as far as this instance knows.
    pub(crate) fn routes_here(&self, from: PeerId, to: PeerId) -> bool {
        self.mirror.same_room(from, to) && self.peers.contains_key(&to)
    }

    /// What this instance holds, to write back: its connected clients in
    /// rooms (not those away within their resume grace: they may be back
    /// on another instance), the lobbies, and the seats it took in Redis.
    pub(crate) fn held(&self) -> Held {
        let waiting: HashMap<PeerId, Millis> =
            self.mirror.filling.values().flatten().copied().collect();
        Held {
            peers: self
                .mirror
                .rooms
                .iter()
                .filter(|(peer, _)| self.peers.contains_key(peer))
                .map(|(peer, room)| HeldPeer {
                    peer: *peer,
                    room: room.clone(),
                    waiting_since: waiting.get(peer).copied(),
                })
                .collect(),
            lobbies: self.mirror.lobbies.values().cloned().collect(),
            seats: self.mirror.addresses.values().sum(),
            addresses: self
                .mirror
                .addresses
                .iter()
                .map(|(address, seats)| (*address, *seats))
                .collect(),
        }
    }
}

/// What every request handler shares.
pub(crate) struct App {
    /// The settings the server was bound with.
    pub(crate) config: Config,
    /// Rooms, lobbies and the limits that hold across instances: in memory,
    /// or in Redis shared with other instances.
    pub(crate) shared: Shared,
    /// This process's id among the instances sharing a Redis.
    pub(crate) instance: String,
    /// The clients connected here.
    local: Mutex<Local>,
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
    /// With Redis: whether this instance hears what other instances send its
    /// clients (subscribed now). Always `true` in memory.
    pub(crate) relay_up: AtomicBool,
}

/// Locks `mutex`, also when a panic elsewhere poisoned it.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl App {
    /// The shared state of a server with `config`, told to close by
    /// `shutdown`, known to other instances as `instance`.
    pub(crate) fn new(
        config: &Config,
        shutdown: watch::Receiver<bool>,
        stun_addr: Option<SocketAddr>,
        shared: Shared,
        instance: String,
    ) -> Self {
        Self {
            shared,
            instance,
            local: Mutex::new(Local::default()),
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
            relay_up: AtomicBool::new(true),
            config: config.clone(),
        }
    }

    /// Locks the table of the clients connected here.
    pub(crate) fn local(&self) -> MutexGuard<'_, Local> {
        lock(&self.local)
    }

    /// Updates the mirror of what this instance holds, with Redis (in memory
    /// there is none to keep).
    pub(crate) fn mirror(&self, update: impl FnOnce(&mut Mirror)) {
        if self.is_shared() {
            update(&mut self.local().mirror);
        }
    }

    /// Whether the shared state is in Redis (other instances may hold some
    /// of the peers).
    pub(crate) fn is_shared(&self) -> bool {
        matches!(self.shared, Shared::Redis(_))
    }

    /// Queues `text` (a signaling event) for `to`, where `location` says it is
    /// connected: here, or through Redis on another instance.
    pub(crate) async fn deliver(&self, to: PeerId, location: &Location, text: &str) -> Delivery {
        let here = match location {
            Location::Here => true,
            Location::At(instance) => *instance == self.instance,
            Location::Nowhere => return Delivery::Gone,
        };
        if here {
            return self.deliver_here(to, text);
        }
        let (Shared::Redis(redis), Location::At(instance)) = (&self.shared, location) else {
            return Delivery::Gone;
        };
        match redis.publish(instance, &format!("{} {text}", to.0)).await {
            Ok(true) => {
                self.metrics.relayed_out.inc();
                Delivery::Queued
            }
            // Its instance is not subscribed now (Redis pub/sub keeps
            // nothing): lost. A dead instance's client either resumes
            // elsewhere (and is told who is there) or is taken out.
            Ok(false) => match redis.is_alive(instance).await {
                Ok(false) => Delivery::Gone,
                _ => {
                    self.metrics.shared_errors.inc();
                    Delivery::Unavailable
                }
            },
            Err(error) => {
                self.metrics.shared_errors.inc();
                tracing::debug!(%error, "relaying to another instance");
                Delivery::Unavailable
            }
        }
    }

    /// Queues `text` for `to` if its client is connected here.
    pub(crate) fn deliver_here(&self, to: PeerId, text: &str) -> Delivery {
        let message = axum::extract::ws::Message::Text(text.into());
        match self.local().peers.get(&to).map(|q| q.push(message)) {
            Some(Ok(())) => Delivery::Queued,
            // The receiver is being closed for not keeping up.
            Some(Err(NotQueued::Overflow)) => Delivery::Overflow,
            Some(Err(NotQueued::Gone)) | None => Delivery::Gone,
        }
    }

    /// Queues `text` for each of `peers`, wherever they are connected;
    /// `false` if it could not be handed to the instance of one of them
    /// (Redis out of reach, or that instance not subscribed now).
    pub(crate) async fn deliver_all(&self, peers: &[PeerId], text: &str) -> bool {
        let locations = if self.is_shared() {
            match self.shared.locate(peers).await {
                Ok(locations) => locations,
                Err(error) => {
                    self.metrics.shared_errors.inc();
                    tracing::warn!(%error, "locating peers");
                    return peers.is_empty();
                }
            }
        } else {
            vec![Location::Here; peers.len()]
        };
        let mut reached = true;
        for (peer, location) in peers.iter().zip(&locations) {
            // A full queue closes its client instead (and tells it who is
            // here should it come back with its key).
            let delivery = self.deliver(*peer, location, text).await;
            reached &= delivery != Delivery::Unavailable;
        }
        reached
    }

    /// The refusal for a shared state out of reach.
    pub(crate) fn unavailable(&self, error: &SharedError) -> Refusal {
        if matches!(error, SharedError::Unavailable(_)) {
            self.metrics.shared_errors.inc();
        }
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shared_state",
            format!("the server cannot serve this now: {error}"),
        )
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

    /// Takes a token from `ip`'s rate limit (across instances with Redis).
    pub(crate) async fn check_rate(&self, ip: IpAddr) -> Result<(), Refusal> {
        let bucket = Bucket {
            name: "request",
            rate: self.config.rate,
            burst: self.config.rate_burst,
        };
        self.take_token(bucket, ip, false)
            .await?
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

    async fn take_token(
        &self,
        bucket: Bucket,
        ip: IpAddr,
        peek: bool,
    ) -> Result<Result<(), RetryAfter>, Refusal> {
        self.shared
            .take_token(bucket, ip, peek, now_millis())
            .await
            .map_err(|e| self.unavailable(&e))
    }

    /// The lobby with `code`, for a client at `ip`: an unknown code counts
    /// against the address's budget of misses, so that private lobbies cannot
    /// be found by trying codes, through the API or by joining.
    pub(crate) async fn find_lobby(
        &self,
        ip: IpAddr,
        code: JoinCode,
    ) -> Result<LobbyInfo, Refusal> {
        let too_many = |retry: RetryAfter| Refusal {
            status: StatusCode::TOO_MANY_REQUESTS,
            reason: "lobby_misses",
            message: format!(
                "too many unknown lobby codes from {}; retry in {:.0} s",
                describe_key(address_key(ip)),
                retry.0.as_secs_f64().ceil()
            ),
            retry_after: Some(retry.0),
        };
        self.take_token(LOBBY_MISSES, ip, true)
            .await?
            .map_err(too_many)?;
        match self.shared.lobby(code).await {
            Ok(Some(info)) => Ok(info),
            Ok(None) => {
                let _ = self.take_token(LOBBY_MISSES, ip, false).await?;
                Err(Refusal::new(
                    StatusCode::NOT_FOUND,
                    "unknown_lobby",
                    format!("no lobby with code {code}"),
                ))
            }
            Err(e) => Err(self.unavailable(&e)),
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
