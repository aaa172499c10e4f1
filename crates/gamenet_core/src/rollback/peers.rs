//! The remote members of a session: their slots, what they acknowledged, when
//! they were last heard (interruption), their round-trip time, the host
//! election, and the queue of what to send them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;

use super::keys::Verifier;
use super::wire::Msg;
use super::{Frame, Input, RollbackEvent};
use crate::stats::RttEstimator;
use crate::{Channel, Instant, PeerId, Transmit};

/// Most reliable messages queued for a member that is not connected yet.
const MAX_PENDING_RELIABLE: usize = 256;
/// Most departed peers remembered.
const MAX_DEPARTED: usize = 1024;

/// A remote member of the session: a player or a spectator.
#[derive(Debug)]
pub(crate) struct Member {
    /// Its player key's verifier.
    pub(crate) key: Verifier,
    /// The slots it plays (none: a spectator, or not known yet).
    pub(crate) slots: Vec<usize>,
    /// Whether it only watches.
    pub(crate) spectator: bool,
    /// Whether the transport has it connected.
    pub(crate) connected: bool,
    /// Whether its intro arrived (or a snapshot or admit vouched for it).
    pub(crate) introduced: bool,
    /// Frames of my inputs (or feed) below this the member has.
    pub(crate) acked: Frame,
    /// When a message from it last arrived.
    pub(crate) last_heard: Option<Instant>,
    /// Whether it was reported interrupted and not heard since.
    pub(crate) interrupted: bool,
    /// Its frame in its last inputs message, and when that arrived.
    pub(crate) remote_frame: Option<(Frame, Instant)>,
    /// Its clock in its last inputs message, and when that arrived (echoed back).
    pub(crate) echo: Option<(u32, Instant)>,
    /// Round-trip time, from the echoes of my clock.
    pub(crate) rtt: RttEstimator,
    /// Reliable messages waiting for it to connect.
    pub(crate) pending: Vec<Bytes>,
    /// Whether its first inputs arrived.
    pub(crate) synced: bool,
    /// When its inputs last moved on (this peer got a frame it lacked).
    pub(crate) progressed_at: Option<Instant>,
    /// The attempt of the join the host admitted it on, if it joined.
    pub(crate) attempt: Option<u64>,
}

impl Member {
    /// A member with `slots`, unconnected and not heard yet, that has my
    /// inputs below `acked`.
    pub(crate) fn new(key: Verifier, slots: Vec<usize>, spectator: bool, acked: Frame) -> Self {
        Self {
            key,
            slots,
            spectator,
            connected: false,
            introduced: false,
            acked,
            last_heard: None,
            interrupted: false,
            remote_frame: None,
            echo: None,
            rtt: RttEstimator::default(),
            pending: Vec::new(),
            synced: false,
            progressed_at: None,
            attempt: None,
        }
    }
}

/// The members and the transport's view of the peers.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    /// Remote members by peer id.
    pub(crate) members: BTreeMap<PeerId, Member>,
    /// Peers the transport has connected.
    pub(crate) connected: BTreeSet<PeerId>,
    /// Peers the transport lost (a snapshot may still name them).
    pub(crate) departed: BTreeSet<PeerId>,
    /// Messages to send, oldest first.
    transmits: VecDeque<Transmit>,
}

impl Peers {
    /// The host among the members and `me` (if this peer can be host): the
    /// player with the lowest id, not being reported `lost`.
    pub(crate) fn host(&self, me: Option<PeerId>, lost: &BTreeSet<PeerId>) -> Option<PeerId> {
        let mut best = me;
        for (&p, m) in &self.members {
            if !m.spectator && !lost.contains(&p) && best.is_none_or(|b| p < b) {
                best = Some(p);
            }
        }
        best
    }

    /// Queues `msg` for `peer`; a reliable one waits while a member is not
    /// connected yet.
    pub(crate) fn send<I: Input>(&mut self, peer: PeerId, msg: &Msg<I>) {
        let data = Bytes::from(msg.encode());
        let reliable = msg.is_reliable();
        if reliable
            && let Some(m) = self.members.get_mut(&peer)
            && !m.connected
        {
            if m.pending.len() < MAX_PENDING_RELIABLE {
                m.pending.push(data);
            }
            return;
        }
        self.transmits.push_back(Transmit {
            peer,
            channel: if reliable {
                Channel::Reliable
            } else {
                Channel::Unreliable
            },
            data,
        });
    }

    /// The next message to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The transport connected `peer`: a member's waiting messages go out.
    pub(crate) fn connect(&mut self, peer: PeerId) {
        self.connected.insert(peer);
        if let Some(m) = self.members.get_mut(&peer) {
            m.connected = true;
            let pending = std::mem::take(&mut m.pending);
            for data in pending {
                self.transmits.push_back(Transmit {
                    peer,
                    channel: Channel::Reliable,
                    data,
                });
            }
        }
    }

    /// The transport lost `peer`.
    pub(crate) fn disconnect(&mut self, peer: PeerId) {
        self.connected.remove(&peer);
        if self.departed.len() < MAX_DEPARTED {
            self.departed.insert(peer);
        }
    }

    /// A message from `peer` arrived: an interrupted member resumes.
    pub(crate) fn heard(
        &mut self,
        now: Instant,
        peer: PeerId,
        events: &mut VecDeque<RollbackEvent>,
    ) {
        if let Some(m) = self.members.get_mut(&peer) {
            m.last_heard = Some(now);
            if m.interrupted {
                m.interrupted = false;
                events.push_back(RollbackEvent::PeerResumed { peer });
            }
        }
    }

    /// Reports members silent for `interrupt` as interrupted, and returns the
    /// players silent for `drop` that are not `lost` yet.
    pub(crate) fn check_silence(
        &mut self,
        now: Instant,
        interrupt: Duration,
        drop: Duration,
        lost: &BTreeSet<PeerId>,
        events: &mut VecDeque<RollbackEvent>,
    ) -> Vec<PeerId> {
        let mut dropped = Vec::new();
        for (&peer, m) in &mut self.members {
            let Some(heard) = m.last_heard else {
                continue;
            };
            if m.introduced && !m.interrupted && now >= heard + interrupt {
                m.interrupted = true;
                events.push_back(RollbackEvent::PeerInterrupted { peer });
            }
            if !m.spectator && !lost.contains(&peer) && now >= heard + silence(m, drop) {
                dropped.push(peer);
            }
        }
        dropped
    }

    /// When the next member would be reported interrupted, or a player lost
    /// for its silence.
    pub(crate) fn next_silence(
        &self,
        interrupt: Duration,
        drop: Duration,
        lost: &BTreeSet<PeerId>,
    ) -> Option<Instant> {
        self.members
            .iter()
            .filter_map(|(p, m)| {
                let heard = m.last_heard?;
                let interrupt_at = (m.introduced && !m.interrupted).then_some(heard + interrupt);
                let drop_at =
                    (!m.spectator && !lost.contains(p)).then_some(heard + silence(m, drop));
                interrupt_at.into_iter().chain(drop_at).min()
            })
            .min()
    }
}

/// How long a start player linked but not yet introduced may stay silent
/// beyond the drop timeout: its session starts only once it is linked to every
/// other player, and a slow link elsewhere (a TURN fallback, a retried
/// handshake) may take that long.
pub(crate) const SYNC_GRACE: Duration = Duration::from_secs(20);

/// How long `m` may stay silent before it is dropped.
fn silence(m: &Member, drop: Duration) -> Duration {
    if m.introduced {
        drop
    } else {
        drop + SYNC_GRACE
    }
}
