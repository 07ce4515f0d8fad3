//! Process definitions: the file format, validation, the graph and compiled form.
//!
//! Architecture invariant: this layer does no IO besides reading and writing a
//! process file, and knows nothing of the database or the GUI.

pub mod compiled;
pub mod definition;
pub mod graph;
pub mod http;
pub mod rights;
pub mod script;
pub mod template;
pub mod validate;
pub mod value;

pub use compiled::{CompiledActivity, CompiledEvent, CompiledLine, CompiledProcess, EventAction};
pub use definition::{
    ActivityDraft, EventDraft, FieldDraft, HeaderDraft, HttpRequestDraft, LineDraft, LoadError, Position,
    PrecedingRule, ProcessDraft, ServerEventDraft,
};
pub use graph::ProcessGraph;
pub use http::{FillError, HttpMethod, HttpRequest, HttpRequestSpec};
pub use rights::Right;
pub use script::{
    CompiledScript, ScriptClock, ScriptContext, ScriptExtension, ScriptFailure, ScriptHost, ScriptOutcome,
    SystemScriptClock,
};
pub use template::{Template, TemplateError, TemplateValues};
pub use validate::{Location, Problem, Severity, validate};
pub use value::{FieldType, TypeMismatch, Value};
