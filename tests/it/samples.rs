//! Every sample process in `samples/` is a valid, stable file that runs to
//! completion, and the purchase-approval and shipment samples behave as their
//! descriptions say when driven end to end through the engine.

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use flowdesk::engine::{
    AuditAction, Engine, FieldInput, InstanceDetail, InstanceStatus, MailAccepted, MailError, Mailer, Outbound,
    OutboundError, OutboundResponse, Progress,
};
use flowdesk::model::{CompiledProcess, EscalationAction, EventDraft, HttpMethod, HttpRequest, MailMessage};
use flowdesk::model::{FieldType, ProcessDraft, Right, ScriptHost, Value, validate};
use flowdesk::store::{Durability, SqliteStore};
use support::external::{ExternalSystem, Reply};

const OWNER: &str = "alice";

fn samples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// Every `*.process.json` file in `samples/`, sorted so failures are reproducible.
fn sample_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(samples_dir())
        .expect("samples/ is readable")
        .map(|entry| entry.expect("samples/ entry").path())
        .filter(|path| {
            path.file_name().and_then(|name| name.to_str()).is_some_and(|name| name.ends_with(".process.json"))
        })
        .collect();
    files.sort();
    files
}

fn load(path: &Path) -> ProcessDraft {
    ProcessDraft::load(path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
}

fn load_sample(file_name: &str) -> ProcessDraft {
    load(&samples_dir().join(file_name))
}

/// An external system that accepts every request without looking at it, so
/// that samples whose requests go to a fixed address run anywhere.
struct AcceptEverything;

impl Outbound for AcceptEverything {
    fn send(&self, _request: &HttpRequest) -> Result<OutboundResponse, OutboundError> {
        Ok(OutboundResponse { status: 202, reason: "Accepted".to_owned(), body_excerpt: String::new() })
    }
}

/// An SMTP server that accepts every mail without looking at it.
struct AcceptEveryMail;

impl Mailer for AcceptEveryMail {
    fn send_mail(&self, _mail: &MailMessage, _date: std::time::SystemTime) -> Result<MailAccepted, MailError> {
        Ok(MailAccepted { message_id: "<sample@example.com>".to_owned() })
    }
}

/// An engine on a fresh database in a temporary folder; keep the folder alive.
/// Its HTTP requests and mail are accepted without being sent.
fn engine() -> (tempfile::TempDir, Engine<SqliteStore>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(&dir.path().join("flowdesk.db"), Durability::Normal).expect("open database");
    (dir, Engine::new(store).with_outbound(Arc::new(AcceptEverything)).with_mailer(Arc::new(AcceptEveryMail)))
}

fn text(pairs: &[(&str, &str)]) -> Vec<(String, FieldInput)> {
    pairs.iter().map(|(name, value)| (name.to_string(), FieldInput::Text(value.to_string()))).collect()
}

fn field<'a>(detail: &'a InstanceDetail, name: &str) -> &'a Value {
    detail
        .fields
        .iter()
        .find(|(field, _, _)| field == name)
        .map(|(_, _, value)| value)
        .unwrap_or_else(|| panic!("no field `{name}`"))
}

fn typed(field_type: FieldType, text: &str) -> Value {
    Value::parse(field_type, text, &flowdesk::model::ProcessZone::utc()).unwrap()
}

fn string(text: &str) -> Value {
    Value::String(text.to_owned())
}

/// How many activity instances of `activity_id` the instance has had.
fn runs_of(detail: &InstanceDetail, activity_id: &str) -> usize {
    detail.activities.iter().filter(|record| record.activity_id == activity_id).count()
}

/// Position of the first audit entry with `action` whose detail starts with `detail`.
fn audit_position(detail: &InstanceDetail, action: AuditAction, detail_prefix: &str) -> usize {
    detail
        .audit
        .iter()
        .position(|entry| entry.action == action && entry.detail.starts_with(detail_prefix))
        .unwrap_or_else(|| panic!("no audit entry `{action}` `{detail_prefix}…` in {:#?}", detail.audit))
}

fn logs(detail: &InstanceDetail) -> Vec<&str> {
    detail.audit.iter().filter(|entry| entry.action == AuditAction::Log).map(|entry| entry.detail.as_str()).collect()
}

