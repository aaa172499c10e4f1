//! The wire format spoken between two gamenet peers.
//!
//! Every packet starts with one type byte. Integers are little endian. Packets on
//! the unreliable channel ([`UnreliablePacket`]) carry heartbeats, flow-control
//! acknowledgements and unreliable application data; packets on the reliable,
//! ordered channel ([`ReliablePacket`]) carry the handshake, the goodbye, the
//! reset of a link that timed out, and reliable application data, fragmented
//! when larger than one fragment.
//!
//! Decoders never panic and never allocate from a length read off the wire: every
//! payload is a borrowed slice of the input.
//!
//! The protocol is symmetric: either peer of a link may send every packet kind.
//! What each kind may be sent in which phase of the link, and what the
//! receiving [`Mesh`](crate::Mesh) does with one out of place, is written on
//! the variant. Whatever the kind, bytes from a peer whose link was closed (one
//! of the last 1,024) are ignored, and a peer whose packet does not decode is
//! dropped for a protocol violation (the unreliable channel is only decoded
//! once the peer joined). A goodbye is sent only to a peer the transport
//! reported connected.
//!
//! A link that timed out is not closed but *lapsed*: no goodbye is sent, and
//! any packet that later arrives from the peer, while the transport still
//! reports it connected, makes the receiver start over with a
//! [`ReliablePacket::Reset`] and a hello. While a side is lapsed it sends the
//! peer a [`UnreliablePacket::Ping`] every heartbeat interval, so that a link
//! that timed out on both sides also comes back.

pub use crate::codec::DecodeError;
use crate::codec::Reader;

/// Magic number opening a [`ReliablePacket::Hello`]: `"GNET"`.
pub const HELLO_MAGIC: u32 = u32::from_le_bytes(*b"GNET");

/// Longest application id a hello may carry, in bytes.
pub const MAX_APP_ID_LEN: usize = 255;

/// Most schema hashes a hello carries ([`crate::TypeSchema::hashes`]).
pub const MAX_SCHEMA_ENTRIES: usize = 255;

const PING: u8 = 0x01;
const PONG: u8 = 0x02;
pub(super) const UNRELIABLE_DATA: u8 = 0x03;
const ACK: u8 = 0x04;

const HELLO: u8 = 0x10;
const GOODBYE: u8 = 0x11;
const RELIABLE_DATA: u8 = 0x12;
const FRAGMENT_START: u8 = 0x13;
const FRAGMENT_CONT: u8 = 0x14;
const HELLO_ACK: u8 = 0x15;
const RESET: u8 = 0x16;

/// Bytes of header in front of an unreliable data payload.
pub const UNRELIABLE_DATA_HEADER: usize = 1;
/// Bytes of header in front of a whole reliable message.
pub const RELIABLE_DATA_HEADER: usize = 1;
/// Bytes of header in front of the first fragment of a reliable message.
pub const FRAGMENT_START_HEADER: usize = 5;
/// Bytes of header in front of a continuation fragment.
pub const FRAGMENT_CONT_HEADER: usize = 1;

/// Why the sender of a [`ReliablePacket::Goodbye`] is leaving.
///
/// A byte of another value does not decode: the goodbye's sender is dropped for
/// a protocol violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GoodbyeReason {
    /// The sender is leaving the mesh for good ([`Mesh::close`](crate::Mesh::close)):
    /// it plays no more with anyone.
    Leaving,
    /// The sender found this peer's protocol version or application incompatible.
    Incompatible,
    /// The sender received something it could not accept from this peer.
    ProtocolViolation,
    /// The sender dropped this peer on purpose or gave up on it (a handshake
    /// that timed out); it may play on with others.
    Dropped,
}

impl GoodbyeReason {
    fn to_byte(self) -> u8 {
        match self {
            GoodbyeReason::Leaving => 0,
            GoodbyeReason::Incompatible => 1,
            GoodbyeReason::ProtocolViolation => 2,
            GoodbyeReason::Dropped => 3,
        }
    }

    fn from_byte(byte: u8) -> Result<Self, DecodeError> {
        match byte {
            0 => Ok(GoodbyeReason::Leaving),
            1 => Ok(GoodbyeReason::Incompatible),
            2 => Ok(GoodbyeReason::ProtocolViolation),
            3 => Ok(GoodbyeReason::Dropped),
            _ => Err(DecodeError::Invalid("goodbye reason")),
        }
    }
}

