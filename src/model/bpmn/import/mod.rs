//! A BPMN 2.0 file as flowdesk drafts, one per executable process, each
//! with its report.
//!
//! The work goes in the order a reader of the diagram would: collect the
//! flow nodes (sub-processes and call activities of the same file
//! flattened into their parent), make each node that does work or marks a
//! place an activity, decide for each gateway whether it dissolves into
//! lines (splits, joins in front of one activity) or has to stay as an
//! activity without events (a parallel join that is also a split), walk
//! every flow through the dissolved gateways to the activity it reaches,
//! composing the conditions on the way into the line's rule, turn timer
//! boundary events into escalations, and place every activity where the
//! diagram has it, or by depth where the file has no diagram.
//!
//! A file flowdesk exported carries flowdesk's extension elements; where
//! they are present they say exactly what the activity holds, so that
//! export then import gives back an equal draft.

mod data;
mod diagram;
mod elements;
mod flow;
mod ours;

use std::collections::{HashMap, HashSet};

use self::flow::compose;
use self::ours::{extension, ours_action, ours_events, ours_rights};
use crate::model::Right;
use crate::model::bpmn::report::{EntryKind, Report};
use crate::model::bpmn::xml::{self, Element, XmlError};
use crate::model::bpmn::{BPMN_NS, BPMNDI_NS, CAMUNDA_NS, FLOWDESK_NS};
use crate::model::definition::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, FieldDraft, LineDraft, Position, PrecedingRule,
    ProcessDraft, ServerEventDraft, TimerDraft, limits,
};
use crate::model::script::ScriptHost;
use crate::model::value::FieldType;

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Only the process with this id (also one that is not executable).
    pub process: Option<String>,
}

/// The processes of one file.
#[derive(Debug, Clone)]
pub struct Imported {
    pub processes: Vec<ImportedProcess>,
    /// What the file holds outside any process that was imported: pools
    /// without a process, message flows, processes left out.
    pub report: Report,
}

#[derive(Debug, Clone)]
pub struct ImportedProcess {
    /// The BPMN process's id.
    pub id: String,
    pub draft: ProcessDraft,
    pub report: Report,
    /// The rights users held on the process where it was exported
    /// (`flowdesk:right`), which a draft cannot carry: `flowdesk deploy`
    /// grants them when the deploying user may.
    pub rights: Vec<(String, Right)>,
}

/// A file that is not BPMN flowdesk can import.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("not an XML file flowdesk can read: {0}")]
    Xml(XmlError),
    #[error("not a BPMN 2.0 file: its root element is `{name}`{}, not BPMN 2.0's `definitions`", in_namespace(.ns))]
    NotBpmn { ns: String, name: String },
    #[error("the file holds no process")]
    NoProcess,
    #[error("the file has no process `{wanted}`; its processes: {available}")]
    UnknownProcess { wanted: String, available: String },
    #[error(
        "the process `{id}` would have {activities} activities and {lines} lines; a flowdesk process holds at most \
         {} activities and {} lines",
        limits::ACTIVITIES,
        limits::LINES
    )]
    TooLarge { id: String, activities: usize, lines: usize },
}

impl From<XmlError> for ImportError {
    // Not a `#[source]`: the message already says it, and `{:#}` chains
    // would say it twice.
    fn from(err: XmlError) -> ImportError {
        ImportError::Xml(err)
    }
}

fn in_namespace(ns: &str) -> String {
    if ns.is_empty() { " in no namespace".to_owned() } else { format!(" in namespace {ns}") }
}

/// How many call activities deep a call is followed into the file.
const MAX_CALL_DEPTH: usize = 8;
/// How many flows the walk through gateways may follow in one process: far
/// more than a process of `limits::LINES` lines needs.
const MAX_WALK_STEPS: usize = 200_000;

