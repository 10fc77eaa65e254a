//! The cluster as the last polls saw it: the snapshot with its freshness,
//! one row per member with everything derived for display (role, health,
//! rates, last good status), the sparkline series, the selected member, and
//! the quorum. Shared, read-only, by every component; only the dispatcher
//! applies polls to it. It never does I/O.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::fresh::Fresh;
use crate::model::{ClusterSnapshot, MemberProbe, Status};
use crate::quorum::Quorum;

/// How many samples a sparkline keeps.
pub const SERIES_LEN: usize = 120;

/// A member's role as the console shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The Raft leader.
    Leader,
    /// A voting follower.
    Follower,
    /// A non-voting learner.
    Learner,
    /// Added but never started.
    Unstarted,
    /// Did not answer.
    Down,
}

impl Role {
    /// Glyph + word, so the role reads without colour.
    pub fn label(self) -> &'static str {
        match self {
            Role::Leader => "★ leader",
            Role::Follower => "● follower",
            Role::Learner => "◐ learner",
            Role::Unstarted => "○ unstarted",
            Role::Down => "✖ down",
        }
    }
}

/// One member with everything derived for display.
#[derive(Clone, Debug)]
pub struct MemberRow {
    /// What the poll learned.
    pub probe: MemberProbe,
    /// Its role.
    pub role: Role,
    /// Healthy: status answered and `/health` did not say false.
    pub healthy: bool,
    /// Append requests received per second (from `/v2/stats/self`).
    pub recv_rate: Option<f64>,
    /// Append requests sent per second.
    pub send_rate: Option<f64>,
    /// Uptime, when the member reports its start time.
    pub uptime: Option<Duration>,
    /// While the member does not answer: its last good status and when it
    /// was read, shown dimmed under a `STALE` badge (never as fresh).
    pub last_good: Option<(Instant, Status)>,
    /// Alarms the member reports (`NOSPACE`, ...).
    pub alarms: Vec<String>,
}

impl MemberRow {
    /// Display name (the first client URL for an unnamed member).
    pub fn name(&self) -> String {
        let m = &self.probe.member;
        if !m.name.is_empty() {
            m.name.clone()
        } else if let Some(url) = m.client_urls.first() {
            url.clone()
        } else if let Some(url) = m.peer_urls.first() {
            url.clone()
        } else {
            format!("({:x})", m.id)
        }
    }
}

/// Sparkline series, one sample per successful poll.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Proposals committed per second.
    pub proposals: VecDeque<u64>,
    /// Append requests sent per second (all members).
    pub appends: VecDeque<u64>,
    /// Leader changes seen per poll.
    pub leader_changes: VecDeque<u64>,
    /// Whether `/metrics` was available at the last poll.
    pub have_metrics: bool,
    /// Whether `/v2/stats/self` was available at the last poll.
    pub have_stats: bool,
}

#[derive(Clone, Debug, Default)]
struct Counters {
    proposals: Option<f64>,
    send_append: Option<f64>,
    leader_changes: Option<f64>,
    leader: u64,
    per_member: HashMap<u64, (u64, u64)>,
}

/// Everything the console knows about the cluster.
#[derive(Debug, Default)]
pub struct ClusterState {
    /// The last cluster poll results.
    pub snapshot: Fresh<ClusterSnapshot>,
    /// Highest poll sequence number applied.
    pub seq: u64,
    /// Members with derived fields, sorted by name.
    pub rows: Vec<MemberRow>,
    /// Selected member (index into `rows`), shared by the Cluster view and
    /// the Actions view's target list.
    pub selected: usize,
    /// Sparklines.
    pub series: Series,
    prev: Option<(Instant, Counters)>,
    rates: HashMap<u64, (f64, f64)>,
    /// Each member's last good status and when it was read.
    last_status: HashMap<u64, (Instant, Status)>,
}

impl ClusterState {
    /// Applies poll `seq` (read at `at`); false when a newer poll was
    /// already applied, so an older answer never overwrites a newer one.
    pub fn apply(
        &mut self,
        seq: u64,
        at: Instant,
        result: Result<ClusterSnapshot, String>,
        unix_now: f64,
    ) -> bool {
        if seq <= self.seq {
            return false;
        }
        self.seq = seq;
        match result {
            Ok(snapshot) => {
                self.record_series(at, &snapshot);
                self.remember_statuses(at, &snapshot);
                self.snapshot.ok(at, snapshot);
            }
            Err(e) => self.snapshot.fail(e),
        }
        self.rebuild_rows(unix_now);
        true
    }

    /// The selected member's row.
    pub fn selected_row(&self) -> Option<&MemberRow> {
        self.rows.get(self.selected)
    }

