//! The modal dialogs: the confirmation of a mutation (it names its target
//! and quorum impact, defaults to No, and refuses what would break quorum
//! unless overridden with `!`) and information popups. While one is open
//! it has the keyboard. It never runs anything itself: "yes" becomes
//! [`Action::Run`].

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::Color;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};

use super::{Component, Ctx, DrawCtx};
use crate::action::Action;
use crate::app::Op;
use crate::quorum::Impact;
use crate::ui::{Theme, popup};

/// A modal dialog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Modal {
    /// Confirmation of a mutation.
    Confirm(Confirm),
    /// A message to read (e.g. the flags to start a new member with).
    Info {
        /// Title.
        title: String,
        /// Lines.
        lines: Vec<String>,
    },
}

/// A pending mutation waiting for "yes".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Confirm {
    /// Title ("Remove member?").
    pub title: String,
    /// What it acts on, named.
    pub target: String,
    /// Further lines (consequences).
    pub lines: Vec<String>,
    /// Quorum impact, for membership changes.
    pub impact: Option<Impact>,
    /// Which button is selected (false = No, the default).
    pub yes: bool,
    /// Whether the user overrode a refusal with `!`.
    pub overridden: bool,
    /// The mutation.
    pub op: Op,
}

impl Confirm {
    /// A confirmation defaulting to No.
    pub fn new(
        title: String,
        target: String,
        lines: Vec<String>,
        impact: Option<Impact>,
        op: Op,
    ) -> Self {
        Self {
            title,
            target,
            lines,
            impact,
            yes: false,
            overridden: false,
            op,
        }
    }

    /// Why the console refuses, unless overridden.
    pub fn refusal(&self) -> Option<&str> {
        if self.overridden {
            return None;
        }
        self.impact.as_ref().and_then(|i| i.refusal.as_deref())
    }
}

/// The modal dialog component.
#[derive(Debug, Default)]
pub struct ModalView {
    /// The open modal, if any.
    pub shown: Option<Modal>,
}

impl ModalView {
    /// Whether a modal is open (it then has the keyboard).
    pub fn is_open(&self) -> bool {
        self.shown.is_some()
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Action> {
        let modal = self.shown.as_mut()?;
        match modal {
            Modal::Info { .. } => {
                if matches!(key.code, KeyCode::Esc | KeyCode::Enter | KeyCode::Char('q')) {
                    self.shown = None;
                }
                None
            }
            Modal::Confirm(c) => match key.code {
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                    self.shown = None;
                    None
                }
                KeyCode::Left
                | KeyCode::Right
                | KeyCode::Tab
                | KeyCode::BackTab
                | KeyCode::Char('h')
                | KeyCode::Char('l') => {
                    c.yes = !c.yes;
                    None
                }
                KeyCode::Char('!') if c.impact.as_ref().is_some_and(|i| i.refusal.is_some()) => {
                    c.overridden = true;
                    None
                }
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                    // Enter confirms the selected button, which is No unless
                    // moved; y says yes outright.
                    let yes = key.code != KeyCode::Enter || c.yes;
                    if !yes {
                        self.shown = None;
                        return None;
                    }
                    if let Some(reason) = c.refusal() {
                        return Some(Action::Toast {
                            text: format!("refused: {reason} (press ! to override)"),
                            error: true,
                        });
                    }
                    let op = c.op.clone();
                    self.shown = None;
                    Some(Action::Run(op))
                }
                _ => None,
            },
        }
    }
}

impl Component for ModalView {
    fn update(&mut self, action: Action, _ctx: &mut Ctx) -> Option<Action> {
        match action {
            Action::Confirm(c) => {
                self.shown = Some(Modal::Confirm(*c));
                None
            }
            Action::Inform { title, lines } => {
                self.shown = Some(Modal::Info { title, lines });
                None
            }
            Action::Key(key) => self.on_key(key),
            _ => None,
        }
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        match &self.shown {
            Some(Modal::Confirm(c)) => draw_confirm(frame, area, c, ctx.theme),
            Some(Modal::Info { title, lines }) => draw_info(frame, area, title, lines, ctx.theme),
            None => {}
        }
    }
}

fn draw_confirm(frame: &mut Frame, area: Rect, c: &Confirm, theme: Theme) {
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

fn draw_info(frame: &mut Frame, area: Rect, title: &str, lines: &[String], theme: Theme) {
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
