//! Reading the tree: finding a node the way etcd walks to it, showing it
//! (listings without hidden nodes), `get`, and the start of a wait.

use std::collections::BTreeMap;

use super::error::{ErrorCode, V2Error};
use super::path::{ancestors_and_self, clean, is_hidden_name, parent};
use super::{
    Action, Event, NodeView, StoredNode, TableError, UnixNanos, V2Tables, history, ttl_at,
};

/// A lookup failed: either the request's error or a storage failure.
pub(super) enum Lookup {
    Refused(V2Error),
    Failed(TableError),
}

impl From<TableError> for Lookup {
    fn from(e: TableError) -> Self {
        Lookup::Failed(e)
    }
}

/// Finds the node at clean `path` (the root included). A missing component
/// is "Key not found" naming that component's path; a file on the way is
/// "Not a directory" naming the file, as etcd's walk reports them.
pub(super) fn lookup<T: V2Tables + ?Sized>(
    tables: &T,
    path: &str,
    index: u64,
) -> Result<StoredNode, Lookup> {
    if path == "/" {
        return Ok(StoredNode::root());
    }
    if let Some(node) = tables.node(path)? {
        return Ok(node);
    }
    // Something on the way is missing or is a file: find which.
    for step in ancestors_and_self(path) {
        match tables.node(step)? {
            None => {
                return Err(Lookup::Refused(V2Error::at_path(
                    ErrorCode::KeyNotFound,
                    step,
                    index,
                )));
            }
            Some(node) if !node.dir && step != path => {
                return Err(Lookup::Refused(V2Error::at_path(
                    ErrorCode::NotDir,
                    step,
                    index,
                )));
            }
            Some(_) => {}
        }
    }
    Err(Lookup::Refused(V2Error::at_path(
        ErrorCode::KeyNotFound,
        path,
        index,
    )))
}

/// `node` without its children (etcd's `Repr(false, ...)`).
pub(super) fn bare_view(node: &StoredNode, now: UnixNanos) -> NodeView {
    NodeView {
        key: node.path.clone(),
        value: (!node.dir).then(|| node.value.clone()),
        dir: node.dir,
        expiration: node.expire,
        ttl: node.expire.map_or(0, |expire| ttl_at(expire, now)),
        nodes: None,
        modified_index: node.modified_index,
        created_index: node.created_index,
    }
}

/// `node` as a get shows it: a directory lists its visible children, and
/// with `recursive` their whole visible subtrees. Children come in key
/// order, which is also what `sorted` asks for.
fn listed_view<T: V2Tables + ?Sized>(
    tables: &T,
    node: &StoredNode,
    recursive: bool,
    now: UnixNanos,
) -> Result<NodeView, TableError> {
    let mut view = bare_view(node, now);
    if !node.dir {
        return Ok(view);
    }
    if !recursive {
        let children = tables.children(&node.path)?;
        view.nodes = Some(
            children
                .iter()
                .filter(|c| !is_hidden_name(&c.path))
                .map(|c| bare_view(c, now))
                .collect(),
        );
        return Ok(view);
    }
    // One read for the whole subtree, then the tree is built in memory.
    let mut by_parent: BTreeMap<String, Vec<StoredNode>> = BTreeMap::new();
    for descendant in tables.descendants(&node.path)? {
        by_parent
            .entry(parent(&descendant.path).to_string())
            .or_default()
            .push(descendant);
    }
    view.nodes = Some(subtree(&node.path, &by_parent, now));
    Ok(view)
}

fn subtree(
    dir: &str,
    by_parent: &BTreeMap<String, Vec<StoredNode>>,
    now: UnixNanos,
) -> Vec<NodeView> {
    let Some(children) = by_parent.get(dir) else {
        return Vec::new();
    };
    children
        .iter()
        .filter(|c| !is_hidden_name(&c.path))
        .map(|c| {
            let mut view = bare_view(c, now);
            if c.dir {
                view.nodes = Some(subtree(&c.path, by_parent, now));
            }
            view
        })
        .collect()
}

/// A get of `path` (a file's value, or a directory's listing). `now` is
/// the reader's clock, used only to show the remaining TTLs.
pub fn get<T: V2Tables + ?Sized>(
    tables: &T,
    path: &str,
    recursive: bool,
    now: UnixNanos,
) -> Result<Result<Event, V2Error>, TableError> {
    let path = clean(path);
    let index = tables.current_index()?;
    let node = match lookup(tables, &path, index) {
        Ok(node) => node,
        Err(Lookup::Refused(e)) => return Ok(Err(e)),
        Err(Lookup::Failed(e)) => return Err(e),
    };
    let view = listed_view(tables, &node, recursive, now)?;
    Ok(Ok(Event {
        action: Action::Get,
        node: view,
        prev_node: None,
        etcd_index: index,
        refresh: false,
    }))
}

/// Where a wait starts: the store's index at that moment (`X-Etcd-Index`),
/// the first index it waits for, and the event that already answers it
/// if the history holds one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchStart {
    pub key: String,
    pub start_index: u64,
    pub since: u64,
    pub found: Option<Event>,
}

/// Starts a wait on `key` for the first change at or after `wait_index`
/// (0: the next one). A `wait_index` older than the kept history is
/// refused with 401, as etcd refuses it.
pub fn begin_watch<T: V2Tables + ?Sized>(
    tables: &T,
    key: &str,
    recursive: bool,
    wait_index: u64,
) -> Result<Result<WatchStart, V2Error>, TableError> {
    let key = clean(key);
    let start_index = tables.current_index()?;
    let since = if wait_index == 0 {
        start_index + 1
    } else {
        wait_index
    };
    let found = match history::scan(tables, &key, recursive, since)? {
        Ok(found) => found,
        Err(mut e) => {
            e.index = start_index;
            return Ok(Err(e));
        }
    };
    let found = found.map(|mut event| {
        event.etcd_index = start_index;
        event
    });
    Ok(Ok(WatchStart {
        key,
        start_index,
        since,
        found,
    }))
}
