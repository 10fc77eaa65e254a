//! etcd's v2 keyspace: a tree of directories and string values with one
//! store-wide index, kept apart from the v3 (MVCC) keyspace as etcd keeps
//! it.
//!
//! This module owns the v2 rules: path normalisation, what may replace
//! what in the tree, compare-and-swap and compare-and-delete, TTLs and
//! expiry, the event history waits are served from, which waiter hears of
//! which event, the store counters, and etcd's error codes. The rules run
//! against [`V2Tables`], a narrow storage interface: the member's SQLite
//! database implements it (`storage::SqliteV2`), an in-memory map does in
//! the unit tests.
//!
//! It must never do I/O except through [`V2Tables`], and never read a
//! clock while applying a write: every time it uses (the expiry of a TTL,
//! the cut-off of an expiry sweep) comes inside the replicated command, so
//! every member computes the same tree and the same index. Reads (`get`,
//! waits) take the reader's clock only to show a node's remaining TTL.
//! It knows nothing of Raft or HTTP.

mod apply;
mod error;
mod history;
#[cfg(test)]
mod memory;
mod path;
mod read;
mod stats;
#[cfg(test)]
mod tests;
mod watchers;

use serde::{Deserialize, Serialize};

pub use apply::{Applied, Notification, apply};
pub use error::{ErrorCode, V2Error};
pub use path::{clean, parent};
pub use read::{WatchStart, begin_watch, get};
pub use stats::{Counter, StoreStats};
pub use watchers::{Watch, WatchSignal, WatcherHub};

/// A point in time as Unix nanoseconds (Go's `UnixNano`).
pub type UnixNanos = i64;

/// How many events the history keeps for waits with a `waitIndex`, as
/// etcd keeps them.
pub const HISTORY_CAPACITY: u64 = 1000;

/// Expiry times before 2000-01-01T00:00:00Z mean "no TTL", as in etcd
/// (they only arise from overflowing TTLs).
const MIN_EXPIRE: UnixNanos = 946_684_800 * NANOS_PER_SECOND;
const NANOS_PER_SECOND: i64 = 1_000_000_000;

/// What happened to a node, as etcd names it in `"action"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    Get,
    Set,
    Create,
    Update,
    CompareAndSwap,
    Delete,
    CompareAndDelete,
    Expire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::CompareAndSwap => "compareAndSwap",
            Action::Delete => "delete",
            Action::CompareAndDelete => "compareAndDelete",
            Action::Expire => "expire",
        }
    }
}

/// A node as clients see it (etcd's `NodeExtern`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's path; `/` for the root (which etcd shows without a key).
    pub key: String,
    /// A file's value; `None` for a directory.
    pub value: Option<String>,
    pub dir: bool,
    pub expiration: Option<UnixNanos>,
    /// Whole seconds left, rounded up; 0 when permanent.
    pub ttl: i64,
    /// A listed directory's children; `None` when not listed.
    pub nodes: Option<Vec<NodeView>>,
    pub modified_index: u64,
    pub created_index: u64,
}

/// The outcome of one request or one expiry (etcd's `Event`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    pub action: Action,
    pub node: NodeView,
    pub prev_node: Option<NodeView>,
    /// The store's index once the event happened (`X-Etcd-Index`).
    pub etcd_index: u64,
    /// A TTL refresh: kept in the history but never shown to waiters.
    pub refresh: bool,
}

impl Event {
    /// The index the event happened at.
    pub fn index(&self) -> u64 {
        self.node.modified_index
    }

    /// Whether the request created the node (HTTP 201).
    pub fn is_created(&self) -> bool {
        self.action == Action::Create || (self.action == Action::Set && self.prev_node.is_none())
    }
}

/// One node as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredNode {
    /// Clean absolute path (`/a/b`); never `/`, the root is implicit.
    pub path: String,
    pub dir: bool,
    /// A file's value; empty for a directory.
    pub value: String,
    pub created_index: u64,
    pub modified_index: u64,
    pub expire: Option<UnixNanos>,
}

impl StoredNode {
    fn root() -> StoredNode {
        StoredNode {
            path: "/".into(),
            dir: true,
            value: String::new(),
            created_index: 0,
            modified_index: 0,
            expire: None,
        }
    }
}

/// A storage failure under the v2 rules; it stops the apply (the member
/// must not go on with a tree it could not write).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("v2 store: {0}")]
pub struct TableError(pub String);

/// The storage the v2 rules run on. Paths are clean and absolute; lists
/// come sorted by path (byte order).
pub trait V2Tables {
    fn node(&self, path: &str) -> Result<Option<StoredNode>, TableError>;
    /// The direct children of directory `dir`.
    fn children(&self, dir: &str) -> Result<Vec<StoredNode>, TableError>;
    /// Every node below directory `dir`, at any depth.
    fn descendants(&self, dir: &str) -> Result<Vec<StoredNode>, TableError>;
    /// Inserts or replaces a node.
    fn put(&mut self, node: &StoredNode) -> Result<(), TableError>;
    fn remove(&mut self, path: &str) -> Result<(), TableError>;
    fn current_index(&self) -> Result<u64, TableError>;
    fn set_current_index(&mut self, index: u64) -> Result<(), TableError>;
    /// Appends an event to the history, keeping the newest
    /// [`HISTORY_CAPACITY`].
    fn record_event(&mut self, event: &Event) -> Result<(), TableError>;
    /// The indexes of the oldest and newest kept events; `(0, 0)` when
    /// the history is empty.
    fn history_bounds(&self) -> Result<(u64, u64), TableError>;
    /// The kept events from `index` on, oldest first.
    fn history_from(&self, index: u64) -> Result<Vec<Event>, TableError>;
    /// The node that expires first at or before `cutoff` (ties by path).
    fn first_expired(&self, cutoff: UnixNanos) -> Result<Option<StoredNode>, TableError>;
    /// When the next node expires, if any has a TTL.
    fn next_expiry(&self) -> Result<Option<UnixNanos>, TableError>;
}

