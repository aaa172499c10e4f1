//! How snapshots are encoded for late joiners: values in bitcode, inside a
//! framing of counts and lengths that is checked against the
//! [`SnapshotLimits`] before anything is allocated for what it counts.

use bevy_ecs::prelude::Resource;
use bevy_ecs::reflect::ReflectResource;
use bevy_reflect::Reflect;

use super::SnapshotError;

/// Bounds on a late-join snapshot from a peer, checked while it is decoded,
/// before the world is touched (the rollback plugin inserts the defaults;
/// replace the resource to change them).
#[derive(Resource, Reflect, Debug, Clone, Copy, PartialEq, Eq)]
#[reflect(Resource, Debug, PartialEq)]
pub struct SnapshotLimits {
    /// Largest snapshot, in bytes. Default 8 MiB (the mesh's message cap).
    pub max_bytes: usize,
    /// Most rollback entities. Default 65,536.
    pub max_entities: usize,
    /// Most component values, over every component type. Default 1,048,576.
    pub max_components: usize,
}

impl Default for SnapshotLimits {
    fn default() -> Self {
        Self {
            max_bytes: 8 << 20,
            max_entities: 1 << 16,
            max_components: 1 << 20,
        }
    }
}

/// Reads framing fields off a snapshot, every length checked against what is
/// left.
pub(crate) struct Frames<'a>(pub &'a [u8]);

impl<'a> Frames<'a> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if n > self.0.len() {
            return Err(SnapshotError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// The next little-endian `u32`.
    pub fn u32(&mut self) -> Result<u32, SnapshotError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next little-endian `u64`.
    pub fn u64(&mut self) -> Result<u64, SnapshotError> {
        let b = self.take(8)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// A count of items of at least `min_size` bytes each, no more than
    /// `max` and no more than what is left could hold.
    pub fn count(
        &mut self,
        what: &'static str,
        min_size: usize,
        max: usize,
    ) -> Result<usize, SnapshotError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(SnapshotError::TooMany {
                what,
                count: n,
                max,
            });
        }
        if n.saturating_mul(min_size) > self.0.len() {
            return Err(SnapshotError::Truncated);
        }
        Ok(n)
    }

    /// Whether everything was read.
    pub fn finish(&self) -> Result<(), SnapshotError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(SnapshotError::Trailing)
        }
    }
}

/// Appends a `u32` count or length (snapshots are far below 4 GiB).
pub(crate) fn put_u32(out: &mut Vec<u8>, n: usize) {
    out.extend_from_slice(&(n as u32).to_le_bytes());
}

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

/// Serializer and deserializer of a type's values.
pub(crate) struct Serde<T> {
    /// Encodes a value.
    pub ser: fn(&T) -> Result<Vec<u8>, SnapshotError>,
    /// Decodes a value.
    pub de: fn(&[u8]) -> Result<T, SnapshotError>,
}

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

impl<T> Serde<T> {
    /// Encodes entries (rollback id, value): their count, then per entry the
    /// id, the value's length and the value.
    pub fn write_entries(&self, entries: &[(u32, T)]) -> Result<Vec<u8>, SnapshotError> {
        let mut out = Vec::new();
        put_u32(&mut out, entries.len());
        for (id, t) in entries {
            let value = (self.ser)(t)?;
            out.extend_from_slice(&id.to_le_bytes());
            put_u32(&mut out, value.len());
            out.extend_from_slice(&value);
        }
        Ok(out)
    }

    /// Decodes entries from [`Serde::write_entries`], at most `max` of them
    /// (and no more than the bytes can frame) allocated for.
    pub fn read_entries(&self, bytes: &[u8], max: usize) -> Result<Vec<(u32, T)>, SnapshotError> {
        let mut f = Frames(bytes);
        let n = f.count("component values", 8, max)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let id = f.u32()?;
            let len = f.u32()? as usize;
            entries.push((id, (self.de)(f.take(len)?)?));
        }
        f.finish()?;
        Ok(entries)
    }
}
