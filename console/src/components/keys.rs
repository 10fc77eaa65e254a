//! The Keys view: a tree (or flat list) of the keys under a prefix, read in
//! pages with server-side prefix ranges (never everything at once); the `/`
//! filter over loaded rows; the selected key's value (JSON pretty-printed),
//! metadata and history of older revisions (with a diff); a live watch of
//! the prefix that resumes after failures without losing a change; put and
//! delete, each confirmed first.

use std::collections::VecDeque;
use std::time::Instant;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Table, TableState, Wrap};

use super::chrome::KeysFooter;
use super::modal::Confirm;
use super::prompt::{Prompt, PromptPurpose};
use super::{Component, Ctx, DrawCtx, Shared, move_selection};
use crate::action::Action;
use crate::app::{Command, Event, History, Op, View, WatchUpdate};
use crate::fresh::Fresh;
use crate::keymap::Intent;
use crate::model::{KeyPage, KeyValue, WatchEvent};
use crate::quorum::{self, Change};
use crate::text::{self, DiffLine, human_bytes, human_duration};
use crate::tree::{self, EntryKind, Listing, display_key};
use crate::ui::{Theme, freshness};

/// How many keys one page reads.
pub const PAGE_SIZE: i64 = 500;
/// How many revisions the history pane reads.
pub const HISTORY_LEN: usize = 20;
/// How many watch events are kept.
pub const WATCH_EVENTS: usize = 200;

/// Panes of the Keys view.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum KeysPane {
    /// The listing.
    #[default]
    List,
    /// The value.
    Value,
    /// History or watch events.
    History,
}

/// How far a reload of the listing reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ReloadUntil {
    /// One page (the listing had no more).
    #[default]
    FirstPage,
    /// Up to this key (where the old listing stopped).
    Key(Vec<u8>),
    /// Every page (the old listing was read to its end).
    End,
}

/// A live watch.
#[derive(Clone, Debug)]
pub struct WatchState {
    /// Watch id.
    pub id: u64,
    /// Prefix watched.
    pub prefix: Vec<u8>,
    /// Established yet.
    pub live: bool,
    /// Error, if it failed.
    pub error: Option<String>,
    /// Latest events, newest last.
    pub events: VecDeque<(Instant, WatchEvent)>,
    /// The store revision seen so far (from the creation answer and the
    /// events): a resumed watch starts right after it, so no change is lost.
    pub revision: i64,
    /// Failed attempts in a row; the watch is resumed after the next good
    /// cluster poll, so it retries at the poller's backed-off pace.
    pub failures: u32,
}

/// The Keys view component.
#[derive(Clone, Debug, Default)]
pub struct KeysView {
    /// The listing being browsed.
    pub listing: Fresh<Listing>,
    /// The prefix listed (also while its first page is loading).
    pub prefix: Vec<u8>,
    /// Flat mode.
    pub flat: bool,
    /// Selected row among the visible (filtered) rows.
    pub selected: usize,
    /// Client-side filter on loaded rows.
    pub filter: String,
    /// Focused pane.
    pub pane: KeysPane,
    /// The selected key's value.
    pub value: Fresh<Option<KeyValue>>,
    /// Which key `value` is about.
    pub value_key: Option<Vec<u8>>,
    /// Value pane scroll.
    pub value_scroll: u16,
    /// History of the selected key.
    pub history: Fresh<History>,
    /// Selected history entry.
    pub history_selected: usize,
    /// Show a diff of the selected entry against the one before it.
    pub diff: bool,
    /// The live watch, if on.
    pub watch: Option<WatchState>,
    /// Whether the view was ever opened (first listing happens then).
    pub opened: bool,
    /// A fresh listing being read while the old one stays on screen.
    pub reloading: Option<Listing>,
    /// Row (full key or prefix) to select once the listing arrives.
    pub reselect: Option<Vec<u8>>,
    /// `G` was pressed while pages were still to come: the selection stays
    /// on the last row as they arrive, and they are read until the end.
    pub follow_bottom: bool,
    /// How far a reload reads before it replaces the listing.
    pub reload_until: ReloadUntil,
    /// The `/` filter line is being typed (it then has the keyboard).
    pub editing_filter: bool,
}

impl KeysView {
    /// What the footer says of the toggles.
    pub fn footer(&self) -> KeysFooter {
        KeysFooter {
            flat: self.flat,
            watching: self.watch.is_some(),
        }
    }

