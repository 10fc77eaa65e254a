//! Bringing a member up and down: bind, open the data dir, start Raft,
//! serve, publish ourselves; and the reverse on shutdown.
//!
//! Everything that can fail for an operator's reason (a port in use, a data
//! dir of another member, a corrupt database) fails here, before any
//! request is served, with a [`StartError`] that names the cause.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use openraft::SnapshotPolicy;
use openraft::error::{InitializeError, RaftError};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::lessor::Lessor;
use super::membership::ClusterView;
use super::observer::Observers;
use super::proposer::Proposer;
use super::read_index::ReadBarrier;
use super::{Node, PeerStats, peer_api};
use crate::cluster::{ClusterError, Identity, cluster_id};
use crate::config::{ClusterState, Config, DiscoveryConfig, DiscoveryFallback};
use crate::discovery_client::{self, DiscoveryError, RetryPolicy};
use crate::mvcc::KvRead;
use crate::raft::paths;
use crate::raft::{
    Command, LogStore, MemberAttributes, MemberId, MemberNode, PeerClient, PeerNetwork, Raft,
    StateMachine,
};
use crate::storage::{Db, Meta, StorageError, durably};
use crate::watch::WatchHub;

/// How long a stopping member waits for requests in flight to finish.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Entries kept behind a snapshot for slow followers, as etcd keeps them.
const SNAPSHOT_CATCH_UP_ENTRIES: u64 = 5000;

