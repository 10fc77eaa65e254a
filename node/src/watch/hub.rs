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

/// Whether `event` should carry the version it replaced but came without
/// it: the apply path leaves previous values out while no synced watcher
/// asks for them. A put replaced a live version unless it created the
/// key (version 1); a delete always did.
fn lacks_prev(event: &Event) -> bool {
    let replaced = event.r#type == EventType::Delete as i32
        || event.kv.as_ref().is_some_and(|kv| kv.version > 1);
    replaced && event.prev_kv.is_none()
}

/// Synced watchers, indexed so a revision finds its watchers quickly.
#[derive(Default)]
struct Synced {
    watchers: HashMap<u64, (Watcher, i64)>,
    by_key: HashMap<Vec<u8>, HashSet<u64>>,
    ranges: HashSet<u64>,
    /// How many of them watch with `prev_kv` (read by the apply path
    /// without the hub's lock).
    with_prev_kv: Arc<AtomicUsize>,
}

impl Synced {
    fn insert(&mut self, id: u64, watcher: Watcher, start_revision: i64) {
        if watcher.prev_kv {
            self.with_prev_kv.fetch_add(1, Ordering::Relaxed);
        }
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
        if watcher.prev_kv {
            self.with_prev_kv.fetch_sub(1, Ordering::Relaxed);
        }
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
    /// The synced watchers' `prev_kv` count (shared with `Synced`).
    with_prev_kv: Arc<AtomicUsize>,
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
        let synced = Synced::default();
        Arc::new(Self {
            with_prev_kv: synced.with_prev_kv.clone(),
            state: Mutex::new(HubState {
                revision,
                next_id: 0,
                synced,
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

    /// Whether a synced watcher wants the versions events replace. Events
    /// applied while this said no may come without them; a `prev_kv`
    /// watcher synced meanwhile meets such an event in
    /// [`publish`](Self::publish) and catches up from the table instead.
    pub fn wants_prev_values(&self) -> bool {
        self.with_prev_kv.load(Ordering::Relaxed) > 0
    }

    /// Delivers one committed revision's events to the synced watchers.
    pub fn publish(self: &Arc<Self>, revision: i64, events: &[Event]) {
        let mut state = self.lock();
        state.revision = state.revision.max(revision);
        let mut batches: HashMap<u64, Vec<Event>> = HashMap::new();
        // `prev_kv` watchers this revision reached without previous values.
        let mut without_prev: HashSet<u64> = HashSet::new();
        for event in events {
            let Some(kv) = &event.kv else { continue };
            let lacks_prev = lacks_prev(event);
            for id in state.synced.candidates(&kv.key) {
                let Some((watcher, start)) = state.synced.watchers.get(&id) else {
                    continue;
                };
                if revision < *start || without_prev.contains(&id) {
                    continue;
                }
                if let Some(view) = watcher.view(event) {
                    if watcher.prev_kv && lacks_prev {
                        batches.remove(&id);
                        without_prev.insert(id);
                    } else {
                        batches.entry(id).or_default().push(view);
                    }
                }
            }
        }
        for id in without_prev {
            // The table has the previous versions: this revision and on
            // are read from there.
            if let Some((watcher, _)) = state.synced.remove(id) {
                self.spawn_catch_up(WatcherId(id), watcher, revision);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mvcc::{self, MemoryBackend};
    use crate::proto::etcdserverpb::PutRequest;
    use crate::storage::SqliteKv;

    fn watcher(prev_kv: bool, stream: mpsc::Sender<WatchMessage>) -> Watcher {
        Watcher {
            watch_id: i64::from(prev_kv),
            range: KeyRange::Single(b"a".to_vec()),
            prev_kv,
            no_put: false,
            no_delete: false,
            progress_notify: false,
            fragment: false,
            stream,
            canceled: Arc::default(),
        }
    }

    fn put(value: &str) -> PutRequest {
        PutRequest {
            key: b"a".to_vec(),
            value: value.into(),
            ..Default::default()
        }
    }

    /// Events applied while no synced watcher wanted previous values come
    /// without them; a `prev_kv` watcher synced meanwhile still gets them,
    /// read back from the table, and the others get the event as it came.
    #[tokio::test]
    async fn a_prev_kv_watcher_meeting_an_event_without_prev_reads_it_from_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("cetera.db")).await.unwrap();
        let keys = db.key_index().clone();
        let lean_events = db
            .write(move |conn| {
                let tx = conn.transaction()?;
                let mut kv = SqliteKv::writer(&tx, &keys);
                mvcc::apply_put(&mut kv, &put("1")).unwrap();
                let mut kv = kv.without_prev_values();
                let events = mvcc::apply_put(&mut kv, &put("2")).unwrap().events;
                keys.publish(|| tx.commit())?;
                Ok(events)
            })
            .await
            .unwrap();
        // What the same put carries when previous values are wanted.
        let mut reference = MemoryBackend::default();
        mvcc::apply_put(&mut reference, &put("1")).unwrap();
        let full_events = mvcc::apply_put(&mut reference, &put("2")).unwrap().events;
        assert_eq!(lean_events[0].prev_kv, None);
        assert!(lacks_prev(&lean_events[0]));
        assert!(!lacks_prev(&full_events[0]));

        let hub = WatchHub::new(db, 2);
        assert!(!hub.wants_prev_values());
        let (with_prev, mut with_prev_rx) = mpsc::channel(8);
        let (plain, mut plain_rx) = mpsc::channel(8);
        hub.register(watcher(true, with_prev), 3);
        hub.register(watcher(false, plain), 3);
        assert!(hub.wants_prev_values());
        hub.publish(3, &lean_events);

        let expected = |watch_id, prev_kv: bool| WatchMessage::Events {
            watch_id,
            revision: 3,
            events: vec![Event {
                prev_kv: full_events[0].prev_kv.clone().filter(|_| prev_kv),
                ..full_events[0].clone()
            }],
            fragment: false,
        };
        assert_eq!(plain_rx.recv().await, Some(expected(0, false)));
        assert_eq!(with_prev_rx.recv().await, Some(expected(1, true)));
        // Caught up, it is synced again and still counted.
        tokio::time::timeout(std::time::Duration::from_secs(5), async {
            while hub.lock().synced.watchers.len() < 2 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
        assert!(hub.wants_prev_values());
    }
}
