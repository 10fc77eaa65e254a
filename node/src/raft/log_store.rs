//! The Raft log on SQLite, with group commit.
//!
//! `append` hands entries to one writer task, which drains everything
//! queued (appends, truncations, purges, votes) into a single SQLite
//! transaction; a WAL syncer thread then makes it durable with one
//! `fdatasync` (covering every batch committed while the previous one ran)
//! and reports each append as flushed. So a burst of concurrent proposals
//! costs one disk sync, not one each, and the shared writer connection is
//! free for applies while the disk syncs.
//!
//! Recent entries also stay in memory, so replication reads (the hot path on
//! the leader) never touch SQLite, and reads always see entries that were
//! appended but are not yet flushed.
//!
//! **The leader's own appends are reported flushed at once**, before their
//! fsync, as etcd's leader sends entries to followers while it writes them
//! to its own WAL: openraft 0.9 otherwise waits for the leader's fsync
//! before it replicates, which puts two fsyncs in a row on every write's
//! path. What the leader has only in memory must still never be acted on,
//! so [`Durability`] tells how far the log is on disk and three places wait
//! for it:
//! - the network counts a follower's acknowledgement only once the leader
//!   has the same entries on disk (so openraft's commit index only counts
//!   durable copies, the leader's included);
//! - the network never tells a peer a commit index beyond the leader's disk
//!   (a single-voter leader commits on its own say-so);
//! - the state machine applies only entries on this member's disk.
//!
//! A follower's appends are reported only once durable: its acknowledgement
//! is the promise.
//!
//! **A restarted leader never leads on in its old term.** openraft 0.9
//! resumes leadership from a saved committed vote of its own, but entries
//! this leader reported before its crash may never have reached its disk
//! while a follower holds them: leading on, it would write new entries
//! under those same log ids, and log matching would take the two for one
//! (a permanent divergence). So [`LogStore::open`] saves such a vote back
//! as a mere candidacy for the same term: the member must win a new term,
//! whose entries carry new log ids, and the Raft rules settle the rest.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{AnyError, RaftLogId, StorageIOError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rusqlite::rusqlite::{Connection, params};

use super::{Entry, LogId, MemberId, RaftStorageError, TypeConfig, Vote};
use crate::histogram::Histogram;
use crate::storage::{Db, Meta, StorageError, WalFile, durably};

/// How many flushed entries stay cached behind the newest one at most...
const CACHED_FLUSHED_ENTRIES: u64 = 2048;
/// ...and how many bytes of them: batched entries can be large (a bulk
/// import's are tens of kB), and a follower that lags further reads SQLite.
/// Followers in step need only the last few entries; at 8 MiB this cache
/// was a third of a member's resident memory after a benchmark (its
/// entries' allocations are counted only roughly), and 1 MiB made no
/// measurable difference to put or bulk-import throughput.
const CACHED_FLUSHED_BYTES: usize = 1 << 20;
/// At most this many queued operations go into one transaction.
const MAX_BATCH: usize = 1024;
/// The committed id is saved only once it has moved this far since it was
/// last saved. It is a hint (see `save_committed`), and the meta row it
/// lives in would otherwise cost every write's log transaction one more
/// page in the write-ahead log, and every fsync that much more to flush.
const COMMITTED_SAVE_DISTANCE: u64 = 1024;

/// The log as openraft sees it; cheap to clone (it is also the log reader).
#[derive(Clone)]
pub struct LogStore {
    /// This member: appends made while it leads are reported at once.
    me: MemberId,
    db: Db,
    cache: Arc<Mutex<LogCache>>,
    writes: mpsc::UnboundedSender<LogWrite>,
    /// How long each sync of the log took (`etcd_disk_wal_fsync_duration_seconds`).
    fsync: Arc<Histogram>,
    durable: watch::Receiver<OnDisk>,
}

/// How far the log is on disk, as the writer last reported.
#[derive(Debug, Clone, Default)]
struct OnDisk {
    /// Every entry up to this index is durable.
    up_to: u64,
    /// Set for good once a durable write failed.
    failed: Option<String>,
}

/// Why an entry will not be durable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurabilityError {
    #[error("writing the raft log failed: {0}")]
    WriteFailed(String),
    #[error("the raft log writer stopped")]
    Stopped,
}

/// A view of how far the log is on disk, for those that must not act on
/// entries the leader holds only in memory (see the module docs).
#[derive(Clone)]
pub struct Durability {
    durable: watch::Receiver<OnDisk>,
}

impl Durability {
    /// A log that has every entry on disk, for tests of its users.
    #[cfg(test)]
    pub(crate) fn of_everything() -> Self {
        let (on_disk, durable) = watch::channel(OnDisk {
            up_to: u64::MAX,
            failed: None,
        });
        // Kept open for good, so waits never see the writer gone.
        std::mem::forget(on_disk);
        Self { durable }
    }

