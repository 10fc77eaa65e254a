//! The member's one SQLite database: schema, connections and typed access.
//!
//! One file (`member/cetera.db`, WAL mode) holds the Raft log, vote and
//! purge state, and the MVCC revision table and the v2 keyspace's tables
//! together with the applied log id and membership, so a state change and the log position it reflects
//! always commit in the same transaction. Beside it, in memory, the key
//! index ([`KeyIndex`]) that finds a key's versions in the revision table;
//! it is rebuilt from the table when the database opens.
//!
//! All writes go through one writer connection (one thread, FIFO), which
//! serialises the log writer and the state machine without lock
//! contention. Its commits are not fsynced (`synchronous = NORMAL`): what
//! must be on disk is made so by [`WalFile::sync`] (the Raft log, off the
//! writer's thread, so applies and appends go on while the disk syncs) or
//! by [`durably`] (the rare transaction that must be durable by itself).
//! Reads use a small pool of reader connections (a thread
//! each) that see the last committed state. Reads of a row or two
//! ([`Db::read_small`]) run on the caller's thread instead, from a second
//! pool: handing them to a reader thread and back cost more CPU than the
//! read itself. This module must never interpret Raft entries or
//! etcd requests: it stores bytes and rows, the callers give them meaning.

mod auth;
mod key_index;
mod kv;
mod meta;
mod schema;
mod v2;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use auth::SqliteAuth;
pub use key_index::{KeyIndex, SharedIndex};
pub use kv::{RevisionCache, SqliteKv, load_index};
pub use meta::Meta;
pub(crate) use schema::SCHEMA;
use tokio_rusqlite::rusqlite;
pub use v2::SqliteV2;

/// How many reader connections serve concurrent reads: one per core (reads
/// of cached pages are CPU-bound; each connection also holds its own page
/// cache, so more than the cores only costs memory), at least two so one
/// long scan never holds every read up.
fn reader_count() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 8))
}

/// A storage failure. Every variant ends the operation; none is retried
/// silently.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database connection closed")]
    Closed,
    #[error("database {path} is corrupt: {detail}")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "database {path} was written by a newer cetera (schema {found}, this build knows {known})"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        known: i64,
    },
    #[error("decoding stored {what}: {detail}")]
    Decode { what: &'static str, detail: String },
    #[error("keyspace: {0}")]
    Keyspace(#[from] crate::mvcc::BackendError),
    #[error("starting a storage thread: {0}")]
    Thread(std::io::Error),
}

impl From<tokio_rusqlite::Error<StorageError>> for StorageError {
    fn from(e: tokio_rusqlite::Error<StorageError>) -> Self {
        match e {
            tokio_rusqlite::Error::Error(e) => e,
            tokio_rusqlite::Error::Close((_, e)) => StorageError::Sqlite(e),
            _ => StorageError::Closed,
        }
    }
}

/// Runs `f` on the writer connection with every commit fsynced, for a
/// transaction that must be on disk when it returns and that no later
/// [`WalFile::sync`] covers (the member's identity, an installed snapshot).
pub fn durably<R>(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&mut rusqlite::Connection) -> Result<R, StorageError>,
) -> Result<R, StorageError> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    let result = f(conn);
    // Back to the writer's usual setting even when `f` failed, whose error
    // is the one worth reporting.
    let restored = conn.pragma_update(None, "synchronous", "NORMAL");
    let value = result?;
    restored?;
    Ok(value)
}

/// The database's write-ahead log, where every commit lands first.
#[derive(Debug, Clone)]
pub struct WalFile {
    path: PathBuf,
}

