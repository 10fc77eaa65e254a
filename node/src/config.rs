//! The daemon's configuration: etcd's flags and `ETCD_*` variables parsed
//! into [`Args`], then validated once into a [`Config`].
//!
//! Everything a bad flag can get wrong is caught here, before anything is
//! opened or bound, and reported in one line.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::cluster::{ClusterError, InitialCluster};

/// etcd's own limit on `--max-request-bytes` beyond which gRPC refuses.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// `cetera`: an etcd-compatible key-value store.
///
/// Every flag can also be set through the environment, as `ETCD_<FLAG>`
/// with dashes as underscores (`--initial-cluster` is
/// `ETCD_INITIAL_CLUSTER`), so existing etcd unit files work unchanged.
#[derive(Debug, Clone, Parser)]
#[command(name = "cetera", version = concat!(env!("CARGO_PKG_VERSION"), " (etcd API ", crate::etcd_version!(), ")"))]
pub struct Args {
    /// Human-readable name of this member.
    #[arg(long, env = "ETCD_NAME", default_value = "default")]
    pub name: String,

    /// Path to the data directory [default: <name>.cetera].
    #[arg(long, env = "ETCD_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// URLs to listen on for client traffic (gRPC and HTTP share them).
    #[arg(
        long,
        env = "ETCD_LISTEN_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    pub listen_client_urls: String,

    /// Client URLs advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_ADVERTISE_CLIENT_URLS",
        default_value = "http://127.0.0.1:2379"
    )]
    pub advertise_client_urls: String,

    /// URLs to listen on for peer traffic.
    #[arg(
        long,
        env = "ETCD_LISTEN_PEER_URLS",
        default_value = "http://127.0.0.1:2380"
    )]
    pub listen_peer_urls: String,

    /// This member's peer URLs, advertised to the rest of the cluster.
    #[arg(
        long,
        env = "ETCD_INITIAL_ADVERTISE_PEER_URLS",
        default_value = "http://127.0.0.1:2380"
    )]
    pub initial_advertise_peer_urls: String,

    /// Initial cluster configuration for bootstrapping, `name=url,...`
    /// [default: <name>=<initial-advertise-peer-urls>].
    #[arg(long, env = "ETCD_INITIAL_CLUSTER")]
    pub initial_cluster: Option<String>,

    /// `new` bootstraps a cluster; `existing` joins one.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_STATE",
        value_enum,
        default_value = "new"
    )]
    pub initial_cluster_state: ClusterState,

    /// Token that makes ids unique to this cluster during bootstrap.
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, env = "ETCD_HEARTBEAT_INTERVAL", default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to time out.
    #[arg(long, env = "ETCD_ELECTION_TIMEOUT", default_value_t = 1000)]
    pub election_timeout: u64,

    /// Number of committed entries that trigger a snapshot.
    #[arg(long, env = "ETCD_SNAPSHOT_COUNT", default_value_t = 100_000)]
    pub snapshot_count: u64,

    /// Maximum client request size in bytes the server will accept.
    #[arg(long, env = "ETCD_MAX_REQUEST_BYTES", default_value_t = 1_572_864)]
    pub max_request_bytes: usize,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long, env = "ETCD_MAX_TXN_OPS", default_value_t = 128)]
    pub max_txn_ops: usize,

    /// Raise an alarm when the backend size exceeds this many bytes
    /// (0 means the default, 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,

    /// How often watches that asked for progress notifications get one
    /// (a duration such as 10m, 30s or 500ms).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// Serve the v2 API (`/v2/keys`, `/v2/members`, `/v2/machines`,
    /// `/v2/stats/store`) on the client URLs, as etcd 3.4's flag does.
    #[arg(
        long,
        env = "ETCD_ENABLE_V2",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub enable_v2: bool,

    /// Log level: debug, info, warn or error.
    #[arg(long, env = "ETCD_LOG_LEVEL", default_value = "info")]
    pub log_level: String,

    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, env = "ETCD_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClusterState {
    New,
    Existing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A configuration that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "conflicting environment variable {env} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
    )]
    Shadowed { env: String },
    #[error("invalid URL {url:?} in {flag}: {reason}")]
    BadUrl {
        flag: &'static str,
        url: String,
        reason: String,
    },
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(
        "--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]"
    )]
    ElectionTooShort { election: u64, heartbeat: u64 },
    #[error("--election-timeout[{0}ms] is too long, and should be set less than 50000ms")]
    ElectionTooLong(u64),
    #[error("--{flag} must be positive")]
    NotPositive { flag: &'static str },
}

