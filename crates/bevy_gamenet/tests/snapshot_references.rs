//! A late-join snapshot whose `ChildOf` names a parent that is not one of
//! the snapshot's own entities (which panicked inside Bevy's hierarchy hook,
//! found by the `bevy_snapshot` fuzz target), or whose parents form a cycle,
//! is refused before the world is touched: the joiner is told why and its
//! world is as before.

use bevy_app::App;
use bevy_ecs::hierarchy::ChildOf;
use bevy_ecs::message::Messages;
use bevy_ecs::prelude::*;
use bevy_gamenet::rollback::{
    FrameSession, Rollback, RollbackApp, RollbackIds, RollbackPlugin, SessionEvent, run_requests,
};
use gamenet::Bytes;
use gamenet::rollback::{Checksum, Frame, Request, RollbackConfig, RollbackError, RollbackEvent};
use serde::{Deserialize, Serialize};

#[derive(Component, Clone, Copy, Hash, PartialEq, Eq, Debug, Serialize, Deserialize)]
struct Pos(i32);

/// Takes the snapshots the world hands over; runs no frames.
#[derive(Default)]
struct Taker(Option<Vec<u8>>);

impl FrameSession<u8> for Taker {
    fn frame_due(&mut self, _: gamenet::Instant) -> bool {
        false
    }
    fn frame_ready(&self) -> bool {
        false
    }
    fn local_slots(&self) -> Vec<usize> {
        Vec::new()
    }
    fn add_local_input(&mut self, _: usize, _: u8) -> Result<(), RollbackError> {
        Ok(())
    }
    fn advance_frame(&mut self, _: gamenet::Instant) -> Result<Vec<Request<u8>>, RollbackError> {
        Err(RollbackError::NotRunning)
    }
    fn set_checksum(&mut self, _: Frame, _: Checksum) {}
    fn submit_snapshot(&mut self, _: Frame, data: Vec<u8>) {
        self.0 = Some(data);
    }
    fn decline_snapshot(&mut self, _: Frame, _: &str) {}
}

/// A world of three rollback entities: a parent and two children.
fn app() -> (App, [Entity; 3]) {
    let mut app = App::new();
    app.add_plugins(RollbackPlugin::<u8>::manual(RollbackConfig::default()))
        .rollback_component_with_serde::<Pos>();
    let world = app.world_mut();
    let spawn = |world: &mut World, i: i32| {
        let id = world.resource_mut::<RollbackIds>().take();
        world.spawn((id, Pos(i))).id()
    };
    let parent = spawn(world, 0);
    let a = spawn(world, 1);
    let b = spawn(world, 2);
    world.entity_mut(a).insert(ChildOf(parent));
    world.entity_mut(b).insert(ChildOf(parent));
    (app, [parent, a, b])
}

fn requests(app: &mut App, requests: Vec<Request<u8>>) -> Option<Vec<u8>> {
    let mut taker = Taker::default();
    run_requests(app.world_mut(), &mut taker, requests);
    taker.0
}

fn snapshot(app: &mut App) -> Vec<u8> {
    requests(
        app,
        vec![Request::Save { frame: 0 }, Request::Snapshot { frame: 0 }],
    )
    .expect("a snapshot")
}

/// Each rollback entity's id, position and parent's id.
fn state(app: &mut App) -> Vec<(u32, i32, Option<u32>)> {
    let world = app.world_mut();
    let ids: std::collections::HashMap<Entity, u32> = world
        .query::<(Entity, &Rollback)>()
        .iter(world)
        .map(|(e, r)| (e, r.0))
        .collect();
    let mut out: Vec<_> = world
        .query::<(&Rollback, &Pos, Option<&ChildOf>)>()
        .iter(world)
        .map(|(r, p, c)| (r.0, p.0, c.map(|c| ids[&c.0])))
        .collect();
    out.sort();
    out
}

/// Loads `data` as a late joiner would; the refusal it reported, if any.
fn load(app: &mut App, data: Vec<u8>) -> Option<String> {
    requests(
        app,
        vec![Request::LoadSnapshot {
            frame: 0,
            data: Bytes::from(data),
        }],
    );
    app.world_mut()
        .resource_mut::<Messages<SessionEvent>>()
        .drain()
        .find_map(|e| match e.0 {
            RollbackEvent::JoinRefused { reason } => Some(reason),
            _ => None,
        })
}

/// The offset of the entity part's entries: the part count, the part's id
/// and length, the entity count (the entity part comes first).
const ENTRIES: usize = 4 + 8 + 4 + 4;

/// Entity `i` of the snapshot's entity part: (rollback id, bits offset).
fn entry(data: &[u8], i: usize) -> (u32, usize) {
    let at = ENTRIES + i * 12;
    let id = u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
    (id, at + 4)
}

#[test]
fn a_parent_outside_the_snapshot_is_refused_and_the_world_kept() {
    let (mut sender, [parent, ..]) = app();
    let mut data = snapshot(&mut sender);
    // The parent's entity, as the snapshot names it, replaced by one the
    // snapshot does not hold: its children's ChildOf now points outside.
    let parent_bits = parent.to_bits().to_le_bytes();
    let at = (0..3)
        .map(|i| entry(&data, i).1)
        .find(|&at| data[at..at + 8] == parent_bits)
        .expect("the parent in the entity part");
    let stranger = Entity::from_raw_u32(9_999).expect("an entity").to_bits();
    data[at..at + 8].copy_from_slice(&stranger.to_le_bytes());

    let (mut joiner, _) = app();
    joiner.world_mut().spawn((Pos(42), Rollback(77)));
    let before = state(&mut joiner);
    let refused = load(&mut joiner, data).expect("the snapshot is refused");
    assert!(refused.contains("bad entity"), "{refused}");
    assert_eq!(state(&mut joiner), before, "the world is as before");
}

#[test]
fn parents_that_form_a_cycle_are_refused() {
    let (mut sender, [parent, a, _]) = app();
    // The parent's own parent is its child: a cycle (Bevy would not build it
    // locally, a peer can write it).
    let data = snapshot(&mut sender);
    let (mut with_cycle, _) = app();
    {
        let world = with_cycle.world_mut();
        world.entity_mut(parent).insert(ChildOf(a));
    }
    let cyclic = snapshot(&mut with_cycle);
    // Bevy keeps the cycle locally: three entities with a parent.
    assert_eq!(
        state(&mut with_cycle)
            .iter()
            .filter(|s| s.2.is_some())
            .count(),
        3
    );
    let (mut joiner, _) = app();
    let before = state(&mut joiner);
    let refused = load(&mut joiner, cyclic).expect("the snapshot is refused");
    assert!(refused.contains("come back"), "{refused}");
    assert_eq!(state(&mut joiner), before);
    // Without the cycle, the same world loads.
    let (mut joiner, _) = app();
    assert_eq!(load(&mut joiner, data), None);
}

#[test]
fn a_snapshot_with_parents_loads() {
    let (mut sender, _) = app();
    let data = snapshot(&mut sender);
    let expected = state(&mut sender);
    let (mut joiner, _) = app();
    joiner.world_mut().spawn((Pos(42), Rollback(77)));
    assert_eq!(load(&mut joiner, data), None);
    assert_eq!(state(&mut joiner), expected);
}
