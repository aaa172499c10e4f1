//! `gamenet-signaling`: the signaling and matchmaking server of gamenet.
//!
//! It speaks matchbox's signaling protocol (`matchbox_protocol`), so any
//! `matchbox_socket` client, native or in a browser, can use it:
//!
//! - `ws://host/<room>`: everyone on one path shares a room;
//! - `ws://host/<room>?next=N&mode=M`: quick-match, the next `N` joiners of that
//!   path and mode form a closed room (`mode` is optional);
//! - `ws://host/join/<CODE>`: a lobby, created with `POST /api/lobbies`.
//!
//! Signals pass only between peers of one room. Around that: an HTTP JSON API for
//! lobbies (`/api/lobbies`) and ICE servers (`/api/ice`: this server's own STUN
//! responder and TURN servers with time-limited credentials), optional token
//! auth and an origin allow-list, per-address connection rate limits, message
//! size and idle limits, `/metrics` (Prometheus), `/health` and `/ready`, and
//! static files (the web build of a game) for plain HTTP requests.
//!
//! The WebSocket handling is this crate's own rather than
//! `matchbox_signaling`'s server builder: its handler has no message size or
//! buffer settings, no bounded send queues and no way to close a client with a
//! reason, all of which the limits above need.
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

pub mod auth;
pub mod limits;
pub mod metrics;
pub mod rooms;
pub mod shared;
pub mod signals;
pub mod stun;

mod api;
mod config;
mod outbox;
mod seat;
mod server;
mod state;
mod tasks;
mod ws;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use api::lobby_request;
pub use config::Config;
pub use server::{Error, Server, shutdown_signal};
