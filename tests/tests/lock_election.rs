//! Locks and elections: the `v3lockpb.Lock` and `v3electionpb.Election`
//! gRPC services, `etcdctl lock` and `etcdctl elect` (which build the same
//! recipes from KV, Lease and Watch), and the Python `etcd3` client's
//! lease, lock and watch helpers. Every body runs against real etcd and
//! cetera.
//!
//! The Python tests use the virtualenv that `scripts/test` creates at
//! `.venv` in the workspace root (its `ensure_python_clients` step).

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use cetera::proto::etcdserverpb::lease_client::LeaseClient;
use cetera::proto::etcdserverpb::{LeaseGrantRequest, LeaseRevokeRequest, LeaseTimeToLiveRequest};
use cetera::proto::v3electionpb::election_client::ElectionClient;
use cetera::proto::v3electionpb::{
    CampaignRequest, CampaignResponse, LeaderKey, LeaderRequest, LeaderResponse, ProclaimRequest,
    ResignRequest,
};
use cetera::proto::v3lockpb::lock_client::LockClient;
use cetera::proto::v3lockpb::{LockRequest, UnlockRequest};
use rustix::process::{Pid, Signal, kill_process};
use tests::kv::{expect_status, get, put};
use tests::python::run_python;
use tests::{Flavor, TestCluster, flavor_tests};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};

flavor_tests!(
    grpc_lock_excludes_a_second_contender,
    grpc_lock_answers_errors_like_etcd,
    grpc_election_campaign_proclaim_observe_resign,
    etcdctl_lock_excludes_a_second_contender,
    etcdctl_elect_with_two_candidates_and_an_observer,
    python_etcd3_lease,
    python_etcd3_refresh,
    python_etcd3_lock_with_two_processes,
    python_etcd3_put_if_not_exists,
    python_etcd3_watch_once,
);

/// How long a contender must stay blocked to count as excluded.
const STILL_BLOCKED: Duration = Duration::from_millis(1500);
/// How long a blocked call may take to return once it is let through.
const LET_THROUGH: Duration = Duration::from_secs(10);

async fn grant(lease: &mut LeaseClient<Channel>, ttl: i64) -> Result<i64> {
    Ok(lease
        .lease_grant(LeaseGrantRequest { ttl, id: 0 })
        .await?
        .into_inner()
        .id)
}

/// Fails unless `call` is still running after [`STILL_BLOCKED`].
async fn ensure_blocked<T>(call: &mut JoinHandle<T>, what: &str) -> Result<()> {
    ensure!(
        timeout(STILL_BLOCKED, call).await.is_err(),
        "{what} returned while it should still be waiting"
    );
    Ok(())
}

/// The result of a blocked call once it is let through.
async fn finished<T>(call: JoinHandle<T>, what: &str) -> Result<T> {
    timeout(LET_THROUGH, call)
        .await
        .with_context(|| format!("{what} did not return after being let through"))?
        .with_context(|| format!("{what} panicked"))
}

