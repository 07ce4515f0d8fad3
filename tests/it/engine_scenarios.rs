//! Engine behaviour as scenarios: a process, a list of actions, the expected
//! outcome and trail. Every refusal is checked to change nothing.
//!
//! **The conformance suite.** Every scenario here is a function generic over
//! the storage backend (`fn name<S: Backend>()`), and runs once per backend:
//! the [`on_every_backend!`](support::on_every_backend) list at the end of
//! this file makes `engine_scenarios::sqlite::name` and
//! `engine_scenarios::memory::name`. The scenarios of `early_callback.rs`,
//! `http_event.rs`, `concurrency.rs` and `planned_writes.rs` that need no
//! file run the same way. Together they are what a backend must pass to stand behind the
//! engine: the SQLite store does, and the memory store (`store/memory.rs`)
//! shows that nothing in them needs SQLite.
//!
//! To add a backend (PostgreSQL, say): implement `Storage` for it,
//! implement `support::Backend` (a fresh store for a test, a second handle
//! on the same data, a runner's heartbeat), add a module for it to
//! `on_every_backend!` in `support/mod.rs`, and run `cargo test --test it
//! ::<module>::`. A scenario it fails is a place where the engine relies on
//! something the new store does differently: read `memory.rs` for what each
//! call must answer.
//!
//! A few tests stay on SQLite alone, each saying why: they reach into what
//! only a store with a file or with planned writes has.

use crate::support;

use flowdesk::engine::{EngineError, FieldInput, HookPoint, InstanceFilter, InstanceStatus, ItemFilter, ItemStatus};
use flowdesk::model::script::rhai;
use flowdesk::model::{Right, ScriptHost, Value};
use support::{Backend, Fixture, T0, s, set};

fn callback_fixture<S: Backend>() -> Fixture<S> {
    let fx = Fixture::fresh();
    fx.deploy_sample("admin", "callback.process.json");
    fx
}

fn callback_sample_waits_then_completes_on_finish<S: Backend>() {
    let fx = callback_fixture::<S>();
    let started = fx.engine.start("admin", "callback", "PO-1042", &[]).unwrap();
    assert_eq!(started.status, InstanceStatus::Active);
    let serial = format!("{}_2", started.instance_id);
    assert_eq!(started.waiting, vec![serial.clone()]);
    assert_eq!(fx.field(started.instance_id, "stage"), s("waiting"));

    fx.clock.advance(5_000);
    let finished =
        fx.engine.finish("admin", support::parse_serial(&serial), &set(&[("name", "call back value")])).unwrap();
    assert!(finished.applied);
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    assert!(finished.progress.waiting.is_empty());
    assert_eq!(fx.field(started.instance_id, "done"), Value::Boolean(true));

    let detail = fx.detail("admin", started.instance_id);
    let activities: Vec<(&str, &str)> =
        detail.activities.iter().map(|a| (a.activity.as_str(), a.status.name())).collect();
    assert_eq!(
        activities,
        [("Prepare", "Completed"), ("Call external system", "Completed"), ("Approved", "Completed")]
    );
    // Line 2 (to Approved) fired, line 3 (to Rejected) was evaluated false.
    let lines: Vec<(usize, bool)> = detail.lines.iter().map(|l| (l.line_index, l.fired)).collect();
    assert_eq!(lines, [(0, true), (1, true), (2, false)]);
    let trail = fx.trail(started.instance_id);
    assert!(trail.contains(&format!("admin: Log Call external system: waiting for callback on serial {serial}")));
    assert!(trail.contains(&format!("admin: Server item finished {serial}; set name = \"call back value\"")));
    assert_eq!(trail.last().map(String::as_str), Some("admin: Instance completed"));

    let items = fx.engine.items("admin", &ItemFilter { include_closed: true, ..Default::default() }).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].status, ItemStatus::Finished);
    assert_eq!(items[0].closed_by.as_deref(), Some("admin"));
    assert_eq!(items[0].closed_at, Some(T0 + 5_000));
}

fn other_callback_value_takes_the_rejected_branch<S: Backend>() {
    let fx = callback_fixture::<S>();
    let id = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    fx.engine.finish("admin", support::parse_serial(&format!("{id}_2")), &set(&[("name", "no")])).unwrap();
    assert_eq!(fx.field(id, "done"), Value::Boolean(false));
    let names: Vec<String> = fx.detail("admin", id).activities.into_iter().map(|a| a.activity).collect();
    assert_eq!(names, ["Prepare", "Call external system", "Rejected"]);
}

fn every_refused_finish_changes_nothing<S: Backend>() {
    let fx = callback_fixture::<S>();
    let id = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let serial = format!("{id}_2");
    let before = fx.snapshot(id);
    let unknown_destination = format!("{id}_99");
    type Refusal<'a> = (&'a str, &'a str, Vec<(String, FieldInput)>);
    let refusals: Vec<Refusal> = vec![
        ("admin", "999_2", vec![]),
        ("admin", &unknown_destination, vec![]),
        ("mallory", &serial, vec![]),
        ("admin", &serial, set(&[("nmae", "x")])),
        ("admin", &serial, set(&[("done", "maybe")])),
        ("admin", &serial, vec![("done".into(), FieldInput::Value(Value::Integer(1)))]),
    ];
    for (user, serial, data) in refusals {
        let err = fx.engine.finish(user, support::parse_serial(serial), &data).unwrap_err();
        assert!(err.is_refusal(), "{err}");
        assert_eq!(fx.snapshot(id), before, "refusal `{err}` changed something");
    }
    // Text that is no serial never reaches the engine: a front end's parse
    // refuses it, as the engine's own refusal.
    for text in ["abc", "1_", "1_2_3", "1_2; DELETE FROM server_items"] {
        let err = EngineError::from(text.parse::<flowdesk::engine::Serial>().unwrap_err());
        assert!(err.is_refusal(), "{err}");
    }
}

fn refusals_say_what_and_why<S: Backend>() {
    let fx = callback_fixture::<S>();
    let id = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let serial = format!("{id}_2");

    let err = EngineError::from("1_2_3".parse::<flowdesk::engine::Serial>().unwrap_err());
    assert!(matches!(err, EngineError::InvalidSerial(_)), "{err}");
    let err = fx.engine.finish("admin", support::parse_serial("77_1"), &[]).unwrap_err();
    assert_eq!(err.to_string(), "server item 77_1 not found");
    let err = fx.engine.finish("mallory", support::parse_serial(&serial), &[]).unwrap_err();
    assert_eq!(err.to_string(), "permission denied: user `mallory` lacks the Server Event right on process `callback`");
    let err = fx.engine.finish("admin", support::parse_serial(&serial), &set(&[("done", "maybe")])).unwrap_err();
    assert_eq!(err.to_string(), "invalid data for field `done`: expected boolean, got \"maybe\"");
    let err = fx.engine.finish("admin", support::parse_serial(&serial), &set(&[("nmae", "x")])).unwrap_err();
    assert_eq!(err.to_string(), "invalid data for field `nmae`: process `callback` has no such field");

    fx.clock.advance(60_000);
    fx.engine.finish("admin", support::parse_serial(&serial), &[]).unwrap();
    fx.clock.advance(60_000);
    let err = fx.engine.finish("admin", support::parse_serial(&serial), &[]).unwrap_err();
    match &err {
        EngineError::AlreadyFinished { at, by, .. } => {
            assert_eq!((*at, by.as_str()), (T0 + 60_000, "admin"));
        }
        other => panic!("expected already finished, got {other}"),
    }
    assert_eq!(
        err.to_string(),
        format!("server item {serial} was already finished at 2026-11-25 09:01:00 UTC by admin")
    );
}

fn rights_decide_who_may_start_see_and_finish<S: Backend>() {
    let fx = callback_fixture::<S>();
    // The deployer is Admin; others have nothing until granted.
    assert_eq!(fx.engine.rights("callback", "admin").unwrap(), [Right::Admin]);
    let err = fx.engine.start("bob", "callback", "", &[]).unwrap_err();
    assert!(matches!(err, EngineError::PermissionDenied { right: Right::Start, .. }), "{err}");

    fx.engine.grant("admin", "callback", "bob", &[Right::Start, Right::ViewParticipate]).unwrap();
    fx.engine.grant("admin", "callback", "biztalk", &[Right::ServerEvent]).unwrap();
    let bobs = fx.engine.start("bob", "callback", "bob's", &[]).unwrap().instance_id;
    let admins = fx.engine.start("admin", "callback", "admin's", &[]).unwrap().instance_id;

    // View Participate: only the instances bob took part in.
    let seen: Vec<i64> =
        fx.engine.instances("bob", &InstanceFilter::default()).unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(seen, [bobs]);
    assert!(matches!(fx.engine.instance("bob", admins), Err(EngineError::PermissionDenied { .. })));
    assert_eq!(fx.engine.instances("admin", &InstanceFilter::default()).unwrap().len(), 2);

    // Bob cannot finish, and cannot grant himself the right.
    assert!(matches!(
        fx.engine.finish("bob", support::parse_serial(&format!("{bobs}_2")), &[]),
        Err(EngineError::PermissionDenied { right: Right::ServerEvent, .. })
    ));
    assert!(matches!(
        fx.engine.grant("bob", "callback", "bob", &[Right::ServerEvent]),
        Err(EngineError::PermissionDenied { right: Right::Admin, .. })
    ));
    // The integration account can.
    let done = fx
        .engine
        .finish("biztalk", support::parse_serial(&format!("{bobs}_2")), &set(&[("name", "call back value")]))
        .unwrap();
    assert_eq!(done.progress.status, InstanceStatus::Completed);

    // Revoking works; revoking the last Admin is refused.
    fx.engine.revoke("admin", "callback", "biztalk", &[Right::ServerEvent]).unwrap();
    assert!(fx.engine.finish("biztalk", support::parse_serial(&format!("{admins}_2")), &[]).is_err());
    assert!(matches!(
        fx.engine.revoke("admin", "callback", "admin", &[Right::Admin]),
        Err(EngineError::LastAdmin { .. })
    ));
    assert_eq!(fx.engine.rights("callback", "admin").unwrap(), [Right::Admin]);
}

const VERSIONED: &str = r#"{
  "name": "versioned",
  "fields": [{ "name": "label", "type": "string" }],
  "activities": [
    { "id": "a", "name": "A", "start": true, "events": [
      { "kind": "server_event", "name": "wait", "synchronous": false, "script": "" } ] },
    { "id": "b", "name": "B", "events": [
      { "kind": "server_event", "name": "stamp", "script": "label = \"VERSION\";" } ] }
  ],
  "lines": [{ "from": "a", "to": "b" }]
}"#;

