//! The `:` command palette: the line typed in the footer, its completions
//! (Tab) and, on Enter, the command as an action for whoever runs it
//! (parsing lives in [`crate::palette`]). While open, it has the keyboard.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::{Component, Ctx, DrawCtx};
use crate::action::Action;
use crate::palette::{self, Parsed};
use crate::ui::Theme;

/// The palette component.
#[derive(Debug, Default)]
pub struct PaletteView {
    /// The line being typed, while open.
    pub text: Option<String>,
    /// Completions of the line.
    pub completions: Vec<String>,
}

impl PaletteView {
    /// Whether the palette is open (it then has the keyboard).
    pub fn is_open(&self) -> bool {
        self.text.is_some()
    }

    fn on_key(&mut self, key: KeyEvent, ctx: &Ctx) -> Option<Action> {
        let mut text = self.text.take()?;
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let names = || ctx.shared.cluster.member_names();
        match key.code {
            KeyCode::Esc => {
                self.completions.clear();
                return None;
            }
            KeyCode::Enter => {
                self.completions.clear();
                return Some(command(&text, ctx.shared.config.read_only));
            }
            KeyCode::Tab => {
                let done = palette::complete(&text, &names());
                if done.len() == 1 {
                    text = done[0].clone();
                    self.completions.clear();
                } else {
                    if let Some(common) = palette::common_prefix(&done)
                        && common.len() > text.len()
                    {
                        text = common;
                    }
                    self.completions = done;
                }
            }
            KeyCode::Backspace => {
                text.pop();
                self.completions = palette::complete(&text, &names());
            }
            KeyCode::Char(c) if !ctrl => {
                text.push(c);
                self.completions = palette::complete(&text, &names());
            }
            _ => {}
        }
        self.text = Some(text);
        None
    }
}

/// The action a palette line asks for.
fn command(text: &str, read_only: bool) -> Action {
    let read_only_refusal = || Action::Toast {
        text: "read-only: mutations are disabled".to_string(),
        error: true,
    };
    match palette::parse(text) {
        Ok(Parsed::Quit) => Action::Quit,
        Ok(Parsed::View(v)) => Action::SwitchView(v),
        Ok(Parsed::Keys(prefix)) => Action::OpenPrefix(prefix.into_bytes()),
        Ok(Parsed::Flat(flat)) => Action::SetFlat(flat),
        Ok(Parsed::Help) => Action::OpenHelp,
        Ok(Parsed::Refresh) => Action::Refresh,
        Ok(Parsed::MemberAdd { .. } | Parsed::OnMember(..)) if read_only => read_only_refusal(),
        Ok(Parsed::MemberAdd { url, learner, name }) => Action::AddMember { url, name, learner },
        Ok(Parsed::OnMember(kind, who)) => Action::OnMember(kind, who),
        Ok(Parsed::Action(kind)) => Action::StartAction(kind),
        Ok(Parsed::Compact(rev)) => Action::Compact(rev),
        Err(e) => Action::Toast {
            text: e,
            error: true,
        },
    }
}

impl Component for PaletteView {
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action> {
        match action {
            Action::OpenPalette => {
                self.completions = palette::complete("", &ctx.shared.cluster.member_names());
                self.text = Some(String::new());
                None
            }
            Action::Key(key) => self.on_key(key, ctx),
            Action::Paste(pasted) => {
                if let Some(text) = self.text.as_mut() {
                    text.push_str(&pasted);
                }
                None
            }
            _ => None,
        }
    }

    /// Draws the line in `area` (the footer) and the completions above it.
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        let Some(t) = &self.text else { return };
        let theme = ctx.theme;
        let hint = palette::hint(t)
            .map(|h| format!("  {h}"))
            .unwrap_or_default();
        let line = Line::from(vec![
            Span::styled(":", theme.bold(Color::Cyan)),
            Span::raw(format!("{t}█")),
            Span::styled(
                format!("{hint}   Tab complete · Enter run · Esc cancel"),
                theme.dim(),
            ),
        ]);
        frame.render_widget(Paragraph::new(line), area);
        draw_completions(frame, &self.completions, theme, area);
    }
}

fn draw_completions(frame: &mut Frame, completions: &[String], theme: Theme, footer: Rect) {
    if completions.is_empty() {
        return;
    }
    let area = frame.area();
    let n = completions.len().min(10) as u16;
    let width = completions
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
    let lines: Vec<Line> = completions
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