    fn open_prefix(&mut self, prefix: Vec<u8>, ctx: &mut Ctx) {
        self.prefix = prefix.clone();
        self.listing = Fresh::default();
        self.listing.data = Some(Listing::new(prefix, self.flat));
        self.reloading = None;
        self.reselect = None;
        self.follow_bottom = false;
        self.selected = 0;
        self.filter.clear();
        self.opened = true;
        self.fetch_page(ctx);
        if let Some(w) = self.watch.take() {
            ctx.io(Command::Unwatch { id: w.id });
            self.start_watch(ctx);
        }
    }

    fn fetch_page(&mut self, ctx: &mut Ctx) {
        if self.listing.loading {
            return;
        }
        let listing = match &self.reloading {
            Some(l) => l,
            None => match &self.listing.data {
                Some(l) => l,
                None => return,
            },
        };
        let Some(start) = listing.next.clone() else {
            return;
        };
        let prefix = listing.prefix.clone();
        let req = ctx.id();
        self.listing.req = req;
        self.listing.loading = true;
        ctx.io(Command::ListKeys {
            req,
            prefix,
            start,
            limit: PAGE_SIZE,
        });
    }

    /// Reads the listing again from its first page; the old rows stay on
    /// screen (with their age) until the new page lands.
    fn reload_listing(&mut self, ctx: &mut Ctx) {
        self.reselect = self.selected_entry().map(|e| e.full.clone());
        // As many pages are re-read as were loaded, so the rows (and the
        // selection) further down survive the refresh.
        self.reload_until = self
            .listing
            .data
            .as_ref()
            .map_or(ReloadUntil::FirstPage, |l| match &l.next {
                _ if l.pages <= 1 => ReloadUntil::FirstPage,
                Some(next) => ReloadUntil::Key(next.clone()),
                None => ReloadUntil::End,
            });
        self.reloading = Some(Listing::new(self.prefix.clone(), self.flat));
        self.listing.loading = false;
        self.fetch_page(ctx);
    }

    fn on_keys(&mut self, req: u64, at: Instant, result: Result<KeyPage, String>, ctx: &mut Ctx) {
        if req != self.listing.req {
            return;
        }
        match result {
            Ok(page) => {
                if let Some(reloading) = self.reloading.as_mut() {
                    reloading.absorb(&page.keys, page.more, page.revision);
                    let short = match (&self.reload_until, &reloading.next) {
                        (_, None) | (ReloadUntil::FirstPage, _) => false,
                        (ReloadUntil::End, Some(_)) => true,
                        (ReloadUntil::Key(until), Some(next)) => next < until,
                    };
                    if short {
                        // The old rows stay on screen until the new ones
                        // cover as much.
                        self.listing.loading = false;
                        self.fetch_page(ctx);
                        return;
                    }
                }
                let listing = match self.reloading.take() {
                    Some(l) => l,
                    None => {
                        let mut l = self.listing.data.take().unwrap_or_default();
                        l.absorb(&page.keys, page.more, page.revision);
                        l
                    }
                };
                let more = listing.has_more();
                self.listing.ok(at, listing);
                if let Some(full) = self.reselect.take()
                    && let Some(i) = self.visible_entries().iter().position(|e| e.full == full)
                {
                    self.selected = i;
                }
                if self.follow_bottom {
                    self.selected = self.visible_entries().len().saturating_sub(1);
                    self.follow_bottom = more;
                }
                self.clamp_key_selection();
                self.after_key_move(ctx);
            }
            Err(e) => {
                self.reloading = None;
                self.listing.fail(e);
            }
        }
    }

    /// Rows of the listing that pass the filter.
    pub fn visible_entries(&self) -> Vec<&tree::Entry> {
        let Some(listing) = &self.listing.data else {
            return Vec::new();
        };
        let filter = self.filter.to_lowercase();
        listing
            .entries
            .iter()
            .filter(|e| filter.is_empty() || e.display().to_lowercase().contains(&filter))
            .collect()
    }

    /// The selected row.
    pub fn selected_entry(&self) -> Option<&tree::Entry> {
        self.visible_entries().get(self.selected).copied()
    }

    fn clamp_key_selection(&mut self) {
        let n = self.visible_entries().len();
        self.selected = self.selected.min(n.saturating_sub(1));
    }