fn instances_keep_the_version_they_started_on<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    assert_eq!(fx.deploy_json("admin", &VERSIONED.replace("VERSION", "one")), 1);
    let old = fx.engine.start("admin", "versioned", "", &[]).unwrap().instance_id;
    assert_eq!(fx.deploy_json("admin", &VERSIONED.replace("VERSION", "two")), 2);
    let new = fx.engine.start("admin", "versioned", "", &[]).unwrap().instance_id;

    fx.engine.finish("admin", support::parse_serial(&format!("{old}_1")), &[]).unwrap();
    fx.engine.finish("admin", support::parse_serial(&format!("{new}_1")), &[]).unwrap();
    assert_eq!(fx.field(old, "label"), s("one"));
    assert_eq!(fx.field(new, "label"), s("two"));
    assert_eq!(fx.detail("admin", old).summary.version, 1);
    assert_eq!(fx.detail("admin", new).summary.version, 2);

    // Only an Admin may deploy over an existing process.
    let draft = flowdesk::model::ProcessDraft::from_json(VERSIONED, "t").unwrap();
    assert!(matches!(fx.engine.deploy("bob", &draft), Err(EngineError::PermissionDenied { .. })));
}

fn start_type_checks_data_and_fills_defaults<S: Backend>() {
    let fx = callback_fixture::<S>();
    let err = fx.engine.start("admin", "callback", "", &set(&[("done", "perhaps")])).unwrap_err();
    assert!(matches!(err, EngineError::InvalidData { ref field, .. } if field == "done"), "{err}");
    assert!(fx.engine.instances("admin", &InstanceFilter::default()).unwrap().is_empty());

    let id = fx.engine.start("admin", "callback", "", &set(&[("name", "x")])).unwrap().instance_id;
    assert_eq!(fx.field(id, "name"), s("x"));
    assert_eq!(fx.field(id, "done"), Value::Boolean(false));
    let err = fx.engine.start("admin", "nope", "", &[]).unwrap_err();
    assert_eq!(err.to_string(), "process `nope` not found (deploy it first)");
}

const FAILING: &str = r#"{
  "name": "failing",
  "fields": [{ "name": "ready", "type": "boolean" }, { "name": "n", "type": "integer" }],
  "activities": [
    { "id": "work", "name": "Work", "start": true, "events": [
      { "kind": "server_event", "name": "Spin", "script": "while !ready { n += 1; }" } ] },
    { "id": "end", "name": "End", "events": [] }
  ],
  "lines": [{ "from": "work", "to": "end" }]
}"#;

fn an_endless_loop_puts_the_instance_in_error_and_retry_recovers<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", FAILING);
    let progress = fx.engine.start("admin", "failing", "", &[]).unwrap();
    assert_eq!(progress.status, InstanceStatus::Error);
    let failure = progress.failure.unwrap();
    assert_eq!((failure.activity.as_str(), failure.event.as_str()), ("Work", "Spin"));
    assert!(failure.message.contains("budget"), "{}", failure.message);
    let id = progress.instance_id;

    // Retrying without fixing fails again; fixing the data then retrying completes.
    assert_eq!(fx.engine.retry("admin", id).unwrap().status, InstanceStatus::Error);
    fx.engine.set_data("admin", id, &set(&[("ready", "true")])).unwrap();
    assert_eq!(fx.engine.retry("admin", id).unwrap().status, InstanceStatus::Completed);
    let trail = fx.trail(id);
    assert!(trail.contains(&"admin: Data changed ready: false → true".to_owned()), "{trail:#?}");
    assert!(trail.iter().any(|l| l.starts_with("admin: Retried")));
    // Retry is only for instances in Error.
    assert!(matches!(fx.engine.retry("admin", id), Err(EngineError::WrongStatus { .. })));
}

fn a_runtime_error_in_a_script_is_recorded_with_where<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", &FAILING.replace("while !ready { n += 1; }", "throw \\\"ledger offline\\\";"));
    let progress = fx.engine.start("admin", "failing", "", &[]).unwrap();
    assert_eq!(progress.status, InstanceStatus::Error);
    let trail = fx.trail(progress.instance_id);
    assert!(trail.iter().any(|l| l.contains("`Work` / `Spin`") && l.contains("ledger offline")), "{trail:#?}");
}

fn an_unconditional_loop_of_activities_is_stopped<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json(
        "admin",
        r#"{ "name": "spin", "activities": [
            { "id": "a", "name": "A", "start": true },
            { "id": "b", "name": "B" } ],
          "lines": [{ "from": "a", "to": "b" }, { "from": "b", "to": "a", "rule": "true" }] }"#,
    );
    let progress = fx.engine.start("admin", "spin", "", &[]).unwrap();
    assert_eq!(progress.status, InstanceStatus::Error);
    assert!(progress.failure.unwrap().message.contains("endless loop"));
}

fn stop_holds_a_callback_and_resume_applies_it<S: Backend>() {
    let fx = callback_fixture::<S>();
    let id = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    assert_eq!(fx.engine.stop("admin", id).unwrap().status, InstanceStatus::Stopped);
    assert!(matches!(fx.engine.stop("admin", id), Err(EngineError::WrongStatus { .. })));

    let finished = fx
        .engine
        .finish("admin", support::parse_serial(&format!("{id}_2")), &set(&[("name", "call back value")]))
        .unwrap();
    assert!(!finished.applied);
    assert_eq!(finished.progress.status, InstanceStatus::Stopped);
    assert_eq!(fx.field(id, "name"), s(""));

    assert_eq!(fx.engine.resume("admin", id).unwrap().status, InstanceStatus::Completed);
    assert_eq!(fx.field(id, "done"), Value::Boolean(true));
    // Operator actions need Admin.
    fx.engine.grant("admin", "callback", "bob", &[Right::Start, Right::View, Right::ServerEvent]).unwrap();
    let other = fx.engine.start("bob", "callback", "", &[]).unwrap().instance_id;
    assert!(matches!(fx.engine.stop("bob", other), Err(EngineError::PermissionDenied { right: Right::Admin, .. })));
}

fn goto_cancels_pending_items_and_starts_the_activity<S: Backend>() {
    let fx = callback_fixture::<S>();
    let id = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let progress = fx.engine.goto("admin", id, "Rejected").unwrap();
    assert_eq!(progress.status, InstanceStatus::Completed);
    let err = fx.engine.finish("admin", support::parse_serial(&format!("{id}_2")), &[]).unwrap_err();
    assert!(matches!(err, EngineError::ItemCancelled { .. }), "{err}");
    assert!(err.to_string().contains("cancelled"));
    assert!(matches!(fx.engine.goto("admin", id, "Nowhere"), Err(EngineError::WrongStatus { .. })));

    let id = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    assert!(matches!(fx.engine.goto("admin", id, "Nowhere"), Err(EngineError::ActivityNotFound { .. })));
    // Going back to the waiting activity issues a new serial.
    let progress = fx.engine.goto("admin", id, "call").unwrap();
    assert_eq!(progress.waiting, vec![format!("{id}_3")]);
}

const TWO_WAITS_IN_ONE_ACTIVITY: &str = r#"{
  "name": "twice",
  "fields": [{ "name": "log", "type": "string" }],
  "activities": [
    { "id": "a", "name": "A", "start": true, "events": [
      { "kind": "server_event", "name": "first", "synchronous": false, "script": "log += serial + \";\";" },
      { "kind": "server_event", "name": "second", "synchronous": false, "script": "log += serial + \";\";" } ] }
  ]
}"#;

fn each_wait_has_its_own_serial_so_a_repeated_callback_is_refused<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", TWO_WAITS_IN_ONE_ACTIVITY);
    let id = fx.engine.start("admin", "twice", "", &[]).unwrap().instance_id;
    let first = format!("{id}_1");
    let next = fx.engine.finish("admin", support::parse_serial(&first), &[]).unwrap().progress;
    assert_eq!(next.waiting, vec![format!("{id}_2")]);
    // The external system delivers its callback twice: the second is refused,
    // it does not finish the next event by accident.
    assert!(matches!(
        fx.engine.finish("admin", support::parse_serial(&first), &[]),
        Err(EngineError::AlreadyFinished { .. })
    ));
    let done = fx.engine.finish("admin", support::parse_serial(&format!("{id}_2")), &[]).unwrap();
    assert_eq!(done.progress.status, InstanceStatus::Completed);
    assert_eq!(fx.field(id, "log"), s(&format!("{id}_1;{id}_2;")));
}

const PARALLEL: &str = r#"{
  "name": "parallel",
  "fields": [{ "name": "trace", "type": "string" }],
  "activities": [
    { "id": "split", "name": "Split", "start": true },
    { "id": "left", "name": "Left", "events": [
      { "kind": "server_event", "name": "wait left", "synchronous": false, "script": "trace += \"L\";" } ] },
    { "id": "right", "name": "Right", "events": [
      { "kind": "server_event", "name": "wait right", "synchronous": false, "script": "trace += \"R\";" } ] },
    { "id": "join", "name": "Join", "preceding_rule": "All", "events": [
      { "kind": "server_event", "name": "joined", "script": "trace += \"J\";" } ] }
  ],
  "lines": [
    { "from": "split", "to": "left" }, { "from": "split", "to": "right" },
    { "from": "left", "to": "join" }, { "from": "right", "to": "join" }
  ]
}"#;

fn an_all_join_waits_for_every_branch<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", PARALLEL);
    let progress = fx.engine.start("admin", "parallel", "", &[]).unwrap();
    let id = progress.instance_id;
    assert_eq!(progress.waiting, vec![format!("{id}_2"), format!("{id}_3")]);

    let after_right = fx.engine.finish("admin", support::parse_serial(&format!("{id}_3")), &[]).unwrap().progress;
    assert_eq!(after_right.status, InstanceStatus::Active);
    assert_eq!(after_right.waiting, vec![format!("{id}_2")]);
    let done = fx.engine.finish("admin", support::parse_serial(&format!("{id}_2")), &[]).unwrap().progress;
    assert_eq!(done.status, InstanceStatus::Completed);
    assert_eq!(fx.field(id, "trace"), s("LRJ"));
    let joins = fx.detail("admin", id).activities.iter().filter(|a| a.activity == "Join").count();
    assert_eq!(joins, 1);
}