    /// Member names for completion.
    pub fn member_names(&self) -> Vec<String> {
        self.rows.iter().map(MemberRow::name).collect()
    }

    /// The member called `what` (name, hex id or client URL).
    pub fn row_by_name_or_id(&self, what: &str) -> Option<&MemberRow> {
        let what = what.trim();
        self.rows.iter().find(|r| {
            r.probe.member.name == what
                || format!("{:x}", r.probe.member.id)
                    == what.trim_start_matches("0x").to_lowercase()
                || r.probe.member.client_urls.iter().any(|u| u == what)
        })
    }

    /// Keeps each member's last good status, for members that stop answering.
    fn remember_statuses(&mut self, at: Instant, snapshot: &ClusterSnapshot) {
        self.last_status
            .retain(|id, _| snapshot.members.iter().any(|p| p.member.id == *id));
        for p in &snapshot.members {
            if let Ok(status) = &p.status {
                self.last_status.insert(p.member.id, (at, status.clone()));
            }
        }
    }

    fn record_series(&mut self, at: Instant, snapshot: &ClusterSnapshot) {
        let leader = leader_of(snapshot);
        let mut c = Counters {
            leader,
            ..Counters::default()
        };
        let mut have_metrics = false;
        let mut have_stats = false;
        for p in &snapshot.members {
            if let Some(m) = &p.metrics {
                have_metrics = true;
                if p.member.id == leader || c.proposals.is_none() {
                    c.proposals = m.proposals_committed.or(c.proposals);
                }
                if let Some(lc) = m.leader_changes {
                    c.leader_changes = Some(c.leader_changes.map_or(lc, |x: f64| x.max(lc)));
                }
            }
            if let Some(s) = &p.stats {
                have_stats = true;
                c.send_append = Some(c.send_append.unwrap_or(0.0) + s.send_append as f64);
                c.per_member
                    .insert(p.member.id, (s.recv_append, s.send_append));
            }
        }
        self.series.have_metrics = have_metrics;
        self.series.have_stats = have_stats;
        if let Some((prev_at, prev)) = &self.prev {
            let dt = at.saturating_duration_since(*prev_at).as_secs_f64();
            if dt > 0.0 {
                let rate = |cur: Option<f64>, old: Option<f64>| match (cur, old) {
                    (Some(c), Some(o)) if c >= o => ((c - o) / dt).round() as u64,
                    _ => 0,
                };
                push(
                    &mut self.series.proposals,
                    rate(c.proposals, prev.proposals),
                );
                push(
                    &mut self.series.appends,
                    rate(c.send_append, prev.send_append),
                );
                let changes = match (c.leader_changes, prev.leader_changes) {
                    (Some(cur), Some(old)) if cur >= old => (cur - old) as u64,
                    _ => u64::from(c.leader != prev.leader && c.leader != 0 && prev.leader != 0),
                };
                push(&mut self.series.leader_changes, changes);
                self.rates.clear();
                for (id, (recv, send)) in &c.per_member {
                    if let Some((precv, psend)) = prev.per_member.get(id) {
                        self.rates.insert(
                            *id,
                            (
                                recv.saturating_sub(*precv) as f64 / dt,
                                send.saturating_sub(*psend) as f64 / dt,
                            ),
                        );
                    }
                }
            }
        }
        self.prev = Some((at, c));
    }

