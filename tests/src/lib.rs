//! Helpers of gamenet's end-to-end tests: isolated network namespaces, the real
//! signaling server, real WebRTC peers and a real browser.
//!
//! Every end-to-end test runs inside a network namespace of its own, with one
//! veth address ([`HOST`]) and a default route that leads nowhere, so that
//! WebRTC finds a usable interface and no packet can leave the machine.
//!
//! ```no_run
//! gamenet_e2e::isolated("my_test", || async {
//!     let url = gamenet_e2e::start_server().await;
//!     let _mesh = gamenet_e2e::join(&format!("{url}/room"), "app").unwrap();
//! });
//! ```

use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gamenet::{Event, IceServer, PeerId, PeerMesh};

pub mod faults;
#[path = "../../signaling/tests/common/load_balancer.rs"]
pub mod load_balancer;
pub mod nat;
#[path = "../../signaling/tests/common/redis_server.rs"]
pub mod redis_server;
pub mod replication;
pub mod session;

/// Set inside the namespace, so the test body knows it is there.
pub const NETNS_ENV: &str = "GAMENET_E2E_NETNS";
/// The one address of the namespace.
pub const HOST: &str = "10.77.0.1";
/// Port of the signaling server in each namespace.
pub const PORT: u16 = 3000;
/// Longest any end-to-end test body may run before it fails.
pub const TEST_LIMIT: Duration = Duration::from_secs(180);

static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Shell commands that give a fresh network namespace its address and route.
const SETUP: &str = "ip link set lo up && ip link add v0 type veth peer name v1 && \
    ip addr add 10.77.0.1/24 dev v0 && ip link set v0 up && ip link set v1 up && \
    ip route add default via 10.77.0.2 dev v0";

/// Runs `body` on a tokio runtime inside a fresh, isolated network namespace.
///
/// Outside one, it re-runs the test binary for exactly `test` under `unshare`
/// and asserts that it passed; inside, it runs `body` with a time limit.
pub fn isolated<F, Fut>(test: &str, body: F)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    if std::env::var_os(NETNS_ENV).is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        runtime.block_on(async {
            tokio::time::timeout(TEST_LIMIT, body())
                .await
                .unwrap_or_else(|_| panic!("{test} did not finish within {TEST_LIMIT:?}"));
        });
        return;
    }
    // One end-to-end test at a time: they measure timings, and on a small machine
    // two of them at once starve each other's WebRTC stacks of CPU.
    let _one_at_a_time = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // An ignored test got here because it was asked for (`--ignored`): it runs.
    let status = reexec_isolated(&[
        test,
        "--exact",
        "--include-ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    assert!(
        status.success(),
        "{test} failed inside its network namespace: {status}"
    );
}

