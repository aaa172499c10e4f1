//! Transport overhead: `PeerMesh` against raw `matchbox_socket`, two native peers
//! over real WebRTC through the real signaling server, both measured in the same
//! run inside an isolated network namespace.
//!
//! `cargo xtask bench` (or `cargo bench -p gamenet_benches --bench transport`).
//! Writes `benches/results/transport.md`.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gamenet::{Bytes, Channel, Event, IceServer, MeshConfig, PeerMesh, SendError};
use gamenet_benches::{Throughput, median};
use matchbox_socket::{ChannelConfig, PeerState, RtcIceServerConfig, WebRtcChannel, WebRtcSocket};

const RUNS: usize = 3;
/// Unreliable sends go out in bursts of this many, one burst per millisecond.
const BURST: usize = 32;
/// A receiver that hears nothing for this long is done.
const IDLE: Duration = Duration::from_millis(500);

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    channel: Channel,
    size: usize,
    count: usize,
}

const CASES: [Case; 5] = [
    Case {
        name: "unreliable 64 B",
        channel: Channel::Unreliable,
        size: 64,
        count: 20_000,
    },
    Case {
        name: "unreliable 1 KiB",
        channel: Channel::Unreliable,
        size: 1024,
        count: 20_000,
    },
    Case {
        name: "reliable 64 B",
        channel: Channel::Reliable,
        size: 64,
        count: 50_000,
    },
    Case {
        name: "reliable 1 KiB",
        channel: Channel::Reliable,
        size: 1024,
        count: 20_000,
    },
    Case {
        name: "reliable 16 KiB",
        channel: Channel::Reliable,
        size: 16 << 10,
        count: 300,
    },
];

fn main() {
    if std::env::var_os(gamenet_e2e::NETNS_ENV).is_none() {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let status = gamenet_e2e::reexec_isolated(&args);
        std::process::exit(status.code().unwrap_or(1));
    }
    // `cargo bench` passes `--bench`; nothing else is taken.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn bench_config(fragment_size: usize) -> MeshConfig {
    MeshConfig {
        app_id: "bench".into(),
        fragment_size,
        // Meshes sit unpolled while the other side of the comparison runs.
        disconnect_timeout: Duration::from_secs(600),
        ..MeshConfig::default()
    }
}

async fn run() {
    let url = gamenet_e2e::start_server().await;
    let mut report = String::new();
    let _ = writeln!(report, "# Transport: PeerMesh vs raw matchbox_socket\n");
    let _ = writeln!(
        report,
        "Two native peers in one process, real WebRTC over a veth in an isolated network \
         namespace, real signaling server; {} cores. Median of {RUNS} runs. Unreliable sends \
         are paced at {BURST} messages per millisecond; a run ends {IDLE:?} after the last \
         delivery.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let _ = writeln!(
        report,
        "| case | raw msgs/s | raw MB/s | raw loss | PeerMesh msgs/s | PeerMesh MB/s | PeerMesh loss | ratio |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|");

    let (mut raw_a, mut raw_b) = raw_pair(&format!("{url}/raw")).await;
    let (mut mesh_a, mut mesh_b) = mesh_pair(
        &format!("{url}/mesh"),
        bench_config(gamenet::MeshConfig::default().fragment_size),
    )
    .await;
    for case in CASES {
        let mut raw_runs = Vec::new();
        let mut mesh_runs = Vec::new();
        for _ in 0..RUNS {
            let (a, b, t) = raw_run(raw_a, raw_b, case).await;
            (raw_a, raw_b) = (a, b);
            raw_runs.push(t);
            let (a, b, t) = mesh_run(mesh_a, mesh_b, case).await;
            (mesh_a, mesh_b) = (a, b);
            mesh_runs.push(t);
        }
        let (raw, mesh) = (median(raw_runs), median(mesh_runs));
        let ratio = mesh.msgs_per_sec() / raw.msgs_per_sec().max(1e-9);
        let line = format!(
            "| {} | {:.0} | {:.2} | {:.1} % | {:.0} | {:.2} | {:.1} % | {:.2}x |",
            case.name,
            raw.msgs_per_sec(),
            raw.mb_per_sec(),
            raw.loss() * 100.0,
            mesh.msgs_per_sec(),
            mesh.mb_per_sec(),
            mesh.loss() * 100.0,
            ratio
        );
        println!("{line}");
        let _ = writeln!(report, "{line}");
    }

    let _ = writeln!(
        report,
        "\n## Large reliable messages through PeerMesh, by fragment size\n\n\
         matchbox_socket cannot send a message over 64 KiB natively, so there is no raw \
         column: PeerMesh fragments, flow-controls and reassembles.\n"
    );
    let _ = writeln!(report, "| fragment size | 1 MiB messages/s | MB/s |");
    let _ = writeln!(report, "|---:|---:|---:|");
    for (i, fragment) in [1 << 10, 4 << 10, 8 << 10, 16 << 10, 32 << 10]
        .into_iter()
        .enumerate()
    {
        let (mut a, mut b) = mesh_pair(&format!("{url}/frag{i}"), bench_config(fragment)).await;
        let case = Case {
            name: "reliable 1 MiB",
            channel: Channel::Reliable,
            size: 1 << 20,
            count: 16,
        };
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let (na, nb, t) = mesh_run(a, b, case).await;
            (a, b) = (na, nb);
            runs.push(t);
        }
        let t = median(runs);
        let line = format!(
            "| {} KiB | {:.1} | {:.2} |",
            fragment >> 10,
            t.msgs_per_sec(),
            t.mb_per_sec()
        );
        println!("{line}");
        let _ = writeln!(report, "{line}");
    }

    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/transport.md");
    match std::fs::write(&path, report) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

