//! The HTTP API, auth, ICE and metrics of the real server, over real HTTP,
//! WebSockets and UDP on loopback.

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use gamenet_signaling::Config;
use gamenet_signaling::auth::{issue_token, turn_credentials};
use matchbox_protocol::JsonPeerEvent;

#[tokio::test]
async fn lobbies_are_created_listed_and_joined_by_code() {
    let (addr, _stop, _task) = start(Config::default()).await;
    let (status, public) = api(
        addr,
        "POST",
        "/api/lobbies",
        "Content-Type: application/json\r\n",
        r#"{"name": "Friday ctf", "public": true, "max_players": 2, "mode": "ctf"}"#,
    )
    .await;
    assert_eq!(status, 201, "{public}");
    let code = public["code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 6);
    assert_eq!(public["path"], format!("/join/{code}"));
    assert_eq!(public["players"], 0);
    assert_eq!(public["max_players"], 2);
    assert_eq!(public["mode"], "ctf");
    let (status, private) = api(addr, "POST", "/api/lobbies", "", r#"{"public": false}"#).await;
    assert_eq!(status, 201, "{private}");
    let private_code = private["code"].as_str().unwrap().to_owned();

    // Only public lobbies are listed; the mode filters.
    let (status, list) = api(addr, "GET", "/api/lobbies", "", "").await;
    assert_eq!(status, 200);
    let codes: Vec<&str> = list["lobbies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, [code.as_str()]);
    let (_, other_mode) = api(addr, "GET", "/api/lobbies?mode=duel", "", "").await;
    assert_eq!(other_mode["lobbies"].as_array().unwrap().len(), 0);
    // A private lobby is found by its code.
    let (status, found) = api(addr, "GET", &format!("/api/lobbies/{private_code}"), "", "").await;
    assert_eq!((status, &found["public"]), (200, &false.into()));

    // Two players join by code (in any case); a third finds it full.
    let (mut a, _) = connect(addr, &format!("join/{code}")).await;
    let (_b, b_id) = connect(addr, &format!("join/{}", code.to_lowercase())).await;
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    let (mut c, _) = connect(addr, &format!("join/{code}")).await;
    let (close, reason) = expect_close(&mut c).await;
    assert_eq!(close, 4000);
    assert!(reason.contains("full"), "{reason}");
    let (_, listed) = api(addr, "GET", &format!("/api/lobbies/{code}"), "", "").await;
    assert_eq!(listed["players"], 2);
    // Players of the private lobby are not in the public one's room.
    let (_p, _) = connect(addr, &format!("join/{private_code}")).await;

    // Unknown and malformed codes are refused before the upgrade.
    let (status, body) = refusal(try_connect_from([127, 0, 0, 1], addr, "join/ZZZZZZ", &[]).await);
    assert_eq!(status, 404);
    assert!(body.contains("no lobby with code ZZZZZZ"), "{body}");
    let (status, body) = refusal(try_connect_from([127, 0, 0, 1], addr, "join/O0O0", &[]).await);
    assert_eq!(status, 400);
    assert!(body.contains("invalid join code"), "{body}");
    let (status, body) = api(addr, "GET", "/api/lobbies/ZZZZZZ", "", "").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn quick_match_never_pairs_different_modes() {
    let (addr, _stop, _task) = start(Config::default()).await;
    let (mut ctf, _) = connect(addr, "arena?next=2&mode=ctf").await;
    let (mut duel, _) = connect(addr, "arena?next=2&mode=duel").await;
    let (mut plain, _) = connect(addr, "arena?next=2").await;
    let (_ctf2, ctf2_id) = connect(addr, "arena?next=2&mode=ctf").await;
    assert_eq!(next_event(&mut ctf).await, JsonPeerEvent::NewPeer(ctf2_id));
    let (_duel2, duel2_id) = connect(addr, "arena?next=2&mode=duel").await;
    assert_eq!(
        next_event(&mut duel).await,
        JsonPeerEvent::NewPeer(duel2_id)
    );
    let (_plain2, plain2_id) = connect(addr, "arena?next=2").await;
    assert_eq!(
        next_event(&mut plain).await,
        JsonPeerEvent::NewPeer(plain2_id)
    );
    assert_eq!(metric(addr, "gamenet_signaling_matches_total").await, 3.0);
    assert_eq!(
        metric(addr, "gamenet_signaling_matchmaking_seconds_count").await,
        6.0
    );
    // A mode without next makes no sense and says so.
    let (status, body) =
        refusal(try_connect_from([127, 0, 0, 1], addr, "arena?mode=ctf", &[]).await);
    assert_eq!(status, 400);
    assert!(body.contains("mode needs next"), "{body}");
}

#[tokio::test]
async fn ice_servers_are_our_stun_and_turn_with_fresh_credentials() {
    let (addr, _stop, _task) = start(Config {
        stun_listen: Some("127.0.0.1:0".parse().unwrap()),
        turn_urls: vec!["turn:turn.example.com:3478?transport=udp".into()],
        turn_secret: Some("coturn secret".into()),
        turn_ttl: Duration::from_secs(600),
        ..Config::default()
    })
    .await;
    let (status, ice) = api(addr, "GET", "/api/ice", "", "").await;
    assert_eq!(status, 200, "{ice}");
    assert_eq!(ice["ttl"], 600);
    let servers = ice["iceServers"].as_array().unwrap();
    assert_eq!(servers.len(), 2, "{ice}");
    let stun_url = servers[0]["urls"][0].as_str().unwrap();
    assert!(stun_url.starts_with("stun:127.0.0.1:"), "{stun_url}");
    assert!(servers[0].get("username").is_none());
    assert_eq!(
        servers[1]["urls"][0],
        "turn:turn.example.com:3478?transport=udp"
    );
    // coturn's REST scheme: `<expiry>:<user>` and the HMAC-SHA1 of it.
    let username = servers[1]["username"].as_str().unwrap();
    let expiry: u64 = username.split(':').next().unwrap().parse().unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!((now + 595..=now + 601).contains(&expiry), "{username}");
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(expiry - 600);
    let expected = turn_credentials(b"coturn secret", "", Duration::from_secs(600), at);
    assert_eq!(
        (username, servers[1]["credential"].as_str().unwrap()),
        (expected.0.as_str(), expected.1.as_str())
    );

    // The STUN port answers a Binding request with the address it came from.
    let stun_port: u16 = stun_url.rsplit(':').next().unwrap().parse().unwrap();
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut request = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    request.extend_from_slice(&[9; 12]);
    socket
        .send_to(&request, ("127.0.0.1", stun_port))
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let (len, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("a STUN answer")
        .unwrap();
    let reply = &buf[..len];
    assert_eq!(&reply[..2], &[0x01, 0x01], "Binding success");
    assert_eq!(&reply[8..20], &[9; 12], "same transaction");
    // XOR-MAPPED-ADDRESS (0x0020), IPv4: port and address XOR the magic cookie.
    let at = reply[20..]
        .windows(2)
        .position(|w| w == [0x00, 0x20])
        .unwrap()
        + 20;
    let port = u16::from_be_bytes([reply[at + 6], reply[at + 7]]) ^ 0x2112;
    let ip: Vec<u8> = reply[at + 8..at + 12]
        .iter()
        .zip([0x21, 0x12, 0xa4, 0x42])
        .map(|(b, k)| b ^ k)
        .collect();
    assert_eq!(ip, [127, 0, 0, 1]);
    assert_eq!(port, socket.local_addr().unwrap().port());
    // Anything else gets no answer.
    socket
        .send_to(b"hello", ("127.0.0.1", stun_port))
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
            .await
            .is_err()
    );
    assert_eq!(
        metric(addr, "gamenet_signaling_stun_requests_total").await,
        1.0
    );
}

#[tokio::test]
async fn tokens_and_origins_are_checked_when_configured() {
    let secret = "s3cret";
    let (addr, _stop, _task) = start(Config {
        auth_secret: Some(secret.into()),
        allowed_origins: vec!["https://game.example.com".into()],
        ..Config::default()
    })
    .await;
    let token = issue_token(
        secret.as_bytes(),
        "p1",
        Duration::from_secs(60),
        SystemTime::now(),
    )
    .unwrap();
    let expired = issue_token(
        secret.as_bytes(),
        "p1",
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(120),
    )
    .unwrap();
    let local = [127, 0, 0, 1];
    // No token, a forged one, an expired one: refused with the reason.
    let (status, body) = refusal(try_connect_from(local, addr, "room", &[]).await);
    assert_eq!(status, 401);
    assert!(body.contains("token is required"), "{body}");
    let forged = issue_token(b"guess", "p1", Duration::from_secs(60), SystemTime::now()).unwrap();
    let (status, body) =
        refusal(try_connect_from(local, addr, &format!("room?token={forged}"), &[]).await);
    assert_eq!(status, 401);
    assert!(body.contains("signature"), "{body}");
    let (status, body) =
        refusal(try_connect_from(local, addr, &format!("room?token={expired}"), &[]).await);
    assert_eq!(status, 401);
    assert!(body.contains("expired"), "{body}");
    // A valid token as a query parameter or a bearer header.
    let (mut a, _) = connect_from(local, addr, &format!("room?token={token}")).await;
    let bearer = format!("Bearer {token}");
    let mut b = try_connect_from(local, addr, "room", &[("authorization", &bearer)])
        .await
        .unwrap();
    let JsonPeerEvent::IdAssigned(b_id) = next_event(&mut b).await else {
        panic!("no id");
    };
    assert_eq!(next_event(&mut a).await, JsonPeerEvent::NewPeer(b_id));
    // A page of another origin is refused even with a token; the allowed one passes.
    let path = format!("room?token={token}");
    let (status, body) = refusal(
        try_connect_from(
            local,
            addr,
            &path,
            &[("origin", "https://evil.example.com")],
        )
        .await,
    );
    assert_eq!(status, 403);
    assert!(body.contains("not allowed"), "{body}");
    try_connect_from(
        local,
        addr,
        &path,
        &[("origin", "https://game.example.com")],
    )
    .await
    .unwrap();
    // The API needs the token too.
    let (status, body) = api(addr, "GET", "/api/lobbies", "", "").await;
    assert_eq!(status, 401, "{body}");
    let header = format!("Authorization: Bearer {token}\r\n");
    let (status, _) = api(addr, "GET", "/api/lobbies", &header, "").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(addr, "gamenet_signaling_refused_total{reason=\"token\"}").await,
        4.0
    );
    assert_eq!(
        metric(addr, "gamenet_signaling_refused_total{reason=\"origin\"}").await,
        1.0
    );
}

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let (addr, stop, task) = start(Config::default()).await;
    assert_eq!(
        http(addr, "GET", "/health", "", "").await,
        (200, "ok".into())
    );
    assert_eq!(
        http(addr, "GET", "/ready", "", "").await,
        (200, "ready".into())
    );
    let (_a, _) = connect(addr, "m").await;
    let (_b, _) = connect(addr, "m").await;
    let (status, text) = http(addr, "GET", "/metrics", "", "").await;
    assert_eq!(status, 200);
    for line in [
        "gamenet_signaling_clients 2",
        "gamenet_signaling_connections_total 2",
        "gamenet_signaling_rooms 1",
        "gamenet_signaling_joins_total{kind=\"open\"} 2",
        "# TYPE gamenet_signaling_matchmaking_seconds histogram",
        "# EOF",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing {line:?} in\n{text}"
        );
    }
    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .unwrap()
        .unwrap();
}
