//! `bench put|get|txn|watch|lease-keepalive`: the knobs of etcd's `benchmark` tool on the
//! shared load generator (`cetera::bench`), printing etcd's summary
//! (totals, a latency histogram, percentiles). It runs against any
//! etcd-API server at `--endpoints`, with the global client flags as
//! etcd's benchmark takes them: `--user`/`--password` (or `ETCDCTL_USER`,
//! `ETCDCTL_PASSWORD`; one Authenticate before measuring, the token on
//! every request) and TLS (`--cacert`, `--cert`, `--key`,
//! `--insecure-skip-tls-verify`, `https://` endpoints).
//!
//! This module only maps flags onto a `cetera::bench::Plan` and prints the
//! report; the load itself lives in the library, shared with `cetera-bench`.

use std::sync::Arc;
use std::time::Duration;

use cetera::bench::{BenchError, Dialer, KeySpace, Kind, Plan, workload};
use cetera::client_auth::AuthSession;
use clap::{Args, Subcommand, ValueEnum};

use crate::cli::Ctx;
use crate::error::{CtlError, CtlResult, EXIT_BAD_CONNECTION, EXIT_ERROR};
use crate::printer::out;
use cetera::client_tls::ClientTls;

/// A measured phase never runs longer than this, even against a server
/// that stalls (`--total` normally ends it much sooner).
const MAX_DURATION: Duration = Duration::from_secs(3600);

#[derive(Subcommand, Debug)]
pub(crate) enum BenchCommand {
    /// Benchmark put: one key per request
    Put(BenchArgs),
    /// Benchmark get: one key per request, on keys written before measuring
    Get(GetArgs),
    /// Benchmark txn: a compare-and-swap of one key per request
    Txn(BenchArgs),
    /// Benchmark watch: each client puts a key it watches and waits for the event
    Watch(BenchArgs),
    /// Benchmark lease keep-alive: each client keeps one lease alive on its stream
    LeaseKeepalive(BenchArgs),
}

/// The knobs every benchmark shares (etcd benchmark's names).
#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Total number of gRPC connections
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    conns: u32,
    /// Total number of gRPC clients (each with one request in flight)
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    clients: u32,
    /// Total number of measured requests
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    total: u64,
    /// Key size in bytes, after --prefix (zero-padded decimal indexes)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    key_size: u32,
    /// Value size in bytes
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=2_000_000))]
    val_size: u32,
    /// Number of distinct keys (watch needs at least one per client)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    key_space_size: u64,
    /// Walk the keyspace in order instead of picking keys at random
    #[arg(long)]
    sequential_keys: bool,
    /// Prefix of every key the benchmark touches
    #[arg(long, default_value = "")]
    prefix: String,
    /// Send every request to the leader (found with Maintenance.Status)
    #[arg(long)]
    target_leader: bool,
}

#[derive(Args, Debug)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    common: BenchArgs,
    /// Linearizable (l) or serializable (s) reads
    #[arg(long, value_enum, default_value = "l")]
    consistency: Consistency,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Consistency {
    /// Linearizable
    L,
    /// Serializable
    S,
}

pub(crate) async fn run(ctx: &Ctx, cmd: BenchCommand) -> CtlResult<()> {
    let (args, kind, populate) = match cmd {
        BenchCommand::Put(a) => (a, Kind::Put, false),
        BenchCommand::Txn(a) => (a, Kind::Txn, false),
        BenchCommand::Watch(a) => (a, Kind::Watch, false),
        BenchCommand::LeaseKeepalive(a) => (a, Kind::LeaseKeepAlive, false),
        BenchCommand::Get(g) => {
            let serializable = g.consistency == Consistency::S;
            (g.common, Kind::Range { serializable }, true)
        }
    };
    let config = ctx.config()?;
    let any_https = config.endpoints.iter().any(|e| e.starts_with("https://"));
    let tls = ClientTls::from_flags(&config.tls, any_https)?;
    let dialer = Dialer::new(tls, AuthSession::new(config.auth.clone()));
    let endpoints = if args.target_leader {
        vec![
            dialer
                .find_leader(&config.endpoints, config.command_timeout)
                .await
                .map_err(bench_error)?,
        ]
    } else {
        config.endpoints.clone()
    };
    let plan = Plan {
        kind,
        keys: KeySpace::new(
            &args.prefix,
            args.key_space_size,
            args.key_size as usize,
            args.val_size as usize,
        )
        .map_err(bench_error)?,
        populate,
        sequential: args.sequential_keys,
        clients: args.clients as usize,
        total: args.total,
        max_duration: MAX_DURATION,
        timeout: config.command_timeout,
    };
    let conns = dialer
        .open(&endpoints, args.conns)
        .await
        .map_err(bench_error)?;
    let (stats, elapsed) = workload::run(Arc::new(plan), &conns)
        .await
        .map_err(bench_error)?;
    let report = cetera::bench::Report {
        workload: String::new(),
        clients: args.clients,
        conns: args.conns,
        elapsed,
        stats,
    };
    out(report.summary());
    if report.stats.ok() == 0 {
        return Err(CtlError::error("no request succeeded"));
    }
    Ok(())
}

/// Connection and authentication failures exit like etcdctl's bad
/// connections (an authentication failure with etcdctl's message); the
/// rest are plain errors.
fn bench_error(e: BenchError) -> CtlError {
    match e {
        BenchError::Authenticate { source, .. } => {
            CtlError::from(source).with_code(EXIT_BAD_CONNECTION)
        }
        BenchError::Connect { .. }
        | BenchError::NoTls { .. }
        | BenchError::NoLeader(_)
        | BenchError::Setup { .. } => CtlError::new(EXIT_BAD_CONNECTION, e.to_string()),
        _ => CtlError::new(EXIT_ERROR, e.to_string()),
    }
}
