//! Checks that need no state and run before a request is proposed, so a
//! malformed request never reaches the Raft log.

use std::collections::HashSet;

use super::{KeyRange, MvccError};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{PutRequest, RequestOp, TxnRequest};

/// Checks a `Put` on its own.
pub fn validate_put(req: &PutRequest) -> Result<(), MvccError> {
    if req.key.is_empty() {
        return Err(MvccError::KeyNotProvided);
    }
    if req.ignore_value && !req.value.is_empty() {
        return Err(MvccError::ValueProvided);
    }
    if req.ignore_lease && req.lease != 0 {
        return Err(MvccError::LeaseProvided);
    }
    Ok(())
}

/// Whether a txn puts any key on either branch, nested txns included
/// (what a raised space alarm refuses).
pub fn txn_has_puts(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .any(|op| match &op.request {
            Some(Request::RequestPut(_)) => true,
            Some(Request::RequestTxn(nested)) => txn_has_puts(nested),
            _ => false,
        })
}

/// Whether a `Txn` only reads (in every branch, nested ones included).
pub fn txn_is_read_only(req: &TxnRequest) -> bool {
    req.success
        .iter()
        .chain(&req.failure)
        .all(|op| match &op.request {
            Some(Request::RequestRange(_)) | None => true,
            Some(Request::RequestTxn(nested)) => txn_is_read_only(nested),
            Some(_) => false,
        })
}

/// Checks a `Txn`: operation counts against `max_ops` (nested txns share
/// the budget, as in etcd), keys present, and no key written twice in a
/// branch.
pub fn validate_txn(req: &TxnRequest, max_ops: usize) -> Result<(), MvccError> {
    check_shape(req, max_ops)?;
    writes_of(&req.success)?;
    writes_of(&req.failure)?;
    Ok(())
}

fn check_shape(req: &TxnRequest, max_ops: usize) -> Result<(), MvccError> {
    let ops = req
        .compare
        .len()
        .max(req.success.len())
        .max(req.failure.len());
    if ops > max_ops {
        return Err(MvccError::TooManyOps);
    }
    if req.compare.iter().any(|c| c.key.is_empty()) {
        return Err(MvccError::KeyNotProvided);
    }
    for op in req.success.iter().chain(&req.failure) {
        check_op(op, max_ops - ops)?;
    }
    Ok(())
}

fn check_op(op: &RequestOp, max_ops: usize) -> Result<(), MvccError> {
    match &op.request {
        Some(Request::RequestRange(r)) if r.key.is_empty() => Err(MvccError::KeyNotProvided),
        Some(Request::RequestDeleteRange(r)) if r.key.is_empty() => Err(MvccError::KeyNotProvided),
        Some(Request::RequestPut(r)) => validate_put(r),
        Some(Request::RequestTxn(r)) => check_shape(r, max_ops),
        Some(_) => Ok(()),
        None => Err(MvccError::KeyNotFound),
    }
}