    /// Waits until every entry up to `index` is on disk.
    pub async fn wait_for(&self, index: u64) -> Result<(), DurabilityError> {
        let mut durable = self.durable.clone();
        let on_disk = durable
            .wait_for(|d| d.up_to >= index || d.failed.is_some())
            .await
            .map_err(|_| DurabilityError::Stopped)?;
        match &on_disk.failed {
            Some(e) => Err(DurabilityError::WriteFailed(e.clone())),
            None => Ok(()),
        }
    }
}

/// Entries not yet purged, newest last; the unflushed ones among them.
struct LogCache {
    entries: BTreeMap<u64, Entry>,
    /// The approximate size of `entries`.
    bytes: usize,
    last_purged: Option<LogId>,
    /// The newest committed id saved, which reaches SQLite with the next
    /// durable batch: reads answer from here so they see every save.
    committed: Option<LogId>,
    flushed_up_to: u64,
    /// True while the last vote saved is this member's own, committed: it
    /// leads, and every append is its own new entries.
    leading: bool,
}

/// About how much memory a cached entry holds.
fn entry_bytes(entry: &Entry) -> usize {
    const OVERHEAD: usize = 64;
    OVERHEAD
        + match &entry.payload {
            openraft::EntryPayload::Normal(command) => command.approx_size(),
            _ => 0,
        }
}

impl LogCache {
    fn insert(&mut self, entry: Entry) {
        self.bytes += entry_bytes(&entry);
        if let Some(replaced) = self.entries.insert(entry.log_id.index, entry) {
            self.bytes -= entry_bytes(&replaced);
        }
    }

    /// Drops the entries at `from` and after.
    fn remove_from(&mut self, from: u64) {
        let removed = self.entries.split_off(&from);
        self.bytes -= removed.values().map(entry_bytes).sum::<usize>();
    }

    /// Drops the entries before `index`.
    fn remove_before(&mut self, index: u64) {
        let kept = self.entries.split_off(&index);
        let removed = std::mem::replace(&mut self.entries, kept);
        self.bytes -= removed.values().map(entry_bytes).sum::<usize>();
    }

    /// Forgets the oldest flushed entries beyond the cache's bounds; the
    /// newest entry and every unflushed one always stay.
    fn trim(&mut self) {
        let keep_from = self.flushed_up_to.saturating_sub(CACHED_FLUSHED_ENTRIES);
        self.remove_before(keep_from);
        while self.bytes > CACHED_FLUSHED_BYTES {
            let Some(first) = self.entries.first_entry() else {
                break;
            };
            if *first.key() >= self.flushed_up_to {
                break;
            }
            self.bytes -= entry_bytes(&first.remove());
        }
    }
}

/// One queued change to the log's tables.
enum LogWrite {
    Append {
        rows: Vec<(u64, Vec<u8>)>,
        /// None when the append was already reported (the leader's).
        flushed: Option<LogFlushed<TypeConfig>>,
    },
    Truncate {
        from: u64,
        done: oneshot::Sender<Result<(), String>>,
    },
    Purge {
        upto: LogId,
        done: oneshot::Sender<Result<(), String>>,
    },
    Vote {
        vote: Vote,
        done: oneshot::Sender<Result<(), String>>,
    },
}

fn io_error(e: impl ToString) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn write_error(e: impl ToString) -> RaftStorageError {
    StorageIOError::write_logs(AnyError::error(e.to_string())).into()
}

fn read_error(e: impl ToString) -> RaftStorageError {
    StorageIOError::read_logs(AnyError::error(e.to_string())).into()
}

impl LogStore {
    /// Opens the log of member `me` kept in `db`, loading its tail into
    /// memory, and starts the writer task.
    pub async fn open(db: Db, me: MemberId) -> Result<Self, StorageError> {
        step_down_from_saved_leadership(&db, me).await?;
        let (last_purged, committed, tail) = db
            .read(|tx| {
                let last_purged: Option<LogId> = Meta(tx).value(Meta::LAST_PURGED)?;
                let committed: Option<Option<LogId>> = Meta(tx).value(Meta::COMMITTED)?;
                let mut stmt =
                    tx.prepare("SELECT entry FROM raft_log ORDER BY idx DESC LIMIT ?1")?;
                let rows =
                    stmt.query_map([CACHED_FLUSHED_ENTRIES as i64], |r| r.get::<_, Vec<u8>>(0))?;
                // Newest first, and no more than the cache keeps: after a
                // bulk import the last entries are tens of kB each, and
                // decoding thousands of them only to trim them raised the
                // member's resident memory for good.
                let mut tail = Vec::new();
                let mut bytes = 0;
                for row in rows {
                    let entry = decode(&row?)?;
                    bytes += entry_bytes(&entry);
                    tail.push(entry);
                    if bytes > CACHED_FLUSHED_BYTES {
                        break;
                    }
                }
                Ok((last_purged, committed.flatten(), tail))
            })
            .await?;
        let flushed_up_to = tail
            .first()
            .map(|e: &Entry| e.log_id.index)
            .or(last_purged.map(|p| p.index))
            .unwrap_or(0);
        let mut cache = LogCache {
            entries: BTreeMap::new(),
            bytes: 0,
            last_purged,
            committed,
            flushed_up_to,
            leading: false,
        };
        for entry in tail {
            cache.insert(entry);
        }
        cache.trim();
        let (writes, queue) = mpsc::unbounded_channel();
        let (on_disk, durable) = watch::channel(OnDisk {
            up_to: flushed_up_to,
            failed: None,
        });
        let cache = Arc::new(Mutex::new(cache));
        let fsync = Arc::new(Histogram::fsync());
        let syncer = WalSyncer::start(db.wal_file(), fsync.clone())?;
        tokio::spawn(run_writer(
            Writer {
                db: db.clone(),
                cache: cache.clone(),
                syncer,
                on_disk,
            },
            queue,
            committed,
        ));
        Ok(Self {
            me,
            db,
            cache,
            writes,
            fsync,
            durable,
        })
    }

