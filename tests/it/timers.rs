//! Issue 17's engine: deadlines, escalations and timer events, fired by the
//! durable scheduler, as scenarios on the fixture's clock (moved, never
//! waited for). Part of the conformance suite: each scenario runs on every
//! backend (`timers::sqlite::…`, `timers::memory::…`), but the runtime's,
//! which opens a database file.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use flowdesk::engine::{
    AuditAction, EngineError, Firing, InstanceFilter, InstanceStatus, ItemFilter, ItemStatus, Timer, TimerState,
};

use crate::support::external::{ExternalSystem, Reply};
use crate::support::{self, Backend, Fixture, T0, parse_serial, s, set};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

/// The article's scenario with deadlines: if the external system has not
/// called back within an hour, chase it up; after three, give up.
fn deadline_process(escalations: &str) -> String {
    format!(
        r#"{{
  "name": "deadline",
  "fields": [
    {{ "name": "name", "type": "string" }},
    {{ "name": "tries", "type": "integer" }},
    {{ "name": "reply_by", "type": "datetime" }}
  ],
  "activities": [
    {{ "id": "prepare", "name": "Prepare", "start": true }},
    {{ "id": "call", "name": "Call external system", "events": [
      {{ "kind": "server_event", "name": "Send", "synchronous": false, "script": "tries += 1;" }} ],
      "escalations": {escalations} }},
    {{ "id": "approved", "name": "Approved" }},
    {{ "id": "rejected", "name": "Rejected" }},
    {{ "id": "manual", "name": "Manual", "events": [
      {{ "kind": "server_event", "name": "Handle by hand", "synchronous": false, "script": "" }} ] }}
  ],
  "lines": [
    {{ "from": "prepare", "to": "call" }},
    {{ "from": "call", "to": "approved", "rule": "name == \"call back value\"" }},
    {{ "from": "call", "to": "rejected", "rule": "name != \"call back value\"" }}
  ]
}}"#
    )
}

const GIVE_UP: &str = r#"[
  { "name": "Give up", "after": "3h", "action": { "finish": { "set": { "name": "timed out" } } } } ]"#;

fn fixture<S: Backend>(escalations: &str) -> Fixture<S> {
    let fx = Fixture::fresh();
    fx.deploy_json("admin", &deadline_process(escalations));
    fx
}

fn start<S: Backend>(fx: &Fixture<S>) -> i64 {
    fx.engine.start("admin", "deadline", "", &[]).unwrap().instance_id
}

/// Fires everything due on the fixture's engine, as the ticker does.
fn fire<S: Backend>(fx: &Fixture<S>) -> usize {
    let round = fx.engine.fire_due(&|| true).unwrap();
    assert!(round.failed.is_empty(), "{:?}", round.failed);
    round.fired
}

fn timers<S: Backend>(fx: &Fixture<S>, id: i64) -> Vec<Timer> {
    fx.engine.store().read(|tx| tx.timers_of(id)).unwrap()
}

fn trail_of<S: Backend>(fx: &Fixture<S>, id: i64, action: AuditAction) -> Vec<String> {
    fx.detail("admin", id).audit.into_iter().filter(|a| a.action == action).map(|a| a.detail).collect()
}

fn status<S: Backend>(fx: &Fixture<S>, id: i64) -> InstanceStatus {
    fx.detail("admin", id).summary.status
}

fn a_deadline_finishes_the_item_with_its_data_and_the_instance_goes_on<S: Backend>() {
    let fx = fixture::<S>(GIVE_UP);
    let id = start(&fx);
    let item = &fx.detail("admin", id).pending_items[0];
    assert_eq!(item.due_at, Some(T0 + 3 * HOUR), "the item says when its deadline falls due");
    assert_eq!(fx.detail("admin", id).summary.due_at, Some(T0 + 3 * HOUR));

    fx.clock.advance(3 * HOUR - 1);
    assert_eq!(fire(&fx), 0, "not due a millisecond early");
    fx.clock.advance(1);
    assert_eq!(fire(&fx), 1);

    let detail = fx.detail("admin", id);
    assert_eq!(detail.summary.status, InstanceStatus::Completed);
    assert_eq!(fx.field(id, "name"), s("timed out"));
    assert!(detail.activities.iter().any(|a| a.activity == "Rejected"), "{:?}", detail.activities);
    assert_eq!(
        trail_of(&fx, id, AuditAction::EscalationFired),
        [format!("`Give up` on {id}_2, due 2026-11-25 12:00:00 UTC: finished the item; set name = \"timed out\"")]
    );
    let all = ItemFilter { include_closed: true, instance_id: Some(id), ..ItemFilter::default() };
    let item = fx.engine.items("admin", &all).unwrap().remove(0);
    assert_eq!((item.status, item.closed_by.as_deref(), item.due_at), (ItemStatus::Finished, Some("deadline"), None));
    assert_eq!(timers(&fx, id)[0].state, TimerState::Fired);
    assert_eq!(fx.detail("admin", id).summary.due_at, None);
}

