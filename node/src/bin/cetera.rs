//! The `cetera` daemon: parse etcd's flags, start the member, stop on
//! SIGINT/SIGTERM.

use std::process::ExitCode;

use cetera::config::{Config, ConfigOrHelp, LogFormat};
use tracing_subscriber::EnvFilter;

/// openraft's log lines below `--log-level` and, unless debugging, its
/// replication ones: it logs every failed request to a peer that is down
/// (five lines every half second); the network layer logs peer outages
/// itself, as etcd does (`PeerStats::record_failure`). `CETERA_LOG`, a full
/// filter, overrides this.
fn default_filter(log_level: &str) -> String {
    let mut filter = format!("{log_level},openraft=warn");
    if !matches!(log_level, "debug" | "trace") {
        filter.push_str(
            ",openraft::replication=off,openraft::engine::handler::replication_handler=off",
        );
    }
    filter
}

fn install_tracing(config: &Config) {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_from_env("CETERA_LOG")
        .unwrap_or_else(|_| EnvFilter::new(default_filter(&config.log_level)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a person at a terminal, never into log files.
        .with_ansi(std::io::stderr().is_terminal())
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

#[cfg(test)]
mod tests {
    use super::default_filter;

    #[test]
    fn openraft_replication_lines_show_only_when_debugging() {
        for level in ["info", "warn", "error"] {
            let filter = default_filter(level);
            assert!(filter.starts_with(&format!("{level},openraft=warn")));
            assert!(filter.contains("openraft::replication=off"), "{filter}");
        }
        assert_eq!(default_filter("debug"), "debug,openraft=warn");
        // Every default is a filter tracing accepts.
        for level in ["debug", "info"] {
            assert!(tracing_subscriber::EnvFilter::try_new(default_filter(level)).is_ok());
        }
    }
}
