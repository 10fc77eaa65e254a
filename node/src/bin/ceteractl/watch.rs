//! `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`
//! and interactive `watch -i` (lines `watch ...` and `progress` on stdin).
//!
//! As etcdctl's, a watch outlives its stream: when a member restarts or
//! goes away, or the token is refused, the watch resumes after the last
//! event printed (`crate::resume`).

use std::io::BufRead;

use cetera::proto::etcdserverpb::{WatchCreateRequest, WatchResponse};
use clap::{Args, Parser};
use tokio::sync::mpsc;

use crate::cli::{Ctx, parse_go_bool, parse_go_int};
use crate::client::Client;
use crate::error::{
    CtlError, CtlResult, EXIT_BAD_ARGS, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_INVALID_INPUT,
    status_message,
};
use crate::gofmt::quote;
use crate::kv::prefix_end;
use crate::printer::{Printer, err, event_type, out};
use crate::resume::ResumedWatch;

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct WatchArgs {
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub(crate) rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long = "prev-kv", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) prev_kv: bool,
    /// [key or prefix] [range_end]
    pub(crate) args: Vec<String>,
    /// [exec-command arg1 arg2 ...] after `--`: run on every event
    #[arg(last = true)]
    pub(crate) exec: Vec<String>,
}

/// One interactive `watch ...` line.
#[derive(Parser, Debug)]
#[command(name = "watch", no_binary_name = true)]
struct InteractiveWatch {
    #[command(flatten)]
    args: WatchArgs,
}

fn bad_args(m: &str) -> CtlError {
    CtlError::new(EXIT_BAD_ARGS, m)
}

/// The watch to create and the command to run on each event.
#[derive(Debug)]
struct Plan {
    create: WatchCreateRequest,
    exec: Vec<String>,
}

/// etcdctl's `parseWatchArgs` and `getWatchChan`, with the key and range
/// end from `ETCDCTL_WATCH_KEY` / `ETCDCTL_WATCH_RANGE_END` when set.
fn plan(a: &WatchArgs, env_key: &str, env_range: &str, separator_last: bool) -> CtlResult<Plan> {
    if separator_last {
        return Err(bad_args(
            "bad number of arguments (found separator --, but no commands)",
        ));
    }
    if a.args.is_empty() && a.exec.is_empty() && env_key.is_empty() {
        return Err(bad_args("bad number of arguments"));
    }
    if !a.args.is_empty() && !env_key.is_empty() {
        return Err(bad_args(
            "bad number of arguments (found conflicting environment key)",
        ));
    }
    let mut watch_args: Vec<String> = Vec::new();
    if !env_key.is_empty() {
        watch_args.push(env_key.to_string());
        if !env_range.is_empty() {
            watch_args.push(env_range.to_string());
        }
    }
    watch_args.extend(a.args.iter().cloned());
    if watch_args.is_empty() {
        return Err(bad_args("bad number of arguments"));
    }
    let mut key = watch_args[0].as_bytes().to_vec();
    let mut range_end = Vec::new();
    if watch_args.len() == 2 {
        if a.prefix {
            return Err(bad_args(
                "`range_end` and `--prefix` are mutually exclusive",
            ));
        }
        range_end = watch_args[1].as_bytes().to_vec();
    }
    if a.prefix {
        if key.is_empty() {
            key = vec![0];
            range_end = vec![0];
        } else {
            range_end = prefix_end(&key);
        }
    }
    Ok(Plan {
        create: WatchCreateRequest {
            key,
            range_end,
            start_revision: a.rev,
            prev_kv: a.prev_kv,
            ..Default::default()
        },
        exec: a.exec.clone(),
    })
}

