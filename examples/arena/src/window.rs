//! The game in a window (native) or a canvas (web): the field, players as
//! coloured squares, the ball and the score; a lobby screen until the game
//! starts (the room, who is connected, how to invite); bevy_gamenet's
//! network overlay on F3. Arrow keys or WASD move your player,
//! Space (or left Shift) dashes.

use bevy::camera::ScalingMode;
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy::render::view::{Msaa, Tonemapping};
use bevy_gamenet::GamenetSet;
use bevy_gamenet::overlay::NetworkOverlayPlugin;
use bevy_gamenet::rollback::{LocalInputs, LocalPlayers, ReadInputs, RollbackSocket};
use gamenet::IceServer;

use crate::{
    ArenaPlugin, BALL_RADIUS, Ball, GOAL, HEIGHT, PLAYER_SIZE, Player, Score, WIDTH, keys,
};

pub use crate::lobbies::Lobby;

/// How the game finds its players.
pub enum Join {
    /// The room at `url` (`…/room?next=N`), with these ICE servers.
    Room {
        /// The room's WebSocket URL.
        url: String,
        /// ICE servers.
        ice: Vec<IceServer>,
    },
    /// A lobby of the server at `server`, chosen as `choice` says; the
    /// invitation is `invite_base` and the lobby's code.
    Lobby {
        /// The signaling server (`ws://host:port`).
        server: String,
        /// Create, join by code, or pick from the list.
        choice: crate::lobbies::LobbyChoice,
        /// The invitation link without its code.
        invite_base: String,
    },
}

/// The key that shows and hides the network overlay.
pub const OVERLAY_KEY: KeyCode = KeyCode::F3;

/// Space around the field, in pixels.
const MARGIN: f32 = 40.0;

/// A game in a window (or the canvas `#arena` on the web) that joins as
/// `join` says, waiting in the lobby described by `lobby`.
pub fn window_app(join: Join, lobby: Lobby, seed: u64) -> App {
    let (room, players) = (lobby.room.clone(), lobby.players);
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
    match join {
        Join::Room { url, ice } => crate::add_network(&mut app, &url, players, ice, seed),
        Join::Lobby {
            server,
            choice,
            invite_base,
        } => {
            crate::add_network_later(&mut app);
            crate::lobbies::add_lobbies(&mut app, &server, choice, invite_base, seed);
        }
    }
    app.add_plugins((
        ArenaPlugin,
        NetworkOverlayPlugin {
            key: OVERLAY_KEY,
            ..default()
        },
    ))
    .insert_resource(ClearColor(Color::srgb(0.06, 0.07, 0.09)))
    .insert_resource(lobby)
    // Keys pressed since the last frame count in this one's inputs.
    .configure_sets(
        PreUpdate,
        GamenetSet::ReceivePackets.after(bevy::input::InputSystems),
    )
    .add_systems(ReadInputs, keyboard)
    .add_systems(Startup, setup)
    .add_systems(
        Update,
        (show_players, show_ball, show_status, show_lobby).after(crate::MoveBall),
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
    // Flat colours and axis-aligned squares: no multisampling or tone mapping
    // to pay for (a software-rendered browser tab draws several times faster).
    // The whole field and its margin in view, whatever the window's size
    // (a 640x420 tab shows all of it, smaller).
    commands.spawn((
        Camera2d,
        Msaa::Off,
        Tonemapping::None,
        Projection::Orthographic(OrthographicProjection {
            scaling_mode: ScalingMode::AutoMin {
                min_width: WIDTH as f32 + 2.0 * MARGIN,
                min_height: HEIGHT as f32 + 2.0 * MARGIN,
            },
            ..OrthographicProjection::default_2d()
        }),
    ));
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
            font_size: FontSize::Px(16.0),
            ..default()
        },
        Node {
            position_type: PositionType::Absolute,
            top: Val::Px(10.0),
            left: Val::Px(12.0),
            ..default()
        },
    ));
    // The lobby screen, over everything until the game starts.
    commands
        .spawn((
            LobbyScreen,
            Node {
                position_type: PositionType::Absolute,
                width: Val::Percent(100.0),
                height: Val::Percent(100.0),
                justify_content: JustifyContent::Center,
                align_items: AlignItems::Center,
                ..default()
            },
            BackgroundColor(Color::srgba(0.03, 0.04, 0.05, 0.9)),
            GlobalZIndex(10),
        ))
        .with_children(|screen| {
            screen.spawn((
                LobbyText,
                Text::new(""),
                TextFont {
                    font_size: FontSize::Px(22.0),
                    ..default()
                },
                TextLayout::justify(Justify::Center),
            ));
        });
}

