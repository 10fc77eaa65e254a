//! The Leases view: every lease with its TTL counting down (from the age
//! of the list) and its attached keys; revoking asks to confirm first.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState};

use super::modal::Confirm;
use super::{Component, Ctx, DrawCtx, move_selection};
use crate::action::Action;
use crate::app::{Command, Event, Op, View};
use crate::fresh::Fresh;
use crate::keymap::Intent;
use crate::model::Lease;
use crate::quorum::{self, Change};
use crate::text::human_duration;
use crate::tree::display_key;
use crate::ui::{freshness, panel_block};

/// The Leases view component.
#[derive(Debug, Default)]
pub struct LeasesView {
    /// The lease list.
    pub leases: Fresh<Vec<Lease>>,
    /// Selected lease.
    pub selected: usize,
}

impl LeasesView {
    fn list(&mut self, ctx: &mut Ctx) {
        let req = ctx.id();
        self.leases.request(req);
        ctx.io(Command::ListLeases { req });
    }

    fn on_leases(&mut self, req: u64, at: Instant, result: Result<Vec<Lease>, String>) {
        if req != self.leases.req {
            return;
        }
        match result {
            Ok(mut leases) => {
                leases.sort_by_key(|l| l.id);
                self.leases.ok(at, leases);
            }
            Err(e) => self.leases.fail(e),
        }
        let n = self.leases.data.as_ref().map_or(0, Vec::len);
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    /// The confirmation of revoking the selected lease.
    fn confirm_revoke(&self, ctx: &Ctx) -> Option<Action> {
        let lease = self.leases.data.as_ref()?.get(self.selected)?;
        let keys: Vec<String> = lease.keys.iter().take(5).map(|k| display_key(k)).collect();
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
        Some(Action::Confirm(Box::new(Confirm::new(
            "Revoke lease?".into(),
            format!("lease {:016x} (TTL {}s)", lease.id, lease.granted_ttl),
            lines,
            Some(quorum::impact(&ctx.shared.cluster.quorum(), Change::Keep)),
            Op::LeaseRevoke { id: lease.id },
        ))))
    }
}

impl Component for LeasesView {
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action> {
        match action {
            Action::Shown if self.leases.data.is_none() && !self.leases.loading => self.list(ctx),
            Action::Refresh | Action::Mutated(Op::LeaseRevoke { .. }) => self.list(ctx),
            // The list follows the cluster polls while it is on screen.
            Action::Polled { ok: true }
                if ctx.shared.view == View::Leases
                    && !ctx.shared.paused
                    && !self.leases.loading =>
            {
                self.list(ctx)
            }
            Action::Data(Event::Leases { req, at, result }) => self.on_leases(req, at, result),
            Action::Intent(intent) => {
                let n = self.leases.data.as_ref().map_or(0, Vec::len);
                if let Some(i) = move_selection(self.selected, n, intent, ctx.shared.page()) {
                    self.selected = i;
                } else if intent == Intent::Delete {
                    return self.confirm_revoke(ctx);
                }
            }
            _ => {}
        }
        None
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        draw_leases(frame, area, self, ctx);
    }
}

fn draw_leases(frame: &mut Frame, area: Rect, view: &LeasesView, ctx: &DrawCtx) {
    let (app, theme) = (ctx.shared, ctx.theme);
    let (fresh, stale) = freshness(app.now, &view.leases);
    let leases = view.leases.data.as_deref().unwrap_or(&[]);
    let [table_area, detail] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(area);
    let block = panel_block(
        format!(" Leases ({}) · {fresh} ", leases.len()),
        stale,
        theme,
    );
    let elapsed = view.leases.at.map_or(0, |at| {
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
    let mut state =
        TableState::default().with_selected(if empty { None } else { Some(view.selected) });
    frame.render_stateful_widget(table, table_area, &mut state);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(" Attached keys ");
    let lines: Vec<Line> = match (leases.get(view.selected), &view.leases.error) {
        (Some(l), _) if l.keys.is_empty() => {
            vec![Line::from(Span::styled("(no keys attached)", theme.dim()))]
        }
        (Some(l), _) => l.keys.iter().map(|k| Line::from(display_key(k))).collect(),
        (None, Some(e)) => vec![Line::from(Span::styled(
            format!("✖ {e}"),
            theme.fg(Color::Red),
        ))],
        (None, None) if view.leases.loading => {
            vec![Line::from(Span::styled("loading…", theme.dim()))]
        }
        (None, None) => vec![Line::from(Span::styled("(no leases)", theme.dim()))],
    };
    frame.render_widget(Paragraph::new(lines).block(block), detail);
}
