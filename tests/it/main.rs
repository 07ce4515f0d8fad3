//! flowdesk's integration tests, all in one test binary (`cargo test --test it`).
//!
//! Each file here was once a test binary of its own, and each linked the whole
//! library with egui, axum and SQLite again: sixteen links on every edit-test
//! cycle, on a two-core CI. As modules of one crate they are linked once.
//! A test's name starts with its module, so `cargo test --test it cli::` runs
//! the command line's tests and `cargo test --test it gui_monitor::` the
//! monitor's.
//!
//! Everything here shares one process: a test must not set environment
//! variables or other process-wide state. A test that needs a process of its
//! own runs the `flowdesk` binary (`CARGO_BIN_EXE_flowdesk`) or this binary
//! again (`crash.rs`).

// Shared by the modules below: the engine fixtures, and running the binary.
mod common_cli;
mod support;

mod api;
mod bench;
mod bpmn;
mod bulk;
mod cli;
mod concurrency;
mod crash;
mod early_callback;
mod engine_scenarios;
mod find;
mod group_commit;
mod gui_designer;
mod gui_monitor;
mod gui_overview;
mod http_callback;
mod http_event;
mod ipc;
mod layers;
mod mail_event;
mod overview;
mod planned_writes;
mod samples;
mod timers;
mod validation;
