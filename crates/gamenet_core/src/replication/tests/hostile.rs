//! Hostile peers: malformed messages (never a panic, always a report, no
//! state change), and well-formed ones that break who may send what.

use super::*;
use crate::Channel;
use crate::replication::wire::{DESPAWN, EVENT, OWNER, REQUEST, RESYNC, SPAWN, UPDATE};

proptest::proptest! {
    #[test]
    fn malformed_messages_never_panic(msgs in proptest::collection::vec(
        (0usize..7, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60)), 0..40)) {
        let now = Instant::now();
        let mut r = Replicator::new(ReplicationConfig::default(), schema(), PeerId(1)).unwrap();
        r.handle_peer_joined(now, PeerId(2));
        // A known entity from peer 2, so updates reach the delta decoder.
        let mut spawn = vec![SPAWN];
        spawn.extend_from_slice(&7u64.to_le_bytes());
        spawn.extend_from_slice(&0u16.to_le_bytes());
        spawn.extend_from_slice(&[1, 2, 3, 4, 5, 6]); // 16 + 16 + 9 bits
        r.handle_message(now, PeerId(2), &spawn);
        assert!(r.entity(NetId(7)).is_some());
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
            r.handle_message(now, PeerId(2), &m);
            r.tick(Instant::now());
            while r.poll_transmit().is_some() {}
            while r.poll_event().is_some() {}
        }
    }
}

#[test]
fn a_truncated_update_is_reported_and_changes_nothing() {
    let (a_id, b_id) = (PeerId(1), PeerId(2));
    let mut a = Replicator::new(ReplicationConfig::default(), schema(), a_id).unwrap();
    let mut b = Replicator::new(ReplicationConfig::default(), schema(), b_id).unwrap();
    let now = Instant::now();
    a.handle_peer_joined(now, b_id);
    b.handle_peer_joined(now, a_id);
    let id = a.spawn(0, &[1, 2, 3]).unwrap();
    a.set(id, &[40_000, 2, 3]).unwrap();
    a.tick(now);
    let mut update = None;
    while let Some(t) = a.poll_transmit() {
        if t.channel == Channel::Reliable {
            b.handle_message(now, a_id, &t.data);
        } else {
            update = Some(t.data);
        }
    }
    while b.poll_event().is_some() {}
    let update = update.expect("an update");
    for cut in 1..update.len() {
        b.handle_message(now, a_id, &update[..cut]);
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
    b.handle_message(now, a_id, &update);
    assert_eq!(&b.entity(id).unwrap().fields[..], &[40_000, 2, 3]);
}

/// Replicators that all replicate with each other, messages carried by hand.
pub(super) struct Room {
    /// The clock, moved by the tests.
    pub(super) now: Instant,
    /// The peers.
    reps: Vec<Replicator>,
    /// Every event each peer had.
    events: Vec<Vec<ReplicationEvent>>,
}

impl Room {
    /// Peers with these ids, each joined with every other.
    pub(super) fn new(ids: &[PeerId], config: ReplicationConfig, schema: Schema) -> Self {
        let now = Instant::now();
        let mut reps: Vec<Replicator> = ids
            .iter()
            .map(|&id| Replicator::new(config.clone(), schema.clone(), id).unwrap())
            .collect();
        for r in &mut reps {
            for &p in ids {
                r.handle_peer_joined(now, p);
            }
        }
        let mut room = Room {
            now,
            events: vec![Vec::new(); ids.len()],
            reps,
        };
        room.pump(|_| true);
        room
    }

    /// The peer with this id.
    pub(super) fn at(&mut self, id: PeerId) -> &mut Replicator {
        self.reps.iter_mut().find(|r| r.id() == id).unwrap()
    }

    /// A message `from` sent `to`, raw.
    pub(super) fn inject(&mut self, to: PeerId, from: PeerId, data: &[u8]) {
        let now = self.now;
        self.at(to).handle_message(now, from, data);
    }

    /// Carries messages until none are left, those `keep` refuses lost.
    pub(super) fn pump(&mut self, mut keep: impl FnMut(&crate::Transmit) -> bool) {
        loop {
            let mut sent = Vec::new();
            for r in &mut self.reps {
                while let Some(t) = r.poll_transmit() {
                    sent.push((r.id(), t));
                }
            }
            if sent.is_empty() {
                break;
            }
            for (from, t) in sent {
                if keep(&t)
                    && let Some(to) = self.reps.iter_mut().find(|r| r.id() == t.peer)
                {
                    to.handle_message(self.now, from, &t.data);
                }
            }
        }
        for (r, events) in self.reps.iter_mut().zip(&mut self.events) {
            while let Some(e) = r.poll_event() {
                events.push(e);
            }
        }
    }

    /// Moves the clock, ticks everyone and carries what they sent.
    pub(super) fn tick(&mut self, d: Duration, keep: impl FnMut(&crate::Transmit) -> bool) {
        self.now += d;
        for r in &mut self.reps {
            r.tick(self.now);
        }
        self.pump(keep);
    }

    /// Rules the peer with this id reported, and about whom.
    pub(super) fn reports(&self, id: PeerId) -> Vec<(PeerId, crate::Misbehavior)> {
        let i = self.reps.iter().position(|r| r.id() == id).unwrap();
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                ReplicationEvent::PeerMisbehaved { peer, reason } => Some((*peer, reason.clone())),
                _ => None,
            })
            .collect()
    }
}

