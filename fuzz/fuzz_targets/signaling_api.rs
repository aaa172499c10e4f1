//! The signaling server's HTTP API bodies and arguments: `POST /api/lobbies`
//! bodies (`lobby_request`) into a room table (`Rooms::create_lobby`), join
//! codes from `GET /api/lobbies/<CODE>`, and listing by mode. The input is
//! `(control, bytes)` chunks: control % 3 picks create, look up or list.
#![no_main]

use std::time::{Duration, Instant};

use gamenet_fuzz::Chunks;
use gamenet_signaling::lobby_request;
use gamenet_signaling::rooms::{JoinCode, RoomLimits, Rooms};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut rooms = Rooms::new(RoomLimits {
        max_lobbies: 8,
        ..RoomLimits::default()
    });
    let start = Instant::now();
    let mut codes = Vec::new();
    let mut counter = 0u32;
    for (i, (control, bytes)) in Chunks::new(data).take(32).enumerate() {
        let now = start + Duration::from_secs(60 * i as u64);
        match control % 3 {
            0 => {
                let Ok(spec) = lobby_request(bytes) else {
                    continue;
                };
                let random = || {
                    counter = counter
                        .wrapping_mul(2_654_435_761)
                        .wrapping_add(control as u32);
                    counter
                };
                if let Ok(info) = rooms.create_lobby(spec.clone(), now, random) {
                    assert_eq!((&info.name, &info.mode), (&spec.name, &spec.mode));
                    assert_eq!(rooms.lobby(info.code), Some(info.clone()));
                    assert_eq!(info.code.as_str().parse::<JoinCode>().ok(), Some(info.code));
                    codes.push(info.code);
                }
            }
            1 => {
                let text = String::from_utf8_lossy(bytes);
                if let Ok(code) = text.parse::<JoinCode>() {
                    let _ = rooms.lobby(code);
                    let _ = code.to_string();
                }
            }
            _ => {
                let text = String::from_utf8_lossy(bytes);
                let limit = text.parse::<usize>().unwrap_or(50).min(100);
                let listed = rooms.public_lobbies(Some(&text), limit);
                assert!(listed.iter().all(|l| l.public && l.mode == text));
                let _ = rooms.public_lobbies(None, limit);
                rooms.expire_lobbies(now);
            }
        }
    }
    let _ = codes;
});
