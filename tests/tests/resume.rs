//! Reconnecting through signaling, on real WebRTC in a namespace: the
//! signaling server killed and restarted mid-game (the peers keep their ids,
//! their links stay up, and a newcomer joins them afterwards), a peer process
//! killed and restarted with its reconnect key (it comes back under its id),
//! and a handshake that fails while UDP is down (a retry links the peer).

use std::process::Command;
use std::time::{Duration, Instant};

use gamenet::{Channel, Event, PeerId, PeerMesh};
use gamenet_e2e::{
    HOST, PORT, PeerProcess, http_get_body, isolated, join, next_event, unix_ms, wait_joined,
};

const APP: &str = "e2e";
const SECRET: &str = "e2e resume secret";

/// Runs the signaling server on a runtime of its own, so that it can vanish at
/// once, like a killed process, and come back on the same port.
struct KillableServer {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl KillableServer {
    fn start() -> Self {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let (up, is_up) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("server runtime");
            let config = gamenet_signaling::Config {
                listen: format!("0.0.0.0:{PORT}").parse().expect("address"),
                resume_secret: Some(SECRET.into()),
                ..Default::default()
            };
            let server = runtime
                .block_on(async { gamenet_signaling::Server::bind(&config) })
                .expect("bind");
            runtime.spawn(server.serve(futures::future::pending()));
            let _ = up.send(());
            let _ = stopped.recv();
            // Drops every connection without a word to anyone.
            runtime.shutdown_background();
        });
        is_up.recv().expect("server started");
        Self { stop, thread }
    }

    fn kill(self) {
        self.stop.send(()).expect("server running");
        self.thread.join().expect("server thread");
    }
}

/// The server's count of connected WebSocket clients.
async fn clients() -> f64 {
    let metrics = http_get_body(&format!("http://{HOST}:{PORT}/metrics"))
        .await
        .unwrap_or_default();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gamenet_signaling_clients ")?.parse().ok())
        .unwrap_or(0.0)
}

/// Runs `mesh` while something else happens; anything but messages fails.
async fn undisturbed(mesh: &mut PeerMesh, name: &str) {
    loop {
        match mesh.next_event().await {
            Ok(Event::Message { .. }) => {}
            Ok(other) => panic!("{name}: unexpected {other:?}"),
            Err(e) => panic!("{name}: mesh failed: {e}"),
        }
    }
}

