//! Replication over real WebRTC through the real signaling server, in an
//! isolated network namespace: three native peers, one owns moving entities;
//! every peer converges to the owner's state; the owner leaves and the peer
//! with the lowest id carries on with every entity still present everywhere.

use std::time::Duration;

use gamenet::replication::{NetId, ReplicationConfig, ReplicationEvent, ReplicationNet, Schema};
use gamenet::{Instant, PeerMesh};
use gamenet_e2e::{isolated, join, start_server};

const TICK: Duration = Duration::from_micros(16_667);

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

type Net = ReplicationNet<PeerMesh>;

async fn run_for(
    nets: &mut [Option<Net>],
    d: Duration,
    mut each_tick: impl FnMut(&mut [Option<Net>]),
) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end {
        each_tick(nets);
        for net in nets.iter_mut().flatten() {
            net.update();
            net.tick(Instant::now());
            while net.poll_event().is_some() {}
        }
        tokio::time::sleep(TICK).await;
    }
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
                    Some(ReplicationNet::new(
                        mesh,
                        ReplicationConfig::default(),
                        schema(),
                    ))
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
                        .and_then(|r| r.spawn(0, fields(0, k)))
                        .expect("spawn")
                })
                .collect();
            let mut t = 0;
            run_for(&mut nets, Duration::from_secs(2), |nets| {
                t += 1;
                if let Some(r) = nets[0].as_mut().and_then(|n| n.replicator_mut()) {
                    for (k, id) in ids.iter().enumerate() {
                        r.set(*id, fields(t, k as u32));
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
                            r.set(*id, fields(t, k as u32));
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
