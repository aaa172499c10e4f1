//! Rollback sessions wired to each other directly (every message delivered at
//! once, in order), a trivial game whose state is its frame number, and the
//! phases a fuzzed session is put in before its input arrives.

use std::time::Duration;

use gamenet_core::rollback::{
    Checksum, PlayerKind, Request, RollbackConfig, RollbackEvent, RollbackSession,
};
use gamenet_core::{Instant, PeerId};

/// Where the fuzzed session stands when the fuzz input reaches it, and as
/// whom it is addressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A joiner that just sent its intro to the host (peer 1) and peer 2.
    Joining,
    /// Peer 1 of a two-player start, before any intro arrived.
    Synchronizing,
    /// Peer 1, the host, of a running two-player game.
    Host,
    /// Peer 2 of a running two-player game (the host is peer 1).
    Player,
    /// A spectator (peer 3) of a running game, fed by the host.
    Spectator,
    /// The host of a running game that a spectator (peer 3) watches.
    HostWithSpectator,
    /// A player (peer 3) that joined a running three-slot game late.
    LateJoiner,
    /// The host of a three-slot game while peer 3 is being admitted.
    HostAdmitting,
}

impl Phase {
    /// Every phase, in the order the first byte of an input picks them.
    pub const ALL: [Phase; 8] = [
        Phase::Joining,
        Phase::Synchronizing,
        Phase::Host,
        Phase::Player,
        Phase::Spectator,
        Phase::HostWithSpectator,
        Phase::LateJoiner,
        Phase::HostAdmitting,
    ];

    /// The phase a byte picks.
    pub fn from_byte(b: u8) -> Self {
        Self::ALL[b as usize % Self::ALL.len()]
    }

    /// The byte that picks this phase.
    pub fn byte(self) -> u8 {
        Self::ALL.iter().position(|p| *p == self).unwrap_or(0) as u8
    }
}

/// One peer: its id and session.
pub struct Node {
    /// Its id.
    pub id: PeerId,
    /// Its session.
    pub session: RollbackSession<u16>,
}

/// Sessions joined directly, and the time.
pub struct World {
    /// The simulated clock.
    pub now: Instant,
    /// The peers.
    pub nodes: Vec<Node>,
    /// Which node the fuzz input goes to.
    pub target: usize,
    /// Every message delivered so far: (from, to, bytes); for seed inputs.
    pub log: Vec<(PeerId, PeerId, Vec<u8>)>,
    /// Whether to record [`World::log`].
    pub logging: bool,
}

/// One frame at 60 fps.
const FRAME: Duration = Duration::from_nanos(16_666_667);

fn config(slots: usize) -> RollbackConfig {
    RollbackConfig {
        num_players: slots,
        // A small snapshot cap, so that the fuzzer can reach it.
        max_snapshot_bytes: 4096,
        ..RollbackConfig::default()
    }
}

fn started(slots: usize, players: usize) -> Vec<Node> {
    let ids: Vec<PeerId> = (1..=players as u128).map(PeerId).collect();
    ids.iter()
        .map(|&id| {
            let kinds: Vec<PlayerKind> = (0..slots)
                .map(|s| match ids.get(s) {
                    Some(&p) if p == id => PlayerKind::Local,
                    Some(&p) => PlayerKind::Remote(p),
                    None => PlayerKind::Open,
                })
                .collect();
            let session = RollbackSession::start(config(slots), id, 1000 + id.0 as u64, &kinds)
                .unwrap_or_else(|e| panic!("start: {e}"));
            Node { id, session }
        })
        .collect()
}

impl World {
    /// The world of `phase`, brought to it by real sessions.
    pub fn new(phase: Phase, logging: bool) -> Self {
        let (slots, players) = match phase {
            Phase::LateJoiner | Phase::HostAdmitting => (3, 2),
            _ => (2, 2),
        };
        let mut w = World {
            now: Instant::now(),
            nodes: started(slots, players),
            target: 0,
            log: Vec::new(),
            logging,
        };
        match phase {
            Phase::Synchronizing => return w,
            Phase::Joining => {
                w.nodes.clear();
                let joiner = RollbackSession::join(config(slots), PeerId(3), 3, 1)
                    .unwrap_or_else(|e| panic!("join: {e}"));
                w.nodes.push(Node {
                    id: PeerId(3),
                    session: joiner,
                });
                let now = w.now;
                w.nodes[0].session.handle_peer_joined(now, PeerId(1));
                w.nodes[0].session.handle_peer_joined(now, PeerId(2));
                while w.nodes[0].session.poll_transmit().is_some() {}
                return w;
            }
            _ => {}
        }
        w.connect_all();
        w.run(12);
        match phase {
            Phase::Host => w.target = 0,
            Phase::Player => w.target = 1,
            Phase::Spectator | Phase::HostWithSpectator | Phase::LateJoiner => {
                let players = usize::from(phase == Phase::LateJoiner);
                w.add_joiner(players);
                w.run(20);
                w.target = if phase == Phase::HostWithSpectator {
                    0
                } else {
                    2
                };
            }
            Phase::HostAdmitting => {
                w.add_joiner(1);
                w.pump();
                w.target = 0;
            }
            Phase::Joining | Phase::Synchronizing => {}
        }
        w
    }

