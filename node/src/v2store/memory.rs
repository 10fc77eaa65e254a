//! An in-memory [`V2Tables`]: the reference the unit tests run the rules
//! on (the SQLite tables are checked against the same behaviour).

use std::collections::BTreeMap;

use super::path::parent;
use super::{Event, HISTORY_CAPACITY, StoredNode, TableError, UnixNanos, V2Tables};

#[derive(Default)]
pub(super) struct MemoryTables {
    nodes: BTreeMap<String, StoredNode>,
    events: BTreeMap<u64, Event>,
    index: u64,
}

fn below(dir: &str) -> String {
    if dir == "/" {
        "/".into()
    } else {
        format!("{dir}/")
    }
}

impl V2Tables for MemoryTables {
    fn node(&self, path: &str) -> Result<Option<StoredNode>, TableError> {
        Ok(self.nodes.get(path).cloned())
    }

    fn children(&self, dir: &str) -> Result<Vec<StoredNode>, TableError> {
        Ok(self
            .nodes
            .values()
            .filter(|n| parent(&n.path) == dir)
            .cloned()
            .collect())
    }

    fn descendants(&self, dir: &str) -> Result<Vec<StoredNode>, TableError> {
        let prefix = below(dir);
        Ok(self
            .nodes
            .values()
            .filter(|n| n.path.starts_with(&prefix))
            .cloned()
            .collect())
    }

    fn put(&mut self, node: &StoredNode) -> Result<(), TableError> {
        self.nodes.insert(node.path.clone(), node.clone());
        Ok(())
    }

    fn remove(&mut self, path: &str) -> Result<(), TableError> {
        self.nodes.remove(path);
        Ok(())
    }

    fn current_index(&self) -> Result<u64, TableError> {
        Ok(self.index)
    }

    fn set_current_index(&mut self, index: u64) -> Result<(), TableError> {
        self.index = index;
        Ok(())
    }

    fn record_event(&mut self, event: &Event) -> Result<(), TableError> {
        self.events.insert(event.index(), event.clone());
        while self.events.len() as u64 > HISTORY_CAPACITY {
            self.events.pop_first();
        }
        Ok(())
    }

    fn history_bounds(&self) -> Result<(u64, u64), TableError> {
        let oldest = self.events.keys().next().copied().unwrap_or(0);
        let newest = self.events.keys().next_back().copied().unwrap_or(0);
        Ok((oldest, newest))
    }

    fn history_from(&self, index: u64) -> Result<Vec<Event>, TableError> {
        Ok(self.events.range(index..).map(|(_, e)| e.clone()).collect())
    }

    fn first_expired(&self, cutoff: UnixNanos) -> Result<Option<StoredNode>, TableError> {
        Ok(self
            .nodes
            .values()
            .filter(|n| n.expire.is_some_and(|e| e <= cutoff))
            .min_by_key(|n| (n.expire, n.path.clone()))
            .cloned())
    }

    fn next_expiry(&self) -> Result<Option<UnixNanos>, TableError> {
        Ok(self.nodes.values().filter_map(|n| n.expire).min())
    }
}
