//! A scripted native peer for end-to-end tests, run as its own process.
//!
//! `e2e-peer <room-url> <app-id> <idle|echo> [lifetime-secs]`
//!
//! It prints one line per happening: `id <id>`, `joined <peer>`,
//! `route <peer> <Direct|NatTraversed|Relayed>` (once ICE has chosen),
//! `left <peer> <unix-ms> <reason>`, `handshake-failed <peer> <error>`, and in
//! echo mode sends every message back on the channel it came on. It exits by
//! itself after its lifetime (default 120 s).
//!
//! With `GAMENET_E2E_KEY` set, it joins with that reconnect key (a restarted
//! process gets its id back).
//!
//! With `GAMENET_E2E_ICE_STALE=1` (and an `http://` `GAMENET_E2E_ICE`), it
//! starts with spoiled TURN credentials (as if they had expired), and when it
//! gets `SIGUSR1` fetches the list again and hands it to the mesh
//! (`ice-refreshed`). `GAMENET_E2E_CONNECT_TIMEOUT=<secs>` bounds each WebRTC
//! connection attempt.
//!
//! With `RUST_LOG` set, it logs to standard error.
//!
//! ICE servers: none (host candidates only), unless `GAMENET_E2E_ICE` is set to
//! a `stun:` URL, or to an `http://` URL of a signaling server's `/api/ice`,
//! which is fetched (that is how a game gets STUN and TURN credentials).

use std::io::Write;
use std::time::Duration;

use gamenet::Event;
use gamenet_e2e::unix_ms;

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    // Logs (gamenet's and matchbox's) on standard error, with `RUST_LOG` set.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let args: Vec<String> = std::env::args().collect();
    let [_, url, app, mode, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: e2e-peer <room-url> <app-id> <idle|echo> [lifetime-secs]");
    };
    let echo = match mode.as_str() {
        "idle" => false,
        "echo" => true,
        other => anyhow::bail!("unknown mode {other}"),
    };
    let lifetime = rest.first().map(|s| s.parse()).transpose()?.unwrap_or(120);
    let ice_url = std::env::var("GAMENET_E2E_ICE").ok();
    let stale = std::env::var_os("GAMENET_E2E_ICE_STALE").is_some();
    // Installed before anything is printed: the test signals after reading.
    let refresh_signal =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1())?;
    let mut ice = match &ice_url {
        None => vec![gamenet::IceServer::none()],
        Some(url) if url.starts_with("http://") => {
            let json = gamenet_e2e::http_get_body(url).await?;
            say(format!("ice {json}"));
            gamenet::IceServer::list_from_json(&json)?
        }
        Some(url) => vec![gamenet::IceServer::stun(url)],
    };
    if stale {
        for server in &mut ice {
            if let Some(credential) = &mut server.credential {
                *credential = "expired".into();
            }
        }
    }
    let mut builder = gamenet::PeerMesh::builder(url.as_str())
        .app_id(app.as_str())
        .ice_servers(ice);
    if let Ok(secs) = std::env::var("GAMENET_E2E_CONNECT_TIMEOUT") {
        builder = builder.connect_timeout(Duration::from_secs(secs.parse()?));
    }
    if let Ok(key) = std::env::var("GAMENET_E2E_KEY") {
        builder = builder.reconnect_key(key);
    }
    let (mesh, driver) = builder.build()?;
    tokio::spawn(driver);
    let refresh = match (stale, ice_url) {
        (true, Some(url)) => Some((refresh_signal, url)),
        _ => None,
    };
    let run = serve(mesh, echo, refresh);
    match tokio::time::timeout(Duration::from_secs(lifetime), run).await {
        Ok(result) => result,
        Err(_) => Ok(()),
    }
}

async fn serve(
    mut mesh: gamenet::PeerMesh,
    echo: bool,
    mut refresh: Option<(tokio::signal::unix::Signal, String)>,
) -> anyhow::Result<()> {
    let mut told_id = false;
    let mut unrouted = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        // Once signaling gave it, even if no event comes.
        if !told_id && let Some(id) = mesh.id() {
            say(format!("id {id}"));
            told_id = true;
        }
        let wanted = async {
            match &mut refresh {
                Some((signal, _)) => signal.recv().await,
                None => std::future::pending().await,
            }
        };
        let event = tokio::select! {
            event = mesh.next_event() => event?,
            Some(()) = wanted => {
                if let Some((_, url)) = refresh.take() {
                    let json = gamenet_e2e::http_get_body(&url).await?;
                    mesh.set_ice_servers(gamenet::IceServer::list_from_json(&json)?)?;
                    say("ice-refreshed".into());
                }
                continue;
            }
            _ = tick.tick() => {
                unrouted.retain(|&peer| match mesh.route(peer) {
                    Some(route) => {
                        say(format!("route {peer} {route:?}"));
                        false
                    }
                    None => true,
                });
                continue;
            }
        };
        // Before what the event says.
        if !told_id && let Some(id) = mesh.id() {
            say(format!("id {id}"));
            told_id = true;
        }
        match event {
            Event::PeerJoined(peer) => {
                say(format!("joined {peer}"));
                unrouted.push(peer);
            }
            Event::PeerLeft { peer, reason } => say(format!("left {peer} {} {reason}", unix_ms())),
            Event::HandshakeFailed { peer, error } => {
                say(format!("handshake-failed {peer} {error}"))
            }
            Event::SignalRefused { peer, reason } => say(format!("signal-refused {peer} {reason}")),
            Event::Message {
                peer,
                channel,
                payload,
            } if echo => mesh.send(peer, channel, &payload)?,
            _ => {}
        }
    }
}
