//! `get`, `put`, `del` and `compaction`, and the request builders that
//! `txn` shares (etcdctl's `getGetOp`, `getPutOp`, `getDelOp`).

use std::io::Read as _;

use cetera::proto::etcdserverpb::{
    CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest, range_request,
};
use clap::Args;

use crate::cli::{Ctx, parse_go_bool, parse_go_int};
use crate::client;
use crate::error::{CtlError, CtlResult, EXIT_BAD_FEATURE};
use crate::gofmt;

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct GetArgs {
    /// <key> [range_end]
    pub(crate) args: Vec<String>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub(crate) consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub(crate) order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long = "sort-by", default_value = "")]
    pub(crate) sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub(crate) limit: i64,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value = "0", value_parser = parse_go_int)]
    pub(crate) rev: i64,
    /// Get only the keys
    #[arg(long = "keys-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) keys_only: bool,
    /// Get only the count (not in etcdctl 3.4)
    #[arg(long = "count-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) count_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long = "print-value-only", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) print_value_only: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct PutArgs {
    /// <key> <value> (<value> can also be given from stdin)
    pub(crate) args: Vec<String>,
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub(crate) lease: String,
    /// return the previous key-value pair before modification
    #[arg(long = "prev-kv", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) prev_kv: bool,
    /// updates the key using its current value
    #[arg(long = "ignore-value", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long = "ignore-lease", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) ignore_lease: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct DelArgs {
    /// <key> [range_end]
    pub(crate) args: Vec<String>,
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) prefix: bool,
    /// return deleted key-value pairs
    #[arg(long = "prev-kv", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long = "from-key", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) from_key: bool,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct CompactionArgs {
    /// <revision>
    pub(crate) args: Vec<String>,
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", value_parser = parse_go_bool, action = clap::ArgAction::Set)]
    pub(crate) physical: bool,
}

/// The end of the range of keys starting with `prefix` (clientv3's
/// `GetPrefixRangeEnd`): the prefix with its last byte below 0xff
/// incremented; `\0` (everything) when there is none.
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

/// `(key, range_end)` for a key and the `--prefix` / `--from-key` flags.
fn key_range(
    mut key: Vec<u8>,
    mut end: Vec<u8>,
    prefix: bool,
    from_key: bool,
) -> (Vec<u8>, Vec<u8>) {
    if prefix {
        if key.is_empty() {
            key = vec![0];
            end = vec![0];
        } else {
            end = prefix_end(&key);
        }
    }
    if from_key {
        if key.is_empty() {
            key = vec![0];
        }
        end = vec![0];
    }
    (key, end)
}

/// etcdctl's `getGetOp`.
pub(crate) fn get_request(a: &GetArgs) -> CtlResult<RangeRequest> {
    if a.args.is_empty() {
        return Err(CtlError::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    }
    if a.prefix && a.from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let serializable = match a.consistency.as_str() {
        "s" => true,
        "l" => false,
        other => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!(
                    "unknown consistency flag {}",
                    gofmt::quote(other.as_bytes())
                ),
            ));
        }
    };
    let mut end = Vec::new();
    if a.args.len() > 1 {
        if a.prefix || a.from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        end = a.args[1].as_bytes().to_vec();
    }
    let mut sort_order = match a.order.to_uppercase().as_str() {
        "ASCEND" => range_request::SortOrder::Ascend,
        "DESCEND" => range_request::SortOrder::Descend,
        "" => range_request::SortOrder::None,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort order {}", a.order),
            ));
        }
    };
    let sort_target = match a.sort_by.to_uppercase().as_str() {
        "CREATE" => range_request::SortTarget::Create,
        "KEY" | "" => range_request::SortTarget::Key,
        "MODIFY" => range_request::SortTarget::Mod,
        "VALUE" => range_request::SortTarget::Value,
        "VERSION" => range_request::SortTarget::Version,
        _ => {
            return Err(CtlError::new(
                EXIT_BAD_FEATURE,
                format!("bad sort target {}", a.sort_by),
            ));
        }
    };
    // clientv3's WithSort: keys come back in ascending key order anyway.
    if sort_target == range_request::SortTarget::Key
        && sort_order == range_request::SortOrder::Ascend
    {
        sort_order = range_request::SortOrder::None;
    }
    let (key, range_end) = key_range(a.args[0].as_bytes().to_vec(), end, a.prefix, a.from_key);
    Ok(RangeRequest {
        key,
        range_end,
        limit: a.limit,
        revision: if a.rev > 0 { a.rev } else { 0 },
        sort_order: sort_order as i32,
        sort_target: sort_target as i32,
        serializable,
        keys_only: a.keys_only,
        count_only: a.count_only,
        ..Default::default()
    })
}

/// Reads the value from stdin (etcdctl's `argOrStdin`).
fn stdin_value() -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    match std::io::stdin().read_to_end(&mut buf) {
        Ok(_) if !buf.is_empty() => Some(buf),
        _ => None,
    }
}

