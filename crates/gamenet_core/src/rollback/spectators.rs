//! Spectators: the host admits up to [`MAX_SPECTATORS`] and feeds them the
//! confirmed inputs of every slot. Only a spectator takes a feed, and only a
//! feed, and only from the peer it takes for the host (a feed from another
//! peer is dropped unread: the host may have changed on the way).

use super::keys::Verifier;
use super::wire::{InputRun, MAX_FRAMES_PER_MESSAGE, MAX_SPECTATORS};
use super::{Frame, Input, InputStatus, RollbackSession};
use crate::PeerId;

impl<I: Input> RollbackSession<I> {
    /// Whether the host has room for another spectator.
    pub(super) fn spectator_room(&self) -> bool {
        let spectators = self.peers.members.values().filter(|m| m.spectator).count();
        spectators < MAX_SPECTATORS
    }

    /// The spectators but `except`, with their keys (for a joiner's snapshot).
    pub(super) fn spectators_but(&self, except: PeerId) -> Vec<(PeerId, Verifier)> {
        self.peers
            .members
            .iter()
            .filter(|(q, m)| m.spectator && **q != except)
            .map(|(q, m)| (*q, m.key))
            .collect()
    }

    /// The host's feed to a spectator that has frames below `acked`: the
    /// confirmed inputs of every slot (`None` where not confirmed) up to
    /// `confirmed`, a message's worth.
    pub(super) fn feed_run(&self, acked: Frame, confirmed: Frame) -> InputRun<I> {
        let slots = &self.sync.slots;
        let start = acked.max(slots.iter().map(|s| s.log.base).max().unwrap_or(0));
        let end = confirmed.min(start + MAX_FRAMES_PER_MESSAGE as Frame);
        let records = (start..end)
            .map(|f| {
                self.sync
                    .inputs_at(f)
                    .into_iter()
                    .map(|(i, st)| (st == InputStatus::Confirmed).then_some(i))
                    .collect()
            })
            .collect();
        InputRun {
            start,
            slots: (0..slots.len()).map(|s| s as u8).collect(),
            records,
        }
    }
}
