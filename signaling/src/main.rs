//! The `gamenet-signaling` binary: parses flags and environment, then serves;
//! `gamenet-signaling token` prints an access token.

use std::time::{Duration, SystemTime};

use clap::{Parser, Subcommand};
use gamenet_signaling::{Config, Server, auth, shutdown_signal};
use tracing_subscriber::EnvFilter;

/// mimalloc rather than glibc's allocator: each join allocates and frees many
/// small buffers (HTTP parsing, the WebSocket, JSON signals). Under the
/// signaling benchmark's load (5,000 clients on 2 cores) it cut the server's CPU
/// per join from about 104 to 90 µs and raised joins/s by a fifth, for about
/// 2 KiB more resident memory per client (12 instead of 10; matchbox_server
/// takes 135). See `benches/results/signaling.md`.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gamenet-signaling", version, about)]
struct Cli {
    #[command(flatten)]
    config: Config,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Prints an access token signed with the auth secret (`--auth-secret` or
    /// `GAMENET_AUTH_SECRET`), for scripts and tests; game backends issue them
    /// with `gamenet_signaling::auth::issue_token`.
    Token {
        /// Who the token is for: up to 64 characters of [A-Za-z0-9_-].
        #[arg(long, default_value = "")]
        subject: String,
        /// Seconds the token stays valid.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Token { subject, ttl }) = cli.command {
        let Some(secret) = cli.config.auth_secret else {
            eprintln!("no auth secret: set --auth-secret or GAMENET_AUTH_SECRET");
            return std::process::ExitCode::FAILURE;
        };
        let token = auth::issue_token(
            secret.as_bytes(),
            &subject,
            Duration::from_secs(ttl),
            SystemTime::now(),
        );
        return match token {
            Some(token) => {
                println!("{token}");
                std::process::ExitCode::SUCCESS
            }
            None => {
                eprintln!("invalid subject: up to 64 characters of [A-Za-z0-9_-]");
                std::process::ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("gamenet_signaling=info")),
        )
        .compact()
        .init();
    let result = match Server::start(&cli.config).await {
        Ok(server) => server.serve(shutdown_signal()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}