    /// After the selection moved: read the selected key, and the next page
    /// when the selection nears the end of what is loaded.
    fn after_key_move(&mut self, ctx: &mut Ctx) {
        let n = self.visible_entries().len();
        if self.selected + 10 >= n && self.listing.data.as_ref().is_some_and(Listing::has_more) {
            self.fetch_page(ctx);
        }
        let key = self
            .selected_entry()
            .filter(|e| e.kind == EntryKind::Key)
            .map(|e| e.full.clone());
        if key != self.value_key {
            self.value_key = key.clone();
            self.value = Fresh::default();
            self.history = Fresh::default();
            self.history_selected = 0;
            self.value_scroll = 0;
            if key.is_some() {
                self.get_value(ctx);
            }
        }
    }

    fn get_value(&mut self, ctx: &mut Ctx) {
        let Some(key) = self.value_key.clone() else {
            return;
        };
        let req = ctx.id();
        self.value.req = req;
        self.value.loading = true;
        ctx.io(Command::GetKey { req, key });
    }

    fn on_value(
        &mut self,
        req: u64,
        at: Instant,
        result: Result<Option<KeyValue>, String>,
        ctx: &mut Ctx,
    ) {
        if req != self.value.req {
            return;
        }
        match result {
            Ok(kv) => {
                let changed = self
                    .value
                    .data
                    .as_ref()
                    .map(|v| v.as_ref().map(|k| k.mod_revision))
                    != Some(kv.as_ref().map(|k| k.mod_revision));
                self.value.ok(at, kv.clone());
                if let Some(kv) = kv {
                    if changed || self.history.data.is_none() {
                        let req = ctx.id();
                        self.history.req = req;
                        self.history.loading = true;
                        self.history_selected = 0;
                        ctx.io(Command::GetHistory {
                            req,
                            key: kv.key.clone(),
                            current: kv,
                            limit: HISTORY_LEN,
                        });
                    }
                } else {
                    self.history = Fresh::default();
                }
            }
            Err(e) => self.value.fail(e),
        }
    }

    fn start_watch(&mut self, ctx: &mut Ctx) {
        let id = ctx.id();
        let prefix = self.prefix.clone();
        self.watch = Some(WatchState {
            id,
            prefix: prefix.clone(),
            live: false,
            error: None,
            events: VecDeque::new(),
            revision: 0,
            failures: 0,
        });
        ctx.io(Command::Watch {
            id,
            prefix,
            start_revision: 0,
        });
    }

    /// Starts a failed watch again (under a new id, so late news of the old
    /// one is ignored) right after the last revision it saw; if those
    /// revisions were compacted, from now on, saying so.
    fn resume_watch(&mut self, ctx: &mut Ctx) {
        let id = ctx.id();
        let Some(w) = self.watch.as_mut().filter(|w| w.error.is_some()) else {
            return;
        };
        let compacted = w.error.as_deref().is_some_and(|e| e.contains("compacted"));
        ctx.io(Command::Unwatch { id: w.id });
        w.id = id;
        let start_revision = if compacted || w.revision == 0 {
            0
        } else {
            w.revision + 1
        };
        ctx.io(Command::Watch {
            id,
            prefix: w.prefix.clone(),
            start_revision,
        });
    }

    fn on_watch(&mut self, id: u64, at: Instant, update: WatchUpdate, ctx: &mut Ctx) {
        let Some(w) = self.watch.as_mut().filter(|w| w.id == id) else {
            return;
        };
        let mut refresh_value = false;
        match update {
            WatchUpdate::Started { revision } => {
                w.live = true;
                w.error = None;
                w.failures = 0;
                w.revision = w.revision.max(revision);
            }
            WatchUpdate::Failed(e) => {
                w.live = false;
                w.error = Some(e);
                w.failures += 1;
            }
            WatchUpdate::Events(events) => {
                for ev in events {
                    w.revision = w.revision.max(ev.kv.mod_revision);
                    if Some(&ev.kv.key) == self.value_key.as_ref() {
                        refresh_value = true;
                    }
                    w.events.push_back((at, ev));
                    if w.events.len() > WATCH_EVENTS {
                        w.events.pop_front();
                    }
                }
            }
        }
        if refresh_value {
            self.get_value(ctx);
        }
    }

    fn on_history(&mut self, req: u64, at: Instant, result: Result<History, String>) {
        if req == self.history.req {
            match result {
                Ok(history) => self.history.ok(at, history),
                Err(e) => self.history.fail(e),
            }
        }
    }

    /// After a good poll, the view on screen follows at the same pace: the
    /// selected key, and a listing that fits one page (a longer one is
    /// re-read with `r`, so paging through it is not reset).
    fn follow_poll(&mut self, ctx: &mut Ctx) {
        let single_page = self
            .listing
            .data
            .as_ref()
            .is_some_and(|l| l.pages == 1 && !l.has_more());
        if single_page && !self.listing.loading && self.reloading.is_none() {
            self.reload_listing(ctx);
        }
        if !self.value.loading {
            self.get_value(ctx);
        }
    }

