//! Native peers over real WebRTC through the real signaling server, each test in
//! its own isolated network namespace.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::SinkExt;
use gamenet::{Channel, Event, HandshakeError, PeerId, PeerMesh};
use gamenet_e2e::{
    PeerProcess, isolated, join, keep_alive, next_event, start_server, unix_ms, wait_joined,
};

const APP: &str = "e2e";
const RELIABLE_COUNT: u32 = 10_000;
const UNRELIABLE_COUNT: u32 = 500;

/// A message of the streams: the sender's index, a sequence number, and filler.
fn message(from: u8, seq: u32) -> Vec<u8> {
    let mut m = vec![from];
    m.extend_from_slice(&seq.to_le_bytes());
    m.extend_from_slice(&[0xab; 27]);
    m
}

fn big_message() -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..1 << 20)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[derive(Debug, Default)]
struct Report {
    reliable_in_order: HashMap<PeerId, u32>,
    unreliable_seen: HashMap<PeerId, Vec<bool>>,
    big_received: usize,
    stats: HashMap<PeerId, gamenet::PeerStats>,
}

/// How many of the three peers have passed each phase.
#[derive(Default)]
struct Phases {
    /// Received every reliable message from both others.
    reliable_done: AtomicUsize,
    /// Finished everything.
    done: AtomicUsize,
}

/// One peer of the three: streams reliably to every other peer as it joins; once
/// every peer has all its reliable messages, streams unreliably (on a congested
/// association, unreliable messages are dropped by design); checks what arrives.
async fn stream_peer(mut mesh: PeerMesh, me: u8, send_big: bool, phases: Arc<Phases>) -> Report {
    let mut report = Report::default();
    let mut peers: Vec<PeerId> = Vec::new();
    let big = big_message();
    let big_expected = if send_big { 0 } else { 1 };
    let mut unreliable_sent = 0;
    let mut pace = tokio::time::interval(Duration::from_millis(2));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let received_all = |report: &Report| {
        report.reliable_in_order.len() == 2
            && report
                .reliable_in_order
                .values()
                .all(|&n| n == RELIABLE_COUNT)
            && report.big_received == big_expected
    };
    let mut marked_reliable = false;
    loop {
        if !marked_reliable && received_all(&report) {
            marked_reliable = true;
            phases.reliable_done.fetch_add(1, Ordering::SeqCst);
        }
        if peers.len() == 2 && unreliable_sent == UNRELIABLE_COUNT && received_all(&report) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer {me} timed out: {report:?}"
        );
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => panic!("peer {me} timed out: {report:?}"),
            _ = pace.tick() => {
                if phases.reliable_done.load(Ordering::SeqCst) < 3 || unreliable_sent == UNRELIABLE_COUNT {
                    continue;
                }
                for &peer in &peers {
                    mesh.send(peer, Channel::Unreliable, &message(me, unreliable_sent)).expect("send unreliable");
                }
                unreliable_sent += 1;
            }
            event = mesh.next_event() => match event.expect("mesh") {
                Event::PeerJoined(peer) => {
                    peers.push(peer);
                    for seq in 0..RELIABLE_COUNT {
                        mesh.send(peer, Channel::Reliable, &message(me, seq)).expect("queue reliable");
                    }
                    if send_big {
                        mesh.send(peer, Channel::Reliable, &big).expect("queue 1 MiB");
                    }
                }
                Event::Message { channel: Channel::Reliable, payload, .. } if payload.len() == big.len() => {
                    assert_eq!(&payload[..], &big[..], "1 MiB message corrupted");
                    report.big_received += 1;
                }
                Event::Message { peer, channel, payload } => {
                    assert_eq!(payload.len(), 32, "message of the wrong size");
                    let seq = u32::from_le_bytes(payload[1..5].try_into().expect("seq"));
                    match channel {
                        Channel::Reliable => {
                            let next = report.reliable_in_order.entry(peer).or_default();
                            assert_eq!(seq, *next, "reliable message lost, duplicated or reordered");
                            *next += 1;
                        }
                        Channel::Unreliable => {
                            let seen = report
                                .unreliable_seen
                                .entry(peer)
                                .or_insert_with(|| vec![false; UNRELIABLE_COUNT as usize]);
                            assert!(!seen[seq as usize], "unreliable message duplicated");
                            seen[seq as usize] = true;
                        }
                    }
                }
                other => panic!("peer {me}: unexpected {other:?}"),
            }
        }
    }
    for &peer in &peers {
        report
            .stats
            .insert(peer, mesh.stats(peer).expect("peer still linked"));
    }
    // Keep answering until every peer is done, so that nobody times out.
    phases.done.fetch_add(1, Ordering::SeqCst);
    while phases.done.load(Ordering::SeqCst) < 3 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer {me} timed out waiting for the others"
        );
        let tick = tokio::time::Instant::now() + Duration::from_millis(50);
        if let Ok(event) = tokio::time::timeout_at(tick, mesh.next_event()).await {
            match event.expect("mesh") {
                Event::Message {
                    peer,
                    channel: Channel::Unreliable,
                    payload,
                } => {
                    let seq = u32::from_le_bytes(payload[1..5].try_into().expect("seq"));
                    if let Some(seen) = report.unreliable_seen.get_mut(&peer) {
                        seen[seq as usize] = true;
                    }
                }
                // The first to see everyone done leaves; the others may see it go.
                Event::Message { .. } | Event::PeerLeft { .. } => {}
                other => panic!("peer {me}: unexpected {other:?} while lingering"),
            }
        }
    }
    report
}

