//! Server settings: every flag, its environment variable and its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Server settings, from flags or environment variables.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    /// Address to listen on (HTTP and WebSocket).
    #[arg(long, env = "GAMENET_LISTEN", default_value = "0.0.0.0:3000")]
    pub listen: SocketAddr,
    /// Directory of static files (a web build) served to plain HTTP requests.
    #[arg(long, env = "GAMENET_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Most peers in one room (any kind).
    #[arg(long, env = "GAMENET_MAX_ROOM_SIZE", default_value_t = 16)]
    pub max_room_size: usize,
    /// Most lobbies at once.
    #[arg(long, env = "GAMENET_MAX_LOBBIES", default_value_t = 10_000)]
    pub max_lobbies: usize,
    /// Most lobbies created from one address (an IPv6 address by its /64) that
    /// exist at once (0: no limit).
    #[arg(long, env = "GAMENET_MAX_LOBBIES_PER_ADDRESS", default_value_t = 20)]
    pub max_lobbies_per_address: usize,
    /// Seconds an empty lobby lives on before it is removed.
    #[arg(long, env = "GAMENET_LOBBY_TTL", default_value = "600", value_parser = parse_seconds)]
    pub lobby_ttl: Duration,
    /// Most WebSocket clients at once.
    #[arg(long, env = "GAMENET_MAX_CLIENTS", default_value_t = 50_000)]
    pub max_clients: usize,
    /// Most open TCP connections (HTTP and WebSocket) from one address, an
    /// IPv6 address by its /64 (0: no limit); past it, new connections get a
    /// 429 and are closed. Not applied with `--trust-proxy`, where every
    /// connection comes from the proxy.
    #[arg(
        long,
        env = "GAMENET_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_connections_per_address: usize,
    /// Seconds a connection may take to send a request's headers (and an idle
    /// HTTP keep-alive connection may wait for its next request) before it is
    /// closed.
    #[arg(long, env = "GAMENET_HEADER_TIMEOUT", default_value = "10", value_parser = parse_seconds)]
    pub header_timeout: Duration,
    /// New WebSocket connections and API requests (lobby creation, listing
    /// and lookup, ICE servers) per second from one address, an IPv6 address
    /// by its /64 (0: no limit).
    #[arg(long, env = "GAMENET_RATE", default_value_t = 5.0)]
    pub rate: f64,
    /// How many of those one address may make at once.
    #[arg(long, env = "GAMENET_RATE_BURST", default_value_t = 20)]
    pub rate_burst: u32,
    /// Largest WebSocket message accepted from a client, in bytes.
    #[arg(long, env = "GAMENET_MAX_MESSAGE", default_value_t = 64 * 1024)]
    pub max_message: usize,
    /// Seconds a WebSocket may stay silent before it is closed (matchbox
    /// clients send a keep-alive every 10 s).
    #[arg(long, env = "GAMENET_IDLE_TIMEOUT", default_value = "60", value_parser = parse_seconds)]
    pub idle_timeout: Duration,
    /// Signals per second one client may send (0: no limit); past it, and past
    /// `--signal-burst` at once, the client is closed (1008).
    #[arg(long, env = "GAMENET_SIGNAL_RATE", default_value_t = 20.0)]
    pub signal_rate: f64,
    /// How many signals one client may send at once.
    #[arg(long, env = "GAMENET_SIGNAL_BURST", default_value_t = 200)]
    pub signal_burst: u32,
    /// Bytes of signals per second one client may send (0: no limit); past
    /// it, and past `--signal-byte-burst` at once, the client is closed (1008).
    #[arg(long, env = "GAMENET_SIGNAL_BYTE_RATE", default_value_t = 16.0 * 1024.0)]
    pub signal_byte_rate: f64,
    /// Bytes of signals one client may send at once: a handshake with each of
    /// 15 room-mates takes about 70 KiB.
    #[arg(long, env = "GAMENET_SIGNAL_BYTE_BURST", default_value_t = 256 * 1024)]
    pub signal_byte_burst: u32,
    /// Messages queued for one client; a client whose queue is full is not
    /// keeping up and is closed (4002) rather than missing messages.
    #[arg(long, env = "GAMENET_SEND_QUEUE", default_value_t = 1024)]
    pub send_queue: usize,
    /// Bytes queued for one client; past it, as with `--send-queue`, the
    /// client is closed (4002).
    #[arg(long, env = "GAMENET_SEND_QUEUE_BYTES", default_value_t = 256 * 1024)]
    pub send_queue_bytes: usize,
    /// Seconds a write to a WebSocket client may take; a client that reads
    /// too slowly for that is closed (4002), and its seat freed.
    #[arg(long, env = "GAMENET_WRITE_TIMEOUT", default_value = "10", value_parser = parse_seconds)]
    pub write_timeout: Duration,
    /// Shared secret for access tokens; when set, WebSocket connections and API
    /// requests need a valid token (`?token=` or `Authorization: Bearer`).
    #[arg(long, env = "GAMENET_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,
    /// Web origins allowed to connect, comma-separated (`https://game.example.com`);
    /// none allows all. Requests without an `Origin` header (native clients) are
    /// always allowed.
    #[arg(long, env = "GAMENET_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Take the client address from the last `X-Forwarded-For` entry (behind a
    /// reverse proxy you trust; otherwise clients could pick their address).
    #[arg(long, env = "GAMENET_TRUST_PROXY")]
    pub trust_proxy: bool,
    /// UDP address of the STUN responder, or `off`.
    #[arg(long, env = "GAMENET_STUN_LISTEN", default_value = "0.0.0.0:3478", value_parser = parse_optional_addr)]
    pub stun_listen: OptionalAddr,
    /// Host name or address clients reach this server's STUN port at (default:
    /// the host of each `/api/ice` request).
    #[arg(long, env = "GAMENET_PUBLIC_HOST")]
    pub public_host: Option<String>,
    /// TURN server URLs handed to clients, comma-separated
    /// (`turn:turn.example.com:3478?transport=udp`).
    #[arg(long, env = "GAMENET_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`, to hand out TURN credentials in its REST scheme.
    #[arg(long, env = "GAMENET_TURN_SECRET", hide_env_values = true)]
    pub turn_secret: Option<String>,
    /// Seconds TURN credentials stay valid.
    #[arg(long, env = "GAMENET_TURN_TTL", default_value = "3600", value_parser = parse_seconds)]
    pub turn_ttl: Duration,
    /// Secret from which a client's `?key=` derives its peer id, so that a client
    /// that reconnects with its key gets its id back, also from a restarted
    /// server with the same secret (default: a random secret per process).
    #[arg(long, env = "GAMENET_RESUME_SECRET", hide_env_values = true)]
    pub resume_secret: Option<String>,
    /// Seconds a client with a key keeps its place in its room after its
    /// WebSocket drops, unannounced, waiting for it to reconnect.
    #[arg(long, env = "GAMENET_RESUME_GRACE", default_value = "20", value_parser = parse_seconds)]
    pub resume_grace: Duration,
    /// Redis to keep rooms, quick-match, lobbies, the client count and the
    /// limits per address in, shared with every other instance using it
    /// (`redis://host:port/db`); none: this process's memory.
    #[arg(long, env = "GAMENET_REDIS", hide_env_values = true)]
    pub redis: Option<String>,
    /// Put before every Redis key and channel of this deployment.
    #[arg(long, env = "GAMENET_REDIS_PREFIX", default_value = "gn:")]
    pub redis_prefix: String,
    /// With Redis: seconds an instance stays alive to the others without
    /// announcing itself again (it does so three times as often). When one
    /// dies, the others take its clients out of their rooms after this long,
    /// unless they resumed on another instance meanwhile.
    #[arg(long, env = "GAMENET_INSTANCE_TTL", default_value = "5", value_parser = parse_seconds)]
    pub instance_ttl: Duration,
}

