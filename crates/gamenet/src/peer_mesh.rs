//! [`PeerMesh`]: gamenet's protocol ([`gamenet_core::Mesh`]) over matchbox_socket's
//! WebRTC data channels, and its builder.

use std::task::{Context, Poll};
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use futures_timer::Delay;
use matchbox_socket::{ChannelConfig, PeerState, WebRtcChannel, WebRtcSocket};

use gamenet_core::{LinkConditioner, Mesh, Transmit};

use crate::ice::merge_ice_servers;
use crate::{
    Bytes, Channel, ConditionerConfig, Error, Event, IceServer, Instant, MeshConfig, MeshDriver,
    PeerId, PeerStats, SendError,
};

/// Longest the async loop sleeps without looking at the clock.
const MAX_IDLE: Duration = Duration::from_millis(250);

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
        Ok((mesh, MeshDriver::new(driver)))
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

    /// The next event, if one is ready: the core mesh's events as they are,
    /// [`Event::PeerInterrupted`] and [`Event::PeerResumed`] included. Does
    /// not process new input by itself; see [`PeerMesh::update`].
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
        // Every peer the transport had, joined or not: one whose link timed
        // out must not wait for packets that can no longer come.
        let mut peers: Vec<PeerId> = self.core.connected_peers().collect();
        peers.sort_unstable();
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

fn to_core(peer: matchbox_socket::PeerId) -> PeerId {
    PeerId(peer.0.as_u128())
}

fn to_matchbox(peer: PeerId) -> matchbox_socket::PeerId {
    matchbox_socket::PeerId(uuid::Uuid::from_u128(peer.0))
}
