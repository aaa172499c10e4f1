//! What a peer did wrong: the one reason every layer gives when it reports a
//! peer as misbehaving (and the caller drops it), in place of free text.

use thiserror::Error;

use crate::codec::DecodeError;

/// A rule a peer broke. Layers report it with the peer's id; the application
/// usually drops that peer while the others play on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum Misbehavior {
    /// A message did not decode.
    #[error("undecodable message: {0}")]
    Decode(#[from] DecodeError),
    /// The message may only come from someone else (the host, the owner, the
    /// peer it speaks about).
    #[error("{what} from a peer that may not send it")]
    WrongSender {
        /// The message or field.
        what: &'static str,
    },
    /// A frame, sequence number or id outside the range the receiver accepts.
    #[error("{what} out of range")]
    OutOfRange {
        /// The field.
        what: &'static str,
    },
    /// More of something than the receiver allows.
    #[error("{what}: {len} over the limit of {max}")]
    Oversize {
        /// What grew too large.
        what: &'static str,
        /// How large it was.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Another named rule of the protocol.
    #[error("{0}")]
    Rule(&'static str),
}
