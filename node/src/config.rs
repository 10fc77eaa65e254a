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

    /// Token that makes ids unique to this cluster during bootstrap
    /// (with --discovery, the discovery URL takes its place, as in etcd).
    #[arg(
        long,
        env = "ETCD_INITIAL_CLUSTER_TOKEN",
        default_value = "etcd-cluster"
    )]
    pub initial_cluster_token: String,

    /// Discovery URL used to bootstrap the cluster instead of
    /// --initial-cluster (`http://host:port/<token>`, from
    /// `ceteractl discovery new`). Used only while the data dir is empty.
    #[arg(long, env = "ETCD_DISCOVERY", default_value = "")]
    pub discovery: String,

    /// What to do when the discovery token already has all its members:
    /// `exit`. etcd's default, `proxy`, starts a v2 proxy, which cetera does
    /// not have: it is accepted, and then exits with a message saying so.
    #[arg(
        long,
        env = "ETCD_DISCOVERY_FALLBACK",
        value_enum,
        default_value = "exit"
    )]
    pub discovery_fallback: DiscoveryFallback,

    /// HTTP proxy for the discovery service (not supported: must be empty).
    #[arg(long, env = "ETCD_DISCOVERY_PROXY", default_value = "")]
    pub discovery_proxy: String,

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

    /// Auth token type: `simple` (etcd's default), or
    /// `jwt,pub-key=FILE,priv-key=FILE,sign-method=RS256,ttl=5m`.
    #[arg(long, env = "ETCD_AUTH_TOKEN", default_value = "simple")]
    pub auth_token: String,

    /// Seconds an unused simple auth token stays valid.
    #[arg(long, env = "ETCD_AUTH_TOKEN_TTL", default_value_t = 300)]
    pub auth_token_ttl: u64,

    /// bcrypt cost for hashing auth passwords (4 to 31).
    #[arg(long, env = "ETCD_BCRYPT_COST", default_value_t = 10)]
    pub bcrypt_cost: u32,

    /// Raise an alarm when the backend size exceeds this many bytes
    /// (0 means the default, 2 GiB).
    #[arg(long, env = "ETCD_QUOTA_BACKEND_BYTES", default_value_t = 0)]
    pub quota_backend_bytes: u64,

    /// How often watches that asked for progress notifications get one
    /// (a duration such as 10m, 30s or 500ms).
    #[arg(long, env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m", value_parser = parse_duration)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// How often the leader compares every member's HashKV with its own
    /// and raises a CORRUPT alarm for a member that differs (0s: never).
    #[arg(long, env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME", default_value = "0s", value_parser = parse_duration_or_zero)]
    pub experimental_corrupt_check_time: Duration,

    /// Origins allowed to read client URL responses from a browser (CORS):
    /// `*` for any, or a comma-separated list of `scheme://host:port`.
    #[arg(long, env = "ETCD_CORS", default_value = "*")]
    pub cors: String,

    /// Path to the client server TLS cert file (for https:// client URLs).
    #[arg(long, env = "ETCD_CERT_FILE", default_value = "")]
    pub cert_file: String,

    /// Path to the client server TLS key file.
    #[arg(long, env = "ETCD_KEY_FILE", default_value = "")]
    pub key_file: String,

    /// Path to the client server TLS trusted CA cert file; clients must
    /// then present a certificate it signed.
    #[arg(long, env = "ETCD_TRUSTED_CA_FILE", default_value = "")]
    pub trusted_ca_file: String,

    /// Require clients on https:// client URLs to present a certificate
    /// signed by --trusted-ca-file.
    #[arg(
        long,
        env = "ETCD_CLIENT_CERT_AUTH",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub client_cert_auth: bool,

    /// Path to the peer TLS cert file: the peer listener serves it on
    /// https:// peer URLs and the peer client presents it.
    #[arg(long, env = "ETCD_PEER_CERT_FILE", default_value = "")]
    pub peer_cert_file: String,

    /// Path to the peer TLS key file.
    #[arg(long, env = "ETCD_PEER_KEY_FILE", default_value = "")]
    pub peer_key_file: String,

    /// Path to the peer TLS trusted CA file: the peer client trusts only
    /// it (the system's CAs without it), and members connecting to
    /// https:// peer URLs must present a certificate it signed.
    #[arg(long, env = "ETCD_PEER_TRUSTED_CA_FILE", default_value = "")]
    pub peer_trusted_ca_file: String,

    /// Require members connecting to https:// peer URLs to present a
    /// certificate signed by --peer-trusted-ca-file.
    #[arg(
        long,
        env = "ETCD_PEER_CLIENT_CERT_AUTH",
        default_value_t = false,
        num_args = 0..=1,
        default_missing_value = "true",
        action = clap::ArgAction::Set
    )]
    pub peer_client_cert_auth: bool,

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

