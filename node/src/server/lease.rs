//! The lease requests: grant and revoke through Raft, keep-alive and
//! time-to-live answered by the leader's clocks (followers ask it over the
//! peer URL).

use std::time::Duration;

use rand::Rng;

use super::error::PeerRefusal;
use super::{Node, ServerError, unexpected};
use crate::auth::Caller;
use crate::mvcc::{KvRead, MAX_LEASE_TTL, MvccError};
use crate::proto::etcdserverpb::{
    LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeRequest, LeaseRevokeResponse, LeaseStatus, LeaseTimeToLiveRequest,
    LeaseTimeToLiveResponse,
};
use crate::raft::{Command, CommandResult, PeerError, paths};

/// The smallest TTL granted: one and a half election timeouts, in whole
/// seconds rounded up, as etcd computes it.
pub(crate) fn minimum_ttl(election_timeout: Duration) -> i64 {
    let millis = election_timeout.as_millis() as i64;
    ((millis * 3 + 1999) / 2000).max(1)
}

/// A lease question a follower asks the leader.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub(crate) enum LeaseClockRequest {
    Renew(i64),
    Remaining(i64),
}

impl Node {
    /// `Lease.LeaseGrant`.
    pub async fn lease_grant(
        &self,
        req: LeaseGrantRequest,
    ) -> Result<LeaseGrantResponse, ServerError> {
        if req.ttl > MAX_LEASE_TTL {
            return Err(MvccError::LeaseTtlTooLarge.into());
        }
        let ttl = req.ttl.max(minimum_ttl(self.config.election_timeout));
        self.check_quota().await?;
        loop {
            // Ids are chosen before proposing so every member records the same one.
            let id = if req.id != 0 {
                req.id
            } else {
                rand::rng().random_range(1..i64::MAX)
            };
            match self.propose(Command::LeaseGrant { id, ttl }).await? {
                CommandResult::Lease { revision } => {
                    return Ok(LeaseGrantResponse {
                        header: Some(self.header(revision)),
                        id,
                        ttl,
                        error: String::new(),
                    });
                }
                CommandResult::Rejected(MvccError::LeaseExists) if req.id == 0 => continue,
                other => return Err(unexpected(other)),
            }
        }
    }

    /// `Lease.LeaseRevoke`, as `caller`: the lease's keys go in one
    /// revision (so with auth enabled the caller must be allowed to write
    /// each).
    pub async fn lease_revoke(
        &self,
        req: LeaseRevokeRequest,
        caller: &Caller,
    ) -> Result<LeaseRevokeResponse, ServerError> {
        let id = req.id;
        let keys = if self.auth_enabled() {
            self.read(move |kv| Ok(kv.lease_keys(id)?)).await?
        } else {
            Vec::new()
        };
        let checked = self.authorize(caller, |auth| auth.check_lease_revoke(caller, &keys))?;
        // A lease without keys needs no permission at all (etcd checks
        // only its keys), so there is nothing to check again at apply.
        let command = if keys.is_empty() {
            Command::LeaseRevoke { id }
        } else {
            checked.command(Command::LeaseRevoke { id })
        };
        match self.propose(command).await? {
            CommandResult::Lease { revision } => Ok(LeaseRevokeResponse {
                header: Some(self.header(revision)),
            }),
            other => Err(unexpected(other)),
        }
    }

    /// One `Lease.LeaseKeepAlive` request: the TTL granted again, or 0 for
    /// an unknown or expired lease (not an error, as in etcd).
    pub async fn lease_keep_alive(&self, id: i64) -> Result<LeaseKeepAliveResponse, ServerError> {
        let ttl = self
            .lease_clock(LeaseClockRequest::Renew(id))
            .await?
            .unwrap_or(0);
        Ok(LeaseKeepAliveResponse {
            header: Some(self.header(self.hub.revision())),
            id,
            ttl,
        })
    }

    /// `Lease.LeaseTimeToLive`: -1 for an unknown lease (not an error).
    pub async fn lease_time_to_live(
        &self,
        req: LeaseTimeToLiveRequest,
    ) -> Result<LeaseTimeToLiveResponse, ServerError> {
        self.linearizable_barrier().await?;
        let id = req.id;
        let (revision, granted, keys) = self
            .read(move |kv| {
                let revision = kv.revisions()?.current;
                let granted = kv.lease_ttl(id)?;
                let keys = if req.keys && granted.is_some() {
                    kv.lease_keys(id)?
                } else {
                    Vec::new()
                };
                Ok((revision, granted, keys))
            })
            .await?;
        let header = Some(self.header(revision));
        let Some(granted_ttl) = granted else {
            return Ok(LeaseTimeToLiveResponse {
                header,
                id,
                ttl: -1,
                ..Default::default()
            });
        };
        let ttl = self
            .lease_clock(LeaseClockRequest::Remaining(id))
            .await?
            .unwrap_or(-1);
        Ok(LeaseTimeToLiveResponse {
            header,
            id,
            ttl,
            granted_ttl,
            keys,
        })
    }

