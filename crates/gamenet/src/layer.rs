//! What the layers on one mesh share: the tag byte each puts first on its
//! messages, the [`Transport`] they run on (which is also their clock), the
//! sorting of what arrives (with the messages that come before a layer's state
//! machine exists held for it), and, with the `memory` feature,
//! `MemoryTransport`: real core meshes on a simulated network, for tests.
//!
//! A mesh that runs rollback carries [`ROLLBACK_TAG`] messages and application
//! messages behind [`APP_TAG`]; replication puts [`REPLICATION_TAG`] on its
//! messages, on a mesh of its own or on the application channel of a
//! rollback layer.

use std::collections::VecDeque;

use crate::{Bytes, Channel, Event, Instant, LeaveReason, PeerId, PeerMesh, SendError, TypeSchema};

#[cfg(feature = "memory")]
mod memory;
#[cfg(feature = "memory")]
pub use memory::{MemoryNetwork, MemoryTransport};

/// First byte of every application message on a mesh that runs rollback.
pub const APP_TAG: u8 = 0xA0;
/// First byte of every rollback message on the mesh.
pub const ROLLBACK_TAG: u8 = 0xB0;
/// First byte of every replication message.
pub const REPLICATION_TAG: u8 = 0xC0;

/// Messages a layer holds for its state machine while that does not exist yet
/// (this peer's id is unknown, or a rollback game waits for its players).
///
/// The wait is short: on a [`PeerMesh`] the id comes from the signaling server
/// before any peer links, and a rollback game starts within a heartbeat or two
/// of its last player linking. What arrives meanwhile is the others' first
/// inputs (redundant, 60 a second per peer) and a few control messages, so
/// 1,024 covers seconds of it. A peer could fill the buffer with messages as
/// large as the mesh allows, so it also holds at most [`MAX_EARLY_BYTES`];
/// what comes beyond either is dropped, as a lossy link would.
pub(crate) const MAX_EARLY_MESSAGES: usize = 1024;

/// Most bytes of early messages held (see [`MAX_EARLY_MESSAGES`]).
pub(crate) const MAX_EARLY_BYTES: usize = 4 << 20;

/// Something that carries messages between peers: a mesh, or a layer on one.
///
/// It is also the layers' clock: a layer reads the time only from
/// [`Transport::now`], so the same code runs on a simulated network.
pub trait Transport {
    /// Takes in what arrived and runs timers: the one call that pumps the mesh.
    fn update(&mut self);
    /// The next event.
    fn poll_event(&mut self) -> Option<Event>;
    /// Sends a message.
    fn send(&mut self, peer: PeerId, channel: Channel, payload: &[u8]) -> Result<(), SendError>;
    /// Stops talking to a peer.
    fn drop_peer(&mut self, peer: PeerId) -> bool;
    /// Drops a peer that broke the protocol and never links it again (the
    /// default only drops it).
    fn ban_peer(&mut self, peer: PeerId) -> bool {
        self.drop_peer(peer)
    }
    /// This peer's id, once known.
    fn local_id(&mut self) -> Option<PeerId>;
    /// Peers linked now.
    fn linked_peers(&self) -> Vec<PeerId>;
    /// The time now, on the clock this transport runs on.
    fn now(&self) -> Instant;
    /// When [`Transport::update`] next wants calling (a timer falls due);
    /// `None` for a transport with no timers of its own.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    /// Sets the types this peer's layers registered, which a mesh's
    /// handshake compares with each peer's (see [`TypeSchema`]); before the
    /// first link. The default ignores them.
    fn set_schema(&mut self, schema: TypeSchema) {
        let _ = schema;
    }
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
    fn ban_peer(&mut self, peer: PeerId) -> bool {
        PeerMesh::ban_peer(self, peer)
    }
    fn local_id(&mut self) -> Option<PeerId> {
        self.id()
    }
    fn linked_peers(&self) -> Vec<PeerId> {
        self.peers().collect()
    }
    fn now(&self) -> Instant {
        Instant::now()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        PeerMesh::poll_timeout(self)
    }
    fn set_schema(&mut self, schema: TypeSchema) {
        PeerMesh::set_schema(self, schema);
    }
}

