//! Each flow node that does work or marks a place as an activity with its
//! events, and timer boundary events as escalations.

use std::collections::{HashMap, HashSet};

use super::*;

impl<'a> Builder<'a> {
    pub(super) fn activity(&mut self, index: usize, all: &HashSet<usize>) -> Option<ActivityDraft> {
        let node = &self.nodes[index];
        if node.role != Role::Activity {
            return None;
        }
        let element = node.element;
        let raw_id = element.attr("id").unwrap_or_default().to_owned();
        let id = match element.attr_ns(FLOWDESK_NS, "id") {
            Some(ours) => ours.to_owned(),
            None => node.id.clone(),
        };
        let name = if self.ours { node.name().to_owned() } else { node.name().trim().to_owned() };
        let nested = node.nested;
        let mut activity = ActivityDraft {
            id,
            name: name.clone(),
            position: Position::default(),
            start: element.name == "startEvent" && !node.nested,
            preceding_rule: if all.contains(&index) { PrecedingRule::All } else { PrecedingRule::Any },
            events: Vec::new(),
            escalations: Vec::new(),
        };
        self.report_extensions(element, &raw_id, &name);
        if element.child(BPMN_NS, "documentation").is_some_and(|d| !d.text.trim().is_empty()) {
            self.report.add(
                EntryKind::Ignored,
                "documentation",
                &raw_id,
                &name,
                "flowdesk activities have no description; the process's documentation is its description",
            );
        }
        if let Some(ours) = extension(element, "activity") {
            activity.start |= ours.attr("start") == Some("true");
            activity.events = ours_events(element, ours);
            return Some(activity);
        }
        let event_name = if name.is_empty() { words(&element.name) } else { name.clone() };
        let kind = words(&element.name);
        let definition = element.children.iter().find(|c| c.ns == BPMN_NS && c.name.ends_with("EventDefinition"));
        let definition_kind = definition.map(|d| d.name.trim_end_matches("EventDefinition").to_owned());
        let server = |synchronous: bool, script: String| {
            EventDraft::ServerEvent(ServerEventDraft { name: event_name.clone(), synchronous, script })
        };
        match element.name.as_str() {
            "scriptTask" => {
                let format = element.attr("scriptFormat").unwrap_or_default();
                let script = element.child(BPMN_NS, "script").map(|s| s.text.clone()).unwrap_or_default();
                if format.eq_ignore_ascii_case("rhai") {
                    activity.events.push(server(true, script));
                } else {
                    let language = if format.is_empty() { "unnamed language" } else { format };
                    if !script.trim().is_empty() {
                        self.report.add(
                            EntryKind::Problem,
                            kind.clone(),
                            &raw_id,
                            &name,
                            format!("its {language} script is kept as a comment: rewrite it in Rhai"),
                        );
                    }
                    activity.events.push(server(true, commented(language, &script)));
                }
            }
            "receiveTask" => activity.events.push(server(false, String::new())),
            "serviceTask" if element.attr_ns(CAMUNDA_NS, "type") == Some("external") => {
                self.report.add(
                    EntryKind::Changed,
                    kind.clone(),
                    &raw_id,
                    &name,
                    "an external task became an asynchronous server event: the worker finishes its server item by \
                     serial",
                );
                activity.events.push(server(false, String::new()));
            }
            "userTask" | "manualTask" => {
                self.report.add(
                    EntryKind::Changed,
                    kind.clone(),
                    &raw_id,
                    &name,
                    "became a synchronous server event, which completes at once: make it asynchronous to wait for \
                     a person's callback",
                );
                activity.events.push(server(true, String::new()));
            }
            n if is_task(n) => activity.events.push(server(true, String::new())),
            // A call of a process this file lacks (one it holds was
            // flattened, one calling itself is a problem, `mod.rs`).
            "callActivity" => {
                let called = element.attr("calledElement").unwrap_or_default();
                let held = self.root.children_named(BPMN_NS, "process").any(|p| p.attr("id") == Some(called));
                if !called.is_empty() && !held {
                    let mut ipc = crate::model::ipc::IpcDraft::new(&event_name);
                    ipc.process = called.to_owned();
                    activity.events.push(EventDraft::Ipc(ipc));
                }
            }
            "startEvent" | "endEvent" => {
                if let Some(kind_of_definition) = definition_kind {
                    let why = if element.name == "startEvent" && !nested {
                        "kept as the start: flowdesk instances are started by `flowdesk start`, the window or the API"
                    } else {
                        "it ends its branch only, as every end in flowdesk does"
                    };
                    self.report.add(EntryKind::Changed, format!("{kind_of_definition} {kind}"), &raw_id, &name, why);
                }
            }
            "intermediateThrowEvent" => match definition_kind.as_deref() {
                None | Some("link") => {}
                Some("message") => activity.events.push(server(true, String::new())),
                Some(other) => self.report.add(
                    EntryKind::Changed,
                    format!("{other} {kind}"),
                    &raw_id,
                    &name,
                    "became an activity without events: flowdesk throws no such events",
                ),
            },
            "intermediateCatchEvent" => match (definition_kind.as_deref(), definition) {
                (Some("timer"), Some(timer)) => {
                    let (after, at_field) = self.due(timer, &raw_id, &name, kind.as_str());
                    activity.events.push(EventDraft::Timer(TimerDraft { name: event_name.clone(), after, at_field }));
                }
                (Some("message"), _) => activity.events.push(server(false, String::new())),
                (Some("link"), _) | (None, _) => {}
                (Some(other), _) => {
                    self.report.add(
                        EntryKind::Changed,
                        format!("{other} {kind}"),
                        &raw_id,
                        &name,
                        "became an asynchronous server event: it waits for a callback by serial",
                    );
                    activity.events.push(server(false, String::new()));
                }
            },
            _ => {}
        }
        for child in &element.children {
            if child.ns != BPMN_NS {
                continue;
            }
            let looped = match child.name.as_str() {
                "multiInstanceLoopCharacteristics" => "a multi-instance activity",
                "standardLoopCharacteristics" => "a loop activity",
                _ => continue,
            };
            self.report.add(
                EntryKind::Changed,
                kind.clone(),
                &raw_id,
                &name,
                format!("{looped} runs once: draw the loop with a line and a rule"),
            );
        }
        Some(activity)
    }

