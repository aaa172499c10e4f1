//! Replication through the Bevy plugin carries what the core does: a
//! despawn reaches every peer, game events arrive typed, and an entity
//! changes hands on request; then its new owner moves and despawns it.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bevy_app::{App, Startup, Update};
use bevy_ecs::prelude::*;
use bevy_gamenet::replication::{
    AuthorityRequested, FromPeer, HandOver, HiddenFrom, NetEntity, OwnerChanged, Remote,
    Replicated, ReplicationApp, ReplicationPlugin, RequestAuthority, ToPeers,
};
use bevy_gamenet::test_app::TestNetwork;
use gamenet::replication::{NetId, ReplicationConfig};
use gamenet::{MemoryTransport, PeerId};
use serde::{Deserialize, Serialize};

use common::{Ball, bad_link};

/// A game event.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Chat {
    text: String,
    loud: bool,
}

/// Another event type, registered after [`Chat`].
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
struct Score(u32);

/// What an app heard, in order.
#[derive(Resource, Default)]
struct Heard {
    chats: Vec<(PeerId, Chat)>,
    scores: Vec<(PeerId, Score)>,
    owners: Vec<(Entity, PeerId)>,
    requests: Vec<(Entity, PeerId)>,
}

fn listen(
    mut heard: ResMut<Heard>,
    mut chats: MessageReader<FromPeer<Chat>>,
    mut scores: MessageReader<FromPeer<Score>>,
    mut owners: MessageReader<OwnerChanged>,
    mut requests: MessageReader<AuthorityRequested>,
    mut grants: MessageWriter<HandOver>,
) {
    heard
        .chats
        .extend(chats.read().map(|m| (m.peer, m.message.clone())));
    heard
        .scores
        .extend(scores.read().map(|m| (m.peer, m.message.clone())));
    heard
        .owners
        .extend(owners.read().map(|m| (m.entity, m.owner)));
    for request in requests.read() {
        heard.requests.push((request.entity, request.peer));
        // Granted at once.
        grants.write(HandOver {
            entity: request.entity,
            to: request.peer,
        });
    }
}

/// An app replicating [`Ball`]s and sending [`Chat`] and [`Score`],
/// spawning `balls` as its own.
fn replica(transport: MemoryTransport, balls: Vec<Ball>) -> App {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::memory(
        transport,
        ReplicationConfig::default(),
    ))
    .replicate::<Ball>()
    .replicate_message::<Chat>()
    .replicate_message::<Score>()
    .init_resource::<Heard>()
    .add_systems(Update, listen)
    .add_systems(Startup, move |mut commands: Commands| {
        for ball in &balls {
            commands.spawn((*ball, Replicated));
        }
    });
    app
}

/// Every ball an app shows, by id: its entity, owner (`me` for its own)
/// and value.
fn balls(app: &mut App, me: PeerId) -> BTreeMap<NetId, (Entity, PeerId, Ball)> {
    let world = app.world_mut();
    let mut q = world.query::<(Entity, &NetEntity, &Ball, Option<&Remote>)>();
    q.iter(world)
        .map(|(e, id, ball, remote)| (id.0, (e, remote.map_or(me, |r| r.owner), *ball)))
        .collect()
}

/// The ids and owners of the balls an app shows.
fn owners(app: &mut App, me: PeerId) -> BTreeMap<NetId, PeerId> {
    balls(app, me)
        .into_iter()
        .map(|(id, (_, owner, _))| (id, owner))
        .collect()
}

fn heard(app: &App) -> &Heard {
    app.world().resource::<Heard>()
}

const IDS: [PeerId; 3] = [PeerId(1), PeerId(2), PeerId(3)];

/// Every app shows `expected` (ids and owners).
fn all_show(apps: &mut [App], expected: &BTreeMap<NetId, PeerId>) -> bool {
    apps.iter_mut()
        .zip(IDS)
        .all(|(app, id)| owners(app, id) == *expected)
}

