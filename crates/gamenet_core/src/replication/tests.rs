//! Replication over a simulated network: real meshes, seeded link
//! conditioners, a 60 Hz tick; time jumps between deadlines.

use std::collections::BTreeMap;
use std::time::Duration;

use super::*;
use crate::sim::SimLinks;
use crate::{ConditionerConfig, Event, Mesh, MeshConfig};

const TICK: Duration = Duration::from_nanos(16_666_667);

/// Type 0: x, y (16 bits each), angle (9 bits).
fn schema() -> Schema {
    Schema {
        types: vec![vec![16, 16, 9]],
    }
}

struct Node {
    id: PeerId,
    mesh: Mesh,
    rep: Replicator,
    alive: bool,
    events: Vec<(Instant, ReplicationEvent)>,
}

struct Net {
    now: Instant,
    nodes: Vec<Node>,
    links: SimLinks,
    next_tick: Instant,
}

impl Net {
    fn new(n: usize, link: ConditionerConfig, config: ReplicationConfig) -> Self {
        let now = Instant::now();
        let mut net = Net {
            now,
            nodes: Vec::new(),
            links: SimLinks::default(),
            next_tick: now,
        };
        for i in 0..n {
            let id = PeerId(i as u128 + 1);
            net.nodes.push(Node {
                id,
                mesh: Mesh::new(MeshConfig::default()).unwrap(),
                rep: Replicator::new(config.clone(), schema(), id),
                alive: true,
                events: Vec::new(),
            });
        }
        for a in 0..n {
            for b in 0..n {
                let (ia, ib) = (net.nodes[a].id, net.nodes[b].id);
                if a < b {
                    net.links.connect(ia, ib, &link);
                }
                if a != b {
                    net.nodes[a].mesh.handle_connected(now, ib);
                }
            }
        }
        net
    }

    fn index(&self, id: PeerId) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    fn kill(&mut self, i: usize) {
        self.nodes[i].alive = false;
        let id = self.nodes[i].id;
        self.links.cut(id);
        let now = self.now;
        for n in self.nodes.iter_mut().filter(|n| n.alive) {
            n.mesh.handle_disconnected(now, id);
        }
    }

    /// Runs for `d`, calling `each_tick` before every replication tick.
    fn run(&mut self, d: Duration, mut each_tick: impl FnMut(&mut Net)) {
        let end = self.now + d;
        while self.now < end {
            let now = self.now;
            for (from, to, ch, data) in self.links.due(now) {
                let i = self.index(to);
                self.nodes[i].mesh.handle_packet(now, from, ch, data);
            }
            let tick = now >= self.next_tick;
            if tick {
                each_tick(self);
                self.next_tick += TICK;
            }
            for n in self.nodes.iter_mut().filter(|n| n.alive) {
                if n.mesh.poll_timeout().is_some_and(|t| t <= now) {
                    n.mesh.handle_timeout(now);
                }
                while let Some(e) = n.mesh.poll_event() {
                    match e {
                        Event::PeerJoined(p) => n.rep.handle_peer_joined(p),
                        Event::PeerLeft { peer, .. } => n.rep.handle_peer_left(peer),
                        Event::Message { peer, payload, .. } => {
                            n.rep.handle_message(peer, &payload)
                        }
                        other => panic!("{other:?}"),
                    }
                }
                if tick {
                    n.rep.tick(now);
                }
                while let Some(e) = n.rep.poll_event() {
                    if let ReplicationEvent::PeerMisbehaved { .. } = e {
                        panic!("{}: {e:?}", n.id);
                    }
                    n.events.push((now, e));
                }
                while let Some(t) = n.rep.poll_transmit() {
                    let _ = n.mesh.send(t.peer, t.channel, &t.data);
                }
            }
            for n in self.nodes.iter_mut().filter(|n| n.alive) {
                self.links.send_from(now, n.id, &mut n.mesh);
            }
            let next = self
                .links
                .poll_timeout()
                .into_iter()
                .chain(
                    self.nodes
                        .iter()
                        .filter(|n| n.alive)
                        .filter_map(|n| n.mesh.poll_timeout()),
                )
                .chain([self.next_tick])
                .min()
                .unwrap_or(self.now + TICK);
            self.now = next.max(self.now + Duration::from_micros(50)).min(end);
        }
    }

