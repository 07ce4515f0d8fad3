//! The HTTP API as an external system uses it: bearer tokens, the callback
//! lifecycle, and every way a call can be refused, each leaving the data as
//! it was.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use serde_json::json;
use support::api::ApiFixture;

#[test]
fn an_external_system_starts_an_instance_and_finishes_its_item_with_data() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");

    let started = f.post(Some(&token), "/processes/callback/instances", r#"{"folio": "PO-1042"}"#);
    assert_eq!(started.status, 201, "{:?}", started.body);
    let id = started.body["instance_id"].as_i64().unwrap();
    assert_eq!(started.location.as_deref(), Some(format!("/api/v1/instances/{id}").as_str()));
    assert_eq!(started.body["status"], "Active");
    let serial = started.body["waiting"][0].as_str().unwrap().to_owned();
    assert_eq!(serial, format!("{id}_2"));

    let listed = f.get(Some(&token), "/serveritems?status=pending");
    assert_eq!(listed.status, 200);
    let serials: Vec<&str> =
        listed.body["items"].as_array().unwrap().iter().map(|i| i["serial"].as_str().unwrap()).collect();
    assert_eq!(serials, [serial.as_str()]);

    let opened = f.get(Some(&token), &format!("/serveritems/{serial}"));
    assert_eq!(opened.status, 200, "{:?}", opened.body);
    assert_eq!(opened.body["item"]["folio"], "PO-1042");
    assert_eq!(opened.body["data"]["stage"], "waiting");
    assert_eq!(opened.body["fields"][2], json!({"name": "done", "type": "boolean"}));

    let finished =
        f.post(Some(&token), &format!("/serveritems/{serial}/finish"), r#"{"data": {"name": "call back value"}}"#);
    assert_eq!(finished.status, 200, "{:?}", finished.body);
    assert_eq!(finished.body["applied"], true);
    assert_eq!(finished.body["instance"]["status"], "Completed");

    let instance = f.get(Some(&token), &format!("/instances/{id}"));
    assert_eq!(instance.status, 200);
    assert_eq!(instance.body["status"], "Completed");
    assert_eq!(instance.body["data"]["name"], "call back value");
    // The line rule on `name` chose the approving branch, which set `done`.
    assert_eq!(instance.body["data"]["done"], true);
    let finish = instance.body["audit"].as_array().unwrap().iter().find(|a| a["action"] == "Server item finished");
    assert_eq!(finish.unwrap()["user"], "biztalk", "the token's user is the acting user");
    assert_eq!(f.get(Some(&token), "/serveritems").body["items"], json!([]));
}

#[test]
fn a_finish_without_a_body_finishes_without_data() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let finished = f.post_as(Some(&token), &format!("/serveritems/{serial}/finish"), "application/json", b"");
    assert_eq!(finished.status, 200, "{:?}", finished.body);
    assert_eq!(finished.body["instance"]["status"], "Completed");
}

#[test]
fn calls_without_a_valid_token_are_refused_with_401_and_change_nothing() {
    let f = ApiFixture::start();
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);
    let finish = format!("/serveritems/{serial}/finish");

    let missing = f.post(None, &finish, "{}");
    assert_eq!((missing.status, missing.code()), (401, "unauthenticated"));
    assert!(missing.body["message"].as_str().unwrap().contains("Authorization: Bearer"));
    let unknown = f.post(Some("fdk_0000"), &finish, "{}");
    assert_eq!((unknown.status, unknown.code()), (401, "invalid_token"));

    let token = f.token("biztalk");
    let basic = f.post_with_header(&finish, "Authorization", &format!("Basic {token}"));
    assert_eq!((basic.status, basic.code()), (401, "unauthenticated"));

    let id_of_token = f.engine.store().tokens().unwrap().last().unwrap().id;
    f.engine.store().revoke_token(id_of_token, "admin", 0).unwrap();
    // The caller is checked before its body: a bad body without a token is 401 too.
    let both_bad = f.post(None, &finish, "{not json");
    assert_eq!((both_bad.status, both_bad.code()), (401, "unauthenticated"));

    let revoked = f.post(Some(&token), &finish, "{}");
    assert_eq!((revoked.status, revoked.code()), (401, "invalid_token"));
    assert_eq!(f.get(Some(&token), "/serveritems").status, 401);

    assert_eq!(f.fixture.snapshot(id), before);
}

