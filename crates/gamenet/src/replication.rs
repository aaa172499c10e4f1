//! State replication over a mesh: [`ReplicationNet`] runs a [`Replicator`] on
//! a [`Transport`] — a [`PeerMesh`], or the application channel of a
//! [`RollbackNet`] so one game can mix rollback
//! and replicated state.
//!
//! Replication messages start with [`REPLICATION_TAG`]; other messages pass
//! through to [`ReplicationNet::poll_event`] untouched. Time comes from the
//! transport ([`Transport::now`]).
//!
//! # Example
//!
//! ```no_run
//! use gamenet::replication::{ReplicationConfig, ReplicationNet, Schema};
//! use gamenet::{IceServer, PeerMesh};
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
//!     net.tick(); // at the game's tick rate
//! #   break;
//! }
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, VecDeque};

pub use gamenet_core::quantize;
pub use gamenet_core::replication::*;

use crate::layer::{Demux, LayerInput, Sorted, tagged};
pub use crate::layer::{REPLICATION_TAG, Transport};
use crate::{Bytes, Channel, Event, Instant, PeerId, SendError};
#[cfg(doc)]
use crate::{PeerMesh, rollback::RollbackNet};

/// A [`Replicator`] running on a [`Transport`].
#[derive(Debug)]
pub struct ReplicationNet<T: Transport> {
    /// The transport, and the clock replication runs on.
    transport: T,
    /// The settings the replicator is made with.
    config: ReplicationConfig,
    /// The entity types the replicator is made with.
    schema: Schema,
    /// The replicator, once this peer's id is known.
    replicator: Option<Replicator>,
    /// Sorts what arrives; holds replication messages until the replicator exists.
    demux: Demux,
    /// Replication events for the application.
    replication_events: VecDeque<ReplicationEvent>,
    /// Per peer, reliable messages the transport could not queue yet (and
    /// those after them, to keep their order), oldest first, with their bytes.
    backlog: BTreeMap<PeerId, (VecDeque<Bytes>, usize)>,
}

/// Most bytes of reliable messages held back per peer while its send queue is
/// full; beyond, they are dropped and the replicator told (see
/// [`ReplicationNet::flush`]).
pub const MAX_BACKLOG: usize = 1 << 20;

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
            demux: Demux::new(REPLICATION_TAG, None),
            replication_events: VecDeque::new(),
            backlog: BTreeMap::new(),
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

    /// The time now on the transport's clock.
    pub fn now(&self) -> Instant {
        self.transport.now()
    }

    /// Takes in what arrived. Call once a frame.
    pub fn update(&mut self) {
        self.transport.update();
        let now = self.transport.now();
        self.try_start(now);
        while let Some(event) = self.transport.poll_event() {
            if let Sorted::Layer(input) = self.demux.sort(event, self.replicator.is_some())
                && let Some(r) = &mut self.replicator
            {
                if let LayerInput::Left(peer, _) | LayerInput::Joined(peer) = &input {
                    // What was held back belongs to the link that ended.
                    self.backlog.remove(peer);
                }
                feed(r, now, input);
            }
        }
        self.flush();
    }

    /// Makes the replicator once this peer's id is known, and gives it the
    /// linked peers and the messages that came before it.
    fn try_start(&mut self, now: Instant) {
        if self.replicator.is_some() {
            return;
        }
        let Some(id) = self.transport.local_id() else {
            return;
        };
        // The settings were checked in `new`.
        let Ok(mut r) = Replicator::new(self.config.clone(), self.schema.clone(), id) else {
            return;
        };
        for peer in self.transport.linked_peers() {
            feed(&mut r, now, LayerInput::Joined(peer));
        }
        for input in self.demux.take_early() {
            feed(&mut r, now, input);
        }
        self.replicator = Some(r);
    }

    /// Sends this tick's updates. Call at the simulation's tick rate.
    pub fn tick(&mut self) {
        let now = self.transport.now();
        if let Some(r) = &mut self.replicator {
            r.tick(now);
        }
        self.flush();
    }

    /// Sends what is queued and acts on verdicts (a peer that sent garbage is
    /// dropped). A reliable message the transport cannot queue (the peer's
    /// send queue is full) is held back, with the reliable messages after it
    /// to keep their order, and sent at the next flush that finds room. Past
    /// [`MAX_BACKLOG`] bytes held for one peer they are dropped and the
    /// replicator is told ([`Replicator::handle_send_failed`]): it reports
    /// [`ReplicationEvent::SendFailed`] and spawns its entities at that peer
    /// again. Unreliable updates that do not go out are covered by the next
    /// delta.
    pub fn flush(&mut self) {
        let Some(r) = &mut self.replicator else {
            return;
        };
        let now = self.transport.now();
        // What was held back goes first.
        for (peer, (queue, bytes)) in &mut self.backlog {
            while let Some(data) = queue.front() {
                match self.transport.send(*peer, Channel::Reliable, data) {
                    Ok(()) => {}
                    Err(SendError::UnknownPeer(_)) => {}
                    Err(_) => break,
                }
                *bytes -= data.len();
                queue.pop_front();
            }
        }
        self.backlog.retain(|_, (queue, _)| !queue.is_empty());
        while let Some(t) = r.poll_transmit() {
            let data = Bytes::from(tagged(REPLICATION_TAG, &t.data));
            let reliable = t.channel == Channel::Reliable;
            let held = reliable && self.backlog.contains_key(&t.peer);
            let refused = !held
                && match self.transport.send(t.peer, t.channel, &data) {
                    Ok(()) | Err(SendError::UnknownPeer(_)) => false,
                    Err(_) => reliable,
                };
            if !(held || refused) {
                continue;
            }
            let (queue, bytes) = self.backlog.entry(t.peer).or_default();
            *bytes += data.len();
            queue.push_back(data);
            if *bytes > MAX_BACKLOG {
                tracing::warn!(
                    "gamenet: {} does not take replication messages: {} bytes lost",
                    t.peer,
                    *bytes
                );
                self.backlog.remove(&t.peer);
                r.handle_send_failed(now, t.peer);
            }
        }
        while let Some(e) = r.poll_event() {
            if let ReplicationEvent::PeerMisbehaved { peer, reason } = &e {
                tracing::warn!("gamenet: dropping {peer}: {reason}");
                self.transport.ban_peer(*peer);
            }
            self.replication_events.push_back(e);
        }
    }

    /// Bytes of reliable messages to `peer` held back because its send queue
    /// was full (see [`ReplicationNet::flush`]).
    pub fn held_back(&self, peer: PeerId) -> usize {
        self.backlog.get(&peer).map_or(0, |(_, bytes)| *bytes)
    }

    /// The next transport event that is not replication.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.demux.poll_event()
    }

    /// The next replication event.
    pub fn poll_replication_event(&mut self) -> Option<ReplicationEvent> {
        self.replication_events.pop_front()
    }
}

/// Hands one input to the replicator: the one place the layer calls its
/// `handle_*` for peers and messages.
fn feed(r: &mut Replicator, now: Instant, input: LayerInput) {
    match input {
        LayerInput::Joined(peer) => r.handle_peer_joined(now, peer),
        LayerInput::Left(peer, _) => r.handle_peer_left(now, peer),
        LayerInput::Message(peer, data) => r.handle_message(now, peer, &data),
    }
}
