//! The HTTP API as an external system uses it: bearer tokens, the callback
//! lifecycle, and every way a call can be refused, each leaving the data as
//! it was.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpStream;

use flowdesk::model::Right;
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
    // Each line says where in the process it happened, as the window's table.
    assert_eq!(finish.unwrap()["activity"], "Call external system");
    assert_eq!(finish.unwrap()["event"], "Call external system", "{:#?}", instance.body["audit"]);
    let started =
        instance.body["audit"].as_array().unwrap().iter().find(|a| a["action"] == "Instance started").unwrap();
    assert!(started.get("activity").is_none() && started.get("event").is_none(), "{started:#?}");
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
            "POST /serveritems/finish",
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

/// Every call that takes a token can be answered 401, 500
/// (`storage_failed`, `internal`), 503 (`busy`, `storage_unavailable`) and
/// 504 (`call_timeout`), and every call with a
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
            let mut expected = vec!["401", "500", "503", "504"];
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

/// The official OpenAPI 3.1 schema, vendored (see tests/data/README.md).
fn openapi_3_1_validator() -> jsonschema::Validator {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/openapi-3.1-schema.json");
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jsonschema::draft202012::new(&schema).unwrap()
}

fn openapi_problems(validator: &jsonschema::Validator, document: &serde_json::Value) -> Vec<String> {
    validator.iter_errors(document).map(|e| format!("{}: {e}", e.instance_path())).collect()
}

/// Code generators (openapi-python-client, openapi-generator) refuse a
/// document the OpenAPI 3.1 schema rejects; every route, present and
/// future, must keep the served one valid.
#[test]
fn the_openapi_document_is_valid_against_the_official_openapi_3_1_schema() {
    let f = ApiFixture::start();
    let document = f.get(None, "/openapi.json").body;
    let validator = openapi_3_1_validator();
    let problems = openapi_problems(&validator, &document);
    assert!(problems.is_empty(), "the served document is not valid OpenAPI 3.1:\n{}", problems.join("\n"));

    // The schema does see the defect this test is for: an answer without
    // its required description.
    let mut broken = document.clone();
    let answer = broken["paths"]["/instances/{id}"]["get"]["responses"]["200"].as_object_mut().unwrap();
    answer.remove("description");
    assert!(!openapi_problems(&validator, &broken).is_empty(), "a response without a description must be refused");
}

/// A request body is an object: a JSON array is not read by position.
#[test]
fn a_json_array_body_is_refused_and_changes_nothing() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);

    for body in [r#"[{"name": "x"}]"#, "[]", " \n[{}]", "\u{feff}[{}]", r#""text""#, "42", "null"] {
        let finish = f.post(Some(&token), &format!("/serveritems/{serial}/finish"), body);
        assert_eq!((finish.status, finish.code()), (400, "invalid_body"), "{body:?}: {:?}", finish.body);
        assert!(finish.body["message"].as_str().unwrap().contains("object"), "{body:?}: {:?}", finish.body);
    }
    assert_eq!(f.fixture.snapshot(id), before);

    let start = f.post(Some(&token), "/processes/callback/instances", r#"["PO-9", {"stage": "x"}]"#);
    assert_eq!((start.status, start.code()), (400, "invalid_body"), "{start:?}");
    assert_eq!(f.fixture.engine.instances("admin", &Default::default()).unwrap().len(), 1, "nothing was started");
}

/// The body deadline is for the whole body: a client that sends one byte
/// at a time, each well within the deadline of the last, is still answered
/// 408 once the deadline has passed since its headers.
#[test]
fn a_body_trickled_byte_by_byte_is_answered_408_at_the_deadline() {
    let limits = flowdesk::net::ApiLimits { body_timeout: std::time::Duration::from_millis(300), ..Default::default() };
    let f = ApiFixture::start_limited(support::Fixture::new(), limits);
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);
    let address = f.api.as_ref().unwrap().address();

    // A valid finish: without a deadline for the whole body it is accepted.
    let body = r#"{"data": {"name": "trickled in slowly"}}"#;
    let mut client = TcpStream::connect(address).unwrap();
    client.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    write!(
        client,
        "POST /api/v1/serveritems/{serial}/finish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let mut trickle = client.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        for byte in body.bytes() {
            // The client's pace (a byte every 50 ms, six per deadline), not
            // a wait for the server: it stops when the server hangs up.
            std::thread::sleep(std::time::Duration::from_millis(50));
            if trickle.write_all(&[byte]).is_err() {
                break;
            }
        }
    });
    let mut answer = String::new();
    let _ = client.read_to_string(&mut answer);
    sender.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains(r#""code":"body_timeout""#), "{answer}");
    assert_eq!(f.fixture.snapshot(id), before, "the trickled finish changed nothing");
}

