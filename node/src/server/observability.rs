//! What operators' tools read: `/v2/stats/self` and the Prometheus
//! metrics, under etcd's names.

use std::fmt::Write;
use std::time::SystemTime;

use super::Node;
use super::stats::{LeaderInfo, SelfStats, go_duration, rfc3339};
use openraft::ServerState;

impl Node {
    /// `/v2/stats/self`.
    pub fn self_stats(&self) -> SelfStats {
        let metrics = self.metrics();
        let state = match metrics.state {
            ServerState::Leader => "StateLeader",
            ServerState::Candidate => "StateCandidate",
            _ => "StateFollower",
        };
        let (leader, since) = self.leaders.current().unwrap_or((0, SystemTime::now()));
        let uptime = SystemTime::now().duration_since(since).unwrap_or_default();
        SelfStats {
            name: self.identity.name.clone(),
            id: format!("{:x}", self.identity.member_id),
            state,
            start_time: rfc3339(self.started_at),
            leader_info: LeaderInfo {
                leader: format!("{leader:x}"),
                uptime: go_duration(uptime),
                start_time: rfc3339(since),
            },
            recv_append_request_cnt: self.peer_stats.received_appends(),
            send_append_request_cnt: self.peer_stats.sent_appends(),
        }
    }

    /// `/metrics` in Prometheus' text format, with etcd's metric names.
    pub async fn metrics_text(&self) -> String {
        let metrics = self.metrics();
        let applied = metrics.last_applied.map_or(0, |l| l.index);
        let in_use = self.db.size_in_use().await.unwrap_or(0);
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, kind: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        gauge(
            "etcd_server_has_leader",
            "Whether or not a leader exists. 1 is existence, 0 is not.",
            "gauge",
            u8::from(metrics.current_leader.is_some()).to_string(),
        );
        gauge(
            "etcd_server_is_leader",
            "Whether or not this member is a leader. 1 if is, 0 otherwise.",
            "gauge",
            u8::from(metrics.state == ServerState::Leader).to_string(),
        );
        gauge(
            "etcd_server_leader_changes_seen_total",
            "The number of leader changes seen.",
            "counter",
            self.leaders.changes().to_string(),
        );
        gauge(
            "etcd_server_proposals_committed_total",
            "The total number of consensus proposals committed.",
            "gauge",
            metrics.last_log_index.unwrap_or(0).to_string(),
        );
        gauge(
            "etcd_server_proposals_applied_total",
            "The total number of consensus proposals applied.",
            "gauge",
            applied.to_string(),
        );
        gauge(
            "etcd_server_proposals_failed_total",
            "The total number of failed proposals seen.",
            "counter",
            self.leaders.failed_proposals().to_string(),
        );
        gauge(
            "etcd_server_term",
            "The current Raft term.",
            "gauge",
            metrics.current_term.to_string(),
        );
        gauge(
            "etcd_mvcc_db_total_size_in_bytes",
            "Total size of the underlying database physically allocated in bytes.",
            "gauge",
            self.db.size_on_disk().to_string(),
        );
        gauge(
            "etcd_mvcc_db_total_size_in_use_in_bytes",
            "Total size of the underlying database logically in use in bytes.",
            "gauge",
            in_use.to_string(),
        );
        gauge(
            "etcd_debugging_mvcc_current_revision",
            "The current revision of store.",
            "gauge",
            self.hub.revision().to_string(),
        );
        gauge(
            "etcd_debugging_mvcc_watch_stream_total",
            "Total number of watch streams.",
            "gauge",
            self.hub.stream_count().to_string(),
        );
        gauge(
            "etcd_debugging_mvcc_watcher_total",
            "Total number of watchers.",
            "gauge",
            self.hub.watch_count().to_string(),
        );
        gauge(
            "etcd_server_quota_backend_bytes",
            "Current backend storage quota size in bytes.",
            "gauge",
            self.config.quota_backend_bytes.to_string(),
        );
        gauge(
            "etcd_network_peer_received_append_requests_total",
            "The total number of append requests received from peers.",
            "counter",
            self.peer_stats.received_appends().to_string(),
        );
        gauge(
            "etcd_network_peer_sent_append_requests_total",
            "The total number of append requests sent to peers.",
            "counter",
            self.peer_stats.sent_appends().to_string(),
        );
        let started = self
            .started_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds.",
            "gauge",
            format!("{started:.3}"),
        );
        if let Some(rss) = resident_bytes() {
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                rss.to_string(),
            );
        }
        let _ = writeln!(
            out,
            "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n\
             # TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{}\"}} 1",
            crate::ETCD_VERSION
        );
        out
    }
}

/// This process's resident memory, from /proc (Linux).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
