//! A checked, compiled process definition: what the engine runs.
//!
//! Built once per deployed version. Scripts and rules are compiled here and never
//! again for a run; lookups the engine needs on every step (an activity's lines in
//! order, a join's incoming lines, field types) are computed once as well, and so
//! are the process's time zone, its timers' and escalations' due times as
//! [`Due`]s, and the values and requests of escalations.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::model::definition::{EscalationActionDraft, EscalationDraft, EventDraft, PrecedingRule, ProcessDraft};
use crate::model::graph::ProcessGraph;
use crate::model::http::{HttpRequestSpec, sample_context};
use crate::model::ipc::IpcSpec;
use crate::model::mail::MailSpec;
use crate::model::script::{CompiledScript, ScriptHost};
use crate::model::template::TemplateValues;
use crate::model::time::{Delay, Due, DueError, Millis, ProcessZone};
use crate::model::validate::{Location, Problem, Severity, activity_indices, validate, validate_deployed};
use crate::model::value::{FieldType, Value};

#[derive(Debug, Clone)]
pub struct CompiledEvent {
    pub name: String,
    /// Whether the event completes at once (an IPC event that waits for its
    /// child, the one whose *Synchronous* property is set, does not).
    pub synchronous: bool,
    pub action: EventAction,
}

/// What an event does before it completes or waits for its callback.
#[derive(Debug, Clone)]
pub enum EventAction {
    /// Runs a script.
    Script(CompiledScript),
    /// Sends an HTTP request: IO, so never inside a transaction.
    Http(HttpRequestSpec),
    /// A timer event: waits until `Due`, then completes.
    Wait(Due),
    /// Sends a mail: IO, so never inside a transaction. Always synchronous.
    Mail(MailSpec),
    /// Starts a child instance (in the same transaction) and, when
    /// [`IpcSpec::waits`], waits for it to complete.
    Ipc(IpcSpec),
}

/// An escalation of an activity: when a wait of the activity falls due,
/// its action is taken.
#[derive(Debug, Clone)]
pub struct CompiledEscalation {
    pub name: String,
    pub due: Due,
    pub action: EscalationAction,
}

/// What an escalation does, checked.
#[derive(Debug, Clone)]
pub enum EscalationAction {
    /// Finish the waiting item with these values (type-checked against the
    /// fields), as a callback would.
    Finish(Vec<(String, Value)>),
    /// Cancel the waiting item and go to this activity (an index of
    /// [`CompiledProcess::activities`]).
    GoTo(usize),
    /// Do the waiting event's work again, `times` times at most.
    Repeat { times: u32 },
    /// Send this request and keep waiting.
    Notify(HttpRequestSpec),
    /// Put the instance in Error.
    Fail,
}

#[derive(Debug, Clone)]
pub struct CompiledActivity {
    pub id: String,
    pub name: String,
    pub preceding_rule: PrecedingRule,
    pub events: Vec<CompiledEvent>,
    /// Line indices leaving this activity, in the order their rules run.
    pub outgoing: Vec<usize>,
    /// Line indices arriving here; an `All` join waits for each of them.
    pub incoming: Vec<usize>,
    /// In the order they are written.
    pub escalations: Vec<CompiledEscalation>,
}

#[derive(Debug, Clone)]
pub struct CompiledLine {
    pub from: usize,
    pub to: usize,
    pub label: String,
    /// `None` for an empty rule, which is always true.
    pub rule: Option<CompiledScript>,
    pub rule_text: String,
}

#[derive(Debug, Clone)]
pub struct CompiledProcess {
    pub draft: ProcessDraft,
    pub field_types: BTreeMap<String, FieldType>,
    pub defaults: BTreeMap<String, Value>,
    pub activities: Vec<CompiledActivity>,
    pub lines: Vec<CompiledLine>,
    pub start: usize,
    pub graph: ProcessGraph,
    /// How long each script or rule may run; `None`: the script host's default.
    pub script_time_budget: Option<Duration>,
    /// Where days are counted and local date-times read.
    pub time_zone: ProcessZone,
    pub warnings: Vec<Problem>,
    activity_by_id: HashMap<String, usize>,
}

impl CompiledProcess {
    /// Compiles a draft that validates without errors; otherwise returns every problem.
    pub fn compile(draft: &ProcessDraft, host: &ScriptHost) -> Result<CompiledProcess, Vec<Problem>> {
        CompiledProcess::compile_validated(draft, host, validate(draft, host))
    }

