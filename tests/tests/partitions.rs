//! Network partitions: peer links cut while every process keeps running
//! (see `tests::links`), so a member cut off from its peers still hears
//! its clients. This is where a store that serves reads from a deposed
//! leader, or acknowledges writes without a quorum, shows it.
//!
//! `on_etcd::*` validates the tests against real etcd; `on_cetera::*` are
//! the cetera variants.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cetera::proto::etcdserverpb::lease_client::LeaseClient;
use cetera::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, PutResponse, RangeRequest,
    WatchCreateRequest,
};
use cetera::proto::mvccpb::KeyValue;
use tests::kv::{Kv, current_revision, prefix_end, put, range, range_prefix, rev};
use tests::watch::{WatchSession, event_keys};
use tests::{Flavor, TestCluster, flavor_tests};
use tokio::time::{sleep, timeout};

flavor_tests!(
    a_leader_cut_off_from_its_followers_serves_no_stale_read_and_loses_its_writes,
    a_cut_off_follower_serves_no_linearizable_read_and_catches_up_once_healed,
    one_cut_link_does_not_stop_the_cluster,
    a_lease_kept_alive_through_a_cut_off_leader_lasts_its_ttl_and_then_expires,
    a_watch_on_a_cut_off_leader_keeps_its_order_and_resumes,
);

/// Liveness deadline for phases that wait on the cluster; never a
/// performance threshold.
const PHASE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request to a member without a quorum is given: it must fail
/// or stay unanswered, never succeed.
const CUT_OFF_REQUEST: Duration = Duration::from_secs(8);

async fn cuttable_cluster(flavor: Flavor) -> Result<TestCluster> {
    TestCluster::builder(flavor, 3)
        .cuttable_links()
        .start()
        .await
}

/// One key, linearizable or serializable.
async fn read(kv: &mut Kv, key: &str, serializable: bool) -> Result<Option<KeyValue>> {
    let resp = range(
        kv,
        RangeRequest {
            key: key.into(),
            serializable,
            ..Default::default()
        },
    )
    .await?;
    Ok(resp.kvs.into_iter().next())
}

fn value_of(found: &Option<KeyValue>) -> Option<String> {
    found
        .as_ref()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
}

/// Puts `key=value` through `kv`, trying again after a failure (the first
/// writes after a partition may meet an election) until it is acknowledged.
async fn put_acknowledged(kv: &mut Kv, key: &str, value: &str) -> Result<PutResponse> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        match timeout(Duration::from_secs(5), put(kv, key, value)).await {
            Ok(Ok(answer)) => return Ok(answer),
            failed if Instant::now() >= deadline => {
                bail!("put {key} never acknowledged: {}", outcome(&failed))
            }
            _ => sleep(Duration::from_millis(100)).await,
        }
    }
}

/// What a request to a cut-off member came to, in a line.
fn outcome<T>(answer: &Result<Result<T>, tokio::time::error::Elapsed>) -> String {
    match answer {
        Ok(Ok(_)) => "answered".into(),
        Ok(Err(e)) => format!("failed: {}", e.root_cause()),
        Err(_) => format!("no answer within {CUT_OFF_REQUEST:?}"),
    }
}

