//! The database file: pragmas, tables and the schema version.
//!
//! - `tokens`: one row per token with its current (per-token) etcd index and
//!   its expiry time.
//! - `nodes`: the keys under a token: member registrations and the hidden
//!   `_config/size`.
//! - `events`: the last [`super::HISTORY_LEN`] changes of each token, which
//!   `wait=true&waitIndex=N` reads from.

use tokio_rusqlite::rusqlite::{self, Connection};

use super::StoreError;

/// The schema this build writes (`PRAGMA user_version`).
pub(super) const VERSION: i64 = 1;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS tokens (
    token         TEXT    NOT NULL PRIMARY KEY,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    current_index INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_by_expiry ON tokens (expires_at_ms);
CREATE TABLE IF NOT EXISTS nodes (
    token          TEXT    NOT NULL,
    name           TEXT    NOT NULL,
    value          TEXT    NOT NULL,
    created_index  INTEGER NOT NULL,
    modified_index INTEGER NOT NULL,
    PRIMARY KEY (token, name)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    token               TEXT    NOT NULL,
    idx                 INTEGER NOT NULL,
    action              TEXT    NOT NULL,
    name                TEXT    NOT NULL,
    value               TEXT,
    created_index       INTEGER NOT NULL,
    prev_value          TEXT,
    prev_created_index  INTEGER,
    prev_modified_index INTEGER,
    PRIMARY KEY (token, idx)
) STRICT, WITHOUT ROWID;
";

/// Sets the pragmas and creates or checks the schema.
pub(super) fn prepare(conn: &mut Connection) -> Result<(), StoreError> {
    // WAL with FULL sync: an acknowledged registration survives a crash.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") && !mode.eq_ignore_ascii_case("memory") {
        return Err(StoreError::Corrupt(format!(
            "cannot switch the database to WAL mode (got {mode})"
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;")?;
    let found: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > VERSION {
        return Err(StoreError::NewerSchema {
            found,
            known: VERSION,
        });
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(TABLES)?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()?;
    Ok(())
}
