//! Rollback sessions over a simulated network: real meshes, seeded link
//! conditioners (latency, jitter, loss, duplication, reordering) and a small
//! deterministic game; time jumps from one deadline to the next.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use super::wire::Msg;
use super::*;
use crate::conditioner::SplitMix;
use crate::sim::SimLinks;
use crate::{
    Channel, ConditionerConfig, Event, GoodbyeReason, Instant, LeaveReason, Mesh, MeshConfig,
    Misbehavior, PeerId,
};

mod departure;
mod desync;
mod frozen;
mod heal;
mod hostile;
mod in_step;
mod late_join;
mod partition;
mod reconnect;
mod spectator;

/// The toy game: players move on a grid by their inputs; a running score
/// mixes every position, so any divergence shows in the checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
struct State {
    frame: Frame,
    pos: Vec<(i32, i32)>,
    present: Vec<bool>,
    score: u64,
    /// Touched by nothing but the test's non-determinism.
    sparkle: u32,
}

impl State {
    fn new(n: usize) -> Self {
        Self {
            frame: 0,
            pos: vec![(0, 0); n],
            present: vec![false; n],
            score: 0,
            sparkle: 0,
        }
    }

    fn advance(&mut self, inputs: &[(u16, InputStatus)]) {
        for (i, (input, status)) in inputs.iter().enumerate() {
            if *status == InputStatus::Disconnected {
                self.present[i] = false;
                continue;
            }
            self.present[i] = true;
            let dx = (input & 3) as i32 - 1;
            let dy = ((input >> 2) & 3) as i32 - 1;
            self.pos[i].0 += dx * 3;
            self.pos[i].1 += dy * 3;
        }
        for (i, p) in self.pos.iter().enumerate() {
            if self.present[i] {
                self.score = self
                    .score
                    .wrapping_mul(0x100_0000_01b3)
                    .wrapping_add((p.0 as u64) << 32 ^ p.1 as u64 ^ i as u64);
            }
        }
        self.frame += 1;
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.frame.to_le_bytes().to_vec();
        out.extend(self.sparkle.to_le_bytes());
        out.extend(self.score.to_le_bytes());
        for (i, p) in self.pos.iter().enumerate() {
            out.extend(p.0.to_le_bytes());
            out.extend(p.1.to_le_bytes());
            out.push(self.present[i] as u8);
        }
        out
    }

    fn decode(bytes: &[u8], n: usize) -> Self {
        let mut s = State::new(n);
        s.frame = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
        s.sparkle = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
        s.score = u64::from_le_bytes(bytes[8..16].try_into().unwrap());
        for i in 0..n {
            let at = 16 + i * 9;
            s.pos[i].0 = i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
            s.pos[i].1 = i32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap());
            s.present[i] = bytes[at + 8] != 0;
        }
        s
    }

    fn checksum(&self) -> Checksum {
        let pos = part_id(&format!("{:?}", self.pos));
        let score = self.score;
        Checksum {
            total: pos ^ score.rotate_left(17) ^ (self.sparkle as u64).rotate_left(40),
            parts: vec![
                ChecksumPart {
                    name: "Position".into(),
                    value: pos,
                },
                ChecksumPart {
                    name: "Score".into(),
                    value: score,
                },
                ChecksumPart {
                    name: "Sparkle".into(),
                    value: self.sparkle as u64,
                },
            ],
        }
    }
}

/// The game side of one peer: state, saved states (only as many as the
/// session promises to need), and the state at the frame the test compares.
struct Game {
    n: usize,
    state: State,
    saved: BTreeMap<Frame, State>,
    keep: u32,
    target: Frame,
    at_target: Option<State>,
    /// Frames whose simulation a non-deterministic bug perturbs, for the
    /// desync tests: (slot, on every run from this many runs on).
    perturb: Option<usize>,
    runs: HashMap<Frame, u32>,
}

impl Game {
    fn new(n: usize, window: u32, target: Frame) -> Self {
        Self {
            n,
            state: State::new(n),
            saved: BTreeMap::new(),
            keep: window + 2,
            target,
            at_target: None,
            perturb: None,
            runs: HashMap::new(),
        }
    }

