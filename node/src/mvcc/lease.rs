//! Leases in the keyspace: a grant records a lease; a revoke deletes every
//! key attached to it in one revision (so a watcher sees all the deletes in
//! one response) and forgets the lease.
//!
//! When a lease expires is not decided here: the leader's lessor decides
//! and proposes the revoke, so every member deletes at the same revision.

use super::{Applied, KvWrite, MvccError, WriteTxn};
use crate::proto::etcdserverpb::DeleteRangeRequest;

/// The largest TTL etcd grants, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// Records a granted lease.
pub fn apply_lease_grant(backend: &mut impl KvWrite, id: i64, ttl: i64) -> Result<(), MvccError> {
    if backend.lease_exists(id)? {
        return Err(MvccError::LeaseExists);
    }
    backend.grant_lease(id, ttl)?;
    Ok(())
}

/// Deletes the lease's keys at one new revision and forgets the lease;
/// returns the revision after the revoke.
pub fn apply_lease_revoke(backend: &mut impl KvWrite, id: i64) -> Result<Applied<i64>, MvccError> {
    if !backend.lease_exists(id)? {
        return Err(MvccError::LeaseNotFound);
    }
    let keys = backend.lease_keys(id)?;
    let mut txn = WriteTxn::begin(backend)?;
    for key in keys {
        txn.delete_range(&DeleteRangeRequest {
            key,
            ..Default::default()
        })?;
    }
    let (revision, events) = txn.commit()?;
    backend.revoke_lease(id)?;
    Ok(Applied {
        response: revision,
        events,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{KvRead, MemoryBackend, apply_put};
    use crate::proto::etcdserverpb::PutRequest;

    fn put(b: &mut MemoryBackend, key: &str, lease: i64) {
        let req = PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        };
        apply_put(b, &req).unwrap();
    }

    #[test]
    fn revoke_deletes_attached_keys_in_one_revision() {
        let mut b = MemoryBackend::default();
        apply_lease_grant(&mut b, 7, 10).unwrap();
        put(&mut b, "a", 7);
        put(&mut b, "b", 7);
        put(&mut b, "c", 0);
        put(&mut b, "a", 0); // detaches "a"
        assert_eq!(b.lease_keys(7).unwrap(), vec![b"b".to_vec()]);
        put(&mut b, "a", 7);
        let revoked = apply_lease_revoke(&mut b, 7).unwrap();
        assert_eq!(revoked.response, 7);
        assert_eq!(revoked.events.len(), 2);
        assert!(
            revoked
                .events
                .iter()
                .all(|e| e.kv.as_ref().unwrap().mod_revision == 7)
        );
        assert!(!b.lease_exists(7).unwrap());
        assert_eq!(apply_lease_revoke(&mut b, 7), Err(MvccError::LeaseNotFound));
    }

    #[test]
    fn a_lease_id_is_granted_once() {
        let mut b = MemoryBackend::default();
        apply_lease_grant(&mut b, 1, 5).unwrap();
        assert_eq!(apply_lease_grant(&mut b, 1, 5), Err(MvccError::LeaseExists));
        assert_eq!(b.leases().unwrap(), vec![(1, 5)]);
    }

    #[test]
    fn revoking_a_lease_without_keys_adds_no_revision() {
        let mut b = MemoryBackend::default();
        apply_lease_grant(&mut b, 1, 5).unwrap();
        assert_eq!(apply_lease_revoke(&mut b, 1).unwrap().response, 1);
    }
}
