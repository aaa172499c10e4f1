//! [`TestNetwork`]: Bevy apps joined through a simulated network
//! ([`MemoryNetwork`]), stepped deterministically, for tests without sockets.
//!
//! Vocabulary: [`TestNetwork::add_app`] hands a builder the app's
//! [`MemoryTransport`] (for [`RollbackPlugin::memory`] or
//! [`ReplicationPlugin::memory`]) and keeps the app; [`TestNetwork::step`]
//! moves the simulated clock one frame step and updates every app;
//! [`TestNetwork::run_until`] steps until a condition holds. Every app's
//! [`NetClock`] is manual and equal to the network's clock at each update.
//!
//! ```
//! use std::time::Duration;
//! use bevy_app::App;
//! use bevy_gamenet::rollback::{RollbackPlugin, RollbackSocket};
//! use bevy_gamenet::test_app::TestNetwork;
//! use gamenet::rollback::{RollbackConfig, RollbackStart};
//! use gamenet::{ConditionerConfig, PeerId};
//!
//! let mut net = TestNetwork::new(ConditionerConfig {
//!     latency: Duration::from_millis(20),
//!     ..ConditionerConfig::default()
//! });
//! for id in 1..=2u64 {
//!     net.add_app(PeerId(id.into()), |transport| {
//!         let mut app = App::new();
//!         let config = RollbackConfig { num_players: 2, ..RollbackConfig::default() };
//!         app.add_plugins(RollbackPlugin::<u8>::memory(
//!             config,
//!             transport,
//!             RollbackStart::Players(2),
//!             id,
//!         ));
//!         app
//!     });
//! }
//! net.run_until(Duration::from_secs(5), |apps| {
//!     apps.iter().all(|app| {
//!         let socket = app.world().resource::<RollbackSocket<u8>>();
//!         socket.stats().is_some_and(|s| s.confirmed > 30)
//!     })
//! });
//! ```
//!
//! [`RollbackPlugin::memory`]: crate::rollback::RollbackPlugin::memory
//! [`ReplicationPlugin::memory`]: crate::replication::ReplicationPlugin::memory

use std::time::Duration;

use bevy_app::{App, PluginsState};
use gamenet::{ConditionerConfig, Instant, MemoryNetwork, MemoryTransport, PeerId};

use crate::NetClock;

/// The default frame step: 60 Hz.
pub const FRAME_STEP: Duration = Duration::from_nanos(16_666_667);

/// Bevy apps on a simulated network, each with its peer id, stepped on the
/// network's clock.
pub struct TestNetwork {
    /// The simulated network: its clock, links, and the hooks to partition,
    /// kill and inject.
    net: MemoryNetwork,
    /// The apps, in the order they update.
    apps: Vec<App>,
    /// Each app's peer id, by index.
    ids: Vec<PeerId>,
    /// The simulated time one [`TestNetwork::step`] moves the clock.
    step: Duration,
}

impl TestNetwork {
    /// A network whose links all behave as `link`, stepping at 60 Hz.
    pub fn new(link: ConditionerConfig) -> Self {
        Self::on(MemoryNetwork::new(link))
    }

    /// Apps on an existing network (say, one with its own mesh settings).
    pub fn on(net: MemoryNetwork) -> Self {
        Self {
            net,
            apps: Vec::new(),
            ids: Vec::new(),
            step: FRAME_STEP,
        }
    }

    /// Sets the simulated time one [`TestNetwork::step`] moves the clock.
    pub fn with_step(mut self, step: Duration) -> Self {
        self.step = step.max(Duration::from_micros(1));
        self
    }

    /// Adds peer `id`: `build` gets its transport and returns its app, which
    /// gets a manual [`NetClock`] at the network's time and is finished (its
    /// plugins' `finish` and `cleanup` run, which connects replication).
    /// Returns the app's index. Panics if `id` is taken.
    pub fn add_app(&mut self, id: PeerId, build: impl FnOnce(MemoryTransport) -> App) -> usize {
        let transport = self
            .net
            .transport(id)
            .unwrap_or_else(|| panic!("peer {id} is already on the network"));
        let mut app = build(transport);
        app.insert_resource(NetClock::manual(self.net.now()));
        match app.plugins_state() {
            PluginsState::Adding | PluginsState::Ready => {
                app.finish();
                app.cleanup();
            }
            PluginsState::Finished => app.cleanup(),
            PluginsState::Cleaned => {}
        }
        self.apps.push(app);
        self.ids.push(id);
        self.apps.len() - 1
    }

