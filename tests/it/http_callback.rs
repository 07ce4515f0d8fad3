//! The article's scenario over the network: an asynchronous HTTP request
//! event hands its serial to an external system, which calls back through
//! the HTTP API with a token. Both the fake external system and the API run
//! on loopback; nothing is mocked in between.

use crate::support;

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use flowdesk::model::Right;
use flowdesk::net::ApiLimits;
use serde_json::{Value as Json, json};
use support::Fixture;
use support::api::ApiFixture;
use support::external::{ExternalSystem, Reply};

/// A shipping process: ask the shipping service (asynchronously, handing it
/// the serial), then record the shipment it called back with.
fn shipping_process(url: &str, synchronous: bool) -> String {
    json!({
        "name": "shipping",
        "fields": [
            { "name": "order", "type": "string", "default": "A-1001" },
            { "name": "tracking", "type": "string" },
            { "name": "shipped", "type": "boolean", "default": false }
        ],
        "activities": [
            { "id": "ask", "name": "Ask shipping", "start": true, "events": [{
                "kind": "http_request", "name": "Ask shipping service", "synchronous": synchronous,
                "method": "POST", "url": url,
                "body": "{\"serial\": ${serial}, \"order\": ${order}}", "timeout_seconds": 30
            }]},
            { "id": "record", "name": "Record", "events": [{
                "kind": "server_event", "name": "Record shipment", "script": "shipped = true;"
            }]}
        ],
        "lines": [{ "from": "ask", "to": "record" }]
    })
    .to_string()
}

/// `biztalk`, the shipping service's account, may start and call back.
fn deploy_shipping(f: &ApiFixture, url: &str, synchronous: bool) {
    f.fixture.deploy_json("admin", &shipping_process(url, synchronous));
    f.fixture.engine.grant("admin", "shipping", "biztalk", &[Right::Start, Right::View, Right::ServerEvent]).unwrap();
}

fn instance_id(serial: &str) -> i64 {
    serial.split('_').next().unwrap().parse().unwrap()
}