fn only_serial(progress: &Progress) -> String {
    assert_eq!(progress.waiting.len(), 1, "{progress:?}");
    progress.waiting[0].clone()
}

// ----- every sample ----------------------------------------------------------

#[test]
fn samples_folder_holds_the_known_samples() {
    let names: Vec<String> =
        sample_files().iter().map(|path| path.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in [
        "callback.process.json",
        "callback-deadline.process.json",
        "http-callback.process.json",
        "notify-by-mail.process.json",
        "purchase-approval.process.json",
        "shipment.process.json",
        "order.process.json",
        "payment.process.json",
        "audit-log.process.json",
    ] {
        assert!(names.iter().any(|name| name == expected), "{expected} missing from {names:?}");
    }
}

#[test]
fn every_sample_validates_without_errors_or_warnings() {
    let host = ScriptHost::default();
    for path in sample_files() {
        let draft = load(&path);
        let problems: Vec<String> = validate(&draft, &host).iter().map(ToString::to_string).collect();
        assert!(problems.is_empty(), "{}: {problems:#?}", path.display());
    }
}

#[test]
fn every_sample_round_trips_through_to_json() {
    for path in sample_files() {
        let draft = load(&path);
        let saved = draft.to_json();
        let reloaded = ProcessDraft::from_json(&saved, &path.display().to_string())
            .unwrap_or_else(|err| panic!("{}: saved form does not load: {err}", path.display()));
        assert_eq!(reloaded, draft, "{}", path.display());
        assert_eq!(reloaded.to_json(), saved, "{}: saving twice differs", path.display());
        assert!(saved.ends_with("}\n"), "{}", path.display());
    }
}

/// Deploys every sample, starts it with default data and finishes whatever it
/// waits on without setting data, until it stops waiting: each must complete.
#[test]
fn every_sample_runs_to_completion_with_default_data() {
    for path in sample_files() {
        let draft = load(&path);
        let (_dir, engine) = engine();
        deploy_called_samples(&engine, &draft);
        let deployed = engine.deploy(OWNER, &draft).unwrap();
        assert_eq!(deployed.version, 1);
        assert!(deployed.warnings.is_empty(), "{:?}", deployed.warnings);
        let mut progress = engine.start(OWNER, &draft.name, "SMOKE-1", &[]).unwrap();
        let mut callbacks = 0;
        while progress.status == InstanceStatus::Active {
            callbacks += 1;
            assert!(callbacks <= 20, "{}: never completes", path.display());
            let serial = progress.waiting[0].clone();
            let finished = engine.finish(OWNER, support::parse_serial(&serial), &[]).unwrap();
            assert!(finished.applied, "{}: {serial}", path.display());
            progress = finished.progress;
        }
        assert_eq!(progress.status, InstanceStatus::Completed, "{}: {progress:?}", path.display());
        assert!(progress.waiting.is_empty());
        let detail = engine.instance(OWNER, progress.instance_id).unwrap();
        assert!(detail.failure.is_none(), "{:?}", detail.failure);
        assert!(detail.pending_items.is_empty());
        assert_eq!(
            detail.audit.last().map(|entry| entry.action.name()),
            Some("Instance completed"),
            "{}",
            path.display()
        );
    }
}

/// Deploys the samples `draft`'s sub-process events start (and those they
/// start), each from `samples/<process>.process.json`: a child must be
/// deployed before a process that calls it.
fn deploy_called_samples(engine: &Engine<SqliteStore>, draft: &ProcessDraft) {
    for activity in &draft.activities {
        for event in &activity.events {
            let EventDraft::Ipc(ipc) = event else { continue };
            if ipc.process == draft.name || engine.definition(&ipc.process).is_ok() {
                continue;
            }
            let child = load_sample(&format!("{}.process.json", ipc.process));
            deploy_called_samples(engine, &child);
            engine.deploy(OWNER, &child).unwrap();
        }
    }
}

// ----- HTTP callback ---------------------------------------------------------

/// The sample's request, sent for real to a shipping service that stands in
/// for the one at 127.0.0.1:9000, then finished by its callback.
#[test]
fn http_callback_sample_posts_its_serial_and_completes_on_the_callback() {
    let service = ExternalSystem::start(|_| Reply::status(202, "queued"));
    let mut draft = load_sample("http-callback.process.json");
    let EventDraft::HttpRequest(request) = &mut draft.activities[0].events[0] else { panic!("not an HTTP request") };
    request.url = request.url.replace("http://127.0.0.1:9000", &service.url(""));
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("flowdesk.db"), Durability::Normal).unwrap();
    let engine = Engine::new(store);
    engine.deploy(OWNER, &draft).unwrap();

    let progress = engine.start(OWNER, "http-callback", "SO-12", &text(&[("order_id", "A 7")])).unwrap();

    let serial = only_serial(&progress);
    let sent = &service.requests()[0];
    assert_eq!((sent.method.as_str(), sent.path.as_str()), ("POST", "/shipments?order=A%207"));
    assert_eq!(sent.header("x-folio"), Some("SO-12"));
    assert_eq!(
        sent.json(),
        serde_json::json!({
            "serial": serial,
            "order": "A 7",
            "amount": "49.90",
            "express": false,
            "note": format!("call back with serial {serial} when shipped"),
        })
    );
    let finished = engine.finish(OWNER, support::parse_serial(&serial), &text(&[("tracking", "1Z999")])).unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    let detail = engine.instance(OWNER, progress.instance_id).unwrap();
    assert_eq!(field(&detail, "shipped"), &Value::Boolean(true));
    assert!(logs(&detail).contains(&"Record shipment: shipped, tracking 1Z999"), "{:?}", logs(&detail));
}