/// Reads a BPMN file's processes. `text` is the whole file.
pub fn import(text: &str, options: &ImportOptions) -> Result<Imported, ImportError> {
    let root = xml::parse(text)?;
    if !root.is(BPMN_NS, "definitions") {
        return Err(ImportError::NotBpmn { ns: root.ns.clone(), name: root.name.clone() });
    }
    let mut report = Report::default();
    let processes: Vec<&Element> = root.children_named(BPMN_NS, "process").collect();
    if processes.is_empty() {
        return Err(ImportError::NoProcess);
    }
    let chosen: Vec<&Element> = match &options.process {
        Some(wanted) => match processes.iter().find(|p| p.attr("id") == Some(wanted.as_str())) {
            Some(process) => vec![*process],
            None => {
                let available: Vec<&str> = processes.iter().filter_map(|p| p.attr("id")).collect();
                return Err(ImportError::UnknownProcess { wanted: wanted.clone(), available: available.join(", ") });
            }
        },
        None => {
            let executable: Vec<&Element> =
                processes.iter().copied().filter(|p| p.attr("isExecutable") == Some("true")).collect();
            if executable.is_empty() {
                processes.iter().copied().filter(|p| p.children.iter().any(is_flow_node)).collect()
            } else {
                executable
            }
        }
    };
    if chosen.is_empty() {
        return Err(ImportError::NoProcess);
    }
    let chosen_ids: HashSet<&str> = chosen.iter().filter_map(|p| p.attr("id")).collect();
    let called: HashSet<&str> = chosen.iter().flat_map(|p| called_processes(p)).collect();
    for process in &processes {
        let id = process.attr("id").unwrap_or_default();
        if !chosen_ids.contains(id) && !called.contains(id) {
            let why = if options.process.is_some() {
                "another process of the file was asked for"
            } else if process.children.iter().any(is_flow_node) {
                "not executable (isExecutable is not true); `--process ID` imports it"
            } else {
                "it holds no flow elements"
            };
            report.add(EntryKind::Ignored, "process", id, process.attr("name").unwrap_or_default(), why);
        }
    }
    report_definitions(&root, &chosen_ids, &mut report);
    let host = ScriptHost::default();
    let mut imported = Vec::new();
    for process in chosen {
        let id = process.attr("id").unwrap_or_default().to_owned();
        let (draft, mut report) = Builder::new(&root, process, &host).build();
        let rights = ours_rights(process, &mut report);
        // A process past the limits could be neither deployed nor drawn,
        // and checking one of tens of thousands of boxes takes minutes.
        let (activities, lines) = (draft.activities.len(), draft.lines.len());
        if activities > limits::ACTIVITIES || lines > limits::LINES {
            return Err(ImportError::TooLarge { id, activities, lines });
        }
        imported.push(ImportedProcess { id, draft, report, rights });
    }
    Ok(Imported { processes: imported, report })
}

fn is_flow_node(element: &Element) -> bool {
    element.ns == BPMN_NS
        && (is_task(&element.name)
            || element.name.ends_with("Event")
            || element.name.ends_with("Gateway")
            || matches!(element.name.as_str(), "subProcess" | "callActivity" | "transaction" | "adHocSubProcess"))
}

fn is_task(name: &str) -> bool {
    matches!(
        name,
        "task"
            | "serviceTask"
            | "scriptTask"
            | "sendTask"
            | "businessRuleTask"
            | "manualTask"
            | "userTask"
            | "receiveTask"
    )
}

/// The processes a process calls, however deep in its sub-processes.
fn called_processes(container: &Element) -> Vec<&str> {
    let mut out = Vec::new();
    for child in &container.children {
        if child.is(BPMN_NS, "callActivity") {
            out.extend(child.attr("calledElement"));
        } else if is_sub_process(child) {
            out.extend(called_processes(child));
        }
    }
    out
}

fn is_sub_process(element: &Element) -> bool {
    element.ns == BPMN_NS && matches!(element.name.as_str(), "subProcess" | "transaction" | "adHocSubProcess")
}

