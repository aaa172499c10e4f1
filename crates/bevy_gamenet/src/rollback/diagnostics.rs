//! The rollback plugin's Bevy diagnostics: frame rates, the mesh's peers,
//! RTT, loss and bytes per second, desyncs.

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
/// Diagnostic: peers linked on the session's mesh.
pub const PEERS: DiagnosticPath = DiagnosticPath::const_new("gamenet/mesh/peers");
/// Diagnostic: the worst smoothed round-trip time among the peers, in ms.
pub const RTT_MS: DiagnosticPath = DiagnosticPath::const_new("gamenet/mesh/rtt_ms");
/// Diagnostic: the worst heartbeat loss among the peers, in percent.
pub const LOSS_PERCENT: DiagnosticPath = DiagnosticPath::const_new("gamenet/mesh/loss_percent");
/// Diagnostic: bytes per second received from all peers (every layer).
pub const BYTES_IN_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/mesh/bytes_in_per_sec");
/// Diagnostic: bytes per second sent to all peers (every layer).
pub const BYTES_OUT_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/mesh/bytes_out_per_sec");
/// Diagnostic: desyncs detected since the session started.
pub const DESYNCS: DiagnosticPath = DiagnosticPath::const_new("gamenet/rollback/desyncs");

/// Registers the rollback diagnostics.
pub(super) fn register(app: &mut App) {
    for path in [
        FRAMES_PER_SEC,
        RESIMULATED_PER_SEC,
        PEERS,
        RTT_MS,
        LOSS_PERCENT,
        BYTES_IN_PER_SEC,
        BYTES_OUT_PER_SEC,
        DESYNCS,
    ] {
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
    if let Some(net) = socket.net_ref() {
        let mesh = net.mesh();
        let stats: Vec<_> = mesh.peers().filter_map(|p| mesh.stats(p)).collect();
        diagnostics.add_measurement(&PEERS, || stats.len() as f64);
        if let Some(rtt) = stats.iter().filter_map(|s| s.rtt).max() {
            diagnostics.add_measurement(&RTT_MS, || rtt.as_secs_f64() * 1e3);
        }
        diagnostics.add_measurement(&LOSS_PERCENT, || {
            stats
                .iter()
                .map(|s| s.loss as f64 * 100.0)
                .fold(0.0, f64::max)
        });
        diagnostics.add_measurement(&BYTES_IN_PER_SEC, || {
            stats.iter().map(|s| s.bytes_in_per_sec).sum()
        });
        diagnostics.add_measurement(&BYTES_OUT_PER_SEC, || {
            stats.iter().map(|s| s.bytes_out_per_sec).sum()
        });
    }
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
