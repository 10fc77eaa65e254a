//! Drawing: a pure function of the [`App`] state onto a ratatui frame.
//!
//! Every panel says how old its data is; data kept after a failed refresh is
//! dimmed under a `STALE` badge. Colour is always paired with a glyph or a
//! word, and disappears entirely with `NO_COLOR`/`--no-color`. Popups are
//! clamped to the frame and below [`MIN_WIDTH`]x[`MIN_HEIGHT`] only a
//! "terminal too small" screen is drawn, so no size can make drawing panic.

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, TableState, Wrap,
};

use crate::app::{
    ActionKind, ActionsPane, App, Confirm, Fresh, Input, KeysPane, MemberRow, Modal, Role, View,
};
use crate::keymap::{self, Scope};
use crate::quorum;
use crate::text::{self, DiffLine, human_bytes, human_duration, human_rate};
use crate::tree::{EntryKind, display_key};

/// Smallest usable terminal width.
pub const MIN_WIDTH: u16 = 60;
/// Smallest usable terminal height.
pub const MIN_HEIGHT: u16 = 16;

/// Colours on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Theme {
    /// Whether to use colour at all.
    pub color: bool,
}

impl Theme {
    fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    fn bold(self, c: Color) -> Style {
        self.fg(c).add_modifier(Modifier::BOLD)
    }

    fn badge(self, c: Color) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Black)
                .bg(c)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    fn selected(self) -> Style {
        if self.color {
            Style::default()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    fn dim(self) -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }

    fn role(self, role: Role) -> Style {
        match role {
            Role::Leader => self.bold(Color::Yellow),
            Role::Follower => self.fg(Color::Green),
            Role::Learner => self.fg(Color::Cyan),
            Role::Unstarted => self.fg(Color::Gray),
            Role::Down => self.bold(Color::Red),
        }
    }

    fn focus_border(self, focused: bool) -> Style {
        if focused {
            self.bold(Color::Cyan)
        } else {
            self.dim()
        }
    }
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        draw_too_small(frame, area);
        return;
    }
    let [tabs, header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_tabs(frame, app, theme, tabs);
    draw_header(frame, app, theme, header);
    match app.view {
        View::Cluster => draw_cluster(frame, app, theme, body),
        View::Keys => draw_keys(frame, app, theme, body),
        View::Leases => draw_leases(frame, app, theme, body),
        View::Actions => draw_actions(frame, app, theme, body),
    }
    draw_footer(frame, app, theme, footer);
    draw_toasts(frame, app, theme, body);
    if let Some(Input::Prompt(p)) = &app.input {
        draw_prompt(frame, p, theme);
    }
    if let Some(Input::Palette(_)) = &app.input {
        draw_completions(frame, app, theme, footer);
    }
    match &app.modal {
        Some(Modal::Confirm(c)) => draw_confirm(frame, c, theme),
        Some(Modal::Info { title, lines }) => draw_info(frame, title, lines, theme),
        None => {}
    }
    if app.help {
        draw_help(frame, app, theme);
    }
}

fn draw_too_small(frame: &mut Frame, area: Rect) {
    let lines = vec![
        Line::from("terminal too small"),
        Line::from(format!(
            "need {MIN_WIDTH}x{MIN_HEIGHT}, have {}x{}",
            area.width, area.height
        )),
        Line::from("q quits"),
    ];
    let h = (lines.len() as u16).min(area.height);
    let y = area.y + area.height.saturating_sub(h) / 2;
    let rect = Rect::new(area.x, y, area.width, h).intersection(area);
    frame.render_widget(Paragraph::new(lines).alignment(Alignment::Center), rect);
}

/// A rectangle of at most `w`x`h` centred in `area`, never outside it.
fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
    .intersection(area)
}

fn age_text(app: &App, at: Option<std::time::Instant>) -> String {
    match at {
        Some(at) => format!(
            "{} ago",
            human_duration(app.now.saturating_duration_since(at))
        ),
        None => "never".to_string(),
    }
}

/// " · read 3s ago" / " · STALE 12s: error" / " · loading…" for a panel title.
fn freshness<T>(app: &App, f: &Fresh<T>) -> (String, bool) {
    let stale = f.stale();
    let text = if stale {
        format!(
            "STALE {}",
            human_duration(f.at.map_or(Duration::ZERO, |at| app.now.saturating_duration_since(at)))
        )
    } else if f.at.is_some() {
        format!("read {}", age_text(app, f.at))
    } else if f.loading {
        "loading…".to_string()
    } else if let Some(e) = &f.error {
        format!("failed: {e}")
    } else {
        "not read yet".to_string()
    };
    (text, stale)
}

fn draw_tabs(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let mut spans = vec![Span::styled(" cetera-console ", theme.bold(Color::Cyan))];
    for (i, v) in View::ALL.iter().enumerate() {
        let label = format!(" {} {} ", i + 1, v.title());
        if *v == app.view {
            spans.push(Span::styled(label, theme.badge(Color::Cyan)));
        } else {
            spans.push(Span::raw(label));
        }
    }
    let mut right = Vec::new();
    if app.paused {
        right.push(Span::styled(" ⏸ PAUSED ", theme.badge(Color::Yellow)));
        right.push(Span::raw(" "));
    }
    if app.config.read_only {
        right.push(Span::styled(" READ-ONLY ", theme.badge(Color::Blue)));
        right.push(Span::raw(" "));
    }
    if app.running > 0 {
        right.push(Span::styled(
            format!(" ⟳ {} running ", app.running),
            theme.fg(Color::Yellow),
        ));
    }
    let left_w: usize = spans.iter().map(|s| s.width()).sum();
    let right_w: usize = right.iter().map(|s| s.width()).sum();
    let gap = usize::from(area.width).saturating_sub(left_w + right_w);
    spans.push(Span::raw(" ".repeat(gap)));
    spans.extend(right);
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// Connection state in words with its glyph.
fn connection(app: &App, theme: Theme) -> Vec<Span<'static>> {
    let c = &app.cluster;
    if c.data.is_none() && c.error.is_none() {
        return vec![Span::styled("◌ connecting…", theme.fg(Color::Yellow))];
    }
    if let Some(e) = &c.error {
        let mut spans = Vec::new();
        if c.data.is_some() {
            let age = app.cluster_age().unwrap_or_default();
            spans.push(Span::styled(
                format!(" STALE {} ", human_duration(age)),
                theme.badge(Color::Red),
            ));
            spans.push(Span::raw(" "));
        }
        spans.push(Span::styled(
            format!(
                "✖ disconnected (retry #{}): {}",
                c.failures,
                text::ellipsize(e, 80)
            ),
            theme.fg(Color::Red),
        ));
        return spans;
    }
    let q = app.quorum();
    let (glyph, word, color) = if q.healthy == q.total {
        ("✔", "connected", Color::Green)
    } else {
        ("▲", "degraded", Color::Yellow)
    };
    vec![
        Span::styled(format!("{glyph} {word}"), theme.fg(color)),
        Span::styled(
            format!(" · refreshed {}", age_text(app, app.cluster.at)),
            theme.dim(),
        ),
    ]
}

