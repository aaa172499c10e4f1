//! Two private networks behind NAT routers on a shared "internet" segment, all
//! in network namespaces nested inside an [`isolated`](crate::isolated) test's
//! namespace, plus a coturn TURN server on that segment.
//!
//! ```text
//!  peer a 192.168.1.2 ── nat a (MASQUERADE: port-restricted cone) 10.99.0.11 ─┐
//!                                                                           bridge 10.99.0.1
//!  peer b 192.168.2.2 ── nat b (MASQUERADE --random-fully: symmetric) 10.99.0.12 ─┘  (signaling, STUN, coturn)
//! ```
//!
//! Each NAT drops unsolicited packets from the internet side and neither private
//! network is routed from the other, so two peers can only meet through what
//! their NATs let back in: with one symmetric NAT, only through a TURN relay.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Address of the internet segment's bridge, where the servers listen.
pub const INTERNET: &str = "10.99.0.1";

/// A namespace kept alive by a `sleep` process in it, entered with `nsenter`.
pub(crate) struct Namespace(Child);

impl Namespace {
    pub(crate) fn new() -> Self {
        let child = Command::new("unshare")
            .args(["-n", "sleep", "600"])
            .spawn()
            .expect("unshare (util-linux)");
        Self(child)
    }

    pub(crate) fn pid(&self) -> String {
        self.0.id().to_string()
    }

    /// Waits until `unshare` has moved the holder into its namespace.
    pub(crate) fn wait_entered(&self) {
        let own = std::fs::read_link("/proc/self/ns/net").ok();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_link(format!("/proc/{}/ns/net", self.pid())).ok() == own {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare did not start"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Runs shell commands inside the namespace; they must succeed.
    pub(crate) fn sh(&self, script: &str) {
        run("nsenter", &["-t", &self.pid(), "-n", "sh", "-ec", script]);
    }

    /// A command that runs inside the namespace.
    pub(crate) fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command.args(["-t", &self.pid(), "-n", program]);
        command
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The two NATed sites; dropping it tears everything down.
pub struct NatLab {
    peers: [Namespace; 2],
    nats: [Namespace; 2],
}

impl NatLab {
    /// Builds the networks (inside an isolated test's namespace): site `a` behind
    /// a port-restricted cone NAT, site `b` behind a symmetric NAT.
    pub fn build() -> Self {
        run(
            "sh",
            &[
                "-ec",
                &format!(
                    "ip link add inet type bridge && ip addr add {INTERNET}/24 dev inet && ip link set inet up"
                ),
            ],
        );
        let lab = Self {
            peers: [Namespace::new(), Namespace::new()],
            nats: [Namespace::new(), Namespace::new()],
        };
        // Wait until `unshare` has moved each holder into its namespace.
        for ns in lab.peers.iter().chain(&lab.nats) {
            ns.wait_entered();
        }
        for (i, side) in ["a", "b"].into_iter().enumerate() {
            let n = i + 1;
            let (nat, peer) = (&lab.nats[i], &lab.peers[i]);
            run(
                "sh",
                &[
                    "-ec",
                    &format!(
                        "ip link add w{side} type veth peer name wi{side} && \
                 ip link set w{side} master inet up && ip link set wi{side} netns {nat} && \
                 ip link add p{side} type veth peer name l{side} && \
                 ip link set p{side} netns {peer} && ip link set l{side} netns {nat}",
                        nat = nat.pid(),
                        peer = peer.pid(),
                    ),
                ],
            );
            // Site b's NAT picks a new random port for every destination.
            let mapping = if side == "b" { "--random-fully" } else { "" };
            nat.sh(&format!(
                "ip link set lo up && ip link set wi{side} name wan && \
                 ip addr add 10.99.0.1{n}/24 dev wan && ip link set wan up && \
                 ip link set l{side} name lan && ip addr add 192.168.{n}.1/24 dev lan && \
                 ip link set lan up && echo 1 > /proc/sys/net/ipv4/ip_forward && \
                 iptables -t nat -A POSTROUTING -o wan -j MASQUERADE {mapping} && \
                 iptables -A FORWARD -i wan -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP && \
                 iptables -A INPUT -i wan -m conntrack ! --ctstate ESTABLISHED,RELATED -j DROP"
            ));
            peer.sh(&format!(
                "ip link set lo up && ip link set p{side} name eth0 && \
                 ip addr add 192.168.{n}.2/24 dev eth0 && ip link set eth0 up && \
                 ip route add default via 192.168.{n}.1"
            ));
        }
        lab
    }

    /// A command that runs on site `a` (0) or `b` (1), behind its NAT.
    pub fn on_site(&self, site: usize, program: &str) -> Command {
        self.peers[site].command(program)
    }

    /// Packets from the internet side that site `site`'s NAT dropped as
    /// unsolicited (no mapping of its own let them in), from its firewall rules.
    pub fn dropped(&self, site: usize) -> u64 {
        let output = self.nats[site]
            .command("iptables")
            .args(["-L", "-v", "-n", "-x"])
            .output()
            .expect("iptables");
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| l.contains("DROP") && !l.starts_with("Chain"))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum()
    }
}

/// coturn (Debian's `turnserver`) on the internet segment, with the shared
/// secret of its REST scheme; stopped on drop.
pub struct Coturn {
    child: Child,
    log: std::path::PathBuf,
    files: [std::path::PathBuf; 2],
}

impl Coturn {
    /// Starts `turnserver` on [`INTERNET`]:3478 and waits until it serves.
    pub fn start(secret: &str) -> Self {
        let log = std::env::temp_dir().join(format!("gamenet-coturn-{}.log", std::process::id()));
        let pid = std::env::temp_dir().join(format!("gamenet-coturn-{}.pid", std::process::id()));
        let db = std::env::temp_dir().join(format!("gamenet-coturn-{}.db", std::process::id()));
        let child = Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip",
                INTERNET,
                "--relay-ip",
                INTERNET,
                "--listening-port",
                "3478",
                "--min-port",
                "49152",
                "--max-port",
                "49252",
                "--use-auth-secret",
                "--static-auth-secret",
                secret,
                "--realm",
                "gamenet.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--simple-log",
                "--verbose",
                "--log-file",
                "stdout",
                "--pidfile",
            ])
            .arg(&pid)
            .arg("--db")
            .arg(&db)
            .stdout(std::fs::File::create(&log).expect("coturn log file"))
            .stderr(Stdio::null())
            .spawn()
            .expect("run turnserver (Debian's coturn; the README's test command installs it)");
        let coturn = Self {
            child,
            log,
            files: [pid, db],
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !coturn.log().contains("Total General servers") {
            assert!(
                std::time::Instant::now() < deadline,
                "coturn did not start:\n{}",
                coturn.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        coturn
    }

    /// Everything coturn logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for file in self.files.iter().chain([&self.log]) {
            let _ = std::fs::remove_file(file);
        }
    }
}