fn an_any_activity_starts_once_per_arriving_line<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", &PARALLEL.replace("\"preceding_rule\": \"All\", ", ""));
    let id = fx.engine.start("admin", "parallel", "", &[]).unwrap().instance_id;
    fx.engine.finish("admin", support::parse_serial(&format!("{id}_2")), &[]).unwrap();
    fx.engine.finish("admin", support::parse_serial(&format!("{id}_3")), &[]).unwrap();
    assert_eq!(fx.field(id, "trace"), s("LRJJ"));
}

fn a_line_rule_that_fails_at_run_time_puts_the_instance_in_error<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json(
        "admin",
        r#"{ "name": "divide", "fields": [{ "name": "n", "type": "integer" }],
          "activities": [ { "id": "a", "name": "A", "start": true }, { "id": "b", "name": "B" } ],
          "lines": [{ "from": "a", "to": "b", "rule": "10 / n > 1" }] }"#,
    );
    let progress = fx.engine.start("admin", "divide", "", &[]).unwrap();
    assert_eq!(progress.status, InstanceStatus::Error);
    fx.engine.set_data("admin", progress.instance_id, &set(&[("n", "2")])).unwrap();
    assert_eq!(fx.engine.retry("admin", progress.instance_id).unwrap().status, InstanceStatus::Completed);
    let names: Vec<String> =
        fx.detail("admin", progress.instance_id).activities.into_iter().map(|a| a.activity).collect();
    assert_eq!(names, ["A", "B"]);
}

fn sql_looking_text_is_data_like_any_other<S: Backend>() {
    let fx = callback_fixture::<S>();
    let nasty = "'); DROP TABLE instances; --";
    let id = fx.engine.start("admin", "callback", nasty, &set(&[("name", nasty)])).unwrap().instance_id;
    assert_eq!(fx.detail("admin", id).summary.folio, nasty);
    assert_eq!(fx.field(id, "name"), s(nasty));
    let found =
        fx.engine.instances("admin", &InstanceFilter { search: Some("DROP TABLE".into()), ..Default::default() });
    assert_eq!(found.unwrap().len(), 1);
    assert!(fx.engine.grant("admin", nasty, "x", &[Right::View]).is_err());
}

fn instance_list_filters_and_pages<S: Backend>() {
    let fx = callback_fixture::<S>();
    for i in 0..5 {
        let id = fx.engine.start("admin", "callback", &format!("PO-{i}"), &[]).unwrap().instance_id;
        if i % 2 == 0 {
            fx.engine.finish("admin", support::parse_serial(&format!("{id}_2")), &[]).unwrap();
        }
    }
    let completed = InstanceFilter { status: Some(InstanceStatus::Completed), ..Default::default() };
    assert_eq!(fx.engine.count_instances("admin", &completed).unwrap(), 3);
    let page = fx.engine.instances("admin", &InstanceFilter { limit: 2, offset: 1, ..Default::default() }).unwrap();
    let folios: Vec<&str> = page.iter().map(|i| i.folio.as_str()).collect();
    assert_eq!(folios, ["PO-3", "PO-2"]);
    let pending = fx.engine.items("admin", &ItemFilter::default()).unwrap();
    let folios: Vec<&str> = pending.iter().map(|i| i.folio.as_str()).collect();
    assert_eq!(folios, ["PO-1", "PO-3"]);
}

/// Engines on one database with a hook that records every point reached.
struct Hooked<S: Backend> {
    _dir: tempfile::TempDir,
    engine: flowdesk::engine::Engine<S>,
    points: std::sync::Arc<std::sync::Mutex<Vec<HookPoint>>>,
    /// Server items (serial, phase) and instance statuses as another engine
    /// on the database saw them when the script was about to run.
    seen_before_script: std::sync::Arc<std::sync::Mutex<Vec<(String, flowdesk::engine::ItemPhase, InstanceStatus)>>>,
}

fn hooked_callback_engine<S: Backend>(host: ScriptHost) -> Hooked<S> {
    use std::sync::{Arc, Mutex};

    let dir = tempfile::tempdir().unwrap();
    let store = S::create(dir.path());
    let clock = Arc::new(support::FixedClock(std::sync::atomic::AtomicI64::new(T0)));
    let watcher = support::engine_on(store.share(), clock.clone(), ScriptHost::default());
    let points = Arc::new(Mutex::new(Vec::new()));
    let seen_before_script = Arc::new(Mutex::new(Vec::new()));
    let (hook_points, hook_seen) = (points.clone(), seen_before_script.clone());
    let hook: flowdesk::engine::Hook = Arc::new(move |point| {
        hook_points.lock().unwrap().push(point);
        if point == HookPoint::BeforeAsyncScript {
            let all = ItemFilter { include_closed: true, ..Default::default() };
            for item in watcher.items("admin", &all).unwrap() {
                let instance = watcher.store().read(|tx| tx.instance(item.serial.instance_id)).unwrap().unwrap();
                let phase = flowdesk::engine::ItemPhase::of(&item, &instance);
                hook_seen.lock().unwrap().push((item.serial.to_string(), phase, instance.status));
            }
        }
    });
    let engine = support::engine_on(store, clock, host).with_hook(hook);
    engine.deploy("admin", &support::sample("callback.process.json")).unwrap();
    points.lock().unwrap().clear();
    Hooked { _dir: dir, engine, points, seen_before_script }
}

/// What the callback sample's start left, the same however its script ran.
fn assert_waits_for_its_callback<S: Backend>(engine: &flowdesk::engine::Engine<S>, id: i64) {
    let serial = format!("{id}_2");
    let detail = engine.instance("admin", id).unwrap();
    assert_eq!(detail.summary.status, InstanceStatus::Active);
    let stage = detail.fields.iter().find(|(name, _, _)| name == "stage").map(|(_, _, v)| v.clone());
    assert_eq!(stage, Some(s("waiting")), "the script's work is saved");
    let items = engine.items("admin", &ItemFilter { include_closed: true, ..Default::default() }).unwrap();
    let items: Vec<(String, ItemStatus)> = items.iter().map(|i| (i.serial.to_string(), i.status)).collect();
    assert_eq!(items, [(serial.clone(), ItemStatus::Pending)]);
    let actions: Vec<&str> = detail.audit.iter().map(|a| a.action.name()).collect();
    let created = actions.iter().position(|a| *a == "Server item created").expect("item created");
    let waiting = actions.iter().position(|a| *a == "Waiting for callback").expect("waiting");
    assert!(created < waiting, "{actions:?}");
    assert_eq!(detail.audit[waiting].detail, format!("{serial} (`Call external system`)"));
    assert_eq!(actions.iter().filter(|a| **a == "Server item created").count(), 1, "{actions:?}");
}

fn an_asynchronous_script_that_cannot_call_out_runs_in_the_starting_transaction<S: Backend>() {
    let hooked = hooked_callback_engine::<S>(ScriptHost::default());
    assert!(!hooked.engine.script_host().can_call_out());
    let progress = hooked.engine.start("admin", "callback", "inline", &[]).unwrap();
    assert_eq!(progress.status, InstanceStatus::Active);
    assert_eq!(progress.waiting, [format!("{}_2", progress.instance_id)]);
    // One write, committed once; no script ran outside a transaction.
    assert_eq!(*hooked.points.lock().unwrap(), [HookPoint::BeforeCommit, HookPoint::AfterCommit]);
    assert!(hooked.seen_before_script.lock().unwrap().is_empty());
    assert_waits_for_its_callback(&hooked.engine, progress.instance_id);

    // The callback then completes it as before.
    let done = hooked
        .engine
        .finish("admin", support::parse_serial(&progress.waiting[0]), &set(&[("name", "call back value")]))
        .unwrap();
    assert!(done.applied);
    assert_eq!(done.progress.status, InstanceStatus::Completed);
}

fn an_asynchronous_script_that_can_call_out_runs_after_its_item_is_committed<S: Backend>() {
    let host = ScriptHost::default().with_extension(std::sync::Arc::new(|engine: &mut rhai::Engine| {
        engine.register_fn("external_system", || "reachable".to_owned());
    }));
    let hooked = hooked_callback_engine::<S>(host);
    assert!(hooked.engine.script_host().can_call_out());
    let progress = hooked.engine.start("admin", "callback", "outside", &[]).unwrap();
    let serial = format!("{}_2", progress.instance_id);
    assert_eq!(progress.status, InstanceStatus::Active);
    assert_eq!(progress.waiting, std::slice::from_ref(&serial));
    // The item's transaction commits, the script runs, its result commits.
    assert_eq!(
        *hooked.points.lock().unwrap(),
        [
            HookPoint::BeforeCommit,
            HookPoint::AfterCommit,
            HookPoint::BeforeAsyncScript,
            HookPoint::BeforeCommit,
            HookPoint::AfterCommit,
        ]
    );
    // When the script was about to run, anyone could already see its item.
    let working = flowdesk::engine::ItemPhase::Working;
    assert_eq!(*hooked.seen_before_script.lock().unwrap(), [(serial, working, InstanceStatus::Running)]);
    assert_waits_for_its_callback(&hooked.engine, progress.instance_id);
}

fn an_admin_may_revoke_their_own_admin_while_another_admin_remains<S: Backend>() {
    let fx = callback_fixture::<S>();
    fx.engine.grant("admin", "callback", "carol", &[Right::Admin]).unwrap();
    fx.engine.grant("admin", "callback", "admin", &[Right::Start]).unwrap();
    fx.engine.revoke("admin", "callback", "admin", &[Right::Admin]).unwrap();
    assert_eq!(fx.engine.rights("callback", "admin").unwrap(), [Right::Start]);
    assert_eq!(fx.engine.rights("callback", "carol").unwrap(), [Right::Admin]);
    // No longer an Admin: may not revoke anything, not even from the other one.
    assert!(matches!(
        fx.engine.revoke("admin", "callback", "carol", &[Right::Admin]),
        Err(EngineError::PermissionDenied { right: Right::Admin, .. })
    ));
    // Now carol is the last Admin and cannot revoke herself.
    assert!(matches!(
        fx.engine.revoke("carol", "callback", "carol", &[Right::Admin]),
        Err(EngineError::LastAdmin { .. })
    ));
    assert_eq!(fx.engine.rights("callback", "carol").unwrap(), [Right::Admin]);
}

