//! A spectator follows the confirmed game.

use super::*;

#[test]
fn a_spectator_follows_the_confirmed_game() {
    let mut net = Net::new(2, bad_link(7), 3_008);
    net.run(Duration::from_secs(100), |n| {
        n.nodes[0].session.current_frame() >= 1_000
    });
    let id = net.new_id();
    let session = RollbackSession::join(net.config.clone(), id, 5, 0).unwrap();
    net.add_node(id, session);
    net.run(Duration::from_secs(200), |n| n.all_done());
    net.assert_in_step();
    assert!(net.nodes[2].session.is_spectator());
}
