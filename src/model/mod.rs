//! Process definitions: the file format, validation, the graph and compiled form.
//!
//! Architecture invariant: this layer does no IO besides reading and writing a
//! process file, and knows nothing of the database or the GUI.

pub mod bpmn;
pub mod compiled;
pub mod definition;
pub mod graph;
pub mod http;
pub mod ipc;
pub mod mail;
pub mod rights;
pub mod script;
pub mod template;
pub mod time;
pub mod validate;
pub mod value;

pub use compiled::{
    CompiledActivity, CompiledEscalation, CompiledEvent, CompiledLine, CompiledProcess, EscalationAction, EventAction,
};
pub use definition::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, FieldDraft, HeaderDraft, HttpRequestDraft,
    LineDraft, LoadError, MailDraft, NotifyDraft, Position, PrecedingRule, ProcessDraft, RequestParts, RequestPartsMut,
    ServerEventDraft, TimerDraft,
};
pub use graph::ProcessGraph;
pub use http::{FillError, HttpMethod, HttpRequest, HttpRequestSpec};
pub use ipc::{IpcDraft, IpcSpec, MappingDraft};
pub use mail::{MailFillError, MailMessage, MailSpec};
pub use rights::Right;
pub use script::{
    CompiledScript, ScriptClock, ScriptContext, ScriptExtension, ScriptFailure, ScriptHost, ScriptOutcome,
    SystemScriptClock,
};
pub use template::{Template, TemplateError, TemplateValues};
pub use time::{Delay, DelayError, Due, DueError, Millis, ProcessZone, ZoneError};
pub use validate::{Location, Problem, Severity, validate};
pub use value::{FieldType, TypeMismatch, Value};
