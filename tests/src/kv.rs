//! Small conveniences over the generated etcd gRPC types
//! (`cetera::proto::etcdserverpb`), so tests read like the behaviour they
//! check instead of like protobuf plumbing.

use anyhow::{Context, Result, bail};
use cetera::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
use cetera::proto::etcdserverpb::kv_client::KvClient;
use cetera::proto::etcdserverpb::request_op::Request;
use cetera::proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, PutResponse, RangeRequest, RangeResponse, RequestOp,
    ResponseHeader,
};
use cetera::proto::mvccpb::KeyValue;
use tonic::transport::Channel;

/// A KV client over a channel.
pub type Kv = KvClient<Channel>;

/// The `range_end` that makes a range cover every key starting with
/// `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // all keys
}

/// The revision in a response header (0 if the header is missing).
pub fn rev(header: &Option<ResponseHeader>) -> i64 {
    header.as_ref().map_or(0, |h| h.revision)
}

/// `Put key=value`.
pub async fn put(kv: &mut Kv, key: &str, value: &str) -> Result<PutResponse> {
    Ok(kv
        .put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })
        .await
        .with_context(|| format!("put {key}"))?
        .into_inner())
}

/// Linearizable `Range` of one key.
pub async fn get(kv: &mut Kv, key: &str) -> Result<Option<KeyValue>> {
    let resp = range(
        kv,
        RangeRequest {
            key: key.into(),
            ..Default::default()
        },
    )
    .await?;
    if resp.kvs.len() > 1 {
        bail!("get {key} returned {} kvs", resp.kvs.len());
    }
    Ok(resp.kvs.into_iter().next())
}

/// The value of `key`, as UTF-8, if it exists.
pub async fn get_value(kv: &mut Kv, key: &str) -> Result<Option<String>> {
    Ok(get(kv, key)
        .await?
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()))
}

/// Any `Range`.
pub async fn range(kv: &mut Kv, req: RangeRequest) -> Result<RangeResponse> {
    let what = format!("range {req:?}");
    Ok(kv.range(req).await.context(what)?.into_inner())
}

/// `Range` over every key with `prefix`, linearizable or serializable.
pub async fn range_prefix(kv: &mut Kv, prefix: &str, serializable: bool) -> Result<RangeResponse> {
    range(
        kv,
        RangeRequest {
            key: prefix.into(),
            range_end: prefix_end(prefix.as_bytes()),
            serializable,
            ..Default::default()
        },
    )
    .await
}

/// Current store revision as seen by a linearizable read.
pub async fn current_revision(kv: &mut Kv) -> Result<i64> {
    let resp = range(
        kv,
        RangeRequest {
            key: b"\0".to_vec(),
            count_only: true,
            ..Default::default()
        },
    )
    .await?;
    Ok(rev(&resp.header))
}

/// `(key, value)` pairs of kvs, as strings.
pub fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into_owned(),
                String::from_utf8_lossy(&kv.value).into_owned(),
            )
        })
        .collect()
}

/// Keys of kvs, as strings.
pub fn keys(kvs: &[KeyValue]) -> Vec<String> {
    kvs.iter()
        .map(|kv| String::from_utf8_lossy(&kv.key).into_owned())
        .collect()
}

/// A txn op `Put key=value`.
pub fn put_op(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestPut(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

/// A txn op `Range key`.
pub fn get_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestRange(RangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

/// A txn op `DeleteRange key`.
pub fn del_op(key: &str) -> RequestOp {
    RequestOp {
        request: Some(Request::RequestDeleteRange(DeleteRangeRequest {
            key: key.into(),
            ..Default::default()
        })),
    }
}

/// A txn compare on one key.
pub fn compare(key: &str, result: CompareResult, target: TargetUnion) -> Compare {
    let target_kind = match target {
        TargetUnion::Version(_) => CompareTarget::Version,
        TargetUnion::CreateRevision(_) => CompareTarget::Create,
        TargetUnion::ModRevision(_) => CompareTarget::Mod,
        TargetUnion::Value(_) => CompareTarget::Value,
        TargetUnion::Lease(_) => CompareTarget::Lease,
    };
    Compare {
        result: result as i32,
        target: target_kind as i32,
        key: key.into(),
        range_end: Vec::new(),
        target_union: Some(target),
    }
}

/// Fails unless `result` is a gRPC error with `code` and exactly `message`.
pub fn expect_status<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: tonic::Code,
    message: &str,
) -> Result<()> {
    match result {
        Ok(value) => bail!("expected {code:?} {message:?}, got success: {value:?}"),
        Err(status) => {
            if status.code() != code || status.message() != message {
                bail!(
                    "expected {code:?} {message:?}, got {:?} {:?}",
                    status.code(),
                    status.message()
                );
            }
            Ok(())
        }
    }
}

/// A background writer that puts `w/00000`, `w/00001`, ... through one
/// member until stopped, remembering which puts were acknowledged: the
/// "no acknowledged write is lost" check of resizing and failover tests.
pub struct Writer {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Writer {
    /// Starts writing through `kv`.
    pub fn start(mut kv: Kv) -> Writer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let task = tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stopping.load(Ordering::Relaxed) {
                let key = format!("w/{i:05}");
                let put = PutRequest {
                    key: key.clone().into_bytes(),
                    value: b"v".to_vec(),
                    ..Default::default()
                };
                if kv.put(put).await.is_ok() {
                    acknowledged.push(key);
                }
                i += 1;
            }
            acknowledged
        });
        Writer { stop, task }
    }

    /// Stops writing; returns the acknowledged keys, in order.
    pub async fn finish(self) -> Result<Vec<String>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(self.task.await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte_below_ff() {
        assert_eq!(prefix_end(b"a"), b"b");
        assert_eq!(prefix_end(b"a/"), b"a0");
        assert_eq!(prefix_end(b"a\xff"), b"b");
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