#[test]
fn three_native_peers_stream_reliably_and_unreliably() {
    isolated(
        "three_native_peers_stream_reliably_and_unreliably",
        || async {
            let url = format!("{}/stream", start_server().await);
            let phases = Arc::new(Phases::default());
            let tasks: Vec<_> = (0..3u8)
                .map(|me| {
                    let mesh = join(&url, APP).expect("join");
                    tokio::spawn(stream_peer(mesh, me, me == 0, phases.clone()))
                })
                .collect();
            for (me, task) in tasks.into_iter().enumerate() {
                let report = task.await.expect("peer task");
                assert_eq!(
                    report.unreliable_seen.len(),
                    2,
                    "peer {me}: no unreliable from someone"
                );
                for (peer, n) in &report.reliable_in_order {
                    assert_eq!(*n, RELIABLE_COUNT, "peer {me} from {peer}");
                }
                for (peer, seen) in &report.unreliable_seen {
                    let arrived = seen.iter().filter(|&&s| s).count();
                    println!(
                        "peer {me} from {peer}: {arrived}/{UNRELIABLE_COUNT} unreliable arrived"
                    );
                    assert!(
                        arrived * 10 >= UNRELIABLE_COUNT as usize * 9,
                        "too much unreliable loss"
                    );
                    let stats = &report.stats[peer];
                    println!("  stats: {stats:?}");
                    assert!(
                        stats
                            .rtt
                            .is_some_and(|rtt| rtt < Duration::from_millis(500))
                    );
                }
                if me != 0 {
                    assert_eq!(
                        report.big_received, 1,
                        "peer {me} did not get the 1 MiB message"
                    );
                }
            }
        },
    );
}

