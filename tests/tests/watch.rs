//! The Watch service over gRPC: every create field, cancel and progress
//! requests, and the guarantees users rely on (ordered, unique, atomic,
//! reliable, resumable, bookmarkable), including across a leader kill.
//!
//! Every body runs against real etcd (the oracle) and against cetera.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, ensure};
use cetera::proto::etcdserverpb::watch_create_request::FilterType;
use cetera::proto::etcdserverpb::{CompactionRequest, TxnRequest, WatchCreateRequest};
use cetera::proto::mvccpb::event::EventType;
use tests::kv::{del_op, get, prefix_end, put, put_op, rev};
use tests::watch::{WatchSession, event_key, event_keys};
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    a_watch_sees_puts_and_deletes_on_its_key_and_prefix,
    a_past_start_revision_replays_history_then_continues_live,
    filters_and_prev_kv_shape_the_events,
    a_compacted_start_revision_cancels_the_watch,
    cancel_and_progress_requests_are_answered,
    watch_ids_are_assigned_from_zero_and_duplicates_refused,
    one_revision_arrives_in_one_response,
    a_slow_reader_loses_nothing,
    watches_see_every_acknowledged_write_across_a_leader_kill,
    watcher_and_stream_gauges_follow_creates_cancels_and_closes,
    a_member_that_acknowledged_a_write_has_applied_it,
);

fn watch_key(key: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: key.into(),
        ..Default::default()
    }
}

fn watch_prefix(prefix: &str) -> WatchCreateRequest {
    WatchCreateRequest {
        key: prefix.into(),
        range_end: prefix_end(prefix.as_bytes()),
        ..Default::default()
    }
}

async fn a_watch_sees_puts_and_deletes_on_its_key_and_prefix(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut kv = cluster.kv(0)?;
    let (mut session, created) =
        WatchSession::open(cluster.grpc_channel(1)?, watch_key("k")).await?;
    assert_eq!(created.watch_id, 0);
    let prefix = session.create(watch_prefix("p/")).await?;
    assert_eq!(prefix.watch_id, 1);

    let r1 = rev(&put(&mut kv, "k", "1").await?.header);
    let r2 = rev(&put(&mut kv, "p/a", "2").await?.header);
    let r3 = rev(&kv
        .delete_range(cetera::proto::etcdserverpb::DeleteRangeRequest {
            key: b"k".to_vec(),
            ..Default::default()
        })
        .await?
        .into_inner()
        .header);
    put(&mut kv, "other", "x").await?;

    let responses = session.events(3).await?;
    let mut by_watch: Vec<(i64, i64, String, i32)> = responses
        .iter()
        .flat_map(|r| r.events.iter().map(move |e| (r.watch_id, e)))
        .map(|(id, e)| {
            let (revision, key) = event_key(e);
            (id, revision, key, e.r#type)
        })
        .collect();
    by_watch.sort();
    assert_eq!(
        by_watch,
        vec![
            (0, r1, "k".into(), EventType::Put as i32),
            (0, r3, "k".into(), EventType::Delete as i32),
            (1, r2, "p/a".into(), EventType::Put as i32),
        ]
    );
    for response in &responses {
        let header = response.header.unwrap_or_default();
        let last = response
            .events
            .last()
            .and_then(|e| e.kv.as_ref())
            .map_or(0, |kv| kv.mod_revision);
        ensure!(
            header.revision >= last,
            "header revision {} behind its events",
            header.revision
        );
    }
    // The unrelated key produced nothing more.
    ensure!(
        session
            .next_within(Duration::from_millis(300))
            .await?
            .is_none()
    );
    Ok(())
}

async fn a_past_start_revision_replays_history_then_continues_live(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut kv = cluster.kv(0)?;
    let first = rev(&put(&mut kv, "h", "1").await?.header);
    put(&mut kv, "h", "2").await?;
    put(&mut kv, "h", "3").await?;

    let (mut session, _) = WatchSession::open(
        cluster.grpc_channel(0)?,
        WatchCreateRequest {
            start_revision: first,
            ..watch_key("h")
        },
    )
    .await?;
    let history = session.events(3).await?;
    let values: Vec<Vec<u8>> = history
        .iter()
        .flat_map(|r| r.events.iter())
        .map(|e| e.kv.clone().unwrap_or_default().value)
        .collect();
    assert_eq!(values, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()]);

    let live = rev(&put(&mut kv, "h", "4").await?.header);
    let next = session.events(1).await?;
    assert_eq!(event_keys(&next), vec![(live, "h".to_string())]);

    // Resuming from the last revision seen + 1 gives exactly the rest.
    let (mut resumed, _) = WatchSession::open(
        cluster.grpc_channel(0)?,
        WatchCreateRequest {
            start_revision: first + 2,
            ..watch_key("h")
        },
    )
    .await?;
    let rest = resumed.events(2).await?;
    assert_eq!(
        event_keys(&rest),
        vec![(first + 2, "h".to_string()), (live, "h".to_string())]
    );
    Ok(())
}

