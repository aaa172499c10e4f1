//! A rogue player in a real game: three headless arena games over the real
//! signaling server and real WebRTC, in an isolated network namespace. Once
//! they play, the one with the highest id (never the host) sends the two
//! others, through its raw mesh, a message that breaks the rollback protocol
//! (built by `gamenet_core::rollback::rogue`), or floods them. The two honest
//! games must go on in step; a rule breaker must be reported and dropped; the
//! process's resident memory must stay within a bound.
//!
//! Each scenario prints what the honest games saw; `-- --nocapture` shows it.
//! The signal attacks are in `handshake.rs` and `browser.rs`.

use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::change_detection::Mut;
use bevy_ecs::prelude::With;
use bevy_gamenet::replication::{NetEntity, NetState};
use bevy_gamenet::rollback::RollbackSocket;
use gamenet::layer::{APP_TAG, REPLICATION_TAG, ROLLBACK_TAG};
use gamenet::rollback::{Frame, RollbackEvent};
use gamenet::{Channel, PeerId};
use gamenet_core::replication::rogue as replication_rogue;
use gamenet_core::rollback::rogue;
use gamenet_e2e::faults::{AppTimeline, Seen, Timeline};
use gamenet_e2e::{isolated, start_server};

/// Frames the games play before the attack.
const ATTACK_AT: Frame = 300;
/// Frames the honest games play after it.
const RUN_ON: Frame = 600;
/// Most the process's resident memory may grow from the attack to the end.
const RSS_BOUND_KIB: u64 = 64 << 10;

/// The process's resident memory, KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn socket(app: &mut App) -> Mut<'_, RollbackSocket<u8>> {
    app.world_mut().resource_mut::<RollbackSocket<u8>>()
}

/// The id of the app's mesh, once signaling gave it.
fn id_of(app: &mut App) -> Option<PeerId> {
    socket(app).net_mut()?.mesh().id()
}

/// The slot the app's session plays.
fn slot_of(app: &App) -> Option<u8> {
    let socket = app.world().resource::<RollbackSocket<u8>>();
    socket.session()?.local_slots().first().map(|&s| s as u8)
}

/// Sends `payload` (a rollback message) from the rogue to `peer` as the
/// rollback layer would, on the reliable channel.
fn send_raw(rogue: &mut App, peer: PeerId, channel: Channel, tag: u8, payload: &[u8]) {
    let mut data = Vec::with_capacity(payload.len() + 1);
    data.push(tag);
    data.extend_from_slice(payload);
    if let Some(net) = socket(rogue).net_mut() {
        let _ = net.raw_mesh_mut().send(peer, channel, &data);
    }
}

/// Three games playing: the two honest ones first, the rogue last, the
/// honest ones' timeline, and the ids (honest, honest, rogue).
struct Game {
    apps: Vec<App>,
    timeline: Timeline,
    ids: [PeerId; 3],
    /// Wall time of each step and the honest games' lowest frame then.
    frames: Vec<(Instant, Frame)>,
    /// Whether the rogue's frame loop is stopped (its mesh runs on).
    rogue_paused: bool,
    /// The room's URL.
    url: String,
    /// Games that watch (spectators), stepped with the others.
    watchers: Vec<App>,
}

impl Game {
    /// Three games in a quick-match room.
    async fn start(name: &str) -> Self {
        Self::start_in(name, "?next=3").await
    }

    /// Three games in the room named after the test, `query` added to its
    /// URL (an open room, which spectators can join, without one).
    async fn start_in(name: &str, query: &str) -> Self {
        let room = &name[..name.len().min(24)];
        let url = format!("{}/{room}{query}", start_server().await);
        let mut apps: Vec<App> = (0..3)
            .map(|i| arena::headless_app(&url, 3, i as u64 + 11))
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut ids = loop {
            for app in &mut apps {
                app.update();
            }
            let ids: Vec<PeerId> = apps.iter_mut().filter_map(id_of).collect();
            if ids.len() == 3 && apps.iter().all(|a| slot_of(a).is_some()) {
                break ids;
            }
            assert!(Instant::now() < deadline, "the games did not start");
            tokio::time::sleep(Duration::from_millis(4)).await;
        };
        // The rogue is the highest id: the host (lowest) is honest.
        let rogue = (0..3).max_by_key(|&i| ids[i]).unwrap_or(2);
        let r = apps.remove(rogue);
        apps.push(r);
        let r = ids.remove(rogue);
        ids.push(r);
        let mut game = Self {
            apps,
            timeline: Timeline::new(&["a", "b"]),
            ids: [ids[0], ids[1], ids[2]],
            frames: Vec::new(),
            rogue_paused: false,
            url: url.clone(),
            watchers: Vec::new(),
        };
        game.play_until(|g| g.honest_confirmed() >= ATTACK_AT, "the attack")
            .await;
        game
    }

