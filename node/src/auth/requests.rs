//! Which key permissions each KV request needs, as etcd checks them: a
//! range READ on its range; a put WRITE on its key (and READ with
//! `prev_kv`); a delete WRITE on its range (and READ with `prev_kv`); a txn
//! READ on every compare's range and whatever each operation of both
//! branches needs, nested txns included.

use super::{Access, AuthError, AuthStore, Caller};
use crate::proto::etcdserverpb::request_op::Request;
use crate::proto::etcdserverpb::{DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest};

impl AuthStore {
    pub fn check_range(&self, caller: &Caller, req: &RangeRequest) -> Result<(), AuthError> {
        self.check_key(caller, &req.key, &req.range_end, Access::Read)
    }

    pub fn check_put(&self, caller: &Caller, req: &PutRequest) -> Result<(), AuthError> {
        self.check_key(caller, &req.key, &[], Access::Write)?;
        if req.prev_kv {
            self.check_key(caller, &req.key, &[], Access::Read)?;
        }
        Ok(())
    }

    pub fn check_delete_range(
        &self,
        caller: &Caller,
        req: &DeleteRangeRequest,
    ) -> Result<(), AuthError> {
        self.check_key(caller, &req.key, &req.range_end, Access::Write)?;
        if req.prev_kv {
            self.check_key(caller, &req.key, &req.range_end, Access::Read)?;
        }
        Ok(())
    }

    pub fn check_txn(&self, caller: &Caller, req: &TxnRequest) -> Result<(), AuthError> {
        for compare in &req.compare {
            self.check_key(caller, &compare.key, &compare.range_end, Access::Read)?;
        }
        for op in req.success.iter().chain(&req.failure) {
            match &op.request {
                Some(Request::RequestRange(r)) => self.check_range(caller, r)?,
                Some(Request::RequestPut(r)) => self.check_put(caller, r)?,
                Some(Request::RequestDeleteRange(r)) => self.check_delete_range(caller, r)?,
                Some(Request::RequestTxn(r)) => self.check_txn(caller, r)?,
                None => {}
            }
        }
        Ok(())
    }

    /// Revoking a lease deletes its keys: WRITE on each of them.
    pub fn check_lease_revoke(&self, caller: &Caller, keys: &[Vec<u8>]) -> Result<(), AuthError> {
        keys.iter()
            .try_for_each(|key| self.check_key(caller, key, &[], Access::Write))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{AuthOp, KeyPermission};
    use crate::proto::etcdserverpb::{Compare, RequestOp};

    /// `u` may read `/r` and write `/w` only.
    fn store() -> (AuthStore, Caller) {
        let mut store = AuthStore::default();
        let perm = |access, key: &str| AuthOp::RoleGrantPermission {
            name: "role".into(),
            perm: KeyPermission {
                access,
                key: key.into(),
                range_end: vec![],
            },
        };
        let ops = [
            AuthOp::UserAdd {
                name: "root".into(),
                password_hash: Some("h".into()),
            },
            AuthOp::UserGrantRole {
                user: "root".into(),
                role: "root".into(),
            },
            AuthOp::UserAdd {
                name: "u".into(),
                password_hash: Some("h".into()),
            },
            AuthOp::RoleAdd {
                name: "role".into(),
            },
            perm(Access::Read, "/r"),
            perm(Access::Write, "/w"),
            AuthOp::UserGrantRole {
                user: "u".into(),
                role: "role".into(),
            },
            AuthOp::Enable,
        ];
        for op in &ops {
            store.apply(op, 1).unwrap();
        }
        let caller = Caller {
            user: Some("u".into()),
            revision: store.revision,
        };
        (store, caller)
    }

    fn put(key: &str, prev_kv: bool) -> PutRequest {
        PutRequest {
            key: key.into(),
            prev_kv,
            ..Default::default()
        }
    }

    #[test]
    fn prev_kv_also_needs_read() {
        let (store, u) = store();
        assert_eq!(store.check_put(&u, &put("/w", false)), Ok(()));
        assert_eq!(
            store.check_put(&u, &put("/w", true)),
            Err(AuthError::PermissionDenied)
        );
        let delete = DeleteRangeRequest {
            key: "/w".into(),
            prev_kv: true,
            ..Default::default()
        };
        assert_eq!(
            store.check_delete_range(&u, &delete),
            Err(AuthError::PermissionDenied)
        );
    }

    #[test]
    fn txns_need_read_on_compares_and_every_branchs_permissions() {
        let (store, u) = store();
        let op = |request| RequestOp {
            request: Some(request),
        };
        let compare = |key: &str| Compare {
            key: key.into(),
            ..Default::default()
        };
        let allowed = TxnRequest {
            compare: vec![compare("/r")],
            success: vec![op(Request::RequestPut(put("/w", false)))],
            failure: vec![op(Request::RequestRange(RangeRequest {
                key: "/r".into(),
                ..Default::default()
            }))],
        };
        assert_eq!(store.check_txn(&u, &allowed), Ok(()));
        let mut bad_compare = allowed.clone();
        bad_compare.compare = vec![compare("/w")];
        assert_eq!(
            store.check_txn(&u, &bad_compare),
            Err(AuthError::PermissionDenied)
        );
        let nested = TxnRequest {
            failure: vec![op(Request::RequestTxn(TxnRequest {
                success: vec![op(Request::RequestPut(put("/r", false)))],
                ..Default::default()
            }))],
            ..Default::default()
        };
        assert_eq!(
            store.check_txn(&u, &nested),
            Err(AuthError::PermissionDenied)
        );
    }

    #[test]
    fn revoking_a_lease_needs_write_on_its_keys() {
        let (store, u) = store();
        assert_eq!(store.check_lease_revoke(&u, &[b"/w".to_vec()]), Ok(()));
        assert_eq!(
            store.check_lease_revoke(&u, &[b"/w".to_vec(), b"/r".to_vec()]),
            Err(AuthError::PermissionDenied)
        );
    }
}