fn the_last_admin_revoking_admin_with_other_rights_is_refused_and_keeps_them_all<S: Backend>() {
    let fx = callback_fixture::<S>();
    fx.engine.grant("admin", "callback", "admin", &[Right::Start, Right::ServerEvent]).unwrap();
    fx.engine.grant("admin", "callback", "bob", &[Right::View]).unwrap();
    let before = fx.engine.rights_on_process("callback").unwrap();
    assert_eq!(before.len(), 4, "{before:?}");
    // Admin is in the middle, so a refusal checked after writing would
    // already have revoked Start.
    let err = fx.engine.revoke("admin", "callback", "admin", &[Right::Start, Right::Admin, Right::ServerEvent]);
    assert!(matches!(err, Err(EngineError::LastAdmin { ref process }) if process == "callback"), "{err:?}");
    assert_eq!(fx.engine.rights_on_process("callback").unwrap(), before);
    // Revoking the same rights but Admin is allowed.
    fx.engine.revoke("admin", "callback", "admin", &[Right::Start, Right::ServerEvent]).unwrap();
    assert_eq!(fx.engine.rights("callback", "admin").unwrap(), [Right::Admin]);
}

/// Regression for group commit without savepoints: a revoke refused as
/// LastAdmin after it had revoked something would give up the batch it was
/// in, failing another caller's grant. Checked before writing, it does not.
fn a_last_admin_refusal_in_a_batch_does_not_fail_the_other_calls<S: Backend>() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(support::FixedClock(std::sync::atomic::AtomicI64::new(T0)));
    // Armed, the hook holds a call's transaction open until the revoke is
    // about to be called, then a while longer so that the revoke queues
    // behind it and joins its batch.
    let armed = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicBool::new(false));
    let revoking = Arc::new(AtomicBool::new(false));
    let hook: flowdesk::engine::Hook = {
        let (armed, held, revoking) = (armed.clone(), held.clone(), revoking.clone());
        Arc::new(move |point| {
            if point != HookPoint::BeforeCommit || !armed.swap(false, Ordering::SeqCst) {
                return;
            }
            held.store(true, Ordering::SeqCst);
            while !revoking.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            for _ in 0..10_000 {
                std::thread::yield_now();
            }
        })
    };
    let engine = support::engine_on(S::create(dir.path()), clock, ScriptHost::default()).with_hook(hook);
    engine.deploy("admin", &support::sample("callback.process.json")).unwrap();
    engine.grant("admin", "callback", "admin", &[Right::Start]).unwrap();

    for round in 0..3 {
        let user = format!("user-{round}");
        held.store(false, Ordering::SeqCst);
        revoking.store(false, Ordering::SeqCst);
        armed.store(true, Ordering::SeqCst);
        let (granted, revoked) = std::thread::scope(|scope| {
            let grant = scope.spawn(|| engine.grant("admin", "callback", &user, &[Right::View]));
            let revoke = scope.spawn(|| {
                while !held.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                revoking.store(true, Ordering::SeqCst);
                engine.revoke("admin", "callback", "admin", &[Right::Start, Right::Admin])
            });
            (grant.join().unwrap(), revoke.join().unwrap())
        });
        assert!(matches!(revoked, Err(EngineError::LastAdmin { .. })), "{revoked:?}");
        granted.unwrap();
        assert_eq!(engine.rights("callback", &user).unwrap(), [Right::View]);
        assert_eq!(engine.rights("callback", "admin").unwrap(), [Right::Admin, Right::Start]);
    }
}

/// View Participate shows a user the instances they started and those they
/// acted on, everywhere the monitor looks: the list, its count, the server
/// items and the instance view. A starter is not written down as a
/// participant (one row less per start); the store counts the originator.
fn view_participate_shows_what_a_user_started_or_acted_on_and_nothing_else<S: Backend>() {
    let fx = callback_fixture::<S>();
    fx.engine.grant("admin", "callback", "bob", &[Right::Start, Right::ServerEvent, Right::ViewParticipate]).unwrap();
    let started = fx.engine.start("bob", "callback", "bob's", &[]).unwrap().instance_id;
    let acted_on = fx.engine.start("admin", "callback", "finished by bob", &[]).unwrap().instance_id;
    let untouched = fx.engine.start("admin", "callback", "admin's", &[]).unwrap().instance_id;
    fx.engine
        .finish("bob", support::parse_serial(&format!("{acted_on}_2")), &set(&[("name", "call back value")]))
        .unwrap();
    // Server Event shows every instance of the process; without it, bob
    // sees only what he took part in.
    fx.engine.revoke("admin", "callback", "bob", &[Right::ServerEvent]).unwrap();

    let mut listed: Vec<i64> =
        fx.engine.instances("bob", &InstanceFilter::default()).unwrap().into_iter().map(|i| i.id).collect();
    listed.sort_unstable();
    assert_eq!(listed, [started, acted_on]);
    assert_eq!(fx.engine.count_instances("bob", &InstanceFilter::default()).unwrap(), 2);
    let items: Vec<String> =
        fx.engine.items("bob", &ItemFilter::default()).unwrap().into_iter().map(|i| i.serial.to_string()).collect();
    assert_eq!(items, [format!("{started}_2")], "the pending item of what bob started; not admin's");
    assert_eq!(fx.engine.instance("bob", started).unwrap().summary.id, started);
    assert_eq!(fx.engine.instance("bob", acted_on).unwrap().summary.status, InstanceStatus::Completed);
    assert!(matches!(fx.engine.instance("bob", untouched), Err(EngineError::PermissionDenied { .. })));
}

// ----- the scripts' wall-clock budget (issue 15) -------------------------------

/// A script clock that moves a millisecond each time it is read: a script's
/// time is then counted in clock reads, whatever the machine's speed.
#[derive(Default)]
struct SteppingScriptClock(std::sync::atomic::AtomicU64);

impl SteppingScriptClock {
    fn reads(&self) -> u64 {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl flowdesk::model::script::ScriptClock for SteppingScriptClock {
    fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst))
    }
}

/// An engine clock that, once armed, runs an action the next time it is
/// read: inside a planned start, after the start read what it rests on.
struct InterruptingClock {
    next: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

impl flowdesk::engine::Clock for InterruptingClock {
    fn now(&self) -> flowdesk::engine::Millis {
        let action = self.next.lock().unwrap().take();
        if let Some(action) = action {
            action();
        }
        T0
    }
}

/// Issue 15's slow script: few operations, but every push checks the size
/// of the whole array. The process gives its scripts 40 ms.
const SLOW: &str = r#"{
  "name": "slow",
  "script_time_limit_ms": 40,
  "fields": [{ "name": "s", "type": "string" }],
  "activities": [
    { "id": "work", "name": "Work", "start": true, "events": [
      { "kind": "server_event", "name": "Fill", "script": "let a = []; for i in 0..5000 { a.push([]); } s = a.len().to_string();" } ] }
  ]
}"#;

/// A start is planned on a snapshot and, when another writer made the plan
/// stale meanwhile, run again under the write lock: there too its scripts
/// stop at their budget, so no script holds the lock longer than that.
///
/// SQLite only: it makes another write land between a planned write's
/// snapshot and its apply, and a store that does not plan (the memory
/// store runs the work under its write lock) has no such moment: the other
/// write would wait for the lock the start holds.
#[test]
fn a_slow_script_stops_at_its_processs_time_budget_also_when_run_again_under_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flowdesk.db");
    let engine_clock = std::sync::Arc::new(InterruptingClock { next: std::sync::Mutex::new(None) });
    let script_clock = std::sync::Arc::new(SteppingScriptClock::default());
    let host = ScriptHost::default().with_clock(script_clock.clone());
    let store = flowdesk::store::SqliteStore::open(&path, flowdesk::store::Durability::Normal).unwrap();
    let options = flowdesk::engine::EngineOptions::default();
    let engine = flowdesk::engine::Engine::with_options(store, options, host, engine_clock.clone());
    engine.deploy("admin", &flowdesk::model::ProcessDraft::from_json(SLOW, "slow").unwrap()).unwrap();
    engine.deploy("admin", &support::sample("callback.process.json")).unwrap();
    // Another process starts an instance while the start is being planned:
    // the instance id the plan took is gone, and the start runs again.
    let other = support::open_engine(&path, std::sync::Arc::new(support::FixedClock(T0.into())), ScriptHost::default());
    let (done, elsewhere) = std::sync::mpsc::channel();
    *engine_clock.next.lock().unwrap() = Some(Box::new(move || {
        done.send(other.start("admin", "callback", "elsewhere", &[]).map(|p| p.instance_id)).unwrap();
    }));

    let progress = engine.start("admin", "slow", "", &[]).unwrap();

    assert_eq!(elsewhere.recv().unwrap().unwrap(), 1);
    assert_eq!(progress.instance_id, 2);
    assert_eq!(progress.status, InstanceStatus::Error);
    let failure = progress.failure.unwrap();
    assert_eq!(failure.message, "ran past its time budget of 40 ms (an endless loop?)");
    // Two runs (on the snapshot, then under the lock), each stopped once its 40 ms were up.
    let reads = script_clock.reads();
    assert!((80..=90).contains(&reads), "the script clock was read {reads} times");
}

