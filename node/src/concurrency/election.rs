//! `v3electionpb.Election`: clientv3/concurrency's `Election`, run by the
//! server.
//!
//! The leader of election `name` is the key under `<name>/` with the lowest
//! create revision; its value is what the leader proclaims. A
//! [`LeaderKey`] (name, key, create revision, lease) is the leader's proof
//! of office: Proclaim and Resign only act while that key still has that
//! create revision.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{
    Cleanup, ConcurrencyError, KeyWatch, Result, contender_key, contender_prefix,
    create_revision_is, delete_if_created_at, first_created, get, put_op, range_kvs, range_op,
    revision, session_lease, wait_deletes,
};
use crate::auth::Caller;
use crate::mvcc::prefix_end;
use crate::proto::etcdserverpb::{ResponseHeader, TxnRequest};
use crate::proto::mvccpb::KeyValue;
use crate::proto::mvccpb::event::EventType;
use crate::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ProclaimResponse, ResignRequest, ResignResponse,
};
use crate::server::Node;

/// `Campaign`: enters the election with `value` and returns once the
/// caller leads. A session already campaigning keeps its place (and its
/// value is replaced by the new one). If the caller goes away while
/// waiting, it resigns.
pub async fn campaign(
    node: &Arc<Node>,
    caller: &Caller,
    req: CampaignRequest,
) -> Result<CampaignResponse> {
    let lease = session_lease(node, req.lease).await?;
    let prefix = contender_prefix(&req.name);
    let key = contender_key(&prefix, lease);
    let resp = node
        .txn(
            TxnRequest {
                compare: vec![create_revision_is(&key, 0)],
                success: vec![put_op(&key, &req.value, lease)],
                failure: vec![range_op(get(&key))],
            },
            caller,
        )
        .await?;
    let mut leader_revision = revision(&resp.header);
    if !resp.succeeded {
        let existing = range_kvs(&resp, 0).first();
        leader_revision = existing.map_or(0, |kv| kv.create_revision);
        let stale = existing.is_some_and(|kv| kv.value != req.value);
        if stale
            && let Err(e) =
                proclaim_as(node, caller, &key, leader_revision, lease, &req.value).await
        {
            let _ = node
                .txn(delete_if_created_at(&key, leader_revision), caller)
                .await;
            return Err(e);
        }
    }

    let resign = Cleanup::arm(node, caller, delete_if_created_at(&key, leader_revision));
    let waited = wait_deletes(node, caller, &prefix, leader_revision - 1).await;
    // Only a caller that went away resigns; on other errors the key stays.
    resign.disarm();
    waited?;
    Ok(CampaignResponse {
        header: resp.header,
        leader: Some(LeaderKey {
            name: req.name,
            key,
            rev: leader_revision,
            lease,
        }),
    })
}

/// Puts `value` on the leader key if it still has `create_revision`.
async fn proclaim_as(
    node: &Node,
    caller: &Caller,
    key: &[u8],
    create_revision: i64,
    lease: i64,
    value: &[u8],
) -> Result<Option<ResponseHeader>> {
    let resp = node
        .txn(
            TxnRequest {
                compare: vec![create_revision_is(key, create_revision)],
                success: vec![put_op(key, value, lease)],
                failure: Vec::new(),
            },
            caller,
        )
        .await?;
    if !resp.succeeded {
        return Err(ConcurrencyError::NotLeader);
    }
    Ok(resp.header)
}

/// `Proclaim`: the leader announces a new value without a new election.
///
/// As in etcd, the value is put with the leader key's lease, and a leader
/// key with lease 0 gets a new session lease first.
pub async fn proclaim(
    node: &Node,
    caller: &Caller,
    req: ProclaimRequest,
) -> Result<ProclaimResponse> {
    let leader = req.leader.ok_or(ConcurrencyError::MissingLeaderKey)?;
    let lease = session_lease(node, leader.lease).await?;
    let header = proclaim_as(node, caller, &leader.key, leader.rev, lease, &req.value).await?;
    Ok(ProclaimResponse { header })
}

