//! What operators' tools read: `/v2/stats/self`, `/v2/stats/leader` and
//! the Prometheus metrics, under etcd's names.

use std::fmt::Write;
use std::time::SystemTime;

use super::Node;
use super::stats::{LeaderInfo, LeaderStats, SelfStats, go_duration, rfc3339};
use crate::mvcc::{KeyRange, KvRead};
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

    /// `/v2/stats/leader`: what the leader measured of its followers'
    /// append requests; `None` on a follower (etcd answers 403).
    pub fn leader_stats(&self) -> Option<LeaderStats> {
        let me = self.identity.member_id;
        (self.leader() == Some(me)).then(|| LeaderStats {
            leader: format!("{me:x}"),
            followers: self.peer_stats.follower_stats(),
        })
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
            u8::from(self.reported_leader().is_some()).to_string(),
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
            "etcd_server_proposals_pending",
            "The current number of pending proposals to commit.",
            "gauge",
            self.proposer.pending().to_string(),
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
        let keys = self
            .db
            .read_kv(|kv| Ok(kv.count(&KeyRange::new(b"\0", b"\0"), None)?))
            .await
            .unwrap_or(0);
        gauge(
            "etcd_debugging_mvcc_keys_total",
            "Total number of keys.",
            "gauge",
            keys.to_string(),
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
        let process = ProcessStats::read();
        if let Some(rss) = process.resident_bytes {
            gauge(
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                "gauge",
                rss.to_string(),
            );
        }
        if let Some(virtual_bytes) = process.virtual_bytes {
            gauge(
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                "gauge",
                virtual_bytes.to_string(),
            );
        }
        if let Some(cpu) = process.cpu_seconds {
            gauge(
                "process_cpu_seconds_total",
                "Total user and system CPU time spent in seconds.",
                "counter",
                format!("{cpu:.2}"),
            );
        }
        if let Some(fds) = process.open_fds {
            gauge(
                "process_open_fds",
                "Number of open file descriptors.",
                "gauge",
                fds.to_string(),
            );
        }
        if let Some(max) = process.max_fds {
            gauge(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                "gauge",
                max.to_string(),
            );
        }
        let fsync = "etcd_disk_wal_fsync_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {fsync} The latency distributions of fsync called by WAL.\n# TYPE {fsync} histogram"
        );
        self.wal_fsync.render_series(&mut out, fsync, "");
        self.peer_stats.render_round_trips(&mut out);
        self.peer_stats
            .render_active_peers(self.identity.member_id, &mut out);
        self.grpc_counters.render(&mut out);
        let _ = writeln!(
            out,
            "# HELP etcd_server_version Which version is running. 1 for 'server_version' label with current version.\n\
             # TYPE etcd_server_version gauge\netcd_server_version{{server_version=\"{}\"}} 1",
            crate::ETCD_VERSION
        );
        out
    }
}

/// What `/proc` says of this process (Linux; `None` elsewhere).
#[derive(Debug, Default)]
struct ProcessStats {
    resident_bytes: Option<u64>,
    virtual_bytes: Option<u64>,
    cpu_seconds: Option<f64>,
    open_fds: Option<u64>,
    max_fds: Option<u64>,
}

impl ProcessStats {
    fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |field: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(field))?;
            Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
        };
        ProcessStats {
            resident_bytes: kib("VmRSS:"),
            virtual_bytes: kib("VmSize:"),
            cpu_seconds: cpu_seconds(),
            open_fds: std::fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as u64),
            max_fds: std::fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|limits| {
                    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
                    line.split_whitespace().nth(3)?.parse().ok()
                }),
        }
    }
}

/// User plus system CPU time, from `/proc/self/stat` (fields 14 and 15,
/// in clock ticks of 1/100 s on Linux).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces; fields start after its ')'.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
