//! A peer that sends garbage is dropped by the peers it sent it to, and they
//! play on in step: raw bytes the mesh cannot decode, a rollback message the
//! session cannot decode, and a message without a layer tag.

mod common;

use gamenet::layer::ROLLBACK_TAG;
use gamenet::rollback::RollbackEvent;
use gamenet::{Channel, Event, LeaveReason, PeerId, Transport};

use common::bad_link;
use common::game::{LIMIT, Player, assert_in_step, game};

const TARGET: u32 = 320;
const LIAR: PeerId = PeerId(3);
const HONEST: [PeerId; 2] = [PeerId(1), PeerId(2)];

/// Three players play a while; `lie` makes player 3 send garbage to the
/// other two, who must drop it, see its slot disconnected, and finish in step.
/// Returns why each of the two says the liar left.
fn liar_is_dropped(lie: impl Fn(&mut common::Sim<Player>, PeerId)) -> Vec<LeaveReason> {
    let mut sim = game(3, bad_link(7), TARGET);
    sim.drive(LIMIT, |players| {
        players
            .iter()
            .all(|p| p.net.session().is_some_and(|s| s.current_frame() > 60))
    });
    for to in HONEST {
        lie(&mut sim, to);
    }
    sim.drive(LIMIT, |players| players[..2].iter().all(Player::done));
    let mut left = Vec::new();
    for p in &sim.peers[..2] {
        let leave = p
            .mesh_events
            .iter()
            .find(|e| matches!(e, Event::PeerLeft { peer, .. } if *peer == LIAR));
        match leave {
            Some(Event::PeerLeft { reason, .. }) => left.push(reason.clone()),
            _ => panic!("{}: the liar did not leave", p.id()),
        }
        assert!(
            p.events
                .iter()
                .any(|e| matches!(e, RollbackEvent::Disconnected { peer, .. } if *peer == LIAR)),
            "{}: {:?}",
            p.id(),
            p.events
        );
    }
    assert_in_step(&sim.peers[..2]);
    left
}

#[test]
fn raw_bytes_the_mesh_cannot_decode() {
    let left = liar_is_dropped(|sim, to| {
        sim.net.inject(LIAR, to, Channel::Reliable, vec![0xff; 40]);
    });
    for reason in left {
        assert!(
            matches!(reason, LeaveReason::ProtocolViolation(_)),
            "{reason:?}"
        );
    }
}

#[test]
fn a_rollback_message_the_session_cannot_decode() {
    let left = liar_is_dropped(|sim, to| {
        let garbage = [ROLLBACK_TAG, 0xff, 0xfe, 0xfd, 0xfc];
        sim.peers[2]
            .net
            .raw_mesh_mut()
            .send(to, Channel::Reliable, &garbage)
            .unwrap();
    });
    assert_eq!(left, [LeaveReason::Dropped, LeaveReason::Dropped]);
}

#[test]
fn a_message_without_a_layer_tag() {
    let left = liar_is_dropped(|sim, to| {
        sim.peers[2]
            .net
            .raw_mesh_mut()
            .send(to, Channel::Reliable, &[0x00, 1, 2, 3])
            .unwrap();
    });
    assert_eq!(left, [LeaveReason::Dropped, LeaveReason::Dropped]);
}
