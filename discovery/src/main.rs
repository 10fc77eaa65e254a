//! `cetera-discovery`: parse the flags, start logging, serve until SIGTERM or
//! Ctrl-C.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use discovery::Server;
use discovery::config::{Args, Config};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let config = match Config::from_args(Args::parse()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("cetera-discovery: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match EnvFilter::try_new(&config.log_level) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!("cetera-discovery: --log-level {:?}: {e}", config.log_level);
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cetera-discovery: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let server = match Server::bind(&config).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("cetera-discovery: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            listen = %server.local_addr().map_or_else(|| config.listen_addr.to_string(), |a| a.to_string()),
            advertise_url = %config.advertise_url,
            data_dir = %config.data_dir.display(),
            token_ttl = ?config.token_ttl,
            "cetera-discovery serving"
        );
        server.serve(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => std::future::pending().await,
    }
}
