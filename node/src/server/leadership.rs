//! Handing leadership to a named member: `Maintenance.MoveLeader`.
//!
//! openraft 0.9 has no leadership transfer, so the leader builds one from
//! what the library offers, with the effect of etcd's TimeoutNow:
//!
//! 1. It goes quiet: new proposals are held and heartbeats stop, so the
//!    target's log can be complete and stays complete.
//! 2. It waits until the target has every entry of its log.
//! 3. Followers refuse to vote while their leader lease (the longest
//!    election timeout since they last heard from the leader) runs; the old
//!    leader's own vote and the target's make a quorum of three or fewer
//!    voters at once, larger clusters wait for the leases to run out.
//! 4. The target starts an election (a peer request), which it wins with
//!    the longest log; the old leader steps down on seeing its term.
//!
//! Held proposals then go on and reach the new leader. Ending the quiet
//! period on every exit path (the guard) is what this module must never
//! get wrong: a leader left quiet would lose its followers.

use tokio::time::Instant;

use super::error::PeerRefusal;
use super::{Node, ServerError};
use crate::proto::etcdserverpb::{MoveLeaderRequest, MoveLeaderResponse};
use crate::raft::{MemberId, PeerError, paths};

/// A refused or failed leadership transfer, with etcd's messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeadershipError {
    #[error("not leader")]
    NotLeader,
    #[error("bad leader transferee")]
    BadTransferee,
    #[error("request timed out, leader transfer took too long")]
    TransferTimeout,
}

/// Heartbeats off for as long as it lives (proposals are held beside it).
struct Quiet<'a> {
    node: &'a Node,
}

impl<'a> Quiet<'a> {
    fn start(node: &'a Node) -> Self {
        node.raft.runtime_config().heartbeat(false);
        Quiet { node }
    }
}

impl Drop for Quiet<'_> {
    fn drop(&mut self) {
        self.node.raft.runtime_config().heartbeat(true);
    }
}

impl Node {
    /// `Maintenance.MoveLeader`: only the leader moves leadership, and only
    /// to a voter.
    pub async fn move_leader(
        &self,
        req: MoveLeaderRequest,
    ) -> Result<MoveLeaderResponse, ServerError> {
        let me = self.identity.member_id;
        if self.leader() != Some(me) {
            return Err(LeadershipError::NotLeader.into());
        }
        let target = req.target_id;
        let is_voter = self
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .any(|v| v == target);
        if !is_voter {
            return Err(LeadershipError::BadTransferee.into());
        }
        if target != me {
            let _one_at_a_time = self.transfer_lock.lock().await;
            let deadline = Instant::now() + self.config.request_timeout();
            self.transfer_to(target, deadline).await?;
            tracing::info!(target = %format!("{target:x}"), "leadership moved");
        }
        Ok(MoveLeaderResponse {
            header: Some(self.header(0)),
        })
    }

    /// Moves leadership to the most caught-up other voter that answered
    /// recently, if this member leads and there is one: before it leaves
    /// the cluster or shuts down, so the cluster does not wait out an
    /// election timeout.
    pub(crate) async fn hand_over_leadership(&self) -> Result<(), ServerError> {
        let me = self.identity.member_id;
        if self.leader() != Some(me) {
            return Ok(());
        }
        let metrics = self.metrics();
        let recent = 2 * self.config.election_timeout;
        let matched = |id: MemberId| {
            metrics
                .replication
                .as_ref()
                .and_then(|r| r.get(&id).cloned().flatten())
                .map_or(0, |l| l.index)
        };
        let others: Vec<MemberId> = metrics
            .membership_config
            .membership()
            .voter_ids()
            .filter(|v| *v != me)
            .collect();
        // As etcd, only to a member that is answering now: a dead one would
        // hold the shutdown up for the whole transfer timeout.
        let target = others
            .iter()
            .copied()
            .filter(|v| self.peer_stats.active_within(*v, recent))
            .max_by_key(|v| matched(*v));
        let Some(target) = target else {
            if !others.is_empty() {
                tracing::info!("skipped leadership transfer: no other voting member is active");
            }
            return Ok(());
        };
        let _one_at_a_time = self.transfer_lock.lock().await;
        let deadline = Instant::now() + self.config.request_timeout();
        self.transfer_to(target, deadline).await?;
        tracing::info!(target = %format!("{target:x}"), "handed leadership over");
        Ok(())
    }

    async fn transfer_to(&self, target: MemberId, deadline: Instant) -> Result<(), ServerError> {
        let _held = self.proposer.hold();
        let _quiet = Quiet::start(self);
        self.wait_caught_up(target, deadline).await?;

        let voters = self
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .count();
        let quorum = voters / 2 + 1;
        if quorum > 2 {
            // The followers besides the target must see their leases end.
            let lease = 2 * self.config.election_timeout + self.config.heartbeat;
            tokio::time::sleep_until(deadline.min(Instant::now() + lease)).await;
        }
        loop {
            if self.leader() == Some(target) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LeadershipError::TransferTimeout.into());
            }
            self.ask_to_campaign(target).await;
            let settle = self.config.election_timeout.min(deadline - Instant::now());
            let mut metrics = self.metrics.clone();
            let _ = tokio::time::timeout(
                settle,
                metrics.wait_for(|m| m.current_leader == Some(target)),
            )
            .await;
        }
    }

    /// Waits until `target` holds every entry of this leader's log.
    async fn wait_caught_up(&self, target: MemberId, deadline: Instant) -> Result<(), ServerError> {
        let mut metrics = self.metrics.clone();
        let caught_up = metrics.wait_for(|m| {
            let last = m.last_log_index.unwrap_or(0);
            let matched = m
                .replication
                .as_ref()
                .and_then(|r| r.get(&target).cloned().flatten())
                .map_or(0, |l| l.index);
            matched >= last || m.current_leader != Some(self.identity.member_id)
        });
        match tokio::time::timeout_at(deadline, caught_up).await {
            Ok(Ok(m)) if m.current_leader == Some(self.identity.member_id) => Ok(()),
            Ok(_) => Err(LeadershipError::NotLeader.into()),
            Err(_) => Err(LeadershipError::TransferTimeout.into()),
        }
    }

    /// Asks `target` to start an election now; failures only cost a retry.
    async fn ask_to_campaign(&self, target: MemberId) {
        let Some(url) = self.peer_url_of(target) else {
            return;
        };
        let answer: Result<Result<(), PeerRefusal>, PeerError> = self
            .peers
            .call(&url, paths::CAMPAIGN, &(), self.config.election_timeout)
            .await;
        match answer {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => tracing::debug!(%refusal, "the transferee did not campaign"),
            Err(error) => tracing::debug!(%error, "asking the transferee to campaign failed"),
        }
    }

    /// Serves a leader's request to campaign at once.
    pub(crate) async fn campaign_for_peer(&self) -> Result<(), PeerRefusal> {
        self.raft
            .trigger()
            .elect()
            .await
            .map_err(|_| PeerRefusal::Stopped)
    }
}