    /// Compiles a version read back from the store. The checks that only
    /// keep new versions out (the endless loop with nothing to wait at, see
    /// [`validate_deployed`], and [`crate::model::validate::new_version_problems`]:
    /// sizes, positions, duplicate lines) do not apply: a version deployed
    /// before them keeps running, and so do its instances.
    pub fn compile_deployed(draft: &ProcessDraft, host: &ScriptHost) -> Result<CompiledProcess, Vec<Problem>> {
        let mut problems = validate_deployed(draft, host);
        let for_new_versions = crate::model::validate::new_version_problems(draft);
        // A set: an old version may hold thousands of duplicate lines.
        let for_new_versions: BTreeSet<(&Location, Severity, &str)> =
            for_new_versions.iter().map(|p| (&p.location, p.severity, p.message.as_str())).collect();
        problems.retain(|p| !for_new_versions.contains(&(&p.location, p.severity, p.message.as_str())));
        CompiledProcess::compile_validated(draft, host, problems)
    }

    pub(crate) fn compile_validated(
        draft: &ProcessDraft,
        host: &ScriptHost,
        problems: Vec<Problem>,
    ) -> Result<CompiledProcess, Vec<Problem>> {
        if problems.iter().any(|p| p.severity == Severity::Error) {
            return Err(problems);
        }
        // From here on validation has proven every lookup below succeeds; a failure
        // would be a validator bug, reported as a problem rather than a panic.
        let internal = |message: String| {
            vec![Problem {
                severity: Severity::Error,
                location: crate::model::validate::Location::Process,
                message: format!("internal: {message}"),
            }]
        };
        let time_zone = ProcessZone::of(draft.time_zone.as_deref()).map_err(|e| internal(e.to_string()))?;
        let mut field_types = BTreeMap::new();
        let mut defaults = BTreeMap::new();
        for field in &draft.fields {
            let field_type = FieldType::from_name(&field.field_type)
                .ok_or_else(|| internal(format!("field type {}", field.field_type)))?;
            let default = match &field.default {
                Some(json) => Value::from_json(field_type, json, &time_zone).map_err(|e| internal(e.to_string()))?,
                None => field_type.zero_value(),
            };
            field_types.insert(field.name.clone(), field_type);
            defaults.insert(field.name.clone(), default);
        }
        let field_names: Vec<&str> = field_types.keys().map(String::as_str).collect();
        let graph = ProcessGraph::new(draft);
        let activity_by_id = activity_indices(draft);
        let mut activities = Vec::with_capacity(draft.activities.len());
        for (index, activity) in draft.activities.iter().enumerate() {
            let mut events = Vec::with_capacity(activity.events.len());
            for event in &activity.events {
                match event {
                    EventDraft::ServerEvent(server_event) => events.push(CompiledEvent {
                        name: server_event.name.clone(),
                        synchronous: server_event.synchronous,
                        action: EventAction::Script(
                            host.compile_script(&server_event.script, &field_names)
                                .map_err(|e| internal(e.to_string()))?,
                        ),
                    }),
                    EventDraft::HttpRequest(request) => {
                        let context = sample_context(&activity.name, &request.name, request.synchronous);
                        let sample = TemplateValues { context: &context, data: &defaults };
                        let spec = HttpRequestSpec::check(request.parts(), &field_names, &sample)
                            .map_err(|messages| internal(messages.join("; ")))?;
                        events.push(CompiledEvent {
                            name: request.name.clone(),
                            synchronous: request.synchronous,
                            action: EventAction::Http(spec),
                        });
                    }
                    EventDraft::Mail(mail) => events.push(CompiledEvent {
                        name: mail.name.clone(),
                        synchronous: true,
                        action: EventAction::Mail(
                            MailSpec::check(mail, &field_names).map_err(|messages| internal(messages.join("; ")))?,
                        ),
                    }),
                    EventDraft::Timer(timer) => events.push(CompiledEvent {
                        name: timer.name.clone(),
                        synchronous: false,
                        action: EventAction::Wait(
                            compile_due(&timer.after, &timer.at_field).map_err(|e| internal(e.to_string()))?,
                        ),
                    }),
                    EventDraft::Ipc(ipc) => {
                        let spec =
                            IpcSpec::check(ipc, &field_types).map_err(|messages| internal(messages.join("; ")))?;
                        events.push(CompiledEvent {
                            name: ipc.name.clone(),
                            synchronous: !spec.waits,
                            action: EventAction::Ipc(spec),
                        });
                    }
                }
            }
            let mut escalations = Vec::with_capacity(activity.escalations.len());
            for escalation in &activity.escalations {
                let compiled = EscalationContext {
                    activity_name: &activity.name,
                    field_types: &field_types,
                    field_names: &field_names,
                    defaults: &defaults,
                    activity_by_id: &activity_by_id,
                    zone: &time_zone,
                }
                .compile(escalation)
                .map_err(internal)?;
                escalations.push(compiled);
            }
            activities.push(CompiledActivity {
                id: activity.id.clone(),
                name: activity.name.clone(),
                preceding_rule: activity.preceding_rule,
                events,
                outgoing: graph.outgoing_lines(index),
                incoming: graph.incoming_lines(index),
                escalations,
            });
        }
        let mut lines = Vec::with_capacity(draft.lines.len());
        for line in &draft.lines {
            let endpoint = |id: &str| activity_by_id.get(id).copied().ok_or_else(|| internal(format!("line end {id}")));
            let rule = if line.rule.trim().is_empty() {
                None
            } else {
                Some(host.compile_rule(&line.rule, &field_names).map_err(|e| internal(e.to_string()))?)
            };
            lines.push(CompiledLine {
                from: endpoint(&line.from)?,
                to: endpoint(&line.to)?,
                label: line.label.clone(),
                rule,
                rule_text: line.rule.clone(),
            });
        }
        let start = draft.activities.iter().position(|a| a.start).ok_or_else(|| internal("no start".to_owned()))?;
        Ok(CompiledProcess {
            draft: draft.clone(),
            field_types,
            defaults,
            activities,
            lines,
            start,
            graph,
            script_time_budget: draft.script_time_limit_ms.map(Duration::from_millis),
            time_zone,
            warnings: problems,
            activity_by_id,
        })
    }

