//! Put, DeleteRange, Txn and Compact: how a committed request changes the
//! keyspace.
//!
//! Every write request runs in one [`WriteTxn`]: all its changes share one
//! main revision (the store's current revision plus one) and are numbered by
//! sub-revision; a request that changes nothing leaves the revision alone.

use super::read::{range_at, resolve_revision};
use super::{KeyRange, KeyValue, KvWrite, MvccError};
use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::response_op::Response;
use crate::proto::etcdserverpb::{
    CompactionRequest, CompactionResponse, Compare, DeleteRangeRequest, DeleteRangeResponse,
    PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp, ResponseHeader, ResponseOp,
    TxnRequest, TxnResponse,
};
use crate::proto::mvccpb::{Event, event::EventType};

/// What a write request did: its response, and the events it produced
/// for watchers (in sub-revision order, all at the same revision).
#[derive(Debug, Clone, PartialEq)]
pub struct Applied<T> {
    pub response: T,
    pub events: Vec<Event>,
}

/// The changes of one write request, all at revision `begin + 1`.
pub struct WriteTxn<'b, B: KvWrite> {
    backend: &'b mut B,
    begin: i64,
    compacted: i64,
    changes: i64,
    events: Vec<Event>,
}

impl<'b, B: KvWrite> WriteTxn<'b, B> {
    pub fn begin(backend: &'b mut B) -> Result<Self, MvccError> {
        let revisions = backend.revisions()?;
        Ok(Self {
            backend,
            begin: revisions.current,
            compacted: revisions.compacted,
            changes: 0,
            events: Vec::new(),
        })
    }

    fn write_revision(&self) -> i64 {
        self.begin + 1
    }

    /// The revision reads inside this transaction observe.
    fn read_revision(&self) -> i64 {
        if self.changes > 0 {
            self.begin + 1
        } else {
            self.begin
        }
    }

    /// The key's live version; `with_value: false` may leave its value
    /// empty.
    fn latest(&self, key: &[u8], with_value: bool) -> Result<Option<KeyValue>, MvccError> {
        let found =
            self.backend
                .range(&KeyRange::Single(key.to_vec()), None, Some(1), !with_value)?;
        Ok(found.into_iter().next())
    }

    /// Writes a new version of the key; `check_put` must have passed.
    fn put(&mut self, req: &PutRequest) -> Result<PutResponse, MvccError> {
        let event_prev_values = self.backend.events_need_prev_values();
        let with_value = req.prev_kv || req.ignore_value || event_prev_values;
        let prev = self.latest(&req.key, with_value)?;
        let rev = self.write_revision();
        let value = match (&prev, req.ignore_value) {
            (Some(prev), true) => prev.value.clone(),
            _ => req.value.clone(),
        };
        let lease = match (&prev, req.ignore_lease) {
            (Some(prev), true) => prev.lease,
            _ => req.lease,
        };
        let kv = KeyValue {
            key: req.key.clone(),
            create_revision: prev.as_ref().map_or(rev, |p| p.create_revision),
            mod_revision: rev,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value,
            lease,
        };
        self.backend.put(&kv, prev.as_ref(), self.changes)?;
        self.changes += 1;
        let response = PutResponse {
            header: Some(header(rev)),
            prev_kv: if req.prev_kv { prev.clone() } else { None },
        };
        self.events.push(Event {
            r#type: EventType::Put as i32,
            kv: Some(kv),
            prev_kv: prev.filter(|_| event_prev_values),
        });
        Ok(response)
    }

    pub(super) fn delete_range(
        &mut self,
        req: &DeleteRangeRequest,
    ) -> Result<DeleteRangeResponse, MvccError> {
        let range = KeyRange::new(&req.key, &req.range_end);
        let event_prev_values = self.backend.events_need_prev_values();
        let with_values = req.prev_kv || event_prev_values;
        let doomed = if range.is_empty() {
            Vec::new()
        } else {
            self.backend.range(&range, None, None, !with_values)?
        };
        let rev = self.write_revision();
        for kv in &doomed {
            self.backend.tombstone(kv, rev, self.changes)?;
            self.changes += 1;
            self.events.push(Event {
                r#type: EventType::Delete as i32,
                kv: Some(KeyValue {
                    key: kv.key.clone(),
                    mod_revision: rev,
                    ..Default::default()
                }),
                prev_kv: event_prev_values.then(|| kv.clone()),
            });
        }
        Ok(DeleteRangeResponse {
            header: Some(header(self.read_revision())),
            deleted: doomed.len() as i64,
            prev_kvs: if req.prev_kv { doomed } else { Vec::new() },
        })
    }

