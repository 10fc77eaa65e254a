//! etcd's v3 JSON gateway: `POST /v3/<service>/<method>` with a JSON body,
//! answered by the same handler as the gRPC method.
//!
//! etcd serves its gRPC services over HTTP/JSON through grpc-gateway 1.9.5
//! with `jsonpb` (`OrigName: true`); clients such as etcd3gw depend on its
//! exact behaviour, captured in `reference/etcd-api.md` section 2:
//!
//! - every route is `POST`; another method on a known route answers
//!   `405 Method Not Allowed`, an unknown `/v3/` path `404 Not Found`
//!   (plain text, as Go's `http.Error`); `/v3beta/` is rewritten to `/v3/`
//!   (older clients pick the prefix from `/version`), `/v3alpha/` is not
//!   served (etcd 3.4 dropped it); `/v3` redirects to `/v3/` like Go's
//!   `ServeMux`. Paths arrive percent-decoded and clean (`api::go_mux`);
//! - the body is read as Go's `json.Decoder` reads it: an empty body is an
//!   empty request, only the first value counts for a unary call, and a
//!   streaming call reads values one after another as they arrive;
//! - success is `200` with the response as JSON ([`codec`]); streams
//!   answer chunked newline-delimited `{"result":{...}}` objects;
//! - errors are `{"error":m,"message":m,"code":c}` with grpc-gateway's
//!   HTTP status for the gRPC code ([`http_status`]); the code and message
//!   are the gRPC handler's (`api::to_status`); malformed input gets Go's
//!   own error text (code 3, or 2 on the first message of a client stream,
//!   as etcd answers), and a request over the gRPC receive limit etcd's
//!   `grpc: received message larger than max` (code 8, the rest of the
//!   body read and dropped so the client sees the answer); Go also
//!   announces a `Grpc-Trailer-Content-Type` trailer on errors, which
//!   carries nothing clients read and is not sent here;
//! - a stream that fails before its first response answers like a unary
//!   error; one that fails later ends with
//!   `{"error":{"grpc_code":..,"http_code":..,"message":..,"http_status":..}}`.
//!
//! One implementation: the gateway has no handler of its own. [`ROUTES`]
//! maps each path to its gRPC method; the request's JSON becomes that
//! method's protobuf message ([`codec`], driven by the descriptor set), and
//! the message goes to the member's own gRPC services in process
//! ([`loopback`]), exactly as etcd's gateway calls its server over a
//! loopback connection. So every method answers as its gRPC method does,
//! including the ones cetera does not implement yet, and a method
//! implemented later in `grpc.rs` works here with no change.
//!
//! The `Authorization` header goes to the gRPC call as `authorization`
//! metadata and `Grpc-Metadata-<key>` headers as `<key>`, as grpc-gateway
//! forwards them. etcd's `200` to `OPTIONS` on any path is here too
//! ([`routes`]); the CORS headers on every answer are `api::http`'s.
//! Websocket upgrades of streams (etcd's `grpc-websocket-proxy`) are not
//! supported.

mod codec;
mod json;
mod loopback;
#[cfg(test)]
mod proptests;
mod schema;

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::{Code, Status};
use warp::Filter;
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::server::Node;
use json::{Decoder, Read};
use loopback::BoxStream;
use schema::Schema;

/// A message's protobuf encoding.
type Wire = Vec<u8>;

