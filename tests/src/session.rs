//! What a headless rollback game's session says: its confirmed frame and
//! the checksums of confirmed frames (games of `u8` inputs, as the arena's),
//! its peer id; and stepping several games at once.

use std::time::Duration;

use bevy_app::App;
use bevy_gamenet::rollback::RollbackSocket;
use gamenet::PeerId;
use gamenet::rollback::Frame;

use crate::faults::{ReportedGame, Timeline};

/// The checksum of the rolled-back state at confirmed `frame`, once the
/// app's session has one (every 16th frame by default, kept for a while).
pub fn confirmed_checksum(app: &App, frame: Frame) -> Option<u64> {
    app.world()
        .resource::<RollbackSocket<u8>>()
        .session()?
        .confirmed_checksum(frame)
        .map(|c| c.total)
}

/// The app's confirmed frame (frames before it have every input known); 0
/// before its session starts.
pub fn confirmed_frame(app: &App) -> Frame {
    app.world()
        .resource::<RollbackSocket<u8>>()
        .session()
        .map_or(0, |s| s.confirmed_frame())
}

/// Steps the games present, records them (and what `reported` printed, as
/// the game at index 1) and waits a little.
pub fn step_games(
    apps: &mut [Option<App>],
    timeline: &mut Timeline,
    reported: Option<&ReportedGame>,
) {
    for app in apps.iter_mut().flatten() {
        app.update();
    }
    timeline.record_partly(&apps.iter().map(Option::as_ref).collect::<Vec<_>>());
    if let Some(game) = reported {
        game.feed(timeline, 1);
    }
    std::thread::sleep(Duration::from_millis(4));
}

/// The mesh's peer id of a game.
pub fn mesh_id(app: &mut App) -> Option<PeerId> {
    app.world_mut()
        .get_resource_mut::<RollbackSocket<u8>>()?
        .net_mut()?
        .mesh_mut()
        .id()
}
