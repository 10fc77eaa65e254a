//! [`TestCluster`]: real server processes on loopback, started, killed,
//! stopped and restarted by tests.
//!
//! A cluster of `n` members of one [`Flavor`] gets a fresh temporary
//! directory holding each member's data dir (`n<k>/`) and log (`n<k>.log`,
//! stdout and stderr of every start of that member, appended). Member `i`
//! (0-based index) is named `n<i+1>` and started with etcd's flags:
//!
//! ```text
//! --name n1 --data-dir <tmp>/n1
//! --listen-client-urls http://127.0.0.1:<c1> --advertise-client-urls http://127.0.0.1:<c1>
//! --listen-peer-urls http://127.0.0.1:<p1> --initial-advertise-peer-urls http://127.0.0.1:<p1>
//! --initial-cluster n1=http://127.0.0.1:<p1>,n2=... --initial-cluster-state new
//! --initial-cluster-token <unique> --heartbeat-interval 50 --election-timeout 500
//! <extra flags of the cluster>
//! ```
//!
//! With [`ClusterBuilder::discovery`] the members bootstrap through a
//! discovery URL instead: `--discovery <url>` takes the place of
//! `--initial-cluster`, `--initial-cluster-state` and
//! `--initial-cluster-token`. With [`ClusterBuilder::spawn_members`]`(false)`
//! the members are prepared but not started; the test starts each with
//! [`Member::start`], in any order and at any time.
//!
//! [`ClusterBuilder::https_clients`] and [`ClusterBuilder::https_peers`]
//! turn the client or peer URLs into `https://` ones (the test gives the
//! TLS flags); [`ClusterBuilder::member_args`] gives one member flags of
//! its own.
//!
//! A restart runs exactly the same command line with the same data dir and
//! ports (etcd ignores the `--initial-*` flags once its data dir exists, and
//! cetera must do the same). Ports are leased for the cluster's lifetime (see
//! [`crate::ports`]), so nobody takes them while a member is down.
//!
//! Readiness is `GET /health` on the client URL answering 200 with a body
//! containing `"health":"true"`. Every wait has a deadline; nothing hangs.
//!
//! [`Member::freeze`] and [`Member::resume`] SIGSTOP and SIGCONT a member,
//! which cuts it off from its peers and clients while its process and
//! sockets stay. A cluster built with [`ClusterBuilder::cuttable_links`]
//! can also lose links while every process runs ([`TestCluster::cut`],
//! [`TestCluster::isolate`], [`TestCluster::heal`]; see [`crate::links`]).
//!
//! Dropping the cluster SIGKILLs and reaps every member and prints the tail
//! of each member's log to stderr (shown by the test runner only for failing
//! tests). Set `CETERA_TEST_KEEP=1` to keep the temporary directory.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use cetera::proto::etcdserverpb::kv_client::KvClient;
use cetera::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cetera::proto::etcdserverpb::{AlarmRequest, StatusRequest, StatusResponse};
use rustix::process::{Pid, Signal, kill_process};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout};
use tonic::transport::{Channel, Endpoint};

use crate::binaries::Flavor;
use crate::etcdctl::{self, CtlOutput};
use crate::links::Links;
use crate::ports::{self, PortLease};
use crate::spawn;

/// How long [`TestCluster::start`] and [`TestCluster::wait_ready`] wait by default.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`Member::stop`] waits for a SIGTERMed member to exit.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Per-request deadline of channels from [`TestCluster::grpc_channel`].
pub const RPC_TIMEOUT: Duration = Duration::from_secs(20);
/// How many log lines of each member are printed when a cluster is dropped.
const LOG_TAIL_LINES: usize = 60;
/// How many log lines an error message quotes (the drop report has more).
const ERROR_TAIL_LINES: usize = 40;
/// Start-up attempts with fresh ports when a port turns out to be taken.
const START_ATTEMPTS: usize = 5;

/// Options for a [`TestCluster`]; create with [`TestCluster::builder`].
#[derive(Clone, Debug)]
pub struct ClusterBuilder {
    flavor: Flavor,
    size: usize,
    heartbeat_ms: u64,
    election_ms: u64,
    extra_args: Vec<String>,
    env: Vec<(String, String)>,
    ready_timeout: Duration,
    wait_ready: bool,
    discovery: Option<String>,
    spawn_members: bool,
    /// `http` or `https` for every client URL.
    client_scheme: &'static str,
    /// `http` or `https` for every peer URL.
    peer_scheme: &'static str,
    /// Extra flags of single members (by index), after the cluster's.
    member_args: Vec<(usize, Vec<String>)>,
    /// Peer traffic through proxies whose links a test can cut.
    cuttable_links: bool,
}

