//! [`PeerMesh`]: gamenet's protocol ([`gamenet_core::Mesh`]) over matchbox_socket's
//! WebRTC data channels, and its builder.

use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use matchbox_socket::{ChannelConfig, WebRtcSocket};

use gamenet_core::{LinkConditioner, Mesh};

use crate::ice::merge_ice_servers;
use crate::pump::{Shared, to_core, to_matchbox};
use crate::signals::{CheckedSignallerBuilder, SharedGate};
use crate::{
    Channel, ConditionerConfig, Error, Event, IceServer, Instant, MeshConfig, MeshDriver, PeerId,
    PeerStats, SendError, TypeSchema,
};

/// Builds a [`PeerMesh`].
#[derive(Debug, Clone)]
pub struct PeerMeshBuilder {
    room_url: String,
    ice_servers: Option<Vec<IceServer>>,
    config: MeshConfig,
    signaling_attempts: Option<u16>,
    signaling_resume: Option<Duration>,
    reconnect_key: Option<String>,
    connect_timeout: Duration,
    conditioner: Option<ConditionerConfig>,
}

/// How long a mesh keeps reconnecting to the signaling server after losing it
/// (see [`PeerMeshBuilder::signaling_resume`]).
pub const DEFAULT_SIGNALING_RESUME: Duration = Duration::from_secs(60);

/// How long a WebRTC connection attempt may take (see
/// [`PeerMeshBuilder::connect_timeout`]).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// The room URL with `key` added as its `key` query parameter, unless it has one.
fn with_key(room_url: &str, key: &str) -> String {
    let (base, fragment) = match room_url.split_once('#') {
        Some((base, fragment)) => (base, Some(fragment)),
        None => (room_url, None),
    };
    let query = base.split_once('?').map(|(_, query)| query);
    if query.is_some_and(|q| q.split('&').any(|pair| pair.starts_with("key="))) {
        return room_url.to_owned();
    }
    let separator = if query.is_some() { '&' } else { '?' };
    let mut url = format!("{base}{separator}key={key}");
    if let Some(fragment) = fragment {
        url.push('#');
        url.push_str(fragment);
    }
    url
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

    /// Sets how long a silent peer is only interrupted
    /// ([`Event::PeerInterrupted`], default 1 s); shorter than the
    /// [disconnect timeout](Self::disconnect_timeout).
    pub fn interrupt_timeout(mut self, timeout: Duration) -> Self {
        self.config.interrupt_timeout = timeout;
        self
    }

    /// Sets how long a silent peer takes to be reported left (default 10 s,
    /// see [`MeshConfig::disconnect_timeout`]). While its WebRTC connection
    /// stands, such a peer joins again when it is heard from.
    pub fn disconnect_timeout(mut self, timeout: Duration) -> Self {
        self.config.disconnect_timeout = timeout;
        self
    }

    /// How many times to try reaching the signaling server (`None`: forever). Default 3.
    pub fn signaling_attempts(mut self, attempts: Option<u16>) -> Self {
        self.signaling_attempts = attempts;
        self
    }

    /// How long to keep reconnecting to the signaling server, with backoff,
    /// after the connection drops (default [`DEFAULT_SIGNALING_RESUME`];
    /// `None`: never). The server gives the mesh its id back from its
    /// [reconnect key](Self::reconnect_key), so the room sees no change;
    /// links to peers are not affected either way.
    pub fn signaling_resume(mut self, limit: Option<Duration>) -> Self {
        self.signaling_resume = limit;
        self
    }

    /// The secret this mesh's peer id derives from on a `gamenet-signaling`
    /// server (sent as the room URL's `key` query parameter): the same key
    /// gets the same id back, after a lost connection or from a restarted
    /// process. Default: a new random key. Keep it to yourself (anyone with it
    /// can take the id over) and use it for one room; at least 16 characters
    /// of `[A-Za-z0-9_-]`. See [`PeerMesh::reconnect_key`].
    pub fn reconnect_key(mut self, key: impl Into<String>) -> Self {
        self.reconnect_key = Some(key.into());
        self
    }

    /// How long a WebRTC connection attempt with one peer may take (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]). A failed attempt costs only that link:
    /// the side that offers tries again with backoff (1 s, doubling up to
    /// 16 s) while the other is in the room, and likewise after a connection
    /// that was up ends.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
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
        let key = self
            .reconnect_key
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let valid = (16..=128).contains(&key.len())
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(Error::ReconnectKey);
        }
        let gate = SharedGate::default();
        // Channel 0 is reliable, channel 1 unreliable: see `Channel::index`.
        let (mut socket, driver) = WebRtcSocket::builder(with_key(&self.room_url, &key))
            .signaller_builder(Arc::new(CheckedSignallerBuilder::new(gate.clone())))
            .ice_server(ice)
            .reconnect_attempts(self.signaling_attempts)
            .signaling_resume(self.signaling_resume)
            .handshake_timeout(self.connect_timeout)
            .add_channel(ChannelConfig::reliable())
            .add_channel(ChannelConfig::unreliable())
            .build();
        let reliable = socket
            .take_channel(Channel::Reliable.index())
            .map_err(|_| Error::Closed)?;
        let unreliable = socket
            .take_channel(Channel::Unreliable.index())
            .map_err(|_| Error::Closed)?;
        let shared = Shared::new(
            socket,
            [reliable, unreliable],
            core,
            gate,
            self.conditioner.map(LinkConditioner::new),
        );
        #[cfg(target_arch = "wasm32")]
        crate::page::close_on_page_hide(&shared);
        let mesh = PeerMesh {
            shared: shared.clone(),
            key,
        };
        Ok((mesh, MeshDriver::new(driver, shared)))
    }
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

