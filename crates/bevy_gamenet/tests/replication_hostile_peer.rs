//! A peer that lies about a replicated entity's type is dropped, and the
//! app it lied to neither panics nor shows the lie; a part a peer sends for
//! an entity it does not own is ignored.

mod common;

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::replication::{
    NetEntity, NetState, Replicated, ReplicationApp, ReplicationPlugin,
};
use bevy_gamenet::test_app::TestNetwork;
use gamenet::replication::{NetId, REPLICATION_TAG, ReplicationConfig, ReplicationNet, Schema};
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

/// The core schema the plugin builds for [`Ball`] then [`Tag`]: each state
/// type followed by its part type (the entity's id in two fields, then the
/// state's).
fn schema() -> Schema {
    Schema {
        types: vec![vec![16, 16], vec![32, 32, 16, 16], vec![8], vec![32, 32, 8]],
    }
}

/// An honest app.
fn honest_app(t: MemoryTransport) -> App {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::memory(t, ReplicationConfig::default()))
        .replicate::<Ball>()
        .replicate::<Tag>();
    app
}

/// The honest app, and a liar linked to it running a build that registers
/// the same types (the entries the plugin puts in the handshake's schema).
fn honest_and_liar() -> (TestNetwork, Liar) {
    let mut net = TestNetwork::new(ConditionerConfig {
        latency: Duration::from_millis(20),
        ..ConditionerConfig::default()
    });
    net.add_app(HONEST, honest_app);
    let mut transport = net.network().transport(LIAR).unwrap();
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
    let mut liar = Liar::new(transport, ReplicationConfig::default(), schema()).unwrap();
    for _ in 0..300 {
        step(&mut net, &mut liar);
        if liar.transport().linked_peers().contains(&HONEST) && liar.ready() {
            break;
        }
    }
    (net, liar)
}

#[test]
fn a_peer_that_changes_an_entitys_type_is_dropped_and_nothing_panics() {
    let (mut net, mut liar) = honest_and_liar();
    let id = liar.replicator_mut().unwrap().spawn(0, &[5, 6]).unwrap();
    for _ in 0..60 {
        step(&mut net, &mut liar);
    }
    assert_eq!(
        balls(net.app_mut(0)),
        vec![(NetEntity(id), Ball { x: 5, y: 6 })]
    );
    // The lie: the same id, now a Tag (one field where a ball has two).
    let mut lie = vec![REPLICATION_TAG, 0x10];
    lie.extend_from_slice(&id.0.to_le_bytes());
    lie.extend_from_slice(&2u16.to_le_bytes());
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

#[test]
fn a_part_for_an_entity_its_sender_does_not_own_is_ignored() {
    const OTHER: PeerId = PeerId(3);
    let (mut net, mut liar) = honest_and_liar();
    let other = net.add_app(OTHER, honest_app);
    net.app_mut(other)
        .world_mut()
        .spawn((Ball { x: 1, y: 2 }, Replicated));
    let mut theirs = None;
    for _ in 0..300 {
        step(&mut net, &mut liar);
        let r = liar.replicator().unwrap();
        theirs = r
            .entities()
            .find(|(_, e)| e.owner == OTHER)
            .map(|(id, _)| id);
        if theirs.is_some() && balls(net.app_mut(0)).len() == 1 {
            break;
        }
    }
    let theirs = theirs.expect("the liar sees the other peer's ball");
    assert_eq!(
        balls(net.app_mut(0)),
        [(NetEntity(theirs), Ball { x: 1, y: 2 })]
    );
    let r = liar.replicator_mut().unwrap();
    // A Tag for the other peer's ball, and, as a control, one for the
    // liar's own ball.
    let part = |of: NetId, tag: u32| [(of.0 >> 32) as u32, of.0 as u32, tag];
    r.spawn(3, &part(theirs, 9)).unwrap();
    let own = r.spawn(0, &[5, 6]).unwrap();
    r.spawn(3, &part(own, 7)).unwrap();
    for _ in 0..120 {
        step(&mut net, &mut liar);
    }
    // At the honest peer, the other peer's ball has no Tag: not the liar's
    // to say; the liar's own ball has its.
    let world = net.app_mut(0).world_mut();
    let mut tags = world.query::<(&NetEntity, &Tag)>();
    let tags: Vec<_> = tags.iter(world).map(|(n, t)| (*n, *t)).collect();
    assert_eq!(tags, [(NetEntity(own), Tag(7))]);
    assert!(liar.transport().linked_peers().contains(&HONEST));
}