/// A raw SPAWN of an entity of type 0 (x, y: 16 bits, angle: 9 bits).
fn raw_spawn(id: NetId, ty: u16, payload: &[u8]) -> Vec<u8> {
    let mut m = vec![SPAWN];
    m.extend_from_slice(&id.0.to_le_bytes());
    m.extend_from_slice(&ty.to_le_bytes());
    m.extend_from_slice(payload);
    m
}

/// A raw OWNER handing an entity of type 0 to `to` with zero fields.
fn raw_owner(id: NetId, to: PeerId) -> Vec<u8> {
    let mut m = vec![OWNER];
    m.extend_from_slice(&id.0.to_le_bytes());
    m.extend_from_slice(&to.0.to_le_bytes());
    m.extend_from_slice(&0u16.to_le_bytes());
    m.extend_from_slice(&[0; 6]);
    m
}

/// The rogue has the lowest id: a contest by lowest id would go its way.
const ROGUE: PeerId = PeerId(1);
const HONEST: PeerId = PeerId(2);
const THIRD: PeerId = PeerId(3);

#[test]
fn a_peer_cannot_take_another_peers_future_ids() {
    use crate::replication::table::fold;
    let mut room = Room::new(
        &[HONEST, ROGUE, THIRD],
        ReplicationConfig::default(),
        schema(),
    );
    // The rogue announces the honest peer's next three ids at the third
    // peer first, with made-up states.
    let future: Vec<NetId> = (0..3).map(|k| NetId(fold(HONEST) << 32 | k)).collect();
    for &id in &future {
        room.inject(THIRD, ROGUE, &raw_spawn(id, 0, &[0xff; 6]));
    }
    room.pump(|_| true);
    // The real spawns follow: each replaces the fake.
    let real: Vec<NetId> = (0..3)
        .map(|k| room.at(HONEST).spawn(0, &[10 + k, 20, 30]).unwrap())
        .collect();
    assert_eq!(real, future, "ids are predictable");
    room.pump(|_| true);
    for (k, &id) in real.iter().enumerate() {
        let e = room.at(THIRD).entity(id).unwrap().clone();
        assert_eq!(e.owner, HONEST, "{id:?}");
        assert_eq!(&e.fields[..], &[10 + k as u32, 20, 30]);
    }
    // The honest owner's updates land; the rogue's are not applied.
    room.at(HONEST).set(real[0], &[500, 20, 30]).unwrap();
    room.tick(TICK, |_| true);
    assert_eq!(room.at(THIRD).entity(real[0]).unwrap().fields[0], 500);
    // Re-announcing a known entity it does not own changes nothing either.
    room.inject(THIRD, ROGUE, &raw_spawn(real[1], 0, &[0xff; 6]));
    room.pump(|_| true);
    let e = room.at(THIRD).entity(real[1]).unwrap().clone();
    assert_eq!((e.owner, e.fields[0]), (HONEST, 11));
    assert!(room.reports(THIRD).is_empty());
}