/// Every path of etcd 3.4's gateway and the gRPC method it calls
/// (`package.Service/Method`).
pub const ROUTES: &[(&str, &str)] = &[
    ("/v3/kv/range", "etcdserverpb.KV/Range"),
    ("/v3/kv/put", "etcdserverpb.KV/Put"),
    ("/v3/kv/deleterange", "etcdserverpb.KV/DeleteRange"),
    ("/v3/kv/txn", "etcdserverpb.KV/Txn"),
    ("/v3/kv/compaction", "etcdserverpb.KV/Compact"),
    ("/v3/watch", "etcdserverpb.Watch/Watch"),
    ("/v3/lease/grant", "etcdserverpb.Lease/LeaseGrant"),
    ("/v3/lease/revoke", "etcdserverpb.Lease/LeaseRevoke"),
    ("/v3/kv/lease/revoke", "etcdserverpb.Lease/LeaseRevoke"),
    ("/v3/lease/keepalive", "etcdserverpb.Lease/LeaseKeepAlive"),
    ("/v3/lease/timetolive", "etcdserverpb.Lease/LeaseTimeToLive"),
    (
        "/v3/kv/lease/timetolive",
        "etcdserverpb.Lease/LeaseTimeToLive",
    ),
    ("/v3/lease/leases", "etcdserverpb.Lease/LeaseLeases"),
    ("/v3/kv/lease/leases", "etcdserverpb.Lease/LeaseLeases"),
    ("/v3/cluster/member/add", "etcdserverpb.Cluster/MemberAdd"),
    (
        "/v3/cluster/member/remove",
        "etcdserverpb.Cluster/MemberRemove",
    ),
    (
        "/v3/cluster/member/update",
        "etcdserverpb.Cluster/MemberUpdate",
    ),
    ("/v3/cluster/member/list", "etcdserverpb.Cluster/MemberList"),
    (
        "/v3/cluster/member/promote",
        "etcdserverpb.Cluster/MemberPromote",
    ),
    ("/v3/maintenance/alarm", "etcdserverpb.Maintenance/Alarm"),
    ("/v3/maintenance/status", "etcdserverpb.Maintenance/Status"),
    (
        "/v3/maintenance/defragment",
        "etcdserverpb.Maintenance/Defragment",
    ),
    // HashKV shares this path in etcd 3.4; only Hash is reachable.
    ("/v3/maintenance/hash", "etcdserverpb.Maintenance/Hash"),
    (
        "/v3/maintenance/snapshot",
        "etcdserverpb.Maintenance/Snapshot",
    ),
    (
        "/v3/maintenance/transfer-leadership",
        "etcdserverpb.Maintenance/MoveLeader",
    ),
    ("/v3/lock/lock", "v3lockpb.Lock/Lock"),
    ("/v3/lock/unlock", "v3lockpb.Lock/Unlock"),
    ("/v3/election/campaign", "v3electionpb.Election/Campaign"),
    ("/v3/election/proclaim", "v3electionpb.Election/Proclaim"),
    ("/v3/election/leader", "v3electionpb.Election/Leader"),
    ("/v3/election/observe", "v3electionpb.Election/Observe"),
    ("/v3/election/resign", "v3electionpb.Election/Resign"),
    ("/v3/auth/enable", "etcdserverpb.Auth/AuthEnable"),
    ("/v3/auth/disable", "etcdserverpb.Auth/AuthDisable"),
    ("/v3/auth/authenticate", "etcdserverpb.Auth/Authenticate"),
    ("/v3/auth/user/add", "etcdserverpb.Auth/UserAdd"),
    ("/v3/auth/user/get", "etcdserverpb.Auth/UserGet"),
    ("/v3/auth/user/list", "etcdserverpb.Auth/UserList"),
    ("/v3/auth/user/delete", "etcdserverpb.Auth/UserDelete"),
    (
        "/v3/auth/user/changepw",
        "etcdserverpb.Auth/UserChangePassword",
    ),
    ("/v3/auth/user/grant", "etcdserverpb.Auth/UserGrantRole"),
    ("/v3/auth/user/revoke", "etcdserverpb.Auth/UserRevokeRole"),
    ("/v3/auth/role/add", "etcdserverpb.Auth/RoleAdd"),
    ("/v3/auth/role/get", "etcdserverpb.Auth/RoleGet"),
    ("/v3/auth/role/list", "etcdserverpb.Auth/RoleList"),
    ("/v3/auth/role/delete", "etcdserverpb.Auth/RoleDelete"),
    (
        "/v3/auth/role/grant",
        "etcdserverpb.Auth/RoleGrantPermission",
    ),
    (
        "/v3/auth/role/revoke",
        "etcdserverpb.Auth/RoleRevokePermission",
    ),
];

fn route(path: &str) -> Option<&'static str> {
    ROUTES
        .iter()
        .find(|(p, _)| *p == path)
        .map(|(_, method)| *method)
}

// ----------------------------------------------------------------------
// HTTP.

/// grpc-gateway's `HTTPStatusFromCode`.
pub(crate) fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::Cancelled => StatusCode::REQUEST_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// Where a path goes.
enum Target {
    /// `/v3`: Go's `ServeMux` redirects to the `/v3/` subtree.
    Redirect,
    /// A `/v3/` path, after the `/v3beta/` rewrite.
    Gateway(String),
}

/// etcd 3.4 serves `/v3beta/...` as `/v3/...` (older clients pick the
/// prefix from `/version`); the rewrite happens before Go's mux cleans the
/// path, so it applies to the decoded path.
pub(super) fn rewrite_beta(path: &str) -> String {
    match path.strip_prefix("/v3beta/") {
        Some(rest) => format!("/v3/{rest}"),
        None => path.to_string(),
    }
}

/// Where a decoded path goes, if to the gateway.
fn target(path: &str) -> Option<Target> {
    if path == "/v3" {
        return Some(Target::Redirect);
    }
    let path = rewrite_beta(path);
    path.starts_with("/v3/").then_some(Target::Gateway(path))
}

