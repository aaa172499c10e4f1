//! A headless two-player rollback game: each player's dot drifts by its
//! inputs; every second each peer prints the confirmed frame, its checksum
//! and the rollback counters, which match between the two terminals.
//!
//! Start the server (`cargo run -p gamenet_signaling`), then in two terminals:
//!
//! ```sh
//! cargo run -p bevy_gamenet --example rollback -- ws://localhost:3000/duel?next=2
//! ```
//!
//! A third terminal with `--join` appended joins the running game as a third
//! player (the session has three slots).

use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::rollback::{
    AddRollback, LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, RollbackApp, RollbackFrame,
    RollbackPlugin, RollbackSchedule, RollbackSocket, SessionEvent,
};
use gamenet::rollback::{InputStatus, RollbackConfig, RollbackStart};
use gamenet::{IceServer, PeerMesh};

#[derive(Component, Clone, Copy, Hash, Debug, serde::Serialize, serde::Deserialize)]
struct Dot {
    slot: usize,
    x: i32,
    y: i32,
}

/// Stands in for a keyboard: changes direction now and then.
fn read_input(
    players: Res<LocalPlayers>,
    frame: Res<RollbackFrame>,
    mut inputs: ResMut<LocalInputs<u8>>,
) {
    for &slot in &players.0 {
        inputs
            .0
            .insert(slot, ((frame.0 / 30 + slot as u32 * 7) % 4) as u8);
    }
}

/// Deterministic: dots appear for played slots, move by their inputs.
fn simulate(
    mut commands: Commands,
    inputs: Res<PlayerInputs<u8>>,
    mut dots: Query<(Entity, &mut Dot)>,
) {
    for (slot, (input, status)) in inputs.0.iter().enumerate() {
        let dot = dots.iter_mut().find(|(_, d)| d.slot == slot);
        match (dot, *status == InputStatus::Disconnected) {
            (None, false) => {
                commands.spawn(Dot { slot, x: 0, y: 0 }).add_rollback();
            }
            (Some((e, _)), true) => commands.entity(e).despawn(),
            (Some((_, mut d)), false) => match input {
                0 => d.x += 1,
                1 => d.x -= 1,
                2 => d.y += 1,
                _ => d.y -= 1,
            },
            (None, true) => {}
        }
    }
}

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "ws://localhost:3000/duel?next=2".into());
    let join = std::env::args().any(|a| a == "--join");
    let start = if join {
        RollbackStart::Join { players: 1 }
    } else {
        RollbackStart::Players(2)
    };
    let builder = PeerMesh::builder(url)
        .app_id("bevy-gamenet-rollback-example")
        .ice_server(IceServer::none());
    let config = RollbackConfig {
        num_players: 3,
        ..RollbackConfig::default()
    };
    let key = std::process::id() as u64;
    let mut app = App::new();
    app.add_plugins(RollbackPlugin::<u8>::connect(config, builder, start, key))
        .rollback_component_with_serde::<Dot>()
        .checksum_component_with_hash::<Dot>()
        .add_systems(ReadInputs, read_input)
        .add_systems(RollbackSchedule, simulate);
    let mut last = Instant::now();
    loop {
        app.update();
        for SessionEvent(event) in app
            .world_mut()
            .resource_mut::<Messages<SessionEvent>>()
            .drain()
        {
            println!("{event:?}");
        }
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            if let Some(session) = app.world().resource::<RollbackSocket<u8>>().session() {
                let stats = session.stats();
                let checked = stats.confirmed.saturating_sub(1) / 16 * 16;
                let sum = session.confirmed_checksum(checked).map(|c| c.total);
                println!(
                    "frame {} confirmed {} checksum@{checked} {sum:x?} rollbacks {} ahead {:.2}",
                    stats.frame, stats.confirmed, stats.rollbacks, stats.frames_ahead
                );
            }
        }
        std::thread::sleep(Duration::from_millis(4));
    }
}
