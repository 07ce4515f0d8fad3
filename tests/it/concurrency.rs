//! Several processes and threads on one database at once: the GUI open while a
//! terminal and an external system finish items. Nobody sees "database is locked".
//!
//! The scenarios with threads are part of the conformance suite (see
//! `engine_scenarios.rs`) and run on every backend; the one with processes
//! runs the `flowdesk` binary, which opens SQLite files only.

use crate::support;

use std::path::Path;
use std::process::{Command, Stdio};

use flowdesk::engine::{AuditAction, InstanceFilter, InstanceStatus, ItemFilter};
use support::{Backend, Fixture, set};

#[test]
fn many_processes_start_and_finish_on_one_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shared.db");
    let flowdesk = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowdesk"));
        command
            .env_remove("FLOWDESK_DB")
            .env_remove("FLOWDESK_KILL_AT")
            .args(["--db", db.to_str().unwrap(), "--user", "ops"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    };
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/callback.process.json");
    assert!(flowdesk(&["deploy", sample.to_str().unwrap()]).status().unwrap().success());
    for _ in 0..12 {
        assert!(flowdesk(&["start", "callback"]).output().unwrap().status.success());
    }

    // 12 finishers and 12 starters, all at once, each its own OS process.
    let mut children = Vec::new();
    for id in 1..=12 {
        let serial = format!("{id}_2");
        children.push(flowdesk(&["finish", &serial, "--set", "name=call back value"]).spawn().unwrap());
        children.push(flowdesk(&["start", "callback", "--folio", "concurrent"]).spawn().unwrap());
    }
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(!stderr.contains("locked") && !stderr.contains("busy"), "{stderr}");
    }

    let list = flowdesk(&["instances", "--json", "--limit", "0"]).output().unwrap();
    let instances: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let instances = instances.as_array().unwrap();
    assert_eq!(instances.len(), 24);
    let completed = instances.iter().filter(|i| i["status"] == "Completed").count();
    let waiting = instances.iter().filter(|i| i["status"] == "Active").count();
    assert_eq!((completed, waiting), (12, 12));
}

