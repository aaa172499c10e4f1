//! `gamenet::lobby` against the real signaling server: a lobby created, found
//! by code and in the list, joined by three native peers over real WebRTC with
//! the ICE servers the server hands out, in an isolated network namespace.

use std::time::{Duration, Instant};

use gamenet::PeerMesh;
use gamenet::lobby::{LobbyClient, LobbyError, LobbySpec};
use gamenet_e2e::{isolated, start_server_with_stun, wait_joined};

#[test]
fn a_lobby_is_created_found_by_code_and_in_the_list_and_joined_by_three() {
    isolated(
        "a_lobby_is_created_found_by_code_and_in_the_list_and_joined_by_three",
        || async {
            let (server, stun) = start_server_with_stun().await;
            let client = LobbyClient::new(&server);
            let started = Instant::now();
            let spec = LobbySpec {
                name: "Friday night".into(),
                max_players: 3,
                mode: "arena".into(),
                ..LobbySpec::default()
            };
            let lobby = client.create(&spec).await.expect("create a lobby");
            assert_eq!(
                (lobby.name.as_str(), lobby.max_players, lobby.players),
                ("Friday night", 3, 0)
            );
            assert_eq!(client.get(&lobby.code).await.unwrap(), lobby);
            let listed = client.list("arena", 10).await.unwrap();
            assert_eq!(listed, std::slice::from_ref(&lobby));
            assert!(client.list("other", 10).await.unwrap().is_empty());
            // An unknown code is the server's clear refusal, not a lobby.
            match client.get("ZZZZZZ").await {
                Err(LobbyError::Refused { status: 404, .. }) => {}
                other => panic!("an unknown code gave {other:?}"),
            }
            let ice = client
                .ice_servers()
                .await
                .expect("the server's ICE servers");
            assert_eq!(ice.len(), 1, "{ice:?}");
            assert_eq!(ice[0].urls, [format!("stun:{stun}")]);

            let mut meshes: Vec<PeerMesh> = Vec::new();
            for _ in 0..3 {
                let (mesh, driver) = PeerMesh::builder(client.join_url(&lobby.code))
                    .app_id("lobby-e2e")
                    .ice_servers(client.ice_servers().await.unwrap())
                    .build()
                    .unwrap();
                tokio::spawn(driver);
                meshes.push(mesh);
            }
            let joined = futures::future::join_all(meshes.iter_mut().map(|m| wait_joined(m, 2)));
            let joined = tokio::time::timeout(Duration::from_secs(30), joined)
                .await
                .expect("the three linked within 30 s");
            assert!(joined.iter().all(|peers| peers.len() == 2));
            let full = client.get(&lobby.code).await.unwrap();
            assert_eq!((full.players, full.has_room()), (3, false));
            println!(
                "RESULT lobby {} created, found, listed and joined by 3 peers, all linked {:.2?} after creation",
                lobby.code,
                started.elapsed()
            );
            // A fourth is refused: the lobby is full, and nobody links to it.
            let (mut fourth, driver) = PeerMesh::builder(client.join_url(&lobby.code))
                .app_id("lobby-e2e")
                .ice_servers(ice)
                .build()
                .unwrap();
            tokio::spawn(driver);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
            while let Ok(event) = tokio::time::timeout_at(deadline, fourth.next_event()).await {
                match event {
                    Ok(gamenet::Event::PeerJoined(peer)) => {
                        panic!("a fourth player linked to {peer}")
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
            assert_eq!(client.get(&lobby.code).await.unwrap().players, 3);
        },
    );
}
