//! Linearizability of a recorded KV history, checked against the store's
//! own log of revisions.
//!
//! etcd puts every write into one sequence of revisions and stamps every
//! answer with the revision it reflects, so a history has a candidate
//! linearization for free: a write sits at its revision, a read just after
//! the revision it saw. The history is linearizable exactly when that order
//! agrees with real time (an operation that finished before another began
//! sits no later), and every answer is what the sequential store gives at
//! its place: a read returns the key's state at its revision, a transaction
//! compares against the state just before it. The state at each revision
//! comes from the log a watch from the run's first revision delivers, which
//! is checked too: every acknowledged write is in it at the revision its
//! client was told, nothing is in it twice, and nothing in it was never
//! asked for.
//!
//! A write whose answer never came (an error, a timeout, a killed member)
//! may have happened at any time after it was sent, or never: it has no
//! upper bound in time, and it is placed only if the log holds it. Its
//! values are unique per write, so the log says which write it was (a
//! delete is recognised only by count: deletes carry no value).
//!
//! Leases add two requests: a put attached to a lease, whose version may
//! vanish without any client deleting it (the lease expired or was
//! revoked: the log may delete a key only when a client asked, or when the
//! key's live version was put with a lease), and a revoke, after which the
//! version put with that lease is no longer live.
//!
//! This is the register check of etcd's robustness suite and of Jepsen,
//! made linear-time by trusting the revision order only as far as the log
//! and the real-time order confirm it. The module records and checks; it
//! never talks to a cluster.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

/// Nanoseconds since the history began.
pub type Nanos = u64;

/// What a client asked for. Every key holds a register; every value written
/// is unique in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Put {
        key: String,
        value: String,
    },
    /// `Put` attached to a lease of its own, which may expire.
    PutLeased {
        key: String,
        value: String,
    },
    /// `LeaseRevoke` of the lease `value` was put to `key` with.
    Revoke {
        key: String,
        value: String,
    },
    /// `DeleteRange` of the one key.
    Delete {
        key: String,
    },
    /// Linearizable `Range` of the one key.
    Get {
        key: String,
    },
    /// Linearizable `Range` of every key starting with `prefix`: one
    /// revision's state of all of them.
    Scan {
        prefix: String,
    },
    /// `Txn`: if the key's value is `expect` (`None`: the key is absent)
    /// then put `value`, else read the key.
    Cas {
        key: String,
        expect: Option<String>,
        value: String,
    },
}

impl Request {
    /// The key, or a scan's prefix.
    pub fn key(&self) -> &str {
        match self {
            Request::Put { key, .. }
            | Request::PutLeased { key, .. }
            | Request::Revoke { key, .. }
            | Request::Delete { key }
            | Request::Get { key }
            | Request::Cas { key, .. } => key,
            Request::Scan { prefix } => prefix,
        }
    }

    /// The value this request may write, if any.
    fn written_value(&self) -> Option<&str> {
        match self {
            Request::Put { value, .. }
            | Request::PutLeased { value, .. }
            | Request::Cas { value, .. } => Some(value),
            Request::Revoke { .. }
            | Request::Delete { .. }
            | Request::Get { .. }
            | Request::Scan { .. } => None,
        }
    }
}

/// A key's live version as a read returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub value: String,
    pub mod_revision: i64,
    pub create_revision: i64,
    /// Puts since the key was (re)created, this one included.
    pub version: i64,
}

/// What the store answered; `revision` is the response header's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    Put {
        revision: i64,
    },
    Delete {
        revision: i64,
        deleted: bool,
    },
    Revoke {
        revision: i64,
    },
    Get {
        revision: i64,
        found: Option<Found>,
    },
    /// Every live key under the prefix, in key order.
    Scan {
        revision: i64,
        found: Vec<(String, Found)>,
    },
    /// `found` is the failure branch's read (`None` when it succeeded or
    /// the key was absent).
    Cas {
        revision: i64,
        succeeded: bool,
        found: Option<Found>,
    },
}

