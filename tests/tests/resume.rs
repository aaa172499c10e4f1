//! Reconnecting through signaling, on real WebRTC in a namespace: the
//! signaling server killed and restarted mid-game (the peers keep their ids,
//! their links stay up, and a newcomer joins them afterwards), a peer process
//! killed and restarted with its reconnect key (it comes back under its id),
//! and a handshake that fails while UDP is down (a retry links the peer).
//! The first two run twice: on bare meshes, and under headless arena games
//! whose confirmed checksums are compared frame by frame (one timeline).

use std::process::Command;
use std::time::{Duration, Instant};

use gamenet::rollback::{Frame, RollbackStart};
use gamenet::{Channel, Event, PeerId, PeerMesh};
use gamenet_e2e::faults::{AppTimeline, ReportedGame, Timeline};
use gamenet_e2e::session::{MID_GAME_RUN, MidGame, step_games};
use gamenet_e2e::{
    HOST, KillableServer, PORT, PeerProcess, http_get_body, isolated, join, next_event, unix_ms,
    wait_joined,
};

const APP: &str = "e2e";
const SECRET: &str = "e2e resume secret";

/// The signaling server on [`PORT`], resuming clients by their keys.
fn signaling() -> KillableServer {
    KillableServer::start(gamenet_signaling::Config {
        listen: format!("0.0.0.0:{PORT}").parse().expect("address"),
        resume_secret: Some(SECRET.into()),
        ..Default::default()
    })
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
            let server = signaling();
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
                let server = signaling();
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
            let server = signaling();
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
            let server = signaling();
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

/// The lowest confirmed frame of the apps.
fn min_confirmed(timeline: &Timeline) -> Frame {
    timeline
        .apps()
        .iter()
        .map(AppTimeline::confirmed_frame)
        .min()
        .unwrap_or(0)
}

#[test]
fn signaling_killed_and_restarted_mid_game_then_a_late_joiner_plays_one_game() {
    isolated(
        "signaling_killed_and_restarted_mid_game_then_a_late_joiner_plays_one_game",
        || async {
            let server = signaling();
            let url = format!("ws://{HOST}:{PORT}/midgame");
            let mut mid = MidGame::start(move |start, seed| {
                arena::headless_app_as(&url, 3, start, seed, |m| m)
            });

            server.kill();
            let killed = mid.timeline.mark("signaling killed");
            let at_kill = mid.confirmed();
            while mid.timeline.elapsed() < killed + Duration::from_secs(2) {
                mid.step();
            }
            let server = signaling();
            mid.timeline.mark("signaling restarted");
            while clients().await < 2.0 {
                assert!(
                    mid.timeline.elapsed() < killed + Duration::from_secs(20),
                    "the games did not reconnect to signaling"
                );
                mid.step();
            }
            let reconnected = mid.timeline.mark("both back on signaling") - killed;
            assert_eq!(
                mid.ids_now(),
                mid.ids,
                "the same peer ids after the restart"
            );
            let before_join = mid.timeline.apps()[0].confirmed_frame();
            assert!(
                before_join > at_kill + 120,
                "a and b stopped while signaling was gone: {at_kill} → {before_join}"
            );

            // A late joiner takes the open slot of the running game.
            let late = mid.late_join();
            println!(
                "RESULT signaling restart mid-game: a and b played on from frame {at_kill} to {before_join} \
                 while it was gone, back on signaling {:.2}s after the kill under the same ids; \
                 c joined and all three confirmed frame {} together {:.2}s later; \
                 one timeline ({} frame checks), in step at frame {}, no departures",
                reconnected.as_secs_f64(),
                late.end,
                late.took.as_secs_f64(),
                late.compared,
                late.in_step
            );
            server.kill();
        },
    );
}

/// The reconnect key of the game process [`a_game_process_killed_and_restarted_with_its_key_rejoins_its_slot`] kills.
const GAME_KEY: &str = "restarted-game-key-42";
/// Set for the restarted game process: it joins the running game.
const REJOIN_ENV: &str = "GAMENET_E2E_REJOIN";

/// The game process of
/// [`a_game_process_killed_and_restarted_with_its_key_rejoins_its_slot`]
/// (nothing unless started by it).
#[test]
#[ignore = "run by a_game_process_killed_and_restarted_with_its_key_rejoins_its_slot"]
fn restarted_reported_game() {
    ReportedGame::run(|url, players, seed| {
        let start = if std::env::var_os(REJOIN_ENV).is_some() {
            RollbackStart::Join { players: 1 }
        } else {
            RollbackStart::Players(players)
        };
        arena::headless_app_as(url, players, start, seed, |m| m.reconnect_key(GAME_KEY))
    });
}

#[test]
fn a_game_process_killed_and_restarted_with_its_key_rejoins_its_slot() {
    isolated(
        "a_game_process_killed_and_restarted_with_its_key_rejoins_its_slot",
        || async {
            let server = signaling();
            let url = format!("ws://{HOST}:{PORT}/killed");
            let start_b = |rejoin: bool| {
                let mut command = Command::new(std::env::current_exe().expect("own executable"));
                command.args([
                    "restarted_reported_game",
                    "--exact",
                    "--include-ignored",
                    "--nocapture",
                    "--test-threads=1",
                    "-q",
                ]);
                if rejoin {
                    command.env(REJOIN_ENV, "1");
                }
                ReportedGame::start(command, &url, 2, 2)
            };
            let mut apps = vec![Some(arena::headless_app(&url, 2, 1)), None];
            let mut timeline = Timeline::new(&["a", "b"][..]);
            let b = start_b(false);
            let deadline = Instant::now() + Duration::from_secs(60);
            while min_confirmed(&timeline) < 300 {
                step_games(&mut apps, &mut timeline, Some(&b));
                assert!(Instant::now() < deadline, "a and b never reached frame 300");
            }
            let b_id = timeline.apps()[1].id.expect("b's id");
            let a_id = timeline.apps()[0].id.expect("a's id");
            drop(b);
            let killed = timeline.mark("b's process killed");
            let at_kill = timeline.apps()[0].confirmed_frame();
            let restarted_after = Duration::from_secs(1);
            while timeline.elapsed() < killed + restarted_after {
                step_games(&mut apps, &mut timeline, None);
            }
            let b = start_b(true);
            let restarted = timeline.mark("b's process restarted with its key");
            let at_restart = timeline.apps()[0].confirmed_frame();
            let end = at_kill + MID_GAME_RUN;
            let deadline = Instant::now() + Duration::from_secs(90);
            while !timeline.all_confirmed_together(end) {
                step_games(&mut apps, &mut timeline, Some(&b));
                assert!(
                    Instant::now() < deadline,
                    "a and b never played on together:\n{}",
                    timeline.report(
                        killed.saturating_sub(Duration::from_millis(300)),
                        timeline.elapsed()
                    )
                );
            }
            let again = timeline.apps()[0]
                .confirmed_past_with(at_restart, restarted, &[b_id])
                .expect("a confirmed frames with b again");
            assert_eq!(
                timeline.apps()[1].id,
                Some(b_id),
                "b came back under its id"
            );
            let compared = timeline.assert_one_timeline();
            let frame = timeline.assert_in_step(end);
            let a_was = if a_id < b_id {
                "the lower id, played on"
            } else {
                "the higher id, waited"
            };
            println!(
                "RESULT game process restart: b ({b_id}) killed at a's confirmed frame {at_kill} and \
                 restarted {:.1}s later; a ({a_was}) confirmed frames with b a member again {:.2}s \
                 after the restart; one timeline ({compared} frame checks), in step at frame {frame}",
                restarted_after.as_secs_f64(),
                again.as_secs_f64()
            );
            let from = killed.saturating_sub(Duration::from_millis(300));
            print!("{}", timeline.report(from, restarted + again));
            server.kill();
        },
    );
}
