//! `v3lockpb.Lock`: clientv3/concurrency's `Mutex`, run by the server.

use std::sync::Arc;

use super::{
    Cleanup, ConcurrencyError, Result, contender_key, contender_prefix, create_revision_is,
    delete_txn, first_created, get, put_op, range_kvs, range_op, revision, session_lease,
    wait_deletes,
};
use crate::auth::Caller;
use crate::proto::etcdserverpb::{DeleteRangeRequest, TxnRequest};
use crate::proto::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::server::Node;

/// `Lock`: waits until the caller holds the lock `name` and returns its key,
/// `<name>/<lease hex>`, which exists as long as the lease does.
///
/// A session that already has a key there takes its old place in line. If
/// the caller goes away while waiting, its key is deleted. If its key
/// vanished while it waited (the lease expired or was revoked), the answer
/// is `session expired` rather than a lock nobody holds (etcd's fix for
/// the race Jepsen found; etcd 3.4 still answers success there).
pub async fn lock(node: &Arc<Node>, caller: &Caller, req: LockRequest) -> Result<LockResponse> {
    let lease = session_lease(node, req.lease).await?;
    let prefix = contender_prefix(&req.name);
    let key = contender_key(&prefix, lease);
    // Join the line unless already in it; either way learn who is first.
    let resp = node
        .txn(
            TxnRequest {
                compare: vec![create_revision_is(&key, 0)],
                success: vec![put_op(&key, b"", lease), range_op(first_created(&prefix))],
                failure: vec![range_op(get(&key)), range_op(first_created(&prefix))],
            },
            caller,
        )
        .await?;
    let my_revision = if resp.succeeded {
        revision(&resp.header)
    } else {
        range_kvs(&resp, 0)
            .first()
            .map_or(0, |kv| kv.create_revision)
    };
    let owner = range_kvs(&resp, 1).first();
    if owner.is_none_or(|kv| kv.create_revision == my_revision) {
        return Ok(LockResponse {
            header: resp.header,
            key,
        });
    }

    // Wait for everyone ahead; give the place up if that fails or the
    // caller leaves.
    let unlock = Cleanup::arm(node, caller, delete_txn(&key));
    if let Err(e) = wait_deletes(node, caller, &prefix, my_revision - 1).await {
        let _ = unlock.run().await;
        return Err(e);
    }
    // The key must still be there: a lease that ran out while waiting
    // leaves nothing to hold.
    let mine = match node.range(get(&key), caller).await {
        Ok(mine) => mine,
        Err(e) => {
            let _ = unlock.run().await;
            return Err(e.into());
        }
    };
    unlock.disarm();
    if mine.kvs.is_empty() {
        return Err(ConcurrencyError::SessionExpired);
    }
    Ok(LockResponse {
        header: mine.header,
        key,
    })
}

/// `Unlock`: deletes the lock's key (whoever holds it).
pub async fn unlock(node: &Node, caller: &Caller, req: UnlockRequest) -> Result<UnlockResponse> {
    let resp = node
        .delete_range(
            DeleteRangeRequest {
                key: req.key,
                ..Default::default()
            },
            caller,
        )
        .await?;
    Ok(UnlockResponse {
        header: resp.header,
    })
}
