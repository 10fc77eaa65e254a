//! The `cetera` daemon: parse etcd's flags, start the member, stop on
//! SIGINT/SIGTERM.

use std::process::ExitCode;

use cetera::config::{Config, ConfigOrHelp, LogFormat};
use tracing_subscriber::EnvFilter;

fn install_tracing(config: &Config) {
    let filter = EnvFilter::try_from_env("CETERA_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{},openraft=warn", config.log_level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn wait_for_signal() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn main() -> ExitCode {
    let config = match Config::from_env_and_args() {
        Ok(config) => config,
        Err(ConfigOrHelp::Clap(e)) => e.exit(),
        Err(ConfigOrHelp::Invalid(e)) => {
            eprintln!("cetera: {e}");
            return ExitCode::FAILURE;
        }
    };
    install_tracing(&config);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cetera: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let running = match cetera::server::start(config).await {
            Ok(running) => running,
            Err(e) => {
                tracing::error!(error = %e, "start-up failed");
                eprintln!("cetera: {e}");
                return ExitCode::FAILURE;
            }
        };
        tokio::select! {
            signal = wait_for_signal() => match signal {
                Ok(signal) => tracing::info!(signal, "shutting down"),
                Err(e) => tracing::error!(error = %e, "cannot listen for signals; shutting down"),
            },
            () = running.removed() => tracing::info!("removed from the cluster; shutting down"),
        }
        running.shutdown().await;
        ExitCode::SUCCESS
    })
}
