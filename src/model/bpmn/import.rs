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

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use crate::model::bpmn::condition::{to_rhai, variable_types};
use crate::model::bpmn::geometry::{ACTIVITY_WIDTH, GRID, activity_height};
use crate::model::bpmn::report::{EntryKind, Report};
use crate::model::bpmn::xml::{self, Element, XmlError};
use crate::model::bpmn::{BPMN_NS, BPMNDI_NS, CAMUNDA_NS, DC_NS, FLOWDESK_NS};
use crate::model::definition::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, FieldDraft, HeaderDraft, HttpRequestDraft,
    LineDraft, NotifyDraft, Position, PrecedingRule, ProcessDraft, ServerEventDraft, TimerDraft, limits,
};
use crate::model::script::{CONTEXT_NAMES, ScriptHost};
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
/// How many columns a layout by depth draws before it goes on below.
const BAND_COLUMNS: usize = 40;
/// How foreign diagrams are scaled: BPMN tools draw a task 100 wide and
/// 80 high, flowdesk's box is 210 wide and 62 or more high; this keeps
/// boxes apart where the tool kept its shapes apart.
const SCALE_X: f64 = 2.1;
const SCALE_Y: f64 = 1.4;

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
        let (draft, report) = Builder::new(&root, process, &host).build();
        // A process past the limits could be neither deployed nor drawn,
        // and checking one of tens of thousands of boxes takes minutes.
        let (activities, lines) = (draft.activities.len(), draft.lines.len());
        if activities > limits::ACTIVITIES || lines > limits::LINES {
            return Err(ImportError::TooLarge { id, activities, lines });
        }
        imported.push(ImportedProcess { id, draft, report });
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
                        "its elements are part of this process (flowdesk's sub-process event comes later)",
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
                         beginning `{id}/` (flowdesk's sub-process event comes later)"
                    ),
                );
                calls.push(called.to_owned());
                let first = self.nodes.len();
                let inner_prefix = format!("{id}/");
                self.collect(process, &inner_prefix, calls);
                calls.pop();
                self.mark_entries_and_exits(&id, process, &inner_prefix, first);
            }
            _ => {
                let why = if called.is_empty() {
                    "it names no process; an activity without events stands in for it".to_owned()
                } else if target.is_some() {
                    format!("it calls `{called}` again, inside itself; an activity without events stands in for it")
                } else {
                    format!(
                        "it calls `{called}`, which this file does not hold; an activity without events stands in \
                         for it until flowdesk has sub-process events"
                    )
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

    // ----- fields and conditions --------------------------------------------

    /// Camunda 7's generated forms name the data a user task collects.
    fn camunda_form_fields(&mut self) {
        let mut added = Vec::new();
        for node in &self.nodes {
            let Some(extension) = node.element.child(BPMN_NS, "extensionElements") else { continue };
            for form in extension.children_named(CAMUNDA_NS, "formData") {
                for field in form.children_named(CAMUNDA_NS, "formField") {
                    let Some(name) = field.attr("id") else { continue };
                    let field_type = match field.attr("type").unwrap_or_default() {
                        "long" => FieldType::Integer,
                        "boolean" => FieldType::Boolean,
                        "date" => FieldType::Date,
                        _ => FieldType::String,
                    };
                    let task = node.element.attr("id").unwrap_or_default().to_owned();
                    added.push((name.to_owned(), field_type, task, node.name().to_owned()));
                }
            }
        }
        for (name, field_type, task, task_name) in added {
            let why = format!("became the {field_type} field `{name}`, from the form of `{task_name}` ({task})");
            self.add_field(&name, field_type, "form field", why);
        }
    }

    /// Adds a field the BPMN did not declare (BPMN has no process data),
    /// saying where it came from; a name already taken is left as it is.
    fn add_field(&mut self, name: &str, field_type: FieldType, element: &str, why: String) {
        if self.fields.iter().any(|f| f.name == name) {
            return;
        }
        self.fields.push(FieldDraft { name: name.to_owned(), field_type: field_type.name().to_owned(), default: None });
        self.report.add(EntryKind::Changed, element, name, "", why);
    }

    /// Every condition as a rule; the variables the rules use that are no
    /// field yet become fields, typed by their use.
    fn read_conditions(&mut self) {
        let language = self.root.attr("expressionLanguage").unwrap_or_default().to_owned();
        let mut candidates: Vec<Option<(String, String, bool)>> = Vec::new();
        for edge in &self.edges {
            let Some(condition) = edge.element.and_then(|e| e.child(BPMN_NS, "conditionExpression")) else {
                candidates.push(None);
                continue;
            };
            let written = condition.text.clone();
            let language = condition.attr("language").unwrap_or(&language).to_ascii_lowercase();
            if language == "rhai" {
                candidates.push(Some((written.clone(), written, true)));
            } else {
                candidates.push(Some((to_rhai(&written), written.trim().to_owned(), false)));
            }
        }
        if !self.ours {
            self.infer_fields(candidates.iter().flatten().map(|(rule, _, _)| rule.as_str()));
        }
        let names: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        for (edge, candidate) in self.edges.iter_mut().zip(candidates) {
            let Some((rule, written, is_rhai)) = candidate else { continue };
            let first = seen.insert(edge.id.clone());
            let name = edge.element.and_then(|e| e.attr("name")).unwrap_or_default();
            if is_rhai || self.host.compile_rule(&rule, &names).is_ok() {
                if !is_rhai && rule != written && first {
                    self.report.add(
                        EntryKind::Changed,
                        "condition",
                        &edge.id,
                        name,
                        format!("`{written}` became the Rhai rule `{rule}`"),
                    );
                }
                edge.rule = Some(Rule { text: rule, unread: None });
            } else {
                if first {
                    self.report.add(
                        EntryKind::Problem,
                        "condition",
                        &edge.id,
                        name,
                        format!(
                            "`{written}` is not a Rhai rule flowdesk can read: it is kept as the line's label and \
                             rule; write the rule in Rhai"
                        ),
                    );
                }
                edge.rule = Some(Rule { text: written.clone(), unread: Some(written) });
            }
        }
    }

    /// Adds a field for every variable `rules` use that is not one yet.
    fn infer_fields<'r>(&mut self, rules: impl Iterator<Item = &'r str>) {
        let mut types = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for rule in rules {
            let mut names: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
            let mut found = Vec::new();
            // Each compile names the first variable it does not know; a
            // rule that does not compile once they are all known is not
            // Rhai, and its words are no variables.
            let mut compiles = false;
            for _ in 0..64 {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                match self.host.compile_rule(rule, &known) {
                    Err(err) => match err.message.strip_prefix("Undefined variable: ") {
                        Some(name) if !names.iter().any(|n| n == name) && !CONTEXT_NAMES.contains(&name) => {
                            names.push(name.to_owned());
                            found.push(name.to_owned());
                        }
                        _ => break,
                    },
                    Ok(_) => {
                        compiles = true;
                        break;
                    }
                }
            }
            if !compiles {
                continue;
            }
            variable_types(rule, &found, &mut types);
            for name in found {
                if !order.contains(&name) {
                    order.push(name);
                }
            }
        }
        for name in order {
            let field_type = types.get(&name).copied().unwrap_or(FieldType::String);
            let guessed = if types.contains_key(&name) { "by its use" } else { "as text, its use says no type" };
            let why = format!(
                "became the {field_type} field `{name}` (typed {guessed}): BPMN has no process data; check the type"
            );
            self.add_field(&name, field_type, "variable", why);
        }
    }

    // ----- gateways and lines ---------------------------------------------------

    /// Decides each gateway's fate; returns the activities a parallel join
    /// in front of them makes `All`. A gateway that cannot dissolve is made
    /// an activity without events (`Role::Activity`).
    fn plan_gateways(&mut self) -> HashSet<usize> {
        let mut all = HashSet::new();
        for index in 0..self.nodes.len() {
            let Role::Gateway(kind) = self.nodes[index].role else { continue };
            let (ins, outs) = (self.in_edges(index), self.out_edges(index));
            let (id, name) = (
                self.nodes[index].element.attr("id").unwrap_or_default().to_owned(),
                self.nodes[index].name().to_owned(),
            );
            match kind {
                Gateway::Parallel => {
                    let single_target = match outs.as_slice() {
                        [out] => Some(self.edges[*out].target),
                        _ => None,
                    };
                    let joins_one = single_target.is_some_and(|target| {
                        self.nodes[target].role == Role::Activity
                            && self
                                .in_edges(target)
                                .iter()
                                .filter(|&&e| self.nodes[self.edges[e].source].role != Role::Boundary)
                                .all(|&e| e == outs[0])
                    });
                    if let (true, Some(target)) = (joins_one, single_target) {
                        all.insert(target);
                    } else if ins.len() > 1 {
                        self.nodes[index].role = Role::Activity;
                        self.report.add(
                            EntryKind::Changed,
                            "parallel gateway",
                            &id,
                            &name,
                            "it joins and splits: it became an activity without events that waits for All its \
                             lines",
                        );
                        all.insert(index);
                    }
                }
                Gateway::Inclusive | Gateway::Complex if ins.len() > 1 => self.report.add(
                    EntryKind::Changed,
                    words(&self.nodes[index].element.name),
                    &id,
                    &name,
                    "flowdesk cannot wait for just the branches that were taken: the activity after it starts \
                     once for each branch that arrives (Any)",
                ),
                Gateway::Exclusive if outs.iter().filter(|&&e| self.edges[e].rule.is_some()).count() > 1 => {
                    self.report.add(
                        EntryKind::Changed,
                        "exclusive gateway",
                        &id,
                        &name,
                        "flowdesk follows every line whose rule is true, BPMN only the first: the rules must \
                         exclude each other",
                    )
                }
                Gateway::EventBased if self.race_of_a_wait_and_timers(&outs) => self.report.add(
                    EntryKind::Changed,
                    "event-based gateway",
                    &id,
                    &name,
                    "a wait racing timers: the wait became an asynchronous event, each timer an escalation of it \
                     that goes where the timer leads",
                ),
                Gateway::EventBased => {
                    self.nodes[index].role = Role::Activity;
                    self.report.add(
                        EntryKind::Problem,
                        "event-based gateway",
                        &id,
                        &name,
                        "flowdesk has no race between events: it became an activity without events and every \
                         branch after it is taken; wait with one asynchronous event and an escalation instead",
                    );
                }
                _ => {}
            }
        }
        all
    }

    /// An event-based gateway before one wait (a message, signal or
    /// conditional catch event, or a receive task) and timer catch events is
    /// what flowdesk says as an asynchronous event with escalations: the
    /// timers are made the wait's (as boundary events are their task's).
    fn race_of_a_wait_and_timers(&mut self, outs: &[usize]) -> bool {
        let mut waits = Vec::new();
        let mut timers = Vec::new();
        for &out in outs {
            let target = self.edges[out].target;
            let element = self.nodes[target].element;
            let definition = element
                .children
                .iter()
                .find(|c| c.ns == BPMN_NS && c.name.ends_with("EventDefinition"))
                .map(|d| d.name.as_str());
            let alone = self.in_edges(target).len() == 1;
            match (element.name.as_str(), definition) {
                ("intermediateCatchEvent", Some("timerEventDefinition")) if alone => timers.push(target),
                ("intermediateCatchEvent", Some(_)) | ("receiveTask", _) => waits.push(target),
                _ => return false,
            }
        }
        let [wait] = waits.as_slice() else { return false };
        for timer in timers {
            self.nodes[timer].role = Role::Boundary;
            self.raced.insert(timer, *wait);
        }
        true
    }

    /// Follows `edge` through dissolved gateways to the activities it
    /// reaches: (activity node, rules on the way, labels on the way).
    fn walk(
        &self,
        edge: usize,
        rules: &mut Vec<String>,
        labels: &mut Vec<String>,
        visiting: &mut Vec<usize>,
        found: &mut Vec<(usize, Vec<String>, Vec<String>)>,
    ) {
        let left = self.steps.get();
        if left == 0 {
            return;
        }
        self.steps.set(left - 1);
        let e = &self.edges[edge];
        let source_role = self.nodes[e.source].role;
        let (rules_before, labels_before) = (rules.len(), labels.len());
        let name = e.element.and_then(|el| el.attr("name")).unwrap_or_default();
        let parallel = source_role == Role::Gateway(Gateway::Parallel);
        match (&e.rule, parallel) {
            (Some(rule), false) => {
                rules.push(rule.text.clone());
                match &rule.unread {
                    Some(written) if name.is_empty() => labels.push(written.clone()),
                    Some(written) => labels.push(format!("{name}: {written}")),
                    None if !name.is_empty() => labels.push(name.to_owned()),
                    None => {}
                }
            }
            _ if e.is_default && !parallel => {
                let others: Vec<String> = self
                    .out_edges(e.source)
                    .into_iter()
                    .filter(|&o| o != edge && !self.edges[o].is_default)
                    .filter_map(|o| self.edges[o].rule.as_ref().map(|r| r.text.clone()))
                    .collect();
                if !others.is_empty() {
                    rules.push(others.iter().map(|o| format!("!({o})")).collect::<Vec<_>>().join(" && "));
                }
                if !name.is_empty() {
                    labels.push(name.to_owned());
                }
            }
            _ => {
                if !name.is_empty() {
                    labels.push(name.to_owned());
                }
            }
        }
        let target = e.target;
        match self.nodes[target].role {
            Role::Activity => found.push((target, rules.clone(), labels.clone())),
            Role::Boundary => {}
            Role::Gateway(_) if visiting.contains(&target) || visiting.len() > 256 => {}
            Role::Gateway(_) => {
                visiting.push(target);
                for out in self.out_edges(target) {
                    self.walk(out, rules, labels, visiting, found);
                }
                visiting.pop();
            }
        }
        rules.truncate(rules_before);
        labels.truncate(labels_before);
    }

    // ----- activities -----------------------------------------------------------

    fn activity(&mut self, index: usize, all: &HashSet<usize>) -> Option<ActivityDraft> {
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
            "callActivity" => {}
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
    fn due(&mut self, timer: &Element, id: &str, name: &str, kind: &str) -> (String, String) {
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
    fn report_extensions(&mut self, element: &Element, id: &str, name: &str) {
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

    fn escalations(
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

    // ----- diagram ----------------------------------------------------------------

    /// The diagram's bounds of each element of this process, by BPMN id.
    fn shapes(&self) -> HashMap<String, (f64, f64, f64, f64)> {
        let process_id = self.process.attr("id").unwrap_or_default();
        let collaborations: HashSet<&str> = self
            .root
            .children_named(BPMN_NS, "collaboration")
            .filter(|c| c.children_named(BPMN_NS, "participant").any(|p| p.attr("processRef") == Some(process_id)))
            .filter_map(|c| c.attr("id"))
            .collect();
        let planes: Vec<&Element> = self
            .root
            .children_named(BPMNDI_NS, "BPMNDiagram")
            .flat_map(|d| d.children_named(BPMNDI_NS, "BPMNPlane"))
            .collect();
        let mine: Vec<&Element> = planes
            .iter()
            .copied()
            .filter(|p| p.attr("bpmnElement").is_some_and(|e| e == process_id || collaborations.contains(e)))
            .collect();
        let chosen = if mine.is_empty() && planes.len() == 1 { planes } else { mine };
        let mut shapes = HashMap::new();
        for plane in chosen {
            for shape in plane.children_named(BPMNDI_NS, "BPMNShape") {
                let (Some(element), Some(bounds)) = (shape.attr("bpmnElement"), shape.child(DC_NS, "Bounds")) else {
                    continue;
                };
                let number =
                    |name| bounds.attr(name).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite());
                if let (Some(x), Some(y), Some(w), Some(h)) =
                    (number("x"), number("y"), number("width"), number("height"))
                {
                    shapes.entry(element.to_owned()).or_insert((x, y, w, h));
                }
            }
        }
        shapes
    }

    fn place(&mut self, drafts: &mut [ActivityDraft], activity_at: &HashMap<usize, usize>, lines: &[LineDraft]) {
        let shapes = self.shapes();
        let mut placed = vec![false; drafts.len()];
        for (&node, &a) in activity_at {
            let element = self.nodes[node].element;
            // Elements of a called process are drawn in a diagram of their own.
            if !self.nodes[node].prefix.is_empty() {
                continue;
            }
            let Some(&(x, y, w, h)) = element.attr("id").and_then(|id| shapes.get(id)) else { continue };
            let box_height = f64::from(activity_height(drafts[a].events.len()));
            let half_width = f64::from(ACTIVITY_WIDTH) / 2.0;
            let is_box = is_task(&element.name) || element.name == "callActivity";
            let (px, py) = if self.ours {
                // flowdesk's own diagram: exact, in canvas units.
                if is_box { (x, y) } else { (x + w / 2.0 - half_width, y + h / 2.0 - box_height / 2.0) }
            } else {
                let (cx, cy) = ((x + w / 2.0) * SCALE_X, (y + h / 2.0) * SCALE_Y);
                let grid = f64::from(GRID);
                (((cx - half_width) / grid).round() * grid, ((cy - box_height / 2.0) / grid).round() * grid)
            };
            let limit = f64::from(limits::COORDINATE);
            drafts[a].position = Position { x: px.clamp(-limit, limit) as f32, y: py.clamp(-limit, limit) as f32 };
            placed[a] = true;
        }
        if placed.iter().all(|p| *p) {
            return;
        }
        // The rest by depth from the start, left to right, below what the
        // diagram placed.
        let top = drafts
            .iter()
            .zip(&placed)
            .filter(|(_, p)| **p)
            .map(|(a, _)| a.position.y + activity_height(a.events.len()) + 80.0)
            .fold(60.0f32, f32::max);
        let index: HashMap<&str, usize> = drafts.iter().enumerate().map(|(i, a)| (a.id.as_str(), i)).collect();
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); drafts.len()];
        for line in lines {
            if let (Some(&f), Some(&t)) = (index.get(line.from.as_str()), index.get(line.to.as_str())) {
                next[f].push(t);
            }
        }
        let mut depth: Vec<Option<usize>> = vec![None; drafts.len()];
        let roots = (0..drafts.len()).filter(|&i| drafts[i].start).chain(0..drafts.len());
        for root in roots {
            if depth[root].is_some() {
                continue;
            }
            depth[root] = Some(0);
            let mut queue = VecDeque::from([root]);
            while let Some(at) = queue.pop_front() {
                for &to in &next[at] {
                    if depth[to].is_none() {
                        depth[to] = Some(depth[at].unwrap_or(0) + 1);
                        queue.push_back(to);
                    }
                }
            }
        }
        // A process deeper than `BAND_COLUMNS` goes on in bands below, as
        // lines of text do, so that it stays on the canvas.
        let mut rows: HashMap<usize, usize> = HashMap::new();
        let mut slots = Vec::new();
        for a in 0..drafts.len() {
            if placed[a] {
                continue;
            }
            let column = depth[a].unwrap_or(0);
            let row = rows.entry(column).or_insert(0);
            slots.push((a, column, *row));
            *row += 1;
        }
        let band_rows = rows.values().copied().max().unwrap_or(1) + 1;
        for (a, column, row) in slots {
            let (band, column) = (column / BAND_COLUMNS, column % BAND_COLUMNS);
            let y = top + ((band * band_rows + row) as f32) * 140.0;
            drafts[a].position = Position { x: 60.0 + column as f32 * 280.0, y: y.min(limits::COORDINATE) };
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

fn compose(rules: &[String]) -> String {
    match rules {
        [] => String::new(),
        [one] => one.clone(),
        many => many.iter().map(|r| format!("({r})")).collect::<Vec<_>>().join(" && "),
    }
}

/// A script in another language, kept as a Rhai comment under a note.
fn commented(language: &str, script: &str) -> String {
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

/// flowdesk's extension element `name` on `element`.
fn extension<'e>(element: &'e Element, name: &str) -> Option<&'e Element> {
    element.child(BPMN_NS, "extensionElements")?.child(FLOWDESK_NS, name)
}

/// The events an activity's flowdesk extension lists.
fn ours_events(element: &Element, ours: &Element) -> Vec<EventDraft> {
    let mut events = Vec::new();
    for child in ours.children.iter().filter(|c| c.ns == FLOWDESK_NS) {
        let get = |name| child.attr(name).unwrap_or_default().to_owned();
        let synchronous = child.attr("synchronous") != Some("false");
        match child.name.as_str() {
            "serverEvent" => {
                let script = match child.child(FLOWDESK_NS, "script") {
                    Some(script) => script.text.clone(),
                    // A script task's script is where BPMN keeps it, so that
                    // an edit in another tool is what flowdesk reads.
                    None if element.name == "scriptTask" => {
                        element.child(BPMN_NS, "script").map(|s| s.text.clone()).unwrap_or_default()
                    }
                    None => String::new(),
                };
                events.push(EventDraft::ServerEvent(ServerEventDraft { name: get("name"), synchronous, script }));
            }
            "httpRequest" => {
                let (headers, body) = request_parts(child);
                events.push(EventDraft::HttpRequest(HttpRequestDraft {
                    name: get("name"),
                    synchronous,
                    method: child.attr("method").unwrap_or(HttpRequestDraft::DEFAULT_METHOD).to_owned(),
                    url: get("url"),
                    headers,
                    body,
                    timeout_seconds: timeout(child),
                }));
            }
            "timer" => events.push(EventDraft::Timer(TimerDraft {
                name: get("name"),
                after: get("after"),
                at_field: get("atField"),
            })),
            _ => {}
        }
    }
    events
}

fn timeout(element: &Element) -> u64 {
    element.attr("timeoutSeconds").and_then(|t| t.parse().ok()).unwrap_or(HttpRequestDraft::DEFAULT_TIMEOUT_SECONDS)
}

fn request_parts(element: &Element) -> (Vec<HeaderDraft>, String) {
    let headers = element
        .children_named(FLOWDESK_NS, "header")
        .map(|h| HeaderDraft {
            name: h.attr("name").unwrap_or_default().to_owned(),
            value: h.attr("value").unwrap_or_default().to_owned(),
        })
        .collect();
    let body = element.child(FLOWDESK_NS, "body").map(|b| b.text.clone()).unwrap_or_default();
    (headers, body)
}

/// An escalation's action as flowdesk's extension writes it; a go-to's
/// target is the activity its flow reaches.
fn ours_action(ours: &Element, go_to: Option<String>) -> EscalationActionDraft {
    let Some(action) = ours.children.iter().find(|c| c.ns == FLOWDESK_NS) else {
        return EscalationActionDraft::Fail;
    };
    match action.name.as_str() {
        "finish" => EscalationActionDraft::Finish {
            set: action
                .children_named(FLOWDESK_NS, "set")
                .map(|s| {
                    let value = s.attr("value").unwrap_or_default();
                    let json =
                        serde_json::from_str(value).unwrap_or_else(|_| serde_json::Value::String(value.to_owned()));
                    (s.attr("field").unwrap_or_default().to_owned(), json)
                })
                .collect(),
        },
        "goTo" => EscalationActionDraft::GoTo {
            activity: go_to.or_else(|| action.attr("activity").map(str::to_owned)).unwrap_or_default(),
        },
        "repeat" => EscalationActionDraft::Repeat { times: action.attr("times").and_then(|t| t.parse().ok()) },
        "notify" => {
            let (headers, body) = request_parts(action);
            EscalationActionDraft::Notify(NotifyDraft {
                method: action.attr("method").unwrap_or(HttpRequestDraft::DEFAULT_METHOD).to_owned(),
                url: action.attr("url").unwrap_or_default().to_owned(),
                headers,
                body,
                timeout_seconds: timeout(action),
            })
        }
        _ => EscalationActionDraft::Fail,
    }
}