/// What the document says a call takes is what the server takes: the
/// bounds of `limit`, the form of a serial, and that a body may be empty.
#[test]
fn the_document_states_the_bounds_and_forms_the_server_enforces() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let document = f.get(None, "/openapi.json").body;
    let parameter = |path: &str, method: &str, name: &str| {
        let parameters = document["paths"][path][method]["parameters"].as_array().unwrap();
        parameters.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{method} {path}: no {name}")).clone()
    };

    let limit = parameter("/serveritems", "get", "limit")["schema"].clone();
    let (minimum, maximum) = (limit["minimum"].as_u64().unwrap(), limit["maximum"].as_u64().unwrap());
    assert_eq!(limit["default"].as_u64(), Some(100), "{limit}");
    for (value, status) in [(minimum - 1, 400), (minimum, 200), (maximum, 200), (maximum + 1, 400)] {
        let answer = f.get(Some(&token), &format!("/serveritems?limit={value}"));
        assert_eq!(answer.status, status, "limit={value} against {limit}: {:?}", answer.body);
    }

    // A body may be left out, and the server takes an empty one.
    for (path, method) in [("/serveritems/{serial}/finish", "post"), ("/processes/{name}/instances", "post")] {
        let body = &document["paths"][path][method]["requestBody"];
        assert_ne!(body["required"], true, "{path}: an empty body is accepted, so it is not required");
    }
    let started = f.post_as(Some(&token), "/processes/callback/instances", "application/json", b"");
    assert_eq!(started.status, 201, "{:?}", started.body);

    // A body the documented schema takes is read; one it refuses is
    // `invalid_body`. The calls name no item or process, so that a body
    // that is read is then answered 404, changing nothing.
    for (path, method, called) in [
        ("/serveritems/{serial}/finish", "post", "/serveritems/999_2/finish"),
        ("/processes/{name}/instances", "post", "/processes/nope/instances"),
        ("/serveritems/finish", "post", "/serveritems/finish"),
    ] {
        let pointer =
            format!("#/paths/{}/{method}/requestBody/content/application~1json/schema", path.replace('/', "~1"))
                .replace('{', "%7B")
                .replace('}', "%7D");
        let mut rooted = document.clone();
        rooted["$ref"] = json!(pointer);
        let schema = jsonschema::draft202012::new(&rooted).unwrap();
        for body in [
            json!({}),
            json!({"data": {}}),
            json!({"data": {"name": "x"}}),
            json!({"folio": "PO-1"}),
            json!({"folio": 1}),
            json!({"data": 1}),
            json!({"data": [1]}),
            json!({"dta": {}}),
            json!(null),
            json!([]),
            json!([{"name": "x"}]),
            json!(["PO-1", {}]),
            json!("text"),
            json!(7),
            json!({"serials": []}),
            json!({"serials": ["999_2", "abc"], "data": {"name": "x"}}),
            json!({"serials": "999_2"}),
            json!({"serials": [7]}),
        ] {
            let documented = schema.is_valid(&body);
            let answer = f.post(Some(&token), called, &body.to_string());
            assert_eq!(
                answer.code() != "invalid_body",
                documented,
                "{called} with {body} against {pointer}: {:?}",
                answer.body
            );
        }
    }

    // The documented serial pattern, run by a JSON Schema validator's regex
    // engine, accepts exactly the serials the server reads.
    let serial_pattern = |p: serde_json::Value| p["schema"]["pattern"].as_str().unwrap().to_owned();
    let pattern = serial_pattern(parameter("/serveritems/{serial}", "get", "serial"));
    assert_eq!(serial_pattern(parameter("/serveritems/{serial}/finish", "post", "serial")), pattern);
    assert_eq!(serial_pattern(parameter("/serveritems", "get", "after")), pattern);
    let form = jsonschema::draft202012::new(&json!({"type": "string", "pattern": pattern})).unwrap();
    for candidate in [
        "1_2",
        "1042_7",
        "999999999999999999_1",
        "abc",
        "1_",
        "_1",
        "0_1",
        "1_0",
        "01_2",
        "1_02",
        "+1_2",
        " 1_2",
        "1_2 ",
        "1-2",
        "1_2_3",
        "-1_2",
        "1234567890123456789_1",
        "99999999999999999999_1",
    ] {
        let encoded = candidate.replace(' ', "%20").replace('+', "%2B");
        let answer = f.get(Some(&token), &format!("/serveritems/{encoded}"));
        let documented = form.is_valid(&json!(candidate));
        assert_eq!(answer.code() != "invalid_serial", documented, "{candidate:?} against {pattern}: {:?}", answer.body);
        // As a cursor, only the one item there is (the instance started
        // above) is taken; any other serial is refused, naming `after`.
        let paged = f.get(Some(&token), &format!("/serveritems?after={encoded}"));
        let taken = documented && candidate == "1_2";
        assert_eq!(paged.status == 200, taken, "after={candidate:?}: {:?}", paged.body);
        if !taken {
            assert_eq!((paged.code(), paged.body["field"].as_str()), ("invalid_query", Some("after")), "{candidate:?}");
        }
    }
}

