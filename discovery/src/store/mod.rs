//! Tokens and their keys in SQLite, with the v2 keys semantics etcd's
//! discovery client relies on.
//!
//! Every token is its own small v2 keyspace with its own index, starting at 1
//! when `/new` writes `_config/size`. Each change takes the next index, is
//! recorded as an event (the last [`HISTORY_LEN`] per token are kept), and
//! wakes the token's long polls. A replacing `set` gives the key a new
//! `createdIndex`; an `update` keeps it. Names starting with `_` are hidden
//! from listings and from recursive waits on the token (etcd hides them from
//! live recursive notifications but not from its history scan; here a
//! recursive wait only ever reports members, whatever its `waitIndex`).
//!
//! The interface is narrow: [`Store::create_token`], [`Store::get`],
//! [`Store::set`], [`Store::delete`], [`Store::watch`],
//! [`Store::collect_expired`], [`Store::gauges`] and [`Store::healthy`].
//! It speaks in [`Node`]s and [`Event`]s; the wire format is `crate::v2`'s.

mod hub;
mod schema;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use tokio_rusqlite::rusqlite::{
    self, Connection, OptionalExtension, Transaction, TransactionBehavior, params,
};

use crate::metrics::{Gauges, Metrics};
use hub::Hub;

/// Events kept per token for `waitIndex` (etcd keeps 1000 too).
pub const HISTORY_LEN: u64 = 1000;
/// Most member keys one token may hold.
pub const MAX_MEMBERS_PER_TOKEN: u64 = 1000;
/// Longest member name, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// The hidden key holding the cluster size.
const SIZE_NAME: &str = "_config/size";
/// Index at which a token's directory (and `_config/size`) were created.
const TOKEN_CREATED_INDEX: u64 = 1;
/// Expired tokens deleted per transaction by [`Store::collect_expired`].
const COLLECT_BATCH: i64 = 500;

/// Limits and lifetimes the store enforces.
#[derive(Clone, Debug)]
pub struct Options {
    pub token_ttl: Duration,
    pub max_size: u64,
    pub max_tokens: u64,
    pub max_waiters: usize,
}

/// Errors of store operations; `crate::v2` maps each to etcd's v2 error.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("key not found: {key}")]
    NotFound { key: String, index: u64 },
    #[error("key already exists: {key}")]
    AlreadyExists { key: String, index: u64 },
    #[error("not a file: {key}")]
    NotAFile { key: String, index: u64 },
    #[error("{key} is read-only")]
    ReadOnly { key: String, index: u64 },
    #[error("the requested history has been cleared [{start}/{requested}]")]
    HistoryCleared {
        start: u64,
        requested: u64,
        index: u64,
    },
    #[error("size {size} is out of range: it must be between 1 and {max}")]
    BadSize { size: u64, max: u64 },
    #[error("token {key} already holds the maximum of {max} members")]
    TooManyMembers { key: String, max: u64, index: u64 },
    #[error("too many tokens: {max} are live (--max-tokens)")]
    TooManyTokens { max: u64 },
    #[error("too many waiters: {max} long polls are blocked (--max-waiters)")]
    TooManyWaiters { max: usize },
    #[error(
        "database written by a newer cetera-discovery (schema {found}, this build knows {known})"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database is corrupt: {0}")]
    Corrupt(String),
    #[error("database connection closed")]
    Closed,
    #[error("creating the data dir {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
}

impl From<tokio_rusqlite::Error<StoreError>> for StoreError {
    fn from(e: tokio_rusqlite::Error<StoreError>) -> Self {
        match e {
            tokio_rusqlite::Error::Error(e) => e,
            tokio_rusqlite::Error::Close((_, e)) => StoreError::Sqlite(e),
            _ => StoreError::Closed,
        }
    }
}

/// A key inside a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// The token's directory itself (`/<token>`).
    Dir,
    /// A member registration (`/<token>/<name>`).
    Member(MemberName),
    /// The hidden size key (`/<token>/_config/size`).
    Size,
}

impl Key {
    /// The key's name relative to the token, as stored.
    fn name(&self) -> Option<&str> {
        match self {
            Key::Dir => None,
            Key::Member(name) => Some(name.as_str()),
            Key::Size => Some(SIZE_NAME),
        }
    }

