//! Planned writes seen from the engine's API: start and finish do their work
//! on a snapshot first and only check and apply it under the write lock. What
//! a caller sees must be what it saw when every call ran in the transaction:
//! one finish of a serial wins, every other is "already finished"; no instance
//! id is handed out twice; a finish on a stopped instance is kept for resume.
//!
//! Races are brought about without sleeping. Threads meet at a `Barrier` and
//! are joined. A change committed exactly between a call's planning and its
//! apply is forced through the engine's clock: the planned work asks the clock
//! for the time after it has read what it rests on, so a clock that commits a
//! change through a second engine at that moment lands it inside the window.
//! (The `HookPoint`s cannot: `BeforeCommit` is reached under the write lock,
//! after the plan was checked and applied, and the others after the commit.)
//!
//! The races are part of the conformance suite (see `engine_scenarios.rs`):
//! what a caller sees must be the same on a store that does not plan (the
//! memory store runs every write under its lock), so they run on every
//! backend. The interruptions between planning and apply stay on SQLite:
//! a store that does not plan has no such moment, and an interruption there
//! would wait for the lock the interrupted call holds.

use crate::support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use flowdesk::engine::{
    AuditAction, Clock, Engine, EngineError, EngineOptions, Finished, InstanceFilter, InstanceStatus, ItemFilter,
    ItemStatus, Millis,
};
use flowdesk::model::{Right, ScriptHost, Value};
use flowdesk::store::{Durability, SqliteStore};
use support::{Backend, FixedClock, Fixture, T0, open_engine, s, sample, set};

/// Callers racing for one serial.
const FINISHERS: usize = 16;

/// Instances raced for, one after the other: each round is another chance
/// for the callers to interleave differently.
const ROUNDS: usize = 4;

fn callback_fixture<S: Backend>() -> Fixture<S> {
    let fx = Fixture::fresh();
    fx.deploy_sample("admin", "callback.process.json");
    for i in 0..FINISHERS {
        fx.engine.grant("admin", "callback", &finisher(i), &[Right::ServerEvent]).unwrap();
    }
    fx
}

fn finisher(i: usize) -> String {
    format!("finisher{i}")
}

/// Lines of the trail that record a finish.
fn finishes_in(trail: &[String]) -> Vec<&String> {
    trail.iter().filter(|line| line.contains("Server item finished")).collect()
}

