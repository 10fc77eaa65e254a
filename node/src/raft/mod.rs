//! Replication: openraft's types, our SQLite log and state machine, and the
//! peer network.
//!
//! This module owns what a Raft entry carries ([`Command`]), what applying
//! it returns ([`CommandResult`]), and the plumbing openraft needs. It must
//! never decide what a request means: applying a command hands it to
//! `mvcc`, which owns the keyspace rules.

pub mod append_stream;
mod auth_apply;
pub mod call_stream;
mod command;
mod connector;
mod log_store;
mod network;
mod observer;
mod state_machine;
mod stream;

pub use command::{Command, CommandResult, MemberAttributes};
pub use log_store::{Durability, DurabilityError, LogStore};
pub use network::{CLUSTER_ID_HEADER, MEMBER_ID_HEADER, PeerClient, PeerError, PeerNetwork, paths};
pub use observer::{AppliedChange, ApplyObserver, IgnoreApplied};
pub use state_machine::{SnapshotStore, StateMachine, alarms, restore_backup, write_backup};

/// A member's 64-bit id, etcd-style; shown in hex.
pub type MemberId = u64;

/// What the Raft membership records about each member.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MemberNode {
    pub name: String,
    pub peer_urls: Vec<String>,
}

openraft::declare_raft_types!(
    /// cetera's Raft type configuration.
    pub TypeConfig:
        D = Command,
        R = CommandResult,
        NodeId = MemberId,
        Node = MemberNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = tokio::fs::File,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The Raft handle the rest of the node drives.
pub type Raft = openraft::Raft<TypeConfig>;
pub type LogId = openraft::LogId<MemberId>;
pub type Vote = openraft::Vote<MemberId>;
pub type Entry = openraft::Entry<TypeConfig>;
pub type StoredMembership = openraft::StoredMembership<MemberId, MemberNode>;
pub type SnapshotMeta = openraft::SnapshotMeta<MemberId, MemberNode>;
pub type RaftStorageError = openraft::StorageError<MemberId>;
pub type RaftMetrics = openraft::RaftMetrics<MemberId, MemberNode>;

#[cfg(test)]
mod tests {
    //! openraft's storage conformance suite, run against the SQLite log and
    //! state machine.

    use openraft::testing::{StoreBuilder, Suite};

    use super::*;
    use crate::storage::Db;

    struct SqliteStoreBuilder;

    impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for SqliteStoreBuilder {
        async fn build(
            &self,
        ) -> Result<(tempfile::TempDir, LogStore, StateMachine), RaftStorageError> {
            let dir = tempfile::tempdir().expect("tempdir");
            let fail = |e: crate::storage::StorageError| -> RaftStorageError {
                openraft::StorageIOError::<MemberId>::write(openraft::AnyError::error(
                    e.to_string(),
                ))
                .into()
            };
            let db = Db::open(&dir.path().join("cetera.db"))
                .await
                .map_err(fail)?;
            let log = LogStore::open(db.clone(), 1).await.map_err(fail)?;
            let observer = std::sync::Arc::new(IgnoreApplied);
            let sm = StateMachine::open(db, &dir.path().join("snap"), observer)
                .await
                .map_err(fail)?;
            Ok((dir, log, sm))
        }
    }

    #[test]
    fn sqlite_storage_passes_openraft_conformance_suite() {
        Suite::test_all(SqliteStoreBuilder).expect("storage suite");
    }
}
