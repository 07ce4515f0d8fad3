//! What a search means, for every store: whether a text contains what was
//! typed, ignoring case in all of Unicode. The meaning is the engine's
//! (`engine::find`, which a `contains` field filter also uses); the stores
//! take it from there, the SQLite store through an SQL function of its own.

pub(super) use crate::engine::find::{contains_ignoring_case, fold};
