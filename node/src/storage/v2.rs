//! The v2 keyspace's tables (`v2_nodes`, `v2_events`, `v2_index`) seen
//! through one connection or transaction: [`V2Tables`] for the v2 rules.

use tokio_rusqlite::rusqlite::{Connection, OptionalExtension, Row, params};

use crate::v2store::{self, Event, HISTORY_CAPACITY, StoredNode, TableError, UnixNanos, V2Tables};

/// The v2 tables through one connection; the caller owns the transaction.
pub struct SqliteV2<'c> {
    conn: &'c Connection,
}

impl<'c> SqliteV2<'c> {
    pub fn new(conn: &'c Connection) -> Self {
        Self { conn }
    }

    fn nodes(
        &self,
        sql: &str,
        params: impl tokio_rusqlite::rusqlite::Params,
    ) -> Result<Vec<StoredNode>, TableError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(failed)?;
        let rows = stmt.query_map(params, row_to_node).map_err(failed)?;
        rows.collect::<Result<_, _>>().map_err(failed)
    }
}

fn failed(e: tokio_rusqlite::rusqlite::Error) -> TableError {
    TableError(e.to_string())
}

const COLUMNS: &str = "path, dir, created, modified, expire, value";

fn row_to_node(row: &Row<'_>) -> tokio_rusqlite::rusqlite::Result<StoredNode> {
    Ok(StoredNode {
        path: row.get(0)?,
        dir: row.get(1)?,
        created_index: row.get::<_, i64>(2)? as u64,
        modified_index: row.get::<_, i64>(3)? as u64,
        expire: row.get(4)?,
        value: row.get(5)?,
    })
}

/// The half-open range of paths strictly below directory `dir`:
/// `dir/` up to `dir0` (`0` follows `/` in byte order).
fn subtree_range(dir: &str) -> (String, String) {
    if dir == "/" {
        ("/".into(), "0".into())
    } else {
        (format!("{dir}/"), format!("{dir}0"))
    }
}

