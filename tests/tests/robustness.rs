//! Robustness: random reads (of one key, or of all at one revision), writes,
//! deletes and compare-and-swaps from concurrent clients on a few keys of a
//! 3-member cluster, while members are killed (-9), stopped, restarted and
//! frozen (SIGSTOP), or cut off from their peers (one member from both, or
//! one link) while clients still reach them, one fault at a time. Meanwhile
//! a leaser puts one key with short leases that it revokes, keeps alive or
//! lets expire. The
//! recorded history must be linearizable against the store's revision log
//! ([`tests::history`]). A watch on every member, started before the run
//! and resumed after each failure, must deliver that log whole, in order
//! and once, identical on every member.
//!
//! The run lasts `CETERA_ROBUSTNESS_SECONDS` (default 12) and its random
//! choices follow `CETERA_ROBUSTNESS_SEED` (default: from the clock); both
//! are printed, so a failure can be run again. `scripts/robustness.sh` runs
//! it longer and repeatedly. `on_etcd::*` holds the check to real etcd.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use cetera::proto::etcdserverpb::compare::{CompareResult, TargetUnion};
use cetera::proto::etcdserverpb::lease_client::LeaseClient;
use cetera::proto::etcdserverpb::response_op::Response as OpResponse;
use cetera::proto::etcdserverpb::{
    DeleteRangeRequest, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseRevokeRequest, PutRequest,
    RangeRequest, TxnRequest, WatchCreateRequest,
};
use cetera::proto::mvccpb::KeyValue;
use cetera::proto::mvccpb::event::EventType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tests::history::{self, Change, Found, Operation, Recorder, Request, Response};
use tests::kv::{Kv, compare, current_revision, get_op, prefix_end, put_op, rev};
use tests::watch::WatchSession;
use tests::{Flavor, TestCluster, flavor_tests};
use tokio::time::{Instant, sleep, timeout};
use tonic::transport::Channel;

flavor_tests!(histories_under_kills_pauses_and_partitions_are_linearizable);

const PREFIX: &str = "rb/";
const KEYS: [&str; 4] = ["rb/a", "rb/b", "rb/c", "rb/d"];
/// The key only the leaser writes, each time with a new lease; clients
/// read it (and scan it with the others).
const LEASED_KEY: &str = "rb/l";
/// Short leases, so some expire during the run.
const LEASE_TTL: i64 = 2;
const CLIENTS: usize = 6;
/// A request without an answer by then has an unknown outcome.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);
/// Liveness deadline for the cluster to come back; never a performance bound.
const RECOVERY_TIMEOUT: Duration = Duration::from_secs(60);
/// Short logs, so snapshots and log purges happen during the run.
const SNAPSHOT_COUNT: &str = "300";