/// A process without a budget of its own has the host's default.
fn a_slow_script_stops_at_the_default_time_budget<S: Backend>() {
    let script_clock = std::sync::Arc::new(SteppingScriptClock::default());
    let fx = Fixture::<S>::fresh_with_host(
        ScriptHost::default().with_clock(script_clock.clone()).with_time_budget(std::time::Duration::from_millis(25)),
    );
    fx.deploy_json("admin", &SLOW.replace(r#""script_time_limit_ms": 40,"#, ""));

    let progress = fx.engine.start("admin", "slow", "", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    assert_eq!(progress.failure.unwrap().message, "ran past its time budget of 25 ms (an endless loop?)");
    assert!(script_clock.reads() <= 2 * 27, "read {} times", script_clock.reads());
}

/// A loop with no rule and nothing to wait at is refused at deploy since
/// issue 15, but versions deployed before stay in the database: they still
/// compile, so that their instances show and run (the step guard ends the loop).
fn a_version_deployed_before_its_endless_loop_was_refused_still_runs_and_is_stopped<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    let spin = r#"{ "name": "spin", "activities": [
            { "id": "a", "name": "A", "start": true },
            { "id": "b", "name": "B" } ],
          "lines": [{ "from": "a", "to": "b" }, { "from": "b", "to": "a" }] }"#;
    let draft = flowdesk::model::ProcessDraft::from_json(spin, "spin").unwrap();
    assert!(matches!(fx.engine.deploy("admin", &draft), Err(EngineError::InvalidDefinition { .. })));
    use flowdesk::engine::VersionRecord;
    fx.engine
        .store()
        .write(|tx| {
            tx.insert_version(&VersionRecord {
                process: "spin".to_owned(),
                version: 1,
                definition_json: draft.to_json(),
                deployed_at: T0,
                deployed_by: "admin".to_owned(),
            })?;
            tx.grant("spin", "admin", Right::Admin)
        })
        .unwrap();

    let progress = fx.engine.start("admin", "spin", "", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    assert!(progress.failure.unwrap().message.contains("endless loop"));
    assert_eq!(fx.detail("admin", progress.instance_id).summary.status, InstanceStatus::Error);
}

// ----- the lists, as the storage contract says (issue 16) ---------------------

/// Four instances of the callback sample started a second apart, the
/// second one finished: the lists' orders, filters, searches and cursors,
/// as every backend must answer them (`engine::storage`'s `InstanceFilter`
/// and `ItemFilter`).
fn the_lists_order_filter_search_and_page_as_the_storage_contract_says<S: Backend>() {
    use flowdesk::engine::{InstanceColumn, InstanceOrder};
    let fx = callback_fixture::<S>();
    for folio in ["PO-b", "po-a", "Überweisung", "PO-c"] {
        fx.clock.advance(1_000);
        fx.engine.start("admin", "callback", folio, &[]).unwrap();
    }
    fx.clock.advance(1_000);
    fx.engine.finish("admin", support::parse_serial("2_2"), &[]).unwrap();

    let ids = |filter: InstanceFilter| -> Vec<i64> {
        fx.engine.instances("admin", &filter).unwrap().into_iter().map(|i| i.id).collect()
    };
    let ordered =
        |column, descending| ids(InstanceFilter { order: InstanceOrder { column, descending }, ..Default::default() });
    assert_eq!(ids(InstanceFilter::default()), [4, 3, 2, 1], "newest first");
    assert_eq!(ordered(InstanceColumn::Id, false), [1, 2, 3, 4]);
    // Text in the order of its bytes: upper case, lower case, then `Ü`.
    assert_eq!(ordered(InstanceColumn::Folio, false), [1, 4, 2, 3]);
    assert_eq!(ordered(InstanceColumn::Folio, true), [3, 2, 4, 1]);
    // A status by its name (Active before Completed); ties by id, the same way.
    assert_eq!(ordered(InstanceColumn::Status, false), [1, 3, 4, 2]);
    assert_eq!(ordered(InstanceColumn::Status, true), [2, 4, 3, 1]);
    assert_eq!(ordered(InstanceColumn::LastChange, false), [1, 3, 4, 2]);
    assert_eq!(ordered(InstanceColumn::Originator, true), [4, 3, 2, 1]);
    assert_eq!(ordered(InstanceColumn::Process, false), [1, 2, 3, 4]);
    assert_eq!(ids(InstanceFilter { limit: 2, offset: 1, ..Default::default() }), [3, 2]);
    let completed = InstanceFilter { status: Some(InstanceStatus::Completed), ..Default::default() };
    assert_eq!(ids(completed.clone()), [2]);
    assert_eq!(fx.engine.count_instances("admin", &completed).unwrap(), 1);
    // A search finds a folio containing it, or, a number, the id (trimmed).
    let search = |text: &str| InstanceFilter { search: Some(text.to_owned()), ..Default::default() };
    assert_eq!(ids(search("-c")), [4]);
    assert_eq!(ids(search(" 3 ")), [3]);
    assert_eq!(fx.engine.count_instances("admin", &search("-")).unwrap(), 3);
    assert_eq!(ids(search("  ")), [4, 3, 2, 1], "a blank search filters nothing");
    let other_process = InstanceFilter { process: Some("other".to_owned()), ..Default::default() };
    assert!(ids(other_process).is_empty());

    let serials = |filter: ItemFilter| -> Vec<String> {
        fx.engine.items("admin", &filter).unwrap().into_iter().map(|i| i.serial.to_string()).collect()
    };
    let all = ItemFilter { include_closed: true, ..ItemFilter::default() };
    assert_eq!(serials(ItemFilter::default()), ["1_2", "3_2", "4_2"], "pending, oldest first");
    assert_eq!(serials(ItemFilter { newest_first: true, ..ItemFilter::default() }), ["4_2", "3_2", "1_2"]);
    assert_eq!(serials(all.clone()), ["1_2", "3_2", "4_2", "2_2"], "pending first");
    assert_eq!(serials(ItemFilter { newest_first: true, ..all.clone() }), ["4_2", "3_2", "1_2", "2_2"]);
    assert_eq!(serials(ItemFilter { instance_id: Some(2), ..all.clone() }), ["2_2"]);
    assert!(serials(ItemFilter { instance_id: Some(2), ..ItemFilter::default() }).is_empty());
    // By age alone, paged by a cursor: each page starts after the last item
    // of the one before, whatever closed meanwhile.
    let by_age = ItemFilter { by_age_only: true, limit: 2, ..all.clone() };
    assert_eq!(serials(by_age.clone()), ["1_2", "2_2"]);
    let after =
        |serial: &str, filter: &ItemFilter| ItemFilter { after: Some(support::parse_serial(serial)), ..filter.clone() };
    assert_eq!(serials(after("2_2", &by_age)), ["3_2", "4_2"]);
    assert!(serials(after("4_2", &by_age)).is_empty());
    let newest = ItemFilter { newest_first: true, ..by_age.clone() };
    assert_eq!(serials(after("3_2", &newest)), ["2_2", "1_2"]);
    assert_eq!(serials(after("1_2", &ItemFilter::default())), ["3_2", "4_2"]);
    let missing = fx.engine.items("admin", &after("99_2", &by_age)).unwrap_err();
    assert!(matches!(missing, EngineError::ItemNotFound { ref serial } if serial == "99_2"), "{missing}");
    // The search looks at the serial, folio, process, activity and event,
    // ignoring case in all of Unicode.
    let find = |text: &str| ItemFilter { search: Some(text.to_owned()), ..all.clone() };
    assert_eq!(serials(find("ÜBER")), ["3_2"]);
    assert_eq!(serials(find("po-")), ["1_2", "4_2", "2_2"]);
    assert_eq!(serials(find("3_2")), ["3_2"]);
    assert_eq!(serials(find("CALL EXTERNAL")), ["1_2", "3_2", "4_2", "2_2"]);
    assert_eq!(serials(find("CALLBACK")), ["1_2", "3_2", "4_2", "2_2"]);
    assert!(serials(find("nowhere")).is_empty());
    assert_eq!(serials(ItemFilter { limit: 1, ..find("po-") }), ["1_2"]);
}

/// A wait with two deadlines: at the date in `reply_by` (not armed when
/// it is empty), and a day after the wait began.
const DEADLINES: &str = r#"{
  "name": "deadline",
  "fields": [{ "name": "reply_by", "type": "datetime" }],
  "activities": [
    { "id": "wait", "name": "Wait for the reply", "start": true, "events": [
      { "kind": "server_event", "name": "Ask", "synchronous": false, "script": "" } ],
      "escalations": [
        { "name": "By the date", "at_field": "reply_by", "action": "fail" },
        { "name": "After a day", "after": "1d", "action": "fail" } ] }
  ]
}"#;

/// `reply_by` as a process's data takes it: `hours` from `T0`, in UTC.
fn reply_by(hours: i64) -> Vec<(String, FieldInput)> {
    let at = chrono::DateTime::from_timestamp_millis(T0 + hours * 3_600_000).unwrap();
    set(&[("reply_by", &at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))])
}

/// Issue 17: the Due order of the instance list and of the server items,
/// and their overdue filters, as the storage contract says: what has
/// something due by its soonest timer (ties by the timers' ids), then what
/// has nothing due (instances newest first, items in age order); overdue
/// is due by the engine's clock, whatever the status.
fn the_due_orders_and_the_overdue_filters_as_the_storage_contract_says<S: Backend>() {
    use flowdesk::engine::{InstanceColumn, InstanceOrder};
    let fx = callback_fixture::<S>();
    fx.deploy_json("admin", DEADLINES);
    let start =
        |process: &str, data: &[(String, FieldInput)]| fx.engine.start("admin", process, "", data).unwrap().instance_id;
    assert_eq!(start("callback", &[]), 1);
    assert_eq!(start("deadline", &reply_by(3)), 2);
    assert_eq!(start("deadline", &reply_by(1)), 3);
    assert_eq!(start("callback", &[]), 4);
    assert_eq!(start("deadline", &reply_by(1)), 5, "due with 3, armed after it");
    assert_eq!(start("deadline", &[]), 6, "only the day's deadline is armed");
    fx.engine.stop("admin", 3).unwrap();
    fx.clock.advance(2 * 3_600_000);

    let ids = |filter: InstanceFilter| -> Vec<i64> {
        fx.engine.instances("admin", &filter).unwrap().into_iter().map(|i| i.id).collect()
    };
    let due = |descending, limit, offset| InstanceFilter {
        order: InstanceOrder { column: InstanceColumn::Due, descending },
        limit,
        offset,
        ..InstanceFilter::default()
    };
    assert_eq!(ids(due(false, 0, 0)), [3, 5, 2, 6, 4, 1], "soonest first, nothing due last, newest first");
    assert_eq!(ids(due(true, 0, 0)), [6, 2, 5, 3, 4, 1], "latest first, nothing due last all the same");
    assert_eq!(ids(due(false, 2, 3)), [6, 4], "a page across both");
    assert_eq!(ids(due(false, 10, 4)), [4, 1], "a page of those with nothing due");
    assert_eq!(ids(due(false, 10, 5)), [1]);
    assert!(ids(due(false, 10, 6)).is_empty());
    let listed = fx.engine.instances("admin", &due(false, 1, 0)).unwrap();
    assert_eq!(listed[0].due_at, Some(T0 + 3_600_000));

    let overdue = |filter: InstanceFilter| InstanceFilter { overdue: true, ..filter };
    assert_eq!(ids(overdue(due(false, 0, 0))), [3, 5], "stopped or not, due by now");
    assert_eq!(ids(overdue(due(true, 0, 0))), [5, 3]);
    assert_eq!(ids(overdue(InstanceFilter::default())), [5, 3], "newest first");
    assert_eq!(fx.engine.count_instances("admin", &overdue(InstanceFilter::default())).unwrap(), 2);
    let stopped = InstanceFilter { status: Some(InstanceStatus::Stopped), ..overdue(due(false, 0, 0)) };
    assert_eq!(ids(stopped.clone()), [3]);
    assert_eq!(fx.engine.count_instances("admin", &stopped).unwrap(), 1);
    assert_eq!(ids(InstanceFilter { search: Some("5".into()), ..overdue(due(false, 0, 0)) }), [5]);

    let serials = |filter: ItemFilter| -> Vec<String> {
        fx.engine.items("admin", &filter).unwrap().into_iter().map(|i| i.serial.to_string()).collect()
    };
    let by_due = ItemFilter { by_due: true, ..ItemFilter::default() };
    assert_eq!(serials(by_due.clone()), ["3_1", "5_1", "2_1", "6_1", "1_2", "4_2"], "then oldest first");
    let latest = ItemFilter { newest_first: true, ..by_due.clone() };
    assert_eq!(serials(latest), ["6_1", "2_1", "5_1", "3_1", "4_2", "1_2"]);
    assert_eq!(serials(ItemFilter { limit: 5, ..by_due.clone() }), ["3_1", "5_1", "2_1", "6_1", "1_2"]);
    assert_eq!(serials(ItemFilter { limit: 2, ..by_due.clone() }), ["3_1", "5_1"]);
    assert_eq!(serials(ItemFilter { overdue: true, ..by_due.clone() }), ["3_1", "5_1"]);
    assert_eq!(serials(ItemFilter { overdue: true, ..ItemFilter::default() }), ["3_1", "5_1"]);
    let found = ItemFilter { search: Some("6_".into()), ..by_due.clone() };
    assert_eq!(serials(found.clone()), ["6_1"]);
    // The count beside a capped list: what the list holds without its limit.
    let count = |filter: &ItemFilter| fx.engine.count_items("admin", filter).unwrap();
    assert_eq!(count(&ItemFilter { limit: 2, ..by_due.clone() }), 6);
    assert_eq!(count(&ItemFilter { overdue: true, limit: 1, ..ItemFilter::default() }), 2);
    assert_eq!(count(&found), 1);
    let process = ItemFilter { process: Some("callback".into()), include_closed: true, ..ItemFilter::default() };
    assert_eq!(count(&process), serials(process.clone()).len() as u64);
    assert_eq!(fx.engine.count_items("nobody", &by_due).unwrap(), 0, "only what the user may see");
    let cursor = ItemFilter { after: Some(support::parse_serial("3_1")), ..by_due };
    let refused = fx.engine.items("admin", &cursor).unwrap_err();
    assert!(matches!(refused, EngineError::Internal(_)), "a cursor pages by age only: {refused}");
}

