//! Outages on the simulated network: a short one interrupts and resumes the
//! link, a long one times it out and the link comes back once the network
//! heals, on one side or both; a peer closed on purpose stays closed.

use std::time::Duration;

use super::*;

/// Splits `events` into the messages' payloads and everything else.
fn split(events: Vec<Event>) -> (Vec<Event>, Vec<Bytes>) {
    let mut other = Vec::new();
    let mut payloads = Vec::new();
    for event in events {
        match event {
            Event::Message { payload, .. } => payloads.push(payload),
            event => other.push(event),
        }
    }
    (other, payloads)
}

/// How many of `events` are departures, and how many joins.
fn lefts_and_joins(events: &[Event]) -> (usize, usize) {
    let left = events
        .iter()
        .filter(|e| matches!(e, Event::PeerLeft { .. }))
        .count();
    let joined = events
        .iter()
        .filter(|e| matches!(e, Event::PeerJoined(_)))
        .count();
    (left, joined)
}

/// Messages `0..n` as four bytes each.
fn numbered(payloads: &[Bytes]) -> Vec<u32> {
    payloads
        .iter()
        .map(|p| u32::from_le_bytes(p[..].try_into().unwrap()))
        .collect()
}

/// Checks that nodes 0 and 1 are joined and exchange on both channels,
/// reliable messages of every size included, with sane statistics.
fn assert_flowing(net: &mut Net) {
    let (a, b) = (net.id(0), net.id(1));
    assert!(net.mesh(0).is_joined(b) && net.mesh(1).is_joined(a));
    let big: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
    for (i, to) in [(0, b), (1, a)] {
        net.mesh(i)
            .send(to, Channel::Reliable, b"reliable")
            .unwrap();
        net.mesh(i).send(to, Channel::Unreliable, b"fast").unwrap();
        // More than the send window: flow control must work on the fresh streams.
        net.mesh(i).send(to, Channel::Reliable, &big).unwrap();
    }
    net.run_for(Duration::from_secs(2));
    for i in 0..2 {
        let (other, payloads) = split(net.take_events(i));
        assert_eq!(other, vec![], "node {i}");
        assert_eq!(payloads.len(), 3, "node {i}");
        assert!(payloads.iter().any(|p| &p[..] == b"reliable"));
        assert!(payloads.iter().any(|p| &p[..] == b"fast"));
        assert!(payloads.iter().any(|p| p[..] == big[..]));
    }
    for (i, peer) in [(0, b), (1, a)] {
        let stats = net.mesh(i).stats(peer).unwrap();
        assert_eq!(stats.rtt, Some(LATENCY * 2), "node {i}: {stats:?}");
        assert_eq!(stats.loss, 0.0, "node {i}: {stats:?}");
        assert_eq!(stats.reliable_in_flight, 0, "node {i}: {stats:?}");
        assert_eq!(stats.reliable_queued, 0, "node {i}: {stats:?}");
        // The counters started again with the fresh link.
        assert!(stats.bytes_out > 600_000 && stats.bytes_out < 700_000);
        assert!(stats.bytes_in > 600_000 && stats.bytes_in < 700_000);
    }
}

#[test]
fn a_three_second_outage_interrupts_and_resumes_without_losing_reliable_messages() {
    let mut net = Net::new(2, MeshConfig::default());
    net.join_all();
    net.run_for(Duration::from_millis(500));
    let (a, b) = (net.id(0), net.id(1));
    net.partition(0, 1);
    for i in 0..30u32 {
        net.mesh(0)
            .send(b, Channel::Reliable, &i.to_le_bytes())
            .unwrap();
        net.mesh(1)
            .send(a, Channel::Reliable, &i.to_le_bytes())
            .unwrap();
        net.mesh(0).send(b, Channel::Unreliable, b"lost").unwrap();
        net.run_for(Duration::from_millis(100));
        if i == 7 {
            assert_eq!(net.take_events(0), vec![], "interrupted too early");
        }
        if i == 11 {
            assert_eq!(net.take_events(0), vec![Event::PeerInterrupted(b)]);
            assert_eq!(net.take_events(1), vec![Event::PeerInterrupted(a)]);
            assert!(net.mesh(0).is_joined(b), "an interrupted peer stays joined");
        }
    }
    net.heal();
    net.run_for(Duration::from_secs(1));
    for (i, peer) in [(0, b), (1, a)] {
        let (other, payloads) = split(net.take_events(i));
        assert_eq!(other, vec![Event::PeerResumed(peer)], "node {i}");
        assert_eq!(numbered(&payloads), (0..30).collect::<Vec<_>>(), "node {i}");
    }
    for (i, peer) in [(0, b), (1, a)] {
        let stats = net.mesh(i).stats(peer).unwrap();
        assert_eq!(stats.reliable_in_flight, 0, "{stats:?}");
    }
}