/// The validated configuration the node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client: Vec<SocketAddr>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer: Vec<SocketAddr>,
    pub advertise_peer_urls: Vec<String>,
    pub initial_cluster: InitialCluster,
    /// `new` bootstraps; `existing` joins a cluster that added this member.
    pub initial_cluster_state: ClusterState,
    pub cluster_token: String,
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    pub quota_backend_bytes: u64,
    pub watch_progress_notify_interval: Duration,
    /// Whether the v2 API is served (the v2 keyspace is replicated either
    /// way).
    pub enable_v2: bool,
    pub log_level: String,
    pub log_format: LogFormat,
}

impl Config {
    /// The largest gRPC message accepted, as etcd sizes it.
    pub fn grpc_max_recv_bytes(&self) -> usize {
        self.max_request_bytes + GRPC_OVERHEAD_BYTES
    }

    /// How long a request may wait for its proposal, as etcd computes it.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(5) + 2 * self.election_timeout
    }

    /// Parses the process's arguments and environment.
    pub fn from_env_and_args() -> Result<Config, ConfigOrHelp> {
        let matches = Args::command()
            .try_get_matches()
            .map_err(ConfigOrHelp::Clap)?;
        Config::from_matches(&matches).map_err(ConfigOrHelp::Invalid)
    }

    /// Validates parsed arguments (exposed for tests).
    pub fn from_matches(matches: &ArgMatches) -> Result<Config, ConfigError> {
        reject_shadowed_env(matches)?;
        let args = Args::from_arg_matches(matches).map_err(|e| ConfigError::BadUrl {
            flag: "arguments",
            url: String::new(),
            reason: e.to_string(),
        })?;
        Config::try_from(args)
    }
}

/// Either clap's own answer (help, version, usage error) or a bad config.
#[derive(Debug)]
pub enum ConfigOrHelp {
    Clap(clap::Error),
    Invalid(ConfigError),
}

/// etcd refuses a setting given both as a flag and as `ETCD_*`.
fn reject_shadowed_env(matches: &ArgMatches) -> Result<(), ConfigError> {
    let command = Args::command();
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let from_flag =
            matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine);
        if from_flag && std::env::var_os(env).is_some() {
            return Err(ConfigError::Shadowed {
                env: env.to_string_lossy().into_owned(),
            });
        }
    }
    Ok(())
}

/// Parses a Go-style duration (`10m`, `1h30m`, `500ms`) as etcd's flags take.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration =
        humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))?;
    if duration.is_zero() {
        return Err("the duration must be positive".into());
    }
    Ok(duration)
}

fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

/// Resolves `http://host:port` to the addresses to bind.
fn bind_addresses(flag: &'static str, list: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let mut addrs = Vec::new();
    for url in split_urls(list) {
        let bad = |reason: &str| ConfigError::BadUrl {
            flag,
            url: url.clone(),
            reason: reason.to_string(),
        };
        let host_port = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => return Err(bad("TLS is not supported yet; use http://")),
            Some((scheme, _)) if scheme.starts_with("unix") => {
                return Err(bad("unix sockets are not supported"));
            }
            _ => return Err(bad("expected http://host:port")),
        };
        if host_port.contains('/') {
            return Err(bad("a listen URL cannot have a path"));
        }
        let resolved = host_port
            .to_socket_addrs()
            .map_err(|e| bad(&e.to_string()))?;
        let first = resolved
            .into_iter()
            .next()
            .ok_or_else(|| bad("host does not resolve"))?;
        addrs.push(first);
    }
    if addrs.is_empty() {
        return Err(ConfigError::BadUrl {
            flag,
            url: list.to_string(),
            reason: "no URL given".into(),
        });
    }
    Ok(addrs)
}

