//! An entity with several replicated states: each reaches every peer on the
//! same entity, a state added or removed later follows, and hiding, a
//! hand-over on request and a despawn take them all.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bevy_app::{App, Update};
use bevy_ecs::prelude::*;
use bevy_gamenet::replication::{
    AuthorityRequested, HandOver, HiddenFrom, NetEntity, NetState, Remote, Replicated,
    ReplicationApp, ReplicationPlugin, ReplicationSocket, RequestAuthority,
};
use bevy_gamenet::test_app::TestNetwork;
use gamenet::replication::{NetId, ReplicationConfig};
use gamenet::{MemoryTransport, PeerId};

use common::{Ball, bad_link};

/// A second state.
#[derive(Component, Clone, Copy, PartialEq, Eq, Debug, NetState)]
struct Health {
    #[net(bits = 10)]
    hp: u16,
}

/// A third state, added later.
#[derive(Component, Clone, Copy, PartialEq, Eq, Debug, NetState)]
struct Team {
    #[net(range = 0..=3)]
    side: u8,
}

/// Grants every request at once.
fn grant(mut requests: MessageReader<AuthorityRequested>, mut grants: MessageWriter<HandOver>) {
    for r in requests.read() {
        grants.write(HandOver {
            entity: r.entity,
            to: r.peer,
        });
    }
}

fn replica(transport: MemoryTransport) -> App {
    let mut app = App::new();
    app.add_plugins(ReplicationPlugin::memory(
        transport,
        ReplicationConfig::default(),
    ))
    .replicate::<Ball>()
    .replicate::<Health>()
    .replicate::<Team>()
    .add_systems(Update, grant);
    app
}

/// What one app shows of an entity: its owner and states.
type Shown = (PeerId, Option<Ball>, Option<Health>, Option<Team>);

/// Every replicated entity an app shows, by id.
fn shown(app: &mut App, me: PeerId) -> BTreeMap<NetId, Shown> {
    let world = app.world_mut();
    let mut q = world.query::<(
        &NetEntity,
        Option<&Remote>,
        Option<&Ball>,
        Option<&Health>,
        Option<&Team>,
    )>();
    q.iter(world)
        .map(|(id, remote, b, h, t)| {
            let owner = remote.map_or(me, |r| r.owner);
            (id.0, (owner, b.copied(), h.copied(), t.copied()))
        })
        .collect()
}

/// Objects (entities and parts) an app's replication holds.
fn objects(app: &App) -> usize {
    let socket = app.world().resource::<ReplicationSocket>();
    socket.0.replicator().map_or(0, |r| r.entities().count())
}

const IDS: [PeerId; 3] = [PeerId(1), PeerId(2), PeerId(3)];
const LIMIT: Duration = Duration::from_secs(8);

/// Every app in `which` shows exactly `expected`.
fn agree(apps: &mut [App], which: &[usize], expected: &BTreeMap<NetId, Shown>) -> bool {
    which
        .iter()
        .all(|&i| shown(&mut apps[i], IDS[i]) == *expected)
}