/// The gateway's routes, and etcd's `200` to an `OPTIONS` request on any
/// path. Other paths are rejected for the remaining routes to handle.
pub(super) fn routes(
    node: Arc<Node>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let services = super::grpc::routes(node.clone());
    let limit = node.config().grpc_max_recv_bytes();
    let preflight = warp::options().map(|| Response::new(Bytes::new().into()));
    let gateway = warp::path::full()
        .and_then(|path: warp::path::FullPath| async move {
            super::go_mux::decode(path.as_str())
                .and_then(|path| target(&path))
                .ok_or_else(warp::reject::not_found)
        })
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(move |target, method, headers, body| {
            serve(
                services.clone(),
                limit,
                target,
                method,
                headers,
                body_stream(body),
            )
        });
    preflight.or(gateway).unify()
}

fn body_stream<S, B>(body: S) -> BoxStream<Result<Bytes, String>>
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    Box::pin(body.map(|chunk| {
        chunk
            .map(|mut buf| buf.copy_to_bytes(buf.remaining()))
            .map_err(|e| e.to_string())
    }))
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = Response::new(text.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    response
}

fn json_response(status: StatusCode, body: String, success: bool) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if success {
        // The gRPC response header etcd's gateway passes on.
        headers.insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
    }
    response
}

/// grpc-gateway's error body: `{"error":m,"message":m,"code":c}`, through
/// jsonpb (so an empty message is omitted).
fn error_body(status: &Status) -> String {
    let mut body = String::from("{");
    if !status.message().is_empty() {
        body.push_str("\"error\":");
        json::write_string(&mut body, status.message());
        body.push_str(",\"message\":");
        json::write_string(&mut body, status.message());
        body.push(',');
    }
    body.push_str(&format!("\"code\":{}}}", status.code() as i32));
    body
}

fn error_response(status: &Status) -> Response {
    json_response(http_status(status.code()), error_body(status), false)
}

/// The chunk that ends a stream that fails after answering.
fn error_chunk(status: &Status) -> Bytes {
    let http = http_status(status.code());
    let mut body = format!(
        "{{\"error\":{{\"grpc_code\":{},\"http_code\":{}",
        status.code() as i32,
        http.as_u16()
    );
    if !status.message().is_empty() {
        body.push_str(",\"message\":");
        json::write_string(&mut body, status.message());
    }
    body.push_str(",\"http_status\":");
    json::write_string(&mut body, http.canonical_reason().unwrap_or(""));
    body.push_str("}}");
    Bytes::from(body)
}

fn encode_status(e: codec::EncodeError) -> Status {
    tracing::error!(error = %e, "gateway response encoding failed");
    Status::internal(e.to_string())
}

/// The JSON of a response.
fn response_json(output: &str, wire: &[u8]) -> Result<String, Status> {
    codec::to_json(Schema::get(), output, wire).map_err(encode_status)
}

/// One stream chunk: `{"result":...}` and a newline.
fn result_chunk(output: &str, wire: &[u8]) -> Result<Bytes, Status> {
    let json = response_json(output, wire)?;
    Ok(Bytes::from(format!("{{\"result\":{json}}}\n")))
}

/// The status etcd answers for a request over the gRPC receive limit.
fn too_large(size: usize, limit: usize) -> Status {
    Status::resource_exhausted(format!(
        "grpc: received message larger than max ({size} vs. {limit})"
    ))
}

/// One request message from its JSON, as a gRPC message for the node.
fn request_wire(input: &str, raw: &[u8]) -> Result<Wire, String> {
    codec::from_json(Schema::get(), input, raw)
}

/// How many body bytes one request may take while it is being read: JSON
/// spells bytes in base64, so allow well over the message limit. Go's
/// gateway buffers any body and reports the encoded message's size; past
/// this cap cetera stops buffering and reports the body's size instead.
/// (Only a body made mostly of white space or unknown fields could be this
/// large and still encode within the limit; etcd would accept it.)
fn body_limit(limit: usize) -> usize {
    limit.saturating_mul(4).saturating_add(64 * 1024)
}