    fn handle(&mut self, session: &mut impl GameSession, requests: Vec<Request<u16>>) {
        for r in requests {
            match r {
                Request::Save { frame } => {
                    assert_eq!(self.state.frame, frame);
                    self.saved.insert(frame, self.state.clone());
                    while self.saved.len() > self.keep as usize {
                        self.saved.pop_first();
                    }
                    if frame == self.target {
                        self.at_target = Some(self.state.clone());
                    }
                    session.set_checksum(frame, self.state.checksum());
                }
                Request::Load { frame } => {
                    self.state = self
                        .saved
                        .get(&frame)
                        .unwrap_or_else(|| panic!("load of frame {frame}, not kept"))
                        .clone();
                }
                Request::Advance { frame, inputs } => {
                    assert_eq!(self.state.frame, frame);
                    assert_eq!(inputs.len(), self.n);
                    self.state.advance(&inputs);
                    if let Some(slot) = self.perturb {
                        let runs = self.runs.entry(frame).or_default();
                        *runs += 1;
                        if *runs > 1 {
                            self.state.sparkle += slot as u32 + 1;
                        }
                    }
                }
                Request::LoadSnapshot { frame, data } => {
                    self.state = State::decode(&data, self.n);
                    assert_eq!(self.state.frame, frame);
                }
                Request::Snapshot { frame } => {
                    let data = self.saved[&frame].encode();
                    session.submit_snapshot(frame, data);
                }
            }
        }
    }
}

/// What the toy game calls back on a session while carrying out requests.
trait GameSession {
    fn set_checksum(&mut self, frame: Frame, checksum: Checksum);
    fn submit_snapshot(&mut self, frame: Frame, data: Vec<u8>);
}

impl GameSession for RollbackSession<u16> {
    fn set_checksum(&mut self, frame: Frame, checksum: Checksum) {
        RollbackSession::set_checksum(self, frame, checksum);
    }
    fn submit_snapshot(&mut self, frame: Frame, data: Vec<u8>) {
        RollbackSession::submit_snapshot(self, frame, data);
    }
}

impl GameSession for SyncTestSession<u16> {
    fn set_checksum(&mut self, frame: Frame, checksum: Checksum) {
        SyncTestSession::set_checksum(self, frame, checksum);
    }
    fn submit_snapshot(&mut self, _frame: Frame, _data: Vec<u8>) {
        panic!("a sync test asks for no snapshot");
    }
}

struct Node {
    id: PeerId,
    mesh: Mesh,
    session: RollbackSession<u16>,
    game: Game,
    alive: bool,
    rng: SplitMix,
    input: u16,
    events: Vec<RollbackEvent>,
    stop_at: Option<Frame>,
    /// Its game loop is held (a hidden tab): the mesh still runs, what it
    /// hears waits here for the session.
    frozen: bool,
    backlog: Vec<Event>,
    /// Every final checksum it recorded, with the members it counted then.
    timeline: BTreeMap<Frame, (u64, BTreeSet<PeerId>)>,
    /// The peers it reported misbehaving (only a hostile test allows any).
    misbehaved: Vec<(PeerId, Misbehavior)>,
    /// Which of its session's messages go out (a rogue's filter).
    outbox: Option<Outbox>,
}

impl Node {
    /// Records the final checksums not recorded yet, with the members counted.
    fn record_timeline(&mut self, interval: u32) {
        let confirmed = self.session.confirmed_frame();
        let from = confirmed.saturating_sub(4 * interval) / interval * interval;
        for f in (from..=confirmed).step_by(interval as usize) {
            if self.timeline.contains_key(&f) {
                continue;
            }
            if let Some(c) = self.session.confirmed_checksum(f) {
                let members = self.session.members().collect();
                self.timeline.insert(f, (c.total, members));
            }
        }
    }
}

/// A rogue's filter of its session's messages: which go out.
type Outbox = Box<dyn FnMut(PeerId, &[u8]) -> bool>;

struct Net {
    now: Instant,
    start: Instant,
    config: RollbackConfig,
    link: ConditionerConfig,
    nodes: Vec<Node>,
    links: SimLinks,
    target: Frame,
    next_id: u128,
    /// Whether peers may misbehave (a hostile test): reported misbehavior is
    /// recorded and the peer dropped, instead of failing the test.
    hostile: bool,
}

impl Net {
    fn new(players: usize, link: ConditionerConfig, target: Frame) -> Self {
        Self::with_kinds(players, players, link, target)
    }

    /// `slots` slots, the first `players` of them played from the start.
    fn with_kinds(slots: usize, players: usize, link: ConditionerConfig, target: Frame) -> Self {
        let config = RollbackConfig {
            num_players: slots,
            ..RollbackConfig::default()
        };
        let now = Instant::now();
        let mut net = Net {
            now,
            start: now,
            config: config.clone(),
            link,
            nodes: Vec::new(),
            links: SimLinks::default(),
            target,
            next_id: 1,
            hostile: false,
        };
        let ids: Vec<PeerId> = (0..players).map(|i| PeerId(i as u128 + 1)).collect();
        net.next_id = players as u128 + 1;
        for (i, &id) in ids.iter().enumerate() {
            let kinds: Vec<PlayerKind> = (0..slots)
                .map(|s| match ids.get(s) {
                    Some(&p) if p == id => PlayerKind::Local,
                    Some(&p) => PlayerKind::Remote(p),
                    None => PlayerKind::Open,
                })
                .collect();
            let session =
                RollbackSession::start(config.clone(), id, 1000 + i as u64, &kinds).unwrap();
            net.add_node(id, session);
        }
        net
    }