    fn honest_confirmed(&self) -> Frame {
        self.timeline
            .apps()
            .iter()
            .map(AppTimeline::confirmed_frame)
            .min()
            .unwrap_or(0)
    }

    async fn step(&mut self) {
        let running = if self.rogue_paused { 2 } else { 3 };
        for app in self.apps[..running].iter_mut().chain(&mut self.watchers) {
            app.update();
        }
        let (honest, _) = self.apps.split_at(2);
        self.timeline.record(&honest.iter().collect::<Vec<_>>());
        let frame = self
            .apps
            .iter()
            .take(2)
            .filter_map(|a| {
                a.world()
                    .resource::<RollbackSocket<u8>>()
                    .session()
                    .map(|s| s.current_frame())
            })
            .min()
            .unwrap_or(0);
        self.frames.push((Instant::now(), frame));
        tokio::time::sleep(Duration::from_millis(4)).await;
    }

    async fn play_until(&mut self, done: impl Fn(&Self) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(90);
        while !done(self) {
            self.step().await;
            assert!(Instant::now() < deadline, "never reached {what}");
        }
    }

    fn rogue(&mut self) -> &mut App {
        &mut self.apps[2]
    }

    /// Sends a replication message from the rogue to each honest game.
    fn attack_replication(&mut self, msg: &[u8]) {
        let mut data = vec![REPLICATION_TAG];
        data.extend_from_slice(msg);
        self.attack(Channel::Reliable, APP_TAG, &data);
    }

    /// Sends `payload` from the rogue to each honest game.
    fn attack(&mut self, channel: Channel, tag: u8, payload: &[u8]) {
        let honest = [self.ids[0], self.ids[1]];
        for peer in honest {
            send_raw(self.rogue(), peer, channel, tag, payload);
        }
    }

    /// Frames the honest games advanced per second between `from` and `to`.
    fn frame_rate(&self, from: Instant, to: Instant) -> f64 {
        let inside: Vec<&(Instant, Frame)> = self
            .frames
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .collect();
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => f64::from(b.1 - a.1) / (b.0 - a.0).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Plays on [`RUN_ON`] frames and checks the honest games: in step, no
    /// honest game gone, memory bounded. Returns what they saw about the
    /// rogue.
    async fn finish(mut self, name: &str, rss_before: u64) -> Vec<String> {
        let end = self.honest_confirmed() + RUN_ON;
        self.play_until(|g| g.honest_confirmed() >= end, "the end")
            .await;
        let frame = self.timeline.assert_in_step(end - RUN_ON / 2);
        self.timeline.assert_one_timeline();
        let rogue = self.ids[2];
        let mut seen = Vec::new();
        for app in self.timeline.apps() {
            for (_, e) in &app.events {
                match e {
                    Seen::Session(RollbackEvent::Disconnected { peer, .. })
                    | Seen::PeerLeft { peer, .. }
                        if *peer != rogue =>
                    {
                        panic!("{name}: {} lost an honest peer: {e:?}", app.name)
                    }
                    Seen::Session(RollbackEvent::PeerMisbehaved { peer, reason }) => {
                        assert_eq!(*peer, rogue, "{name}: an honest peer reported");
                        seen.push(format!("{}: misbehaved: {reason}", app.name));
                    }
                    Seen::Session(RollbackEvent::Disconnected { .. }) => {
                        seen.push(format!("{}: rogue's slot disconnected", app.name));
                    }
                    Seen::PeerLeft { reason, .. } => {
                        seen.push(format!("{}: rogue's link closed ({reason})", app.name));
                    }
                    _ => {}
                }
            }
        }
        let growth = rss_kib().saturating_sub(rss_before);
        println!(
            "RESULT {name}: honest games in step at frame {frame}; resident memory +{growth} KiB; saw: {}",
            if seen.is_empty() {
                "nothing about the rogue".to_string()
            } else {
                seen.join("; ")
            }
        );
        assert!(
            growth < RSS_BOUND_KIB,
            "{name}: resident memory grew by {growth} KiB"
        );
        seen
    }
}

/// What the honest games must have seen of the rogue.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Verdict {
    /// Nothing it sent was a rule broken that a receiver can tell (a lie a
    /// vote outweighs, a claim the true owner overrides).
    Ignored,
    /// Reported by the rollback session (`PeerMisbehaved`) and dropped.
    Reported,
    /// Dropped (its link closed) by another layer's check.
    Dropped,
    /// Its slot disconnected (it went silent), link kept.
    Disconnected,
}

