//! Checksums of states: the game's local ones, the peers' remote ones, their
//! comparison, and naming what differs in a desync.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use super::protocol::MAX_INPUT_LEAD;
use super::wire::ChecksumMsg;
use super::{Frame, Input, MAX_PLAYERS, RollbackEvent, RollbackSession, part_id};
use crate::{Instant, Misbehavior, PeerId};

/// Confirmed checksums kept, local and remote.
pub(crate) const CHECKSUM_MEMORY: usize = 64;

/// One named part of a checksum (say, one component type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumPart {
    /// The part's name, the same on every peer.
    pub name: Cow<'static, str>,
    /// Its checksum.
    pub value: u64,
}

/// A state's checksum: the whole, and optionally by part.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Checksum {
    /// Checksum of the whole state.
    pub total: u64,
    /// Checksums of parts of the state, for desync reports.
    pub parts: Vec<ChecksumPart>,
}

impl Checksum {
    /// A checksum without parts.
    pub fn total(total: u64) -> Self {
        Self {
            total,
            parts: Vec::new(),
        }
    }
}

/// A peer's checksum of a frame: the peer, the total, and parts by id.
type RemoteChecksum = (PeerId, u64, Vec<(u64, u64)>);

/// A checksum's parts as sent: (hash of the name, value).
pub(crate) fn part_ids(checksum: &Checksum) -> Vec<(u64, u64)> {
    checksum
        .parts
        .iter()
        .map(|p| (part_id(&p.name), p.value))
        .collect()
}

/// Compares a local checksum with a remote one (`total`, `parts` by id):
/// `None` if the totals are equal, else the desync, naming the parts that
/// differ.
pub(crate) fn desync(
    peer: PeerId,
    frame: Frame,
    local: &Checksum,
    total: u64,
    parts: &[(u64, u64)],
) -> Option<RollbackEvent> {
    if local.total == total {
        return None;
    }
    let mut differ = Vec::new();
    for part in &local.parts {
        let id = part_id(&part.name);
        match parts.iter().find(|(i, _)| *i == id) {
            Some((_, v)) if *v == part.value => {}
            _ => differ.push(part.name.to_string()),
        }
    }
    for (id, _) in parts {
        if !local.parts.iter().any(|p| part_id(&p.name) == *id) {
            differ.push(format!("unknown part {id:#018x}"));
        }
    }
    Some(RollbackEvent::DesyncDetected {
        frame,
        peer,
        local: local.total,
        remote: total,
        parts: differ,
    })
}

/// The checksums of a networked session.
#[derive(Debug, Default)]
pub(crate) struct Checksums {
    /// The game's checksums of saved states not final yet, by frame.
    saved: BTreeMap<Frame, Checksum>,
    /// Final checksums of confirmed checksum frames, the newest
    /// [`CHECKSUM_MEMORY`].
    local: BTreeMap<Frame, Checksum>,
    /// Peers' checksums of frames not final here yet.
    remote: BTreeMap<Frame, Vec<RemoteChecksum>>,
    /// Checksums compared with a peer's and found equal.
    pub(crate) matched: u64,
}

impl Checksums {
    /// The game's checksum of the state saved at `frame`.
    pub(crate) fn set(&mut self, frame: Frame, checksum: Checksum) {
        self.saved.insert(frame, checksum);
    }

    /// The final checksum of a confirmed checksum frame, if still kept.
    pub(crate) fn confirmed(&self, frame: Frame) -> Option<&Checksum> {
        self.local.get(&frame)
    }

    /// Compares with a peer's checksum, counting a match.
    fn compare(
        &mut self,
        peer: PeerId,
        frame: Frame,
        local: &Checksum,
        total: u64,
        parts: &[(u64, u64)],
        events: &mut VecDeque<RollbackEvent>,
    ) {
        match desync(peer, frame, local, total, parts) {
            Some(e) => events.push_back(e),
            None => self.matched += 1,
        }
    }

    /// Makes the checksums of frames up to `base` (which no rollback reaches)
    /// final: every `interval`-th is kept, compared with what peers sent, and
    /// returned for sending to them.
    pub(crate) fn finalize(
        &mut self,
        base: Frame,
        interval: u32,
        events: &mut VecDeque<RollbackEvent>,
    ) -> Vec<ChecksumMsg> {
        let mut out = Vec::new();
        let ready: Vec<Frame> = self.saved.range(..=base).map(|(f, _)| *f).collect();
        for f in ready {
            let Some(c) = self.saved.remove(&f) else {
                continue;
            };
            if interval == 0 || f % interval != 0 {
                continue;
            }
            out.push(ChecksumMsg {
                frame: f,
                total: c.total,
                parts: part_ids(&c),
            });
            if let Some(remote) = self.remote.remove(&f) {
                for (peer, total, parts) in remote {
                    self.compare(peer, f, &c, total, &parts, events);
                }
            }
            self.local.insert(f, c);
            while self.local.len() > CHECKSUM_MEMORY {
                self.local.pop_first();
            }
        }
        let stale: Vec<Frame> = self
            .remote
            .range(..base.saturating_sub(1024))
            .map(|(f, _)| *f)
            .collect();
        for f in stale {
            self.remote.remove(&f);
        }
        out
    }

    /// A member's checksum: compared now if the frame is final here, kept
    /// until it is otherwise. Only checksum frames in `window` count (a frame
    /// further ahead cannot be final anywhere yet), one per peer: the remote
    /// ones kept stay bounded, and no peer can push out the others'.
    pub(crate) fn on_remote(
        &mut self,
        peer: PeerId,
        body: ChecksumMsg,
        interval: u32,
        window: std::ops::RangeInclusive<Frame>,
        events: &mut VecDeque<RollbackEvent>,
    ) -> Result<(), Misbehavior> {
        let ChecksumMsg {
            frame,
            total,
            parts,
        } = body;
        if interval == 0 {
            return Ok(());
        }
        if frame % interval != 0 || frame > *window.end() {
            return Err(Misbehavior::OutOfRange {
                what: "checksum frame",
            });
        }
        if let Some(local) = self.local.get(&frame).cloned() {
            self.compare(peer, frame, &local, total, &parts, events);
            return Ok(());
        }
        let oldest = self.local.keys().next().copied().unwrap_or(0);
        if frame < oldest.max(*window.start()) {
            return Ok(());
        }
        let entry = self.remote.entry(frame).or_default();
        entry.retain(|(p, _, _)| *p != peer);
        if entry.len() < MAX_PLAYERS {
            entry.push((peer, total, parts));
        }
        Ok(())
    }
}

impl<I: Input> RollbackSession<I> {
    /// A peer's checksum of a confirmed frame; only a player member's counts.
    pub(super) fn on_checksum(&mut self, _now: Instant, peer: PeerId, body: ChecksumMsg) {
        if self.peers.members.get(&peer).is_none_or(|m| m.spectator) {
            return;
        }
        let interval = self.config.checksum_interval;
        let memory = interval.saturating_mul(CHECKSUM_MEMORY as Frame);
        let window = self.sync.sim_base.saturating_sub(memory)
            ..=self.sync.current.saturating_add(MAX_INPUT_LEAD);
        if let Err(e) = self
            .checksums
            .on_remote(peer, body, interval, window, &mut self.events)
        {
            self.misbehaved(peer, e);
        }
    }
}
