//! Faults on real links, and what games see through them.
//!
//! Inside a test's network namespace ([`crate::isolated`]),
//! [`udp_outage_start`] drops every UDP packet in and out (WebRTC's, that is:
//! the signaling server speaks TCP) until [`udp_outage_end`]. A [`Timeline`]
//! records, step by step, what each headless game saw: the checksum of every
//! newly confirmed frame with the peers its session counted as members then,
//! its session's and mesh's events, its frames, and its mesh's counters per peer.
//! [`Timeline::assert_one_timeline`] and [`Timeline::assert_in_step`] then check
//! that the games played one game.
//!
//! ```no_run
//! # fn steps(apps: &mut [bevy_app::App], timeline: &mut gamenet_e2e::faults::Timeline) {
//! for app in apps.iter_mut() {
//!     app.update();
//! }
//! timeline.record(&apps.iter().collect::<Vec<_>>());
//! # }
//! ```

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::process::Command;
use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::message::{Message, MessageCursor, Messages};
use bevy_ecs::world::World;
use bevy_gamenet::rollback::{RollbackSocket, SessionEvent};
use bevy_gamenet::{PeerJoined, PeerLeft};
use gamenet::rollback::{Frame, Input, RollbackEvent};
use gamenet::{LeaveReason, PeerId};

use crate::NETNS_ENV;

mod process;
mod report;

pub use process::{PeerNamespace, REPORTED_GAME_ENV, ReportedGame};

/// The rules of an outage: every UDP packet in and out is dropped.
const OUTAGE_RULES: [[&str; 5]; 2] = [
    ["INPUT", "-p", "udp", "-j", "DROP"],
    ["OUTPUT", "-p", "udp", "-j", "DROP"],
];

/// Drops every UDP packet into and out of this network namespace until
/// [`udp_outage_end`]: WebRTC links go silent, existing connections stay.
///
/// Only inside a test's namespace (see [`crate::isolated`]); as root there.
pub fn udp_outage_start() {
    for rule in OUTAGE_RULES {
        iptables("-I", &rule);
    }
}

/// Ends an outage [`udp_outage_start`] began.
pub fn udp_outage_end() {
    for rule in OUTAGE_RULES {
        iptables("-D", &rule);
    }
}

