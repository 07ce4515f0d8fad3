//! Process instances and their running state, as the engine sees them.
//!
//! The instance row holds what operators query (status, folio, data). The
//! *tokens* say where the instance is: one per open activity instance, each
//! pointing at the next event to run and what it waits for. How they change is
//! not here: `machine.rs` holds the table of what may happen in which status,
//! and its `apply` is the one place an instance's status and tokens change.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::engine::serial::Serial;
use crate::model::Value;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum InstanceStatus {
    /// The engine is executing (an event's request or asynchronous script is
    /// running outside a transaction).
    Running,
    /// Waiting for something outside: a callback on a server item.
    Active,
    Completed,
    /// Suspended on a failure; an operator can retry.
    Error,
    /// An administrator stopped it; it can be resumed.
    Stopped,
}

impl InstanceStatus {
    pub const ALL: [InstanceStatus; 5] = [
        InstanceStatus::Running,
        InstanceStatus::Active,
        InstanceStatus::Completed,
        InstanceStatus::Error,
        InstanceStatus::Stopped,
    ];

    pub fn name(self) -> &'static str {
        match self {
            InstanceStatus::Running => "Running",
            InstanceStatus::Active => "Active",
            InstanceStatus::Completed => "Completed",
            InstanceStatus::Error => "Error",
            InstanceStatus::Stopped => "Stopped",
        }
    }
}

impl fmt::Display for InstanceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status `{0}` (expected Running, Active, Completed, Error or Stopped)")]
pub struct UnknownStatus(pub String);

impl FromStr for InstanceStatus {
    type Err = UnknownStatus;
    fn from_str(text: &str) -> Result<InstanceStatus, UnknownStatus> {
        InstanceStatus::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

/// What an open activity instance is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenState {
    /// Ready to run its next event (or its lines, after the last event).
    Ready,
    /// Its event's work runs outside any transaction: an HTTP request being
    /// sent, or an asynchronous event's script (its server item exists). The
    /// stored name is the one from before requests existed.
    #[serde(rename = "ScriptRunning")]
    RunningOutside,
    /// Waiting for a callback on its server item.
    Waiting,
    /// Its current event failed; the instance is in Error.
    Failed,
}

/// An open activity instance: one token of the instance's flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub destination_id: i64,
    pub activity: usize,
    pub next_event: usize,
    pub state: TokenState,
    /// The serial number's second part of the token's latest server item. The
    /// first asynchronous event of an activity instance uses the destination id
    /// itself (K2's `<instance>_<destination>`); later ones get fresh numbers, so
    /// that a serial always names exactly one wait and a repeated callback is
    /// answered "already finished" instead of finishing the next event.
    #[serde(default)]
    pub serial_id: Option<i64>,
}

/// Where an instance failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureInfo {
    pub destination_id: i64,
    pub activity: String,
    pub event: String,
    pub message: String,
    pub at: Millis,
}

/// The instance's flow state, stored as one JSON value beside the row.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FlowState {
    pub tokens: Vec<Token>,
    /// For `All` joins: activity index → incoming line indices fired so far.
    #[serde(default)]
    pub joins: BTreeMap<usize, BTreeSet<usize>>,
    pub next_destination_id: i64,
    #[serde(default)]
    pub failure: Option<FailureInfo>,
    /// Steps (events begun, activities completed) taken since a callback or
    /// an operator last moved the instance on. Kept with the instance, so
    /// that the step guard counts across the transactions of a run through
    /// HTTP requests and across its recovery, as it does within one.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub steps: usize,
    /// The instance whose IPC event started this one, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentLink>,
    /// The instances its IPC events started, in the order they started.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ChildLink>,
}

/// A child's link to the instance that started it. Kept in the child's flow
/// state, written in the transaction that starts it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParentLink {
    pub instance_id: i64,
    pub process: String,
    pub activity: String,
    pub event: String,
    /// The parent's server item that waits for this child to complete
    /// (a synchronous IPC event); `None`: the parent went on at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_id: Option<i64>,
    /// 1 for a child of an instance a person started, 2 for a grandchild…
    /// (at most [`crate::model::ipc::MAX_DEPTH`]).
    pub depth: u32,
}

impl ParentLink {
    pub fn serial(&self) -> Option<Serial> {
        self.serial_id.map(|destination_id| Serial { instance_id: self.instance_id, destination_id })
    }
}

