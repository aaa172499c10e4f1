//! State replication over a mesh: [`ReplicationNet`] runs a [`Replicator`] on
//! a [`Transport`] — a [`PeerMesh`], or the application channel of a
//! [`RollbackNet`] so one game can mix rollback
//! and replicated state.
//!
//! Replication messages start with [`REPLICATION_TAG`]; other messages pass
//! through to [`ReplicationNet::poll_event`] untouched.
//!
//! # Example
//!
//! ```no_run
//! use gamenet::replication::{ReplicationConfig, ReplicationNet, Schema};
//! use gamenet::{IceServer, Instant, PeerMesh};
//!
//! # fn run() -> Result<(), gamenet::Error> {
//! let (mesh, driver) = PeerMesh::builder("ws://localhost:3000/world")
//!     .ice_server(IceServer::none())
//!     .build()?;
//! # drop(driver);
//! // One entity type: x and y in 16 bits each.
//! let schema = Schema { types: vec![vec![16, 16]] };
//! let mut net = ReplicationNet::new(mesh, ReplicationConfig::default(), schema)
//!     .expect("settings that fit the schema");
//! let mut ball = None;
//! loop {
//!     net.update();
//!     if ball.is_none() && net.ready() {
//!         ball = net.replicator_mut().and_then(|r| r.spawn(0, &[100, 200]).ok());
//!     }
//!     if let (Some(id), Some(r)) = (ball, net.replicator_mut()) {
//!         r.set(id, &[101, 200]).expect("an entity of ours");
//!     }
//!     net.tick(Instant::now()); // at the game's tick rate
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::VecDeque;

pub use gamenet_core::quantize;
pub use gamenet_core::replication::*;

use crate::rollback::RollbackNet;
use crate::{Channel, Event, Instant, PeerId, PeerMesh, SendError};

/// First byte of every replication message.
pub const REPLICATION_TAG: u8 = 0xC0;

/// Something that carries messages between peers: a mesh, or a layer on one.
pub trait Transport {
    /// Takes in what arrived and runs timers.
    fn update(&mut self);
    /// The next event.
    fn poll_event(&mut self) -> Option<Event>;
    /// Sends a message.
    fn send(&mut self, peer: PeerId, channel: Channel, payload: &[u8]) -> Result<(), SendError>;
    /// Stops talking to a peer.
    fn drop_peer(&mut self, peer: PeerId) -> bool;
    /// This peer's id, once known.
    fn local_id(&mut self) -> Option<PeerId>;
    /// Peers linked now.
    fn linked_peers(&self) -> Vec<PeerId>;
}

impl Transport for PeerMesh {
    fn update(&mut self) {
        PeerMesh::update(self);
    }
    fn poll_event(&mut self) -> Option<Event> {
        PeerMesh::poll_event(self)
    }
    fn send(&mut self, peer: PeerId, channel: Channel, payload: &[u8]) -> Result<(), SendError> {
        PeerMesh::send(self, peer, channel, payload)
    }
    fn drop_peer(&mut self, peer: PeerId) -> bool {
        PeerMesh::drop_peer(self, peer)
    }
    fn local_id(&mut self) -> Option<PeerId> {
        self.id()
    }
    fn linked_peers(&self) -> Vec<PeerId> {
        self.peers().collect()
    }
}

impl<I: crate::rollback::Input> Transport for RollbackNet<I> {
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
        self.mesh_mut().drop_peer(peer)
    }
    fn local_id(&mut self) -> Option<PeerId> {
        self.mesh_mut().id()
    }
    fn linked_peers(&self) -> Vec<PeerId> {
        self.mesh().peers().collect()
    }
}

/// A [`Replicator`] running on a [`Transport`].
#[derive(Debug)]
pub struct ReplicationNet<T: Transport> {
    transport: T,
    config: ReplicationConfig,
    schema: Schema,
    replicator: Option<Replicator>,
    early: Vec<Event>,
    events: VecDeque<Event>,
    replication_events: VecDeque<ReplicationEvent>,
}

impl<T: Transport> ReplicationNet<T> {
    /// Replication on `transport`; the replicator exists once this peer's
    /// id is known. Refused if the settings do not fit the schema (see
    /// [`ReplicationConfig::validate`]).
    pub fn new(
        transport: T,
        config: ReplicationConfig,
        schema: Schema,
    ) -> Result<Self, ConfigError> {
        config.validate(&schema)?;
        Ok(Self {
            transport,
            config,
            schema,
            replicator: None,
            early: Vec::new(),
            events: VecDeque::new(),
            replication_events: VecDeque::new(),
        })
    }

    /// Whether the replicator exists (this peer's id is known).
    pub fn ready(&self) -> bool {
        self.replicator.is_some()
    }

    /// The replicator, once ready.
    pub fn replicator(&self) -> Option<&Replicator> {
        self.replicator.as_ref()
    }

    /// The replicator, once ready: spawn, set and hand over entities with it.
    pub fn replicator_mut(&mut self) -> Option<&mut Replicator> {
        self.replicator.as_mut()
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Takes in what arrived. Call once a frame.
    pub fn update(&mut self) {
        self.transport.update();
        let now = Instant::now();
        if self.replicator.is_none()
            && let Some(id) = self.transport.local_id()
            // The settings were checked in `new`.
            && let Ok(mut r) = Replicator::new(self.config.clone(), self.schema.clone(), id)
        {
            for peer in self.transport.linked_peers() {
                r.handle_peer_joined(now, peer);
            }
            self.replicator = Some(r);
            for e in std::mem::take(&mut self.early) {
                self.route(now, e);
            }
        }
        while let Some(event) = self.transport.poll_event() {
            if self.replicator.is_none() {
                if self.early.len() < 4096 {
                    self.early.push(event);
                }
                continue;
            }
            self.route(now, event);
        }
        self.flush();
    }

    fn route(&mut self, now: Instant, event: Event) {
        let Some(r) = &mut self.replicator else {
            return;
        };
        match event {
            Event::Message { peer, payload, .. } if payload.first() == Some(&REPLICATION_TAG) => {
                r.handle_message(now, peer, &payload[1..]);
            }
            Event::PeerJoined(peer) => {
                r.handle_peer_joined(now, peer);
                self.events.push_back(event);
            }
            Event::PeerLeft { peer, .. } => {
                r.handle_peer_left(now, peer);
                self.events.push_back(event);
            }
            other => self.events.push_back(other),
        }
    }

    /// Sends this tick's updates. Call at the simulation's tick rate.
    pub fn tick(&mut self, now: Instant) {
        if let Some(r) = &mut self.replicator {
            r.tick(now);
        }
        self.flush();
    }

    /// Sends what is queued and acts on verdicts (a peer that sent garbage is
    /// dropped).
    pub fn flush(&mut self) {
        let Some(r) = &mut self.replicator else {
            return;
        };
        while let Some(t) = r.poll_transmit() {
            let data = crate::tagged(REPLICATION_TAG, &t.data);
            let _ = self.transport.send(t.peer, t.channel, &data);
        }
        while let Some(e) = r.poll_event() {
            if let ReplicationEvent::PeerMisbehaved { peer, reason } = &e {
                tracing::warn!("gamenet: dropping {peer}: {reason}");
                self.transport.drop_peer(*peer);
            }
            self.replication_events.push_back(e);
        }
    }

    /// The next transport event that is not replication.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next replication event.
    pub fn poll_replication_event(&mut self) -> Option<ReplicationEvent> {
        self.replication_events.pop_front()
    }
}
