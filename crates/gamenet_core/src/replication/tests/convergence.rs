//! Convergence under loss and at high packet rates.

use super::*;

#[test]
fn with_20_percent_loss_every_peer_converges_within_3_rtt_of_the_last_move() {
    let mut net = Net::new(3, link(0.2, 1), ReplicationConfig::default());
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..50)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    let mut t = 0;
    net.run(Duration::from_secs(3), |n| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32)).unwrap();
        }
    });
    let stopped = net.now;
    let mut converged = None;
    let rtt = Duration::from_millis(100);
    net.run(rtt * 3, |n| {
        if converged.is_none() && ids.iter().all(|id| n.same_everywhere(*id)) {
            converged = Some(n.now);
        }
    });
    let took = converged.expect("not converged within 3 RTT") - stopped;
    println!("converged {took:?} after motion stopped (RTT {rtt:?}, 20 % loss)");
    assert!(took <= rtt * 3);
}

#[test]
fn two_hundred_packets_a_tick_still_get_acked_and_stay_deltas() {
    // Far more packets a tick than the 64-packet ack window: the receiver
    // acks as they come, so baselines keep moving and updates stay deltas.
    let config = ReplicationConfig {
        budget_bytes_per_sec: 50_000_000,
        max_packet: 200,
        ..ReplicationConfig::default()
    };
    let mut net = Net::new(2, link(0.0, 10), config);
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..6000)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    let mut t = 0;
    let mut step = |n: &mut Net| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32)).unwrap();
        }
    };
    net.run(Duration::from_millis(500), &mut step);
    let b = net.nodes[1].id;
    let before = net.nodes[0].mesh.stats(b).unwrap().bytes_out;
    net.run(Duration::from_millis(500), &mut step);
    let bytes = net.nodes[0].mesh.stats(b).unwrap().bytes_out - before;
    let per_update = bytes as f64 / (30.0 * ids.len() as f64);
    println!("{per_update:.2} B per entity update at ~200 packets a tick");
    // Baselines are about 1,300 packets back here; were they limited to
    // 255 (or the acks to 64 packets a tick), every update would be a whole
    // state: about 6.5 B with packet overhead (a 21-byte header per 200-byte
    // packet). Deltas against them: about 6.1 B.
    assert!(per_update < 6.25, "{per_update:.2} B per update");
    net.run(Duration::from_millis(500), |_| {});
    for id in &ids {
        assert!(net.same_everywhere(*id));
    }
}
