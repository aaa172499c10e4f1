//! What a headless rollback game's session says: its confirmed frame and
//! the checksums of confirmed frames (games of `u8` inputs, as the arena's),
//! its peer id; stepping several games at once; and [`MidGame`], a running
//! game to put a fault under and a late joiner after it.

use std::time::Duration;

use bevy_app::App;
use bevy_gamenet::rollback::RollbackSocket;
use gamenet::PeerId;
use gamenet::rollback::{Frame, RollbackStart};

use crate::faults::{ReportedGame, Timeline};

/// The checksum of the rolled-back state at confirmed `frame`, once the
/// app's session has one (every 16th frame by default, kept for a while).
pub fn confirmed_checksum(app: &App, frame: Frame) -> Option<u64> {
    app.world()
        .resource::<RollbackSocket<u8>>()
        .session()?
        .confirmed_checksum(frame)
        .map(|c| c.total)
}

/// The app's confirmed frame (frames before it have every input known); 0
/// before its session starts.
pub fn confirmed_frame(app: &App) -> Frame {
    app.world()
        .resource::<RollbackSocket<u8>>()
        .session()
        .map_or(0, |s| s.confirmed_frame())
}

/// Steps the games present, records them (and what `reported` printed, as
/// the game at index 1) and waits a little.
pub fn step_games(
    apps: &mut [Option<App>],
    timeline: &mut Timeline,
    reported: Option<&ReportedGame>,
) {
    for app in apps.iter_mut().flatten() {
        app.update();
    }
    timeline.record_partly(&apps.iter().map(Option::as_ref).collect::<Vec<_>>());
    if let Some(game) = reported {
        game.feed(timeline, 1);
    }
    std::thread::sleep(Duration::from_millis(4));
}

/// The mesh's peer id of a game.
pub fn mesh_id(app: &mut App) -> Option<PeerId> {
    app.world_mut()
        .get_resource_mut::<RollbackSocket<u8>>()?
        .net_mut()?
        .mesh()
        .id()
}

/// Frames the games of a [`MidGame`] play before the fault, and on together
/// after the late joiner comes.
pub const MID_GAME_RUN: Frame = 300;

/// Two games of three slots playing, the third slot open, to put a fault
/// under: started and played to frame [`MID_GAME_RUN`], then stepped while
/// the fault happens, then joined by a late third game that must play on
/// with them in one timeline.
pub struct MidGame {
    game: Box<dyn Fn(RollbackStart, u64) -> App>,
    /// The games: a and b, then c once it joins.
    pub apps: Vec<Option<App>>,
    /// What they confirmed.
    pub timeline: Timeline,
    /// The peer ids of a and b before the fault.
    pub ids: Vec<Option<PeerId>>,
}

impl MidGame {
    /// Starts a and b with `game` (a game of three slots, started as told,
    /// with a seed) and plays them to frame [`MID_GAME_RUN`].
    pub fn start(game: impl Fn(RollbackStart, u64) -> App + 'static) -> Self {
        let apps = vec![
            Some(game(RollbackStart::Players(2), 1)),
            Some(game(RollbackStart::Players(2), 2)),
            None,
        ];
        let mut mid = Self {
            game: Box::new(game),
            apps,
            timeline: Timeline::new(&["a", "b", "c"][..]),
            ids: Vec::new(),
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while mid.confirmed() < MID_GAME_RUN {
            mid.step();
            assert!(
                std::time::Instant::now() < deadline,
                "a and b never reached frame {MID_GAME_RUN}"
            );
        }
        mid.ids = mid.ids_now();
        mid
    }

    /// Steps the games once.
    pub fn step(&mut self) {
        step_games(&mut self.apps, &mut self.timeline, None);
    }

    /// The lower confirmed frame of a and b.
    pub fn confirmed(&self) -> Frame {
        self.timeline.apps()[..2]
            .iter()
            .map(crate::faults::AppTimeline::confirmed_frame)
            .min()
            .unwrap_or(0)
    }

    /// The peer ids of a and b now.
    pub fn ids_now(&mut self) -> Vec<Option<PeerId>> {
        self.apps[..2]
            .iter_mut()
            .map(|a| mesh_id(a.as_mut().expect("game")))
            .collect()
    }

    /// Adds c as a late joiner and steps until all three confirmed
    /// [`MID_GAME_RUN`] frames past a's confirmed frame now, in one timeline
    /// and with no departure. Returns a's frame when c came, the frame they
    /// confirmed together, how long that took, the frame checks compared and
    /// the frame they were in step at.
    pub fn late_join(&mut self) -> LateJoin {
        let before = self.timeline.apps()[0].confirmed_frame();
        self.apps[2] = Some((self.game)(RollbackStart::Join { players: 1 }, 3));
        let joined = self.timeline.mark("c joins the running game");
        let end = before + MID_GAME_RUN;
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        while !self.timeline.all_confirmed_together(end) {
            self.step();
            assert!(
                std::time::Instant::now() < deadline,
                "the three never played on together"
            );
        }
        let took = self.timeline.elapsed() - joined;
        let compared = self.timeline.assert_one_timeline();
        self.timeline.assert_no_departure();
        let in_step = self.timeline.assert_in_step(end);
        LateJoin {
            before,
            end,
            took,
            compared,
            in_step,
        }
    }
}

/// How a [`MidGame`]'s late joiner fared.
#[derive(Debug, Clone, Copy)]
pub struct LateJoin {
    /// a's confirmed frame when c came.
    pub before: Frame,
    /// The frame all three confirmed together.
    pub end: Frame,
    /// How long after c came.
    pub took: Duration,
    /// Frame checks compared for one timeline.
    pub compared: usize,
    /// The frame they were in step at.
    pub in_step: Frame,
}