    /// How far this log is on disk.
    pub fn durability(&self) -> Durability {
        Durability {
            durable: self.durable.clone(),
        }
    }

    /// Durations of the log's durable writes, for `/metrics`.
    pub fn fsync_durations(&self) -> Arc<Histogram> {
        self.fsync.clone()
    }

    fn cache(&self) -> MutexGuard<'_, LogCache> {
        lock(&self.cache)
    }

    #[allow(
        clippy::result_large_err,
        reason = "openraft's StorageError is the trait's error type"
    )]
    fn enqueue(&self, write: LogWrite) -> Result<(), RaftStorageError> {
        self.writes
            .send(write)
            .map_err(|_| write_error("log writer stopped"))
    }

    async fn enqueue_and_wait(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), String>>) -> LogWrite,
    ) -> Result<(), RaftStorageError> {
        let (done, wait) = oneshot::channel();
        self.enqueue(make(done))?;
        wait.await
            .map_err(|_| write_error("log writer stopped"))?
            .map_err(write_error)
    }
}

fn decode(bytes: &[u8]) -> Result<Entry, StorageError> {
    postcard::from_bytes(bytes).map_err(|e| StorageError::Decode {
        what: "raft log entry",
        detail: e.to_string(),
    })
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, RaftStorageError> {
        let (start, end) = bounds(&range);
        if start >= end {
            return Ok(Vec::new());
        }
        let (cached, first_cached) = {
            let cache = self.cache();
            let cached: Vec<Entry> = cache
                .entries
                .range(start..end)
                .map(|(_, e)| e.clone())
                .collect();
            (cached, cache.entries.keys().next().copied())
        };
        // Older entries than the cache holds are flushed, so SQLite has them.
        let uncached_end = first_cached.map_or(end, |f| f.min(end));
        if start >= uncached_end {
            return Ok(cached);
        }
        let mut older = self
            .db
            .read(move |tx| {
                let mut stmt = tx.prepare_cached(
                    "SELECT entry FROM raft_log WHERE idx >= ?1 AND idx < ?2 ORDER BY idx",
                )?;
                let rows = stmt.query_map(
                    params![start as i64, uncached_end.min(i64::MAX as u64) as i64],
                    |r| r.get::<_, Vec<u8>>(0),
                )?;
                let mut entries = Vec::new();
                for row in rows {
                    entries.push(decode(&row?)?);
                }
                Ok(entries)
            })
            .await
            .map_err(read_error)?;
        older.extend(cached);
        Ok(older)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, RaftStorageError> {
        let cache = self.cache();
        let last_log_id = cache
            .entries
            .values()
            .next_back()
            .map(|e| e.log_id)
            .or(cache.last_purged);
        Ok(LogState {
            last_purged_log_id: cache.last_purged,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote) -> Result<(), RaftStorageError> {
        let vote = *vote;
        // openraft saves a vote before it appends under it: as a follower the
        // leader's, as a new leader its own committed one.
        self.cache().leading = vote.is_committed() && vote.leader_id().voted_for() == Some(self.me);
        self.enqueue_and_wait(|done| LogWrite::Vote { vote, done })
            .await
    }

    async fn read_vote(&mut self) -> Result<Option<Vote>, RaftStorageError> {
        self.db
            .read(|tx| Meta(tx).value(Meta::VOTE))
            .await
            .map_err(read_error)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), RaftStorageError> {
        // Written along with a later durable batch (once it moved far, see
        // `COMMITTED_SAVE_DISTANCE`) rather than in a transaction of its own
        // (which every commit would cost on every member, ahead of the apply
        // on the same writer connection). A stale one on disk only means a
        // restarted member applies its last entries once a leader tells it
        // they are committed; what its state machine applied it keeps.
        self.cache().committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, RaftStorageError> {
        Ok(self.cache().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), RaftStorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut rows = Vec::new();
        let leading = {
            let mut cache = self.cache();
            for entry in entries {
                let bytes = postcard::to_stdvec(&entry).map_err(write_error)?;
                let index = entry.get_log_id().index;
                rows.push((index, bytes));
                cache.insert(entry);
            }
            cache.leading
        };
        if !leading || self.durable.borrow().failed.is_some() {
            return self.enqueue(LogWrite::Append {
                rows,
                flushed: Some(callback),
            });
        }
        // The leader's own entries: replication may start now (see the
        // module docs for who waits for the disk instead).
        self.enqueue(LogWrite::Append {
            rows,
            flushed: None,
        })?;
        callback.log_io_completed(Ok(()));
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), RaftStorageError> {
        let from = log_id.index;
        {
            let mut cache = self.cache();
            cache.remove_from(from);
            cache.flushed_up_to = cache.flushed_up_to.min(from.saturating_sub(1));
        }
        self.enqueue_and_wait(|done| LogWrite::Truncate { from, done })
            .await
    }

    async fn purge(&mut self, upto: LogId) -> Result<(), RaftStorageError> {
        {
            let mut cache = self.cache();
            cache.remove_before(upto.index + 1);
            cache.last_purged = Some(upto);
        }
        self.enqueue_and_wait(|done| LogWrite::Purge { upto, done })
            .await
    }
}

fn lock(cache: &Mutex<LogCache>) -> MutexGuard<'_, LogCache> {
    // A poisoned lock means a panic mid-update; the data is still a valid
    // map, and the storage task reports the failure itself.
    cache.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the writer task writes to and reports into.
struct Writer {
    db: Db,
    cache: Arc<Mutex<LogCache>>,
    syncer: WalSyncer,
    on_disk: watch::Sender<OnDisk>,
}

/// Where the durable index stands once `changes` are on disk, from `up_to`.
/// Purged entries count as durable: only what a snapshot holds is purged.
fn durable_after(up_to: u64, changes: &[TableChange]) -> u64 {
    changes.iter().fold(up_to, |up_to, change| match change {
        TableChange::Append(rows) => rows.last().map_or(up_to, |(i, _)| up_to.max(*i)),
        TableChange::Truncate(from) => up_to.min(from.saturating_sub(1)),
        TableChange::Purge(upto) => up_to.max(upto.index),
        TableChange::Vote(_) | TableChange::Committed(_) => up_to,
    })
}

/// Drains the queue in batches: one transaction and one fsync per batch.
/// The committed id rides along with a durable batch once it has moved
/// [`COMMITTED_SAVE_DISTANCE`] entries past `committed_on_disk`.
async fn run_writer(
    writer: Writer,
    mut queue: mpsc::UnboundedReceiver<LogWrite>,
    mut committed_on_disk: Option<LogId>,
) {
    let Writer {
        db,
        cache,
        syncer,
        on_disk,
    } = writer;
    let mut planned_up_to = on_disk.borrow().up_to;
    let on_disk = Arc::new(on_disk);
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(write) => batch.push(write),
                Err(_) => break,
            }
        }
        tracing::trace!(writes = batch.len(), "log batch");
        let (mut tables, replies): (Vec<_>, Vec<_>) = batch.into_iter().map(split_write).unzip();
        let committed = lock(&cache).committed;
        let save_committed = moved_far(committed_on_disk, committed)
            && tables.iter().any(TableChange::must_be_durable);
        if save_committed {
            tables.push(TableChange::Committed(committed));
        }
        planned_up_to = durable_after(planned_up_to, &tables);
        let durable = tables.iter().any(TableChange::must_be_durable);
        let report = BatchReport {
            up_to: planned_up_to,
            cache: cache.clone(),
            on_disk: on_disk.clone(),
            replies: replies.into_iter().flatten().collect(),
            told: false,
        };
        let syncer = syncer.clone();
        let written = db
            .write(move |conn| {
                let written = write_batch(conn, tables).map_err(|e| e.to_string());
                syncer.sync(Committed {
                    report,
                    written: written.clone(),
                    durable,
                });
                Ok(written)
            })
            .await;
        // The report went with the closure if it never ran.
        if matches!(written, Ok(Ok(_))) && save_committed {
            committed_on_disk = committed;
        }
    }
}

/// Whether the committed id moved far enough from the saved one to save it.
fn moved_far(saved: Option<LogId>, committed: Option<LogId>) -> bool {
    match (saved, committed) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(saved), Some(committed)) => committed.index >= saved.index + COMMITTED_SAVE_DISTANCE,
    }
}

