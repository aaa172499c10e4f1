//! The server: binding, the router (WebSocket paths, the API, health, metrics,
//! static files), serving and the graceful shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::services::ServeDir;
use tracing::{debug, info, warn};

use crate::Config;
use crate::rooms::RoomLimits;
use crate::shared::{MemoryState, RedisState, RedisStateConfig, Shared, SharedState};
use crate::state::{App, ConnectionGuard};
use crate::tasks::{Incoming, expire_lobbies, relay_in, run_stun, watch_instances};
use crate::{api, ws};

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The HTTP listening socket could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The STUN socket could not be bound.
    #[error("binding the STUN port {addr}: {source}")]
    BindStun {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Serve(std::io::Error),
    /// Redis (`--redis`) could not be reached, or was asked for from
    /// [`Server::bind`], which cannot wait for it ([`Server::start`] can).
    #[error("shared state: {0}")]
    Shared(String),
}

/// A bound server, ready to serve.
pub struct Server {
    /// The state the handlers and tasks share.
    app: Arc<App>,
    /// The bound HTTP and WebSocket socket.
    listener: std::net::TcpListener,
    /// The bound STUN socket, if configured.
    stun: Option<std::net::UdpSocket>,
    /// The address `listener` is bound to.
    addr: SocketAddr,
    /// Set to `true` to close every connection and task.
    shutdown: watch::Sender<bool>,
    /// With Redis: what other instances send this one's clients.
    incoming: Option<Incoming>,
}

impl Server {
    /// Binds the listening socket and, if configured, the STUN port, with
    /// rooms and limits in this process's memory. A config with `redis` set
    /// is refused: use [`start`](Self::start).
    pub fn bind(config: &Config) -> Result<Self, Error> {
        if config.redis.is_some() {
            return Err(Error::Shared(
                "a server on Redis is started with Server::start".into(),
            ));
        }
        Self::bind_with(
            config,
            Shared::Memory(MemoryState::new(room_limits(config))),
            None,
            new_instance_id(),
        )
    }

    /// Binds like [`bind`](Self::bind); with `config.redis`, first connects to
    /// Redis and subscribes to what other instances send this one.
    pub async fn start(config: &Config) -> Result<Self, Error> {
        let Some(url) = &config.redis else {
            return Self::bind(config);
        };
        let mut redis_config = RedisStateConfig::new(url.clone(), room_limits(config));
        redis_config.prefix = config.redis_prefix.clone();
        let redis = RedisState::connect(redis_config)
            .await
            .map_err(|e| Error::Shared(e.to_string()))?;
        let instance = new_instance_id();
        redis
            .announce(&instance, config.instance_ttl)
            .await
            .map_err(|e| Error::Shared(e.to_string()))?;
        let incoming: Incoming = Box::pin(
            redis
                .subscribe(&instance)
                .await
                .map_err(|e| Error::Shared(e.to_string()))?,
        );
        Self::bind_with(config, Shared::Redis(redis), Some(incoming), instance)
    }