/// What the definitions hold besides processes: pools, message flows and
/// the declarations events refer to.
fn report_definitions(root: &Element, chosen: &HashSet<&str>, report: &mut Report) {
    for child in &root.children {
        let (id, name) = (child.attr("id").unwrap_or_default(), child.attr("name").unwrap_or_default());
        if child.ns != BPMN_NS {
            if child.ns != BPMNDI_NS {
                report.add(EntryKind::Ignored, qualified(child), id, name, "another tool's extension");
            }
            continue;
        }
        match child.name.as_str() {
            "process" | "extensionElements" | "documentation" => {}
            "collaboration" => {
                for part in &child.children {
                    let (id, name) = (part.attr("id").unwrap_or_default(), part.attr("name").unwrap_or_default());
                    match part.name.as_str() {
                        "participant" => {
                            let process = part.attr("processRef").unwrap_or_default();
                            let why = if chosen.contains(process) {
                                format!("flowdesk has no pools; its process `{process}` is imported")
                            } else if process.is_empty() {
                                "a pool without a process".to_owned()
                            } else {
                                format!("flowdesk has no pools; its process `{process}` is not imported")
                            };
                            report.add(EntryKind::Ignored, "pool", id, name, why);
                        }
                        "messageFlow" => report.add(
                            EntryKind::Ignored,
                            "message flow",
                            id,
                            name,
                            "flowdesk processes exchange messages through callbacks, not message flows",
                        ),
                        "documentation" | "extensionElements" => {}
                        other => report.add(EntryKind::Ignored, words(other), id, name, "not part of a process"),
                    }
                }
            }
            "message" | "signal" | "error" | "escalation" | "itemDefinition" | "dataStore" | "category"
            | "interface" | "resource" | "import" => report.add(
                EntryKind::Ignored,
                words(&child.name),
                id,
                name,
                "a declaration: the elements that use it are imported as the report says",
            ),
            other => report.add(EntryKind::Ignored, words(other), id, name, "not supported"),
        }
    }
}

/// `userTask` → `user task`.
fn words(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_uppercase() {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// An element of another namespace, named as its tool's users know it.
fn qualified(element: &Element) -> String {
    let prefix = match element.ns.as_str() {
        CAMUNDA_NS => "camunda",
        "http://camunda.org/schema/zeebe/1.0" => "zeebe",
        "http://activiti.org/bpmn" => "activiti",
        "http://flowable.org/bpmn" => "flowable",
        "http://www.signavio.com" => "signavio",
        "http://camunda.org/schema/modeler/1.0" => "modeler",
        "" => return element.name.clone(),
        other => return format!("{{{other}}}{}", element.name),
    };
    format!("{prefix}:{}", element.name)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gateway {
    Exclusive,
    Inclusive,
    Parallel,
    Complex,
    EventBased,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Becomes an activity.
    Activity,
    Gateway(Gateway),
    /// A boundary event, the source of its own flows.
    Boundary,
}

struct Node<'a> {
    /// Unique in the process: the BPMN id, prefixed inside a called process.
    id: String,
    element: &'a Element,
    role: Role,
    /// The prefix of ids this node's references are read with.
    prefix: String,
    /// Inside a flattened sub-process or called process.
    nested: bool,
}

impl Node<'_> {
    fn name(&self) -> &str {
        self.element.attr("name").unwrap_or_default()
    }
}

struct Edge<'a> {
    id: String,
    source: usize,
    target: usize,
    element: Option<&'a Element>,
    /// The condition, as a Rhai rule when it could be read as one.
    rule: Option<Rule>,
    is_default: bool,
}

#[derive(Debug, Clone)]
struct Rule {
    text: String,
    /// The condition as written, when it is not Rhai: kept as the label.
    unread: Option<String>,
}

/// An edge before its ends are known to be nodes: flows name ids, and a
/// flattened sub-process's id stands for its inner start and end events.
struct RawEdge<'a> {
    id: String,
    source: String,
    target: String,
    element: Option<&'a Element>,
}

struct Builder<'a> {
    root: &'a Element,
    process: &'a Element,
    host: &'a ScriptHost,
    report: Report,
    /// Whether the process carries flowdesk's own extension: then its
    /// diagram is in flowdesk's units and its activities say what they hold.
    ours: bool,
    nodes: Vec<Node<'a>>,
    index: HashMap<String, usize>,
    raw_edges: Vec<RawEdge<'a>>,
    /// A flattened sub-process's id → the ids flows into it go to.
    entries: HashMap<String, Vec<String>>,
    /// A flattened sub-process's id → the ids flows out of it leave from.
    exits: HashMap<String, Vec<String>>,
    edges: Vec<Edge<'a>>,
    /// Each node's edges out and in, by edge index.
    outgoing: Vec<Vec<usize>>,
    incoming: Vec<Vec<usize>>,
    /// Steps left for walking flows through gateways: gateways after
    /// gateways multiply the paths, and a file must not make that endless.
    steps: std::cell::Cell<usize>,
    /// Timer catch events after an event-based gateway, by node, and the
    /// wait they race: they become escalations of it.
    raced: HashMap<usize, usize>,
    /// The fields the process will have.
    fields: Vec<FieldDraft>,
    /// Whether the elements being collected are inside a flattened one.
    collecting_nested: bool,
}