/// A committed batch on its way to the disk.
struct Committed {
    report: BatchReport,
    written: Result<Option<u64>, String>,
    /// Whether the batch may be reported only once on disk.
    durable: bool,
}

/// Makes committed batches durable and reports them, in commit order, from
/// a thread of its own: one `fdatasync` of the write-ahead log covers every
/// batch committed since the last one. The writer connection meanwhile
/// applies entries and commits the next batches, instead of holding the
/// database for the whole fsync as a synchronous commit would.
#[derive(Clone)]
struct WalSyncer {
    queue: std::sync::mpsc::Sender<Committed>,
}

impl WalSyncer {
    fn start(wal: WalFile, fsync: Arc<Histogram>) -> Result<Self, StorageError> {
        let (queue, committed) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("cetera-wal-sync".into())
            .spawn(move || sync_committed(&wal, &fsync, committed))
            .map_err(StorageError::Thread)?;
        Ok(Self { queue })
    }

    /// Reports `batch` once it is on disk. Should the syncer be gone, the
    /// batch's report, dropped, tells its waiters the writer stopped.
    fn sync(&self, batch: Committed) {
        let _ = self.queue.send(batch);
    }
}

fn sync_committed(
    wal: &WalFile,
    fsync: &Histogram,
    committed: std::sync::mpsc::Receiver<Committed>,
) {
    while let Ok(first) = committed.recv() {
        let mut batches = vec![first];
        batches.extend(committed.try_iter());
        let synced = if batches.iter().any(|b| b.durable && b.written.is_ok()) {
            let started = std::time::Instant::now();
            let synced = wal
                .sync()
                .map_err(|e| format!("syncing the write-ahead log: {e}"));
            fsync.observe(started.elapsed());
            synced
        } else {
            Ok(())
        };
        for batch in batches {
            let written = match &synced {
                Ok(()) => batch.written,
                Err(e) => Err(e.clone()),
            };
            batch.report.send(written);
        }
    }
}

