//! Forms: a few labelled fields typed in a popup (put a key, add a member,
//! compact). While open, the form has the keyboard; filled in, it becomes
//! [`Action::Answered`] for the component that asked.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{Component, Ctx, DrawCtx};
use crate::action::Action;
use crate::ui::{Theme, popup};

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

/// The form component.
#[derive(Debug, Default)]
pub struct PromptView {
    /// The open form, if any.
    pub form: Option<Prompt>,
}

impl PromptView {
    /// Whether a form is open (it then has the keyboard).
    pub fn is_open(&self) -> bool {
        self.form.is_some()
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        let mut p = self.form.take()?;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => return None,
            KeyCode::Enter => {
                if p.field + 1 >= p.fields.len() {
                    return Some(Action::Answered(p));
                }
                p.field += 1;
            }
            KeyCode::Tab | KeyCode::Down => p.field = (p.field + 1) % p.fields.len(),
            KeyCode::BackTab | KeyCode::Up => {
                p.field = (p.field + p.fields.len() - 1) % p.fields.len()
            }
            KeyCode::Backspace => {
                p.fields[p.field].1.pop();
            }
            KeyCode::Char('u') if ctrl => p.fields[p.field].1.clear(),
            KeyCode::Char(c) if !ctrl => p.fields[p.field].1.push(c),
            _ => {}
        }
        self.form = Some(p);
        None
    }
}

impl Component for PromptView {
    fn update(&mut self, action: Action, _ctx: &mut Ctx) -> Option<Action> {
        match action {
            Action::Ask(p) => self.form = Some(p),
            Action::Key(key) => return self.on_key(key),
            Action::Paste(text) => {
                if let Some(p) = self.form.as_mut()
                    && let Some(f) = p.fields.get_mut(p.field)
                {
                    f.1.push_str(&text);
                }
            }
            _ => {}
        }
        None
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        if let Some(p) = &self.form {
            draw_prompt(frame, area, p, ctx.theme);
        }
    }
}

fn draw_prompt(frame: &mut Frame, area: Rect, p: &Prompt, theme: Theme) {
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