/// Waits until `key` no longer exists.
async fn wait_gone(cluster: &TestCluster, key: &str, what: &str) -> Result<()> {
    let mut kv = cluster.kv(0)?;
    let deadline = tokio::time::Instant::now() + LET_THROUGH;
    while get(&mut kv, key).await?.is_some() {
        ensure!(
            tokio::time::Instant::now() < deadline,
            "{what} ({key}) was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

fn lock_request(name: &str, lease: i64) -> LockRequest {
    LockRequest {
        name: name.into(),
        lease,
    }
}

fn spawn_lock(
    cluster: &TestCluster,
    i: usize,
    name: &str,
    lease: i64,
) -> Result<JoinHandle<Result<Vec<u8>, Status>>> {
    let mut client = LockClient::new(cluster.grpc_channel(i)?);
    let request = lock_request(name, lease);
    Ok(tokio::spawn(async move {
        client.lock(request).await.map(|resp| resp.into_inner().key)
    }))
}

async fn grpc_lock_excludes_a_second_contender(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    let mut lock = LockClient::new(cluster.grpc_channel(0)?);
    let mut kv = cluster.kv(2)?;

    // The first contender holds `job/<lease hex>` at once.
    let first = grant(&mut lease, 30).await?;
    let held = lock.lock(lock_request("job", first)).await?.into_inner();
    let first_key = format!("job/{first:x}");
    assert_eq!(held.key, first_key.as_bytes());
    let first_kv = get(&mut kv, &first_key).await?.context("lock key")?;
    assert_eq!(first_kv.lease, first);
    assert_eq!(
        held.header.as_ref().map(|h| h.revision),
        Some(first_kv.create_revision)
    );
    // The same session asking again keeps its place and returns at once.
    let again = lock.lock(lock_request("job", first)).await?.into_inner();
    assert_eq!(again.key, held.key);

    // The second contender (through another member) waits for the unlock.
    let second = grant(&mut lease, 30).await?;
    let mut waiter = spawn_lock(&cluster, 1, "job", second)?;
    ensure_blocked(&mut waiter, "the second Lock").await?;
    let second_key = format!("job/{second:x}");
    assert!(
        get(&mut kv, &second_key).await?.is_some(),
        "a waiter's key is in line"
    );
    lock.unlock(UnlockRequest {
        key: held.key.clone(),
    })
    .await?;
    let got = finished(waiter, "the second Lock").await??;
    assert_eq!(got, second_key.as_bytes());
    assert!(get(&mut kv, &first_key).await?.is_none(), "unlock deletes");

    // A third, with a server-made session (lease 0), waits until the
    // holder's lease is revoked.
    let mut waiter = spawn_lock(&cluster, 2, "job", 0)?;
    ensure_blocked(&mut waiter, "the third Lock").await?;
    lease
        .lease_revoke(LeaseRevokeRequest { id: second })
        .await?;
    let third_key = finished(waiter, "the third Lock").await??;
    let third_kv = get(&mut kv, std::str::from_utf8(&third_key)?)
        .await?
        .context("third lock key")?;
    assert_eq!(
        third_key,
        format!("job/{:x}", third_kv.lease).into_bytes(),
        "the key names the session lease"
    );
    let session = lease
        .lease_time_to_live(LeaseTimeToLiveRequest {
            id: third_kv.lease,
            keys: false,
        })
        .await?
        .into_inner();
    assert_eq!(
        session.granted_ttl, 60,
        "the server's session lease is 60 s"
    );

    // A contender that gives up while waiting leaves no key behind.
    let fourth = grant(&mut lease, 30).await?;
    let mut request = tonic::Request::new(lock_request("job", fourth));
    request.set_timeout(Duration::from_millis(800));
    let gave_up = LockClient::new(cluster.grpc_channel(1)?)
        .lock(request)
        .await;
    ensure!(gave_up.is_err(), "the lock is held: {gave_up:?}");
    wait_gone(
        &cluster,
        &format!("job/{fourth:x}"),
        "an abandoned waiter's key",
    )
    .await?;
    lock.unlock(UnlockRequest { key: third_key }).await?;
    Ok(())
}

async fn grpc_lock_answers_errors_like_etcd(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    let mut lock = LockClient::new(cluster.grpc_channel(0)?);
    // etcd runs these services through its own client: every error is
    // code Unknown with the message of the request that failed.
    expect_status(
        lock.lock(lock_request("bad", 0x7e57)).await,
        Code::Unknown,
        "etcdserver: requested lease not found",
    )?;
    expect_status(
        lock.unlock(UnlockRequest { key: Vec::new() }).await,
        Code::Unknown,
        "etcdserver: key is not provided",
    )?;
    // Unlocking a lock nobody holds is not an error.
    lock.unlock(UnlockRequest {
        key: b"bad/none".to_vec(),
    })
    .await?;

    // A waiter whose own lease is revoked while it waits.
    let holder = lock.lock(lock_request("gone", 0)).await?.into_inner();
    let doomed = grant(&mut lease, 30).await?;
    let mut waiter = spawn_lock(&cluster, 0, "gone", doomed)?;
    ensure_blocked(&mut waiter, "the waiter").await?;
    lease
        .lease_revoke(LeaseRevokeRequest { id: doomed })
        .await?;
    ensure_blocked(&mut waiter, "the waiter with a revoked lease").await?;
    lock.unlock(UnlockRequest { key: holder.key }).await?;
    let answer = finished(waiter, "the waiter").await?;
    match flavor {
        // etcd 3.5 and cetera re-check the waiter's key (etcd #11456).
        Flavor::Cetera => expect_status(answer, Code::Unknown, "session expired")?,
        // etcd 3.4 still reports a lock whose key is gone.
        Flavor::Etcd => {
            answer?;
        }
    }
    Ok(())
}

fn leader_key(resp: &CampaignResponse) -> Result<LeaderKey> {
    resp.leader
        .clone()
        .context("campaign answered no leader key")
}

fn value_of(resp: &LeaderResponse) -> String {
    resp.kv
        .as_ref()
        .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
        .unwrap_or_default()
}

async fn next_observed(observed: &mut Streaming<LeaderResponse>) -> Result<LeaderResponse> {
    timeout(LET_THROUGH, observed.message())
        .await
        .context("no leader update observed")??
        .context("the observe stream ended")
}

async fn grpc_election_campaign_proclaim_observe_resign(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut lease = LeaseClient::new(cluster.grpc_channel(0)?);
    let mut election = ElectionClient::new(cluster.grpc_channel(0)?);
    let leader_of = |name: &str| LeaderRequest { name: name.into() };

    expect_status(
        election.leader(leader_of("vote")).await,
        Code::Unknown,
        "election: no leader",
    )?;
    // The observer connects before anyone runs (etcd sends the stream's
    // headers only with its first update, so the call itself waits).
    let mut observer = ElectionClient::new(cluster.grpc_channel(2)?);
    let observing = tokio::spawn(async move { observer.observe(leader_of("vote")).await });

    let one = grant(&mut lease, 30).await?;
    let first = election
        .campaign(CampaignRequest {
            name: b"vote".to_vec(),
            lease: one,
            value: b"one".to_vec(),
        })
        .await?
        .into_inner();
    let first_leader = leader_key(&first)?;
    assert_eq!(first_leader.name, b"vote");
    assert_eq!(first_leader.key, format!("vote/{one:x}").into_bytes());
    assert_eq!(first_leader.lease, one);
    assert_eq!(
        Some(first_leader.rev),
        first.header.as_ref().map(|h| h.revision)
    );
    let mut observed = finished(observing, "Observe").await??.into_inner();
    let update = next_observed(&mut observed).await?;
    assert_eq!(value_of(&update), "one");

    // The second candidate (another member) waits while the first leads.
    let two = grant(&mut lease, 30).await?;
    let mut candidate = ElectionClient::new(cluster.grpc_channel(1)?);
    let mut second = tokio::spawn(async move {
        candidate
            .campaign(CampaignRequest {
                name: b"vote".to_vec(),
                lease: two,
                value: b"two".to_vec(),
            })
            .await
    });
    ensure_blocked(&mut second, "the second Campaign").await?;
    // A candidate that gives up while waiting resigns.
    let three = grant(&mut lease, 30).await?;
    let mut request = tonic::Request::new(CampaignRequest {
        name: b"vote".to_vec(),
        lease: three,
        value: b"three".to_vec(),
    });
    request.set_timeout(Duration::from_millis(800));
    let gave_up = ElectionClient::new(cluster.grpc_channel(2)?)
        .campaign(request)
        .await;
    ensure!(gave_up.is_err(), "the office is taken: {gave_up:?}");
    wait_gone(
        &cluster,
        &format!("vote/{three:x}"),
        "an abandoned candidate's key",
    )
    .await?;
    let current = election.leader(leader_of("vote")).await?.into_inner();
    assert_eq!(value_of(&current), "one");

    // Proclaim changes the leader's value; everyone sees it.
    election
        .proclaim(ProclaimRequest {
            leader: Some(first_leader.clone()),
            value: b"uno".to_vec(),
        })
        .await?;
    assert_eq!(value_of(&next_observed(&mut observed).await?), "uno");
    let current = election.leader(leader_of("vote")).await?.into_inner();
    assert_eq!(value_of(&current), "uno");
    let stale = LeaderKey {
        rev: first_leader.rev - 1,
        ..first_leader.clone()
    };
    expect_status(
        election
            .proclaim(ProclaimRequest {
                leader: Some(stale),
                value: b"nope".to_vec(),
            })
            .await,
        Code::Unknown,
        "election: not leader",
    )?;
    expect_status(
        election
            .proclaim(ProclaimRequest {
                leader: None,
                value: b"nope".to_vec(),
            })
            .await,
        Code::Unknown,
        "\"leader\" field must be provided",
    )?;
    expect_status(
        election.resign(ResignRequest { leader: None }).await,
        Code::Unknown,
        "\"leader\" field must be provided",
    )?;

    // Resigning hands the office to the waiting candidate.
    election
        .resign(ResignRequest {
            leader: Some(first_leader),
        })
        .await?;
    let second = finished(second, "the second Campaign").await??.into_inner();
    let second_leader = leader_key(&second)?;
    assert_eq!(second_leader.key, format!("vote/{two:x}").into_bytes());
    let update = next_observed(&mut observed).await?;
    assert_eq!(value_of(&update), "two");
    assert_eq!(
        update.kv.as_ref().map(|kv| kv.key.clone()),
        Some(second_leader.key.clone())
    );
    election
        .resign(ResignRequest {
            leader: Some(second_leader),
        })
        .await?;
    expect_status(
        election.leader(leader_of("vote")).await,
        Code::Unknown,
        "election: no leader",
    )?;
    Ok(())
}

async fn etcdctl_lock_excludes_a_second_contender(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let log = cluster.dir().join("lock.log");
    let script = format!(
        "echo start $ETCD_LOCK_KEY >> {0}; sleep 1; echo end >> {0}",
        log.display()
    );
    let args = ["lock", "ctl-job", "--", "sh", "-c", script.as_str()];
    let (a, b) = tokio::join!(
        cluster.etcdctl_at(0, &args, None),
        cluster.etcdctl_at(1, &args, None)
    );
    a?.ok()?;
    b?.ok()?;
    let text = std::fs::read_to_string(&log)?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() == 4, "expected two runs, got:\n{text}");
    for run in lines.chunks(2) {
        ensure!(
            run[0].starts_with("start ctl-job/") && run[1] == "end",
            "the holders overlapped:\n{text}"
        );
    }
    ensure!(lines[0] != lines[2], "both ran under one key:\n{text}");
    // Both released: no lock key is left.
    let left = cluster.etcdctl_ok(&["get", "--prefix", "ctl-job/"]).await?;
    ensure!(left.is_empty(), "lock keys left behind: {left}");
    Ok(())
}

/// A long-running `etcdctl` whose output is read line by line.
struct CtlProcess {
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl CtlProcess {
    fn spawn(cluster: &TestCluster, i: usize, args: &[&str]) -> Result<Self> {
        let mut cmd = Command::new(tests::binaries::etcdctl_bin()?);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("ETCDCTL_") {
                cmd.env_remove(key);
            }
        }
        let mut child = cmd
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={}", cluster.client_url(i)))
            .arg("--dial-timeout=5s")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("spawning etcdctl")?;
        let stdout = child.stdout.take().context("etcdctl stdout")?;
        Ok(Self {
            child,
            lines: BufReader::new(stdout).lines(),
        })
    }

    /// The next line, waiting at most `limit`; `None` if none came in time.
    async fn line_within(&mut self, limit: Duration) -> Result<Option<String>> {
        match timeout(limit, self.lines.next_line()).await {
            Err(_) => Ok(None),
            Ok(line) => Ok(Some(line?.context("etcdctl closed its output")?)),
        }
    }

    async fn line(&mut self) -> Result<String> {
        self.line_within(LET_THROUGH)
            .await?
            .context("etcdctl printed nothing in time")
    }

    /// `(key, value)` of the next leader printed.
    async fn leader(&mut self) -> Result<(String, String)> {
        Ok((self.line().await?, self.line().await?))
    }

    /// SIGTERM (etcdctl resigns and closes its session), then waits.
    async fn terminate(mut self) -> Result<()> {
        let pid = self.child.id().context("etcdctl already reaped")?;
        let pid = Pid::from_raw(pid as i32).context("bad pid")?;
        kill_process(pid, Signal::TERM)?;
        timeout(LET_THROUGH, self.child.wait())
            .await
            .context("etcdctl did not exit after SIGTERM")??;
        Ok(())
    }
}

async fn etcdctl_elect_with_two_candidates_and_an_observer(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let mut observer = CtlProcess::spawn(&cluster, 2, &["elect", "-l", "ctl-vote"])?;
    let mut first = CtlProcess::spawn(&cluster, 0, &["elect", "ctl-vote", "alpha"])?;
    let (first_key, value) = first.leader().await?;
    assert_eq!(value, "alpha");
    ensure!(first_key.starts_with("ctl-vote/"), "leader key {first_key}");
    assert_eq!(observer.leader().await?, (first_key.clone(), value));

    let mut second = CtlProcess::spawn(&cluster, 1, &["elect", "ctl-vote", "beta"])?;
    ensure!(
        second.line_within(STILL_BLOCKED).await?.is_none(),
        "the second candidate was elected while the first leads"
    );
    first.terminate().await?;
    let (second_key, value) = second.leader().await?;
    assert_eq!(value, "beta");
    ensure!(second_key != first_key, "both leaders had key {first_key}");
    assert_eq!(observer.leader().await?, (second_key, value));
    second.terminate().await?;
    observer.terminate().await?;
    Ok(())
}

const PY_PRELUDE: &str = r#"
import sys, threading, time
import etcd3
client = etcd3.client(host=sys.argv[1], port=int(sys.argv[2]), timeout=10)
"#;

async fn python_etcd3(cluster: &TestCluster, i: usize, body: &str, extra: &[&str]) -> Result<()> {
    run_python(cluster, i, &format!("{PY_PRELUDE}{body}"), extra).await?;
    Ok(())
}

async fn python_etcd3_lease(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    python_etcd3(
        &cluster,
        1,
        r#"
lease = client.lease(10)
client.put('py/lease/a', 'x', lease=lease)
client.put('py/lease/b', 'y', lease=lease)
assert lease.granted_ttl == 10, lease.granted_ttl
assert 0 < lease.remaining_ttl <= 10, lease.remaining_ttl
assert sorted(lease.keys) == [b'py/lease/a', b'py/lease/b'], lease.keys
value, meta = client.get('py/lease/a')
assert value == b'x' and meta.lease_id == lease.id, (value, meta.lease_id)
lease.revoke()
assert client.get('py/lease/a')[0] is None
assert client.get('py/lease/b')[0] is None
assert lease.remaining_ttl == -1, lease.remaining_ttl
"#,
        &[],
    )
    .await?;
    assert!(get(&mut cluster.kv(0)?, "py/lease/a").await?.is_none());
    Ok(())
}

async fn python_etcd3_refresh(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    python_etcd3(
        &cluster,
        2,
        r#"
lease = client.lease(3)
client.put('py/refresh', 'v', lease=lease)
# Each refresh is a new keep-alive stream with one request.
for _ in range(5):
    time.sleep(1)
    answers = lease.refresh()
    assert len(answers) == 1 and answers[0].TTL == 3, answers
    assert answers[0].ID == lease.id, answers
assert client.get('py/refresh')[0] == b'v', 'refreshes kept the key past its TTL'
deadline = time.time() + 10
while client.get('py/refresh')[0] is not None:
    assert time.time() < deadline, 'the key outlived its lease'
    time.sleep(0.2)
assert lease.refresh()[0].TTL == 0, 'refreshing an expired lease answers TTL 0'
"#,
        &[],
    )
    .await
}

async fn python_etcd3_lock_with_two_processes(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let log = cluster.dir().join("py-lock.log");
    let log = log.to_str().context("log path")?;
    let body = r#"
log, who = sys.argv[3], sys.argv[4]
lock = client.lock('py-job', ttl=10)
assert lock.acquire(timeout=25), 'lock not acquired'
assert lock.is_acquired()
with open(log, 'a') as f:
    f.write('start ' + who + '\n')
time.sleep(1)
with open(log, 'a') as f:
    f.write('end ' + who + '\n')
assert lock.release(), 'release failed'
"#;
    let (args_a, args_b) = ([log, "a"], [log, "b"]);
    let (a, b) = tokio::join!(
        python_etcd3(&cluster, 0, body, &args_a),
        python_etcd3(&cluster, 1, body, &args_b)
    );
    a?;
    b?;
    let text = std::fs::read_to_string(log)?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(lines.len() == 4, "expected two runs, got:\n{text}");
    for run in lines.chunks(2) {
        let who = run[0].strip_prefix("start ").unwrap_or("?");
        ensure!(
            run[1] == format!("end {who}"),
            "the holders overlapped:\n{text}"
        );
    }
    ensure!(lines[0] != lines[2], "one process ran twice:\n{text}");
    assert!(get(&mut cluster.kv(2)?, "/locks/py-job").await?.is_none());
    Ok(())
}

async fn python_etcd3_put_if_not_exists(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    put(&mut cluster.kv(0)?, "py/taken", "already").await?;
    python_etcd3(
        &cluster,
        1,
        r#"
assert client.put_if_not_exists('py/once', 'first') is True
assert client.put_if_not_exists('py/once', 'second') is False
assert client.get('py/once')[0] == b'first'
assert client.put_if_not_exists('py/taken', 'mine') is False
lease = client.lease(30)
assert client.put_if_not_exists('py/leased', 'v', lease=lease) is True
assert client.get('py/leased')[1].lease_id == lease.id
"#,
        &[],
    )
    .await?;
    let mut kv = cluster.kv(2)?;
    assert_eq!(
        get(&mut kv, "py/once").await?.context("py/once")?.value,
        b"first"
    );
    assert_eq!(
        get(&mut kv, "py/taken").await?.context("py/taken")?.value,
        b"already"
    );
    Ok(())
}

async fn python_etcd3_watch_once(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    python_etcd3(
        &cluster,
        2,
        r#"
writer = etcd3.client(host=sys.argv[1], port=int(sys.argv[2]), timeout=10)
seen = threading.Event()
def keep_writing():
    # Until the watch has seen one: a put before the watch exists is missed.
    while not seen.is_set():
        writer.put('py/watched', 'hello')
        time.sleep(0.2)
threading.Thread(target=keep_writing, daemon=True).start()
event = client.watch_once('py/watched', timeout=10)
seen.set()
assert isinstance(event, etcd3.events.PutEvent), event
assert event.key == b'py/watched' and event.value == b'hello', event
try:
    client.watch_once('py/never', timeout=1)
    raise SystemExit('watch_once on a quiet key did not time out')
except etcd3.exceptions.WatchTimedOut:
    pass
"#,
        &[],
    )
    .await
}
