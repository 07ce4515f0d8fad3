//! Bulk actions (issue 18) as engine scenarios, on every backend: each
//! target judged on its own (partial refusals with the single action's
//! reasons, rights per target), recorded in its own trail, a selection by
//! filter resolved in the engine, a dry run that touches nothing, and a
//! cancel between targets.

use std::sync::Arc;

use crate::support;

use flowdesk::engine::{
    BulkAction, BulkProgress, EngineError, InstanceFilter, InstanceStatus, ItemFilter, Outcome, Selection, Target,
};
use flowdesk::model::Right;
use support::{Backend, Fixture, T0, set};

/// A server event that fails while `fail` is set, then a wait for a
/// callback: instances in error to retry, and items to finish.
const FLAKY: &str = r#"{
  "name": "flaky",
  "fields": [{ "name": "fail", "type": "boolean" }, { "name": "name", "type": "string" }],
  "activities": [
    { "id": "work", "name": "Work", "start": true, "events": [
      { "kind": "server_event", "name": "Book", "script": "if fail { throw \"ledger offline\"; }" } ] },
    { "id": "wait", "name": "Wait", "events": [
      { "kind": "server_event", "name": "Call", "synchronous": false, "script": "" } ] },
    { "id": "end", "name": "End", "events": [] }
  ],
  "lines": [{ "from": "work", "to": "wait" }, { "from": "wait", "to": "end" }]
}"#;

fn callback_fixture<S: Backend>() -> Fixture<S> {
    let fx = Fixture::fresh();
    fx.deploy_sample("admin", "callback.process.json");
    fx
}

fn start_callbacks<S: Backend>(fx: &Fixture<S>, n: usize) -> Vec<i64> {
    (0..n).map(|i| fx.engine.start("admin", "callback", &format!("PO-{i}"), &[]).unwrap().instance_id).collect()
}

fn serial(id: i64) -> flowdesk::engine::Serial {
    support::parse_serial(&format!("{id}_2"))
}

fn bulk_finish_answers_per_serial_with_the_single_finish_refusals<S: Backend>() {
    let fx = callback_fixture::<S>();
    fx.engine.grant("admin", "callback", "bob", &[Right::ServerEvent]).unwrap();
    let ids = start_callbacks(&fx, 5);
    // Bob finished one of them a minute before the bulk action.
    fx.clock.advance(60_000);
    fx.engine.finish("bob", serial(ids[1]), &[]).unwrap();
    fx.clock.advance(60_000);

    let mut serials: Vec<_> = ids.iter().map(|id| serial(*id)).collect();
    serials.push(support::parse_serial("999_2"));
    let action = BulkAction::Finish { data: set(&[("name", "call back value")]) };
    let progress = BulkProgress::new();
    let report = fx.engine.bulk_select("admin", &action, &Selection::Serials(serials), &progress).unwrap();

    assert_eq!((report.total(), report.done(), report.refused().count()), (6, 4, 2));
    assert_eq!(report.summary(), "4 done, 2 refused");
    assert!(!report.cancelled);
    assert_eq!((progress.total(), progress.settled(), progress.done(), progress.refused()), (6, 6, 4, 2));
    let refused: Vec<(Target, String)> = report.refused().map(|(t, e)| (*t, e.to_string())).collect();
    assert_eq!(
        refused,
        [
            (
                Target::Item(serial(ids[1])),
                format!("server item {} was already finished at 2026-11-25 09:01:00 UTC by bob", serial(ids[1]))
            ),
            (Target::Item(support::parse_serial("999_2")), "server item 999_2 not found".to_owned()),
        ]
    );
    match &report.outcomes[1].1 {
        Outcome::Refused(EngineError::AlreadyFinished { by, at, .. }) => {
            assert_eq!((by.as_str(), *at), ("bob", T0 + 60_000))
        }
        other => panic!("expected already finished, got {other:?}"),
    }
    for id in [ids[0], ids[2], ids[3], ids[4]] {
        assert_eq!(fx.detail("admin", id).summary.status, InstanceStatus::Completed);
        let trail = fx.trail(id);
        let line = format!(
            "admin: Server item finished {}; set name = \"call back value\"; part of a bulk finish of 6",
            serial(id)
        );
        assert!(trail.contains(&line), "{trail:#?}");
    }
    // Bob's own finish is his, unmarked.
    assert!(fx.trail(ids[1]).contains(&format!("bob: Server item finished {}", serial(ids[1]))));
}