    fn same_everywhere(&self, id: NetId) -> bool {
        let live: Vec<&Node> = self.nodes.iter().filter(|n| n.alive).collect();
        let first = live[0].rep.entity(id);
        first.is_some() && live.iter().all(|n| n.rep.entity(id) == first)
    }
}

fn link(loss: f64, seed: u64) -> ConditionerConfig {
    ConditionerConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        loss,
        duplicate: 0.01,
        seed,
    }
}

fn moving(t: u32, k: u32) -> Vec<u32> {
    vec![
        (1000 + t * 3 + k) % 65536,
        (2000 + t * (k % 5)) % 65536,
        (t + k) % 512,
    ]
}

#[test]
fn with_20_percent_loss_every_peer_converges_within_3_rtt_of_the_last_move() {
    let mut net = Net::new(3, link(0.2, 1), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..50)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    let mut t = 0;
    net.run(Duration::from_secs(3), |n| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32));
        }
    });
    let stopped = net.now;
    let mut converged = None;
    let rtt = Duration::from_millis(100);
    net.run(rtt * 3, |n| {
        if converged.is_none() && ids.iter().all(|id| n.same_everywhere(*id)) {
            converged = Some(n.now);
        }
    });
    let took = converged.expect("not converged within 3 RTT") - stopped;
    println!("converged {took:?} after motion stopped (RTT {rtt:?}, 20 % loss)");
    assert!(took <= rtt * 3);
}

#[test]
fn a_tight_budget_starves_no_entity() {
    let config = ReplicationConfig {
        budget_bytes_per_sec: 4_000,
        ..ReplicationConfig::default()
    };
    let mut net = Net::new(2, link(0.05, 2), config);
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..200)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    // A few entities matter more.
    for id in &ids[..5] {
        net.nodes[0].rep.set_priority(*id, 10.0);
    }
    let mut t = 0;
    net.run(Duration::from_secs(10), |n| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32));
        }
    });
    // Gaps between updates of each entity at the receiver, after spawning.
    let mut last: BTreeMap<NetId, Instant> = BTreeMap::new();
    let mut widest: BTreeMap<NetId, Duration> = BTreeMap::new();
    let mut count: BTreeMap<NetId, u32> = BTreeMap::new();
    let start = net.nodes[1].events.first().map(|e| e.0).unwrap();
    for (at, e) in &net.nodes[1].events {
        if let ReplicationEvent::Updated { id } | ReplicationEvent::Spawned { id, .. } = e {
            let prev = last.insert(*id, *at).unwrap_or(start);
            let w = widest.entry(*id).or_default();
            *w = (*w).max(*at - prev);
            *count.entry(*id).or_default() += 1;
        }
    }
    let worst = widest.values().max().copied().unwrap();
    let sent = net.nodes[0].rep.bytes_per_sec(net.nodes[1].id);
    println!(
        "worst gap {worst:?}; {sent:.0} B/s sent; urgent got {} updates, others {}",
        count[&ids[0]], count[&ids[100]]
    );
    assert_eq!(widest.len(), ids.len(), "every entity was updated");
    assert!(worst < Duration::from_secs(3), "an entity waited {worst:?}");
    assert!(sent <= 4_000.0 * 1.3, "{sent} B/s over a 4,000 B/s budget");
    assert!(count[&ids[0]] > 3 * count[&ids[100]], "priority counts");
}