    fn connect_all(&mut self) {
        let now = self.now;
        let ids: Vec<PeerId> = self.nodes.iter().map(|n| n.id).collect();
        for n in &mut self.nodes {
            for &p in &ids {
                if p != n.id {
                    n.session.handle_peer_joined(now, p);
                }
            }
        }
        self.pump();
    }

    /// Peer 3 joins with `players` slots (0: spectates).
    fn add_joiner(&mut self, players: usize) {
        let slots = self.nodes[0].session.config().num_players;
        let session = RollbackSession::join(config(slots), PeerId(3), 3, players)
            .unwrap_or_else(|e| panic!("join: {e}"));
        self.nodes.push(Node {
            id: PeerId(3),
            session,
        });
        let now = self.now;
        let ids: Vec<PeerId> = self.nodes.iter().map(|n| n.id).collect();
        for n in &mut self.nodes {
            for &p in &ids {
                if p != n.id && (n.id == PeerId(3) || p == PeerId(3)) {
                    n.session.handle_peer_joined(now, p);
                }
            }
        }
        self.pump();
    }

    /// Delivers every message until all are quiet.
    pub fn pump(&mut self) {
        for _ in 0..64 {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                let from = self.nodes[i].id;
                while let Some(t) = self.nodes[i].session.poll_transmit() {
                    if let Some(j) = self.nodes.iter().position(|n| n.id == t.peer) {
                        if self.logging {
                            self.log.push((from, t.peer, t.data.to_vec()));
                        }
                        let now = self.now;
                        self.nodes[j].session.handle_message(now, from, &t.data);
                        moved = true;
                    }
                }
            }
            for n in &mut self.nodes {
                while let Some(e) = n.session.poll_event() {
                    if let RollbackEvent::PeerMisbehaved { .. } = e {
                        // Reported, as it should be; nothing else to do.
                    }
                }
            }
            if !moved {
                break;
            }
        }
    }

    /// Runs `frames` frames on every running node, delivering as it goes.
    pub fn run(&mut self, frames: usize) {
        for f in 0..frames {
            self.now += FRAME;
            let now = self.now;
            for n in &mut self.nodes {
                n.session.handle_timeout(now);
                step(&mut n.session, now, f as u16);
            }
            self.pump();
        }
    }

    /// Feeds one chunk of the `rollback_session` target to the target node:
    /// control bits 0-1 pick the sender (peer 1, 2, 3 or a stranger), bit 2
    /// runs a frame everywhere afterwards, bit 3 moves time on by a second
    /// (timers run), bit 4 delivers what the target answered, bit 5 has the
    /// sender's link drop and come back first.
    pub fn chunk(&mut self, control: u8, data: &[u8]) {
        let from = [PeerId(1), PeerId(2), PeerId(3), PeerId(99)][control as usize & 3];
        let now = self.now;
        let target = self.target;
        if from == self.nodes[target].id {
            return;
        }
        let s = &mut self.nodes[target].session;
        if control & 0x20 != 0 {
            s.handle_peer_left(now, from, gamenet_core::rollback::Leave::Lost);
            s.handle_peer_joined(now, from);
        }
        s.handle_message(now, from, data);
        if control & 8 != 0 {
            self.now += Duration::from_secs(1);
            let now = self.now;
            self.nodes[target].session.handle_timeout(now);
        }
        if control & 4 != 0 {
            self.run(1);
        }
        if control & 0x10 != 0 {
            self.pump();
        } else {
            let s = &mut self.nodes[target].session;
            while s.poll_transmit().is_some() {}
            while s.poll_event().is_some() {}
        }
        let s = &self.nodes[target].session;
        let _ = (s.poll_timeout(), s.stats(), s.host(), s.confirmed_frame());
    }
}

/// One frame of a node, if due: local inputs, the frame, the game's answers.
fn step(s: &mut RollbackSession<u16>, now: Instant, input: u16) {
    if !s.frame_due(now) {
        return;
    }
    for slot in s.local_slots() {
        let _ = s.add_local_input(slot, input);
    }
    let Ok(requests) = s.advance_frame(now) else {
        return;
    };
    for r in requests {
        match r {
            Request::Save { frame } => s.set_checksum(frame, Checksum::total(frame as u64)),
            Request::Snapshot { frame } => s.submit_snapshot(frame, frame.to_le_bytes().to_vec()),
            _ => {}
        }
    }
}
