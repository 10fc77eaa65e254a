//! The console's core: all state and one `update(event) -> Vec<Command>`.
//!
//! No I/O happens here. Terminal input, clock ticks and everything the data
//! layer learns arrive as [`Event`]s; whatever the core wants done (poll,
//! read keys, run a mutation, quit) leaves as [`Command`]s. Time only comes
//! from events (`Tick` and the `at` of each answer), so tests are
//! deterministic.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::keymap::{self, Action, Scope};
use crate::model::{ClusterSnapshot, KeyPage, KeyValue, Lease, MemberProbe, WatchEvent};
use crate::quorum::{self, Change, Impact, Quorum};
use crate::tree::{self, EntryKind, Listing};

/// How many keys one page reads.
pub const PAGE_SIZE: i64 = 500;
/// How many samples a sparkline keeps.
pub const SERIES_LEN: usize = 120;
/// How many revisions the history pane reads.
pub const HISTORY_LEN: usize = 20;
/// How many watch events are kept.
pub const WATCH_EVENTS: usize = 200;
/// How long a toast stays.
pub const TOAST_FOR: Duration = Duration::from_secs(6);

/// Settings from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    /// Client URLs to talk to.
    pub endpoints: Vec<String>,
    /// No mutations at all.
    pub read_only: bool,
    /// Poll interval.
    pub refresh: Duration,
}

/// The views, in tab order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// Members, leader, quorum.
    Cluster,
    /// Key browser.
    Keys,
    /// Leases.
    Leases,
    /// Membership and maintenance actions.
    Actions,
}

impl View {
    /// All views in tab order.
    pub const ALL: [View; 4] = [View::Cluster, View::Keys, View::Leases, View::Actions];

    /// Tab title.
    pub fn title(self) -> &'static str {
        match self {
            View::Cluster => "Cluster",
            View::Keys => "Keys",
            View::Leases => "Leases",
            View::Actions => "Actions",
        }
    }

    fn scope(self) -> Scope {
        match self {
            View::Cluster => Scope::Cluster,
            View::Keys => Scope::Keys,
            View::Leases => Scope::Leases,
            View::Actions => Scope::Actions,
        }
    }
}

/// What arrives at the core.
#[derive(Clone, Debug)]
pub enum Event {
    /// A key press.
    Key(KeyEvent),
    /// Pasted text (bracketed paste).
    Paste(String),
    /// The clock: monotonic now and wall-clock unix seconds.
    Tick(Instant, f64),
    /// The terminal size changed.
    Resize(u16, u16),
    /// A cluster poll finished.
    Cluster {
        /// Poll sequence number (increasing).
        seq: u64,
        /// When the poll started.
        at: Instant,
        /// What it learned.
        result: Result<ClusterSnapshot, String>,
    },
    /// A page of keys.
    Keys {
        /// Request id from [`Command::ListKeys`].
        req: u64,
        /// When it was read.
        at: Instant,
        /// The page.
        result: Result<KeyPage, String>,
    },
    /// One key's current value (None: no such key).
    Value {
        /// Request id from [`Command::GetKey`].
        req: u64,
        /// When it was read.
        at: Instant,
        /// The key.
        result: Result<Option<KeyValue>, String>,
    },
    /// Older revisions of a key.
    History {
        /// Request id from [`Command::GetHistory`].
        req: u64,
        /// When it was read.
        at: Instant,
        /// Revisions, newest first.
        result: Result<History, String>,
    },
    /// News from a watch.
    Watch {
        /// Watch id from [`Command::Watch`].
        id: u64,
        /// When it arrived.
        at: Instant,
        /// What happened.
        update: WatchUpdate,
    },
    /// The lease list.
    Leases {
        /// Request id from [`Command::ListLeases`].
        req: u64,
        /// When it was read.
        at: Instant,
        /// The leases.
        result: Result<Vec<Lease>, String>,
    },
    /// A mutation finished.
    Done {
        /// The operation.
        op: Op,
        /// Its outcome in words.
        result: Result<String, String>,
    },
}

/// Older revisions of one key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// Revisions, newest first (the current one included).
    pub entries: Vec<KeyValue>,
    /// Why the list ends.
    pub end: String,
}

/// What a watch reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchUpdate {
    /// The watch is established at this store revision.
    Started {
        /// The revision of the creation answer's header.
        revision: i64,
    },
    /// Changes.
    Events(Vec<WatchEvent>),
    /// The watch failed or was cancelled.
    Failed(String),
}

/// What the core asks the outside world to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Leave.
    Quit,
    /// Poll the cluster now.
    Poll,
    /// Stop or resume periodic polling.
    SetPaused(bool),
    /// Read one keys-only page of `[start, prefix_end(prefix))`.
    ListKeys {
        /// Request id.
        req: u64,
        /// The prefix listed.
        prefix: Vec<u8>,
        /// First key of the page.
        start: Vec<u8>,
        /// Page size.
        limit: i64,
    },
    /// Read one key.
    GetKey {
        /// Request id.
        req: u64,
        /// The key.
        key: Vec<u8>,
    },
    /// Read older revisions of a key, starting below `below`.
    GetHistory {
        /// Request id.
        req: u64,
        /// The key.
        key: Vec<u8>,
        /// Its current version (newest first, included).
        current: KeyValue,
        /// How many entries at most.
        limit: usize,
    },
    /// Watch a prefix.
    Watch {
        /// Watch id.
        id: u64,
        /// The prefix.
        prefix: Vec<u8>,
        /// First revision to report (0: from now on).
        start_revision: i64,
    },
    /// Stop a watch.
    Unwatch {
        /// Watch id.
        id: u64,
    },
    /// Read the leases.
    ListLeases {
        /// Request id.
        req: u64,
    },
    /// Run a confirmed mutation.
    Run(Op),
}

/// A mutation of the cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Put a key.
    Put {
        /// Key.
        key: Vec<u8>,
        /// Value.
        value: Vec<u8>,
    },
    /// Delete one key.
    Delete {
        /// Key.
        key: Vec<u8>,
    },
    /// Add a member.
    MemberAdd {
        /// Its peer URLs.
        peer_urls: Vec<String>,
        /// As a learner.
        learner: bool,
        /// Name to print in the `--initial-cluster` line.
        name: String,
    },
    /// Remove a member.
    MemberRemove {
        /// Member id.
        id: u64,
    },
    /// Promote a learner.
    MemberPromote {
        /// Member id.
        id: u64,
    },
    /// Hand leadership to a member (sent to the current leader).
    MoveLeader {
        /// Target member id.
        id: u64,
        /// The leader's client URL.
        leader_endpoint: String,
    },
    /// Compact the keyspace.
    Compact {
        /// Revision to compact to.
        revision: i64,
    },
    /// Defragment one member.
    Defrag {
        /// Its client URL.
        endpoint: String,
    },
    /// Disarm every alarm.
    AlarmDisarm,
    /// Revoke a lease.
    LeaseRevoke {
        /// Lease id.
        id: i64,
    },
}

impl Op {
    /// Short description for toasts.
    pub fn describe(&self) -> String {
        match self {
            Op::Put { key, .. } => format!("put {}", tree::display_key(key)),
            Op::Delete { key } => format!("delete {}", tree::display_key(key)),
            Op::MemberAdd {
                peer_urls, learner, ..
            } => format!(
                "member add {}{}",
                peer_urls.join(","),
                if *learner { " (learner)" } else { "" }
            ),
            Op::MemberRemove { id } => format!("member remove {id:x}"),
            Op::MemberPromote { id } => format!("member promote {id:x}"),
            Op::MoveLeader { id, .. } => format!("move leader to {id:x}"),
            Op::Compact { revision } => format!("compact to revision {revision}"),
            Op::Defrag { endpoint } => format!("defragment {endpoint}"),
            Op::AlarmDisarm => "alarm disarm".to_string(),
            Op::LeaseRevoke { id } => format!("lease revoke {id:016x}"),
        }
    }

    fn mutates_membership(&self) -> bool {
        matches!(
            self,
            Op::MemberAdd { .. }
                | Op::MemberRemove { .. }
                | Op::MemberPromote { .. }
                | Op::MoveLeader { .. }
        )
    }
}