/// The keys one branch puts and the ranges it deletes, nested txns
/// included; fails when a key is put twice or put inside a deleted range.
/// The two branches of a nested txn never both run, so a key they both put
/// is fine.
fn writes_of(ops: &[RequestOp]) -> Result<(HashSet<Vec<u8>>, Vec<KeyRange>), MvccError> {
    let mut deletes: Vec<KeyRange> = ops
        .iter()
        .filter_map(|op| match &op.request {
            Some(Request::RequestDeleteRange(d)) => Some(KeyRange::new(&d.key, &d.range_end)),
            _ => None,
        })
        .collect();
    let deleted = |deletes: &[KeyRange], key: &[u8]| deletes.iter().any(|r| r.contains(key));

    let mut puts = HashSet::new();
    for op in ops {
        let Some(Request::RequestTxn(nested)) = &op.request else {
            continue;
        };
        let (puts_then, deletes_then) = writes_of(&nested.success)?;
        let (puts_else, deletes_else) = writes_of(&nested.failure)?;
        for key in &puts_then {
            if puts.contains(key) || deleted(&deletes, key) {
                return Err(MvccError::DuplicateKey);
            }
        }
        for key in &puts_else {
            let clashes = puts.contains(key) && !puts_then.contains(key);
            if clashes || deleted(&deletes, key) {
                return Err(MvccError::DuplicateKey);
            }
        }
        puts.extend(puts_then);
        puts.extend(puts_else);
        deletes.extend(deletes_then);
        deletes.extend(deletes_else);
    }
    for op in ops {
        let Some(Request::RequestPut(put)) = &op.request else {
            continue;
        };
        if deleted(&deletes, &put.key) || !puts.insert(put.key.clone()) {
            return Err(MvccError::DuplicateKey);
        }
    }
    Ok((puts, deletes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest};

    fn put(key: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestPut(PutRequest {
                key: key.into(),
                ..Default::default()
            })),
        }
    }

    fn del(key: &str, end: &str) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
                key: key.into(),
                range_end: end.into(),
                ..Default::default()
            })),
        }
    }

    fn txn(success: Vec<RequestOp>, failure: Vec<RequestOp>) -> TxnRequest {
        TxnRequest {
            compare: vec![],
            success,
            failure,
        }
    }

    fn nested(t: TxnRequest) -> RequestOp {
        RequestOp {
            request: Some(Request::RequestTxn(t)),
        }
    }

    #[test]
    fn put_misuse_is_refused() {
        let mut req = PutRequest {
            key: b"k".to_vec(),
            ignore_value: true,
            value: b"v".to_vec(),
            ..Default::default()
        };
        assert_eq!(validate_put(&req), Err(MvccError::ValueProvided));
        req.value.clear();
        req.ignore_lease = true;
        req.lease = 7;
        assert_eq!(validate_put(&req), Err(MvccError::LeaseProvided));
        assert_eq!(
            validate_put(&PutRequest::default()),
            Err(MvccError::KeyNotProvided)
        );
    }

    #[test]
    fn too_many_ops_counts_the_largest_list() {
        let ops = (0..129).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(
            validate_txn(&txn(ops, vec![]), 128),
            Err(MvccError::TooManyOps)
        );
        let ops = (0..128).map(|i| put(&format!("k{i}"))).collect();
        assert_eq!(validate_txn(&txn(ops, vec![]), 128), Ok(()));
    }

    #[test]
    fn duplicate_keys_in_one_branch() {
        let dup = txn(vec![put("a"), put("a")], vec![]);
        assert_eq!(validate_txn(&dup, 128), Err(MvccError::DuplicateKey));
        let put_in_deleted = txn(vec![del("a", "c"), put("b")], vec![]);
        assert_eq!(
            validate_txn(&put_in_deleted, 128),
            Err(MvccError::DuplicateKey)
        );
        let across_branches = txn(vec![put("a")], vec![put("a")]);
        assert_eq!(validate_txn(&across_branches, 128), Ok(()));
        let two_deletes = txn(vec![del("a", "c"), del("b", "d")], vec![]);
        assert_eq!(validate_txn(&two_deletes, 128), Ok(()));
    }

    #[test]
    fn duplicate_keys_through_nested_txns() {
        let clash = txn(vec![put("a"), nested(txn(vec![put("a")], vec![]))], vec![]);
        assert_eq!(validate_txn(&clash, 128), Err(MvccError::DuplicateKey));
        let both_nested_branches = txn(vec![nested(txn(vec![put("a")], vec![put("a")]))], vec![]);
        assert_eq!(validate_txn(&both_nested_branches, 128), Ok(()));
        let nested_delete = txn(
            vec![put("b"), nested(txn(vec![del("a", "c")], vec![]))],
            vec![],
        );
        assert_eq!(
            validate_txn(&nested_delete, 128),
            Err(MvccError::DuplicateKey)
        );
    }

    #[test]
    fn puts_are_found_in_nested_branches() {
        assert!(!txn_has_puts(&txn(vec![del("a", "")], vec![])));
        assert!(txn_has_puts(&txn(
            vec![],
            vec![nested(txn(vec![], vec![put("a")]))]
        )));
    }

    #[test]
    fn empty_keys_anywhere_are_refused() {
        let t = txn(vec![nested(txn(vec![del("", "")], vec![]))], vec![]);
        assert_eq!(validate_txn(&t, 128), Err(MvccError::KeyNotProvided));
    }
}
