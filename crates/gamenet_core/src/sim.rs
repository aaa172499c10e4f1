//! The one simulated network of gamenet's tests: directed links between peers,
//! each with its own seeded [`LinkConditioner`] (latency, jitter, loss and
//! duplication of unreliable packets; reliable ones are delayed, never lost),
//! partitions that heal (an outage: unreliable packets sent meanwhile are lost,
//! reliable ones arrive after it, as the transport's retransmissions would
//! bring them), and peers that die. It holds no clock: callers jump
//! time to [`SimLinks::poll_timeout`], so runs are deterministic and fast.
//!
//! Built for the crate's own tests and, with the `sim` feature, for the layers
//! above (`gamenet`'s `MemoryTransport`).

use std::collections::BTreeMap;

use crate::{Bytes, Channel, ConditionerConfig, Instant, LinkConditioner, Mesh, PeerId};

/// Every directed link of a simulated network.
#[derive(Debug, Default)]
pub struct SimLinks {
    /// The conditioner of each direction, by (from, to).
    links: BTreeMap<(PeerId, PeerId), LinkConditioner<(Channel, Bytes)>>,
    /// Directions cut by a partition, with the reliable packets sent on them
    /// since, in order; unreliable ones are dropped. What was already on its
    /// way still arrives.
    blocked: BTreeMap<(PeerId, PeerId), Vec<Bytes>>,
}

impl SimLinks {
    /// Links `a` and `b` both ways, each direction seeded from `base` and the ids.
    pub fn connect(&mut self, a: PeerId, b: PeerId, base: &ConditionerConfig) {
        for (from, to) in [(a, b), (b, a)] {
            let cfg = ConditionerConfig {
                seed: base.seed ^ (from.0 as u64) << 16 ^ to.0 as u64,
                ..base.clone()
            };
            self.links.insert((from, to), LinkConditioner::new(cfg));
        }
    }

    /// Removes every link of `id`: nothing more reaches it or comes from it.
    pub fn cut(&mut self, id: PeerId) {
        self.links.retain(|(a, b), _| *a != id && *b != id);
        self.blocked.retain(|(a, b), _| *a != id && *b != id);
    }

    /// Cuts `a` from `b`, both ways, until [`SimLinks::heal`]: unreliable
    /// packets sent meanwhile are lost, reliable ones are held.
    pub fn partition(&mut self, a: PeerId, b: PeerId) {
        self.blocked.entry((a, b)).or_default();
        self.blocked.entry((b, a)).or_default();
    }

    /// Ends every partition at `now`: the reliable packets held by it set out.
    pub fn heal(&mut self, now: Instant) {
        for ((from, to), held) in std::mem::take(&mut self.blocked) {
            for data in held {
                self.send(now, from, to, Channel::Reliable, data);
            }
        }
    }

    /// Cuts the direction from `from` to `to` only, as [`SimLinks::partition`]
    /// does both.
    pub fn hold(&mut self, from: PeerId, to: PeerId) {
        self.blocked.entry((from, to)).or_default();
    }

    /// Ends the partition between `a` and `b` only, at `now`: the reliable
    /// packets held by it set out; other partitions stay.
    pub fn heal_pair(&mut self, now: Instant, a: PeerId, b: PeerId) {
        for (from, to) in [(a, b), (b, a)] {
            for data in self.blocked.remove(&(from, to)).unwrap_or_default() {
                self.send(now, from, to, Channel::Reliable, data);
            }
        }
    }

    /// Whether `a` and `b` are linked (both ways) and not partitioned.
    pub fn is_linked(&self, a: PeerId, b: PeerId) -> bool {
        [(a, b), (b, a)]
            .iter()
            .all(|d| self.links.contains_key(d) && !self.blocked.contains_key(d))
    }

    /// Sends one packet from `from` to `to`; dropped when they are not linked,
    /// held (reliable) or dropped (unreliable) while they are partitioned.
    pub fn send(&mut self, now: Instant, from: PeerId, to: PeerId, channel: Channel, data: Bytes) {
        if let Some(held) = self.blocked.get_mut(&(from, to)) {
            if channel == Channel::Reliable && self.links.contains_key(&(from, to)) {
                held.push(data);
            }
            return;
        }
        if let Some(link) = self.links.get_mut(&(from, to)) {
            link.send(now, (channel, data), channel == Channel::Reliable);
        }
    }

    /// The packets due at `now`: from, to, channel, bytes.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, PeerId, Channel, Bytes)> {
        let mut out = Vec::new();
        for (&(from, to), link) in &mut self.links {
            while let Some((channel, data)) = link.poll(now) {
                out.push((from, to, channel, data));
            }
        }
        out
    }

    /// Puts what `mesh` (of peer `from`) wants sent on the links.
    pub fn send_from(&mut self, now: Instant, from: PeerId, mesh: &mut Mesh) {
        while let Some(t) = mesh.poll_transmit() {
            self.send(now, from, t.peer, t.channel, t.data);
        }
    }

    /// When the next packet falls due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.links
            .values()
            .filter_map(LinkConditioner::poll_timeout)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_loses_unreliable_packets_and_holds_reliable_ones_until_it_heals() {
        let (a, b) = (PeerId(1), PeerId(2));
        let mut links = SimLinks::default();
        links.connect(a, b, &ConditionerConfig::default());
        let now = Instant::now();
        links.partition(a, b);
        assert!(!links.is_linked(a, b));
        links.send(now, a, b, Channel::Unreliable, Bytes::from_static(b"u"));
        links.send(now, a, b, Channel::Reliable, Bytes::from_static(b"r1"));
        links.send(now, b, a, Channel::Reliable, Bytes::from_static(b"r2"));
        assert!(links.due(now).is_empty());
        links.heal(now);
        assert!(links.is_linked(a, b));
        let mut got: Vec<_> = links
            .due(now)
            .into_iter()
            .map(|(f, _, c, d)| (f, c, d))
            .collect();
        got.sort_by_key(|(f, ..)| *f);
        assert_eq!(
            got,
            vec![
                (a, Channel::Reliable, Bytes::from_static(b"r1")),
                (b, Channel::Reliable, Bytes::from_static(b"r2")),
            ]
        );
    }
}
