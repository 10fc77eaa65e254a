//! The peer URL's HTTP server: Raft RPCs and forwarded work from other
//! members, postcard in and out.
//!
//! Every request must carry this cluster's id; a member of another cluster
//! is refused with 412 so it can never vote or append here. Handlers only
//! decode, call the node or Raft, and encode.
//!
//! A leader's AppendEntries, and the calls other members make for their
//! clients (forwarded proposals, read-index questions, lease renewals),
//! arrive on connections upgraded from a request that passed the same
//! checks ([`stream_route`]); each append or call on them is checked again
//! for a removed sender.
//!
//! On an `https://` peer URL, TLS terminates here first ([`serve`],
//! with the acceptor `crate::tls` built from the `--peer-*` files); with a
//! peer CA, a member without a certificate it signed never gets past the
//! handshake.

use std::sync::Arc;

use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use openraft::raft::{AppendEntriesRequest, InstallSnapshotRequest, VoteRequest};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use warp::Filter;
use warp::http::{Response, StatusCode};

use super::Node;
use super::lease::LeaseClockRequest;
use super::membership::MemberChange;
use crate::raft::append_stream::{self, StreamAnswer};
use crate::raft::call_stream::{self, Call, CallAnswer};
use crate::raft::{CLUSTER_ID_HEADER, Command, MEMBER_ID_HEADER, MemberId, TypeConfig, paths};

/// Largest peer request accepted (snapshot chunks are far smaller).
const MAX_PEER_BODY: u64 = 64 * 1024 * 1024;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .body(body.into())
        .unwrap_or_default()
}

fn encode<T: Serialize>(value: &T) -> Response<Bytes> {
    match postcard::to_stdvec(value) {
        Ok(bytes) => reply(StatusCode::OK, bytes),
        Err(e) => reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A refused peer request: the status and the reason sent back.
type Refusal = (StatusCode, String);

fn decode<T: DeserializeOwned>(body: &Bytes) -> Result<T, Refusal> {
    postcard::from_bytes(body)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("undecodable request: {e}")))
}

/// Refuses requests whose cluster id header is missing or not ours.
fn same_cluster(node: &Node, header: Option<String>) -> Result<(), Refusal> {
    let ours = format!("{:x}", node.identity().cluster_id);
    match header {
        Some(theirs) if theirs == ours => Ok(()),
        Some(theirs) => {
            tracing::warn!(theirs, ours, "refused a peer request from another cluster");
            Err((
                StatusCode::PRECONDITION_FAILED,
                format!("request from cluster {theirs}, this member belongs to cluster {ours}"),
            ))
        }
        None => Err((StatusCode::PRECONDITION_FAILED, "missing cluster id".into())),
    }
}

/// The routes served on every peer listener; streams end when `stop`
/// turns true.
pub(crate) fn routes(
    node: Arc<Node>,
    stop: watch::Receiver<bool>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    stream_route(node.clone(), stop)
        .or(request_route(node))
        .unify()
}

/// Single requests: one POST per RPC or forwarded call.
fn request_route(
    node: Arc<Node>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    warp::post()
        .and(warp::path::tail())
        .and(warp::header::optional::<String>(CLUSTER_ID_HEADER))
        .and(warp::header::optional::<String>(MEMBER_ID_HEADER))
        .and(warp::body::content_length_limit(MAX_PEER_BODY))
        .and(warp::body::bytes())
        .and_then(
            move |tail: warp::path::Tail,
                  cluster: Option<String>,
                  sender: Option<String>,
                  body: Bytes| {
                let node = node.clone();
                async move {
                    // A joining member does not know the cluster id yet.
                    let admitted = if tail.as_str() == paths::MEMBERS {
                        Ok(())
                    } else {
                        same_cluster(&node, cluster).and_then(|()| not_removed(&node, sender))
                    };
                    let response = match admitted {
                        Ok(()) => dispatch(&node, tail.as_str(), body).await,
                        Err((status, reason)) => reply(status, reason),
                    };
                    Ok::<_, warp::Rejection>(response)
                }
            },
        )
}

/// The kinds of stream a peer may ask for.
#[derive(Clone, Copy)]
enum StreamKind {
    Append,
    Call,
}

impl StreamKind {
    fn of(path: &str) -> Option<Self> {
        match path {
            paths::APPEND_STREAM => Some(Self::Append),
            paths::CALL_STREAM => Some(Self::Call),
            _ => None,
        }
    }

    fn protocol(self) -> &'static str {
        match self {
            Self::Append => append_stream::PROTOCOL,
            Self::Call => call_stream::PROTOCOL,
        }
    }
}

