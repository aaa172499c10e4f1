//! A peer that lies about a replicated entity's type is dropped, and the
//! app it lied to neither panics nor shows the lie.

mod common;

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::replication::{NetEntity, NetState, ReplicationApp, ReplicationPlugin};
use bevy_gamenet::test_app::TestNetwork;
use gamenet::replication::{REPLICATION_TAG, ReplicationConfig, ReplicationNet, Schema};
use gamenet::{Channel, ConditionerConfig, MemoryTransport, PeerId, Transport, TypeSchema};

use common::Ball;

const HONEST: PeerId = PeerId(1);
const LIAR: PeerId = PeerId(2);

/// A second replicated type: one 8-bit field.
#[derive(Component, Clone, Copy, Debug, PartialEq)]
struct Tag(u32);

impl NetState for Tag {
    const WIDTHS: &'static [u8] = &[8];
    fn to_fields(&self) -> Vec<u32> {
        vec![self.0]
    }
    fn from_fields(f: &[u32]) -> Self {
        Tag(f[0])
    }
}

/// The liar: a replication layer on the network, driven by hand.
type Liar = ReplicationNet<MemoryTransport>;

/// One frame: the apps, then the liar.
fn step(net: &mut TestNetwork, liar: &mut Liar) {
    net.step();
    liar.update();
    liar.tick();
}

/// The balls the honest app shows, with their ids.
fn balls(app: &mut App) -> Vec<(NetEntity, Ball)> {
    let world = app.world_mut();
    let mut q = world.query::<(&NetEntity, &Ball)>();
    q.iter(world).map(|(n, b)| (*n, *b)).collect()
}

#[test]
fn a_peer_that_changes_an_entitys_type_is_dropped_and_nothing_panics() {
    let mut net = TestNetwork::new(ConditionerConfig {
        latency: Duration::from_millis(20),
        ..ConditionerConfig::default()
    });
    net.add_app(HONEST, |t| {
        let mut app = App::new();
        app.add_plugins(ReplicationPlugin::memory(t, ReplicationConfig::default()))
            .replicate::<Ball>()
            .replicate::<Tag>();
        app
    });
    let schema = Schema {
        types: vec![vec![16, 16], vec![8]],
    };
    let mut transport = net.network().transport(LIAR).unwrap();
    // The liar runs a build that registers the same types (the entries the
    // plugin puts in the handshake's schema), so it links.
    let mut types = TypeSchema::new();
    types.push(format!(
        "replication state {} {:?}",
        std::any::type_name::<Ball>(),
        Ball::WIDTHS
    ));
    types.push(format!(
        "replication state {} {:?}",
        std::any::type_name::<Tag>(),
        Tag::WIDTHS
    ));
    transport.set_schema(types);
    let mut liar = Liar::new(transport, ReplicationConfig::default(), schema).unwrap();
    for _ in 0..300 {
        step(&mut net, &mut liar);
        if liar.transport().linked_peers().contains(&HONEST) && liar.ready() {
            break;
        }
    }
    let id = liar.replicator_mut().unwrap().spawn(0, &[5, 6]).unwrap();
    for _ in 0..60 {
        step(&mut net, &mut liar);
    }
    assert_eq!(
        balls(net.app_mut(0)),
        vec![(NetEntity(id), Ball { x: 5, y: 6 })]
    );
    // The lie: the same id, now of type 1 (one field where a ball has two).
    let mut lie = vec![REPLICATION_TAG, 0x10];
    lie.extend_from_slice(&id.0.to_le_bytes());
    lie.extend_from_slice(&1u16.to_le_bytes());
    lie.push(9);
    liar.transport_mut()
        .send(HONEST, Channel::Reliable, &lie)
        .unwrap();
    for _ in 0..120 {
        step(&mut net, &mut liar);
    }
    // The honest app ran on, dropped the liar, and never showed a Tag.
    assert!(!liar.transport().linked_peers().contains(&HONEST));
    let world = net.app_mut(0).world_mut();
    assert_eq!(world.query::<&Tag>().iter(world).count(), 0);
    for (_, ball) in balls(net.app_mut(0)) {
        assert_eq!(ball, Ball { x: 5, y: 6 });
    }
}
