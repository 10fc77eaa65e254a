//! The running member: start-up, the request paths, and shutdown.
//!
//! [`Node`] is the one facade the API layers call. It owns the write path
//! (validate, propose through Raft or forward to the leader, wait for the
//! applied result) and the read path (read-index barrier unless the read is
//! serializable, then a read from the local SQLite state). It fills etcd's
//! response header. It must never hold protocol details of gRPC or HTTP:
//! those are translated at the edge, in `api`.

mod auth;
mod corruption;
mod error;
mod leadership;
mod lease;
mod lessor;
mod maintenance;
mod membership;
mod observability;
mod observer;
mod peer_api;
mod propose;
mod proposer;
mod read_index;
mod startup;
mod stats;
mod v2;

use std::sync::Arc;
use std::time::SystemTime;

use prost::Message;
use tokio::sync::watch;

pub use auth::{AuthError, Credentials};
pub use error::ServerError;
pub use leadership::LeadershipError;
pub use maintenance::SnapshotStream;
pub use membership::MembershipError;
pub use startup::{RunningNode, StartError, start, wait_for_stop};
use stats::LeaderHistory;
pub use stats::{GrpcCounters, GrpcMethod, LeaderStats, PeerStats, SelfStats};
pub use v2::{V2Answer, V2Wait};

use crate::auth::Caller;
use crate::cluster::Identity;
use crate::config::Config;
use crate::mvcc::{self, MvccError};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, DeleteRangeRequest, DeleteRangeResponse, PutRequest,
    PutResponse, RangeRequest, RangeResponse, ResponseHeader, StatusResponse, TxnRequest,
    TxnResponse,
};
use crate::raft::{Command, CommandResult, PeerClient, Raft, RaftMetrics};
use crate::storage::{Db, SqliteKv};
use crate::v2store::{StoreStats, WatcherHub};
use crate::watch::{WatchHub, WatchMessage, WatchStream};
use lessor::Lessor;
use read_index::ReadBarrier;

/// How long `/health` waits for a linearizable read before saying no.
const HEALTH_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

/// What `/health` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Healthy,
    /// Why not, in etcd's words (`ALARM NOSPACE`, `RAFT NO LEADER`, ...).
    Unhealthy(String),
}

/// A running member, shared by every API handler.
pub struct Node {
    config: Config,
    identity: Identity,
    raft: Raft,
    metrics: watch::Receiver<RaftMetrics>,
    db: Db,
    peers: PeerClient,
    reads: ReadBarrier,
    proposer: proposer::Proposer,
    hub: Arc<WatchHub>,
    lessor: Arc<Lessor>,
    /// The v2 keys API's waiters and store counters on this member.
    v2_waiters: Arc<WatcherHub>,
    v2_stats: Arc<StoreStats>,
    peer_stats: Arc<PeerStats>,
    leaders: LeaderHistory,
    /// Turns true once this member has been removed from the cluster.
    removed: watch::Sender<bool>,
    /// Turns true when this member starts to stop: the accept loops, the
    /// background tasks and every long-lived stream follow it.
    stop: watch::Sender<bool>,
    /// Members seen in the membership and later removed from it.
    removed_members: std::sync::Mutex<std::collections::BTreeSet<u64>>,
    started_at: SystemTime,
    /// One leadership transfer at a time.
    transfer_lock: tokio::sync::Mutex<()>,
    grpc_counters: Arc<GrpcCounters>,
    /// Durations of the Raft log's durable writes.
    wal_fsync: Arc<crate::histogram::Histogram>,
    /// The auth store as applied here, and this member's tokens.
    auth: Arc<auth::AuthGate>,
}

impl Node {
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    pub fn started_at(&self) -> SystemTime {
        self.started_at
    }

    /// Where the API layer counts gRPC calls.
    pub fn grpc_counters(&self) -> Arc<GrpcCounters> {
        self.grpc_counters.clone()
    }