/// Data with its freshness: the last good value, when it was read, and the
/// last error since then.
#[derive(Clone, Debug)]
pub struct Fresh<T> {
    /// Last good data.
    pub data: Option<T>,
    /// When the last good data was read.
    pub at: Option<Instant>,
    /// The error of the last attempt, if it failed.
    pub error: Option<String>,
    /// Failed attempts in a row.
    pub failures: u32,
    /// Latest request id whose answer is awaited or accepted.
    pub req: u64,
    /// Whether a request is in flight.
    pub loading: bool,
}

impl<T> Default for Fresh<T> {
    fn default() -> Self {
        Self {
            data: None,
            at: None,
            error: None,
            failures: 0,
            req: 0,
            loading: false,
        }
    }
}

impl<T> Fresh<T> {
    /// Whether the data shown is older than the last attempt (which failed).
    pub fn stale(&self) -> bool {
        self.data.is_some() && self.error.is_some()
    }

    fn ok(&mut self, at: Instant, data: T) {
        self.data = Some(data);
        self.at = Some(at);
        self.error = None;
        self.failures = 0;
        self.loading = false;
    }

    fn fail(&mut self, error: String) {
        self.error = Some(error);
        self.failures += 1;
        self.loading = false;
    }
}

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
    pub last_good: Option<(Instant, crate::model::Status)>,
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

/// Panes of the Keys view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeysPane {
    /// The listing.
    List,
    /// The value.
    Value,
    /// History or watch events.
    History,
}

/// State of the Keys view.
#[derive(Clone, Debug)]
pub struct KeysState {
    /// The listing being browsed.
    pub listing: Fresh<Listing>,
    /// The prefix listed (also while its first page is loading).
    pub prefix: Vec<u8>,
    /// Flat mode.
    pub flat: bool,
    /// Selected row among the visible (filtered) rows.
    pub selected: usize,
    /// Client-side filter on loaded rows.
    pub filter: String,
    /// Focused pane.
    pub pane: KeysPane,
    /// The selected key's value.
    pub value: Fresh<Option<KeyValue>>,
    /// Which key `value` is about.
    pub value_key: Option<Vec<u8>>,
    /// Value pane scroll.
    pub value_scroll: u16,
    /// History of the selected key.
    pub history: Fresh<History>,
    /// Selected history entry.
    pub history_selected: usize,
    /// Show a diff of the selected entry against the one before it.
    pub diff: bool,
    /// The live watch, if on.
    pub watch: Option<WatchState>,
    /// Whether the view was ever opened (first listing happens then).
    pub opened: bool,
    /// A fresh listing being read while the old one stays on screen.
    pub reloading: Option<Listing>,
    /// Row (full key or prefix) to select once the listing arrives.
    pub reselect: Option<Vec<u8>>,
    /// `G` was pressed while pages were still to come: the selection stays
    /// on the last row as they arrive, and they are read until the end.
    pub follow_bottom: bool,
    /// How far a reload reads before it replaces the listing.
    pub reload_until: ReloadUntil,
}

/// How far a reload of the listing reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReloadUntil {
    /// One page (the listing had no more).
    #[default]
    FirstPage,
    /// Up to this key (where the old listing stopped).
    Key(Vec<u8>),
    /// Every page (the old listing was read to its end).
    End,
}

/// A live watch.
#[derive(Clone, Debug)]
pub struct WatchState {
    /// Watch id.
    pub id: u64,
    /// Prefix watched.
    pub prefix: Vec<u8>,
    /// Established yet.
    pub live: bool,
    /// Error, if it failed.
    pub error: Option<String>,
    /// Latest events, newest last.
    pub events: VecDeque<(Instant, WatchEvent)>,
    /// The store revision seen so far (from the creation answer and the
    /// events): a resumed watch starts right after it, so no change is lost.
    pub revision: i64,
    /// Failed attempts in a row; the watch is resumed after the next good
    /// cluster poll, so it retries at the poller's backed-off pace.
    pub failures: u32,
}

/// Panes of the Actions view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionsPane {
    /// The action list.
    Actions,
    /// The member (target) list.
    Targets,
}

/// The actions offered by the Actions view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionKind {
    /// Add a learner.
    AddLearner,
    /// Add a voter.
    AddVoter,
    /// Promote a learner.
    Promote,
    /// Remove a member.
    Remove,
    /// Move leadership.
    MoveLeader,
    /// Compact.
    Compact,
    /// Defragment.
    Defrag,
    /// Disarm alarms.
    DisarmAlarms,
}

impl ActionKind {
    /// All, in list order.
    pub const ALL: [ActionKind; 8] = [
        ActionKind::AddLearner,
        ActionKind::AddVoter,
        ActionKind::Promote,
        ActionKind::Remove,
        ActionKind::MoveLeader,
        ActionKind::Compact,
        ActionKind::Defrag,
        ActionKind::DisarmAlarms,
    ];

    /// List label.
    pub fn label(self) -> &'static str {
        match self {
            ActionKind::AddLearner => "Add member as learner",
            ActionKind::AddVoter => "Add member as voter",
            ActionKind::Promote => "Promote learner",
            ActionKind::Remove => "Remove member",
            ActionKind::MoveLeader => "Move leader",
            ActionKind::Compact => "Compact keyspace",
            ActionKind::Defrag => "Defragment member",
            ActionKind::DisarmAlarms => "Disarm alarms",
        }
    }

    /// What it does, in one line.
    pub fn description(self) -> &'static str {
        match self {
            ActionKind::AddLearner => {
                "Adds a non-voting member; start it with the printed flags, then promote it."
            }
            ActionKind::AddVoter => {
                "Adds a voting member: it counts towards quorum before it has even started."
            }
            ActionKind::Promote => "Makes the selected learner a voter (it must have caught up).",
            ActionKind::Remove => "Removes the selected member from the cluster for good.",
            ActionKind::MoveLeader => "Hands Raft leadership to the selected voter.",
            ActionKind::Compact => "Discards revisions older than the one given, on every member.",
            ActionKind::Defrag => "Rewrites the selected member's database; it blocks meanwhile.",
            ActionKind::DisarmAlarms => {
                "Clears every active alarm (e.g. NOSPACE after freeing space)."
            }
        }
    }

    /// What it does to the voters when run on `target` (None while it
    /// cannot run on that target).
    pub fn change(self, target: Option<&MemberRow>) -> Option<Change> {
        match (self, target) {
            (ActionKind::AddLearner, _) => Some(Change::AddLearner),
            (ActionKind::AddVoter, _) => Some(Change::AddVoter),
            (ActionKind::Remove, Some(r)) => Some(Change::Remove {
                voter: !r.probe.member.is_learner,
                healthy: r.healthy,
            }),
            (ActionKind::Promote, Some(r)) if r.probe.member.is_learner => {
                Some(Change::Promote { healthy: r.healthy })
            }
            (ActionKind::Defrag, Some(r)) => Some(Change::Pause {
                voter: !r.probe.member.is_learner,
                healthy: r.healthy,
            }),
            (ActionKind::MoveLeader | ActionKind::Compact | ActionKind::DisarmAlarms, _) => {
                Some(Change::Keep)
            }
            _ => None,
        }
    }

    /// Whether it acts on the selected member.
    pub fn needs_target(self) -> bool {
        matches!(
            self,
            ActionKind::Promote | ActionKind::Remove | ActionKind::MoveLeader | ActionKind::Defrag
        )
    }
}

/// A text line being typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// `/` filter of the focused list.
    Filter(String),
    /// `:` command palette.
    Palette(String),
    /// A form.
    Prompt(Prompt),
}

/// A small form (one or more fields).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    /// Title.
    pub title: String,
    /// (label, value) per field.
    pub fields: Vec<(String, String)>,
    /// Field being edited.
    pub field: usize,
    /// What the answers are for.
    pub purpose: PromptPurpose,
}

/// What a prompt's answers are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptPurpose {
    /// key, value.
    Put,
    /// peer URL, name.
    MemberAdd {
        /// As learner.
        learner: bool,
    },
    /// revision.
    Compact,
}

