//! Issue 19: sub-process (IPC) events as engine scenarios, on every backend
//! (`ipc::sqlite::…`, `ipc::memory::…`): a synchronous event waits for its
//! child and copies its outputs back, an asynchronous one starts it and goes
//! on; the child starts in the parent's transaction, needs Start for the
//! parent's originator, and its completion is the callback of the parent's
//! item, with every serial rule of a callback.

use crate::support;

use flowdesk::engine::{EngineError, InstanceFilter, InstanceStatus, ItemFilter, ItemStatus};
use flowdesk::model::{Location, Right, Severity, Value};
use support::{Backend, Fixture, s, set};

fn order_fixture<S: Backend>() -> Fixture<S> {
    let fx = Fixture::fresh();
    fx.deploy_sample("admin", "payment.process.json");
    fx.deploy_sample("admin", "audit-log.process.json");
    fx.deploy_sample("admin", "order.process.json");
    fx
}

/// The ids of every instance of `process`, oldest first.
fn instances_of<S: Backend>(fx: &Fixture<S>, process: &str) -> Vec<i64> {
    let filter = InstanceFilter { process: Some(process.to_owned()), ..InstanceFilter::default() };
    let mut ids: Vec<i64> = fx.engine.instances("admin", &filter).unwrap().iter().map(|i| i.id).collect();
    ids.sort();
    ids
}

fn status<S: Backend>(fx: &Fixture<S>, id: i64) -> InstanceStatus {
    fx.detail("admin", id).summary.status
}

fn order_waits_for_payment<S: Backend>() {
    let fx = order_fixture::<S>();
    let started = fx.engine.start("admin", "order", "PO-7", &set(&[("customer", "Ada"), ("amount", "12.50")])).unwrap();
    let order = started.instance_id;
    assert_eq!(started.status, InstanceStatus::Active, "{started:?}");
    let [log] = instances_of(&fx, "audit-log")[..] else { panic!("one audit-log child") };
    let [payment] = instances_of(&fx, "payment")[..] else { panic!("one payment child") };
    // The order waits on an ordinary server item of its own.
    let wait = format!("{order}_2");
    assert_eq!(started.waiting, vec![wait.clone()]);

    // The asynchronous child ran to its end in the order's step.
    assert_eq!(status(&fx, log), InstanceStatus::Completed);
    assert_eq!(fx.field(log, "note"), s("received from Ada"));
    assert_eq!(fx.field(log, "order_id"), s(&format!("ORD-{order}")));
    // The synchronous one waits for its bank, with the inputs mapped and
    // the folio its template makes.
    let child = fx.detail("admin", payment);
    assert_eq!(child.summary.status, InstanceStatus::Active);
    assert_eq!(child.summary.folio, format!("PAY-ORD-{order}"));
    assert_eq!(fx.field(payment, "amount").to_string(), "12.50");
    let parent = child.parent.expect("the child knows its parent");
    assert_eq!((parent.instance_id, parent.event.as_str(), parent.depth), (order, "Pay", 1));
    assert_eq!(parent.serial().map(|s| s.to_string()), Some(wait.clone()));
    let trail = fx.trail(payment);
    assert!(trail[0].contains(&format!("started by instance {order}, event `Pay` of `Take payment`")), "{trail:#?}");

    let detail = fx.detail("admin", order);
    let children: Vec<(i64, Option<InstanceStatus>, Option<String>)> = detail
        .children
        .iter()
        .map(|c| {
            (
                c.link.instance_id,
                c.summary.as_ref().map(|s| s.status),
                c.link.serial_id.map(|id| format!("{order}_{id}")),
            )
        })
        .collect();
    assert_eq!(
        children,
        [(log, Some(InstanceStatus::Completed), None), (payment, Some(InstanceStatus::Active), Some(wait.clone()))]
    );
    let trail = fx.trail(order);
    assert!(
        trail.contains(&format!(
            "admin: Child started instance {log} of `audit-log` version 1 for `Log the order` (completed)"
        )),
        "{trail:#?}"
    );
    assert!(
        trail.contains(&format!("admin: Child started instance {payment} of `payment` version 1 for `Pay` (active)")),
        "{trail:#?}"
    );
    assert!(
        trail.contains(&format!("admin: Waiting for callback {wait} (`Pay`) until instance {payment} completes")),
        "{trail:#?}"
    );

    // The bank calls back: the payment completes, and in that same
    // transaction the order's item is finished with the outputs and the
    // order runs on.
    fx.clock.advance(1_000);
    let bank = format!("{payment}_1");
    let finished = fx.engine.finish("admin", support::parse_serial(&bank), &set(&[("reference", "BANK-7")])).unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    assert_eq!(status(&fx, order), InstanceStatus::Completed);
    assert_eq!(fx.field(order, "paid"), Value::Boolean(true));
    assert_eq!(fx.field(order, "payment_ref"), s("BANK-7"));
    assert_eq!(fx.field(order, "shipped"), Value::Boolean(true));
    let items = fx.engine.items("admin", &ItemFilter { include_closed: true, ..Default::default() }).unwrap();
    let item = items.iter().find(|i| i.serial.to_string() == wait).unwrap();
    assert_eq!(
        (item.status, item.closed_by.as_deref()),
        (ItemStatus::Finished, Some(format!("instance {payment}").as_str()))
    );
    let child_trail = fx.trail(payment);
    assert!(
        child_trail.contains(&format!("admin: Parent notified finished {wait} of instance {order}")),
        "{child_trail:#?}"
    );
    // Who may see the parent but not the child sees the link, not how the
    // child stands.
    fx.engine.grant("admin", "order", "viewer", &[Right::View]).unwrap();
    let seen = fx.detail("viewer", order);
    assert_eq!(seen.children.iter().map(|c| c.summary.is_some()).collect::<Vec<_>>(), [false, false]);
    fx.engine.grant("admin", "payment", "viewer", &[Right::View]).unwrap();
    let seen = fx.detail("viewer", order);
    assert_eq!(seen.children.iter().map(|c| c.summary.is_some()).collect::<Vec<_>>(), [false, true]);
    // A second completion (a repeated callback) is refused as any is.
    let err = fx.engine.finish("admin", support::parse_serial(&wait), &[]).unwrap_err();
    assert!(
        matches!(err, EngineError::AlreadyFinished { ref by, .. } if *by == format!("instance {payment}")),
        "{err}"
    );
}

