//! The client side of peer traffic: Raft RPCs and node-to-node requests,
//! as postcard-encoded HTTP POSTs to the peer URL.
//!
//! One pooled HTTP/1.1 client serves every peer (keep-alive connections
//! are reused), over TLS for `https://` peer URLs (`connector`). Every
//! request names the cluster it belongs to, so a member of
//! another cluster is refused instead of corrupting this one.
//! AppendEntries, the one RPC of every write, travels instead on
//! connections upgraded from such a request (`append_stream`), kept in a
//! pool per member that every connection openraft makes to it shares: the
//! replication stream's connection, and the one-off connections of each
//! leadership check (one per linearizable read round), which would
//! otherwise open and close a TCP connection per member every round.
//! Forwarded proposals, read-index questions and lease renewals ride call
//! streams (`call_stream`), also pooled per member.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use openraft::error::{
    InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError, RemoteError, Timeout,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{EntryPayload, RPCTypes};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_rustls::TlsConnector;

use super::append_stream::{AppendStream, StreamAnswer};
use super::call_stream::{CallAnswer, CallStream};
use super::connector::PeerConnector;
use super::log_store::Durability;
use super::stream::StreamError;
use super::{Entry, LogId, MemberId, MemberNode, TypeConfig, Vote};
use crate::server::PeerStats;

/// The header that carries the sender's cluster id (hex).
pub const CLUSTER_ID_HEADER: &str = "x-cetera-cluster-id";
/// The header that carries the sender's member id (hex).
pub const MEMBER_ID_HEADER: &str = "x-cetera-member-id";

/// Peer request paths, shared with the peer server.
pub mod paths {
    pub const APPEND: &str = "raft/append";
    /// Upgraded to a stream of AppendEntries (`append_stream`).
    pub const APPEND_STREAM: &str = "raft/append-stream";
    pub const VOTE: &str = "raft/vote";
    pub const SNAPSHOT: &str = "raft/snapshot";
    pub const PROPOSE: &str = "cetera/propose";
    pub const READ_INDEX: &str = "cetera/read-index";
    /// Upgraded to a stream of calls (`call_stream`).
    pub const CALL_STREAM: &str = "cetera/call-stream";
    pub const IDENTITY: &str = "cetera/identity";
    pub const LEASE_CLOCK: &str = "cetera/lease-clock";
    pub const MEMBER_CHANGE: &str = "cetera/member-change";
    /// The leader asks a member to start an election now (leadership
    /// transfer).
    pub const CAMPAIGN: &str = "cetera/campaign";
    /// The leader's corruption check asks a member for its HashKV.
    pub const HASH_KV: &str = "cetera/hash-kv";
    /// The leader tells a member it has just removed from the cluster.
    pub const REMOVED: &str = "cetera/removed";
    /// Read-only and open to members of no cluster yet (joining members).
    pub const MEMBERS: &str = "cetera/members";
}

/// Why a peer request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PeerError {
    /// The request never left: the member may not have it.
    #[error("peer {url} unreachable: {detail}")]
    Unreachable { url: String, detail: String },
    /// The request was sent but its answer never came: the member may
    /// have acted on it, so it must not be sent again blindly.
    #[error("peer {url} lost the request: {detail}")]
    Lost { url: String, detail: String },
    #[error("peer {url} timed out")]
    Timeout { url: String },
    #[error("peer {url} refused the request ({status}): {detail}")]
    Refused {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("peer {url} sent an undecodable answer: {detail}")]
    Decode { url: String, detail: String },
}

/// A pooled HTTP client for peer requests.
#[derive(Clone)]
pub struct PeerClient {
    http: Client<PeerConnector, Full<Bytes>>,
    /// For the connections that are not pooled: append streams.
    connector: PeerConnector,
    /// Idle call streams, per peer URL.
    calls: Arc<Mutex<HashMap<String, CallPool>>>,
    cluster_id: u64,
    member_id: u64,
}

/// How many idle call streams to one member are kept at most: as many as
/// calls were made at once, up to this. Fewer than the calls a busy member
/// makes at once would open and close connections all the time.
const MAX_IDLE_CALL_STREAMS: usize = 1024;
/// An idle call stream unused for this long is closed (when a call gives
/// another one back), so a burst's streams do not stay open for good.
const CALL_STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a member that refused call streams (it predates them) gets
/// single requests before streams are tried again (it may be upgraded).
const CALL_STREAMS_RETRY: Duration = Duration::from_secs(60);

/// The call streams to one member.
#[derive(Default)]
struct CallPool {
    /// Idle streams with when each was last given back, oldest first.
    idle: std::collections::VecDeque<(CallStream, std::time::Instant)>,
    /// Until when the member gets single requests (it answered 404).
    unsupported_until: Option<std::time::Instant>,
}

/// Drops the idle entries (oldest first) unused for longer than
/// [`CALL_STREAM_IDLE_TIMEOUT`] at `now`.
fn drop_expired<T>(
    idle: &mut std::collections::VecDeque<(T, std::time::Instant)>,
    now: std::time::Instant,
) {
    while idle
        .front()
        .is_some_and(|(_, since)| now.duration_since(*since) > CALL_STREAM_IDLE_TIMEOUT)
    {
        idle.pop_front();
    }
}

/// The calls made for client requests, many per second under load: they
/// go on call streams. The rest (Raft's votes and snapshots, membership
/// changes, a joining member's questions) stay single requests.
fn rides_a_stream(path: &str) -> bool {
    matches!(
        path,
        paths::PROPOSE | paths::READ_INDEX | paths::LEASE_CLOCK
    )
}

impl PeerClient {
    /// A client of no cluster yet (a joining member asking who it is);
    /// `tls` serves every `https://` peer URL.
    pub fn new(tls: TlsConnector) -> Self {
        let connector = PeerConnector::new(tls);
        let http = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .build(connector.clone());
        Self {
            http,
            connector,
            calls: Default::default(),
            cluster_id: 0,
            member_id: 0,
        }
    }