#[test]
fn a_user_without_the_server_event_right_gets_403_naming_it() {
    let f = ApiFixture::start();
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);
    let token = f.token("intruder");

    let refused = f.post(Some(&token), &format!("/serveritems/{serial}/finish"), r#"{"data": {"name": "x"}}"#);
    assert_eq!((refused.status, refused.code()), (403, "permission_denied"));
    assert_eq!(refused.body["right"], "server-event");
    assert_eq!(refused.body["process"], "callback");
    assert_eq!(refused.body["user"], "intruder");
    assert!(refused.body["message"].as_str().unwrap().contains("Server Event"), "{:?}", refused.body);
    assert_eq!(f.get(Some(&token), &format!("/serveritems/{serial}")).status, 403);
    let start = f.post(Some(&token), "/processes/callback/instances", "{}");
    assert_eq!((start.status, start.body["right"].as_str()), (403, Some("start")));
    let read = f.get(Some(&token), &format!("/instances/{id}"));
    assert_eq!((read.status, read.body["right"].as_str()), (403, Some("view")));
    assert_eq!(f.get(Some(&token), "/serveritems").body["items"], json!([]), "nothing of the process is listed");

    assert_eq!(f.fixture.snapshot(id), before);
}

#[test]
fn bad_serials_are_400_unknown_ones_404_and_finished_ones_409_saying_when_and_by_whom() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();

    for bad in ["abc", "1_", "1_2_3", "1_2%3B%20DROP%20TABLE%20instances", "%27%20OR%201%3D1--"] {
        let answer = f.post(Some(&token), &format!("/serveritems/{bad}/finish"), "{}");
        assert_eq!((answer.status, answer.code()), (400, "invalid_serial"), "{bad}: {:?}", answer.body);
        assert_eq!(f.get(Some(&token), &format!("/serveritems/{bad}")).code(), "invalid_serial");
    }
    let unknown = f.post(Some(&token), "/serveritems/999_2/finish", "{}");
    assert_eq!((unknown.status, unknown.code()), (404, "item_not_found"));
    assert_eq!(unknown.body["serial"], "999_2");

    assert_eq!(f.post(Some(&token), &format!("/serveritems/{serial}/finish"), "{}").status, 200);
    let after = f.fixture.snapshot(id);
    let again = f.post(Some(&token), &format!("/serveritems/{serial}/finish"), r#"{"data": {"name": "late"}}"#);
    assert_eq!((again.status, again.code()), (409, "already_finished"));
    assert_eq!(again.body["closed_by"], "biztalk");
    assert!(again.body["closed_at"].as_str().unwrap().starts_with("2026-11-25T09:00:00"), "{:?}", again.body);
    assert_eq!(f.fixture.snapshot(id), after, "a refused finish changes nothing");
    assert_eq!(f.fixture.engine.instances("admin", &Default::default()).unwrap().len(), 1, "the tables are intact");
}

