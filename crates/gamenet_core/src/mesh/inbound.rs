//! What one peer may make this side hold and handle: the inbound budget.
//!
//! - **Reliable data** is acknowledged only once the application took the
//!   message it belongs to ([`Mesh::poll_event`]) (the fragments of a
//!   message being reassembled as they come, while every complete one was
//!   taken), so a peer can have at most one complete message and
//!   [`MeshConfig::send_window`] bytes waiting on this side; one that sends
//!   more than twice the window beyond what it was told is dropped
//!   ([`ProtocolError::WindowExceeded`](super::ProtocolError::WindowExceeded)).
//!   Peers of one game use the same window.
//! - **Unreliable packets** (data and heartbeats) pass a token bucket per
//!   peer, [`MeshConfig::inbound_packets_per_sec`] and
//!   [`MeshConfig::inbound_bytes_per_sec`] with a second's burst, and at most
//!   [`MeshConfig::max_unpolled_unreliable`] of a peer's unreliable messages
//!   wait for the application. Packets over the budget are dropped before
//!   they are decoded (unreliable: that is their contract) and counted in
//!   [`PeerStats::dropped_in`](crate::PeerStats::dropped_in).
//!
//! A flood of well-formed packets from one peer therefore costs a counter
//! per packet, and memory no more than the window and the unpolled cap.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use super::wire::{UNRELIABLE_DATA, UnreliablePacket};
use super::{Event, Mesh, MeshConfig};
use crate::Instant;
use crate::peer::{Channel, PeerId};

/// Identifies one link among all the links to a peer over time, so that a
/// message of an ended link, taken after a new link began, credits nothing.
pub(super) fn next_epoch() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What taking one message event gives back to its link.
#[derive(Debug)]
pub(super) struct Credit {
    peer: PeerId,
    epoch: u64,
    channel: Channel,
    /// Encoded reliable bytes the message took (0 for unreliable).
    bytes: u64,
}

/// The token buckets of one peer's unreliable packets.
#[derive(Debug)]
pub(super) struct Budget {
    packets: f64,
    bytes: f64,
    at: Option<Instant>,
    /// The peer's unreliable messages waiting for the application.
    pub(super) unpolled: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Self {
            packets: f64::INFINITY,
            bytes: f64::INFINITY,
            at: None,
            unpolled: 0,
        }
    }
}

impl Budget {
    /// Takes one packet of `len` bytes; `false` if it is over the budget.
    fn take(&mut self, now: Instant, len: usize, config: &MeshConfig) -> bool {
        let (rate_p, rate_b) = (
            f64::from(config.inbound_packets_per_sec),
            config.inbound_bytes_per_sec as f64,
        );
        let elapsed = self
            .at
            .map_or(0.0, |at| now.saturating_duration_since(at).as_secs_f64());
        self.at = Some(now);
        // A second's worth at most: the burst.
        self.packets = (self.packets + elapsed * rate_p).min(rate_p);
        self.bytes = (self.bytes + elapsed * rate_b).min(rate_b);
        if self.packets < 1.0 || self.bytes < len as f64 {
            return false;
        }
        self.packets -= 1.0;
        self.bytes -= len as f64;
        true
    }
}

impl Mesh {
    /// Whether an unreliable packet of `len` bytes from `peer` is within its
    /// budget; counts it as dropped if not. A data packet must also find room
    /// among the peer's unpolled messages.
    pub(super) fn within_budget(&mut self, now: Instant, peer: PeerId, data: &[u8]) -> bool {
        let config = &self.config;
        let Some(link) = self.links.get_mut(&peer) else {
            return true;
        };
        let is_data = data.first() == Some(&UNRELIABLE_DATA);
        let room = !is_data || link.inbound.unpolled < config.max_unpolled_unreliable;
        if room && link.inbound.take(now, data.len(), config) {
            return true;
        }
        link.stats.dropped_in += 1;
        false
    }

    /// Reports a message from `peer`, to credit its link when taken.
    pub(super) fn deliver(
        &mut self,
        peer: PeerId,
        channel: Channel,
        payload: bytes::Bytes,
        bytes: u64,
    ) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if channel == Channel::Unreliable {
            link.inbound.unpolled += 1;
        }
        self.credits.push_back(Credit {
            peer,
            epoch: link.epoch,
            channel,
            bytes,
        });
        self.events.push_back(Event::Message {
            peer,
            channel,
            payload,
        });
    }

    /// The application took a message event: its link may take more (an
    /// acknowledgement goes out once a quarter window was taken).
    pub(super) fn credit(&mut self) {
        let Some(credit) = self.credits.pop_front() else {
            return;
        };
        let send_window = self.config.send_window;
        let Some(link) = self.links.get_mut(&credit.peer) else {
            return;
        };
        if link.epoch != credit.epoch {
            return;
        }
        match credit.channel {
            Channel::Unreliable => link.inbound.unpolled = link.inbound.unpolled.saturating_sub(1),
            Channel::Reliable => {
                link.reliable.consume(credit.bytes);
                if let Some(acked) = link.reliable.ack_due(send_window) {
                    let ack = UnreliablePacket::Ack { acked }.encode();
                    self.push_transmit(credit.peer, Channel::Unreliable, ack);
                }
            }
        }
    }
}

/// The credits of the message events not yet taken, in their order.
pub(super) type Credits = VecDeque<Credit>;