    /// The latest Raft metrics (term, leader, indexes).
    pub fn metrics(&self) -> RaftMetrics {
        self.metrics.borrow().clone()
    }

    /// The current leader's id, if one is known (Raft's own view, which the
    /// write and read paths follow).
    pub fn leader(&self) -> Option<u64> {
        self.metrics.borrow().current_leader
    }

    /// The leader as operators and clients are told of it (`/health`,
    /// `Status`, `etcd_server_has_leader`, `no leader` errors). A leader
    /// that has heard from no quorum of voters for two election timeouts
    /// reports none: etcd's check-quorum makes such a leader step down, and
    /// an isolated leader can neither commit nor serve linearizable reads.
    pub fn reported_leader(&self) -> Option<u64> {
        let metrics = self.metrics.borrow();
        let leader = metrics.current_leader?;
        if leader != self.identity.member_id {
            return Some(leader);
        }
        let window = 2 * self.config.election_timeout;
        let voters: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
        let in_contact = voters
            .iter()
            .filter(|&&v| v == leader || self.peer_stats.contacted_within(v, window))
            .count();
        (in_contact > voters.len() / 2).then_some(leader)
    }

    /// etcd's response header for a response at `revision`.
    pub fn header(&self, revision: i64) -> ResponseHeader {
        ResponseHeader {
            cluster_id: self.identity.cluster_id,
            member_id: self.identity.member_id,
            revision,
            raft_term: self.metrics.borrow().current_term,
        }
    }

    fn complete_header(&self, header: &mut Option<ResponseHeader>) {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        *header = Some(self.header(revision));
    }

    fn check_size(&self, request: &impl Message) -> Result<(), ServerError> {
        if request.encoded_len() > self.config.max_request_bytes {
            return Err(ServerError::RequestTooLarge);
        }
        Ok(())
    }

    /// Waits until this member has applied everything committed before the
    /// call, so a local read is linearizable.
    async fn linearizable_barrier(&self) -> Result<(), ServerError> {
        let index = self.reads.read_index().await?;
        tracing::debug!(index, "waiting for read index to apply");
        self.wait_applied(index).await
    }

    async fn wait_applied(&self, index: u64) -> Result<(), ServerError> {
        let applied = self.metrics.borrow().last_applied.map_or(0, |l| l.index);
        if applied >= index {
            return Ok(());
        }
        self.raft
            .wait(Some(self.config.request_timeout()))
            .applied_index_at_least(Some(index), "linearizable read")
            .await
            .map(|_| ())
            .map_err(|_| ServerError::Timeout)
    }

