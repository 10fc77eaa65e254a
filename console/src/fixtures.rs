//! Deterministic test data: a fixed clock, a 3-member cluster with fixed
//! ids, and helpers to drive the core.

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::{App, Command, Config, Event};
use crate::model::{
    ClusterSnapshot, KeyPage, KeyValue, Member, MemberProbe, Metrics, SelfStats, Status,
};

/// Wall clock of the fixtures (2026-01-01T00:00:00Z).
pub(crate) const UNIX_NOW: f64 = 1_767_225_600.0;

pub(crate) fn member(i: u64, learner: bool) -> Member {
    Member {
        id: 0x1000_0000_0000_0000 + i,
        name: format!("n{i}"),
        peer_urls: vec![format!("http://127.0.0.1:{}", 2380 + 10 * i)],
        client_urls: vec![format!("http://127.0.0.1:{}", 2379 + 10 * i)],
        is_learner: learner,
    }
}

pub(crate) fn probe(m: Member, leader: u64, up: bool, commits: f64, appends: u64) -> MemberProbe {
    let status = if up {
        Ok(Status {
            version: "3.4.23".into(),
            db_size: 20_480,
            db_size_in_use: 16_384,
            leader,
            raft_index: 42,
            raft_term: 3,
            raft_applied_index: 42,
            errors: Vec::new(),
            is_learner: m.is_learner,
            cluster_id: 0xc1,
            member_id: m.id,
            revision: 17,
        })
    } else {
        Err("tcp connect error: Connection refused (os error 111)".to_string())
    };
    MemberProbe {
        status,
        health: Some(up),
        stats: up.then(|| SelfStats {
            state: if m.id == leader {
                "StateLeader".into()
            } else {
                "StateFollower".into()
            },
            start_time: "2025-12-31T23:00:00Z".into(),
            recv_append: appends,
            send_append: if m.id == leader { appends * 2 } else { 0 },
        }),
        metrics: up.then_some(Metrics {
            process_start: Some(UNIX_NOW - 3723.0),
            proposals_committed: Some(commits),
            proposals_applied: Some(commits),
            proposals_pending: Some(0.0),
            proposals_failed: Some(0.0),
            leader_changes: Some(1.0),
            has_leader: Some(1.0),
        }),
        member: m,
    }
}

/// Three healthy members, n2 the leader; counters scaled by `tick`.
pub(crate) fn cluster3(tick: u64) -> ClusterSnapshot {
    let leader = member(2, false).id;
    ClusterSnapshot {
        via: "http://127.0.0.1:2389".into(),
        cluster_id: 0xc1,
        members: (1..=3)
            .map(|i| {
                probe(
                    member(i, false),
                    leader,
                    true,
                    10.0 + 8.0 * tick as f64,
                    100 + 20 * tick,
                )
            })
            .collect(),
        alarms: Ok(Vec::new()),
    }
}

pub(crate) struct Harness {
    pub(crate) app: App,
    pub(crate) base: Instant,
    pub(crate) seq: u64,
}

impl Harness {
    pub(crate) fn new(read_only: bool) -> Self {
        let base = Instant::now();
        let config = Config {
            endpoints: vec!["http://127.0.0.1:2389".into()],
            read_only,
            refresh: Duration::from_secs(2),
        };
        Self {
            app: App::new(config, base, UNIX_NOW),
            base,
            seq: 0,
        }
    }

    pub(crate) fn at(&self, secs: u64) -> Instant {
        self.base + Duration::from_secs(secs)
    }

    pub(crate) fn tick(&mut self, secs: u64) -> Vec<Command> {
        let at = self.at(secs);
        self.app.update(Event::Tick(at, UNIX_NOW + secs as f64))
    }

    pub(crate) fn poll(
        &mut self,
        secs: u64,
        result: Result<ClusterSnapshot, String>,
    ) -> Vec<Command> {
        self.seq += 1;
        let at = self.at(secs);
        self.app.update(Event::Cluster {
            seq: self.seq,
            at,
            result,
        })
    }

    /// A healthy 3-member cluster polled at t=0 and t=2, seen at t=3.
    pub(crate) fn healthy() -> Self {
        let mut h = Self::new(false);
        h.poll(0, Ok(cluster3(0)));
        h.poll(2, Ok(cluster3(1)));
        h.tick(3);
        h
    }

    pub(crate) fn key(&mut self, code: KeyCode) -> Vec<Command> {
        self.app
            .update(Event::Key(KeyEvent::new(code, KeyModifiers::NONE)))
    }

    pub(crate) fn char(&mut self, c: char) -> Vec<Command> {
        self.key(KeyCode::Char(c))
    }

    pub(crate) fn text(&mut self, s: &str) {
        for c in s.chars() {
            self.char(c);
        }
    }

    /// Answers the `ListKeys` in `cmds` with `keys`.
    pub(crate) fn answer_keys(
        &mut self,
        cmds: &[Command],
        keys: &[&str],
        more: bool,
        secs: u64,
    ) -> Vec<Command> {
        let req = cmds
            .iter()
            .find_map(|c| match c {
                Command::ListKeys { req, .. } => Some(*req),
                _ => None,
            })
            .expect("a ListKeys command");
        let at = self.at(secs);
        self.app.update(Event::Keys {
            req,
            at,
            result: Ok(KeyPage {
                keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
                more,
                revision: 17,
            }),
        })
    }

    /// Answers the `GetKey` in `cmds` with `value`.
    pub(crate) fn answer_value(
        &mut self,
        cmds: &[Command],
        value: &str,
        secs: u64,
    ) -> Vec<Command> {
        let (req, key) = cmds
            .iter()
            .find_map(|c| match c {
                Command::GetKey { req, key } => Some((*req, key.clone())),
                _ => None,
            })
            .expect("a GetKey command");
        let at = self.at(secs);
        self.app.update(Event::Value {
            req,
            at,
            result: Ok(Some(KeyValue {
                key,
                value: value.as_bytes().to_vec(),
                create_revision: 5,
                mod_revision: 9,
                version: 2,
                lease: 0,
            })),
        })
    }
}