#[test]
fn the_external_system_gets_the_serial_and_calls_back_through_the_api() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let shipping = ExternalSystem::start(|_| Reply::status(202, r#"{"queued": true}"#));
    deploy_shipping(&f, &shipping.url("/shipments"), false);

    let started =
        f.post(Some(&token), "/processes/shipping/instances", r#"{"folio": "PO-9", "data": {"order": "B-7"}}"#);
    assert_eq!(started.status, 201, "{:?}", started.body);
    assert_eq!(started.body["status"], "Active");
    let serial = started.body["waiting"][0].as_str().unwrap().to_owned();

    // The shipping service received the serial, once, after the item existed.
    let received = shipping.requests();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json(), json!({ "serial": serial, "order": "B-7" }));
    let listed = f.get(Some(&token), "/serveritems?status=pending");
    assert_eq!(listed.body["items"][0]["serial"], serial.as_str());

    // Later, the parcel leaves: the service calls back with the serial it got.
    let callback =
        f.post(Some(&token), &format!("/serveritems/{serial}/finish"), r#"{"data": {"tracking": "TRK-123"}}"#);
    assert_eq!(callback.status, 200, "{:?}", callback.body);
    assert_eq!(
        (callback.body["applied"].as_bool(), callback.body["instance"]["status"].as_str()),
        (Some(true), Some("Completed"))
    );

    let instance = f.get(Some(&token), &format!("/instances/{}", instance_id(&serial)));
    assert_eq!(instance.body["status"], "Completed");
    assert_eq!(instance.body["data"], json!({ "order": "B-7", "tracking": "TRK-123", "shipped": true }));
    assert_eq!(shipping.requests().len(), 1, "the request went out once");
}

#[test]
fn a_callback_that_arrives_before_the_request_has_returned_is_applied_when_it_returns() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    // What the shipping service's own callback was answered, seen from inside
    // its handler, i.e. before it answered flowdesk's request.
    let early_answer: Arc<Mutex<Option<(u16, Json)>>> = Arc::default();
    let shipping = {
        let (base_url, token, early_answer) = (f.base_url(), token.clone(), early_answer.clone());
        ExternalSystem::start(move |request| {
            let serial = request.json()["serial"].as_str().unwrap().to_owned();
            let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
            let mut answer = agent
                .post(format!("{base_url}/serveritems/{serial}/finish"))
                .header("Authorization", format!("Bearer {token}"))
                .header("Content-Type", "application/json")
                .send(r#"{"data": {"tracking": "FAST-1"}}"#)
                .unwrap();
            let status = answer.status().as_u16();
            let body: Json = serde_json::from_str(&answer.body_mut().read_to_string().unwrap()).unwrap();
            *early_answer.lock().unwrap() = Some((status, body));
            Reply::ok()
        })
    };
    deploy_shipping(&f, &shipping.url("/shipments"), false);

    let started = f.post(Some(&token), "/processes/shipping/instances", r#"{"folio": "PO-10"}"#);
    assert_eq!(started.status, 201, "{:?}", started.body);

    let (status, body) = early_answer.lock().unwrap().clone().expect("the service called back");
    assert_eq!(status, 200, "the early callback was accepted: {body:?}");
    assert_eq!(body["applied"], false, "recorded while the request was still out, applied when it returned");
    // By the time the start is answered the request has returned, and the
    // recorded callback has been applied: the instance went all the way.
    assert_eq!(started.body["status"], "Completed", "{:?}", started.body);
    let id = started.body["instance_id"].as_i64().unwrap();
    let instance = f.get(Some(&token), &format!("/instances/{id}"));
    assert_eq!(instance.body["data"]["tracking"], "FAST-1");
    assert_eq!(instance.body["data"]["shipped"], true);
    let finishes =
        instance.body["audit"].as_array().unwrap().iter().filter(|a| a["action"] == "Server item finished").count();
    assert_eq!(finishes, 1);
    assert_eq!(f.get(Some(&token), "/serveritems").body["items"], json!([]));
}

#[test]
fn a_start_that_waits_past_the_deadline_is_answered_504_and_goes_on() {
    let limits = ApiLimits { call_deadline: Duration::from_millis(300), ..ApiLimits::default() };
    let mut f = ApiFixture::start_limited(Fixture::new(), limits);
    let token = f.token("biztalk");
    let (release, released) = mpsc::channel::<()>();
    let released = Mutex::new(released);
    let shipping = ExternalSystem::start(move |_| {
        let _ = released.lock().unwrap().recv();
        Reply::ok()
    });
    deploy_shipping(&f, &shipping.url("/shipments"), true);

    let answer = f.post(Some(&token), "/processes/shipping/instances", "{}");
    assert_eq!((answer.status, answer.code()), (504, "call_timeout"), "{:?}", answer.body);
    assert!(answer.body["message"].as_str().unwrap().contains("goes on"));

    release.send(()).unwrap();
    // Stopping lets the call in flight end.
    f.api.take().unwrap().stop();
    let instances = f.fixture.engine.instances("admin", &Default::default()).unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].status, flowdesk::engine::InstanceStatus::Completed);
}

#[test]
fn when_every_turn_is_taken_a_call_is_answered_busy_without_being_made() {
    let limits =
        ApiLimits { call_deadline: Duration::from_millis(300), max_calls_in_flight: 1, ..ApiLimits::default() };
    let mut f = ApiFixture::start_limited(Fixture::new(), limits);
    let token = f.token("biztalk");
    let (entered, request_arrived) = mpsc::channel::<()>();
    let (release, released) = mpsc::channel::<()>();
    let (entered, released) = (Mutex::new(entered), Mutex::new(released));
    let shipping = ExternalSystem::start(move |_| {
        let _ = entered.lock().unwrap().send(());
        let _ = released.lock().unwrap().recv();
        Reply::ok()
    });
    deploy_shipping(&f, &shipping.url("/shipments"), true);
    let serial = f.pending_serial("PO-1");
    let before = f.fixture.snapshot(instance_id(&serial));

    std::thread::scope(|scope| {
        // Takes the only turn and keeps it while the request is out.
        let first = scope.spawn(|| f.post(Some(&token), "/processes/shipping/instances", "{}"));
        request_arrived.recv().unwrap();
        let second = f.post(Some(&token), &format!("/serveritems/{serial}/finish"), "{}");
        assert_eq!((second.status, second.code()), (503, "busy"), "{:?}", second.body);
        assert!(second.body["message"].as_str().unwrap().contains("nothing was done"));
        assert_eq!(first.join().unwrap().code(), "call_timeout");
    });
    assert_eq!(f.fixture.snapshot(instance_id(&serial)), before, "the busy finish was not made");

    release.send(()).unwrap();
    f.api.take().unwrap().stop();
}
