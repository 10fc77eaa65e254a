//! The MVCC revision table in SQLite: [`KvRead`] and [`KvWrite`] over one
//! connection or transaction.

use tokio_rusqlite::rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::{Meta, StorageError};
use crate::mvcc::{BackendError, KeyRange, KeyValue, KvRead, KvWrite, RevisionState};
use crate::proto::mvccpb::Event;
use crate::proto::mvccpb::event::EventType;

/// The revision table seen through one connection; the caller owns the
/// transaction boundaries.
pub struct SqliteKv<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteKv<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }

    fn attach(&self, lease: i64, key: &[u8]) -> Result<(), BackendError> {
        if lease == 0 {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached("INSERT OR IGNORE INTO lease_keys (lease, key) VALUES (?1, ?2)")
            .map_err(backend)?;
        stmt.execute(params![lease, key]).map_err(backend)?;
        Ok(())
    }

    fn detach(&self, lease: i64, key: &[u8]) -> Result<(), BackendError> {
        if lease == 0 {
            return Ok(());
        }
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM lease_keys WHERE lease = ?1 AND key = ?2")
            .map_err(backend)?;
        stmt.execute(params![lease, key]).map_err(backend)?;
        Ok(())
    }
}

impl From<StorageError> for BackendError {
    fn from(e: StorageError) -> Self {
        BackendError(e.to_string())
    }
}

fn backend(e: tokio_rusqlite::rusqlite::Error) -> BackendError {
    BackendError(e.to_string())
}

/// The SQL condition selecting `range` on column `column`, and its values.
fn key_condition<'r>(column: &str, range: &'r KeyRange) -> (String, Vec<&'r dyn ToSql>) {
    match range {
        KeyRange::Single(key) => (format!("{column} = ?"), vec![key as &dyn ToSql]),
        KeyRange::Interval { start, end: None } => {
            (format!("{column} >= ?"), vec![start as &dyn ToSql])
        }
        KeyRange::Interval {
            start,
            end: Some(end),
        } => (
            format!("{column} >= ? AND {column} < ?"),
            vec![start as &dyn ToSql, end as &dyn ToSql],
        ),
    }
}

fn row_to_kv(row: &Row<'_>) -> tokio_rusqlite::rusqlite::Result<KeyValue> {
    Ok(KeyValue {
        key: row.get(0)?,
        create_revision: row.get(1)?,
        mod_revision: row.get(2)?,
        version: row.get(3)?,
        lease: row.get(4)?,
        value: row.get(5)?,
    })
}

impl SqliteKv<'_> {
    /// The events of revisions `from..=to` on keys in `range`, in revision
    /// order, each with the key's previous version (for `prev_kv`).
    pub fn changes(
        &self,
        range: &KeyRange,
        from: i64,
        to: i64,
    ) -> Result<Vec<Event>, StorageError> {
        let (cond, mut values) = key_condition("key", range);
        values.push(&from);
        values.push(&to);
        let sql = format!(
            "SELECT key, create_rev, mod_rev, version, lease, value, tombstone FROM kv \
             WHERE {cond} AND mod_rev >= ? AND mod_rev <= ? ORDER BY mod_rev, sub_rev"
        );
        let mut stmt = self.conn.prepare_cached(&sql)?;
        let rows = stmt.query_map(values.as_slice(), |row| {
            Ok((row_to_kv(row)?, row.get::<_, bool>(6)?))
        })?;
        let mut events = Vec::new();
        for row in rows {
            let (kv, tombstone) = row?;
            let prev_kv = self.version_before(&kv.key, kv.mod_revision)?;
            events.push(if tombstone {
                Event {
                    r#type: EventType::Delete as i32,
                    kv: Some(KeyValue {
                        key: kv.key,
                        mod_revision: kv.mod_revision,
                        ..Default::default()
                    }),
                    prev_kv,
                }
            } else {
                Event {
                    r#type: EventType::Put as i32,
                    kv: Some(kv),
                    prev_kv,
                }
            });
        }
        Ok(events)
    }

    /// A CRC-32 over every stored version (tombstones included) up to
    /// `revision`, in revision order: equal on members that applied the
    /// same history and compactions.
    pub fn hash_versions(&self, revision: i64) -> Result<u32, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, mod_rev, sub_rev, create_rev, version, lease, tombstone, value FROM kv \
             WHERE mod_rev <= ?1 ORDER BY mod_rev, sub_rev",
        )?;
        let mut hasher = crc32fast::Hasher::new();
        let mut rows = stmt.query([revision])?;
        while let Some(row) = rows.next()? {
            hasher.update(&row.get::<_, Vec<u8>>(0)?);
            for column in 1..=6 {
                hasher.update(&row.get::<_, i64>(column)?.to_be_bytes());
            }
            hasher.update(&row.get::<_, Vec<u8>>(7)?);
        }
        Ok(hasher.finalize())
    }

    /// The live version of `key` just before `revision`, if it had one.
    fn version_before(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, StorageError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT key, create_rev, mod_rev, version, lease, value, tombstone FROM kv \
             WHERE key = ?1 AND mod_rev < ?2 ORDER BY mod_rev DESC LIMIT 1",
        )?;
        let found = stmt
            .query_row(params![key, revision], |row| {
                Ok((row_to_kv(row)?, row.get::<_, bool>(6)?))
            })
            .optional()?;
        Ok(found.and_then(|(kv, tombstone)| (!tombstone).then_some(kv)))
    }
}

