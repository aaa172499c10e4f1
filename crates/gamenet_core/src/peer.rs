//! Who a packet is from or for, which channel it travels on, and the one
//! outbound packet type every layer (mesh, rollback, replication) emits.

use std::fmt;

use bytes::Bytes;

/// Identifies a peer in the mesh; assigned by the signaling server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "reflect", derive(bevy_reflect::Reflect))]
pub struct PeerId(pub u128);

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            (v >> 96) as u32,
            (v >> 80) as u16,
            (v >> 64) as u16,
            (v >> 48) as u16,
            v & 0xffff_ffff_ffff
        )
    }
}

/// Which data channel a packet or message travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Channel {
    /// Ordered and retransmitted until delivered; messages of any size up to the cap.
    Reliable,
    /// Unordered, never retransmitted; one message per packet.
    Unreliable,
}

impl Channel {
    /// The index of this channel in the transport's channel list.
    pub fn index(self) -> usize {
        match self {
            Channel::Reliable => 0,
            Channel::Unreliable => 1,
        }
    }
}

/// A packet for the transport to send: what the mesh, a rollback session and a
/// replicator all hand out from `poll_transmit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The receiver.
    pub peer: PeerId,
    /// The channel to send it on.
    pub channel: Channel,
    /// The encoded packet.
    pub data: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_id_displays_as_uuid() {
        let id = PeerId(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "01234567-89ab-cdef-0123-456789abcdef");
    }
}
