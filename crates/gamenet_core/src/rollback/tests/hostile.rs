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
        s.handle_message(now, PeerId(2), &Msg::<u16>::Intro(wire::IntroMsg { key: [2; 32], proof: None, joiner: false, players: 1, num_players: 2 }).encode());
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
                snapshot
            })),
        (1u128..6, arb_run()).prop_map(|(p, run)| Msg::Lost(wire::LostMsg {
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
        s.handle_message(now, PeerId(2), &wire::Msg::<u16>::Intro(wire::IntroMsg { key: [2; 32], proof: None, joiner: false, players: 1, num_players: 3 }).encode());
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
