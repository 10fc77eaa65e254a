//! The data layer: tokio tasks that talk to the cluster through etcd's
//! public APIs only (gRPC on the client URLs; `/health`, `/metrics` and
//! `/v2/stats/self` over HTTP) and report to the core as [`Event`]s.
//!
//! - The poller ([`spawn_poller`]) runs one poll at a time (polls never
//!   overlap), numbers them, and waits `--refresh` between them, longer
//!   (backoff) while the cluster is unreachable. It can be paused and asked
//!   to poll now.
//! - [`Exec::run`] runs every other [`Command`] in its own task: key pages,
//!   values, history, watches, leases and mutations.
//!
//! `https://` URLs, gRPC and HTTP alike, go through TLS as etcdctl's flags
//! configure it (`cetera::client_tls`). With `--user`, every gRPC call
//! carries the auth token (`cetera::client_auth`): the first call
//! authenticates, and a token the server refuses (expired, or older than
//! the last user or role change) is renewed once and the call retried, as
//! the console runs for hours. Every call has a deadline; nothing here can
//! hang the console.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cetera::client_auth::{
    AuthChannel, AuthSession, Credentials, must_reauthenticate, watch_refused_token,
};
use cetera::client_tls::{ClientTls, TlsFlags, Transport};
use cetera::proto::etcdserverpb::alarm_request::AlarmAction;
use cetera::proto::etcdserverpb::cluster_client::ClusterClient;
use cetera::proto::etcdserverpb::kv_client::KvClient;
use cetera::proto::etcdserverpb::lease_client::LeaseClient;
use cetera::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cetera::proto::etcdserverpb::watch_client::WatchClient;
use cetera::proto::etcdserverpb::watch_request::RequestUnion;
use cetera::proto::etcdserverpb::{
    AlarmRequest, CompactionRequest, DefragmentRequest, DeleteRangeRequest, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest, MemberAddRequest, MemberListRequest,
    MemberPromoteRequest, MemberRemoveRequest, MoveLeaderRequest, PutRequest, RangeRequest,
    StatusRequest, WatchCreateRequest, WatchRequest,
};
use cetera::proto::mvccpb;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::app::{Command, Event, History, Op, WatchUpdate};
use crate::model::{
    Alarm, ClusterSnapshot, KeyPage, KeyValue, Lease, Member, MemberProbe, Metrics, SelfStats,
    Status as MemberStatus, WatchEvent,
};
use crate::tree::prefix_end;

/// Deadline of one gRPC or HTTP call.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(3);
/// Longest wait between polls while the cluster is unreachable.
pub const MAX_BACKOFF: Duration = Duration::from_secs(15);
/// At most this many leases are read with their keys.
pub const MAX_LEASES: usize = 1000;

/// Puts a scheme in front of an endpoint given without one, as etcdctl
/// does: `https://` when bare endpoints use TLS (`bare_tls`: a TLS file
/// given or `--insecure-transport=false`), `http://` otherwise.
pub fn normalize_endpoint(endpoint: &str, bare_tls: bool) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.contains("://") {
        e.to_string()
    } else if bare_tls {
        format!("https://{e}")
    } else {
        format!("http://{e}")
    }
}

/// Connections to the cluster: one lazily connected gRPC channel per URL
/// (reconnecting by itself) and one HTTP client. `https://` URLs, whether
/// configured or advertised by a member, go through TLS as the TLS flags
/// configure it (`cetera::client_tls`), gRPC and HTTP alike. gRPC requests
/// carry the auth token of `--user`, if any.
#[derive(Debug)]
pub struct Clients {
    endpoints: Vec<String>,
    channels: Mutex<HashMap<String, Channel>>,
    http: reqwest::Client,
    tls: ClientTls,
    auth: AuthSession,
}

/// How one try of a call on the endpoints ended.
enum Attempt<T> {
    Done(Result<T, String>),
    /// The server refused the token: authenticate again and retry.
    TokenRefused,
}

impl Clients {
    /// Clients for these endpoints (normalized: each has its scheme). Fails
    /// when an endpoint is not a URL or a TLS file cannot be used.
    pub fn new(
        endpoints: Vec<String>,
        tls: &TlsFlags,
        credentials: Option<Credentials>,
    ) -> anyhow::Result<Arc<Self>> {
        // Always ready for TLS: members may advertise `https://` URLs even
        // when the configured endpoints are plain.
        let tls = ClientTls::from_flags(tls, true)?
            .ok_or_else(|| anyhow::anyhow!("no TLS configuration"))?;
        let http = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .connect_timeout(CALL_TIMEOUT)
            .no_proxy()
            .build()?;
        for e in &endpoints {
            Endpoint::from_shared(grpc_url(e))
                .map_err(|err| anyhow::anyhow!("bad endpoint {e:?}: {err}"))?;
        }
        Ok(Arc::new(Self {
            endpoints,
            channels: Mutex::new(HashMap::new()),
            http,
            tls,
            auth: AuthSession::new(credentials),
        }))
    }

    /// The configured endpoints.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// The channel to `url`, its requests carrying the auth token.
    fn channel(&self, url: &str) -> Result<AuthChannel, String> {
        Ok(InterceptedService::new(
            self.plain_channel(url)?,
            self.auth.interceptor(),
        ))
    }

