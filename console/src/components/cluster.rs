//! The Cluster view: the members table (role, health, Raft progress, sizes,
//! rates; a member that stopped answering keeps its last good values,
//! dimmed under STALE), active alarms, the selected member's detail, and
//! sparklines. The selected member is the shared
//! [`crate::cluster_state::ClusterState::selected`]: this view moves it,
//! and Enter opens the Actions view on it.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, TableState, Wrap};

use super::{Component, Ctx, DrawCtx, Shared, move_selection};
use crate::action::Action;
use crate::cluster_state::{MemberRow, Role};
use crate::keymap::Intent;
use crate::text::{human_bytes, human_duration, human_rate};
use crate::ui::{Theme, freshness, panel_block};

/// The Cluster view component (its selection is shared, see the module docs).
#[derive(Debug, Default)]
pub struct ClusterView;

impl Component for ClusterView {
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action> {
        let Action::Intent(intent) = action else {
            return None;
        };
        let cluster = &ctx.shared.cluster;
        let n = cluster.rows.len();
        if let Some(i) = move_selection(cluster.selected, n, intent, ctx.shared.page()) {
            Some(Action::SelectMember(i))
        } else if intent == Intent::Enter && n > 0 {
            Some(Action::ActOnSelected)
        } else {
            None
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        draw_cluster(frame, ctx.shared, ctx.theme, area);
    }
}

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

fn member_columns(app: &Shared) -> Vec<Column> {
    let rows = &app.cluster.rows;
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

fn draw_cluster(frame: &mut Frame, app: &Shared, theme: Theme, area: Rect) {
    let alarms: Vec<String> = app
        .cluster
        .snapshot
        .data
        .as_ref()
        .and_then(|s| s.alarms.as_ref().ok())
        .map(|a| {
            a.iter()
                .map(|a| format!("{} on {:x}", a.kind, a.member_id))
                .collect()
        })
        .unwrap_or_default();
    let table_h =
        (app.cluster.rows.len() as u16 + 3).clamp(4, area.height.saturating_sub(6).max(4));
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

/// The members table; `selectable` marks the selected member.
pub fn draw_members_table(
    frame: &mut Frame,
    app: &Shared,
    theme: Theme,
    area: Rect,
    selectable: bool,
) {
    let stale = app.cluster.snapshot.stale();
    let (fresh, _) = freshness(app.now, &app.cluster.snapshot);
    let title = format!(" Members ({}) · {fresh} ", app.cluster.rows.len());
    let block = panel_block(title, stale, theme);
    if app.cluster.rows.is_empty() {
        let msg = match &app.cluster.snapshot.error {
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
        .cluster
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
    let mut state = TableState::default().with_selected(selectable.then_some(app.cluster.selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_member_detail(frame: &mut Frame, app: &Shared, theme: Theme, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim());
    let Some(r) = app.cluster.rows.get(app.cluster.selected) else {
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
    let style = if app.cluster.snapshot.stale() {
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

fn draw_sparklines(frame: &mut Frame, app: &Shared, theme: Theme, area: Rect) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(" Activity (per poll) ");
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let s = &app.cluster.series;
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
