//! Scripted resizing through the real etcdctl, as operators do it: grow
//! from one member to five (add a learner, start it with the flags `member
//! add` printed, promote it once it caught up), then shrink to three by
//! removing a follower and the leader, each of which then stops. A writer runs the whole
//! time; no acknowledged write may be lost and the members' HashKV must
//! agree at the end. Also: a new member serves no client before it is
//! listed `started`. Every body runs against real etcd and cetera.

use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use cetera::proto::etcdserverpb::maintenance_client::MaintenanceClient;
use cetera::proto::etcdserverpb::{StatusRequest, StatusResponse};
use tests::kv::Writer;
use tests::ports::{self, PortLease};
use tests::spawn::{guarded_command, spawn};
use tests::{Flavor, TestCluster, flavor_tests};

flavor_tests!(
    grow_one_to_five_with_learners_then_shrink_to_three_under_writes,
    an_added_member_answers_clients_only_once_it_is_listed_started,
    a_removed_follower_stops_long_before_an_election_timeout,
    a_member_asked_to_remove_itself_answers_then_stops,
);

/// A member started after the cluster, with `--initial-cluster-state existing`.
struct AddedMember {
    child: Child,
    client_url: String,
    peer_url: String,
    _ports: (PortLease, PortLease),
    _dir: tempfile::TempDir,
}

impl Drop for AddedMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl AddedMember {
    fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

/// Runs a membership command, retrying while the cluster refuses it for
/// being in transition (etcd: `unhealthy cluster` until every member has
/// been connected for a few seconds; both: a learner not yet in sync).
///
/// `endpoints` are the only ones etcdctl is given: a second `--endpoints`
/// flag would add to the cluster's, not replace them.
async fn membership_command(
    cluster: &TestCluster,
    endpoints: &str,
    args: &[&str],
) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        cluster.settle_membership().await?;
        let out = tests::etcdctl::run(endpoints, args, None).await?;
        if out.status.success() {
            return Ok(out.stdout);
        }
        let reason = out.stderr_messages();
        let transient = ["in sync", "unhealthy cluster", "not started"]
            .iter()
            .any(|r| reason.contains(r));
        ensure!(transient, "`etcdctl {}` failed: {reason}", args.join(" "));
        ensure!(
            Instant::now() < deadline,
            "`etcdctl {}` kept failing: {reason}",
            args.join(" ")
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// `member add` (as a learner), then starts the member with the
/// `ETCD_INITIAL_CLUSTER` line it printed.
async fn add_learner(cluster: &TestCluster, endpoints: &str, name: &str) -> Result<AddedMember> {
    let (client, peer) = (ports::lease()?, ports::lease()?);
    let client_url = format!("http://127.0.0.1:{}", client.port());
    let peer_url = format!("http://127.0.0.1:{}", peer.port());
    let printed = membership_command(
        cluster,
        endpoints,
        &["member", "add", name, "--learner", "--peer-urls", &peer_url],
    )
    .await?;
    let initial_cluster = printed
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .with_context(|| format!("no ETCD_INITIAL_CLUSTER in {printed}"))?
        .to_string();
    let dir = tempfile::tempdir()?;
    let log = std::fs::File::create(dir.path().join("member.log"))?;
    let mut command = guarded_command(&cluster.flavor().binary()?);
    command
        .args(["--name", name])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &client_url,
            "--advertise-client-urls",
            &client_url,
        ])
        .args([
            "--listen-peer-urls",
            &peer_url,
            "--initial-advertise-peer-urls",
            &peer_url,
        ])
        .args([
            "--initial-cluster",
            &initial_cluster,
            "--initial-cluster-state",
            "existing",
        ])
        .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = spawn(command)?;
    Ok(AddedMember {
        child,
        client_url,
        peer_url,
        _ports: (client, peer),
        _dir: dir,
    })
}

/// `etcdctl member list` through `endpoints`.
async fn member_list(endpoints: &str) -> Result<String> {
    tests::etcdctl::run(endpoints, &["member", "list"], None)
        .await?
        .ok()
}

