//! The narrow interface between the MVCC rules and a storage engine.

use std::collections::BTreeMap;

use super::{KeyRange, KeyValue};

/// A storage engine failed; the message is the engine's own.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[error("{0}")]
pub struct BackendError(pub String);

/// The revision counters every read and write is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevisionState {
    /// The revision of the newest write; a fresh store is at 1.
    pub current: i64,
    /// Reads below this revision fail; 0 when nothing was compacted.
    pub compacted: i64,
}

/// Read access to the revision table. Every call sees one consistent state.
pub trait KvRead {
    fn revisions(&self) -> Result<RevisionState, BackendError>;

    /// The live keys of `range` as of revision `at` (`None`: the latest),
    /// ascending by key, at most `limit` of them. With `keys_only` the
    /// values may be left empty.
    fn range(
        &self,
        range: &KeyRange,
        at: Option<i64>,
        limit: Option<usize>,
        keys_only: bool,
    ) -> Result<Vec<KeyValue>, BackendError>;

    /// How many live keys `range` holds as of `at`.
    fn count(&self, range: &KeyRange, at: Option<i64>) -> Result<i64, BackendError>;

    /// The TTL a lease was granted with, if it is granted.
    fn lease_ttl(&self, lease: i64) -> Result<Option<i64>, BackendError>;

    /// Whether a lease with this id is granted.
    fn lease_exists(&self, lease: i64) -> Result<bool, BackendError> {
        Ok(self.lease_ttl(lease)?.is_some())
    }

    /// The live keys attached to a lease, ascending.
    fn lease_keys(&self, lease: i64) -> Result<Vec<Vec<u8>>, BackendError>;

    /// Every granted lease with its TTL, ascending by id.
    fn leases(&self) -> Result<Vec<(i64, i64)>, BackendError>;
}

/// Write access, used only while applying a committed Raft entry.
pub trait KvWrite: KvRead {
    /// Records `kv` as the newest version of its key, at
    /// `(kv.mod_revision, sub)`; `prev` is the version it replaces.
    fn put(&mut self, kv: &KeyValue, prev: Option<&KeyValue>, sub: i64)
    -> Result<(), BackendError>;

    /// Records the deletion of `prev` (the key's live version) at
    /// `(rev, sub)`.
    fn tombstone(&mut self, prev: &KeyValue, rev: i64, sub: i64) -> Result<(), BackendError>;

    fn set_current_revision(&mut self, rev: i64) -> Result<(), BackendError>;

    /// Whether write events must carry the versions they replace, values
    /// included (someone may watch with `prev_kv`). When false, a put's or
    /// delete's event has no `prev_kv` at all, never one without its value,
    /// unless the request asked for the previous versions itself; the
    /// rules then read no value the response does not need.
    fn events_need_prev_values(&self) -> bool {
        true
    }

    /// Records a granted lease.
    fn grant_lease(&mut self, lease: i64, ttl: i64) -> Result<(), BackendError>;

    /// Forgets a lease (its keys are deleted separately, by the caller).
    fn revoke_lease(&mut self, lease: i64) -> Result<(), BackendError>;

    /// Forgets every version that no read at a revision `>= rev` can see,
    /// and records `rev` as the compacted revision.
    fn compact(&mut self, rev: i64) -> Result<(), BackendError>;
}

/// One stored version of a key: `None` is a tombstone.
#[derive(Debug, Clone)]
struct Version {
    mod_revision: i64,
    kv: Option<KeyValue>,
}

/// An in-memory backend: the reference the SQLite engine is compared with
/// and the fixture for the rules' unit tests.
#[derive(Debug, Clone)]
pub struct MemoryBackend {
    keys: BTreeMap<Vec<u8>, Vec<Version>>,
    revisions: RevisionState,
    leases: BTreeMap<i64, i64>,
    prev_values: bool,
}

impl Default for MemoryBackend {
    fn default() -> Self {
        Self {
            keys: BTreeMap::new(),
            revisions: RevisionState {
                current: 1,
                compacted: 0,
            },
            leases: BTreeMap::new(),
            prev_values: true,
        }
    }
}

impl MemoryBackend {
    /// Events may leave out the versions they replace (see
    /// [`KvWrite::events_need_prev_values`]).
    pub fn without_prev_values(mut self) -> Self {
        self.prev_values = false;
        self
    }