    /// The simulated network, to partition, heal, kill or inject.
    pub fn network(&self) -> &MemoryNetwork {
        &self.net
    }

    /// The simulated time now.
    pub fn now(&self) -> Instant {
        self.net.now()
    }

    /// The apps, by index.
    pub fn apps(&self) -> &[App] {
        &self.apps
    }

    /// App `index`.
    pub fn app(&self, index: usize) -> &App {
        &self.apps[index]
    }

    /// App `index`, mutably.
    pub fn app_mut(&mut self, index: usize) -> &mut App {
        &mut self.apps[index]
    }

    /// The peer id of app `index`.
    pub fn id(&self, index: usize) -> PeerId {
        self.ids[index]
    }

    /// Takes app `index` off the network and returns it; its transport is
    /// killed (the others find out from their heartbeats), or dropped with
    /// the app. The indices after it move down by one.
    pub fn remove_app(&mut self, index: usize) -> App {
        let id = self.ids.remove(index);
        self.net.kill(id);
        self.apps.remove(index)
    }

    /// Updates every app at the network's time, in order.
    pub fn update(&mut self) {
        let now = self.net.now();
        for app in &mut self.apps {
            app.world_mut().resource_mut::<NetClock>().set(now);
            app.update();
        }
    }

    /// Moves the clock one frame step (packets due by then arrive) and
    /// updates every app.
    pub fn step(&mut self) {
        self.net.advance(self.step);
        self.update();
    }

    /// Moves the clock to the network's next deadline (a packet arriving, a
    /// mesh timer), but at least a microsecond and at most one frame step,
    /// and updates every app.
    pub fn step_to_next(&mut self) {
        let now = self.net.now();
        let next = self
            .net
            .next_deadline()
            .unwrap_or(now + self.step)
            .clamp(now + Duration::from_micros(1), now + self.step);
        self.net.advance_to(next);
        self.update();
    }

    /// Steps for `d` of simulated time.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.net.now() + d;
        while self.net.now() < end {
            self.step();
        }
    }

    /// Steps until `done` holds of the apps (mutable, so that it can query
    /// their worlds); panics if it does not within `limit` of simulated time.
    /// Returns the simulated time it took.
    pub fn run_until(
        &mut self,
        limit: Duration,
        mut done: impl FnMut(&mut [App]) -> bool,
    ) -> Duration {
        let start = self.net.now();
        while !done(&mut self.apps) {
            assert!(
                self.net.now() < start + limit,
                "not done after {limit:?} of simulated time"
            );
            self.step();
        }
        self.net.now() - start
    }
}

impl std::fmt::Debug for TestNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNetwork")
            .field("net", &self.net)
            .field("ids", &self.ids)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollback::RollbackPlugin;
    use gamenet::rollback::{RollbackConfig, RollbackStart};

    fn clocks(net: &TestNetwork) -> Vec<Instant> {
        net.apps()
            .iter()
            .map(|app| app.world().resource::<NetClock>().now())
            .collect()
    }

    #[test]
    fn every_app_goes_by_the_network_clock() {
        let mut net = TestNetwork::new(ConditionerConfig {
            latency: Duration::from_millis(5),
            ..ConditionerConfig::default()
        });
        let start = net.now();
        for id in 1..=2u64 {
            net.add_app(PeerId(id.into()), |transport| {
                let mut app = App::new();
                app.add_plugins(RollbackPlugin::<u8>::memory(
                    RollbackConfig::default(),
                    transport,
                    RollbackStart::Players(2),
                    id,
                ));
                app
            });
        }
        assert!(net.app(0).world().resource::<NetClock>().is_manual());
        net.step();
        assert_eq!(net.now(), start + FRAME_STEP);
        assert_eq!(clocks(&net), [net.now(); 2]);

        // The handshake's packets are due 5 ms after they were sent.
        let before = net.now();
        net.step_to_next();
        assert!(net.now() > before && net.now() < before + FRAME_STEP);
        assert_eq!(clocks(&net), [net.now(); 2]);

        drop(net.remove_app(0));
        assert_eq!(net.apps().len(), 1);
        assert_eq!(net.id(0), PeerId(2));
        net.run_for(FRAME_STEP * 3);
        assert_eq!(clocks(&net), [net.now()]);
    }
}
