//! The test driver: peers on a [`MemoryNetwork`], each passed over in turn,
//! while the simulated clock jumps from one deadline to the next.
//!
//! Vocabulary: a [`Peer`] makes one `pass` (take in, run what is due, send)
//! and names its next deadline; [`Sim::step`] passes every peer once and moves
//! the clock; [`Sim::drive`] steps until a condition holds.
#![allow(dead_code)]

pub mod game;

use std::time::Duration;

use gamenet::{ConditionerConfig, Instant, MemoryNetwork};

/// Shortest move of the clock per step, so that a peer whose deadline has
/// passed (a stalled frame) cannot hold time still.
const MIN_STEP: Duration = Duration::from_millis(1);

/// One peer as the driver sees it.
pub trait Peer {
    /// One pass at the network's time: take in, run what is due, send.
    fn pass(&mut self);
    /// When this peer next wants a pass.
    fn poll_timeout(&self) -> Option<Instant>;
}

/// Peers on a simulated network.
pub struct Sim<P> {
    /// The network, its clock and links.
    pub net: MemoryNetwork,
    /// The peers, in the order they pass.
    pub peers: Vec<P>,
}

impl<P: Peer> Sim<P> {
    /// Every peer passes once; then the clock jumps to the earliest deadline
    /// of the network and the peers.
    pub fn step(&mut self) {
        for peer in &mut self.peers {
            peer.pass();
        }
        let now = self.net.now();
        let next = self
            .peers
            .iter()
            .filter_map(P::poll_timeout)
            .chain(self.net.next_deadline())
            .min()
            .unwrap_or(now + MIN_STEP);
        self.net.advance_to(next.max(now + MIN_STEP));
    }

    /// Steps until `done` holds, which must happen within `limit` of
    /// simulated time.
    pub fn drive(&mut self, limit: Duration, mut done: impl FnMut(&[P]) -> bool) {
        let end = self.net.now() + limit;
        while !done(&self.peers) {
            assert!(
                self.net.now() < end,
                "not done after {limit:?} of simulated time"
            );
            self.step();
        }
    }

    /// Steps for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.net.now() + d;
        while self.net.now() < end {
            self.step();
        }
    }
}

/// A bad link: 50 ms one way, 20 ms of jitter, 10 % of unreliable packets
/// lost and 2 % duplicated.
pub fn bad_link(seed: u64) -> ConditionerConfig {
    ConditionerConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(20),
        loss: 0.10,
        duplicate: 0.02,
        seed,
    }
}