impl ClusterBuilder {
    /// Client URLs are `https://` (give the TLS flags with
    /// [`ClusterBuilder::args`]). The harness speaks no TLS, so it does not
    /// wait for readiness: the test does, with a client that has the CA.
    pub fn https_clients(mut self) -> Self {
        self.client_scheme = "https";
        self.wait_ready = false;
        self
    }

    /// Peer URLs (listened on, advertised and in `--initial-cluster`) are
    /// `https://`; give the `--peer-*` TLS flags with
    /// [`ClusterBuilder::args`]. Client URLs stay as they are, so readiness
    /// is checked as usual.
    pub fn https_peers(mut self) -> Self {
        self.peer_scheme = "https";
        self
    }

    /// Extra flags for member `index` only, after the cluster's (for a
    /// member that differs from the others, such as one with another CA).
    pub fn member_args<I, S>(mut self, index: usize, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.member_args
            .push((index, args.into_iter().map(Into::into).collect()));
        self
    }

    /// Routes every member's peer traffic through a proxy (see
    /// [`crate::links`]) so the test can cut links between members with
    /// [`TestCluster::cut`], [`TestCluster::isolate`] and
    /// [`TestCluster::heal`]. Members advertise the proxy's port.
    pub fn cuttable_links(mut self) -> Self {
        self.cuttable_links = true;
        self
    }

    /// Bootstraps through this discovery URL (`--discovery <url>`) instead
    /// of a static `--initial-cluster`.
    pub fn discovery(mut self, url: impl Into<String>) -> Self {
        self.discovery = Some(url.into());
        self
    }

    /// Whether [`ClusterBuilder::start`] starts the members (default true).
    /// With false it only prepares them (ports, directories, command
    /// lines), and the test starts each with [`Member::start`].
    pub fn spawn_members(mut self, spawn: bool) -> Self {
        self.spawn_members = spawn;
        self
    }

    /// `--heartbeat-interval` in milliseconds (default 50).
    pub fn heartbeat_ms(mut self, ms: u64) -> Self {
        self.heartbeat_ms = ms;
        self
    }

    /// `--election-timeout` in milliseconds (default 500).
    pub fn election_ms(mut self, ms: u64) -> Self {
        self.election_ms = ms;
        self
    }

    /// One extra flag (or flag value) passed to every member, after the
    /// standard flags, on every start.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Several extra flags; see [`ClusterBuilder::arg`].
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Serves etcd's v2 API on every member (`--enable-v2`, a flag etcd 3.4
    /// and cetera both take; without it neither serves `/v2/keys`).
    pub fn enable_v2(self) -> Self {
        self.arg("--enable-v2")
    }

    /// An environment variable for every member (e.g. `RUST_LOG`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// How long to wait for readiness (default [`DEFAULT_READY_TIMEOUT`]).
    pub fn ready_timeout(mut self, timeout: Duration) -> Self {
        self.ready_timeout = timeout;
        self
    }

    /// Whether [`ClusterBuilder::start`] waits for every member to be healthy
    /// (default true).
    pub fn wait_ready(mut self, wait: bool) -> Self {
        self.wait_ready = wait;
        self
    }