// ----- notify by mail --------------------------------------------------------

/// Keeps every mail it is given.
#[derive(Default)]
struct MailBox(std::sync::Mutex<Vec<MailMessage>>);

impl Mailer for MailBox {
    fn send_mail(&self, mail: &MailMessage, _date: std::time::SystemTime) -> Result<MailAccepted, MailError> {
        let mut mails = self.0.lock().unwrap();
        mails.push(mail.clone());
        Ok(MailAccepted { message_id: format!("<{}@example.com>", mails.len()) })
    }
}

/// The sample's two mails: the confirmation, then, after the warehouse's
/// callback, the shipping note with the tracking number it brought.
#[test]
fn notify_by_mail_sample_confirms_then_tells_the_tracking_number_after_the_callback() {
    let mails = Arc::new(MailBox::default());
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("flowdesk.db"), Durability::Normal).unwrap();
    let engine = Engine::new(store).with_mailer(mails.clone());
    engine.deploy(OWNER, &load_sample("notify-by-mail.process.json")).unwrap();

    let progress = engine.start(OWNER, "notify-by-mail", "SO-12", &[]).unwrap();

    let serial = only_serial(&progress);
    {
        let sent = mails.0.lock().unwrap();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to[0].to_string(), "Ada Lovelace <ada@example.com>");
        assert_eq!(sent[0].subject, "Your order A-1001 (SO-12)");
        assert!(sent[0].text.contains("order A-1001 of 49.90 EUR"), "{}", sent[0].text);
        assert!(sent[0].html.as_deref().unwrap().contains("<b>A-1001</b>"));
    }
    let finished = engine.finish(OWNER, support::parse_serial(&serial), &text(&[("tracking", "1Z999")])).unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    let sent = mails.0.lock().unwrap();
    assert_eq!(sent[1].recipients(), "ada@example.com, orders@example.com");
    assert!(sent[1].text.ends_with("Tracking number: 1Z999."), "{}", sent[1].text);
    let detail = engine.instance(OWNER, progress.instance_id).unwrap();
    audit_position(&detail, AuditAction::Mail, "to ada@example.com accepted as <1@example.com>");
    audit_position(&detail, AuditAction::Mail, "to ada@example.com, orders@example.com accepted as <2@example.com>");
}

// ----- callback with deadlines ----------------------------------------------