#[test]
fn interest_spawns_and_despawns_on_the_right_peers_only() {
    let mut net = Net::new(3, link(0.1, 3), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let (b, c) = (net.nodes[1].id, net.nodes[2].id);
    let id = net.nodes[0].rep.spawn(0, &moving(0, 1)).unwrap();
    net.run(Duration::from_millis(500), |_| {});
    assert!(net.nodes[1].rep.entity(id).is_some() && net.nodes[2].rep.entity(id).is_some());
    net.nodes[0].rep.set_visible(b, id, false);
    net.run(Duration::from_millis(500), |_| {});
    assert!(net.nodes[1].rep.entity(id).is_none(), "hidden from b");
    assert!(net.nodes[2].rep.entity(id).is_some(), "still at c");
    assert!(
        net.nodes[1]
            .events
            .iter()
            .any(|(_, e)| *e == ReplicationEvent::Despawned { id })
    );
    assert!(
        !net.nodes[2]
            .events
            .iter()
            .any(|(_, e)| *e == ReplicationEvent::Despawned { id })
    );
    net.nodes[0].rep.set(id, &moving(9, 1));
    net.nodes[0].rep.set_visible(b, id, true);
    net.run(Duration::from_millis(500), |_| {});
    assert!(net.same_everywhere(id));
    let spawns = |n: &Node| {
        n.events
            .iter()
            .filter(|(_, e)| matches!(e, ReplicationEvent::Spawned { id: i, .. } if *i == id))
            .count()
    };
    assert_eq!(spawns(&net.nodes[1]), 2);
    assert_eq!(spawns(&net.nodes[2]), 1);
    let _ = c;
}

#[test]
fn a_new_owner_can_hide_and_show_an_entity_to_the_peer_that_made_it() {
    let mut net = Net::new(2, link(0.0, 11), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let (a, b) = (net.nodes[0].id, net.nodes[1].id);
    let id = net.nodes[0].rep.spawn(0, &moving(0, 1)).unwrap();
    net.run(Duration::from_millis(300), |_| {});
    assert!(net.nodes[0].rep.hand_over(id, b));
    net.run(Duration::from_millis(300), |_| {});
    net.nodes[1].rep.set_visible(a, id, false);
    net.run(Duration::from_millis(300), |_| {});
    assert!(
        net.nodes[0].rep.entity(id).is_none(),
        "hidden from its maker"
    );
    net.nodes[1].rep.set(id, &moving(5, 1));
    net.nodes[1].rep.set_visible(a, id, true);
    net.run(Duration::from_millis(300), |_| {});
    assert!(net.same_everywhere(id), "shown to its maker again");
    // Its maker's next own entity still gets an id of its own.
    let next = net.nodes[0].rep.spawn(0, &moving(0, 2)).unwrap();
    assert_ne!(next, id);
}

#[test]
fn hiding_and_showing_within_a_round_trip_does_not_stall_the_stream() {
    // Updates sent before the hide are acked after the show: those acks
    // must not become baselines the receiver (which despawned and respawned
    // the entity) no longer has.
    let mut net = Net::new(2, link(0.0, 9), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let b = net.nodes[1].id;
    let ids: Vec<NetId> = (0..4)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    let mut t = 0;
    let mut step = |n: &mut Net| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32));
        }
    };
    net.run(Duration::from_millis(500), &mut step);
    for _ in 0..5 {
        net.nodes[0].rep.set_visible(b, ids[0], false);
        net.run(Duration::from_millis(20), &mut step);
        net.nodes[0].rep.set_visible(b, ids[0], true);
        net.run(Duration::from_millis(300), &mut step);
    }
    net.run(Duration::from_millis(500), |_| {});
    for id in &ids {
        assert!(net.same_everywhere(*id), "{id:?} stalled at b");
    }
}

#[test]
fn two_hundred_packets_a_tick_still_get_acked_and_stay_deltas() {
    // Far more packets a tick than the 64-packet ack window: the receiver
    // acks as they come, so baselines keep moving and updates stay deltas.
    let config = ReplicationConfig {
        budget_bytes_per_sec: 50_000_000,
        max_packet: 200,
        ..ReplicationConfig::default()
    };
    let mut net = Net::new(2, link(0.0, 10), config);
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..6000)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    let mut t = 0;
    let mut step = |n: &mut Net| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32));
        }
    };
    net.run(Duration::from_millis(500), &mut step);
    let b = net.nodes[1].id;
    let before = net.nodes[0].mesh.stats(b).unwrap().bytes_out;
    net.run(Duration::from_millis(500), &mut step);
    let bytes = net.nodes[0].mesh.stats(b).unwrap().bytes_out - before;
    let per_update = bytes as f64 / (30.0 * ids.len() as f64);
    println!("{per_update:.2} B per entity update at ~200 packets a tick");
    // Baselines are about 1,300 packets back here; were they limited to
    // 255 (or the acks to 64 packets a tick), every update would be a whole
    // state: 6.4 B with packet overhead. Deltas against them: about 5.6 B.
    assert!(per_update < 6.0, "{per_update:.2} B per update");
    net.run(Duration::from_millis(500), |_| {});
    for id in &ids {
        assert!(net.same_everywhere(*id));
    }
}