/// A packet of the unreliable, unordered channel.
///
/// Sent only once the link joined; until the receiver has joined the sender,
/// it ignores whatever arrives on this channel, since heartbeats may overtake
/// the hello. Every kind but [`UnreliablePacket::Data`] carries a flow-control
/// acknowledgement; one of more reliable bytes than were sent drops the sender
/// for a protocol violation, one lower than an earlier one is ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreliablePacket<'a> {
    /// A heartbeat asking for a [`UnreliablePacket::Pong`]: either peer of a
    /// joined link, once per heartbeat interval. Always answered. Also sent,
    /// with sequence number and acknowledgement 0, by a peer whose link to
    /// the receiver lapsed, as a probe: it makes a lapsed receiver start over,
    /// and a joined one answer, which makes the sender start over.
    Ping {
        /// Sequence number of this ping.
        seq: u32,
        /// Reliable bytes the sender has received from the receiver so far.
        acked: u64,
    },
    /// The answer to a ping, by the peer that received it. One that matches no
    /// unanswered ping of the last ones is taken for its acknowledgement only.
    Pong {
        /// Sequence number of the ping answered.
        seq: u32,
        /// Reliable bytes the sender has received from the receiver so far.
        acked: u64,
    },
    /// Application data, from either peer of a joined link. Longer than the
    /// receiver's [`MeshConfig::max_unreliable_size`](crate::MeshConfig::max_unreliable_size),
    /// it drops the sender for a protocol violation.
    Data(&'a [u8]),
    /// A flow-control acknowledgement, by the receiver of reliable data every
    /// quarter send window (pings and pongs acknowledge too).
    Ack {
        /// Reliable bytes the sender has received from the receiver so far.
        acked: u64,
    },
}