#[test]
fn peers_whose_ids_fold_alike_each_keep_their_own_entities() {
    use crate::replication::table::fold;
    // Same 32-bit namespace: 1 and 1 << 64 fold alike.
    let (a, b) = (PeerId(1), PeerId(1 << 64));
    assert_eq!(fold(a), fold(b));
    let mut room = Room::new(&[a, b, THIRD], ReplicationConfig::default(), schema());
    // Both spawn the same first id before hearing each other.
    let ia = room.at(a).spawn(0, &[1, 1, 1]).unwrap();
    let ib = room.at(b).spawn(0, &[2, 2, 2]).unwrap();
    assert_eq!(ia, ib);
    room.pump(|_| true);
    assert_eq!(room.at(a).entity(ia).unwrap().owner, a);
    assert_eq!(room.at(b).entity(ib).unwrap().owner, b);
    // The third peer keeps the one it heard of first, and reports no one.
    let e = room.at(THIRD).entity(ia).unwrap().clone();
    assert_eq!((e.owner, &e.fields[..]), (a, &[1, 1, 1][..]));
    assert!(room.reports(THIRD).is_empty());
    assert!(room.reports(a).is_empty() && room.reports(b).is_empty());
    // Their next ids differ: each skips the id it knows is taken.
    let next = room.at(a).spawn(0, &[3, 3, 3]).unwrap();
    assert_ne!(next, ia);
}

#[test]
fn a_re_spawn_with_another_type_is_reported_and_changes_nothing() {
    let two_types = Schema {
        types: vec![vec![16, 16, 9], vec![8]],
    };
    let mut room = Room::new(&[HONEST, ROGUE], ReplicationConfig::default(), two_types);
    let id = room.at(ROGUE).spawn(0, &[1, 2, 3]).unwrap();
    room.pump(|_| true);
    assert_eq!(room.at(HONEST).entity(id).unwrap().ty, 0);
    // Its owner says it is of type 1 now (one 8-bit field).
    room.inject(HONEST, ROGUE, &raw_spawn(id, 1, &[7]));
    room.pump(|_| true);
    let e = room.at(HONEST).entity(id).unwrap().clone();
    assert_eq!((e.ty, &e.fields[..]), (0, &[1, 2, 3][..]));
    assert_eq!(
        room.reports(HONEST),
        vec![(
            ROGUE,
            crate::Misbehavior::Rule("re-spawn of an entity with another type")
        )]
    );
    // The same through a hand-over naming another type.
    let mut owner = vec![OWNER];
    owner.extend_from_slice(&id.0.to_le_bytes());
    owner.extend_from_slice(&HONEST.0.to_le_bytes());
    owner.extend_from_slice(&1u16.to_le_bytes());
    owner.push(7);
    room.inject(HONEST, ROGUE, &owner);
    room.pump(|_| true);
    let e = room.at(HONEST).entity(id).unwrap().clone();
    assert_eq!((e.ty, e.owner), (0, ROGUE));
    assert_eq!(room.reports(HONEST).len(), 2);
}

#[test]
fn handing_entities_away_does_not_lift_the_spawn_limit() {
    let config = ReplicationConfig {
        max_entities_per_peer: 4,
        ..ReplicationConfig::default()
    };
    let mut room = Room::new(&[HONEST, ROGUE, THIRD], config, schema());
    let nobody = PeerId(999);
    let mut ids = Vec::new();
    for k in 0..4 {
        let id = room.at(ROGUE).spawn(0, &[k, 0, 0]).unwrap();
        ids.push(id);
        room.pump(|_| true);
        // Hand-overs to a made-up peer are refused: the rogue still owns it.
        room.inject(HONEST, ROGUE, &raw_owner(id, nobody));
        assert_eq!(room.at(HONEST).entity(id).unwrap().owner, ROGUE);
    }
    // A real hand-over to a member passes, but the entity still counts
    // against its creator.
    room.at(ROGUE).hand_over(ids[0], THIRD).unwrap();
    room.pump(|_| true);
    assert_eq!(room.at(HONEST).entity(ids[0]).unwrap().owner, THIRD);
    assert!(room.reports(HONEST).is_empty());
    // A fifth: over the limit.
    let fifth = room.at(ROGUE).spawn(0, &[5, 0, 0]).unwrap();
    room.pump(|_| true);
    assert!(room.at(HONEST).entity(fifth).is_none());
    assert!(matches!(
        &room.reports(HONEST)[..],
        [(ROGUE, crate::Misbehavior::Oversize { max: 4, .. })]
    ));
    assert_eq!(room.at(HONEST).entities().count(), 4);
}