    fn bind_with(
        config: &Config,
        shared: Shared,
        incoming: Option<Incoming>,
        instance: String,
    ) -> Result<Self, Error> {
        let bind_error = |source| Error::Bind {
            addr: config.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(config.listen).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let addr = listener.local_addr().map_err(bind_error)?;
        let stun = match config.stun_listen {
            None => None,
            Some(stun_addr) => {
                let stun_error = |source| Error::BindStun {
                    addr: stun_addr,
                    source,
                };
                let socket = std::net::UdpSocket::bind(stun_addr).map_err(stun_error)?;
                socket.set_nonblocking(true).map_err(stun_error)?;
                Some(socket)
            }
        };
        let stun_addr = stun.as_ref().and_then(|s| s.local_addr().ok());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = Arc::new(App::new(config, shutdown_rx, stun_addr, shared, instance));
        Ok(Self {
            app,
            listener,
            stun,
            addr,
            shutdown,
            incoming,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The UDP address of the STUN responder, if one is bound.
    pub fn stun_addr(&self) -> Option<SocketAddr> {
        self.app.stun_addr
    }

    /// Serves until `shutdown` completes, then closes every connection (waiting
    /// up to 5 s for clients to answer the close) and returns.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Self {
            app,
            listener,
            stun,
            addr,
            shutdown: shutdown_tx,
            incoming,
        } = self;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(Error::Serve)?;
        if let Some(socket) = stun {
            let socket = tokio::net::UdpSocket::from_std(socket).map_err(Error::Serve)?;
            tokio::spawn(run_stun(socket, app.clone()));
        }
        tokio::spawn(expire_lobbies(app.clone()));
        if let Some(incoming) = incoming {
            tokio::spawn(relay_in(app.clone(), incoming));
            tokio::spawn(watch_instances(app.clone()));
        }
        let router = router(app.clone());
        info!(%addr, stun = ?app.stun_addr, "listening");
        if app.config.resume_secret.is_none() {
            warn!(
                "no --resume-secret: clients reconnecting after a restart of this server \
                 get new peer ids (their running games carry on, but cannot take newcomers \
                 or reconnects); set one that outlives the process"
            );
        }
        // Each connection's task holds a receiver: once none is left, every
        // HTTP connection has ended (WebSockets are counted by their seats).
        let (connections, connection) = watch::channel(());
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((tcp, peer)) => serve_connection(&app, &router, tcp, peer, connection.clone()),
                    Err(e) if is_connection_error(&e) => {}
                    Err(e) => {
                        // Out of file descriptors, most likely: wait for some
                        // to come back rather than spin.
                        warn!("accepting a connection: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = &mut shutdown => break,
            }
        }
        info!("shutting down");
        drop(listener);
        drop(connection);
        // Tell every connection and WebSocket to close, and wait for them to go.
        app.shutting_down.store(true, Ordering::SeqCst);
        let _ = shutdown_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            connections.closed().await;
            loop {
                let left = app.client_left.notified();
                if app.clients.load(Ordering::SeqCst) == 0 {
                    break;
                }
                left.await;
            }
        })
        .await;
        Ok(())
    }
}

/// The room logic's limits from the server's settings.
fn room_limits(config: &Config) -> RoomLimits {
    RoomLimits {
        max_room_size: config.max_room_size,
        max_lobbies: config.max_lobbies,
        lobby_ttl: config.lobby_ttl,
        max_lobbies_per_owner: config.max_lobbies_per_address,
    }
}

/// Largest request head (request line and headers) a client may send, in bytes.
const MAX_REQUEST_HEAD: usize = 64 * 1024;

/// Whether an `accept` error concerns only the connection being accepted.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one accepted TCP connection over HTTP/1.1 in a task of its own:
/// refused at once when its address has too many open, closed when it is too
/// slow to send a request's headers, handed over to the WebSocket when it
/// upgrades, closed gracefully when the server shuts down.
fn serve_connection(
    app: &Arc<App>,
    router: &Router,
    tcp: TcpStream,
    peer: SocketAddr,
    tracker: watch::Receiver<()>,
) {
    let Some(guard) = app.open_connection(peer.ip()) else {
        app.metrics.refuse("connections_per_address");
        debug!(%peer, "too many connections from this address");
        refuse_connection(app, tcp);
        return;
    };
    // Signals are small writes that should go out at once, not wait for the
    // ACK of the one before (Nagle).
    let _ = tcp.set_nodelay(true);
    let io = TokioIo::new(Counted { tcp, _guard: guard });
    let service = router
        .clone()
        .map_request(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
    let service = TowerToHyperService::new(service);
    let mut shutdown = app.shutdown.clone();
    let header_timeout = Some(app.config.header_timeout).filter(|t| !t.is_zero());
    tokio::spawn(async move {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_REQUEST_HEAD);
        let connection = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(connection);
        tokio::select! {
            served = connection.as_mut() => {
                if let Err(e) = served {
                    debug!(%peer, "connection: {e}");
                }
            }
            () = async { let _ = shutdown.wait_for(|&down| down).await; } => {
                connection.as_mut().graceful_shutdown();
                let _ = connection.await;
            }
        }
        drop(tracker);
    });
}

