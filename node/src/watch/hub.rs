//! The registry of every watcher on this member, and event delivery.
//!
//! A *synced* watcher is up to date: the apply path hands each committed
//! revision's events to [`WatchHub::publish`], which pushes the matching
//! ones into the watcher's stream without waiting. A watcher whose stream
//! is full, or that starts in the past, is *unsynced*: a catch-up task of
//! its own reads the missing revisions from the revision table, sends them
//! (waiting for the client as long as it needs), and moves it back to the
//! synced set once nothing is missing. So a slow watcher never blocks the
//! writers or the other watchers, and never loses or repeats an event.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::WatchMessage;
use crate::mvcc::{KeyRange, KvRead};
use crate::proto::mvccpb::Event;
use crate::proto::mvccpb::event::EventType;
use crate::storage::{Db, StorageError};

/// Revisions read per catch-up step (responses never split a revision).
const CATCH_UP_REVISIONS: i64 = 1000;

/// One watcher: what it watches and where its events go.
#[derive(Clone)]
pub(crate) struct Watcher {
    pub(crate) watch_id: i64,
    pub(crate) range: KeyRange,
    pub(crate) prev_kv: bool,
    pub(crate) no_put: bool,
    pub(crate) no_delete: bool,
    pub(crate) progress_notify: bool,
    /// Whether responses too large for one message may be split.
    pub(crate) fragment: bool,
    pub(crate) stream: mpsc::Sender<WatchMessage>,
    /// Set when the client cancels or the stream ends.
    pub(crate) canceled: Arc<AtomicBool>,
}

impl Watcher {
    /// The event as this watcher should see it, or `None` if filtered out.
    fn view(&self, event: &Event) -> Option<Event> {
        let key = event.kv.as_ref().map(|kv| kv.key.as_slice())?;
        if !self.range.contains(key) {
            return None;
        }
        let is_put = event.r#type == EventType::Put as i32;
        if (is_put && self.no_put) || (!is_put && self.no_delete) {
            return None;
        }
        let mut event = event.clone();
        if !self.prev_kv {
            event.prev_kv = None;
        }
        Some(event)
    }

    fn is_canceled(&self) -> bool {
        self.canceled.load(Ordering::Relaxed)
    }
}

/// Synced watchers, indexed so a revision finds its watchers quickly.
#[derive(Default)]
struct Synced {
    watchers: HashMap<u64, (Watcher, i64)>,
    by_key: HashMap<Vec<u8>, HashSet<u64>>,
    ranges: HashSet<u64>,
}

impl Synced {
    fn insert(&mut self, id: u64, watcher: Watcher, start_revision: i64) {
        match &watcher.range {
            KeyRange::Single(key) => {
                self.by_key.entry(key.clone()).or_default().insert(id);
            }
            KeyRange::Interval { .. } => {
                self.ranges.insert(id);
            }
        }
        self.watchers.insert(id, (watcher, start_revision));
    }

    fn remove(&mut self, id: u64) -> Option<(Watcher, i64)> {
        let (watcher, start) = self.watchers.remove(&id)?;
        match &watcher.range {
            KeyRange::Single(key) => {
                if let Some(ids) = self.by_key.get_mut(key) {
                    ids.remove(&id);
                    if ids.is_empty() {
                        self.by_key.remove(key);
                    }
                }
            }
            KeyRange::Interval { .. } => {
                self.ranges.remove(&id);
            }
        }
        Some((watcher, start))
    }

    /// The synced watchers that may care about `key`.
    fn candidates<'a>(&'a self, key: &[u8]) -> impl Iterator<Item = u64> + 'a {
        let exact = self.by_key.get(key).into_iter().flatten().copied();
        exact.chain(self.ranges.iter().copied())
    }
}

struct HubState {
    /// The last revision published (the store's current revision).
    revision: i64,
    next_id: u64,
    synced: Synced,
}

/// Every watcher on this member. Cheap to share (`Arc`).
pub struct WatchHub {
    state: Mutex<HubState>,
    db: Db,
    /// Open watch streams and the watches they hold, for `/metrics`.
    counts: Counts,
}

/// Gauges kept by the streams as they open, create, cancel and close.
#[derive(Default)]
pub(crate) struct Counts {
    pub(crate) streams: AtomicUsize,
    pub(crate) watches: AtomicUsize,
}

/// Identifies a registered watcher in the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct WatcherId(u64);

