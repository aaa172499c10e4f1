//! The rollback plugin's Bevy diagnostics: frame rates and desyncs (the
//! mesh's are [`crate::diagnostics`]'s).

use std::time::Duration;

use bevy_app::App;
use bevy_diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy_ecs::prelude::*;
use gamenet::Instant;
use gamenet::rollback::{Frame, Input, RollbackEvent};

use super::{RollbackSocket, SessionEvent};
use crate::NetClock;

/// Diagnostic: frames simulated per second, not counting re-simulation.
pub const FRAMES_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/rollback/frames_per_sec");
/// Diagnostic: frames re-simulated per second by rollbacks.
pub const RESIMULATED_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/rollback/resimulated_per_sec");
/// Diagnostic: desyncs detected since the session started.
pub const DESYNCS: DiagnosticPath = DiagnosticPath::const_new("gamenet/rollback/desyncs");

/// Registers the rollback diagnostics.
pub(super) fn register(app: &mut App) {
    for path in [FRAMES_PER_SEC, RESIMULATED_PER_SEC, DESYNCS] {
        app.register_diagnostic(Diagnostic::new(path));
    }
}

/// What the last rate measurement started from.
#[derive(Default)]
pub(super) struct RateMark {
    /// When; none before the first measurement.
    at: Option<Instant>,
    /// The session's frame then.
    frame: Frame,
    /// Frames re-simulated by then.
    resimulated: u64,
    /// Desyncs detected since the session started.
    desyncs: u64,
}

/// How often rates are measured.
const RATE_PERIOD: Duration = Duration::from_millis(250);

/// Measures the session and its mesh.
pub(super) fn measure<I: Input>(
    clock: Res<NetClock>,
    socket: Option<Res<RollbackSocket<I>>>,
    mut events: MessageReader<SessionEvent>,
    mut mark: Local<RateMark>,
    mut diagnostics: Diagnostics,
) {
    let desyncs = events
        .read()
        .filter(|e| matches!(e.0, RollbackEvent::DesyncDetected { .. }))
        .count() as u64;
    mark.desyncs += desyncs;
    let Some(socket) = socket else {
        return;
    };
    let total_desyncs = mark.desyncs;
    diagnostics.add_measurement(&DESYNCS, || total_desyncs as f64);
    let Some(stats) = socket.stats() else {
        return;
    };
    let now = clock.now();
    match mark.at {
        Some(at) if now.duration_since(at) < RATE_PERIOD => {}
        Some(at) => {
            let secs = now.duration_since(at).as_secs_f64();
            let frames = stats.frame.saturating_sub(mark.frame) as f64 / secs;
            let resimulated =
                stats.resimulated_frames.saturating_sub(mark.resimulated) as f64 / secs;
            diagnostics.add_measurement(&FRAMES_PER_SEC, || frames);
            diagnostics.add_measurement(&RESIMULATED_PER_SEC, || resimulated);
            (mark.at, mark.frame, mark.resimulated) =
                (Some(now), stats.frame, stats.resimulated_frames);
        }
        None => {
            (mark.at, mark.frame, mark.resimulated) =
                (Some(now), stats.frame, stats.resimulated_frames);
        }
    }
}
