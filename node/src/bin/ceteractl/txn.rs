//! `txn`: etcdctl's transaction grammar, read from stdin (prompted with
//! `-i`): compares, a blank line, success requests, a blank line, failure
//! requests, a blank line. A compare is `<target>("<key>") <op> "<value>"`
//! with target `ver|version|c|create|m|mod|val|value|lease` and op
//! `= != < >`; a request is a `get`, `put` or `del` command line.

use std::io::BufRead;

use cetera::proto::etcdserverpb::{Compare, RequestOp, TxnRequest, compare, request_op};
use clap::{Args, Parser, Subcommand};

use crate::cli::{Ctx, parse_go_bool};
use crate::client;
use crate::error::{CtlError, CtlResult, EXIT_INVALID_INPUT};
use crate::gofmt;
use crate::kv::{self, DelArgs, GetArgs, PutArgs};
use crate::printer;

#[derive(Args, Debug, Clone)]
pub(crate) struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) interactive: bool,
    pub(crate) args: Vec<String>,
}

fn invalid(message: impl Into<String>) -> CtlError {
    CtlError::new(EXIT_INVALID_INPUT, message)
}

pub(crate) async fn run(ctx: &Ctx, a: TxnArgs) -> CtlResult<()> {
    if !a.args.is_empty() {
        return Err(CtlError::bad_args("txn command does not accept argument"));
    }
    let c = ctx.client()?;
    let prompt = |s: &str| {
        if a.interactive {
            printer::out(format!("{s}\n"));
        }
    };
    let stdin = std::io::stdin();
    let mut reader = stdin.lock();
    prompt("compares:");
    let compare = read_compares(&mut reader)?;
    prompt("success requests (get, put, del):");
    let success = read_ops(&mut reader)?;
    prompt("failure requests (get, put, del):");
    let failure = read_ops(&mut reader)?;
    drop(reader);
    let req = TxnRequest {
        compare,
        success,
        failure,
    };
    let resp = c
        .unary(false, |ch| {
            let r = c.request(req.clone());
            async move { client::kv(ch).txn(r).await }
        })
        .await?;
    ctx.printer()?.txn(&resp)
}

/// One line, trimmed; a line cut short by the end of input is an error
/// (`EOF`), as with Go's `ReadString`.
fn read_line(r: &mut impl BufRead) -> CtlResult<String> {
    let mut buf = Vec::new();
    r.read_until(b'\n', &mut buf)
        .map_err(|e| invalid(e.to_string()))?;
    if buf.last() != Some(&b'\n') {
        return Err(invalid("EOF"));
    }
    Ok(String::from_utf8_lossy(&buf).trim().to_string())
}

fn read_compares(r: &mut impl BufRead) -> CtlResult<Vec<Compare>> {
    let mut cmps = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            return Ok(cmps);
        }
        cmps.push(parse_compare(&line)?);
    }
}

fn read_ops(r: &mut impl BufRead) -> CtlResult<Vec<RequestOp>> {
    let mut ops = Vec::new();
    loop {
        let line = read_line(r)?;
        if line.is_empty() {
            return Ok(ops);
        }
        ops.push(parse_request(&line)?);
    }
}

/// `<target>("<key>") <op> "<value>"`.
pub(crate) fn parse_compare(line: &str) -> CtlResult<Compare> {
    let malformed = || invalid(format!("malformed comparison: {line}"));
    let Some((target, rest)) = line.split_once('(') else {
        return Err(malformed());
    };
    let parsed = (|| {
        let (key, rest) = gofmt::unquote_prefix(rest)?;
        let rest = rest.strip_prefix(')')?;
        let rest = rest.trim_start();
        let op_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (op, rest) = rest.split_at(op_end);
        let (val, _) = gofmt::unquote_prefix(rest)?;
        Some((key, op.to_string(), val))
    })();
    let Some((key, op, val)) = parsed else {
        return Err(malformed());
    };
    let result = match op.as_str() {
        "=" => compare::CompareResult::Equal,
        "!=" => compare::CompareResult::NotEqual,
        ">" => compare::CompareResult::Greater,
        "<" => compare::CompareResult::Less,
        _ => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown op {op})"
            )));
        }
    };
    let val_str = String::from_utf8_lossy(&val).to_string();
    let bad_request = || invalid(format!("invalid txn compare request: {line}"));
    let int = || gofmt::parse_int10(&val_str).map_err(|_| bad_request());
    let (target, union) = match target {
        "ver" | "version" => (
            compare::CompareTarget::Version,
            compare::TargetUnion::Version(int()?),
        ),
        "c" | "create" => (
            compare::CompareTarget::Create,
            compare::TargetUnion::CreateRevision(int()?),
        ),
        "m" | "mod" => (
            compare::CompareTarget::Mod,
            compare::TargetUnion::ModRevision(int()?),
        ),
        "val" | "value" => (
            compare::CompareTarget::Value,
            compare::TargetUnion::Value(val.clone()),
        ),
        "lease" => (
            compare::CompareTarget::Lease,
            compare::TargetUnion::Lease(gofmt::parse_hex_i64(&val_str).map_err(|_| bad_request())?),
        ),
        other => {
            return Err(invalid(format!(
                "malformed comparison: {line} (unknown target {other})"
            )));
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key,
        range_end: Vec::new(),
        target_union: Some(union),
    })
}