/// A child that completes within its own start (it never waits) completes
/// before the parent's step is committed: its finish is recorded on the
/// parent's new item and applied at once, as an early callback's is.
fn a_child_completing_before_the_parents_step_commits_is_applied_as_an_early_callback<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", &quick_child());
    fx.deploy_json(
        "admin",
        &parent_of("quick", true, r#"[{"from": "n", "to": "n"}]"#, r#"[{"from": "doubled", "to": "result"}]"#),
    );
    let started = fx.engine.start("admin", "parent", "F-1", &set(&[("n", "21")])).unwrap();
    assert_eq!(started.status, InstanceStatus::Completed, "{started:?}");
    assert_eq!(fx.field(started.instance_id, "result"), Value::Integer(42));
    let [child] = instances_of(&fx, "quick")[..] else { panic!() };
    assert_eq!(status(&fx, child), InstanceStatus::Completed);
    let trail = fx.trail(started.instance_id);
    let serial = format!("{}_1", started.instance_id);
    assert!(trail.contains(&format!("admin: Callback applied {serial} finished by instance {child}")), "{trail:#?}");
    let items = fx.engine.items("admin", &ItemFilter { include_closed: true, ..Default::default() }).unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].status, ItemStatus::Finished);
    assert!(items[0].unapplied.is_none());
}

fn quick_child() -> String {
    r#"{"name": "quick",
        "fields": [{"name": "n", "type": "integer"}, {"name": "doubled", "type": "integer"}, {"name": "fail", "type": "boolean"}],
        "activities": [{"id": "a", "name": "Double", "start": true,
          "events": [{"kind": "server_event", "name": "Double", "script": "if fail { throw \"asked to fail\"; }\ndoubled = n * 2;"}]}]}"#
        .to_owned()
}

/// A parent with fields `n`, `result` and `fail` whose one activity starts `child`.
fn parent_of(child: &str, synchronous: bool, inputs: &str, outputs: &str) -> String {
    format!(
        r#"{{"name": "parent",
        "fields": [{{"name": "n", "type": "integer"}}, {{"name": "result", "type": "integer"}}, {{"name": "fail", "type": "boolean"}}],
        "activities": [{{"id": "call", "name": "Call", "start": true,
          "events": [{{"kind": "ipc", "name": "Call child", "synchronous": {synchronous}, "process": "{child}",
                       "inputs": {inputs}, "outputs": {outputs}}}]}}]}}"#
    )
}