    fn plain_channel(&self, url: &str) -> Result<Channel, String> {
        let mut map = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(ch) = map.get(url) {
            return Ok(ch.clone());
        }
        let endpoint = Endpoint::from_shared(grpc_url(url))
            .map_err(|e| format!("{url}: {e}"))?
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT)
            .tcp_nodelay(true);
        let ch = match ClientTls::transport(Some(&self.tls), url) {
            Transport::Tls => {
                let connector = self.tls.connector(endpoint.uri(), CALL_TIMEOUT);
                endpoint.connect_with_connector_lazy(connector)
            }
            Transport::Plain => endpoint.connect_lazy(),
        };
        map.insert(url.to_string(), ch.clone());
        Ok(ch)
    }

    /// Gets a token (on the first endpoint that answers) when `--user` was
    /// given and none is held; `again` replaces one the server refused.
    /// The error names the user, for the header.
    pub async fn authenticate(&self, again: bool) -> Result<(), String> {
        if !again && !self.auth.needs_token() {
            return Ok(());
        }
        let mut errors = Vec::new();
        for url in &self.endpoints {
            let ch = self.plain_channel(url)?;
            let call = async {
                if again {
                    self.auth.reauthenticate(ch).await
                } else {
                    self.auth.ensure_token(ch).await
                }
            };
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(s)) if !unreachable(&s) => {
                    let user = self.auth.user().unwrap_or_default();
                    return Err(format!("user {user}: {}", status_text(&s)));
                }
                Ok(Err(s)) => errors.push(format!("{url}: {}", status_text(&s))),
                Err(_) => errors.push(format!("{url}: authentication timed out")),
            }
        }
        Err(errors.join("; "))
    }

    /// Runs `f` on the configured endpoints in turn until one answers
    /// (errors that mean "this endpoint is unreachable" move on to the next),
    /// authenticating first and once more if the server refuses the token.
    async fn any<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: Fn(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.call_on(&self.endpoints, f).await
    }

    /// [`Clients::any`] on one endpoint (per-member maintenance calls).
    async fn on<T, F, Fut>(&self, url: &str, f: F) -> Result<T, String>
    where
        F: Fn(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.call_on(&[url.to_string()], f).await
    }

    async fn call_on<T, F, Fut>(&self, urls: &[String], f: F) -> Result<T, String>
    where
        F: Fn(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        self.authenticate(false).await?;
        if let Attempt::Done(result) = self.try_endpoints(urls, &f).await {
            return result;
        }
        self.authenticate(true).await?;
        match self.try_endpoints(urls, &f).await {
            Attempt::Done(result) => result,
            Attempt::TokenRefused => Err(cetera::client_auth::INVALID_TOKEN.to_string()),
        }
    }

    async fn try_endpoints<T, F, Fut>(&self, urls: &[String], f: &F) -> Attempt<T>
    where
        F: Fn(AuthChannel) -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut errors = Vec::new();
        for url in urls {
            let ch = match self.channel(url) {
                Ok(ch) => ch,
                Err(e) => return Attempt::Done(Err(e)),
            };
            match f(ch).await {
                Ok(v) => return Attempt::Done(Ok(v)),
                Err(s) if must_reauthenticate(&s) && self.auth.enabled() => {
                    return Attempt::TokenRefused;
                }
                Err(s) if unreachable(&s) => errors.push(format!("{url}: {}", status_text(&s))),
                Err(s) => return Attempt::Done(Err(status_text(&s))),
            }
        }
        Attempt::Done(Err(errors.join("; ")))
    }

    async fn get_text(&self, url: String) -> Option<(u16, String)> {
        if url.starts_with("https://") {
            return tokio::time::timeout(CALL_TIMEOUT, https_get(&self.tls, &url))
                .await
                .ok()?
                .ok();
        }
        let resp = self.http.get(&url).send().await.ok()?;
        let code = resp.status().as_u16();
        Some((code, resp.text().await.ok()?))
    }
}

/// GET over TLS (the connection's ALPN picks HTTP/2 or HTTP/1.1): the
/// status and the body. One connection per request, as polls are seconds
/// apart; the caller bounds the time.
async fn https_get(tls: &ClientTls, url: &str) -> Result<(u16, String), String> {
    use http_body_util::{BodyExt, Empty};
    let uri: http::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let host = uri.host().unwrap_or("localhost").to_string();
    let port = uri.port_u16().unwrap_or(443);
    let io = tls
        .connect(&host, port, CALL_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let h2 = io.inner().get_ref().1.alpn_protocol() == Some(b"h2".as_slice());
    let authority = uri.authority().map_or(host.clone(), |a| a.to_string());
    let request = |uri: http::Uri| {
        http::Request::get(uri)
            .header(http::header::HOST, authority.as_str())
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())
    };
    let response = if h2 {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        sender
            .send_request(request(uri)?)
            .await
            .map_err(|e| e.to_string())?
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let path = uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .parse()
            .map_err(|e: http::uri::InvalidUri| e.to_string())?;
        sender
            .send_request(request(path)?)
            .await
            .map_err(|e| e.to_string())?
    };
    let code = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((code, String::from_utf8_lossy(&body).into_owned()))
}

/// The URL tonic is given: `https://` becomes `http://`, as TLS is added
/// by our connector underneath (tonic's own TLS is not built in).
fn grpc_url(url: &str) -> String {
    match url.strip_prefix("https://") {
        Some(rest) => format!("http://{rest}"),
        None => url.to_string(),
    }
}

