//! `/v2/members`, `/v2/machines` and `/v2/stats/store`: the membership
//! calls translated to the `Node` ones the gRPC Cluster service uses, and
//! this member's store counters.

use std::sync::Arc;

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::render::{message_body, write_string};
use super::{allow, plain, with_cluster_id};
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberRemoveRequest, MemberUpdateRequest,
};
use crate::server::{MembershipError, Node, ServerError};

fn json(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn message(status: StatusCode, text: &str) -> Response {
    json(status, message_body(text))
}

/// A request refused before reaching the node: the status and etcd's
/// message.
struct Refusal(StatusCode, String);

impl Refusal {
    fn response(&self) -> Response {
        message(self.0, &self.1)
    }
}

fn write_strings(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(out, item);
    }
    out.push(']');
}

/// A member as etcd's v2 API shows it.
fn member_json(out: &mut String, member: &Member) {
    out.push_str(&format!("{{\"id\":\"{:x}\",\"name\":", member.id));
    write_string(out, &member.name);
    out.push_str(",\"peerURLs\":");
    write_strings(out, &member.peer_ur_ls);
    out.push_str(",\"clientURLs\":");
    write_strings(out, &member.client_ur_ls);
    out.push('}');
}

/// Where a request under `/v2/members` goes.
pub(super) async fn serve_members(
    node: Arc<Node>,
    method: &str,
    rest: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Response {
    if !matches!(method, "GET" | "POST" | "DELETE" | "PUT") {
        return allow("GET,POST,DELETE,PUT");
    }
    let response = match method {
        "GET" => get(&node, rest).await,
        "POST" => match peer_urls(content_type, body) {
            Ok(urls) => add(&node, urls).await,
            Err(refusal) => refusal.response(),
        },
        _ if rest.is_empty() => plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n"),
        "DELETE" => match member_id(rest) {
            Ok(id) => remove(&node, id).await,
            Err(refusal) => refusal.response(),
        },
        _ => match (member_id(rest), peer_urls(content_type, body)) {
            (Ok(id), Ok(urls)) => update(&node, id, urls).await,
            (Err(refusal), _) | (_, Err(refusal)) => refusal.response(),
        },
    };
    with_cluster_id(&node, response)
}

async fn get(node: &Node, rest: &str) -> Response {
    let list = match node.member_list().await {
        Ok(list) => list.members,
        Err(e) => return failure(e),
    };
    match rest {
        "" => {
            let mut body = String::from("{\"members\":[");
            for (i, member) in list.iter().enumerate() {
                if i > 0 {
                    body.push(',');
                }
                member_json(&mut body, member);
            }
            body.push_str("]}\n");
            json(StatusCode::OK, body)
        }
        "leader" => match node
            .leader()
            .and_then(|id| list.iter().find(|m| m.id == id))
        {
            Some(leader) => {
                let mut body = String::new();
                member_json(&mut body, leader);
                body.push('\n');
                json(StatusCode::OK, body)
            }
            None => message(StatusCode::SERVICE_UNAVAILABLE, "During election"),
        },
        _ => message(StatusCode::NOT_FOUND, "Not found"),
    }
}

/// The id in `/v2/members/<id>` (hexadecimal, as etcd writes ids).
fn member_id(text: &str) -> Result<u64, Refusal> {
    u64::from_str_radix(text, 16)
        .ok()
        .filter(|_| !text.starts_with('+'))
        .ok_or_else(|| Refusal(StatusCode::NOT_FOUND, format!("No such member: {text}")))
}

/// The `peerURLs` of a JSON request body, checked as etcd checks them.
fn peer_urls(content_type: Option<&str>, body: &[u8]) -> Result<Vec<String>, Refusal> {
    let raw = content_type.unwrap_or_default();
    let media = match raw.find(';') {
        Some(at) => raw[..at].trim().to_ascii_lowercase(),
        None => raw.to_string(),
    };
    if media != "application/json" {
        return Err(Refusal(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("Bad Content-Type {media}, accept application/json"),
        ));
    }
    let bad = |text: String| Refusal(StatusCode::BAD_REQUEST, text);
    #[derive(serde::Deserialize)]
    struct Create {
        #[serde(rename = "peerURLs", default)]
        peer_urls: Option<Vec<String>>,
    }
    let request: Create = serde_json::from_slice(body).map_err(|e| {
        bad(if e.is_eof() {
            "unexpected end of JSON input".into()
        } else {
            e.to_string()
        })
    })?;
    let urls = request.peer_urls.unwrap_or_default();
    if urls.is_empty() {
        return Err(bad("no valid URLs given".into()));
    }
    for url in &urls {
        check_url(url.trim()).map_err(bad)?;
    }
    Ok(urls.iter().map(|u| u.trim().to_string()).collect())
}

/// etcd's checks of a peer URL, with its messages.
fn check_url(url: &str) -> Result<(), String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {url}"
        ));
    };
    if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
        return Err(format!(
            "URL scheme must be http, https, unix, or unixs: {url}"
        ));
    }
    let (host, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let has_port = host
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
    if !has_port {
        return Err(format!(
            "URL address does not have the form \"host:port\": {url}"
        ));
    }
    if !path.is_empty() {
        return Err(format!("URL must not contain a path: {url}"));
    }
    Ok(())
}