#[test]
fn authority_hand_off_mid_motion_loses_no_update() {
    // Wide jitter: updates sent before the hand-over still arrive after it.
    let jittery = ConditionerConfig {
        jitter: Duration::from_millis(80),
        ..link(0.1, 4)
    };
    let mut net = Net::new(3, jittery, ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let b = net.nodes[1].id;
    let id = net.nodes[0].rep.spawn(0, &[0, 0, 0]).unwrap();
    // Whoever owns it moves it one step a tick.
    let step = |n: &mut Net| {
        for node in n.nodes.iter_mut() {
            if let Some(e) = node.rep.entity(id).cloned()
                && e.owner == node.id
            {
                node.rep.set(id, &[e.fields[0] + 1, 0, 0]);
            }
        }
    };
    net.run(Duration::from_secs(1), step);
    net.nodes[1].rep.request_authority(id);
    let mut handed = false;
    let mut seen_at_c: Vec<u32> = Vec::new();
    net.run(Duration::from_secs(2), |n| {
        step(n);
        if let Some(e) = n.nodes[2].rep.entity(id) {
            seen_at_c.push(e.fields[0]);
        }
        if !handed
            && n.nodes[0].events.iter().any(|(_, e)| {
                matches!(e, ReplicationEvent::AuthorityRequested { id: i, peer } if *i == id && *peer == b)
            })
        {
            handed = n.nodes[0].rep.hand_over(id, b);
        }
    });
    assert!(handed);
    assert_eq!(net.nodes[2].rep.entity(id).unwrap().owner, b);
    // c saw the value only ever grow: no update from the old owner after the
    // hand-over, and the new owner went on from where the old one stopped.
    assert!(
        seen_at_c.windows(2).all(|w| w[0] <= w[1]),
        "c saw the value go back: no stale update may win after the hand-over"
    );
    let moved = seen_at_c.last().copied().unwrap_or(0) - seen_at_c[0];
    assert!(
        moved > 100,
        "c followed the motion across the hand-over: {moved}"
    );
    net.run(Duration::from_secs(1), |_| {});
    assert!(net.same_everywhere(id));
}

#[test]
fn the_owner_leaves_and_a_successor_carries_on() {
    let mut net = Net::new(3, link(0.1, 5), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..20)
        .map(|k| net.nodes[2].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    net.run(Duration::from_secs(1), |_| {});
    net.kill(2);
    net.run(Duration::from_millis(200), |_| {});
    let successor = net.nodes[0].id.min(net.nodes[1].id);
    for id in &ids {
        for n in &net.nodes[..2] {
            let e = n.rep.entity(*id).expect("still present");
            assert_eq!(e.owner, successor);
        }
    }
    // The successor moves them; the other peer follows.
    let mut t = 0;
    net.run(Duration::from_secs(1), |n| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t + 100, k as u32));
        }
    });
    net.run(Duration::from_millis(500), |_| {});
    for id in &ids {
        assert!(net.same_everywhere(*id));
        assert_eq!(
            &net.nodes[1].rep.entity(*id).unwrap().fields[..],
            &moving(t + 100, (id.0 & 0xff) as u32 % 20)[..]
        );
    }
}

proptest::proptest! {
    #[test]
    fn malformed_messages_never_panic(msgs in proptest::collection::vec(
        (0usize..7, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60)), 0..40)) {
        let mut r = Replicator::new(ReplicationConfig::default(), schema(), PeerId(1));
        r.handle_peer_joined(PeerId(2));
        // A known entity from peer 2, so updates reach the delta decoder.
        let mut spawn = vec![SPAWN];
        spawn.extend_from_slice(&7u64.to_le_bytes());
        spawn.extend_from_slice(&0u16.to_le_bytes());
        spawn.extend_from_slice(&[1, 2, 3, 4, 5]);
        r.handle_message(PeerId(2), &spawn);
        for (kind, tail) in msgs {
            let mut m = vec![[UPDATE, SPAWN, DESPAWN, OWNER, REQUEST, EVENT, RESYNC][kind]];
            if kind == 0 && tail.len() > 14 {
                // A plausible header pointing at entity 7, then garbage bits.
                m.extend_from_slice(&tail[..12]);
                m.extend_from_slice(&1u16.to_le_bytes());
                m.push(0);
                m.extend_from_slice(&7u64.to_le_bytes());
                m.extend_from_slice(&tail[12..]);
            } else {
                m.extend(tail);
            }
            r.handle_message(PeerId(2), &m);
            r.tick(Instant::now());
            while r.poll_transmit().is_some() {}
            while r.poll_event().is_some() {}
        }
    }
}

