//! The process file format (`*.process.json`), as written by people and the designer.
//!
//! These types are the *draft*: what the file says, before anything is checked.
//! They are deliberately lenient where a user can make a mistake the designer must
//! show next to the element (a field type spelled wrong, a rule that does not
//! compile), so that [`crate::model::validate()`] can report every problem at once
//! instead of stopping at the first one. Only [`crate::model::CompiledProcess`] is
//! trusted by the engine.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The most a process may hold. Generous for what people draw (the
/// designer's benchmark draws 500 activities and 1,000 lines) and small
/// enough that the largest process allowed still deploys and starts quickly
/// (measured in ARCHITECTURE.md). Reading a file checks [`limits::FILE_BYTES`]
/// before parsing; validation, and so every deploy, checks all of them.
/// Versions deployed before a limit existed still run (see
/// [`crate::model::CompiledProcess::compile_deployed`]).
pub mod limits {
    /// A process file, and a process as the designer saves it.
    pub const FILE_BYTES: usize = 2 * 1024 * 1024;
    pub const FIELDS: usize = 200;
    pub const ACTIVITIES: usize = 1_000;
    pub const EVENTS_PER_ACTIVITY: usize = 50;
    /// Each is armed as a timer for every wait of its activity.
    pub const ESCALATIONS_PER_ACTIVITY: usize = 50;
    pub const LINES: usize = 2_000;
    /// A name or id (of the process, a field, an activity, an event), in
    /// characters: names are written into the history of every instance.
    pub const NAME_CHARS: usize = 200;
    /// One script or one line rule, in bytes.
    pub const SCRIPT_BYTES: usize = 64 * 1024;
    /// How far from the origin a position may be on either axis, in canvas
    /// units: far beyond any drawing, and exact in an `f32`.
    pub const COORDINATE: f32 = 1_000_000.0;
}

/// A whole process definition as stored in a `.process.json` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessDraft {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// How long each of the process's scripts and line rules may run, in
    /// milliseconds; none: the engine's default (see `ScriptHost::DEFAULT_TIME_BUDGET`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_time_limit_ms: Option<u64>,
    /// The IANA time zone (`Europe/London`) where the process's days are
    /// counted and its local date-times read; none: UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub fields: Vec<FieldDraft>,
    #[serde(default)]
    pub activities: Vec<ActivityDraft>,
    #[serde(default)]
    pub lines: Vec<LineDraft>,
}

/// A process data field. `type` stays text here so that an unknown type is a
/// validation problem with a location, not a parse failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDraft {
    pub name: String,
    #[serde(rename = "type")]
    pub field_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// Whether the instance list finds instances by this field's value
    /// through an index of its own: fast at a million instances, but every
    /// write of the process's instances then also updates the index, so it
    /// is the designer's choice per field. Absent in files written before
    /// it (not searchable).
    #[serde(default, skip_serializing_if = "is_false")]
    pub searchable: bool,
}

/// Where a box sits on the designer's canvas, in canvas units.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Position {
    pub x: f32,
    pub y: f32,
}

/// When an activity with several incoming lines starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PrecedingRule {
    /// Every arriving line starts a new activity instance.
    #[default]
    Any,
    /// Start once every incoming line has fired in this instance.
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityDraft {
    /// Stable identifier used by lines; unlike the name it never changes on rename.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub position: Position,
    #[serde(default, skip_serializing_if = "is_false")]
    pub start: bool,
    #[serde(default)]
    pub preceding_rule: PrecedingRule,
    #[serde(default)]
    pub events: Vec<EventDraft>,
    /// What happens when the activity waits too long, in the order they
    /// are listed (see [`EscalationDraft`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub escalations: Vec<EscalationDraft>,
}

/// An escalation: when a wait of its activity (an asynchronous event or a
/// timer) has gone on `after` a duration, or reaches the date-time a field
/// holds (`at_field`), its action is taken. Exactly one of the two is
/// written; both stay text so that a mistake is a problem with a place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationDraft {
    #[serde(default)]
    pub name: String,
    /// A duration (`30m`, `2h`, `3d`, `1h 30m`, `PT2H`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub after: String,
    /// A `date` or `datetime` field.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub at_field: String,
    pub action: EscalationActionDraft,
}

/// What an escalation does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum EscalationActionDraft {
    /// Finishes the waiting item with these data values, as a callback
    /// would: the instance goes on.
    Finish {
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        set: BTreeMap<String, serde_json::Value>,
    },
    /// Cancels the waiting item and goes to an activity, as `goto` does.
    GoTo {
        #[serde(default)]
        activity: String,
    },
    /// Does the waiting event's work again (same serial), at `after`,
    /// 2 × `after`, … `times` times; then the next escalations apply.
    Repeat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        times: Option<u32>,
    },
    /// Sends a request and keeps waiting.
    Notify(NotifyDraft),
    /// Puts the instance in Error for an operator to repair.
    Fail,
}

