//! Games in other processes and namespaces: [`ReportedGame`] runs a headless
//! game in a child process that reports to a [`Timeline`], and
//! [`PeerNamespace`] gives one peer a network namespace of its own that a test
//! can cut off.

use std::io::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bevy_app::App;
use gamenet::rollback::Input;

use super::Timeline;
use super::report::{Printed, report_lines};

/// Set for a process that runs one reported game ([`ReportedGame::run`]):
/// the room URL, the number of players and the seed, space-separated.
pub const REPORTED_GAME_ENV: &str = "GAMENET_E2E_REPORTED_GAME";

/// A headless arena game run in another process (in a network namespace of
/// its own, say), which prints what it sees for [`Timeline::feed`]; it ends
/// when its standard input closes, or when dropped.
pub struct ReportedGame {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl ReportedGame {
    /// Starts `command` (the test binary running the test that calls
    /// [`ReportedGame::run`]) with [`REPORTED_GAME_ENV`] set.
    pub fn start(mut command: Command, url: &str, players: usize, seed: u64) -> Self {
        let mut child = command
            .env(REPORTED_GAME_ENV, format!("{url} {players} {seed}"))
            .env(crate::NETNS_ENV, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the reported game");
        let lines = crate::read_lines(child.stdout.take().expect("stdout"));
        Self { child, lines }
    }

    /// Feeds what the game printed since the last call to `timeline`, as the
    /// app at `index`.
    pub fn feed<I: Input>(&self, timeline: &mut Timeline<I>, index: usize) {
        while let Ok(line) = self.lines.try_recv() {
            timeline.feed(index, &line);
        }
    }

    /// In the process [`ReportedGame::start`] started: runs the game it asks
    /// for and prints what it sees until standard input closes (or for
    /// [`crate::TEST_LIMIT`]); does nothing elsewhere.
    pub fn run(make: impl FnOnce(&str, usize, u64) -> App) {
        let Some(args) = std::env::var_os(REPORTED_GAME_ENV) else {
            return;
        };
        let args = args.to_string_lossy().into_owned();
        let mut words = args.split(' ');
        let (Some(url), Some(players), Some(seed)) = (words.next(), words.next(), words.next())
        else {
            panic!("{REPORTED_GAME_ENV}: {args}");
        };
        let mut app = make(
            url,
            players.parse().expect("players"),
            seed.parse().expect("seed"),
        );
        let closed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = closed.clone();
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            flag.store(true, std::sync::atomic::Ordering::Relaxed);
        });
        let mut timeline = Timeline::<u8>::new(&["reported"]);
        let mut printed = Printed::default();
        let start = Instant::now();
        let mut out = Vec::new();
        while !closed.load(std::sync::atomic::Ordering::Relaxed)
            && start.elapsed() < crate::TEST_LIMIT
        {
            app.update();
            timeline.record(&[&app]);
            report_lines(&timeline, &mut printed, &mut out);
            if !out.is_empty() {
                let mut stdout = std::io::stdout().lock();
                for line in out.drain(..) {
                    let _ = writeln!(stdout, "{line}");
                }
                let _ = stdout.flush();
            }
            std::thread::sleep(Duration::from_millis(4));
        }
    }
}

impl Drop for ReportedGame {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A network namespace of its own for one peer, nested in a test's
/// ([`crate::isolated`]): a veth pair to the test's namespace, which routes
/// it to [`crate::HOST`] (the signaling server) and to the peers there.
///
/// ```text
///  test's namespace 10.78.N.1 (pvN) ── eth0 10.78.N.2 peer's namespace
/// ```
pub struct PeerNamespace {
    ns: crate::nat::Namespace,
}

impl PeerNamespace {
    /// Builds namespace `n` (1 to 200).
    pub fn build(n: u8) -> Self {
        let ns = crate::nat::Namespace::new();
        ns.wait_entered();
        crate::nat::run(
            "sh",
            &[
                "-ec",
                &format!(
                    "ip link add pv{n} type veth peer name pe{n} && \
                     ip addr add 10.78.{n}.1/24 dev pv{n} && ip link set pv{n} up && \
                     ip link set pe{n} netns {pid}",
                    pid = ns.pid()
                ),
            ],
        );
        ns.sh(&format!(
            "ip link set lo up && ip link set pe{n} name eth0 && \
             ip addr add 10.78.{n}.2/24 dev eth0 && ip link set eth0 up && \
             ip route add default via 10.78.{n}.1"
        ));
        Self { ns }
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        self.ns.command(program)
    }

    /// Drops every UDP packet into and out of the namespace (its peer's
    /// WebRTC links; the signaling server's TCP stays) until
    /// [`PeerNamespace::heal`].
    pub fn cut(&self) {
        self.ns
            .sh("iptables -w -I INPUT -p udp -j DROP && iptables -w -I OUTPUT -p udp -j DROP");
    }

    /// Ends what [`PeerNamespace::cut`] began.
    pub fn heal(&self) {
        self.ns
            .sh("iptables -w -D INPUT -p udp -j DROP && iptables -w -D OUTPUT -p udp -j DROP");
    }
}