/// Runs the current executable again with `args` inside a fresh network namespace
/// (with [`NETNS_ENV`] set) and returns how it ended.
pub fn reexec_isolated(args: &[&str]) -> std::process::ExitStatus {
    let exe = std::env::current_exe().expect("own executable path");
    let mut unshare = Command::new("unshare");
    if !is_root() {
        // An unprivileged user namespace maps us to root inside it.
        unshare.arg("-r");
    }
    unshare
        .args(["-n", "sh", "-c", &format!("{SETUP} && exec \"$0\" \"$@\"")])
        .arg(exe)
        .args(args)
        .env(NETNS_ENV, "1")
        .status()
        .expect("run unshare (util-linux) to create a network namespace")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Starts the real signaling server on [`HOST`]:[`PORT`] and returns its `ws://` URL.
pub async fn start_server() -> String {
    start_server_with(gamenet_signaling::Config::default()).await
}

/// Starts the real signaling server with `config` (its listen address is replaced).
pub async fn start_server_with(config: gamenet_signaling::Config) -> String {
    let listen = format!("0.0.0.0:{PORT}").parse().expect("address");
    let server = gamenet_signaling::Server::bind(&gamenet_signaling::Config { listen, ..config })
        .expect("bind the signaling server");
    tokio::spawn(server.serve(futures::future::pending()));
    format!("ws://{HOST}:{PORT}")
}

/// Starts the real signaling server with its own STUN server on
/// [`HOST`]:[`PORT`]` + 1` (what it hands out at `/api/ice`); returns its
/// `ws://` URL and the STUN server's `host:port`.
pub async fn start_server_with_stun() -> (String, String) {
    let stun = format!("{HOST}:{}", PORT + 1);
    let server = start_server_with(gamenet_signaling::Config {
        stun_listen: Some(stun.parse().expect("address")),
        ..gamenet_signaling::Config::default()
    })
    .await;
    (server, stun)
}

/// Joins `room_url` with host candidates only and spawns the mesh's driver.
pub fn join(room_url: &str, app_id: &str) -> Result<PeerMesh, gamenet::Error> {
    let (mesh, driver) = PeerMesh::builder(room_url)
        .app_id(app_id)
        .ice_server(IceServer::none())
        .build()?;
    tokio::spawn(driver);
    Ok(mesh)
}

/// The next event of `mesh`, failing the test after `within`.
pub async fn next_event(mesh: &mut PeerMesh, within: Duration) -> Event {
    match tokio::time::timeout(within, mesh.next_event()).await {
        Ok(Ok(event)) => event,
        Ok(Err(e)) => panic!("mesh failed: {e}"),
        Err(_) => panic!("no event within {within:?}"),
    }
}

/// Waits until `n` peers have joined `mesh` and returns them; any other event fails.
pub async fn wait_joined(mesh: &mut PeerMesh, n: usize) -> Vec<PeerId> {
    let mut peers = Vec::new();
    while peers.len() < n {
        match next_event(mesh, Duration::from_secs(30)).await {
            Event::PeerJoined(peer) => peers.push(peer),
            other => panic!("while joining: unexpected {other:?}"),
        }
    }
    peers
}

/// Keeps `mesh` running (heartbeats, handshakes) while a test waits on something
/// else; a peer leaving fails the test. Never returns.
pub async fn keep_alive(mesh: &mut PeerMesh) {
    loop {
        match mesh.next_event().await {
            Ok(Event::PeerLeft { peer, reason }) => panic!("{peer} left: {reason}"),
            Ok(_) => {}
            Err(e) => panic!("mesh failed: {e}"),
        }
    }
}

/// The body of a plain HTTP/1.1 GET of `url` (`http://host:port/path`), which
/// must answer 200.
pub async fn http_get_body(url: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("not an http:// URL: {url}"))?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut tcp = tokio::net::TcpStream::connect(host).await?;
    let request = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tcp.read_to_string(&mut response).await?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("no HTTP response from {url}"))?;
    anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "{url}: {head}");
    Ok(body.to_owned())
}

/// Milliseconds since the Unix epoch, to compare instants across processes.
pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The lines a child process prints, as they come (read on a thread).
pub(crate) fn read_lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    lines
}

/// A scripted peer (`e2e-peer`) in its own process; its output lines are collected.
pub struct PeerProcess {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl PeerProcess {
    /// The `e2e-peer` executable beside the test binary.
    pub fn executable() -> String {
        std::env::var("GAMENET_E2E_PEER").unwrap_or_else(|_| {
            std::env::current_exe()
                .ok()
                .and_then(|test| Some(test.parent()?.parent()?.join("e2e-peer")))
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "e2e-peer".into())
        })
    }

    /// Starts `e2e-peer` in `mode` (`idle` or `echo`) joining `url` as `app`.
    pub fn spawn(url: &str, app: &str, mode: &str) -> Self {
        Self::spawn_with(Command::new(Self::executable()), url, app, mode)
    }

    /// Starts `e2e-peer` through `command` (its program and first arguments
    /// set, e.g. `nsenter … e2e-peer`), with its environment.
    pub fn spawn_with(mut command: Command, url: &str, app: &str, mode: &str) -> Self {
        let mut child = command
            .args([url, app, mode, "60"])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn e2e-peer");
        let lines = read_lines(child.stdout.take().expect("stdout"));
        Self { child, lines }
    }

    /// Sends a signal (`KILL`, `STOP`, …) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The next output line that starts with `prefix`, failing after `within`.
    pub fn wait_line(&self, prefix: &str, within: Duration) -> String {
        self.try_wait_line(prefix, within)
            .unwrap_or_else(|| panic!("e2e-peer printed no {prefix:?} line within {within:?}"))
    }

