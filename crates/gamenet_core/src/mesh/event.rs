//! What the mesh reports: events for the application, and the errors of
//! handshakes, peers and sends.

use std::fmt;

use bytes::Bytes;
use thiserror::Error;

use super::wire::{DecodeError, GoodbyeReason};
use crate::peer::{Channel, PeerId};

/// Something a peer sent that breaks the protocol; the peer is dropped for it.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A packet could not be decoded.
    #[error("undecodable packet: {0}")]
    Decode(#[from] DecodeError),
    /// A message larger than
    /// [`MeshConfig::max_message_size`](crate::MeshConfig::max_message_size) or
    /// [`MeshConfig::max_unreliable_size`](crate::MeshConfig::max_unreliable_size).
    #[error("message of {size} bytes exceeds the cap of {max}")]
    MessageTooLarge {
        /// Size the peer sent or announced.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// A fragment out of sequence, or more bytes than the message announced.
    #[error("fragment out of sequence")]
    BadFragment,
    /// A packet that has no place in the current phase, such as a second hello.
    #[error("unexpected packet: {0}")]
    Unexpected(&'static str),
    /// The peer sent more reliable bytes than it was acknowledged, beyond
    /// twice the [`MeshConfig::send_window`](crate::MeshConfig::send_window).
    #[error("{unacked} reliable bytes sent unacknowledged, over the limit of {limit}")]
    WindowExceeded {
        /// Bytes received beyond the last acknowledgement.
        unacked: u64,
        /// The limit.
        limit: u64,
    },
    /// The peer acknowledged reliable bytes that were never sent.
    #[error("acknowledged {acked} reliable bytes, only {sent} sent")]
    AckBeyondSent {
        /// What the peer acknowledged.
        acked: u64,
        /// What was sent.
        sent: u64,
    },
}

/// Why a handshake with a peer failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u16,
        /// The peer's version.
        theirs: u16,
    },
    /// The peer runs another application.
    #[error("application mismatch: ours {ours:?}, theirs {theirs:?}")]
    AppMismatch {
        /// Our application id.
        ours: String,
        /// The peer's application id.
        theirs: String,
    },
    /// The peer registered other types than ours for its layers, or in
    /// another order ([`TypeSchema`](crate::TypeSchema)): the two would read
    /// each other's messages as the wrong types.
    #[error("the peer registers other types: at #{index}, {detail}")]
    SchemaMismatch {
        /// The first entry where the two lists part.
        index: usize,
        /// Our entry there, named, and what the peer has.
        detail: String,
    },
    /// The peer refused us as incompatible before we saw its hello.
    #[error("the peer refused the handshake")]
    Refused,
    /// No hello arrived within
    /// [`MeshConfig::handshake_timeout`](crate::MeshConfig::handshake_timeout).
    #[error("no handshake within the timeout")]
    TimedOut,
    /// The peer sent something else than a hello first.
    #[error("protocol error during handshake: {0}")]
    Protocol(ProtocolError),
}

/// Why a joined peer left.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveReason {
    /// Nothing arrived from it within
    /// [`MeshConfig::disconnect_timeout`](crate::MeshConfig::disconnect_timeout).
    /// No goodbye is sent and the peer is not shut out: while the transport
    /// keeps it connected, the first packet it sends later starts a fresh
    /// link (a [`ReliablePacket::Reset`](crate::wire::ReliablePacket::Reset)
    /// and a new handshake), and [`Event::PeerJoined`] reports it again.
    TimedOut,
    /// Its link to us timed out on its side, and it started over with a
    /// [`ReliablePacket::Reset`](crate::wire::ReliablePacket::Reset): the
    /// link ended here too, without a goodbye, and a fresh handshake is under
    /// way; [`Event::PeerJoined`] reports the peer again once it completes.
    /// What the peer sent on the old link and had not arrived is lost.
    Lapsed,
    /// The transport reported it gone (data channel closed or signaling left).
    Disconnected,
    /// It said goodbye.
    Left(GoodbyeReason),
    /// This side dropped it with [`Mesh::drop_peer`](crate::Mesh::drop_peer).
    Dropped,
    /// This side closed the mesh ([`Mesh::close`](crate::Mesh::close)).
    Closed,
    /// It broke the protocol and was dropped.
    ProtocolViolation(ProtocolError),
}

impl fmt::Display for LeaveReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeaveReason::TimedOut => f.write_str("timed out"),
            LeaveReason::Lapsed => f.write_str("timed out on its side, rejoining"),
            LeaveReason::Disconnected => f.write_str("disconnected"),
            LeaveReason::Left(reason) => write!(f, "left ({reason:?})"),
            LeaveReason::Dropped => f.write_str("dropped locally"),
            LeaveReason::Closed => f.write_str("closed locally"),
            LeaveReason::ProtocolViolation(e) => write!(f, "protocol violation: {e}"),
        }
    }
}

