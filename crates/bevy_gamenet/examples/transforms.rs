//! Moving `Transform`s replicated between peers: each peer spins a square
//! around the centre and prints where it sees everyone else's, interpolated.
//!
//! Start the server (`cargo run -p gamenet_signaling`), then in two or more
//! terminals:
//!
//! ```sh
//! cargo run -p bevy_gamenet --example transforms -- ws://localhost:3000
//! ```

use std::time::Duration;

use bevy_app::{App, ScheduleRunnerPlugin, Startup, Update};
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;
use bevy_math::Vec2;
use bevy_time::common_conditions::on_timer;
use bevy_time::{Time, TimePlugin};
use bevy_transform::components::Transform;

/// A square: its place (to 0.1) and angle (to a 4096th of a turn), taken
/// from its `Transform` and written to the others' copies of it.
#[derive(Component, Clone, Copy, PartialEq, Debug, Default, NetState)]
#[require(Transform)]
struct Square {
    #[net(range = -512.0..512.0, precision = 0.1, transform = translation)]
    at: Vec2,
    #[net(angle, bits = 12, transform = rotation)]
    angle: f32,
}

/// Moves this peer's square along its circle.
fn spin(time: Res<Time>, mut mine: Query<&mut Transform, Without<Remote>>) {
    let t = time.elapsed_secs();
    for mut transform in &mut mine {
        *transform = Transform::from_xyz(100.0 * t.cos(), 100.0 * t.sin(), 0.0);
        transform.rotate_z(t);
    }
}

/// Prints where the others' squares are.
fn show(others: Query<(&Remote, &Transform), With<Square>>) {
    for (remote, t) in &others {
        println!("{}'s square: at {:.1}", remote.owner, t.translation);
    }
}

fn main() {
    let server = std::env::args()
        .nth(1)
        .unwrap_or("ws://localhost:3000".into());
    let every_second = on_timer(Duration::from_secs(1));
    App::new()
        .add_plugins((
            ScheduleRunnerPlugin::run_loop(Duration::from_millis(8)),
            TimePlugin,
        ))
        .add_plugins(
            GamenetPlugin::server(server)
                .room(Room::Named("spin".into()))
                .replication(ReplicationConfig::default()),
        )
        .replicate_transform::<Square>()
        .add_systems(Startup, |mut commands: Commands| {
            commands.spawn((Square::default(), Replicated));
        })
        .add_systems(Update, (spin, show.run_if(every_second)))
        .run();
}
