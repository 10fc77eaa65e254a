//! `import` and `export`: bulk loading and dumping of keys (not in etcdctl).
//!
//! Input formats, detected from the first non-blank character and lines:
//! - a JSON object `{"key": "value", ...}`;
//! - a JSON array `[{"key": ..., "value": ..., "lease": ...}, ...]`;
//! - NDJSON, one `{"key": ..., "value": ..., "lease": ...}` per line (a
//!   single-line file holding one such record is NDJSON too).
//!
//! In records, `key` and `value` are strings (`key_base64` / `value_base64`
//! carry bytes that are not UTF-8), `lease` is optional: a number (decimal
//! ID) or a string (hex ID, as `put --lease`). `export` writes NDJSON in
//! this format, so `export | import` round-trips every key.
//!
//! The whole input is parsed and checked before anything is written; then
//! keys are written in transactions of at most `--max-txn-ops` puts and
//! `--max-request-bytes` bytes, several in flight. Each transaction is
//! atomic; with `--skip-existing` each put only happens if the key does not
//! exist yet (a nested transaction per key), so an interrupted import can be
//! resumed by running it again.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use base64::Engine as _;
use cetera::proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest, compare, request_op, response_op,
};
use clap::Args;
use futures::StreamExt as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Map, Value};

use crate::cli::{Ctx, parse_go_bool};
use crate::client::{self, Client};
use crate::error::{CtlError, CtlResult, EXIT_INVALID_INPUT};
use crate::kv::prefix_end;
use crate::printer::{err, out};

#[derive(Args, Debug)]
pub(crate) struct ImportArgs {
    /// The file to read, or - for standard input
    pub(crate) file: String,
    /// Leave keys that already exist untouched (resumes an interrupted import)
    #[arg(long = "skip-existing", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) skip_existing: bool,
    /// Most operations in one transaction (the server's --max-txn-ops)
    #[arg(long = "max-txn-ops", default_value = "128")]
    pub(crate) max_txn_ops: usize,
    /// Largest transaction request in bytes (the server's --max-request-bytes)
    #[arg(long = "max-request-bytes", default_value = "1572864")]
    pub(crate) max_request_bytes: usize,
    /// Transactions in flight at once
    #[arg(long, default_value = "32")]
    pub(crate) concurrency: usize,
}

#[derive(Args, Debug)]
pub(crate) struct ExportArgs {
    /// Export only keys with this prefix (default: every key)
    #[arg(long, default_value = "")]
    pub(crate) prefix: String,
    /// Write to this file instead of standard output
    #[arg(long, short = 'o')]
    pub(crate) output: Option<String>,
    /// Keys fetched per request
    #[arg(long = "page-size", default_value = "1000")]
    pub(crate) page_size: i64,
}

/// One key to write.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Record {
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) lease: i64,
}

fn invalid(message: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_INVALID_INPUT, message)
}

/// Parses an import document (object, array or NDJSON).
pub(crate) fn parse_input(text: &str) -> CtlResult<Vec<Record>> {
    let trimmed = text.trim_start();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if trimmed.starts_with('[') {
        let value: Value =
            serde_json::from_str(text).map_err(|e| invalid(format!("invalid JSON: {e}")))?;
        let Value::Array(items) = value else {
            return Err(invalid("invalid JSON: expected an array"));
        };
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| record(item).map_err(|e| invalid(format!("element {i}: {e}"))))
            .collect();
    }
    if !trimmed.starts_with('{') {
        return Err(invalid(
            "invalid input: expected a JSON object, a JSON array or NDJSON records",
        ));
    }
    let lines: Vec<(usize, &str)> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .collect();
    // A document spanning several lines, or one object that is not a
    // record, is a map of keys to values.
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(text)
        && (lines.len() > 1 || !is_record(&map))
    {
        return map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok(Record {
                    key: k.as_bytes().to_vec(),
                    value: s.as_bytes().to_vec(),
                    lease: 0,
                }),
                other => Err(invalid(format!(
                    "key {k:?}: value must be a string, not {other}"
                ))),
            })
            .collect();
    }
    lines
        .into_iter()
        .map(|(i, line)| {
            let value: Value = serde_json::from_str(line)
                .map_err(|e| invalid(format!("line {}: invalid JSON: {e}", i + 1)))?;
            record(&value).map_err(|e| invalid(format!("line {}: {e}", i + 1)))
        })
        .collect()
}

fn is_record(map: &Map<String, Value>) -> bool {
    (map.contains_key("key") || map.contains_key("key_base64"))
        && map
            .keys()
            .all(|k| ["key", "key_base64", "value", "value_base64", "lease"].contains(&k.as_str()))
}

