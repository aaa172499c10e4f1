//! `IceServer::list_from_json`, which reads a signaling server's `/api/ice`
//! answer: any text gives a list or an error, never a panic.
#![no_main]

use gamenet::IceServer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(servers) = IceServer::list_from_json(&text) {
        let _ = format!("{servers:?}");
    }
});
