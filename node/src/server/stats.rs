//! Counters and timestamps operators read through `/v2/stats/self` and
//! `/metrics`: what Raft's own metrics do not keep.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Append-request counts of the peer protocol, shared with the network,
/// and when each peer last answered.
#[derive(Debug, Default)]
pub struct PeerStats {
    received_appends: AtomicU64,
    sent_appends: AtomicU64,
    last_contact: Mutex<std::collections::HashMap<u64, std::time::Instant>>,
    /// Set when a peer told this member it was removed from the cluster.
    removed: std::sync::atomic::AtomicBool,
}

impl PeerStats {
    pub fn count_received_append(&self) {
        self.received_appends.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_sent_append(&self) {
        self.sent_appends.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_contact(&self, peer: u64) {
        let mut contacts = self.last_contact.lock().unwrap_or_else(|p| p.into_inner());
        contacts.insert(peer, std::time::Instant::now());
    }

    /// Whether `peer` answered within `window`.
    pub fn contacted_within(&self, peer: u64, window: std::time::Duration) -> bool {
        let contacts = self.last_contact.lock().unwrap_or_else(|p| p.into_inner());
        contacts.get(&peer).is_some_and(|at| at.elapsed() <= window)
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
    }

    pub fn is_removed(&self) -> bool {
        self.removed.load(Ordering::Relaxed)
    }

    pub fn received_appends(&self) -> u64 {
        self.received_appends.load(Ordering::Relaxed)
    }

    pub fn sent_appends(&self) -> u64 {
        self.sent_appends.load(Ordering::Relaxed)
    }
}

/// Which leader this member follows and since when, and how often it
/// changed.
#[derive(Debug, Default)]
pub(crate) struct LeaderHistory {
    current: Mutex<Option<(u64, SystemTime)>>,
    changes: AtomicU64,
    failed_proposals: AtomicU64,
}

impl LeaderHistory {
    /// Records the leader seen now (None: no leader).
    pub(crate) fn observe(&self, leader: Option<u64>) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let known = current.map(|(id, _)| id);
        if known != leader {
            if leader.is_some() {
                self.changes.fetch_add(1, Ordering::Relaxed);
            }
            *current = leader.map(|id| (id, SystemTime::now()));
        }
    }

    /// The current leader and when this member first saw it lead.
    pub(crate) fn current(&self) -> Option<(u64, SystemTime)> {
        *self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }

    pub(crate) fn count_failed_proposal(&self) {
        self.failed_proposals.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn failed_proposals(&self) -> u64 {
        self.failed_proposals.load(Ordering::Relaxed)
    }
}

/// `/v2/stats/self`, with etcd's field names.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfStats {
    pub name: String,
    pub id: String,
    pub state: &'static str,
    pub start_time: String,
    pub leader_info: LeaderInfo,
    pub recv_append_request_cnt: u64,
    pub send_append_request_cnt: u64,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaderInfo {
    pub leader: String,
    pub uptime: String,
    pub start_time: String,
}

/// A duration the way Go prints it (`1h2m3.5s`, `3.311074187s`, `0s`).
pub(crate) fn go_duration(d: std::time::Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = nanos / 60_000_000_000 % 60;
    let seconds = nanos % 60_000_000_000;
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    let whole = seconds / 1_000_000_000;
    let fraction = seconds % 1_000_000_000;
    if fraction == 0 {
        text.push_str(&format!("{whole}s"));
    } else {
        let digits = format!("{fraction:09}");
        text.push_str(&format!("{whole}.{}s", digits.trim_end_matches('0')));
    }
    text
}

/// A timestamp the way etcd prints it (RFC 3339 with nanoseconds, UTC).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn durations_print_like_go() {
        assert_eq!(go_duration(Duration::from_millis(3311)), "3.311s");
        assert_eq!(
            go_duration(Duration::from_nanos(3_311_074_187)),
            "3.311074187s"
        );
        assert_eq!(go_duration(Duration::from_secs(3723)), "1h2m3s");
        assert_eq!(go_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(go_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn leader_changes_are_counted_once_per_new_leader() {
        let history = LeaderHistory::default();
        history.observe(Some(1));
        history.observe(Some(1));
        history.observe(None);
        history.observe(Some(2));
        assert_eq!(history.changes(), 2);
        assert_eq!(history.current().map(|(id, _)| id), Some(2));
    }
}
