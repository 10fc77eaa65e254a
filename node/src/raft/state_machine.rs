//! The replicated state machine: committed entries applied to the MVCC
//! tables, the v2 keyspace's tables and the auth store (through
//! `auth_apply`), and snapshots of those tables.
//!
//! A batch of entries is applied in chunks of whole entries, each chunk in
//! one SQLite transaction that also records the chunk's last applied log id
//! and the membership, so state and position never disagree. The chunks
//! bound how long one apply holds the single writer connection the Raft log
//! shares: a follower appending entries for the leader (which must answer
//! within the heartbeat interval) waits for one chunk, never for a whole
//! backlog of committed entries. A small batch is one chunk, as before.
//! A batch is applied only once this member's log has it on disk (the
//! leader commits entries it may not have fsynced yet; see `log_store`).
//! Each command runs under a savepoint: a command the keyspace rules refuse
//! leaves no trace, a storage failure stops the node.
//!
//! A snapshot is a separate SQLite file holding the state tables, copied
//! inside one read transaction (so it is consistent with the applied id it
//! records) and streamed to followers from disk in chunks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{AnyError, EntryPayload, StorageIOError};
use tokio_rusqlite::rusqlite::{Connection, Transaction};

use super::log_store::Durability;
use super::{
    AppliedChange, ApplyObserver, Command, CommandResult, Entry, LogId, MemberAttributes, MemberId,
    RaftStorageError, SnapshotMeta, StoredMembership, TypeConfig, auth_apply,
};
use crate::auth::AuthStore;
use crate::mvcc::{self, KvRead, MvccError};
use crate::proto::etcdserverpb::{AlarmType, ResponseHeader};
use crate::proto::mvccpb::Event;
use crate::storage::{
    Db, Meta, RevisionCache, SharedIndex, SqliteKv, SqliteV2, StorageError, durably, load_index,
};
use crate::v2store::{self, V2Write};

/// openraft's view of our state: the database plus the snapshot files.
pub struct StateMachine {
    db: Db,
    snapshots: SnapshotStore,
    observer: Arc<dyn ApplyObserver>,
    /// The log's durability: entries are applied only once on disk. None
    /// only where entries are applied without a log (openraft's storage
    /// suite).
    durable_log: Option<Durability>,
}

/// The directory of snapshot files and the newest one's metadata.
#[derive(Clone)]
pub struct SnapshotStore {
    dir: PathBuf,
    current: Arc<Mutex<Option<SnapshotMeta>>>,
}

fn sm_error(e: impl ToString) -> RaftStorageError {
    StorageIOError::write_state_machine(AnyError::error(e.to_string())).into()
}

fn snapshot_error(e: impl ToString) -> RaftStorageError {
    StorageIOError::write_snapshot(None, AnyError::error(e.to_string())).into()
}

impl StateMachine {
    pub async fn open(
        db: Db,
        snapshot_dir: &Path,
        observer: Arc<dyn ApplyObserver>,
    ) -> Result<Self, StorageError> {
        let snapshots = SnapshotStore::open(snapshot_dir).await?;
        Ok(Self {
            db,
            snapshots,
            observer,
            durable_log: None,
        })
    }

    /// Applies each batch only once `log` has it on disk: the leader's
    /// entries may be committed before its own fsync ends (see `log_store`).
    pub fn applying_only_durable(mut self, log: Durability) -> Self {
        self.durable_log = Some(log);
        self
    }
}

/// The tables a snapshot carries, in copy order.
const STATE_TABLES: [&str; 8] = [
    "kv",
    "leases",
    "lease_keys",
    "v2_nodes",
    "v2_events",
    "v2_index",
    "auth_users",
    "auth_roles",
];
/// Meta rows that belong to the state machine (the rest belong to the log).
const STATE_META: &str = "(name LIKE 'mvcc.%' OR name LIKE 'sm.%')";

impl SnapshotStore {
    async fn open(dir: &Path) -> Result<Self, StorageError> {
        std::fs::create_dir_all(dir).map_err(|e| StorageError::Decode {
            what: "snapshot directory",
            detail: e.to_string(),
        })?;
        let newest = newest_snapshot(dir);
        let current = match newest {
            Some(path) => Some(read_snapshot_meta(&path).await?),
            None => None,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            current: Arc::new(Mutex::new(current)),
        })
    }

    fn path_of(&self, snapshot_id: &str) -> PathBuf {
        self.dir.join(format!("{snapshot_id}.db"))
    }

    fn incoming_path(&self) -> PathBuf {
        self.dir.join("incoming.partial")
    }

    /// The current snapshot and its file, opened under the same lock that
    /// `set_current` deletes older files under: a reader never finds its
    /// file gone between reading the meta and opening it (an open file
    /// stays readable after it is unlinked).
    fn open_current(&self) -> std::io::Result<Option<(SnapshotMeta, std::fs::File)>> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let Some(meta) = current.clone() else {
            return Ok(None);
        };
        let file = std::fs::File::open(self.path_of(&meta.snapshot_id))?;
        Ok(Some((meta, file)))
    }

    /// Makes `meta` the current snapshot and deletes older files.
    fn set_current(&self, meta: SnapshotMeta) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let keep = self.path_of(&meta.snapshot_id);
        if let Ok(dir) = std::fs::read_dir(&self.dir) {
            for file in dir.flatten() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == "db") && path != keep {
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        *current = Some(meta);
    }
}

