//! Group commit for proposals.
//!
//! openraft 0.9 takes client writes one entry at a time, and followers
//! fsync each replication round before the next, so one entry per client
//! write would mean one append, one replication round and one apply per
//! write. The proposer instead drains every proposal
//! waiting at that moment into one [`Command::Batch`] entry: one append,
//! one fsync on each member, one replication round and one apply
//! transaction serve the whole batch, while each command still gets its own
//! revision and result. A few batches may be in flight, so the next one
//! forms while the previous one commits.
//!
//! Proposals can be held for a while ([`Proposer::hold`]): a leader handing
//! over leadership stops adding entries so the new leader's log is complete
//! and followers stop hearing from it; held proposals continue (and find the
//! new leader) once the hold ends.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot, watch};

use crate::raft::{Command, CommandResult, Raft};

/// Commands in one batch at most.
const MAX_BATCH: usize = 512;
/// Encoded bytes in one batch at most (one request alone may exceed it).
const MAX_BATCH_BYTES: usize = 4 * 1024 * 1024;
/// Batches committing at the same time.
const IN_FLIGHT: usize = 4;

/// Why a proposal did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProposeFailure {
    /// Not in the log (this member is not the leader): safe to retry.
    NotLeader,
    /// Raft stopped.
    Stopped,
    Other(String),
}

/// A committed and applied command: its result, and the index of the log
/// entry that carried it (a follower that forwarded the command waits until
/// it has applied that index itself before answering).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Committed {
    pub(crate) result: CommandResult,
    pub(crate) index: u64,
}

type Reply = oneshot::Sender<Result<Committed, ProposeFailure>>;

struct Pending {
    command: Command,
    reply: Reply,
}

/// The queue in front of `Raft::client_write`.
pub(crate) struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
    /// True while proposals are held.
    held: watch::Sender<bool>,
    /// Proposals waiting for their result (`etcd_server_proposals_pending`).
    pending: std::sync::atomic::AtomicU64,
}

/// One proposal counted in `pending` until dropped, also when its caller
/// gives up waiting.
struct Counted<'a>(&'a std::sync::atomic::AtomicU64);

impl<'a> Counted<'a> {
    fn enter(pending: &'a std::sync::atomic::AtomicU64) -> Self {
        pending.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self(pending)
    }
}

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Proposals wait until this is dropped.
pub(crate) struct ProposalHold<'a> {
    held: &'a watch::Sender<bool>,
}

impl Drop for ProposalHold<'_> {
    fn drop(&mut self) {
        self.held.send_replace(false);
    }
}

impl Proposer {
    pub(crate) fn start(raft: Raft) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        let (held, gate) = watch::channel(false);
        tokio::spawn(run(raft, pending, gate));
        Self {
            queue,
            held,
            pending: Default::default(),
        }
    }

    /// Holds new batches back until the returned guard is dropped (batches
    /// already handed to Raft go on).
    pub(crate) fn hold(&self) -> ProposalHold<'_> {
        self.held.send_replace(true);
        ProposalHold { held: &self.held }
    }

    /// Commits `command` (batched with whatever else is waiting) and
    /// returns its applied result and log index.
    pub(crate) async fn propose(&self, command: Command) -> Result<Committed, ProposeFailure> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .map_err(|_| ProposeFailure::Stopped)?;
        let _counted = Counted::enter(&self.pending);
        answer.await.map_err(|_| ProposeFailure::Stopped)?
    }

    /// Proposals handed in and not answered yet.
    pub(crate) fn pending(&self) -> u64 {
        self.pending.load(std::sync::atomic::Ordering::Relaxed)
    }
}

async fn run(
    raft: Raft,
    mut pending: mpsc::UnboundedReceiver<Pending>,
    mut gate: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = pending.recv().await else {
            return;
        };
        if gate.wait_for(|held| !held).await.is_err() {
            return;
        }
        let mut bytes = first.command.approx_size();
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Ok(next) = pending.try_recv() else { break };
            bytes += next.command.approx_size();
            batch.push(next);
        }
        let raft = raft.clone();
        tokio::spawn(async move {
            commit(&raft, batch).await;
            drop(permit);
        });
    }
}

async fn commit(raft: &Raft, mut batch: Vec<Pending>) {
    let single = batch.len() == 1;
    let (commands, replies): (Vec<Command>, Vec<Reply>) =
        batch.drain(..).map(|p| (p.command, p.reply)).unzip();
    let entry = if single {
        commands
            .into_iter()
            .next()
            .unwrap_or(Command::Batch(Vec::new()))
    } else {
        Command::Batch(commands)
    };
    let outcome = match raft.client_write(entry).await {
        Ok(response) => Ok((response.data, response.log_id.index)),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            Err(ProposeFailure::NotLeader)
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(ProposeFailure::Other(e.to_string()))
        }
        Err(RaftError::Fatal(_)) => Err(ProposeFailure::Stopped),
    };
    match outcome {
        Ok((CommandResult::Batch(results), index)) if !single && results.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(Committed { result, index }));
            }
        }
        Ok((result, index)) if single => {
            for reply in replies {
                let _ = reply.send(Ok(Committed {
                    result: result.clone(),
                    index,
                }));
            }
        }
        Ok((other, _)) => {
            let failure = ProposeFailure::Other(format!("batch answered with {other:?}"));
            for reply in replies {
                let _ = reply.send(Err(failure.clone()));
            }
        }
        Err(failure) => {
            for reply in replies {
                let _ = reply.send(Err(failure.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::Counted;

    #[test]
    fn a_proposal_is_counted_until_its_caller_stops_waiting() {
        let pending = AtomicU64::new(0);
        let first = Counted::enter(&pending);
        let second = Counted::enter(&pending);
        assert_eq!(pending.load(Ordering::Relaxed), 2);
        // A caller that gives up (its future dropped) no longer counts.
        drop(first);
        assert_eq!(pending.load(Ordering::Relaxed), 1);
        drop(second);
        assert_eq!(pending.load(Ordering::Relaxed), 0);
    }
}
