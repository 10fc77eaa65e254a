//! The key index: every key's versions (revision, row, tombstone, and the
//! row's metadata), in memory, so the revision table on disk only ever has
//! rows appended.
//!
//! etcd keeps the same thing (its `treeIndex`) beside bbolt. Here it replaces
//! two SQLite B-trees keyed by key (all versions, and the live one), whose
//! random leaf pages every put dirtied, committed and checkpointed: with the
//! index in memory a put writes one row at the end of the `kv` table.
//!
//! The index is rebuilt from the `kv` table when the database opens. It
//! holds no values: reads find rows here and fetch them by row id (reads
//! without values need no row at all).
//!
//! Consistency with the readers' SQLite snapshots:
//! - New versions are published before their transaction commits. A reader
//!   only ever asks for versions at or below the revision its own snapshot
//!   holds, so it never meets one its snapshot lacks.
//! - Changes that remove versions are held back past their commit: a read
//!   transaction holds the gate shared from start to end, and the writer
//!   takes it exclusively to remove versions, so a read that began before a
//!   compaction's commit still finds the versions its snapshot has. The
//!   writer does not wait for reads to end after a compaction (it takes the
//!   gate when it is free, and waits only after a second): until then the
//!   index merely holds versions no new read can ask for. A snapshot
//!   install swaps the whole index and waits for the gate at once.
//! - Row ids are handed out here and never reused while the index lives:
//!   a compacted row may still be named by the index for a while.
//!
//! This module must never interpret requests or run SQL: it maps keys to
//! rows, the SQLite engine (`kv`) keeps rows and index in step.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use crate::mvcc::KeyRange;

/// The id of a row of the `kv` table.
pub(super) type RowId = i64;

/// A key as the index stores it: inline up to 24 bytes. A lookup compares
/// the keys of every node it passes; with each key behind its own heap
/// pointer those comparisons were cache misses, and the search the largest
/// single cost of a follower's put.
type IndexKey = smallvec::SmallVec<[u8; 24]>;

/// One version of a key: where its row is, whether it is a tombstone, and
/// the row's metadata. With the metadata here a put learns the version it
/// replaces, and a keys-only read its keys, without reading the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedVersion {
    /// A tombstone's row id is stored negated.
    signed_row: i64,
    stamp: Stamp,
}

/// A stored version's metadata, as the `kv` row holds it (only the
/// revision for a tombstone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stamp {
    pub mod_revision: i64,
    pub create_revision: i64,
    pub version: i64,
    pub lease: i64,
}

impl IndexedVersion {
    /// A live version stored in `row`.
    pub fn live(row: RowId, stamp: Stamp) -> Self {
        Self {
            signed_row: row,
            stamp,
        }
    }

    /// A deletion at `mod_revision`, stored in `row`.
    pub fn tombstone(row: RowId, mod_revision: i64) -> Self {
        Self {
            signed_row: -row,
            stamp: Stamp {
                mod_revision,
                ..Stamp::default()
            },
        }
    }

    pub fn mod_revision(&self) -> i64 {
        self.stamp.mod_revision
    }

    pub fn stamp(&self) -> Stamp {
        self.stamp
    }

    pub fn row(&self) -> RowId {
        self.signed_row.abs()
    }

    pub fn is_tombstone(&self) -> bool {
        self.signed_row < 0
    }
}

/// Every key's versions, oldest first.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeyIndex {
    keys: BTreeMap<IndexKey, Vec<IndexedVersion>>,
}

impl KeyIndex {
    /// Records a new version of `key`; it must be newer than the key's others.
    pub fn push(&mut self, key: &[u8], version: IndexedVersion) {
        match self.keys.get_mut(key) {
            Some(versions) => versions.push(version),
            None => {
                self.keys.insert(IndexKey::from_slice(key), vec![version]);
            }
        }
    }

