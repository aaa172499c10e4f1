//! Moving `Transform`s replicated between peers: each peer spins a square
//! around the centre and prints where it sees everyone else's, interpolated.
//!
//! Start the server (`cargo run -p gamenet_signaling`, on port 3000), then
//! in two or more terminals:
//!
//! ```sh
//! cargo run -p bevy_gamenet --example transforms
//! ```

use std::time::Duration;

use bevy_app::{App, ScheduleRunnerPlugin, Update};
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;
use bevy_math::Vec2;
use bevy_time::{Time, TimePlugin, common_conditions::on_timer};
use bevy_transform::components::Transform;

/// A square: its place (to 0.1) and angle (to a 4096th of a turn), taken
/// from its `Transform` and written to the others' copies of it (it brings
/// a `Transform` with it).
#[derive(Component, Clone, Copy, PartialEq, Debug, Default, NetState)]
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

/// One frame in 8 ms.
const FRAME: Duration = Duration::from_millis(8);

fn main() {
    let mut app = App::new();
    app.add_plugins((ScheduleRunnerPlugin::run_loop(FRAME), TimePlugin))
        .add_plugins(
            GamenetPlugin::server("ws://localhost:3000")
                .room(Room::Named("spin".into()))
                .replication(ReplicationConfig::default()),
        )
        .replicate_transform::<Square>()
        .add_systems(Update, spin)
        .add_systems(Update, show.run_if(on_timer(Duration::from_secs(1))));
    app.world_mut().spawn((Square::default(), Replicated));
    app.run();
}
