//! A per-peer byte budget shared by priority.

use super::*;
use std::collections::BTreeMap;

#[test]
fn a_tight_budget_starves_no_entity() {
    let config = ReplicationConfig {
        budget_bytes_per_sec: 4_000,
        ..ReplicationConfig::default()
    };
    let mut net = Net::new(2, link(0.05, 2), config);
    net.run(Duration::from_secs(1), |_| {});
    let ids: Vec<NetId> = (0..200)
        .map(|k| net.nodes[0].rep.spawn(0, &moving(0, k)).unwrap())
        .collect();
    // A few entities matter more.
    for id in &ids[..5] {
        net.nodes[0].rep.set_priority(*id, 10.0);
    }
    let mut t = 0;
    net.run(Duration::from_secs(10), |n| {
        t += 1;
        for (k, id) in ids.iter().enumerate() {
            n.nodes[0].rep.set(*id, &moving(t, k as u32)).unwrap();
        }
    });
    // Gaps between updates of each entity at the receiver, after spawning.
    let mut last: BTreeMap<NetId, Instant> = BTreeMap::new();
    let mut widest: BTreeMap<NetId, Duration> = BTreeMap::new();
    let mut count: BTreeMap<NetId, u32> = BTreeMap::new();
    let start = net.nodes[1].events.first().map(|e| e.0).unwrap();
    for (at, e) in &net.nodes[1].events {
        if let ReplicationEvent::Updated { id, .. } | ReplicationEvent::Spawned { id, .. } = e {
            let prev = last.insert(*id, *at).unwrap_or(start);
            let w = widest.entry(*id).or_default();
            *w = (*w).max(*at - prev);
            *count.entry(*id).or_default() += 1;
        }
    }
    let worst = widest.values().max().copied().unwrap();
    let sent = net.nodes[0].rep.bytes_per_sec(net.nodes[1].id);
    println!(
        "worst gap {worst:?}; {sent:.0} B/s sent; urgent got {} updates, others {}",
        count[&ids[0]], count[&ids[100]]
    );
    assert_eq!(widest.len(), ids.len(), "every entity was updated");
    assert!(worst < Duration::from_secs(3), "an entity waited {worst:?}");
    assert!(sent <= 4_000.0 * 1.3, "{sent} B/s over a 4,000 B/s budget");
    assert!(count[&ids[0]] > 3 * count[&ids[100]], "priority counts");
}