/// A packet of the reliable, ordered channel.
///
/// The first packet from a peer unknown to the receiver opens a link in the
/// handshake, even before the transport reported the connection.
///
/// Stragglers: on a link the receiver started over itself, by sending a
/// [`ReliablePacket::Reset`] after its previous link to the sender lapsed,
/// the sender may still have packets of its old link in flight ahead of its
/// fresh hello. Until that hello (or a reset of the sender's own) arrives,
/// such a link ignores [`ReliablePacket::HelloAck`], data and fragments
/// instead of failing the handshake. Nowhere else is data before a hello
/// forgiven: a new peer that sends it fails the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReliablePacket<'a> {
    /// The first packet each side sends: who it is and what it speaks. Repeated
    /// every two heartbeat intervals until acknowledged. One of another version
    /// or application fails the handshake, and the receiver answers
    /// [`GoodbyeReason::Incompatible`]; a repeated hello is acknowledged again,
    /// after the join without its contents being checked. Also sent after a
    /// [`ReliablePacket::Reset`], by either side, to start the fresh link.
    Hello {
        /// Protocol version of the sender.
        version: u16,
        /// The sender's id for this link: repeated hellos of one link carry
        /// the same, a fresh link (the sender restarted, or started over)
        /// another, which makes a joined receiver start over too.
        link: u32,
        /// Application id of the sender: peers of different applications never talk.
        app_id: &'a str,
        /// The sender's registered types ([`crate::TypeSchema`]): a 32-bit hash
        /// each, little-endian, at most [`MAX_SCHEMA_ENTRIES`]; peers whose lists
        /// differ never talk.
        schema: &'a [u8],
    },
    /// The sender received the receiver's matching hello. Hellos are repeated until
    /// acknowledged, since a message sent while the receiver's end of a fresh data
    /// channel is still opening can be lost. Taken as it comes during the
    /// handshake, even unasked; ignored after the join.
    HelloAck,
    /// The sender stops talking to the receiver; either peer, in any phase, as
    /// its last packet on the link. Not answered. A joined receiver reports the
    /// peer left; during the handshake [`GoodbyeReason::Incompatible`] fails the
    /// handshake as refused, and any other reason ends the link unreported.
    Goodbye(GoodbyeReason),
    /// A whole application message, from either peer once it has the other's
    /// acknowledgement of its hello. Before the receiver had the sender's hello
    /// and the transport's report of the connection, it fails the handshake for
    /// a protocol violation; after both, it stands for a lost acknowledgement
    /// and completes the join. Sent while a fragmented
    /// message is incomplete, or longer than the receiver's
    /// [`MeshConfig::max_message_size`](crate::MeshConfig::max_message_size), it
    /// drops the sender for a protocol violation.
    Data(&'a [u8]),
    /// The first fragment of an application message, sent like
    /// [`ReliablePacket::Data`] when the message is longer than one fragment.
    /// Sent while another fragmented message is incomplete, or announcing more
    /// than the receiver's
    /// [`MeshConfig::max_message_size`](crate::MeshConfig::max_message_size), it
    /// drops the sender for a protocol violation before anything is allocated.
    FragmentStart {
        /// Length of the whole message.
        total_len: u32,
        /// The first bytes of the message.
        chunk: &'a [u8],
    },
    /// A further fragment of the message being reassembled, sent like
    /// [`ReliablePacket::Data`]. Without a fragment start before it, or carrying
    /// more bytes than the start announced, it drops the sender for a protocol
    /// violation.
    FragmentCont(&'a [u8]),
    /// "My link to you ended; start over": sent, followed by a hello, by a
    /// peer whose link to the receiver timed out (lapsed) when the next packet
    /// arrived from the receiver. Everything the sender sends after it belongs
    /// to a fresh link. A receiver with a joined link ends it (reported as
    /// [`LeaveReason::Lapsed`](crate::LeaveReason::Lapsed), no goodbye), one
    /// handshaking or lapsed drops what it had, and either starts a fresh
    /// handshake with a new reliable stream (byte counts from zero) and sends
    /// its hello; it does not answer with a reset. A reset during a handshake
    /// does not extend the handshake's deadline.
    Reset,
}

fn split_type(bytes: &[u8]) -> Result<(u8, Reader<'_>), DecodeError> {
    match bytes.split_first() {
        Some((&kind, rest)) => Ok((kind, Reader { bytes: rest })),
        None => Err(DecodeError::Empty),
    }
}

impl<'a> UnreliablePacket<'a> {
    /// Decodes a packet received on the unreliable channel.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let (kind, mut r) = split_type(bytes)?;
        match kind {
            PING => {
                let seq = r.u32("ping seq")?;
                let acked = r.u64("ping ack")?;
                r.finish(UnreliablePacket::Ping { seq, acked })
            }
            PONG => {
                let seq = r.u32("pong seq")?;
                let acked = r.u64("pong ack")?;
                r.finish(UnreliablePacket::Pong { seq, acked })
            }
            UNRELIABLE_DATA => Ok(UnreliablePacket::Data(r.rest())),
            ACK => {
                let acked = r.u64("ack")?;
                r.finish(UnreliablePacket::Ack { acked })
            }
            other => Err(DecodeError::UnknownType(other)),
        }
    }

    /// Encodes the packet into a new buffer.
    pub fn encode(&self) -> Box<[u8]> {
        let mut out = Vec::with_capacity(self.encoded_len());
        match *self {
            UnreliablePacket::Ping { seq, acked } => {
                out.push(PING);
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&acked.to_le_bytes());
            }
            UnreliablePacket::Pong { seq, acked } => {
                out.push(PONG);
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&acked.to_le_bytes());
            }
            UnreliablePacket::Data(payload) => {
                out.push(UNRELIABLE_DATA);
                out.extend_from_slice(payload);
            }
            UnreliablePacket::Ack { acked } => {
                out.push(ACK);
                out.extend_from_slice(&acked.to_le_bytes());
            }
        }
        out.into_boxed_slice()
    }

    /// Length of the encoded packet in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            UnreliablePacket::Ping { .. } | UnreliablePacket::Pong { .. } => 13,
            UnreliablePacket::Data(payload) => UNRELIABLE_DATA_HEADER + payload.len(),
            UnreliablePacket::Ack { .. } => 9,
        }
    }
}