/// Snapshot files are named `<term>-<index>-<nanos>.db`; the newest index
/// wins.
fn newest_snapshot(dir: &Path) -> Option<PathBuf> {
    let index_of = |p: &Path| -> Option<(u64, u64)> {
        let stem = p.file_stem()?.to_str()?;
        let mut parts = stem.split('-');
        let _term = parts.next()?;
        let index = parts.next()?.parse().ok()?;
        let nanos = parts.next()?.parse().ok()?;
        Some((index, nanos))
    };
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|f| f.path())
        .filter(|p| p.extension().is_some_and(|e| e == "db"))
        .filter_map(|p| index_of(&p).map(|k| (k, p)))
        .max_by_key(|(k, _)| *k)
        .map(|(_, p)| p)
}

async fn read_snapshot_meta(path: &Path) -> Result<SnapshotMeta, StorageError> {
    let path = path.to_path_buf();
    let snapshot_id = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default()
        .to_string();
    let conn = tokio_rusqlite::Connection::open(&path).await?;
    let (last_log_id, last_membership) = conn
        .call(|c| {
            let meta = Meta(c);
            let applied: Option<Option<LogId>> = meta.value(Meta::APPLIED)?;
            let membership: Option<StoredMembership> = meta.value(Meta::MEMBERSHIP)?;
            Ok::<_, StorageError>((applied.flatten(), membership.unwrap_or_default()))
        })
        .await?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership,
        snapshot_id,
    })
}

/// Records a revision's events for the observer.
fn record(changes: &mut Vec<AppliedChange>, header: &Option<ResponseHeader>, events: Vec<Event>) {
    if !events.is_empty() {
        let revision = header.as_ref().map_or(0, |h| h.revision);
        changes.push(AppliedChange::Events { revision, events });
    }
}

/// One command's savepoint. Its statements are cached: rusqlite's
/// `Transaction::savepoint` formats and parses `SAVEPOINT`/`RELEASE` anew
/// for every command, which the apply path paid for every put.
struct Savepoint<'c> {
    conn: &'c Connection,
    open: bool,
}

impl<'c> Savepoint<'c> {
    fn begin(conn: &'c Connection) -> Result<Self, StorageError> {
        conn.prepare_cached("SAVEPOINT command")?.execute([])?;
        Ok(Self { conn, open: true })
    }

    /// Keeps the command's changes.
    fn release(mut self) -> Result<(), StorageError> {
        self.open = false;
        self.conn.prepare_cached("RELEASE command")?.execute([])?;
        Ok(())
    }

    /// Drops the command's changes.
    fn undo(mut self) -> Result<(), StorageError> {
        self.open = false;
        self.conn
            .prepare_cached("ROLLBACK TO command")?
            .execute([])?;
        self.conn.prepare_cached("RELEASE command")?.execute([])?;
        Ok(())
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        // Only on a storage error, which abandons the whole transaction;
        // undone anyway so nothing half-applied can be committed by mistake.
        if self.open {
            let _ = self
                .conn
                .execute_batch("ROLLBACK TO command; RELEASE command");
        }
    }
}

/// What one apply transaction reads once and keeps for all its commands:
/// the revision counters (saved once, before the commit), the active
/// alarms and the auth flags. A command that changes alarms or auth empties
/// its entry, so the next command reads it again.
#[derive(Default)]
struct BatchCache {
    revisions: RevisionCache,
    alarms: Option<Vec<(u64, i32)>>,
    auth_flags: Option<AuthStore>,
}

/// Whether a refused `command` may have written before it was refused, so
/// that it needs a savepoint to take its writes back. A put is refused
/// only by its checks, before its first write, and a delete never is; a
/// savepoint would cost them a copy of every page they dirty (SQLite's
/// sub-journal), about a tenth of a put's apply.
fn refusal_may_follow_writes(command: &Command) -> bool {
    !matches!(command, Command::Put(_) | Command::DeleteRange(_))
}