#[test]
fn a_fifteen_second_outage_times_out_both_sides_and_the_link_comes_back() {
    let mut net = Net::new(2, MeshConfig::default());
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    for (i, to) in [(0, b), (1, a)] {
        net.mesh(i)
            .send(to, Channel::Reliable, &[7; 200_000])
            .unwrap();
    }
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.messages(0).len(), 1);
    assert_eq!(net.messages(1).len(), 1);
    net.partition(0, 1);
    net.run_for(Duration::from_secs(2));
    // Sent into the outage on a link that then times out: held by the
    // network, they arrive after it as stragglers of the old link.
    for (i, to) in [(0, b), (1, a)] {
        net.mesh(i).send(to, Channel::Reliable, b"old").unwrap();
        net.mesh(i).send(to, Channel::Reliable, &[8; 3000]).unwrap();
    }
    net.run_for(Duration::from_secs(13));
    for (i, peer) in [(0, b), (1, a)] {
        assert_eq!(
            net.take_events(i),
            vec![
                Event::PeerInterrupted(peer),
                Event::PeerLeft {
                    peer,
                    reason: LeaveReason::TimedOut
                }
            ],
            "node {i}"
        );
        assert!(!net.mesh(i).is_joined(peer));
        assert!(net.mesh(i).stats(peer).is_none());
        assert_eq!(
            net.mesh(i).send(peer, Channel::Reliable, b"x"),
            Err(SendError::UnknownPeer(peer))
        );
    }
    net.heal();
    net.run_for(Duration::from_secs(1));
    for (i, peer) in [(0, b), (1, a)] {
        let (other, payloads) = split(net.take_events(i));
        assert_eq!(other, vec![Event::PeerJoined(peer)], "node {i}");
        assert_eq!(
            payloads,
            Vec::<Bytes>::new(),
            "node {i}: stragglers taken in"
        );
    }
    assert_flowing(&mut net);
}

#[test]
fn when_only_one_side_times_out_both_join_again_once() {
    let short = MeshConfig {
        disconnect_timeout: Duration::from_secs(3),
        ..MeshConfig::default()
    };
    let link = ConditionerConfig {
        latency: LATENCY,
        ..ConditionerConfig::default()
    };
    let mut net = Net::with_configs(vec![short, MeshConfig::default()], link);
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    net.partition(0, 1);
    for i in 0..50u32 {
        // Node 1 still thinks the link alive and keeps sending on it.
        net.mesh(1)
            .send(a, Channel::Reliable, &i.to_le_bytes())
            .unwrap();
        net.run_for(Duration::from_millis(100));
    }
    assert!(!net.mesh(0).is_joined(b));
    assert!(net.mesh(1).is_joined(a));
    net.heal();
    net.run_for(Duration::from_secs(1));
    let (events_a, payloads_a) = split(net.take_events(0));
    assert_eq!(
        events_a,
        vec![
            Event::PeerInterrupted(b),
            Event::PeerLeft {
                peer: b,
                reason: LeaveReason::TimedOut
            },
            Event::PeerJoined(b),
        ]
    );
    // What node 1 sent on the link node 0 had given up on is not taken in.
    assert_eq!(payloads_a, Vec::<Bytes>::new());
    let (events_b, _) = split(net.take_events(1));
    assert_eq!(lefts_and_joins(&events_b), (1, 1), "{events_b:?}");
    assert_eq!(events_b.first(), Some(&Event::PeerInterrupted(a)));
    assert!(events_b.contains(&Event::PeerLeft {
        peer: a,
        reason: LeaveReason::Lapsed
    }));
    assert_eq!(events_b.last(), Some(&Event::PeerJoined(a)));
    assert_flowing(&mut net);
}