async fn histories_under_kills_pauses_and_partitions_are_linearizable(
    flavor: Flavor,
) -> Result<()> {
    let seconds: u64 = env_or("CETERA_ROBUSTNESS_SECONDS", 12)?;
    let seed: u64 = env_or("CETERA_ROBUSTNESS_SEED", clock_seed())?;
    eprintln!("robustness on {flavor:?}: {seconds} s, CETERA_ROBUSTNESS_SEED={seed}");

    let cluster = TestCluster::builder(flavor, 3)
        .args(["--snapshot-count", SNAPSHOT_COUNT])
        .cuttable_links()
        .start()
        .await?;
    let first = current_revision(&mut cluster.kv(0)?).await? + 1;
    let recorder = Arc::new(Recorder::new());
    let stop = Arc::new(AtomicBool::new(false));
    let members: Vec<Kv> = (0..3).map(|i| cluster.kv(i)).collect::<Result<_>>()?;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let rng = StdRng::seed_from_u64(seed.wrapping_add(client as u64 + 1));
            tokio::spawn(run_client(
                client,
                members.clone(),
                rng,
                recorder.clone(),
                stop.clone(),
            ))
        })
        .collect();
    let leaser = tokio::spawn(run_leaser(
        CLIENTS,
        (0..3)
            .map(|i| cluster.grpc_channel(i))
            .collect::<Result<_>>()?,
        StdRng::seed_from_u64(seed.wrapping_sub(1)),
        recorder.clone(),
        stop.clone(),
    ));

    let barrier = Arc::new(AtomicI64::new(0));
    let watchers: Vec<_> = (0..3)
        .map(|i| {
            let channel = cluster.grpc_channel(i)?;
            Ok(tokio::spawn(follow_member(
                channel,
                i,
                first,
                barrier.clone(),
            )))
        })
        .collect::<Result<_>>()?;

    let faults = inject_faults(&cluster, StdRng::seed_from_u64(seed), seconds).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await?;
    }
    leaser.await?;
    let faults = faults?;

    barrier.store(write_barrier(&cluster).await?, Ordering::Relaxed);
    let mut logs = Vec::new();
    for (i, watcher) in watchers.into_iter().enumerate() {
        let log = timeout(RECOVERY_TIMEOUT, watcher)
            .await
            .with_context(|| format!("member {i}'s watch never reached the barrier"))??;
        logs.push(log?);
    }
    for (i, log) in logs.iter().enumerate().skip(1) {
        if let Some(at) = (0..log.len().max(logs[0].len())).find(|&n| log.get(n) != logs[0].get(n))
        {
            bail!(
                "members 0 and {i} disagree at revision {}: {:?} against {:?}",
                first + at as i64,
                logs[0].get(at),
                log.get(at)
            );
        }
    }

    let operations = recorder.operations();
    let report = history::check(&operations, &logs[0], first);
    let leases = lease_counts(&operations, &logs[0]);
    eprintln!(
        "{} operations ({} answered, {} unknown of which {} took effect), {} revisions, \
         {leases}, faults: {faults}",
        operations.len(),
        report.acknowledged,
        report.unknown,
        report.unknown_applied,
        logs[0].len()
    );
    if !report.is_linearizable() {
        bail!(
            "not linearizable (CETERA_ROBUSTNESS_SEED={seed}); {} violations, first ones:\n{}",
            report.violations.len(),
            report.violations[..report.violations.len().min(10)].join("\n")
        );
    }
    // A cluster that answers nothing is trivially linearizable: it must
    // also have worked through the faults.
    let writes = logs[0].len();
    ensure!(
        writes >= 50 && report.acknowledged >= 100,
        "too little got through: {writes} writes, {} answers",
        report.acknowledged
    );
    Ok(())
}

/// What the leaser got done: leased puts and revokes answered, and
/// leased versions the log deleted (revoked or expired).
fn lease_counts(operations: &[Operation], log: &[Change]) -> String {
    let answered = |leased: fn(&Request) -> bool| {
        operations
            .iter()
            .filter(|op| leased(&op.request) && op.completed.is_some())
            .count()
    };
    let puts = answered(|r| matches!(r, Request::PutLeased { .. }));
    let revokes = answered(|r| matches!(r, Request::Revoke { .. }));
    let mut live: Option<&str> = None;
    let mut ended = 0;
    for change in log.iter().filter(|c| c.key == LEASED_KEY) {
        if change.value.is_none() && live.is_some_and(|v| v.starts_with("lease")) {
            ended += 1;
        }
        live = change.value.as_deref();
    }
    format!("{puts} leased puts, {revokes} revokes, {ended} leased versions ended")
}

fn env_or(name: &str, default: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(text) => text.parse().with_context(|| format!("{name}={text}")),
        Err(_) => Ok(default),
    }
}

