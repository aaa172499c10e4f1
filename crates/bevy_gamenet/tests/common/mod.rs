//! A rollback game as a Bevy app on a [`MemoryTransport`]: one entity per
//! player whose position mixes every input it was given, so any divergence
//! shows in its checksum; the app records the session's events and the peers
//! that left. And [`Ball`], a replicated object.
#![allow(dead_code)]

use std::time::Duration;

use bevy_app::{App, Startup, Update};
use bevy_ecs::prelude::*;
use bevy_gamenet::PeerLeft;
use bevy_gamenet::replication::NetState;
use bevy_gamenet::rollback::{
    AddRollback, LocalInputs, LocalPlayers, PlayerInputs, ReadInputs, RollbackApp, RollbackFrame,
    RollbackPlugin, RollbackSchedule, RollbackSocket, SessionEvent,
};
use gamenet::rollback::{
    Checksum, Frame, RollbackConfig, RollbackEvent, RollbackStart, RollbackStats,
};
use gamenet::{ConditionerConfig, MemoryTransport, PeerId};

/// A lossy link: 30 ms one way, 10 ms of jitter, 8 % of unreliable packets
/// lost and 2 % duplicated.
pub fn bad_link(seed: u64) -> ConditionerConfig {
    ConditionerConfig {
        latency: Duration::from_millis(30),
        jitter: Duration::from_millis(10),
        loss: 0.08,
        duplicate: 0.02,
        seed,
    }
}

/// A player's position: every input it got, mixed.
#[derive(
    Component, Clone, Copy, Hash, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct Pos(pub i64);

/// The slot a player entity plays.
#[derive(
    Component, Clone, Copy, Hash, PartialEq, Eq, Debug, serde::Serialize, serde::Deserialize,
)]
pub struct Slot(pub usize);

/// A replicated object: two 16-bit fields.
#[derive(Component, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Ball {
    /// First field.
    pub x: u32,
    /// Second field.
    pub y: u32,
}

impl NetState for Ball {
    const WIDTHS: &'static [u8] = &[16, 16];
    fn to_fields(&self) -> Vec<u32> {
        vec![self.x, self.y]
    }
    fn from_fields(f: &[u32]) -> Self {
        Ball { x: f[0], y: f[1] }
    }
}

/// What an app saw: the session's events and the peers that left.
#[derive(Resource, Default, Debug)]
pub struct Seen {
    /// The rollback session's events, in order.
    pub events: Vec<RollbackEvent>,
    /// The peers the mesh reported gone.
    pub left: Vec<PeerLeft>,
}

/// A game of `players` players starting once all are connected.
pub fn rollback_app(transport: MemoryTransport, players: usize) -> App {
    let key = transport.id().0 as u64;
    let config = RollbackConfig {
        num_players: players,
        fps: 60,
        ..RollbackConfig::default()
    };
    let mut app = App::new();
    app.add_plugins(RollbackPlugin::<u8>::memory(
        config,
        transport,
        RollbackStart::Players(players),
        key,
    ))
    .rollback_component_with_serde::<Pos>()
    .checksum_component_with_hash::<Pos>()
    .rollback_component_with_serde::<Slot>()
    .init_resource::<Seen>()
    .add_systems(Startup, move |mut commands: Commands| {
        for slot in 0..players {
            commands.spawn((Slot(slot), Pos(0))).add_rollback();
        }
    })
    .add_systems(ReadInputs, read_inputs)
    .add_systems(RollbackSchedule, move_players)
    .add_systems(Update, record);
    app
}

/// Each local player's input, changing every few frames.
fn read_inputs(
    players: Res<LocalPlayers>,
    frame: Res<RollbackFrame>,
    mut inputs: ResMut<LocalInputs<u8>>,
) {
    for &slot in &players.0 {
        let h = (u64::from(frame.0 / 4) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ slot as u64;
        inputs.0.insert(slot, (h >> 59) as u8);
    }
}

/// Mixes each player's input into its position.
fn move_players(inputs: Res<PlayerInputs<u8>>, mut q: Query<(&Slot, &mut Pos)>) {
    for (slot, mut pos) in &mut q {
        let input = i64::from(inputs.0[slot.0].0);
        pos.0 = pos.0.wrapping_mul(31).wrapping_add(input + 1);
    }
}

/// Keeps the session's events and the peers that left.
fn record(
    mut events: MessageReader<SessionEvent>,
    mut left: MessageReader<PeerLeft>,
    mut seen: ResMut<Seen>,
) {
    seen.events.extend(events.read().map(|e| e.0.clone()));
    seen.left.extend(left.read().cloned());
}

/// The app's session counters, once it started.
pub fn stats(app: &App) -> Option<RollbackStats> {
    app.world().resource::<RollbackSocket<u8>>().stats()
}

/// The app's confirmed checksum of `frame`, once known.
pub fn confirmed(app: &App, frame: Frame) -> Option<Checksum> {
    let socket = app.world().resource::<RollbackSocket<u8>>();
    socket.session()?.confirmed_checksum(frame).cloned()
}

/// What the app saw.
pub fn seen(app: &App) -> &Seen {
    app.world().resource::<Seen>()
}

/// Panics if the app saw a desync.
pub fn assert_no_desync(app: &App, id: PeerId) {
    let desyncs: Vec<_> = seen(app)
        .events
        .iter()
        .filter(|e| matches!(e, RollbackEvent::DesyncDetected { .. }))
        .collect();
    assert!(desyncs.is_empty(), "{id}: {desyncs:?}");
}
