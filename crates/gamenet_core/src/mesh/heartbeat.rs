//! Heartbeats: every joined link is pinged once per heartbeat interval; the
//! answers measure round-trip times and loss, and each ping refreshes the
//! link's statistics. A link that hears nothing for the disconnect timeout is
//! dropped by [`Mesh::handle_timeout`].

use std::time::Duration;

use super::Mesh;
use super::wire::UnreliablePacket;
use crate::Instant;
use crate::peer::{Channel, PeerId};
use crate::stats::{PING_SLOTS, PeerStats, PingSlot, RateMeter, RttEstimator, loss_estimate};

/// One link's heartbeats: the pings sent and what their answers measured.
#[derive(Debug)]
pub(super) struct Heartbeats {
    /// Sequence number of the next ping.
    seq: u32,
    /// The last [`PING_SLOTS`] pings, by sequence number modulo their count,
    /// for round-trip times and the loss estimate.
    pings: Vec<Option<PingSlot>>,
    /// Round-trip times of the answered pings.
    rtt: RttEstimator,
    /// Rate of the bytes received, sampled on every ping.
    meter_in: RateMeter,
    /// Rate of the bytes sent, sampled on every ping.
    meter_out: RateMeter,
}

impl Default for Heartbeats {
    fn default() -> Self {
        Self {
            seq: 0,
            pings: vec![None; PING_SLOTS],
            rtt: RttEstimator::default(),
            meter_in: RateMeter::default(),
            meter_out: RateMeter::default(),
        }
    }
}

impl Heartbeats {
    /// The smoothed round-trip time, once a ping was answered.
    pub(super) fn rtt(&self) -> Option<Duration> {
        self.rtt.smoothed()
    }

    /// Records a ping sent at `now` and returns its sequence number.
    fn ping(&mut self, now: Instant) -> u32 {
        let seq = self.seq;
        self.seq = seq.wrapping_add(1);
        self.pings[seq as usize % PING_SLOTS] = Some(PingSlot {
            seq,
            sent_at: now,
            answered: false,
        });
        seq
    }

    /// The answer to ping `seq` arrived at `now`; one that matches no
    /// unanswered ping of the last ones is ignored.
    pub(super) fn pong(&mut self, seq: u32, now: Instant) {
        let slot = &mut self.pings[seq as usize % PING_SLOTS];
        if let Some(slot) = slot.as_mut().filter(|s| s.seq == seq && !s.answered) {
            slot.answered = true;
            self.rtt.sample(now.saturating_duration_since(slot.sent_at));
        }
    }

    /// Refreshes the measured part of `stats` at `now`. A ping counts as lost
    /// once unanswered for twice the round trip and 100 ms (500 ms before any
    /// answer), at most `disconnect_timeout`.
    fn refresh(&mut self, stats: &mut PeerStats, now: Instant, disconnect_timeout: Duration) {
        let grace = self
            .rtt
            .smoothed()
            .map_or(Duration::from_millis(500), |srtt| {
                srtt * 2 + Duration::from_millis(100)
            })
            .min(disconnect_timeout);
        stats.rtt = self.rtt.smoothed();
        stats.rtt_var = self.rtt.var();
        stats.rtt_p99 = self.rtt.p99();
        stats.loss = loss_estimate(&self.pings, now, grace);
        stats.bytes_in_per_sec = self.meter_in.record(now, stats.bytes_in);
        stats.bytes_out_per_sec = self.meter_out.record(now, stats.bytes_out);
    }
}

impl Mesh {
    /// Pings `peer`, with our acknowledgement of its reliable bytes, and
    /// refreshes its statistics on the heartbeat's beat.
    pub(super) fn send_ping(&mut self, now: Instant, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let seq = link.heartbeats.ping(now);
        let ping = UnreliablePacket::Ping {
            seq,
            acked: link.reliable.ack_now(),
        }
        .encode();
        link.heartbeats
            .refresh(&mut link.stats, now, self.config.disconnect_timeout);
        self.push_transmit(peer, Channel::Unreliable, ping);
    }
}