fn a_callback_after_the_deadline_is_refused_saying_the_deadline_won_and_when<S: Backend>() {
    let fx = fixture::<S>(GIVE_UP);
    let id = start(&fx);
    fx.clock.advance(3 * HOUR + 5_000);
    fire(&fx);
    let before = fx.snapshot(id);

    let late = fx.engine.finish("admin", parse_serial(&format!("{id}_2")), &set(&[("name", "call back value")]));

    let err = late.unwrap_err();
    assert!(matches!(&err, EngineError::AlreadyFinished { by, .. } if by == "deadline"), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!("server item {id}_2 was already finished at 2026-11-25 12:00:05 UTC by deadline")
    );
    assert_eq!(fx.snapshot(id), before, "the refused callback changed nothing");
}

fn a_callback_before_the_deadline_disarms_it_and_the_deadline_then_does_nothing<S: Backend>() {
    let fx = fixture::<S>(GIVE_UP);
    let id = start(&fx);
    fx.clock.advance(HOUR);
    fx.engine.finish("admin", parse_serial(&format!("{id}_2")), &set(&[("name", "call back value")])).unwrap();
    assert_eq!(timers(&fx, id)[0].state, TimerState::Disarmed, "disarmed in the callback's transaction");

    fx.clock.advance(10 * HOUR);
    assert_eq!(fire(&fx), 0);
    assert_eq!(fx.field(id, "name"), s("call back value"));
    assert!(trail_of(&fx, id, AuditAction::EscalationFired).is_empty());
}

fn a_go_to_escalation_cancels_the_item_and_starts_the_activity<S: Backend>() {
    let fx =
        fixture::<S>(r#"[{ "name": "Hand over", "after": "30m", "action": { "go_to": { "activity": "manual" } } }]"#);
    let id = start(&fx);
    fx.clock.advance(30 * MINUTE);
    assert_eq!(fire(&fx), 1);

    let detail = fx.detail("admin", id);
    assert_eq!(detail.summary.status, InstanceStatus::Active);
    assert_eq!(detail.pending_items.iter().map(|i| i.activity.as_str()).collect::<Vec<_>>(), ["Manual"]);
    let all = ItemFilter { include_closed: true, instance_id: Some(id), ..ItemFilter::default() };
    let first = fx.engine.items("admin", &all).unwrap().into_iter().find(|i| i.activity != "Manual").unwrap();
    assert_eq!((first.status, first.closed_by.as_deref()), (ItemStatus::Cancelled, Some("deadline")));
    assert!(trail_of(&fx, id, AuditAction::EscalationFired)[0].ends_with("going to `Manual`"));
}

fn a_repeat_runs_the_event_again_on_the_same_serial_up_to_its_times_then_the_next_escalation_acts<S: Backend>() {
    let fx = fixture::<S>(
        r#"[{ "name": "Try again", "after": "10m", "action": { "repeat": { "times": 2 } } },
            { "name": "Give up", "after": "1h", "action": { "finish": { "set": { "name": "timed out" } } } }]"#,
    );
    let id = start(&fx);
    let serial = format!("{id}_2");
    assert_eq!(fx.field(id, "tries"), flowdesk::model::Value::Integer(1));

    for tries in [2, 3] {
        fx.clock.advance(10 * MINUTE);
        assert_eq!(fire(&fx), 1);
        assert_eq!(fx.field(id, "tries"), flowdesk::model::Value::Integer(tries), "the script ran again");
        let pending: Vec<String> = fx.detail("admin", id).pending_items.iter().map(|i| i.serial.to_string()).collect();
        assert_eq!(pending, [serial.as_str()], "on the same serial");
    }
    fx.clock.advance(10 * MINUTE);
    assert_eq!(fire(&fx), 0, "two repeats and no more");
    fx.clock.advance(30 * MINUTE);
    assert_eq!(fire(&fx), 1);
    assert_eq!(status(&fx, id), InstanceStatus::Completed);
    assert_eq!(fx.field(id, "name"), s("timed out"));
    let fired = trail_of(&fx, id, AuditAction::EscalationFired);
    assert_eq!(fired.len(), 3, "{fired:?}");
    assert!(fired[1].ends_with("running `Send` again (2 of 2)"), "{fired:?}");
}

