//! The reliable stream of a link: messages split into fragments no larger than
//! [`MeshConfig::fragment_size`], a send window of bytes in flight that the
//! peer's acknowledgements open, the queue of what waits for it, and the
//! reassembly of fragmented messages on the way in.
//!
//! Flow control counts the encoded bytes of reliable data packets only
//! (whole messages and fragments): handshake packets may be repeated or lost
//! while a channel opens. Each side tells the other how many it received in
//! its heartbeats and, every quarter window, in an acknowledgement of its own.

use std::collections::VecDeque;

use bytes::Bytes;

use super::event::{Fault, ProtocolError, SendError, check_size};
use super::wire::{
    FRAGMENT_CONT_HEADER, FRAGMENT_START_HEADER, RELIABLE_DATA_HEADER, ReliablePacket,
    UnreliablePacket,
};
use super::{Mesh, MeshConfig};
use crate::peer::{Channel, PeerId};

/// One link's reliable stream, both ways.
#[derive(Debug, Default)]
pub(super) struct ReliableStream {
    /// Encoded bytes of reliable data packets sent to the peer in all.
    sent: u64,
    /// Of [`ReliableStream::sent`], the bytes the peer acknowledged; the
    /// difference is in flight and bounded by [`MeshConfig::send_window`].
    peer_acked: u64,
    /// Encoded bytes of reliable data packets received from the peer in all.
    received: u64,
    /// Of [`ReliableStream::received`], the bytes of the messages completed.
    delivered: u64,
    /// Of [`ReliableStream::delivered`], the bytes of the messages the
    /// application took: what the peer is acknowledged.
    consumed: u64,
    /// The value of [`ReliableStream::received`] the peer was last told.
    last_ack_sent: u64,
    /// Messages waiting for send window, oldest first; the front one may be
    /// partly sent.
    queue: VecDeque<Vec<u8>>,
    /// Bytes of the messages in [`ReliableStream::queue`], the sent part of the
    /// front one included.
    queued_bytes: usize,
    /// How many bytes of the front queued message are already sent.
    front_offset: usize,
    /// The fragmented message being received, if any.
    reassembly: Option<Reassembly>,
}

/// A fragmented message being received.
#[derive(Debug)]
struct Reassembly {
    /// Length of the whole message, as its first fragment announced.
    total: usize,
    /// The bytes received so far.
    buf: Vec<u8>,
}

impl ReliableStream {
    /// Reliable bytes sent and not yet acknowledged.
    pub(super) fn in_flight(&self) -> u64 {
        self.sent - self.peer_acked
    }

    /// Reliable bytes queued and not yet sent.
    pub(super) fn queued_unsent(&self) -> usize {
        self.queued_bytes - self.front_offset
    }

    /// The acknowledgement to put in a heartbeat now: every reliable byte
    /// received so far, which the peer is then taken to know.
    pub(super) fn ack_now(&mut self) -> u64 {
        self.last_ack_sent = self.ackable();
        self.last_ack_sent
    }

    /// What the peer may be acknowledged: the bytes of the messages the
    /// application took, and while it has taken every complete one, the
    /// fragments of the message being reassembled too (which cannot be taken
    /// before the rest of it comes). So at most one complete message beyond
    /// the send window waits here. Never less than already acknowledged.
    fn ackable(&self) -> u64 {
        let taken = if self.consumed == self.delivered {
            self.received
        } else {
            self.consumed
        };
        taken.max(self.last_ack_sent)
    }

    /// The application took a message of `bytes` encoded bytes.
    pub(super) fn consume(&mut self, bytes: u64) {
        self.consumed = (self.consumed + bytes).min(self.delivered);
    }

    /// Takes the peer's acknowledgement of `acked` bytes. Returns whether it
    /// opened send window; one lower than an earlier one changes nothing.
    fn acknowledge(&mut self, acked: u64) -> Result<bool, Fault> {
        if acked > self.sent {
            return Err(Fault::Protocol(ProtocolError::AckBeyondSent {
                acked,
                sent: self.sent,
            }));
        }
        if acked > self.peer_acked {
            self.peer_acked = acked;
            return Ok(true);
        }
        Ok(false)
    }

