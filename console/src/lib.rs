//! `cetera-console`: a full-screen terminal console for cetera and etcd
//! clusters, speaking only etcd's public APIs.
//!
//! Layout (a component/action design):
//! - [`app`]: the core. [`app::App::update`] takes an [`app::Event`]
//!   (terminal input, clock, data-layer answers) and returns the
//!   [`app::Command`]s for the data layer; no I/O. Its dispatcher turns
//!   events into [`action::Action`]s (keys through the [`keymap`] table),
//!   routes each to the component that owns it, runs their follow-up
//!   actions in order, and hands [`action::Action::Io`] out as commands.
//! - [`action`]: the actions.
//! - [`components`]: one component per view and overlay (cluster, keys,
//!   leases, actions, help, palette, forms, modal, header/footer/toasts),
//!   each owning its state, with `update(action) -> Option<Action>` and a
//!   pure `draw`.
//! - [`cluster_state`]: the cluster as polled (members with roles and
//!   health, series, quorum), shared read-only by the components.
//! - [`data`]: the data layer. The poller (one poll at a time, backoff while
//!   unreachable) and tasks running the other commands (key pages, values,
//!   history, watches, leases, mutations), reporting back as events.
//! - [`ui`]: pure drawing: lays out the frame, has the components draw, and
//!   holds what they share (theme, freshness texts, popups); `--once` text.
//! - [`term`]: the terminal layer. crossterm input, the clock, the main loop
//!   (generic over the ratatui backend), terminal restoration (also on
//!   panic), and `--once`.
//! - [`keymap`]: the single keymap table (dispatch, help and footer).
//! - [`cli`]: the flags (`--endpoints`/`ETCDCTL_ENDPOINTS`, `--read-only`,
//!   `--refresh`, `--no-color`/`NO_COLOR`, `--mouse`, `--once`, and
//!   etcdctl's TLS flags `--cacert`/`--cert`/`--key`/`--insecure-*` and
//!   auth flags `--user`/`--password`, with their `ETCDCTL_*` variables).
//! - [`quorum`], [`tree`], [`palette`], [`text`]: pure helpers.
//! - [`model`]: plain data the layers exchange; [`fresh`]: data with its age.
//!
//! Tests: `app_tests` (the core), `ui_tests` (insta snapshots of every view
//! and overlay at 80x24 and 160x48), both on the fixed clock and ids of
//! `fixtures`; the end-to-end tests live in `tests/tests/console.rs`.

pub mod action;
pub mod app;
#[cfg(test)]
mod app_tests;
pub mod cli;
pub mod cluster_state;
pub mod components;
pub mod data;
#[cfg(test)]
mod fixtures;
pub mod fresh;
pub mod keymap;
pub mod model;
pub mod palette;
pub mod quorum;
pub mod term;
pub mod text;
pub mod tree;
pub mod ui;
#[cfg(test)]
mod ui_tests;
