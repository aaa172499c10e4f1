//! How a [`Timeline`] is shown: events with names for peer ids, the report
//! of a window of time, and the lines a game in another process prints for
//! [`Timeline::feed`].

use std::fmt::Write as _;
use std::time::Duration;

use gamenet::PeerId;
use gamenet::rollback::{Frame, Input, RollbackEvent};

use super::{Seen, Timeline};

impl<I: Input> Timeline<I> {
    /// An event, with app names for peer ids.
    pub fn show(&self, seen: &Seen) -> String {
        let n = |p: &PeerId| self.name_of(*p);
        match seen {
            Seen::PeerJoined(p) => format!("mesh joined {}", n(p)),
            Seen::PeerLeft { peer, reason } => format!("mesh lost {} ({reason})", n(peer)),
            Seen::Reported { text, .. } => text.clone(),
            Seen::Session(e) => match e {
                RollbackEvent::Synchronizing { peer } => format!("synchronizing {}", n(peer)),
                RollbackEvent::Synchronized { peer } => format!("synchronized {}", n(peer)),
                RollbackEvent::Running { frame } => format!("running from frame {frame}"),
                RollbackEvent::PeerInterrupted { peer } => format!("{} interrupted", n(peer)),
                RollbackEvent::PeerResumed { peer } => format!("{} resumed", n(peer)),
                RollbackEvent::PlayerJoined { peer, slots, frame } => {
                    format!("{} joined, slots {slots:?} from frame {frame}", n(peer))
                }
                RollbackEvent::JoinerSynced { peer } => format!("joiner {} synced", n(peer)),
                RollbackEvent::Disconnected { peer, slots, frame } => format!(
                    "{} disconnected, slots {slots:?} from frame {frame}",
                    n(peer)
                ),
                RollbackEvent::DesyncDetected {
                    frame,
                    peer,
                    local,
                    remote,
                    parts,
                } => format!(
                    "desync with {} at frame {frame}: {local:#x} / {remote:#x} {parts:?}",
                    n(peer)
                ),
                other => format!("{other:?}"),
            },
        }
    }

    /// The report of the window `from..=to`: marks and events in order, then
    /// every [`LINK_SAMPLE`](super::LINK_SAMPLE) each app's frames and the packets it received
    /// per peer since the sample before (`·` for none), times from the
    /// timeline's start.
    pub fn report(&self, from: Duration, to: Duration) -> String {
        let mut out = String::new();
        let secs = |t: Duration| t.as_secs_f64();
        let mut lines: Vec<(Duration, String)> = self
            .marks
            .iter()
            .filter(|(t, _)| *t >= from && *t <= to)
            .map(|(t, m)| (*t, format!("== {m}")))
            .collect();
        for a in &self.apps {
            for (t, e) in &a.events {
                if *t >= from && *t <= to {
                    lines.push((*t, format!("{}: {}", a.name, self.show(e))));
                }
            }
        }
        lines.sort_by_key(|(t, _)| *t);
        for (t, l) in lines {
            let _ = writeln!(out, "{:8.3}s  {l}", secs(t));
        }
        let _ = writeln!(
            out,
            "  time    per app: current/confirmed frame, packets in per peer (since the sample before)"
        );
        // Apps in another process have no samples of their own.
        let Some(first) = self.apps.iter().max_by_key(|a| a.links.len()) else {
            return out;
        };
        // Runs of samples alike but for the time are shown once.
        let mut same: Option<(String, usize, Duration)> = None;
        let flush = |out: &mut String, same: &mut Option<(String, usize, Duration)>| {
            if let Some((_, n, last)) = same.take()
                && n > 0
            {
                let _ = writeln!(
                    out,
                    "     ...   the same for {n} more samples, to {:.3}s",
                    secs(last)
                );
            }
        };
        for (k, sample) in first.links.iter().enumerate() {
            if sample.at < from || sample.at > to {
                continue;
            }
            let mut line = String::new();
            for a in &self.apps {
                let Some(s) = a.links.get(k) else { continue };
                let frames = a
                    .progress_at(s.at)
                    .map_or("-".into(), |p| format!("{}/{}", p.current, p.confirmed));
                let _ = write!(line, "  {}: {frames:>9}", a.name);
                for c in &s.peers {
                    let before = k
                        .checked_sub(1)
                        .and_then(|j| a.links.get(j))
                        .and_then(|p| p.peers.iter().find(|b| b.peer == c.peer))
                        .map_or(c.packets_in, |b| b.packets_in);
                    // A link that started over counts from zero again.
                    let new = c.packets_in.saturating_sub(before);
                    let shown = if new == 0 {
                        "·".to_owned()
                    } else {
                        new.to_string()
                    };
                    let _ = write!(line, " <{} {shown:>3}", self.name_of(c.peer));
                }
                if s.peers.is_empty() {
                    let _ = write!(line, " (no peer)");
                }
            }
            match &mut same {
                Some((body, n, last)) if *body == line => {
                    *n += 1;
                    *last = sample.at;
                }
                _ => {
                    flush(&mut out, &mut same);
                    let _ = writeln!(out, "{:8.3}s{line}", secs(sample.at));
                    same = Some((line, 0, sample.at));
                }
            }
        }
        flush(&mut out, &mut same);
        out
    }
}

/// What of a one-app timeline was printed already.
#[derive(Debug, Default)]
pub(super) struct Printed {
    progress: usize,
    membership: usize,
    events: usize,
    confirmed: Option<Frame>,
}

/// Lines a process that runs one game prints, [`Timeline::feed`] takes in.
pub(super) fn report_lines(timeline: &Timeline, printed: &mut Printed, out: &mut Vec<String>) {
    let epoch = timeline.epoch_ms;
    let ms = |at: Duration| epoch + at.as_millis();
    let list = |peers: &[PeerId]| {
        let ids: Vec<String> = peers.iter().map(|p| p.0.to_string()).collect();
        if ids.is_empty() {
            "-".to_owned()
        } else {
            ids.join(",")
        }
    };
    let app = &timeline.apps[0];
    if printed.progress == 0
        && let Some(id) = app.id
    {
        out.push(format!("id {}", id.0));
    }
    // Progress: only steps where a frame moved, and the last.
    let new = &app.progress[printed.progress..];
    for (k, p) in new.iter().enumerate() {
        let before = (printed.progress + k)
            .checked_sub(1)
            .map(|i| app.progress[i]);
        if before.is_none_or(|b| (b.current, b.confirmed) != (p.current, p.confirmed))
            || k + 1 == new.len()
        {
            out.push(format!("p {} {} {}", ms(p.at), p.current, p.confirmed));
        }
    }
    printed.progress = app.progress.len();
    for (at, members) in &app.membership[printed.membership..] {
        out.push(format!("m {} {}", ms(*at), list(members)));
    }
    printed.membership = app.membership.len();
    for (at, seen) in &app.events[printed.events..] {
        out.push(format!(
            "e {} {} {} {}",
            ms(*at),
            seen.kind(),
            u8::from(seen.is_departure()),
            timeline.show(seen)
        ));
    }
    printed.events = app.events.len();
    let from = printed.confirmed.map_or(0, |f| f + 1);
    for (frame, c) in app.confirmed.range(from..) {
        out.push(format!(
            "c {frame} {} {} {} {}",
            c.checksum,
            ms(c.at),
            list(&c.members),
            list(&c.joined)
        ));
        printed.confirmed = Some(*frame);
    }
}