/// Checks advertised URLs are well-formed `http://host:port`.
fn advertised(flag: &'static str, list: &str) -> Result<Vec<String>, ConfigError> {
    let urls = split_urls(list);
    for url in &urls {
        let ok = url
            .strip_prefix("http://")
            .and_then(|rest| rest.rsplit_once(':'))
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(ConfigError::BadUrl {
                flag,
                url: url.clone(),
                reason: "expected http://host:port".into(),
            });
        }
    }
    if urls.is_empty() {
        return Err(ConfigError::BadUrl {
            flag,
            url: list.to_string(),
            reason: "no URL given".into(),
        });
    }
    Ok(urls)
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Config, ConfigError> {
        for (flag, value) in [
            ("heartbeat-interval", args.heartbeat_interval),
            ("election-timeout", args.election_timeout),
            ("snapshot-count", args.snapshot_count),
            ("max-request-bytes", args.max_request_bytes as u64),
            ("max-txn-ops", args.max_txn_ops as u64),
        ] {
            if value == 0 {
                return Err(ConfigError::NotPositive { flag });
            }
        }
        if args.election_timeout < 5 * args.heartbeat_interval {
            return Err(ConfigError::ElectionTooShort {
                election: args.election_timeout,
                heartbeat: args.heartbeat_interval,
            });
        }
        if args.election_timeout > 50_000 {
            return Err(ConfigError::ElectionTooLong(args.election_timeout));
        }
        let advertise_peer_urls = advertised(
            "--initial-advertise-peer-urls",
            &args.initial_advertise_peer_urls,
        )?;
        let initial_cluster = match &args.initial_cluster {
            Some(spec) => InitialCluster::parse(spec)?,
            None => InitialCluster::parse(
                &advertise_peer_urls
                    .iter()
                    .map(|u| format!("{}={u}", args.name))
                    .collect::<Vec<_>>()
                    .join(","),
            )?,
        };
        initial_cluster.check_self(&args.name, &advertise_peer_urls)?;
        Ok(Config {
            data_dir: args
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("{}.cetera", args.name))),
            listen_client: bind_addresses("--listen-client-urls", &args.listen_client_urls)?,
            advertise_client_urls: advertised(
                "--advertise-client-urls",
                &args.advertise_client_urls,
            )?,
            listen_peer: bind_addresses("--listen-peer-urls", &args.listen_peer_urls)?,
            advertise_peer_urls,
            initial_cluster,
            cluster_token: args.initial_cluster_token,
            initial_cluster_state: args.initial_cluster_state,
            heartbeat: Duration::from_millis(args.heartbeat_interval),
            election_timeout: Duration::from_millis(args.election_timeout),
            snapshot_count: args.snapshot_count,
            max_request_bytes: args.max_request_bytes,
            max_txn_ops: args.max_txn_ops,
            quota_backend_bytes: match args.quota_backend_bytes {
                0 => 2 * 1024 * 1024 * 1024,
                bytes => bytes,
            },
            watch_progress_notify_interval: args.experimental_watch_progress_notify_interval,
            enable_v2: args.enable_v2,
            log_level: args.log_level,
            log_format: args.log_format,
            name: args.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let matches = Args::command()
            .try_get_matches_from(std::iter::once("cetera").chain(args.iter().copied()))
            .expect("clap accepts");
        Config::from_matches(&matches)
    }

    #[test]
    fn defaults_make_a_single_member_cluster_like_etcd() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.cetera"));
        assert_eq!(c.listen_client, vec!["127.0.0.1:2379".parse().unwrap()]);
        assert_eq!(c.listen_peer, vec!["127.0.0.1:2380".parse().unwrap()]);
        assert_eq!(c.initial_cluster.members("etcd-cluster").len(), 1);
        assert_eq!(c.max_request_bytes, 1_572_864);
        assert_eq!(c.grpc_max_recv_bytes(), 2 * 1024 * 1024);
        assert_eq!(c.request_timeout(), Duration::from_secs(7));
        assert!(!c.enable_v2);
    }

    #[test]
    fn enable_v2_takes_etcds_forms() {
        assert!(parse(&["--enable-v2"]).unwrap().enable_v2);
        assert!(parse(&["--enable-v2=true"]).unwrap().enable_v2);
        assert!(!parse(&["--enable-v2=false"]).unwrap().enable_v2);
    }

    #[test]
    fn bad_flags_get_one_line_errors() {
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert!(err(&["--listen-client-urls", "https://127.0.0.1:1"]).contains("TLS"));
        assert!(err(&["--listen-client-urls", "127.0.0.1:1"]).contains("http://host:port"));
        assert!(err(&["--election-timeout", "100"]).contains("at least as 5 times"));
        assert!(
            err(&["--initial-cluster", "other=http://127.0.0.1:2380"]).contains("no member named")
        );
        assert!(err(&["--max-txn-ops", "0"]).contains("positive"));
        assert!(!err(&["--election-timeout", "100"]).contains('\n'));
    }
}
