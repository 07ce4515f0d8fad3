//! `kill -9` at every commit boundary of `start`, `finish` and `timers run`
//! (issue 17: every boundary of a batch of firings), then reopen: nothing
//! acknowledged is lost, no instance is half-made, no deadline fires twice
//! or is lost, and instances caught in the
//! middle of an asynchronous script continue, taken over by another runtime
//! once their dead runner's heartbeat has run out (and a live runner's work
//! never is).
//!
//! The binary kills itself with SIGKILL at a chosen hook point
//! (`FLOWDESK_KILL_AT=<point>:<n>`), which makes each crash land exactly where
//! the test wants it, without timing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};

use flowdesk::engine::{AuditAction, Clock, EngineOptions, Hook, HookPoint, InstanceStatus, Millis};
use flowdesk::model::ScriptHost;
use flowdesk::runtime::{Runtime, RuntimeOptions, Ticking};
use serde_json::Value as Json;

struct Db {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Db {
    fn new() -> Db {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("crash.db");
        Db { _dir: dir, path }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowdesk"));
        command
            .env_remove("FLOWDESK_KILL_AT")
            .env_remove("FLOWDESK_DB")
            .args(["--db", self.path.to_str().unwrap(), "--user", "ops"])
            .args(args);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    fn killed_at(&self, point: &str, args: &[&str]) -> Output {
        self.command(args).env("FLOWDESK_KILL_AT", point).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> Json {
        serde_json::from_str(&self.ok(args)).unwrap()
    }
}

fn was_killed(out: &Output) -> bool {
    use std::os::unix::process::ExitStatusExt;
    out.status.signal() == Some(9)
}

fn sample() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/callback.process.json").display().to_string()
}

/// Every instance is either waiting at its serial with the script's work done,
/// or completed with the callback's data: never in between, never Running.
fn assert_consistent(db: &Db) -> Vec<Json> {
    let instances = db.json(&["instances", "--json", "--limit", "0"]);
    let instances = instances.as_array().unwrap().clone();
    let pending = db.json(&["items", "--json"]);
    for instance in &instances {
        let id = instance["id"].as_i64().unwrap();
        let detail = db.json(&["show", &id.to_string(), "--json"]);
        match detail["status"].as_str().unwrap() {
            "Active" => {
                assert_eq!(detail["data"]["stage"], "waiting", "{detail}");
                let serials: Vec<&Json> =
                    pending.as_array().unwrap().iter().filter(|i| i["instance_id"] == id).collect();
                assert_eq!(serials.len(), 1, "instance {id} should wait on exactly one serial: {pending}");
            }
            "Completed" => {
                assert_eq!(detail["data"]["done"], true, "{detail}");
                assert_eq!(detail["data"]["name"], "call back value", "{detail}");
            }
            other => panic!("instance {id} is {other} after recovery: {detail}"),
        }
    }
    instances
}

#[test]
fn a_start_killed_before_its_first_commit_leaves_no_instance() {
    let db = Db::new();
    db.ok(&["deploy", &sample()]);
    let out = db.killed_at("before-commit:1", &["start", "callback"]);
    assert!(was_killed(&out));
    assert!(out.stdout.is_empty(), "nothing may be acknowledged");
    assert!(assert_consistent(&db).is_empty());
}

/// The callback sample whose waiting script hands its serial out through an
/// embedder's function, so that it runs after its server item is committed.
fn calling_out_process() -> flowdesk::model::ProcessDraft {
    let text = std::fs::read_to_string(sample())
        .unwrap()
        .replace("stage = \\\"waiting\\\";", "notify(serial);\\nstage = \\\"waiting\\\";");
    assert!(text.contains("notify(serial)"), "the sample's waiting script changed");
    flowdesk::model::ProcessDraft::from_json(&text, "calling out").unwrap()
}

fn calling_out_host() -> flowdesk::model::ScriptHost {
    flowdesk::model::ScriptHost::default().with_extension(std::sync::Arc::new(
        |engine: &mut flowdesk::model::script::rhai::Engine| {
            engine.register_fn("notify", |_serial: &str| {});
        },
    ))
}

const CHILD: &str = "FLOWDESK_CRASH_TEST_CHILD";

/// 2026-11-25 09:00:00 UTC: both runtimes' clocks start here and move only
/// when the test says.
const T0: Millis = 1_795_597_200_000;

/// The lease of a claim and of a heartbeat (`EngineOptions::lease_ms`).
const LEASE: Millis = 30_000;

struct TestClock(AtomicI64);

impl TestClock {
    fn at(millis: Millis) -> Arc<TestClock> {
        Arc::new(TestClock(AtomicI64::new(millis)))
    }

