//! Showing remote entities a little in the past: their received states
//! placed on their owner's timeline (or by arrival), sampled between the two
//! around the time shown.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use bevy_ecs::prelude::*;
use bevy_reflect::Reflect;
use bevy_reflect::std_traits::ReflectDefault;
use gamenet::replication::Fields;
use gamenet::{Instant, PeerId};

use super::NetState;

/// Received states of a remote entity by arrival time, oldest first.
#[derive(Component, Debug, Default)]
pub(super) struct Buffer(VecDeque<(Instant, Fields)>);

/// States kept per remote entity (the oldest go first).
const MAX_BUFFERED: usize = 64;

impl Buffer {
    /// A buffer holding the state that arrived at `at`.
    pub fn new(at: Instant, fields: Fields) -> Self {
        Self(VecDeque::from([(at, fields)]))
    }

    /// Adds the newest state, placed at `at` (or at the newest one's time if
    /// that is later), dropping the oldest beyond [`MAX_BUFFERED`].
    pub fn push(&mut self, at: Instant, fields: Fields) {
        let at = self.0.back().map_or(at, |(last, _)| at.max(*last));
        self.0.push_back((at, fields));
        while self.0.len() > MAX_BUFFERED {
            self.0.pop_front();
        }
    }

    /// The state at `at`: interpolated between the states that arrived
    /// around it, the oldest before them all, the newest after them all.
    /// States whose fields do not fit `T` (their number, or a value wider
    /// than its field) are never handed to [`NetState::from_fields`]: `None`.
    pub fn sample<T: NetState>(&self, at: Instant) -> Option<T> {
        let buffer = &self.0;
        let state = |f: &Fields| fits::<T>(f).then(|| T::from_fields(f));
        let after = buffer.iter().position(|(t, _)| *t > at);
        match after {
            Some(0) => buffer.front().and_then(|(_, f)| state(f)),
            Some(i) => {
                let (t0, f0) = &buffer[i - 1];
                let (t1, f1) = &buffer[i];
                let span = t1.saturating_duration_since(*t0).as_secs_f32().max(1e-6);
                let t = at.saturating_duration_since(*t0).as_secs_f32() / span;
                Some(state(f0)?.interpolate(&state(f1)?, t.clamp(0.0, 1.0)))
            }
            None => buffer.back().and_then(|(_, f)| state(f)),
        }
    }
}

/// Where remote states are placed in time, to interpolate between them.
#[derive(Reflect, Debug, Clone, Copy, PartialEq, Eq, Default)]
#[reflect(Debug, Default, PartialEq)]
pub enum Timeline {
    /// When their owner sent them (every update packet carries its clock),
    /// mapped to this peer's clock by the least-delayed packet of the last
    /// second or two: network jitter stays out of the motion.
    #[default]
    Sender,
    /// When they arrived here: jitter shows as uneven motion.
    Arrival,
}

/// Each owner's replication clock mapped to this peer's.
#[derive(Debug, Default)]
pub(super) struct SenderClocks(BTreeMap<PeerId, ClockMap>);

/// How long one window of the lowest delay lasts; the target is the lower
/// of the current and the previous window's, so one window without a fast
/// packet changes nothing, and a lasting change of route or a drifting
/// clock is followed within two windows.
const WINDOW: Duration = Duration::from_secs(2);

/// How fast (seconds per second) the mapping moves towards its target once
/// the first window is over: slow enough that motion only stretches by 2%,
/// never jumps.
const SLEW: f64 = 0.02;

/// A delay this far (seconds) from the estimate is a clock started anew.
const RESTART: f64 = 10.0;

/// One owner's clock against this peer's.
#[derive(Debug, Clone, Copy)]
struct ClockMap {
    /// The first packet's arrival here, and its stamp.
    origin: (Instant, u64),
    /// When the current window began, and the lowest delay in it (seconds
    /// of arrival past the stamp, both from `origin`).
    current: (Instant, f64),
    /// The lowest delay of the window before (none yet: infinite).
    previous: f64,
    /// The delay states are placed with.
    estimate: f64,
    /// The last packet's arrival.
    last: Instant,
}

