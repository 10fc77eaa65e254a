//! Linearizable reads by read index, batched.
//!
//! A read needs the commit index at a moment after it arrived, confirmed by
//! a quorum heartbeat round. Reads that arrive while a round is in flight
//! wait for the next one (the running round may predate them), and every
//! read queued for a round shares it: one heartbeat round serves any number
//! of concurrent reads. Followers ask the leader, whose own barrier batches
//! their questions the same way.
//!
//! The barrier also remembers when this member, as leader, last had its
//! leadership confirmed (the moment the round began, and the term): lease
//! renewals lean on it (see `server::lease`).

use std::sync::{Mutex, Weak};
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::error::PeerRefusal;
use super::{Node, ServerError};
use crate::raft::{PeerError, paths};

type Waiter = oneshot::Sender<Result<u64, ServerError>>;

/// The queue of reads waiting for their read index.
pub(crate) struct ReadBarrier {
    waiters: mpsc::UnboundedSender<Waiter>,
    /// Term and start of the newest round that confirmed this member's
    /// leadership.
    confirmed: Mutex<Option<(u64, Instant)>>,
}

impl ReadBarrier {
    /// Starts the batching task for `node` (held weakly, so the task ends
    /// with the node).
    pub(crate) fn start(node: Weak<Node>) -> Self {
        let (waiters, queue) = mpsc::unbounded_channel();
        tokio::spawn(run_rounds(node, queue));
        Self {
            waiters,
            confirmed: Mutex::new(None),
        }
    }

    /// When the newest round that confirmed this member's leadership in
    /// `term` began, if one did.
    pub(crate) fn leadership_confirmed(&self, term: u64) -> Option<Instant> {
        let confirmed = *self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        confirmed.filter(|(t, _)| *t == term).map(|(_, at)| at)
    }

    fn record_confirmation(&self, term: u64, began: Instant) {
        let mut confirmed = self.confirmed.lock().unwrap_or_else(|e| e.into_inner());
        if confirmed.is_none_or(|(t, at)| (t, at) < (term, began)) {
            *confirmed = Some((term, began));
        }
    }

    /// The log index a linearizable read must wait to see applied.
    pub(crate) async fn read_index(&self) -> Result<u64, ServerError> {
        let (tx, rx) = oneshot::channel();
        self.waiters.send(tx).map_err(|_| ServerError::Stopped)?;
        rx.await.map_err(|_| ServerError::Stopped)?
    }
}

async fn run_rounds(node: Weak<Node>, mut queue: mpsc::UnboundedReceiver<Waiter>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = queue.try_recv() {
            batch.push(more);
        }
        let Some(node) = node.upgrade() else { return };
        let outcome = node.confirm_read_index().await;
        for waiter in batch {
            let _ = waiter.send(match &outcome {
                Ok(index) => Ok(*index),
                Err(e) => Err(clone_error(e)),
            });
        }
    }
}

fn clone_error(e: &ServerError) -> ServerError {
    match e {
        ServerError::NoLeader => ServerError::NoLeader,
        ServerError::Stopped => ServerError::Stopped,
        ServerError::Timeout => ServerError::Timeout,
        other => ServerError::Internal(other.to_string()),
    }
}

impl Node {
    /// One round: as leader, confirm leadership with a quorum; as follower,
    /// ask the leader.
    async fn confirm_read_index(&self) -> Result<u64, ServerError> {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout();
        loop {
            let outcome = match self.leader() {
                Some(leader) if leader == self.identity.member_id => self.leader_read_index().await,
                Some(leader) => self.ask_leader_read_index(leader).await,
                None => Err(PeerRefusal::NotLeader),
            };
            tracing::debug!(?outcome, "read index round");
            match outcome {
                Ok(index) => return Ok(index),
                Err(PeerRefusal::Stopped) => return Err(ServerError::Stopped),
                Err(_) if tokio::time::Instant::now() >= deadline => {
                    return Err(self.timeout_error());
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
            }
        }
    }

    async fn leader_read_index(&self) -> Result<u64, PeerRefusal> {
        // A leader that has heard from no quorum for two election timeouts
        // (cut off) cannot confirm anything: it waits for a quorum instead
        // of sending a round that times out (and that openraft logs as an
        // error) every few milliseconds for as long as clients ask.
        if self.reported_leader() != Some(self.identity.member_id) {
            return Err(PeerRefusal::NotLeader);
        }
        let (term, began) = (self.metrics.borrow().current_term, Instant::now());
        match self.raft.get_read_log_id().await {
            Ok((read_log_id, _applied)) => {
                self.reads.record_confirmation(term, began);
                Ok(read_log_id.map_or(0, |l| l.index))
            }
            Err(openraft::error::RaftError::Fatal(_)) => Err(PeerRefusal::Stopped),
            Err(_) => Err(PeerRefusal::NotLeader),
        }
    }

    async fn ask_leader_read_index(&self, leader: u64) -> Result<u64, PeerRefusal> {
        let url = self.peer_url_of(leader).ok_or(PeerRefusal::NotLeader)?;
        let answer: Result<Result<u64, PeerRefusal>, PeerError> = self
            .peers
            .call(&url, paths::READ_INDEX, &(), self.config.request_timeout())
            .await;
        answer.unwrap_or_else(|e| {
            tracing::debug!(error = %e, "asking the leader for a read index failed");
            Err(PeerRefusal::NotLeader)
        })
    }

    /// Serves a follower's read-index question through our own barrier.
    pub(crate) async fn read_index_for_peer(&self) -> Result<u64, PeerRefusal> {
        if self.leader() != Some(self.identity.member_id) {
            return Err(PeerRefusal::NotLeader);
        }
        self.reads.read_index().await.map_err(|e| match e {
            ServerError::Stopped => PeerRefusal::Stopped,
            ServerError::Timeout => PeerRefusal::Timeout,
            _ => PeerRefusal::NotLeader,
        })
    }
}