/// A parent's link to a child one of its IPC events started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildLink {
    pub instance_id: i64,
    pub process: String,
    pub version: u32,
    /// The activity instance and event (its index) that started it.
    pub destination_id: i64,
    pub event_index: usize,
    /// The item the parent waits on for it; `None` when it did not wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serial_id: Option<i64>,
    pub started_at: Millis,
}

fn is_zero(steps: &usize) -> bool {
    *steps == 0
}

/// A process instance, loaded for execution.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: i64,
    pub process: String,
    pub version: u32,
    pub folio: String,
    pub originator: String,
    pub status: InstanceStatus,
    pub data: BTreeMap<String, Value>,
    pub flow: FlowState,
    pub started_at: Millis,
    pub updated_at: Millis,
    /// The claim while it is `Running`: who runs its outside work (a request,
    /// an asynchronous script) and until when the claim holds without word
    /// from that runner; used to pick up instances whose runner died.
    pub runner: Option<crate::engine::runner::RunnerId>,
    pub lease_until: Option<Millis>,
    /// Bumped by the store at every write to the instance or its server
    /// items: work planned on an older revision is stale.
    pub revision: i64,
}

impl Instance {
    pub fn serial(&self, destination_id: i64) -> Serial {
        Serial { instance_id: self.id, destination_id }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ItemStatus {
    Pending,
    Finished,
    /// Closed without a callback because an operator moved the instance on.
    Cancelled,
}

impl ItemStatus {
    pub fn name(self) -> &'static str {
        match self {
            ItemStatus::Pending => "Pending",
            ItemStatus::Finished => "Finished",
            ItemStatus::Cancelled => "Cancelled",
        }
    }
}

impl fmt::Display for ItemStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A server item: the wait of one asynchronous server event.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerItem {
    pub serial: Serial,
    /// The activity instance the item's event runs in.
    pub activity_destination_id: i64,
    pub event_index: usize,
    pub process: String,
    pub folio: String,
    pub activity: String,
    pub event: String,
    pub status: ItemStatus,
    pub created_at: Millis,
    pub closed_at: Option<Millis>,
    pub closed_by: Option<String>,
    /// Data a finish set that the instance has not applied yet (early callback,
    /// or a finish recorded while the instance was stopped or in error).
    pub unapplied: Option<BTreeMap<String, Value>>,
    /// When the item's next armed timer falls due (an escalation, or its
    /// timer event's wait); `None` when none is armed. Read, never written
    /// with the item: the timers table holds it.
    pub due_at: Option<Millis>,
}

/// One line of an instance's audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: Millis,
    pub user: String,
    pub action: AuditAction,
    /// The particulars, in words (which serial, which activity, what a
    /// script logged).
    pub detail: String,
    /// The activity (and event) the line is about, when it is about one:
    /// what the trail table's Activity / event column shows. `None` for
    /// what happens to the instance as a whole (started, stopped, data
    /// changed) and for lines written before this was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<AuditPlace>,
}

/// Where in the process an audit line happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPlace {
    pub activity: String,
    /// The event, empty when the line is about the activity itself
    /// (started, completed, a line rule).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub event: String,
}

impl AuditPlace {
    /// "Activity / event", or the activity alone.
    pub fn words(&self) -> String {
        if self.event.is_empty() { self.activity.clone() } else { format!("{} / {}", self.activity, self.event) }
    }
}

/// What a line of the audit trail records. A front end tells lines apart by
/// their action (the window colours errors), never by comparing text. Stored
/// and shown by [`AuditAction::name`], the words trails were written in before
/// this type existed, so older trails read as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    InstanceStarted,
    ActivityStarted,
    ActivityCompleted,
    ItemCreated,
    WaitingForCallback,
    /// A finish (callback) arrived for a server item; applied at once, or
    /// recorded to be applied later ([`AuditAction::CallbackApplied`]).
    ItemFinished,
    CallbackApplied,
    /// A line a script wrote with `log()`.
    Log,
    HttpRequest,
    /// An event or a line rule failed.
    Error,
    InstanceCompleted,
    InstanceInError,
    Retried,
    Stopped,
    Resumed,
    WentToActivity,
    DataChanged,
    Recovered,
    /// An escalation's timer fired; the detail names the escalation and
    /// what it did.
    EscalationFired,
    /// A timer event's wait ended.
    TimerFired,
    /// An escalation could not be armed when its wait began (its date
    /// field was empty, say): it will not fire for this item.
    EscalationNotArmed,
    /// An escalation's notification was refused; it is tried again.
    NotifyFailed,
    /// A mail event's mail: accepted by the SMTP server (with its
    /// message id), refused (with the server's answer) or not sent.
    Mail,
    /// An IPC event started a child instance; the detail names it.
    ChildStarted,
    /// A child completed and told its waiting parent (finishing the
    /// parent's item), or could not (the item was finished by hand).
    ParentNotified,
}

