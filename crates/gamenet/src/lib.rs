//! Peer-to-peer multiplayer networking over WebRTC data channels, natively and
//! in the browser.
//!
//! A [`PeerMesh`] joins a room on a signaling server (such as `gamenet-signaling`)
//! and links to every other peer in it over two data channels, one reliable and
//! ordered, one unreliable and unordered. On top of the WebRTC connection it
//! runs gamenet's own protocol ([`gamenet_core`]): a versioned handshake, heartbeats
//! with per-peer round-trip time, loss and throughput, disconnect detection that
//! works the same everywhere, flow control, and fragmentation of large messages.
//!
//! The runtime is the caller's: [`PeerMeshBuilder::build`] returns the mesh and a
//! [`MeshDriver`] future to spawn on tokio, smol, or `wasm_bindgen_futures`.
//!
//! # Example
//!
//! ```no_run
//! use gamenet::{Channel, Event, IceServer, PeerMesh};
//!
//! # async fn run() -> Result<(), gamenet::Error> {
//! let (mut mesh, driver) = PeerMesh::builder("ws://localhost:3000/my-room")
//!     .app_id("my-game/1")
//!     .ice_server(IceServer::stun("stun:stun.example.org:3478"))
//!     .build()?;
//! tokio::spawn(driver);
//!
//! loop {
//!     match mesh.next_event().await? {
//!         Event::PeerJoined(peer) => mesh.send(peer, Channel::Reliable, b"hello")?,
//!         Event::Message { peer, payload, .. } => println!("{peer}: {payload:?}"),
//!         Event::PeerLeft { peer, reason } => println!("{peer} left: {reason}"),
//!         other => println!("{other:?}"),
//!     }
//! }
//! # }
//! ```
//!
//! A game loop calls [`PeerMesh::update`] once a frame instead and drains
//! [`PeerMesh::poll_event`].
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use futures_timer::Delay;
use matchbox_socket::{
    ChannelConfig, MessageLoopFuture, PeerState, RtcIceServerConfig, WebRtcChannel, WebRtcSocket,
};

pub use gamenet_core::{
    Bytes, Channel, ConditionerConfig, ConfigError, Event, GoodbyeReason, HandshakeError, Instant,
    LeaveReason, MeshConfig, PeerId, PeerStats, ProtocolError, SendError,
};
use gamenet_core::{LinkConditioner, Mesh, Transmit};

pub use gamenet_core::hash;

pub mod replication;
pub mod rollback;

/// Longest the async loop sleeps without looking at the clock.
const MAX_IDLE: Duration = Duration::from_millis(250);

/// An ICE server (STUN or TURN) for WebRTC connection set-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceServer {
    /// Its URLs, such as `stun:host:3478` or `turn:host:3478?transport=udp`.
    pub urls: Vec<String>,
    /// User name, for TURN.
    pub username: Option<String>,
    /// Credential, for TURN.
    pub credential: Option<String>,
}

impl IceServer {
    /// A STUN server at `url`.
    pub fn stun(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            username: None,
            credential: None,
        }
    }

    /// A TURN server at `url` (`turn:host:3478?transport=udp`) with its credentials.
    pub fn turn(
        url: impl Into<String>,
        username: impl Into<String>,
        credential: impl Into<String>,
    ) -> Self {
        Self {
            urls: vec![url.into()],
            username: Some(username.into()),
            credential: Some(credential.into()),
        }
    }

    /// The ICE servers of a `gamenet-signaling` server's `/api/ice` answer (or
    /// any JSON with an `iceServers` list in `RTCIceServer` form).
    pub fn list_from_json(json: &str) -> Result<Vec<Self>, Error> {
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "iceServers")]
            ice_servers: Vec<Entry>,
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Urls {
            One(String),
            Many(Vec<String>),
        }
        #[derive(serde::Deserialize)]
        struct Entry {
            urls: Urls,
            username: Option<String>,
            credential: Option<String>,
        }
        let answer: Answer =
            serde_json::from_str(json).map_err(|e| Error::IceServers(e.to_string()))?;
        Ok(answer
            .ice_servers
            .into_iter()
            .map(|entry| Self {
                urls: match entry.urls {
                    Urls::One(url) => vec![url],
                    Urls::Many(urls) => urls,
                },
                username: entry.username,
                credential: entry.credential,
            })
            .collect())
    }

    /// No ICE server: peers gather host candidates only, as on one network.
    pub fn none() -> Self {
        Self {
            urls: Vec::new(),
            username: None,
            credential: None,
        }
    }
}

