//! The write path: a command reaches the leader's Raft log, commits on a
//! quorum (each member fsyncs before acknowledging), is applied, and the
//! applied result comes back.
//!
//! A follower forwards the command to the leader over the peer protocol,
//! and answers only once it has applied the command's log entry itself, as
//! etcd's members do: whatever a client reads or watches on the member that
//! acknowledged its write already includes that write. Retries happen only where the command certainly did not reach the log
//! (openraft's `ForwardToLeader` covers exactly that case, and a forward
//! whose connection never opened); anything ambiguous fails with
//! `request timed out`, as etcd does, so a command is never applied twice.

use std::time::Duration;

use super::error::PeerRefusal;
use super::proposer::{Committed, ProposeFailure};
use super::{Node, ServerError};
use crate::raft::{Command, CommandResult, PeerError, paths};

/// Pause before trying again while leadership is moving.
const LEADER_WAIT: Duration = Duration::from_millis(50);

/// What one attempt to commit a command led to.
enum Attempt {
    Done(CommandResult),
    /// Not in the log; safe to try again once a leader is known.
    Retry,
}

impl Node {
    /// Commits `command` through Raft and returns its applied result.
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResult, ServerError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let attempt = tokio::time::timeout_at(deadline, self.propose_once(&command))
                .await
                .map_err(|_| self.timeout_error())
                .and_then(|attempt| attempt)
                .inspect_err(|_| self.leaders.count_failed_proposal())?;
            match attempt {
                Attempt::Done(result) => return Ok(result),
                Attempt::Retry => {
                    if tokio::time::Instant::now() + LEADER_WAIT >= deadline {
                        return Err(self.timeout_error());
                    }
                    tokio::time::sleep(LEADER_WAIT).await;
                }
            }
        }
    }

    /// etcd says `no leader` when there is none, else `request timed out`.
    pub(crate) fn timeout_error(&self) -> ServerError {
        if self.reported_leader().is_none() {
            ServerError::NoLeader
        } else {
            ServerError::Timeout
        }
    }

    async fn propose_once(&self, command: &Command) -> Result<Attempt, ServerError> {
        match self.leader() {
            None => Ok(Attempt::Retry),
            Some(leader) if leader == self.identity.member_id => {
                self.write_as_leader(command).await
            }
            Some(leader) => self.forward(leader, command).await,
        }
    }

    async fn write_as_leader(&self, command: &Command) -> Result<Attempt, ServerError> {
        // The leader answers after applying the entry.
        match self.proposer.propose(command.clone()).await {
            Ok(committed) => Ok(Attempt::Done(committed.result)),
            Err(ProposeFailure::NotLeader) => Ok(Attempt::Retry),
            Err(ProposeFailure::Stopped) => Err(ServerError::Stopped),
            Err(ProposeFailure::Other(e)) => Err(ServerError::Internal(e)),
        }
    }

    async fn forward(&self, leader: u64, command: &Command) -> Result<Attempt, ServerError> {
        let Some(url) = self.peer_url_of(leader) else {
            return Ok(Attempt::Retry);
        };
        let answer: Result<Result<Committed, PeerRefusal>, PeerError> = self
            .peers
            .call(&url, paths::PROPOSE, command, self.config.request_timeout())
            .await;
        match answer {
            Ok(Ok(committed)) => {
                self.wait_applied(committed.index).await?;
                Ok(Attempt::Done(committed.result))
            }
            Ok(Err(PeerRefusal::NotLeader)) => Ok(Attempt::Retry),
            Ok(Err(PeerRefusal::Stopped)) => Ok(Attempt::Retry),
            Ok(Err(PeerRefusal::Timeout)) => Err(ServerError::Timeout),
            Err(PeerError::Unreachable { .. }) => Ok(Attempt::Retry),
            Err(e) => {
                tracing::warn!(error = %e, "forwarding a proposal to the leader failed");
                Err(ServerError::Timeout)
            }
        }
    }

    /// The first peer URL of a member of the current membership.
    pub(crate) fn peer_url_of(&self, member: u64) -> Option<String> {
        let metrics = self.metrics.borrow();
        let membership = metrics.membership_config.membership();
        membership
            .get_node(&member)
            .and_then(|node| node.peer_urls.first().cloned())
    }

    /// Serves a proposal forwarded by a follower; refuses when not leader.
    pub(crate) async fn propose_forwarded(
        &self,
        command: Command,
    ) -> Result<Committed, PeerRefusal> {
        if self.leader() != Some(self.identity.member_id) {
            return Err(PeerRefusal::NotLeader);
        }
        match self.proposer.propose(command).await {
            Ok(committed) => Ok(committed),
            Err(ProposeFailure::NotLeader | ProposeFailure::Other(_)) => {
                Err(PeerRefusal::NotLeader)
            }
            Err(ProposeFailure::Stopped) => Err(PeerRefusal::Stopped),
        }
    }
}