fn bulk_checks_the_right_on_each_target_s_process<S: Backend>() {
    let fx = callback_fixture::<S>();
    let other = support::sample("callback.process.json");
    let other = flowdesk::model::ProcessDraft { name: "callback-two".to_owned(), ..other };
    fx.engine.deploy("admin", &other).unwrap();
    fx.engine.grant("admin", "callback", "ops", &[Right::ServerEvent]).unwrap();
    let mine = fx.engine.start("admin", "callback", "", &[]).unwrap().instance_id;
    let theirs = fx.engine.start("admin", "callback-two", "", &[]).unwrap().instance_id;
    let own = |id| {
        let d = fx.detail("admin", id);
        format!("{:?}|{:?}|{:?}|{:?}", d.summary, d.fields, d.audit, d.pending_items)
    };
    let before = own(theirs);

    let action = BulkAction::Finish { data: vec![] };
    let selection = Selection::Serials(vec![serial(mine), serial(theirs)]);
    let report = fx.engine.bulk_select("ops", &action, &selection, &BulkProgress::new()).unwrap();
    assert_eq!(report.summary(), "1 done, 1 refused");
    let (target, err) = report.refused().next().unwrap();
    assert_eq!(*target, Target::Item(serial(theirs)));
    assert_eq!(err.to_string(), "permission denied: user `ops` lacks the Server Event right on process `callback-two`");
    assert_eq!(own(theirs), before, "a refused target changed");

    // Operator actions need Admin, per target, as one at a time.
    let report =
        fx.engine.bulk_select("ops", &BulkAction::Stop, &Selection::Instances(vec![mine]), &BulkProgress::new());
    let report = report.unwrap();
    assert!(matches!(report.outcomes[0].1, Outcome::Refused(EngineError::PermissionDenied { .. })));
}

fn bulk_retry_goes_on_past_instances_in_the_wrong_status<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", FLAKY);
    let failing: Vec<i64> =
        (0..3).map(|_| fx.engine.start("admin", "flaky", "", &set(&[("fail", "true")])).unwrap().instance_id).collect();
    let fine = fx.engine.start("admin", "flaky", "", &[]).unwrap().instance_id;
    assert_eq!(fx.detail("admin", fine).summary.status, InstanceStatus::Active);
    // Two of the three are repaired; the third fails again when retried.
    for id in &failing[..2] {
        fx.engine.set_data("admin", *id, &set(&[("fail", "false")])).unwrap();
    }
    fx.clock.advance(1_000);

    let mut ids = failing.clone();
    ids.push(fine);
    let report = fx.engine.bulk_select("admin", &BulkAction::Retry, &Selection::Instances(ids), &BulkProgress::new());
    let report = report.unwrap();
    assert_eq!(report.summary(), "3 done, 1 refused");
    let statuses: Vec<_> = report
        .outcomes
        .iter()
        .map(|(t, o)| match o {
            Outcome::Done { progress, .. } => (*t, Ok(progress.status)),
            Outcome::Refused(err) => (*t, Err(err.to_string())),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        statuses,
        [
            (Target::Instance(failing[0]), Ok(InstanceStatus::Active)),
            (Target::Instance(failing[1]), Ok(InstanceStatus::Active)),
            (Target::Instance(failing[2]), Ok(InstanceStatus::Error)),
            (Target::Instance(fine), Err(format!("cannot retry instance {fine}: it is Active"))),
        ]
    );
    assert!(fx.trail(failing[0]).contains(&"admin: Retried `Work` Book; part of a bulk retry of 4".to_owned()));

    // Stop, resume and go to, likewise: the stopped ones refuse a second stop.
    let stop = fx.engine.bulk_select(
        "admin",
        &BulkAction::Stop,
        &Selection::Instances(failing[..2].to_vec()),
        &BulkProgress::new(),
    );
    assert_eq!(stop.unwrap().summary(), "2 done, 0 refused");
    let again =
        fx.engine.bulk_select("admin", &BulkAction::Stop, &Selection::Instances(failing.clone()), &BulkProgress::new());
    assert_eq!(again.unwrap().summary(), "1 done, 2 refused");
    assert!(fx.trail(failing[0]).contains(&"admin: Stopped part of a bulk stop of 2".to_owned()));
    let resume = fx.engine.bulk_select(
        "admin",
        &BulkAction::Resume,
        &Selection::Instances(failing.clone()),
        &BulkProgress::new(),
    );
    assert_eq!(resume.unwrap().summary(), "3 done, 0 refused");
    let goto = BulkAction::GoTo { activity: "End".to_owned() };
    let moved =
        fx.engine.bulk_select("admin", &goto, &Selection::Instances(failing.clone()), &BulkProgress::new()).unwrap();
    assert_eq!(moved.summary(), "3 done, 0 refused");
    for id in &failing {
        assert_eq!(fx.detail("admin", *id).summary.status, InstanceStatus::Completed);
    }
    let nowhere = BulkAction::GoTo { activity: "Nowhere".to_owned() };
    let report =
        fx.engine.bulk_select("admin", &nowhere, &Selection::Instances(vec![fine]), &BulkProgress::new()).unwrap();
    assert!(matches!(report.outcomes[0].1, Outcome::Refused(EngineError::ActivityNotFound { .. })));
}

