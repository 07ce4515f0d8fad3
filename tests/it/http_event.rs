//! HTTP request events, end to end: the engine sends real requests over
//! loopback to a fake external system (`support::external`) and the tests
//! check what arrived, what the instance did, and what the trail says.
//! Nothing here sleeps: a request is held open by a handler blocked on a
//! channel the test controls.
//!
//! Part of the conformance suite (see `engine_scenarios.rs`): each scenario
//! runs on every backend.

use crate::support;

use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use flowdesk::engine::{Finished, HookPoint, InstanceStatus, Progress};
use flowdesk::model::{Right, ScriptHost, Value};
use support::external::{ExternalSystem, Reply, closed_port_url};
use support::{Backend, Fixture, engine_on, s, set};

/// A process whose start activity holds one HTTP request event (`event`,
/// JSON of the event's other properties) and then sets `done`; the data
/// fields cover every placeholder kind.
fn process(event: &str) -> String {
    format!(
        r#"{{
      "name": "notify",
      "fields": [
        {{ "name": "name", "type": "string" }},
        {{ "name": "n", "type": "integer" }},
        {{ "name": "ok", "type": "boolean" }},
        {{ "name": "due", "type": "date", "default": "2026-11-26" }},
        {{ "name": "amount", "type": "decimal" }},
        {{ "name": "answer", "type": "string" }},
        {{ "name": "done", "type": "boolean" }}
      ],
      "activities": [
        {{ "id": "tell", "name": "Tell", "start": true, "events": [
          {{ "kind": "http_request", "name": "Notify", {event} }},
          {{ "kind": "server_event", "name": "Mark done", "script": "done = true;" }}
        ] }}
      ]
    }}"#
    )
}

fn deploy<S: Backend>(fixture: &Fixture<S>, event: &str) {
    fixture.deploy_json("admin", &process(event));
    fixture.engine.grant("admin", "notify", "partner", &[Right::ServerEvent]).unwrap();
}

