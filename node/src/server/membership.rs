//! Runtime membership: MemberAdd, MemberRemove, MemberUpdate and
//! MemberPromote, as openraft membership changes made on the leader
//! (followers forward them).
//!
//! A new member joins as a learner; a voter add then promotes it through
//! joint consensus, which completes once the new member runs (with three or
//! more voters, at once). Promotion waits until a learner has caught up, and
//! a removal that would leave too few started voters for a quorum is
//! refused, as etcd's strict reconfiguration check does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use openraft::ChangeMembers;
use serde::{Deserialize, Serialize};

use super::error::PeerRefusal;
use super::{Node, ServerError};
use crate::cluster::member_id;
use crate::proto::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberPromoteRequest, MemberPromoteResponse,
    MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use crate::raft::{MemberId, MemberNode, PeerError, paths};

/// A learner is "in sync" when it has this share of the leader's log.
const IN_SYNC_SHARE: f64 = 0.9;
/// How long a voter add waits for its joint consensus before answering.
const VOTER_ADD_WAIT: Duration = Duration::from_secs(2);

/// A membership change, as forwarded to the leader.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum MemberChange {
    Add {
        id: MemberId,
        node: MemberNode,
        learner: bool,
    },
    Remove {
        id: MemberId,
    },
    Promote {
        id: MemberId,
    },
    /// New peer URLs for a member (sorted, validated).
    Update {
        id: MemberId,
        peer_urls: Vec<String>,
    },
}

/// A refused membership change, with etcd's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum MembershipError {
    #[error("member not found")]
    NotFound,
    #[error("Peer URLs already exists")]
    PeerUrlsExist,
    #[error("member ID already exist")]
    IdExists,
    #[error("given member URLs are invalid")]
    BadUrls,
    #[error("too many learner members in cluster")]
    TooManyLearners,
    #[error("can only promote a learner member")]
    NotLearner,
    #[error("can only promote a learner member which is in sync with leader")]
    LearnerBehind,
    #[error("re-configuration failed due to not enough started members")]
    NotEnoughStarted,
    #[error("membership change failed: {0}")]
    Failed(String),
    #[error("not the leader")]
    NotLeader,
}