/// `--discovery-fallback`: what a member does when its discovery token is
/// already full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiscoveryFallback {
    /// Exit with `discovery: cluster is full`.
    Exit,
    /// etcd starts a v2-only proxy; cetera has none, so it exits too, and
    /// says why.
    Proxy,
}

/// How a new member finds its cluster through a discovery service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// The discovery URL exactly as given: it is also the cluster token.
    pub url: String,
    pub fallback: DiscoveryFallback,
}

/// Which browser origins the client URL's HTTP answers admit (`--cors`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// `*` (etcd's default): every response says any origin may read it.
    AnyOrigin,
    /// Only a request whose `Origin` is exactly one of these is told so.
    Origins(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// One `--listen-client-urls` or `--listen-peer-urls` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenUrl {
    pub addr: SocketAddr,
    /// `https://`: TLS terminates on this listener.
    pub secure: bool,
}

/// `--cert-file`, `--key-file`, `--trusted-ca-file`, `--client-cert-auth`:
/// paths only; [`crate::tls`] reads them at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Set: clients must present a certificate this CA bundle verifies
    /// (etcd requires one as soon as a trusted CA is given).
    pub trusted_ca_file: Option<PathBuf>,
    /// `--client-cert-auth`: with auth enabled, a request without a token
    /// acts as the user its certificate's common name names (etcd's rule).
    pub client_cert_auth: bool,
}

/// `--peer-cert-file`, `--peer-key-file`, `--peer-trusted-ca-file`,
/// `--peer-client-cert-auth`: paths only; [`crate::tls`] reads them at
/// start-up. The peer client uses them for every `https://` peer URL, so
/// they matter even when this member's own peer URLs are plain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerTls {
    /// What the peer listener serves and the peer client presents
    /// (required when this member's own peer URLs are https).
    pub cert_and_key: Option<(PathBuf, PathBuf)>,
    /// Set: the peer client trusts only this CA bundle, and members
    /// connecting to an `https://` peer listener must present a
    /// certificate it verifies (etcd requires one as soon as a trusted CA
    /// is given); unset: the peer client trusts the system's CAs, as
    /// etcd's does.
    pub trusted_ca_file: Option<PathBuf>,
    /// `--peer-client-cert-auth`: needs `trusted_ca_file`, which already
    /// makes the listener require certificates.
    pub client_cert_auth: bool,
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
    #[error("--auth-token {0:?} is not supported: use \"simple\" or \"jwt,...\"")]
    UnsupportedAuthToken(String),
    #[error(transparent)]
    Jwt(#[from] crate::jwt::JwtError),
    #[error("invalid --bcrypt-cost {0}: it must be between 4 and 31")]
    BadBcryptCost(u32),
    #[error(
        "TLS key/cert (--cert-file, --key-file) must be provided for client url {0} with HTTPS scheme"
    )]
    ClientTlsMissing(String),
    #[error(
        "--client-cert-auth needs --trusted-ca-file (cetera does not trust the system's CAs for client certificates)"
    )]
    ClientCertAuthWithoutCa,
    #[error(
        "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {0} with HTTPS scheme"
    )]
    PeerTlsMissing(String),
    #[error(
        "--peer-client-cert-auth needs --peer-trusted-ca-file (cetera does not trust the system's CAs for peer certificates)"
    )]
    PeerCertAuthWithoutCa,
    #[error(
        "--election-timeout[{election}ms] should be at least as 5 times as --heartbeat-interval[{heartbeat}ms]"
    )]
    ElectionTooShort { election: u64, heartbeat: u64 },
    #[error("--election-timeout[{0}ms] is too long, and should be set less than 50000ms")]
    ElectionTooLong(u64),
    #[error("--{flag} must be positive")]
    NotPositive { flag: &'static str },
    #[error(
        "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\""
    )]
    ConflictingBootstrap,
    #[error(
        "--discovery-proxy {0:?} is not supported: cetera reaches the discovery service directly (unset the flag and ETCD_DISCOVERY_PROXY)"
    )]
    DiscoveryProxy(String),
}

