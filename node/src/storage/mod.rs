//! The member's one SQLite database: schema, connections and typed access.
//!
//! One file (`member/cetera.db`, WAL mode) holds the Raft log, vote and
//! purge state, and the MVCC revision table and the v2 keyspace's tables
//! together with the applied log id and membership, so a state change and the log position it reflects
//! always commit in the same transaction.
//!
//! All writes go through one writer connection (one thread, FIFO), which
//! serialises the log writer and the state machine without lock
//! contention; reads use a small pool of reader connections (a thread
//! each) that see the last committed state. Reads of a row or two
//! ([`Db::read_small`]) run on the caller's thread instead, from a second
//! pool: handing them to a reader thread and back cost more CPU than the
//! read itself. This module must never interpret Raft entries or
//! etcd requests: it stores bytes and rows, the callers give them meaning.

mod auth;
mod kv;
mod meta;
mod schema;
mod v2;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

pub use auth::SqliteAuth;
pub use kv::SqliteKv;
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

/// The open database: one writer and a pool of readers.
#[derive(Clone)]
pub struct Db {
    writer: tokio_rusqlite::Connection,
    readers: std::sync::Arc<[tokio_rusqlite::Connection]>,
    next_reader: std::sync::Arc<AtomicUsize>,
    /// Reader connections that point reads use on the calling thread.
    inline_readers: std::sync::Arc<std::sync::Mutex<Vec<rusqlite::Connection>>>,
    path: PathBuf,
}

impl Db {
    /// Opens (creating if needed) the database at `path`, checks that it is
    /// intact and ours, and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Db, StorageError> {
        let owned = path.to_path_buf();
        let writer = tokio_rusqlite::Connection::open(path).await?;
        writer
            .call(move |conn| schema::prepare_writer(conn, &owned))
            .await?;
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
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
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
        let result = self.readers[i]
            .call(move |conn| in_read_transaction(conn, f))
            .await?;
        Ok(result)
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
        let result = in_read_transaction(&mut conn, f);
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
        self.write(|conn| {
            conn.execute_batch("VACUUM")?;
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
        .await
    }

    /// Size of the database file plus its write-ahead log, in bytes.
    pub fn size_on_disk(&self) -> u64 {
        let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        len(&self.path) + len(Path::new(&wal))
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

/// Runs `f` between `BEGIN` and `COMMIT`. Both are cached statements:
/// rusqlite's `transaction()` parses them anew on every call, which was a
/// twentieth of a serializable read's CPU.
fn in_read_transaction<R>(
    conn: &mut rusqlite::Connection,
    f: impl FnOnce(&rusqlite::Connection) -> Result<R, StorageError>,
) -> Result<R, StorageError> {
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

    #[test]
    fn a_failed_read_still_ends_its_transaction() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (7);")
            .unwrap();
        let failed: Result<(), _> = in_read_transaction(&mut conn, |c| {
            c.query_row("SELECT nope FROM t", [], |_| Ok(()))?;
            Ok(())
        });
        assert!(matches!(failed, Err(StorageError::Sqlite(_))));
        assert!(conn.is_autocommit(), "the failed read left BEGIN open");
        let v: i64 = in_read_transaction(&mut conn, |c| {
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
}