    /// Takes in one received data packet, `data` its encoded bytes. Returns
    /// the message it completes, if any, with the encoded bytes it took.
    fn receive(
        &mut self,
        packet: ReliablePacket<'_>,
        data: &Bytes,
        config: &MeshConfig,
    ) -> Result<Option<(Bytes, u64)>, Fault> {
        self.received += data.len() as u64;
        // A peer keeps within the window of what it was acknowledged; twice
        // that leaves room for a peer configured with a larger window.
        let unacked = self.received - self.last_ack_sent;
        let limit = 2 * config.send_window as u64 + config.fragment_size as u64;
        if unacked > limit {
            return Err(Fault::Protocol(ProtocolError::WindowExceeded {
                unacked,
                limit,
            }));
        }
        let message = self.reassemble(packet, data, config.max_message_size)?;
        Ok(message.map(|m| {
            let bytes = self.received - self.delivered;
            self.delivered = self.received;
            (m, bytes)
        }))
    }

    /// The message `packet` completes, if any.
    fn reassemble(
        &mut self,
        packet: ReliablePacket<'_>,
        data: &Bytes,
        max_message: usize,
    ) -> Result<Option<Bytes>, Fault> {
        match packet {
            ReliablePacket::Data(_) => {
                if self.reassembly.is_some() {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                let size = data.len() - RELIABLE_DATA_HEADER;
                check_size(size, max_message)?;
                Ok(Some(data.slice(RELIABLE_DATA_HEADER..)))
            }
            ReliablePacket::FragmentStart { total_len, chunk } => {
                if self.reassembly.is_some() {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                let total = total_len as usize;
                check_size(total, max_message)?;
                let mut buf = Vec::with_capacity(total.min(1 << 20));
                buf.extend_from_slice(chunk);
                self.reassembly = Some(Reassembly { total, buf });
                Ok(None)
            }
            ReliablePacket::FragmentCont(chunk) => {
                let Some(re) = self.reassembly.as_mut() else {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                };
                if re.buf.len() + chunk.len() > re.total {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                re.buf.extend_from_slice(chunk);
                if re.buf.len() == re.total {
                    Ok(self.reassembly.take().map(|re| Bytes::from(re.buf)))
                } else {
                    Ok(None)
                }
            }
            ReliablePacket::Hello { .. }
            | ReliablePacket::HelloAck
            | ReliablePacket::Goodbye(_)
            | ReliablePacket::Reset => Ok(None),
        }
    }

    /// The acknowledgement due once the application took a quarter of
    /// `send_window` since the peer was last told, if it is due.
    pub(super) fn ack_due(&mut self, send_window: usize) -> Option<u64> {
        if self.ackable() - self.last_ack_sent >= (send_window / 4) as u64 {
            Some(self.ack_now())
        } else {
            None
        }
    }

    /// Whether a whole message of `len` bytes fits the send window now.
    fn fits_window(&self, len: usize, config: &MeshConfig) -> bool {
        // Generous upper bound on the encoded size of all fragments.
        let encoded = len + FRAGMENT_START_HEADER + len / (config.fragment_size - 8) + 1;
        self.in_flight() + encoded as u64 <= config.send_window as u64
    }

    /// The next packet of `payload[offset..]`, counted as sent, and the offset
    /// it reaches; `None` when it does not fit the send window.
    fn next_packet(
        &mut self,
        payload: &[u8],
        offset: usize,
        config: &MeshConfig,
    ) -> Option<(Box<[u8]>, usize)> {
        let fragment = config.fragment_size;
        let rest = &payload[offset..];
        let packet = if offset == 0 && payload.len() + RELIABLE_DATA_HEADER <= fragment {
            ReliablePacket::Data(payload)
        } else if offset == 0 {
            ReliablePacket::FragmentStart {
                total_len: payload.len() as u32,
                chunk: &payload[..fragment - FRAGMENT_START_HEADER],
            }
        } else {
            ReliablePacket::FragmentCont(&rest[..rest.len().min(fragment - FRAGMENT_CONT_HEADER)])
        };
        let len = packet.encoded_len() as u64;
        if self.in_flight() + len > config.send_window as u64 {
            return None;
        }
        let reached = offset
            + match packet {
                ReliablePacket::Data(p) => p.len(),
                ReliablePacket::FragmentStart { chunk, .. }
                | ReliablePacket::FragmentCont(chunk) => chunk.len(),
                _ => 0,
            };
        self.sent += len;
        Some((packet.encode(), reached))
    }
}

impl Mesh {
    /// Queues a reliable message to a joined peer: sent at once as far as the
    /// send window allows, the rest when acknowledgements open it.
    pub(super) fn send_reliable(&mut self, peer: PeerId, payload: &[u8]) -> Result<(), SendError> {
        let (max_message, max_queued) =
            (self.config.max_message_size, self.config.max_queued_bytes);
        let Some(link) = self.links.get(&peer) else {
            return Err(SendError::UnknownPeer(peer));
        };
        if payload.len() > max_message {
            return Err(SendError::MessageTooLarge {
                size: payload.len(),
                max: max_message,
            });
        }
        let stream = &link.reliable;
        if stream.queued_bytes + payload.len() > max_queued {
            return Err(SendError::QueueFull {
                queued: stream.queued_bytes,
                capacity: max_queued,
            });
        }
        let queue_empty = stream.queue.is_empty();
        let mut reached = 0;
        if queue_empty && stream.fits_window(payload.len(), &self.config) {
            // Fast path: nothing waits, so the message goes out whole or as
            // fragments straight from the caller's buffer.
            reached = self.emit_reliable(peer, payload, 0);
            if reached >= payload.len() {
                return Ok(());
            }
        }
        if let Some(link) = self.links.get_mut(&peer) {
            let stream = &mut link.reliable;
            stream.queued_bytes += payload.len();
            if queue_empty {
                stream.front_offset = reached;
            }
            stream.queue.push_back(payload.to_vec());
        }
        self.pump(peer);
        Ok(())
    }

    /// Takes in a reliable data packet (whole message or fragment) of a joined
    /// peer: counts it for flow control, reassembles, acknowledges every quarter
    /// window and reports the complete message.
    pub(super) fn on_reliable_data(
        &mut self,
        peer: PeerId,
        packet: ReliablePacket<'_>,
        data: &Bytes,
    ) -> Result<(), Fault> {
        let config = &self.config;
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        if !matches!(
            packet,
            ReliablePacket::Data(_)
                | ReliablePacket::FragmentStart { .. }
                | ReliablePacket::FragmentCont(_)
        ) {
            return Ok(());
        }
        let message = link.reliable.receive(packet, data, config)?;
        if let Some(acked) = link.reliable.ack_due(config.send_window) {
            let ack = UnreliablePacket::Ack { acked }.encode();
            self.push_transmit(peer, Channel::Unreliable, ack);
        }
        if let Some((payload, bytes)) = message {
            self.deliver(peer, Channel::Reliable, payload, bytes);
        }
        Ok(())
    }

    /// The peer acknowledged `acked` reliable bytes: frees send window.
    pub(super) fn on_ack(&mut self, peer: PeerId, acked: u64) -> Result<(), Fault> {
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        if link.reliable.acknowledge(acked)? {
            self.pump(peer);
        }
        Ok(())
    }

    /// Emits `payload[offset..]` as reliable packets, as far as the window allows,
    /// and returns the offset reached.
    fn emit_reliable(&mut self, peer: PeerId, payload: &[u8], mut offset: usize) -> usize {
        loop {
            let Some(link) = self.links.get_mut(&peer) else {
                return offset;
            };
            let Some((data, reached)) = link.reliable.next_packet(payload, offset, &self.config)
            else {
                return offset;
            };
            offset = reached;
            self.push_transmit(peer, Channel::Reliable, data);
            if offset >= payload.len() {
                return payload.len();
            }
        }
    }

    /// Moves queued reliable messages out as far as the send window allows.
    fn pump(&mut self, peer: PeerId) {
        loop {
            let Some(link) = self.links.get_mut(&peer) else {
                return;
            };
            let Some(front) = link.reliable.queue.pop_front() else {
                return;
            };
            let start = link.reliable.front_offset;
            let reached = self.emit_reliable(peer, &front, start);
            let Some(link) = self.links.get_mut(&peer) else {
                return;
            };
            let stream = &mut link.reliable;
            if reached >= front.len() {
                stream.front_offset = 0;
                stream.queued_bytes -= front.len();
            } else {
                stream.front_offset = reached;
                stream.queue.push_front(front);
                return;
            }
        }
    }
}
