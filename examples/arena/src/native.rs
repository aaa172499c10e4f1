//! The native game: flags, and a window or a headless player.

use std::time::{Duration, Instant};

use bevy_app::{App, AppExit, Update};
use bevy_ecs::prelude::*;
use clap::Parser;
use gamenet::IceServer;

use arena::{Ball, Score};

/// Play Arena over a gamenet signaling server.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The signaling server.
    #[arg(long, env = "ARENA_SERVER", default_value = "ws://localhost:3000")]
    server: String,
    /// The room to play in (players of the same room play each other).
    #[arg(long, env = "ARENA_ROOM", default_value = "arena")]
    room: String,
    /// Players in a game (2 to 4).
    #[arg(long, default_value_t = 2)]
    players: usize,
    /// A STUN server (`stun:host:port`) for peers behind NAT; none by default.
    #[arg(long, env = "ARENA_STUN")]
    stun: Option<String>,
    /// Seed of the scripted inputs.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Stop once this frame is confirmed, printing its checksum (headless).
    #[arg(long)]
    frames: Option<u32>,
    /// No window: scripted inputs and status lines.
    #[arg(long)]
    headless: bool,
}

/// When to stop, and when the last status line went out.
#[derive(Resource)]
struct Report {
    stop_at: Option<u32>,
    last: Instant,
}

fn report(world: &mut World) {
    let Some((frame, checksum)) = arena::confirmed_checksum(world) else {
        return;
    };
    let (stop_at, due) = {
        let r = world.resource::<Report>();
        (r.stop_at, r.last.elapsed() >= Duration::from_secs(1))
    };
    let done = stop_at.is_some_and(|n| frame >= n);
    if !due && !done {
        return;
    }
    world.resource_mut::<Report>().last = Instant::now();
    let ball = world
        .query::<&Ball>()
        .iter(world)
        .next()
        .map(|b| format!("({:.0}, {:.0})", b.x, b.y))
        .unwrap_or_else(|| "-".into());
    let score = world
        .query::<&Score>()
        .iter(world)
        .next()
        .map(|s| format!("{}:{}", s.left, s.right))
        .unwrap_or_else(|| "-".into());
    println!("frame {frame} checksum {checksum:#018x} ball {ball} score {score}");
    if done {
        world.write_message(AppExit::Success);
    }
}

pub fn main() -> AppExit {
    let args = Args::parse();
    let players = args.players.clamp(2, arena::MAX_PLAYERS);
    let url = format!(
        "{}/{}?next={players}",
        args.server.trim_end_matches('/'),
        args.room
    );
    let ice: Vec<IceServer> = args.stun.iter().map(IceServer::stun).collect();
    println!("arena: {url}");
    if args.headless {
        headless(&args, &url, players, ice)
    } else {
        windowed(&args, &url, players, ice)
    }
}

#[cfg(feature = "window")]
fn windowed(args: &Args, url: &str, players: usize, ice: Vec<IceServer>) -> AppExit {
    let lobby = arena::window::Lobby {
        room: args.room.clone(),
        players,
        invite: format!("cargo run -p arena -- --room {}", args.room),
    };
    let join = arena::window::Join::Room {
        url: url.to_owned(),
        ice,
    };
    arena::window::window_app(join, lobby, args.seed).run()
}

#[cfg(not(feature = "window"))]
fn windowed(_: &Args, _: &str, _: usize, _: Vec<IceServer>) -> AppExit {
    eprintln!("arena was built without its window (feature `window`): pass --headless");
    AppExit::error()
}

fn headless(args: &Args, url: &str, players: usize, ice: Vec<IceServer>) -> AppExit {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                "warn,rtc_ice=error,rtc_dtls=error,matchbox_socket=error".into()
            }),
        )
        .init();
    let mut app = App::new();
    app.add_plugins((
        bevy_time::TimePlugin,
        bevy_app::ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(1.0 / 60.0)),
    ));
    arena::add_network(&mut app, url, players, ice, args.seed);
    app.add_plugins(arena::ArenaPlugin)
        .insert_resource(arena::Wander(args.seed))
        .add_systems(bevy_gamenet::rollback::ReadInputs, arena::wander)
        .insert_resource(Report {
            stop_at: args.frames,
            last: Instant::now(),
        })
        .add_systems(Update, report);
    app.run()
}
