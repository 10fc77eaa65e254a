//! The MVCC revision table in SQLite: [`KvRead`] and [`KvWrite`] over one
//! connection or transaction, with the in-memory [`KeyIndex`] that finds
//! its rows.
//!
//! The `kv` table only has rows appended (in revision order) and compacted
//! rows deleted; which row is a key's version at a revision is the index's
//! business. Every write here changes table and index together.

use std::cell::Cell;

use tokio_rusqlite::rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use super::key_index::{IndexedVersion, KeyIndex, RowId, SharedIndex, Stamp};
use super::{Meta, StorageError};
use crate::mvcc::{BackendError, KeyRange, KeyValue, KvRead, KvWrite, RevisionState};
use crate::proto::mvccpb::Event;
use crate::proto::mvccpb::event::EventType;

/// The revision table seen through one connection; the caller owns the
/// transaction boundaries.
pub struct SqliteKv<'c> {
    conn: &'c Connection,
    index: &'c SharedIndex,
    role: Role<'c>,
    /// Whether write events must carry the values of the versions they
    /// replace (see [`KvWrite::events_need_prev_values`]).
    prev_values: bool,
}

/// What a latest read (`at == None`) means.
enum Role<'c> {
    /// The state machine inside its write transaction: the newest version,
    /// its own uncommitted writes included. `pushed` lists the versions
    /// this command added to the index, to take back if it is refused;
    /// `revisions`, if the transaction keeps its counters in memory, with
    /// what they were when this command began.
    Writer {
        pushed: Vec<(Vec<u8>, i64)>,
        revisions: Option<(&'c RevisionCache, CachedRevisions)>,
    },
    /// A read transaction: the newest version at or below the revision its
    /// snapshot holds (the index may already know newer ones).
    Reader { current: Cell<Option<i64>> },
}

/// The revision counters of one write transaction, kept in memory between
/// its commands: read from `meta` once, and the current revision written
/// back once, by [`RevisionCache::save`] before the transaction commits.
/// Every put reads both counters and moves one; through `meta` that was
/// three statements per put.
#[derive(Debug, Default)]
pub struct RevisionCache(Cell<CachedRevisions>);

#[derive(Debug, Default, Clone, Copy)]
struct CachedRevisions {
    known: Option<RevisionState>,
    /// The current revision moved since it was last written to `meta`.
    unsaved: bool,
}

impl RevisionCache {
    /// Writes the current revision to `meta` if it moved: call it before
    /// the transaction that used this cache commits.
    pub fn save(&self, conn: &Connection) -> Result<(), StorageError> {
        let mut cached = self.0.get();
        if let (true, Some(known)) = (cached.unsaved, cached.known) {
            Meta(conn).set_i64(Meta::CURRENT_REVISION, known.current)?;
            cached.unsaved = false;
            self.0.set(cached);
        }
        Ok(())
    }
}

impl<'c> SqliteKv<'c> {
    /// The state machine's view, inside its write transaction; revisions
    /// are read from and written to `meta` as they are used.
    pub fn writer(conn: &'c Connection, index: &'c SharedIndex) -> Self {
        Self {
            conn,
            index,
            role: Role::Writer {
                pushed: Vec::new(),
                revisions: None,
            },
            prev_values: true,
        }
    }

    /// [`SqliteKv::writer`] for one command of a transaction that keeps
    /// its revision counters in `revisions` (saved before it commits).
    pub fn cached_writer(
        conn: &'c Connection,
        index: &'c SharedIndex,
        revisions: &'c RevisionCache,
    ) -> Self {
        Self {
            conn,
            index,
            role: Role::Writer {
                pushed: Vec::new(),
                revisions: Some((revisions, revisions.0.get())),
            },
            prev_values: true,
        }
    }

    /// This writer's events carry previous versions without their values,
    /// which nobody wants (no watcher asked for `prev_kv`): a put then
    /// reads no row.
    pub fn without_prev_values(mut self) -> Self {
        self.prev_values = false;
        self
    }

