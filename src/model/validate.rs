//! Checking a draft: every problem, each with where it is.
//!
//! Validation never stops at the first problem: the designer lists them all and
//! the command line prints them all. Errors block deploying; warnings do not.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

use crate::model::definition::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, LineDraft, Position, PrecedingRule,
    ProcessDraft, limits,
};
use crate::model::graph::ProcessGraph;
use crate::model::http::{HttpRequestSpec, sample_context};
use crate::model::mail::MailSpec;
use crate::model::script::{CONTEXT_NAMES, ScriptContext, ScriptFailure, ScriptHost};
use crate::model::template::TemplateValues;
use crate::model::time::{Delay, ProcessZone};
use crate::model::value::{FieldType, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Severity {
    Error,
    Warning,
}

/// The element a problem belongs to, so a front end can select it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "element", rename_all = "snake_case")]
pub enum Location {
    Process,
    Field {
        index: usize,
        name: String,
    },
    Activity {
        id: String,
        name: String,
    },
    Event {
        activity_id: String,
        activity_name: String,
        index: usize,
        name: String,
    },
    /// One of an activity's escalations, by its place in the list.
    Escalation {
        activity_id: String,
        activity_name: String,
        index: usize,
        name: String,
    },
    Line {
        index: usize,
        from: String,
        to: String,
    },
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Process => f.write_str("process"),
            Location::Field { name, index } if name.is_empty() => write!(f, "field #{}", index + 1),
            Location::Field { name, .. } => write!(f, "field `{name}`"),
            Location::Activity { id, name } => write!(f, "activity `{name}` ({id})"),
            Location::Event { activity_name, index, name, .. } => {
                write!(f, "activity `{activity_name}`, event {} `{name}`", index + 1)
            }
            Location::Escalation { activity_name, index, name, .. } => {
                write!(f, "activity `{activity_name}`, escalation {} `{name}`", index + 1)
            }
            Location::Line { index, from, to } => write!(f, "line {} ({from} → {to})", index + 1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{severity}: {}: {}", self.location, self.message)
    }
}

/// Every problem of a draft, errors first, then in element order.
pub fn validate(draft: &ProcessDraft, host: &ScriptHost) -> Vec<Problem> {
    let mut problems = Problems::default();
    check_process(draft, &mut problems);
    check_script_time_limit(draft, &mut problems);
    check_limits(draft, &mut problems);
    // An unknown zone is a problem of its own; the rest is checked in UTC.
    let zone = match ProcessZone::of(draft.time_zone.as_deref()) {
        Ok(zone) => zone,
        Err(err) => {
            problems.error(Location::Process, err.to_string());
            ProcessZone::utc()
        }
    };
    let field_types = check_fields(draft, host, &zone, &mut problems);
    let field_names: Vec<&str> = field_types.keys().map(String::as_str).collect();
    let defaults: BTreeMap<String, Value> = field_types
        .iter()
        .map(|(name, (ty, default))| (name.clone(), default.clone().unwrap_or_else(|| ty.zero_value())))
        .collect();
    check_activities(draft, host, &field_names, &defaults, &mut problems);
    let fields = Fields { types: &field_types, names: &field_names, defaults: &defaults, zone: &zone };
    check_timers_and_escalations(draft, &fields, &mut problems);
    check_lines(draft, host, &field_names, &defaults, &mut problems);
    check_positions(draft, &mut problems);
    check_duplicate_lines(draft, &mut problems);
    check_graph(draft, &mut problems);
    let mut problems = problems.0;
    // Stable: keeps element order within each severity.
    problems.sort_by_key(|p| p.severity);
    problems
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn error(&mut self, location: Location, message: impl Into<String>) {
        self.0.push(Problem { severity: Severity::Error, location, message: message.into() });
    }
    fn warning(&mut self, location: Location, message: impl Into<String>) {
        self.0.push(Problem { severity: Severity::Warning, location, message: message.into() });
    }
}

pub(crate) fn activity_location(draft: &ProcessDraft, index: usize) -> Location {
    let activity = &draft.activities[index];
    Location::Activity { id: activity.id.clone(), name: activity.name.clone() }
}

pub(crate) fn line_location(draft: &ProcessDraft, index: usize) -> Location {
    let line = &draft.lines[index];
    let name_of = |id: &str| draft.activity(id).map(|a| a.name.clone()).unwrap_or_else(|| id.to_owned());
    Location::Line { index, from: name_of(&line.from), to: name_of(&line.to) }
}

fn check_process(draft: &ProcessDraft, problems: &mut Problems) {
    if draft.name.trim().is_empty() {
        problems.error(Location::Process, "the process has no name");
    } else if draft.name.trim() != draft.name || draft.name.chars().any(char::is_control) {
        problems
            .error(Location::Process, "the process name must not start or end with spaces or hold control characters");
    }
    if draft.activities.is_empty() {
        problems.error(Location::Process, "the process has no activities");
    }
}

/// A budget of nothing would fail every script; one longer than
/// `ScriptHost::MAX_TIME_BUDGET` could hold the write lock as long as other
/// writers wait for it.
fn check_script_time_limit(draft: &ProcessDraft, problems: &mut Problems) {
    let Some(limit) = draft.script_time_limit_ms else { return };
    let most = ScriptHost::MAX_TIME_BUDGET.as_millis();
    if limit == 0 || u128::from(limit) > most {
        problems
            .error(Location::Process, format!("script time limit of {limit} ms is out of range: from 1 to {most} ms"));
    }
}

/// Field name → (type, default) for every field whose type is known.
fn check_fields(
    draft: &ProcessDraft,
    host: &ScriptHost,
    zone: &ProcessZone,
    problems: &mut Problems,
) -> BTreeMap<String, (FieldType, Option<Value>)> {
    let mut fields = BTreeMap::new();
    let mut seen = HashSet::new();
    for (index, field) in draft.fields.iter().enumerate() {
        let location = Location::Field { index, name: field.name.clone() };
        if !is_identifier(&field.name) {
            problems.error(
                location.clone(),
                "a field name must start with a letter or _ and hold only letters, digits and _",
            );
        } else if CONTEXT_NAMES.contains(&field.name.as_str()) || !host.is_usable_name(&field.name) {
            problems.error(location.clone(), format!("`{}` is a reserved name in scripts", field.name));
        }
        if !seen.insert(field.name.clone()) {
            problems.error(location.clone(), format!("duplicate field name `{}`", field.name));
        }
        let Some(field_type) = FieldType::from_name(&field.field_type) else {
            problems.error(
                location,
                format!(
                    "unknown field type `{}` (expected string, integer, decimal, boolean, date or datetime)",
                    field.field_type
                ),
            );
            continue;
        };
        if field.searchable
            && let Some(why) = field_type.unsearchable_because()
        {
            problems.error(location.clone(), format!("a {field_type} field cannot be searchable: {why}"));
        }
        let default = match &field.default {
            None => None,
            Some(json) => match Value::from_json(field_type, json, zone) {
                Ok(value) => Some(value),
                Err(mismatch) => {
                    problems.error(location, format!("default value: {mismatch}"));
                    None
                }
            },
        };
        fields.entry(field.name.clone()).or_insert((field_type, default));
    }
    fields
}

fn check_activities(
    draft: &ProcessDraft,
    host: &ScriptHost,
    field_names: &[&str],
    defaults: &BTreeMap<String, Value>,
    problems: &mut Problems,
) {
    let starts: Vec<usize> = (0..draft.activities.len()).filter(|&i| draft.activities[i].start).collect();
    match starts.len() {
        0 if !draft.activities.is_empty() => {
            problems.error(Location::Process, "no start activity: mark one activity as start")
        }
        0 | 1 => {}
        _ => {
            for &index in &starts {
                problems.error(
                    activity_location(draft, index),
                    format!("{} activities are marked as start; exactly one may be", starts.len()),
                );
            }
        }
    }
    let mut ids = HashSet::new();
    let mut names = HashSet::new();
    for (index, activity) in draft.activities.iter().enumerate() {
        let location = activity_location(draft, index);
        if activity.id.trim().is_empty() {
            problems.error(location.clone(), "the activity has no id");
        } else if !ids.insert(activity.id.as_str()) {
            problems.error(location.clone(), format!("duplicate activity id `{}`", activity.id));
        }
        if activity.name.trim().is_empty() {
            problems.error(location.clone(), "the activity has no name");
        } else if !names.insert(activity.name.as_str()) {
            problems.error(location.clone(), format!("duplicate activity name `{}`", activity.name));
        }
        let mut event_names = HashSet::new();
        for (event_index, event) in activity.events.iter().enumerate() {
            let event_location = Location::Event {
                activity_id: activity.id.clone(),
                activity_name: activity.name.clone(),
                index: event_index,
                name: event.name().to_owned(),
            };
            if event.name().trim().is_empty() {
                problems.error(event_location.clone(), "the event has no name");
            } else if !event_names.insert(event.name()) {
                problems
                    .error(event_location.clone(), format!("duplicate event name `{}` in this activity", event.name()));
            }
            match event {
                EventDraft::ServerEvent(server_event) => {
                    if let Err(err) = host.compile_script(&server_event.script, field_names) {
                        problems.error(event_location, format!("script: {err}"));
                    }
                }
                EventDraft::HttpRequest(request) => {
                    let context = sample_context(&activity.name, &request.name, request.synchronous);
                    let sample = TemplateValues { context: &context, data: defaults };
                    if let Err(messages) = HttpRequestSpec::check(request.parts(), field_names, &sample) {
                        for message in messages {
                            problems.error(event_location.clone(), message);
                        }
                    }
                    let templates = std::iter::once(&request.url)
                        .chain(request.headers.iter().map(|h| &h.value))
                        .chain(std::iter::once(&request.body));
                    if request.synchronous && templates.into_iter().any(|t| t.contains("${serial}")) {
                        problems.warning(
                            event_location.clone(),
                            "a synchronous event has no server item: `${serial}` is empty (null in the body); make the event asynchronous to hand out a serial",
                        );
                    }
                }
                EventDraft::Timer(_) => {}
                EventDraft::Mail(mail) => {
                    if let Err(messages) = MailSpec::check(mail, field_names) {
                        for message in messages {
                            problems.error(event_location.clone(), message);
                        }
                    }
                }
                EventDraft::Ipc(ipc) => check_ipc(draft, ipc, defaults, event_location, problems),
            }
        }
    }
}

/// An IPC event's problems that the draft tells. Whether its child is
/// deployed, has the fields its mappings name and of which types, only the
/// store knows: the engine checks that when deploying (and `validate` with
/// a database), so a draft is not refused for a child not deployed yet. A
/// process calling itself has its own fields to check against.
fn check_ipc(
    draft: &ProcessDraft,
    ipc: &crate::model::ipc::IpcDraft,
    defaults: &BTreeMap<String, Value>,
    location: Location,
    problems: &mut Problems,
) {
    let field_types: BTreeMap<String, FieldType> =
        defaults.iter().map(|(name, value)| (name.clone(), value.field_type())).collect();
    let spec = match crate::model::ipc::IpcSpec::check(ipc, &field_types) {
        Ok(spec) => spec,
        Err(messages) => {
            for message in messages {
                problems.error(location.clone(), message);
            }
            return;
        }
    };
    if spec.process == draft.name {
        for message in spec.check_child(&field_types, &field_types) {
            problems.error(location.clone(), message);
        }
        problems.warning(
            location,
            format!(
                "the process starts itself: allowed, but a chain of sub-processes deeper than {} puts the instance that would start the next one in Error",
                crate::model::ipc::MAX_DEPTH
            ),
        );
    }
}

fn check_lines(
    draft: &ProcessDraft,
    host: &ScriptHost,
    field_names: &[&str],
    defaults: &BTreeMap<String, Value>,
    problems: &mut Problems,
) {
    let ids: HashSet<&str> = draft.activities.iter().map(|a| a.id.as_str()).collect();
    for (index, line) in draft.lines.iter().enumerate() {
        let location = line_location(draft, index);
        for (end, id) in [("starts at", &line.from), ("goes to", &line.to)] {
            if !ids.contains(id.as_str()) {
                problems.error(location.clone(), format!("{end} `{id}`, which is not an activity"));
            }
        }
        if line.rule.trim().is_empty() {
            continue;
        }
        match host.compile_rule(&line.rule, field_names) {
            Err(err) => problems.error(location, format!("rule: {err}")),
            // Evaluating with the default values tells a rule that can never be a
            // boolean (`n + 1`, `name > 3`); value-dependent failures such as a
            // division by zero are not knowable here and are left to run time.
            Ok(ast) => match host.eval_rule(&ast, defaults, &ScriptContext::default()) {
                Err(ScriptFailure::RuleNotBoolean { got }) => {
                    problems.error(location, format!("rule gives {got}, not true or false"))
                }
                Err(ScriptFailure::Runtime(message))
                    if message.contains("Function not found") || message.contains("cannot compare") =>
                {
                    problems.error(location, format!("rule: {message}"))
                }
                _ => {}
            },
        }
    }
}

fn check_graph(draft: &ProcessDraft, problems: &mut Problems) {
    let graph = ProcessGraph::new(draft);
    let starts: Vec<usize> = (0..draft.activities.len()).filter(|&i| draft.activities[i].start).collect();
    if let [start] = starts[..] {
        let reachable = reachable_with_escalations(draft, &graph, start);
        for index in 0..draft.activities.len() {
            if !reachable.contains(&index) {
                problems.warning(
                    activity_location(draft, index),
                    "unreachable: no path of lines leads here from the start activity",
                );
            }
        }
        check_go_to_reachable(draft, &reachable, problems);
    }
    for (index, activity) in draft.activities.iter().enumerate() {
        if activity.preceding_rule != PrecedingRule::All {
            continue;
        }
        for line_index in graph.incoming_lines(index) {
            if !draft.lines[line_index].rule.trim().is_empty() {
                problems.warning(
                    line_location(draft, line_index),
                    format!(
                        "this line has a rule but `{}` waits for All incoming lines: if the rule is false the join waits forever",
                        activity.name
                    ),
                );
            }
        }
    }
    check_endless_loops(draft, problems);
}

/// What ends the message of an endless loop that is an error.
const NOTHING_TO_WAIT_AT: &str = " and nothing to wait at (no asynchronous event)";

/// Every true line fires, so a loop made only of lines without rules goes
/// round forever, whatever other lines leave it. When none of its activities
/// holds an asynchronous event, nothing ever waits in it either: an instance
/// runs round (sending every request in it again and again) until the step
/// guard puts it in Error. That is an error. A loop that waits at a callback
/// each round is a warning: the external system may mean it. A loop with a
/// rule on one of its lines is left to the rule, which validation cannot
/// judge.
fn check_endless_loops(draft: &ProcessDraft, problems: &mut Problems) {
    let unconditional = |line: &LineDraft| line.rule.trim().is_empty();
    let indices = activity_indices(draft);
    let waits_at = |id: &str| {
        indices.get(id).is_some_and(|&index| draft.activities[index].events.iter().any(|event| !event.synchronous()))
    };
    let never_waiting =
        ProcessGraph::with_lines(draft, |line| unconditional(line) && !waits_at(&line.from) && !waits_at(&line.to))
            .cycles();
    let describe = |component: &[usize]| {
        let names: Vec<&str> = component.iter().map(|&i| draft.activities[i].name.as_str()).collect();
        match names[..] {
            [single] => format!("endless loop: {single} leads back to itself with no rule to stop it"),
            _ => format!("endless loop: {} follow each other round with no rule to stop them", names.join(", ")),
        }
    };
    for component in &never_waiting {
        problems.error(activity_location(draft, component[0]), format!("{}{NOTHING_TO_WAIT_AT}", describe(component)));
    }
    for component in ProcessGraph::with_lines(draft, unconditional).cycles() {
        // Reported above already, as the loop within it that never waits.
        if never_waiting.iter().any(|inner| inner.iter().all(|activity| component.contains(activity))) {
            continue;
        }
        problems.warning(activity_location(draft, component[0]), describe(&component));
    }
}

/// [`validate`] for a version deployed before an endless loop with nothing
/// to wait at was an error: such a loop is a warning there, so that the
/// version still compiles and its instances can be shown, stopped and run
/// (the step guard ends the loop).
pub(crate) fn validate_deployed(draft: &ProcessDraft, host: &ScriptHost) -> Vec<Problem> {
    let mut problems = validate(draft, host);
    for problem in &mut problems {
        if problem.severity == Severity::Error && problem.message.ends_with(NOTHING_TO_WAIT_AT) {
            problem.severity = Severity::Warning;
        }
    }
    problems.sort_by_key(|p| p.severity);
    problems
}

/// The problems of the checks that keep new versions out but not old ones
/// (a version deployed before a check existed still runs): limits, positions
/// and duplicate lines. [`validate`] reports them too.
pub fn new_version_problems(draft: &ProcessDraft) -> Vec<Problem> {
    let mut problems = Problems::default();
    check_limits(draft, &mut problems);
    check_positions(draft, &mut problems);
    check_duplicate_lines(draft, &mut problems);
    problems.0
}

/// The limits of [`crate::model::definition::limits`] (except positions,
/// see [`check_positions`]): what keeps the largest process deployable
/// and quick to start.
fn check_limits(draft: &ProcessDraft, problems: &mut Problems) {
    let mut counted = |what: &str, count: usize, limit: usize| {
        if count > limit {
            problems.error(Location::Process, format!("the process has {count} {what}; at most {limit} are allowed"));
        }
    };
    counted("fields", draft.fields.len(), limits::FIELDS);
    counted("activities", draft.activities.len(), limits::ACTIVITIES);
    counted("lines", draft.lines.len(), limits::LINES);
    let too_long = |what: &str, text: &str| {
        (text.len() > limits::SCRIPT_BYTES)
            .then(|| format!("the {what} is {} bytes long; at most {} are allowed", text.len(), limits::SCRIPT_BYTES))
    };
    let mut named = |location: &dyn Fn() -> Location, what: &str, name: &str| {
        let chars = name.chars().count();
        if chars > limits::NAME_CHARS {
            problems.error(
                location(),
                format!("the {what} is {chars} characters long; at most {} are allowed", limits::NAME_CHARS),
            );
        }
    };
    named(&|| Location::Process, "process name", &draft.name);
    for (index, field) in draft.fields.iter().enumerate() {
        named(&|| Location::Field { index, name: field.name.clone() }, "name", &field.name);
    }
    for (index, activity) in draft.activities.iter().enumerate() {
        named(&|| activity_location(draft, index), "id", &activity.id);
        named(&|| activity_location(draft, index), "name", &activity.name);
        for (event_index, event) in activity.events.iter().enumerate() {
            let location = || Location::Event {
                activity_id: activity.id.clone(),
                activity_name: activity.name.clone(),
                index: event_index,
                name: event.name().to_owned(),
            };
            named(&location, "name", event.name());
        }
        for (escalation_index, escalation) in activity.escalations.iter().enumerate() {
            named(&|| escalation_location(activity, escalation_index), "name", &escalation.name);
        }
    }
    for (index, activity) in draft.activities.iter().enumerate() {
        if activity.events.len() > limits::EVENTS_PER_ACTIVITY {
            problems.error(
                activity_location(draft, index),
                format!(
                    "the activity has {} events; at most {} are allowed",
                    activity.events.len(),
                    limits::EVENTS_PER_ACTIVITY
                ),
            );
        }
        if activity.escalations.len() > limits::ESCALATIONS_PER_ACTIVITY {
            problems.error(
                activity_location(draft, index),
                format!(
                    "the activity has {} escalations; at most {} are allowed",
                    activity.escalations.len(),
                    limits::ESCALATIONS_PER_ACTIVITY
                ),
            );
        }
        for (event_index, event) in activity.events.iter().enumerate() {
            if let EventDraft::ServerEvent(server_event) = event
                && let Some(message) = too_long("script", &server_event.script)
            {
                let location = Location::Event {
                    activity_id: activity.id.clone(),
                    activity_name: activity.name.clone(),
                    index: event_index,
                    name: event.name().to_owned(),
                };
                problems.error(location, message);
            }
        }
    }
    for (index, line) in draft.lines.iter().enumerate() {
        if let Some(message) = too_long("rule", &line.rule) {
            problems.error(line_location(draft, index), message);
        }
    }
    // What is deployed is the file as the designer saves it, which must be
    // readable as a process file again.
    let saved = draft.saved_len();
    if saved > limits::FILE_BYTES {
        problems.error(
            Location::Process,
            format!(
                "the process is {} KiB as saved; at most {} KiB are allowed",
                saved.div_ceil(1024),
                limits::FILE_BYTES / 1024
            ),
        );
    }
}

/// Every position must be a finite number on the canvas: a number the file
/// format reads but JSON cannot write back (`1e39` is infinite as an `f32`)
/// would be stored as `null`, and the version could never be read again.
fn check_positions(draft: &ProcessDraft, problems: &mut Problems) {
    let on_canvas = |c: f32| c.is_finite() && c.abs() <= limits::COORDINATE;
    for (index, activity) in draft.activities.iter().enumerate() {
        let Position { x, y } = activity.position;
        if !on_canvas(x) || !on_canvas(y) {
            problems.error(
                activity_location(draft, index),
                format!(
                    "position ({x}, {y}) is off the canvas: each coordinate must be between -{0} and {0}",
                    limits::COORDINATE
                ),
            );
        }
    }
}

/// Two lines with the same start, end and rule fire together, so each
/// copy starts the activity once more: refused. Labels do not count, and
/// rules are compared without surrounding spaces.
fn check_duplicate_lines(draft: &ProcessDraft, problems: &mut Problems) {
    let mut first: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for (index, line) in draft.lines.iter().enumerate() {
        let key = (line.from.as_str(), line.to.as_str(), line.rule.trim());
        if let Some(&original) = first.get(&key) {
            problems.error(
                line_location(draft, index),
                format!("the same line as line {}: same start, end and rule", original + 1),
            );
        } else {
            first.insert(key, index);
        }
    }
}

/// A name scripts, SQL paths and filters can take as it is: ASCII letters,
/// digits and `_`, not starting with a digit.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Index of activities by id, first occurrence wins (duplicates are errors anyway).
pub(crate) fn activity_indices(draft: &ProcessDraft) -> HashMap<String, usize> {
    let mut indices = HashMap::new();
    for (index, activity) in draft.activities.iter().enumerate() {
        indices.entry(activity.id.clone()).or_insert(index);
    }
    indices
}

/// What checking timers and escalations needs to know of the fields.
struct Fields<'a> {
    types: &'a BTreeMap<String, (FieldType, Option<Value>)>,
    names: &'a [&'a str],
    defaults: &'a BTreeMap<String, Value>,
    zone: &'a ProcessZone,
}