/// The member id `member list` shows for a peer URL. etcd 3.4 answers
/// `member list` from the answering member's applied state, so a member
/// other than the one that took the `member add` may not list it yet: ask
/// again until it does.
async fn id_of(endpoints: &str, peer_url: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = member_list(endpoints).await?;
        let id = list
            .lines()
            .find(|l| l.contains(peer_url))
            .and_then(|l| l.split(',').next());
        match id {
            Some(id) => return Ok(id.to_string()),
            None if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            None => bail!("{peer_url} not in {list}"),
        }
    }
}

/// Promotes the learner, retrying while it is still catching up.
async fn promote(cluster: &TestCluster, endpoints: &str, id: &str) -> Result<()> {
    membership_command(cluster, endpoints, &["member", "promote", id]).await?;
    Ok(())
}

/// The first `Status` a newly started member answers; it waits in the
/// listen backlog until then, on etcd as on cetera.
async fn first_status(member: &AddedMember) -> Result<StatusResponse> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let endpoint = tonic::transport::Endpoint::from_shared(member.client_url.clone())?
            .connect_timeout(Duration::from_secs(1))
            .timeout(Duration::from_secs(1));
        let answer = match endpoint.connect().await {
            Ok(channel) => MaintenanceClient::new(channel)
                .status(StatusRequest::default())
                .await
                .map_err(anyhow::Error::from),
            Err(e) => Err(e.into()),
        };
        match answer {
            Ok(status) => return Ok(status.into_inner()),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context(format!("{} never answered", member.client_url)));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// A member serves no client before its name and client URLs are
