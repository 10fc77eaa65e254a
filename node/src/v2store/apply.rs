//! Applying a replicated v2 write: etcd's rules for set, create, update,
//! compare-and-swap, delete, compare-and-delete and expiry, each advancing
//! the store's index by one and recording one event per change.

use std::sync::Arc;

use super::error::{ErrorCode, V2Error};
use super::path::{ancestors_and_self, clean, join};
use super::read::{Lookup, bare_view, lookup};
use super::stats::Counter;
use super::{Action, Event, NodeView, StoredNode, TableError, UnixNanos, V2Op, V2Tables, V2Write};

/// What watchers must hear about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event: Arc<Event>,
    /// Every node the event removed (a deleted directory's whole subtree):
    /// waiters on those paths hear of it too.
    pub removed: Vec<String>,
}

/// The outcome of one applied write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// The answer for the client (`None` for an expiry sweep).
    pub reply: Option<Result<Event, V2Error>>,
    /// Events for the waiters, in order (refreshes are not among them).
    pub notifications: Vec<Notification>,
    /// The store counters this write moves.
    pub counted: Vec<Counter>,
}

/// Applies `write`. A refused write changes nothing (the caller rolls its
/// transaction back to before the call) and still reports its counters.
pub fn apply<T: V2Tables + ?Sized>(tables: &mut T, write: &V2Write) -> Result<Applied, TableError> {
    let mut store = Store {
        tables,
        now: write.now,
        counted: Vec::new(),
        notifications: Vec::new(),
    };
    let expiry = |ttl: &Option<u64>| super::expiry(write.now, *ttl);
    let reply = match &write.op {
        V2Op::ExpireKeys => {
            store.expire_keys()?;
            None
        }
        V2Op::Set {
            path,
            dir,
            value,
            ttl,
            refresh,
        } => Some(
            store.counted_op(Counter::SetSuccess, Counter::SetFail, &[], |s| {
                s.set(path, *dir, value, expiry(ttl), *refresh)
            })?,
        ),
        V2Op::Create {
            path,
            dir,
            value,
            unique,
            ttl,
        } => Some(
            store.counted_op(Counter::CreateSuccess, Counter::CreateFail, &[], |s| {
                s.create(path, *dir, value, *unique, expiry(ttl))
            })?,
        ),
        V2Op::Update {
            path,
            value,
            ttl,
            refresh,
        } => Some(store.counted_op(
            Counter::UpdateSuccess,
            Counter::UpdateFail,
            &[ErrorCode::RootReadOnly, ErrorCode::NotFile],
            |s| s.update(path, value, expiry(ttl), *refresh),
        )?),
        V2Op::CompareAndSwap {
            path,
            prev_value,
            prev_index,
            value,
            ttl,
            refresh,
        } => Some(store.counted_op(
            Counter::CompareAndSwapSuccess,
            Counter::CompareAndSwapFail,
            &[ErrorCode::RootReadOnly],
            |s| s.compare_and_swap(path, prev_value, *prev_index, value, expiry(ttl), *refresh),
        )?),
        V2Op::Delete {
            path,
            dir,
            recursive,
        } => Some(store.counted_op(
            Counter::DeleteSuccess,
            Counter::DeleteFail,
            &[ErrorCode::RootReadOnly],
            |s| s.delete(path, *dir, *recursive),
        )?),
        V2Op::CompareAndDelete {
            path,
            prev_value,
            prev_index,
        } => Some(store.counted_op(
            Counter::CompareAndDeleteSuccess,
            Counter::CompareAndDeleteFail,
            &[ErrorCode::NotFile, ErrorCode::TestFailed],
            |s| s.compare_and_delete(path, prev_value, *prev_index),
        )?),
    };
    Ok(Applied {
        reply,
        notifications: store.notifications,
        counted: store.counted,
    })
}

/// One write in progress.
struct Store<'t, T: V2Tables + ?Sized> {
    tables: &'t mut T,
    now: UnixNanos,
    counted: Vec<Counter>,
    notifications: Vec<Notification>,
}

/// A client operation's result.
type OpResult = Result<Result<Event, V2Error>, TableError>;