    /// The next output line that starts with `prefix`, or `None` after `within`.
    pub fn try_wait_line(&self, prefix: &str, within: Duration) -> Option<String> {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Some(line),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One browser scenario: `node tests/browser/<script> <name> <server> <artifacts>`,
/// driving Debian's Chromium against the server at [`HOST`]:[`PORT`]. Its
/// output lines are printed and kept; screenshots go to `target/browser-artifacts`.
pub struct Scenario {
    name: String,
    child: tokio::process::Child,
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    seen: Vec<String>,
}

impl Scenario {
    /// Starts scenario `name` of `script`.
    pub fn start(script: &str, name: &str) -> Self {
        use tokio::io::AsyncBufReadExt;
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let mut child = tokio::process::Command::new("node")
            .arg(dir.join("browser").join(script))
            .arg(name)
            .arg(format!("http://{HOST}:{PORT}"))
            .arg(dir.join("../target/browser-artifacts"))
            .stdout(Stdio::piped())
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("run node (the README's test command installs it)");
        let stdout = child.stdout.take().expect("stdout");
        let stdin = child.stdin.take();
        Self {
            name: name.to_owned(),
            child,
            stdin,
            lines: tokio::io::BufReader::new(stdout).lines(),
            seen: Vec::new(),
        }
    }

    /// The next line the scenario printed; `None` once it ended.
    pub async fn next_line(&mut self) -> Option<String> {
        let line = self.lines.next_line().await.ok().flatten()?;
        println!("  node: {line}");
        self.seen.push(line.clone());
        Some(line)
    }

    /// Writes `line` to the scenario's standard input (scenarios that wait
    /// for the test read it).
    pub async fn tell(&mut self, line: &str) {
        use tokio::io::AsyncWriteExt;
        if let Some(stdin) = &mut self.stdin {
            stdin
                .write_all(format!("{line}\n").as_bytes())
                .await
                .expect("write to the scenario");
        }
    }

    /// The next line starting with `prefix`; fails if the scenario ends first.
    pub async fn wait_line(&mut self, prefix: &str) -> String {
        loop {
            match self.next_line().await {
                Some(line) if line.starts_with(prefix) => return line,
                Some(_) => {}
                None => panic!("browser scenario {} ended before {prefix:?}", self.name),
            }
        }
    }

    /// Waits for the scenario to end, asserts that it passed and returns every
    /// line it printed.
    pub async fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        while self.next_line().await.is_some() {}
        let status = self.child.wait().await.expect("node");
        assert!(
            status.success(),
            "browser scenario {} failed: {status}",
            self.name
        );
        assert!(self.seen.iter().any(|l| l == "scenario passed"));
        self.seen
    }
}

/// Starts the real signaling server serving `target/<dir>` (built by `cargo
/// xtask <dir>`, which the README's test command runs) and returns its `ws://`
/// URL; fails the test if `target/<dir>/<built>` is missing.
pub async fn start_server_serving(dir: &str, built: &str) -> String {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(dir);
    assert!(
        path.join(built).exists(),
        "target/{dir} is not built: run `cargo xtask {dir}` (or the README's test command)"
    );
    start_server_with(gamenet_signaling::Config {
        web_dir: Some(path),
        // Pages ask the server for ICE servers (`/api/ice`): its own STUN.
        stun_listen: Some(format!("{HOST}:3478").parse().expect("address")),
        ..Default::default()
    })
    .await
}

/// The signaling server on a runtime of its own, so that it can vanish at
/// once, like a killed process (every connection dropped without a word, its
/// tasks stopped, so with Redis its announcement expires), and come back.
pub struct KillableServer {
    stop: mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl KillableServer {
    /// Starts one with `config` (on Redis if `config.redis` is set) and waits
    /// until it listens.
    pub fn start(config: gamenet_signaling::Config) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        let (up, is_up) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .expect("server runtime");
            let server = runtime
                .block_on(gamenet_signaling::Server::start(&config))
                .expect("start the signaling server");
            runtime.spawn(server.serve(futures::future::pending()));
            let _ = up.send(());
            let _ = stopped.recv();
            runtime.shutdown_background();
        });
        is_up.recv().expect("server started");
        Self { stop, thread }
    }

    /// Kills it.
    pub fn kill(self) {
        self.stop.send(()).expect("server running");
        self.thread.join().expect("server thread");
    }
}

/// Starts a signaling instance on `port` keeping its rooms in Redis at
/// `redis`; its `ws://` URL.
pub async fn start_instance(port: u16, redis: &str) -> String {
    let config = gamenet_signaling::Config {
        listen: format!("0.0.0.0:{port}").parse().expect("address"),
        redis: Some(redis.to_owned()),
        ..gamenet_signaling::Config::default()
    };
    let server = gamenet_signaling::Server::start(&config)
        .await
        .expect("start a signaling instance on Redis");
    tokio::spawn(server.serve(futures::future::pending()));
    format!("ws://{HOST}:{port}")
}
