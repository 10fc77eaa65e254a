//! Counters and timestamps operators read through `/v2/stats/self` and
//! `/metrics`: what Raft's own metrics do not keep.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use crate::histogram::Histogram;

/// Append-request counts of the peer protocol, shared with the network,
/// when each peer last answered, and how fast it answers appends.
#[derive(Debug, Default)]
pub struct PeerStats {
    received_appends: AtomicU64,
    sent_appends: AtomicU64,
    last_contact: Mutex<std::collections::HashMap<u64, std::time::Instant>>,
    /// Peers whose Raft requests are failing, for the log.
    outages: Mutex<std::collections::HashMap<u64, Outage>>,
    followers: Mutex<std::collections::BTreeMap<u64, FollowerRecord>>,
    /// Set when a peer told this member it was removed from the cluster...
    removed: std::sync::atomic::AtomicBool,
    /// ...and whoever follows the membership is woken for it.
    removal: tokio::sync::Notify,
    /// Open append streams into this member, by sending member.
    append_streams: Mutex<std::collections::BTreeMap<u64, usize>>,
}

/// Counts one open append stream from a member while it lives.
pub struct OpenAppendStream {
    stats: std::sync::Arc<PeerStats>,
    from: u64,
}

impl Drop for OpenAppendStream {
    fn drop(&mut self) {
        let mut streams = self
            .stats
            .append_streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(open) = streams.get_mut(&self.from) {
            *open -= 1;
            if *open == 0 {
                streams.remove(&self.from);
            }
        }
    }
}

impl PeerStats {
    pub fn count_received_append(&self) {
        self.received_appends.fetch_add(1, Ordering::Relaxed);
    }

    /// Records an append stream from member `from`, open until the
    /// returned guard is dropped.
    pub fn append_stream_opened(self: &std::sync::Arc<Self>, from: u64) -> OpenAppendStream {
        *self
            .append_streams
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(from)
            .or_default() += 1;
        OpenAppendStream {
            stats: self.clone(),
            from,
        }
    }

    /// Renders `etcd_network_active_peers`: the members with an append
    /// stream open into member `local`.
    pub fn render_active_peers(&self, local: u64, out: &mut String) {
        let name = "etcd_network_active_peers";
        let _ = std::fmt::Write::write_fmt(
            out,
            format_args!(
                "# HELP {name} The current number of active peer connections.\n# TYPE {name} gauge\n"
            ),
        );
        let streams = self
            .append_streams
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for from in streams.keys() {
            let _ = std::fmt::Write::write_fmt(
                out,
                format_args!("{name}{{Local=\"{local:x}\",Remote=\"{from:x}\"}} 1\n"),
            );
        }
    }

    pub fn count_sent_append(&self) {
        self.sent_appends.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_contact(&self, peer: u64) {
        let now = std::time::Instant::now();
        let mut contacts = self.last_contact.lock().unwrap_or_else(|p| p.into_inner());
        contacts.insert(peer, now);
        drop(contacts);
        let mut outages = self.outages.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(outage) = outages.remove(&peer)
            && outage.last_logged.is_some()
        {
            tracing::info!(
                peer = %format!("{peer:x}"),
                inactive_for = ?now.saturating_duration_since(outage.since),
                "peer became active"
            );
        }
    }

    /// Records a Raft request to `peer` that got no answer. The log says so
    /// once the peer has not answered for [`OUTAGE_GRACE`], then every
    /// [`OUTAGE_LOG_EVERY`] while it stays silent (as etcd does), not once
    /// per request.
    pub fn record_failure(&self, peer: u64, error: &dyn std::fmt::Display) {
        let now = std::time::Instant::now();
        let mut outages = self.outages.lock().unwrap_or_else(|p| p.into_inner());
        let report = match outages.entry(peer) {
            std::collections::hash_map::Entry::Vacant(vacant) => {
                vacant.insert(Outage::new(now));
                return;
            }
            std::collections::hash_map::Entry::Occupied(mut outage) => {
                match outage.get_mut().failed(now) {
                    Some(report) => report,
                    None => return,
                }
            }
        };
        drop(outages);
        let peer = format!("{peer:x}");
        match report {
            OutageReport::Began => tracing::warn!(
                peer,
                %error,
                "peer became inactive (message send to peer failed)"
            ),
            OutageReport::Continues {
                inactive_for,
                failures,
            } => tracing::warn!(
                peer,
                %error,
                ?inactive_for,
                failures,
                "peer is still inactive"
            ),
        }
    }

    /// Whether `peer` answered within `window`.
    pub fn contacted_within(&self, peer: u64, window: std::time::Duration) -> bool {
        let contacts = self.last_contact.lock().unwrap_or_else(|p| p.into_inner());
        contacts.get(&peer).is_some_and(|at| at.elapsed() <= window)
    }

    /// Whether `peer` answered within `window` and no request to it has
    /// failed since (etcd's "active": one failed send deactivates a peer).
    pub fn active_within(&self, peer: u64, window: std::time::Duration) -> bool {
        let failing = self
            .outages
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&peer);
        !failing && self.contacted_within(peer, window)
    }