/// The child runs as the parent's originator, who must hold Start on it:
/// refused, the parent is in Error with the right named and no child
/// exists; granted, a retry starts it.
fn starting_a_child_needs_start_on_it_and_a_retry_after_the_grant_goes_on<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", &quick_child());
    fx.deploy_json(
        "admin",
        &parent_of("quick", true, r#"[{"from": "n", "to": "n"}]"#, r#"[{"from": "doubled", "to": "result"}]"#),
    );
    fx.engine.grant("admin", "parent", "bob", &[Right::Start]).unwrap();
    let started = fx.engine.start("bob", "parent", "", &set(&[("n", "2")])).unwrap();
    assert_eq!(started.status, InstanceStatus::Error);
    let failure = started.failure.unwrap();
    assert_eq!(
        failure.message,
        "cannot start `quick`: permission denied: user `bob` lacks the Start right on process `quick`"
    );
    assert!(instances_of(&fx, "quick").is_empty(), "no child was started");

    fx.engine.grant("admin", "quick", "bob", &[Right::Start]).unwrap();
    let retried = fx.engine.retry("admin", started.instance_id).unwrap();
    assert_eq!(retried.status, InstanceStatus::Completed, "{retried:?}");
    assert_eq!(fx.field(started.instance_id, "result"), Value::Integer(4));
    let [child] = instances_of(&fx, "quick")[..] else { panic!() };
    assert_eq!(fx.detail("admin", child).summary.originator, "bob");
}

/// A child in Error leaves its parent waiting; the operator repairs the
/// child, and its completion on retry lets the parent go on.
fn a_child_in_error_leaves_the_parent_waiting_until_the_child_is_repaired<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_json("admin", &quick_child());
    let inputs = r#"[{"from": "n", "to": "n"}, {"from": "fail", "to": "fail"}]"#;
    fx.deploy_json("admin", &parent_of("quick", true, inputs, r#"[{"from": "doubled", "to": "result"}]"#));
    let started = fx.engine.start("admin", "parent", "", &set(&[("n", "5"), ("fail", "true")])).unwrap();
    assert_eq!(started.status, InstanceStatus::Active);
    let [child] = instances_of(&fx, "quick")[..] else { panic!() };
    assert_eq!(status(&fx, child), InstanceStatus::Error);

    fx.engine.set_data("admin", child, &set(&[("fail", "false")])).unwrap();
    assert_eq!(status(&fx, started.instance_id), InstanceStatus::Active, "still waiting");
    let retried = fx.engine.retry("admin", child).unwrap();
    assert_eq!(retried.status, InstanceStatus::Completed);
    assert_eq!(status(&fx, started.instance_id), InstanceStatus::Completed);
    assert_eq!(fx.field(started.instance_id, "result"), Value::Integer(10));
}

/// An asynchronous event starts its child and goes on: the parent does not
/// wait, even for a child that waits.
fn an_asynchronous_event_starts_the_child_and_goes_on<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    fx.deploy_sample("admin", "payment.process.json");
    let parent = r#"{"name": "parent", "fields": [{"name": "amount", "type": "decimal"}],
        "activities": [{"id": "a", "name": "A", "start": true,
          "events": [{"kind": "ipc", "name": "Start payment", "synchronous": false, "process": "payment", "folio": "for ${folio}",
                      "inputs": [{"from": "amount", "to": "amount"}]}]}]}"#;
    fx.deploy_json("admin", parent);
    let started = fx.engine.start("admin", "parent", "P-1", &set(&[("amount", "3.20")])).unwrap();
    assert_eq!(started.status, InstanceStatus::Completed, "{started:?}");
    let [child] = instances_of(&fx, "payment")[..] else { panic!() };
    let detail = fx.detail("admin", child);
    assert_eq!((detail.summary.status, detail.summary.folio.as_str()), (InstanceStatus::Active, "for P-1"));
    assert_eq!(detail.parent.as_ref().map(|p| (p.instance_id, p.serial_id)), Some((started.instance_id, None)));
    let parent = fx.detail("admin", started.instance_id);
    assert_eq!(parent.children.len(), 1);
    assert_eq!(parent.children[0].link.instance_id, child);
    // Its completion later tells nobody.
    fx.engine.finish("admin", support::parse_serial(&format!("{child}_1")), &[]).unwrap();
    assert_eq!(status(&fx, child), InstanceStatus::Completed);
    assert!(!fx.trail(child).iter().any(|line| line.contains("Parent notified")));
}