impl AuditAction {
    pub const ALL: [AuditAction; 25] = [
        AuditAction::InstanceStarted,
        AuditAction::ActivityStarted,
        AuditAction::ActivityCompleted,
        AuditAction::ItemCreated,
        AuditAction::WaitingForCallback,
        AuditAction::ItemFinished,
        AuditAction::CallbackApplied,
        AuditAction::Log,
        AuditAction::HttpRequest,
        AuditAction::Error,
        AuditAction::InstanceCompleted,
        AuditAction::InstanceInError,
        AuditAction::Retried,
        AuditAction::Stopped,
        AuditAction::Resumed,
        AuditAction::WentToActivity,
        AuditAction::DataChanged,
        AuditAction::Recovered,
        AuditAction::EscalationFired,
        AuditAction::TimerFired,
        AuditAction::EscalationNotArmed,
        AuditAction::NotifyFailed,
        AuditAction::Mail,
        AuditAction::ChildStarted,
        AuditAction::ParentNotified,
    ];

    /// The action in words, as trails show and store it.
    pub fn name(self) -> &'static str {
        match self {
            AuditAction::InstanceStarted => "Instance started",
            AuditAction::ActivityStarted => "Activity started",
            AuditAction::ActivityCompleted => "Activity completed",
            AuditAction::ItemCreated => "Server item created",
            AuditAction::WaitingForCallback => "Waiting for callback",
            AuditAction::ItemFinished => "Server item finished",
            AuditAction::CallbackApplied => "Callback applied",
            AuditAction::Log => "Log",
            AuditAction::HttpRequest => "HTTP request",
            AuditAction::Error => "Error",
            AuditAction::InstanceCompleted => "Instance completed",
            AuditAction::InstanceInError => "Instance in error",
            AuditAction::Retried => "Retried",
            AuditAction::Stopped => "Stopped",
            AuditAction::Resumed => "Resumed",
            AuditAction::WentToActivity => "Went to activity",
            AuditAction::DataChanged => "Data changed",
            AuditAction::Recovered => "Recovered",
            AuditAction::EscalationFired => "Escalation fired",
            AuditAction::TimerFired => "Timer fired",
            AuditAction::EscalationNotArmed => "Escalation not armed",
            AuditAction::NotifyFailed => "Notification failed",
            AuditAction::Mail => "Mail",
            AuditAction::ChildStarted => "Child started",
            AuditAction::ParentNotified => "Parent notified",
        }
    }
}

impl fmt::Display for AuditAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown audit action `{0}`")]
pub struct UnknownAction(pub String);

impl FromStr for AuditAction {
    type Err = UnknownAction;
    fn from_str(text: &str) -> Result<AuditAction, UnknownAction> {
        AuditAction::ALL.into_iter().find(|a| a.name() == text).ok_or_else(|| UnknownAction(text.to_owned()))
    }
}

impl Serialize for AuditAction {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for AuditAction {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AuditAction, D::Error> {
        struct Name;
        impl serde::de::Visitor<'_> for Name {
            type Value = AuditAction;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the name of an audit action")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<AuditAction, E> {
                text.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// Where an activity instance's record stands. An activity whose event
/// failed has no status of its own: it stays `Active` (its token waits in
/// [`TokenState::Failed`] for a retry, which carries on in the same activity
/// instance), and the instance's [`FailureInfo`] names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivityStatus {
    Active,
    Completed,
    Cancelled,
}

impl ActivityStatus {
    pub fn name(self) -> &'static str {
        match self {
            ActivityStatus::Active => "Active",
            ActivityStatus::Completed => "Completed",
            ActivityStatus::Cancelled => "Cancelled",
        }
    }
}

/// The history of one activity instance, for the flow view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActivityRecord {
    pub destination_id: i64,
    pub activity_id: String,
    pub activity: String,
    pub status: ActivityStatus,
    pub started_at: Millis,
    pub finished_at: Option<Millis>,
}

/// One evaluation of a line after its activity completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineResult {
    pub line_index: usize,
    pub from_destination_id: i64,
    pub fired: bool,
    pub at: Millis,
}
