//! Rollback networking over a [`Transport`] (a [`PeerMesh`] by default):
//! [`RollbackNet`] runs a [`RollbackSession`] on the mesh's channels (inputs
//! unreliable, snapshots and control reliable) next to the application's own
//! messages, on the transport's clock.
//!
//! Every message on a mesh used this way starts with a tag byte: rollback
//! messages with [`ROLLBACK_TAG`], application messages (sent with
//! [`RollbackNet::send`]) with [`APP_TAG`], which is stripped on arrival.
//!
//! # Example
//!
//! ```no_run
//! use gamenet::rollback::{Request, RollbackConfig, RollbackNet, RollbackStart};
//! use gamenet::{IceServer, PeerMesh};
//!
//! # fn run() -> Result<(), gamenet::Error> {
//! let (mesh, driver) = PeerMesh::builder("ws://localhost:3000/duel?next=2")
//!     .ice_server(IceServer::none())
//!     .build()?;
//! # drop(driver);
//! let config = RollbackConfig { num_players: 2, ..RollbackConfig::default() };
//! let mut net = RollbackNet::<u8>::new(mesh, config, RollbackStart::Players(2), 42);
//! let mut state = 0u64;
//! loop {
//!     net.update();
//!     while let Some(event) = net.poll_rollback_event() {
//!         println!("{event:?}");
//!     }
//!     let now = net.now();
//!     if let Some(session) = net.session_mut() {
//!         while session.frame_due(now) {
//!             for slot in session.local_slots() {
//!                 session.add_local_input(slot, 1).unwrap();
//!             }
//!             let Ok(requests) = session.advance_frame(now) else { break };
//!             for request in requests {
//!                 match request {
//!                     Request::Advance { inputs, .. } => {
//!                         state += inputs.iter().map(|(i, _)| *i as u64).sum::<u64>()
//!                     }
//!                     _ => { /* save, load, snapshots */ }
//!                 }
//!             }
//!         }
//!     }
//!     net.flush();
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;

pub use gamenet_core::rollback::*;

pub use crate::layer::{APP_TAG, ROLLBACK_TAG};
use crate::layer::{Demux, LayerInput, Sorted, Transport, tagged};
use crate::{Channel, Event, GoodbyeReason, Instant, LeaveReason, PeerId, PeerMesh, SendError};

/// How a [`RollbackNet`] starts its session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackStart {
    /// Start at frame 0 once this many players (this peer included) are
    /// connected, one local player each, slots in order of peer id; further
    /// slots are open for late joiners.
    Players(usize),
    /// Join a running session with this many local players (0 to spectate).
    Join {
        /// Local players.
        players: usize,
    },
}

/// A [`RollbackSession`] running on a [`Transport`], a [`PeerMesh`] by default.
#[derive(Debug)]
pub struct RollbackNet<I: Input, T: Transport = PeerMesh> {
    /// The transport, and the clock the session runs on.
    transport: T,
    /// The settings the session starts with.
    config: RollbackConfig,
    /// How the session starts.
    start: RollbackStart,
    /// This player's key for reconnecting.
    key: u64,
    /// The session, once started.
    session: Option<RollbackSession<I>>,
    /// Sorts what arrives; holds rollback messages until the session starts.
    demux: Demux,
    /// Rollback events for the application.
    rollback_events: VecDeque<RollbackEvent>,
}

impl<I: Input, T: Transport> RollbackNet<I, T> {
    /// Runs rollback on `transport`; the session starts as `start` says. `key`
    /// identifies this player for reconnecting (keep it to rejoin the same slot).
    pub fn new(transport: T, config: RollbackConfig, start: RollbackStart, key: u64) -> Self {
        Self {
            transport,
            config,
            start,
            key,
            session: None,
            demux: Demux::new(ROLLBACK_TAG, Some(APP_TAG)),
            rollback_events: VecDeque::new(),
        }
    }

    /// The mesh (the transport).
    pub fn mesh(&self) -> &T {
        &self.transport
    }

