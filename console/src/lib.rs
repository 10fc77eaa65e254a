//! `cetera-console`: a full-screen terminal console for cetera and etcd
//! clusters, speaking only etcd's public APIs.
//!
//! Layout:
//! - [`app`]: the core. All state and `update(event) -> Vec<Command>`; no I/O.
//! - [`data`]: the data layer. The poller (one poll at a time, backoff while
//!   unreachable) and tasks running the other commands (key pages, values,
//!   history, watches, leases, mutations), reporting back as events.
//! - [`ui`]: pure drawing of the state with ratatui.
//! - [`term`]: the terminal layer. crossterm input, the clock, the main loop
//!   (generic over the ratatui backend), terminal restoration (also on
//!   panic), and `--once`.
//! - [`keymap`]: the single keymap table (dispatch, help and footer).
//! - [`cli`]: the flags (`--endpoints`/`ETCDCTL_ENDPOINTS`, `--read-only`,
//!   `--refresh`, `--no-color`/`NO_COLOR`, `--mouse`, `--once`, and
//!   etcdctl's TLS flags `--cacert`/`--cert`/`--key`/`--insecure-*` and
//!   auth flags `--user`/`--password`, with their `ETCDCTL_*` variables).
//! - [`quorum`], [`tree`], [`palette`], [`text`]: pure helpers.
//! - [`model`]: plain data the layers exchange.
//!
//! Tests: `app_tests` (the core), `ui_tests` (insta snapshots of every view
//! and overlay at 80x24 and 160x48), both on the fixed clock and ids of
//! `fixtures`; the end-to-end tests live in `tests/tests/console.rs`.

pub mod app;
#[cfg(test)]
mod app_tests;
pub mod cli;
pub mod data;
#[cfg(test)]
mod fixtures;
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