/// A runtime that dies between claiming a notification and sending it (a
/// panic at `before-async-script`, where a `kill -9` would land) leaves it
/// claimed: nobody sends it until the claim (a minute and the request's
/// timeout) has run out, and then it is sent again. At least once, never lost.
fn a_notification_claimed_by_a_runtime_that_died_is_sent_once_its_claim_runs_out<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::ok());
    let escalations = format!(
        r#"[{{ "name": "Chase up", "after": "1h", "action": {{ "notify": {{
            "method": "POST", "url": "{}", "timeout_seconds": 10 }} }} }}]"#,
        external.url("/chase")
    );
    let fx = fixture::<S>(&escalations);
    let id = start(&fx);
    fx.clock.advance(HOUR);
    let dying = fx.second_engine().with_hook(Arc::new(|point| {
        if point == flowdesk::engine::HookPoint::BeforeAsyncScript {
            panic!("the runtime dies (on purpose, in a test)");
        }
    }));
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dying.fire_due(&|| true)));
    assert!(died.is_err());
    assert!(external.requests().is_empty());
    let timer = timers(&fx, id).remove(0);
    assert_eq!((timer.state, timer.fired_count), (TimerState::Armed, 1), "claimed");

    fx.clock.advance(MINUTE + 10_000 - 1);
    assert_eq!(fire(&fx), 0, "the claim still holds");
    fx.clock.advance(1);
    assert_eq!(fire(&fx), 1);
    assert_eq!(external.requests().len(), 1);
    let timer = timers(&fx, id).remove(0);
    assert_eq!((timer.state, timer.fired_count), (TimerState::Fired, 2));
}

/// A notification is sent and the instance keeps waiting; refused, it is
/// recorded and tried again later, never dropped, until it gets through.
fn a_notification_is_sent_outside_the_transaction_retried_when_refused_and_the_wait_goes_on<S: Backend>() {
    let answers = Arc::new(Mutex::new(vec![Reply::status(503, "busy"), Reply::ok()]));
    let external = {
        let answers = answers.clone();
        ExternalSystem::start(move |_| answers.lock().unwrap().remove(0))
    };
    let escalations = format!(
        r#"[{{ "name": "Chase up", "after": "1h", "action": {{ "notify": {{
            "method": "POST", "url": "{}", "body": "{{\"serial\": \"${{serial}}\"}}" }} }} }}]"#,
        external.url("/chase")
    );
    let fx = fixture::<S>(&escalations);
    let id = start(&fx);

    fx.clock.advance(HOUR);
    assert_eq!(fire(&fx), 1);
    assert_eq!(external.requests().len(), 1);
    assert_eq!(external.requests()[0].json()["serial"], format!("{id}_2"));
    assert_eq!(status(&fx, id), InstanceStatus::Active, "a notification keeps the wait going");
    let failed = trail_of(&fx, id, AuditAction::NotifyFailed);
    assert_eq!(failed.len(), 1);
    assert!(failed[0].contains("503") && failed[0].ends_with("trying again at 2026-11-25 10:01:00 UTC"), "{failed:?}");
    let timer = timers(&fx, id).remove(0);
    assert_eq!((timer.state, timer.due_at, timer.fired_count), (TimerState::Armed, T0 + HOUR + MINUTE, 1));

    fx.clock.advance(MINUTE);
    assert_eq!(fire(&fx), 1);
    assert_eq!(external.requests().len(), 2);
    assert_eq!(timers(&fx, id)[0].state, TimerState::Fired, "delivered: done");
    assert_eq!(trail_of(&fx, id, AuditAction::HttpRequest).len(), 2, "each attempt is in the trail");
    assert_eq!(fx.detail("admin", id).pending_items.len(), 1, "still waiting for the callback");
    fx.clock.advance(10 * HOUR);
    assert_eq!(fire(&fx), 0);
    assert_eq!(external.requests().len(), 2);
}

