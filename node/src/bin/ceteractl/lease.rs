//! `lease grant|revoke|timetolive|list|keep-alive`.
//!
//! `keep-alive` (and the sessions of `lock` and `elect`) keep a lease
//! alive across restarted members and refused tokens, as etcdctl does.

use std::time::Duration;

use cetera::client_auth::must_reauthenticate;
use cetera::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest,
};
use clap::Subcommand;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::StreamExt as _;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;

use crate::cli::{Ctx, parse_go_bool};
use crate::client::{self, Client};
use crate::error::{CtlError, CtlResult, EXIT_BAD_CONNECTION, status_message};
use crate::gofmt;
use crate::printer::{Format, out};

/// How long a broken keep-alive stream waits before it is opened again
/// (clientv3's `retryConnWait`).
const REOPEN_PAUSE: Duration = Duration::from_millis(500);

#[derive(Subcommand, Debug)]
pub(crate) enum LeaseCommand {
    /// Creates leases
    Grant {
        /// <ttl>
        args: Vec<String>,
    },
    /// Revokes leases
    Revoke {
        /// <leaseID>
        args: Vec<String>,
    },
    /// Get lease information
    Timetolive {
        /// <leaseID>
        args: Vec<String>,
        /// Get keys attached to this lease
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        keys: bool,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    #[command(name = "keep-alive")]
    KeepAlive {
        /// <leaseID>
        args: Vec<String>,
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        once: bool,
    },
}

/// A lease ID argument in hex (etcdctl's `leaseFromArgs`).
pub(crate) fn lease_id(arg: &str) -> CtlResult<i64> {
    gofmt::parse_hex_i64(arg)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

pub(crate) async fn run(ctx: &Ctx, cmd: LeaseCommand) -> CtlResult<()> {
    match cmd {
        LeaseCommand::Grant { args } => {
            if args.len() != 1 {
                return Err(CtlError::bad_args("lease grant command needs TTL argument"));
            }
            let ttl = gofmt::parse_int10(&args[0])
                .map_err(|e| CtlError::bad_args(format!("bad TTL ({e})")))?;
            let c = ctx.client()?;
            let resp = grant(&c, ttl)
                .await
                .map_err(|e| e.wrap(|m| format!("failed to grant lease ({m})")))?;
            ctx.printer()?.grant(&resp)
        }
        LeaseCommand::Revoke { args } => {
            if args.len() != 1 {
                return Err(CtlError::bad_args("lease revoke command needs 1 argument"));
            }
            let id = lease_id(&args[0])?;
            let c = ctx.client()?;
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(LeaseRevokeRequest { id });
                    async move { client::lease(ch).lease_revoke(r).await }
                })
                .await
                .map_err(|e| e.wrap(|m| format!("failed to revoke lease ({m})")))?;
            ctx.printer()?.revoke(id, &resp)
        }
        LeaseCommand::Timetolive { args, keys } => {
            if args.len() != 1 {
                return Err(CtlError::bad_args(
                    "lease timetolive command needs lease ID as argument",
                ));
            }
            let id = lease_id(&args[0])?;
            let c = ctx.client()?;
            let resp = c
                .unary(true, |ch| {
                    let r = c.request(LeaseTimeToLiveRequest { id, keys });
                    async move { client::lease(ch).lease_time_to_live(r).await }
                })
                .await
                .map_err(|e| e.with_code(EXIT_BAD_CONNECTION))?;
            ctx.printer()?.time_to_live(&resp, keys)
        }
        LeaseCommand::List => {
            let c = ctx.client()?;
            let resp = c
                .unary(true, |ch| {
                    let r = c.request(LeaseLeasesRequest {});
                    async move { client::lease(ch).lease_leases(r).await }
                })
                .await
                .map_err(|e| e.with_code(EXIT_BAD_CONNECTION))?;
            ctx.printer()?.leases(&resp)
        }
        LeaseCommand::KeepAlive { args, once } => {
            if args.len() != 1 {
                return Err(CtlError::bad_args(
                    "lease keep-alive command needs lease ID as argument",
                ));
            }
            let id = lease_id(&args[0])?;
            let c = ctx.client()?;
            let printer = ctx.printer()?;
            if once {
                let resp = keep_alive_once(&c, id)
                    .await
                    .map_err(|e| e.with_code(EXIT_BAD_CONNECTION))?;
                return printer.keep_alive(&resp);
            }
            keep_alive_forever(&c, id, |resp| printer.keep_alive(resp))
                .await
                .map_err(|e| e.with_code(EXIT_BAD_CONNECTION))?;
            if printer.format == Format::Simple {
                out(format!("lease {id:016x} expired or revoked.\n"));
            }
            Ok(())
        }
    }
}

