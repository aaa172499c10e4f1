//! The example game (arena) in headless Chromium, served by the real signaling
//! server, each test in its own isolated network namespace: two tabs play each
//! other, three tabs meet in a lobby (created, joined by code, picked from
//! the list), a tab plays a native game, the tab that owns the ball leaves, and a
//! tab's frames stop for 3 s and for 20 s as a hidden tab's do
//! (`requestAnimationFrame` held, timers clamped to a second; Chromium runs
//! without flags against background throttling).
//!
//! The web build is made by `cargo xtask web-game` (the README's test command
//! does it); screenshots go to `target/browser-artifacts`.

use std::collections::BTreeMap;
use std::time::Duration;

use gamenet_e2e::{Scenario, isolated, start_server_serving};

async fn start() -> String {
    start_server_serving("web-game", "pkg/arena_bg.wasm").await
}

/// Steps the native game and notes its newest confirmed checksum, as the tab
/// does.
fn step(native: &mut bevy_app::App, ours: &mut BTreeMap<u32, String>) {
    native.update();
    if let Some((f, c)) = arena::confirmed_checksum(native.world()) {
        ours.insert(f, format!("{c:#018x}"));
    }
}

#[test]
fn two_tabs_play_each_other() {
    isolated("two_tabs_play_each_other", || async {
        start().await;
        let lines = Scenario::start("game.mjs", "two-tabs").finish().await;
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("a: 2 players connected"))
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("b: 2 players connected"))
        );
        assert!(lines.iter().any(|l| l.starts_with("b sees a's player")));
    });
}

#[test]
fn three_tabs_meet_in_a_lobby_by_code_and_from_the_list() {
    isolated(
        "three_tabs_meet_in_a_lobby_by_code_and_from_the_list",
        || async {
            start().await;
            let lines = Scenario::start("game.mjs", "lobby-three").finish().await;
            assert!(lines.iter().any(|l| l.starts_with("b joined lobby")));
            assert!(lines.iter().any(|l| l.starts_with("3 players connected")));
            assert!(lines.iter().any(|l| l.starts_with("all three in step")));
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("c's 640x420 tab shows the goals"))
            );
        },
    );
}

#[test]
fn the_tab_that_owns_the_ball_leaves_and_the_other_carries_on() {
    isolated(
        "the_tab_that_owns_the_ball_leaves_and_the_other_carries_on",
        || async {
            start().await;
            let lines = Scenario::start("game.mjs", "host-leaves").finish().await;
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("the other tab owns the ball"))
            );
        },
    );
}

#[test]
fn a_native_game_and_a_tab_play_to_the_same_checksum() {
    isolated(
        "a_native_game_and_a_tab_play_to_the_same_checksum",
        || async {
            let url = start().await;
            let mut native = arena::headless_app(&format!("{url}/cross?next=2"), 2, 7);
            let mut scenario = Scenario::start("game.mjs", "cross-play");
            // The native game's confirmed checksums, as the tab's are: the
            // newest confirmed frame with one, each update.
            let mut ours = BTreeMap::new();
            let mut compared = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(16));
            loop {
                tokio::select! {
                    line = scenario.next_line() => {
                        let Some(line) = line else { break };
                        // tab frame <F> checksum <C>
                        let Some(rest) = line.strip_prefix("tab frame ") else { continue };
                        let mut words = rest.split_whitespace();
                        let frame: u32 = words.next().and_then(|f| f.parse().ok()).expect("frame");
                        let theirs = words.nth(1).expect("checksum").to_owned();
                        // The native game may be a little behind the tab.
                        let deadline = std::time::Instant::now() + Duration::from_secs(5);
                        while !ours.contains_key(&frame) && std::time::Instant::now() < deadline {
                            step(&mut native, &mut ours);
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        let mine = ours.get(&frame).expect("the native game reached the frame");
                        println!("frame {frame}: tab {theirs}, native {mine}");
                        assert_eq!(&theirs, mine, "frame {frame}");
                        compared += 1;
                    }
                    _ = tick.tick() => step(&mut native, &mut ours),
                }
            }
            scenario.finish().await;
            println!("{compared} checksums compared");
            assert!(compared >= 5, "only {compared} checksums compared");
        },
    );
}

#[test]
fn a_tab_whose_frames_stop_for_3s_plays_on_in_step() {
    isolated(
        "a_tab_whose_frames_stop_for_3s_plays_on_in_step",
        || async {
            start().await;
            let lines = Scenario::start("game.mjs", "hidden-3s").finish().await;
            assert!(lines.iter().any(|l| l.starts_with("both tabs in step")));
        },
    );
}

#[test]
fn a_tab_whose_frames_stop_for_20s_rejoins_in_step() {
    isolated(
        "a_tab_whose_frames_stop_for_20s_rejoins_in_step",
        || async {
            start().await;
            let lines = Scenario::start("game.mjs", "hidden-20s").finish().await;
            assert!(lines.iter().any(|l| l.starts_with("both tabs in step")));
        },
    );
}

/// Takes the two tabs' RTT apart (both drawing; one tab's frames held, so
/// its page answers from the mesh's driver alone) and prints the figures; a
/// measurement, not a check: `cargo test --ignore-rust-version -p gamenet_e2e --test game --
/// --ignored --nocapture rtt` (`VIEWPORT=400x300` for smaller tabs).
#[test]
#[ignore = "a measurement; run by hand"]
fn two_tabs_rtt_taken_apart() {
    isolated("two_tabs_rtt_taken_apart", || async {
        start().await;
        let lines = Scenario::start("game.mjs", "rtt").finish().await;
        assert!(lines.iter().any(|l| l.starts_with("b's frames held")));
    });
}
