//! etcd's multi-version key-value rules, independent of any storage engine.
//!
//! This module owns the meaning of revisions, versions, tombstones, ranges,
//! compares and compaction: everything that decides *what* a request does to
//! the keyspace. It reaches data only through the [`KvRead`]/[`KvWrite`]
//! traits, so the rules are unit-tested against [`MemoryBackend`] and run in
//! production against the SQLite implementation in `storage`.
//!
//! It must never do I/O of its own, know about Raft, or hold per-connection
//! state: given the same backend contents and the same request, every member
//! must compute the same result.

mod backend;
mod error;
mod key_range;
mod lease;
mod read;
mod validate;
mod write;

pub use backend::{BackendError, KvRead, KvWrite, MemoryBackend, RevisionState};
pub use error::MvccError;
pub use key_range::{KeyRange, prefix_end};
pub use lease::{MAX_LEASE_TTL, apply_lease_grant, apply_lease_revoke};
pub use read::range;
pub use validate::{txn_has_puts, txn_is_read_only, validate_put, validate_txn};
pub use write::{Applied, WriteTxn, apply_compaction, apply_delete_range, apply_put, apply_txn};

/// A key's value and metadata at one revision, as etcd's `mvccpb.KeyValue`.
pub type KeyValue = crate::proto::mvccpb::KeyValue;
