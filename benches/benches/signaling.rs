//! Signaling load: `N` WebSocket clients connect at once to `/bench?next=2`,
//! form 2-player quick-match rooms and exchange one offer and one answer
//! through the server, then stay connected until every client is through.
//! gamenet-signaling against matchbox_server 0.15 (what matchbox users run),
//! each a separate release-built process, in the same run on the same machine.
//!
//! Reported per server and client count (median of the rounds), the server's
//! own costs first: its CPU time per join and its peak resident memory
//! (`VmHWM`) per client over its idle footprint; then joins per second
//! (clients matched and signaled / time from the first connect to the last
//! answer), which on a small machine is bounded by the load clients sharing
//! its CPUs, and the clients held at the end. A second table runs the load the
//! other way (one signal per pair, 200 connections in flight) at the largest
//! count, to show what the load's shape changes.
//!
//! `cargo xtask bench signaling` builds both servers and runs this; it needs
//! `GAMENET_SIGNALING_BIN` and `MATCHBOX_SERVER_BIN`. Writes
//! `benches/results/signaling.md`. Without `MATCHBOX_SERVER_BIN` it measures
//! gamenet-signaling alone (to compare two builds of it, say) and only prints
//! its rows; with `GAMENET_BENCH_MEMORY_ONLY` set too, only the in-memory ones.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use matchbox_protocol::{JsonPeerEvent, JsonPeerRequest};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::tungstenite::Message;

const COUNTS: [usize; 3] = [1000, 5000, 10_000];
/// Rounds per server and count: a round takes about a second, and single rounds
/// vary by a fifth on a shared 2-core machine, so the median needs a few.
const ROUNDS: usize = 11;
/// The load's shape: connection attempts in flight at once (both servers'
/// listen backlogs hold 128) and signals per pair.
#[derive(Debug, Clone, Copy)]
struct Shape {
    connecting: usize,
    /// 2: an offer and an answer; 1: the offer only.
    signals: usize,
}

/// The main tables' load.
const MAIN: Shape = Shape {
    connecting: 128,
    signals: 2,
};
/// The other shape, at the largest count.
const OTHER: Shape = Shape {
    connecting: 200,
    signals: 1,
};
const ROUND_LIMIT: Duration = Duration::from_secs(120);

struct ServerProcess {
    /// The server processes, and with Redis the redis-server first.
    children: Vec<Child>,
    /// The ports clients connect to, one per instance.
    ports: Vec<u16>,
    /// Redis's temporary directory, removed at the end.
    dir: Option<std::path::PathBuf>,
}