    /// Forgets `key`'s newest version if it is at `mod_revision` (undoing a
    /// [`push`](Self::push) whose transaction was refused).
    pub fn pop(&mut self, key: &[u8], mod_revision: i64) {
        let Some(versions) = self.keys.get_mut(key) else {
            return;
        };
        if versions
            .last()
            .is_some_and(|v| v.mod_revision() == mod_revision)
        {
            versions.pop();
        }
        if versions.is_empty() {
            self.keys.remove(key);
        }
    }

    /// The version of `key` a read at revision `at` sees, if it is live.
    pub fn live_at(&self, key: &[u8], at: i64) -> Option<IndexedVersion> {
        self.keys
            .get(key)
            .and_then(|versions| live_at(versions, at))
    }

    /// The version of `key` just before revision `revision`, if it is live.
    pub fn live_before(&self, key: &[u8], revision: i64) -> Option<IndexedVersion> {
        self.live_at(key, revision - 1)
    }

    /// The live versions of the keys in `range` at revision `at`, ascending
    /// by key, at most `limit` of them.
    pub fn range(&self, range: &KeyRange, at: i64, limit: Option<usize>) -> Vec<IndexedVersion> {
        self.live_in(range, at, limit).map(|(_, v)| v).collect()
    }

    /// [`range`](Self::range) with each version's key.
    pub fn keyed_range(
        &self,
        range: &KeyRange,
        at: i64,
        limit: Option<usize>,
    ) -> Vec<(Vec<u8>, IndexedVersion)> {
        self.live_in(range, at, limit)
            .map(|(key, v)| (key.to_vec(), v))
            .collect()
    }

    fn live_in<'a>(
        &'a self,
        range: &'a KeyRange,
        at: i64,
        limit: Option<usize>,
    ) -> impl Iterator<Item = (&'a IndexKey, IndexedVersion)> + 'a {
        self.keys_in(range)
            .filter_map(move |(key, versions)| Some((key, live_at(versions, at)?)))
            .take(limit.unwrap_or(usize::MAX))
    }

    /// How many keys of `range` are live at revision `at`.
    pub fn count(&self, range: &KeyRange, at: i64) -> i64 {
        self.keys_in(range)
            .filter(|(_, versions)| live_at(versions, at).is_some())
            .count() as i64
    }

    /// The rows a compaction at `revision` removes: every version a newer
    /// one at or below `revision` hides, and every tombstone at or below it.
    pub fn compacted_rows(&self, revision: i64) -> Vec<RowId> {
        let mut rows = Vec::new();
        for versions in self.keys.values() {
            let hidden = hidden_by_compaction(versions, revision);
            rows.extend(versions[..hidden].iter().map(IndexedVersion::row));
            if let Some(kept) = versions.get(hidden)
                && kept.mod_revision() <= revision
                && kept.is_tombstone()
            {
                rows.push(kept.row());
            }
        }
        rows
    }

    /// Forgets what [`compacted_rows`](Self::compacted_rows) names.
    pub fn compact(&mut self, revision: i64) {
        self.keys.retain(|_, versions| {
            let hidden = hidden_by_compaction(versions, revision);
            versions.drain(..hidden);
            if versions
                .first()
                .is_some_and(|v| v.mod_revision() <= revision && v.is_tombstone())
            {
                versions.remove(0);
            }
            !versions.is_empty()
        });
    }

    /// The highest row id the index names (0 when empty).
    pub fn max_row(&self) -> RowId {
        self.keys
            .values()
            .flat_map(|versions| versions.iter().map(IndexedVersion::row))
            .max()
            .unwrap_or(0)
    }

    /// How many versions the index holds (tombstones included).
    pub fn version_count(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    /// The keys of `range` with their versions, ascending. Not boxed: a
    /// put looks its key up here, and the allocation showed in profiles.
    fn keys_in<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> impl Iterator<Item = (&'a IndexKey, &'a Vec<IndexedVersion>)> + 'a {
        let (single, interval) = match range {
            KeyRange::Single(key) => (self.keys.get_key_value(key.as_slice()), None),
            KeyRange::Interval { start, end } => {
                let upper = match end {
                    Some(end) if end <= start => None,
                    Some(end) => Some(Bound::Excluded(end.as_slice())),
                    None => Some(Bound::Unbounded),
                };
                let lower = Bound::Included(start.as_slice());
                (
                    None,
                    upper.map(|upper| self.keys.range::<[u8], _>((lower, upper))),
                )
            }
        };
        single.into_iter().chain(interval.into_iter().flatten())
    }
}