impl<'a> ReliablePacket<'a> {
    /// Decodes a packet received on the reliable channel.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let (kind, mut r) = split_type(bytes)?;
        match kind {
            HELLO => {
                if r.u32("hello magic")? != HELLO_MAGIC {
                    return Err(DecodeError::Invalid("hello magic"));
                }
                let version = r.u16("hello version")?;
                let link = r.u32("hello link id")?;
                let len = usize::from(r.u8("hello app id length")?);
                let app_id = std::str::from_utf8(r.take(len, "hello app id")?)
                    .map_err(|_| DecodeError::Invalid("hello app id is not UTF-8"))?;
                let entries = usize::from(r.u8("hello schema length")?);
                let schema = r.take(entries * 4, "hello schema")?;
                r.finish(ReliablePacket::Hello {
                    version,
                    link,
                    app_id,
                    schema,
                })
            }
            HELLO_ACK => r.finish(ReliablePacket::HelloAck),
            RESET => r.finish(ReliablePacket::Reset),
            GOODBYE => {
                let reason = GoodbyeReason::from_byte(r.u8("goodbye reason")?)?;
                r.finish(ReliablePacket::Goodbye(reason))
            }
            RELIABLE_DATA => Ok(ReliablePacket::Data(r.rest())),
            FRAGMENT_START => {
                let total_len = r.u32("fragment total length")?;
                let chunk = r.rest();
                if chunk.is_empty() || chunk.len() >= total_len as usize {
                    return Err(DecodeError::Invalid("fragment start length"));
                }
                Ok(ReliablePacket::FragmentStart { total_len, chunk })
            }
            FRAGMENT_CONT => {
                let chunk = r.rest();
                if chunk.is_empty() {
                    return Err(DecodeError::Invalid("empty fragment"));
                }
                Ok(ReliablePacket::FragmentCont(chunk))
            }
            other => Err(DecodeError::UnknownType(other)),
        }
    }

    /// Encodes the packet into a new buffer.
    ///
    /// An application id longer than [`MAX_APP_ID_LEN`] is cut at a character
    /// boundary; [`crate::MeshConfig::validate`] rejects such ids before.
    pub fn encode(&self) -> Box<[u8]> {
        let mut out = Vec::with_capacity(self.encoded_len());
        match *self {
            ReliablePacket::Hello {
                version,
                link,
                app_id,
                schema,
            } => {
                let app_id = truncate_str(app_id, MAX_APP_ID_LEN);
                let schema = schema_bytes(schema);
                out.push(HELLO);
                out.extend_from_slice(&HELLO_MAGIC.to_le_bytes());
                out.extend_from_slice(&version.to_le_bytes());
                out.extend_from_slice(&link.to_le_bytes());
                out.push(app_id.len() as u8);
                out.extend_from_slice(app_id.as_bytes());
                out.push((schema.len() / 4) as u8);
                out.extend_from_slice(schema);
            }
            ReliablePacket::HelloAck => out.push(HELLO_ACK),
            ReliablePacket::Reset => out.push(RESET),
            ReliablePacket::Goodbye(reason) => {
                out.push(GOODBYE);
                out.push(reason.to_byte());
            }
            ReliablePacket::Data(payload) => {
                out.push(RELIABLE_DATA);
                out.extend_from_slice(payload);
            }
            ReliablePacket::FragmentStart { total_len, chunk } => {
                out.push(FRAGMENT_START);
                out.extend_from_slice(&total_len.to_le_bytes());
                out.extend_from_slice(chunk);
            }
            ReliablePacket::FragmentCont(chunk) => {
                out.push(FRAGMENT_CONT);
                out.extend_from_slice(chunk);
            }
        }
        out.into_boxed_slice()
    }

    /// Length of the encoded packet in bytes.
    pub fn encoded_len(&self) -> usize {
        match self {
            ReliablePacket::Hello { app_id, schema, .. } => {
                13 + truncate_str(app_id, MAX_APP_ID_LEN).len() + schema_bytes(schema).len()
            }
            ReliablePacket::HelloAck | ReliablePacket::Reset => 1,
            ReliablePacket::Goodbye(_) => 2,
            ReliablePacket::Data(payload) => RELIABLE_DATA_HEADER + payload.len(),
            ReliablePacket::FragmentStart { chunk, .. } => FRAGMENT_START_HEADER + chunk.len(),
            ReliablePacket::FragmentCont(chunk) => FRAGMENT_CONT_HEADER + chunk.len(),
        }
    }
}

/// The whole hashes of a hello's schema, at most [`MAX_SCHEMA_ENTRIES`].
fn schema_bytes(schema: &[u8]) -> &[u8] {
    let len = (schema.len() / 4).min(MAX_SCHEMA_ENTRIES) * 4;
    &schema[..len]
}