/// Every field type goes into the child and back unchanged, and a template
/// into a text field.
fn mappings_carry_every_field_type_both_ways<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    let fields = r#"{"name": "t", "type": "string"}, {"name": "i", "type": "integer"}, {"name": "d", "type": "decimal"},
                    {"name": "b", "type": "boolean"}, {"name": "day", "type": "date"}, {"name": "at", "type": "datetime"}"#;
    let child = format!(
        r#"{{"name": "echo", "fields": [{fields}, {{"name": "memo", "type": "string"}}],
            "activities": [{{"id": "a", "name": "A", "start": true,
              "events": [{{"kind": "server_event", "name": "Change", "script": "t = t + \"!\"; i += 1; b = !b;"}}]}}]}}"#
    );
    fx.deploy_json("admin", &child);
    let each = ["t", "i", "d", "b", "day", "at"];
    let inputs: Vec<String> = each.iter().map(|f| format!(r#"{{"from": "{f}", "to": "{f}"}}"#)).collect();
    let outputs: Vec<String> = each.iter().map(|f| format!(r#"{{"from": "{f}", "to": "out_{f}"}}"#)).collect();
    let out_fields = fields.replace("\"name\": \"", "\"name\": \"out_");
    let parent = format!(
        r#"{{"name": "parent", "fields": [{fields}, {out_fields}, {{"name": "memo", "type": "string"}}],
            "activities": [{{"id": "a", "name": "A", "start": true,
              "events": [{{"kind": "ipc", "name": "Echo", "process": "echo",
                "inputs": [{}, {{"from": "${{t}} on ${{day}} (#${{instance_id}})", "to": "memo"}}],
                "outputs": [{}, {{"from": "memo", "to": "memo"}}]}}]}}]}}"#,
        inputs.join(", "),
        outputs.join(", ")
    );
    fx.deploy_json("admin", &parent);
    let data = set(&[
        ("t", "héllo"),
        ("i", "41"),
        ("d", "1234567890.123456789"),
        ("b", "true"),
        ("day", "2026-12-06"),
        ("at", "2026-12-06T10:00:00Z"),
    ]);
    let started = fx.engine.start("admin", "parent", "", &data).unwrap();
    assert_eq!(started.status, InstanceStatus::Completed, "{started:?}");
    let id = started.instance_id;
    assert_eq!(fx.field(id, "out_t"), s("héllo!"));
    assert_eq!(fx.field(id, "out_i"), Value::Integer(42));
    assert_eq!(fx.field(id, "out_d"), fx.field(id, "d"));
    assert_eq!(fx.field(id, "out_d").to_string(), "1234567890.123456789");
    assert_eq!(fx.field(id, "out_b"), Value::Boolean(false));
    assert_eq!(fx.field(id, "out_day"), fx.field(id, "day"));
    assert_eq!(fx.field(id, "out_at"), fx.field(id, "at"));
    assert_eq!(fx.field(id, "memo"), s(&format!("héllo on 2026-12-06 (#{id})")));
}

/// An operator may finish the parent's wait by hand, as any server item.
/// The child is left to run (it is an instance of its own, which the
/// operator may stop); when it completes, nothing is copied back and its
/// trail says why.
fn finishing_the_parents_wait_by_hand_leaves_the_child_running_and_copies_nothing_back<S: Backend>() {
    let fx = order_fixture::<S>();
    let order = fx.engine.start("admin", "order", "", &[]).unwrap().instance_id;
    let [payment] = instances_of(&fx, "payment")[..] else { panic!() };
    let wait = format!("{order}_2");
    fx.clock.advance(1_000);
    let finished = fx
        .engine
        .finish("admin", support::parse_serial(&wait), &set(&[("paid", "true"), ("payment_ref", "BY HAND")]))
        .unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    assert_eq!(status(&fx, payment), InstanceStatus::Active, "the child runs on");

    fx.clock.advance(1_000);
    fx.engine.finish("admin", support::parse_serial(&format!("{payment}_1")), &set(&[("reference", "BANK")])).unwrap();
    assert_eq!(status(&fx, payment), InstanceStatus::Completed);
    assert_eq!(fx.field(order, "payment_ref"), s("BY HAND"));
    let trail = fx.trail(payment);
    let told = trail.iter().find(|line| line.contains("Parent notified")).expect("the child says what happened");
    assert!(told.contains(&format!("{wait} of instance {order}: server item {wait} was already finished")), "{told}");
    assert!(told.ends_with("nothing copied back"), "{told}");
}

/// A stopped parent holds its child's completion (as any callback) and
/// applies it on resume.
fn a_stopped_parent_holds_the_childs_completion_until_resumed<S: Backend>() {
    let fx = order_fixture::<S>();
    let order = fx.engine.start("admin", "order", "", &[]).unwrap().instance_id;
    let [payment] = instances_of(&fx, "payment")[..] else { panic!() };
    fx.engine.stop("admin", order).unwrap();
    fx.engine.finish("admin", support::parse_serial(&format!("{payment}_1")), &set(&[("reference", "R")])).unwrap();
    assert_eq!(status(&fx, payment), InstanceStatus::Completed);
    assert_eq!(status(&fx, order), InstanceStatus::Stopped);
    assert!(
        fx.trail(payment)
            .iter()
            .any(|l| l.ends_with(&format!("{order}_2 of instance {order}; applied when it runs again")))
    );
    let resumed = fx.engine.resume("admin", order).unwrap();
    assert_eq!(resumed.status, InstanceStatus::Completed);
    assert_eq!(fx.field(order, "payment_ref"), s("R"));
}

/// A process may start itself; the chain stops at the stated depth: the
/// instance that would start a child deeper than `MAX_DEPTH` is in Error,
/// saying so, and everything before it stands.
fn a_process_calling_itself_stops_at_the_depth_limit<S: Backend>() {
    use flowdesk::model::ipc::MAX_DEPTH;
    for synchronous in [false, true] {
        let fx = Fixture::<S>::fresh();
        let json = format!(
            r#"{{"name": "again", "activities": [{{"id": "a", "name": "A", "start": true,
                "events": [{{"kind": "ipc", "name": "Again", "synchronous": {synchronous}, "process": "again"}}]}}]}}"#
        );
        let draft = flowdesk::model::ProcessDraft::from_json(&json, "t").unwrap();
        let deployed = fx.engine.deploy("admin", &draft).unwrap();
        assert!(
            deployed.warnings.iter().any(|w| w.message.contains(&format!("deeper than {MAX_DEPTH}"))),
            "{deployed:?}"
        );
        fx.engine.start("admin", "again", "", &[]).unwrap();
        let ids = instances_of(&fx, "again");
        assert_eq!(ids.len(), MAX_DEPTH as usize + 1, "the top instance and {MAX_DEPTH} below it");
        let deepest = *ids.last().unwrap();
        let detail = fx.detail("admin", deepest);
        assert_eq!(detail.summary.status, InstanceStatus::Error);
        assert_eq!(detail.parent.as_ref().map(|p| p.depth), Some(MAX_DEPTH));
        let message = detail.failure.unwrap().message;
        assert!(message.contains(&format!("sub-processes may nest {MAX_DEPTH} deep")), "{message}");
        let others: Vec<InstanceStatus> = ids[..ids.len() - 1].iter().map(|id| status(&fx, *id)).collect();
        let expected = if synchronous { InstanceStatus::Active } else { InstanceStatus::Completed };
        assert!(others.iter().all(|s| *s == expected), "{others:?}");
    }
}