    fn set_filter(&mut self, text: String, ctx: &mut Ctx) {
        self.filter = text;
        self.selected = 0;
        self.clamp_key_selection();
        self.after_key_move(ctx);
    }

    /// A key typed into the `/` filter line: the filter applies as it is
    /// typed; Enter keeps it, Esc clears it.
    fn on_filter_key(&mut self, key: KeyEvent, ctx: &mut Ctx) {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        match key.code {
            KeyCode::Esc => {
                self.editing_filter = false;
                self.filter.clear();
                self.clamp_key_selection();
            }
            KeyCode::Enter => self.editing_filter = false,
            KeyCode::Backspace => {
                let mut text = self.filter.clone();
                text.pop();
                self.set_filter(text, ctx);
            }
            KeyCode::Char('u') if ctrl => self.set_filter(String::new(), ctx),
            KeyCode::Char(c) if !ctrl => {
                let text = format!("{}{c}", self.filter);
                self.set_filter(text, ctx);
            }
            _ => {}
        }
    }

    /// The form to put the selected key (`Edit`) or a new one (`NewKey`).
    fn put_form(&self, intent: Intent) -> Prompt {
        let edit = intent == Intent::Edit;
        let key = if edit {
            self.value_key
                .clone()
                .unwrap_or_else(|| self.prefix.clone())
        } else {
            self.prefix.clone()
        };
        let value = match (&self.value.data, edit) {
            (Some(Some(kv)), true) => String::from_utf8_lossy(&kv.value).into_owned(),
            _ => String::new(),
        };
        Prompt {
            title: if edit {
                "Put value".into()
            } else {
                "Put new key".into()
            },
            fields: vec![
                (
                    "key".to_string(),
                    String::from_utf8_lossy(&key).into_owned(),
                ),
                ("value".to_string(), value),
            ],
            field: usize::from(edit),
            purpose: PromptPurpose::Put,
        }
    }

    /// The confirmation of the put a filled-in form asks for.
    fn confirm_put(&self, form: &Prompt, ctx: &Ctx) -> Action {
        let key = form.fields[0].1.clone();
        let val = form.fields[1].1.clone();
        if key.is_empty() {
            return Action::Toast {
                text: "a key cannot be empty".into(),
                error: true,
            };
        }
        let exists = self.value_key.as_deref() == Some(key.as_bytes());
        Action::Confirm(Box::new(Confirm::new(
            "Put key?".into(),
            key.clone(),
            vec![
                format!(
                    "value: {} ({} bytes)",
                    text::preview(val.as_bytes(), 48),
                    val.len()
                ),
                if exists {
                    "The key exists: this writes a new revision of it.".to_string()
                } else {
                    "Creates the key, or overwrites it if it exists.".to_string()
                },
            ],
            Some(quorum::impact(&ctx.shared.cluster.quorum(), Change::Keep)),
            Op::Put {
                key: key.into_bytes(),
                value: val.into_bytes(),
            },
        )))
    }

    /// The confirmation of deleting the selected key.
    fn confirm_delete(&self, ctx: &Ctx) -> Action {
        let Some(key) = self.value_key.clone() else {
            return Action::Toast {
                text: "select a key (not a dir) to delete it".into(),
                error: true,
            };
        };
        let meta = match &self.value.data {
            Some(Some(kv)) => format!(
                "version {}, mod revision {}{}",
                kv.version,
                kv.mod_revision,
                if kv.lease != 0 {
                    format!(", lease {:016x}", kv.lease)
                } else {
                    String::new()
                }
            ),
            _ => "its current value".to_string(),
        };
        Action::Confirm(Box::new(Confirm::new(
            "Delete key?".into(),
            tree::display_key(&key),
            vec![
                format!("Deletes exactly this key ({meta})."),
                "Older revisions stay readable until the next compaction.".to_string(),
            ],
            Some(quorum::impact(&ctx.shared.cluster.quorum(), Change::Keep)),
            Op::Delete { key },
        )))
    }

