//! etcd's lock and election recipes, as the `v3lockpb.Lock` and
//! `v3electionpb.Election` services run them.
//!
//! etcd serves these two services by running its own client library
//! (clientv3/concurrency) against itself; this module is that library's
//! server half, step for step, so the keys, revisions, headers and errors
//! are etcd's:
//!
//! - a *session* is a lease: the one the caller names, or a new 60 s lease
//!   when it names none. etcd "orphans" the session at once, so the server
//!   never keeps that lease alive (measured on etcd 3.4: its TTL runs down
//!   while a Lock waits); the caller keeps its own lease alive.
//! - a contender creates `<name>/<lease in hex>` with that lease (a Txn on
//!   `create_revision == 0`), and wins when its key has the lowest create
//!   revision under `<name>/`. Until then it waits for the deletion of the
//!   key created just before its own (Range with `max_create_revision`,
//!   sorted by create revision descending, limit 1; then a Watch of that
//!   key), and repeats.
//!
//! [`lock`] owns Lock/Unlock, [`election`] owns Campaign, Proclaim, Leader,
//! Observe and Resign; this file holds what both share (sessions, the
//! waiting, the watch helper, cleanup of abandoned waits, errors).
//!
//! This module only calls [`Node`]'s public request methods (`txn`,
//! `range`, `delete_range`, `lease_grant`, `watch_stream`), exactly as a
//! client would, and as the caller that asked (so auth checks the lock's
//! and election's keys as etcd does through its own client): it never touches storage or Raft, and knows nothing of
//! gRPC (the services live in `api::concurrency`).

pub mod election;
pub mod lock;

use std::sync::Arc;

use tokio::sync::mpsc;

pub use election::{campaign, leader, observe, proclaim, resign};
pub use lock::{lock, unlock};

use crate::auth::Caller;
use crate::mvcc::prefix_end;
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::watch_request::RequestUnion;
use crate::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, LeaseGrantRequest, PutRequest, RangeRequest, RequestOp,
    ResponseHeader, TxnRequest, TxnResponse, WatchCreateRequest, WatchRequest,
};
use crate::proto::mvccpb::event::EventType;
use crate::proto::mvccpb::{Event, KeyValue};
use crate::server::{Node, ServerError};
use crate::watch::{WatchMessage, WatchStream};

/// TTL of the lease a request without one gets (clientv3's default session).
pub const SESSION_TTL: i64 = 60;

/// Why a lock or election request failed. `Display` is etcd's message.
#[derive(Debug, thiserror::Error)]
pub enum ConcurrencyError {
    /// A request to the node failed (etcd passes its client's error on).
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The waiter's own key vanished (its lease expired or was revoked)
    /// before the keys ahead of it were deleted.
    #[error("session expired")]
    SessionExpired,
    #[error("election: no leader")]
    NoLeader,
    #[error("election: not leader")]
    NotLeader,
    #[error("\"leader\" field must be provided")]
    MissingLeaderKey,
    /// The watch a waiter relied on ended without the deletion.
    #[error("lost watcher waiting for delete")]
    LostWatcher,
}

impl From<crate::mvcc::MvccError> for ConcurrencyError {
    fn from(e: crate::mvcc::MvccError) -> Self {
        ConcurrencyError::Server(e.into())
    }
}

pub type Result<T> = std::result::Result<T, ConcurrencyError>;

/// The lease of a session: `lease` as given, or a new [`SESSION_TTL`] lease
/// when it is 0. Like etcd, the server does not keep it alive.
async fn session_lease(node: &Node, lease: i64) -> Result<i64> {
    if lease != 0 {
        return Ok(lease);
    }
    let granted = node
        .lease_grant(LeaseGrantRequest {
            ttl: SESSION_TTL,
            id: 0,
        })
        .await?;
    Ok(granted.id)
}

/// `<name>/`, the prefix every contender's key lives under.
fn contender_prefix(name: &[u8]) -> Vec<u8> {
    let mut prefix = name.to_vec();
    prefix.push(b'/');
    prefix
}

/// A contender's key, `<prefix><lease>` with the lease in Go's `%x` (a
/// minus sign for negative ids).
fn contender_key(prefix: &[u8], lease: i64) -> Vec<u8> {
    let hex = if lease < 0 {
        format!("-{:x}", lease.unsigned_abs())
    } else {
        format!("{lease:x}")
    };
    let mut key = prefix.to_vec();
    key.extend_from_slice(hex.as_bytes());
    key
}

fn create_revision_is(key: &[u8], revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Create as i32,
        key: key.to_vec(),
        range_end: Vec::new(),
        target_union: Some(TargetUnion::CreateRevision(revision)),
    }
}

fn get(key: &[u8]) -> RangeRequest {
    RangeRequest {
        key: key.to_vec(),
        ..Default::default()
    }
}

/// The key under `prefix` with the lowest create revision (clientv3's
/// `WithFirstCreate`).
fn first_created(prefix: &[u8]) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Ascend as i32,
        sort_target: SortTarget::Create as i32,
        ..Default::default()
    }
}

/// The key under `prefix` created last at or before `max_create_revision`
/// (clientv3's `WithLastCreate` + `WithMaxCreateRev`).
fn last_created_up_to(prefix: &[u8], max_create_revision: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Create as i32,
        max_create_revision,
        ..Default::default()
    }
}

fn put_op(key: &[u8], value: &[u8], lease: i64) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        })),
    }
}