/// The newest version at or below `at`, if it is live.
fn live_at(versions: &[IndexedVersion], at: i64) -> Option<IndexedVersion> {
    // Usually the newest, or one of the last few: walk from the end.
    versions
        .iter()
        .rev()
        .find(|v| v.mod_revision() <= at)
        .filter(|v| !v.is_tombstone())
        .copied()
}

/// How many of the oldest `versions` a newer version at or below
/// `revision` hides.
fn hidden_by_compaction(versions: &[IndexedVersion], revision: i64) -> usize {
    let at_or_below = versions.partition_point(|v| v.mod_revision() <= revision);
    at_or_below.saturating_sub(1)
}

/// The index shared by the writer and the readers, with the gate that
/// keeps removals and read transactions apart (see the module docs).
#[derive(Clone)]
pub struct SharedIndex {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    index: RwLock<KeyIndex>,
    gate: RwLock<()>,
    /// A compaction the writer's open transaction applied to the tables.
    deferred: Mutex<Option<i64>>,
    /// A committed compaction not yet applied to the index (read
    /// transactions that began before its commit were still running), and
    /// since when it has waited.
    unpublished: Mutex<Option<(i64, Instant)>>,
    /// The id the writer gives its next row. Ids are never reused while
    /// the index lives: a compacted row may stay named in the index for a
    /// while (see above), and a new row under its id would be deleted by
    /// the next compaction in its place.
    next_row: AtomicI64,
}

/// How long a committed compaction waits for a moment without read
/// transactions before the writer waits for the running ones to end. Until
/// then the index only holds versions no new read can ask for.
const PUBLISH_PATIENCE: Duration = Duration::from_secs(1);

/// Held for the whole of a read transaction.
pub struct ReadGate<'a> {
    _guard: RwLockReadGuard<'a, ()>,
}

/// An empty index, for an empty table.
impl Default for SharedIndex {
    fn default() -> Self {
        Self::new(KeyIndex::default())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl SharedIndex {
    pub fn new(index: KeyIndex) -> Self {
        Self {
            inner: Arc::new(Shared {
                next_row: AtomicI64::new(index.max_row() + 1),
                index: RwLock::new(index),
                ..Default::default()
            }),
        }
    }

    /// For the writer only: the id of the next row it appends. The table
    /// holds no higher id: the index names every row, rows come only from
    /// the writer, and the index is rebuilt whenever the table changes
    /// otherwise (at open, after a snapshot install).
    pub fn next_row(&self) -> RowId {
        self.inner.next_row.fetch_add(1, Ordering::Relaxed)
    }

    pub fn read(&self) -> RwLockReadGuard<'_, KeyIndex> {
        self.inner.index.read().unwrap_or_else(|p| p.into_inner())
    }

    /// For the writer only: publishes new versions (never removals).
    pub fn write(&self) -> RwLockWriteGuard<'_, KeyIndex> {
        self.inner.index.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Taken by every read transaction, before it starts.
    pub fn enter_read(&self) -> ReadGate<'_> {
        ReadGate {
            _guard: self.inner.gate.read().unwrap_or_else(|p| p.into_inner()),
        }
    }

    /// Notes that the writer's open transaction compacted at `revision`.
    pub fn defer_compaction(&self, revision: i64) {
        let mut deferred = lock(&self.inner.deferred);
        *deferred = Some(deferred.map_or(revision, |r: i64| r.max(revision)));
    }