async fn filters_and_prev_kv_shape_the_events(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut kv = cluster.kv(0)?;
    put(&mut kv, "f", "old").await?;
    let (mut session, _) = WatchSession::open(
        cluster.grpc_channel(0)?,
        WatchCreateRequest {
            prev_kv: true,
            ..watch_key("f")
        },
    )
    .await?;
    session
        .create(WatchCreateRequest {
            filters: vec![FilterType::Noput as i32],
            ..watch_key("f")
        })
        .await?;

    put(&mut kv, "f", "new").await?;
    kv.delete_range(cetera::proto::etcdserverpb::DeleteRangeRequest {
        key: b"f".to_vec(),
        ..Default::default()
    })
    .await?;
    let responses = session.events(3).await?;

    let with_prev: Vec<_> = responses
        .iter()
        .filter(|r| r.watch_id == 0)
        .flat_map(|r| &r.events)
        .collect();
    assert_eq!(with_prev.len(), 2);
    assert_eq!(
        with_prev[0].prev_kv.clone().unwrap_or_default().value,
        b"old"
    );
    assert_eq!(with_prev[1].r#type, EventType::Delete as i32);
    let deleted = with_prev[1].kv.clone().unwrap_or_default();
    assert!(
        deleted.value.is_empty() && deleted.version == 0,
        "a delete event carries only key and revision"
    );
    assert_eq!(
        with_prev[1].prev_kv.clone().unwrap_or_default().value,
        b"new"
    );

    let no_puts: Vec<_> = responses
        .iter()
        .filter(|r| r.watch_id == 1)
        .flat_map(|r| &r.events)
        .collect();
    assert_eq!(no_puts.len(), 1);
    assert_eq!(no_puts[0].r#type, EventType::Delete as i32);
    assert!(no_puts[0].prev_kv.is_none(), "prev_kv only when asked for");
    Ok(())
}

async fn a_compacted_start_revision_cancels_the_watch(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut kv = cluster.kv(0)?;
    for i in 0..5 {
        put(&mut kv, "c", &i.to_string()).await?;
    }
    let compact_at = rev(&put(&mut kv, "c", "last").await?.header);
    kv.compact(CompactionRequest {
        revision: compact_at,
        physical: true,
    })
    .await?;
    let (mut session, _) = WatchSession::open(
        cluster.grpc_channel(0)?,
        WatchCreateRequest {
            start_revision: 2,
            ..watch_key("c")
        },
    )
    .await?;
    let canceled = session.next().await?;
    ensure!(canceled.canceled, "expected a cancel, got {canceled:?}");
    assert_eq!(canceled.compact_revision, compact_at);
    Ok(())
}

async fn cancel_and_progress_requests_are_answered(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut kv = cluster.kv(0)?;
    let (mut session, created) =
        WatchSession::open(cluster.grpc_channel(0)?, watch_key("x")).await?;
    let current = rev(&put(&mut kv, "unwatched", "1").await?.header);

    session.request_progress().await?;
    let progress = session.next().await?;
    assert_eq!(progress.watch_id, -1);
    assert!(progress.events.is_empty());
    assert_eq!(rev(&progress.header), current);

    session.cancel(created.watch_id).await?;
    let canceled = session.next().await?;
    assert!(canceled.canceled);
    assert_eq!(canceled.watch_id, created.watch_id);
    put(&mut kv, "x", "after cancel").await?;
    ensure!(
        session
            .next_within(Duration::from_millis(300))
            .await?
            .is_none()
    );
    Ok(())
}

async fn watch_ids_are_assigned_from_zero_and_duplicates_refused(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let (mut session, chosen) = WatchSession::open(
        cluster.grpc_channel(0)?,
        WatchCreateRequest {
            watch_id: 7,
            ..watch_key("a")
        },
    )
    .await?;
    assert_eq!(chosen.watch_id, 7);
    assert_eq!(session.create(watch_key("b")).await?.watch_id, 0);
    let duplicate = session
        .create(WatchCreateRequest {
            watch_id: 7,
            ..watch_key("c")
        })
        .await?;
    assert!(duplicate.canceled);
    assert_eq!(duplicate.watch_id, -1);
    assert_eq!(
        duplicate.cancel_reason,
        "mvcc: duplicate watch ID provided on the WatchStream"
    );
    Ok(())
}

async fn one_revision_arrives_in_one_response(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut kv = cluster.kv(0)?;
    let (mut session, _) = WatchSession::open(cluster.grpc_channel(2)?, watch_prefix("t/")).await?;
    let txn = TxnRequest {
        success: (0..10).map(|i| put_op(&format!("t/{i}"), "v")).collect(),
        ..Default::default()
    };
    let revision = rev(&kv.txn(txn).await?.into_inner().header);
    let first = session.next().await?;
    assert_eq!(
        first.events.len(),
        10,
        "all ten writes of the txn in one response"
    );
    assert!(first.events.iter().all(|e| event_key(e).0 == revision));

    let deletes = TxnRequest {
        success: vec![del_op("t/0"), del_op("t/1")],
        ..Default::default()
    };
    kv.txn(deletes).await?;
    assert_eq!(session.next().await?.events.len(), 2);
    Ok(())
}

async fn a_slow_reader_loses_nothing(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut kv = cluster.kv(0)?;
    let (mut session, _) = WatchSession::open(cluster.grpc_channel(0)?, watch_prefix("s/")).await?;
    // Write much more than any buffer holds before reading anything.
    let value = "v".repeat(2048);
    let mut revisions = Vec::new();
    for i in 0..3000 {
        revisions.push(rev(&put(&mut kv, &format!("s/{}", i % 50), &value)
            .await?
            .header));
    }
    let seen: Vec<i64> = event_keys(&session.events(revisions.len()).await?)
        .into_iter()
        .map(|(revision, _)| revision)
        .collect();
    assert_eq!(seen, revisions, "every event once, in order");
    Ok(())
}

async fn watches_see_every_acknowledged_write_across_a_leader_kill(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let follower = (leader + 1) % 3;
    let (mut session, _) =
        WatchSession::open(cluster.grpc_channel(follower)?, watch_prefix("w/")).await?;

    let mut acknowledged = BTreeSet::new();
    let mut kv = cluster.kv(follower)?;
    for i in 0..100 {
        if i == 40 {
            cluster.member(leader).kill().await?;
        }
        // Writes during the election may fail; only acknowledged ones count.
        if let Ok(resp) = kv
            .put(cetera::proto::etcdserverpb::PutRequest {
                key: format!("w/{i}").into_bytes(),
                value: b"v".to_vec(),
                ..Default::default()
            })
            .await
        {
            acknowledged.insert(rev(&resp.into_inner().header));
        }
    }
    ensure!(
        acknowledged.len() >= 60,
        "too few writes succeeded: {}",
        acknowledged.len()
    );
    let last = *acknowledged.iter().next_back().unwrap_or(&0);
    let mut seen = Vec::new();
    while seen.last().copied().unwrap_or(0) < last {
        let response = session.next().await?;
        seen.extend(response.events.iter().map(|e| event_key(e).0));
    }
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "ordered and without duplicates");
    for revision in &acknowledged {
        ensure!(
            seen.contains(revision),
            "acknowledged revision {revision} never delivered"
        );
    }
    Ok(())
}

async fn watcher_and_stream_gauges_follow_creates_cancels_and_closes(flavor: Flavor) -> Result<()> {
    const WATCHERS: &str = "etcd_debugging_mvcc_watcher_total";
    const STREAMS: &str = "etcd_debugging_mvcc_watch_stream_total";
    let cluster = TestCluster::start(flavor, 1).await?;
    cluster.wait_metric(0, WATCHERS, 0.0).await?;
    let (mut first, created) = WatchSession::open(cluster.grpc_channel(0)?, watch_key("a")).await?;
    first.create(watch_prefix("b/")).await?;
    let (second, _) = WatchSession::open(cluster.grpc_channel(0)?, watch_key("c")).await?;
    cluster.wait_metric(0, WATCHERS, 3.0).await?;
    cluster.wait_metric(0, STREAMS, 2.0).await?;

    first.cancel(created.watch_id).await?;
    ensure!(first.next().await?.canceled, "the cancel is answered");
    cluster.wait_metric(0, WATCHERS, 2.0).await?;
    drop(second);
    cluster.wait_metric(0, WATCHERS, 1.0).await?;
    cluster.wait_metric(0, STREAMS, 1.0).await?;
    drop(first);
    cluster.wait_metric(0, WATCHERS, 0.0).await?;
    cluster.wait_metric(0, STREAMS, 0.0).await
}

/// Writes acknowledged by a follower (which forwards them to the leader)
/// are already applied on that follower, as on etcd, where the member that
/// takes a request answers only once it has applied it: a serializable read
/// there sees the write, a watch "from now" created there afterwards does
/// not replay it, and after a compaction through it a watch from before
/// the compaction point is refused at once.
async fn a_member_that_acknowledged_a_write_has_applied_it(flavor: Flavor) -> Result<()> {
    const ROUNDS: usize = 30;
    let cluster = TestCluster::start(flavor, 3).await?;
    for follower in cluster.follower_indices().await? {
        let mut kv = cluster.kv(follower)?;
        for round in 0..ROUNDS {
            let key = format!("ryw/{follower}/{round}");
            let written = rev(&put(&mut kv, &key, "v").await?.header);
            let read = kv
                .range(cetera::proto::etcdserverpb::RangeRequest {
                    key: key.clone().into_bytes(),
                    serializable: true,
                    ..Default::default()
                })
                .await?
                .into_inner();
            ensure!(
                rev(&read.header) >= written && read.kvs.len() == 1,
                "member {follower} acknowledged revision {written} but then read revision {} without {key}",
                rev(&read.header)
            );
            let (_, created) =
                WatchSession::open(cluster.grpc_channel(follower)?, watch_key(&key)).await?;
            ensure!(
                rev(&created.header) >= written,
                "a watch from now on member {follower} starts at {} before the acknowledged {written}",
                rev(&created.header)
            );
        }
        let compact_at = rev(&put(&mut kv, "ryw/compact", "x").await?.header);
        kv.compact(CompactionRequest {
            revision: compact_at,
            physical: false,
        })
        .await?;
        let (mut session, _) = WatchSession::open(
            cluster.grpc_channel(follower)?,
            WatchCreateRequest {
                start_revision: 2,
                ..watch_prefix("ryw/")
            },
        )
        .await?;
        let refused = session.next().await?;
        ensure!(
            refused.canceled && refused.compact_revision == compact_at,
            "member {follower}: a watch from revision 2 after compacting at {compact_at} got {refused:?}"
        );
        ensure!(get(&mut kv, "ryw/compact").await?.is_some());
    }
    Ok(())
}
