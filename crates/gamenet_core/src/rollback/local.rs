//! This peer in the session: its id and key, the slots it plays, and where
//! the session stands.

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
}
