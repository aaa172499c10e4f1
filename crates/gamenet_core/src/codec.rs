//! Little-endian byte reading and writing for the wire formats, and the one
//! decoding error every decoder returns. Readers never read past their bytes and
//! never allocate from a length read off the wire.

use thiserror::Error;

use crate::PeerId;

/// Why a packet could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The packet had no bytes at all.
    #[error("empty packet")]
    Empty,
    /// The type byte names no packet of this channel.
    #[error("unknown packet type {0:#04x}")]
    UnknownType(u8),
    /// The packet ended before a field it must carry.
    #[error("packet truncated: {0}")]
    Truncated(&'static str),
    /// The packet carried bytes after its last field.
    #[error("{0} trailing bytes")]
    Trailing(usize),
    /// A field held a value the protocol does not allow.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

/// Reads fields off a received message, checking every length against the bytes.
pub(crate) struct Reader<'a> {
    pub(crate) bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.bytes.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], DecodeError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, DecodeError> {
        if self.bytes.is_empty() {
            Ok(value)
        } else {
            Err(DecodeError::Trailing(self.bytes.len()))
        }
    }
}

/// Appends little-endian fields to a message being built.
#[derive(Default)]
pub(crate) struct Writer(pub Vec<u8>);

impl Writer {
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn peer(&mut self, p: PeerId) -> &mut Self {
        self.0.extend_from_slice(&p.0.to_le_bytes());
        self
    }
    pub fn blob(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
        self
    }
}
