//! The rollback plugin in sync-test mode: every frame re-simulates the last
//! frames and compares checksums, so anything the plugin fails to restore
//! (components, resources, spawned and despawned entities, hierarchy,
//! messages, states, the rollback clock) shows up as a desync.

use std::sync::atomic::{AtomicU64, Ordering};

use bevy_app::{App, Startup};
use bevy_ecs::entity::{EntityMapper, MapEntities};
use bevy_ecs::prelude::*;
use bevy_gamenet::rollback::{
    AddRollback, LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, Rollback, RollbackApp,
    RollbackFrame, RollbackPlugin, RollbackSchedule, RollbackSocket, RollbackTime, SessionEvent,
    stable_hash,
};
use bevy_state::app::{AppExtStates, StatesPlugin};
use bevy_state::prelude::*;
use bevy_time::Time;
use gamenet::rollback::{RollbackConfig, RollbackEvent};

#[derive(Component, Clone, Copy, Hash, PartialEq, Eq, Debug)]
struct Pos(i32, i32);

#[derive(Component, Clone, Copy, Hash, PartialEq, Eq, Debug)]
struct Player(usize);

#[derive(Component, Clone, Hash, PartialEq, Eq, Debug)]
struct Bullet {
    ttl: u32,
    shooter: Entity,
}

impl MapEntities for Bullet {
    fn map_entities<M: EntityMapper>(&mut self, mapper: &mut M) {
        self.shooter = mapper.get_mapped(self.shooter);
    }
}

#[derive(Component, Clone, Copy, Hash, PartialEq, Eq, Debug)]
struct Jitter(u64);

#[derive(Resource, Clone, Hash, Default, Debug)]
struct Score(u64);

#[derive(Message, Clone, Copy, Debug)]
struct Hit(u32);

#[derive(
    States, Clone, Copy, PartialEq, Eq, Hash, Debug, Default, serde::Serialize, serde::Deserialize,
)]
enum Phase {
    #[default]
    Warmup,
    Play,
}

static RUNS: AtomicU64 = AtomicU64::new(0);

fn read_inputs(
    players: Res<LocalPlayers>,
    frame: Res<RollbackFrame>,
    mut inputs: ResMut<LocalInputs<u8>>,
) {
    for &slot in &players.0 {
        inputs
            .0
            .insert(slot, ((frame.0 / 7 + slot as u32) % 5) as u8);
    }
}

fn spawn_players(mut commands: Commands) {
    for slot in 0..2 {
        commands.spawn((Player(slot), Pos(0, 0))).add_rollback();
    }
}

fn move_players(
    inputs: Res<PlayerInputs<u8>>,
    phase: Res<State<Phase>>,
    mut q: Query<(&Player, &mut Pos)>,
) {
    let step = if *phase.get() == Phase::Play { 2 } else { 1 };
    for (p, mut pos) in &mut q {
        match inputs.0[p.0].0 {
            1 => pos.0 += step,
            2 => pos.0 -= step,
            3 => pos.1 += step,
            4 => pos.1 -= step,
            _ => {}
        }
    }
}

/// Player 1 leaves at frame 100, its bullets (children) with it; rolling back
/// across that respawns them all as new entities, references remapped.
fn retire(mut commands: Commands, frame: Res<RollbackFrame>, q: Query<(Entity, &Player)>) {
    if frame.0 == 100 {
        for (e, p) in &q {
            if p.0 == 1 {
                commands.entity(e).despawn();
            }
        }
    }
}

fn shoot(
    mut commands: Commands,
    frame: Res<RollbackFrame>,
    players: Query<(Entity, &Player, &Pos)>,
) {
    if frame.0 % 10 != 3 {
        return;
    }
    let mut players: Vec<_> = players.iter().collect();
    players.sort_by_key(|(_, p, _)| p.0);
    for (e, _, pos) in players {
        // Bullets are children of their shooter: the hierarchy rolls back too.
        commands
            .spawn((
                Bullet {
                    ttl: 12,
                    shooter: e,
                },
                *pos,
                ChildOf(e),
            ))
            .add_rollback();
    }
}

fn age_bullets(
    mut commands: Commands,
    mut q: Query<(Entity, &Rollback, &mut Bullet, &ChildOf)>,
    mut hits: MessageWriter<Hit>,
) {
    let mut bullets: Vec<_> = q.iter_mut().collect();
    bullets.sort_by_key(|(_, r, _, _)| **r);
    for (e, r, mut b, parent) in bullets {
        assert_eq!(
            parent.0, b.shooter,
            "hierarchy and references stay consistent"
        );
        b.ttl -= 1;
        if b.ttl == 0 {
            hits.write(Hit(r.0));
            commands.entity(e).despawn();
        }
    }
}