    fn add_node(&mut self, id: PeerId, session: RollbackSession<u16>) {
        let mesh = Mesh::new(MeshConfig::default()).unwrap();
        let game = Game::new(
            self.config.num_players,
            self.config.prediction_window,
            self.target,
        );
        let seed = id.0 as u64 * 7919;
        let node = Node {
            id,
            mesh,
            session,
            game,
            alive: true,
            rng: SplitMix::new(seed),
            input: 0,
            events: Vec::new(),
            stop_at: None,
            frozen: false,
            backlog: Vec::new(),
            timeline: BTreeMap::new(),
            misbehaved: Vec::new(),
            outbox: None,
        };
        let existing: Vec<PeerId> = self
            .nodes
            .iter()
            .filter(|n| n.alive)
            .map(|n| n.id)
            .collect();
        self.nodes.push(node);
        let now = self.now;
        for other in existing {
            self.links.connect(id, other, &self.link);
            for (a, b) in [(id, other), (other, id)] {
                let i = self.index(a);
                self.nodes[i].mesh.handle_connected(now, b);
            }
        }
    }

    /// Sends `msg` from node `from` to node `to` as a reliable message of the
    /// session's (what a rogue peer would send).
    fn inject(&mut self, from: usize, to: usize, msg: &Msg<u16>) {
        let to = self.nodes[to].id;
        let _ = self.nodes[from]
            .mesh
            .send(to, Channel::Reliable, &msg.encode());
    }

    fn index(&self, id: PeerId) -> usize {
        self.nodes.iter().position(|n| n.id == id).unwrap()
    }

    fn new_id(&mut self) -> PeerId {
        self.next_id += 1;
        PeerId(self.next_id + 100)
    }

    /// Kills a node. `close` tells the others' transports at once (a closed
    /// connection); otherwise only their heartbeats find out.
    fn kill(&mut self, i: usize, close: bool) {
        self.nodes[i].alive = false;
        let id = self.nodes[i].id;
        self.links.cut(id);
        if close {
            let now = self.now;
            for n in self.nodes.iter_mut().filter(|n| n.alive) {
                n.mesh.handle_disconnected(now, id);
            }
        }
    }