    fn on_intent(&mut self, intent: Intent, ctx: &mut Ctx) -> Option<Action> {
        match intent {
            Intent::NextPane => {
                self.pane = match self.pane {
                    KeysPane::List => KeysPane::Value,
                    KeysPane::Value => KeysPane::History,
                    KeysPane::History => KeysPane::List,
                };
            }
            Intent::PrevPane => {
                self.pane = match self.pane {
                    KeysPane::List => KeysPane::History,
                    KeysPane::Value => KeysPane::List,
                    KeysPane::History => KeysPane::Value,
                };
            }
            Intent::ToggleFlat => {
                self.flat = !self.flat;
                let prefix = self.prefix.clone();
                self.open_prefix(prefix, ctx);
            }
            Intent::Watch => {
                if let Some(w) = self.watch.take() {
                    ctx.io(Command::Unwatch { id: w.id });
                } else {
                    self.start_watch(ctx);
                }
            }
            Intent::NewKey | Intent::Edit => return Some(Action::Ask(self.put_form(intent))),
            Intent::Delete => return Some(self.confirm_delete(ctx)),
            Intent::Diff => self.diff = !self.diff,
            _ => match self.pane {
                KeysPane::List => return self.list_intent(intent, ctx),
                KeysPane::Value => self.value_intent(intent, ctx.shared.page() as u16),
                KeysPane::History => {
                    let n = self.history.data.as_ref().map_or(0, |h| h.entries.len());
                    if let Some(i) =
                        move_selection(self.history_selected, n, intent, ctx.shared.page())
                    {
                        self.history_selected = i;
                        self.value_scroll = 0;
                    } else if intent == Intent::Back {
                        self.pane = KeysPane::List;
                    }
                }
            },
        }
        None
    }

    fn value_intent(&mut self, intent: Intent, page: u16) {
        match intent {
            Intent::Down => self.value_scroll = self.value_scroll.saturating_add(1),
            Intent::Up => self.value_scroll = self.value_scroll.saturating_sub(1),
            Intent::PageDown => self.value_scroll = self.value_scroll.saturating_add(page),
            Intent::PageUp => self.value_scroll = self.value_scroll.saturating_sub(page),
            Intent::Top => self.value_scroll = 0,
            Intent::Back => self.pane = KeysPane::List,
            _ => {}
        }
    }

    fn list_intent(&mut self, intent: Intent, ctx: &mut Ctx) -> Option<Action> {
        let n = self.visible_entries().len();
        if let Some(i) = move_selection(self.selected, n, intent, ctx.shared.page()) {
            self.selected = i;
            // G follows the end of the listing while its pages arrive.
            self.follow_bottom = intent == Intent::Bottom
                && self.listing.data.as_ref().is_some_and(Listing::has_more);
            if self.follow_bottom {
                ctx.toast("more keys are loading…", false);
            }
            self.after_key_move(ctx);
            return None;
        }
        match intent {
            Intent::Enter => match self.selected_entry().map(|e| (e.kind, e.full.clone())) {
                Some((EntryKind::Dir, full)) => self.open_prefix(full, ctx),
                Some((EntryKind::Key, _)) => self.pane = KeysPane::Value,
                None => {}
            },
            Intent::Back => {
                if !self.filter.is_empty() {
                    self.filter.clear();
                    self.clamp_key_selection();
                    self.after_key_move(ctx);
                } else if !self.prefix.is_empty() && !self.flat {
                    let child = self.prefix.clone();
                    let parent = tree::parent(&child);
                    self.open_prefix(parent, ctx);
                    self.reselect = Some(child);
                } else if !self.prefix.is_empty() {
                    self.open_prefix(Vec::new(), ctx);
                }
            }
            _ => {}
        }
        None
    }

    /// Draws the `/` filter line in `area` (the footer) while it is typed.
    pub fn draw_filter_line(&self, frame: &mut Frame, area: Rect, theme: Theme) {
        let line = Line::from(vec![
            Span::styled("/", theme.bold(Color::Cyan)),
            Span::raw(format!("{}█", self.filter)),
            Span::styled(
                format!(
                    "   {} match(es) in loaded rows · Enter keep · Esc clear",
                    self.visible_entries().len()
                ),
                theme.dim(),
            ),
        ]);
        frame.render_widget(Paragraph::new(line), area);
    }
}