fn a_fail_escalation_puts_the_instance_in_error_and_retry_runs_the_event_again_on_its_serial<S: Backend>() {
    let fx = fixture::<S>(r#"[{ "name": "Give up hard", "after": "1d", "action": "fail" }]"#);
    let id = start(&fx);
    fx.clock.advance(24 * HOUR);
    assert_eq!(fire(&fx), 1);

    let detail = fx.detail("admin", id);
    assert_eq!(detail.summary.status, InstanceStatus::Error);
    let failure = detail.failure.unwrap();
    assert_eq!(failure.message, "deadline passed at 2026-11-26 09:00:00 UTC (escalation `Give up hard`)");
    assert_eq!(detail.pending_items.len(), 1, "the item stays open");

    let retried = fx.engine.retry("admin", id).unwrap();
    assert_eq!(retried.status, InstanceStatus::Active);
    assert_eq!(retried.waiting, [format!("{id}_2")]);
    assert_eq!(fx.field(id, "tries"), flowdesk::model::Value::Integer(2));
    fx.clock.advance(48 * HOUR);
    assert_eq!(fire(&fx), 0, "the deadline fired once; a retry does not start it again");
}

/// Stopped instances hold their deadlines; on resume the overdue ones fire
/// at once, oldest first.
fn a_stopped_instance_holds_its_timers_and_resume_fires_the_overdue_ones_oldest_first<S: Backend>() {
    let fx = fixture::<S>(
        r#"[{ "name": "Give up", "after": "3h", "action": { "finish": { "set": { "name": "timed out" } } } },
            { "name": "Try again", "after": "1h", "action": { "repeat": { "times": 1 } } }]"#,
    );
    let id = start(&fx);
    fx.engine.stop("admin", id).unwrap();
    fx.clock.advance(5 * HOUR);
    assert_eq!(fire(&fx), 0, "held while stopped");
    let overdue = ItemFilter { overdue: true, ..ItemFilter::default() };
    assert_eq!(fx.engine.items("admin", &overdue).unwrap().len(), 1, "listed as overdue meanwhile");

    let resumed = fx.engine.resume("admin", id).unwrap();

    assert_eq!(resumed.status, InstanceStatus::Completed);
    let fired = trail_of(&fx, id, AuditAction::EscalationFired);
    assert_eq!(fired.len(), 2, "{fired:?}");
    assert!(fired[0].starts_with("`Try again`") && fired[1].starts_with("`Give up`"), "oldest first: {fired:?}");
    assert_eq!(fx.field(id, "tries"), flowdesk::model::Value::Integer(2));
    assert!(fx.engine.items("admin", &overdue).unwrap().is_empty());
}

const WAIT: &str = r#"{
  "name": "cool-off",
  "fields": [{ "name": "resume_at", "type": "datetime" }],
  "activities": [
    { "id": "a", "name": "Cool off", "start": true, "events": [
      { "kind": "timer", "name": "Wait 2 hours", "after": "2h" } ] },
    { "id": "b", "name": "Until", "events": [
      { "kind": "timer", "name": "Wait until", "at_field": "resume_at" } ] }
  ],
  "lines": [{ "from": "a", "to": "b" }]
}"#;

fn a_timer_event_waits_its_duration_then_until_its_field_and_the_instance_goes_on<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", WAIT);
    let id =
        fx.engine.start("admin", "cool-off", "", &set(&[("resume_at", "2026-11-25T15:30:00Z")])).unwrap().instance_id;
    assert_eq!(fx.detail("admin", id).pending_items[0].due_at, Some(T0 + 2 * HOUR));

    fx.clock.advance(2 * HOUR);
    assert_eq!(fire(&fx), 1);
    let detail = fx.detail("admin", id);
    assert_eq!(detail.pending_items.iter().map(|i| i.event.as_str()).collect::<Vec<_>>(), ["Wait until"]);
    assert_eq!(detail.summary.due_at, Some(T0 + 6 * HOUR + 30 * MINUTE));
    assert_eq!(
        trail_of(&fx, id, AuditAction::TimerFired),
        [format!("`Wait 2 hours`: {id}_1 waited until 2026-11-25 11:00:00 UTC")]
    );

    fx.clock.advance(4 * HOUR + 30 * MINUTE);
    assert_eq!(fire(&fx), 1);
    assert_eq!(status(&fx, id), InstanceStatus::Completed);
}

