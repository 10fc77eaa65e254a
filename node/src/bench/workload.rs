//! The clients: what each workload sends, the unmeasured setup phase, and the
//! measured loop.
//!
//! The watch workload measures delivery: each client watches one key of its
//! own, and a request is a put of that key followed by the wait for its
//! event, so the latency is put plus notification. The lease keep-alive
//! workload grants each client a lease and sends keep-alives for it on one
//! stream, one in flight, as etcd's `benchmark lease-keepalive` does.
//!
//! Every client is a tokio task owning its tonic client (a cheap clone of a
//! shared channel), its key picker, its copy of the auth token and its
//! [`Stats`]; nothing on the request path is shared except the read-only
//! [`Plan`]. A request the server refuses for its token (expired, or
//! forgotten by a restarted member) renews the token once, for every
//! client, and is sent again, as etcd's Go client does; the renewal counts
//! in that request's latency.

use std::sync::Arc;
use std::time::Duration;

use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::kv_client::KvClient;
use crate::proto::etcdserverpb::lease_client::LeaseClient;
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::watch_client::WatchClient;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    Compare, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, PutRequest,
    RangeRequest, RequestOp, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
    WatchResponse,
};
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Status, Streaming};

use super::{BenchError, Connections};
use crate::bench::keys::{KeyPicker, KeySpace, owned_keys};
use crate::bench::stats::Stats;
use crate::client_auth::{TokenCache, must_reauthenticate};

/// Pause after a failed request, so a cluster in trouble is not hammered
/// by a tight error loop.
const ERROR_BACKOFF: Duration = Duration::from_millis(10);

/// What every request of a run does.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Put,
    Range {
        serializable: bool,
    },
    Txn,
    Mixed {
        serializable: bool,
        read_ratio: f64,
    },
    /// Put a key the client watches and wait for its event.
    Watch,
    /// One keep-alive of the client's own lease on its stream.
    LeaseKeepAlive,
}

/// TTL of the leases the keep-alive workload grants: longer than any run's
/// pauses, so a lease never expires under it.
const BENCH_LEASE_TTL: i64 = 600;

/// Everything the clients share, read-only.
#[derive(Debug)]
pub struct Plan {
    pub kind: Kind,
    pub keys: KeySpace,
    /// Write the owned keys before measuring (reads need something to read).
    pub populate: bool,
    pub sequential: bool,
    pub clients: usize,
    /// Measured requests in total, split evenly across clients.
    pub total: u64,
    /// Length cap of the measured phase.
    pub max_duration: Duration,
    pub timeout: Duration,
}

impl Plan {
    /// Requests client `client` sends: an even share of the total.
    fn quota(&self, client: usize) -> u64 {
        let clients = self.clients as u64;
        let extra = u64::from((client as u64) < self.total % clients);
        self.total / clients + extra
    }
}

/// Runs the setup of every client, then the measured phase, and returns the
/// merged stats and the measured wall time.
pub async fn run(plan: Arc<Plan>, conns: &Connections) -> Result<(Stats, Duration), BenchError> {
    let channels = &conns.channels;
    if channels.is_empty() {
        return Err(BenchError::NoEndpoint);
    }
    if matches!(plan.kind, Kind::Watch) && plan.keys.len() < plan.clients {
        return Err(BenchError::TooFewKeysToWatch {
            clients: plan.clients,
            keys: plan.keys.len(),
        });
    }
    let mut setups = JoinSet::new();
    for id in 0..plan.clients {
        let channel = channels[id % channels.len()].clone();
        let mut worker = Client::new(id, channel, conns.auth.cache(), plan.clone());
        setups.spawn(async move { worker.setup().await.map(|()| worker) });
    }
    let mut clients = Vec::with_capacity(plan.clients);
    for joined in setups.join_all().await {
        clients.push(joined?);
    }

    let start = Instant::now();
    let deadline = start + plan.max_duration;
    let mut measured = JoinSet::new();
    for client in clients {
        measured.spawn(client.measure(deadline));
    }
    let mut total = Stats::new();
    for stats in measured.join_all().await {
        total.merge(&stats);
    }
    Ok((total, start.elapsed()))
}

/// How a request that did not fail ended.
enum Outcome {
    Done,
    /// A transaction whose compare failed.
    CasFailed,
}

