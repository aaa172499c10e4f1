//! Moving `Transform`s replicated between peers: each peer spins a square
//! around the centre and prints where it sees everyone else's, interpolated.
//!
//! Start the server (`cargo run -p gamenet_signaling`), then in two or more
//! terminals:
//!
//! ```sh
//! cargo run -p bevy_gamenet --example transforms -- ws://localhost:3000/spin
//! ```

use std::time::{Duration, Instant};

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;
use bevy_math::{EulerRot, Quat, Vec2};
use bevy_transform::components::Transform;

/// A square: where it is and how it looks, in 50 bits.
#[derive(Component, Clone, Copy, PartialEq, Debug, Default, NetState)]
#[require(Transform)]
struct Square {
    #[net(range = -512.0..512.0, precision = 0.1)]
    at: Vec2,
    #[net(angle, bits = 12)]
    angle: f32,
    #[net(bits = 3)]
    colour: u8,
}

/// Linked to the entity's `Transform`: sent from it, applied to it.
impl TransformState for Square {
    fn copy_from(&mut self, t: &Transform) {
        self.at = t.translation.truncate();
        self.angle = t.rotation.to_euler(EulerRot::ZYX).0;
    }
    fn apply(&self, t: &mut Transform) {
        t.translation = self.at.extend(t.translation.z);
        t.rotation = Quat::from_rotation_z(self.angle);
    }
}

/// Moves this peer's square along its circle.
fn spin(mut started: Local<Option<Instant>>, mut mine: Query<&mut Transform, Without<Remote>>) {
    let t = started
        .get_or_insert_with(Instant::now)
        .elapsed()
        .as_secs_f32();
    for mut transform in &mut mine {
        *transform = Transform::from_xyz(100.0 * t.cos(), 100.0 * t.sin(), 0.0);
        transform.rotate_z(t);
    }
}

fn main() {
    let url = std::env::args()
        .nth(1)
        .unwrap_or("ws://localhost:3000/spin".into());
    let mesh = PeerMesh::builder(url).ice_server(IceServer::none());
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::connect(
        mesh,
        ReplicationConfig::default(),
    ))
    .replicate_transform::<Square>()
    .add_systems(Update, spin);
    app.finish(); // connects, now that every state type is registered
    let colour = (std::process::id() % 8) as u8;
    app.world_mut().spawn((
        Square {
            colour,
            ..Square::default()
        },
        Replicated,
    ));
    let mut last = Instant::now();
    loop {
        app.update();
        if last.elapsed() >= Duration::from_secs(1) {
            last = Instant::now();
            let world = app.world_mut();
            let mut others = world.query::<(&Remote, &Transform, &Square)>();
            for (remote, t, square) in others.iter(world) {
                let at = t.translation;
                println!("{:?} colour {}: at {at:.1}", remote.owner, square.colour);
            }
        }
        std::thread::sleep(Duration::from_millis(8));
    }
}