fn range_op(range: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(range)),
    }
}

fn delete_op(key: &[u8]) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.to_vec(),
            ..Default::default()
        })),
    }
}

/// The kvs of the `i`th response of a Txn, if it is a Range.
fn range_kvs(resp: &TxnResponse, i: usize) -> &[KeyValue] {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(Response::ResponseRange(range)) => &range.kvs,
        _ => &[],
    }
}

fn revision(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |h| h.revision)
}

/// Waits until no key under `prefix` created at or before
/// `max_create_revision` is left, one deletion at a time (clientv3's
/// `waitDeletes`). Returns the header of the last, empty, Range.
async fn wait_deletes(
    node: &Node,
    caller: &Caller,
    prefix: &[u8],
    max_create_revision: i64,
) -> Result<Option<ResponseHeader>> {
    loop {
        let resp = node
            .range(last_created_up_to(prefix, max_create_revision), caller)
            .await?;
        let Some(last) = resp.kvs.first() else {
            return Ok(resp.header);
        };
        wait_delete(node, &last.key, revision(&resp.header)).await?;
    }
}

/// Waits for a DELETE of `key` at or after `start_revision`.
async fn wait_delete(node: &Node, key: &[u8], start_revision: i64) -> Result<()> {
    let mut watch = KeyWatch::open(node, key, Vec::new(), start_revision).await?;
    loop {
        let (_, events) = watch.next_events().await?;
        if events
            .iter()
            .any(|event| event.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
    }
}

/// One watch on a private watch stream of this member. Dropping it cancels
/// the watch.
struct KeyWatch {
    _stream: WatchStream,
    messages: mpsc::Receiver<WatchMessage>,
}

impl KeyWatch {
    async fn open(
        node: &Node,
        key: &[u8],
        range_end: Vec<u8>,
        start_revision: i64,
    ) -> Result<Self> {
        let (mut stream, messages) = node.watch_stream();
        stream
            .handle(WatchRequest {
                request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                    key: key.to_vec(),
                    range_end,
                    start_revision,
                    ..Default::default()
                })),
            })
            .await;
        Ok(Self {
            _stream: stream,
            messages,
        })
    }

    /// The next batch of events and the revision they belong to.
    async fn next_events(&mut self) -> Result<(i64, Vec<Event>)> {
        loop {
            match self.messages.recv().await {
                Some(WatchMessage::Events {
                    revision, events, ..
                }) => return Ok((revision, events)),
                Some(WatchMessage::Created { .. } | WatchMessage::Progress { .. }) => continue,
                Some(WatchMessage::Compacted { .. }) => {
                    return Err(crate::mvcc::MvccError::Compacted.into());
                }
                Some(WatchMessage::Canceled { .. }) | None => {
                    return Err(ConcurrencyError::LostWatcher);
                }
            }
        }
    }
}

/// A write to make if the request that armed it is abandoned (its future
/// dropped because the client went away): etcd cleans up a waiter's key
/// when the call's context ends.
struct Cleanup {
    node: Arc<Node>,
    caller: Caller,
    txn: Option<TxnRequest>,
}

impl Cleanup {
    fn arm(node: &Arc<Node>, caller: &Caller, txn: TxnRequest) -> Self {
        Self {
            node: node.clone(),
            caller: caller.clone(),
            txn: Some(txn),
        }
    }

    /// Makes the write now, and only once.
    async fn run(mut self) -> Result<TxnResponse> {
        let txn = self.txn.take().unwrap_or_default();
        Ok(self.node.txn(txn, &self.caller).await?)
    }

    fn disarm(mut self) {
        self.txn = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let Some(txn) = self.txn.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let node = self.node.clone();
        let caller = self.caller.clone();
        runtime.spawn(async move {
            if let Err(e) = node.txn(txn, &caller).await {
                tracing::warn!(error = %e, "cleaning up an abandoned lock or campaign failed");
            }
        });
    }
}

/// A Txn that deletes `key` unconditionally.
fn delete_txn(key: &[u8]) -> TxnRequest {
    TxnRequest {
        success: vec![delete_op(key)],
        ..Default::default()
    }
}

/// A Txn that deletes `key` if it was created at `create_revision`.
fn delete_if_created_at(key: &[u8], create_revision: i64) -> TxnRequest {
    TxnRequest {
        compare: vec![create_revision_is(key, create_revision)],
        success: vec![delete_op(key)],
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contender_keys_are_gos_hex() {
        let prefix = contender_prefix(b"job");
        assert_eq!(prefix, b"job/");
        assert_eq!(
            contender_key(&prefix, 0x694d_7a1b_3c2e),
            b"job/694d7a1b3c2e"
        );
        assert_eq!(contender_key(&prefix, -5), b"job/-5");
        assert_eq!(contender_key(b"/", 255), b"/ff");
    }

    #[test]
    fn waiting_looks_at_the_key_created_just_before() {
        let range = last_created_up_to(b"job/", 41);
        assert_eq!(range.range_end, b"job0");
        assert_eq!(range.max_create_revision, 41);
        assert_eq!(range.limit, 1);
        assert_eq!(range.sort_order, SortOrder::Descend as i32);
        assert_eq!(range.sort_target, SortTarget::Create as i32);
        let first = first_created(b"job/");
        assert_eq!(first.sort_order, SortOrder::Ascend as i32);
        assert_eq!(first.max_create_revision, 0);
    }
}