/// The article's scenario with deadlines: after 1 hour without a callback a
/// notify request "Chase up" goes out and the item keeps waiting; after 3
/// hours it is finished with `name = "timed out"`, which leads to `Timed
/// out`. (Firing them is the scheduler's: here, what the sample says.)
#[test]
fn callback_deadline_sample_chases_up_after_1_hour_and_times_out_after_3() {
    let draft = load_sample("callback-deadline.process.json");
    let process = CompiledProcess::compile(&draft, &ScriptHost::default()).unwrap();
    assert_eq!(process.time_zone.name(), "Europe/London");
    let call = &process.activities[process.find_activity("call").unwrap()];
    let started = 1_796_551_200_000; // 2026-12-06T10:00:00Z
    let hour = 3_600_000;
    let [chase, give_up] = &call.escalations[..] else { panic!("{:?}", call.escalations) };
    assert_eq!(chase.name, "Chase up");
    assert_eq!(process.due_at(&chase.due, started, &process.defaults), Ok(started + hour));
    let EscalationAction::Notify(request) = &chase.action else { panic!("{:?}", chase.action) };
    assert_eq!(request.method, HttpMethod::Post);
    assert_eq!(give_up.name, "Give up");
    assert_eq!(process.due_at(&give_up.due, started, &process.defaults), Ok(started + 3 * hour));
    let EscalationAction::Finish(values) = &give_up.action else { panic!("{:?}", give_up.action) };
    assert_eq!(values, &[("name".to_owned(), string("timed out"))]);

    // Finished as the deadline finishes it, the instance ends at `Timed out`.
    let (_dir, engine) = engine();
    engine.deploy(OWNER, &draft).unwrap();
    let progress = engine.start(OWNER, "callback-deadline", "PO-7", &[]).unwrap();
    let serial = only_serial(&progress);
    let finished = engine.finish(OWNER, support::parse_serial(&serial), &text(&[("name", "timed out")])).unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    let detail = engine.instance(OWNER, progress.instance_id).unwrap();
    assert_eq!(runs_of(&detail, "timed_out"), 1);
    assert_eq!(runs_of(&detail, "rejected") + runs_of(&detail, "approved"), 0);
    assert_eq!(field(&detail, "done"), &Value::Boolean(false));
}

// ----- purchase approval -----------------------------------------------------

const PURCHASE: &str = "purchase-approval";

fn deploy_purchase(engine: &Engine<SqliteStore>) {
    engine.deploy(OWNER, &load_sample("purchase-approval.process.json")).unwrap();
    engine.grant(OWNER, PURCHASE, "finance", &[Right::ServerEvent]).unwrap();
}