#[test]
fn despawns_events_and_hand_overs_reach_every_peer() {
    let mut net = TestNetwork::new(bad_link(5));
    let ball = |x, y| Ball { x, y };
    net.add_app(IDS[0], |t| replica(t, vec![ball(1, 1), ball(2, 2)]));
    net.add_app(IDS[1], |t| replica(t, Vec::new()));
    net.add_app(IDS[2], |t| replica(t, Vec::new()));
    let limit = Duration::from_secs(8);
    let start = net.now();
    let mut expected = BTreeMap::new();
    net.run_until(limit, |apps| {
        let shown = owners(&mut apps[0], IDS[0]);
        expected.clone_from(&shown);
        shown.len() == 2 && all_show(apps, &shown)
    });
    let ids: Vec<NetId> = expected.keys().copied().collect();

    // A despawn by the owner reaches the others.
    let (gone, kept) = (ids[0], ids[1]);
    let entity = balls(net.app_mut(0), IDS[0])[&gone].0;
    net.app_mut(0).world_mut().despawn(entity);
    expected.remove(&gone);
    net.run_until(limit, |apps| all_show(apps, &expected));

    // Events arrive typed: to all, and to one only.
    let hello = Chat {
        text: "hello".into(),
        loud: true,
    };
    net.app_mut(1)
        .world_mut()
        .write_message(ToPeers::all(hello.clone()));
    net.app_mut(2)
        .world_mut()
        .write_message(ToPeers::one(IDS[0], Score(7)));
    net.run_until(limit, |apps| {
        heard(&apps[0]).chats.len() == 1
            && heard(&apps[2]).chats.len() == 1
            && heard(&apps[0]).scores.len() == 1
    });
    net.run_for(Duration::from_millis(500));
    assert_eq!(heard(net.app(0)).chats, [(IDS[1], hello.clone())]);
    assert_eq!(heard(net.app(2)).chats, [(IDS[1], hello)]);
    assert_eq!(heard(net.app(0)).scores, [(IDS[2], Score(7))]);
    assert!(heard(net.app(1)).scores.is_empty(), "sent to peer 1 only");
    assert!(heard(net.app(1)).chats.is_empty(), "not to its sender");

    // Peer 3 asks for the kept ball; peer 1 grants it.
    let at_3 = balls(net.app_mut(2), IDS[2])[&kept].0;
    net.app_mut(2)
        .world_mut()
        .write_message(RequestAuthority(at_3));
    expected.insert(kept, IDS[2]);
    net.run_until(limit, |apps| all_show(apps, &expected));
    let at_1 = balls(net.app_mut(0), IDS[0])[&kept].0;
    assert_eq!(heard(net.app(0)).requests, [(at_1, IDS[2])]);
    assert!(heard(net.app(2)).owners.contains(&(at_3, IDS[2])));
    assert!(heard(net.app(0)).owners.contains(&(at_1, IDS[2])));
    // Its new owner moves it, and everyone follows.
    let world = net.app_mut(2).world_mut();
    *world.get_mut::<Ball>(at_3).expect("the ball") = ball(300, 30);
    net.run_until(limit, |apps| {
        apps.iter_mut()
            .zip(IDS)
            .all(|(app, id)| balls(app, id)[&kept].2 == ball(300, 30))
    });
    // And despawns it everywhere.
    net.app_mut(2).world_mut().despawn(at_3);
    expected.clear();
    net.run_until(limit, |apps| all_show(apps, &expected));
    println!(
        "RESULT despawns, events and a hand-over on request: all agreed {:?} into the simulated run",
        net.now().saturating_duration_since(start)
    );
}

#[test]
fn an_entity_hidden_from_one_peer_is_despawned_there_and_nowhere_else() {
    let mut net = TestNetwork::new(bad_link(9));
    let ball = |x, y| Ball { x, y };
    net.add_app(IDS[0], |t| replica(t, vec![ball(5, 5)]));
    net.add_app(IDS[1], |t| replica(t, Vec::new()));
    net.add_app(IDS[2], |t| replica(t, Vec::new()));
    let limit = Duration::from_secs(8);
    let mut expected = BTreeMap::new();
    net.run_until(limit, |apps| {
        let shown = owners(&mut apps[0], IDS[0]);
        expected.clone_from(&shown);
        shown.len() == 1 && all_show(apps, &shown)
    });
    let (id, (entity, _, _)) = balls(net.app_mut(0), IDS[0]).pop_first().expect("the ball");
    net.app_mut(0)
        .world_mut()
        .entity_mut(entity)
        .insert(HiddenFrom([IDS[1]].into()));
    let shown_to = |apps: &mut [App]| -> Vec<bool> {
        apps.iter_mut()
            .zip(IDS)
            .map(|(app, me)| balls(app, me).contains_key(&id))
            .collect()
    };
    net.run_until(limit, |apps| shown_to(apps) == [true, false, true]);
    // It keeps moving for the others only.
    *net.app_mut(0)
        .world_mut()
        .get_mut::<Ball>(entity)
        .expect("ball") = ball(50, 60);
    net.run_until(limit, |apps| {
        balls(&mut apps[2], IDS[2])[&id].2 == ball(50, 60)
    });
    net.run_for(Duration::from_millis(500));
    let shown: Vec<bool> = (0..3)
        .map(|i| balls(net.app_mut(i), IDS[i]).contains_key(&id))
        .collect();
    assert_eq!(shown, [true, false, true]);
    // A ball spawned hidden never shows there.
    let hidden = net
        .app_mut(0)
        .world_mut()
        .spawn((ball(9, 9), Replicated, HiddenFrom([IDS[2]].into())))
        .id();
    net.run_until(limit, |apps| balls(&mut apps[1], IDS[1]).len() == 1);
    net.run_for(Duration::from_millis(500));
    assert_eq!(
        balls(net.app_mut(2), IDS[2]).len(),
        1,
        "only the first ball"
    );
    // Shown again to everyone.
    net.app_mut(0)
        .world_mut()
        .entity_mut(entity)
        .remove::<HiddenFrom>();
    net.app_mut(0)
        .world_mut()
        .entity_mut(hidden)
        .remove::<HiddenFrom>();
    net.run_until(limit, |apps| {
        apps.iter_mut()
            .zip(IDS)
            .all(|(app, me)| balls(app, me).len() == 2)
    });
    assert_eq!(balls(net.app_mut(1), IDS[1])[&id].2, ball(50, 60));
}