fn escalation_location(activity: &ActivityDraft, index: usize) -> Location {
    Location::Escalation {
        activity_id: activity.id.clone(),
        activity_name: activity.name.clone(),
        index,
        name: activity.escalations[index].name.clone(),
    }
}

/// Timer events' due times, and every escalation: its due time, its action,
/// and whether anything in its activity waits for it to guard.
fn check_timers_and_escalations(draft: &ProcessDraft, fields: &Fields<'_>, problems: &mut Problems) {
    let ids: HashSet<&str> = draft.activities.iter().map(|a| a.id.as_str()).collect();
    for (activity_index, activity) in draft.activities.iter().enumerate() {
        for (index, event) in activity.events.iter().enumerate() {
            if let EventDraft::Timer(timer) = event {
                let location = Location::Event {
                    activity_id: activity.id.clone(),
                    activity_name: activity.name.clone(),
                    index,
                    name: timer.name.clone(),
                };
                for message in due_problems(&timer.after, &timer.at_field, fields) {
                    problems.error(location.clone(), message);
                }
            }
        }
        if activity.escalations.is_empty() {
            continue;
        }
        if activity.events.iter().all(EventDraft::synchronous) {
            problems.warning(
                activity_location(draft, activity_index),
                "the activity has escalations but nothing in it waits (no asynchronous event or timer): they can never fire",
            );
        }
        let mut names = HashSet::new();
        for (index, escalation) in activity.escalations.iter().enumerate() {
            let location = escalation_location(activity, index);
            if escalation.name.trim().is_empty() {
                problems.error(location.clone(), "the escalation has no name");
            } else if !names.insert(escalation.name.as_str()) {
                problems.error(
                    location.clone(),
                    format!("duplicate escalation name `{}` in this activity", escalation.name),
                );
            }
            for message in due_problems(&escalation.after, &escalation.at_field, fields) {
                problems.error(location.clone(), message);
            }
            for message in action_problems(activity, escalation, &ids, fields) {
                problems.error(location.clone(), message);
            }
        }
    }
}