/// A membership error as etcd's v2 API answers it.
fn failure(error: ServerError) -> Response {
    match error {
        ServerError::Membership(MembershipError::PeerUrlsExist) => {
            message(StatusCode::CONFLICT, "membership: peerURL exists")
        }
        ServerError::Membership(MembershipError::IdExists) => {
            message(StatusCode::CONFLICT, "membership: ID exists")
        }
        ServerError::Membership(MembershipError::BadUrls) => {
            message(StatusCode::BAD_REQUEST, "no valid URLs given")
        }
        other => {
            tracing::warn!(error = %other, "v2 members request failed");
            message(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
    }
}

fn not_found(id: u64) -> Response {
    message(StatusCode::NOT_FOUND, &format!("No such member: {id:x}"))
}

async fn add(node: &Node, urls: Vec<String>) -> Response {
    let request = MemberAddRequest {
        peer_ur_ls: urls,
        is_learner: false,
    };
    match node.member_add(request).await {
        Ok(added) => {
            let mut body = String::new();
            member_json(&mut body, &added.member.unwrap_or_default());
            body.push('\n');
            json(StatusCode::CREATED, body)
        }
        Err(e) => failure(e),
    }
}

async fn remove(node: &Node, id: u64) -> Response {
    if node.was_removed(id) {
        return message(
            StatusCode::GONE,
            &format!("Member permanently removed: {id:x}"),
        );
    }
    match node.member_remove(MemberRemoveRequest { id }).await {
        Ok(_) => no_content(),
        // Removed meanwhile (this member learns of removals as it applies).
        Err(ServerError::Membership(MembershipError::NotFound)) if node.was_removed(id) => message(
            StatusCode::GONE,
            &format!("Member permanently removed: {id:x}"),
        ),
        Err(ServerError::Membership(MembershipError::NotFound)) => not_found(id),
        Err(e) => failure(e),
    }
}

async fn update(node: &Node, id: u64, urls: Vec<String>) -> Response {
    let request = MemberUpdateRequest {
        id,
        peer_ur_ls: urls,
    };
    match node.member_update(request).await {
        Ok(_) => no_content(),
        Err(ServerError::Membership(MembershipError::NotFound)) => not_found(id),
        Err(e) => failure(e),
    }
}

fn no_content() -> Response {
    let mut response = Response::new(String::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// `/v2/machines`: the client URLs of every member, comma separated.
pub(super) async fn serve_machines(node: Arc<Node>, method: &str) -> Response {
    if !matches!(method, "GET" | "HEAD") {
        return allow("GET,HEAD");
    }
    let mut urls: Vec<String> = match node.member_list().await {
        Ok(list) => list
            .members
            .into_iter()
            .flat_map(|m| m.client_ur_ls)
            .collect(),
        Err(e) => return failure(e),
    };
    urls.sort();
    // Go's `Write` without a content type: it sniffs `text/plain`.
    let mut response = Response::new(urls.join(", ").into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `/v2/stats/store`.
pub(super) fn serve_store_stats(node: &Node, method: &str) -> Response {
    if method != "GET" {
        return allow("GET");
    }
    json(StatusCode::OK, node.v2_store_stats())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_checked_as_etcd_checks_them() {
        let json = Some("application/json");
        let message = |r: Result<Vec<String>, Refusal>| r.map(|_| ()).unwrap_err().0.as_u16();
        assert_eq!(
            peer_urls(json, br#"{"peerURLs":["http://127.0.0.1:1"]}"#).ok(),
            Some(vec!["http://127.0.0.1:1".to_string()])
        );
        assert_eq!(message(peer_urls(None, b"{}")), 415);
        assert_eq!(message(peer_urls(json, b"{}")), 400);
        assert_eq!(message(peer_urls(json, br#"{"peerURLs":"#)), 400);
        assert_eq!(
            check_url("bad"),
            Err("URL scheme must be http, https, unix, or unixs: bad".into())
        );
        assert_eq!(
            check_url("http://host"),
            Err("URL address does not have the form \"host:port\": http://host".into())
        );
        assert_eq!(
            check_url("http://h:1/p"),
            Err("URL must not contain a path: http://h:1/p".into())
        );
        assert!(member_id("zz").is_err());
        assert_eq!(
            member_id("5c76a90ae78bcee7").ok(),
            Some(0x5c76_a90a_e78b_cee7)
        );
    }
}
