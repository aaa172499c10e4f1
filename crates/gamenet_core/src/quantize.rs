//! Bit packing and quantisation: the building blocks of compact state
//! snapshots.
//!
//! [`BitWriter`] and [`BitReader`] pack values of any width up to 64 bits;
//! the reader checks every read against the bytes it has. The quantisers turn
//! floats, positions, rotations and bounded integers into as few bits as a
//! chosen precision needs:
//!
//! ```
//! use gamenet_core::quantize::{BitReader, BitWriter, BoundedFloat, SmallestThree};
//!
//! let x = BoundedFloat::with_precision(-256.0, 256.0, 0.001); // 18 bits
//! let rot = SmallestThree::new(9); // 2 + 3 × 9 = 29 bits
//! let mut w = BitWriter::new();
//! x.write(&mut w, 12.3456);
//! rot.write(&mut w, [0.0, 0.7071068, 0.0, 0.7071068]);
//! let bytes = w.finish();
//! assert_eq!(bytes.len(), 6);
//!
//! let mut r = BitReader::new(&bytes);
//! assert!((x.read(&mut r).unwrap() - 12.3456).abs() <= 0.001);
//! let q = rot.read(&mut r).unwrap();
//! assert!((q[1] - 0.7071068).abs() < 0.01 && (q[3] - 0.7071068).abs() < 0.01);
//! ```

pub use crate::bits::{BitReader, BitWriter};
use crate::codec::DecodeError;

/// Bits needed to tell `count` values apart; usable in a `const`.
pub const fn bits_for(count: u64) -> u32 {
    if count <= 1 {
        0
    } else {
        64 - (count - 1).leading_zeros()
    }
}

/// A float in `[min, max]`, stored in `bits` bits; values outside are
/// clamped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundedFloat {
    min: f32,
    max: f32,
    bits: u32,
}

impl BoundedFloat {
    /// `bits` bits (1 to 32) over `[min, max]`; usable in a `const`.
    pub const fn new(min: f32, max: f32, bits: u32) -> Self {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        let bits = if bits < 1 {
            1
        } else if bits > 32 {
            32
        } else {
            bits
        };
        Self { min, max, bits }
    }

    /// As few bits as keep every value within `precision` of the original.
    pub fn with_precision(min: f32, max: f32, precision: f32) -> Self {
        let range = (max as f64 - min as f64).abs();
        let steps = (range / (2.0 * precision.abs().max(f32::MIN_POSITIVE) as f64)).ceil() + 1.0;
        Self::new(min, max, bits_for(steps.min(u32::MAX as f64) as u64))
    }

    /// Bits per value.
    pub const fn bits(&self) -> u32 {
        self.bits
    }

    /// The largest error of a round trip (half a step).
    pub fn precision(&self) -> f32 {
        ((self.max as f64 - self.min as f64) / self.max_step() as f64 / 2.0) as f32
    }

    fn max_step(&self) -> u64 {
        (1u64 << self.bits) - 1
    }

    /// The stored integer of `v`.
    pub fn quantize(&self, v: f32) -> u32 {
        let v = if v.is_nan() {
            self.min
        } else {
            v.clamp(self.min, self.max)
        };
        let range = self.max as f64 - self.min as f64;
        if range <= 0.0 {
            return 0;
        }
        let t = (v as f64 - self.min as f64) / range;
        (t * self.max_step() as f64).round() as u32
    }

    /// The float a stored integer stands for.
    pub fn dequantize(&self, q: u32) -> f32 {
        let q = (q as u64).min(self.max_step());
        let range = self.max as f64 - self.min as f64;
        let v = (self.min as f64 + range * q as f64 / self.max_step() as f64) as f32;
        // Rounding can step past a bound when the range dwarfs it; `max` and
        // `min` (not `clamp`) leave NaN bounds alone.
        v.max(self.min).min(self.max)
    }