/// A modal dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modal {
    /// Confirmation of a mutation.
    Confirm(Confirm),
    /// A message to read (e.g. the flags to start a new member with).
    Info {
        /// Title.
        title: String,
        /// Lines.
        lines: Vec<String>,
    },
}

/// A pending mutation waiting for "yes".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// Title ("Remove member?").
    pub title: String,
    /// What it acts on, named.
    pub target: String,
    /// Further lines (consequences).
    pub lines: Vec<String>,
    /// Quorum impact, for membership changes.
    pub impact: Option<Impact>,
    /// Which button is selected (false = No, the default).
    pub yes: bool,
    /// Whether the user overrode a refusal with `!`.
    pub overridden: bool,
    /// The mutation.
    pub op: Op,
}

impl Confirm {
    fn new(
        title: String,
        target: String,
        lines: Vec<String>,
        impact: Option<Impact>,
        op: Op,
    ) -> Self {
        Self {
            title,
            target,
            lines,
            impact,
            yes: false,
            overridden: false,
            op,
        }
    }

    /// Why the console refuses, unless overridden.
    pub fn refusal(&self) -> Option<&str> {
        if self.overridden {
            return None;
        }
        self.impact.as_ref().and_then(|i| i.refusal.as_deref())
    }
}

/// A transient message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toast {
    /// Text.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
    /// When it appeared.
    pub at: Instant,
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

/// The whole console state.
#[derive(Debug)]
pub struct App {
    /// Settings.
    pub config: Config,
    /// Monotonic now (from the last tick).
    pub now: Instant,
    /// Wall clock, unix seconds (from the last tick).
    pub unix_now: f64,
    /// Terminal size.
    pub size: (u16, u16),
    /// Current view.
    pub view: View,
    /// The last cluster poll results.
    pub cluster: Fresh<ClusterSnapshot>,
    /// Highest poll sequence number applied.
    pub cluster_seq: u64,
    /// Members with derived fields, sorted by name.
    pub rows: Vec<MemberRow>,
    /// Selected member (index into `rows`).
    pub member_selected: usize,
    /// Sparklines.
    pub series: Series,
    prev: Option<(Instant, Counters)>,
    rates: HashMap<u64, (f64, f64)>,
    /// Each member's last good status and when it was read.
    last_status: HashMap<u64, (Instant, crate::model::Status)>,
    /// Keys view.
    pub keys: KeysState,
    /// Leases view.
    pub leases: Fresh<Vec<Lease>>,
    /// Selected lease.
    pub lease_selected: usize,
    /// Actions view focus.
    pub actions_pane: ActionsPane,
    /// Selected action.
    pub action_selected: usize,
    /// Line being typed.
    pub input: Option<Input>,
    /// Palette completions for the current input.
    pub completions: Vec<String>,
    /// Open modal.
    pub modal: Option<Modal>,
    /// Help overlay shown.
    pub help: bool,
    /// First help line shown (the overlay scrolls when it does not fit).
    pub help_scroll: u16,
    /// Polling frozen.
    pub paused: bool,
    /// Transient messages, newest last.
    pub toasts: Vec<Toast>,
    /// Mutations sent and not answered yet.
    pub running: usize,
    /// Set when the console should exit.
    pub quit: bool,
    next_id: u64,
}

impl App {
    /// A fresh console state at `now` (monotonic) and `unix_now` (wall clock).
    pub fn new(config: Config, now: Instant, unix_now: f64) -> Self {
        Self {
            config,
            now,
            unix_now,
            size: (80, 24),
            view: View::Cluster,
            cluster: Fresh::default(),
            cluster_seq: 0,
            rows: Vec::new(),
            member_selected: 0,
            series: Series::default(),
            prev: None,
            rates: HashMap::new(),
            last_status: HashMap::new(),
            keys: KeysState {
                listing: Fresh::default(),
                prefix: Vec::new(),
                flat: false,
                selected: 0,
                filter: String::new(),
                pane: KeysPane::List,
                value: Fresh::default(),
                value_key: None,
                value_scroll: 0,
                history: Fresh::default(),
                history_selected: 0,
                diff: false,
                watch: None,
                opened: false,
                reloading: None,
                reselect: None,
                follow_bottom: false,
                reload_until: ReloadUntil::FirstPage,
            },
            leases: Fresh::default(),
            lease_selected: 0,
            actions_pane: ActionsPane::Actions,
            action_selected: 0,
            input: None,
            completions: Vec::new(),
            modal: None,
            help: false,
            help_scroll: 0,
            paused: false,
            toasts: Vec::new(),
            running: 0,
            quit: false,
            next_id: 0,
        }
    }