pub(crate) async fn run(ctx: &Ctx, a: WatchArgs) -> CtlResult<()> {
    let env_key = std::env::var("ETCDCTL_WATCH_KEY").unwrap_or_default();
    let env_range = std::env::var("ETCDCTL_WATCH_RANGE_END").unwrap_or_default();
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(bad_args(&format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            quote(env_range.as_bytes())
        )));
    }
    if a.interactive {
        return interactive(ctx, &env_key, &env_range).await;
    }
    let separator_last = std::env::args().next_back().as_deref() == Some("--");
    let p = plan(&a, &env_key, &env_range, separator_last)?;
    let c = ctx.client()?;
    let printer = ctx.printer()?;
    // Nothing asks for progress outside interactive mode.
    let (_progress, wanted) = mpsc::unbounded_channel();
    watch_stream(&c, printer, p.create.clone(), wanted, &p.exec).await?;
    Err(CtlError::new(
        EXIT_INTERRUPTED,
        "watch is canceled by the server",
    ))
}

async fn interactive(ctx: &Ctx, env_key: &str, env_range: &str) -> CtlResult<()> {
    let c = std::sync::Arc::new(ctx.client()?);
    let printer = ctx.printer()?;
    let (lines_tx, mut lines_rx) = mpsc::unbounded_channel::<std::io::Result<String>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        let mut lock = stdin.lock();
        loop {
            let mut line = String::new();
            match lock.read_line(&mut line) {
                Ok(0) => {
                    let _ = lines_tx.send(Err(std::io::ErrorKind::UnexpectedEof.into()));
                    return;
                }
                Ok(_) => {
                    if lines_tx.send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = lines_tx.send(Err(e));
                    return;
                }
            }
        }
    });
    let mut progress_senders: Vec<mpsc::UnboundedSender<()>> = Vec::new();
    while let Some(line) = lines_rx.recv().await {
        let line = match line {
            Ok(l) => l,
            Err(e) => {
                let reason = if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    "EOF".to_string()
                } else {
                    e.to_string()
                };
                return Err(CtlError::new(
                    EXIT_INVALID_INPUT,
                    format!("Error reading watch request line: {reason}"),
                ));
            }
        };
        let l = line.strip_suffix('\n').unwrap_or(&line);
        let args = crate::txn::argify(l);
        if args.is_empty() {
            err(format!(
                "Invalid command: {l} (watch and progress supported)\n"
            ));
            continue;
        }
        match args[0].as_str() {
            "watch" => {
                if args.len() < 2 && env_key.is_empty() {
                    err(format!(
                        "Invalid command {l} (command type or key is not provided)\n"
                    ));
                    continue;
                }
                let separator_last = args.last().map(String::as_str) == Some("--");
                let parsed = InteractiveWatch::try_parse_from(&args[1..])
                    .map_err(|e| CtlError::new(EXIT_BAD_ARGS, e.kind().to_string()))?;
                let p = match plan(&parsed.args, env_key, env_range, separator_last) {
                    Ok(p) => p,
                    Err(e) if e.message.contains("mutually exclusive") => {
                        err(format!("Invalid command {l} ({})\n", e.message));
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let (tx, wanted) = mpsc::unbounded_channel();
                progress_senders.push(tx);
                let c = c.clone();
                tokio::spawn(async move {
                    if let Err(e) = watch_stream(&c, printer, p.create, wanted, &p.exec).await {
                        err(format!("Error: {}\n", e.message));
                        std::process::exit(e.code);
                    }
                });
            }
            "progress" => {
                for tx in &progress_senders {
                    let _ = tx.send(());
                }
            }
            _ => err(format!("Invalid command {l} (only support watch)\n")),
        }
    }
    Ok(())
}

/// The message clientv3's `WatchResponse.Err()` gives for a cancellation.
fn cancel_message(r: &WatchResponse) -> String {
    if r.compact_revision != 0 {
        return "etcdserver: mvcc: required revision has been compacted".into();
    }
    if !r.cancel_reason.is_empty() {
        return status_message(&tonic::Status::failed_precondition(r.cancel_reason.clone()));
    }
    "etcdserver: mvcc: required revision is a future revision".into()
}