/// One simulated client.
struct Client {
    id: usize,
    kv: KvClient<Channel>,
    plan: Arc<Plan>,
    picker: KeyPicker,
    rng: SmallRng,
    /// For txn: the keys this client owns, with the mod_revision it last saw.
    cas: Vec<(usize, i64)>,
    /// For watch: the stream's request side (kept open) and its events.
    watch: Option<WatchStream>,
    /// For lease keep-alive: the stream of the client's lease.
    keep_alive: Option<KeepAliveStream>,
    channel: Channel,
    /// The token each request carries.
    token: TokenCache,
}

/// One client's lease and its keep-alive stream.
struct KeepAliveStream {
    lease: i64,
    requests: mpsc::Sender<LeaseKeepAliveRequest>,
    answers: Streaming<LeaseKeepAliveResponse>,
}

/// One client's watch on its own key.
struct WatchStream {
    key: usize,
    /// Dropping it would end the stream.
    _requests: mpsc::Sender<WatchRequest>,
    events: Streaming<WatchResponse>,
}

impl Client {
    fn new(id: usize, channel: Channel, token: TokenCache, plan: Arc<Plan>) -> Self {
        let kv = KvClient::new(channel.clone());
        // A txn client picks among its own keys; the others share the keyspace.
        let picker = match plan.kind {
            Kind::Txn => KeyPicker::new(plan.sequential, 0, 1),
            _ => KeyPicker::new(plan.sequential, id, plan.clients),
        };
        Self {
            id,
            kv,
            picker,
            rng: SmallRng::from_os_rng(),
            cas: Vec::new(),
            watch: None,
            keep_alive: None,
            channel,
            token,
            plan,
        }
    }

    /// `message` as a request carrying the token.
    fn request<T>(&mut self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        self.token.attach(&mut request);
        request
    }