impl SenderClocks {
    /// When a state `owner` stamped `sent` (milliseconds on its clock) and
    /// that arrived at `now` is placed here.
    pub fn place(&mut self, owner: PeerId, sent: u64, now: Instant) -> Instant {
        let fresh = ClockMap {
            origin: (now, sent),
            current: (now, 0.0),
            previous: f64::INFINITY,
            estimate: 0.0,
            last: now,
        };
        let map = self.0.entry(owner).or_insert(fresh);
        let (origin, first) = map.origin;
        let stamp = (sent as f64 - first as f64) / 1000.0;
        let delay = now.saturating_duration_since(origin).as_secs_f64() - stamp;
        if (delay - map.estimate).abs() > RESTART {
            // A clock started anew (the owner's link was rebuilt): map it
            // from this packet.
            *map = fresh;
            return now;
        }
        if now.saturating_duration_since(map.current.0) >= WINDOW {
            map.previous = map.current.1;
            map.current = (now, delay);
        } else {
            map.current.1 = map.current.1.min(delay);
        }
        let target = map.current.1.min(map.previous);
        if map.previous.is_infinite() {
            map.estimate = target;
        } else {
            let step = SLEW * now.saturating_duration_since(map.last).as_secs_f64();
            map.estimate += (target - map.estimate).clamp(-step, step);
        }
        map.last = now;
        let offset = stamp + map.estimate;
        if offset >= 0.0 {
            origin + Duration::from_secs_f64(offset)
        } else {
            origin
                .checked_sub(Duration::from_secs_f64(-offset))
                .unwrap_or(origin)
        }
    }

    /// Forgets owners that are no longer linked.
    pub fn retain(&mut self, linked: impl Fn(PeerId) -> bool) {
        self.0.retain(|&peer, _| linked(peer));
    }

