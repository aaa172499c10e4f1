//! A player leaves: the rest agree where its inputs end and finish in step.

use super::*;

#[test]
fn a_peer_leaves_and_the_rest_finish_in_step() {
    let mut net = Net::new(3, bad_link(4), 10_000);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[2].session.current_frame() >= 3_000
    });
    net.kill(2, false);
    let gone = net.nodes[2].id;
    net.run(Duration::from_secs(400), |n| n.all_done());
    net.assert_in_step();
    let mut frames = Vec::new();
    for n in net.nodes.iter().filter(|n| n.alive) {
        let e = n
            .events
            .iter()
            .find_map(|e| match e {
                RollbackEvent::Disconnected { peer, slots, frame } if *peer == gone => {
                    Some((slots.clone(), *frame))
                }
                _ => None,
            })
            .expect("disconnect reported");
        frames.push(e);
    }
    assert!(frames.windows(2).all(|w| w[0] == w[1]), "{frames:?}");
    assert_eq!(frames[0].0, vec![2]);
    // Its inputs up to about where it died are used, none beyond.
    let delay = net.config.input_delay;
    assert!((2_950..=3_001 + delay).contains(&frames[0].1), "{frames:?}");
    let state = net.nodes[0].game.at_target.as_ref().unwrap();
    assert!(!state.present[2] && state.present[0] && state.present[1]);
}
