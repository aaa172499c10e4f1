//! Refused calls and settings name why; a rule breaker is reported with the
//! rule it broke.

use super::*;
use crate::Misbehavior;
use crate::codec::DecodeError;
use crate::replication::wire::SPAWN;
use crate::replication::{ConfigError, ReplicationError};

fn pair(config: ReplicationConfig) -> (Replicator, Replicator, Instant) {
    let now = Instant::now();
    let mut a = Replicator::new(config.clone(), schema(), PeerId(1)).unwrap();
    let mut b = Replicator::new(config, schema(), PeerId(2)).unwrap();
    a.handle_peer_joined(now, PeerId(2));
    b.handle_peer_joined(now, PeerId(1));
    (a, b, now)
}

#[test]
fn settings_that_cannot_work_are_refused() {
    let wide = Schema {
        types: vec![vec![16], vec![8, 33]],
    };
    assert_eq!(
        Replicator::new(ReplicationConfig::default(), wide, PeerId(1)).err(),
        Some(ConfigError::FieldWidth {
            ty: 1,
            field: 1,
            width: 33
        })
    );
    let tiny = ReplicationConfig {
        max_packet: 20,
        ..ReplicationConfig::default()
    };
    assert!(matches!(
        Replicator::new(tiny, schema(), PeerId(1)),
        Err(ConfigError::MaxPacket { max_packet: 20, .. })
    ));
    // A constant field (zero bits) is fine.
    let constant = Schema {
        types: vec![vec![0, 32]],
    };
    assert!(Replicator::new(ReplicationConfig::default(), constant, PeerId(1)).is_ok());
}

#[test]
fn calls_on_entities_name_why_they_were_refused() {
    let (mut a, mut b, _) = pair(ReplicationConfig::default());
    assert_eq!(a.spawn(3, &[1]), Err(ReplicationError::UnknownType(3)));
    assert_eq!(
        a.spawn(0, &[1, 2]),
        Err(ReplicationError::FieldCount {
            ty: 0,
            expected: 3,
            got: 2
        })
    );
    let id = a.spawn(0, &[1, 2, 3]).unwrap();
    let nobody = NetId(12345);
    assert_eq!(
        a.set(nobody, &[1, 2, 3]),
        Err(ReplicationError::UnknownEntity(nobody))
    );
    assert_eq!(
        a.set(id, &[1]),
        Err(ReplicationError::FieldCount {
            ty: 0,
            expected: 3,
            got: 1
        })
    );
    assert_eq!(
        a.despawn(nobody),
        Err(ReplicationError::UnknownEntity(nobody))
    );
    assert_eq!(
        a.hand_over(id, PeerId(1)),
        Err(ReplicationError::HandOverToSelf)
    );
    assert_eq!(
        a.hand_over(id, PeerId(9)),
        Err(ReplicationError::UnknownPeer(PeerId(9)))
    );
    // b learns of the entity; it is a's to change.
    while let Some(t) = a.poll_transmit() {
        b.handle_message(Instant::now(), PeerId(1), &t.data);
    }
    let not_owner = Err(ReplicationError::NotOwner {
        id,
        owner: PeerId(1),
    });
    assert_eq!(b.set(id, &[4, 5, 6]), not_owner);
    assert_eq!(b.despawn(id), not_owner);
    assert_eq!(b.hand_over(id, PeerId(1)), not_owner);
    assert_eq!(a.set(id, &[4, 5, 6]), Ok(()));
}

#[test]
fn a_rule_breaker_is_reported_with_the_rule() {
    let config = ReplicationConfig {
        max_entities_per_peer: 1,
        ..ReplicationConfig::default()
    };
    let (mut a, _, now) = pair(config);
    let spawn = |id: u64| {
        let mut m = vec![SPAWN];
        m.extend_from_slice(&id.to_le_bytes());
        m.extend_from_slice(&0u16.to_le_bytes());
        // 16 + 16 + 9 bits.
        m.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
        m
    };
    a.handle_message(now, PeerId(2), &spawn(7));
    assert!(matches!(
        a.poll_event(),
        Some(ReplicationEvent::Spawned { .. })
    ));
    a.handle_message(now, PeerId(2), &spawn(8));
    assert_eq!(
        a.poll_event(),
        Some(ReplicationEvent::PeerMisbehaved {
            peer: PeerId(2),
            reason: Misbehavior::Oversize {
                what: "entities spawned",
                len: 2,
                max: 1
            }
        })
    );
    a.handle_message(now, PeerId(2), &[]);
    assert_eq!(
        a.poll_event(),
        Some(ReplicationEvent::PeerMisbehaved {
            peer: PeerId(2),
            reason: Misbehavior::Decode(DecodeError::Empty)
        })
    );
    a.handle_message(now, PeerId(2), &[0x7f]);
    assert_eq!(
        a.poll_event(),
        Some(ReplicationEvent::PeerMisbehaved {
            peer: PeerId(2),
            reason: Misbehavior::Decode(DecodeError::UnknownType(0x7f))
        })
    );
}