/// Errors of the runtime.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No ICE server was set. gamenet never falls back on public STUN hosts: set one
    /// with [`PeerMeshBuilder::ice_server`], or [`IceServer::none`] for host candidates.
    #[error(
        "no ICE server configured; set one explicitly (IceServer::none() for host candidates only)"
    )]
    IceServerNotSet,
    /// The mesh settings cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A message could not be sent.
    #[error(transparent)]
    Send(#[from] SendError),
    /// The signaling connection failed or was lost.
    #[error("signaling: {0}")]
    Signaling(#[from] matchbox_socket::Error),
    /// An ICE server list cannot be used: its JSON is unreadable, or its TURN
    /// servers have different credentials (matchbox_socket takes one
    /// `RTCIceServer`, so one set for all; servers on one coturn secret share it).
    #[error("ICE servers: {0}")]
    IceServers(String),
    /// The mesh's driver has stopped; nothing more can be sent or received.
    #[error("the mesh is closed")]
    Closed,
    /// The WebRTC stack under the mesh failed inside its driver (matchbox_socket
    /// 0.15 panics when a data channel closes before it opened, as a handshake
    /// that fails on a lossy link does). The mesh is closed.
    #[error("the WebRTC driver failed: {0}")]
    Driver(String),
}

/// Builds a [`PeerMesh`].
#[derive(Debug, Clone)]
pub struct PeerMeshBuilder {
    room_url: String,
    ice_servers: Option<Vec<IceServer>>,
    config: MeshConfig,
    signaling_attempts: Option<u16>,
    conditioner: Option<ConditionerConfig>,
}

impl PeerMeshBuilder {
    /// Sets the ICE server. This or [`ice_servers`](Self::ice_servers) is
    /// required; see [`Error::IceServerNotSet`].
    pub fn ice_server(self, server: IceServer) -> Self {
        self.ice_servers([server])
    }

    /// Sets several ICE servers, such as the STUN and TURN servers a
    /// `gamenet-signaling` server lists at `/api/ice` (see
    /// [`IceServer::list_from_json`]). TURN servers must share one set of
    /// credentials ([`Error::IceServers`]).
    pub fn ice_servers(mut self, servers: impl IntoIterator<Item = IceServer>) -> Self {
        self.ice_servers = Some(servers.into_iter().collect());
        self
    }

    /// Sets the application id; peers of other applications are refused in the handshake.
    pub fn app_id(mut self, app_id: impl Into<String>) -> Self {
        self.config.app_id = app_id.into();
        self
    }

    /// Replaces all protocol settings.
    pub fn config(mut self, config: MeshConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the disconnect timeout (default 2 s).
    pub fn disconnect_timeout(mut self, timeout: Duration) -> Self {
        self.config.disconnect_timeout = timeout;
        self
    }

    /// How many times to try reaching the signaling server (`None`: forever). Default 3.
    pub fn signaling_attempts(mut self, attempts: Option<u16>) -> Self {
        self.signaling_attempts = attempts;
        self
    }

    /// Passes every outgoing packet through a link conditioner (latency,
    /// jitter, loss, duplication), to try a game on a bad network. Off by default.
    pub fn link_conditioner(mut self, config: ConditionerConfig) -> Self {
        self.conditioner = Some(config);
        self
    }

    /// Creates the mesh and the driver future that must be spawned for it to work.
    pub fn build(self) -> Result<(PeerMesh, MeshDriver), Error> {
        let ice = merge_ice_servers(self.ice_servers.ok_or(Error::IceServerNotSet)?)?;
        let core = Mesh::new(self.config)?;
        // Channel 0 is reliable, channel 1 unreliable: see `Channel::index`.
        let (mut socket, driver) = WebRtcSocket::builder(self.room_url)
            .ice_server(ice)
            .reconnect_attempts(self.signaling_attempts)
            .add_channel(ChannelConfig::reliable())
            .add_channel(ChannelConfig::unreliable())
            .build();
        let reliable = socket
            .take_channel(Channel::Reliable.index())
            .map_err(|_| Error::Closed)?;
        let unreliable = socket
            .take_channel(Channel::Unreliable.index())
            .map_err(|_| Error::Closed)?;
        let mesh = PeerMesh {
            socket,
            channels: [reliable, unreliable],
            core,
            closed: false,
            conditioner: self.conditioner.map(LinkConditioner::new),
        };
        Ok((mesh, MeshDriver(Some(driver))))
    }
}

/// One `RTCIceServer` for matchbox_socket: every URL, and the one set of
/// credentials the servers that have any share.
fn merge_ice_servers(servers: Vec<IceServer>) -> Result<RtcIceServerConfig, Error> {
    let mut merged = RtcIceServerConfig {
        urls: Vec::new(),
        username: None,
        credential: None,
    };
    for server in servers {
        if server.username.is_some() || server.credential.is_some() {
            let theirs = (server.username, server.credential);
            match (&merged.username, &merged.credential) {
                (None, None) => (merged.username, merged.credential) = theirs,
                ours if (ours.0, ours.1) == (&theirs.0, &theirs.1) => {}
                _ => {
                    return Err(Error::IceServers(format!(
                        "{:?} has other credentials than the servers before it",
                        server.urls
                    )));
                }
            }
        }
        merged.urls.extend(server.urls);
    }
    Ok(merged)
}

/// How a link to a peer runs, from the candidate pair ICE selected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Route {
    /// Straight between the two ends' own addresses (one network).
    Direct,
    /// Through a NAT's public address (learned from STUN), without a relay.
    NatTraversed,
    /// Through a TURN relay.
    Relayed,
}

impl Route {
    fn from_pair(pair: matchbox_socket::CandidatePair) -> Self {
        use matchbox_socket::CandidateType::{Host, Relay};
        match (pair.local, pair.remote) {
            (Relay, _) | (_, Relay) => Self::Relayed,
            // How the peer is reached decides; the local type varies by platform.
            (_, Host) => Self::Direct,
            _ => Self::NatTraversed,
        }
    }
}

/// The future that runs the WebRTC connections and the signaling of a [`PeerMesh`].
/// Spawn it on the runtime of your choice; it ends when the mesh is closed or the
/// signaling server is lost.
///
/// A panic inside the WebRTC stack does not unwind into the runtime that polls
/// the driver: the driver ends with [`Error::Driver`] instead, and the mesh
/// reports itself closed (no peer is left connected).
#[must_use = "the mesh does nothing unless its driver is spawned"]
pub struct MeshDriver(Option<MessageLoopFuture>);

impl Future for MeshDriver {
    type Output = Result<(), Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(driver) = self.0.as_mut() else {
            return Poll::Ready(Err(Error::Closed));
        };
        let polled =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| driver.poll_unpin(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                self.0 = None;
                Poll::Ready(result.map_err(Error::from))
            }
            Err(panic) => {
                // A future that panicked must not be polled again: drop it, which
                // closes every channel of the socket.
                self.0 = None;
                let reason = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_owned());
                tracing::error!("gamenet: the WebRTC driver failed: {reason}");
                Poll::Ready(Err(Error::Driver(reason)))
            }
        }
    }
}

