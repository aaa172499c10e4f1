//! Showing remote entities a little in the past: their received states by
//! arrival time, sampled between the two around the time shown.

use std::collections::VecDeque;
use std::time::Duration;

use bevy_ecs::prelude::*;
use gamenet::Instant;
use gamenet::replication::Fields;

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

    /// Adds the state that arrived at `at`, dropping the oldest beyond
    /// [`MAX_BUFFERED`].
    pub fn push(&mut self, at: Instant, fields: Fields) {
        self.0.push_back((at, fields));
        while self.0.len() > MAX_BUFFERED {
            self.0.pop_front();
        }
    }

    /// The state at `at`: interpolated between the states that arrived
    /// around it, the oldest before them all, the newest after them all.
    pub fn sample<T: NetState>(&self, at: Instant) -> Option<T> {
        let buffer = &self.0;
        let after = buffer.iter().position(|(t, _)| *t > at);
        match after {
            Some(0) => buffer.front().map(|(_, f)| T::from_fields(f)),
            Some(i) => {
                let (t0, f0) = &buffer[i - 1];
                let (t1, f1) = &buffer[i];
                let span = t1.saturating_duration_since(*t0).as_secs_f32().max(1e-6);
                let t = at.saturating_duration_since(*t0).as_secs_f32() / span;
                Some(T::from_fields(f0).interpolate(&T::from_fields(f1), t.clamp(0.0, 1.0)))
            }
            None => buffer.back().map(|(_, f)| T::from_fields(f)),
        }
    }
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
    fn the_display_time_is_the_delay_before_now() {
        let now = Instant::now() + Duration::from_secs(1);
        let delay = Duration::from_millis(100);
        assert_eq!(display_time(now, delay) + delay, now);
    }
}
