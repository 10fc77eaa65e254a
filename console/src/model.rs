//! Plain data the console shows, decoupled from the wire types: the data
//! layer ([`crate::data`]) converts gRPC and HTTP answers into these, the
//! core ([`crate::app`]) keeps them, and the views ([`crate::ui`]) draw them.

use std::time::Instant;

/// One member as `Cluster.MemberList` reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    /// Member id (etcd prints it as 16 hex digits).
    pub id: u64,
    /// Empty while the member has not started yet.
    pub name: String,
    /// Peer URLs.
    pub peer_urls: Vec<String>,
    /// Client URLs; empty while the member has not started yet.
    pub client_urls: Vec<String>,
    /// Whether the member is a non-voting learner.
    pub is_learner: bool,
}

/// `Maintenance.Status` of one member.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// Server version.
    pub version: String,
    /// Backend size in bytes.
    pub db_size: i64,
    /// Backend bytes in use.
    pub db_size_in_use: i64,
    /// The leader this member knows of (0 when none).
    pub leader: u64,
    /// Raft log index.
    pub raft_index: u64,
    /// Raft term.
    pub raft_term: u64,
    /// Raft applied index.
    pub raft_applied_index: u64,
    /// Errors the member reports (e.g. alarms).
    pub errors: Vec<String>,
    /// Whether the member considers itself a learner.
    pub is_learner: bool,
    /// Cluster id from the response header.
    pub cluster_id: u64,
    /// Member id from the response header.
    pub member_id: u64,
    /// Store revision from the response header.
    pub revision: i64,
}

/// `/v2/stats/self` of one member (only the fields the console shows).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SelfStats {
    /// `StateLeader`, `StateFollower`, ...
    pub state: String,
    /// Process start time, as RFC 3339 text.
    pub start_time: String,
    /// Append requests received.
    pub recv_append: u64,
    /// Append requests sent.
    pub send_append: u64,
}

/// The few `/metrics` values the console shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    /// `process_start_time_seconds` (unix seconds).
    pub process_start: Option<f64>,
    /// `etcd_server_proposals_committed_total`.
    pub proposals_committed: Option<f64>,
    /// `etcd_server_proposals_applied_total`.
    pub proposals_applied: Option<f64>,
    /// `etcd_server_proposals_pending`.
    pub proposals_pending: Option<f64>,
    /// `etcd_server_proposals_failed_total`.
    pub proposals_failed: Option<f64>,
    /// `etcd_server_leader_changes_seen_total`.
    pub leader_changes: Option<f64>,
    /// `etcd_server_has_leader`.
    pub has_leader: Option<f64>,
}

/// Everything one poll learned about one member.
#[derive(Clone, Debug, PartialEq)]
pub struct MemberProbe {
    /// The member.
    pub member: Member,
    /// Its status, or why it could not be read.
    pub status: Result<Status, String>,
    /// `/health` verdict (None when the endpoint did not answer).
    pub health: Option<bool>,
    /// `/v2/stats/self` when the endpoint serves it.
    pub stats: Option<SelfStats>,
    /// `/metrics` when the endpoint serves it.
    pub metrics: Option<Metrics>,
}

/// One active alarm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alarm {
    /// Member raising it.
    pub member_id: u64,
    /// `NOSPACE`, `CORRUPT`, ...
    pub kind: String,
}

/// The result of one complete cluster poll.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterSnapshot {
    /// The endpoint that answered `MemberList`.
    pub via: String,
    /// Cluster id from the `MemberList` header.
    pub cluster_id: u64,
    /// Every member with what its endpoint said.
    pub members: Vec<MemberProbe>,
    /// Active alarms; `Err` when the server does not offer the call.
    pub alarms: Result<Vec<Alarm>, String>,
}

/// One key (with or without its value).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// Its value (empty for keys-only reads).
    pub value: Vec<u8>,
    /// Revision of the key's creation.
    pub create_revision: i64,
    /// Revision of its last modification.
    pub mod_revision: i64,
    /// Number of modifications since creation.
    pub version: i64,
    /// Attached lease (0 = none).
    pub lease: i64,
}

/// One page of a prefix range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPage {
    /// Keys in ascending order (keys only).
    pub keys: Vec<Vec<u8>>,
    /// Whether the range had more keys past the limit.
    pub more: bool,
    /// Store revision the page was read at.
    pub revision: i64,
}

/// One watch event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchEvent {
    /// True for a delete.
    pub delete: bool,
    /// The key and, for puts, its new value.
    pub kv: KeyValue,
}

/// One lease with its remaining time and keys.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lease {
    /// Lease id.
    pub id: i64,
    /// Remaining TTL in seconds when read (-1 = expired).
    pub ttl: i64,
    /// TTL it was granted with.
    pub granted_ttl: i64,
    /// Attached keys.
    pub keys: Vec<Vec<u8>>,
}

/// The age of something read at `at`, seen at `now`.
pub fn age(now: Instant, at: Instant) -> std::time::Duration {
    now.saturating_duration_since(at)
}
