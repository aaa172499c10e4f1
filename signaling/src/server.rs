//! The server: binding, the router (WebSocket paths, the API, health, metrics,
//! static files), serving and the graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::services::ServeDir;
use tracing::{info, warn};

use crate::Config;
use crate::state::App;
use crate::tasks::{expire_lobbies, run_stun};
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
}

impl Server {
    /// Binds the listening socket and, if configured, the STUN port.
    pub fn bind(config: &Config) -> Result<Self, Error> {
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
        let app = Arc::new(App::new(config, shutdown_rx, stun_addr));
        Ok(Self {
            app,
            listener,
            stun,
            addr,
            shutdown,
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
        } = self;
        let listener = tokio::net::TcpListener::from_std(listener).map_err(Error::Serve)?;
        // Signals are small writes that should go out at once, not wait for the
        // ACK of the one before (Nagle).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        if let Some(socket) = stun {
            let socket = tokio::net::UdpSocket::from_std(socket).map_err(Error::Serve)?;
            tokio::spawn(run_stun(socket, app.clone()));
        }
        tokio::spawn(expire_lobbies(app.clone()));
        let router = router(app.clone());
        info!(%addr, stun = ?app.stun_addr, "listening");
        if app.config.resume_secret.is_none() {
            warn!(
                "no --resume-secret: clients reconnecting after a restart of this server \
                 get new peer ids (their running games carry on, but cannot take newcomers \
                 or reconnects); set one that outlives the process"
            );
        }
        let served = axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown({
            let app = app.clone();
            async move {
                shutdown.await;
                info!("shutting down");
                app.shutting_down.store(true, Ordering::SeqCst);
            }
        })
        .await;
        // Tell every WebSocket to close, and wait for them to go.
        app.shutting_down.store(true, Ordering::SeqCst);
        let _ = shutdown_tx.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let left = app.client_left.notified();
                if app.clients.load(Ordering::SeqCst) == 0 {
                    break;
                }
                left.await;
            }
        })
        .await;
        served.map_err(Error::Serve)
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

/// Ready while serving and not shutting down.
async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.shutting_down.load(Ordering::SeqCst) {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down").into_response()
    } else {
        "ready".into_response()
    }
}

/// `/metrics`: every metric in the OpenMetrics text format.
async fn metrics(State(app): State<Arc<App>>) -> Response {
    {
        let hub = app.hub();
        app.metrics.rooms.set(hub.rooms.room_count() as i64);
        app.metrics.lobbies.set(hub.rooms.lobby_count() as i64);
    }
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
