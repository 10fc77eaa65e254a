//! `Range`: which keys a read returns, in what order, and how it is counted.

use std::cmp::Ordering;

use super::{KeyRange, KeyValue, KvRead, MvccError};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse, ResponseHeader};

/// Serves a `Range` request from a consistent view of the store.
///
/// `revision <= 0` reads the latest state; an older revision must not be
/// compacted and a newer one must not be in the future.
pub fn range(backend: &impl KvRead, req: &RangeRequest) -> Result<RangeResponse, MvccError> {
    let revisions = backend.revisions()?;
    let at = resolve_revision(req.revision, revisions.current, revisions.compacted)?;
    range_at(backend, req, at, revisions.current)
}

/// Turns a requested revision into the one to read at (`None`: latest).
pub(super) fn resolve_revision(
    requested: i64,
    current: i64,
    compacted: i64,
) -> Result<Option<i64>, MvccError> {
    if requested <= 0 || requested == current {
        return Ok(None);
    }
    if requested > current {
        return Err(MvccError::FutureRevision);
    }
    if requested < compacted {
        return Err(MvccError::Compacted);
    }
    Ok(Some(requested))
}

/// Serves a `Range` at an already validated revision; `header_revision` is
/// the revision the response header reports.
pub(super) fn range_at(
    backend: &impl KvRead,
    req: &RangeRequest,
    at: Option<i64>,
    header_revision: i64,
) -> Result<RangeResponse, MvccError> {
    let mut resp = RangeResponse {
        header: Some(ResponseHeader {
            revision: header_revision,
            ..Default::default()
        }),
        ..Default::default()
    };
    let range = KeyRange::new(&req.key, &req.range_end);
    if range.is_empty() {
        return Ok(resp);
    }
    if req.count_only {
        resp.count = backend.count(&range, at)?;
        return Ok(resp);
    }

    let (order, target) = effective_sort(req);
    let limit = usize::try_from(req.limit).unwrap_or(0);
    let natively_ordered =
        order == SortOrder::None || (order == SortOrder::Ascend && target == SortTarget::Key);
    // The store returns keys in ascending order, so a plain limited read can
    // stop early; sorting or filtering needs the whole range first.
    let fetch_limit =
        (limit > 0 && natively_ordered && !has_revision_filters(req)).then_some(limit + 1);

    let mut kvs = backend.range(&range, at, fetch_limit, req.keys_only)?;
    // `count` is the size of the whole range, before filters and limit.
    resp.count = match fetch_limit {
        Some(fetch) if kvs.len() >= fetch => backend.count(&range, at)?,
        _ => kvs.len() as i64,
    };
    kvs.retain(|kv| passes_revision_filters(req, kv));
    sort(&mut kvs, order, target);
    if limit > 0 && kvs.len() > limit {
        kvs.truncate(limit);
        resp.more = true;
    }
    resp.kvs = kvs;
    Ok(resp)
}

/// etcd sorts ascending when a target other than the key is named without
/// an order.
fn effective_sort(req: &RangeRequest) -> (SortOrder, SortTarget) {
    let target = req.sort_target();
    let order = match req.sort_order() {
        SortOrder::None if target != SortTarget::Key => SortOrder::Ascend,
        order => order,
    };
    (order, target)
}

fn has_revision_filters(req: &RangeRequest) -> bool {
    req.min_mod_revision != 0
        || req.max_mod_revision != 0
        || req.min_create_revision != 0
        || req.max_create_revision != 0
}

fn passes_revision_filters(req: &RangeRequest, kv: &KeyValue) -> bool {
    let at_least = |bound: i64, value: i64| bound == 0 || value >= bound;
    let at_most = |bound: i64, value: i64| bound == 0 || value <= bound;
    at_least(req.min_mod_revision, kv.mod_revision)
        && at_most(req.max_mod_revision, kv.mod_revision)
        && at_least(req.min_create_revision, kv.create_revision)
        && at_most(req.max_create_revision, kv.create_revision)
}

/// A stable sort, so ties keep ascending key order in both directions (what
/// etcd's insertion sort yields for the result sizes clients compare).
fn sort(kvs: &mut [KeyValue], order: SortOrder, target: SortTarget) {
    let by_target = |a: &KeyValue, b: &KeyValue| -> Ordering {
        match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        }
    };
    match order {
        SortOrder::None => {}
        SortOrder::Ascend if target == SortTarget::Key => {}
        SortOrder::Ascend => kvs.sort_by(by_target),
        SortOrder::Descend => kvs.sort_by(|a, b| by_target(b, a)),
    }
}