/// Whether each honest game saw everything in `lines` starting with one of
/// `wanted`.
fn both_saw(seen: &[String], wanted: &[&str]) -> bool {
    ["a", "b"].iter().all(|n| {
        wanted
            .iter()
            .all(|w| seen.iter().any(|s| s.starts_with(&format!("{n}: {w}"))))
    })
}

fn check(name: &str, verdict: Verdict, seen: &[String]) {
    let ok = match verdict {
        Verdict::Ignored => true,
        Verdict::Reported => both_saw(seen, &["misbehaved", "rogue's link closed"]),
        Verdict::Dropped => both_saw(seen, &["rogue's link closed"]),
        Verdict::Disconnected => both_saw(seen, &["rogue's slot disconnected"]),
    };
    assert!(ok, "{name}: expected {verdict:?}, saw {seen:?}");
}

fn scenario(name: &'static str, attack: fn(&mut Game) -> Verdict) {
    isolated(name, || async move {
        let mut game = Game::start(name).await;
        let rss = rss_kib();
        let verdict = attack(&mut game);
        let seen = game.finish(name, rss).await;
        check(name, verdict, &seen);
    });
}

#[test]
fn row_1_a_lie_that_a_connected_player_left_evicts_nobody() {
    scenario(
        "row_1_a_lie_that_a_connected_player_left_evicts_nobody",
        |g| {
            let victim = g.ids[0];
            let slot = slot_of(&g.apps[0]).unwrap_or(0);
            let frame = g.honest_confirmed();
            // To the victim's room-mate only, and to the victim.
            let (mate, lie) = (g.ids[1], rogue::lost_report::<u8>(victim, slot, frame, 1));
            send_raw(g.rogue(), mate, Channel::Reliable, ROLLBACK_TAG, &lie);
            let lie = rogue::lost_report::<u8>(victim, slot, frame, 1);
            send_raw(g.rogue(), victim, Channel::Reliable, ROLLBACK_TAG, &lie);
            // A report is a vote: one liar is not a rule breaker anyone can tell
            // from a peer that really lost the victim.
            Verdict::Ignored
        },
    );
}

#[test]
fn row_2_admits_from_a_player_that_is_not_the_host() {
    scenario("row_2_admits_from_a_player_that_is_not_the_host", |g| {
        let from = g.honest_confirmed() + 60;
        g.attack(
            Channel::Reliable,
            ROLLBACK_TAG,
            &rogue::admit::<u8>(PeerId(999), vec![3], from),
        );
        for p in 0..300 {
            g.attack(
                Channel::Reliable,
                ROLLBACK_TAG,
                &rogue::admit::<u8>(PeerId(1_000 + p), Vec::new(), from),
            );
        }
        Verdict::Reported
    });
}

#[test]
fn row_3_a_snapshot_from_a_player_that_is_not_the_host() {
    scenario("row_3_a_snapshot_from_a_player_that_is_not_the_host", |g| {
        let frame = g.honest_confirmed();
        g.attack(
            Channel::Reliable,
            ROLLBACK_TAG,
            &rogue::snapshot::<u8>(frame, vec![0]),
        );
        Verdict::Reported
    });
}

#[test]
fn row_4_a_message_that_would_expand_a_thousandfold() {
    scenario("row_4_a_message_that_would_expand_a_thousandfold", |g| {
        let frame = g.honest_confirmed();
        let bomb = rogue::duplicate_slots::<u8>(frame, 3);
        println!("a {}-byte message of 255 copies of one slot", bomb.len());
        for _ in 0..100 {
            g.attack(Channel::Unreliable, ROLLBACK_TAG, &bomb);
        }
        Verdict::Reported
    });
}