impl<T: V2Tables + ?Sized> Store<'_, T> {
    /// Runs a client operation and counts its success or failure. Refusals
    /// with a code in `counted_as_success` count as successes, as etcd's
    /// store counts them (its counter only sees some of its errors).
    fn counted_op(
        &mut self,
        success: Counter,
        failure: Counter,
        counted_as_success: &[ErrorCode],
        op: impl FnOnce(&mut Self) -> OpResult,
    ) -> OpResult {
        let result = op(self)?;
        let failed = result
            .as_ref()
            .is_err_and(|e| !counted_as_success.contains(&e.code));
        self.counted.push(if failed { failure } else { success });
        Ok(result)
    }

    fn index(&self) -> Result<u64, TableError> {
        self.tables.current_index()
    }

    /// Finds a node, turning a refusal into the request's error.
    fn find(&self, path: &str) -> Result<Result<StoredNode, V2Error>, TableError> {
        let index = self.index()?;
        match lookup(&*self.tables, path, index) {
            Ok(node) => Ok(Ok(node)),
            Err(Lookup::Refused(e)) => Ok(Err(e)),
            Err(Lookup::Failed(e)) => Err(e),
        }
    }

    /// Records an event at its index, advances the store's index to it,
    /// and queues it for the waiters unless it is a refresh.
    fn commit(&mut self, mut event: Event, removed: Vec<String>) -> OpResult {
        event.etcd_index = event.index();
        self.tables.set_current_index(event.index())?;
        self.tables.record_event(&event)?;
        if !event.refresh {
            self.notifications.push(Notification {
                event: Arc::new(event.clone()),
                removed,
            });
        }
        Ok(Ok(event))
    }

    fn view_at(&self, node: &StoredNode) -> NodeView {
        bare_view(node, self.now)
    }

    /// The node a write creates (a file, or a directory when `dir`).
    fn new_node(
        path: &str,
        dir: bool,
        value: &str,
        index: u64,
        expire: Option<UnixNanos>,
    ) -> StoredNode {
        StoredNode {
            path: path.to_string(),
            dir,
            value: if dir {
                String::new()
            } else {
                value.to_string()
            },
            created_index: index,
            modified_index: index,
            expire,
        }
    }

    /// Set: creates the node, replacing a file (never a directory) there.
    fn set(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        expire: Option<UnixNanos>,
        refresh: bool,
    ) -> OpResult {
        let path = clean(path);
        let previous = match self.find(&path)? {
            Ok(node) => Some(node),
            Err(e) if e.code == ErrorCode::KeyNotFound && !refresh => None,
            Err(e) => return Ok(Err(e)),
        };
        // A refresh keeps the value and only renews the TTL.
        let value = match (&previous, refresh) {
            (Some(node), true) => node.value.clone(),
            _ => value.to_string(),
        };
        let mut event = match self.place(&path, dir, &value, false, true, expire, Action::Set)? {
            Ok(event) => event,
            Err(e) => return Ok(Err(e)),
        };
        event.refresh = refresh;
        self.commit(event, Vec::new())
    }

    fn create(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        unique: bool,
        expire: Option<UnixNanos>,
    ) -> OpResult {
        match self.place(path, dir, value, unique, false, expire, Action::Create)? {
            Ok(event) => self.commit(event, Vec::new()),
            Err(e) => Ok(Err(e)),
        }
    }

    /// Puts a new node at `path` (under an in-order name when `unique`),
    /// creating missing parent directories; an existing file is replaced
    /// only when `replace`. Returns the event, not yet committed.
    #[allow(clippy::too_many_arguments)]
    fn place(
        &mut self,
        path: &str,
        dir: bool,
        value: &str,
        unique: bool,
        replace: bool,
        expire: Option<UnixNanos>,
        action: Action,
    ) -> Result<Result<Event, V2Error>, TableError> {
        let current = self.index()?;
        let next = current + 1;
        let path = if unique {
            clean(&join(&clean(path), &format!("{next:020}")))
        } else {
            clean(path)
        };
        if path == "/" {
            return Ok(Err(V2Error::new(ErrorCode::RootReadOnly, "/", current)));
        }
        if let Err(e) = self.make_parents(&path, next, current)? {
            // etcd counts a failed parent walk as a failed set, whatever
            // the operation was.
            self.counted.push(Counter::SetFail);
            return Ok(Err(e));
        }
        let mut prev_node = None;
        if let Some(existing) = self.tables.node(&path)? {
            if !replace {
                return Ok(Err(V2Error::at_path(ErrorCode::NodeExist, &path, current)));
            }
            if existing.dir {
                return Ok(Err(V2Error::at_path(ErrorCode::NotFile, &path, current)));
            }
            prev_node = Some(self.view_at(&existing));
        }
        let node = Self::new_node(&path, dir, value, next, expire);
        self.tables.put(&node)?;
        Ok(Ok(Event {
            action,
            node: self.view_at(&node),
            prev_node,
            etcd_index: next,
            refresh: false,
        }))
    }

    /// Creates the missing directories above `path` (with index `next`);
    /// a file on the way is "Not a directory".
    fn make_parents(
        &mut self,
        path: &str,
        next: u64,
        current: u64,
    ) -> Result<Result<(), V2Error>, TableError> {
        let steps = ancestors_and_self(path);
        for step in &steps[..steps.len().saturating_sub(1)] {
            match self.tables.node(step)? {
                Some(node) if node.dir => {}
                Some(_) => {
                    return Ok(Err(V2Error::at_path(ErrorCode::NotDir, step, current)));
                }
                None => self
                    .tables
                    .put(&Self::new_node(step, true, "", next, None))?,
            }
        }
        Ok(Ok(()))
    }

    /// Update: a file's value and TTL, or a directory's TTL.
    fn update(
        &mut self,
        path: &str,
        value: &str,
        expire: Option<UnixNanos>,
        refresh: bool,
    ) -> OpResult {
        let path = clean(path);
        let current = self.index()?;
        if path == "/" {
            return Ok(Err(V2Error::new(ErrorCode::RootReadOnly, "/", current)));
        }
        let mut node = match self.find(&path)? {
            Ok(node) => node,
            Err(e) => return Ok(Err(e)),
        };
        if node.dir && !value.is_empty() {
            return Ok(Err(V2Error::at_path(ErrorCode::NotFile, &path, current)));
        }
        let next = current + 1;
        let prev_node = self.view_at(&node);
        if !node.dir {
            if !refresh {
                node.value = value.to_string();
            }
            // A directory keeps its modified index (etcd cannot write one).
            node.modified_index = next;
        }
        node.expire = expire;
        self.tables.put(&node)?;
        let mut view = self.view_at(&node);
        view.modified_index = next;
        self.commit(
            Event {
                action: Action::Update,
                node: view,
                prev_node: Some(prev_node),
                etcd_index: next,
                refresh,
            },
            Vec::new(),
        )
    }

    /// The compare both conditional operations make: each given condition
    /// (a non-empty previous value, a non-zero previous index) must hold.
    fn compare(
        node: &StoredNode,
        prev_value: &str,
        prev_index: u64,
        current: u64,
    ) -> Result<(), V2Error> {
        let value_ok = prev_value.is_empty() || node.value == prev_value;
        let index_ok = prev_index == 0 || node.modified_index == prev_index;
        let cause = match (value_ok, index_ok) {
            (true, true) => return Ok(()),
            (false, true) => format!("[{prev_value} != {}]", node.value),
            (true, false) => format!("[{prev_index} != {}]", node.modified_index),
            (false, false) => format!(
                "[{prev_value} != {}] [{prev_index} != {}]",
                node.value, node.modified_index
            ),
        };
        Err(V2Error::new(ErrorCode::TestFailed, cause, current))
    }

    fn compare_and_swap(
        &mut self,
        path: &str,
        prev_value: &str,
        prev_index: u64,
        value: &str,
        expire: Option<UnixNanos>,
        refresh: bool,
    ) -> OpResult {
        let path = clean(path);
        let current = self.index()?;
        if path == "/" {
            return Ok(Err(V2Error::new(ErrorCode::RootReadOnly, "/", current)));
        }
        let mut node = match self.find(&path)? {
            Ok(node) => node,
            Err(e) => return Ok(Err(e)),
        };
        if node.dir {
            return Ok(Err(V2Error::at_path(ErrorCode::NotFile, &path, current)));
        }
        if let Err(e) = Self::compare(&node, prev_value, prev_index, current) {
            return Ok(Err(e));
        }
        let next = current + 1;
        let prev_node = self.view_at(&node);
        if !refresh {
            node.value = value.to_string();
        }
        node.modified_index = next;
        node.expire = expire;
        self.tables.put(&node)?;
        let node_view = self.view_at(&node);
        self.commit(
            Event {
                action: Action::CompareAndSwap,
                node: node_view,
                prev_node: Some(prev_node),
                etcd_index: next,
                refresh,
            },
            Vec::new(),
        )
    }

    fn delete(&mut self, path: &str, dir: bool, recursive: bool) -> OpResult {
        let path = clean(path);
        let current = self.index()?;
        if path == "/" {
            return Ok(Err(V2Error::new(ErrorCode::RootReadOnly, "/", current)));
        }
        let node = match self.find(&path)? {
            Ok(node) => node,
            Err(e) => return Ok(Err(e)),
        };
        // `recursive` implies `dir`.
        let removed = match self.remove_node(&node, dir || recursive, recursive, current)? {
            Ok(removed) => removed,
            Err(e) => return Ok(Err(e)),
        };
        let event = self.removal_event(Action::Delete, &node, current + 1);
        self.commit(event, removed)
    }

    fn compare_and_delete(&mut self, path: &str, prev_value: &str, prev_index: u64) -> OpResult {
        let path = clean(path);
        let current = self.index()?;
        let node = match self.find(&path)? {
            Ok(node) => node,
            Err(e) => return Ok(Err(e)),
        };
        if node.dir {
            return Ok(Err(V2Error::at_path(ErrorCode::NotFile, &path, current)));
        }
        if let Err(e) = Self::compare(&node, prev_value, prev_index, current) {
            return Ok(Err(e));
        }
        self.tables.remove(&node.path)?;
        let event = self.removal_event(Action::CompareAndDelete, &node, current + 1);
        self.commit(event, vec![node.path])
    }

    /// The event of a removal at index `next`.
    fn removal_event(&self, action: Action, node: &StoredNode, next: u64) -> Event {
        Event {
            action,
            node: NodeView {
                key: node.path.clone(),
                dir: node.dir,
                modified_index: next,
                created_index: node.created_index,
                ..NodeView::default()
            },
            prev_node: Some(self.view_at(node)),
            etcd_index: next,
            refresh: false,
        }
    }

    /// Removes a file, or a directory when `dir` (with its subtree when
    /// `recursive`); returns the removed paths, deepest first.
    fn remove_node(
        &mut self,
        node: &StoredNode,
        dir: bool,
        recursive: bool,
        current: u64,
    ) -> Result<Result<Vec<String>, V2Error>, TableError> {
        if !node.dir {
            self.tables.remove(&node.path)?;
            return Ok(Ok(vec![node.path.clone()]));
        }
        if !dir {
            return Ok(Err(V2Error::at_path(
                ErrorCode::NotFile,
                &node.path,
                current,
            )));
        }
        let below = self.tables.descendants(&node.path)?;
        if !below.is_empty() && !recursive {
            return Ok(Err(V2Error::at_path(
                ErrorCode::DirNotEmpty,
                &node.path,
                current,
            )));
        }
        let mut removed = Vec::with_capacity(below.len() + 1);
        for child in below.iter().rev() {
            self.tables.remove(&child.path)?;
            removed.push(child.path.clone());
        }
        self.tables.remove(&node.path)?;
        removed.push(node.path.clone());
        Ok(Ok(removed))
    }

    /// Expires, one event each, every node whose time is up at the
    /// command's time, earliest first.
    fn expire_keys(&mut self) -> Result<(), TableError> {
        while let Some(node) = self.tables.first_expired(self.now)? {
            let current = self.index()?;
            let removed = match self.remove_node(&node, true, true, current)? {
                Ok(removed) => removed,
                // Unreachable: a forced recursive removal cannot be refused.
                Err(e) => return Err(TableError(e.to_string())),
            };
            let event = self.removal_event(Action::Expire, &node, current + 1);
            self.counted.push(Counter::ExpireCount);
            self.commit(event, removed)?
                .map_err(|e| TableError(e.to_string()))?;
        }
        Ok(())
    }
}