fn unreachable(s: &Status) -> bool {
    matches!(
        s.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown
    )
}

/// A gRPC error in one line: etcd's message, or the code when there is none.
pub fn status_text(s: &Status) -> String {
    let msg = s.message().trim();
    let source = std::error::Error::source(s).map(|e| {
        let mut text = e.to_string();
        let mut cur = e.source();
        while let Some(inner) = cur {
            text = inner.to_string();
            cur = inner.source();
        }
        text
    });
    match (msg.is_empty(), source) {
        (true, Some(src)) => format!("{:?}: {src}", s.code()),
        (true, None) => format!("{:?}", s.code()),
        (false, Some(src)) if !msg.contains(&src) && s.code() == Code::Unavailable => {
            format!("{msg}: {src}")
        }
        (false, _) => msg.to_string(),
    }
}

/// Control messages for the poller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PollCtl {
    /// Poll now.
    Now,
    /// Stop (true) or resume (false) periodic polls.
    Pause(bool),
}

/// The wait before the next poll after `failures` failed polls in a row.
pub fn backoff(refresh: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return refresh;
    }
    let factor = 1u32 << failures.min(4);
    (refresh * factor).min(MAX_BACKOFF.max(refresh))
}

/// Starts the poller; it ends when the returned sender is dropped.
pub fn spawn_poller(
    clients: Arc<Clients>,
    refresh: Duration,
    tx: mpsc::UnboundedSender<Event>,
) -> mpsc::UnboundedSender<PollCtl> {
    spawn_poller_with(
        move || {
            let clients = clients.clone();
            async move { poll_once(&clients).await }
        },
        refresh,
        tx,
    )
}

/// The poller around any `poll` (tests inject a fake one). One poll runs
/// at a time: the next starts only after the previous answered, so polls
/// never overlap, and they are numbered so the core can drop a late one.
/// Between polls it waits `refresh`, longer ([`backoff`]) after failures.
pub fn spawn_poller_with<P, Fut>(
    poll: P,
    refresh: Duration,
    tx: mpsc::UnboundedSender<Event>,
) -> mpsc::UnboundedSender<PollCtl>
where
    P: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<ClusterSnapshot, String>> + Send,
{
    let (ctl_tx, mut ctl) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut seq = 0u64;
        let mut failures = 0u32;
        let mut paused = false;
        let mut poll_now = true;
        loop {
            if poll_now {
                seq += 1;
                // Tokio's clock, so that tests with a paused clock see it.
                let at = tokio::time::Instant::now().into_std();
                let result = poll().await;
                failures = if result.is_ok() { 0 } else { failures + 1 };
                if tx.send(Event::Cluster { seq, at, result }).is_err() {
                    return;
                }
                // Requests that arrived during the poll are served by it.
                while let Ok(msg) = ctl.try_recv() {
                    if let PollCtl::Pause(p) = msg {
                        paused = p;
                    }
                }
            }
            poll_now = false;
            let deadline = tokio::time::Instant::now() + backoff(refresh, failures);
            while !poll_now {
                let msg = if paused {
                    ctl.recv().await
                } else {
                    tokio::select! {
                        _ = tokio::time::sleep_until(deadline) => {
                            poll_now = true;
                            continue;
                        }
                        msg = ctl.recv() => msg,
                    }
                };
                match msg {
                    None => return,
                    Some(PollCtl::Now) => poll_now = true,
                    Some(PollCtl::Pause(p)) => {
                        paused = p;
                        poll_now = !p;
                    }
                }
            }
        }
    });
    ctl_tx
}

/// One complete poll: the member list, then every member's status,
/// `/health`, `/v2/stats/self` and `/metrics` concurrently, and the alarms.
pub async fn poll_once(clients: &Clients) -> Result<ClusterSnapshot, String> {
    // A failed authentication fails the poll, so the header shows it.
    clients.authenticate(false).await?;
    let mut listed = None;
    let mut errors = Vec::new();
    let mut unimplemented = 0;
    for url in clients.endpoints() {
        let ch = clients.channel(url)?;
        match ClusterClient::new(ch)
            .member_list(MemberListRequest {
                linearizable: false,
            })
            .await
        {
            Ok(resp) => {
                listed = Some((url.clone(), resp.into_inner()));
                break;
            }
            Err(s) => {
                if s.code() == Code::Unimplemented {
                    unimplemented += 1;
                }
                errors.push(format!("{url}: {}", status_text(&s)));
            }
        }
    }
    let (via, cluster_id, members) = match listed {
        Some((via, resp)) => {
            let members: Vec<Member> = resp
                .members
                .into_iter()
                .map(|m| Member {
                    id: m.id,
                    name: m.name,
                    peer_urls: m.peer_ur_ls,
                    client_urls: m.client_ur_ls,
                    is_learner: m.is_learner,
                })
                .collect();
            (via, resp.header.map_or(0, |h| h.cluster_id), members)
        }
        // A server without the Cluster service: the members are the endpoints.
        None if unimplemented > 0 => {
            let members: Vec<Member> = clients
                .endpoints()
                .iter()
                .map(|url| Member {
                    id: 0,
                    name: String::new(),
                    peer_urls: Vec::new(),
                    client_urls: vec![url.clone()],
                    is_learner: false,
                })
                .collect();
            (String::new(), 0, members)
        }
        None => return Err(errors.join("; ")),
    };
    let probes = futures::future::join_all(members.into_iter().map(|m| probe(clients, m))).await;
    let mut probes: Vec<MemberProbe> = probes;
    let mut cluster_id = cluster_id;
    for p in &mut probes {
        if let Ok(s) = &p.status {
            if p.member.id == 0 {
                p.member.id = s.member_id;
            }
            if cluster_id == 0 {
                cluster_id = s.cluster_id;
            }
        }
    }
    // Alarms come from the members' Status errors (etcd lists every active
    // alarm there): a poll then costs no Raft proposal, which an Alarm GET
    // would on etcd 3.4.
    let mut alarms: Vec<Alarm> = Vec::new();
    for p in &probes {
        if let Ok(s) = &p.status {
            for e in &s.errors {
                if let Some(alarm) = parse_alarm(e)
                    && !alarms.contains(&alarm)
                {
                    alarms.push(alarm);
                }
            }
        }
    }
    let alarms = Ok(alarms);
    let alarm_via = clients.endpoints().first().cloned().unwrap_or_default();
    let via = if via.is_empty() {
        format!(
            "{} (no member list: {})",
            alarm_via,
            errors.first().cloned().unwrap_or_default()
        )
    } else {
        via
    };
    Ok(ClusterSnapshot {
        via,
        cluster_id,
        members: probes,
        alarms,
    })
}