impl<'a> Builder<'a> {
    fn new(root: &'a Element, process: &'a Element, host: &'a ScriptHost) -> Builder<'a> {
        let ours = extension(process, "process").is_some();
        Builder {
            root,
            process,
            host,
            report: Report::default(),
            ours,
            nodes: Vec::new(),
            index: HashMap::new(),
            raw_edges: Vec::new(),
            entries: HashMap::new(),
            exits: HashMap::new(),
            edges: Vec::new(),
            outgoing: Vec::new(),
            incoming: Vec::new(),
            steps: std::cell::Cell::new(MAX_WALK_STEPS),
            raced: HashMap::new(),
            fields: Vec::new(),
            collecting_nested: false,
        }
    }

    fn build(mut self) -> (ProcessDraft, Report) {
        let process_id = self.process.attr("id").unwrap_or_default().to_owned();
        let mut draft = ProcessDraft {
            name: self.process_name(),
            description: self
                .process
                .child(BPMN_NS, "documentation")
                .map(|d| if self.ours { d.text.clone() } else { d.text.trim().to_owned() })
                .unwrap_or_default(),
            script_time_limit_ms: None,
            time_zone: None,
            fields: Vec::new(),
            activities: Vec::new(),
            lines: Vec::new(),
        };
        let mut dangling = Vec::new();
        if let Some(ours) = extension(self.process, "process") {
            draft.time_zone = ours.attr("timeZone").map(str::to_owned);
            draft.script_time_limit_ms = ours.attr("scriptTimeLimitMs").and_then(|t| t.parse().ok());
            for field in ours.children_named(FLOWDESK_NS, "field") {
                let default = field.attr("default").map(|text| {
                    serde_json::from_str(text).unwrap_or_else(|_| serde_json::Value::String(text.to_owned()))
                });
                self.fields.push(FieldDraft {
                    name: field.attr("name").unwrap_or_default().to_owned(),
                    field_type: field.attr("type").unwrap_or_default().to_owned(),
                    default,
                    searchable: field.attr("searchable") == Some("true"),
                });
            }
            for line in ours.children_named(FLOWDESK_NS, "line") {
                let get = |name| line.attr(name).unwrap_or_default().to_owned();
                dangling.push(LineDraft { from: get("from"), to: get("to"), label: get("label"), rule: get("rule") });
            }
        }
        let mut calls = vec![process_id];
        self.collect(self.process, "", &mut calls);
        self.link_events();
        self.resolve_edges();
        if !self.ours {
            self.camunda_form_fields();
        }
        self.read_conditions();
        let joins = self.plan_gateways();
        // Activities, in the order of the file.
        let mut activities: Vec<(usize, ActivityDraft)> = Vec::new();
        for index in 0..self.nodes.len() {
            if let Some(activity) = self.activity(index, &joins) {
                activities.push((index, activity));
            }
        }
        let activity_at: HashMap<usize, usize> = activities.iter().enumerate().map(|(a, (n, _))| (*n, a)).collect();
        let mut lines = Vec::new();
        let mut boundary_lines: HashMap<usize, Vec<LineDraft>> = HashMap::new();
        for source in 0..self.nodes.len() {
            let is_source = activity_at.contains_key(&source) || self.nodes[source].role == Role::Boundary;
            if !is_source {
                continue;
            }
            for edge in self.out_edges(source) {
                let mut found = Vec::new();
                self.walk(edge, &mut Vec::new(), &mut Vec::new(), &mut Vec::new(), &mut found);
                // Paths through gateways that end at the same activity with
                // the same rule are one line: BPMN moves one token along them.
                let mut seen = HashSet::new();
                found.retain(|(target, rules, labels)| seen.insert((*target, rules.clone(), labels.clone())));
                for (target, rules, labels) in found {
                    let line = LineDraft {
                        from: self.nodes[source].id.clone(),
                        to: self.nodes[target].id.clone(),
                        label: labels.join(" / "),
                        rule: compose(&rules),
                    };
                    if self.nodes[source].role == Role::Boundary {
                        boundary_lines.entry(source).or_default().push(line);
                    } else {
                        lines.push((edge, line));
                    }
                }
            }
        }
        if self.steps.get() == 0 {
            let id = self.process.attr("id").unwrap_or_default().to_owned();
            self.report.add(
                EntryKind::Problem,
                "process",
                &id,
                "",
                format!(
                    "its gateways lead into one another in more than {MAX_WALK_STEPS} ways: only the lines found \
                     until then are imported"
                ),
            );
        }
        // Lines in the order their first flow has in the file.
        lines.sort_by_key(|(edge, _)| *edge);
        let mut drafts: Vec<ActivityDraft> = activities.into_iter().map(|(_, a)| a).collect();
        self.escalations(&mut drafts, &activity_at, &boundary_lines);
        let ids: HashMap<String, String> = self
            .nodes
            .iter()
            .enumerate()
            .filter_map(|(n, node)| Some((node.id.clone(), drafts.get(*activity_at.get(&n)?)?.id.clone())))
            .collect();
        draft.lines = lines
            .into_iter()
            .map(|(_, mut line)| {
                line.from = ids.get(&line.from).cloned().unwrap_or(line.from);
                line.to = ids.get(&line.to).cloned().unwrap_or(line.to);
                line
            })
            .collect();
        for activity in &mut drafts {
            for escalation in &mut activity.escalations {
                if let EscalationActionDraft::GoTo { activity: target } = &mut escalation.action
                    && let Some(id) = ids.get(target.as_str())
                {
                    *target = id.clone();
                }
            }
        }
        draft.lines.extend(dangling);
        // flowdesk's own file says exactly what the draft was, mistakes
        // and all: a draft being edited is exported as it is.
        if !self.ours {
            self.choose_start(&mut drafts, &draft.lines);
        }
        self.place(&mut drafts, &activity_at, &draft.lines);
        if !self.ours {
            self.unique_names(&mut drafts);
        }
        draft.fields = std::mem::take(&mut self.fields);
        draft.activities = drafts;
        (draft, self.report)
    }

    fn process_name(&self) -> String {
        let id = self.process.attr("id").unwrap_or_default();
        let pool = self
            .root
            .children_named(BPMN_NS, "collaboration")
            .flat_map(|c| c.children_named(BPMN_NS, "participant"))
            .find(|p| p.attr("processRef") == Some(id))
            .and_then(|p| p.attr("name"));
        let name = self.process.attr("name").filter(|n| !n.trim().is_empty()).or(pool).unwrap_or(id);
        if self.ours { name.to_owned() } else { name.trim().to_owned() }
    }

    // ----- collecting ----------------------------------------------------------

    fn add_node(&mut self, id: String, element: &'a Element, role: Role, prefix: &str) {
        self.index.insert(id.clone(), self.nodes.len());
        let nested = self.collecting_nested;
        self.nodes.push(Node { id, element, role, prefix: prefix.to_owned(), nested });
    }

    fn collect(&mut self, container: &'a Element, prefix: &str, calls: &mut Vec<String>) {
        let outer = self.collecting_nested;
        self.collecting_nested = !std::ptr::eq(container, self.process);
        self.collect_children(container, prefix, calls);
        self.collecting_nested = outer;
    }

    fn collect_children(&mut self, container: &'a Element, prefix: &str, calls: &mut Vec<String>) {
        for child in &container.children {
            let raw_id = child.attr("id").unwrap_or_default();
            let id = format!("{prefix}{raw_id}");
            let name = child.attr("name").unwrap_or_default();
            if child.ns != BPMN_NS {
                self.report.add(EntryKind::Ignored, qualified(child), raw_id, name, "another tool's extension");
                continue;
            }
            match child.name.as_str() {
                n if is_task(n) => self.add_node(id, child, Role::Activity, prefix),
                "startEvent" | "endEvent" | "intermediateCatchEvent" | "intermediateThrowEvent" => {
                    self.add_node(id, child, Role::Activity, prefix)
                }
                "boundaryEvent" => self.add_node(id, child, Role::Boundary, prefix),
                "exclusiveGateway" => self.add_node(id, child, Role::Gateway(Gateway::Exclusive), prefix),
                "inclusiveGateway" => self.add_node(id, child, Role::Gateway(Gateway::Inclusive), prefix),
                "parallelGateway" => self.add_node(id, child, Role::Gateway(Gateway::Parallel), prefix),
                "complexGateway" => self.add_node(id, child, Role::Gateway(Gateway::Complex), prefix),
                "eventBasedGateway" => self.add_node(id, child, Role::Gateway(Gateway::EventBased), prefix),
                "subProcess" | "transaction" | "adHocSubProcess" if child.attr("triggeredByEvent") == Some("true") => {
                    self.report.add(
                        EntryKind::Ignored,
                        "event sub-process",
                        raw_id,
                        name,
                        "flowdesk has no event sub-processes; their elements are not imported",
                    )
                }
                "subProcess" | "transaction" | "adHocSubProcess" => {
                    self.report.add(
                        EntryKind::Flattened,
                        words(&child.name),
                        raw_id,
                        name,
                        "its elements are part of this process",
                    );
                    let first = self.nodes.len();
                    self.collect(child, prefix, calls);
                    self.mark_entries_and_exits(&id, child, prefix, first);
                }
                "callActivity" => self.call(child, id, prefix, calls),
                "sequenceFlow" => self.raw_edges.push(RawEdge {
                    id: id.clone(),
                    source: format!("{prefix}{}", child.attr("sourceRef").unwrap_or_default()),
                    target: format!("{prefix}{}", child.attr("targetRef").unwrap_or_default()),
                    element: Some(child),
                }),
                "laneSet" => self.report_lanes(child),
                // A sub-process's own links, and what its parent reads.
                "documentation" | "extensionElements" | "incoming" | "outgoing" => {}
                "textAnnotation" => {
                    let text = child.child(BPMN_NS, "text").map(|t| t.text.trim().to_owned()).unwrap_or_default();
                    self.report.add(EntryKind::Ignored, "text annotation", raw_id, &text, "flowdesk has no annotations")
                }
                "association" => self.report.add(
                    EntryKind::Ignored,
                    "association",
                    raw_id,
                    name,
                    "it joins an annotation or data to the flow",
                ),
                "dataObject"
                | "dataObjectReference"
                | "dataStoreReference"
                | "dataInput"
                | "dataOutput"
                | "ioSpecification"
                | "property" => self.report.add(
                    EntryKind::Ignored,
                    words(&child.name),
                    raw_id,
                    name,
                    "flowdesk's data are the process's fields",
                ),
                "group" | "category" => {
                    self.report.add(EntryKind::Ignored, words(&child.name), raw_id, name, "flowdesk has no groups")
                }
                other => self.report.add(EntryKind::Ignored, words(other), raw_id, name, "not supported"),
            }
        }
    }

    /// Flows into a flattened sub-process go to its start events (or, with
    /// none, to what nothing inside leads to); flows out leave from its end
    /// events (or what leads nowhere inside).
    fn mark_entries_and_exits(&mut self, id: &str, container: &'a Element, prefix: &str, first: usize) {
        let direct: HashSet<*const Element> = container.children.iter().map(|c| c as *const Element).collect();
        let inner: Vec<usize> = (first..self.nodes.len())
            .filter(|&n| direct.contains(&(self.nodes[n].element as *const Element)))
            .collect();
        let flows: Vec<(&str, &str)> = container
            .children_named(BPMN_NS, "sequenceFlow")
            .map(|f| (f.attr("sourceRef").unwrap_or_default(), f.attr("targetRef").unwrap_or_default()))
            .collect();
        let raw = |n: usize| self.nodes[n].element.attr("id").unwrap_or_default();
        let pick = |kind: &str, free: &dyn Fn(&str) -> bool| -> Vec<String> {
            let named: Vec<String> = inner
                .iter()
                .filter(|&&n| self.nodes[n].element.name == kind)
                .map(|&n| format!("{prefix}{}", raw(n)))
                .collect();
            if !named.is_empty() {
                return named;
            }
            inner
                .iter()
                .filter(|&&n| self.nodes[n].role != Role::Boundary && free(raw(n)))
                .map(|&n| format!("{prefix}{}", raw(n)))
                .collect()
        };
        let entries = pick("startEvent", &|id| flows.iter().all(|(_, to)| *to != id));
        let exits = pick("endEvent", &|id| flows.iter().all(|(from, _)| *from != id));
        self.entries.insert(id.to_owned(), entries);
        self.exits.insert(id.to_owned(), exits);
    }

    fn call(&mut self, element: &'a Element, id: String, prefix: &str, calls: &mut Vec<String>) {
        // flowdesk's own export: a sub-process (IPC) event, which its
        // extension describes, not a call to flatten.
        if ours::extension(element, "activity").is_some() {
            self.add_node(id, element, Role::Activity, prefix);
            return;
        }
        let raw_id = element.attr("id").unwrap_or_default();
        let name = element.attr("name").unwrap_or_default();
        let called = element.attr("calledElement").unwrap_or_default();
        let target = self.root.children_named(BPMN_NS, "process").find(|p| p.attr("id") == Some(called));
        match target {
            Some(process) if !calls.iter().any(|c| c == called) && calls.len() <= MAX_CALL_DEPTH => {
                self.report.add(
                    EntryKind::Flattened,
                    "call activity",
                    raw_id,
                    name,
                    format!(
                        "the elements of the process `{called}` it calls are part of this process, their ids \
                         beginning `{id}/`"
                    ),
                );
                calls.push(called.to_owned());
                let first = self.nodes.len();
                let inner_prefix = format!("{id}/");
                self.collect(process, &inner_prefix, calls);
                calls.pop();
                self.mark_entries_and_exits(&id, process, &inner_prefix, first);
            }
            // A process this file lacks is a deployed one's to be: a
            // sub-process (IPC) event starts it (`elements.rs`).
            None if !called.is_empty() => {
                self.report.add(
                    EntryKind::Changed,
                    "call activity",
                    raw_id,
                    name,
                    format!(
                        "it calls `{called}`, which this file does not hold: it became a sub-process event that \
                         starts `{called}` and waits for it; deploy `{called}` first, and map its data"
                    ),
                );
                self.add_node(id, element, Role::Activity, prefix);
            }
            _ => {
                let why = if called.is_empty() {
                    "it names no process; an activity without events stands in for it".to_owned()
                } else {
                    format!("it calls `{called}` again, inside itself; an activity without events stands in for it")
                };
                self.report.add(EntryKind::Problem, "call activity", raw_id, name, why);
                self.add_node(id, element, Role::Activity, prefix);
            }
        }
    }

    fn report_lanes(&mut self, lane_set: &Element) {
        for lane in lane_set.children_named(BPMN_NS, "lane") {
            self.report.add(
                EntryKind::Ignored,
                "lane",
                lane.attr("id").unwrap_or_default(),
                lane.attr("name").unwrap_or_default(),
                "flowdesk has no lanes; the lane's elements are imported",
            );
            for inner in lane.children_named(BPMN_NS, "childLaneSet") {
                self.report_lanes(inner);
            }
        }
    }

    /// A link throw event goes on at the link catch events of its name.
    fn link_events(&mut self) {
        let link = |node: &Node<'_>| {
            node.element.child(BPMN_NS, "linkEventDefinition").map(|l| l.attr("name").unwrap_or_default().to_owned())
        };
        let mut catchers: HashMap<String, Vec<&Node<'_>>> = HashMap::new();
        for catcher in self.nodes.iter().filter(|n| n.element.name == "intermediateCatchEvent") {
            if let Some(name) = link(catcher) {
                catchers.entry(name).or_default().push(catcher);
            }
        }
        let mut added = Vec::new();
        for thrower in self.nodes.iter().filter(|n| n.element.name == "intermediateThrowEvent") {
            let Some(name) = link(thrower) else { continue };
            for catcher in catchers.get(&name).into_iter().flatten() {
                added.push(RawEdge {
                    id: format!("{}→{}", thrower.id, catcher.id),
                    source: thrower.id.clone(),
                    target: catcher.id.clone(),
                    element: None,
                });
            }
        }
        self.raw_edges.extend(added);
    }

