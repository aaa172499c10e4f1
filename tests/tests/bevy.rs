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
