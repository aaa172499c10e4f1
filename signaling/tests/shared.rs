//! The shared state's room logic, run against both implementations: in memory
//! and on a real `redis-server` (started per test on a loopback port, in a
//! temporary directory). Then what only Redis has: several instances on one
//! Redis, and Redis going away.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use common::redis_server::RedisServer;
use gamenet_signaling::limits::RetryAfter;
use gamenet_signaling::rooms::{JoinCode, LobbySpec, RoomError, RoomKey, RoomLimits, RoomRequest};
use gamenet_signaling::shared::{
    Bucket, Counts, Held, HeldLobby, HeldPeer, MemoryState, Millis, RedisState, RedisStateConfig,
    SeatLimits, Seating, Shared, SharedError, SharedState, now_millis,
};
use matchbox_protocol::PeerId;

fn limits() -> RoomLimits {
    RoomLimits {
        max_room_size: 4,
        max_lobbies: 3,
        lobby_ttl: Duration::from_secs(10),
        max_lobbies_per_owner: 2,
    }
}

fn peer(n: u128) -> PeerId {
    PeerId(uuid::Uuid::from_u128(n))
}

fn open(path: &str) -> RoomRequest {
    RoomRequest::parse(Some(path), None, None, 4).unwrap()
}

fn quick(path: &str, n: usize, mode: Option<&str>) -> RoomRequest {
    RoomRequest::parse(Some(path), Some(&n.to_string()), mode, 4).unwrap()
}

fn spec(name: &str, public: bool, max_players: usize, mode: &str) -> LobbySpec {
    LobbySpec {
        name: name.into(),
        public,
        max_players,
        mode: mode.into(),
    }
}

