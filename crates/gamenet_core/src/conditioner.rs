//! A seeded link conditioner: adds latency, jitter, loss and duplication to the
//! packets of one direction of a link, deterministically.
//!
//! Tests put one between simulated peers; the runtime can put one between the
//! mesh and the socket to try a game on a bad network without a bad network.
//! Reliable packets are delayed but never lost, duplicated or reordered (the
//! transport under them would not do that either).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::Instant;

/// How a conditioned link misbehaves. The default is a perfect link.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "reflect", derive(bevy_reflect::Reflect))]
pub struct ConditionerConfig {
    /// Delay added to every packet, one way.
    pub latency: Duration,
    /// Up to this much more delay, uniformly random per packet; unreliable
    /// packets get reordered by it.
    pub jitter: Duration,
    /// Probability that an unreliable packet is dropped, 0.0 to 1.0.
    pub loss: f64,
    /// Probability that an unreliable packet is delivered twice, 0.0 to 1.0.
    pub duplicate: f64,
    /// Seed of the random choices: the same seed and inputs give the same output.
    pub seed: u64,
}

impl Default for ConditionerConfig {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            seed: 0x5eed,
        }
    }
}

impl ConditionerConfig {
    /// Named links to try a game on, best first: `perfect` (no change),
    /// `wifi` (20 + 0-10 ms, 1 % loss), `mobile` (60 + 0-40 ms, 3 % loss),
    /// `bad` (120 + 0-80 ms, 10 % loss, 2 % duplicated). Delays are one way.
    pub fn presets() -> [(&'static str, ConditionerConfig); 4] {
        let link = |ms: u64, jitter: u64, loss: f64, duplicate: f64| ConditionerConfig {
            latency: Duration::from_millis(ms),
            jitter: Duration::from_millis(jitter),
            loss,
            duplicate,
            ..ConditionerConfig::default()
        };
        [
            ("perfect", ConditionerConfig::default()),
            ("wifi", link(20, 10, 0.01, 0.0)),
            ("mobile", link(60, 40, 0.03, 0.0)),
            ("bad", link(120, 80, 0.10, 0.02)),
        ]
    }

    /// The preset of that name ([`ConditionerConfig::presets`]).
    pub fn preset(name: &str) -> Option<ConditionerConfig> {
        Self::presets()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
    }
}

/// A small seeded generator (splitmix64): repeatable coin flips.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A float in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.next_f64() < p
    }
}

/// One direction of a conditioned link, holding packets of type `T` until due.
#[derive(Debug)]
pub struct LinkConditioner<T> {
    /// How the link misbehaves.
    config: ConditionerConfig,
    /// The random choices, seeded from [`ConditionerConfig::seed`].
    rng: SplitMix,
    /// The packets on their way, earliest due first, ties in the order sent.
    queue: BinaryHeap<Reverse<(Instant, u64, Scheduled<T>)>>,
    /// Sequence number of the last packet queued: the tie-break of the queue.
    seq: u64,
    /// When the last reliable packet falls due: no later one may overtake it.
    last_reliable: Option<Instant>,
}

/// A packet scheduled for delivery; ordered by nothing so the heap orders by
/// time and sequence.
#[derive(Debug)]
struct Scheduled<T>(T);

impl<T> PartialEq for Scheduled<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}
impl<T> Eq for Scheduled<T> {}
impl<T> PartialOrd for Scheduled<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Scheduled<T> {
    fn cmp(&self, _: &Self) -> std::cmp::Ordering {
        std::cmp::Ordering::Equal
    }
}

impl<T: Clone> LinkConditioner<T> {
    /// A conditioner with the given behaviour.
    pub fn new(config: ConditionerConfig) -> Self {
        let rng = SplitMix::new(config.seed);
        Self {
            config,
            rng,
            queue: BinaryHeap::new(),
            seq: 0,
            last_reliable: None,
        }
    }

    /// The behaviour.
    pub fn config(&self) -> &ConditionerConfig {
        &self.config
    }

    /// Changes the behaviour for the packets sent from now on (its random
    /// choices start over from the new seed). Packets on their way keep
    /// their times, and no reliable packet overtakes one sent before.
    pub fn set_config(&mut self, config: ConditionerConfig) {
        self.rng = SplitMix::new(config.seed);
        self.config = config;
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.config.jitter.as_secs_f64() * self.rng.next_f64();
        self.config.latency + Duration::from_secs_f64(jitter)
    }

    fn push(&mut self, at: Instant, packet: T) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, Scheduled(packet))));
    }

    /// Takes a packet sent at `now`; `reliable` packets keep their order and are
    /// never lost or duplicated.
    pub fn send(&mut self, now: Instant, packet: T, reliable: bool) {
        if reliable {
            let mut at = now + self.delay();
            if let Some(last) = self.last_reliable {
                at = at.max(last);
            }
            self.last_reliable = Some(at);
            self.push(at, packet);
            return;
        }
        if self.rng.chance(self.config.loss) {
            return;
        }
        if self.rng.chance(self.config.duplicate) {
            let at = now + self.delay();
            self.push(at, packet.clone());
        }
        let at = now + self.delay();
        self.push(at, packet);
    }

    /// The next packet due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<T> {
        match self.queue.peek() {
            Some(Reverse((at, _, _))) if *at <= now => self
                .queue
                .pop()
                .map(|Reverse((_, _, Scheduled(packet)))| packet),
            _ => None,
        }
    }

    /// When the next packet falls due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    /// Packets waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no packet is waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_config_applies_to_later_packets_and_keeps_reliable_order() {
        let now = Instant::now();
        let mut c = LinkConditioner::new(ConditionerConfig::preset("bad").unwrap());
        c.send(now, 1, true);
        c.send(now, 2, false);
        c.set_config(ConditionerConfig::default());
        assert_eq!(c.config(), &ConditionerConfig::default());
        // Sent later, on a perfect link: the unreliable one goes at once,
        // the reliable one waits for the reliable one sent before it.
        c.send(now, 3, true);
        c.send(now, 4, false);
        assert_eq!(c.poll(now), Some(4));
        assert_eq!(c.poll(now), None);
        let mut rest = Vec::new();
        while let Some(at) = c.poll_timeout() {
            assert!(at >= now + Duration::from_millis(120), "{at:?}");
            rest.extend(c.poll(at));
        }
        rest.retain(|p| *p != 2); // possibly lost
        assert_eq!(rest, [1, 3]);
        let names: Vec<&str> = ConditionerConfig::presets().iter().map(|p| p.0).collect();
        assert_eq!(names, ["perfect", "wifi", "mobile", "bad"]);
        assert_eq!(ConditionerConfig::preset("nope"), None);
    }

    #[test]
    fn delays_drops_and_keeps_reliable_order() {
        let now = Instant::now();
        let mut c = LinkConditioner::new(ConditionerConfig {
            latency: Duration::from_millis(50),
            jitter: Duration::from_millis(20),
            loss: 0.5,
            duplicate: 0.0,
            seed: 7,
        });
        for i in 0..1000u32 {
            c.send(now, (true, i), true);
            c.send(now, (false, i), false);
        }
        assert!(c.poll(now + Duration::from_millis(49)).is_none());
        let end = now + Duration::from_millis(71);
        let (mut reliable, mut unreliable) = (Vec::new(), 0);
        while let Some((r, i)) = c.poll(end) {
            if r {
                reliable.push(i);
            } else {
                unreliable += 1;
            }
        }
        assert_eq!(reliable, (0..1000).collect::<Vec<_>>());
        assert!((400..600).contains(&unreliable), "{unreliable}");
    }
}
