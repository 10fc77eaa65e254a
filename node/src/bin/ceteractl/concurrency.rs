//! `lock` and `elect`, with the client-side recipes of etcd's
//! `clientv3/concurrency` (a session lease kept alive in the background, a
//! key `<name>/<lease hex>` per contender, the oldest key wins, contenders
//! wait for the deletion of older keys), so they interoperate with etcdctl
//! and every Go client using the same names.
//!
//! As with etcdctl, a held lock or a won election outlives restarted
//! members and refused tokens: the session's keep-alive and the waits'
//! watches are resumed (`crate::lease`, `crate::resume`). The lock is
//! given up only when the session's lease lapsed, and then said so
//! (`session expired`, exit 1).

use std::sync::Arc;

use cetera::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RangeResponse, RequestOp, TxnRequest,
    TxnResponse, WatchCreateRequest, compare, range_request, request_op, response_op,
};
use cetera::proto::mvccpb::{KeyValue, event::EventType};
use clap::Args;
use tokio::sync::watch;

use crate::cli::{Ctx, parse_go_bool};
use crate::client::{self, Client};
use crate::error::{CtlError, CtlResult};
use crate::kv::prefix_end;
use crate::lease;
use crate::resume::ResumedWatch;

#[derive(Args, Debug)]
pub(crate) struct LockArgs {
    /// timeout for session
    #[arg(long, default_value = "10")]
    pub(crate) ttl: i64,
    /// <lockname> [exec-command arg1 arg2 ...]
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) args: Vec<String>,
}

#[derive(Args, Debug)]
pub(crate) struct ElectArgs {
    /// observation mode
    #[arg(short = 'l', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) listen: bool,
    /// <election-name> [proposal]
    pub(crate) args: Vec<String>,
}

/// A lease kept alive in the background (concurrency.Session).
struct Session {
    lease: i64,
    /// Becomes true when the lease could no longer be kept alive.
    done: watch::Receiver<bool>,
}

async fn session(c: &Arc<Client>, ttl: i64) -> CtlResult<Session> {
    let resp = lease::grant(c, ttl).await?;
    let id = resp.id;
    let (tx, rx) = watch::channel(false);
    let c = c.clone();
    tokio::spawn(async move {
        let _ = lease::keep_alive_forever(&c, id, |_| Ok(())).await;
        let _ = tx.send(true);
    });
    Ok(Session {
        lease: id,
        done: rx,
    })
}

async fn txn(c: &Client, req: TxnRequest) -> CtlResult<TxnResponse> {
    c.unary_until(far_future(), false, |ch| {
        let r = c.request(req.clone());
        async move { client::kv(ch).txn(r).await }
    })
    .await
}

async fn range(c: &Client, req: RangeRequest) -> CtlResult<RangeResponse> {
    c.unary_until(far_future(), true, |ch| {
        let r = c.request(req.clone());
        async move { client::kv(ch).range(r).await }
    })
    .await
}

async fn delete(c: &Client, key: &[u8]) -> CtlResult<()> {
    let req = DeleteRangeRequest {
        key: key.to_vec(),
        ..Default::default()
    };
    c.unary(false, |ch| {
        let r = c.request(req.clone());
        async move { client::kv(ch).delete_range(r).await }
    })
    .await?;
    Ok(())
}

/// Requests without `--command-timeout` (etcdctl uses an open context).
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + std::time::Duration::from_secs(365 * 24 * 3600)
}

fn get_op(req: RangeRequest) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(req)),
    }
}

/// `WithFirstCreate` / `WithLastCreate`: the oldest / newest key under a prefix.
fn by_create(prefix: &[u8], order: range_request::SortOrder, max_create: i64) -> RangeRequest {
    RangeRequest {
        key: prefix.to_vec(),
        range_end: prefix_end(prefix),
        limit: 1,
        sort_order: order as i32,
        sort_target: range_request::SortTarget::Create as i32,
        max_create_revision: max_create,
        ..Default::default()
    }
}

fn range_kvs(resp: &TxnResponse, i: usize) -> Vec<KeyValue> {
    match resp.responses.get(i).and_then(|r| r.response.as_ref()) {
        Some(response_op::Response::ResponseRange(r)) => r.kvs.clone(),
        _ => Vec::new(),
    }
}

/// A watch on one key or prefix from a revision, resumed when its stream
/// breaks or its token is refused (see `crate::resume`).
async fn watch_from<'c>(
    c: &'c Client,
    key: &[u8],
    range_end: Vec<u8>,
    rev: i64,
) -> CtlResult<ResumedWatch<'c>> {
    let create = WatchCreateRequest {
        key: key.to_vec(),
        range_end,
        start_revision: rev,
        ..Default::default()
    };
    ResumedWatch::open(c, create, false).await
}