/// An alarm as etcd writes it in Status errors: `memberID:123 alarm:NOSPACE`.
pub fn parse_alarm(text: &str) -> Option<Alarm> {
    let mut member_id = None;
    let mut kind = None;
    for word in text.split_whitespace() {
        if let Some(id) = word.strip_prefix("memberID:") {
            member_id = id.parse().ok();
        } else if let Some(k) = word.strip_prefix("alarm:") {
            kind = Some(k.to_string());
        }
    }
    Some(Alarm {
        member_id: member_id?,
        kind: kind?,
    })
}

async fn probe(clients: &Clients, member: Member) -> MemberProbe {
    let Some(url) = member.client_urls.first().cloned() else {
        return MemberProbe {
            member,
            status: Err("not started".to_string()),
            health: None,
            stats: None,
            metrics: None,
        };
    };
    let status = async {
        let ch = clients.channel(&url)?;
        let resp = MaintenanceClient::new(ch)
            .status(StatusRequest {})
            .await
            .map_err(|s| status_text(&s))?
            .into_inner();
        let header = resp.header.unwrap_or_default();
        Ok(MemberStatus {
            version: resp.version,
            db_size: resp.db_size,
            db_size_in_use: resp.db_size_in_use,
            leader: resp.leader,
            raft_index: resp.raft_index,
            raft_term: resp.raft_term,
            raft_applied_index: resp.raft_applied_index,
            errors: resp.errors,
            is_learner: resp.is_learner,
            cluster_id: header.cluster_id,
            member_id: header.member_id,
            revision: header.revision,
        })
    };
    let health = clients.get_text(format!("{url}/health"));
    let stats = clients.get_text(format!("{url}/v2/stats/self"));
    let metrics = clients.get_text(format!("{url}/metrics"));
    let (status, health, stats, metrics) = tokio::join!(status, health, stats, metrics);
    MemberProbe {
        member,
        status,
        health: health.map(|(code, body)| code == 200 && parse_health(&body)),
        stats: stats
            .filter(|(code, _)| *code == 200)
            .and_then(|(_, b)| parse_self_stats(&b)),
        metrics: metrics
            .filter(|(code, _)| *code == 200)
            .map(|(_, b)| parse_metrics(&b)),
    }
}

/// `{"health":"true"}` -> true.
pub fn parse_health(body: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("health").cloned())
        .is_some_and(|h| h == "true" || h == true)
}

/// The fields of `/v2/stats/self` the console shows.
pub fn parse_self_stats(body: &str) -> Option<SelfStats> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    Some(SelfStats {
        state: v.get("state")?.as_str()?.to_string(),
        start_time: v
            .get("startTime")
            .and_then(|s| s.as_str())
            .unwrap_or_default()
            .to_string(),
        recv_append: v
            .get("recvAppendRequestCnt")
            .and_then(|n| n.as_u64())
            .unwrap_or(0),
        send_append: v
            .get("sendAppendRequestCnt")
            .and_then(|n| n.as_u64())
            .unwrap_or(0),
    })
}

/// The few Prometheus samples the console shows (unlabelled ones only).
pub fn parse_metrics(body: &str) -> Metrics {
    let mut m = Metrics::default();
    for line in body.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once(' ') else {
            continue;
        };
        let Ok(value) = value.trim().parse::<f64>() else {
            continue;
        };
        let slot = match name {
            "process_start_time_seconds" => &mut m.process_start,
            "etcd_server_proposals_committed_total" => &mut m.proposals_committed,
            "etcd_server_proposals_applied_total" => &mut m.proposals_applied,
            "etcd_server_proposals_pending" => &mut m.proposals_pending,
            "etcd_server_proposals_failed_total" => &mut m.proposals_failed,
            "etcd_server_leader_changes_seen_total" => &mut m.leader_changes,
            "etcd_server_has_leader" => &mut m.has_leader,
            _ => continue,
        };
        *slot = Some(value);
    }
    m
}

fn kv_from(kv: mvccpb::KeyValue) -> KeyValue {
    KeyValue {
        key: kv.key,
        value: kv.value,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        lease: kv.lease,
    }
}