    /// The unmeasured phase: populate the keys to read, or create the keys
    /// to compare-and-swap and learn their revisions.
    async fn setup(&mut self) -> Result<(), BenchError> {
        let owned = owned_keys(self.id, self.plan.clients, self.plan.keys.len());
        match self.plan.kind {
            Kind::Watch => {
                // `run` made sure every client owns at least one key.
                let key = owned[0];
                let stream = bounded(self.plan.timeout, self.open_watch(key))
                    .await
                    .map_err(|source| BenchError::Setup {
                        what: format!("watching key #{key}"),
                        source,
                    })?;
                self.watch = Some(stream);
            }
            Kind::LeaseKeepAlive => {
                let stream = bounded(self.plan.timeout, self.open_keep_alive())
                    .await
                    .map_err(|source| BenchError::Setup {
                        what: "granting a lease".into(),
                        source,
                    })?;
                self.keep_alive = Some(stream);
            }
            Kind::Txn => {
                for index in owned {
                    let revision = self.create_if_absent(index).await?;
                    self.cas.push((index, revision));
                }
            }
            Kind::Range { .. } | Kind::Mixed { .. } if self.plan.populate => {
                for index in owned {
                    bounded(self.plan.timeout, self.put(index))
                        .await
                        .map_err(|source| BenchError::Setup {
                            what: format!("populating key #{index}"),
                            source,
                        })?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// The measured loop: stops after the client's quota or at `deadline`.
    async fn measure(mut self, deadline: Instant) -> Stats {
        let mut stats = Stats::new();
        let timeout = self.plan.timeout;
        for _ in 0..self.plan.quota(self.id) {
            let sent = Instant::now();
            if sent >= deadline {
                break;
            }
            match bounded(timeout, self.step_with_token()).await {
                Ok(outcome) => {
                    stats.record_ok(sent.elapsed());
                    if let Outcome::CasFailed = outcome {
                        stats.record_cas_failed();
                    }
                }
                Err(status) => {
                    stats.record_error(status.code());
                    tokio::time::sleep(ERROR_BACKOFF).await;
                }
            }
        }
        stats
    }

    /// One measured request, sent again with a new token if the server
    /// refused the one it carried.
    async fn step_with_token(&mut self) -> Result<Outcome, Status> {
        match self.step().await {
            Err(status) if must_reauthenticate(&status) && self.token.session().enabled() => {
                self.token.reauthenticate(self.channel.clone()).await?;
                self.step().await
            }
            outcome => outcome,
        }
    }

    /// One measured request.
    async fn step(&mut self) -> Result<Outcome, Status> {
        let len = self.plan.keys.len();
        match self.plan.kind {
            Kind::Txn => self.compare_and_swap().await,
            Kind::Watch => self.put_and_wait().await,
            Kind::LeaseKeepAlive => self.keep_alive_once().await,
            Kind::Put => {
                let index = self.picker.pick(len);
                self.put(index).await
            }
            Kind::Range { serializable } => {
                let index = self.picker.pick(len);
                self.range(index, serializable).await
            }
            Kind::Mixed {
                serializable,
                read_ratio,
            } => {
                let index = self.picker.pick(len);
                if self.rng.random_bool(read_ratio) {
                    self.range(index, serializable).await
                } else {
                    self.put(index).await
                }
            }
        }
    }

    async fn put(&mut self, index: usize) -> Result<Outcome, Status> {
        let request = self.request(put_request(
            self.plan.keys.key(index),
            self.plan.keys.value(),
        ));
        self.kv.put(request).await?;
        Ok(Outcome::Done)
    }

    async fn range(&mut self, index: usize, serializable: bool) -> Result<Outcome, Status> {
        let request = self.request(RangeRequest {
            key: self.plan.keys.key(index).clone().into(),
            serializable,
            ..Default::default()
        });
        self.kv.range(request).await?;
        Ok(Outcome::Done)
    }

    /// `if mod_revision(key) == last seen { put } else { get }` on one of
    /// the client's own keys; either way the client learns the key's
    /// current revision for next time.
    async fn compare_and_swap(&mut self) -> Result<Outcome, Status> {
        let slot = self.picker.pick(self.cas.len());
        let (index, seen) = self.cas[slot];
        let (swapped, revision) = self
            .txn(index, CompareTarget::Mod, TargetUnion::ModRevision(seen))
            .await?;
        self.cas[slot].1 = revision;
        Ok(if swapped {
            Outcome::Done
        } else {
            Outcome::CasFailed
        })
    }

    /// `if create_revision(key) == 0 { put } else { get }`: the key's
    /// mod_revision afterwards.
    async fn create_if_absent(&mut self, index: usize) -> Result<i64, BenchError> {
        let limit = self.plan.timeout;
        let create = self.txn(index, CompareTarget::Create, TargetUnion::CreateRevision(0));
        let (_, revision) = bounded(limit, create)
            .await
            .map_err(|source| BenchError::Setup {
                what: format!("creating key #{index}"),
                source,
            })?;
        Ok(revision)
    }

    /// Opens a watch stream on key `index` and waits until it is created.
    async fn open_watch(&mut self, index: usize) -> Result<WatchStream, Status> {
        let (requests, rx) = mpsc::channel(1);
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: self.plan.keys.key(index).clone().into(),
                ..Default::default()
            })),
        };
        requests
            .send(create)
            .await
            .map_err(|_| Status::internal("watch request stream closed"))?;
        let mut client = WatchClient::new(self.channel.clone());
        let request = self.request(ReceiverStream::new(rx));
        let mut events = client.watch(request).await?.into_inner();
        loop {
            match events.message().await? {
                Some(response) if response.created => break,
                Some(_) => {}
                None => {
                    return Err(Status::unavailable(
                        "watch stream ended before it was created",
                    ));
                }
            }
        }
        Ok(WatchStream {
            key: index,
            _requests: requests,
            events,
        })
    }

    /// Grants the client's lease and opens its keep-alive stream.
    async fn open_keep_alive(&mut self) -> Result<KeepAliveStream, Status> {
        let mut leases = LeaseClient::new(self.channel.clone());
        let grant = self.request(LeaseGrantRequest {
            ttl: BENCH_LEASE_TTL,
            id: 0,
        });
        let lease = leases.lease_grant(grant).await?.into_inner().id;
        let (requests, rx) = mpsc::channel(1);
        // A first keep-alive goes ahead: servers (etcd's grpc-go) send the
        // stream's headers only with its first answer.
        requests
            .send(LeaseKeepAliveRequest { id: lease })
            .await
            .map_err(|_| Status::internal("keep-alive request stream closed"))?;
        let request = self.request(ReceiverStream::new(rx));
        let mut answers = leases.lease_keep_alive(request).await?.into_inner();
        if answers.message().await?.is_none() {
            return Err(Status::unavailable("keep-alive stream ended at once"));
        }
        Ok(KeepAliveStream {
            lease,
            requests,
            answers,
        })
    }

