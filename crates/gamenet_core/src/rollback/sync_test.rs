//! [`SyncTestSession`]: a local determinism check. Every slot is local; each
//! frame, the last `distance` frames are loaded and simulated again, and a
//! checksum that differs from the first run's is a desync naming the parts
//! that differ.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use super::checksum::{CHECKSUM_MEMORY, desync, part_ids};
use super::sync_layer::{SlotState, SyncLayer};
use super::{
    Checksum, ConfigError, Frame, Input, Request, RollbackConfig, RollbackError, RollbackEvent,
    RollbackStats,
};
use crate::{Instant, PeerId};

/// A local sync test: every slot local; each frame, the last `distance`
/// frames are loaded and simulated again, and a checksum that differs from
/// the first run's raises [`RollbackEvent::DesyncDetected`].
pub struct SyncTestSession<I: Input> {
    /// The settings.
    config: RollbackConfig,
    /// The slots (all local) and the frames simulated with them.
    sync: SyncLayer<I>,
    /// Frames simulated again every frame.
    distance: u32,
    /// The first run's checksum of each recent frame.
    first_checksums: BTreeMap<Frame, Checksum>,
    /// Re-runs whose checksum equals the first run's.
    checksums_matched: u64,
    /// What happened, not polled yet.
    events: VecDeque<RollbackEvent>,
}

impl<I: Input> fmt::Debug for SyncTestSession<I> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncTestSession")
            .field("distance", &self.distance)
            .field("frame", &self.sync.current)
            .finish_non_exhaustive()
    }
}

impl<I: Input> SyncTestSession<I> {
    /// A sync test re-simulating the last `distance` frames every frame.
    pub fn new(config: RollbackConfig, distance: u32) -> Result<Self, RollbackError> {
        config.validate()?;
        if distance == 0 {
            return Err(ConfigError::SyncTestDistance.into());
        }
        let mut sync = SyncLayer::new(config.num_players, false);
        for slot in &mut sync.slots {
            slot.state = SlotState::Occupied;
            slot.active_from = 0;
            slot.local = true;
        }
        Ok(Self {
            config,
            sync,
            distance,
            first_checksums: BTreeMap::new(),
            checksums_matched: 0,
            events: VecDeque::from([RollbackEvent::Running { frame: 0 }]),
        })
    }

    /// Replaces the input prediction (the default repeats the last known input).
    pub fn set_predictor(&mut self, predictor: impl Fn(Option<I>) -> I + Send + Sync + 'static) {
        self.sync.set_predictor(Box::new(predictor));
    }

    /// The configuration.
    pub fn config(&self) -> &RollbackConfig {
        &self.config
    }

    /// Frames simulated again every frame.
    pub fn distance(&self) -> u32 {
        self.distance
    }

    /// Always true: a sync test runs from the start.
    pub fn is_running(&self) -> bool {
        true
    }

    /// The next frame to simulate.
    pub fn current_frame(&self) -> Frame {
        self.sync.current
    }

    /// Frames before this one have every input known.
    pub fn confirmed_frame(&self) -> Frame {
        self.sync.confirmed_frame()
    }

    /// The slots: every one is local.
    pub fn local_slots(&self) -> Vec<usize> {
        self.sync.local_slots()
    }

    /// Counters.
    pub fn stats(&self) -> RollbackStats {
        RollbackStats {
            frame: self.sync.current,
            confirmed: self.confirmed_frame(),
            rollbacks: self.sync.rollbacks,
            resimulated_frames: self.sync.resimulated,
            checksums_matched: self.checksums_matched,
            frames_ahead: 0.0,
        }
    }

    /// Changes the input delay. Frames already given an input keep it; a
    /// longer delay repeats the next input over the gap.
    pub fn set_input_delay(&mut self, delay: u32) {
        self.config.input_delay = delay.min(120);
    }

    /// Sets a player's input for the next frame.
    pub fn add_local_input(&mut self, slot: usize, input: I) -> Result<(), RollbackError> {
        self.sync.add_local_input(slot, input)
    }

    /// Always true: a sync test never waits for inputs.
    pub fn frame_ready(&self) -> bool {
        true
    }

    /// Always true: a sync test runs frames as fast as they are asked for.
    pub fn frame_due(&mut self, _now: Instant) -> bool {
        true
    }

    /// Runs one frame with the inputs given with
    /// [`SyncTestSession::add_local_input`], then loads the state `distance`
    /// frames back and simulates those frames again. `now` is not used (a
    /// sync test keeps no clock); the call has the shape of
    /// [`RollbackSession::advance_frame`](super::RollbackSession::advance_frame).
    pub fn advance_frame(&mut self, _now: Instant) -> Result<Vec<Request<I>>, RollbackError> {
        self.sync.check_local_inputs()?;
        self.sync
            .take_local_inputs(self.sync.current + self.config.input_delay);
        let mut requests = Vec::new();
        if self.sync.take_initial_save() {
            requests.push(Request::Save {
                frame: self.sync.current,
            });
        }
        self.sync.advance_and_rerun(&mut requests, self.distance);
        self.sync.prune_logs(std::iter::empty());
        Ok(requests)
    }

    /// Reports the checksum of the state saved at `frame` (after a
    /// [`Request::Save`]): the first run's is kept, a re-run's compared with it.
    pub fn set_checksum(&mut self, frame: Frame, checksum: Checksum) {
        match self.first_checksums.get(&frame) {
            Some(first) if first.total != checksum.total => {
                let parts = part_ids(first);
                // Name what differs from the point of view of the re-run.
                if let Some(e) = desync(PeerId(0), frame, &checksum, first.total, &parts) {
                    self.events.push_back(e);
                }
            }
            Some(_) => self.checksums_matched += 1,
            None => {
                self.first_checksums.insert(frame, checksum);
                while self.first_checksums.len() > CHECKSUM_MEMORY {
                    self.first_checksums.pop_first();
                }
            }
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<RollbackEvent> {
        self.events.pop_front()
    }
}
