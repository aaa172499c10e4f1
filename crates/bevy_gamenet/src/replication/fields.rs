//! What `#[derive(NetState)]` builds states from: [`NetField`], the way a
//! value is stored at full precision, and the quantised forms its field
//! attributes choose (`range`, `precision`, `bits`, `rotation`, `serde`).

use bevy_math::{Quat, Vec2, Vec3};
use gamenet::replication::quantize::{BoundedFloat, BoundedInt, SmallestThree, bits_for};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The stored fields of a state, read in order; past the end it reads 0 (a
/// state's fields are checked against its widths before it is read).
#[derive(Debug, Clone)]
pub struct FieldReader<'a>(std::slice::Iter<'a, u32>);

impl<'a> FieldReader<'a> {
    /// A reader over `fields`.
    pub fn new(fields: &'a [u32]) -> Self {
        Self(fields.iter())
    }

    /// The next field, or 0.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u32 {
        self.0.next().copied().unwrap_or(0)
    }
}

/// A value stored as fields at full precision: what a field of a derived
/// [`NetState`](super::NetState) without an attribute must be.
pub trait NetField: Sized + Clone {
    /// Width in bits (1 to 32) of each stored field.
    const WIDTHS: &'static [u8];
    /// Appends this value's fields.
    fn write(&self, out: &mut Vec<u32>);
    /// The value stored in the next fields.
    fn read(fields: &mut FieldReader<'_>) -> Self;
    /// The value `t` (0 to 1) of the way to `next`; the default jumps.
    fn lerp(&self, next: &Self, t: f32) -> Self {
        if t < 1.0 { self.clone() } else { next.clone() }
    }
}

impl NetField for bool {
    const WIDTHS: &'static [u8] = &[1];
    fn write(&self, out: &mut Vec<u32>) {
        out.push(*self as u32);
    }
    fn read(fields: &mut FieldReader<'_>) -> Self {
        fields.next() != 0
    }
}

/// Integers as their bit pattern, in their own width.
macro_rules! integer_fields {
    ($($t:ty => $u:ty),*) => {$(
        impl NetField for $t {
            const WIDTHS: &'static [u8] = &[<$t>::BITS as u8];
            fn write(&self, out: &mut Vec<u32>) {
                out.push(*self as $u as u32);
            }
            fn read(fields: &mut FieldReader<'_>) -> Self {
                fields.next() as $u as $t
            }
        }
    )*};
}

integer_fields!(u8 => u8, u16 => u16, u32 => u32, i8 => u8, i16 => u16, i32 => u32);

impl NetField for f32 {
    const WIDTHS: &'static [u8] = &[32];
    fn write(&self, out: &mut Vec<u32>) {
        out.push(self.to_bits());
    }
    fn read(fields: &mut FieldReader<'_>) -> Self {
        f32::from_bits(fields.next())
    }
    fn lerp(&self, next: &Self, t: f32) -> Self {
        self + (next - self) * t
    }
}

impl NetField for Vec2 {
    const WIDTHS: &'static [u8] = &[32; 2];
    fn write(&self, out: &mut Vec<u32>) {
        out.extend(self.to_array().map(f32::to_bits));
    }
    fn read(fields: &mut FieldReader<'_>) -> Self {
        Vec2::from_array([0; 2].map(|_| f32::from_bits(fields.next())))
    }
    fn lerp(&self, next: &Self, t: f32) -> Self {
        Vec2::lerp(*self, *next, t)
    }
}

impl NetField for Vec3 {
    const WIDTHS: &'static [u8] = &[32; 3];
    fn write(&self, out: &mut Vec<u32>) {
        out.extend(self.to_array().map(f32::to_bits));
    }
    fn read(fields: &mut FieldReader<'_>) -> Self {
        Vec3::from_array([0; 3].map(|_| f32::from_bits(fields.next())))
    }
    fn lerp(&self, next: &Self, t: f32) -> Self {
        Vec3::lerp(*self, *next, t)
    }
}

impl NetField for Quat {
    const WIDTHS: &'static [u8] = &[32; 4];
    fn write(&self, out: &mut Vec<u32>) {
        out.extend(self.to_array().map(f32::to_bits));
    }
    fn read(fields: &mut FieldReader<'_>) -> Self {
        Quat::from_array([0; 4].map(|_| f32::from_bits(fields.next())))
    }
    fn lerp(&self, next: &Self, t: f32) -> Self {
        slerp(*self, *next, t)
    }
}

/// The rotation `t` of the way from `a` to `b`, the short way; rotations
/// that are not unit length (a peer's bad data) are normalised, or jump.
pub fn slerp(a: Quat, b: Quat, t: f32) -> Quat {
    let unit = |q: Quat| {
        let len = q.length();
        (len.is_finite() && len > 1e-6).then(|| q / len)
    };
    match (unit(a), unit(b)) {
        (Some(a), Some(b)) => a.slerp(b, t),
        _ if t < 1.0 => a,
        _ => b,
    }
}

/// Floats and float vectors stored per axis with one [`BoundedFloat`]
/// (`#[net(range = MIN..MAX, precision = P)]` or `bits = B`).
pub trait QuantizedFloats: NetField {
    /// Stored fields: one per axis.
    const AXES: usize;
    /// Appends the quantised axes.
    fn write_quantized(&self, q: &BoundedFloat, out: &mut Vec<u32>);
    /// The value stored in the next fields.
    fn read_quantized(q: &BoundedFloat, fields: &mut FieldReader<'_>) -> Self;
}

impl QuantizedFloats for f32 {
    const AXES: usize = 1;
    fn write_quantized(&self, q: &BoundedFloat, out: &mut Vec<u32>) {
        out.push(q.quantize(*self));
    }
    fn read_quantized(q: &BoundedFloat, fields: &mut FieldReader<'_>) -> Self {
        q.dequantize(fields.next())
    }
}

impl QuantizedFloats for Vec2 {
    const AXES: usize = 2;
    fn write_quantized(&self, q: &BoundedFloat, out: &mut Vec<u32>) {
        out.extend(self.to_array().map(|v| q.quantize(v)));
    }
    fn read_quantized(q: &BoundedFloat, fields: &mut FieldReader<'_>) -> Self {
        Vec2::from_array([0; 2].map(|_| q.dequantize(fields.next())))
    }
}

impl QuantizedFloats for Vec3 {
    const AXES: usize = 3;
    fn write_quantized(&self, q: &BoundedFloat, out: &mut Vec<u32>) {
        out.extend(self.to_array().map(|v| q.quantize(v)));
    }
    fn read_quantized(q: &BoundedFloat, fields: &mut FieldReader<'_>) -> Self {
        Vec3::from_array([0; 3].map(|_| q.dequantize(fields.next())))
    }
}

/// A rotation in smallest-three form (`#[net(rotation, bits = B)]`): the
/// largest component's index in 2 bits, the other three in `B` each.
pub fn write_rotation(q: &SmallestThree, v: &Quat, out: &mut Vec<u32>) {
    let (largest, rest) = q.quantize(v.to_array());
    out.push(largest as u32);
    out.extend(rest);
}

/// The rotation stored in the next four fields.
pub fn read_rotation(q: &SmallestThree, fields: &mut FieldReader<'_>) -> Quat {
    let largest = fields.next() as u8;
    let rest = [0; 3].map(|_| fields.next());
    Quat::from_array(q.dequantize(largest, rest))
}

/// Integers in a range (`#[net(range = MIN..=MAX)]` or `#[net(bits = B)]`
/// on unsigned ones), stored as their offset from the minimum.
pub trait QuantizedInt: NetField + Copy {
    /// The value as an `i64`.
    fn to_i64(self) -> i64;
    /// The value nearest `v` this type holds.
    fn from_i64(v: i64) -> Self;
}

/// [`QuantizedInt`] for the primitive integers.
macro_rules! quantized_ints {
    ($($t:ty),*) => {$(
        impl QuantizedInt for $t {
            fn to_i64(self) -> i64 {
                self as i64
            }
            fn from_i64(v: i64) -> Self {
                v.clamp(<$t>::MIN as i64, <$t>::MAX as i64) as $t
            }
        }
    )*};
}

quantized_ints!(u8, u16, u32, i8, i16, i32);

/// Appends `v` stored in `q`'s range.
pub fn write_int<T: QuantizedInt>(q: &BoundedInt, v: T, out: &mut Vec<u32>) {
    out.push(q.quantize(v.to_i64()) as u32);
}

/// The integer stored in the next field.
pub fn read_int<T: QuantizedInt>(q: &BoundedInt, fields: &mut FieldReader<'_>) -> T {
    T::from_i64(q.dequantize(fields.next() as u64))
}

/// The widths of a value of up to `bytes` bytes encoded with `bitcode`
/// (`#[net(serde, bytes = N)]`): its length, then 32-bit words.
pub const fn serde_widths<const N: usize>(bytes: usize) -> [u8; N] {
    let mut widths = [32u8; N];
    if N > 0 {
        widths[0] = bits_for(bytes as u64 + 1) as u8;
    }
    widths
}

/// Fields of [`serde_widths`] for `bytes` bytes.
pub const fn serde_fields(bytes: usize) -> usize {
    1 + bytes.div_ceil(4)
}

/// Appends `v` encoded in at most `bytes` bytes; one that does not fit is
/// logged and stored empty (read as its default).
pub fn write_serde<T: Serialize>(v: &T, bytes: usize, out: &mut Vec<u32>) {
    let encoded = match bitcode::serialize(v) {
        Ok(e) if e.len() <= bytes => e,
        Ok(e) => {
            tracing::warn!(
                "replication: a {} of {} bytes does not fit its {bytes}; sent as its default",
                std::any::type_name::<T>(),
                e.len()
            );
            Vec::new()
        }
        Err(error) => {
            tracing::warn!(%error, "replication: encoding a {}", std::any::type_name::<T>());
            Vec::new()
        }
    };
    out.push(encoded.len() as u32);
    let words = bytes.div_ceil(4);
    for i in 0..words {
        let mut word = [0u8; 4];
        for (k, b) in word.iter_mut().enumerate() {
            *b = encoded.get(i * 4 + k).copied().unwrap_or(0);
        }
        out.push(u32::from_le_bytes(word));
    }
}

/// The value stored in the next fields; an empty or bad encoding (a peer's
/// bad data) gives the default.
pub fn read_serde<T: DeserializeOwned + Default>(bytes: usize, fields: &mut FieldReader<'_>) -> T {
    let len = (fields.next() as usize).min(bytes);
    let mut encoded = Vec::with_capacity(bytes.div_ceil(4) * 4);
    for _ in 0..bytes.div_ceil(4) {
        encoded.extend(fields.next().to_le_bytes());
    }
    encoded.truncate(len);
    if len == 0 {
        return T::default();
    }
    bitcode::deserialize(&encoded).unwrap_or_default()
}

/// `bits` bits over `[min, max]`; an empty range stops the build.
pub const fn float_codec(min: f32, max: f32, bits: u32) -> BoundedFloat {
    assert!(min < max, "net(range): the end must be above the start");
    assert!(matches!(bits, 1..=32), "net(bits): 1 to 32");
    BoundedFloat::new(min, max, bits)
}

/// As few bits over `[min, max]` as keep values within `precision`; a range
/// that needs more than 32 bits stops the build.
pub const fn float_codec_with_precision(min: f32, max: f32, precision: f32) -> BoundedFloat {
    assert!(min < max, "net(range): the end must be above the start");
    assert!(precision > 0.0, "net(precision): above 0");
    let steps = ((max as f64 - min as f64) / (2.0 * precision as f64)).ceil() + 1.0;
    assert!(
        steps <= u32::MAX as f64,
        "net(range, precision): more than 32 bits"
    );
    let bits = bits_for(steps as u64);
    float_codec(min, max, if bits < 1 { 1 } else { bits })
}

/// Integers from `min` to `max`; one that needs more than 32 bits stops the
/// build.
pub const fn int_codec(min: i64, max: i64) -> BoundedInt {
    assert!(
        min <= max,
        "net(range): the end must not be below the start"
    );
    let q = BoundedInt::new(min, max);
    assert!(q.bits() <= 32, "net(range): more than 32 bits");
    q
}

/// `v` wrapped to `[-π, π)`.
fn wrap_angle(v: f32) -> f32 {
    use std::f32::consts::{PI, TAU};
    (v + PI).rem_euclid(TAU) - PI
}

/// The angle codec of `bits` bits: a turn, `[-π, π]`.
fn angle_codec(bits: u32) -> BoundedFloat {
    use std::f32::consts::PI;
    BoundedFloat::new(-PI, PI, bits)
}

/// An angle in radians (`#[net(angle, bits = B)]`, 16 by default), wrapped
/// to a turn.
pub fn write_angle(bits: u32, v: f32, out: &mut Vec<u32>) {
    out.push(angle_codec(bits).quantize(wrap_angle(v)));
}

/// The angle stored in the next field.
pub fn read_angle(bits: u32, fields: &mut FieldReader<'_>) -> f32 {
    angle_codec(bits).dequantize(fields.next())
}

/// The angle `t` of the way from `a` to `b`, the short way round.
pub fn lerp_angle(a: f32, b: f32, t: f32) -> f32 {
    wrap_angle(a + wrap_angle(b - a) * t)
}

/// The number of widths in `parts`, for a derived state's `WIDTHS`.
pub const fn widths_len(parts: &[&[u8]]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        n += parts[i].len();
        i += 1;
    }
    n
}

/// `parts` one after the other (`N` widths in all), for a derived state's
/// `WIDTHS`.
pub const fn concat_widths<const N: usize>(parts: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut n = 0;
    let mut i = 0;
    while i < parts.len() {
        let mut k = 0;
        while k < parts[i].len() {
            out[n] = parts[i][k];
            n += 1;
            k += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: NetField>(v: &T) -> T {
        let mut out = Vec::new();
        v.write(&mut out);
        assert_eq!(out.len(), T::WIDTHS.len());
        T::read(&mut FieldReader::new(&out))
    }

    #[test]
    fn full_precision_fields_round_trip() {
        assert!(round_trip(&true));
        assert_eq!(round_trip(&-5i16), -5);
        assert_eq!(round_trip(&-7i32), -7);
        assert_eq!(round_trip(&1.25f32), 1.25);
        assert_eq!(
            round_trip(&Vec3::new(1.0, -2.0, 3.5)),
            Vec3::new(1.0, -2.0, 3.5)
        );
        let q = Quat::from_rotation_y(0.5);
        assert_eq!(round_trip(&q), q);
    }

    #[test]
    fn serde_values_round_trip_and_oversize_ones_come_back_default() {
        let mut out = Vec::new();
        write_serde(&String::from("hi"), 8, &mut out);
        assert_eq!(out.len(), serde_fields(8));
        assert_eq!(read_serde::<String>(8, &mut FieldReader::new(&out)), "hi");
        let mut out = Vec::new();
        write_serde(&"x".repeat(40), 8, &mut out);
        assert_eq!(read_serde::<String>(8, &mut FieldReader::new(&out)), "");
        // A length past the size, or garbage: the default, no panic.
        let bad = [u32::MAX, 0xdead_beef, 7, 9];
        assert_eq!(read_serde::<String>(8, &mut FieldReader::new(&bad)), "");
    }

    #[test]
    fn widths_concatenate_in_a_const() {
        const PARTS: &[&[u8]] = &[&[1, 2], &[], &[3]];
        const N: usize = widths_len(PARTS);
        const W: [u8; N] = concat_widths::<N>(PARTS);
        assert_eq!(W, [1, 2, 3]);
        assert_eq!(serde_widths::<3>(8), [4, 32, 32]);
    }

    #[test]
    fn angles_interpolate_the_short_way_round() {
        use std::f32::consts::PI;
        let mid = lerp_angle(PI - 0.1, -PI + 0.1, 0.5);
        assert!((mid.abs() - PI).abs() < 1e-4, "{mid}");
        let mut out = Vec::new();
        write_angle(16, 3.0 * PI / 2.0, &mut out);
        let back = read_angle(16, &mut FieldReader::new(&out));
        assert!((back + PI / 2.0).abs() < 1e-3, "{back}");
    }

    #[test]
    fn bad_rotations_never_panic() {
        let nan = Quat::from_array([f32::NAN; 4]);
        let q = slerp(nan, Quat::IDENTITY, 0.5);
        assert!(q.is_nan());
        assert!(slerp(Quat::IDENTITY, nan, 1.0).is_nan());
    }
}
