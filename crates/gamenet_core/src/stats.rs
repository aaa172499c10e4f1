//! Per-peer link statistics: round-trip time, loss and throughput.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Instant;

/// A snapshot of one peer link's statistics, refreshed on every heartbeat.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PeerStats {
    /// Smoothed round-trip time (RFC 6298), once a heartbeat was answered.
    pub rtt: Option<Duration>,
    /// Round-trip time variation (RFC 6298).
    pub rtt_var: Option<Duration>,
    /// 99th percentile of the last heartbeat round trips.
    pub rtt_p99: Option<Duration>,
    /// Fraction of recent heartbeats lost in either direction, from 0.0 to 1.0.
    pub loss: f32,
    /// Bytes per second received from the peer over the last second.
    pub bytes_in_per_sec: f64,
    /// Bytes per second sent to the peer over the last second.
    pub bytes_out_per_sec: f64,
    /// Bytes received from the peer in all.
    pub bytes_in: u64,
    /// Bytes sent to the peer in all.
    pub bytes_out: u64,
    /// Packets received from the peer in all.
    pub packets_in: u64,
    /// Packets sent to the peer in all.
    pub packets_out: u64,
    /// Reliable bytes sent but not yet acknowledged by the peer.
    pub reliable_in_flight: u64,
    /// Reliable bytes queued and not yet sent, for lack of send window.
    pub reliable_queued: usize,
    /// Unreliable packets from the peer dropped unread: over its inbound
    /// budget ([`MeshConfig::inbound_packets_per_sec`](crate::MeshConfig::inbound_packets_per_sec)
    /// and the settings beside it).
    pub dropped_in: u64,
}

/// How many round-trip samples the percentile is taken over.
const RTT_SAMPLES: usize = 128;
/// How many heartbeats the loss estimate looks back over.
pub(crate) const PING_SLOTS: usize = 128;

/// RFC 6298 smoothing plus a window of raw samples for percentiles.
///
/// The one round-trip smoother of the crate: the mesh keeps one per link, and
/// any layer that measures its own round trips can keep one the same way.
#[derive(Debug, Default)]
pub(crate) struct RttEstimator {
    /// The smoothed round-trip time, once a sample arrived.
    srtt: Option<Duration>,
    /// The round-trip time variation.
    rttvar: Duration,
    /// The last [`RTT_SAMPLES`] raw samples, oldest first.
    samples: VecDeque<Duration>,
}

impl RttEstimator {
    /// Takes in one measured round trip.
    pub(crate) fn sample(&mut self, rtt: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = rtt / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(rtt);
                self.rttvar = (self.rttvar * 3 + delta) / 4;
                self.srtt = Some((srtt * 7 + rtt) / 8);
            }
        }
        if self.samples.len() == RTT_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(rtt);
    }

    /// The smoothed round-trip time, once a sample arrived.
    pub(crate) fn smoothed(&self) -> Option<Duration> {
        self.srtt
    }

    /// The round-trip time variation, once a sample arrived.
    pub(crate) fn var(&self) -> Option<Duration> {
        self.srtt.map(|_| self.rttvar)
    }

    /// The 99th percentile of the recent samples, once a sample arrived.
    pub(crate) fn p99(&self) -> Option<Duration> {
        if self.samples.is_empty() {
            return None;
        }
        let mut sorted: Vec<Duration> = self.samples.iter().copied().collect();
        sorted.sort_unstable();
        let rank = (sorted.len() * 99).div_ceil(100).max(1) - 1;
        sorted.get(rank).copied()
    }
}

/// One heartbeat sent, waiting for its answer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PingSlot {
    /// Sequence number of the heartbeat.
    pub(crate) seq: u32,
    /// When it was sent.
    pub(crate) sent_at: Instant,
    /// Whether its answer arrived.
    pub(crate) answered: bool,
}

/// Loss over the heartbeats old enough to have been answered.
pub(crate) fn loss_estimate(slots: &[Option<PingSlot>], now: Instant, grace: Duration) -> f32 {
    let mut settled = 0u32;
    let mut lost = 0u32;
    for slot in slots.iter().flatten() {
        if slot.answered {
            settled += 1;
        } else if now.saturating_duration_since(slot.sent_at) >= grace {
            settled += 1;
            lost += 1;
        }
    }
    if settled == 0 {
        0.0
    } else {
        lost as f32 / settled as f32
    }
}

/// Bytes per second over a sliding window of about one second.
#[derive(Debug, Default)]
pub(crate) struct RateMeter {
    /// Running totals and when they were recorded, oldest first, spanning
    /// about [`RateMeter::WINDOW`].
    samples: VecDeque<(Instant, u64)>,
}

impl RateMeter {
    /// How far back the rate looks.
    const WINDOW: Duration = Duration::from_secs(1);

    /// Records the running total at `now` and returns the rate over the window.
    pub(crate) fn record(&mut self, now: Instant, total: u64) -> f64 {
        self.samples.push_back((now, total));
        while self.samples.len() > 2 {
            match self.samples.get(1) {
                Some(&(t, _)) if now.saturating_duration_since(t) >= Self::WINDOW => {
                    self.samples.pop_front();
                }
                _ => break,
            }
        }
        match (self.samples.front(), self.samples.back()) {
            (Some(&(t0, b0)), Some(&(t1, b1))) if t1 > t0 => {
                (b1.saturating_sub(b0)) as f64 / t1.saturating_duration_since(t0).as_secs_f64()
            }
            _ => 0.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtt_smooths_and_ranks() {
        let mut rtt = RttEstimator::default();
        assert_eq!(rtt.p99(), None);
        for ms in 1..=100 {
            rtt.sample(Duration::from_millis(ms));
        }
        assert_eq!(rtt.p99(), Some(Duration::from_millis(99)));
        let srtt = rtt.smoothed().unwrap_or_default();
        assert!(srtt > Duration::from_millis(80) && srtt < Duration::from_millis(100));
    }

    #[test]
    fn loss_counts_only_settled_pings() {
        let t0 = Instant::now();
        let grace = Duration::from_millis(100);
        let slot = |ms: u64, answered| {
            Some(PingSlot {
                seq: 0,
                sent_at: t0 + Duration::from_millis(ms),
                answered,
            })
        };
        let slots = [
            slot(0, true),
            slot(10, false),
            slot(20, true),
            slot(500, false),
            None,
        ];
        // At 400 ms the ping sent at 500 ms does not count yet: one lost of three.
        let loss = loss_estimate(&slots, t0 + Duration::from_millis(400), grace);
        assert!((loss - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn meter_measures_over_a_second() {
        let t0 = Instant::now();
        let mut meter = RateMeter::default();
        let mut rate = 0.0;
        for i in 0..=30u64 {
            rate = meter.record(t0 + Duration::from_millis(100 * i), 1000 * i);
        }
        assert!((rate - 10_000.0).abs() < 1.0, "{rate}");
    }
}
