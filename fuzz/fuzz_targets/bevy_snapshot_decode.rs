//! A late-join snapshot from a peer decoded and checked alone, the way
//! loading it does before it touches the world (`bevy_gamenet`'s
//! `rollback::fuzzing`), for the rolled-back types of the `bevy_snapshot`
//! target's app: never a panic; what decodes holds no more than the limits
//! allow, decodes again within limits of exactly what it holds but not
//! within one less, and neither cut short by a byte nor with one more.
//!
//! The first byte picks what is decoded, as in `bevy_snapshot`: the rest of
//! the input as it is, or a valid snapshot (made once) with the rest of the
//! input as `(offset, offset, byte)` triples written into it, or cut short
//! at the offset the next two bytes give and the rest appended.
#![no_main]

use std::cell::RefCell;

use bevy_gamenet::rollback::fuzzing::{Decoded, SnapshotDecoder};
use bevy_gamenet::rollback::{SnapshotError, SnapshotLimits};
use gamenet_fuzz::bevy::{app, snapshot_input};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static DECODER: RefCell<SnapshotDecoder> = RefCell::new(
        SnapshotDecoder::take(&mut app()).expect("the app registers rolled-back types"),
    );
}

/// Checks what `bytes` decoded to within the default `limits`.
fn check(decoder: &mut SnapshotDecoder, bytes: &[u8], limits: SnapshotLimits, d: Decoded) {
    assert!(d.entities <= limits.max_entities, "{d:?}");
    assert!(d.component_values <= limits.max_components, "{d:?}");
    let exact = SnapshotLimits {
        max_bytes: bytes.len(),
        max_entities: d.entities,
        max_components: d.component_values,
    };
    assert_eq!(
        decoder.decode(bytes, exact).ok(),
        Some(d),
        "refused within limits of exactly what it holds"
    );
    let e = decoder.decode(
        bytes,
        SnapshotLimits {
            max_bytes: bytes.len() - 1,
            ..exact
        },
    );
    assert!(matches!(e, Err(SnapshotError::TooLarge { .. })), "{e:?}");
    if d.entities > 0 {
        let e = decoder.decode(
            bytes,
            SnapshotLimits {
                max_entities: d.entities - 1,
                ..exact
            },
        );
        assert!(
            matches!(
                e,
                Err(SnapshotError::TooMany {
                    what: "rollback entities",
                    ..
                })
            ),
            "{e:?}"
        );
    }
    if d.component_values > 0 {
        let e = decoder.decode(
            bytes,
            SnapshotLimits {
                max_components: d.component_values - 1,
                ..exact
            },
        );
        assert!(
            matches!(
                e,
                Err(SnapshotError::TooMany {
                    what: "component values",
                    ..
                })
            ),
            "{e:?}"
        );
    }
    let e = decoder.decode(&bytes[..bytes.len() - 1], limits);
    assert!(e.is_err(), "decodes cut short by a byte: {e:?}");
    let mut longer = bytes.to_vec();
    longer.push(0);
    let e = decoder.decode(&longer, limits);
    assert!(e.is_err(), "decodes with a byte more: {e:?}");
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = snapshot_input(data) else {
        return;
    };
    DECODER.with_borrow_mut(|decoder| {
        let limits = SnapshotLimits::default();
        if let Ok(d) = decoder.decode(&input, limits) {
            check(decoder, &input, limits, d);
        }
    });
});
