//! `endpoint health|status|hashkv [--cluster]`.

use std::time::Instant;

use cetera::proto::etcdserverpb::{HashKvRequest, RangeRequest, StatusRequest};
use clap::{Args, Subcommand};

use crate::cli::{Ctx, parse_go_bool, parse_go_int};
use crate::client::{self, Client};
use crate::error::{CtlError, CtlResult, EXIT_ERROR};
use crate::gofmt::duration_string;
use crate::printer::{EpHashKv, EpHealth, EpStatus, err};

#[derive(Args, Debug)]
#[command(arg_required_else_help = true)]
pub(crate) struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = parse_go_bool)]
    pub(crate) cluster: Option<bool>,
    #[command(subcommand)]
    pub(crate) command: EndpointCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value = "0", value_parser = parse_go_int)]
        rev: i64,
    },
}

pub(crate) async fn run(ctx: &Ctx, a: EndpointArgs) -> CtlResult<()> {
    let cluster = a.cluster.unwrap_or(false);
    match a.command {
        EndpointCommand::Health => health(ctx, cluster).await,
        EndpointCommand::Status => status(ctx, cluster).await,
        EndpointCommand::Hashkv { rev } => hashkv(ctx, cluster, rev).await,
    }
}

/// The endpoints to visit: `--endpoints`, or with `--cluster` every
/// member's client URLs.
pub(crate) async fn endpoints(c: &Client, cluster: bool) -> CtlResult<Vec<String>> {
    if cluster {
        c.cluster_endpoints().await
    } else {
        Ok(c.endpoints().to_vec())
    }
}

async fn health(ctx: &Ctx, cluster: bool) -> CtlResult<()> {
    let printer = ctx.printer()?;
    let c = ctx.client()?;
    let eps = endpoints(&c, cluster).await?;
    let mut tasks = Vec::new();
    for ep in eps {
        let one = c.for_endpoint(&ep);
        tasks.push(tokio::spawn(async move {
            let one = match one {
                Ok(one) => one,
                Err(e) => {
                    return EpHealth {
                        ep,
                        health: false,
                        took: String::new(),
                        error: e.message,
                    };
                }
            };
            let start = Instant::now();
            let req = RangeRequest {
                key: b"health".to_vec(),
                ..Default::default()
            };
            let result = one
                .unary(true, |ch| {
                    let r = one.request(req.clone());
                    async move { client::kv(ch).range(r).await }
                })
                .await;
            let took = duration_string(start.elapsed());
            match result {
                // Permission denied still went through consensus.
                Ok(_) => EpHealth {
                    ep,
                    health: true,
                    took,
                    error: String::new(),
                },
                Err(e) if e.message == "etcdserver: permission denied" => EpHealth {
                    ep,
                    health: true,
                    took,
                    error: String::new(),
                },
                Err(e) => EpHealth {
                    ep,
                    health: false,
                    took,
                    error: e.message,
                },
            }
        }));
    }
    let mut list = Vec::new();
    for t in tasks {
        if let Ok(h) = t.await {
            list.push(h);
        }
    }
    let unhealthy = list.iter().any(|h| !h.error.is_empty());
    printer.endpoint_health(&list)?;
    if unhealthy {
        return Err(CtlError::error("unhealthy cluster"));
    }
    Ok(())
}

async fn status(ctx: &Ctx, cluster: bool) -> CtlResult<()> {
    let c = ctx.client()?;
    let printer = ctx.printer()?;
    let mut list = Vec::new();
    let mut failed = false;
    for ep in endpoints(&c, cluster).await? {
        let one = c.for_endpoint(&ep)?;
        let result = one
            .unary(true, |ch| {
                let r = one.request(StatusRequest {});
                async move { client::maintenance(ch).status(r).await }
            })
            .await;
        match result {
            Ok(resp) => list.push(EpStatus { ep, resp }),
            Err(e) => {
                failed = true;
                err(format!(
                    "Failed to get the status of endpoint {ep} ({})\n",
                    e.message
                ));
            }
        }
    }
    printer.endpoint_status(&list)?;
    if failed {
        return Err(CtlError::exit(EXIT_ERROR));
    }
    Ok(())
}

async fn hashkv(ctx: &Ctx, cluster: bool, rev: i64) -> CtlResult<()> {
    let c = ctx.client()?;
    let printer = ctx.printer()?;
    let mut list = Vec::new();
    let mut last_error = None;
    for ep in endpoints(&c, cluster).await? {
        let one = c.for_endpoint(&ep)?;
        let result = one
            .unary(true, |ch| {
                let r = one.request(HashKvRequest { revision: rev });
                async move { client::maintenance(ch).hash_kv(r).await }
            })
            .await;
        match result {
            Ok(resp) => list.push(EpHashKv { ep, resp }),
            Err(e) => {
                err(format!(
                    "Failed to get the hash of endpoint {ep} ({})\n",
                    e.message
                ));
                last_error = Some(e);
            }
        }
    }
    printer.endpoint_hashkv(&list)?;
    match last_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