/// A replicated v2 write: the operation and the wall-clock time of the
/// member that received it, from which every TTL in it is measured (so
/// applying it never reads a clock).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V2Write {
    pub now: UnixNanos,
    pub op: V2Op,
}

/// The v2 write operations (what etcd's v2 applier calls on its store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum V2Op {
    /// Create or replace (PUT without conditions).
    Set {
        path: String,
        dir: bool,
        value: String,
        ttl: Option<u64>,
        refresh: bool,
    },
    /// Create only (`prevExist=false`, or POST with `unique`: an in-order
    /// key named after the new index).
    Create {
        path: String,
        dir: bool,
        value: String,
        unique: bool,
        ttl: Option<u64>,
    },
    /// Replace an existing node's value or TTL (`prevExist=true`).
    Update {
        path: String,
        value: String,
        ttl: Option<u64>,
        refresh: bool,
    },
    CompareAndSwap {
        path: String,
        prev_value: String,
        prev_index: u64,
        value: String,
        ttl: Option<u64>,
        refresh: bool,
    },
    Delete {
        path: String,
        dir: bool,
        recursive: bool,
    },
    CompareAndDelete {
        path: String,
        prev_value: String,
        prev_index: u64,
    },
    /// Deletes every node whose expiry is at or before the command's time
    /// (the leader's periodic sweep).
    ExpireKeys,
}

/// The conditions and payload of a PUT, as the keys API received them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutRequest {
    pub path: String,
    pub value: String,
    pub dir: bool,
    pub prev_exist: Option<bool>,
    pub prev_value: String,
    pub prev_index: u64,
    pub ttl: Option<u64>,
    pub refresh: bool,
}

impl V2Op {
    /// Which operation a PUT is: `prevExist` decides first (true: update,
    /// or compare-and-swap when a previous value or index is given; false:
    /// create), then a previous value or index makes it a compare-and-swap,
    /// else it is a set.
    pub fn for_put(req: PutRequest) -> V2Op {
        let compare = req.prev_index > 0 || !req.prev_value.is_empty();
        match req.prev_exist {
            Some(true) if !compare => V2Op::Update {
                path: req.path,
                value: req.value,
                ttl: req.ttl,
                refresh: req.refresh,
            },
            Some(false) => V2Op::Create {
                path: req.path,
                dir: req.dir,
                value: req.value,
                unique: false,
                ttl: req.ttl,
            },
            Some(true) | None if compare => V2Op::CompareAndSwap {
                path: req.path,
                prev_value: req.prev_value,
                prev_index: req.prev_index,
                value: req.value,
                ttl: req.ttl,
                refresh: req.refresh,
            },
            _ => V2Op::Set {
                path: req.path,
                dir: req.dir,
                value: req.value,
                ttl: req.ttl,
                refresh: req.refresh,
            },
        }
    }

    /// A DELETE: compare-and-delete when a previous value or index is
    /// given, else a delete.
    pub fn for_delete(
        path: String,
        dir: bool,
        recursive: bool,
        prev_value: String,
        prev_index: u64,
    ) -> V2Op {
        if prev_index > 0 || !prev_value.is_empty() {
            V2Op::CompareAndDelete {
                path,
                prev_value,
                prev_index,
            }
        } else {
            V2Op::Delete {
                path,
                dir,
                recursive,
            }
        }
    }

    /// A POST: an in-order key created under `path`.
    pub fn for_post(path: String, dir: bool, value: String, ttl: Option<u64>) -> V2Op {
        V2Op::Create {
            path,
            dir,
            value,
            unique: true,
            ttl,
        }
    }
}

/// Roughly how many bytes `op` adds to a Raft entry (for batching).
pub fn encoded_size(op: &V2Op) -> usize {
    let strings = match op {
        V2Op::Set { path, value, .. }
        | V2Op::Create { path, value, .. }
        | V2Op::Update { path, value, .. } => path.len() + value.len(),
        V2Op::CompareAndSwap {
            path,
            prev_value,
            value,
            ..
        } => path.len() + prev_value.len() + value.len(),
        V2Op::Delete { path, .. } => path.len(),
        V2Op::CompareAndDelete {
            path, prev_value, ..
        } => path.len() + prev_value.len(),
        V2Op::ExpireKeys => 0,
    };
    strings + 32
}

/// When a node given `ttl` seconds at `now` expires; `None` means never.
/// Overflow wraps as Go's `time.Duration` arithmetic does, and a result
/// before 2000 means permanent, as in etcd.
pub fn expiry(now: UnixNanos, ttl: Option<u64>) -> Option<UnixNanos> {
    let ttl = ttl?;
    let expire = now.wrapping_add((ttl as i64).wrapping_mul(NANOS_PER_SECOND));
    (expire >= MIN_EXPIRE).then_some(expire)
}

/// Whole seconds from `now` until `expire`, rounded up (etcd's `ttl`).
pub fn ttl_at(expire: UnixNanos, now: UnixNanos) -> i64 {
    let left = expire.saturating_sub(now);
    let seconds = left / NANOS_PER_SECOND;
    if left % NANOS_PER_SECOND > 0 {
        seconds + 1
    } else {
        seconds
    }
}
