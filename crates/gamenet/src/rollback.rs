//! Rollback networking over a [`PeerMesh`]: [`RollbackNet`] runs a
//! [`RollbackSession`] on the mesh's channels (inputs unreliable, snapshots and
//! control reliable) next to the application's own messages.
//!
//! Every message on a mesh used this way starts with a tag byte: rollback
//! messages with [`ROLLBACK_TAG`], application messages (sent with
//! [`RollbackNet::send`]) with [`APP_TAG`], which is stripped on arrival.
//!
//! # Example
//!
//! ```no_run
//! use gamenet::rollback::{Request, RollbackConfig, RollbackNet, RollbackStart};
//! use gamenet::{IceServer, Instant, PeerMesh};
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
//!     let now = Instant::now();
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

use crate::{Bytes, Channel, Event, Instant, PeerId, PeerMesh, SendError};

/// First byte of every rollback message on the mesh.
pub const ROLLBACK_TAG: u8 = 0xB0;
/// First byte of every application message on a mesh that runs rollback.
pub const APP_TAG: u8 = 0xA0;
/// Rollback messages kept while the session does not exist yet.
const MAX_EARLY_MESSAGES: usize = 1024;

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

/// A [`PeerMesh`] running a [`RollbackSession`].
#[derive(Debug)]
pub struct RollbackNet<I: Input> {
    mesh: PeerMesh,
    config: RollbackConfig,
    start: RollbackStart,
    key: u64,
    session: Option<RollbackSession<I>>,
    early: Vec<(PeerId, Bytes)>,
    events: VecDeque<Event>,
    rollback_events: VecDeque<RollbackEvent>,
}

impl<I: Input> RollbackNet<I> {
    /// Runs rollback on `mesh`; the session starts as `start` says. `key`
    /// identifies this player for reconnecting (keep it to rejoin the same slot).
    pub fn new(mesh: PeerMesh, config: RollbackConfig, start: RollbackStart, key: u64) -> Self {
        Self {
            mesh,
            config,
            start,
            key,
            session: None,
            early: Vec::new(),
            events: VecDeque::new(),
            rollback_events: VecDeque::new(),
        }
    }

    /// The mesh.
    pub fn mesh(&self) -> &PeerMesh {
        &self.mesh
    }

    /// The mesh, to read stats or close it.
    pub fn mesh_mut(&mut self) -> &mut PeerMesh {
        &mut self.mesh
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
        let now = Instant::now();
        self.mesh.update();
        while let Some(event) = self.mesh.poll_event() {
            self.route(now, event);
        }
        self.try_start(now);
        if let Some(s) = &mut self.session
            && s.poll_timeout().is_some_and(|t| t <= now)
        {
            s.handle_timeout(now);
        }
        self.flush();
    }

    fn route(&mut self, now: Instant, event: Event) {
        match event {
            Event::Message {
                peer,
                channel,
                payload,
            } => match payload.first() {
                Some(&ROLLBACK_TAG) => match &mut self.session {
                    Some(s) => s.handle_message(now, peer, &payload[1..]),
                    None if self.early.len() < MAX_EARLY_MESSAGES => {
                        self.early.push((peer, payload.slice(1..)));
                    }
                    None => {}
                },
                Some(&APP_TAG) => self.events.push_back(Event::Message {
                    peer,
                    channel,
                    payload: payload.slice(1..),
                }),
                _ => {
                    tracing::warn!("gamenet: untagged message from {peer}; dropping it");
                    self.mesh.drop_peer(peer);
                }
            },
            Event::PeerJoined(peer) => {
                if let Some(s) = &mut self.session {
                    s.handle_peer_joined(now, peer);
                }
                self.events.push_back(event);
            }
            Event::PeerLeft { peer, .. } => {
                if let Some(s) = &mut self.session {
                    s.handle_peer_left(now, peer);
                }
                self.early.retain(|(p, _)| *p != peer);
                self.events.push_back(event);
            }
            other => self.events.push_back(other),
        }
    }

    fn try_start(&mut self, now: Instant) {
        if self.session.is_some() {
            return;
        }
        let Some(id) = self.mesh.id() else {
            return;
        };
        let peers: Vec<PeerId> = self.mesh.peers().collect();
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
            session.handle_peer_joined(now, peer);
        }
        for (peer, data) in std::mem::take(&mut self.early) {
            session.handle_message(now, peer, &data);
        }
        self.session = Some(session);
    }

    /// Sends what the session has to send, and acts on its verdicts (a peer
    /// that left the session or broke the protocol is dropped). Call after
    /// running frames.
    pub fn flush(&mut self) {
        let Some(s) = &mut self.session else {
            return;
        };
        while let Some(t) = s.poll_transmit() {
            let data = crate::tagged(ROLLBACK_TAG, &t.data);
            // A peer that is gone is the session's to notice; full queues show
            // up as a stalled peer.
            let _ = self.mesh.send(t.peer, t.channel, &data);
        }
        while let Some(event) = s.poll_event() {
            match &event {
                RollbackEvent::Disconnected { peer, .. } => {
                    self.mesh.drop_peer(*peer);
                }
                RollbackEvent::PeerMisbehaved { peer, error } => {
                    tracing::warn!("gamenet: dropping {peer}: {error}");
                    self.mesh.drop_peer(*peer);
                }
                _ => {}
            }
            self.rollback_events.push_back(event);
        }
    }

    /// The next mesh event (peers joining and leaving, application messages).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next rollback event.
    pub fn poll_rollback_event(&mut self) -> Option<RollbackEvent> {
        self.rollback_events.pop_front()
    }

    /// Sends an application message.
    pub fn send(
        &mut self,
        peer: PeerId,
        channel: Channel,
        payload: &[u8],
    ) -> Result<(), SendError> {
        let data = crate::tagged(APP_TAG, payload);
        self.mesh.send(peer, channel, &data)
    }

    /// When [`RollbackNet::update`] next wants calling, frames aside.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let session = self.session.as_ref().and_then(|s| s.poll_timeout());
        [self.mesh.poll_timeout(), session]
            .into_iter()
            .flatten()
            .min()
    }
}
