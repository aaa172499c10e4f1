//! Interpolation on the sender's timeline: a 2D and a 3D `Transform` moved
//! along known paths and replicated over a seeded link with 30 to 70 ms of
//! delay (50 ± 20 ms of jitter). The receiver's shown path is compared with
//! the sender's at the lag that fits best; placing states by their sender's
//! clock must keep it closer than placing them by arrival.

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;
use bevy_gamenet::replication::Timeline;
use bevy_gamenet::test_app::TestNetwork;
use bevy_math::{Quat, Vec3};
use bevy_transform::components::Transform;
use gamenet::{ConditionerConfig, MemoryTransport};

/// Where the sender's entities are `t` seconds in: a circle of radius 300
/// at 1 rad/s (300 units/s), and a 3D loop at 200 to 280 units/s.
fn path(t: f64, solid: bool) -> Vec3 {
    let t = t as f32;
    if solid {
        Vec3::new(200.0 * t.cos(), 100.0 * (2.0 * t).sin(), 200.0 * t.sin())
    } else {
        Vec3::new(300.0 * t.cos(), 300.0 * t.sin(), 0.0)
    }
}

fn app(transport: MemoryTransport, timeline: Timeline) -> App {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::memory(
        transport,
        ReplicationConfig::default(),
    ))
    .replicate_transform::<Transform2d>()
    .replicate_transform::<Transform3d>()
    .insert_resource(ReplicationSettings {
        timeline,
        ..ReplicationSettings::default()
    });
    app
}

/// The receiver's shown positions, by time since the start, of the 2D and
/// the 3D entity.
type Shown = Vec<(f64, Vec3, Vec3)>;

/// Runs the two paths for 8 s and records what the receiver shows after
/// the first 2 s.
fn run(timeline: Timeline) -> Shown {
    let link = ConditionerConfig {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(40),
        seed: 11,
        ..ConditionerConfig::default()
    };
    let mut net = TestNetwork::new(link);
    net.add_app(PeerId(1), |t| app(t, timeline));
    net.add_app(PeerId(2), |t| app(t, timeline));
    let start = net.now();
    let world = net.app_mut(0).world_mut();
    let flat = world.spawn((Transform2d::default(), Replicated)).id();
    let solid = world.spawn((Transform3d::default(), Replicated)).id();
    let mut shown = Vec::new();
    while net.now().duration_since(start) < Duration::from_secs(8) {
        let t = net.now().duration_since(start).as_secs_f64();
        let world = net.app_mut(0).world_mut();
        *world.get_mut::<Transform>(flat).expect("2D") =
            Transform::from_translation(path(t, false));
        *world.get_mut::<Transform>(solid).expect("3D") =
            Transform::from_translation(path(t, true))
                .with_rotation(Quat::from_rotation_y(t as f32));
        net.step();
        let t = net.now().duration_since(start).as_secs_f64();
        let world = net.app_mut(1).world_mut();
        let mut q = world.query_filtered::<(&Transform, Has<Transform2d>), With<Remote>>();
        let (mut a, mut b) = (None, None);
        for (transform, flat) in q.iter(world) {
            *(if flat { &mut a } else { &mut b }) = Some(transform.translation);
        }
        if t >= 2.0 {
            shown.push((t, a.expect("2D shown"), b.expect("3D shown")));
        }
    }
    shown
}

/// The largest and the root-mean-square distance of the shown path from
/// the sender's `lag` seconds earlier.
fn errors(shown: &Shown, lag: f64, solid: bool) -> (f32, f32) {
    let d: Vec<f32> = shown
        .iter()
        .map(|&(t, a, b)| (if solid { b } else { a }).distance(path(t - lag, solid)))
        .collect();
    let max = d.iter().copied().fold(0.0, f32::max);
    let rms = (d.iter().map(|e| e * e).sum::<f32>() / d.len() as f32).sqrt();
    (max, rms)
}

/// The errors at the constant lag (50 to 300 ms) that fits best.
fn best(shown: &Shown, solid: bool) -> (f64, f32, f32) {
    (50..=300)
        .map(|ms| {
            let (max, rms) = errors(shown, ms as f64 / 1000.0, solid);
            (ms as f64 / 1000.0, max, rms)
        })
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .expect("lags")
}

#[test]
fn the_senders_timeline_keeps_jitter_out_of_the_motion() {
    let sender = run(Timeline::Sender);
    let arrival = run(Timeline::Arrival);
    for (solid, name) in [(false, "2D"), (true, "3D")] {
        let (lag, max, rms) = best(&sender, solid);
        let (lag_a, max_a, rms_a) = best(&arrival, solid);
        println!(
            "RESULT {name} Transform, 50 ± 20 ms: sender's timeline max {max:.2} rms {rms:.2} (lag {:.0} ms), arrival time max {max_a:.2} rms {rms_a:.2} (lag {:.0} ms)",
            lag * 1000.0,
            lag_a * 1000.0
        );
        assert!(max < 1.0, "{name}: {max:.2} units off the sender's path");
        assert!(
            max < max_a / 2.0,
            "{name}: {max:.2} against {max_a:.2} by arrival"
        );
        assert!(rms < rms_a, "{name}: rms {rms:.2} against {rms_a:.2}");
    }
}