    /// Runs `commit` (the writer's transaction commit), then applies the
    /// compactions committed so far to the index once no read transaction
    /// that began before them is left.
    pub fn publish<E>(&self, commit: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let deferred = lock(&self.inner.deferred).take();
        commit()?;
        let mut unpublished = lock(&self.inner.unpublished);
        if let Some(revision) = deferred {
            *unpublished = Some(match *unpublished {
                Some((earlier, since)) => (earlier.max(revision), since),
                None => (revision, Instant::now()),
            });
        }
        let Some((revision, since)) = *unpublished else {
            return Ok(());
        };
        let gate = match self.inner.gate.try_write() {
            Ok(gate) => Some(gate),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if since.elapsed() >= PUBLISH_PATIENCE => {
                Some(self.inner.gate.write().unwrap_or_else(|p| p.into_inner()))
            }
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if let Some(_gate) = gate {
            self.write().compact(revision);
            *unpublished = None;
        }
        Ok(())
    }

    /// Runs `commit`, then makes `index` the index, under the gate (a
    /// snapshot install: every version may change, so no read may span it).
    pub fn replace<E>(
        &self,
        index: KeyIndex,
        commit: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), E> {
        lock(&self.inner.deferred).take();
        let _gate = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
        commit()?;
        self.inner
            .next_row
            .store(index.max_row() + 1, Ordering::Relaxed);
        *self.write() = index;
        lock(&self.inner.unpublished).take();
        Ok(())
    }

    /// Forgets a compaction whose transaction was abandoned.
    pub fn abandon_pending(&self) {
        lock(&self.inner.deferred).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live(rev: i64, row: RowId) -> IndexedVersion {
        IndexedVersion::live(
            row,
            Stamp {
                mod_revision: rev,
                create_revision: rev,
                version: 1,
                lease: 0,
            },
        )
    }

    fn tomb(rev: i64, row: RowId) -> IndexedVersion {
        IndexedVersion::tombstone(row, rev)
    }

    fn index_of(entries: &[(&str, IndexedVersion)]) -> KeyIndex {
        let mut index = KeyIndex::default();
        for (key, version) in entries {
            index.push(key.as_bytes(), *version);
        }
        index
    }

    #[test]
    fn a_version_packs_its_tombstone_into_the_row() {
        assert_eq!(std::mem::size_of::<IndexedVersion>(), 40);
        let t = tomb(5, 9);
        assert!(t.is_tombstone());
        assert_eq!((t.mod_revision(), t.row()), (5, 9));
        assert!(!live(5, 9).is_tombstone());
    }

    #[test]
    fn reads_see_the_newest_version_at_their_revision() {
        let index = index_of(&[("a", live(2, 1)), ("a", tomb(3, 2)), ("a", live(5, 3))]);
        assert_eq!(index.live_at(b"a", 1), None);
        assert_eq!(index.live_at(b"a", 2), Some(live(2, 1)));
        assert_eq!(index.live_at(b"a", 4), None, "deleted at 3");
        assert_eq!(index.live_at(b"a", 9), Some(live(5, 3)));
        assert_eq!(index.live_before(b"a", 5), None);
        assert_eq!(index.live_before(b"a", 3), Some(live(2, 1)));
        assert_eq!(index.live_at(b"b", 9), None);
    }

    #[test]
    fn ranges_are_ascending_limited_and_ignore_newer_versions() {
        let index = index_of(&[
            ("c", live(2, 1)),
            ("a", live(3, 2)),
            ("b", live(4, 3)),
            ("b", tomb(5, 4)),
            ("d", live(6, 5)),
        ]);
        let all = KeyRange::new(b"a", b"\0");
        let rows = |at, limit| -> Vec<RowId> {
            index
                .range(&all, at, limit)
                .iter()
                .map(IndexedVersion::row)
                .collect()
        };
        assert_eq!(rows(9, None), vec![2, 1, 5]);
        assert_eq!(rows(4, None), vec![2, 3, 1]);
        assert_eq!(rows(9, Some(2)), vec![2, 1]);
        assert_eq!(index.count(&all, 9), 3);
        assert_eq!(index.count(&KeyRange::new(b"b", b"d"), 4), 2);
        assert_eq!(index.count(&KeyRange::new(b"d", b"b"), 9), 0);
        assert_eq!(
            index.range(&KeyRange::Single(b"d".to_vec()), 5, None),
            vec![]
        );
    }

    #[test]
    fn compaction_keeps_what_reads_at_or_after_it_can_reach() {
        let mut index = index_of(&[
            ("a", live(2, 1)),
            ("a", live(3, 2)),
            ("a", live(6, 5)),
            ("b", live(4, 3)),
            ("b", tomb(5, 4)),
            ("c", live(7, 6)),
        ]);
        let mut rows = index.compacted_rows(5);
        rows.sort();
        assert_eq!(rows, vec![1, 3, 4], "a@2 hidden by a@3; b deleted at 5");
        index.compact(5);
        assert_eq!(
            index,
            index_of(&[("a", live(3, 2)), ("a", live(6, 5)), ("c", live(7, 6))])
        );
        assert_eq!(index.version_count(), 3);
        assert!(
            index.compacted_rows(5).is_empty(),
            "compaction is idempotent"
        );
    }

    #[test]
    fn keys_stored_inline_and_on_the_heap_sort_and_look_up_alike() {
        let long = "k".repeat(40);
        let longer = format!("{long}z");
        let index = index_of(&[
            (longer.as_str(), live(2, 1)),
            ("kz", live(3, 2)),
            (long.as_str(), live(4, 3)),
            ("k", live(5, 4)),
        ]);
        assert_eq!(index.live_at(long.as_bytes(), 9), Some(live(4, 3)));
        assert_eq!(index.live_at(longer.as_bytes(), 9), Some(live(2, 1)));
        let keys: Vec<Vec<u8>> = index
            .keyed_range(&KeyRange::new(b"k", b"\0"), 9, None)
            .into_iter()
            .map(|(key, _)| key)
            .collect();
        let expected = [
            b"k".to_vec(),
            long.into_bytes(),
            longer.into_bytes(),
            b"kz".to_vec(),
        ];
        assert_eq!(keys, expected);
    }

    #[test]
    fn pop_undoes_only_the_named_revision() {
        let mut index = index_of(&[("a", live(2, 1)), ("a", live(3, 2))]);
        index.pop(b"a", 2);
        assert_eq!(index.version_count(), 2);
        index.pop(b"a", 3);
        index.pop(b"a", 2);
        assert_eq!(index, KeyIndex::default());
    }

    #[test]
    fn removals_are_published_only_with_their_commit() {
        let shared = SharedIndex::new(index_of(&[("a", live(2, 1)), ("a", live(3, 2))]));
        shared.defer_compaction(3);
        assert_eq!(shared.read().version_count(), 2, "not before the commit");
        let failed: Result<(), &str> = shared.publish(|| Err("disk full"));
        assert!(failed.is_err());
        assert_eq!(shared.read().version_count(), 2, "not when it fails");
        shared.defer_compaction(3);
        shared.publish(|| Ok::<_, ()>(())).unwrap();
        assert_eq!(shared.read().version_count(), 1);
    }

    #[test]
    fn a_running_read_delays_the_removal_not_the_commit() {
        let shared = SharedIndex::new(index_of(&[("a", live(2, 1)), ("a", live(3, 2))]));
        let reading = shared.enter_read();
        shared.defer_compaction(3);
        let mut committed = false;
        shared
            .publish(|| {
                committed = true;
                Ok::<_, ()>(())
            })
            .unwrap();
        assert!(committed);
        assert_eq!(shared.read().version_count(), 2, "removed under a read");
        drop(reading);
        shared.publish(|| Ok::<_, ()>(())).unwrap();
        assert_eq!(
            shared.read().version_count(),
            1,
            "the next commit removes it"
        );
    }
}