    /// The mesh itself, past the layer: a message sent through it arrives
    /// without the application tag, and peers drop the sender for breaking
    /// the protocol. For tests that play such a peer; games send with
    /// [`RollbackNet::send`] and read the mesh with [`RollbackNet::mesh`].
    #[doc(hidden)]
    pub fn raw_mesh_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// This peer's id, once known.
    pub fn local_id(&mut self) -> Option<PeerId> {
        self.transport.local_id()
    }

    /// Stops talking to `peer` (its slot goes on as disconnected).
    pub fn drop_peer(&mut self, peer: PeerId) -> bool {
        self.transport.drop_peer(peer)
    }

    /// The time now on the transport's clock: what to give the session's
    /// `frame_due` and `advance_frame`.
    pub fn now(&self) -> Instant {
        self.transport.now()
    }

    /// The session, once started.
    pub fn session(&self) -> Option<&RollbackSession<I>> {
        self.session.as_ref()
    }

    /// The session, once started: give inputs and advance frames through it.
    pub fn session_mut(&mut self) -> Option<&mut RollbackSession<I>> {
        self.session.as_mut()
    }

    /// Takes in what arrived, runs timers, starts the session when it can and
    /// sends what is due. Call once a frame before running frames.
    pub fn update(&mut self) {
        self.transport.update();
        let now = self.transport.now();
        while let Some(event) = self.transport.poll_event() {
            match self.demux.sort(event, self.session.is_some()) {
                Sorted::Layer(input) => {
                    if let Some(s) = &mut self.session {
                        feed(s, now, input);
                    }
                }
                Sorted::Untagged(peer) => {
                    tracing::warn!("gamenet: untagged message from {peer}; dropping it");
                    self.transport.drop_peer(peer);
                }
                Sorted::Held => {}
            }
        }
        self.try_start(now);
        if let Some(s) = &mut self.session
            && s.poll_timeout().is_some_and(|t| t <= now)
        {
            s.handle_timeout(now);
        }
        self.flush();
    }

    fn try_start(&mut self, now: Instant) {
        if self.session.is_some() {
            return;
        }
        let Some(id) = self.transport.local_id() else {
            return;
        };
        let peers = self.transport.linked_peers();
        let session = match self.start {
            RollbackStart::Players(n) => {
                if peers.len() + 1 < n {
                    return;
                }
                let mut ids = peers.clone();
                ids.push(id);
                ids.sort();
                ids.truncate(n);
                let kinds: Vec<PlayerKind> = (0..self.config.num_players)
                    .map(|slot| match ids.get(slot) {
                        Some(&p) if p == id => PlayerKind::Local,
                        Some(&p) => PlayerKind::Remote(p),
                        None => PlayerKind::Open,
                    })
                    .collect();
                RollbackSession::start(self.config.clone(), id, self.key, &kinds)
            }
            RollbackStart::Join { players } => {
                RollbackSession::join(self.config.clone(), id, self.key, players)
            }
        };
        let mut session = match session {
            Ok(s) => s,
            Err(error) => {
                tracing::error!("gamenet: cannot start the rollback session: {error}");
                self.start = RollbackStart::Join {
                    players: usize::MAX,
                };
                return;
            }
        };
        for peer in peers {
            feed(&mut session, now, LayerInput::Joined(peer));
        }
        for input in self.demux.take_early() {
            feed(&mut session, now, input);
        }
        self.session = Some(session);
    }

    /// Sends what the session has to send, and acts on its verdicts (a peer
    /// that broke the protocol is dropped; one whose departure was agreed keeps
    /// its link, to rejoin through it). Call after running frames.
    pub fn flush(&mut self) {
        let Some(s) = &mut self.session else {
            return;
        };
        while let Some(t) = s.poll_transmit() {
            let data = tagged(ROLLBACK_TAG, &t.data);
            // A lost unreliable message is the protocol's to cover. A reliable
            // one the peer's full queue refuses would leave its view of the
            // session behind for good: the link is dropped instead, and the
            // session agrees on that peer's departure (it may come back
            // through a new connection). A peer that is not linked (its link
            // lapsed) is left to the mesh: dropping it would keep it from
            // coming back when its link heals.
            match self.transport.send(t.peer, t.channel, &data) {
                Err(error @ SendError::QueueFull { .. }) if t.channel == Channel::Reliable => {
                    tracing::warn!(
                        "gamenet: dropping {}: a reliable message was refused: {error}",
                        t.peer
                    );
                    self.transport.drop_peer(t.peer);
                }
                Err(error @ SendError::MessageTooLarge { .. }) => {
                    tracing::error!(
                        "gamenet: a rollback message to {} was refused: {error}",
                        t.peer
                    );
                }
                Ok(()) | Err(_) => {}
            }
        }
        while let Some(event) = s.poll_event() {
            match &event {
                RollbackEvent::PeerMisbehaved { peer, reason } => {
                    tracing::warn!("gamenet: dropping {peer} for good: {reason}");
                    self.transport.ban_peer(*peer);
                }
                RollbackEvent::Ended { reason } => {
                    tracing::warn!("gamenet: this peer left the session: {reason}");
                    for peer in self.transport.linked_peers() {
                        self.transport.drop_peer(peer);
                    }
                }
                _ => {}
            }
            self.rollback_events.push_back(event);
        }
    }