impl KvRead for SqliteKv<'_> {
    fn revisions(&self) -> Result<RevisionState, BackendError> {
        let meta = Meta(self.conn);
        Ok(RevisionState {
            current: meta.i64(Meta::CURRENT_REVISION)?.unwrap_or(1),
            compacted: meta.i64(Meta::COMPACTED_REVISION)?.unwrap_or(0),
        })
    }

    fn range(
        &self,
        range: &KeyRange,
        at: Option<i64>,
        limit: Option<usize>,
        keys_only: bool,
    ) -> Result<Vec<KeyValue>, BackendError> {
        let value = if keys_only { "x''" } else { "kv.value" };
        let limit = limit.map_or(-1, |l| l as i64);
        let (sql, mut values) = match at {
            None => {
                let (cond, values) = key_condition("kv_live.key", range);
                let sql = format!(
                    "SELECT kv.key, kv.create_rev, kv.mod_rev, kv.version, kv.lease, {value} \
                     FROM kv_live JOIN kv ON kv.id = kv_live.row \
                     WHERE {cond} ORDER BY kv_live.key LIMIT ?"
                );
                (sql, values)
            }
            Some(_) => {
                // SQLite takes bare columns from the row that holds MAX().
                let (cond, values) = key_condition("kv.key", range);
                let sql = format!(
                    "SELECT kv.key, kv.create_rev, kv.mod_rev, kv.version, kv.lease, {value}, \
                     kv.tombstone, MAX(kv.mod_rev) FROM kv \
                     WHERE {cond} AND kv.mod_rev <= ? GROUP BY kv.key \
                     HAVING kv.tombstone = 0 ORDER BY kv.key LIMIT ?"
                );
                (sql, values)
            }
        };
        if let Some(rev) = &at {
            values.push(rev);
        }
        values.push(&limit);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        let rows = stmt
            .query_map(values.as_slice(), row_to_kv)
            .map_err(backend)?;
        rows.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn count(&self, range: &KeyRange, at: Option<i64>) -> Result<i64, BackendError> {
        let (sql, mut values) = match at {
            None => {
                let (cond, values) = key_condition("key", range);
                (format!("SELECT COUNT(*) FROM kv_live WHERE {cond}"), values)
            }
            Some(_) => {
                let (cond, values) = key_condition("key", range);
                let sql = format!(
                    "SELECT COUNT(*) FROM (SELECT tombstone, MAX(mod_rev) FROM kv \
                     WHERE {cond} AND mod_rev <= ? GROUP BY key HAVING tombstone = 0)"
                );
                (sql, values)
            }
        };
        if let Some(rev) = &at {
            values.push(rev);
        }
        let mut stmt = self.conn.prepare_cached(&sql).map_err(backend)?;
        stmt.query_row(values.as_slice(), |r| r.get(0))
            .map_err(backend)
    }

    fn lease_ttl(&self, lease: i64) -> Result<Option<i64>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT ttl FROM leases WHERE id = ?1")
            .map_err(backend)?;
        stmt.query_row([lease], |r| r.get(0))
            .optional()
            .map_err(backend)
    }

    fn lease_keys(&self, lease: i64) -> Result<Vec<Vec<u8>>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT key FROM lease_keys WHERE lease = ?1 ORDER BY key")
            .map_err(backend)?;
        let keys = stmt.query_map([lease], |r| r.get(0)).map_err(backend)?;
        keys.collect::<Result<Vec<_>, _>>().map_err(backend)
    }

    fn leases(&self) -> Result<Vec<(i64, i64)>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id, ttl FROM leases ORDER BY id")
            .map_err(backend)?;
        let leases = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(backend)?;
        leases.collect::<Result<Vec<_>, _>>().map_err(backend)
    }
}