    pub fn name(&self) -> &str {
        &self.draft.name
    }

    /// When `due` falls for a wait that started at `started` (ms UTC),
    /// given the instance's data: a duration is added in the process's time
    /// zone, a date field means its midnight there. Err when the field is
    /// unset or the sum is past what can be held.
    pub fn due_at(&self, due: &Due, started: Millis, data: &BTreeMap<String, Value>) -> Result<Millis, DueError> {
        due.at(started, data, &self.time_zone)
    }

    /// Finds an activity by id or, failing that, by name (what operators type).
    pub fn find_activity(&self, id_or_name: &str) -> Option<usize> {
        self.activity_by_id
            .get(id_or_name)
            .copied()
            .or_else(|| self.activities.iter().position(|a| a.name == id_or_name))
    }
}

/// A due time as written (exactly one of `after` and `at_field`), checked
/// by validation before.
pub(crate) fn compile_due(after: &str, at_field: &str) -> Result<Due, String> {
    match (after.trim().is_empty(), at_field.trim().is_empty()) {
        (false, true) => Delay::parse(after).map(Due::After).map_err(|e| e.to_string()),
        (true, false) => Ok(Due::AtField(at_field.trim().to_owned())),
        _ => Err("write either `after` or `at_field`".to_owned()),
    }
}

/// What compiling an escalation needs of its process.
struct EscalationContext<'a> {
    activity_name: &'a str,
    field_types: &'a BTreeMap<String, FieldType>,
    field_names: &'a [&'a str],
    defaults: &'a BTreeMap<String, Value>,
    activity_by_id: &'a HashMap<String, usize>,
    zone: &'a ProcessZone,
}

impl EscalationContext<'_> {
    fn compile(&self, escalation: &EscalationDraft) -> Result<CompiledEscalation, String> {
        let due = compile_due(&escalation.after, &escalation.at_field)?;
        let action = match &escalation.action {
            EscalationActionDraft::Finish { set } => {
                let mut values = Vec::with_capacity(set.len());
                for (field, json) in set {
                    let field_type = self.field_types.get(field).ok_or_else(|| format!("no field {field}"))?;
                    let value = Value::from_json(*field_type, json, self.zone).map_err(|e| e.to_string())?;
                    values.push((field.clone(), value));
                }
                EscalationAction::Finish(values)
            }
            EscalationActionDraft::GoTo { activity } => EscalationAction::GoTo(
                self.activity_by_id.get(activity.as_str()).copied().ok_or_else(|| format!("no activity {activity}"))?,
            ),
            EscalationActionDraft::Repeat { times: Some(times) } if *times > 0 => {
                EscalationAction::Repeat { times: *times }
            }
            EscalationActionDraft::Repeat { .. } => return Err("repeat without a limit".to_owned()),
            EscalationActionDraft::Notify(notify) => {
                let context = sample_context(self.activity_name, &escalation.name, false);
                let sample = TemplateValues { context: &context, data: self.defaults };
                EscalationAction::Notify(
                    HttpRequestSpec::check(notify.parts(), self.field_names, &sample)
                        .map_err(|messages| messages.join("; "))?,
                )
            }
            EscalationActionDraft::Fail => EscalationAction::Fail,
        };
        Ok(CompiledEscalation { name: escalation.name.clone(), due, action })
    }
}
