//! The `gamenet-signaling` binary: parses flags and environment, then serves.

use clap::Parser;
use gamenet_signaling::{Config, Server, shutdown_signal};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("gamenet_signaling=info")),
        )
        .compact()
        .init();
    let config = Config::parse();
    let result = match Server::bind(&config) {
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
