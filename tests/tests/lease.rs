//! The Lease service: grant, attach, keep-alive, time-to-live, revoke,
//! expiry decided by the leader, leases across a leader kill, and etcd's
//! answers to bad input. Every body runs against real etcd and cetera.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use cetera::proto::etcdserverpb::lease_client::LeaseClient;
use cetera::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseLeasesRequest, LeaseRevokeRequest,
    LeaseTimeToLiveRequest, PutRequest,
};
use tests::kv::{expect_status, get, prefix_end};
use tests::watch::WatchSession;
use tests::{Flavor, TestCluster, flavor_tests};
use tonic::Code;
use tonic::transport::Channel;

flavor_tests!(
    grant_attach_time_to_live_and_revoke,
    revoke_deletes_every_attached_key_in_one_revision,
    keys_vanish_after_keep_alives_stop_and_not_before,
    kept_alive_leases_survive_a_leader_kill,
    bad_lease_requests_get_etcds_answers,
    etcdctl_lease_commands_work,
    leases_and_their_keys_survive_restarting_every_member,
    txn_compares_on_a_keys_lease,
);

/// Election timeout the harness gives every cluster (ms).
const ELECTION: Duration = Duration::from_millis(500);

async fn grant(lease: &mut LeaseClient<Channel>, ttl: i64) -> Result<i64> {
    let granted = lease
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await?
        .into_inner();
    ensure!(granted.id > 0 && granted.ttl >= ttl, "granted {granted:?}");
    Ok(granted.id)
}

async fn put_with_lease(cluster: &TestCluster, i: usize, key: &str, lease: i64) -> Result<()> {
    cluster
        .kv(i)?
        .put(PutRequest {
            key: key.into(),
            value: b"v".to_vec(),
            lease,
            ..Default::default()
        })
        .await?;
    Ok(())
}

/// Sends one keep-alive and returns the TTL the server answered.
async fn keep_alive_once(lease: &mut LeaseClient<Channel>, id: i64) -> Result<i64> {
    let request = futures_stream(LeaseKeepAliveRequest { id });
    let mut answers = lease.lease_keep_alive(request).await?.into_inner();
    let answer = answers.message().await?.context("no keep-alive answer")?;
    Ok(answer.ttl)
}

fn futures_stream<T: Send + 'static>(item: T) -> tokio_stream::Once<T> {
    tokio_stream::once(item)
}

async fn grant_attach_time_to_live_and_revoke(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(1)?);
    let id = grant(&mut lease, 30).await?;
    put_with_lease(&cluster, 0, "l/a", id).await?;
    put_with_lease(&cluster, 2, "l/b", id).await?;
    let kv = get(&mut cluster.kv(1)?, "l/a").await?.context("l/a")?;
    assert_eq!(kv.lease, id);

    let ttl = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await?
        .into_inner();
    assert_eq!(ttl.granted_ttl, 30);
    ensure!((25..=30).contains(&ttl.ttl), "remaining ttl {}", ttl.ttl);
    // etcd lists a lease's keys in map order: compare them sorted.
    let mut keys = ttl.keys.clone();
    keys.sort();
    assert_eq!(keys, vec![b"l/a".to_vec(), b"l/b".to_vec()]);

    assert_eq!(keep_alive_once(&mut lease, id).await?, 30);
    let leases = lease
        .lease_leases(LeaseLeasesRequest {})
        .await?
        .into_inner();
    assert!(leases.leases.iter().any(|l| l.id == id));

    lease.lease_revoke(LeaseRevokeRequest { id }).await?;
    assert!(get(&mut cluster.kv(0)?, "l/a").await?.is_none());
    let gone = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: false })
        .await?
        .into_inner();
    assert_eq!(gone.ttl, -1, "an unknown lease has TTL -1");
    assert_eq!(
        keep_alive_once(&mut lease, id).await?,
        0,
        "keep-alive of a revoked lease says 0"
    );
    Ok(())
}