fn a_timer_event_whose_field_is_empty_fails_and_a_retry_after_setting_it_waits<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", WAIT);
    let id = fx.engine.start("admin", "cool-off", "", &[]).unwrap().instance_id;
    fx.clock.advance(2 * HOUR);
    fire(&fx);
    let detail = fx.detail("admin", id);
    assert_eq!(detail.summary.status, InstanceStatus::Error, "{:?}", detail.audit);
    assert!(detail.failure.unwrap().message.starts_with("cannot tell when the wait ends"));

    fx.engine.set_data("admin", id, &set(&[("resume_at", "2026-11-25T12:00:00Z")])).unwrap();
    let progress = fx.engine.retry("admin", id).unwrap();
    assert_eq!(progress.status, InstanceStatus::Active);
    fx.clock.advance(HOUR);
    assert_eq!(fire(&fx), 1);
    assert_eq!(status(&fx, id), InstanceStatus::Completed);
}

fn an_escalation_on_an_empty_date_field_is_not_armed_and_the_trail_says_why<S: Backend>() {
    let fx = fixture::<S>(
        r#"[{ "name": "Hand over", "at_field": "reply_by", "action": { "go_to": { "activity": "manual" } } },
            { "name": "Give up", "after": "3h", "action": { "finish": { "set": { "name": "timed out" } } } }]"#,
    );
    let id = start(&fx);
    let not_armed = trail_of(&fx, id, AuditAction::EscalationNotArmed);
    assert_eq!(not_armed.len(), 1);
    assert!(not_armed[0].starts_with(&format!("`Hand over` on {id}_2: ")), "{not_armed:?}");
    assert_eq!(timers(&fx, id).len(), 1, "the other escalation is armed");
}

/// After a long downtime every overdue timer fires once, oldest first: no
/// storm of repeats, none skipped.
fn after_a_long_downtime_every_overdue_timer_fires_once_oldest_first<S: Backend>() {
    let fx = fixture::<S>(
        r#"[{ "name": "Try again", "after": "10m", "action": { "repeat": { "times": 5 } } },
            { "name": "Chase", "after": "2h", "action": { "go_to": { "activity": "manual" } } }]"#,
    );
    let ids: Vec<i64> = (0..5)
        .map(|_| {
            fx.clock.advance(MINUTE);
            start(&fx)
        })
        .collect();
    fx.clock.advance(30 * 24 * HOUR);

    let fired = fire(&fx);

    assert_eq!(fired, 2 * ids.len(), "each of the two timers of each instance, once");
    for id in ids {
        let trail = trail_of(&fx, id, AuditAction::EscalationFired);
        assert_eq!(trail.len(), 2, "{trail:?}");
        assert!(trail[0].starts_with("`Try again`") && trail[1].starts_with("`Chase`"), "{trail:?}");
        assert_eq!(fx.field(id, "tries"), flowdesk::model::Value::Integer(2), "one repeat, not a burst of five");
        assert_eq!(fx.detail("admin", id).pending_items[0].activity, "Manual");
    }
}

/// Two engines on one database file fire due timers at the same time:
/// each timer fires exactly once.
fn two_engines_on_one_database_never_fire_one_timer_twice<S: Backend>() {
    let fx = fixture::<S>(GIVE_UP);
    let n = 300;
    for _ in 0..n {
        start(&fx);
    }
    let other = fx.second_engine();
    fx.clock.advance(3 * HOUR);
    let fired = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for engine in [&fx.engine, &other] {
            let fired = &fired;
            scope.spawn(move || {
                let round = engine.fire_due(&|| true).unwrap();
                assert!(round.failed.is_empty(), "{:?}", round.failed);
                fired.fetch_add(round.fired, Ordering::SeqCst);
            });
        }
    });
    assert_eq!(fired.load(Ordering::SeqCst), n);
    let all = InstanceFilter { limit: 0, ..InstanceFilter::default() };
    for summary in fx.engine.instances("admin", &all).unwrap() {
        assert_eq!(summary.status, InstanceStatus::Completed);
        assert_eq!(trail_of(&fx, summary.id, AuditAction::EscalationFired).len(), 1, "instance {}", summary.id);
    }
}