/// Runs commands other than polling, each in its own task.
#[derive(Debug)]
pub struct Exec {
    clients: Arc<Clients>,
    tx: mpsc::UnboundedSender<Event>,
    poller: mpsc::UnboundedSender<PollCtl>,
    watches: HashMap<u64, AbortHandle>,
}

impl Drop for Exec {
    fn drop(&mut self) {
        for (_, h) in self.watches.drain() {
            h.abort();
        }
    }
}

impl Exec {
    /// An executor reporting to `tx` and steering `poller`.
    pub fn new(
        clients: Arc<Clients>,
        tx: mpsc::UnboundedSender<Event>,
        poller: mpsc::UnboundedSender<PollCtl>,
    ) -> Self {
        Self {
            clients,
            tx,
            poller,
            watches: HashMap::new(),
        }
    }

    /// Starts `cmd` (returns at once; the answer arrives as an event).
    pub fn run(&mut self, cmd: Command) {
        let clients = self.clients.clone();
        let tx = self.tx.clone();
        match cmd {
            Command::Quit => {}
            Command::Poll => {
                let _ = self.poller.send(PollCtl::Now);
            }
            Command::SetPaused(p) => {
                let _ = self.poller.send(PollCtl::Pause(p));
            }
            Command::ListKeys {
                req,
                prefix,
                start,
                limit,
            } => {
                tokio::spawn(async move {
                    let at = Instant::now();
                    let result = list_keys(&clients, &prefix, start, limit).await;
                    let _ = tx.send(Event::Keys { req, at, result });
                });
            }
            Command::GetKey { req, key } => {
                tokio::spawn(async move {
                    let at = Instant::now();
                    let result = get_key(&clients, &key, 0).await;
                    let _ = tx.send(Event::Value { req, at, result });
                });
            }
            Command::GetHistory {
                req,
                key,
                current,
                limit,
            } => {
                tokio::spawn(async move {
                    let at = Instant::now();
                    let result = history(&clients, &key, current, limit).await;
                    let _ = tx.send(Event::History { req, at, result });
                });
            }
            Command::Watch {
                id,
                prefix,
                start_revision,
            } => {
                let handle = tokio::spawn(watch(clients, id, prefix, start_revision, tx));
                self.watches.insert(id, handle.abort_handle());
            }
            Command::Unwatch { id } => {
                if let Some(h) = self.watches.remove(&id) {
                    h.abort();
                }
            }
            Command::ListLeases { req } => {
                tokio::spawn(async move {
                    let at = Instant::now();
                    let result = leases(&clients).await;
                    let _ = tx.send(Event::Leases { req, at, result });
                });
            }
            Command::Run(op) => {
                tokio::spawn(async move {
                    let result = run_op(&clients, &op).await;
                    let _ = tx.send(Event::Done { op, result });
                });
            }
        }
    }
}

async fn list_keys(
    clients: &Clients,
    prefix: &[u8],
    start: Vec<u8>,
    limit: i64,
) -> Result<KeyPage, String> {
    let key = if start.is_empty() { vec![0] } else { start };
    let range_end = prefix_end(prefix);
    let resp = clients
        .any(|ch| {
            let req = RangeRequest {
                key: key.clone(),
                range_end: range_end.clone(),
                limit,
                keys_only: true,
                ..RangeRequest::default()
            };
            async move { KvClient::new(ch).range(req).await }
        })
        .await?
        .into_inner();
    Ok(KeyPage {
        keys: resp.kvs.into_iter().map(|kv| kv.key).collect(),
        more: resp.more,
        revision: resp.header.map_or(0, |h| h.revision),
    })
}

async fn get_key(clients: &Clients, key: &[u8], revision: i64) -> Result<Option<KeyValue>, String> {
    let resp = clients
        .any(|ch| {
            let req = RangeRequest {
                key: key.to_vec(),
                revision,
                ..RangeRequest::default()
            };
            async move { KvClient::new(ch).range(req).await }
        })
        .await?
        .into_inner();
    Ok(resp.kvs.into_iter().next().map(kv_from))
}

/// Older revisions of `key`, newest first: reads at `mod_revision - 1` of
/// each entry until the key did not exist, the revisions are compacted, or
/// `limit` entries are read.
async fn history(
    clients: &Clients,
    key: &[u8],
    current: KeyValue,
    limit: usize,
) -> Result<History, String> {
    let mut rev = current.mod_revision - 1;
    let mut entries = vec![current];
    let mut end = String::new();
    while entries.len() < limit {
        if rev <= 0 {
            end = "start of the keyspace".to_string();
            break;
        }
        match get_key(clients, key, rev).await {
            Ok(Some(kv)) => {
                rev = kv.mod_revision - 1;
                entries.push(kv);
            }
            Ok(None) => {
                end = format!("key absent at revision {rev}");
                break;
            }
            Err(e) if e.contains("compacted") => {
                end = format!("revisions up to {rev} compacted");
                break;
            }
            Err(e) => return Err(e),
        }
    }
    if end.is_empty() {
        end = format!("latest {limit} revisions");
    }
    Ok(History { entries, end })
}

