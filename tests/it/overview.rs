//! Issue 18's overview as the engine answers it, on every backend: counts by
//! status, pending items by age, starts and completions over time,
//! incidents, the diagram's counts per activity, the list's version and
//! activity filters; and the aggregates agreeing with a full count after
//! every kind of write, a rolled-back one included.

use flowdesk::engine::{EngineError, InstanceFilter, InstanceStatus, ReasonKey, Span, Transaction};

use crate::support::{self, Backend, Fixture, T0, on_every_backend, set};

const FAILING: &str = r#"{
  "name": "ledger",
  "fields": [{ "name": "ready", "type": "boolean" }, { "name": "n", "type": "integer" }],
  "activities": [
    { "id": "post", "name": "Post", "start": true, "events": [
      { "kind": "server_event", "name": "Book", "script": "if !ready { throw `ledger ${n} offline`; }" } ] },
    { "id": "end", "name": "End", "events": [] }
  ],
  "lines": [{ "from": "post", "to": "end" }]
}"#;

const WAIT: &str = "Call external system";

fn fixture<S: Backend>() -> Fixture<S> {
    let fx = Fixture::<S>::fresh();
    fx.deploy_sample("admin", "callback.process.json");
    fx.deploy_json("admin", FAILING);
    fx
}

fn serial(id: i64) -> flowdesk::engine::Serial {
    support::parse_serial(&format!("{id}_2"))
}

fn assert_agrees<S: Backend>(fx: &Fixture<S>) {
    assert_eq!(fx.engine.check_aggregates().unwrap(), Vec::<String>::new());
}

fn counts_ages_chart_and_incidents_follow_the_instances<S: Backend>() {
    let fx = fixture::<S>();
    let waiting: Vec<i64> =
        (0..3).map(|_| fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id).collect();
    fx.engine.finish("admin", serial(waiting[0]), &set(&[("name", "call back value")])).unwrap();
    for n in [7, 1042] {
        let progress = fx.engine.start("admin", "ledger", "", &set(&[("n", &n.to_string())])).unwrap();
        assert_eq!(progress.status, InstanceStatus::Error);
    }
    assert_agrees(&fx);

    let overview = fx.engine.overview("admin").unwrap();
    let callback = overview.versions.iter().find(|v| v.process == "callback").unwrap();
    assert_eq!((callback.count(InstanceStatus::Active), callback.count(InstanceStatus::Completed)), (2, 1));
    assert_eq!((callback.pending.under_minute, callback.pending.total()), (2, 2));
    assert_eq!(callback.oldest.as_ref().unwrap().serial, serial(waiting[1]));
    let ledger = overview.versions.iter().find(|v| v.process == "ledger").unwrap();
    assert_eq!(ledger.count(InstanceStatus::Error), 2);

    // One incident: the two messages differ only in their numbers.
    assert_eq!(overview.incidents.len(), 1, "{:?}", overview.incidents);
    let incident = &overview.incidents[0];
    assert_eq!((incident.count, incident.key.activity.as_str(), incident.key.event.as_str()), (2, "Post", "Book"));
    assert!(incident.key.pattern.ends_with("Runtime error: ledger # offline"), "{}", incident.key.pattern);
    assert_eq!((incident.first_at, incident.last_at), (T0, T0));

    // Ages move with the clock: under a minute and an hour exactly, a day
    // to the hour.
    for (advance, bucket) in [(59_000, 0), (2_000, 1), (2 * 3_600_000, 2), (2 * 86_400_000, 3)] {
        fx.clock.advance(advance);
        let pending = fx.engine.overview("admin").unwrap().versions[0].pending;
        let by_bucket = [pending.under_minute, pending.under_hour, pending.under_day, pending.older];
        let mut want = [0; 4];
        want[bucket] = 2;
        assert_eq!(by_bucket, want, "after {advance} ms more");
    }

    // The chart: five started and one completed, in the bucket of T0.
    let week = fx.engine.throughput("admin", None, None, Span::Week).unwrap();
    assert_eq!(week.buckets.len(), 168);
    let started: u64 = week.buckets.iter().map(|b| b.started).sum();
    let completed: u64 = week.buckets.iter().map(|b| b.completed).sum();
    assert_eq!((started, completed), (5, 1));
    let at_t0 = week.buckets.iter().find(|b| b.start <= T0 && T0 < b.start + week.bucket_ms).unwrap();
    assert_eq!((at_t0.started, at_t0.completed), (5, 1));
    let callback_only = fx.engine.throughput("admin", Some("callback"), Some(1), Span::Week).unwrap();
    assert_eq!(callback_only.buckets.iter().map(|b| b.started).sum::<u64>(), 3);
    // The last hour no longer holds T0.
    let hour = fx.engine.throughput("admin", None, None, Span::Hour).unwrap();
    assert_eq!((hour.buckets.len(), hour.buckets.iter().map(|b| b.started).sum::<u64>()), (60, 0));

    // A user without rights sees nothing.
    let stranger = fx.engine.overview("stranger").unwrap();
    assert!(stranger.versions.is_empty() && stranger.incidents.is_empty());
}

