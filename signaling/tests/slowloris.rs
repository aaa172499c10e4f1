//! Slowloris against the real server: connections that send a request's
//! headers a byte at a time are closed after the header timeout and their
//! file descriptors come back, while well-behaved clients are served. Alone in
//! its test binary, as it counts the process's open file descriptors.

mod common;

use std::net::IpAddr;
use std::time::Duration;

use common::*;
use gamenet_signaling::Config;
use matchbox_protocol::JsonPeerEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GOOD: [u8; 4] = [127, 0, 0, 1];
const LORIS: [u8; 4] = [127, 0, 0, 5];
/// Slow connections held open at once, under the per-address limit.
const SLOW: usize = 200;
/// Connections over the per-address limit.
const OVER: usize = 20;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Sends a request line and headers one byte every 100 ms, never finishing;
/// returns how long the server took to close the connection and what it
/// answered.
async fn slow_request(addr: std::net::SocketAddr) -> (Duration, String) {
    let mut tcp = tcp_from(IpAddr::from(LORIS), addr).await;
    let start = tokio::time::Instant::now();
    let request = b"GET /api/lobbies HTTP/1.1\r\nHost: x\r\nX-Padding: ".repeat(100);
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    for byte in request.iter().cycle() {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            },
            _ = tick.tick() => {
                // Once closed, writes may fail: the read tells.
                let _ = tcp.write_all(&[*byte]).await;
            }
        }
    }
    (
        start.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_off_and_their_descriptors_come_back() {
    let header_timeout = Duration::from_secs(2);
    let (addr, _stop, _task) = start(Config {
        header_timeout,
        max_connections_per_address: SLOW,
        ..Config::default()
    })
    .await;
    let (mut a, a_id) = connect_from(GOOD, addr, "good").await;
    let (mut b, b_id) = connect_from(GOOD, addr, "good").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let before = open_fds();

    let slow: Vec<_> = (0..SLOW)
        .map(|_| tokio::spawn(slow_request(addr)))
        .collect();
    // The server holds them all (and the request asking, and the pair).
    let held = (SLOW + 3) as f64;
    wait_for_metric(
        addr,
        "gamenet_signaling_tcp_connections",
        Duration::from_secs(5),
        |n| n == held,
    )
    .await;
    // Both ends of each slow connection are in this process now.
    assert!(open_fds() >= before + 2 * SLOW, "{} fds", open_fds());
    // More from that address are refused at once, with the reason.
    for _ in 0..OVER {
        let (took, answer) = slow_request(addr).await;
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.contains("too many connections"), "{answer}");
        assert!(took < Duration::from_secs(1), "{took:?}");
    }
    // Meanwhile the good clients are served: a signal, a newcomer, the API.
    signal_passes(&mut a, a_id, &mut b, b_id, "during").await;
    let (_c, c_id) = connect_from(GOOD, addr, "good").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(c_id));
    let (status, _) = api_from(GOOD, addr, "GET", "/api/lobbies", "", "").await;
    assert_eq!(status, 200);

    // Each slow connection is closed after the header timeout, without an
    // answer worth waiting for, however it trickles.
    for task in slow {
        let (took, answer) = tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("a slow connection still open after 20 s")
            .unwrap();
        assert!(
            took >= header_timeout - Duration::from_millis(100)
                && took <= header_timeout + Duration::from_secs(3),
            "closed after {took:?}: {answer}"
        );
        assert!(!answer.contains("200 OK"), "{answer}");
    }
    // The server let go of them: its count is down to the three good clients
    // (and the request asking), and so are the process's descriptors.
    wait_for_metric(
        addr,
        "gamenet_signaling_tcp_connections",
        Duration::from_secs(5),
        |n| n == 4.0,
    )
    .await;
    let after = open_fds();
    assert!(after <= before + 5, "{before} fds before, {after} after");
    assert_eq!(
        metric(
            addr,
            "gamenet_signaling_refused_total{reason=\"connections_per_address\"}"
        )
        .await,
        OVER as f64
    );
    signal_passes(&mut b, b_id, &mut a, a_id, "after").await;
}