    /// One pass over every node at `now`.
    fn pass(&mut self) {
        let now = self.now;
        // Deliver due packets.
        for (from, to, channel, data) in self.links.due(now) {
            let i = self.index(to);
            self.nodes[i].mesh.handle_packet(now, from, channel, data);
        }
        let target = self.target;
        for n in self.nodes.iter_mut().filter(|n| n.alive) {
            if n.mesh.poll_timeout().is_some_and(|t| t <= now) {
                n.mesh.handle_timeout(now);
            }
            if n.frozen {
                n.backlog.extend(std::iter::from_fn(|| n.mesh.poll_event()));
                continue;
            }
            let backlog = std::mem::take(&mut n.backlog);
            for e in backlog
                .into_iter()
                .chain(std::iter::from_fn(|| n.mesh.poll_event()))
            {
                match e {
                    Event::PeerJoined(p) => n.session.handle_peer_joined(now, p),
                    Event::PeerLeft { peer, reason } => {
                        n.session.handle_peer_left(now, peer, leave_of(&reason))
                    }
                    Event::Message { peer, payload, .. } => {
                        n.session.handle_message(now, peer, &payload)
                    }
                    Event::PeerInterrupted(_) | Event::PeerResumed(_) => {}
                    other => panic!("mesh event {other:?}"),
                }
            }
            if n.session.poll_timeout().is_some_and(|t| t <= now) {
                n.session.handle_timeout(now);
            }
            let done = n.session.confirmed_checksum(target).is_some();
            let stop = n.stop_at.unwrap_or(Frame::MAX);
            while !done && n.session.current_frame() < stop && n.session.frame_due(now) {
                if n.rng.chance(0.125) {
                    n.input = (n.rng.next_u64() & 0xf) as u16;
                }
                for s in n.session.local_slots() {
                    n.session.add_local_input(s, n.input).unwrap();
                }
                match n.session.advance_frame(now) {
                    Ok(requests) => n.game.handle(&mut n.session, requests),
                    Err(RollbackError::Stalled) => break,
                    Err(e) => panic!("{e}"),
                }
                if n.session.confirmed_checksum(target).is_some() {
                    break;
                }
            }
            while let Some(e) = n.session.poll_event() {
                if let RollbackEvent::PeerMisbehaved { peer, reason } = &e {
                    assert!(self.hostile, "{}: {e:?}", n.id);
                    // As a transport would: the rule breaker is dropped.
                    n.misbehaved.push((*peer, reason.clone()));
                    n.mesh.drop_peer(*peer);
                }
                if std::env::var_os("ROLLBACK_TRACE").is_some() {
                    eprintln!(
                        "{:>8.3}s {} {e:?}",
                        (now - self.start).as_secs_f64(),
                        n.id.0
                    );
                }
                if let RollbackEvent::Ended { .. } = &e {
                    // As a transport would: it leaves the mesh.
                    n.mesh.close();
                }
                n.events.push(e);
            }
            while let Some(t) = n.session.poll_transmit() {
                if n.outbox.as_mut().is_none_or(|keep| keep(t.peer, &t.data)) {
                    let _ = n.mesh.send(t.peer, t.channel, &t.data);
                }
            }
            n.record_timeline(self.config.checksum_interval);
        }
        for n in self.nodes.iter_mut().filter(|n| n.alive) {
            self.links.send_from(now, n.id, &mut n.mesh);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let links = self.links.poll_timeout();
        let nodes = self.nodes.iter().filter(|n| n.alive).flat_map(|n| {
            let session = (!n.frozen).then(|| n.session.poll_timeout()).flatten();
            [n.mesh.poll_timeout(), session].into_iter().flatten()
        });
        links.into_iter().chain(nodes).min()
    }

    /// Runs until `until` returns true (checked after every pass) or the
    /// simulated clock passes `limit`.
    fn run(&mut self, limit: Duration, mut until: impl FnMut(&mut Net) -> bool) {
        let end = self.start + limit;
        loop {
            self.pass();
            if until(self) {
                return;
            }
            let next = self
                .next_deadline()
                .unwrap_or(self.now + Duration::from_millis(1));
            // Frames are due on the session clock; never stand still.
            self.now = next.max(self.now + Duration::from_micros(100));
            assert!(
                self.now < end,
                "not done after {limit:?} of simulated time: {}",
                self.report()
            );
        }
    }

    fn all_done(&self) -> bool {
        self.nodes
            .iter()
            .filter(|n| n.alive)
            .all(|n| n.session.confirmed_checksum(self.target).is_some())
    }

    fn report(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "\n  {} alive {} {:?} {:?}",
                    n.id,
                    n.alive,
                    n.session.stats(),
                    n.events.iter().rev().take(3).collect::<Vec<_>>()
                )
            })
            .collect()
    }

    /// Asserts every live node reached the target with the same state, no
    /// desync, and that checksums were actually compared.
    fn assert_in_step(&self) {
        let live: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.nodes[i].alive)
            .collect();
        self.assert_in_step_among(&live);
    }

    /// Asserts that no two nodes recorded different checksums of a frame while
    /// each counted the other as a member: one timeline, whatever happened.
    fn assert_one_timeline(&self) {
        let mut compared = 0;
        for a in &self.nodes {
            for b in &self.nodes {
                if a.id >= b.id {
                    continue;
                }
                for (f, (sum_a, members_a)) in &a.timeline {
                    let Some((sum_b, members_b)) = b.timeline.get(f) else {
                        continue;
                    };
                    if members_a.contains(&b.id) && members_b.contains(&a.id) {
                        compared += 1;
                        assert_eq!(
                            sum_a, sum_b,
                            "{} and {} disagree on frame {f} as members of each other",
                            a.id, b.id
                        );
                    }
                }
            }
        }
        assert!(compared > 0, "no frame compared");
    }

    /// [`Net::assert_in_step`] for the nodes at `indices`.
    fn assert_in_step_among(&self, indices: &[usize]) {
        let live: Vec<&Node> = indices.iter().map(|&i| &self.nodes[i]).collect();
        let first = live[0].game.at_target.clone().expect("state at target");
        for n in &live {
            let stats = n.session.stats();
            println!("{}: {stats:?}", n.id);
            for e in &n.events {
                assert!(
                    !matches!(e, RollbackEvent::DesyncDetected { .. }),
                    "{}: {e:?}",
                    n.id
                );
            }
            assert_eq!(n.game.at_target.as_ref(), Some(&first), "{} differs", n.id);
            assert_eq!(
                n.session.confirmed_checksum(self.target).map(|c| c.total),
                Some(first.checksum().total)
            );
            assert!(
                stats.checksums_matched > 0,
                "{}: no checksum compared",
                n.id
            );
        }
    }
}

/// How the session hears of a mesh's `PeerLeft`: a goodbye on leaving the
/// mesh is a quit.
fn leave_of(reason: &LeaveReason) -> Leave {
    match reason {
        LeaveReason::Left(GoodbyeReason::Leaving) => Leave::Quit,
        _ => Leave::Lost,
    }
}

fn bad_link(seed: u64) -> ConditionerConfig {
    ConditionerConfig {
        latency: Duration::from_millis(50),
        jitter: Duration::from_millis(20),
        loss: 0.10,
        duplicate: 0.02,
        seed,
    }
}