fn draw_header(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let q = app.quorum();
    // No member answers: the quorum is unknown (the members may well be up,
    // only out of the console's reach), so no verdict is claimed.
    let outage = app.cluster.stale();
    let verdict_style = if app.rows.is_empty() || outage {
        theme.dim()
    } else if !q.has_quorum() {
        theme.bold(Color::Red)
    } else if q.tolerates() == 0 || q.healthy < q.total {
        theme.bold(Color::Yellow)
    } else {
        theme.bold(Color::Green)
    };
    let verdict_glyph = if app.rows.is_empty() {
        "?"
    } else if outage {
        "✖"
    } else if !q.has_quorum() {
        "✖"
    } else if q.tolerates() == 0 || q.healthy < q.total {
        "▲"
    } else {
        "✔"
    };
    let cluster_id = app
        .cluster
        .data
        .as_ref()
        .map_or("-".to_string(), |s| format!("{:x}", s.cluster_id));
    let leader = app.leader().map_or("none".to_string(), MemberRow::name);
    let term = app.term().map_or("-".to_string(), |t| t.to_string());
    let rev = app.revision().map_or("-".to_string(), |r| r.to_string());
    let line1 = Line::from(vec![
        Span::styled("cluster ", theme.dim()),
        Span::raw(cluster_id),
        Span::styled("  leader ", theme.dim()),
        Span::styled(leader, theme.bold(Color::Yellow)),
        Span::styled("  term ", theme.dim()),
        Span::raw(term),
        Span::styled("  rev ", theme.dim()),
        Span::raw(rev),
        Span::raw("  "),
        Span::styled(
            format!(
                "{verdict_glyph} {}",
                if app.rows.is_empty() {
                    "no members known yet".to_string()
                } else if outage {
                    format!("0/{} answering, quorum unknown", q.total)
                } else {
                    q.verdict()
                }
            ),
            verdict_style,
        ),
    ]);
    let mut spans = connection(app, theme);
    let via = app
        .cluster
        .data
        .as_ref()
        .map(|s| s.via.clone())
        .unwrap_or_else(|| app.config.endpoints.join(","));
    spans.push(Span::styled(format!(" · via {via}"), theme.dim()));
    // Derived from the last good data: dimmed while that data is stale.
    let line1 = if app.cluster.stale() {
        line1.style(theme.dim())
    } else {
        line1
    };
    frame.render_widget(Paragraph::new(vec![line1, Line::from(spans)]), area);
}

/// The footer's key hints; when they do not fit `width`, hints are dropped
/// from the middle so that help and quit always stay visible.
fn footer_spans(app: &App, theme: Theme, width: u16) -> Vec<Span<'static>> {
    let mut items: Vec<(Span<'static>, Span<'static>, bool)> = Vec::new();
    for b in keymap::bindings_for(app.scope(), app.config.read_only) {
        if !b.footer {
            continue;
        }
        let key = Span::styled(format!(" {} ", b.label), theme.bold(Color::Cyan));
        let word = b.help.split([' ', '(']).next().unwrap_or("");
        let word = match b.action {
            keymap::Action::Freeze if app.paused => "resume",
            keymap::Action::Freeze => "freeze",
            keymap::Action::ToggleFlat if app.keys.flat => "tree",
            keymap::Action::ToggleFlat => "flat",
            keymap::Action::Watch if app.keys.watch.is_some() => "unwatch",
            keymap::Action::Watch => "watch",
            keymap::Action::NextPane => "pane",
            keymap::Action::Help => "help",
            keymap::Action::Palette => "command",
            keymap::Action::Enter => "run",
            keymap::Action::Edit => "edit",
            keymap::Action::Delete if app.view == View::Leases => "revoke",
            _ => word,
        };
        let keep = matches!(b.action, keymap::Action::Help | keymap::Action::Quit);
        items.push((key, Span::raw(format!("{word} ")), keep));
    }
    let total = |items: &[(Span, Span, bool)]| {
        items
            .iter()
            .map(|(k, w, _)| k.width() + w.width())
            .sum::<usize>()
    };
    while total(&items) > usize::from(width) {
        match items.iter().rposition(|(_, _, keep)| !keep) {
            Some(i) => {
                items.remove(i);
            }
            None => break,
        }
    }
    items.into_iter().flat_map(|(k, w, _)| [k, w]).collect()
}