/// Applies one command (under a savepoint where a refusal may follow its
/// writes), noting what observers must hear. Without `prev_values` (the
/// observer said nobody wants them), events leave out the values of the
/// versions they replace, so puts read no row.
fn apply_command(
    tx: &mut Transaction<'_>,
    keys: &SharedIndex,
    cache: &mut BatchCache,
    prev_values: bool,
    command: Command,
    index: u64,
    changes: &mut Vec<AppliedChange>,
) -> Result<CommandResult, StorageError> {
    if let Command::Batch(commands) = command {
        let results = commands
            .into_iter()
            .map(|command| apply_command(tx, keys, cache, prev_values, command, index, changes))
            .collect::<Result<_, _>>()?;
        return Ok(CommandResult::Batch(results));
    }
    let command = match auth_apply::screen(tx, command, index, changes, &mut cache.auth_flags)? {
        auth_apply::Screened::Done(result) => return Ok(result),
        auth_apply::Screened::Apply(command) => command,
    };
    if let Command::V2(write) = command {
        return apply_v2(tx, &write, changes);
    }
    let active_alarms = match &cache.alarms {
        Some(active) => active,
        None => cache.alarms.insert(alarms(tx)?),
    };
    if let Some(refusal) = refused_by_alarms(&command, active_alarms) {
        return Ok(CommandResult::Rejected(refusal));
    }
    if matches!(command, Command::Alarm { .. }) {
        cache.alarms = None;
    }
    let savepoint = if refusal_may_follow_writes(&command) {
        Some(Savepoint::begin(tx)?)
    } else {
        None
    };
    let mut kv = SqliteKv::cached_writer(tx, keys, &cache.revisions);
    if !prev_values {
        kv = kv.without_prev_values();
    }
    let outcome = match command {
        Command::Put(req) => mvcc::apply_put(&mut kv, &req).map(|applied| {
            record(changes, &applied.response.header, applied.events);
            CommandResult::Put(applied.response)
        }),
        Command::DeleteRange(req) => mvcc::apply_delete_range(&mut kv, &req).map(|applied| {
            record(changes, &applied.response.header, applied.events);
            CommandResult::DeleteRange(applied.response)
        }),
        Command::Txn(req) => mvcc::apply_txn(&mut kv, &req).map(|applied| {
            record(changes, &applied.response.header, applied.events);
            CommandResult::Txn(applied.response)
        }),
        Command::Compact(req) => mvcc::apply_compaction(&mut kv, &req).map(CommandResult::Compact),
        Command::LeaseGrant { id, ttl } => {
            mvcc::apply_lease_grant(&mut kv, id, ttl).and_then(|()| {
                changes.push(AppliedChange::LeaseGranted { id, ttl });
                let revision = mvcc::KvRead::revisions(&kv)?.current;
                Ok(CommandResult::Lease { revision })
            })
        }
        Command::LeaseRevoke { id } => mvcc::apply_lease_revoke(&mut kv, id).map(|applied| {
            let revision = applied.response;
            if !applied.events.is_empty() {
                changes.push(AppliedChange::Events {
                    revision,
                    events: applied.events,
                });
            }
            changes.push(AppliedChange::LeaseRevoked { id });
            CommandResult::Lease { revision }
        }),
        Command::PublishMember(attributes) => {
            publish_member(tx, attributes)?;
            Ok(CommandResult::Done)
        }
        Command::Alarm {
            member_id,
            alarm,
            activate,
        } => {
            set_alarm(tx, member_id, alarm, activate)?;
            Ok(CommandResult::Done)
        }
        // All handled above (a batch is never nested inside another).
        Command::Batch(_) | Command::V2(_) | Command::Auth(_) | Command::Authorized { .. } => {
            Err(MvccError::Backend(crate::mvcc::BackendError(
                "a batch or v2 command reached the MVCC apply".into(),
            )))
        }
    };
    match outcome {
        Ok(result) => {
            if let Some(savepoint) = savepoint {
                savepoint.release()?;
            }
            Ok(result)
        }
        Err(MvccError::Backend(e)) => Err(StorageError::Decode {
            what: "state machine",
            detail: e.0,
        }),
        Err(rejected) => {
            let wrote = kv.has_written();
            kv.undo();
            match savepoint {
                Some(savepoint) => savepoint.undo()?,
                // Its rows cannot be taken back: stop rather than keep half
                // a command.
                None if wrote => {
                    return Err(StorageError::Decode {
                        what: "state machine",
                        detail: format!("a command refused after it wrote: {rejected}"),
                    });
                }
                None => {}
            }
            Ok(CommandResult::Rejected(rejected))
        }
    }
}

