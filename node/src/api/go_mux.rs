//! The request-path rules etcd's client URL inherits from Go's `net/http`,
//! applied before any route: the path is percent-decoded (a malformed
//! escape is Go's bare `400 Bad Request`, before any handler runs), and a
//! path that is not in clean form (`//`, `.` or `..` segments) is
//! redirected, `301`, to its clean form, as Go's `ServeMux` does. Routes
//! then match the decoded, clean path.
//!
//! Owns only path syntax: it must never know which routes exist.

use bytes::Bytes;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

/// What the path of a request calls for before routing.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum PathCheck {
    /// Route the request by this (decoded, clean) path.
    Route(String),
    /// Redirect to this location (escaped path and query).
    Redirect(String),
    /// The path cannot be decoded.
    BadRequest,
}

/// Go's `url.PathUnescape` of a request path: every `%` must start a
/// two-digit hex escape. Decoded bytes that are not UTF-8 are replaced,
/// which only matters for paths no route serves.
pub(super) fn decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let text = std::str::from_utf8(hex).ok()?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(text, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Go's `path.Clean` of a rooted path.
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Go's `ServeMux` `cleanPath`: rooted, cleaned, trailing slash kept.
pub(super) fn clean_path(path: &str) -> String {
    let rooted = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let mut cleaned = clean(&rooted);
    if rooted.ends_with('/') && cleaned != "/" {
        cleaned.push('/');
    }
    cleaned
}

/// Go's `url.URL.EscapedPath` for a path without a raw form.
fn escape_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'_'
                    | b'.'
                    | b'~'
                    | b'$'
                    | b'&'
                    | b'+'
                    | b','
                    | b'/'
                    | b':'
                    | b';'
                    | b'='
                    | b'@'
            );
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks a request's raw path (and raw query, kept on a redirect).
/// `rewrite` maps a decoded path before it is cleaned, as etcd rewrites
/// `/v3beta/` ahead of its mux.
pub(super) fn check(
    raw_path: &str,
    query: Option<&str>,
    rewrite: impl Fn(&str) -> String,
) -> PathCheck {
    let Some(decoded) = decode(raw_path) else {
        return PathCheck::BadRequest;
    };
    let path = rewrite(&decoded);
    let cleaned = clean_path(&path);
    if cleaned == path {
        return PathCheck::Route(path);
    }
    let mut location = escape_path(&cleaned);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        location.push('?');
        location.push_str(query);
    }
    PathCheck::Redirect(location)
}

/// Go's `http.Redirect` with `301`: a small HTML body for `GET` (headers
/// only for `HEAD`), nothing for other methods.
pub(super) fn redirect(location: &str, method: &Method) -> Response {
    let body = if method == Method::GET {
        format!(
            "<a href=\"{}\">Moved Permanently</a>.\n\n",
            html_escape(location)
        )
    } else {
        String::new()
    };
    let mut response = Response::new(body.into());
    *response.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(location) {
        headers.insert(header::LOCATION, value);
    }
    if method == Method::GET || method == Method::HEAD {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
    }
    response
}

/// Go's answer to a request line it cannot parse.
pub(super) fn bad_request() -> Response {
    let mut response = Response::new(Bytes::from_static(b"400 Bad Request").into());
    *response.status_mut() = StatusCode::BAD_REQUEST;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Go's `html.EscapeString`.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_plain(raw: &str, query: Option<&str>) -> PathCheck {
        check(raw, query, str::to_string)
    }

    #[test]
    fn paths_are_decoded_and_cleaned_as_go_does() {
        let route = |p: &str| PathCheck::Route(p.to_string());
        let redirect = |p: &str| PathCheck::Redirect(p.to_string());
        assert_eq!(check_plain("/v3/kv/range", None), route("/v3/kv/range"));
        assert_eq!(check_plain("/v3/kv/ran%67e", None), route("/v3/kv/range"));
        assert_eq!(check_plain("/v3/kv%2Frange", None), route("/v3/kv/range"));
        assert_eq!(check_plain("/v3/kv/range/", None), route("/v3/kv/range/"));
        assert_eq!(check_plain("/v3//kv/range", None), redirect("/v3/kv/range"));
        assert_eq!(
            check_plain("/v3/./kv/range", None),
            redirect("/v3/kv/range")
        );
        assert_eq!(check_plain("/v3/kv/range/..", None), redirect("/v3/kv"));
        assert_eq!(
            check_plain("/v3/kv/../..//x", Some("a=b")),
            redirect("/x?a=b")
        );
        assert_eq!(check_plain("//health", Some("")), redirect("/health"));
        assert_eq!(check_plain("/a/../../", None), redirect("/"));
        assert_eq!(
            check_plain("//r%C3%A9%20x%3F", None),
            redirect("/r%C3%A9%20x%3F")
        );
        assert_eq!(check_plain("/v3/%zz", None), PathCheck::BadRequest);
        assert_eq!(check_plain("/v3/%4", None), PathCheck::BadRequest);
        let beta = |p: &str| p.replacen("/v3beta/", "/v3/", 1);
        assert_eq!(
            check("/v3beta//kv/range", None, beta),
            redirect("/v3/kv/range")
        );
        assert_eq!(check("/v3beta/kv/range", None, beta), route("/v3/kv/range"));
    }

    #[test]
    fn redirects_are_gos() {
        let get = redirect("/a?x=<&>", &Method::GET);
        assert_eq!(get.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(get.headers()[header::LOCATION], "/a?x=<&>");
        assert_eq!(
            get.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        let post = redirect("/v3/", &Method::POST);
        assert!(post.headers().get(header::CONTENT_TYPE).is_none());
        assert_eq!(
            html_escape("<a href='x'>&\""),
            "&lt;a href=&#39;x&#39;&gt;&amp;&#34;"
        );
    }
}