async fn revoke_deletes_every_attached_key_in_one_revision(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    let id = grant(&mut lease, 60).await?;
    for key in ["r/1", "r/2", "r/3"] {
        put_with_lease(&cluster, 0, key, id).await?;
    }
    // A linearizable read makes member 2 apply the puts first, so its
    // watch from "now" starts after them.
    get(&mut cluster.kv(2)?, "r/3").await?.context("r/3")?;
    let (mut session, _) = WatchSession::open(
        cluster.grpc_channel(2)?,
        cetera::proto::etcdserverpb::WatchCreateRequest {
            key: b"r/".to_vec(),
            range_end: prefix_end(b"r/"),
            ..Default::default()
        },
    )
    .await?;
    lease.lease_revoke(LeaseRevokeRequest { id }).await?;
    let deletes = session.next().await?;
    assert_eq!(
        deletes.events.len(),
        3,
        "all deletes of the revoke in one response"
    );
    let revisions: Vec<i64> = deletes
        .events
        .iter()
        .map(|e| e.kv.clone().unwrap_or_default().mod_revision)
        .collect();
    assert!(
        revisions.windows(2).all(|w| w[0] == w[1]),
        "one revision: {revisions:?}"
    );
    Ok(())
}

async fn keys_vanish_after_keep_alives_stop_and_not_before(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    let ttl = 3;
    let id = grant(&mut lease, ttl).await?;
    put_with_lease(&cluster, 0, "e/key", id).await?;

    // Kept alive for three TTLs: the key stays.
    let kept_until = Instant::now() + Duration::from_secs(3 * ttl as u64);
    while Instant::now() < kept_until {
        assert_eq!(keep_alive_once(&mut lease, id).await?, ttl);
        assert!(get(&mut cluster.kv(1)?, "e/key").await?.is_some());
        tokio::time::sleep(Duration::from_millis(700)).await;
    }

    // Stopped: gone within TTL + one election timeout (plus the leader's
    // half-second expiry tick and slack for a loaded machine).
    let stopped = Instant::now();
    let limit = Duration::from_secs(ttl as u64) + ELECTION + Duration::from_secs(3);
    while get(&mut cluster.kv(2)?, "e/key").await?.is_some() {
        ensure!(stopped.elapsed() < limit, "the key outlived its lease");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        stopped.elapsed() >= Duration::from_secs(ttl as u64 - 1),
        "expired early after {:?}",
        stopped.elapsed()
    );
    Ok(())
}

