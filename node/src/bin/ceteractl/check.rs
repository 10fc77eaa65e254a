//! `check perf`: etcdctl's short write load (a rate-limited stream of
//! 1 KiB puts under a prefix from many clients) and its verdict: throughput
//! at least 90% of the target rate, slowest request under 500 ms, standard
//! deviation under 100 ms, no errors. The keys are deleted afterwards.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cetera::proto::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use rand::Rng as _;

use crate::cli::{Ctx, parse_go_bool};
use crate::client::{self, Client};
use crate::error::{CtlError, CtlResult, EXIT_BAD_FEATURE, EXIT_ERROR, EXIT_INVALID_INPUT};
use crate::kv::prefix_end;
use crate::printer::out;

#[derive(Subcommand, Debug)]
pub(crate) enum CheckCommand {
    /// Check the performance of the etcd cluster
    Perf {
        /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
        #[arg(long, default_value = "s")]
        load: String,
        /// The prefix for writing the performance check's keys.
        #[arg(long, default_value = "/etcdctl-check-perf/")]
        prefix: String,
        /// Compact storage with last revision after test is finished.
        #[arg(long = "auto-compact", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        auto_compact: bool,
        /// Defragment storage after test is finished.
        #[arg(long = "auto-defrag", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
        auto_defrag: bool,
        /// Seconds to run (default: the load's 60; not in etcdctl)
        #[arg(long)]
        duration: Option<u64>,
    },
}

/// (writes per second, clients) of each load model.
fn load_model(load: &str) -> Option<(u64, usize)> {
    match load {
        "s" | "small" => Some((150, 50)),
        "m" | "medium" => Some((1000, 200)),
        "l" | "large" => Some((8000, 500)),
        "xl" | "xLarge" => Some((15000, 1000)),
        _ => None,
    }
}

