//! The real server over real WebSockets on loopback: rooms, quick-match,
//! refusals, static files.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use gamenet_signaling::Config;
use matchbox_protocol::JsonPeerEvent;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn rooms_scope_peers_and_signals() {
    let (addr, _stop, _task) = start(Config::default()).await;
    let (mut a1, a1_id) = connect(addr, "room-a").await;
    let (mut a2, a2_id) = connect(addr, "room-a").await;
    assert_eq!(next_event(&mut a1).await, JsonPeerEvent::NewPeer(a2_id));
    let (mut b1, b1_id) = connect(addr, "room-b").await;
    let (mut b2, b2_id) = connect(addr, "room-b").await;
    assert_eq!(next_event(&mut b1).await, JsonPeerEvent::NewPeer(b2_id));

    // A peer of room b signals into room a: dropped. Its next, legitimate signal
    // to its own room-mate arrives, so the intruding one was handled before.
    signal(&mut b1, a1_id, "intrusion").await;
    signal(&mut b1, b2_id, "legit-b").await;
    assert_eq!(
        next_event(&mut b2).await,
        JsonPeerEvent::Signal {
            sender: b1_id,
            data: offer("legit-b")
        }
    );
    signal(&mut a2, a1_id, "legit-a").await;
    assert_eq!(
        next_event(&mut a1).await,
        JsonPeerEvent::Signal {
            sender: a2_id,
            data: offer("legit-a")
        }
    );

    // Garbage closes that client with a reason; its room-mate is told it left.
    a2.send(Message::Text("{not json".into())).await.unwrap();
    let (code, reason) = expect_close(&mut a2).await;
    assert_eq!(code, 1003);
    assert!(reason.contains("malformed"), "{reason}");
    assert_eq!(next_event(&mut a1).await, JsonPeerEvent::PeerLeft(a2_id));

    // Leaving is told to the room only.
    drop(a2);
    let (_a3, a3_id) = connect(addr, "room-a").await;
    b1.close(None).await.unwrap();
    assert_eq!(next_event(&mut b2).await, JsonPeerEvent::PeerLeft(b1_id));
    assert_eq!(next_event(&mut a1).await, JsonPeerEvent::NewPeer(a3_id));
}

#[tokio::test]
async fn quick_match_pairs_the_next_joiners() {
    let (addr, _stop, _task) = start(Config::default()).await;
    let (mut p1, _) = connect(addr, "lobby?next=2").await;
    let (_p2, p2_id) = connect(addr, "lobby?next=2").await;
    assert_eq!(next_event(&mut p1).await, JsonPeerEvent::NewPeer(p2_id));
    let (mut p3, p3_id) = connect(addr, "lobby?next=2").await;
    let (_p4, p4_id) = connect(addr, "lobby?next=2").await;
    assert_eq!(next_event(&mut p3).await, JsonPeerEvent::NewPeer(p4_id));
    // p3 is not in p1's room: p1 is not told about p3 or p4, and cannot signal p3.
    signal(&mut p1, p3_id, "x").await;
    signal(&mut p1, p2_id, "y").await;
    let first = tokio::time::timeout(Duration::from_millis(300), p3.next()).await;
    assert!(first.is_err(), "p3 received {first:?}");
}

#[tokio::test]
async fn bad_requests_are_refused_with_a_reason_and_health_answers() {
    let config = Config {
        max_room_size: 2,
        ..Config::default()
    };
    let (addr, stop, task) = start(config).await;
    for path in ["r?next=1", "r?next=abc", "r?next=3", "bad%20path"] {
        let err = tokio_tungstenite::connect_async(format!("ws://{addr}/{path}"))
            .await
            .unwrap_err();
        match err {
            tokio_tungstenite::tungstenite::Error::Http(response) => {
                assert_eq!(response.status(), 400, "{path}");
                let body = String::from_utf8(response.body().clone().unwrap_or_default()).unwrap();
                assert!(body.contains("invalid"), "{path}: {body}");
            }
            other => panic!("{path}: unexpected {other:?}"),
        }
    }
    // A full room closes the newcomer with the reason.
    let _a = connect(addr, "full").await;
    let _b = connect(addr, "full").await;
    let (mut c, _) = connect(addr, "full").await;
    let close = tokio::time::timeout(Duration::from_secs(5), c.next())
        .await
        .unwrap();
    match close {
        Some(Ok(Message::Close(Some(frame)))) => assert!(frame.reason.contains("full")),
        other => panic!("expected a close frame, got {other:?}"),
    }

    let response = http_get(addr, "/health").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("ok"), "{response}");

    // Graceful shutdown ends serve().
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn serves_static_files_beside_websockets() {
    let dir = std::env::temp_dir().join(format!("gamenet-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "<h1>game</h1>").unwrap();
    std::fs::write(dir.join("game.wasm"), "plain").unwrap();
    std::fs::write(dir.join("game.wasm.gz"), "zipped").unwrap();
    let (addr, _stop, _task) = start(Config {
        web_dir: Some(dir.clone()),
        ..Config::default()
    })
    .await;
    let response = http_get(addr, "/").await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.contains("<h1>game</h1>"), "{response}");
    // A file with a `.gz` beside it goes gzipped to clients that accept it.
    let plain = http_get(addr, "/game.wasm").await;
    assert!(plain.ends_with("plain"), "{plain}");
    assert!(plain.contains("application/wasm"), "{plain}");
    let zipped = http_get_with(addr, "/game.wasm", "Accept-Encoding: gzip\r\n").await;
    assert!(zipped.ends_with("zipped"), "{zipped}");
    assert!(
        zipped.to_lowercase().contains("content-encoding: gzip"),
        "{zipped}"
    );
    assert!(zipped.contains("application/wasm"), "{zipped}");
    // WebSockets on the root path still work.
    let (_ws, _) = connect(addr, "").await;
    std::fs::remove_dir_all(dir).unwrap();
}