/// `FINISHERS` threads finish the same serial at once, thread `i` through
/// `engines[i % engines.len()]`, each setting `stage` to its own name so the
/// winner's data can be told apart. Checks that exactly one finish won and
/// applied, every other was refused as finished by the winner, and the
/// instance ran on once.
fn race_finishes<S: Backend>(fx: &Fixture<S>, engines: &[&Engine<S>]) {
    for round in 0..ROUNDS {
        let id = fx.engine.start("admin", "callback", &format!("race {round}"), &[]).unwrap().instance_id;
        let serial = format!("{id}_2");
        let barrier = Barrier::new(FINISHERS);
        let results: Vec<(String, Result<Finished, EngineError>)> = std::thread::scope(|scope| {
            let callers: Vec<_> = (0..FINISHERS)
                .map(|i| {
                    let engine = engines[i % engines.len()];
                    let (barrier, serial) = (&barrier, &serial);
                    scope.spawn(move || {
                        let user = finisher(i);
                        let data = set(&[("name", "call back value"), ("stage", &user)]);
                        barrier.wait();
                        let result = engine.finish(&user, support::parse_serial(serial), &data);
                        (user, result)
                    })
                })
                .collect();
            callers.into_iter().map(|caller| caller.join().unwrap()).collect()
        });

        let winners: Vec<&(String, Result<Finished, EngineError>)> =
            results.iter().filter(|(_, result)| result.is_ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: exactly one finish wins: {results:#?}");
        let (winner, won) = winners[0];
        let won = won.as_ref().unwrap();
        assert!(won.applied, "{won:?}");
        assert_eq!(won.progress.status, InstanceStatus::Completed);
        for (user, result) in &results {
            match result {
                Ok(_) => assert_eq!(user, winner),
                Err(EngineError::AlreadyFinished { serial: refused, by, .. }) => {
                    assert_eq!((refused, by), (&serial, winner), "{user} is refused because of the winner");
                }
                Err(other) => panic!("round {round}: {user} got {other:?} instead of already finished"),
            }
        }

        // The instance ran on once, with the winner's data.
        let trail = fx.trail(id);
        let finishes = finishes_in(&trail);
        assert_eq!(finishes.len(), 1, "{trail:#?}");
        assert!(finishes[0].starts_with(&format!("{winner}: Server item finished {serial}; set")), "{trail:#?}");
        assert_eq!(trail.iter().filter(|line| line.ends_with("Instance completed")).count(), 1, "{trail:#?}");
        assert_eq!(fx.field(id, "stage"), s(winner));
        assert_eq!(fx.field(id, "done"), Value::Boolean(true));
        assert_eq!(fx.detail("admin", id).summary.status, InstanceStatus::Completed);
    }
    // Counted once, by whichever finish won, through every batch.
    assert_eq!(fx.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

fn many_finishes_of_one_serial_through_one_engine_complete_it_once<S: Backend>() {
    let fx = callback_fixture::<S>();
    race_finishes(&fx, &[&fx.engine]);
}

fn many_finishes_of_one_serial_through_two_engines_on_one_file_complete_it_once<S: Backend>() {
    let fx = callback_fixture::<S>();
    let second = fx.second_engine();
    race_finishes(&fx, &[&fx.engine, &second]);
}

fn concurrent_starts_through_two_engines_on_one_file_never_share_an_id<S: Backend>() {
    const STARTERS: usize = 16;
    const STARTS_EACH: usize = 8;
    let fx = Fixture::<S>::fresh();
    fx.deploy_sample("admin", "callback.process.json");
    let second = fx.second_engine();
    let engines = [&fx.engine, &second];
    let barrier = Barrier::new(STARTERS);

    // (folio, id) of every start that was acknowledged.
    let started: Vec<(String, i64)> = std::thread::scope(|scope| {
        let starters: Vec<_> = (0..STARTERS)
            .map(|i| {
                let engine = engines[i % engines.len()];
                let barrier = &barrier;
                scope.spawn(move || {
                    barrier.wait();
                    (0..STARTS_EACH)
                        .map(|k| {
                            let folio = format!("starter {i} start {k}");
                            let progress = engine.start("admin", "callback", &folio, &[]).unwrap();
                            assert_eq!(progress.status, InstanceStatus::Active, "{folio}");
                            assert_eq!(progress.waiting, [format!("{}_2", progress.instance_id)], "{folio}");
                            (folio, progress.instance_id)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        starters.into_iter().flat_map(|starter| starter.join().unwrap()).collect()
    });

    let total = STARTERS * STARTS_EACH;
    let ids: BTreeSet<i64> = started.iter().map(|(_, id)| *id).collect();
    assert_eq!(ids.len(), total, "an id was handed out twice: {started:?}");

    // Every acknowledged start is there, as it was acknowledged.
    for (folio, id) in &started {
        let detail = fx.detail("admin", *id);
        assert_eq!(&detail.summary.folio, folio);
        assert_eq!(detail.summary.status, InstanceStatus::Active);
        let starts = detail.audit.iter().filter(|entry| entry.action == AuditAction::InstanceStarted).count();
        assert_eq!(starts, 1, "{folio}");
    }
    let everything = InstanceFilter { limit: 0, ..InstanceFilter::default() };
    assert_eq!(fx.engine.count_instances("admin", &everything).unwrap(), total as u64);
    let listed: BTreeSet<i64> =
        fx.engine.instances("admin", &everything).unwrap().into_iter().map(|summary| summary.id).collect();
    assert_eq!(listed, ids);

    // One pending serial per instance, and nothing else.
    let items = fx.engine.items("admin", &ItemFilter { limit: 0, ..ItemFilter::default() }).unwrap();
    assert_eq!(items.len(), total);
    let serials: BTreeSet<String> = items.iter().map(|item| item.serial.to_string()).collect();
    let expected: BTreeSet<String> = ids.iter().map(|id| format!("{id}_2")).collect();
    assert_eq!(serials, expected);
    assert!(items.iter().all(|item| item.status == ItemStatus::Pending));
    assert_eq!(fx.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

fn a_finish_on_a_stopped_instance_is_recorded_then_applied_on_resume_and_a_second_finish_is_refused<S: Backend>() {
    let fx = callback_fixture::<S>();
    let second = fx.second_engine();
    let id = fx.engine.start("admin", "callback", "held", &[]).unwrap().instance_id;
    let serial = format!("{id}_2");
    assert_eq!(fx.engine.stop("admin", id).unwrap().status, InstanceStatus::Stopped);

    let finished =
        fx.engine.finish("finisher0", support::parse_serial(&serial), &set(&[("name", "call back value")])).unwrap();
    assert!(!finished.applied, "{finished:?}");
    assert_eq!(finished.progress.status, InstanceStatus::Stopped);
    assert!(finished.progress.waiting.is_empty(), "the instance no longer waits on {serial}");
    // Recorded, not applied.
    assert_eq!(fx.field(id, "name"), s(""));
    let closed = fx.engine.items("admin", &ItemFilter { include_closed: true, ..ItemFilter::default() }).unwrap();
    let item = closed.iter().find(|item| item.serial.to_string() == serial).unwrap();
    assert_eq!(item.status, ItemStatus::Finished);
    assert_eq!(item.closed_by.as_deref(), Some("finisher0"));
    assert!(item.unapplied.is_some());

    // A second delivery, from another process, while it is still stopped.
    match second.finish("finisher1", support::parse_serial(&serial), &set(&[("name", "other answer")])) {
        Err(EngineError::AlreadyFinished { by, .. }) => assert_eq!(by, "finisher0"),
        other => panic!("expected already finished, got {other:?}"),
    }
    assert_eq!(fx.detail("admin", id).summary.status, InstanceStatus::Stopped);

    let resumed = fx.engine.resume("admin", id).unwrap();
    assert_eq!(resumed.status, InstanceStatus::Completed);
    assert_eq!(fx.field(id, "name"), s("call back value"));
    assert_eq!(fx.field(id, "done"), Value::Boolean(true));
    let trail = fx.trail(id);
    assert_eq!(finishes_in(&trail).len(), 1, "{trail:#?}");
    let applied: Vec<&String> = trail.iter().filter(|line| line.contains("Callback applied")).collect();
    assert_eq!(applied.len(), 1, "{trail:#?}");
    assert!(applied[0].contains(&format!("{serial} finished by finisher0")), "{trail:#?}");
    assert!(matches!(
        fx.engine.finish("finisher2", support::parse_serial(&serial), &[]),
        Err(EngineError::AlreadyFinished { .. })
    ));
}

fn many_finishes_of_one_serial_on_a_stopped_instance_record_it_once<S: Backend>() {
    let fx = callback_fixture::<S>();
    let second = fx.second_engine();
    let engines = [&fx.engine, &second];
    let id = fx.engine.start("admin", "callback", "held", &[]).unwrap().instance_id;
    let serial = format!("{id}_2");
    fx.engine.stop("admin", id).unwrap();
    let barrier = Barrier::new(FINISHERS);
    let results: Vec<(String, Result<Finished, EngineError>)> = std::thread::scope(|scope| {
        let callers: Vec<_> = (0..FINISHERS)
            .map(|i| {
                let engine = engines[i % engines.len()];
                let (barrier, serial) = (&barrier, &serial);
                scope.spawn(move || {
                    let user = finisher(i);
                    let data = set(&[("name", "call back value"), ("stage", &user)]);
                    barrier.wait();
                    let result = engine.finish(&user, support::parse_serial(serial), &data);
                    (user, result)
                })
            })
            .collect();
        callers.into_iter().map(|caller| caller.join().unwrap()).collect()
    });
    let recorded: Vec<_> = results.iter().filter(|(_, result)| result.is_ok()).collect();
    assert_eq!(recorded.len(), 1, "{results:#?}");
    let (winner, finished) = recorded[0];
    assert!(!finished.as_ref().unwrap().applied);
    for (user, result) in &results {
        match result {
            Ok(_) => {}
            Err(EngineError::AlreadyFinished { by, .. }) => assert_eq!(by, winner, "{user}"),
            Err(other) => panic!("{user} got {other:?} instead of already finished"),
        }
    }
    assert_eq!(fx.detail("admin", id).summary.status, InstanceStatus::Stopped);
    assert_eq!(fx.engine.resume("admin", id).unwrap().status, InstanceStatus::Completed);
    assert_eq!(fx.field(id, "stage"), s(winner));
    let trail = fx.trail(id);
    assert_eq!(finishes_in(&trail).len(), 1, "{trail:#?}");
    assert_eq!(trail.iter().filter(|line| line.contains("Callback applied")).count(), 1, "{trail:#?}");
}

// ----- a change committed between planning and apply -----------------------

/// Something to do the next time the clock is read.
type Interruption = Box<dyn FnOnce() + Send>;

/// A fixed clock that, once armed, runs an action the next time it is read:
/// inside the planned work, after the work read what it rests on.
struct InterruptingClock {
    now: AtomicI64,
    next: Mutex<Option<Interruption>>,
}

impl InterruptingClock {
    fn arm(&self, action: impl FnOnce() + Send + 'static) {
        *self.next.lock().unwrap() = Some(Box::new(action));
    }

    fn armed(&self) -> bool {
        self.next.lock().unwrap().is_some()
    }
}

impl Clock for InterruptingClock {
    fn now(&self) -> Millis {
        let action = self.next.lock().unwrap().take();
        if let Some(action) = action {
            action();
        }
        self.now.load(Ordering::SeqCst)
    }
}

/// An engine on the interrupting clock, a second engine on the same file
/// (another process), and the callback sample deployed with `biztalk`
/// holding Server Event.
struct Interrupted {
    _dir: tempfile::TempDir,
    clock: Arc<InterruptingClock>,
    engine: Engine<SqliteStore>,
    other: Arc<Engine<SqliteStore>>,
}

impl Interrupted {
    fn new() -> Interrupted {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowdesk.db");
        let clock = Arc::new(InterruptingClock { now: AtomicI64::new(T0), next: Mutex::new(None) });
        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let engine = Engine::with_options(store, EngineOptions::default(), ScriptHost::default(), clock.clone());
        engine.deploy("admin", &sample("callback.process.json")).unwrap();
        engine.grant("admin", "callback", "biztalk", &[Right::ServerEvent]).unwrap();
        let other_clock = Arc::new(FixedClock(AtomicI64::new(T0 + 1)));
        let other = Arc::new(open_engine(&path, other_clock, ScriptHost::default()));
        Interrupted { _dir: dir, clock, engine, other }
    }

    /// Arms the clock with `action` on the other engine; returns where its
    /// outcome is put.
    fn interrupt_with<T: Send + 'static>(
        &self,
        action: impl FnOnce(&Engine<SqliteStore>) -> T + Send + 'static,
    ) -> Arc<Mutex<Option<T>>> {
        let outcome = Arc::new(Mutex::new(None));
        let (slot, other) = (outcome.clone(), self.other.clone());
        self.clock.arm(move || *slot.lock().unwrap() = Some(action(&other)));
        outcome
    }

    fn trail(&self, id: i64) -> Vec<String> {
        let detail = self.engine.instance("admin", id).unwrap();
        detail.audit.iter().map(|a| format!("{}: {} {}", a.user, a.action, a.detail).trim_end().to_owned()).collect()
    }

    fn field(&self, id: i64, name: &str) -> Value {
        let detail = self.engine.instance("admin", id).unwrap();
        detail.fields.into_iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v).unwrap()
    }
}

/// Takes what the interruption did, checking that it ran.
fn outcome<T>(slot: &Mutex<Option<T>>) -> T {
    slot.lock().unwrap().take().expect("the interruption never ran: the call did not read the clock")
}

#[test]
fn a_revoke_committed_between_planning_and_apply_refuses_the_finish() {
    let it = Interrupted::new();
    let id = it.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let serial = format!("{id}_2");
    let revoked = it.interrupt_with(|other| other.revoke("admin", "callback", "biztalk", &[Right::ServerEvent]));

    let refused = it.engine.finish("biztalk", support::parse_serial(&serial), &set(&[("name", "call back value")]));
    outcome(&revoked).unwrap();
    assert!(
        matches!(&refused, Err(EngineError::PermissionDenied { right: Right::ServerEvent, user, .. }) if user == "biztalk"),
        "{refused:?}"
    );
    // Nothing of the planned finish was applied.
    let detail = it.engine.instance("admin", id).unwrap();
    assert_eq!(detail.summary.status, InstanceStatus::Active);
    assert_eq!(detail.pending_items.iter().map(|item| item.serial.to_string()).collect::<Vec<_>>(), [serial]);
    assert!(finishes_in(&it.trail(id)).is_empty());
    assert_eq!(it.field(id, "name"), s(""));
    assert_eq!(it.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

#[test]
fn a_finish_committed_elsewhere_between_planning_and_apply_makes_this_one_already_finished() {
    let it = Interrupted::new();
    it.engine.grant("admin", "callback", "other", &[Right::ServerEvent]).unwrap();
    let id = it.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let serial = format!("{id}_2");
    let first = {
        let serial = serial.clone();
        it.interrupt_with(move |other| {
            other.finish("other", support::parse_serial(&serial), &set(&[("name", "other answer")]))
        })
    };

    let second = it.engine.finish("biztalk", support::parse_serial(&serial), &set(&[("name", "call back value")]));
    let first = outcome(&first).unwrap();
    assert!(first.applied);
    match second {
        Err(EngineError::AlreadyFinished { by, .. }) => assert_eq!(by, "other"),
        other => panic!("expected already finished, got {other:?}"),
    }
    // The instance ran on once, on the first finish's data (the "rejected" branch).
    assert_eq!(it.field(id, "name"), s("other answer"));
    assert_eq!(it.field(id, "done"), Value::Boolean(false));
    let trail = it.trail(id);
    assert_eq!(finishes_in(&trail).len(), 1, "{trail:#?}");
    assert_eq!(trail.iter().filter(|line| line.ends_with("Instance completed")).count(), 1, "{trail:#?}");
    // The plan made stale was not counted beside the work run again.
    assert_eq!(it.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

#[test]
fn a_stop_committed_between_planning_and_apply_turns_the_finish_into_a_recorded_one() {
    let it = Interrupted::new();
    let id = it.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let serial = format!("{id}_2");
    let stopped = it.interrupt_with(move |other| other.stop("admin", id));

    let finished =
        it.engine.finish("biztalk", support::parse_serial(&serial), &set(&[("name", "call back value")])).unwrap();
    assert_eq!(outcome(&stopped).unwrap().status, InstanceStatus::Stopped);
    // The plan (apply and complete) was made on an Active instance; the stop
    // must win, and the finish be kept for the resume.
    assert!(!finished.applied, "{finished:?}");
    assert_eq!(finished.progress.status, InstanceStatus::Stopped);
    assert_eq!(it.engine.instance("admin", id).unwrap().summary.status, InstanceStatus::Stopped);
    assert_eq!(it.field(id, "name"), s(""));
    assert_eq!(it.engine.check_aggregates().unwrap(), Vec::<String>::new());

    assert_eq!(it.engine.resume("admin", id).unwrap().status, InstanceStatus::Completed);
    assert_eq!(it.field(id, "done"), Value::Boolean(true));
    assert_eq!(finishes_in(&it.trail(id)).len(), 1);
    assert_eq!(it.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

#[test]
fn a_redeploy_committed_between_planning_and_apply_starts_on_the_new_version() {
    let it = Interrupted::new();
    let redeployed = it.interrupt_with(|other| other.deploy("admin", &sample("callback.process.json")));

    let started = it.engine.start("admin", "callback", "during redeploy", &[]).unwrap();
    assert_eq!(outcome(&redeployed).unwrap().version, 2);
    let detail = it.engine.instance("admin", started.instance_id).unwrap();
    assert_eq!(detail.summary.version, 2, "the default version when the start was applied");
    let trail = it.trail(started.instance_id);
    assert!(trail.iter().any(|line| line.contains("callback version 2")), "{trail:#?}");
    assert_eq!(it.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

#[test]
fn an_instance_id_taken_by_another_process_between_planning_and_apply_is_not_reused() {
    let it = Interrupted::new();
    // The clock is read before the new id is taken: the other process's start
    // commits first, and the planned start, on its older snapshot, picks the
    // same id.
    let elsewhere = it.interrupt_with(|other| other.start("admin", "callback", "other process", &[]));

    let here = it.engine.start("admin", "callback", "this process", &[]).unwrap();
    let elsewhere = outcome(&elsewhere).unwrap();
    assert!(!it.clock.armed());
    assert_ne!(here.instance_id, elsewhere.instance_id);
    let folio = |id| it.engine.instance("admin", id).unwrap().summary.folio;
    assert_eq!(folio(elsewhere.instance_id), "other process");
    assert_eq!(folio(here.instance_id), "this process");
    assert_eq!(it.engine.count_instances("admin", &InstanceFilter::default()).unwrap(), 2);
}

/// Planning takes a user's rights, the default version and the next instance
/// id from memory rather than reading them for every call. Another process
/// (a second engine on the file, with its own memory) changing any of them
/// must be honoured by the very next call, in both directions.
fn what_planning_remembers_yields_at_once_to_another_process<S: Backend>() {
    let fx = callback_fixture::<S>();
    let other = fx.second_engine();
    let finish = |engine: &Engine<S>, user: &str, id: i64| {
        engine.finish(user, support::parse_serial(&format!("{id}_2")), &set(&[("name", "call back value")]))
    };
    let started: Vec<i64> =
        (0..3).map(|_| fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id).collect();

    // Refused, and remembered as having no right: a grant elsewhere lifts it.
    let refused = fx.engine.start("bob", "callback", "", &[]);
    assert!(matches!(refused, Err(EngineError::PermissionDenied { .. })), "{refused:?}");
    other.grant("admin", "callback", "bob", &[Right::Start]).unwrap();
    let bobs = fx.engine.start("bob", "callback", "bob's", &[]).unwrap();
    assert_eq!(bobs.status, InstanceStatus::Active);

    // Remembered as holding Server Event: a revoke elsewhere stops the next finish.
    finish(&fx.engine, &finisher(0), started[0]).unwrap();
    other.revoke("admin", "callback", &finisher(0), &[Right::ServerEvent]).unwrap();
    let revoked = finish(&fx.engine, &finisher(0), started[1]);
    assert!(matches!(revoked, Err(EngineError::PermissionDenied { .. })), "{revoked:?}");
    let waiting = fx.engine.instance("admin", started[1]).unwrap();
    assert_eq!(waiting.summary.status, InstanceStatus::Active, "the refused finish changed nothing");
    // And granted back, it works again.
    other.grant("admin", "callback", &finisher(0), &[Right::ServerEvent]).unwrap();
    finish(&fx.engine, &finisher(0), started[1]).unwrap();

    // A version deployed elsewhere is the one the next start runs.
    let redeployed = other.deploy("admin", &sample("callback.process.json")).unwrap().version;
    assert_eq!(redeployed, 2);
    let on_new = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    assert_eq!(fx.engine.instance("admin", on_new).unwrap().summary.version, 2);

    // Ids taken elsewhere are not handed out again.
    let theirs: Vec<i64> = (0..3).map(|_| other.start("admin", "callback", "", &[]).unwrap().instance_id).collect();
    let ours: Vec<i64> = (0..3).map(|_| fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id).collect();
    let mut every: Vec<i64> =
        started.iter().chain([&bobs.instance_id, &on_new]).chain(&theirs).chain(&ours).copied().collect();
    let count = every.len();
    every.sort_unstable();
    every.dedup();
    assert_eq!(every.len(), count, "an id was handed out twice: {every:?}");
    for id in every {
        let instance = fx.engine.instance("admin", id).unwrap();
        assert!(
            matches!(instance.summary.status, InstanceStatus::Active | InstanceStatus::Completed),
            "instance {id}: {:?}",
            instance.summary.status
        );
    }
    assert_eq!(fx.engine.count_instances("admin", &InstanceFilter::default()).unwrap(), 3 + 1 + 1 + 3 + 3);
}

support::on_every_backend! {
    many_finishes_of_one_serial_through_one_engine_complete_it_once,
    many_finishes_of_one_serial_through_two_engines_on_one_file_complete_it_once,
    concurrent_starts_through_two_engines_on_one_file_never_share_an_id,
    a_finish_on_a_stopped_instance_is_recorded_then_applied_on_resume_and_a_second_finish_is_refused,
    many_finishes_of_one_serial_on_a_stopped_instance_record_it_once,
    what_planning_remembers_yields_at_once_to_another_process,
}