#[test]
fn a_lost_spawn_is_sent_again_and_the_updates_after_it_go_on() {
    let mut room = Room::new(&[HONEST, THIRD], ReplicationConfig::default(), schema());
    let (a, b) = (HONEST, THIRD);
    // Two entities; the spawn of the first is lost (its reliable message
    // could not be queued), the second arrives.
    let lost = room.at(a).spawn(0, &[1, 1, 1]).unwrap();
    let kept = room.at(a).spawn(0, &[2, 2, 2]).unwrap();
    let lost_spawn = raw_spawn(lost, 0, &[]);
    let mut dropped = 0;
    room.pump(|t| {
        let drop = t.data.starts_with(&lost_spawn);
        dropped += drop as usize;
        !drop
    });
    assert_eq!(dropped, 1);
    assert!(room.at(b).entity(lost).is_none());
    // Both move every tick; within a second the lost one is asked for, sent
    // again, and from then on both follow.
    for t in 0..90u32 {
        room.at(a).set(lost, &[100 + t, 1, 1]).unwrap();
        room.at(a).set(kept, &[200 + t, 2, 2]).unwrap();
        room.tick(TICK, |_| true);
    }
    assert_eq!(&room.at(b).entity(lost).unwrap().fields[..], &[189, 1, 1]);
    assert_eq!(&room.at(b).entity(kept).unwrap().fields[..], &[289, 2, 2]);
    assert!(room.reports(b).is_empty());
}

#[test]
fn a_reliable_send_that_failed_is_reported_and_the_scope_spawned_again() {
    let mut room = Room::new(&[HONEST, THIRD], ReplicationConfig::default(), schema());
    let (a, b) = (HONEST, THIRD);
    let id = room.at(a).spawn(0, &[1, 2, 3]).unwrap();
    // The transport could not queue the spawn: the layer says so.
    room.pump(|t| t.channel != Channel::Reliable);
    assert!(room.at(b).entity(id).is_none());
    let now = room.now;
    room.at(a).handle_send_failed(now, b);
    assert_eq!(
        room.at(a).poll_event(),
        Some(ReplicationEvent::SendFailed { peer: b })
    );
    room.tick(TICK, |_| true);
    assert_eq!(&room.at(b).entity(id).unwrap().fields[..], &[1, 2, 3]);
}

#[test]
fn a_game_event_over_the_limit_is_reported_and_not_delivered() {
    let now = Instant::now();
    let mut r = Replicator::new(ReplicationConfig::default(), schema(), PeerId(1)).unwrap();
    r.handle_peer_joined(now, PeerId(2));
    let mut at_limit = vec![EVENT];
    at_limit.resize(1 + crate::replication::MAX_EVENT, 7);
    r.handle_message(now, PeerId(2), &at_limit);
    let mut over = at_limit.clone();
    over.push(7);
    r.handle_message(now, PeerId(2), &over);
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(
        matches!(
            events.as_slice(),
            [
                ReplicationEvent::Event { peer: PeerId(2), payload },
                ReplicationEvent::PeerMisbehaved {
                    peer: PeerId(2),
                    reason: crate::Misbehavior::Oversize { len, .. },
                },
            ] if payload.len() == crate::replication::MAX_EVENT && *len == crate::replication::MAX_EVENT + 1
        ),
        "{events:?}"
    );
}
