//! Arena, gamenet's example game: 2–4 players push a ball into the other
//! side's goal. Players move under rollback (every peer simulates them, in
//! step); the ball and the score are owned by one peer and replicated, so
//! they carry on with another owner when that peer leaves.
//!
//! This crate is the game's rules as Bevy plugins with no rendering, so the
//! same game runs headless (tests, soak runs) and under a renderer.
//!
//! ```no_run
//! let mut app = arena::headless_app("ws://localhost:3000/arena?next=2", 2, 7);
//! app.run();
//! ```

use std::time::Duration;

use bevy_app::{App, Plugin, ScheduleRunnerPlugin, Update};
use bevy_ecs::prelude::*;
use bevy_gamenet::prelude::*;
use bevy_time::{Time, TimePlugin};
use serde::{Deserialize, Serialize};

#[cfg(feature = "window")]
pub mod lobbies;
#[cfg(feature = "window")]
pub mod window;

#[cfg(all(feature = "window", target_arch = "wasm32"))]
pub mod web;

/// Arena width in pixels.
pub const WIDTH: i32 = 800;
/// Arena height in pixels.
pub const HEIGHT: i32 = 480;
/// A player's square, in pixels.
pub const PLAYER_SIZE: i32 = 32;
/// The ball's radius in pixels.
pub const BALL_RADIUS: f32 = 8.0;
/// The goals: this band of each side wall, in pixels from the top.
pub const GOAL: (f32, f32) = (160.0, 320.0);
/// Most players in a game.
pub const MAX_PLAYERS: usize = 4;

/// Subpixels per pixel of a player's position (rolled-back state is
/// integer, the same on every platform).
const SUB: i32 = 256;
/// A player's speed, in subpixels per frame.
const SPEED: i32 = 4 * SUB;

/// Input bits.
pub mod keys {
    /// Up.
    pub const UP: u8 = 1;
    /// Down.
    pub const DOWN: u8 = 2;
    /// Left.
    pub const LEFT: u8 = 4;
    /// Right.
    pub const RIGHT: u8 = 8;
    /// Dash: a burst of speed, then a cooldown.
    pub const DASH: u8 = 16;
}

/// Frames a dash lasts, at [`DASH_SPEED`].
const DASH_FRAMES: u8 = 10;
/// Frames from the start of a dash until the next one.
const DASH_COOLDOWN: u8 = 45;
/// A dashing player's speed, in subpixels per frame.
const DASH_SPEED: i32 = 3 * SPEED;

/// A player, rolled back: its slot and position in subpixels.
#[derive(Component, Clone, Copy, Hash, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Player {
    /// Its slot (0 to 3); even slots defend the left goal.
    pub slot: u8,
    /// Left edge, in subpixels.
    pub x: i32,
    /// Top edge, in subpixels.
    pub y: i32,
    /// Frames until the player may dash again; it dashes while this is above
    /// `DASH_COOLDOWN - DASH_FRAMES`.
    pub dash: u8,
}

impl Player {
    fn start(slot: usize) -> Self {
        let left = slot.is_multiple_of(2);
        let x = if left { 120 } else { WIDTH - 120 - PLAYER_SIZE };
        let y = HEIGHT / 2 - PLAYER_SIZE / 2 + (slot as i32 / 2) * 80 - 40;
        Self {
            slot: slot as u8,
            x: x * SUB,
            y: y * SUB,
            dash: 0,
        }
    }

    /// Whether the player is dashing.
    pub fn dashing(&self) -> bool {
        self.dash > DASH_COOLDOWN - DASH_FRAMES
    }

    /// Its centre in pixels.
    pub fn centre(&self) -> (f32, f32) {
        let half = PLAYER_SIZE as f32 / 2.0;
        (
            self.x as f32 / SUB as f32 + half,
            self.y as f32 / SUB as f32 + half,
        )
    }
}