fn code(text: &str) -> JoinCode {
    text.parse().unwrap()
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn sorted(mut peers: Vec<PeerId>) -> Vec<PeerId> {
    peers.sort();
    peers
}

/// Connects to `redis` as an instance would.
async fn redis_state(redis: &RedisServer, limits: RoomLimits) -> RedisState {
    RedisState::connect(RedisStateConfig::new(redis.url(), limits))
        .await
        .unwrap()
}

/// Runs `scenario` on a fresh in-memory state and on a fresh Redis state,
/// naming the implementation in any failure.
async fn on_both<F, Fut>(limits: RoomLimits, scenario: F)
where
    F: Fn(Arc<Shared>, Millis) -> Fut,
    Fut: Future<Output = ()>,
{
    let redis = RedisServer::start();
    let states = [
        ("memory", Shared::Memory(MemoryState::new(limits))),
        ("redis", Shared::Redis(redis_state(&redis, limits).await)),
    ];
    for (name, state) in states {
        eprintln!("-- {name}");
        scenario(Arc::new(state), now_millis()).await;
    }
}

#[tokio::test]
async fn open_rooms_are_shared_by_path() {
    on_both(limits(), |s, t| async move {
        let joined = s.join(peer(1), "i1", &open("a"), t).await.unwrap();
        assert!(joined.others.is_empty());
        assert_eq!(joined.room, RoomKey::Open("a".into()));
        let joined = s.join(peer(2), "i1", &open("a"), t).await.unwrap();
        assert_eq!(joined.others, [peer(1)]);
        s.join(peer(3), "i1", &open("b"), t).await.unwrap();
        assert!(s.can_signal(peer(1), peer(2)).await.unwrap());
        assert!(s.can_signal(peer(2), peer(1)).await.unwrap());
        assert!(!s.can_signal(peer(1), peer(3)).await.unwrap());
        assert!(!s.can_signal(peer(1), peer(1)).await.unwrap());
        assert!(!s.can_signal(peer(1), peer(9)).await.unwrap());
        assert_eq!(s.room_mates(peer(1)).await.unwrap(), [peer(2)]);
        assert_eq!(
            s.room_of(peer(3)).await.unwrap(),
            Some(RoomKey::Open("b".into()))
        );
        let counts = s.counts().await.unwrap();
        assert_eq!(
            counts,
            Counts {
                peers: 3,
                rooms: 2,
                lobbies: 0
            }
        );
        assert_eq!(
            s.join(peer(1), "i1", &open("b"), t).await,
            Err(SharedError::Refused(RoomError::AlreadyJoined))
        );
        assert_eq!(s.leave(peer(1), None, t).await.unwrap(), [peer(2)]);
        assert!(!s.can_signal(peer(2), peer(1)).await.unwrap());
        assert_eq!(s.room_of(peer(1)).await.unwrap(), None);
        assert!(s.leave(peer(1), None, t).await.unwrap().is_empty());
        assert!(s.leave(peer(3), None, t).await.unwrap().is_empty());
        assert_eq!(s.counts().await.unwrap().rooms, 1);
        assert_eq!(s.counts().await.unwrap().peers, 1);
        // The room size limit.
        for n in 10..13 {
            s.join(peer(n), "i1", &open("a"), t).await.unwrap();
        }
        assert_eq!(
            s.join(peer(13), "i1", &open("a"), t).await,
            Err(SharedError::Refused(RoomError::RoomFull(4)))
        );
    })
    .await;
}

#[tokio::test]
async fn quick_match_forms_closed_groups_by_path_mode_and_size() {
    on_both(limits(), |s, t| async move {
        let first = s
            .join(peer(1), "i1", &quick("q", 2, None), t)
            .await
            .unwrap();
        assert!(first.others.is_empty() && first.matched.is_empty());
        // Another mode, another size, another path: not matched with it.
        for (n, request) in [
            (2, quick("q", 2, Some("ranked"))),
            (3, quick("q", 3, None)),
            (4, quick("r", 2, None)),
        ] {
            let joined = s.join(peer(n), "i1", &request, t).await.unwrap();
            assert!(joined.others.is_empty(), "{request:?}");
        }
        let second = s
            .join(peer(5), "i1", &quick("q", 2, None), t + 300)
            .await
            .unwrap();
        assert_eq!(second.others, [peer(1)]);
        assert_eq!(
            second.matched,
            [Duration::from_millis(300), Duration::ZERO],
            "how long each member waited"
        );
        let RoomKey::Quick { group, .. } = second.room else {
            panic!("not a quick-match room: {:?}", second.room);
        };
        assert!(s.can_signal(peer(1), peer(5)).await.unwrap());
        // The group is closed: one leaving does not let a newcomer in.
        assert_eq!(s.leave(peer(1), None, t).await.unwrap(), [peer(5)]);
        let third = s
            .join(peer(6), "i1", &quick("q", 2, None), t)
            .await
            .unwrap();
        assert!(third.others.is_empty());
        let RoomKey::Quick { group: next, .. } = third.room else {
            panic!("not a quick-match room");
        };
        assert_ne!(group, next);
        // A filling group its only member left starts over.
        assert!(s.leave(peer(6), None, t).await.unwrap().is_empty());
        let fourth = s
            .join(peer(7), "i1", &quick("q", 2, None), t)
            .await
            .unwrap();
        assert!(fourth.others.is_empty());
        let fifth = s
            .join(peer(8), "i1", &quick("q", 2, None), t)
            .await
            .unwrap();
        assert_eq!(fifth.others, [peer(7)]);
        // Three of size 3 complete a group of three.
        s.join(peer(9), "i1", &quick("q", 3, None), t)
            .await
            .unwrap();
        let last = s
            .join(peer(10), "i1", &quick("q", 3, None), t + 1000)
            .await
            .unwrap();
        assert_eq!(sorted(last.others), [peer(3), peer(9)]);
        assert_eq!(last.matched.len(), 3);
        assert!(last.matched.contains(&Duration::from_millis(1000)));
    })
    .await;
}

#[tokio::test]
async fn lobbies_are_created_listed_joined_and_expired() {
    on_both(limits(), |s, t| async move {
        let owner = ip("192.0.2.1");
        let a = s
            .create_lobby(
                Some(owner),
                spec("friday", true, 2, ""),
                &[code("AAAAAA")],
                t,
            )
            .await
            .unwrap();
        assert_eq!(a.code, code("AAAAAA"));
        assert_eq!((a.players, a.max_players, a.public), (0, 2, true));
        let c = s
            .create_lobby(
                Some(owner),
                spec("ranked", true, 4, "duel"),
                &[code("CCCCCC")],
                t + 2,
            )
            .await
            .unwrap();
        assert_eq!(s.lobbies_of(owner).await.unwrap(), 2);
        // The limit per owner, while the table has room.
        assert_eq!(
            s.create_lobby(
                Some(owner),
                spec("x", true, 2, ""),
                &[code("DDDDDD")],
                t + 3
            )
            .await,
            Err(SharedError::Refused(RoomError::TooManyLobbiesFrom(2)))
        );
        // A taken code is skipped for the next candidate.
        let b = s
            .create_lobby(
                None,
                spec("secret", false, 3, "duel"),
                &[code("AAAAAA"), code("BBBBBB")],
                t + 1,
            )
            .await
            .unwrap();
        assert_eq!(b.code, code("BBBBBB"));
        // Newest first; private ones only by code; by mode.
        let listed: Vec<JoinCode> = s
            .public_lobbies(None, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|l| l.code)
            .collect();
        assert_eq!(listed, [c.code, a.code]);
        let duel = s.public_lobbies(Some("duel"), 10).await.unwrap();
        assert_eq!(duel.len(), 1);
        assert_eq!(duel[0].name, "ranked");
        assert_eq!(s.public_lobbies(None, 1).await.unwrap().len(), 1);
        assert!(s.public_lobbies(None, 0).await.unwrap().is_empty());
        let secret = s.lobby(b.code).await.unwrap().unwrap();
        assert_eq!(
            (secret.name.as_str(), secret.mode.as_str()),
            ("secret", "duel")
        );
        assert!(!secret.public);
        assert_eq!(s.lobby(code("ZZZZZZ")).await.unwrap(), None);
        // The table's limit.
        assert_eq!(
            s.create_lobby(None, spec("x", true, 2, ""), &[code("DDDDDD")], t + 3)
                .await,
            Err(SharedError::Refused(RoomError::TooManyLobbies(3)))
        );
        // Bad settings are refused before anything is stored.
        assert!(matches!(
            s.create_lobby(None, spec("x", true, 5, ""), &[code("EEEEEE")], t)
                .await,
            Err(SharedError::Refused(RoomError::InvalidLobby(_)))
        ));
        assert!(matches!(
            s.create_lobby(None, spec("a\u{202E}b", true, 2, ""), &[code("EEEEEE")], t)
                .await,
            Err(SharedError::Refused(RoomError::InvalidLobby(_)))
        ));
        // Joining: players counted, the player limit held, unknown codes refused.
        let lobby = RoomRequest::Lobby(a.code);
        s.join(peer(1), "i1", &lobby, t + 5).await.unwrap();
        let joined = s.join(peer(2), "i1", &lobby, t + 5).await.unwrap();
        assert_eq!(joined.others, [peer(1)]);
        assert_eq!(joined.room, RoomKey::Lobby(a.code));
        assert_eq!(s.lobby(a.code).await.unwrap().unwrap().players, 2);
        assert_eq!(
            s.join(peer(3), "i1", &lobby, t + 5).await,
            Err(SharedError::Refused(RoomError::RoomFull(2)))
        );
        let unknown = RoomRequest::Lobby(code("ZZZZZZ"));
        assert_eq!(
            s.join(peer(3), "i1", &unknown, t).await,
            Err(SharedError::Refused(RoomError::UnknownLobby(code(
                "ZZZZZZ"
            ))))
        );
        // Expiry: empty lobbies after the time-to-live; an occupied one stays,
        // and its time starts when its last player leaves.
        let ttl = 10_000;
        assert_eq!(s.expire_lobbies(t + ttl - 1).await.unwrap(), 0);
        assert_eq!(s.expire_lobbies(t + ttl + 2).await.unwrap(), 2);
        assert!(s.lobby(b.code).await.unwrap().is_none());
        assert!(s.lobby(a.code).await.unwrap().is_some());
        assert_eq!(s.lobbies_of(owner).await.unwrap(), 1);
        s.leave(peer(1), None, t + 20_000).await.unwrap();
        s.leave(peer(2), None, t + 20_000).await.unwrap();
        assert_eq!(s.expire_lobbies(t + 29_999).await.unwrap(), 0);
        assert_eq!(s.expire_lobbies(t + 30_000).await.unwrap(), 1);
        assert_eq!(s.counts().await.unwrap(), Counts::default());
        assert_eq!(s.lobbies_of(owner).await.unwrap(), 0);
        assert!(s.public_lobbies(None, 10).await.unwrap().is_empty());
        // A full table makes room by expiring first.
        for (n, text) in ["FFFFFF", "GGGGGG", "HHHHHH"].into_iter().enumerate() {
            s.create_lobby(
                None,
                spec("x", true, 2, ""),
                &[code(text)],
                t + 40_000 + n as u64,
            )
            .await
            .unwrap();
        }
        let made = s
            .create_lobby(None, spec("y", true, 2, ""), &[code("JJJJJJ")], t + 50_001)
            .await
            .unwrap();
        assert_eq!(made.code, code("JJJJJJ"));
        // F and G were empty for the time-to-live, H not yet.
        assert_eq!(s.counts().await.unwrap().lobbies, 2);
        assert!(s.lobby(code("HHHHHH")).await.unwrap().is_some());
    })
    .await;
}

#[tokio::test]
async fn rate_buckets_refill_and_key_ipv6_by_prefix() {
    on_both(limits(), |s, t| async move {
        let bucket = Bucket {
            name: "connect",
            rate: 2.0,
            burst: 3,
        };
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(s.take_token(bucket, a, false, t).await.unwrap(), Ok(()));
        }
        let Err(RetryAfter(wait)) = s.take_token(bucket, a, false, t).await.unwrap() else {
            panic!("a fourth token at once");
        };
        assert!(
            (Duration::from_millis(490)..=Duration::from_millis(510)).contains(&wait),
            "{wait:?}"
        );
        // Other addresses and other limits have their own buckets.
        assert!(
            s.take_token(bucket, ip("192.0.2.2"), false, t)
                .await
                .unwrap()
                .is_ok()
        );
        let other = Bucket {
            name: "ice",
            ..bucket
        };
        assert!(s.take_token(other, a, false, t).await.unwrap().is_ok());
        // Half a second refills one.
        assert!(
            s.take_token(bucket, a, true, t + 500)
                .await
                .unwrap()
                .is_ok()
        );
        assert!(
            s.take_token(bucket, a, false, t + 500)
                .await
                .unwrap()
                .is_ok()
        );
        assert!(
            s.take_token(bucket, a, true, t + 500)
                .await
                .unwrap()
                .is_err()
        );
        // One IPv6 /64 is one address.
        let v6 = ip("2001:db8::1");
        for _ in 0..3 {
            assert!(s.take_token(bucket, v6, false, t).await.unwrap().is_ok());
        }
        assert!(
            s.take_token(bucket, ip("2001:db8::ffff:1"), false, t)
                .await
                .unwrap()
                .is_err()
        );
        assert!(
            s.take_token(bucket, ip("2001:db8:0:1::1"), false, t)
                .await
                .unwrap()
                .is_ok()
        );
        // A rate of 0 is no limit.
        let off = Bucket {
            name: "off",
            rate: 0.0,
            burst: 1,
        };
        for _ in 0..10 {
            assert!(s.take_token(off, a, false, t).await.unwrap().is_ok());
        }
    })
    .await;
}