/// One request and its answer, with the times it was sent and answered.
#[derive(Debug, Clone)]
pub struct Operation {
    pub client: usize,
    pub request: Request,
    pub invoked: Nanos,
    /// `None`: the outcome is unknown (an error or no answer in time).
    pub completed: Option<(Nanos, Response)>,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "client {} {:?} [{:.3} ms",
            self.client,
            self.request,
            self.invoked as f64 / 1e6
        )?;
        match &self.completed {
            Some((at, response)) => write!(f, " .. {:.3} ms] -> {response:?}", *at as f64 / 1e6),
            None => write!(f, " .. ?] -> unknown"),
        }
    }
}

/// One revision of the store's log: what a watch delivers for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub revision: i64,
    pub key: String,
    /// `None`: the key was deleted.
    pub value: Option<String>,
}

/// Operations recorded by concurrent clients.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    operations: Mutex<Vec<Operation>>,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            operations: Mutex::new(Vec::new()),
        }
    }

    /// Now, on the history's clock.
    pub fn now(&self) -> Nanos {
        self.start.elapsed().as_nanos() as Nanos
    }

    pub fn record(&self, operation: Operation) {
        self.operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(operation);
    }

    pub fn operations(&self) -> Vec<Operation> {
        self.operations
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// What a check found.
#[derive(Debug, Default)]
pub struct Report {
    pub acknowledged: usize,
    pub unknown: usize,
    /// Unknown-outcome writes the log shows took effect.
    pub unknown_applied: usize,
    pub violations: Vec<String>,
}

impl Report {
    pub fn is_linearizable(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Where an operation sits in the revision order: a write at its revision,
/// a read after the write of the revision it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    revision: i64,
    after_write: bool,
}

impl Place {
    fn write(revision: i64) -> Self {
        Place {
            revision,
            after_write: false,
        }
    }

    fn read(revision: i64) -> Self {
        Place {
            revision,
            after_write: true,
        }
    }
}

/// The store's log, by revision and by key.
struct Log<'a> {
    first: i64,
    last: i64,
    by_revision: HashMap<i64, &'a Change>,
    /// Each key's changes, oldest first, with the state each leaves.
    by_key: HashMap<&'a str, Vec<Keyed<'a>>>,
    /// Where each written value appears (values are unique).
    by_value: HashMap<&'a str, &'a Change>,
}

/// A change with the key's state after it (counted from the log's start:
/// the keys must not exist before it).
struct Keyed<'a> {
    change: &'a Change,
    create_revision: i64,
    version: i64,
}

impl<'a> Log<'a> {
    fn new(changes: &'a [Change], first: i64, violations: &mut Vec<String>) -> Self {
        let mut log = Log {
            first,
            last: first - 1,
            by_revision: HashMap::new(),
            by_key: HashMap::new(),
            by_value: HashMap::new(),
        };
        for change in changes {
            // Every request here writes one key, so revisions are consecutive.
            if change.revision != log.last + 1 {
                violations.push(format!(
                    "the log jumps from revision {} to {}",
                    log.last, change.revision
                ));
            }
            log.last = log.last.max(change.revision);
            log.by_revision.insert(change.revision, change);
            let history = log.by_key.entry(&change.key).or_default();
            let before = history
                .last()
                .filter(|k| k.change.value.is_some())
                .map_or((0, 0), |k| (k.create_revision, k.version));
            let (create_revision, version) = match (&change.value, before) {
                (None, _) => (0, 0),
                (Some(_), (0, _)) => (change.revision, 1),
                (Some(_), (created, version)) => (created, version + 1),
            };
            history.push(Keyed {
                change,
                create_revision,
                version,
            });
            if let Some(value) = &change.value
                && let Some(earlier) = log.by_value.insert(value, change)
            {
                violations.push(format!(
                    "value {value:?} written twice: at revisions {} and {}",
                    earlier.revision, change.revision
                ));
            }
        }
        log
    }

    /// The key's live version at `revision`.
    fn state(&self, key: &str, revision: i64) -> Option<Found> {
        let history = self.by_key.get(key)?;
        let newer = history.partition_point(|k| k.change.revision <= revision);
        let keyed = history[..newer].last()?;
        keyed.change.value.as_ref().map(|value| Found {
            value: value.clone(),
            mod_revision: keyed.change.revision,
            create_revision: keyed.create_revision,
            version: keyed.version,
        })
    }

    /// A read at `revision` is possible only inside the log.
    fn readable_at(&self, revision: i64) -> Result<(), String> {
        if revision >= self.first - 1 && revision <= self.last {
            Ok(())
        } else {
            Err(format!(
                "read at revision {revision}, outside the log ({}..={})",
                self.first - 1,
                self.last
            ))
        }
    }
}

