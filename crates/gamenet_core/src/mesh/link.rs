//! The state of the mesh's link to one peer: where its handshake stands, when
//! it last heard from the peer, its statistics, its heartbeats and its reliable
//! stream (whose states [`heartbeat`](super::heartbeat) and
//! [`reliable`](super::reliable) own).

use std::time::Duration;

use super::MeshConfig;
use super::heartbeat::Heartbeats;
use super::inbound::{Budget, next_epoch};
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
    /// [`MeshConfig::interrupt_timeout`] interrupts a joined link, past
    /// [`MeshConfig::disconnect_timeout`] it lapses.
    pub(super) last_recv: Instant,
    /// Whether the joined link was reported interrupted and not yet resumed.
    pub(super) interrupted: bool,
    /// Whether this link replaced an earlier one to the same peer (after a
    /// lapse or a [`Reset`](super::wire::ReliablePacket::Reset)): if its
    /// handshake times out, the peer lapses again instead of being closed.
    pub(super) restarted: bool,
    /// Whether the peer may still have packets of its old link in flight
    /// ahead of its fresh hello: set on a link this side restarted with a
    /// reset, cleared by the peer's hello. Until then the handshake ignores
    /// reliable packets other than hello, reset and goodbye.
    pub(super) stragglers: bool,
    /// On a restarted link, until when after the join an acknowledgement of
    /// more reliable bytes than were sent is taken for a straggler of the old
    /// link (an unordered packet overtaken by the new handshake) and ignored,
    /// instead of dropping the peer.
    pub(super) stale_acks_until: Option<Instant>,
    /// When the next heartbeat is due (while handshaking: the next repeated hello).
    pub(super) next_ping: Instant,
    /// The heartbeats: pings sent, round-trip times, rates.
    pub(super) heartbeats: Heartbeats,
    /// The reliable stream: flow control, send queue and reassembly.
    pub(super) reliable: ReliableStream,
    /// Counters, and the statistics as of the last heartbeat.
    pub(super) stats: PeerStats,
    /// Tells this link from earlier and later ones to the same peer.
    pub(super) epoch: u64,
    /// The link id the peer's hello carried ([`link_id`] on its side), once
    /// one came: a hello with another id on the joined link means the peer
    /// started a fresh link.
    pub(super) peer_link: Option<u32>,
    /// What the peer may still send unreliably, and its unpolled messages.
    pub(super) inbound: Budget,
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
            interrupted: false,
            restarted: false,
            stragglers: false,
            stale_acks_until: None,
            next_ping: now,
            heartbeats: Heartbeats::default(),
            reliable: ReliableStream::default(),
            stats: PeerStats::default(),
            epoch: next_epoch(),
            peer_link: None,
            inbound: Budget::default(),
        }
    }

    /// The id our hellos on this link carry, unlike any other link's of
    /// this process or an earlier run of it (see [`link_id`]).
    pub(super) fn id(&self) -> u32 {
        link_id(self.epoch)
    }

    /// Whether the handshake completed.
    pub(super) fn joined(&self) -> bool {
        matches!(self.phase, LinkPhase::Joined)
    }

    /// When the link next needs [`Mesh::handle_timeout`](super::Mesh::handle_timeout):
    /// a repeated hello or the handshake's end, or a heartbeat or a silence limit.
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
            LinkPhase::Joined => {
                let silence = if self.interrupted {
                    config.disconnect_timeout
                } else {
                    config.interrupt_timeout
                };
                self.next_ping.min(self.last_recv + silence)
            }
        }
    }
}

/// The id of the link of `epoch`: the epoch mixed with a seed drawn once per
/// process from the wall clock and an address, so that a restarted process
/// (whose epochs start over) does not repeat the ids of its earlier run. Not
/// a clock reading: only compared for equality.
pub(super) fn link_id(epoch: u64) -> u32 {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let seed = *SEED.get_or_init(|| {
        let nanos = web_time::SystemTime::now()
            .duration_since(web_time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (&SEED as *const _ as u64).rotate_left(32)
    });
    let mut z = seed ^ epoch.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as u32
}
