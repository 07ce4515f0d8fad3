//! flowdesk: a process designer and monitor with an embedded workflow engine.
//!
//! Layers, lowest first: [`model`] (process definitions), [`engine`] (execution,
//! server items, rights), [`store`] (SQLite, the only module that touches it),
//! [`runtime`] (the front door every front end opens a database through),
//! [`client`] (the small callback API), [`cli`] (the command line).

pub mod bench;
pub mod cli;
pub mod client;
pub mod engine;
pub mod gui;
pub mod model;
pub mod net;
pub mod runtime;
pub mod store;

/// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeExamples;