fn clock_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Sends random requests until `stop`, recording each; moves to the next
/// member after a failure (no retries: a retried write would be a new
/// operation with the same value).
async fn run_client(
    client: usize,
    members: Vec<Kv>,
    mut rng: StdRng,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut member = client % members.len();
    let mut seq = 0u64;
    // The value this client last saw per key: what its swaps expect.
    let mut seen: Vec<Option<String>> = vec![None; KEYS.len()];
    while !stop.load(Ordering::Relaxed) {
        let k = rng.random_range(0..KEYS.len());
        let key = KEYS[k].to_string();
        seq += 1;
        let value = format!("c{client}-{seq}");
        let request = match rng.random_range(0..10) {
            0..=3 => Request::Put { key, value },
            4 => Request::Get { key },
            5 => Request::Get {
                key: LEASED_KEY.to_string(),
            },
            6 => Request::Scan {
                prefix: PREFIX.to_string(),
            },
            7..=8 => Request::Cas {
                key,
                expect: seen[k].clone(),
                value,
            },
            _ => Request::Delete { key },
        };
        let invoked = recorder.now();
        let answer = timeout(
            REQUEST_TIMEOUT,
            send(&mut members[member].clone(), &request),
        )
        .await;
        let completed = match answer {
            Ok(Ok(response)) => Some((recorder.now(), response)),
            _ => None,
        };
        let answered = completed.is_some();
        if let Some((_, response)) = &completed
            && let Some(value) = observed(&request, response)
        {
            seen[k] = value;
        }
        recorder.record(Operation {
            client,
            request,
            invoked,
            completed,
        });
        if !answered {
            member = (member + 1) % members.len();
            sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Grants short leases and puts [`LEASED_KEY`] with each, then revokes the
/// lease at once, keeps it alive a while and revokes it, or lets it expire;
/// records the puts and revokes. Moves to the next member after a failure.
async fn run_leaser(
    client: usize,
    members: Vec<Channel>,
    mut rng: StdRng,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) {
    let mut member = 0;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let mut leases = LeaseClient::new(members[member].clone());
        let mut kv = Kv::new(members[member].clone());
        let grant = LeaseGrantRequest {
            ttl: LEASE_TTL,
            id: 0,
        };
        let Ok(Ok(granted)) = timeout(REQUEST_TIMEOUT, leases.lease_grant(grant)).await else {
            member = (member + 1) % members.len();
            sleep(Duration::from_millis(50)).await;
            continue;
        };
        let lease = granted.into_inner().id;
        seq += 1;
        let key = LEASED_KEY.to_string();
        let value = format!("lease{client}-{seq}");
        let invoked = recorder.now();
        let put = PutRequest {
            key: key.clone().into_bytes(),
            value: value.clone().into_bytes(),
            lease,
            ..Default::default()
        };
        let answer = timeout(REQUEST_TIMEOUT, kv.put(put)).await;
        let completed = match answer {
            Ok(Ok(response)) => Some((
                recorder.now(),
                Response::Put {
                    revision: rev(&response.into_inner().header),
                },
            )),
            _ => None,
        };
        let answered = completed.is_some();
        recorder.record(Operation {
            client,
            request: Request::PutLeased {
                key: key.clone(),
                value: value.clone(),
            },
            invoked,
            completed,
        });
        if !answered {
            member = (member + 1) % members.len();
            continue;
        }
        match rng.random_range(0..3) {
            0 => {}
            1 => {
                let until = Instant::now() + Duration::from_millis(rng.random_range(500..2500));
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    let once = tokio_stream::once(LeaseKeepAliveRequest { id: lease });
                    let _ = timeout(Duration::from_secs(1), async {
                        let mut answers = leases.lease_keep_alive(once).await?.into_inner();
                        anyhow::Ok(answers.message().await?)
                    })
                    .await;
                    sleep(Duration::from_millis(300)).await;
                }
            }
            _ => {
                // Left to expire (the next put would replace it sooner).
                let ttl = Duration::from_secs(LEASE_TTL as u64);
                sleep(ttl + Duration::from_millis(rng.random_range(500..1500))).await;
                continue;
            }
        }
        let invoked = recorder.now();
        let answer = timeout(
            REQUEST_TIMEOUT,
            leases.lease_revoke(LeaseRevokeRequest { id: lease }),
        )
        .await;
        let completed = match answer {
            Ok(Ok(response)) => Some((
                recorder.now(),
                Response::Revoke {
                    revision: rev(&response.into_inner().header),
                },
            )),
            // An expired lease is not found: nothing to check.
            _ => None,
        };
        recorder.record(Operation {
            client,
            request: Request::Revoke { key, value },
            invoked,
            completed,
        });
    }
}

/// The key's value as an answer shows it, if it shows it.
fn observed(request: &Request, response: &Response) -> Option<Option<String>> {
    match (request, response) {
        (Request::Put { value, .. }, _) => Some(Some(value.clone())),
        (Request::Delete { .. }, _) => Some(None),
        (Request::Get { .. }, Response::Get { found, .. }) => {
            Some(found.as_ref().map(|f| f.value.clone()))
        }
        (
            Request::Cas { value, .. },
            Response::Cas {
                succeeded, found, ..
            },
        ) => Some(if *succeeded {
            Some(value.clone())
        } else {
            found.as_ref().map(|f| f.value.clone())
        }),
        _ => None,
    }
}

async fn send(kv: &mut Kv, request: &Request) -> Result<Response> {
    Ok(match request {
        Request::Put { key, value } => {
            let response = kv
                .put(PutRequest {
                    key: key.clone().into_bytes(),
                    value: value.clone().into_bytes(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Response::Put {
                revision: rev(&response.header),
            }
        }
        Request::Delete { key } => {
            let response = kv
                .delete_range(DeleteRangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Response::Delete {
                revision: rev(&response.header),
                deleted: response.deleted > 0,
            }
        }
        Request::Get { key } => {
            let response = kv
                .range(RangeRequest {
                    key: key.clone().into_bytes(),
                    ..Default::default()
                })
                .await?
                .into_inner();
            Response::Get {
                revision: rev(&response.header),
                found: response.kvs.first().map(found),
            }
        }
        Request::Scan { prefix } => {
            let response = kv
                .range(RangeRequest {
                    key: prefix.clone().into_bytes(),
                    range_end: prefix_end(prefix.as_bytes()),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let found = response
                .kvs
                .iter()
                .map(|kv| (String::from_utf8_lossy(&kv.key).into_owned(), found(kv)))
                .collect();
            Response::Scan {
                revision: rev(&response.header),
                found,
            }
        }
        Request::PutLeased { .. } | Request::Revoke { .. } => {
            bail!("leases are the leaser's: {request:?}")
        }
        Request::Cas { key, expect, value } => {
            let condition = match expect {
                Some(expected) => compare(
                    key,
                    CompareResult::Equal,
                    TargetUnion::Value(expected.clone().into_bytes()),
                ),
                None => compare(key, CompareResult::Equal, TargetUnion::Version(0)),
            };
            let response = kv
                .txn(TxnRequest {
                    compare: vec![condition],
                    success: vec![put_op(key, value)],
                    failure: vec![get_op(key)],
                })
                .await?
                .into_inner();
            let read = response.responses.first().and_then(|r| match &r.response {
                Some(OpResponse::ResponseRange(range)) => range.kvs.first().map(found),
                _ => None,
            });
            Response::Cas {
                revision: rev(&response.header),
                succeeded: response.succeeded,
                found: read,
            }
        }
    })
}

fn found(kv: &KeyValue) -> Found {
    Found {
        value: String::from_utf8_lossy(&kv.value).into_owned(),
        mod_revision: kv.mod_revision,
        create_revision: kv.create_revision,
        version: kv.version,
    }
}

/// Faults one at a time, so a quorum is always up (or back soon), until
/// `seconds` have passed; returns what was done.
async fn inject_faults(cluster: &TestCluster, mut rng: StdRng, seconds: u64) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut kinds = Vec::new();
    while Instant::now() < deadline {
        sleep(Duration::from_millis(rng.random_range(800..1800))).await;
        let leader = cluster.leader_index().await?;
        let target = if rng.random_bool(0.5) {
            leader
        } else {
            rng.random_range(0..cluster.size())
        };
        let role = if target == leader {
            "leader"
        } else {
            "follower"
        };
        let member = cluster.member(target);
        let pause = Duration::from_millis(rng.random_range(200..1500));
        let kind = match rng.random_range(0..5) {
            0 => {
                member.kill().await?;
                sleep(pause).await;
                member.restart().await?;
                "kill -9"
            }
            1 => {
                member.stop().await?;
                sleep(pause).await;
                member.restart().await?;
                "stop"
            }
            2 => {
                member.freeze()?;
                sleep(pause).await;
                member.resume()?;
                "pause"
            }
            3 => {
                cluster.isolate(target)?;
                sleep(pause).await;
                cluster.heal()?;
                "partition"
            }
            _ => {
                let other = (target + rng.random_range(1..cluster.size())) % cluster.size();
                cluster.cut(target, other)?;
                sleep(pause).await;
                cluster.heal()?;
                "cut link of"
            }
        };
        cluster
            .wait_ready_for(target, RECOVERY_TIMEOUT)
            .await
            .with_context(|| format!("{kind} of the {role} {target}"))?;
        kinds.push(format!("{kind} {role}"));
    }
    ensure!(!kinds.is_empty(), "no fault was injected");
    Ok(kinds.join(", "))
}

/// A write after every client stopped: once it commits, every earlier
/// entry is committed or gone for good, so the log up to it is final.
async fn write_barrier(cluster: &TestCluster) -> Result<i64> {
    let deadline = Instant::now() + RECOVERY_TIMEOUT;
    loop {
        for i in 0..cluster.size() {
            let request = PutRequest {
                key: b"rb-barrier".to_vec(),
                value: b"end".to_vec(),
                ..Default::default()
            };
            if let Ok(Ok(response)) = timeout(REQUEST_TIMEOUT, cluster.kv(i)?.put(request)).await {
                return Ok(rev(&response.into_inner().header));
            }
        }
        if Instant::now() >= deadline {
            bail!("no member took the barrier write within {RECOVERY_TIMEOUT:?}");
        }
        sleep(Duration::from_millis(200)).await;
    }
}

/// Member `i`'s log from revision `first` to just before the barrier, as a
/// watch started before the run delivers it while members fail around it:
/// after a failure it resumes from the revision after the last one it got,
/// as clients do, until it has passed the barrier (0 until known). Every
/// revision here holds one event, so the events must come one revision
/// after another: none missing, none twice, none out of order.
async fn follow_member(
    channel: Channel,
    i: usize,
    first: i64,
    barrier: Arc<AtomicI64>,
) -> Result<Vec<Change>> {
    let mut log = Vec::new();
    let mut next = first;
    loop {
        let end = barrier.load(Ordering::Relaxed);
        if end > 0 && next > end {
            log.retain(|change: &Change| change.revision < end);
            return Ok(log);
        }
        let create = WatchCreateRequest {
            key: vec![0],
            range_end: vec![0],
            start_revision: next,
            ..Default::default()
        };
        let Ok((mut session, _)) = WatchSession::open(channel.clone(), create).await else {
            sleep(Duration::from_millis(200)).await;
            continue;
        };
        // Until the stream fails or the barrier has come by.
        while let Ok(response) = session.next_within(Duration::from_millis(500)).await {
            let Some(response) = response else {
                let end = barrier.load(Ordering::Relaxed);
                if end > 0 && next > end {
                    break;
                }
                continue;
            };
            ensure!(
                response.compact_revision == 0 && !response.canceled,
                "member {i} cancelled the watch: {response:?}"
            );
            for event in response.events {
                let kv = event.kv.unwrap_or_default();
                ensure!(
                    kv.mod_revision == next,
                    "member {i}'s watch delivered revision {} where {next} was due",
                    kv.mod_revision
                );
                next += 1;
                let deleted = event.r#type == EventType::Delete as i32;
                log.push(Change {
                    revision: kv.mod_revision,
                    key: String::from_utf8_lossy(&kv.key).into_owned(),
                    value: (!deleted).then(|| String::from_utf8_lossy(&kv.value).into_owned()),
                });
            }
        }
    }
}
