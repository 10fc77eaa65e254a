//! The Actions view: membership and maintenance actions on the selected
//! member, with what each does to the quorum before it runs. It also builds
//! every such confirmation (from the view, the palette or a filled-in
//! form): each names its target and quorum impact; none runs anything
//! itself, "yes" in the modal does.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::modal::Confirm;
use super::prompt::{Prompt, PromptPurpose};
use super::{Component, Ctx, DrawCtx, Shared, move_selection};
use crate::action::Action;
use crate::app::Op;
use crate::cluster_state::{MemberRow, Role};
use crate::keymap::Intent;
use crate::quorum::{self, Change, Impact};

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

/// The Actions view component.
#[derive(Debug)]
pub struct ActionsView {
    /// Focused pane.
    pub pane: ActionsPane,
    /// Selected action.
    pub selected: usize,
}

impl Default for ActionsView {
    fn default() -> Self {
        Self {
            pane: ActionsPane::Actions,
            selected: 0,
        }
    }
}

fn toast(text: impl Into<String>) -> Option<Action> {
    Some(Action::Toast {
        text: text.into(),
        error: true,
    })
}

fn confirm(
    title: &str,
    target: String,
    lines: Vec<String>,
    impact: Option<Impact>,
    op: Op,
) -> Option<Action> {
    Some(Action::Confirm(Box::new(Confirm::new(
        title.to_string(),
        target,
        lines,
        impact,
        op,
    ))))
}

/// The quorum impact of an action that keeps the membership as it is.
fn unchanged(shared: &Shared) -> Option<Impact> {
    Some(quorum::impact(&shared.cluster.quorum(), Change::Keep))
}

fn member_target(r: &MemberRow) -> String {
    format!(
        "{} ({:016x}, {}, {})",
        r.name(),
        r.probe.member.id,
        r.role.label(),
        if r.healthy { "healthy" } else { "unhealthy" }
    )
}

/// The confirmation of `kind` on the member `row`.
fn confirm_member_action(shared: &Shared, kind: ActionKind, row: &MemberRow) -> Option<Action> {
    let cluster = &shared.cluster;
    let q = cluster.quorum();
    let id = row.probe.member.id;
    let target = member_target(row);
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
            confirm(
                "Remove member?",
                target,
                lines,
                Some(impact),
                Op::MemberRemove { id },
            )
        }
        ActionKind::Promote => {
            if !row.probe.member.is_learner {
                return toast(format!("{} is not a learner", row.name()));
            }
            let impact = quorum::impact(
                &q,
                Change::Promote {
                    healthy: row.healthy,
                },
            );
            let lines = vec!["The learner must have caught up with the leader's log.".to_string()];
            confirm(
                "Promote learner?",
                target,
                lines,
                Some(impact),
                Op::MemberPromote { id },
            )
        }
        ActionKind::MoveLeader => {
            let Some(leader) = cluster.leader() else {
                return toast("no leader known: cannot move leadership");
            };
            if leader.probe.member.id == id {
                return toast(format!("{} is already the leader", row.name()));
            }
            if row.probe.member.is_learner || row.role == Role::Down || row.role == Role::Unstarted
            {
                return toast(format!(
                    "{} cannot lead: it is a {}",
                    row.name(),
                    row.role.label()
                ));
            }
            let Some(endpoint) = leader.probe.member.client_urls.first().cloned() else {
                return toast("the leader has no client URL");
            };
            let lines = vec![
                format!("Leadership moves from {} to {}.", leader.name(), row.name()),
                "Writes pause for the hand-over (about one election timeout).".to_string(),
            ];
            confirm(
                "Move leader?",
                target,
                lines,
                unchanged(shared),
                Op::MoveLeader {
                    id,
                    leader_endpoint: endpoint,
                },
            )
        }
        ActionKind::Defrag => {
            let Some(endpoint) = row.probe.member.client_urls.first().cloned() else {
                return toast(format!("{} has no client URL", row.name()));
            };
            let lines = vec![
                "The member blocks reads and writes while it rewrites its database.".to_string(),
            ];
            let impact = ActionKind::Defrag
                .change(Some(row))
                .map(|change| quorum::impact(&q, change));
            confirm(
                "Defragment member?",
                target,
                lines,
                impact,
                Op::Defrag { endpoint },
            )
        }
        _ => None,
    }
}

