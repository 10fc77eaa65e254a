//! The one keymap table: the dispatcher routes keys through it ([`lookup`]),
//! and it generates the help overlay and the footer, so what the help says
//! is what the keys do.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// Where a binding applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every view.
    Global,
    /// The Cluster view.
    Cluster,
    /// The Keys view.
    Keys,
    /// The Leases view.
    Leases,
    /// The Actions view.
    Actions,
}

impl Scope {
    /// Heading in the help overlay.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Global => "Everywhere",
            Scope::Cluster => "Cluster",
            Scope::Keys => "Keys",
            Scope::Leases => "Leases",
            Scope::Actions => "Actions",
        }
    }
}

/// What a key means. The dispatcher turns it into an [`crate::action::Action`]:
/// app-wide ones (quit, views, help, refresh, ...) directly, the others as
/// [`crate::action::Action::Intent`] for the focused view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Quit the console.
    Quit,
    /// Selection up.
    Up,
    /// Selection down.
    Down,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// A page up.
    PageUp,
    /// A page down.
    PageDown,
    /// Next pane.
    NextPane,
    /// Previous pane.
    PrevPane,
    /// Switch view (0-based).
    View(u8),
    /// Drill in / run.
    Enter,
    /// Back / up a level / close.
    Back,
    /// Toggle the help overlay.
    Help,
    /// Start a `/` filter.
    Filter,
    /// Open the `:` command palette.
    Palette,
    /// Refresh now.
    Refresh,
    /// Freeze / unfreeze polling.
    Freeze,
    /// Keys: tree / flat mode.
    ToggleFlat,
    /// Keys: live watch of the prefix.
    Watch,
    /// Keys: put a new key.
    NewKey,
    /// Keys: edit (put) the selected key.
    Edit,
    /// Keys: delete the selected key; Leases: revoke the selected lease.
    Delete,
    /// Keys: diff the selected history entry with the one before it.
    Diff,
}

/// One row of the keymap.
#[derive(Clone, Copy, Debug)]
pub struct Binding {
    /// Keys that trigger it.
    pub keys: &'static [(KeyCode, KeyModifiers)],
    /// How the keys are written in help and footer.
    pub label: &'static str,
    /// Where it applies.
    pub scope: Scope,
    /// What it does.
    pub intent: Intent,
    /// One line of help.
    pub help: &'static str,
    /// Whether the footer shows it.
    pub footer: bool,
    /// Whether it changes the cluster (absent in `--read-only`).
    pub mutates: bool,
}

const NONE: KeyModifiers = KeyModifiers::NONE;
const CTRL: KeyModifiers = KeyModifiers::CONTROL;
const SHIFT: KeyModifiers = KeyModifiers::SHIFT;

const fn b(
    keys: &'static [(KeyCode, KeyModifiers)],
    label: &'static str,
    scope: Scope,
    intent: Intent,
    help: &'static str,
    footer: bool,
    mutates: bool,
) -> Binding {
    Binding {
        keys,
        label,
        scope,
        intent,
        help,
        footer,
        mutates,
    }
}

/// Every binding, in help order. Scoped bindings come before global ones so
/// that a view can give a key its own meaning.
#[rustfmt::skip]
pub const KEYMAP: &[Binding] = &[
    // Keys view.
    b(&[(KeyCode::Char('t'), NONE)], "t", Scope::Keys, Intent::ToggleFlat, "tree / flat listing", true, false),
    b(&[(KeyCode::Char('w'), NONE)], "w", Scope::Keys, Intent::Watch, "live watch of this prefix (again: stop)", true, false),
    b(&[(KeyCode::Char('d'), NONE)], "d", Scope::Keys, Intent::Diff, "history: diff with the previous revision", false, false),
    b(&[(KeyCode::Char('n'), NONE)], "n", Scope::Keys, Intent::NewKey, "put a new key (asks to confirm)", false, true),
    b(&[(KeyCode::Char('e'), NONE)], "e", Scope::Keys, Intent::Edit, "put a new value for the selected key", true, true),
    b(&[(KeyCode::Char('x'), NONE), (KeyCode::Delete, NONE)], "x/Del", Scope::Keys, Intent::Delete, "delete the selected key (asks to confirm)", true, true),
    b(&[(KeyCode::Char('h'), NONE), (KeyCode::Left, NONE), (KeyCode::Backspace, NONE)], "h/←/Bksp", Scope::Keys, Intent::Back, "up one level", false, false),
    b(&[(KeyCode::Char('l'), NONE), (KeyCode::Right, NONE)], "l/→", Scope::Keys, Intent::Enter, "open the selected dir", false, false),
    // Leases view.
    b(&[(KeyCode::Char('x'), NONE), (KeyCode::Delete, NONE)], "x/Del", Scope::Leases, Intent::Delete, "revoke the selected lease (asks to confirm)", true, true),
    // Actions view.
    b(&[(KeyCode::Enter, NONE)], "Enter", Scope::Actions, Intent::Enter, "run the selected action on the selected member", true, true),
    // Cluster view.
    b(&[(KeyCode::Enter, NONE)], "Enter", Scope::Cluster, Intent::Enter, "actions for the selected member", false, false),
    // Everywhere.
    b(&[(KeyCode::Char('j'), NONE), (KeyCode::Down, NONE)], "j/↓", Scope::Global, Intent::Down, "down", false, false),
    b(&[(KeyCode::Char('k'), NONE), (KeyCode::Up, NONE)], "k/↑", Scope::Global, Intent::Up, "up", false, false),
    b(&[(KeyCode::Char('g'), NONE), (KeyCode::Home, NONE)], "g/Home", Scope::Global, Intent::Top, "first row", false, false),
    b(&[(KeyCode::Char('G'), SHIFT), (KeyCode::Char('G'), NONE), (KeyCode::End, NONE)], "G/End", Scope::Global, Intent::Bottom, "last row (Keys: loads every page)", false, false),
    b(&[(KeyCode::PageUp, NONE), (KeyCode::Char('b'), CTRL)], "PgUp", Scope::Global, Intent::PageUp, "page up", false, false),
    b(&[(KeyCode::PageDown, NONE), (KeyCode::Char('f'), CTRL)], "PgDn", Scope::Global, Intent::PageDown, "page down", false, false),
    b(&[(KeyCode::Tab, NONE)], "Tab", Scope::Global, Intent::NextPane, "next pane", true, false),
    b(&[(KeyCode::BackTab, SHIFT), (KeyCode::BackTab, NONE)], "S-Tab", Scope::Global, Intent::PrevPane, "previous pane", false, false),
    b(&[(KeyCode::Enter, NONE)], "Enter", Scope::Global, Intent::Enter, "drill in", false, false),
    b(&[(KeyCode::Esc, NONE)], "Esc", Scope::Global, Intent::Back, "back / clear filter", false, false),
    b(&[(KeyCode::Char('1'), NONE)], "1", Scope::Global, Intent::View(0), "Cluster view", false, false),
    b(&[(KeyCode::Char('2'), NONE)], "2", Scope::Global, Intent::View(1), "Keys view", false, false),
    b(&[(KeyCode::Char('3'), NONE)], "3", Scope::Global, Intent::View(2), "Leases view", false, false),
    b(&[(KeyCode::Char('4'), NONE)], "4", Scope::Global, Intent::View(3), "Actions view", false, false),
    b(&[(KeyCode::Char('/'), NONE)], "/", Scope::Global, Intent::Filter, "filter the list", true, false),
    b(&[(KeyCode::Char(':'), NONE), (KeyCode::Char(':'), SHIFT)], ":", Scope::Global, Intent::Palette, "command palette (Tab completes)", true, false),
    b(&[(KeyCode::Char('r'), NONE)], "r", Scope::Global, Intent::Refresh, "refresh now", true, false),
    b(&[(KeyCode::Char('f'), NONE)], "f", Scope::Global, Intent::Freeze, "freeze / resume polling", true, false),
    b(&[(KeyCode::Char('?'), NONE), (KeyCode::Char('?'), SHIFT)], "?", Scope::Global, Intent::Help, "this help", true, false),
    b(&[(KeyCode::Char('q'), NONE)], "q", Scope::Global, Intent::Quit, "quit (Ctrl-C always quits)", true, false),
];

