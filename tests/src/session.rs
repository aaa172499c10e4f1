//! What a headless rollback game's session says: its confirmed frame and
//! the checksums of confirmed frames (games of `u8` inputs, as the arena's).

use bevy_app::App;
use bevy_gamenet::rollback::RollbackSocket;
use gamenet::rollback::Frame;

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