#[test]
fn purchase_approval_joins_both_checks_and_places_the_order() {
    let (_dir, engine) = engine();
    deploy_purchase(&engine);
    let progress = engine
        .start(
            OWNER,
            PURCHASE,
            "PR-1042",
            &text(&[("requester", "Ada Lovelace"), ("amount", "1250.00"), ("cost_centre", "CC-4711")]),
        )
        .unwrap();
    assert_eq!(progress.status, InstanceStatus::Active);
    let id = progress.instance_id;
    // Only the budget check waits; the compliance check ran at once.
    let serial = only_serial(&progress);
    assert_eq!(serial, format!("{id}_2"));

    let waiting = engine.instance(OWNER, id).unwrap();
    assert_eq!(runs_of(&waiting, "decide"), 0, "the join must wait for the budget");
    let status_of =
        |id: &str| waiting.activities.iter().find(|record| record.activity_id == id).map(|record| record.status.name());
    assert_eq!(status_of("submit"), Some("Completed"));
    assert_eq!(status_of("compliance"), Some("Completed"));
    assert_eq!(status_of("budget"), Some("Active"));
    assert_eq!(field(&waiting, "compliance_ok"), &Value::Boolean(true));
    assert_eq!(field(&waiting, "budget_ok"), &Value::Boolean(false));
    assert_eq!(field(&waiting, "status"), &string("submitted"));
    assert!(
        logs(&waiting)
            .contains(&format!("Ask finance: asked finance to reserve 1250.00 on CC-4711, serial {serial}").as_str()),
        "{:?}",
        logs(&waiting)
    );

    let finished = engine
        .finish(
            "finance",
            support::parse_serial(&serial),
            &text(&[("budget_ok", "true"), ("budget_checked_on", "2026-11-26")]),
        )
        .unwrap();
    assert!(finished.applied);
    assert_eq!(finished.serial, serial);
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    assert!(finished.progress.waiting.is_empty());

    let done = engine.instance(OWNER, id).unwrap();
    assert_eq!(done.summary.status, InstanceStatus::Completed);
    assert_eq!(field(&done, "requester"), &string("Ada Lovelace"));
    assert_eq!(field(&done, "amount"), &typed(FieldType::Decimal, "1250.00"));
    assert_eq!(field(&done, "budget_ok"), &Value::Boolean(true));
    assert_eq!(field(&done, "compliance_ok"), &Value::Boolean(true));
    assert_eq!(field(&done, "compliance_note"), &string("within policy"));
    assert_eq!(field(&done, "approved"), &Value::Boolean(true));
    assert_eq!(field(&done, "decided_on"), &typed(FieldType::Date, "2026-11-26"));
    assert_eq!(field(&done, "order_number"), &string(&format!("PO-{id}")));
    assert_eq!(field(&done, "status"), &string("ordered"));

    // The join ran once, and only after both branches had completed.
    assert_eq!(runs_of(&done, "decide"), 1);
    assert_eq!(runs_of(&done, "budget"), 1);
    assert_eq!(runs_of(&done, "compliance"), 1);
    assert_eq!(runs_of(&done, "order"), 1);
    assert_eq!(runs_of(&done, "declined"), 0);
    assert!(done.activities.iter().all(|r| r.status.name() == "Completed"));
    let join_started = audit_position(&done, AuditAction::ActivityStarted, "Decide (");
    let budget_done = audit_position(&done, AuditAction::ActivityCompleted, "Check budget (");
    let compliance_done = audit_position(&done, AuditAction::ActivityCompleted, "Check compliance (");
    assert!(join_started > budget_done && join_started > compliance_done, "{:#?}", done.audit);
    let callback = audit_position(&done, AuditAction::ItemFinished, &serial);
    assert_eq!(done.audit[callback].user, "finance");
    assert!(
        logs(&done).contains(&"Decide: decision on PR-1042: approved (budget true, compliance true)"),
        "{:?}",
        logs(&done)
    );

    // Lines: both branch lines and both join lines fired; only the approved line after.
    let fired: Vec<(usize, bool)> = done.lines.iter().map(|l| (l.line_index, l.fired)).collect();
    for line in 0..4 {
        assert!(fired.contains(&(line, true)), "line {line}: {fired:?}");
    }
    assert!(fired.contains(&(4, true)), "{fired:?}");
    assert!(fired.contains(&(5, false)), "{fired:?}");
}

#[test]
fn purchase_approval_declines_without_budget() {
    let (_dir, engine) = engine();
    deploy_purchase(&engine);
    let progress = engine
        .start(
            OWNER,
            PURCHASE,
            "PR-1043",
            &text(&[("requester", "Grace Hopper"), ("amount", "900"), ("cost_centre", "CC-0815")]),
        )
        .unwrap();
    let serial = only_serial(&progress);
    let finished = engine
        .finish(
            "finance",
            support::parse_serial(&serial),
            &text(&[("budget_ok", "false"), ("budget_checked_on", "2026-11-27")]),
        )
        .unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    let done = engine.instance(OWNER, progress.instance_id).unwrap();
    assert_eq!(field(&done, "approved"), &Value::Boolean(false));
    assert_eq!(field(&done, "compliance_ok"), &Value::Boolean(true));
    assert_eq!(field(&done, "status"), &string("declined"));
    assert_eq!(field(&done, "order_number"), &string(""));
    assert_eq!(field(&done, "decided_on"), &typed(FieldType::Date, "2026-11-27"));
    assert_eq!(runs_of(&done, "decide"), 1);
    assert_eq!(runs_of(&done, "declined"), 1);
    assert_eq!(runs_of(&done, "order"), 0);
    assert!(
        logs(&done).contains(&"Tell requester: declined for Grace Hopper: no budget on the cost centre"),
        "{:?}",
        logs(&done)
    );
}