pub(crate) async fn run(ctx: &Ctx, cmd: CheckCommand) -> CtlResult<()> {
    let CheckCommand::Perf {
        load,
        prefix,
        auto_compact,
        auto_defrag,
        duration,
    } = cmd;
    let Some((limit, clients)) = load_model(&load) else {
        return Err(CtlError::new(
            EXIT_BAD_FEATURE,
            format!("unknown load option {load}"),
        ));
    };
    let duration = Duration::from_secs(duration.unwrap_or(60).max(1));
    let c = Arc::new(ctx.client()?);
    let existing = c
        .unary(true, |ch| {
            let r = c.request(RangeRequest {
                key: prefix.as_bytes().to_vec(),
                range_end: prefix_end(prefix.as_bytes()),
                limit: 1,
                ..Default::default()
            });
            async move { client::kv(ch).range(r).await }
        })
        .await?;
    if !existing.kvs.is_empty() {
        return Err(CtlError::new(
            EXIT_INVALID_INPUT,
            format!(
                "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
                crate::gofmt::quote(prefix.as_bytes())
            ),
        ));
    }
    let bar = ProgressBar::new(duration.as_secs());
    bar.set_style(
        ProgressStyle::with_template("{bar:60} {pos}/{len}s")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let (tx, rx) = async_channel::<PutRequest>(clients);
    let latencies: Arc<Mutex<Vec<f64>>> = Arc::new(Mutex::new(Vec::new()));
    let errors: Arc<Mutex<BTreeMap<String, u64>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let start = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..clients {
        let c = c.clone();
        let rx = rx.clone();
        let latencies = latencies.clone();
        let errors = errors.clone();
        workers.push(tokio::spawn(async move {
            loop {
                let next = rx.lock().await.recv().await;
                let Some(req) = next else { return };
                let t = Instant::now();
                let result = c
                    .unary_until(
                        tokio::time::Instant::now() + Duration::from_secs(3600),
                        false,
                        |ch| {
                            let r = c.request(req.clone());
                            async move { client::kv(ch).put(r).await }
                        },
                    )
                    .await;
                let took = t.elapsed().as_secs_f64();
                match result {
                    Ok(_) => latencies
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(took),
                    Err(e) => {
                        *errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .entry(e.message)
                            .or_default() += 1
                    }
                }
            }
        }));
    }
    // Rate-limited producer: `limit` puts per second for the duration.
    let interval = Duration::from_secs_f64(1.0 / limit as f64);
    let mut next = Instant::now();
    let end = start + duration;
    let mut key = vec![0u8; 256];
    let value = vec![0u8; 1024];
    let mut ticked = 0;
    while Instant::now() < end {
        rand::rng().fill(&mut key[..]);
        let mut k = prefix.as_bytes().to_vec();
        k.extend_from_slice(&key);
        if tx
            .send(PutRequest {
                key: k,
                value: value.clone(),
                ..Default::default()
            })
            .await
            .is_err()
        {
            break;
        }
        let secs = start.elapsed().as_secs();
        if secs > ticked {
            bar.set_position(secs.min(duration.as_secs()));
            ticked = secs;
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            tokio::time::sleep(next - now).await;
        }
    }
    drop(tx);
    for w in workers {
        let _ = w.await;
    }
    let total = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let deleted = c
        .unary_until(
            c.command_deadline() + Duration::from_secs(25),
            false,
            |ch| {
                let r = c.request(DeleteRangeRequest {
                    key: prefix.as_bytes().to_vec(),
                    range_end: prefix_end(prefix.as_bytes()),
                    prev_kv: false,
                });
                async move { client::kv(ch).delete_range(r).await }
            },
        )
        .await?;
    if auto_compact {
        let rev = deleted.header.as_ref().map_or(0, |h| h.revision);
        out(format!("Compacting with revision {rev}\n"));
        c.unary_until(
            c.command_deadline() + Duration::from_secs(25),
            false,
            |ch| {
                let r = c.request(CompactionRequest {
                    revision: rev,
                    physical: true,
                });
                async move { client::kv(ch).compact(r).await }
            },
        )
        .await?;
        out(format!("Compacted with revision {rev}\n"));
    }
    if auto_defrag {
        for ep in c.endpoints().to_vec() {
            defrag(&c, &ep).await?;
        }
    }
    let latencies = latencies.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let errors = errors.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let n = latencies.len() as f64;
    let rps = if total > 0.0 { n / total } else { 0.0 };
    let slowest = latencies.iter().cloned().fold(0.0, f64::max);
    let mean = if n > 0.0 {
        latencies.iter().sum::<f64>() / n
    } else {
        0.0
    };
    let stddev = if n > 0.0 {
        (latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt()
    } else {
        0.0
    };
    let mut ok = true;
    let mut report = String::new();
    if !errors.is_empty() {
        report.push_str("FAIL: too many errors\n");
        for (e, count) in &errors {
            report.push_str(&format!("FAIL: ERROR({e}) -> {count}\n"));
        }
        ok = false;
    }
    if rps / limit as f64 <= 0.9 {
        report.push_str(&format!(
            "FAIL: Throughput too low: {} writes/s\n",
            rps as i64 + 1
        ));
        ok = false;
    } else {
        report.push_str(&format!(
            "PASS: Throughput is {} writes/s\n",
            rps as i64 + 1
        ));
    }
    if slowest > 0.5 {
        report.push_str(&format!("Slowest request took too long: {slowest:.6}s\n"));
        ok = false;
    } else {
        report.push_str(&format!("PASS: Slowest request took {slowest:.6}s\n"));
    }
    if stddev > 0.1 {
        report.push_str(&format!("Stddev too high: {stddev:.6}s\n"));
        ok = false;
    } else {
        report.push_str(&format!("PASS: Stddev is {stddev:.6}s\n"));
    }
    report.push_str(if ok { "PASS\n" } else { "FAIL\n" });
    out(report);
    if ok {
        Ok(())
    } else {
        Err(CtlError::exit(EXIT_ERROR))
    }
}

async fn defrag(c: &Client, ep: &str) -> CtlResult<()> {
    out(format!(
        "Defragmenting {}\n",
        crate::gofmt::quote(ep.as_bytes())
    ));
    let one = c.for_endpoint(ep)?;
    one.unary_until(
        one.command_deadline() + Duration::from_secs(25),
        false,
        |ch| {
            let r = one.request(DefragmentRequest {});
            async move { client::maintenance(ch).defragment(r).await }
        },
    )
    .await?;
    out(format!(
        "Defragmented {}\n",
        crate::gofmt::quote(ep.as_bytes())
    ));
    Ok(())
}

type SharedReceiver<T> = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>>;

/// A bounded channel whose receiver many workers share.
fn async_channel<T>(capacity: usize) -> (tokio::sync::mpsc::Sender<T>, SharedReceiver<T>) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (tx, Arc::new(tokio::sync::Mutex::new(rx)))
}
