//! A checked, compiled process definition: what the engine runs.
//!
//! Built once per deployed version. Scripts and rules are compiled here and never
//! again for a run; lookups the engine needs on every step (an activity's lines in
//! order, a join's incoming lines, field types) are computed once as well.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use crate::model::definition::{EventDraft, PrecedingRule, ProcessDraft};
use crate::model::graph::ProcessGraph;
use crate::model::http::{HttpRequestSpec, sample_context};
use crate::model::script::{CompiledScript, ScriptHost};
use crate::model::template::TemplateValues;
use crate::model::validate::{Location, Problem, Severity, activity_indices, validate, validate_deployed};
use crate::model::value::{FieldType, Value};

#[derive(Debug, Clone)]
pub struct CompiledEvent {
    pub name: String,
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

    fn compile_validated(
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
        let mut field_types = BTreeMap::new();
        let mut defaults = BTreeMap::new();
        for field in &draft.fields {
            let field_type = FieldType::from_name(&field.field_type)
                .ok_or_else(|| internal(format!("field type {}", field.field_type)))?;
            let default = match &field.default {
                Some(json) => Value::from_json(field_type, json).map_err(|e| internal(e.to_string()))?,
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
                        let spec = HttpRequestSpec::check(request, &field_names, &sample)
                            .map_err(|messages| internal(messages.join("; ")))?;
                        events.push(CompiledEvent {
                            name: request.name.clone(),
                            synchronous: request.synchronous,
                            action: EventAction::Http(spec),
                        });
                    }
                }
            }
            activities.push(CompiledActivity {
                id: activity.id.clone(),
                name: activity.name.clone(),
                preceding_rule: activity.preceding_rule,
                events,
                outgoing: graph.outgoing_lines(index),
                incoming: graph.incoming_lines(index),
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
            warnings: problems,
            activity_by_id,
        })
    }

    pub fn name(&self) -> &str {
        &self.draft.name
    }

    /// Finds an activity by id or, failing that, by name (what operators type).
    pub fn find_activity(&self, id_or_name: &str) -> Option<usize> {
        self.activity_by_id
            .get(id_or_name)
            .copied()
            .or_else(|| self.activities.iter().position(|a| a.name == id_or_name))
    }
}
