//! The slot table and the simulation's inputs: the inputs at a frame (known or
//! predicted), the search for the first frame simulated with a wrong guess,
//! re-simulation, and pruning what no rollback reaches.

use std::collections::VecDeque;

use super::input::repeat_last;
use super::input_log::{INPUT_HISTORY_FRAMES, InputLog};
use super::keys::Verifier;
use super::wire::SlotEntry;
use super::{Frame, Input, InputStatus, Predictor, Request, RollbackError};
use crate::{Instant, PeerId};

/// Whether a slot has a player.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Never played.
    Free,
    /// Played by `peer`.
    Occupied,
    /// Its player left; the player's key may reclaim it for a while.
    Vacant,
}

/// One player slot: who plays it, from and until which frame, and its inputs.
#[derive(Debug, Clone)]
pub(crate) struct PlayerSlot<I> {
    /// Whether it has a player.
    pub(crate) state: SlotState,
    /// The peer playing it (or that last played it).
    pub(crate) peer: PeerId,
    /// That player's key verifier (all zeros: none).
    pub(crate) key: Verifier,
    /// Whether it is played on this peer.
    pub(crate) local: bool,
    /// Its player's first frame (`Frame::MAX`: never played).
    pub(crate) active_from: Frame,
    /// The first frame without its player, once it left.
    pub(crate) until: Option<Frame>,
    /// When its player left (for the reclaim window).
    pub(crate) released_at: Option<Instant>,
    /// Its inputs.
    pub(crate) log: InputLog<I>,
}

impl<I: Input> PlayerSlot<I> {
    /// A slot nobody ever played.
    fn free() -> Self {
        Self {
            state: SlotState::Free,
            peer: PeerId(0),
            key: [0; 32],
            local: false,
            active_from: Frame::MAX,
            until: None,
            released_at: None,
            log: InputLog::new(0),
        }
    }

    /// Whether its player plays frame `f`.
    pub(crate) fn active_at(&self, f: Frame) -> bool {
        f >= self.active_from && self.until.is_none_or(|u| f < u)
    }

    /// First frame whose input for this slot is not known, `Frame::MAX` if all are.
    pub(crate) fn first_unknown(&self) -> Frame {
        if self.active_from == Frame::MAX {
            return Frame::MAX;
        }
        let start = self.log.end().max(self.active_from);
        match self.until {
            Some(u) if start >= u => Frame::MAX,
            _ => start,
        }
    }

    /// Its entry in a snapshot's slot table.
    pub(crate) fn entry(&self) -> SlotEntry {
        SlotEntry {
            state: match self.state {
                SlotState::Free => 0,
                SlotState::Occupied => 1,
                SlotState::Vacant => 2,
            },
            peer: self.peer,
            key: self.key,
            active_from: self.active_from,
            until: self.until,
        }
    }
}

/// The slots and the frames simulated with them.
pub(crate) struct SyncLayer<I> {
    /// Every slot: who plays it, from and until when, and its inputs.
    pub(crate) slots: Vec<PlayerSlot<I>>,
    /// Local inputs given for the next frame, per slot.
    pending_input: Vec<Option<I>>,
    /// The next frame to simulate.
    pub(crate) current: Frame,
    /// The first frame of `sim_inputs`; frames before it are final.
    pub(crate) sim_base: Frame,
    /// The inputs each frame from `sim_base` on was last simulated with.
    sim_inputs: VecDeque<Vec<(I, InputStatus)>>,
    /// Whether the state at `current` still needs saving (before the first frame).
    initial_save: bool,
    /// Whether this peer only watches: the logs then hold a host's feed of
    /// confirmed inputs, every slot's entry final as it is.
    pub(crate) spectator: bool,
    /// Guesses the input of a slot whose input is not known.
    pub(crate) predictor: Predictor<I>,
    /// Rollbacks done.
    pub(crate) rollbacks: u64,
    /// Frames re-simulated by rollbacks.
    pub(crate) resimulated: u64,
}