/// Applies a v2 write under a savepoint: a refused write leaves no trace
/// but its counters; a storage failure stops the node.
fn apply_v2(
    tx: &mut Transaction<'_>,
    write: &V2Write,
    changes: &mut Vec<AppliedChange>,
) -> Result<CommandResult, StorageError> {
    let savepoint = Savepoint::begin(tx)?;
    let applied =
        v2store::apply(&mut SqliteV2::new(tx), write).map_err(|e| StorageError::Decode {
            what: "v2 store",
            detail: e.0,
        })?;
    let refused = matches!(applied.reply, Some(Err(_)));
    if refused {
        savepoint.undo()?;
    } else {
        savepoint.release()?;
    }
    changes.push(AppliedChange::V2 {
        notifications: applied.notifications,
        counted: applied.counted,
    });
    Ok(applied.reply.map_or(CommandResult::Done, |reply| {
        CommandResult::V2(reply.map(Box::new))
    }))
}

/// The active alarms, as (member id, alarm type).
pub fn alarms(conn: &Connection) -> Result<Vec<(u64, i32)>, StorageError> {
    Ok(Meta(conn).value(Meta::ALARMS)?.unwrap_or_default())
}

fn set_alarm(
    conn: &Connection,
    member_id: u64,
    alarm: i32,
    activate: bool,
) -> Result<(), StorageError> {
    let mut active = alarms(conn)?;
    active.retain(|entry| *entry != (member_id, alarm));
    if activate {
        active.push((member_id, alarm));
    }
    Meta(conn).set_value(Meta::ALARMS, &active)
}

/// What etcd's appliers refuse while alarms are raised: a CORRUPT alarm
/// stops every write, a NOSPACE alarm those that grow the database; other
/// alarm types stop nothing.
fn refused_by_alarms(command: &Command, active: &[(u64, i32)]) -> Option<MvccError> {
    let raised = |alarm: AlarmType| active.iter().any(|&(_, a)| a == alarm as i32);
    if raised(AlarmType::Corrupt) && is_client_write(command) {
        return Some(MvccError::Corrupt);
    }
    if raised(AlarmType::Nospace) && grows_database(command) {
        return Some(MvccError::NoSpace);
    }
    None
}

/// A keyspace or lease change a client asked for (or lease expiry).
fn is_client_write(command: &Command) -> bool {
    matches!(
        command,
        Command::Put(_)
            | Command::DeleteRange(_)
            | Command::Txn(_)
            | Command::Compact(_)
            | Command::LeaseGrant { .. }
            | Command::LeaseRevoke { .. }
    )
}

/// Whether a command could make the database bigger (what a raised space
/// alarm refuses, as etcd does): puts, writing txns, lease grants.
fn grows_database(command: &Command) -> bool {
    match command {
        Command::Put(_) | Command::LeaseGrant { .. } => true,
        Command::Txn(t) => mvcc::txn_has_puts(t),
        _ => false,
    }
}

fn publish_member(conn: &Connection, attributes: MemberAttributes) -> Result<(), StorageError> {
    let meta = Meta(conn);
    let mut all: BTreeMap<MemberId, MemberAttributes> =
        meta.value(Meta::MEMBER_ATTRIBUTES)?.unwrap_or_default();
    all.insert(attributes.id, attributes);
    meta.set_value(Meta::MEMBER_ATTRIBUTES, &all)
}

/// What applying a batch yields: one result per entry, and the changes
/// observers must hear about.
type BatchOutcome = (Vec<CommandResult>, Vec<AppliedChange>);

/// About how much work one apply transaction may hold the writer for, in
/// [`entry_work`] units (bytes of requests plus [`OP_WORK`] per
/// operation): one or two entries of a bulk import (each a few 128-put
/// transactions), which took some 50 to 150 ms to apply in a debug build
/// on a busy 2-core machine, where a backlog of 20 entries in one
/// transaction took over 200 ms.
const APPLY_CHUNK_WORK: usize = 128 * 1024;
/// The work of one operation beyond its bytes (its index updates and
/// revision rows), so a batch of many tiny writes counts as the work it is.
const OP_WORK: usize = 128;

/// About how much applying `entry` costs the writer (see [`APPLY_CHUNK_WORK`]).
fn entry_work(entry: &Entry) -> usize {
    match &entry.payload {
        EntryPayload::Normal(command) => command_work(command),
        EntryPayload::Blank | EntryPayload::Membership(_) => OP_WORK,
    }
}

