//! The load generator behind `cetera-bench` and `ceteractl bench`: open
//! connections, run one workload with many clients, measure latencies and
//! report them.
//!
//! It speaks only etcd's public v3 gRPC API (never a cetera internal), so
//! the same load runs against real etcd and against cetera. It never
//! parses command lines or prints: each binary maps its own flags onto a
//! [`Plan`] and renders the [`Report`] as it likes.
//!
//! - [`conn`]: channels (plain or TLS), spreading them over endpoints, the
//!   auth session their requests carry the token of, finding the leader.
//! - [`keys`]: the preallocated keyspace and how clients pick keys.
//! - [`workload`]: the clients, their unmeasured setup and measured loop.
//! - [`stats`]: per-client histograms, the merged report and its renderings.

pub mod conn;
pub mod keys;
pub mod stats;
pub mod workload;

pub use conn::{Connections, Dialer};
pub use keys::KeySpace;
pub use stats::{Report, Stats};
pub use workload::{Kind, Plan};

/// Why a benchmark could not run (failed requests during the measured
/// phase are counted, not errors).
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("no endpoint given")]
    NoEndpoint,
    #[error("invalid endpoint {endpoint:?}: {source}")]
    InvalidEndpoint {
        endpoint: String,
        source: tonic::transport::Error,
    },
    #[error("cannot connect to {url}: {source}")]
    Connect {
        url: String,
        source: tonic::transport::Error,
    },
    /// An endpoint needs TLS but the dialer was given no TLS configuration.
    #[error("{endpoint} needs TLS, which this client was not configured for")]
    NoTls { endpoint: String },
    /// Authenticate failed (wrong password, unknown user, ...).
    #[error("authenticating as {user:?}: {}", .source.message())]
    Authenticate { user: String, source: tonic::Status },
    #[error("no endpoint reports itself as the leader{0}")]
    NoLeader(String),
    #[error(
        "--key-size {key_size} is too small for a keyspace of {count} keys: need at least {digits} bytes"
    )]
    KeySizeTooSmall {
        key_size: usize,
        count: u64,
        digits: usize,
    },
    #[error("a keyspace of {0} keys does not fit in memory")]
    KeySpaceTooLarge(u64),
    #[error(
        "the watch workload needs at least one key per client ({clients} clients, {keys} keys)"
    )]
    TooFewKeysToWatch { clients: usize, keys: usize },
    /// A request of the unmeasured setup phase failed.
    #[error("{what}: {source}")]
    Setup { what: String, source: tonic::Status },
}
