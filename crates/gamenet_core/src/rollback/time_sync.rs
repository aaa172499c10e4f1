//! Time: the session clock sent to peers, how far ahead of the others this
//! peer runs, frame pacing, and the table of timers behind `poll_timeout`.

use std::time::Duration;

use super::Frame;
use crate::Instant;

/// Behind the others by more than this many frames, a peer runs frames
/// without waiting for the clock.
pub(crate) const CATCH_UP_FRAMES: f64 = 3.0;

/// What a session wakes up for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Inputs go out again while no frame runs (they also carry acks).
    Resend,
    /// The next frame is due.
    Frame,
    /// A member falls silent for the interrupt timeout, or a player for the
    /// drop timeout.
    Interrupt,
}

/// The session's clock and pacing.
#[derive(Debug, Default)]
pub(crate) struct TimeSync {
    /// The instant the session clock counts from (the first call with a time).
    epoch: Option<Instant>,
    /// When the next frame is due.
    pub(crate) next_frame_at: Option<Instant>,
    /// When inputs last went out.
    pub(crate) last_sent: Option<Instant>,
    /// Frames this peer runs ahead of the others (negative: behind), smoothed.
    pub(crate) frames_ahead: f64,
    /// The latest time the session was given.
    pub(crate) last: Option<Instant>,
}

impl TimeSync {
    /// The session clock at `now`, in milliseconds (starting it on the first call).
    pub(crate) fn time_ms(&mut self, now: Instant) -> u32 {
        let epoch = *self.epoch.get_or_insert(now);
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        now.saturating_duration_since(epoch).as_millis() as u32
    }

    /// Whether this peer is far enough behind to run frames without waiting.
    pub(crate) fn catching_up(&self) -> bool {
        self.frames_ahead < -CATCH_UP_FRAMES
    }

    /// Updates `frames_ahead` from the members' last reported frames
    /// (`(frame, when it arrived, round-trip time)`), each estimated forward
    /// to `now`; far behind, the estimate is taken as it is. With no member
    /// to pace against, this peer keeps its own pace.
    pub(crate) fn update_frames_ahead(
        &mut self,
        now: Instant,
        current: Frame,
        fps: u32,
        remote: impl Iterator<Item = (Frame, Instant, Duration)>,
    ) {
        let fps = fps as f64;
        let mut sum = 0.0;
        let mut n = 0;
        for (frame, at, rtt) in remote {
            let elapsed = now.saturating_duration_since(at) + rtt / 2;
            let estimate = frame as f64 + elapsed.as_secs_f64() * fps;
            sum += current as f64 - estimate;
            n += 1;
        }
        if n > 0 {
            let sample = sum / n as f64;
            let a = &mut self.frames_ahead;
            *a = if sample < -CATCH_UP_FRAMES {
                sample
            } else {
                *a * 0.9 + sample * 0.1
            };
        } else {
            self.frames_ahead = 0.0;
        }
    }

    /// Schedules the next frame one `interval` on, stretched or shrunk by
    /// how far ahead this peer runs, never from further back than four
    /// intervals.
    pub(crate) fn pace(&mut self, now: Instant, interval: Duration) {
        let factor = 1.0 + (self.frames_ahead * 0.05).clamp(-0.3, 0.3);
        let next = self.next_frame_at.unwrap_or(now);
        let floor = now.checked_sub(interval * 4).unwrap_or(now);
        self.next_frame_at =
            Some(next.max(floor) + Duration::from_secs_f64(interval.as_secs_f64() * factor));
    }

    /// When each timer fires: the frame timer only if a frame `can_run`;
    /// `interrupt` is the members' earliest interrupt.
    pub(crate) fn timers(
        &self,
        interval: Duration,
        can_run: bool,
        interrupt: Option<Instant>,
    ) -> [(Timer, Option<Instant>); 3] {
        let frame = if can_run {
            self.next_frame_at.or(self.epoch)
        } else {
            None
        };
        [
            (Timer::Resend, self.last_sent.map(|t| t + interval)),
            (Timer::Frame, frame),
            (Timer::Interrupt, interrupt),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_behind_it_catches_up_and_alone_it_keeps_its_own_pace() {
        let mut time = TimeSync::default();
        let now = Instant::now();
        // A member reported frame 600 while this peer is at 0: far behind.
        let remote = [(600, now, Duration::from_millis(20))];
        time.update_frames_ahead(now, 0, 60, remote.into_iter());
        assert!(time.catching_up());
        // That member is gone (or silent): nobody to catch up with.
        time.update_frames_ahead(now, 0, 60, std::iter::empty());
        assert!(!time.catching_up());
        assert_eq!(time.frames_ahead, 0.0);
    }
}