fn threads_with_their_own_connections_finish_items_concurrently<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_sample("admin", "callback.process.json");
    let ids: Vec<i64> = (0..40).map(|_| fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id).collect();

    std::thread::scope(|scope| {
        for chunk in ids.chunks(10) {
            let engine = fx.second_engine();
            scope.spawn(move || {
                for id in chunk {
                    // Each item is finished twice from this thread: once for
                    // real, once as a retried delivery that must be refused.
                    let serial = format!("{id}_2");
                    engine
                        .finish("admin", support::parse_serial(&serial), &set(&[("name", "call back value")]))
                        .unwrap();
                    assert!(engine.finish("admin", support::parse_serial(&serial), &[]).is_err());
                }
            });
        }
    });

    let completed = InstanceFilter { status: Some(InstanceStatus::Completed), ..Default::default() };
    assert_eq!(fx.engine.count_instances("admin", &completed).unwrap(), 40);
    assert!(fx.engine.items("admin", &ItemFilter::default()).unwrap().is_empty());
    assert_eq!(fx.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

/// Threads sharing one engine have their writes committed in shared batches
/// (group commit): a refusal inside a batch must undo only its own work, and
/// every acknowledged finish must be there afterwards.
fn a_refusal_inside_a_shared_batch_undoes_only_itself<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_sample("admin", "callback.process.json");
    let ids: Vec<i64> = (0..60).map(|_| fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id).collect();
    let engine = &fx.engine;
    std::thread::scope(|scope| {
        for chunk in ids.chunks(6) {
            scope.spawn(move || {
                for id in chunk {
                    let serial = format!("{id}_2");
                    // Refused inside whatever batch is open: a bad value, a wrong user.
                    assert!(
                        engine.finish("admin", support::parse_serial(&serial), &set(&[("done", "perhaps")])).is_err()
                    );
                    assert!(engine.finish("mallory", support::parse_serial(&serial), &[]).is_err());
                    let finished = engine
                        .finish("admin", support::parse_serial(&serial), &set(&[("name", "call back value")]))
                        .unwrap();
                    assert_eq!(finished.progress.status, InstanceStatus::Completed);
                }
            });
        }
    });
    for id in ids {
        let detail = fx.detail("admin", id);
        assert_eq!(detail.summary.status, InstanceStatus::Completed);
        let finishes = detail.audit.iter().filter(|a| a.action == AuditAction::ItemFinished).count();
        assert_eq!(finishes, 1, "instance {id}: {:?}", detail.audit);
    }
    // Each batch's counts are summed once, refusals left out.
    assert_eq!(fx.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

/// Issue 17: two `flowdesk timers run` processes on one database with
/// 10,000 due deadlines fire each of them exactly once.
#[test]
fn two_processes_firing_timers_on_one_database_fire_each_exactly_once() {
    use flowdesk::engine::{Clock, SystemClock};
    const N: usize = 10_000;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("timers.db");
    {
        // Started two hours ago by a clock standing still: every deadline
        // (an hour on) is due now.
        let clock = std::sync::Arc::new(support::FixedClock(std::sync::atomic::AtomicI64::new(
            SystemClock.now() - 2 * 3_600_000,
        )));
        let engine = support::open_engine(&db, clock, flowdesk::model::ScriptHost::default());
        let draft = flowdesk::model::ProcessDraft::from_json(&deadline_process(), "deadline").unwrap();
        engine.deploy("ops", &draft).unwrap();
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..8 {
                scope.spawn(|| {
                    while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < N {
                        engine.start("ops", "deadline", "", &[]).unwrap();
                    }
                });
            }
        });
    }
    let firing = |_: usize| {
        Command::new(env!("CARGO_BIN_EXE_flowdesk"))
            .env_remove("FLOWDESK_DB")
            .env_remove("FLOWDESK_KILL_AT")
            .args(["--db", db.to_str().unwrap(), "--user", "ops", "--sync", "normal", "timers", "run", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let children: Vec<_> = (0..2).map(firing).collect();
    let mut fired = 0;
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let round: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        fired += round["fired"].as_u64().unwrap();
    }
    assert_eq!(fired, N as u64, "the two fired {fired} between them");

    let clock = std::sync::Arc::new(support::FixedClock(std::sync::atomic::AtomicI64::new(SystemClock.now())));
    let engine = support::open_engine(&db, clock, flowdesk::model::ScriptHost::default());
    let all = InstanceFilter { limit: 0, ..InstanceFilter::default() };
    let instances = engine.instances("ops", &all).unwrap();
    assert_eq!(instances.len(), N);
    for summary in instances {
        assert_eq!(summary.status, InstanceStatus::Completed, "instance {}", summary.id);
        let detail = engine.instance("ops", summary.id).unwrap();
        let firings = detail.audit.iter().filter(|a| a.action == AuditAction::EscalationFired).count();
        assert_eq!(firings, 1, "instance {} went on {firings} times", summary.id);
    }
}

/// A wait with a deadline an hour on that finishes it; nothing else.
fn deadline_process() -> String {
    r#"{
  "name": "deadline",
  "fields": [{ "name": "name", "type": "string" }],
  "activities": [
    { "id": "wait", "name": "Wait", "start": true, "events": [
      { "kind": "server_event", "name": "Wait", "synchronous": false, "script": "" } ],
      "escalations": [{ "name": "Give up", "after": "1h", "action": { "finish": { "set": { "name": "timed out" } } } }] }
  ]
}"#
    .to_owned()
}

support::on_every_backend! {
    threads_with_their_own_connections_finish_items_concurrently,
    a_refusal_inside_a_shared_batch_undoes_only_itself,
}