/// How long a refused connection is given to send its request (read and
/// thrown away, so that closing does not reset the connection before the
/// client read the answer).
const REFUSAL_LINGER: Duration = Duration::from_millis(250);

/// Answers a connection over the per-address limit with a 429 and closes it;
/// past [`REFUSING`](crate::state::REFUSING) such connections at once, closes it without a word.
fn refuse_connection(app: &Arc<App>, tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(permit) = app.refusing.clone().try_acquire_owned() else {
        return;
    };
    let body = format!(
        "{{\"error\":\"too many connections from this address (at most {})\"}}",
        app.config.max_connections_per_address
    );
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    tokio::spawn(async move {
        let mut tcp = tcp;
        let _ = tokio::time::timeout(REFUSAL_LINGER, async {
            tcp.write_all(response.as_bytes()).await?;
            tcp.shutdown().await?;
            let mut sink = [0u8; 1024];
            while tcp.read(&mut sink).await? > 0 {}
            Ok::<_, io::Error>(())
        })
        .await;
        drop(permit);
    });
}

/// A TCP connection that counts against its address while it is open,
/// through HTTP and, after an upgrade, as a WebSocket.
struct Counted {
    tcp: TcpStream,
    _guard: ConnectionGuard,
}

impl AsyncRead for Counted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

/// Every route, and the static files in front of them when a web directory is set.
fn router(app: Arc<App>) -> Router {
    let web_dir = app.config.web_dir.clone();
    let router = Router::new()
        .route("/", get(ws::open_room))
        .route("/{room}", get(ws::open_room))
        .route("/join/{code}", get(ws::lobby))
        .route("/health", get(|| async { "ok" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .nest("/api", api::router(&app))
        .with_state(app);
    match web_dir {
        Some(dir) => router.layer(middleware::from_fn(move |req, next| {
            serve_static(ServeDir::new(dir.clone()).precompressed_gzip(), req, next)
        })),
        None => router,
    }
}

/// Ready while serving and not shutting down, and with Redis, while this
/// instance hears what the others send its clients.
async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.shutting_down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else if !app.relay_up.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "not subscribed to Redis").into_response()
    } else if let Shared::Redis(redis) = &app.shared
        && let Err(error) = redis.ping().await
    {
        app.metrics.shared_errors.inc();
        (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response()
    } else {
        "ready".into_response()
    }
}

/// A fresh id for this process among the instances sharing a Redis.
fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `/metrics`: every metric in the OpenMetrics text format.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    match app.shared.counts().await {
        Ok(counts) => {
            app.metrics.rooms.set(counts.rooms as i64);
            app.metrics.lobbies.set(counts.lobbies as i64);
            app.metrics.peers.set(counts.peers as i64);
        }
        Err(error) => {
            app.metrics.shared_errors.inc();
            debug!(%error, "counting rooms");
        }
    }
    let clients = match app.shared.seats().await {
        Ok(seats) if app.is_shared() => seats,
        _ => app.clients.load(Ordering::SeqCst),
    };
    app.metrics.clients_all.set(clients as i64);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// Plain GET and HEAD requests (not WebSocket upgrades, not the API, metrics or
/// health) are served from the web directory; a file with a `.gz` beside it goes
/// gzipped to clients that accept it.
async fn serve_static(dir: ServeDir, req: Request, next: Next) -> Response {
    let is_upgrade = req.headers().contains_key(header::UPGRADE);
    let is_read = req.method() == Method::GET || req.method() == Method::HEAD;
    let path = req.uri().path();
    let reserved =
        path.starts_with("/api/") || ["/api", "/health", "/ready", "/metrics"].contains(&path);
    if is_upgrade || !is_read || reserved {
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
            Err(e) => {
                warn!("no SIGTERM handler: {e}");
                futures::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = futures::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