    /// `Lease.LeaseLeases`.
    pub async fn lease_leases(&self) -> Result<LeaseLeasesResponse, ServerError> {
        self.linearizable_barrier().await?;
        let (revision, leases) = self
            .read(|kv| Ok((kv.revisions()?.current, kv.leases()?)))
            .await?;
        Ok(LeaseLeasesResponse {
            header: Some(self.header(revision)),
            leases: leases
                .into_iter()
                .map(|(id, _)| LeaseStatus { id })
                .collect(),
        })
    }

    /// Asks the leader's clocks, locally or over the peer URL.
    async fn lease_clock(&self, request: LeaseClockRequest) -> Result<Option<i64>, ServerError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let answer = match self.leader() {
                Some(leader) if leader == self.identity.member_id => {
                    self.answer_lease_clock(request).await
                }
                Some(leader) => self.ask_leader_lease_clock(leader, request).await,
                None => Err(PeerRefusal::NotLeader),
            };
            match answer {
                Ok(answer) => return Ok(answer),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(self.timeout_error());
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Answers from this leader's clocks. A renewal needs this member's
    /// leadership confirmed by a quorum round that began less than an
    /// election timeout ago (else it runs one): a leader cut off from the
    /// others keeps believing it leads for a while, and a renewal it granted
    /// then would promise the client a TTL that the majority's new leader
    /// (whose clocks restarted when it took over) does not honour.
    ///
    /// Why a recent round is enough: a member that answered the round
    /// refuses votes for two election timeouts after it (openraft's leader
    /// lease, `election_timeout_max`), and one that did not answer it can
    /// only lead after its own election timeout; either way no other leader
    /// exists before the round's start plus an election timeout, and that
    /// leader restarts every clock at TTL plus an election timeout. A
    /// renewal within an election timeout of the round therefore never
    /// outlives what a newer leader honours. (etcd 3.4 renews unchecked.)
    async fn answer_lease_clock(
        &self,
        request: LeaseClockRequest,
    ) -> Result<Option<i64>, PeerRefusal> {
        match request {
            LeaseClockRequest::Renew(id) => {
                let term = self.metrics.borrow().current_term;
                let fresh = self
                    .reads
                    .leadership_confirmed(term)
                    .is_some_and(|began| began.elapsed() < self.config.election_timeout);
                if !fresh {
                    self.reads.read_index().await.map_err(|e| match e {
                        ServerError::Stopped => PeerRefusal::Stopped,
                        _ => PeerRefusal::NotLeader,
                    })?;
                }
                if self.leader() != Some(self.identity.member_id)
                    || self.metrics.borrow().current_term != term
                {
                    return Err(PeerRefusal::NotLeader);
                }
                Ok(self.lessor.renew(id))
            }
            LeaseClockRequest::Remaining(id) => Ok(self.lessor.remaining(id)),
        }
    }

    async fn ask_leader_lease_clock(
        &self,
        leader: u64,
        request: LeaseClockRequest,
    ) -> Result<Option<i64>, PeerRefusal> {
        let url = self.peer_url_of(leader).ok_or(PeerRefusal::NotLeader)?;
        let answer: Result<Result<Option<i64>, PeerRefusal>, PeerError> = self
            .peers
            .call(
                &url,
                paths::LEASE_CLOCK,
                &request,
                self.config.request_timeout(),
            )
            .await;
        answer.unwrap_or(Err(PeerRefusal::NotLeader))
    }

    /// Serves a follower's lease question; refuses when not leader.
    pub(crate) async fn lease_clock_for_peer(
        &self,
        request: LeaseClockRequest,
    ) -> Result<Option<i64>, PeerRefusal> {
        if self.leader() != Some(self.identity.member_id) {
            return Err(PeerRefusal::NotLeader);
        }
        self.answer_lease_clock(request).await
    }

    /// Proposes the revoke of every lease whose time is up (leader only).
    pub(crate) async fn expire_leases(&self) {
        for id in self.lessor.take_expired() {
            match self.propose(Command::LeaseRevoke { id }).await {
                Ok(CommandResult::Lease { .. }) => {
                    tracing::info!(lease = %format!("{id:x}"), "lease expired")
                }
                Ok(CommandResult::Rejected(MvccError::LeaseNotFound)) => self.lessor.revoked(id),
                Ok(other) => tracing::warn!(?other, "unexpected result revoking an expired lease"),
                Err(e) => {
                    tracing::warn!(error = %e, "revoking an expired lease failed; will retry")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_ttl_is_one_and_a_half_election_timeouts() {
        assert_eq!(minimum_ttl(Duration::from_millis(1000)), 2);
        assert_eq!(minimum_ttl(Duration::from_millis(500)), 1);
        assert_eq!(minimum_ttl(Duration::from_millis(3000)), 5);
    }
}