    /// A timer's due: a duration, or the date a field holds (`${field}`).
    pub(super) fn due(&mut self, timer: &Element, id: &str, name: &str, kind: &str) -> (String, String) {
        if let Some(duration) = timer.child(BPMN_NS, "timeDuration") {
            let text = duration.text.trim();
            if crate::model::time::Delay::parse(text).is_err() {
                self.report.add(
                    EntryKind::Problem,
                    kind,
                    id,
                    name,
                    format!("its duration `{text}` is not one flowdesk reads: write it as 2h or PT2H"),
                );
            }
            return (text.to_owned(), String::new());
        }
        if let Some(date) = timer.child(BPMN_NS, "timeDate") {
            let text = date.text.trim();
            let field = ["${", "#{"]
                .iter()
                .find_map(|open| text.strip_prefix(open).and_then(|t| t.strip_suffix('}')))
                .or_else(|| text.strip_prefix('='))
                .map(str::trim)
                .filter(|f| f.chars().all(|c| c.is_alphanumeric() || c == '_') && !f.is_empty());
            if let Some(field) = field {
                let why =
                    format!("became the datetime field `{field}`, the date the timer of `{name}` ({id}) waits for");
                self.add_field(field, FieldType::DateTime, "variable", why);
                return (String::new(), field.to_owned());
            }
            self.report.add(
                EntryKind::Problem,
                kind,
                id,
                name,
                format!(
                    "it waits until `{text}`: flowdesk waits until the date a field holds; add a datetime field and \
                     choose it"
                ),
            );
            return (String::new(), String::new());
        }
        let why = if timer.child(BPMN_NS, "timeCycle").is_some() {
            "a repeating timer: flowdesk's timers fire once; choose a duration"
        } else {
            "the timer says neither a duration nor a date"
        };
        self.report.add(EntryKind::Problem, kind, id, name, why);
        (String::new(), String::new())
    }