    /// Writes `v`.
    pub fn write(&self, w: &mut BitWriter, v: f32) {
        w.write(self.quantize(v) as u64, self.bits);
    }

    /// Reads a value.
    pub fn read(&self, r: &mut BitReader<'_>) -> Result<f32, DecodeError> {
        Ok(self.dequantize(r.read(self.bits)? as u32))
    }
}

/// An integer in `[min, max]` in as few bits as the range needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BoundedInt {
    min: i64,
    max: i64,
}

impl BoundedInt {
    /// Integers from `min` to `max` inclusive; usable in a `const`.
    pub const fn new(min: i64, max: i64) -> Self {
        if min <= max {
            Self { min, max }
        } else {
            Self { min: max, max: min }
        }
    }

    /// Bits per value.
    pub const fn bits(&self) -> u32 {
        let count = self.max as i128 - self.min as i128 + 1;
        let count = if count > u64::MAX as i128 {
            u64::MAX
        } else {
            count as u64
        };
        bits_for(count)
    }

    /// The stored integer of `v`, clamped to the range.
    pub fn quantize(&self, v: i64) -> u64 {
        (v.clamp(self.min, self.max) as i128 - self.min as i128) as u64
    }

    /// The integer a stored one stands for, clamped to the range.
    pub fn dequantize(&self, q: u64) -> i64 {
        (self.min as i128 + q as i128).min(self.max as i128) as i64
    }

    /// Writes `v`, clamped to the range.
    pub fn write(&self, w: &mut BitWriter, v: i64) {
        let v = v.clamp(self.min, self.max);
        w.write((v as i128 - self.min as i128) as u64, self.bits());
    }

    /// Reads a value; one outside the range is an error.
    pub fn read(&self, r: &mut BitReader<'_>) -> Result<i64, DecodeError> {
        let v = self.min as i128 + r.read(self.bits())? as i128;
        if v > self.max as i128 {
            return Err(DecodeError::Invalid("integer out of range"));
        }
        Ok(v as i64)
    }
}

/// A position: three bounded floats.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Position {
    /// Per axis: x, y, z.
    pub axes: [BoundedFloat; 3],
}

impl Position {
    /// `axis` on every axis; usable in a `const`.
    pub const fn uniform(axis: BoundedFloat) -> Self {
        Self { axes: [axis; 3] }
    }

    /// The same bounds and precision on every axis.
    pub fn cube(half_extent: f32, precision: f32) -> Self {
        let axis = BoundedFloat::with_precision(-half_extent, half_extent, precision);
        Self { axes: [axis; 3] }
    }

    /// Bits per position.
    pub const fn bits(&self) -> u32 {
        self.axes[0].bits() + self.axes[1].bits() + self.axes[2].bits()
    }

    /// The stored integers of `p`.
    pub fn quantize(&self, p: [f32; 3]) -> [u32; 3] {
        [0, 1, 2].map(|i| self.axes[i].quantize(p[i]))
    }

    /// Writes `p`.
    pub fn write(&self, w: &mut BitWriter, p: [f32; 3]) {
        for (axis, v) in self.axes.iter().zip(p) {
            axis.write(w, v);
        }
    }

    /// Reads a position.
    pub fn read(&self, r: &mut BitReader<'_>) -> Result<[f32; 3], DecodeError> {
        Ok([
            self.axes[0].read(r)?,
            self.axes[1].read(r)?,
            self.axes[2].read(r)?,
        ])
    }
}

/// A unit quaternion `[x, y, z, w]` in "smallest three" form: the index of
/// the largest component (2 bits) and the other three, each in
/// `[-1/√2, 1/√2]`, in `bits` bits; the largest is rebuilt from unit length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SmallestThree {
    component: BoundedFloat,
}

impl SmallestThree {
    /// `bits` bits per stored component (2 + 3 × `bits` in all); usable in
    /// a `const`.
    pub const fn new(bits: u32) -> Self {
        let m = std::f32::consts::FRAC_1_SQRT_2;
        Self {
            component: BoundedFloat::new(-m, m, bits),
        }
    }

