//! What operators read from a running cluster: the member list, cluster
//! wide status and consistency hashes, defragmentation, `/v2/stats/self`
//! and `/metrics`. Every body runs against real etcd and cetera.

use std::collections::BTreeSet;

use anyhow::{Context, Result, ensure};
use serde_json::Value;
use tests::{Flavor, TestCluster, flavor_tests};

/// etcd's bbolt files cannot be tampered with as simply: cetera only.
#[tokio::test]
async fn a_member_whose_data_differs_is_flagged_corrupt() -> Result<()> {
    let cluster = TestCluster::builder(Flavor::Cetera, 3)
        .args(["--experimental-corrupt-check-time", "300ms"])
        .start()
        .await?;
    for i in 0..5 {
        cluster.etcdctl_ok(&["put", &format!("k{i}"), "v"]).await?;
    }
    // Healthy members agree: several rounds raise nothing.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    ensure!(
        cluster
            .etcdctl_ok(&["alarm", "list"])
            .await?
            .trim()
            .is_empty()
    );
    let follower = cluster.follower_indices().await?[0];
    let follower_id = cluster
        .status(follower)
        .await?
        .header
        .context("header")?
        .member_id;
    let member = cluster.member(follower);
    member.stop().await?;
    let db = member.data_dir().join("member").join("cetera.db");
    let tampered = tokio_rusqlite::rusqlite::Connection::open(&db)?
        .execute("UPDATE kv SET value = x'626164' WHERE key = x'6b32'", [])?;
    ensure!(tampered == 1, "no row tampered with");
    member.restart().await?;
    // Not `wait_ready`: the leader may raise the alarm before the member
    // serves its clients, and from then on its /health says false.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while let Err(e) = cluster.status(follower).await {
        ensure!(
            std::time::Instant::now() < deadline,
            "the restarted member never answered: {e}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let expected = format!("memberID:{follower_id} alarm:CORRUPT");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let alarms = cluster.etcdctl_ok(&["alarm", "list"]).await?;
        if alarms.contains(&expected) {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no CORRUPT alarm for {follower_id:x}: {alarms:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    // The keyspace is frozen; reads go on; /health says why.
    let refused = cluster.etcdctl(&["put", "after", "x"], None).await?;
    ensure!(
        refused
            .stderr_messages()
            .contains("etcdserver: corrupt cluster"),
        "{}",
        refused.stderr_messages()
    );
    ensure!(
        cluster
            .etcdctl_ok(&["get", "k0", "--print-value-only"])
            .await?
            .trim()
            == "v"
    );
    // Member 0 answers /health from its own applied alarms, which may
    // trail the member that answered `alarm list`.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let (status, body) = http_get(&format!("{}/health", cluster.client_url(0))).await?;
        if status == 503 && body.contains("ALARM CORRUPT") {
            return Ok(());
        }
        ensure!(std::time::Instant::now() < deadline, "{status} {body}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

flavor_tests!(
    member_list_shows_every_member_with_its_urls,
    hashkv_is_equal_on_every_member,
    defragment_keeps_the_data,
    stats_self_has_etcds_shape,
    metrics_parse_as_prometheus_text,
    followers_count_the_leader_among_their_active_peers,
    exceeding_the_quota_raises_nospace_until_compact_defrag_disarm,
);

/// A plain HTTP GET, as operators' scripts do it.
async fn http_get(url: &str) -> Result<(u16, String)> {
    let response = reqwest::get(url)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

async fn member_list_shows_every_member_with_its_urls(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    cluster.etcdctl_ok(&["put", "a", "1"]).await?;
    let listed: Value = serde_json::from_str(
        &cluster
            .etcdctl_ok(&["member", "list", "-w", "json"])
            .await?,
    )?;
    let members = listed["members"].as_array().context("members")?;
    assert_eq!(members.len(), 3);
    let mut names = BTreeSet::new();
    for member in members {
        names.insert(member["name"].as_str().unwrap_or_default().to_string());
        let client = member["clientURLs"][0].as_str().unwrap_or_default();
        ensure!(
            cluster.client_urls().iter().any(|u| u == client),
            "unknown client URL {client}"
        );
        ensure!(
            member["peerURLs"][0]
                .as_str()
                .is_some_and(|u| u.starts_with("http://127.0.0.1:"))
        );
    }
    assert_eq!(
        names,
        BTreeSet::from(["n1".into(), "n2".into(), "n3".into()])
    );
    // The table form that scripts parse works too, through every endpoint.
    let table = cluster
        .etcdctl_ok(&["endpoint", "status", "--cluster", "-w", "table"])
        .await?;
    ensure!(table.matches("127.0.0.1").count() >= 3, "{table}");
    Ok(())
}

async fn hashkv_is_equal_on_every_member(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    for i in 0..20 {
        cluster
            .etcdctl_ok(&["put", &format!("h{i}"), &i.to_string()])
            .await?;
    }
    cluster.etcdctl_ok(&["del", "h1"]).await?;
    // A linearizable read on each member so every one has applied it all.
    for i in 0..3 {
        cluster.etcdctl_at(i, &["get", "h2"], None).await?.ok()?;
    }
    let out = cluster
        .etcdctl_ok(&["endpoint", "hashkv", "--cluster", "-w", "json"])
        .await?;
    let hashes: Vec<Value> = serde_json::from_str(&out)?;
    let distinct: BTreeSet<u64> = hashes
        .iter()
        .map(|h| h["HashKV"]["hash"].as_u64().unwrap_or(0))
        .collect();
    ensure!(
        hashes.len() == 3 && distinct.len() == 1,
        "hashes differ: {out}"
    );
    Ok(())
}

async fn defragment_keeps_the_data(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let big = "x".repeat(10_000);
    for i in 0..50 {
        cluster.etcdctl_ok(&["put", &format!("d{i}"), &big]).await?;
    }
    cluster.etcdctl_ok(&["del", "d", "--prefix"]).await?;
    cluster.etcdctl_ok(&["put", "kept", "yes"]).await?;
    let out = cluster.etcdctl_ok(&["defrag"]).await?;
    ensure!(out.contains("Finished defragmenting"), "{out}");
    assert_eq!(
        cluster
            .etcdctl_ok(&["get", "kept", "--print-value-only"])
            .await?,
        "yes\n"
    );
    Ok(())
}

async fn stats_self_has_etcds_shape(flavor: Flavor) -> Result<()> {
    // etcd serves /v2/* only with --enable-v2; cetera always does.
    let mut builder = TestCluster::builder(flavor, 3);
    if flavor == Flavor::Etcd {
        builder = builder.arg("--enable-v2");
    }
    let cluster = builder.start().await?;
    cluster.etcdctl_ok(&["put", "a", "1"]).await?;
    let follower = cluster.follower_indices().await?[0];
    let (status, body) =
        http_get(&format!("{}/v2/stats/self", cluster.client_url(follower))).await?;
    assert_eq!(status, 200);
    let stats: Value = serde_json::from_str(&body)?;
    let fields: BTreeSet<&str> = stats
        .as_object()
        .context("object")?
        .keys()
        .map(String::as_str)
        .collect();
    for field in [
        "name",
        "id",
        "state",
        "startTime",
        "leaderInfo",
        "recvAppendRequestCnt",
        "sendAppendRequestCnt",
    ] {
        ensure!(fields.contains(field), "missing {field} in {body}");
    }
    assert_eq!(stats["state"], "StateFollower");
    assert_eq!(stats["name"], format!("n{}", follower + 1));
    ensure!(
        stats["recvAppendRequestCnt"].as_u64().unwrap_or(0) > 0,
        "{body}"
    );
    let leader_info = stats["leaderInfo"].as_object().context("leaderInfo")?;
    for field in ["leader", "uptime", "startTime"] {
        ensure!(
            leader_info.contains_key(field),
            "missing leaderInfo.{field} in {body}"
        );
    }
    ensure!(
        leader_info["uptime"]
            .as_str()
            .is_some_and(|u| u.ends_with('s')),
        "{body}"
    );

    // `/v2/stats/leader`: the leader's view of each follower; a follower
    // refuses.
    let (status, body) =
        http_get(&format!("{}/v2/stats/leader", cluster.client_url(follower))).await?;
    ensure!(
        status == 403
            && serde_json::from_str::<Value>(&body)?
                == serde_json::json!({"message": "not current leader"}),
        "{status} {body}"
    );
    let leader = cluster.leader_index().await?;
    let (status, body) =
        http_get(&format!("{}/v2/stats/leader", cluster.client_url(leader))).await?;
    ensure!(status == 200, "{status} {body}");
    let stats: Value = serde_json::from_str(&body)?;
    let followers = stats["followers"].as_object().context("followers")?;
    ensure!(followers.len() == 2, "{body}");
    ensure!(stats["leader"].is_string(), "{body}");
    for follower in followers.values() {
        for field in [
            "current",
            "average",
            "standardDeviation",
            "minimum",
            "maximum",
        ] {
            ensure!(
                follower["latency"][field].is_number(),
                "no latency.{field}: {body}"
            );
        }
        ensure!(
            follower["counts"]["success"].as_u64().unwrap_or(0) > 0,
            "{body}"
        );
        ensure!(follower["counts"]["fail"].is_u64(), "{body}");
    }
    Ok(())
}

async fn metrics_parse_as_prometheus_text(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    cluster.etcdctl_ok(&["put", "a", "1"]).await?;
    let (status, body) = http_get(&format!("{}/metrics", cluster.client_url(0))).await?;
    assert_eq!(status, 200);
    let mut samples = std::collections::BTreeMap::new();
    let mut series = std::collections::BTreeMap::new();
    for line in body
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (name, value) = line.rsplit_once(' ').context("a sample line")?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("bad value in {line:?}"))?;
        let name = name.split('{').next().unwrap_or(name);
        ensure!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        samples.insert(name.to_string(), value);
        series.insert(
            line.rsplit_once(' ').map_or(line, |(s, _)| s).to_string(),
            value,
        );
    }
    assert_eq!(samples.get("etcd_server_has_leader"), Some(&1.0));
    assert_eq!(samples.get("etcd_server_is_leader"), Some(&1.0));
    ensure!(
        samples
            .get("etcd_mvcc_db_total_size_in_bytes")
            .is_some_and(|v| *v > 0.0)
    );
    ensure!(samples.contains_key("etcd_server_proposals_committed_total"));
    ensure!(samples.contains_key("etcd_server_proposals_pending"));
    assert_eq!(samples.get("etcd_debugging_mvcc_keys_total"), Some(&1.0));
    ensure!(
        samples
            .get("etcd_disk_wal_fsync_duration_seconds_count")
            .is_some_and(|v| *v > 0.0)
    );
    for process in [
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
    ] {
        ensure!(samples.contains_key(process), "no {process}");
    }
    // go-grpc-prometheus' counters, labelled as etcd's dashboards expect.
    let put = r#"{grpc_method="Put",grpc_service="etcdserverpb.KV",grpc_type="unary"}"#;
    ensure!(
        series
            .get(&format!("grpc_server_started_total{put}"))
            .is_some_and(|v| *v >= 1.0),
        "no started Put in {body}"
    );
    let handled = format!("grpc_server_handled_total{{grpc_code=\"OK\",{}", &put[1..]);
    ensure!(
        series.get(&handled).is_some_and(|v| *v >= 1.0),
        "no handled Put in {body}"
    );
    Ok(())
}

async fn exceeding_the_quota_raises_nospace_until_compact_defrag_disarm(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::builder(flavor, 1)
        .args(["--quota-backend-bytes", "600000"])
        .start()
        .await?;
    let value = "x".repeat(20_000);
    let mut refused = None;
    for i in 0..200 {
        let out = cluster
            .etcdctl(&["put", &format!("q{i}"), &value], None)
            .await?;
        if !out.status.success() {
            refused = Some(out.stderr_messages());
            break;
        }
    }
    let refused = refused.context("the quota was never enforced")?;
    ensure!(
        refused.contains("etcdserver: mvcc: database space exceeded"),
        "{refused}"
    );
    let alarms = cluster.etcdctl_ok(&["alarm", "list"]).await?;
    ensure!(alarms.contains("alarm:NOSPACE"), "{alarms}");
    // `/health` says false under the alarm, unless told to ignore it.
    let health = format!("{}/health", cluster.client_url(0));
    let (status, body) = http_get(&health).await?;
    let verdict: Value = serde_json::from_str(&body)?;
    ensure!(
        status == 503 && verdict["health"] == "false",
        "{status} {body}"
    );
    let (status, body) = http_get(&format!("{health}?exclude=NOSPACE")).await?;
    ensure!(
        status == 200 && body == r#"{"health":"true"}"#,
        "{status} {body}"
    );
    // Reads keep working under the alarm.
    assert_eq!(
        cluster
            .etcdctl_ok(&["get", "q0", "--keys-only"])
            .await?
            .trim(),
        "q0"
    );

    // Delete first, then compact at the revision after the delete, so no
    // read at or after the compaction can still see the big values.
    cluster.etcdctl_ok(&["del", "q", "--prefix"]).await?;
    let status: Value =
        serde_json::from_str(&cluster.etcdctl_ok(&["get", "q0", "-w", "json"]).await?)?;
    let revision = status["header"]["revision"].as_i64().context("revision")?;
    cluster
        .etcdctl_ok(&["compaction", &revision.to_string(), "--physical"])
        .await?;
    cluster.etcdctl_ok(&["defrag"]).await?;
    cluster.etcdctl_ok(&["alarm", "disarm"]).await?;
    assert_eq!(cluster.etcdctl_ok(&["alarm", "list"]).await?.trim(), "");
    let (status, body) = http_get(&health).await?;
    ensure!(
        status == 200 && body == r#"{"health":"true"}"#,
        "{status} {body}"
    );
    assert_eq!(
        cluster.etcdctl_ok(&["put", "after", "ok"]).await?.trim(),
        "OK"
    );
    Ok(())
}

/// etcd's `etcd_network_active_peers{Local,Remote}`: a follower is
/// connected to its leader (in cetera, the leader's append stream), also
/// after a leader was killed and another took over.
async fn followers_count_the_leader_among_their_active_peers(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    cluster.etcdctl_ok(&["put", "a", "1"]).await?;
    let leader = cluster.leader_index().await?;
    wait_for_active_leader(&cluster, leader).await?;

    cluster.member(leader).kill().await?;
    let successor = cluster.leader_index().await?;
    ensure!(successor != leader);
    wait_for_active_leader(&cluster, successor).await
}

/// Waits until every running follower lists the leader `leader` as an
/// active peer.
async fn wait_for_active_leader(cluster: &TestCluster, leader: usize) -> Result<()> {
    let id_of = |i: usize| async move {
        let status = cluster.status(i).await?;
        Ok::<_, anyhow::Error>(status.header.context("header")?.member_id)
    };
    let leader_id = id_of(leader).await?;
    for follower in cluster.follower_indices().await? {
        let sample = format!(
            "etcd_network_active_peers{{Local=\"{:x}\",Remote=\"{leader_id:x}\"}} 1",
            id_of(follower).await?
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let (_, body) = http_get(&format!("{}/metrics", cluster.client_url(follower))).await?;
            if body.lines().any(|line| line == sample) {
                break;
            }
            ensure!(
                std::time::Instant::now() < deadline,
                "member {follower} never listed {sample:?}; its active peers: {:?}",
                body.lines()
                    .filter(|l| l.starts_with("etcd_network_active_peers"))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
    Ok(())
}
