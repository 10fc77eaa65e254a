//! The frame around the views: the tab bar, the header (cluster, leader,
//! quorum verdict, connection state and freshness), the footer of key hints
//! (from the keymap), and the toasts (the one stateful part).

use std::time::Duration;

use ratatui::Frame;
use ratatui::layout::{Alignment, Rect};
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::{Component, Ctx, DrawCtx, Shared};
use crate::action::Action;
use crate::app::View;
use crate::cluster_state::MemberRow;
use crate::keymap::{self, Intent};
use crate::text::{self, human_duration};
use crate::ui::{Theme, age_text};

/// How long a toast stays.
pub const TOAST_FOR: Duration = Duration::from_secs(6);

/// What the footer says of the Keys view's toggles.
#[derive(Clone, Copy, Debug, Default)]
pub struct KeysFooter {
    /// The listing is flat (`t` offers the tree).
    pub flat: bool,
    /// A watch is on (`w` offers to stop it).
    pub watching: bool,
}

/// The tab bar with the PAUSED, READ-ONLY and running badges.
pub fn draw_tabs(frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
    let (app, theme) = (ctx.shared, ctx.theme);
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
fn connection(app: &Shared, theme: Theme) -> Vec<Span<'static>> {
    let c = &app.cluster.snapshot;
    if c.data.is_none() && c.error.is_none() {
        return vec![Span::styled("◌ connecting…", theme.fg(Color::Yellow))];
    }
    if let Some(e) = &c.error {
        let mut spans = Vec::new();
        if c.data.is_some() {
            let age = app.cluster.age(app.now).unwrap_or_default();
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
    let q = app.cluster.quorum();
    let (glyph, word, color) = if q.healthy == q.total {
        ("✔", "connected", Color::Green)
    } else {
        ("▲", "degraded", Color::Yellow)
    };
    vec![
        Span::styled(format!("{glyph} {word}"), theme.fg(color)),
        Span::styled(
            format!(
                " · refreshed {}",
                age_text(app.now, app.cluster.snapshot.at)
            ),
            theme.dim(),
        ),
    ]
}

/// The two header lines: cluster, leader, term, revision and the quorum
/// verdict; the connection state.
pub fn draw_header(frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
    let (app, theme) = (ctx.shared, ctx.theme);
    let q = app.cluster.quorum();
    // No member answers: the quorum is unknown (the members may well be up,
    // only out of the console's reach), so no verdict is claimed.
    let outage = app.cluster.snapshot.stale();
    let verdict_style = if app.cluster.rows.is_empty() || outage {
        theme.dim()
    } else if !q.has_quorum() {
        theme.bold(Color::Red)
    } else if q.tolerates() == 0 || q.healthy < q.total {
        theme.bold(Color::Yellow)
    } else {
        theme.bold(Color::Green)
    };
    let verdict_glyph = if app.cluster.rows.is_empty() {
        "?"
    } else if outage || !q.has_quorum() {
        "✖"
    } else if q.tolerates() == 0 || q.healthy < q.total {
        "▲"
    } else {
        "✔"
    };
    let cluster_id = app
        .cluster
        .snapshot
        .data
        .as_ref()
        .map_or("-".to_string(), |s| format!("{:x}", s.cluster_id));
    let leader = app
        .cluster
        .leader()
        .map_or("none".to_string(), MemberRow::name);
    let term = app
        .cluster
        .term()
        .map_or("-".to_string(), |t| t.to_string());
    let rev = app
        .cluster
        .revision()
        .map_or("-".to_string(), |r| r.to_string());
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
                if app.cluster.rows.is_empty() {
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
        .snapshot
        .data
        .as_ref()
        .map(|s| s.via.clone())
        .unwrap_or_else(|| app.config.endpoints.join(","));
    spans.push(Span::styled(format!(" · via {via}"), theme.dim()));
    // Derived from the last good data: dimmed while that data is stale.
    let line1 = if app.cluster.snapshot.stale() {
        line1.style(theme.dim())
    } else {
        line1
    };
    frame.render_widget(Paragraph::new(vec![line1, Line::from(spans)]), area);
}

/// The footer's key hints; when they do not fit `width`, hints are dropped
/// from the middle so that help and quit always stay visible.
fn footer_spans(ctx: &DrawCtx, keys: KeysFooter, width: u16) -> Vec<Span<'static>> {
    let (app, theme) = (ctx.shared, ctx.theme);
    let mut items: Vec<(Span<'static>, Span<'static>, bool)> = Vec::new();
    for b in keymap::bindings_for(app.view.scope(), app.config.read_only) {
        if !b.footer {
            continue;
        }
        let key = Span::styled(format!(" {} ", b.label), theme.bold(Color::Cyan));
        let word = b.help.split([' ', '(']).next().unwrap_or("");
        let word = match b.intent {
            Intent::Freeze if app.paused => "resume",
            Intent::Freeze => "freeze",
            Intent::ToggleFlat if keys.flat => "tree",
            Intent::ToggleFlat => "flat",
            Intent::Watch if keys.watching => "unwatch",
            Intent::Watch => "watch",
            Intent::NextPane => "pane",
            Intent::Help => "help",
            Intent::Palette => "command",
            Intent::Enter => "run",
            Intent::Edit => "edit",
            Intent::Delete if app.view == View::Leases => "revoke",
            _ => word,
        };
        let keep = matches!(b.intent, Intent::Help | Intent::Quit);
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

/// The footer: the key hints of the focused view.
pub fn draw_footer(frame: &mut Frame, area: Rect, ctx: &DrawCtx, keys: KeysFooter) {
    let line = Line::from(footer_spans(ctx, keys, area.width));
    frame.render_widget(Paragraph::new(line), area);
}

/// A transient message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toast {
    /// Text.
    pub text: String,
    /// Whether it reports a failure.
    pub error: bool,
    /// When it appeared.
    pub at: std::time::Instant,
}

/// The toasts: at most three, each for [`TOAST_FOR`].
#[derive(Debug, Default)]
pub struct Toasts {
    /// Shown toasts, newest last.
    pub list: Vec<Toast>,
}

impl Toasts {
    /// Drops the toast saying `text` (a "… running" one whose answer came).
    pub fn dismiss(&mut self, text: &str) {
        self.list.retain(|t| t.text != text);
    }
}

impl Component for Toasts {
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action> {
        let now = ctx.shared.now;
        match action {
            Action::Toast { mut text, error } => {
                // An error reads as one without its red colour too.
                if error && !text.starts_with('✖') {
                    text = format!("✖ {text}");
                }
                self.list.push(Toast {
                    text,
                    error,
                    at: now,
                });
                if self.list.len() > 3 {
                    self.list.remove(0);
                }
            }
            Action::Tick(..) => self
                .list
                .retain(|t| now.saturating_duration_since(t.at) < TOAST_FOR),
            _ => {}
        }
        None
    }

    /// Draws the toasts at the bottom right of `area` (the body).
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        draw_toasts(frame, &self.list, ctx.theme, area);
    }
}

fn draw_toasts(frame: &mut Frame, toasts: &[Toast], theme: Theme, body: Rect) {
    let n = toasts.len() as u16;
    if n == 0 {
        return;
    }
    let width = toasts
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
    let lines: Vec<Line> = toasts
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
