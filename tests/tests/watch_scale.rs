//! Watch at scale: ten thousand watchers on one member, spread over
//! streams, all receive the event of one write; and a hundred thousand
//! watches across a hundred streams on three members each receive exactly
//! the event of their own key.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use cetera::proto::etcdserverpb::{TxnRequest, WatchCreateRequest};
use tests::kv::{prefix_end, put, put_op};
use tests::watch::{WatchSession, event_key};
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    ten_thousand_watchers_all_see_a_write,
    a_hundred_thousand_watches_across_streams_each_see_their_key,
);

const STREAMS: usize = 20;
const WATCHES_PER_STREAM: usize = 500;

async fn ten_thousand_watchers_all_see_a_write(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let watch = || WatchCreateRequest {
        key: b"scale/".to_vec(),
        range_end: prefix_end(b"scale/"),
        ..Default::default()
    };
    let mut sessions = Vec::new();
    for _ in 0..STREAMS {
        let (mut session, _) = WatchSession::open(cluster.grpc_channel(0)?, watch()).await?;
        for _ in 1..WATCHES_PER_STREAM {
            session.create(watch()).await?;
        }
        sessions.push(session);
    }
    put(&mut cluster.kv(0)?, "scale/key", "v").await?;
    for session in &mut sessions {
        for _ in 0..WATCHES_PER_STREAM {
            let response = session.next().await?;
            ensure!(
                response.events.len() == 1,
                "one event per watch: {response:?}"
            );
        }
    }
    Ok(())
}

/// Streams in the 100,000-watch test, spread over the three members.
const WIDE_STREAMS: usize = 100;
/// Distinct keys; every stream has one watch on each.
const WIDE_KEYS: usize = 1000;
/// Puts per transaction when writing the keys (under etcd's 128-op limit).
const PUTS_PER_TXN: usize = 100;

fn wide_key(k: usize) -> String {
    format!("wide/{k:04}")
}

async fn a_hundred_thousand_watches_across_streams_each_see_their_key(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let watch = |k: usize| WatchCreateRequest {
        key: wide_key(k).into_bytes(),
        ..Default::default()
    };
    // Per stream: which key each watch id watches.
    let mut sessions = Vec::with_capacity(WIDE_STREAMS);
    for s in 0..WIDE_STREAMS {
        let channel = cluster.grpc_channel(s % cluster.size())?;
        let (mut session, first) = WatchSession::open(channel, watch(0)).await?;
        let rest = session
            .create_many((1..WIDE_KEYS).map(watch).collect())
            .await?;
        let mut keys: HashMap<i64, String> = HashMap::with_capacity(WIDE_KEYS);
        for (k, created) in std::iter::once(first).chain(rest).enumerate() {
            let previous = keys.insert(created.watch_id, wide_key(k));
            ensure!(
                previous.is_none(),
                "stream {s}: watch id {} given twice",
                created.watch_id
            );
        }
        sessions.push((session, keys));
    }

    let mut kv = cluster.kv(0)?;
    for chunk in (0..WIDE_KEYS).collect::<Vec<_>>().chunks(PUTS_PER_TXN) {
        let txn = TxnRequest {
            success: chunk.iter().map(|&k| put_op(&wide_key(k), "v")).collect(),
            ..Default::default()
        };
        kv.txn(txn).await?;
    }

    // Every stream is read at the same time, so none waits on another.
    let readers: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(s, (mut session, mut keys))| {
            tokio::spawn(async move {
                while !keys.is_empty() {
                    let response = session.next().await?;
                    let expected = keys
                        .remove(&response.watch_id)
                        .with_context(|| format!("stream {s}: unexpected response {response:?}"))?;
                    let got: Vec<String> = response.events.iter().map(|e| event_key(e).1).collect();
                    ensure!(
                        got == [expected.clone()],
                        "stream {s}: watch {} on {expected} got {got:?}",
                        response.watch_id
                    );
                }
                // Nothing more: no watch saw its event twice.
                let extra = session.next_within(Duration::from_millis(300)).await?;
                ensure!(extra.is_none(), "stream {s}: extra response {extra:?}");
                anyhow::Ok(())
            })
        })
        .collect();
    for reader in readers {
        reader.await??;
    }
    Ok(())
}