impl V2Tables for SqliteV2<'_> {
    fn node(&self, path: &str) -> Result<Option<StoredNode>, TableError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM v2_nodes WHERE path = ?1"))
            .map_err(failed)?;
        stmt.query_row([path], row_to_node)
            .optional()
            .map_err(failed)
    }

    fn children(&self, dir: &str) -> Result<Vec<StoredNode>, TableError> {
        self.nodes(
            &format!("SELECT {COLUMNS} FROM v2_nodes WHERE parent = ?1 ORDER BY path"),
            [dir],
        )
    }

    fn descendants(&self, dir: &str) -> Result<Vec<StoredNode>, TableError> {
        let (start, end) = subtree_range(dir);
        self.nodes(
            &format!("SELECT {COLUMNS} FROM v2_nodes WHERE path >= ?1 AND path < ?2 ORDER BY path"),
            [start, end],
        )
    }

    fn put(&mut self, node: &StoredNode) -> Result<(), TableError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "INSERT OR REPLACE INTO v2_nodes (path, parent, dir, created, modified, expire, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(failed)?;
        stmt.execute(params![
            node.path,
            v2store::parent(&node.path),
            node.dir,
            node.created_index as i64,
            node.modified_index as i64,
            node.expire,
            node.value,
        ])
        .map_err(failed)?;
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), TableError> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM v2_nodes WHERE path = ?1")
            .map_err(failed)?;
        stmt.execute([path]).map_err(failed)?;
        Ok(())
    }

    fn current_index(&self) -> Result<u64, TableError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT current FROM v2_index WHERE id = 0")
            .map_err(failed)?;
        let index: Option<i64> = stmt
            .query_row([], |r| r.get(0))
            .optional()
            .map_err(failed)?;
        Ok(index.unwrap_or(0) as u64)
    }

    fn set_current_index(&mut self, index: u64) -> Result<(), TableError> {
        let mut stmt = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO v2_index (id, current) VALUES (0, ?1)")
            .map_err(failed)?;
        stmt.execute([index as i64]).map_err(failed)?;
        Ok(())
    }

    fn record_event(&mut self, event: &Event) -> Result<(), TableError> {
        let encoded = postcard::to_stdvec(event).map_err(|e| TableError(e.to_string()))?;
        let index = event.index() as i64;
        let mut insert = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO v2_events (idx, event) VALUES (?1, ?2)")
            .map_err(failed)?;
        insert.execute(params![index, encoded]).map_err(failed)?;
        let mut trim = self
            .conn
            .prepare_cached("DELETE FROM v2_events WHERE idx <= ?1")
            .map_err(failed)?;
        trim.execute([index - HISTORY_CAPACITY as i64])
            .map_err(failed)?;
        Ok(())
    }

    fn history_bounds(&self) -> Result<(u64, u64), TableError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT IFNULL(MIN(idx), 0), IFNULL(MAX(idx), 0) FROM v2_events")
            .map_err(failed)?;
        let (oldest, newest): (i64, i64) = stmt
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
            .map_err(failed)?;
        Ok((oldest as u64, newest as u64))
    }

    fn history_from(&self, index: u64) -> Result<Vec<Event>, TableError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT event FROM v2_events WHERE idx >= ?1 ORDER BY idx")
            .map_err(failed)?;
        let rows = stmt
            .query_map([index.min(i64::MAX as u64) as i64], |r| {
                r.get::<_, Vec<u8>>(0)
            })
            .map_err(failed)?;
        let mut events = Vec::new();
        for row in rows {
            let bytes = row.map_err(failed)?;
            events.push(postcard::from_bytes(&bytes).map_err(|e| TableError(e.to_string()))?);
        }
        Ok(events)
    }

    fn first_expired(&self, cutoff: UnixNanos) -> Result<Option<StoredNode>, TableError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM v2_nodes WHERE expire IS NOT NULL AND expire <= ?1 \
                 ORDER BY expire, path LIMIT 1"
            ))
            .map_err(failed)?;
        stmt.query_row([cutoff], row_to_node)
            .optional()
            .map_err(failed)
    }

    fn next_expiry(&self) -> Result<Option<UnixNanos>, TableError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT MIN(expire) FROM v2_nodes WHERE expire IS NOT NULL")
            .map_err(failed)?;
        stmt.query_row([], |r| r.get(0)).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v2store::{self, PutRequest, V2Op, V2Write};

    fn open() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(crate::storage::SCHEMA).unwrap();
        conn
    }

    fn put(tables: &mut SqliteV2<'_>, path: &str, value: &str, ttl: Option<u64>) {
        let op = V2Op::for_put(PutRequest {
            path: path.into(),
            value: value.into(),
            ttl,
            ..Default::default()
        });
        v2store::apply(
            tables,
            &V2Write {
                now: 1_795_305_600_000_000_000,
                op,
            },
        )
        .unwrap()
        .reply
        .unwrap()
        .unwrap();
    }

    #[test]
    fn tree_queries_and_history_round_trip() {
        let conn = open();
        let mut tables = SqliteV2::new(&conn);
        put(&mut tables, "/a/b", "1", None);
        put(&mut tables, "/a/c/d", "2", Some(60));
        put(&mut tables, "/a0", "3", None);
        put(&mut tables, "/a/b", "4", None);
        let paths = |nodes: Vec<StoredNode>| nodes.into_iter().map(|n| n.path).collect::<Vec<_>>();
        assert_eq!(paths(tables.children("/").unwrap()), ["/a", "/a0"]);
        assert_eq!(paths(tables.children("/a").unwrap()), ["/a/b", "/a/c"]);
        assert_eq!(
            paths(tables.descendants("/a").unwrap()),
            ["/a/b", "/a/c", "/a/c/d"]
        );
        assert_eq!(tables.descendants("/").unwrap().len(), 5);
        assert_eq!(tables.current_index().unwrap(), 4);
        assert_eq!(tables.history_bounds().unwrap(), (1, 4));
        let history = tables.history_from(3).unwrap();
        assert_eq!(history.len(), 2);
        assert_eq!(history[1].node.value.as_deref(), Some("4"));
        let expiry = tables.next_expiry().unwrap().unwrap();
        assert_eq!(tables.first_expired(expiry - 1).unwrap(), None);
        assert_eq!(
            tables.first_expired(expiry).unwrap().unwrap().path,
            "/a/c/d"
        );
    }

    #[test]
    fn the_history_keeps_the_newest_events() {
        let conn = open();
        let mut tables = SqliteV2::new(&conn);
        for i in 0..HISTORY_CAPACITY + 5 {
            put(&mut tables, "/k", &i.to_string(), None);
        }
        assert_eq!(tables.history_bounds().unwrap(), (6, HISTORY_CAPACITY + 5));
    }
}