/// `from` sends `to` a reliable message, which arrives.
async fn passes(from: &mut PeerMesh, to: &mut PeerMesh, tag: &[u8]) {
    let to_id = to.id().expect("id");
    from.send(to_id, Channel::Reliable, tag).expect("send");
    loop {
        match next_event(to, Duration::from_secs(5)).await {
            Event::Message { payload, .. } if &payload[..] == tag => return,
            Event::Message { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn signaling_killed_and_restarted_keeps_ids_and_admits_a_newcomer() {
    isolated(
        "signaling_killed_and_restarted_keeps_ids_and_admits_a_newcomer",
        || async {
            let server = KillableServer::start();
            let url = format!("ws://{HOST}:{PORT}/room");
            let mut a = join(&url, APP).expect("join");
            let mut b = join(&url, APP).expect("join");
            tokio::join!(wait_joined(&mut a, 1), wait_joined(&mut b, 1));
            let (a_id, b_id) = (a.id().expect("id"), b.id().expect("id"));

            server.kill();
            let killed = Instant::now();
            println!("signaling killed at {}", unix_ms());
            let watch = async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let server = KillableServer::start();
                println!("signaling restarted at {}", unix_ms());
                // Both come back by themselves.
                while clients().await < 2.0 {
                    assert!(
                        killed.elapsed() < Duration::from_secs(20),
                        "the peers did not reconnect to signaling"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                println!(
                    "RESULT signaling restart: both peers reconnected {:.2}s after the kill",
                    killed.elapsed().as_secs_f64()
                );
                server
            };
            // Nothing happens to the link meanwhile: no departure, no new peer.
            let server = tokio::select! {
                server = watch => server,
                () = undisturbed(&mut a, "a") => unreachable!(),
                () = undisturbed(&mut b, "b") => unreachable!(),
            };
            passes(&mut a, &mut b, b"still linked").await;

            // A newcomer joins the running room and links with both, under the
            // ids they had before the restart.
            let mut c = join(&url, APP).expect("join");
            let (mut a_new, mut b_new, mut c_peers) = tokio::join!(
                wait_joined(&mut a, 1),
                wait_joined(&mut b, 1),
                wait_joined(&mut c, 2)
            );
            let c_id = c.id().expect("id");
            assert_eq!((a_new.pop(), b_new.pop()), (Some(c_id), Some(c_id)));
            c_peers.sort();
            let mut expected = vec![a_id, b_id];
            expected.sort();
            assert_eq!(c_peers, expected);
            assert_eq!((a.id(), b.id()), (Some(a_id), Some(b_id)));
            passes(&mut c, &mut a, b"hello a").await;
            passes(&mut b, &mut c, b"hello c").await;
            println!("c linked with a and b at {}", unix_ms());
            server.kill();
        },
    );
}

/// Waits for `peer` to join `mesh` again, allowing its old link's end first.
async fn wait_rejoined(mesh: &mut PeerMesh, peer: PeerId, within: Duration) -> Instant {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let event = tokio::time::timeout_at(deadline, mesh.next_event())
            .await
            .expect("the peer did not come back")
            .expect("mesh");
        match event {
            Event::PeerJoined(p) if p == peer => return Instant::now(),
            Event::PeerLeft { peer: p, reason } if p == peer => {
                println!("old link ended: {reason}");
            }
            Event::PeerInterrupted(_) | Event::PeerResumed(_) | Event::Message { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn a_peer_process_restarted_with_its_key_comes_back_under_its_id() {
    isolated(
        "a_peer_process_restarted_with_its_key_comes_back_under_its_id",
        || async {
            let server = KillableServer::start();
            let url = format!("ws://{HOST}:{PORT}/restart");
            let mut a = join(&url, APP).expect("join");
            let key = "victim-key-0123456789";
            let spawn = || {
                let mut command = Command::new(PeerProcess::executable());
                command.env("GAMENET_E2E_KEY", key);
                PeerProcess::spawn_with(command, &url, APP, "echo")
            };
            let victim = spawn();
            let victim_id = wait_joined(&mut a, 1).await[0];
            let said = victim.wait_line("id ", Duration::from_secs(10));
            assert_eq!(said, format!("id {victim_id}"));

            victim.signal("KILL");
            drop(victim);
            let killed = Instant::now();
            let victim = spawn();
            let said = victim.wait_line("id ", Duration::from_secs(10));
            assert_eq!(said, format!("id {victim_id}"), "the same id again");
            let back = wait_rejoined(&mut a, victim_id, Duration::from_secs(20)).await;
            victim.wait_line(
                &format!("joined {}", a.id().expect("id")),
                Duration::from_secs(5),
            );
            println!(
                "RESULT process restart: linked again {:.2}s after the kill",
                (back - killed).as_secs_f64()
            );
            // The restarted process echoes on the new link.
            a.send(victim_id, Channel::Reliable, b"are you back")
                .expect("send");
            loop {
                match next_event(&mut a, Duration::from_secs(5)).await {
                    Event::Message { payload, .. } => {
                        assert_eq!(&payload[..], b"are you back");
                        break;
                    }
                    Event::PeerInterrupted(_) | Event::PeerResumed(_) => {}
                    other => panic!("unexpected {other:?}"),
                }
            }
            server.kill();
        },
    );
}

/// Drops (or stops dropping) every UDP packet of this namespace, over IPv4
/// and IPv6: ICE would otherwise find a way over the other.
fn udp_down(down: bool) {
    assert!(
        std::env::var_os(gamenet_e2e::NETNS_ENV).is_some(),
        "only in a test namespace"
    );
    for tables in ["iptables", "ip6tables"] {
        for chain in ["INPUT", "OUTPUT"] {
            let op = if down { "-I" } else { "-D" };
            let status = Command::new(tables)
                .args(["-w", op, chain, "-p", "udp", "-j", "DROP"])
                .status()
                .expect("run iptables");
            assert!(status.success(), "{tables} {op} {chain}");
        }
    }
}

#[test]
fn a_handshake_that_fails_while_udp_is_down_is_retried() {
    isolated(
        "a_handshake_that_fails_while_udp_is_down_is_retried",
        || async {
            let server = KillableServer::start();
            let url = format!("ws://{HOST}:{PORT}/retry");
            let connect_timeout = Duration::from_secs(3);
            let joiner = |url: &str| {
                let (mesh, driver) = PeerMesh::builder(url)
                    .app_id(APP)
                    .ice_server(gamenet::IceServer::none())
                    .connect_timeout(connect_timeout)
                    .build()
                    .expect("join");
                tokio::spawn(driver);
                mesh
            };
            let mut a = joiner(&url);
            // Wait for a's id: it is in the room.
            let deadline = Instant::now() + Duration::from_secs(10);
            while a.id().is_none() {
                assert!(Instant::now() < deadline, "no id");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            // UDP goes down before b joins: the first attempt cannot connect and
            // times out; UDP stays down past it.
            udp_down(true);
            let mut b = joiner(&url);
            let outage = connect_timeout * 2 + Duration::from_secs(1);
            let started = Instant::now();
            tokio::select! {
                () = tokio::time::sleep(outage) => {}
                event = a.next_event() => panic!("a: unexpected {event:?} while UDP is down"),
                event = b.next_event() => panic!("b: unexpected {event:?} while UDP is down"),
            }
            udp_down(false);
            let back = Instant::now();
            tokio::join!(wait_joined(&mut a, 1), wait_joined(&mut b, 1));
            println!(
                "RESULT handshake retry: linked {:.2}s after UDP came back ({:.1}s after b joined; \
             each attempt bounded at {:?})",
                back.elapsed().as_secs_f64(),
                started.elapsed().as_secs_f64(),
                connect_timeout
            );
            passes(&mut a, &mut b, b"linked").await;
            server.kill();
        },
    );
}
