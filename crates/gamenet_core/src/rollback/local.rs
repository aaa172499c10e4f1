//! This peer in the session: its id and key, the slots it plays, and where
//! the session stands.

use std::sync::atomic::{AtomicU64, Ordering};

use super::keys::PlayerKey;
use crate::PeerId;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SessionPhase {
    /// Waiting for every start player's intro.
    Synchronizing,
    /// Waiting for the host's admit and snapshot.
    Joining,
    /// Frames run.
    Running,
    /// This peer left the session: nothing runs, nothing is sent.
    Ended,
}

/// Who this peer is in the session, and where the session stands.
#[derive(Debug)]
pub(crate) struct Me {
    /// This peer's id in the mesh.
    pub(crate) id: PeerId,
    /// This player's key, for reconnecting.
    pub(crate) key: PlayerKey,
    /// The slots this peer plays (or asks for, joining); 0 for a spectator.
    pub(crate) local_players: usize,
    /// Where the session stands.
    pub(crate) phase: SessionPhase,
    /// This join's attempt number ([`join_attempt`]; 0 for a start player).
    pub(crate) attempt: u64,
}

/// A number naming one join: different for every join of this process (a
/// counter) and, with the clock, from the joins of an earlier process under
/// the same peer id. The host's admit repeats it, so a player that took the
/// admit knows an intro of the same attempt (sent before the admit reached
/// it, over a link that came back later) is the request the admit answered,
/// not a new one.
pub(crate) fn join_attempt() -> u64 {
    static JOINS: AtomicU64 = AtomicU64::new(0);
    let count = JOINS.fetch_add(1, Ordering::Relaxed);
    let clock = web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    // SplitMix64's finalizer: nearby inputs give unrelated outputs.
    let mut z = clock ^ count.rotate_left(40) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)).max(1)
}