/// The validated configuration the node runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub name: String,
    pub data_dir: PathBuf,
    pub listen_client: Vec<ListenUrl>,
    /// The certificate files for `https://` client URLs (`None` when no
    /// client URL is https).
    pub client_tls: Option<ClientTls>,
    pub advertise_client_urls: Vec<String>,
    pub listen_peer: Vec<ListenUrl>,
    /// The certificate files for peer traffic over `https://` URLs.
    pub peer_tls: PeerTls,
    pub advertise_peer_urls: Vec<String>,
    pub initial_cluster: InitialCluster,
    /// `new` bootstraps; `existing` joins a cluster that added this member.
    pub initial_cluster_state: ClusterState,
    /// Seeds the member and cluster ids: `--initial-cluster-token`, or the
    /// discovery URL when bootstrapping through discovery.
    pub cluster_token: String,
    /// Set with `--discovery`; `initial_cluster` then lists only this
    /// member until discovery answers (as in etcd).
    pub discovery: Option<DiscoveryConfig>,
    pub heartbeat: Duration,
    pub election_timeout: Duration,
    pub snapshot_count: u64,
    pub max_request_bytes: usize,
    pub max_txn_ops: usize,
    /// How long an unused simple auth token stays valid
    /// (`--auth-token-ttl`).
    pub auth_token_ttl: Duration,
    /// Set with `--auth-token jwt,...`: tokens are JWTs, not simple ones.
    pub jwt: Option<crate::jwt::JwtOptions>,
    /// `--bcrypt-cost`, checked to be one bcrypt accepts.
    pub bcrypt_cost: u32,
    pub quota_backend_bytes: u64,
    pub watch_progress_notify_interval: Duration,
    /// Zero: no periodic corruption check.
    pub corrupt_check_interval: Duration,
    pub cors: Cors,
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

