//! Bit packing and the quantisers. The first byte picks a property:
//!
//! 0. arbitrary bytes read at arbitrary widths, and through every quantiser:
//!    errors, never a panic, and never more bits than there are;
//! 1. values written at their widths read back the same, appended or not;
//! 2. a bounded float reads back within its precision (and `with_precision`
//!    keeps the precision asked for);
//! 3. a bounded integer reads back exactly (clamped to its range);
//! 4. a unit quaternion reads back as the same rotation, within the quantum.
#![no_main]

use gamenet_core::quantize::{
    BitReader, BitWriter, BoundedFloat, BoundedInt, Position, SmallestThree,
};
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut u = Unstructured::new(rest);
    let _ = match mode % 5 {
        0 => arbitrary_bits(&mut u),
        1 => bits_round_trip(&mut u),
        2 => float_round_trip(&mut u),
        3 => int_round_trip(&mut u),
        _ => rotation_round_trip(&mut u),
    };
});

fn arbitrary_bits(u: &mut Unstructured<'_>) -> Result<()> {
    let widths: Vec<u8> = u.arbitrary()?;
    let float = BoundedFloat::new(u.arbitrary()?, u.arbitrary()?, u.int_in_range(0..=40)?);
    let (a, b): (i64, i64) = (u.arbitrary()?, u.arbitrary()?);
    let int = BoundedInt::new(a, b);
    let rot = SmallestThree::new(u.int_in_range(0..=40)?);
    let pos = Position::cube(u.arbitrary()?, u.arbitrary()?);
    let bytes = u.bytes(u.len())?;
    let mut r = BitReader::new(bytes);
    for w in widths {
        let before = r.remaining();
        let bits = w as u32 % 70;
        match r.read(bits) {
            Ok(v) => {
                assert!(bits <= 64 && before >= bits as usize);
                assert_eq!(r.remaining(), before - bits as usize);
                assert!(bits == 64 || v >> bits == 0);
            }
            Err(_) => assert_eq!(r.remaining(), before),
        }
        match w % 5 {
            0 => drop(float.read(&mut r)),
            1 => {
                if let Ok(v) = int.read(&mut r) {
                    assert!(v >= a.min(b) && v <= a.max(b), "{int:?} read {v}");
                }
            }
            2 => {
                if let Ok(q) = rot.read(&mut r) {
                    assert!(q.iter().all(|c| c.is_finite()));
                }
            }
            3 => drop(pos.read(&mut r)),
            _ => drop(r.read_bool()),
        }
        assert!(r.remaining() <= bytes.len() * 8);
    }
    Ok(())
}

