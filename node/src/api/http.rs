//! HTTP endpoints on the client URL: `/health` and `/version`.

use std::sync::Arc;

use warp::Filter;
use warp::http::StatusCode;

use crate::server::{Health, Node};

pub(super) fn routes(
    node: Arc<Node>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
+ Clone
+ Send
+ Sync
+ 'static {
    let node_for_stats = node.clone();
    let gateway = super::gateway::routes(node.clone());
    let health = warp::path!("health")
        .and(warp::get())
        .and(warp::query::<Vec<(String, String)>>())
        .then(move |query: Vec<(String, String)>| {
            let node = node.clone();
            async move {
                let excluded: Vec<String> = query
                    .into_iter()
                    .filter(|(k, _)| k == "exclude")
                    .map(|(_, v)| v)
                    .collect();
                health_reply(node.health(&excluded).await)
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
        .or(health.map(warp::Reply::into_response))
        .unify()
        .or(version.map(warp::Reply::into_response))
        .unify()
        .or(observability(node_for_stats))
        .unify()
        .recover(|_rejection: warp::Rejection| async {
            Ok::<_, std::convert::Infallible>(
                warp::reply::with_status("404 page not found\n", StatusCode::NOT_FOUND)
                    .into_response(),
            )
        })
        .unify()
        .map(super::gateway::with_cors)
}

/// etcd's `/health` answer: 200 `{"health":"true"}`, or 503 with the
/// reason (etcd 3.5's field; 3.4 clients ignore it) and Go's `http.Error`
/// newline.
fn health_reply(health: Health) -> warp::reply::Response {
    let text_plain = "text/plain; charset=utf-8";
    match health {
        Health::Healthy => {
            warp::reply::with_header(r#"{"health":"true"}"#, "content-type", text_plain)
                .into_response()
        }
        Health::Unhealthy(reason) => {
            let body = serde_json::json!({"health": "false", "reason": reason});
            let reply = warp::reply::with_header(format!("{body}\n"), "content-type", text_plain);
            warp::reply::with_status(reply, StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
    }
}

/// `/v2/stats/self`, `/v2/stats/leader` and `/metrics`.
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
    let leader_node = node.clone();
    let leader_stats = warp::path!("v2" / "stats" / "leader")
        .and(warp::get())
        .map(move || match leader_node.leader_stats() {
            Some(stats) => warp::reply::json(&stats).into_response(),
            None => warp::reply::with_status(
                warp::reply::json(&serde_json::json!({"message": "not current leader"})),
                StatusCode::FORBIDDEN,
            )
            .into_response(),
        });
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
    self_stats.or(leader_stats).unify().or(metrics).unify()
}

use warp::Reply as _;
