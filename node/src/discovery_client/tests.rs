//! The protocol against a scripted in-process discovery service: one token
//! held in memory, with answers that can be made to fail.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use warp::Filter as _;
use warp::Reply as _;
use warp::http::StatusCode;

use super::*;

/// Retries at once and gives up after three, so failures show quickly.
const FAST: RetryPolicy = RetryPolicy {
    max_retries: 3,
    unit: Duration::from_millis(1),
    max_doublings: 2,
};

const ME: MemberId = 0xabc;
const MY_REGISTRATION: &str = "me=http://10.0.0.2:2380";

/// One token of a discovery service.
#[derive(Default)]
struct Token {
    /// `_config/size`, if set.
    size: Option<String>,
    /// `(key name, value, createdIndex)` in creation order.
    members: Vec<(String, String, u64)>,
    index: u64,
    /// Requests answered 503 before the token answers again.
    fail_next: u32,
    /// Registrations that appear on the n-th long poll for members.
    arrive_on_poll: Vec<(u32, String, String)>,
    /// A registration that lands right after ours.
    after_ours: Option<(String, String)>,
    polls: u32,
    puts: u32,
    /// Answer everything with a web page instead of v2 JSON.
    not_v2: bool,
    /// Register the next member but answer 503, as if the answer was lost.
    lose_next_create: bool,
}

impl Token {
    fn with_size(size: &str) -> Token {
        Token {
            size: Some(size.to_string()),
            index: 1,
            ..Token::default()
        }
    }

    fn register(&mut self, name: &str, value: &str) {
        self.index += 1;
        self.members
            .push((name.to_string(), value.to_string(), self.index));
    }