/// What is wrong with a due time as written: exactly one of a positive
/// duration and a date or date-time field.
fn due_problems(after: &str, at_field: &str, fields: &Fields<'_>) -> Vec<String> {
    match (after.trim().is_empty(), at_field.trim().is_empty()) {
        (true, true) => {
            vec!["say when: `after` a duration (such as 1h) or `at_field` a date or datetime field".to_owned()]
        }
        (false, false) => vec!["write either `after` or `at_field`, not both".to_owned()],
        (false, true) => match Delay::parse(after) {
            Ok(_) => Vec::new(),
            Err(err) => vec![format!("after: {err}")],
        },
        (true, false) => {
            let name = at_field.trim();
            match fields.types.get(name) {
                None => vec![format!("at_field: `{name}` is not a data field")],
                Some((FieldType::Date | FieldType::DateTime, _)) => Vec::new(),
                Some((other, _)) => {
                    let article = if other.name().starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
                    vec![format!("at_field: `{name}` is {article} {other} field; it must be a date or datetime field")]
                }
            }
        }
    }
}

fn action_problems(
    activity: &ActivityDraft,
    escalation: &EscalationDraft,
    ids: &HashSet<&str>,
    fields: &Fields<'_>,
) -> Vec<String> {
    match &escalation.action {
        EscalationActionDraft::Finish { set } => set
            .iter()
            .filter_map(|(name, json)| match fields.types.get(name) {
                None => Some(format!("finish: sets `{name}`, which is not a data field")),
                Some((field_type, _)) => Value::from_json(*field_type, json, fields.zone)
                    .err()
                    .map(|mismatch| format!("finish: `{name}`: {mismatch}")),
            })
            .collect(),
        EscalationActionDraft::GoTo { activity: target } if target.trim().is_empty() => {
            vec!["go to: no activity: name the activity to go to".to_owned()]
        }
        EscalationActionDraft::GoTo { activity: target } if !ids.contains(target.as_str()) => {
            vec![format!("go to: `{target}` is not an activity")]
        }
        EscalationActionDraft::GoTo { .. } | EscalationActionDraft::Fail => Vec::new(),
        EscalationActionDraft::Repeat { times: None } => {
            vec!["repeat without a limit: write `times`, how often at most".to_owned()]
        }
        EscalationActionDraft::Repeat { times: Some(0) } => {
            vec!["repeat 0 times does nothing: `times` must be 1 or more".to_owned()]
        }
        EscalationActionDraft::Repeat { .. } => Vec::new(),
        EscalationActionDraft::Notify(notify) => {
            // The request goes out while the item waits: it has a serial.
            let context = sample_context(&activity.name, &escalation.name, false);
            let sample = TemplateValues { context: &context, data: fields.defaults };
            match HttpRequestSpec::check(notify.parts(), fields.names, &sample) {
                Ok(_) => Vec::new(),
                Err(messages) => messages.into_iter().map(|m| format!("notify: {m}")).collect(),
            }
        }
    }
}