#[test]
fn purchase_approval_declines_above_the_policy_limit_despite_budget() {
    let (_dir, engine) = engine();
    deploy_purchase(&engine);
    let progress = engine
        .start(
            OWNER,
            PURCHASE,
            "PR-1044",
            &text(&[("requester", "Ada Lovelace"), ("amount", "25000.01"), ("cost_centre", "CC-4711")]),
        )
        .unwrap();
    let serial = only_serial(&progress);
    let finished = engine
        .finish(
            "finance",
            support::parse_serial(&serial),
            &text(&[("budget_ok", "true"), ("budget_checked_on", "2026-11-27")]),
        )
        .unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    let done = engine.instance(OWNER, progress.instance_id).unwrap();
    assert_eq!(field(&done, "budget_ok"), &Value::Boolean(true));
    assert_eq!(field(&done, "compliance_ok"), &Value::Boolean(false));
    assert_eq!(field(&done, "compliance_note"), &string("above 25000 the board must sign"));
    assert_eq!(field(&done, "approved"), &Value::Boolean(false));
    assert_eq!(field(&done, "status"), &string("declined"));
    assert_eq!(runs_of(&done, "decide"), 1);
    assert_eq!(runs_of(&done, "declined"), 1);
    assert_eq!(runs_of(&done, "order"), 0);
}

// ----- shipment --------------------------------------------------------------

const SHIPMENT: &str = "shipment";

fn deploy_shipment(engine: &Engine<SqliteStore>) {
    engine.deploy(OWNER, &load_sample("shipment.process.json")).unwrap();
    engine.grant(OWNER, SHIPMENT, "carrier", &[Right::ServerEvent]).unwrap();
}

/// The serials one shipment handed out, in order.
struct Serials {
    booking: String,
    pickup: String,
    delivery: String,
}

/// Starts a shipment and answers the booking and pickup callbacks; returns the
/// instance id and its serials (the delivery one is still pending).
fn book_shipment(engine: &Engine<SqliteStore>, folio: &str, weight: &str) -> (i64, Serials) {
    let progress = engine.start(OWNER, SHIPMENT, folio, &text(&[("order_ref", folio), ("weight_kg", weight)])).unwrap();
    assert_eq!(progress.status, InstanceStatus::Active);
    let id = progress.instance_id;
    let booking = only_serial(&progress);
    assert_eq!(booking, format!("{id}_2"));

    // Booking answered: the same activity's second asynchronous event now waits,
    // on a server item of its own with a new serial.
    let booked = engine
        .finish(
            "carrier",
            support::parse_serial(&booking),
            &text(&[("booking_ref", "BK-88231"), ("booked_on", "2026-11-25")]),
        )
        .unwrap();
    assert!(booked.applied);
    assert_eq!(booked.progress.status, InstanceStatus::Active);
    let pickup = only_serial(&booked.progress);
    assert_ne!(pickup, booking, "every server item has its own serial");
    assert!(pickup.starts_with(&format!("{id}_")), "{pickup}");
    let between = engine.instance(OWNER, id).unwrap();
    assert_eq!(runs_of(&between, "book"), 1);
    assert_eq!(runs_of(&between, "deliver"), 0);
    assert_eq!(between.pending_items.len(), 1);
    assert_eq!(between.pending_items[0].event, "Request pickup");
    assert!(
        logs(&between).contains(
            &format!("Request pickup: booking BK-88231 confirmed; pickup requested, serial {pickup}").as_str()
        ),
        "{:?}",
        logs(&between)
    );

    // Pickup answered: the next activity's event waits on a new serial.
    let picked = engine
        .finish(
            "carrier",
            support::parse_serial(&pickup),
            &text(&[("pickup_on", "2026-11-26"), ("tracking_number", "1Z999AA10123456784")]),
        )
        .unwrap();
    assert!(picked.applied);
    assert_eq!(picked.progress.status, InstanceStatus::Active);
    let delivery = only_serial(&picked.progress);
    assert!(delivery != booking && delivery != pickup, "{booking} {pickup} {delivery}");
    assert!(delivery.starts_with(&format!("{id}_")), "{delivery}");
    let waiting = engine.instance(OWNER, id).unwrap();
    assert_eq!(waiting.pending_items.len(), 1);
    assert_eq!(waiting.pending_items[0].event, "Track parcel");
    assert_eq!(waiting.pending_items[0].serial.to_string(), delivery);
    (id, Serials { booking, pickup, delivery })
}