fn command_work(command: &Command) -> usize {
    match command {
        Command::Batch(commands) => commands.iter().map(command_work).sum(),
        Command::Authorized { command, .. } => command_work(command),
        Command::Txn(txn) => {
            let ops = txn.compare.len() + txn.success.len() + txn.failure.len();
            command.approx_size() + OP_WORK * ops.max(1)
        }
        other => other.approx_size() + OP_WORK,
    }
}

/// Splits `entries` at entry boundaries into chunks of at most `budget`
/// work each (an entry heavier than the budget makes a chunk alone), in
/// order.
fn chunks_of_work(entries: Vec<Entry>, budget: usize) -> Vec<Vec<Entry>> {
    let mut chunks: Vec<Vec<Entry>> = Vec::new();
    let mut current = Vec::new();
    let mut work = 0;
    for entry in entries {
        let cost = entry_work(&entry);
        if !current.is_empty() && work + cost > budget {
            chunks.push(std::mem::take(&mut current));
            work = 0;
        }
        work += cost;
        current.push(entry);
    }
    if !current.is_empty() {
        chunks.push(current);
    }
    chunks
}

/// Applies a chunk of entries in one transaction.
fn apply_batch(
    conn: &mut Connection,
    keys: &SharedIndex,
    entries: Vec<Entry>,
    prev_values_wanted: bool,
) -> Result<BatchOutcome, StorageError> {
    // Whatever an abandoned transaction deferred did not happen.
    keys.abandon_pending();
    // Not fsynced (see `storage`): the next sync of the log covers this
    // transaction too, and if it is lost the entries are simply applied again.
    let mut tx = conn.transaction()?;
    let mut cache = BatchCache::default();
    let mut results = Vec::with_capacity(entries.len());
    let mut changes = Vec::new();
    let mut last_applied = None;
    let mut membership = None;
    for entry in entries {
        last_applied = Some(entry.log_id);
        results.push(match entry.payload {
            EntryPayload::Blank => CommandResult::Done,
            EntryPayload::Normal(command) => apply_command(
                &mut tx,
                keys,
                &mut cache,
                prev_values_wanted,
                command,
                entry.log_id.index,
                &mut changes,
            )?,
            EntryPayload::Membership(m) => {
                membership = Some(StoredMembership::new(Some(entry.log_id), m));
                CommandResult::Done
            }
        });
    }
    cache.revisions.save(&tx)?;
    let meta = Meta(&tx);
    meta.set_value(Meta::APPLIED, &last_applied)?;
    if let Some(membership) = &membership {
        meta.set_value(Meta::MEMBERSHIP, membership)?;
    }
    keys.publish(|| tx.commit())?;
    Ok((results, changes))
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership), RaftStorageError> {
        self.db
            .read(|tx| {
                let meta = Meta(tx);
                let applied: Option<Option<LogId>> = meta.value(Meta::APPLIED)?;
                let membership: Option<StoredMembership> = meta.value(Meta::MEMBERSHIP)?;
                Ok((applied.flatten(), membership.unwrap_or_default()))
            })
            .await
            .map_err(sm_error)
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<CommandResult>, RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        if let (Some(log), Some(last)) = (&self.durable_log, entries.last()) {
            log.wait_for(last.log_id.index).await.map_err(sm_error)?;
        }
        let chunks = chunks_of_work(entries, APPLY_CHUNK_WORK);
        tracing::trace!(chunks = chunks.len(), "apply batch");
        let mut results = Vec::new();
        // One writer call per chunk, awaited in turn: log appends queued
        // meanwhile get the writer between two chunks.
        for chunk in chunks {
            let keys = self.db.key_index().clone();
            let prev_values = self.observer.wants_prev_values();
            let (chunk_results, changes) = self
                .db
                .write(move |conn| apply_batch(conn, &keys, chunk, prev_values))
                .await
                .map_err(sm_error)?;
            results.extend(chunk_results);
            if !changes.is_empty() {
                self.observer.applied(changes);
            }
        }
        Ok(results)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            db: self.db.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<tokio::fs::File>, RaftStorageError> {
        // Read-write: chunks are written into it, then it is read back when
        // the snapshot is installed.
        let file = tokio::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(self.snapshots.incoming_path())
            .await
            .map_err(snapshot_error)?;
        Ok(Box::new(file))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<tokio::fs::File>,
    ) -> Result<(), RaftStorageError> {
        // Copy from the handle we are given (it need not be the file
        // `begin_receiving_snapshot` created) into the snapshot's own file.
        let path = self.snapshots.path_of(&meta.snapshot_id);
        let partial = self.snapshots.dir.join("installing.partial");
        copy_snapshot(snapshot, &partial, &path)
            .await
            .map_err(snapshot_error)?;
        let _ = tokio::fs::remove_file(self.snapshots.incoming_path()).await;
        let owned_meta = meta.clone();
        let source = path.clone();
        let keys = self.db.key_index().clone();
        self.db
            .write(move |conn| replace_state(conn, &keys, &source, &owned_meta))
            .await
            .map_err(snapshot_error)?;
        tracing::info!(snapshot = %meta.snapshot_id, last_log_id = ?meta.last_log_id, "installed snapshot");
        let (revision, leases, auth) = self
            .db
            .read_kv(|kv| {
                Ok((
                    kv.revisions()?.current,
                    kv.leases()?,
                    auth_apply::load(kv.conn())?,
                ))
            })
            .await
            .map_err(snapshot_error)?;
        self.observer.restored(revision, leases);
        self.observer.applied(vec![AppliedChange::Auth {
            store: Arc::new(auth),
            tokens: crate::auth::TokenEffect::None,
        }]);
        self.snapshots.set_current(meta.clone());
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, RaftStorageError> {
        let Some((meta, file)) = self.snapshots.open_current().map_err(snapshot_error)? else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(tokio::fs::File::from_std(file)),
        }))
    }
}