impl WalFile {
    /// A log at `path`, for tests of its users.
    #[cfg(test)]
    pub(crate) fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// Makes every transaction committed so far durable: one `fdatasync`
    /// of the log, which holds them (a checkpoint that moved frames into
    /// the database file synced that file first). Blocking: call it from a
    /// thread of its own, never from an async worker.
    pub fn sync(&self) -> std::io::Result<()> {
        match std::fs::File::open(&self.path) {
            Ok(wal) => wal.sync_data(),
            // SQLite removes the log only after closing the last connection
            // with every frame checkpointed into the database file, which it
            // synced first: nothing committed is left to sync.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// The open database: one writer and a pool of readers.
#[derive(Clone)]
pub struct Db {
    writer: tokio_rusqlite::Connection,
    readers: std::sync::Arc<[tokio_rusqlite::Connection]>,
    next_reader: std::sync::Arc<AtomicUsize>,
    /// Reader connections that point reads use on the calling thread.
    inline_readers: std::sync::Arc<std::sync::Mutex<Vec<rusqlite::Connection>>>,
    key_index: SharedIndex,
    path: PathBuf,
    recent_size: std::sync::Arc<RecentSize>,
}

/// How stale [`Db::recent_size_on_disk`] may be.
const SIZE_STALENESS: std::time::Duration = std::time::Duration::from_millis(100);

/// The database's size on disk as last measured, and when.
#[derive(Default)]
struct RecentSize {
    measured: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

impl Db {
    /// Opens (creating if needed) the database at `path`, checks that it is
    /// intact and ours, and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Db, StorageError> {
        let owned = path.to_path_buf();
        let writer = tokio_rusqlite::Connection::open(path).await?;
        let started = std::time::Instant::now();
        let index = writer
            .call(move |conn| {
                schema::prepare_writer(conn, &owned)?;
                load_index(conn)
            })
            .await?;
        tracing::info!(
            versions = index.version_count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "loaded the key index"
        );
        let readers_wanted = reader_count();
        let mut readers = Vec::with_capacity(readers_wanted);
        for _ in 0..readers_wanted {
            let reader = tokio_rusqlite::Connection::open(path).await?;
            reader.call(schema::prepare_reader).await?;
            readers.push(reader);
        }
        // One per async worker thread at most is ever in use at once.
        let mut inline_readers = Vec::with_capacity(readers_wanted);
        for _ in 0..readers_wanted {
            let mut conn = rusqlite::Connection::open(path)?;
            schema::prepare_reader(&mut conn)?;
            inline_readers.push(conn);
        }
        Ok(Db {
            writer,
            readers: readers.into(),
            next_reader: Default::default(),
            inline_readers: std::sync::Arc::new(std::sync::Mutex::new(inline_readers)),
            key_index: SharedIndex::new(index),
            path: path.to_path_buf(),
            recent_size: Default::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The write-ahead log beside the database file.
    pub fn wal_file(&self) -> WalFile {
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        WalFile {
            path: PathBuf::from(wal),
        }
    }

    /// The key index, for the state machine's writes.
    pub fn key_index(&self) -> &SharedIndex {
        &self.key_index
    }

    /// Runs `f` on the writer connection (inside whatever transaction `f`
    /// opens). Calls run one at a time, in the order they were made.
    pub async fn write<F, R>(&self, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&mut rusqlite::Connection) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        Ok(self.writer.call(f).await?)
    }

    /// Runs `f` inside one read transaction on a reader connection, so it
    /// sees a single committed state.
    pub async fn read<F, R>(&self, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let index = self.key_index.clone();
        let result = self.readers[i]
            .call(move |conn| in_read_transaction(conn, &index, f))
            .await?;
        Ok(result)
    }

    /// [`Db::read`] through the revision table.
    pub async fn read_kv<F, R>(&self, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&SqliteKv<'_>) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        let index = self.key_index.clone();
        self.read(move |tx| f(&SqliteKv::reader(tx, &index))).await
    }

    /// [`Db::read_small`] through the revision table.
    pub async fn read_small_kv<F, R>(&self, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&SqliteKv<'_>) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        let index = self.key_index.clone();
        self.read_small(move |tx| f(&SqliteKv::reader(tx, &index)))
            .await
    }

    /// Like [`Db::read`], but for reads that touch a few rows: runs `f` on
    /// the calling thread when a connection is free, saving two thread
    /// hand-offs (which cost more than such a read itself). Never use it
    /// for scans: the caller's async worker is blocked meanwhile.
    pub async fn read_small<F, R>(&self, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&rusqlite::Connection) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        let idle = self
            .inline_readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop();
        let Some(mut conn) = idle else {
            return self.read(f).await;
        };
        let result = in_read_transaction(&mut conn, &self.key_index, f);
        self.inline_readers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result
    }

    /// Runs `f` on a reader connection outside any transaction (for work
    /// that must ATTACH another database first).
    pub async fn read_raw<F, R>(&self, f: F) -> Result<R, StorageError>
    where
        F: FnOnce(&mut rusqlite::Connection) -> Result<R, StorageError> + Send + 'static,
        R: Send + 'static,
    {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        Ok(self.readers[i].call(f).await?)
    }

    /// Rewrites the database without free pages (Defragment). Writes wait
    /// for it; reads continue on the reader connections.
    pub async fn vacuum(&self) -> Result<(), StorageError> {
        let vacuumed = self
            .write(|conn| {
                conn.execute_batch("VACUUM")?;
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
                Ok(())
            })
            .await;
        self.forget_recent_size();
        vacuumed
    }

    /// Size of the database file plus its write-ahead log, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        len(&self.path) + len(&self.wal_file().path)
    }

    /// [`Db::size_on_disk`] as measured at most [`SIZE_STALENESS`] ago: the
    /// quota check asks before every write, and measuring (two `stat`
    /// calls) cost a twentieth of a busy leader's CPU.
    pub fn recent_size_on_disk(&self) -> u64 {
        let mut measured = self
            .recent_size
            .measured
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match *measured {
            Some((at, size)) if at.elapsed() < SIZE_STALENESS => size,
            _ => {
                let size = self.size_on_disk();
                *measured = Some((std::time::Instant::now(), size));
                size
            }
        }
    }

    /// Forgets the last measured size (the file shrank).
    fn forget_recent_size(&self) {
        *self
            .recent_size
            .measured
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// Bytes of the database file that hold data (not free pages).
    pub async fn size_in_use(&self) -> Result<u64, StorageError> {
        self.read(|tx| {
            let pages: i64 = tx.query_row("PRAGMA page_count", [], |r| r.get(0))?;
            let free: i64 = tx.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
            let size: i64 = tx.query_row("PRAGMA page_size", [], |r| r.get(0))?;
            Ok(((pages - free).max(0) * size) as u64)
        })
        .await
    }
}

/// Runs `f` between `BEGIN` and `COMMIT`, inside the key index's read
/// gate. Both are cached statements: rusqlite's `transaction()` parses them
/// anew on every call, which was a twentieth of a serializable read's CPU.
fn in_read_transaction<R>(
    conn: &mut rusqlite::Connection,
    index: &SharedIndex,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R, StorageError>,
) -> Result<R, StorageError> {
    let _gate = index.enter_read();
    conn.prepare_cached("BEGIN")?.execute([])?;
    let result = f(conn);
    // Ends the snapshot whatever `f` returned; a read has nothing to undo,
    // so COMMIT and ROLLBACK are the same here.
    let ended = conn
        .prepare_cached("COMMIT")
        .and_then(|mut commit| commit.execute([]));
    if ended.is_err() {
        // Never leave the reader inside a transaction: its next BEGIN
        // would fail.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let r = result?;
    ended?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_commits_without_fsync_except_durably() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        let synchronous = |conn: &rusqlite::Connection| -> Result<i64, StorageError> {
            Ok(conn.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
        };
        let (before, during, after) = db
            .write(move |conn| {
                let before = synchronous(conn)?;
                let during = durably(conn, |conn| synchronous(conn))?;
                Ok((before, during, synchronous(conn)?))
            })
            .await
            .unwrap();
        // SQLite's values: 1 is NORMAL, 2 is FULL.
        assert_eq!((before, during, after), (1, 2, 1));
        // What the writer committed is made durable through its log file.
        db.write(|conn| Meta(conn).set_i64("probe", 1))
            .await
            .unwrap();
        db.wal_file().sync().unwrap();
    }

    #[test]
    fn a_log_sqlite_removed_leaves_nothing_to_sync() {
        let dir = tempfile::tempdir().unwrap();
        let gone = WalFile::at(dir.path().join("cetera.db-wal"));
        gone.sync().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        assert!(WalFile::at(not_a_dir.join("cetera.db-wal")).sync().is_err());
    }

    #[test]
    fn a_failed_read_still_ends_its_transaction() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        let failed: Result<(), _> = in_read_transaction(&mut conn, &SharedIndex::default(), |c| {
            c.query_row("SELECT nope FROM t", [], |_| Ok(()))?;
            Ok(())
        });
        assert!(matches!(failed, Err(StorageError::Sqlite(_))));
        assert!(conn.is_autocommit(), "the failed read left BEGIN open");
        let v: i64 = in_read_transaction(&mut conn, &SharedIndex::default(), |c| {
            assert!(!c.is_autocommit(), "reads run inside a transaction");
            Ok(c.query_row("SELECT v FROM t", [], |r| r.get(0))?)
        })
        .unwrap();
        assert_eq!(v, 7);
        assert!(conn.is_autocommit());
    }

    async fn db_with_one_row() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        db.write(|conn| Meta(conn).set_i64("probe", 1))
            .await
            .unwrap();
        (dir, db)
    }

    fn probe(tx: &rusqlite::Connection) -> Result<Option<i64>, StorageError> {
        Meta(tx).i64("probe")
    }

    #[tokio::test]
    async fn the_recent_size_follows_growth_within_its_staleness_and_a_vacuum_at_once() {
        let (_dir, db) = db_with_one_row().await;
        let grow = |rows: i64| {
            move |conn: &mut rusqlite::Connection| {
                conn.execute_batch("CREATE TABLE IF NOT EXISTS filler (b BLOB)")?;
                for _ in 0..rows {
                    conn.execute("INSERT INTO filler VALUES (zeroblob(4096))", [])?;
                }
                Ok(())
            }
        };
        let before = db.recent_size_on_disk();
        db.write(grow(200)).await.unwrap();
        assert!(db.size_on_disk() > before + 500_000);
        tokio::time::sleep(SIZE_STALENESS).await;
        let grown = db.recent_size_on_disk();
        assert_eq!(grown, db.size_on_disk());

        db.write(|conn| Ok(conn.execute_batch("DROP TABLE filler")?))
            .await
            .unwrap();
        db.vacuum().await.unwrap();
        let shrunk = db.recent_size_on_disk();
        assert!(
            shrunk < grown / 2,
            "{shrunk} after a vacuum, {grown} before"
        );
    }

    #[tokio::test]
    async fn small_reads_see_the_last_commit_on_the_calling_thread() {
        let (_dir, db) = db_with_one_row().await;
        let caller = std::thread::current().id();
        let (value, thread) = db
            .read_small(|tx| Ok((probe(tx)?, std::thread::current().id())))
            .await
            .unwrap();
        assert_eq!((value, thread), (Some(1), caller));
        db.write(|conn| Meta(conn).set_i64("probe", 2))
            .await
            .unwrap();
        assert_eq!(db.read_small(probe).await.unwrap(), Some(2));
        let idle = db.inline_readers.lock().unwrap().len();
        assert_eq!(idle, reader_count(), "a connection was not given back");
    }

    #[tokio::test]
    async fn small_reads_go_to_a_reader_thread_when_no_connection_is_idle() {
        let (_dir, db) = db_with_one_row().await;
        let taken = std::mem::take(&mut *db.inline_readers.lock().unwrap());
        let caller = std::thread::current().id();
        let (value, thread) = db
            .read_small(|tx| Ok((probe(tx)?, std::thread::current().id())))
            .await
            .unwrap();
        assert_eq!(value, Some(1));
        assert_ne!(thread, caller);
        drop(taken);
    }

    async fn kv_at(db: &Db, key: &'static [u8], at: Option<i64>) -> Vec<crate::mvcc::KeyValue> {
        db.read_kv(move |kv| {
            Ok(crate::mvcc::KvRead::range(
                kv,
                &crate::mvcc::KeyRange::Single(key.to_vec()),
                at,
                None,
                false,
            )?)
        })
        .await
        .unwrap()
    }

    async fn put(db: &Db, key: &'static [u8], value: &'static [u8]) {
        let keys = db.key_index().clone();
        db.write(move |conn| {
            let tx = conn.transaction()?;
            let req = crate::proto::etcdserverpb::PutRequest {
                key: key.to_vec(),
                value: value.to_vec(),
                ..Default::default()
            };
            crate::mvcc::apply_put(&mut SqliteKv::writer(&tx, &keys), &req).map_err(|e| {
                StorageError::Decode {
                    what: "put",
                    detail: e.to_string(),
                }
            })?;
            keys.publish(|| tx.commit())?;
            Ok(())
        })
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn the_key_index_is_rebuilt_when_the_database_opens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cetera.db");
        let db = Db::open(&path).await.unwrap();
        put(&db, b"a", b"1").await;
        put(&db, b"a", b"2").await;
        put(&db, b"b", b"3").await;
        let built = db.key_index().read().clone();
        drop(db);
        let db = Db::open(&path).await.unwrap();
        assert_eq!(*db.key_index().read(), built);
        assert_eq!(kv_at(&db, b"a", None).await[0].value, b"2");
        assert_eq!(kv_at(&db, b"a", Some(2)).await[0].value, b"1");
    }

    #[tokio::test]
    async fn a_schema_3_database_keeps_its_keys_and_loses_the_tables_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cetera.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE kv (id INTEGER PRIMARY KEY, key BLOB NOT NULL, \
                    mod_rev INTEGER NOT NULL, sub_rev INTEGER NOT NULL, \
                    create_rev INTEGER NOT NULL, version INTEGER NOT NULL, \
                    lease INTEGER NOT NULL, tombstone INTEGER NOT NULL, value BLOB NOT NULL);
                 CREATE UNIQUE INDEX kv_by_key ON kv (key, mod_rev);
                 CREATE TABLE kv_live (key BLOB PRIMARY KEY, row INTEGER NOT NULL) WITHOUT ROWID;
                 CREATE TABLE meta (name TEXT PRIMARY KEY, value ANY NOT NULL) WITHOUT ROWID;
                 INSERT INTO kv VALUES (1, x'61', 2, 0, 2, 1, 0, 0, x'31');
                 INSERT INTO kv VALUES (2, x'61', 3, 0, 0, 0, 0, 1, x'');
                 INSERT INTO kv VALUES (3, x'62', 4, 0, 4, 1, 0, 0, x'32');
                 INSERT INTO kv_live VALUES (x'62', 3);
                 INSERT INTO meta VALUES ('mvcc.current_revision', 4);
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let db = Db::open(&path).await.unwrap();
        assert!(
            kv_at(&db, b"a", None).await.is_empty(),
            "a was deleted at 3"
        );
        assert_eq!(kv_at(&db, b"a", Some(2)).await[0].value, b"1");
        assert_eq!(kv_at(&db, b"b", None).await[0].value, b"2");
        let left: i64 = db
            .read(|tx| {
                Ok(tx.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name IN ('kv_by_key', 'kv_live')",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .unwrap();
        assert_eq!(left, 0);
    }

    #[tokio::test]
    async fn a_schema_4_database_loses_the_index_by_revision_and_keeps_rows_in_revision_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cetera.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE kv (id INTEGER PRIMARY KEY, key BLOB NOT NULL, \
                    mod_rev INTEGER NOT NULL, sub_rev INTEGER NOT NULL, \
                    create_rev INTEGER NOT NULL, version INTEGER NOT NULL, \
                    lease INTEGER NOT NULL, tombstone INTEGER NOT NULL, value BLOB NOT NULL);
                 CREATE INDEX kv_by_revision ON kv (mod_rev, sub_rev);
                 CREATE TABLE meta (name TEXT PRIMARY KEY, value ANY NOT NULL) WITHOUT ROWID;
                 INSERT INTO kv VALUES (7, x'63', 4, 1, 4, 1, 0, 0, x'33');
                 INSERT INTO kv VALUES (8, x'61', 2, 0, 2, 1, 0, 0, x'31');
                 INSERT INTO kv VALUES (9, x'62', 4, 0, 4, 1, 0, 0, x'32');
                 INSERT INTO meta VALUES ('mvcc.current_revision', 4);
                 PRAGMA user_version = 4;",
            )
            .unwrap();
        }
        let db = Db::open(&path).await.unwrap();
        let (rows, indexes) = db
            .read(|tx| {
                let mut stmt = tx.prepare("SELECT id, key FROM kv ORDER BY id")?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))?
                    .collect::<Result<Vec<_>, _>>()?;
                let indexes: i64 = tx.query_row(
                    "SELECT COUNT(*) FROM sqlite_master WHERE name = 'kv_by_revision'",
                    [],
                    |r| r.get(0),
                )?;
                Ok((rows, indexes))
            })
            .await
            .unwrap();
        assert_eq!(
            rows,
            [(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())],
            "renumbered in (mod_rev, sub_rev) order"
        );
        assert_eq!(indexes, 0);
        assert_eq!(kv_at(&db, b"c", None).await[0].value, b"3");
        let changed: Vec<Vec<u8>> = db
            .read_kv(|kv| {
                let all = crate::mvcc::KeyRange::Interval {
                    start: Vec::new(),
                    end: None,
                };
                kv.changes(&all, 3, 4)
            })
            .await
            .unwrap()
            .into_iter()
            .map(|event| event.kv.unwrap().key)
            .collect();
        assert_eq!(changed, [b"b".to_vec(), b"c".to_vec()]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_keeps_the_versions_it_can_see_through_a_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        put(&db, b"a", b"1").await;
        put(&db, b"a", b"2").await;
        let (started_tx, started) = std::sync::mpsc::channel();
        let (go, go_rx) = std::sync::mpsc::channel::<()>();
        let reader = db.clone();
        let read = tokio::spawn(async move {
            reader
                .read_kv(move |kv| {
                    // The snapshot starts here, before the compaction.
                    let revisions = crate::mvcc::KvRead::revisions(kv)?;
                    started_tx.send(()).unwrap();
                    go_rx.recv().unwrap();
                    let old = crate::mvcc::KvRead::range(
                        kv,
                        &crate::mvcc::KeyRange::Single(b"a".to_vec()),
                        Some(2),
                        None,
                        false,
                    )?;
                    Ok((revisions.compacted, old))
                })
                .await
        });
        tokio::task::spawn_blocking(move || started.recv().unwrap())
            .await
            .unwrap();
        let keys = db.key_index().clone();
        db.write(move |conn| {
            let tx = conn.transaction()?;
            crate::mvcc::KvWrite::compact(&mut SqliteKv::writer(&tx, &keys), 3)?;
            keys.publish(|| tx.commit())?;
            Ok(())
        })
        .await
        .unwrap();
        go.send(()).unwrap();
        let (compacted, old) = read.await.unwrap().unwrap();
        assert_eq!(compacted, 0);
        assert_eq!(old.len(), 1, "the read lost the version it could see");
        assert_eq!(old[0].value, b"1");
        put(&db, b"b", b"3").await;
        assert_eq!(
            db.key_index().read().version_count(),
            2,
            "the next commit after the read drops the compacted version"
        );
    }
}