    /// The full v2 key, e.g. `/<token>/<name>`.
    pub fn path(&self, token: &str) -> String {
        match self.name() {
            None => format!("/{token}"),
            Some(name) => format!("/{token}/{name}"),
        }
    }
}

/// A member key name: 1 to [`MAX_NAME_BYTES`] bytes, no `/`, no control
/// characters, not `.` or `..`, and not starting with `_` (reserved).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberName(String);

/// Why a member name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the member name is empty")]
    Empty,
    #[error("the member name is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("member names starting with \"_\" are reserved")]
    Reserved,
    #[error("the member name contains \"/\", a control character, or is \".\" or \"..\"")]
    BadCharacter,
}

impl MemberName {
    pub fn parse(name: &str) -> Result<MemberName, NameError> {
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(NameError::TooLong);
        }
        if name.starts_with('_') {
            return Err(NameError::Reserved);
        }
        if name == "." || name == ".." || name.chars().any(|c| c == '/' || c.is_control()) {
            return Err(NameError::BadCharacter);
        }
        Ok(MemberName(name.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A v2 node: a key with a value, or the token's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub key: String,
    /// `None` for directories and deleted keys.
    pub value: Option<String>,
    pub dir: bool,
    /// A directory's visible children, in listing order.
    pub nodes: Vec<Node>,
    pub created_index: u64,
    pub modified_index: u64,
}

/// What happened to a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Get,
    Set,
    Create,
    Update,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Get => "get",
            Action::Set => "set",
            Action::Create => "create",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }

    fn parse(text: &str) -> Option<Action> {
        Some(match text {
            "set" => Action::Set,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            _ => return None,
        })
    }
}

/// A v2 response body: an action on a node (and the node it replaced).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub action: Action,
    pub node: Node,
    pub prev_node: Option<Node>,
}

/// The result of a read or write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub event: Event,
    /// The token's index after the operation (`X-Etcd-Index`).
    pub index: u64,
    /// Whether a write created the key (HTTP 201 rather than 200).
    pub created: bool,
}

/// How listings are ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// By `createdIndex` (the discovery default: registration order).
    Created,
    /// By key (`sorted=true`).
    Key,
}

/// The answer to [`Store::watch`].
#[derive(Debug)]
pub enum Watch {
    /// A matching event is already in the history.
    Ready { index: u64, event: Event },
    /// No matching event yet; [`PendingWatch::wait`] blocks for one.
    Pending(PendingWatch),
}

/// A blocked long poll; holds one of the `--max-waiters` slots until dropped.
#[derive(Debug)]
pub struct PendingWatch {
    store: Store,
    token: String,
    key: Key,
    recursive: bool,
    from: u64,
    index: u64,
    wake: watch::Receiver<u64>,
    _slot: WaitSlot,
}

#[derive(Debug)]
struct WaitSlot {
    shared: Arc<Shared>,
}

