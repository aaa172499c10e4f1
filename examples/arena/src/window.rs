//! The game in a window (native) or a canvas (web): the field, players as
//! coloured squares, the ball, the score, and a lobby line until the game
//! starts. Arrow keys or WASD move your player.

use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_gamenet::rollback::{LocalInputs, LocalPlayers, ReadInputs, RollbackSocket};
use gamenet::IceServer;

use crate::{
    ArenaPlugin, BALL_RADIUS, Ball, GOAL, HEIGHT, PLAYER_SIZE, Player, Score, WIDTH, keys,
};

/// Room and size of the game, for the lobby line.
#[derive(Resource, Debug, Clone)]
pub struct Lobby {
    /// The room's name.
    pub room: String,
    /// Players the game waits for.
    pub players: usize,
}

/// Space around the field, in pixels.
const MARGIN: f32 = 40.0;

/// A game in a window at `url`, in `room`, for `players`.
pub fn window_app(url: &str, room: &str, players: usize, ice: IceServer, seed: u64) -> App {
    let mut app = App::new();
    app.add_plugins(
        DefaultPlugins
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: format!("gamenet arena: {room}"),
                    resolution: (
                        (WIDTH as f32 + 2.0 * MARGIN) as u32,
                        (HEIGHT as f32 + 2.0 * MARGIN) as u32,
                    )
                        .into(),
                    canvas: Some("#arena".into()),
                    fit_canvas_to_parent: true,
                    ..default()
                }),
                ..default()
            })
            .set(LogPlugin {
                filter: "warn,rtc_ice=error,rtc_dtls=error,matchbox_socket=error".into(),
                ..default()
            }),
    );
    crate::add_network(&mut app, url, players, ice, seed);
    app.add_plugins(ArenaPlugin)
        .insert_resource(ClearColor(Color::srgb(0.06, 0.07, 0.09)))
        .insert_resource(Lobby {
            room: room.into(),
            players,
        })
        .add_systems(ReadInputs, keyboard)
        .add_systems(Startup, setup)
        .add_systems(
            Update,
            (show_players, show_ball, show_status).after(crate::MoveBall),
        );
    app
}

/// Where a field point (pixels from the top left) is in the world.
fn world(x: f32, y: f32) -> Vec2 {
    Vec2::new(x - WIDTH as f32 / 2.0, HEIGHT as f32 / 2.0 - y)
}

fn colour(slot: u8) -> Color {
    match slot {
        0 => Color::srgb(0.25, 0.55, 1.0),
        1 => Color::srgb(1.0, 0.35, 0.3),
        2 => Color::srgb(0.3, 0.9, 0.85),
        _ => Color::srgb(1.0, 0.7, 0.25),
    }
}

/// The status line at the top.
#[derive(Component)]
struct Status;

fn setup(mut commands: Commands) {
    commands.spawn(Camera2d);
    // The field, its half-way line and the two goals.
    commands.spawn((
        Sprite::from_color(
            Color::srgb(0.12, 0.16, 0.14),
            Vec2::new(WIDTH as f32, HEIGHT as f32),
        ),
        Transform::from_xyz(0.0, 0.0, 0.0),
    ));
    commands.spawn((
        Sprite::from_color(Color::srgb(0.22, 0.27, 0.24), Vec2::new(2.0, HEIGHT as f32)),
        Transform::from_xyz(0.0, 0.0, 0.1),
    ));
    let goal = Vec2::new(6.0, GOAL.1 - GOAL.0);
    let mid = (GOAL.0 + GOAL.1) / 2.0;
    for (x, slot) in [(0.0, 0), (WIDTH as f32, 1)] {
        commands.spawn((
            Sprite::from_color(colour(slot), goal),
            Transform::from_translation(world(x, mid).extend(0.2)),
        ));
    }
    commands.spawn((
        Status,
        Text::new(""),
        TextFont {
            font_size: FontSize::Px(18.0),
            ..default()
        },
        Node {
            position_type: PositionType::Absolute,
            top: Val::Px(10.0),
            left: Val::Px(12.0),
            ..default()
        },
    ));
}

/// Arrow keys or WASD, for every local player.
fn keyboard(
    input: Res<ButtonInput<KeyCode>>,
    players: Res<LocalPlayers>,
    mut inputs: ResMut<LocalInputs<u8>>,
) {
    let held = |a: KeyCode, b: KeyCode| input.pressed(a) || input.pressed(b);
    let mut bits = 0;
    if held(KeyCode::ArrowUp, KeyCode::KeyW) {
        bits |= keys::UP;
    }
    if held(KeyCode::ArrowDown, KeyCode::KeyS) {
        bits |= keys::DOWN;
    }
    if held(KeyCode::ArrowLeft, KeyCode::KeyA) {
        bits |= keys::LEFT;
    }
    if held(KeyCode::ArrowRight, KeyCode::KeyD) {
        bits |= keys::RIGHT;
    }
    for &slot in &players.0 {
        inputs.0.insert(slot, bits);
    }
}

/// Players get a square and follow their rolled-back position.
fn show_players(
    mut commands: Commands,
    mut players: Query<(Entity, &Player, Option<&mut Transform>)>,
) {
    for (entity, p, transform) in &mut players {
        let (x, y) = p.centre();
        let at = world(x, y).extend(1.0);
        match transform {
            Some(mut t) => t.translation = at,
            None => {
                commands.entity(entity).insert((
                    Sprite::from_color(colour(p.slot), Vec2::splat(PLAYER_SIZE as f32)),
                    Transform::from_translation(at),
                ));
            }
        }
    }
}

fn show_ball(mut commands: Commands, mut balls: Query<(Entity, &Ball, Option<&mut Transform>)>) {
    for (entity, b, transform) in &mut balls {
        let at = world(b.x, b.y).extend(2.0);
        match transform {
            Some(mut t) => t.translation = at,
            None => {
                commands.entity(entity).insert((
                    Sprite::from_color(Color::WHITE, Vec2::splat(BALL_RADIUS * 2.0)),
                    Transform::from_translation(at),
                ));
            }
        }
    }
}

/// The lobby line until the game runs, then the score and who you are.
fn show_status(
    lobby: Res<Lobby>,
    socket: Option<ResMut<RollbackSocket<u8>>>,
    scores: Query<&Score>,
    mut status: Query<&mut Text, With<Status>>,
) {
    let Ok(mut text) = status.single_mut() else {
        return;
    };
    let Some(mut socket) = socket else {
        return;
    };
    let linked = socket
        .net_mut()
        .map(|n| n.mesh().peers().count() + 1)
        .unwrap_or(1);
    let running = socket.session().is_some_and(|s| s.is_running());
    let line = if !running {
        format!(
            "Room \"{}\": {linked} of {} players connected. Share the room name to play.",
            lobby.room, lobby.players
        )
    } else {
        let me = socket
            .session()
            .and_then(|s| s.local_slots().first().copied())
            .map(|s| {
                let side = if s % 2 == 0 { "left" } else { "right" };
                format!("You are player {} ({side})", s + 1)
            })
            .unwrap_or_else(|| "Watching".into());
        let score = scores
            .iter()
            .next()
            .map(|s| format!("{} : {}", s.left, s.right))
            .unwrap_or_else(|| "- : -".into());
        format!("{me}   |   left {score} right   |   {linked} players connected")
    };
    if text.0 != line {
        text.0 = line;
    }
}
