//! Baselines: a lost one is asked for whole.

use super::*;
use crate::Channel;
use crate::replication::incoming::BASELINE_HISTORY;
use crate::replication::wire::RESYNC;

#[test]
fn a_lost_baseline_is_asked_for_whole_and_the_rest_of_the_packet_still_lands() {
    let (a_id, b_id) = (PeerId(1), PeerId(2));
    let mut a = Replicator::new(ReplicationConfig::default(), schema(), a_id).unwrap();
    let mut b = Replicator::new(ReplicationConfig::default(), schema(), b_id).unwrap();
    let start = Instant::now();
    a.handle_peer_joined(start, b_id);
    b.handle_peer_joined(start, a_id);
    let x = a.spawn(0, &moving(0, 1)).unwrap();
    let resyncs = std::cell::Cell::new(0);
    // One tick both ways; b's unreliable packets (its acks) reach a only if
    // `acks`.
    let tick = |a: &mut Replicator, b: &mut Replicator, t: u32, acks: bool| {
        let now = start + TICK * t;
        a.tick(now);
        while let Some(m) = a.poll_transmit() {
            b.handle_message(now, a_id, &m.data);
        }
        b.tick(now);
        while let Some(m) = b.poll_transmit() {
            if m.data[0] == RESYNC {
                resyncs.set(resyncs.get() + 1);
            }
            if acks || m.channel == Channel::Reliable {
                a.handle_message(now, b_id, &m.data);
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
        a.set(x, &moving(t, 1)).unwrap();
        tick(&mut a, &mut b, t, true);
    }
    // Acks lost for longer than b keeps x's history: a's baseline for x
    // falls out of it. y, new, travels whole in the same packets.
    let y = a.spawn(0, &moving(0, 2)).unwrap();
    for t in 5..5 + BASELINE_HISTORY as u32 + 8 {
        a.set(x, &moving(t, 1)).unwrap();
        a.set(y, &moving(t, 2)).unwrap();
        tick(&mut a, &mut b, t, false);
    }
    assert_eq!(b.entity(y), a.entity(y), "the rest of the packets landed");
    assert_eq!(resyncs.get(), 1, "asked for x once");
    assert_eq!(b.entity(x), a.entity(x), "x came whole");
    // Acks flow again: deltas resume.
    for t in 100..104 {
        a.set(x, &moving(t, 1)).unwrap();
        tick(&mut a, &mut b, t, true);
    }
    assert_eq!(b.entity(x), a.entity(x));
    assert_eq!(resyncs.get(), 1);
}