fn draw_footer(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let line = match &app.input {
        Some(Input::Filter(t)) => Line::from(vec![
            Span::styled("/", theme.bold(Color::Cyan)),
            Span::raw(format!("{t}█")),
            Span::styled(
                format!(
                    "   {} match(es) in loaded rows · Enter keep · Esc clear",
                    app.visible_entries().len()
                ),
                theme.dim(),
            ),
        ]),
        Some(Input::Palette(t)) => {
            let hint = crate::palette::hint(t)
                .map(|h| format!("  {h}"))
                .unwrap_or_default();
            Line::from(vec![
                Span::styled(":", theme.bold(Color::Cyan)),
                Span::raw(format!("{t}█")),
                Span::styled(
                    format!("{hint}   Tab complete · Enter run · Esc cancel"),
                    theme.dim(),
                ),
            ])
        }
        _ => Line::from(footer_spans(app, theme, area.width)),
    };
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_toasts(frame: &mut Frame, app: &App, theme: Theme, body: Rect) {
    let n = app.toasts.len() as u16;
    if n == 0 {
        return;
    }
    let width = app
        .toasts
        .iter()
        .map(|t| t.text.chars().count() as u16 + 2)
        .max()
        .unwrap_or(0)
        .min(body.width);
    let rect = Rect::new(
        body.x + body.width - width,
        body.y + body.height.saturating_sub(n),
        width,
        n.min(body.height),
    )
    .intersection(body);
    frame.render_widget(Clear, rect);
    let lines: Vec<Line> = app
        .toasts
        .iter()
        .map(|t| {
            let style = if t.error {
                theme.badge(Color::Red)
            } else {
                theme.badge(Color::Green)
            };
            Line::from(Span::styled(format!(" {} ", t.text), style))
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).alignment(Alignment::Right), rect);
}

// ----- Cluster view -------------------------------------------------------

struct Column {
    title: &'static str,
    priority: u8,
    cells: Vec<String>,
}

/// Picks the columns that fit `width`, dropping the lowest priority first.
fn fit_columns(mut cols: Vec<Column>, width: u16, spacing: u16) -> Vec<(Column, u16)> {
    let widths = |cols: &[Column]| -> Vec<u16> {
        cols.iter()
            .map(|c| {
                c.cells
                    .iter()
                    .map(|s| s.chars().count())
                    .chain([c.title.chars().count()])
                    .max()
                    .unwrap_or(0) as u16
            })
            .collect()
    };
    loop {
        let w = widths(&cols);
        let total: u16 = w.iter().sum::<u16>() + spacing * (cols.len() as u16).saturating_sub(1);
        if total <= width || cols.len() <= 2 {
            return cols.into_iter().zip(w).collect();
        }
        let drop = cols
            .iter()
            .enumerate()
            .max_by_key(|(i, c)| (c.priority, *i))
            .map(|(i, _)| i)
            .unwrap_or(0);
        cols.remove(drop);
    }
}

fn member_columns(app: &App) -> Vec<Column> {
    let rows = &app.rows;
    // A member that stopped answering keeps its last good values (the row
    // is dimmed and its health cell carries the STALE badge).
    let status = |r: &MemberRow, f: &dyn Fn(&crate::model::Status) -> String| match (
        &r.probe.status,
        &r.last_good,
    ) {
        (Ok(s), _) => f(s),
        (Err(_), Some((_, s))) => f(s),
        (Err(_), None) => "-".to_string(),
    };
    let appends = |r: &MemberRow| match &r.probe.stats {
        Some(s) => {
            let rate =
                |x: Option<f64>| x.map(|v| format!(" {}", human_rate(v))).unwrap_or_default();
            format!(
                "{}{} / {}{}",
                s.recv_append,
                rate(r.recv_rate),
                s.send_append,
                rate(r.send_rate)
            )
        }
        None => "-".to_string(),
    };
    vec![
        Column {
            title: "NAME",
            priority: 0,
            cells: rows.iter().map(MemberRow::name).collect(),
        },
        Column {
            title: "ROLE",
            priority: 0,
            cells: rows.iter().map(|r| r.role.label().to_string()).collect(),
        },
        Column {
            title: "HEALTH",
            priority: 1,
            cells: rows
                .iter()
                .map(|r| match (r.probe.status.is_ok(), r.probe.health) {
                    _ if r.role == Role::Unstarted => "○ not started".to_string(),
                    (false, _) => match &r.last_good {
                        Some((at, _)) => format!(
                            "✖ unreachable · STALE {}",
                            human_duration(app.now.saturating_duration_since(*at))
                        ),
                        None => "✖ unreachable".to_string(),
                    },
                    (true, Some(false)) if !r.alarms.is_empty() => {
                        format!("⚠ alarm {}", r.alarms.join(","))
                    }
                    (true, Some(false)) => "✖ unhealthy".to_string(),
                    (true, Some(true)) => "✔ healthy".to_string(),
                    (true, None) => "? no /health".to_string(),
                })
                .collect(),
        },
        Column {
            title: "ID",
            priority: 2,
            cells: rows
                .iter()
                .map(|r| format!("{:016x}", r.probe.member.id))
                .collect(),
        },
        Column {
            title: "TERM",
            priority: 3,
            cells: rows
                .iter()
                .map(|r| status(r, &|s| s.raft_term.to_string()))
                .collect(),
        },
        Column {
            title: "INDEX",
            priority: 4,
            cells: rows
                .iter()
                .map(|r| status(r, &|s| s.raft_index.to_string()))
                .collect(),
        },
        Column {
            title: "APPLIED",
            priority: 5,
            cells: rows
                .iter()
                .map(|r| status(r, &|s| s.raft_applied_index.to_string()))
                .collect(),
        },
        Column {
            title: "UPTIME",
            priority: 3,
            cells: rows
                .iter()
                .map(|r| r.uptime.map_or("-".to_string(), human_duration))
                .collect(),
        },
        Column {
            title: "DB",
            priority: 4,
            cells: rows
                .iter()
                .map(|r| status(r, &|s| human_bytes(s.db_size)))
                .collect(),
        },
        Column {
            title: "APPEND RECV / SEND",
            priority: 6,
            cells: rows.iter().map(appends).collect(),
        },
        Column {
            title: "CLIENT URL",
            priority: 7,
            cells: rows
                .iter()
                .map(|r| r.probe.member.client_urls.join(","))
                .collect(),
        },
        Column {
            title: "PEER URL",
            priority: 8,
            cells: rows
                .iter()
                .map(|r| r.probe.member.peer_urls.join(","))
                .collect(),
        },
        Column {
            title: "VERSION",
            priority: 9,
            cells: rows
                .iter()
                .map(|r| status(r, &|s| s.version.clone()))
                .collect(),
        },
    ]
}

fn draw_cluster(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let alarms: Vec<String> = app
        .cluster
        .data
        .as_ref()
        .and_then(|s| s.alarms.as_ref().ok())
        .map(|a| {
            a.iter()
                .map(|a| format!("{} on {:x}", a.kind, a.member_id))
                .collect()
        })
        .unwrap_or_default();
    let table_h = (app.rows.len() as u16 + 3).clamp(4, area.height.saturating_sub(6).max(4));
    let alarm_h = u16::from(!alarms.is_empty());
    let [table_area, alarm_area, lower] = Layout::vertical([
        Constraint::Length(table_h),
        Constraint::Length(alarm_h),
        Constraint::Min(0),
    ])
    .areas(area);
    draw_members_table(frame, app, theme, table_area, true);
    if !alarms.is_empty() {
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(" ⚠ ALARMS ", theme.badge(Color::Red)),
                Span::raw(format!(" {}", alarms.join(", "))),
            ])),
            alarm_area,
        );
    }
    if lower.height < 3 {
        return;
    }
    let [detail, sparks] =
        Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(lower);
    draw_member_detail(frame, app, theme, detail);
    draw_sparklines(frame, app, theme, sparks);
}