    fn range(&self, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
        let at = resolve_revision(req.revision, self.read_revision(), self.compacted)?;
        range_at(&*self.backend, req, at, self.read_revision())
    }

    /// Records the new revision if anything changed; returns the revision
    /// the response header reports and the events.
    pub fn commit(self) -> Result<(i64, Vec<Event>), MvccError> {
        let rev = self.read_revision();
        if self.changes > 0 {
            self.backend.set_current_revision(rev)?;
        }
        Ok((rev, self.events))
    }
}

fn header(revision: i64) -> ResponseHeader {
    ResponseHeader {
        revision,
        ..Default::default()
    }
}

/// Applies a `Put`.
pub fn apply_put(
    backend: &mut impl KvWrite,
    req: &PutRequest,
) -> Result<Applied<PutResponse>, MvccError> {
    check_put(&*backend, req)?;
    let mut txn = WriteTxn::begin(backend)?;
    let response = txn.put(req)?;
    let (_, events) = txn.commit()?;
    Ok(Applied { response, events })
}

/// Applies a `DeleteRange`.
pub fn apply_delete_range(
    backend: &mut impl KvWrite,
    req: &DeleteRangeRequest,
) -> Result<Applied<DeleteRangeResponse>, MvccError> {
    let mut txn = WriteTxn::begin(backend)?;
    let mut response = txn.delete_range(req)?;
    let (revision, events) = txn.commit()?;
    response.header = Some(header(revision));
    Ok(Applied { response, events })
}

/// Applies a `Compact`: history below `revision` is forgotten.
pub fn apply_compaction(
    backend: &mut impl KvWrite,
    req: &CompactionRequest,
) -> Result<CompactionResponse, MvccError> {
    let revisions = backend.revisions()?;
    if req.revision <= revisions.compacted {
        return Err(MvccError::Compacted);
    }
    if req.revision > revisions.current {
        return Err(MvccError::FutureRevision);
    }
    backend.compact(req.revision)?;
    Ok(CompactionResponse {
        header: Some(header(revisions.current)),
    })
}

/// Applies a `Txn`: every compare (nested ones included) is evaluated on the
/// state before the transaction, the chosen branches are checked as a
/// whole, then their operations run in order, each seeing the earlier ones.
pub fn apply_txn(
    backend: &mut impl KvWrite,
    req: &TxnRequest,
) -> Result<Applied<TxnResponse>, MvccError> {
    let mut path = Vec::new();
    choose_branches(&*backend, req, &mut path)?;
    check_branches(&*backend, req, &mut path.iter().copied())?;
    let mut txn = WriteTxn::begin(backend)?;
    let mut response = run_txn(&mut txn, req, &mut path.into_iter())?;
    let (revision, events) = txn.commit()?;
    response.header = Some(header(revision));
    Ok(Applied { response, events })
}

/// Evaluates the compares of `req` and of the nested txns on its chosen
/// branch, depth first, pushing one verdict per txn.
fn choose_branches(
    backend: &impl KvWrite,
    req: &TxnRequest,
    path: &mut Vec<bool>,
) -> Result<(), MvccError> {
    let mut succeeded = true;
    for compare in &req.compare {
        if !compare_holds(backend, compare)? {
            succeeded = false;
            break;
        }
    }
    path.push(succeeded);
    for op in branch(req, succeeded) {
        if let Some(Request::RequestTxn(nested)) = &op.request {
            choose_branches(backend, nested, path)?;
        }
    }
    Ok(())
}

fn branch(req: &TxnRequest, succeeded: bool) -> &[RequestOp] {
    if succeeded {
        &req.success
    } else {
        &req.failure
    }
}