/// Like [`parse_duration`], where `0s` turns the feature off.
fn parse_duration_or_zero(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

fn split_urls(list: &str) -> Vec<String> {
    list.split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect()
}

/// The peer listeners and the TLS files for peer traffic. As in etcd,
/// an `https://` URL of this member's own (listened on or advertised)
/// needs the certificate and key.
fn peer_listeners(
    args: &Args,
    advertise_peer_urls: &[String],
) -> Result<(Vec<ListenUrl>, PeerTls), ConfigError> {
    let listens = listen_urls("--listen-peer-urls", &args.listen_peer_urls)?;
    let first_secure = listens
        .iter()
        .filter(|(_, l)| l.secure)
        .map(|(u, _)| u)
        .chain(
            advertise_peer_urls
                .iter()
                .filter(|u| u.starts_with("https://")),
        )
        .next();
    let cert_and_key = match (args.peer_cert_file.as_str(), args.peer_key_file.as_str()) {
        ("", _) | (_, "") => match first_secure {
            Some(url) => return Err(ConfigError::PeerTlsMissing(url.clone())),
            None => None,
        },
        (cert, key) => Some((PathBuf::from(cert), PathBuf::from(key))),
    };
    let trusted_ca_file = match args.peer_trusted_ca_file.as_str() {
        "" if args.peer_client_cert_auth => return Err(ConfigError::PeerCertAuthWithoutCa),
        "" => None,
        path => Some(PathBuf::from(path)),
    };
    let tls = PeerTls {
        cert_and_key,
        trusted_ca_file,
        client_cert_auth: args.peer_client_cert_auth,
    };
    Ok((listens.into_iter().map(|(_, l)| l).collect(), tls))
}

/// The client listeners, and the TLS files their `https://` URLs need.
fn client_listeners(args: &Args) -> Result<(Vec<ListenUrl>, Option<ClientTls>), ConfigError> {
    let listens = listen_urls("--listen-client-urls", &args.listen_client_urls)?;
    let Some(first_secure) = listens
        .iter()
        .find(|(_, l)| l.secure)
        .map(|(u, _)| u.clone())
    else {
        // etcd ignores the files when no client URL is https, and so do we.
        return Ok((listens.into_iter().map(|(_, l)| l).collect(), None));
    };
    if args.cert_file.is_empty() || args.key_file.is_empty() {
        return Err(ConfigError::ClientTlsMissing(first_secure));
    }
    let trusted_ca_file = match args.trusted_ca_file.as_str() {
        "" if args.client_cert_auth => return Err(ConfigError::ClientCertAuthWithoutCa),
        "" => None,
        path => Some(PathBuf::from(path)),
    };
    let tls = ClientTls {
        cert_file: PathBuf::from(&args.cert_file),
        key_file: PathBuf::from(&args.key_file),
        trusted_ca_file,
        client_cert_auth: args.client_cert_auth,
    };
    Ok((listens.into_iter().map(|(_, l)| l).collect(), Some(tls)))
}

/// Resolves `http://host:port` and `https://host:port` listen URLs.
fn listen_urls(flag: &'static str, list: &str) -> Result<Vec<(String, ListenUrl)>, ConfigError> {
    let mut addrs = Vec::new();
    for url in split_urls(list) {
        let bad = |reason: &str| ConfigError::BadUrl {
            flag,
            url: url.clone(),
            reason: reason.to_string(),
        };
        let (host_port, secure) = match url.split_once("://") {
            Some(("http", rest)) => (rest, false),
            Some(("https", rest)) => (rest, true),
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
        let addr = resolved
            .into_iter()
            .next()
            .ok_or_else(|| bad("host does not resolve"))?;
        addrs.push((url.clone(), ListenUrl { addr, secure }));
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

/// Checks a discovery URL is `http://host[:port]/<token>`.
fn discovery_url(url: &str) -> Result<String, ConfigError> {
    let bad = |reason: &str| ConfigError::BadUrl {
        flag: "--discovery",
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = match url.split_once("://") {
        Some(("http", rest)) => rest,
        Some(("https", _)) => return Err(bad("TLS is not supported yet; use http://")),
        _ => return Err(bad("expected http://host:port/<token>")),
    };
    let (host, token) = rest
        .split_once('/')
        .ok_or_else(|| bad("the URL has no token path (expected http://host:port/<token>)"))?;
    if host.is_empty() || token.trim_matches('/').is_empty() {
        return Err(bad("expected http://host:port/<token>"));
    }
    if url.contains(['?', '#', ' ']) {
        return Err(bad("a discovery URL has no query, fragment or spaces"));
    }
    Ok(url.to_string())
}

/// `--cors`: `*`, or origins that etcd's URL-list flag accepts (a scheme
/// of http, https, unix or unixs, a `host:port` address, no path). Every
/// entry counts, so an empty one is an error, as in etcd; white space
/// around an entry is dropped.
fn cors_origins(list: &str) -> Result<Cors, ConfigError> {
    if list == "*" {
        return Ok(Cors::AnyOrigin);
    }
    let mut origins = Vec::new();
    for entry in list.split(',').map(str::trim) {
        let bad = |reason: &str| ConfigError::BadUrl {
            flag: "--cors",
            url: entry.to_string(),
            reason: reason.to_string(),
        };
        let (scheme, rest) = entry.split_once("://").unwrap_or(("", entry));
        let scheme = scheme.to_ascii_lowercase();
        if !["http", "https", "unix", "unixs"].contains(&scheme.as_str()) {
            return Err(bad("URL scheme must be http, https, unix, or unixs"));
        }
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(authority_end);
        let address = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        if !is_host_port(address) {
            return Err(bad("URL address does not have the form \"host:port\""));
        }
        if tail.starts_with('/') {
            return Err(bad("URL must not contain a path"));
        }
        // Go's URL parser lowercases the scheme and nothing else.
        origins.push(format!("{scheme}://{rest}"));
    }
    Ok(Cors::Origins(origins))
}

/// Go's `net.SplitHostPort` succeeds: `host:port` or `[v6]:port`.
fn is_host_port(address: &str) -> bool {
    match address.strip_prefix('[') {
        Some(v6) => v6.split_once(']').is_some_and(|(host, port)| {
            !host.contains(']') && port.starts_with(':') && !port[1..].contains([':', '[', ']'])
        }),
        None => address.matches(':').count() == 1 && !address.contains(['[', ']']),
    }
}

/// Checks advertised URLs are well-formed `http://host:port` or
/// `https://host:port`.
fn advertised(flag: &'static str, list: &str) -> Result<Vec<String>, ConfigError> {
    let urls = split_urls(list);
    for url in &urls {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"));
        let ok = rest
            .and_then(|rest| rest.rsplit_once(':'))
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
        if !ok {
            return Err(ConfigError::BadUrl {
                flag,
                url: url.clone(),
                reason: "expected http://host:port or https://host:port".into(),
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
            ("auth-token-ttl", args.auth_token_ttl),
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
        // etcd's `simple` may carry options after a comma; none apply here.
        let (kind, options) = args
            .auth_token
            .split_once(',')
            .unwrap_or((args.auth_token.as_str(), ""));
        let jwt = match kind {
            "simple" => None,
            "jwt" => Some(crate::jwt::JwtOptions::parse(options)?),
            _ => return Err(ConfigError::UnsupportedAuthToken(args.auth_token)),
        };
        if !(4..=31).contains(&args.bcrypt_cost) {
            return Err(ConfigError::BadBcryptCost(args.bcrypt_cost));
        }
        let advertise_peer_urls = advertised(
            "--initial-advertise-peer-urls",
            &args.initial_advertise_peer_urls,
        )?;
        if !args.discovery_proxy.is_empty() {
            return Err(ConfigError::DiscoveryProxy(args.discovery_proxy));
        }
        let discovery = match args.discovery.as_str() {
            "" => None,
            _ if args.initial_cluster.is_some() => return Err(ConfigError::ConflictingBootstrap),
            url => Some(DiscoveryConfig {
                url: discovery_url(url)?,
                fallback: args.discovery_fallback,
            }),
        };
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
        let (listen_client, client_tls) = client_listeners(&args)?;
        let (listen_peer, peer_tls) = peer_listeners(&args, &advertise_peer_urls)?;
        // Whether this member is in --initial-cluster matters only on a
        // first start (see `server::startup`): a restarted member ignores
        // the bootstrap flags, as etcd does, so it can move (member update).
        // etcd seeds the ids with the discovery URL instead of the token.
        let cluster_token = match &discovery {
            Some(discovery) => discovery.url.clone(),
            None => args.initial_cluster_token,
        };
        Ok(Config {
            data_dir: args
                .data_dir
                .unwrap_or_else(|| PathBuf::from(format!("{}.cetera", args.name))),
            listen_client,
            client_tls,
            advertise_client_urls: advertised(
                "--advertise-client-urls",
                &args.advertise_client_urls,
            )?,
            listen_peer,
            peer_tls,
            advertise_peer_urls,
            initial_cluster,
            cluster_token,
            discovery,
            initial_cluster_state: args.initial_cluster_state,
            heartbeat: Duration::from_millis(args.heartbeat_interval),
            election_timeout: Duration::from_millis(args.election_timeout),
            snapshot_count: args.snapshot_count,
            max_request_bytes: args.max_request_bytes,
            max_txn_ops: args.max_txn_ops,
            auth_token_ttl: Duration::from_secs(args.auth_token_ttl),
            jwt,
            bcrypt_cost: args.bcrypt_cost,
            quota_backend_bytes: match args.quota_backend_bytes {
                0 => 2 * 1024 * 1024 * 1024,
                bytes => bytes,
            },
            watch_progress_notify_interval: args.experimental_watch_progress_notify_interval,
            corrupt_check_interval: args.experimental_corrupt_check_time,
            cors: cors_origins(&args.cors)?,
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
    fn auth_flags_take_etcds_defaults_and_only_simple_tokens() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.auth_token_ttl, Duration::from_secs(300));
        assert_eq!(c.bcrypt_cost, 10);
        let c = parse(&[
            "--auth-token",
            "simple",
            "--auth-token-ttl",
            "5",
            "--bcrypt-cost",
            "4",
        ])
        .unwrap();
        assert_eq!(
            (c.auth_token_ttl, c.bcrypt_cost),
            (Duration::from_secs(5), 4)
        );
        let err = parse(&["--auth-token", "jwt,pub-key=a.pem"]).unwrap_err();
        assert_eq!(err.to_string(), "--auth-token jwt: sign-method is required");
        let c = parse(&["--auth-token", "jwt,pub-key=a.pem,sign-method=RS256"]).unwrap();
        let jwt = c.jwt.unwrap();
        assert_eq!(jwt.pub_key.as_deref(), Some(std::path::Path::new("a.pem")));
        assert_eq!(jwt.ttl, Duration::from_secs(300));
        assert!(parse(&["--auth-token", "simple"]).unwrap().jwt.is_none());
        let err = parse(&["--auth-token", "oauth"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--auth-token \"oauth\" is not supported: use \"simple\" or \"jwt,...\""
        );
        assert!(matches!(
            parse(&["--bcrypt-cost", "3"]),
            Err(ConfigError::BadBcryptCost(3))
        ));
        assert!(matches!(
            parse(&["--auth-token-ttl", "0"]),
            Err(ConfigError::NotPositive { .. })
        ));
    }

    #[test]
    fn defaults_make_a_single_member_cluster_like_etcd() {
        let c = parse(&[]).unwrap();
        assert_eq!(c.name, "default");
        assert_eq!(c.data_dir, PathBuf::from("default.cetera"));
        assert_eq!(
            c.listen_client,
            vec![ListenUrl {
                addr: "127.0.0.1:2379".parse().unwrap(),
                secure: false
            }]
        );
        assert_eq!(c.client_tls, None);
        assert_eq!(
            c.listen_peer,
            vec![ListenUrl {
                addr: "127.0.0.1:2380".parse().unwrap(),
                secure: false
            }]
        );
        assert_eq!(c.peer_tls, PeerTls::default());
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
    fn https_client_urls_take_etcds_tls_flags() {
        let tls = ["--cert-file", "s.pem", "--key-file", "s.key"];
        let mut args = vec![
            "--listen-client-urls",
            "https://127.0.0.1:1,http://127.0.0.1:2",
        ];
        args.extend(tls);
        let c = parse(&args).unwrap();
        assert_eq!(
            c.listen_client.iter().map(|l| l.secure).collect::<Vec<_>>(),
            [true, false]
        );
        let files = c.client_tls.unwrap();
        assert_eq!(files.cert_file, PathBuf::from("s.pem"));
        assert_eq!(files.trusted_ca_file, None);
        assert!(!files.client_cert_auth);
        args.extend(["--trusted-ca-file", "ca.pem", "--client-cert-auth"]);
        let files = parse(&args).unwrap().client_tls.unwrap();
        assert_eq!(files.trusted_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(files.client_cert_auth);
        // Files are ignored without an https URL, as etcd ignores them.
        assert_eq!(parse(&tls).unwrap().client_tls, None);
        args.truncate(args.len() - 3);
        args.push("--client-cert-auth");
        assert!(
            parse(&args)
                .unwrap_err()
                .to_string()
                .contains("needs --trusted-ca-file")
        );
    }

    #[test]
    fn https_peer_urls_take_etcds_peer_tls_flags() {
        let mut args = vec![
            "--listen-peer-urls",
            "https://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "https://127.0.0.1:2380",
            "--peer-cert-file",
            "p.pem",
            "--peer-key-file",
            "p.key",
        ];
        let c = parse(&args).unwrap();
        assert!(c.listen_peer[0].secure);
        assert_eq!(
            c.peer_tls.cert_and_key,
            Some((PathBuf::from("p.pem"), PathBuf::from("p.key")))
        );
        assert_eq!(c.peer_tls.trusted_ca_file, None);
        assert!(!c.peer_tls.client_cert_auth);
        args.extend([
            "--peer-trusted-ca-file",
            "ca.pem",
            "--peer-client-cert-auth",
        ]);
        let tls = parse(&args).unwrap().peer_tls;
        assert_eq!(tls.trusted_ca_file, Some(PathBuf::from("ca.pem")));
        assert!(tls.client_cert_auth);
        // Plain peer URLs keep the files: the peer client needs them for
        // members whose URLs are https.
        let plain = parse(&["--peer-cert-file", "p.pem", "--peer-key-file", "p.key"]).unwrap();
        assert!(!plain.listen_peer[0].secure);
        assert!(plain.peer_tls.cert_and_key.is_some());
    }

    #[test]
    fn bad_flags_get_one_line_errors() {
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert_eq!(
            err(&["--listen-client-urls", "https://127.0.0.1:1"]),
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://127.0.0.1:1 with HTTPS scheme"
        );
        assert_eq!(
            err(&["--listen-peer-urls", "https://127.0.0.1:1"]),
            "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url https://127.0.0.1:1 with HTTPS scheme"
        );
        assert!(
            err(&["--initial-advertise-peer-urls", "https://127.0.0.1:1"])
                .contains("--peer-cert-file")
        );
        assert!(err(&["--peer-client-cert-auth"]).contains("needs --peer-trusted-ca-file"));
        assert!(err(&["--listen-client-urls", "127.0.0.1:1"]).contains("http://host:port"));
        assert!(err(&["--election-timeout", "100"]).contains("at least as 5 times"));
        let elsewhere = parse(&["--initial-cluster", "other=http://127.0.0.1:2380"]).unwrap();
        let missing = elsewhere
            .initial_cluster
            .check_self(&elsewhere.name, &elsewhere.advertise_peer_urls)
            .unwrap_err();
        assert!(missing.to_string().contains("no member named"));
        assert!(err(&["--max-txn-ops", "0"]).contains("positive"));
        assert!(!err(&["--election-timeout", "100"]).contains('\n'));
    }

    #[test]
    fn discovery_seeds_ids_with_its_url_and_starts_from_self() {
        let url = "http://127.0.0.1:8087/0abbbd251c2c107a4c84ac5f2cdeebe3";
        let c = parse(&["--name", "n1", "--discovery", url]).unwrap();
        let discovery = c.discovery.as_ref().expect("discovery configured");
        assert_eq!(discovery.url, url);
        assert_eq!(discovery.fallback, DiscoveryFallback::Exit);
        assert_eq!(c.cluster_token, url);
        assert_eq!(c.initial_cluster.to_string(), "n1=http://127.0.0.1:2380");
        let c = parse(&["--discovery", url, "--discovery-fallback", "proxy"]).unwrap();
        assert_eq!(c.discovery.unwrap().fallback, DiscoveryFallback::Proxy);
        // An empty URL is no discovery, as in etcd.
        assert!(parse(&["--discovery", ""]).unwrap().discovery.is_none());
    }

    #[test]
    fn discovery_flags_that_cannot_work_are_refused() {
        let url = "http://127.0.0.1:8087/tok";
        let err = |args: &[&str]| parse(args).unwrap_err().to_string();
        assert_eq!(
            err(&[
                "--discovery",
                url,
                "--initial-cluster",
                "default=http://127.0.0.1:2380"
            ]),
            "multiple discovery or bootstrap flags are set. Choose one of \"initial-cluster\", \"discovery\" or \"discovery-srv\""
        );
        assert!(
            err(&["--discovery", url, "--discovery-proxy", "http://proxy:3128"])
                .contains("--discovery-proxy \"http://proxy:3128\" is not supported")
        );
        assert!(err(&["--discovery", "https://discovery.etcd.io/tok"]).contains("TLS"));
        assert!(err(&["--discovery", "http://127.0.0.1:8087"]).contains("token"));
        assert!(err(&["--discovery", "http://127.0.0.1:8087/"]).contains("token"));
        assert!(err(&["--discovery", "127.0.0.1:8087/tok"]).contains("http://host:port/<token>"));
    }

    #[test]
    fn cors_takes_a_star_or_origins_as_etcd_does() {
        assert_eq!(parse(&[]).unwrap().cors, Cors::AnyOrigin);
        let origins = |value: &str| parse(&["--cors", value]).map(|c| c.cors);
        assert_eq!(
            origins("http://a.example:80, HTTPS://B.example:8443,http://[::1]:1,http://u@c:2?q")
                .unwrap(),
            Cors::Origins(vec![
                "http://a.example:80".into(),
                "https://B.example:8443".into(),
                "http://[::1]:1".into(),
                "http://u@c:2?q".into(),
            ])
        );
        // What etcd 3.4 refuses, with its reasons.
        let cases = [
            ("", "URL scheme must be http, https, unix, or unixs"),
            (
                "http://a:1,*",
                "URL scheme must be http, https, unix, or unixs",
            ),
            (
                "http://a:1,,http://b:2",
                "URL scheme must be http, https, unix, or unixs",
            ),
            (
                "a.example:80",
                "URL scheme must be http, https, unix, or unixs",
            ),
            (
                "http://a.example",
                "URL address does not have the form \"host:port\"",
            ),
            (
                "http://::1:80",
                "URL address does not have the form \"host:port\"",
            ),
            ("http://a.example:80/", "URL must not contain a path"),
            ("http://a.example:80/x", "URL must not contain a path"),
        ];
        for (value, reason) in cases {
            let err = origins(value).unwrap_err().to_string();
            assert!(
                err.contains(reason) && err.contains("--cors"),
                "{value}: {err}"
            );
        }
    }
}
