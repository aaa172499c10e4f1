//! Non-determinism is found and named: between peers, and by a sync test.

use super::*;

#[test]
fn a_non_deterministic_game_is_a_desync_naming_the_part() {
    let mut net = Net::new(2, bad_link(9), 1_008);
    net.nodes[1].game.perturb = Some(0);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0]
            .events
            .iter()
            .any(|e| matches!(e, RollbackEvent::DesyncDetected { .. }))
    });
    let desync = net.nodes[0]
        .events
        .iter()
        .find_map(|e| match e {
            RollbackEvent::DesyncDetected { parts, peer, .. } => Some((parts.clone(), *peer)),
            _ => None,
        })
        .unwrap();
    assert_eq!(desync.0, vec!["Sparkle".to_string()]);
    assert_eq!(desync.1, net.nodes[1].id);
}

#[test]
fn sync_test_finds_non_determinism_and_names_it() {
    let config = RollbackConfig {
        num_players: 2,
        ..RollbackConfig::default()
    };
    let now = Instant::now();
    let run = |perturb: Option<usize>| {
        let mut s = SyncTestSession::<u16>::new(config.clone(), 7).unwrap();
        let mut game = Game::new(2, 8, 1_000);
        game.perturb = perturb;
        let mut events = Vec::new();
        for f in 0..200u16 {
            s.add_local_input(0, f / 10 % 16).unwrap();
            s.add_local_input(1, f / 7 % 16).unwrap();
            let r = s.advance_frame(now).unwrap();
            game.handle(&mut s, r);
            while let Some(e) = s.poll_event() {
                events.push(e);
            }
        }
        (events, s.stats())
    };
    let (events, stats) = run(None);
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, RollbackEvent::DesyncDetected { .. })),
        "{events:?}"
    );
    assert!(stats.checksums_matched > 1_000, "{stats:?}");
    let (events, _) = run(Some(1));
    let parts = events
        .iter()
        .find_map(|e| match e {
            RollbackEvent::DesyncDetected { parts, .. } => Some(parts.clone()),
            _ => None,
        })
        .expect("desync found");
    assert_eq!(parts, vec!["Sparkle".to_string()]);
}