/// Waits until `key` is deleted (concurrency's `waitDelete`).
async fn wait_delete(c: &Client, key: &[u8], rev: i64) -> CtlResult<()> {
    let mut watch = watch_from(c, key, Vec::new(), rev).await?;
    while let Some(resp) = watch.next().await.map_err(CtlError::from)? {
        if resp
            .events
            .iter()
            .any(|e| e.r#type == EventType::Delete as i32)
        {
            return Ok(());
        }
        if resp.canceled {
            return Err(CtlError::error("watch canceled"));
        }
    }
    Err(CtlError::error("lost watcher waiting for delete"))
}

/// Waits until no key under `prefix` created at or before `max_create`
/// remains (concurrency's `waitDeletes`).
async fn wait_deletes(c: &Client, prefix: &[u8], max_create: i64) -> CtlResult<()> {
    loop {
        let resp = range(
            c,
            by_create(prefix, range_request::SortOrder::Descend, max_create),
        )
        .await?;
        let Some(last) = resp.kvs.first() else {
            return Ok(());
        };
        let rev = resp.header.as_ref().map_or(0, |h| h.revision);
        wait_delete(c, &last.key, rev).await?;
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn interrupted() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
}

async fn session_done(mut done: watch::Receiver<bool>) {
    while !*done.borrow() {
        if done.changed().await.is_err() {
            return;
        }
    }
}

/// concurrency.Mutex.Lock: returns the lock key and the revision the lock
/// was acquired at.
async fn acquire(c: &Client, s: &Session, name: &str) -> CtlResult<(Vec<u8>, i64)> {
    let prefix = format!("{name}/").into_bytes();
    let my_key = format!("{name}/{:x}", s.lease).into_bytes();
    let req = TxnRequest {
        compare: vec![Compare {
            result: compare::CompareResult::Equal as i32,
            target: compare::CompareTarget::Create as i32,
            key: my_key.clone(),
            range_end: Vec::new(),
            target_union: Some(compare::TargetUnion::CreateRevision(0)),
        }],
        success: vec![
            RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: my_key.clone(),
                    lease: s.lease,
                    ..Default::default()
                })),
            },
            get_op(by_create(&prefix, range_request::SortOrder::Ascend, 0)),
        ],
        failure: vec![
            get_op(RangeRequest {
                key: my_key.clone(),
                ..Default::default()
            }),
            get_op(by_create(&prefix, range_request::SortOrder::Ascend, 0)),
        ],
    };
    let resp = txn(c, req).await?;
    let mut my_rev = resp.header.as_ref().map_or(0, |h| h.revision);
    if !resp.succeeded {
        my_rev = range_kvs(&resp, 0)
            .first()
            .map_or(my_rev, |kv| kv.create_revision);
    }
    let owner = range_kvs(&resp, 1);
    if owner.is_empty() || owner[0].create_revision == my_rev {
        return Ok((my_key, resp.header.as_ref().map_or(0, |h| h.revision)));
    }
    if let Err(e) = wait_deletes(c, &prefix, my_rev - 1).await {
        let _ = delete(c, &my_key).await;
        return Err(e);
    }
    let rev = range(
        c,
        RangeRequest {
            key: my_key.clone(),
            ..Default::default()
        },
    )
    .await?
    .header
    .map_or(0, |h| h.revision);
    Ok((my_key, rev))
}