#[test]
fn shipment_waits_for_three_callbacks_and_closes_the_order() {
    let (_dir, engine) = engine();
    deploy_shipment(&engine);
    let (id, serials) = book_shipment(&engine, "SO-2201", "42.5");

    let finished = engine
        .finish(
            "carrier",
            support::parse_serial(&serials.delivery),
            &text(&[("delivery_status", "delivered"), ("delivered_on", "2026-11-28"), ("signed_by", "J. Smith")]),
        )
        .unwrap();
    assert!(finished.applied);
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    assert!(finished.progress.waiting.is_empty());

    let done = engine.instance(OWNER, id).unwrap();
    assert_eq!(done.summary.status, InstanceStatus::Completed);
    assert_eq!(field(&done, "carrier"), &string("FreightLine"));
    assert_eq!(field(&done, "booking_ref"), &string("BK-88231"));
    assert_eq!(field(&done, "booked_on"), &typed(FieldType::Date, "2026-11-25"));
    assert_eq!(field(&done, "pickup_on"), &typed(FieldType::Date, "2026-11-26"));
    assert_eq!(field(&done, "tracking_number"), &string("1Z999AA10123456784"));
    assert_eq!(field(&done, "delivery_status"), &string("delivered"));
    assert_eq!(field(&done, "delivered_on"), &typed(FieldType::Date, "2026-11-28"));
    assert_eq!(field(&done, "signed_by"), &string("J. Smith"));
    assert_eq!(field(&done, "outcome"), &string("closed"));
    assert_eq!(runs_of(&done, "book"), 1);
    assert_eq!(runs_of(&done, "deliver"), 1);
    assert_eq!(runs_of(&done, "close"), 1);
    assert_eq!(runs_of(&done, "claim"), 0);

    // Each asynchronous script logged the serial it handed out.
    let logs = logs(&done);
    for expected in [
        "Choose carrier: order SO-2201: 42.5 kg goes with FreightLine".to_owned(),
        format!("Request booking: booking requested from FreightLine for SO-2201, serial {}", serials.booking),
        format!("Request pickup: booking BK-88231 confirmed; pickup requested, serial {}", serials.pickup),
        format!(
            "Track parcel: tracking 1Z999AA10123456784 from 2026-11-26, waiting for delivery on serial {}",
            serials.delivery
        ),
        "Archive order: SO-2201 delivered on 2026-11-28, signed by J. Smith".to_owned(),
    ] {
        assert!(logs.contains(&expected.as_str()), "{expected}\n{logs:#?}");
    }
    // Three callbacks, all by the carrier, applied in order.
    let callbacks: Vec<&str> = done
        .audit
        .iter()
        .filter(|entry| entry.action == AuditAction::ItemFinished)
        .map(|entry| entry.user.as_str())
        .collect();
    assert_eq!(callbacks, ["carrier", "carrier", "carrier"]);
}

#[test]
fn shipment_refused_parcel_opens_a_claim() {
    let (_dir, engine) = engine();
    deploy_shipment(&engine);
    let (id, serials) = book_shipment(&engine, "SO-2202", "3.2");
    let finished = engine
        .finish("carrier", support::parse_serial(&serials.delivery), &text(&[("delivery_status", "refused")]))
        .unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    let done = engine.instance(OWNER, id).unwrap();
    assert_eq!(field(&done, "carrier"), &string("ParcelNet"));
    assert_eq!(field(&done, "delivery_status"), &string("refused"));
    assert_eq!(field(&done, "outcome"), &string("claim against ParcelNet"));
    assert_eq!(runs_of(&done, "claim"), 1);
    assert_eq!(runs_of(&done, "close"), 0);
    assert!(
        logs(&done).contains(&"File claim: SO-2202 was not delivered (refused): claim opened for booking BK-88231"),
        "{:?}",
        logs(&done)
    );
}
