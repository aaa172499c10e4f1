//! The time gamenet's systems go by: one reading per app update, injected as
//! a resource so tests can set it.

use std::time::Duration;

use bevy_app::{App, First};
use bevy_ecs::prelude::*;
use gamenet::Instant;

/// The time the plugins' systems go by. With [`NetClock::system`] (the
/// default) it reads the system clock once per app update, in [`First`];
/// with [`NetClock::manual`] it moves only when set or advanced, for tests.
///
/// Insert a manual clock before adding the plugins, or replace the resource
/// at any time.
#[derive(Resource, Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetClock {
    /// The time of this update.
    now: Instant,
    /// Whether the time moves only by [`NetClock::set`] and
    /// [`NetClock::advance`].
    manual: bool,
}

impl Default for NetClock {
    fn default() -> Self {
        Self::system()
    }
}

impl NetClock {
    /// A clock that reads the system clock once per app update.
    pub fn system() -> Self {
        Self {
            now: Instant::now(),
            manual: false,
        }
    }

    /// A clock at `now` that moves only when set or advanced.
    pub fn manual(now: Instant) -> Self {
        Self { now, manual: true }
    }

    /// The time of this update.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Whether the clock moves only when set or advanced.
    pub fn is_manual(&self) -> bool {
        self.manual
    }

    /// Sets the time (a system clock reads the system clock again next update).
    pub fn set(&mut self, now: Instant) {
        self.now = now;
    }

    /// Moves the time forward by `by`.
    pub fn advance(&mut self, by: Duration) {
        self.now += by;
    }
}

/// Reads the system clock into a system [`NetClock`].
fn tick(mut clock: ResMut<NetClock>) {
    if !clock.manual {
        clock.now = Instant::now();
    }
}

/// Adds the clock (unless the app has one) and its system, once.
pub(crate) fn init(app: &mut App) {
    if app.world().contains_resource::<Ticking>() {
        return;
    }
    app.init_resource::<NetClock>()
        .init_resource::<Ticking>()
        .add_systems(First, tick);
}

/// Marks that the clock's system is added.
#[derive(Resource, Default)]
struct Ticking;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let start = Instant::now();
        let mut app = App::new();
        app.insert_resource(NetClock::manual(start));
        init(&mut app);
        app.update();
        assert_eq!(app.world().resource::<NetClock>().now(), start);
        app.world_mut()
            .resource_mut::<NetClock>()
            .advance(Duration::from_millis(16));
        app.update();
        assert_eq!(
            app.world().resource::<NetClock>().now(),
            start + Duration::from_millis(16)
        );
    }

    #[test]
    fn a_system_clock_reads_the_time_each_update() {
        let mut app = App::new();
        init(&mut app);
        init(&mut app);
        let before = app.world().resource::<NetClock>().now();
        std::thread::sleep(Duration::from_millis(2));
        app.update();
        assert!(app.world().resource::<NetClock>().now() > before);
    }
}