/// A mesh of WebRTC links to every other peer of a room.
///
/// Its [`MeshDriver`] takes packets in as they arrive, answers heartbeats and
/// runs the protocol's timers, whether or not the game calls in (a hidden tab
/// keeps its links); the game drains the events it left and sends.
#[derive(Debug)]
pub struct PeerMesh {
    shared: Shared,
    /// The reconnect key its peer id derives from.
    key: String,
}

impl PeerMesh {
    /// Starts building a mesh that joins `room_url`, e.g. `ws://host:3000/room`
    /// or `ws://host:3000/lobby?next=2` for quick-match.
    pub fn builder(room_url: impl Into<String>) -> PeerMeshBuilder {
        PeerMeshBuilder {
            room_url: room_url.into(),
            signaling_resume: Some(DEFAULT_SIGNALING_RESUME),
            reconnect_key: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            ice_servers: None,
            config: MeshConfig::default(),
            signaling_attempts: Some(3),
            conditioner: None,
        }
    }

    /// The reconnect key this mesh's id derives from on a `gamenet-signaling`
    /// server: a process that restarts with it (through
    /// [`PeerMeshBuilder::reconnect_key`]) gets the same id back.
    pub fn reconnect_key(&self) -> &str {
        &self.key
    }

    /// Replaces the ICE servers (as [`PeerMeshBuilder::ice_servers`]) for
    /// connections started from now on: reconnections, retries, newcomers.
    /// Links up are not affected. TURN credentials expire (an hour by default
    /// from `gamenet-signaling`'s `/api/ice`): fetch fresh ones and hand them
    /// in before they do.
    pub fn set_ice_servers(
        &mut self,
        servers: impl IntoIterator<Item = IceServer>,
    ) -> Result<(), Error> {
        let ice = merge_ice_servers(servers.into_iter().collect())?;
        self.shared.lock().socket.set_ice_server(ice);
        Ok(())
    }

    /// Sets the types this peer's layers registered (rollback components and
    /// inputs, replicated states, messages), which every hello carries: a
    /// peer whose list differs fails the handshake with
    /// [`HandshakeError::SchemaMismatch`](crate::HandshakeError::SchemaMismatch),
    /// naming the first type where they part. Call it before the first
    /// link (the Bevy plugins do when the app finishes building).
    pub fn set_schema(&mut self, schema: TypeSchema) {
        self.shared.lock().core.set_schema(schema);
    }

    /// Puts a link conditioner between the mesh and the network, or changes
    /// the one on (`None` removes it), while the mesh runs: to try a game on
    /// a bad network without one (see [`ConditionerConfig::presets`]).
    /// Packets already held keep their delays.
    pub fn set_link_conditioner(&mut self, config: Option<ConditionerConfig>) {
        self.shared.lock().set_conditioner(config);
    }

    /// The link conditioner's behaviour, if one is on.
    pub fn link_conditioner(&self) -> Option<ConditionerConfig> {
        self.shared.lock().conditioner()
    }

    /// This peer's id, once the signaling server has assigned it.
    pub fn id(&self) -> Option<PeerId> {
        self.shared.lock().socket.id().map(to_core)
    }

    /// Runs the protocol's due timers and sends what is due. The driver takes
    /// packets in as they arrive, so this is cheap; call it once a frame, then
    /// drain [`PeerMesh::poll_event`].
    pub fn update(&mut self) {
        let mut inner = self.shared.lock();
        inner.run_timers(Instant::now());
        inner.nudge();
    }

    /// The next event, if one is ready.
    pub fn poll_event(&mut self) -> Option<Event> {
        let mut inner = self.shared.lock();
        let event = inner.core.poll_event();
        // Taking a message may have let an acknowledgement out.
        if matches!(event, Some(Event::Message { .. })) {
            inner.flush();
        }
        event
    }