/// Why the member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data dir {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(
        "data dir {path} belongs to member {found:?} (id {id:x}, cluster {cluster:x}), not to --name {expected:?}"
    )]
    WrongMember {
        path: std::path::PathBuf,
        found: String,
        id: MemberId,
        cluster: u64,
        expected: String,
    },
    #[error(transparent)]
    InitialCluster(#[from] crate::cluster::ClusterError),
    #[error("raft: {0}")]
    Raft(String),
    #[error("could not retrieve cluster information from the given URLs ({0})")]
    NoPeers(String),
    #[error("this member (peer URLs {0:?}) is not in the cluster: add it with `member add` first")]
    NotAdded(Vec<String>),
    #[error("failed to join discovery cluster ({source}){advice}")]
    Discovery {
        source: DiscoveryError,
        advice: &'static str,
    },
    #[error("the cluster found through discovery does not fit this member: {0}")]
    Discovered(ClusterError),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Jwt(#[from] crate::jwt::JwtError),
}

impl StartError {
    /// etcd's "failed to join discovery cluster (...)", plus what to do.
    fn discovery(source: DiscoveryError, fallback: DiscoveryFallback) -> StartError {
        let advice = match (&source, fallback) {
            (DiscoveryError::FullCluster { .. }, DiscoveryFallback::Exit) => {
                "; the token already has all its members: add this member with `member add`, or bootstrap another cluster with a new token"
            }
            (DiscoveryError::FullCluster { .. }, DiscoveryFallback::Proxy) => {
                "; etcd would now start a v2 proxy (--discovery-fallback=proxy), which cetera does not have: add this member with `member add`, or bootstrap another cluster with a new token"
            }
            (DiscoveryError::DuplicateId, _) => {
                "; this member registered with the token before but its data dir is empty: check --data-dir if that bootstrap succeeded, or use a new token if it failed"
            }
            (DiscoveryError::DuplicateName, _) => {
                "; another member registered with the same name (see the token URL): do not reuse a token, generate a new one"
            }
            (DiscoveryError::SizeNotFound, _) => {
                "; the token does not exist or has expired: generate one with `ceteractl discovery new`"
            }
            (DiscoveryError::TooManyRetries { .. }, _) => {
                "; the discovery service stayed unavailable: check the URL and the service, then start again"
            }
            _ => "; do not reuse the token: generate a new one and bootstrap again",
        };
        StartError::Discovery { source, advice }
    }
}

/// How a member comes up.
enum Bootstrap {
    /// The data dir already holds a member.
    Restart,
    /// The first start of a new cluster's member, with the initial members.
    New(BTreeMap<MemberId, MemberNode>),
    /// The first start of a member added to a running cluster.
    Join,
}

/// A started member and the handles to stop it.
pub struct RunningNode {
    pub node: Arc<Node>,
    pub client_addrs: Vec<SocketAddr>,
    pub peer_addrs: Vec<SocketAddr>,
    client_servers: Vec<JoinHandle<()>>,
    /// Stops the peer listeners and the background tasks, once the client
    /// side has drained.
    stop_peers: watch::Sender<bool>,
    peer_servers: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// Resolves once this member has been removed from the cluster (it
    /// should then shut down, as etcd does).
    pub async fn removed(&self) {
        let mut removed = self.node.removed.subscribe();
        let _ = removed.wait_for(|r| *r).await;
    }

    /// Hands leadership over, stops accepting client requests, ends the
    /// long-lived streams, lets unary requests in flight finish (bounded by
    /// [`DRAIN_TIMEOUT`]), then stops the peer side and Raft so the log and
    /// state are left consistent on disk.
    ///
    /// Streams (Watch, LeaseKeepAlive, Election.Observe, the gateway's
    /// streams, v2 waits) and waits for a lock or an election end the
    /// moment the client listeners close, with `Unavailable: etcdserver:
    /// server stopped` (an empty body for a v2 wait); HTTP/2 connections
    /// get a GOAWAY at the same time, so no new call lands here, and
    /// clients resume on another member at once.
    ///
    /// What real etcd 3.4.23 does, measured (`etcdctl`, Python `etcd3`,
    /// tonic, strace): on SIGTERM its `GracefulStop` closes the cmux
    /// sub-listener, which closes the shared listener, so `cmux.Serve`
    /// fails and the gRPC server is hard-stopped within milliseconds. Its
    /// clients see at most a GOAWAY (NO_ERROR), then the TCP connection
    /// closed, never a `grpc-status`: open watch and keep-alive streams and
    /// unary calls in flight alike fail, `Unavailable` in grpc-go and
    /// Python clients (`Stream removed`), `Unknown: h2 protocol error` in
    /// tonic. It then hands leadership over and dies by the SIGTERM it
    /// re-raises (status 143). We end the streams as promptly, with a
    /// status every client retries elsewhere, but still answer unary calls
    /// in flight, and exit with status 0.
    pub async fn shutdown(self) {
        // A leader hands over first, as etcd does, so the others need not
        // wait out an election timeout.
        if let Err(e) = self.node.hand_over_leadership().await {
            tracing::warn!(error = %e, "could not hand leadership over before stopping");
        }
        self.node.stop.send_replace(true);
        // The peer side serves on until then: a write in flight here is
        // answered once this member has applied it, which takes the
        // leader's appends.
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        let clients = futures::future::join_all(self.client_servers);
        if tokio::time::timeout_at(deadline, clients).await.is_err() {
            tracing::warn!("some client connections did not close within {DRAIN_TIMEOUT:?}");
        }
        self.stop_peers.send_replace(true);
        let peers = futures::future::join_all(self.peer_servers);
        if tokio::time::timeout_at(deadline, peers).await.is_err() {
            tracing::warn!("some peer connections did not close within {DRAIN_TIMEOUT:?}");
        }
        if let Err(e) = self.node.raft.shutdown().await {
            tracing::warn!(error = %e, "raft did not stop cleanly");
        }
        tracing::info!("stopped");
    }
}

async fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<TcpListener>, StartError> {
    let mut listeners = Vec::new();
    for &addr in addrs {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        listeners.push(listener);
    }
    Ok(listeners)
}

/// Whether `me` is the cluster's only voter, as the restored log says.
fn is_sole_voter(raft: &Raft, me: MemberId) -> bool {
    let metrics = raft.metrics();
    let membership = metrics.borrow();
    membership
        .membership_config
        .membership()
        .voter_ids()
        .eq(std::iter::once(me))
}

fn raft_config(config: &Config) -> Result<openraft::Config, StartError> {
    let election_ms = config.election_timeout.as_millis() as u64;
    openraft::Config {
        cluster_name: config.cluster_token.clone(),
        heartbeat_interval: config.heartbeat.as_millis() as u64,
        // etcd randomises elections in [timeout, 2 × timeout).
        election_timeout_min: election_ms,
        election_timeout_max: 2 * election_ms,
        install_snapshot_timeout: election_ms.max(10_000),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(config.snapshot_count),
        max_in_snapshot_log_to_keep: SNAPSHOT_CATCH_UP_ENTRIES.min(config.snapshot_count),
        snapshot_max_chunk_size: 1024 * 1024,
        ..Default::default()
    }
    .validate()
    .map_err(|e| StartError::Raft(e.to_string()))
}

/// The identity recorded in the data dir, or a new one for a fresh member.
/// Only a fresh member of a new cluster talks to the discovery service: a
/// member with data ignores `--discovery`, as etcd does once it has a WAL.
async fn load_identity(
    db: &Db,
    config: &Config,
    peers: &PeerClient,
) -> Result<(Identity, Bootstrap), StartError> {
    let stored: Option<Identity> = db.read(|tx| Meta(tx).value(Meta::IDENTITY)).await?;
    match stored {
        Some(identity) if identity.name != config.name => Err(StartError::WrongMember {
            path: config.data_dir.clone(),
            found: identity.name,
            id: identity.member_id,
            cluster: identity.cluster_id,
            expected: config.name.clone(),
        }),
        Some(identity) => Ok((identity, Bootstrap::Restart)),
        None if config.initial_cluster_state == ClusterState::Existing => {
            config
                .initial_cluster
                .check_self(&config.name, &config.advertise_peer_urls)?;
            let members = config.initial_cluster.members(&config.cluster_token);
            Ok((
                join_identity(config, &members, peers).await?,
                Bootstrap::Join,
            ))
        }
        None => {
            let members = match &config.discovery {
                Some(discovery) => discover_members(config, discovery).await?,
                None => {
                    config
                        .initial_cluster
                        .check_self(&config.name, &config.advertise_peer_urls)?;
                    config.initial_cluster.members(&config.cluster_token)
                }
            };
            let member_id = own_id(config, &members)?;
            let identity = Identity {
                name: config.name.clone(),
                member_id,
                cluster_id: cluster_id(members.keys().copied()),
            };
            Ok((identity, Bootstrap::New(members)))
        }
    }
}

/// This member's id among `members` (found by name, as etcd does).
fn own_id(
    config: &Config,
    members: &BTreeMap<MemberId, MemberNode>,
) -> Result<MemberId, StartError> {
    members
        .iter()
        .find(|(_, node)| node.name == config.name)
        .map(|(id, _)| *id)
        .ok_or_else(|| StartError::Raft("this member is missing from --initial-cluster".into()))
}

/// Registers with the discovery service and waits for the token's other
/// members; returns the initial members, with ids seeded by the URL.
async fn discover_members(
    config: &Config,
    discovery: &DiscoveryConfig,
) -> Result<BTreeMap<MemberId, MemberNode>, StartError> {
    // Until discovery answers, the cluster is just this member.
    let member_id = own_id(
        config,
        &config.initial_cluster.members(&config.cluster_token),
    )?;
    let registration = config.initial_cluster.to_string();
    tracing::info!(
        url = %discovery.url,
        member_id = %format!("{member_id:x}"),
        registration = %registration,
        "bootstrapping through the discovery service"
    );
    let cluster =
        discovery_client::join_cluster(&discovery.url, member_id, &registration, RetryPolicy::ETCD)
            .await
            .map_err(|e| StartError::discovery(e, discovery.fallback))?;
    cluster
        .check_self(&config.name, &config.advertise_peer_urls)
        .map_err(StartError::Discovered)?;
    tracing::info!(initial_cluster = %cluster, "discovery found the initial cluster");
    Ok(cluster.members(&config.cluster_token))
}

/// Learns this member's id and the cluster's from a running member that
/// added it (the `--initial-cluster` list names them).
async fn join_identity(
    config: &Config,
    members: &BTreeMap<MemberId, MemberNode>,
    client: &PeerClient,
) -> Result<Identity, StartError> {
    let mut mine = config.advertise_peer_urls.clone();
    mine.sort();
    let mut failures = Vec::new();
    for node in members.values().filter(|n| n.peer_urls != mine) {
        for url in &node.peer_urls {
            let answer: Result<ClusterView, _> = client
                .call(url, paths::MEMBERS, &(), Duration::from_secs(5))
                .await;
            match answer {
                Ok(view) => {
                    let found = view.members.iter().find(|(_, n)| {
                        let mut urls = n.peer_urls.clone();
                        urls.sort();
                        urls == mine
                    });
                    let (member_id, _) = found.ok_or_else(|| StartError::NotAdded(mine.clone()))?;
                    return Ok(Identity {
                        name: config.name.clone(),
                        member_id: *member_id,
                        cluster_id: view.cluster_id,
                    });
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
    }
    Err(StartError::NoPeers(failures.join("; ")))
}

/// Starts a member with `config`; returns once it is serving.
pub async fn start(config: Config) -> Result<RunningNode, StartError> {
    // Key files first: a bad path ends start-up before anything is bound.
    let jwt = config
        .jwt
        .as_ref()
        .map(crate::jwt::JwtTokens::load)
        .transpose()?;
    let tls = config
        .client_tls
        .as_ref()
        .map(crate::tls::acceptor)
        .transpose()?;
    let peer_tls = crate::tls::peer_acceptor(&config.peer_tls)?;
    let unjoined = PeerClient::new(crate::tls::peer_connector(&config.peer_tls)?);
    let peer_binds: Vec<SocketAddr> = config.listen_peer.iter().map(|l| l.addr).collect();
    let peer_listeners = bind_all(&peer_binds).await?;
    let client_binds: Vec<SocketAddr> = config.listen_client.iter().map(|l| l.addr).collect();
    let client_listeners = bind_all(&client_binds).await?;

    let member_dir = config.data_dir.join("member");
    std::fs::create_dir_all(&member_dir).map_err(|source| StartError::DataDir {
        path: member_dir.clone(),
        source,
    })?;
    super::maintenance::remove_stale_backups(&member_dir);
    let db = Db::open(&member_dir.join("cetera.db")).await?;
    let (identity, bootstrap) = load_identity(&db, &config, &unjoined).await?;
    let fresh = !matches!(bootstrap, Bootstrap::Restart);
    tracing::info!(
        name = %identity.name,
        member_id = %format!("{:x}", identity.member_id),
        cluster_id = %format!("{:x}", identity.cluster_id),
        data_dir = %config.data_dir.display(),
        fresh,
        "starting member"
    );

    // Watchers and lease clocks start from what the store holds now, and
    // follow every batch the state machine applies from here on.
    let (revision, leases, auth_store) = db
        .read_kv(|kv| {
            Ok((
                kv.revisions()?.current,
                kv.leases()?,
                crate::storage::SqliteAuth(kv.conn()).load()?,
            ))
        })
        .await?;
    let auth = Arc::new(super::auth::AuthGate::new(
        auth_store,
        config.auth_token_ttl,
        jwt,
    ));
    let hub = WatchHub::new(db.clone(), revision);
    let lessor = Arc::new(Lessor::new(leases, config.election_timeout));
    let v2_waiters = crate::v2store::WatcherHub::new();
    let v2_stats = Arc::new(crate::v2store::StoreStats::default());
    let observers = Arc::new(Observers {
        hub: hub.clone(),
        lessor: lessor.clone(),
        v2_waiters: v2_waiters.clone(),
        v2_stats: v2_stats.clone(),
        auth: auth.clone(),
    });

    let peers = unjoined.for_member(identity.cluster_id, identity.member_id);
    let peer_stats = Arc::new(PeerStats::default());
    let log = LogStore::open(db.clone(), identity.member_id).await?;
    let wal_fsync = log.fsync_durations();
    let durability = log.durability();
    let raft = Raft::new(
        identity.member_id,
        Arc::new(raft_config(&config)?),
        PeerNetwork::new(peers.clone(), peer_stats.clone(), durability.clone()),
        log,
        StateMachine::open(db.clone(), &member_dir.join("snap"), observers)
            .await?
            .applying_only_durable(durability),
    )
    .await
    .map_err(|e| StartError::Raft(e.to_string()))?;

    if fresh {
        // A joining member waits for the leader to replicate to it instead.
        if let Bootstrap::New(members) = bootstrap {
            match raft.initialize(members).await {
                Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(e) => return Err(StartError::Raft(e.to_string())),
            }
        }
        let stored = identity.clone();
        db.write(move |conn| durably(conn, |conn| Meta(conn).set_value(Meta::IDENTITY, &stored)))
            .await?;
    } else if is_sole_voter(&raft, identity.member_id) {
        // A restarted member never leads on in its old term (see
        // `raft::log_store`); alone, it need not wait an election timeout
        // to win the next one.
        raft.trigger()
            .elect()
            .await
            .map_err(|e| StartError::Raft(e.to_string()))?;
    }

    let metrics = raft.metrics();
    let node = Arc::new_cyclic(|weak| Node {
        reads: ReadBarrier::start(weak.clone()),
        proposer: Proposer::start(raft.clone()),
        config,
        identity,
        raft,
        metrics,
        db,
        peers,
        hub,
        lessor,
        v2_waiters,
        v2_stats,
        peer_stats,
        leaders: Default::default(),
        removed: watch::Sender::new(false),
        stop: watch::Sender::new(false),
        removed_members: Default::default(),
        transfer_lock: Default::default(),
        grpc_counters: Default::default(),
        wal_fsync,
        auth,
        started_at: SystemTime::now(),
    });

    let (stop_peers, stopped) = watch::channel(false);
    let mut peer_servers = Vec::new();
    let mut peer_addrs = Vec::new();
    for (listener, listen) in peer_listeners.into_iter().zip(&node.config.listen_peer) {
        peer_addrs.push(listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen.addr,
            source,
        })?);
        peer_servers.push(tokio::spawn(peer_api::serve(
            listener,
            node.clone(),
            stopped.clone(),
            peer_tls.clone().filter(|_| listen.secure),
        )));
    }
    let (announce, published) = watch::channel(false);
    let mut client_addrs = Vec::new();
    let mut client_servers = Vec::new();
    for (listener, listen) in client_listeners.into_iter().zip(&node.config.listen_client) {
        client_addrs.push(listener.local_addr().map_err(|source| StartError::Bind {
            addr: listen.addr,
            source,
        })?);
        client_servers.push(tokio::spawn(serve_clients_once_published(
            published.clone(),
            listener,
            node.clone(),
            tls.clone().filter(|_| listen.secure),
        )));
    }
    tokio::spawn(follow_leadership(node.clone(), stopped.clone()));
    tokio::spawn(expire_leases(node.clone(), stopped.clone()));
    tokio::spawn(expire_v2_keys(node.clone(), stopped.clone()));
    tokio::spawn(notify_watch_progress(node.clone(), stopped.clone()));
    if !node.config.corrupt_check_interval.is_zero() {
        tokio::spawn(check_corruption(node.clone(), stopped.clone()));
    }
    tokio::spawn(publish_attributes(node.clone(), stopped, announce));
    // Peers are served from here on; clients once the attributes commit.
    tracing::info!(client = ?client_addrs, peer = ?peer_addrs, "listening");
    Ok(RunningNode {
        node,
        client_addrs,
        peer_addrs,
        client_servers,
        stop_peers,
        peer_servers,
    })
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn wait_for_stop(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// Follows Raft's state: runs the lease clocks exactly while this member
/// leads, remembers which members were removed, and notices when this one
/// was (from the membership, or from a peer's 410).
///
/// It watches the server metrics (role, leader, vote, membership), not the
/// full ones, which change with every append and apply: on those it woke
/// several times per write on every member for nothing.
async fn follow_leadership(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut metrics = node.raft.server_metrics();
    let me = node.identity.member_id;
    let mut was_member = false;
    let mut known: BTreeSet<MemberId> = BTreeSet::new();
    while !*stop.borrow() {
        let (leading, member, current) = {
            let m = metrics.borrow_and_update();
            node.leaders.observe(m.current_leader);
            let current: BTreeSet<MemberId> = m
                .membership_config
                .membership()
                .nodes()
                .map(|(id, _)| *id)
                .collect();
            let leading = m.current_leader == Some(me) && m.state == openraft::ServerState::Leader;
            (leading, current.contains(&me), current)
        };
        node.removed_members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(known.difference(&current).copied());
        known.extend(current);
        if (was_member && !member) || node.peer_stats.is_removed() {
            tracing::warn!("this member was removed from the cluster; stopping");
            node.removed.send_replace(true);
            return;
        }
        was_member |= member;
        node.lessor.set_leading(leading);
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() {
                return;
            },
            () = node.peer_stats.removal_told() => {}
            stopping = stop.changed() => if stopping.is_err() {
                return;
            },
        }
    }
}

/// Checks for expired leases twice a second, as etcd's leader does.
async fn expire_leases(node: Arc<Node>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while !*stop.borrow() {
        tick.tick().await;
        node.expire_leases().await;
    }
}

/// Runs the leader's consistency check every `--experimental-corrupt-check-time`.
async fn check_corruption(node: Arc<Node>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(node.config.corrupt_check_interval);
    tick.tick().await;
    while !*stop.borrow() {
        tick.tick().await;
        if let Err(e) = node.check_corruption().await {
            tracing::warn!(error = %e, "the corruption check failed");
        }
    }
}

/// Sweeps expired v2 nodes twice a second while leading, as etcd's
/// leader does.
async fn expire_v2_keys(node: Arc<Node>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    while !*stop.borrow() {
        tick.tick().await;
        node.expire_v2_keys().await;
    }
}

/// Sends periodic progress notifications to watches that asked for them.
async fn notify_watch_progress(node: Arc<Node>, stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(node.config.watch_progress_notify_interval);
    tick.tick().await;
    while !*stop.borrow() {
        tick.tick().await;
        node.hub.notify_periodic_progress();
    }
}

/// Serves one client listener, but only once this member's attributes are
/// committed, as etcd serves no client before it has published them: a
/// member that answers its clients is listed `started`, with its name, by
/// every member. Until then connections wait in the listen backlog.
async fn serve_clients_once_published(
    mut published: watch::Receiver<bool>,
    listener: TcpListener,
    node: Arc<Node>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let stop = node.stop.subscribe();
    tokio::select! {
        _ = published.wait_for(|published| *published) => {}
        () = wait_for_stop(stop.clone()) => return,
    }
    crate::api::serve_client(listener, node, stop, tls).await;
}

/// Announces this member's name and client URLs through Raft, retrying
/// until it is committed (MemberList shows them from then on), then lets
/// the client listeners serve (`published`).
async fn publish_attributes(
    node: Arc<Node>,
    stop: watch::Receiver<bool>,
    published: watch::Sender<bool>,
) {
    let attributes = MemberAttributes {
        id: node.identity.member_id,
        name: node.identity.name.clone(),
        client_urls: node.config.advertise_client_urls.clone(),
    };
    while !*stop.borrow() {
        match node
            .propose(Command::PublishMember(attributes.clone()))
            .await
        {
            Ok(_) => {
                tracing::info!("published member attributes; ready to serve client requests");
                published.send_replace(true);
                return;
            }
            Err(e) => {
                tracing::debug!(error = %e, "publishing member attributes; will retry");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}
