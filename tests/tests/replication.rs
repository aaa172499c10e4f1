//! Replication over real WebRTC through the real signaling server, in an
//! isolated network namespace: three native peers, one owns moving entities;
//! every peer converges to the owner's state; the owner leaves and the peer
//! with the lowest id carries on with every entity still present everywhere.

use std::time::Duration;

use gamenet::PeerMesh;
use gamenet::replication::{NetId, ReplicationConfig, ReplicationEvent, ReplicationNet, Schema};
use gamenet_e2e::replication::{Net, TICK, run_for};
use gamenet_e2e::{isolated, join, start_server};

fn schema() -> Schema {
    Schema {
        types: vec![vec![16, 16, 9]],
    }
}

fn fields(t: u32, k: u32) -> Vec<u32> {
    vec![
        (t * 7 + k) % 65536,
        (t * (k % 4) + 100) % 65536,
        (t + k) % 512,
    ]
}

fn agree(nets: &[Option<Net>], ids: &[NetId]) -> bool {
    let live: Vec<&Net> = nets.iter().flatten().collect();
    ids.iter().all(|id| {
        let first = live[0].replicator().and_then(|r| r.entity(*id));
        first.is_some()
            && live
                .iter()
                .all(|n| n.replicator().and_then(|r| r.entity(*id)) == first)
    })
}

#[test]
fn three_peers_replicate_and_survive_the_owner_leaving() {
    isolated(
        "three_peers_replicate_and_survive_the_owner_leaving",
        || async {
            let url = format!("{}/replicate?next=3", start_server().await);
            let mut nets: Vec<Option<Net>> = (0..3)
                .map(|_| {
                    let mesh = join(&url, "replication-e2e").expect("join");
                    Some(
                        ReplicationNet::new(mesh, ReplicationConfig::default(), schema())
                            .expect("config"),
                    )
                })
                .collect();
            // Wait until everyone is linked.
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            loop {
                run_for(&mut nets, TICK, |_| {}).await;
                let linked = nets
                    .iter()
                    .flatten()
                    .all(|n| n.replicator().is_some_and(|r| r.peers().count() == 2));
                if linked {
                    break;
                }
                assert!(tokio::time::Instant::now() < deadline, "peers never linked");
            }
            let ids: Vec<NetId> = (0..100)
                .map(|k| {
                    nets[0]
                        .as_mut()
                        .and_then(|n| n.replicator_mut())
                        .and_then(|r| r.spawn(0, &fields(0, k)).ok())
                        .expect("spawn")
                })
                .collect();
            let mut t = 0;
            run_for(&mut nets, Duration::from_secs(2), |nets| {
                t += 1;
                if let Some(r) = nets[0].as_mut().and_then(|n| n.replicator_mut()) {
                    for (k, id) in ids.iter().enumerate() {
                        let _ = r.set(*id, &fields(t, k as u32));
                    }
                }
            })
            .await;
            let stopped = std::time::Instant::now();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !agree(&nets, &ids) {
                run_for(&mut nets, TICK, |_| {}).await;
                assert!(tokio::time::Instant::now() < deadline, "no convergence");
            }
            println!("converged {:?} after the last move", stopped.elapsed());
            let owner = nets[0]
                .as_ref()
                .and_then(|n| n.replicator())
                .map(|r| r.id())
                .unwrap();
            let sent = nets[0]
                .as_ref()
                .and_then(|n| n.replicator())
                .map(|r| r.peers().map(|p| r.bytes_per_sec(p)).sum::<f64>())
                .unwrap_or(0.0);
            println!(
                "owner {owner} sent {sent:.0} B/s to its two peers over the last second of motion"
            );

            // The owner leaves.
            if let Some(mut n) = nets[0].take() {
                n.transport_mut().close();
            }
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            let successor = loop {
                run_for(&mut nets, TICK, |_| {}).await;
                let owners: Vec<_> = nets
                    .iter()
                    .flatten()
                    .map(|n| {
                        n.replicator()
                            .and_then(|r| r.entity(ids[0]))
                            .map(|e| e.owner)
                    })
                    .collect();
                if owners.iter().all(|o| o.is_some_and(|o| o != owner)) {
                    break owners[0].unwrap();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no successor: {owners:?}"
                );
            };
            let lowest = nets
                .iter()
                .flatten()
                .filter_map(|n| n.replicator())
                .map(|r| r.id())
                .min();
            assert_eq!(Some(successor), lowest);
            for n in nets.iter().flatten() {
                let r = n.replicator().unwrap();
                for id in &ids {
                    assert_eq!(
                        r.entity(*id).map(|e| e.owner),
                        Some(successor),
                        "entity {id:?} everywhere"
                    );
                }
            }
            // The successor moves them on; the other follows.
            let mut t = 1_000;
            run_for(&mut nets, Duration::from_secs(1), |nets| {
                t += 1;
                for n in nets.iter_mut().flatten() {
                    if let Some(r) = n.replicator_mut().filter(|r| r.id() == successor) {
                        for (k, id) in ids.iter().enumerate() {
                            let _ = r.set(*id, &fields(t, k as u32));
                        }
                    }
                }
            })
            .await;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while !agree(&nets, &ids) {
                run_for(&mut nets, TICK, |_| {}).await;
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no convergence after migration"
                );
            }
            for n in nets.iter_mut().flatten() {
                while let Some(e) = n.poll_replication_event() {
                    assert!(
                        !matches!(e, ReplicationEvent::PeerMisbehaved { .. }),
                        "{e:?}"
                    );
                }
            }
            println!(
                "the successor {successor} carried on with all {} entities",
                ids.len()
            );
        },
    );
}

