//! Bad input against the real server: each kind is refused or closed with a
//! reason, counted in the metrics, and a well-behaved pair of clients in the
//! same server keeps being served throughout.

mod common;

use std::time::Duration;

use common::*;
use futures::SinkExt;
use gamenet_signaling::Config;
use matchbox_protocol::JsonPeerEvent;
use tokio_tungstenite::tungstenite::Message;

const GOOD: [u8; 4] = [127, 0, 0, 1];
const FLOOD: [u8; 4] = [127, 0, 0, 2];

async fn refused(addr: std::net::SocketAddr, reason: &str) -> f64 {
    metric(
        addr,
        &format!("gamenet_signaling_refused_total{{reason=\"{reason}\"}}"),
    )
    .await
}

#[tokio::test]
async fn bad_input_is_refused_and_good_clients_are_still_served() {
    let (addr, _stop, _task) = start(Config {
        max_message: 1024,
        rate: 5.0,
        rate_burst: 10,
        ..Config::default()
    })
    .await;
    let (mut a, a_id) = connect_from(GOOD, addr, "good").await;
    let (mut b, b_id) = connect_from(GOOD, addr, "good").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    signal_passes(&mut a, a_id, &mut b, b_id, "start").await;

    // Malformed JSON, an unknown message type, a binary message: each closes
    // that client with 1003 and the reason.
    for (bad, why) in [
        (
            Message::Text("{\"Signal\": {\"receiver\": 3".into()),
            "malformed",
        ),
        (
            Message::Text("{\"Teleport\": {\"to\": \"moon\"}}".into()),
            "unknown variant",
        ),
        (Message::Binary(vec![0xff; 16].into()), "binary"),
    ] {
        let (mut bad_client, _) = connect_from(GOOD, addr, "elsewhere").await;
        bad_client.send(bad).await.unwrap();
        let (code, reason) = expect_close(&mut bad_client).await;
        assert_eq!(code, 1003, "{reason}");
        assert!(reason.contains(why), "{reason}");
        signal_passes(&mut a, a_id, &mut b, b_id, why).await;
    }
    assert_eq!(refused(addr, "bad_message").await, 3.0);

    // An oversized message closes its sender with 1009; a good signal just
    // under the limit still passes.
    let (mut big, _) = connect_from(GOOD, addr, "elsewhere").await;
    big.send(Message::Text("x".repeat(4000).into()))
        .await
        .unwrap();
    let (code, reason) = expect_close(&mut big).await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("1024 bytes"), "{reason}");
    signal_passes(&mut a, a_id, &mut b, b_id, &"y".repeat(900)).await;
    assert_eq!(refused(addr, "message_too_big").await, 1.0);

    // A flood of signals: past the burst (200 by default) the sender is closed
    // with 1008 and the reason.
    let (mut flooder, _) = connect_from([127, 0, 0, 4], addr, "flooded").await;
    let (mut target, target_id) = connect_from([127, 0, 0, 4], addr, "flooded").await;
    assert!(matches!(
        next_event(&mut flooder).await,
        JsonPeerEvent::NewPeer(_)
    ));
    for n in 0..250 {
        let request = matchbox_protocol::JsonPeerRequest::Signal {
            receiver: target_id,
            data: offer(&format!("candidate {n}")),
        };
        if flooder
            .send(Message::Text(request.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let (code, reason) = expect_close(&mut flooder).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("too many signals"), "{reason}");
    assert_eq!(refused(addr, "signal_rate").await, 1.0);
    // The target got the first ones, then was told the flooder left.
    assert!(matches!(
        next_event(&mut target).await,
        JsonPeerEvent::Signal { .. }
    ));
    signal_passes(&mut a, a_id, &mut b, b_id, "after-signal-flood").await;

    // Malformed JSON and oversized bodies to the API.
    let (status, body) = api(
        addr,
        "POST",
        "/api/lobbies",
        "",
        "{\"max_players\": \"four\"",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("invalid lobby request"),
        "{body}"
    );
    let (status, body) = api(addr, "POST", "/api/lobbies", "", r#"{"max_players": 1000}"#).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("max_players"),
        "{body}"
    );
    let (status, body) = api(addr, "POST", "/api/lobbies", "", r#"{"colour": "red"}"#).await;
    assert_eq!(status, 400);
    assert!(
        body["error"].as_str().unwrap().contains("unknown field"),
        "{body}"
    );
    let (status, _) = http(addr, "POST", "/api/lobbies", "", &"z".repeat(10_000)).await;
    assert_eq!(status, 413);
    let (status, body) = api(addr, "GET", "/api/nothing", "", "").await;
    assert_eq!(status, 404, "{body}");
    signal_passes(&mut a, a_id, &mut b, b_id, "after-api").await;

    // A flood of connections from one address: the first ten (the burst) get
    // in, the rest are refused with 429 and a reason, and other addresses
    // are not affected.
    let mut accepted = Vec::new();
    let mut refusals = 0;
    let flood_start = std::time::Instant::now();
    for _ in 0..40 {
        match try_connect_from(FLOOD, addr, "flood", &[]).await {
            Ok(ws) => accepted.push(ws),
            Err(error) => {
                let (status, body) = refusal(Err(error));
                assert_eq!(status, 429, "{body}");
                assert!(body.contains("too many requests from 127.0.0.2"), "{body}");
                refusals += 1;
            }
        }
    }
    // The burst, plus what the rate refilled while the flood went on.
    let refilled = (5.0 * flood_start.elapsed().as_secs_f64()).ceil() as usize;
    assert!(
        (10..=10 + refilled).contains(&accepted.len()),
        "{} accepted in {:?}",
        accepted.len(),
        flood_start.elapsed()
    );
    assert_eq!(refusals, 40 - accepted.len());
    assert_eq!(refused(addr, "rate_limit").await, refusals as f64);
    signal_passes(&mut a, a_id, &mut b, b_id, "during-flood").await;
    let (_c, c_id) = connect_from([127, 0, 0, 3], addr, "good").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(c_id));
    signal_passes(&mut b, b_id, &mut a, a_id, "after-flood").await;
}

#[tokio::test]
async fn silent_clients_are_closed_and_talking_ones_stay() {
    let (addr, _stop, _task) = start(Config {
        idle_timeout: Duration::from_millis(800),
        ..Config::default()
    })
    .await;
    let (mut a, a_id) = connect(addr, "r").await;
    let (mut b, b_id) = connect(addr, "r").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let (mut silent, _) = connect(addr, "other").await;
    // a and b keep talking (a keep-alive every 200 ms) for 2 s.
    let keep_alive = Message::Text("\"KeepAlive\"".into());
    for _ in 0..10 {
        a.send(keep_alive.clone()).await.unwrap();
        b.send(keep_alive.clone()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, reason) = expect_close(&mut silent).await;
    assert_eq!(code, 4001);
    assert!(reason.contains("idle"), "{reason}");
    signal_passes(&mut a, a_id, &mut b, b_id, "still-talking").await;
    assert_eq!(refused(addr, "idle").await, 1.0);
}

#[tokio::test]
async fn a_full_server_refuses_newcomers_and_keeps_its_clients() {
    let (addr, _stop, _task) = start(Config {
        max_clients: 3,
        ..Config::default()
    })
    .await;
    let (mut a, a_id) = connect(addr, "r").await;
    let (mut b, b_id) = connect(addr, "r").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let (_c, _) = connect(addr, "s").await;
    let (status, body) = refusal(try_connect_from(GOOD, addr, "r", &[]).await);
    assert_eq!(status, 503);
    assert!(body.contains("full"), "{body}");
    signal_passes(&mut a, a_id, &mut b, b_id, "still-served").await;
    assert_eq!(refused(addr, "max_clients").await, 1.0);
}

const SLOW: [u8; 4] = [127, 0, 0, 6];

/// An SDP of `len` bytes, for offers that fill buffers quickly.
fn sdp(len: usize) -> String {
    format!("v=0\r\n{}", "a".repeat(len.saturating_sub(5)))
}

/// `mate` sends offers of `len` bytes to `slow_id`, one every `pace`, until the
/// server tells it `slow_id` left (or `within` passes, failing the test).
/// Returns when the queue for `slow_id` first held over `stalled_bytes` (the
/// server's writes to it stalled), when it left, and the most bytes queued
/// seen meanwhile. Every 50 offers, the pair `good` signals once.
#[allow(clippy::too_many_arguments)]
async fn flood_until_left(
    addr: std::net::SocketAddr,
    mate: &mut Ws,
    slow_id: matchbox_protocol::PeerId,
    len: usize,
    pace: Duration,
    stalled_bytes: f64,
    within: Duration,
    good: &mut (Ws, matchbox_protocol::PeerId, Ws, matchbox_protocol::PeerId),
) -> (Option<tokio::time::Instant>, tokio::time::Instant, f64) {
    use futures::StreamExt;
    let start = tokio::time::Instant::now();
    let offer = offer(&sdp(len));
    let (mut stalled, mut peak) = (None, 0.0f64);
    let mut tick = tokio::time::interval(pace);
    for n in 0u64.. {
        assert!(
            start.elapsed() < within,
            "{slow_id} still there after {within:?}"
        );
        tokio::select! {
            message = mate.next() => {
                let Some(Ok(Message::Text(text))) = message else {
                    panic!("mate lost: {message:?}");
                };
                if text.parse::<JsonPeerEvent>().unwrap() == JsonPeerEvent::PeerLeft(slow_id) {
                    return (stalled, tokio::time::Instant::now(), peak);
                }
            }
            _ = tick.tick() => {
                send_signal(mate, slow_id, offer.clone()).await;
                let queued = metric(addr, "gamenet_signaling_queued_bytes").await;
                peak = peak.max(queued);
                if stalled.is_none() && queued > stalled_bytes {
                    stalled = Some(tokio::time::Instant::now());
                }
                if n % 50 == 0 {
                    let (a, a_id, b, b_id) = good;
                    signal_passes(a, *a_id, b, *b_id, &format!("during-{n}")).await;
                }
            }
        }
    }
    unreachable!()
}

/// Two well-behaved clients in one room: each with its id.
async fn good_pair(
    addr: std::net::SocketAddr,
) -> (Ws, matchbox_protocol::PeerId, Ws, matchbox_protocol::PeerId) {
    let (mut a, a_id) = connect_from(GOOD, addr, "good").await;
    let (b, b_id) = connect_from(GOOD, addr, "good").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    (a, a_id, b, b_id)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_within_the_write_timeout() {
    let write_timeout = Duration::from_secs(1);
    let (addr, _stop, _task) = start(Config {
        write_timeout,
        // Only the write timeout is to close the slow client here; the
        // flooding room-mate has no signal limits either.
        send_queue: 1_000_000,
        send_queue_bytes: 64 << 20,
        signal_rate: 0.0,
        signal_byte_rate: 0.0,
        ..Config::default()
    })
    .await;
    let mut good = good_pair(addr).await;
    let (mut mate, _) = connect_from(FLOOD, addr, "slow-room").await;
    let (_slow, slow_id) = slow_reader(SLOW, addr, "slow-room").await;
    assert_eq!(next_event(&mut mate).await, JsonPeerEvent::NewPeer(slow_id));
    // 15 KB every 20 ms: 750 KB/s at the slow client.
    let (stalled, left, peak) = flood_until_left(
        addr,
        &mut mate,
        slow_id,
        15_000,
        Duration::from_millis(20),
        45_000.0,
        Duration::from_secs(60),
        &mut good,
    )
    .await;
    let stalled = stalled.expect("the writes to the slow client never stalled");
    // Dropped within the write timeout of its writes stalling (the stall is
    // seen once 3 offers wait, ~40 ms in), and what waited for it stayed
    // within what the flood sends in that time.
    assert!(
        left - stalled <= write_timeout + Duration::from_millis(1000),
        "left {:?} after its writes stalled",
        left - stalled
    );
    assert!(peak <= 2_000_000.0, "{peak} bytes queued");
    assert_eq!(refused(addr, "write_timeout").await, 1.0);
    assert_eq!(refused(addr, "send_queue_full").await, 0.0);
    // Its queue and its seat and connection are given back; the others stay.
    let within = Duration::from_secs(5);
    wait_for_metric(addr, "gamenet_signaling_queued_bytes", within, |q| q == 0.0).await;
    wait_for_metric(addr, "gamenet_signaling_clients", within, |c| c == 3.0).await;
    // The good pair, the mate, and the request asking.
    wait_for_metric(addr, "gamenet_signaling_tcp_connections", within, |c| {
        c == 4.0
    })
    .await;
    let (a, a_id, b, b_id) = &mut good;
    signal_passes(a, *a_id, b, *b_id, "after").await;
}

#[tokio::test]
async fn the_shutdown_reaches_a_client_whose_writes_stall() {
    let (addr, stop, task) = start(Config {
        // Far longer than the test: only the shutdown can end the write.
        write_timeout: Duration::from_secs(600),
        send_queue: 1_000_000,
        send_queue_bytes: 64 << 20,
        signal_rate: 0.0,
        signal_byte_rate: 0.0,
        ..Config::default()
    })
    .await;
    let (mut mate, _) = connect_from(FLOOD, addr, "slow-room").await;
    let (_slow, slow_id) = slow_reader(SLOW, addr, "slow-room").await;
    assert_eq!(next_event(&mut mate).await, JsonPeerEvent::NewPeer(slow_id));
    let offer = offer(&sdp(15_000));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while metric(addr, "gamenet_signaling_queued_bytes").await < 100_000.0 {
        assert!(tokio::time::Instant::now() < deadline, "never stalled");
        send_signal(&mut mate, slow_id, offer.clone()).await;
    }
    // serve() waits up to 5 s for every client to go; the stalled one goes
    // at once (its close frame and the wait for an answer take 1 s each at most).
    let stopping = tokio::time::Instant::now();
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
    assert!(
        stopping.elapsed() < Duration::from_millis(3500),
        "the shutdown took {:?}",
        stopping.elapsed()
    );
    let (code, _) = expect_close(&mut mate).await;
    assert_eq!(code, 1001);
}

#[tokio::test]
async fn a_client_whose_queue_overflows_is_closed_instead_of_missing_messages() {
    let (addr, _stop, _task) = start(Config {
        // Only the overflow is to close the slow client here.
        write_timeout: Duration::from_secs(600),
        send_queue: 16,
        signal_rate: 0.0,
        signal_byte_rate: 0.0,
        ..Config::default()
    })
    .await;
    let mut good = good_pair(addr).await;
    let (mut mate, _) = connect_from(FLOOD, addr, "slow-room").await;
    let (_slow, slow_id) = slow_reader(SLOW, addr, "slow-room").await;
    assert_eq!(next_event(&mut mate).await, JsonPeerEvent::NewPeer(slow_id));
    let (stalled, left, peak) = flood_until_left(
        addr,
        &mut mate,
        slow_id,
        15_000,
        Duration::from_millis(5),
        45_000.0,
        Duration::from_secs(60),
        &mut good,
    )
    .await;
    let stalled = stalled.expect("the writes to the slow client never stalled");
    // Seventeen offers do not fit: it goes as soon as the queue overflows, not
    // after the write timeout, with at most the queue's 16 messages waiting.
    assert!(
        left - stalled <= Duration::from_secs(2),
        "left {:?} after its writes stalled",
        left - stalled
    );
    assert!(peak <= 16.0 * 15_100.0, "{peak} bytes queued");
    assert_eq!(refused(addr, "send_queue_full").await, 1.0);
    assert_eq!(refused(addr, "write_timeout").await, 0.0);
    assert!(
        metric(
            addr,
            "gamenet_signaling_signals_dropped_total{reason=\"queue_full\"}"
        )
        .await
            >= 1.0
    );
    let within = Duration::from_secs(5);
    wait_for_metric(addr, "gamenet_signaling_queued_bytes", within, |q| q == 0.0).await;
    wait_for_metric(addr, "gamenet_signaling_clients", within, |c| c == 3.0).await;
    // A newcomer to the room is announced to the mate as usual.
    let (_c, c_id) = connect_from(GOOD, addr, "slow-room").await;
    assert_eq!(next_event(&mut mate).await, JsonPeerEvent::NewPeer(c_id));
    let (a, a_id, b, b_id) = &mut good;
    signal_passes(a, *a_id, b, *b_id, "after").await;
}

async fn signals_refused(addr: std::net::SocketAddr, reason: &str) -> f64 {
    metric(
        addr,
        &format!("gamenet_signaling_signals_refused_total{{reason=\"{reason}\"}}"),
    )
    .await
}

#[tokio::test]
async fn only_offers_answers_and_candidates_of_bounded_size_pass() {
    use serde_json::json;
    let (addr, _stop, _task) = start(Config::default()).await;
    let mut good = good_pair(addr).await;
    let candidate = r#"{"candidate":"candidate:1 1 udp 2122260223 10.77.0.2 40123 typ host","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"abcd"}"#;
    // Each kind matchbox_socket sends passes, the largest SDP allowed too.
    let (mut s, s_id) = connect_from(GOOD, addr, "shapes").await;
    let (mut r, r_id) = connect_from(GOOD, addr, "shapes").await;
    assert_eq!(next_event(&mut s).await, JsonPeerEvent::NewPeer(r_id));
    for data in [
        json!({ "Offer": sdp(16 * 1024) }),
        json!({ "Answer": "v=0\r\n" }),
        json!({ "IceCandidate": candidate }),
        json!({ "IceCandidate": "null" }),
    ] {
        send_signal(&mut s, r_id, data.clone()).await;
        assert_eq!(
            next_event(&mut r).await,
            JsonPeerEvent::Signal { sender: s_id, data }
        );
    }
    // Anything else closes its sender with the reason; the receiver gets
    // nothing but the news that it left.
    for (data, code, why, reason) in [
        (
            json!("hello"),
            1003,
            "invalid signal: data must be",
            "shape",
        ),
        (
            json!({ "Offer": 5 }),
            1003,
            "invalid signal: data must be",
            "shape",
        ),
        (
            json!({ "Teleport": "moon" }),
            1003,
            "invalid signal: data must be",
            "shape",
        ),
        (
            json!({ "Offer": "v=0", "Answer": "v=0" }),
            1003,
            "invalid signal: data must be",
            "shape",
        ),
        (
            json!({ "Offer": sdp(16 * 1024 + 1) }),
            1009,
            "an SDP of 16385 bytes",
            "sdp_too_big",
        ),
        (
            json!({ "IceCandidate": format!("{{\"candidate\":\"{}\"}}", "c".repeat(1100)) }),
            1009,
            "an ICE candidate of",
            "candidate_too_big",
        ),
        (
            json!({ "IceCandidate": "candidate:1 1 udp 1 10.0.0.1 1 typ host" }),
            1003,
            "JSON object or null",
            "bad_candidate",
        ),
    ] {
        let (mut bad, bad_id) = connect_from(GOOD, addr, "shapes").await;
        assert_eq!(next_event(&mut r).await, JsonPeerEvent::NewPeer(bad_id));
        send_signal(&mut bad, r_id, data.clone()).await;
        let (got_code, got_why) = expect_close(&mut bad).await;
        assert_eq!(got_code, code, "{data}: {got_why}");
        assert!(got_why.contains(why), "{data}: {got_why}");
        assert_eq!(
            next_event(&mut r).await,
            JsonPeerEvent::PeerLeft(bad_id),
            "{data} must not pass"
        );
        let (a, a_id, b, b_id) = &mut good;
        signal_passes(a, *a_id, b, *b_id, reason).await;
    }
    assert_eq!(signals_refused(addr, "shape").await, 4.0);
    assert_eq!(signals_refused(addr, "sdp_too_big").await, 1.0);
    assert_eq!(signals_refused(addr, "candidate_too_big").await, 1.0);
    assert_eq!(signals_refused(addr, "bad_candidate").await, 1.0);
    // The good sender is still there.
    signal_passes(&mut s, s_id, &mut r, r_id, "still-here").await;
}

#[tokio::test]
async fn a_flood_of_signal_bytes_is_cut_off_and_the_victim_served() {
    let (rate, burst) = (20_000.0, 100_000u32);
    let (addr, _stop, _task) = start(Config {
        signal_byte_rate: rate,
        signal_byte_burst: burst,
        ..Config::default()
    })
    .await;
    let mut good = good_pair(addr).await;
    let (mut victim, victim_id) = connect_from(GOOD, addr, "victim").await;
    let (mut friend, friend_id) = connect_from(GOOD, addr, "victim").await;
    let (mut flooder, _) = connect_from(FLOOD, addr, "victim").await;
    assert_eq!(
        next_event(&mut victim).await,
        JsonPeerEvent::NewPeer(friend_id)
    );
    let JsonPeerEvent::NewPeer(flooder_id) = next_event(&mut victim).await else {
        panic!("no flooder");
    };
    let start = std::time::Instant::now();
    // 15 KB offers as fast as they go: well under the signal count limit
    // (200 at once), but over the byte budget after 6 or 7.
    let offer = offer(&sdp(15_000));
    let mut sent = 0;
    for _ in 0..100 {
        if flooder
            .send(Message::Text(
                matchbox_protocol::JsonPeerRequest::Signal {
                    receiver: victim_id,
                    data: offer.clone(),
                }
                .to_string()
                .into(),
            ))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let (code, reason) = expect_close(&mut flooder).await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("too many signal bytes"), "{reason}");
    assert_eq!(refused(addr, "signal_bytes").await, 1.0);
    // The victim got what the budget allowed, then the news that the
    // flooder left.
    let mut received = 0usize;
    loop {
        match next_event(&mut victim).await {
            JsonPeerEvent::Signal { sender, data } => {
                assert_eq!(sender, flooder_id);
                received += data.to_string().len();
            }
            JsonPeerEvent::PeerLeft(id) if id == flooder_id => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    let allowed = f64::from(burst) + rate * start.elapsed().as_secs_f64();
    assert!(
        (received as f64) <= allowed && received >= 5 * 15_000,
        "victim received {received} bytes of {sent} offers; {allowed} allowed"
    );
    // The victim and its friend, and the pair elsewhere, are still served.
    assert_eq!(
        next_event(&mut friend).await,
        JsonPeerEvent::NewPeer(flooder_id)
    );
    assert_eq!(
        next_event(&mut friend).await,
        JsonPeerEvent::PeerLeft(flooder_id)
    );
    signal_passes(&mut friend, friend_id, &mut victim, victim_id, "friend").await;
    signal_passes(&mut victim, victim_id, &mut friend, friend_id, "back").await;
    let (a, a_id, b, b_id) = &mut good;
    signal_passes(a, *a_id, b, *b_id, "after").await;
}

const ENUMERATOR: [u8; 4] = [127, 0, 0, 7];

#[tokio::test]
async fn lobby_codes_cannot_be_enumerated_and_the_invited_still_get_in() {
    use gamenet_signaling::rooms::JoinCode;
    let (addr, _stop, _task) = start(Config {
        // The general rate is not what stops the guessing here.
        rate: 100.0,
        rate_burst: 1000,
        ..Config::default()
    })
    .await;
    let (status, lobby) = api_from(
        GOOD,
        addr,
        "POST",
        "/api/lobbies",
        "",
        r#"{"public": false}"#,
    )
    .await;
    assert_eq!(status, 201, "{lobby}");
    let code = lobby["code"].as_str().unwrap().to_owned();
    let guesses = (1..)
        .map(|n: u32| JoinCode::from_random(n.wrapping_mul(0x9e37_79b9)).to_string())
        .filter(|guess| *guess != code);
    let mut misses = 0;
    let mut refusals = 0;
    for guess in guesses.take(30) {
        let (status, body) = http_from(
            ENUMERATOR,
            addr,
            "GET",
            &format!("/api/lobbies/{guess}"),
            "",
            "",
        )
        .await;
        match status {
            404 => misses += 1,
            429 => {
                assert!(
                    body.contains("too many unknown lobby codes from 127.0.0.7"),
                    "{body}"
                );
                refusals += 1;
            }
            other => panic!("{other}: {body}"),
        }
    }
    // Ten misses, then refused (another would come in six seconds).
    assert_eq!((misses, refusals), (10, 20));
    // Joining by code is the same guess: refused too, even with the right code.
    let (status, body) = refusal(try_connect_from(ENUMERATOR, addr, "join/ZZZZZZ", &[]).await);
    assert_eq!(status, 429, "{body}");
    let (status, _) = http_from(
        ENUMERATOR,
        addr,
        "GET",
        &format!("/api/lobbies/{code}"),
        "",
        "",
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(refused(addr, "lobby_misses").await, 22.0);
    // The invited player finds the lobby and joins it meanwhile.
    let (status, found) =
        api_from(GOOD, addr, "GET", &format!("/api/lobbies/{code}"), "", "").await;
    assert_eq!((status, &found["code"]), (200, &code.clone().into()));
    let (mut host, _) = connect_from(GOOD, addr, &format!("join/{code}")).await;
    let (_guest, guest_id) = connect_from([127, 0, 0, 3], addr, &format!("join/{code}")).await;
    assert_eq!(
        next_event(&mut host).await,
        JsonPeerEvent::NewPeer(guest_id)
    );
}

#[tokio::test]
async fn ice_servers_and_lobby_lookups_count_against_the_request_rate() {
    let (addr, _stop, _task) = start(Config {
        rate: 0.5,
        rate_burst: 3,
        turn_urls: vec!["turn:turn.example.com:3478".into()],
        turn_secret: Some("secret".into()),
        ..Config::default()
    })
    .await;
    let minter = [127, 0, 0, 9];
    for _ in 0..3 {
        let (status, ice) = api_from(minter, addr, "GET", "/api/ice", "", "").await;
        assert_eq!(status, 200, "{ice}");
        assert!(ice["iceServers"][0]["credential"].is_string(), "{ice}");
    }
    let (status, body) = http_from(minter, addr, "GET", "/api/ice", "", "").await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too many requests from 127.0.0.9"), "{body}");
    // Lookups draw from the same budget.
    let (status, lobby) = api_from(GOOD, addr, "POST", "/api/lobbies", "", "{}").await;
    assert_eq!(status, 201, "{lobby}");
    let lookup = format!("/api/lobbies/{}", lobby["code"].as_str().unwrap());
    let (status, _) = http_from(minter, addr, "GET", &lookup, "", "").await;
    assert_eq!(status, 429);
    for _ in 0..2 {
        let (status, _) = http_from(GOOD, addr, "GET", &lookup, "", "").await;
        assert_eq!(status, 200);
    }
    let (status, _) = http_from(GOOD, addr, "GET", &lookup, "", "").await;
    assert_eq!(status, 429);
    // Another address is not affected.
    let (status, _) = http_from([127, 0, 0, 3], addr, "GET", "/api/ice", "", "").await;
    assert_eq!(status, 200);
    assert_eq!(refused(addr, "rate_limit").await, 3.0);
}

#[tokio::test]
async fn lobbies_per_address_are_capped_and_names_checked() {
    let (addr, _stop, _task) = start(Config {
        rate: 100.0,
        rate_burst: 1000,
        max_lobbies_per_address: 3,
        ..Config::default()
    })
    .await;
    let hoarder = [127, 0, 0, 8];
    for n in 0..3 {
        let body = format!(r#"{{"name": "hoard {n}"}}"#);
        let (status, lobby) = api_from(hoarder, addr, "POST", "/api/lobbies", "", &body).await;
        assert_eq!(status, 201, "{lobby}");
    }
    let (status, body) = api_from(hoarder, addr, "POST", "/api/lobbies", "", "{}").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("too many lobbies from one address (3)"),
        "{body}"
    );
    assert_eq!(refused(addr, "lobbies_per_address").await, 1.0);
    // Someone else still creates one, and finds the hoarder's in the list.
    let (status, lobby) = api_from(
        GOOD,
        addr,
        "POST",
        "/api/lobbies",
        "",
        r#"{"name": "mine"}"#,
    )
    .await;
    assert_eq!(status, 201, "{lobby}");
    let (_, list) = api_from(GOOD, addr, "GET", "/api/lobbies", "", "").await;
    assert_eq!(list["lobbies"].as_array().unwrap().len(), 4);
    // A name that would read backwards, or break the lines it is shown in, is refused.
    for name in ["\u{202E}gnp.exe", "a\u{2066}b", "two\nlines", "nul\u{0}"] {
        let body = serde_json::json!({ "name": name }).to_string();
        let (status, refused) = api_from(GOOD, addr, "POST", "/api/lobbies", "", &body).await;
        assert_eq!(status, 400, "{name:?}: {refused}");
        assert!(
            refused["error"]
                .as_str()
                .unwrap()
                .contains("is not allowed"),
            "{refused}"
        );
    }
    let (_, list) = api_from(GOOD, addr, "GET", "/api/lobbies", "", "").await;
    assert_eq!(list["lobbies"].as_array().unwrap().len(), 4);
}

/// Limits by /64 over the address a trusted proxy names: the server reads
/// `X-Forwarded-For` when `--trust-proxy` is set; the key function itself is
/// unit-tested in `limits.rs`.
#[tokio::test]
async fn one_ipv6_64_is_one_address_for_the_limits() {
    let (addr, _stop, _task) = start(Config {
        trust_proxy: true,
        rate: 0.1,
        rate_burst: 2,
        ..Config::default()
    })
    .await;
    let from = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"] {
        let (status, body) = http(addr, "GET", "/api/ice", &from(ip), "").await;
        assert_eq!(status, 200, "{ip}: {body}");
    }
    let (status, body) = http(addr, "GET", "/api/ice", &from("2001:db8:1:2:abcd::9"), "").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too many requests from 2001:db8:1:2::/64"),
        "{body}"
    );
    // WebSocket connections from that /64 are refused too; the next /64 is not.
    let (status, body) = refusal(
        try_connect_from(GOOD, addr, "r", &[("x-forwarded-for", "2001:db8:1:2::77")]).await,
    );
    assert_eq!(status, 429, "{body}");
    let (status, _) = http(addr, "GET", "/api/ice", &from("2001:db8:1:3::1"), "").await;
    assert_eq!(status, 200);
    let mut ws = try_connect_from(GOOD, addr, "r", &[("x-forwarded-for", "2001:db8:1:3::2")])
        .await
        .unwrap();
    assert!(matches!(
        next_event(&mut ws).await,
        JsonPeerEvent::IdAssigned(_)
    ));
}

/// Over real IPv6 loopback: `::1` is limited as `::/64`, by connection count
/// and by rate.
#[tokio::test]
async fn ipv6_loopback_clients_are_limited_by_their_prefix() {
    let (addr, _stop, _task) = start_on(
        "[::1]:0".parse().unwrap(),
        Config {
            rate_burst: 2,
            rate: 0.1,
            max_connections_per_address: 3,
            ..Config::default()
        },
    )
    .await;
    let url = format!("ws://{addr}/r");
    let (mut a, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    assert!(matches!(
        next_event(&mut a).await,
        JsonPeerEvent::IdAssigned(_)
    ));
    let (_b, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // Two WebSockets and one idle connection are three: a fourth is refused
    // at once (the server accepts in order: the idle one is counted first).
    let idle = tcp_from("::1".parse().unwrap(), addr).await;
    let (status, body) = http(addr, "GET", "/health", "", "").await;
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("too many connections from this address"),
        "{body}"
    );
    // Once the idle one is gone, a third WebSocket is over the rate (a burst
    // of two for ::/64).
    drop(idle);
    let body = loop {
        let (status, body) = refusal(
            tokio_tungstenite::connect_async(&url)
                .await
                .map(|(ws, _)| ws),
        );
        assert_eq!(status, 429, "{body}");
        if !body.contains("too many connections") {
            break body;
        }
        // The server has not seen the idle connection close yet.
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(body.contains("too many requests from ::/64"), "{body}");
}