/// Reads the one request of a unary or server-streaming call: the first
/// JSON value of the body (an empty body is an empty request).
async fn read_request(
    body: &mut BoxStream<Result<Bytes, String>>,
    input: &str,
    limit: usize,
) -> Result<Wire, Status> {
    let mut decoder = Decoder::new();
    let mut eof = false;
    loop {
        match decoder.next(eof).map_err(Status::invalid_argument)? {
            Read::Value(raw) => {
                let wire = request_wire(input, &raw).map_err(Status::invalid_argument)?;
                if wire.len() > limit {
                    return Err(too_large(wire.len(), limit));
                }
                return Ok(wire);
            }
            Read::End => return Ok(Wire::new()),
            Read::NeedMore => {}
        }
        if decoder.buffered() > body_limit(limit) {
            let size = decoder.buffered() + drain(body).await;
            return Err(too_large(size, limit));
        }
        match body.next().await {
            Some(Ok(chunk)) => decoder.push(&chunk),
            Some(Err(e)) => return Err(Status::invalid_argument(e)),
            None => eof = true,
        }
    }
}

/// Reads and drops the rest of a body, so that the client, still sending,
/// gets the answer rather than a reset connection; returns its size.
async fn drain(body: &mut BoxStream<Result<Bytes, String>>) -> usize {
    let mut size = 0usize;
    while let Some(Ok(chunk)) = body.next().await {
        size = size.saturating_add(chunk.len());
    }
    size
}

/// Reads the requests of a client stream as they arrive. A request that
/// cannot be read ends the stream; etcd answers `Unknown` with Go's error
/// if that is the first one.
fn read_requests(
    mut body: BoxStream<Result<Bytes, String>>,
    input: String,
    limit: usize,
) -> mpsc::Receiver<Result<Wire, Status>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut decoder = Decoder::new();
        let mut eof = false;
        loop {
            let request = match decoder.next(eof) {
                Ok(Read::Value(raw)) => match request_wire(&input, &raw) {
                    Ok(wire) if wire.len() > limit => Err(too_large(wire.len(), limit)),
                    Ok(wire) => Ok(wire),
                    Err(e) => Err(Status::unknown(e)),
                },
                Ok(Read::End) => break,
                Ok(Read::NeedMore) => {
                    if decoder.buffered() > body_limit(limit) {
                        Err(too_large(decoder.buffered(), limit))
                    } else {
                        // Once the call has ended (a stopping member ends
                        // streams), nobody reads on: let the body go.
                        let next = tokio::select! {
                            () = tx.closed() => break,
                            next = body.next() => next,
                        };
                        match next {
                            Some(Ok(chunk)) => decoder.push(&chunk),
                            Some(Err(e)) => {
                                tracing::debug!(error = %e, "gateway stream request body failed");
                                break;
                            }
                            None => eof = true,
                        }
                        continue;
                    }
                }
                Err(e) => Err(Status::unknown(e)),
            };
            let failed = request.is_err();
            if tx.send(request).await.is_err() || failed {
                break;
            }
        }
    });
    rx
}

