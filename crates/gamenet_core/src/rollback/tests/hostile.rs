//! Garbage and well-formed hostile messages are reported, never a panic.

use super::*;

#[test]
fn garbage_from_a_peer_is_reported_not_a_panic() {
    let now = Instant::now();
    let kinds = [PlayerKind::Local, PlayerKind::Remote(PeerId(2))];
    let mut s =
        RollbackSession::<u16>::start(RollbackConfig::default(), PeerId(1), 1, &kinds).unwrap();
    s.handle_peer_joined(now, PeerId(2));
    s.handle_message(now, PeerId(2), &[0x12, 1, 2]);
    assert!(matches!(
        s.poll_event_after_sync(),
        Some(RollbackEvent::PeerMisbehaved { .. })
    ));
}

impl RollbackSession<u16> {
    fn poll_event_after_sync(&mut self) -> Option<RollbackEvent> {
        loop {
            match self.poll_event()? {
                RollbackEvent::Synchronizing { .. } => continue,
                e => return Some(e),
            }
        }
    }
}

proptest::proptest! {
    #[test]
    fn arbitrary_messages_never_panic(msgs in proptest::collection::vec(
        (proptest::prelude::any::<u8>(), proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80)), 0..30)) {
        let now = Instant::now();
        let kinds = [PlayerKind::Local, PlayerKind::Remote(PeerId(2))];
        let mut s = RollbackSession::<u16>::start(RollbackConfig::default(), PeerId(1), 1, &kinds).unwrap();
        s.handle_peer_joined(now, PeerId(2));
        s.handle_message(now, PeerId(2), &Msg::<u16>::Intro(wire::IntroMsg { key: [2; 32], proof: None, attempt: 0, joiner: false, players: 1, num_players: 2 }).encode());
        for (kind, tail) in msgs {
            let mut m = vec![[0x01u8, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15][kind as usize % 7]];
            m.extend(tail);
            s.handle_message(now, PeerId(2), &m);
            s.add_local_input(0, 1).unwrap();
            let _ = s.advance_frame(now);
            while s.poll_transmit().is_some() {}
        }
    }
}

fn arb_run() -> impl proptest::strategy::Strategy<Value = wire::InputRun<u16>> {
    use proptest::prelude::*;
    (
        0..=wire::MAX_FRAME,
        proptest::collection::vec(0u8..4, 0..3),
        0usize..5,
        any::<u16>(),
    )
        .prop_map(|(start, slots, count, input)| wire::InputRun {
            start,
            records: (0..count)
                .map(|i| {
                    slots
                        .iter()
                        .map(|_| (i % 3 != 0).then_some(input))
                        .collect()
                })
                .collect(),
            slots,
        })
}

