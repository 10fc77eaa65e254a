//! The routes end to end over warp's in-process test client.

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::store::Options;

async fn routes_with(
    max_waiters: usize,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let metrics = Arc::new(Metrics::default());
    let store = Store::in_memory(
        Options {
            token_ttl: Duration::from_secs(60),
            max_size: 7,
            max_tokens: 10,
            max_waiters,
        },
        metrics.clone(),
    )
    .await;
    routes(Arc::new(State {
        store,
        metrics,
        advertise_url: "http://disco.test:8087".into(),
        wait_timeout: Duration::from_secs(10),
    }))
}

async fn routes_for_test() -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    routes_with(10).await
}

struct Reply {
    status: u16,
    index: Option<u64>,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

async fn call<F>(filter: &F, method: &str, path: &str, form: Option<&str>) -> Reply
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let mut request = warp::test::request().method(method).path(path);
    if let Some(form) = form {
        request = request
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
    }
    let response = request.reply(filter).await;
    Reply {
        status: response.status().as_u16(),
        index: response
            .headers()
            .get(ETCD_INDEX)
            .map(|v| v.to_str().unwrap().parse().unwrap()),
        body: String::from_utf8(response.body().to_vec()).unwrap(),
    }
}

async fn new_token<F>(filter: &F, size: u64) -> String
where
    F: Filter<Extract = (Response,), Error = Infallible> + Clone + Send + Sync + 'static,
{
    let reply = call(filter, "GET", &format!("/new?size={size}"), None).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply
        .body
        .strip_prefix("http://disco.test:8087/")
        .unwrap_or_else(|| panic!("unexpected URL {:?}", reply.body))
        .to_string()
}

#[tokio::test]
async fn new_hands_out_urls_with_the_size_set() {
    let api = routes_for_test().await;
    let token = new_token(&api, 5).await;
    assert_eq!(token.len(), 32);
    let size = call(
        &api,
        "GET",
        &format!("/{token}/_config/size?quorum=false&recursive=false&sorted=false"),
        None,
    )
    .await;
    assert_eq!(size.status, 200);
    assert_eq!(size.json()["node"]["value"], "5");
    // PUT works too; the default size is 3.
    let reply = call(&api, "PUT", "/new", None).await;
    let token = reply.body.rsplit('/').next().unwrap();
    let size = call(&api, "GET", &format!("/{token}/_config/size"), None).await;
    assert_eq!(size.json()["node"]["value"], "3");
}

#[tokio::test]
async fn bad_sizes_get_v2_errors() {
    let api = routes_for_test().await;
    for query in ["size=0", "size=8", "size=abc", "size=-1", "size="] {
        let reply = call(&api, "GET", &format!("/new?{query}"), None).await;
        assert_eq!(reply.status, 400, "{query}");
        assert_eq!(reply.json()["errorCode"], 209, "{query}");
    }
    let reply = call(&api, "DELETE", "/new", None).await;
    assert_eq!(reply.status, 405);
}