mod bevy {
    use super::*;
    use bevy_app::{App, Update};
    use bevy_diagnostic::DiagnosticsStore;
    use bevy_ecs::prelude::*;
    use bevy_gamenet::replication::{
        BYTES_PER_SEC, NetState, Remote, Replicated, ReplicationApp, ReplicationPlugin,
        ReplicationSettings,
    };
    use gamenet::IceServer;

    #[derive(Component, Clone, PartialEq, Debug)]
    struct Ball {
        x: f32,
    }

    impl NetState for Ball {
        const WIDTHS: &'static [u8] = &[20];
        fn to_fields(&self) -> Vec<u32> {
            vec![(self.x * 100.0).round().clamp(0.0, 1_048_575.0) as u32]
        }
        fn from_fields(f: &[u32]) -> Self {
            Ball {
                x: f[0] as f32 / 100.0,
            }
        }
        fn interpolate(&self, next: &Self, t: f32) -> Self {
            Ball {
                x: self.x + (next.x - self.x) * t,
            }
        }
    }

    fn roll(mut q: Query<&mut Ball, (With<Replicated>, Without<Remote>)>) {
        for mut b in &mut q {
            b.x += 0.5;
        }
    }

    fn app(url: &str) -> App {
        let builder = PeerMesh::builder(url)
            .app_id("bevy-replication-e2e")
            .ice_server(IceServer::none());
        let mut app = App::new();
        app.add_plugins(ReplicationPlugin::connect(
            builder,
            ReplicationConfig::default(),
        ))
        .replicate::<Ball>()
        .insert_resource(ReplicationSettings {
            tick_hz: 60,
            interpolation_delay: Duration::from_millis(50),
            ..ReplicationSettings::default()
        })
        .add_systems(Update, roll);
        app.finish();
        app.cleanup();
        app
    }

    fn balls(app: &mut App) -> Vec<(Ball, bool)> {
        let world = app.world_mut();
        world
            .query::<(&Ball, Option<&Remote>)>()
            .iter(world)
            .map(|(b, r)| (b.clone(), r.is_some()))
            .collect()
    }

    #[test]
    fn two_bevy_apps_replicate_and_interpolate_a_ball_and_b_takes_over() {
        isolated(
            "bevy::two_bevy_apps_replicate_and_interpolate_a_ball_and_b_takes_over",
            || async {
                let url = format!("{}/bevy-replicate?next=2", start_server().await);
                let mut a = app(&url);
                let mut b = app(&url);
                a.world_mut().spawn((Ball { x: 10.0 }, Replicated));
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                let mut seen = Vec::new();
                loop {
                    a.update();
                    b.update();
                    if let Some((ball, true)) = balls(&mut b).first().cloned() {
                        seen.push(ball.x);
                        if seen.len() > 120 {
                            break;
                        }
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "b never saw the ball"
                    );
                    tokio::time::sleep(TICK).await;
                }
                // Interpolated: it moves on at b in small, steady steps.
                let steps: Vec<f32> = seen.windows(2).map(|w| w[1] - w[0]).collect();
                assert!(steps.iter().all(|s| *s >= -0.01), "went back: {steps:?}");
                assert!(seen.last().unwrap() - seen[0] > 20.0, "{seen:?}");
                let a_x = balls(&mut a)[0].0.x;
                let b_x = seen.last().copied().unwrap();
                println!("a at {a_x:.2}, b shows {b_x:.2} (interpolation delay + link)");
                let sent = a
                    .world()
                    .resource::<DiagnosticsStore>()
                    .get(&BYTES_PER_SEC)
                    .and_then(|d| d.value())
                    .unwrap_or(0.0);
                println!("a's diagnostic {BYTES_PER_SEC}: {sent:.0}");
                assert!(sent > 0.0);

                // a leaves: b owns the ball now and moves it itself.
                drop(a);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                loop {
                    b.update();
                    if let Some((_, false)) = balls(&mut b).first() {
                        break;
                    }
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "b never took the ball over"
                    );
                    tokio::time::sleep(TICK).await;
                }
                let before = balls(&mut b)[0].0.x;
                for _ in 0..10 {
                    b.update();
                }
                assert!(
                    balls(&mut b)[0].0.x > before,
                    "b moves the ball it took over"
                );
            },
        );
    }
}