    /// The same connections, with requests naming the sending member (call
    /// streams, which name it once when opened, are its own).
    pub fn for_member(&self, cluster_id: u64, member_id: u64) -> Self {
        Self {
            http: self.http.clone(),
            connector: self.connector.clone(),
            calls: Default::default(),
            cluster_id,
            member_id,
        }
    }

    /// Sends `body` to `<base>/<path>` and decodes the answer: on a call
    /// stream for the hot paths (`rides_a_stream`) when the member serves
    /// them, as a single POST otherwise.
    pub async fn call<Req, Resp>(
        &self,
        base: &str,
        path: &str,
        body: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError>
    where
        Req: Serialize + ?Sized,
        Resp: DeserializeOwned,
    {
        let url = format!("{}/{path}", base.trim_end_matches('/'));
        let bytes = postcard::to_stdvec(body).map_err(|e| PeerError::Decode {
            url: url.clone(),
            detail: e.to_string(),
        })?;
        let on_stream = rides_a_stream(path) && self.call_streams_for(base);
        let exchange = async {
            if on_stream && let Some(answer) = self.call_on_stream(base, &url, path, &bytes).await?
            {
                return Ok((answer.status, answer.body));
            }
            self.post(&url, bytes).await
        };
        let (status, body) = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| PeerError::Timeout { url: url.clone() })??;
        if !(200..300).contains(&status) {
            return Err(PeerError::Refused {
                url,
                status,
                detail: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        postcard::from_bytes(&body).map_err(|e| PeerError::Decode {
            url,
            detail: e.to_string(),
        })
    }

    /// One call as a single HTTP request.
    async fn post(&self, url: &str, bytes: Vec<u8>) -> Result<(u16, Bytes), PeerError> {
        let request = http::Request::post(url)
            .header(CLUSTER_ID_HEADER, format!("{:x}", self.cluster_id))
            .header(MEMBER_ID_HEADER, format!("{:x}", self.member_id))
            // Explicit even when zero: the peer server requires a length.
            .header(http::header::CONTENT_LENGTH, bytes.len())
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| unreachable(url, &e))?;
        let response = self.http.request(request).await.map_err(|e| {
            if e.is_connect() {
                unreachable(url, &e)
            } else {
                lost(url, &e)
            }
        })?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| lost(url, &e))?
            .to_bytes();
        Ok((status, body))
    }

    /// Whether calls to the member at `base` go on streams now.
    fn call_streams_for(&self, base: &str) -> bool {
        let calls = lock(&self.calls);
        let until = calls.get(base).and_then(|pool| pool.unsupported_until);
        until.is_none_or(|until| std::time::Instant::now() >= until)
    }

    /// One call on an idle call stream to the member at `base`, or on a
    /// new one; `None` when the member has no call streams (404 to the
    /// upgrade: it predates them). A stream that fails is dropped; one
    /// that answered is kept for the next call.
    async fn call_on_stream(
        &self,
        base: &str,
        url: &str,
        path: &str,
        body: &[u8],
    ) -> Result<Option<CallAnswer>, PeerError> {
        let idle = self.take_idle_call_stream(base);
        let mut stream = match idle {
            Some(stream) => stream,
            None => match CallStream::open(&self.connector, base, self.sender_headers()).await {
                Ok(stream) => stream,
                Err(StreamError::Refused { status: 404, .. }) => {
                    lock(&self.calls)
                        .entry(base.to_string())
                        .or_default()
                        .unsupported_until = Some(std::time::Instant::now() + CALL_STREAMS_RETRY);
                    return Ok(None);
                }
                Err(StreamError::Refused { status, detail }) => {
                    return Err(PeerError::Refused {
                        url: url.to_string(),
                        status,
                        detail,
                    });
                }
                Err(e) => {
                    return Err(PeerError::Unreachable {
                        url: url.to_string(),
                        detail: e.to_string(),
                    });
                }
            },
        };
        let answer = stream.call(path, body).await.map_err(|e| PeerError::Lost {
            url: url.to_string(),
            detail: e.to_string(),
        })?;
        let now = std::time::Instant::now();
        let mut calls = lock(&self.calls);
        let pool = calls.entry(base.to_string()).or_default();
        pool.unsupported_until = None;
        drop_expired(&mut pool.idle, now);
        if pool.idle.len() < MAX_IDLE_CALL_STREAMS {
            pool.idle.push_back((stream, now));
        }
        Ok(Some(answer))
    }

    /// An idle call stream to `base` that is still open, if any (dead ones
    /// are dropped on the way).
    fn take_idle_call_stream(&self, base: &str) -> Option<CallStream> {
        let mut calls = lock(&self.calls);
        let pool = calls.get_mut(base)?;
        // The most recently used first: the oldest may expire unused.
        while let Some((mut stream, _)) = pool.idle.pop_back() {
            if !stream.is_dead() {
                return Some(stream);
            }
        }
        None
    }

    /// The headers that name this member and its cluster.
    fn sender_headers(&self) -> [(&'static str, String); 2] {
        [
            (CLUSTER_ID_HEADER, format!("{:x}", self.cluster_id)),
            (MEMBER_ID_HEADER, format!("{:x}", self.member_id)),
        ]
    }

    /// Opens an append stream to the member at `base`, naming this member
    /// and its cluster as every request does.
    async fn open_append_stream(&self, base: &str) -> Result<AppendStream, StreamError> {
        AppendStream::open(&self.connector, base, self.sender_headers()).await
    }
}

/// The error with its causes: the outer ones only say "client error
/// (Connect)", the cause says which (refused, or the certificate's fault).
fn unreachable(url: &str, e: &(dyn std::error::Error + 'static)) -> PeerError {
    PeerError::Unreachable {
        url: url.to_string(),
        detail: with_causes(e),
    }
}

/// The error with its causes, for a request that was sent.
fn lost(url: &str, e: &(dyn std::error::Error + 'static)) -> PeerError {
    PeerError::Lost {
        url: url.to_string(),
        detail: with_causes(e),
    }
}

/// `e` and its causes, outermost first.
pub(super) fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

/// openraft's connection factory: a [`PeerConnection`] per call of
/// `new_client` (one per replication stream, and one per target for each
/// leadership check and election), all to one member sharing its pool of
/// append streams.
#[derive(Clone)]
pub struct PeerNetwork {
    client: PeerClient,
    stats: Arc<PeerStats>,
    durability: Durability,
    pools: Arc<Mutex<HashMap<(MemberId, String), SharedPool>>>,
}

impl PeerNetwork {
    /// `durability` is this member's log's: replication never runs ahead of
    /// it (see `log_store`).
    pub fn new(client: PeerClient, stats: Arc<PeerStats>, durability: Durability) -> Self {
        Self {
            client,
            stats,
            durability,
            pools: Default::default(),
        }
    }

    /// The pool of append streams to `target` at `url` (a member whose URL
    /// changed gets a new pool: its old streams go to the old address).
    fn pool(&self, target: MemberId, url: &str) -> SharedPool {
        lock(&self.pools)
            .entry((target, url.to_string()))
            .or_default()
            .clone()
    }
}

impl RaftNetworkFactory<TypeConfig> for PeerNetwork {
    type Network = PeerConnection;

    async fn new_client(&mut self, target: MemberId, node: &MemberNode) -> PeerConnection {
        let url = node.peer_urls.first().cloned().unwrap_or_default();
        PeerConnection {
            peer: Peer {
                client: self.client.clone(),
                stats: self.stats.clone(),
                durability: self.durability.clone(),
                target,
                streams: self.pool(target, &url),
                url,
            },
            in_flight: None,
        }
    }
}

/// Raft RPCs to one member.
///
/// openraft 0.9 gives every AppendEntries one heartbeat interval and then
/// drops it. A member that needs longer (encoding, sending, decoding and
/// fsyncing a batch of entries on a busy machine easily does) would never
/// be heard from if the request died with openraft's wait: openraft sends
/// the same entries again, they take as long again, and the member falls
/// behind for good. So an append runs in a task of its own, with a longer
/// deadline ([`APPEND_PATIENCE`]), and outlives the call that started it:
/// the next call waits for it first and, when it was about the same place
/// in the log, answers from it (openraft accepts a partial success) instead
/// of sending those entries again. At most one append of a connection (one
/// replication stream) is on its way at any time.
pub struct PeerConnection {
    peer: Peer,
    in_flight: Option<InFlightAppend>,
}

/// What a peer request needs; cheap to clone into the task that sends it.
#[derive(Clone)]
struct Peer {
    client: PeerClient,
    stats: Arc<PeerStats>,
    durability: Durability,
    target: MemberId,
    url: String,
    /// The member's idle append streams, shared by every connection to it.
    streams: SharedPool,
}

/// The append streams to one member and the gate for opening new ones.
#[derive(Default)]
struct PeerStreams {
    pool: Mutex<StreamPool>,
    /// Held while a new stream is being opened; holds when the next
    /// attempt may start after one failed to connect.
    dialing: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

type SharedPool = Arc<PeerStreams>;

/// How long after a failed attempt to connect to a member the next one
/// starts. Every linearizable read sends to every voter: without a pause a
/// member that is down would be dialled once per read (a flood of SYNs and,
/// in openraft, an error line per read); with it, the read's request to
/// that member waits for the next attempt and the quorum answers first.
const REDIAL_AFTER: Duration = Duration::from_millis(100);

/// How many idle append streams to one member are kept at most: one for
/// replication and one for leadership checks is the usual need.
const MAX_IDLE_STREAMS: usize = 4;

/// Where the appends to one member go.
#[derive(Default)]
struct StreamPool {
    /// Streams whose last exchange went well, not in use. An append takes
    /// one (or opens one) and gives it back once answered, so a stream is
    /// only ever in step: one that failed or timed out is dropped.
    idle: Vec<AppendStream>,
    /// The member predates append streams (404 to the upgrade): appends go
    /// as single requests.
    unsupported: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Never held across a panic that leaves it half-changed: the pool's
    // state is valid at every step.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

type RpcResult<T, E> = Result<T, RPCError<MemberId, MemberNode, E>>;
type AppendAnswer = RpcResult<AppendEntriesResponse<MemberId>, RaftError<MemberId>>;

/// How many heartbeat intervals an append may take before it counts as
/// lost (the member is then sent a new one).
const APPEND_PATIENCE: u32 = 20;

/// An AppendEntries on its way to the member. Its future is polled by the
/// replication task itself (a spawned task would add two task wake-ups to
/// every commit); it outlives a call openraft drops, so the next call
/// finishes it, and dropping it drops its stream, never half a frame.
struct InFlightAppend {
    shape: AppendShape,
    answer: sync_wrapper::SyncFuture<futures::future::BoxFuture<'static, AppendAnswer>>,
}

/// Where in the log an AppendEntries is: whose, after which entry, up to
/// which.
#[derive(Debug, Clone, Copy, PartialEq)]
struct AppendShape {
    vote: Vote,
    prev: Option<LogId>,
    last: Option<LogId>,
}

impl AppendShape {
    fn of(rpc: &AppendEntriesRequest<TypeConfig>) -> Self {
        Self {
            vote: rpc.vote,
            prev: rpc.prev_log_id,
            last: rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id),
        }
    }
}

/// The answer to `later` that the answer to an `earlier` request of the
/// same leader and the same previous entry implies; `None` when it implies
/// nothing. The leader never rewrites its own log, so entries up to the
/// earlier request's end are the same in both.
fn answer_from_earlier(
    earlier: &AppendShape,
    answer: &AppendEntriesResponse<MemberId>,
    later: &AppendShape,
) -> Option<AppendEntriesResponse<MemberId>> {
    if earlier.vote != later.vote || earlier.prev != later.prev {
        return None;
    }
    // openraft takes a partial success only with a matched entry: one that
    // matched nothing (a probe of an empty log) says nothing here.
    let matched_up_to = |matching: Option<LogId>| {
        if matching >= later.last {
            Some(AppendEntriesResponse::Success)
        } else {
            matching.map(|m| AppendEntriesResponse::PartialSuccess(Some(m)))
        }
    };
    match answer {
        AppendEntriesResponse::Success => matched_up_to(earlier.last),
        AppendEntriesResponse::PartialSuccess(matching) => matched_up_to(*matching),
        AppendEntriesResponse::Conflict => Some(AppendEntriesResponse::Conflict),
        AppendEntriesResponse::HigherVote(vote) => Some(AppendEntriesResponse::HigherVote(*vote)),
    }
}

impl Peer {
    async fn rpc<Req, Resp, E>(
        &self,
        action: RPCTypes,
        req: &Req,
        timeout: Duration,
    ) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let answer = self
            .client
            .call(&self.url, path_of(action), req, timeout)
            .await;
        self.settle(action, timeout, answer)
    }

    /// What openraft hears of an exchange with the member, recorded in the
    /// peer statistics.
    #[allow(
        clippy::result_large_err,
        reason = "openraft's RPCError is the network trait's error type"
    )]
    fn settle<Resp, E>(
        &self,
        action: RPCTypes,
        timeout: Duration,
        answer: Result<Result<Resp, E>, PeerError>,
    ) -> RpcResult<Resp, E>
    where
        E: std::error::Error,
    {
        let answer = answer.map_err(|e| {
            match &e {
                PeerError::Refused { status: 410, .. } => self.stats.mark_removed(),
                PeerError::Unreachable { .. }
                | PeerError::Lost { .. }
                | PeerError::Timeout { .. } => self.stats.record_failure(self.target, &e),
                PeerError::Refused { .. } | PeerError::Decode { .. } => {}
            }
            self.rpc_error(action, timeout, e)
        })?;
        self.stats.record_contact(self.target);
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// One AppendEntries on an append stream of the member's pool (opened
    /// first if none is idle), or as a single request to a member without
    /// streams.
    async fn send_append(
        &self,
        rpc: &AppendEntriesRequest<TypeConfig>,
        timeout: Duration,
    ) -> AppendAnswer {
        if lock(&self.streams.pool).unsupported {
            return self.rpc(RPCTypes::AppendEntries, rpc, timeout).await;
        }
        // A stream whose exchange times out is dropped with it: the answer
        // may still come, so it is out of step.
        let exchanged = tokio::time::timeout(timeout, self.exchange(rpc)).await;
        let url = || {
            format!(
                "{}/{}",
                self.url.trim_end_matches('/'),
                paths::APPEND_STREAM
            )
        };
        let answer = match exchanged {
            Ok(Ok((stream, StreamAnswer::Answer(outcome)))) => {
                self.give_back(stream);
                Ok(outcome)
            }
            // The member hangs up after a refusal: the stream goes with it.
            Ok(Ok((_, StreamAnswer::Refused { status, detail })))
            | Ok(Err(StreamError::Refused { status, detail })) => {
                if status == 404 {
                    lock(&self.streams.pool).unsupported = true;
                    return self.rpc(RPCTypes::AppendEntries, rpc, timeout).await;
                }
                Err(PeerError::Refused {
                    url: url(),
                    status,
                    detail,
                })
            }
            Ok(Err(e)) => Err(PeerError::Unreachable {
                url: url(),
                detail: e.to_string(),
            }),
            Err(_elapsed) => Err(PeerError::Timeout { url: url() }),
        };
        self.settle(RPCTypes::AppendEntries, timeout, answer)
    }

    /// Sends `rpc` on an idle stream, or on a new one, and returns the
    /// stream with its answer. An idle stream may have died meanwhile (the
    /// member restarted): its failure costs one fresh stream, not a failed
    /// append (AppendEntries may be sent twice).
    async fn exchange(
        &self,
        rpc: &AppendEntriesRequest<TypeConfig>,
    ) -> Result<(AppendStream, StreamAnswer), StreamError> {
        let idle = self.idle_stream();
        if let Some(mut stream) = idle {
            match stream.call(rpc).await {
                Ok(answer) => return Ok((stream, answer)),
                Err(e) => tracing::debug!(target = self.target, error = %e, "append stream lost"),
            }
        }
        let mut stream = self.open_stream().await?;
        let answer = stream.call(rpc).await?;
        Ok((stream, answer))
    }

    fn idle_stream(&self) -> Option<AppendStream> {
        lock(&self.streams.pool).idle.pop()
    }

    /// Opens a stream to the member: one attempt at a time, the next no
    /// sooner than [`REDIAL_AFTER`] after one that could not connect.
    /// Waiting here is bounded by the caller's deadline.
    async fn open_stream(&self) -> Result<AppendStream, StreamError> {
        let opened = {
            let mut redial_at = self.streams.dialing.lock().await;
            // Opened and given back while this waited for the gate.
            if let Some(stream) = self.idle_stream() {
                return Ok(stream);
            }
            if let Some(at) = *redial_at {
                tokio::time::sleep_until(at).await;
            }
            let opened = self.client.open_append_stream(&self.url).await;
            *redial_at = match &opened {
                Err(StreamError::Connect(_)) => Some(tokio::time::Instant::now() + REDIAL_AFTER),
                _ => None,
            };
            opened
        };
        if let Err(StreamError::Connect(_)) = &opened {
            // Told no sooner than a redial could be: a read's check has its
            // quorum's answers by then and no longer listens.
            tokio::time::sleep(REDIAL_AFTER).await;
        }
        opened
    }

    /// Keeps `stream` for the next append to this member, unless enough
    /// are idle already.
    fn give_back(&self, stream: AppendStream) {
        let mut pool = lock(&self.streams.pool);
        if pool.idle.len() < MAX_IDLE_STREAMS {
            pool.idle.push(stream);
        }
    }

    /// What openraft hears of a failed request. A member that answers too
    /// slowly is not unreachable: openraft backs off for half a second
    /// after `Unreachable` (stopping replication to it), but tries again at
    /// once after `Timeout`.
    fn rpc_error<E: std::error::Error>(
        &self,
        action: RPCTypes,
        timeout: Duration,
        e: PeerError,
    ) -> RPCError<MemberId, MemberNode, E> {
        match e {
            PeerError::Timeout { .. } => RPCError::Timeout(Timeout {
                action,
                id: self.client.member_id,
                target: self.target,
                timeout,
            }),
            other => RPCError::Unreachable(Unreachable::new(&other)),
        }
    }

    async fn append(
        &self,
        rpc: AppendEntriesRequest<TypeConfig>,
        timeout: Duration,
    ) -> AppendAnswer {
        // The leader's own entries may not be on its disk yet (log_store):
        // never announce a commit index beyond them...
        let commit = rpc.leader_commit.map_or(0, |c| c.index);
        self.wait_until_durable(commit).await?;
        let sent_up_to = rpc.entries.last().map(|e| e.log_id.index);
        self.stats.count_sent_append();
        let started = std::time::Instant::now();
        let answer = self.send_append(&rpc, timeout).await;
        self.stats
            .record_append(self.target, started.elapsed(), answer.is_ok());
        // ...and count the member's copy towards the commit only once the
        // leader's is durable too.
        let matched = match &answer {
            Ok(AppendEntriesResponse::Success) => sent_up_to,
            Ok(AppendEntriesResponse::PartialSuccess(matching)) => matching.map(|m| m.index),
            _ => None,
        };
        if let Some(index) = matched {
            self.wait_until_durable(index).await?;
        }
        answer
    }

    /// Waits until this member's log is on disk up to `index`; a failed disk
    /// fails the RPC (and, through the state machine, stops the member).
    async fn wait_until_durable(
        &self,
        index: u64,
    ) -> Result<(), RPCError<MemberId, MemberNode, RaftError<MemberId>>> {
        self.durability
            .wait_for(index)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))
    }
}

/// The peer path each Raft RPC is posted to.
fn path_of(action: RPCTypes) -> &'static str {
    match action {
        RPCTypes::Vote => paths::VOTE,
        RPCTypes::AppendEntries => paths::APPEND,
        RPCTypes::InstallSnapshot => paths::SNAPSHOT,
    }
}

