//! Simulated links between meshes, for the deterministic tests: one seeded
//! [`LinkConditioner`] per direction.

use std::collections::BTreeMap;

use crate::{Bytes, Channel, ConditionerConfig, Instant, LinkConditioner, Mesh, PeerId};

/// Every directed link of a simulated network.
#[derive(Default)]
pub(crate) struct SimLinks {
    links: BTreeMap<(PeerId, PeerId), LinkConditioner<(Channel, Bytes)>>,
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
            if let Some(link) = self.links.get_mut(&(from, t.peer)) {
                link.send(now, (t.channel, t.data), t.channel == Channel::Reliable);
            }
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