/// `http://host:port`, or `https://host:port` (the peer client dials it
/// with the `--peer-*` TLS files).
fn valid_peer_url(url: &str) -> bool {
    url.strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .and_then(|rest| rest.rsplit_once(':'))
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// Peer URLs as a request gives them: without trailing slashes, sorted,
/// and each one `http://host:port` or `https://host:port`.
fn normalized_peer_urls(given: &[String]) -> Result<Vec<String>, MembershipError> {
    let mut urls: Vec<String> = given
        .iter()
        .map(|u| u.trim_end_matches('/').to_string())
        .collect();
    if urls.is_empty() || !urls.iter().all(|u| valid_peer_url(u)) {
        return Err(MembershipError::BadUrls);
    }
    urls.sort();
    Ok(urls)
}

impl Node {
    /// `Cluster.MemberAdd`.
    pub async fn member_add(
        &self,
        req: MemberAddRequest,
    ) -> Result<MemberAddResponse, ServerError> {
        let urls = normalized_peer_urls(&req.peer_ur_ls)?;
        let metrics = self.metrics();
        let membership = metrics.membership_config.membership();
        if membership
            .nodes()
            .any(|(_, node)| node.peer_urls.iter().any(|u| urls.contains(u)))
        {
            return Err(MembershipError::PeerUrlsExist.into());
        }
        if req.is_learner && membership.learner_ids().next().is_some() {
            return Err(MembershipError::TooManyLearners.into());
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let id = member_id(&urls, &self.config.cluster_token, Some(now));
        if membership.get_node(&id).is_some() {
            return Err(MembershipError::IdExists.into());
        }
        let node = MemberNode {
            name: String::new(),
            peer_urls: urls.clone(),
        };
        self.change_members(MemberChange::Add {
            id,
            node,
            learner: req.is_learner,
        })
        .await?;
        let list = self.member_list().await?;
        Ok(MemberAddResponse {
            header: list.header,
            member: Some(Member {
                id,
                name: String::new(),
                peer_ur_ls: urls,
                client_ur_ls: Vec::new(),
                is_learner: req.is_learner,
            }),
            members: list.members,
        })
    }

    /// `Cluster.MemberRemove`.
    pub async fn member_remove(
        &self,
        req: MemberRemoveRequest,
    ) -> Result<MemberRemoveResponse, ServerError> {
        self.change_members(MemberChange::Remove { id: req.id })
            .await?;
        let mut list = self.member_list().await?;
        // The member removed itself through itself: its own list, which
        // never sees the removal, would still name it.
        list.members.retain(|m| m.id != req.id);
        Ok(MemberRemoveResponse {
            header: list.header,
            members: list.members,
        })
    }

    /// `Cluster.MemberUpdate`: the member keeps its id and name; peers
    /// reach it at the new URLs from the moment the change is applied (the
    /// operator restarts it listening there, as with etcd).
    pub async fn member_update(
        &self,
        req: MemberUpdateRequest,
    ) -> Result<MemberUpdateResponse, ServerError> {
        let peer_urls = normalized_peer_urls(&req.peer_ur_ls)?;
        self.change_members(MemberChange::Update {
            id: req.id,
            peer_urls,
        })
        .await?;
        let list = self.member_list().await?;
        Ok(MemberUpdateResponse {
            header: list.header,
            members: list.members,
        })
    }

    /// `Cluster.MemberPromote`.
    pub async fn member_promote(
        &self,
        req: MemberPromoteRequest,
    ) -> Result<MemberPromoteResponse, ServerError> {
        self.change_members(MemberChange::Promote { id: req.id })
            .await?;
        let list = self.member_list().await?;
        Ok(MemberPromoteResponse {
            header: list.header,
            members: list.members,
        })
    }

    /// Makes a change on the leader, forwarding it from a follower.
    async fn change_members(&self, change: MemberChange) -> Result<(), ServerError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let outcome = match self.leader() {
                Some(leader) if leader == self.identity.member_id => {
                    self.apply_member_change(change.clone()).await
                }
                Some(leader) => self.forward_member_change(leader, &change).await,
                None => Err(MembershipError::NotLeader),
            };
            match outcome {
                Ok(()) => {
                    // Made on the leader: answer once this member has
                    // applied it too, so its member list shows it; unless
                    // it removed this very member, which never receives
                    // that entry (and stops on the leader's notice).
                    let removes_me = matches!(change, MemberChange::Remove { id } if id == self.identity.member_id);
                    if self.leader() != Some(self.identity.member_id)
                        && !removes_me
                        && let Err(e) = self.linearizable_barrier().await
                    {
                        tracing::debug!(error = %e, "membership change made; applying it here timed out");
                    }
                    return Ok(());
                }
                Err(MembershipError::NotLeader) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(MembershipError::NotLeader) => return Err(self.timeout_error()),
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn forward_member_change(
        &self,
        leader: MemberId,
        change: &MemberChange,
    ) -> Result<(), MembershipError> {
        let url = self.peer_url_of(leader).ok_or(MembershipError::NotLeader)?;
        let answer: Result<Result<(), MembershipError>, PeerError> = self
            .peers
            .call(
                &url,
                paths::MEMBER_CHANGE,
                change,
                self.config.request_timeout(),
            )
            .await;
        answer.unwrap_or(Err(MembershipError::NotLeader))
    }

    /// Serves a forwarded change; refuses when not leader.
    pub(crate) async fn member_change_for_peer(
        &self,
        change: MemberChange,
    ) -> Result<(), MembershipError> {
        if self.leader() != Some(self.identity.member_id) {
            return Err(MembershipError::NotLeader);
        }
        self.apply_member_change(change).await
    }

    async fn apply_member_change(&self, change: MemberChange) -> Result<(), MembershipError> {
        let failed = |e: openraft::error::RaftError<
            MemberId,
            openraft::error::ClientWriteError<MemberId, MemberNode>,
        >| {
            match e {
                openraft::error::RaftError::APIError(
                    openraft::error::ClientWriteError::ForwardToLeader(_),
                ) => MembershipError::NotLeader,
                other => MembershipError::Failed(other.to_string()),
            }
        };
        match change {
            MemberChange::Add { id, node, learner } => {
                self.raft
                    .add_learner(id, node, false)
                    .await
                    .map_err(failed)?;
                if !learner {
                    // Joint consensus needs the new voter when the cluster is
                    // small; it completes in the background once it runs.
                    let raft = self.raft.clone();
                    let promotion = tokio::spawn(async move {
                        if let Err(e) = raft
                            .change_membership(
                                ChangeMembers::AddVoterIds(BTreeSet::from([id])),
                                true,
                            )
                            .await
                        {
                            tracing::warn!(error = %e, member = %format!("{id:x}"), "adding a voter failed");
                        }
                    });
                    let _ = tokio::time::timeout(VOTER_ADD_WAIT, promotion).await;
                }
                Ok(())
            }
            MemberChange::Promote { id } => {
                let metrics = self.metrics();
                let membership = metrics.membership_config.membership();
                if membership.get_node(&id).is_none() {
                    return Err(MembershipError::NotFound);
                }
                if !membership.learner_ids().any(|l| l == id) {
                    return Err(MembershipError::NotLearner);
                }
                let leader_last = metrics.last_log_index.unwrap_or(0) as f64;
                let matched = metrics
                    .replication
                    .as_ref()
                    .and_then(|r| r.get(&id).cloned().flatten())
                    .map_or(0, |l| l.index) as f64;
                if matched < leader_last * IN_SYNC_SHARE {
                    return Err(MembershipError::LearnerBehind);
                }
                self.raft
                    .change_membership(ChangeMembers::AddVoterIds(BTreeSet::from([id])), true)
                    .await
                    .map_err(failed)?;
                Ok(())
            }
            MemberChange::Update { id, peer_urls } => {
                let metrics = self.metrics();
                let membership = metrics.membership_config.membership();
                let Some(current) = membership.get_node(&id) else {
                    return Err(MembershipError::NotFound);
                };
                let taken = membership.nodes().any(|(other, node)| {
                    *other != id && node.peer_urls.iter().any(|u| peer_urls.contains(u))
                });
                if taken {
                    return Err(MembershipError::PeerUrlsExist);
                }
                let node = MemberNode {
                    name: current.name.clone(),
                    peer_urls,
                };
                self.raft
                    .change_membership(ChangeMembers::SetNodes(BTreeMap::from([(id, node)])), false)
                    .await
                    .map_err(failed)?;
                Ok(())
            }
            MemberChange::Remove { id } => {
                let metrics = self.metrics();
                let membership = metrics.membership_config.membership();
                if membership.get_node(&id).is_none() {
                    return Err(MembershipError::NotFound);
                }
                let voters: BTreeSet<MemberId> = membership.voter_ids().collect();
                if id == self.identity.member_id && voters.len() > 1 {
                    // A leader removing itself hands leadership over first;
                    // the new leader then makes the change.
                    self.hand_over_leadership()
                        .await
                        .map_err(|e| MembershipError::Failed(e.to_string()))?;
                    return Err(MembershipError::NotLeader);
                }
                let change = if voters.contains(&id) {
                    self.check_enough_started(&voters, id)?;
                    ChangeMembers::RemoveVoters(BTreeSet::from([id]))
                } else {
                    ChangeMembers::RemoveNodes(BTreeSet::from([id]))
                };
                let removed_url = self.peer_url_of(id);
                self.raft
                    .change_membership(change, false)
                    .await
                    .map_err(failed)?;
                if let Some(url) = removed_url {
                    self.tell_removed(id, url);
                }
                Ok(())
            }
        }
    }

    /// Tells member `id`, now removed, that it is (best effort, in the
    /// background). The leader stops replicating to it the moment the
    /// change is in its log, so the member never receives the entry that
    /// removes it; without this it would learn only from the 410 its next
    /// vote request gets, an election timeout or more later. etcd's
    /// removed member learns as fast, from the peers refusing its streams.
    fn tell_removed(&self, id: MemberId, url: String) {
        let peers = self.peers.clone();
        let timeout = self.config.election_timeout;
        tokio::spawn(async move {
            let answer: Result<Result<(), PeerRefusal>, PeerError> =
                peers.call(&url, paths::REMOVED, &id, timeout).await;
            match answer {
                Ok(Ok(())) => {}
                Ok(Err(refusal)) => {
                    tracing::debug!(%refusal, "the removed member refused the notice")
                }
                Err(error) => tracing::debug!(%error, "telling the removed member failed"),
            }
        });
    }

    /// A peer's notice that `member` was removed: when it names this
    /// member, this member stops, as on a 410 from a peer.
    pub(crate) fn removed_by_leader(&self, member: MemberId) -> Result<(), PeerRefusal> {
        if member == self.identity.member_id {
            tracing::warn!("the leader removed this member from the cluster; stopping");
            self.peer_stats.mark_removed();
            self.removed.send_replace(true);
        }
        Ok(())
    }

    /// Refuses removing `id` when the voters left that are running would
    /// not form a quorum of the new configuration.
    fn check_enough_started(
        &self,
        voters: &BTreeSet<MemberId>,
        id: MemberId,
    ) -> Result<(), MembershipError> {
        // "Started" means it answered the leader within two election timeouts.
        let window = 2 * self.config.election_timeout;
        let remaining: Vec<MemberId> = voters.iter().copied().filter(|v| *v != id).collect();
        let started = remaining
            .iter()
            .filter(|v| {
                **v == self.identity.member_id || self.peer_stats.contacted_within(**v, window)
            })
            .count();
        if started < remaining.len() / 2 + 1 {
            return Err(MembershipError::NotEnoughStarted);
        }
        Ok(())
    }
}

/// What a joining member learns from an existing one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClusterView {
    pub(crate) cluster_id: u64,
    pub(crate) members: Vec<(MemberId, MemberNode)>,
}

impl Node {
    pub(crate) fn cluster_view(&self) -> ClusterView {
        let metrics = self.metrics();
        let members = metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, node)| (*id, node.clone()))
            .collect();
        ClusterView {
            cluster_id: self.identity.cluster_id,
            members,
        }
    }
}

impl From<PeerRefusal> for MembershipError {
    fn from(_: PeerRefusal) -> Self {
        MembershipError::NotLeader
    }
}
