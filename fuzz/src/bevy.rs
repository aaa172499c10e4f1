//! A Bevy world with rolled-back components and a resource sent to late
//! joiners with serde, and the snapshot requests a rollback session makes of
//! it, carried out with `bevy_gamenet::rollback::run_requests`.

use bevy_app::App;
use bevy_ecs::prelude::*;
use bevy_gamenet::rollback::{
    FrameSession, RollbackApp, RollbackIds, RollbackPlugin, run_requests,
};
use gamenet_core::Bytes;
use gamenet_core::rollback::{Checksum, Frame, Request, RollbackConfig, RollbackError};
use serde::{Deserialize, Serialize};

/// A position.
#[derive(Component, Clone, Copy, Hash, Serialize, Deserialize)]
pub struct Pos(pub i32, pub i32);

/// A name and a list of things.
#[derive(Component, Clone, Hash, Serialize, Deserialize)]
pub struct Bag {
    /// A name.
    pub name: String,
    /// Things.
    pub items: Vec<u16>,
}

/// A rolled-back resource.
#[derive(Resource, Clone, Default, Hash, Serialize, Deserialize)]
pub struct Score(pub u64, pub Option<String>);

/// Takes the snapshots the world hands over; no frames.
#[derive(Default)]
struct Taker {
    snapshot: Option<Vec<u8>>,
}

impl FrameSession<u8> for Taker {
    fn frame_due(&mut self, _: gamenet_core::Instant) -> bool {
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
    fn advance_frame(
        &mut self,
        _: gamenet_core::Instant,
    ) -> Result<Vec<Request<u8>>, RollbackError> {
        Err(RollbackError::NotRunning)
    }
    fn set_checksum(&mut self, _: Frame, _: Checksum) {}
    fn submit_snapshot(&mut self, _: Frame, data: Vec<u8>) {
        self.snapshot = Some(data);
    }
    fn decline_snapshot(&mut self, _: Frame, _: &str) {}
}

/// An app with three rollback entities and the score, saved at frame 0.
pub fn app() -> App {
    let mut app = App::new();
    app.add_plugins(RollbackPlugin::<u8>::manual(RollbackConfig::default()))
        .rollback_component_with_serde::<Pos>()
        .rollback_component_with_serde::<Bag>()
        .rollback_resource_with_serde::<Score>()
        .checksum_component_with_hash::<Pos>();
    app.insert_resource(Score(7, Some("seven".into())));
    let world = app.world_mut();
    for i in 0..3 {
        let id = world.resource_mut::<RollbackIds>().take();
        let mut e = world.spawn((id, Pos(i, -i)));
        if i != 1 {
            e.insert(Bag {
                name: format!("bag {i}"),
                items: vec![i as u16; i as usize],
            });
        }
    }
    requests(&mut app, vec![Request::Save { frame: 0 }]);
    app
}

/// Carries out `requests`; returns the snapshot one of them asked for.
pub fn requests(app: &mut App, requests: Vec<Request<u8>>) -> Option<Vec<u8>> {
    let mut taker = Taker::default();
    run_requests(app.world_mut(), &mut taker, requests);
    taker.snapshot
}

/// The world's late-join snapshot at `frame`, saving it first.
pub fn snapshot(app: &mut App, frame: Frame) -> Vec<u8> {
    requests(
        app,
        vec![Request::Save { frame }, Request::Snapshot { frame }],
    )
    .unwrap_or_else(|| panic!("no snapshot of frame {frame}"))
}

/// Loads a late-join snapshot from a peer at `frame`.
pub fn load(app: &mut App, frame: Frame, data: &[u8]) {
    requests(
        app,
        vec![Request::LoadSnapshot {
            frame,
            data: Bytes::copy_from_slice(data),
        }],
    );
}

/// The rolled-back part of the world, in rollback id order: each entity's
/// id, position and bag, and the score.
pub type State = (
    Vec<(u32, Option<(i32, i32)>, Option<(String, Vec<u16>)>)>,
    Option<(u64, Option<String>)>,
);

/// The rolled-back part of the world (what a snapshot holds, whatever order
/// it lists it in).
pub fn state(app: &mut App) -> State {
    let world = app.world_mut();
    let mut entities: Vec<_> = world
        .query::<(
            &bevy_gamenet::rollback::Rollback,
            Option<&Pos>,
            Option<&Bag>,
        )>()
        .iter(world)
        .map(|(r, p, b)| {
            (
                r.0,
                p.map(|p| (p.0, p.1)),
                b.map(|b| (b.name.clone(), b.items.clone())),
            )
        })
        .collect();
    entities.sort();
    let score = world.get_resource::<Score>().map(|s| (s.0, s.1.clone()));
    (entities, score)
}

/// A valid snapshot of [`app`]'s world, made once.
pub fn valid_snapshot() -> &'static [u8] {
    static VALID: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    VALID.get_or_init(|| snapshot(&mut app(), 0))
}

/// The snapshot bytes a fuzz input stands for, its first byte picking how:
/// the rest of the input as it is; or [`valid_snapshot`] with the rest as
/// `(offset, offset, byte)` triples written into it; or [`valid_snapshot`]
/// cut short at the offset the next two bytes give and the rest appended.
/// `None` for an empty input.
pub fn snapshot_input(data: &[u8]) -> Option<Vec<u8>> {
    let (&mode, rest) = data.split_first()?;
    Some(match mode % 3 {
        0 => rest.to_vec(),
        1 => {
            let mut v = valid_snapshot().to_vec();
            for t in rest.chunks_exact(3) {
                let at = u16::from_le_bytes([t[0], t[1]]) as usize % v.len();
                v[at] = t[2];
            }
            v
        }
        _ => {
            let mut v = valid_snapshot().to_vec();
            if let [a, b, tail @ ..] = rest {
                v.truncate(u16::from_le_bytes([*a, *b]) as usize % (v.len() + 1));
                v.extend_from_slice(tail);
            }
            v
        }
    })
}