impl Drop for WaitSlot {
    fn drop(&mut self) {
        self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Where the store reads the time (ms since the epoch); tests drive it by hand.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    #[cfg(test)]
    manual: Option<Arc<std::sync::atomic::AtomicI64>>,
}

impl Clock {
    fn now_ms(&self) -> i64 {
        #[cfg(test)]
        if let Some(manual) = &self.manual {
            return manual.load(Ordering::SeqCst);
        }
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    #[cfg(test)]
    fn manual(start_ms: i64) -> (Clock, Arc<std::sync::atomic::AtomicI64>) {
        let handle = Arc::new(std::sync::atomic::AtomicI64::new(start_ms));
        (
            Clock {
                manual: Some(handle.clone()),
            },
            handle,
        )
    }
}

#[derive(Debug)]
struct Shared {
    conn: tokio_rusqlite::Connection,
    hub: Hub,
    options: Options,
    waiting: AtomicUsize,
    metrics: Arc<Metrics>,
    clock: Clock,
}

/// The token database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    shared: Arc<Shared>,
}

impl Store {
    /// Opens (creating if needed) `<data_dir>/discovery.db`.
    pub async fn open(
        data_dir: &Path,
        options: Options,
        metrics: Arc<Metrics>,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.display().to_string(),
            source,
        })?;
        let conn = tokio_rusqlite::Connection::open(data_dir.join("discovery.db")).await?;
        Self::with_connection(conn, options, metrics, Clock::default()).await
    }

    /// A store in memory with the system clock (for other modules' tests).
    #[cfg(test)]
    pub(crate) async fn in_memory(options: Options, metrics: Arc<Metrics>) -> Store {
        let conn = tokio_rusqlite::Connection::open_in_memory()
            .await
            .expect("opening an in-memory database");
        Self::with_connection(conn, options, metrics, Clock::default())
            .await
            .expect("preparing an in-memory database")
    }

    async fn with_connection(
        conn: tokio_rusqlite::Connection,
        options: Options,
        metrics: Arc<Metrics>,
        clock: Clock,
    ) -> Result<Store, StoreError> {
        conn.call(schema::prepare).await?;
        Ok(Store {
            shared: Arc::new(Shared {
                conn,
                hub: Hub::default(),
                options,
                waiting: AtomicUsize::new(0),
                metrics,
                clock,
            }),
        })
    }

    async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        Ok(self.shared.conn.call(f).await?)
    }

    /// Creates a token for a cluster of `size` members: a random 32-hex name
    /// whose `_config/size` is `size`, expiring after `--token-ttl`.
    pub async fn create_token(&self, size: u64) -> Result<String, StoreError> {
        let options = &self.shared.options;
        if size == 0 || size > options.max_size {
            return Err(StoreError::BadSize {
                size,
                max: options.max_size,
            });
        }
        let token = new_token();
        let now = self.shared.clock.now_ms();
        let ttl = i64::try_from(options.token_ttl.as_millis()).unwrap_or(i64::MAX);
        let expires = now.saturating_add(ttl);
        let max_tokens = options.max_tokens;
        let owned = token.clone();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let live: i64 = tx.query_row(
                "SELECT count(*) FROM tokens WHERE expires_at_ms > ?1",
                [now],
                |row| row.get(0),
            )?;
            if to_u64(live) >= max_tokens {
                return Err(StoreError::TooManyTokens { max: max_tokens });
            }
            let first = to_i64(TOKEN_CREATED_INDEX);
            tx.execute(
                "INSERT INTO tokens (token, created_at_ms, expires_at_ms, current_index) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![owned, now, expires, first],
            )?;
            tx.execute(
                "INSERT INTO nodes (token, name, value, created_index, modified_index) \
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![owned, SIZE_NAME, size.to_string(), first],
            )?;
            tx.execute(
                "INSERT INTO events (token, idx, action, name, value, created_index) \
                 VALUES (?1, ?2, 'set', ?3, ?4, ?2)",
                params![owned, first, SIZE_NAME, size.to_string()],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await?;
        Metrics::inc(&self.shared.metrics.tokens_created);
        Ok(token)
    }

    /// Reads `key` of `token`. A directory lists its visible members in
    /// `order`.
    pub async fn get(&self, token: &str, key: Key, order: Order) -> Result<Outcome, StoreError> {
        let now = self.shared.clock.now_ms();
        let token = token.to_string();
        self.call(move |conn| {
            let tx = conn.transaction()?;
            let index =
                live_index(&tx, &token, now)?.ok_or_else(|| not_found(Key::Dir.path(&token), 0))?;
            let node = match key.name() {
                None => Node {
                    key: Key::Dir.path(&token),
                    value: None,
                    dir: true,
                    nodes: list_members(&tx, &token, order)?,
                    created_index: TOKEN_CREATED_INDEX,
                    modified_index: TOKEN_CREATED_INDEX,
                },
                Some(name) => read_node(&tx, &token, name)?
                    .ok_or_else(|| not_found(key.path(&token), index))?,
            };
            Ok(Outcome {
                event: Event {
                    action: Action::Get,
                    node,
                    prev_node: None,
                },
                index,
                created: false,
            })
        })
        .await
    }

    /// Writes `value` at `key` of `token`. `prev_exist`: `Some(false)`
    /// creates (fails if the key exists), `Some(true)` updates (fails if it
    /// does not), `None` sets either way.
    pub async fn set(
        &self,
        token: &str,
        key: Key,
        value: String,
        prev_exist: Option<bool>,
    ) -> Result<Outcome, StoreError> {
        let now = self.shared.clock.now_ms();
        let owned = token.to_string();
        let outcome = self
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let outcome = set_in(&tx, &owned, &key, value, prev_exist, now)?;
                tx.commit()?;
                Ok(outcome)
            })
            .await?;
        if outcome.created {
            Metrics::inc(&self.shared.metrics.registrations);
        }
        self.shared.hub.notify(token, outcome.index);
        Ok(outcome)
    }

    /// Deletes a member key of `token`.
    pub async fn delete(&self, token: &str, key: Key) -> Result<Outcome, StoreError> {
        let now = self.shared.clock.now_ms();
        let owned = token.to_string();
        let outcome = self
            .call(move |conn| {
                let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let outcome = delete_in(&tx, &owned, &key, now)?;
                tx.commit()?;
                Ok(outcome)
            })
            .await?;
        self.shared.hub.notify(token, outcome.index);
        Ok(outcome)
    }

    /// Starts a long poll for the first event at or after `wait_index` (the
    /// next one when `None` or 0) on `key`, or under it when `recursive`
    /// (hidden names excepted). The returned index is the token's index when
    /// the wait started.
    pub async fn watch(
        &self,
        token: &str,
        key: Key,
        recursive: bool,
        wait_index: Option<u64>,
    ) -> Result<Watch, StoreError> {
        // Subscribe first: a write committed after the scan below wakes us.
        let wake = self.shared.hub.subscribe(token);
        let now = self.shared.clock.now_ms();
        let owned = token.to_string();
        let scan_key = key.clone();
        let scanned = self
            .call(move |conn| {
                let tx = conn.transaction()?;
                let index = live_index(&tx, &owned, now)?
                    .ok_or_else(|| not_found(Key::Dir.path(&owned), 0))?;
                let from = match wait_index {
                    None | Some(0) => index + 1,
                    Some(n) => n,
                };
                let start: Option<i64> = tx.query_row(
                    "SELECT min(idx) FROM events WHERE token = ?1",
                    [&owned],
                    |row| row.get(0),
                )?;
                let start = start.map_or(index + 1, to_u64);
                if from < start {
                    return Err(StoreError::HistoryCleared {
                        start,
                        requested: from,
                        index,
                    });
                }
                let found = first_event(&tx, &owned, &scan_key, recursive, from)?;
                Ok((index, from, found))
            })
            .await;
        let release = |wake| {
            drop(wake);
            self.shared.hub.release(token);
        };
        let (index, from, found) = match scanned {
            Ok(scanned) => scanned,
            Err(err) => {
                release(wake);
                return Err(err);
            }
        };
        let metrics = &self.shared.metrics;
        if let Some(event) = found {
            release(wake);
            Metrics::inc(&metrics.waits_started);
            return Ok(Watch::Ready { index, event });
        }
        let max = self.shared.options.max_waiters;
        if self.shared.waiting.fetch_add(1, Ordering::AcqRel) >= max {
            self.shared.waiting.fetch_sub(1, Ordering::AcqRel);
            release(wake);
            Metrics::inc(&metrics.waits_refused);
            return Err(StoreError::TooManyWaiters { max });
        }
        Metrics::inc(&metrics.waits_started);
        Metrics::inc(&metrics.waits_blocked);
        Ok(Watch::Pending(PendingWatch {
            store: self.clone(),
            token: token.to_string(),
            key,
            recursive,
            from,
            index,
            wake,
            _slot: WaitSlot {
                shared: self.shared.clone(),
            },
        }))
    }

    /// Deletes expired tokens with their keys and history; returns how many.
    pub async fn collect_expired(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let now = self.shared.clock.now_ms();
            let gone = self
                .call(move |conn| {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let tokens = {
                        let mut stmt = tx.prepare(
                            "SELECT token FROM tokens WHERE expires_at_ms <= ?1 LIMIT ?2",
                        )?;
                        stmt.query_map(params![now, COLLECT_BATCH], |row| row.get(0))?
                            .collect::<Result<Vec<String>, _>>()?
                    };
                    for token in &tokens {
                        tx.execute("DELETE FROM events WHERE token = ?1", [token])?;
                        tx.execute("DELETE FROM nodes WHERE token = ?1", [token])?;
                        tx.execute("DELETE FROM tokens WHERE token = ?1", [token])?;
                    }
                    tx.commit()?;
                    Ok(tokens)
                })
                .await?;
            for token in &gone {
                // Their long polls wake up, find the token gone, and end.
                self.shared.hub.notify(token, 0);
            }
            let count = gone.len() as u64;
            total += count;
            self.shared
                .metrics
                .tokens_expired
                .fetch_add(count, Ordering::Relaxed);
            if count < COLLECT_BATCH as u64 {
                break;
            }
        }
        self.shared.hub.sweep();
        Ok(total)
    }

    /// Live tokens, registrations under them, and blocked long polls.
    pub async fn gauges(&self) -> Result<Gauges, StoreError> {
        let now = self.shared.clock.now_ms();
        let (tokens, registrations) = self
            .call(move |conn| {
                let tx = conn.transaction()?;
                let tokens: i64 = tx.query_row(
                    "SELECT count(*) FROM tokens WHERE expires_at_ms > ?1",
                    [now],
                    |row| row.get(0),
                )?;
                let registrations: i64 = tx.query_row(
                    "SELECT count(*) FROM nodes JOIN tokens USING (token) \
                     WHERE tokens.expires_at_ms > ?1 AND substr(nodes.name, 1, 1) <> '_'",
                    [now],
                    |row| row.get(0),
                )?;
                Ok((to_u64(tokens), to_u64(registrations)))
            })
            .await?;
        Ok(Gauges {
            tokens,
            registrations,
            waits: self.shared.waiting.load(Ordering::Acquire) as u64,
        })
    }

    /// Whether the database answers.
    pub async fn healthy(&self) -> bool {
        self.call(|conn| Ok(conn.query_row("SELECT 1", [], |row| row.get::<_, i64>(0))?))
            .await
            .is_ok()
    }
}