fn a_selection_by_filter_is_resolved_in_the_engine_and_a_dry_run_changes_nothing<S: Backend>() {
    let fx = callback_fixture::<S>();
    let ids = start_callbacks(&fx, 6);
    fx.engine.stop("admin", ids[0]).unwrap();
    fx.engine.stop("admin", ids[3]).unwrap();
    fx.engine.grant("admin", "callback", "viewer", &[Right::View]).unwrap();
    let before: Vec<String> = ids.iter().map(|id| fx.snapshot(*id)).collect();

    let active = InstanceFilter {
        process: Some("callback".to_owned()),
        status: Some(InstanceStatus::Active),
        limit: 1,
        ..InstanceFilter::default()
    };
    let selection = Selection::MatchingInstances(active.clone());
    // The filter's page size does not limit the selection.
    let targets = fx.engine.bulk_targets("admin", &BulkAction::Stop, &selection).unwrap();
    let expected: Vec<Target> = [ids[1], ids[2], ids[4], ids[5]].into_iter().map(Target::Instance).collect();
    assert_eq!(targets, expected);
    // A finish of the matching instances is a finish of their pending items.
    let finish = BulkAction::Finish { data: vec![] };
    let items = fx.engine.bulk_targets("admin", &finish, &selection).unwrap();
    assert_eq!(items, [ids[1], ids[2], ids[4], ids[5]].map(|id| Target::Item(serial(id))));
    // The items' filter: every pending item, whatever the filter's limit.
    let pending = Selection::MatchingItems(ItemFilter { limit: 2, ..ItemFilter::default() });
    assert_eq!(fx.engine.bulk_targets("admin", &finish, &pending).unwrap().len(), 6);
    // Someone who sees nothing selects nothing.
    assert!(fx.engine.bulk_targets("nobody", &BulkAction::Stop, &selection).unwrap().is_empty());
    let after: Vec<String> = ids.iter().map(|id| fx.snapshot(*id)).collect();
    assert_eq!(after, before, "resolving a selection changed something");

    // A viewer sees them all but may act on none.
    let report = fx.engine.bulk_select("viewer", &BulkAction::Stop, &selection, &BulkProgress::new()).unwrap();
    assert_eq!(report.summary(), "0 done, 4 refused");
    let report = fx.engine.bulk_select("admin", &BulkAction::Stop, &selection, &BulkProgress::new()).unwrap();
    assert_eq!(report.summary(), "4 done, 0 refused");
    assert_eq!(fx.engine.count_instances("admin", &active).unwrap(), 0);
}

