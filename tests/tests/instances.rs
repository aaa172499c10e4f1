//! Two signaling instances sharing a real `redis-server`, on real WebRTC in a
//! network namespace: quick-match pairs two headless arena games connected
//! to different instances, and they play one game in step.

use std::time::{Duration, Instant};

use gamenet::rollback::RollbackStart;
use gamenet_e2e::faults::Timeline;
use gamenet_e2e::{PORT, RedisProcess, isolated, start_instance};

#[test]
fn quick_match_across_two_instances_plays_one_game() {
    isolated(
        "quick_match_across_two_instances_plays_one_game",
        || async {
            let redis = RedisProcess::start(6390);
            let one = start_instance(PORT, &redis.url).await;
            let two = start_instance(PORT + 1, &redis.url).await;
            let mut apps = [
                arena::headless_app_as(
                    &format!("{one}/arena?next=2"),
                    2,
                    RollbackStart::Players(2),
                    1,
                    |m| m,
                ),
                arena::headless_app_as(
                    &format!("{two}/arena?next=2"),
                    2,
                    RollbackStart::Players(2),
                    2,
                    |m| m,
                ),
            ];
            let mut timeline: Timeline = Timeline::new(&["a", "b"][..]);
            let started = Instant::now();
            let end = 300;
            while !timeline.all_confirmed_together(end) {
                for app in &mut apps {
                    app.update();
                }
                timeline.record(&apps.iter().collect::<Vec<_>>());
                std::thread::sleep(Duration::from_millis(4));
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "the two games never played {end} frames together"
                );
            }
            let compared = timeline.assert_one_timeline();
            timeline.assert_no_departure();
            let frame = timeline.assert_in_step(end);
            println!(
                "RESULT quick-match across two instances on Redis: frame {end} confirmed together \
             {:.2}s after start; one timeline ({compared} frame checks), in step at frame {frame}",
                started.elapsed().as_secs_f64()
            );
        },
    );
}