#[tokio::test]
async fn seats_are_counted_against_the_maximum_and_per_address() {
    on_both(limits(), |s, _| async move {
        let (a, b) = (ip("192.0.2.1"), ip("2001:db8::1"));
        let limits = SeatLimits {
            max: 3,
            per_address: 2,
        };
        assert_eq!(s.take_seat("i1", a, limits).await.unwrap(), Seating::Taken);
        assert_eq!(s.take_seat("i2", a, limits).await.unwrap(), Seating::Taken);
        // The address has two, on whichever instances.
        assert_eq!(
            s.take_seat("i1", a, limits).await.unwrap(),
            Seating::AddressFull
        );
        // One /64 is one address.
        assert_eq!(s.take_seat("i1", b, limits).await.unwrap(), Seating::Taken);
        assert_eq!(
            s.take_seat("i2", ip("2001:db8::2"), limits).await.unwrap(),
            Seating::Full
        );
        assert_eq!(s.seats().await.unwrap(), 3);
        s.give_seat("i2", a).await.unwrap();
        let six = |n: u16| IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, n]);
        assert_eq!(
            s.take_seat("i1", six(3), limits).await.unwrap(),
            Seating::Taken
        );
        s.give_seat("i1", a).await.unwrap();
        // The /64 has two, wherever they are and whatever their last bits.
        assert_eq!(
            s.take_seat("i2", six(4), limits).await.unwrap(),
            Seating::AddressFull
        );
        assert_eq!(s.take_seat("i1", a, limits).await.unwrap(), Seating::Taken);
        assert_eq!(s.seats().await.unwrap(), 3);
        let open = SeatLimits {
            max: 10,
            per_address: 0,
        };
        assert_eq!(s.take_seat("i1", a, open).await.unwrap(), Seating::Taken);
    })
    .await;
}