impl Component for KeysView {
    fn update(&mut self, action: Action, ctx: &mut Ctx) -> Option<Action> {
        let focused = ctx.shared.view == View::Keys;
        match action {
            Action::Shown if !self.opened => self.open_prefix(Vec::new(), ctx),
            Action::OpenPrefix(prefix) => self.open_prefix(prefix, ctx),
            Action::SetFlat(flat) if self.flat != flat || !self.opened => {
                self.flat = flat;
                let prefix = self.prefix.clone();
                self.open_prefix(prefix, ctx);
            }
            Action::Refresh | Action::Mutated(Op::Put { .. } | Op::Delete { .. })
                if self.opened =>
            {
                self.reload_listing(ctx);
                self.get_value(ctx);
            }
            Action::Polled { ok: true } => {
                self.resume_watch(ctx);
                if focused && self.opened && !ctx.shared.paused {
                    self.follow_poll(ctx);
                }
            }
            Action::OpenFilter => {
                self.pane = KeysPane::List;
                self.editing_filter = true;
            }
            Action::Key(key) if self.editing_filter => self.on_filter_key(key, ctx),
            Action::Paste(pasted) if self.editing_filter => {
                let text = format!("{}{pasted}", self.filter);
                self.set_filter(text, ctx);
            }
            Action::Intent(intent) => return self.on_intent(intent, ctx),
            Action::Answered(form) if form.purpose == PromptPurpose::Put => {
                return Some(self.confirm_put(&form, ctx));
            }
            Action::Data(Event::Keys { req, at, result }) => self.on_keys(req, at, result, ctx),
            Action::Data(Event::Value { req, at, result }) => self.on_value(req, at, result, ctx),
            Action::Data(Event::History { req, at, result }) => self.on_history(req, at, result),
            Action::Data(Event::Watch { id, at, update }) => self.on_watch(id, at, update, ctx),
            _ => {}
        }
        None
    }

    fn draw(&self, frame: &mut Frame, area: Rect, ctx: &DrawCtx) {
        draw_keys(frame, self, ctx.shared, ctx.theme, area);
    }
}

fn draw_keys(frame: &mut Frame, k: &KeysView, app: &Shared, theme: Theme, area: Rect) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
    draw_key_list(frame, k, app, theme, left);
    let [value, lower] =
        Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(right);
    draw_value(frame, k, app, theme, value);
    if k.watch.is_some() {
        // Side by side when there is room, stacked otherwise.
        let halves = [Constraint::Percentage(50), Constraint::Percentage(50)];
        let [hist, watch] = if lower.width >= 100 {
            Layout::horizontal(halves).areas(lower)
        } else {
            Layout::vertical(halves).areas(lower)
        };
        draw_history(frame, k, app, theme, hist);
        draw_watch(frame, k, app, theme, watch);
    } else {
        draw_history(frame, k, app, theme, lower);
    }
}

