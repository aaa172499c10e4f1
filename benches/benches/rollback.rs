//! Rollback cost: gamenet's Bevy plugin against bevy_ggrs 0.22, same work in
//! the same run.
//!
//! Both run their sync-test mode with a check distance of 8: every frame
//! simulates one new frame, then loads the state of 8 frames back and
//! simulates those 8 frames again, saving the state after every frame (9
//! saves, 1 load, 9 simulated frames per frame). The world holds N rolled-back
//! entities with three components each (position, velocity, hit points; the
//! position checksummed), and one system moves them. Each app update runs
//! exactly one frame (bevy_ggrs on a manual 1/60 s clock, gamenet with
//! `FrameClock::EveryUpdate`); the time per update is the cost of a frame.
//!
//! Writes `benches/results/rollback.md`.

use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bevy_app::{App, Startup, TaskPoolPlugin};
use bevy_ecs::prelude::*;
use bevy_gamenet::rollback::RollbackSocket;
use bevy_time::{TimePlugin, TimeUpdateStrategy};

#[derive(Component, Clone, Copy, PartialEq, Debug)]
struct Pos(f32, f32);

impl Hash for Pos {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h);
        self.1.to_bits().hash(h);
    }
}

#[derive(Component, Clone, Copy, PartialEq, Debug)]
struct Vel(f32, f32);

#[derive(Component, Clone, Copy, PartialEq, Eq, Hash, Debug)]
struct Hp(u32);

/// Frames simulated, re-simulations included (not rolled back).
#[derive(Resource, Default)]
struct Simulated(u64);

const CHECK_DISTANCE: u32 = 8;

fn simulate(mut q: Query<(&mut Pos, &mut Vel, &mut Hp)>, mut simulated: ResMut<Simulated>) {
    for (mut p, mut v, mut hp) in &mut q {
        p.0 += v.0;
        p.1 += v.1;
        if p.0.abs() > 100.0 {
            v.0 = -v.0;
        }
        if p.1.abs() > 100.0 {
            v.1 = -v.1;
        }
        hp.0 = hp.0.wrapping_add(1);
    }
    simulated.0 += 1;
}

fn entity(i: usize) -> (Pos, Vel, Hp) {
    let f = i as f32;
    (
        Pos(f % 200.0 - 100.0, (f * 7.0) % 200.0 - 100.0),
        Vel((f % 5.0) * 0.1 + 0.1, (f % 3.0) * 0.1 - 0.1),
        Hp(100),
    )
}

fn base_app() -> App {
    let mut app = App::new();
    app.add_plugins((TaskPoolPlugin::default(), TimePlugin))
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_nanos(
            16_666_667,
        )))
        .init_resource::<Simulated>();
    app
}

mod ours {
    use super::*;
    use bevy_gamenet::rollback::{
        AddRollback as _, FrameClock, LocalInputs, LocalPlayers, ReadInputs, RollbackApp as _,
        RollbackPlugin, RollbackSchedule,
    };
    use gamenet::rollback::RollbackConfig;

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

// bevy_ggrs 0.22 pins Bevy 0.19 and this workspace is on Bevy 0.20, so the
// comparison is gated out here (its columns read 0) until it runs from a bench
// crate of its own outside the workspace.
#[cfg(any())]
mod theirs {
    use super::*;
    use bevy_ggrs::prelude::*;

    type Config = bevy_ggrs::GgrsConfig<u8, usize>;

    pub fn app(n: usize) -> App {
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
        let mut app = base_app();
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
            .add_systems(GgrsSchedule, simulate)
            .add_systems(Startup, move |mut commands: Commands| {
                for i in 0..n {
                    commands.spawn((entity(i), Rollback));
                }
            })
            .insert_resource(Session::SyncTest(session));
        app
    }
}

/// Runs `warmup` updates, then times `frames` updates; returns the time per
/// update and the frames simulated per update.
fn measure(app: &mut App, warmup: u32, frames: u32) -> (Duration, f64) {
    for _ in 0..warmup {
        app.update();
    }
    let before = app.world().resource::<Simulated>().0;
    let start = Instant::now();
    for _ in 0..frames {
        app.update();
    }
    let elapsed = start.elapsed();
    let simulated = app.world().resource::<Simulated>().0 - before;
    (elapsed / frames, simulated as f64 / frames as f64)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken.
    let runs = 5;
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Rollback: save + load + re-simulate {CHECK_DISTANCE} frames, gamenet vs bevy_ggrs 0.22\n"
    );
    let _ = writeln!(
        report,
        "Sync-test mode, check distance {CHECK_DISTANCE}: per frame 9 saves, 1 load and 9 simulated \
         frames. Three rolled-back components per entity (position checksummed). \
         {runs} runs each, alternating; time per frame (one app update).\n"
    );
    let _ = writeln!(
        report,
        "| entities | gamenet best ms | gamenet median ms | bevy_ggrs best ms | bevy_ggrs median ms | speed-up best | speed-up median |"
    );
    let _ = writeln!(report, "|---:|---:|---:|---:|---:|---:|---:|");
    for (n, frames) in [(1_000usize, 300u32), (10_000, 60)] {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for run in 0..runs {
            let mut app = ours::app(n);
            let (t, per) = measure(&mut app, 20, frames);
            let stats = app.world().resource::<RollbackSocket<u8>>().stats();
            ours.push(t);
            #[cfg(any())]
            let (g, gper) = measure(&mut theirs::app(n), 20, frames);
            #[cfg(not(any()))]
            let (g, gper) = (Duration::ZERO, 0.0);
            theirs.push(g);
            println!(
                "{n} entities, run {run}: gamenet {} ms/frame ({per:.1} frames simulated per frame), \
                 bevy_ggrs {} ms/frame ({gper:.1}); {stats:?}",
                ms(t),
                ms(g),
            );
        }
        let (ob, om) = (*ours.iter().min().unwrap_or(&Duration::ZERO), median(ours));
        let (tb, tm) = (
            *theirs.iter().min().unwrap_or(&Duration::ZERO),
            median(theirs),
        );
        let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64().max(1e-12);
        let line = format!(
            "| {n} | {} | {} | {} | {} | {:.2}x | {:.2}x |",
            ms(ob),
            ms(om),
            ms(tb),
            ms(tm),
            ratio(ob, tb),
            ratio(om, tm)
        );
        println!("{line}");
        let _ = writeln!(report, "{line}");
    }
    let _ = writeln!(
        report,
        "\nSpeed-up is bevy_ggrs time over gamenet time (goal: at least 2x). Run with \
         `cargo xtask bench rollback`."
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/results/rollback.md");
    std::fs::write(path, &report).expect("write the report");
    println!("\n{report}\nwritten to benches/results/rollback.md");
}