/// The binding a key triggers in `scope`, if any (Ctrl-C is handled before
/// the table and always quits). Mutating bindings are skipped when `read_only`.
pub fn lookup(key: &KeyEvent, scope: Scope, read_only: bool) -> Option<&'static Binding> {
    KEYMAP.iter().find(|binding| {
        (binding.scope == scope || binding.scope == Scope::Global)
            && !(read_only && binding.mutates)
            && binding
                .keys
                .iter()
                .any(|(code, mods)| *code == key.code && *mods == key.modifiers)
    })
}

/// Bindings listed for `scope`: its own first, then the global ones.
pub fn bindings_for(scope: Scope, read_only: bool) -> Vec<&'static Binding> {
    let own = KEYMAP
        .iter()
        .filter(|b| b.scope == scope && scope != Scope::Global);
    let global = KEYMAP.iter().filter(|b| b.scope == Scope::Global);
    own.chain(global)
        .filter(|b| !(read_only && b.mutates))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, modifiers)
    }

    #[test]
    fn scoped_bindings_win_over_global_ones() {
        let enter = key(KeyCode::Enter, NONE);
        assert_eq!(
            lookup(&enter, Scope::Actions, false).unwrap().intent,
            Intent::Enter
        );
        assert!(lookup(&enter, Scope::Actions, false).unwrap().mutates);
        assert!(!lookup(&enter, Scope::Keys, false).unwrap().mutates);
        let h = key(KeyCode::Char('h'), NONE);
        assert_eq!(lookup(&h, Scope::Keys, false).unwrap().intent, Intent::Back);
        assert!(lookup(&h, Scope::Cluster, false).is_none());
    }

    #[test]
    fn read_only_removes_mutations() {
        let x = key(KeyCode::Char('x'), NONE);
        assert_eq!(
            lookup(&x, Scope::Keys, false).unwrap().intent,
            Intent::Delete
        );
        assert!(lookup(&x, Scope::Keys, true).is_none());
        assert!(bindings_for(Scope::Keys, true).iter().all(|b| !b.mutates));
        assert!(bindings_for(Scope::Keys, false).iter().any(|b| b.mutates));
    }

    #[test]
    fn shifted_characters_match() {
        assert_eq!(
            lookup(&key(KeyCode::Char('G'), SHIFT), Scope::Keys, false)
                .unwrap()
                .intent,
            Intent::Bottom
        );
        assert_eq!(
            lookup(&key(KeyCode::Char('?'), SHIFT), Scope::Cluster, false)
                .unwrap()
                .intent,
            Intent::Help
        );
    }

    #[test]
    fn every_view_key_is_documented_once_per_scope() {
        for scope in [Scope::Cluster, Scope::Keys, Scope::Leases, Scope::Actions] {
            let list = bindings_for(scope, false);
            for (i, a) in list.iter().enumerate() {
                for b in &list[i + 1..] {
                    if a.scope == b.scope {
                        for k in a.keys {
                            assert!(!b.keys.contains(k), "{:?} bound twice in {:?}", k, scope);
                        }
                    }
                }
            }
        }
    }
}