async fn kept_alive_leases_survive_a_leader_kill(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let follower = (leader + 1) % 3;
    let mut lease = LeaseClient::new(cluster.grpc_channel(follower)?);
    let ttl = 3;
    let id = grant(&mut lease, ttl).await?;
    put_with_lease(&cluster, follower, "k/held", id).await?;

    cluster.member(leader).kill().await?;
    // Keep it alive through the election and well past its TTL.
    let until = Instant::now() + Duration::from_secs(3 * ttl as u64);
    while Instant::now() < until {
        let _ = keep_alive_once(&mut lease, id).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        get(&mut cluster.kv(follower)?, "k/held").await?.is_some(),
        "a kept-alive lease expired across the leader change"
    );

    // Keep-alives stop: the new leader expires it.
    let stopped = Instant::now();
    while get(&mut cluster.kv(follower)?, "k/held").await?.is_some() {
        ensure!(
            stopped.elapsed() < Duration::from_secs(15),
            "the key outlived its lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

async fn bad_lease_requests_get_etcds_answers(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    expect_status(
        lease.lease_revoke(LeaseRevokeRequest { id: 12345 }).await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    )?;
    expect_status(
        lease
            .lease_grant(LeaseGrantRequest {
                ttl: 9_000_000_001,
                id: 0,
            })
            .await,
        Code::OutOfRange,
        "etcdserver: too large lease TTL",
    )?;
    lease
        .lease_grant(LeaseGrantRequest { ttl: 60, id: 77 })
        .await?;
    expect_status(
        lease
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 77 })
            .await,
        Code::FailedPrecondition,
        "etcdserver: lease already exists",
    )?;
    let tiny = lease
        .lease_grant(LeaseGrantRequest { ttl: 1, id: 0 })
        .await?
        .into_inner();
    ensure!(
        tiny.ttl >= 1,
        "a TTL below the minimum is raised, not refused"
    );
    let negative = lease
        .lease_grant(LeaseGrantRequest { ttl: -5, id: 0 })
        .await?
        .into_inner();
    assert_eq!(
        negative.ttl, tiny.ttl,
        "a negative TTL is raised to the minimum too"
    );
    expect_status(
        cluster
            .kv(0)?
            .put(PutRequest {
                key: b"x".to_vec(),
                lease: 999,
                ..Default::default()
            })
            .await,
        Code::NotFound,
        "etcdserver: requested lease not found",
    )?;
    Ok(())
}

async fn etcdctl_lease_commands_work(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let granted = cluster.etcdctl_ok(&["lease", "grant", "100"]).await?;
    let id = granted
        .split_whitespace()
        .nth(1)
        .context("lease id in etcdctl output")?
        .to_string();
    assert_eq!(granted.trim(), format!("lease {id} granted with TTL(100s)"));
    cluster
        .etcdctl_ok(&["put", "ctl/key", "v", "--lease", &id])
        .await?;
    let ttl = cluster
        .etcdctl_ok(&["lease", "timetolive", &id, "--keys"])
        .await?;
    ensure!(
        ttl.contains("granted with TTL(100s)") && ttl.contains("attached keys([ctl/key])"),
        "{ttl}"
    );
    let kept = cluster
        .etcdctl_ok(&["lease", "keep-alive", "--once", &id])
        .await?;
    assert_eq!(kept.trim(), format!("lease {id} keepalived with TTL(100)"));
    let list = cluster.etcdctl_ok(&["lease", "list"]).await?;
    ensure!(list.contains(&id), "{list}");
    let revoked = cluster.etcdctl_ok(&["lease", "revoke", &id]).await?;
    assert_eq!(revoked.trim(), format!("lease {id} revoked"));
    assert_eq!(cluster.etcdctl_ok(&["get", "ctl/key"]).await?, "");
    Ok(())
}

async fn leases_and_their_keys_survive_restarting_every_member(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    let id = grant(&mut lease, 60).await?;
    put_with_lease(&cluster, 0, "survivor", id).await?;
    cluster.stop_all().await?;
    cluster.restart_all().await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(1)?);
    let ttl = lease
        .lease_time_to_live(LeaseTimeToLiveRequest { id, keys: true })
        .await?
        .into_inner();
    assert_eq!(ttl.granted_ttl, 60);
    ensure!(ttl.ttl > 0, "the lease expired across the restart: {ttl:?}");
    assert_eq!(ttl.keys, vec![b"survivor".to_vec()]);
    assert_eq!(
        get(&mut cluster.kv(2)?, "survivor")
            .await?
            .context("key")?
            .lease,
        id
    );
    // And it still expires normally once revoked.
    lease.lease_revoke(LeaseRevokeRequest { id }).await?;
    assert!(get(&mut cluster.kv(0)?, "survivor").await?.is_none());
    Ok(())
}

async fn txn_compares_on_a_keys_lease(flavor: Flavor) -> Result<()> {
    use cetera::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
    use cetera::proto::etcdserverpb::{Compare, TxnRequest};
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    let id = grant(&mut lease, 60).await?;
    put_with_lease(&cluster, 0, "held", id).await?;
    let compare = |value: i64| Compare {
        result: CompareResult::Equal as i32,
        target: CompareTarget::Lease as i32,
        key: b"held".to_vec(),
        target_union: Some(TargetUnion::Lease(value)),
        ..Default::default()
    };
    let mut kv = cluster.kv(0)?;
    let same = kv
        .txn(TxnRequest {
            compare: vec![compare(id)],
            ..Default::default()
        })
        .await?
        .into_inner();
    ensure!(same.succeeded, "lease == granted id should hold");
    let other = kv
        .txn(TxnRequest {
            compare: vec![compare(id + 1)],
            ..Default::default()
        })
        .await?
        .into_inner();
    ensure!(!other.succeeded, "lease == another id should fail");
    Ok(())
}
