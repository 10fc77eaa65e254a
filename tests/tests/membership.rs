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
async fn membership_command(cluster: &TestCluster, args: &[&str]) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        cluster.settle_membership().await?;
        let out = cluster.etcdctl(args, None).await?;
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
        &[
            &format!("--endpoints={endpoints}"),
            "member",
            "add",
            name,
            "--learner",
            "--peer-urls",
            &peer_url,
        ],
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
async fn member_list(cluster: &TestCluster, endpoints: &str) -> Result<String> {
    cluster
        .etcdctl(
            &[&format!("--endpoints={endpoints}"), "member", "list"],
            None,
        )
        .await?
        .ok()
}

/// The member id `member list` shows for a peer URL. etcd 3.4 answers
/// `member list` from the answering member's applied state, so a member
/// other than the one that took the `member add` may not list it yet: ask
/// again until it does.
async fn id_of(cluster: &TestCluster, endpoints: &str, peer_url: &str) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let list = member_list(cluster, endpoints).await?;
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
    membership_command(
        cluster,
        &[&format!("--endpoints={endpoints}"), "member", "promote", id],
    )
    .await?;
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
    let list = member_list(&cluster, &endpoints).await?;
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
        let id = id_of(&cluster, &endpoints, &member.peer_url).await?;
        promote(&cluster, &endpoints, &id).await?;
        endpoints = format!("{endpoints},{}", member.client_url);
        added.push(member);
        ids.push(id);
    }
    let list = member_list(&cluster, &endpoints).await?;
    ensure!(
        list.lines().count() == 5 && !list.contains("true"),
        "expected five voters:\n{list}"
    );

    // Shrink to three: a follower, then the leader itself (moved to m3
    // first), which must hand leadership over before it goes. Ask a
    // member that stays, or the answer may come from one that is stopping.
    let ask = format!("--endpoints={}", cluster.client_url(0));
    cluster
        .etcdctl_ok(&[&format!("--endpoints={endpoints}"), "move-leader", &ids[1]])
        .await?;
    for (index, id) in [(0, &ids[0]), (1, &ids[1])] {
        membership_command(&cluster, &[&ask, "member", "remove", id]).await?;
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
        let out = cluster
            .etcdctl(
                &[
                    &format!("--endpoints={url}"),
                    "get",
                    "w/",
                    "--prefix",
                    "--keys-only",
                    "--consistency=l",
                ],
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
    let hashes = cluster
        .etcdctl(
            &[
                &format!("--endpoints={remaining}"),
                "endpoint",
                "hashkv",
                "-w",
                "json",
            ],
            None,
        )
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