/// `POST /raft/append-stream` with `Upgrade: cetera-append/1`, and `POST
/// /cetera/call-stream` with `Upgrade: cetera-call/1`: admitted like any
/// peer request, then switched to a stream served by
/// [`serve_append_stream`] or [`serve_call_stream`].
fn stream_route(
    node: Arc<Node>,
    stop: watch::Receiver<bool>,
) -> impl Filter<Extract = (Response<Bytes>,), Error = warp::Rejection> + Clone + Send + Sync + 'static
{
    warp::post()
        .and(warp::path::tail())
        .and_then(|tail: warp::path::Tail| async move {
            StreamKind::of(tail.as_str()).ok_or_else(warp::reject::not_found)
        })
        .and(warp::header::optional::<String>("upgrade"))
        .and_then(|kind: StreamKind, upgrade: Option<String>| async move {
            match upgrade {
                Some(asked) if asked.eq_ignore_ascii_case(kind.protocol()) => Ok(kind),
                _ => Err(warp::reject::not_found()),
            }
        })
        .and(warp::header::optional::<String>(CLUSTER_ID_HEADER))
        .and(warp::header::optional::<String>(MEMBER_ID_HEADER))
        .and(warp::ext::optional::<hyper::upgrade::OnUpgrade>())
        .map(
            move |kind: StreamKind,
                  cluster: Option<String>,
                  sender: Option<String>,
                  upgrade: Option<hyper::upgrade::OnUpgrade>| {
                let admitted =
                    same_cluster(&node, cluster).and_then(|()| not_removed(&node, sender.clone()));
                match (admitted, upgrade) {
                    (Err((status, reason)), _) => reply(status, reason),
                    (Ok(()), None) => reply(
                        StatusCode::BAD_REQUEST,
                        "this connection cannot be upgraded",
                    ),
                    (Ok(()), Some(upgrade)) => {
                        let (node, sender, stop) = (node.clone(), member_of(sender), stop.clone());
                        match kind {
                            StreamKind::Append => {
                                tokio::spawn(serve_append_stream(node, sender, upgrade, stop))
                            }
                            StreamKind::Call => {
                                tokio::spawn(serve_call_stream(node, sender, upgrade, stop))
                            }
                        };
                        Response::builder()
                            .status(StatusCode::SWITCHING_PROTOCOLS)
                            .header(warp::http::header::CONNECTION, "upgrade")
                            .header(warp::http::header::UPGRADE, kind.protocol())
                            .body(Bytes::new())
                            .unwrap_or_default()
                    }
                }
            },
        )
}

/// The upgraded connection of `upgrade`, once the upgrade completes.
async fn upgraded(upgrade: hyper::upgrade::OnUpgrade) -> Option<TokioIo<hyper::upgrade::Upgraded>> {
    match upgrade.await {
        Ok(upgraded) => Some(TokioIo::new(upgraded)),
        Err(e) => {
            tracing::debug!(error = %e, "peer stream upgrade failed");
            None
        }
    }
}

/// Answers the AppendEntries of member `sender` on the upgraded
/// connection until it closes or this member's peer side stops.
async fn serve_append_stream(
    node: Arc<Node>,
    sender: MemberId,
    upgrade: hyper::upgrade::OnUpgrade,
    stop: watch::Receiver<bool>,
) {
    let Some(io) = upgraded(upgrade).await else {
        return;
    };
    let _open = node.peer_stats.append_stream_opened(sender);
    let answer = |request: Result<AppendEntriesRequest<TypeConfig>, String>| {
        let node = node.clone();
        async move {
            let rpc = match request {
                Ok(rpc) => rpc,
                Err(e) => {
                    return StreamAnswer::Refused {
                        status: StatusCode::BAD_REQUEST.as_u16(),
                        detail: format!("undecodable request: {e}"),
                    };
                }
            };
            if let Err((status, detail)) = not_removed_id(&node, sender) {
                return StreamAnswer::Refused {
                    status: status.as_u16(),
                    detail,
                };
            }
            node.peer_stats.count_received_append();
            StreamAnswer::Answer(node.raft().append_entries(rpc).await)
        }
    };
    append_stream::serve(io, answer, super::wait_for_stop(stop)).await;
}

/// Answers the calls of member `sender` on the upgraded connection, as the
/// same calls made as single requests are answered, until it closes or
/// this member's peer side stops.
async fn serve_call_stream(
    node: Arc<Node>,
    sender: MemberId,
    upgrade: hyper::upgrade::OnUpgrade,
    stop: watch::Receiver<bool>,
) {
    let Some(io) = upgraded(upgrade).await else {
        return;
    };
    let answer = |call: Call| {
        let node = node.clone();
        async move {
            let response = match not_removed_id(&node, sender) {
                Ok(()) => dispatch(&node, &call.path, call.body).await,
                Err((status, detail)) => reply(status, detail),
            };
            CallAnswer {
                status: response.status().as_u16(),
                body: response.into_body(),
            }
        }
    };
    call_stream::serve(io, answer, super::wait_for_stop(stop)).await;
}