/// Many peers of two instances asking for quick-match at once: every room has
/// exactly its size, and no peer is in two.
#[tokio::test]
async fn instances_on_one_redis_never_put_a_peer_in_two_rooms() {
    let redis = RedisServer::start();
    let limits = RoomLimits {
        max_room_size: 16,
        ..limits()
    };
    let instances = [
        Arc::new(redis_state(&redis, limits).await),
        Arc::new(redis_state(&redis, limits).await),
    ];
    let t = now_millis();
    let mut joins = Vec::new();
    for n in 0..300u128 {
        let state = instances[(n % 2) as usize].clone();
        let request = RoomRequest::parse(Some("arena"), Some("3"), None, 16).unwrap();
        joins.push(tokio::spawn(async move {
            let instance = if n % 2 == 0 { "i1" } else { "i2" };
            let joined = state.join(peer(n), instance, &request, t).await.unwrap();
            (peer(n), joined.room)
        }));
    }
    let mut rooms: HashMap<RoomKey, Vec<PeerId>> = HashMap::new();
    for join in joins {
        let (peer, room) = join.await.unwrap();
        rooms.entry(room).or_default().push(peer);
    }
    assert_eq!(rooms.len(), 100, "300 peers in groups of 3");
    let mut seen = HashSet::new();
    for (room, members) in &rooms {
        assert_eq!(members.len(), 3, "{room:?}");
        for member in members {
            assert!(seen.insert(*member), "{member:?} in two rooms");
            // Both instances see the same room.
            for state in &instances {
                assert_eq!(state.room_of(*member).await.unwrap().as_ref(), Some(room));
            }
        }
    }
    // Signals are allowed within a room only, from either instance.
    let mut groups = rooms.values();
    let (one, two) = (groups.next().unwrap(), groups.next().unwrap());
    assert!(instances[1].can_signal(one[0], one[1]).await.unwrap());
    assert!(!instances[0].can_signal(one[0], two[0]).await.unwrap());
    assert_eq!(
        instances[1].counts().await.unwrap(),
        Counts {
            peers: 300,
            rooms: 100,
            lobbies: 0
        }
    );
}

