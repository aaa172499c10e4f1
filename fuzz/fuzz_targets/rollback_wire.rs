//! The rollback wire format alone: any bytes decode to a message or an
//! error, never a panic, within the default limits; a message that decodes
//! encodes back to bytes that decode to it. The same bytes are also read as
//! input records (the first three bytes giving the width and the count):
//! records that decode encode back to bytes that decode to them.
#![no_main]

use gamenet_core::rollback::RollbackConfig;
use gamenet_core::rollback::fuzzing::{Message, decode_records, encode_records};
use gamenet_core::rollback::{Input, MAX_PLAYERS};
use libfuzzer_sys::fuzz_target;

/// Most frames a run in a snapshot or a lost message carries.
const MAX_RUN: usize = 4096;

fn message<I: Input>(data: &[u8], config: &RollbackConfig) {
    let decode = |bytes: &[u8]| {
        Message::<I>::decode(
            bytes,
            config.max_snapshot_bytes,
            config.max_decoded_input_bytes,
        )
    };
    if let Ok(m) = decode(data) {
        let bytes = m.encode();
        assert_eq!(decode(&bytes), Ok(m));
    }
}

fn records<I: Input>(data: &[u8], config: &RollbackConfig) {
    let [w, c0, c1, rest @ ..] = data else {
        return;
    };
    let width = *w as usize % (MAX_PLAYERS + 1);
    let count = u16::from_le_bytes([*c0, *c1]) as usize % (MAX_RUN + 1);
    let mut budget = config.max_decoded_input_bytes;
    if let Ok(records) = decode_records::<I>(rest, width, count, &mut budget) {
        assert_eq!(records.len(), count);
        assert!(records.iter().all(|r| r.len() == width));
        let mut bytes = Vec::new();
        encode_records(&records, &mut bytes);
        let mut budget = config.max_decoded_input_bytes;
        assert_eq!(
            decode_records::<I>(&bytes, width, count, &mut budget),
            Ok(records)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let config = RollbackConfig::default();
    message::<u16>(data, &config);
    message::<[u8; 3]>(data, &config);
    records::<u8>(data, &config);
    records::<[u8; 3]>(data, &config);
});