#[test]
fn several_states_on_one_entity_reach_every_peer_and_go_with_it() {
    let mut net = TestNetwork::new(bad_link(11));
    for id in IDS {
        net.add_app(id, replica);
    }
    let all = [0, 1, 2];
    let ball = Ball { x: 3, y: 4 };
    let entity = net
        .app_mut(0)
        .world_mut()
        .spawn((ball, Health { hp: 100 }, Replicated))
        .id();
    let start = net.now();
    let mut expected = BTreeMap::new();
    net.run_until(LIMIT, |apps| {
        expected = shown(&mut apps[0], IDS[0]);
        expected.len() == 1 && agree(apps, &all, &expected)
    });
    let (&id, _) = expected.first_key_value().expect("the entity");
    assert_eq!(
        expected[&id],
        (IDS[0], Some(ball), Some(Health { hp: 100 }), None)
    );
    assert_eq!(objects(net.app(1)), 2, "the entity and one part");

    // A state changed, and one added later.
    let mut e = net.app_mut(0).world_mut().entity_mut(entity);
    e.insert(Team { side: 2 });
    e.get_mut::<Health>().expect("health").hp = 40;
    let with_team = (
        IDS[0],
        Some(ball),
        Some(Health { hp: 40 }),
        Some(Team { side: 2 }),
    );
    expected.insert(id, with_team);
    net.run_until(LIMIT, |apps| agree(apps, &all, &expected));

    // A state removed from the entity goes from it everywhere; the rest stays.
    net.app_mut(0)
        .world_mut()
        .entity_mut(entity)
        .remove::<Health>();
    expected.insert(id, (IDS[0], Some(ball), None, Some(Team { side: 2 })));
    net.run_until(LIMIT, |apps| agree(apps, &all, &expected));
    net.run_for(Duration::from_millis(300));
    assert_eq!(objects(net.app(2)), 2, "the removed part is despawned");

    // The entity's first state removed: it is sent again, as a new entity
    // of its other states; the first one put back becomes a part.
    net.app_mut(0)
        .world_mut()
        .entity_mut(entity)
        .remove::<Ball>();
    net.run_until(LIMIT, |apps| {
        expected = shown(&mut apps[0], IDS[0]);
        expected.len() == 1 && !expected.contains_key(&id) && agree(apps, &all, &expected)
    });
    let id = *expected.first_key_value().expect("the entity again").0;
    assert_eq!(expected[&id], (IDS[0], None, None, Some(Team { side: 2 })));
    net.app_mut(0).world_mut().entity_mut(entity).insert(ball);
    expected.insert(id, (IDS[0], Some(ball), None, Some(Team { side: 2 })));
    net.run_until(LIMIT, |apps| agree(apps, &all, &expected));

    // Hidden from peer 2: gone there with all its states, kept at peer 3;
    // shown again, it comes back whole.
    net.app_mut(0)
        .world_mut()
        .entity_mut(entity)
        .insert(HiddenFrom([IDS[1]].into()));
    net.run_until(LIMIT, |apps| {
        shown(&mut apps[1], IDS[1]).is_empty() && agree(apps, &[0, 2], &expected)
    });
    net.app_mut(0)
        .world_mut()
        .entity_mut(entity)
        .insert(Health { hp: 7 });
    net.app_mut(0)
        .world_mut()
        .entity_mut(entity)
        .remove::<HiddenFrom>();
    expected.insert(
        id,
        (
            IDS[0],
            Some(ball),
            Some(Health { hp: 7 }),
            Some(Team { side: 2 }),
        ),
    );
    net.run_until(LIMIT, |apps| agree(apps, &all, &expected));

    // Peer 3 asks for it and is granted all of it: its changes to every
    // state reach the others.
    let at_3 = net
        .app_mut(2)
        .world_mut()
        .query_filtered::<Entity, With<NetEntity>>()
        .single(net.app(2).world())
        .expect("one entity at peer 3");
    net.app_mut(2)
        .world_mut()
        .write_message(RequestAuthority(at_3));
    net.run_until(LIMIT, |apps| {
        shown(&mut apps[0], IDS[0])[&id].0 == IDS[2]
            && apps[2].world().get::<Remote>(at_3).is_none()
    });
    let mut e = net.app_mut(2).world_mut().entity_mut(at_3);
    e.get_mut::<Health>().expect("health").hp = 99;
    e.get_mut::<Team>().expect("team").side = 1;
    let moved = Ball { x: 30, y: 40 };
    *e.get_mut::<Ball>().expect("ball") = moved;
    expected.insert(
        id,
        (
            IDS[2],
            Some(moved),
            Some(Health { hp: 99 }),
            Some(Team { side: 1 }),
        ),
    );
    net.run_until(LIMIT, |apps| agree(apps, &all, &expected));

    // Its new owner despawns it: nothing of it is left anywhere.
    net.app_mut(2).world_mut().despawn(at_3);
    expected.clear();
    net.run_until(LIMIT, |apps| {
        agree(apps, &all, &expected) && apps.iter().all(|a| objects(a) == 0)
    });
    println!(
        "RESULT three states on one entity: added, changed, removed, hidden, handed over and despawned on every peer; all agreed {:?} into the simulated run",
        net.now().saturating_duration_since(start)
    );
}
