//! The components: one per view and overlay, each owning its slice of the
//! state, updated by [`Component::update`] and drawn by the pure
//! [`Component::draw`].
//!
//! - [`cluster`]: the Cluster view (members table, member detail,
//!   sparklines); the selected member lives in the shared
//!   [`crate::cluster_state::ClusterState`], as the Actions view targets it too.
//! - [`keys`]: the Keys view (listing in pages, value, history, watch, the
//!   `/` filter line).
//! - [`leases`]: the Leases view.
//! - [`actions`]: the Actions view, and the confirmations of membership and
//!   maintenance actions (with their quorum impact).
//! - [`help`]: the help overlay, generated from the keymap.
//! - [`palette`]: the `:` command palette line and its completions.
//! - [`prompt`]: forms (put, member add, compact).
//! - [`modal`]: the confirmation modal (defaults to No, refuses what breaks
//!   quorum unless overridden) and information popups.
//! - [`chrome`]: tabs, header and footer (drawing only) and the toasts.
//!
//! Components never do I/O and never read the clock: what they need comes
//! in the [`Action`] or the [`Ctx`], and I/O leaves as [`Action::Io`].

use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;

use crate::action::Action;
use crate::app::{Command, Config, View};
use crate::cluster_state::ClusterState;
use crate::keymap::Intent;
use crate::ui::Theme;

pub mod actions;
pub mod chrome;
pub mod cluster;
pub mod help;
pub mod keys;
pub mod leases;
pub mod modal;
pub mod palette;
pub mod prompt;

/// A view or overlay.
pub trait Component {
    /// Applies one action; may answer with a follow-up action.
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action>;

    /// Draws the component in `area`: a pure function of its state and `ctx`.
    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx);
}

/// State every component may read; only the dispatcher changes it.
#[derive(Debug)]
pub struct Shared {
    /// Settings.
    pub config: Config,
    /// Monotonic now (from the last tick).
    pub now: Instant,
    /// Wall clock, unix seconds (from the last tick).
    pub unix_now: f64,
    /// Terminal size.
    pub size: (u16, u16),
    /// The view on screen.
    pub view: View,
    /// Polling frozen.
    pub paused: bool,
    /// Mutations sent and not answered yet.
    pub running: usize,
    /// The cluster as polled.
    pub cluster: ClusterState,
}

impl Shared {
    /// Rows a page up/down moves.
    pub fn page(&self) -> usize {
        usize::from(self.size.1.saturating_sub(8)).max(1)
    }
}

/// What a component's update gets besides the action: the shared state,
/// request ids, and a queue for actions beyond its one follow-up (the
/// dispatcher runs them in order, after the current action).
pub struct Ctx<'a> {
    /// Shared state.
    pub shared: &'a Shared,
    next_id: &'a mut u64,
    sent: &'a mut Vec<Action>,
}

impl<'a> Ctx<'a> {
    /// A context over the dispatcher's state.
    pub fn new(shared: &'a Shared, next_id: &'a mut u64, sent: &'a mut Vec<Action>) -> Self {
        Self {
            shared,
            next_id,
            sent,
        }
    }

    /// A fresh request id (ids increase, so a late answer is recognised).
    pub fn id(&mut self) -> u64 {
        *self.next_id += 1;
        *self.next_id
    }

    /// Queues an action.
    pub fn send(&mut self, action: Action) {
        self.sent.push(action);
    }

    /// Queues a command for the data layer.
    pub fn io(&mut self, command: Command) {
        self.send(Action::Io(command));
    }

    /// Queues a toast.
    pub fn toast(&mut self, text: impl Into<String>, error: bool) {
        self.send(Action::Toast {
            text: text.into(),
            error,
        });
    }
}

/// What drawing gets: the shared state and the theme.
pub struct DrawCtx<'a> {
    /// Shared state.
    pub shared: &'a Shared,
    /// Colours on or off.
    pub theme: Theme,
}

/// New selection index for a movement intent, or None if `intent` is not one.
pub fn move_selection(current: usize, len: usize, intent: Intent, page: usize) -> Option<usize> {
    let last = len.saturating_sub(1);
    let next = match intent {
        Intent::Up => current.saturating_sub(1),
        Intent::Down => (current + 1).min(last),
        Intent::Top => 0,
        Intent::Bottom => last,
        Intent::PageUp => current.saturating_sub(page),
        Intent::PageDown => (current + page).min(last),
        _ => return None,
    };
    Some(next)
}