/// A claim is taken over once its lease **and** its runner's heartbeat have
/// run out: the heartbeat a runtime writes is read by the engine through
/// the store (`Transaction::running_instances`).
fn a_claim_is_taken_over_only_once_its_lease_and_its_runners_heartbeat_have_run_out<S: Backend>() {
    let walk = Walk::<S>::new();
    // Claimed by a finish, which updates the instance (a start inserts it).
    let (id, _) = walk.reach(InstanceStatus::Running, flowdesk::engine::ItemPhase::Pending);
    let claimed = walk.plain.instance("admin", id).unwrap();
    assert_eq!(claimed.summary.status, InstanceStatus::Running);
    let (runner, lease_until) = {
        let instance = walk.plain.store().read(|tx| tx.instance(id)).unwrap().unwrap();
        (instance.runner.unwrap(), instance.lease_until.unwrap())
    };
    // The runner's runtime beats on for a minute past the lease.
    walk.plain.store().beat(runner, lease_until + 60_000);
    walk.clock.advance(lease_until - T0 + 1);
    assert!(walk.plain.awaiting_recovery().unwrap().is_empty());
    assert_eq!(walk.plain.held_claims().unwrap(), [(id, lease_until + 60_000)]);
    assert!(walk.plain.recover().unwrap().is_empty());

    walk.clock.advance(60_000);
    assert_eq!(walk.plain.awaiting_recovery().unwrap(), [id]);
    assert_eq!(walk.plain.recover().unwrap(), [id]);
    assert_eq!(walk.plain.instance("admin", id).unwrap().summary.status, InstanceStatus::Active);
}

/// The same calls on a store of backend `S`: two processes, users who see
/// all, some or only their own instances, and instances in every list
/// state, with ties in time and folios in both cases and beyond ASCII.
fn list_fixture<S: Backend>() -> Fixture<S> {
    let fx = callback_fixture::<S>();
    fx.deploy_json("admin", PARALLEL);
    let grant = |process: &str, user: &str, rights: &[Right]| fx.engine.grant("admin", process, user, rights).unwrap();
    grant("callback", "bob", &[Right::Start, Right::ServerEvent, Right::ViewParticipate]);
    grant("parallel", "carol", &[Right::View]);
    grant("parallel", "dave", &[Right::Start, Right::ViewParticipate]);
    let start = |user: &str, process: &str, folio: &str| fx.engine.start(user, process, folio, &[]).unwrap();
    start("admin", "callback", "PO-1");
    start("admin", "callback", "po-2");
    fx.clock.advance(1_000);
    start("bob", "callback", "Bob's Überweisung");
    start("admin", "parallel", "PAR-a");
    fx.clock.advance(1_000);
    start("dave", "parallel", "Hauptstraße 3");
    fx.clock.advance(1_000);
    fx.engine.finish("bob", support::parse_serial("2_2"), &[]).unwrap();
    fx.engine.finish("admin", support::parse_serial("4_3"), &[]).unwrap();
    fx.engine.stop("admin", 1).unwrap();
    fx.clock.advance(1_000);
    start("admin", "callback", "x");
    fx.engine.goto("admin", 6, "Rejected").unwrap();
    fx.engine.revoke("admin", "callback", "bob", &[Right::ServerEvent]).unwrap();
    // Deadlines: one overdue (its date passed before its wait began), one
    // due later, one due by the day's alone; ties with the others' times.
    fx.deploy_json("admin", DEADLINES);
    grant("deadline", "carol", &[Right::View]);
    grant("deadline", "dave", &[Right::Start, Right::ViewParticipate]);
    fx.engine.start("admin", "deadline", "PO-late", &reply_by(-1)).unwrap();
    fx.engine.start("dave", "deadline", "po-later", &reply_by(24)).unwrap();
    fx.engine.start("admin", "deadline", "", &[]).unwrap();
    fx.engine.stop("admin", 8).unwrap();
    fx
}