    fn answer(&mut self, method: &str, path: &str, query: &str, body: &[u8]) -> (u16, String) {
        if self.not_v2 {
            return (200, "<html>hello</html>".into());
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return (503, "busy".into());
        }
        let rest = path.trim_start_matches("/tok").trim_start_matches('/');
        let waiting = query.contains("wait=true");
        match (method, rest) {
            ("GET", "_config/size") => match &self.size {
                Some(size) => (
                    200,
                    format!(
                        r#"{{"action":"get","node":{{"key":"/tok/_config/size","value":"{size}","modifiedIndex":1,"createdIndex":1}}}}"#
                    ),
                ),
                None => (
                    404,
                    r#"{"errorCode":100,"message":"Key not found","cause":"/tok/_config","index":1}"#
                        .into(),
                ),
            },
            ("GET", "") if waiting => {
                self.polls += 1;
                let polls = self.polls;
                let arriving: Vec<_> = self
                    .arrive_on_poll
                    .iter()
                    .filter(|(on, _, _)| *on == polls)
                    .map(|(_, name, value)| (name.clone(), value.clone()))
                    .collect();
                for (name, value) in arriving {
                    self.register(&name, &value);
                }
                let wait_index: u64 = query
                    .split('&')
                    .find_map(|p| p.strip_prefix("waitIndex="))
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                match self.members.iter().find(|(_, _, at)| *at >= wait_index) {
                    Some((name, value, at)) => (200, create_event(name, value, *at)),
                    // The long poll expired: an empty body.
                    None => (200, String::new()),
                }
            }
            ("GET", "") => {
                let nodes: Vec<String> = self
                    .members
                    .iter()
                    .map(|(name, value, at)| node_json(name, value, *at))
                    .collect();
                (
                    200,
                    format!(
                        r#"{{"action":"get","node":{{"key":"/tok","dir":true,"nodes":[{}],"modifiedIndex":1,"createdIndex":1}}}}"#,
                        nodes.join(",")
                    ),
                )
            }
            ("GET", name) => match self.members.iter().find(|(n, _, _)| n == name) {
                Some((name, value, at)) => (
                    200,
                    format!(r#"{{"action":"get","node":{}}}"#, node_json(name, value, *at)),
                ),
                None => (
                    404,
                    r#"{"errorCode":100,"message":"Key not found","cause":"/tok/x","index":1}"#
                        .into(),
                ),
            },
            ("PUT", name) => {
                self.puts += 1;
                if self.members.iter().any(|(n, _, _)| n == name) {
                    return (
                        412,
                        format!(
                            r#"{{"errorCode":105,"message":"Key already exists","cause":"/tok/{name}","index":{}}}"#,
                            self.index
                        ),
                    );
                }
                let value: String = form_urlencoded::parse(body)
                    .find(|(k, _)| k == "value")
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default();
                self.register(name, &value);
                if std::mem::take(&mut self.lose_next_create) {
                    return (503, "lost".into());
                }
                let created = create_event(name, &value, self.index);
                if let Some((name, value)) = self.after_ours.take() {
                    self.register(&name, &value);
                }
                (201, created)
            }
            _ => (405, "{}".into()),
        }
    }
}

fn node_json(name: &str, value: &str, at: u64) -> String {
    format!(r#"{{"key":"/tok/{name}","value":"{value}","modifiedIndex":{at},"createdIndex":{at}}}"#)
}

fn create_event(name: &str, value: &str, at: u64) -> String {
    format!(
        r#"{{"action":"create","node":{}}}"#,
        node_json(name, value, at)
    )
}

/// Serves `token` on a loopback port; returns its discovery URL.
async fn serve(token: Arc<Mutex<Token>>) -> String {
    let routes = warp::method()
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::body::bytes())
        .map(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  query: String,
                  body: Bytes| {
                let mut token = token.lock().unwrap();
                let (status, body) = token.answer(method.as_str(), path.as_str(), &query, &body);
                let status = StatusCode::from_u16(status).unwrap();
                warp::reply::with_header(
                    warp::reply::with_status(body, status),
                    "x-etcd-index",
                    token.index.to_string(),
                )
                .into_response()
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    format!("http://{addr}/tok")
}

async fn join(token: Token) -> (Result<InitialCluster, DiscoveryError>, Arc<Mutex<Token>>) {
    let token = Arc::new(Mutex::new(token));
    let url = serve(token.clone()).await;
    let result = join_cluster(&url, ME, MY_REGISTRATION, FAST).await;
    (result, token)
}

#[tokio::test]
async fn registers_and_waits_until_the_token_is_full() {
    let mut token = Token::with_size("3");
    token.register("111", "p1=http://10.0.0.1:2380");
    token.arrive_on_poll = vec![(3, "333".into(), "p3=http://10.0.0.3:2380".into())];
    let (result, token) = join(token).await;
    let cluster = result.unwrap();
    assert_eq!(
        cluster.to_string(),
        "me=http://10.0.0.2:2380,p1=http://10.0.0.1:2380,p3=http://10.0.0.3:2380"
    );
    let token = token.lock().unwrap();
    assert_eq!(token.puts, 1);
    assert!(token.polls >= 3, "the empty long polls were renewed");
    assert_eq!(token.members[1].0, format!("{ME:x}"));
    assert_eq!(token.members[1].1, MY_REGISTRATION);
}

#[tokio::test]
async fn the_first_size_registrations_make_the_cluster() {
    let mut token = Token::with_size("2");
    token.register("111", "p1=http://10.0.0.1:2380");
    // Registered after us: not part of a cluster of two.
    token.after_ours = Some(("333".into(), "p3=http://10.0.0.3:2380".into()));
    let (result, token) = join(token).await;
    assert_eq!(
        result.unwrap().to_string(),
        "me=http://10.0.0.2:2380,p1=http://10.0.0.1:2380"
    );
    assert_eq!(token.lock().unwrap().members.len(), 3);
}

#[tokio::test]
async fn a_full_token_is_refused_before_registering() {
    let mut token = Token::with_size("2");
    token.register("111", "p1=http://10.0.0.1:2380");
    token.register("222", "p2=http://10.0.0.2:2380");
    let (result, token) = join(token).await;
    assert_eq!(result.unwrap_err(), DiscoveryError::FullCluster { size: 2 });
    assert_eq!(token.lock().unwrap().puts, 0);
    assert_eq!(
        DiscoveryError::FullCluster { size: 2 }.to_string(),
        "discovery: cluster is full"
    );
}

#[tokio::test]
async fn an_earlier_registration_of_this_id_is_a_duplicate() {
    let mut token = Token::with_size("3");
    token.register(&format!("{ME:x}"), MY_REGISTRATION);
    let (result, _) = join(token).await;
    let err = result.unwrap_err();
    assert_eq!(err, DiscoveryError::DuplicateId);
    assert_eq!(err.to_string(), "discovery: found duplicate id");
}

#[tokio::test]
async fn two_registrations_with_one_name_are_refused() {
    let mut token = Token::with_size("2");
    token.register("111", "me=http://10.0.0.9:2380");
    let (result, _) = join(token).await;
    let err = result.unwrap_err();
    assert_eq!(err, DiscoveryError::DuplicateName);
    assert_eq!(err.to_string(), "discovery: found duplicate name");
}

#[tokio::test]
async fn a_missing_or_bad_size_is_refused() {
    let (result, _) = join(Token {
        index: 1,
        ..Token::default()
    })
    .await;
    assert_eq!(
        result.unwrap_err().to_string(),
        "discovery: size key not found"
    );
    for size in ["three", "0", "-1", ""] {
        let (result, _) = join(Token::with_size(size)).await;
        assert_eq!(
            result.unwrap_err().to_string(),
            "discovery: size key is bad",
            "size {size:?}"
        );
    }
}

#[tokio::test]
async fn server_errors_are_retried() {
    let mut token = Token::with_size("1");
    token.fail_next = 3;
    let (result, token) = join(token).await;
    assert_eq!(result.unwrap().to_string(), MY_REGISTRATION);
    assert_eq!(token.lock().unwrap().puts, 1);
}

/// A registration whose answer was lost is found again on the retry, not
/// taken for a duplicate.
#[tokio::test]
async fn a_registration_with_a_lost_answer_is_ours() {
    let mut token = Token::with_size("1");
    token.lose_next_create = true;
    let (result, token) = join(token).await;
    assert_eq!(result.unwrap().to_string(), MY_REGISTRATION);
    let token = token.lock().unwrap();
    assert_eq!(token.puts, 2);
    assert_eq!(token.members.len(), 1);
}

#[tokio::test]
async fn a_service_that_stays_down_exhausts_the_retries() {
    let mut token = Token::with_size("1");
    token.fail_next = u32::MAX;
    let (result, _) = join(token).await;
    let err = result.unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::TooManyRetries { last } if last.contains("503")),
        "{err}"
    );
    assert!(err.to_string().starts_with("discovery: too many retries"));

    // Nothing listens on the port at all.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let url = format!("http://127.0.0.1:{port}/tok");
    let err = join_cluster(&url, ME, MY_REGISTRATION, FAST)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DiscoveryError::TooManyRetries { last } if last.contains(&port.to_string())),
        "{err}"
    );
}

