//! etcd's v2 HTTP API on the client URL (only with `--enable-v2`, as in
//! etcd 3.4): `/v2/keys` ([`keys`]), `/v2/members`, `/v2/machines` and
//! `/v2/stats/store` ([`members`]).
//!
//! This layer decodes requests exactly as etcd's Go server does (the form
//! rules and their error messages are in [`form`] and [`request`]), calls
//! one `Node` method, and writes the answer as etcd writes it ([`render`]).
//! The v2 rules themselves live in `v2store`. Paths are routed as Go's
//! `ServeMux` routes them: a path that is not clean is redirected to its
//! clean form, a malformed escape is a 400.

mod form;
mod keys;
mod members;
mod render;
mod request;

use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures::{Stream, StreamExt};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::server::Node;

/// Where a `/v2/` path goes.
enum Target {
    /// The path after `/v2/keys`.
    Keys(String),
    /// The path after `/v2/members/`.
    Members(String),
    Machines,
    StoreStats,
    /// The clean form of an unclean path (Go's `ServeMux` redirect).
    Redirect(String),
    /// A malformed escape in the path.
    BadRequest,
}

fn target(raw_path: &str) -> Option<Target> {
    if !raw_path.starts_with("/v2/") {
        return None;
    }
    let Ok(path) = form::unescape_path(raw_path.as_bytes()) else {
        return Some(Target::BadRequest);
    };
    let clean = clean_url_path(&path);
    if clean != path {
        return Some(Target::Redirect(clean));
    }
    if path == "/v2/keys" || path.starts_with("/v2/keys/") {
        return Some(Target::Keys(path["/v2/keys".len()..].to_string()));
    }
    if path == "/v2/members" || path.starts_with("/v2/members/") {
        let rest = path["/v2/members".len()..].trim_start_matches('/');
        return Some(Target::Members(rest.to_string()));
    }
    match path.as_str() {
        "/v2/machines" => Some(Target::Machines),
        "/v2/stats/store" => Some(Target::StoreStats),
        _ => None,
    }
}

/// Go's `cleanPath`: `path.Clean`, keeping a trailing slash.
fn clean_url_path(path: &str) -> String {
    let mut clean = crate::v2store::clean(path);
    if path.ends_with('/') && clean != "/" {
        clean.push('/');
    }
    clean
}

/// The v2 routes; other paths are rejected for the remaining routes.
pub(super) fn routes(
    node: Arc<Node>,
) -> impl Filter<Extract = (Response,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let enabled = node.config().enable_v2;
    warp::path::full()
        .and_then(move |path: warp::path::FullPath| async move {
            match target(path.as_str()) {
                Some(target) if enabled => Ok(target),
                _ => Err(warp::reject::not_found()),
            }
        })
        .and(warp::method())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .and(warp::body::stream())
        .then(
            move |target, method: Method, query: String, headers: HeaderMap, body| {
                let node = node.clone();
                async move { serve(node, target, method, query, headers, body).await }
            },
        )
}

async fn serve<S, B>(
    node: Arc<Node>,
    target: Target,
    method: Method,
    query: String,
    headers: HeaderMap,
    body: S,
) -> Response
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let method = method.as_str();
    match target {
        Target::BadRequest => {
            // What Go's server answers a request line it cannot parse.
            let mut response = Response::new("400 Bad Request".into());
            *response.status_mut() = StatusCode::BAD_REQUEST;
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
            response
        }
        Target::Redirect(to) => redirect(&to, &query, method),
        Target::Keys(path) => {
            // Only a form body is read, and no more of it than Go reads.
            let body = if matches!(method, "PUT" | "POST") {
                read_body(body, request::MAX_FORM_BYTES + 1).await
            } else {
                Bytes::new()
            };
            let call = keys::KeysCall {
                method,
                path: &path,
                query: query.as_bytes(),
                content_type,
                body: &body,
            };
            keys::serve(node, call).await
        }
        Target::Members(rest) => {
            let body = if matches!(method, "PUT" | "POST") {
                read_body(body, request::MAX_FORM_BYTES).await
            } else {
                Bytes::new()
            };
            members::serve_members(node, method, &rest, content_type, &body).await
        }
        Target::Machines => members::serve_machines(node, method).await,
        Target::StoreStats => members::serve_store_stats(&node, method),
    }
}

/// Reads up to `limit` bytes of the body (what is left is not read).
async fn read_body<S, B>(body: S, limit: usize) -> Bytes
where
    S: Stream<Item = Result<B, warp::Error>> + Send + 'static,
    B: Buf,
{
    let mut out = Vec::new();
    let mut body = std::pin::pin!(body);
    while out.len() < limit {
        match body.next().await {
            Some(Ok(mut chunk)) => {
                let take = chunk.remaining().min(limit - out.len());
                out.extend_from_slice(&chunk.copy_to_bytes(take));
            }
            // A body cut short counts as what arrived.
            Some(Err(_)) | None => break,
        }
    }
    out.into()
}

/// Go's `http.Error`: plain text with `nosniff`.
fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    let mut response = Response::new(text.into().into());
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

/// etcd's answer to a method a route does not serve.
fn allow(methods: &'static str) -> Response {
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(methods));
    response
}

/// Go's `ServeMux` redirect to a clean path (the query kept).
fn redirect(to: &str, query: &str, method: &str) -> Response {
    let location = if query.is_empty() {
        to.to_string()
    } else {
        format!("{to}?{query}")
    };
    let body = if method == "GET" {
        format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(&location)
        )
    } else {
        String::new()
    };
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, value);
    }
    if matches!(method, "GET" | "HEAD") {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Adds the `X-Etcd-Cluster-Id` header etcd's v2 handlers set.
fn with_cluster_id(node: &Node, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("{:x}", node.identity().cluster_id)) {
        response.headers_mut().insert("x-etcd-cluster-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_route_as_gos_servemux_routes_them() {
        let keys = |p: &str| match target(p) {
            Some(Target::Keys(rest)) => Some(rest),
            _ => None,
        };
        assert_eq!(keys("/v2/keys"), Some(String::new()));
        assert_eq!(keys("/v2/keys/a/b/"), Some("/a/b/".into()));
        assert_eq!(keys("/v2/keys/a%20b"), Some("/a b".into()));
        assert!(keys("/v2/keysx").is_none());
        assert!(matches!(target("/v2/keys//h"), Some(Target::Redirect(p)) if p == "/v2/keys/h"));
        assert!(
            matches!(target("/v2/keys/a/../b/"), Some(Target::Redirect(p)) if p == "/v2/keys/b/")
        );
        assert!(matches!(target("/v2/keys/%zz"), Some(Target::BadRequest)));
        assert!(matches!(target("/v2/members/"), Some(Target::Members(r)) if r.is_empty()));
        assert!(matches!(target("/v2/members/leader"), Some(Target::Members(r)) if r == "leader"));
        assert!(matches!(target("/v2/machines"), Some(Target::Machines)));
        assert!(target("/v2/machines/").is_none());
        assert!(target("/v2/stats/self").is_none());
        assert!(target("/v3/kv/range").is_none());
    }
}