/// The confirmation of adding a member at peer URL `url`.
fn confirm_member_add(shared: &Shared, url: &str, name: &str, learner: bool) -> Option<Action> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() <= "https://".len()
    {
        return toast(format!("not a peer URL: {url:?}"));
    }
    let impact = quorum::impact(
        &shared.cluster.quorum(),
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
    confirm(
        if learner {
            "Add learner?"
        } else {
            "Add voting member?"
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
    )
}

/// The confirmation of compacting to `revision` (typed as text).
fn confirm_compact(shared: &Shared, revision: &str) -> Option<Action> {
    match revision.parse::<i64>() {
        Ok(revision) if revision > 0 => {
            let current = shared.cluster.revision().unwrap_or(0);
            confirm(
                "Compact keyspace?",
                format!("revision {revision} (current revision {current})"),
                vec![
                    format!("Every revision before {revision} becomes unreadable on every member."),
                    "Watches from older revisions are cancelled. This cannot be undone."
                        .to_string(),
                ],
                unchanged(shared),
                Op::Compact { revision },
            )
        }
        _ => toast(format!("not a revision: {revision:?}")),
    }
}

/// What running `kind` starts: a form, a confirmation, or a refusal.
fn start_action(shared: &Shared, kind: ActionKind) -> Option<Action> {
    if shared.config.read_only {
        return toast("read-only: mutations are disabled");
    }
    match kind {
        ActionKind::AddLearner | ActionKind::AddVoter => Some(Action::Ask(Prompt {
            title: kind.label().to_string(),
            fields: vec![
                ("peer URL".to_string(), "http://".to_string()),
                ("name".to_string(), String::new()),
            ],
            field: 0,
            purpose: PromptPurpose::MemberAdd {
                learner: kind == ActionKind::AddLearner,
            },
        })),
        ActionKind::Compact => {
            let rev = shared
                .cluster
                .revision()
                .map(|r| r.to_string())
                .unwrap_or_default();
            Some(Action::Ask(Prompt {
                title: "Compact keyspace".to_string(),
                fields: vec![("revision".to_string(), rev)],
                field: 0,
                purpose: PromptPurpose::Compact,
            }))
        }
        ActionKind::DisarmAlarms => {
            let alarms = shared
                .cluster
                .snapshot
                .data
                .as_ref()
                .and_then(|s| s.alarms.as_ref().ok())
                .map_or(0, Vec::len);
            confirm(
                "Disarm alarms?",
                format!("{alarms} active alarm(s) on the cluster"),
                vec!["Only disarm NOSPACE after freeing space (compact + defragment).".to_string()],
                unchanged(shared),
                Op::AlarmDisarm,
            )
        }
        _ => match shared.cluster.selected_row() {
            Some(row) => confirm_member_action(shared, kind, row),
            None => toast("select a member first"),
        },
    }
}

impl ActionsView {
    fn on_intent(&mut self, intent: Intent, shared: &Shared) -> Option<Action> {
        match intent {
            Intent::NextPane | Intent::PrevPane => {
                self.pane = match self.pane {
                    ActionsPane::Actions => ActionsPane::Targets,
                    ActionsPane::Targets => ActionsPane::Actions,
                };
                None
            }
            Intent::Enter => ActionKind::ALL
                .get(self.selected)
                .and_then(|kind| start_action(shared, *kind)),
            Intent::Back => {
                self.pane = ActionsPane::Actions;
                None
            }
            _ => match self.pane {
                ActionsPane::Actions => {
                    if let Some(i) =
                        move_selection(self.selected, ActionKind::ALL.len(), intent, shared.page())
                    {
                        self.selected = i;
                    }
                    None
                }
                ActionsPane::Targets => move_selection(
                    shared.cluster.selected,
                    shared.cluster.rows.len(),
                    intent,
                    shared.page(),
                )
                .map(Action::SelectMember),
            },
        }
    }
}

impl Component for ActionsView {
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action> {
        let shared = ctx.shared;
        match action {
            Action::Intent(intent) => self.on_intent(intent, shared),
            Action::ActOnSelected => {
                self.pane = ActionsPane::Actions;
                None
            }
            Action::StartAction(kind) => start_action(shared, kind),
            Action::OnMember(kind, who) => match shared.cluster.row_by_name_or_id(&who) {
                Some(row) => confirm_member_action(shared, kind, row),
                None => toast(format!("no member {who:?}")),
            },
            Action::AddMember { url, name, learner } => {
                confirm_member_add(shared, &url, &name, learner)
            }
            // `:compact REV` skips the form; `:compact` opens it.
            Action::Compact(Some(rev)) if !shared.config.read_only => {
                confirm_compact(shared, &rev.to_string())
            }
            Action::Compact(_) => start_action(shared, ActionKind::Compact),
            Action::Answered(form) => {
                let value = |i: usize| {
                    form.fields
                        .get(i)
                        .map(|f| f.1.trim().to_string())
                        .unwrap_or_default()
                };
                match form.purpose {
                    PromptPurpose::MemberAdd { learner } => {
                        confirm_member_add(shared, &value(0), &value(1), learner)
                    }
                    PromptPurpose::Compact => confirm_compact(shared, &value(0)),
                    PromptPurpose::Put => None,
                }
            }
            _ => None,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        draw_actions(frame, area, self, ctx);
    }
}

fn draw_actions(frame: &mut Frame, area: Rect, view: &ActionsView, ctx: &DrawCtx) {
    let (app, theme) = (ctx.shared, ctx.theme);
    let [left, right] =
        Layout::horizontal([Constraint::Length(26), Constraint::Min(20)]).areas(area);
    let title = if app.config.read_only {
        " Actions (read-only: disabled) "
    } else {
        " Actions "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(view.pane == ActionsPane::Actions))
        .title(title);
    let rows: Vec<Row> = ActionKind::ALL
        .iter()
        .map(|a| {
            let row = Row::new(vec![Cell::from(a.label())]);
            if app.config.read_only {
                row.style(theme.dim())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(rows, [Constraint::Percentage(100)])
        .block(block)
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(Some(view.selected));
    frame.render_stateful_widget(table, left, &mut state);

    let kind = ActionKind::ALL[view.selected.min(ActionKind::ALL.len() - 1)];
    let [targets, info] = Layout::vertical([
        Constraint::Length(
            (app.cluster.rows.len() as u16 + 3)
                .min(right.height / 2)
                .max(3),
        ),
        Constraint::Min(3),
    ])
    .areas(right);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(view.pane == ActionsPane::Targets))
        .title(" Target member (Tab to choose) ");
    let rows: Vec<Row> = app
        .cluster
        .rows
        .iter()
        .map(|r| {
            Row::new(vec![
                Cell::from(r.name()),
                Cell::from(Span::styled(r.role.label(), theme.role(r.role))),
                Cell::from(if r.healthy {
                    "✔ healthy"
                } else {
                    "✖ unhealthy"
                }),
                Cell::from(r.probe.member.peer_urls.join(",")),
            ])
        })
        .collect();
    let name_width = app
        .cluster
        .rows
        .iter()
        .map(|r| r.name().chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 24) as u16;
    let table = Table::new(
        rows,
        [
            Constraint::Length(name_width),
            Constraint::Length(11),
            Constraint::Length(11),
            Constraint::Min(10),
        ],
    )
    .block(block)
    .row_highlight_style(theme.selected())
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(if app.cluster.rows.is_empty() {
        None
    } else {
        Some(app.cluster.selected)
    });
    frame.render_stateful_widget(table, targets, &mut state);

    let q = app.cluster.quorum();
    let mut lines = vec![
        Line::from(Span::styled(kind.label(), theme.bold(Color::White))),
        Line::from(kind.description()),
        Line::from(""),
        Line::from(vec![
            Span::styled("now       ", theme.dim()),
            Span::raw(q.verdict()),
        ]),
    ];
    let target = app.cluster.rows.get(app.cluster.selected);
    let change = kind.change(target);
    if kind.needs_target() {
        lines.push(Line::from(vec![
            Span::styled("target    ", theme.dim()),
            Span::raw(target.map_or("none selected".to_string(), |r| {
                format!("{} ({})", r.name(), r.role.label())
            })),
        ]));
    }
    if let Some(change) = change {
        let impact = quorum::impact(&q, change);
        lines.push(Line::from(vec![
            Span::styled("after     ", theme.dim()),
            Span::raw(impact.summary),
        ]));
        if let Some(r) = impact.refusal {
            lines.push(Line::from(Span::styled(
                format!("⚠ would be refused: {r}"),
                theme.bold(Color::Red),
            )));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        if app.config.read_only {
            "--read-only: no action can run."
        } else {
            "Enter runs it; every action asks for confirmation first."
        },
        theme.dim(),
    )));
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(" What it does ");
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        info,
    );
}
