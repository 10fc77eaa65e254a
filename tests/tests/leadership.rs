//! Moving leadership and moving members: `etcdctl move-leader` and
//! `etcdctl member update`, as operators use them before maintenance.
//! Every body runs against real etcd and cetera.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use cetera::proto::etcdserverpb::MoveLeaderRequest;
use tests::kv::Writer;
use tests::{Flavor, TestCluster, flavor_tests, ports};

flavor_tests!(
    move_leader_hands_over_to_the_named_member,
    move_leader_refuses_bad_targets_and_followers,
    move_leader_in_five_members_loses_no_write,
    member_update_moves_a_member_to_new_peer_urls,
);

/// A leader whose peers are all gone stops without trying to hand over
/// to one (etcd skips the transfer when no member is connected), rather
/// than waiting out the transfer's timeout. Log lines are cetera's own.
#[tokio::test]
async fn a_leader_with_no_active_peer_stops_without_a_handover() -> Result<()> {
    let cluster = TestCluster::start(Flavor::Cetera, 3).await?;
    let leader = cluster.leader_index().await?;
    for i in cluster.follower_indices().await? {
        cluster.member(i).kill().await?;
    }
    let log = || std::fs::read_to_string(cluster.member(leader).log_path());
    let mut waited = 0;
    while log()?.matches("peer became inactive").count() < 2 {
        ensure!(waited < 300, "the leader never noticed its peers gone");
        tokio::time::sleep(Duration::from_millis(100)).await;
        waited += 1;
    }
    cluster.member(leader).stop().await?;
    let log = log()?;
    ensure!(
        log.contains("skipped leadership transfer: no other voting member is active"),
        "{log}"
    );
    ensure!(!log.contains("could not hand leadership over"), "{log}");
    Ok(())
}

/// The hex member id of member `i`.
async fn id_of(cluster: &TestCluster, i: usize) -> Result<u64> {
    let status = cluster.status(i).await?;
    status
        .header
        .map(|h| h.member_id)
        .context("status without header")
}

async fn move_leader_hands_over_to_the_named_member(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    cluster.etcdctl_ok(&["put", "before", "1"]).await?;
    let old = cluster.leader_index().await?;
    let target = (old + 1) % 3;
    let target_id = id_of(&cluster, target).await?;

    let out = cluster
        .etcdctl_ok(&["move-leader", &format!("{target_id:x}")])
        .await?;
    let old_id = id_of(&cluster, old).await?;
    ensure!(
        out.trim() == format!("Leadership transferred from {old_id:x} to {target_id:x}"),
        "unexpected output: {out}"
    );
    let status = cluster.status(target).await?;
    ensure!(
        status.leader == target_id,
        "the target does not lead: {status:?}"
    );
    // The cluster works on under its new leader, and kept its data.
    cluster.etcdctl_ok(&["put", "after", "2"]).await?;
    let got = cluster
        .etcdctl_ok(&["get", "--prefix", "", "--print-value-only"])
        .await?;
    ensure!(got.trim() == "2\n1", "unexpected values: {got}");

    // And back again, to the member that led first.
    cluster
        .etcdctl_ok(&["move-leader", &format!("{old_id:x}")])
        .await?;
    ensure!(cluster.status(old).await?.leader == old_id);
    Ok(())
}

async fn move_leader_refuses_bad_targets_and_followers(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let out = cluster
        .etcdctl(&["move-leader", "abcdef0123456789"], None)
        .await?;
    ensure!(!out.success(), "moving to an unknown member succeeded");
    ensure!(
        out.stderr_messages().contains("bad leader transferee"),
        "unexpected error: {}",
        out.stderr_messages()
    );

    // Asked directly, a follower refuses.
    let leader = cluster.leader_index().await?;
    let follower = (leader + 1) % 3;
    let leader_id = id_of(&cluster, leader).await?;
    let refused = cluster
        .maintenance(follower)?
        .move_leader(MoveLeaderRequest {
            target_id: leader_id,
        })
        .await
        .expect_err("a follower moved leadership");
    ensure!(
        refused.code() == tonic::Code::FailedPrecondition
            && refused.message() == "etcdserver: not leader",
        "unexpected refusal: {refused:?}"
    );
    // Moving to the leader itself is a no-op that succeeds.
    cluster
        .maintenance(leader)?
        .move_leader(MoveLeaderRequest {
            target_id: leader_id,
        })
        .await?;
    Ok(())
}

