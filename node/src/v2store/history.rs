//! The event history: the newest [`HISTORY_CAPACITY`](super::HISTORY_CAPACITY)
//! events, from which a wait with a `waitIndex` is answered.

use super::error::{ErrorCode, V2Error};
use super::{Action, Event, TableError, V2Tables};

/// Whether a kept event answers a wait on `key` (etcd's history rules):
/// a change at the key itself; with `recursive`, a change below it; and
/// the deletion or expiry of a directory whose path is a prefix of the key.
/// Refreshes are never reported.
fn answers(event: &Event, key: &str, recursive: bool) -> bool {
    if event.refresh {
        return false;
    }
    let changed = &event.node.key;
    if changed == key {
        return true;
    }
    if recursive {
        let below = if key.ends_with('/') {
            key.to_string()
        } else {
            format!("{key}/")
        };
        if changed.starts_with(&below) {
            return true;
        }
    }
    matches!(event.action, Action::Delete | Action::Expire)
        && event
            .prev_node
            .as_ref()
            .is_some_and(|prev| prev.dir && key.starts_with(&prev.key))
}

/// The first kept event at or after `since` that answers a wait on `key`,
/// or `None` if none does yet. `since` older than the oldest kept event is
/// refused (the error's index is left for the caller to fill in).
pub(super) fn scan<T: V2Tables + ?Sized>(
    tables: &T,
    key: &str,
    recursive: bool,
    since: u64,
) -> Result<Result<Option<Event>, V2Error>, TableError> {
    let (oldest, newest) = tables.history_bounds()?;
    if since < oldest {
        return Ok(Err(V2Error::new(
            ErrorCode::EventIndexCleared,
            format!("the requested history has been cleared [{oldest}/{since}]"),
            0,
        )));
    }
    if since > newest {
        return Ok(Ok(None));
    }
    let found = tables
        .history_from(since)?
        .into_iter()
        .find(|event| answers(event, key, recursive));
    Ok(Ok(found))
}
