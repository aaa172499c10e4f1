//! Two Bevy apps with `GamenetPlugin` find each other and exchange a message over
//! real WebRTC, in an isolated network namespace.

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::message::Messages;
use bevy_gamenet::{GamenetPlugin, LinkConditions, MeshSocket, MessageReceived, PeerJoined};
use gamenet::{Channel, ConditionerConfig, IceServer, PeerId, PeerMesh};
use gamenet_e2e::{isolated, start_server};

fn app(url: &str) -> App {
    let builder = PeerMesh::builder(url)
        .app_id("bevy-e2e")
        .ice_server(IceServer::none());
    let mut app = App::new();
    app.add_plugins(GamenetPlugin::connect(builder));
    app
}

fn drain<M: bevy_ecs::message::Message>(app: &mut App) -> Vec<M> {
    app.world_mut()
        .resource_mut::<Messages<M>>()
        .drain()
        .collect()
}

#[test]
fn two_bevy_apps_join_and_exchange_a_message() {
    isolated("two_bevy_apps_join_and_exchange_a_message", || async {
        let url = format!("{}/bevy", start_server().await);
        let mut a = app(&url);
        let mut b = app(&url);
        let mut a_peer: Option<PeerId> = None;
        let mut b_joined = false;
        let mut got: Vec<MessageReceived> = Vec::new();
        for frame in 0..3000 {
            a.update();
            b.update();
            if let Some(PeerJoined(peer)) = drain::<PeerJoined>(&mut a).pop() {
                a_peer = Some(peer);
            }
            b_joined |= !drain::<PeerJoined>(&mut b).is_empty();
            if let (Some(peer), true, true) = (a_peer, b_joined, frame % 10 == 0) {
                a.world_mut()
                    .resource_mut::<MeshSocket>()
                    .send(peer, Channel::Reliable, b"from a bevy system")
                    .expect("send");
            }
            got.extend(drain::<MessageReceived>(&mut b));
            if !got.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(a_peer.is_some() && b_joined, "the apps never joined");
        let message = got.first().expect("b received nothing");
        assert_eq!(&message.payload[..], b"from a bevy system");
        assert_eq!(message.channel, Channel::Reliable);
    });
}

/// Runs both apps until `done` holds of a's smoothed RTT to b, for at most
/// `limit`; returns the RTT then.
async fn rtt_until(
    a: &mut App,
    b: &mut App,
    limit: Duration,
    done: impl Fn(Duration) -> bool,
) -> Option<Duration> {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        a.update();
        b.update();
        let socket = a.world().resource::<MeshSocket>();
        let rtt = socket
            .peers()
            .next()
            .and_then(|peer| socket.stats(peer))
            .and_then(|s| s.rtt);
        if let Some(rtt) = rtt.filter(|rtt| done(*rtt)) {
            return Some(rtt);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    None
}

#[test]
fn the_link_conditioner_is_a_resource_changed_while_the_apps_run() {
    isolated(
        "the_link_conditioner_is_a_resource_changed_while_the_apps_run",
        || async {
            let url = format!("{}/bevy-conditions?next=2", start_server().await);
            let mut a = app(&url);
            let mut b = app(&url);
            let limit = Duration::from_secs(20);
            let clean = rtt_until(&mut a, &mut b, limit, |rtt| rtt < Duration::from_millis(40))
                .await
                .expect("the apps never linked on a clean link");
            // 80 ms one way, each way: the RTT grows past 160 ms.
            let slow = ConditionerConfig {
                latency: Duration::from_millis(80),
                ..ConditionerConfig::default()
            };
            for app in [&mut a, &mut b] {
                app.world_mut().resource_mut::<LinkConditions>().0 = Some(slow.clone());
            }
            let conditioned = rtt_until(&mut a, &mut b, limit, |rtt| {
                rtt > Duration::from_millis(150)
            })
            .await
            .expect("the conditioner never slowed the link");
            let on = a.world().resource::<MeshSocket>().link_conditioner();
            assert_eq!(on, Some(slow));
            // Off again: the RTT falls back.
            for app in [&mut a, &mut b] {
                app.world_mut().resource_mut::<LinkConditions>().0 = None;
            }
            let cleared = rtt_until(&mut a, &mut b, limit, |rtt| rtt < Duration::from_millis(40))
                .await
                .expect("the link never came back");
            assert_eq!(a.world().resource::<MeshSocket>().link_conditioner(), None);
            println!(
                "RESULT smoothed RTT: clean {clean:?}, with 80 ms each way {conditioned:?}, off again {cleared:?}"
            );
        },
    );
}

/// A rollback app that chooses its game through the lobby API of `server`.
fn lobby_app(server: &str) -> App {
    use bevy_gamenet::prelude::*;
    let mut app = App::new();
    app.add_plugins((
        bevy_state::app::StatesPlugin,
        RollbackPlugin::<u8>::manual(RollbackConfig::default()),
        LobbyPlugin::new(server),
    ));
    app.finish();
    app.cleanup();
    app
}

/// The connection state of `app`.
fn connection(app: &App) -> bevy_gamenet::Connection {
    **app
        .world()
        .resource::<bevy_state::state::State<bevy_gamenet::Connection>>()
}

#[test]
fn a_bevy_game_is_created_as_a_lobby_and_joined_from_the_list() {
    use bevy_gamenet::Connection;
    use bevy_gamenet::lobby::{Lobbies, LobbyAnswer, LobbySpec};
    use bevy_gamenet::rollback::{ConnectRollback, RollbackSocket};
    use gamenet::rollback::RollbackStart;

    isolated(
        "a_bevy_game_is_created_as_a_lobby_and_joined_from_the_list",
        || async {
            let server = start_server().await;
            let mut a = lobby_app(&server);
            let mut b = lobby_app(&server);
            a.update();
            assert_eq!(connection(&a), Connection::InLobby);
            a.world().resource::<Lobbies>().create(LobbySpec {
                name: "bevy duel".into(),
                mode: "bevy-e2e".into(),
                ..LobbySpec::default()
            });
            let mut states = (vec![connection(&a)], vec![connection(&b)]);
            let mut code = None;
            let mut asked_list = false;
            let mut running_at = None;
            for frame in 0..4000 {
                a.update();
                b.update();
                for (app, seen) in [(&mut a, &mut states.0), (&mut b, &mut states.1)] {
                    let now = connection(app);
                    if seen.last() != Some(&now) {
                        seen.push(now);
                    }
                    for answer in drain::<LobbyAnswer>(app) {
                        match answer {
                            LobbyAnswer::Ready(ticket) => {
                                code.get_or_insert(ticket.lobby.code.clone());
                                let builder = ticket.builder().app_id("bevy-lobby-e2e");
                                let start = RollbackStart::Players(ticket.lobby.max_players);
                                app.world_mut().commands().queue(ConnectRollback::<u8>::new(
                                    builder,
                                    start,
                                    1 + frame,
                                ));
                            }
                            LobbyAnswer::Listed(list) => {
                                let ours = list.iter().find(|l| Some(&l.code) == code.as_ref());
                                match ours {
                                    Some(lobby) => {
                                        app.world().resource::<Lobbies>().join(&lobby.code)
                                    }
                                    // Not listed yet: b asks again.
                                    None => asked_list = false,
                                }
                            }
                            LobbyAnswer::Failed { request, error } => {
                                panic!("{request} failed: {error}")
                            }
                            LobbyAnswer::Found(_) => {}
                        }
                    }
                }
                // b looks in the list until a's lobby is there.
                let b_connected = b.world().contains_resource::<RollbackSocket<u8>>();
                if code.is_some() && !b_connected && !asked_list {
                    b.world().resource::<Lobbies>().list("bevy-e2e", 10);
                    asked_list = true;
                }
                let running = |app: &mut App| {
                    app.world_mut()
                        .get_resource_mut::<RollbackSocket<u8>>()
                        .and_then(|s| s.session().map(|s| s.is_running()))
                        .unwrap_or(false)
                };
                if running(&mut a) && running(&mut b) {
                    running_at = Some(frame);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            println!(
                "RESULT lobby {code:?}: a went {:?}, b went {:?}",
                states.0, states.1
            );
            assert!(running_at.is_some(), "the two games never started together");
            assert_eq!(
                states.0,
                [
                    Connection::InLobby,
                    Connection::Connecting,
                    Connection::Playing
                ]
            );
            assert_eq!(
                states.1,
                [
                    Connection::InLobby,
                    Connection::Connecting,
                    Connection::Playing
                ]
            );
        },
    );
}

/// A game made with the one plugin: rollback and replication on one
/// connection, the lobby by its code, the ICE servers from the server.
fn one_plugin_app(server: &str, room: bevy_gamenet::Room, ice_refresh: Duration) -> App {
    use bevy_gamenet::prelude::*;
    let mut app = App::new();
    app.add_plugins((
        bevy_state::app::StatesPlugin,
        GamenetPlugin::server(server)
            .room(room)
            .app_id("one-plugin-e2e")
            .rollback::<u8>(RollbackConfig::default())
            .replication(ReplicationConfig::default())
            .ice_refresh(ice_refresh),
    ))
    .replicate_transform::<Transform2d>();
    app.finish();
    app.cleanup();
    app
}

#[test]
fn one_plugin_joins_a_lobby_by_code_with_the_servers_ice_and_fetches_them_again() {
    use bevy_gamenet::DEFAULT_ICE_REFRESH;
    use bevy_gamenet::prelude::*;
    use bevy_gamenet::replication::ReplicationSocket;
    use gamenet::lobby::{LobbyClient, LobbySpec};
    use gamenet_e2e::start_server_with_stun;

    isolated(
        "one_plugin_joins_a_lobby_by_code_with_the_servers_ice_and_fetches_them_again",
        || async {
            let (server, stun) = start_server_with_stun().await;
            let lobby = LobbyClient::new(&server)
                .create(&LobbySpec {
                    name: "one plugin".into(),
                    max_players: 2,
                    ..LobbySpec::default()
                })
                .await
                .expect("create a lobby");
            // a fetches its ICE servers again every 400 ms (20 minutes by
            // default), well within the server's 5 requests a second.
            let quick = Duration::from_millis(400);
            let mut a = one_plugin_app(&server, Room::Lobby(lobby.code.clone()), quick);
            let mut b = one_plugin_app(
                &server,
                Room::Lobby(lobby.code.clone()),
                DEFAULT_ICE_REFRESH,
            );
            let mut lost =
                one_plugin_app(&server, Room::Lobby("ZZZZZZ".into()), DEFAULT_ICE_REFRESH);
            let mut states = (vec![connection(&a)], vec![connection(&b)]);
            let mut refreshed = Vec::new();
            let mut failed = Vec::new();
            let running = |app: &mut App| {
                app.world_mut()
                    .get_resource_mut::<RollbackSocket<u8>>()
                    .and_then(|s| s.session().map(|s| s.is_running()))
                    .unwrap_or(false)
            };
            for _ in 0..4000 {
                a.update();
                b.update();
                lost.update();
                for (app, seen) in [(&mut a, &mut states.0), (&mut b, &mut states.1)] {
                    let now = connection(app);
                    if seen.last() != Some(&now) {
                        seen.push(now);
                    }
                }
                refreshed.extend(drain::<IceRefreshed>(&mut a));
                failed.extend(drain::<ConnectionFailed>(&mut lost));
                if running(&mut a) && running(&mut b) && refreshed.len() >= 2 && !failed.is_empty()
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            println!(
                "RESULT one plugin, lobby {}: a went {:?}, b went {:?}; a fetched ICE again {} times; a bad code: {:?}",
                lobby.code,
                states.0,
                states.1,
                refreshed.len(),
                failed.first().map(|f| &f.error)
            );
            assert!(running(&mut a) && running(&mut b), "the game never started");
            let path = [
                Connection::InLobby,
                Connection::Connecting,
                Connection::Playing,
            ];
            assert_eq!(states.0, path);
            assert_eq!(states.1, path);
            // Rollback and replication on one connection.
            for app in [&a, &b] {
                assert!(app.world().contains_resource::<ReplicationSocket>());
            }
            assert!(
                refreshed.len() >= 2,
                "ICE servers fetched again {refreshed:?}"
            );
            for fresh in &refreshed {
                assert_eq!(fresh.servers.len(), 1, "{fresh:?}");
                assert_eq!(fresh.servers[0].urls, [format!("stun:{stun}")]);
            }
            let error = &failed.first().expect("a bad lobby code never failed").error;
            assert!(
                error.contains("lobby ZZZZZZ") && error.contains("404"),
                "{error}"
            );
            assert_eq!(connection(&lost), Connection::Failed);
        },
    );
}

#[test]
fn one_plugin_replicates_in_a_named_room_and_links_a_quick_match() {
    use bevy_gamenet::prelude::*;
    use bevy_transform::components::Transform;

    isolated(
        "one_plugin_replicates_in_a_named_room_and_links_a_quick_match",
        || async {
            let server = start_server().await;
            let replicating = || {
                let mut app = App::new();
                let room = Room::Named("replicated".into());
                app.add_plugins(
                    GamenetPlugin::server(&server)
                        .room(room)
                        .replication(ReplicationConfig::default()),
                )
                .replicate_transform::<Transform2d>();
                app.finish();
                app.cleanup();
                app
            };
            let mesh_only = || {
                let mut app = App::new();
                let room = Room::QuickMatch {
                    mode: "bevy-e2e".into(),
                    players: 2,
                };
                app.add_plugins(GamenetPlugin::server(&server).room(room));
                app
            };
            let (mut a, mut b) = (replicating(), replicating());
            let (mut c, mut d) = (mesh_only(), mesh_only());
            a.world_mut().spawn((
                Transform::from_xyz(10.0, 20.0, 0.0),
                Transform2d::default(),
                Replicated,
            ));
            let mut seen = None;
            let mut linked = (false, false);
            for _ in 0..4000 {
                for app in [&mut a, &mut b, &mut c, &mut d] {
                    app.update();
                }
                linked.0 |= !drain::<PeerJoined>(&mut c).is_empty();
                linked.1 |= !drain::<PeerJoined>(&mut d).is_empty();
                let mut remote = b
                    .world_mut()
                    .query_filtered::<&Transform, bevy_ecs::query::With<Remote>>();
                seen = remote.iter(b.world()).next().map(|t| t.translation);
                if seen.is_some_and(|at| (at.x - 10.0).abs() < 0.02) && linked.0 && linked.1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            println!(
                "RESULT b sees a's entity at {seen:?}; the quick-match pair linked: {linked:?}"
            );
            let at = seen.expect("a's entity never reached b");
            assert!(
                (at.x - 10.0).abs() < 0.02 && (at.y - 20.0).abs() < 0.02,
                "{at}"
            );
            assert_eq!(linked, (true, true), "the quick-match pair never linked");
            for app in [&c, &d] {
                assert!(app.world().contains_resource::<MeshSocket>());
            }
        },
    );
}
