//! A client of the signaling server that speaks matchbox's protocol by hand,
//! to send room-mates signals no WebRTC stack would.
#![allow(dead_code)]

use std::collections::HashMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use matchbox_protocol::{JsonPeerEvent, JsonPeerRequest};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

/// Parses as SDP, but a WebRTC stack rejects it as a remote offer: its media
/// section has no `a=mid`.
pub const OFFER_WITHOUT_MID: &str = "v=0\r\no=- 0 0 IN IP4 10.77.0.1\r\ns=-\r\nt=0 0\r\n\
    m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n";

/// A client of the signaling server that speaks matchbox's protocol by hand.
pub struct Rogue {
    /// The id the server assigned.
    pub id: Uuid,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Rogue {
    /// Joins the room at `url` and takes the id the server assigns.
    pub async fn join(url: &str) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("rogue: websocket");
        let mut rogue = Self {
            id: Uuid::nil(),
            ws,
        };
        match rogue.next_event().await {
            JsonPeerEvent::IdAssigned(id) => {
                println!("rogue is {}", id.0);
                rogue.id = id.0;
            }
            other => panic!("rogue: expected an id, got {other:?}"),
        }
        rogue
    }

    /// Fails if any of `peers` signals this rogue within `time`.
    pub async fn expect_silence(&mut self, peers: &[Uuid], time: Duration) {
        let end = tokio::time::Instant::now() + time;
        loop {
            let next = tokio::time::timeout_at(end, self.ws.next()).await;
            let Ok(Some(message)) = next else {
                // The time is up, or the server closed this client.
                return;
            };
            if let Ok(Message::Text(text)) = message
                && let Ok(JsonPeerEvent::Signal { sender, data }) = text.parse::<JsonPeerEvent>()
                && peers.contains(&sender.0)
                && data.get("Offer").is_none()
            {
                panic!("rogue: a banned rogue was answered: {data}");
            }
        }
    }

    pub async fn next_event(&mut self) -> JsonPeerEvent {
        loop {
            // A peer whose handshake with this rogue failed offers again
            // after its handshake time-out (20 s) and a backoff: wait longer.
            match tokio::time::timeout(Duration::from_secs(60), self.ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => return text.parse().expect("rogue: event"),
                Ok(Some(Ok(_))) => {}
                other => panic!("rogue: no event: {other:?}"),
            }
        }
    }

    pub async fn signal(&mut self, to: Uuid, data: Value) {
        let request = JsonPeerRequest::Signal {
            receiver: matchbox_protocol::PeerId(to),
            data,
        };
        self.ws
            .send(Message::Text(request.to_string().into()))
            .await
            .expect("rogue: send");
    }

    /// Waits for a signal of `kind` (`Offer`, `Answer`) from each of `peers` and
    /// returns the SDP each sent.
    pub async fn wait_for(&mut self, kind: &str, peers: &[Uuid]) -> HashMap<Uuid, String> {
        self.wait_for_any(&[kind], peers).await
    }

    /// Waits for a signal of one of `kinds` from each of `peers` and returns
    /// the SDP each sent.
    pub async fn wait_for_any(&mut self, kinds: &[&str], peers: &[Uuid]) -> HashMap<Uuid, String> {
        let mut sdp = HashMap::new();
        while sdp.len() < peers.len() {
            if let JsonPeerEvent::Signal { sender, data } = self.next_event().await
                && peers.contains(&sender.0)
                && let Some(text) = kinds
                    .iter()
                    .find_map(|kind| data.get(kind).and_then(Value::as_str))
            {
                sdp.insert(sender.0, text.to_owned());
            }
        }
        sdp
    }
}