#[tokio::test]
async fn a_web_page_is_not_a_discovery_service() {
    let mut token = Token::with_size("1");
    token.not_v2 = true;
    let (result, _) = join(token).await;
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("discovery: bad discovery endpoint"),
        "{err}"
    );
}

#[test]
fn registrations_must_be_name_url_lists() {
    let values = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        cluster_from_registrations(&values(&["a=http://1:2380", "b"]), 2),
        Err(DiscoveryError::InvalidUrl)
    );
    assert_eq!(
        cluster_from_registrations(&values(&["a=http://1:2380", "b=ftp://2"]), 2),
        Err(DiscoveryError::InvalidUrl)
    );
    assert_eq!(
        cluster_from_registrations(&values(&["a=http://1:2380", "b=http://1:2380"]), 2)
            .unwrap_err()
            .to_string(),
        "discovery cluster a=http://1:2380,b=http://1:2380 has duplicate url"
    );
    // A member with two peer URLs registers both under its name.
    let cluster = cluster_from_registrations(
        &values(&["a=http://1:2380,a=http://3:2380", "b=http://2:2380"]),
        2,
    )
    .unwrap();
    assert_eq!(cluster.len(), 2);
}

#[test]
fn the_backoff_doubles_up_to_256_seconds() {
    let policy = RetryPolicy::ETCD;
    let waits: Vec<u64> = (1..=10).map(|n| policy.backoff(n).as_secs()).collect();
    assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 256, 256]);
    let total: u64 = (1..=policy.max_retries)
        .map(|n| policy.backoff(n).as_secs())
        .sum();
    assert_eq!(total, 510 + 8 * 256, "about 43 minutes in all");
}

#[test]
fn the_position_of_this_member_decides_fullness() {
    let regs = |names: &[&str]| {
        names
            .iter()
            .enumerate()
            .map(|(i, n)| Registration {
                name: n.to_string(),
                value: String::new(),
                created_index: i as u64,
            })
            .collect::<Vec<_>>()
    };
    assert!(!is_full(&regs(&["a", "b"]), 3, "me"));
    assert!(is_full(&regs(&["a", "b", "c"]), 3, "me"));
    assert!(!is_full(&regs(&["a", "me", "c", "d"]), 3, "me"));
    assert!(is_full(&regs(&["a", "b", "c", "me"]), 3, "me"));
}

#[tokio::test]
async fn a_new_token_is_a_url() {
    let routes = warp::path("new")
        .and(warp::query::raw())
        .map(|query: String| match query.as_str() {
            "size=5" => {
                warp::reply::with_status("http://d.example/tok\n".to_string(), StatusCode::OK)
            }
            _ => warp::reply::with_status(
                r#"{"errorCode":209,"message":"Invalid field","cause":"size","index":0}"#
                    .to_string(),
                StatusCode::BAD_REQUEST,
            ),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    assert_eq!(
        new_token(&endpoint, 5).await.unwrap(),
        "http://d.example/tok"
    );
    assert_eq!(
        new_token(&format!("{endpoint}/"), 0)
            .await
            .unwrap_err()
            .to_string(),
        "209: Invalid field (size) [0]"
    );
}