impl std::fmt::Debug for MeshDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MeshDriver")
    }
}

/// What woke the async loop.
enum Wake {
    /// Peer changes, in order.
    Peers(Vec<(matchbox_socket::PeerId, PeerState)>),
    /// One peer change, or `None`: the socket closed.
    Peer(Option<(matchbox_socket::PeerId, PeerState)>),
    Packet(Channel, Option<(matchbox_socket::PeerId, Bytes)>),
    Timer,
}

/// A mesh of WebRTC links to every other peer of a room.
#[derive(Debug)]
pub struct PeerMesh {
    socket: WebRtcSocket,
    channels: [WebRtcChannel; 2],
    core: Mesh,
    closed: bool,
    conditioner: Option<LinkConditioner<Transmit>>,
}

impl PeerMesh {
    /// Starts building a mesh that joins `room_url`, e.g. `ws://host:3000/room`
    /// or `ws://host:3000/lobby?next=2` for quick-match.
    pub fn builder(room_url: impl Into<String>) -> PeerMeshBuilder {
        PeerMeshBuilder {
            room_url: room_url.into(),
            ice_servers: None,
            config: MeshConfig::default(),
            signaling_attempts: Some(3),
            conditioner: None,
        }
    }

    /// This peer's id, once the signaling server has assigned it.
    pub fn id(&mut self) -> Option<PeerId> {
        self.socket.id().map(to_core)
    }

