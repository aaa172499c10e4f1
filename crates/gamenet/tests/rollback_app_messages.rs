//! A rollback game's own messages go through the layer (`send`,
//! `broadcast`): they arrive as application messages and nobody is dropped,
//! while the game plays on in step. (The mesh underneath is reachable only
//! for reading; sending on it would arrive untagged and get the sender
//! dropped, which `garbage_peer_is_dropped` shows.)

mod common;

use gamenet::{Channel, Event, PeerId};

use common::bad_link;
use common::game::{LIMIT, Player, assert_in_step, game};

const TARGET: u32 = 320;

#[test]
fn messages_sent_through_the_layer_arrive_and_nobody_is_dropped() {
    let mut sim = game(3, bad_link(21), TARGET);
    sim.drive(LIMIT, |players| {
        players
            .iter()
            .all(|p| p.net.session().is_some_and(|s| s.current_frame() > 60))
    });
    sim.peers[0]
        .net
        .broadcast(Channel::Reliable, b"to all")
        .expect("sent");
    sim.peers[1]
        .net
        .send(PeerId(3), Channel::Reliable, b"to 3")
        .expect("sent");
    sim.drive(LIMIT, |players| players.iter().all(Player::done));

    let got = |p: &Player| -> Vec<(PeerId, Vec<u8>)> {
        p.mesh_events
            .iter()
            .filter_map(|e| match e {
                Event::Message { peer, payload, .. } => Some((*peer, payload.to_vec())),
                _ => None,
            })
            .collect()
    };
    assert_eq!(got(&sim.peers[0]), []);
    assert_eq!(got(&sim.peers[1]), [(PeerId(1), b"to all".to_vec())]);
    let mut third = got(&sim.peers[2]);
    third.sort();
    assert_eq!(
        third,
        [
            (PeerId(1), b"to all".to_vec()),
            (PeerId(2), b"to 3".to_vec())
        ]
    );
    for p in &sim.peers {
        let left: Vec<&Event> = p
            .mesh_events
            .iter()
            .filter(|e| matches!(e, Event::PeerLeft { .. }))
            .collect();
        assert!(left.is_empty(), "{}: {left:?}", p.id());
    }
    assert_in_step(&sim.peers);
}
