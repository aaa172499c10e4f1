//! Outages: a joined link that falls silent is reported interrupted, then
//! resumed, or past the disconnect timeout it *lapses*; a lapsed link comes
//! back when the peer is heard from again.
//!
//! A lapsed link is reported left ([`LeaveReason::TimedOut`]), but no goodbye
//! is sent and the peer is not remembered as closed. While the transport keeps
//! the peer connected, this side probes it with a ping every heartbeat
//! interval, and the first packet that arrives from it starts a fresh link: a
//! [`ReliablePacket::Reset`], so that the peer ends a link it may still hold,
//! then a hello. That link ignores the stragglers of the peer's old link until
//! the peer's hello ([`Link::stragglers`]).
//!
//! How the cases play out, A being a side that timed out:
//! - Only A timed out. B, still joined (maybe interrupted, maybe resumed by
//!   A's probes), gets A's reset, reports [`LeaveReason::Lapsed`] and
//!   handshakes afresh. Each side reports one `PeerLeft` and one `PeerJoined`.
//! - Both timed out. Whichever hears the other first (a probe, or a reliable
//!   straggler) resets. A side that gets a reset while lapsed starts a fresh
//!   link without a reset of its own.
//! - Resets crossing each other or a hello. A reset is never answered with a
//!   reset: it only replaces the receiver's link (or handshake) with a fresh
//!   handshake and sends a hello. Everything a peer sends after its reset
//!   belongs to its fresh link, so the handshakes meet, and both sides end
//!   with one link and fresh reliable streams.
//! - Unreliable stragglers of the old link are ignored during the handshake;
//!   after the join, an acknowledgement beyond what was sent is forgiven for
//!   [`MeshConfig::interrupt_timeout`](super::MeshConfig::interrupt_timeout)
//!   ([`Link::stale_acks_until`]), a stale pong at worst skews one round-trip
//!   sample, and stale unreliable data reaches the application as any late
//!   unreliable data would.
//! - A restarted handshake that times out lapses again, silently (the
//!   departure was reported already), instead of closing the peer.

use super::event::{Fault, ProtocolError};
use super::link::{Link, LinkPhase};
use super::wire::{GoodbyeReason, ReliablePacket, UnreliablePacket};
use super::{Event, LeaveReason, Mesh};
use crate::Instant;
use crate::peer::{Channel, PeerId};

impl Mesh {
    /// A packet arrived from `peer` at `now`: an interrupted link resumes.
    pub(super) fn heard(&mut self, now: Instant, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        link.last_recv = now;
        if link.interrupted {
            link.interrupted = false;
            self.events.push_back(Event::PeerResumed(peer));
        }
    }

    /// The link to `peer` timed out at `now`: it ends without a goodbye,
    /// reported as [`LeaveReason::TimedOut`] if it was joined, and the peer is
    /// probed until it is heard from again. A peer the transport does not
    /// report connected cannot come back and is remembered as closed.
    pub(super) fn lapse(&mut self, now: Instant, peer: PeerId) {
        let Some(link) = self.links.remove(&peer) else {
            return;
        };
        if link.joined() {
            self.events.push_back(Event::PeerLeft {
                peer,
                reason: LeaveReason::TimedOut,
            });
        }
        if self.connected.contains(&peer) {
            let next_probe = now + self.config.heartbeat_interval;
            self.lapsed.insert(peer, next_probe);
        } else {
            self.remember_closed(peer);
        }
    }

    /// A reliable packet, `decoded`, arrived from lapsed `peer`. A goodbye
    /// closes the peer for good; a reset is left to [`Mesh::on_reset`]; anything
    /// else starts a fresh link. Returns whether the packet goes on to the link.
    pub(super) fn on_lapsed_reliable(
        &mut self,
        now: Instant,
        peer: PeerId,
        decoded: &Result<ReliablePacket<'_>, crate::wire::DecodeError>,
    ) -> bool {
        match decoded {
            Ok(ReliablePacket::Goodbye(_)) => {
                self.lapsed.remove(&peer);
                self.remember_closed(peer);
                false
            }
            Ok(ReliablePacket::Reset) => true,
            _ => {
                self.restart(now, peer);
                true
            }
        }
    }

