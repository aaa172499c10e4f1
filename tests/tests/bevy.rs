//! Two Bevy apps with `GamenetPlugin` find each other and exchange a message over
//! real WebRTC, in an isolated network namespace.

use std::time::Duration;

use bevy_app::App;
use bevy_ecs::message::Messages;
use bevy_gamenet::{GamenetPlugin, MeshSocket, MessageReceived, PeerJoined};
use gamenet::{Channel, IceServer, PeerId, PeerMesh};
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