fn bits_round_trip(u: &mut Unstructured<'_>) -> Result<()> {
    let values: Vec<(u64, u8)> = u.arbitrary()?;
    let values: Vec<(u64, u32)> = values
        .into_iter()
        .map(|(v, b)| (v, b as u32 % 65))
        .collect();
    let split = u.int_in_range(0..=values.len())?;
    let mut whole = BitWriter::new();
    let (mut head, mut tail) = (BitWriter::new(), BitWriter::new());
    for (i, &(v, b)) in values.iter().enumerate() {
        whole.write(v, b);
        if i < split {
            head.write(v, b)
        } else {
            tail.write(v, b)
        }
    }
    let total: usize = values.iter().map(|v| v.1 as usize).sum();
    assert_eq!(whole.bit_len(), total);
    head.append(&tail);
    let bytes = whole.finish();
    assert_eq!(bytes.len(), total.div_ceil(8));
    assert_eq!(head.finish(), bytes);
    // A window of the bits copied with `append_bits`.
    let start = u.int_in_range(0..=total + 16)?;
    let len = u.int_in_range(0..=total.saturating_sub(start) + 80)?;
    let mut window = BitWriter::new();
    window.append_bits(&bytes, start, len);
    assert_eq!(window.bit_len(), len);
    let copied = window.finish();
    let (mut a, mut b) = (BitReader::new(&bytes), BitReader::new(&copied));
    let mut skip = start.min(bytes.len() * 8);
    while skip > 0 {
        let n = skip.min(64);
        a.read(n as u32).unwrap_or_else(|e| panic!("skip: {e}"));
        skip -= n;
    }
    let mut left = len;
    while left > 0 {
        let n = left.min(64) as u32;
        // Past the end of the source the copy holds zeros.
        let want = if a.remaining() >= n as usize {
            a.read(n).unwrap_or_else(|e| panic!("{e}"))
        } else {
            let have = a.remaining() as u32;
            a.read(have).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(b.read(n), Ok(want));
        left -= n as usize;
    }
    let mut r = BitReader::new(&bytes);
    for &(v, b) in &values {
        let mask = if b == 64 { u64::MAX } else { (1u64 << b) - 1 };
        assert_eq!(r.read(b), Ok(v & mask));
    }
    assert!(r.remaining() < 8);
    Ok(())
}

fn finite(u: &mut Unstructured<'_>) -> Result<f32> {
    let v: f32 = u.arbitrary()?;
    Ok(if v.is_finite() { v } else { 0.0 })
}

fn float_round_trip(u: &mut Unstructured<'_>) -> Result<()> {
    let (min, max) = (finite(u)?, finite(u)?);
    let precision = finite(u)?;
    let q = if u.arbitrary()? {
        BoundedFloat::new(min, max, u.int_in_range(0..=40)?)
    } else {
        let q = BoundedFloat::with_precision(min, max, precision);
        // Precisions finer than the smallest normal float count as it.
        let asked = precision.abs().max(f32::MIN_POSITIVE);
        if q.bits() < 32 {
            assert!(
                q.precision() <= asked * (1.0 + 1e-6),
                "{q:?}: precision {} asked {precision}",
                q.precision()
            );
        }
        q
    };
    let (lo, hi) = (min.min(max), min.max(max));
    // f32 rounding of the result on top of the quantum.
    let slack = q.precision() * (1.0 + 1e-6) + lo.abs().max(hi.abs()) * f32::EPSILON * 2.0;
    for _ in 0..8 {
        let v: f32 = u.arbitrary()?;
        let mut w = BitWriter::new();
        q.write(&mut w, v);
        assert_eq!(w.bit_len(), q.bits() as usize);
        let bytes = w.finish();
        let back = q
            .read(&mut BitReader::new(&bytes))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(back >= lo && back <= hi, "{q:?}: {v} read back as {back}");
        let clamped = if v.is_nan() { lo } else { v.clamp(lo, hi) };
        assert!(
            (back as f64 - clamped as f64).abs() <= slack as f64,
            "{q:?}: {v} read back as {back}, precision {}",
            q.precision()
        );
    }
    Ok(())
}

fn int_round_trip(u: &mut Unstructured<'_>) -> Result<()> {
    let (a, b): (i64, i64) = (u.arbitrary()?, u.arbitrary()?);
    let q = BoundedInt::new(a, b);
    for _ in 0..8 {
        let v: i64 = u.arbitrary()?;
        let mut w = BitWriter::new();
        q.write(&mut w, v);
        assert_eq!(w.bit_len(), q.bits() as usize);
        let bytes = w.finish();
        assert_eq!(
            q.read(&mut BitReader::new(&bytes)),
            Ok(v.clamp(a.min(b), a.max(b))),
            "{q:?}: {v}"
        );
    }
    Ok(())
}

fn rotation_round_trip(u: &mut Unstructured<'_>) -> Result<()> {
    let rot = SmallestThree::new(u.int_in_range(0..=40)?);
    let q: [f32; 4] = [finite(u)?, finite(u)?, finite(u)?, finite(u)?];
    let mut w = BitWriter::new();
    rot.write(&mut w, q);
    assert_eq!(w.bit_len(), rot.bits() as usize);
    let bytes = w.finish();
    let back = rot
        .read(&mut BitReader::new(&bytes))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(back.iter().all(|c| c.is_finite()));
    let norm = q.iter().map(|c| (*c as f64).powi(2)).sum::<f64>().sqrt();
    if !(norm.is_finite() && norm > 1e-3) {
        return Ok(());
    }
    let unit = q.map(|c| c as f64 / norm);
    let bits = (rot.bits() - 2) / 3;
    if bits < 4 {
        return Ok(());
    }
    // Each stored component is within half a step; the rebuilt one adds at
    // most about three times that.
    let step = std::f64::consts::SQRT_2 / ((1u64 << bits) - 1) as f64 / 2.0;
    let dot: f64 = unit.iter().zip(back).map(|(a, b)| a * b as f64).sum();
    let dist = unit
        .iter()
        .zip(back)
        .map(|(a, b)| (a * dot.signum() - b as f64).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        dist <= 4.0 * step + 1e-5,
        "{q:?} read back as {back:?} ({bits} bits, {dist} off)"
    );
    Ok(())
}