    /// Starts a fresh link to lapsed `peer` at `now`: tells it to drop its old
    /// link ([`ReliablePacket::Reset`]) and sends our hello. Until the peer's
    /// hello, what it sent on its old link is ignored.
    pub(super) fn restart(&mut self, now: Instant, peer: PeerId) {
        self.lapsed.remove(&peer);
        let mut link = Link::new(now, self.config.handshake_timeout);
        link.connected = true;
        link.restarted = true;
        link.stragglers = true;
        self.links.insert(peer, link);
        self.push_transmit(peer, Channel::Reliable, ReliablePacket::Reset.encode());
        self.send_hello(now, peer);
    }

    /// `peer` started over ([`ReliablePacket::Reset`]) at `now`: whatever link
    /// this side had ends, reported as [`LeaveReason::Lapsed`] if joined, and a
    /// fresh handshake starts with our hello. A handshake under way keeps its
    /// deadline, so that resets cannot hold one open forever.
    pub(super) fn on_reset(&mut self, now: Instant, peer: PeerId) {
        let was_lapsed = self.lapsed.remove(&peer).is_some();
        let old = self.links.remove(&peer);
        let mut link = Link::new(now, self.config.handshake_timeout);
        link.connected = self.connected.contains(&peer);
        match old {
            Some(old) if old.joined() => {
                self.events.push_back(Event::PeerLeft {
                    peer,
                    reason: LeaveReason::Lapsed,
                });
                link.restarted = true;
            }
            Some(old) => {
                link.restarted = old.restarted;
                if let LinkPhase::Handshaking { deadline, .. } = old.phase
                    && let LinkPhase::Handshaking {
                        deadline: fresh, ..
                    } = &mut link.phase
                {
                    *fresh = deadline;
                }
            }
            None => link.restarted = was_lapsed,
        }
        let connected = link.connected;
        self.links.insert(peer, link);
        if connected {
            self.send_hello(now, peer);
        }
    }

    /// Sends the probes of lapsed peers that are due at `now`.
    pub(super) fn probe_lapsed(&mut self, now: Instant) {
        let interval = self.config.heartbeat_interval;
        let mut due = Vec::new();
        for (&peer, next) in self.lapsed.iter_mut() {
            if now >= *next {
                due.push(peer);
                *next = (*next + interval).max(now + interval / 2);
            }
        }
        due.sort_unstable();
        for peer in due {
            let probe = UnreliablePacket::Ping { seq: 0, acked: 0 }.encode();
            self.push_transmit(peer, Channel::Unreliable, probe);
        }
    }

    /// Ends what this side keeps of lapsed `peer` for good: it is told goodbye
    /// with `reason` (it may still hold its side of the link) and remembered as
    /// closed. Returns whether the peer was lapsed.
    pub(super) fn drop_lapsed(&mut self, peer: PeerId, reason: GoodbyeReason) -> bool {
        if self.lapsed.remove(&peer).is_none() {
            return false;
        }
        let goodbye = ReliablePacket::Goodbye(reason).encode();
        self.push_transmit(peer, Channel::Reliable, goodbye);
        self.remember_closed(peer);
        true
    }

    /// Whether an acknowledgement that failed with `fault` on the link to
    /// `peer` at `now` is a straggler of the peer's old link, to be ignored.
    pub(super) fn is_stale_ack(&self, now: Instant, peer: PeerId, fault: &Fault) -> bool {
        matches!(fault, Fault::Protocol(ProtocolError::AckBeyondSent { .. }))
            && self
                .links
                .get(&peer)
                .and_then(|l| l.stale_acks_until)
                .is_some_and(|until| now < until)
    }
}
