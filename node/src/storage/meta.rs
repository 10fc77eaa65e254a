//! Named values in the `meta` table, typed.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_rusqlite::rusqlite::{Connection, OptionalExtension, params};

use super::StorageError;

/// Typed access to the `meta` table on any connection or transaction.
pub struct Meta<'c>(pub &'c Connection);

impl Meta<'_> {
    pub const CURRENT_REVISION: &'static str = "mvcc.current_revision";
    pub const COMPACTED_REVISION: &'static str = "mvcc.compacted_revision";
    pub const VOTE: &'static str = "raft.vote";
    pub const COMMITTED: &'static str = "raft.committed";
    pub const LAST_PURGED: &'static str = "raft.last_purged";
    pub const APPLIED: &'static str = "sm.applied";
    pub const MEMBERSHIP: &'static str = "sm.membership";
    pub const MEMBER_ATTRIBUTES: &'static str = "sm.member_attributes";
    /// Active alarms: (member id, alarm type).
    pub const ALARMS: &'static str = "sm.alarms";
    /// The auth store's enabled flag (0 or 1) and revision.
    pub const AUTH_ENABLED: &'static str = "sm.auth_enabled";
    pub const AUTH_REVISION: &'static str = "sm.auth_revision";
    pub const IDENTITY: &'static str = "member.identity";

    pub fn i64(&self, name: &str) -> Result<Option<i64>, StorageError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT value FROM meta WHERE name = ?1")?;
        Ok(stmt.query_row([name], |r| r.get(0)).optional()?)
    }

    pub fn set_i64(&self, name: &str, value: i64) -> Result<(), StorageError> {
        let mut stmt = self
            .0
            .prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?;
        stmt.execute(params![name, value])?;
        Ok(())
    }

    /// A serde value stored in postcard's compact encoding.
    pub fn value<T: DeserializeOwned>(
        &self,
        name: &'static str,
    ) -> Result<Option<T>, StorageError> {
        let mut stmt = self
            .0
            .prepare_cached("SELECT value FROM meta WHERE name = ?1")?;
        let bytes: Option<Vec<u8>> = stmt.query_row([name], |r| r.get(0)).optional()?;
        bytes
            .map(|b| {
                postcard::from_bytes(&b).map_err(|e| StorageError::Decode {
                    what: name,
                    detail: e.to_string(),
                })
            })
            .transpose()
    }

    pub fn set_value<T: Serialize>(
        &self,
        name: &'static str,
        value: &T,
    ) -> Result<(), StorageError> {
        let bytes = postcard::to_stdvec(value).map_err(|e| StorageError::Decode {
            what: name,
            detail: e.to_string(),
        })?;
        let mut stmt = self
            .0
            .prepare_cached("INSERT OR REPLACE INTO meta (name, value) VALUES (?1, ?2)")?;
        stmt.execute(params![name, bytes])?;
        Ok(())
    }
}
