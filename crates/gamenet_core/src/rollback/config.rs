//! The settings of a rollback session, and why they can be refused.

use std::time::Duration;

use thiserror::Error;

use super::MAX_PLAYERS;

/// Settings of a rollback session; every peer must use the same.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackConfig {
    /// Player slots.
    pub num_players: usize,
    /// Simulation frames per second.
    pub fps: u32,
    /// Frames a peer may run ahead of the last confirmed frame, predicting;
    /// 0 is lockstep.
    pub prediction_window: u32,
    /// Frames between a local input and the frame it applies to.
    pub input_delay: u32,
    /// Confirmed frames between checksum exchanges; 0 turns them off.
    pub checksum_interval: u32,
    /// Silence after which a peer is reported interrupted: the game waits for
    /// it (stalling at the prediction window) and may show so.
    pub interrupt_timeout: Duration,
    /// Silence after which a player counts as lost even while its link stays
    /// up (a tab whose frames stopped still answers heartbeats): its departure
    /// is agreed on, and it rejoins from a snapshot when it is back. 10 s by
    /// default, as the mesh's `disconnect_timeout`: long enough for a Wi-Fi
    /// roam or a mobile hand-over, short enough that the others do not wait
    /// for ever on a player who is gone.
    pub drop_timeout: Duration,
    /// How long a departed player's slot waits for that player to come back.
    pub reclaim_window: Duration,
    /// Extra frames between admitting a joiner and its first frame, to cover
    /// the snapshot transfer and catch-up.
    pub join_margin: u32,
    /// Largest state snapshot accepted, in bytes.
    pub max_snapshot_bytes: usize,
    /// Most bytes the input records of one message may decode to (run-length
    /// encoding expands up to 128 times): checked before anything is
    /// allocated. The default takes an honest peer's largest message (a
    /// snapshot's inputs of 64 slots) with room to spare.
    pub max_decoded_input_bytes: usize,
}

impl Default for RollbackConfig {
    fn default() -> Self {
        Self {
            num_players: 2,
            fps: 60,
            prediction_window: 8,
            input_delay: 2,
            checksum_interval: 16,
            interrupt_timeout: Duration::from_millis(500),
            drop_timeout: Duration::from_secs(10),
            reclaim_window: Duration::from_secs(60),
            join_margin: 30,
            max_snapshot_bytes: 8 << 20,
            max_decoded_input_bytes: 4 << 20,
        }
    }
}

/// Why a configuration (or a session's start parameters) cannot work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `num_players` is 0 or more than [`MAX_PLAYERS`].
    #[error("num_players must be 1 to 64")]
    NumPlayers,
    /// `fps` is 0.
    #[error("fps must be positive")]
    Fps,
    /// `input_delay` or `prediction_window` is over 120.
    #[error("input_delay and prediction_window must be at most 120")]
    DelayOrWindow,
    /// The player kinds given to a start are not one per slot.
    #[error("one player kind per slot is needed")]
    PlayerKinds,
    /// A remote player was given this peer's own id.
    #[error("a remote player has our id")]
    RemoteHasOurId,
    /// A join asked for more players than the session has slots.
    #[error("more players than slots")]
    MorePlayersThanSlots,
    /// `drop_timeout` is not longer than `interrupt_timeout`.
    #[error("drop_timeout must be longer than interrupt_timeout")]
    DropTimeout,
    /// A sync test's distance is 0.
    #[error("sync test distance must be positive")]
    SyncTestDistance,
}

impl RollbackConfig {
    /// Checks that the configuration can work.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if self.num_players == 0 || self.num_players > MAX_PLAYERS {
            return Err(ConfigError::NumPlayers);
        }
        if self.fps == 0 {
            return Err(ConfigError::Fps);
        }
        if self.input_delay > 120 || self.prediction_window > 120 {
            return Err(ConfigError::DelayOrWindow);
        }
        if self.drop_timeout <= self.interrupt_timeout {
            return Err(ConfigError::DropTimeout);
        }
        Ok(())
    }

    /// What one message may decode to.
    pub(crate) fn limits(&self) -> super::wire::Limits {
        super::wire::Limits {
            snapshot: self.max_snapshot_bytes,
            decoded_inputs: self.max_decoded_input_bytes,
        }
    }

    /// The time between two frames.
    pub(crate) fn interval(&self) -> Duration {
        Duration::from_secs_f64(1.0 / self.fps as f64)
    }
}