/// Writes the whole of `source` to `dest` durably (through `partial`, so a
/// crash never leaves a half-written snapshot under its final name).
async fn copy_snapshot(
    mut source: Box<tokio::fs::File>,
    partial: &Path,
    dest: &Path,
) -> std::io::Result<()> {
    use tokio::io::AsyncSeekExt;
    source.seek(std::io::SeekFrom::Start(0)).await?;
    let mut out = tokio::fs::File::create(partial).await?;
    tokio::io::copy(&mut source, &mut out).await?;
    out.sync_all().await?;
    tokio::fs::rename(partial, dest).await
}

/// Replaces the state tables with a snapshot's, durably, in one
/// transaction, and the key index with theirs.
fn replace_state(
    conn: &mut Connection,
    keys: &SharedIndex,
    source: &Path,
    meta: &SnapshotMeta,
) -> Result<(), StorageError> {
    conn.execute("ATTACH DATABASE ?1 AS snap", [source.to_string_lossy()])?;
    let result = durably(conn, |conn| {
        let tx = conn.transaction()?;
        for table in STATE_TABLES {
            tx.execute(&format!("DELETE FROM main.{table}"), [])?;
            // A snapshot from a member of an older schema lacks the newer
            // tables: they are simply empty there.
            let present: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM snap.sqlite_master WHERE type = 'table' AND name = ?1)",
                [table],
                |r| r.get(0),
            )?;
            if present {
                tx.execute(
                    &format!("INSERT INTO main.{table} SELECT * FROM snap.{table}"),
                    [],
                )?;
            }
        }
        tx.execute_batch(&format!(
            "DELETE FROM main.meta WHERE {STATE_META}; \
             INSERT INTO main.meta SELECT * FROM snap.meta WHERE {STATE_META};"
        ))?;
        let m = Meta(&tx);
        m.set_value(Meta::APPLIED, &meta.last_log_id)?;
        m.set_value(Meta::MEMBERSHIP, &meta.last_membership)?;
        let index = load_index(&tx)?;
        keys.replace(index, || tx.commit())?;
        Ok(())
    });
    conn.execute("DETACH DATABASE snap", [])?;
    result
}

/// Copies the state tables into a new snapshot file.
pub struct SnapshotBuilder {
    db: Db,
    snapshots: SnapshotStore,
}

fn file_error(e: std::io::Error) -> StorageError {
    StorageError::Decode {
        what: "snapshot file",
        detail: e.to_string(),
    }
}

/// Writes the state tables to a new database at `target` inside one read
/// transaction (so the copy is consistent), fsyncs it, and returns the
/// applied log id and membership it reflects.
fn copy_state_to(
    conn: &mut Connection,
    target: &Path,
) -> Result<(Option<LogId>, StoredMembership), StorageError> {
    let _ = std::fs::remove_file(target);
    // The copy gets the full schema, so it is also a database to restore from.
    {
        let snap = Connection::open(target)?;
        snap.execute_batch(crate::storage::SCHEMA)?;
    }
    conn.execute("ATTACH DATABASE ?1 AS snap", [target.to_string_lossy()])?;
    let copied = (|| {
        let tx = conn.transaction()?;
        let meta = Meta(&tx);
        let applied: Option<LogId> = meta.value::<Option<LogId>>(Meta::APPLIED)?.flatten();
        let membership: StoredMembership = meta.value(Meta::MEMBERSHIP)?.unwrap_or_default();
        for table in STATE_TABLES {
            tx.execute(
                &format!("INSERT INTO snap.{table} SELECT * FROM main.{table}"),
                [],
            )?;
        }
        tx.execute(
            &format!("INSERT INTO snap.meta SELECT * FROM main.meta WHERE {STATE_META}"),
            [],
        )?;
        tx.commit()?;
        Ok::<_, StorageError>((applied, membership))
    })();
    conn.execute("DETACH DATABASE snap", [])?;
    let copied = copied?;
    std::fs::File::open(target)
        .and_then(|f| f.sync_all())
        .map_err(file_error)?;
    Ok(copied)
}