    /// Reads through one consistent SQLite transaction.
    async fn read<R, F>(&self, f: F) -> Result<R, ServerError>
    where
        F: FnOnce(&mut SqliteKv<'_>) -> Result<R, MvccError> + Send + 'static,
        R: Send + 'static,
    {
        let index = self.db.key_index().clone();
        let outcome = self
            .db
            .read(move |tx| Ok(f(&mut SqliteKv::reader(tx, &index))))
            .await?;
        Ok(outcome?)
    }

    /// `KV.Range`, as `caller`.
    pub async fn range(
        &self,
        req: RangeRequest,
        caller: &Caller,
    ) -> Result<RangeResponse, ServerError> {
        if req.key.is_empty() {
            return Err(MvccError::KeyNotProvided.into());
        }
        self.check_read(|auth| auth.check_range(caller, &req))?;
        if !req.serializable {
            self.linearizable_barrier().await?;
        }
        let mut resp = if req.range_end.is_empty() && req.revision <= 0 {
            // The newest version of one key: one row, found through the
            // key index (a scan may read many).
            let outcome = self
                .db
                .read_small_kv(move |kv| Ok(mvcc::range(kv, &req)))
                .await?;
            outcome?
        } else {
            self.read(move |kv| mvcc::range(kv, &req)).await?
        };
        self.complete_header(&mut resp.header);
        Ok(resp)
    }

    /// `KV.Put`, as `caller`.
    pub async fn put(&self, req: PutRequest, caller: &Caller) -> Result<PutResponse, ServerError> {
        mvcc::validate_put(&req)?;
        self.check_size(&req)?;
        self.check_quota().await?;
        let checked = self.authorize(caller, |auth| auth.check_put(caller, &req))?;
        match self.propose(checked.command(Command::Put(req))).await? {
            CommandResult::Put(mut resp) => {
                self.complete_header(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(other)),
        }
    }

    /// `KV.DeleteRange`, as `caller`.
    pub async fn delete_range(
        &self,
        req: DeleteRangeRequest,
        caller: &Caller,
    ) -> Result<DeleteRangeResponse, ServerError> {
        if req.key.is_empty() {
            return Err(MvccError::KeyNotProvided.into());
        }
        self.check_size(&req)?;
        let checked = self.authorize(caller, |auth| auth.check_delete_range(caller, &req))?;
        match self
            .propose(checked.command(Command::DeleteRange(req)))
            .await?
        {
            CommandResult::DeleteRange(mut resp) => {
                self.complete_header(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(other)),
        }
    }

    /// `KV.Txn`, as `caller`: read-only transactions are served locally
    /// behind a read barrier, as etcd does; the rest go through Raft.
    pub async fn txn(&self, req: TxnRequest, caller: &Caller) -> Result<TxnResponse, ServerError> {
        mvcc::validate_txn(&req, self.config.max_txn_ops)?;
        self.check_size(&req)?;
        let checked = self.authorize(caller, |auth| auth.check_txn(caller, &req))?;
        let mut resp = if crate::mvcc::txn_is_read_only(&req) {
            if !is_serializable(&req) {
                self.linearizable_barrier().await?;
            }
            self.read(move |kv| mvcc::apply_txn(kv, &req).map(|applied| applied.response))
                .await?
        } else {
            if mvcc::txn_has_puts(&req) {
                self.check_quota().await?;
            }
            match self.propose(checked.command(Command::Txn(req))).await? {
                CommandResult::Txn(resp) => resp,
                other => return Err(unexpected(other)),
            }
        };
        self.complete_header(&mut resp.header);
        Ok(resp)
    }

    /// `KV.Compact`.
    pub async fn compact(&self, req: CompactionRequest) -> Result<CompactionResponse, ServerError> {
        match self.propose(Command::Compact(req)).await? {
            CommandResult::Compact(mut resp) => {
                self.complete_header(&mut resp.header);
                Ok(resp)
            }
            other => Err(unexpected(other)),
        }
    }

    /// `Maintenance.Status`, from this member's point of view.
    pub async fn status(&self) -> Result<StatusResponse, ServerError> {
        let metrics = self.metrics();
        let revision = self
            .read(|kv| Ok(mvcc::KvRead::revisions(kv)?.current))
            .await?;
        let leader = self.reported_leader();
        Ok(StatusResponse {
            header: Some(self.header(revision)),
            version: crate::ETCD_VERSION.to_string(),
            db_size: self.db.size_on_disk() as i64,
            leader: leader.unwrap_or(0),
            raft_index: metrics.last_log_index.unwrap_or(0),
            raft_term: metrics.current_term,
            raft_applied_index: metrics.last_applied.map_or(0, |l| l.index),
            errors: self.status_errors(leader.is_none()).await?,
            db_size_in_use: self.db.size_in_use().await? as i64,
            is_learner: metrics
                .membership_config
                .membership()
                .learner_ids()
                .any(|id| id == self.identity.member_id),
        })
    }

    /// Whether `member` was once in the cluster and has been removed.
    pub(crate) fn was_removed(&self, member: u64) -> bool {
        self.removed_members
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&member)
    }

    /// Resolves once this member has started to stop (at once if it
    /// already has). Long-lived streams and waits select on it to end
    /// promptly, so clients move to another member instead of holding the
    /// shutdown until its drain timeout.
    pub fn stopping(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        wait_for_stop(self.stop.subscribe())
    }

    /// `Watch.Watch`: a new stream and the receiver of its messages.
    pub fn watch_stream(&self) -> (WatchStream, tokio::sync::mpsc::Receiver<WatchMessage>) {
        WatchStream::new(self.hub.clone())
    }

    /// What `Status.errors` lists: no leader, and every active alarm.
    async fn status_errors(&self, no_leader: bool) -> Result<Vec<String>, ServerError> {
        let mut errors = Vec::new();
        if no_leader {
            errors.push(format!("etcdserver: {}", ServerError::NoLeader));
        }
        for alarm in self.active_alarms().await? {
            errors.push(alarm_text(&alarm));
        }
        Ok(errors)
    }

    /// `/health`, as etcd decides it: no active alarm (but those named in
    /// `excluded`), a leader, and a linearizable read within a second.
    pub async fn health(&self, excluded: &[String]) -> Health {
        let alarms = match self.active_alarms().await {
            Ok(alarms) => alarms,
            Err(e) => return Health::Unhealthy(format!("ALARM ERROR:{e}")),
        };
        for alarm in alarms {
            let name = crate::proto::etcdserverpb::AlarmType::try_from(alarm.alarm)
                .map_or("UNKNOWN", |a| a.as_str_name())
                .to_string();
            if !excluded.contains(&name) {
                return Health::Unhealthy(format!("ALARM {name}"));
            }
        }
        if self.reported_leader().is_none() {
            return Health::Unhealthy("RAFT NO LEADER".into());
        }
        match tokio::time::timeout(HEALTH_READ_TIMEOUT, self.linearizable_barrier()).await {
            Ok(Ok(())) => Health::Healthy,
            Ok(Err(e)) => Health::Unhealthy(format!("QGET ERROR:etcdserver: {e}")),
            Err(_) => Health::Unhealthy("QGET ERROR:etcdserver: request timed out".into()),
        }
    }
}

/// An alarm as etcd lists it in `Status.errors`: Go's compact protobuf
/// text, which leaves out zero fields and names known enum values.
fn alarm_text(alarm: &crate::proto::etcdserverpb::AlarmMember) -> String {
    let mut text = String::new();
    if alarm.member_id != 0 {
        text.push_str(&format!("memberID:{} ", alarm.member_id));
    }
    if alarm.alarm != 0 {
        match crate::proto::etcdserverpb::AlarmType::try_from(alarm.alarm) {
            Ok(known) => text.push_str(&format!("alarm:{} ", known.as_str_name())),
            Err(_) => text.push_str(&format!("alarm:{} ", alarm.alarm)),
        }
    }
    text
}

pub(crate) fn unexpected(result: CommandResult) -> ServerError {
    match result {
        CommandResult::Rejected(e) => ServerError::Mvcc(e),
        CommandResult::Auth(Err(e)) => ServerError::Auth(e),
        other => ServerError::Internal(format!("unexpected apply result {other:?}")),
    }
}

fn is_serializable(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(r)) => r.serializable,
            Some(Request::RequestTxn(nested)) => is_serializable(nested),
            _ => true,
        })
}

/// Shared handle type used by the API layers.
pub type SharedNode = Arc<Node>;

#[cfg(test)]
mod tests {
    use super::alarm_text;
    use crate::proto::etcdserverpb::AlarmMember;

    #[test]
    fn alarms_are_listed_in_gos_compact_text() {
        let text = |member_id, alarm| alarm_text(&AlarmMember { member_id, alarm });
        assert_eq!(text(1, 1), "memberID:1 alarm:NOSPACE ");
        assert_eq!(text(2, 0), "memberID:2 ");
        assert_eq!(text(0, 2), "alarm:CORRUPT ");
        assert_eq!(text(3, 9), "memberID:3 alarm:9 ");
    }
}