/// The activities a run can reach from `start`: along lines, and along the
/// go-tos of the escalations of every activity reached. An activity only an
/// escalation goes to (K2's "hand over to a person") is reachable.
fn reachable_with_escalations(draft: &ProcessDraft, graph: &ProcessGraph, start: usize) -> HashSet<usize> {
    let indices = activity_indices(draft);
    let mut reachable: HashSet<usize> = HashSet::new();
    let mut todo = vec![start];
    while let Some(from) = todo.pop() {
        if reachable.contains(&from) {
            continue;
        }
        for index in graph.reachable_from(from) {
            if !reachable.insert(index) {
                continue;
            }
            let targets = draft.activities[index].escalations.iter().filter_map(|e| match &e.action {
                EscalationActionDraft::GoTo { activity } => indices.get(activity.as_str()).copied(),
                _ => None,
            });
            todo.extend(targets.filter(|target| !reachable.contains(target)));
        }
    }
    reachable
}

/// A go-to whose activity no run reaches: reachable counts the go-tos of
/// reachable activities, so this is a go-to from an activity that is itself
/// unreachable, to one nothing else leads to. Named apart from "unreachable"
/// so the designer shows it on the escalation that goes there.
fn check_go_to_reachable(draft: &ProcessDraft, reachable: &HashSet<usize>, problems: &mut Problems) {
    let indices = activity_indices(draft);
    for activity in &draft.activities {
        for (index, escalation) in activity.escalations.iter().enumerate() {
            let EscalationActionDraft::GoTo { activity: target } = &escalation.action else { continue };
            if let Some(target_index) = indices.get(target.as_str())
                && !reachable.contains(target_index)
            {
                problems.warning(
                    escalation_location(activity, index),
                    format!(
                        "go to: `{}` cannot be reached from the start activity, so this escalation never runs",
                        draft.activities[*target_index].name
                    ),
                );
            }
        }
    }
}