fn bytes_field(map: &Map<String, Value>, name: &str, required: bool) -> Result<Vec<u8>, String> {
    let b64 = format!("{name}_base64");
    match (map.get(name), map.get(&b64)) {
        (Some(Value::String(s)), None) => Ok(s.as_bytes().to_vec()),
        (None, Some(Value::String(s))) => base64::engine::general_purpose::STANDARD
            .decode(s)
            .map_err(|e| format!("{b64}: {e}")),
        (None, None) if !required => Ok(Vec::new()),
        (None, None) => Err(format!("missing \"{name}\"")),
        (Some(_), Some(_)) => Err(format!("both \"{name}\" and \"{b64}\" given")),
        _ => Err(format!("\"{name}\" must be a string")),
    }
}

fn record(value: &Value) -> Result<Record, String> {
    let Value::Object(map) = value else {
        return Err("expected an object with \"key\" and \"value\"".into());
    };
    if let Some(unknown) = map
        .keys()
        .find(|k| !["key", "key_base64", "value", "value_base64", "lease"].contains(&k.as_str()))
    {
        return Err(format!("unknown field {unknown:?}"));
    }
    let key = bytes_field(map, "key", true)?;
    if key.is_empty() {
        return Err("empty key".into());
    }
    let value = bytes_field(map, "value", false)?;
    let lease = match map.get("lease") {
        None | Some(Value::Null) => 0,
        Some(Value::Number(n)) => n.as_i64().ok_or("\"lease\" must be an integer")?,
        Some(Value::String(s)) => crate::gofmt::parse_hex_i64(s)
            .map_err(|e| format!("bad lease ID ({e}), expecting ID in Hex"))?,
        Some(_) => return Err("\"lease\" must be a number or a hex string".into()),
    };
    Ok(Record { key, value, lease })
}

/// Keeps the last record of every key, in order of last appearance (a
/// transaction may not name a key twice).
fn dedupe(records: Vec<Record>) -> Vec<Record> {
    let mut last: HashMap<Vec<u8>, usize> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        last.insert(r.key.clone(), i);
    }
    records
        .into_iter()
        .enumerate()
        .filter(|(i, r)| last.get(&r.key) == Some(i))
        .map(|(_, r)| r)
        .collect()
}

/// Bytes a put adds to a transaction request (payload plus generous
/// framing).
fn op_size(r: &Record, skip_existing: bool) -> usize {
    let base = r.key.len() + r.value.len() + 32;
    if skip_existing {
        base + r.key.len() + 32
    } else {
        base
    }
}

/// Splits records into transactions under both limits.
pub(crate) fn batches(
    records: Vec<Record>,
    max_ops: usize,
    max_bytes: usize,
    skip_existing: bool,
) -> CtlResult<Vec<Vec<Record>>> {
    // A nested transaction per key counts against the same op budget.
    let max_ops = if skip_existing {
        (max_ops.saturating_sub(1)).max(1)
    } else {
        max_ops.max(1)
    };
    let budget = max_bytes.saturating_sub(1024).max(1);
    let mut out: Vec<Vec<Record>> = Vec::new();
    let mut current: Vec<Record> = Vec::new();
    let mut size = 0;
    for r in records {
        let s = op_size(&r, skip_existing);
        if s > budget {
            return Err(CtlError::error(format!(
                "key {}: {} bytes of key and value do not fit in a request of at most {max_bytes} bytes",
                crate::gofmt::quote(&r.key),
                r.key.len() + r.value.len()
            )));
        }
        if !current.is_empty() && (current.len() >= max_ops || size + s > budget) {
            out.push(std::mem::take(&mut current));
            size = 0;
        }
        size += s;
        current.push(r);
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn put_op(r: &Record) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: r.key.clone(),
            value: r.value.clone(),
            lease: r.lease,
            ..Default::default()
        })),
    }
}

/// The transaction for one batch.
fn batch_txn(batch: &[Record], skip_existing: bool) -> TxnRequest {
    let success = batch
        .iter()
        .map(|r| {
            if !skip_existing {
                return put_op(r);
            }
            RequestOp {
                request: Some(request_op::Request::RequestTxn(TxnRequest {
                    compare: vec![Compare {
                        result: compare::CompareResult::Equal as i32,
                        target: compare::CompareTarget::Create as i32,
                        key: r.key.clone(),
                        range_end: Vec::new(),
                        target_union: Some(compare::TargetUnion::CreateRevision(0)),
                    }],
                    success: vec![put_op(r)],
                    failure: Vec::new(),
                })),
            }
        })
        .collect();
    TxnRequest {
        compare: Vec::new(),
        success,
        failure: Vec::new(),
    }
}

