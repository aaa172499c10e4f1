//! Two native peers behind different NATs (one of them symmetric) cannot reach
//! each other directly, and do through coturn with credentials from our
//! signaling server; the mesh reports the link as relayed.

use std::time::Duration;

use gamenet_e2e::nat::{Coturn, INTERNET, NatLab};
use gamenet_e2e::{PORT, PeerProcess, isolated};

const APP: &str = "gamenet-nat-test";
const SECRET: &str = "nat-test-secret";

fn peer(lab: &NatLab, site: usize, url: &str, ice: &str) -> PeerProcess {
    let mut command = lab.on_site(site, &PeerProcess::executable());
    command.env("GAMENET_E2E_ICE", ice);
    PeerProcess::spawn_with(command, url, APP, "echo")
}

#[test]
fn peers_behind_nats_connect_only_through_turn() {
    isolated("peers_behind_nats_connect_only_through_turn", || async {
        let lab = NatLab::build();
        let coturn = Coturn::start(SECRET);
        let stun_port = 3479;
        gamenet_e2e::start_server_with(gamenet_signaling::Config {
            stun_listen: Some(format!("{INTERNET}:{stun_port}").parse().unwrap()),
            public_host: Some(INTERNET.into()),
            turn_urls: vec![format!("turn:{INTERNET}:3478?transport=udp")],
            turn_secret: Some(SECRET.into()),
            ..Default::default()
        })
        .await;
        let server = format!("ws://{INTERNET}:{PORT}");

        // STUN only: each peer learns its NAT's public address, but the
        // symmetric NAT maps every destination to a new port, so no pair of
        // candidates gets through both NATs.
        let stun = format!("stun:{INTERNET}:{stun_port}");
        let a = peer(&lab, 0, &format!("{server}/direct?next=2"), &stun);
        let b = peer(&lab, 1, &format!("{server}/direct?next=2"), &stun);
        let wait = Duration::from_secs(15);
        let (joined, a) = tokio::task::spawn_blocking(move || (a.try_wait_line("joined", wait), a))
            .await
            .unwrap();
        assert_eq!(
            joined, None,
            "the peers connected directly through both NATs"
        );
        let dropped = [lab.dropped(0), lab.dropped(1)];
        println!(
            "direct: no link within {wait:?}; the NATs dropped {dropped:?} unsolicited packets"
        );
        assert!(dropped.iter().sum::<u64>() > 0, "no NAT dropped anything");
        drop((a, b));

        // The ICE servers from our server: its STUN and coturn with REST
        // credentials. Now the peers meet through the relay.
        let ice = format!("http://{INTERNET}:{PORT}/api/ice");
        let a = peer(&lab, 0, &format!("{server}/relayed?next=2"), &ice);
        let b = peer(&lab, 1, &format!("{server}/relayed?next=2"), &ice);
        let lines = tokio::task::spawn_blocking(move || {
            let ice = a.wait_line("ice ", Duration::from_secs(10));
            let joined_a = a.wait_line("joined", Duration::from_secs(60));
            let joined_b = b.wait_line("joined", Duration::from_secs(60));
            let route_a = a.wait_line("route", Duration::from_secs(30));
            let route_b = b.wait_line("route", Duration::from_secs(30));
            (ice, joined_a, joined_b, route_a, route_b)
        })
        .await
        .unwrap();
        let (ice, joined_a, joined_b, route_a, route_b) = lines;
        println!("a got {ice}");
        println!("a: {joined_a}, {route_a}; b: {joined_b}, {route_b}");
        assert!(
            ice.contains("turn:10.99.0.1:3478") && ice.contains("credential"),
            "{ice}"
        );
        assert!(route_a.ends_with("Relayed"), "{route_a}");
        assert!(route_b.ends_with("Relayed"), "{route_b}");
        let log = coturn.log();
        let allocations = log.matches("ALLOCATE processed, success").count();
        println!("coturn: {allocations} allocations");
        assert!(
            allocations >= 2,
            "coturn did not allocate for both peers:\n{log}"
        );
    });
}

#[test]
fn expired_turn_credentials_replaced_while_running_link_the_peers() {
    isolated(
        "expired_turn_credentials_replaced_while_running_link_the_peers",
        || async {
            let lab = NatLab::build();
            let coturn = Coturn::start(SECRET);
            gamenet_e2e::start_server_with(gamenet_signaling::Config {
                stun_listen: None,
                turn_urls: vec![format!("turn:{INTERNET}:3478?transport=udp")],
                turn_secret: Some(SECRET.into()),
                ..Default::default()
            })
            .await;
            let url = format!("ws://{INTERNET}:{PORT}/refresh?next=2");
            let ice = format!("http://{INTERNET}:{PORT}/api/ice");
            // Both start with credentials coturn refuses, and fetch fresh ones
            // when the test says so (SIGUSR1): by then their first connection
            // attempt, with the stale ones, is under way (the room formed
            // when both had their ids); it cannot link, and fails after 12 s;
            // the retry uses the fresh ones.
            let stale_peer = |site| {
                let mut command = lab.on_site(site, &PeerProcess::executable());
                command
                    .env("GAMENET_E2E_ICE", &ice)
                    .env("GAMENET_E2E_ICE_STALE", "1")
                    .env("GAMENET_E2E_CONNECT_TIMEOUT", "12");
                PeerProcess::spawn_with(command, &url, APP, "echo")
            };
            let a = stale_peer(0);
            let b = stale_peer(1);
            let lines = tokio::task::spawn_blocking(move || {
                a.wait_line("id ", Duration::from_secs(20));
                b.wait_line("id ", Duration::from_secs(20));
                std::thread::sleep(Duration::from_secs(3));
                // Through the NATs only the relay links them: nothing links
                // with the stale credentials.
                let early = a.try_wait_line("joined", Duration::ZERO);
                a.signal("USR1");
                b.signal("USR1");
                let refreshed = std::time::Instant::now();
                let joined_a = a.wait_line("joined", Duration::from_secs(40));
                let linked_after = refreshed.elapsed();
                let joined_b = b.wait_line("joined", Duration::from_secs(10));
                let route_a = a.wait_line("route", Duration::from_secs(30));
                (early, joined_a, joined_b, route_a, linked_after)
            })
            .await
            .unwrap();
            let (early, joined_a, joined_b, route_a, linked_after) = lines;
            println!(
                "RESULT TURN refresh: fresh credentials handed in 3s after both had ids, \
                 linked {:.1}s later ({joined_a}, {joined_b}, {route_a})",
                linked_after.as_secs_f64()
            );
            assert_eq!(early, None, "linked with stale credentials");
            assert!(route_a.ends_with("Relayed"), "{route_a}");
            let log = coturn.log();
            let allocated = log.matches("ALLOCATE processed, success").count();
            println!("coturn: {allocated} allocations");
            assert!(
                allocated >= 2,
                "coturn did not allocate for both peers:\n{log}"
            );
        },
    );
}
