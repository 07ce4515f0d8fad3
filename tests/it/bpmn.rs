//! BPMN 2.0 in and out: every sample survives export then import unchanged,
//! each row of the README's mapping table imports as it says (from the
//! files in `tests/data/bpmn/`, written for these tests in the shapes
//! BPMN tools write), malformed files are refused with a clear error, and
//! the exported files load in bpmn-moddle, the model library under bpmn.io,
//! without a warning (when Node.js is on the machine).

use std::path::{Path, PathBuf};

use flowdesk::model::bpmn::{self, EntryKind, ImportOptions, Imported, ImportedProcess};
use flowdesk::model::{
    EscalationActionDraft, EventDraft, PrecedingRule, ProcessDraft, Right, ScriptHost, Severity, validate,
};

use crate::common_cli::{Out, execute};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data(name: &str) -> PathBuf {
    root().join("tests/data/bpmn").join(name)
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".process.json"))
        .collect();
    files.sort();
    files
}

fn import_text(text: &str) -> Imported {
    bpmn::import(text, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The only process of a test file.
fn import_file(name: &str) -> ImportedProcess {
    let text = bpmn::read_file(&data(name)).unwrap();
    let mut imported = import_text(&text);
    assert_eq!(imported.processes.len(), 1, "{name}");
    imported.processes.remove(0)
}

fn round_trip(draft: &ProcessDraft) -> ProcessDraft {
    let text = bpmn::export(draft).unwrap();
    let mut imported = import_text(&text);
    assert_eq!(imported.processes.len(), 1);
    let process = imported.processes.remove(0);
    assert!(process.report.is_empty(), "{:#?}", process.report);
    process.draft
}

/// The files the round trip is checked on: every sample, and a file that
/// holds every property a process can (some of them wrong on purpose: a
/// draft being edited is exported as it is).
fn round_trip_files() -> Vec<PathBuf> {
    let mut files = samples();
    files.push(data("everything.process.json"));
    files.push(data("unfinished.process.json"));
    files
}

#[test]
fn bpmn_every_sample_survives_export_then_import() {
    for path in round_trip_files() {
        let draft = ProcessDraft::load(&path).unwrap();
        let again = round_trip(&draft);
        assert_eq!(again, draft, "{}", path.display());
        // And once more: what was imported exports to the same file.
        assert_eq!(bpmn::export(&again).unwrap(), bpmn::export(&draft).unwrap());
    }
}

/// An exported file is BPMN another tool reads: one shape per activity
/// where flowdesk draws its box, waypoints on every flow, and the kinds of
/// element that say most about each activity.
#[test]
fn bpmn_export_draws_the_same_diagram_in_bpmn_terms() {
    let draft = ProcessDraft::load(&root().join("samples/purchase-approval.process.json")).unwrap();
    let text = bpmn::export(&draft).unwrap();
    let tree = bpmn::xml::parse(&text).unwrap();
    let process = tree.child(bpmn::BPMN_NS, "process").unwrap();
    let kind_of = |id: &str| process.children.iter().find(|c| c.attr("id") == Some(id)).map(|c| c.name.clone());
    assert_eq!(kind_of("submit").as_deref(), Some("scriptTask"), "a synchronous server event");
    assert_eq!(kind_of("budget").as_deref(), Some("serviceTask"), "an asynchronous one with a script");
    assert_eq!(kind_of("decide_join").as_deref(), Some("parallelGateway"), "All is a parallel join in front");
    let script = process.children.iter().find(|c| c.attr("id") == Some("submit")).unwrap();
    assert_eq!(script.attr("scriptFormat"), Some("rhai"));
    assert!(script.child(bpmn::BPMN_NS, "script").unwrap().text.starts_with("status = \"submitted\";"));
    let rule = process
        .children_named(bpmn::BPMN_NS, "sequenceFlow")
        .find(|f| f.attr("name") == Some("approved"))
        .and_then(|f| f.child(bpmn::BPMN_NS, "conditionExpression"))
        .unwrap();
    assert_eq!((rule.text.as_str(), rule.attr("language")), ("approved", Some("rhai")));

    let plane = tree.child(bpmn::BPMNDI_NS, "BPMNDiagram").unwrap().child(bpmn::BPMNDI_NS, "BPMNPlane").unwrap();
    let bounds = |id: &str| {
        let shape = plane.children.iter().find(|s| s.attr("bpmnElement") == Some(id)).unwrap();
        let b = shape.child(bpmn::DC_NS, "Bounds").unwrap();
        ["x", "y", "width"].map(|a| b.attr(a).unwrap().parse::<f32>().unwrap())
    };
    for activity in &draft.activities {
        let [x, y, width] = bounds(&activity.id);
        assert_eq!((x, y, width), (activity.position.x, activity.position.y, 210.0), "{}", activity.id);
    }
    let flows = process.children_named(bpmn::BPMN_NS, "sequenceFlow").count();
    let edges: Vec<usize> = plane
        .children_named(bpmn::BPMNDI_NS, "BPMNEdge")
        .map(|e| e.children_named(bpmn::DI_NS, "waypoint").count())
        .collect();
    assert_eq!(edges.len(), flows, "every flow is drawn");
    assert!(edges.iter().all(|&n| n >= 2), "{edges:?}");
}

/// bpmn-moddle, the model library under bpmn.io and Camunda Modeler, loads
/// every exported file without a warning. Runs where Node.js is; `.ci/run`
/// installs it and the library and then requires this check.
#[test]
fn bpmn_exported_files_load_in_bpmn_moddle_without_warnings() {
    let checker = root().join("tests/bpmn-moddle");
    let required = std::env::var_os("FLOWDESK_REQUIRE_BPMN_MODDLE").is_some();
    let node = std::process::Command::new("node").arg("--version").output().is_ok_and(|o| o.status.success());
    if !node || !checker.join("node_modules/bpmn-moddle").exists() {
        assert!(!required, "bpmn-moddle is required here: `npm ci --prefix tests/bpmn-moddle` (node: {node})");
        eprintln!("skipped: no Node.js or no bpmn-moddle (`npm ci --prefix tests/bpmn-moddle` installs it)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for path in round_trip_files() {
        let draft = ProcessDraft::load(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().replace(".process.json", ".bpmn");
        let target = dir.path().join(name);
        std::fs::write(&target, bpmn::export(&draft).unwrap()).unwrap();
        files.push(target);
    }
    // A deployed process's rights, in the extension.
    let rights = dir.path().join("with-rights.bpmn");
    let draft = ProcessDraft::load(&data("everything.process.json")).unwrap();
    std::fs::write(&rights, bpmn::export_with_rights(&draft, &some_rights()).unwrap()).unwrap();
    files.push(rights);
    // What was imported from other tools' files exports as well.
    for name in ["order-camunda.bpmn", "gateways-bpmn2-no-di.bpmn", "events-semantic.bpmn", "odd-shapes.bpmn"] {
        let target = dir.path().join(format!("again-{name}"));
        std::fs::write(&target, bpmn::export(&import_file(name).draft).unwrap()).unwrap();
        files.push(target);
    }
    let resaved = tempfile::tempdir().unwrap();
    let output = std::process::Command::new("node")
        .arg(checker.join("check.mjs"))
        .arg("--resave")
        .arg(resaved.path())
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    // The library saw what was written: a line per file, no warnings.
    assert_eq!(stdout.lines().count(), files.len(), "{stdout}");
    for line in stdout.lines() {
        let report: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(report["warnings"], serde_json::json!([]), "{line}");
        assert!(report["diagramElements"].as_u64().unwrap() > 0, "{line}");
    }
    // Opened and saved again by the library, flowdesk's files still give
    // back their process: the extension survives another tool. (A carriage
    // return in a script does not: the library writes it as it is, and XML
    // reads a line break for it.)
    for path in round_trip_files() {
        let mut draft = ProcessDraft::load(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().replace(".process.json", ".bpmn");
        let text = std::fs::read_to_string(resaved.path().join(name)).unwrap();
        for event in draft.activities.iter_mut().flat_map(|a| a.events.iter_mut()) {
            if let EventDraft::ServerEvent(server) = event {
                server.script = server.script.replace("\r\n", "\n");
            }
        }
        assert_eq!(import_text(&text).processes[0].draft, draft, "{}", path.display());
    }
}

// ----- the mapping, row by row ---------------------------------------------------

/// Each event of an activity as (kind, synchronous, script).
fn events(process: &ImportedProcess, id: &str) -> Vec<(&'static str, bool, String)> {
    let activity = process.draft.activity(id).unwrap_or_else(|| panic!("no activity {id}"));
    activity
        .events
        .iter()
        .map(|event| match event {
            EventDraft::ServerEvent(e) => ("server", e.synchronous, e.script.clone()),
            EventDraft::HttpRequest(e) => ("http", e.synchronous, String::new()),
            EventDraft::Timer(e) => ("timer", false, format!("{}{}", e.after, e.at_field)),
            EventDraft::Mail(e) => ("mail", e.synchronous, e.to.clone()),
            EventDraft::Ipc(e) => ("ipc", e.synchronous, e.process.clone()),
        })
        .collect()
}

/// Every line as (from, to, rule, label).
fn lines(process: &ImportedProcess) -> Vec<(&str, &str, &str, &str)> {
    process.draft.lines.iter().map(|l| (l.from.as_str(), l.to.as_str(), l.rule.as_str(), l.label.as_str())).collect()
}

/// Whether the report has an entry of this kind about the element with this id.
fn reported(process: &ImportedProcess, kind: EntryKind, element: &str, id: &str) -> bool {
    process.report.entries().iter().any(|e| e.kind == kind && e.element == element && e.id == id)
}

fn is_valid(draft: &ProcessDraft) -> bool {
    validate(draft, &ScriptHost::default()).iter().all(|p| p.severity != Severity::Error)
}

#[test]
fn bpmn_camunda_modeler_file_maps_row_by_row() {
    let process = import_file("order-camunda.bpmn");
    let draft = &process.draft;
    assert_eq!(draft.name, "Order handling");
    assert_eq!(draft.description, "An order is reviewed by a clerk, then shipped or rejected.");
    // Start event: the start activity, no events; end events: no events, no lines out.
    let start = draft.activity("StartEvent_1").unwrap();
    assert!(start.start && start.events.is_empty() && start.name == "Order received");
    for end in ["Event_shipped", "Event_rejected", "Event_timeout"] {
        assert!(events(&process, end).is_empty());
        assert!(draft.lines.iter().all(|l| l.from != end), "{end}");
    }
    // A user task: one synchronous server event, said in the report.
    assert_eq!(events(&process, "Activity_review"), [("server", true, String::new())]);
    assert!(reported(&process, EntryKind::Changed, "user task", "Activity_review"));
    // An external service task waits for its worker: asynchronous.
    assert_eq!(events(&process, "Activity_ship"), [("server", false, String::new())]);
    // A JavaScript script is kept as a comment and reported.
    let reject = events(&process, "Activity_reject");
    let [(_, true, script)] = reject.as_slice() else { panic!("{reject:?}") };
    assert!(script.contains("// execution.setVariable(\"notified\", true);"), "{script}");
    assert!(reported(&process, EntryKind::Problem, "script task", "Activity_reject"));
    // The gateway dissolved: JUEL read as Rhai, the default fires exactly when the other does not.
    let rule = "approved && amount < 10000";
    assert_eq!(
        lines(&process),
        [
            ("StartEvent_1", "Activity_review", "", ""),
            ("Activity_review", "Activity_ship", rule, "yes"),
            ("Activity_review", "Activity_reject", "!(approved && amount < 10000)", "no"),
            ("Activity_ship", "Event_shipped", "", ""),
            ("Activity_reject", "Event_rejected", "", ""),
        ]
    );
    assert!(reported(&process, EntryKind::Changed, "condition", "Flow_approved"));
    // Form fields become fields.
    let fields: Vec<(&str, &str)> = draft.fields.iter().map(|f| (f.name.as_str(), f.field_type.as_str())).collect();
    assert_eq!(fields, [("amount", "integer"), ("approved", "boolean"), ("comment", "string")]);
    // The boundary timer: an escalation that goes to its flow's target.
    let review = draft.activity("Activity_review").unwrap();
    assert_eq!(review.escalations.len(), 1);
    assert_eq!((review.escalations[0].name.as_str(), review.escalations[0].after.as_str()), ("2 hours", "PT2H"));
    assert_eq!(review.escalations[0].action, EscalationActionDraft::GoTo { activity: "Event_timeout".to_owned() });
    // Pools, lanes, annotations, data objects, message flows, other engines' settings: named.
    for (element, id) in [
        ("lane", "Lane_sales"),
        ("lane", "Lane_warehouse"),
        ("text annotation", "TextAnnotation_0p1z9y8"),
        ("data object reference", "DataObjectReference_invoice"),
        ("camunda:executionListener", "Activity_review"),
    ] {
        assert!(reported(&process, EntryKind::Ignored, element, id), "{element} {id}");
    }
    let file = bpmn::import(&std::fs::read_to_string(data("order-camunda.bpmn")).unwrap(), &ImportOptions::default())
        .unwrap()
        .report;
    let file_level: Vec<String> = file.entries().iter().map(|e| e.to_string()).collect();
    assert!(
        file_level.contains(&"ignored: pool `Customer` (id Participant_Customer): a pool without a process".to_owned())
    );
    assert!(file.entries().iter().any(|e| e.element == "message flow" && e.id == "MessageFlow_0c2fq7j"));
    // The diagram: each box where the shape's centre was, scaled, on the grid.
    let review = draft.activity("Activity_review").unwrap().position;
    assert_eq!((review.x % 20.0, review.y % 20.0), (0.0, 0.0));
    let ship = draft.activity("Activity_ship").unwrap().position;
    assert!(ship.x > review.x && ship.y > review.y, "left to right, top to bottom as drawn");
    // A deadline on a task that does not wait is a warning, not an error.
    assert!(is_valid(draft));
}

#[test]
fn bpmn_gateways_without_a_diagram_map_to_rules_joins_and_a_layout() {
    let process = import_file("gateways-bpmn2-no-di.bpmn");
    let draft = &process.draft;
    // Parallel split: lines without rules; parallel join: the next activity's All.
    assert_eq!(draft.activity("rate").unwrap().preceding_rule, PrecedingRule::All);
    assert_eq!(draft.activity("end").unwrap().preceding_rule, PrecedingRule::Any, "exclusive merge: Any");
    assert_eq!(
        lines(&process),
        [
            ("start", "credit", "", ""),
            ("start", "stock", "", ""),
            ("credit", "rate", "", ""),
            ("stock", "rate", "", ""),
            ("rate", "call", "score > 80", "big"),
            ("rate", "wait", "prepaid == false", ""),
            ("rate", "file", "!(score > 80) && !(prepaid == false)", "otherwise"),
            ("call", "end", "", ""),
            ("wait", "end", "", ""),
            ("file", "end", "", ""),
        ]
    );
    // Tasks: synchronous server events; a receive task waits.
    for task in ["credit", "stock", "rate", "call", "file"] {
        assert_eq!(events(&process, task), [("server", true, String::new())], "{task}");
    }
    assert_eq!(events(&process, "wait"), [("server", false, String::new())]);
    assert!(reported(&process, EntryKind::Changed, "manual task", "call"));
    assert!(reported(&process, EntryKind::Changed, "condition", "f3"), "a condition after a parallel split is unused");
    assert!(reported(&process, EntryKind::Ignored, "documentation", "credit"));
    // The variables the rules use became fields, typed by their use.
    let fields: Vec<(&str, &str)> = draft.fields.iter().map(|f| (f.name.as_str(), f.field_type.as_str())).collect();
    assert_eq!(fields, [("score", "integer"), ("prepaid", "boolean")]);
    // No diagram: left to right by depth, parallel branches one under the other.
    let at = |id: &str| draft.activity(id).unwrap().position;
    assert!(at("start").x < at("credit").x && at("credit").x < at("rate").x && at("rate").x < at("call").x);
    assert_eq!(at("credit").x, at("stock").x);
    assert!(at("credit").y < at("stock").y);
    assert!(is_valid(draft), "{:#?}", validate(draft, &ScriptHost::default()));
}

#[test]
fn bpmn_events_sub_processes_and_calls_in_the_semantic_prefix() {
    let text = std::fs::read_to_string(data("events-semantic.bpmn")).unwrap();
    let imported = import_text(&text);
    assert_eq!(imported.processes.len(), 1, "the called process is not executable and is flattened");
    let process = &imported.processes[0];
    // Message catch: asynchronous; timer catch: a timer event; a Rhai script task keeps its script.
    assert_eq!(events(process, "sid-paid"), [("server", false, String::new())]);
    assert_eq!(events(process, "sid-cool"), [("timer", false, "PT30M".to_owned())]);
    assert_eq!(events(process, "sid-book"), [("server", true, "log(\"booked\");".to_owned())]);
    // The sub-process and the called process are flattened, each with a warning.
    assert!(reported(process, EntryKind::Flattened, "sub process", "sid-pack"));
    assert!(reported(process, EntryKind::Flattened, "call activity", "sid-invoice"));
    let path: Vec<(&str, &str, &str, &str)> = lines(process);
    for step in [
        ("sid-book", "sid-pack-start"),
        ("sid-pack-start", "sid-pick"),
        ("sid-pack-end", "sid-invoice/inv-start"),
        ("sid-invoice/inv-write", "sid-invoice/inv-end"),
        ("sid-invoice/inv-end", "sid-end"),
    ] {
        assert!(path.iter().any(|(f, t, _, _)| (*f, *t) == step), "{step:?} in {path:?}");
    }
    assert!(!process.draft.activity("sid-pack-start").unwrap().start, "only the process's own start starts it");
    assert!(reported(process, EntryKind::Changed, "terminate end event", "sid-end"));
    assert_eq!(process.report.entries().len(), 3, "nothing else, not a sub-process's own links: {:#?}", process.report);
    assert!(is_valid(&process.draft), "{:#?}", validate(&process.draft, &ScriptHost::default()));
}

#[test]
fn bpmn_feel_conditions_and_a_deadline_in_the_default_namespace() {
    let process = import_file("camunda8-default-ns.bpmn");
    let rules: Vec<(&str, &str, &str, &str)> = lines(&process);
    assert!(rules.contains(&("assess", "expert", "amount > 1000 && !(fraud)", "big")), "{rules:?}");
    assert!(rules.contains(&("assess", "pay", "amount <= 1000", "small")), "{rules:?}");
    // A condition that is not Rhai: kept as label and rule, a problem to fix.
    let odd = "=some(x in items satisfies x.price < 0)";
    assert!(rules.contains(&("assess", "escalate", odd, odd)), "{rules:?}");
    assert!(reported(&process, EntryKind::Problem, "condition", "odd"));
    assert!(!is_valid(&process.draft), "the problem keeps it from validating");
    // The timer on the wait: an escalation at the date a field holds.
    let expert = process.draft.activity("expert").unwrap();
    assert_eq!(expert.escalations[0].at_field, "reply_by");
    assert_eq!(expert.escalations[0].action, EscalationActionDraft::GoTo { activity: "escalate".to_owned() });
    let fields: Vec<(&str, &str)> =
        process.draft.fields.iter().map(|f| (f.name.as_str(), f.field_type.as_str())).collect();
    // The words of a condition that is not Rhai (`x`, `items`) are no fields.
    assert_eq!(fields, [("amount", "integer"), ("fraud", "boolean"), ("reply_by", "datetime")]);
    assert!(reported(&process, EntryKind::Ignored, "zeebe:taskDefinition", "assess"));
}

#[test]
fn bpmn_what_flowdesk_cannot_take_over_is_named_never_dropped() {
    let process = import_file("odd-shapes.bpmn");
    for (kind, element, id) in [
        (EntryKind::Changed, "event-based gateway", "race"),
        (EntryKind::Changed, "user task", "work"),
        (EntryKind::Changed, "terminate end event", "stop"),
        (EntryKind::Ignored, "non-interrupting timer boundary event", "remind"),
        (EntryKind::Ignored, "error boundary event", "broken"),
        (EntryKind::Ignored, "sequence flow", "o9"),
        (EntryKind::Ignored, "group", "grp"),
        (EntryKind::Changed, "process", "odd_shapes"),
        (EntryKind::Changed, "name", "work"),
    ] {
        assert!(reported(&process, kind, element, id), "{kind:?} {element} {id}: {:#?}", process.report);
    }
    let draft = &process.draft;
    // No start event: the one element nothing leads to starts.
    assert!(draft.activity("first").unwrap().start);
    // A wait racing a timer: the wait's escalation goes where the timer leads.
    let reply = draft.activity("reply").unwrap();
    assert_eq!(events(&process, "reply"), [("server", false, String::new())]);
    assert_eq!(reply.escalations.len(), 1);
    assert_eq!((reply.escalations[0].name.as_str(), reply.escalations[0].after.as_str()), ("A day", "P1D"));
    assert_eq!(reply.escalations[0].action, EscalationActionDraft::GoTo { activity: "stop".to_owned() });
    assert!(draft.activity("late").is_none(), "the timer is the escalation, not an activity");
    assert!(lines(&process).contains(&("first", "reply", "", "")));
    // A link throw goes on at its catch.
    assert!(lines(&process).iter().any(|(f, t, _, _)| (*f, *t) == ("go", "land")));
    // Names stay unique; an unnamed task is named after its kind.
    assert_eq!(draft.activity("work").unwrap().name, "Check (work)");
    assert_eq!(draft.activity("mail").unwrap().name, "Task");
    assert!(is_valid(draft), "{:#?}", validate(draft, &ScriptHost::default()));
}

#[test]
fn bpmn_an_event_based_gateway_flowdesk_cannot_say_is_a_problem() {
    let text = r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
      <process id="p" isExecutable="true">
        <startEvent id="s"/><eventBasedGateway id="g" name="Either"/>
        <intermediateCatchEvent id="yes"><messageEventDefinition/></intermediateCatchEvent>
        <intermediateCatchEvent id="no"><signalEventDefinition/></intermediateCatchEvent>
        <sequenceFlow id="f1" sourceRef="s" targetRef="g"/>
        <sequenceFlow id="f2" sourceRef="g" targetRef="yes"/>
        <sequenceFlow id="f3" sourceRef="g" targetRef="no"/>
      </process></definitions>"#;
    let process = import_text(text).processes.remove(0);
    assert!(reported(&process, EntryKind::Problem, "event-based gateway", "g"));
    assert_eq!(lines(&process), [("s", "g", "", ""), ("g", "yes", "", ""), ("g", "no", "", "")]);
}

#[test]
fn bpmn_a_collaboration_imports_each_executable_process_or_the_one_asked_for() {
    let text = std::fs::read_to_string(data("two-pools.bpmn")).unwrap();
    let both = import_text(&text);
    let names: Vec<(&str, &str)> = both.processes.iter().map(|p| (p.id.as_str(), p.draft.name.as_str())).collect();
    assert_eq!(names, [("Process_buyer", "Buyer"), ("Process_seller", "Selling")], "a pool names a nameless process");
    let options = ImportOptions { process: Some("Process_seller".to_owned()) };
    let one = bpmn::import(&text, &options).unwrap();
    assert_eq!(one.processes.len(), 1);
    assert_eq!(one.processes[0].id, "Process_seller");
    assert!(one.report.entries().iter().any(|e| e.element == "process" && e.id == "Process_buyer"));
    let wrong = bpmn::import(&text, &ImportOptions { process: Some("nope".to_owned()) }).unwrap_err();
    assert_eq!(wrong.to_string(), "the file has no process `nope`; its processes: Process_buyer, Process_seller");
}

// ----- malformed files ---------------------------------------------------------------

#[test]
fn bpmn_malformed_files_are_refused_with_a_clear_error() {
    let error = |name: &str| {
        let text = bpmn::read_file(&data(name)).unwrap();
        bpmn::import(&text, &ImportOptions::default()).unwrap_err().to_string()
    };
    let truncated = error("truncated.bpmn");
    assert!(truncated.starts_with("not an XML file flowdesk can read: line 5"), "{truncated}");
    assert_eq!(truncated.matches("line 5").count(), 1, "said once: {truncated}");
    assert_eq!(
        error("wrong-root.bpmn"),
        "not a BPMN 2.0 file: its root element is `process` in namespace http://www.example.org/not-bpmn, not BPMN \
         2.0's `definitions`"
    );
    let laughs = error("billion-laughs.bpmn");
    assert!(laughs.contains("line 2: the file declares a DOCTYPE"), "{laughs}");
    for (text, expected) in [
        ("", "the file holds no element"),
        ("{\"name\": \"a process file\"}", "line 1, column 1"),
        (r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>"#, "the file holds no process"),
        (
            r#"<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&bomb;</bpmn:definitions>"#,
            "&bomb;",
        ),
    ] {
        let err = bpmn::import(text, &ImportOptions::default()).unwrap_err().to_string();
        assert!(err.contains(expected), "{text}: {err}");
    }
}

#[test]
fn bpmn_a_file_over_the_limit_is_refused_before_it_is_read_whole() {
    let dir = tempfile::tempdir().unwrap();
    let huge = dir.path().join("huge.bpmn");
    // 100 MB, sparse: no disk is spent, and the reading stops at the limit.
    std::fs::File::create(&huge).unwrap().set_len(100 * 1024 * 1024).unwrap();
    let err = bpmn::read_file(&huge).unwrap_err().to_string();
    assert!(err.ends_with("is larger than the 16 MiB a BPMN file may be"), "{err}");
    let latin1 = dir.path().join("latin1.bpmn");
    std::fs::write(&latin1, b"<definitions name=\"caf\xe9\"/>").unwrap();
    assert!(bpmn::read_file(&latin1).unwrap_err().to_string().contains("is not UTF-8 text"));
}

// ----- the command line ------------------------------------------------------------

/// `flowdesk --db <temp>/flowdesk.db ARGS`, in a clean environment, from `dir`.
fn flowdesk(dir: &Path, args: &[&str]) -> Out {
    flowdesk_as(dir, "ada", args)
}

/// [`flowdesk`] as `user`.
fn flowdesk_as(dir: &Path, user: &str, args: &[&str]) -> Out {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flowdesk"));
    command
        .current_dir(dir)
        .env_remove("FLOWDESK_DB")
        .env_remove("FLOWDESK_USER")
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("HOME", dir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .arg("--db")
        .arg(dir.join("flowdesk.db"))
        .args(["--user", user])
        .args(args);
    execute(command, &args.join(" "))
}

#[test]
fn bpmn_cli_import_says_what_it_did_and_exits_by_validity() {
    let dir = tempfile::tempdir().unwrap();
    let path = |name: &str| data(name).to_string_lossy().into_owned();

    let valid = flowdesk(dir.path(), &["import", &path("order-camunda.bpmn"), "-o", "order.process.json"]);
    assert_eq!(valid.code, Some(0), "{valid:?}");
    assert!(valid.stdout.contains("ignored: pool `Customer` (id Participant_Customer)"), "{}", valid.stdout);
    assert!(
        valid.stdout.contains("  ignored: lane `Sales` (id Lane_sales): flowdesk has no lanes"),
        "{}",
        valid.stdout
    );
    let written = ProcessDraft::load(&dir.path().join("order.process.json")).unwrap();
    assert_eq!(written.name, "Order handling");

    let invalid =
        flowdesk(dir.path(), &["import", &path("camunda8-default-ns.bpmn"), "-o", "claims.process.json", "--json"]);
    assert_eq!(invalid.code, Some(1), "{invalid:?}");
    assert!(dir.path().join("claims.process.json").exists(), "written all the same, to be fixed");
    let answer: serde_json::Value = serde_json::from_str(&invalid.stdout).unwrap();
    let process = &answer["processes"][0];
    assert_eq!(process["valid"], false);
    assert!(process["report"].as_array().unwrap().iter().any(|e| e["kind"] == "problem" && e["id"] == "odd"));
    assert!(process["problems"].as_array().unwrap().iter().any(|p| p["severity"] == "Error"));
    assert_eq!(invalid.stderr_lines().len(), 1, "{}", invalid.stderr);

    // Several processes: a file each; --process picks one.
    let pools = flowdesk(dir.path(), &["import", &path("two-pools.bpmn"), "-o", "trade.process.json"]);
    assert_eq!(pools.code, Some(0), "{pools:?}");
    assert!(dir.path().join("trade.Process_buyer.process.json").exists());
    assert!(dir.path().join("trade.Process_seller.process.json").exists());
    let one = flowdesk(
        dir.path(),
        &["import", &path("two-pools.bpmn"), "-o", "seller.process.json", "--process", "Process_seller"],
    );
    assert_eq!(one.code, Some(0), "{one:?}");
    assert_eq!(ProcessDraft::load(&dir.path().join("seller.process.json")).unwrap().name, "Selling");

    // A broken file: one clear line, nothing written; usage: 2.
    let broken = flowdesk(dir.path(), &["import", &path("billion-laughs.bpmn"), "-o", "laughs.process.json"]);
    assert_eq!(broken.code, Some(1));
    assert_eq!(broken.stderr_lines().len(), 1, "{}", broken.stderr);
    assert_eq!(broken.stderr.matches("DOCTYPE").count(), 1, "said once: {}", broken.stderr);
    assert!(!dir.path().join("laughs.process.json").exists());
    let usage = flowdesk(dir.path(), &["import", &path("order-camunda.bpmn")]);
    assert_eq!(usage.code, Some(2), "no -o: {usage:?}");
}

#[test]
fn bpmn_cli_export_then_import_then_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let sample = root().join("samples/purchase-approval.process.json");
    let exported = flowdesk(dir.path(), &["export", &sample.to_string_lossy(), "-o", "approval.bpmn"]);
    assert_eq!(exported.code, Some(0), "{exported:?}");
    assert_eq!(exported.stdout, "exported `purchase-approval` as BPMN 2.0 to approval.bpmn\n");

    let imported = flowdesk(dir.path(), &["import", "approval.bpmn", "-o", "again.process.json"]);
    assert_eq!(imported.code, Some(0), "{imported:?}");
    assert_eq!(
        ProcessDraft::load(&dir.path().join("again.process.json")).unwrap(),
        ProcessDraft::load(&sample).unwrap()
    );

    // Deploying the BPMN file deploys the process it holds.
    let deployed = flowdesk(dir.path(), &["deploy", "approval.bpmn"]);
    assert_eq!(deployed.code, Some(0), "{deployed:?}");
    assert!(deployed.stdout.starts_with("purchase-approval version 1"), "{}", deployed.stdout);
    let deployed = flowdesk(dir.path(), &["deploy", &data("gateways-bpmn2-no-di.bpmn").to_string_lossy()]);
    assert_eq!(deployed.code, Some(0), "{deployed:?}");
    assert!(deployed.stdout.starts_with("Gateways version 1"), "{}", deployed.stdout);
    assert!(
        deployed.stderr.contains("changed: manual task `Call customer`"),
        "the report, on stderr: {}",
        deployed.stderr
    );
    let refused = flowdesk(dir.path(), &["deploy", &data("camunda8-default-ns.bpmn").to_string_lossy()]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
}

/// Gateways after gateways multiply the paths a flow can take (here 2^60);
/// the import follows a bounded number of them and says so, and a long
/// process imports in one go.
#[test]
fn bpmn_a_tangle_of_gateways_and_a_long_process_import_in_bounded_work() {
    let mut xml = String::from(
        r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p" isExecutable="true"><startEvent id="s"/>"#,
    );
    let mut previous = "s".to_owned();
    for i in 0..60 {
        xml.push_str(&format!(
            r#"<exclusiveGateway id="x{i}"/><exclusiveGateway id="m{i}"/>
            <sequenceFlow id="a{i}" sourceRef="{previous}" targetRef="x{i}"/>
            <sequenceFlow id="b{i}" sourceRef="x{i}" targetRef="m{i}"/>
            <sequenceFlow id="c{i}" sourceRef="x{i}" targetRef="m{i}"/>"#
        ));
        previous = format!("m{i}");
    }
    xml.push_str(&format!(r#"<endEvent id="e"/><sequenceFlow id="z" sourceRef="{previous}" targetRef="e"/>"#));
    xml.push_str("</process></definitions>");
    let process = import_text(&xml).processes.remove(0);
    assert!(reported(&process, EntryKind::Problem, "process", "p"), "{:#?}", process.report);

    let long = |tasks: usize| {
        let mut xml = String::from(
            r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="long" isExecutable="true"><startEvent id="t0"/>"#,
        );
        for i in 1..=tasks {
            xml.push_str(&format!(
                r#"<task id="t{i}" name="Task {i}"/><sequenceFlow id="f{i}" sourceRef="t{}" targetRef="t{i}"/>"#,
                i - 1
            ));
        }
        xml.push_str("</process></definitions>");
        xml
    };
    let process = import_text(&long(999)).processes.remove(0);
    assert_eq!((process.draft.activities.len(), process.draft.lines.len()), (1000, 999));
    let on_canvas = |a: &flowdesk::model::ActivityDraft| a.position.x < 12_000.0;
    assert!(process.draft.activities.iter().all(on_canvas), "a long process goes on in bands below");
    assert!(is_valid(&process.draft), "{:#?}", validate(&process.draft, &ScriptHost::default()));
    let too_long = bpmn::import(&long(20_000), &ImportOptions::default()).unwrap_err().to_string();
    assert_eq!(
        too_long,
        "the process `long` would have 20001 activities and 20000 lines; a flowdesk process holds at most 1000 \
         activities and 2000 lines"
    );
}

/// Whatever a file holds, the import answers: a draft with its report or a
/// clear error, never a panic. Every test file cut short at many places,
/// and shapes no tool should write (gateways in a ring, a boundary event on
/// a gateway, a flow into a boundary event, a call of a process that calls
/// it back).
#[test]
fn bpmn_no_file_makes_the_import_panic() {
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(root().join("tests/data/bpmn")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bpmn") {
            texts.push(std::fs::read_to_string(&path).unwrap());
        }
    }
    let mut cut = 0;
    for text in &texts {
        for at in (0..text.len()).step_by(37) {
            if text.is_char_boundary(at) {
                let _ = bpmn::import(&text[..at], &ImportOptions::default());
                cut += 1;
            }
        }
    }
    assert!(cut > 500, "{cut}");
    let odd = r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
      <process id="p" isExecutable="true">
        <startEvent id="s"/><exclusiveGateway id="g1"/><exclusiveGateway id="g2"/><parallelGateway id="g3"/>
        <boundaryEvent id="b" attachedToRef="g1"><timerEventDefinition/></boundaryEvent>
        <boundaryEvent id="b2" attachedToRef="nothing"/>
        <callActivity id="c" calledElement="q"/>
        <subProcess id="empty"/>
        <sequenceFlow id="f1" sourceRef="s" targetRef="g1"/>
        <sequenceFlow id="f2" sourceRef="g1" targetRef="g2"/>
        <sequenceFlow id="f3" sourceRef="g2" targetRef="g1"/>
        <sequenceFlow id="f4" sourceRef="g2" targetRef="g3"/>
        <sequenceFlow id="f5" sourceRef="g3" targetRef="b"/>
        <sequenceFlow id="f6" sourceRef="s" targetRef="c"/>
        <sequenceFlow id="f7" sourceRef="c" targetRef="empty"/>
        <sequenceFlow id="f8" sourceRef="empty" targetRef="s"/>
        <sequenceFlow id="f9"/>
      </process>
      <process id="q"><callActivity id="back" calledElement="p"/></process>
    </definitions>"#;
    let imported = import_text(odd);
    let process = &imported.processes[0];
    assert!(reported(process, EntryKind::Ignored, "boundary event", "b"), "{:#?}", process.report);
    assert!(reported(process, EntryKind::Problem, "call activity", "back"), "{:#?}", process.report);
    assert!(reported(process, EntryKind::Ignored, "sequence flow", "f9"), "{:#?}", process.report);
}

/// `flowdesk import … | head -1`: the import is done when whoever reads
/// its report stops reading; that is no error.
#[test]
fn bpmn_cli_import_to_a_closed_pipe_succeeds_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_flowdesk"))
        .current_dir(dir.path())
        .env("HOME", dir.path())
        .arg("import")
        .arg(data("order-camunda.bpmn"))
        .args(["-o", "order.process.json"])
        .stdout(writer)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!((output.status.code(), stderr.as_ref()), (Some(0), ""));
    assert!(dir.path().join("order.process.json").exists());
}

// ----- an imported process runs ------------------------------------------------

/// A receive task with a two-hour timer on it, as Camunda Modeler draws a
/// wait with a deadline: imported, deployed and run, the callback wins
/// before the deadline and the deadline wins after it.
#[test]
fn bpmn_an_imported_wait_with_a_deadline_runs_as_drawn() {
    use crate::support::{Fixture, parse_serial};
    use flowdesk::engine::InstanceStatus;
    let text = r#"<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">
      <bpmn:process id="reply" name="Reply" isExecutable="true">
        <bpmn:startEvent id="start" name="Asked"/>
        <bpmn:receiveTask id="wait" name="Wait for the reply"/>
        <bpmn:boundaryEvent id="late" name="Two hours" attachedToRef="wait">
          <bpmn:timerEventDefinition><bpmn:timeDuration>PT2H</bpmn:timeDuration></bpmn:timerEventDefinition>
        </bpmn:boundaryEvent>
        <bpmn:task id="chase" name="Chase"/>
        <bpmn:endEvent id="replied" name="Replied"/>
        <bpmn:endEvent id="chased" name="Chased"/>
        <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
        <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="replied"/>
        <bpmn:sequenceFlow id="f3" sourceRef="late" targetRef="chase"/>
        <bpmn:sequenceFlow id="f4" sourceRef="chase" targetRef="chased"/>
      </bpmn:process>
    </bpmn:definitions>"#;
    let process = import_text(text).processes.remove(0);
    assert!(process.report.is_empty(), "{:#?}", process.report);
    let fx = Fixture::new();
    fx.engine.deploy("admin", &process.draft).unwrap();
    let reached =
        |id: i64| -> Vec<String> { fx.detail("admin", id).activities.into_iter().map(|a| a.activity_id).collect() };

    let answered = fx.engine.start("admin", "Reply", "", &[]).unwrap();
    let serial = parse_serial(&answered.waiting[0]);
    fx.engine.finish("admin", serial, &[]).unwrap();
    assert_eq!(reached(answered.instance_id), ["start", "wait", "replied"]);

    let silent = fx.engine.start("admin", "Reply", "", &[]).unwrap().instance_id;
    fx.clock.advance(2 * 3_600_000 - 1_000);
    assert_eq!(fx.engine.fire_due(&|| true).unwrap().fired, 0, "not due yet");
    fx.clock.advance(1_000);
    assert_eq!(fx.engine.fire_due(&|| true).unwrap().fired, 1);
    assert_eq!(reached(silent), ["start", "wait", "chase", "chased"]);
    assert_eq!(fx.detail("admin", silent).summary.status, InstanceStatus::Completed);
}

// ----- rights ----------------------------------------------------------------------

fn some_rights() -> Vec<(String, Right)> {
    vec![("ada".into(), Right::Admin), ("biztalk".into(), Right::ServerEvent), ("carol".into(), Right::View)]
}

/// The rights a deployed process's export carries come back from the import
/// beside an equal draft; one that is not a right is reported, not dropped
/// unsaid.
#[test]
fn bpmn_rights_survive_export_then_import() {
    let draft = ProcessDraft::load(&data("everything.process.json")).unwrap();
    let text = bpmn::export_with_rights(&draft, &some_rights()).unwrap();
    assert!(text.contains(r#"<flowdesk:right user="biztalk" right="server-event"/>"#), "{text}");
    let process = import_text(&text).processes.remove(0);
    assert_eq!(process.draft, draft);
    assert_eq!(process.rights, some_rights());
    assert!(process.report.is_empty(), "{:#?}", process.report);
    assert!(import_text(&bpmn::export(&draft).unwrap()).processes[0].rights.is_empty());

    let odd = text.replace(r#"right="server-event""#, r#"right="superuser""#);
    let process = import_text(&odd).processes.remove(0);
    assert_eq!(process.rights.len(), 2);
    let entry = &process.report.entries()[0];
    assert_eq!(
        (entry.kind, entry.element.as_str(), entry.name.as_str()),
        (EntryKind::Ignored, "flowdesk:right", "biztalk")
    );
    assert!(entry.why.contains("unknown right `superuser`"), "{entry:?}");
}

/// Deploy, grant, `export --process` (the XML holds the rights), import
/// (the report names them), deploy the exported file on another database
/// (they are granted there); a user without Admin deploys nothing.
#[test]
fn bpmn_cli_export_of_a_deployed_process_carries_its_rights() {
    let dir = tempfile::tempdir().unwrap();
    let sample = root().join("samples/purchase-approval.process.json").to_string_lossy().into_owned();
    assert_eq!(flowdesk(dir.path(), &["deploy", &sample]).code, Some(0));
    let granted = flowdesk(dir.path(), &["grant", "purchase-approval", "biztalk", "server-event"]);
    assert_eq!(granted.code, Some(0), "{granted:?}");

    let exported = flowdesk(dir.path(), &["export", "--process", "purchase-approval", "-o", "deployed.bpmn"]);
    assert_eq!(exported.code, Some(0), "{exported:?}");
    assert!(exported.stdout.contains("version 1, rights: ada Admin, biztalk Server Event"), "{}", exported.stdout);
    let text = std::fs::read_to_string(dir.path().join("deployed.bpmn")).unwrap();
    assert!(text.contains(r#"<flowdesk:right user="ada" right="admin"/>"#), "{text}");
    assert!(text.contains(r#"<flowdesk:right user="biztalk" right="server-event"/>"#), "{text}");
    let draft = ProcessDraft::load(Path::new(&sample)).unwrap();
    assert_eq!(import_text(&text).processes[0].draft, draft, "the deployed version, as it was deployed");
    let missing = flowdesk(dir.path(), &["export", "--process", "purchase-approval", "--version", "7", "-o", "x.bpmn"]);
    assert_eq!(missing.code, Some(1), "{missing:?}");
    assert!(!dir.path().join("x.bpmn").exists());

    let imported = flowdesk(dir.path(), &["import", "deployed.bpmn", "-o", "again.process.json"]);
    assert_eq!(imported.code, Some(0), "{imported:?}");
    assert!(
        imported.stdout.contains("  rights: ada Admin, biztalk Server Event — granted by `flowdesk deploy`"),
        "{}",
        imported.stdout
    );

    // Bob holds no Admin here: the deploy is refused, nothing granted.
    let refused = flowdesk_as(dir.path(), "bob", &["deploy", "deployed.bpmn"]);
    assert_eq!(refused.code, Some(1), "{refused:?}");
    assert!(!refused.stdout.contains("granted"), "{refused:?}");

    let elsewhere = tempfile::tempdir().unwrap();
    let bpmn_file = dir.path().join("deployed.bpmn").to_string_lossy().into_owned();
    let deployed = flowdesk_as(elsewhere.path(), "dora", &["deploy", &bpmn_file]);
    assert_eq!(deployed.code, Some(0), "{deployed:?}");
    assert!(
        deployed.stdout.contains("purchase-approval: granted rights: ada Admin, biztalk Server Event"),
        "{}",
        deployed.stdout
    );
    let rights = flowdesk(elsewhere.path(), &["rights", "purchase-approval"]);
    for user in ["ada", "biztalk", "dora"] {
        assert!(rights.stdout.contains(user), "{user}: {}", rights.stdout);
    }
}

/// Issue 19: a call activity of a process the file does not hold becomes a
/// sub-process event that starts it and waits (the README's mapping), and
/// export writes such an activity back as a call activity naming it.
#[test]
fn a_call_of_a_process_the_file_lacks_becomes_a_sub_process_event() {
    let file = r#"<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">
      <process id="order" isExecutable="true">
        <startEvent id="s"/>
        <callActivity id="pay" name="Pay" calledElement="payment"/>
        <sequenceFlow id="f1" sourceRef="s" targetRef="pay"/>
      </process>
    </definitions>"#;
    let imported = import_text(file);
    let process = &imported.processes[0];
    assert!(reported(process, EntryKind::Changed, "call activity", "pay"), "{:#?}", process.report);
    assert_eq!(events(process, "pay"), [("ipc", true, "payment".to_owned())]);
    let exported = flowdesk::model::bpmn::export(&process.draft).unwrap();
    assert!(exported.contains(r#"<bpmn:callActivity id="pay" name="Pay" calledElement="payment">"#), "{exported}");
    assert_eq!(import_text(&exported).processes[0].draft, process.draft, "export then import is the identity");
}