impl EscalationActionDraft {
    /// The action's name as the file and the designer write it.
    pub fn kind(&self) -> &'static str {
        match self {
            EscalationActionDraft::Finish { .. } => "finish",
            EscalationActionDraft::GoTo { .. } => "go_to",
            EscalationActionDraft::Repeat { .. } => "repeat",
            EscalationActionDraft::Notify(_) => "notify",
            EscalationActionDraft::Fail => "fail",
        }
    }
}

/// The request a `notify` escalation sends: the request of an HTTP request
/// event (see [`HttpRequestDraft`]), without its name and wait.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyDraft {
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderDraft>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

impl Default for NotifyDraft {
    fn default() -> NotifyDraft {
        NotifyDraft {
            method: default_method(),
            url: String::new(),
            headers: Vec::new(),
            body: String::new(),
            timeout_seconds: default_timeout_seconds(),
        }
    }
}

/// The parts of a request as written, whichever element holds them (an
/// HTTP request event, a notify escalation): what checking a request and
/// the designer's request editor work on. The two file forms stay two
/// structs because a request event's parts sit beside its name in the file
/// (serde cannot flatten a struct that refuses unknown fields).
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [HeaderDraft],
    pub body: &'a str,
    pub timeout_seconds: u64,
}

/// [`RequestParts`] to change.
pub struct RequestPartsMut<'a> {
    pub method: &'a mut String,
    pub url: &'a mut String,
    pub headers: &'a mut Vec<HeaderDraft>,
    pub body: &'a mut String,
    pub timeout_seconds: &'a mut u64,
}

/// `parts` and `parts_mut` of each draft that holds a request's fields,
/// written once so that the two cannot drift apart.
macro_rules! request_parts {
    ($($draft:ty),+) => {$(
        impl $draft {
            pub fn parts(&self) -> RequestParts<'_> {
                RequestParts {
                    method: &self.method,
                    url: &self.url,
                    headers: &self.headers,
                    body: &self.body,
                    timeout_seconds: self.timeout_seconds,
                }
            }

            pub fn parts_mut(&mut self) -> RequestPartsMut<'_> {
                RequestPartsMut {
                    method: &mut self.method,
                    url: &mut self.url,
                    headers: &mut self.headers,
                    body: &mut self.body,
                    timeout_seconds: &mut self.timeout_seconds,
                }
            }
        }
    )+};
}

request_parts!(NotifyDraft, HttpRequestDraft);

/// A timer event ("Wait" in the palette): waits `after` a duration from
/// when it is reached, or until the date-time a field holds (`at_field`),
/// then completes. Always asynchronous: it has a server item, which the
/// scheduler finishes (or a callback, early).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimerDraft {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub after: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub at_field: String,
}

/// One step inside an activity. Tagged by `kind` so later templates (client
/// event, mail, sub-process, timer) are new variants, not new file formats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventDraft {
    ServerEvent(ServerEventDraft),
    HttpRequest(HttpRequestDraft),
    Timer(TimerDraft),
    Mail(MailDraft),
    /// A sub-process (IPC) event: see [`crate::model::ipc`].
    Ipc(crate::model::ipc::IpcDraft),
}

impl EventDraft {
    pub fn name(&self) -> &str {
        match self {
            EventDraft::ServerEvent(event) => &event.name,
            EventDraft::HttpRequest(event) => &event.name,
            EventDraft::Timer(event) => &event.name,
            EventDraft::Mail(event) => &event.name,
            EventDraft::Ipc(event) => &event.name,
        }
    }

    pub fn set_name(&mut self, name: String) {
        match self {
            EventDraft::ServerEvent(event) => event.name = name,
            EventDraft::HttpRequest(event) => event.name = name,
            EventDraft::Timer(event) => event.name = name,
            EventDraft::Mail(event) => event.name = name,
            EventDraft::Ipc(event) => event.name = name,
        }
    }

    /// Whether the event completes at once; otherwise it waits for a callback
    /// on its server item. Not an IPC event's *Synchronous* property, which
    /// means the opposite: a synchronous IPC event waits for its child.
    pub fn synchronous(&self) -> bool {
        match self {
            EventDraft::ServerEvent(event) => event.synchronous,
            EventDraft::HttpRequest(event) => event.synchronous,
            EventDraft::Timer(_) => false,
            // What the file says, so that validation can name an
            // asynchronous mail event; it never runs as one.
            EventDraft::Mail(event) => event.synchronous,
            EventDraft::Ipc(event) => !event.synchronous,
        }
    }
}