impl PendingWatch {
    /// The token's index when the wait started (`X-Etcd-Index`).
    pub fn index(&self) -> u64 {
        self.index
    }

    /// Blocks until a matching event is committed (`Some`), or `timeout`
    /// passes or the token expires (`None`).
    pub async fn wait(mut self, timeout: Duration) -> Result<Option<Event>, StoreError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.wake.changed()).await {
                Err(_elapsed) => return Ok(None),
                Ok(Err(_closed)) => {
                    // The hub dropped this token's channel (no receivers at a
                    // notify can't be us), so subscribe again and rescan.
                    self.wake = self.store.shared.hub.subscribe(&self.token);
                }
                Ok(Ok(())) => {
                    self.wake.borrow_and_update();
                }
            }
            let now = self.store.shared.clock.now_ms();
            let token = self.token.clone();
            let key = self.key.clone();
            let (recursive, from) = (self.recursive, self.from);
            let found = self
                .store
                .call(move |conn| {
                    let tx = conn.transaction()?;
                    if live_index(&tx, &token, now)?.is_none() {
                        return Ok(Err(()));
                    }
                    Ok(Ok(first_event(&tx, &token, &key, recursive, from)?))
                })
                .await?;
            match found {
                Err(()) => return Ok(None),
                Ok(Some(event)) => return Ok(Some(event)),
                Ok(None) => {}
            }
        }
    }
}

