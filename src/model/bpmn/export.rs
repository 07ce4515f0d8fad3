//! A draft as BPMN 2.0 with its diagram (BPMNDI).
//!
//! Each activity is one BPMN element, drawn where flowdesk draws its box,
//! of the kind that tells another tool most about it: a script task for a
//! synchronous server event (its script in `bpmn:script`, format `rhai`), a
//! receive task for an asynchronous one that only waits, a service task
//! for one with a script or an HTTP request, a timer catch event for a
//! wait, start and end events for the activities without events at the
//! ends, a plain task for several events. Each line is a sequence flow,
//! its rule a `rhai` condition; an activity whose preceding rule is `All`
//! gets a parallel gateway in front, which is what BPMN means by it; each
//! escalation is a timer boundary event. What BPMN cannot say is written
//! in flowdesk's extension namespace (see the module above), and the
//! import reads it back, so that export then import gives an equal draft.

use std::collections::{HashMap, HashSet};

use crate::model::bpmn::geometry::{ACTIVITY_WIDTH, activity_height};
use crate::model::bpmn::xml::{XmlWriter, representable};
use crate::model::bpmn::{BPMN_NS, BPMNDI_NS, DC_NS, DI_NS, FLOWDESK_NS, XSI_NS};
use crate::model::definition::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, HeaderDraft, PrecedingRule, ProcessDraft,
};
use crate::model::rights::Right;

/// A draft that cannot be written as BPMN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    #[error("the process holds the control character U+{code:04X}, which an XML file cannot hold: remove it first")]
    ControlCharacter { code: u32 },
}

/// The BPMN element an activity is written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    StartEvent,
    EndEvent,
    /// An intermediate throw event with no definition: a milestone that
    /// passes straight on, as an activity without events does.
    ThrowEvent,
    TimerCatchEvent,
    ScriptTask,
    ReceiveTask,
    ServiceTask,
    /// One mail event: BPMN's task that sends a message.
    SendTask,
    /// An activity whose one event is a sub-process (IPC) event.
    CallActivity,
    Task,
}

impl Shape {
    pub(super) fn element(self) -> &'static str {
        match self {
            Shape::StartEvent => "startEvent",
            Shape::EndEvent => "endEvent",
            Shape::ThrowEvent => "intermediateThrowEvent",
            Shape::TimerCatchEvent => "intermediateCatchEvent",
            Shape::ScriptTask => "scriptTask",
            Shape::ReceiveTask => "receiveTask",
            Shape::ServiceTask => "serviceTask",
            Shape::SendTask => "sendTask",
            Shape::CallActivity => "callActivity",
            Shape::Task => "task",
        }
    }

    fn is_event(self) -> bool {
        matches!(self, Shape::StartEvent | Shape::EndEvent | Shape::ThrowEvent | Shape::TimerCatchEvent)
    }
}

fn shape_of(activity: &ActivityDraft, has_incoming: bool, has_outgoing: bool) -> Shape {
    let shape = match activity.events.as_slice() {
        [] if activity.start && !has_incoming => Shape::StartEvent,
        [] if !activity.start && !has_outgoing => Shape::EndEvent,
        [] => Shape::ThrowEvent,
        [EventDraft::ServerEvent(e)] if e.synchronous => Shape::ScriptTask,
        [EventDraft::ServerEvent(e)] if e.script.is_empty() => Shape::ReceiveTask,
        [EventDraft::ServerEvent(_) | EventDraft::HttpRequest(_)] => Shape::ServiceTask,
        [EventDraft::Timer(_)] => Shape::TimerCatchEvent,
        [EventDraft::Mail(_)] => Shape::SendTask,
        [EventDraft::Ipc(_)] => Shape::CallActivity,
        _ => Shape::Task,
    };
    // A boundary event can only sit on a task.
    if shape.is_event() && !activity.escalations.is_empty() { Shape::Task } else { shape }
}