/// A server (code) event: a script that runs top to bottom. When not synchronous
/// the event then waits for a callback on its server item's serial.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerEventDraft {
    pub name: String,
    #[serde(default = "default_synchronous")]
    pub synchronous: bool,
    #[serde(default)]
    pub script: String,
}

/// An HTTP request event: sends one request to an external system and
/// completes when it succeeds (synchronous) or then waits for a callback on
/// its server item's serial (asynchronous), which the request can carry
/// (`${serial}`). The method stays text so that a misspelt one is a validation
/// problem with a place; `url`, header values and `body` are templates (see
/// [`crate::model::template`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestDraft {
    pub name: String,
    #[serde(default = "default_synchronous")]
    pub synchronous: bool,
    #[serde(default = "default_method")]
    pub method: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<HeaderDraft>,
    /// A JSON body template; empty sends no body.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
}

impl HttpRequestDraft {
    pub const DEFAULT_METHOD: &str = "POST";
    pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
}

/// A mail event: sends one e-mail through the SMTP server set in the
/// window's Settings or `FLOWDESK_SMTP_URL` (never in the process file), and
/// completes once the server has accepted it. Always synchronous: the
/// server's acceptance is its whole work, and nothing outside holds a
/// serial to call back with; `synchronous: false` is a validation problem.
/// `to`, `cc` (comma-separated addresses), `subject`, `body` (plain text)
/// and `html` (empty: none; else sent as the alternative to `body`) are
/// templates (see [`crate::model::template`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailDraft {
    pub name: String,
    #[serde(default = "default_synchronous", skip_serializing_if = "is_true")]
    pub synchronous: bool,
    #[serde(default)]
    pub to: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cc: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub body: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub html: String,
}

/// One request header; the value is a template.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderDraft {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

fn default_method() -> String {
    HttpRequestDraft::DEFAULT_METHOD.to_owned()
}

fn default_timeout_seconds() -> u64 {
    HttpRequestDraft::DEFAULT_TIMEOUT_SECONDS
}

fn default_synchronous() -> bool {
    true
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_true(value: &bool) -> bool {
    *value
}

/// An arrow between two activities. An empty rule is always true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineDraft {
    pub from: String,
    pub to: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub rule: String,
}

/// A process file that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    // The cause is part of the message, not a `#[source]`, so that `{:#}`
    // chains do not print it twice.
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path} is larger than the {} KiB a process file may be", limits::FILE_BYTES / 1024)]
    TooLarge { path: String },
    #[error("{origin}: line {line}, column {column}: {message}")]
    Syntax { origin: String, line: usize, column: usize, message: String },
}

impl ProcessDraft {
    /// Parses process JSON. `origin` names the source in error messages.
    pub fn from_json(text: &str, origin: &str) -> Result<ProcessDraft, LoadError> {
        serde_json::from_str(text).map_err(|err| LoadError::Syntax {
            origin: origin.to_owned(),
            line: err.line(),
            column: err.column(),
            message: strip_serde_position(&err.to_string()),
        })
    }