fn payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| i as u8).collect()
}

// ---- raw matchbox_socket ----

struct RawPeer {
    socket: WebRtcSocket,
    reliable: WebRtcChannel,
    unreliable: WebRtcChannel,
    peer: matchbox_socket::PeerId,
}

impl RawPeer {
    fn channel(&mut self, channel: Channel) -> &mut WebRtcChannel {
        match channel {
            Channel::Reliable => &mut self.reliable,
            Channel::Unreliable => &mut self.unreliable,
        }
    }
}

async fn raw_pair(url: &str) -> (RawPeer, RawPeer) {
    let a = raw_join(url);
    let b = raw_join(url);
    let (a, b) = tokio::join!(raw_connected(a), raw_connected(b));
    (a, b)
}

fn raw_join(url: &str) -> WebRtcSocket {
    let (socket, driver) = WebRtcSocket::builder(url)
        .ice_server(RtcIceServerConfig {
            urls: vec![],
            username: None,
            credential: None,
        })
        .add_channel(ChannelConfig::reliable())
        .add_channel(ChannelConfig::unreliable())
        .build();
    tokio::spawn(driver);
    socket
}

async fn raw_connected(mut socket: WebRtcSocket) -> RawPeer {
    loop {
        if let Some((peer, PeerState::Connected)) = socket.next().await {
            let reliable = socket.take_channel(0).expect("reliable");
            let unreliable = socket.take_channel(1).expect("unreliable");
            return RawPeer {
                socket,
                reliable,
                unreliable,
                peer,
            };
        }
    }
}

async fn raw_run(mut a: RawPeer, mut b: RawPeer, case: Case) -> (RawPeer, RawPeer, Throughput) {
    let data = payload(case.size);
    let to = a.peer;
    let receiver = tokio::spawn(async move {
        let mut delivered = 0u64;
        let mut bytes = 0u64;
        let mut last = Instant::now();
        let channel = b.channel(case.channel);
        while let Ok(Some((_, packet))) = tokio::time::timeout(IDLE, channel.next()).await {
            delivered += 1;
            bytes += packet.len() as u64;
            last = Instant::now();
            if delivered == case.count as u64 {
                break;
            }
        }
        (b, delivered, bytes, last)
    });
    let start = Instant::now();
    for (i, _) in (0..case.count).enumerate() {
        let packet = Bytes::copy_from_slice(&data);
        if a.channel(case.channel).try_send(packet, to).is_err() {
            break;
        }
        pace(case.channel, i).await;
    }
    let (b, delivered, bytes, last) = receiver.await.expect("receiver");
    let _ = &a.socket;
    let t = Throughput {
        delivered,
        sent: case.count as u64,
        bytes,
        elapsed: last - start,
    };
    (a, b, t)
}

async fn pace(channel: Channel, i: usize) {
    match channel {
        Channel::Unreliable if (i + 1).is_multiple_of(BURST) => {
            tokio::time::sleep(Duration::from_millis(1)).await
        }
        Channel::Reliable if (i + 1).is_multiple_of(256) => tokio::task::yield_now().await,
        _ => {}
    }
}

// ---- PeerMesh ----

async fn mesh_pair(url: &str, config: MeshConfig) -> (PeerMesh, PeerMesh) {
    let join = |config: MeshConfig| {
        let (mesh, driver) = PeerMesh::builder(url)
            .config(config)
            .ice_server(IceServer::none())
            .build()
            .expect("mesh");
        tokio::spawn(driver);
        mesh
    };
    let mut a = join(config.clone());
    let mut b = join(config);
    tokio::join!(wait_joined(&mut a), wait_joined(&mut b));
    (a, b)
}

async fn wait_joined(mesh: &mut PeerMesh) {
    loop {
        if let Event::PeerJoined(_) = mesh.next_event().await.expect("mesh") {
            return;
        }
    }
}

async fn mesh_run(
    mut a: PeerMesh,
    mut b: PeerMesh,
    case: Case,
) -> (PeerMesh, PeerMesh, Throughput) {
    let data = payload(case.size);
    let to = a.peers().next().expect("peer");
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut delivered = 0u64;
            let mut bytes = 0u64;
            let mut last = Instant::now();
            while let Ok(event) = tokio::time::timeout(IDLE, b.next_event()).await {
                if let Event::Message { payload, .. } = event.expect("mesh") {
                    delivered += 1;
                    bytes += payload.len() as u64;
                    last = Instant::now();
                    if delivered == case.count as u64 {
                        break;
                    }
                }
            }
            done.store(true, Ordering::SeqCst);
            (b, delivered, bytes, last)
        })
    };
    let start = Instant::now();
    let mut i = 0;
    while i < case.count {
        match a.send(to, case.channel, &data) {
            Ok(()) => {
                pace(case.channel, i).await;
                i += 1;
            }
            Err(SendError::QueueFull { .. }) => {
                // Wait for the peer's acknowledgements.
                let _ = tokio::time::timeout(Duration::from_millis(5), a.next_event()).await;
            }
            Err(e) => panic!("send: {e}"),
        }
        if i.is_multiple_of(64) {
            a.update();
        }
    }
    // Keep the sender answering (acknowledgements, heartbeats) until the receiver is done.
    while !done.load(Ordering::SeqCst) {
        let _ = tokio::time::timeout(Duration::from_millis(5), a.next_event()).await;
    }
    let (b, delivered, bytes, last) = receiver.await.expect("receiver");
    let t = Throughput {
        delivered,
        sent: case.count as u64,
        bytes,
        elapsed: last - start,
    };
    (a, b, t)
}