fn a_cancelled_bulk_action_begins_no_further_target<S: Backend>() {
    let fx = callback_fixture::<S>();
    let ids = start_callbacks(&fx, 100);
    let progress = Arc::new(BulkProgress::new());
    // The first commit of the action cancels it: the targets in progress
    // then complete, and no other begins.
    let cancel = progress.clone();
    let engine = fx.engine_with_host(Default::default()).with_hook(Arc::new(move |point| {
        if point == flowdesk::engine::HookPoint::AfterCommit {
            cancel.cancel();
        }
    }));
    let serials = ids.iter().map(|id| serial(*id)).collect();
    let report =
        engine.bulk_select("admin", &BulkAction::Finish { data: vec![] }, &Selection::Serials(serials), &progress);
    let report = report.unwrap();
    assert!(report.cancelled);
    assert!(report.done() >= 1, "{}", report.summary());
    assert!(report.not_reached() >= 100 - 2 * flowdesk::engine::bulk::BULK_WORKERS, "{}", report.summary());
    assert_eq!(report.done() + report.not_reached(), 100, "{}", report.summary());
    assert_eq!(progress.settled(), report.done());
    assert!(report.summary().starts_with(&format!("{} done, 0 refused, cancelled before ", report.done())));
    // What the report says was done is what the store holds, and no more.
    let completed =
        ids.iter().filter(|id| fx.detail("admin", **id).summary.status == InstanceStatus::Completed).count();
    assert_eq!(completed, report.done());

    // Cancelled before it began: nothing is touched.
    let progress = BulkProgress::new();
    progress.cancel();
    let report =
        fx.engine.bulk_select("admin", &BulkAction::Stop, &Selection::Instances(ids.clone()), &progress).unwrap();
    assert_eq!((report.done(), report.not_reached()), (0, 100));
}

fn a_selection_by_a_data_field_filter_acts_on_the_instances_the_list_counts<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", FLAKY);
    let names = ["ada", "bob", "ada", "cy"];
    let ids: Vec<i64> = names
        .iter()
        .map(|name| fx.engine.start("admin", "flaky", "", &set(&[("name", name)])).unwrap().instance_id)
        .collect();
    let filter = InstanceFilter {
        process: Some("flaky".to_owned()),
        fields: vec![flowdesk::engine::FieldCondition::parse("name = \"ada\"").unwrap()],
        ..InstanceFilter::default()
    };
    // "Select all 2 matching": the list counts two; the action is for those two.
    assert_eq!(fx.engine.count_instances("admin", &filter).unwrap(), 2);
    let selection = Selection::MatchingInstances(filter);
    let targets = fx.engine.bulk_targets("admin", &BulkAction::Stop, &selection).unwrap();
    assert_eq!(targets, [Target::Instance(ids[0]), Target::Instance(ids[2])]);
    let report = fx.engine.bulk_select("admin", &BulkAction::Stop, &selection, &BulkProgress::new()).unwrap();
    assert_eq!(report.summary(), "2 done, 0 refused");

    // A filter the list refuses is refused here too, rather than acting on
    // every instance (a version without its process) or on none (a field
    // the process does not have).
    let no_process = Selection::MatchingInstances(InstanceFilter { version: Some(1), ..InstanceFilter::default() });
    let err = fx.engine.bulk_targets("admin", &BulkAction::Stop, &no_process).unwrap_err();
    assert!(matches!(err, EngineError::Filter(_)), "{err:?}");
    let unknown = InstanceFilter {
        process: Some("flaky".to_owned()),
        fields: vec![flowdesk::engine::FieldCondition::parse("amount > 5").unwrap()],
        ..InstanceFilter::default()
    };
    let listed = fx.engine.count_instances("admin", &unknown).unwrap_err();
    let err = fx.engine.bulk_targets("admin", &BulkAction::Retry, &Selection::MatchingInstances(unknown)).unwrap_err();
    assert_eq!(err.to_string(), listed.to_string());
    assert_eq!(err.to_string(), "invalid filter: process `flaky` has no field `amount`");
}

