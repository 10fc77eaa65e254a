//! [`Action`]: every change of the console's state is one action. The
//! dispatcher ([`crate::app::App`]) makes them from terminal input (through
//! the keymap), the clock and the data layer's answers; components answer
//! an action with at most one follow-up action (a confirmed modal becomes
//! [`Action::Run`], a key press in a view may become [`Action::Confirm`])
//! and may send more through their [`crate::components::Ctx`]; I/O leaves
//! only as [`Action::Io`], which the dispatcher hands to the data layer.

use std::time::Instant;

use crossterm::event::KeyEvent;

use crate::app::{Command, Event, Op, View};
use crate::components::actions::ActionKind;
use crate::components::modal::Confirm;
use crate::components::prompt::Prompt;
use crate::keymap::Intent;

/// One thing that happens to the console.
#[derive(Clone, Debug)]
pub enum Action {
    // ----- the whole console (handled by the dispatcher) -----------------
    /// Leave.
    Quit,
    /// The clock: monotonic now and wall-clock unix seconds.
    Tick(Instant, f64),
    /// The terminal size changed.
    Resize(u16, u16),
    /// Show a view.
    SwitchView(View),
    /// Poll now, and re-read what the focused view shows.
    Refresh,
    /// Freeze or resume polling.
    Freeze,
    /// Select a member (the Cluster view and the Actions view's targets).
    SelectMember(usize),
    /// A transient message.
    Toast {
        /// Text.
        text: String,
        /// Whether it reports a failure.
        error: bool,
    },
    /// A confirmed mutation: counted as running, then sent.
    Run(Op),
    /// Something for the data layer.
    Io(Command),

    // ----- the focused component ------------------------------------------
    /// What a key means to the focused view (from the keymap).
    Intent(Intent),
    /// A raw key for the overlay that has the keyboard (modal, form,
    /// palette, filter line, help).
    Key(KeyEvent),
    /// Pasted text for the line being typed.
    Paste(String),
    /// The view was just shown.
    Shown,

    // ----- overlays ---------------------------------------------------------
    /// Open the help overlay.
    OpenHelp,
    /// Open the `:` command palette.
    OpenPalette,
    /// Start typing a `/` filter (Keys view).
    OpenFilter,
    /// Open a form.
    Ask(Prompt),
    /// A form was filled in.
    Answered(Prompt),
    /// Ask to confirm a mutation (refused in `--read-only`).
    Confirm(Box<Confirm>),
    /// Show a message to read.
    Inform {
        /// Title.
        title: String,
        /// Lines.
        lines: Vec<String>,
    },

    // ----- palette commands for the views ----------------------------------
    /// Browse keys under a prefix (Keys view).
    OpenPrefix(Vec<u8>),
    /// Tree or flat listing (Keys view).
    SetFlat(bool),
    /// Start an action of the Actions view (forms or confirmation).
    StartAction(ActionKind),
    /// Open the Actions view for the selected member.
    ActOnSelected,
    /// An action on a named member.
    OnMember(ActionKind, String),
    /// Add a member.
    AddMember {
        /// Its peer URL.
        url: String,
        /// Its name.
        name: String,
        /// As a learner.
        learner: bool,
    },
    /// Compact to a revision (None: ask for it).
    Compact(Option<i64>),

    // ----- news -------------------------------------------------------------
    /// A good or failed cluster poll was applied.
    Polled {
        /// Whether it succeeded.
        ok: bool,
    },
    /// An answer of the data layer for the component that asked (never a
    /// terminal event or a cluster poll).
    Data(Event),
    /// A mutation finished (for the views that show what it changed).
    Mutated(Op),
}