/// Whether `text` can be an XML id (an NCName): a letter or `_`, then
/// letters, digits, `_`, `-` and `.`.
pub(super) fn is_xml_id(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Hands out document-wide unique ids.
#[derive(Default)]
struct Ids(HashSet<String>);

impl Ids {
    /// `wanted` if it is a free XML id, else the closest free one.
    fn take(&mut self, wanted: &str) -> String {
        let mut base: String =
            wanted.chars().map(|c| if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '_' }).collect();
        if !base.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_') {
            base.insert(0, '_');
        }
        let mut id = base.clone();
        let mut n = 2;
        while self.0.contains(&id) {
            id = format!("{base}_{n}");
            n += 1;
        }
        self.0.insert(id.clone());
        id
    }
}

/// A rectangle in canvas units: left, top, width, height.
#[derive(Debug, Clone, Copy)]
struct Rect {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

impl Rect {
    fn center(self) -> (f64, f64) {
        (self.x + self.w / 2.0, self.y + self.h / 2.0)
    }
}

/// An event's circle and a gateway's diamond, in BPMN's usual sizes.
const EVENT_SIZE: f64 = 36.0;
const GATEWAY_SIZE: f64 = 50.0;

/// Where an activity's element is drawn. Positions are `f32`; the sums are
/// made in `f64`, where they are exact, so that the import can take them
/// apart again to the very same `f32`.
pub(super) fn element_bounds(activity: &ActivityDraft, shape_is_event: bool) -> (f64, f64, f64, f64) {
    let (x, y) = (f64::from(activity.position.x), f64::from(activity.position.y));
    let h = f64::from(activity_height(activity.events.len()));
    if shape_is_event {
        let w = f64::from(ACTIVITY_WIDTH);
        (x + (w - EVENT_SIZE) / 2.0, y + (h - EVENT_SIZE) / 2.0, EVENT_SIZE, EVENT_SIZE)
    } else {
        (x, y, f64::from(ACTIVITY_WIDTH), h)
    }
}

/// The draft as a BPMN 2.0 file with its diagram.
pub fn export(draft: &ProcessDraft) -> Result<String, ExportError> {
    export_with_rights(draft, &[])
}

/// [`export()`] of a deployed process with the rights users hold on it
/// (user, right), which live in the database rather than in the draft: each
/// is a `flowdesk:right` in the process's extension, which the import reads
/// into [`super::ImportedProcess::rights`].
pub fn export_with_rights(draft: &ProcessDraft, rights: &[(String, Right)]) -> Result<String, ExportError> {
    let mut writer = Writer::new(draft);
    writer.rights = rights;
    let written = writer.write();
    match written.chars().find(|c| !representable(&c.to_string())) {
        Some(c) => Err(ExportError::ControlCharacter { code: u32::from(c) }),
        None => Ok(written),
    }
}

struct Node {
    id: String,
    shape: Shape,
    bounds: Rect,
}

struct Flow {
    id: String,
    source: String,
    target: String,
    name: String,
    rule: String,
    from: Rect,
    to: Rect,
}

struct Writer<'a> {
    draft: &'a ProcessDraft,
    ids: Ids,
    process_id: String,
    /// By activity index.
    nodes: Vec<Node>,
    /// The parallel gateway in front of an `All` activity, by activity index.
    joins: HashMap<usize, (String, Rect)>,
    /// Boundary events: (activity index, escalation index, id, bounds).
    boundaries: Vec<(usize, usize, String, Rect)>,
    flows: Vec<Flow>,
    /// Lines that name an activity the draft does not have: kept in the
    /// extension, since a flow must join two elements.
    dangling: Vec<usize>,
    /// Flows into and out of each element, by element id.
    incoming: HashMap<String, Vec<String>>,
    outgoing: HashMap<String, Vec<String>>,
    /// Rights on the process, by user.
    rights: &'a [(String, Right)],
}

