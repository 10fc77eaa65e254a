//! etcd's v3 JSON gateway (`/v3/...`), compared with real etcd.
//!
//! `gateway_transcript_matches_real_etcd` sends one scripted sequence of
//! curl-style requests (KV, txn, leases through both `/v3/lease` and the
//! `/v3/kv/lease` aliases, a keepalive stream, compaction, the `/v3beta/`
//! rewrite, malformed input, wrong methods and paths, then a watch stream)
//! to a real etcd member and to a member of the flavor under test, and
//! requires identical transcripts: status, the headers clients see, and
//! the body byte for byte, once `cluster_id`, `member_id` and `raft_term`
//! (and, where a step says so, values that legitimately differ such as a
//! lease's remaining TTL) are masked. The `on_etcd` variant compares two
//! etcd members, which proves the script deterministic.
//!
//! `gateway_watch_streams_ndjson` checks the stream framing itself: one
//! `{"result":...}` object per line, several requests in one body, and a
//! stream that stays open for events.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tests::diff::line_diff;
use tests::transcript::mask;
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    gateway_transcript_matches_real_etcd,
    gateway_watch_streams_ndjson
);

/// How long any one HTTP exchange may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// Values that differ between any two clusters.
const VOLATILE: &[&str] = &["cluster_id", "member_id", "raft_term"];

/// One request: method, path, body, and extra keys to mask in the answer.
struct Step {
    method: &'static str,
    path: &'static str,
    body: &'static str,
    mask: &'static [&'static str],
    headers: &'static [(&'static str, &'static str)],
}

const fn post(path: &'static str, body: &'static str) -> Step {
    Step {
        method: "POST",
        path,
        body,
        mask: &[],
        headers: &[],
    }
}

const fn masked(path: &'static str, body: &'static str, mask: &'static [&'static str]) -> Step {
    Step {
        method: "POST",
        path,
        body,
        mask,
        headers: &[],
    }
}

const fn call(method: &'static str, path: &'static str) -> Step {
    Step {
        method,
        path,
        body: "",
        mask: &[],
        headers: &[],
    }
}