/// Rejects the whole txn before any write if an operation on the chosen
/// path would fail: a put naming a missing lease or key, or a read at a
/// compacted or future revision.
fn check_branches(
    backend: &impl KvWrite,
    req: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<(), MvccError> {
    let succeeded = path.next().unwrap_or(false);
    let revisions = backend.revisions()?;
    for op in branch(req, succeeded) {
        match &op.request {
            Some(Request::RequestPut(put)) => check_put(backend, put)?,
            Some(Request::RequestRange(range)) if range.revision > 0 => {
                resolve_revision(range.revision, revisions.current, revisions.compacted)?;
            }
            Some(Request::RequestTxn(nested)) => check_branches(backend, nested, path)?,
            _ => {}
        }
    }
    Ok(())
}

fn run_txn<B: KvWrite>(
    txn: &mut WriteTxn<'_, B>,
    req: &TxnRequest,
    path: &mut impl Iterator<Item = bool>,
) -> Result<TxnResponse, MvccError> {
    let succeeded = path.next().unwrap_or(false);
    let mut responses = Vec::new();
    for op in branch(req, succeeded) {
        let response = match &op.request {
            Some(Request::RequestRange(r)) => Response::ResponseRange(txn.range(r)?),
            Some(Request::RequestPut(r)) => Response::ResponsePut(txn.put(r)?),
            Some(Request::RequestDeleteRange(r)) => {
                Response::ResponseDeleteRange(txn.delete_range(r)?)
            }
            Some(Request::RequestTxn(r)) => {
                // etcd leaves a nested txn's header empty.
                let mut nested = run_txn(txn, r, path)?;
                nested.header = Some(ResponseHeader::default());
                Response::ResponseTxn(nested)
            }
            None => {
                responses.push(ResponseOp { response: None });
                continue;
            }
        };
        responses.push(ResponseOp {
            response: Some(response),
        });
    }
    Ok(TxnResponse {
        header: None,
        succeeded,
        responses,
    })
}

/// The state-dependent checks of a put: `ignore_*` needs the key to exist
/// and an attached lease must be granted.
fn check_put(backend: &impl KvWrite, req: &PutRequest) -> Result<(), MvccError> {
    if req.ignore_value || req.ignore_lease {
        let exists = backend.count(&KeyRange::Single(req.key.clone()), None)? > 0;
        if !exists {
            return Err(MvccError::KeyNotFound);
        }
    }
    if !req.ignore_lease && req.lease != 0 && !backend.lease_exists(req.lease)? {
        return Err(MvccError::LeaseNotFound);
    }
    Ok(())
}

/// Whether a compare holds for every key of its range. A missing key counts
/// as zero for version, revisions and lease, and fails any value compare.
fn compare_holds(backend: &impl KvWrite, compare: &Compare) -> Result<bool, MvccError> {
    let range = KeyRange::new(&compare.key, &compare.range_end);
    let target = compare.target();
    let kvs = if range.is_empty() {
        Vec::new()
    } else {
        backend.range(&range, None, None, target != CompareTarget::Value)?
    };
    if kvs.is_empty() {
        return Ok(target != CompareTarget::Value && compare_kv(compare, &KeyValue::default()));
    }
    Ok(kvs.iter().all(|kv| compare_kv(compare, kv)))
}

fn compare_kv(compare: &Compare, kv: &KeyValue) -> bool {
    use std::cmp::Ordering;
    // A union that does not match the target compares as equal, as etcd does.
    let ordering = match (compare.target(), &compare.target_union) {
        (CompareTarget::Value, Some(TargetUnion::Value(v))) => kv.value.cmp(v),
        (CompareTarget::Version, Some(TargetUnion::Version(v))) => kv.version.cmp(v),
        (CompareTarget::Create, Some(TargetUnion::CreateRevision(v))) => kv.create_revision.cmp(v),
        (CompareTarget::Mod, Some(TargetUnion::ModRevision(v))) => kv.mod_revision.cmp(v),
        (CompareTarget::Lease, Some(TargetUnion::Lease(v))) => kv.lease.cmp(v),
        _ => Ordering::Equal,
    };
    match compare.result() {
        CompareResult::Equal => ordering == Ordering::Equal,
        CompareResult::NotEqual => ordering != Ordering::Equal,
        CompareResult::Greater => ordering == Ordering::Greater,
        CompareResult::Less => ordering == Ordering::Less,
    }
}

#[cfg(test)]
mod tests;
