//! The rollback wire decoder for the fuzz targets (feature `fuzzing`, hidden
//! from the docs): not part of the API, and not to be enabled in a game.
//!
//! [`Message`] wraps the message type the session decodes every peer's bytes
//! into; it compares and prints, but its contents stay private. The record
//! codec of input runs is there too.

use crate::codec::DecodeError;

use super::Input;
use super::wire::{self, Limits, Msg};

/// A decoded rollback message.
#[derive(Debug, Clone, PartialEq)]
pub struct Message<I>(Msg<I>);

impl<I: Input> Message<I> {
    /// Decodes `bytes` the way a session does, with its limits: the most
    /// bytes of a snapshot's state and of the input records of one message.
    pub fn decode(
        bytes: &[u8],
        max_snapshot_bytes: usize,
        max_decoded_input_bytes: usize,
    ) -> Result<Self, DecodeError> {
        let limits = Limits {
            snapshot: max_snapshot_bytes,
            decoded_inputs: max_decoded_input_bytes,
        };
        Msg::decode(bytes, &limits).map(Self)
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        self.0.encode()
    }

    /// Whether it goes on the reliable channel.
    pub fn is_reliable(&self) -> bool {
        self.0.is_reliable()
    }
}

/// Decodes `count` input records of `width` slots, within `budget` decoded
/// bytes (see `wire::decode_records`).
pub fn decode_records<I: Input>(
    bytes: &[u8],
    width: usize,
    count: usize,
    budget: &mut usize,
) -> Result<Vec<Vec<Option<I>>>, DecodeError> {
    wire::decode_records(bytes, width, count, budget)
}

/// Encodes input records (all of one width) into `out`.
pub fn encode_records<I: Input>(records: &[Vec<Option<I>>], out: &mut Vec<u8>) {
    wire::encode_records(records, out);
}