pub(crate) async fn grant(
    c: &Client,
    ttl: i64,
) -> CtlResult<cetera::proto::etcdserverpb::LeaseGrantResponse> {
    c.unary(false, |ch| {
        let r = c.request(LeaseGrantRequest { ttl, id: 0 });
        async move { client::lease(ch).lease_grant(r).await }
    })
    .await
}

/// One keep-alive round trip; a lease that is gone is an error, as in
/// clientv3's `KeepAliveOnce`.
pub(crate) async fn keep_alive_once(
    c: &Client,
    id: i64,
) -> CtlResult<cetera::proto::etcdserverpb::LeaseKeepAliveResponse> {
    let deadline = c.command_deadline();
    let ch = c.channel(deadline).await?;
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let call = async {
        let mut stream = client::lease(ch)
            .lease_keep_alive(c.request(ReceiverStream::new(rx)))
            .await?
            .into_inner();
        stream.message().await
    };
    let resp = tokio::time::timeout_at(deadline, call)
        .await
        .map_err(|_| CtlError::error(crate::error::DEADLINE_EXCEEDED))?
        .map_err(|s| CtlError::error(status_message(&s)))?;
    drop(tx);
    match resp {
        Some(r) if r.ttl > 0 => Ok(r),
        _ => Err(CtlError::error("etcdserver: requested lease not found")),
    }
}

/// Keeps a lease alive until it expires or is revoked, calling `each` on
/// every answer (clientv3's `KeepAlive`: a request every TTL/3).
///
/// As clientv3 does, a stream that breaks after the first answer (a member
/// restarted or went away) is opened again, on the next endpoint, every
/// half second, and a token the server refuses is renewed first; the
/// lease is given up (`Ok`) only once it has lapsed: its last TTL passed
/// without an answer. Before the first answer, failures are the caller's.
pub(crate) async fn keep_alive_forever(
    c: &Client,
    id: i64,
    mut each: impl FnMut(&cetera::proto::etcdserverpb::LeaseKeepAliveResponse) -> CtlResult<()>,
) -> CtlResult<()> {
    // When the lease lapses unless renewed: the last answer plus its TTL.
    let mut lapses: Option<Instant> = None;
    loop {
        let opened = open_keep_alive(c, id).await;
        let (ch, tx, mut stream) = match (opened, lapses) {
            (Ok(opened), _) => opened,
            (Err(e), None) => return Err(e),
            (Err(_), Some(_)) => {
                if pause_or_lapse(c, lapses).await {
                    return Ok(());
                }
                continue;
            }
        };
        let failure = loop {
            let resp = match stream.next().await {
                Some(Ok(r)) => r,
                Some(Err(s)) => break Some(s),
                None => break None,
            };
            if resp.ttl <= 0 {
                return Ok(());
            }
            lapses = Some(Instant::now() + Duration::from_secs(resp.ttl as u64));
            each(&resp)?;
            let pause = Duration::from_secs((resp.ttl as u64 / 3).max(1));
            tokio::time::sleep(pause).await;
            // A stream the server dropped takes its request side along:
            // opened again like any broken stream.
            if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                break None;
            }
        };
        if lapses.is_none() {
            return match failure {
                Some(status) => Err(CtlError::from(status)),
                None => Ok(()),
            };
        }
        if let Some(status) = failure
            && must_reauthenticate(&status)
            && c.authenticates()
        {
            // A failure (a member still starting) leaves the token to be
            // renewed when the stream is opened again.
            let _ = c.renew_token(ch).await;
        }
        if pause_or_lapse(c, lapses).await {
            return Ok(());
        }
    }
}

/// Opens a keep-alive stream and sends the first request.
async fn open_keep_alive(
    c: &Client,
    id: i64,
) -> CtlResult<(
    Channel,
    mpsc::Sender<LeaseKeepAliveRequest>,
    tonic::Streaming<cetera::proto::etcdserverpb::LeaseKeepAliveResponse>,
)> {
    let deadline = c.command_deadline();
    let ch = c.channel(deadline).await?;
    let (tx, rx) = mpsc::channel(4);
    let _ = tx.send(LeaseKeepAliveRequest { id }).await;
    let mut lease = client::lease(ch.clone());
    let call = lease.lease_keep_alive(c.request(ReceiverStream::new(rx)));
    let stream = tokio::time::timeout_at(deadline, call)
        .await
        .map_err(|_| CtlError::error(crate::error::DEADLINE_EXCEEDED))?
        .map_err(CtlError::from)?
        .into_inner();
    Ok((ch, tx, stream))
}

/// Waits before opening a broken keep-alive stream again (clientv3's half
/// second), on the next endpoint; true once the lease has lapsed.
async fn pause_or_lapse(c: &Client, lapses: Option<Instant>) -> bool {
    c.fail_over();
    tokio::time::sleep(REOPEN_PAUSE).await;
    lapses.is_some_and(|at| Instant::now() >= at)
}