fn arb_msg() -> impl proptest::strategy::Strategy<Value = wire::Msg<u16>> {
    use proptest::prelude::*;
    use wire::Msg;
    let f = 0..=wire::MAX_FRAME;
    let small = 0u32..400;
    prop_oneof![
        (
            small.clone(),
            f.clone(),
            any::<u32>(),
            any::<u32>(),
            any::<u16>(),
            any::<bool>(),
            arb_run()
        )
            .prop_map(|(ack, frame, time_ms, echo_ms, echo_hold_ms, feed, run)| {
                Msg::Inputs(wire::InputsMsg {
                    ack,
                    frame,
                    time_ms,
                    echo_ms,
                    echo_hold_ms,
                    feed,
                    run,
                })
            }),
        (any::<u64>(), any::<bool>(), 0u8..4, 0u8..5).prop_map(
            |(key, joiner, players, num_players)| {
                Msg::Intro(wire::IntroMsg {
                    key: [key as u8; 32],
                    proof: joiner.then_some([key as u8; 64]),
                    attempt: if joiner { 7 } else { 0 },
                    joiner,
                    players,
                    num_players,
                })
            }
        ),
        (
            1u128..6,
            proptest::collection::vec(0u8..4, 0..3),
            small.clone(),
            small.clone()
        )
            .prop_map(|(p, slots, from, snapshot)| Msg::Admit(wire::AdmitMsg {
                peer: PeerId(p),
                key: [1; 32],
                slots,
                from,
                snapshot,
                attempt: 7,
            })),
        (1u128..6, arb_run()).prop_map(|(p, run)| Msg::Lost(wire::LostMsg {
            peer: PeerId(p),
            run
        })),
        (1u128..6, arb_run()).prop_map(|(p, run)| Msg::Dropped(wire::LostMsg {
            peer: PeerId(p),
            run
        })),
        (small.clone(), any::<u64>()).prop_map(|(frame, total)| Msg::Checksum(wire::ChecksumMsg {
            frame,
            total,
            parts: vec![(part_id("Position"), total)]
        })),
        (f, small).prop_map(|(frame, from)| Msg::Snapshot(wire::SnapshotMsg {
            frame,
            from,
            your_slots: vec![2],
            table: Vec::new(),
            spectators: Vec::new(),
            runs: Vec::new(),
            data: vec![1, 2, 3]
        })),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    #[test]
    fn well_formed_hostile_messages_never_panic(msgs in proptest::collection::vec(arb_msg(), 0..40)) {
        let now = Instant::now();
        let kinds = [PlayerKind::Local, PlayerKind::Remote(PeerId(2)), PlayerKind::Open];
        let config = RollbackConfig { num_players: 3, ..RollbackConfig::default() };
        let mut s = RollbackSession::<u16>::start(config, PeerId(1), 1, &kinds).unwrap();
        for p in 2..4 {
            s.handle_peer_joined(now, PeerId(p));
        }
        s.handle_message(now, PeerId(2), &wire::Msg::<u16>::Intro(wire::IntroMsg { key: [2; 32], proof: None, attempt: 0, joiner: false, players: 1, num_players: 3 }).encode());
        for (i, m) in msgs.into_iter().enumerate() {
            let from = PeerId(2 + (i % 2) as u128);
            s.handle_message(now, from, &m.encode());
            let _ = s.add_local_input(0, i as u16);
            let _ = s.advance_frame(now);
            s.handle_timeout(now);
            s.set_checksum(s.current_frame(), Checksum::total(7));
            if i % 7 == 3 {
                s.handle_peer_left(now, PeerId(3), Leave::Lost);
            }
            while s.poll_transmit().is_some() {}
            while s.poll_event().is_some() {}
        }
    }
}

/// A three-player game (plus an open slot) run to frame 600 on every node,
/// with peers allowed to misbehave.
fn hostile_net(seed: u64, target: Frame) -> Net {
    let mut net = Net::with_kinds(4, 3, bad_link(seed), target);
    net.hostile = true;
    net.run(Duration::from_secs(100), |n| {
        n.nodes.iter().all(|n| n.session.current_frame() >= 600)
    });
    net
}

/// Node `i`'s events that match.
fn seen(net: &Net, i: usize, pred: impl Fn(&RollbackEvent) -> bool) -> usize {
    net.nodes[i].events.iter().filter(|e| pred(e)).count()
}

/// A loss report on `victim`, its run at `start`.
fn lie(net: &Net, victim: usize, start: Frame) -> Msg<u16> {
    let slot = net.nodes[victim].session.local_slots()[0] as u8;
    Msg::Lost(wire::LostMsg {
        peer: net.nodes[victim].id,
        run: wire::InputRun {
            start,
            slots: vec![slot],
            records: vec![vec![Some(1)]; 4],
        },
    })
}

/// A report to `victim` that the sender plays on without it.
fn dropped_lie(net: &Net, victim: usize, start: Frame) -> Msg<u16> {
    match lie(net, victim, start) {
        Msg::Lost(body) => Msg::Dropped(body),
        other => other,
    }
}

#[test]
fn a_lie_that_a_connected_player_left_evicts_nobody_and_freezes_nobody() {
    let mut net = hostile_net(61, 2_000);
    // The rogue (node 2) tells both others, and the victim itself, that the
    // victim (node 1) left; once at the present, once near the frame cap.
    for start in [600, wire::MAX_FRAME - 10] {
        for to in [0, 1] {
            let msg = lie(&net, 1, start);
            net.inject(2, to, &msg);
        }
        // And tells the victim it plays on without it (one of two others).
        let msg = dropped_lie(&net, 1, start);
        net.inject(2, 1, &msg);
    }
    net.run(Duration::from_secs(300), |n| n.all_done());
    net.assert_in_step();
    net.assert_one_timeline();
    for i in 0..3 {
        let churn = seen(&net, i, |e| {
            matches!(
                e,
                RollbackEvent::Disconnected { .. }
                    | RollbackEvent::Rejoining { .. }
                    | RollbackEvent::Ended { .. }
                    | RollbackEvent::CutOff { .. }
            )
        });
        assert_eq!(churn, 0, "node {i}: {:?}", net.nodes[i].events);
    }
}

#[test]
fn admits_from_a_player_that_is_not_the_host_are_refused_and_the_game_plays_on() {
    let mut net = hostile_net(62, 2_000);
    let rogue = net.nodes[2].id;
    // A made-up player into the open slot, and phantom spectators.
    let mut admits = vec![Msg::Admit(wire::AdmitMsg {
        peer: PeerId(999),
        key: [7; 32],
        slots: vec![3],
        from: 700,
        snapshot: 600,
        attempt: 7,
    })];
    for p in 0..300 {
        admits.push(Msg::Admit(wire::AdmitMsg {
            peer: PeerId(1_000 + p),
            key: [7; 32],
            slots: Vec::new(),
            from: 700,
            snapshot: 600,
            attempt: 7,
        }));
    }
    for msg in &admits {
        net.inject(2, 1, msg);
    }
    net.run(Duration::from_secs(300), |n| {
        n.nodes[..2]
            .iter()
            .all(|n| n.session.confirmed_checksum(n.game.target).is_some())
    });
    net.assert_in_step_among(&[0, 1]);
    assert_eq!(
        net.nodes[1].misbehaved.first(),
        Some(&(rogue, Misbehavior::WrongSender { what: "admit" }))
    );
    assert_eq!(net.nodes[1].session.slot_peer(3), None);
    assert!(net.nodes[1].session.members().all(|p| p.0 < 999));
}

#[test]
fn checksums_claimed_for_frames_far_ahead_are_refused() {
    let mut net = hostile_net(63, 2_000);
    let rogue = net.nodes[2].id;
    let far = net.nodes[0].session.current_frame() + 100_000;
    let far = far - far % net.config.checksum_interval;
    net.inject(
        2,
        0,
        &Msg::Checksum(wire::ChecksumMsg {
            frame: far,
            total: 1,
            parts: Vec::new(),
        }),
    );
    net.run(Duration::from_secs(300), |n| {
        n.nodes[..2]
            .iter()
            .all(|n| n.session.confirmed_checksum(n.game.target).is_some())
    });
    net.assert_in_step_among(&[0, 1]);
    assert_eq!(
        net.nodes[0].misbehaved.first(),
        Some(&(
            rogue,
            Misbehavior::OutOfRange {
                what: "checksum frame"
            }
        ))
    );
    // Desync detection stayed on.
    assert!(net.nodes[0].session.stats().checksums_matched > 0);
}

#[test]
fn a_player_that_withholds_its_inputs_from_everyone_is_dropped_and_the_others_play_on() {
    let mut net = hostile_net(64, 4_000);
    let rogue = net.nodes[2].id;
    // From now on the rogue sends acks and clock data, never an input.
    net.nodes[2].outbox = Some(Box::new(|_, data| data.first() != Some(&0x01)));
    net.nodes[2].stop_at = Some(net.nodes[2].session.current_frame());
    net.run(Duration::from_secs(600), |n| {
        n.nodes[..2]
            .iter()
            .all(|n| n.session.confirmed_checksum(n.game.target).is_some())
    });
    net.assert_in_step_among(&[0, 1]);
    // Dropped for its silence first (it sends nothing); back through the
    // snapshot, it kept its inputs back again, was dropped for that, and
    // the host does not take it in again.
    for i in 0..2 {
        assert!(
            seen(
                &net,
                i,
                |e| matches!(e, RollbackEvent::Disconnected { peer, .. } if *peer == rogue)
            ) >= 1,
            "node {i}: {:?}",
            net.nodes[i].events
        );
        assert!(net.nodes[i].session.members().all(|p| p != rogue));
    }
    assert!(
        seen(&net, 2, |e| matches!(e, RollbackEvent::JoinRefused { .. })) >= 1,
        "{:?}",
        net.nodes[2].events
    );
}

#[test]
fn a_join_without_a_proof_of_its_key_is_refused_and_takes_no_slot() {
    let now = Instant::now();
    let kinds = [
        PlayerKind::Local,
        PlayerKind::Remote(PeerId(2)),
        PlayerKind::Open,
    ];
    let config = RollbackConfig {
        num_players: 3,
        ..RollbackConfig::default()
    };
    let mut s = RollbackSession::<u16>::start(config, PeerId(1), 1, &kinds).unwrap();
    s.handle_peer_joined(now, PeerId(2));
    let victim = keys::PlayerKey::new(2);
    s.handle_message(
        now,
        PeerId(2),
        &Msg::<u16>::Intro(wire::IntroMsg {
            key: victim.verifier(),
            proof: None,
            attempt: 0,
            joiner: false,
            players: 1,
            num_players: 3,
        })
        .encode(),
    );
    // A rogue names the victim's verifier (every player knows it) and signs
    // its own id with a key of its own: no proof of the victim's key.
    s.handle_peer_joined(now, PeerId(9));
    s.handle_message(
        now,
        PeerId(9),
        &Msg::<u16>::Intro(wire::IntroMsg {
            key: victim.verifier(),
            proof: Some(keys::PlayerKey::new(9).prove(PeerId(9))),
            attempt: 7,
            joiner: true,
            players: 1,
            num_players: 3,
        })
        .encode(),
    );
    let events: Vec<RollbackEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&RollbackEvent::PeerMisbehaved {
        peer: PeerId(9),
        reason: Misbehavior::Rule("join without a proof of its key"),
    }));
    // The victim is still a member; a replayed proof of the victim's from
    // another id fails the same way.
    assert!(s.members().any(|p| p == PeerId(2)));
    let replayed = victim.prove(PeerId(2));
    assert!(!keys::check(&victim.verifier(), PeerId(9), &replayed));
}