/// The lobby screen and its text.
#[derive(Component)]
struct LobbyScreen;

#[derive(Component)]
struct LobbyText;

/// Whether the game runs (every player is in).
fn running(socket: &RollbackSocket<u8>) -> bool {
    socket.session().is_some_and(|s| s.is_running())
}

/// Peer ids, shortened for people.
fn short(peer: gamenet::PeerId) -> String {
    format!("{:08x}", (peer.0 >> 96) as u32)
}

fn show_lobby(
    lobby: Res<Lobby>,
    flow: Option<Res<crate::lobbies::LobbyFlow>>,
    socket: Option<ResMut<RollbackSocket<u8>>>,
    mut screen: Query<&mut Visibility, With<LobbyScreen>>,
    mut text: Query<&mut Text, With<LobbyText>>,
) {
    let (Ok(mut visibility), Ok(mut text)) = (screen.single_mut(), text.single_mut()) else {
        return;
    };
    let Some(mut socket) = socket else {
        // No game chosen yet: the lobby choice.
        if let Some(flow) = flow {
            let new = crate::lobbies::lines(&flow).join("\n");
            if text.0 != new {
                text.0 = new;
            }
        }
        return;
    };
    let shown = if running(&socket) {
        Visibility::Hidden
    } else {
        Visibility::Inherited
    };
    visibility.set_if_neq(shown);
    if shown == Visibility::Hidden {
        return;
    }
    let mut lines = vec![
        "gamenet arena".to_owned(),
        String::new(),
        match &flow.and_then(|f| f.joined.clone()) {
            Some(joined) => format!("Lobby \"{}\", code {}", joined.name, joined.code),
            None => format!("Room {}", lobby.room),
        },
    ];
    match socket.net_mut() {
        Some(net) => {
            let mesh = net.mesh();
            let me = mesh.id();
            let peers: Vec<_> = mesh.peers().collect();
            lines.push(format!(
                "{} of {} players connected",
                peers.len() + 1,
                lobby.players
            ));
            lines.push(match me {
                Some(me) => format!("you: {}", short(me)),
                None => "reaching the server...".to_owned(),
            });
            for peer in peers {
                let rtt = mesh
                    .stats(peer)
                    .and_then(|s| s.rtt)
                    .map(|r| format!(" ({} ms)", r.as_millis()))
                    .unwrap_or_default();
                lines.push(format!("{}{rtt}", short(peer)));
            }
            if mesh.is_closed() {
                lines.push("The connection to the server was lost.".to_owned());
            }
        }
        None => lines.push("playing locally".to_owned()),
    }
    lines.push(String::new());
    lines.push("Invite a friend:".to_owned());
    lines.push(lobby.invite.clone());
    lines.push(String::new());
    lines.push("Arrow keys or WASD move, Space dashes. F3: network overlay.".to_owned());
    let new = lines.join("\n");
    if text.0 != new {
        text.0 = new;
    }
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
    if held(KeyCode::Space, KeyCode::ShiftLeft) {
        bits |= keys::DASH;
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
        // A dashing player looks bigger.
        let scale = Vec3::splat(if p.dashing() { 1.25 } else { 1.0 });
        match transform {
            Some(mut t) => {
                t.translation = at;
                t.scale = scale;
            }
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

/// What the game waits for, if anything: players not heard from lately (it
/// stalls until they are back), the other side of a split, or the host's
/// snapshot after one.
pub(crate) fn waiting_for(session: &gamenet::rollback::RollbackSession<u8>) -> String {
    if session.is_cut_off() {
        return "Cut off from the other players: waiting for them to come back".into();
    }
    if session.is_joining() {
        return "Joining the game (loading the host's state)...".into();
    }
    let players: Vec<String> = session
        .interrupted()
        .filter_map(|peer| {
            (0..session.config().num_players)
                .find(|&s| session.slot_peer(s) == Some(peer))
                .map(|s| format!("player {}", s + 1))
        })
        .collect();
    if players.is_empty() {
        String::new()
    } else {
        format!("Waiting for {}...", players.join(", "))
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
    let waiting = socket.session().map(waiting_for).unwrap_or_default();
    let line = if !waiting.is_empty() {
        waiting
    } else if !running(&socket) {
        format!(
            "Room {}: {linked} of {} players connected",
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
        format!("{me}   |   left {score} right   |   {linked} players connected   |   F3: network")
    };
    if text.0 != line {
        text.0 = line;
    }
}