/// Both backends, the same calls, and every query of a grid of list
/// filters, for every user, answered alike: the orders, filters,
/// visibility, searches and cursors in combination, beyond what the list
/// scenario above spells out; and every instance read back alike.
#[test]
fn the_memory_store_answers_every_list_query_as_the_sqlite_store_does() {
    use flowdesk::engine::{InstanceColumn, InstanceOrder};
    let sqlite = list_fixture::<flowdesk::store::SqliteStore>();
    let memory = list_fixture::<flowdesk::store::MemoryStore>();
    let users = ["admin", "bob", "carol", "dave", "nobody"];
    let mut compared = 0;
    let mut alike = |what: String, on_sqlite: String, on_memory: String| {
        assert_eq!(on_memory, on_sqlite, "{what}");
        compared += 1;
    };
    for id in 1..=9 {
        alike(format!("instance {id}"), sqlite.snapshot(id), memory.snapshot(id));
    }
    alike("processes".into(), format!("{:?}", sqlite.engine.processes()), format!("{:?}", memory.engine.processes()));
    for process in ["callback", "parallel"] {
        alike(
            format!("rights on {process}"),
            format!("{:?}", sqlite.engine.rights_on_process(process)),
            format!("{:?}", memory.engine.rights_on_process(process)),
        );
    }

    let statuses = [None, Some(InstanceStatus::Active), Some(InstanceStatus::Completed), Some(InstanceStatus::Stopped)];
    for user in users {
        for process in [None, Some("callback"), Some("parallel")] {
            for status in statuses {
                for (search, overdue) in [None, Some("po"), Some("PO"), Some(" 3 "), Some("Ü"), Some("a")]
                    .into_iter()
                    .flat_map(|search| [(search, false), (search, true)])
                {
                    let filter = InstanceFilter {
                        process: process.map(str::to_owned),
                        status,
                        search: search.map(str::to_owned),
                        overdue,
                        ..InstanceFilter::default()
                    };
                    alike(
                        format!("count for {user}, {filter:?}"),
                        format!("{:?}", sqlite.engine.count_instances(user, &filter).map_err(|e| e.to_string())),
                        format!("{:?}", memory.engine.count_instances(user, &filter).map_err(|e| e.to_string())),
                    );
                    for column in InstanceColumn::ALL {
                        for descending in [false, true] {
                            for (limit, offset) in [(0, 0), (2, 1)] {
                                let order = InstanceOrder { column, descending };
                                let filter = InstanceFilter { order, limit, offset, ..filter.clone() };
                                alike(
                                    format!("instances for {user}, {filter:?}"),
                                    format!("{:?}", sqlite.engine.instances(user, &filter).map_err(|e| e.to_string())),
                                    format!("{:?}", memory.engine.instances(user, &filter).map_err(|e| e.to_string())),
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    for user in users {
        for include_closed in [false, true] {
            for process in [None, Some("parallel")] {
                for instance_id in [None, Some(4)] {
                    for search in [None, Some("po"), Some("ÜBER"), Some("_3"), Some("WAIT"), Some("STRASSE")] {
                        for (newest_first, by_age_only) in [(false, false), (true, false), (false, true), (true, true)]
                        {
                            // The due order pages from the start only.
                            let orders = [(false, false), (false, true), (true, false), (true, true)];
                            let cursors = [None, Some("1_2"), Some("4_3"), Some("99_2")];
                            let grid = orders.into_iter().flat_map(|(by_due, overdue)| {
                                cursors
                                    .into_iter()
                                    .filter(move |c| !by_due || c.is_none())
                                    .map(move |c| (by_due, overdue, c))
                            });
                            for (by_due, overdue, after) in grid {
                                for limit in [0, 2] {
                                    let filter = ItemFilter {
                                        include_closed,
                                        process: process.map(str::to_owned),
                                        instance_id,
                                        search: search.map(str::to_owned),
                                        newest_first,
                                        by_due,
                                        by_age_only,
                                        after: after.map(support::parse_serial),
                                        overdue,
                                        now: 0,
                                        limit,
                                    };
                                    alike(
                                        format!("items for {user}, {filter:?}"),
                                        format!("{:?}", sqlite.engine.items(user, &filter).map_err(|e| e.to_string())),
                                        format!("{:?}", memory.engine.items(user, &filter).map_err(|e| e.to_string())),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(compared > 10_000, "{compared}");
}

// ----- the storage contract itself ---------------------------------------------

/// A write whose work returns an error commits nothing of it, however much
/// it wrote first. The engine decides before it writes, so no scenario
/// above refuses after a write; a store must roll back all the same.
fn a_write_whose_work_fails_leaves_nothing_behind<S: Backend>() {
    let fx = callback_fixture::<S>();
    let id = fx.engine.start("admin", "callback", "kept", &[]).unwrap().instance_id;
    let before = fx.snapshot(id);
    let failed = fx.engine.store().write(|tx| -> Result<(), EngineError> {
        tx.grant("callback", "bob", Right::View)?;
        let mut instance = tx.instance(id)?.unwrap();
        instance.folio = "changed".to_owned();
        instance.status = InstanceStatus::Stopped;
        tx.update_instance(&instance)?;
        Err(EngineError::Internal("the work failed after writing".to_owned()))
    });
    assert!(matches!(failed, Err(EngineError::Internal(_))), "{failed:?}");
    assert_eq!(fx.snapshot(id), before);
    assert!(fx.engine.rights("callback", "bob").unwrap().is_empty());
}

/// A read sees one moment: what another engine commits while it reads is
/// not in it, and a write's own reads see its writes.
fn a_read_sees_one_snapshot_and_a_write_sees_its_own_writes<S: Backend>() {
    let fx = callback_fixture::<S>();
    let other = fx.second_engine();
    fx.engine
        .store()
        .read(|tx| {
            let before = tx.rights("callback", "bob")?;
            other.grant("admin", "callback", "bob", &[Right::View]).unwrap();
            assert_eq!(tx.rights("callback", "bob")?, before, "the read saw a write committed after it began");
            Ok(())
        })
        .unwrap();
    assert_eq!(fx.engine.rights("callback", "bob").unwrap(), [Right::View]);
    fx.engine
        .store()
        .write(|tx| {
            tx.grant("callback", "bob", Right::Start)?;
            assert_eq!(tx.rights("callback", "bob")?, [Right::Start, Right::View]);
            Ok(())
        })
        .unwrap();
}

/// The change counter (issue 18, live monitor): it moves on a commit by
/// this engine or another one on the same data, and on nothing else:
/// reads, refusals and looking again leave it where it was, so a watcher
/// reads its views again only when something was committed.
fn the_data_version_moves_on_every_commit_and_only_then<S: Backend>() {
    let fx = callback_fixture::<S>();
    let other = fx.second_engine();
    let looked = fx.engine.data_version().unwrap();
    assert_eq!(fx.engine.data_version().unwrap(), looked, "looking again");
    fx.engine.instances("admin", &InstanceFilter::default()).unwrap();
    fx.engine.items("admin", &ItemFilter::default()).unwrap();
    assert_eq!(fx.engine.data_version().unwrap(), looked, "reads change nothing");

    let started = other.start("admin", "callback", "PO-1", &[]).unwrap();
    let after_start = fx.engine.data_version().unwrap();
    assert_ne!(after_start, looked, "another engine's start");

    let refused = other.finish("bob", support::parse_serial(&format!("{}_2", started.instance_id)), &[]);
    assert!(refused.unwrap_err().is_refusal());
    assert_eq!(fx.engine.data_version().unwrap(), after_start, "a refusal commits nothing");

    fx.engine.finish("admin", support::parse_serial(&format!("{}_2", started.instance_id)), &[]).unwrap();
    let after_finish = fx.engine.data_version().unwrap();
    assert_ne!(after_finish, after_start, "its own finish");
}

// ----- the transition table, walked cell by cell (issue 16) -------------------

/// Two parallel branches and two activities to go to. `B` checks `fail`
/// before and after its first wait; `A` only waits; `C` checks then waits;
/// `Z` has nothing to do. `A`'s and `B`'s waits have a deadline an hour on
/// (finish the item), which the walk's firings fire. `B` comes first, so that a start runs its check
/// before `A` can go outside.
const WALK: &str = r#"{
  "name": "walk",
  "fields": [{ "name": "fail", "type": "boolean" }, { "name": "note", "type": "string" }],
  "activities": [
    { "id": "split", "name": "Split", "start": true },
    { "id": "b", "name": "B", "events": [
      { "kind": "server_event", "name": "b check", "script": "if fail { throw \"boom\"; }" },
      { "kind": "server_event", "name": "b1", "synchronous": false, "script": "" },
      { "kind": "server_event", "name": "b check again", "script": "if fail { throw \"boom\"; }" },
      { "kind": "server_event", "name": "b2", "synchronous": false, "script": "" } ],
      "escalations": [{ "name": "Late", "after": "1h", "action": { "finish": { "set": { "note": "late" } } } }] },
    { "id": "a", "name": "A", "events": [
      { "kind": "server_event", "name": "a", "synchronous": false, "script": "" } ],
      "escalations": [{ "name": "Late", "after": "1h", "action": { "finish": { "set": { "note": "late" } } } }] },
    { "id": "c", "name": "C", "events": [
      { "kind": "server_event", "name": "c check", "script": "if fail { throw \"boom\"; }" },
      { "kind": "server_event", "name": "c", "synchronous": false, "script": "" } ] },
    { "id": "z", "name": "Z" }
  ],
  "lines": [{ "from": "split", "to": "b" }, { "from": "split", "to": "a" }]
}"#;

/// Three engines on one store: `plain` runs asynchronous scripts in its
/// transactions; `outside` runs them outside (its scripts can call out);
/// `dying` too, and its runner dies just before the work starts (a panic at
/// `before-async-script`), leaving the instance `Running` with the work due.
struct Walk<S: Backend> {
    _dir: tempfile::TempDir,
    clock: std::sync::Arc<support::FixedClock>,
    plain: flowdesk::engine::Engine<S>,
}

impl<S: Backend> Walk<S> {
    fn new() -> Walk<S> {
        let dir = tempfile::tempdir().unwrap();
        let clock = std::sync::Arc::new(support::FixedClock(std::sync::atomic::AtomicI64::new(T0)));
        let plain = support::engine_on(S::create(dir.path()), clock.clone(), ScriptHost::default());
        plain.deploy("admin", &flowdesk::model::ProcessDraft::from_json(WALK, "walk").unwrap()).unwrap();
        Walk { _dir: dir, clock, plain }
    }

    fn calling_out(&self) -> ScriptHost {
        ScriptHost::default().with_extension(std::sync::Arc::new(|engine: &mut rhai::Engine| {
            engine.register_fn("external_system", || "reachable".to_owned());
        }))
    }

    fn outside(&self) -> flowdesk::engine::Engine<S> {
        support::engine_on(self.plain.store().share(), self.clock.clone(), self.calling_out())
    }

    /// Runs `call` on an engine whose runner dies before its outside work.
    fn dying<T>(&self, call: impl FnOnce(&flowdesk::engine::Engine<S>) -> T) {
        let hook: flowdesk::engine::Hook = std::sync::Arc::new(|point| {
            if point == HookPoint::BeforeAsyncScript {
                panic!("the runner dies (on purpose, in a test)");
            }
        });
        let engine = self.outside().with_hook(hook);
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| call(&engine)));
        assert!(died.is_err(), "the runner was to die before its outside work");
    }

    fn start(&self, fail: bool) -> i64 {
        self.plain
            .start("admin", "walk", "", &set(&[("fail", if fail { "true" } else { "false" })]))
            .unwrap()
            .instance_id
    }

    fn serial(&self, id: i64, event: &str) -> String {
        let all = ItemFilter { include_closed: true, instance_id: Some(id), ..Default::default() };
        let items = self.plain.items("admin", &all).unwrap();
        let item = items.iter().find(|i| i.event == event).unwrap_or_else(|| panic!("no item of `{event}`: {items:?}"));
        item.serial.to_string()
    }

    fn finish(&self, id: i64, event: &str) {
        self.plain.finish("admin", support::parse_serial(&self.serial(id, event)), &[]).unwrap();
    }

    /// Writes a status no command leads to (for the impossible cells).
    fn force(&self, id: i64, status: InstanceStatus) {
        self.plain
            .store()
            .write(|tx| {
                let mut instance = tx.instance(id)?.unwrap();
                instance.status = status;
                tx.update_instance(&instance)
            })
            .unwrap();
    }

    /// The status of instance `id` and the phase of its item of `event`.
    fn cell(&self, id: i64, event: &str) -> (InstanceStatus, flowdesk::engine::ItemPhase) {
        let serial = self.serial(id, event).parse().unwrap();
        self.plain
            .store()
            .read(|tx| {
                let instance = tx.instance(id)?.unwrap();
                let item = tx.server_item(serial)?.unwrap();
                Ok((instance.status, flowdesk::engine::ItemPhase::of(&item, &instance)))
            })
            .unwrap()
    }

    /// Everything an instance holds, for "a refusal changes nothing".
    fn snapshot(&self, id: i64) -> String {
        let d = self.plain.instance("admin", id).unwrap();
        let all = ItemFilter { include_closed: true, ..Default::default() };
        let items = self.plain.items("admin", &all).unwrap();
        format!("{:?}|{:?}|{:?}|{:?}|{:?}|{:?}", d.summary, d.fields, d.audit, d.activities, d.lines, items)
    }

    /// An instance in `status` whose item of the returned event is in
    /// `phase`, reached by commands where any sequence of them reaches it,
    /// and written directly where none does (the table's impossible cells).
    fn reach(&self, status: InstanceStatus, phase: flowdesk::engine::ItemPhase) -> (i64, &'static str) {
        use InstanceStatus::*;
        use flowdesk::engine::ItemPhase::*;
        let (id, event) = match (status, phase) {
            (Active, Pending) => (self.start(false), "a"),
            (Active, Finished) => {
                let id = self.start(false);
                self.finish(id, "a");
                (id, "a")
            }
            (Active, Cancelled) => {
                let id = self.start(false);
                self.plain.goto("admin", id, "C").unwrap();
                (id, "a")
            }
            (Active, Working) | (Completed, Working) => {
                let (id, event) = self.reach(Running, Working);
                self.force(id, status);
                (id, event)
            }
            (Active, Recorded) | (Completed, Recorded) => {
                let (id, event) = self.reach(Stopped, Recorded);
                self.force(id, status);
                (id, event)
            }
            (Stopped, Recorded) => {
                let (id, event) = self.reach(Active, Pending);
                self.plain.stop("admin", id).unwrap();
                self.finish(id, event);
                (id, event)
            }
            (Stopped, Pending | Working | Finished | Cancelled) => {
                let (id, event) = self.reach(if phase == Working { Running } else { Active }, phase);
                self.plain.stop("admin", id).unwrap();
                (id, event)
            }
            (Error, Pending) => (self.start(true), "a"),
            (Error, Working) => {
                let id = self.outside().start("admin", "walk", "", &set(&[("fail", "true")])).unwrap().instance_id;
                (id, "a")
            }
            (Error, Recorded) => {
                let (id, event) = self.reach(Error, Pending);
                self.finish(id, event);
                (id, event)
            }
            (Error, Finished) => {
                let id = self.start(false);
                self.finish(id, "a");
                self.plain.set_data("admin", id, &set(&[("fail", "true")])).unwrap();
                self.finish(id, "b1");
                (id, "a")
            }
            (Error, Cancelled) => {
                let id = self.start(false);
                self.plain.set_data("admin", id, &set(&[("fail", "true")])).unwrap();
                self.plain.goto("admin", id, "C").unwrap();
                (id, "a")
            }
            (Running, Working) => {
                self.dying(|engine| engine.start("admin", "walk", "", &set(&[("fail", "false")])));
                let listed = self.plain.instances("admin", &InstanceFilter::default()).unwrap();
                (listed[0].id, "b1")
            }
            (Running, Pending) => {
                let id = self.start(false);
                let b1 = self.serial(id, "b1");
                self.dying(|engine| engine.finish("admin", support::parse_serial(&b1), &[]));
                (id, "a")
            }
            (Running, Recorded) => {
                let (id, event) = self.reach(Running, Working);
                self.finish(id, event);
                (id, event)
            }
            (Running, Finished) => {
                let id = self.start(false);
                self.finish(id, "a");
                let b1 = self.serial(id, "b1");
                self.dying(|engine| engine.finish("admin", support::parse_serial(&b1), &[]));
                (id, "a")
            }
            (Running, Cancelled) => {
                let id = self.start(false);
                self.dying(|engine| engine.goto("admin", id, "C"));
                (id, "a")
            }
            (Completed, Pending) => {
                let id = self.start(false);
                self.force(id, Completed);
                (id, "a")
            }
            (Completed, Finished) => {
                let id = self.start(false);
                for event in ["a", "b1", "b2"] {
                    self.finish(id, event);
                }
                (id, "a")
            }
            (Completed, Cancelled) => {
                let id = self.start(false);
                self.plain.goto("admin", id, "Z").unwrap();
                (id, "a")
            }
        };
        assert_eq!(self.cell(id, event), (status, phase), "setting up {status} with an item {phase:?}");
        (id, event)
    }

    /// The deadline of instance `id`'s item of `event`, armed and due: one
    /// whose item closed (so that it was disarmed) is armed again directly,
    /// as a damaged database could hold it (the table's impossible cells).
    fn due_deadline(&self, id: i64, event: &str) -> i64 {
        use flowdesk::engine::{Effect, TimerState};
        let serial: flowdesk::engine::Serial = self.serial(id, event).parse().unwrap();
        let timers = self.plain.store().read(|tx| tx.timers_of(id)).unwrap();
        let timer = timers
            .into_iter()
            .find(|t| t.serial_id == serial.destination_id && t.escalation == Some(0))
            .unwrap_or_else(|| panic!("no deadline for {serial}"));
        if timer.state != TimerState::Armed {
            let armed =
                Effect::TimerChanged { id: timer.id, due_at: timer.due_at, fired_count: 0, state: TimerState::Armed };
            self.plain.store().write(|tx| tx.write_effects(id, vec![armed])).unwrap();
        }
        self.clock.advance(2 * 3_600 * 1_000);
        timer.id
    }

    /// What the engine answered to `command` on instance `id` (whose item
    /// of `event` the command names, if it is a finish or a firing), in the
    /// table's terms.
    fn answer(&self, id: i64, event: &str, command: flowdesk::engine::CommandKind) -> flowdesk::engine::Rule {
        use flowdesk::engine::{CommandKind, Firing, Rule, Why};
        let timer = matches!(command, CommandKind::Fire(_)).then(|| self.due_deadline(id, event));
        let before = self.snapshot(id);
        let outcome = match command {
            CommandKind::Finish(_) => self
                .plain
                .finish("admin", support::parse_serial(&self.serial(id, event)), &[])
                .map(|f| if f.applied { Rule::Allowed } else { Rule::Held }),
            CommandKind::Retry => self.plain.retry("admin", id).map(|_| Rule::Allowed),
            CommandKind::Stop => self.plain.stop("admin", id).map(|_| Rule::Allowed),
            CommandKind::Resume => self.plain.resume("admin", id).map(|_| Rule::Allowed),
            CommandKind::GoTo => self.plain.goto("admin", id, "Z").map(|_| Rule::Allowed),
            CommandKind::SetData => self.plain.set_data("admin", id, &set(&[("note", "x")])).map(|_| Rule::Allowed),
            CommandKind::Recover => {
                // Past any lease: only the status decides.
                self.clock.advance(24 * 3_600 * 1_000);
                let recovered = self.plain.recover().unwrap();
                Ok(if recovered.contains(&id) { Rule::Allowed } else { Rule::Refused(Why::WrongStatus) })
            }
            CommandKind::Fire(_) => self.plain.fire_timer(id, timer.unwrap()).map(|firing| match firing {
                Firing::Fired(_) => Rule::Allowed,
                Firing::Held => Rule::Held,
                Firing::Gone => panic!("the deadline of {event} was armed and due"),
            }),
        };
        let answer = match outcome {
            Ok(rule) => rule,
            Err(EngineError::WrongStatus { .. }) => Rule::Refused(Why::WrongStatus),
            Err(EngineError::AlreadyFinished { .. }) => Rule::Refused(Why::AlreadyFinished),
            Err(EngineError::ItemCancelled { .. }) => Rule::Refused(Why::Cancelled),
            Err(EngineError::Internal(_)) => Rule::Impossible,
            Err(other) => panic!("{command:?}: an answer the table does not give: {other}"),
        };
        if !matches!(answer, Rule::Allowed | Rule::Held) {
            assert_eq!(self.snapshot(id), before, "{command:?} answered {answer:?} and changed something");
        }
        answer
    }
}

/// Issue 16: an instance went into error in one branch while another's
/// work was due outside; its runner stopped at the error, and Retry ran the
/// failed branch only, leaving the instance `Running` with that work undone
/// until its lease ran out and recovery found it. Retry runs both.
fn issue_16_retry_also_runs_the_work_left_due_outside_when_the_instance_went_into_error<S: Backend>() {
    use flowdesk::engine::ItemPhase;
    let walk = Walk::<S>::new();
    let (id, event) = walk.reach(InstanceStatus::Error, ItemPhase::Working);
    walk.plain.set_data("admin", id, &set(&[("fail", "false")])).unwrap();

    let progress = walk.plain.retry("admin", id).unwrap();

    assert_eq!(progress.status, InstanceStatus::Active, "{progress:?}");
    let mut waiting: Vec<String> = [event, "b1"].iter().map(|event| walk.serial(id, event)).collect();
    waiting.sort_by_key(|serial| support::parse_serial(serial));
    assert_eq!(progress.waiting, waiting);
}

/// Every cell of the table (every status × every command, a finish and a
/// firing for every phase of its item), each on an instance brought to that cell,
/// answered by the engine as the table says. Impossible cells are written
/// directly into the database: the engine refuses to act on them.
fn the_engine_answers_every_cell_of_the_transition_table_as_the_table_says<S: Backend>() {
    use flowdesk::engine::{CommandKind, ItemPhase, rule};
    let mut checked = 0;
    for status in InstanceStatus::ALL {
        for command in CommandKind::ALL {
            let walk = Walk::<S>::new();
            let phase = match command {
                CommandKind::Finish(phase) | CommandKind::Fire(phase) => phase,
                _ if status == InstanceStatus::Running => ItemPhase::Working,
                _ if status == InstanceStatus::Completed => ItemPhase::Finished,
                _ => ItemPhase::Pending,
            };
            let (id, event) = walk.reach(status, phase);
            let answer = walk.answer(id, event, command);
            assert_eq!(answer, rule(status, command), "{status} × {command:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, InstanceStatus::ALL.len() * CommandKind::ALL.len());
}

// ----- every scenario above, once per backend ---------------------------------

support::on_every_backend! {
    callback_sample_waits_then_completes_on_finish,
    other_callback_value_takes_the_rejected_branch,
    every_refused_finish_changes_nothing,
    refusals_say_what_and_why,
    rights_decide_who_may_start_see_and_finish,
    instances_keep_the_version_they_started_on,
    start_type_checks_data_and_fills_defaults,
    an_endless_loop_puts_the_instance_in_error_and_retry_recovers,
    a_runtime_error_in_a_script_is_recorded_with_where,
    an_unconditional_loop_of_activities_is_stopped,
    stop_holds_a_callback_and_resume_applies_it,
    goto_cancels_pending_items_and_starts_the_activity,
    each_wait_has_its_own_serial_so_a_repeated_callback_is_refused,
    an_all_join_waits_for_every_branch,
    an_any_activity_starts_once_per_arriving_line,
    a_line_rule_that_fails_at_run_time_puts_the_instance_in_error,
    sql_looking_text_is_data_like_any_other,
    instance_list_filters_and_pages,
    an_asynchronous_script_that_cannot_call_out_runs_in_the_starting_transaction,
    an_asynchronous_script_that_can_call_out_runs_after_its_item_is_committed,
    an_admin_may_revoke_their_own_admin_while_another_admin_remains,
    the_last_admin_revoking_admin_with_other_rights_is_refused_and_keeps_them_all,
    a_last_admin_refusal_in_a_batch_does_not_fail_the_other_calls,
    view_participate_shows_what_a_user_started_or_acted_on_and_nothing_else,
    a_slow_script_stops_at_the_default_time_budget,
    a_version_deployed_before_its_endless_loop_was_refused_still_runs_and_is_stopped,
    the_lists_order_filter_search_and_page_as_the_storage_contract_says,
    the_due_orders_and_the_overdue_filters_as_the_storage_contract_says,
    a_claim_is_taken_over_only_once_its_lease_and_its_runners_heartbeat_have_run_out,
    a_write_whose_work_fails_leaves_nothing_behind,
    a_read_sees_one_snapshot_and_a_write_sees_its_own_writes,
    the_data_version_moves_on_every_commit_and_only_then,
    issue_16_retry_also_runs_the_work_left_due_outside_when_the_instance_went_into_error,
    the_engine_answers_every_cell_of_the_transition_table_as_the_table_says,
}