/// `payload` behind a one-byte tag, for layers that share a mesh.
pub(crate) fn tagged(tag: u8, payload: &[u8]) -> Vec<u8> {
    let mut data = Vec::with_capacity(payload.len() + 1);
    data.push(tag);
    data.extend_from_slice(payload);
    data
}

/// What a layer's state machine takes in: one variant per `handle_*` call of
/// the core it feeds.
#[derive(Debug)]
pub(crate) enum LayerInput {
    /// A peer linked.
    Joined(PeerId),
    /// A peer left, and why.
    Left(PeerId, LeaveReason),
    /// A message for the layer, its tag stripped.
    Message(PeerId, Bytes),
}

/// What became of one transport event.
#[derive(Debug)]
pub(crate) enum Sorted {
    /// For the layer's state machine, now.
    Layer(LayerInput),
    /// Nothing for the state machine now: held for it, or the application's alone.
    Held,
    /// A message with no tag the layer knows: its sender breaks the layering.
    Untagged(PeerId),
}

/// Sorts what a layer's transport delivers: the layer's own messages (tag
/// stripped) for its state machine, held while that does not exist, and the
/// rest for the application.
#[derive(Debug)]
pub(crate) struct Demux {
    /// The layer's tag.
    tag: u8,
    /// The application's tag, stripped on arrival, any other tag being an
    /// error; `None`: messages with other tags pass to the application as they are.
    app_tag: Option<u8>,
    /// The layer's messages that came before its state machine, oldest first.
    early: VecDeque<(PeerId, Bytes)>,
    /// The bytes of [`Demux::early`].
    early_bytes: usize,
    /// Events for the application.
    events: VecDeque<Event>,
}

impl Demux {
    /// A demux for the layer with `tag`.
    pub(crate) fn new(tag: u8, app_tag: Option<u8>) -> Self {
        Self {
            tag,
            app_tag,
            early: VecDeque::new(),
            early_bytes: 0,
            events: VecDeque::new(),
        }
    }

    /// Sorts one event. While the state machine does not exist (`!running`),
    /// the layer's messages are held, up to [`MAX_EARLY_MESSAGES`], and a peer
    /// that leaves takes its held messages along; peers and application
    /// messages go to the application at once.
    pub(crate) fn sort(&mut self, event: Event, running: bool) -> Sorted {
        let sorted = match &event {
            Event::Message { peer, payload, .. } if payload.first() == Some(&self.tag) => {
                let input = LayerInput::Message(*peer, payload.slice(1..));
                return self.hold_unless(running, input);
            }
            Event::Message {
                peer,
                channel,
                payload,
            } => match self.app_tag {
                Some(app) if payload.first() == Some(&app) => {
                    self.events.push_back(Event::Message {
                        peer: *peer,
                        channel: *channel,
                        payload: payload.slice(1..),
                    });
                    return Sorted::Held;
                }
                Some(_) => return Sorted::Untagged(*peer),
                None => Sorted::Held,
            },
            Event::PeerJoined(peer) => self.hold_unless(running, LayerInput::Joined(*peer)),
            Event::PeerLeft { peer, reason } => {
                self.early.retain(|(p, _)| p != peer);
                self.early_bytes = self.early.iter().map(|(_, d)| d.len()).sum();
                self.hold_unless(running, LayerInput::Left(*peer, reason.clone()))
            }
            _ => Sorted::Held,
        };
        self.events.push_back(event);
        sorted
    }

    /// `input` for the state machine if it runs; otherwise held if it is a
    /// message (peers it learns from the transport when it starts).
    fn hold_unless(&mut self, running: bool, input: LayerInput) -> Sorted {
        if running {
            return Sorted::Layer(input);
        }
        if let LayerInput::Message(peer, data) = input {
            if self.early.len() < MAX_EARLY_MESSAGES
                && self.early_bytes + data.len() <= MAX_EARLY_BYTES
            {
                self.early_bytes += data.len();
                self.early.push_back((peer, data));
            } else {
                tracing::debug!("gamenet: early message from {peer} over the limit; dropping it");
            }
        }
        Sorted::Held
    }

    /// The held messages, oldest first, for the state machine that just started.
    pub(crate) fn take_early(&mut self) -> impl Iterator<Item = LayerInput> + use<> {
        self.early_bytes = 0;
        std::mem::take(&mut self.early)
            .into_iter()
            .map(|(peer, data)| LayerInput::Message(peer, data))
    }

    /// The next event for the application.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