fn count_hits(
    mut hits: MessageReader<Hit>,
    mut score: ResMut<Score>,
    phase: Res<State<Phase>>,
    time: Res<Time>,
) {
    let weight = if *phase.get() == Phase::Play { 3 } else { 1 };
    for Hit(id) in hits.read() {
        score.0 = score.0.wrapping_mul(31) + (*id as u64) * weight;
    }
    // The rollback clock is what `Time` shows in the rollback schedule.
    score.0 = score
        .0
        .wrapping_add((time.elapsed_secs_f64() * 60.0).round() as u64);
}

/// Runs before the writer: it would see the previous frame's hits, which a
/// rolled-back message type does not carry across frames (so every run of a
/// frame sees the same messages).
fn count_stale_hits(mut hits: MessageReader<Hit>, mut score: ResMut<Score>) {
    for Hit(id) in hits.read() {
        score.0 += 1_000 * *id as u64;
    }
}

fn start_play(frame: Res<RollbackFrame>, mut next: ResMut<NextState<Phase>>) {
    if frame.0 == 60 {
        next.set(Phase::Play);
    }
}

fn jitter(mut q: Query<&mut Jitter>) {
    for mut j in &mut q {
        j.0 += RUNS.fetch_add(1, Ordering::Relaxed);
    }
}

fn app(non_deterministic: bool) -> App {
    let config = RollbackConfig {
        num_players: 2,
        fps: 10_000,
        ..RollbackConfig::default()
    };
    let mut app = App::new();
    app.add_plugins(StatesPlugin)
        .init_state::<Phase>()
        .add_plugins(RollbackPlugin::<u8>::sync_test(config, 7))
        .rollback_component_with_copy::<Pos>()
        .checksum_component_with_hash::<Pos>()
        .rollback_component_with_copy::<Player>()
        .rollback_component_map_entities::<Bullet>()
        // Entities differ between peers and after respawns: hash the rest.
        .checksum_component::<Bullet>(|b| stable_hash(&b.ttl))
        .rollback_resource_with_clone::<Score>()
        .checksum_resource_with_hash::<Score>()
        .rollback_message::<Hit>()
        .rollback_state::<Phase>()
        .init_resource::<Score>()
        .add_systems(Startup, spawn_players)
        .add_systems(ReadInputs, read_inputs)
        .add_systems(
            RollbackSchedule,
            (
                count_stale_hits,
                move_players,
                shoot,
                age_bullets,
                count_hits,
                start_play,
                retire,
            )
                .chain(),
        );
    if non_deterministic {
        app.rollback_component_with_copy::<Jitter>()
            .checksum_component_with_hash::<Jitter>()
            .add_systems(Startup, |mut c: Commands| {
                c.spawn(Jitter(0)).add_rollback();
            })
            .add_systems(RollbackSchedule, jitter);
    }
    app
}

fn run(app: &mut App, frames: u32) -> Vec<RollbackEvent> {
    let mut events = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        app.update();
        let mut reader = app.world_mut().resource_mut::<Messages<SessionEvent>>();
        events.extend(reader.drain().map(|e| e.0));
        let frame = app
            .world()
            .resource::<RollbackSocket<u8>>()
            .stats()
            .map(|s| s.frame)
            .unwrap_or(0);
        if frame >= frames {
            return events;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stuck at frame {frame}"
        );
    }
}

#[test]
fn sync_test_restores_everything_it_rolls_back() {
    let mut app = app(false);
    let events = run(&mut app, 300);
    let desyncs: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, RollbackEvent::DesyncDetected { .. }))
        .collect();
    assert!(desyncs.is_empty(), "{desyncs:?}");
    let world = app.world_mut();
    let stats = world.resource::<RollbackSocket<u8>>().stats().unwrap();
    assert!(
        stats.rollbacks > 250 && stats.checksums_matched > 1_000,
        "{stats:?}"
    );
    assert_eq!(*world.resource::<State<Phase>>().get(), Phase::Play);
    assert!(world.resource::<Score>().0 > 0);
    let bullets = world.query::<&Bullet>().iter(world).count();
    assert!(bullets > 0 && bullets <= 2, "{bullets} bullets alive");
    assert_eq!(world.query::<&Player>().iter(world).count(), 1);
    let frame = world
        .resource::<RollbackSocket<u8>>()
        .stats()
        .unwrap()
        .frame;
    let time = world.resource::<Time<RollbackTime>>();
    assert!((time.elapsed_secs_f64() * 10_000.0 - frame as f64).abs() < 0.5);
}

#[test]
fn a_non_deterministic_component_is_named_by_the_desync() {
    let mut app = app(true);
    let events = run(&mut app, 50);
    let parts = events
        .iter()
        .find_map(|e| match e {
            RollbackEvent::DesyncDetected { parts, .. } => Some(parts.clone()),
            _ => None,
        })
        .expect("a desync");
    assert_eq!(parts, vec![std::any::type_name::<Jitter>().to_string()]);
}
