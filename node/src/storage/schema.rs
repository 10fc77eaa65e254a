//! Tables, indexes and connection settings, and the start-up integrity check.

use std::path::Path;

use tokio_rusqlite::rusqlite::config::DbConfig;
use tokio_rusqlite::rusqlite::{self, Connection, ErrorCode};

use super::StorageError;

/// Bumped whenever the tables below change shape.
const SCHEMA_VERSION: i64 = 5;

pub(crate) const SCHEMA: &str = "
-- Every version of every key: etcd's revision table. A tombstone row marks
-- a delete. `value` is last so key-only reads never touch overflow pages.
-- Rows are only appended, in revision order, so `id` ascends with
-- (mod_rev, sub_rev) and revision scans seek by id: schema 5 dropped the
-- index by revision, one more B-tree every put wrote. Which row is a key's
-- version at a revision is the in-memory key index's business (schema 4
-- dropped the two B-trees by key that every put used to dirty at random).
CREATE TABLE IF NOT EXISTS kv (
    id          INTEGER PRIMARY KEY,
    key         BLOB    NOT NULL,
    mod_rev     INTEGER NOT NULL,
    sub_rev     INTEGER NOT NULL,
    create_rev  INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    lease       INTEGER NOT NULL,
    tombstone   INTEGER NOT NULL,
    value       BLOB    NOT NULL
);

-- Granted leases, with the TTL they were granted.
CREATE TABLE IF NOT EXISTS leases (
    id   INTEGER PRIMARY KEY,
    ttl  INTEGER NOT NULL
);

-- Which live keys are attached to which lease.
CREATE TABLE IF NOT EXISTS lease_keys (
    lease  INTEGER NOT NULL,
    key    BLOB    NOT NULL,
    PRIMARY KEY (lease, key)
) WITHOUT ROWID;

