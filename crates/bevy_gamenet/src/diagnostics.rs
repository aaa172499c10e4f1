//! The mesh's Bevy diagnostics, measured in every mode (the mesh plugin,
//! rollback, replication on a mesh of its own): peers, worst RTT and loss,
//! bytes per second in and out. Rollback and replication add their own
//! (`rollback::FRAMES_PER_SEC` and the like, `replication::BYTES_PER_SEC`).
//! Read them from Bevy's `DiagnosticsStore`, or show them with the
//! network overlay (feature `overlay`).

use bevy_app::{App, PostUpdate};
use bevy_diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy_ecs::prelude::*;

use crate::GamenetSet;
use crate::conditions::OnPeerMesh;

/// Diagnostic: peers linked on the mesh.
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

/// Registers the mesh diagnostics and measures the mesh of `S`.
pub(crate) fn measure_mesh<S: OnPeerMesh>(app: &mut App) {
    for path in [
        PEERS,
        RTT_MS,
        LOSS_PERCENT,
        BYTES_IN_PER_SEC,
        BYTES_OUT_PER_SEC,
    ] {
        app.register_diagnostic(Diagnostic::new(path));
    }
    app.add_systems(PostUpdate, measure::<S>.after(GamenetSet::SendPackets));
}

/// Measures the mesh of `S`, if it runs on one.
fn measure<S: OnPeerMesh>(socket: Option<Res<S>>, mut diagnostics: Diagnostics) {
    let Some(mesh) = socket.as_ref().and_then(|s| s.peer_mesh_ref()) else {
        return;
    };
    let stats: Vec<_> = mesh.peers().filter_map(|p| mesh.stats(p)).collect();
    diagnostics.add_measurement(&PEERS, || stats.len() as f64);
    if let Some(rtt) = stats.iter().filter_map(|s| s.rtt).max() {
        diagnostics.add_measurement(&RTT_MS, || rtt.as_secs_f64() * 1e3);
    }
    diagnostics.add_measurement(&LOSS_PERCENT, || {
        stats
            .iter()
            .map(|s| f64::from(s.loss) * 100.0)
            .fold(0.0, f64::max)
    });
    diagnostics.add_measurement(&BYTES_IN_PER_SEC, || {
        stats.iter().map(|s| s.bytes_in_per_sec).sum()
    });
    diagnostics.add_measurement(&BYTES_OUT_PER_SEC, || {
        stats.iter().map(|s| s.bytes_out_per_sec).sum()
    });
}