impl KvWrite for SqliteKv<'_> {
    fn put(
        &mut self,
        kv: &KeyValue,
        prev: Option<&KeyValue>,
        sub: i64,
    ) -> Result<(), BackendError> {
        let prev_lease = prev.map_or(0, |p| p.lease);
        if prev_lease != kv.lease {
            self.detach(prev_lease, &kv.key)?;
            self.attach(kv.lease, &kv.key)?;
        }
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO kv (key, mod_rev, sub_rev, create_rev, version, lease, tombstone, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7)",
            )
            .map_err(backend)?;
        insert
            .execute(params![
                kv.key,
                kv.mod_revision,
                sub,
                kv.create_revision,
                kv.version,
                kv.lease,
                kv.value
            ])
            .map_err(backend)?;
        let row = self.conn.last_insert_rowid();
        let mut live = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO kv_live (key, row) VALUES (?1, ?2)")
            .map_err(backend)?;
        live.execute(params![kv.key, row]).map_err(backend)?;
        Ok(())
    }

    fn tombstone(&mut self, prev: &KeyValue, rev: i64, sub: i64) -> Result<(), BackendError> {
        let key = prev.key.as_slice();
        self.detach(prev.lease, key)?;
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO kv (key, mod_rev, sub_rev, create_rev, version, lease, tombstone, value) \
                 VALUES (?1, ?2, ?3, 0, 0, 0, 1, x'')",
            )
            .map_err(backend)?;
        insert.execute(params![key, rev, sub]).map_err(backend)?;
        let mut live = self
            .conn
            .prepare_cached("DELETE FROM kv_live WHERE key = ?1")
            .map_err(backend)?;
        live.execute([key]).map_err(backend)?;
        Ok(())
    }

    fn set_current_revision(&mut self, rev: i64) -> Result<(), BackendError> {
        Ok(Meta(self.conn).set_i64(Meta::CURRENT_REVISION, rev)?)
    }

    fn grant_lease(&mut self, lease: i64, ttl: i64) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO leases (id, ttl) VALUES (?1, ?2)")
            .map_err(backend)?;
        stmt.execute([lease, ttl]).map_err(backend)?;
        Ok(())
    }

    fn revoke_lease(&mut self, lease: i64) -> Result<(), BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM leases WHERE id = ?1")
            .map_err(backend)?;
        stmt.execute([lease]).map_err(backend)?;
        let mut keys = self
            .conn
            .prepare_cached("DELETE FROM lease_keys WHERE lease = ?1")
            .map_err(backend)?;
        keys.execute([lease]).map_err(backend)?;
        Ok(())
    }

    fn compact(&mut self, rev: i64) -> Result<(), BackendError> {
        // A version goes when a newer one at or below `rev` hides it, or when
        // it is a tombstone at or below `rev`: no read at `rev` or later can
        // reach either.
        self.conn
            .execute(
                "DELETE FROM kv WHERE mod_rev <= ?1 AND (tombstone = 1 OR EXISTS ( \
                     SELECT 1 FROM kv AS newer WHERE newer.key = kv.key \
                     AND newer.mod_rev > kv.mod_rev AND newer.mod_rev <= ?1))",
                [rev],
            )
            .map_err(backend)?;
        Ok(Meta(self.conn).set_i64(Meta::COMPACTED_REVISION, rev)?)
    }
}

#[cfg(test)]
mod tests {
    //! The SQLite engine must agree with the in-memory reference on every
    //! read after the same writes.

    use super::*;
    use crate::mvcc::{self, MemoryBackend};
    use crate::proto::etcdserverpb::{
        CompactionRequest, DeleteRangeRequest, PutRequest, RangeRequest,
    };

    fn open() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(super::super::schema::SCHEMA).unwrap();
        conn
    }

    fn apply_both(sqlite: &Connection, memory: &mut MemoryBackend, step: usize) {
        let key = format!("k{}", step % 7).into_bytes();
        let mut kv = SqliteKv::new(sqlite);
        match step % 5 {
            0..=2 => {
                let req = PutRequest {
                    key,
                    value: format!("v{step}").into_bytes(),
                    ..Default::default()
                };
                assert_eq!(
                    mvcc::apply_put(&mut kv, &req),
                    mvcc::apply_put(memory, &req)
                );
            }
            3 => {
                let req = DeleteRangeRequest {
                    key,
                    range_end: b"k5".to_vec(),
                    prev_kv: true,
                };
                assert_eq!(
                    mvcc::apply_delete_range(&mut kv, &req),
                    mvcc::apply_delete_range(memory, &req)
                );
            }
            _ => {
                let revision = memory.revisions().unwrap().current - 3;
                let req = CompactionRequest {
                    revision,
                    physical: true,
                };
                assert_eq!(
                    mvcc::apply_compaction(&mut kv, &req),
                    mvcc::apply_compaction(memory, &req)
                );
            }
        }
    }

    #[test]
    fn sqlite_matches_the_reference_backend() {
        let sqlite = open();
        let mut memory = MemoryBackend::default();
        for step in 0..60 {
            apply_both(&sqlite, &mut memory, step);
            let current = memory.revisions().unwrap().current;
            for revision in [0, current - 1, current - 2, 1] {
                let req = RangeRequest {
                    key: b"k".to_vec(),
                    range_end: b"\0".to_vec(),
                    revision,
                    ..Default::default()
                };
                assert_eq!(
                    mvcc::range(&SqliteKv::new(&sqlite), &req),
                    mvcc::range(&memory, &req),
                    "step {step}, revision {revision}"
                );
            }
        }
    }
}
