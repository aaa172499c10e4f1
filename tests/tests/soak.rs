//! A soak run: four headless arena games over the real signaling server and
//! real WebRTC in the test's network namespace, with 5 % of UDP packets lost
//! and a 2 s UDP outage every minute. It asserts no desync, all four in step at
//! the end, and that resident memory does not grow by more than 10 % after the
//! warm-up (which ends a while after the first outage: queues and buffers have
//! then met an outage once), printing it per period.
//!
//! The test suite runs one minute (periods of 10 s, an outage 15 s in, warm-up
//! 30 s); `cargo xtask soak` runs ten (periods of a minute, outages from 30 s
//! on, warm-up a minute) with `GAMENET_SOAK_MINUTES=10`.

use std::time::{Duration, Instant};

use bevy_app::App;
use bevy_ecs::message::{MessageCursor, Messages};
use bevy_gamenet::rollback::SessionEvent;
use gamenet::rollback::{Frame, RollbackEvent};
use gamenet_e2e::faults::{udp_loss_end, udp_loss_start, udp_outage_end, udp_outage_start};
use gamenet_e2e::session::{confirmed_checksum, confirmed_frame};
use gamenet_e2e::{isolated, start_server};

const PLAYERS: usize = 4;
const LOSS: f64 = 0.05;
const OUTAGE: Duration = Duration::from_secs(2);

/// This process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[test]
fn four_players_soak_through_loss_and_outages() {
    isolated("four_players_soak_through_loss_and_outages", || async {
        let minutes: u64 = std::env::var("GAMENET_SOAK_MINUTES")
            .ok()
            .and_then(|m| m.parse().ok())
            .unwrap_or(1)
            .max(1);
        let total = Duration::from_secs(60 * minutes);
        let (period, first_outage) = if minutes == 1 {
            (Duration::from_secs(10), Duration::from_secs(15))
        } else {
            (Duration::from_secs(60), Duration::from_secs(30))
        };
        let warm_up = 2 * first_outage;
        let url = format!("{}/soak?next={PLAYERS}", start_server().await);
        let mut apps: Vec<App> = (0..PLAYERS)
            .map(|i| arena::headless_app(&url, PLAYERS, i as u64 + 1))
            .collect();
        let mut cursors: Vec<MessageCursor<SessionEvent>> =
            (0..PLAYERS).map(|_| MessageCursor::default()).collect();
        let mut desyncs = Vec::new();
        let mut rejoins = 0;
        let mut step = |apps: &mut [App]| {
            for (app, cursor) in apps.iter_mut().zip(cursors.iter_mut()) {
                app.update();
                let messages = app.world().resource::<Messages<SessionEvent>>();
                for SessionEvent(e) in cursor.read(messages) {
                    match e {
                        RollbackEvent::DesyncDetected { .. } => desyncs.push(e.clone()),
                        RollbackEvent::Rejoining { .. } => rejoins += 1,
                        _ => {}
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(4));
        };
        let start = Instant::now();
        while apps.iter().map(confirmed_frame).min().unwrap_or(0) < 60 {
            step(&mut apps);
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the game never ran"
            );
        }
        udp_loss_start(LOSS);
        let began = Instant::now();
        let mut rss = Vec::new();
        let mut next_sample = began + period;
        let mut next_outage = began + first_outage;
        while began.elapsed() < total {
            step(&mut apps);
            if Instant::now() >= next_outage {
                udp_outage_start();
                let until = Instant::now() + OUTAGE;
                while Instant::now() < until {
                    step(&mut apps);
                }
                udp_outage_end();
                next_outage += Duration::from_secs(60);
            }
            if Instant::now() >= next_sample {
                let frames: Vec<Frame> = apps.iter().map(confirmed_frame).collect();
                let kib = rss_kib();
                println!(
                    "{:>4} s: resident {:.1} MiB, confirmed frames {frames:?}",
                    began.elapsed().as_secs(),
                    kib as f64 / 1024.0
                );
                rss.push((began.elapsed() >= warm_up, kib));
                next_sample += period;
            }
        }
        udp_loss_end(LOSS);
        // In step: every game confirms the same checksum at a frame past all
        // of them, within half a minute.
        let target = (apps.iter().map(confirmed_frame).max().unwrap_or(0) / 16 + 8) * 16;
        let until = Instant::now() + Duration::from_secs(30);
        while apps.iter().any(|a| confirmed_checksum(a, target).is_none()) {
            step(&mut apps);
            assert!(Instant::now() < until, "not all at frame {target}");
        }
        let sums: Vec<Option<u64>> = apps.iter().map(|a| confirmed_checksum(a, target)).collect();
        println!("frame {target}: checksums {sums:x?}; {rejoins} rejoins");
        assert!(desyncs.is_empty(), "desyncs: {desyncs:?}");
        assert!(sums.windows(2).all(|w| w[0] == w[1]), "out of step");
        let mut after = rss.iter().filter(|(warm, _)| *warm).map(|(_, kib)| *kib);
        let first = after.next().expect("a sample after the warm-up");
        let peak = after.max().unwrap_or(first).max(first);
        println!(
            "resident memory after the warm-up {:.1} MiB, peak since {:.1} MiB ({:+.1} %)",
            first as f64 / 1024.0,
            peak as f64 / 1024.0,
            (peak as f64 / first as f64 - 1.0) * 100.0
        );
        assert!(
            peak as f64 <= first as f64 * 1.10,
            "resident memory grew by more than 10 % after the warm-up"
        );
    });
}