/// The ball: replicated, simulated by its owner. Positions to 0.05 px,
/// velocities to 0.25 px/s.
#[derive(Component, Clone, PartialEq, Debug, NetState)]
pub struct Ball {
    /// Centre, in pixels.
    #[net(range = 0.0..WIDTH as f32, bits = 14)]
    pub x: f32,
    /// Centre, in pixels.
    #[net(range = 0.0..HEIGHT as f32, bits = 14)]
    pub y: f32,
    /// Velocity, in pixels per second.
    #[net(range = -1024.0..1024.0, bits = 13, jump)]
    pub vx: f32,
    /// Velocity, in pixels per second.
    #[net(range = -1024.0..1024.0, bits = 13, jump)]
    pub vy: f32,
}

impl Ball {
    fn kick_off(towards_left: bool) -> Self {
        Ball {
            x: WIDTH as f32 / 2.0,
            y: HEIGHT as f32 / 2.0,
            vx: if towards_left { -180.0 } else { 180.0 },
            vy: 60.0,
        }
    }
}

/// Goals scored against each side: replicated with the ball's owner.
#[derive(Component, Clone, Copy, PartialEq, Eq, Debug, Default, NetState)]
pub struct Score {
    /// Goals into the left goal (scored by the right side).
    pub right: u16,
    /// Goals into the right goal (scored by the left side).
    pub left: u16,
}

/// The game's rules: players, the ball and the score. Add it after
/// [`RollbackPlugin`] and [`ReplicationPlugin::over_rollback`].
pub struct ArenaPlugin;

impl Plugin for ArenaPlugin {
    fn build(&self, app: &mut App) {
        app.rollback_component_with_serde::<Player>()
            .checksum_component_with_hash::<Player>()
            .replicate::<Ball>()
            .replicate::<Score>()
            .add_systems(RollbackSchedule, (spawn_players, move_players).chain())
            .add_systems(Update, (kick_off, move_ball).chain().in_set(MoveBall));
    }
}

/// The systems that put the ball on the field and move it.
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct MoveBall;

/// A player's entity exists while its slot is played: the same frame on
/// every peer.
fn spawn_players(
    mut commands: Commands,
    inputs: Res<PlayerInputs<u8>>,
    players: Query<(Entity, &Player)>,
) {
    for (slot, (_, status)) in inputs.0.iter().enumerate() {
        let entity = players
            .iter()
            .find(|(_, p)| p.slot as usize == slot)
            .map(|(e, _)| e);
        match (entity, *status == InputStatus::Disconnected) {
            (None, false) => {
                commands.spawn(Player::start(slot)).add_rollback();
            }
            (Some(e), true) => commands.entity(e).despawn(),
            _ => {}
        }
    }
}

fn move_players(inputs: Res<PlayerInputs<u8>>, mut players: Query<&mut Player>) {
    for mut p in &mut players {
        let Some((input, _)) = inputs.0.get(p.slot as usize) else {
            continue;
        };
        let dx = (input & keys::RIGHT != 0) as i32 - (input & keys::LEFT != 0) as i32;
        let dy = (input & keys::DOWN != 0) as i32 - (input & keys::UP != 0) as i32;
        p.dash = p.dash.saturating_sub(1);
        if input & keys::DASH != 0 && p.dash == 0 && (dx, dy) != (0, 0) {
            p.dash = DASH_COOLDOWN;
        }
        let speed = if p.dashing() { DASH_SPEED } else { SPEED };
        p.x = (p.x + dx * speed).clamp(0, (WIDTH - PLAYER_SIZE) * SUB);
        p.y = (p.y + dy * speed).clamp(0, (HEIGHT - PLAYER_SIZE) * SUB);
    }
}

/// Player 0's peer puts the ball and the score on the field once the game
/// runs; everyone else receives them.
fn kick_off(
    mut commands: Commands,
    socket: Option<Res<RollbackSocket<u8>>>,
    balls: Query<(), With<Ball>>,
    mut done: Local<bool>,
) {
    if *done || !balls.is_empty() {
        return;
    }
    let Some(session) = socket.as_ref().and_then(|s| s.session()) else {
        return;
    };
    if session.is_running() && session.local_slots().contains(&0) {
        commands.spawn((Ball::kick_off(true), Replicated));
        commands.spawn((Score::default(), Replicated));
        *done = true;
    }
}

