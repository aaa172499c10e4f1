//! Rollback cost, the bevy_ggrs 0.22 half: its sync-test mode with a check
//! distance of 8 on the game of `benches/benches/rollback/scenario.rs`, each
//! app update one frame on a manual 1/60 s clock.
//!
//! Writes `benches/results/rollback_bevy_ggrs.json`, which the gamenet half
//! (`benches/benches/rollback.rs`) reads to write the one table of both.

use std::time::{Duration, SystemTime};

use bevy::app::{App, Startup};
use bevy::ecs::prelude::*;
use bevy_ggrs::prelude::*;

#[path = "../../benches/rollback/scenario.rs"]
mod scenario;

use scenario::{
    CHECK_DISTANCE, FIGURES_FILE, Figures, Hp, Pos, RUNS, SIZES, SizeFigures, Vel, best_and_median,
    ms,
};

type Config = bevy_ggrs::GgrsConfig<u8, usize>;

/// The bevy_ggrs app with `n` rolled-back entities.
fn app(n: usize) -> App {
    let session = SessionBuilder::<Config>::new()
        .with_num_players(2)
        .expect("players")
        .with_max_prediction_window(CHECK_DISTANCE as usize + 1)
        .with_check_distance(CHECK_DISTANCE as usize)
        .add_player(PlayerType::Local, 0)
        .expect("player 0")
        .add_player(PlayerType::Local, 1)
        .expect("player 1")
        .start_synctest_session()
        .expect("sync test session");
    let mut app = scenario::base_app();
    app.add_plugins(GgrsPlugin::<Config>::default())
        .rollback_component_with_copy::<Pos>()
        .rollback_component_with_copy::<Vel>()
        .rollback_component_with_copy::<Hp>()
        .checksum_component_with_hash::<Pos>()
        .add_systems(
            bevy_ggrs::ReadInputs,
            |players: Res<bevy_ggrs::LocalPlayers>, mut commands: Commands| {
                let inputs = players.0.iter().map(|&p| (p, 1u8)).collect();
                commands.insert_resource(bevy_ggrs::LocalInputs::<Config>(inputs));
            },
        )
        .add_systems(GgrsSchedule, scenario::simulate)
        .add_systems(Startup, move |mut commands: Commands| {
            for i in 0..n {
                commands.spawn((scenario::entity(i), Rollback));
            }
        })
        .insert_resource(Session::SyncTest(session));
    app
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let mut sizes = Vec::new();
    for (n, frames) in SIZES {
        let mut times = Vec::new();
        let mut simulated = Vec::new();
        for run in 0..RUNS {
            let (t, per) = scenario::measure(&mut app(n), frames);
            println!(
                "{n} entities, run {run}: bevy_ggrs {} ms/frame ({per:.1} frames simulated per frame)",
                ms(t)
            );
            times.push(t);
            simulated.push(per);
        }
        let (best, median) = best_and_median(&times);
        println!(
            "{n} entities: bevy_ggrs best {} ms, median {} ms",
            ms(best),
            ms(median)
        );
        sizes.push(SizeFigures {
            entities: n,
            ms_per_frame: times.iter().map(|t| t.as_secs_f64() * 1e3).collect(),
            simulated_per_frame: simulated,
        });
    }
    let figures = Figures {
        library: "bevy_ggrs 0.22 (Bevy 0.19)".into(),
        scenario: scenario::scenario_id(),
        written_unix_secs: SystemTime::UNIX_EPOCH
            .elapsed()
            .unwrap_or(Duration::ZERO)
            .as_secs(),
        sizes,
    };
    let path = format!("{}/../results/{FIGURES_FILE}", env!("CARGO_MANIFEST_DIR"));
    let json = serde_json::to_string_pretty(&figures).expect("figures as JSON");
    std::fs::write(&path, json + "\n").expect("write the figures");
    println!("written to benches/results/{FIGURES_FILE}");
}
