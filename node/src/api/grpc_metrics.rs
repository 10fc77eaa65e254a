//! Counts every gRPC call for `/metrics` (`grpc_server_started_total`,
//! `grpc_server_handled_total`): the method comes from the request path,
//! the status from the response headers (an error answered at once) or
//! from the trailers at the end of the stream. A call whose stream the
//! client abandons counts as `Canceled`. It never alters what it counts.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http_body::{Body, Frame, SizeHint};

use crate::server::{GrpcCounters, GrpcMethod};

/// The method a request path (`/etcdserverpb.KV/Range`) names.
pub(super) fn method_of(path: &str) -> Option<GrpcMethod> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    if service.is_empty() || method.is_empty() || method.contains('/') {
        return None;
    }
    Some(GrpcMethod {
        kind: kind_of(service, method),
        service: service.to_string(),
        method: method.to_string(),
    })
}

/// grpc-prometheus' `grpc_type` of etcd's streaming methods; the rest are
/// unary.
fn kind_of(service: &str, method: &str) -> &'static str {
    match (service, method) {
        ("etcdserverpb.Watch", "Watch") | ("etcdserverpb.Lease", "LeaseKeepAlive") => "bidi_stream",
        ("etcdserverpb.Maintenance", "Snapshot") | ("v3electionpb.Election", "Observe") => {
            "server_stream"
        }
        _ => "unary",
    }
}

/// `grpc-status` as a number, if the headers carry one.
fn status_in(headers: &http::HeaderMap) -> Option<i32> {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// Counts the call's start now and its end when `response` says how it
/// ended.
pub(super) fn count(
    counters: Arc<GrpcCounters>,
    method: GrpcMethod,
    response: http::Response<tonic::body::Body>,
) -> http::Response<tonic::body::Body> {
    if let Some(code) = status_in(response.headers()) {
        counters.handled(&method, code);
        return response;
    }
    response.map(|inner| {
        tonic::body::Body::new(CountedBody {
            inner,
            end: Some((counters, method)),
        })
    })
}

/// A response body that records the call's status when its trailers pass.
struct CountedBody {
    inner: tonic::body::Body,
    /// Where to record the end; taken once recorded.
    end: Option<(Arc<GrpcCounters>, GrpcMethod)>,
}

impl CountedBody {
    fn record(&mut self, code: i32) {
        if let Some((counters, method)) = self.end.take() {
            counters.handled(&method, code);
        }
    }
}

impl Body for CountedBody {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(code) = frame.trailers_ref().and_then(status_in) {
                    self.record(code);
                }
            }
            Poll::Ready(Some(Err(status))) => {
                let code = status.code() as i32;
                self.record(code);
            }
            Poll::Ready(None) => self.record(tonic::Code::Ok as i32),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for CountedBody {
    fn drop(&mut self) {
        self.record(tonic::Code::Cancelled as i32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_service_method_and_kind() {
        let m = method_of("/etcdserverpb.Watch/Watch").unwrap();
        assert_eq!(
            (m.service.as_str(), m.method.as_str(), m.kind),
            ("etcdserverpb.Watch", "Watch", "bidi_stream")
        );
        assert_eq!(method_of("/etcdserverpb.KV/Range").unwrap().kind, "unary");
        assert!(method_of("/nope").is_none());
        assert!(method_of("/a/b/c").is_none());
        assert!(method_of("").is_none());
    }
}