/// `"url": "<url>"` plus `rest`, as JSON properties.
fn event(url: &str, rest: &str) -> String {
    let url = serde_json::Value::String(url.to_owned());
    if rest.is_empty() { format!(r#""url": {url}"#) } else { format!(r#""url": {url}, {rest}"#) }
}

fn failure_message(progress: &Progress) -> String {
    progress.failure.as_ref().map(|f| f.message.clone()).unwrap_or_else(|| panic!("no failure in {progress:?}"))
}

fn has_line(trail: &[String], start: &str) -> bool {
    trail.iter().any(|line| line.starts_with(start))
}

fn a_synchronous_request_is_sent_and_the_event_completes<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::ok());
    let fixture = Fixture::<S>::fresh();
    let url = external.url("/hook");
    deploy(&fixture, &event(&url, r#""body": "{\"folio\": ${folio}, \"serial\": ${serial}}""#));

    let progress = fixture.engine.start("admin", "notify", "PO-7", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Completed);
    assert_eq!(fixture.field(progress.instance_id, "done"), Value::Boolean(true));
    let requests = external.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/hook");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    // A synchronous event has no server item: its serial is null.
    assert_eq!(requests[0].json(), serde_json::json!({ "folio": "PO-7", "serial": null }));
    let trail = fixture.trail(progress.instance_id);
    assert!(has_line(&trail, &format!("admin: HTTP request POST {url} → 200 OK in ")), "{trail:#?}");
}

fn an_asynchronous_request_hands_out_the_serial_and_waits_for_the_callback<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::status(202, "queued"));
    let fixture = Fixture::<S>::fresh();
    deploy(&fixture, &event(&external.url("/jobs"), r#""synchronous": false, "body": "{\"serial\": ${serial}}""#));

    let progress = fixture.engine.start("admin", "notify", "", &[]).unwrap();

    let serial = format!("{}_1", progress.instance_id);
    assert_eq!(progress.status, InstanceStatus::Active);
    assert_eq!(progress.waiting, vec![serial.clone()]);
    assert_eq!(external.requests()[0].json(), serde_json::json!({ "serial": serial }));

    let finished =
        fixture.engine.finish("partner", support::parse_serial(&serial), &set(&[("answer", "shipped")])).unwrap();
    assert!(finished.applied);
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
    assert_eq!(fixture.field(progress.instance_id, "answer"), s("shipped"));
    assert_eq!(fixture.field(progress.instance_id, "done"), Value::Boolean(true));
}

/// DOMAIN.md's early callback, with a request: the external system calls back
/// before it has even answered the request that handed it the serial.
fn a_callback_that_arrives_before_the_request_returns_is_applied_when_it_returns<S: Backend>() {
    let fixture = Fixture::<S>::fresh();
    let (store, clock) = (fixture.engine.store().share(), fixture.clock.clone());
    let (answers, finish_answers) = mpsc::channel::<Result<Finished, String>>();
    let answers = Mutex::new(answers);
    let external = ExternalSystem::start(move |request| {
        let serial = request.json()["serial"].as_str().unwrap_or_default().to_owned();
        // The external system's own connection to the engine, as the network API would have.
        let engine = engine_on(store.share(), clock.clone(), ScriptHost::default());
        let finished = engine
            .finish("partner", support::parse_serial(&serial), &set(&[("answer", "early")]))
            .map_err(|e| e.to_string());
        answers.lock().unwrap().send(finished).unwrap();
        Reply::ok()
    });
    deploy(&fixture, &event(&external.url("/jobs"), r#""synchronous": false, "body": "{\"serial\": ${serial}}""#));

    let progress = fixture.engine.start("admin", "notify", "", &[]).unwrap();

    // The finish was acknowledged while the request was still open, but not applied yet...
    let early = finish_answers.recv().unwrap().unwrap();
    assert!(!early.applied, "{early:?}");
    assert_eq!(early.progress.status, InstanceStatus::Running);
    // ...and applied the moment the request returned.
    assert_eq!(progress.status, InstanceStatus::Completed);
    assert_eq!(fixture.field(progress.instance_id, "answer"), s("early"));
    assert_eq!(fixture.field(progress.instance_id, "done"), Value::Boolean(true));
    let trail = fixture.trail(progress.instance_id);
    let position = |start: &str| {
        trail.iter().position(|l| l.starts_with(start)).unwrap_or_else(|| panic!("no `{start}` in {trail:#?}"))
    };
    let finished = position("partner: Server item finished");
    let sent = position("admin: HTTP request POST");
    let applied = position("admin: Callback applied");
    assert!(finished < sent && sent < applied, "{trail:#?}");
}

fn an_error_status_puts_the_instance_in_error_with_the_status_and_body<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::status(500, "database is down"));
    let fixture = Fixture::<S>::fresh();
    let url = external.url("/hook");
    deploy(&fixture, &event(&url, ""));

    let progress = fixture.engine.start("admin", "notify", "", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    let failure = progress.failure.clone().unwrap();
    assert_eq!((failure.activity.as_str(), failure.event.as_str()), ("Tell", "Notify"));
    assert_eq!(failure.message, format!("POST {url} answered 500 Internal Server Error: database is down"));
    let trail = fixture.trail(progress.instance_id);
    assert!(has_line(&trail, &format!("admin: HTTP request POST {url} → 500 Internal Server Error in ")), "{trail:#?}");
    assert_eq!(fixture.field(progress.instance_id, "done"), Value::Boolean(false));
}

fn a_refused_connection_puts_the_instance_in_error<S: Backend>() {
    let fixture = Fixture::<S>::fresh();
    let url = closed_port_url("/hook");
    deploy(&fixture, &event(&url, ""));

    let progress = fixture.engine.start("admin", "notify", "", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    let message = failure_message(&progress);
    assert!(message.starts_with(&format!("POST {url} could not connect: ")), "{message}");
}

fn a_request_that_takes_longer_than_its_timeout_fails_naming_the_timeout<S: Backend>() {
    // The handler holds the request open until the test lets go of `release`;
    // dropping it at the end frees the handler without the test waiting.
    let (release, held) = mpsc::channel::<()>();
    let held = Mutex::new(held);
    let external = ExternalSystem::start(move |_| {
        let _ = held.lock().unwrap().recv();
        Reply::ok()
    });
    let fixture = Fixture::<S>::fresh();
    let url = external.url("/slow");
    deploy(&fixture, &event(&url, r#""timeout_seconds": 1"#));

    let progress = fixture.engine.start("admin", "notify", "", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    assert_eq!(failure_message(&progress), format!("POST {url} timed out after 1 s"));
    drop(release);
}

fn retry_sends_the_request_again_with_the_same_serial<S: Backend>() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let external = ExternalSystem::start(move |_| match counted.fetch_add(1, Ordering::SeqCst) {
        0 => Reply::status(503, ""),
        _ => Reply::ok(),
    });
    let fixture = Fixture::<S>::fresh();
    let url = external.url("/jobs");
    deploy(&fixture, &event(&url, r#""synchronous": false, "body": "{\"serial\": ${serial}}""#));

    let failed = fixture.engine.start("admin", "notify", "", &[]).unwrap();
    assert_eq!(failed.status, InstanceStatus::Error);
    assert_eq!(failure_message(&failed), format!("POST {url} answered 503 Service Unavailable"));

    let retried = fixture.engine.retry("admin", failed.instance_id).unwrap();

    let serial = format!("{}_1", failed.instance_id);
    assert_eq!(retried.status, InstanceStatus::Active);
    assert_eq!(retried.waiting, vec![serial.clone()]);
    let bodies: Vec<serde_json::Value> = external.requests().iter().map(|r| r.json()).collect();
    assert_eq!(bodies, vec![serde_json::json!({ "serial": serial }), serde_json::json!({ "serial": serial })]);
    let finished = fixture.engine.finish("partner", support::parse_serial(&serial), &[]).unwrap();
    assert_eq!(finished.progress.status, InstanceStatus::Completed);
}

fn placeholders_are_filled_as_json_as_escaped_text_percent_encoded_and_plain<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::ok());
    let fixture = Fixture::<S>::fresh();
    let body = r#"{"serial": ${serial}, "name": ${name}, "n": ${n}, "ok": ${ok}, "due": ${due}, "text": "${folio}: \"${name}\" x${n}"}"#;
    let rest = format!(
        r#""method": "PUT", "synchronous": false, "headers": [{{ "name": "X-Folio", "value": "folio ${{folio}}" }}], "body": {}"#,
        serde_json::Value::String(body.to_owned())
    );
    deploy(&fixture, &event(&external.url("/orders/${name}?n=${n}"), &rest));
    let name = "Zoë \"Q\" / Ünïcødé";

    let progress =
        fixture.engine.start("admin", "notify", "PO-9", &set(&[("name", name), ("n", "42"), ("ok", "true")])).unwrap();

    assert_eq!(progress.status, InstanceStatus::Active);
    let request = &external.requests()[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.path, "/orders/Zo%C3%AB%20%22Q%22%20%2F%20%C3%9Cn%C3%AFc%C3%B8d%C3%A9?n=42");
    assert_eq!(request.header("x-folio"), Some("folio PO-9"));
    assert_eq!(
        request.json(),
        serde_json::json!({
            "serial": format!("{}_1", progress.instance_id),
            "name": name,
            "n": 42,
            "ok": true,
            "due": "2026-11-26",
            "text": format!("PO-9: \"{name}\" x42"),
        })
    );
}

/// A decimal is written as the user gave it, not a floating-point rendering
/// (`12.5` for an amount of `12.50`, `1e20`) that the receiving system may
/// not parse: as text in the URL, a header and inside a JSON string, and
/// as a JSON string of that text in the body, as the API writes it.
fn decimals_are_written_as_decimal_text_in_urls_headers_and_bodies<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::ok());
    let fixture = Fixture::<S>::fresh();
    let rest = r#""headers": [{ "name": "X-Amount", "value": "${amount}" }], "body": "{\"a\": ${amount}, \"t\": \"${amount} EUR\"}""#;
    deploy(&fixture, &event(&external.url("/pay?amount=${amount}"), rest));

    for amount in ["0.00001", "12.50", "100000000000000000000"] {
        let progress = fixture.engine.start("admin", "notify", "", &set(&[("amount", amount)])).unwrap();
        assert_eq!(progress.status, InstanceStatus::Completed, "{progress:?}");
        let request = external.requests().pop().unwrap();
        assert_eq!(request.path, format!("/pay?amount={amount}"));
        assert_eq!(request.header("x-amount"), Some(amount));
        assert_eq!(request.json(), serde_json::json!({ "a": amount, "t": format!("{amount} EUR") }));
    }
}

/// A URL may carry credentials (`http://user:secret@host/`); the audit
/// trail and the failure reason, which everyone with View reads (also over
/// the API), must not repeat the password.
fn a_password_in_the_url_is_not_written_to_the_trail_or_the_failure<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::status(500, "down"));
    let fixture = Fixture::<S>::fresh();
    let url = external.url("/hook").replace("http://", "http://shipper:s3cr3t@");
    deploy(&fixture, &event(&url, ""));

    let progress = fixture.engine.start("admin", "notify", "", &[]).unwrap();

    assert_eq!(external.requests().len(), 1, "the request was sent");
    let failure = failure_message(&progress);
    assert!(failure.contains("http://shipper:***@127.0.0.1:"), "{failure}");
    assert!(!failure.contains("s3cr3t"), "{failure}");
    let trail = fixture.trail(progress.instance_id);
    assert!(has_line(&trail, "admin: HTTP request POST http://shipper:***@"), "{trail:#?}");
    assert!(trail.iter().all(|line| !line.contains("s3cr3t")), "{trail:#?}");
}

fn a_header_value_with_a_line_break_is_refused_and_nothing_is_sent<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::ok());
    let fixture = Fixture::<S>::fresh();
    deploy(&fixture, &event(&external.url("/hook"), r#""headers": [{ "name": "X-Name", "value": "${name}" }]"#));

    let progress = fixture.engine.start("admin", "notify", "", &set(&[("name", "a\r\nX-Evil: 1")])).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    assert_eq!(
        failure_message(&progress),
        "request not sent: header `x-name` cannot be sent: its value holds a line break or another control character"
    );
    assert!(external.requests().is_empty());
}

/// A runner that dies between committing the request as due and applying its
/// answer leaves the instance `Running`; recovery sends the request again.
fn recovery_sends_again_a_request_whose_runner_died<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::ok());
    let fixture = Fixture::<S>::fresh();
    deploy(&fixture, &event(&external.url("/jobs"), r#""synchronous": false, "body": "{\"serial\": ${serial}}""#));
    let dying = fixture.second_engine().with_hook(Arc::new(|point| {
        if point == HookPoint::BeforeAsyncScript {
            panic!("runner dies before sending");
        }
    }));
    let died = std::panic::catch_unwind(AssertUnwindSafe(|| dying.start("admin", "notify", "", &[])));
    assert!(died.is_err());
    assert!(external.requests().is_empty());
    let id = fixture.engine.instances("admin", &Default::default()).unwrap()[0].id;
    assert_eq!(fixture.detail("admin", id).summary.status, InstanceStatus::Running);

    // Recovery waits until the runner's claim, which covers the request's
    // timeout, has run out.
    assert!(fixture.engine.recover().unwrap().is_empty());
    fixture.clock.advance(60_000 + 10_000 + 1);
    assert_eq!(fixture.engine.recover().unwrap(), vec![id]);

    let serial = format!("{id}_1");
    assert_eq!(external.requests().len(), 1);
    assert_eq!(external.requests()[0].json(), serde_json::json!({ "serial": serial }));
    let detail = fixture.detail("admin", id);
    assert_eq!(detail.summary.status, InstanceStatus::Active);
    assert_eq!(detail.pending_items.iter().map(|i| i.serial.to_string()).collect::<Vec<_>>(), vec![serial]);
}

fn a_redirect_is_not_followed_but_reported<S: Backend>() {
    let external = ExternalSystem::start(|_| Reply::status(302, ""));
    let fixture = Fixture::<S>::fresh();
    let url = external.url("/moved");
    deploy(&fixture, &event(&url, r#""method": "GET""#));

    let progress = fixture.engine.start("admin", "notify", "", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    assert_eq!(failure_message(&progress), format!("GET {url} answered 302 Found"));
    let requests = external.requests();
    assert_eq!((requests.len(), requests[0].method.as_str(), requests[0].body.as_str()), (1, "GET", ""));
}

/// An operator stops the instance while its request is out: the answer is
/// still recorded when it comes, the instance stays stopped, and resuming
/// runs on from there without sending the request again.
fn an_instance_stopped_while_its_request_is_out_stays_stopped_until_resumed<S: Backend>() {
    let (arrived, request_arrived) = mpsc::channel::<()>();
    let (release, held) = mpsc::channel::<()>();
    let (arrived, held) = (Mutex::new(arrived), Mutex::new(held));
    let external = ExternalSystem::start(move |_| {
        arrived.lock().unwrap().send(()).unwrap();
        let _ = held.lock().unwrap().recv();
        Reply::ok()
    });
    let fixture = Fixture::<S>::fresh();
    deploy(&fixture, &event(&external.url("/hook"), ""));

    let progress = std::thread::scope(|scope| {
        let started = scope.spawn(|| fixture.engine.start("admin", "notify", "", &[]).unwrap());
        request_arrived.recv().unwrap();
        let id = fixture.engine.instances("admin", &Default::default()).unwrap()[0].id;
        assert_eq!(fixture.engine.stop("admin", id).unwrap().status, InstanceStatus::Stopped);
        release.send(()).unwrap();
        started.join().unwrap()
    });

    assert_eq!(progress.status, InstanceStatus::Stopped);
    let trail = fixture.trail(progress.instance_id);
    assert!(has_line(&trail, "admin: HTTP request POST"), "{trail:#?}");
    let resumed = fixture.engine.resume("admin", progress.instance_id).unwrap();
    assert_eq!(resumed.status, InstanceStatus::Completed);
    assert_eq!(external.requests().len(), 1);
}

/// The external system called back, then answered the request with an error:
/// the instance is in Error, yet the callback is kept and applied once a
/// retried request succeeds.
fn a_callback_recorded_before_a_failed_request_is_applied_after_the_retry<S: Backend>() {
    let fixture = Fixture::<S>::fresh();
    let (store, clock) = (fixture.engine.store().share(), fixture.clock.clone());
    let calls = AtomicUsize::new(0);
    let external = ExternalSystem::start(move |request| {
        if calls.fetch_add(1, Ordering::SeqCst) > 0 {
            return Reply::ok();
        }
        let serial = request.json()["serial"].as_str().unwrap_or_default().to_owned();
        let engine = engine_on(store.share(), clock.clone(), ScriptHost::default());
        match engine.finish("partner", support::parse_serial(&serial), &set(&[("answer", "before the error")])) {
            Ok(finished) if !finished.applied => Reply::status(500, "oops"),
            other => Reply::status(400, &format!("unexpected finish answer: {other:?}")),
        }
    });
    deploy(&fixture, &event(&external.url("/jobs"), r#""synchronous": false, "body": "{\"serial\": ${serial}}""#));

    let failed = fixture.engine.start("admin", "notify", "", &[]).unwrap();
    assert_eq!(failed.status, InstanceStatus::Error);
    assert!(failure_message(&failed).ends_with("answered 500 Internal Server Error: oops"), "{failed:?}");

    let retried = fixture.engine.retry("admin", failed.instance_id).unwrap();

    assert_eq!(retried.status, InstanceStatus::Completed);
    assert_eq!(fixture.field(failed.instance_id, "answer"), s("before the error"));
    assert_eq!(external.requests().len(), 2);
}

// ----- loops through a request event (issue 15) -------------------------------

/// One start activity whose synchronous `GET` leads back to the activity
/// itself. The line has a rule that always holds, so that the definition
/// deploys: without a rule such a loop is refused by validation.
fn request_loop(url: &str) -> String {
    serde_json::json!({
        "name": "poll",
        "fields": [{ "name": "n", "type": "integer" }],
        "activities": [{ "id": "poll", "name": "Poll", "start": true, "events": [
            { "kind": "http_request", "name": "Ask", "method": "GET", "url": url }
        ] }],
        "lines": [{ "from": "poll", "to": "poll", "rule": "n >= 0" }]
    })
    .to_string()
}

/// Answers 200 to the first `limit` requests and 500 after: a loop the
/// engine fails to stop still ends, in a failure the test tells apart.
fn ok_until(limit: usize) -> impl Fn(&support::external::ReceivedRequest) -> Reply + Send + Sync + 'static {
    let answered = AtomicUsize::new(0);
    move |_| {
        if answered.fetch_add(1, Ordering::SeqCst) < limit { Reply::ok() } else { Reply::status(500, "enough") }
    }
}

fn engine_with_max_steps<S: Backend>(fixture: &Fixture<S>, max_steps: usize) -> flowdesk::engine::Engine<S> {
    let store = fixture.engine.store().share();
    let options = flowdesk::engine::EngineOptions { max_steps, ..flowdesk::engine::EngineOptions::default() };
    flowdesk::engine::Engine::with_options(store, options, ScriptHost::default(), fixture.clock.clone())
}

const TWENTY_STEPS: &str = "ran 20 steps without waiting for anything: an endless loop of activities?";

/// Each request is its own transaction, and a step guard counted per
/// transaction never stopped this loop (issue 15: 40,437 commits in 31 s).
fn a_loop_through_a_synchronous_request_is_stopped_by_the_step_guard<S: Backend>() {
    let external = ExternalSystem::start(ok_until(200));
    let fixture = Fixture::<S>::fresh();
    fixture.deploy_json("admin", &request_loop(&external.url("/status")));
    let engine = engine_with_max_steps(&fixture, 20);

    let progress = engine.start("admin", "poll", "", &[]).unwrap();

    assert_eq!(progress.status, InstanceStatus::Error);
    assert_eq!(failure_message(&progress), TWENTY_STEPS);
    // Each round is two steps: the request event, then the activity's completion.
    assert_eq!(external.requests().len(), 10);
}

/// The count is kept with the instance: a runner that dies in the loop and
/// the recovery that takes it over share one guard.
fn the_step_count_of_a_request_loop_survives_its_runner_and_recovery<S: Backend>() {
    let external = ExternalSystem::start(ok_until(200));
    let fixture = Fixture::<S>::fresh();
    fixture.deploy_json("admin", &request_loop(&external.url("/status")));
    let reached = AtomicUsize::new(0);
    let dying = engine_with_max_steps(&fixture, 20).with_hook(Arc::new(move |point| {
        if point == HookPoint::BeforeAsyncScript && reached.fetch_add(1, Ordering::SeqCst) == 3 {
            panic!("the runner dies before its fourth request");
        }
    }));
    let died = std::panic::catch_unwind(AssertUnwindSafe(|| dying.start("admin", "poll", "", &[])));
    assert!(died.is_err());
    assert_eq!(external.requests().len(), 3);

    // The runner was this very process: its claim has to run out first.
    fixture.clock.advance(24 * 60 * 60 * 1000);
    let recovering = engine_with_max_steps(&fixture, 20);
    assert_eq!(recovering.recover().unwrap(), vec![1]);

    let detail = fixture.detail("admin", 1);
    assert_eq!(detail.summary.status, InstanceStatus::Error);
    assert_eq!(detail.failure.map(|f| f.message).as_deref(), Some(TWENTY_STEPS));
    assert_eq!(external.requests().len(), 10, "as many requests as without the crash");
}

/// An operator's stop lands between two requests of the loop (the runner
/// holds no lock while its request is out) and the runner sees it at once.
fn a_stop_reaches_a_request_loop_and_ends_it<S: Backend>() {
    let fixture = Fixture::<S>::fresh();
    let (store, clock) = (fixture.engine.store().share(), fixture.clock.clone());
    let answered = AtomicUsize::new(0);
    let (stops, stopped) = mpsc::channel();
    let stops = Mutex::new(stops);
    let external = ExternalSystem::start(move |_| match answered.fetch_add(1, Ordering::SeqCst) + 1 {
        3 => {
            let operator = engine_on(store.share(), clock.clone(), ScriptHost::default());
            stops.lock().unwrap().send(operator.stop("admin", 1).map(|p| p.status)).unwrap();
            Reply::ok()
        }
        n if n > 200 => Reply::status(500, "enough"),
        _ => Reply::ok(),
    });
    fixture.deploy_json("admin", &request_loop(&external.url("/status")));

    let progress = fixture.engine.start("admin", "poll", "", &[]).unwrap();

    assert_eq!(stopped.recv().unwrap().unwrap(), InstanceStatus::Stopped);
    assert_eq!(progress.status, InstanceStatus::Stopped);
    assert_eq!(external.requests().len(), 3);
}

support::on_every_backend! {
    a_synchronous_request_is_sent_and_the_event_completes,
    an_asynchronous_request_hands_out_the_serial_and_waits_for_the_callback,
    a_callback_that_arrives_before_the_request_returns_is_applied_when_it_returns,
    an_error_status_puts_the_instance_in_error_with_the_status_and_body,
    a_refused_connection_puts_the_instance_in_error,
    a_request_that_takes_longer_than_its_timeout_fails_naming_the_timeout,
    retry_sends_the_request_again_with_the_same_serial,
    placeholders_are_filled_as_json_as_escaped_text_percent_encoded_and_plain,
    decimals_are_written_as_decimal_text_in_urls_headers_and_bodies,
    a_password_in_the_url_is_not_written_to_the_trail_or_the_failure,
    a_header_value_with_a_line_break_is_refused_and_nothing_is_sent,
    recovery_sends_again_a_request_whose_runner_died,
    a_redirect_is_not_followed_but_reported,
    an_instance_stopped_while_its_request_is_out_stays_stopped_until_resumed,
    a_callback_recorded_before_a_failed_request_is_applied_after_the_retry,
    a_loop_through_a_synchronous_request_is_stopped_by_the_step_guard,
    the_step_count_of_a_request_loop_survives_its_runner_and_recovery,
    a_stop_reaches_a_request_loop_and_ends_it,
}
