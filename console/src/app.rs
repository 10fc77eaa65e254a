//! The console's core: the dispatcher and the state it routes to, with one
//! `update(event) -> Vec<Command>`.
//!
//! No I/O happens here. Terminal input, clock ticks and everything the data
//! layer learns arrive as [`Event`]s; the dispatcher turns each into an
//! [`Action`] (keys through the keymap table, or to the overlay that has the
//! keyboard), routes it to the component that owns it, and runs the
//! follow-up actions the components answer with, in order, until none is
//! left. [`Action::Io`] leaves as the [`Command`]s the data layer runs.
//! Time only comes from events (`Tick` and the `at` of each answer), so
//! tests are deterministic.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::action::Action;
use crate::cluster_state::ClusterState;
use crate::components::actions::ActionsView;
use crate::components::chrome::Toasts;
use crate::components::cluster::ClusterView;
use crate::components::help::HelpView;
use crate::components::keys::KeysView;
use crate::components::leases::LeasesView;
use crate::components::modal::ModalView;
use crate::components::palette::PaletteView;
use crate::components::prompt::{PromptPurpose, PromptView};
use crate::components::{Component, Ctx, Shared};
use crate::keymap::{self, Intent, Scope};
use crate::model::{ClusterSnapshot, KeyPage, KeyValue, Lease, WatchEvent};
use crate::tree;

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

    /// The keymap scope of the view.
    pub fn scope(self) -> Scope {
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

/// The whole console: the shared state, one component per view and
/// overlay, and the dispatcher between them.
#[derive(Debug)]
pub struct App {
    /// What every component may read.
    pub shared: Shared,
    /// Cluster view.
    pub cluster: ClusterView,
    /// Keys view.
    pub keys: KeysView,
    /// Leases view.
    pub leases: LeasesView,
    /// Actions view.
    pub actions: ActionsView,
    /// Help overlay.
    pub help: HelpView,
    /// Command palette.
    pub palette: PaletteView,
    /// Forms.
    pub prompt: PromptView,
    /// Modal dialogs.
    pub modal: ModalView,
    /// Toasts.
    pub toasts: Toasts,
    /// Set when the console should exit.
    pub quit: bool,
    next_id: u64,
}

/// Who an action is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    Cluster,
    Keys,
    Leases,
    Actions,
    Help,
    Palette,
    Prompt,
    Modal,
    Toasts,
}

impl App {
    /// A fresh console state at `now` (monotonic) and `unix_now` (wall clock).
    pub fn new(config: Config, now: Instant, unix_now: f64) -> Self {
        Self {
            shared: Shared {
                config,
                now,
                unix_now,
                size: (80, 24),
                view: View::Cluster,
                paused: false,
                running: 0,
                cluster: ClusterState::default(),
            },
            cluster: ClusterView,
            keys: KeysView::default(),
            leases: LeasesView::default(),
            actions: ActionsView::default(),
            help: HelpView::default(),
            palette: PaletteView::default(),
            prompt: PromptView::default(),
            modal: ModalView::default(),
            toasts: Toasts::default(),
            quit: false,
            next_id: 0,
        }
    }

    /// Commands to run at start-up.
    pub fn start(&mut self) -> Vec<Command> {
        vec![Command::Poll]
    }

    /// Whether a line is being typed (palette, form or filter).
    pub fn typing(&self) -> bool {
        self.palette.is_open() || self.prompt.is_open() || self.keys.editing_filter
    }

    /// Applies one event; returns the commands for the data layer.
    pub fn update(&mut self, event: Event) -> Vec<Command> {
        let mut queue = VecDeque::new();
        if let Some(action) = self.translate(event) {
            queue.push_back(action);
        }
        let mut out = Vec::new();
        while let Some(action) = queue.pop_front() {
            self.dispatch(action, &mut queue, &mut out);
        }
        out
    }