/// `after` pages through every item exactly once, oldest first (by
/// creation time, then serial), pending and closed items alike with
/// `status=all`; each page names the cursor of the next.
#[test]
fn server_items_page_with_a_cursor_each_item_once_in_the_documented_order() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let mut serials: Vec<String> = (1..=3).map(|n| f.pending_serial(&format!("PO-{n}"))).collect();
    f.fixture.clock.advance(1_000);
    serials.extend((4..=8).map(|n| f.pending_serial(&format!("PO-{n}"))));
    // A clock set back: the newest instance holds the oldest item.
    f.fixture.clock.advance(-60_000);
    let oldest = f.pending_serial("PO-9");
    serials.insert(0, oldest);
    for finished in [&serials[2], &serials[5]] {
        f.fixture.engine.finish("biztalk", support::parse_serial(finished), &[]).unwrap();
    }
    let pending: Vec<String> =
        serials.iter().enumerate().filter(|(n, _)| ![2, 5].contains(n)).map(|(_, s)| s.clone()).collect();

    for (status, expected) in [("pending", &pending), ("all", &serials)] {
        let mut listed = Vec::new();
        let mut after: Option<String> = None;
        for page in 0.. {
            assert!(page < 10, "paging does not end: {listed:?}");
            let cursor = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
            let answer = f.get(Some(&token), &format!("/serveritems?status={status}&limit=3{cursor}"));
            assert_eq!(answer.status, 200, "{:?}", answer.body);
            let items: Vec<String> = answer.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["serial"].as_str().unwrap().to_owned())
                .collect();
            assert!(items.len() <= 3, "{items:?}");
            listed.extend(items.iter().cloned());
            match answer.body["next_after"].as_str() {
                Some(next) => {
                    assert_eq!(Some(next), items.last().map(String::as_str), "the cursor is the page's last item");
                    after = Some(next.to_owned());
                }
                None => {
                    assert!(answer.body.get("next_after").is_some(), "next_after is always there: {:?}", answer.body);
                    break;
                }
            }
        }
        assert_eq!(&listed, expected, "status={status}");
    }

    let unknown = f.get(Some(&token), "/serveritems?after=77_2");
    assert_eq!((unknown.status, unknown.code(), unknown.body["field"].as_str()), (400, "invalid_query", Some("after")));
    let malformed = f.get(Some(&token), "/serveritems?after=abc");
    assert_eq!((malformed.status, malformed.body["field"].as_str()), (400, Some("after")));
}

/// A caller without a valid token learns nothing from its input being
/// judged: every route but the public document answers 401 first.
#[test]
fn every_route_answers_401_before_judging_its_input() {
    let f = ApiFixture::start();
    let calls: [(&str, &str, Option<&str>); 13] = [
        ("GET", "/serveritems?limit=0", None),
        ("GET", "/serveritems?limit=-1", None),
        ("GET", "/serveritems?status=done", None),
        ("GET", "/serveritems?after=abc", None),
        ("GET", "/serveritems?colour=red", None),
        ("GET", "/instances/0.5", None),
        ("GET", "/instances/%C3", None),
        ("GET", "/serveritems/abc", None),
        ("GET", "/serveritems/%FF", None),
        ("POST", "/serveritems/abc/finish", Some("[1]")),
        ("POST", "/serveritems/1_2/finish", Some("{not json")),
        ("POST", "/processes/%FE%FF/instances", Some("{")),
        ("POST", "/processes/nope/instances", Some(r#"{"folio": 1}"#)),
    ];
    for (method, path, body) in calls {
        for (token, code) in [(None, "unauthenticated"), (Some("fdk_0000"), "invalid_token")] {
            let answer = match method {
                "GET" => f.get(token, path),
                _ => f.post(token, path, body.unwrap()),
            };
            assert_eq!(
                (answer.status, answer.code()),
                (401, code),
                "{method} {path} with {token:?}: {:?}",
                answer.body
            );
        }
    }
}

/// Refusals of the request's head (a long URI, large or many headers) are
/// the same JSON as every other refusal, and the server goes on serving.
#[test]
fn refusals_of_an_oversized_request_head_are_json() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let limits = flowdesk::net::ApiLimits::default();

    let long_uri = format!(
        "GET /api/v1/serveritems?process={} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "p".repeat(limits.max_uri_bytes)
    );
    let answer = f.raw(long_uri.as_bytes());
    assert_eq!((answer.status, answer.code()), (414, "uri_too_long"), "{answer:?}");

    let large_header = format!(
        "GET /api/v1/serveritems HTTP/1.1\r\nHost: x\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        "h".repeat(limits.max_header_bytes)
    );
    let answer = f.raw(large_header.as_bytes());
    assert_eq!((answer.status, answer.code()), (431, "headers_too_large"), "{answer:?}");

    let many: String = (0..=limits.max_headers).map(|n| format!("X-Header-{n}: {n}\r\n")).collect();
    let many_headers = format!("GET /api/v1/serveritems HTTP/1.1\r\nHost: x\r\n{many}Connection: close\r\n\r\n");
    let answer = f.raw(many_headers.as_bytes());
    assert_eq!((answer.status, answer.code()), (431, "headers_too_large"), "{answer:?}");
    assert!(answer.head.to_ascii_lowercase().contains("content-type: application/json"), "{answer:?}");

    // Just under the limits is served.
    let fits = format!(
        "GET /api/v1/serveritems HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nX-Padding: {}\r\n\
         Connection: close\r\n\r\n",
        "h".repeat(limits.max_header_bytes / 2)
    );
    assert_eq!(f.raw(fits.as_bytes()).status, 200);
    assert_eq!(f.get(Some(&token), "/serveritems").status, 200);
}

/// A process with one field of each type that completes as soon as it
/// starts, so what a start sets can be read back. `biztalk` may start and
/// view it.
const TYPES_PROCESS: &str = r#"{
  "name": "types",
  "fields": [
    { "name": "s", "type": "string" },
    { "name": "i", "type": "integer" },
    { "name": "d", "type": "decimal" },
    { "name": "b", "type": "boolean" },
    { "name": "t", "type": "date" }
  ],
  "activities": [ { "id": "a", "name": "A", "start": true } ]
}"#;

