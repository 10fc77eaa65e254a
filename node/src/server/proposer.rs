//! Group commit for proposals.
//!
//! openraft 0.9 appends each entry and waits for its fsync before it takes
//! the next, so one entry per client write would mean one fsync and one
//! replication round per write. The proposer instead drains every proposal
//! waiting at that moment into one [`Command::Batch`] entry: one append,
//! one fsync on each member, one replication round and one apply
//! transaction serve the whole batch, while each command still gets its own
//! revision and result. A few batches may be in flight, so the next one
//! forms while the previous one commits.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use prost::Message;
use tokio::sync::{Semaphore, mpsc, oneshot};

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

type Reply = oneshot::Sender<Result<CommandResult, ProposeFailure>>;

struct Pending {
    command: Command,
    reply: Reply,
}

/// The queue in front of `Raft::client_write`.
pub(crate) struct Proposer {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Proposer {
    pub(crate) fn start(raft: Raft) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, pending));
        Self { queue }
    }

    /// Commits `command` (batched with whatever else is waiting) and
    /// returns its applied result.
    pub(crate) async fn propose(&self, command: Command) -> Result<CommandResult, ProposeFailure> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .map_err(|_| ProposeFailure::Stopped)?;
        answer.await.map_err(|_| ProposeFailure::Stopped)?
    }
}

/// The size a command adds to an entry.
fn encoded_size(command: &Command) -> usize {
    match command {
        Command::Put(r) => r.encoded_len(),
        Command::DeleteRange(r) => r.encoded_len(),
        Command::Txn(r) => r.encoded_len(),
        Command::Compact(r) => r.encoded_len(),
        Command::Batch(commands) => commands.iter().map(encoded_size).sum(),
        Command::V2(write) => crate::v2store::encoded_size(&write.op),
        Command::PublishMember(_)
        | Command::LeaseGrant { .. }
        | Command::LeaseRevoke { .. }
        | Command::Alarm { .. } => 64,
    }
}

async fn run(raft: Raft, mut pending: mpsc::UnboundedReceiver<Pending>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = pending.recv().await else {
            return;
        };
        let mut bytes = encoded_size(&first.command);
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            let Ok(next) = pending.try_recv() else { break };
            bytes += encoded_size(&next.command);
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
        Ok(response) => Ok(response.data),
        Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
            Err(ProposeFailure::NotLeader)
        }
        Err(RaftError::APIError(ClientWriteError::ChangeMembershipError(e))) => {
            Err(ProposeFailure::Other(e.to_string()))
        }
        Err(RaftError::Fatal(_)) => Err(ProposeFailure::Stopped),
    };
    match outcome {
        Ok(CommandResult::Batch(results)) if !single && results.len() == replies.len() => {
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(Ok(result));
            }
        }
        Ok(result) if single => {
            for reply in replies {
                let _ = reply.send(Ok(result.clone()));
            }
        }
        Ok(other) => {
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