fn read_input(file: &str) -> CtlResult<String> {
    let mut bytes = Vec::new();
    if file == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .map_err(|e| CtlError::error(format!("reading standard input: {e}")))?;
    } else {
        bytes = std::fs::read(file)
            .map_err(|e| CtlError::error(crate::gofmt::io_error("open", file, &e)))?;
    }
    String::from_utf8(bytes).map_err(|e| invalid(format!("{file}: input is not UTF-8 ({e})")))
}

pub(crate) async fn import(ctx: &Ctx, a: ImportArgs) -> CtlResult<()> {
    let text = read_input(&a.file)?;
    let records = dedupe(parse_input(&text)?);
    drop(text);
    let total = records.len() as u64;
    let batches = batches(records, a.max_txn_ops, a.max_request_bytes, a.skip_existing)?;
    // Sent to the leader: through a follower every transaction would cross
    // the cluster twice.
    let c = Arc::new(ctx.client()?.leader_first().await?);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} keys ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let written = Arc::new(AtomicU64::new(0));
    let skipped = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let skip = a.skip_existing;
    let mut results = futures::stream::iter(batches.into_iter().map(|batch| {
        let c = c.clone();
        let bar = bar.clone();
        let written = written.clone();
        let skipped = skipped.clone();
        async move {
            let req = batch_txn(&batch, skip);
            let resp = c
                .unary(false, |ch| {
                    let r = c.request(req.clone());
                    async move { client::kv(ch).txn(r).await }
                })
                .await
                .map_err(|e| {
                    e.wrap(|m| {
                        format!(
                            "transaction of {} keys starting at {}: {m}",
                            batch.len(),
                            crate::gofmt::quote(&batch[0].key)
                        )
                    })
                })?;
            let mut skipped_here = 0u64;
            if skip {
                for op in &resp.responses {
                    if let Some(response_op::Response::ResponseTxn(t)) = &op.response
                        && !t.succeeded
                    {
                        skipped_here += 1;
                    }
                }
            }
            written.fetch_add(batch.len() as u64 - skipped_here, Ordering::Relaxed);
            skipped.fetch_add(skipped_here, Ordering::Relaxed);
            bar.inc(batch.len() as u64);
            Ok::<(), CtlError>(())
        }
    }))
    .buffer_unordered(a.concurrency.max(1));
    let mut failure = None;
    while let Some(result) = results.next().await {
        if let Err(e) = result {
            failure = Some(e);
            break;
        }
    }
    drop(results);
    bar.finish_and_clear();
    let written = written.load(Ordering::Relaxed);
    let skipped = skipped.load(Ordering::Relaxed);
    if let Some(e) = failure {
        err(format!(
            "imported {written} of {total} keys before the error; run again with --skip-existing to resume\n"
        ));
        return Err(e);
    }
    let secs = start.elapsed().as_secs_f64();
    let rate = if secs > 0.0 {
        (written + skipped) as f64 / secs
    } else {
        0.0
    };
    if skip {
        out(format!(
            "imported {written} keys, skipped {skipped} existing keys in {secs:.2}s ({rate:.0} keys/s)\n"
        ));
    } else {
        out(format!(
            "imported {written} keys in {secs:.2}s ({rate:.0} keys/s)\n"
        ));
    }
    Ok(())
}

/// One exported key as an NDJSON line.
pub(crate) fn export_line(key: &[u8], value: &[u8], lease: i64) -> String {
    let mut line = String::from("{");
    for (i, (name, bytes)) in [("key", key), ("value", value)].into_iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        match std::str::from_utf8(bytes) {
            Ok(text) => {
                line.push_str(&format!("\"{name}\":"));
                crate::gofmt::json_string(&mut line, text);
            }
            Err(_) => {
                line.push_str(&format!("\"{name}_base64\":"));
                crate::gofmt::json_bytes(&mut line, bytes);
            }
        }
    }
    if lease != 0 {
        line.push_str(&format!(",\"lease\":{lease}"));
    }
    line.push_str("}\n");
    line
}

pub(crate) async fn export(ctx: &Ctx, a: ExportArgs) -> CtlResult<()> {
    let c = ctx.client()?;
    let mut sink: Box<dyn std::io::Write> = match &a.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| CtlError::error(crate::gofmt::io_error("open", path, &e)))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (mut key, end) = if a.prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (
            a.prefix.as_bytes().to_vec(),
            prefix_end(a.prefix.as_bytes()),
        )
    };
    let mut revision = 0;
    loop {
        let req = RangeRequest {
            key: key.clone(),
            range_end: end.clone(),
            limit: a.page_size.max(1),
            revision,
            ..Default::default()
        };
        let resp = range(&c, req).await?;
        if revision == 0 {
            revision = resp.header.as_ref().map_or(0, |h| h.revision);
        }
        for kv in &resp.kvs {
            sink.write_all(export_line(&kv.key, &kv.value, kv.lease).as_bytes())
                .map_err(write_error)?;
        }
        match (resp.more, resp.kvs.last()) {
            (true, Some(last)) => {
                key = last.key.clone();
                key.push(0);
            }
            _ => break,
        }
    }
    sink.flush().map_err(write_error)?;
    Ok(())
}