fn draw_members_table(frame: &mut Frame, app: &App, theme: Theme, area: Rect, selectable: bool) {
    let stale = app.cluster.stale();
    let (fresh, _) = freshness(app, &app.cluster);
    let title = format!(" Members ({}) · {fresh} ", app.rows.len());
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(if stale {
            theme.fg(Color::Red)
        } else {
            theme.dim()
        })
        .title(Span::styled(
            title,
            if stale {
                theme.bold(Color::Red)
            } else {
                theme.bold(Color::White)
            },
        ));
    if app.rows.is_empty() {
        let msg = match &app.cluster.error {
            Some(e) => format!("no data: {e}"),
            None => "waiting for the first answer…".to_string(),
        };
        frame.render_widget(
            Paragraph::new(msg).block(block).wrap(Wrap { trim: true }),
            area,
        );
        return;
    }
    let inner_w = area.width.saturating_sub(4);
    let cols = fit_columns(member_columns(app), inner_w, 2);
    let header = Row::new(cols.iter().map(|(c, _)| Cell::from(c.title)))
        .style(theme.dim().add_modifier(Modifier::BOLD));
    let rows: Vec<Row> = app
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let cells: Vec<Cell> = cols
                .iter()
                .map(|(c, _)| {
                    let text = c.cells[i].clone();
                    match c.title {
                        "ROLE" => Cell::from(Span::styled(text, theme.role(r.role))),
                        "HEALTH" if !r.alarms.is_empty() => {
                            Cell::from(Span::styled(text, theme.bold(Color::Yellow)))
                        }
                        "HEALTH" if r.healthy => {
                            Cell::from(Span::styled(text, theme.fg(Color::Green)))
                        }
                        "HEALTH" => Cell::from(Span::styled(text, theme.bold(Color::Red))),
                        _ => Cell::from(text),
                    }
                })
                .collect();
            let row = Row::new(cells);
            if stale || r.last_good.is_some() {
                row.style(theme.dim())
            } else {
                row
            }
        })
        .collect();
    let table = Table::new(rows, cols.iter().map(|(_, w)| Constraint::Length(*w)))
        .header(header)
        .block(block)
        .column_spacing(2)
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(selectable.then_some(app.member_selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_member_detail(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim());
    let Some(r) = app.rows.get(app.member_selected) else {
        frame.render_widget(
            Paragraph::new("no member selected").block(block.title(" Member ")),
            area,
        );
        return;
    };
    let m = &r.probe.member;
    let kv = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<10}"), theme.dim()),
            Span::raw(v),
        ])
    };
    let mut lines = vec![
        Line::from(vec![
            Span::styled(r.name(), theme.bold(Color::White)),
            Span::raw("  "),
            Span::styled(r.role.label(), theme.role(r.role)),
        ]),
        kv("id", format!("{:016x}", m.id)),
        kv(
            "peer",
            if m.peer_urls.is_empty() {
                "-".to_string()
            } else {
                m.peer_urls.join(", ")
            },
        ),
        kv(
            "client",
            if m.client_urls.is_empty() {
                "-".to_string()
            } else {
                m.client_urls.join(", ")
            },
        ),
    ];
    let status = match (&r.probe.status, &r.last_good) {
        (Ok(s), _) => Some(s),
        (Err(e), last) => {
            lines.push(Line::from(Span::styled(
                format!("✖ {e}"),
                theme.fg(Color::Red),
            )));
            if let Some((at, _)) = last {
                lines.push(Line::from(vec![
                    Span::styled(
                        format!(
                            " STALE {} ",
                            human_duration(app.now.saturating_duration_since(*at))
                        ),
                        theme.badge(Color::Red),
                    ),
                    Span::styled(" last good status below", theme.dim()),
                ]));
            }
            last.as_ref().map(|(_, s)| s)
        }
    };
    let stale_from = lines.len();
    if let Some(s) = status {
        lines.push(kv("version", s.version.clone()));
        lines.push(kv(
            "raft",
            format!(
                "term {} · index {} · applied {}",
                s.raft_term, s.raft_index, s.raft_applied_index
            ),
        ));
        lines.push(kv(
            "db",
            format!(
                "{} ({} in use)",
                human_bytes(s.db_size),
                human_bytes(s.db_size_in_use)
            ),
        ));
        lines.push(kv(
            "leader",
            if s.leader == 0 {
                "none known".to_string()
            } else {
                format!("{:016x}", s.leader)
            },
        ));
        if !s.errors.is_empty() {
            lines.push(Line::from(Span::styled(
                format!("errors    {}", s.errors.join("; ")),
                theme.fg(Color::Red),
            )));
        }
    }
    if r.last_good.is_some() {
        for line in &mut lines[stale_from..] {
            *line = std::mem::take(line).style(theme.dim());
        }
    }
    lines.push(kv(
        "uptime",
        r.uptime.map_or("unknown".to_string(), human_duration),
    ));
    match &r.probe.stats {
        Some(s) => lines.push(kv(
            "appends",
            format!(
                "recv {}{} · send {}{} ({})",
                s.recv_append,
                r.recv_rate
                    .map(|v| format!(" {}", human_rate(v)))
                    .unwrap_or_default(),
                s.send_append,
                r.send_rate
                    .map(|v| format!(" {}", human_rate(v)))
                    .unwrap_or_default(),
                s.state
            ),
        )),
        None => lines.push(kv("appends", "n/a (no /v2/stats/self)".to_string())),
    }
    if let Some(mx) = &r.probe.metrics {
        let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
        lines.push(kv(
            "proposals",
            format!(
                "committed {} · applied {} · pending {} · failed {}",
                f(mx.proposals_committed),
                f(mx.proposals_applied),
                f(mx.proposals_pending),
                f(mx.proposals_failed)
            ),
        ));
        lines.push(kv(
            "elections",
            format!("leader changes seen {}", f(mx.leader_changes)),
        ));
    }
    let style = if app.cluster.stale() {
        theme.dim()
    } else {
        Style::default()
    };
    frame.render_widget(
        Paragraph::new(lines)
            .style(style)
            .block(block.title(" Member detail "))
            .wrap(Wrap { trim: false }),
        area,
    );
}

