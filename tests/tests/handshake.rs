//! Rogue clients speaking matchbox's signaling protocol by hand send bad
//! WebRTC handshakes to two linked peers through the real signaling server:
//! signals that do not parse (refused before the WebRTC stack sees them, the
//! sender reported and banned), then signals that parse but that the stack
//! rejects (costing that handshake only), and vanish in the middle of a
//! handshake. The two peers stay linked, never see a rogue join, and a real
//! peer that comes afterwards links with both.
//! Losing the signaling server in the middle of handshakes leaves the links up
//! as well.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use gamenet::{Channel, Event, PeerId, PeerMesh};
use gamenet_e2e::{HOST, PORT, isolated, join, start_server, unix_ms, wait_joined};
use serde_json::json;
use uuid::Uuid;

mod rogue;
use rogue::{OFFER_WITHOUT_MID, Rogue};

const APP: &str = "e2e";

/// Time for a peer to take one bad signal in before the next comes.
const STEP: Duration = Duration::from_millis(500);

#[test]
fn bad_handshakes_from_a_rogue_client_leave_the_room_linked() {
    isolated(
        "bad_handshakes_from_a_rogue_client_leave_the_room_linked",
        || async {
            let base = start_server().await;
            let url = format!("{base}/room");
            let mut a = join(&url, APP).expect("join");
            let mut b = join(&url, APP).expect("join");
            tokio::join!(wait_joined(&mut a, 1), wait_joined(&mut b, 1));
            let honest = [uuid_of(a.id().expect("id")), uuid_of(b.id().expect("id"))];
            println!("a and b linked at {}", unix_ms());
            let (mut a_refused, mut b_refused) = (Vec::new(), Vec::new());

            // A rogue whose signals do not parse: each peer refuses the first
            // before its WebRTC stack sees it, reports the sender and drops
            // everything it sends afterwards, good signals included.
            let mut garbler = Rogue::join(&url).await;
            let garbler_id = garbler.id;
            let script = async {
                // The server announces the newcomer: both peers offer to it.
                let offers = garbler.wait_for("Offer", &honest).await;
                // Shapes the server passes on, to each peer in turn.
                for bad in [
                    json!({ "Answer": "garbage" }),
                    json!({ "Offer": "garbage" }),
                    json!({ "Offer": "v=0\r\n" }),
                    json!({ "IceCandidate": r#"{"candidate":"candidate:garbage","sdpMid":"0","sdpMLineIndex":0}"# }),
                    json!({ "IceCandidate": r#"{"candidate":"candidate:1 1 UDP 1 10.77.0.9 x typ nonsense","sdpMid":"0","sdpMLineIndex":0}"# }),
                    json!({ "IceCandidate": r#"{"sdpMid":"0"}"# }),
                ] {
                    for peer in honest {
                        garbler.signal(peer, bad.clone()).await;
                    }
                }
                // A real offer after that is dropped too: no answer comes.
                garbler
                    .signal(honest[0], json!({ "Offer": offers[&honest[1]] }))
                    .await;
                garbler
                    .signal(honest[1], json!({ "Offer": offers[&honest[0]] }))
                    .await;
                garbler.expect_silence(&honest, 4 * STEP).await;
                // A shape the server refuses: it closes the garbler.
                garbler
                    .signal(honest[0], json!({ "IceCandidate": "not json" }))
                    .await;
                tokio::time::sleep(STEP).await;
                println!("garbage sent at {}", unix_ms());
            };
            tokio::select! {
                () = script => {}
                () = undisturbed(&mut a, "a", &mut a_refused) => {}
                () = undisturbed(&mut b, "b", &mut b_refused) => {}
            }
            let garbler_peer = PeerId(garbler_id.as_u128());
            assert_eq!(a_refused, [garbler_peer], "a reports the garbler once");
            assert_eq!(b_refused, [garbler_peer], "b reports the garbler once");
            drop(garbler);

            // A rogue whose signals parse but that the WebRTC stack rejects:
            // that costs the one handshake, and the rogue may try again.
            let mut rogue = Rogue::join(&url).await;
            let script = async {
                let offers = rogue.wait_for("Offer", &honest).await;
                for peer in honest {
                    rogue
                        .signal(peer, json!({ "Offer": OFFER_WITHOUT_MID }))
                        .await;
                    tokio::time::sleep(STEP).await;
                }
                println!("rejected offers sent at {}", unix_ms());
                // Each peer still handshakes with the rogue: it answers a real
                // offer (the other peer's), or, if it is offering again itself
                // (it retries with backoff) and holds the lower id, offers.
                rogue
                    .signal(honest[0], json!({ "Offer": offers[&honest[1]] }))
                    .await;
                rogue
                    .signal(honest[1], json!({ "Offer": offers[&honest[0]] }))
                    .await;
                rogue.wait_for_any(&["Answer", "Offer"], &honest).await;
                println!("both handshake again at {}", unix_ms());
                // Candidates that parse but that no stack can use, in the
                // middle of those handshakes.
                for peer in honest {
                    for candidate in [
                        r#"{"candidate":"candidate:1 1 UDP 1 10.77.0.9 9 typ host","sdpMid":"7","sdpMLineIndex":7}"#,
                        r#"{"candidate":"candidate:2 1 TCP 1 10.77.0.9 0 typ relay","sdpMid":"0","sdpMLineIndex":0}"#,
                        "null",
                    ] {
                        rogue
                            .signal(peer, json!({ "IceCandidate": candidate }))
                            .await;
                    }
                }
                tokio::time::sleep(2 * STEP).await;
            };
            tokio::select! {
                () = script => {}
                () = undisturbed(&mut a, "a", &mut a_refused) => {}
                () = undisturbed(&mut b, "b", &mut b_refused) => {}
            }
            assert_eq!(a_refused, [garbler_peer], "a refused nothing that parses");
            assert_eq!(b_refused, [garbler_peer], "b refused nothing that parses");

            // The rogue vanishes in the middle of both handshakes.
            drop(rogue);
            println!("rogue gone at {}", unix_ms());
            let settle = tokio::time::sleep(Duration::from_secs(3));
            tokio::select! {
                () = settle => {}
                () = undisturbed(&mut a, "a", &mut a_refused) => {}
                () = undisturbed(&mut b, "b", &mut b_refused) => {}
            }

            let b_id = PeerId(honest[1].as_u128());
            let a_id = PeerId(honest[0].as_u128());
            assert_eq!(a.peers().collect::<Vec<_>>(), [b_id]);
            assert_eq!(b.peers().collect::<Vec<_>>(), [a_id]);
            // Five seconds of messages both ways.
            let mut meshes = exchange(vec![a, b], 250).await.into_iter();
            println!("a and b exchanged 250 messages each way by {}", unix_ms());

            // A real peer joins afterwards and links with both.
            let (mut a, mut b) = (meshes.next().expect("a"), meshes.next().expect("b"));
            let mut c = join(&url, APP).expect("join");
            let (a_new, b_new, c_peers) = tokio::join!(
                wait_joined(&mut a, 1),
                wait_joined(&mut b, 1),
                wait_joined(&mut c, 2)
            );
            let c_id = c.id().expect("id");
            assert_eq!((a_new, b_new), (vec![c_id], vec![c_id]));
            let mut c_peers = c_peers;
            c_peers.sort();
            let mut expected = vec![a_id, b_id];
            expected.sort();
            assert_eq!(c_peers, expected);
            println!("c linked with a and b at {}", unix_ms());
            exchange(vec![a, b, c], 100).await;
            println!(
                "a, b and c exchanged 100 messages each way by {}",
                unix_ms()
            );
        },
    );
}

#[test]
fn signaling_lost_in_the_middle_of_handshakes_leaves_the_links_up() {
    isolated(
        "signaling_lost_in_the_middle_of_handshakes_leaves_the_links_up",
        || async {
            // The server runs on a runtime of its own, so that it can vanish at
            // once, like a crashed process: a graceful shutdown would tell each
            // peer the other left.
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let server = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("server runtime");
                let config = gamenet_signaling::Config {
                    listen: format!("0.0.0.0:{PORT}").parse().expect("address"),
                    ..Default::default()
                };
                let server = gamenet_signaling::Server::bind(&config).expect("bind");
                runtime.spawn(server.serve(futures::future::pending()));
                let _ = stopped.recv();
                // Drops every connection without a word to anyone.
                runtime.shutdown_background();
            });
            let url = format!("ws://{HOST}:{PORT}/room");
            let mut a = join(&url, APP).expect("join");
            let mut b = join(&url, APP).expect("join");
            tokio::join!(wait_joined(&mut a, 1), wait_joined(&mut b, 1));
            let honest = [uuid_of(a.id().expect("id")), uuid_of(b.id().expect("id"))];

            // A newcomer that never answers: both peers wait for its answer when
            // the server goes away.
            let mut rogue = Rogue::join(&url).await;
            let (mut a_refused, mut b_refused) = (Vec::new(), Vec::new());
            let script = async {
                rogue.wait_for("Offer", &honest).await;
                stop.send(()).expect("server running");
                println!("signaling gone at {}", unix_ms());
                tokio::time::sleep(Duration::from_secs(3)).await;
            };
            tokio::select! {
                () = script => {}
                () = undisturbed(&mut a, "a", &mut a_refused) => {}
                () = undisturbed(&mut b, "b", &mut b_refused) => {}
            }
            drop(rogue);
            server.join().expect("server thread");
            exchange(vec![a, b], 100).await;
            println!("a and b exchanged 100 messages each way by {}", unix_ms());
        },
    );
}

fn uuid_of(peer: PeerId) -> Uuid {
    Uuid::from_u128(peer.0)
}

/// Runs `mesh` while something else happens; any event but a message or a
/// refused signal (recorded in `refused`), or the mesh failing, fails the
/// test. Never returns.
async fn undisturbed(mesh: &mut PeerMesh, name: &str, refused: &mut Vec<PeerId>) {
    loop {
        match mesh.next_event().await {
            Ok(Event::Message { .. }) => {}
            Ok(Event::SignalRefused { peer, reason }) => {
                println!("{name}: refused a signal from {peer}: {reason}");
                refused.push(peer);
            }
            Ok(other) => panic!("{name}: unexpected {other:?}"),
            Err(e) => panic!("{name}: mesh failed: {e}"),
        }
    }
}

/// Every mesh sends every one of its peers `count` numbered reliable messages,
/// one every 20 ms, and must receive all of theirs, in order, with nothing else
/// happening; then the meshes come back.
async fn exchange(meshes: Vec<PeerMesh>, count: u32) -> Vec<PeerMesh> {
    let total = meshes.len();
    let done = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = meshes
        .into_iter()
        .enumerate()
        .map(|(i, mesh)| tokio::spawn(talk(mesh, i, count, total, Arc::clone(&done))))
        .collect();
    let mut meshes = Vec::new();
    for task in tasks {
        meshes.push(task.await.expect("talker"));
    }
    meshes
}

async fn talk(
    mut mesh: PeerMesh,
    me: usize,
    count: u32,
    total: usize,
    done: Arc<AtomicUsize>,
) -> PeerMesh {
    let peers: Vec<PeerId> = mesh.peers().collect();
    assert_eq!(peers.len(), total - 1, "mesh {me}: peers {peers:?}");
    let mut next: HashMap<PeerId, u32> = peers.iter().map(|&p| (p, 0)).collect();
    let mut sent = 0;
    let mut finished = false;
    let mut pace = tokio::time::interval(Duration::from_millis(20));
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(20) * count + Duration::from_secs(20);
    loop {
        if !finished && sent == count && next.values().all(|&n| n == count) {
            finished = true;
            done.fetch_add(1, Ordering::SeqCst);
        }
        if done.load(Ordering::SeqCst) == total {
            return mesh;
        }
        tokio::select! {
            () = tokio::time::sleep_until(deadline) => panic!("mesh {me}: timed out, sent {sent}, received {next:?}"),
            _ = pace.tick() => {
                if sent < count {
                    for &peer in &peers {
                        mesh.send(peer, Channel::Reliable, &sent.to_le_bytes()).expect("send");
                    }
                    sent += 1;
                }
            }
            event = mesh.next_event() => match event {
                Ok(Event::Message { peer, channel: Channel::Reliable, payload }) => {
                    let seq = u32::from_le_bytes(payload[..].try_into().expect("a numbered message"));
                    let expected = next.get_mut(&peer).unwrap_or_else(|| panic!("mesh {me}: message from {peer}"));
                    assert_eq!(seq, *expected, "mesh {me}: message from {peer} lost or reordered");
                    *expected += 1;
                }
                Ok(other) => panic!("mesh {me}: unexpected {other:?}"),
                Err(e) => panic!("mesh {me}: failed: {e}"),
            }
        }
    }
}
