//! Drawing: a pure function of the [`App`] state onto a ratatui frame. It
//! lays out the frame and has each component draw its part
//! ([`crate::components`]), overlays last; it also holds what they share:
//! the [`Theme`], freshness texts and popup placement.
//!
//! Every panel says how old its data is; data kept after a failed refresh is
//! dimmed under a `STALE` badge. Colour is always paired with a glyph or a
//! word, and disappears entirely with `NO_COLOR`/`--no-color`. Popups are
//! clamped to the frame and below [`MIN_WIDTH`]x[`MIN_HEIGHT`] only a
//! "terminal too small" screen is drawn, so no size can make drawing panic.

use std::time::{Duration, Instant};

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};

use crate::app::{App, View};
use crate::cluster_state::Role;
use crate::components::{Component, DrawCtx, chrome, cluster};
use crate::fresh::Fresh;
use crate::text::human_duration;

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
    pub(crate) fn fg(self, c: Color) -> Style {
        if self.color {
            Style::default().fg(c)
        } else {
            Style::default()
        }
    }

    pub(crate) fn bold(self, c: Color) -> Style {
        self.fg(c).add_modifier(Modifier::BOLD)
    }

    pub(crate) fn badge(self, c: Color) -> Style {
        if self.color {
            Style::default()
                .fg(Color::Black)
                .bg(c)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    pub(crate) fn selected(self) -> Style {
        if self.color {
            Style::default()
                .bg(Color::DarkGray)
                .add_modifier(Modifier::BOLD)
        } else {
            Style::default().add_modifier(Modifier::REVERSED | Modifier::BOLD)
        }
    }

    pub(crate) fn dim(self) -> Style {
        Style::default().add_modifier(Modifier::DIM)
    }

    pub(crate) fn role(self, role: Role) -> Style {
        match role {
            Role::Leader => self.bold(Color::Yellow),
            Role::Follower => self.fg(Color::Green),
            Role::Learner => self.fg(Color::Cyan),
            Role::Unstarted => self.fg(Color::Gray),
            Role::Down => self.bold(Color::Red),
        }
    }

    pub(crate) fn focus_border(self, focused: bool) -> Style {
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
    let ctx = DrawCtx {
        shared: &app.shared,
        theme,
    };
    let [tabs, header, body, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Min(5),
        Constraint::Length(1),
    ])
    .areas(area);
    chrome::draw_tabs(frame, tabs, &ctx);
    chrome::draw_header(frame, header, &ctx);
    match app.shared.view {
        View::Cluster => app.cluster.draw(frame, body, &ctx),
        View::Keys => app.keys.draw(frame, body, &ctx),
        View::Leases => app.leases.draw(frame, body, &ctx),
        View::Actions => app.actions.draw(frame, body, &ctx),
    }
    if app.keys.editing_filter {
        app.keys.draw_filter_line(frame, footer, theme);
    } else if !app.palette.is_open() {
        chrome::draw_footer(frame, footer, &ctx, app.keys.footer());
    }
    app.toasts.draw(frame, body, &ctx);
    app.prompt.draw(frame, area, &ctx);
    app.palette.draw(frame, footer, &ctx);
    app.modal.draw(frame, area, &ctx);
    app.help.draw(frame, area, &ctx);
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
pub fn popup(area: Rect, w: u16, h: u16) -> Rect {
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

/// "3s ago" (or "never") for data read at `at`.
pub fn age_text(now: Instant, at: Option<Instant>) -> String {
    match at {
        Some(at) => format!("{} ago", human_duration(now.saturating_duration_since(at))),
        None => "never".to_string(),
    }
}

/// A bordered panel whose border and title turn red while its data is
/// stale, so stale data is never mistaken for fresh.
pub fn panel_block(title: String, stale: bool, theme: Theme) -> Block<'static> {
    let (border, title_style) = if stale {
        (theme.fg(Color::Red), theme.bold(Color::Red))
    } else {
        (theme.dim(), theme.bold(Color::White))
    };
    Block::default()
        .borders(Borders::ALL)
        .border_style(border)
        .title(Span::styled(title, title_style))
}

/// " · read 3s ago" / " · STALE 12s: error" / " · loading…" for a panel title.
pub fn freshness<T>(now: Instant, f: &Fresh<T>) -> (String, bool) {
    let stale = f.stale();
    let text = if stale {
        format!(
            "STALE {}",
            human_duration(f.at.map_or(Duration::ZERO, |at| now.saturating_duration_since(at)))
        )
    } else if f.at.is_some() {
        format!("read {}", age_text(now, f.at))
    } else if f.loading {
        "loading…".to_string()
    } else if let Some(e) = &f.error {
        format!("failed: {e}")
    } else {
        "not read yet".to_string()
    };
    (text, stale)
}

/// The Cluster view as plain text, for `--once`.
pub fn cluster_text(app: &App, width: u16) -> String {
    let shared = &app.shared;
    let rows = shared.cluster.rows.len() as u16;
    let height = (rows + 30).max(MIN_HEIGHT);
    let backend = ratatui::backend::TestBackend::new(width.max(MIN_WIDTH), height);
    let Ok(mut terminal) = ratatui::Terminal::new(backend);
    let theme = Theme { color: false };
    let _ = terminal.draw(|f| {
        let area = f.area();
        let [header, table, detail] = Layout::vertical([
            Constraint::Length(2),
            Constraint::Length(rows + 3),
            Constraint::Min(0),
        ])
        .areas(area);
        let ctx = DrawCtx { shared, theme };
        chrome::draw_header(f, header, &ctx);
        cluster::draw_members_table(f, shared, theme, table, false);
        let _ = detail;
    });
    let buffer = terminal.backend().buffer();
    let mut out = String::new();
    for y in 0..(rows + 5).min(buffer.area.height) {
        let mut line = String::new();
        for x in 0..buffer.area.width {
            line.push_str(buffer[(x, y)].symbol());
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}