/// Builds a Raft snapshot file in `dir`; returns its meta.
fn copy_state(conn: &mut Connection, dir: &Path) -> Result<SnapshotMeta, StorageError> {
    let partial = dir.join("building.partial");
    let (last_log_id, last_membership) = copy_state_to(conn, &partial)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let (term, index) = last_log_id.map_or((0, 0), |id| (id.leader_id.term, id.index));
    let snapshot_id = format!("{term}-{index}-{nanos}");
    std::fs::rename(&partial, dir.join(format!("{snapshot_id}.db"))).map_err(file_error)?;
    Ok(SnapshotMeta {
        last_log_id,
        last_membership,
        snapshot_id,
    })
}

/// Writes a consistent copy of the keyspace to `target` (the payload of
/// `Maintenance.Snapshot`, and what `restore_backup` reads).
pub async fn write_backup(db: &Db, target: PathBuf) -> Result<(), StorageError> {
    db.read_raw(move |conn| copy_state_to(conn, &target).map(|_| ()))
        .await
}

/// Makes `data_dir` the data dir of a member of a *new* cluster holding the
/// keyspace of `backup` (etcd's `snapshot restore`): the keys, revisions,
/// leases and auth store stay; Raft state, membership and identity are left out, so
/// the member bootstraps with its own `--initial-cluster`.
pub fn restore_backup(backup: &Path, data_dir: &Path) -> Result<(), StorageError> {
    let member = data_dir.join("member");
    if member.exists() {
        return Err(StorageError::Decode {
            what: "restore target",
            detail: format!("data dir {} already holds a member", data_dir.display()),
        });
    }
    std::fs::create_dir_all(&member).map_err(file_error)?;
    let target = member.join("cetera.db");
    std::fs::copy(backup, &target).map_err(file_error)?;
    let conn = Connection::open(&target)?;
    let verdict: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
    if verdict != "ok" {
        return Err(StorageError::Corrupt {
            path: backup.to_path_buf(),
            detail: verdict,
        });
    }
    conn.execute_batch(
        "DELETE FROM raft_log; \
         DELETE FROM meta WHERE name NOT LIKE 'mvcc.%' AND name NOT LIKE 'sm.auth_%';",
    )?;
    drop(conn);
    std::fs::File::open(&target)
        .and_then(|f| f.sync_all())
        .map_err(file_error)?;
    Ok(())
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, RaftStorageError> {
        let dir = self.snapshots.dir.clone();
        let meta = self
            .db
            .read_raw(move |conn| copy_state(conn, &dir))
            .await
            .map_err(snapshot_error)?;
        tracing::info!(snapshot = %meta.snapshot_id, "built snapshot");
        // Opened before it becomes current: from then on a newer build may
        // delete it.
        let file = tokio::fs::File::open(self.snapshots.path_of(&meta.snapshot_id))
            .await
            .map_err(snapshot_error)?;
        self.snapshots.set_current(meta.clone());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(file),
        })
    }
}

#[cfg(test)]
mod tests {
    use openraft::CommittedLeaderId;

    use super::*;
    use crate::proto::etcdserverpb::PutRequest;