#[test]
fn invalid_data_is_400_naming_the_field_and_changes_nothing() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);
    let finish = format!("/serveritems/{serial}/finish");

    let unknown_field = f.post(Some(&token), &finish, r#"{"data": {"nmae": "x"}}"#);
    assert_eq!((unknown_field.status, unknown_field.code()), (400, "invalid_data"));
    assert_eq!(unknown_field.body["field"], "nmae");
    let wrong_type = f.post(Some(&token), &finish, r#"{"data": {"name": "ok", "done": "yes please"}}"#);
    assert_eq!((wrong_type.status, wrong_type.code()), (400, "invalid_data"));
    assert_eq!(wrong_type.body["field"], "done");
    let sql_text = f.post(Some(&token), &finish, r#"{"data": {"'; DROP TABLE instances; --": 1}}"#);
    assert_eq!(sql_text.code(), "invalid_data");

    let not_json = f.post(Some(&token), &finish, r#"{"data": {"name": "#);
    assert_eq!((not_json.status, not_json.code()), (400, "invalid_body"));
    assert!(not_json.body["message"].as_str().unwrap().contains("not valid JSON"), "{:?}", not_json.body);
    let wrong_key = f.post(Some(&token), &finish, r#"{"dta": {"name": "x"}}"#);
    assert_eq!((wrong_key.status, wrong_key.code()), (400, "invalid_body"));
    assert!(wrong_key.body["message"].as_str().unwrap().contains("unknown field `dta`"));
    let not_an_object = f.post(Some(&token), &finish, r#"{"data": [1, 2]}"#);
    assert_eq!(not_an_object.code(), "invalid_body");
    let form = f.post_as(Some(&token), &finish, "application/x-www-form-urlencoded", b"name=x");
    assert_eq!((form.status, form.code()), (415, "unsupported_media_type"));
    let huge =
        format!(r#"{{"data": {{"name": "{}"}}}}"#, "x".repeat(flowdesk::net::ApiLimits::default().max_body_bytes));
    let too_large = f.post(Some(&token), &finish, &huge);
    assert_eq!((too_large.status, too_large.code()), (413, "body_too_large"));

    assert_eq!(f.fixture.snapshot(id), before);
    // After all that, the item still finishes, from a client that starts its
    // body with a byte order mark (.NET, PowerShell).
    let with_bom = f.post(Some(&token), &finish, "\u{feff}{\"data\": {\"name\": \"fine\"}}");
    assert_eq!(with_bom.status, 200, "{:?}", with_bom.body);
}

#[test]
fn unknown_endpoints_methods_and_queries_answer_json_errors() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let nowhere = f.get(Some(&token), "/serveritem");
    assert_eq!((nowhere.status, nowhere.code()), (404, "not_found"));
    assert!(nowhere.body["message"].as_str().unwrap().contains("openapi.json"));
    let wrong_method = f.post(Some(&token), "/serveritems", "{}");
    assert_eq!((wrong_method.status, wrong_method.code()), (405, "method_not_allowed"));
    // The path the client called, not the one left after the `/api/v1` prefix.
    let message = wrong_method.body["message"].as_str().unwrap();
    assert!(message.starts_with("/api/v1/serveritems does not accept POST"), "{message}");
    let bad_status = f.get(Some(&token), "/serveritems?status=done");
    assert_eq!((bad_status.status, bad_status.code()), (400, "invalid_query"));
    let bad_limit = f.get(Some(&token), "/serveritems?limit=100000");
    assert_eq!((bad_limit.status, bad_limit.body["field"].as_str()), (400, Some("limit")));
    let bad_id = f.get(Some(&token), "/instances/1%20OR%201=1");
    assert_eq!((bad_id.status, bad_id.code()), (400, "invalid_instance_id"));
    let missing = f.get(Some(&token), "/instances/77");
    assert_eq!((missing.status, missing.code()), (404, "instance_not_found"));
    let no_process = f.post(Some(&token), "/processes/nope/instances", "{}");
    assert_eq!((no_process.status, no_process.code()), (404, "process_not_found"));
}

#[test]
fn concurrent_finishes_of_one_item_succeed_exactly_once() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..8)
            .map(|n| {
                let (f, token, serial) = (&f, &token, &serial);
                scope.spawn(move || {
                    f.post(
                        Some(token),
                        &format!("/serveritems/{serial}/finish"),
                        &format!(r#"{{"data": {{"name": "caller {n}"}}}}"#),
                    )
                    .status
                })
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "{statuses:?}");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let finishes = f.fixture.trail(id).iter().filter(|line| line.contains("Server item finished")).count();
    assert_eq!(finishes, 1);
}

#[test]
fn the_openapi_document_lists_exactly_what_is_served() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let document = f.get(None, "/openapi.json");
    assert_eq!(document.status, 200, "the document needs no token");
    assert!(document.body["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(document.body["servers"][0]["url"], "/api/v1");
    let mut documented = Vec::new();
    for (path, item) in document.body["paths"].as_object().unwrap() {
        for method in
            item.as_object().unwrap().keys().filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
        {
            documented.push(format!("{} {path}", method.to_uppercase()));
        }
    }
    documented.sort();
    assert_eq!(
        documented,
        [
            "GET /instances/{id}",
            "GET /openapi.json",
            "GET /serveritems",
            "GET /serveritems/{serial}",
            "POST /processes/{name}/instances",
            "POST /serveritems/{serial}/finish",
        ]
    );
    // Every documented operation is served: none answers "no such endpoint".
    for operation in &documented {
        let (method, path) = operation.split_once(' ').unwrap();
        let path = path.replace("{id}", "1").replace("{serial}", "1_2").replace("{name}", "callback");
        let answer = if method == "GET" { f.get(Some(&token), &path) } else { f.post(Some(&token), &path, "{}") };
        assert!(!matches!(answer.code(), "not_found" | "method_not_allowed"), "{operation}: {:?}", answer.body);
    }
    // Every error code the finish call documents is a schema'd error body.
    let finish = &document.body["paths"]["/serveritems/{serial}/finish"]["post"]["responses"];
    for status in ["400", "401", "403", "404", "409", "413"] {
        assert_eq!(
            finish[status]["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ApiErrorBody",
            "{status}"
        );
    }
}

#[test]
fn a_stalled_client_does_not_hold_up_others_and_stopping_does_not_wait_for_it() {
    let mut f = ApiFixture::start();
    let token = f.token("biztalk");
    let address = f.api.as_ref().unwrap().address();
    // Promises a body and never sends it.
    let mut stalled = TcpStream::connect(address).unwrap();
    write!(
        stalled,
        "POST /api/v1/serveritems/1_2/finish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    // An idle keep-alive connection, too.
    let _idle = TcpStream::connect(address).unwrap();
    assert_eq!(f.get(Some(&token), "/serveritems").status, 200);

    let started = std::time::Instant::now();
    f.api.take().unwrap().stop();
    assert!(started.elapsed() < std::time::Duration::from_secs(8), "stop took {:?}", started.elapsed());
    // The stalled connection is closed: reading ends rather than blocking.
    stalled.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let mut rest = Vec::new();
    let _ = stalled.read_to_end(&mut rest);
}

#[test]
fn a_body_that_stops_coming_is_answered_408_and_a_silent_connection_is_closed() {
    let limits = flowdesk::net::ApiLimits {
        header_timeout: std::time::Duration::from_millis(300),
        body_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let f = ApiFixture::start_limited(support::Fixture::new(), limits);
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);
    let address = f.api.as_ref().unwrap().address();
    let patience = Some(std::time::Duration::from_secs(20));

    let mut stalled = TcpStream::connect(address).unwrap();
    stalled.set_read_timeout(patience).unwrap();
    write!(
        stalled,
        "POST /api/v1/serveritems/{serial}/finish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"data\""
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stalled.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");

    let mut silent = TcpStream::connect(address).unwrap();
    silent.set_read_timeout(patience).unwrap();
    let mut nothing = Vec::new();
    let closed = silent.read_to_end(&mut nothing);
    assert!(closed.is_ok(), "the server closed the connection rather than wait: {closed:?}");

    assert_eq!(f.fixture.snapshot(id), before, "the half-sent finish changed nothing");
}

/// A path segment that percent-decodes to bytes that are not UTF-8 is still
/// a refusal with a JSON body and a stable code, not axum's plain text.
#[test]
fn a_path_that_is_not_utf8_once_decoded_is_a_json_refusal() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);

    let open = f.get(Some(&token), "/serveritems/%FF");
    assert_eq!((open.status, open.code()), (400, "invalid_serial"), "{open:?}");
    let finish = f.post(Some(&token), "/serveritems/1_%FF/finish", "{}");
    assert_eq!((finish.status, finish.code()), (400, "invalid_serial"), "{finish:?}");
    let instance = f.get(Some(&token), "/instances/%C3");
    assert_eq!((instance.status, instance.code()), (400, "invalid_instance_id"), "{instance:?}");
    let start = f.post(Some(&token), "/processes/%FE%FF/instances", "{}");
    assert_eq!((start.status, start.code()), (404, "process_not_found"), "{start:?}");

    assert_eq!(f.fixture.snapshot(id), before);
}

/// `{"name": 1, "name": 2}` is legal JSON whose meaning parsers disagree on;
/// a callback that names a field twice is refused rather than one of its
/// values silently dropped.
#[test]
fn a_data_field_given_twice_is_refused_and_changes_nothing() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);

    let twice =
        f.post(Some(&token), &format!("/serveritems/{serial}/finish"), r#"{"data": {"name": "approve", "name": "x"}}"#);
    assert_eq!((twice.status, twice.code()), (400, "invalid_body"), "{twice:?}");
    assert!(twice.body["message"].as_str().unwrap().contains("`name`"), "{:?}", twice.body);
    assert_eq!(f.fixture.snapshot(id), before);

    let start = f.post(Some(&token), "/processes/callback/instances", r#"{"data": {"stage": "a", "stage": "b"}}"#);
    assert_eq!((start.status, start.code()), (400, "invalid_body"), "{start:?}");
    assert_eq!(f.fixture.engine.instances("admin", &Default::default()).unwrap().len(), 1, "nothing was started");
}

/// Every call that takes a token can be answered 401, 503 (`busy`,
/// `storage_unavailable`) and 504 (`call_timeout`), and every call with a
/// body 408, 413 and 415; a client generated from the document must know
/// them. Every schema the document refers to is in it.
#[test]
fn the_openapi_document_lists_every_answer_a_call_can_give() {
    let f = ApiFixture::start();
    let document = f.get(None, "/openapi.json").body;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            if path == "/openapi.json" {
                continue;
            }
            let responses = operation["responses"].as_object().unwrap();
            let mut expected = vec!["401", "503", "504"];
            if method == "post" {
                expected.extend(["408", "413", "415"]);
            }
            for status in expected {
                assert!(responses.contains_key(status), "{method} {path} does not document {status}");
            }
        }
    }
    let text = document.to_string();
    for reference in text.split(r##""$ref":"#/components/schemas/"##).skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(document["components"]["schemas"].get(name).is_some(), "{name} is referred to but not defined");
    }
}

/// A process whose only event recurses without end, each call nested in
/// parentheses (issue 15's script): `depth` sets how deep it goes.
fn deep_recursion_process() -> String {
    let nested = format!("{}f(n - 1){}", "(".repeat(10), " + 1)".repeat(10));
    let script = format!("fn f(n) {{ if n <= 0 {{ 0 }} else {{ {nested} }} }}\nstage = f(depth).to_string();");
    json!({
        "name": "deep",
        "fields": [{ "name": "stage", "type": "string" }, { "name": "depth", "type": "integer", "default": 1000 }],
        "activities": [{ "id": "nest", "name": "Nest", "start": true, "events": [
            { "kind": "server_event", "name": "Recurse", "script": script }
        ] }]
    })
    .to_string()
}

/// The script runs on one of the API's worker threads: it must end in a
/// clear failure of its instance, not overflow the thread's stack and take
/// the server (and every client of it) down.
#[test]
fn a_script_that_recurses_too_deep_fails_its_instance_and_the_server_keeps_serving() {
    let f = ApiFixture::start();
    f.fixture.deploy_json("admin", &deep_recursion_process());
    f.fixture
        .engine
        .grant("admin", "deep", "biztalk", &[flowdesk::model::Right::Start, flowdesk::model::Right::View])
        .unwrap();
    let token = f.token("biztalk");

    let started = f.post(Some(&token), "/processes/deep/instances", "{}");

    assert_eq!(started.status, 201, "{:?}", started.body);
    assert_eq!(started.body["status"], "Error");
    let message = started.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.ends_with("calls nested more than 64 levels deep (an endless recursion?)"), "{message}");
    let id = started.body["instance_id"].as_i64().unwrap();
    let shown = f.get(Some(&token), &format!("/instances/{id}"));
    assert_eq!((shown.status, shown.body["status"].as_str()), (200, Some("Error")));
    let callback = f.post(Some(&token), "/processes/callback/instances", "{}");
    assert_eq!((callback.status, callback.body["status"].as_str()), (201, Some("Active")));
}