/// Waits until something listens on `port`.
fn wait_listening(what: &str, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `command` quietly: per-connection logging is not what is measured.
fn spawn_quiet(command: &mut Command, what: &str) -> Child {
    command
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"))
}

/// gamenet-signaling on `port`, with the load's limits off.
fn gamenet_command(port: u16) -> Command {
    let mut c = Command::new(env_path("GAMENET_SIGNALING_BIN"));
    c.args([
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--stun-listen",
        "off",
        // The load comes from one address; per-address limits off.
        "--rate",
        "0",
        "--max-connections-per-address",
        "0",
        "--max-clients",
        "100000",
    ]);
    c
}

impl ServerProcess {
    /// Starts `kind` on ports from `port` (with Redis: Redis on `port`, the
    /// instances on the next ones).
    fn start(kind: Kind, port: u16) -> Self {
        let (children, ports, dir) = match kind {
            Kind::Gamenet => (
                vec![spawn_quiet(
                    &mut gamenet_command(port),
                    kind.name().as_str(),
                )],
                vec![port],
                None,
            ),
            Kind::Matchbox => {
                let mut c = Command::new(env_path("MATCHBOX_SERVER_BIN"));
                c.arg(format!("127.0.0.1:{port}"));
                (
                    vec![spawn_quiet(&mut c, "matchbox_server")],
                    vec![port],
                    None,
                )
            }
            Kind::Redis(instances) => {
                let dir = std::env::temp_dir().join(format!("gamenet-bench-redis-{port}"));
                std::fs::create_dir_all(&dir).expect("a temporary directory");
                let mut redis = Command::new("redis-server");
                redis
                    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--dir"])
                    .arg(&dir);
                let mut children = vec![spawn_quiet(&mut redis, "redis-server")];
                wait_listening("redis-server", port);
                let ports: Vec<u16> = (1..=instances as u16).map(|i| port + i).collect();
                for &p in &ports {
                    let mut c = gamenet_command(p);
                    c.args(["--redis", &format!("redis://127.0.0.1:{port}/")]);
                    children.push(spawn_quiet(&mut c, "gamenet-signaling on Redis"));
                }
                (children, ports, Some(dir))
            }
        };
        let server = Self {
            children,
            ports,
            dir,
        };
        for &p in &server.ports {
            wait_listening(&kind.name(), p);
        }
        server
    }

    /// CPU time the server processes have used, user and system.
    fn cpu(&self) -> Duration {
        self.children.iter().map(cpu_of).sum()
    }

    /// Resident and peak resident memory of the server processes, in bytes.
    fn memory(&self) -> (u64, u64) {
        self.children
            .iter()
            .map(memory_of)
            .fold((0, 0), |(r, p), (r2, p2)| (r + r2, p + p2))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// CPU time a process has used, user and system.
fn cpu_of(child: &Child) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap_or_default();
    // Fields after the command name (which is in parentheses): utime and
    // stime are the 12th and 13th, in clock ticks (100 per second on Linux).
    let ticks: u64 = stat
        .rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|t| t.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// Resident and peak resident memory of a process, in bytes.
fn memory_of(child: &Child) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn env_path(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run this benchmark with `cargo xtask bench signaling`")
    })
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    /// gamenet-signaling, in memory.
    Gamenet,
    Matchbox,
    /// gamenet-signaling: this many instances sharing one redis-server,
    /// clients spread over them in turn.
    Redis(usize),
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Gamenet => "gamenet-signaling".into(),
            Kind::Matchbox => "matchbox_server 0.15".into(),
            Kind::Redis(n) => format!("gamenet-signaling, {n} on Redis"),
        }
    }
}

struct Round {
    joins_per_sec: f64,
    /// Server CPU time per client through.
    cpu_per_join: Duration,
    held: usize,
    idle_rss: u64,
    peak_rss: u64,
    /// Offer-to-answer round trips the offerers saw, of the pairs split across
    /// instances (all pairs with one instance).
    round_trips: Vec<Duration>,
}

/// One server at one client count, over its rounds.
struct Summary {
    /// Median joins/s.
    joins: f64,
    /// The slowest and fastest round's joins/s.
    slowest: f64,
    fastest: f64,
    /// Median server CPU per join, µs.
    cpu: f64,
    /// Median peak memory per client over the idle footprint, bytes.
    per_client: f64,
}

fn send(request: JsonPeerRequest) -> Message {
    Message::Text(request.to_string().into())
}

/// What a client reports once through: when, and as the offerer of a pair
/// with an answer, the offer's round trip and whether its peer was on
/// another instance.
type Through = (Instant, Option<(Duration, bool)>);

/// An SDP standing in for a real one, naming the instance its sender is on.
fn sdp(instance: usize) -> String {
    format!("v=0\r\ns={instance}\r\n")
}