/// A firing on a timer another firing has already fired finds it so.
fn firing_a_timer_that_has_fired_is_gone_and_changes_nothing<S: Backend>() {
    let fx = fixture::<S>(GIVE_UP);
    let id = start(&fx);
    let timer = timers(&fx, id).remove(0);
    assert_eq!(fx.engine.fire_timer(id, timer.id).unwrap(), Firing::Gone, "not due yet");
    fx.clock.advance(3 * HOUR);
    assert!(matches!(fx.engine.fire_timer(id, timer.id).unwrap(), Firing::Fired(_)));
    let before = fx.snapshot(id);
    assert_eq!(fx.engine.fire_timer(id, timer.id).unwrap(), Firing::Gone);
    assert_eq!(fx.snapshot(id), before);
}

/// The runtime's tick fires what is due, as `serve` and the window do (on
/// SQLite: a runtime opens a database file).
#[test]
fn a_runtime_tick_fires_what_is_due() {
    let fx = fixture::<flowdesk::store::SqliteStore>(GIVE_UP);
    let id = start(&fx);
    let runtime = fx.runtime();
    runtime.tick().unwrap();
    assert_eq!(status(&fx, id), InstanceStatus::Active);
    fx.clock.advance(3 * HOUR);
    runtime.tick().unwrap();
    assert_eq!(status(&fx, id), InstanceStatus::Completed);
}

/// The ticker fires the due timers of separate instances together: planned
/// on one snapshot and committed as one, so that a round of many firings
/// takes a few commits, not one each; every instance still goes on once.
#[test]
fn due_timers_of_many_instances_are_fired_together_in_a_few_commits() {
    let fx = fixture::<flowdesk::store::SqliteStore>(GIVE_UP);
    let n = 100;
    let ids: Vec<i64> = (0..n).map(|_| start(&fx)).collect();
    let commits = Arc::new(AtomicUsize::new(0));
    let counting = {
        let commits = commits.clone();
        fx.second_engine().with_hook(Arc::new(move |point| {
            if point == flowdesk::engine::HookPoint::AfterCommit {
                commits.fetch_add(1, Ordering::SeqCst);
            }
        }))
    };
    fx.clock.advance(3 * HOUR);
    let round = counting.fire_due(&|| true).unwrap();
    assert!(round.failed.is_empty(), "{:?}", round.failed);
    assert_eq!(round.fired, n);
    let commits = commits.load(Ordering::SeqCst);
    assert!(commits * 10 <= n, "{commits} commits for {n} firings");
    for id in ids {
        assert_eq!(status(&fx, id), InstanceStatus::Completed);
        assert_eq!(trail_of(&fx, id, AuditAction::EscalationFired).len(), 1, "instance {id}");
    }
}

support::on_every_backend! {
    a_notification_claimed_by_a_runtime_that_died_is_sent_once_its_claim_runs_out,
    a_deadline_finishes_the_item_with_its_data_and_the_instance_goes_on,
    a_callback_after_the_deadline_is_refused_saying_the_deadline_won_and_when,
    a_callback_before_the_deadline_disarms_it_and_the_deadline_then_does_nothing,
    a_go_to_escalation_cancels_the_item_and_starts_the_activity,
    a_repeat_runs_the_event_again_on_the_same_serial_up_to_its_times_then_the_next_escalation_acts,
    a_notification_is_sent_outside_the_transaction_retried_when_refused_and_the_wait_goes_on,
    a_fail_escalation_puts_the_instance_in_error_and_retry_runs_the_event_again_on_its_serial,
    a_stopped_instance_holds_its_timers_and_resume_fires_the_overdue_ones_oldest_first,
    a_timer_event_waits_its_duration_then_until_its_field_and_the_instance_goes_on,
    a_timer_event_whose_field_is_empty_fails_and_a_retry_after_setting_it_waits,
    an_escalation_on_an_empty_date_field_is_not_armed_and_the_trail_says_why,
    after_a_long_downtime_every_overdue_timer_fires_once_oldest_first,
    two_engines_on_one_database_never_fire_one_timer_twice,
    firing_a_timer_that_has_fired_is_gone_and_changes_nothing,
}