impl<I: Input> SyncLayer<I> {
    /// `num_players` free slots at frame 0.
    pub(crate) fn new(num_players: usize, spectator: bool) -> Self {
        Self {
            slots: (0..num_players).map(|_| PlayerSlot::free()).collect(),
            pending_input: vec![None; num_players],
            current: 0,
            sim_base: 0,
            sim_inputs: VecDeque::new(),
            initial_save: true,
            spectator,
            predictor: repeat_last(),
            rollbacks: 0,
            resimulated: 0,
        }
    }

    /// Replaces the input prediction.
    pub(crate) fn set_predictor(&mut self, predictor: Predictor<I>) {
        self.predictor = predictor;
    }

    /// No save before the first frame: a snapshot's load saves instead.
    pub(crate) fn skip_initial_save(&mut self) {
        self.initial_save = false;
    }

    /// The slots played on this peer.
    pub(crate) fn local_slots(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|&s| self.slots[s].local)
            .collect()
    }

    /// Sets a local player's input for the next frame.
    pub(crate) fn add_local_input(&mut self, slot: usize, input: I) -> Result<(), RollbackError> {
        match self.slots.get(slot) {
            Some(s) if s.local => {
                self.pending_input[slot] = Some(input);
                Ok(())
            }
            _ => Err(RollbackError::NotLocal(slot)),
        }
    }

    /// Fails if a local slot has no input for the next frame.
    pub(crate) fn check_local_inputs(&self) -> Result<(), RollbackError> {
        for s in self.local_slots() {
            if self.pending_input[s].is_none() {
                return Err(RollbackError::MissingLocalInput(s));
            }
        }
        Ok(())
    }

    /// Logs the local inputs given for the next frame as the inputs up to
    /// frame `target` (repeated over a gap a longer input delay leaves).
    pub(crate) fn take_local_inputs(&mut self, target: Frame) {
        for s in self.local_slots() {
            let Some(input) = self.pending_input[s].take() else {
                continue;
            };
            let slot = &mut self.slots[s];
            if slot.log.end() < slot.active_from {
                slot.log.reset(slot.active_from);
            }
            while slot.log.end() <= target && slot.active_at(slot.log.end()) {
                let f = slot.log.end();
                slot.log.push(f, Some(input));
            }
        }
    }

    /// First frame some slot's input is unknown for (`Frame::MAX`: none).
    pub(crate) fn confirmed_until(&self) -> Frame {
        self.slots
            .iter()
            .map(|s| {
                if self.spectator {
                    s.log.end()
                } else {
                    s.first_unknown()
                }
            })
            .min()
            .unwrap_or(Frame::MAX)
    }

    /// Frames before this one have every input known, and are simulated.
    pub(crate) fn confirmed_frame(&self) -> Frame {
        self.confirmed_until().min(self.current)
    }

    /// First frame some remote slot's input is unknown for.
    pub(crate) fn remote_confirmed_until(&self) -> Frame {
        if self.spectator {
            return self.confirmed_until();
        }
        self.slots
            .iter()
            .filter(|s| !s.local)
            .map(PlayerSlot::first_unknown)
            .min()
            .unwrap_or(Frame::MAX)
    }

    /// Whether the next frame is within `window` frames of predicting.
    pub(crate) fn can_advance(&self, window: u32) -> bool {
        let until = self.remote_confirmed_until();
        until == Frame::MAX || self.current < until.saturating_add(window)
    }

    /// Whether a local slot has no input yet for frame `target`.
    pub(crate) fn local_input_wanted(&self, target: Frame) -> bool {
        !self.spectator
            && self
                .slots
                .iter()
                .any(|s| s.local && s.active_at(target) && s.log.end().max(s.active_from) <= target)
    }

    /// Whether the state before the first frame still needs saving; it does
    /// not afterwards.
    pub(crate) fn take_initial_save(&mut self) -> bool {
        std::mem::replace(&mut self.initial_save, false)
    }

    /// Starts over at `frame` (a snapshot's), nothing simulated yet.
    pub(crate) fn restart_at(&mut self, frame: Frame) {
        self.current = frame;
        self.sim_base = frame;
        self.sim_inputs.clear();
    }

    /// Every slot's input for frame `f`, known or predicted.
    pub(crate) fn inputs_at(&self, f: Frame) -> Vec<(I, InputStatus)> {
        self.slots
            .iter()
            .map(|slot| {
                let known = if self.spectator {
                    slot.log.get(f)
                } else if !slot.active_at(f) {
                    Some(None)
                } else {
                    slot.log.get(f)
                };
                match known {
                    Some(Some(i)) => (i, InputStatus::Confirmed),
                    Some(None) => (I::default(), InputStatus::Disconnected),
                    None => (
                        (self.predictor)(slot.log.last_input()),
                        InputStatus::Predicted,
                    ),
                }
            })
            .collect()
    }

    /// Whether two frames' inputs simulate the same.
    fn same_inputs(a: &[(I, InputStatus)], b: &[(I, InputStatus)]) -> bool {
        a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0 && (x.1 == InputStatus::Disconnected) == (y.1 == InputStatus::Disconnected)
        })
    }

    /// Simulates the current frame with `inputs` and saves the state after it.
    fn simulate(&mut self, requests: &mut Vec<Request<I>>, inputs: Vec<(I, InputStatus)>) {
        self.sim_inputs.push_back(inputs.clone());
        requests.push(Request::Advance {
            frame: self.current,
            inputs,
        });
        self.current += 1;
        requests.push(Request::Save {
            frame: self.current,
        });
    }

    /// Rolls back to the first frame simulated with inputs now known wrong
    /// and simulates again up to the current frame, then runs the current
    /// frame; frames below the confirmed frame become final.
    pub(crate) fn advance(&mut self, requests: &mut Vec<Request<I>>) {
        let mismatch = (self.sim_base..self.current).find(|&f| {
            let used = &self.sim_inputs[(f - self.sim_base) as usize];
            !Self::same_inputs(used, &self.inputs_at(f))
        });
        if let Some(from) = mismatch {
            requests.push(Request::Load { frame: from });
            self.sim_inputs.truncate((from - self.sim_base) as usize);
            let end = self.current;
            self.current = from;
            while self.current < end {
                let inputs = self.inputs_at(self.current);
                self.simulate(requests, inputs);
            }
            self.rollbacks += 1;
            self.resimulated += (end - from) as u64;
        }
        let inputs = self.inputs_at(self.current);
        self.simulate(requests, inputs);

        let confirmed = self.confirmed_frame();
        while self.sim_base < confirmed {
            self.sim_inputs.pop_front();
            self.sim_base += 1;
        }
    }

    /// Runs the current frame, then loads the state `distance` frames back
    /// and simulates those frames again with the inputs they had (a sync
    /// test).
    pub(crate) fn advance_and_rerun(&mut self, requests: &mut Vec<Request<I>>, distance: u32) {
        let inputs = self.inputs_at(self.current);
        self.simulate(requests, inputs);
        if self.current > distance {
            let from = self.current - distance;
            requests.push(Request::Load { frame: from });
            for f in from..self.current {
                let inputs = self.sim_inputs[(f - self.sim_base) as usize].clone();
                requests.push(Request::Advance { frame: f, inputs });
                requests.push(Request::Save { frame: f + 1 });
            }
            self.rollbacks += 1;
            self.resimulated += distance as u64;
        }
        while self.sim_inputs.len() > distance as usize {
            self.sim_inputs.pop_front();
            self.sim_base += 1;
        }
    }

    /// Drops inputs no one needs: older than [`INPUT_HISTORY_FRAMES`] behind
    /// the confirmed frame and acknowledged by every member (`acks`; a
    /// member's ack counts back to four times that history at most).
    pub(crate) fn prune_logs(&mut self, acks: impl Iterator<Item = Frame>) {
        let confirmed = self.confirmed_frame();
        let mut keep = confirmed.saturating_sub(INPUT_HISTORY_FRAMES);
        for acked in acks {
            keep = keep.min(acked.max(confirmed.saturating_sub(4 * INPUT_HISTORY_FRAMES)));
        }
        for slot in &mut self.slots {
            slot.log.prune_before(keep);
        }
    }
}