fn a_selection_names_no_item_the_user_may_not_see_and_no_process_that_is_not_there<S: Backend>() {
    let fx = callback_fixture::<S>();
    let ids = start_callbacks(&fx, 2);
    let finish = BulkAction::Finish { data: vec![] };
    // bob holds no right on `callback`: his finish of its instances by id
    // names none of their serials, not even in a dry run, as his filters
    // name none; his stop of them is refused per instance.
    let by_id = Selection::Instances(ids.clone());
    assert_eq!(fx.engine.bulk_targets("admin", &finish, &by_id).unwrap().len(), 2);
    assert_eq!(fx.engine.bulk_targets("bob", &finish, &by_id).unwrap(), []);
    let everything = Selection::MatchingInstances(InstanceFilter::default());
    assert_eq!(fx.engine.bulk_targets("bob", &finish, &everything).unwrap(), []);
    let report = fx.engine.bulk_select("bob", &BulkAction::Stop, &by_id, &BulkProgress::new()).unwrap();
    assert_eq!(report.summary(), "0 done, 2 refused");

    // A process name mistyped is said, rather than answered "0 done".
    for selection in [
        Selection::MatchingInstances(InstanceFilter {
            process: Some("calback".to_owned()),
            status: Some(InstanceStatus::Error),
            ..InstanceFilter::default()
        }),
        Selection::MatchingItems(ItemFilter { process: Some("calback".to_owned()), ..ItemFilter::default() }),
    ] {
        let err = fx.engine.bulk_targets("admin", &BulkAction::Retry, &selection).unwrap_err();
        assert_eq!(err.to_string(), "process `calback` not found (deploy it first)");
        assert!(fx.engine.bulk_select("admin", &finish, &selection, &BulkProgress::new()).is_err());
    }
}

/// A wait with a deadline: three hours without a callback finish it.
const DEADLINE: &str = r#"{
  "name": "deadline",
  "fields": [{ "name": "name", "type": "string" }],
  "activities": [
    { "id": "wait", "name": "Wait", "start": true, "events": [
      { "kind": "server_event", "name": "Call", "synchronous": false, "script": "" } ],
      "escalations": [
        { "name": "Give up", "after": "3h", "action": { "finish": { "set": { "name": "timed out" } } } } ] },
    { "id": "end", "name": "End", "events": [] }
  ],
  "lines": [{ "from": "wait", "to": "end" }]
}"#;

/// A store whose `busy_at`-th write (counted from 1) meets a database
/// another program holds: `database is locked`, which may be tried again.
struct BusyAt<S> {
    inner: S,
    busy_at: usize,
    writes: std::sync::atomic::AtomicUsize,
}

impl<S: flowdesk::engine::Storage> flowdesk::engine::Storage for BusyAt<S> {
    fn write<T>(
        &self,
        work: impl FnOnce(&mut dyn flowdesk::engine::Transaction) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == self.busy_at {
            let busy =
                flowdesk::engine::StorageError::new(flowdesk::engine::StorageErrorKind::Busy, "database is locked");
            return Err(EngineError::Storage(busy));
        }
        self.inner.write(work)
    }

    fn read<T>(
        &self,
        work: impl FnOnce(&mut dyn flowdesk::engine::Transaction) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        self.inner.read(work)
    }

    fn data_version(&self) -> Result<u64, EngineError> {
        self.inner.data_version()
    }
}