    /// Bits per rotation.
    pub const fn bits(&self) -> u32 {
        2 + 3 * self.component.bits()
    }

    /// The stored form of `q`: the largest component's index and the
    /// quantised other three. `q` and `-q` are the same rotation and give the
    /// same stored form.
    pub fn quantize(&self, q: [f32; 4]) -> (u8, [u32; 3]) {
        // In f64: the squares of large or tiny f32 components overflow or
        // vanish in f32, and the rotation would be lost.
        let norm = q.iter().map(|&c| c as f64 * c as f64).sum::<f64>().sqrt();
        let q = if norm.is_finite() && norm > 0.0 {
            q.map(|c| (c as f64 / norm) as f32)
        } else {
            [0.0, 0.0, 0.0, 1.0]
        };
        let largest = (0..4)
            .max_by(|&a, &b| q[a].abs().total_cmp(&q[b].abs()))
            .unwrap_or(3);
        let sign = if q[largest] < 0.0 { -1.0 } else { 1.0 };
        let mut rest = [0u32; 3];
        let mut k = 0;
        for (i, c) in q.iter().enumerate() {
            if i != largest {
                rest[k] = self.component.quantize(c * sign);
                k += 1;
            }
        }
        (largest as u8, rest)
    }

    /// The rotation a stored form stands for.
    pub fn dequantize(&self, largest: u8, rest: [u32; 3]) -> [f32; 4] {
        let largest = (largest & 3) as usize;
        let mut q = [0.0f32; 4];
        let mut k = 0;
        let mut sum = 0.0;
        for (i, c) in q.iter_mut().enumerate() {
            if i != largest {
                *c = self.component.dequantize(rest[k]);
                sum += *c * *c;
                k += 1;
            }
        }
        q[largest] = (1.0 - sum).max(0.0).sqrt();
        q
    }

    /// Writes `q`.
    pub fn write(&self, w: &mut BitWriter, q: [f32; 4]) {
        let (largest, rest) = self.quantize(q);
        w.write(largest as u64, 2);
        for r in rest {
            w.write(r as u64, self.component.bits());
        }
    }

