//! Replication over real meshes: [`ReplicationNet`]s on [`PeerMesh`]es
//! stepped at 60 Hz, and what each knows.

use std::collections::BTreeMap;
use std::time::Duration;

use gamenet::PeerMesh;
use gamenet::replication::{EntityState, NetId, ReplicationNet};

/// A replication net on a real mesh.
pub type Net = ReplicationNet<PeerMesh>;

/// The replication tick: 60 Hz.
pub const TICK: Duration = Duration::from_micros(16_667);

/// Steps every net (`None`: gone) for `d` at [`TICK`]: `each_tick` first,
/// then each net takes in what arrived, sends its tick and drops its
/// transport events (what a test records it reads in `each_tick`).
pub async fn run_for(
    nets: &mut [Option<Net>],
    d: Duration,
    mut each_tick: impl FnMut(&mut [Option<Net>]),
) {
    let end = tokio::time::Instant::now() + d;
    while tokio::time::Instant::now() < end {
        each_tick(nets);
        for net in nets.iter_mut().flatten() {
            net.update();
            net.tick();
            while net.poll_event().is_some() {}
        }
        tokio::time::sleep(TICK).await;
    }
}

/// Every entity a net knows, by id (empty before its replicator exists).
pub fn world(net: &Net) -> BTreeMap<NetId, EntityState> {
    net.replicator()
        .map(|r| r.entities().map(|(id, e)| (id, e.clone())).collect())
        .unwrap_or_default()
}