    /// Commands to run at start-up.
    pub fn start(&mut self) -> Vec<Command> {
        vec![Command::Poll]
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The keymap scope of the current view.
    pub fn scope(&self) -> Scope {
        self.view.scope()
    }

    /// Applies one event.
    pub fn update(&mut self, event: Event) -> Vec<Command> {
        let mut out = Vec::new();
        match event {
            Event::Key(key) => self.on_key(key, &mut out),
            Event::Paste(text) => self.on_paste(&text),
            Event::Tick(now, unix) => {
                self.now = now;
                self.unix_now = unix;
                let now = self.now;
                self.toasts
                    .retain(|t| now.saturating_duration_since(t.at) < TOAST_FOR);
            }
            Event::Resize(w, h) => self.size = (w, h),
            Event::Cluster { seq, at, result } => self.on_cluster(seq, at, result, &mut out),
            Event::Keys { req, at, result } => self.on_keys(req, at, result, &mut out),
            Event::Value { req, at, result } => self.on_value(req, at, result, &mut out),
            Event::History { req, at, result } => {
                let h = &mut self.keys.history;
                if req == h.req {
                    match result {
                        Ok(history) => h.ok(at, history),
                        Err(e) => h.fail(e),
                    }
                }
            }
            Event::Watch { id, at, update } => self.on_watch(id, at, update, &mut out),
            Event::Leases { req, at, result } => {
                if req == self.leases.req {
                    match result {
                        Ok(mut leases) => {
                            leases.sort_by_key(|l| l.id);
                            self.leases.ok(at, leases);
                        }
                        Err(e) => self.leases.fail(e),
                    }
                    let n = self.leases.data.as_ref().map_or(0, Vec::len);
                    self.lease_selected = self.lease_selected.min(n.saturating_sub(1));
                }
            }
            Event::Done { op, result } => self.on_done(op, result, &mut out),
        }
        out
    }

    fn toast(&mut self, text: impl Into<String>, error: bool) {
        let mut text = text.into();
        // An error reads as one without its red colour too.
        if error && !text.starts_with('✖') {
            text = format!("✖ {text}");
        }
        self.toasts.push(Toast {
            text,
            error,
            at: self.now,
        });
        if self.toasts.len() > 3 {
            self.toasts.remove(0);
        }
    }

    // ----- cluster data -------------------------------------------------

    fn on_cluster(
        &mut self,
        seq: u64,
        at: Instant,
        result: Result<ClusterSnapshot, String>,
        out: &mut Vec<Command>,
    ) {
        if seq <= self.cluster_seq {
            return; // An older answer never overwrites a newer one.
        }
        self.cluster_seq = seq;
        match result {
            Ok(snapshot) => {
                self.record_series(at, &snapshot);
                self.remember_statuses(at, &snapshot);
                self.cluster.ok(at, snapshot);
            }
            Err(e) => self.cluster.fail(e),
        }
        if self.cluster.error.is_none() {
            self.resume_watch(out);
        }
        self.rebuild_rows();
        if self.cluster.error.is_none() && !self.paused {
            self.refresh_view(out);
        }
    }

    /// After a good poll, the view on screen follows at the same pace: the
    /// lease list, or the selected key (and a listing that fits one page;
    /// a longer one is re-read with `r`, so paging through it is not reset).
    fn refresh_view(&mut self, out: &mut Vec<Command>) {
        match self.view {
            View::Leases if !self.leases.loading => self.list_leases(out),
            View::Keys if self.keys.opened => {
                let single_page = self
                    .keys
                    .listing
                    .data
                    .as_ref()
                    .is_some_and(|l| l.pages == 1 && !l.has_more());
                if single_page && !self.keys.listing.loading && self.keys.reloading.is_none() {
                    self.reload_listing(out);
                }
                if !self.keys.value.loading {
                    self.get_value(out);
                }
            }
            _ => {}
        }
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

    fn rebuild_rows(&mut self) {
        let selected_id = self
            .rows
            .get(self.member_selected)
            .map(|r| r.probe.member.id);
        let Some(snapshot) = &self.cluster.data else {
            self.rows.clear();
            return;
        };
        let leader = leader_of(snapshot);
        let unix_now = self.unix_now;
        // When no endpoint answered the last poll, nothing is known to be
        // up: every member is shown as one that stopped answering (down,
        // with its last good status dimmed under STALE), never with the
        // roles of the last good poll.
        let outage = self.cluster.error.as_deref();
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
        self.member_selected = selected_id
            .and_then(|id| self.rows.iter().position(|r| r.probe.member.id == id))
            .unwrap_or(self.member_selected)
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

    /// The store revision (highest reported, as [`App::term`]).
    pub fn revision(&self) -> Option<i64> {
        self.statuses().map(|s| s.revision).max()
    }

    /// Each member's current status, or its last good one while no member
    /// answers at all.
    fn statuses(&self) -> impl Iterator<Item = &crate::model::Status> {
        let outage = self.cluster.error.is_some();
        self.rows.iter().filter_map(move |r| match (&r.probe.status, &r.last_good) {
            (Ok(s), _) => Some(s),
            (Err(_), Some((_, s))) if outage => Some(s),
            (Err(_), _) => None,
        })
    }

    /// Age of the last good cluster data.
    pub fn cluster_age(&self) -> Option<Duration> {
        self.cluster
            .at
            .map(|at| self.now.saturating_duration_since(at))
    }

    // ----- keys ---------------------------------------------------------

    fn open_prefix(&mut self, prefix: Vec<u8>, out: &mut Vec<Command>) {
        self.keys.prefix = prefix.clone();
        self.keys.listing = Fresh::default();
        self.keys.listing.data = Some(Listing::new(prefix, self.keys.flat));
        self.keys.reloading = None;
        self.keys.reselect = None;
        self.keys.follow_bottom = false;
        self.keys.selected = 0;
        self.keys.filter.clear();
        self.keys.opened = true;
        self.fetch_page(out);
        if let Some(w) = self.keys.watch.take() {
            out.push(Command::Unwatch { id: w.id });
            self.start_watch(out);
        }
    }

    fn fetch_page(&mut self, out: &mut Vec<Command>) {
        if self.keys.listing.loading {
            return;
        }
        let listing = match &self.keys.reloading {
            Some(l) => l,
            None => match &self.keys.listing.data {
                Some(l) => l,
                None => return,
            },
        };
        let Some(start) = listing.next.clone() else {
            return;
        };
        let prefix = listing.prefix.clone();
        let req = self.id();
        self.keys.listing.req = req;
        self.keys.listing.loading = true;
        out.push(Command::ListKeys {
            req,
            prefix,
            start,
            limit: PAGE_SIZE,
        });
    }

    /// Reads the listing again from its first page; the old rows stay on
    /// screen (with their age) until the new page lands.
    fn reload_listing(&mut self, out: &mut Vec<Command>) {
        self.keys.reselect = self.selected_entry().map(|e| e.full.clone());
        // As many pages are re-read as were loaded, so the rows (and the
        // selection) further down survive the refresh.
        self.keys.reload_until =
            self.keys
                .listing
                .data
                .as_ref()
                .map_or(ReloadUntil::FirstPage, |l| match &l.next {
                    _ if l.pages <= 1 => ReloadUntil::FirstPage,
                    Some(next) => ReloadUntil::Key(next.clone()),
                    None => ReloadUntil::End,
                });
        self.keys.reloading = Some(Listing::new(self.keys.prefix.clone(), self.keys.flat));
        self.keys.listing.loading = false;
        self.fetch_page(out);
    }

    fn on_keys(
        &mut self,
        req: u64,
        at: Instant,
        result: Result<KeyPage, String>,
        out: &mut Vec<Command>,
    ) {
        if req != self.keys.listing.req {
            return;
        }
        match result {
            Ok(page) => {
                if let Some(reloading) = self.keys.reloading.as_mut() {
                    reloading.absorb(&page.keys, page.more, page.revision);
                    let short = match (&self.keys.reload_until, &reloading.next) {
                        (_, None) | (ReloadUntil::FirstPage, _) => false,
                        (ReloadUntil::End, Some(_)) => true,
                        (ReloadUntil::Key(until), Some(next)) => next < until,
                    };
                    if short {
                        // The old rows stay on screen until the new ones
                        // cover as much.
                        self.keys.listing.loading = false;
                        self.fetch_page(out);
                        return;
                    }
                }
                let listing = match self.keys.reloading.take() {
                    Some(l) => l,
                    None => {
                        let mut l = self.keys.listing.data.take().unwrap_or_default();
                        l.absorb(&page.keys, page.more, page.revision);
                        l
                    }
                };
                let more = listing.has_more();
                self.keys.listing.ok(at, listing);
                if let Some(full) = self.keys.reselect.take()
                    && let Some(i) = self.visible_entries().iter().position(|e| e.full == full)
                {
                    self.keys.selected = i;
                }
                if self.keys.follow_bottom {
                    self.keys.selected = self.visible_entries().len().saturating_sub(1);
                    self.keys.follow_bottom = more;
                }
                self.clamp_key_selection();
                self.after_key_move(out);
            }
            Err(e) => {
                self.keys.reloading = None;
                self.keys.listing.fail(e);
            }
        }
    }

    /// Rows of the listing that pass the filter.
    pub fn visible_entries(&self) -> Vec<&tree::Entry> {
        let Some(listing) = &self.keys.listing.data else {
            return Vec::new();
        };
        let filter = self.keys.filter.to_lowercase();
        listing
            .entries
            .iter()
            .filter(|e| filter.is_empty() || e.display().to_lowercase().contains(&filter))
            .collect()
    }

    /// The selected row.
    pub fn selected_entry(&self) -> Option<&tree::Entry> {
        self.visible_entries().get(self.keys.selected).copied()
    }

    fn clamp_key_selection(&mut self) {
        let n = self.visible_entries().len();
        self.keys.selected = self.keys.selected.min(n.saturating_sub(1));
    }

    /// After the selection moved: read the selected key, and the next page
    /// when the selection nears the end of what is loaded.
    fn after_key_move(&mut self, out: &mut Vec<Command>) {
        let n = self.visible_entries().len();
        if self.keys.selected + 10 >= n
            && self
                .keys
                .listing
                .data
                .as_ref()
                .is_some_and(Listing::has_more)
        {
            self.fetch_page(out);
        }
        let key = self
            .selected_entry()
            .filter(|e| e.kind == EntryKind::Key)
            .map(|e| e.full.clone());
        if key != self.keys.value_key {
            self.keys.value_key = key.clone();
            self.keys.value = Fresh::default();
            self.keys.history = Fresh::default();
            self.keys.history_selected = 0;
            self.keys.value_scroll = 0;
            if key.is_some() {
                self.get_value(out);
            }
        }
    }

    fn get_value(&mut self, out: &mut Vec<Command>) {
        let Some(key) = self.keys.value_key.clone() else {
            return;
        };
        let req = self.id();
        self.keys.value.req = req;
        self.keys.value.loading = true;
        out.push(Command::GetKey { req, key });
    }

    fn on_value(
        &mut self,
        req: u64,
        at: Instant,
        result: Result<Option<KeyValue>, String>,
        out: &mut Vec<Command>,
    ) {
        if req != self.keys.value.req {
            return;
        }
        match result {
            Ok(kv) => {
                let changed = self
                    .keys
                    .value
                    .data
                    .as_ref()
                    .map(|v| v.as_ref().map(|k| k.mod_revision))
                    != Some(kv.as_ref().map(|k| k.mod_revision));
                self.keys.value.ok(at, kv.clone());
                if let Some(kv) = kv {
                    if changed || self.keys.history.data.is_none() {
                        let req = self.id();
                        self.keys.history.req = req;
                        self.keys.history.loading = true;
                        self.keys.history_selected = 0;
                        out.push(Command::GetHistory {
                            req,
                            key: kv.key.clone(),
                            current: kv,
                            limit: HISTORY_LEN,
                        });
                    }
                } else {
                    self.keys.history = Fresh::default();
                }
            }
            Err(e) => self.keys.value.fail(e),
        }
    }

    fn start_watch(&mut self, out: &mut Vec<Command>) {
        let id = self.id();
        let prefix = self.keys.prefix.clone();
        self.keys.watch = Some(WatchState {
            id,
            prefix: prefix.clone(),
            live: false,
            error: None,
            events: VecDeque::new(),
            revision: 0,
            failures: 0,
        });
        out.push(Command::Watch {
            id,
            prefix,
            start_revision: 0,
        });
    }

    /// Starts a failed watch again (under a new id, so late news of the old
    /// one is ignored) right after the last revision it saw; if those
    /// revisions were compacted, from now on, saying so.
    fn resume_watch(&mut self, out: &mut Vec<Command>) {
        let id = self.id();
        let Some(w) = self.keys.watch.as_mut().filter(|w| w.error.is_some()) else {
            return;
        };
        let compacted = w.error.as_deref().is_some_and(|e| e.contains("compacted"));
        out.push(Command::Unwatch { id: w.id });
        w.id = id;
        let start_revision = if compacted || w.revision == 0 {
            0
        } else {
            w.revision + 1
        };
        out.push(Command::Watch {
            id,
            prefix: w.prefix.clone(),
            start_revision,
        });
    }

    fn on_watch(&mut self, id: u64, at: Instant, update: WatchUpdate, out: &mut Vec<Command>) {
        let Some(w) = self.keys.watch.as_mut().filter(|w| w.id == id) else {
            return;
        };
        let mut refresh_value = false;
        match update {
            WatchUpdate::Started { revision } => {
                w.live = true;
                w.error = None;
                w.failures = 0;
                w.revision = w.revision.max(revision);
            }
            WatchUpdate::Failed(e) => {
                w.live = false;
                w.error = Some(e);
                w.failures += 1;
            }
            WatchUpdate::Events(events) => {
                for ev in events {
                    w.revision = w.revision.max(ev.kv.mod_revision);
                    if Some(&ev.kv.key) == self.keys.value_key.as_ref() {
                        refresh_value = true;
                    }
                    w.events.push_back((at, ev));
                    if w.events.len() > WATCH_EVENTS {
                        w.events.pop_front();
                    }
                }
            }
        }
        if refresh_value {
            self.get_value(out);
        }
    }

    // ----- leases -------------------------------------------------------

    fn list_leases(&mut self, out: &mut Vec<Command>) {
        let req = self.id();
        self.leases.req = req;
        self.leases.loading = true;
        out.push(Command::ListLeases { req });
    }

    // ----- mutations ----------------------------------------------------

    fn on_done(&mut self, op: Op, result: Result<String, String>, out: &mut Vec<Command>) {
        self.running = self.running.saturating_sub(1);
        // The "… running" toast of this operation has served its purpose.
        let running = format!("… {}", op.describe());
        self.toasts.retain(|t| t.text != running);
        match result {
            Ok(msg) => {
                if let Op::MemberAdd { .. } = op {
                    self.modal = Some(Modal::Info {
                        title: "Member added".to_string(),
                        lines: msg.lines().map(str::to_string).collect(),
                    });
                } else {
                    self.toast(format!("✔ {}: {msg}", op.describe()), false);
                }
            }
            Err(e) => self.toast(format!("✖ {} failed: {e}", op.describe()), true),
        }
        match op {
            Op::Put { .. } | Op::Delete { .. } if self.keys.opened => {
                self.reload_listing(out);
                self.get_value(out);
            }
            Op::LeaseRevoke { .. } => self.list_leases(out),
            _ => {}
        }
        out.push(Command::Poll);
    }

    /// The quorum impact of an action that keeps the membership as it is.
    fn unchanged(&self) -> Option<Impact> {
        Some(quorum::impact(&self.quorum(), Change::Keep))
    }

    fn confirm(&mut self, confirm: Confirm) {
        if self.config.read_only {
            self.toast("read-only: mutations are disabled", true);
            return;
        }
        self.modal = Some(Modal::Confirm(confirm));
    }

    fn row_by_name_or_id(&self, what: &str) -> Option<&MemberRow> {
        let what = what.trim();
        self.rows.iter().find(|r| {
            r.probe.member.name == what
                || format!("{:x}", r.probe.member.id)
                    == what.trim_start_matches("0x").to_lowercase()
                || r.probe.member.client_urls.iter().any(|u| u == what)
        })
    }

    fn member_target(&self, r: &MemberRow) -> String {
        format!(
            "{} ({:016x}, {}, {})",
            r.name(),
            r.probe.member.id,
            r.role.label(),
            if r.healthy { "healthy" } else { "unhealthy" }
        )
    }

    /// Builds the confirmation of an action on a member.
    fn confirm_member_action(&mut self, kind: ActionKind, row: &MemberRow) {
        let q = self.quorum();
        let id = row.probe.member.id;
        let target = self.member_target(row);
        match kind {
            ActionKind::Remove => {
                let mut lines =
                    vec!["The member is removed for good; its id is never reused.".to_string()];
                if row.role == Role::Leader {
                    lines.push("It is the leader: removing it triggers an election.".to_string());
                }
                let impact = quorum::impact(
                    &q,
                    Change::Remove {
                        voter: !row.probe.member.is_learner,
                        healthy: row.healthy,
                    },
                );
                self.confirm(Confirm::new(
                    "Remove member?".into(),
                    target,
                    lines,
                    Some(impact),
                    Op::MemberRemove { id },
                ));
            }
            ActionKind::Promote => {
                if !row.probe.member.is_learner {
                    self.toast(format!("{} is not a learner", row.name()), true);
                    return;
                }
                let impact = quorum::impact(
                    &q,
                    Change::Promote {
                        healthy: row.healthy,
                    },
                );
                let lines =
                    vec!["The learner must have caught up with the leader's log.".to_string()];
                self.confirm(Confirm::new(
                    "Promote learner?".into(),
                    target,
                    lines,
                    Some(impact),
                    Op::MemberPromote { id },
                ));
            }
            ActionKind::MoveLeader => {
                let Some(leader) = self.leader() else {
                    self.toast("no leader known: cannot move leadership", true);
                    return;
                };
                if leader.probe.member.id == id {
                    self.toast(format!("{} is already the leader", row.name()), true);
                    return;
                }
                if row.probe.member.is_learner
                    || row.role == Role::Down
                    || row.role == Role::Unstarted
                {
                    self.toast(
                        format!("{} cannot lead: it is a {}", row.name(), row.role.label()),
                        true,
                    );
                    return;
                }
                let Some(endpoint) = leader.probe.member.client_urls.first().cloned() else {
                    self.toast("the leader has no client URL", true);
                    return;
                };
                let lines = vec![
                    format!("Leadership moves from {} to {}.", leader.name(), row.name()),
                    "Writes pause for the hand-over (about one election timeout).".to_string(),
                ];
                self.confirm(Confirm::new(
                    "Move leader?".into(),
                    target,
                    lines,
                    self.unchanged(),
                    Op::MoveLeader {
                        id,
                        leader_endpoint: endpoint,
                    },
                ));
            }
            ActionKind::Defrag => {
                let Some(endpoint) = row.probe.member.client_urls.first().cloned() else {
                    self.toast(format!("{} has no client URL", row.name()), true);
                    return;
                };
                let lines = vec![
                    "The member blocks reads and writes while it rewrites its database."
                        .to_string(),
                ];
                let impact = ActionKind::Defrag
                    .change(Some(row))
                    .map(|change| quorum::impact(&q, change));
                self.confirm(Confirm::new(
                    "Defragment member?".into(),
                    target,
                    lines,
                    impact,
                    Op::Defrag { endpoint },
                ));
            }
            _ => {}
        }
    }

    fn start_action(&mut self, kind: ActionKind, out: &mut Vec<Command>) {
        let _ = out;
        if self.config.read_only {
            self.toast("read-only: mutations are disabled", true);
            return;
        }
        match kind {
            ActionKind::AddLearner | ActionKind::AddVoter => {
                self.input = Some(Input::Prompt(Prompt {
                    title: kind.label().to_string(),
                    fields: vec![
                        ("peer URL".to_string(), "http://".to_string()),
                        ("name".to_string(), String::new()),
                    ],
                    field: 0,
                    purpose: PromptPurpose::MemberAdd {
                        learner: kind == ActionKind::AddLearner,
                    },
                }));
            }
            ActionKind::Compact => {
                let rev = self.revision().map(|r| r.to_string()).unwrap_or_default();
                self.input = Some(Input::Prompt(Prompt {
                    title: "Compact keyspace".to_string(),
                    fields: vec![("revision".to_string(), rev)],
                    field: 0,
                    purpose: PromptPurpose::Compact,
                }));
            }
            ActionKind::DisarmAlarms => {
                let alarms = self
                    .cluster
                    .data
                    .as_ref()
                    .and_then(|s| s.alarms.as_ref().ok())
                    .map_or(0, Vec::len);
                self.confirm(Confirm::new(
                    "Disarm alarms?".into(),
                    format!("{alarms} active alarm(s) on the cluster"),
                    vec![
                        "Only disarm NOSPACE after freeing space (compact + defragment)."
                            .to_string(),
                    ],
                    self.unchanged(),
                    Op::AlarmDisarm,
                ));
            }
            _ => {
                let Some(row) = self.rows.get(self.member_selected).cloned() else {
                    self.toast("select a member first", true);
                    return;
                };
                self.confirm_member_action(kind, &row);
            }
        }
    }

    fn submit_prompt(&mut self, prompt: Prompt) {
        let value = |i: usize| {
            prompt
                .fields
                .get(i)
                .map(|f| f.1.trim().to_string())
                .unwrap_or_default()
        };
        match prompt.purpose {
            PromptPurpose::Put => {
                let key = prompt.fields[0].1.clone();
                let val = prompt.fields[1].1.clone();
                if key.is_empty() {
                    self.toast("a key cannot be empty", true);
                    return;
                }
                let exists = self.keys.value_key.as_deref() == Some(key.as_bytes());
                self.confirm(Confirm::new(
                    "Put key?".into(),
                    key.clone(),
                    vec![
                        format!(
                            "value: {} ({} bytes)",
                            crate::text::preview(val.as_bytes(), 48),
                            val.len()
                        ),
                        if exists {
                            "The key exists: this writes a new revision of it.".to_string()
                        } else {
                            "Creates the key, or overwrites it if it exists.".to_string()
                        },
                    ],
                    self.unchanged(),
                    Op::Put {
                        key: key.into_bytes(),
                        value: val.into_bytes(),
                    },
                ));
            }
            PromptPurpose::MemberAdd { learner } => {
                self.confirm_member_add(&value(0), &value(1), learner)
            }
            PromptPurpose::Compact => match value(0).parse::<i64>() {
                Ok(revision) if revision > 0 => {
                    let current = self.revision().unwrap_or(0);
                    self.confirm(Confirm::new(
                        "Compact keyspace?".into(),
                        format!("revision {revision} (current revision {current})"),
                        vec![
                            format!("Every revision before {revision} becomes unreadable on every member."),
                            "Watches from older revisions are cancelled. This cannot be undone.".to_string(),
                        ],
                        self.unchanged(),
                        Op::Compact { revision },
                    ));
                }
                _ => self.toast(format!("not a revision: {:?}", value(0)), true),
            },
        }
    }

    fn confirm_member_add(&mut self, url: &str, name: &str, learner: bool) {
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.len() <= "https://".len()
        {
            self.toast(format!("not a peer URL: {url:?}"), true);
            return;
        }
        let q = self.quorum();
        let impact = quorum::impact(
            &q,
            if learner {
                Change::AddLearner
            } else {
                Change::AddVoter
            },
        );
        let name = if name.is_empty() {
            "NEW_MEMBER".to_string()
        } else {
            name.to_string()
        };
        self.confirm(Confirm::new(
            if learner {
                "Add learner?".into()
            } else {
                "Add voting member?".into()
            },
            format!("{name} at {url}"),
            vec![
                "Then start it with --initial-cluster-state existing (the flags are shown next)."
                    .to_string(),
            ],
            Some(impact),
            Op::MemberAdd {
                peer_urls: vec![url.to_string()],
                learner,
                name,
            },
        ));
    }

    // ----- keys and input -----------------------------------------------

    fn on_paste(&mut self, text: &str) {
        match &mut self.input {
            Some(Input::Filter(s)) | Some(Input::Palette(s)) => s.push_str(text),
            Some(Input::Prompt(p)) => {
                if let Some(f) = p.fields.get_mut(p.field) {
                    f.1.push_str(text);
                }
            }
            None => {}
        }
    }

    fn on_key(&mut self, key: KeyEvent, out: &mut Vec<Command>) {
        if key.kind == KeyEventKind::Release {
            return;
        }
        if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            out.push(Command::Quit);
            return;
        }
        if self.modal.is_some() {
            self.on_modal_key(key, out);
            return;
        }
        if self.input.is_some() {
            self.on_input_key(key, out);
            return;
        }
        if self.help {
            self.on_help_key(key);
            return;
        }
        let Some(binding) = keymap::lookup(&key, self.scope(), self.config.read_only) else {
            return;
        };
        self.on_action(binding.action, out);
    }

    /// While the help overlay is open, the movement keys of the keymap
    /// scroll it (the drawing clamps the scroll to its length); Esc, `?`,
    /// `q` and Enter close it; nothing else gets through.
    fn on_help_key(&mut self, key: KeyEvent) {
        if matches!(
            key.code,
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Enter
        ) {
            self.help = false;
            self.help_scroll = 0;
            return;
        }
        let Some(binding) = keymap::lookup(&key, Scope::Global, true) else {
            return;
        };
        let page = self.page() as u16;
        self.help_scroll = match binding.action {
            Action::Down => self.help_scroll.saturating_add(1),
            Action::Up => self.help_scroll.saturating_sub(1),
            Action::PageDown => self.help_scroll.saturating_add(page),
            Action::PageUp => self.help_scroll.saturating_sub(page),
            Action::Top => 0,
            Action::Bottom => u16::MAX,
            _ => self.help_scroll,
        };
    }

    fn on_modal_key(&mut self, key: KeyEvent, out: &mut Vec<Command>) {
        let Some(modal) = self.modal.as_mut() else {
            return;
        };
        match modal {
            Modal::Info { .. } => {
                if matches!(key.code, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q')) {
                    self.modal = None;
                }
            }
            Modal::Confirm(c) => match key.code {
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => self.modal = None,
                KeyCode::Left
                | KeyCode::Right
                | KeyCode::Tab
                | KeyCode::BackTab
                | KeyCode::Char('h')
                | KeyCode::Char('l') => {
                    c.yes = !c.yes;
                }
                KeyCode::Char('!') if c.impact.as_ref().is_some_and(|i| i.refusal.is_some()) => {
                    c.overridden = true;
                }
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    let yes = key.code != KeyCode::Enter || c.yes;
                    if !yes {
                        self.modal = None;
                        return;
                    }
                    if let Some(reason) = c.refusal() {
                        let text = format!("refused: {reason} (press ! to override)");
                        self.toast(text, true);
                        return;
                    }
                    let op = c.op.clone();
                    self.modal = None;
                    self.running += 1;
                    if op.mutates_membership() {
                        self.toast(format!("… {}", op.describe()), false);
                    }
                    out.push(Command::Run(op));
                }
                _ => {}
            },
        }
    }

    fn on_input_key(&mut self, key: KeyEvent, out: &mut Vec<Command>) {
        let Some(input) = self.input.take() else {
            return;
        };
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match input {
            Input::Filter(mut text) => match key.code {
                KeyCode::Esc => {
                    self.keys.filter.clear();
                    self.clamp_key_selection();
                }
                KeyCode::Enter => {}
                KeyCode::Backspace => {
                    text.pop();
                    self.set_filter(text.clone(), out);
                    self.input = Some(Input::Filter(text));
                }
                KeyCode::Char('u') if ctrl => {
                    self.set_filter(String::new(), out);
                    self.input = Some(Input::Filter(String::new()));
                }
                KeyCode::Char(c) if !ctrl => {
                    text.push(c);
                    self.set_filter(text.clone(), out);
                    self.input = Some(Input::Filter(text));
                }
                _ => self.input = Some(Input::Filter(text)),
            },
            Input::Palette(mut text) => match key.code {
                KeyCode::Esc => self.completions.clear(),
                KeyCode::Enter => {
                    self.completions.clear();
                    self.run_palette(&text, out);
                }
                KeyCode::Tab => {
                    let done = crate::palette::complete(&text, &self.member_names());
                    if done.len() == 1 {
                        text = done[0].clone();
                        self.completions.clear();
                    } else {
                        if let Some(common) = crate::palette::common_prefix(&done)
                            && common.len() > text.len()
                        {
                            text = common;
                        }
                        self.completions = done;
                    }
                    self.input = Some(Input::Palette(text));
                }
                KeyCode::Backspace => {
                    text.pop();
                    self.completions = crate::palette::complete(&text, &self.member_names());
                    self.input = Some(Input::Palette(text));
                }
                KeyCode::Char(c) if !ctrl => {
                    text.push(c);
                    self.completions = crate::palette::complete(&text, &self.member_names());
                    self.input = Some(Input::Palette(text));
                }
                _ => self.input = Some(Input::Palette(text)),
            },
            Input::Prompt(mut p) => match key.code {
                KeyCode::Esc => {}
                KeyCode::Enter => {
                    if p.field + 1 < p.fields.len() {
                        p.field += 1;
                        self.input = Some(Input::Prompt(p));
                    } else {
                        self.submit_prompt(p);
                    }
                }
                KeyCode::Tab | KeyCode::Down => {
                    p.field = (p.field + 1) % p.fields.len();
                    self.input = Some(Input::Prompt(p));
                }
                KeyCode::BackTab | KeyCode::Up => {
                    p.field = (p.field + p.fields.len() - 1) % p.fields.len();
                    self.input = Some(Input::Prompt(p));
                }
                KeyCode::Backspace => {
                    p.fields[p.field].1.pop();
                    self.input = Some(Input::Prompt(p));
                }
                KeyCode::Char('u') if ctrl => {
                    p.fields[p.field].1.clear();
                    self.input = Some(Input::Prompt(p));
                }
                KeyCode::Char(c) if !ctrl => {
                    p.fields[p.field].1.push(c);
                    self.input = Some(Input::Prompt(p));
                }
                _ => self.input = Some(Input::Prompt(p)),
            },
        }
    }

    fn set_filter(&mut self, text: String, out: &mut Vec<Command>) {
        match self.view {
            View::Keys => {
                self.keys.filter = text;
                self.keys.selected = 0;
                self.clamp_key_selection();
                self.after_key_move(out);
            }
            _ => self.keys.filter = text,
        }
    }

    /// Member names for completion.
    pub fn member_names(&self) -> Vec<String> {
        self.rows.iter().map(MemberRow::name).collect()
    }

    fn switch_view(&mut self, view: View, out: &mut Vec<Command>) {
        self.view = view;
        match view {
            View::Keys if !self.keys.opened => self.open_prefix(Vec::new(), out),
            View::Leases if self.leases.data.is_none() && !self.leases.loading => {
                self.list_leases(out)
            }
            _ => {}
        }
    }

    fn run_palette(&mut self, text: &str, out: &mut Vec<Command>) {
        use crate::palette::Parsed;
        match crate::palette::parse(text) {
            Ok(Parsed::Quit) => {
                self.quit = true;
                out.push(Command::Quit);
            }
            Ok(Parsed::View(v)) => self.switch_view(v, out),
            Ok(Parsed::Keys(prefix)) => {
                self.view = View::Keys;
                self.open_prefix(prefix.into_bytes(), out);
            }
            Ok(Parsed::Flat(flat)) => {
                self.view = View::Keys;
                if self.keys.flat != flat || !self.keys.opened {
                    self.keys.flat = flat;
                    let prefix = self.keys.prefix.clone();
                    self.open_prefix(prefix, out);
                }
            }
            Ok(Parsed::Help) => self.help = true,
            Ok(Parsed::Refresh) => self.refresh(out),
            Ok(Parsed::MemberAdd { url, learner, name }) => {
                if self.config.read_only {
                    self.toast("read-only: mutations are disabled", true);
                } else {
                    self.confirm_member_add(&url, &name, learner);
                }
            }
            Ok(Parsed::OnMember(kind, who)) => {
                if self.config.read_only {
                    self.toast("read-only: mutations are disabled", true);
                } else {
                    match self.row_by_name_or_id(&who).cloned() {
                        Some(row) => self.confirm_member_action(kind, &row),
                        None => self.toast(format!("no member {who:?}"), true),
                    }
                }
            }
            Ok(Parsed::Action(kind)) => self.start_action(kind, out),
            Ok(Parsed::Compact(rev)) => {
                self.start_action(ActionKind::Compact, out);
                // `:compact REV` skips the form; `:compact` leaves it open.
                if let Some(rev) = rev
                    && let Some(Input::Prompt(mut p)) = self.input.take()
                {
                    p.fields[0].1 = rev.to_string();
                    self.submit_prompt(p);
                }
            }
            Err(e) => self.toast(e, true),
        }
    }

    fn refresh(&mut self, out: &mut Vec<Command>) {
        out.push(Command::Poll);
        match self.view {
            View::Keys if self.keys.opened => {
                self.reload_listing(out);
                self.get_value(out);
            }
            View::Leases => self.list_leases(out),
            _ => {}
        }
    }

    fn on_action(&mut self, action: Action, out: &mut Vec<Command>) {
        match action {
            Action::Quit => {
                self.quit = true;
                out.push(Command::Quit);
            }
            Action::Help => self.help = true,
            Action::View(i) => {
                if let Some(v) = View::ALL.get(usize::from(i)) {
                    self.switch_view(*v, out);
                }
            }
            Action::Refresh => self.refresh(out),
            Action::Freeze => {
                self.paused = !self.paused;
                out.push(Command::SetPaused(self.paused));
            }
            Action::Filter => {
                if self.view == View::Keys {
                    self.keys.pane = KeysPane::List;
                    self.input = Some(Input::Filter(self.keys.filter.clone()));
                } else {
                    self.toast("/ filters the Keys view (2)", false);
                }
            }
            Action::Palette => {
                self.completions = crate::palette::complete("", &self.member_names());
                self.input = Some(Input::Palette(String::new()));
            }
            _ => match self.view {
                View::Cluster => self.cluster_action(action, out),
                View::Keys => self.keys_action(action, out),
                View::Leases => self.leases_action(action, out),
                View::Actions => self.actions_action(action, out),
            },
        }
    }

    fn page(&self) -> usize {
        usize::from(self.size.1.saturating_sub(8)).max(1)
    }

    fn cluster_action(&mut self, action: Action, out: &mut Vec<Command>) {
        let n = self.rows.len();
        if let Some(i) = move_selection(self.member_selected, n, action, self.page()) {
            self.member_selected = i;
        } else if action == Action::Enter && n > 0 {
            self.switch_view(View::Actions, out);
            self.actions_pane = ActionsPane::Actions;
        }
    }

    fn leases_action(&mut self, action: Action, _out: &mut Vec<Command>) {
        let n = self.leases.data.as_ref().map_or(0, Vec::len);
        if let Some(i) = move_selection(self.lease_selected, n, action, self.page()) {
            self.lease_selected = i;
        } else if action == Action::Delete {
            let Some(lease) = self
                .leases
                .data
                .as_ref()
                .and_then(|l| l.get(self.lease_selected))
                .cloned()
            else {
                return;
            };
            let keys: Vec<String> = lease
                .keys
                .iter()
                .take(5)
                .map(|k| tree::display_key(k))
                .collect();
            let mut lines = vec![format!(
                "Its {} attached key(s) are deleted with it{}",
                lease.keys.len(),
                if keys.is_empty() {
                    ".".to_string()
                } else {
                    format!(": {}", keys.join(", "))
                }
            )];
            if lease.keys.len() > 5 {
                lines.push(format!("… and {} more", lease.keys.len() - 5));
            }
            self.confirm(Confirm::new(
                "Revoke lease?".into(),
                format!("lease {:016x} (TTL {}s)", lease.id, lease.granted_ttl),
                lines,
                self.unchanged(),
                Op::LeaseRevoke { id: lease.id },
            ));
        }
    }

    fn actions_action(&mut self, action: Action, out: &mut Vec<Command>) {
        match action {
            Action::NextPane | Action::PrevPane => {
                self.actions_pane = match self.actions_pane {
                    ActionsPane::Actions => ActionsPane::Targets,
                    ActionsPane::Targets => ActionsPane::Actions,
                };
            }
            Action::Enter => {
                if let Some(kind) = ActionKind::ALL.get(self.action_selected) {
                    self.start_action(*kind, out);
                }
            }
            Action::Back => self.actions_pane = ActionsPane::Actions,
            _ => match self.actions_pane {
                ActionsPane::Actions => {
                    if let Some(i) = move_selection(
                        self.action_selected,
                        ActionKind::ALL.len(),
                        action,
                        self.page(),
                    ) {
                        self.action_selected = i;
                    }
                }
                ActionsPane::Targets => {
                    if let Some(i) =
                        move_selection(self.member_selected, self.rows.len(), action, self.page())
                    {
                        self.member_selected = i;
                    }
                }
            },
        }
    }

    fn keys_action(&mut self, action: Action, out: &mut Vec<Command>) {
        match action {
            Action::NextPane => {
                self.keys.pane = match self.keys.pane {
                    KeysPane::List => KeysPane::Value,
                    KeysPane::Value => KeysPane::History,
                    KeysPane::History => KeysPane::List,
                };
                return;
            }
            Action::PrevPane => {
                self.keys.pane = match self.keys.pane {
                    KeysPane::List => KeysPane::History,
                    KeysPane::Value => KeysPane::List,
                    KeysPane::History => KeysPane::Value,
                };
                return;
            }
            Action::ToggleFlat => {
                self.keys.flat = !self.keys.flat;
                let prefix = self.keys.prefix.clone();
                self.open_prefix(prefix, out);
                return;
            }
            Action::Watch => {
                if let Some(w) = self.keys.watch.take() {
                    out.push(Command::Unwatch { id: w.id });
                } else {
                    self.start_watch(out);
                }
                return;
            }
            Action::NewKey | Action::Edit => {
                let key = if action == Action::Edit {
                    self.keys
                        .value_key
                        .clone()
                        .unwrap_or_else(|| self.keys.prefix.clone())
                } else {
                    self.keys.prefix.clone()
                };
                let value = match (&self.keys.value.data, action) {
                    (Some(Some(kv)), Action::Edit) => {
                        String::from_utf8_lossy(&kv.value).into_owned()
                    }
                    _ => String::new(),
                };
                self.input = Some(Input::Prompt(Prompt {
                    title: if action == Action::Edit {
                        "Put value".into()
                    } else {
                        "Put new key".into()
                    },
                    fields: vec![
                        (
                            "key".to_string(),
                            String::from_utf8_lossy(&key).into_owned(),
                        ),
                        ("value".to_string(), value),
                    ],
                    field: usize::from(action == Action::Edit),
                    purpose: PromptPurpose::Put,
                }));
                return;
            }
            Action::Delete => {
                let Some(key) = self.keys.value_key.clone() else {
                    self.toast("select a key (not a dir) to delete it", true);
                    return;
                };
                let meta = match &self.keys.value.data {
                    Some(Some(kv)) => format!(
                        "version {}, mod revision {}{}",
                        kv.version,
                        kv.mod_revision,
                        if kv.lease != 0 {
                            format!(", lease {:016x}", kv.lease)
                        } else {
                            String::new()
                        }
                    ),
                    _ => "its current value".to_string(),
                };
                self.confirm(Confirm::new(
                    "Delete key?".into(),
                    tree::display_key(&key),
                    vec![
                        format!("Deletes exactly this key ({meta})."),
                        "Older revisions stay readable until the next compaction.".to_string(),
                    ],
                    self.unchanged(),
                    Op::Delete { key },
                ));
                return;
            }
            Action::Diff => {
                self.keys.diff = !self.keys.diff;
                return;
            }
            _ => {}
        }
        match self.keys.pane {
            KeysPane::List => self.keys_list_action(action, out),
            KeysPane::Value => match action {
                Action::Down => self.keys.value_scroll = self.keys.value_scroll.saturating_add(1),
                Action::Up => self.keys.value_scroll = self.keys.value_scroll.saturating_sub(1),
                Action::PageDown => {
                    self.keys.value_scroll =
                        self.keys.value_scroll.saturating_add(self.page() as u16)
                }
                Action::PageUp => {
                    self.keys.value_scroll =
                        self.keys.value_scroll.saturating_sub(self.page() as u16)
                }
                Action::Top => self.keys.value_scroll = 0,
                Action::Back => self.keys.pane = KeysPane::List,
                _ => {}
            },
            KeysPane::History => {
                let n = self
                    .keys
                    .history
                    .data
                    .as_ref()
                    .map_or(0, |h| h.entries.len());
                if let Some(i) = move_selection(self.keys.history_selected, n, action, self.page())
                {
                    self.keys.history_selected = i;
                    self.keys.value_scroll = 0;
                } else if action == Action::Back {
                    self.keys.pane = KeysPane::List;
                }
            }
        }
    }

    fn keys_list_action(&mut self, action: Action, out: &mut Vec<Command>) {
        let n = self.visible_entries().len();
        if let Some(i) = move_selection(self.keys.selected, n, action, self.page()) {
            self.keys.selected = i;
            // G follows the end of the listing while its pages arrive.
            self.keys.follow_bottom = action == Action::Bottom
                && self
                    .keys
                    .listing
                    .data
                    .as_ref()
                    .is_some_and(Listing::has_more);
            if self.keys.follow_bottom {
                self.toast("more keys are loading…", false);
            }
            self.after_key_move(out);
            return;
        }
        match action {
            Action::Enter => match self.selected_entry().map(|e| (e.kind, e.full.clone())) {
                Some((EntryKind::Dir, full)) => self.open_prefix(full, out),
                Some((EntryKind::Key, _)) => self.keys.pane = KeysPane::Value,
                None => {}
            },
            Action::Back => {
                if !self.keys.filter.is_empty() {
                    self.keys.filter.clear();
                    self.clamp_key_selection();
                    self.after_key_move(out);
                } else if !self.keys.prefix.is_empty() && !self.keys.flat {
                    let child = self.keys.prefix.clone();
                    let parent = tree::parent(&child);
                    self.open_prefix(parent, out);
                    self.keys.reselect = Some(child);
                } else if !self.keys.prefix.is_empty() {
                    self.open_prefix(Vec::new(), out);
                }
            }
            _ => {}
        }
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

/// New selection index for a movement action, or None if `action` is not one.
pub fn move_selection(current: usize, len: usize, action: Action, page: usize) -> Option<usize> {
    let last = len.saturating_sub(1);
    let next = match action {
        Action::Up => current.saturating_sub(1),
        Action::Down => (current + 1).min(last),
        Action::Top => 0,
        Action::Bottom => last,
        Action::PageUp => current.saturating_sub(page),
        Action::PageDown => (current + page).min(last),
        _ => return None,
    };
    Some(next)
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