    /// Reads a rotation.
    pub fn read(&self, r: &mut BitReader<'_>) -> Result<[f32; 4], DecodeError> {
        let largest = r.read(2)? as u8;
        let mut rest = [0u32; 3];
        for c in &mut rest {
            *c = r.read(self.component.bits())? as u32;
        }
        Ok(self.dequantize(largest, rest))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn bits_round_trip(values in proptest::collection::vec((any::<u64>(), 0u32..=64), 0..100)) {
            let mut w = BitWriter::new();
            for &(v, b) in &values {
                w.write(v, b);
            }
            let total: u32 = values.iter().map(|v| v.1).sum();
            prop_assert_eq!(w.bit_len(), total as usize);
            // The same bits written in two halves and appended.
            let mut halves = (BitWriter::new(), BitWriter::new());
            for (i, &(v, b)) in values.iter().enumerate() {
                let half = if i < values.len() / 2 { &mut halves.0 } else { &mut halves.1 };
                half.write(v, b);
            }
            halves.0.append(&halves.1);
            let bytes = w.finish();
            prop_assert_eq!(&halves.0.finish(), &bytes);
            prop_assert_eq!(bytes.len(), total.div_ceil(8) as usize);
            let mut r = BitReader::new(&bytes);
            for &(v, b) in &values {
                let mask = if b == 64 { u64::MAX } else { (1u64 << b) - 1 };
                prop_assert_eq!(r.read(b).unwrap(), v & mask);
            }
            prop_assert!(r.remaining() < 8);
        }

        #[test]
        fn reader_never_reads_past_the_end(bytes in proptest::collection::vec(any::<u8>(), 0..20), widths in proptest::collection::vec(0u32..70, 0..40)) {
            let mut r = BitReader::new(&bytes);
            for b in widths {
                let before = r.remaining();
                match r.read(b) {
                    Ok(_) => prop_assert_eq!(r.remaining(), before - b as usize),
                    Err(_) => prop_assert_eq!(r.remaining(), before),
                }
            }
        }

        #[test]
        fn bounded_floats_keep_their_precision(v in -300.0f32..300.0, precision in 0.0001f32..1.0) {
            let f = BoundedFloat::with_precision(-256.0, 256.0, precision);
            let back = f.dequantize(f.quantize(v));
            prop_assert!((back - v.clamp(-256.0, 256.0)).abs() <= precision * 1.0001, "{v} -> {back}");
            prop_assert!(f.precision() <= precision * 1.0001);
        }

        #[test]
        fn smallest_three_keeps_the_rotation(x in -1.0f32..1.0, y in -1.0f32..1.0, z in -1.0f32..1.0, w in -1.0f32..1.0) {
            let norm = (x * x + y * y + z * z + w * w).sqrt();
            prop_assume!(norm > 0.01);
            let q = [x / norm, y / norm, z / norm, w / norm];
            let s = SmallestThree::new(10);
            let (l, rest) = s.quantize(q);
            let back = s.dequantize(l, rest);
            // Same rotation up to sign: |dot| close to 1.
            let dot: f32 = q.iter().zip(&back).map(|(a, b)| a * b).sum();
            prop_assert!(dot.abs() > 0.9999, "{q:?} -> {back:?}");
        }

        #[test]
        fn bounded_ints_round_trip(min in -1000i64..1000, span in 0i64..100_000, v in -200_000i64..200_000) {
            let b = BoundedInt::new(min, min + span);
            let mut w = BitWriter::new();
            b.write(&mut w, v);
            let bytes = w.finish();
            prop_assert_eq!(b.read(&mut BitReader::new(&bytes)).unwrap(), v.clamp(min, min + span));
        }
    }

    /// Found by the `bits_quantize` fuzz target
    /// (`fuzz/regressions/bits_quantize/`): the squared norm of a quaternion
    /// with a large component overflowed f32, and it was sent as the identity.
    #[test]
    fn a_quaternion_far_from_unit_length_keeps_its_rotation() {
        let s = SmallestThree::new(23);
        for q in [[4.0019713e25, 0.0, 0.0, 0.0], [0.0, 3.0e-30, 0.0, 4.0e-30]] {
            let (l, rest) = s.quantize(q);
            let back = s.dequantize(l, rest);
            let norm = q.iter().map(|&c| c as f64 * c as f64).sum::<f64>().sqrt();
            for (a, b) in q.iter().zip(back) {
                assert!(
                    (*a as f64 / norm - b as f64).abs() < 1e-5,
                    "{q:?} -> {back:?}"
                );
            }
        }
    }

    /// Found by the `bits_quantize` fuzz target
    /// (`fuzz/regressions/bits_quantize/`): over a range far wider than a
    /// bound, rounding read the top step back above the maximum.
    #[test]
    fn dequantized_floats_stay_within_their_bounds() {
        let f = BoundedFloat::new(-7.2572242e31, 3.57e-43, 32);
        for q in [0, 1, u32::MAX / 2, u32::MAX - 1, u32::MAX] {
            let v = f.dequantize(q);
            assert!((-7.2572242e31..=3.57e-43).contains(&v), "{q} -> {v}");
        }
    }

    #[test]
    fn widths_are_what_the_precision_needs() {
        // Gaffer on Games' cube positions: ±256 m at 1 mm.
        assert_eq!(
            BoundedFloat::with_precision(-256.0, 256.0, 0.001).bits(),
            18
        );
        assert_eq!(SmallestThree::new(9).bits(), 29);
        assert_eq!(BoundedInt::new(0, 255).bits(), 8);
        assert_eq!(BoundedInt::new(5, 5).bits(), 0);
        assert_eq!(bits_for(2), 1);
    }
}
