//! The replication plugin's Bevy diagnostics: bytes per second and entities
//! in other peers' scope.

use bevy_app::App;
use bevy_diagnostic::{Diagnostic, DiagnosticPath, Diagnostics, RegisterDiagnostic};
use bevy_ecs::prelude::*;
use gamenet::replication::Replicator;

use super::ReplicationSocket;

/// Bytes per second sent to all peers.
pub const BYTES_PER_SEC: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/replication/bytes_per_sec");
/// Entities of this peer in other peers' scope, summed over peers.
pub const ENTITIES_IN_SCOPE: DiagnosticPath =
    DiagnosticPath::const_new("gamenet/replication/entities_in_scope");

/// Registers the replication diagnostics.
pub(super) fn register(app: &mut App) {
    app.register_diagnostic(Diagnostic::new(BYTES_PER_SEC))
        .register_diagnostic(Diagnostic::new(ENTITIES_IN_SCOPE));
}

/// Measures this peer's replication.
pub(super) fn measure(socket: Option<Res<ReplicationSocket>>, mut diagnostics: Diagnostics) {
    let Some(r) = socket.as_ref().and_then(|s| s.0.replicator()) else {
        return;
    };
    let r: &Replicator = r;
    diagnostics.add_measurement(&BYTES_PER_SEC, || {
        r.peers().map(|p| r.bytes_per_sec(p)).sum()
    });
    diagnostics.add_measurement(&ENTITIES_IN_SCOPE, || {
        r.peers().map(|p| r.in_scope(p) as f64).sum()
    });
}