/// etcdctl's `getPutOp`; `stdin` says whether a missing value may be read
/// from standard input (not inside `txn`, whose stdin is the transaction).
pub(crate) fn put_request(a: &PutArgs, stdin: bool) -> CtlResult<PutRequest> {
    let usage = "put command needs 1 argument and input from stdin or 2 arguments";
    if a.args.is_empty() {
        return Err(CtlError::bad_args(usage));
    }
    if a.ignore_value && a.args.len() > 1 {
        return Err(CtlError::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let value = if a.ignore_value {
        Vec::new()
    } else if let Some(v) = a.args.get(1) {
        v.as_bytes().to_vec()
    } else if stdin {
        stdin_value().ok_or_else(|| CtlError::bad_args(usage))?
    } else {
        return Err(CtlError::bad_args(usage));
    };
    let lease = gofmt::parse_hex_i64(&a.lease)
        .map_err(|e| CtlError::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: a.args[0].as_bytes().to_vec(),
        value,
        lease,
        prev_kv: a.prev_kv,
        ignore_value: a.ignore_value,
        ignore_lease: a.ignore_lease,
    })
}

/// etcdctl's `getDelOp`.
pub(crate) fn del_request(a: &DelArgs) -> CtlResult<DeleteRangeRequest> {
    if a.args.is_empty() || a.args.len() > 2 {
        return Err(CtlError::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    if a.prefix && a.from_key {
        return Err(CtlError::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut end = Vec::new();
    if a.args.len() > 1 {
        if a.prefix || a.from_key {
            return Err(CtlError::bad_args(
                "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
            ));
        }
        end = a.args[1].as_bytes().to_vec();
    }
    let (key, range_end) = key_range(a.args[0].as_bytes().to_vec(), end, a.prefix, a.from_key);
    Ok(DeleteRangeRequest {
        key,
        range_end,
        prev_kv: a.prev_kv,
    })
}

pub(crate) async fn get(ctx: &Ctx, a: GetArgs) -> CtlResult<()> {
    let req = get_request(&a)?;
    let c = ctx.client()?;
    let resp = c
        .unary(true, |ch| {
            let r = c.request(req.clone());
            async move { client::kv(ch).range(r).await }
        })
        .await?;
    let mut printer = ctx.printer()?;
    printer.value_only = a.print_value_only;
    printer.check_value_only()?;
    if a.count_only {
        printer.count(&resp)
    } else {
        printer.get(&resp)
    }
}

pub(crate) async fn put(ctx: &Ctx, a: PutArgs) -> CtlResult<()> {
    let req = put_request(&a, true)?;
    let c = ctx.client()?;
    let resp = c
        .unary(false, |ch| {
            let r = c.request(req.clone());
            async move { client::kv(ch).put(r).await }
        })
        .await?;
    ctx.printer()?.put(&resp)
}

pub(crate) async fn del(ctx: &Ctx, a: DelArgs) -> CtlResult<()> {
    let req = del_request(&a)?;
    let c = ctx.client()?;
    let resp = c
        .unary(false, |ch| {
            let r = c.request(req.clone());
            async move { client::kv(ch).delete_range(r).await }
        })
        .await?;
    ctx.printer()?.del(&resp)
}

pub(crate) async fn compaction(ctx: &Ctx, a: CompactionArgs) -> CtlResult<()> {
    if a.args.len() != 1 {
        return Err(CtlError::bad_args("compaction command needs 1 argument"));
    }
    let revision = gofmt::parse_int10(&a.args[0]).map_err(CtlError::error)?;
    let c = ctx.client()?;
    let req = CompactionRequest {
        revision,
        physical: a.physical,
    };
    c.unary(false, |ch| {
        let r = c.request(req);
        async move { client::kv(ch).compact(r).await }
    })
    .await?;
    crate::printer::out(format!("compacted revision {revision}\n"));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte_below_0xff() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), b"\x00");
    }

    #[test]
    fn get_builds_etcdctl_requests() {
        let a = GetArgs {
            args: vec!["k".into()],
            prefix: true,
            consistency: "s".into(),
            order: "ascend".into(),
            sort_by: "key".into(),
            ..Default::default()
        };
        let r = get_request(&a).unwrap();
        assert_eq!(r.range_end, b"l");
        assert!(r.serializable);
        // Ascending by key is what the server does anyway.
        assert_eq!(r.sort_order, 0);
        let empty_prefix = GetArgs {
            args: vec![String::new()],
            prefix: true,
            consistency: "l".into(),
            ..Default::default()
        };
        let r = get_request(&empty_prefix).unwrap();
        assert_eq!((r.key, r.range_end), (vec![0], vec![0]));
        let bad = GetArgs {
            args: vec!["k".into()],
            consistency: "x".into(),
            ..Default::default()
        };
        let e = get_request(&bad).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (4, "unknown consistency flag \"x\"")
        );
    }

    #[test]
    fn put_rejects_bad_lease_ids() {
        let a = PutArgs {
            args: vec!["k".into(), "v".into()],
            lease: "zz".into(),
            ..Default::default()
        };
        let e = put_request(&a, false).unwrap_err();
        assert_eq!(e.code, 128);
        assert_eq!(
            e.message,
            "bad lease ID (strconv.ParseInt: parsing \"zz\": invalid syntax), expecting ID in Hex"
        );
    }
}