/// What a batch's outcome is told to. It is told from the WAL syncer's
/// thread, the moment the transaction is on disk: a hop back to this task
/// first would add a task wake-up to every acknowledgement.
/// Dropped untold (the connection closed before the batch ran, or the
/// syncer thread was gone), it reports the batch as failed.
struct BatchReport {
    /// The durable index once the batch is on disk.
    up_to: u64,
    cache: Arc<Mutex<LogCache>>,
    on_disk: Arc<watch::Sender<OnDisk>>,
    replies: Vec<Reply>,
    told: bool,
}

impl BatchReport {
    fn send(mut self, written: Result<Option<u64>, String>) {
        self.tell(written);
    }

    fn tell(&mut self, written: Result<Option<u64>, String>) {
        self.told = true;
        if let Ok(Some(flushed)) = &written {
            let mut cache = lock(&self.cache);
            cache.flushed_up_to = cache.flushed_up_to.max(*flushed);
            cache.trim();
        }
        match &written {
            Ok(_) => {
                let up_to = self.up_to;
                self.on_disk
                    .send_if_modified(|d| std::mem::replace(&mut d.up_to, up_to) != up_to)
            }
            Err(e) => {
                tracing::error!(error = %e, "writing the raft log failed");
                self.on_disk.send_modify(|d| d.failed = Some(e.clone()));
                true
            }
        };
        for reply in self.replies.drain(..) {
            reply.send(written.as_ref().map(|_| ()).map_err(Clone::clone));
        }
    }
}

impl Drop for BatchReport {
    fn drop(&mut self) {
        if !self.told {
            self.tell(Err("the raft log writer stopped".to_string()));
        }
    }
}

/// The table change of a queued write, and how to tell its caller.
enum TableChange {
    Append(Vec<(u64, Vec<u8>)>),
    Truncate(u64),
    Purge(LogId),
    Vote(Vote),
    Committed(Option<LogId>),
}

impl TableChange {
    /// Only appends, votes and truncations must be on disk before they are
    /// reported: the committed id and purges are hints that the next
    /// durable batch (same WAL, in order) persists, and losing them is
    /// harmless.
    fn must_be_durable(&self) -> bool {
        match self {
            TableChange::Append(_) | TableChange::Truncate(_) | TableChange::Vote(_) => true,
            TableChange::Purge(_) | TableChange::Committed(_) => false,
        }
    }
}

enum Reply {
    Flushed(LogFlushed<TypeConfig>),
    Done(oneshot::Sender<Result<(), String>>),
}

impl Reply {
    fn send(self, result: Result<(), String>) {
        match self {
            Reply::Flushed(callback) => callback.log_io_completed(result.map_err(io_error)),
            Reply::Done(done) => {
                let _ = done.send(result);
            }
        }
    }
}

fn split_write(write: LogWrite) -> (TableChange, Option<Reply>) {
    match write {
        LogWrite::Append { rows, flushed } => {
            (TableChange::Append(rows), flushed.map(Reply::Flushed))
        }
        LogWrite::Truncate { from, done } => (TableChange::Truncate(from), Some(Reply::Done(done))),
        LogWrite::Purge { upto, done } => (TableChange::Purge(upto), Some(Reply::Done(done))),
        LogWrite::Vote { vote, done } => (TableChange::Vote(vote), Some(Reply::Done(done))),
    }
}

/// Turns a saved committed vote of `me`'s own into an uncommitted one of the
/// same term, durably, so openraft starts `me` as a follower that must win
/// a new term (see the module docs for why).
async fn step_down_from_saved_leadership(db: &Db, me: MemberId) -> Result<(), StorageError> {
    db.write(move |conn| {
        durably(conn, |conn| {
            let tx = conn.transaction()?;
            let vote: Option<Vote> = Meta(&tx).value(Meta::VOTE)?;
            let led = vote.filter(|v| v.is_committed() && v.leader_id().voted_for() == Some(me));
            if let Some(vote) = led {
                let candidacy = Vote::new(vote.leader_id().get_term(), me);
                Meta(&tx).set_value(Meta::VOTE, &candidacy)?;
                tracing::info!(%vote, "led before the restart: must win a new term first");
            }
            tx.commit()?;
            Ok(())
        })
    })
    .await
}

