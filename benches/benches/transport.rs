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
use gamenet_benches::{Throughput, best, median};
use matchbox_socket::{ChannelConfig, PeerState, RtcIceServerConfig, WebRtcChannel, WebRtcSocket};

const RUNS: usize = 5;
/// Unreliable sends go out in bursts of this many, one burst per millisecond.
const BURST: usize = 64;
/// A receiver that hears nothing for this long is done.
const IDLE: Duration = Duration::from_secs(3);

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
        count: 2_000,
    },
];

fn main() {
    gamenet_benches::ensure_isolated();
    // `cargo bench` passes `--bench`; nothing else is taken.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

fn bench_config(fragment_size: usize, send_window: usize) -> MeshConfig {
    MeshConfig {
        app_id: "bench".into(),
        fragment_size,
        send_window,
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
         namespace, real signaling server; {} cores. Best and median of {RUNS} runs: both peers \
         share the machine's cores, and UDP receive-buffer drops under load stall an SCTP \
         association for a retransmission timeout now and then (counters below), so the best \
         run shows capacity and the median what a busy machine gives. Unreliable sends \
         are paced at {BURST} messages per millisecond; a run ends {IDLE:?} after the last \
         delivery.\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );
    let _ = writeln!(
        report,
        "| case | raw msgs/s (best) | raw MB/s (best) | PeerMesh msgs/s (best) | PeerMesh MB/s (best) | ratio (best) | raw msgs/s (median) | PeerMesh msgs/s (median) | ratio (median) | lost raw / PeerMesh |"
    );
    let _ = writeln!(report, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");

    let (mut raw_a, mut raw_b) = raw_pair(&format!("{url}/raw")).await;
    let (mut mesh_a, mut mesh_b) = mesh_pair(
        &format!("{url}/mesh"),
        bench_config(
            MeshConfig::default().fragment_size,
            MeshConfig::default().send_window,
        ),
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
        let (raw, mesh) = (best(&raw_runs), best(&mesh_runs));
        let (raw_med, mesh_med) = (median(&raw_runs), median(&mesh_runs));
        let line = format!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} | {:.2}x | {:.0} | {:.0} | {:.2}x | {:.1} % / {:.1} % |",
            case.name,
            raw.msgs_per_sec(),
            raw.mb_per_sec(),
            mesh.msgs_per_sec(),
            mesh.mb_per_sec(),
            mesh.msgs_per_sec() / raw.msgs_per_sec().max(1e-9),
            raw_med.msgs_per_sec(),
            mesh_med.msgs_per_sec(),
            mesh_med.msgs_per_sec() / raw_med.msgs_per_sec().max(1e-9),
            raw_med.loss() * 100.0,
            mesh_med.loss() * 100.0,
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
    let _ = writeln!(
        report,
        "| fragment size | send window | 1 MiB messages/s (best) | MB/s (best) | MB/s (median) |"
    );
    let _ = writeln!(report, "|---:|---:|---:|---:|---:|");
    let default = MeshConfig::default();
    let mut configs: Vec<(usize, usize)> = [1024, 1152, 2048, 8192]
        .into_iter()
        .map(|f| (f, default.send_window))
        .collect();
    configs.extend(
        [256 << 10, 1 << 20, 4 << 20]
            .into_iter()
            .filter(|&w| w != default.send_window)
            .map(|w| (default.fragment_size, w)),
    );
    for (i, (fragment, window)) in configs.into_iter().enumerate() {
        let config = bench_config(fragment, window);
        let (mut a, mut b) = mesh_pair(&format!("{url}/sweep{i}"), config).await;
        let case = Case {
            name: "reliable 1 MiB",
            channel: Channel::Reliable,
            size: 1 << 20,
            count: 8,
        };
        let mut runs = Vec::new();
        for _ in 0..RUNS {
            let (na, nb, t) = mesh_run(a, b, case).await;
            (a, b) = (na, nb);
            runs.push(t);
        }
        let (t, med) = (best(&runs), median(&runs));
        let line = format!(
            "| {fragment} B | {} KiB | {:.1} | {:.2} | {:.2} |",
            window >> 10,
            t.msgs_per_sec(),
            t.mb_per_sec(),
            med.mb_per_sec()
        );
        println!("{line}");
        let _ = writeln!(report, "{line}");
    }

    // UDP receive-buffer drops in this namespace: each one can stall an SCTP
    // association for a retransmission timeout.
    if let Ok(snmp) = std::fs::read_to_string("/proc/net/snmp") {
        let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
        if let [names, values] = udp[..] {
            let line = names
                .split_whitespace()
                .zip(values.split_whitespace())
                .skip(1)
                .map(|(n, v)| format!("{n} {v}"))
                .collect::<Vec<_>>()
                .join(", ");
            println!("UDP counters: {line}");
            let _ = writeln!(report, "\nUDP counters of the namespace at the end: {line}");
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/transport.md");
    match std::fs::write(&path, report) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

/// A message of `size` bytes whose first four carry the run's tag, so that a
/// run never counts stragglers of the one before.
fn payload(size: usize, tag: u32) -> Vec<u8> {
    let mut data: Vec<u8> = (0..size.max(4)).map(|i| i as u8).collect();
    data[..4].copy_from_slice(&tag.to_le_bytes());
    data
}

fn tagged(data: &[u8], tag: u32) -> bool {
    data.get(..4) == Some(&tag.to_le_bytes()[..])
}

/// What a receiver counted of one run.
struct Tally {
    tag: u32,
    expected: u64,
    delivered: u64,
    bytes: u64,
    last: Instant,
}

impl Tally {
    fn new(tag: u32, expected: usize) -> Self {
        Self {
            tag,
            expected: expected as u64,
            delivered: 0,
            bytes: 0,
            last: Instant::now(),
        }
    }

    /// Counts a message of this run; returns whether all have arrived.
    fn record(&mut self, message: &[u8]) -> bool {
        if tagged(message, self.tag) {
            self.delivered += 1;
            self.bytes += message.len() as u64;
            self.last = Instant::now();
        }
        self.delivered == self.expected
    }

    fn throughput(&self, start: Instant) -> Throughput {
        Throughput {
            delivered: self.delivered,
            sent: self.expected,
            bytes: self.bytes,
            elapsed: self.last.saturating_duration_since(start),
        }
    }
}

static NEXT_TAG: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

fn next_tag() -> u32 {
    NEXT_TAG.fetch_add(1, Ordering::SeqCst)
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
    let tag = next_tag();
    let data = payload(case.size, tag);
    let to = a.peer;
    let receiver = tokio::spawn(async move {
        let mut tally = Tally::new(tag, case.count);
        let channel = b.channel(case.channel);
        while let Ok(Some((_, packet))) = tokio::time::timeout(IDLE, channel.next()).await {
            if tally.record(&packet) {
                break;
            }
        }
        (b, tally)
    });
    let start = Instant::now();
    for (i, _) in (0..case.count).enumerate() {
        let packet = Bytes::copy_from_slice(&data);
        if a.channel(case.channel).try_send(packet, to).is_err() {
            break;
        }
        pace(case.channel, i).await;
    }
    let (b, tally) = receiver.await.expect("receiver");
    let _ = &a.socket;
    (a, b, tally.throughput(start))
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
    let tag = next_tag();
    let data = payload(case.size, tag);
    let to = a.peers().next().expect("peer");
    let done = Arc::new(AtomicBool::new(false));
    let receiver = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut tally = Tally::new(tag, case.count);
            while let Ok(event) = tokio::time::timeout(IDLE, b.next_event()).await {
                if let Event::Message { payload, .. } = event.expect("mesh")
                    && tally.record(&payload)
                {
                    break;
                }
            }
            done.store(true, Ordering::SeqCst);
            (b, tally)
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
    let (b, tally) = receiver.await.expect("receiver");
    (a, b, tally.throughput(start))
}