    /// Processes everything that arrived and every timer due. Call once a frame,
    /// then drain [`PeerMesh::poll_event`].
    pub fn update(&mut self) {
        let now = Instant::now();
        if !self.closed {
            let changes = self.peer_changes();
            self.on_wake(now, changes);
        }
        for channel in [Channel::Reliable, Channel::Unreliable] {
            while let Some(packet) = self.channels[channel.index()].next().now_or_never() {
                let end = packet.is_none();
                self.on_wake(now, Wake::Packet(channel, packet));
                if end {
                    break;
                }
            }
        }
        self.on_wake(now, Wake::Timer);
    }

    /// The next event, if one is ready. Does not process new input by itself;
    /// see [`PeerMesh::update`].
    pub fn poll_event(&mut self) -> Option<Event> {
        self.core.poll_event()
    }

    /// Waits for the next event. Returns [`Error::Closed`] once the driver has stopped
    /// and every event was taken.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        // The timer lives in this future, not in the mesh, so that the mesh stays
        // `Send` where timers are not (the browser).
        let mut timer: Option<(Instant, Delay)> = None;
        loop {
            if let Some(event) = self.core.poll_event() {
                return Ok(event);
            }
            if self.closed {
                return Err(Error::Closed);
            }
            let now = Instant::now();
            let deadline = self
                .poll_timeout()
                .unwrap_or(now + MAX_IDLE)
                .min(now + MAX_IDLE);
            let delay = match timer.take() {
                Some((at, delay)) if at == deadline => delay,
                _ => Delay::new(deadline.saturating_duration_since(now)),
            };
            let (delay, wake) = {
                let mut delay = Some(delay);
                let wake = futures::future::poll_fn(|cx| self.poll_wake(cx, &mut delay)).await;
                (delay, wake)
            };
            timer = delay.map(|d| (deadline, d));
            self.on_wake(Instant::now(), wake);
            // Take in everything else that is ready before timers run, so that a
            // caller who paused for a while does not time out peers whose packets
            // are waiting.
            self.update();
        }
    }

    /// Peers that connected or disconnected since last asked, through
    /// matchbox's `try_update_peers`, which also keeps the socket's own peer
    /// table (and with it the candidate pairs behind [`PeerMesh::route`]).
    fn peer_changes(&mut self) -> Wake {
        match self.socket.try_update_peers() {
            Ok(changes) => Wake::Peers(changes),
            Err(_) => Wake::Peer(None),
        }
    }

    /// Polls the sources of input; a timer that fired is taken out of `timer`.
    fn poll_wake(&mut self, cx: &mut Context<'_>, timer: &mut Option<Delay>) -> Poll<Wake> {
        match self.peer_changes() {
            Wake::Peers(changes) if changes.is_empty() => {}
            changes => return Poll::Ready(changes),
        }
        // Nothing pending: register for the next change. One that arrives between
        // the two calls is taken here, past the socket's peer table (its route
        // then stays unknown); the window is a few instructions wide.
        if let Poll::Ready(change) = self.socket.poll_next_unpin(cx) {
            return Poll::Ready(Wake::Peer(change));
        }
        for channel in [Channel::Reliable, Channel::Unreliable] {
            if let Poll::Ready(packet) = self.channels[channel.index()].poll_next_unpin(cx) {
                return Poll::Ready(Wake::Packet(channel, packet));
            }
        }
        match timer.as_mut().map(|delay| delay.poll_unpin(cx)) {
            Some(Poll::Pending) => Poll::Pending,
            Some(Poll::Ready(())) | None => {
                *timer = None;
                Poll::Ready(Wake::Timer)
            }
        }
    }

    fn on_wake(&mut self, now: Instant, wake: Wake) {
        let is_timer = matches!(wake, Wake::Timer);
        match wake {
            Wake::Peers(changes) => {
                for change in changes {
                    self.on_wake(now, Wake::Peer(Some(change)));
                }
            }
            Wake::Peer(Some((peer, PeerState::Connected))) => {
                self.core.handle_connected(now, to_core(peer));
            }
            Wake::Peer(Some((peer, PeerState::Disconnected))) => {
                self.core.handle_disconnected(now, to_core(peer));
            }
            Wake::Packet(channel, Some((peer, data))) => {
                self.core.handle_packet(now, to_core(peer), channel, data);
            }
            Wake::Peer(None) | Wake::Packet(_, None) => self.on_closed(now),
            Wake::Timer => {}
        }
        if is_timer && self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
        }
        self.flush();
    }

    fn on_closed(&mut self, now: Instant) {
        if self.closed {
            return;
        }
        self.closed = true;
        let peers: Vec<PeerId> = self.core.joined_peers().collect();
        for peer in peers {
            self.core.handle_disconnected(now, peer);
        }
    }

    /// When the mesh next wants [`PeerMesh::update`] called (a timer or a
    /// conditioned packet falls due).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let conditioned = self.conditioner.as_ref().and_then(|c| c.poll_timeout());
        [self.core.poll_timeout(), conditioned]
            .into_iter()
            .flatten()
            .min()
    }

    fn flush(&mut self) {
        let now = Instant::now();
        while let Some(t) = self.core.poll_transmit() {
            match &mut self.conditioner {
                Some(c) => {
                    let reliable = t.channel == Channel::Reliable;
                    c.send(now, t, reliable);
                }
                None => self.transmit(t),
            }
        }
        while let Some(t) = self.conditioner.as_mut().and_then(|c| c.poll(now)) {
            self.transmit(t);
        }
    }

    fn transmit(&mut self, t: Transmit) {
        if self.channels[t.channel.index()]
            .try_send(t.data, to_matchbox(t.peer))
            .is_err()
        {
            self.closed = true;
        }
    }

    /// Sends a message to one joined peer.
    pub fn send(
        &mut self,
        peer: PeerId,
        channel: Channel,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let result = self.core.send(peer, channel, payload);
        self.flush();
        result
    }

    /// Sends a message to every joined peer; the first error is returned after all
    /// peers were tried.
    pub fn broadcast(&mut self, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        let peers: Vec<PeerId> = self.core.joined_peers().collect();
        let mut result = Ok(());
        for peer in peers {
            let sent = self.core.send(peer, channel, payload);
            if result.is_ok() {
                result = sent;
            }
        }
        self.flush();
        result
    }

    /// Stops talking to `peer` and reports it as left. Returns whether it was linked.
    pub fn drop_peer(&mut self, peer: PeerId) -> bool {
        let dropped = self.core.drop_peer(peer);
        self.flush();
        dropped
    }

    /// The peers that completed the handshake.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.core.joined_peers()
    }

    /// Link statistics of `peer`.
    pub fn stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.core.stats(peer)
    }

    /// How the WebRTC link to `peer` runs: directly, through NATs, or relayed
    /// by a TURN server; `None` until ICE has selected a candidate pair.
    pub fn route(&self, peer: PeerId) -> Option<Route> {
        self.socket
            .candidate_pair(to_matchbox(peer))
            .map(Route::from_pair)
    }

    /// The protocol settings in force.
    pub fn config(&self) -> &MeshConfig {
        self.core.config()
    }

    /// Whether the driver has stopped.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Says goodbye to every peer and leaves the room; the driver then ends.
    pub fn close(&mut self) {
        self.core.close();
        self.flush();
        // Goodbyes go now, not after the conditioner's delay.
        let held: Vec<Transmit> = std::iter::from_fn(|| {
            let c = self.conditioner.as_mut()?;
            let at = c.poll_timeout()?;
            c.poll(at)
        })
        .collect();
        for t in held {
            self.transmit(t);
        }
        self.socket.close();
    }
}

