//! How snapshots are encoded for late joiners: bitcode, bounded on decode.

use super::SnapshotError;

/// Largest decoded snapshot part, against hostile sizes.
const MAX_PART: usize = 64 << 20;

/// Encodes a value for a snapshot.
pub(crate) fn encode<T: serde::Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, SnapshotError> {
    bitcode::serialize(value).map_err(SnapshotError::Encode)
}

/// Decodes a snapshot value from a peer.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, SnapshotError> {
    if bytes.len() > MAX_PART {
        return Err(SnapshotError::TooLarge {
            len: bytes.len(),
            max: MAX_PART,
        });
    }
    bitcode::deserialize(bytes).map_err(SnapshotError::Decode)
}

/// Serializer and deserializer of a type's saved entries.
pub(crate) struct Serde<T> {
    /// Encodes the entries saved at a frame.
    pub ser: Encoder<T>,
    /// Decodes entries from a late-join snapshot.
    pub de: Decoder<T>,
}

/// Encodes a type's saved entries.
type Encoder<T> = fn(&[(u32, T)]) -> Result<Vec<u8>, SnapshotError>;
/// Decodes a type's saved entries: (rollback id, value).
type Decoder<T> = fn(&[u8]) -> Result<Entries<T>, SnapshotError>;
/// Saved entries: (rollback id, value).
type Entries<T> = Vec<(u32, T)>;

impl<T> Clone for Serde<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Serde<T> {}

impl<T: serde::Serialize + serde::de::DeserializeOwned> Serde<T> {
    pub fn new() -> Self {
        Self {
            ser: |v| encode(v),
            de: |b| decode(b),
        }
    }
}
