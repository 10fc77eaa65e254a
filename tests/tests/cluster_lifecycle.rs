//! Process lifecycle of cluster members, and the harness that drives it:
//! start-up until healthy, SIGTERM for a clean exit, SIGKILL, restart with
//! the same data dir and ports, leader discovery, and cleanup on drop.
//!
//! `on_etcd::*` / `on_cetera::*` check server behaviour on both flavors; the
//! `harness_*` tests check the harness itself and use etcd only.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use tests::kv::{get_value, put};
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    a_sigtermed_member_exits_and_restarts_with_its_data,
    a_sigkilled_member_restarts_and_rejoins,
    health_and_status_report_one_leader,
);

async fn a_sigtermed_member_exits_and_restarts_with_its_data(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut kv = cluster.kv(0)?;
    put(&mut kv, "persist", "me").await?;
    let member = cluster.member(0);
    member.stop().await?;
    assert!(!member.is_running());
    member.restart().await?;
    cluster.wait_ready(0).await?;
    assert_eq!(get_value(&mut kv, "persist").await?.as_deref(), Some("me"));
    Ok(())
}

async fn a_sigkilled_member_restarts_and_rejoins(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let follower = cluster.follower_indices().await?[0];
    cluster.member(follower).kill().await?;
    assert_eq!(cluster.running().len(), 2);

    // The remaining majority keeps serving writes.
    let leader = cluster.leader_index().await?;
    let mut kv = cluster.kv(leader)?;
    put(&mut kv, "while-down", "1").await?;

    cluster.member(follower).restart().await?;
    cluster.wait_ready(follower).await?;
    let mut on_follower = cluster.kv(follower)?;
    assert_eq!(
        get_value(&mut on_follower, "while-down").await?.as_deref(),
        Some("1")
    );
    Ok(())
}