/// A leader among `members` other than `not`, as its members see it.
async fn leader_among(cluster: &TestCluster, members: &[usize], not: usize) -> Result<usize> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        for &i in members {
            if let Ok(status) = cluster.status(i).await
                && let Some(header) = &status.header
                && status.leader != 0
                && status.leader == header.member_id
                && i != not
            {
                return Ok(i);
            }
        }
        if Instant::now() >= deadline {
            bail!("members {members:?} elected no leader within {PHASE_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// The cluster's revision by a linearizable read through any member,
/// asked again until one answers.
async fn settled_revision(cluster: &TestCluster) -> Result<i64> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        for i in 0..cluster.size() {
            let mut kv = cluster.kv(i)?;
            if let Ok(Ok(revision)) =
                timeout(Duration::from_secs(5), current_revision(&mut kv)).await
            {
                return Ok(revision);
            }
        }
        if Instant::now() >= deadline {
            bail!("no member answered a linearizable read within {PHASE_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until member `i` has applied revision `revision` (serializable).
async fn wait_revision(kv: &mut Kv, i: usize, revision: i64) -> Result<()> {
    let deadline = Instant::now() + PHASE_TIMEOUT;
    loop {
        let seen = range(
            kv,
            RangeRequest {
                key: b"\0".to_vec(),
                count_only: true,
                serializable: true,
                ..Default::default()
            },
        )
        .await
        .map(|r| rev(&r.header));
        if let Ok(seen) = seen
            && seen >= revision
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("member {i} did not reach revision {revision}: {seen:?}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// The Jepsen partition: the leader is cut off from both followers, which
/// elect a new leader and take a write. Clients of the old leader must
/// never read the old value linearizably (a serializable read may: it is
/// allowed to be stale, and proves the cut is real) and their writes must
/// never be acknowledged; once the links heal, what the old leader took
/// alone is gone and every member agrees on the majority's history.
async fn a_leader_cut_off_from_its_followers_serves_no_stale_read_and_loses_its_writes(
    flavor: Flavor,
) -> Result<()> {
    let cluster = cuttable_cluster(flavor).await?;
    let old = cluster.leader_index().await?;
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let mut at_old = cluster.kv(old)?;
    let before_rev = rev(&put_acknowledged(&mut at_old, "k", "before").await?.header);

    cluster.isolate(old)?;
    let new = leader_among(&cluster, &majority, old).await?;
    let mut at_new = cluster.kv(new)?;
    let after_rev = rev(&put_acknowledged(&mut at_new, "k", "after").await?.header);

    let local = timeout(CUT_OFF_REQUEST, read(&mut at_old, "k", true))
        .await
        .context("serializable read on the old leader")??;
    ensure!(
        value_of(&local).as_deref() == Some("before"),
        "the old leader's own copy is {:?}: the partition did not hold",
        value_of(&local)
    );
    let stale = timeout(CUT_OFF_REQUEST, read(&mut at_old, "k", false)).await;
    eprintln!(
        "linearizable read on the cut-off old leader: {}",
        outcome(&stale)
    );
    if let Ok(Ok(found)) = &stale {
        bail!(
            "the cut-off old leader answered a linearizable read: {:?}",
            value_of(found)
        );
    }
    if flavor == Flavor::Cetera {
        // It stops asking openraft to confirm reads it cannot confirm
        // (each failed round is an ERROR line of openraft's): before it
        // did, the read above added some 160 lines.
        let log = std::fs::read_to_string(cluster.member(old).log_path())?;
        let rounds = log.matches("confirming leadership").count();
        ensure!(
            rounds < 60,
            "the cut-off old leader logged {rounds} failed leadership confirmations"
        );
    }
    let lost = timeout(CUT_OFF_REQUEST, put(&mut at_old, "k", "lost")).await;
    eprintln!("write on the cut-off old leader: {}", outcome(&lost));
    if let Ok(Ok(answer)) = &lost {
        bail!("the cut-off old leader acknowledged a write: {answer:?}");
    }

    cluster.heal()?;
    // Healing may bring an election (etcd's deposed leader comes back with
    // a higher term): reads go to each member's own copy once it has
    // caught up with the cluster's revision.
    let end = settled_revision(&cluster).await?;
    ensure!(
        end >= after_rev,
        "the cluster is at {end}, before {after_rev}"
    );
    for i in 0..3 {
        let mut kv = cluster.kv(i)?;
        wait_revision(&mut kv, i, end).await?;
        let found = read(&mut kv, "k", true).await?;
        ensure!(
            value_of(&found).as_deref() == Some("after"),
            "member {i} reads {found:?} after healing, not the majority's write"
        );
        // The old leader's write is in no revision of the key's history.
        for revision in before_rev..=end {
            let then = range(
                &mut kv,
                RangeRequest {
                    key: b"k".to_vec(),
                    revision,
                    serializable: true,
                    ..Default::default()
                },
            )
            .await?;
            let value = then.kvs.first().map(|kv| kv.value.as_slice());
            ensure!(
                value != Some(b"lost".as_slice()),
                "member {i} has the cut-off old leader's write at revision {revision}"
            );
        }
    }
    Ok(())
}

/// A follower cut off from both peers misses writes and serves no
/// linearizable read; the majority goes on, and once the links heal the
/// follower has every one of them.
async fn a_cut_off_follower_serves_no_linearizable_read_and_catches_up_once_healed(
    flavor: Flavor,
) -> Result<()> {
    let cluster = cuttable_cluster(flavor).await?;
    let leader = cluster.leader_index().await?;
    let follower = cluster.follower_indices().await?[0];
    cluster.isolate(follower)?;
    let mut kv = cluster.kv(leader)?;
    let mut last = 0;
    for i in 0..200 {
        let answer = put_acknowledged(&mut kv, &format!("cut/{i:03}"), "v").await?;
        last = rev(&answer.header);
    }
    let mut at_follower = cluster.kv(follower)?;
    let behind = range(
        &mut at_follower,
        RangeRequest {
            key: b"\0".to_vec(),
            count_only: true,
            serializable: true,
            ..Default::default()
        },
    )
    .await?;
    ensure!(
        rev(&behind.header) < last,
        "the cut-off follower is at revision {} already: the partition did not hold",
        rev(&behind.header)
    );
    // It cannot confirm a read index with the leader: a linearizable read
    // there fails or goes unanswered, whatever its own copy holds.
    let stale = timeout(CUT_OFF_REQUEST, read(&mut at_follower, "cut/199", false)).await;
    eprintln!(
        "linearizable read on the cut-off follower: {}",
        outcome(&stale)
    );
    ensure!(
        !matches!(stale, Ok(Ok(_))),
        "the cut-off follower answered a linearizable read"
    );
    cluster.heal()?;
    wait_revision(&mut at_follower, follower, last).await?;
    let has = range_prefix(&mut at_follower, "cut/", true)
        .await?
        .kvs
        .len();
    ensure!(has == 200, "the follower has {has} of 200 keys");
    Ok(())
}

/// Only the link between the leader and one follower is cut; the other
/// follower still hears both. The cluster must keep taking writes through
/// the member in the middle (a cut-off follower's elections must not stop
/// it for good), and after healing every member has all of them.
async fn one_cut_link_does_not_stop_the_cluster(flavor: Flavor) -> Result<()> {
    let cluster = cuttable_cluster(flavor).await?;
    let leader = cluster.leader_index().await?;
    let followers = cluster.follower_indices().await?;
    let (cut_off, middle) = (followers[0], followers[1]);
    cluster.cut(leader, cut_off)?;
    let mut kv = cluster.kv(middle)?;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let mut written = 0;
    let mut last = 0;
    while written < 100 {
        if Instant::now() >= deadline {
            bail!(
                "only {written} of 100 writes through the middle member within {PHASE_TIMEOUT:?}"
            );
        }
        // Elections may come and go: a write that fails is simply retried
        // under another key.
        if let Ok(Ok(answer)) = timeout(
            Duration::from_secs(5),
            put(&mut kv, &format!("bridge/{written:03}"), "v"),
        )
        .await
        {
            written += 1;
            last = rev(&answer.header);
        }
    }
    let (from_members, _) = cluster.link_proxies().context("no proxies")?.connections();
    ensure!(
        from_members > 0,
        "the proxies saw no member dial: nothing was cut"
    );
    cluster.heal()?;
    for i in 0..3 {
        let mut kv = cluster.kv(i)?;
        wait_revision(&mut kv, i, last).await?;
        let has = range_prefix(&mut kv, "bridge/", true).await?.kvs.len();
        ensure!(has == 100, "member {i} has {has} of 100 keys");
    }
    Ok(())
}

/// A lock holder keeps its lease alive through the leader, which is then
/// cut off (its clients still reach it). Whatever the deposed leader still
/// answers, the lease must outlive every acknowledged keep-alive by its TTL
/// (counted from when the keep-alive was sent, as a client must count),
/// and once no keep-alive reaches the majority it must expire there, so
/// another client can take the lock.
async fn a_lease_kept_alive_through_a_cut_off_leader_lasts_its_ttl_and_then_expires(
    flavor: Flavor,
) -> Result<()> {
    const TTL: Duration = Duration::from_secs(4);
    let cluster = cuttable_cluster(flavor).await?;
    let old = cluster.leader_index().await?;
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let mut lease = LeaseClient::new(cluster.grpc_channel(old)?);
    let id = lease
        .lease_grant(LeaseGrantRequest {
            ttl: TTL.as_secs() as i64,
            id: 0,
        })
        .await?
        .into_inner()
        .id;
    cluster
        .kv(old)?
        .put(PutRequest {
            key: b"lock".to_vec(),
            value: b"held".to_vec(),
            lease: id,
            ..Default::default()
        })
        .await?;

    // Keep-alives every 300 ms, through the old leader only.
    let keeper = tokio::spawn(async move {
        let mut last_acknowledged = None;
        let until = Instant::now() + Duration::from_secs(12);
        while Instant::now() < until {
            let sent = Instant::now();
            let request = tokio_stream::once(LeaseKeepAliveRequest { id });
            let answer = timeout(Duration::from_secs(1), async {
                let mut answers = lease.lease_keep_alive(request).await?.into_inner();
                anyhow::Ok(answers.message().await?.map(|a| a.ttl))
            })
            .await;
            if let Ok(Ok(Some(ttl))) = answer
                && ttl > 0
            {
                last_acknowledged = Some(sent);
            }
            sleep(Duration::from_millis(300)).await;
        }
        last_acknowledged
    });
    sleep(Duration::from_secs(1)).await;
    cluster.isolate(old)?;

    // Watch the lock from the majority's side until it is gone.
    let deadline = Instant::now() + PHASE_TIMEOUT;
    let gone = loop {
        let mut absent = false;
        for &i in &majority {
            let mut kv = cluster.kv(i)?;
            if let Ok(Ok(None)) =
                timeout(Duration::from_secs(2), read(&mut kv, "lock", false)).await
            {
                absent = true;
                break;
            }
        }
        if absent {
            break Instant::now();
        }
        if Instant::now() >= deadline {
            bail!("the lease never expired on the majority side");
        }
        sleep(Duration::from_millis(100)).await;
    };
    let last = keeper
        .await?
        .context("no keep-alive was ever acknowledged")?;
    let lasted = gone.saturating_duration_since(last);
    eprintln!("the lock vanished {lasted:?} after the last acknowledged keep-alive was sent");
    ensure!(
        gone >= last + TTL,
        "the lease expired {lasted:?} after a keep-alive sent to the cut-off leader was \
         acknowledged, before its TTL of {TTL:?}: two clients could hold the lock"
    );
    Ok(())
}

/// A watch on the leader, which is then cut off (issue #3: "a watch on a
/// member that is cut off from the leader keeps its events in order and
/// resumes"). While cut off it delivers nothing, not even the write its
/// own clients tried there; once healed it delivers exactly the majority's
/// writes, in revision order, once each, on the same stream.
async fn a_watch_on_a_cut_off_leader_keeps_its_order_and_resumes(flavor: Flavor) -> Result<()> {
    let cluster = cuttable_cluster(flavor).await?;
    let old = cluster.leader_index().await?;
    let majority: Vec<usize> = (0..3).filter(|&i| i != old).collect();
    let mut at_old = cluster.kv(old)?;
    let start = current_revision(&mut at_old).await? + 1;
    let (mut watch, _) = WatchSession::open(
        cluster.grpc_channel(old)?,
        WatchCreateRequest {
            key: b"w/".to_vec(),
            range_end: prefix_end(b"w/"),
            start_revision: start,
            ..Default::default()
        },
    )
    .await?;
    let mut expected = Vec::new();
    for i in 0..5 {
        let key = format!("w/{i:02}");
        expected.push((
            rev(&put_acknowledged(&mut at_old, &key, "v").await?.header),
            key,
        ));
    }

    cluster.isolate(old)?;
    let new = leader_among(&cluster, &majority, old).await?;
    let mut at_new = cluster.kv(new)?;
    for i in 5..25 {
        let key = format!("w/{i:02}");
        expected.push((
            rev(&put_acknowledged(&mut at_new, &key, "v").await?.header),
            key,
        ));
    }
    let lost = timeout(CUT_OFF_REQUEST, put(&mut at_old, "w/lost", "v")).await;
    ensure!(
        !matches!(lost, Ok(Ok(_))),
        "the cut-off leader acknowledged a write"
    );

    // Before healing: everything up to the cut, nothing after it.
    let mut delivered = Vec::new();
    while delivered.len() < 5 {
        let response = watch.next().await?;
        ensure!(!response.canceled, "the watch was cancelled: {response:?}");
        delivered.extend(event_keys(&[response]));
    }
    if let Some(early) = watch.next_within(Duration::from_millis(500)).await? {
        ensure!(
            early.events.is_empty(),
            "the cut-off leader delivered {:?} before healing",
            event_keys(&[early])
        );
    }

    cluster.heal()?;
    let deadline = Instant::now() + PHASE_TIMEOUT;
    while delivered.len() < expected.len() {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(response) = watch.next_within(left).await? else {
            bail!(
                "the watch resumed with {} of {} events: {delivered:?}",
                delivered.len(),
                expected.len()
            );
        };
        ensure!(!response.canceled, "the watch was cancelled: {response:?}");
        delivered.extend(event_keys(&[response]));
    }
    ensure!(
        delivered == expected,
        "the watch delivered {delivered:?}, the cluster acknowledged {expected:?}"
    );
    // Nothing more: the old leader's own write never happened.
    if let Some(extra) = watch.next_within(Duration::from_millis(500)).await? {
        ensure!(
            extra.events.is_empty(),
            "the watch delivered {:?} after the acknowledged writes",
            event_keys(&[extra])
        );
    }
    Ok(())
}
