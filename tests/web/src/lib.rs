//! A minimal wasm binding of [`gamenet::PeerMesh`] for the browser tests: a page
//! creates a `WebMesh`, polls it for events, and sends messages to peers.
//!
//! On native targets this crate is empty; build it for `wasm32-unknown-unknown`
//! and run `wasm-bindgen --target web` on the result. `tests/web/www/index.html`
//! is the page that loads it.

#[cfg(target_arch = "wasm32")]
mod web {
    use std::collections::HashMap;

    use gamenet::{Channel, Event, IceServer, PeerId, PeerMesh};
    use js_sys::{Array, Object, Reflect, Uint8Array};
    use wasm_bindgen::prelude::*;

    /// A peer mesh for JavaScript.
    #[wasm_bindgen]
    pub struct WebMesh {
        mesh: PeerMesh,
        peers: HashMap<String, PeerId>,
    }

    fn set(obj: &Object, key: &str, value: impl Into<JsValue>) {
        let _ = Reflect::set(obj, &JsValue::from_str(key), &value.into());
    }

    fn channel_name(channel: Channel) -> &'static str {
        match channel {
            Channel::Reliable => "reliable",
            Channel::Unreliable => "unreliable",
        }
    }

    #[wasm_bindgen]
    impl WebMesh {
        /// Joins `room_url` as `app_id`, with no ICE server (host candidates only).
        #[wasm_bindgen(constructor)]
        pub fn new(room_url: &str, app_id: &str) -> Result<WebMesh, JsError> {
            let (mesh, driver) = PeerMesh::builder(room_url)
                .app_id(app_id)
                .ice_server(IceServer::none())
                .build()?;
            wasm_bindgen_futures::spawn_local(async move {
                if let Err(e) = driver.await {
                    web_sys_log(&format!("mesh driver ended: {e}"));
                }
            });
            Ok(WebMesh {
                mesh,
                peers: HashMap::new(),
            })
        }

        /// This peer's id, once assigned.
        pub fn id(&mut self) -> Option<String> {
            self.mesh.id().map(|id| id.to_string())
        }

        /// Processes input and returns the events since the last call, as objects
        /// `{type, peer, channel?, data?, reason?}`.
        pub fn poll(&mut self) -> Array {
            self.mesh.update();
            let events = Array::new();
            while let Some(event) = self.mesh.poll_event() {
                let obj = Object::new();
                match event {
                    Event::PeerJoined(peer) => {
                        self.peers.insert(peer.to_string(), peer);
                        set(&obj, "type", "joined");
                        set(&obj, "peer", peer.to_string());
                    }
                    Event::PeerLeft { peer, reason } => {
                        self.peers.remove(&peer.to_string());
                        set(&obj, "type", "left");
                        set(&obj, "peer", peer.to_string());
                        set(&obj, "reason", reason.to_string());
                    }
                    Event::HandshakeFailed { peer, error } => {
                        set(&obj, "type", "handshake-failed");
                        set(&obj, "peer", peer.to_string());
                        set(&obj, "reason", error.to_string());
                    }
                    Event::SignalRefused { peer, reason } => {
                        set(&obj, "type", "signal-refused");
                        set(&obj, "peer", peer.to_string());
                        set(&obj, "reason", reason);
                    }
                    Event::Message {
                        peer,
                        channel,
                        payload,
                    } => {
                        set(&obj, "type", "message");
                        set(&obj, "peer", peer.to_string());
                        set(&obj, "channel", channel_name(channel));
                        set(&obj, "data", Uint8Array::from(&payload[..]));
                    }
                    _ => continue,
                }
                events.push(&obj);
            }
            events
        }

        /// Sends `data` to a joined peer.
        pub fn send(&mut self, peer: &str, reliable: bool, data: &[u8]) -> Result<(), JsError> {
            let id = *self
                .peers
                .get(peer)
                .ok_or_else(|| JsError::new("unknown peer"))?;
            let channel = if reliable {
                Channel::Reliable
            } else {
                Channel::Unreliable
            };
            self.mesh.send(id, channel, data)?;
            Ok(())
        }

        /// The joined peers.
        pub fn peers(&self) -> Vec<String> {
            self.peers.keys().cloned().collect()
        }

        /// Link statistics of a peer as `{rtt_ms, loss, bytes_in_per_sec, bytes_out_per_sec}`.
        pub fn stats(&self, peer: &str) -> JsValue {
            let Some(stats) = self.peers.get(peer).and_then(|&id| self.mesh.stats(id)) else {
                return JsValue::NULL;
            };
            let obj = Object::new();
            set(
                &obj,
                "rtt_ms",
                stats.rtt.map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0),
            );
            set(&obj, "loss", f64::from(stats.loss));
            set(&obj, "bytes_in_per_sec", stats.bytes_in_per_sec);
            set(&obj, "bytes_out_per_sec", stats.bytes_out_per_sec);
            obj.into()
        }

        /// Leaves the room.
        pub fn close(&mut self) {
            self.mesh.close();
        }
    }

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_namespace = console, js_name = log)]
        fn web_sys_log(s: &str);
    }
}
