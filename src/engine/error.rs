//! Every way an engine call can be refused or fail.
//!
//! Refusals are typed so a front end can answer in plain words (and the network
//! API later with a status code) without parsing messages. A refused call has
//! changed nothing: the engine returns the error from inside the transaction,
//! which rolls it back.

use crate::engine::instance::{InstanceStatus, Millis};
use crate::engine::serial::InvalidSerial;
use crate::engine::storage::StorageError;
use crate::model::{Problem, Right};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    InvalidSerial(#[from] InvalidSerial),

    #[error("server item {serial} not found")]
    ItemNotFound { serial: String },

    #[error("server item {serial} was already finished at {} by {by}", format_time(*at))]
    AlreadyFinished { serial: String, at: Millis, by: String },

    #[error("server item {serial} was cancelled at {} by {by}: the instance was moved to another activity", format_time(*at))]
    ItemCancelled { serial: String, at: Millis, by: String },

    #[error("instance {id} not found")]
    InstanceNotFound { id: i64 },

    #[error("process `{name}` not found (deploy it first)")]
    ProcessNotFound { name: String },

    #[error("process `{process}` has no activity `{activity}`")]
    ActivityNotFound { process: String, activity: String },

    #[error("permission denied: user `{user}` lacks the {right} right on process `{process}`")]
    PermissionDenied { user: String, process: String, right: Right },

    #[error("invalid data for field `{field}`: {reason}")]
    InvalidData { field: String, reason: String },

    #[error("invalid folio: {reason}")]
    InvalidFolio { reason: String },

    #[error("process `{name}` is not valid: {} error(s), the first: {}", errors(.problems).count(), errors(.problems).next().map(|p| format!("{}: {}", p.location, p.message)).unwrap_or_default())]
    InvalidDefinition { name: String, problems: Vec<Problem> },

    #[error("cannot {action} instance {id}: it is {status}")]
    WrongStatus { id: i64, action: &'static str, status: InstanceStatus },

    #[error("cannot revoke: process `{process}` would be left without an Admin")]
    LastAdmin { process: String },

    /// The backend failed (see `engine::storage`, *Errors*): its message
    /// says the kind in plain words and names what failed.
    #[error(transparent)]
    Storage(#[from] StorageError),

    /// A filter of the instance list that cannot be used.
    #[error("invalid filter: {0}")]
    Filter(#[from] crate::engine::find::FilterError),

    #[error("internal error: {0}")]
    Internal(String),

    /// A read given up because its caller cancelled it
    /// ([`crate::engine::CancelToken`]): no answer, not a failure. Only the
    /// caller who cancelled meets it, and tells its user nothing.
    #[error("the read was cancelled")]
    Cancelled,
}

impl EngineError {
    /// True when the caller's request was refused (bad input, rights, state), as
    /// opposed to the engine or its database failing.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, EngineError::Storage(_) | EngineError::Internal(_) | EngineError::Cancelled)
    }

    /// True when calling again may succeed with nothing changed meanwhile:
    /// the database was busy, or the write met another one (see
    /// [`StorageError::is_retryable`]). Nothing of the call was saved.
    pub fn is_retryable(&self) -> bool {
        matches!(self, EngineError::Storage(err) if err.is_retryable())
    }
}

fn errors(problems: &[Problem]) -> impl Iterator<Item = &Problem> {
    problems.iter().filter(|p| p.severity == crate::model::Severity::Error)
}

/// How long ago, to the second, as people read it ("3m 12s").
pub fn format_age(now: Millis, then: Millis) -> String {
    let seconds = ((now - then).max(0) / 1000) as u64;
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

/// The time between two steps of a trail, to the millisecond ("0s" for
/// lines one write made, "1s 250ms", "2h 5m 1s").
pub fn format_step(millis: Millis) -> String {
    humantime::format_duration(std::time::Duration::from_millis(millis.max(0) as u64)).to_string()
}

/// Each entry of a trail with the time since the entry before it (`None`
/// for the first): the trail table's last column, in the window and in
/// `flowdesk show`.
pub fn trail_steps(audit: &[crate::engine::AuditEntry]) -> Vec<Option<Millis>> {
    let previous = std::iter::once(None).chain(audit.iter().map(|entry| Some(entry.at)));
    audit.iter().zip(previous).map(|(entry, before)| before.map(|at| entry.at - at)).collect()
}

/// A timestamp as operators read it: local-free UTC, to the second.
pub fn format_time(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| at.to_string())
}
