//! flowdesk: a process designer and monitor with an embedded workflow engine.
//!
//! Layers, lowest first: [`model`] (process definitions), [`engine`] (execution,
//! server items, rights), [`store`] (SQLite, the only module that touches it),
//! [`client`] (the small callback API), [`cli`] (the command line).

pub mod bench;
pub mod cli;
pub mod client;
pub mod engine;
pub mod model;
pub mod store;