/// What the mesh reports to the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A peer completed the handshake; messages can flow both ways. Reported
    /// again for the same peer when its link comes back after a
    /// [`LeaveReason::TimedOut`] or [`LeaveReason::Lapsed`], with fresh
    /// reliable streams both ways.
    PeerJoined(PeerId),
    /// Nothing arrived from a joined peer for
    /// [`MeshConfig::interrupt_timeout`](crate::MeshConfig::interrupt_timeout):
    /// the network may be down for a moment. The peer stays joined, and
    /// messages to it are still queued (reliable ones arrive when the link
    /// returns). Followed by exactly one [`Event::PeerResumed`] or
    /// [`Event::PeerLeft`].
    PeerInterrupted(PeerId),
    /// An interrupted peer was heard from again: the link carries on where it
    /// was, nothing reliable lost.
    PeerResumed(PeerId),
    /// A joined peer is gone; nothing more arrives from it on this link. After
    /// [`LeaveReason::TimedOut`] or [`LeaveReason::Lapsed`] the peer may join
    /// again ([`Event::PeerJoined`]).
    PeerLeft {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// A connected peer failed the handshake and was dropped. A handshake
    /// that restarts a link after a time-out and runs out of time is not
    /// reported: the peer stays timed out, and may come back again.
    HandshakeFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: HandshakeError,
    },
    /// A room-mate's WebRTC signal (an offer, an answer or an ICE candidate,
    /// passed on by the signaling server) failed the checks made before the
    /// WebRTC stack sees it. The peer is banned ([`Mesh::ban_peer`](crate::Mesh::ban_peer)):
    /// no link to it is made, and its later signals are dropped.
    SignalRefused {
        /// The sender, as the signaling server named it.
        peer: PeerId,
        /// What was wrong with the signal.
        reason: String,
    },
    /// A message from a joined peer.
    Message {
        /// The sender.
        peer: PeerId,
        /// The channel it came on.
        channel: Channel,
        /// Its bytes.
        payload: Bytes,
    },
}

/// Why a message could not be sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SendError {
    /// The peer is not joined (never was, or left).
    #[error("peer {0} is not joined")]
    UnknownPeer(PeerId),
    /// The message is larger than the channel's cap.
    #[error("message of {size} bytes exceeds the cap of {max}")]
    MessageTooLarge {
        /// The message size.
        size: usize,
        /// The cap.
        max: usize,
    },
    /// The peer's reliable queue is full: the peer does not keep up.
    #[error("send queue full: {queued} bytes queued, capacity {capacity}")]
    QueueFull {
        /// Bytes waiting.
        queued: usize,
        /// The cap,
        /// [`MeshConfig::max_queued_bytes`](crate::MeshConfig::max_queued_bytes).
        capacity: usize,
    },
}

/// Fails with [`ProtocolError::MessageTooLarge`] when `size` exceeds `max`.
pub(super) fn check_size(size: usize, max: usize) -> Result<(), Fault> {
    if size > max {
        Err(Fault::Protocol(ProtocolError::MessageTooLarge {
            size,
            max,
        }))
    } else {
        Ok(())
    }
}

/// Why a link ends.
#[derive(Debug)]
pub(super) enum Fault {
    /// The handshake failed: reported as [`Event::HandshakeFailed`].
    Handshake(HandshakeError),
    /// The peer broke the protocol: it is told so and dropped.
    Protocol(ProtocolError),
    /// The peer is gone: reported as [`Event::PeerLeft`] if it was joined.
    Gone(LeaveReason),
}

impl Fault {
    /// What the peer is told as the link ends, if anything: nothing when it
    /// said goodbye or refused us itself.
    pub(super) fn goodbye(&self) -> Option<GoodbyeReason> {
        match self {
            Fault::Handshake(HandshakeError::Refused) | Fault::Gone(LeaveReason::Left(_)) => None,
            Fault::Handshake(HandshakeError::VersionMismatch { .. })
            | Fault::Handshake(HandshakeError::AppMismatch { .. })
            | Fault::Handshake(HandshakeError::SchemaMismatch { .. }) => {
                Some(GoodbyeReason::Incompatible)
            }
            Fault::Protocol(_) | Fault::Handshake(HandshakeError::Protocol(_)) => {
                Some(GoodbyeReason::ProtocolViolation)
            }
            Fault::Gone(LeaveReason::Closed) => Some(GoodbyeReason::Leaving),
            _ => Some(GoodbyeReason::Dropped),
        }
    }

    /// What the application hears of the end of the link to `peer`, `joined`
    /// or still handshaking: nothing when a handshaking peer is gone.
    pub(super) fn into_event(self, peer: PeerId, joined: bool) -> Option<Event> {
        match (joined, self) {
            (true, Fault::Gone(reason)) => Some(Event::PeerLeft { peer, reason }),
            (true, Fault::Protocol(e)) => Some(Event::PeerLeft {
                peer,
                reason: LeaveReason::ProtocolViolation(e),
            }),
            (false, Fault::Handshake(error)) => Some(Event::HandshakeFailed { peer, error }),
            (false, Fault::Protocol(e)) => Some(Event::HandshakeFailed {
                peer,
                error: HandshakeError::Protocol(e),
            }),
            _ => None,
        }
    }
}
