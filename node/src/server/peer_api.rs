//! The peer URL's HTTP server: Raft RPCs and forwarded work from other
//! members, postcard in and out.
//!
//! Every request must carry this cluster's id; a member of another cluster
//! is refused with 412 so it can never vote or append here. Handlers only
//! decode, call the node or Raft, and encode.
//!
//! On an `https://` peer URL, TLS terminates here first ([`serve_tls`],
//! with the acceptor `crate::tls` built from the `--peer-*` files); with a
//! peer CA, a member without a certificate it signed never gets past the
//! handshake.

use std::sync::Arc;

use bytes::Bytes;
use hyper_util::rt::{TokioIo, TokioTimer};
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

/// The routes served on every peer listener.
pub(crate) fn routes(
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

/// Refuses requests from a member removed from the cluster with 410, which
/// tells it to stop (nothing else would tell it: it receives no entries).
fn not_removed(node: &Node, sender: Option<String>) -> Result<(), Refusal> {
    let sender = sender
        .and_then(|s| u64::from_str_radix(&s, 16).ok())
        .unwrap_or(0);
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
            handle(&body, |req: LeaseClockRequest| async move {
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
        _ => reply(StatusCode::NOT_FOUND, format!("no peer route {path}")),
    }
}

/// Serves [`routes`] over TLS (HTTP/1.1, as the peer client speaks) on one
/// `https://` peer listener until `stop` turns true, then lets open
/// connections finish.
pub(crate) async fn serve_tls(
    listener: TcpListener,
    node: Arc<Node>,
    stop: watch::Receiver<bool>,
    acceptor: TlsAcceptor,
) {
    let service = TowerToHyperService::new(warp::service(routes(node)));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let stopped = super::wait_for_stop(stop);
    tokio::pin!(stopped);
    while let Some((stream, peer)) =
        crate::tls::next_connection(&listener, &mut stopped, "peer").await
    {
        let (acceptor, service, http, watcher) = (
            acceptor.clone(),
            service.clone(),
            http.clone(),
            graceful.watcher(),
        );
        // The handshake runs in the connection's own task, so a slow or
        // refused member never holds up the accept loop.
        tokio::spawn(async move {
            let stream = match crate::tls::handshake(&acceptor, stream).await {
                Ok(stream) => stream,
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "peer TLS handshake failed");
                    return;
                }
            };
            let connection = http.serve_connection(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %e, "peer connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}