fn a_target_done_is_reported_done_when_what_follows_its_commit_meets_a_busy_database<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", DEADLINE);
    let id = fx.engine.start("admin", "deadline", "", &[]).unwrap().instance_id;
    fx.engine.stop("admin", id).unwrap();
    // Stopped past its deadline: resuming it fires the deadline at once, in
    // a transaction of its own after the resume's (the second write).
    fx.clock.advance(4 * 3_600_000);
    let busy = BusyAt { inner: fx.engine.store().share(), busy_at: 2, writes: Default::default() };
    let engine = support::engine_on(busy, fx.clock.clone(), Default::default());
    let report = engine
        .bulk_select("admin", &BulkAction::Resume, &Selection::Instances(vec![id]), &BulkProgress::new())
        .unwrap();
    // Resumed: so the report says, not "cannot resume: it is Active" (the
    // resume tried again over its own commit).
    assert_eq!(report.summary(), "1 done, 0 refused", "{:?}", report.outcomes);
    let resumed = fx.trail(id).iter().filter(|line| line.starts_with("admin: Resumed")).count();
    assert_eq!(resumed, 1, "{:#?}", fx.trail(id));
    // The deadline the busy database kept from firing is still due: the
    // ticker fires it.
    assert_eq!(fx.engine.fire_due(&|| true).unwrap().fired, 1);
    assert_eq!(fx.detail("admin", id).summary.status, InstanceStatus::Completed);
}

fn a_finish_only_recorded_because_its_instance_is_stopped_is_said_in_the_summary<S: Backend>() {
    let fx = callback_fixture::<S>();
    let ids = start_callbacks(&fx, 3);
    fx.engine.stop("admin", ids[1]).unwrap();
    let serials = ids.iter().map(|id| serial(*id)).collect();
    let action = BulkAction::Finish { data: vec![] };
    let report = fx.engine.bulk_select("admin", &action, &Selection::Serials(serials), &BulkProgress::new()).unwrap();
    // The stopped one's finish waits for Resume: "3 done" alone would say
    // all three moved on, as the single finish does not ("recorded; …").
    assert_eq!(report.summary(), "3 done, 0 refused (1 of them recorded, applied when its instance runs again)");
    assert_eq!(fx.detail("admin", ids[1]).summary.status, InstanceStatus::Stopped);
}

/// One instance whose stored state is damaged (Completed, yet waiting on an
/// item: a cell of the table no command reaches) fails its own target in a
/// dry run, as in the action itself, and leaves the others foreseen.
#[test]
fn a_dry_run_foresees_a_damaged_instance_failing_and_the_others_as_they_are() {
    let fx = callback_fixture::<flowdesk::store::SqliteStore>();
    let ids = start_callbacks(&fx, 2);
    let raw = rusqlite::Connection::open(fx.db_path()).unwrap();
    raw.execute("UPDATE instances SET status = 'Completed' WHERE id = ?1", [ids[0]]).unwrap();
    let targets = [Target::Item(serial(ids[0])), Target::Item(serial(ids[1]))];
    let finish = BulkAction::Finish { data: vec![] };
    let foreseen = fx.engine.bulk_foresee("admin", &finish, &targets).unwrap();
    assert!(matches!(foreseen[0], Some(EngineError::Internal(_))), "{foreseen:?}");
    assert!(foreseen[1].is_none(), "{foreseen:?}");
    let report = fx.engine.bulk("admin", &finish, &targets, &BulkProgress::new());
    assert_eq!(report.summary(), "1 done, 0 refused, 1 failed");
}

support::on_every_backend!(
    bulk_finish_answers_per_serial_with_the_single_finish_refusals,
    bulk_checks_the_right_on_each_target_s_process,
    bulk_retry_goes_on_past_instances_in_the_wrong_status,
    a_selection_by_filter_is_resolved_in_the_engine_and_a_dry_run_changes_nothing,
    a_cancelled_bulk_action_begins_no_further_target,
    a_selection_by_a_data_field_filter_acts_on_the_instances_the_list_counts,
    a_selection_names_no_item_the_user_may_not_see_and_no_process_that_is_not_there,
    a_target_done_is_reported_done_when_what_follows_its_commit_meets_a_busy_database,
    a_finish_only_recorded_because_its_instance_is_stopped_is_said_in_the_summary,
);