    fn expand(&self, id: &str, map: &HashMap<String, Vec<String>>, depth: usize) -> Vec<usize> {
        match map.get(id) {
            Some(inner) if depth < 64 => inner.iter().flat_map(|i| self.expand(i, map, depth + 1)).collect(),
            Some(_) => Vec::new(),
            None => self.index.get(id).copied().into_iter().collect(),
        }
    }

    fn resolve_edges(&mut self) {
        let raw = std::mem::take(&mut self.raw_edges);
        let defaults = self.default_flows();
        for edge in raw {
            let sources = self.expand(&edge.source, &self.exits, 0);
            let targets = self.expand(&edge.target, &self.entries, 0);
            if sources.is_empty() || targets.is_empty() {
                let name = edge.element.and_then(|e| e.attr("name")).unwrap_or_default();
                self.report.add(
                    EntryKind::Ignored,
                    "sequence flow",
                    &edge.id,
                    name,
                    format!("it joins `{}` to `{}`, not two elements of the process", edge.source, edge.target),
                );
                continue;
            }
            let is_default = defaults.contains(&edge.id);
            for &source in &sources {
                for &target in &targets {
                    self.edges.push(Edge {
                        id: edge.id.clone(),
                        source,
                        target,
                        element: edge.element,
                        rule: None,
                        is_default,
                    });
                }
            }
        }
        self.outgoing = vec![Vec::new(); self.nodes.len()];
        self.incoming = vec![Vec::new(); self.nodes.len()];
        for (index, edge) in self.edges.iter().enumerate() {
            self.outgoing[edge.source].push(index);
            self.incoming[edge.target].push(index);
        }
    }