    fn rebuild_rows(&mut self, unix_now: f64) {
        let selected_id = self.rows.get(self.selected).map(|r| r.probe.member.id);
        let Some(snapshot) = &self.snapshot.data else {
            self.rows.clear();
            return;
        };
        let leader = leader_of(snapshot);
        // When no endpoint answered the last poll, nothing is known to be
        // up: every member is shown as one that stopped answering (down,
        // with its last good status dimmed under STALE), never with the
        // roles of the last good poll.
        let outage = self.snapshot.error.as_deref();
        let mut rows: Vec<MemberRow> = snapshot
            .members
            .iter()
            .map(|p| match outage {
                Some(error) => unreachable_probe(p, error),
                None => p.clone(),
            })
            .map(|p| {
                let p = &p;
                let started = !p.member.name.is_empty() || !p.member.client_urls.is_empty();
                let role = if !started {
                    Role::Unstarted
                } else if p.status.is_err() {
                    Role::Down
                } else if p.member.is_learner {
                    Role::Learner
                } else if p.member.id == leader {
                    Role::Leader
                } else {
                    Role::Follower
                };
                // etcd's /health says false under an alarm (NOSPACE, ...),
                // but such a member still votes: it counts for the quorum,
                // and the health column names the alarm instead.
                let alarms = p.status.as_ref().map_or(Vec::new(), |s| {
                    s.errors
                        .iter()
                        .filter_map(|e| crate::data::parse_alarm(e).map(|a| a.kind))
                        .collect::<Vec<_>>()
                });
                let healthy = p.status.is_ok() && (p.health != Some(false) || !alarms.is_empty());
                let start = p
                    .metrics
                    .as_ref()
                    .and_then(|m| m.process_start)
                    .or_else(|| p.stats.as_ref().and_then(|s| parse_rfc3339(&s.start_time)));
                let uptime = start
                    .filter(|_| p.status.is_ok())
                    .map(|s| Duration::from_secs_f64((unix_now - s).max(0.0)));
                let rates = self.rates.get(&p.member.id);
                let last_good = p
                    .status
                    .is_err()
                    .then(|| self.last_status.get(&p.member.id).cloned())
                    .flatten();
                MemberRow {
                    probe: p.clone(),
                    role,
                    healthy,
                    recv_rate: rates.map(|r| r.0),
                    send_rate: rates.map(|r| r.1),
                    uptime,
                    last_good,
                    alarms,
                }
            })
            .collect();
        rows.sort_by_key(|r| r.name());
        self.rows = rows;
        self.selected = selected_id
            .and_then(|id| self.rows.iter().position(|r| r.probe.member.id == id))
            .unwrap_or(self.selected)
            .min(self.rows.len().saturating_sub(1));
    }

    /// Voter counts now.
    pub fn quorum(&self) -> Quorum {
        let voters: Vec<&MemberRow> = self
            .rows
            .iter()
            .filter(|r| !r.probe.member.is_learner)
            .collect();
        Quorum {
            voters: voters.len(),
            healthy_voters: voters.iter().filter(|r| r.healthy).count(),
            total: self.rows.len(),
            healthy: self.rows.iter().filter(|r| r.healthy).count(),
        }
    }

    /// The leader's row, if one is known.
    pub fn leader(&self) -> Option<&MemberRow> {
        self.rows.iter().find(|r| r.role == Role::Leader)
    }

    /// The highest term any member reports (or reported last, while no
    /// member answers: the header dims it then).
    pub fn term(&self) -> Option<u64> {
        self.statuses().map(|s| s.raft_term).max()
    }

    /// The store revision (highest reported, as [`ClusterState::term`]).
    pub fn revision(&self) -> Option<i64> {
        self.statuses().map(|s| s.revision).max()
    }

    /// Each member's current status, or its last good one while no member
    /// answers at all.
    fn statuses(&self) -> impl Iterator<Item = &Status> {
        let outage = self.snapshot.error.is_some();
        self.rows
            .iter()
            .filter_map(move |r| match (&r.probe.status, &r.last_good) {
                (Ok(s), _) => Some(s),
                (Err(_), Some((_, s))) if outage => Some(s),
                (Err(_), _) => None,
            })
    }

    /// Age of the last good cluster data at `now`.
    pub fn age(&self, now: Instant) -> Option<Duration> {
        self.snapshot.at.map(|at| now.saturating_duration_since(at))
    }
}

/// A member as the console sees it while no endpoint answers: its status
/// is the poll's failure, and nothing it reported before counts as current.
fn unreachable_probe(p: &MemberProbe, error: &str) -> MemberProbe {
    MemberProbe {
        member: p.member.clone(),
        status: Err(format!("no endpoint answers: {error}")),
        health: None,
        stats: None,
        metrics: None,
    }
}

fn push(series: &mut VecDeque<u64>, v: u64) {
    series.push_back(v);
    if series.len() > SERIES_LEN {
        series.pop_front();
    }
}

/// The leader as reported by the member with the highest term.
pub fn leader_of(snapshot: &ClusterSnapshot) -> u64 {
    snapshot
        .members
        .iter()
        .filter_map(|p| p.status.as_ref().ok())
        .max_by_key(|s| s.raft_term)
        .map_or(0, |s| s.leader)
}

/// Parses the RFC 3339 times etcd prints ("2026-11-22T01:49:46.337817427Z")
/// into unix seconds.
pub fn parse_rfc3339(s: &str) -> Option<f64> {
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0i64)
    } else {
        let i = time.rfind(['+', '-'])?;
        let (c, off) = time.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let (oh, om) = off[1..].split_once(':')?;
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    };
    let mut t = clock.split(':');
    let (hh, mm) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let ss = t.next()?.parse::<f64>().ok()?;
    // Days from civil (Howard Hinnant's algorithm).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + hh * 3600 + mm * 60 - offset) as f64 + ss)
}