async fn move_leader_in_five_members_loses_no_write(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 5).await?;
    let writer = Writer::start(cluster.kv(0)?);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let old = cluster.leader_index().await?;
    let target = (old + 2) % 5;
    let target_id = id_of(&cluster, target).await?;
    cluster
        .etcdctl_ok(&["move-leader", &format!("{target_id:x}")])
        .await?;
    ensure!(cluster.status(target).await?.leader == target_id);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acknowledged = writer.finish().await?;
    ensure!(!acknowledged.is_empty(), "the writer made no progress");

    let keys = cluster
        .etcdctl_ok(&["get", "w/", "--prefix", "--keys-only"])
        .await?;
    let keys: std::collections::BTreeSet<&str> = keys.lines().filter(|l| !l.is_empty()).collect();
    for key in &acknowledged {
        ensure!(keys.contains(key.as_str()), "lost acknowledged write {key}");
    }
    Ok(())
}

async fn member_update_moves_a_member_to_new_peer_urls(flavor: Flavor) -> Result<()> {
    let cluster = TestCluster::start(flavor, 3).await?;
    let leader = cluster.leader_index().await?;
    let moving = (leader + 1) % 3;
    let moving_id = id_of(&cluster, moving).await?;
    let lease = ports::lease()?;
    let new_url = format!("http://127.0.0.1:{}", lease.port());

    let out = cluster
        .etcdctl_ok(&[
            "member",
            "update",
            &format!("{moving_id:x}"),
            &format!("--peer-urls={new_url}"),
        ])
        .await?;
    ensure!(
        out.trim()
            == format!("Member {moving_id:16x} updated in cluster {:16x}", {
                cluster
                    .status(leader)
                    .await?
                    .header
                    .context("header")?
                    .cluster_id
            }),
        "unexpected output: {out}"
    );
    // Members learn of the change as it commits on them: poll, since
    // etcdctl asks any one of them.
    let mut listed = String::new();
    for _ in 0..50 {
        listed = cluster.etcdctl_ok(&["member", "list"]).await?;
        if listed.contains(&new_url) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ensure!(
        listed.contains(&new_url),
        "member list lacks {new_url}:\n{listed}"
    );

    // The member starts again listening on its new URL, and catches up on
    // what was written while it was away.
    let member = cluster.member(moving);
    member.stop().await?;
    member.move_peer_port(lease)?;
    cluster
        .etcdctl_at(leader, &["put", "while-moving", "x"], None)
        .await?
        .ok()?;
    member.restart().await?;
    cluster.wait_ready(moving).await?;
    let got = cluster
        .etcdctl_at(
            moving,
            &[
                "get",
                "while-moving",
                "--print-value-only",
                "--consistency=s",
            ],
            None,
        )
        .await?;
    // A serializable read answers from the member's own store: poll until
    // replication reached it.
    let mut value = got.stdout;
    for _ in 0..50 {
        if value.trim() == "x" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        value = cluster
            .etcdctl_at(
                moving,
                &[
                    "get",
                    "while-moving",
                    "--print-value-only",
                    "--consistency=s",
                ],
                None,
            )
            .await?
            .stdout;
    }
    ensure!(value.trim() == "x", "the moved member did not catch up");

    // A URL another member has is refused; so is an unknown member.
    let taken = cluster.member((moving + 1) % 3).peer_url();
    let out = cluster
        .etcdctl(
            &[
                "member",
                "update",
                &format!("{moving_id:x}"),
                &format!("--peer-urls={taken}"),
            ],
            None,
        )
        .await?;
    ensure!(
        out.stderr_messages().contains("Peer URLs already exists"),
        "unexpected: {}",
        out.stderr_messages()
    );
    let out = cluster
        .etcdctl(
            &[
                "member",
                "update",
                "abcdef0123456789",
                "--peer-urls=http://127.0.0.1:1",
            ],
            None,
        )
        .await?;
    ensure!(
        out.stderr_messages().contains("member not found"),
        "unexpected: {}",
        out.stderr_messages()
    );
    Ok(())
}