/// The member id a peer request names (0 when it names none).
fn member_of(sender: Option<String>) -> MemberId {
    sender
        .and_then(|s| u64::from_str_radix(&s, 16).ok())
        .unwrap_or(0)
}

/// Refuses requests from a member removed from the cluster with 410, which
/// tells it to stop (nothing else would tell it: it receives no entries).
fn not_removed(node: &Node, sender: Option<String>) -> Result<(), Refusal> {
    not_removed_id(node, member_of(sender))
}

fn not_removed_id(node: &Node, sender: MemberId) -> Result<(), Refusal> {
    if node.was_removed(sender) {
        return Err((
            StatusCode::GONE,
            "the member has been permanently removed from the cluster".into(),
        ));
    }
    Ok(())
}

/// Decodes the request, runs `handler`, encodes its answer.
async fn handle<Req, Resp, Fut>(body: &Bytes, handler: impl FnOnce(Req) -> Fut) -> Response<Bytes>
where
    Req: DeserializeOwned,
    Resp: Serialize,
    Fut: std::future::Future<Output = Resp>,
{
    match decode::<Req>(body) {
        Ok(request) => encode(&handler(request).await),
        Err((status, reason)) => reply(status, reason),
    }
}

async fn dispatch(node: &Node, path: &str, body: Bytes) -> Response<Bytes> {
    let raft = node.raft();
    match path {
        paths::APPEND => {
            node.peer_stats.count_received_append();
            handle(&body, |rpc: AppendEntriesRequest<TypeConfig>| {
                raft.append_entries(rpc)
            })
            .await
        }
        paths::VOTE => handle(&body, |rpc: VoteRequest<MemberId>| raft.vote(rpc)).await,
        paths::SNAPSHOT => {
            handle(&body, |rpc: InstallSnapshotRequest<TypeConfig>| {
                raft.install_snapshot(rpc)
            })
            .await
        }
        paths::PROPOSE => handle(&body, |cmd: Command| node.propose_forwarded(cmd)).await,
        paths::READ_INDEX => encode(&node.read_index_for_peer().await),
        paths::LEASE_CLOCK => {
            handle(&body, |req: LeaseClockRequest| {
                node.lease_clock_for_peer(req)
            })
            .await
        }
        paths::IDENTITY => encode(node.identity()),
        paths::MEMBERS => encode(&node.cluster_view()),
        paths::MEMBER_CHANGE => {
            handle(&body, |change: MemberChange| {
                node.member_change_for_peer(change)
            })
            .await
        }
        paths::CAMPAIGN => encode(&node.campaign_for_peer().await),
        paths::HASH_KV => handle(&body, |revision: i64| node.hash_for_peer(revision)).await,
        paths::REMOVED => {
            handle(&body, |member: MemberId| async move {
                node.removed_by_leader(member)
            })
            .await
        }
        _ => reply(StatusCode::NOT_FOUND, format!("no peer route {path}")),
    }
}

/// Serves [`routes`] (HTTP/1.1, as the peer client speaks) on one peer
/// listener, over TLS when given an acceptor (an `https://` peer URL),
/// until `stop` turns true, then lets open connections finish.
///
/// A connection that ends mid-request (a member killed or cut off) is a
/// peer's failure, reported where peers are watched, not an error here:
/// it is logged at debug level.
pub(crate) async fn serve(
    listener: TcpListener,
    node: Arc<Node>,
    stop: watch::Receiver<bool>,
    tls: Option<TlsAcceptor>,
) {
    let service = TowerToHyperService::new(warp::service(routes(node, stop.clone())));
    // `auto` for its graceful shutdown of upgradeable connections; peers
    // speak HTTP/1.1 only.
    let mut http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new()).http1_only();
    http.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let stopped = super::wait_for_stop(stop);
    tokio::pin!(stopped);
    while let Some((stream, peer)) =
        crate::tls::next_connection(&listener, &mut stopped, "peer").await
    {
        let (tls, service, http, watcher) = (
            tls.clone(),
            service.clone(),
            http.clone(),
            graceful.watcher(),
        );
        // The handshake runs in the connection's own task, so a slow or
        // refused member never holds up the accept loop.
        tokio::spawn(async move {
            let ended = match tls {
                None => {
                    let io = TokioIo::new(stream);
                    watcher
                        .watch(http.serve_connection_with_upgrades(io, service))
                        .await
                }
                Some(acceptor) => match crate::tls::handshake(&acceptor, stream).await {
                    Ok(stream) => {
                        let io = TokioIo::new(stream);
                        watcher
                            .watch(http.serve_connection_with_upgrades(io, service))
                            .await
                    }
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "peer TLS handshake failed");
                        return;
                    }
                },
            };
            if let Err(e) = ended {
                tracing::debug!(%peer, error = %e, "peer connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
