//! HTTP endpoints on the client URL: `/health`, `/version`, `/metrics`,
//! `/v2/stats/self`, `/v2/stats/leader`, the v3 JSON gateway and the v2
//! API, with etcd's CORS headers (`--cors`) on every answer and Go's
//! `404 page not found` for the rest.

use std::sync::Arc;

use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::go_mux::{self, PathCheck};
use crate::config::Cors;
use crate::server::{Health, Node};

pub(super) fn routes(
    node: Arc<Node>,
) -> impl Filter<Extract = (warp::reply::Response,), Error = std::convert::Infallible>
+ Clone
+ Send
+ Sync
+ 'static {
    let node_for_stats = node.clone();
    let cors = node.config().cors.clone();
    let gateway = super::gateway::routes(node.clone());
    let v2 = super::v2::routes(node.clone());
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
    let answers = gateway
        .or(v2)
        .unify()
        .or(health.map(warp::Reply::into_response))
        .unify()
        .or(version.map(warp::Reply::into_response))
        .unify()
        .or(observability(node_for_stats))
        .unify()
        .recover(|_rejection: warp::Rejection| async {
            Ok::<_, std::convert::Infallible>(not_found())
        })
        .unify();
    let answers = unclean_path().or(answers).unify();
    // Go refuses an undecodable path before any handler, so with no CORS.
    undecodable_path()
        .or(warp::header::headers_cloned()
            .and(answers)
            .map(move |request: HeaderMap, response| with_cors(&cors, &request, response)))
        .unify()
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

/// Go's `400 Bad Request` for a path with a malformed escape.
fn undecodable_path()
-> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path::full().and_then(|path: warp::path::FullPath| async move {
        match go_mux::decode(path.as_str()) {
            None => Ok(go_mux::bad_request()),
            Some(_) => Err(warp::reject::not_found()),
        }
    })
}

/// Go's mux redirect of a path that is not clean to its clean form
/// (after the gateway's `/v3beta/` rewrite, as in etcd); `OPTIONS` is
/// answered on any path.
fn unclean_path() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone
{
    warp::path::full()
        .and(raw_query())
        .and(warp::method())
        .and_then(
            |path: warp::path::FullPath, query: String, method: Method| async move {
                match go_mux::check(path.as_str(), Some(&query), super::gateway::rewrite_beta) {
                    // etcd answers OPTIONS ahead of its mux, on any path.
                    PathCheck::Redirect(_) if method == Method::OPTIONS => {
                        Err(warp::reject::not_found())
                    }
                    PathCheck::Redirect(location) => Ok(go_mux::redirect(&location, &method)),
                    _ => Err(warp::reject::not_found()),
                }
            },
        )
}

/// Go's `http.NotFound`, which etcd answers for paths it does not serve.
fn not_found() -> warp::reply::Response {
    let mut response =
        warp::reply::with_status("404 page not found\n", StatusCode::NOT_FOUND).into_response();
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

/// Adds the CORS headers etcd puts on the client URL's HTTP answers: with
/// `--cors '*'` (the default) on every answer, otherwise only when the
/// request's `Origin` is one of the listed origins, which is echoed back.
fn with_cors(
    cors: &Cors,
    request: &HeaderMap,
    mut response: warp::reply::Response,
) -> warp::reply::Response {
    let allowed = match cors {
        Cors::AnyOrigin => HeaderValue::from_static("*"),
        Cors::Origins(origins) => match request.get(header::ORIGIN) {
            Some(origin) if origins.iter().any(|o| o.as_bytes() == origin.as_bytes()) => {
                origin.clone()
            }
            _ => return response,
        },
    };
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, GET, OPTIONS, PUT, DELETE"),
    );
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed);
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("accept, content-type, authorization"),
    );
    response
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

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(cors: &Cors, origin: Option<&'static str>) -> HeaderMap {
        let mut request = HeaderMap::new();
        if let Some(origin) = origin {
            request.insert(header::ORIGIN, HeaderValue::from_static(origin));
        }
        with_cors(cors, &request, not_found()).headers().clone()
    }

    #[test]
    fn cors_headers_follow_the_flag() {
        let any = answered(&Cors::AnyOrigin, None);
        assert_eq!(any[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert_eq!(
            any[header::ACCESS_CONTROL_ALLOW_METHODS],
            "POST, GET, OPTIONS, PUT, DELETE"
        );
        assert_eq!(
            any[header::ACCESS_CONTROL_ALLOW_HEADERS],
            "accept, content-type, authorization"
        );
        let listed = Cors::Origins(vec!["http://a.example:80".into()]);
        let echoed = answered(&listed, Some("http://a.example:80"));
        assert_eq!(
            echoed[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://a.example:80"
        );
        assert!(echoed.contains_key(header::ACCESS_CONTROL_ALLOW_HEADERS));
        for origin in [
            None,
            Some("http://a.example"),
            Some("http://evil.example:80"),
        ] {
            let headers = answered(&listed, origin);
            assert!(
                !headers.contains_key(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                    && !headers.contains_key(header::ACCESS_CONTROL_ALLOW_METHODS),
                "{origin:?}"
            );
        }
        assert_eq!(answered(&listed, None)["x-content-type-options"], "nosniff");
    }
}