    /// Records the outcome of an append request to `peer` that took
    /// `elapsed` (a failure counts, but has no latency).
    pub fn record_append(&self, peer: u64, elapsed: std::time::Duration, succeeded: bool) {
        let mut followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        let record = followers.entry(peer).or_default();
        if succeeded {
            record.latency.add(elapsed);
            record.round_trip.observe(elapsed);
            record.success += 1;
        } else {
            record.fail += 1;
        }
    }

    /// `/v2/stats/leader`'s followers, by hex id.
    pub fn follower_stats(&self) -> std::collections::BTreeMap<String, FollowerStats> {
        let followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        followers
            .iter()
            .map(|(id, record)| (format!("{id:x}"), record.stats()))
            .collect()
    }

    /// Renders `etcd_network_peer_round_trip_time_seconds` for every peer.
    pub fn render_round_trips(&self, out: &mut String) {
        let followers = self.followers.lock().unwrap_or_else(|p| p.into_inner());
        let name = "etcd_network_peer_round_trip_time_seconds";
        let _ = std::fmt::Write::write_fmt(
            out,
            format_args!(
                "# HELP {name} Round-Trip-Time histogram between peers
# TYPE {name} histogram
"
            ),
        );
        for (id, record) in followers.iter() {
            record
                .round_trip
                .render_series(out, name, &format!("To=\"{id:x}\""));
        }
    }

    pub fn mark_removed(&self) {
        self.removed.store(true, Ordering::Relaxed);
        self.removal.notify_one();
    }

