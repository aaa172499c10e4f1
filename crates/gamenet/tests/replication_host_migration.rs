//! Replication converges after an entity owner leaves: its entities pass to
//! the lowest remaining id (host migration) on every peer, the new owner
//! moves them, and the remaining peers end with the same entities.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use gamenet::replication::{
    EntityState, NetId, ReplicationConfig, ReplicationEvent, ReplicationNet, Schema,
};
use gamenet::{ConditionerConfig, Instant, MemoryNetwork, MemoryTransport, PeerId, Transport};

use common::{Peer, Sim};

const TICK: Duration = Duration::from_millis(50);

/// One peer: its replication layer, ticking at [`TICK`].
struct Replica {
    /// The layer.
    net: ReplicationNet<MemoryTransport>,
    /// When it next ticks.
    next_tick: Instant,
    /// Replication events, in order.
    events: Vec<ReplicationEvent>,
}

impl Replica {
    fn id(&self) -> PeerId {
        self.net.transport().id()
    }

    /// The entities this peer knows, by id.
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

fn agree(a: &Replica, b: &Replica) -> bool {
    a.entities() == b.entities()
}

#[test]
fn entities_of_an_owner_that_leaves_pass_to_the_lowest_id_and_converge() {
    let link = ConditionerConfig {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(10),
        loss: 0.05,
        duplicate: 0.02,
        seed: 11,
    };
    let net = MemoryNetwork::new(link);
    let schema = Schema {
        types: vec![vec![16, 16]],
    };
    let peers = (1..=3)
        .map(|id| Replica {
            net: ReplicationNet::new(
                net.transport(PeerId(id)).unwrap(),
                ReplicationConfig::default(),
                schema.clone(),
            )
            .expect("settings fit the schema"),
            next_tick: net.now(),
            events: Vec::new(),
        })
        .collect();
    let mut sim = Sim { net, peers };
    let limit = Duration::from_secs(20);
    sim.drive(limit, |ps| {
        ps.iter()
            .all(|p| p.net.transport().linked_peers().len() == 2)
    });

    // Peer 1 (the lowest id, the one to leave) owns three entities, peer 3 one.
    let r1 = sim.peers[0].net.replicator_mut().unwrap();
    let hosted: Vec<NetId> = (0..3)
        .map(|i| r1.spawn(0, &[100 + i, 200]).unwrap())
        .collect();
    let own = sim.peers[2]
        .net
        .replicator_mut()
        .unwrap()
        .spawn(0, &[7, 7])
        .unwrap();
    sim.drive(limit, |ps| {
        ps[0].entities().len() == 4 && agree(&ps[0], &ps[1]) && agree(&ps[0], &ps[2])
    });

    sim.net.kill(PeerId(1));
    sim.drive(limit, |ps| {
        ps[1..].iter().all(|p| {
            hosted
                .iter()
                .all(|id| p.entities().get(id).map(|e| e.owner) == Some(PeerId(2)))
        })
    });

    // The new owner moves what it took over; the others follow it.
    let r2 = sim.peers[1].net.replicator_mut().unwrap();
    for (i, id) in hosted.iter().enumerate() {
        assert_eq!(
            r2.set(*id, &[1000 + i as u32, 2000]),
            Ok(()),
            "peer 2 owns {id:?}"
        );
    }
    sim.peers[2]
        .net
        .replicator_mut()
        .unwrap()
        .set(own, &[8, 9])
        .unwrap();
    sim.drive(limit, |ps| {
        agree(&ps[1], &ps[2]) && ps[2].entities()[&hosted[2]].fields[..] == [1002, 2000]
    });

    let entities = sim.peers[2].entities();
    assert_eq!(entities.len(), 4);
    assert_eq!(entities[&own].owner, PeerId(3));
    assert_eq!(entities[&own].fields[..], [8, 9]);
    for (i, id) in hosted.iter().enumerate() {
        assert_eq!(entities[id].fields[..], [1000 + i as u32, 2000]);
    }
    for p in &sim.peers[1..] {
        for id in &hosted {
            let changed = ReplicationEvent::OwnerChanged {
                id: *id,
                owner: PeerId(2),
            };
            assert!(p.events.contains(&changed), "{}: {:?}", p.id(), p.events);
        }
    }
}