/// A closed pipe ends the export quietly (like `etcdctl get | head`).
fn write_error(e: std::io::Error) -> CtlError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return CtlError::exit(crate::error::EXIT_ERROR);
    }
    CtlError::error(format!("write: {e}"))
}

async fn range(
    c: &Client,
    req: RangeRequest,
) -> CtlResult<cetera::proto::etcdserverpb::RangeResponse> {
    c.unary(true, |ch| {
        let r = c.request(req.clone());
        async move { client::kv(ch).range(r).await }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(k: &str, v: &str) -> Record {
        Record {
            key: k.into(),
            value: v.into(),
            lease: 0,
        }
    }

    #[test]
    fn parses_the_three_formats() {
        assert_eq!(
            parse_input(r#"{"a": "1", "b": "2"}"#).unwrap(),
            vec![rec("a", "1"), rec("b", "2")]
        );
        assert_eq!(
            parse_input(r#"[{"key": "a", "value": "1", "lease": 5}]"#).unwrap(),
            vec![Record {
                key: b"a".to_vec(),
                value: b"1".to_vec(),
                lease: 5
            }]
        );
        assert_eq!(
            parse_input("{\"key\":\"a\",\"value\":\"1\"}\n\n{\"key\":\"b\",\"value\":\"2\",\"lease\":\"ff\"}\n")
                .unwrap()[1]
                .lease,
            255
        );
        // A one-line record is NDJSON, not a map with keys "key" and "value".
        assert_eq!(
            parse_input(r#"{"key":"a","value":"1"}"#).unwrap(),
            vec![rec("a", "1")]
        );
        let bytes = parse_input(r#"{"key_base64":"/w==","value_base64":"AA=="}"#).unwrap();
        assert_eq!(
            (bytes[0].key.clone(), bytes[0].value.clone()),
            (vec![0xff], vec![0])
        );
    }

    #[test]
    fn bad_lines_are_reported_with_their_number() {
        let e = parse_input("{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":}\n")
            .unwrap_err();
        assert_eq!(e.code, 3);
        assert!(
            e.message.starts_with("line 2: invalid JSON"),
            "{}",
            e.message
        );
        let e = parse_input("{\"key\":\"a\",\"value\":1}\n{\"key\":\"b\"}\n").unwrap_err();
        assert!(e.message.starts_with("line 1: "), "{}", e.message);
        assert!(parse_input("nonsense").is_err());
        assert!(parse_input(r#"{"a": 1}"#).is_err());
    }

    #[test]
    fn batches_respect_both_limits() {
        let records: Vec<Record> = (0..300).map(|i| rec(&format!("k{i:03}"), "v")).collect();
        let b = batches(records.clone(), 128, 1 << 20, false).unwrap();
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [128, 128, 44]);
        let b = batches(records, 128, 1 << 20, true).unwrap();
        assert!(b.iter().all(|x| x.len() <= 127));
        let big: Vec<Record> = (0..10)
            .map(|i| rec(&format!("k{i}"), &"x".repeat(400_000)))
            .collect();
        let b = batches(big, 128, 1_572_864, false).unwrap();
        assert!(
            b.iter().all(|x| x.len() <= 3),
            "{:?}",
            b.iter().map(Vec::len).collect::<Vec<_>>()
        );
        let huge = vec![rec("k", &"x".repeat(2_000_000))];
        assert!(batches(huge, 128, 1_572_864, false).is_err());
    }

    #[test]
    fn duplicate_keys_keep_the_last_value() {
        let d = dedupe(vec![rec("a", "1"), rec("b", "2"), rec("a", "3")]);
        assert_eq!(d, vec![rec("b", "2"), rec("a", "3")]);
    }

    #[test]
    fn export_lines_round_trip() {
        let line = export_line(b"k", b"v", 7);
        assert_eq!(line, "{\"key\":\"k\",\"value\":\"v\",\"lease\":7}\n");
        let line = export_line(&[0xff], b"v", 0);
        let back = parse_input(&line).unwrap();
        assert_eq!(back[0].key, vec![0xff]);
    }
}