fn draw_key_list(frame: &mut Frame, k: &KeysView, app: &Shared, theme: Theme, area: Rect) {
    let (fresh, stale) = freshness(app.now, &k.listing);
    let mode = if k.flat { "flat" } else { "tree" };
    let prefix = if k.prefix.is_empty() {
        "(all keys)".to_string()
    } else {
        display_key(&k.prefix)
    };
    let listing = k.listing.data.as_ref();
    let rows = k.visible_entries();
    let total = listing.map_or(0, |l| l.entries.len());
    let count = if k.filter.is_empty() {
        format!(
            "{total}{}",
            if listing.is_some_and(|l| l.has_more()) {
                "+"
            } else {
                ""
            }
        )
    } else {
        format!("{}/{total} match {:?}", rows.len(), k.filter)
    };
    // A stale badge leads the title, so a narrow pane never cuts it off.
    let title = if stale {
        Line::from(vec![
            Span::styled(format!(" {fresh} "), theme.badge(Color::Red)),
            Span::styled(format!(" {prefix} [{mode}] {count} "), theme.dim()),
        ])
    } else {
        Line::from(vec![
            Span::styled(format!(" {prefix} "), theme.bold(Color::White)),
            Span::styled(format!("[{mode}] {count} · {fresh} "), theme.dim()),
        ])
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(k.pane == KeysPane::List))
        .title(title);
    let mut items: Vec<Row> = rows
        .iter()
        .map(|e| {
            let (glyph, style) = match e.kind {
                EntryKind::Dir => ("▸ ", theme.bold(Color::Blue)),
                EntryKind::Key => ("  ", Style::default()),
            };
            let count = match e.kind {
                EntryKind::Dir => format!(" ({}{})", e.count, if e.partial { "+" } else { "" }),
                EntryKind::Key => String::new(),
            };
            let row = Row::new(vec![Cell::from(Line::from(vec![
                Span::styled(format!("{glyph}{}", e.display()), style),
                Span::styled(count, theme.dim()),
            ]))]);
            if stale { row.style(theme.dim()) } else { row }
        })
        .collect();
    if listing.is_some_and(|l| l.has_more()) {
        let text = if k.listing.loading {
            "… loading the next page"
        } else {
            "… more keys (move down to load)"
        };
        items.push(Row::new(vec![Cell::from(Span::styled(text, theme.dim()))]));
    } else if rows.is_empty() && !k.listing.loading {
        let text = if k.listing.error.is_some() && listing.is_none() {
            format!("✖ {}", k.listing.error.clone().unwrap_or_default())
        } else if k.filter.is_empty() {
            "(no keys under this prefix)".to_string()
        } else {
            "(no loaded key matches the filter)".to_string()
        };
        items.push(Row::new(vec![Cell::from(Span::styled(text, theme.dim()))]));
    }
    let table = Table::new(items, [Constraint::Percentage(100)])
        .block(block)
        .row_highlight_style(theme.selected())
        .highlight_symbol("> ");
    let selected = if rows.is_empty() {
        None
    } else {
        Some(k.selected)
    };
    let mut state = TableState::default().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_value(frame: &mut Frame, k: &KeysView, app: &Shared, theme: Theme, area: Rect) {
    let focused = k.pane == KeysPane::Value;
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(focused));
    let Some(key) = &k.value_key else {
        let text = match k.selected_entry() {
            Some(e) if e.kind == EntryKind::Dir => "a prefix: Enter opens it",
            _ => "select a key",
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.dim())).block(block.title(" Value ")),
            area,
        );
        return;
    };
    let (fresh, stale) = freshness(app.now, &k.value);
    let history = k.history.data.as_ref();
    let shown = if k.history_selected > 0 {
        history.and_then(|h| h.entries.get(k.history_selected))
    } else {
        None
    };
    let current = k.value.data.as_ref().and_then(|v| v.as_ref());
    let kv = shown.or(current);
    let mut lines: Vec<Line> = Vec::new();
    let mut title = format!(" {} ", display_key(key));
    match (k.value.data.as_ref(), kv) {
        (_, Some(kv)) => {
            let rendered = text::format_value(&kv.value);
            title.push_str(&format!("· {} ", rendered.kind));
            let lease = if kv.lease == 0 {
                "none".to_string()
            } else {
                format!("{:016x}", kv.lease)
            };
            lines.push(Line::from(Span::styled(
                format!(
                    "create rev {} · mod rev {} · version {} · lease {} · {}",
                    kv.create_revision,
                    kv.mod_revision,
                    kv.version,
                    lease,
                    human_bytes(kv.value.len() as i64)
                ),
                theme.dim(),
            )));
            if shown.is_some() {
                lines.push(Line::from(Span::styled(
                    format!(
                        "showing an older revision ({}); k/↑ in History returns",
                        kv.mod_revision
                    ),
                    theme.fg(Color::Yellow),
                )));
            }
            lines.push(Line::from(""));
            let older = history.and_then(|h| h.entries.get(k.history_selected + 1));
            if k.diff {
                match older {
                    Some(old) => {
                        lines.push(Line::from(Span::styled(
                            format!("diff rev {} -> {}", old.mod_revision, kv.mod_revision),
                            theme.dim(),
                        )));
                        let a = text::format_value(&old.value).lines;
                        for d in text::diff_lines(&a, &rendered.lines) {
                            lines.push(match d {
                                DiffLine::Same(s) => Line::from(format!("  {s}")),
                                DiffLine::Added(s) => Line::from(Span::styled(
                                    format!("+ {s}"),
                                    theme.fg(Color::Green),
                                )),
                                DiffLine::Removed(s) => {
                                    Line::from(Span::styled(format!("- {s}"), theme.fg(Color::Red)))
                                }
                            });
                        }
                    }
                    None => lines.push(Line::from(Span::styled(
                        "(no older revision to diff with)",
                        theme.dim(),
                    ))),
                }
            } else if rendered.lines.is_empty() {
                lines.push(Line::from(Span::styled("(empty value)", theme.dim())));
            } else {
                lines.extend(rendered.lines.into_iter().map(Line::from));
            }
        }
        (Some(None), None) => lines.push(Line::from(Span::styled(
            "(the key no longer exists)",
            theme.fg(Color::Yellow),
        ))),
        _ => {
            if let Some(e) = &k.value.error {
                lines.push(Line::from(Span::styled(
                    format!("✖ {e}"),
                    theme.fg(Color::Red),
                )));
            } else {
                lines.push(Line::from(Span::styled("loading…", theme.dim())));
            }
        }
    }
    let block = block.title(Line::from(vec![
        Span::styled(title, theme.bold(Color::White)),
        Span::styled(
            format!("· {fresh} "),
            if stale {
                theme.bold(Color::Red)
            } else {
                theme.dim()
            },
        ),
    ]));
    let style = if stale { theme.dim() } else { Style::default() };
    frame.render_widget(
        Paragraph::new(lines)
            .style(style)
            .block(block)
            .wrap(Wrap { trim: false })
            .scroll((k.value_scroll, 0)),
        area,
    );
}

