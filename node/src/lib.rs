//! cetera: an etcd-compatible, strongly consistent key-value store.
//!
//! # Layout
//! - [`config`]: etcd's flags and `ETCD_*` variables, validated into a `Config`.
//! - [`cluster`]: member and cluster ids, derived exactly as etcd derives them.
//! - [`client_tls`]: the client side of TLS to `https://` client URLs
//!   (etcdctl's `--cacert`/`--cert`/`--key`), for `ceteractl` and the console.
//! - [`discovery_client`]: etcd's v2 discovery protocol, to bootstrap a new
//!   member through a discovery URL.
//! - [`server`]: the running member: start-up, the write path (Raft) and the
//!   read path (read index), shutdown.
//! - [`api`]: the client URL: etcd's gRPC services and HTTP endpoints,
//!   translating to `server` calls and nothing more.
//! - [`raft`]: openraft's types, the SQLite log and state machine, peer RPCs.
//! - [`mvcc`]: etcd's revision/version/compaction rules, storage-agnostic.
//! - [`auth`]: etcd's users, roles, permissions and auth revision rules,
//!   storage-agnostic.
//! - [`jwt`]: etcd's JWT auth tokens (`--auth-token jwt,...`): options,
//!   keys, signing and verifying.
//! - [`watch`]: watchers and event delivery (the Watch service's core).
//! - [`concurrency`]: etcd's lock and election recipes (the Lock and
//!   Election services' core), built only on `server`'s public requests.
//! - [`storage`]: the member's SQLite database.
//! - [`tls`]: the PEM files behind `https://` client and peer URLs, read
//!   once at start-up into rustls configurations.
//! - [`v2store`]: etcd's v2 keyspace rules (tree, TTLs, history, waiters),
//!   storage-agnostic.
//! - [`proto`]: wire types generated from our own `.proto` files.
//! - [`histogram`]: the Prometheus histogram `/metrics` renders.
//! - [`bench`]: the etcd-API load generator behind `cetera-bench` and
//!   `ceteractl bench` (a client of the wire API, not of the server).

pub mod api;
pub mod auth;
pub mod bench;
pub mod client_auth;
pub mod client_tls;
pub mod cluster;
pub mod concurrency;
pub mod config;
pub mod discovery_client;
pub mod histogram;
pub mod jwt;
pub mod mvcc;
pub mod proto;
pub mod raft;
pub mod server;
pub mod storage;
pub mod tls;
pub mod v2store;
pub mod watch;

/// The etcd server version cetera reports to clients (`/version`, `Status`);
/// clients gate features on it (etcd3gw needs >= 3.4, Kubernetes >= 3.5.13).
#[macro_export]
macro_rules! etcd_version {
    () => {
        "3.5.17"
    };
}
pub const ETCD_VERSION: &str = etcd_version!();
/// The etcd cluster version cetera reports.
pub const ETCD_CLUSTER_VERSION: &str = "3.5.0";
