//! The v2 keys API's requests: reads from this member's copy of the v2
//! keyspace (after a read-index barrier when the client asks for
//! `quorum`), writes through Raft like every other write, waits answered
//! from the event history or by the live waiters the apply path feeds, and
//! the leader's periodic expiry sweep.

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Node, ServerError, unexpected};
use crate::raft::{Command, CommandResult};
use crate::storage::SqliteV2;
use crate::v2store::{self, Counter, Event, UnixNanos, V2Op, V2Tables, V2Write, Watch};

/// Wall-clock time as Unix nanoseconds.
pub(crate) fn unix_nanos_now() -> UnixNanos {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

/// A v2 answer with the Raft position it was given at (`X-Raft-Index`,
/// `X-Raft-Term`).
#[derive(Debug)]
pub struct V2Answer {
    pub event: Event,
    pub raft_index: u64,
    pub raft_term: u64,
}

/// A started wait and the Raft position when it started.
pub struct V2Wait {
    pub watch: Watch,
    pub raft_index: u64,
    pub raft_term: u64,
}

impl Node {
    /// The applied Raft index and the current term.
    fn raft_position(&self) -> (u64, u64) {
        let metrics = self.metrics.borrow();
        (
            metrics.last_applied.map_or(0, |l| l.index),
            metrics.current_term,
        )
    }

    fn answer(&self, event: Event) -> V2Answer {
        let (raft_index, raft_term) = self.raft_position();
        V2Answer {
            event,
            raft_index,
            raft_term,
        }
    }

    /// A get of `path` from this member's copy; with `quorum`, only after
    /// every write committed before the call has been applied here.
    pub async fn v2_get(
        &self,
        path: &str,
        recursive: bool,
        quorum: bool,
    ) -> Result<V2Answer, ServerError> {
        if quorum {
            self.linearizable_barrier().await?;
        }
        let path = path.to_string();
        let now = unix_nanos_now();
        let result = self
            .db
            .read(move |tx| {
                v2store::get(&SqliteV2::new(tx), &path, recursive, now).map_err(v2_storage)
            })
            .await?;
        self.v2_stats.count(Counter::for_get(result.is_ok()));
        Ok(self.answer(result?))
    }

    /// A v2 write, committed through Raft; TTLs count from this member's
    /// clock now.
    pub async fn v2_write(&self, op: V2Op) -> Result<V2Answer, ServerError> {
        let write = V2Write {
            now: unix_nanos_now(),
            op,
        };
        let result = match self.propose(Command::V2(write)).await? {
            CommandResult::V2(result) => result,
            other => return Err(unexpected(other)),
        };
        // A write forwarded to the leader came back once the leader applied
        // it (refused or not); like etcd, answer only once this member has
        // too, so a read here right after sees it.
        if self.leader() != Some(self.identity.member_id)
            && let Err(e) = self.linearizable_barrier().await
        {
            tracing::debug!(error = %e, "v2 write committed; waiting to apply it here failed");
        }
        Ok(self.answer(*result?))
    }

    /// Starts a wait on `key` for the first change at or after
    /// `wait_index` (0: the next change). The waiter is registered before
    /// the history is read, so no change can fall between the two.
    pub async fn v2_watch(
        &self,
        key: &str,
        recursive: bool,
        wait_index: u64,
    ) -> Result<V2Wait, ServerError> {
        let key = v2store::clean(key);
        let registration = self.v2_waiters.register(&key, recursive, wait_index);
        let start = self
            .db
            .read(move |tx| {
                v2store::begin_watch(&SqliteV2::new(tx), &key, recursive, wait_index)
                    .map_err(v2_storage)
            })
            .await??;
        let (raft_index, raft_term) = self.raft_position();
        Ok(V2Wait {
            watch: Watch::new(start, registration),
            raft_index,
            raft_term,
        })
    }

    /// `/v2/stats/store`: this member's counters and waiters.
    pub fn v2_store_stats(&self) -> String {
        self.v2_stats.json(self.v2_waiters.count())
    }

    /// On the leader: proposes an expiry sweep stamped with its clock when
    /// some v2 node's time is up, so every member expires the same nodes at
    /// the same index.
    pub(crate) async fn expire_v2_keys(&self) {
        if self.leader() != Some(self.identity.member_id) {
            return;
        }
        let next = self
            .db
            .read(|tx| SqliteV2::new(tx).next_expiry().map_err(v2_storage))
            .await;
        let now = unix_nanos_now();
        match next {
            Ok(Some(expire)) if expire <= now => {
                let sweep = Command::V2(V2Write {
                    now,
                    op: V2Op::ExpireKeys,
                });
                if let Err(e) = self.propose(sweep).await {
                    tracing::debug!(error = %e, "v2 expiry sweep; will retry");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reading the next v2 expiry"),
        }
    }
}

fn v2_storage(e: v2store::TableError) -> crate::storage::StorageError {
    crate::storage::StorageError::Decode {
        what: "v2 store",
        detail: e.0,
    }
}