/// Checks `operations` against the log `changes`, which must hold every
/// revision after `first - 1` (the store's revision before the first
/// operation) up to the end of the run.
pub fn check(operations: &[Operation], changes: &[Change], first: i64) -> Report {
    let mut report = Report::default();
    let log = Log::new(changes, first, &mut report.violations);
    let mut places: Vec<(&Operation, Place)> = Vec::new();
    let mut writers: HashMap<&str, &Operation> = HashMap::new();
    let mut unknown_deletes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut acknowledged_deletes: HashMap<i64, &Operation> = HashMap::new();

    for op in operations {
        if let Some(value) = op.request.written_value()
            && writers.insert(value, op).is_some()
        {
            report
                .violations
                .push(format!("the history writes {value:?} twice"));
        }
        match &op.completed {
            Some((_, response)) => {
                report.acknowledged += 1;
                match place_answered(&log, op, response) {
                    Ok(place) => {
                        if let Response::Delete {
                            revision,
                            deleted: true,
                        } = response
                        {
                            acknowledged_deletes.insert(*revision, op);
                        }
                        places.push((op, place));
                    }
                    Err(violation) => report.violations.push(format!("{op}: {violation}")),
                }
            }
            None => {
                report.unknown += 1;
                match &op.request {
                    Request::Delete { key } => *unknown_deletes.entry(key).or_default() += 1,
                    Request::Get { .. } | Request::Scan { .. } | Request::Revoke { .. } => {}
                    Request::Put { value, .. }
                    | Request::PutLeased { value, .. }
                    | Request::Cas { value, .. } => {
                        if let Some(change) = log.by_value.get(value.as_str()) {
                            report.unknown_applied += 1;
                            match place_unanswered(&log, op, change) {
                                Ok(place) => places.push((op, place)),
                                Err(violation) => {
                                    report.violations.push(format!("{op}: {violation}"))
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    for change in changes {
        match &change.value {
            Some(value) => match writers.get(value.as_str()) {
                None => report.violations.push(format!(
                    "revision {} wrote {value:?}, which no client sent",
                    change.revision
                )),
                Some(op) if op.request.key() != change.key => report.violations.push(format!(
                    "revision {} wrote {value:?} to {}, but {op}",
                    change.revision, change.key
                )),
                Some(_) => {}
            },
            None if acknowledged_deletes.contains_key(&change.revision) => {}
            // A lease's expiry or revoke: no client deleted the key.
            None if log
                .state(&change.key, change.revision - 1)
                .and_then(|live| writers.get(live.value.as_str()))
                .is_some_and(|op| matches!(op.request, Request::PutLeased { .. })) => {}
            None => match unknown_deletes.get_mut(change.key.as_str()) {
                Some(left) if *left > 0 => *left -= 1,
                _ => report.violations.push(format!(
                    "revision {} deleted {}, which no client asked for",
                    change.revision, change.key
                )),
            },
        }
    }

    report.violations.extend(real_time_violations(&places));
    report
}

/// Places an answered operation, checking its answer against the log.
fn place_answered(log: &Log<'_>, op: &Operation, response: &Response) -> Result<Place, String> {
    let key = op.request.key();
    match (&op.request, response) {
        (
            Request::Put { value, .. } | Request::PutLeased { value, .. },
            Response::Put { revision },
        ) => {
            expect_written(log, *revision, key, Some(value))?;
            Ok(Place::write(*revision))
        }
        (
            Request::Delete { .. },
            Response::Delete {
                revision,
                deleted: true,
            },
        ) => {
            expect_written(log, *revision, key, None)?;
            if log.state(key, revision - 1).is_none() {
                return Err(format!(
                    "deleted {key}, absent at revision {}",
                    revision - 1
                ));
            }
            Ok(Place::write(*revision))
        }
        (
            Request::Delete { .. },
            Response::Delete {
                revision,
                deleted: false,
            },
        ) => {
            expect_read(log, *revision, key, None)?;
            Ok(Place::read(*revision))
        }
        (Request::Revoke { value, .. }, Response::Revoke { revision }) => {
            log.readable_at(*revision)?;
            match log.state(key, *revision) {
                Some(live) if live.value == *value => Err(format!(
                    "its lease's version of {key} is still live at revision {revision}"
                )),
                _ => Ok(Place::read(*revision)),
            }
        }
        (Request::Scan { prefix }, Response::Scan { revision, found }) => {
            expect_scan(log, *revision, prefix, found)?;
            Ok(Place::read(*revision))
        }
        (Request::Get { .. }, Response::Get { revision, found }) => {
            expect_read(log, *revision, key, found.as_ref())?;
            Ok(Place::read(*revision))
        }
        (
            Request::Cas { expect, value, .. },
            Response::Cas {
                revision,
                succeeded: true,
                ..
            },
        ) => {
            expect_written(log, *revision, key, Some(value))?;
            expect_compare(log, *revision - 1, key, expect.as_deref(), true)?;
            Ok(Place::write(*revision))
        }
        (
            Request::Cas { expect, .. },
            Response::Cas {
                revision,
                succeeded: false,
                found,
            },
        ) => {
            expect_read(log, *revision, key, found.as_ref())?;
            expect_compare(log, *revision, key, expect.as_deref(), false)?;
            Ok(Place::read(*revision))
        }
        _ => Err("the response does not answer the request".to_string()),
    }
}

/// Places a write whose answer never came but whose value is in the log.
fn place_unanswered(log: &Log<'_>, op: &Operation, change: &Change) -> Result<Place, String> {
    let key = op.request.key();
    if change.key != key {
        return Err(format!(
            "its value landed on {} at revision {}",
            change.key, change.revision
        ));
    }
    if let Request::Cas { expect, .. } = &op.request {
        expect_compare(log, change.revision - 1, key, expect.as_deref(), true)?;
    }
    Ok(Place::write(change.revision))
}

/// The log must hold exactly this write at `revision`.
fn expect_written(
    log: &Log<'_>,
    revision: i64,
    key: &str,
    value: Option<&String>,
) -> Result<(), String> {
    match log.by_revision.get(&revision) {
        Some(change) if change.key == key && change.value.as_ref() == value => Ok(()),
        Some(change) => Err(format!(
            "acknowledged at revision {revision}, where the log has {change:?}"
        )),
        None => Err(format!(
            "acknowledged at revision {revision}, missing from the log"
        )),
    }
}

/// A read at `revision` must see the key's state there.
fn expect_read(
    log: &Log<'_>,
    revision: i64,
    key: &str,
    found: Option<&Found>,
) -> Result<(), String> {
    log.readable_at(revision)?;
    let state = log.state(key, revision);
    if state.as_ref() == found {
        Ok(())
    } else {
        Err(format!("at revision {revision} {key} was {state:?}"))
    }
}

/// A scan at `revision` must see every key under `prefix` as it was there.
fn expect_scan(
    log: &Log<'_>,
    revision: i64,
    prefix: &str,
    found: &[(String, Found)],
) -> Result<(), String> {
    log.readable_at(revision)?;
    let mut keys: Vec<&str> = log
        .by_key
        .keys()
        .copied()
        .filter(|key| key.starts_with(prefix))
        .collect();
    keys.sort_unstable();
    let state: Vec<(String, Found)> = keys
        .into_iter()
        .filter_map(|key| Some((key.to_string(), log.state(key, revision)?)))
        .collect();
    if state.as_slice() == found {
        Ok(())
    } else {
        Err(format!("at revision {revision} {prefix}* was {state:?}"))
    }
}

/// A transaction's compare at `revision` must have come out `succeeded`.
fn expect_compare(
    log: &Log<'_>,
    revision: i64,
    key: &str,
    expect: Option<&str>,
    succeeded: bool,
) -> Result<(), String> {
    let state = log.state(key, revision);
    let holds = state.as_ref().map(|f| f.value.as_str()) == expect;
    if holds == succeeded {
        Ok(())
    } else {
        Err(format!(
            "the compare {} at revision {revision}, where {key} was {state:?}",
            if succeeded { "held" } else { "failed" }
        ))
    }
}

/// Operations that finished before another began must not sit after it.
fn real_time_violations(places: &[(&Operation, Place)]) -> Vec<String> {
    let mut finished: Vec<(Nanos, usize)> = places
        .iter()
        .enumerate()
        .filter_map(|(i, (op, _))| op.completed.as_ref().map(|(at, _)| (*at, i)))
        .collect();
    finished.sort_unstable();
    let mut by_start: Vec<usize> = (0..places.len()).collect();
    by_start.sort_unstable_by_key(|&i| places[i].0.invoked);

    let mut violations = Vec::new();
    let mut latest: Option<usize> = None;
    let mut next = 0;
    for i in by_start {
        let (op, place) = places[i];
        while next < finished.len() && finished[next].0 < op.invoked {
            let j = finished[next].1;
            if latest.is_none_or(|l| places[j].1 > places[l].1) {
                latest = Some(j);
            }
            next += 1;
        }
        if let Some(l) = latest
            && place < places[l].1
        {
            violations.push(format!(
                "{op} sits at revision {} but began after {} at revision {} had finished",
                place.revision, places[l].0, places[l].1.revision
            ));
        }
    }
    violations
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, at: (Nanos, Nanos), revision: i64) -> Operation {
        Operation {
            client: 0,
            request: Request::Put {
                key: key.into(),
                value: value.into(),
            },
            invoked: at.0,
            completed: Some((at.1, Response::Put { revision })),
        }
    }

    /// A read's answer: value, mod revision, create revision, version.
    type Seen<'a> = (&'a str, i64, i64, i64);

    fn seen((value, mod_revision, create_revision, version): Seen<'_>) -> Found {
        Found {
            value: value.into(),
            mod_revision,
            create_revision,
            version,
        }
    }

    fn get(key: &str, at: (Nanos, Nanos), revision: i64, found: Option<Seen<'_>>) -> Operation {
        Operation {
            client: 1,
            request: Request::Get { key: key.into() },
            invoked: at.0,
            completed: Some((
                at.1,
                Response::Get {
                    revision,
                    found: found.map(seen),
                },
            )),
        }
    }

    fn unknown(request: Request, invoked: Nanos) -> Operation {
        Operation {
            client: 2,
            request,
            invoked,
            completed: None,
        }
    }

    fn change(revision: i64, key: &str, value: Option<&str>) -> Change {
        Change {
            revision,
            key: key.into(),
            value: value.map(Into::into),
        }
    }

    fn violations(ops: &[Operation], log: &[Change]) -> Vec<String> {
        check(ops, log, 2).violations
    }

    #[test]
    fn a_history_that_agrees_with_its_log_passes() {
        let log = [change(2, "a", Some("1")), change(3, "a", Some("2"))];
        let ops = [
            put("a", "1", (0, 10), 2),
            get("a", (5, 15), 2, Some(("1", 2, 2, 1))),
            put("a", "2", (20, 30), 3),
            get("a", (25, 40), 3, Some(("2", 3, 2, 2))),
            get("b", (41, 42), 3, None),
        ];
        let report = check(&ops, &log, 2);
        assert!(report.is_linearizable(), "{:?}", report.violations);
        assert_eq!(report.acknowledged, 5);
    }

    #[test]
    fn a_stale_read_after_a_finished_write_fails() {
        let log = [change(2, "a", Some("1")), change(3, "a", Some("2"))];
        let ops = [
            put("a", "1", (0, 10), 2),
            put("a", "2", (20, 30), 3),
            // Consistent with revision 2, but began after revision 3 was acknowledged.
            get("a", (35, 40), 2, Some(("1", 2, 2, 1))),
        ];
        let found = violations(&ops, &log);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("began after"), "{found:?}");
    }

    #[test]
    fn a_read_must_return_the_state_at_its_revision() {
        let log = [change(2, "a", Some("1")), change(3, "a", Some("2"))];
        let ops = [
            put("a", "1", (0, 10), 2),
            put("a", "2", (20, 30), 3),
            get("a", (35, 40), 3, Some(("1", 2, 2, 1))),
        ];
        let found = violations(&ops, &log);
        assert!(found[0].contains("at revision 3 a was"), "{found:?}");
    }

    #[test]
    fn a_lost_acknowledged_write_fails() {
        let log = [change(2, "a", Some("1"))];
        let ops = [put("a", "1", (0, 10), 2), put("a", "2", (20, 30), 3)];
        let found = violations(&ops, &log);
        assert!(found[0].contains("missing from the log"), "{found:?}");
    }

    #[test]
    fn a_write_applied_twice_or_never_sent_fails() {
        let log = [
            change(2, "a", Some("1")),
            change(3, "a", Some("1")),
            change(4, "a", Some("ghost")),
        ];
        let ops = [put("a", "1", (0, 10), 2)];
        let found = violations(&ops, &log);
        assert!(
            found.iter().any(|v| v.contains("written twice")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|v| v.contains("no client sent")),
            "{found:?}"
        );
    }

    #[test]
    fn an_unanswered_write_may_land_later_or_never() {
        let log = [change(2, "a", Some("1")), change(3, "a", Some("late"))];
        let maybe = |value: &str| Request::Put {
            key: "a".into(),
            value: value.into(),
        };
        let ops = [
            unknown(maybe("late"), 5),
            put("a", "1", (0, 10), 2),
            get("a", (20, 30), 3, Some(("late", 3, 2, 2))),
            unknown(maybe("lost"), 40),
        ];
        let report = check(&ops, &log, 2);
        assert!(report.is_linearizable(), "{:?}", report.violations);
        assert_eq!((report.unknown, report.unknown_applied), (2, 1));

        // But it cannot land before it was sent.
        let ops = [
            put("a", "1", (0, 10), 2),
            get("a", (20, 30), 2, Some(("1", 2, 2, 1))),
            unknown(maybe("late"), 31),
        ];
        let log = [change(2, "a", Some("1")), change(3, "a", Some("late"))];
        assert!(violations(&ops, &log).is_empty());
        let log = [change(2, "a", Some("late")), change(3, "a", Some("1"))];
        let ops = [put("a", "1", (0, 10), 3), unknown(maybe("late"), 11)];
        let found = violations(&ops, &log);
        assert!(found[0].contains("began after"), "{found:?}");
    }

    #[test]
    fn a_compare_and_swap_must_compare_against_the_state_before_it() {
        let log = [change(2, "a", Some("1")), change(3, "a", Some("2"))];
        let cas = |expect: Option<&str>, value: &str, revision: i64, succeeded: bool| Operation {
            client: 3,
            request: Request::Cas {
                key: "a".into(),
                expect: expect.map(Into::into),
                value: value.into(),
            },
            invoked: 20,
            completed: Some((
                30,
                Response::Cas {
                    revision,
                    succeeded,
                    found: (!succeeded).then(|| seen(("2", 3, 2, 2))),
                },
            )),
        };
        let first = put("a", "1", (0, 10), 2);
        assert!(violations(&[first.clone(), cas(Some("1"), "2", 3, true)], &log).is_empty());
        let found = violations(&[first.clone(), cas(None, "2", 3, true)], &log);
        assert!(found[0].contains("compare held"), "{found:?}");
        // A failed compare reads the state it compared against.
        let failed = cas(Some("1"), "3", 3, false);
        let found = violations(&[first, cas(Some("1"), "2", 3, true), failed], &log);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn deletes_are_matched_by_revision_or_by_count() {
        let log = [
            change(2, "a", Some("1")),
            change(3, "a", None),
            change(4, "a", Some("2")),
            change(5, "a", None),
        ];
        let delete = |revision: i64, deleted: bool| Operation {
            client: 4,
            request: Request::Delete { key: "a".into() },
            invoked: 12,
            completed: Some((14, Response::Delete { revision, deleted })),
        };
        let ops = [
            put("a", "1", (0, 10), 2),
            delete(3, true),
            put("a", "2", (15, 16), 4),
            unknown(Request::Delete { key: "a".into() }, 17),
        ];
        assert!(violations(&ops, &log).is_empty());
        let found = violations(&ops[..3], &log);
        assert!(found[0].contains("no client asked for"), "{found:?}");
        let mut wrong = ops.to_vec();
        wrong[1] = delete(3, false);
        assert!(!violations(&wrong, &log).is_empty());
    }

    #[test]
    fn only_a_version_put_with_a_lease_may_vanish_and_a_revoke_ends_it() {
        let leased = |value: &str, revision: i64| Operation {
            client: 5,
            request: Request::PutLeased {
                key: "l".into(),
                value: value.into(),
            },
            invoked: 0,
            completed: Some((1, Response::Put { revision })),
        };
        let revoke = |value: &str, revision: i64| Operation {
            client: 5,
            request: Request::Revoke {
                key: "l".into(),
                value: value.into(),
            },
            invoked: 20,
            completed: Some((21, Response::Revoke { revision })),
        };
        // Expired at 3 (nobody asked), put again, revoked at 5.
        let log = [
            change(2, "l", Some("x")),
            change(3, "l", None),
            change(4, "l", Some("y")),
            change(5, "l", None),
        ];
        let mut ops = vec![leased("x", 2), leased("y", 4), revoke("y", 5)];
        ops[1].invoked = 10;
        ops[1].completed = Some((11, Response::Put { revision: 4 }));
        assert!(
            violations(&ops, &log).is_empty(),
            "{:?}",
            violations(&ops, &log)
        );

        // A revoke answered while its version is still live.
        let early = [leased("x", 2), revoke("x", 2)];
        let found = violations(&early, &log[..1]);
        assert!(found[0].contains("still live"), "{found:?}");

        // A version put without a lease never vanishes on its own.
        let plain = [put("l", "x", (0, 1), 2)];
        let found = violations(&plain, &log[..2]);
        assert!(found[0].contains("no client asked for"), "{found:?}");
    }

    #[test]
    fn a_scan_sees_every_key_at_one_revision() {
        let log = [
            change(2, "p/a", Some("1")),
            change(3, "p/b", Some("2")),
            change(4, "p/a", None),
            change(5, "q", Some("3")),
        ];
        let found = |pairs: &[(&str, Seen<'_>)]| {
            pairs
                .iter()
                .map(|(key, answer)| (key.to_string(), seen(*answer)))
                .collect::<Vec<_>>()
        };
        let scan = |revision: i64, found: Vec<(String, Found)>| Operation {
            client: 5,
            request: Request::Scan {
                prefix: "p/".into(),
            },
            invoked: 50,
            completed: Some((60, Response::Scan { revision, found })),
        };
        let delete = Operation {
            client: 4,
            request: Request::Delete { key: "p/a".into() },
            invoked: 4,
            completed: Some((
                5,
                Response::Delete {
                    revision: 4,
                    deleted: true,
                },
            )),
        };
        let writes = [
            put("p/a", "1", (0, 1), 2),
            put("p/b", "2", (2, 3), 3),
            delete,
            put("q", "3", (6, 7), 5),
        ];
        let with = |op: Operation| {
            let mut ops = writes.to_vec();
            ops.push(op);
            violations(&ops, &log)
        };
        assert!(with(scan(5, found(&[("p/b", ("2", 3, 3, 1))]))).is_empty());
        // Revision 3's keys claimed at revision 5: a torn read.
        let both = [("p/a", ("1", 2, 2, 1)), ("p/b", ("2", 3, 3, 1))];
        let torn = with(scan(5, found(&both)));
        assert!(torn[0].contains("p/* was"), "{torn:?}");
        // Revision 3's state, but read after revision 4 was acknowledged.
        let stale = with(scan(3, found(&both)));
        assert!(stale[0].contains("began after"), "{stale:?}");
    }

    #[test]
    fn versions_count_the_puts_since_the_key_was_created() {
        let log = [
            change(2, "a", Some("1")),
            change(3, "a", Some("2")),
            change(4, "a", None),
            change(5, "a", Some("3")),
        ];
        let writes = [
            put("a", "1", (0, 1), 2),
            put("a", "2", (2, 3), 3),
            unknown(Request::Delete { key: "a".into() }, 4),
            put("a", "3", (6, 7), 5),
        ];
        let read = |answer: Seen<'_>| {
            let mut ops = writes.to_vec();
            ops.push(get("a", (8, 9), 5, Some(answer)));
            violations(&ops, &log)
        };
        assert!(read(("3", 5, 5, 1)).is_empty());
        // The version and creation of before the delete: a wrong answer.
        assert!(!read(("3", 5, 2, 3)).is_empty());
        assert!(!read(("3", 5, 2, 1)).is_empty());
    }

    #[test]
    fn the_log_must_not_skip_revisions() {
        let log = [change(2, "a", Some("1")), change(4, "a", Some("2"))];
        let ops = [put("a", "1", (0, 10), 2), put("a", "2", (20, 30), 4)];
        let found = violations(&ops, &log);
        assert!(found[0].contains("jumps from revision 2 to 4"), "{found:?}");
    }
}
