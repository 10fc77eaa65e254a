//! Waiters (`wait=true`) on this member, and which of them hears of which
//! applied event.
//!
//! A waiter on a path hears of a change at that path; a recursive one also
//! of changes below it, except below a hidden (`_`) component; and every
//! waiter on a node a deletion or expiry removed hears of that deletion.
//! Delivery happens on the apply path after the change is committed, so it
//! never blocks: a waiter whose queue is full is dropped and its wait ends
//! (as etcd drops it). A [`Watch`] unregisters itself when dropped, so a
//! client that goes away leaves nothing behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use tokio::sync::mpsc;

use super::Event;
use super::apply::Notification;
use super::path::{ancestors_and_self, is_hidden_below};
use super::read::WatchStart;

/// How many undelivered events a waiter may have queued.
const QUEUE: usize = 100;

/// What a waiter receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchSignal {
    Event(Arc<Event>),
    /// A snapshot replaced this member's store: events may have been
    /// skipped, so the wait cannot go on.
    Cleared,
}

struct Slot {
    id: u64,
    recursive: bool,
    since: u64,
    queue: mpsc::Sender<WatchSignal>,
}

#[derive(Default)]
struct HubState {
    by_path: HashMap<String, Vec<Slot>>,
    next_id: u64,
    count: usize,
}

/// Every waiter on this member.
#[derive(Default)]
pub struct WatcherHub {
    state: Mutex<HubState>,
}

impl WatcherHub {
    pub fn new() -> Arc<WatcherHub> {
        Arc::default()
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many waiters are registered (`watchers` in the store stats).
    pub fn count(&self) -> u64 {
        self.lock().count as u64
    }

    /// Registers a waiter on clean path `key` for events at or after
    /// `since` (0: any).
    pub fn register(self: &Arc<Self>, key: &str, recursive: bool, since: u64) -> Registration {
        let (queue, events) = mpsc::channel(QUEUE);
        let mut state = self.lock();
        state.next_id += 1;
        let id = state.next_id;
        state
            .by_path
            .entry(key.to_string())
            .or_default()
            .push(Slot {
                id,
                recursive,
                since,
                queue,
            });
        state.count += 1;
        Registration {
            id,
            key: key.to_string(),
            hub: Arc::downgrade(self),
            events,
        }
    }

    fn unregister(&self, key: &str, id: u64) {
        let mut state = self.lock();
        let HubState { by_path, count, .. } = &mut *state;
        if let Some(slots) = by_path.get_mut(key) {
            let before = slots.len();
            slots.retain(|slot| slot.id != id);
            *count -= before - slots.len();
            if slots.is_empty() {
                by_path.remove(key);
            }
        }
    }

    /// Hands an applied event to every waiter it concerns: first those on
    /// the nodes it removed, then those on the event's path and its
    /// ancestors.
    pub fn notify(&self, notification: &Notification) {
        let mut state = self.lock();
        for removed in &notification.removed {
            state.deliver(removed, &notification.event, true);
        }
        let key = &notification.event.node.key;
        state.deliver("/", &notification.event, false);
        for path in ancestors_and_self(key) {
            state.deliver(path, &notification.event, false);
        }
    }

    /// A snapshot replaced the store: every wait ends with
    /// [`WatchSignal::Cleared`].
    pub fn clear(&self) {
        let mut state = self.lock();
        for slot in state.by_path.drain().flat_map(|(_, slots)| slots) {
            let _ = slot.queue.try_send(WatchSignal::Cleared);
        }
        state.count = 0;
    }
}

impl HubState {
    fn deliver(&mut self, path: &str, event: &Arc<Event>, deleted: bool) {
        let Some(slots) = self.by_path.get_mut(path) else {
            return;
        };
        let key = &event.node.key;
        let at_path = key == path;
        let visible = at_path || !is_hidden_below(path, key);
        let before = slots.len();
        slots.retain(|slot| {
            let wants =
                visible && (slot.recursive || at_path || deleted) && event.index() >= slot.since;
            // A full queue (a client not keeping up) ends the wait.
            !wants
                || slot
                    .queue
                    .try_send(WatchSignal::Event(event.clone()))
                    .is_ok()
        });
        self.count -= before - slots.len();
        if slots.is_empty() {
            self.by_path.remove(path);
        }
    }
}

/// A registered waiter's queue; dropping it unregisters the waiter.
pub struct Registration {
    id: u64,
    key: String,
    hub: Weak<WatcherHub>,
    events: mpsc::Receiver<WatchSignal>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(hub) = self.hub.upgrade() {
            hub.unregister(&self.key, self.id);
        }
    }
}

/// One wait: the event the history already holds, or the live events
/// after the store's index when the wait started.
pub struct Watch {
    start_index: u64,
    since: u64,
    found: Option<Event>,
    live: Option<Registration>,
}

impl Watch {
    /// Combines a waiter registered before `start` was read with what the
    /// read found. A history answer makes the live registration unneeded;
    /// otherwise only events after the read are taken, since the read
    /// already saw the earlier ones.
    pub fn new(start: WatchStart, registration: Registration) -> Watch {
        let live = start.found.is_none().then_some(registration);
        Watch {
            start_index: start.start_index,
            since: start.since,
            found: start.found,
            live,
        }
    }

    /// The store's index when the wait started (`X-Etcd-Index`).
    pub fn start_index(&self) -> u64 {
        self.start_index
    }

    /// The next event; `None` once the waiter was dropped for falling
    /// behind. After an answer from the history there is nothing more (a
    /// streaming wait then idles until its time runs out, as in etcd).
    pub async fn next(&mut self) -> Option<WatchSignal> {
        if let Some(found) = self.found.take() {
            return Some(WatchSignal::Event(Arc::new(found)));
        }
        let Some(live) = self.live.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            match live.events.recv().await? {
                WatchSignal::Event(event)
                    if event.index() <= self.start_index || event.index() < self.since => {}
                signal => return Some(signal),
            }
        }
    }
}
