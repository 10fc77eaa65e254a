//! `cetera-bench`: a load generator for the etcd v3 gRPC API.
//!
//! It speaks only etcd's wire protocol, so the very same load runs against
//! real etcd and against cetera. A run has two phases:
//!
//! 1. **setup** (not measured): open `--conns` HTTP/2 connections spread over
//!    `--endpoints` (or all to the leader with `--target-leader`), then let
//!    each of the `--clients` tasks prepare its keys (write the keys a read
//!    workload will read, create the keys a txn workload will swap);
//! 2. **measure**: every client sends one request at a time until the
//!    `--total` is reached or `--duration` is over, recording latencies in
//!    its own histogram; the histograms are merged at the end.
//!
//! The report is one human line, or one JSON line with `--json`.
//!
//! The watch workloads (`watch`, `watch-idle`) have phases of their own;
//! see [`watch`]. [`cli`] holds the flags; the rest of the load
//! (connections, keyspace, clients, histograms) is the library's
//! `cetera::bench`, shared with `ceteractl bench`.

mod cli;
mod watch;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;

use cetera::bench::{Dialer, KeySpace, Kind, Plan, Report, workload};

use crate::cli::{Cli, Consistency, DEFAULT_MAX_DURATION, DEFAULT_TOTAL, Opts, Workload};
use crate::watch::{DeliveryReport, IdleReport};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match build_runtime(cli.opts.threads) {
        Ok(runtime) => runtime,
        Err(e) => return fail(&e),
    };
    match runtime.block_on(bench(&cli)) {
        Ok(outcome) => {
            outcome.print(cli.opts.json);
            if !outcome.succeeded() {
                eprintln!("cetera-bench: no request succeeded");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// The report of whichever workload ran.
enum Outcome {
    Load(Box<Report>),
    Watch(Box<DeliveryReport>),
    Idle(IdleReport),
}

impl Outcome {
    /// Whether anything succeeded (the exit status).
    fn succeeded(&self) -> bool {
        match self {
            Self::Load(report) => report.stats.ok() > 0,
            Self::Watch(report) => report.succeeded(),
            Self::Idle(_) => true,
        }
    }

    /// The human line on stdout, or on stderr with the JSON line on stdout.
    fn print(&self, json: bool) {
        let (human, as_json) = match self {
            Self::Load(report) => (report.human(), report.json()),
            Self::Watch(report) => (report.human(), report.json()),
            Self::Idle(report) => (report.human(), report.json()),
        };
        if json {
            eprintln!("{human}");
            println!("{as_json}");
        } else {
            println!("{human}");
        }
    }
}

fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("cetera-bench: {error:#}");
    ExitCode::FAILURE
}

fn build_runtime(threads: Option<u32>) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = threads {
        builder.worker_threads(threads as usize);
    }
    builder
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

/// Connects, runs the workload and returns its report.
async fn bench(cli: &Cli) -> Result<Outcome> {
    match &cli.workload {
        Workload::Watch(args) => Ok(Outcome::Watch(Box::new(
            watch::delivery(&cli.opts, args).await?,
        ))),
        Workload::WatchIdle(args) => Ok(Outcome::Idle(watch::idle(&cli.opts, args).await?)),
        _ => Ok(Outcome::Load(Box::new(kv_bench(cli).await?))),
    }
}

/// Runs one of the KV workloads.
async fn kv_bench(cli: &Cli) -> Result<Report> {
    let opts = &cli.opts;
    // Plain connections, no auth: the servers this tool measures.
    let dialer = Dialer::default();
    let endpoints = if opts.target_leader {
        vec![dialer.find_leader(&opts.endpoints, opts.timeout).await?]
    } else {
        opts.endpoints.clone()
    };
    let conns = dialer.open(&endpoints, opts.conns).await?;
    let plan = Arc::new(plan(opts, &cli.workload)?);
    let (stats, elapsed) = workload::run(plan, &conns).await?;
    Ok(Report {
        workload: workload_name(&cli.workload),
        clients: opts.clients,
        conns: opts.conns,
        elapsed,
        stats,
    })
}

/// Turns the flags into the plan every client follows.
fn plan(opts: &Opts, workload: &Workload) -> Result<Plan> {
    let (kind, populate) = match workload {
        Workload::Put => (Kind::Put, false),
        Workload::Txn => (Kind::Txn, false),
        Workload::LeaseKeepalive => (Kind::LeaseKeepAlive, false),
        Workload::Range(read) => (
            Kind::Range {
                serializable: read.consistency == Consistency::Serializable,
            },
            !read.skip_populate,
        ),
        Workload::Mixed(mixed) => (
            Kind::Mixed {
                serializable: mixed.read.consistency == Consistency::Serializable,
                read_ratio: mixed.read_ratio,
            },
            !mixed.read.skip_populate,
        ),
        Workload::Watch(_) | Workload::WatchIdle(_) => {
            anyhow::bail!("the watch workloads have no KV plan")
        }
    };
    let total = match (opts.total, opts.duration) {
        (Some(total), _) => total,
        (None, Some(_)) => u64::MAX,
        (None, None) => DEFAULT_TOTAL,
    };
    Ok(Plan {
        kind,
        keys: KeySpace::new(
            "",
            opts.keyspace,
            opts.key_size as usize,
            opts.val_size as usize,
        )?,
        populate,
        sequential: opts.sequential_keys,
        clients: opts.clients as usize,
        total,
        max_duration: opts.duration.unwrap_or(DEFAULT_MAX_DURATION),
        timeout: opts.timeout,
    })
}

/// `put`, `range-l`, `range-s`, `txn`, `mixed-l`, `mixed-s`.
fn workload_name(workload: &Workload) -> String {
    let suffix = |c: Consistency| match c {
        Consistency::Linearizable => "l",
        Consistency::Serializable => "s",
    };
    match workload {
        Workload::Put => "put".into(),
        Workload::Txn => "txn".into(),
        Workload::LeaseKeepalive => "lease-keepalive".into(),
        Workload::Range(read) => format!("range-{}", suffix(read.consistency)),
        Workload::Mixed(mixed) => format!("mixed-{}", suffix(mixed.read.consistency)),
        Workload::Watch(_) => "watch".into(),
        Workload::WatchIdle(_) => "watch-idle".into(),
    }
}
