//! Rollback cost: gamenet's Bevy plugin against bevy_ggrs 0.22, the gamenet
//! half.
//!
//! Both run their sync-test mode with a check distance of 8: every frame
//! simulates one new frame, then loads the state of 8 frames back and
//! simulates those 8 frames again, saving the state after every frame (9
//! saves, 1 load, 9 simulated frames per frame), on the game of
//! `rollback/scenario.rs`. Each app update runs exactly one frame (gamenet
//! with `FrameClock::EveryUpdate`, bevy_ggrs on a manual 1/60 s clock); the
//! time per update is the cost of a frame.
//!
//! bevy_ggrs pins its Bevy, so its half is a crate of its own outside the
//! workspace (`benches/ggrs`), run first by `cargo xtask bench rollback`; it
//! writes `benches/results/rollback_bevy_ggrs.json`, which this half reads to
//! write the one table of both to `benches/results/rollback.md`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use bevy::app::{App, Startup};
use bevy::ecs::prelude::*;
use bevy_gamenet::rollback::RollbackSocket;

#[path = "rollback/scenario.rs"]
mod scenario;

use scenario::{
    CHECK_DISTANCE, FIGURES_FILE, Figures, Hp, Pos, RUNS, SIZES, Vel, base_app, best_and_median,
    entity, ms, simulate,
};

/// The gamenet half: bevy_gamenet's rollback plugin.
mod ours {
    use super::*;
    use bevy_gamenet::rollback::{
        AddRollback as _, FrameClock, LocalInputs, LocalPlayers, ReadInputs, RollbackApp as _,
        RollbackPlugin, RollbackSchedule,
    };
    use gamenet::rollback::RollbackConfig;

    /// The gamenet app with `n` rolled-back entities.
    pub fn app(n: usize) -> App {
        let config = RollbackConfig {
            num_players: 2,
            prediction_window: CHECK_DISTANCE,
            ..RollbackConfig::default()
        };
        let mut app = base_app();
        app.add_plugins(
            RollbackPlugin::<u8>::sync_test(config, CHECK_DISTANCE)
                .with_clock(FrameClock::EveryUpdate),
        )
        .rollback_component_with_copy::<Pos>()
        .rollback_component_with_copy::<Vel>()
        .rollback_component_with_copy::<Hp>()
        .checksum_component_with_hash::<Pos>()
        .add_systems(
            ReadInputs,
            |players: Res<LocalPlayers>, mut inputs: ResMut<LocalInputs<u8>>| {
                for &p in &players.0 {
                    inputs.0.insert(p, 1);
                }
            },
        )
        .add_systems(RollbackSchedule, simulate)
        .add_systems(Startup, move |mut commands: Commands| {
            for i in 0..n {
                commands.spawn(entity(i)).add_rollback();
            }
        });
        app
    }
}

/// The bevy_ggrs half's figures, if they are there and of this scenario.
fn their_figures(results: &str) -> Option<Figures> {
    let path = format!("{results}/{FIGURES_FILE}");
    let figures: Figures = match std::fs::read_to_string(&path)
        .map_err(|e| e.to_string())
        .and_then(|json| serde_json::from_str(&json).map_err(|e| e.to_string()))
    {
        Ok(figures) => figures,
        Err(e) => {
            println!(
                "no bevy_ggrs figures ({path}: {e}); `cargo xtask bench rollback` runs both halves"
            );
            return None;
        }
    };
    if figures.scenario != scenario::scenario_id() {
        println!(
            "the bevy_ggrs figures in {path} are of another scenario ({}); \
             `cargo xtask bench rollback` runs both halves",
            figures.scenario
        );
        return None;
    }
    let now = SystemTime::UNIX_EPOCH
        .elapsed()
        .unwrap_or(Duration::ZERO)
        .as_secs();
    println!(
        "{} figures from {path}, written {} s ago",
        figures.library,
        now.saturating_sub(figures.written_unix_secs)
    );
    Some(figures)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let results = concat!(env!("CARGO_MANIFEST_DIR"), "/results");
    let theirs = their_figures(results);
    let library = theirs
        .as_ref()
        .map_or("bevy_ggrs 0.22", |f| f.library.as_str());
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Rollback: save + load + re-simulate {CHECK_DISTANCE} frames, gamenet vs {library}\n"
    );
    let _ = writeln!(
        report,
        "Sync-test mode, check distance {CHECK_DISTANCE}: per frame 9 saves, 1 load and 9 simulated \
         frames. Three rolled-back components per entity (position checksummed). \
         {RUNS} runs each, time per frame (one app update): first the bevy_ggrs runs \
         ({library}, the crate `benches/ggrs`), then gamenet's, one after the other rather \
         than interleaved, so compare figures of a quiet machine.\n",
    );
    let _ = writeln!(
        report,
        "| entities | gamenet best ms | gamenet median ms | bevy_ggrs best ms | bevy_ggrs median ms | speed-up best | speed-up median |"
    );
    let _ = writeln!(report, "|---:|---:|---:|---:|---:|---:|---:|");
    for (n, frames) in SIZES {
        let mut ours = Vec::new();
        for run in 0..RUNS {
            let mut app = ours::app(n);
            let (t, per) = scenario::measure(&mut app, frames);
            let stats = app
                .world()
                .resource::<RollbackSocket<u8>>()
                .session()
                .map(|s| s.stats());
            ours.push(t);
            println!(
                "{n} entities, run {run}: gamenet {} ms/frame ({per:.1} frames simulated per frame); {stats:?}",
                ms(t),
            );
        }
        let (ob, om) = best_and_median(&ours);
        let their_runs: Option<Vec<Duration>> = theirs
            .as_ref()
            .and_then(|f| f.sizes.iter().find(|s| s.entities == n))
            .map(|s| {
                s.ms_per_frame
                    .iter()
                    .map(|&m| Duration::from_secs_f64(m / 1e3))
                    .collect()
            });
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-12);
        let line = match their_runs {
            Some(runs) if !runs.is_empty() => {
                let (tb, tm) = best_and_median(&runs);
                format!(
                    "| {n} | {} | {} | {} | {} | {:.2}x | {:.2}x |",
                    ms(ob),
                    ms(om),
                    ms(tb),
                    ms(tm),
                    ratio(ob, tb),
                    ratio(om, tm)
                )
            }
            _ => format!("| {n} | {} | {} | – | – | – | – |", ms(ob), ms(om)),
        };
        println!("{line}");
        let _ = writeln!(report, "{line}");
    }
    let _ = writeln!(
        report,
        "\nSpeed-up is bevy_ggrs time over gamenet time (goal: at least 2x). Run with \
         `cargo xtask bench rollback`."
    );
    let path = format!("{results}/rollback.md");
    std::fs::write(path, &report).expect("write the report");
    println!("\n{report}\nwritten to benches/results/rollback.md");
}