fn draw_sparklines(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(" Activity (per poll) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let s = &app.series;
    let series: [(&str, &std::collections::VecDeque<u64>, bool, &str); 3] = [
        (
            "proposals committed/s",
            &s.proposals,
            s.have_metrics,
            "no /metrics",
        ),
        (
            "append requests/s",
            &s.appends,
            s.have_stats,
            "no /v2/stats/self",
        ),
        ("leader changes", &s.leader_changes, true, ""),
    ];
    let rows = Layout::vertical([Constraint::Ratio(1, 3); 3]).split(inner);
    for ((title, data, available, missing), rect) in series.into_iter().zip(rows.iter()) {
        if rect.height == 0 {
            continue;
        }
        let last = data.back().copied();
        let label = match (available, last) {
            (false, _) => format!("{title}: n/a ({missing})"),
            (true, Some(v)) => format!("{title}: {v}"),
            (true, None) => format!("{title}: collecting…"),
        };
        let [label_area, spark_area] =
            Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(*rect);
        frame.render_widget(Paragraph::new(Span::styled(label, theme.dim())), label_area);
        let width = usize::from(spark_area.width);
        let points: Vec<u64> = data
            .iter()
            .skip(data.len().saturating_sub(width))
            .copied()
            .collect();
        let color = if title == "leader changes" {
            Color::Magenta
        } else {
            Color::Green
        };
        frame.render_widget(
            Sparkline::default().data(&points).style(theme.fg(color)),
            spark_area,
        );
    }
}

// ----- Keys view ----------------------------------------------------------

fn draw_keys(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
    draw_key_list(frame, app, theme, left);
    let [value, lower] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(right);
    draw_value(frame, app, theme, value);
    if app.keys.watch.is_some() {
        // Side by side when there is room, stacked otherwise.
        let halves = [Constraint::Percentage(50), Constraint::Percentage(50)];
        let [hist, watch] = if lower.width >= 100 {
            Layout::horizontal(halves).areas(lower)
        } else {
            Layout::vertical(halves).areas(lower)
        };
        draw_history(frame, app, theme, hist);
        draw_watch(frame, app, theme, watch);
    } else {
        draw_history(frame, app, theme, lower);
    }
}

fn draw_key_list(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let k = &app.keys;
    let (fresh, stale) = freshness(app, &k.listing);
    let mode = if k.flat { "flat" } else { "tree" };
    let prefix = if k.prefix.is_empty() {
        "(all keys)".to_string()
    } else {
        display_key(&k.prefix)
    };
    let listing = k.listing.data.as_ref();
    let rows = app.visible_entries();
    let total = listing.map_or(0, |l| l.entries.len());
    let count = if k.filter.is_empty() {
        format!(
            "{total}{}",
            if listing.is_some_and(|l| l.has_more()) {
                "+"
            } else {
                ""
            }
        )
    } else {
        format!("{}/{total} match {:?}", rows.len(), k.filter)
    };
    // A stale badge leads the title, so a narrow pane never cuts it off.
    let title = if stale {
        Line::from(vec![
            Span::styled(format!(" {fresh} "), theme.badge(Color::Red)),
            Span::styled(format!(" {prefix} [{mode}] {count} "), theme.dim()),
        ])
    } else {
        Line::from(vec![
            Span::styled(format!(" {prefix} "), theme.bold(Color::White)),
            Span::styled(format!("[{mode}] {count} · {fresh} "), theme.dim()),
        ])
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(k.pane == KeysPane::List))
        .title(title);
    let mut items: Vec<Row> = rows
        .iter()
        .map(|e| {
            let (glyph, style) = match e.kind {
                EntryKind::Dir => ("▸ ", theme.bold(Color::Blue)),
                EntryKind::Key => ("  ", Style::default()),
            };
            let count = match e.kind {
                EntryKind::Dir => format!(" ({}{})", e.count, if e.partial { "+" } else { "" }),
                EntryKind::Key => String::new(),
            };
            let row = Row::new(vec![Cell::from(Line::from(vec![
                Span::styled(format!("{glyph}{}", e.display()), style),
                Span::styled(count, theme.dim()),
            ]))]);
            if stale { row.style(theme.dim()) } else { row }
        })
        .collect();
    if listing.is_some_and(|l| l.has_more()) {
        let text = if k.listing.loading {
            "… loading the next page"
        } else {
            "… more keys (move down to load)"
        };
        items.push(Row::new(vec![Cell::from(Span::styled(text, theme.dim()))]));
    } else if rows.is_empty() && !k.listing.loading {
        let text = if k.listing.error.is_some() && listing.is_none() {
            format!("✖ {}", k.listing.error.clone().unwrap_or_default())
        } else if k.filter.is_empty() {
            "(no keys under this prefix)".to_string()
        } else {
            "(no loaded key matches the filter)".to_string()
        };
        items.push(Row::new(vec![Cell::from(Span::styled(text, theme.dim()))]));
    }
    let table = Table::new(items, [Constraint::Percentage(100)])
        .block(block)
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ");
    let selected = if rows.is_empty() {
        None
    } else {
        Some(k.selected)
    };
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_value(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let k = &app.keys;
    let focused = k.pane == KeysPane::Value;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(focused));
    let Some(key) = &k.value_key else {
        let text = match app.selected_entry() {
            Some(e) if e.kind == EntryKind::Dir => "a prefix: Enter opens it",
            _ => "select a key",
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.dim())).block(block.title(" Value ")),
            area,
        );
        return;
    };
    let (fresh, stale) = freshness(app, &k.value);
    let history = k.history.data.as_ref();
    let shown = if k.history_selected > 0 {
        history.and_then(|h| h.entries.get(k.history_selected))
    } else {
        None
    };
    let current = k.value.data.as_ref().and_then(|v| v.as_ref());
    let kv = shown.or(current);
    let mut lines: Vec<Line> = Vec::new();
    let mut title = format!(" {} ", display_key(key));
    match (k.value.data.as_ref(), kv) {
        (_, Some(kv)) => {
            let rendered = text::format_value(&kv.value);
            title.push_str(&format!("· {} ", rendered.kind));
            let lease = if kv.lease == 0 {
                "none".to_string()
            } else {
                format!("{:016x}", kv.lease)
            };
            lines.push(Line::from(Span::styled(
                format!(
                    "create rev {} · mod rev {} · version {} · lease {} · {}",
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    lease,
                    human_bytes(kv.value.len() as i64)
                ),
                theme.dim(),
            )));
            if shown.is_some() {
                lines.push(Line::from(Span::styled(
                    format!(
                        "showing an older revision ({}); k/↑ in History returns",
                        kv.mod_revision
                    ),
                    theme.fg(Color::Yellow),
                )));
            }
            lines.push(Line::from(""));
            let older = history.and_then(|h| h.entries.get(k.history_selected + 1));
            if k.diff {
                match older {
                    Some(old) => {
                        lines.push(Line::from(Span::styled(
                            format!("diff rev {} -> {}", old.mod_revision, kv.mod_revision),
                            theme.dim(),
                        )));
                        let a = text::format_value(&old.value).lines;
                        for d in text::diff_lines(&a, &rendered.lines) {
                            lines.push(match d {
                                DiffLine::Same(s) => Line::from(format!("  {s}")),
                                DiffLine::Added(s) => Line::from(Span::styled(
                                    format!("+ {s}"),
                                    theme.fg(Color::Green),
                                )),
                                DiffLine::Removed(s) => {
                                    Line::from(Span::styled(format!("- {s}"), theme.fg(Color::Red)))
                                }
                            });
                        }
                    }
                    None => lines.push(Line::from(Span::styled(
                        "(no older revision to diff with)",
                        theme.dim(),
                    ))),
                }
            } else if rendered.lines.is_empty() {
                lines.push(Line::from(Span::styled("(empty value)", theme.dim())));
            } else {
                lines.extend(rendered.lines.into_iter().map(Line::from));
            }
        }
        (Some(None), None) => lines.push(Line::from(Span::styled(
            "(the key no longer exists)",
            theme.fg(Color::Yellow),
        ))),
        _ => {
            if let Some(e) = &k.value.error {
                lines.push(Line::from(Span::styled(
                    format!("✖ {e}"),
                    theme.fg(Color::Red),
                )));
            } else {
                lines.push(Line::from(Span::styled("loading…", theme.dim())));
            }
        }
    }
    let block = block.title(Line::from(vec![
        Span::styled(title, theme.bold(Color::White)),
        Span::styled(
            format!("· {fresh} "),
            if stale {
                theme.bold(Color::Red)
            } else {
                theme.dim()
            },
        ),
    ]));
    let style = if stale { theme.dim() } else { Style::default() };
    frame.render_widget(
        Paragraph::new(lines)
            .style(style)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((k.value_scroll, 0)),
        area,
    );
}