    /// Resolves once a peer has told this member it was removed (at once
    /// if it was told since the last call).
    pub async fn removal_told(&self) {
        self.removal.notified().await
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

/// How long a peer's requests must keep failing before the log says it
/// became inactive: a lone timeout under load is not an outage.
const OUTAGE_GRACE: std::time::Duration = std::time::Duration::from_secs(1);
/// How often the log repeats that a peer is still inactive.
const OUTAGE_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A peer that stopped answering this member's Raft requests.
#[derive(Debug)]
struct Outage {
    since: std::time::Instant,
    /// When the log last spoke of it, if it has.
    last_logged: Option<std::time::Instant>,
    /// Failed requests since the last log line.
    failures: u64,
}

/// What the log says of a failed request, if anything.
#[derive(Debug, PartialEq, Eq)]
enum OutageReport {
    Began,
    Continues {
        inactive_for: std::time::Duration,
        failures: u64,
    },
}

impl Outage {
    fn new(now: std::time::Instant) -> Self {
        Outage {
            since: now,
            last_logged: None,
            failures: 1,
        }
    }

    /// One more failed request at `now`: a report once the outage is
    /// [`OUTAGE_GRACE`] old, then once the last report is
    /// [`OUTAGE_LOG_EVERY`] old.
    fn failed(&mut self, now: std::time::Instant) -> Option<OutageReport> {
        self.failures += 1;
        let report = match self.last_logged {
            None if now.saturating_duration_since(self.since) >= OUTAGE_GRACE => {
                OutageReport::Began
            }
            Some(last) if now.saturating_duration_since(last) >= OUTAGE_LOG_EVERY => {
                OutageReport::Continues {
                    inactive_for: now.saturating_duration_since(self.since),
                    failures: self.failures,
                }
            }
            _ => return None,
        };
        self.last_logged = Some(now);
        self.failures = 0;
        Some(report)
    }
}

/// What this member measured of its append requests to one peer.
#[derive(Debug)]
struct FollowerRecord {
    latency: Latency,
    round_trip: Histogram,
    success: u64,
    fail: u64,
}

impl Default for FollowerRecord {
    fn default() -> Self {
        FollowerRecord {
            latency: Latency::default(),
            round_trip: Histogram::round_trip(),
            success: 0,
            fail: 0,
        }
    }
}

impl FollowerRecord {
    fn stats(&self) -> FollowerStats {
        FollowerStats {
            latency: self.latency.stats(),
            counts: FollowerCounts {
                fail: self.fail,
                success: self.success,
            },
        }
    }
}

/// Running latency statistics in milliseconds, etcd's unit here (Welford's
/// method, so the deviation needs no stored samples).
#[derive(Debug, Default)]
struct Latency {
    count: u64,
    current: f64,
    mean: f64,
    squares: f64,
    minimum: f64,
    maximum: f64,
}

impl Latency {
    fn add(&mut self, elapsed: std::time::Duration) {
        let ms = elapsed.as_secs_f64() * 1000.0;
        self.count += 1;
        let delta = ms - self.mean;
        self.mean += delta / self.count as f64;
        self.squares += delta * (ms - self.mean);
        self.current = ms;
        self.minimum = if self.count == 1 {
            ms
        } else {
            self.minimum.min(ms)
        };
        self.maximum = self.maximum.max(ms);
    }

    fn stats(&self) -> LatencyStats {
        let variance = if self.count > 0 {
            self.squares / self.count as f64
        } else {
            0.0
        };
        LatencyStats {
            current: self.current,
            average: self.mean,
            standard_deviation: variance.sqrt(),
            minimum: self.minimum,
            maximum: self.maximum,
        }
    }
}

/// `/v2/stats/leader`, with etcd's field names.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LeaderStats {
    pub leader: String,
    pub followers: std::collections::BTreeMap<String, FollowerStats>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FollowerStats {
    pub latency: LatencyStats,
    pub counts: FollowerCounts,
}

#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LatencyStats {
    pub current: f64,
    pub average: f64,
    pub standard_deviation: f64,
    pub minimum: f64,
    pub maximum: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct FollowerCounts {
    pub fail: u64,
    pub success: u64,
}

/// gRPC requests by method and outcome, in go-grpc-prometheus' terms
/// (`grpc_server_started_total`, `grpc_server_handled_total`), which
/// etcd's dashboards read. The API layer records; `/metrics` renders.
#[derive(Debug, Default)]
pub struct GrpcCounters {
    started: Mutex<std::collections::BTreeMap<GrpcMethod, u64>>,
    handled: Mutex<std::collections::BTreeMap<(GrpcMethod, &'static str), u64>>,
}

/// One gRPC method: `grpc_type`, `grpc_service`, `grpc_method`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct GrpcMethod {
    pub kind: &'static str,
    pub service: String,
    pub method: String,
}

impl GrpcCounters {
    pub fn started(&self, method: &GrpcMethod) {
        let mut started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        *started.entry(method.clone()).or_default() += 1;
    }

    /// Counts a finished call with gRPC status `code` (its number).
    pub fn handled(&self, method: &GrpcMethod, code: i32) {
        let mut handled = self.handled.lock().unwrap_or_else(|p| p.into_inner());
        *handled
            .entry((method.clone(), grpc_code_name(code)))
            .or_default() += 1;
    }

    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        let started = self.started.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP grpc_server_started_total Total number of RPCs started on the server.\n\
             # TYPE grpc_server_started_total counter"
        );
        for (m, count) in started.iter() {
            let _ = writeln!(
                out,
                "grpc_server_started_total{{grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"}} {count}",
                m.method, m.service, m.kind
            );
        }
        drop(started);
        let handled = self.handled.lock().unwrap_or_else(|p| p.into_inner());
        let _ = writeln!(
            out,
            "# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.\n\
             # TYPE grpc_server_handled_total counter"
        );
        for ((m, code), count) in handled.iter() {
            let _ = writeln!(
                out,
                "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"{}\",grpc_service=\"{}\",grpc_type=\"{}\"}} {count}",
                m.method, m.service, m.kind
            );
        }
    }
}

