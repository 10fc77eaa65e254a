//! `cetera-console`: a full-screen terminal console for cetera and etcd
//! clusters, speaking only etcd's public APIs.
//!
//! Layout:
//! - [`app`]: the core. All state and `update(event) -> Vec<Command>`; no I/O.
//! - [`data`]: the data layer. Tokio tasks polling the cluster and running
//!   commands, reporting back as events.
//! - [`ui`]: pure drawing of the state with ratatui.
//! - [`term`]: the terminal layer. crossterm input, the main loop (generic
//!   over the ratatui backend), and `--once`.
//! - [`keymap`]: the single keymap table (dispatch, help and footer).
//! - [`quorum`], [`tree`], [`palette`], [`text`]: pure helpers.
//! - [`model`]: plain data the layers exchange.

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