pub(crate) async fn lock(ctx: &Ctx, a: LockArgs) -> CtlResult<()> {
    if a.args.is_empty() {
        return Err(CtlError::bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    }
    let c = Arc::new(ctx.client()?);
    let printer = ctx.printer()?;
    let s = session(&c, a.ttl).await?;
    let name = a.args[0].clone();
    let (key, rev) = tokio::select! {
        r = acquire(&c, &s, &name) => r?,
        _ = interrupted() => return Ok(()),
    };
    if a.args.len() > 1 {
        let status = tokio::process::Command::new(&a.args[1])
            .args(&a.args[2..])
            .env("ETCD_LOCK_KEY", String::from_utf8_lossy(&key).to_string())
            .env("ETCD_LOCK_REV", rev.to_string())
            .status()
            .await;
        let unlocked = delete(&c, &key).await;
        return match status {
            Ok(st) if st.success() => unlocked,
            Ok(st) => Err(CtlError::error(match st.code() {
                Some(code) => format!("exit status {code}"),
                None => st.to_string(),
            })),
            Err(e) => Err(CtlError::error(format!("exec: \"{}\": {e}", a.args[1]))),
        };
    }
    let held = range(
        &c,
        RangeRequest {
            key: key.clone(),
            ..Default::default()
        },
    )
    .await?;
    if held.kvs.is_empty() {
        return Err(CtlError::error("lock lost on init"));
    }
    printer.get(&held)?;
    tokio::select! {
        _ = interrupted() => delete(&c, &key).await,
        _ = session_done(s.done.clone()) => Err(CtlError::error("session expired")),
    }
}

pub(crate) async fn elect(ctx: &Ctx, a: ElectArgs) -> CtlResult<()> {
    if a.args.len() != 1 && a.args.len() != 2 {
        return Err(CtlError::bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    let c = Arc::new(ctx.client()?);
    if a.args.len() == 1 {
        if !a.listen {
            return Err(CtlError::bad_args("no proposal argument but -l not set"));
        }
        return observe(ctx, &c, &a.args[0]).await;
    }
    if a.listen {
        return Err(CtlError::bad_args("proposal given but -l is set"));
    }
    campaign(ctx, &c, &a.args[0], &a.args[1]).await
}

async fn campaign(ctx: &Ctx, c: &Arc<Client>, name: &str, proposal: &str) -> CtlResult<()> {
    let printer = ctx.printer()?;
    let s = session(c, 60).await?;
    let prefix = format!("{name}/").into_bytes();
    let key = format!("{name}/{:x}", s.lease).into_bytes();
    let won = async {
        let req = TxnRequest {
            compare: vec![Compare {
                result: compare::CompareResult::Equal as i32,
                target: compare::CompareTarget::Create as i32,
                key: key.clone(),
                range_end: Vec::new(),
                target_union: Some(compare::TargetUnion::CreateRevision(0)),
            }],
            success: vec![RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: key.clone(),
                    value: proposal.as_bytes().to_vec(),
                    lease: s.lease,
                    ..Default::default()
                })),
            }],
            failure: vec![get_op(RangeRequest {
                key: key.clone(),
                ..Default::default()
            })],
        };
        let resp = txn(c, req).await?;
        let mut leader_rev = resp.header.as_ref().map_or(0, |h| h.revision);
        if !resp.succeeded
            && let Some(kv) = range_kvs(&resp, 0).first()
        {
            leader_rev = kv.create_revision;
        }
        if let Err(e) = wait_deletes(c, &prefix, leader_rev - 1).await {
            let _ = delete(c, &key).await;
            return Err(e);
        }
        Ok::<(), CtlError>(())
    };
    tokio::select! {
        r = won => r?,
        _ = interrupted() => return Ok(()),
    }
    let resp = range(
        c,
        RangeRequest {
            key: key.clone(),
            ..Default::default()
        },
    )
    .await?;
    printer.get(&resp)?;
    tokio::select! {
        _ = interrupted() => delete(c, &key).await,
        _ = session_done(s.done.clone()) => Err(CtlError::error("elect: session expired")),
    }
}

/// Prints the leader each time it changes (concurrency.Election.Observe).
async fn observe(ctx: &Ctx, c: &Arc<Client>, name: &str) -> CtlResult<()> {
    let printer = ctx.printer()?;
    let _s = session(c, 60).await?;
    let prefix = format!("{name}/").into_bytes();
    let run = async {
        loop {
            let resp = range(c, by_create(&prefix, range_request::SortOrder::Ascend, 0)).await?;
            let (mut header, kv) = match resp.kvs.first() {
                Some(kv) => (resp.header.unwrap_or_default(), kv.clone()),
                None => {
                    let rev = resp.header.as_ref().map_or(0, |h| h.revision);
                    let mut watch = watch_from(c, &prefix, prefix_end(&prefix), rev).await?;
                    let mut found = None;
                    while found.is_none() {
                        let Some(wr) = watch.next().await.map_err(CtlError::from)? else {
                            return Err(CtlError::error("elect: observer lost"));
                        };
                        if let Some(ev) =
                            wr.events.iter().find(|e| e.r#type == EventType::Put as i32)
                        {
                            let kv = ev.kv.clone().unwrap_or_default();
                            let mut h = wr.header.unwrap_or_default();
                            h.revision = kv.mod_revision;
                            found = Some((h, kv));
                        }
                    }
                    found.unwrap_or_default()
                }
            };
            printer.get(&RangeResponse {
                header: Some(header),
                kvs: vec![kv.clone()],
                ..Default::default()
            })?;
            let mut watch = watch_from(c, &kv.key, Vec::new(), header.revision + 1).await?;
            'leader: while let Some(wr) = watch.next().await.map_err(CtlError::from)? {
                for ev in &wr.events {
                    if ev.r#type == EventType::Delete as i32 {
                        break 'leader;
                    }
                    header = wr.header.unwrap_or_default();
                    printer.get(&RangeResponse {
                        header: Some(header),
                        kvs: vec![ev.kv.clone().unwrap_or_default()],
                        ..Default::default()
                    })?;
                }
            }
        }
    };
    tokio::select! {
        r = run => r,
        _ = interrupted() => Ok(()),
    }
}
