//! Signaling instances sharing a real `redis-server`, on real WebRTC in a
//! network namespace: quick-match pairs two headless arena games connected
//! to different instances, and they play one game in step; and behind Debian's
//! nginx, an instance killed under a running game: its players come back
//! through nginx on the other instance under their ids, unseen by the game,
//! and a late joiner plays on with them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gamenet::rollback::RollbackStart;
use gamenet_e2e::faults::Timeline;
use gamenet_e2e::load_balancer::LoadBalancer;
use gamenet_e2e::redis_server::RedisServer;
use gamenet_e2e::session::MidGame;
use gamenet_e2e::{HOST, KillableServer, PORT, http_get_body, isolated, start_instance};

#[test]
fn quick_match_across_two_instances_plays_one_game() {
    isolated(
        "quick_match_across_two_instances_plays_one_game",
        || async {
            let redis = RedisServer::start();
            let one = start_instance(PORT, &redis.url()).await;
            let two = start_instance(PORT + 1, &redis.url()).await;
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

/// The instances' `--instance-ttl`: a dead instance's clients that did not
/// come back elsewhere are out of their rooms this long after.
const TTL: Duration = Duration::from_secs(3);

/// An instance on `port`, on Redis at `redis`, resuming clients by their keys.
fn instance(port: u16, redis: &RedisServer) -> KillableServer {
    KillableServer::start(gamenet_signaling::Config {
        listen: format!("0.0.0.0:{port}").parse().expect("address"),
        redis: Some(redis.url()),
        resume_secret: Some("e2e instances resume secret".into()),
        instance_ttl: TTL,
        ..Default::default()
    })
}

/// WebSocket clients connected to the instance on `port`.
async fn clients(port: u16) -> f64 {
    let metrics = http_get_body(&format!("http://{HOST}:{port}/metrics"))
        .await
        .unwrap_or_default();
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("gamenet_signaling_clients ")?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn an_instance_killed_under_a_running_game_its_players_resume_through_nginx_unseen() {
    isolated(
        "an_instance_killed_under_a_running_game_its_players_resume_through_nginx_unseen",
        || async {
            let redis = RedisServer::start();
            let (first, second) = (PORT + 1, PORT + 2);
            let doomed = instance(first, &redis);
            let _alive = instance(second, &redis);
            let upstream = |port: u16| {
                SocketAddr::from((HOST.parse::<std::net::Ipv4Addr>().expect("host"), port))
            };
            let _nginx =
                LoadBalancer::start_on(upstream(PORT), &[upstream(first), upstream(second)]).await;
            let url = format!("ws://{HOST}:{PORT}/killed");
            let mut mid = MidGame::start(move |start, seed| {
                arena::headless_app_as(&url, 3, start, seed, |m| m)
            });
            let on_doomed = clients(first).await;
            assert!(
                on_doomed >= 1.0,
                "nginx sent neither player to the first instance"
            );

            doomed.kill();
            let killed = mid.timeline.mark("the first instance killed");
            let at_kill = mid.confirmed();
            while clients(second).await < 2.0 {
                assert!(
                    mid.timeline.elapsed() < killed + TTL,
                    "the players were not both back on signaling within the TTL"
                );
                mid.step();
            }
            let reconnected = mid.timeline.mark("both on the second instance") - killed;
            assert_eq!(
                mid.ids_now(),
                mid.ids,
                "the same peer ids on the other instance"
            );
            // Past the dead instance's TTL: nobody is taken out of the room.
            while mid.timeline.elapsed() < killed + TTL * 2 {
                mid.step();
            }
            let before_join = mid.timeline.apps()[0].confirmed_frame();
            assert!(
                before_join > at_kill + 120,
                "a and b stopped while their instance was gone: {at_kill} → {before_join}"
            );

            // A late joiner, through nginx, takes the open slot.
            let late = mid.late_join();
            println!(
                "RESULT instance killed under a running game ({on_doomed} of 2 players on it): \
                 a and b played on from frame {at_kill} to {before_join}, back on the other instance \
                 through nginx {:.2}s after the kill under the same ids, nobody left past the TTL; \
                 c joined and all three confirmed frame {} together {:.2}s later; one timeline \
                 ({} frame checks), in step at frame {}, no departures",
                reconnected.as_secs_f64(),
                late.end,
                late.took.as_secs_f64(),
                late.compared,
                late.in_step
            );
        },
    );
}
