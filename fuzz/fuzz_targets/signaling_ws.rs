//! What a WebSocket client sends the signaling server: its JSON messages
//! (parsed by `ws.rs` with matchbox_protocol's `JsonPeerRequest`) and the
//! room it asks for (`RoomRequest::parse` of the path and query, `lobby` of a
//! join code). The first byte picks which; a message that parses prints
//! back to JSON that parses to it.
#![no_main]

use std::str::FromStr;

use gamenet_signaling::rooms::RoomRequest;
use libfuzzer_sys::fuzz_target;
use matchbox_protocol::JsonPeerRequest;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 3 {
        0 => {
            if let Ok(request) = JsonPeerRequest::from_str(&text) {
                let again = request.to_string();
                assert_eq!(JsonPeerRequest::from_str(&again).ok(), Some(request));
            }
        }
        1 => {
            // path, next and mode, split at NUL bytes; an absent part is None.
            let mut parts = text.split('\0');
            let (path, next, m) = (parts.next(), parts.next(), parts.next());
            let max = rest.first().map_or(16, |&b| b as usize);
            let _ = RoomRequest::parse(path, next, m, max);
        }
        _ => {
            if let Ok(RoomRequest::Lobby(code)) = RoomRequest::lobby(&text) {
                assert_eq!(
                    RoomRequest::lobby(code.as_str()).ok(),
                    Some(RoomRequest::Lobby(code))
                );
            }
        }
    }
});