/// Writes a batch in one transaction (made durable by the WAL syncer);
/// returns the highest index appended, if any.
fn write_batch(
    conn: &mut Connection,
    changes: Vec<TableChange>,
) -> Result<Option<u64>, StorageError> {
    let tx = conn.transaction()?;
    let mut flushed = None;
    for change in changes {
        match change {
            TableChange::Append(rows) => {
                let mut stmt = tx.prepare_cached(
                    "INSERT OR REPLACE INTO raft_log (idx, entry) VALUES (?1, ?2)",
                )?;
                for (index, bytes) in rows {
                    stmt.execute(params![index as i64, bytes])?;
                    flushed = Some(index);
                }
            }
            TableChange::Truncate(from) => {
                tx.execute("DELETE FROM raft_log WHERE idx >= ?1", [from as i64])?;
            }
            TableChange::Purge(upto) => {
                tx.execute("DELETE FROM raft_log WHERE idx <= ?1", [upto.index as i64])?;
                Meta(&tx).set_value(Meta::LAST_PURGED, &upto)?;
            }
            TableChange::Vote(vote) => Meta(&tx).set_value(Meta::VOTE, &vote)?,
            TableChange::Committed(committed) => {
                Meta(&tx).set_value(Meta::COMMITTED, &committed)?
            }
        }
    }
    tx.commit()?;
    Ok(flushed)
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;
    use crate::proto::etcdserverpb::PutRequest;
    use crate::raft::Command;

    fn entry(index: u64, value_bytes: usize) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(1, 1), index),
            payload: EntryPayload::Normal(Command::Put(PutRequest {
                key: b"k".to_vec(),
                value: vec![0; value_bytes],
                ..Default::default()
            })),
        }
    }

    fn cache_of(entries: impl IntoIterator<Item = Entry>, flushed_up_to: u64) -> LogCache {
        let mut cache = LogCache {
            entries: BTreeMap::new(),
            bytes: 0,
            last_purged: None,
            committed: None,
            flushed_up_to,
            leading: false,
        };
        for e in entries {
            cache.insert(e);
        }
        cache
    }

    fn append_of(indexes: std::ops::RangeInclusive<u64>) -> TableChange {
        TableChange::Append(indexes.map(|i| (i, Vec::new())).collect())
    }

    #[test]
    fn the_durable_index_follows_appends_and_truncations_in_order() {
        let batch = [append_of(5..=8), TableChange::Truncate(7), append_of(7..=7)];
        assert_eq!(durable_after(4, &batch), 7);
        assert_eq!(
            durable_after(4, &[append_of(5..=8), TableChange::Truncate(7)]),
            6
        );
        assert_eq!(durable_after(9, &[TableChange::Truncate(12)]), 9);
        let purge = TableChange::Purge(LogId::new(CommittedLeaderId::new(1, 1), 30));
        assert_eq!(
            durable_after(9, &[purge]),
            30,
            "a snapshot holds what is purged"
        );
        let hints = [
            TableChange::Committed(None),
            TableChange::Vote(Vote::new(1, 1)),
        ];
        assert_eq!(durable_after(3, &hints), 3);
    }

    #[tokio::test]
    async fn waiting_for_the_disk_ends_when_the_writer_gets_there_or_fails() {
        let (on_disk, durable) = watch::channel(OnDisk {
            up_to: 3,
            failed: None,
        });
        let durability = Durability { durable };
        durability.wait_for(3).await.unwrap();
        let waiting = tokio::spawn({
            let durability = durability.clone();
            async move { durability.wait_for(5).await }
        });
        tokio::task::yield_now().await;
        on_disk.send_modify(|d| d.up_to = 4);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "index 5 is not on disk yet");
        on_disk.send_modify(|d| d.up_to = 5);
        assert_eq!(waiting.await.unwrap(), Ok(()));

        on_disk.send_modify(|d| d.failed = Some("disk full".into()));
        assert_eq!(
            durability.wait_for(9).await,
            Err(DurabilityError::WriteFailed("disk full".into()))
        );
        drop(on_disk);
        let (_, durable) = watch::channel(OnDisk::default());
        let orphan = Durability { durable };
        assert_eq!(orphan.wait_for(1).await, Err(DurabilityError::Stopped));
    }

    #[tokio::test]
    async fn only_its_own_committed_vote_makes_a_member_lead() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        let mut log = LogStore::open(db, 7).await.unwrap();
        let leading = |log: &LogStore| log.cache().leading;
        log.save_vote(&Vote::new(2, 7)).await.unwrap();
        assert!(!leading(&log), "a candidate does not lead");
        log.save_vote(&Vote::new_committed(2, 7)).await.unwrap();
        assert!(leading(&log), "elected");
        log.save_vote(&Vote::new_committed(3, 9)).await.unwrap();
        assert!(!leading(&log), "member 9 leads term 3");
    }

    #[tokio::test]
    async fn a_restarted_leader_must_win_a_new_term_but_a_follower_keeps_its_leader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cetera.db");
        let reopened_vote = |me: MemberId, saved: Vote| {
            let path = path.clone();
            async move {
                let mut log = LogStore::open(Db::open(&path).await.unwrap(), me)
                    .await
                    .unwrap();
                log.save_vote(&saved).await.unwrap();
                drop(log);
                let mut log = LogStore::open(Db::open(&path).await.unwrap(), me)
                    .await
                    .unwrap();
                let vote = log.read_vote().await.unwrap().unwrap();
                (vote, log.cache().leading)
            }
        };
        assert_eq!(
            reopened_vote(7, Vote::new_committed(4, 7)).await,
            (Vote::new(4, 7), false),
            "its own leadership is saved back as a candidacy for the same term"
        );
        assert_eq!(
            reopened_vote(7, Vote::new_committed(5, 9)).await,
            (Vote::new_committed(5, 9), false),
            "another member's leadership stays as it was"
        );
        assert_eq!(
            reopened_vote(7, Vote::new(6, 7)).await,
            (Vote::new(6, 7), false),
            "a candidacy stays a candidacy"
        );
    }

    fn report_to(
        on_disk: &Arc<watch::Sender<OnDisk>>,
        cache: &Arc<Mutex<LogCache>>,
        up_to: u64,
    ) -> (BatchReport, oneshot::Receiver<Result<(), String>>) {
        let (done, answer) = oneshot::channel();
        let report = BatchReport {
            up_to,
            cache: cache.clone(),
            on_disk: on_disk.clone(),
            replies: vec![Reply::Done(done)],
            told: false,
        };
        (report, answer)
    }

    #[test]
    fn a_batch_reports_where_the_disk_stands_and_one_that_never_ran_fails() {
        let on_disk = Arc::new(watch::channel(OnDisk::default()).0);
        let cache = Arc::new(Mutex::new(cache_of((1..=4).map(|i| entry(i, 10)), 0)));
        let (report, mut answer) = report_to(&on_disk, &cache, 4);
        report.send(Ok(Some(4)));
        assert_eq!(answer.try_recv(), Ok(Ok(())));
        assert_eq!(on_disk.borrow().up_to, 4);
        assert_eq!(lock(&cache).flushed_up_to, 4);

        // The connection closed before the batch ran: its closure, and the
        // report in it, are dropped untold.
        let (report, mut answer) = report_to(&on_disk, &cache, 6);
        drop(report);
        assert_eq!(
            answer.try_recv(),
            Ok(Err("the raft log writer stopped".to_string()))
        );
        assert_eq!(on_disk.borrow().up_to, 4, "nothing more is durable");
        assert!(on_disk.borrow().failed.is_some(), "waiters are let go");
    }

    fn committed(
        on_disk: &Arc<watch::Sender<OnDisk>>,
        cache: &Arc<Mutex<LogCache>>,
        up_to: u64,
        durable: bool,
    ) -> (Committed, oneshot::Receiver<Result<(), String>>) {
        let (report, answer) = report_to(on_disk, cache, up_to);
        let batch = Committed {
            report,
            written: Ok(Some(up_to)),
            durable,
        };
        (batch, answer)
    }

    /// Runs the syncer over `batches`, queued before it starts (as batches
    /// committed while a sync runs are), until they are all told.
    fn sync_all(wal: &WalFile, fsync: &Histogram, batches: Vec<Committed>) {
        let (queue, queued) = std::sync::mpsc::channel();
        for batch in batches {
            queue.send(batch).unwrap();
        }
        drop(queue);
        sync_committed(wal, fsync, queued);
    }

    #[tokio::test]
    async fn batches_committed_during_a_sync_share_the_next_and_are_told_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        let on_disk = Arc::new(watch::channel(OnDisk::default()).0);
        let cache = Arc::new(Mutex::new(cache_of((1..=6).map(|i| entry(i, 10)), 0)));
        let mut durable_index = on_disk.subscribe();
        let (first, first_told) = committed(&on_disk, &cache, 2, true);
        let (second, second_told) = committed(&on_disk, &cache, 4, true);
        let (third, third_told) = committed(&on_disk, &cache, 6, true);
        let fsync = Histogram::fsync();
        sync_all(&db.wal_file(), &fsync, vec![first, second, third]);
        assert_eq!(fsync.count(), 1, "one fsync for the three");
        for told in [first_told, second_told, third_told] {
            assert_eq!(told.await, Ok(Ok(())));
        }
        assert!(durable_index.has_changed().unwrap());
        assert_eq!(durable_index.borrow_and_update().up_to, 6);
        assert_eq!(lock(&cache).flushed_up_to, 6);

        // Hints alone (a purge, the committed id) need no fsync.
        let (hint, hint_told) = committed(&on_disk, &cache, 6, false);
        sync_all(&db.wal_file(), &fsync, vec![hint]);
        assert_eq!(fsync.count(), 1);
        assert_eq!(hint_told.await, Ok(Ok(())));
    }

    #[test]
    fn a_failed_sync_fails_every_batch_it_covered() {
        let dir = tempfile::tempdir().unwrap();
        let not_a_dir = dir.path().join("file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let wal = WalFile::at(not_a_dir.join("cetera.db-wal"));
        let on_disk = Arc::new(watch::channel(OnDisk::default()).0);
        let cache = Arc::new(Mutex::new(cache_of((1..=4).map(|i| entry(i, 10)), 0)));
        let (first, mut first_told) = committed(&on_disk, &cache, 2, true);
        let (hint, mut hint_told) = committed(&on_disk, &cache, 2, false);
        sync_all(&wal, &Histogram::fsync(), vec![first, hint]);
        for told in [first_told.try_recv(), hint_told.try_recv()] {
            let failure = told.unwrap().unwrap_err();
            assert!(
                failure.starts_with("syncing the write-ahead log"),
                "{failure}"
            );
        }
        assert_eq!(on_disk.borrow().up_to, 0, "nothing is durable");
        assert!(on_disk.borrow().failed.is_some(), "waiters are let go");
        assert_eq!(lock(&cache).flushed_up_to, 0);
    }

    #[test]
    fn trim_bounds_flushed_entries_by_bytes_but_keeps_the_newest_and_unflushed() {
        let big = 1 << 20;
        let mut cache = cache_of((1..=20).map(|i| entry(i, big)), 15);
        cache.trim();
        let from_flushed_on: usize = (15..=20).map(|i| entry_bytes(&entry(i, big))).sum();
        assert!(cache.bytes <= CACHED_FLUSHED_BYTES + from_flushed_on);
        assert!(
            !cache.entries.contains_key(&10),
            "flushed entries beyond the bound go"
        );
        assert_eq!(cache.entries.keys().next_back(), Some(&20));
        assert!((15..=20).all(|i| cache.entries.contains_key(&i)));
        let recount: usize = cache.entries.values().map(entry_bytes).sum();
        assert_eq!(cache.bytes, recount);

        // Everything flushed: at least the newest entry stays.
        let mut cache = cache_of((1..=3).map(|i| entry(i, 20 << 20)), 3);
        cache.trim();
        assert_eq!(cache.entries.keys().collect::<Vec<_>>(), [&3]);
    }

    #[tokio::test]
    async fn the_committed_id_reaches_disk_with_the_next_durable_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cetera.db");
        let mut log = LogStore::open(Db::open(&path).await.unwrap(), 1)
            .await
            .unwrap();
        let committed = Some(entry(7, 1).log_id);
        log.save_committed(committed).await.unwrap();
        // Answered from memory at once...
        assert_eq!(log.read_committed().await.unwrap(), committed);
        // ...and on disk with the next durable write (a vote, here).
        log.save_vote(&Vote::new(1, 1)).await.unwrap();
        drop(log);
        let mut reopened = LogStore::open(Db::open(&path).await.unwrap(), 1)
            .await
            .unwrap();
        assert_eq!(reopened.read_committed().await.unwrap(), committed);
    }

    #[test]
    fn the_committed_id_is_saved_first_and_then_only_once_it_moved_far() {
        let at = |index: u64| Some(entry(index, 1).log_id);
        assert!(!moved_far(None, None));
        assert!(moved_far(None, at(1)));
        assert!(!moved_far(at(1), at(1)));
        assert!(!moved_far(at(1), at(COMMITTED_SAVE_DISTANCE)));
        assert!(moved_far(at(1), at(1 + COMMITTED_SAVE_DISTANCE)));
    }

    #[test]
    fn truncate_and_purge_keep_the_byte_count_exact() {
        let mut cache = cache_of((1..=10).map(|i| entry(i, 100 * i as usize)), 10);
        cache.remove_from(8);
        cache.remove_before(3);
        cache.insert(entry(5, 7)); // replaces entry 5
        let recount: usize = cache.entries.values().map(entry_bytes).sum();
        assert_eq!(cache.bytes, recount);
        assert_eq!(
            cache.entries.keys().copied().collect::<Vec<_>>(),
            [3, 4, 5, 6, 7]
        );
    }

    #[tokio::test]
    async fn a_reopened_log_serves_its_whole_tail_with_only_the_newest_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cetera.db");
        let db = Db::open(&path).await.unwrap();
        // 200 entries of 64 kB: a bulk import's tail, 12.5 MiB in all.
        db.write(|conn| {
            let tx = conn.transaction()?;
            for index in 1..=200 {
                let bytes = postcard::to_stdvec(&entry(index, 64 << 10)).unwrap();
                tx.execute(
                    "INSERT INTO raft_log (idx, entry) VALUES (?1, ?2)",
                    tokio_rusqlite::rusqlite::params![index as i64, bytes],
                )?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
        .unwrap();
        let mut log = LogStore::open(db, 1).await.unwrap();
        let cached = log.cache().entries.len();
        assert!(
            (1..=17).contains(&cached),
            "{cached} entries cached; 1 MiB holds 16 of them"
        );
        let all = log.try_get_log_entries(1..=200).await.unwrap();
        let indexes: Vec<u64> = all.iter().map(|e| e.log_id.index).collect();
        assert_eq!(indexes, (1..=200).collect::<Vec<_>>());
    }
}
