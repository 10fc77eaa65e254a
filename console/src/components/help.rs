//! The help overlay, generated from the same keymap table that dispatches
//! keys (plus the palette's commands). While open, the movement keys scroll
//! it; Esc, `?`, `q` and Enter close it; nothing else gets through.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Component, Ctx, DrawCtx};
use crate::action::Action;
use crate::keymap::{self, Intent, Scope};
use crate::ui::popup;

/// The help overlay component.
#[derive(Debug, Default)]
pub struct HelpView {
    /// Shown.
    pub open: bool,
    /// First line shown (the drawing clamps it to the text's length).
    pub scroll: u16,
}

impl HelpView {
    fn on_key(&mut self, key: KeyEvent, page: u16) {
        if matches!(
            key.code,
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Enter
        ) {
            self.open = false;
            self.scroll = 0;
            return;
        }
        let Some(binding) = keymap::lookup(&key, Scope::Global, true) else {
            return;
        };
        self.scroll = match binding.intent {
            Intent::Down => self.scroll.saturating_add(1),
            Intent::Up => self.scroll.saturating_sub(1),
            Intent::PageDown => self.scroll.saturating_add(page),
            Intent::PageUp => self.scroll.saturating_sub(page),
            Intent::Top => 0,
            Intent::Bottom => u16::MAX,
            _ => self.scroll,
        };
    }
}

impl Component for HelpView {
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action> {
        match action {
            Action::OpenHelp => self.open = true,
            Action::Key(key) => self.on_key(key, ctx.shared.page() as u16),
            _ => {}
        }
        None
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        if self.open {
            draw_help(frame, area, self, ctx);
        }
    }
}

fn draw_help(frame: &mut Frame, area: Rect, help: &HelpView, ctx: &DrawCtx) {
    let theme = ctx.theme;
    let scope = ctx.shared.view.scope();
    let mut lines = Vec::new();
    let mut current: Option<Scope> = None;
    for b in keymap::bindings_for(scope, ctx.shared.config.read_only) {
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
    let scroll = help.scroll.min(max_scroll);
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
