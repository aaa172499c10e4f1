//! The example game, headless, over the real signaling server and real
//! WebRTC in an isolated network namespace.

use std::time::{Duration, Instant};

use arena::{Ball, Score};
use bevy_app::App;
use bevy_gamenet::replication::Remote;
use gamenet::rollback::Frame;
use gamenet_e2e::session::confirmed_checksum;
use gamenet_e2e::{isolated, start_server};

/// The ball as this app sees it, and whether another peer owns it.
fn ball(app: &mut App) -> Option<(Ball, bool)> {
    let world = app.world_mut();
    world
        .query::<(&Ball, Option<&Remote>)>()
        .iter(world)
        .next()
        .map(|(b, r)| (b.clone(), r.is_some()))
}

fn step(apps: &mut [&mut App]) {
    for app in apps.iter_mut() {
        app.update();
    }
    std::thread::sleep(Duration::from_millis(4));
}

#[test]
fn two_headless_games_agree_and_the_ball_survives_its_owner_leaving() {
    isolated(
        "two_headless_games_agree_and_the_ball_survives_its_owner_leaving",
        || async {
            let url = format!("{}/arena?next=2", start_server().await);
            let mut a = arena::headless_app(&url, 2, 1);
            let mut b = arena::headless_app(&url, 2, 2);
            const TARGET: Frame = 608;
            let deadline = Instant::now() + Duration::from_secs(60);
            while confirmed_checksum(&a, TARGET).is_none()
                || confirmed_checksum(&b, TARGET).is_none()
            {
                step(&mut [&mut a, &mut b]);
                assert!(Instant::now() < deadline, "frame {TARGET} never confirmed");
            }
            let (ca, cb) = (
                confirmed_checksum(&a, TARGET),
                confirmed_checksum(&b, TARGET),
            );
            println!("frame {TARGET}: checksums {ca:x?} / {cb:x?}");
            assert_eq!(ca, cb);
            // One ball, owned by one of them, seen by both.
            let (ball_a, remote_a) = ball(&mut a).expect("a has the ball");
            let (ball_b, remote_b) = ball(&mut b).expect("b has the ball");
            assert!(remote_a != remote_b, "exactly one owner");
            println!("ball at a {ball_a:?}, at b {ball_b:?}");
            // The owner leaves; the other carries the ball on.
            let (owner, mut other) = if remote_a { (b, a) } else { (a, b) };
            drop(owner);
            let deadline = Instant::now() + Duration::from_secs(30);
            let taken_at = loop {
                step(&mut [&mut other]);
                if let Some((ball, false)) = ball(&mut other) {
                    break ball;
                }
                assert!(Instant::now() < deadline, "nobody took the ball over");
            };
            for _ in 0..30 {
                step(&mut [&mut other]);
            }
            let (later, remote) = ball(&mut other).expect("the ball is still there");
            assert!(!remote);
            assert!(
                (later.x, later.y) != (taken_at.x, taken_at.y),
                "the new owner moves the ball"
            );
            let world = other.world_mut();
            let scores = world.query::<&Score>().iter(world).count();
            assert_eq!(scores, 1, "the score lives on too");
            println!(
                "taken over at ({:.0}, {:.0}), later ({:.0}, {:.0})",
                taken_at.x, taken_at.y, later.x, later.y
            );
        },
    );
}