    /// Names another tool's extension elements, which flowdesk does not run.
    pub(super) fn report_extensions(&mut self, element: &Element, id: &str, name: &str) {
        let Some(extensions) = element.child(BPMN_NS, "extensionElements") else { return };
        for child in &extensions.children {
            if child.ns == FLOWDESK_NS || (child.ns == CAMUNDA_NS && child.name == "formData") {
                continue;
            }
            self.report.add(
                EntryKind::Ignored,
                qualified(child),
                id,
                name,
                format!("another engine's setting of {}; flowdesk does not run it", words(&element.name)),
            );
        }
    }

    pub(super) fn escalations(
        &mut self,
        drafts: &mut [ActivityDraft],
        activity_at: &HashMap<usize, usize>,
        lines: &HashMap<usize, Vec<LineDraft>>,
    ) {
        for index in 0..self.nodes.len() {
            if self.nodes[index].role != Role::Boundary {
                continue;
            }
            let element = self.nodes[index].element;
            let (id, name) = (element.attr("id").unwrap_or_default().to_owned(), self.nodes[index].name().to_owned());
            let attached = match self.raced.get(&index) {
                Some(&wait) => self.nodes[wait].id.clone(),
                None => format!("{}{}", self.nodes[index].prefix, element.attr("attachedToRef").unwrap_or_default()),
            };
            let Some(&activity) = self.index.get(&attached).and_then(|n| activity_at.get(n)) else {
                self.report.add(
                    EntryKind::Ignored,
                    "boundary event",
                    &id,
                    &name,
                    format!("it sits on `{attached}`, which is not an activity here (a flattened sub-process?)"),
                );
                continue;
            };
            let empty = Vec::new();
            let targets = lines.get(&index).unwrap_or(&empty);
            let go_to = targets.first().map(|line| line.to.clone());
            if let Some(ours) = extension(element, "escalation") {
                let get = |name| ours.attr(name).unwrap_or_default().to_owned();
                let action = ours_action(ours, go_to);
                drafts[activity].escalations.push(EscalationDraft {
                    name: name.clone(),
                    after: get("after"),
                    at_field: get("atField"),
                    action,
                });
                continue;
            }
            let Some(timer) = element.child(BPMN_NS, "timerEventDefinition") else {
                let kind = element
                    .children
                    .iter()
                    .find(|c| c.name.ends_with("EventDefinition"))
                    .map(|c| c.name.trim_end_matches("EventDefinition").to_owned())
                    .unwrap_or_else(|| "plain".to_owned());
                self.report.add(
                    EntryKind::Ignored,
                    format!("{kind} boundary event"),
                    &id,
                    &name,
                    "flowdesk's escalations are timers; an error puts the instance in Error for an operator",
                );
                continue;
            };
            let interrupting = element.attr("cancelActivity") != Some("false");
            if !interrupting {
                self.report.add(
                    EntryKind::Ignored,
                    "non-interrupting timer boundary event",
                    &id,
                    &name,
                    "flowdesk's escalations cannot start a branch while the wait goes on; a notify escalation can \
                     send a request",
                );
                continue;
            }
            let (after, at_field) = self.due(timer, &id, &name, "timer boundary event");
            let action = match (go_to, targets.len()) {
                (Some(activity), 1) if targets[0].rule.is_empty() => EscalationActionDraft::GoTo { activity },
                (Some(activity), _) => {
                    self.report.add(
                        EntryKind::Problem,
                        "timer boundary event",
                        &id,
                        &name,
                        "its flow splits or has a condition: the escalation goes to the first activity only",
                    );
                    EscalationActionDraft::GoTo { activity }
                }
                (None, _) => {
                    self.report.add(
                        EntryKind::Changed,
                        "timer boundary event",
                        &id,
                        &name,
                        "it leads nowhere: the escalation puts the instance in Error (fail)",
                    );
                    EscalationActionDraft::Fail
                }
            };
            drafts[activity].escalations.push(EscalationDraft { name, after, at_field, action });
        }
    }
}

/// A script in another language, kept as a Rhai comment under a note.
pub(super) fn commented(language: &str, script: &str) -> String {
    if script.trim().is_empty() {
        return String::new();
    }
    let mut out = format!("// A {language} script, imported from BPMN: rewrite it in Rhai.\n");
    for line in script.trim_matches('\n').lines() {
        out.push_str("// ");
        out.push_str(line);
        out.push('\n');
    }
    out
}