// Keys: "foo/a" = Zm9vL2E=, "foo/b" = Zm9vL2I=, "foo/" = Zm9vLw==,
// "foo0" = Zm9vMA==, "bar" = YmFy, "none" = bm9uZQ==, "leased" = bGVhc2Vk.
const SCRIPT: &[Step] = &[
    // An empty store: only a header.
    post("/v3/kv/range", r#"{"key":"AA==","range_end":"AA=="}"#),
    post("/v3/kv/put", r#"{"key":"Zm9vL2E=","value":"MQ=="}"#),
    post(
        "/v3/kv/put",
        r#"{"key":"Zm9vL2I=","value":"Mg==","prev_kv":true}"#,
    ),
    post(
        "/v3/kv/put",
        r#"{"key":"Zm9vL2E=","value":"Mw==","prev_kv":true}"#,
    ),
    post("/v3/kv/put", r#"{"key":"YmFy","value":""}"#),
    post("/v3/kv/range", r#"{"key":"Zm9vL2E="}"#),
    // A prefix, sorted and limited; camelCase names, numeric enums and
    // unknown fields are accepted.
    post(
        "/v3/kv/range",
        r#"{"key":"Zm9vLw==","range_end":"Zm9vMA=="}"#,
    ),
    post(
        "/v3/kv/range",
        r#"{"key":"Zm9vLw==","range_end":"Zm9vMA==","sort_order":"DESCEND","sort_target":"MOD","limit":1}"#,
    ),
    post(
        "/v3/kv/range",
        r#"{"key":"Zm9vLw==","rangeEnd":"Zm9vMA==","keys_only":true,"sort_order":2,"limit":"5","bogus":{"x":1}}"#,
    ),
    post("/v3/kv/range", r#"{"key":"YmFy"}"#),
    post("/v3/kv/range", r#"{"key":"bm9uZQ=="}"#),
    post(
        "/v3/kv/range",
        r#"{"key":[102,111,111,47,97],"count_only":true}"#,
    ),
    // Only the first of several objects counts in a unary call.
    post("/v3/kv/range", r#"{"key":"YmFy"} {"key":"Zm9vL2E="}"#),
    // Txn: compare on value, success branch; compare on create_revision 0
    // (a oneof member that is zero), failure branch; nested txn.
    post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9vL2E=","result":"EQUAL","target":"VALUE","value":"Mw=="}],"success":[{"request_range":{"key":"Zm9vL2E="}},{"request_put":{"key":"YmFy","value":"Yg==","prev_kv":true}}],"failure":[]}"#,
    ),
    post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"YmFy","target":"CREATE","create_revision":0}],"success":[{"request_put":{"key":"YmFy","value":""}}],"failure":[{"request_delete_range":{"key":"Zm9vL2I=","prev_kv":true}},{"request_range":{"key":"Zm9vLw==","range_end":"Zm9vMA==","count_only":true}}]}"#,
    ),
    post(
        "/v3/kv/txn",
        r#"{"compare":[{"key":"Zm9vL2E=","target":"VERSION","result":"GREATER","version":"1"}],"success":[{"request_txn":{"success":[{"request_range":{"key":"YmFy"}}]}}]}"#,
    ),
    post(
        "/v3/kv/deleterange",
        r#"{"key":"Zm9vLw==","range_end":"Zm9vMA==","prev_kv":true}"#,
    ),
    post("/v3/kv/deleterange", r#"{"key":"bm9uZQ=="}"#),
    // Leases, through /v3/lease and the /v3/kv/lease aliases.
    post("/v3/lease/grant", r#"{"ID":4660,"TTL":60}"#),
    post("/v3/lease/grant", r#"{"ID":"4661","TTL":"60"}"#),
    post("/v3/lease/grant", r#"{"ID":4660,"TTL":60}"#),
    post(
        "/v3/kv/put",
        r#"{"key":"bGVhc2Vk","value":"eA==","lease":"4660"}"#,
    ),
    masked(
        "/v3/lease/timetolive",
        r#"{"ID":4660,"keys":true}"#,
        &["TTL"],
    ),
    masked("/v3/kv/lease/timetolive", r#"{"ID":"4661"}"#, &["TTL"]),
    post("/v3/lease/timetolive", r#"{"ID":999}"#),
    post("/v3/kv/lease/revoke", r#"{"ID":4661}"#),
    post("/v3/kv/lease/leases", ""),
    post("/v3/lease/leases", "{}"),
    // One answer per request, then the stream ends with the body.
    post(
        "/v3/lease/keepalive",
        r#"{"ID":4660} {"ID":"4660"} {"ID":1}"#,
    ),
    post("/v3/lease/revoke", r#"{"ID":4660}"#),
    post("/v3/lease/revoke", r#"{"ID":4660}"#),
    post("/v3/kv/range", r#"{"key":"bGVhc2Vk"}"#),
    post(
        "/v3/kv/put",
        r#"{"key":"YmFy","value":"eQ==","lease":"12345"}"#,
    ),
    post("/v3/kv/put", r#"{"key":"bm9uZQ==","ignore_value":true}"#),
    // Compaction and the revisions it removes.
    post("/v3/kv/compaction", r#"{"revision":3}"#),
    post("/v3/kv/compaction", r#"{"revision":"3","physical":true}"#),
    post("/v3/kv/range", r#"{"key":"YmFy","revision":2}"#),
    post("/v3/kv/range", r#"{"key":"YmFy","revision":1000}"#),
    // The /v3beta/ prefix of older clients.
    post("/v3beta/kv/range", r#"{"key":"YmFy"}"#),
    post("/v3beta/kv/put", r#"{"key":"","value":"eA=="}"#),
    // Metadata headers are passed on to the gRPC call.
    Step {
        method: "POST",
        path: "/v3/kv/range",
        body: r#"{"key":"YmFy","serializable":true}"#,
        mask: &[],
        headers: &[("Grpc-Metadata-hasleader", "true")],
    },
    masked(
        "/v3/maintenance/status",
        "{}",
        &[
            "version",
            "dbSize",
            "leader",
            "raftIndex",
            "raftTerm",
            "raftAppliedIndex",
            "dbSizeInUse",
        ],
    ),
    // Wrong methods and paths.
    call("GET", "/v3/kv/range"),
    call("PUT", "/v3beta/watch"),
    post("/v3/kv/nope", "{}"),
    post("/v3/kv/range/", "{}"),
    call("OPTIONS", "/v3/kv/range"),
    // Malformed input: Go's own messages, as etcd answers them.
    post("/v3/kv/range", ""),
    post("/v3/kv/range", r#"{"key":"#),
    post("/v3/kv/range", r#"{"key":"YmFy",}"#),
    post("/v3/kv/range", "[]"),
    post("/v3/kv/range", r#"{"key":"YmFy!"}"#),
    post("/v3/kv/range", r#"{"key":5}"#),
    post("/v3/kv/range", r#"{"key":"YmFy","limit":"ten"}"#),
    post("/v3/kv/range", r#"{"key":"YmFy","limit":1.5}"#),
    post("/v3/kv/range", r#"{"key":"YmFy","sort_order":"SIDEWAYS"}"#),
    post("/v3/kv/range", r#"{"key":"YmFy","serializable":"yes"}"#),
    post("/v3/kv/txn", r#"{"success":{}}"#),
    // A client stream whose first request cannot be read: Unknown, 500.
    post("/v3/watch", "xx"),
    post("/v3/lease/keepalive", r#"{"ID":"x"}"#),
];

/// The watch part of the script: a body with several requests, then writes.
const WATCH_BODY: &str = r#"{"create_request":{"key":"d2F0Y2hlZA==","prev_kv":true}} {"create_request":{"key":"eA==","range_end":"eQ==","watch_id":7}} {"progress_request":{}} {"cancel_request":{"watch_id":7}}"#;
const WATCH_WRITES: &[Step] = &[
    post("/v3/kv/put", r#"{"key":"d2F0Y2hlZA==","value":"YQ=="}"#),
    post("/v3/kv/put", r#"{"key":"eA==","value":"YQ=="}"#),
    post("/v3/kv/put", r#"{"key":"d2F0Y2hlZA==","value":"Yg=="}"#),
    post("/v3/kv/deleterange", r#"{"key":"d2F0Y2hlZA=="}"#),
];

/// The headers a gateway client sees (hyper and Go spell and order the
/// rest differently; Go also announces a trailer on errors).
const SHOWN_HEADERS: &[&str] = &[
    "content-type",
    "grpc-metadata-content-type",
    "x-content-type-options",
    "location",
    "access-control-allow-origin",
    "access-control-allow-methods",
    "access-control-allow-headers",
];

async fn send(client: &reqwest::Client, base: &str, step: &Step) -> Result<String> {
    let method = reqwest::Method::from_bytes(step.method.as_bytes())?;
    let mut request = client
        .request(method, format!("{base}{}", step.path))
        .body(step.body);
    for (name, value) in step.headers {
        request = request.header(*name, *value);
    }
    let exchange = async {
        let response = request.send().await?;
        let mut out = format!("< {}\n", response.status().as_u16());
        for name in SHOWN_HEADERS {
            if let Some(value) = response.headers().get(*name) {
                out.push_str(&format!("< {name}: {}\n", value.to_str()?));
            }
        }
        let body = response.text().await?;
        let mut keys = VOLATILE.to_vec();
        keys.extend(step.mask);
        out.push_str(&mask(&body, &keys));
        out.push('\n');
        anyhow::Ok(out)
    };
    tokio::time::timeout(STEP_TIMEOUT, exchange)
        .await
        .with_context(|| format!("{} {} timed out", step.method, step.path))?
}

/// Reads the next `n` lines of a streaming response.
async fn read_lines(
    response: &mut reqwest::Response,
    pending: &mut String,
    n: usize,
) -> Result<Vec<String>> {
    let mut lines = Vec::new();
    while lines.len() < n {
        if let Some(at) = pending.find('\n') {
            lines.push(pending[..at].to_string());
            pending.drain(..=at);
            continue;
        }
        let chunk = tokio::time::timeout(STEP_TIMEOUT, response.chunk())
            .await
            .with_context(|| format!("waiting for line {} of a stream", lines.len() + 1))??;
        match chunk {
            Some(chunk) => pending.push_str(std::str::from_utf8(&chunk)?),
            None => bail!("the stream ended after {lines:?}"),
        }
    }
    Ok(lines)
}

async fn transcript(cluster: &TestCluster) -> Result<String> {
    let base = cluster.client_url(0);
    let client = reqwest::Client::new();
    let mut out = String::new();
    for step in SCRIPT {
        out.push_str(&format!("> {} {} {}\n", step.method, step.path, step.body));
        out.push_str(&send(&client, &base, step).await?);
    }

    out.push_str(&format!("> POST /v3/watch {WATCH_BODY}\n"));
    let mut watch = tokio::time::timeout(
        STEP_TIMEOUT,
        client
            .post(format!("{base}/v3/watch"))
            .body(WATCH_BODY)
            .send(),
    )
    .await??;
    out.push_str(&format!("< {}\n", watch.status().as_u16()));
    let mut pending = String::new();
    // created, created (7), progress, canceled (7): before any write.
    for line in read_lines(&mut watch, &mut pending, 4).await? {
        out.push_str(&mask(&line, VOLATILE));
        out.push('\n');
    }
    for step in WATCH_WRITES {
        out.push_str(&format!("> {} {} {}\n", step.method, step.path, step.body));
        out.push_str(&send(&client, &base, step).await?);
    }
    // Three events on the watched key, none for the canceled watch.
    for line in read_lines(&mut watch, &mut pending, 3).await? {
        out.push_str(&mask(&line, VOLATILE));
        out.push('\n');
    }
    Ok(out)
}

async fn gateway_transcript_matches_real_etcd(flavor: Flavor) -> Result<()> {
    let (reference, tested) = tokio::join!(
        TestCluster::start(Flavor::Etcd, 1),
        TestCluster::start(flavor, 1),
    );
    let (reference, tested) = (reference?, tested?);
    let (expected, actual) = tokio::join!(transcript(&reference), transcript(&tested));
    let (expected, actual) = (expected?, actual?);
    assert!(
        expected.contains("\"type\":\"DELETE\""),
        "the script should have run to completion:\n{expected}"
    );
    if expected != actual {
        panic!(
            "gateway transcripts differ (- real etcd, + {flavor}):\n{}",
            line_diff(&expected, &actual)
        );
    }
    Ok(())
}

async fn gateway_watch_streams_ndjson(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let base = cluster.client_url(0);
    let client = reqwest::Client::new();
    // Two watches created by one body; the stream stays open.
    let mut watch = client
        .post(format!("{base}/v3beta/watch"))
        .body(
            r#"{"create_request":{"key":"YQ=="}}{"create_request":{"key":"Yg==","watch_id":"9"}}"#,
        )
        .send()
        .await?;
    assert_eq!(watch.status().as_u16(), 200);
    assert_eq!(watch.headers()["content-type"], "application/json");
    assert!(watch.headers().get("content-length").is_none());
    let mut pending = String::new();
    let created = read_lines(&mut watch, &mut pending, 2).await?;
    let mut ids = Vec::new();
    for line in &created {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let result = &value["result"];
        assert_eq!(result["created"], true, "{line}");
        assert_eq!(result["header"]["revision"], "1", "{line}");
        ids.push(result["watch_id"].clone());
    }
    // The first watch's id is 0, which the gateway leaves out.
    assert_eq!(ids, [serde_json::Value::Null, "9".into()]);

    for (key, value) in [("YQ==", "MQ=="), ("Yg==", "Mg=="), ("YQ==", "Mw==")] {
        let response = client
            .post(format!("{base}/v3/kv/put"))
            .body(format!(r#"{{"key":"{key}","value":"{value}"}}"#))
            .send()
            .await?;
        assert_eq!(response.status().as_u16(), 200);
    }
    let events = read_lines(&mut watch, &mut pending, 3).await?;
    let mut seen = Vec::new();
    for line in &events {
        let value: serde_json::Value = serde_json::from_str(line)?;
        let result = &value["result"];
        let kv = &result["events"][0]["kv"];
        seen.push((
            result["watch_id"].as_str().unwrap_or("0").to_string(),
            kv["key"].as_str().unwrap_or_default().to_string(),
            kv["value"].as_str().unwrap_or_default().to_string(),
            kv["mod_revision"].as_str().unwrap_or_default().to_string(),
        ));
        // int64 values are strings, as in etcd's gateway.
        assert!(result["header"]["revision"].is_string(), "{line}");
    }
    let expected: Vec<(String, String, String, String)> = [
        ("0", "YQ==", "MQ==", "2"),
        ("9", "Yg==", "Mg==", "3"),
        ("0", "YQ==", "Mw==", "4"),
    ]
    .iter()
    .map(|(a, b, c, d)| (a.to_string(), b.to_string(), c.to_string(), d.to_string()))
    .collect();
    assert_eq!(seen, expected);
    assert!(pending.is_empty(), "no partial line: {pending:?}");
    drop(watch);

    // A keepalive stream answers each request of the body, then ends.
    let grant = client
        .post(format!("{base}/v3/lease/grant"))
        .body(r#"{"ID":77,"TTL":30}"#)
        .send()
        .await?
        .text()
        .await?;
    assert!(grant.contains(r#""ID":"77","TTL":"30""#), "{grant}");
    let keepalive = tokio::time::timeout(
        STEP_TIMEOUT,
        client
            .post(format!("{base}/v3/lease/keepalive"))
            .body(r#"{"ID":77}{"ID":78}"#)
            .send(),
    )
    .await??;
    let body = tokio::time::timeout(STEP_TIMEOUT, keepalive.text()).await??;
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines.len(), 2, "{body}");
    assert!(lines[0].starts_with(r#"{"result":{"header":"#), "{body}");
    assert!(lines[0].ends_with(r#""ID":"77","TTL":"30"}}"#), "{body}");
    assert!(lines[1].ends_with(r#""ID":"78"}}"#), "{body}");
    assert!(body.ends_with('\n'));
    Ok(())
}