fn the_diagram_counts_and_the_activity_filter_find_the_same_instances<S: Backend>() {
    let fx = fixture::<S>();
    let waiting: Vec<i64> =
        (0..3).map(|_| fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id).collect();
    fx.engine.finish("admin", serial(waiting[0]), &set(&[("name", "call back value")])).unwrap();
    let failed = fx.engine.start("admin", "ledger", "", &set(&[("n", "3")])).unwrap().instance_id;

    let counts = fx.engine.activity_counts("admin", "callback", 1).unwrap();
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!((counts[0].activity.as_str(), counts[0].waiting, counts[0].error), (WAIT, 2, 0));
    assert_eq!(counts[0].oldest_wait, Some(T0));
    let ledger = fx.engine.activity_counts("admin", "ledger", 1).unwrap();
    assert_eq!((ledger[0].activity.as_str(), ledger[0].error, ledger[0].waiting), ("Post", 1, 0));

    let filter = |process: &str, activity: &str| InstanceFilter {
        process: Some(process.to_owned()),
        version: Some(1),
        activity: Some(activity.to_owned()),
        ..InstanceFilter::default()
    };
    let ids = |filter: &InstanceFilter| -> Vec<i64> {
        fx.engine.instances("admin", filter).unwrap().into_iter().map(|i| i.id).collect()
    };
    assert_eq!(ids(&filter("callback", WAIT)), vec![waiting[2], waiting[1]]);
    assert_eq!(fx.engine.count_instances("admin", &filter("callback", WAIT)).unwrap(), 2);
    assert_eq!(ids(&filter("ledger", "Post")), vec![failed]);
    assert!(ids(&filter("callback", "Prepare")).is_empty());
    // Another version has none of them.
    let other_version = InstanceFilter { version: Some(2), ..filter("callback", WAIT) };
    assert!(ids(&other_version).is_empty());
}

fn retrying_an_incident_after_the_fix_empties_it<S: Backend>() {
    let fx = fixture::<S>();
    let ids: Vec<i64> = [1, 2, 3]
        .iter()
        .map(|n| fx.engine.start("admin", "ledger", "", &set(&[("n", &n.to_string())])).unwrap().instance_id)
        .collect();
    let key: ReasonKey = fx.engine.incidents("admin").unwrap()[0].key.clone();
    assert_eq!(fx.engine.incident_instances("admin", &key).unwrap(), ids);
    for id in &ids {
        fx.engine.set_data("admin", *id, &set(&[("ready", "true")])).unwrap();
        assert_agrees(&fx);
        assert_eq!(fx.engine.retry("admin", *id).unwrap().status, InstanceStatus::Completed);
    }
    assert!(fx.engine.incidents("admin").unwrap().is_empty());
    assert!(fx.engine.incident_instances("admin", &key).unwrap().is_empty());
    let ledger = fx.engine.overview("admin").unwrap().versions.into_iter().find(|v| v.process == "ledger").unwrap();
    assert_eq!((ledger.count(InstanceStatus::Error), ledger.count(InstanceStatus::Completed)), (0, 3));
    assert_agrees(&fx);
}

/// A write that fails after it wrote (a crash's rollback, as the group
/// commit gives up a batch) takes its counts with it.
fn a_rolled_back_write_leaves_the_aggregates_as_they_were<S: Backend>() {
    let fx = fixture::<S>();
    let id = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let failed = fx.engine.start("admin", "ledger", "", &set(&[("n", "9")])).unwrap().instance_id;
    let before = fx.engine.overview("admin").unwrap();
    let rolled_back: Result<(), EngineError> = fx.engine.store().write(|tx: &mut dyn Transaction| {
        for instance_id in [id, failed] {
            let mut instance = tx.instance(instance_id)?.unwrap();
            instance.status = InstanceStatus::Stopped;
            instance.flow.failure = None;
            tx.update_instance(&instance)?;
        }
        Err(EngineError::Internal("the work failed after writing".to_owned()))
    });
    assert!(rolled_back.is_err());
    assert_eq!(fx.engine.overview("admin").unwrap(), before);
    assert_agrees(&fx);
    // Another handle on the store (another process) sees the same.
    let second = fx.second_engine();
    assert_eq!(second.overview("admin").unwrap(), before);
    // The next commit brings nothing of the rolled-back write with it.
    fx.engine.start("admin", "callback", "", &[]).unwrap();
    assert_agrees(&fx);
}