/// One client of instance `instance`: connect, get an id, get matched, pass
/// an offer and (with two signals) an answer, then hold the connection until
/// `release`. Returns whether it was still connected when released.
async fn client(
    url: String,
    instance: usize,
    signals: usize,
    connecting: Arc<Semaphore>,
    done: tokio::sync::mpsc::UnboundedSender<Through>,
    mut release: watch::Receiver<bool>,
) -> Result<bool, String> {
    let permit = connecting.acquire().await.map_err(|e| e.to_string())?;
    // A lean client, so that the servers' work shows: small buffers.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    drop(permit);
    let mut through = false;
    let mut offered = None;
    let mut round_trip = None;
    while !through {
        let message = ws
            .next()
            .await
            .ok_or("closed before matched")?
            .map_err(|e| e.to_string())?;
        let Message::Text(text) = message else {
            continue;
        };
        let event: JsonPeerEvent = text.parse().map_err(|e| format!("{e:?}"))?;
        match event {
            JsonPeerEvent::IdAssigned(_) => {}
            // The first of a pair is told of the second, and offers.
            JsonPeerEvent::NewPeer(other) => {
                // Signals shaped as matchbox_socket's (gamenet-signaling
                // refuses any other).
                let offer = JsonPeerRequest::Signal {
                    receiver: other,
                    data: serde_json::json!({ "Offer": sdp(instance) }),
                };
                offered = Some(Instant::now());
                ws.send(send(offer)).await.map_err(|e| e.to_string())?;
                through = signals == 1;
            }
            JsonPeerEvent::Signal { sender, data } => {
                if data.get("Offer").is_some() && signals == 2 {
                    let answer = JsonPeerRequest::Signal {
                        receiver: sender,
                        data: serde_json::json!({ "Answer": sdp(instance) }),
                    };
                    ws.send(send(answer)).await.map_err(|e| e.to_string())?;
                }
                if let (Some(at), Some(answer)) = (offered, data.get("Answer")) {
                    let across = answer.as_str() != Some(sdp(instance).as_str());
                    round_trip = Some((at.elapsed(), across));
                }
                through = true;
            }
            JsonPeerEvent::PeerLeft(_) => return Err("peer left".into()),
        }
    }
    let _ = done.send((Instant::now(), round_trip));
    let _ = release.wait_for(|&r| r).await;
    // Still connected if the server has not closed on us.
    let held = matches!(
        tokio::time::timeout(Duration::from_millis(1), ws.next()).await,
        Err(_) | Ok(Some(Ok(_)))
    );
    let _ = ws.close(None).await;
    Ok(held)
}