/// 16 random bytes as 32 lowercase hex digits.
fn new_token() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn not_found(key: String, index: u64) -> StoreError {
    StoreError::NotFound { key, index }
}

/// The token's current index, or `None` if it does not exist or expired.
fn live_index(tx: &Transaction<'_>, token: &str, now: i64) -> Result<Option<u64>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT current_index FROM tokens WHERE token = ?1 AND expires_at_ms > ?2",
            params![token, now],
            |row| row.get::<_, i64>(0),
        )
        .optional()?
        .map(to_u64))
}

fn read_node(tx: &Transaction<'_>, token: &str, name: &str) -> Result<Option<Node>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT value, created_index, modified_index FROM nodes \
             WHERE token = ?1 AND name = ?2",
            params![token, name],
            |row| {
                Ok(Node {
                    key: format!("/{token}/{name}"),
                    value: Some(row.get(0)?),
                    dir: false,
                    nodes: Vec::new(),
                    created_index: to_u64(row.get(1)?),
                    modified_index: to_u64(row.get(2)?),
                })
            },
        )
        .optional()?)
}

fn list_members(tx: &Transaction<'_>, token: &str, order: Order) -> Result<Vec<Node>, StoreError> {
    let sql = match order {
        Order::Created => {
            "SELECT name, value, created_index, modified_index FROM nodes \
             WHERE token = ?1 AND substr(name, 1, 1) <> '_' ORDER BY created_index, name"
        }
        Order::Key => {
            "SELECT name, value, created_index, modified_index FROM nodes \
             WHERE token = ?1 AND substr(name, 1, 1) <> '_' ORDER BY name"
        }
    };
    let mut stmt = tx.prepare(sql)?;
    let nodes = stmt
        .query_map([token], |row| {
            let name: String = row.get(0)?;
            Ok(Node {
                key: format!("/{token}/{name}"),
                value: Some(row.get(1)?),
                dir: false,
                nodes: Vec::new(),
                created_index: to_u64(row.get(2)?),
                modified_index: to_u64(row.get(3)?),
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(nodes)
}

/// Records a change: the next index, the event, the trimmed history.
fn record(
    tx: &Transaction<'_>,
    token: &str,
    index: u64,
    action: Action,
    name: &str,
    node: &Node,
    prev: Option<&Node>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (token, idx, action, name, value, created_index, \
         prev_value, prev_created_index, prev_modified_index) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            token,
            to_i64(index),
            action.as_str(),
            name,
            node.value,
            to_i64(node.created_index),
            prev.and_then(|p| p.value.clone()),
            prev.map(|p| to_i64(p.created_index)),
            prev.map(|p| to_i64(p.modified_index)),
        ],
    )?;
    tx.execute(
        "UPDATE tokens SET current_index = ?2 WHERE token = ?1",
        params![token, to_i64(index)],
    )?;
    if index > HISTORY_LEN {
        tx.execute(
            "DELETE FROM events WHERE token = ?1 AND idx <= ?2",
            params![token, to_i64(index - HISTORY_LEN)],
        )?;
    }
    Ok(())
}

fn set_in(
    tx: &Transaction<'_>,
    token: &str,
    key: &Key,
    value: String,
    prev_exist: Option<bool>,
    now: i64,
) -> Result<Outcome, StoreError> {
    let current = live_index(tx, token, now)?.ok_or_else(|| not_found(Key::Dir.path(token), 0))?;
    let path = key.path(token);
    let name = match key {
        Key::Dir if prev_exist == Some(false) => {
            return Err(StoreError::AlreadyExists {
                key: path,
                index: current,
            });
        }
        Key::Dir => {
            return Err(StoreError::NotAFile {
                key: path,
                index: current,
            });
        }
        Key::Size => {
            return Err(StoreError::ReadOnly {
                key: path,
                index: current,
            });
        }
        Key::Member(name) => name.as_str(),
    };
    let existing = read_node(tx, token, name)?;
    let action = match (prev_exist, &existing) {
        (Some(false), Some(_)) => {
            return Err(StoreError::AlreadyExists {
                key: path,
                index: current,
            });
        }
        (Some(true), None) => return Err(not_found(path, current)),
        (Some(false), None) => Action::Create,
        (Some(true), Some(_)) => Action::Update,
        (None, _) => Action::Set,
    };
    if existing.is_none() {
        let members: i64 = tx.query_row(
            "SELECT count(*) FROM nodes WHERE token = ?1 AND substr(name, 1, 1) <> '_'",
            [token],
            |row| row.get(0),
        )?;
        if to_u64(members) >= MAX_MEMBERS_PER_TOKEN {
            return Err(StoreError::TooManyMembers {
                key: Key::Dir.path(token),
                max: MAX_MEMBERS_PER_TOKEN,
                index: current,
            });
        }
    }
    let index = current + 1;
    let created_index = match (action, &existing) {
        (Action::Update, Some(prev)) => prev.created_index,
        _ => index,
    };
    tx.execute(
        "INSERT INTO nodes (token, name, value, created_index, modified_index) \
         VALUES (?1, ?2, ?3, ?4, ?5) \
         ON CONFLICT (token, name) DO UPDATE SET \
         value = excluded.value, created_index = excluded.created_index, \
         modified_index = excluded.modified_index",
        params![token, name, value, to_i64(created_index), to_i64(index)],
    )?;
    let node = Node {
        key: path,
        value: Some(value),
        dir: false,
        nodes: Vec::new(),
        created_index,
        modified_index: index,
    };
    record(tx, token, index, action, name, &node, existing.as_ref())?;
    Ok(Outcome {
        created: existing.is_none(),
        event: Event {
            action,
            node,
            prev_node: existing,
        },
        index,
    })
}

fn delete_in(
    tx: &Transaction<'_>,
    token: &str,
    key: &Key,
    now: i64,
) -> Result<Outcome, StoreError> {
    let current = live_index(tx, token, now)?.ok_or_else(|| not_found(Key::Dir.path(token), 0))?;
    let path = key.path(token);
    let name = match key {
        Key::Dir => {
            return Err(StoreError::NotAFile {
                key: path,
                index: current,
            });
        }
        Key::Size => {
            return Err(StoreError::ReadOnly {
                key: path,
                index: current,
            });
        }
        Key::Member(name) => name.as_str(),
    };
    let existing = read_node(tx, token, name)?.ok_or_else(|| not_found(path.clone(), current))?;
    let index = current + 1;
    tx.execute(
        "DELETE FROM nodes WHERE token = ?1 AND name = ?2",
        params![token, name],
    )?;
    let node = Node {
        key: path,
        value: None,
        dir: false,
        nodes: Vec::new(),
        created_index: existing.created_index,
        modified_index: index,
    };
    record(
        tx,
        token,
        index,
        Action::Delete,
        name,
        &node,
        Some(&existing),
    )?;
    Ok(Outcome {
        event: Event {
            action: Action::Delete,
            node,
            prev_node: Some(existing),
        },
        index,
        created: false,
    })
}

/// The first event at index `from` or later on `key` (or, `recursive`, on
/// a visible key under it).
fn first_event(
    tx: &Transaction<'_>,
    token: &str,
    key: &Key,
    recursive: bool,
    from: u64,
) -> Result<Option<Event>, StoreError> {
    const COLUMNS: &str = "SELECT idx, action, name, value, created_index, \
         prev_value, prev_created_index, prev_modified_index FROM events \
         WHERE token = ?1 AND idx >= ?2";
    let from = to_i64(from);
    let row = match (key.name(), recursive) {
        // A recursive wait on the directory sees every visible key.
        (None, true) => tx
            .query_row(
                &format!("{COLUMNS} AND substr(name, 1, 1) <> '_' ORDER BY idx LIMIT 1"),
                params![token, from],
                event_row,
            )
            .optional()?,
        // Nothing ever changes the directory node itself.
        (None, false) => None,
        (Some(name), _) => tx
            .query_row(
                &format!("{COLUMNS} AND name = ?3 ORDER BY idx LIMIT 1"),
                params![token, from, name],
                event_row,
            )
            .optional()?,
    };
    row.map(|row| row.into_event(token)).transpose()
}

struct EventRow {
    idx: i64,
    action: String,
    name: String,
    value: Option<String>,
    created_index: i64,
    prev_value: Option<String>,
    prev_created_index: Option<i64>,
    prev_modified_index: Option<i64>,
}

fn event_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<EventRow> {
    Ok(EventRow {
        idx: row.get(0)?,
        action: row.get(1)?,
        name: row.get(2)?,
        value: row.get(3)?,
        created_index: row.get(4)?,
        prev_value: row.get(5)?,
        prev_created_index: row.get(6)?,
        prev_modified_index: row.get(7)?,
    })
}

impl EventRow {
    fn into_event(self, token: &str) -> Result<Event, StoreError> {
        let action = Action::parse(&self.action).ok_or_else(|| {
            StoreError::Corrupt(format!("unknown event action {:?}", self.action))
        })?;
        let key = format!("/{token}/{}", self.name);
        let prev_node = match (self.prev_created_index, self.prev_modified_index) {
            (Some(created), Some(modified)) => Some(Node {
                key: key.clone(),
                value: self.prev_value,
                dir: false,
                nodes: Vec::new(),
                created_index: to_u64(created),
                modified_index: to_u64(modified),
            }),
            _ => None,
        };
        Ok(Event {
            action,
            node: Node {
                key,
                value: self.value,
                dir: false,
                nodes: Vec::new(),
                created_index: to_u64(self.created_index),
                modified_index: to_u64(self.idx),
            },
            prev_node,
        })
    }
}

#[cfg(test)]
mod tests;
