//! `#[derive(NetState)]` and the ready-made `Transform` states: every field
//! attribute round-trips within its bounds, and `Transform`s replicated
//! between two apps of the in-memory test network arrive within theirs.

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;
use bevy_gamenet::replication::{Transform2d, Transform3d};
use bevy_gamenet::test_app::TestNetwork;
use bevy_math::{Quat, Vec2, Vec3};
use bevy_transform::components::Transform;
use gamenet::{ConditionerConfig, MemoryTransport};
use serde::{Deserialize, Serialize};

/// The field's width, from a constant: ranges take constant expressions.
const FIELD: f32 = 640.0;

/// Something serde encodes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
struct Name(String);

/// One field of every kind the derive takes.
#[derive(Component, Clone, Debug, PartialEq, NetState)]
struct Everything {
    #[net(range = 0.0..FIELD, precision = 0.05)]
    x: f32,
    #[net(range = -10.0..10.0, bits = 10)]
    v: Vec2,
    #[net(range = -100.0..100.0, precision = 0.001)]
    p: Vec3,
    #[net(rotation, bits = 11)]
    q: Quat,
    #[net(angle)]
    heading: f32,
    #[net(range = -3..=3)]
    lives: i8,
    #[net(bits = 5)]
    team: u8,
    full: f32,
    flag: bool,
    raw: i32,
    #[net(serde, bytes = 12)]
    name: Name,
    #[net(skip)]
    local_only: u64,
    #[net(jump)]
    speed: f32,
}

/// Tuple structs derive too.
#[derive(Component, Clone, Debug, PartialEq, NetState)]
struct Pair(#[net(range = 0..100)] u16, #[net(angle, bits = 8)] f32);

fn everything() -> Everything {
    Everything {
        x: 123.456,
        v: Vec2::new(-9.99, 3.3),
        p: Vec3::new(-50.1234, 0.0004, 99.9),
        q: Quat::from_rotation_x(1.2) * Quat::from_rotation_y(-0.3),
        heading: 7.0,
        lives: -2,
        team: 31,
        full: 1.0e-9,
        flag: true,
        raw: -123_456,
        name: Name("ada".into()),
        local_only: 99,
        speed: 4.0,
    }
}

#[test]
fn every_field_attribute_round_trips_within_its_bounds() {
    let sent = everything();
    let fields = sent.to_fields();
    assert_eq!(fields.len(), Everything::WIDTHS.len());
    for (f, w) in fields.iter().zip(Everything::WIDTHS) {
        assert!(*w == 32 || *f < 1 << w, "field {f} wider than {w} bits");
    }
    let got = Everything::from_fields(&fields);
    assert!((got.x - sent.x).abs() <= 0.05);
    assert!((got.v - sent.v).abs().max_element() <= 20.0 / 1023.0 / 2.0 + 1e-6);
    assert!((got.p - sent.p).abs().max_element() <= 0.001);
    assert!(got.q.angle_between(sent.q) < 0.005);
    let wrapped = 7.0 - std::f32::consts::TAU;
    assert!((got.heading - wrapped).abs() < 1e-3, "{}", got.heading);
    assert_eq!((got.lives, got.team), (-2, 31));
    assert_eq!((got.full, got.flag, got.raw), (1.0e-9, true, -123_456));
    assert_eq!(got.name, Name("ada".into()));
    assert_eq!(got.local_only, 0, "skipped: the default");
    // Widths: 13 + 2×10 + 3×17 + (2 + 3×11) + 16 + 3 + 5 + 32 + 1 + 32 +
    // (4 + 3×32) + 0 + 32.
    let bits: u32 = Everything::WIDTHS.iter().map(|&w| w as u32).sum();
    assert_eq!(
        bits,
        13 + 20 + 51 + 35 + 16 + 3 + 5 + 32 + 1 + 32 + 100 + 32
    );

    // Out of range: clamped, never wrapped.
    let mut far = everything();
    far.x = 1e9;
    far.lives = 100;
    let back = Everything::from_fields(&far.to_fields());
    assert_eq!((back.x, back.lives), (FIELD, 3));

    let pair = Pair::from_fields(&Pair(42, -1.0).to_fields());
    assert_eq!(pair.0, 42);
    assert!((pair.1 + 1.0).abs() < 0.02);
}

#[test]
fn interpolation_follows_each_fields_kind() {
    let a = everything();
    let mut b = everything();
    b.x += 10.0;
    b.heading = a.heading + 0.5;
    b.lives = 1;
    b.speed = 8.0;
    let mid = a.interpolate(&b, 0.5);
    assert!((mid.x - (a.x + 5.0)).abs() < 1e-3);
    assert!((mid.heading - (a.heading + 0.25 - std::f32::consts::TAU)).abs() < 1e-3);
    assert_eq!(mid.lives, a.lives, "integers jump");
    assert_eq!(mid.speed, a.speed, "jump: no interpolation");
    assert_eq!(a.interpolate(&b, 1.0).speed, 8.0);
}

/// A 10 ms link without loss.
fn link() -> ConditionerConfig {
    ConditionerConfig {
        latency: Duration::from_millis(10),
        seed: 3,
        ..ConditionerConfig::default()
    }
}

fn app(transport: MemoryTransport) -> App {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::memory(
        transport,
        ReplicationConfig::default(),
    ))
    .replicate_transform::<Transform2d>()
    .replicate_transform::<Transform3d>();
    app
}