/// `Resign`: deletes the leader key if it is still the one the caller was
/// given; answers success either way.
pub async fn resign(node: &Node, caller: &Caller, req: ResignRequest) -> Result<ResignResponse> {
    let leader = req.leader.ok_or(ConcurrencyError::MissingLeaderKey)?;
    // etcd opens a session here too, which grants a lease for lease 0.
    session_lease(node, leader.lease).await?;
    let resp = node
        .txn(delete_if_created_at(&leader.key, leader.rev), caller)
        .await?;
    Ok(ResignResponse {
        header: resp.header,
    })
}

/// `Leader`: the current leader's key and value, or `election: no leader`.
pub async fn leader(node: &Node, caller: &Caller, req: LeaderRequest) -> Result<LeaderResponse> {
    let prefix = contender_prefix(&req.name);
    let resp = node.range(first_created(&prefix), caller).await?;
    let Some(kv) = resp.kvs.into_iter().next() else {
        return Err(ConcurrencyError::NoLeader);
    };
    Ok(LeaderResponse {
        header: resp.header,
        kv: Some(kv),
    })
}

/// How many leader updates may wait for a slow observer.
const OBSERVE_BUFFER: usize = 16;

/// `Observe`: every leader and every value each leader proclaims, in
/// order, starting with the current leader (or the first one elected).
/// The updates stop when the receiver is dropped or a read or watch
/// fails (the stream then simply ends, as etcd's does).
pub fn observe(
    node: Arc<Node>,
    caller: Caller,
    req: LeaderRequest,
) -> mpsc::Receiver<LeaderResponse> {
    let (updates, receiver) = mpsc::channel(OBSERVE_BUFFER);
    tokio::spawn(async move {
        let prefix = contender_prefix(&req.name);
        tokio::select! {
            () = updates.closed() => {}
            ended = observe_leaders(&node, &caller, &prefix, &updates) => {
                if let Err(e) = ended {
                    tracing::debug!(error = %e, "election observer ended");
                }
            }
        }
    });
    receiver
}

/// clientv3's `Election.observe`: find the leader (or wait for the first
/// put under the prefix), report it and every put on its key until it is
/// deleted, then look again.
async fn observe_leaders(
    node: &Node,
    caller: &Caller,
    prefix: &[u8],
    updates: &mpsc::Sender<LeaderResponse>,
) -> Result<()> {
    let send = |revision: i64, kv: KeyValue| async move {
        let update = LeaderResponse {
            header: Some(node.header(revision)),
            kv: Some(kv),
        };
        updates
            .send(update)
            .await
            .map_err(|_| ConcurrencyError::LostWatcher)
    };
    loop {
        let resp = node.range(first_created(prefix), caller).await?;
        let (header, kv) = match resp.kvs.into_iter().next() {
            Some(kv) => (resp.header, kv),
            None => {
                let start = revision(&resp.header);
                let mut watch = KeyWatch::open(node, prefix, prefix_end(prefix), start).await?;
                loop {
                    let (_, events) = watch.next_events().await?;
                    let first_put = events
                        .into_iter()
                        .find(|e| e.r#type == EventType::Put as i32)
                        .and_then(|e| e.kv);
                    if let Some(kv) = first_put {
                        // A batch may hold several puts: report this one's.
                        let header = Some(node.header(kv.mod_revision));
                        break (header, kv);
                    }
                }
            }
        };
        let at = revision(&header);
        let key = kv.key.clone();
        send(at, kv).await?;

        let mut watch = KeyWatch::open(node, &key, Vec::new(), at + 1).await?;
        'leader: loop {
            let (revision, events) = watch.next_events().await?;
            for event in events {
                if event.r#type == EventType::Delete as i32 {
                    break 'leader;
                }
                if let Some(kv) = event.kv {
                    send(revision, kv).await?;
                }
            }
        }
    }
}