    /// Reads a process file, refusing one larger than [`limits::FILE_BYTES`]
    /// before reading it whole.
    pub fn load(path: &Path) -> Result<ProcessDraft, LoadError> {
        use std::io::Read;
        let shown = || path.display().to_string();
        let read = |cause| LoadError::Read { path: shown(), cause };
        let file = std::fs::File::open(path).map_err(read)?;
        // One byte more than allowed tells a file that is too large, even
        // one that grows while it is read.
        let mut bytes = Vec::new();
        file.take(limits::FILE_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(read)?;
        if bytes.len() > limits::FILE_BYTES {
            return Err(LoadError::TooLarge { path: shown() });
        }
        let text = String::from_utf8(bytes)
            .map_err(|e| read(std::io::Error::new(std::io::ErrorKind::InvalidData, e.utf8_error())))?;
        ProcessDraft::from_json(&text, &shown())
    }

    /// The file form: pretty JSON with a trailing newline, stable field order.
    pub fn to_json(&self) -> String {
        // Serialising plain structs of strings, numbers and JSON values cannot fail.
        let mut text = serde_json::to_string_pretty(self).unwrap_or_default();
        text.push('\n');
        text
    }

    /// The length in bytes of [`ProcessDraft::to_json`], without building it.
    pub fn saved_len(&self) -> usize {
        struct Counter(usize);
        impl std::io::Write for Counter {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0 += bytes.len();
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut counter = Counter(0);
        // As in `to_json`: cannot fail.
        let _ = serde_json::to_writer_pretty(&mut counter, self);
        counter.0 + "\n".len()
    }

    pub fn activity(&self, id: &str) -> Option<&ActivityDraft> {
        self.activities.iter().find(|a| a.id == id)
    }
}

/// serde_json appends " at line X column Y"; we report the position ourselves.
fn strip_serde_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(cut) => message[..cut].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synchronous_defaults_to_true() {
        let draft = ProcessDraft::from_json(
            r#"{"name":"p","activities":[{"id":"a","name":"A","start":true,
                "events":[{"kind":"server_event","name":"e"}]}]}"#,
            "test",
        )
        .unwrap();
        let EventDraft::ServerEvent(event) = &draft.activities[0].events[0] else { panic!("not a server event") };
        assert!(event.synchronous);
    }

    #[test]
    fn http_request_defaults() {
        let draft = ProcessDraft::from_json(
            r#"{"name":"p","activities":[{"id":"a","name":"A","start":true,
                "events":[{"kind":"http_request","name":"e","url":"http://h/"}]}]}"#,
            "test",
        )
        .unwrap();
        let EventDraft::HttpRequest(event) = &draft.activities[0].events[0] else { panic!("not an HTTP request") };
        assert!(event.synchronous);
        assert_eq!(event.method, "POST");
        assert_eq!(event.timeout_seconds, 10);
        assert!(event.headers.is_empty() && event.body.is_empty());
        // Written back, defaults that mean "nothing" stay out of the file.
        assert!(!draft.to_json().contains("headers"));
    }

    #[test]
    fn saved_len_is_the_length_of_the_saved_form() {
        let draft = ProcessDraft::from_json(include_str!("../../samples/purchase-approval.process.json"), "t").unwrap();
        assert_eq!(draft.saved_len(), draft.to_json().len());
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = ProcessDraft::from_json("{\n  \"name\": \"p\",\n  \"activites\": []\n}", "p.json").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("p.json: line 3, column"), "{text}");
        assert!(text.contains("unknown field `activites`"), "{text}");
    }

    #[test]
    fn deadlines_read_and_write_back() {
        let text = r#"{
  "name": "p",
  "time_zone": "Europe/London",
  "fields": [{"name": "reply_by", "type": "datetime"}],
  "activities": [
    {"id": "call", "name": "Call", "start": true,
     "events": [{"kind": "server_event", "name": "Send", "synchronous": false}],
     "escalations": [
       {"name": "Chase up", "after": "1h", "action": {"notify": {"url": "http://h/", "body": "{}"}}},
       {"name": "Give up", "after": "3h", "action": {"finish": {"set": {"name": "timed out"}}}},
       {"name": "Again", "after": "10m", "action": {"repeat": {"times": 3}}},
       {"name": "Hand over", "at_field": "reply_by", "action": {"go_to": {"activity": "cool"}}},
       {"name": "Fail", "after": "1d", "action": "fail"}
     ]},
    {"id": "cool", "name": "Cool off", "events": [{"kind": "timer", "name": "Wait", "after": "2h"}]}
  ]
}"#;
        let draft = ProcessDraft::from_json(text, "t").unwrap();
        assert_eq!(draft.time_zone.as_deref(), Some("Europe/London"));
        let kinds: Vec<&str> = draft.activities[0].escalations.iter().map(|e| e.action.kind()).collect();
        assert_eq!(kinds, ["notify", "finish", "repeat", "go_to", "fail"]);
        let EscalationActionDraft::Notify(notify) = &draft.activities[0].escalations[0].action else { panic!() };
        assert_eq!((notify.method.as_str(), notify.timeout_seconds), ("POST", 10));
        let EventDraft::Timer(timer) = &draft.activities[1].events[0] else { panic!("not a timer") };
        assert_eq!((timer.after.as_str(), timer.at_field.as_str()), ("2h", ""));
        assert!(!draft.activities[1].events[0].synchronous());
        let again = ProcessDraft::from_json(&draft.to_json(), "t").unwrap();
        assert_eq!(again, draft);
        // What is not written stays out of the file.
        let json = draft.to_json();
        assert!(!json.contains("at_field\": \"\"") && json.matches("\"escalations\"").count() == 1, "{json}");
        let bad = text.replace("\"times\": 3", "\"times\": 3, \"every\": 2");
        assert!(ProcessDraft::from_json(&bad, "t").is_err());
    }
}