#[test]
fn the_side_that_did_not_time_out_resumes_on_a_probe_then_rejoins() {
    // Node 1 hears node 0's probe before node 0 hears anything, answers it,
    // and only then gets the reset: it resumes, then leaves and joins again.
    let short = MeshConfig {
        disconnect_timeout: Duration::from_secs(3),
        ..MeshConfig::default()
    };
    let mut net = Net::with_configs(
        vec![short, MeshConfig::default()],
        ConditionerConfig {
            latency: LATENCY,
            ..ConditionerConfig::default()
        },
    );
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    net.partition(0, 1);
    net.run_for(Duration::from_secs(5));
    // Heal once node 0's next probe is due no later than node 1's next ping.
    loop {
        let probe = net.mesh(0).poll_timeout().unwrap();
        let ping = net.mesh(1).poll_timeout().unwrap();
        if probe <= ping {
            break;
        }
        net.run_until(ping);
    }
    net.heal();
    net.run_for(Duration::from_secs(1));
    let (events_b, _) = split(net.take_events(1));
    assert_eq!(
        events_b,
        vec![
            Event::PeerInterrupted(a),
            Event::PeerResumed(a),
            Event::PeerLeft {
                peer: a,
                reason: LeaveReason::Lapsed
            },
            Event::PeerJoined(a),
        ]
    );
    let (events_a, _) = split(net.take_events(0));
    assert_eq!(lefts_and_joins(&events_a), (1, 1), "{events_a:?}");
    assert_eq!(events_a.last(), Some(&Event::PeerJoined(b)));
    assert_flowing(&mut net);
}

#[test]
fn outages_over_and_over_keep_one_timeline() {
    // Three peers; the link between nodes 0 and 1 lapses three times, the
    // others never do.
    let link = ConditionerConfig {
        latency: LATENCY,
        jitter: Duration::from_millis(30),
        loss: 0.05,
        seed: 9,
        ..ConditionerConfig::default()
    };
    let mut net = Net::with_link(3, MeshConfig::default(), link);
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    for round in 0..3 {
        net.partition(0, 1);
        for i in 0..12 {
            net.mesh(0).send(b, Channel::Unreliable, b"u").ok();
            net.mesh(2).send(a, Channel::Reliable, &[round, i]).unwrap();
            net.run_for(Duration::from_secs(1));
        }
        net.heal();
        net.run_for(Duration::from_secs(2));
        for (i, peer) in [(0, b), (1, a)] {
            let (events, payloads) = split(net.take_events(i));
            assert_eq!(
                lefts_and_joins(&events),
                (1, 1),
                "round {round} node {i}: {events:?}"
            );
            assert_eq!(events.last(), Some(&Event::PeerJoined(peer)));
            if i == 0 {
                // Node 2's reliable messages to node 0 all arrived, in order.
                let want: Vec<Vec<u8>> = (0..12).map(|i| vec![round, i]).collect();
                let got: Vec<Vec<u8>> = payloads.iter().map(|p| p.to_vec()).collect();
                assert_eq!(got, want);
            }
        }
        assert!(net.mesh(2).is_joined(a) && net.mesh(2).is_joined(b));
        let (events, _) = split(net.take_events(2));
        assert!(
            !events.iter().any(|e| matches!(e, Event::PeerLeft { .. })),
            "{events:?}"
        );
    }
    net.mesh(0).send(b, Channel::Reliable, b"after").unwrap();
    net.mesh(1).send(a, Channel::Reliable, b"after").unwrap();
    net.run_for(Duration::from_millis(500));
    assert_eq!(net.messages(0).len(), 1);
    assert_eq!(net.messages(1).len(), 1);
}