/// Answers with a stream of responses. Nothing is sent before the first
/// response, so a call that fails at once answers like a unary error.
async fn stream_response(
    output: String,
    mut responses: BoxStream<Result<Wire, Status>>,
) -> Response {
    let first = match responses.next().await {
        Some(Err(status)) => return error_response(&status),
        Some(Ok(wire)) => match result_chunk(&output, &wire) {
            Ok(chunk) => Some(chunk),
            Err(status) => return error_response(&status),
        },
        None => None,
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    let answered = first.is_some();
    if let Some(first) = first {
        tokio::spawn(async move {
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            loop {
                let next = tokio::select! {
                    () = tx.closed() => break,
                    next = responses.next() => next,
                };
                let chunk = match next.map(|r| r.and_then(|wire| result_chunk(&output, &wire))) {
                    None => break,
                    Some(Ok(chunk)) => chunk,
                    Some(Err(status)) => {
                        let _ = tx.send(Ok(error_chunk(&status))).await;
                        break;
                    }
                };
                if tx.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
        });
    }
    let mut response =
        warp::reply::Reply::into_response(warp::reply::stream(ReceiverStream::new(rx)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if answered {
        headers.insert(
            "grpc-metadata-content-type",
            HeaderValue::from_static("application/grpc"),
        );
    }
    response
}

/// The requests of a client stream: `first`, then the rest until one
/// cannot be read (the client half-closes there, as etcd's gateway does).
fn client_stream(first: Wire, rest: mpsc::Receiver<Result<Wire, Status>>) -> BoxStream<Wire> {
    let rest = ReceiverStream::new(rest)
        .take_while(|request| std::future::ready(request.is_ok()))
        .filter_map(|request| std::future::ready(request.ok()));
    Box::pin(futures::stream::once(std::future::ready(first)).chain(rest))
}

/// The gRPC metadata grpc-gateway forwards: `Authorization` as
/// `authorization`, and `Grpc-Metadata-<key>` as `<key>`.
fn forwarded_metadata(headers: &HeaderMap) -> HeaderMap {
    let mut metadata = HeaderMap::new();
    for (name, value) in headers {
        if name == header::AUTHORIZATION {
            metadata.append(name.clone(), value.clone());
        } else if let Some(key) = name.as_str().strip_prefix("grpc-metadata-")
            && let Ok(key) = HeaderName::from_bytes(key.as_bytes())
        {
            metadata.append(key, value.clone());
        }
    }
    metadata
}

async fn serve(
    services: Routes,
    limit: usize,
    target: Target,
    method: Method,
    headers: HeaderMap,
    mut body: BoxStream<Result<Bytes, String>>,
) -> Response {
    let path = match target {
        Target::Redirect => return super::go_mux::redirect("/v3/", &method),
        Target::Gateway(path) => path,
    };
    let Some(grpc_method) = route(&path).map(str::to_string) else {
        return plain(StatusCode::NOT_FOUND, "Not Found\n");
    };
    if method != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    }
    let Some(schema) = Schema::get().method(&grpc_method).cloned() else {
        return error_response(&Status::internal(format!(
            "gateway: no schema for {grpc_method}"
        )));
    };
    let requests: BoxStream<Wire> = if schema.client_streaming {
        let mut requests = read_requests(body, schema.input.clone(), limit);
        match requests.recv().await {
            None => Box::pin(futures::stream::empty()),
            // etcd answers a first request it cannot read with Unknown.
            Some(Err(status)) => return error_response(&status),
            Some(Ok(first)) => client_stream(first, requests),
        }
    } else {
        match read_request(&mut body, &schema.input, limit).await {
            Ok(request) => Box::pin(futures::stream::once(std::future::ready(request))),
            Err(status) => return error_response(&status),
        }
    };
    let metadata = forwarded_metadata(&headers);
    let mut responses = loopback::call(services, grpc_method, metadata, requests).await;
    if schema.server_streaming {
        return stream_response(schema.output.clone(), responses).await;
    }
    let answer = match responses.next().await {
        Some(answer) => answer,
        None => Err(Status::internal("gateway: no response message")),
    };
    match answer.and_then(|wire| response_json(&schema.output, &wire)) {
        Ok(json) => json_response(StatusCode::OK, json, true),
        Err(status) => error_response(&status),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_a_method_of_the_protos() {
        let schema = Schema::get();
        for (path, method) in ROUTES {
            assert!(schema.method(method).is_some(), "{path}: {method}");
            assert_eq!(route(path), Some(*method));
        }
        assert!(route("/v3/kv/nope").is_none());
        assert!(route("/v3/lease/keepalive").is_some());
        assert!(
            route("/v3/kv/lease/keepalive").is_none(),
            "no alias in etcd"
        );
    }

    #[test]
    fn authorization_and_grpc_metadata_headers_are_forwarded() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("tok"));
        headers.insert("grpc-metadata-hasleader", HeaderValue::from_static("true"));
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/json"));
        let metadata = forwarded_metadata(&headers);
        assert_eq!(metadata.len(), 2);
        assert_eq!(metadata["authorization"], "tok");
        assert_eq!(metadata["hasleader"], "true");
    }

    #[test]
    fn paths_rewrite_and_redirect_as_etcd() {
        assert!(matches!(target("/v3beta/kv/put"), Some(Target::Gateway(p)) if p == "/v3/kv/put"));
        assert!(target("/v3beta").is_none());
        assert!(matches!(target("/v3"), Some(Target::Redirect)));
        assert!(target("/v3alpha/kv/put").is_none());
        assert!(target("/health").is_none());
    }

    #[test]
    fn errors_use_grpc_gateway_bodies_and_statuses() {
        let status = Status::invalid_argument("etcdserver: key is not provided");
        assert_eq!(
            error_body(&status),
            r#"{"error":"etcdserver: key is not provided","message":"etcdserver: key is not provided","code":3}"#
        );
        assert_eq!(error_body(&Status::unimplemented("")), r#"{"code":12}"#);
        assert_eq!(
            error_chunk(&Status::unavailable("etcdserver: no leader")),
            Bytes::from(
                r#"{"error":{"grpc_code":14,"http_code":503,"message":"etcdserver: no leader","http_status":"Service Unavailable"}}"#
            )
        );
        for (code, http) in [
            (Code::InvalidArgument, 400),
            (Code::OutOfRange, 400),
            (Code::NotFound, 404),
            (Code::FailedPrecondition, 412),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::Unknown, 500),
            (Code::Unavailable, 503),
            (Code::DeadlineExceeded, 504),
            (Code::ResourceExhausted, 429),
            (Code::Unimplemented, 501),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }
}
