//! Heartbeats: a silent peer is found out (interrupted, then timed out), and
//! the statistics they measure.

use std::time::Duration;

use super::*;

#[test]
fn silent_peer_is_reported_left_after_the_timeout() {
    let mut net = Net::new(3, MeshConfig::default());
    net.join_all();
    net.run_for(Duration::from_secs(1));
    let silenced_at = net.now;
    net.kill(2);
    net.run_for(Duration::from_millis(900));
    assert!(net.take_events(0).is_empty(), "reported too early");
    net.run_for(Duration::from_millis(200));
    assert_eq!(net.take_events(0), vec![Event::PeerInterrupted(net.id(2))]);
    net.run_for(Duration::from_millis(8800));
    assert!(net.take_events(0).is_empty(), "reported too early");
    net.run_for(Duration::from_millis(200));
    let events = net.take_events(0);
    assert_eq!(
        events,
        vec![Event::PeerLeft {
            peer: net.id(2),
            reason: LeaveReason::TimedOut
        }]
    );
    assert!(net.now - silenced_at <= Duration::from_millis(10_100));
    // The other link is unaffected.
    let b = net.id(1);
    assert!(net.mesh(0).is_joined(b));
}

#[test]
fn stats_measure_rtt_loss_and_rates() {
    let link = ConditionerConfig {
        latency: Duration::from_millis(40),
        loss: 0.2,
        ..ConditionerConfig::default()
    };
    let mut net = Net::with_link(2, MeshConfig::default(), link);
    net.join_all();
    let b = net.id(1);
    for _ in 0..100 {
        net.mesh(0)
            .send(b, Channel::Unreliable, &[0; 1000])
            .unwrap();
        net.run_for(Duration::from_millis(100));
    }
    let stats = net.mesh(0).stats(b).unwrap();
    assert_eq!(stats.rtt, Some(Duration::from_millis(80)));
    assert_eq!(stats.rtt_p99, Some(Duration::from_millis(80)));
    // A heartbeat survives only if ping and pong both do: 1 - 0.8^2 = 0.36.
    assert!(stats.loss > 0.25 && stats.loss < 0.47, "{stats:?}");
    // 1000 bytes every 100 ms plus heartbeats.
    assert!(
        stats.bytes_out_per_sec > 10_000.0 && stats.bytes_out_per_sec < 11_000.0,
        "{stats:?}"
    );
    let a = net.id(0);
    let peer_stats = net.mesh(1).stats(a).unwrap();
    // 80 % of 10 kB/s arrive, give or take a few messages in a one-second window.
    assert!(
        peer_stats.bytes_in_per_sec > 4_000.0 && peer_stats.bytes_in_per_sec < 11_000.0,
        "{peer_stats:?}"
    );
}