/// A lobby made through one instance is listed, looked up and joined through
/// another; limits per address and seats hold across them.
#[tokio::test]
async fn lobbies_limits_and_seats_hold_across_instances() {
    let redis = RedisServer::start();
    let (one, two) = (
        redis_state(&redis, limits()).await,
        redis_state(&redis, limits()).await,
    );
    let t = now_millis();
    let owner = ip("198.51.100.7");
    let made = one
        .create_lobby(
            Some(owner),
            spec("shared", true, 2, ""),
            &[code("KKKKKK")],
            t,
        )
        .await
        .unwrap();
    assert_eq!(
        two.public_lobbies(None, 10).await.unwrap(),
        std::slice::from_ref(&made)
    );
    two.join(peer(1), "i2", &RoomRequest::Lobby(made.code), t)
        .await
        .unwrap();
    let joined = one
        .join(peer(2), "i1", &RoomRequest::Lobby(made.code), t)
        .await
        .unwrap();
    assert_eq!(joined.others, [peer(1)]);
    assert_eq!(
        two.join(peer(3), "i2", &RoomRequest::Lobby(made.code), t)
            .await,
        Err(SharedError::Refused(RoomError::RoomFull(2)))
    );
    two.create_lobby(Some(owner), spec("b", true, 2, ""), &[code("MMMMMM")], t)
        .await
        .unwrap();
    assert_eq!(
        one.create_lobby(Some(owner), spec("c", true, 2, ""), &[code("NNNNNN")], t)
            .await,
        Err(SharedError::Refused(RoomError::TooManyLobbiesFrom(2)))
    );
    let bucket = Bucket {
        name: "connect",
        rate: 1.0,
        burst: 2,
    };
    assert!(
        one.take_token(bucket, owner, false, t)
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        two.take_token(bucket, owner, false, t)
            .await
            .unwrap()
            .is_ok()
    );
    assert!(
        one.take_token(bucket, owner, false, t)
            .await
            .unwrap()
            .is_err()
    );
    assert!(
        two.take_token(bucket, owner, false, t)
            .await
            .unwrap()
            .is_err()
    );
    let seats = SeatLimits {
        max: 2,
        per_address: 0,
    };
    assert_eq!(
        one.take_seat("i1", owner, seats).await.unwrap(),
        Seating::Taken
    );
    assert_eq!(
        two.take_seat("i2", owner, seats).await.unwrap(),
        Seating::Taken
    );
    assert_eq!(
        two.take_seat("i2", owner, seats).await.unwrap(),
        Seating::Full
    );
    assert_eq!(
        one.take_seat("i1", owner, seats).await.unwrap(),
        Seating::Full
    );
}