    /// A reader's view, inside a read transaction that holds the index's
    /// read gate (as [`Db::read`](super::Db::read) does).
    pub fn reader(conn: &'c Connection, index: &'c SharedIndex) -> Self {
        Self {
            conn,
            index,
            role: Role::Reader {
                current: Cell::new(None),
            },
            prev_values: true,
        }
    }

    /// The connection, for the other tables the same transaction reads.
    pub fn conn(&self) -> &'c Connection {
        self.conn
    }

    /// Takes back the index entries and revision moves of this command's
    /// writes (the caller rolls back their rows).
    pub fn undo(&mut self) {
        if let Role::Writer { pushed, revisions } = &mut self.role {
            let mut index = self.index.write();
            for (key, revision) in pushed.drain(..).rev() {
                index.pop(&key, revision);
            }
            if let Some((cache, at_start)) = revisions {
                cache.0.set(*at_start);
            }
        }
    }

    /// Whether this command changed the table or the revisions.
    pub fn has_written(&self) -> bool {
        match &self.role {
            Role::Writer { pushed, revisions } => {
                !pushed.is_empty()
                    || revisions.is_some_and(|(cache, at_start)| {
                        // Moved, not merely loaded from `meta`.
                        let now = cache.0.get();
                        now.unsaved && now.known != at_start.known
                    })
            }
            Role::Reader { .. } => false,
        }
    }

    /// The revisions kept in memory, if this writer keeps them there.
    fn revision_cache(&self) -> Option<&'c RevisionCache> {
        match &self.role {
            Role::Writer {
                revisions: Some((cache, _)),
                ..
            } => Some(*cache),
            _ => None,
        }
    }

    /// The newest revision a read at `at` may see.
    fn bound(&self, at: Option<i64>) -> Result<i64, BackendError> {
        if let Some(at) = at {
            return Ok(at);
        }
        match &self.role {
            Role::Writer { .. } => Ok(i64::MAX),
            Role::Reader { current } => match current.get() {
                Some(revision) => Ok(revision),
                None => Ok(self.revisions()?.current),
            },
        }
    }

    fn push(&mut self, key: &[u8], version: IndexedVersion) {
        self.index.write().push(key, version);
        if let Role::Writer { pushed, .. } = &mut self.role {
            pushed.push((key.to_vec(), version.mod_revision()));
        }
    }

    /// Writes come only from the state machine: a reader's view (a
    /// read-only txn runs through the write rules) must never change the
    /// shared index.
    fn ensure_writer(&self) -> Result<(), BackendError> {
        match self.role {
            Role::Writer { .. } => Ok(()),
            Role::Reader { .. } => Err(BackendError(
                "a read transaction tried to change the revision table".into(),
            )),
        }
    }

    fn insert_row(&self, kv: &KeyValue, sub: i64, tombstone: bool) -> Result<RowId, BackendError> {
        let row = self.index.next_row();
        let mut insert = self
            .conn
            .prepare_cached(
                "INSERT INTO kv (id, key, mod_rev, sub_rev, create_rev, version, lease, tombstone, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )
            .map_err(backend)?;
        insert
            .execute(params![
                row,
                kv.key,
                kv.mod_revision,
                sub,
                kv.create_revision,
                kv.version,
                kv.lease,
                tombstone,
                kv.value
            ])
            .map_err(backend)?;
        Ok(row)
    }

    /// The rows `versions` point at, in order.
    fn fetch(&self, versions: &[IndexedVersion]) -> Result<Vec<KeyValue>, BackendError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT key, create_rev, mod_rev, version, lease, value FROM kv WHERE id = ?1",
            )
            .map_err(backend)?;
        versions
            .iter()
            .map(|version| {
                let mut rows = stmt.query([version.row()]).map_err(backend)?;
                match rows.next().map_err(backend)? {
                    Some(row) => row_to_kv(row).map_err(backend),
                    None => Err(missing_row(version.row())),
                }
            })
            .collect()
    }

    fn fetch_one(&self, version: IndexedVersion) -> Result<KeyValue, BackendError> {
        let mut found = self.fetch(&[version])?;
        found.pop().ok_or_else(|| missing_row(version.row()))
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

/// The id of the first row of `revision` or later, if any. Rows are only
/// appended, in revision order, so ids ascend with (mod_rev, sub_rev): a
/// binary search over ids finds it in a few dozen primary-key seeks, and
/// the table needs no index by revision (which every put would write).
fn first_row_from(conn: &Connection, revision: i64) -> Result<Option<RowId>, StorageError> {
    let mut row_from =
        conn.prepare_cached("SELECT id, mod_rev FROM kv WHERE id >= ?1 ORDER BY id LIMIT 1")?;
    let mut first_row_from_id = |id: RowId| -> Result<Option<(RowId, i64)>, StorageError> {
        Ok(row_from
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    };
    let Some((first, first_revision)) = first_row_from_id(RowId::MIN)? else {
        return Ok(None);
    };
    if first_revision >= revision {
        return Ok(Some(first));
    }
    let last: RowId = conn.query_row("SELECT max(id) FROM kv", [], |r| r.get(0))?;
    let at_or_after = |found: Option<(RowId, i64)>| found.is_some_and(|(_, r)| r >= revision);
    if !at_or_after(first_row_from_id(last)?) {
        return Ok(None);
    }
    // The row found from `below` is before `revision`, the one from `above`
    // is not; halve the ids between them.
    let (mut below, mut above) = (first, last);
    while above - below > 1 {
        let middle = below + (above - below) / 2;
        if at_or_after(first_row_from_id(middle)?) {
            above = middle;
        } else {
            below = middle;
        }
    }
    Ok(first_row_from_id(above)?.map(|(id, _)| id))
}

/// Builds the index of every version in the `kv` table (at start-up and
/// after a snapshot install).
pub fn load_index(conn: &Connection) -> Result<KeyIndex, StorageError> {
    let mut index = KeyIndex::default();
    let mut stmt = conn.prepare(
        "SELECT id, key, mod_rev, tombstone, create_rev, version, lease FROM kv ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        let key: Vec<u8> = row.get(1)?;
        let (id, mod_revision, tombstone) = (row.get(0)?, row.get(2)?, row.get(3)?);
        index.push(
            &key,
            if tombstone {
                IndexedVersion::tombstone(id, mod_revision)
            } else {
                IndexedVersion::live(
                    id,
                    Stamp {
                        mod_revision,
                        create_revision: row.get(4)?,
                        version: row.get(5)?,
                        lease: row.get(6)?,
                    },
                )
            },
        );
    }
    Ok(index)
}

fn missing_row(row: RowId) -> BackendError {
    BackendError(format!(
        "the key index names row {row} of the revision table, which is missing"
    ))
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

/// A live version as a keys-only read returns it.
fn without_value(key: Vec<u8>, stamp: Stamp) -> KeyValue {
    KeyValue {
        key,
        create_revision: stamp.create_revision,
        mod_revision: stamp.mod_revision,
        version: stamp.version,
        value: Vec::new(),
        lease: stamp.lease,
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
        // The rows between the two revisions' bounds, filtering keys as
        // etcd's watch catch-up does: the table has no index by key.
        let Some(first) = first_row_from(self.conn, from)? else {
            return Ok(Vec::new());
        };
        let past_last = match to.checked_add(1) {
            Some(after) => first_row_from(self.conn, after)?.unwrap_or(RowId::MAX),
            None => RowId::MAX,
        };
        let (cond, keys) = key_condition("key", range);
        let mut values: Vec<&dyn ToSql> = vec![&first, &past_last];
        values.extend(keys);
        let sql = format!(
            "SELECT key, create_rev, mod_rev, version, lease, value, tombstone FROM kv \
             WHERE id >= ? AND id < ? AND {cond} ORDER BY id"
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
             WHERE mod_rev <= ?1 ORDER BY id",
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
        let found = self.index.read().live_before(key, revision);
        Ok(found.map(|version| self.fetch_one(version)).transpose()?)
    }
}

impl KvRead for SqliteKv<'_> {
    fn revisions(&self) -> Result<RevisionState, BackendError> {
        let cache = self.revision_cache();
        if let Some(known) = cache.and_then(|c| c.0.get().known) {
            return Ok(known);
        }
        let meta = Meta(self.conn);
        let revisions = RevisionState {
            current: meta.i64(Meta::CURRENT_REVISION)?.unwrap_or(1),
            compacted: meta.i64(Meta::COMPACTED_REVISION)?.unwrap_or(0),
        };
        if let Some(cache) = cache {
            cache.0.set(CachedRevisions {
                known: Some(revisions),
                unsaved: false,
            });
        }
        if let Role::Reader { current } = &self.role {
            current.set(Some(revisions.current));
        }
        Ok(revisions)
    }

    fn range(
        &self,
        range: &KeyRange,
        at: Option<i64>,
        limit: Option<usize>,
        keys_only: bool,
    ) -> Result<Vec<KeyValue>, BackendError> {
        let bound = self.bound(at)?;
        if keys_only {
            // The index has everything but the values.
            let versions = self.index.read().keyed_range(range, bound, limit);
            return Ok(versions
                .into_iter()
                .map(|(key, version)| without_value(key, version.stamp()))
                .collect());
        }
        let versions = self.index.read().range(range, bound, limit);
        self.fetch(&versions)
    }

    fn count(&self, range: &KeyRange, at: Option<i64>) -> Result<i64, BackendError> {
        let bound = self.bound(at)?;
        Ok(self.index.read().count(range, bound))
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
        self.ensure_writer()?;
        let prev_lease = prev.map_or(0, |p| p.lease);
        if prev_lease != kv.lease {
            self.detach(prev_lease, &kv.key)?;
            self.attach(kv.lease, &kv.key)?;
        }
        let row = self.insert_row(kv, sub, false)?;
        let stamp = Stamp {
            mod_revision: kv.mod_revision,
            create_revision: kv.create_revision,
            version: kv.version,
            lease: kv.lease,
        };
        self.push(&kv.key, IndexedVersion::live(row, stamp));
        Ok(())
    }

    fn tombstone(&mut self, prev: &KeyValue, rev: i64, sub: i64) -> Result<(), BackendError> {
        self.ensure_writer()?;
        self.detach(prev.lease, &prev.key)?;
        let tombstone = KeyValue {
            key: prev.key.clone(),
            mod_revision: rev,
            ..Default::default()
        };
        let row = self.insert_row(&tombstone, sub, true)?;
        self.push(&prev.key, IndexedVersion::tombstone(row, rev));
        Ok(())
    }

    fn events_need_prev_values(&self) -> bool {
        self.prev_values
    }

    fn set_current_revision(&mut self, rev: i64) -> Result<(), BackendError> {
        self.ensure_writer()?;
        let Some(cache) = self.revision_cache() else {
            return Ok(Meta(self.conn).set_i64(Meta::CURRENT_REVISION, rev)?);
        };
        let compacted = self.revisions()?.compacted;
        cache.0.set(CachedRevisions {
            known: Some(RevisionState {
                current: rev,
                compacted,
            }),
            unsaved: true,
        });
        Ok(())
    }

    fn grant_lease(&mut self, lease: i64, ttl: i64) -> Result<(), BackendError> {
        self.ensure_writer()?;
        let mut stmt = self
            .conn
            .prepare_cached("INSERT INTO leases (id, ttl) VALUES (?1, ?2)")
            .map_err(backend)?;
        stmt.execute([lease, ttl]).map_err(backend)?;
        Ok(())
    }

    fn revoke_lease(&mut self, lease: i64) -> Result<(), BackendError> {
        self.ensure_writer()?;
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
        self.ensure_writer()?;
        // The index names the versions no read at `rev` or later can reach;
        // it forgets them itself when this transaction commits.
        let doomed = self.index.read().compacted_rows(rev);
        let mut delete = self
            .conn
            .prepare_cached("DELETE FROM kv WHERE id = ?1")
            .map_err(backend)?;
        for row in doomed {
            delete.execute([row]).map_err(backend)?;
        }
        self.index.defer_compaction(rev);
        if let Some(cache) = self.revision_cache() {
            let mut cached = cache.0.get();
            if let Some(known) = &mut cached.known {
                known.compacted = rev;
            }
            cache.0.set(cached);
        }
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

    #[test]
    fn the_first_row_of_a_revision_is_found_across_gaps_in_the_ids() {
        let conn = open();
        assert_eq!(first_row_from(&conn, 1).unwrap(), None, "empty table");
        // Compaction leaves gaps; a revision may span several rows.
        for (id, revision, sub) in [
            (3, 2, 0),
            (4, 2, 1),
            (10, 5, 0),
            (11, 6, 0),
            (12, 6, 1),
            (30, 9, 0),
        ] {
            conn.execute(
                "INSERT INTO kv VALUES (?1, x'61', ?2, ?3, 1, 1, 0, 0, x'')",
                params![id, revision, sub],
            )
            .unwrap();
        }
        for (revision, first) in [
            (i64::MIN, Some(3)),
            (0, Some(3)),
            (2, Some(3)),
            (3, Some(10)),
            (5, Some(10)),
            (6, Some(11)),
            (7, Some(30)),
            (9, Some(30)),
            (10, None),
            (i64::MAX, None),
        ] {
            assert_eq!(
                first_row_from(&conn, revision).unwrap(),
                first,
                "from {revision}"
            );
        }
    }

    fn put(key: &[u8], value: &str) -> PutRequest {
        PutRequest {
            key: key.to_vec(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    fn stamp(mod_revision: i64, create_revision: i64, version: i64) -> Stamp {
        Stamp {
            mod_revision,
            create_revision,
            version,
            lease: 0,
        }
    }

    fn apply_both(
        sqlite: &Connection,
        index: &SharedIndex,
        memory: &mut MemoryBackend,
        step: usize,
    ) {
        let key = format!("k{}", step % 7).into_bytes();
        let mut kv = SqliteKv::writer(sqlite, index);
        match step % 5 {
            0..=2 => {
                let req = put(&key, &format!("v{step}"));
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
        // What a commit does: publish the compaction it carried.
        index.publish(|| Ok::<_, ()>(())).unwrap();
    }

    #[test]
    fn sqlite_matches_the_reference_backend() {
        let sqlite = open();
        let index = SharedIndex::default();
        let mut memory = MemoryBackend::default();
        for step in 0..60 {
            apply_both(&sqlite, &index, &mut memory, step);
            let current = memory.revisions().unwrap().current;
            for revision in [0, current - 1, current - 2, 1] {
                let req = RangeRequest {
                    key: b"k".to_vec(),
                    range_end: b"\0".to_vec(),
                    revision,
                    ..Default::default()
                };
                assert_eq!(
                    mvcc::range(&SqliteKv::reader(&sqlite, &index), &req),
                    mvcc::range(&memory, &req),
                    "step {step}, revision {revision}"
                );
            }
            assert_eq!(
                *index.read(),
                load_index(&sqlite).unwrap(),
                "the index rebuilt from the table differs at step {step}"
            );
            let stored: i64 = sqlite
                .query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))
                .unwrap();
            assert_eq!(stored as usize, memory.stored_versions(), "step {step}");
        }
    }

    #[test]
    fn a_reader_never_sees_versions_newer_than_its_snapshot() {
        let sqlite = open();
        let index = SharedIndex::default();
        mvcc::apply_put(&mut SqliteKv::writer(&sqlite, &index), &put(b"a", "old")).unwrap();
        sqlite.execute_batch("BEGIN").unwrap();
        // The writer's next version is in the index before it commits.
        index
            .write()
            .push(b"a", IndexedVersion::live(99, stamp(3, 2, 2)));
        let reader = SqliteKv::reader(&sqlite, &index);
        let got = mvcc::range(
            &reader,
            &RangeRequest {
                key: b"a".to_vec(),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(got.kvs.len(), 1);
        assert_eq!(got.kvs[0].value, b"old");
        assert_eq!(
            reader
                .count(&KeyRange::Single(b"a".to_vec()), None)
                .unwrap(),
            1
        );
        sqlite.execute_batch("COMMIT").unwrap();
    }

    #[test]
    fn a_refused_command_takes_its_index_entries_back() {
        let sqlite = open();
        let index = SharedIndex::default();
        mvcc::apply_put(&mut SqliteKv::writer(&sqlite, &index), &put(b"a", "1")).unwrap();
        let before = index.read().clone();
        sqlite.execute_batch("SAVEPOINT command").unwrap();
        let mut kv = SqliteKv::writer(&sqlite, &index);
        mvcc::apply_put(&mut kv, &put(b"a", "2")).unwrap();
        mvcc::apply_put(&mut kv, &put(b"b", "2")).unwrap();
        kv.undo();
        sqlite
            .execute_batch("ROLLBACK TO command; RELEASE command")
            .unwrap();
        assert_eq!(*index.read(), before);
        assert_eq!(load_index(&sqlite).unwrap(), before);
    }

    #[test]
    fn cached_revisions_count_as_written_only_when_moved_and_undo_restores_them() {
        let sqlite = open();
        let index = SharedIndex::default();
        let cache = RevisionCache::default();
        mvcc::apply_put(&mut SqliteKv::writer(&sqlite, &index), &put(b"a", "1")).unwrap();

        sqlite.execute_batch("SAVEPOINT command").unwrap();
        let mut kv = SqliteKv::cached_writer(&sqlite, &index, &cache);
        assert_eq!(kv.revisions().unwrap().current, 2);
        assert!(!kv.has_written(), "loading the counters is no write");
        mvcc::apply_put(&mut kv, &put(b"b", "1")).unwrap();
        assert!(kv.has_written());
        assert_eq!(kv.revisions().unwrap().current, 3);
        kv.undo();
        sqlite
            .execute_batch("ROLLBACK TO command; RELEASE command")
            .unwrap();
        let kv = SqliteKv::cached_writer(&sqlite, &index, &cache);
        assert_eq!(
            kv.revisions().unwrap().current,
            2,
            "undo put the counter back"
        );
        assert!(!kv.has_written());

        mvcc::apply_put(
            &mut SqliteKv::cached_writer(&sqlite, &index, &cache),
            &put(b"c", "1"),
        )
        .unwrap();
        let on_disk = || Meta(&sqlite).i64(Meta::CURRENT_REVISION).unwrap();
        assert_eq!(on_disk(), Some(2), "written back only by save");
        cache.save(&sqlite).unwrap();
        assert_eq!(on_disk(), Some(3));
    }

    #[test]
    fn a_row_the_index_names_but_the_table_lacks_is_an_error() {
        let sqlite = open();
        let index = SharedIndex::default();
        index
            .write()
            .push(b"a", IndexedVersion::live(7, stamp(1, 1, 1)));
        let err = SqliteKv::reader(&sqlite, &index)
            .range(&KeyRange::Single(b"a".to_vec()), Some(1), None, false)
            .unwrap_err();
        assert!(err.0.contains("row 7"), "{err}");
    }

    #[test]
    fn a_compacted_row_id_is_never_given_to_a_new_row() {
        // A compaction whose removal from the index waits for a read must
        // not let a later compaction delete a new row under a reused id.
        let sqlite = open();
        let index = SharedIndex::default();
        let mut kv = SqliteKv::writer(&sqlite, &index);
        mvcc::apply_put(&mut kv, &put(b"a", "1")).unwrap();
        let delete = DeleteRangeRequest {
            key: b"a".to_vec(),
            ..Default::default()
        };
        mvcc::apply_delete_range(&mut kv, &delete).unwrap();
        let reading = index.enter_read();
        let compact = |kv: &mut SqliteKv<'_>, revision| {
            let req = CompactionRequest {
                revision,
                physical: true,
            };
            mvcc::apply_compaction(kv, &req).unwrap();
        };
        compact(&mut kv, 3);
        std::thread::scope(|s| {
            // Not published: another thread holds a read open.
            s.spawn(|| index.publish(|| Ok::<_, ()>(())).unwrap());
        });
        mvcc::apply_put(&mut kv, &put(b"b", "2")).unwrap();
        compact(&mut kv, 4);
        drop(reading);
        let got = kv
            .range(&KeyRange::Single(b"b".to_vec()), None, None, false)
            .unwrap();
        assert_eq!(got.len(), 1, "the new key's row was deleted");
        assert_eq!(got[0].value, b"2");
    }

    /// A seeded random history of every kind of write, each applied to
    /// both engines (refused ones rolled back as the state machine does),
    /// with reads at every readable revision compared after each step and
    /// the index rebuilt from the table now and then, as a restart does.
    #[test]
    fn random_histories_read_the_same_as_the_reference() {
        use crate::proto::etcdserverpb::compare::{CompareResult, CompareTarget, TargetUnion};
        use crate::proto::etcdserverpb::request_op::Request;
        use crate::proto::etcdserverpb::{Compare, RequestOp, TxnRequest};
        use rand::{Rng, SeedableRng};

        for seed in 0..8u64 {
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            // Odd seeds keep the revisions in memory across all steps, as
            // one apply transaction does across its commands.
            let cached = seed % 2 == 1;
            // The upper half leaves previous values out of events, as the
            // state machine does while nobody watches with `prev_kv`.
            let lean = seed >= 4;
            let revision_cache = RevisionCache::default();
            let sqlite = open();
            let mut index = SharedIndex::default();
            let mut memory = MemoryBackend::default();
            if lean {
                memory = memory.without_prev_values();
            }
            let key = |rng: &mut rand::rngs::SmallRng| {
                format!("k{}", rng.random_range(0..12)).into_bytes()
            };
            for step in 0..300 {
                let revisions = memory.revisions().unwrap();
                sqlite.execute_batch("SAVEPOINT command").unwrap();
                let mut kv = if cached {
                    SqliteKv::cached_writer(&sqlite, &index, &revision_cache)
                } else {
                    SqliteKv::writer(&sqlite, &index)
                };
                if lean {
                    kv = kv.without_prev_values();
                }
                let (ours, theirs) = match rng.random_range(0..10) {
                    0..=3 => {
                        let mut req = put(&key(&mut rng), &format!("v{step}"));
                        req.lease = if rng.random_bool(0.3) { 7 } else { 0 };
                        req.prev_kv = rng.random_bool(0.5);
                        req.ignore_value = rng.random_bool(0.1);
                        (
                            format!("{:?}", mvcc::apply_put(&mut kv, &req)),
                            format!("{:?}", mvcc::apply_put(&mut memory, &req)),
                        )
                    }
                    4 => {
                        let (a, b) = (key(&mut rng), key(&mut rng));
                        let req = DeleteRangeRequest {
                            key: a.clone().min(b.clone()),
                            range_end: if rng.random_bool(0.5) {
                                Vec::new()
                            } else {
                                a.max(b)
                            },
                            prev_kv: rng.random_bool(0.5),
                        };
                        (
                            format!("{:?}", mvcc::apply_delete_range(&mut kv, &req)),
                            format!("{:?}", mvcc::apply_delete_range(&mut memory, &req)),
                        )
                    }
                    5 | 6 => {
                        let (a, b) = (key(&mut rng), key(&mut rng));
                        let op = |request| RequestOp {
                            request: Some(request),
                        };
                        let req = TxnRequest {
                            compare: vec![Compare {
                                result: CompareResult::Equal as i32,
                                target: CompareTarget::Version as i32,
                                key: a.clone(),
                                target_union: Some(TargetUnion::Version(rng.random_range(0..3))),
                                ..Default::default()
                            }],
                            success: vec![
                                op(Request::RequestPut(put(&a, &format!("t{step}")))),
                                op(Request::RequestDeleteRange(DeleteRangeRequest {
                                    key: b.clone(),
                                    ..Default::default()
                                })),
                            ],
                            failure: vec![op(Request::RequestPut(put(&b, &format!("f{step}"))))],
                        };
                        (
                            format!("{:?}", mvcc::apply_txn(&mut kv, &req)),
                            format!("{:?}", mvcc::apply_txn(&mut memory, &req)),
                        )
                    }
                    7 => {
                        let revision =
                            rng.random_range(revisions.compacted.max(1)..=revisions.current + 1);
                        let req = CompactionRequest {
                            revision,
                            physical: true,
                        };
                        (
                            format!("{:?}", mvcc::apply_compaction(&mut kv, &req)),
                            format!("{:?}", mvcc::apply_compaction(&mut memory, &req)),
                        )
                    }
                    8 => (
                        format!("{:?}", mvcc::apply_lease_grant(&mut kv, 7, 60)),
                        format!("{:?}", mvcc::apply_lease_grant(&mut memory, 7, 60)),
                    ),
                    _ => (
                        format!("{:?}", mvcc::apply_lease_revoke(&mut kv, 7)),
                        format!("{:?}", mvcc::apply_lease_revoke(&mut memory, 7)),
                    ),
                };
                assert_eq!(ours, theirs, "seed {seed} step {step}");
                if ours.starts_with("Err") {
                    kv.undo();
                    sqlite.execute_batch("ROLLBACK TO command").unwrap();
                }
                sqlite.execute_batch("RELEASE command").unwrap();
                revision_cache.save(&sqlite).unwrap();
                index.publish(|| Ok::<_, ()>(())).unwrap();
                if step % 50 == 49 {
                    index = SharedIndex::new(load_index(&sqlite).unwrap());
                }

                let revisions = memory.revisions().unwrap();
                let reader = SqliteKv::reader(&sqlite, &index);
                for revision in revisions.compacted.max(1)..=revisions.current {
                    for (range_end, limit, keys_only, count_only) in [
                        (b"\0".to_vec(), 0, false, false),
                        (b"k5".to_vec(), 2, true, false),
                        (b"\0".to_vec(), 0, false, true),
                    ] {
                        let req = RangeRequest {
                            key: b"k".to_vec(),
                            range_end,
                            revision,
                            limit,
                            keys_only,
                            count_only,
                            ..Default::default()
                        };
                        assert_eq!(
                            mvcc::range(&reader, &req),
                            mvcc::range(&memory, &req),
                            "seed {seed} step {step} revision {revision}"
                        );
                    }
                }
            }
            let stored: i64 = sqlite
                .query_row("SELECT COUNT(*) FROM kv", [], |r| r.get(0))
                .unwrap();
            assert_eq!(stored as usize, memory.stored_versions(), "seed {seed}");
        }
    }
}
