//! The game both halves of the rollback benchmark run, and the figures file
//! that carries the bevy_ggrs half's times to the gamenet half.
//!
//! The gamenet half (`benches/benches/rollback.rs`) is in the workspace; the
//! bevy_ggrs half (`benches/ggrs/benches/rollback.rs`) is a crate of its own
//! on the Bevy that bevy_ggrs 0.22 pins, and includes this file by path. So
//! both simulate, save, load and time exactly the same; this file only uses
//! Bevy API that every Bevy the two halves build with has.
//!
//! N rolled-back entities with three components each (position, velocity, hit
//! points; the position checksummed), and one system that moves them. Each app
//! update runs exactly one frame; the time per update is the cost of a frame.

use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

use bevy::app::{App, TaskPoolPlugin};
use bevy::ecs::prelude::*;
use bevy::time::{TimePlugin, TimeUpdateStrategy};
use serde::{Deserialize, Serialize};

/// Frames loaded back and simulated again on every frame (sync-test mode).
pub const CHECK_DISTANCE: u32 = 8;

/// Runs of each size, for each half.
pub const RUNS: usize = 5;

/// App updates before the timed ones.
pub const WARMUP: u32 = 20;

/// Entity counts, and the app updates timed at each.
pub const SIZES: [(usize, u32); 2] = [(1_000, 300), (10_000, 60)];

/// The figures file of the bevy_ggrs half, in `benches/results/`.
pub const FIGURES_FILE: &str = "rollback_bevy_ggrs.json";

/// Rolled back and checksummed.
#[derive(Component, Clone, Copy, PartialEq, Debug)]
pub struct Pos(pub f32, pub f32);

impl Hash for Pos {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.to_bits().hash(h);
        self.1.to_bits().hash(h);
    }
}

/// Rolled back.
#[derive(Component, Clone, Copy, PartialEq, Debug)]
pub struct Vel(pub f32, pub f32);

/// Rolled back.
#[derive(Component, Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Hp(pub u32);

/// Frames simulated, re-simulations included (not rolled back).
#[derive(Resource, Default)]
pub struct Simulated(pub u64);

/// The one rollback system: moves every entity, bouncing off the walls.
pub fn simulate(mut q: Query<(&mut Pos, &mut Vel, &mut Hp)>, mut simulated: ResMut<Simulated>) {
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

/// The components of entity `i`.
pub fn entity(i: usize) -> (Pos, Vel, Hp) {
    let f = i as f32;
    (
        Pos(f % 200.0 - 100.0, (f * 7.0) % 200.0 - 100.0),
        Vel((f % 5.0) * 0.1 + 0.1, (f % 3.0) * 0.1 - 0.1),
        Hp(100),
    )
}

/// An app with tasks, time on a manual 1/60 s clock and [`Simulated`]; each
/// half adds its rollback plugin.
pub fn base_app() -> App {
    let mut app = App::new();
    app.add_plugins((TaskPoolPlugin::default(), TimePlugin))
        .insert_resource(TimeUpdateStrategy::ManualDuration(Duration::from_nanos(
            16_666_667,
        )))
        .init_resource::<Simulated>();
    app
}

/// Runs [`WARMUP`] updates, then times `frames` updates; returns the time per
/// update and the frames simulated per update.
pub fn measure(app: &mut App, frames: u32) -> (Duration, f64) {
    for _ in 0..WARMUP {
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

/// What the figures were measured on; the gamenet half only compares with
/// figures of the same scenario.
pub fn scenario_id() -> String {
    format!(
        "sync test, check distance {CHECK_DISTANCE}, Pos+Vel+Hp rolled back, Pos checksummed, \
         {RUNS} runs, {WARMUP} warm-up updates, (entities, timed updates) {SIZES:?}"
    )
}

/// The bevy_ggrs half's figures, as written to [`FIGURES_FILE`].
#[derive(Serialize, Deserialize, Debug)]
pub struct Figures {
    /// The library measured, with its version.
    pub library: String,
    /// [`scenario_id`] of the run.
    pub scenario: String,
    /// When the run ended, in seconds since the Unix epoch.
    pub written_unix_secs: u64,
    /// One entry per entity count of [`SIZES`].
    pub sizes: Vec<SizeFigures>,
}

/// The runs at one entity count.
#[derive(Serialize, Deserialize, Debug)]
pub struct SizeFigures {
    /// Rolled-back entities.
    pub entities: usize,
    /// Milliseconds per frame, one per run, in run order.
    pub ms_per_frame: Vec<f64>,
    /// Frames simulated per frame, re-simulations included, one per run.
    pub simulated_per_frame: Vec<f64>,
}

/// The fastest and the median of `runs`.
pub fn best_and_median(runs: &[Duration]) -> (Duration, Duration) {
    let mut v = runs.to_vec();
    v.sort();
    (
        v.first().copied().unwrap_or_default(),
        v.get(v.len() / 2).copied().unwrap_or_default(),
    )
}

/// Milliseconds with three decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64() * 1e3)
}