/// committed (etcd publishes them first), so one that answers is listed
/// `started` with its name: the next `member add` then prints an
/// `ETCD_INITIAL_CLUSTER` that names it, which scripts that add members
/// one after another rely on.
async fn an_added_member_answers_clients_only_once_it_is_listed_started(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let endpoints = cluster.client_url(0);
    let member = add_learner(&cluster, &endpoints, "m2").await?;
    let applied = first_status(&member).await?.raft_applied_index;
    // Member lists are answered from applied state: once the leader has
    // applied as far as the new member had when it first answered, its
    // list has everything the new member's had.
    let deadline = Instant::now() + Duration::from_secs(10);
    while cluster.status(0).await?.raft_applied_index < applied {
        ensure!(
            Instant::now() < deadline,
            "the leader never applied {applied}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let list = member_list(&endpoints).await?;
    let line = list
        .lines()
        .find(|l| l.contains(&member.peer_url))
        .with_context(|| format!("{} not listed:\n{list}", member.peer_url))?;
    ensure!(
        line.contains(", started, m2, ") && line.contains(&member.client_url),
        "answered clients while listed as {line}"
    );
    Ok(())
}

/// A removed member stops by itself at once, not an election timeout
/// later: the leader stops sending it entries the moment its removal is in
/// the log, so it never receives that entry. etcd's learns from its peers
/// refusing its streams; cetera's from the leader's notice (before, it
/// learned only from the refusal of its next vote request).
async fn a_removed_follower_stops_long_before_an_election_timeout(flavor: Flavor) -> Result<()> {
    const ELECTION: Duration = Duration::from_secs(10);
    let cluster = TestCluster::builder(flavor, 3)
        .heartbeat_ms(100)
        .election_ms(ELECTION.as_millis() as u64)
        .start()
        .await?;
    let leader = cluster.leader_index().await?;
    let follower = (leader + 1) % 3;
    let header = cluster.status(follower).await?.header;
    let id = format!("{:x}", header.context("no header")?.member_id);
    let leader_url = cluster.client_url(leader);
    membership_command(&cluster, &leader_url, &["member", "remove", &id]).await?;
    let removed_at = Instant::now();
    while cluster.member(follower).is_running() {
        ensure!(
            removed_at.elapsed() < ELECTION / 2,
            "the removed member still runs {:?} after its removal (election timeout {ELECTION:?})",
            removed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// `member remove` sent to the member it removes: the member answers with
/// the list without itself (it never receives the entry that removes it,
/// so it must not wait to apply it), then stops.
async fn a_member_asked_to_remove_itself_answers_then_stops(flavor: Flavor) -> Result<()> {
    const ELECTION: Duration = Duration::from_secs(10);
    let cluster = TestCluster::builder(flavor, 3)
        .heartbeat_ms(100)
        .election_ms(ELECTION.as_millis() as u64)
        .start()
        .await?;
    let leader = cluster.leader_index().await?;
    let follower = (leader + 1) % 3;
    let header = cluster.status(follower).await?.header;
    let id = format!("{:x}", header.context("no header")?.member_id);
    // Before the fix, the answer never came: the member waited to apply
    // its own removal until its shutdown cut the call (`Unavailable:
    // transport is closing`).
    let printed = membership_command(
        &cluster,
        &cluster.client_url(follower),
        &["member", "remove", &id],
    )
    .await?;
    let removed_at = Instant::now();
    ensure!(printed.contains(&id), "unexpected answer: {printed}");
    let list = member_list(&cluster.client_url(leader)).await?;
    ensure!(
        list.lines().count() == 2 && !list.contains(&id),
        "{id} is still listed:\n{list}"
    );
    while cluster.member(follower).is_running() {
        ensure!(
            removed_at.elapsed() < ELECTION / 2,
            "the removed member still runs {:?} after it answered",
            removed_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn grow_one_to_five_with_learners_then_shrink_to_three_under_writes(
    flavor: Flavor,
) -> Result<()> {
    let cluster = TestCluster::start(flavor, 1).await?;
    let mut endpoints = cluster.client_url(0);

    // A writer on the original member, which stays, the whole time.
    let writer = Writer::start(cluster.kv(0)?);

    // Grow one at a time: a learner first, promoted once it caught up.
    let mut added = Vec::new();
    let mut ids = Vec::new();
    for name in ["m2", "m3", "m4", "m5"] {
        let member = add_learner(&cluster, &endpoints, name).await?;
        let id = id_of(&endpoints, &member.peer_url).await?;
        promote(&cluster, &endpoints, &id).await?;
        endpoints = format!("{endpoints},{}", member.client_url);
        added.push(member);
        ids.push(id);
    }
    let list = member_list(&endpoints).await?;
    ensure!(
        list.lines().count() == 5 && !list.contains("true"),
        "expected five voters:\n{list}"
    );

    // Shrink to three: a follower, then the leader itself (moved to m3
    // first), which must hand leadership over before it goes. Ask a
    // member that stays, or the answer may come from one that is stopping.
    let ask = cluster.client_url(0);
    tests::etcdctl::run(&endpoints, &["move-leader", &ids[1]], None)
        .await?
        .ok()?;
    for (index, id) in [(0, &ids[0]), (1, &ids[1])] {
        membership_command(&cluster, &ask, &["member", "remove", id]).await?;
        let removed_at = Instant::now();
        while !added[index].has_exited() {
            if removed_at.elapsed() > Duration::from_secs(30) {
                bail!("removed member {id} kept running");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (second, third) = (&added[2], &added[3]);

    let acknowledged = writer.finish().await?;
    ensure!(
        acknowledged.len() > 20,
        "the writer made too little progress: {}",
        acknowledged.len()
    );

    // Every acknowledged write is on every remaining member.
    let remaining_urls = [
        cluster.client_url(0),
        second.client_url.clone(),
        third.client_url.clone(),
    ];
    let remaining = remaining_urls.join(",");
    for url in &remaining_urls {
        let out = tests::etcdctl::run(
            url,
            &["get", "w/", "--prefix", "--keys-only", "--consistency=l"],
            None,
        )
        .await?
        .ok()?;
        let keys: std::collections::BTreeSet<&str> =
            out.lines().filter(|l| !l.is_empty()).collect();
        for key in &acknowledged {
            ensure!(
                keys.contains(key.as_str()),
                "{url} lost acknowledged write {key}"
            );
        }
    }
    let hashes = tests::etcdctl::run(&remaining, &["endpoint", "hashkv", "-w", "json"], None)
        .await?
        .ok()?;
    let parsed: Vec<serde_json::Value> = serde_json::from_str(&hashes)?;
    let distinct: std::collections::BTreeSet<u64> = parsed
        .iter()
        .map(|h| h["HashKV"]["hash"].as_u64().unwrap_or(0))
        .collect();
    let answered: std::collections::BTreeSet<&str> = parsed
        .iter()
        .filter_map(|h| h["Endpoint"].as_str())
        .collect();
    ensure!(
        answered.len() == 3 && distinct.len() == 1,
        "hashes differ: {hashes}"
    );
    Ok(())
}
