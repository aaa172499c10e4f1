//! `gamenet-signaling`: the signaling and matchmaking server of gamenet, built on
//! `matchbox_signaling`.
//!
//! Peers connect over WebSocket to `ws://host:port/<room>`; everyone on one path
//! shares a room, and `?next=N` puts the next `N` joiners of a path in a closed
//! room of their own (quick-match). Signals pass only between peers of one room.
//! The server also answers `/health` and can serve a directory of static files
//! (the web build of a game) to plain HTTP requests.
//!
//! # Example
//!
//! ```no_run
//! # async fn run() -> Result<(), gamenet_signaling::Error> {
//! use gamenet_signaling::{Config, Server};
//!
//! let config = Config { listen: "127.0.0.1:3000".parse().unwrap(), ..Config::default() };
//! let server = Server::bind(&config)?;
//! println!("listening on {}", server.local_addr());
//! server.serve(async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![cfg_attr(not(test), warn(clippy::unwrap_used, clippy::expect_used))]
// matchbox_signaling's connection callback returns an HTTP response as its error.
#![allow(clippy::result_large_err)]

pub mod rooms;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use axum::extract::Request;
use axum::extract::ws::{CloseFrame, Message};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use matchbox_protocol::{JsonPeerEvent, PeerId, PeerRequest};
use matchbox_signaling::common_logic::{SignalingChannel, parse_request};
use matchbox_signaling::{
    ClientRequestError, NoCallbacks, SignalingServer, SignalingServerBuilder, SignalingState,
    SignalingTopology, WsStateMeta,
};
use tower::ServiceExt;
use tower_http::services::ServeDir;
use tracing::{debug, info, warn};

use crate::rooms::{RoomRequest, Rooms};

/// Server settings, from flags or environment variables.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "gamenet-signaling", version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "GAMENET_LISTEN", default_value = "0.0.0.0:3000")]
    pub listen: SocketAddr,
    /// Directory of static files (a web build) served to plain HTTP requests.
    #[arg(long, env = "GAMENET_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Most peers in one room.
    #[arg(long, env = "GAMENET_MAX_ROOM_SIZE", default_value_t = 16)]
    pub max_room_size: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 3000)),
            web_dir: None,
            max_room_size: 16,
        }
    }
}

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Binding or serving failed.
    #[error(transparent)]
    Signaling(#[from] matchbox_signaling::Error),
}

/// Shared state of all connections.
#[derive(Clone)]
struct State(Arc<Mutex<Inner>>);

struct Inner {
    rooms: Rooms,
    senders: HashMap<PeerId, SignalingChannel>,
    /// Requests parsed at the HTTP upgrade, by client address, until an id is assigned.
    by_addr: HashMap<SocketAddr, RoomRequest>,
    /// Requests with an id, until the WebSocket state machine starts.
    by_peer: HashMap<PeerId, RoomRequest>,
}

impl SignalingState for State {}