/// Runs one watch until the server cancels it, printing each response
/// and running `exec` for each event; a `()` on `progress` asks for a
/// progress notification. Returns when the watch ends (the caller reports
/// it).
async fn watch_stream(
    c: &Client,
    printer: Printer,
    create: WatchCreateRequest,
    progress: mpsc::UnboundedReceiver<()>,
    exec: &[String],
) -> CtlResult<()> {
    // clientv3.WithRequireLeader
    let mut watch = ResumedWatch::open(c, create, true)
        .await?
        .with_progress(progress);
    loop {
        let resp = match watch.next().await {
            Ok(Some(r)) => r,
            Err(s) => {
                err(format!("watch was canceled ({})\n", status_message(&s)));
                return Ok(());
            }
            Ok(None) => return Ok(()),
        };
        if resp.created && !resp.canceled {
            continue;
        }
        if resp.canceled {
            err(format!("watch was canceled ({})\n", cancel_message(&resp)));
        }
        let progress = resp.events.is_empty()
            && !resp.canceled
            && !resp.created
            && resp.compact_revision == 0
            && resp.header.as_ref().is_some_and(|h| h.revision != 0);
        if progress {
            out(format!(
                "progress notify: {}\n",
                resp.header.as_ref().map_or(0, |h| h.revision)
            ));
        }
        printer.watch(&resp)?;
        if !exec.is_empty() {
            run_exec(exec, &resp).await?;
        }
        if resp.canceled {
            return Ok(());
        }
    }
}

async fn run_exec(exec: &[String], resp: &WatchResponse) -> CtlResult<()> {
    let revision = resp.header.as_ref().map_or(0, |h| h.revision);
    for ev in &resp.events {
        let kv = ev.kv.clone().unwrap_or_default();
        let status = tokio::process::Command::new(&exec[0])
            .args(&exec[1..])
            .env("ETCD_WATCH_REVISION", revision.to_string())
            .env(
                "ETCD_WATCH_EVENT_TYPE",
                quote(event_type(ev.r#type).as_bytes()),
            )
            .env("ETCD_WATCH_KEY", quote(&kv.key))
            .env("ETCD_WATCH_VALUE", quote(&kv.value))
            .status()
            .await;
        let problem = match status {
            Ok(s) if s.success() => None,
            Ok(s) => Some(match s.code() {
                Some(code) => format!("exit status {code}"),
                None => s.to_string(),
            }),
            Err(e) => Some(format!("exec: {}: {e}", quote(exec[0].as_bytes()))),
        };
        if let Some(problem) = problem {
            let quoted: Vec<String> = exec.iter().map(|a| quote(a.as_bytes())).collect();
            err(format!(
                "command [{}] error ({problem})\n",
                quoted.join(" ")
            ));
            return Err(CtlError::exit(EXIT_ERROR));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(keys: &[&str]) -> WatchArgs {
        WatchArgs {
            args: keys.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn plans_follow_etcdctl() {
        let p = plan(&args(&["a", "b"]), "", "", false).unwrap();
        assert_eq!(
            (p.create.key, p.create.range_end),
            (b"a".to_vec(), b"b".to_vec())
        );
        let mut a = args(&["a"]);
        a.prefix = true;
        let p = plan(&a, "", "", false).unwrap();
        assert_eq!(p.create.range_end, b"b");
        assert_eq!(plan(&args(&[]), "", "", false).unwrap_err().code, 128);
        assert_eq!(
            plan(&args(&["a"]), "k", "", false).unwrap_err().message,
            "bad number of arguments (found conflicting environment key)"
        );
        let p = plan(&args(&[]), "k", "l", false).unwrap();
        assert_eq!(p.create.range_end, b"l");
        let mut a = args(&["a", "b"]);
        a.prefix = true;
        assert!(plan(&a, "", "", false).is_err());
    }
}