    /// What an event means: keys go to the overlay that has the keyboard,
    /// or through the keymap of the view on screen.
    fn translate(&self, event: Event) -> Option<Action> {
        match event {
            Event::Key(key) => {
                if key.kind == KeyEventKind::Release {
                    return None;
                }
                if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
                    return Some(Action::Quit);
                }
                if self.keyboard_owner().is_some() {
                    return Some(Action::Key(key));
                }
                let scope = self.shared.view.scope();
                let binding = keymap::lookup(&key, scope, self.shared.config.read_only)?;
                Some(from_intent(binding.intent))
            }
            Event::Paste(text) => Some(Action::Paste(text)),
            Event::Tick(now, unix) => Some(Action::Tick(now, unix)),
            Event::Resize(w, h) => Some(Action::Resize(w, h)),
            data => Some(Action::Data(data)),
        }
    }

    /// The component that owns what a data-layer answer is about.
    fn owner_of(event: &Event) -> Option<Target> {
        match event {
            Event::Keys { .. }
            | Event::Value { .. }
            | Event::History { .. }
            | Event::Watch { .. } => Some(Target::Keys),
            Event::Leases { .. } => Some(Target::Leases),
            _ => None,
        }
    }

    /// The overlay with the keyboard, if any (in this order of precedence).
    fn keyboard_owner(&self) -> Option<Target> {
        if self.modal.is_open() {
            Some(Target::Modal)
        } else if self.prompt.is_open() {
            Some(Target::Prompt)
        } else if self.palette.is_open() {
            Some(Target::Palette)
        } else if self.keys.editing_filter {
            Some(Target::Keys)
        } else if self.help.open {
            Some(Target::Help)
        } else {
            None
        }
    }

    fn focused_view(&self) -> Target {
        match self.shared.view {
            View::Cluster => Target::Cluster,
            View::Keys => Target::Keys,
            View::Leases => Target::Leases,
            View::Actions => Target::Actions,
        }
    }

    /// Runs `action` through `target`; its follow-ups join the queue after
    /// what it sent.
    fn route(&mut self, target: Target, action: Action, queue: &mut VecDeque<Action>) {
        let mut sent = Vec::new();
        let mut ctx = Ctx::new(&self.shared, &mut self.next_id, &mut sent);
        let component: &mut dyn Component = match target {
            Target::Cluster => &mut self.cluster,
            Target::Keys => &mut self.keys,
            Target::Leases => &mut self.leases,
            Target::Actions => &mut self.actions,
            Target::Help => &mut self.help,
            Target::Palette => &mut self.palette,
            Target::Prompt => &mut self.prompt,
            Target::Modal => &mut self.modal,
            Target::Toasts => &mut self.toasts,
        };
        let follow_up = component.update(action, &mut ctx);
        queue.extend(sent);
        queue.extend(follow_up);
    }

    /// Applies one action: the console-wide ones here, the others in the
    /// component that owns them.
    fn dispatch(&mut self, action: Action, queue: &mut VecDeque<Action>, out: &mut Vec<Command>) {
        match action {
            Action::Io(command) => out.push(command),
            Action::Quit => {
                self.quit = true;
                queue.push_back(Action::Io(Command::Quit));
            }
            Action::Tick(now, unix) => {
                self.shared.now = now;
                self.shared.unix_now = unix;
                self.route(Target::Toasts, action, queue);
            }
            Action::Resize(w, h) => self.shared.size = (w, h),
            Action::SwitchView(view) => {
                self.shared.view = view;
                self.route(self.focused_view(), Action::Shown, queue);
            }
            Action::ActOnSelected => {
                queue.push_back(Action::SwitchView(View::Actions));
                self.route(Target::Actions, action, queue);
            }
            Action::OpenPrefix(_) | Action::SetFlat(_) => {
                self.shared.view = View::Keys;
                self.route(Target::Keys, action, queue);
            }
            Action::Refresh => {
                queue.push_back(Action::Io(Command::Poll));
                let view = self.focused_view();
                self.route(view, action, queue);
            }
            Action::Freeze => {
                self.shared.paused = !self.shared.paused;
                queue.push_back(Action::Io(Command::SetPaused(self.shared.paused)));
            }
            Action::SelectMember(i) => {
                let n = self.shared.cluster.rows.len();
                self.shared.cluster.selected = i.min(n.saturating_sub(1));
            }
            Action::Toast { .. } => self.route(Target::Toasts, action, queue),
            Action::OpenFilter if self.shared.view == View::Keys => {
                self.route(Target::Keys, action, queue)
            }
            Action::OpenFilter => queue.push_back(Action::Toast {
                text: "/ filters the Keys view (2)".into(),
                error: false,
            }),
            Action::OpenHelp => self.route(Target::Help, action, queue),
            Action::OpenPalette => self.route(Target::Palette, action, queue),
            Action::Ask(_) => self.route(Target::Prompt, action, queue),
            Action::Answered(ref form) => {
                let target = match form.purpose {
                    PromptPurpose::Put => Target::Keys,
                    PromptPurpose::MemberAdd { .. } | PromptPurpose::Compact => Target::Actions,
                };
                self.route(target, action, queue);
            }
            Action::Confirm(_) if self.shared.config.read_only => {
                queue.push_back(Action::Toast {
                    text: "read-only: mutations are disabled".into(),
                    error: true,
                });
            }
            Action::Confirm(_) | Action::Inform { .. } => self.route(Target::Modal, action, queue),
            Action::Run(op) => {
                self.shared.running += 1;
                if op.mutates_membership() {
                    queue.push_back(Action::Toast {
                        text: format!("… {}", op.describe()),
                        error: false,
                    });
                }
                queue.push_back(Action::Io(Command::Run(op)));
            }
            Action::StartAction(_)
            | Action::OnMember(..)
            | Action::AddMember { .. }
            | Action::Compact(_) => self.route(Target::Actions, action, queue),
            Action::Key(_) | Action::Paste(_) => {
                if let Some(target) = self.keyboard_owner() {
                    self.route(target, action, queue);
                }
            }
            Action::Intent(_) => {
                let view = self.focused_view();
                self.route(view, action, queue);
            }
            Action::Data(Event::Cluster { seq, at, result }) => {
                self.on_cluster(seq, at, result, queue)
            }
            Action::Data(Event::Done { op, result }) => self.on_done(op, result, queue),
            Action::Data(event) => {
                if let Some(target) = Self::owner_of(&event) {
                    self.route(target, Action::Data(event), queue);
                }
            }
            Action::Shown | Action::Polled { .. } | Action::Mutated(_) => {}
        }
    }

    /// A cluster poll: applied to the shared state, then the views that
    /// follow the polls hear of it.
    fn on_cluster(
        &mut self,
        seq: u64,
        at: Instant,
        result: Result<ClusterSnapshot, String>,
        queue: &mut VecDeque<Action>,
    ) {
        let unix_now = self.shared.unix_now;
        if !self.shared.cluster.apply(seq, at, result, unix_now) {
            return; // An older answer never overwrites a newer one.
        }
        let ok = self.shared.cluster.snapshot.error.is_none();
        self.route(Target::Keys, Action::Polled { ok }, queue);
        self.route(Target::Leases, Action::Polled { ok }, queue);
    }

    /// A mutation finished: say how it went, let the views re-read what it
    /// changed, and poll.
    fn on_done(&mut self, op: Op, result: Result<String, String>, queue: &mut VecDeque<Action>) {
        self.shared.running = self.shared.running.saturating_sub(1);
        // The "… running" toast of this operation has served its purpose.
        self.toasts.dismiss(&format!("… {}", op.describe()));
        let news = match result {
            Ok(msg) if matches!(op, Op::MemberAdd { .. }) => Action::Inform {
                title: "Member added".to_string(),
                lines: msg.lines().map(str::to_string).collect(),
            },
            Ok(msg) => Action::Toast {
                text: format!("✔ {}: {msg}", op.describe()),
                error: false,
            },
            Err(e) => Action::Toast {
                text: format!("✖ {} failed: {e}", op.describe()),
                error: true,
            },
        };
        queue.push_back(news);
        self.route(Target::Keys, Action::Mutated(op.clone()), queue);
        self.route(Target::Leases, Action::Mutated(op), queue);
        queue.push_back(Action::Io(Command::Poll));
    }
}

/// The action a key's meaning asks for: the console-wide ones directly,
/// the others for the focused view.
fn from_intent(intent: Intent) -> Action {
    match intent {
        Intent::Quit => Action::Quit,
        Intent::Help => Action::OpenHelp,
        Intent::View(i) => match View::ALL.get(usize::from(i)) {
            Some(view) => Action::SwitchView(*view),
            None => Action::Intent(intent),
        },
        Intent::Refresh => Action::Refresh,
        Intent::Freeze => Action::Freeze,
        Intent::Filter => Action::OpenFilter,
        Intent::Palette => Action::OpenPalette,
        other => Action::Intent(other),
    }
}
