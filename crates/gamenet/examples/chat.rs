//! A terminal chat over a `PeerMesh`: every line typed goes to every peer of the room.
//!
//! Start a server (`cargo run -p gamenet_signaling`), then in two terminals:
//!
//! ```sh
//! cargo run -p gamenet --example chat -- ws://localhost:3000/chat
//! ```
//!
//! Peers on one network find each other with host candidates; give a STUN server
//! as the second argument (`stun:host:port`) to cross NATs.

use gamenet::{Channel, Event, IceServer, PeerMesh};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "ws://localhost:3000/chat".into());
    let ice = args.next().map_or_else(IceServer::none, IceServer::stun);
    let (mut mesh, driver) = PeerMesh::builder(&url)
        .app_id("gamenet-chat")
        .ice_server(ice)
        .build()?;
    tokio::spawn(driver);
    println!("joining {url}; type a line to send it to everyone");

    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line? {
                Some(line) => mesh.broadcast(Channel::Reliable, line.as_bytes())?,
                None => break,
            },
            event = mesh.next_event() => match event? {
                Event::PeerJoined(peer) => println!("* {peer} joined"),
                Event::PeerLeft { peer, reason } => println!("* {peer} left: {reason}"),
                Event::Message { peer, payload, .. } => {
                    let rtt = mesh.stats(peer).and_then(|s| s.rtt).unwrap_or_default();
                    println!("{peer} ({rtt:.0?}): {}", String::from_utf8_lossy(&payload));
                }
                Event::HandshakeFailed { peer, error } => println!("* {peer} refused: {error}"),
                _ => {}
            },
        }
    }
    mesh.close();
    Ok(())
}