    /// Waits for the next event. Returns [`Error::Closed`] once the driver has stopped
    /// and every event was taken.
    pub async fn next_event(&mut self) -> Result<Event, Error> {
        futures::future::poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if let Some(event) = inner.core.poll_event() {
                if matches!(event, Event::Message { .. }) {
                    inner.flush();
                }
                return Poll::Ready(Ok(event));
            }
            if inner.closed {
                return Poll::Ready(Err(Error::Closed));
            }
            inner.wake_on_event(cx.waker());
            Poll::Pending
        })
        .await
    }

    /// When the mesh next wants [`PeerMesh::update`] called (a timer or a
    /// conditioned packet falls due). The driver runs them by itself too.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.shared.lock().poll_timeout()
    }

    /// Sends a message to one joined peer.
    pub fn send(
        &mut self,
        peer: PeerId,
        channel: Channel,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let mut inner = self.shared.lock();
        let result = inner.core.send(peer, channel, payload);
        inner.flush();
        inner.nudge();
        result
    }

    /// Sends a message to every joined peer; the first error is returned after all
    /// peers were tried.
    pub fn broadcast(&mut self, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        let mut inner = self.shared.lock();
        let peers: Vec<PeerId> = inner.core.joined_peers().collect();
        let mut result = Ok(());
        for peer in peers {
            let sent = inner.core.send(peer, channel, payload);
            if result.is_ok() {
                result = sent;
            }
        }
        inner.flush();
        inner.nudge();
        result
    }

    /// Stops talking to `peer` and reports it as left. Returns whether it was linked.
    pub fn drop_peer(&mut self, peer: PeerId) -> bool {
        let mut inner = self.shared.lock();
        let dropped = inner.core.drop_peer(peer);
        inner.flush();
        inner.nudge();
        dropped
    }

    /// Drops a peer that broke the protocol and never links it again, not
    /// even when it reconnects through signaling.
    pub fn ban_peer(&mut self, peer: PeerId) -> bool {
        let mut inner = self.shared.lock();
        inner.gate.lock().ban(to_matchbox(peer));
        let dropped = inner.core.ban_peer(peer);
        inner.flush();
        inner.nudge();
        dropped
    }

    /// The peers that completed the handshake.
    pub fn peers(&self) -> impl Iterator<Item = PeerId> + '_ {
        let peers: Vec<PeerId> = self.shared.lock().core.joined_peers().collect();
        peers.into_iter()
    }

    /// Link statistics of `peer`.
    pub fn stats(&self, peer: PeerId) -> Option<PeerStats> {
        self.shared.lock().core.stats(peer)
    }

    /// How the WebRTC link to `peer` runs: directly, through NATs, or relayed
    /// by a TURN server; `None` until ICE has selected a candidate pair.
    pub fn route(&self, peer: PeerId) -> Option<Route> {
        self.shared
            .lock()
            .socket
            .candidate_pair(to_matchbox(peer))
            .map(Route::from_pair)
    }

    /// The protocol settings in force.
    pub fn config(&self) -> MeshConfig {
        self.shared.lock().core.config().clone()
    }

    /// Whether the driver has stopped.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Says goodbye to every peer and leaves the room; the driver then ends.
    /// In a browser this happens by itself when the page goes away (its
    /// `pagehide` event), so that the others know the player left for good
    /// rather than lost its network.
    pub fn close(&mut self) {
        self.shared.lock().close();
    }
}

/// Dropping the mesh leaves the room as [`PeerMesh::close`] does: peers hear a
/// goodbye, and the driver (which shares the mesh) ends.
impl Drop for PeerMesh {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::with_key;

    #[test]
    fn the_key_goes_into_the_query() {
        assert_eq!(
            with_key("ws://h:3000/room", "k1"),
            "ws://h:3000/room?key=k1"
        );
        assert_eq!(
            with_key("ws://h/room?next=2", "k1"),
            "ws://h/room?next=2&key=k1"
        );
        assert_eq!(with_key("ws://h/room#x", "k1"), "ws://h/room?key=k1#x");
        assert_eq!(
            with_key("ws://h/room?key=mine", "k1"),
            "ws://h/room?key=mine"
        );
    }

    #[test]
    fn a_key_the_server_would_refuse_is_an_error_at_once() {
        for key in ["short", "with space in the key!", &"k".repeat(129)] {
            let built = super::PeerMesh::builder("ws://h/room")
                .ice_server(crate::IceServer::none())
                .reconnect_key(key)
                .build();
            assert!(matches!(built, Err(crate::Error::ReconnectKey)), "{key}");
        }
    }
}