impl WatchHub {
    /// A hub for a store currently at `revision`.
    pub fn new(db: Db, revision: i64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(HubState {
                revision,
                next_id: 0,
                synced: Synced::default(),
            }),
            db,
            counts: Counts::default(),
        })
    }

    /// Open watch streams on this member.
    pub fn stream_count(&self) -> usize {
        self.counts.streams.load(Ordering::Relaxed)
    }

    /// Watches held by the open streams.
    pub fn watch_count(&self) -> usize {
        self.counts.watches.load(Ordering::Relaxed)
    }

    pub(crate) fn counts(&self) -> &Counts {
        &self.counts
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The last revision whose events were published.
    pub fn revision(&self) -> i64 {
        self.lock().revision
    }

    /// Delivers one committed revision's events to the synced watchers.
    pub fn publish(self: &Arc<Self>, revision: i64, events: &[Event]) {
        let mut state = self.lock();
        state.revision = state.revision.max(revision);
        let mut batches: HashMap<u64, Vec<Event>> = HashMap::new();
        for event in events {
            let Some(kv) = &event.kv else { continue };
            for id in state.synced.candidates(&kv.key) {
                let Some((watcher, start)) = state.synced.watchers.get(&id) else {
                    continue;
                };
                if revision < *start {
                    continue;
                }
                if let Some(view) = watcher.view(event) {
                    batches.entry(id).or_default().push(view);
                }
            }
        }
        for (id, events) in batches {
            let Some((watcher, _)) = state.synced.watchers.get(&id) else {
                continue;
            };
            let message = WatchMessage::Events {
                watch_id: watcher.watch_id,
                revision,
                events,
                fragment: watcher.fragment,
            };
            match watcher.stream.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    state.synced.remove(id);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Too slow: it resumes from this revision off the table.
                    if let Some((watcher, _)) = state.synced.remove(id) {
                        self.spawn_catch_up(WatcherId(id), watcher, revision);
                    }
                }
            }
        }
    }

    /// Registers a watcher that wants every event from `next_revision` on.
    pub(crate) fn register(self: &Arc<Self>, watcher: Watcher, next_revision: i64) -> WatcherId {
        let mut state = self.lock();
        let id = state.next_id;
        state.next_id += 1;
        if next_revision > state.revision {
            state.synced.insert(id, watcher, next_revision);
        } else {
            self.spawn_catch_up(WatcherId(id), watcher, next_revision);
        }
        WatcherId(id)
    }

    /// Forgets a watcher (its catch-up task, if any, sees the cancel flag).
    pub(crate) fn unregister(&self, id: WatcherId) {
        self.lock().synced.remove(id.0);
    }

    /// Whether every one of `ids` is synced, and if so the revision they are
    /// all synced to; used for progress notifications, which must never run
    /// ahead of delivered events. The send happens under the hub lock so no
    /// publish can slip between the check and the notification.
    pub(crate) fn notify_progress(
        &self,
        ids: &[WatcherId],
        stream: &mpsc::Sender<WatchMessage>,
    ) -> bool {
        let state = self.lock();
        if !ids
            .iter()
            .all(|id| state.synced.watchers.contains_key(&id.0))
        {
            return false;
        }
        let message = WatchMessage::Progress {
            watch_id: -1,
            revision: state.revision,
        };
        stream.try_send(message).is_ok()
    }

    /// Sends a progress notification to every synced watcher that asked
    /// for them (called periodically).
    pub fn notify_periodic_progress(&self) {
        let state = self.lock();
        for (watcher, _) in state.synced.watchers.values() {
            if watcher.progress_notify {
                let _ = watcher.stream.try_send(WatchMessage::Progress {
                    watch_id: watcher.watch_id,
                    revision: state.revision,
                });
            }
        }
    }

    /// The store was replaced by a snapshot: every synced watcher catches
    /// up from the new tables.
    pub fn restored(self: &Arc<Self>, revision: i64) {
        let mut state = self.lock();
        let previous = state.revision;
        state.revision = revision;
        let ids: Vec<u64> = state.synced.watchers.keys().copied().collect();
        for id in ids {
            if let Some((watcher, start)) = state.synced.remove(id) {
                self.spawn_catch_up(WatcherId(id), watcher, start.max(previous + 1));
            }
        }
    }

    fn spawn_catch_up(self: &Arc<Self>, id: WatcherId, watcher: Watcher, next_revision: i64) {
        let hub = self.clone();
        tokio::spawn(async move {
            if let Err(e) = hub.catch_up(id, watcher, next_revision).await {
                tracing::warn!(error = %e, "watch catch-up failed; the watch is canceled");
            }
        });
    }

    /// Sends the revisions from `next` on from storage, then rejoins the
    /// synced set.
    async fn catch_up(
        &self,
        id: WatcherId,
        watcher: Watcher,
        mut next: i64,
    ) -> Result<(), StorageError> {
        loop {
            if watcher.is_canceled() || watcher.stream.is_closed() {
                return Ok(());
            }
            // Everything up to the published revision is committed, so the
            // table has it; read no further than that.
            let published = {
                let mut state = self.lock();
                if next > state.revision {
                    state.synced.insert(id.0, watcher, next);
                    return Ok(());
                }
                state.revision
            };
            let upto = (next + CATCH_UP_REVISIONS - 1).min(published);
            let range = watcher.range.clone();
            let (compacted, events) = self
                .db
                .read_kv(move |kv| {
                    let compacted = kv.revisions()?.compacted;
                    if next < compacted {
                        return Ok((compacted, Vec::new()));
                    }
                    Ok((compacted, kv.changes(&range, next, upto)?))
                })
                .await?;
            if next < compacted {
                let _ = watcher
                    .stream
                    .send(WatchMessage::Compacted {
                        watch_id: watcher.watch_id,
                        compact_revision: compacted,
                    })
                    .await;
                return Ok(());
            }
            for (revision, events) in group_by_revision(events) {
                let events: Vec<Event> = events.iter().filter_map(|e| watcher.view(e)).collect();
                if events.is_empty() {
                    continue;
                }
                let message = WatchMessage::Events {
                    watch_id: watcher.watch_id,
                    revision,
                    events,
                    fragment: watcher.fragment,
                };
                if watcher.is_canceled() || watcher.stream.send(message).await.is_err() {
                    return Ok(());
                }
            }
            next = upto + 1;
        }
    }
}

/// Splits an ordered event list into one list per revision.
fn group_by_revision(events: Vec<Event>) -> Vec<(i64, Vec<Event>)> {
    let mut groups: Vec<(i64, Vec<Event>)> = Vec::new();
    for event in events {
        let revision = event.kv.as_ref().map_or(0, |kv| kv.mod_revision);
        match groups.last_mut() {
            Some((r, group)) if *r == revision => group.push(event),
            _ => groups.push((revision, vec![event])),
        }
    }
    groups
}