impl<'a> Writer<'a> {
    fn new(draft: &'a ProcessDraft) -> Writer<'a> {
        let mut ids = Ids::default();
        // The activities' own ids first: they are what people see.
        let mut element_ids = Vec::new();
        for activity in &draft.activities {
            element_ids.push(if is_xml_id(&activity.id) && !ids.0.contains(&activity.id) {
                ids.0.insert(activity.id.clone());
                activity.id.clone()
            } else {
                String::new()
            });
        }
        for (activity, id) in draft.activities.iter().zip(element_ids.iter_mut()) {
            if id.is_empty() {
                *id = ids.take(&format!("Activity_{}", activity.id));
            }
        }
        let process_id = ids.take(&format!("Process_{}", draft.name));
        let index_of: HashMap<&str, usize> =
            draft.activities.iter().enumerate().rev().map(|(i, a)| (a.id.as_str(), i)).collect();
        let mut has_incoming = vec![false; draft.activities.len()];
        let mut has_outgoing = vec![false; draft.activities.len()];
        for line in &draft.lines {
            if let (Some(&from), Some(&to)) = (index_of.get(line.from.as_str()), index_of.get(line.to.as_str())) {
                has_outgoing[from] = true;
                has_incoming[to] = true;
            }
        }
        let nodes: Vec<Node> = draft
            .activities
            .iter()
            .enumerate()
            .map(|(i, activity)| {
                let shape = shape_of(activity, has_incoming[i], has_outgoing[i]);
                let (x, y, w, h) = element_bounds(activity, shape.is_event());
                Node { id: element_ids[i].clone(), shape, bounds: Rect { x, y, w, h } }
            })
            .collect();
        let mut joins = HashMap::new();
        for (i, activity) in draft.activities.iter().enumerate() {
            if activity.preceding_rule == PrecedingRule::All {
                let id = ids.take(&format!("{}_join", nodes[i].id));
                let (cx, cy) = nodes[i].bounds.center();
                let left = nodes[i].bounds.x.min(cx - EVENT_SIZE / 2.0);
                let bounds = Rect {
                    x: left - GATEWAY_SIZE - 40.0,
                    y: cy - GATEWAY_SIZE / 2.0,
                    w: GATEWAY_SIZE,
                    h: GATEWAY_SIZE,
                };
                joins.insert(i, (id, bounds));
            }
        }
        let mut boundaries = Vec::new();
        for (i, activity) in draft.activities.iter().enumerate() {
            let box_ = nodes[i].bounds;
            for e in 0..activity.escalations.len() {
                let id = ids.take(&format!("{}_escalation_{}", nodes[i].id, e + 1));
                let x = box_.x + box_.w - 20.0 - EVENT_SIZE - e as f64 * (EVENT_SIZE + 10.0);
                let bounds = Rect { x, y: box_.y + box_.h - EVENT_SIZE / 2.0, w: EVENT_SIZE, h: EVENT_SIZE };
                boundaries.push((i, e, id, bounds));
            }
        }
        let mut writer = Writer {
            draft,
            ids,
            process_id,
            nodes,
            joins,
            boundaries,
            flows: Vec::new(),
            dangling: Vec::new(),
            incoming: HashMap::new(),
            outgoing: HashMap::new(),
            rights: &[],
        };
        for (index, line) in draft.lines.iter().enumerate() {
            let (Some(&from), Some(&to)) = (index_of.get(line.from.as_str()), index_of.get(line.to.as_str())) else {
                writer.dangling.push(index);
                continue;
            };
            let source = (writer.nodes[from].id.clone(), writer.nodes[from].bounds);
            let target = match writer.joins.get(&to) {
                Some((id, bounds)) => (id.clone(), *bounds),
                None => (writer.nodes[to].id.clone(), writer.nodes[to].bounds),
            };
            writer.add_flow(source, target, &line.label, &line.rule);
        }
        let mut joined: Vec<usize> = writer.joins.keys().copied().collect();
        joined.sort_unstable();
        for to in joined {
            let (id, bounds) = writer.joins[&to].clone();
            let target = (writer.nodes[to].id.clone(), writer.nodes[to].bounds);
            writer.add_flow((id, bounds), target, "", "");
        }
        for (i, e, id, bounds) in writer.boundaries.clone() {
            let target = match &draft.activities[i].escalations[e].action {
                EscalationActionDraft::GoTo { activity } => index_of.get(activity.as_str()).copied(),
                _ => None,
            };
            if let Some(to) = target {
                let target = (writer.nodes[to].id.clone(), writer.nodes[to].bounds);
                writer.add_flow((id, bounds), target, "", "");
            }
        }
        writer
    }

    fn add_flow(&mut self, (source, from): (String, Rect), (target, to): (String, Rect), name: &str, rule: &str) {
        let id = self.ids.take(&format!("Flow_{}_{}", source, target));
        self.outgoing.entry(source.clone()).or_default().push(id.clone());
        self.incoming.entry(target.clone()).or_default().push(id.clone());
        self.flows.push(Flow { id, source, target, name: name.to_owned(), rule: rule.to_owned(), from, to });
    }

    fn write(mut self) -> String {
        let mut xml = XmlWriter::new();
        let definitions_id = self.ids.take("Definitions_flowdesk");
        xml.open(
            "bpmn:definitions",
            &[
                ("xmlns:bpmn", BPMN_NS),
                ("xmlns:bpmndi", BPMNDI_NS),
                ("xmlns:dc", DC_NS),
                ("xmlns:di", DI_NS),
                ("xmlns:xsi", XSI_NS),
                ("xmlns:flowdesk", FLOWDESK_NS),
                ("id", &definitions_id),
                ("targetNamespace", "urn:flowdesk:processes"),
                ("exporter", "flowdesk"),
                ("exporterVersion", env!("CARGO_PKG_VERSION")),
            ],
        );
        self.write_process(&mut xml);
        self.write_diagram(&mut xml);
        xml.close("bpmn:definitions");
        xml.finish()
    }

    fn write_process(&self, xml: &mut XmlWriter) {
        let draft = self.draft;
        xml.open("bpmn:process", &[("id", &self.process_id), ("name", &draft.name), ("isExecutable", "true")]);
        if !draft.description.is_empty() {
            xml.text("bpmn:documentation", &[], &draft.description);
        }
        xml.open("bpmn:extensionElements", &[]);
        let limit = draft.script_time_limit_ms.map(|ms| ms.to_string());
        let mut attributes = Vec::new();
        if let Some(zone) = &draft.time_zone {
            attributes.push(("timeZone", zone.as_str()));
        }
        if let Some(limit) = &limit {
            attributes.push(("scriptTimeLimitMs", limit.as_str()));
        }
        xml.open("flowdesk:process", &attributes);
        for field in &draft.fields {
            let default = field.default.as_ref().map(|d| d.to_string());
            let mut attributes = vec![("name", field.name.as_str()), ("type", field.field_type.as_str())];
            if let Some(default) = &default {
                attributes.push(("default", default.as_str()));
            }
            if field.searchable {
                attributes.push(("searchable", "true"));
            }
            xml.empty("flowdesk:field", &attributes);
        }
        for (user, right) in self.rights {
            xml.empty("flowdesk:right", &[("user", user.as_str()), ("right", right.key())]);
        }
        for &index in &self.dangling {
            let line = &draft.lines[index];
            xml.empty(
                "flowdesk:line",
                &[("from", &line.from), ("to", &line.to), ("label", &line.label), ("rule", &line.rule)],
            );
        }
        xml.close("flowdesk:process");
        xml.close("bpmn:extensionElements");
        for (i, activity) in draft.activities.iter().enumerate() {
            self.write_activity(xml, i, activity);
        }
        for (i, e, id, _) in &self.boundaries {
            self.write_boundary(xml, *i, &draft.activities[*i].escalations[*e], id);
        }
        let mut joined: Vec<(&usize, &(String, Rect))> = self.joins.iter().collect();
        joined.sort_by_key(|(i, _)| **i);
        for (_, (id, _)) in joined {
            xml.open("bpmn:parallelGateway", &[("id", id)]);
            self.write_links(xml, id);
            xml.close("bpmn:parallelGateway");
        }
        for flow in &self.flows {
            let mut attributes = vec![("id", flow.id.as_str())];
            if !flow.name.is_empty() {
                attributes.push(("name", flow.name.as_str()));
            }
            attributes.push(("sourceRef", flow.source.as_str()));
            attributes.push(("targetRef", flow.target.as_str()));
            if flow.rule.is_empty() {
                xml.empty("bpmn:sequenceFlow", &attributes);
            } else {
                xml.open("bpmn:sequenceFlow", &attributes);
                xml.text(
                    "bpmn:conditionExpression",
                    &[("xsi:type", "bpmn:tFormalExpression"), ("language", "rhai")],
                    &flow.rule,
                );
                xml.close("bpmn:sequenceFlow");
            }
        }
        xml.close("bpmn:process");
    }

    fn write_links(&self, xml: &mut XmlWriter, id: &str) {
        for flow in self.incoming.get(id).into_iter().flatten() {
            xml.text("bpmn:incoming", &[], flow);
        }
        for flow in self.outgoing.get(id).into_iter().flatten() {
            xml.text("bpmn:outgoing", &[], flow);
        }
    }

    fn write_activity(&self, xml: &mut XmlWriter, index: usize, activity: &ActivityDraft) {
        let node = &self.nodes[index];
        let element = format!("bpmn:{}", node.shape.element());
        let mut attributes = vec![("id", node.id.as_str()), ("name", activity.name.as_str())];
        if node.id != activity.id {
            attributes.push(("flowdesk:id", activity.id.as_str()));
        }
        if node.shape == Shape::ScriptTask {
            attributes.push(("scriptFormat", "rhai"));
        }
        // BPMN names the called process by its id; a name that cannot be
        // one is in flowdesk's extension only.
        if let (Shape::CallActivity, [EventDraft::Ipc(ipc)]) = (node.shape, activity.events.as_slice())
            && is_xml_id(&ipc.process)
        {
            attributes.push(("calledElement", ipc.process.as_str()));
        }
        xml.open(&element, &attributes);
        let is_task = !node.shape.is_event();
        let start_marker = activity.start && node.shape != Shape::StartEvent;
        if is_task || !activity.events.is_empty() || start_marker {
            xml.open("bpmn:extensionElements", &[]);
            let start = if start_marker { vec![("start", "true")] } else { Vec::new() };
            xml.open("flowdesk:activity", &start);
            for event in &activity.events {
                write_event(xml, event, node.shape == Shape::ScriptTask);
            }
            xml.close("flowdesk:activity");
            xml.close("bpmn:extensionElements");
        }
        self.write_links(xml, &node.id);
        match (node.shape, activity.events.as_slice()) {
            (Shape::ScriptTask, [EventDraft::ServerEvent(event)]) => xml.text("bpmn:script", &[], &event.script),
            (Shape::TimerCatchEvent, [EventDraft::Timer(timer)]) => write_timer(xml, &timer.after, &timer.at_field),
            _ => {}
        }
        xml.close(&element);
    }

    fn write_boundary(&self, xml: &mut XmlWriter, index: usize, escalation: &EscalationDraft, id: &str) {
        let attached = &self.nodes[index].id;
        // The wait goes on after a notice or a repeat; the other actions end it.
        let interrupting =
            !matches!(escalation.action, EscalationActionDraft::Notify(_) | EscalationActionDraft::Repeat { .. });
        let mut attributes = vec![("id", id)];
        if !escalation.name.is_empty() {
            attributes.push(("name", escalation.name.as_str()));
        }
        attributes.push(("cancelActivity", if interrupting { "true" } else { "false" }));
        attributes.push(("attachedToRef", attached.as_str()));
        xml.open("bpmn:boundaryEvent", &attributes);
        xml.open("bpmn:extensionElements", &[]);
        let mut due = Vec::new();
        if !escalation.after.is_empty() {
            due.push(("after", escalation.after.as_str()));
        }
        if !escalation.at_field.is_empty() {
            due.push(("atField", escalation.at_field.as_str()));
        }
        xml.open("flowdesk:escalation", &due);
        let has_flow = self.outgoing.contains_key(id);
        match &escalation.action {
            EscalationActionDraft::Finish { set } => {
                xml.open("flowdesk:finish", &[]);
                for (field, value) in set {
                    xml.empty("flowdesk:set", &[("field", field), ("value", &value.to_string())]);
                }
                xml.close("flowdesk:finish");
            }
            // The flow says where; an activity the draft lacks has no flow.
            EscalationActionDraft::GoTo { .. } if has_flow => xml.empty("flowdesk:goTo", &[]),
            EscalationActionDraft::GoTo { activity } => xml.empty("flowdesk:goTo", &[("activity", activity)]),
            EscalationActionDraft::Repeat { times: Some(times) } => {
                xml.empty("flowdesk:repeat", &[("times", &times.to_string())])
            }
            EscalationActionDraft::Repeat { times: None } => xml.empty("flowdesk:repeat", &[]),
            EscalationActionDraft::Notify(notify) => {
                let timeout = notify.timeout_seconds.to_string();
                xml.open(
                    "flowdesk:notify",
                    &[("method", &notify.method), ("url", &notify.url), ("timeoutSeconds", &timeout)],
                );
                write_request_body(xml, &notify.headers, &notify.body);
                xml.close("flowdesk:notify");
            }
            EscalationActionDraft::Fail => xml.empty("flowdesk:fail", &[]),
        }
        xml.close("flowdesk:escalation");
        xml.close("bpmn:extensionElements");
        self.write_links(xml, id);
        write_timer(xml, &escalation.after, &escalation.at_field);
        xml.close("bpmn:boundaryEvent");
    }

    fn write_diagram(&self, xml: &mut XmlWriter) {
        xml.open("bpmndi:BPMNDiagram", &[("id", &format!("{}_diagram", self.process_id))]);
        xml.open(
            "bpmndi:BPMNPlane",
            &[("id", &format!("{}_plane", self.process_id)), ("bpmnElement", &self.process_id)],
        );
        let shape = |xml: &mut XmlWriter, id: &str, bounds: Rect| {
            xml.open("bpmndi:BPMNShape", &[("id", &format!("{id}_di")), ("bpmnElement", id)]);
            xml.empty(
                "dc:Bounds",
                &[
                    ("x", &number(bounds.x)),
                    ("y", &number(bounds.y)),
                    ("width", &number(bounds.w)),
                    ("height", &number(bounds.h)),
                ],
            );
            xml.close("bpmndi:BPMNShape");
        };
        for node in &self.nodes {
            shape(xml, &node.id, node.bounds);
        }
        for (_, _, id, bounds) in &self.boundaries {
            shape(xml, id, *bounds);
        }
        let mut joined: Vec<(&usize, &(String, Rect))> = self.joins.iter().collect();
        joined.sort_by_key(|(i, _)| **i);
        for (_, (id, bounds)) in joined {
            shape(xml, id, *bounds);
        }
        for flow in &self.flows {
            xml.open("bpmndi:BPMNEdge", &[("id", &format!("{}_di", flow.id)), ("bpmnElement", &flow.id)]);
            for (x, y) in waypoints(flow.from, flow.to) {
                xml.empty("di:waypoint", &[("x", &number(x)), ("y", &number(y))]);
            }
            xml.close("bpmndi:BPMNEdge");
        }
        xml.close("bpmndi:BPMNPlane");
        xml.close("bpmndi:BPMNDiagram");
    }
}

/// A coordinate: exact, and without a fraction where it has none.
fn number(value: f64) -> String {
    format!("{value}")
}

/// An orthogonal route between two boxes, from the middle of the sides that
/// face each other, as BPMN tools draw their own.
fn waypoints(from: Rect, to: Rect) -> Vec<(f64, f64)> {
    let ((fx, fy), (tx, ty)) = (from.center(), to.center());
    let (dx, dy) = (tx - fx, ty - fy);
    if dx.abs() * 0.6 >= dy.abs() {
        let (start_x, end_x) = if dx >= 0.0 { (from.x + from.w, to.x) } else { (from.x, to.x + to.w) };
        if (fy - ty).abs() < 0.5 {
            return vec![(start_x, fy), (end_x, ty)];
        }
        let middle = (start_x + end_x) / 2.0;
        vec![(start_x, fy), (middle, fy), (middle, ty), (end_x, ty)]
    } else {
        let (start_y, end_y) = if dy >= 0.0 { (from.y + from.h, to.y) } else { (from.y, to.y + to.h) };
        if (fx - tx).abs() < 0.5 {
            return vec![(fx, start_y), (tx, end_y)];
        }
        let middle = (start_y + end_y) / 2.0;
        vec![(fx, start_y), (fx, middle), (tx, middle), (tx, end_y)]
    }
}

fn write_event(xml: &mut XmlWriter, event: &EventDraft, script_is_standard: bool) {
    let synchronous = |s: bool| if s { "true" } else { "false" };
    match event {
        EventDraft::ServerEvent(server) => {
            let attributes = [("name", server.name.as_str()), ("synchronous", synchronous(server.synchronous))];
            if script_is_standard || server.script.is_empty() {
                xml.empty("flowdesk:serverEvent", &attributes);
            } else {
                xml.open("flowdesk:serverEvent", &attributes);
                xml.text("flowdesk:script", &[], &server.script);
                xml.close("flowdesk:serverEvent");
            }
        }
        EventDraft::HttpRequest(request) => {
            let timeout = request.timeout_seconds.to_string();
            xml.open(
                "flowdesk:httpRequest",
                &[
                    ("name", &request.name),
                    ("synchronous", synchronous(request.synchronous)),
                    ("method", &request.method),
                    ("url", &request.url),
                    ("timeoutSeconds", &timeout),
                ],
            );
            write_request_body(xml, &request.headers, &request.body);
            xml.close("flowdesk:httpRequest");
        }
        EventDraft::Timer(timer) => {
            let mut attributes = vec![("name", timer.name.as_str())];
            if !timer.after.is_empty() {
                attributes.push(("after", timer.after.as_str()));
            }
            if !timer.at_field.is_empty() {
                attributes.push(("atField", timer.at_field.as_str()));
            }
            xml.empty("flowdesk:timer", &attributes);
        }
        EventDraft::Mail(mail) => {
            let mut attributes = vec![("name", mail.name.as_str()), ("to", mail.to.as_str())];
            // Written only when a file says so, which validation refuses:
            // the identity holds for such a file too.
            if !mail.synchronous {
                attributes.push(("synchronous", "false"));
            }
            for (name, value) in [("cc", &mail.cc), ("subject", &mail.subject)] {
                if !value.is_empty() {
                    attributes.push((name, value.as_str()));
                }
            }
            if mail.body.is_empty() && mail.html.is_empty() {
                xml.empty("flowdesk:mail", &attributes);
            } else {
                xml.open("flowdesk:mail", &attributes);
                if !mail.body.is_empty() {
                    xml.text("flowdesk:body", &[], &mail.body);
                }
                if !mail.html.is_empty() {
                    xml.text("flowdesk:html", &[], &mail.html);
                }
                xml.close("flowdesk:mail");
            }
        }
        EventDraft::Ipc(ipc) => {
            let version = ipc.version.map(|v| v.to_string());
            let mut attributes = vec![
                ("name", ipc.name.as_str()),
                ("synchronous", synchronous(ipc.synchronous)),
                ("process", ipc.process.as_str()),
            ];
            if let Some(version) = &version {
                attributes.push(("version", version));
            }
            if !ipc.folio.is_empty() {
                attributes.push(("folio", ipc.folio.as_str()));
            }
            xml.open("flowdesk:ipc", &attributes);
            for (element, list) in [("flowdesk:input", &ipc.inputs), ("flowdesk:output", &ipc.outputs)] {
                for mapping in list {
                    xml.empty(element, &[("from", &mapping.from), ("to", &mapping.to)]);
                }
            }
            xml.close("flowdesk:ipc");
        }
    }
}

fn write_request_body(xml: &mut XmlWriter, headers: &[HeaderDraft], body: &str) {
    for header in headers {
        xml.empty("flowdesk:header", &[("name", &header.name), ("value", &header.value)]);
    }
    if !body.is_empty() {
        xml.text("flowdesk:body", &[], body);
    }
}

/// The standard timer definition, for other tools: a duration in ISO 8601
/// (flowdesk's `2h` is `PT2H`), or the date a field holds as the expression
/// Camunda writes (`${reply_by}`).
fn write_timer(xml: &mut XmlWriter, after: &str, at_field: &str) {
    xml.open("bpmn:timerEventDefinition", &[]);
    let formal = [("xsi:type", "bpmn:tFormalExpression")];
    if !after.is_empty() || at_field.is_empty() {
        let iso = after.trim().parse::<jiff::Span>().map(|span| span.to_string()).unwrap_or_else(|_| after.to_owned());
        xml.text("bpmn:timeDuration", &formal, &iso);
    } else {
        xml.text("bpmn:timeDate", &formal, &format!("${{{at_field}}}"));
    }
    xml.close("bpmn:timerEventDefinition");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_ids_are_ncnames() {
        assert!(is_xml_id("submit") && is_xml_id("_a.b-c") && is_xml_id("Überweisung"));
        assert!(!is_xml_id("") && !is_xml_id("1st") && !is_xml_id("a b") && !is_xml_id("a:b"));
        let mut ids = Ids::default();
        assert_eq!(ids.take("a b"), "a_b");
        assert_eq!(ids.take("a b"), "a_b_2");
        assert_eq!(ids.take("1st"), "_1st");
    }

    #[test]
    fn durations_are_written_in_iso_8601() {
        let mut xml = XmlWriter::new();
        write_timer(&mut xml, "1h 30m", "");
        write_timer(&mut xml, "", "reply_by");
        let text = xml.finish();
        assert!(text.contains(">PT1H30M<"), "{text}");
        assert!(text.contains(">${reply_by}<"), "{text}");
    }

    #[test]
    fn routes_leave_and_enter_by_facing_sides() {
        let a = Rect { x: 0.0, y: 0.0, w: 100.0, h: 50.0 };
        let b = Rect { x: 300.0, y: 0.0, w: 100.0, h: 50.0 };
        assert_eq!(waypoints(a, b), vec![(100.0, 25.0), (300.0, 25.0)]);
        let c = Rect { x: 300.0, y: 100.0, w: 100.0, h: 50.0 };
        assert_eq!(waypoints(a, c), vec![(100.0, 25.0), (200.0, 25.0), (200.0, 125.0), (300.0, 125.0)]);
        let d = Rect { x: 0.0, y: 300.0, w: 100.0, h: 50.0 };
        assert_eq!(waypoints(a, d), vec![(50.0, 50.0), (50.0, 300.0)]);
    }
}