/// gRPC's name for a status code, as grpc-prometheus labels it.
fn grpc_code_name(code: i32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    usize::try_from(code)
        .ok()
        .and_then(|i| NAMES.get(i).copied())
        .unwrap_or("Unknown")
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
    fn an_outage_is_reported_after_a_second_then_every_few_seconds() {
        let start = std::time::Instant::now();
        let mut outage = Outage::new(start);
        let at = |ms: u64| start + Duration::from_millis(ms);
        assert_eq!(outage.failed(at(500)), None, "a lone failure is no outage");
        assert_eq!(outage.failed(at(1000)), Some(OutageReport::Began));
        // Requests fail every half second (openraft's back-off).
        for ms in (1500..6000).step_by(500) {
            assert_eq!(outage.failed(at(ms)), None, "at {ms} ms");
        }
        assert_eq!(
            outage.failed(at(6000)),
            Some(OutageReport::Continues {
                inactive_for: Duration::from_secs(6),
                failures: 10
            })
        );
        assert_eq!(outage.failed(at(10_999)), None);
        assert_eq!(
            outage.failed(at(11_000)),
            Some(OutageReport::Continues {
                inactive_for: Duration::from_secs(11),
                failures: 2
            })
        );
    }

    #[test]
    fn a_failed_request_makes_a_peer_inactive_until_it_answers() {
        let stats = PeerStats::default();
        let window = Duration::from_secs(2);
        assert!(!stats.active_within(0xab, window), "never heard from");
        stats.record_contact(0xab);
        assert!(stats.active_within(0xab, window));
        stats.record_failure(0xab, &"connection refused");
        assert!(stats.contacted_within(0xab, window));
        assert!(
            !stats.active_within(0xab, window),
            "its last request failed"
        );
        stats.record_contact(0xab);
        assert!(stats.active_within(0xab, window));
    }

    #[test]
    fn an_answer_ends_the_outage() {
        let stats = PeerStats::default();
        stats.record_failure(0xab, &"connection refused");
        stats.record_failure(0xab, &"connection refused");
        assert!(stats.outages.lock().unwrap().contains_key(&0xab));
        stats.record_contact(0xab);
        assert!(stats.outages.lock().unwrap().is_empty());
        assert!(stats.contacted_within(0xab, Duration::from_secs(1)));
    }

    #[test]
    fn follower_latency_is_in_milliseconds_with_its_deviation() {
        let stats = PeerStats::default();
        stats.record_append(0xab, Duration::from_millis(2), true);
        stats.record_append(0xab, Duration::from_millis(4), true);
        stats.record_append(0xab, Duration::from_millis(9), false);
        let followers = stats.follower_stats();
        let ab = &followers["ab"];
        assert_eq!((ab.counts.success, ab.counts.fail), (2, 1));
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
        assert!(close(ab.latency.current, 4.0));
        assert!(close(ab.latency.average, 3.0));
        assert!(close(ab.latency.standard_deviation, 1.0));
        assert!(close(ab.latency.minimum, 2.0) && close(ab.latency.maximum, 4.0));
    }

    #[test]
    fn grpc_counters_render_with_grpc_prometheus_labels() {
        let counters = GrpcCounters::default();
        let range = GrpcMethod {
            kind: "unary",
            service: "etcdserverpb.KV".into(),
            method: "Range".into(),
        };
        counters.started(&range);
        counters.started(&range);
        counters.handled(&range, 0);
        counters.handled(&range, 11);
        counters.handled(&range, 99);
        let mut out = String::new();
        counters.render(&mut out);
        assert!(out.contains(
            "grpc_server_started_total{grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"} 2\n"
        ));
        for code in ["OK", "OutOfRange", "Unknown"] {
            assert!(out.contains(&format!(
                "grpc_server_handled_total{{grpc_code=\"{code}\",grpc_method=\"Range\",grpc_service=\"etcdserverpb.KV\",grpc_type=\"unary\"}} 1\n"
            )));
        }
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
