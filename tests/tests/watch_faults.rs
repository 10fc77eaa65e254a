//! A watch on a member that is cut off from the leader keeps its events in
//! order and resumes: the member that serves the watch either loses its
//! leader (the leader is frozen with SIGSTOP while writes go on through the
//! two others) or is itself frozen while the majority keeps writing (so it
//! must catch up, by snapshot on a short log), and then resumes.
//!
//! Afterwards the watcher must have received exactly the history of its
//! prefix from its start on, in revision order: no gap, no duplicate. The
//! reference history comes from a second watch opened afterwards on another
//! member with a past start revision. Every body runs on etcd and cetera.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use cetera::proto::etcdserverpb::{PutRequest, WatchCreateRequest};
use tests::kv::{Kv, prefix_end, rev};
use tests::watch::WatchSession;
use tests::{Flavor, TestCluster, flavor_tests};
use tokio::time::{sleep, timeout};

flavor_tests!(
    a_watch_keeps_order_while_its_leader_is_frozen,
    a_frozen_watch_member_catches_up_in_order,
);

/// Deadline of one put; a put that takes longer is retried elsewhere.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts per put before the test gives up (a liveness bound).
const WRITE_ATTEMPTS: usize = 40;

/// One event as compared: revision, key, event type.
type Seen = (i64, String, i32);

fn watch_prefix(prefix: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: prefix.into(),
        range_end: prefix_end(prefix.as_bytes()),
        ..Default::default()
    }
}

/// Puts `count` keys `<prefix><first + i>` through `clients`, moving to the
/// next client whenever a put fails or times out (a retried put may have
/// been applied too; the history comparison covers that). Returns the
/// acknowledged revisions.
async fn write(clients: &[Kv], prefix: &str, first: usize, count: usize) -> Result<Vec<i64>> {
    let mut acknowledged = Vec::with_capacity(count);
    let mut member = 0;
    for i in first..first + count {
        let request = PutRequest {
            key: format!("{prefix}{i:05}").into_bytes(),
            value: b"v".to_vec(),
            ..Default::default()
        };
        let mut attempts = 0;
        loop {
            attempts += 1;
            let mut client = clients[member % clients.len()].clone();
            match timeout(WRITE_TIMEOUT, client.put(request.clone())).await {
                Ok(Ok(response)) => {
                    acknowledged.push(rev(&response.into_inner().header));
                    break;
                }
                _ => {
                    ensure!(
                        attempts < WRITE_ATTEMPTS,
                        "put #{i} failed {attempts} times"
                    );
                    member += 1;
                    sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    Ok(acknowledged)
}

/// Reads events until one at `last` or later arrives; returns them all.
async fn events_through(session: &mut WatchSession, last: i64) -> Result<Vec<Seen>> {
    let mut seen: Vec<Seen> = Vec::new();
    while seen.last().is_none_or(|(revision, _, _)| *revision < last) {
        let response = session.next().await.with_context(|| {
            format!("waiting for revision {last}; {} events so far", seen.len())
        })?;
        ensure!(!response.canceled, "the watch was canceled: {response:?}");
        for event in &response.events {
            let kv = event.kv.clone().unwrap_or_default();
            seen.push((
                kv.mod_revision,
                String::from_utf8_lossy(&kv.key).into_owned(),
                event.r#type,
            ));
        }
    }
    Ok(seen)
}

/// Checks the watcher's events against the prefix's history from
/// `start` to `last`, read by a new watch on member `reference`.
async fn check_history(
    cluster: &TestCluster,
    reference: usize,
    prefix: &str,
    start: i64,
    last: i64,
    seen: &[Seen],
    acknowledged: &[i64],
) -> Result<()> {
    let revisions: Vec<i64> = seen.iter().map(|(r, _, _)| *r).collect();
    ensure!(
        revisions.windows(2).all(|w| w[0] < w[1]),
        "events out of order or repeated: {revisions:?}"
    );
    for revision in acknowledged {
        ensure!(
            revisions.binary_search(revision).is_ok(),
            "acknowledged revision {revision} was never delivered"
        );
    }
    let (mut replay, _) = WatchSession::open(
        cluster.grpc_channel(reference)?,
        WatchCreateRequest {
            start_revision: start,
            ..watch_prefix(prefix)
        },
    )
    .await?;
    let history = events_through(&mut replay, last).await?;
    ensure!(
        seen == history.as_slice(),
        "the watcher's events differ from the history: {} seen, {} in history; first difference at {:?}",
        seen.len(),
        history.len(),
        seen.iter().zip(&history).position(|(a, b)| a != b)
    );
    Ok(())
}

async fn a_watch_keeps_order_while_its_leader_is_frozen(flavor: Flavor) -> Result<()> {
    const PREFIX: &str = "cut/";
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let watched = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let (mut session, created) =
        WatchSession::open(cluster.grpc_channel(watched)?, watch_prefix(PREFIX)).await?;
    let start = rev(&created.header) + 1;
    // Writes never go to the member that will be frozen.
    let clients = [cluster.kv(watched)?, cluster.kv(other)?];

    let mut acknowledged = write(&clients, PREFIX, 0, 50).await?;
    cluster.member(leader).freeze()?;
    let during = write(&clients, PREFIX, 50, 100).await;
    cluster.member(leader).resume()?;
    acknowledged.extend(during?);
    acknowledged.extend(write(&clients, PREFIX, 150, 50).await?);

    let last = *acknowledged.last().context("no write acknowledged")?;
    let seen = events_through(&mut session, last).await?;
    check_history(&cluster, other, PREFIX, start, last, &seen, &acknowledged).await
}

async fn a_frozen_watch_member_catches_up_in_order(flavor: Flavor) -> Result<()> {
    const PREFIX: &str = "frozen/";
    // A short log, so the frozen member falls behind the leader's log and
    // must catch up from a snapshot.
    let cluster = TestCluster::builder(flavor, 3)
        .args(["--snapshot-count", "100"])
        .start()
        .await?;
    let leader = cluster.leader_index().await?;
    let watched = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let (mut session, created) =
        WatchSession::open(cluster.grpc_channel(watched)?, watch_prefix(PREFIX)).await?;
    let start = rev(&created.header) + 1;
    let clients = [cluster.kv(leader)?, cluster.kv(other)?];

    let mut acknowledged = write(&clients, PREFIX, 0, 20).await?;
    cluster.member(watched).freeze()?;
    let during = write(&clients, PREFIX, 20, 600).await;
    cluster.member(watched).resume()?;
    acknowledged.extend(during?);
    acknowledged.extend(write(&clients, PREFIX, 620, 20).await?);

    let last = *acknowledged.last().context("no write acknowledged")?;
    let seen = events_through(&mut session, last).await?;
    check_history(&cluster, other, PREFIX, start, last, &seen, &acknowledged).await
}