/// The iptables rule that drops each UDP packet arriving in this namespace
/// with `probability` (`0.05` for 5 %).
fn loss_rule(probability: f64) -> Vec<String> {
    let p = format!("{probability}");
    [
        "INPUT",
        "-p",
        "udp",
        "-m",
        "statistic",
        "--mode",
        "random",
        "--probability",
        &p,
        "-j",
        "DROP",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// Drops each UDP packet arriving in this namespace with `probability`
/// until [`udp_loss_end`] (random loss on every link).
pub fn udp_loss_start(probability: f64) {
    let rule = loss_rule(probability);
    iptables("-I", &rule.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Ends the loss [`udp_loss_start`] began with the same `probability`.
pub fn udp_loss_end(probability: f64) {
    let rule = loss_rule(probability);
    iptables("-D", &rule.iter().map(String::as_str).collect::<Vec<_>>());
}

/// Packets the loss rules of [`udp_loss_start`] dropped so far.
pub fn udp_loss_drops() -> u64 {
    let out = Command::new("iptables")
        .args(["-w", "-L", "INPUT", "-v", "-x", "-n"])
        .output()
        .unwrap_or_else(|e| panic!("run iptables ({e}); `cargo xtask setup` installs it"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("statistic"))
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn iptables(op: &str, rule: &[&str]) {
    assert!(
        std::env::var_os(NETNS_ENV).is_some(),
        "iptables rules belong inside a test's network namespace (gamenet_e2e::isolated)"
    );
    let out = Command::new("iptables")
        .arg("-w")
        .arg(op)
        .args(rule)
        .output()
        .unwrap_or_else(|e| panic!("run iptables ({e}); `cargo xtask setup` installs it"));
    assert!(
        out.status.success(),
        "iptables {op} {}: {}",
        rule.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Confirmed frames looked back at most: the session keeps its newest 64
/// checksums, one every 16 frames by default.
const LOOK_BACK: Frame = 64 * 16;

/// How often the mesh's counters are sampled.
pub const LINK_SAMPLE: Duration = Duration::from_millis(50);

/// One app's confirmed checksum frame, as first seen.
#[derive(Debug, Clone, PartialEq)]
pub struct Confirmed {
    /// The checksum of the rolled-back state at that frame.
    pub checksum: u64,
    /// The peers the app's session counted as members then, sorted.
    pub members: Vec<PeerId>,
    /// The peers the app's mesh had joined then, sorted.
    pub joined: Vec<PeerId>,
    /// When it was first seen, from the timeline's start.
    pub at: Duration,
}

/// Something an app was told.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// A rollback session event ([`SessionEvent`]).
    Session(RollbackEvent),
    /// The mesh joined a peer ([`PeerJoined`]).
    PeerJoined(PeerId),
    /// The mesh lost a peer ([`PeerLeft`]).
    PeerLeft {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: LeaveReason,
    },
    /// Something a game in another process was told ([`ReportedGame`]).
    Reported {
        /// What kind: a [`RollbackEvent`] variant's name, `PeerJoined` or
        /// `PeerLeft`.
        kind: String,
        /// What, as that process showed it.
        text: String,
        /// Whether it is a departure ([`Seen::is_departure`]).
        departure: bool,
    },
}

impl Seen {
    /// Whether this is a departure: the session disconnecting a player, or
    /// the mesh losing a peer.
    pub fn is_departure(&self) -> bool {
        matches!(
            self,
            Seen::Session(RollbackEvent::Disconnected { .. })
                | Seen::PeerLeft { .. }
                | Seen::Reported {
                    departure: true,
                    ..
                }
        )
    }

    /// What kind of happening it is: a [`RollbackEvent`] variant's name,
    /// `PeerJoined` or `PeerLeft`.
    pub fn kind(&self) -> String {
        match self {
            Seen::Session(e) => {
                let shown = format!("{e:?}");
                shown
                    .split(|c: char| !c.is_alphanumeric())
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }
            Seen::PeerJoined(_) => "PeerJoined".to_owned(),
            Seen::PeerLeft { .. } => "PeerLeft".to_owned(),
            Seen::Reported { kind, .. } => kind.clone(),
        }
    }
}

/// An app's frames after one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// When, from the timeline's start.
    pub at: Duration,
    /// The next frame to simulate.
    pub current: Frame,
    /// Frames before this one have every input known.
    pub confirmed: Frame,
}

/// A peer's counters in an app's mesh at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounters {
    /// The peer.
    pub peer: PeerId,
    /// Packets received from it in all.
    pub packets_in: u64,
    /// Bytes received from it in all.
    pub bytes_in: u64,
    /// Packets sent to it in all.
    pub packets_out: u64,
}

/// The counters of every peer an app's mesh has joined, at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkSample {
    /// When, from the timeline's start.
    pub at: Duration,
    /// Per joined peer.
    pub peers: Vec<LinkCounters>,
}

/// What one app saw.
#[derive(Debug)]
pub struct AppTimeline {
    /// Its name in reports.
    pub name: String,
    /// Its peer id, once its session started.
    pub id: Option<PeerId>,
    /// Its confirmed checksum frames.
    pub confirmed: BTreeMap<Frame, Confirmed>,
    /// What it was told, when.
    pub events: Vec<(Duration, Seen)>,
    /// Its frames, step by step.
    pub progress: Vec<Progress>,
    /// The peers its session counted as members (sorted), from when.
    pub membership: Vec<(Duration, Vec<PeerId>)>,
    /// Its mesh's counters, every [`LINK_SAMPLE`].
    pub links: Vec<LinkSample>,
    session_events: MessageCursor<SessionEvent>,
    joined_events: MessageCursor<PeerJoined>,
    left_events: MessageCursor<PeerLeft>,
}

impl AppTimeline {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            id: None,
            confirmed: BTreeMap::new(),
            events: Vec::new(),
            progress: Vec::new(),
            membership: Vec::new(),
            links: Vec::new(),
            session_events: MessageCursor::default(),
            joined_events: MessageCursor::default(),
            left_events: MessageCursor::default(),
        }
    }

    /// Its frames at the last step at or before `at`.
    pub fn progress_at(&self, at: Duration) -> Option<Progress> {
        let n = self.progress.partition_point(|p| p.at <= at);
        n.checked_sub(1).map(|i| self.progress[i])
    }

    /// The peers its session counted as members at `at`.
    pub fn members_at(&self, at: Duration) -> &[PeerId] {
        let n = self.membership.partition_point(|(t, _)| *t <= at);
        n.checked_sub(1).map_or(&[], |i| &self.membership[i].1)
    }

    /// How long after `since` its confirmed frame first passed `frame` while
    /// its session counted every peer of `peers` as a member.
    pub fn confirmed_past_with(
        &self,
        frame: Frame,
        since: Duration,
        peers: &[PeerId],
    ) -> Option<Duration> {
        self.progress
            .iter()
            .find(|p| {
                p.at >= since
                    && p.confirmed > frame
                    && peers.iter().all(|q| self.members_at(p.at).contains(q))
            })
            .map(|p| p.at - since)
    }

    /// Its newest confirmed frame.
    pub fn confirmed_frame(&self) -> Frame {
        self.progress.last().map_or(0, |p| p.confirmed)
    }

    /// How long after `since` its confirmed frame first passed `frame`.
    pub fn confirmed_past(&self, frame: Frame, since: Duration) -> Option<Duration> {
        self.progress
            .iter()
            .find(|p| p.at >= since && p.confirmed > frame)
            .map(|p| p.at - since)
    }

    /// When, after `since`, it last confirmed a new frame before `until`
    /// (where it stalled), and that frame.
    pub fn stalled_at(&self, since: Duration, until: Duration) -> Option<(Duration, Frame)> {
        let window: Vec<&Progress> = self
            .progress
            .iter()
            .filter(|p| p.at >= since && p.at <= until)
            .collect();
        let last = window.last()?;
        let first_of_last = window
            .iter()
            .find(|p| p.confirmed == last.confirmed)
            .unwrap_or(last);
        Some((first_of_last.at, last.confirmed))
    }

    fn record<I: Input>(&mut self, world: &World, at: Duration, sample_links: bool) {
        read_new(world, &mut self.session_events, |e: &SessionEvent| {
            self.events.push((at, Seen::Session(e.0.clone())));
        });
        read_new(world, &mut self.joined_events, |e: &PeerJoined| {
            self.events.push((at, Seen::PeerJoined(e.0)));
        });
        read_new(world, &mut self.left_events, |e: &PeerLeft| {
            self.events.push((
                at,
                Seen::PeerLeft {
                    peer: e.peer,
                    reason: e.reason.clone(),
                },
            ));
        });
        let Some(socket) = world.get_resource::<RollbackSocket<I>>() else {
            return;
        };
        let mesh = socket.net_ref().map(|net| net.mesh());
        let mut joined: Vec<PeerId> = mesh.map(|m| m.peers().collect()).unwrap_or_default();
        joined.sort();
        if sample_links && let Some(mesh) = mesh {
            let peers = joined
                .iter()
                .filter_map(|&peer| {
                    let s = mesh.stats(peer)?;
                    Some(LinkCounters {
                        peer,
                        packets_in: s.packets_in,
                        bytes_in: s.bytes_in,
                        packets_out: s.packets_out,
                    })
                })
                .collect();
            self.links.push(LinkSample { at, peers });
        }
        let Some(session) = socket.session() else {
            return;
        };
        self.id = Some(session.id());
        let confirmed = session.confirmed_frame();
        self.progress.push(Progress {
            at,
            current: session.current_frame(),
            confirmed,
        });
        let mut members: Vec<PeerId> = session.members().collect();
        members.sort();
        if self.membership.last().is_none_or(|(_, m)| *m != members) {
            self.membership.push((at, members.clone()));
        }
        // Checksums become final in frame order, some time after their frame
        // is confirmed: every one after the newest seen is new.
        let first = self
            .confirmed
            .last_key_value()
            .map_or(0, |(f, _)| f.saturating_add(1))
            .max(confirmed.saturating_sub(LOOK_BACK));
        for frame in first..=confirmed {
            if let Some(c) = session.confirmed_checksum(frame) {
                self.confirmed.insert(
                    frame,
                    Confirmed {
                        checksum: c.total,
                        members: members.clone(),
                        joined: joined.clone(),
                        at,
                    },
                );
            }
        }
    }
}

/// Reads the messages of type `M` that `cursor` has not seen yet.
fn read_new<M: Message>(world: &World, cursor: &mut MessageCursor<M>, mut f: impl FnMut(&M)) {
    if let Some(messages) = world.get_resource::<Messages<M>>() {
        for m in cursor.read(messages) {
            f(m);
        }
    }
}

/// What several headless games saw, step by step: see the module's docs.
///
/// Call [`Timeline::record`] after every step of the apps (every
/// `App::update`: the apps' messages live two updates).
#[derive(Debug)]
pub struct Timeline<I: Input = u8> {
    start: Instant,
    /// The start in milliseconds since the Unix epoch, for other processes.
    epoch_ms: u128,
    apps: Vec<AppTimeline>,
    marks: Vec<(Duration, String)>,
    last_sample: Option<Duration>,
    _input: PhantomData<fn() -> I>,
}

impl<I: Input> Timeline<I> {
    /// A timeline of apps with these names, starting now.
    pub fn new(names: &[&str]) -> Self {
        Self {
            start: Instant::now(),
            epoch_ms: crate::unix_ms(),
            apps: names.iter().map(|n| AppTimeline::new(n)).collect(),
            marks: Vec::new(),
            last_sample: None,
            _input: PhantomData,
        }
    }

    /// Time since the timeline started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// Notes a moment (an outage starting, say) for the report; returns it.
    pub fn mark(&mut self, what: &str) -> Duration {
        let at = self.elapsed();
        self.marks.push((at, what.to_owned()));
        at
    }

    /// What each app saw, in the order of [`Timeline::new`]'s names.
    pub fn apps(&self) -> &[AppTimeline] {
        &self.apps
    }

    /// Records what `apps` (in the order of the names) see now.
    pub fn record(&mut self, apps: &[&App]) {
        self.record_partly(&apps.iter().map(|a| Some(*a)).collect::<Vec<_>>());
    }

    /// Records what the apps of this process see now, `None` for those that
    /// run in another process ([`Timeline::feed`] takes in what they report).
    pub fn record_partly(&mut self, apps: &[Option<&App>]) {
        assert_eq!(apps.len(), self.apps.len(), "one app per name");
        let at = self.elapsed();
        let sample = self.last_sample.is_none_or(|t| at >= t + LINK_SAMPLE);
        if sample {
            self.last_sample = Some(at);
        }
        for (rec, app) in self.apps.iter_mut().zip(apps) {
            if let Some(app) = app {
                rec.record::<I>(app.world(), at, sample);
            }
        }
    }

    /// Takes in one line a [`ReportedGame`] printed, for the app at `index`.
    pub fn feed(&mut self, index: usize, line: &str) {
        let epoch = self.epoch_ms;
        let at = |ms: &str| {
            let ms: u128 = ms.parse().unwrap_or(epoch);
            Duration::from_millis(ms.saturating_sub(epoch) as u64)
        };
        let peers = |list: &str| -> Vec<PeerId> {
            list.split(',')
                .filter_map(|p| p.parse().ok().map(PeerId))
                .collect()
        };
        let app = &mut self.apps[index];
        let mut words = line.splitn(6, ' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("id"), Some(id), ..) => app.id = id.parse().ok().map(PeerId),
            (Some("p"), Some(ms), Some(current), Some(confirmed)) => {
                app.progress.push(Progress {
                    at: at(ms),
                    current: current.parse().unwrap_or(0),
                    confirmed: confirmed.parse().unwrap_or(0),
                });
            }
            (Some("m"), Some(ms), Some(members), _) => {
                app.membership.push((at(ms), peers(members)));
            }
            (Some("c"), Some(frame), Some(checksum), Some(ms)) => {
                let members = words.next().map(peers).unwrap_or_default();
                let joined = words.next().map(peers).unwrap_or_default();
                if let (Ok(frame), Ok(checksum)) = (frame.parse(), checksum.parse()) {
                    app.confirmed.insert(
                        frame,
                        Confirmed {
                            checksum,
                            members,
                            joined,
                            at: at(ms),
                        },
                    );
                }
            }
            (Some("e"), Some(ms), Some(kind), Some(departure)) => {
                let seen = Seen::Reported {
                    kind: kind.to_owned(),
                    text: words.collect::<Vec<_>>().join(" "),
                    departure: departure == "1",
                };
                app.events.push((at(ms), seen));
            }
            _ => {}
        }
    }

    /// An app's name for a peer id.
    pub fn name_of(&self, peer: PeerId) -> String {
        self.apps
            .iter()
            .find(|a| a.id == Some(peer))
            .map(|a| a.name.clone())
            .unwrap_or_else(|| format!("{peer}"))
    }

    /// Every departure any app saw: (app, when, what).
    pub fn departures(&self) -> Vec<(&str, Duration, &Seen)> {
        self.apps
            .iter()
            .flat_map(|a| {
                a.events
                    .iter()
                    .filter(|(_, e)| e.is_departure())
                    .map(move |(t, e)| (a.name.as_str(), *t, e))
            })
            .collect()
    }

    /// Fails if any app saw a player leave or its mesh lose a peer.
    pub fn assert_no_departure(&self) {
        let departures = self.departures();
        assert!(
            departures.is_empty(),
            "departures: {}",
            departures
                .iter()
                .map(|(app, t, e)| format!("{app} at {:.3}s: {}", t.as_secs_f64(), self.show(e)))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }

    /// Whether the apps played one game: no two apps that both counted each
    /// other as members at a frame recorded different checksums for it, and
    /// no app's session detected a desync. The number of frames compared, or
    /// what differs.
    pub fn check_one_timeline(&self) -> Result<usize, String> {
        let mut compared = 0;
        for app in &self.apps {
            if let Some((t, e)) = app
                .events
                .iter()
                .find(|(_, e)| matches!(e, Seen::Session(RollbackEvent::DesyncDetected { .. })))
            {
                return Err(format!(
                    "{} was told at {:.3}s: {}",
                    app.name,
                    t.as_secs_f64(),
                    self.show(e)
                ));
            }
        }
        for (i, a) in self.apps.iter().enumerate() {
            for b in &self.apps[i + 1..] {
                let (Some(ida), Some(idb)) = (a.id, b.id) else {
                    continue;
                };
                for (frame, ca) in &a.confirmed {
                    let Some(cb) = b.confirmed.get(frame) else {
                        continue;
                    };
                    if !ca.members.contains(&idb) || !cb.members.contains(&ida) {
                        continue;
                    }
                    compared += 1;
                    if ca.checksum != cb.checksum {
                        return Err(format!(
                            "frame {frame}: {} has {:#018x}, {} has {:#018x}, each counting the other as a member",
                            a.name, ca.checksum, b.name, cb.checksum
                        ));
                    }
                }
            }
        }
        Ok(compared)
    }

    /// Whether every app confirmed a frame at or past `frame` while counting
    /// every other app as a member.
    pub fn all_confirmed_together(&self, frame: Frame) -> bool {
        let ids: Vec<PeerId> = self.apps.iter().filter_map(|a| a.id).collect();
        ids.len() == self.apps.len()
            && self.apps.iter().all(|a| {
                a.confirmed.range(frame..).any(|(_, c)| {
                    ids.iter()
                        .all(|p| Some(*p) == a.id || c.members.contains(p))
                })
            })
    }

    /// Fails unless the apps played one game (see
    /// [`Timeline::check_one_timeline`]); returns the frames compared.
    pub fn assert_one_timeline(&self) -> usize {
        self.check_one_timeline()
            .unwrap_or_else(|e| panic!("two timelines: {e}"))
    }

    /// The newest frame every app recorded a checksum for, and whether they
    /// all recorded the same one there.
    pub fn last_common_frame(&self) -> Option<(Frame, bool)> {
        let (first, rest) = self.apps.split_first()?;
        let (frame, c) = first
            .confirmed
            .iter()
            .rev()
            .find(|(f, _)| rest.iter().all(|a| a.confirmed.contains_key(f)))?;
        let same = rest
            .iter()
            .all(|a| a.confirmed[frame].checksum == c.checksum);
        Some((*frame, same))
    }

    /// Fails unless every app recorded the same checksum at a common frame
    /// at or after `after` (the newest such frame, returned).
    pub fn assert_in_step(&self, after: Frame) -> Frame {
        let (frame, same) = self
            .last_common_frame()
            .unwrap_or_else(|| panic!("the apps have no confirmed frame in common"));
        let at = |f: Frame| {
            self.apps
                .iter()
                .map(|a| {
                    a.confirmed
                        .get(&f)
                        .map_or("-".into(), |c| format!("{}={:#018x}", a.name, c.checksum))
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(
            frame >= after,
            "the newest frame all apps confirmed is {frame}, not at or after {after}"
        );
        assert!(same, "out of step at frame {frame}: {}", at(frame));
        frame
    }
}
