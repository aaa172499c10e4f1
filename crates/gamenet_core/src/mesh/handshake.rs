//! The handshake: each side sends a hello and repeats it until the other
//! acknowledges it; a link joins once both hellos are acknowledged.
//!
//! On a link this side restarted after a lapse ([`Link::stragglers`]), the
//! peer's old link may still have packets in flight ahead of its fresh hello:
//! until that hello, acknowledgements, data and fragments are ignored instead
//! of failing the handshake.
//!
//! [`Link::stragglers`]: super::link::Link::stragglers

use super::event::{Fault, HandshakeError, LeaveReason, ProtocolError};
use super::link::LinkPhase;
use super::wire::{GoodbyeReason, ReliablePacket};
use super::{Event, Mesh};
use crate::Instant;
use crate::peer::{Channel, PeerId};

/// Version of the gamenet wire protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 6;

impl Mesh {
    /// Our hello on the link of id `link`, encoded.
    pub(super) fn hello(&self, link: u32) -> Box<[u8]> {
        ReliablePacket::Hello {
            version: PROTOCOL_VERSION,
            link,
            app_id: &self.config.app_id,
            schema: &self.schema.encode(),
        }
        .encode()
    }

    /// Sends our hello to `peer` and schedules its repetition.
    pub(super) fn send_hello(&mut self, now: Instant, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        link.next_ping = now + self.config.heartbeat_interval * 2;
        let id = link.id();
        let hello = self.hello(id);
        self.push_transmit(peer, Channel::Reliable, hello);
    }

    /// Handles a packet of a peer still in the handshake. Returns whether the
    /// packet is application data that the now joined peer sent, to be taken in.
    pub(super) fn on_handshake(
        &mut self,
        now: Instant,
        peer: PeerId,
        packet: ReliablePacket<'_>,
    ) -> Result<bool, Fault> {
        let interrupt_timeout = self.config.interrupt_timeout;
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(false);
        };
        let LinkPhase::Handshaking {
            hello_received,
            ack_received,
            ..
        } = &mut link.phase
        else {
            return Ok(false);
        };
        let mut is_data = false;
        match packet {
            ReliablePacket::Hello {
                version,
                link: link_id,
                app_id,
                schema,
            } => {
                if version != PROTOCOL_VERSION {
                    return Err(Fault::Handshake(HandshakeError::VersionMismatch {
                        ours: PROTOCOL_VERSION,
                        theirs: version,
                    }));
                }
                if app_id != self.config.app_id {
                    return Err(Fault::Handshake(HandshakeError::AppMismatch {
                        ours: self.config.app_id.clone(),
                        theirs: app_id.to_owned(),
                    }));
                }
                self.schema.check(schema).map_err(Fault::Handshake)?;
                *hello_received = true;
                link.stragglers = false;
                link.peer_link = Some(link_id);
                if link.connected {
                    self.push_transmit(peer, Channel::Reliable, ReliablePacket::HelloAck.encode());
                }
            }
            ReliablePacket::Goodbye(GoodbyeReason::Incompatible) => {
                return Err(Fault::Handshake(HandshakeError::Refused));
            }
            ReliablePacket::Goodbye(reason) => return Err(Fault::Gone(LeaveReason::Left(reason))),
            // Handled by `Mesh::on_reset` before the handshake sees it.
            ReliablePacket::Reset => return Ok(false),
            // A straggler of the peer's old link, ahead of its fresh hello.
            _ if link.stragglers => return Ok(false),
            ReliablePacket::HelloAck => *ack_received = true,
            _ if *hello_received && link.connected => {
                // The peer sends data only once it has our acknowledgement of its
                // hello, so it had our hello too: its own acknowledgement was lost
                // while our end of the channel opened.
                *ack_received = true;
                is_data = true;
            }
            _ => {
                return Err(Fault::Protocol(ProtocolError::Unexpected(
                    "data before the handshake",
                )));
            }
        }
        let Some(link) = self.links.get_mut(&peer) else {
            return Ok(false);
        };
        if let LinkPhase::Handshaking {
            hello_received: true,
            ack_received: true,
            ..
        } = link.phase
        {
            link.phase = LinkPhase::Joined;
            link.next_ping = now;
            link.last_recv = now;
            if link.restarted {
                link.stale_acks_until = Some(now + interrupt_timeout);
            }
            self.events.push_back(Event::PeerJoined(peer));
        }
        Ok(is_data)
    }
}
