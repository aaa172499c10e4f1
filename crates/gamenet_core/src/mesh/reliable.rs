//! The reliable stream of a link: messages split into fragments no larger than
//! [`MeshConfig::fragment_size`](super::MeshConfig::fragment_size), a send
//! window of bytes in flight that the peer's acknowledgements open, the queue of
//! what waits for it, and the reassembly of fragmented messages on the way in.

use bytes::Bytes;

use super::event::{Fault, ProtocolError, SendError, check_size};
use super::wire::{
    FRAGMENT_CONT_HEADER, FRAGMENT_START_HEADER, RELIABLE_DATA_HEADER, ReliablePacket,
    UnreliablePacket,
};
use super::{Event, Mesh};
use crate::peer::{Channel, PeerId};

/// A fragmented message being received.
#[derive(Debug)]
pub(super) struct Reassembly {
    /// Length of the whole message, as its first fragment announced.
    total: usize,
    /// The bytes received so far.
    buf: Vec<u8>,
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
        if link.queued_bytes + payload.len() > max_queued {
            return Err(SendError::QueueFull {
                queued: link.queued_bytes,
                capacity: max_queued,
            });
        }
        let queue_empty = link.queue.is_empty();
        let mut reached = 0;
        if queue_empty && self.fits_window(peer, payload.len()) {
            // Fast path: nothing waits, so the message goes out whole or as
            // fragments straight from the caller's buffer.
            reached = self.emit_reliable(peer, payload, 0);
            if reached >= payload.len() {
                return Ok(());
            }
        }
        if let Some(link) = self.links.get_mut(&peer) {
            link.queued_bytes += payload.len();
            if queue_empty {
                link.front_offset = reached;
            }
            link.queue.push_back(payload.to_vec());
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
        // Flow control counts application packets only: handshake packets
        // may be repeated or lost while a channel opens.
        link.recv_reliable += data.len() as u64;
        let message = match packet {
            ReliablePacket::Data(_) => {
                if link.reassembly.is_some() {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                let size = data.len() - RELIABLE_DATA_HEADER;
                check_size(size, config.max_message_size)?;
                Some(data.slice(RELIABLE_DATA_HEADER..))
            }
            ReliablePacket::FragmentStart { total_len, chunk } => {
                if link.reassembly.is_some() {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                let total = total_len as usize;
                check_size(total, config.max_message_size)?;
                let mut buf = Vec::with_capacity(total.min(1 << 20));
                buf.extend_from_slice(chunk);
                link.reassembly = Some(Reassembly { total, buf });
                None
            }
            ReliablePacket::FragmentCont(chunk) => {
                let Some(re) = link.reassembly.as_mut() else {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                };
                if re.buf.len() + chunk.len() > re.total {
                    return Err(Fault::Protocol(ProtocolError::BadFragment));
                }
                re.buf.extend_from_slice(chunk);
                if re.buf.len() == re.total {
                    link.reassembly.take().map(|re| Bytes::from(re.buf))
                } else {
                    None
                }
            }
            ReliablePacket::Hello { .. }
            | ReliablePacket::HelloAck
            | ReliablePacket::Goodbye(_) => {
                return Ok(());
            }
        };
        if link.recv_reliable - link.last_ack_sent >= (config.send_window / 4) as u64 {
            link.last_ack_sent = link.recv_reliable;
            let ack = UnreliablePacket::Ack {
                acked: link.recv_reliable,
            }
            .encode();
            self.push_transmit(peer, Channel::Unreliable, ack);
        }
        if let Some(payload) = message {
            self.events.push_back(Event::Message {
                peer,
                channel: Channel::Reliable,
                payload,
            });
        }
        Ok(())
    }

    /// The peer acknowledged `acked` reliable bytes: frees send window.
    pub(super) fn on_ack(&mut self, peer: PeerId, acked: u64) -> Result<(), Fault> {
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(());
        };
        if acked > link.sent_reliable {
            return Err(Fault::Protocol(ProtocolError::AckBeyondSent {
                acked,
                sent: link.sent_reliable,
            }));
        }
        if acked > link.peer_acked {
            link.peer_acked = acked;
            self.pump(peer);
        }
        Ok(())
    }

    /// Whether a whole message of `len` bytes fits the send window now.
    fn fits_window(&self, peer: PeerId, len: usize) -> bool {
        let Some(link) = self.links.get(&peer) else {
            return false;
        };
        let in_flight = link.sent_reliable - link.peer_acked;
        // Generous upper bound on the encoded size of all fragments.
        let encoded = len + FRAGMENT_START_HEADER + len / (self.config.fragment_size - 8) + 1;
        in_flight + encoded as u64 <= self.config.send_window as u64
    }

    /// Emits `payload[offset..]` as reliable packets, as far as the window allows,
    /// and returns the offset reached.
    fn emit_reliable(&mut self, peer: PeerId, payload: &[u8], mut offset: usize) -> usize {
        let fragment = self.config.fragment_size;
        let window = self.config.send_window as u64;
        loop {
            let Some(link) = self.links.get_mut(&peer) else {
                return offset;
            };
            let rest = &payload[offset..];
            let packet = if offset == 0 && payload.len() + RELIABLE_DATA_HEADER <= fragment {
                ReliablePacket::Data(payload)
            } else if offset == 0 {
                ReliablePacket::FragmentStart {
                    total_len: payload.len() as u32,
                    chunk: &payload[..fragment - FRAGMENT_START_HEADER],
                }
            } else {
                ReliablePacket::FragmentCont(
                    &rest[..rest.len().min(fragment - FRAGMENT_CONT_HEADER)],
                )
            };
            let len = packet.encoded_len() as u64;
            if link.sent_reliable - link.peer_acked + len > window {
                return offset;
            }
            offset += match packet {
                ReliablePacket::Data(p) => p.len(),
                ReliablePacket::FragmentStart { chunk, .. }
                | ReliablePacket::FragmentCont(chunk) => chunk.len(),
                _ => 0,
            };
            link.sent_reliable += len;
            let data = packet.encode();
            self.push_transmit(peer, Channel::Reliable, data);
            if offset >= payload.len() {
                return payload.len();
            }
        }
    }

    /// Moves queued reliable messages out as far as the send window allows.
    pub(super) fn pump(&mut self, peer: PeerId) {
        loop {
            let Some(link) = self.links.get_mut(&peer) else {
                return;
            };
            let Some(front) = link.queue.pop_front() else {
                return;
            };
            let start = link.front_offset;
            let reached = self.emit_reliable(peer, &front, start);
            let Some(link) = self.links.get_mut(&peer) else {
                return;
            };
            if reached >= front.len() {
                link.front_offset = 0;
                link.queued_bytes -= front.len();
            } else {
                link.front_offset = reached;
                link.queue.push_front(front);
                return;
            }
        }
    }
}