fn draw_history(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let k = &app.keys;
    let (fresh, stale) = freshness(app, &k.history);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(k.pane == KeysPane::History))
        .title(Line::from(vec![
            Span::styled(" History ", theme.bold(Color::White)),
            Span::styled(
                format!("{}· {fresh} ", if k.diff { "· diff " } else { "" }),
                if stale {
                    theme.bold(Color::Red)
                } else {
                    theme.dim()
                },
            ),
        ]));
    let Some(h) = &k.history.data else {
        let text = match (&k.value_key, &k.history.error) {
            (_, Some(e)) => format!("✖ {e}"),
            (None, _) => String::new(),
            (Some(_), None) => "loading…".to_string(),
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.dim())).block(block),
            area,
        );
        return;
    };
    let mut rows: Vec<Row> = h
        .entries
        .iter()
        .enumerate()
        .map(|(i, kv)| {
            let first = text::preview(&kv.value, 60);
            Row::new(vec![
                Cell::from(format!("rev {}", kv.mod_revision)),
                Cell::from(format!("v{}", kv.version)),
                Cell::from(human_bytes(kv.value.len() as i64)),
                Cell::from(if i == 0 {
                    format!("(current) {first}")
                } else {
                    first
                }),
            ])
        })
        .collect();
    rows.push(Row::new(vec![
        Cell::from(Span::styled("—", theme.dim())),
        Cell::from(""),
        Cell::from(""),
        Cell::from(Span::styled(h.end.clone(), theme.dim())),
    ]));
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Min(5),
        ],
    )
    .block(block)
    .row_highlight_style(theme.selected())
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(Some(k.history_selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_watch(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let Some(w) = &app.keys.watch else { return };
    let (badge, style) = match (&w.error, w.live) {
        (Some(_), _) => (
            format!(" ✖ WATCH LOST · retry #{} ", w.failures),
            theme.badge(Color::Red),
        ),
        (None, true) => (" ● LIVE ".to_string(), theme.badge(Color::Green)),
        (None, false) => (" ◌ starting ".to_string(), theme.badge(Color::Yellow)),
    };
    let prefix = if w.prefix.is_empty() {
        "(all keys)".to_string()
    } else {
        display_key(&w.prefix)
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(Line::from(vec![
            Span::styled(badge, style),
            Span::raw(format!(" {prefix} ")),
        ]));
    let mut lines: Vec<Line> = Vec::new();
    if let Some(e) = &w.error {
        lines.push(Line::from(Span::styled(e.clone(), theme.fg(Color::Red))));
        lines.push(Line::from(Span::styled(
            if w.revision > 0 {
                format!(
                    "resumes at revision {} on the next good poll",
                    w.revision + 1
                )
            } else {
                "resumes on the next good poll".to_string()
            },
            theme.dim(),
        )));
    }
    let height = usize::from(area.height.saturating_sub(2));
    for (at, ev) in w.events.iter().rev().take(height) {
        let age = human_duration(app.now.saturating_duration_since(*at));
        let (word, s) = if ev.delete {
            ("DEL", theme.fg(Color::Red))
        } else {
            ("PUT", theme.fg(Color::Green))
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{age:>5} "), theme.dim()),
            Span::styled(format!("{word} "), s),
            Span::raw(format!(
                "{} @{}",
                display_key(&ev.kv.key),
                ev.kv.mod_revision
            )),
        ]));
    }
    if w.events.is_empty() && w.error.is_none() {
        lines.push(Line::from(Span::styled("no changes yet", theme.dim())));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

// ----- Leases view --------------------------------------------------------

fn draw_leases(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let (fresh, stale) = freshness(app, &app.leases);
    let leases = app.leases.data.as_deref().unwrap_or(&[]);
    let [table_area, detail] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(if stale {
            theme.fg(Color::Red)
        } else {
            theme.dim()
        })
        .title(Span::styled(
            format!(" Leases ({}) · {fresh} ", leases.len()),
            if stale {
                theme.bold(Color::Red)
            } else {
                theme.bold(Color::White)
            },
        ));
    let elapsed = app.leases.at.map_or(0, |at| {
        app.now.saturating_duration_since(at).as_secs() as i64
    });
    let rows: Vec<Row> = leases
        .iter()
        .map(|l| {
            let left = l.ttl - elapsed;
            let ttl = if l.ttl < 0 {
                Span::styled("✖ expired", theme.fg(Color::Red))
            } else if left <= 0 {
                Span::styled("⌛ due now", theme.fg(Color::Yellow))
            } else {
                Span::raw(format!(
                    "⏱ {}",
                    human_duration(Duration::from_secs(left as u64))
                ))
            };
            let keys: Vec<String> = l.keys.iter().take(3).map(|k| display_key(k)).collect();
            let row = Row::new(vec![
                Cell::from(format!("{:016x}", l.id)),
                Cell::from(ttl),
                Cell::from(format!("{}s", l.granted_ttl)),
                Cell::from(l.keys.len().to_string()),
                Cell::from(keys.join(", ")),
            ]);
            if stale { row.style(theme.dim()) } else { row }
        })
        .collect();
    let empty = rows.is_empty();
    let table = Table::new(
        rows,
        [
            Constraint::Length(16),
            Constraint::Length(11),
            Constraint::Length(8),
            Constraint::Length(5),
            Constraint::Min(10),
        ],
    )
    .header(
        Row::new(["ID", "REMAINING", "GRANTED", "KEYS", "FIRST KEYS"])
            .style(theme.dim().add_modifier(Modifier::BOLD)),
    )
    .block(block)
    .column_spacing(2)
    .row_highlight_style(theme.selected())
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(if empty {
        None
    } else {
        Some(app.lease_selected)
    });
    frame.render_stateful_widget(table, table_area, &mut state);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(" Attached keys ");
    let lines: Vec<Line> = match (leases.get(app.lease_selected), &app.leases.error) {
        (Some(l), _) if l.keys.is_empty() => {
            vec![Line::from(Span::styled("(no keys attached)", theme.dim()))]
        }
        (Some(l), _) => l.keys.iter().map(|k| Line::from(display_key(k))).collect(),
        (None, Some(e)) => vec![Line::from(Span::styled(
            format!("✖ {e}"),
            theme.fg(Color::Red),
        ))],
        (None, None) if app.leases.loading => {
            vec![Line::from(Span::styled("loading…", theme.dim()))]
        }
        (None, None) => vec![Line::from(Span::styled("(no leases)", theme.dim()))],
    };
    frame.render_widget(Paragraph::new(lines).block(block), detail);
}

// ----- Actions view -------------------------------------------------------

fn draw_actions(frame: &mut Frame, app: &App, theme: Theme, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Length(26), Constraint::Min(20)]).areas(area);
    let title = if app.config.read_only {
        " Actions (read-only: disabled) "
    } else {
        " Actions "
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(app.actions_pane == ActionsPane::Actions))
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
    let mut state = TableState::default().with_selected(Some(app.action_selected));
    frame.render_stateful_widget(table, left, &mut state);

    let kind = ActionKind::ALL[app.action_selected.min(ActionKind::ALL.len() - 1)];
    let [targets, info] = Layout::vertical([
        Constraint::Length((app.rows.len() as u16 + 3).min(right.height / 2).max(3)),
        Constraint::Min(3),
    ])
    .areas(right);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(app.actions_pane == ActionsPane::Targets))
        .title(" Target member (Tab to choose) ");
    let rows: Vec<Row> = app
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
    let mut state = TableState::default().with_selected(if app.rows.is_empty() {
        None
    } else {
        Some(app.member_selected)
    });
    frame.render_stateful_widget(table, targets, &mut state);

    let q = app.quorum();
    let mut lines = vec![
        Line::from(Span::styled(kind.label(), theme.bold(Color::White))),
        Line::from(kind.description()),
        Line::from(""),
        Line::from(vec![
            Span::styled("now       ", theme.dim()),
            Span::raw(q.verdict()),
        ]),
    ];
    let target = app.rows.get(app.member_selected);
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

// ----- Overlays -----------------------------------------------------------

fn draw_confirm(frame: &mut Frame, c: &Confirm, theme: Theme) {
    let area = frame.area();
    let mut lines = vec![
        Line::from(vec![
            Span::styled("target  ", theme.dim()),
            Span::styled(c.target.clone(), theme.bold(Color::White)),
        ]),
        Line::from(""),
    ];
    lines.extend(c.lines.iter().map(|l| Line::from(l.clone())));
    if let Some(i) = &c.impact {
        lines.push(Line::from(""));
        lines.push(Line::from(vec![
            Span::styled("quorum  ", theme.dim()),
            Span::raw(i.summary.clone()),
        ]));
        if let Some(r) = &i.refusal {
            if c.overridden {
                lines.push(Line::from(Span::styled(
                    format!("⚠ OVERRIDDEN: {r}"),
                    theme.bold(Color::Yellow),
                )));
            } else {
                lines.push(Line::from(Span::styled(
                    format!("✖ REFUSED: {r}"),
                    theme.bold(Color::Red),
                )));
                lines.push(Line::from(Span::styled(
                    "press ! to override at your own risk",
                    theme.fg(Color::Red),
                )));
            }
        }
    }
    lines.push(Line::from(""));
    let no = if c.yes {
        Span::raw("[ No ]")
    } else {
        Span::styled("[ No ]", theme.badge(Color::Cyan))
    };
    let yes = if c.yes {
        Span::styled("[ Yes ]", theme.badge(Color::Red))
    } else {
        Span::raw("[ Yes ]")
    };
    lines.push(Line::from(vec![
        Span::raw("        "),
        no,
        Span::raw("   "),
        yes,
    ]));
    lines.push(Line::from(Span::styled(
        "y yes · n/Esc no · ←/→ choose · Enter confirms the choice",
        theme.dim(),
    )));
    let width = (lines.iter().map(Line::width).max().unwrap_or(40) as u16 + 4)
        .max(50)
        .min(area.width);
    // Lines wider than the popup wrap: count the rows they take.
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let height: usize = lines.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let rect = popup(area, width, height as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.bold(Color::Red))
        .title(Span::styled(
            format!(" {} ", c.title),
            theme.bold(Color::Red),
        ));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn draw_info(frame: &mut Frame, title: &str, lines: &[String], theme: Theme) {
    let area = frame.area();
    let mut text: Vec<Line> = lines.iter().map(|l| Line::from(l.clone())).collect();
    text.push(Line::from(""));
    text.push(Line::from(Span::styled("Enter/Esc closes", theme.dim())));
    let width = (text.iter().map(Line::width).max().unwrap_or(30) as u16 + 4).min(area.width);
    let inner = usize::from(width.saturating_sub(2)).max(1);
    let height: usize = text.iter().map(|l| l.width().max(1).div_ceil(inner)).sum();
    let rect = popup(area, width, height as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.bold(Color::Green))
        .title(Span::styled(format!(" {title} "), theme.bold(Color::Green)));
    frame.render_widget(
        Paragraph::new(text).block(block).wrap(Wrap { trim: false }),
        rect,
    );
}

fn draw_prompt(frame: &mut Frame, p: &crate::app::Prompt, theme: Theme) {
    let area = frame.area();
    let mut lines = Vec::new();
    for (i, (label, value)) in p.fields.iter().enumerate() {
        let cursor = if i == p.field { "█" } else { "" };
        let style = if i == p.field {
            theme.bold(Color::White)
        } else {
            Style::default()
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{label:>9}: "), theme.dim()),
            Span::styled(format!("{value}{cursor}"), style),
        ]));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "Enter next/submit · Tab switch field · Esc cancel",
        theme.dim(),
    )));
    let rect = popup(area, 70, lines.len() as u16 + 2);
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.bold(Color::Cyan))
        .title(format!(" {} ", p.title));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        rect,
    );
}