fn types_fixture() -> (ApiFixture, String) {
    let f = ApiFixture::start();
    f.fixture.deploy_json("admin", TYPES_PROCESS);
    f.fixture.engine.grant("admin", "types", "biztalk", &[Right::Start, Right::View]).unwrap();
    let token = f.token("biztalk");
    (f, token)
}

/// Starts `types` with `data` (JSON text); the answer.
fn start_types(f: &ApiFixture, token: &str, data: &str) -> support::api::Answer {
    f.post(Some(token), "/processes/types/instances", &format!(r#"{{"data": {data}}}"#))
}

/// Issue 15, point 2: `1234567890.123456789` was answered 201 and stored as
/// `1234567890.1234567` (read through f64), and `"12.50"` came back as the
/// number `12.5`. A decimal arrives with every digit, as a JSON string or a
/// JSON number (read from its text), and always leaves as a string in its
/// written form.
#[test]
fn a_decimal_keeps_every_digit_it_was_sent_with_and_leaves_as_a_string() {
    let (f, token) = types_fixture();
    for (sent, kept) in [
        ("1234567890.123456789", "1234567890.123456789"),
        (r#""1234567890.123456789""#, "1234567890.123456789"),
        (r#""12.50""#, "12.50"),
        ("12.50", "12.50"),
        ("-7", "-7"),
        ("0.1000000000000000000000000001", "0.1000000000000000000000000001"),
        (r#""79228162514264337593543950335""#, "79228162514264337593543950335"),
    ] {
        let started = start_types(&f, &token, &format!(r#"{{"d": {sent}}}"#));
        assert_eq!(started.status, 201, "{sent}: {:?}", started.body);
        let id = started.body["instance_id"].as_i64().unwrap();
        assert_eq!(f.fixture.field(id, "d").to_string(), kept, "{sent} is held exactly");
        let instance = f.get(Some(&token), &format!("/instances/{id}"));
        assert_eq!(instance.body["data"]["d"], json!(kept), "{sent} leaves as the string {kept:?}");
    }
}

/// Issue 15, points 2, 8 and 14: each type takes one written form over the
/// API, and everything else is refused with `invalid_data` naming the field
/// (before, booleans took `"yes"`, integers `" 5"`, dates `"2026-1-1"` and
/// `"+99999-01-01"`, decimals with 29 places became 0, and strings held NUL).
#[test]
fn each_type_takes_its_one_written_form_over_the_api() {
    let (f, token) = types_fixture();
    let accepted: &[(&str, &str, serde_json::Value)] = &[
        ("s", r#""tab\there, line\nbreak""#, json!("tab\there, line\nbreak")),
        ("s", r#""""#, json!("")),
        ("i", "5", json!(5)),
        ("i", "-9223372036854775808", json!(i64::MIN)),
        ("i", "-0", json!(0)),
        ("d", r#""-0.50""#, json!("-0.50")),
        ("d", r#""0.0000000000000000000000000001""#, json!("0.0000000000000000000000000001")),
        ("b", "true", json!(true)),
        ("b", "false", json!(false)),
        ("t", r#""2026-01-01""#, json!("2026-01-01")),
        ("t", r#""0001-01-01""#, json!("0001-01-01")),
        ("t", r#""9999-12-31""#, json!("9999-12-31")),
    ];
    let refused: &[(&str, &str)] = &[
        ("s", r#""nul\u0000inside""#),
        ("s", "5"),
        ("s", "null"),
        ("i", r#""5""#),
        ("i", r#"" 5""#),
        ("i", r#""+5""#),
        ("i", "5.0"),
        ("i", "1e2"),
        ("i", "9223372036854775808"),
        ("i", "true"),
        ("d", r#"" 1.5""#),
        ("d", r#""+1.5""#),
        ("d", r#""1_000""#),
        ("d", r#""1e3""#),
        ("d", "1e3"),
        ("d", "1.5E-3"),
        ("d", r#"".5""#),
        ("d", r#""01.5""#),
        ("d", r#""1.""#),
        ("d", r#""""#),
        ("d", r#""0.00000000000000000000000000001""#),
        ("d", "0.00000000000000000000000000001"),
        ("d", r#""79228162514264337593543950336""#),
        ("d", "true"),
        ("b", r#""yes""#),
        ("b", r#""1""#),
        ("b", r#""TRUE""#),
        ("b", r#""true""#),
        ("b", "1"),
        ("b", "0"),
        ("b", "null"),
        ("t", r#""2026-1-1""#),
        ("t", r#""-0001-01-01""#),
        ("t", r#""+99999-01-01""#),
        ("t", r#""99999-01-01""#),
        ("t", r#""0000-01-01""#),
        ("t", r#"" 2026-01-01""#),
        ("t", r#""2026-02-30""#),
        ("t", r#""2026-01-01T00:00:00Z""#),
        ("t", "20260101"),
    ];
    let mut wrong = Vec::new();
    for (field, sent, kept) in accepted {
        let started = start_types(&f, &token, &format!(r#"{{"{field}": {sent}}}"#));
        if started.status != 201 {
            wrong.push(format!("{field}: {sent} was refused: {:?}", started.body));
            continue;
        }
        let id = started.body["instance_id"].as_i64().unwrap();
        let data = f.get(Some(&token), &format!("/instances/{id}")).body["data"][field].clone();
        if data != *kept {
            wrong.push(format!("{field}: {sent} came back as {data}, not {kept}"));
        }
    }
    let before = f.fixture.engine.instances("admin", &Default::default()).unwrap().len();
    for (field, sent) in refused {
        let answer = start_types(&f, &token, &format!(r#"{{"{field}": {sent}}}"#));
        if (answer.status, answer.code(), answer.body["field"].as_str()) != (400, "invalid_data", Some(*field)) {
            wrong.push(format!("{field}: {sent} was answered {} {:?}", answer.status, answer.body));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    assert_eq!(f.fixture.engine.instances("admin", &Default::default()).unwrap().len(), before, "nothing started");
}

/// Issue 15, point 14: a folio with NUL (or another control character but
/// tab and line break) was stored as sent.
#[test]
fn a_folio_with_control_characters_is_refused_with_invalid_folio() {
    let (f, token) = types_fixture();
    for folio in [r#"PO\u00001"#, r#"PO\u0007"#, r#"PO\r1"#, r#"\u007f"#, r#"PO\u00851"#] {
        let answer = f.post(Some(&token), "/processes/types/instances", &format!(r#"{{"folio": "{folio}"}}"#));
        assert_eq!((answer.status, answer.code()), (400, "invalid_folio"), "{folio}: {:?}", answer.body);
        assert!(answer.body["message"].as_str().unwrap().contains("control character"), "{:?}", answer.body);
    }
    assert!(f.fixture.engine.instances("admin", &Default::default()).unwrap().is_empty());
    let fine = f.post(Some(&token), "/processes/types/instances", r#"{"folio": "PO 1\tline\nbreak Zoë"}"#);
    assert_eq!(fine.status, 201, "{:?}", fine.body);
}

/// Issue 15, point 8: `0<id>_2` and ` <id>_2` finished the item `<id>_2`;
/// a serial is exactly what the engine handed out.
#[test]
fn a_serial_with_leading_zeros_or_spaces_is_refused_over_the_api() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);
    for bad in [format!("0{serial}"), format!("{id}_02"), format!("%20{serial}"), format!("{serial}%0A")] {
        let answer = f.post(Some(&token), &format!("/serveritems/{bad}/finish"), "{}");
        assert_eq!((answer.status, answer.code()), (400, "invalid_serial"), "{bad}: {:?}", answer.body);
        assert_eq!(f.get(Some(&token), &format!("/serveritems/{bad}")).code(), "invalid_serial", "{bad}");
    }
    assert_eq!(f.fixture.snapshot(id), before);
    assert_eq!(f.post(Some(&token), &format!("/serveritems/{serial}/finish"), "{}").status, 200);
}

/// Issue 15, point 2: the document said nothing of a data value's form.
/// Every `data` object's values are the documented `DataValue`, which says
/// a decimal is a string.
#[test]
fn the_openapi_document_says_a_decimal_is_a_string() {
    let f = ApiFixture::start();
    let document = f.get(None, "/openapi.json").body;
    let schemas = &document["components"]["schemas"];
    for holder in ["StartRequest", "FinishRequest", "InstanceDto", "OpenedItemDto"] {
        // A schema with a flattened part is an `allOf` of the parts.
        let parts = schemas[holder]["allOf"].as_array().cloned().unwrap_or_else(|| vec![schemas[holder].clone()]);
        let data = parts.iter().map(|part| &part["properties"]["data"]).find(|d| !d.is_null()).unwrap();
        assert_eq!(data["type"], "object", "{holder}: {data}");
        assert_eq!(data["additionalProperties"]["$ref"], "#/components/schemas/DataValue", "{holder}: {data}");
    }
    let value = &schemas["DataValue"];
    let types: Vec<&str> = value["oneOf"].as_array().unwrap().iter().map(|t| t["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["string", "integer", "boolean"], "{value}");
    let description = value["description"].as_str().unwrap();
    assert!(description.contains(r#""12.50""#), "{description}");
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

/// Issue 17: items and instances carry `due_at`, their next deadline, as
/// the document says (`null` when none is armed).
#[test]
fn items_and_instances_carry_their_next_deadline_as_documented() {
    let f = ApiFixture::start();
    f.fixture.deploy_json(
        "admin",
        r#"{ "name": "deadline", "fields": [{ "name": "name", "type": "string" }],
             "activities": [{ "id": "wait", "name": "Wait", "start": true,
               "events": [{ "kind": "server_event", "name": "Wait", "synchronous": false, "script": "" }],
               "escalations": [{ "name": "Give up", "after": "2h",
                 "action": { "finish": { "set": { "name": "timed out" } } } }] }] }"#,
    );
    f.fixture.engine.grant("admin", "deadline", "biztalk", &[Right::Start, Right::View, Right::ServerEvent]).unwrap();
    let token = f.token("biztalk");
    let started = f.post(Some(&token), "/processes/deadline/instances", "{}");
    assert_eq!(started.status, 201, "{:?}", started.body);
    let id = started.body["instance_id"].as_i64().unwrap();
    let due = "2026-11-25T11:00:00.000Z";

    let listed = f.get(Some(&token), "/serveritems");
    assert_eq!(listed.body["items"][0]["due_at"], due, "{:?}", listed.body);
    let opened = f.get(Some(&token), &format!("/serveritems/{id}_1"));
    assert_eq!((&opened.body["item"]["due_at"], &opened.body["instance"]["due_at"]), (&json!(due), &json!(due)));
    let instance = f.get(Some(&token), &format!("/instances/{id}"));
    assert_eq!(instance.body["due_at"], due);
    assert_eq!(instance.body["pending"][0]["due_at"], due);

    let finished = f.post(Some(&token), &format!("/serveritems/{id}_1/finish"), "{}");
    assert_eq!(finished.status, 200, "{:?}", finished.body);
    let instance = f.get(Some(&token), &format!("/instances/{id}"));
    assert_eq!(instance.body["due_at"], json!(null), "the callback disarmed it");

    let document = f.get(None, "/openapi.json").body;
    let schemas = &document["components"]["schemas"];
    for holder in ["ItemDto", "InstanceSummaryDto"] {
        let due_at = &schemas[holder]["properties"]["due_at"];
        assert!(due_at.to_string().contains("string") && due_at.to_string().contains("null"), "{holder}: {due_at}");
    }
}

/// Issue 17: a datetime arrives in RFC 3339 with an offset, or without one
/// as a wall-clock time in the process's time zone, and always leaves as
/// RFC 3339 in UTC.
#[test]
fn a_datetime_is_read_in_the_process_s_time_zone_and_leaves_in_utc() {
    let f = ApiFixture::start();
    f.fixture.deploy_json(
        "admin",
        r#"{"name": "reply", "time_zone": "Europe/London",
            "fields": [{"name": "reply_by", "type": "datetime"}],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
    );
    f.fixture.engine.grant("admin", "reply", "biztalk", &[Right::Start, Right::View]).unwrap();
    let token = f.token("biztalk");
    // 10:00 in London in July is 09:00 UTC.
    for sent in [r#""2026-07-06T10:00""#, r#""2026-07-06T11:00:00+02:00""#, r#""2026-07-06T09:00:00.250Z""#] {
        let started =
            f.post(Some(&token), "/processes/reply/instances", &format!(r#"{{"data": {{"reply_by": {sent}}}}}"#));
        assert_eq!(started.status, 201, "{sent}: {:?}", started.body);
        let id = started.body["instance_id"].as_i64().unwrap();
        let instance = f.get(Some(&token), &format!("/instances/{id}"));
        assert_eq!(instance.body["data"]["reply_by"], json!("2026-07-06T09:00:00Z"), "{sent}");
    }
    for sent in [r#""2026-07-06""#, "1783328400", r#""06/07/2026 10:00""#] {
        let refused =
            f.post(Some(&token), "/processes/reply/instances", &format!(r#"{{"data": {{"reply_by": {sent}}}}}"#));
        assert_eq!((refused.status, refused.code()), (400, "invalid_data"), "{sent}: {:?}", refused.body);
    }
}

/// Issue 17: `overdue=true` lists only the items whose deadline has fallen
/// due by the server's clock and not fired, closed ones too with
/// `status=all`, and pages as the plain list does; the document names the
/// parameter as a boolean, and anything else is refused.
#[test]
fn overdue_lists_only_the_items_whose_deadline_has_passed() {
    let f = ApiFixture::start();
    f.fixture.deploy_json(
        "admin",
        r#"{ "name": "deadline", "fields": [{ "name": "name", "type": "string" }],
             "activities": [{ "id": "wait", "name": "Wait", "start": true,
               "events": [{ "kind": "server_event", "name": "Wait", "synchronous": false, "script": "" }],
               "escalations": [{ "name": "Give up", "after": "2h",
                 "action": { "finish": { "set": { "name": "timed out" } } } }] }] }"#,
    );
    f.fixture.engine.grant("admin", "deadline", "biztalk", &[Right::Start, Right::View, Right::ServerEvent]).unwrap();
    let token = f.token("biztalk");
    let start = || {
        let started = f.post(Some(&token), "/processes/deadline/instances", "{}");
        assert_eq!(started.status, 201, "{:?}", started.body);
        started.body["waiting"][0].as_str().unwrap().to_owned()
    };
    // Due at T0 + 2 h, T0 + 2 h and T0 + 3 h; the callback's item has none.
    let (first, second) = (start(), start());
    let callback = f.pending_serial("PO-1");
    f.fixture.clock.advance(3_600_000);
    let third = start();
    let serials = |query: &str| -> Vec<String> {
        let answer = f.get(Some(&token), &format!("/serveritems{query}"));
        assert_eq!(answer.status, 200, "{query}: {:?}", answer.body);
        answer.body["items"].as_array().unwrap().iter().map(|i| i["serial"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(serials("?overdue=true"), Vec::<String>::new(), "nothing is due yet");

    // Two and a half hours on, with no ticker firing: the first two are overdue.
    f.fixture.clock.advance(5_400_000);
    assert_eq!(serials("?overdue=true"), [first.clone(), second.clone()]);
    assert_eq!(serials("?overdue=false"), [first.clone(), second.clone(), callback.clone(), third.clone()]);
    let page = f.get(Some(&token), "/serveritems?overdue=true&limit=1");
    assert_eq!(page.body["items"][0]["serial"], first.as_str());
    let next = page.body["next_after"].as_str().unwrap().to_owned();
    assert_eq!(serials(&format!("?overdue=true&limit=1&after={next}")), std::slice::from_ref(&second));

    // An overdue item a callback closed is overdue no more, even with status=all.
    let finished = f.post(Some(&token), &format!("/serveritems/{first}/finish"), "{}");
    assert_eq!(finished.status, 200, "{:?}", finished.body);
    assert_eq!(serials("?overdue=true&status=all"), std::slice::from_ref(&second));

    let refused = f.get(Some(&token), "/serveritems?overdue=maybe");
    assert_eq!((refused.status, refused.code()), (400, "invalid_query"), "{:?}", refused.body);
    let document = f.get(None, "/openapi.json").body;
    let parameters = document["paths"]["/serveritems"]["get"]["parameters"].as_array().unwrap();
    let overdue = parameters.iter().find(|p| p["name"] == "overdue").expect("the document names overdue");
    assert_eq!((&overdue["in"], &overdue["schema"]["type"]), (&json!("query"), &json!("boolean")));
    assert_ne!(overdue["required"], true, "{overdue}");
}

/// Issue 19: the instance document carries its parent and children, and
/// lists carry the parent's id, so a caller can walk from one to the other.
#[test]
fn the_instance_document_links_a_parent_and_its_children() {
    let fixture = support::Fixture::new();
    for sample in ["payment", "audit-log", "order"] {
        fixture.deploy_sample("admin", &format!("{sample}.process.json"));
        fixture.engine.grant("admin", sample, "biztalk", &[Right::Start, Right::View, Right::ServerEvent]).unwrap();
    }
    let f = ApiFixture::start_with(fixture);
    let token = f.token("biztalk");
    let started = f.post(Some(&token), "/processes/order/instances", r#"{"folio": "O-1"}"#);
    assert_eq!(started.status, 201, "{:?}", started.body);
    let order = started.body["instance_id"].as_i64().unwrap();
    let payment = order + 2;

    let parent = f.get(Some(&token), &format!("/instances/{order}"));
    assert_eq!(parent.status, 200, "{:?}", parent.body);
    assert_eq!(parent.body["parent"], json!(null));
    let children = parent.body["children"].as_array().unwrap();
    assert_eq!(children.len(), 2);
    assert_eq!(children[1]["id"], payment);
    assert_eq!(children[1]["process"], "payment");
    assert_eq!(children[1]["status"], "Active");
    assert_eq!(children[1]["serial"], format!("{order}_2"));
    assert_eq!(children[0]["serial"], json!(null), "the audit log was not waited for");

    let child = f.get(Some(&token), &format!("/instances/{payment}"));
    assert_eq!(child.body["parent_id"], order);
    assert_eq!(
        child.body["parent"],
        json!({"id": order, "process": "order", "activity": "Take payment", "event": "Pay", "serial": format!("{order}_2")})
    );
}

// ----- bulk finish (issue 18) ---------------------------------------------------

#[test]
fn a_bulk_finish_answers_each_serial_as_its_single_finish_would() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serials: Vec<String> = (0..3).map(|i| f.pending_serial(&format!("PO-{i}"))).collect();
    assert_eq!(f.post(Some(&token), &format!("/serveritems/{}/finish", serials[1]), "{}").status, 200);
    let other = f.fixture.engine.deploy(
        "admin",
        &flowdesk::model::ProcessDraft { name: "private".to_owned(), ..support::sample("callback.process.json") },
    );
    other.unwrap();
    let private = f.fixture.engine.start("admin", "private", "", &[]).unwrap().waiting[0].clone();
    let private_id: i64 = private.split('_').next().unwrap().parse().unwrap();
    let own = |id| {
        let d = f.fixture.detail("admin", id);
        format!("{:?}|{:?}|{:?}|{:?}", d.summary, d.fields, d.audit, d.pending_items)
    };
    let before = own(private_id);

    let body = json!({
        "serials": [serials[0], serials[1], "abc", "999_2", private, serials[2], serials[0]],
        "data": {"name": "call back value"},
    });
    let answer = f.post(Some(&token), "/serveritems/finish", &body.to_string());
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(
        (answer.body["done"].as_u64(), answer.body["refused"].as_u64(), answer.body["failed"].as_u64()),
        (Some(2), Some(4), Some(0))
    );
    let results = answer.body["results"].as_array().unwrap();
    let each: Vec<(&str, u64, &str)> = results
        .iter()
        .map(|r| {
            (r["serial"].as_str().unwrap(), r["status"].as_u64().unwrap(), r["error"]["code"].as_str().unwrap_or(""))
        })
        .collect();
    assert_eq!(
        each,
        [
            (serials[0].as_str(), 200, ""),
            (serials[1].as_str(), 409, "already_finished"),
            ("abc", 400, "invalid_serial"),
            ("999_2", 404, "item_not_found"),
            (private.as_str(), 403, "permission_denied"),
            (serials[2].as_str(), 200, ""),
        ]
    );
    assert_eq!(results[0]["applied"], true);
    assert_eq!(results[0]["instance"]["status"], "Completed");
    assert_eq!(results[1]["error"]["closed_by"], "biztalk");
    assert_eq!(own(private_id), before, "a refused serial changed its instance");
    let id: i64 = serials[2].split('_').next().unwrap().parse().unwrap();
    let trail = f.get(Some(&token), &format!("/instances/{id}")).body;
    let finish = trail["audit"].as_array().unwrap().iter().find(|a| a["action"] == "Server item finished").unwrap();
    assert_eq!(finish["user"], "biztalk");
    assert!(finish["detail"].as_str().unwrap().ends_with("part of a bulk finish of 5"), "{finish}");
}

#[test]
fn a_bulk_finish_of_more_serials_than_one_call_takes_is_400_and_changes_nothing() {
    let f = ApiFixture::start();
    let token = f.token("biztalk");
    let serial = f.pending_serial("PO-1");
    let id: i64 = serial.split('_').next().unwrap().parse().unwrap();
    let before = f.fixture.snapshot(id);
    let mut serials = vec![serial.clone()];
    serials.extend((0..flowdesk::net::MAX_BULK_SERIALS).map(|i| format!("{}_2", 1000 + i)));
    let answer = f.post(Some(&token), "/serveritems/finish", &json!({ "serials": serials }).to_string());
    assert_eq!((answer.status, answer.code()), (400, "too_many_serials"), "{:?}", answer.body);
    let document = f.get(None, "/openapi.json").body;
    let schema = &document["components"]["schemas"]["BulkFinishRequest"]["properties"]["serials"];
    assert_eq!(schema["maxItems"].as_u64(), Some(flowdesk::net::MAX_BULK_SERIALS as u64), "{schema}");
    assert_eq!(answer.body["field"], "serials");
    assert_eq!(f.fixture.snapshot(id), before);
    // Exactly as many is taken.
    serials.pop();
    let answer = f.post(Some(&token), "/serveritems/finish", &json!({ "serials": serials }).to_string());
    assert_eq!((answer.status, answer.body["done"].as_u64()), (200, Some(1)), "{:?}", answer.body["results"][0]);
    // Without a token: 401 before the body is judged.
    let answer = f.post(None, "/serveritems/finish", "[1]");
    assert_eq!((answer.status, answer.code()), (401, "unauthenticated"));
}