    /// One keep-alive and its answer; a lease the server no longer knows
    /// (TTL 0) is an error.
    async fn keep_alive_once(&mut self) -> Result<Outcome, Status> {
        let stream = self
            .keep_alive
            .as_mut()
            .ok_or_else(|| Status::internal("keep-alive workload without a lease"))?;
        stream
            .requests
            .send(LeaseKeepAliveRequest { id: stream.lease })
            .await
            .map_err(|_| Status::unavailable("keep-alive stream closed"))?;
        match stream.answers.message().await? {
            Some(answer) if answer.ttl > 0 => Ok(Outcome::Done),
            Some(_) => Err(Status::not_found("the lease expired")),
            None => Err(Status::unavailable("keep-alive stream ended")),
        }
    }

    /// Puts the watched key and waits for the event of that put.
    async fn put_and_wait(&mut self) -> Result<Outcome, Status> {
        let watch = self
            .watch
            .as_mut()
            .ok_or_else(|| Status::internal("watch workload without a watch"))?;
        let mut request = tonic::Request::new(put_request(
            self.plan.keys.key(watch.key),
            self.plan.keys.value(),
        ));
        self.token.attach(&mut request);
        let revision = self
            .kv
            .put(request)
            .await?
            .into_inner()
            .header
            .map_or(0, |h| h.revision);
        loop {
            let Some(response) = watch.events.message().await? else {
                return Err(Status::unavailable("watch stream ended"));
            };
            if response.canceled {
                return Err(Status::cancelled(response.cancel_reason));
            }
            let seen = response.events.iter().filter_map(|e| e.kv.as_ref());
            if seen.map(|kv| kv.mod_revision).any(|r| r >= revision) {
                return Ok(Outcome::Done);
            }
        }
    }

    /// A transaction `if target(key) == expected { put } else { range }`;
    /// returns whether it swapped and the key's mod_revision afterwards.
    async fn txn(
        &mut self,
        index: usize,
        target: CompareTarget,
        expected: TargetUnion,
    ) -> Result<(bool, i64), Status> {
        let key = self.plan.keys.key(index);
        let request = TxnRequest {
            compare: vec![Compare {
                result: CompareResult::Equal as i32,
                target: target as i32,
                key: key.clone().into(),
                target_union: Some(expected),
                ..Default::default()
            }],
            success: vec![RequestOp {
                request: Some(Request::RequestPut(put_request(
                    key,
                    self.plan.keys.value(),
                ))),
            }],
            failure: vec![RequestOp {
                request: Some(Request::RequestRange(RangeRequest {
                    key: key.clone().into(),
                    ..Default::default()
                })),
            }],
        };
        let request = self.request(request);
        let response = self.kv.txn(request).await?.into_inner();
        Ok((response.succeeded, revision_after(&response)))
    }
}

/// `request`, failing with DeadlineExceeded if it takes longer than `limit`.
async fn bounded<T>(
    limit: Duration,
    request: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    tokio::time::timeout(limit, request)
        .await
        .unwrap_or_else(|_| Err(Status::deadline_exceeded("cetera-bench request timeout")))
}

fn put_request(key: &Bytes, value: &Bytes) -> PutRequest {
    PutRequest {
        key: key.clone().into(),
        value: value.clone().into(),
        ..Default::default()
    }
}

/// The key's mod_revision after a compare-and-swap transaction: the new
/// revision if the put ran, else what the read found (0 if absent).
fn revision_after(response: &TxnResponse) -> i64 {
    if response.succeeded {
        return response.header.as_ref().map_or(0, |h| h.revision);
    }
    response
        .responses
        .iter()
        .find_map(|op| match &op.response {
            Some(Response::ResponseRange(range)) => {
                Some(range.kvs.first().map_or(0, |kv| kv.mod_revision))
            }
            _ => None,
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_add_up_to_the_total() {
        let plan = Plan {
            kind: Kind::Put,
            keys: KeySpace::new("", 10, 2, 1).unwrap(),
            populate: false,
            sequential: false,
            clients: 3,
            total: 10,
            max_duration: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
        };
        let quotas: Vec<u64> = (0..3).map(|c| plan.quota(c)).collect();
        assert_eq!(quotas, [4, 3, 3]);
    }
}
