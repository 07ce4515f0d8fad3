//! The early-callback race, made deterministic: the asynchronous event's script
//! itself calls the "external system", which finishes the server item through a
//! second engine on the same database while the script is still running.
//!
//! Part of the conformance suite (see `engine_scenarios.rs`): each scenario
//! runs on every backend.

use crate::support;

use std::sync::Arc;

use flowdesk::engine::{EngineError, InstanceStatus};
use flowdesk::model::script::rhai;
use flowdesk::model::{ProcessDraft, ScriptHost, Value};
use support::{Backend, FixedClock, engine_on, s, set};

const PROCESS: &str = r#"{
  "name": "early",
  "fields": [
    { "name": "name", "type": "string" },
    { "name": "stage", "type": "string" },
    { "name": "done", "type": "boolean" }
  ],
  "activities": [
    { "id": "call", "name": "Call", "start": true, "events": [
      { "kind": "server_event", "name": "Call external system", "synchronous": false,
        "script": "stage = \"calling\";\nlet answer = call_external(serial);\nlog(`external system answered: ${answer}`);\nname = \"set by script\";\nstage = \"after call\";" } ] },
    { "id": "approved", "name": "Approved", "events": [
      { "kind": "server_event", "name": "Mark done", "script": "done = true;" } ] }
  ],
  "lines": [{ "from": "call", "to": "approved", "rule": "name == \"call back value\"" }]
}"#;

fn a_callback_that_arrives_while_the_script_runs_is_applied_when_it_ends<S: Backend>() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(S::create(dir.path()));
    let clock = Arc::new(FixedClock(std::sync::atomic::AtomicI64::new(support::T0)));

    // The "external system": its own engine (its own connection) on the same store,
    // answering as soon as it is handed the serial, twice, as a retrying client would.
    let external_store = store.clone();
    let external_clock = clock.clone();
    let host = ScriptHost::default().with_extension(Arc::new(move |engine: &mut rhai::Engine| {
        let store = external_store.clone();
        let clock = external_clock.clone();
        engine.register_fn("call_external", move |serial: &str| -> String {
            let external = engine_on(store.share(), clock.clone(), ScriptHost::default());
            let first =
                match external.finish("biztalk", support::parse_serial(serial), &set(&[("name", "call back value")])) {
                    Ok(finished) => format!("applied={} status={}", finished.applied, finished.progress.status),
                    Err(err) => err.to_string(),
                };
            let second = match external.finish("biztalk", support::parse_serial(serial), &[]) {
                Ok(_) => "second finish accepted".to_owned(),
                Err(EngineError::AlreadyFinished { by, .. }) => format!("second finish refused (by {by})"),
                Err(err) => err.to_string(),
            };
            format!("{first}; {second}")
        });
    }));
    let engine = engine_on(store.share(), clock, host);
    engine.deploy("admin", &ProcessDraft::from_json(PROCESS, "early").unwrap()).unwrap();
    engine.grant("admin", "early", "biztalk", &[flowdesk::model::Right::ServerEvent]).unwrap();

    let progress = engine.start("admin", "early", "race", &[]).unwrap();

    // Nothing was lost: the instance went on the moment the script ended.
    assert_eq!(progress.status, InstanceStatus::Completed);
    let detail = engine.instance("admin", progress.instance_id).unwrap();
    let field = |name: &str| detail.fields.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone()).unwrap();
    // The script's own work stands, and the callback's data is applied after it.
    assert_eq!(field("stage"), s("after call"));
    assert_eq!(field("name"), s("call back value"));
    assert_eq!(field("done"), Value::Boolean(true));

    let serial = format!("{}_1", progress.instance_id);
    let actions: Vec<String> = detail.audit.iter().map(|a| format!("{}: {} {}", a.user, a.action, a.detail)).collect();
    let position = |needle: &str| {
        actions.iter().position(|a| a.contains(needle)).unwrap_or_else(|| panic!("no `{needle}` in {actions:#?}"))
    };
    let created = position("Server item created");
    let finished = position(&format!("biztalk: Server item finished {serial}"));
    let answered =
        position("external system answered: applied=false status=Running; second finish refused (by biztalk)");
    let applied = position("Callback applied");
    let completed = position("Instance completed");
    assert!(created < finished && finished < answered && answered < applied && applied < completed, "{actions:#?}");
}

/// Issue 16: whether a finish is an early callback (held) was told by the
/// item's `script_running` flag, which only the end of outside work clears.
/// An instance stopped before its script could run, then resumed by an
/// engine that runs such scripts in its transaction, waited with the flag
/// still set, and every finish of it was held for ever. The phase is now
/// told by the item's token, which every change of the work moves.
fn issue_16_a_finish_after_a_resumed_script_ended_is_applied_not_held_for_ever<S: Backend>() {
    use flowdesk::engine::HookPoint;
    use std::sync::atomic::{AtomicBool, Ordering};

    let dir = tempfile::tempdir().unwrap();
    let store = S::create(dir.path());
    let clock = Arc::new(FixedClock(std::sync::atomic::AtomicI64::new(support::T0)));
    // The operator's engine: its scripts cannot call out, so it runs an
    // asynchronous script inside the transaction that reaches it.
    let operator = Arc::new(engine_on(store.share(), clock.clone(), ScriptHost::default()));
    operator.deploy("admin", &support::sample("callback.process.json")).unwrap();
    // The runner's scripts can call out: they run after their item commits,
    // and the operator stops the instance right after that commit.
    let armed = Arc::new(AtomicBool::new(true));
    let hook: flowdesk::engine::Hook = {
        let (operator, armed) = (operator.clone(), armed.clone());
        Arc::new(move |point| {
            if point == HookPoint::AfterCommit && armed.swap(false, Ordering::SeqCst) {
                operator.stop("admin", 1).unwrap();
            }
        })
    };
    let host = ScriptHost::default().with_extension(Arc::new(|engine: &mut rhai::Engine| {
        engine.register_fn("call_external", |serial: &str| serial.to_owned());
    }));
    let runner = engine_on(store, clock, host).with_hook(hook);

    let started = runner.start("admin", "callback", "stopped mid-way", &[]).unwrap();
    assert_eq!((started.instance_id, started.status), (1, InstanceStatus::Stopped));
    let resumed = operator.resume("admin", 1).unwrap();
    assert_eq!((resumed.status, resumed.waiting.clone()), (InstanceStatus::Active, vec!["1_2".to_owned()]));

    let finished =
        operator.finish("admin", support::parse_serial("1_2"), &set(&[("name", "call back value")])).unwrap();

    assert!(finished.applied, "the finish was held: {finished:?}");
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
}

support::on_every_backend! {
    a_callback_that_arrives_while_the_script_runs_is_applied_when_it_ends,
    issue_16_a_finish_after_a_resumed_script_ended_is_applied_not_held_for_ever,
}