#[test]
fn a_truncated_update_is_reported_and_changes_nothing() {
    let (a_id, b_id) = (PeerId(1), PeerId(2));
    let mut a = Replicator::new(ReplicationConfig::default(), schema(), a_id);
    let mut b = Replicator::new(ReplicationConfig::default(), schema(), b_id);
    a.handle_peer_joined(b_id);
    b.handle_peer_joined(a_id);
    let id = a.spawn(0, &[1, 2, 3]).unwrap();
    let now = Instant::now();
    a.set(id, &[40_000, 2, 3]);
    a.tick(now);
    let mut update = None;
    while let Some(t) = a.poll_transmit() {
        if t.channel == Channel::Reliable {
            b.handle_message(a_id, &t.data);
        } else {
            update = Some(t.data);
        }
    }
    while b.poll_event().is_some() {}
    let update = update.expect("an update");
    for cut in 1..update.len() {
        b.handle_message(a_id, &update[..cut]);
        assert_eq!(
            &b.entity(id).unwrap().fields[..],
            &[1, 2, 3],
            "cut at {cut}"
        );
        match b.poll_event() {
            Some(ReplicationEvent::PeerMisbehaved { peer, .. }) => assert_eq!(peer, a_id),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
    b.handle_message(a_id, &update);
    assert_eq!(&b.entity(id).unwrap().fields[..], &[40_000, 2, 3]);
}

#[test]
fn a_lost_baseline_is_asked_for_whole_and_the_rest_of_the_packet_still_lands() {
    let (a_id, b_id) = (PeerId(1), PeerId(2));
    let mut a = Replicator::new(ReplicationConfig::default(), schema(), a_id);
    let mut b = Replicator::new(ReplicationConfig::default(), schema(), b_id);
    a.handle_peer_joined(b_id);
    b.handle_peer_joined(a_id);
    let x = a.spawn(0, &moving(0, 1)).unwrap();
    let start = Instant::now();
    let resyncs = std::cell::Cell::new(0);
    // One tick both ways; b's unreliable packets (its acks) reach a only if
    // `acks`.
    let tick = |a: &mut Replicator, b: &mut Replicator, t: u32, acks: bool| {
        let now = start + TICK * t;
        a.tick(now);
        while let Some(m) = a.poll_transmit() {
            b.handle_message(a_id, &m.data);
        }
        b.tick(now);
        while let Some(m) = b.poll_transmit() {
            if m.data[0] == RESYNC {
                resyncs.set(resyncs.get() + 1);
            }
            if acks || m.channel == Channel::Reliable {
                a.handle_message(b_id, &m.data);
            }
        }
        for e in [a.poll_event(), b.poll_event()].into_iter().flatten() {
            assert!(
                !matches!(e, ReplicationEvent::PeerMisbehaved { .. }),
                "{e:?}"
            );
        }
    };
    for t in 0..5 {
        a.set(x, &moving(t, 1));
        tick(&mut a, &mut b, t, true);
    }
    // Acks lost for longer than b keeps x's history: a's baseline for x
    // falls out of it. y, new, travels whole in the same packets.
    let y = a.spawn(0, &moving(0, 2)).unwrap();
    for t in 5..5 + HISTORY as u32 + 8 {
        a.set(x, &moving(t, 1));
        a.set(y, &moving(t, 2));
        tick(&mut a, &mut b, t, false);
    }
    assert_eq!(b.entity(y), a.entity(y), "the rest of the packets landed");
    assert_eq!(resyncs.get(), 1, "asked for x once");
    assert_eq!(b.entity(x), a.entity(x), "x came whole");
    // Acks flow again: deltas resume.
    for t in 100..104 {
        a.set(x, &moving(t, 1));
        tick(&mut a, &mut b, t, true);
    }
    assert_eq!(b.entity(x), a.entity(x));
    assert_eq!(resyncs.get(), 1);
}