/// Deploying checks the child against the deployed processes: one not
/// deployed, a mapping to a field it lacks, and a type that differs are
/// errors with the event's place, and nothing is deployed.
fn deploy_checks_the_child_against_the_deployed_processes<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    let parent = parent_of("quick", true, r#"[{"from": "n", "to": "n"}]"#, r#"[{"from": "doubled", "to": "result"}]"#);
    let draft = flowdesk::model::ProcessDraft::from_json(&parent, "t").unwrap();
    let problems = |err: EngineError| match err {
        EngineError::InvalidDefinition { problems, .. } => problems,
        other => panic!("{other}"),
    };
    let refused = problems(fx.engine.deploy("admin", &draft).unwrap_err());
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].severity, Severity::Error);
    assert_eq!(refused[0].message, "child process `quick` is not deployed: deploy it first");
    assert!(matches!(&refused[0].location, Location::Event { activity_id, index: 0, .. } if activity_id == "call"));
    assert!(fx.engine.definition("parent").is_err(), "nothing deployed");

    fx.deploy_json("admin", &quick_child());
    let bad = parent_of(
        "quick",
        true,
        r#"[{"from": "n", "to": "nn"}, {"from": "fail", "to": "n"}]"#,
        r#"[{"from": "doubled", "to": "fail"}]"#,
    );
    let draft = flowdesk::model::ProcessDraft::from_json(&bad, "t").unwrap();
    let messages: Vec<String> =
        problems(fx.engine.deploy("admin", &draft).unwrap_err()).into_iter().map(|p| p.message).collect();
    assert_eq!(
        messages,
        [
            "input mapping 1 (→ `nn`): process `quick` has no field `nn` (version 1)",
            "input mapping 2 (→ `n`): type mismatch: `fail` (boolean) into `n` of `quick` (integer) (version 1)",
            "output mapping 1 (`doubled` → `fail`): type mismatch: `doubled` of `quick` (integer) into `fail` (boolean) (version 1)",
        ]
    );
    // The engine's validation with a database says so too.
    let checked = fx.engine.validate(&draft).unwrap();
    assert_eq!(checked.iter().filter(|p| p.severity == Severity::Error).count(), 3);
}