async fn health_and_status_report_one_leader(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let mut ids = Vec::new();
    for i in 0..3 {
        let status = cluster.status(i).await?;
        let header = status.header.expect("status has a header");
        assert_ne!(header.member_id, 0);
        ids.push((header.member_id, status.leader));
    }
    let leader_id = ids[leader].0;
    assert!(
        ids.iter().all(|&(_, l)| l == leader_id),
        "all members name member {leader} as leader: {ids:?}"
    );
    let mut distinct: Vec<u64> = ids.iter().map(|&(id, _)| id).collect();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 3, "member ids are distinct: {ids:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_dropping_a_cluster_kills_its_processes() -> Result<()> {
    let cluster = TestCluster::start(Flavor::Etcd, 3).await?;
    let pids: Vec<u32> = cluster.members().iter().filter_map(|m| m.pid()).collect();
    assert_eq!(pids.len(), 3);
    assert!(
        pids.iter()
            .all(|pid| Path::new(&format!("/proc/{pid}")).exists())
    );
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    for pid in pids {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "process {pid} survived the cluster"
        );
    }
    assert!(!dir.exists() || std::env::var_os("CETERA_TEST_KEEP").is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_parallel_clusters_get_distinct_ports_and_tokens() -> Result<()> {
    let (a, b, c) = tokio::join!(
        TestCluster::start(Flavor::Etcd, 1),
        TestCluster::start(Flavor::Etcd, 1),
        TestCluster::start(Flavor::Etcd, 3),
    );
    let clusters = [a?, b?, c?];
    let mut urls: Vec<String> = clusters
        .iter()
        .flat_map(|c| {
            c.members()
                .iter()
                .flat_map(|m| [m.client_url(), m.peer_url()])
        })
        .collect();
    assert_eq!(urls.len(), 10);
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 10, "ports are never shared");
    // Each is its own cluster: a write to one is invisible in the others.
    let mut kv_a = clusters[0].kv(0)?;
    let mut kv_c = clusters[2].kv(0)?;
    put(&mut kv_a, "only-in-a", "1").await?;
    assert_eq!(get_value(&mut kv_c, "only-in-a").await?, None);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_start_fails_fast_with_the_members_log() -> Result<()> {
    // A ready timeout far beyond nextest's limit: only failing fast on the
    // process exit can make this test pass.
    let err = TestCluster::builder(Flavor::Etcd, 1)
        .arg("--no-such-flag")
        .ready_timeout(Duration::from_secs(3600))
        .start()
        .await
        .expect_err("etcd rejects unknown flags");
    let message = format!("{err:#}");
    assert!(message.contains("exited"), "{message}");
    assert!(
        message.contains("no-such-flag"),
        "log tail included: {message}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn harness_etcdctl_reaches_every_member() -> Result<()> {
    let cluster = TestCluster::start(Flavor::Etcd, 3).await?;
    assert_eq!(cluster.endpoints().split(',').count(), 3);
    assert_eq!(cluster.etcdctl_ok(&["put", "x", "1"]).await?, "OK\n");
    for i in 0..3 {
        let out = cluster
            .etcdctl_at(i, &["get", "x", "--consistency=l"], None)
            .await?;
        assert_eq!(out.ok()?, "x\n1\n");
    }
    let status = cluster
        .etcdctl(&["endpoint", "status", "-w", "json"], None)
        .await?;
    assert_eq!(status.json()?.as_array().map(Vec::len), Some(3));
    Ok(())
}

/// A follower that is down is logged the way etcd logs it: "became
/// inactive" once (after a second of failed requests), a reminder every
/// five seconds, "became active" when it answers again; not several lines
/// per failed request. The log file holds no terminal colour codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_peer_is_logged_once_then_every_few_seconds() -> Result<()> {
    let cluster = TestCluster::start(Flavor::Cetera, 3).await?;
    let leader = cluster.leader_index().await?;
    let follower = cluster.follower_indices().await?[0];
    let log = cluster.member(leader).log_path().to_path_buf();
    let before = std::fs::read_to_string(&log)?.len();
    cluster.member(follower).kill().await?;
    let killed = std::time::Instant::now();
    // Long enough for the first report and one reminder.
    tokio::time::sleep(Duration::from_millis(7500)).await;
    cluster.member(follower).restart().await?;
    cluster.wait_ready(follower).await?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let written = loop {
        let text = std::fs::read_to_string(&log)?;
        let written = text[before..].to_string();
        if written.contains("peer became active") || std::time::Instant::now() > deadline {
            break written;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let count = |needle: &str| written.matches(needle).count();
    // One reminder per five seconds of the outage at most (a slow restart
    // makes it longer).
    let reminders = 1..=(killed.elapsed().as_secs() as usize / 5).max(1);
    anyhow::ensure!(
        count("peer became inactive") == 1
            && reminders.contains(&count("peer is still inactive"))
            && count("peer became active") == 1,
        "unexpected reports while a follower was down:\n{written}"
    );
    anyhow::ensure!(
        count("RPCError") == 0 && count("backoff mode") == 0,
        "openraft's per-request lines are back:\n{written}"
    );
    anyhow::ensure!(
        !written.contains('\u{1b}'),
        "colour codes in a log file:\n{written}"
    );
    Ok(())
}

/// A snapshot download in progress ends with `Unavailable` as soon as its
/// member starts to stop, the member then exits promptly, and the copy it
/// was streaming does not stay in the data dir.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_member_ends_a_snapshot_download_and_removes_its_copy() -> Result<()> {
    use cetera::proto::etcdserverpb::SnapshotRequest;
    let cluster = TestCluster::start(Flavor::Cetera, 1).await?;
    let mut kv = cluster.kv(0)?;
    let value = "v".repeat(4096);
    for i in 0..500 {
        put(&mut kv, &format!("bulk/{i:04}"), &value).await?;
    }
    let mut pieces = cluster
        .maintenance(0)?
        .snapshot(SnapshotRequest {})
        .await?
        .into_inner();
    let first = pieces.message().await?.context("no first piece")?;
    anyhow::ensure!(first.remaining_bytes > 0, "the snapshot fit in one piece");

    let member = cluster.member(0);
    member.terminate()?;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match pieces.message().await {
                Ok(Some(piece)) if piece.remaining_bytes == 0 => {
                    break Err(anyhow::anyhow!("the whole snapshot was sent"));
                }
                Ok(Some(_)) => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(None) => break Err(anyhow::anyhow!("the stream ended without an error")),
                Err(status) => break Ok(status),
            }
        }
    })
    .await
    .context("the download went on while the member stopped")??;
    anyhow::ensure!(
        ended.code() == tonic::Code::Unavailable,
        "unexpected end: {ended:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while member.is_running() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "the member kept running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let copies: Vec<_> = std::fs::read_dir(member.data_dir().join("member"))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("backup-"))
        .collect();
    anyhow::ensure!(copies.is_empty(), "copies left behind: {copies:?}");
    Ok(())
}