#[test]
fn a_snapshot_from_a_peer_that_is_not_the_host_is_refused() {
    let now = Instant::now();
    let config = RollbackConfig {
        num_players: 3,
        ..RollbackConfig::default()
    };
    let mut s = RollbackSession::<u16>::join(config, PeerId(5), 5, 1).unwrap();
    let intro = |players| {
        Msg::<u16>::Intro(wire::IntroMsg {
            key: [1; 32],
            proof: None,
            attempt: 0,
            joiner: false,
            players,
            num_players: 3,
        })
        .encode()
    };
    for p in [1, 7] {
        s.handle_peer_joined(now, PeerId(p));
        s.handle_message(now, PeerId(p), &intro(1));
    }
    // Peer 7 makes up a session where it is the lowest player.
    let entry = |state, peer| wire::SlotEntry {
        state,
        peer: PeerId(peer),
        key: [1; 32],
        active_from: 0,
        until: None,
    };
    let snapshot = |table| {
        Msg::<u16>::Snapshot(wire::SnapshotMsg {
            frame: 100,
            from: 130,
            your_slots: vec![2],
            table,
            spectators: Vec::new(),
            runs: Vec::new(),
            data: vec![1, 2, 3],
        })
        .encode()
    };
    let fake = snapshot(vec![entry(0, 0), entry(1, 7), entry(0, 0)]);
    s.handle_message(now, PeerId(7), &fake);
    assert!(s.is_joining());
    let events: Vec<RollbackEvent> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(events.contains(&RollbackEvent::PeerMisbehaved {
        peer: PeerId(7),
        reason: Misbehavior::WrongSender { what: "snapshot" },
    }));
    // The real host's snapshot is taken.
    let real = snapshot(vec![entry(1, 1), entry(1, 7), entry(0, 0)]);
    s.handle_message(now, PeerId(1), &real);
    assert!(s.is_running());
}

#[test]
fn a_player_that_links_but_never_introduces_itself_does_not_hold_the_start() {
    let mut net = Net::with_kinds(3, 3, bad_link(71), 640);
    net.hostile = true;
    // The third player's mesh links, but its session says nothing.
    net.nodes[2].outbox = Some(Box::new(|_, _| false));
    net.run(Duration::from_secs(60), |n| {
        n.nodes[..2]
            .iter()
            .all(|n| n.session.confirmed_checksum(n.game.target).is_some())
    });
    net.assert_in_step_among(&[0, 1]);
    let mute = net.nodes[2].id;
    for n in &net.nodes[..2] {
        assert!(
            n.events.iter().any(|e| matches!(
                e,
                RollbackEvent::Disconnected { peer, frame: 0, .. } if *peer == mute
            )),
            "{:?}",
            n.events
        );
    }
}