    fn default_flows(&self) -> HashSet<String> {
        self.nodes.iter().filter_map(|n| n.element.attr("default").map(|d| format!("{}{d}", n.prefix))).collect()
    }

    fn out_edges(&self, node: usize) -> Vec<usize> {
        self.outgoing.get(node).cloned().unwrap_or_default()
    }

    fn in_edges(&self, node: usize) -> Vec<usize> {
        self.incoming.get(node).cloned().unwrap_or_default()
    }

    fn choose_start(&mut self, drafts: &mut [ActivityDraft], lines: &[LineDraft]) {
        if drafts.iter().any(|a| a.start) {
            return;
        }
        let targets: HashSet<&str> = lines.iter().map(|l| l.to.as_str()).collect();
        let free: Vec<usize> = (0..drafts.len()).filter(|&i| !targets.contains(drafts[i].id.as_str())).collect();
        if let [only] = free.as_slice() {
            drafts[*only].start = true;
            self.report.add(
                EntryKind::Changed,
                "process",
                self.process.attr("id").unwrap_or_default(),
                "",
                format!("it has no start event: `{}`, which nothing leads to, is the start", drafts[*only].name),
            );
        }
    }

    /// Activity names are unique in flowdesk; an unnamed element is named
    /// after its kind.
    fn unique_names(&mut self, drafts: &mut [ActivityDraft]) {
        let mut taken: HashSet<String> = HashSet::new();
        let kinds: HashMap<String, String> = self
            .nodes
            .iter()
            .map(|n| {
                let id = n.element.attr_ns(FLOWDESK_NS, "id").map(str::to_owned).unwrap_or_else(|| n.id.clone());
                let kind = match n.element.name.as_str() {
                    "startEvent" => "Start".to_owned(),
                    "endEvent" => "End".to_owned(),
                    other => {
                        let w = words(other);
                        let mut chars = w.chars();
                        chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
                    }
                };
                (id, kind)
            })
            .collect();
        for activity in drafts.iter_mut() {
            let given = !activity.name.trim().is_empty();
            if !given {
                activity.name = kinds.get(&activity.id).cloned().unwrap_or_else(|| "Activity".to_owned());
            }
            if taken.contains(&activity.name) {
                let before = activity.name.clone();
                let mut candidate = format!("{before} ({})", activity.id);
                let mut n = 2;
                while taken.contains(&candidate) {
                    candidate = format!("{before} ({}, {n})", activity.id);
                    n += 1;
                }
                if given {
                    self.report.add(
                        EntryKind::Changed,
                        "name",
                        &activity.id,
                        &before,
                        format!("another element has this name; flowdesk's are unique: it is `{candidate}`"),
                    );
                }
                activity.name = candidate;
            }
            taken.insert(activity.name.clone());
        }
    }
}