fn truncate_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn unreliable_round_trip() {
        let packets = [
            UnreliablePacket::Ping {
                seq: 7,
                acked: 1 << 40,
            },
            UnreliablePacket::Pong {
                seq: u32::MAX,
                acked: 0,
            },
            UnreliablePacket::Data(b"hello"),
            UnreliablePacket::Data(b""),
            UnreliablePacket::Ack { acked: 99 },
        ];
        for packet in packets {
            let bytes = packet.encode();
            assert_eq!(bytes.len(), packet.encoded_len());
            assert_eq!(UnreliablePacket::decode(&bytes), Ok(packet));
        }
    }

    #[test]
    fn reliable_round_trip() {
        let packets = [
            ReliablePacket::Hello {
                version: 3,
                link: 0xdead_beef,
                app_id: "my-game/1.2",
                schema: &[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff],
            },
            ReliablePacket::Goodbye(GoodbyeReason::Incompatible),
            ReliablePacket::HelloAck,
            ReliablePacket::Reset,
            ReliablePacket::Data(b"abc"),
            ReliablePacket::FragmentStart {
                total_len: 10,
                chunk: b"abcd",
            },
            ReliablePacket::FragmentCont(b"efghij"),
        ];
        for packet in packets {
            let bytes = packet.encode();
            assert_eq!(bytes.len(), packet.encoded_len());
            assert_eq!(ReliablePacket::decode(&bytes), Ok(packet));
        }
    }

    #[test]
    fn rejects_bad_packets() {
        assert_eq!(UnreliablePacket::decode(&[]), Err(DecodeError::Empty));
        assert_eq!(
            UnreliablePacket::decode(&[0x7f]),
            Err(DecodeError::UnknownType(0x7f))
        );
        assert!(matches!(
            UnreliablePacket::decode(&[PING, 1, 2]),
            Err(DecodeError::Truncated(_))
        ));
        let mut ping = UnreliablePacket::Ping { seq: 1, acked: 2 }
            .encode()
            .to_vec();
        ping.push(0);
        assert_eq!(
            UnreliablePacket::decode(&ping),
            Err(DecodeError::Trailing(1))
        );
        assert!(matches!(
            ReliablePacket::decode(&[HELLO, b'X', b'N', b'E', b'T', 0, 0, 0]),
            Err(DecodeError::Invalid("hello magic"))
        ));
        // A fragment start that claims to be the whole message is invalid.
        let start = ReliablePacket::FragmentStart {
            total_len: 4,
            chunk: b"abcd",
        }
        .encode();
        assert!(ReliablePacket::decode(&start).is_err());
        assert!(ReliablePacket::decode(&[GOODBYE, 9]).is_err());
        assert_eq!(
            ReliablePacket::decode(&[RESET, 0]),
            Err(DecodeError::Trailing(1))
        );
        assert!(ReliablePacket::decode(&[HELLO, b'G', b'N', b'E', b'T', 1, 0, 5, b'a']).is_err());
        // A schema shorter than its count.
        assert!(
            ReliablePacket::decode(&[
                HELLO, b'G', b'N', b'E', b'T', 1, 0, 0, 0, 0, 0, 1, b'a', 1, 0, 0, 0
            ])
            .is_err()
        );
    }

    #[test]
    fn long_app_id_is_cut_on_a_char_boundary() {
        let id = "é".repeat(200);
        let bytes = ReliablePacket::Hello {
            version: 1,
            link: 1,
            app_id: &id,
            schema: &[],
        }
        .encode();
        match ReliablePacket::decode(&bytes) {
            Ok(ReliablePacket::Hello { app_id, .. }) => assert!(app_id.len() <= MAX_APP_ID_LEN),
            other => panic!("unexpected {other:?}"),
        }
    }

    proptest! {
        #[test]
        fn unreliable_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(packet) = UnreliablePacket::decode(&bytes) {
                prop_assert_eq!(&*packet.encode(), &bytes[..]);
            }
        }

        #[test]
        fn reliable_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(packet) = ReliablePacket::decode(&bytes) {
                prop_assert_eq!(&*packet.encode(), &bytes[..]);
            }
        }

        #[test]
        fn typed_garbage_never_panics(kind in 0u8..0x20, tail in proptest::collection::vec(any::<u8>(), 0..32)) {
            let mut bytes = vec![kind];
            bytes.extend(tail);
            let _ = UnreliablePacket::decode(&bytes);
            let _ = ReliablePacket::decode(&bytes);
        }
    }
}