/// The ball's owner moves it: walls, players and goals.
fn move_ball(
    time: Res<Time>,
    players: Query<&Player>,
    mut balls: Query<&mut Ball, (With<Replicated>, Without<Remote>)>,
    mut scores: Query<&mut Score, (With<Replicated>, Without<Remote>)>,
) {
    let dt = time.delta_secs().min(0.1);
    for mut ball in &mut balls {
        ball.x += ball.vx * dt;
        ball.y += ball.vy * dt;
        if ball.y < BALL_RADIUS || ball.y > HEIGHT as f32 - BALL_RADIUS {
            ball.vy = -ball.vy;
            ball.y = ball.y.clamp(BALL_RADIUS, HEIGHT as f32 - BALL_RADIUS);
        }
        let in_goal = ball.y > GOAL.0 && ball.y < GOAL.1;
        if ball.x < BALL_RADIUS || ball.x > WIDTH as f32 - BALL_RADIUS {
            if in_goal {
                let into_left = ball.x < BALL_RADIUS;
                for mut s in &mut scores {
                    if into_left {
                        s.right += 1;
                    } else {
                        s.left += 1;
                    }
                }
                *ball = Ball::kick_off(!into_left);
                continue;
            }
            ball.vx = -ball.vx;
            ball.x = ball.x.clamp(BALL_RADIUS, WIDTH as f32 - BALL_RADIUS);
        }
        for p in &players {
            let (px, py) = p.centre();
            let (dx, dy) = (ball.x - px, ball.y - py);
            let reach = PLAYER_SIZE as f32 / 2.0 + BALL_RADIUS;
            if dx.abs() < reach && dy.abs() < reach {
                // Pushed out along the shallower side, and bounced off it.
                if reach - dx.abs() < reach - dy.abs() {
                    ball.x = px + reach * dx.signum();
                    ball.vx = ball.vx.abs().max(120.0) * dx.signum();
                } else {
                    ball.y = py + reach * dy.signum();
                    ball.vy = ball.vy.abs().max(120.0) * dy.signum();
                }
            }
        }
    }
}

/// Scripted inputs for headless play: each local player wanders, changing
/// direction every 20 frames, from a seed.
#[derive(Resource, Clone, Copy)]
pub struct Wander(pub u64);

/// Fills the local players' inputs from [`Wander`] (a system for
/// [`ReadInputs`]).
pub fn wander(
    players: Res<LocalPlayers>,
    frame: Res<RollbackFrame>,
    seed: Res<Wander>,
    mut inputs: ResMut<LocalInputs<u8>>,
) {
    for &slot in &players.0 {
        let mut x = (frame.0 as u64 / 20) ^ seed.0.rotate_left(17) ^ (slot as u64) << 48;
        // splitmix64
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        inputs.0.insert(slot, (x & 0x1f) as u8);
    }
}

/// The networking plugins for a game that connects later, once a lobby is
/// chosen (with [`ConnectRollback`]); its slots are the lobby's.
pub fn add_network_later(app: &mut App) {
    let config = RollbackConfig {
        num_players: MAX_PLAYERS,
        ..RollbackConfig::default()
    };
    app.add_plugins(RollbackPlugin::<u8>::manual(config));
    add_replication(app);
}

/// Replication of the ball and the score over the rollback session's mesh.
fn add_replication(app: &mut App) {
    app.add_plugins(ReplicationPlugin::over_rollback::<u8>(
        ReplicationConfig::default(),
    ))
    .insert_resource(ReplicationSettings {
        tick_hz: 60,
        interpolation_delay: Duration::from_millis(50),
        ..ReplicationSettings::default()
    });
}

/// The networking plugins for a game at `url` (`…/room?next=N`) with
/// `players` slots.
pub fn add_network(app: &mut App, url: &str, players: usize, ice: Vec<IceServer>, seed: u64) {
    add_network_with(app, url, players, ice, seed, |mesh| mesh);
}