async fn round(kind: Kind, clients: usize, shape: Shape, port: u16) -> Round {
    let server = ServerProcess::start(kind, port);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let instances = server.ports.len();
    let (idle_rss, _) = server.memory();
    let cpu_before = server.cpu();
    let connecting = Arc::new(Semaphore::new(shape.connecting));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    let start = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|i| {
            let instance = i % instances;
            tokio::spawn(client(
                format!("ws://127.0.0.1:{}/bench?next=2", server.ports[instance]),
                instance,
                shape.signals,
                connecting.clone(),
                done_tx.clone(),
                released.clone(),
            ))
        })
        .collect();
    drop(done_tx);
    let mut last = start;
    let mut through = 0;
    let mut round_trips = Vec::new();
    let deadline = tokio::time::Instant::now() + ROUND_LIMIT;
    while through < clients {
        match tokio::time::timeout_at(deadline, done_rx.recv()).await {
            Ok(Some((at, round_trip))) => {
                last = last.max(at);
                through += 1;
                if let Some((took, across)) = round_trip
                    && (across || instances == 1)
                {
                    round_trips.push(took);
                }
            }
            Ok(None) => break,
            Err(_) => panic!("{kind:?}: only {through} of {clients} through in {ROUND_LIMIT:?}"),
        }
    }
    let elapsed = last - start;
    let (_, peak_rss) = server.memory();
    let cpu_per_join = server.cpu().saturating_sub(cpu_before) / clients as u32;
    let _ = release.send(true);
    let mut held = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(true)) => held += 1,
            Ok(Ok(false)) => {}
            Ok(Err(e)) => panic!("{kind:?}: a client failed: {e}"),
            Err(e) => panic!("{kind:?}: {e}"),
        }
    }
    assert_eq!(through, clients, "{kind:?}: clients failed");
    Round {
        joins_per_sec: clients as f64 / elapsed.as_secs_f64(),
        cpu_per_join,
        held,
        idle_rss,
        peak_rss,
        round_trips,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn mib(bytes: f64) -> f64 {
    bytes / (1024.0 * 1024.0)
}

/// Runs one server at one count and shape for [`ROUNDS`] rounds; returns its
/// summary and table row.
fn measure(
    runtime: &tokio::runtime::Runtime,
    kind: Kind,
    clients: usize,
    shape: Shape,
    port: &mut u16,
) -> (Summary, String) {
    let rounds: Vec<Round> = (0..ROUNDS)
        .map(|_| {
            // Room for Redis and three instances.
            *port += 4;
            let r = runtime.block_on(round(kind, clients, shape, *port));
            println!(
                "{} {clients} {shape:?}: {:.0} µs server CPU per join, peak {:.1} MiB (idle {:.1} MiB), {:.0} joins/s, {} held",
                kind.name(),
                r.cpu_per_join.as_secs_f64() * 1e6,
                mib(r.peak_rss as f64),
                mib(r.idle_rss as f64),
                r.joins_per_sec,
                r.held,
            );
            r
        })
        .collect();
    let joins = median(rounds.iter().map(|r| r.joins_per_sec).collect());
    // The spread of the rounds, so that a ratio near a goal can be judged.
    let (slowest, fastest) = rounds.iter().fold((f64::MAX, 0.0f64), |(lo, hi), r| {
        (lo.min(r.joins_per_sec), hi.max(r.joins_per_sec))
    });
    let cpu = median(
        rounds
            .iter()
            .map(|r| r.cpu_per_join.as_secs_f64() * 1e6)
            .collect(),
    );
    let held = rounds.iter().map(|r| r.held).min().unwrap_or(0);
    let peak = median(rounds.iter().map(|r| r.peak_rss as f64).collect());
    let per_client = median(
        rounds
            .iter()
            .map(|r| r.peak_rss.saturating_sub(r.idle_rss) as f64 / clients as f64)
            .collect(),
    );
    let mut round_trips: Vec<Duration> = rounds
        .iter()
        .flat_map(|r| r.round_trips.iter().copied())
        .collect();
    round_trips.sort();
    let percentile = |p: f64| {
        let at = ((round_trips.len() as f64 * p) as usize).min(round_trips.len().saturating_sub(1));
        round_trips[at].as_secs_f64() * 1e3
    };
    let round_trip = if round_trips.is_empty() {
        "–".to_owned()
    } else {
        format!("{:.1} / {:.1}", percentile(0.5), percentile(0.99))
    };
    let row = format!(
        "| {} | {clients} | {cpu:.0} | {:.1} | {:.1} | {joins:.0} | {slowest:.0}–{fastest:.0} | {round_trip} | {held} |",
        kind.name(),
        per_client / 1024.0,
        mib(peak),
    );
    (
        Summary {
            joins,
            slowest,
            fastest,
            cpu,
            per_client,
        },
        row,
    )
}

/// One line on what Redis adds to a join, against the in-memory server.
fn redis_cost(clients: usize, instances: usize, shared: &Summary, memory: &Summary) -> String {
    format!(
        "- {clients} clients, {instances} {} on Redis: {:.0} µs of CPU per join in all (instances and Redis), {:+.0} µs against memory; {:.1} KiB per client in all.",
        if instances == 1 {
            "instance"
        } else {
            "instances"
        },
        shared.cpu,
        shared.cpu - memory.cpu,
        shared.per_client / 1024.0,
    )
}

/// One line comparing our summary with matchbox_server's.
fn compare(what: &str, ours: &Summary, theirs: &Summary) -> String {
    format!(
        "- {what}: **{:.2}x** matchbox_server's server CPU per join, **{:.2}x** its memory per client; {:.2}x its joins/s ({:.2}x–{:.2}x from our slowest round against its fastest to the reverse).",
        ours.cpu / theirs.cpu,
        ours.per_client / theirs.per_client,
        ours.joins / theirs.joins,
        ours.slowest / theirs.fastest,
        ours.fastest / theirs.slowest,
    )
}

const HEADER: &str = "| server | clients | server CPU µs/join | memory per client (KiB) | peak RSS (MiB) | joins/s | rounds' range | offer→answer ms p50 / p99 | held |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|";

fn main() {
    // 10,000 clients take 10,000 sockets here and as many in the server,
    // which inherits the limit.
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    let largest = COUNTS[COUNTS.len() - 1] as u64;
    assert!(
        limit > largest + 256,
        "the open file limit ({limit}) is too low for {largest} clients: raise the hard limit (ulimit -Hn)"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if std::env::var_os("MATCHBOX_SERVER_BIN").is_none() {
        return ours_alone(&runtime);
    }
    let mut report = String::new();
    let _ = writeln!(
        report,
        "# Signaling load: gamenet-signaling vs matchbox_server 0.15\n\n\
         `cargo xtask bench signaling`. N WebSocket clients connect at once ({} \
         connection attempts in flight) to `/bench?next=2`, form 2-player quick-match \
         rooms and pass one offer and one answer through the server, then all stay \
         connected until the last is through. Servers are separate release-built \
         processes with `RUST_LOG=warn`; the clients run in the benchmark's process on \
         the same {} CPUs. Median of {ROUNDS} rounds, each with a fresh server. \
         Server CPU is the server process's user and system time over the round, per \
         client through; memory is the server's peak resident set (`VmHWM`) and, per \
         client, the peak over its idle resident set. Joins/s is bounded by the load \
         clients, which share the CPUs: the server's CPU and memory are what it costs. \
         \"N on Redis\": N gamenet-signaling instances sharing a fresh redis-server (no \
         persistence), clients spread over them in turn, so that about half the pairs are \
         split across instances; CPU and memory are those of all these processes together. \
         Offer→answer: the round trip an offerer sees from sending its offer to getting \
         the answer, through the server (over pairs split across instances, with several), \
         pooled over the rounds.\n",
        MAIN.connecting,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _ = writeln!(report, "{HEADER}");
    // Below the ephemeral range, which the clients' own ports come from.
    let mut port = 21_000;
    let mut summary = Vec::new();
    for clients in COUNTS {
        let (ours, row) = measure(&runtime, Kind::Gamenet, clients, MAIN, &mut port);
        let _ = writeln!(report, "{row}");
        let (theirs, row) = measure(&runtime, Kind::Matchbox, clients, MAIN, &mut port);
        let _ = writeln!(report, "{row}");
        summary.push(compare(&format!("{clients} clients"), &ours, &theirs));
        for instances in 1..=3 {
            let (shared, row) = measure(&runtime, Kind::Redis(instances), clients, MAIN, &mut port);
            let _ = writeln!(report, "{row}");
            summary.push(redis_cost(clients, instances, &shared, &ours));
        }
    }
    let _ = writeln!(report, "\n{}", summary.join("\n"));
    let clients = COUNTS[COUNTS.len() - 1];
    let _ = writeln!(
        report,
        "\n## The other load shape\n\n{clients} clients, {} connection attempts in flight, \
         one signal per pair (the offer; no answer).\n\n{HEADER}",
        OTHER.connecting
    );
    let (ours, row) = measure(&runtime, Kind::Gamenet, clients, OTHER, &mut port);
    let _ = writeln!(report, "{row}");
    let (theirs, row) = measure(&runtime, Kind::Matchbox, clients, OTHER, &mut port);
    let _ = writeln!(report, "{row}");
    let _ = writeln!(
        report,
        "\n{}",
        compare(&format!("{clients} clients, other shape"), &ours, &theirs)
    );
    println!("{report}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results/signaling.md");
    std::fs::write(&path, report).expect("write the report");
    println!("written to {}", path.display());
}

/// Measures gamenet-signaling alone, both load shapes, and prints its rows.
fn ours_alone(runtime: &tokio::runtime::Runtime) {
    let mut port = 21_000;
    let mut rows = vec![HEADER.to_owned()];
    // Set to compare builds in memory only (one without Redis, say).
    let memory_only = std::env::var_os("GAMENET_BENCH_MEMORY_ONLY").is_some();
    for clients in COUNTS {
        rows.push(measure(runtime, Kind::Gamenet, clients, MAIN, &mut port).1);
        for instances in (1..=3).filter(|_| !memory_only) {
            rows.push(measure(runtime, Kind::Redis(instances), clients, MAIN, &mut port).1);
        }
    }
    let clients = COUNTS[COUNTS.len() - 1];
    rows.push(measure(runtime, Kind::Gamenet, clients, OTHER, &mut port).1);
    println!(
        "gamenet-signaling at {} alone (the last row: the other shape)\n\n{}",
        env_path("GAMENET_SIGNALING_BIN"),
        rows.join("\n")
    );
}