/// Redis out of reach is an error saying so, within the timeout, never a hang;
/// once it is back the same state works again.
#[tokio::test]
async fn redis_going_away_is_an_error_and_its_return_is_picked_up() {
    let mut redis = RedisServer::start();
    let port = redis.addr.port();
    let mut config = RedisStateConfig::new(redis.url(), limits());
    config.timeout = Duration::from_millis(500);
    let state = RedisState::connect(config.clone()).await.unwrap();
    let t = now_millis();
    state.join(peer(1), "i1", &open("a"), t).await.unwrap();
    redis.kill();
    let started = std::time::Instant::now();
    let failed = state.join(peer(2), "i1", &open("a"), t).await;
    assert!(
        matches!(failed, Err(SharedError::Unavailable(_))),
        "{failed:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(
        RedisState::connect(config).await,
        Err(SharedError::Unavailable(_))
    ));
    // Back, empty (no persistence): the connection is made again by itself,
    // and the instance's next sync finds the data lost.
    let _redis = RedisServer::start_on(port);
    let synced = until_served(|| state.sync("i1", Duration::from_secs(5), WINDOW, &[], &[])).await;
    assert!(synced.lost, "Redis came back empty");
    let held = Held {
        peers: vec![HeldPeer {
            peer: peer(1),
            room: RoomKey::Open("a".into()),
            waiting_since: None,
        }],
        ..Held::default()
    };
    assert_eq!(state.restore("i1", &held, t).await.unwrap(), (1, 0));
    let a = open("a");
    let joined = until_served(|| state.join(peer(2), "i1", &a, t)).await;
    assert_eq!(joined.others, vec![peer(1)], "written back");
}