    fn put_entry(index: u64, value_bytes: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::Put(PutRequest {
                key: format!("k{index}").into_bytes(),
                value: vec![b'v'; value_bytes],
                ..Default::default()
            })),
        }
    }

    fn indexes(chunks: &[Vec<Entry>]) -> Vec<Vec<u64>> {
        chunks
            .iter()
            .map(|c| c.iter().map(|e| e.log_id.index).collect())
            .collect()
    }

    #[test]
    fn a_small_batch_is_one_chunk() {
        let entries: Vec<Entry> = (1..=3).map(|i| put_entry(i, 10)).collect();
        let chunks = chunks_of_work(entries, APPLY_CHUNK_WORK);
        assert_eq!(indexes(&chunks), [[1, 2, 3]]);
    }

    #[test]
    fn chunks_split_at_entry_boundaries_within_the_budget_and_keep_order() {
        let entries: Vec<Entry> = (1..=7).map(|i| put_entry(i, 1000)).collect();
        let one = entry_work(&entries[0]);
        let chunks = chunks_of_work(entries, 3 * one);
        assert_eq!(indexes(&chunks), [vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
        for chunk in &chunks {
            assert!(chunk.iter().map(entry_work).sum::<usize>() <= 3 * one);
        }
    }

    #[test]
    fn an_entry_heavier_than_the_budget_goes_alone() {
        let entries = vec![put_entry(1, 10), put_entry(2, 10_000), put_entry(3, 10)];
        let chunks = chunks_of_work(entries, 1000);
        assert_eq!(indexes(&chunks), [[1], [2], [3]]);
    }

    #[test]
    fn many_tiny_operations_count_as_work_beyond_their_bytes() {
        let tiny: Vec<Command> = (0..1000)
            .map(|i| {
                Command::Put(PutRequest {
                    key: format!("{i}").into_bytes(),
                    ..Default::default()
                })
            })
            .collect();
        let batch = Command::Batch(tiny);
        assert!(command_work(&batch) >= 1000 * OP_WORK);
        assert!(command_work(&batch) > batch.approx_size());
    }

    /// Remembers every notification, in order.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<AppliedChange>>);

    impl ApplyObserver for Recorder {
        fn applied(&self, changes: Vec<AppliedChange>) {
            self.0.lock().unwrap().extend(changes);
        }
        fn restored(&self, _: i64, _: Vec<(i64, i64)>) {}
    }

    #[tokio::test]
    async fn a_batch_applied_in_several_chunks_answers_and_notifies_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        let recorder = Arc::new(Recorder::default());
        let mut sm = StateMachine::open(db, &dir.path().join("snap"), recorder.clone())
            .await
            .unwrap();
        // Enough bytes for several chunks.
        let count = 40;
        let value_bytes = APPLY_CHUNK_WORK / 8;
        let entries: Vec<Entry> = (1..=count).map(|i| put_entry(i, value_bytes)).collect();
        assert!(chunks_of_work(entries.clone(), APPLY_CHUNK_WORK).len() > 1);

        let results = sm.apply(entries).await.unwrap();

        let revisions: Vec<i64> = results
            .iter()
            .map(|r| match r {
                CommandResult::Put(put) => put.header.as_ref().unwrap().revision,
                other => panic!("unexpected result {other:?}"),
            })
            .collect();
        assert_eq!(revisions, (2..=count as i64 + 1).collect::<Vec<_>>());
        let notified: Vec<i64> = recorder
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|c| match c {
                AppliedChange::Events { revision, .. } => *revision,
                other => panic!("unexpected change {other:?}"),
            })
            .collect();
        assert_eq!(notified, revisions);
        let (applied, _) = sm.applied_state().await.unwrap();
        assert_eq!(applied.map(|id| id.index), Some(count));
    }

    #[tokio::test]
    async fn a_refused_command_leaves_no_trace_between_applied_ones() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        let mut sm = StateMachine::open(
            db.clone(),
            &dir.path().join("snap"),
            Arc::new(Recorder::default()),
        )
        .await
        .unwrap();
        let mut refused = put_entry(2, 4);
        if let EntryPayload::Normal(Command::Put(put)) = &mut refused.payload {
            put.lease = 999; // never granted
        }
        let batch = Command::Batch(
            [put_entry(1, 4), refused, put_entry(3, 4)]
                .into_iter()
                .map(|e| match e.payload {
                    EntryPayload::Normal(command) => command,
                    _ => unreachable!(),
                })
                .collect(),
        );
        let entry = Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), 1),
            payload: EntryPayload::Normal(batch),
        };

        let results = sm.apply([entry]).await.unwrap();

        let CommandResult::Batch(results) = &results[0] else {
            panic!("unexpected {results:?}");
        };
        let revision = |r: &CommandResult| match r {
            CommandResult::Put(put) => put.header.as_ref().unwrap().revision,
            other => panic!("unexpected result {other:?}"),
        };
        assert_eq!(revision(&results[0]), 2);
        assert!(
            matches!(results[1], CommandResult::Rejected(_)),
            "{results:?}"
        );
        assert_eq!(revision(&results[2]), 3, "the refused put took no revision");
        let rows: Vec<Vec<u8>> = db
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT key FROM kv ORDER BY mod_rev")?;
                let keys = stmt.query_map([], |r| r.get(0))?;
                Ok(keys.collect::<Result<_, _>>()?)
            })
            .await
            .unwrap();
        assert_eq!(rows, [b"k1".to_vec(), b"k3".to_vec()]);
        // The batch kept its revisions in memory and saved the last one.
        let saved = db
            .read(|conn| Meta(conn).i64(Meta::CURRENT_REVISION))
            .await
            .unwrap();
        assert_eq!(saved, Some(3));
    }
}
