//! `/v2/keys`: decode the request, make one `Node` call, write etcd's
//! answer (and for a wait, hold the response open until an event comes).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::render::{error_body, event_body};
use super::request::{KeyMethod, KeyRequest, RawRequest, decode};
use super::{allow, with_cluster_id};
use crate::server::{Node, ServerError, V2Answer, V2Wait};
use crate::v2store::{ErrorCode, V2Error, V2Op, WatchSignal};

/// How long a wait may stay open, as in etcd.
const WAIT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// The methods `/v2/keys` answers (etcd's `Allow` header order).
const ALLOWED: &str = "HEAD,GET,PUT,POST,DELETE";

/// A keys request as it arrived.
pub(super) struct KeysCall<'a> {
    pub(super) method: &'a str,
    /// The decoded path after `/v2/keys`.
    pub(super) path: &'a str,
    pub(super) query: &'a [u8],
    pub(super) content_type: Option<&'a str>,
    pub(super) body: &'a [u8],
}

pub(super) async fn serve(node: Arc<Node>, call: KeysCall<'_>) -> Response {
    let Some(method) = KeyMethod::parse(call.method) else {
        return allow(ALLOWED);
    };
    let raw = RawRequest {
        method,
        path: call.path,
        query: call.query,
        content_type: call.content_type,
        body: call.body,
    };
    let response = match decode(&raw) {
        Ok(request) => answer(&node, method, request).await,
        Err(e) => error_response(&e),
    };
    with_cluster_id(&node, response)
}

async fn answer(node: &Arc<Node>, method: KeyMethod, req: KeyRequest) -> Response {
    let no_value = req.no_value_on_success;
    let outcome = match method {
        // etcd turns a quorum GET into a linearizable get, wait or not.
        KeyMethod::Get if req.quorum => node.v2_get(&req.path, req.recursive, true).await,
        KeyMethod::Get if req.wait => {
            return match node
                .v2_watch(&req.path, req.recursive, req.wait_index)
                .await
            {
                Ok(wait) => wait_response(node, wait, req.stream),
                Err(e) => error_response(&v2_error(e)),
            };
        }
        KeyMethod::Get | KeyMethod::Head => node.v2_get(&req.path, req.recursive, false).await,
        KeyMethod::Put => {
            let op = V2Op::for_put(crate::v2store::PutRequest {
                path: req.path,
                value: req.value,
                dir: req.dir,
                prev_exist: req.prev_exist,
                prev_value: req.prev_value,
                prev_index: req.prev_index,
                ttl: req.ttl,
                refresh: req.refresh.unwrap_or(false),
            });
            node.v2_write(op).await
        }
        KeyMethod::Post => {
            node.v2_write(V2Op::for_post(req.path, req.dir, req.value, req.ttl))
                .await
        }
        KeyMethod::Delete => {
            let op = V2Op::for_delete(
                req.path,
                req.dir,
                req.recursive,
                req.prev_value,
                req.prev_index,
            );
            node.v2_write(op).await
        }
    };
    match outcome {
        Ok(answer) => event_response(&answer, no_value),
        Err(e) => error_response(&v2_error(e)),
    }
}

/// What a failed request answers: the store's own error, or etcd's 300
/// for a request that could not be committed.
fn v2_error(error: ServerError) -> V2Error {
    let cause = match error {
        ServerError::V2(e) => return e,
        // etcd reports a proposal that found no leader as timed out.
        ServerError::NoLeader | ServerError::Timeout => "etcdserver: request timed out".into(),
        other => {
            tracing::warn!(error = %other, "v2 request failed");
            format!("etcdserver: {other}")
        }
    };
    V2Error::request(ErrorCode::RaftInternal, cause)
}

fn header_value(n: u64) -> HeaderValue {
    HeaderValue::from(n)
}

fn json_response(status: StatusCode, body: String) -> Response {
    json_headers(status, Response::new(body.into()))
}

fn json_headers(status: StatusCode, mut response: Response) -> Response {
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(super) fn error_response(error: &V2Error) -> Response {
    let status = StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
    let mut response = json_response(status, error_body(error));
    response
        .headers_mut()
        .insert("x-etcd-index", header_value(error.index));
    response
}

fn event_response(answer: &V2Answer, no_value_on_success: bool) -> Response {
    let status = if answer.event.is_created() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = json_response(status, event_body(&answer.event, no_value_on_success));
    let headers = response.headers_mut();
    headers.insert("x-etcd-index", header_value(answer.event.etcd_index));
    headers.insert("x-raft-index", header_value(answer.raft_index));
    headers.insert("x-raft-term", header_value(answer.raft_term));
    response
}

/// A wait: the headers go out at once (as etcd flushes them), the event
/// follows when it happens; with `stream`, every event follows, one JSON
/// object per line. The wait ends after [`WAIT_TIMEOUT`], when the member
/// starts to stop, when the client
/// goes away (the response body is dropped, which drops the waiter), or
/// when the waiter is dropped for falling behind.
fn wait_response(node: &Node, wait: V2Wait, stream: bool) -> Response {
    let V2Wait {
        mut watch,
        raft_index,
        raft_term,
    } = wait;
    let start_index = watch.start_index();
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(4);
    let stopping = node.stopping();
    tokio::spawn(async move {
        let deadline = tokio::time::sleep(WAIT_TIMEOUT);
        tokio::pin!(deadline, stopping);
        loop {
            let signal = tokio::select! {
                () = tx.closed() => break,
                () = &mut deadline => break,
                // A stopping member ends the wait as its timeout does (an
                // empty body), and v2 clients wait again elsewhere.
                () = &mut stopping => break,
                signal = watch.next() => signal,
            };
            let chunk = match signal {
                Some(WatchSignal::Event(event)) => event_body(&event, false),
                Some(WatchSignal::Cleared) => {
                    let _ = tx
                        .send(Ok(error_body(&V2Error::new(
                            ErrorCode::WatcherCleared,
                            "",
                            start_index,
                        ))
                        .into()))
                        .await;
                    break;
                }
                None => break,
            };
            if tx.send(Ok(chunk.into())).await.is_err() || !stream {
                break;
            }
        }
    });
    let mut response = json_headers(
        StatusCode::OK,
        warp::reply::Reply::into_response(warp::reply::stream(ReceiverStream::new(rx))),
    );
    let headers = response.headers_mut();
    headers.insert("x-etcd-index", header_value(start_index));
    headers.insert("x-raft-index", header_value(raft_index));
    headers.insert("x-raft-term", header_value(raft_term));
    response
}