/// The `Transform` of the first remote entity carrying `S`.
fn remote<S: Component>(app: &mut App) -> Option<Transform> {
    let world = app.world_mut();
    let mut q = world.query_filtered::<&Transform, (With<Remote>, With<S>)>();
    q.iter(world).next().copied()
}

#[test]
fn transforms_replicate_within_their_quantisation_bounds() {
    let mut net = TestNetwork::new(link());
    net.add_app(PeerId(1), app);
    net.add_app(PeerId(2), app);
    let flat = net
        .app_mut(0)
        .world_mut()
        .spawn((
            Transform::from_xyz(10.0, 20.0, 3.0),
            Transform2d::default(),
            Replicated,
        ))
        .id();
    let solid = net
        .app_mut(0)
        .world_mut()
        .spawn((
            Transform::from_xyz(-1.0, 2.0, -3.0),
            Transform3d::default(),
            Replicated,
        ))
        .id();
    let limit = Duration::from_secs(5);
    net.run_until(limit, |apps| {
        remote::<Transform2d>(&mut apps[1]).is_some()
            && remote::<Transform3d>(&mut apps[1]).is_some()
    });
    // Moved and turned by their owner; the other peer settles on them.
    let turn = Quat::from_rotation_z(2.0);
    let tilt = Quat::from_euler(bevy_math::EulerRot::XYZ, 0.3, -1.1, 2.2);
    let world = net.app_mut(0).world_mut();
    *world.get_mut::<Transform>(flat).expect("2D") =
        Transform::from_xyz(-1234.567, 89.01, 3.0).with_rotation(turn);
    *world.get_mut::<Transform>(solid).expect("3D") =
        Transform::from_xyz(5000.1234, -0.0006, 42.4242).with_rotation(tilt);
    let sent_flat = Vec3::new(-1234.567, 89.01, 0.0);
    net.run_until(limit, |apps| {
        remote::<Transform2d>(&mut apps[1])
            .is_some_and(|t| (t.translation - sent_flat).truncate().length() < 0.1)
    });
    net.run_for(Duration::from_millis(300));
    let got = remote::<Transform2d>(net.app_mut(1)).expect("2D");
    let error_2d = (got.translation.truncate() - sent_flat.truncate())
        .abs()
        .max_element();
    assert!(error_2d <= 0.01, "2D off by {error_2d}");
    assert_eq!(got.translation.z, 0.0, "z is each peer's own");
    assert!(got.rotation.angle_between(turn) < 1e-3);
    let got = remote::<Transform3d>(net.app_mut(1)).expect("3D");
    let sent = Vec3::new(5000.1234, -0.0006, 42.4242);
    let error_3d = (got.translation - sent).abs().max_element();
    assert!(error_3d <= 0.001, "3D off by {error_3d}");
    let angle = got.rotation.angle_between(tilt);
    assert!(angle < 1e-3, "3D rotation off by {angle} rad");
    println!(
        "RESULT Transform2d ({} bits) arrived within {error_2d:.4}, Transform3d ({} bits) within {error_3d:.5} and {:.5} rad",
        Transform2d::WIDTHS.iter().map(|&w| w as u32).sum::<u32>(),
        Transform3d::WIDTHS.iter().map(|&w| w as u32).sum::<u32>(),
        angle
    );
}

#[test]
fn an_entity_with_two_states_is_sent_once_with_the_first() {
    let mut net = TestNetwork::new(link());
    net.add_app(PeerId(1), app);
    net.add_app(PeerId(2), app);
    net.app_mut(0).world_mut().spawn((
        Transform::from_xyz(1.0, 2.0, 3.0),
        Transform2d::default(),
        Transform3d::default(),
        Replicated,
    ));
    net.run_until(Duration::from_secs(5), |apps| {
        let world = apps[1].world_mut();
        world.query::<&Remote>().iter(world).count() > 0
    });
    net.run_for(Duration::from_millis(500));
    let world = net.app_mut(1).world_mut();
    let remotes = world.query::<&Remote>().iter(world).count();
    assert_eq!(remotes, 1, "one entity, not one per state");
}
