//! HTTP endpoints on the client URL: `/health`, `/version`, `/metrics`,
//! `/v2/stats/self`, and the routes of the v3 gateway and the v2 API.

use std::sync::Arc;
use std::time::Duration;

use warp::Filter;
use warp::http::StatusCode;

use crate::server::Node;

/// How long `/health` waits for a linearizable read before saying no.
const HEALTH_READ_TIMEOUT: Duration = Duration::from_secs(1);

pub(super) fn routes(
    node: Arc<Node>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
+ Clone
+ Send
+ Sync
+ 'static {
    let node_for_stats = node.clone();
    let gateway = super::gateway::routes(node.clone());
    let v2 = super::v2::routes(node.clone());
    let health = warp::path!("health").and(warp::get()).then(move || {
        let node = node.clone();
        async move {
            let healthy = tokio::time::timeout(HEALTH_READ_TIMEOUT, node.is_healthy())
                .await
                .unwrap_or(false);
            let (status, body) = if healthy {
                (
                    StatusCode::OK,
                    serde_json::json!({"health": "true", "reason": ""}),
                )
            } else {
                let reason = if node.leader().is_none() {
                    "no leader"
                } else {
                    "linearizable read failed"
                };
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"health": "false", "reason": reason}),
                )
            };
            warp::reply::with_status(warp::reply::json(&body), status)
        }
    });
    let version = warp::path!("version").and(warp::get()).map(|| {
        warp::reply::json(&serde_json::json!({
            "etcdserver": crate::ETCD_VERSION,
            "etcdcluster": crate::ETCD_CLUSTER_VERSION,
            "cetera": env!("CARGO_PKG_VERSION"),
        }))
    });
    gateway
        .or(v2)
        .unify()
        .or(health.map(warp::Reply::into_response))
        .unify()
        .or(version.map(warp::Reply::into_response))
        .unify()
        .or(observability(node_for_stats))
        .unify()
        .recover(|_rejection: warp::Rejection| async {
            // Go's `http.NotFound`, as etcd answers an unknown path.
            Ok::<_, std::convert::Infallible>(
                warp::reply::with_header(
                    warp::reply::with_status("404 page not found\n", StatusCode::NOT_FOUND),
                    "x-content-type-options",
                    "nosniff",
                )
                .into_response(),
            )
        })
        .unify()
        .map(super::gateway::with_cors)
}

/// `/v2/stats/self` and `/metrics`.
fn observability(
    node: Arc<Node>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection>
+ Clone
+ Send
+ Sync
+ 'static {
    let stats_node = node.clone();
    let self_stats = warp::path!("v2" / "stats" / "self")
        .and(warp::get())
        .map(move || warp::reply::json(&stats_node.self_stats()).into_response());
    let metrics = warp::path!("metrics").and(warp::get()).then(move || {
        let node = node.clone();
        async move {
            let text = node.metrics_text().await;
            warp::reply::with_header(
                text,
                "content-type",
                "text/plain; version=0.0.4; charset=utf-8",
            )
            .into_response()
        }
    });
    self_stats.or(metrics).unify()
}

use warp::Reply as _;