#[tokio::test]
async fn registration_follows_etcds_discovery_client() {
    let api = routes_for_test().await;
    let token = new_token(&api, 3).await;
    let listing = call(
        &api,
        "GET",
        &format!("/{token}?quorum=false&recursive=false&sorted=false"),
        None,
    )
    .await;
    assert_eq!(listing.status, 200);
    assert_eq!(listing.index, Some(1));
    assert_eq!(listing.json()["node"]["dir"], true);
    assert_eq!(listing.json()["node"].get("nodes"), None);

    let created = call(
        &api,
        "PUT",
        &format!("/{token}/8e9e05c52164694d?prevExist=false"),
        Some("value=n1%3Dhttp%3A%2F%2F127.0.0.1%3A2380"),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.index, Some(2));
    let json = created.json();
    assert_eq!(json["action"], "create");
    assert_eq!(json["node"]["key"], format!("/{token}/8e9e05c52164694d"));
    assert_eq!(json["node"]["value"], "n1=http://127.0.0.1:2380");
    assert_eq!(json["node"]["createdIndex"], 2);

    let duplicate = call(
        &api,
        "PUT",
        &format!("/{token}/8e9e05c52164694d?prevExist=false"),
        Some("value=other"),
    )
    .await;
    assert_eq!(duplicate.status, 412);
    assert_eq!(duplicate.index, Some(2));
    assert_eq!(
        duplicate.body,
        format!(
            "{{\"errorCode\":105,\"message\":\"Key already exists\",\"cause\":\"/{token}/8e9e05c52164694d\",\"index\":2}}\n"
        )
    );

    // Confirming itself: a wait on its own key from its createdIndex.
    let confirm = call(
        &api,
        "GET",
        &format!("/{token}/8e9e05c52164694d?recursive=false&wait=true&waitIndex=2"),
        None,
    )
    .await;
    assert_eq!(confirm.status, 200);
    assert_eq!(confirm.json()["action"], "create");

    let listing = call(&api, "GET", &format!("/{token}"), None).await;
    let nodes = listing.json()["node"]["nodes"].clone();
    assert_eq!(nodes.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_recursive_wait_streams_the_next_registration() {
    let api = routes_for_test().await;
    let token = new_token(&api, 2).await;
    let waiter = {
        let api = api.clone();
        let token = token.clone();
        tokio::spawn(async move {
            call(
                &api,
                "GET",
                &format!("/{token}?recursive=true&wait=true&waitIndex=2"),
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiter.is_finished());
    call(
        &api,
        "PUT",
        &format!("/{token}/m2?prevExist=false"),
        Some("value=n2%3Dhttp%3A%2F%2Fb"),
    )
    .await;
    let reply = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("the wait ends")
        .unwrap();
    assert_eq!(reply.status, 200);
    // X-Etcd-Index is the index when the wait started.
    assert_eq!(reply.index, Some(1));
    let json = reply.json();
    assert_eq!(json["action"], "create");
    assert_eq!(json["node"]["modifiedIndex"], 2);
}

#[tokio::test]
async fn waiter_limit_answers_503() {
    let api = routes_with(1).await;
    let token = new_token(&api, 2).await;
    let held = {
        let api = api.clone();
        let token = token.clone();
        tokio::spawn(async move {
            call(
                &api,
                "GET",
                &format!("/{token}?recursive=true&wait=true"),
                None,
            )
            .await
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let refused = call(
        &api,
        "GET",
        &format!("/{token}?recursive=true&wait=true"),
        None,
    )
    .await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.json()["errorCode"], 300);
    held.abort();
}

#[tokio::test]
async fn bad_input_gets_v2_errors() {
    let api = routes_for_test().await;
    let token = new_token(&api, 3).await;
    let cases: Vec<(&str, String, Option<&str>, u16, u64)> = vec![
        (
            "GET",
            format!("/{token}?wait=true&waitIndex=x"),
            None,
            400,
            203,
        ),
        ("GET", format!("/{token}?recursive=yes"), None, 400, 209),
        ("GET", format!("/{token}/nope"), None, 404, 100),
        ("GET", format!("/{token}/_hidden"), None, 404, 100),
        ("GET", format!("/{token}/a/b"), None, 404, 100),
        (
            "GET",
            "/0123456789abcdef0123456789abcdef".into(),
            None,
            404,
            100,
        ),
        ("GET", "/".into(), None, 404, 100),
        ("PUT", format!("/{token}/m?prevExist=maybe"), None, 400, 209),
        ("PUT", format!("/{token}/m?ttl=5"), None, 400, 209),
        ("PUT", format!("/{token}/m?wait=true"), None, 400, 209),
        ("PUT", format!("/{token}/_config"), None, 400, 209),
        (
            "PUT",
            format!("/{token}/_config/size"),
            Some("value=9"),
            400,
            209,
        ),
        ("PUT", format!("/{token}/a/b"), None, 400, 209),
        ("PUT", format!("/{token}"), None, 403, 102),
        ("PUT", format!("/{token}?prevExist=false"), None, 412, 105),
        ("DELETE", format!("/{token}"), None, 403, 102),
        ("DELETE", format!("/{token}/nope"), None, 404, 100),
        ("POST", format!("/{token}"), None, 405, 209),
        ("PUT", format!("/{token}/%ff"), None, 400, 209),
    ];
    for (method, path, form, status, code) in cases {
        let reply = call(&api, method, &path, form).await;
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        let json = reply.json();
        assert_eq!(json["errorCode"], code, "{method} {path}: {}", reply.body);
        assert!(json["message"].is_string());
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let api = routes_for_test().await;
    let token = new_token(&api, 3).await;
    let big = format!("value={}", "x".repeat(request::MAX_BODY_BYTES));
    let reply = call(&api, "PUT", &format!("/{token}/m"), Some(&big)).await;
    assert_eq!(reply.status, 413);
    assert_eq!(reply.json()["errorCode"], 210);
    let long = format!("value={}", "x".repeat(request::MAX_VALUE_BYTES + 1));
    let reply = call(&api, "PUT", &format!("/{token}/m"), Some(&long)).await;
    assert_eq!(reply.status, 400);
}

#[tokio::test]
async fn set_update_and_delete() {
    let api = routes_for_test().await;
    let token = new_token(&api, 3).await;
    let set = call(&api, "PUT", &format!("/{token}/m"), Some("value=1")).await;
    assert_eq!(
        (set.status, set.json()["action"].as_str()),
        (201, Some("set"))
    );
    let replace = call(&api, "PUT", &format!("/{token}/m?value=2"), None).await;
    assert_eq!(replace.status, 200);
    assert_eq!(replace.json()["prevNode"]["value"], "1");
    let update = call(
        &api,
        "PUT",
        &format!("/{token}/m?prevExist=true"),
        Some("value=3"),
    )
    .await;
    assert_eq!(update.json()["action"], "update");
    let deleted = call(&api, "DELETE", &format!("/{token}/m"), None).await;
    assert_eq!(deleted.status, 200);
    assert_eq!(deleted.index, Some(5));
    assert_eq!(deleted.json()["action"], "delete");
}

#[tokio::test]
async fn health_and_metrics() {
    let api = routes_for_test().await;
    let health = call(&api, "GET", "/health", None).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (200, "{\"health\":\"true\"}\n")
    );
    let token = new_token(&api, 3).await;
    call(
        &api,
        "PUT",
        &format!("/{token}/m?prevExist=false"),
        Some("value=1"),
    )
    .await;
    let metrics = call(&api, "GET", "/metrics", None).await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("\ncetera_discovery_tokens 1\n"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("\ncetera_discovery_registrations 1\n")
    );
    assert!(
        metrics
            .body
            .contains("\ncetera_discovery_registrations_total 1\n")
    );
}
