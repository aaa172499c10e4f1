//! Several server instances sharing one real `redis-server` (on a loopback
//! port, in a temporary directory), each reached directly by its port: rooms,
//! quick-match, lobbies, signals and limits across instances, and Redis going
//! away under them.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::load_balancer::LoadBalancer;
use common::redis_server::RedisServer;
use common::*;
use futures::StreamExt;
use gamenet_signaling::Config;
use matchbox_protocol::{JsonPeerEvent, PeerId};
use tokio_tungstenite::tungstenite::Message;

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

/// Behind a load balancer (`--trust-proxy`), the clients of one forwarded
/// address are counted across instances against
/// `--max-connections-per-address`; a client leaving frees its place.
#[tokio::test]
async fn clients_per_address_are_counted_across_instances_behind_a_proxy() {
    let redis = RedisServer::start();
    let config = Config {
        trust_proxy: true,
        max_connections_per_address: 2,
        ..loose()
    };
    let one = instance(&redis, config.clone()).await;
    let two = instance(&redis, config).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];
    let player = "198.51.100.9";
    let open = |addr| async move {
        let mut ws = try_connect_from([127, 0, 0, 1], addr, "room", &from(player))
            .await
            .unwrap();
        let _ = next_event(&mut ws).await;
        ws
    };
    let mut first = open(one).await;
    let _second = open(two).await;
    for addr in [one, two] {
        let (status, body) =
            refusal(try_connect_from([127, 0, 0, 1], addr, "room", &from(player)).await);
        assert_eq!(status, 429, "{body}");
        assert!(body.contains("too many clients from"), "{body}");
    }
    // Another address behind the same proxy is not held back.
    let mut other = try_connect_from([127, 0, 0, 1], two, "room", &from("203.0.113.4"))
        .await
        .unwrap();
    let _ = next_event(&mut other).await;
    first.close(None).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match try_connect_from([127, 0, 0, 1], two, "room", &from(player)).await {
            Ok(_) => break,
            Err(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "the place stayed taken"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// Joins `path` on `addr` once the instances serve joins again after Redis
/// came back (a join refused meanwhile gets its id, then a close).
async fn join_when_served(addr: SocketAddr, path: &str) -> (Ws, PeerId) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut ws) = try_connect_from([127, 0, 0, 1], addr, path, &[]).await {
            let JsonPeerEvent::IdAssigned(id) = next_event(&mut ws).await else {
                panic!("no id first");
            };
            // A refused join is closed right after its id.
            match tokio::time::timeout(Duration::from_secs(1), ws.next()).await {
                Err(_) => return (ws, id),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let reason = frame.map(|f| f.reason.to_string()).unwrap_or_default();
                    assert!(reason.contains("cannot serve"), "{reason}");
                }
                Ok(other) => panic!("{other:?}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "joins still refused"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Redis killed under two instances: what needs it is refused with a reason
/// and a metric, `/ready` says so, and signals between clients of one
/// instance in one room still pass. Redis back empty: the instances write
/// back what they hold, and the open room, the waiting quick-match peer and
/// both lobbies (one empty, one with a player) are whole again: newcomers on
/// either instance meet those who were there, and signals pass across
/// instances again.
#[tokio::test]
async fn redis_restarted_empty_gets_back_the_rooms_queues_and_lobbies_the_instances_hold() {
    let mut redis = RedisServer::start();
    let port = redis.addr.port();
    let one = instance(&redis, loose()).await;
    let two = instance(&redis, loose()).await;
    let (mut a, a_id) = connect(one, "room").await;
    let (mut b, b_id) = connect(two, "room").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let (mut a2, a2_id) = connect(one, "room").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(a2_id));
    assert_eq!(next_event(&mut b).await, JsonPeerEvent::NewPeer(a2_id));
    let (mut waiting, waiting_id) = connect(two, "arena?next=2").await;
    let lobby = |name: &str, max: usize| {
        format!(r#"{{"name": "{name}", "public": true, "max_players": {max}}}"#)
    };
    let (status, made) = api(one, "POST", "/api/lobbies", "", &lobby("empty", 2)).await;
    assert_eq!(status, 201, "{made}");
    let empty = made["code"].as_str().unwrap().to_owned();
    let (status, made) = api(two, "POST", "/api/lobbies", "", &lobby("busy", 3)).await;
    assert_eq!(status, 201, "{made}");
    let busy = made["code"].as_str().unwrap().to_owned();
    let (mut host, host_id) = connect(one, &format!("join/{busy}")).await;

    redis.kill();
    let (status, body) = refusal(try_connect_from([127, 0, 0, 1], one, "room", &[]).await);
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
    // Held rooms are still served where the instance can: between its own
    // clients.
    signal_passes(&mut a, a_id, &mut a2, a2_id, "a to a2 without Redis").await;

    let _redis = RedisServer::start_on(port);
    for addr in [one, two] {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while http(addr, "GET", "/ready", "", "").await.0 != 200 {
            assert!(tokio::time::Instant::now() < deadline, "{addr} not ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A newcomer on one is paired with the peer that waited on two.
    let (mut newcomer, newcomer_id) = join_when_served(one, "arena?next=2").await;
    assert_eq!(
        next_event(&mut waiting).await,
        JsonPeerEvent::NewPeer(newcomer_id)
    );
    signal_passes(
        &mut waiting,
        waiting_id,
        &mut newcomer,
        newcomer_id,
        "waiting to newcomer",
    )
    .await;
    // The open room has its three members on both instances.
    let (mut n, n_id) = join_when_served(two, "room").await;
    for ws in [&mut a, &mut a2, &mut b] {
        assert_eq!(next_event(ws).await, JsonPeerEvent::NewPeer(n_id));
    }
    signal_passes(&mut a, a_id, &mut b, b_id, "a to b").await;
    signal_passes(&mut n, n_id, &mut a2, a2_id, "n to a2").await;
    // Both lobbies are listed and joinable, the busy one with its player.
    let (status, listed) = api(one, "GET", "/api/lobbies", "", "").await;
    assert_eq!(status, 200, "{listed}");
    let players = |code: &str| {
        listed["lobbies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["code"] == code)
            .map(|l| l["players"].as_u64().unwrap())
    };
    assert_eq!(players(&empty), Some(0), "{listed}");
    assert_eq!(players(&busy), Some(1), "{listed}");
    let (mut guest, guest_id) = connect(two, &format!("join/{busy}")).await;
    assert_eq!(
        next_event(&mut host).await,
        JsonPeerEvent::NewPeer(guest_id)
    );
    signal_passes(&mut guest, guest_id, &mut host, host_id, "guest to host").await;
    let (_first, _) = connect(two, &format!("join/{empty}")).await;
    for addr in [one, two] {
        assert!(metric(addr, "gamenet_signaling_write_backs_total").await >= 1.0);
    }
    assert_eq!(metric(one, "gamenet_signaling_peers").await, 9.0);
    assert_eq!(metric(two, "gamenet_signaling_clients_all").await, 9.0);
}

/// An instance whose Redis subscription is cut (Redis itself fine) would not
/// hear of newcomers to its clients' rooms: such a join is refused with a
/// reason, not accepted unheard, until the instance has subscribed again.
#[tokio::test]
async fn a_join_whose_room_mates_instance_cannot_hear_it_is_refused_until_it_can() {
    let redis = RedisServer::start();
    let one = instance(
        &redis,
        Config {
            // Subscribes again a third of this after losing it.
            instance_ttl: Duration::from_secs(9),
            ..loose()
        },
    )
    .await;
    let two = instance(&redis, loose()).await;
    let (mut a, _) = connect(one, "room").await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let killed: u64 = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(killed, 2, "both instances' subscriptions");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while http(one, "GET", "/ready", "", "").await.0 != 503 {
        assert!(tokio::time::Instant::now() < deadline, "still ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut b = try_connect_from([127, 0, 0, 1], two, "room", &[])
        .await
        .unwrap();
    let _ = next_event(&mut b).await;
    let (code, reason) = expect_close(&mut b).await;
    assert_eq!(code, 1013, "{reason}");
    assert!(reason.contains("out of reach"), "{reason}");
    // Subscribed again: the newcomer is announced.
    let (_b, b_id) = join_when_served(two, "room").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
}

/// An instance as a process of its own (the server binary), to be killed
/// with SIGKILL.
struct InstanceProcess {
    child: std::process::Child,
    addr: SocketAddr,
}

impl InstanceProcess {
    async fn start(redis: &RedisServer, secret: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_gamenet-signaling"))
            .args(["--listen", &addr.to_string(), "--stun-listen", "off"])
            .args([
                "--redis",
                &redis.url(),
                "--instance-ttl",
                &TTL.as_secs_f64().to_string(),
            ])
            .args(["--resume-secret", secret, "--rate", "0"])
            .args(["--max-connections-per-address", "0"])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap();
        // Killed when dropped, also if it never starts.
        let instance = Self { child, addr };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let up = tokio::net::TcpStream::connect(addr).await.is_ok();
            if up && http(addr, "GET", "/ready", "", "").await.0 == 200 {
                return instance;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the instance did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for InstanceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The instances' `--instance-ttl` in the tests with killed instances.
const TTL: Duration = Duration::from_secs(2);
const SECRET: &str = "instances test resume secret";

/// An in-process instance for the tests with killed instances.
async fn survivor(redis: &RedisServer) -> SocketAddr {
    instance(
        redis,
        Config {
            resume_secret: Some(SECRET.into()),
            instance_ttl: TTL,
            ..loose()
        },
    )
    .await
}

/// Nothing arrives on `ws` for `quiet`.
async fn hears_nothing(ws: &mut Ws, quiet: Duration) {
    use futures::StreamExt;
    match tokio::time::timeout(quiet, ws.next()).await {
        Err(_) => {}
        Ok(message) => panic!("expected nothing, got {message:?}"),
    }
}

#[tokio::test]
async fn a_killed_instances_clients_leave_their_rooms_within_its_ttl() {
    let redis = RedisServer::start();
    let mut doomed = InstanceProcess::start(&redis, SECRET).await;
    let alive = survivor(&redis).await;
    let (mut a, a_id) = connect(doomed.addr, "room").await;
    let (mut b, _) = connect(alive, "room").await;
    let _ = next_event(&mut a).await;
    doomed.kill();
    let killed = tokio::time::Instant::now();
    let event = tokio::time::timeout(TTL * 3, next_event(&mut b))
        .await
        .expect("no PeerLeft within three TTLs");
    assert_eq!(event, JsonPeerEvent::PeerLeft(a_id));
    let took = killed.elapsed();
    assert!(
        took >= TTL / 2,
        "left after {took:?}, before the instance could have expired"
    );
    println!(
        "RESULT a killed instance's client left its room {took:?} after the kill (TTL {TTL:?})"
    );
    // Its seat and its place are free: a newcomer meets only b.
    let (mut c, c_id) = connect(alive, "room").await;
    assert_eq!(next_event(&mut b).await, JsonPeerEvent::NewPeer(c_id));
    hears_nothing(&mut c, Duration::from_millis(200)).await;
    drop(a);
}

#[tokio::test]
async fn a_client_of_a_killed_instance_resumes_on_another_unseen_by_its_room() {
    let redis = RedisServer::start();
    let mut doomed = InstanceProcess::start(&redis, SECRET).await;
    let alive = survivor(&redis).await;
    let (mut a, a_id) = connect(doomed.addr, "game?key=player-a-key-0001").await;
    let (mut b, b_id) = connect(alive, "game").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    doomed.kill();
    drop(a);
    // It comes back through the other instance (as through a load balancer)
    // under its id, and is told who is there.
    let (mut a, again) = connect(alive, "game?key=player-a-key-0001").await;
    assert_eq!(again, a_id);
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    // The room sees nothing of it, past the dead instance's TTL.
    hears_nothing(&mut b, TTL * 2).await;
    signal_passes(&mut b, b_id, &mut a, a_id, "b to a").await;
    signal_passes(&mut a, a_id, &mut b, b_id, "a to b").await;
    // A newcomer links with both.
    let (_c, c_id) = connect(alive, "game").await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(c_id));
    assert_eq!(next_event(&mut b).await, JsonPeerEvent::NewPeer(c_id));
}

#[tokio::test]
async fn an_instance_killed_mid_matchmaking_leaves_no_dead_member_in_the_group() {
    let redis = RedisServer::start();
    let mut doomed = InstanceProcess::start(&redis, SECRET).await;
    let alive = survivor(&redis).await;
    // A group of three filling: a on the doomed instance, b on the other.
    let (_a, a_id) = connect(doomed.addr, "mm?next=3").await;
    let (mut b, _) = connect(alive, "mm?next=3").await;
    doomed.kill();
    let event = tokio::time::timeout(TTL * 3, next_event(&mut b))
        .await
        .expect("no PeerLeft within three TTLs");
    assert_eq!(event, JsonPeerEvent::PeerLeft(a_id));
    // The group fills with live peers only: b, c and d.
    let (mut c, c_id) = connect(alive, "mm?next=3").await;
    assert_eq!(next_event(&mut b).await, JsonPeerEvent::NewPeer(c_id));
    let (mut d, d_id) = connect(alive, "mm?next=3").await;
    assert_eq!(next_event(&mut b).await, JsonPeerEvent::NewPeer(d_id));
    assert_eq!(next_event(&mut c).await, JsonPeerEvent::NewPeer(d_id));
    // Closed: the next one starts a group of its own.
    let (_e, _) = connect(alive, "mm?next=3").await;
    hears_nothing(&mut d, Duration::from_millis(300)).await;
}

/// Through nginx: clients spread over both instances share a room; one
/// instance killed, its clients come back through nginx (to the other) under
/// their ids, unseen by their room-mates, and a newcomer is announced to all.
#[tokio::test]
async fn through_a_load_balancer_clients_of_a_killed_instance_resume_on_the_other() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let redis = RedisServer::start();
    let mut doomed = InstanceProcess::start(&redis, SECRET).await;
    let alive = survivor(&redis).await;
    let nginx = LoadBalancer::start(&[doomed.addr, alive]).await;
    // Four players, round-robin over the two instances, in one room.
    let mut players = Vec::new();
    for n in 0..4 {
        let key = format!("player-key-{n:08}");
        let (ws, id) = connect(nginx.addr, &format!("lb?key={key}")).await;
        players.push((ws, id, key, false));
    }
    let ids: Vec<_> = players.iter().map(|(_, id, _, _)| *id).collect();
    for (n, (ws, _, _, _)) in players.iter_mut().enumerate() {
        // Each is told of those who came after it.
        for later in &ids[n + 1..] {
            assert_eq!(next_event(ws).await, JsonPeerEvent::NewPeer(*later));
        }
    }
    assert!(
        metric(doomed.addr, "gamenet_signaling_clients").await >= 1.0,
        "nginx sent no client to the first instance"
    );
    doomed.kill();
    // Clients whose connection dropped come back through nginx with their key.
    for (ws, id, key, resumed) in &mut players {
        let dropped = matches!(
            tokio::time::timeout(Duration::from_millis(300), ws.next()).await,
            Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_))))
        );
        if dropped {
            let (again, again_id) = connect(nginx.addr, &format!("lb?key={key}")).await;
            assert_eq!(again_id, *id, "the same id through the other instance");
            *ws = again;
            *resumed = true;
        }
    }
    let resumed = players.iter().filter(|p| p.3).count();
    assert!(resumed >= 1, "no client was on the killed instance");
    // The resumed are told who is there; nobody else hears anything, past the
    // dead instance's TTL: no departure, no arrival.
    tokio::time::sleep(TTL * 2).await;
    for (ws, id, _, was_resumed) in &mut players {
        loop {
            match tokio::time::timeout(Duration::from_millis(50), ws.next()).await {
                Err(_) => break,
                Ok(Some(Ok(Message::Text(text)))) => match text.parse().unwrap() {
                    JsonPeerEvent::NewPeer(other) if *was_resumed && ids.contains(&other) => {}
                    other => panic!("{id}: {other:?}"),
                },
                Ok(other) => panic!("{id}: {other:?}"),
            }
        }
    }
    let (_e, e_id) = connect(nginx.addr, "lb").await;
    for (ws, _, _, _) in &mut players {
        assert_eq!(next_event(ws).await, JsonPeerEvent::NewPeer(e_id));
    }
    println!(
        "RESULT through nginx: {resumed} of 4 clients resumed on the other instance under their ids, unseen by the room; a newcomer announced to all 4"
    );
}