#[test]
fn a_peer_dropped_during_an_outage_does_not_come_back() {
    let mut net = Net::new(2, MeshConfig::default());
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    net.partition(0, 1);
    net.run_for(Duration::from_secs(2));
    assert!(net.mesh(0).drop_peer(b));
    net.run_for(Duration::from_secs(13));
    net.heal();
    net.run_for(Duration::from_secs(5));
    assert_eq!(
        net.take_events(0),
        vec![
            Event::PeerInterrupted(b),
            Event::PeerLeft {
                peer: b,
                reason: LeaveReason::Dropped
            }
        ]
    );
    // Node 1 timed out; the goodbye held by the outage then closed it.
    assert_eq!(
        net.take_events(1),
        vec![
            Event::PeerInterrupted(a),
            Event::PeerLeft {
                peer: a,
                reason: LeaveReason::TimedOut
            }
        ]
    );
    for i in 0..2 {
        assert_eq!(net.mesh(i).joined_peers().count(), 0);
        assert_eq!(net.mesh(i).poll_timeout(), None, "node {i} still probes");
    }
}

#[test]
fn a_timed_out_peer_that_is_dropped_does_not_come_back() {
    let short = MeshConfig {
        disconnect_timeout: Duration::from_secs(3),
        ..MeshConfig::default()
    };
    let link = ConditionerConfig {
        latency: LATENCY,
        ..ConditionerConfig::default()
    };
    let mut net = Net::with_configs(vec![short, MeshConfig::default()], link);
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    net.partition(0, 1);
    net.run_for(Duration::from_secs(4));
    assert!(net.mesh(0).drop_peer(b), "a timed-out peer can be dropped");
    assert!(!net.mesh(0).drop_peer(b));
    net.heal();
    net.run_for(Duration::from_secs(5));
    let (events_a, _) = split(net.take_events(0));
    assert_eq!(lefts_and_joins(&events_a), (1, 0), "{events_a:?}");
    // Node 1 never timed out: the goodbye tells it.
    let (events_b, _) = split(net.take_events(1));
    assert_eq!(
        events_b.last(),
        Some(&Event::PeerLeft {
            peer: a,
            reason: LeaveReason::Left(GoodbyeReason::Dropped)
        })
    );
    assert_eq!(lefts_and_joins(&events_b), (1, 0), "{events_b:?}");
    assert_eq!(net.mesh(0).poll_timeout(), None);
}

#[test]
fn a_peer_dropped_for_a_protocol_violation_does_not_come_back() {
    let mut net = Net::new(2, MeshConfig::default());
    net.join_all();
    let (a, b) = (net.id(0), net.id(1));
    net.partition(0, 1);
    net.run_for(Duration::from_secs(2));
    let now = net.now;
    feed(net.mesh(0), now, b, ReliablePacket::FragmentCont(b"junk"));
    net.run_for(Duration::from_secs(13));
    net.heal();
    net.run_for(Duration::from_secs(5));
    let (events_a, _) = split(net.take_events(0));
    assert!(matches!(
        events_a.last(),
        Some(Event::PeerLeft {
            reason: LeaveReason::ProtocolViolation(ProtocolError::BadFragment),
            ..
        })
    ));
    assert_eq!(lefts_and_joins(&events_a), (1, 0), "{events_a:?}");
    let (events_b, _) = split(net.take_events(1));
    assert_eq!(lefts_and_joins(&events_b), (1, 0), "{events_b:?}");
    for i in 0..2 {
        assert_eq!(net.mesh(i).joined_peers().count(), 0);
    }
    // Whatever it sends now, even a reset and a hello, is ignored.
    let now = net.now;
    feed(net.mesh(0), now, b, ReliablePacket::Reset);
    feed(net.mesh(0), now, b, HELLO);
    assert_eq!(net.mesh(0).poll_transmit(), None);
    assert_eq!(net.take_events(0), vec![]);
    let _ = a;
}