/// [`add_network`] with the mesh's settings changed by `mesh` (say, a
/// longer disconnect timeout).
pub fn add_network_with(
    app: &mut App,
    url: &str,
    players: usize,
    ice: Vec<IceServer>,
    seed: u64,
    mesh: impl FnOnce(PeerMeshBuilder) -> PeerMeshBuilder,
) {
    let players = players.clamp(2, MAX_PLAYERS);
    let start = RollbackStart::Players(players);
    add_network_as(app, url, players, start, ice, seed, mesh);
}

/// [`add_network_with`] for a game of `slots` player slots that this peer
/// enters as `start` says: starting it with others (open slots wait for late
/// joiners) or joining it while it runs (a late joiner, or a player back with
/// its `seed` as its key after its process was restarted).
pub fn add_network_as(
    app: &mut App,
    url: &str,
    slots: usize,
    start: RollbackStart,
    ice: Vec<IceServer>,
    seed: u64,
    mesh: impl FnOnce(PeerMeshBuilder) -> PeerMeshBuilder,
) {
    let config = RollbackConfig {
        num_players: slots.clamp(2, MAX_PLAYERS),
        ..RollbackConfig::default()
    };
    let builder = mesh(
        PeerMesh::builder(url)
            .app_id("gamenet-arena")
            .ice_servers(ice),
    );
    app.add_plugins(RollbackPlugin::<u8>::connect(config, builder, start, seed));
    add_replication(app);
}

/// A windowless game at `url` with scripted inputs from `seed`, updating
/// at 60 Hz when run; [`App::update`] steps it by hand.
pub fn headless_app(url: &str, players: usize, seed: u64) -> App {
    headless_app_with(url, players, seed, |mesh| mesh)
}

/// [`headless_app`] with the mesh's settings changed by `mesh`.
pub fn headless_app_with(
    url: &str,
    players: usize,
    seed: u64,
    mesh: impl FnOnce(PeerMeshBuilder) -> PeerMeshBuilder,
) -> App {
    let players = players.clamp(2, MAX_PLAYERS);
    headless_app_as(url, players, RollbackStart::Players(players), seed, mesh)
}

/// A windowless game of `slots` player slots entered as `start` says (see
/// [`add_network_as`]), otherwise as [`headless_app_with`].
pub fn headless_app_as(
    url: &str,
    slots: usize,
    start: RollbackStart,
    seed: u64,
    mesh: impl FnOnce(PeerMeshBuilder) -> PeerMeshBuilder,
) -> App {
    let mut app = App::new();
    app.add_plugins((
        TimePlugin,
        ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(1.0 / 60.0)),
    ));
    add_network_as(&mut app, url, slots, start, Vec::new(), seed, mesh);
    app.add_plugins(ArenaPlugin)
        .insert_resource(Wander(seed))
        .add_systems(ReadInputs, wander);
    app.finish();
    app.cleanup();
    app
}

/// The confirmed frame and the checksum of the rolled-back state there, at
/// the newest confirmed frame that has one.
pub fn confirmed_checksum(world: &World) -> Option<(Frame, u64)> {
    confirmed_checksums_after(world, None).pop()
}

/// Every confirmed frame after `after` that has a checksum of the rolled-back
/// state, oldest first, with that checksum; frames older than the session's
/// checksum memory (its newest 64 checksums, one every 16 frames by default)
/// are not looked for. A reader that polls now and then misses none, however
/// far the confirmed frame moved in between.
pub fn confirmed_checksums_after(world: &World, after: Option<Frame>) -> Vec<(Frame, u64)> {
    /// Frames looked back at most: 64 checksums at the default interval.
    const LOOK_BACK: Frame = 64 * 16;
    let Some(session) = world
        .get_resource::<RollbackSocket<u8>>()
        .and_then(|socket| socket.session())
    else {
        return Vec::new();
    };
    let confirmed = session.confirmed_frame();
    let first = after
        .map_or(0, |f| f.saturating_add(1))
        .max(confirmed.saturating_sub(LOOK_BACK));
    (first..=confirmed)
        .filter_map(|f| session.confirmed_checksum(f).map(|c| (f, c.total)))
        .collect()
}
