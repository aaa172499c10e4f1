//! Malformed messages: never a panic, always a report, no state change.

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