/// How long joins wait after Redis lost its data, in these tests.
const WINDOW: Duration = Duration::from_millis(300);

/// Runs `call` until the shared state serves it (for up to 10 s).
async fn until_served<T, F, Fut>(mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SharedError>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(SharedError::Unavailable(e)) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "still unavailable: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Redis restarted empty under two instances: the first to notice opens the
/// restore window (joins, resumes and lookups wait), both write back what
/// they hold, and then rooms, waiting quick-match groups and lobbies are whole
/// again: new peers join them, new groups take new numbers.
#[tokio::test]
async fn what_instances_hold_is_written_back_after_redis_lost_its_data() {
    let mut redis = RedisServer::start();
    let port = redis.addr.port();
    let (one, two) = (
        redis_state(&redis, limits()).await,
        redis_state(&redis, limits()).await,
    );
    let t = now_millis();
    let ttl = Duration::from_secs(5);
    let owner = ip("198.51.100.7");
    // One: peer 1 in an open room, peer 2 waiting for a group of 3, an empty
    // lobby it made. Two: peer 3 waiting in the same group, peer 4 in a
    // lobby one made.
    one.join(peer(1), "i1", &open("a"), t).await.unwrap();
    let group = one
        .join(peer(2), "i1", &quick("q", 3, None), t)
        .await
        .unwrap();
    two.join(peer(3), "i2", &quick("q", 3, None), t + 5)
        .await
        .unwrap();
    let empty = one
        .create_lobby(
            Some(owner),
            spec("empty", true, 2, "duel"),
            &[code("EEEEEE")],
            t,
        )
        .await
        .unwrap();
    let busy = one
        .create_lobby(
            Some(owner),
            spec("busy", false, 3, ""),
            &[code("BBBBBB")],
            t + 1,
        )
        .await
        .unwrap();
    two.join(peer(4), "i2", &RoomRequest::Lobby(busy.code), t)
        .await
        .unwrap();
    let lobby = |info: &gamenet_signaling::rooms::LobbyInfo, created| HeldLobby {
        code: info.code,
        spec: spec(&info.name, info.public, info.max_players, &info.mode),
        owner: Some(owner),
        created,
    };
    let held_one = Held {
        peers: vec![
            HeldPeer {
                peer: peer(1),
                room: RoomKey::Open("a".into()),
                waiting_since: None,
            },
            HeldPeer {
                peer: peer(2),
                room: group.room.clone(),
                waiting_since: Some(t),
            },
        ],
        lobbies: vec![lobby(&empty, t), lobby(&busy, t + 1)],
        seats: 2,
        addresses: vec![(owner, 2)],
    };
    let held_two = Held {
        peers: vec![
            HeldPeer {
                peer: peer(3),
                room: group.room.clone(),
                waiting_since: Some(t + 5),
            },
            HeldPeer {
                peer: peer(4),
                room: RoomKey::Lobby(busy.code),
                waiting_since: None,
            },
        ],
        lobbies: vec![HeldLobby {
            owner: None,
            ..lobby(&busy, t)
        }],
        seats: 2,
        addresses: vec![(owner, 2)],
    };
    // Nothing lost yet: the group is still filling, both lobbies are there.
    let synced = one
        .sync(
            "i1",
            ttl,
            WINDOW,
            std::slice::from_ref(&group.room),
            &[empty.code],
        )
        .await
        .unwrap();
    assert_eq!(synced, Default::default());

    redis.kill();
    let _redis = RedisServer::start_on(port);
    // Before any instance noticed, joins wait too.
    let refused = until_served(|| async {
        match one.join(peer(9), "i1", &open("a"), t).await {
            Err(SharedError::Unavailable(e)) if e.contains("refilled") => Ok(e),
            other => Err(SharedError::Unavailable(format!("{other:?}"))),
        }
    })
    .await;
    assert!(refused.contains("retry"), "{refused}");
    let synced = one
        .sync(
            "i1",
            ttl,
            WINDOW,
            std::slice::from_ref(&group.room),
            &[empty.code],
        )
        .await
        .unwrap();
    assert!(synced.lost);
    assert!(matches!(
        two.lobby(busy.code).await,
        Err(SharedError::Unavailable(_))
    ));
    assert_eq!(one.restore("i1", &held_one, t).await.unwrap(), (2, 2));
    assert!(two.sync("i2", ttl, WINDOW, &[], &[]).await.unwrap().lost);
    // The lobby one wrote back already is left as it is.
    assert_eq!(two.restore("i2", &held_two, t).await.unwrap(), (2, 0));
    // Written twice, counted once.
    assert_eq!(one.restore("i1", &held_one, t).await.unwrap(), (0, 0));
    assert!(!one.sync("i1", ttl, WINDOW, &[], &[]).await.unwrap().lost);

    // The open room, the waiting group and the lobbies are whole again.
    let a = open("a");
    let joined = until_served(|| two.join(peer(5), "i2", &a, t + 10)).await;
    assert_eq!(joined.others, vec![peer(1)]);
    let completed = one
        .join(peer(6), "i1", &quick("q", 3, None), t + 10)
        .await
        .unwrap();
    assert_eq!(completed.room, group.room);
    assert_eq!(sorted(completed.others), sorted(vec![peer(2), peer(3)]));
    assert_eq!(completed.matched.len(), 3, "{:?}", completed.matched);
    assert!(completed.matched.contains(&Duration::from_millis(10)));
    // A new group of the same queue takes a new number.
    let next = two
        .join(peer(7), "i2", &quick("q", 3, None), t + 20)
        .await
        .unwrap();
    assert!(next.others.is_empty());
    assert_ne!(next.room, group.room);
    let synced = one
        .sync(
            "i1",
            ttl,
            WINDOW,
            std::slice::from_ref(&group.room),
            &[empty.code],
        )
        .await
        .unwrap();
    assert_eq!(synced.complete, vec![group.room.clone()]);
    assert!(synced.gone.is_empty());
    let listed = two.public_lobbies(Some("duel"), 10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].code, empty.code);
    let busy_now = two.lobby(busy.code).await.unwrap().unwrap();
    assert_eq!((busy_now.players, busy_now.max_players), (1, 3));
    let joined = one
        .join(peer(8), "i1", &RoomRequest::Lobby(busy.code), t)
        .await
        .unwrap();
    assert_eq!(joined.others, vec![peer(4)]);
    assert_eq!(one.lobbies_of(owner).await.unwrap(), 2);
    assert_eq!(one.seats().await.unwrap(), 4);
    assert_eq!(
        two.counts().await.unwrap(),
        Counts {
            peers: 8,
            rooms: 4,
            lobbies: 2
        }
    );
    // A big instance writes back in batches; its own seat count is what it
    // says, replacing the one kept.
    let many = Held {
        peers: (0..1200u128)
            .map(|n| HeldPeer {
                peer: peer(10_000 + n),
                room: RoomKey::Open(format!("big{}", n % 300)),
                waiting_since: None,
            })
            .collect(),
        seats: 1,
        ..Held::default()
    };
    assert_eq!(two.restore("i2", &many, t).await.unwrap(), (1200, 0));
    assert_eq!(two.counts().await.unwrap().peers, 1208);
    assert_eq!(two.counts().await.unwrap().rooms, 304);
    assert_eq!(one.seats().await.unwrap(), 3);
}