fn draw_history(frame: &mut Frame, k: &KeysView, app: &Shared, theme: Theme, area: Rect) {
    let (fresh, stale) = freshness(app.now, &k.history);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.focus_border(k.pane == KeysPane::History))
        .title(Line::from(vec![
            Span::styled(" History ", theme.bold(Color::White)),
            Span::styled(
                format!("{}· {fresh} ", if k.diff { "· diff " } else { "" }),
                if stale {
                    theme.bold(Color::Red)
                } else {
                    theme.dim()
                },
            ),
        ]));
    let Some(h) = &k.history.data else {
        let text = match (&k.value_key, &k.history.error) {
            (_, Some(e)) => format!("✖ {e}"),
            (None, _) => String::new(),
            (Some(_), None) => "loading…".to_string(),
        };
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.dim())).block(block),
            area,
        );
        return;
    };
    let mut rows: Vec<Row> = h
        .entries
        .iter()
        .enumerate()
        .map(|(i, kv)| {
            let first = text::preview(&kv.value, 60);
            Row::new(vec![
                Cell::from(format!("rev {}", kv.mod_revision)),
                Cell::from(format!("v{}", kv.version)),
                Cell::from(human_bytes(kv.value.len() as i64)),
                Cell::from(if i == 0 {
                    format!("(current) {first}")
                } else {
                    first
                }),
            ])
        })
        .collect();
    rows.push(Row::new(vec![
        Cell::from(Span::styled("—", theme.dim())),
        Cell::from(""),
        Cell::from(""),
        Cell::from(Span::styled(h.end.clone(), theme.dim())),
    ]));
    let table = Table::new(
        rows,
        [
            Constraint::Length(10),
            Constraint::Length(5),
            Constraint::Length(8),
            Constraint::Min(5),
        ],
    )
    .block(block)
    .row_highlight_style(theme.selected())
    .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(Some(k.history_selected));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_watch(frame: &mut Frame, k: &KeysView, app: &Shared, theme: Theme, area: Rect) {
    let Some(w) = &k.watch else { return };
    let (badge, style) = match (&w.error, w.live) {
        (Some(_), _) => (
            format!(" ✖ WATCH LOST · retry #{} ", w.failures),
            theme.badge(Color::Red),
        ),
        (None, true) => (" ● LIVE ".to_string(), theme.badge(Color::Green)),
        (None, false) => (" ◌ starting ".to_string(), theme.badge(Color::Yellow)),
    };
    let prefix = if w.prefix.is_empty() {
        "(all keys)".to_string()
    } else {
        display_key(&w.prefix)
    };
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.dim())
        .title(Line::from(vec![
            Span::styled(badge, style),
            Span::raw(format!(" {prefix} ")),
        ]));
    let mut lines: Vec<Line> = Vec::new();
    if let Some(e) = &w.error {
        lines.push(Line::from(Span::styled(e.clone(), theme.fg(Color::Red))));
        lines.push(Line::from(Span::styled(
            if w.revision > 0 {
                format!(
                    "resumes at revision {} on the next good poll",
                    w.revision + 1
                )
            } else {
                "resumes on the next good poll".to_string()
            },
            theme.dim(),
        )));
    }
    let height = usize::from(area.height.saturating_sub(2));
    for (at, ev) in w.events.iter().rev().take(height) {
        let age = human_duration(app.now.saturating_duration_since(*at));
        let (word, s) = if ev.delete {
            ("DEL", theme.fg(Color::Red))
        } else {
            ("PUT", theme.fg(Color::Green))
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{age:>5} "), theme.dim()),
            Span::styled(format!("{word} "), s),
            Span::raw(format!(
                "{} @{}",
                display_key(&ev.kv.key),
                ev.kv.mod_revision
            )),
        ]));
    }
    if w.events.is_empty() && w.error.is_none() {
        lines.push(Line::from(Span::styled("no changes yet", theme.dim())));
    }
    frame.render_widget(Paragraph::new(lines).block(block), area);
}