/// A process whose start activity sends a request (which the test's runner
/// never gets to send: it dies first) before waiting for a callback.
const SENDING: &str = r#"{
  "name": "sending",
  "activities": [
    { "id": "tell", "name": "Tell", "start": true, "events": [
      { "kind": "http_request", "name": "Notify", "url": "http://127.0.0.1:9/hook" } ] },
    { "id": "wait", "name": "Wait", "events": [
      { "kind": "server_event", "name": "Ask", "synchronous": false, "script": "" } ] }
  ],
  "lines": [{ "from": "tell", "to": "wait" }]
}"#;

/// An instance running at an activity (its request under way) is counted
/// active there, and clicking the activity lists it with the ones waiting
/// there, as the diagram's pills say.
fn an_activity_clicked_lists_the_instances_active_there_too<S: Backend>() {
    let fx = fixture::<S>();
    fx.deploy_json("admin", SENDING);
    let dying = fx.second_engine().with_hook(std::sync::Arc::new(|point| {
        if point == flowdesk::engine::HookPoint::BeforeAsyncScript {
            panic!("the runner dies before sending");
        }
    }));
    let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| dying.start("admin", "sending", "", &[])));
    assert!(died.is_err());
    let running = fx.engine.instances("admin", &InstanceFilter::default()).unwrap()[0].id;
    assert_eq!(fx.detail("admin", running).summary.status, InstanceStatus::Running);
    let waiting = fx.engine.start("admin", "sending", "", &[]);
    // The other one, whose request is refused at once, waits at Wait or
    // failed at Tell: either way it is not at Tell as an active one.
    drop(waiting);

    let counts = fx.engine.activity_counts("admin", "sending", 1).unwrap();
    let tell = counts.iter().find(|c| c.activity == "Tell").unwrap_or_else(|| panic!("{counts:?}"));
    assert_eq!(tell.active, 1, "{counts:?}");
    let at_tell = InstanceFilter {
        process: Some("sending".to_owned()),
        version: Some(1),
        activity: Some("Tell".to_owned()),
        ..InstanceFilter::default()
    };
    let listed: Vec<i64> = fx.engine.instances("admin", &at_tell).unwrap().into_iter().map(|i| i.id).collect();
    let expected = tell.active + tell.waiting + tell.error;
    assert!(listed.contains(&running), "{listed:?}");
    assert_eq!(listed.len() as u64, expected, "{listed:?} {counts:?}");
    assert_eq!(fx.engine.count_instances("admin", &at_tell).unwrap(), expected);
}

on_every_backend!(
    an_activity_clicked_lists_the_instances_active_there_too,
    counts_ages_chart_and_incidents_follow_the_instances,
    the_diagram_counts_and_the_activity_filter_find_the_same_instances,
    retrying_an_incident_after_the_fix_empties_it,
    a_rolled_back_write_leaves_the_aggregates_as_they_were,
);

/// The check finds an aggregate that no longer agrees with the rows (here
/// changed behind the store's back).
#[test]
fn the_check_names_an_aggregate_that_disagrees_with_a_full_count() {
    let fx = fixture::<flowdesk::store::SqliteStore>();
    fx.engine.start("admin", "callback", "", &[]).unwrap();
    fx.engine.start("admin", "ledger", "", &set(&[("n", "4")])).unwrap();
    assert_agrees(&fx);
    let path = fx.dir.path().join("flowdesk.db");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.execute("UPDATE instance_counts SET n = n + 5 WHERE process = 'callback'", []).unwrap();
    connection.execute("DELETE FROM failures", []).unwrap();
    connection.execute("UPDATE pending_hours SET n = n + 1", []).unwrap();
    drop(connection);
    let mismatches = fx.engine.check_aggregates().unwrap();
    assert_eq!(mismatches.len(), 3, "{mismatches:#?}");
    assert!(mismatches[0].starts_with("instances by status: callback v1 Active: kept 6, counted 1"), "{mismatches:#?}");
    let hour = T0 / 3_600_000;
    let pending = format!("pending items per hour: callback v1 Call external system @{hour}: kept 2, counted 1");
    assert!(mismatches.contains(&pending), "{mismatches:#?}");
    assert!(mismatches.iter().any(|m| m.starts_with("failures: ")));
}