/// Parses whole or fractional seconds.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("not a number of seconds: {s}"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// An address or none. An alias, so that clap's derive takes the whole
/// `Option` from [`parse_optional_addr`] instead of making the flag optional.
type OptionalAddr = Option<SocketAddr>;

/// Parses a socket address, or `off` for none.
fn parse_optional_addr(s: &str) -> Result<Option<SocketAddr>, String> {
    if s.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    s.parse().map(Some).map_err(|e| format!("{s}: {e}"))
}

impl Default for Config {
    /// The binary's defaults, except that no STUN port is opened (`stun_listen`
    /// is `None`), so that several servers can be embedded side by side.
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 3000)),
            web_dir: None,
            max_room_size: 16,
            max_lobbies: 10_000,
            max_lobbies_per_address: 20,
            lobby_ttl: Duration::from_secs(600),
            max_clients: 50_000,
            max_connections_per_address: 256,
            header_timeout: Duration::from_secs(10),
            rate: 5.0,
            rate_burst: 20,
            max_message: 64 * 1024,
            idle_timeout: Duration::from_secs(60),
            signal_rate: 20.0,
            signal_burst: 200,
            signal_byte_rate: 16.0 * 1024.0,
            signal_byte_burst: 256 * 1024,
            send_queue: 1024,
            send_queue_bytes: 256 * 1024,
            write_timeout: Duration::from_secs(10),
            auth_secret: None,
            allowed_origins: Vec::new(),
            trust_proxy: false,
            stun_listen: None,
            public_host: None,
            turn_urls: Vec::new(),
            turn_secret: None,
            turn_ttl: Duration::from_secs(3600),
            resume_secret: None,
            resume_grace: Duration::from_secs(20),
            redis: None,
            redis_prefix: "gn:".into(),
            instance_ttl: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        config: Config,
    }

    #[test]
    fn flags_parse_into_a_config() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "gamenet-signaling",
            "--stun-listen",
            "off",
            "--idle-timeout",
            "0.5",
            "--allowed-origins",
            "https://a.example,https://b.example",
            "--turn-urls",
            "turn:t.example:3478",
        ])
        .unwrap();
        assert_eq!(cli.config.stun_listen, None);
        assert_eq!(cli.config.idle_timeout, Duration::from_millis(500));
        assert_eq!(cli.config.allowed_origins.len(), 2);
        assert_eq!(cli.config.turn_urls, ["turn:t.example:3478"]);
        let defaults = Cli::try_parse_from(["gamenet-signaling"]).unwrap().config;
        assert_eq!(defaults.stun_listen, Some("0.0.0.0:3478".parse().unwrap()));
        assert_eq!(defaults.lobby_ttl, Duration::from_secs(600));
        // The binary's defaults are the library's (but for the STUN port).
        let library = Config::default();
        assert_eq!(
            (
                defaults.header_timeout,
                defaults.write_timeout,
                defaults.max_connections_per_address,
                defaults.max_lobbies_per_address,
                defaults.send_queue,
                defaults.send_queue_bytes,
                defaults.signal_byte_rate,
                defaults.signal_byte_burst,
            ),
            (
                library.header_timeout,
                library.write_timeout,
                library.max_connections_per_address,
                library.max_lobbies_per_address,
                library.send_queue,
                library.send_queue_bytes,
                library.signal_byte_rate,
                library.signal_byte_burst,
            )
        );
        assert!(Cli::try_parse_from(["gamenet-signaling", "--stun-listen", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["gamenet-signaling", "--idle-timeout", "-1"]).is_err());
    }

    /// The production guide, whose command lines and flags are checked here.
    const GUIDE: &str = include_str!("../../docs/production.md");

    /// Words of a shell line: split on spaces, `'…'` kept whole.
    fn words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quoted) = (Vec::new(), String::new(), false);
        for c in line.chars() {
            match c {
                '\'' => quoted = !quoted,
                ' ' if !quoted => {
                    if !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                }
                c => word.push(c),
            }
        }
        words.extend((!word.is_empty()).then_some(word));
        words
    }

    #[test]
    fn the_production_guides_command_lines_parse() {
        // Commands in its `sh` blocks, continued lines joined.
        let mut commands = Vec::new();
        let mut in_sh = false;
        let mut line = String::new();
        for l in GUIDE.lines() {
            match l.trim() {
                "```sh" => in_sh = true,
                "```" => in_sh = false,
                t if in_sh => {
                    line.push_str(t.trim_end_matches('\\'));
                    line.push(' ');
                    if !t.ends_with('\\') {
                        commands.push(std::mem::take(&mut line));
                    }
                }
                _ => {}
            }
        }
        let mut parsed = 0;
        for command in &commands {
            // `VAR=value gamenet-signaling FLAGS…`, but for `--help`.
            let words: Vec<String> = words(command)
                .into_iter()
                .skip_while(|w| w.contains('=') && !w.starts_with('-'))
                .collect();
            if !words
                .first()
                .is_some_and(|w| w.ends_with("gamenet-signaling"))
                || words.iter().any(|w| w == "--help")
            {
                continue;
            }
            let config = match Cli::try_parse_from(&words) {
                Ok(cli) => cli.config,
                Err(e) => panic!("the guide's `{command}` does not parse: {e}"),
            };
            assert_eq!(config.stun_listen, Some("0.0.0.0:3479".parse().unwrap()));
            assert_eq!(config.turn_urls.len(), 2, "{:?}", config.turn_urls);
            parsed += 1;
        }
        assert_eq!(parsed, 1, "the guide's server command line: {commands:?}");
    }

    #[test]
    fn every_flag_the_production_guide_names_is_the_servers() {
        use clap::CommandFactory;
        let command = Cli::command();
        let known: Vec<&str> = command
            .get_arguments()
            .filter_map(|a| a.get_long())
            .collect();
        // Not the server's: cargo's, `--help`, and the token command's.
        let others = ["release", "help", "subject", "ttl"];
        let mut named = 0;
        for word in GUIDE.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-')) {
            let Some(flag) = word.strip_prefix("--") else {
                continue;
            };
            if !flag.starts_with(|c: char| c.is_ascii_lowercase()) || others.contains(&flag) {
                continue;
            }
            assert!(
                known.contains(&flag),
                "the guide names --{flag}, which the server does not take"
            );
            named += 1;
        }
        assert!(named > 30, "the guide names {named} of the server's flags");
    }
}