async fn watch(
    clients: Arc<Clients>,
    id: u64,
    prefix: Vec<u8>,
    start_revision: i64,
    tx: mpsc::UnboundedSender<Event>,
) {
    let send = |update| {
        let _ = tx.send(Event::Watch {
            id,
            at: Instant::now(),
            update,
        });
    };
    let create = WatchRequest {
        request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
            key: if prefix.is_empty() {
                vec![0]
            } else {
                prefix.clone()
            },
            range_end: prefix_end(&prefix),
            start_revision,
            ..WatchCreateRequest::default()
        })),
    };
    // A token the server refused (for a watch, a creation canceled with
    // `invalid auth token` or `revision of auth store is old` as its
    // reason) is renewed once and the watch opened again.
    let mut renewed = false;
    'open: loop {
        if let Err(e) = clients.authenticate(renewed).await {
            send(WatchUpdate::Failed(e));
            return;
        }
        let mut stream = match open_watch(&clients, &create).await {
            Ok(stream) => stream,
            Err(s) if must_reauthenticate(&s) && clients.auth.enabled() && !renewed => {
                renewed = true;
                continue 'open;
            }
            Err(s) => {
                send(WatchUpdate::Failed(status_text(&s)));
                return;
            }
        };
        loop {
            match stream.message().await {
                Ok(Some(resp)) => {
                    let refused = resp.created
                        && resp.canceled
                        && watch_refused_token(&resp.cancel_reason)
                        && clients.auth.enabled();
                    if refused && !renewed {
                        renewed = true;
                        continue 'open;
                    }
                    if resp.created {
                        send(WatchUpdate::Started {
                            revision: resp.header.as_ref().map_or(0, |h| h.revision),
                        });
                    }
                    if resp.canceled {
                        send(WatchUpdate::Failed(format!(
                            "watch cancelled: {}",
                            resp.cancel_reason
                        )));
                        return;
                    }
                    if !resp.events.is_empty() {
                        let events = resp
                            .events
                            .into_iter()
                            .map(|e| WatchEvent {
                                delete: e.r#type == mvccpb::event::EventType::Delete as i32,
                                kv: e.kv.map(kv_from).unwrap_or_default(),
                            })
                            .collect();
                        send(WatchUpdate::Events(events));
                    }
                }
                Ok(None) => {
                    send(WatchUpdate::Failed(
                        "the server closed the watch".to_string(),
                    ));
                    return;
                }
                Err(s) => {
                    send(WatchUpdate::Failed(status_text(&s)));
                    return;
                }
            }
        }
    }
}