#[test]
fn row_5_checksums_claimed_for_far_future_frames() {
    scenario("row_5_checksums_claimed_for_far_future_frames", |g| {
        let frame = g.honest_confirmed();
        for k in 1..=200 {
            g.attack(
                Channel::Reliable,
                ROLLBACK_TAG,
                &rogue::checksum::<u8>(frame / 16 * 16 + 16 * 1_000 * k, k.into()),
            );
        }
        Verdict::Reported
    });
}

#[test]
fn row_6_an_intro_claiming_another_players_key_without_its_proof() {
    scenario(
        "row_6_an_intro_claiming_another_players_key_without_its_proof",
        |g| {
            g.attack(
                Channel::Reliable,
                ROLLBACK_TAG,
                &rogue::intro_claiming::<u8>([1; 32], 3, 3),
            );
            // Inputs for a slot the rogue does not play.
            let victim_slot = slot_of(&g.apps[0]).unwrap_or(0);
            let frame = g.honest_confirmed() + 30;
            g.attack(
                Channel::Unreliable,
                ROLLBACK_TAG,
                &rogue::inputs_for::<u8>(victim_slot, frame, 4),
            );
            Verdict::Reported
        },
    );
}

#[test]
fn row_10_a_flood_of_well_formed_packets_holds_the_frame_rate() {
    isolated(
        "row_10_a_flood_of_well_formed_packets_holds_the_frame_rate",
        || async {
            let mut game =
                Game::start("row_10_a_flood_of_well_formed_packets_holds_the_frame_rate").await;
            let rss = rss_kib();
            let quiet = Instant::now();
            for _ in 0..250 {
                game.step().await;
            }
            let flood = Instant::now();
            let payload = [0x5a_u8; 1000];
            let mut sent = 0u64;
            while flood.elapsed() < Duration::from_secs(4) {
                // About 40 a millisecond to each honest game: 10 times the budget.
                for _ in 0..40 {
                    game.attack(Channel::Unreliable, APP_TAG, &payload);
                    sent += 2;
                }
                game.step().await;
            }
            let after = Instant::now();
            let (before_fps, during_fps) =
                (game.frame_rate(quiet, flood), game.frame_rate(flood, after));
            let rogue = game.ids[2];
            let drops: Vec<u64> = game
                .apps
                .iter_mut()
                .take(2)
                .filter_map(|a| {
                    socket(a)
                        .net_mut()
                        .and_then(|n| n.mesh().stats(rogue))
                        .map(|s| s.dropped_in)
                })
                .collect();
            println!(
                "flood: {sent} packets of 1,000 bytes in 4 s; honest games' frames per second \
             before {before_fps:.1}, during {during_fps:.1}; packets dropped over the budget: {drops:?}"
            );
            game.finish(
                "row_10_a_flood_of_well_formed_packets_holds_the_frame_rate",
                rss,
            )
            .await;
            assert!(
                during_fps >= 0.5 * before_fps,
                "the flood slowed the honest games from {before_fps:.1} to {during_fps:.1} frames a second"
            );
        },
    );
}

/// The replication id of the ball (owned by the host), once it is on the
/// field.
fn ball_id(app: &mut App) -> Option<u64> {
    let world = app.world_mut();
    world
        .query_filtered::<&NetEntity, With<arena::Ball>>()
        .iter(world)
        .next()
        .map(|n| n.0.0)
}

/// A ball's fields, all zero, in the ball's widths.
fn zero_ball() -> Vec<(u32, u8)> {
    <arena::Ball as NetState>::WIDTHS
        .iter()
        .map(|&w| (0, w))
        .collect()
}

#[test]
fn row_7_a_player_whose_frame_loop_stops_is_dropped_and_the_others_play_on() {
    let name = "row_7_a_player_whose_frame_loop_stops_is_dropped_and_the_others_play_on";
    isolated(name, || async move {
        let mut game = Game::start(name).await;
        let rss = rss_kib();
        // The rogue's frames stop for 15 s (its mesh runs on): it sends no
        // inputs, and the game must not wait for it.
        game.rogue_paused = true;
        let until = Instant::now() + Duration::from_secs(15);
        while Instant::now() < until {
            game.step().await;
        }
        game.rogue_paused = false;
        let seen = game.finish(name, rss).await;
        check(name, Verdict::Disconnected, &seen);
    });
}

