//! The inputs of one slot from a base frame on.

use std::collections::VecDeque;

use super::{Frame, Input};

/// Frames of inputs kept behind the confirmed frame, for joiners and for
/// players that report a leaver's inputs.
pub(crate) const INPUT_HISTORY_FRAMES: u32 = 240;

/// Inputs of one slot from a base frame on: `None` where the slot had no
/// player.
#[derive(Debug, Clone)]
pub(crate) struct InputLog<I> {
    /// The frame of the first entry.
    pub(crate) base: Frame,
    /// One entry per frame from `base` on.
    entries: VecDeque<Option<I>>,
}

impl<I: Input> InputLog<I> {
    /// An empty log starting at `base`.
    pub(crate) fn new(base: Frame) -> Self {
        Self {
            base,
            entries: VecDeque::new(),
        }
    }

    /// The first frame without an entry.
    pub(crate) fn end(&self) -> Frame {
        self.base + self.entries.len() as Frame
    }

    /// The entry of frame `f`; `None` if it is not in the log.
    pub(crate) fn get(&self, f: Frame) -> Option<Option<I>> {
        if f < self.base {
            return None;
        }
        self.entries.get((f - self.base) as usize).copied()
    }

    /// The last entry, if it is an input.
    pub(crate) fn last_input(&self) -> Option<I> {
        self.entries.back().copied().flatten()
    }

    /// Appends the entry of frame `f`, if `f` is the end.
    pub(crate) fn push(&mut self, f: Frame, v: Option<I>) {
        if f == self.end() {
            self.entries.push_back(v);
        }
    }

    /// Drops the entries before frame `f`.
    pub(crate) fn prune_before(&mut self, f: Frame) {
        while self.base < f && !self.entries.is_empty() {
            self.entries.pop_front();
            self.base += 1;
        }
    }

    /// Empties the log and starts it at `base`.
    pub(crate) fn reset(&mut self, base: Frame) {
        self.entries.clear();
        self.base = base;
    }
}