impl State {
    fn new(max_room_size: usize) -> Self {
        State(Arc::new(Mutex::new(Inner {
            rooms: Rooms::new(max_room_size),
            senders: HashMap::new(),
            by_addr: HashMap::new(),
            by_peer: HashMap::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn event_message(event: JsonPeerEvent) -> Message {
    Message::Text(event.to_string().into())
}

/// Sends `message` to each of `peers` that is still connected.
fn send_to(inner: &Inner, peers: &[PeerId], message: &Message) {
    for peer in peers {
        if let Some(sender) = inner.senders.get(peer) {
            // A closed sender means that peer is on its way out; its own task cleans up.
            let _ = sender.send(Ok(message.clone()));
        }
    }
}

/// Room-scoped full mesh: each peer is linked to every other peer of its room only.
struct RoomTopology;

#[async_trait]
impl SignalingTopology<NoCallbacks, State> for RoomTopology {
    async fn state_machine(upgrade: WsStateMeta<NoCallbacks, State>) {
        let WsStateMeta {
            peer_id,
            sender,
            mut receiver,
            state,
            ..
        } = upgrade;
        {
            let mut inner = state.lock();
            let Some(request) = inner.by_peer.remove(&peer_id) else {
                warn!(%peer_id, "no room request recorded");
                return;
            };
            let room = request.path.clone();
            match inner.rooms.join(peer_id, request) {
                Ok(others) => {
                    info!(%peer_id, room, peers = others.len() + 1, "joined");
                    inner.senders.insert(peer_id, sender.clone());
                    send_to(
                        &inner,
                        &others,
                        &event_message(JsonPeerEvent::NewPeer(peer_id)),
                    );
                }
                Err(error) => {
                    info!(%peer_id, room, %error, "refused");
                    let close = CloseFrame {
                        code: 4000,
                        reason: error.to_string().into(),
                    };
                    let _ = sender.send(Ok(Message::Close(Some(close))));
                    return;
                }
            }
        }

        while let Some(message) = receiver.next().await {
            match parse_request(message) {
                Ok(PeerRequest::Signal { receiver: to, data }) => {
                    let inner = state.lock();
                    if inner.rooms.can_signal(peer_id, to) {
                        let event = JsonPeerEvent::Signal {
                            sender: peer_id,
                            data,
                        };
                        send_to(&inner, &[to], &event_message(event));
                    } else {
                        warn!(%peer_id, %to, "signal to a peer outside the room dropped");
                    }
                }
                Ok(PeerRequest::KeepAlive) => {}
                Err(ClientRequestError::Close) | Err(ClientRequestError::Axum(_)) => break,
                Err(error) => warn!(%peer_id, ?error, "malformed request ignored"),
            }
        }

        let mut inner = state.lock();
        inner.senders.remove(&peer_id);
        let others = inner.rooms.leave(peer_id);
        info!(%peer_id, "left");
        send_to(
            &inner,
            &others,
            &event_message(JsonPeerEvent::PeerLeft(peer_id)),
        );
    }
}

/// A bound server, ready to serve.
pub struct Server {
    inner: SignalingServer,
    addr: SocketAddr,
    shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Server {
    /// Binds the listening socket.
    pub fn bind(config: &Config) -> Result<Self, Error> {
        let state = State::new(config.max_room_size);
        let (shutdown, shutdown_rx) = tokio::sync::oneshot::channel();
        let max_room_size = config.max_room_size;
        let web_dir = config.web_dir.clone();
        let mut inner = SignalingServerBuilder::new(config.listen, RoomTopology, state.clone())
            .on_connection_request({
                let state = state.clone();
                move |request| {
                    let next = request.query_params.get("next").map(String::as_str);
                    match RoomRequest::parse(request.path.as_deref(), next, max_room_size) {
                        Ok(room) => {
                            state.lock().by_addr.insert(request.origin, room);
                            Ok(true)
                        }
                        Err(error) => {
                            debug!(origin = %request.origin, %error, "room request refused");
                            Err((StatusCode::BAD_REQUEST, error.to_string()).into_response())
                        }
                    }
                }
            })
            .on_id_assignment({
                let state = state.clone();
                move |(origin, peer_id)| {
                    let mut inner = state.lock();
                    if let Some(room) = inner.by_addr.remove(&origin) {
                        inner.by_peer.insert(peer_id, room);
                    }
                }
            })
            .with_shutdown(shutdown_rx)
            .build_with(move |router| {
                let router = router.route("/health", get(|| async { "ok" }));
                match web_dir {
                    Some(dir) => router.layer(middleware::from_fn(move |req, next| {
                        serve_static(ServeDir::new(dir.clone()).precompressed_gzip(), req, next)
                    })),
                    None => router,
                }
            });
        let addr = inner.bind()?;
        Ok(Self {
            inner,
            addr,
            shutdown,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `shutdown` completes, then closes every connection and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let trigger = self.shutdown;
        tokio::spawn(async move {
            shutdown.await;
            info!("shutting down");
            let _ = trigger.send(());
        });
        info!(addr = %self.addr, "listening");
        self.inner.serve().await?;
        Ok(())
    }
}

/// Plain GET and HEAD requests (not WebSocket upgrades, not `/health`) are served
/// from the web directory; a file with a `.gz` beside it goes gzipped to clients
/// that accept it.
async fn serve_static(dir: ServeDir, req: Request, next: Next) -> Response {
    let is_upgrade = req.headers().contains_key(header::UPGRADE);
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    if is_upgrade || !is_read || req.uri().path() == "/health" {
        return next.run(req).await;
    }
    match dir.oneshot(req).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// Resolves when the process gets SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => futures::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