#[test]
fn row_8_a_respawn_of_the_ball_as_another_type() {
    scenario("row_8_a_respawn_of_the_ball_as_another_type", |g| {
        let ball = ball_id(&mut g.apps[0]).expect("the ball is replicated");
        // The ball spawned again as a Score (type 1, two 16-bit fields): the
        // arena's Ball read a third field of two and every app panicked. From
        // a peer that does not own the ball, it is ignored (the owner's own
        // re-spawn with another type is reported: see the core's tests).
        g.attack_replication(&replication_rogue::spawn(ball, 1, &[(3, 16), (4, 16)]));
        Verdict::Ignored
    });
}

#[test]
fn row_8_spawns_of_ids_in_another_peers_namespace() {
    scenario("row_8_spawns_of_ids_in_another_peers_namespace", |g| {
        // The host's next ids, before it spawns them: unchecked claims that
        // its own spawns override.
        let host = g.ids[0].min(g.ids[1]);
        for k in 0..100 {
            let id = replication_rogue::id_of(host, 1_000 + k);
            g.attack_replication(&replication_rogue::spawn(id, 0, &zero_ball()));
        }
        Verdict::Ignored
    });
}

#[test]
fn row_9_a_hand_over_of_the_ball_by_a_peer_that_does_not_own_it() {
    scenario(
        "row_9_a_hand_over_of_the_ball_by_a_peer_that_does_not_own_it",
        |g| {
            let ball = ball_id(&mut g.apps[0]).expect("the ball is replicated");
            for p in 0..100 {
                g.attack_replication(&replication_rogue::hand_over(
                    ball,
                    PeerId(5_000 + p),
                    0,
                    &zero_ball(),
                ));
            }
            Verdict::Ignored
        },
    );
}

#[test]
fn row_8_five_thousand_spawns_then_one_of_an_unknown_type() {
    scenario(
        "row_8_five_thousand_spawns_then_one_of_an_unknown_type",
        |g| {
            let rogue = g.ids[2];
            // Five thousand entities in its own namespace (within the limit
            // per peer: each honest game shows them), then a type the game
            // never registered.
            for k in 0..5_000 {
                let id = replication_rogue::id_of(rogue, 100 + k);
                g.attack_replication(&replication_rogue::spawn(id, 0, &zero_ball()));
            }
            let id = replication_rogue::id_of(rogue, 99);
            g.attack_replication(&replication_rogue::spawn(id, 9, &[]));
            Verdict::Dropped
        },
    );
}

#[test]
fn row_7_a_feed_to_a_spectator_from_a_player_that_is_not_the_host() {
    let name = "row_7_a_feed_to_a_spectator_from_a_player_that_is_not_the_host";
    isolated(name, || async move {
        let mut game = Game::start_in(name, "").await;
        let rss = rss_kib();
        let watcher = arena::headless_app_as(
            &game.url,
            3,
            gamenet::rollback::RollbackStart::Join { players: 0 },
            99,
            |m| m,
        );
        game.watchers.push(watcher);
        let watching = |g: &Game| {
            let w = &g.watchers[0];
            w.world()
                .resource::<RollbackSocket<u8>>()
                .session()
                .is_some_and(|s| s.confirmed_frame() > 60)
        };
        game.play_until(watching, "the spectator watching").await;
        let spectator = id_of(&mut game.watchers[0]).expect("the spectator's id");
        let from = game.watchers[0]
            .world()
            .resource::<RollbackSocket<u8>>()
            .session()
            .map_or(0, |s| s.confirmed_frame());
        // Made-up inputs of every slot, as if from the host.
        for k in 0..50 {
            let feed = rogue::feed::<u8>(3, from + 1 + k * 8, 0x1f);
            send_raw(
                game.rogue(),
                spectator,
                Channel::Unreliable,
                ROLLBACK_TAG,
                &feed,
            );
        }
        // The spectator shows the game the players play.
        let target = (from / 16 + 40) * 16;
        let sum = |app: &App| {
            app.world()
                .resource::<RollbackSocket<u8>>()
                .session()
                .and_then(|s| s.confirmed_checksum(target))
                .map(|c| c.total)
        };
        game.play_until(
            |g| sum(&g.apps[0]).is_some() && sum(&g.watchers[0]).is_some(),
            "the spectator's checksum",
        )
        .await;
        let (player, watcher) = (sum(&game.apps[0]), sum(&game.watchers[0]));
        println!("frame {target}: player a {player:x?}, spectator {watcher:x?}");
        assert_eq!(player, watcher, "the spectator left the players' game");
        let seen = game.finish(name, rss).await;
        check(name, Verdict::Ignored, &seen);
    });
}