    /// How many versions (tombstones included) are stored, for compaction tests.
    pub fn stored_versions(&self) -> usize {
        self.keys.values().map(Vec::len).sum()
    }

    fn live_at(&self, versions: &[Version], at: Option<i64>) -> Option<KeyValue> {
        let version = match at {
            None => versions.last(),
            Some(rev) => versions.iter().rev().find(|v| v.mod_revision <= rev),
        };
        version.and_then(|v| v.kv.clone())
    }

    fn keys_in<'a>(
        &'a self,
        range: &'a KeyRange,
    ) -> impl Iterator<Item = (&'a Vec<u8>, &'a Vec<Version>)> + 'a {
        self.keys.iter().filter(move |(k, _)| range.contains(k))
    }
}

impl KvRead for MemoryBackend {
    fn revisions(&self) -> Result<RevisionState, BackendError> {
        Ok(self.revisions)
    }

    fn range(
        &self,
        range: &KeyRange,
        at: Option<i64>,
        limit: Option<usize>,
        keys_only: bool,
    ) -> Result<Vec<KeyValue>, BackendError> {
        let live = self
            .keys_in(range)
            .filter_map(|(_, versions)| self.live_at(versions, at))
            .map(|mut kv| {
                if keys_only {
                    kv.value.clear();
                }
                kv
            });
        Ok(live.take(limit.unwrap_or(usize::MAX)).collect())
    }

    fn count(&self, range: &KeyRange, at: Option<i64>) -> Result<i64, BackendError> {
        let live = self
            .keys_in(range)
            .filter(|(_, versions)| self.live_at(versions, at).is_some());
        Ok(live.count() as i64)
    }

    fn lease_ttl(&self, lease: i64) -> Result<Option<i64>, BackendError> {
        Ok(self.leases.get(&lease).copied())
    }

    fn lease_keys(&self, lease: i64) -> Result<Vec<Vec<u8>>, BackendError> {
        let attached = self.keys.iter().filter_map(|(key, versions)| {
            let live = self.live_at(versions, None)?;
            (live.lease == lease).then(|| key.clone())
        });
        Ok(attached.collect())
    }

    fn leases(&self) -> Result<Vec<(i64, i64)>, BackendError> {
        Ok(self.leases.iter().map(|(id, ttl)| (*id, *ttl)).collect())
    }
}

impl KvWrite for MemoryBackend {
    fn events_need_prev_values(&self) -> bool {
        self.prev_values
    }

    fn put(
        &mut self,
        kv: &KeyValue,
        _prev: Option<&KeyValue>,
        _sub: i64,
    ) -> Result<(), BackendError> {
        self.keys.entry(kv.key.clone()).or_default().push(Version {
            mod_revision: kv.mod_revision,
            kv: Some(kv.clone()),
        });
        Ok(())
    }

    fn tombstone(&mut self, prev: &KeyValue, rev: i64, _sub: i64) -> Result<(), BackendError> {
        self.keys
            .entry(prev.key.clone())
            .or_default()
            .push(Version {
                mod_revision: rev,
                kv: None,
            });
        Ok(())
    }

    fn set_current_revision(&mut self, rev: i64) -> Result<(), BackendError> {
        self.revisions.current = rev;
        Ok(())
    }

    fn grant_lease(&mut self, lease: i64, ttl: i64) -> Result<(), BackendError> {
        self.leases.insert(lease, ttl);
        Ok(())
    }

    fn revoke_lease(&mut self, lease: i64) -> Result<(), BackendError> {
        self.leases.remove(&lease);
        Ok(())
    }

    fn compact(&mut self, rev: i64) -> Result<(), BackendError> {
        for versions in self.keys.values_mut() {
            // The newest version at or below `rev` stays visible to reads at
            // `rev`, unless it is a tombstone; everything older goes.
            if let Some(newest) = versions.iter().rposition(|v| v.mod_revision <= rev) {
                let keep_from = if versions[newest].kv.is_some() {
                    newest
                } else {
                    newest + 1
                };
                versions.drain(..keep_from);
            }
        }
        self.keys.retain(|_, versions| !versions.is_empty());
        self.revisions.compacted = rev;
        Ok(())
    }
}
