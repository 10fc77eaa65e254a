//! cetera-discovery: the service behind `--discovery=<url>`.
//!
//! `/new?size=N` hands out a token URL; etcd (and cetera) members started
//! with that URL register themselves under the token and wait until `N`
//! have, speaking the subset of etcd's v2 keys API that etcd's discovery
//! client uses. Tokens live in SQLite, so they survive a restart, and expire
//! after `--token-ttl`.
//!
//! Modules:
//! - [`config`]: flags and `CETERA_DISCOVERY_*` variables.
//! - [`store`]: tokens, keys, indexes, history and long polls in SQLite.
//! - [`api`]: the warp routes (translation only).
//! - [`v2`]: etcd's v2 response and error bodies.
//! - [`metrics`]: counters and the `/metrics` text.

pub mod api;
pub mod config;
pub mod metrics;
pub mod store;
pub mod v2;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{Options, Store, StoreError};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening the token database in {dir}: {source}")]
    Store { dir: String, source: StoreError },
    #[error("listening on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound, not yet serving, discovery service.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<api::State>,
    collect_every: Duration,
}

impl Server {
    /// Opens the database and binds the listen address.
    pub async fn bind(config: &Config) -> Result<Server, StartError> {
        let metrics = Arc::new(Metrics::default());
        let options = Options {
            token_ttl: config.token_ttl,
            max_size: config.max_size,
            max_tokens: config.max_tokens,
            max_waiters: config.max_waiters,
        };
        let store = Store::open(&config.data_dir, options, metrics.clone())
            .await
            .map_err(|source| StartError::Store {
                dir: config.data_dir.display().to_string(),
                source,
            })?;
        let listener = tokio::net::TcpListener::bind(config.listen_addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.listen_addr,
                source,
            })?;
        Ok(Server {
            listener,
            state: Arc::new(api::State {
                store,
                metrics,
                advertise_url: config.advertise_url.clone(),
                wait_timeout: config.wait_timeout,
            }),
            collect_every: collect_interval(config.token_ttl),
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    /// Serves until `shutdown` completes; expired tokens are collected
    /// in the background meanwhile. Open long polls are simply dropped at
    /// shutdown (etcd's client retries them).
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        let store = self.state.store.clone();
        let every = self.collect_every;
        let collector = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.collect_expired().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(tokens = n, "collected expired tokens"),
                    Err(e) => tracing::warn!(error = %e, "collecting expired tokens failed"),
                }
            }
        });
        let server = warp::serve(api::routes(self.state)).incoming(self.listener);
        tokio::select! {
            () = server.run() => {}
            () = shutdown => tracing::info!("shutting down"),
        }
        collector.abort();
    }
}

/// How often expired tokens are looked for: a tenth of the TTL, between 1 s
/// and 1 min (expired tokens are invisible at once; this only frees space).
fn collect_interval(ttl: Duration) -> Duration {
    (ttl / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_interval_is_bounded() {
        assert_eq!(
            collect_interval(Duration::from_secs(2)),
            Duration::from_secs(1)
        );
        assert_eq!(
            collect_interval(Duration::from_secs(300)),
            Duration::from_secs(30)
        );
        assert_eq!(
            collect_interval(Duration::from_secs(7 * 86_400)),
            Duration::from_secs(60)
        );
    }
}
