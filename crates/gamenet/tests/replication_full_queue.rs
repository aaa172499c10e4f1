//! Replication through a send queue that fills: reliable messages the mesh
//! cannot queue are held back in order, never lost, and every entity reaches
//! the other peer.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use gamenet::replication::{
    EntityState, NetId, ReplicationConfig, ReplicationEvent, ReplicationNet, Schema,
};
use gamenet::{
    ConditionerConfig, Instant, MemoryNetwork, MemoryTransport, MeshConfig, PeerId, Transport,
};

use common::{Peer, Sim};

const TICK: Duration = Duration::from_millis(50);

/// One peer: its replication layer, ticking at [`TICK`].
struct Replica {
    net: ReplicationNet<MemoryTransport>,
    next_tick: Instant,
    events: Vec<ReplicationEvent>,
}

impl Replica {
    fn entities(&self) -> BTreeMap<NetId, EntityState> {
        let r = self.net.replicator().expect("ready");
        r.entities().map(|(id, e)| (id, e.clone())).collect()
    }
}

impl Peer for Replica {
    fn pass(&mut self) {
        self.net.update();
        let now = self.net.now();
        if now >= self.next_tick {
            self.net.tick();
            self.next_tick = now + TICK;
        }
        self.events
            .extend(std::iter::from_fn(|| self.net.poll_replication_event()));
        while self.net.poll_event().is_some() {}
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let transport = self.net.transport().poll_timeout();
        transport.into_iter().chain([self.next_tick]).min()
    }
}

#[test]
fn spawns_that_do_not_fit_the_send_queue_arrive_later_in_order() {
    let link = ConditionerConfig {
        latency: Duration::from_millis(30),
        ..ConditionerConfig::default()
    };
    // A send window and queue of 2 KiB: a hundred spawns do not fit at once.
    let mesh = MeshConfig {
        fragment_size: 256,
        send_window: 1024,
        max_message_size: 1024,
        max_queued_bytes: 1024,
        ..MeshConfig::default()
    };
    let net = MemoryNetwork::with_mesh_config(link, mesh).unwrap();
    let schema = Schema {
        types: vec![vec![16, 16]],
    };
    let peers = (1..=2)
        .map(|id| Replica {
            net: ReplicationNet::new(
                net.transport(PeerId(id)).unwrap(),
                ReplicationConfig::default(),
                schema.clone(),
            )
            .unwrap(),
            next_tick: net.now(),
            events: Vec::new(),
        })
        .collect();
    let mut sim = Sim { net, peers };
    let limit = Duration::from_secs(20);
    sim.drive(limit, |ps| {
        ps.iter()
            .all(|p| p.net.transport().linked_peers().len() == 1)
    });
    let r = sim.peers[0].net.replicator_mut().unwrap();
    let ids: Vec<NetId> = (0..300).map(|i| r.spawn(0, &[i, 7]).unwrap()).collect();
    // Despawn a few right away: their despawns queue behind their spawns.
    for id in &ids[..10] {
        r.despawn(*id).unwrap();
    }
    sim.peers[0].net.flush();
    assert!(
        sim.peers[0].net.held_back(PeerId(2)) > 0,
        "the queue filled"
    );
    sim.drive(limit, |ps| ps[1].entities().len() == 290);
    sim.run_for(Duration::from_secs(1));
    let theirs = sim.peers[1].entities();
    assert_eq!(theirs.len(), 290);
    for (i, id) in ids.iter().enumerate().skip(10) {
        assert_eq!(theirs[id].fields[..], [i as u32, 7]);
    }
    assert!(
        sim.peers.iter().all(|p| p.events.iter().all(|e| !matches!(
            e,
            ReplicationEvent::PeerMisbehaved { .. } | ReplicationEvent::SendFailed { .. }
        ))),
        "{:?}",
        sim.peers[0].events
    );
}