/// Opens the watch stream on the first endpoint that answers.
async fn open_watch(
    clients: &Clients,
    create: &WatchRequest,
) -> Result<tonic::Streaming<cetera::proto::etcdserverpb::WatchResponse>, Status> {
    let mut errors = Vec::new();
    for url in clients.endpoints() {
        let ch = match clients.channel(url) {
            Ok(ch) => ch,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        // The request stream stays open (pending) for the life of the watch.
        let requests = futures::stream::iter([create.clone()]).chain(futures::stream::pending());
        match WatchClient::new(ch)
            .watch(tonic::Request::new(requests))
            .await
        {
            Ok(resp) => return Ok(resp.into_inner()),
            Err(s) if unreachable(&s) => errors.push(format!("{url}: {}", status_text(&s))),
            Err(s) => return Err(s),
        }
    }
    Err(Status::unavailable(errors.join("; ")))
}

async fn leases(clients: &Clients) -> Result<Vec<Lease>, String> {
    let ids: Vec<i64> = clients
        .any(|ch| async move {
            LeaseClient::new(ch)
                .lease_leases(LeaseLeasesRequest {})
                .await
        })
        .await?
        .into_inner()
        .leases
        .into_iter()
        .map(|l| l.id)
        .take(MAX_LEASES)
        .collect();
    let details = futures::stream::iter(ids)
        .map(|id| async move {
            clients
                .any(|ch| async move {
                    LeaseClient::new(ch)
                        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
                        .await
                })
                .await
                .map(|r| {
                    let r = r.into_inner();
                    Lease {
                        id,
                        ttl: r.ttl,
                        granted_ttl: r.granted_ttl,
                        keys: r.keys,
                    }
                })
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
    details.into_iter().collect()
}

async fn run_op(clients: &Clients, op: &Op) -> Result<String, String> {
    match op {
        Op::Put { key, value } => {
            let r = clients
                .any(|ch| {
                    let req = PutRequest {
                        key: key.clone(),
                        value: value.clone(),
                        ..PutRequest::default()
                    };
                    async move { KvClient::new(ch).put(req).await }
                })
                .await?
                .into_inner();
            Ok(format!("revision {}", r.header.map_or(0, |h| h.revision)))
        }
        Op::Delete { key } => {
            let r = clients
                .any(|ch| {
                    let req = DeleteRangeRequest {
                        key: key.clone(),
                        ..DeleteRangeRequest::default()
                    };
                    async move { KvClient::new(ch).delete_range(req).await }
                })
                .await?
                .into_inner();
            Ok(format!("{} key(s) deleted", r.deleted))
        }
        Op::MemberAdd {
            peer_urls,
            learner,
            name,
        } => {
            let r = clients
                .any(|ch| {
                    let req = MemberAddRequest {
                        peer_ur_ls: peer_urls.clone(),
                        is_learner: *learner,
                    };
                    async move { ClusterClient::new(ch).member_add(req).await }
                })
                .await?
                .into_inner();
            let id = r.member.as_ref().map_or(0, |m| m.id);
            let members: Vec<(u64, String, Vec<String>)> = r
                .members
                .into_iter()
                .map(|m| (m.id, m.name, m.peer_ur_ls))
                .collect();
            Ok(member_added_text(name, id, *learner, peer_urls, &members))
        }
        Op::MemberRemove { id } => {
            clients
                .any(|ch| async move {
                    ClusterClient::new(ch)
                        .member_remove(MemberRemoveRequest { id: *id })
                        .await
                })
                .await?;
            Ok(format!("member {id:016x} removed"))
        }
        Op::MemberPromote { id } => {
            clients
                .any(|ch| async move {
                    ClusterClient::new(ch)
                        .member_promote(MemberPromoteRequest { id: *id })
                        .await
                })
                .await?;
            Ok(format!("member {id:016x} promoted"))
        }
        Op::MoveLeader {
            id,
            leader_endpoint,
        } => {
            clients
                .on(leader_endpoint, |ch| async move {
                    MaintenanceClient::new(ch)
                        .move_leader(MoveLeaderRequest { target_id: *id })
                        .await
                })
                .await?;
            Ok(format!("leadership moved to {id:016x}"))
        }
        Op::Compact { revision } => {
            clients
                .any(|ch| async move {
                    KvClient::new(ch)
                        .compact(CompactionRequest {
                            revision: *revision,
                            physical: false,
                        })
                        .await
                })
                .await?;
            Ok(format!("compacted to revision {revision}"))
        }
        Op::Defrag { endpoint } => {
            clients
                .on(endpoint, |ch| async move {
                    MaintenanceClient::new(ch)
                        .defragment(DefragmentRequest {})
                        .await
                })
                .await?;
            Ok("defragmented".to_string())
        }
        Op::AlarmDisarm => {
            let alarms = clients
                .any(|ch| async move {
                    MaintenanceClient::new(ch)
                        .alarm(AlarmRequest {
                            action: AlarmAction::Get as i32,
                            member_id: 0,
                            alarm: 0,
                        })
                        .await
                })
                .await?
                .into_inner()
                .alarms;
            let n = alarms.len();
            for a in alarms {
                clients
                    .any(|ch| async move {
                        MaintenanceClient::new(ch)
                            .alarm(AlarmRequest {
                                action: AlarmAction::Deactivate as i32,
                                member_id: a.member_id,
                                alarm: a.alarm,
                            })
                            .await
                    })
                    .await?;
            }
            Ok(format!("{n} alarm(s) disarmed"))
        }
        Op::LeaseRevoke { id } => {
            clients
                .any(|ch| async move {
                    LeaseClient::new(ch)
                        .lease_revoke(LeaseRevokeRequest { id: *id })
                        .await
                })
                .await?;
            Ok("revoked".to_string())
        }
    }
}

/// What the console shows after `MemberAdd`: the flags to start the new
/// member with, its `--initial-cluster` line built from the member list the
/// server returned (`(id, name, peer URLs)`; the new member has no name
/// yet, so `name` stands in for it).
pub fn member_added_text(
    name: &str,
    id: u64,
    learner: bool,
    peer_urls: &[String],
    members: &[(u64, String, Vec<String>)],
) -> String {
    let mut initial = Vec::new();
    for (member_id, member_name, urls) in members {
        let member_name = if *member_id == id { name } else { member_name };
        for url in urls {
            initial.push(format!("{member_name}={url}"));
        }
    }
    format!(
        "Added {name} ({id:016x}) as a {}.\nStart it with these flags:\n--name {name} --initial-advertise-peer-urls {}\n--initial-cluster {}\n--initial-cluster-state existing{}",
        if learner { "learner" } else { "voter" },
        peer_urls.join(","),
        initial.join(","),
        if learner {
            "\nThen promote it once it has caught up."
        } else {
            ""
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake cluster for the poller: each poll takes 700 ms (virtual
    /// time), fails while `down` is set, and records how many run at once.
    #[derive(Clone, Default)]
    struct FakeCluster {
        in_flight: Arc<std::sync::atomic::AtomicUsize>,
        most_at_once: Arc<std::sync::atomic::AtomicUsize>,
        down: Arc<std::sync::atomic::AtomicBool>,
    }

    impl FakeCluster {
        async fn poll(self) -> Result<ClusterSnapshot, String> {
            use std::sync::atomic::Ordering::SeqCst;
            let now = self.in_flight.fetch_add(1, SeqCst) + 1;
            self.most_at_once.fetch_max(now, SeqCst);
            tokio::time::sleep(Duration::from_millis(700)).await;
            self.in_flight.fetch_sub(1, SeqCst);
            if self.down.load(SeqCst) {
                Err("connection refused".to_string())
            } else {
                Ok(ClusterSnapshot {
                    via: String::new(),
                    cluster_id: 1,
                    members: Vec::new(),
                    alarms: Ok(Vec::new()),
                })
            }
        }
    }

    /// The start times and sequence numbers of the next `n` polls.
    async fn next_polls(
        rx: &mut mpsc::UnboundedReceiver<Event>,
        n: usize,
    ) -> Vec<(u64, Instant, bool)> {
        let mut polls = Vec::new();
        while polls.len() < n {
            if let Some(Event::Cluster { seq, at, result }) = rx.recv().await {
                polls.push((seq, at, result.is_ok()));
            }
        }
        polls
    }

    fn gaps(polls: &[(u64, Instant, bool)]) -> Vec<Duration> {
        polls.windows(2).map(|w| w[1].1 - w[0].1).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn polls_never_overlap_back_off_while_failing_and_recover() {
        use std::sync::atomic::Ordering::SeqCst;
        let fake = FakeCluster::default();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let poller = fake.clone();
        let ctl = spawn_poller_with(
            move || poller.clone().poll(),
            Duration::from_millis(500),
            tx,
        );

        // Healthy: a poll every 700 ms + 500 ms.
        let polls = next_polls(&mut rx, 3).await;
        assert_eq!(gaps(&polls), [Duration::from_millis(1200); 2]);

        // Down: the waits double (1 s, 2 s, 4 s, 8 s), capped at 8 s (16x).
        fake.down.store(true, SeqCst);
        let polls = next_polls(&mut rx, 7).await;
        let waits: Vec<u128> = gaps(&polls).iter().map(|g| g.as_millis() - 700).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000, 8000, 8000]);
        assert!(polls.iter().all(|p| !p.2));

        // Back up: the next poll succeeds and the pace returns to normal.
        fake.down.store(false, SeqCst);
        let polls = next_polls(&mut rx, 3).await;
        assert!(polls.iter().all(|p| p.2));
        assert_eq!(gaps(&polls)[1], Duration::from_millis(1200));

        // `r` pressed over and over while polls run: still one at a time,
        // numbered in order.
        for _ in 0..30 {
            ctl.send(PollCtl::Now).unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let polls = next_polls(&mut rx, 3).await;
        assert_eq!(fake.most_at_once.load(SeqCst), 1, "polls overlapped");
        assert!(polls.windows(2).all(|w| w[1].0 == w[0].0 + 1));

        // Paused: no poll until resumed.
        ctl.send(PollCtl::Pause(true)).unwrap();
        while rx.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_secs(2)).await;
        while rx.try_recv().is_ok() {}
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(rx.try_recv().is_err(), "polled while paused");
        ctl.send(PollCtl::Pause(false)).unwrap();
        assert_eq!(next_polls(&mut rx, 1).await.len(), 1);
    }

    #[test]
    fn member_added_text_has_the_initial_cluster_line() {
        let members = vec![
            (1, "n1".to_string(), vec!["http://a:2380".to_string()]),
            (4, String::new(), vec!["http://d:2380".to_string()]),
        ];
        let text = member_added_text("n4", 4, true, &["http://d:2380".into()], &members);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "Added n4 (0000000000000004) as a learner.",
                "Start it with these flags:",
                "--name n4 --initial-advertise-peer-urls http://d:2380",
                "--initial-cluster n1=http://a:2380,n4=http://d:2380",
                "--initial-cluster-state existing",
                "Then promote it once it has caught up.",
            ]
        );
    }

    #[test]
    fn alarms_from_status_errors() {
        assert_eq!(
            parse_alarm("memberID:5457584563187937584 alarm:NOSPACE "),
            Some(Alarm {
                member_id: 5457584563187937584,
                kind: "NOSPACE".into()
            })
        );
        assert_eq!(parse_alarm("some other error"), None);
    }

    #[test]
    fn endpoints_get_a_scheme() {
        assert_eq!(
            normalize_endpoint("127.0.0.1:2379", false),
            "http://127.0.0.1:2379"
        );
        assert_eq!(
            normalize_endpoint("127.0.0.1:2379", true),
            "https://127.0.0.1:2379"
        );
        assert_eq!(normalize_endpoint("https://h:1/", false), "https://h:1");
        assert_eq!(normalize_endpoint("http://h:1", true), "http://h:1");
        assert_eq!(grpc_url("https://h:1"), "http://h:1");
        assert_eq!(grpc_url("http://h:1"), "http://h:1");
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let r = Duration::from_secs(2);
        assert_eq!(backoff(r, 0), r);
        assert_eq!(backoff(r, 1), Duration::from_secs(4));
        assert_eq!(backoff(r, 2), Duration::from_secs(8));
        assert_eq!(backoff(r, 9), MAX_BACKOFF);
        assert_eq!(backoff(Duration::from_secs(30), 3), Duration::from_secs(30));
    }

    #[test]
    fn parses_http_endpoints() {
        assert!(parse_health(r#"{"health":"true"}"#));
        assert!(!parse_health(r#"{"health":"false","reason":"no leader"}"#));
        let s = parse_self_stats(
            r#"{"name":"m3","id":"61112e7e314be265","state":"StateFollower","startTime":"2026-11-22T01:49:46.337817427Z","leaderInfo":{"leader":"a8b4","uptime":"3.3s","startTime":"2026-11-22T01:49:47.046547942Z"},"recvAppendRequestCnt":3,"sendAppendRequestCnt":0}"#,
        )
        .unwrap();
        assert_eq!(s.state, "StateFollower");
        assert_eq!(s.recv_append, 3);
        let m = parse_metrics(
            "# HELP x\netcd_server_has_leader 1\netcd_server_proposals_committed_total 8\nprocess_start_time_seconds 1.79531968996e+09\netcd_network_peer_sent_bytes_total{To=\"a\"} 60\n",
        );
        assert_eq!(m.has_leader, Some(1.0));
        assert_eq!(m.proposals_committed, Some(8.0));
        assert_eq!(m.process_start, Some(1.79531968996e9));
    }
}