-- etcd's v2 keyspace (schema 2): a tree apart from the revision table,
-- with its own index. One row per node; the root is implicit. `expire` is
-- Unix nanoseconds, NULL for a node without TTL.
CREATE TABLE IF NOT EXISTS v2_nodes (
    path      TEXT    PRIMARY KEY,
    parent    TEXT    NOT NULL,
    dir       INTEGER NOT NULL,
    created   INTEGER NOT NULL,
    modified  INTEGER NOT NULL,
    expire    INTEGER,
    value     TEXT    NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS v2_nodes_by_parent ON v2_nodes (parent, path);
CREATE INDEX IF NOT EXISTS v2_nodes_by_expiry ON v2_nodes (expire, path)
    WHERE expire IS NOT NULL;

-- The newest v2 events (waits with a waitIndex are answered from them),
-- one per index, postcard-encoded.
CREATE TABLE IF NOT EXISTS v2_events (
    idx    INTEGER PRIMARY KEY,
    event  BLOB NOT NULL
);

-- The v2 store's current index: one row once anything was written.
CREATE TABLE IF NOT EXISTS v2_index (
    id       INTEGER PRIMARY KEY CHECK (id = 0),
    current  INTEGER NOT NULL
);

-- The auth store (schema 3): one postcard-encoded user or role per row;
-- its enabled flag and revision are meta rows.
CREATE TABLE IF NOT EXISTS auth_users (
    name  TEXT PRIMARY KEY,
    user  BLOB NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS auth_roles (
    name  TEXT PRIMARY KEY,
    role  BLOB NOT NULL
) WITHOUT ROWID;

-- Raft's log: one encoded entry per index.
CREATE TABLE IF NOT EXISTS raft_log (
    idx    INTEGER PRIMARY KEY,
    entry  BLOB NOT NULL
);

-- Small named values: revisions, vote, applied log id, membership, identity.
CREATE TABLE IF NOT EXISTS meta (
    name   TEXT PRIMARY KEY,
    value  ANY NOT NULL
) WITHOUT ROWID;
";

/// What older schemas had and this one dropped.
const DROPPED: &str = "
DROP INDEX IF EXISTS kv_by_key;
DROP INDEX IF EXISTS kv_by_revision;
DROP TABLE IF EXISTS kv_live;
";

/// Prepared statements kept per connection: the range, count and change
/// queries come in a dozen shapes each, more than rusqlite's default 16.
const STATEMENT_CACHE: usize = 128;

/// Page cache of the writer, in KiB: the apply path's random inserts into
/// the key indexes want their interior pages at hand.
const WRITER_CACHE_KIB: i64 = 8192;
/// Page cache of each reader, in KiB: reads mostly touch a hot subset, and
/// pages beyond it still come from the OS page cache.
const READER_CACHE_KIB: i64 = 4096;

/// Settings shared by every connection.
fn common_pragmas(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // One plan per statement whatever the bound values: without it, the
    // bundled SQLite (built with STAT4) marks `LIMIT ?` and indexed
    // comparisons as value-sensitive and re-parses the statement on every
    // new binding, which was a fifth of the apply path's CPU.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Prepares the writer: checks the file, sets durable WAL mode, creates or
/// upgrades the schema.
pub(super) fn prepare_writer(conn: &mut Connection, path: &Path) -> Result<(), StorageError> {
    let corrupt = |detail: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        detail,
    };
    let not_a_database = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => corrupt(e.to_string()),
        _ => StorageError::Sqlite(e),
    };
    common_pragmas(conn).map_err(not_a_database)?;
    conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)
        .map_err(not_a_database)?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(not_a_database)?;
    // The checks and the schema's own upgrade commit durably; from then on
    // commits are not fsynced (see `WalFile::sync` and `durably`).
    conn.pragma_update(None, "synchronous", "FULL")?;

    let verdict: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(not_a_database)?;
    if verdict != "ok" {
        return Err(corrupt(verdict));
    }

    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::NewerSchema {
            path: path.to_path_buf(),
            found,
            known: SCHEMA_VERSION,
        });
    }
    let tx = conn.transaction()?;
    if (1..5).contains(&found) {
        put_rows_in_revision_order(&tx)?;
    }
    tx.execute_batch(SCHEMA)?;
    tx.execute_batch(DROPPED)?;
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    tx.commit()?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Makes `kv`'s ids ascend with (mod_rev, sub_rev), which revision scans
/// rely on since schema 5. Every cetera has appended rows in that order;
/// this checks it once, on the upgrade, and renumbers a table that is not.
fn put_rows_in_revision_order(tx: &Connection) -> rusqlite::Result<()> {
    let out_of_order: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM (
             SELECT mod_rev, sub_rev,
                    lag(mod_rev) OVER by_id AS prev_mod, lag(sub_rev) OVER by_id AS prev_sub
             FROM kv WINDOW by_id AS (ORDER BY id))
         WHERE mod_rev < prev_mod OR (mod_rev = prev_mod AND sub_rev <= prev_sub))",
        [],
        |r| r.get(0),
    )?;
    if out_of_order {
        // Negative ids first, so no new id collides with an old one.
        tx.execute_batch(
            "CREATE TEMP TABLE kv_renumbered (old INTEGER PRIMARY KEY, new INTEGER NOT NULL);
             INSERT INTO kv_renumbered
                 SELECT id, row_number() OVER (ORDER BY mod_rev, sub_rev) FROM kv;
             UPDATE kv SET id = -(SELECT new FROM kv_renumbered WHERE old = kv.id);
             UPDATE kv SET id = -id;
             DROP TABLE kv_renumbered;",
        )?;
    }
    Ok(())
}

/// Prepares a reader connection.
pub(super) fn prepare_reader(conn: &mut Connection) -> Result<(), StorageError> {
    common_pragmas(conn)?;
    conn.pragma_update(None, "cache_size", -READER_CACHE_KIB)?;
    Ok(())
}
