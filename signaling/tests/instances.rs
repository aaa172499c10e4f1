//! Several server instances sharing one real `redis-server` (on a loopback
//! port, in a temporary directory), each reached directly by its port: rooms,
//! quick-match, lobbies, signals and limits across instances, and Redis going
//! away under them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::redis_server::RedisServer;
use common::*;
use gamenet_signaling::Config;
use matchbox_protocol::JsonPeerEvent;

/// An instance on Redis at `redis`, with limits loose enough for one test
/// address unless `config` says otherwise.
async fn instance(redis: &RedisServer, config: Config) -> SocketAddr {
    let config = Config {
        redis: Some(redis.url()),
        ..config
    };
    let (addr, stop, _task) = start(config).await;
    // Serves until the test's runtime ends.
    std::mem::forget(stop);
    addr
}

fn loose() -> Config {
    Config {
        rate: 0.0,
        max_connections_per_address: 0,
        ..Config::default()
    }
}

#[tokio::test]
async fn quick_match_pairs_peers_of_different_instances_and_their_signals_pass() {
    let redis = RedisServer::start();
    let one = instance(&redis, loose()).await;
    let two = instance(&redis, loose()).await;
    let (mut a, a_id) = connect(one, "arena?next=2").await;
    let (mut b, b_id) = connect(two, "arena?next=2").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    signal_passes(&mut a, a_id, &mut b, b_id, "a to b").await;
    signal_passes(&mut b, b_id, &mut a, a_id, "b to a").await;
    // A third on either instance starts a new group: a and b stay two.
    let (mut c, c_id) = connect(one, "arena?next=2").await;
    let (mut d, d_id) = connect(two, "arena?next=2").await;
    assert_eq!(next_event(&mut c).await, JsonPeerEvent::NewPeer(d_id));
    // A signal into another room is dropped, across instances too.
    signal(&mut c, a_id, "c to a").await;
    signal(&mut d, b_id, "d to b").await;
    signal_passes(&mut d, d_id, &mut c, c_id, "d to c").await;
    signal_passes(&mut a, a_id, &mut b, b_id, "a to b again").await;
    wait_for_metric(
        one,
        "gamenet_signaling_signals_dropped_total{reason=\"outside_room\"}",
        Duration::from_secs(5),
        |n| n == 1.0,
    )
    .await;
    // Leaving is told across instances.
    b.close(None).await.unwrap();
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::PeerLeft(b_id));
    // Both instances count the rooms and relayed messages.
    assert!(metric(one, "gamenet_signaling_relayed_out_total").await >= 2.0);
    assert!(metric(two, "gamenet_signaling_relayed_in_total").await >= 2.0);
    assert_eq!(metric(two, "gamenet_signaling_rooms").await, 2.0);
}

#[tokio::test]
async fn lobbies_made_on_one_instance_are_listed_and_joined_on_another() {
    let redis = RedisServer::start();
    let one = instance(&redis, loose()).await;
    let two = instance(&redis, loose()).await;
    let (status, made) = api(
        one,
        "POST",
        "/api/lobbies",
        "",
        r#"{"name": "shared", "public": true, "max_players": 2}"#,
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let code = made["code"].as_str().unwrap().to_owned();
    let (status, listed) = api(two, "GET", "/api/lobbies", "", "").await;
    assert_eq!(status, 200);
    assert_eq!(listed["lobbies"][0]["code"], code.as_str());
    let (status, _) = api(two, "GET", &format!("/api/lobbies/{code}"), "", "").await;
    assert_eq!(status, 200);
    let (mut a, a_id) = connect(two, &format!("join/{code}")).await;
    let (mut b, b_id) = connect(one, &format!("join/{code}")).await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    signal_passes(&mut b, b_id, &mut a, a_id, "b to a").await;
    let (_, lobby) = api(one, "GET", &format!("/api/lobbies/{code}"), "", "").await;
    assert_eq!(lobby["players"], 2);
    // Full, whichever instance is asked.
    let mut c = try_connect_from([127, 0, 0, 1], two, &format!("join/{code}"), &[])
        .await
        .unwrap();
    let _ = next_event(&mut c).await;
    let (code, reason) = expect_close(&mut c).await;
    assert_eq!(code, 4000, "{reason}");
}

#[tokio::test]
async fn limits_hold_across_instances() {
    let redis = RedisServer::start();
    let config = Config {
        rate: 0.5,
        rate_burst: 3,
        max_connections_per_address: 0,
        max_clients: 2,
        ..Config::default()
    };
    let one = instance(&redis, config.clone()).await;
    let two = instance(&redis, config).await;
    // Three requests at once from one address, spread over both instances.
    let (_a, _) = connect_from([127, 0, 0, 2], one, "room").await;
    let (_b, _) = connect_from([127, 0, 0, 2], two, "room").await;
    let (status, _) = api_from([127, 0, 0, 2], one, "GET", "/api/ice", "", "").await;
    assert_eq!(status, 200);
    let (status, body) = refusal(try_connect_from([127, 0, 0, 2], two, "room", &[]).await);
    assert_eq!(status, 429, "{body}");
    // Two clients across both instances fill the servers.
    let (status, body) = refusal(try_connect_from([127, 0, 0, 3], one, "room", &[]).await);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("full"), "{body}");
}

#[tokio::test]
async fn without_redis_joins_are_refused_with_a_reason_and_served_again_once_it_is_back() {
    let mut redis = RedisServer::start();
    let port = redis.addr.port();
    let one = instance(&redis, loose()).await;
    let two = instance(&redis, loose()).await;
    let (mut a, a_id) = connect(one, "room").await;
    let (mut b, b_id) = connect(two, "room").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    redis.kill();
    let refused = try_connect_from([127, 0, 0, 1], one, "room", &[]).await;
    let (status, body) = refusal(refused);
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cannot serve"), "{body}");
    let (status, body) = api(two, "GET", "/api/lobbies", "", "").await;
    assert_eq!(status, 503, "{body}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while http(two, "GET", "/ready", "", "").await.0 != 503 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still ready without Redis"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(metric(one, "gamenet_signaling_shared_errors_total").await >= 1.0);
    // Back, empty: new rooms form again (what was held before is the
    // write-back's business, not this test's).
    let _redis = RedisServer::start_on(port);
    // Each instance is ready again once it has subscribed again.
    for addr in [one, two] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while http(addr, "GET", "/ready", "", "").await.0 != 200 {
            assert!(tokio::time::Instant::now() < deadline, "{addr} not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let (mut c, c_id) = loop {
        match try_connect_from([127, 0, 0, 1], one, "again", &[]).await {
            Ok(mut ws) => match next_event(&mut ws).await {
                JsonPeerEvent::IdAssigned(id) => break (ws, id),
                other => panic!("{other:?}"),
            },
            Err(_) => {
                assert!(tokio::time::Instant::now() < deadline, "still refused");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let (mut d, d_id) = connect(two, "again").await;
    assert_eq!(next_event(&mut c).await, JsonPeerEvent::NewPeer(d_id));
    signal_passes(&mut d, d_id, &mut c, c_id, "d to c").await;
    let _ = (&mut a, a_id, &mut b);
}