    fn set(&self, millis: Millis) {
        self.0.store(millis, Ordering::SeqCst);
    }
}

impl Clock for TestClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A runtime as a host opens one, on `clock`, ticking only when told.
fn runtime(path: &Path, clock: Arc<TestClock>, host: ScriptHost, hook: Option<Hook>) -> Runtime {
    let options = RuntimeOptions {
        ticking: Ticking::Manual,
        engine: EngineOptions { lease_ms: LEASE, ..EngineOptions::default() },
        clock,
        script_host: host,
        hook,
        ..RuntimeOptions::default()
    };
    Runtime::open(path, options).unwrap()
}

/// Two runtimes on one database, one of them killed (`kill -9`) in the
/// middle of a script, after it beat for its claim: the other takes the
/// instance over once the dead runner's last heartbeat has run out, and not
/// before (a runner killed a moment ago looks no different from a live
/// one). Scripts that cannot call out run inside the transaction that
/// creates their server item, so only an embedder's engine (with script
/// functions that reach other systems) runs one after a commit: this test
/// is such an embedder, and runs itself again as the child that dies.
#[test]
fn a_runtime_killed_mid_script_is_recovered_by_another_once_its_heartbeat_has_run_out() {
    if let Ok(path) = std::env::var(CHILD) {
        let clock = TestClock::at(T0);
        let opened: Arc<OnceLock<Arc<Runtime>>> = Arc::new(OnceLock::new());
        let hook: Hook = Arc::new({
            let (clock, opened) = (clock.clone(), opened.clone());
            move |point| {
                if point == HookPoint::BeforeAsyncScript {
                    // The claim was made at T0; the runner is still heard
                    // from ten seconds later, then dies before its script ran.
                    clock.set(T0 + 10_000);
                    opened.get().expect("the runtime is open").tick().expect("the beat is written");
                    let pid = std::process::id().to_string();
                    let _ = Command::new("kill").args(["-9", &pid]).status();
                }
            }
        });
        let child = Arc::new(runtime(Path::new(&path), clock, calling_out_host(), Some(hook)));
        let _ = opened.set(child.clone());
        let _ = child.engine().start("ops", "callback", "PO-9", &[]);
        unreachable!("the child dies before its script runs");
    }
    let db = Db::new();
    let clock = TestClock::at(T0);
    let survivor = runtime(&db.path, clock.clone(), calling_out_host(), None);
    survivor.engine().deploy("ops", &calling_out_process()).unwrap();
    // This test's name in the harness: its module path within the test crate.
    let name =
        concat!(module_path!(), "::a_runtime_killed_mid_script_is_recovered_by_another_once_its_heartbeat_has_run_out");
    let name = name.split_once("::").map_or(name, |(_crate, name)| name);
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture"])
        .env(CHILD, &db.path)
        .output()
        .unwrap();
    assert!(was_killed(&child), "the child should have been killed: {}", String::from_utf8_lossy(&child.stderr));

    // The item was committed, the script had not run: the instance is Running,
    // claimed by the dead runner, whose heartbeat holds until T0 + 10 s + LEASE.
    let status = |id| survivor.engine().instance("ops", id).unwrap().summary.status;
    assert_eq!(status(1), InstanceStatus::Running);
    clock.set(T0 + LEASE + 1);
    assert_eq!(survivor.tick().unwrap(), [], "the claim's lease ran out, but its runner was heard from since");
    assert_eq!(survivor.engine().held_claims().unwrap(), [(1, T0 + 10_000 + LEASE)]);
    clock.set(T0 + 10_000 + LEASE + 1);
    let recovered = survivor.tick().unwrap();
    assert_eq!(recovered.iter().map(|p| p.instance_id).collect::<Vec<_>>(), [1]);
    let detail = survivor.engine().instance("ops", 1).unwrap();
    assert_eq!(detail.summary.status, InstanceStatus::Active);
    assert!(detail.audit.iter().any(|entry| entry.action == AuditAction::Recovered), "{:?}", detail.audit);
    let serial = detail.pending_items[0].serial.to_string();
    // The dead runner's row is forgotten a lease after it ran out.
    clock.set(T0 + 10_000 + 2 * LEASE + 1);
    assert_eq!(survivor.tick().unwrap(), []);
    drop(survivor);

    let items = db.json(&["items", "--json"]);
    assert_eq!(items.as_array().unwrap().len(), 1, "{items}");
    assert_eq!(items[0]["serial"], serial.as_str());
    db.ok(&["finish", &serial, "--set", "name=call back value"]);
    let detail = db.json(&["show", "1", "--json"]);
    assert_eq!(detail["status"], "Completed");
    assert_eq!(detail["data"]["stage"], "waiting");
}

/// Two live runtimes on one database, each with an instance whose script
/// runs (held by the test) far longer than a lease: as long as each beats,
/// neither takes the other's instance over, and each instance's script runs
/// once.
#[test]
fn two_live_runtimes_never_take_each_others_work() {
    let db = Db::new();
    let clock = TestClock::at(T0);
    let (entered, held) = std::sync::mpsc::channel::<String>();
    let entered = Arc::new(Mutex::new(entered));
    let release = Arc::new((Mutex::new(false), Condvar::new()));
    let ran = Arc::new(Mutex::new(std::collections::HashSet::new()));
    let host = ScriptHost::default().with_extension(Arc::new({
        let (entered, release, ran) = (entered.clone(), release.clone(), ran.clone());
        move |engine: &mut flowdesk::model::script::rhai::Engine| {
            let (entered, release, ran) = (entered.clone(), release.clone(), ran.clone());
            engine.register_fn("notify", move |serial: &str| {
                entered.lock().unwrap().send(serial.to_owned()).unwrap();
                // Only a script's first run is held: one run again by a
                // runtime that took the instance over ends at once, so that
                // the test sees it instead of hanging.
                let (released, turn) = &*release;
                if !ran.lock().unwrap().insert(serial.to_owned()) {
                    return;
                }
                let mut released = released.lock().unwrap();
                while !*released {
                    released = turn.wait(released).unwrap();
                }
            });
        }
    }));
    let a = Arc::new(runtime(&db.path, clock.clone(), host.clone(), None));
    let b = Arc::new(runtime(&db.path, clock.clone(), host, None));
    a.engine().deploy("ops", &calling_out_process()).unwrap();
    let starts: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .enumerate()
        .map(|(n, runtime)| {
            std::thread::spawn(move || runtime.engine().start("ops", "callback", &format!("PO-{n}"), &[]))
        })
        .collect();
    let mut running: Vec<String> = (0..2).map(|_| held.recv().unwrap()).collect();
    running.sort();
    assert_eq!(running, ["1_2", "2_2"]);

    // Ten leases pass; both runtimes beat every half lease, and each looks
    // for abandoned work every time.
    for step in 1..=20 {
        clock.set(T0 + step * LEASE / 2);
        assert_eq!(a.tick().unwrap(), [], "at step {step}, a took work over");
        assert_eq!(b.tick().unwrap(), [], "at step {step}, b took work over");
    }
    let held_by: Vec<i64> = a.engine().held_claims().unwrap().into_iter().map(|(id, _)| id).collect();
    assert_eq!(held_by, [1, 2]);

    *release.0.lock().unwrap() = true;
    release.1.notify_all();
    for start in starts {
        assert_eq!(start.join().unwrap().unwrap().status, InstanceStatus::Active);
    }
    for id in [1, 2] {
        let detail = a.engine().instance("ops", id).unwrap();
        assert!(detail.audit.iter().all(|entry| entry.action != AuditAction::Recovered), "{:?}", detail.audit);
    }
    assert!(held.try_recv().is_err(), "each script ran once");
}

#[test]
fn a_finish_killed_after_its_commit_is_kept() {
    let db = Db::new();
    db.ok(&["deploy", &sample()]);
    db.ok(&["start", "callback"]);
    let out = db.killed_at("after-commit:1", &["finish", "1_2", "--set", "name=call back value"]);
    assert!(was_killed(&out));
    // Committed means kept, even though the caller never heard back; a retry by
    // the caller is answered "already finished".
    assert_eq!(db.json(&["show", "1", "--json"])["status"], "Completed");
    let retry = db.run(&["finish", "1_2"]);
    assert_eq!(retry.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&retry.stderr).contains("already finished"));
}

#[test]
fn a_finish_killed_before_its_commit_changes_nothing() {
    let db = Db::new();
    db.ok(&["deploy", &sample()]);
    db.ok(&["start", "callback"]);
    let before = db.ok(&["show", "1", "--json"]);
    let out = db.killed_at("before-commit:1", &["finish", "1_2", "--set", "name=call back value"]);
    assert!(was_killed(&out));
    assert_eq!(db.ok(&["show", "1", "--json"]), before);
    db.ok(&["finish", "1_2", "--set", "name=call back value"]);
    assert_eq!(db.json(&["show", "1", "--json"])["status"], "Completed");
}

/// Every hook point, at each of its first three occurrences, for both commands:
/// after each kill the database is consistent and every acknowledged effect is there.
#[test]
fn kill_at_every_commit_boundary_loses_nothing_acknowledged() {
    let db = Db::new();
    db.ok(&["deploy", &sample()]);
    let mut acknowledged_starts = Vec::new();
    let mut acknowledged_finishes = Vec::new();
    // The command line's scripts cannot call out, so they run inside the
    // transaction and `before-async-script` is never reached here; the test
    // above covers it.
    for point in ["before-commit", "after-commit"] {
        for nth in 1..=3 {
            let spec = format!("{point}:{nth}");
            let out = db.killed_at(&spec, &["start", "callback", "--folio", &spec]);
            if out.status.success() {
                acknowledged_starts.push(String::from_utf8(out.stdout).unwrap().trim().to_owned());
            } else {
                assert!(was_killed(&out), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
            }
            assert_consistent(&db);

            let items = db.json(&["items", "--json"]);
            if let Some(item) = items.as_array().unwrap().first() {
                let serial = item["serial"].as_str().unwrap().to_owned();
                let out = db.killed_at(&spec, &["finish", &serial, "--set", "name=call back value"]);
                if out.status.success() {
                    acknowledged_finishes.push(serial);
                } else {
                    assert!(was_killed(&out), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
                }
                assert_consistent(&db);
            }
        }
    }
    let instances = assert_consistent(&db);
    for id in &acknowledged_starts {
        let id: i64 = id.parse().unwrap();
        assert!(instances.iter().any(|i| i["id"] == id), "acknowledged instance {id} is missing");
    }
    for serial in &acknowledged_finishes {
        let id = serial.split('_').next().unwrap();
        assert_eq!(db.json(&["show", id, "--json"])["status"], "Completed", "acknowledged finish {serial} lost");
    }
    assert!(!acknowledged_starts.is_empty() && !acknowledged_finishes.is_empty());
}

/// The callback sample with deadlines on its wait: half an hour on, the
/// event runs again (once); an hour on, the item is finished with `name =
/// "timed out"` and the instance goes on to `Rejected`. Each instance's
/// two firings are made one after the other, in commits of their own.
fn deadline_sample(db: &Db) -> String {
    let text = std::fs::read_to_string(sample()).unwrap();
    let events = r#""events": [
        {
          "kind": "server_event",
          "name": "Call external system","#;
    let escalations = r#""escalations": [
        { "name": "Try again", "after": "30m", "action": { "repeat": { "times": 1 } } },
        { "name": "Give up", "after": "1h", "action": { "finish": { "set": { "name": "timed out" } } } }],
      "#;
    let text = text.replacen(events, &format!("{escalations}{events}"), 1);
    assert!(text.contains("Give up"), "the sample's waiting activity changed");
    let path = db.path.with_file_name("deadline.process.json");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// Two hours on, every deadline is due.
const LATER: &str = "7200000";

/// Each instance's deadlines each fired at most once, in their order: it
/// still waits (neither fired, or only the repeat), or it went on by its
/// last deadline, completed with its data after both fired once. Read
/// through a runtime of the test's own (the binary's `show` per instance
/// would cost a process each, at every one of many kills). Returns the
/// firings made.
fn assert_fired_at_most_once(path: &Path, ids: &[i64]) -> usize {
    let checker = runtime(path, TestClock::at(T0), ScriptHost::default(), None);
    let mut firings = 0;
    for &id in ids {
        let detail = checker.engine().instance("ops", id).unwrap();
        let fired: Vec<&str> = detail
            .audit
            .iter()
            .filter(|a| a.action == AuditAction::EscalationFired)
            .map(|a| a.detail.split('`').nth(1).unwrap())
            .collect();
        let name = detail.fields.iter().find(|(name, _, _)| name == "name").map(|(_, _, value)| value.to_string());
        match detail.summary.status {
            InstanceStatus::Active => {
                assert!(fired.is_empty() || fired == ["Try again"], "instance {id}: {fired:?}: {:?}", detail.audit);
                assert_eq!(
                    detail.timers.len(),
                    2 - fired.len(),
                    "the deadlines not fired are armed: {:?}",
                    detail.timers
                );
            }
            InstanceStatus::Completed => {
                assert_eq!(fired, ["Try again", "Give up"], "instance {id}: {:?}", detail.audit);
                assert_eq!(name.as_deref(), Some("timed out"), "instance {id}");
            }
            other => panic!("instance {id} is {other:?}: {:?}", detail.audit),
        }
        firings += fired.len();
    }
    firings
}

/// Instances with deadlines in one batch of `flowdesk timers run`: enough
/// that its firing threads share commits, and its commit boundaries are many.
const BATCH: usize = 10;

/// `kill -9` of `flowdesk timers run` in the middle of a batch of many
/// deadlines (two per instance, fired on its threads at once, sharing
/// group commits), at every commit boundary the run reaches, before each
/// commit and after it, up to the first `n` at which the run is no longer
/// killed because it had ended: after every kill no timer fired twice,
/// and the next run fires what is left, each once.
#[test]
fn timers_run_killed_at_every_commit_boundary_of_a_batch_fires_each_timer_once() {
    let template = Db::new();
    template.ok(&["deploy", &deadline_sample(&template)]);
    let ids: Vec<i64> = (0..BATCH)
        .map(|n| template.ok(&["start", "callback", "--folio", &n.to_string()]).trim().parse().unwrap())
        .collect();
    let files: Vec<PathBuf> = ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| PathBuf::from(format!("{}{suffix}", template.path.display())))
        .filter(|file| file.exists())
        .collect();
    let mut partial = 0;
    for point in ["before-commit", "after-commit"] {
        let mut boundaries = 0;
        for nth in 1.. {
            assert!(nth <= 8 * BATCH, "{point}: the run still reached a {nth}th commit");
            let db = Db::new();
            for file in &files {
                let name = file.file_name().unwrap().to_str().unwrap().replacen("crash.db", "", 1);
                std::fs::copy(file, format!("{}{name}", db.path.display())).unwrap();
            }
            let spec = format!("{point}:{nth}");
            let mut run = db.command(&["timers", "run"]);
            let out = run.env("FLOWDESK_CLOCK_OFFSET_MS", LATER).env("FLOWDESK_KILL_AT", &spec).output().unwrap();
            if out.status.success() {
                // Ended before reaching this boundary: every one before it was a kill.
                assert_eq!(assert_fired_at_most_once(&db.path, &ids), 2 * BATCH, "{spec}: every deadline fired");
                break;
            }
            assert!(was_killed(&out), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
            boundaries += 1;
            let firings = assert_fired_at_most_once(&db.path, &ids);
            if 0 < firings && firings < 2 * BATCH {
                partial += 1;
            }

            let out = db.command(&["timers", "run"]).env("FLOWDESK_CLOCK_OFFSET_MS", LATER).output().unwrap();
            assert!(out.status.success(), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
            assert_eq!(assert_fired_at_most_once(&db.path, &ids), 2 * BATCH, "{spec}: every deadline fired in the end");
        }
        assert!(boundaries >= 2 * BATCH, "{point}: a commit per firing at least, {boundaries} reached");
    }
    assert!(partial > 0, "no kill landed between two firings' commits");
}

/// Issue 19: a child's completion finishes its waiting parent in the
/// child's own transaction. Killed before that commit, neither changed (the
/// callback is sent again); killed after it, both did: never a completed
/// child with its parent waiting for ever. And a start killed before its
/// commit leaves neither the parent nor its children.
#[test]
fn a_childs_completion_and_its_parents_step_commit_together_or_not_at_all() {
    let db = Db::new();
    let sample = |name: &str| Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("samples/{name}.process.json"));
    for name in ["payment", "audit-log", "order"] {
        db.ok(&["deploy", sample(name).to_str().unwrap()]);
    }
    let out = db.killed_at("before-commit:1", &["start", "order"]);
    assert!(was_killed(&out));
    assert_eq!(db.json(&["instances", "--json"]), Json::Array(Vec::new()), "no parent and no orphan child");

    let order: i64 = db.ok(&["start", "order"]).trim().parse().unwrap();
    let payment = order + 2;
    let (order, payment) = (order.to_string(), payment.to_string());
    let (order, payment) = (order.as_str(), payment.as_str());
    let status = |id: &str| db.json(&["show", id, "--json"])["status"].as_str().unwrap().to_owned();
    assert_eq!((status(order), status(payment)), ("Active".to_owned(), "Active".to_owned()));
    let bank = format!("{payment}_1");
    let callback = ["finish", bank.as_str(), "--set", "reference=BANK-1"];
    let out = db.killed_at("before-commit:1", &callback);
    assert!(was_killed(&out));
    assert_eq!((status(order), status(payment)), ("Active".to_owned(), "Active".to_owned()));
    let out = db.killed_at("after-commit:1", &callback);
    assert!(was_killed(&out));
    assert_eq!((status(order), status(payment)), ("Completed".to_owned(), "Completed".to_owned()));
    assert_eq!(db.json(&["show", order, "--json"])["data"]["payment_ref"], "BANK-1");
}