/// `payload` behind a one-byte tag, for layers that share a mesh.
fn tagged(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(payload.len() + 1);
    data.push(tag);
    data.extend_from_slice(payload);
    data
}

fn to_core(peer: matchbox_socket::PeerId) -> PeerId {
    PeerId(peer.0.as_u128())
}

fn to_matchbox(peer: PeerId) -> matchbox_socket::PeerId {
    matchbox_socket::PeerId(uuid::Uuid::from_u128(peer.0))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn ice_servers_merge_into_one_entry_when_credentials_agree() {
        let json = r#"{"iceServers": [
            {"urls": ["stun:10.0.0.1:3478"]},
            {"urls": "turn:10.0.0.1:3478?transport=udp", "username": "99:u", "credential": "pw"}
        ], "ttl": 3600}"#;
        let servers = IceServer::list_from_json(json).unwrap();
        assert_eq!(
            servers,
            [
                IceServer::stun("stun:10.0.0.1:3478"),
                IceServer::turn("turn:10.0.0.1:3478?transport=udp", "99:u", "pw")
            ]
        );
        let mut more = servers.clone();
        more.push(IceServer::turn("turn:10.0.0.2:3478", "99:u", "pw"));
        let merged = merge_ice_servers(more.clone()).unwrap();
        assert_eq!(merged.urls.len(), 3);
        assert_eq!(merged.username.as_deref(), Some("99:u"));
        assert_eq!(merged.credential.as_deref(), Some("pw"));
        more.push(IceServer::turn("turn:10.0.0.3:3478", "other", "pw"));
        assert!(matches!(merge_ice_servers(more), Err(Error::IceServers(_))));
        assert!(IceServer::list_from_json("{\"iceServers\": 3}").is_err());
        assert!(merge_ice_servers(Vec::new()).unwrap().urls.is_empty());
    }

    #[test]
    fn a_panic_in_the_webrtc_driver_ends_the_driver_with_an_error() {
        let failing: MessageLoopFuture = Box::pin(async {
            panic!("Sender closed before channel was ready");
        });
        let mut driver = MeshDriver(Some(failing));
        let ended = futures::executor::block_on(&mut driver);
        match ended {
            Err(Error::Driver(reason)) => {
                assert_eq!(reason, "Sender closed before channel was ready")
            }
            other => panic!("expected Error::Driver, got {other:?}"),
        }
        // Polled again, it stays ended instead of touching the broken future.
        assert!(matches!(
            futures::executor::block_on(&mut driver),
            Err(Error::Closed)
        ));
    }
}