/// Depth alone does not bound a process whose events start many children
/// each: one step starts at most `MAX_CHILDREN_PER_CALL`, and the event
/// that would start one more puts its instance in Error.
fn one_step_starts_a_bounded_number_of_children<S: Backend>() {
    use flowdesk::engine::MAX_CHILDREN_PER_CALL;
    let fx = Fixture::<S>::fresh();
    let events: Vec<String> = (0..10)
        .map(|n| format!(r#"{{"kind": "ipc", "name": "Again {n}", "synchronous": false, "process": "fan"}}"#))
        .collect();
    let json = format!(
        r#"{{"name": "fan", "activities": [{{"id": "a", "name": "A", "start": true, "events": [{}]}}]}}"#,
        events.join(", ")
    );
    fx.deploy_json("admin", &json);
    let started = fx.engine.start("admin", "fan", "", &[]).unwrap();
    let filter = InstanceFilter { limit: 5_000, ..InstanceFilter::default() };
    let all = fx.engine.instances("admin", &filter).unwrap();
    assert_eq!(all.len(), MAX_CHILDREN_PER_CALL + 1, "the top instance and the children one step may start");
    let failed: Vec<String> = all
        .iter()
        .filter(|i| i.status == InstanceStatus::Error)
        .filter_map(|i| fx.detail("admin", i.id).failure.map(|f| f.message))
        .collect();
    // Depth first: deep ones stop at the depth limit on the way, and once
    // the step has started its most, every event that would start one more.
    let most = failed.iter().filter(|m| m.contains("sub-processes already, the most one step may")).count();
    assert!(most > 0, "{} failures, none at the bound", failed.len());
    assert_eq!(started.status, InstanceStatus::Error, "the top instance's later events hit the bound too");
}

support::on_every_backend! {
    order_waits_for_payment,
    a_child_completing_before_the_parents_step_commits_is_applied_as_an_early_callback,
    starting_a_child_needs_start_on_it_and_a_retry_after_the_grant_goes_on,
    a_child_in_error_leaves_the_parent_waiting_until_the_child_is_repaired,
    an_asynchronous_event_starts_the_child_and_goes_on,
    mappings_carry_every_field_type_both_ways,
    finishing_the_parents_wait_by_hand_leaves_the_child_running_and_copies_nothing_back,
    a_stopped_parent_holds_the_childs_completion_until_resumed,
    a_process_calling_itself_stops_at_the_depth_limit,
    deploy_checks_the_child_against_the_deployed_processes,
    one_step_starts_a_bounded_number_of_children,
}