/// The `get`, `put` and `del` command lines a txn accepts.
#[derive(Parser, Debug)]
#[command(name = "txn-request", infer_subcommands = true, no_binary_name = true)]
struct TxnRequestLine {
    #[command(subcommand)]
    op: TxnOp,
}

#[derive(Subcommand, Debug)]
enum TxnOp {
    Get(GetArgs),
    Put(PutArgs),
    Del(DelArgs),
}

/// One request line (etcdctl's `parseRequestUnion`).
pub(crate) fn parse_request(line: &str) -> CtlResult<RequestOp> {
    let args = argify(line);
    if args.len() < 2 {
        return Err(invalid(format!("invalid txn compare request: {line}")));
    }
    let parsed = TxnRequestLine::try_parse_from(&args)
        .map_err(|_| invalid(format!("invalid txn request: {line}")))?;
    let request = match parsed.op {
        TxnOp::Get(a) => request_op::Request::RequestRange(kv::get_request(&a)?),
        TxnOp::Put(a) => request_op::Request::RequestPut(kv::put_request(&a, false)?),
        TxnOp::Del(a) => request_op::Request::RequestDeleteRange(kv::del_request(&a)?),
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

/// Splits a request line like etcdctl's `argify`: whitespace-separated
/// words, `"double-quoted"` strings with Go escapes and `'single-quoted'`
/// strings taken literally.
pub(crate) fn argify(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return out;
        }
        if rest.starts_with('"') {
            if let Some((value, after)) = gofmt::unquote_prefix(rest) {
                out.push(String::from_utf8_lossy(&value).to_string());
                rest = after;
                continue;
            }
            rest = &rest[1..];
            continue;
        }
        if let Some(body) = rest.strip_prefix('\'') {
            if let Some(end) = body.find('\'') {
                out.push(body[..end].to_string());
                rest = &body[end + 1..];
                continue;
            }
            rest = body;
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        out.push(rest[..end].to_string());
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argify_splits_like_etcdctl() {
        assert_eq!(
            argify(r#"put k "a b\n" 'c d'"#),
            ["put", "k", "a b\n", "c d"]
        );
        assert_eq!(argify("  get   k  "), ["get", "k"]);
    }

    #[test]
    fn compares_parse() {
        let c = parse_compare(r#"value("k1") = "v1""#).unwrap();
        assert_eq!(c.key, b"k1");
        assert_eq!(
            c.target_union,
            Some(compare::TargetUnion::Value(b"v1".to_vec()))
        );
        let c = parse_compare(r#"mod("k1") > "0""#).unwrap();
        assert_eq!(c.result, compare::CompareResult::Greater as i32);
        assert_eq!(c.target_union, Some(compare::TargetUnion::ModRevision(0)));
        let e = parse_compare("nonsense").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (3, "malformed comparison: nonsense")
        );
        let e = parse_compare(r#"ver("k") = "x""#).unwrap_err();
        assert_eq!(e.message, r#"invalid txn compare request: ver("k") = "x""#);
    }

    #[test]
    fn requests_parse() {
        let op = parse_request("put x y --prev-kv").unwrap();
        let Some(request_op::Request::RequestPut(p)) = op.request else {
            panic!("not a put")
        };
        assert_eq!(
            (p.key.as_slice(), p.value.as_slice(), p.prev_kv),
            (&b"x"[..], &b"y"[..], true)
        );
        let op = parse_request("get a --prefix").unwrap();
        let Some(request_op::Request::RequestRange(r)) = op.request else {
            panic!("not a get")
        };
        assert_eq!(r.range_end, b"b");
        let e = parse_request("bogus x").unwrap_err();
        assert_eq!(e.message, "invalid txn request: bogus x");
        let e = parse_request("get").unwrap_err();
        assert_eq!(e.message, "invalid txn compare request: get");
    }
}