/// Waits for a peer to leave `mesh` and returns why and when.
async fn wait_left(mesh: &mut PeerMesh, peer: PeerId) -> (gamenet::LeaveReason, Instant) {
    loop {
        match next_event(mesh, Duration::from_secs(20)).await {
            Event::PeerLeft { peer: p, reason } if p == peer => return (reason, Instant::now()),
            Event::Message { .. } | Event::PeerInterrupted(_) | Event::PeerResumed(_) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_killed_peer_process_is_reported_left_within_the_timeout() {
    isolated(
        "a_killed_peer_process_is_reported_left_within_the_timeout",
        || async {
            let url = format!("{}/kill", start_server().await);
            let mut a = join(&url, APP).expect("join");
            let mut b = join(&url, APP).expect("join");
            let victim = PeerProcess::spawn(&url, APP, "idle");
            let (a_peers, b_peers) = tokio::join!(wait_joined(&mut a, 2), wait_joined(&mut b, 2));
            let b_id = b.id().expect("id");
            let victim_id = *a_peers.iter().find(|&&p| p != b_id).expect("victim");
            assert!(b_peers.contains(&victim_id));

            let timeout = a.config().disconnect_timeout;
            let killed = Instant::now();
            victim.signal("KILL");
            let ((ra, ta), (rb, tb)) =
                tokio::join!(wait_left(&mut a, victim_id), wait_left(&mut b, victim_id));
            println!(
                "reported after {:?} ({ra}) and {:?} ({rb})",
                ta - killed,
                tb - killed
            );
            assert!(ta - killed <= timeout + Duration::from_secs(1));
            assert!(tb - killed <= timeout + Duration::from_secs(1));
            // The survivors still talk.
            a.send(b_id, Channel::Reliable, b"still here")
                .expect("send");
            let received = tokio::select! {
                event = next_event(&mut b, Duration::from_secs(5)) => event,
                () = keep_alive(&mut a) => unreachable!(),
            };
            match received {
                Event::Message { payload, .. } => assert_eq!(&payload[..], b"still here"),
                other => panic!("unexpected {other:?}"),
            }
        },
    );
}

#[test]
fn a_frozen_peer_times_out_by_heartbeat() {
    isolated("a_frozen_peer_times_out_by_heartbeat", || async {
        let url = format!("{}/freeze", start_server().await);
        let mut a = join(&url, APP).expect("join");
        let frozen = PeerProcess::spawn(&url, APP, "idle");
        let peer = wait_joined(&mut a, 1).await[0];
        // Stopped, the process keeps its sockets open: only heartbeats can tell.
        let stopped = Instant::now();
        frozen.signal("STOP");
        let (reason, at) = wait_left(&mut a, peer).await;
        let elapsed = at - stopped;
        println!("frozen peer reported after {elapsed:?}: {reason}");
        assert_eq!(reason, gamenet::LeaveReason::TimedOut);
        let timeout = a.config().disconnect_timeout;
        assert!(
            elapsed >= timeout - Duration::from_millis(200)
                && elapsed <= timeout + Duration::from_secs(1)
        );
    });
}

#[test]
fn a_handshake_mismatch_is_an_error_event() {
    isolated("a_handshake_mismatch_is_an_error_event", || async {
        let url = format!("{}/mismatch", start_server().await);
        let mut a = join(&url, "game-a").expect("join");
        let mut b = join(&url, "game-b").expect("join");
        let (ea, eb) = tokio::join!(
            next_event(&mut a, Duration::from_secs(30)),
            next_event(&mut b, Duration::from_secs(30))
        );
        for (event, theirs) in [(ea, "game-b"), (eb, "game-a")] {
            match event {
                Event::HandshakeFailed {
                    error: HandshakeError::AppMismatch { theirs: t, .. },
                    ..
                } => {
                    assert_eq!(t, theirs)
                }
                other => panic!("expected a handshake failure, got {other:?}"),
            }
        }
        assert_eq!(a.peers().count() + b.peers().count(), 0);
    });
}

#[test]
fn a_peer_of_another_room_cannot_signal_into_this_room() {
    isolated(
        "a_peer_of_another_room_cannot_signal_into_this_room",
        || async {
            use matchbox_protocol::{JsonPeerEvent, JsonPeerRequest};
            use tokio_tungstenite::tungstenite::Message;
            let base = start_server().await;
            let mut a = join(&format!("{base}/room-a"), APP).expect("join");
            let mut b = join(&format!("{base}/room-a"), APP).expect("join");
            let (a_peers, _) = tokio::join!(wait_joined(&mut a, 1), wait_joined(&mut b, 1));
            let b_id = a_peers[0];
            let a_id = a.id().expect("id");

            // An intruder in room b forges an offer to a. Were it delivered, a would
            // answer it through the server.
            let (mut intruder, _) = tokio_tungstenite::connect_async(format!("{base}/room-b"))
                .await
                .expect("ws");
            let forged = JsonPeerRequest::Signal {
                receiver: matchbox_protocol::PeerId(uuid_of(a_id)),
                data: serde_json::json!({ "Offer": "v=0\r\no=- 0 0 IN IP4 10.77.0.1\r\ns=-\r\nt=0 0\r\n" }),
            };
            intruder
                .send(Message::Text(forged.to_string().into()))
                .await
                .expect("send");
            let quiet_until = tokio::time::Instant::now() + Duration::from_secs(3);
            let listen = async {
                use futures::StreamExt;
                while let Ok(Some(Ok(message))) =
                    tokio::time::timeout_at(quiet_until, intruder.next()).await
                {
                    if let Message::Text(text) = message {
                        let event: JsonPeerEvent = text.parse().expect("event");
                        assert!(
                            matches!(event, JsonPeerEvent::IdAssigned(_)),
                            "intruder got {event:?}"
                        );
                    }
                }
            };
            tokio::select! {
                () = listen => {}
                () = keep_alive(&mut a) => {}
                () = keep_alive(&mut b) => {}
            }
            // Room a is undisturbed.
            assert_eq!(a.peers().collect::<Vec<_>>(), vec![b_id]);
            a.send(b_id, Channel::Reliable, b"private").expect("send");
            match next_event(&mut b, Duration::from_secs(5)).await {
                Event::Message { payload, .. } => assert_eq!(&payload[..], b"private"),
                other => panic!("unexpected {other:?}"),
            }
            println!("intruder heard nothing by {}", unix_ms());
        },
    );
}

fn uuid_of(peer: PeerId) -> uuid::Uuid {
    uuid::Uuid::from_u128(peer.0)
}