/// Bytes of entries in one AppendEntries at most, so a follower far behind
/// is fed in pieces (a single larger entry still goes alone).
const MAX_APPEND_BYTES: usize = 1024 * 1024;

/// `None` when `entries` fit in `limit` bytes (or are a single entry);
/// otherwise how many of them do (at least one).
fn entries_within(entries: &[Entry], limit: usize) -> Option<u64> {
    let mut total = 0;
    for (i, entry) in entries.iter().enumerate() {
        total += match &entry.payload {
            EntryPayload::Normal(command) => command.approx_size(),
            _ => 256,
        };
        if total > limit && entries.len() > 1 {
            return Some(i.max(1) as u64);
        }
    }
    None
}

impl PeerConnection {
    /// Waits for the append still on its way (openraft may drop this call
    /// meanwhile: the append then stays in flight for the next call) and
    /// returns what its answer says about `later`, if anything. openraft
    /// dates such an answer from the later call's start, a little late; it
    /// uses that time only for its quorum-acknowledgement metric.
    async fn settle_in_flight(
        &mut self,
        later: &AppendShape,
    ) -> Option<AppendEntriesResponse<MemberId>> {
        let in_flight = self.in_flight.as_mut()?;
        let answer = (&mut in_flight.answer).await;
        let earlier = self.in_flight.take()?.shape;
        match answer {
            Ok(response) => answer_from_earlier(&earlier, &response, later),
            Err(_) => None,
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<MemberId>, RaftError<MemberId>> {
        if let Some(fits) = entries_within(&rpc.entries, MAX_APPEND_BYTES) {
            // openraft retries at once with at most `fits` entries.
            return Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint(fits),
            ));
        }
        let shape = AppendShape::of(&rpc);
        if let Some(answer) = self.settle_in_flight(&shape).await {
            return Ok(answer);
        }
        let peer = self.peer.clone();
        let patience = option.hard_ttl() * APPEND_PATIENCE;
        let in_flight = self.in_flight.insert(InFlightAppend {
            shape,
            answer: sync_wrapper::SyncFuture::new(Box::pin(async move {
                peer.append(rpc, patience).await
            })),
        });
        let answer = (&mut in_flight.answer).await;
        self.in_flight = None;
        answer
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<MemberId>, RaftError<MemberId, InstallSnapshotError>>
    {
        self.peer
            .rpc(RPCTypes::InstallSnapshot, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<MemberId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<MemberId>, RaftError<MemberId>> {
        self.peer.rpc(RPCTypes::Vote, &rpc, option.hard_ttl()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::PutRequest;
    use crate::raft::Command;

    fn put_of(bytes: usize) -> Entry {
        Entry {
            log_id: Default::default(),
            payload: EntryPayload::Normal(Command::Put(PutRequest {
                key: b"k".to_vec(),
                value: vec![0; bytes],
                ..Default::default()
            })),
        }
    }

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(openraft::CommittedLeaderId::new(term, 1), index)
    }

    fn shape(prev: u64, last: u64) -> AppendShape {
        AppendShape {
            vote: Vote::new_committed(2, 1),
            prev: Some(log_id(2, prev)),
            last: Some(log_id(2, last)),
        }
    }

    #[test]
    fn an_earlier_append_answers_a_longer_resend_with_what_it_matched() {
        let earlier = shape(10, 14);
        let success = AppendEntriesResponse::Success;
        assert_eq!(
            answer_from_earlier(&earlier, &success, &shape(10, 20)),
            Some(AppendEntriesResponse::PartialSuccess(Some(log_id(2, 14))))
        );
        // The same request, or a shorter one: all of it matched.
        assert_eq!(
            answer_from_earlier(&earlier, &success, &shape(10, 14)),
            Some(AppendEntriesResponse::Success)
        );
        assert_eq!(
            answer_from_earlier(&earlier, &success, &shape(10, 12)),
            Some(AppendEntriesResponse::Success)
        );
        let partial = AppendEntriesResponse::PartialSuccess(Some(log_id(2, 12)));
        assert_eq!(
            answer_from_earlier(&earlier, &partial, &shape(10, 20)),
            Some(AppendEntriesResponse::PartialSuccess(Some(log_id(2, 12))))
        );
    }

    /// openraft 0.9 asserts that a partial success names an entry: the
    /// probe of a new member's empty log answers no longer resend.
    #[test]
    fn an_earlier_probe_of_an_empty_log_answers_only_an_empty_resend() {
        let probe = AppendShape {
            vote: Vote::new_committed(2, 1),
            prev: None,
            last: None,
        };
        let longer = AppendShape {
            last: Some(log_id(2, 3)),
            ..probe
        };
        let success = AppendEntriesResponse::Success;
        assert_eq!(answer_from_earlier(&probe, &success, &longer), None);
        let nothing = AppendEntriesResponse::PartialSuccess(None);
        assert_eq!(answer_from_earlier(&probe, &nothing, &longer), None);
        assert_eq!(
            answer_from_earlier(&probe, &success, &probe),
            Some(AppendEntriesResponse::Success)
        );
    }

    #[test]
    fn an_earlier_conflict_or_higher_vote_holds_for_the_resend() {
        let earlier = shape(10, 14);
        assert_eq!(
            answer_from_earlier(&earlier, &AppendEntriesResponse::Conflict, &shape(10, 20)),
            Some(AppendEntriesResponse::Conflict)
        );
        let higher = AppendEntriesResponse::HigherVote(Vote::new(3, 2));
        assert_eq!(
            answer_from_earlier(&earlier, &higher, &shape(10, 20)),
            Some(AppendEntriesResponse::HigherVote(Vote::new(3, 2)))
        );
    }

    #[test]
    fn an_earlier_append_elsewhere_in_the_log_says_nothing() {
        let earlier = shape(10, 14);
        let success = AppendEntriesResponse::Success;
        assert_eq!(
            answer_from_earlier(&earlier, &success, &shape(14, 20)),
            None
        );
        assert_eq!(answer_from_earlier(&earlier, &success, &shape(8, 20)), None);
        let mut other_leader = shape(10, 20);
        other_leader.vote = Vote::new_committed(3, 2);
        assert_eq!(answer_from_earlier(&earlier, &success, &other_leader), None);
    }

    /// A member that counts the appends it receives and answers each one
    /// only once `release` has a permit for it. With `streams`, it takes
    /// appends on an append stream (and counts the streams opened in
    /// `upgrades`); without, it predates them (404 to the upgrade) and
    /// takes single requests. Returns its URL.
    async fn held_member(
        received: Arc<std::sync::atomic::AtomicUsize>,
        release: Arc<tokio::sync::Semaphore>,
        streams: bool,
        upgrades: Arc<std::sync::atomic::AtomicUsize>,
    ) -> String {
        use warp::Filter;
        let hold = move || {
            let (received, release) = (received.clone(), release.clone());
            async move {
                received.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let _ = release.acquire().await.map(|permit| permit.forget());
                AppendEntriesResponse::Success
            }
        };
        let single = hold.clone();
        // With streams, single appends get a 404: the test fails if the
        // connection falls back to them.
        let requests = warp::post()
            .and(warp::path!("raft" / "append"))
            .and_then(move || async move {
                if streams {
                    Err(warp::reject::not_found())
                } else {
                    Ok(())
                }
            })
            .untuple_one()
            .and(warp::body::bytes())
            .then(move |_body: Bytes| {
                let answer = single();
                async move {
                    let answer: Result<_, RaftError<MemberId>> = Ok(answer.await);
                    postcard::to_stdvec(&answer).unwrap()
                }
            });
        let upgrades = warp::post()
            .and(warp::path!("raft" / "append-stream"))
            .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
            .and_then(move |upgrade: Option<hyper::upgrade::OnUpgrade>| {
                let hold = hold.clone();
                let upgrades = upgrades.clone();
                async move {
                    if !streams {
                        return Err(warp::reject::not_found());
                    }
                    upgrades.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(upgrade.unwrap().await.unwrap());
                        let answer = move |_request| {
                            let answer = hold();
                            async move { StreamAnswer::Answer(Ok(answer.await)) }
                        };
                        super::super::append_stream::serve(io, answer, std::future::pending())
                            .await;
                    });
                    Ok(warp::http::Response::builder()
                        .status(101)
                        .header("connection", "upgrade")
                        .header("upgrade", super::super::append_stream::PROTOCOL)
                        .body(Bytes::new())
                        .unwrap())
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(upgrades.or(requests)).incoming(listener).run());
        format!("http://{addr}")
    }

    fn append_request(prev: u64, last: u64) -> AppendEntriesRequest<TypeConfig> {
        AppendEntriesRequest {
            vote: Vote::new_committed(2, 1),
            prev_log_id: Some(log_id(2, prev)),
            leader_commit: None,
            entries: (prev + 1..=last)
                .map(|index| Entry {
                    log_id: log_id(2, index),
                    ..put_of(10)
                })
                .collect(),
        }
    }

    #[tokio::test]
    async fn an_append_outlives_openraft_giving_up_and_answers_the_resend() {
        an_append_outlives_openraft_giving_up(true).await;
    }

    #[tokio::test]
    async fn a_member_without_append_streams_gets_single_requests() {
        an_append_outlives_openraft_giving_up(false).await;
    }

    async fn an_append_outlives_openraft_giving_up(streams: bool) {
        let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let url = held_member(
            received.clone(),
            release.clone(),
            streams,
            Default::default(),
        )
        .await;
        let (mut network, node) = network_to(url);
        let mut connection = network.new_client(2, &node).await;
        let heartbeat = Duration::from_millis(50);

        // openraft stops waiting after a heartbeat interval; the member has
        // not answered yet.
        let first = tokio::time::timeout(
            heartbeat,
            connection.append_entries(append_request(10, 14), RPCOption::new(heartbeat)),
        )
        .await;
        assert!(first.is_err());

        // The member answers the first request; openraft's resend (with an
        // entry more by now) learns from that answer and sends nothing.
        release.add_permits(1);
        let resend = connection
            .append_entries(append_request(10, 15), RPCOption::new(heartbeat))
            .await
            .unwrap();
        assert_eq!(
            resend,
            AppendEntriesResponse::PartialSuccess(Some(log_id(2, 14)))
        );
        assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 1);

        // The rest goes as a request of its own.
        release.add_permits(1);
        let rest = connection
            .append_entries(append_request(14, 15), RPCOption::new(heartbeat))
            .await
            .unwrap();
        assert_eq!(rest, AppendEntriesResponse::Success);
        assert_eq!(received.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    fn network_to(url: String) -> (PeerNetwork, MemberNode) {
        let tls = crate::tls::peer_connector(&Default::default()).unwrap();
        let network = PeerNetwork::new(
            PeerClient::new(tls),
            Default::default(),
            Durability::of_everything(),
        );
        let node = MemberNode {
            name: "n2".into(),
            peer_urls: vec![url],
        };
        (network, node)
    }

    /// A heartbeat on a new connection, as openraft's leadership checks
    /// send them.
    async fn leadership_check(network: PeerNetwork, node: MemberNode, round: u64) {
        let mut check = network.clone().new_client(2, &node).await;
        let answer = check
            .append_entries(
                append_request(round, round),
                RPCOption::new(Duration::from_secs(5)),
            )
            .await
            .unwrap();
        assert_eq!(answer, AppendEntriesResponse::Success);
    }

    /// openraft makes a new connection for every leadership check (each
    /// round of linearizable reads): they must not open a TCP connection
    /// each, but use the streams replication already has.
    #[tokio::test]
    async fn connections_to_one_member_share_its_append_streams() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let received = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Semaphore::new(0));
        let upgrades = Arc::new(AtomicUsize::new(0));
        let url = held_member(received.clone(), release.clone(), true, upgrades.clone()).await;
        let (mut network, node) = network_to(url);
        let patient = RPCOption::new(Duration::from_secs(5));
        let mut replication = network.new_client(2, &node).await;
        let checks_in_a_row = |rounds: u64| {
            let (network, node, release) = (network.clone(), node.clone(), release.clone());
            async move {
                for round in 0..rounds {
                    release.add_permits(1);
                    leadership_check(network.clone(), node.clone(), round).await;
                }
            }
        };

        release.add_permits(1);
        replication
            .append_entries(append_request(0, 1), patient.clone())
            .await
            .unwrap();
        checks_in_a_row(5).await;
        assert_eq!(
            upgrades.load(SeqCst),
            1,
            "one stream serves appends in turn"
        );

        // Two at once (a check while an append is on its way) need a stream
        // each, and both are kept for later.
        let first = tokio::spawn(leadership_check(network.clone(), node.clone(), 1));
        let second = tokio::spawn(leadership_check(network.clone(), node.clone(), 2));
        while received.load(SeqCst) < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.add_permits(2);
        first.await.unwrap();
        second.await.unwrap();
        assert_eq!(upgrades.load(SeqCst), 2);
        release.add_permits(1);
        replication
            .append_entries(append_request(1, 2), patient.clone())
            .await
            .unwrap();
        checks_in_a_row(5).await;
        assert_eq!(upgrades.load(SeqCst), 2, "both streams are reused");
    }

    /// What a fake member saw of the calls made to it.
    #[derive(Default)]
    struct CallsSeen {
        upgrades: std::sync::atomic::AtomicUsize,
        single: std::sync::atomic::AtomicUsize,
        on_streams: std::sync::atomic::AtomicUsize,
    }

    /// A member that answers every call with its body (a number) plus one,
    /// once `release` has a permit for it. With `streams` it takes call
    /// streams, which it closes when `hang_up` turns true; without, it
    /// predates them (404 to the upgrade). Returns its URL.
    async fn calls_member(
        streams: bool,
        seen: Arc<CallsSeen>,
        release: Arc<tokio::sync::Semaphore>,
        hang_up: tokio::sync::watch::Receiver<bool>,
    ) -> String {
        use std::sync::atomic::Ordering::SeqCst;
        use warp::Filter;
        let answer = move |body: Bytes| {
            let release = release.clone();
            async move {
                let _ = release.acquire().await.map(|permit| permit.forget());
                let asked: u64 = postcard::from_bytes(&body).unwrap();
                Bytes::from(postcard::to_stdvec(&(asked + 1)).unwrap())
            }
        };
        let single_answer = answer.clone();
        let single_seen = seen.clone();
        // The upgrade request of a member without streams gets a 404.
        let requests = warp::post()
            .and(warp::path!("cetera" / String))
            .and_then(|path: String| async move {
                if path == "call-stream" {
                    Err(warp::reject::not_found())
                } else {
                    Ok(())
                }
            })
            .untuple_one()
            .and(warp::body::bytes())
            .then(move |body: Bytes| {
                single_seen.single.fetch_add(1, SeqCst);
                let answer = single_answer(body);
                async move { warp::http::Response::new(answer.await) }
            });
        let upgrades = warp::post()
            .and(warp::path!("cetera" / "call-stream"))
            .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
            .and_then(move |upgrade: Option<hyper::upgrade::OnUpgrade>| {
                let (answer, seen, hang_up) = (answer.clone(), seen.clone(), hang_up.clone());
                async move {
                    if !streams {
                        return Err(warp::reject::not_found());
                    }
                    seen.upgrades.fetch_add(1, SeqCst);
                    tokio::spawn(async move {
                        let io = hyper_util::rt::TokioIo::new(upgrade.unwrap().await.unwrap());
                        let answer = move |call: super::super::call_stream::Call| {
                            seen.on_streams.fetch_add(1, SeqCst);
                            let body = answer(call.body);
                            async move {
                                CallAnswer {
                                    status: 200,
                                    body: body.await,
                                }
                            }
                        };
                        let mut hang_up = hang_up;
                        let hung_up = async move {
                            let _ = hang_up.wait_for(|&h| h).await;
                        };
                        super::super::call_stream::serve(io, answer, hung_up).await;
                    });
                    Ok(warp::http::Response::builder()
                        .status(101)
                        .header("connection", "upgrade")
                        .header("upgrade", super::super::call_stream::PROTOCOL)
                        .body(Bytes::new())
                        .unwrap())
                }
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(warp::serve(upgrades.or(requests)).incoming(listener).run());
        format!("http://{addr}")
    }

    fn calling_client() -> PeerClient {
        let tls = crate::tls::peer_connector(&Default::default()).unwrap();
        PeerClient::new(tls).for_member(7, 1)
    }

    async fn ask(client: &PeerClient, url: &str, path: &str, n: u64) -> u64 {
        client
            .call(url, path, &n, Duration::from_secs(5))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn calls_for_clients_ride_call_streams_kept_for_the_next_calls() {
        use std::sync::atomic::Ordering::SeqCst;
        let seen = Arc::new(CallsSeen::default());
        let release = Arc::new(tokio::sync::Semaphore::new(1000));
        let (hang_up, hung_up) = tokio::sync::watch::channel(false);
        let url = calls_member(true, seen.clone(), release.clone(), hung_up).await;
        let client = calling_client();

        for n in 0..5 {
            assert_eq!(ask(&client, &url, paths::PROPOSE, n).await, n + 1);
        }
        assert_eq!(ask(&client, &url, paths::READ_INDEX, 9).await, 10);
        assert_eq!(ask(&client, &url, paths::LEASE_CLOCK, 9).await, 10);
        assert_eq!(seen.upgrades.load(SeqCst), 1, "one stream, call after call");
        assert_eq!(seen.on_streams.load(SeqCst), 7);
        // Rare calls stay single requests.
        assert_eq!(ask(&client, &url, paths::MEMBER_CHANGE, 1).await, 2);
        assert_eq!(seen.single.load(SeqCst), 1);

        // Calls at once get a stream each, and all are kept.
        release.forget_permits(1000);
        let calls: Vec<_> = (0..3)
            .map(|n| {
                let (client, url) = (client.clone(), url.clone());
                tokio::spawn(async move { ask(&client, &url, paths::PROPOSE, n).await })
            })
            .collect();
        while seen.on_streams.load(SeqCst) < 10 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.add_permits(1000);
        for (n, call) in calls.into_iter().enumerate() {
            assert_eq!(call.await.unwrap(), n as u64 + 1);
        }
        assert_eq!(seen.upgrades.load(SeqCst), 3);
        for n in 0..6 {
            ask(&client, &url, paths::PROPOSE, n).await;
        }
        assert_eq!(seen.upgrades.load(SeqCst), 3, "kept streams are reused");

        // Streams the member closed while idle (it restarted) are never
        // used: a call that may have reached the member is not resent, so
        // a dead stream must not take it.
        hang_up.send_replace(true);
        tokio::time::sleep(Duration::from_millis(100)).await;
        hang_up.send_replace(false);
        assert_eq!(ask(&client, &url, paths::PROPOSE, 41).await, 42);
        assert_eq!(seen.single.load(SeqCst), 1, "still on a stream");
    }

    /// A member that takes each request (upgrading call streams) and then
    /// hangs up without an answer. Returns its URL.
    async fn member_that_hangs_up() -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&head).to_lowercase();
                    if head.contains("upgrade: cetera-call/1") {
                        let switched = "HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\nupgrade: cetera-call/1\r\n\r\n";
                        socket.write_all(switched.as_bytes()).await.unwrap();
                        // The call arrives; no answer ever does.
                        let _ = socket.read(&mut buf).await;
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    /// A forwarded proposal whose answer is lost may have been applied: it
    /// must not be told apart from one that never left, or it would be
    /// proposed twice.
    #[tokio::test]
    async fn a_call_without_an_answer_is_lost_and_one_never_sent_unreachable() {
        let client = calling_client();
        let nobody = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let quick = Duration::from_secs(5);
        for path in [paths::PROPOSE, paths::MEMBER_CHANGE] {
            let never_sent = client.call::<u64, u64>(&nobody, path, &1, quick).await;
            assert!(
                matches!(never_sent, Err(PeerError::Unreachable { .. })),
                "{path}: {never_sent:?}"
            );
        }
        let url = member_that_hangs_up().await;
        // PROPOSE on a call stream, MEMBER_CHANGE as a single request.
        for path in [paths::PROPOSE, paths::MEMBER_CHANGE] {
            let lost = client.call::<u64, u64>(&url, path, &1, quick).await;
            assert!(
                matches!(lost, Err(PeerError::Lost { .. })),
                "{path}: {lost:?}"
            );
        }
    }

    #[test]
    fn idle_streams_unused_too_long_are_dropped_oldest_first() {
        let now = std::time::Instant::now();
        let ago = |secs| now - Duration::from_secs(secs);
        let mut idle: std::collections::VecDeque<_> = [
            ("old", ago(200)),
            ("older-than-timeout", ago(91)),
            ("recent", ago(89)),
            ("new", now),
        ]
        .into_iter()
        .collect();
        drop_expired(&mut idle, now);
        let kept: Vec<_> = idle.iter().map(|(name, _)| *name).collect();
        assert_eq!(kept, ["recent", "new"]);
        drop_expired(&mut idle, now + Duration::from_secs(100));
        assert!(idle.is_empty());
    }

    #[tokio::test]
    async fn a_member_without_call_streams_gets_single_requests() {
        use std::sync::atomic::Ordering::SeqCst;
        let seen = Arc::new(CallsSeen::default());
        let release = Arc::new(tokio::sync::Semaphore::new(1000));
        let (_hang_up, hung_up) = tokio::sync::watch::channel(false);
        let url = calls_member(false, seen.clone(), release, hung_up).await;
        let client = calling_client();
        for n in 0..3 {
            assert_eq!(ask(&client, &url, paths::PROPOSE, n).await, n + 1);
        }
        assert_eq!(seen.single.load(SeqCst), 3);
        assert_eq!(seen.on_streams.load(SeqCst), 0);
    }

    #[test]
    fn appends_are_cut_to_what_fits_but_never_to_nothing() {
        let small: Vec<Entry> = (0..10).map(|_| put_of(1000)).collect();
        assert_eq!(entries_within(&small, MAX_APPEND_BYTES), None);
        let big: Vec<Entry> = (0..5).map(|_| put_of(400_000)).collect();
        assert_eq!(entries_within(&big, MAX_APPEND_BYTES), Some(2));
        let huge = vec![put_of(3_000_000), put_of(10)];
        assert_eq!(entries_within(&huge, MAX_APPEND_BYTES), Some(1));
        assert_eq!(entries_within(&huge[..1], MAX_APPEND_BYTES), None);
    }
}