    /// Starts the members and (by default) waits until all are healthy.
    /// Retries with new ports if a port was taken behind the harness's back.
    pub async fn start(self) -> Result<TestCluster> {
        if self.size == 0 {
            bail!("a cluster needs at least one member");
        }
        let program = self.flavor.binary()?;
        if !self.spawn_members {
            return self.launch(&program);
        }
        let mut last_error = None;
        for attempt in 1..=START_ATTEMPTS {
            let cluster = self.launch(&program)?;
            let started = if self.wait_ready {
                cluster.wait_all_ready().await
            } else {
                cluster.check_spawned().await
            };
            match started {
                Ok(()) => return Ok(cluster),
                Err(err) if cluster.port_clash() && attempt < START_ATTEMPTS => {
                    eprintln!(
                        "cluster start attempt {attempt}: a port was taken, retrying: {err:#}"
                    );
                    cluster.quiet_drop();
                    last_error = Some(err);
                }
                Err(err) => {
                    // Dropping `cluster` prints each member's log tail.
                    return Err(err.context(format!(
                        "starting a {}-member {} cluster",
                        self.size, self.flavor
                    )));
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("cluster start failed")))
    }

    /// Creates the directory, leases ports and spawns every member.
    fn launch(&self, program: &Path) -> Result<TestCluster> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("cetera-test-{}-", self.flavor))
            .tempdir()
            .context("creating the cluster's temporary directory")?;
        let proxied = if self.cuttable_links { self.size } else { 0 };
        let leases = ports::lease_many(2 * self.size + proxied)?;
        let (client_ports, rest) = leases.split_at(self.size);
        let (peer_ports, proxy_ports) = rest.split_at(self.size);
        let links = self
            .cuttable_links
            .then(|| {
                let ports = proxy_ports.iter().zip(peer_ports);
                Links::start(
                    ports
                        .map(|(proxy, own)| (proxy.port(), own.port()))
                        .collect(),
                )
            })
            .transpose()?
            .map(Arc::new);
        // The port peers dial: the member's own, or its proxy's.
        let advertised_port = |i: usize| match &links {
            Some(links) => links.proxy_port(i),
            None => peer_ports[i].port(),
        };
        let initial_cluster = (0..self.size)
            .map(|i| {
                format!(
                    "n{}={}://127.0.0.1:{}",
                    i + 1,
                    self.peer_scheme,
                    advertised_port(i)
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let token = unique_token();
        let members = (0..self.size)
            .map(|i| {
                let name = format!("n{}", i + 1);
                let client_port = client_ports[i].port();
                let peer_port = advertised_port(i);
                let data_dir = dir.path().join(&name);
                let client_url = format!("{}://127.0.0.1:{client_port}", self.client_scheme);
                let peer_url = format!("{}://127.0.0.1:{peer_port}", self.peer_scheme);
                let listen_peer_url =
                    format!("{}://127.0.0.1:{}", self.peer_scheme, peer_ports[i].port());
                let mut args: Vec<String> = vec![
                    "--name".into(),
                    name.clone(),
                    "--data-dir".into(),
                    data_dir.display().to_string(),
                    "--listen-client-urls".into(),
                    client_url.clone(),
                    "--advertise-client-urls".into(),
                    client_url.clone(),
                    "--listen-peer-urls".into(),
                    listen_peer_url,
                    "--initial-advertise-peer-urls".into(),
                    peer_url.clone(),
                ];
                match &self.discovery {
                    Some(url) => args.extend(["--discovery".into(), url.clone()]),
                    None => args.extend([
                        "--initial-cluster".into(),
                        initial_cluster.clone(),
                        "--initial-cluster-state".into(),
                        "new".into(),
                        "--initial-cluster-token".into(),
                        token.clone(),
                    ]),
                }
                args.extend([
                    "--heartbeat-interval".into(),
                    self.heartbeat_ms.to_string(),
                    "--election-timeout".into(),
                    self.election_ms.to_string(),
                ]);
                args.extend(self.extra_args.iter().cloned());
                for (_, own) in self.member_args.iter().filter(|(index, _)| *index == i) {
                    args.extend(own.iter().cloned());
                }
                Member {
                    index: i,
                    name: name.clone(),
                    client_scheme: self.client_scheme,
                    peer_scheme: self.peer_scheme,
                    client_port,
                    peer_port,
                    log_path: dir.path().join(format!("{name}.log")),
                    data_dir,
                    program: program.to_path_buf(),
                    args,
                    env: self.env.clone(),
                    process: Mutex::new(Process::default()),
                    moved_peer_port: Mutex::new(None),
                    links: links.clone(),
                }
            })
            .collect();
        let cluster = TestCluster {
            flavor: self.flavor,
            members,
            ready_timeout: self.ready_timeout,
            dir: Some(dir),
            _leases: leases,
            quiet: false,
            links,
        };
        if self.spawn_members {
            for member in &cluster.members {
                member.spawn()?;
            }
        }
        Ok(cluster)
    }
}

/// A cluster of real server processes; see the module docs.
#[derive(Debug)]
pub struct TestCluster {
    flavor: Flavor,
    members: Vec<Member>,
    ready_timeout: Duration,
    dir: Option<tempfile::TempDir>,
    _leases: Vec<PortLease>,
    quiet: bool,
    links: Option<Arc<Links>>,
}

impl TestCluster {
    /// Starts `n` members of `flavor` with default options and waits until
    /// every member is healthy.
    pub async fn start(flavor: Flavor, n: usize) -> Result<TestCluster> {
        Self::builder(flavor, n).start().await
    }

    /// Options for a cluster of `n` members of `flavor`.
    pub fn builder(flavor: Flavor, n: usize) -> ClusterBuilder {
        ClusterBuilder {
            flavor,
            size: n,
            heartbeat_ms: 50,
            election_ms: 500,
            extra_args: Vec::new(),
            env: Vec::new(),
            ready_timeout: DEFAULT_READY_TIMEOUT,
            wait_ready: true,
            discovery: None,
            spawn_members: true,
            client_scheme: "http",
            peer_scheme: "http",
            member_args: Vec::new(),
            cuttable_links: false,
        }
    }

    /// The flavor of every member.
    pub fn flavor(&self) -> Flavor {
        self.flavor
    }

    /// Number of members.
    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Member `i` (0-based; its name is `n<i+1>`).
    pub fn member(&self, i: usize) -> &Member {
        &self.members[i]
    }

    /// All members, in index order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The temporary directory holding data dirs and logs.
    pub fn dir(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// `http://127.0.0.1:<port>` client URL of every member.
    pub fn client_urls(&self) -> Vec<String> {
        self.members.iter().map(Member::client_url).collect()
    }

    /// Client URL of member `i`.
    pub fn client_url(&self, i: usize) -> String {
        self.members[i].client_url()
    }

    /// Comma-joined client URLs, as etcdctl's `--endpoints` takes them.
    pub fn endpoints(&self) -> String {
        self.client_urls().join(",")
    }

    /// Waits until member `i` answers `/health` with `"health":"true"`.
    /// Fails early, with the member's log tail, if its process exits.
    pub async fn wait_ready(&self, i: usize) -> Result<()> {
        self.wait_ready_for(i, self.ready_timeout).await
    }

    /// [`TestCluster::wait_ready`] with an explicit deadline.
    pub async fn wait_ready_for(&self, i: usize, limit: Duration) -> Result<()> {
        let member = &self.members[i];
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = member.exit_status()? {
                bail!(
                    "{} exited with {status} before becoming ready; log tail:\n{}",
                    member.name,
                    member.log_tail(ERROR_TAIL_LINES)
                );
            }
            if health(member.client_port).await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} not healthy at {}/health after {limit:?}; log tail:\n{}",
                    member.name,
                    member.client_url(),
                    member.log_tail(ERROR_TAIL_LINES)
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every member is healthy, except those a test took down
    /// on purpose ([`Member::kill`], [`Member::stop`]) and has not restarted.
    /// A member that exits on its own fails this at once, whichever member
    /// it is (a 3-member cluster never gets healthy if one of them died).
    pub async fn wait_all_ready(&self) -> Result<()> {
        let deadline = Instant::now() + self.ready_timeout;
        let mut pending: Vec<&Member> = self.members.iter().filter(|m| !m.taken_down()).collect();
        while !pending.is_empty() {
            for member in &pending {
                if let Some(status) = member.exit_status()? {
                    bail!(
                        "{} exited with {status} before becoming ready; log tail:\n{}",
                        member.name,
                        member.log_tail(ERROR_TAIL_LINES)
                    );
                }
            }
            let mut still_pending = Vec::new();
            for member in pending {
                if !health(member.client_port).await {
                    still_pending.push(member);
                }
            }
            pending = still_pending;
            if let Some(member) = pending.first()
                && Instant::now() >= deadline
            {
                bail!(
                    "{} not healthy at {}/health after {:?}; log tail:\n{}",
                    member.name,
                    member.client_url(),
                    self.ready_timeout,
                    member.log_tail(ERROR_TAIL_LINES)
                );
            }
            if !pending.is_empty() {
                sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Indices of members whose process is running.
    pub fn running(&self) -> Vec<usize> {
        self.members
            .iter()
            .filter(|m| m.is_running())
            .map(|m| m.index)
            .collect()
    }

    /// SIGTERMs every running member and waits for each to exit.
    pub async fn stop_all(&self) -> Result<()> {
        for member in &self.members {
            if member.is_running() {
                member.stop().await?;
            }
        }
        Ok(())
    }

    /// Restarts every member that is not running, then waits until all are
    /// healthy.
    pub async fn restart_all(&self) -> Result<()> {
        for member in &self.members {
            if !member.is_running() {
                member.restart().await?;
            }
        }
        self.wait_all_ready().await
    }

    /// A gRPC channel to member `i`. It connects lazily and reconnects after
    /// the member restarts; each request has a [`RPC_TIMEOUT`] deadline.
    pub fn grpc_channel(&self, i: usize) -> Result<Channel> {
        Ok(self.grpc_endpoint(i)?.connect_lazy())
    }

    /// The endpoint behind [`TestCluster::grpc_channel`], to customise.
    pub fn grpc_endpoint(&self, i: usize) -> Result<Endpoint> {
        Ok(Endpoint::from_shared(self.client_url(i))?
            .connect_timeout(Duration::from_secs(3))
            .timeout(RPC_TIMEOUT)
            .tcp_nodelay(true))
    }

    /// A KV client on member `i`.
    pub fn kv(&self, i: usize) -> Result<KvClient<Channel>> {
        Ok(KvClient::new(self.grpc_channel(i)?))
    }

    /// A Maintenance client on member `i`.
    pub fn maintenance(&self, i: usize) -> Result<MaintenanceClient<Channel>> {
        Ok(MaintenanceClient::new(self.grpc_channel(i)?))
    }

    /// `Maintenance.Status` of member `i`.
    pub async fn status(&self, i: usize) -> Result<StatusResponse> {
        let endpoint = self.grpc_endpoint(i)?.timeout(Duration::from_secs(3));
        let channel = endpoint.connect().await?;
        Ok(MaintenanceClient::new(channel)
            .status(StatusRequest {})
            .await?
            .into_inner())
    }

    /// Waits until every running member has applied everything the
    /// leader had committed when called (per `Maintenance.Status`), so a
    /// request to any member sees an earlier change: a member that has
    /// not applied `auth enable` yet, for one, takes a token-bearing request
    /// for an anonymous one, on etcd as on cetera.
    pub async fn wait_all_applied(&self) -> Result<()> {
        let leader = self.leader_index().await?;
        let committed = self.status(leader).await?.raft_index;
        let deadline = Instant::now() + self.ready_timeout;
        for i in self.running() {
            loop {
                let applied = self.status(i).await.map(|s| s.raft_applied_index);
                if applied.as_ref().is_ok_and(|a| *a >= committed) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("member {i} has not applied index {committed}: {applied:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    }

    /// Makes sure a membership change answered before this call cannot
    /// swallow the next one on real etcd. etcd 3.4 answers a change once it
    /// applied it, possibly before its raft marks it applied; a change
    /// proposed in that window is dropped ("ignoring conf change ...
    /// possible unapplied conf change" in its log) and its caller waits out
    /// its deadline. Any request through the log closes the window: an
    /// alarm list is one that changes nothing. (cetera needs none of this;
    /// it is done on both so tests run the same steps.)
    pub async fn settle_membership(&self) -> Result<()> {
        let member = *self.running().first().context("no member is running")?;
        let endpoint = self.grpc_endpoint(member)?.timeout(RPC_TIMEOUT);
        MaintenanceClient::new(endpoint.connect().await?)
            .alarm(AlarmRequest::default())
            .await?;
        Ok(())
    }

    /// The index of the current leader: a running member whose `Status`
    /// names itself as leader (the one with the highest term if several
    /// do). Polls until there is one, or fails after the ready timeout.
    pub async fn leader_index(&self) -> Result<usize> {
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            let mut best: Option<(u64, usize)> = None;
            for i in self.running() {
                let Ok(status) = self.status(i).await else {
                    continue;
                };
                let Some(header) = status.header else {
                    continue;
                };
                if status.leader != 0
                    && header.member_id == status.leader
                    && best.is_none_or(|(term, _)| status.raft_term > term)
                {
                    best = Some((status.raft_term, i));
                }
            }
            if let Some((_, i)) = best {
                return Ok(i);
            }
            if Instant::now() >= deadline {
                bail!("no leader among running members {:?}", self.running());
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    fn links(&self) -> Result<&Links> {
        self.links
            .as_deref()
            .context("links can be cut only in a cluster built with cuttable_links()")
    }

    /// Cuts the network link between members `a` and `b`, both ways; see
    /// [`crate::links`]. Their clients still reach both.
    pub fn cut(&self, a: usize, b: usize) -> Result<()> {
        self.links()?.cut(a, b)
    }

    /// Cuts every link of member `i`: a partition of one.
    pub fn isolate(&self, i: usize) -> Result<()> {
        self.links()?.isolate(i)
    }

    /// Heals every cut link.
    pub fn heal(&self) -> Result<()> {
        self.links()?.heal();
        Ok(())
    }

    /// The proxies behind [`ClusterBuilder::cuttable_links`], if any.
    pub fn link_proxies(&self) -> Option<&Links> {
        self.links.as_deref()
    }

    /// Indices of running members other than the leader.
    pub async fn follower_indices(&self) -> Result<Vec<usize>> {
        let leader = self.leader_index().await?;
        Ok(self
            .running()
            .into_iter()
            .filter(|&i| i != leader)
            .collect())
    }

    /// The value of the series `name` in member `i`'s `/metrics` (with
    /// its labels, as exposed: `m{a="x",b="y"}`), or `None` if the member
    /// does not answer or has no such series.
    pub async fn metric(&self, i: usize, name: &str) -> Option<f64> {
        let text = http_get(self.members[i].client_port, "/metrics").await?;
        metric_value(&text, name)
    }

    /// Waits until member `i` holds exactly `count` watches (etcd's
    /// `etcd_debugging_mvcc_watcher_total`), e.g. until watches that
    /// clients such as etcdctl open in the background exist. Fails after
    /// the ready timeout.
    pub async fn wait_watchers(&self, i: usize, count: usize) -> Result<()> {
        self.wait_metric(i, "etcd_debugging_mvcc_watcher_total", count as f64)
            .await
    }

    /// Waits until the unlabelled metric `name` of member `i` equals
    /// `value`. Fails after the ready timeout, naming the last value seen.
    pub async fn wait_metric(&self, i: usize, name: &str, value: f64) -> Result<()> {
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            let now = self.metric(i, name).await;
            if now == Some(value) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "member {i}: {name} is {now:?}, not {value}, after {:?}",
                    self.ready_timeout
                );
            }
            sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `ETCDCTL_API=3 etcdctl --endpoints=<all members> <args>` with
    /// `stdin` (or no input), returning exit status, stdout and stderr.
    pub async fn etcdctl(&self, args: &[&str], stdin: Option<&str>) -> Result<CtlOutput> {
        etcdctl::run(&self.endpoints(), args, stdin).await
    }

    /// Like [`TestCluster::etcdctl`], talking only to member `i`.
    pub async fn etcdctl_at(
        &self,
        i: usize,
        args: &[&str],
        stdin: Option<&str>,
    ) -> Result<CtlOutput> {
        etcdctl::run(&self.client_url(i), args, stdin).await
    }

    /// Like [`TestCluster::etcdctl`], but fails unless etcdctl exits 0;
    /// returns stdout.
    pub async fn etcdctl_ok(&self, args: &[&str]) -> Result<String> {
        self.etcdctl(args, None).await?.ok()
    }

    /// Checks shortly after spawning that no member died at once.
    async fn check_spawned(&self) -> Result<()> {
        sleep(Duration::from_millis(300)).await;
        for member in &self.members {
            if let Some(status) = member.exit_status()? {
                bail!(
                    "{} exited with {status} right after starting; log tail:\n{}",
                    member.name,
                    member.log_tail(ERROR_TAIL_LINES)
                );
            }
        }
        Ok(())
    }

    /// Whether any member's log says a port was already taken.
    fn port_clash(&self) -> bool {
        self.members.iter().any(|m| {
            std::fs::read_to_string(&m.log_path)
                .map(|log| log.to_lowercase().contains("address already in use"))
                .unwrap_or(false)
        })
    }

    /// Drops the cluster without printing log tails.
    fn quiet_drop(mut self) {
        self.quiet = true;
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for member in &self.members {
            member.kill_now();
        }
        if !self.quiet {
            let mut report = String::new();
            let _ = writeln!(
                report,
                "---- {} cluster in {} (panicking: {}) ----",
                self.flavor,
                self.dir().display(),
                std::thread::panicking()
            );
            for member in &self.members {
                let _ = writeln!(
                    report,
                    "---- last {LOG_TAIL_LINES} lines of {} ({}) ----\n{}",
                    member.name,
                    member.log_path.display(),
                    member.log_tail(LOG_TAIL_LINES)
                );
            }
            eprintln!("{report}");
        }
        if std::env::var_os("CETERA_TEST_KEEP").is_some_and(|v| v != "0" && !v.is_empty())
            && let Some(dir) = self.dir.take()
        {
            eprintln!("keeping {}", dir.keep().display());
        }
    }
}

/// State of a member's process.
#[derive(Debug, Default)]
struct Process {
    child: Option<Child>,
    /// Exit status of the last process, once reaped.
    exited: Option<ExitStatus>,
    /// Set by kill/stop, cleared by restart: the member is down on purpose.
    taken_down: bool,
    starts: u32,
}

/// One member of a [`TestCluster`]: a server process that can be killed,
/// stopped and restarted with the same command line.
#[derive(Debug)]
pub struct Member {
    index: usize,
    name: String,
    client_scheme: &'static str,
    peer_scheme: &'static str,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log_path: PathBuf,
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    process: Mutex<Process>,
    /// A peer port the member moved to (after `member update`), used from
    /// its next start on.
    moved_peer_port: Mutex<Option<PortLease>>,
    /// The cluster's link proxies, told each new process of this member.
    links: Option<Arc<Links>>,
}

impl Member {
    /// 0-based index in the cluster.
    pub fn index(&self) -> usize {
        self.index
    }

    /// `--name` (`n<index+1>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `http://127.0.0.1:<client port>` (`https://` with
    /// [`ClusterBuilder::https_clients`]).
    pub fn client_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.client_scheme, self.client_port)
    }

    /// `http://127.0.0.1:<peer port>` (the moved one, once moved;
    /// `https://` with [`ClusterBuilder::https_peers`]).
    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port())
    }

    fn peer_port(&self) -> u16 {
        let moved = self
            .moved_peer_port
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        moved.as_ref().map_or(self.peer_port, PortLease::port)
    }

    /// Makes the member listen on and advertise a new peer port from its
    /// next start on, as an operator does after `member update`. The member
    /// must be down.
    pub fn move_peer_port(&self, lease: PortLease) -> Result<()> {
        if self.is_running() {
            bail!("{} must be stopped before it moves", self.name);
        }
        if self.links.is_some() {
            bail!("a member behind a link proxy cannot move its peer port");
        }
        *self
            .moved_peer_port
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(lease);
        Ok(())
    }

    /// The command line for the next start: the peer listener and
    /// advertised URL follow a moved peer port.
    fn current_args(&self) -> Vec<String> {
        let original = format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port);
        let current = self.peer_url();
        let mut args = self.args.clone();
        for i in 1..args.len() {
            let flag = args[i - 1].as_str();
            if flag == "--listen-peer-urls" || flag == "--initial-advertise-peer-urls" {
                args[i] = args[i].replace(&original, &current);
            }
        }
        args
    }

    /// `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// File receiving the member's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The full command-line arguments (without the program).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// OS process id while running.
    pub fn pid(&self) -> Option<u32> {
        let mut process = self.lock();
        reap(&mut process);
        process.child.as_ref().map(Child::id)
    }

    /// Whether the process is alive.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    /// SIGKILLs the member (like `kill -9`) and reaps it.
    pub async fn kill(&self) -> Result<()> {
        self.signal(Signal::KILL)?;
        self.lock().taken_down = true;
        self.wait_exit(Duration::from_secs(10))
            .await
            .with_context(|| format!("{} survived SIGKILL", self.name))
    }

    /// SIGSTOPs the member: the process stays, with its sockets open, but
    /// does nothing (no heartbeats, no answers) until [`Member::resume`].
    /// Its peers see a member cut off; clients see requests hang. Dropping
    /// the cluster still SIGKILLs it.
    pub fn freeze(&self) -> Result<()> {
        self.signal(Signal::STOP)
    }

    /// SIGCONTs a member frozen by [`Member::freeze`].
    pub fn resume(&self) -> Result<()> {
        self.signal(Signal::CONT)
    }

    /// SIGTERMs the member and waits (up to [`STOP_TIMEOUT`]) for a clean
    /// exit. If it does not exit in time it is SIGKILLed and this fails.
    pub async fn stop(&self) -> Result<()> {
        self.signal(Signal::TERM)?;
        self.lock().taken_down = true;
        if self.wait_exit(STOP_TIMEOUT).await.is_err() {
            self.kill_now();
            bail!(
                "{} did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed it); log tail:\n{}",
                self.name,
                self.log_tail(ERROR_TAIL_LINES)
            );
        }
        Ok(())
    }

    /// SIGTERMs the member and returns at once, so a test can watch what
    /// its clients see while it stops; [`Member::wait_for_exit`] then waits
    /// for the exit.
    pub fn terminate(&self) -> Result<()> {
        self.signal(Signal::TERM)?;
        self.lock().taken_down = true;
        Ok(())
    }

    /// Starts the member again with the same command line, data dir and
    /// ports. Does not wait for readiness: use [`TestCluster::wait_ready`]
    /// (a lone member of a cluster without quorum never becomes healthy).
    pub async fn restart(&self) -> Result<()> {
        self.start().await
    }

    /// Starts the member's process: its first start in a cluster built
    /// with [`ClusterBuilder::spawn_members`]`(false)`, otherwise the same
    /// as [`Member::restart`]. Does not wait for readiness.
    pub async fn start(&self) -> Result<()> {
        if self.is_running() {
            bail!("{} is still running", self.name);
        }
        self.spawn()
    }

    /// Waits up to `limit` for the process to exit by itself; its status.
    pub async fn wait_for_exit(&self, limit: Duration) -> Result<ExitStatus> {
        self.wait_exit(limit).await?;
        self.exit_status()?
            .with_context(|| format!("{} was never started", self.name))
    }

    /// The last `n` lines of the member's log.
    pub fn log_tail(&self, n: usize) -> String {
        match std::fs::read(&self.log_path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(n)..].join("\n")
            }
            Err(err) => format!("<no log at {}: {err}>", self.log_path.display()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Process> {
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a test took the member down on purpose (and has not
    /// restarted it).
    fn taken_down(&self) -> bool {
        self.lock().taken_down
    }

    /// `Some(status)` once the last started process has exited.
    fn exit_status(&self) -> Result<Option<ExitStatus>> {
        let mut process = self.lock();
        reap(&mut process);
        Ok(if process.child.is_none() {
            process.exited
        } else {
            None
        })
    }

    fn spawn(&self) -> Result<()> {
        let mut process = self.lock();
        if process.child.is_some() {
            bail!("{} already has a process", self.name);
        }
        process.starts += 1;
        let mut log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let args = self.current_args();
        writeln!(
            log,
            "==== harness: start #{} of {}: {} {} ====",
            process.starts,
            self.name,
            self.program.display(),
            args.join(" ")
        )?;
        let mut cmd = spawn::guarded_command(&self.program);
        // etcd reads ETCD_* variables as flags: only the command line counts.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCD_") {
                cmd.env_remove(key);
            }
        }
        cmd.args(&args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = spawn::spawn(cmd)?;
        if let Some(links) = &self.links {
            links.set_pid(self.index, child.id());
        }
        process.child = Some(child);
        process.exited = None;
        process.taken_down = false;
        Ok(())
    }

    fn signal(&self, signal: Signal) -> Result<()> {
        let mut process = self.lock();
        reap(&mut process);
        let Some(child) = process.child.as_ref() else {
            bail!("{} is not running", self.name);
        };
        kill_process(Pid::from_child(child), signal)
            .with_context(|| format!("signalling {}", self.name))
    }

    async fn wait_exit(&self, limit: Duration) -> Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            if !self.is_running() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("{} still running after {limit:?}", self.name);
            }
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// Synchronous SIGKILL and reap, for `Drop`.
    fn kill_now(&self) {
        let mut process = self.lock();
        if let Some(mut child) = process.child.take() {
            let _ = child.kill();
            process.exited = child.wait().ok();
        }
    }
}

/// Reaps the child if it has exited.
fn reap(process: &mut Process) {
    if let Some(child) = process.child.as_mut()
        && let Ok(Some(status)) = child.try_wait()
    {
        process.exited = Some(status);
        process.child = None;
    }
}

/// A token no other cluster (in any process) uses.
fn unique_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "cetera-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// `GET /health` on a loopback client port: true on 200 with
/// `"health":"true"`. Never takes more than a few seconds.
async fn health(port: u16) -> bool {
    match http_get(port, "/health").await {
        Some(text) => {
            let status_ok = text
                .lines()
                .next()
                .is_some_and(|l| l.starts_with("HTTP/1.") && l.split(' ').nth(1) == Some("200"));
            status_ok && text.contains(r#""health":"true""#)
        }
        None => false,
    }
}

/// The whole HTTP/1.1 response (status line, headers, body) to `GET path`
/// on a loopback port, or `None` if there is none within a few seconds.
async fn http_get(port: u16, path: &str) -> Option<String> {
    let attempt = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(
                format!(
                    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        anyhow::Ok(response)
    };
    match timeout(Duration::from_secs(3), attempt).await {
        Ok(Ok(response)) => Some(String::from_utf8_lossy(&response).into_owned()),
        _ => None,
    }
}

/// The value of a series (name and labels, as exposed) in a Prometheus
/// text exposition.
fn metric_value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let (metric, value) = line.split_once(' ')?;
            (metric == name).then(|| value.trim().parse().ok())?
        })
}

#[cfg(test)]
mod tests {
    use super::metric_value;

    #[test]
    fn metric_values_are_found_by_exact_name() {
        let text = "# HELP a_total x\n# TYPE a_total gauge\na_total 3\nab_total 7\nc{l=\"v\"} 1\n";
        assert_eq!(metric_value(text, "a_total"), Some(3.0));
        assert_eq!(metric_value(text, "ab_total"), Some(7.0));
        assert_eq!(metric_value(text, "b_total"), None);
        assert_eq!(metric_value(text, "c{l=\"v\"}"), Some(1.0));
        assert_eq!(metric_value(text, "c"), None);
    }
}
