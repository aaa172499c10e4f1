//! Bit packing: values of any width up to 64 bits, least significant bit
//! first; the reader checks every read against the bytes it has.

use crate::codec::DecodeError;

/// Packs values of 1 to 64 bits, least significant bit first.
#[derive(Debug, Clone, Default)]
pub struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    filled: u32,
}

impl BitWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes the low `bits` bits of `value` (`bits` up to 64; higher bits
    /// of `value` are ignored).
    pub fn write(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 64);
        let bits = bits.min(64);
        if bits == 0 {
            return;
        }
        let value = if bits == 64 {
            value
        } else {
            value & ((1u64 << bits) - 1)
        };
        let room = 64 - self.filled;
        if bits <= room {
            self.acc |= value << self.filled;
            self.filled += bits;
        } else {
            self.acc |= value << self.filled;
            self.flush_full();
            self.acc = value >> room;
            self.filled = bits - room;
        }
        if self.filled == 64 {
            self.flush_full();
            self.acc = 0;
            self.filled = 0;
        }
    }

    fn flush_full(&mut self) {
        self.bytes.extend_from_slice(&self.acc.to_le_bytes());
    }

    /// Appends every bit another writer holds.
    pub fn append(&mut self, other: &BitWriter) {
        for chunk in other.bytes.chunks_exact(8) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.write(u64::from_le_bytes(word), 64);
        }
        self.write(other.acc, other.filled);
    }

    /// Appends `len` bits of packed `bytes` (as [`BitWriter::finish`] gives
    /// them) from bit `start`; bits past the end of `bytes` are zeros.
    pub fn append_bits(&mut self, bytes: &[u8], start: usize, len: usize) {
        let mut r = BitReader {
            bytes,
            pos: start.min(bytes.len() * 8),
        };
        let mut left = len;
        while left > 0 {
            let n = left.min(64);
            // A chunk that runs past the end keeps the bits before it.
            let have = r.remaining().min(n);
            self.write(r.read(have as u32).unwrap_or(0), n as u32);
            left -= n;
        }
    }

    /// Writes one bit.
    pub fn write_bool(&mut self, bit: bool) {
        self.write(bit as u64, 1);
    }

    /// Bits written so far.
    pub fn bit_len(&self) -> usize {
        self.bytes.len() * 8 + self.filled as usize
    }

    /// The packed bytes (the last one padded with zero bits).
    pub fn finish(mut self) -> Vec<u8> {
        let tail = self.filled.div_ceil(8) as usize;
        self.bytes
            .extend_from_slice(&self.acc.to_le_bytes()[..tail]);
        self.bytes
    }
}

/// Reads what a [`BitWriter`] packed; never reads past its bytes.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    /// A reader of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// Reads `bits` bits (up to 64).
    pub fn read(&mut self, bits: u32) -> Result<u64, DecodeError> {
        if bits > 64 {
            return Err(DecodeError::Invalid("bit width"));
        }
        let bits = bits as usize;
        if self.remaining() < bits {
            return Err(DecodeError::Truncated("bits"));
        }
        let (byte, offset) = (self.pos / 8, self.pos % 8);
        // Fast path: one unaligned 8-byte load holds the bits.
        if bits + offset <= 64
            && let Some(chunk) = self.bytes.get(byte..byte + 8)
        {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            let value = u64::from_le_bytes(word) >> offset;
            self.pos += bits;
            return Ok(if bits == 64 {
                value
            } else {
                value & ((1u64 << bits) - 1)
            });
        }
        let mut value = 0u64;
        let mut got = 0usize;
        while got < bits {
            let byte = self.bytes[self.pos / 8] as u64;
            let offset = self.pos % 8;
            let take = (8 - offset).min(bits - got);
            let chunk = (byte >> offset) & ((1u64 << take) - 1);
            value |= chunk << got;
            got += take;
            self.pos += take;
        }
        Ok(value)
    }

    /// Reads one bit.
    pub fn read_bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.read(1)? == 1)
    }

    /// Bits left.
    pub fn remaining(&self) -> usize {
        self.bytes.len() * 8 - self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `bits_quantize` fuzz target
    /// (`fuzz/regressions/bits_quantize/`): a 64-bit chunk that ran past the
    /// end of the source was copied as all zeros, its bits before the end too.
    #[test]
    fn append_bits_keeps_the_bits_before_the_end() {
        let bytes = [0xff, 0x0f];
        let mut w = BitWriter::new();
        w.append_bits(&bytes, 4, 70);
        assert_eq!(w.bit_len(), 70);
        let out = w.finish();
        let mut r = BitReader::new(&out);
        assert_eq!(r.read(12), Ok(0xff));
        assert_eq!(r.read(58), Ok(0));
        // A start past the end copies zeros.
        let mut w = BitWriter::new();
        w.append_bits(&bytes, 100, 9);
        assert_eq!(w.finish(), [0, 0]);
    }
}
