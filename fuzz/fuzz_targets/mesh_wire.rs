//! The mesh's wire format: any bytes decode to a packet or an error, never a
//! panic; a packet that decodes encodes back to bytes that decode to it.
#![no_main]

use gamenet_core::wire::{ReliablePacket, UnreliablePacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = ReliablePacket::decode(data) {
        let bytes = p.encode();
        assert_eq!(bytes.len(), p.encoded_len());
        assert_eq!(ReliablePacket::decode(&bytes), Ok(p));
    }
    if let Ok(p) = UnreliablePacket::decode(data) {
        let bytes = p.encode();
        assert_eq!(bytes.len(), p.encoded_len());
        assert_eq!(UnreliablePacket::decode(&bytes), Ok(p));
    }
});