    /// Owners tracked.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Whether fields fit a state type: one per width, each within its width.
pub(super) fn fits<T: NetState>(fields: &[u32]) -> bool {
    fields.len() == T::WIDTHS.len()
        && fields
            .iter()
            .zip(T::WIDTHS)
            .all(|(&f, &w)| w >= 32 || f < 1u32 << w)
}

/// The time remote entities are shown at: `delay` before `now` (or `now`
/// when the clock cannot go back that far).
pub(super) fn display_time(now: Instant, delay: Duration) -> Instant {
    now.checked_sub(delay).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-field state that interpolates linearly.
    #[derive(Component, Clone, Debug, PartialEq)]
    struct X(u32);

    impl NetState for X {
        const WIDTHS: &'static [u8] = &[32];
        fn to_fields(&self) -> Vec<u32> {
            vec![self.0]
        }
        fn from_fields(fields: &[u32]) -> Self {
            X(fields[0])
        }
        fn interpolate(&self, next: &Self, t: f32) -> Self {
            X((self.0 as f32 + (next.0 as f32 - self.0 as f32) * t).round() as u32)
        }
    }

    fn fields(x: u32) -> Fields {
        Fields::from(vec![x])
    }

    /// A buffer with `x` arriving at `start + ms` for each `(ms, x)`.
    fn buffer(start: Instant, states: &[(u64, u32)]) -> Buffer {
        let mut buffer = Buffer::default();
        for &(ms, x) in states {
            buffer.push(start + Duration::from_millis(ms), fields(x));
        }
        buffer
    }

    #[test]
    fn an_empty_buffer_has_no_state() {
        assert_eq!(Buffer::default().sample::<X>(Instant::now()), None);
    }

    #[test]
    fn before_the_first_state_shows_the_first() {
        let start = Instant::now();
        let b = buffer(start, &[(100, 10), (200, 20)]);
        assert_eq!(b.sample::<X>(start), Some(X(10)));
    }

    #[test]
    fn between_two_states_interpolates_by_arrival_time() {
        let start = Instant::now();
        let b = buffer(start, &[(100, 10), (200, 20)]);
        let at = start + Duration::from_millis(150);
        assert_eq!(b.sample::<X>(at), Some(X(15)));
        let at = start + Duration::from_millis(175);
        assert_eq!(b.sample::<X>(at), Some(X(18)));
    }

    #[test]
    fn after_the_last_state_shows_the_last() {
        let start = Instant::now();
        let b = buffer(start, &[(100, 10), (200, 20)]);
        assert_eq!(b.sample::<X>(start + Duration::from_secs(5)), Some(X(20)));
    }

    #[test]
    fn the_default_interpolation_jumps_at_the_next_state() {
        #[derive(Component, Clone, Debug, PartialEq)]
        struct Jumps(u32);
        impl NetState for Jumps {
            const WIDTHS: &'static [u8] = &[32];
            fn to_fields(&self) -> Vec<u32> {
                vec![self.0]
            }
            fn from_fields(fields: &[u32]) -> Self {
                Jumps(fields[0])
            }
        }
        let start = Instant::now();
        let b = buffer(start, &[(100, 10), (200, 20)]);
        let at = start + Duration::from_millis(199);
        assert_eq!(b.sample::<Jumps>(at), Some(Jumps(10)));
    }

    #[test]
    fn the_buffer_keeps_the_newest_states() {
        let start = Instant::now();
        let states: Vec<(u64, u32)> = (0..100).map(|i| (i, i as u32)).collect();
        let b = buffer(start, &states);
        assert_eq!(b.0.len(), MAX_BUFFERED);
        assert_eq!(
            b.0.front().map(|(_, f)| f[0]),
            Some(100 - MAX_BUFFERED as u32)
        );
        assert_eq!(b.sample::<X>(start), Some(X(100 - MAX_BUFFERED as u32)));
    }

    #[test]
    fn states_that_arrive_together_do_not_divide_by_zero() {
        let start = Instant::now();
        let b = buffer(start, &[(100, 10), (100, 20), (200, 30)]);
        let at = start + Duration::from_millis(150);
        assert_eq!(b.sample::<X>(at), Some(X(25)));
    }

    #[test]
    fn fields_that_do_not_fit_the_type_are_never_made_a_state() {
        /// Two fields of 4 bits; `from_fields` indexes both.
        #[derive(Component, Clone, Debug, PartialEq)]
        struct Two(u32, u32);
        impl NetState for Two {
            const WIDTHS: &'static [u8] = &[4, 4];
            fn to_fields(&self) -> Vec<u32> {
                vec![self.0, self.1]
            }
            fn from_fields(fields: &[u32]) -> Self {
                Two(fields[0], fields[1])
            }
        }
        let start = Instant::now();
        let later = start + Duration::from_secs(1);
        // One field: from_fields would index out of bounds.
        let short = Buffer::new(start, fields(3));
        assert_eq!(short.sample::<Two>(later), None);
        // A value wider than its field.
        let wide = Buffer::new(start, Fields::from(vec![1, 16]));
        assert_eq!(wide.sample::<Two>(later), None);
        // Between a good state and a bad one: none either.
        let mut mixed = Buffer::new(start, Fields::from(vec![1, 2]));
        assert_eq!(mixed.sample::<Two>(later), Some(Two(1, 2)));
        mixed.push(start + Duration::from_millis(200), fields(9));
        let between = start + Duration::from_millis(100);
        assert_eq!(mixed.sample::<Two>(between), None);
    }

    #[test]
    fn the_display_time_is_the_delay_before_now() {
        let now = Instant::now() + Duration::from_secs(1);
        let delay = Duration::from_millis(100);
        assert_eq!(display_time(now, delay) + delay, now);
    }

    #[test]
    fn jittered_arrivals_are_placed_on_the_senders_timeline() {
        let start = Instant::now();
        let mut clocks = SenderClocks::default();
        let owner = PeerId(7);
        // Stamped every 33 ms, delayed 30 to 70 ms (a fixed pattern).
        let mut placed = Vec::new();
        for k in 0..200u64 {
            let sent = 1_000_000 + k * 33;
            let delay = 30 + (k * 37 % 41);
            let now = start + Duration::from_millis(k * 33 + delay);
            placed.push(clocks.place(owner, sent, now));
        }
        // Past the first window, every gap is the sender's 33 ms.
        for w in placed[70..].windows(2) {
            let gap = w[1].duration_since(w[0]).as_secs_f64() * 1000.0;
            assert!((gap - 33.0).abs() < 0.5, "gap {gap:.2} ms");
        }
        // A clock started anew is mapped from its first packet.
        let now = start + Duration::from_secs(20);
        assert_eq!(clocks.place(owner, 5, now), now);
        clocks.retain(|p| p != owner);
        assert_eq!(clocks.len(), 0);
    }
}
