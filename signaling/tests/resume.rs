//! Clients that reconnect with their key (`?key=`): the same id, no churn for
//! their room-mates, a bounded wait for those that do not come back, and ids
//! that survive a restart of the server with the same secret.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use gamenet_signaling::Config;
use matchbox_protocol::JsonPeerEvent;

const KEY_A: &str = "key-of-a-0123456789";
const KEY_B: &str = "key-of-b-0123456789";

fn config(grace: Duration) -> Config {
    Config {
        resume_secret: Some("resume secret".into()),
        resume_grace: grace,
        ..Config::default()
    }
}

/// Nothing arrives on `ws` for `wait`.
async fn quiet(ws: &mut Ws, wait: Duration) {
    match tokio::time::timeout(wait, ws.next()).await {
        Err(_) => {}
        Ok(message) => panic!("expected nothing, got {message:?}"),
    }
}

/// Drops the connection without a close frame, as a lost network does.
async fn cut(ws: Ws) {
    let mut tcp = ws.into_inner();
    if let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = &mut tcp {
        let _ = tokio::io::AsyncWriteExt::shutdown(tcp).await;
    }
    drop(tcp);
}

#[tokio::test]
async fn a_client_that_reconnects_with_its_key_keeps_its_id_and_place() {
    let (addr, _stop, _task) = start(config(Duration::from_secs(5))).await;
    let (mut a, a_id) = connect(addr, &format!("room?key={KEY_A}")).await;
    let (b, b_id) = connect(addr, &format!("room?key={KEY_B}")).await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));

    // B's connection drops and comes back: the same id, and A hears nothing.
    cut(b).await;
    let (mut b, again) = connect(addr, &format!("room?key={KEY_B}")).await;
    assert_eq!(again, b_id);
    // B is told who is in the room, to offer to those it lost meanwhile.
    assert_eq!(next_event(&mut b).await, JsonPeerEvent::NewPeer(a_id));
    quiet(&mut a, Duration::from_millis(300)).await;
    signal_passes(&mut a, a_id, &mut b, b_id, "after-resume").await;
    signal_passes(&mut b, b_id, &mut a, a_id, "back").await;
    assert_eq!(metric(addr, "gamenet_signaling_resumes_total").await, 1.0);

    // A second connection with the same key takes over the first, silently.
    let (mut b2, again) = connect(addr, &format!("room?key={KEY_B}")).await;
    assert_eq!(again, b_id);
    assert_eq!(next_event(&mut b2).await, JsonPeerEvent::NewPeer(a_id));
    signal_passes(&mut a, a_id, &mut b2, b_id, "to-the-new-one").await;
    quiet(&mut a, Duration::from_millis(300)).await;
    drop(b);

    // Without a key, ids are new every time.
    let (_c, c_id) = connect(addr, "room").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(c_id));
    let (_c2, c2_id) = connect(addr, "room").await;
    assert_ne!(c_id, c2_id);
}

#[tokio::test]
async fn a_client_that_does_not_come_back_leaves_after_the_grace() {
    let grace = Duration::from_millis(600);
    let (addr, _stop, _task) = start(config(grace)).await;
    let (mut a, _) = connect(addr, &format!("room?key={KEY_A}")).await;
    let (b, b_id) = connect(addr, &format!("room?key={KEY_B}")).await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let lost = tokio::time::Instant::now();
    cut(b).await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::PeerLeft(b_id));
    assert!(lost.elapsed() >= grace, "{:?}", lost.elapsed());
    // Coming back later is a new join, announced as one.
    let (_b, again) = connect(addr, &format!("room?key={KEY_B}")).await;
    assert_eq!(again, b_id);
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));

    // A client that closes on purpose leaves at once.
    let (mut c, c_id) = connect(addr, "room?key=key-of-c-0123456789").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(c_id));
    c.close(None).await.unwrap();
    let closed = tokio::time::Instant::now();
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::PeerLeft(c_id));
    assert!(closed.elapsed() < grace, "{:?}", closed.elapsed());
}

#[tokio::test]
async fn ids_survive_a_restart_and_a_newcomer_is_announced_to_those_back() {
    let (addr, stop, task) = start(config(Duration::from_secs(5))).await;
    let (a, a_id) = connect(addr, &format!("room?key={KEY_A}")).await;
    let (b, b_id) = connect(addr, &format!("room?key={KEY_B}")).await;
    stop.send(()).unwrap();
    drop((a, b));
    task.await.unwrap();

    // A new process with the same secret, on another port.
    let (addr, _stop, _task) = start(config(Duration::from_secs(5))).await;
    let (mut a, again) = connect(addr, &format!("room?key={KEY_A}")).await;
    assert_eq!(again, a_id);
    let (mut b, again) = connect(addr, &format!("room?key={KEY_B}")).await;
    assert_eq!(again, b_id);
    // The room is rebuilt as they come back: A hears of B, which its client
    // ignores while it is still connected to B.
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let (_c, c_id) = connect(addr, "room").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(c_id));
    assert_eq!(next_event(&mut b).await, JsonPeerEvent::NewPeer(c_id));

    // Another secret gives other ids.
    let (addr, _stop2, _task2) = start(Config {
        resume_secret: Some("another secret".into()),
        ..Config::default()
    })
    .await;
    let (_a, other) = connect(addr, &format!("room?key={KEY_A}")).await;
    assert_ne!(other, a_id);
}

#[tokio::test]
async fn bad_keys_are_refused() {
    let (addr, _stop, _task) = start(Config::default()).await;
    for key in ["short", "has/slash-0123456789", &"k".repeat(200)] {
        let result = tokio_tungstenite::connect_async(format!("ws://{addr}/room?key={key}"))
            .await
            .map(|(ws, _)| ws);
        let (status, body) = refusal(result);
        assert_eq!(status, 400, "{key}");
        assert!(body.contains("invalid key"), "{body}");
    }
}
