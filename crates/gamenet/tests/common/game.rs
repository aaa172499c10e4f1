//! A rollback player on a [`MemoryTransport`], playing a toy game whose
//! state mixes every input of every slot, so any divergence shows in its
//! checksum.

use std::collections::BTreeMap;
use std::time::Duration;

use gamenet::rollback::{
    Checksum, Frame, InputStatus, Request, RollbackConfig, RollbackError, RollbackEvent,
    RollbackNet, RollbackSession, RollbackStart,
};
use gamenet::{ConditionerConfig, Event, Instant, MemoryNetwork, MemoryTransport, PeerId};

use super::{Peer, Sim};

/// Saved states kept, well over the prediction window.
const KEEP: usize = 64;

/// The toy game's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    /// The next frame to simulate.
    pub frame: Frame,
    /// Every input so far, mixed.
    pub score: u64,
}

impl State {
    fn advance(&mut self, inputs: &[(u16, InputStatus)]) {
        for (slot, (input, status)) in inputs.iter().enumerate() {
            let v = match status {
                InputStatus::Disconnected => 0xdead,
                _ => u64::from(*input),
            };
            self.score = self.score.wrapping_mul(0x100_0000_01b3) ^ (v << 8 | slot as u64);
        }
        self.frame += 1;
    }

    fn checksum(&self) -> Checksum {
        Checksum::total(self.score ^ u64::from(self.frame).rotate_left(40))
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = self.frame.to_le_bytes().to_vec();
        out.extend(self.score.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Self {
        Self {
            frame: Frame::from_le_bytes(bytes[..4].try_into().unwrap()),
            score: u64::from_le_bytes(bytes[4..12].try_into().unwrap()),
        }
    }
}

/// The game side of one player.
pub struct Game {
    /// The game's state.
    pub state: State,
    /// Saved states by frame.
    saved: BTreeMap<Frame, State>,
    /// The frame whose confirmed checksum ends the run.
    target: Frame,
    /// The state saved at the target frame.
    pub at_target: Option<State>,
    /// This player's input, changed now and then.
    input: u16,
    /// The seeded generator behind the input.
    rng: u64,
}

impl Game {
    fn next_input(&mut self) -> u16 {
        self.rng = self.rng.wrapping_mul(6364136223846793005).wrapping_add(1);
        if self.rng >> 61 == 0 {
            self.input = (self.rng >> 32) as u16 & 0xf;
        }
        self.input
    }

    /// Runs the frames due at `now`, until the target frame is confirmed.
    fn run_frames(&mut self, session: &mut RollbackSession<u16>, now: Instant) {
        while session.confirmed_checksum(self.target).is_none() && session.frame_due(now) {
            let input = self.next_input();
            for slot in session.local_slots() {
                session.add_local_input(slot, input).unwrap();
            }
            match session.advance_frame(now) {
                Ok(requests) => self.handle(session, requests),
                Err(RollbackError::Stalled) => break,
                Err(e) => panic!("{}: {e}", session.id()),
            }
        }
    }

    fn handle(&mut self, session: &mut RollbackSession<u16>, requests: Vec<Request<u16>>) {
        for request in requests {
            match request {
                Request::Save { frame } => {
                    assert_eq!(self.state.frame, frame);
                    self.saved.insert(frame, self.state.clone());
                    while self.saved.len() > KEEP {
                        self.saved.pop_first();
                    }
                    if frame == self.target {
                        self.at_target = Some(self.state.clone());
                    }
                    session.set_checksum(frame, self.state.checksum());
                }
                Request::Load { frame } => self.state = self.saved[&frame].clone(),
                Request::Advance { frame, inputs } => {
                    assert_eq!(self.state.frame, frame);
                    self.state.advance(&inputs);
                }
                Request::LoadSnapshot { data, .. } => self.state = State::decode(&data),
                Request::Snapshot { frame } => {
                    session.submit_snapshot(frame, self.saved[&frame].encode());
                }
            }
        }
    }
}

/// One player: the layer, the game, and what happened to it.
pub struct Player {
    /// The rollback layer on this player's transport.
    pub net: RollbackNet<u16, MemoryTransport>,
    /// The game.
    pub game: Game,
    /// Rollback events, in order.
    pub events: Vec<RollbackEvent>,
    /// Mesh events, in order.
    pub mesh_events: Vec<Event>,
}

impl Player {
    /// Player `id` of a game that starts with `players` players and runs
    /// until frame `target` is confirmed.
    pub fn new(net: &MemoryNetwork, id: u128, players: usize, target: Frame) -> Self {
        let transport = net.transport(PeerId(id)).expect("a new id");
        let config = RollbackConfig {
            num_players: players,
            ..RollbackConfig::default()
        };
        let start = RollbackStart::Players(players);
        Self {
            net: RollbackNet::new(transport, config, start, 1000 + id as u64),
            game: Game {
                state: State::default(),
                saved: BTreeMap::new(),
                target,
                at_target: None,
                input: 0,
                rng: id as u64 * 7919,
            },
            events: Vec::new(),
            mesh_events: Vec::new(),
        }
    }

    /// This player's id.
    pub fn id(&self) -> PeerId {
        self.net.mesh().id()
    }

    /// The confirmed checksum of the target frame, once known.
    pub fn target_checksum(&self) -> Option<u64> {
        let session = self.net.session()?;
        session
            .confirmed_checksum(self.game.target)
            .map(|c| c.total)
    }

    /// Whether this player has confirmed the target frame.
    pub fn done(&self) -> bool {
        self.target_checksum().is_some()
    }
}

impl Peer for Player {
    fn pass(&mut self) {
        self.net.update();
        let now = self.net.now();
        if let Some(session) = self.net.session_mut() {
            self.game.run_frames(session, now);
        }
        self.net.flush();
        self.events
            .extend(std::iter::from_fn(|| self.net.poll_rollback_event()));
        self.mesh_events
            .extend(std::iter::from_fn(|| self.net.poll_event()));
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.net.poll_timeout()
    }
}

/// `n` players, ids 1 to `n`, on a network whose links behave as `link`,
/// playing until frame `target` is confirmed.
pub fn game(n: usize, link: ConditionerConfig, target: Frame) -> Sim<Player> {
    let net = MemoryNetwork::new(link);
    let peers = (1..=n as u128)
        .map(|id| Player::new(&net, id, n, target))
        .collect();
    Sim { net, peers }
}

/// Asserts that `players` all confirmed the target frame with the same state
/// and checksum, compared checksums along the way and saw no desync.
pub fn assert_in_step<'a>(players: impl IntoIterator<Item = &'a Player>) {
    let players: Vec<&Player> = players.into_iter().collect();
    let first = players[0];
    let state = first.game.at_target.clone().expect("a state at the target");
    for p in &players {
        let desync = p
            .events
            .iter()
            .find(|e| matches!(e, RollbackEvent::DesyncDetected { .. }));
        assert_eq!(desync, None, "{}", p.id());
        assert_eq!(p.game.at_target.as_ref(), Some(&state), "{}", p.id());
        assert_eq!(p.target_checksum(), first.target_checksum(), "{}", p.id());
        let stats = p.net.session().expect("a session").stats();
        assert!(stats.checksums_matched > 0, "{}: {stats:?}", p.id());
    }
}

/// Simulated time a game of a few hundred frames gets to finish.
pub const LIMIT: Duration = Duration::from_secs(60);
