//! The one simulated network of gamenet's tests: directed links between peers,
//! each with its own seeded [`LinkConditioner`] (latency, jitter, loss and
//! duplication of unreliable packets; reliable ones are delayed, never lost),
//! partitions that heal, and peers that die. It holds no clock: callers jump
//! time to [`SimLinks::poll_timeout`], so runs are deterministic and fast.
//!
//! Built for the crate's own tests and, with the `sim` feature, for the layers
//! above (`gamenet`'s `MemoryTransport`).

use std::collections::{BTreeMap, BTreeSet};

use crate::{Bytes, Channel, ConditionerConfig, Instant, LinkConditioner, Mesh, PeerId};

/// Every directed link of a simulated network.
#[derive(Debug, Default)]
pub struct SimLinks {
    /// The conditioner of each direction, by (from, to).
    links: BTreeMap<(PeerId, PeerId), LinkConditioner<(Channel, Bytes)>>,
    /// Directions cut by a partition: what is sent on them is dropped, what
    /// was already on its way still arrives.
    blocked: BTreeSet<(PeerId, PeerId)>,
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
        self.blocked.retain(|(a, b)| *a != id && *b != id);
    }

    /// Drops everything sent between `a` and `b`, both ways, until [`SimLinks::heal`].
    pub fn partition(&mut self, a: PeerId, b: PeerId) {
        self.blocked.insert((a, b));
        self.blocked.insert((b, a));
    }

    /// Ends every partition.
    pub fn heal(&mut self) {
        self.blocked.clear();
    }

    /// Whether `a` and `b` are linked (both ways) and not partitioned.
    pub fn is_linked(&self, a: PeerId, b: PeerId) -> bool {
        [(a, b), (b, a)]
            .iter()
            .all(|d| self.links.contains_key(d) && !self.blocked.contains(d))
    }

    /// Sends one packet from `from` to `to`; dropped when they are not linked
    /// or partitioned.
    pub fn send(&mut self, now: Instant, from: PeerId, to: PeerId, channel: Channel, data: Bytes) {
        if self.blocked.contains(&(from, to)) {
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
