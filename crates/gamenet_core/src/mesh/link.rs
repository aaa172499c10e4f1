//! The state of the mesh's link to one peer: where its handshake stands, when
//! it last heard from the peer, its statistics, its heartbeats and its reliable
//! stream (whose states [`heartbeat`](super::heartbeat) and
//! [`reliable`](super::reliable) own).

use std::time::Duration;

use super::MeshConfig;
use super::heartbeat::Heartbeats;
use super::reliable::ReliableStream;
use crate::Instant;
use crate::stats::PeerStats;

/// Where a link stands in its life.
#[derive(Debug)]
pub(super) enum LinkPhase {
    /// Hellos are being exchanged; nothing of the application flows yet.
    Handshaking {
        /// The handshake fails with a time-out at this instant.
        deadline: Instant,
        /// The peer's hello arrived and matched.
        hello_received: bool,
        /// The peer acknowledged our hello.
        ack_received: bool,
    },
    /// Both hellos were acknowledged: messages flow both ways.
    Joined,
}

/// The mesh's link to one peer.
#[derive(Debug)]
pub(super) struct Link {
    /// Where the link stands: handshaking or joined.
    pub(super) phase: LinkPhase,
    /// Whether the transport reported the connection; nothing is sent before.
    pub(super) connected: bool,
    /// When a packet last arrived from the peer; silence past
    /// [`MeshConfig::disconnect_timeout`] ends a joined link.
    pub(super) last_recv: Instant,
    /// When the next heartbeat is due (while handshaking: the next repeated hello).
    pub(super) next_ping: Instant,
    /// The heartbeats: pings sent, round-trip times, rates.
    pub(super) heartbeats: Heartbeats,
    /// The reliable stream: flow control, send queue and reassembly.
    pub(super) reliable: ReliableStream,
    /// Counters, and the statistics as of the last heartbeat.
    pub(super) stats: PeerStats,
}

impl Link {
    /// A link whose handshake starts at `now`.
    pub(super) fn new(now: Instant, handshake_timeout: Duration) -> Self {
        Self {
            phase: LinkPhase::Handshaking {
                deadline: now + handshake_timeout,
                hello_received: false,
                ack_received: false,
            },
            connected: false,
            last_recv: now,
            next_ping: now,
            heartbeats: Heartbeats::default(),
            reliable: ReliableStream::default(),
            stats: PeerStats::default(),
        }
    }

    /// Whether the handshake completed.
    pub(super) fn joined(&self) -> bool {
        matches!(self.phase, LinkPhase::Joined)
    }

    /// When the link next needs [`Mesh::handle_timeout`](super::Mesh::handle_timeout):
    /// a repeated hello or the handshake's end, or a heartbeat or the silence limit.
    pub(super) fn next_deadline(&self, config: &MeshConfig) -> Instant {
        match self.phase {
            LinkPhase::Handshaking {
                deadline,
                ack_received,
                ..
            } => {
                if self.connected && !ack_received {
                    deadline.min(self.next_ping)
                } else {
                    deadline
                }
            }
            LinkPhase::Joined => self
                .next_ping
                .min(self.last_recv + config.disconnect_timeout),
        }
    }
}