fn draw_completions(frame: &mut Frame, app: &App, theme: Theme, footer: Rect) {
    if app.completions.is_empty() {
        return;
    }
    let area = frame.area();
    let n = app.completions.len().min(10) as u16;
    let width = app
        .completions
        .iter()
        .map(|c| c.chars().count())
        .max()
        .unwrap_or(10) as u16
        + 4;
    let rect = Rect::new(
        footer.x,
        footer.y.saturating_sub(n + 2),
        width.min(area.width),
        n + 2,
    )
    .intersection(area);
    frame.render_widget(Clear, rect);
    let lines: Vec<Line> = app
        .completions
        .iter()
        .take(10)
        .map(|c| Line::from(format!(":{c}")))
        .collect();
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(" Tab ");
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}

fn draw_help(frame: &mut Frame, app: &App, theme: Theme) {
    let area = frame.area();
    let scope = app.scope();
    let mut lines = Vec::new();
    let mut current: Option<Scope> = None;
    for b in keymap::bindings_for(scope, app.config.read_only) {
        if current != Some(b.scope) {
            if current.is_some() {
                lines.push(Line::from(""));
            }
            lines.push(Line::from(Span::styled(
                b.scope.title(),
                theme.bold(Color::Cyan),
            )));
            current = Some(b.scope);
        }
        lines.push(Line::from(vec![
            Span::styled(format!("  {:<10}", b.label), theme.bold(Color::White)),
            Span::raw(b.help),
        ]));
    }
    lines.push(Line::from(vec![
        Span::styled(format!("  {:<10}", "Ctrl-C"), theme.bold(Color::White)),
        Span::raw("quit, always"),
    ]));
    lines.push(Line::from(""));
    lines.push(Line::from(Span::styled(
        "Commands (:)",
        theme.bold(Color::Cyan),
    )));
    for (c, h) in crate::palette::COMMANDS {
        lines.push(Line::from(format!("  :{c} {h}")));
    }
    let total = lines.len() as u16;
    let rect = popup(area, 64, total.saturating_add(2));
    let visible = rect.height.saturating_sub(2);
    let max_scroll = total.saturating_sub(visible);
    let scroll = app.help_scroll.min(max_scroll);
    let title = if max_scroll == 0 {
        " Help · Esc closes ".to_string()
    } else {
        format!(
            " Help · lines {}-{} of {total} · j/k PgUp/PgDn scroll · Esc closes ",
            scroll + 1,
            scroll + visible
        )
    };
    frame.render_widget(Clear, rect);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.bold(Color::Cyan))
        .title(title);
    frame.render_widget(Paragraph::new(lines).block(block).scroll((scroll, 0)), rect);
}

/// The Cluster view as plain text, for `--once`.
pub fn cluster_text(app: &App, width: u16) -> String {
    let height = (app.rows.len() as u16 + 30).max(MIN_HEIGHT);
    let backend = ratatui::backend::TestBackend::new(width.max(MIN_WIDTH), height);
    let Ok(mut terminal) = ratatui::Terminal::new(backend);
    let theme = Theme { color: false };
    let _ = terminal.draw(|f| {
        let area = f.area();
        let [header, table, detail] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(app.rows.len() as u16 + 3),
            Constraint::Min(0),
        ])
        .areas(area);
        draw_header(f, app, theme, header);
        draw_members_table(f, app, theme, table, false);
        let _ = detail;
    });
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..(app.rows.len() as u16 + 5).min(buffer.area.height) {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