    /// The next mesh event (peers joining and leaving, application messages).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.demux.poll_event()
    }

    /// The next rollback event.
    pub fn poll_rollback_event(&mut self) -> Option<RollbackEvent> {
        self.rollback_events.pop_front()
    }

    /// Sends an application message to every linked peer; the first
    /// error, if any (the others are still sent to).
    pub fn broadcast(&mut self, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        let data = tagged(APP_TAG, payload);
        let mut result = Ok(());
        for peer in self.transport.linked_peers() {
            let sent = self.transport.send(peer, channel, &data);
            result = result.and(sent);
        }
        result
    }

    /// Sends an application message (tagged, so that the peers' layers tell
    /// it from the game's own messages).
    pub fn send(
        &mut self,
        peer: PeerId,
        channel: Channel,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let data = tagged(APP_TAG, payload);
        self.transport.send(peer, channel, &data)
    }

    /// When [`RollbackNet::update`] next wants calling, frames aside.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.session.as_ref().and_then(|s| s.poll_timeout());
        [self.transport.poll_timeout(), session]
            .into_iter()
            .flatten()
            .min()
    }
}

/// Hands one input to the session: the one place the layer calls its
/// `handle_*` for peers and messages.
fn feed<I: Input>(session: &mut RollbackSession<I>, now: Instant, input: LayerInput) {
    match input {
        LayerInput::Joined(peer) => session.handle_peer_joined(now, peer),
        LayerInput::Left(peer, reason) => session.handle_peer_left(now, peer, leave_of(&reason)),
        LayerInput::Message(peer, data) => session.handle_message(now, peer, &data),
    }
}

/// How the session hears of a peer the mesh lost: a goodbye on leaving the
/// mesh is a quit; silence, a failed connection or being dropped by the peer
/// may hide a partition (the peer may play on elsewhere).
fn leave_of(reason: &LeaveReason) -> Leave {
    match reason {
        LeaveReason::Left(GoodbyeReason::Leaving) => Leave::Quit,
        _ => Leave::Lost,
    }
}

/// The application channel of a rollback layer, as a transport for another
/// layer (replication) on the same mesh.
impl<I: Input> RollbackNet<I, PeerMesh> {
    /// Says goodbye to every peer and closes the mesh.
    pub fn close(&mut self) {
        self.transport.close();
    }
}

impl<I: Input, T: Transport> Transport for RollbackNet<I, T> {
    fn update(&mut self) {
        RollbackNet::update(self);
    }
    fn poll_event(&mut self) -> Option<Event> {
        RollbackNet::poll_event(self)
    }
    fn send(&mut self, peer: PeerId, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        RollbackNet::send(self, peer, channel, payload)
    }
    fn drop_peer(&mut self, peer: PeerId) -> bool {
        self.transport.drop_peer(peer)
    }
    fn ban_peer(&mut self, peer: PeerId) -> bool {
        self.transport.ban_peer(peer)
    }
    fn local_id(&mut self) -> Option<PeerId> {
        self.transport.local_id()
    }
    fn linked_peers(&self) -> Vec<PeerId> {
        self.transport.linked_peers()
    }
    fn now(&self) -> Instant {
        self.transport.now()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        RollbackNet::poll_timeout(self)
    }
}
