//! Finding instances (issue 18, "Find anything"): the instance list's
//! filters by version, by when instances started and ended, by a data
//! field's value, and the folio search ignoring case, as every backend must
//! answer them (`engine::find`, `InstanceFilter`). Part of the conformance
//! suite: each scenario runs on the SQLite store and on the memory store.

use crate::support;

use flowdesk::engine::{
    Comparison, EngineError, FieldCondition, FilterError, InstanceFilter, InstanceStatus, ItemFilter, TimeRange,
};
use support::{Backend, Fixture, T0, set};

/// One wait, and a field of every type.
const ORDERS: &str = r#"{
  "name": "orders",
  "fields": [
    { "name": "amount", "type": "decimal" },
    { "name": "count", "type": "integer" },
    { "name": "name", "type": "string" },
    { "name": "done", "type": "boolean", "default": false },
    { "name": "due", "type": "date" },
    { "name": "at", "type": "datetime" }
  ],
  "activities": [
    { "id": "wait", "name": "Wait", "start": true, "events": [
      { "kind": "server_event", "name": "Ask", "synchronous": false, "script": "" } ] }
  ]
}"#;

/// Three orders a second apart, the first two on version 1 and the third
/// on version 2; the second finished a second after the third started.
/// The tests name them 1, 2 and 3 (a store may hand out other ids).
struct Orders<S: Backend> {
    fx: Fixture<S>,
    started: std::cell::RefCell<Vec<i64>>,
}

fn orders<S: Backend>() -> Orders<S> {
    let orders = Orders { fx: Fixture::fresh(), started: Default::default() };
    let fx = &orders.fx;
    fx.deploy_json("admin", ORDERS);
    let start = |folio: &str, values: &[(&str, &str)]| {
        fx.clock.advance(1_000);
        let progress = fx.engine.start("admin", "orders", folio, &set(values)).unwrap();
        orders.started.borrow_mut().push(progress.instance_id);
    };
    start(
        "PO-Ärger",
        &[("amount", "50"), ("count", "1"), ("name", "Alpha"), ("due", "2026-12-01"), ("at", "2026-12-01T10:00:00Z")],
    );
    start(
        "po-b",
        &[
            ("amount", "150.5"),
            ("count", "7"),
            ("name", "beta \"quoted\""),
            ("done", "true"),
            ("due", "2027-01-15"),
            ("at", "2026-12-02T10:00:00Z"),
        ],
    );
    fx.deploy_json("admin", ORDERS);
    start(
        "Hauptstraße 3",
        &[
            ("amount", "100.00"),
            ("count", "3"),
            ("name", "x' OR 1=1 --"),
            ("due", "2026-11-01"),
            ("at", "2026-12-03T10:00:00Z"),
        ],
    );
    fx.clock.advance(1_000);
    let second = Some(orders.started.borrow()[1]);
    let item = fx.engine.items("admin", &ItemFilter { instance_id: second, ..ItemFilter::default() }).unwrap();
    fx.engine.finish("admin", item[0].serial, &[]).unwrap();
    orders
}

/// The orders a filter lists, by their names 1, 2, 3, checked against its count.
fn ids<S: Backend>(orders: &Orders<S>, filter: &InstanceFilter) -> Vec<i64> {
    let fx = &orders.fx;
    let started = orders.started.borrow();
    let name = |id: i64| started.iter().position(|s| *s == id).map_or(id, |at| at as i64 + 1);
    let rows: Vec<i64> = fx.engine.instances("admin", filter).unwrap().into_iter().map(|i| name(i.id)).collect();
    let count = fx.engine.count_instances("admin", filter).unwrap();
    assert_eq!(count, rows.len() as u64, "the count agrees with the rows: {filter:?}");
    rows
}

fn of_orders() -> InstanceFilter {
    InstanceFilter { process: Some("orders".to_owned()), ..InstanceFilter::default() }
}

fn filter_by_versions_and_time_ranges<S: Backend>() {
    let fx = orders::<S>();
    let engine = &fx.fx.engine;
    assert_eq!(ids(&fx, &InstanceFilter { version: Some(1), ..of_orders() }), [2, 1]);
    assert_eq!(ids(&fx, &InstanceFilter { version: Some(2), ..of_orders() }), [3]);
    assert!(ids(&fx, &InstanceFilter { version: Some(3), ..of_orders() }).is_empty());

    let started = |after: Option<i64>, before: Option<i64>| InstanceFilter {
        started: TimeRange { after: after.map(|s| T0 + s * 1_000), before: before.map(|s| T0 + s * 1_000) },
        ..InstanceFilter::default()
    };
    assert_eq!(ids(&fx, &started(Some(2), None)), [3, 2], "from the moment, included");
    assert_eq!(ids(&fx, &started(None, Some(2))), [1], "up to the moment, excluded");
    assert_eq!(ids(&fx, &started(Some(2), Some(3))), [2]);
    assert!(ids(&fx, &started(Some(3), Some(2))).is_empty(), "an empty range");

    // Only a completed instance has ended: instance 2, at T0 + 4 s.
    let ended = |after: i64, before: i64| InstanceFilter {
        ended: TimeRange { after: Some(T0 + after * 1_000), before: Some(T0 + before * 1_000) },
        ..InstanceFilter::default()
    };
    assert_eq!(ids(&fx, &ended(0, 10)), [2]);
    assert_eq!(ids(&fx, &ended(4, 5)), [2]);
    assert!(ids(&fx, &ended(0, 4)).is_empty());
    let ended_since =
        InstanceFilter { ended: TimeRange { after: Some(T0), before: None }, ..InstanceFilter::default() };
    assert_eq!(ids(&fx, &ended_since), [2]);

    let no_process = engine.instances("admin", &InstanceFilter { version: Some(1), ..InstanceFilter::default() });
    assert!(
        matches!(no_process, Err(EngineError::Filter(FilterError::VersionNeedsProcess { version: 1 }))),
        "{no_process:?}"
    );
}

fn filter_by_a_data_fields_value<S: Backend>() {
    let fx = orders::<S>();
    let engine = &fx.fx.engine;
    let matching = |conditions: &[&str]| {
        let fields = conditions.iter().map(|text| FieldCondition::parse(text).unwrap()).collect();
        ids(&fx, &InstanceFilter { fields, ..of_orders() })
    };
    assert_eq!(matching(&["amount > 100"]), [2]);
    assert_eq!(matching(&["amount >= 100"]), [3, 2]);
    assert_eq!(matching(&["amount = 100"]), [3], "100 equals 100.00");
    assert_eq!(matching(&["amount != 100"]), [2, 1]);
    assert_eq!(matching(&["amount < 100"]), [1]);
    assert_eq!(matching(&["amount <= 50"]), [1]);
    assert_eq!(matching(&["count < 3"]), [1]);
    assert_eq!(matching(&["count >= 3", "amount < 150"]), [3], "every condition holds");
    assert_eq!(matching(&["name = Alpha"]), [1]);
    assert!(matching(&["name = alpha"]).is_empty(), "= is exact");
    assert_eq!(matching(&["name contains ALPH"]), [1], "contains ignores case");
    assert_eq!(matching(&[r#"name = "beta \"quoted\"""#]), [2]);
    assert_eq!(matching(&["name = \"x' OR 1=1 --\""]), [3], "SQL-looking text is a value");
    assert!(matching(&["name = \"' OR '1'='1\""]).is_empty());
    assert_eq!(matching(&["done = true"]), [2]);
    assert_eq!(matching(&["done = no"]), [3, 1]);
    assert_eq!(matching(&["due < 2026-12-01"]), [3]);
    assert_eq!(matching(&["due >= 2026-12-01"]), [2, 1]);
    assert_eq!(matching(&["at > 2026-12-02T10:00:00Z"]), [3]);
    assert_eq!(matching(&["at <= 2026-12-02 10:00"]), [2, 1], "a wall-clock time in the process's zone (UTC)");

    // Version and field together; a field read for the version asked.
    let on_v2 =
        InstanceFilter { version: Some(2), fields: vec![FieldCondition::parse("count > 0").unwrap()], ..of_orders() };
    assert_eq!(ids(&fx, &on_v2), [3]);
    let on_v9 = InstanceFilter { version: Some(9), ..on_v2.clone() };
    assert!(ids(&fx, &on_v9).is_empty(), "a version that does not exist has no instances, and is no error");
    // With an order other than newest first, and paged.
    let by_folio = InstanceFilter {
        fields: vec![FieldCondition::new("amount", Comparison::GreaterOrEqual, "50")],
        order: flowdesk::engine::InstanceOrder { column: flowdesk::engine::InstanceColumn::Folio, descending: false },
        limit: 2,
        ..of_orders()
    };
    let page = ids(&fx, &InstanceFilter { limit: 0, ..by_folio.clone() });
    assert_eq!(page, [3, 1, 2], "by folio: H, P, p");
    let named = |id: i64| fx.started.borrow().iter().position(|s| *s == id).unwrap() + 1;
    let two: Vec<usize> = engine.instances("admin", &by_folio).unwrap().iter().map(|i| named(i.id)).collect();
    assert_eq!(two, [3, 1]);
}

fn a_malformed_or_unusable_field_filter_is_a_clear_error<S: Backend>() {
    let fx = orders::<S>();
    let engine = &fx.fx.engine;
    let refused = |filter: InstanceFilter| {
        let count = engine.count_instances("admin", &filter).unwrap_err();
        let page = engine.instances("admin", &filter).unwrap_err();
        assert_eq!(count.to_string(), page.to_string());
        assert!(matches!(page, EngineError::Filter(_)), "{page:?}");
        page.to_string()
    };
    let with = |text: &str| InstanceFilter { fields: vec![FieldCondition::parse(text).unwrap()], ..of_orders() };
    assert_eq!(refused(with("nope = 1")), "invalid filter: process `orders` has no field `nope`");
    let bad_number = refused(with("amount > lots"));
    assert!(bad_number.contains("`amount`") && bad_number.contains("decimal"), "{bad_number}");
    let bad_date = refused(with("due > 2026-13-01"));
    assert!(bad_date.contains("`due`") && bad_date.contains("date"), "{bad_date}");
    assert_eq!(
        refused(with("done < true")),
        "invalid filter: field `done` is a boolean field: `<` does not apply to it (use = !=)"
    );
    assert!(refused(with("name > x")).contains("use = != contains"));
    assert!(refused(with("count contains 1")).contains("integer"));
    let without_process =
        InstanceFilter { fields: vec![FieldCondition::parse("amount > 1").unwrap()], ..InstanceFilter::default() };
    assert!(refused(without_process).contains("needs a process"));
    let unknown_process = InstanceFilter { process: Some("nothing".to_owned()), ..with("amount > 1") };
    let error = engine.instances("admin", &unknown_process).unwrap_err();
    assert!(matches!(error, EngineError::ProcessNotFound { .. }), "{error:?}");
    // Front ends build conditions unread (no test): the engine reads them.
    let unread =
        InstanceFilter { fields: vec![FieldCondition::new("amount", Comparison::Greater, "1")], ..of_orders() };
    assert!(engine.instances("admin", &unread).is_ok(), "the engine reads what it is given");
}

fn the_folio_search_ignores_case_in_all_of_unicode<S: Backend>() {
    let fx = orders::<S>();
    let search = |text: &str| ids(&fx, &InstanceFilter { search: Some(text.to_owned()), ..InstanceFilter::default() });
    assert_eq!(search("ärger"), [1]);
    assert_eq!(search("PO-"), [2, 1]);
    assert_eq!(search("po-B"), [2]);
    assert_eq!(search("STRASSE"), [3], "ß is ss in Unicode's case folding");
    assert_eq!(search("hauptstraße"), [3]);
    let third = fx.started.borrow()[2];
    assert_eq!(search(&third.to_string()), [3], "a number is also an id");
    assert!(search("nowhere").is_empty());
    // With the other filters.
    let searched = InstanceFilter {
        search: Some("po".to_owned()),
        status: Some(InstanceStatus::Active),
        fields: vec![FieldCondition::parse("count < 5").unwrap()],
        ..of_orders()
    };
    assert_eq!(ids(&fx, &searched), [1]);
}

/// Two twins of one process, one with every field searchable (its name
/// SQL-looking on purpose: it becomes a literal in an index and in
/// queries), one without.
fn twin(name: &str, searchable: bool) -> String {
    let fields: Vec<String> =
        [("count", "integer"), ("name", "string"), ("done", "boolean"), ("due", "date"), ("at", "datetime")]
            .iter()
            .map(|(field, ty)| format!(r#"{{ "name": "{field}", "type": "{ty}", "searchable": {searchable} }}"#))
            .collect();
    format!(
        r#"{{ "name": {}, "fields": [{}], "activities": [
            {{ "id": "wait", "name": "Wait", "start": true, "events": [
              {{ "kind": "server_event", "name": "Ask", "synchronous": false, "script": "" }} ] }} ] }}"#,
        serde_json::Value::String(name.to_owned()),
        fields.join(", ")
    )
}

/// A searchable field finds what the same field finds unindexed, for
/// every operator and many values of every searchable type (boundaries,
/// quotes, empty and non-ASCII text, years 0001 and 9999), in pages and
/// counts, alone and with a status: the index only ever narrows what the
/// field test then decides.
fn a_searchable_field_finds_what_an_unindexed_one_does<S: Backend>() {
    let fx = Fixture::<S>::fresh();
    let indexed = "x'); DROP TABLE instances; --";
    fx.deploy_json("admin", &twin(indexed, true));
    fx.deploy_json("admin", &twin("plain", false));
    let counts = ["-9223372036854775808", "-1", "0", "1", "2", "100", "9223372036854775807"];
    let names = ["", "a", "A", "a'b", "\"q\"", "Ärger", "zz", "a b"];
    let dues = ["0001-01-01", "1999-12-31", "2026-12-06", "2027-01-01", "9999-12-31"];
    let ats = ["0001-01-01T00:00:00Z", "2026-12-06T10:00:00Z", "2026-12-06T10:00:01Z", "9999-12-30T12:00:00Z"];
    for i in 0..60usize {
        let done = if i % 3 == 0 { "true" } else { "false" };
        let values = [
            ("count", counts[i * 7 % counts.len()]),
            ("name", names[i * 5 % names.len()]),
            ("done", done),
            ("due", dues[i * 3 % dues.len()]),
            ("at", ats[i * 11 % ats.len()]),
        ];
        // A few instances leave a field at its default.
        let values = if i % 10 == 9 { &values[..2] } else { &values[..] };
        for process in [indexed, "plain"] {
            fx.clock.advance(1);
            let started = fx.engine.start("admin", process, &format!("F{i}"), &set(values)).unwrap();
            if i % 4 == 0 {
                let items = fx
                    .engine
                    .items("admin", &ItemFilter { instance_id: Some(started.instance_id), ..ItemFilter::default() })
                    .unwrap();
                fx.engine.finish("admin", items[0].serial, &[]).unwrap();
            }
        }
    }
    let found = |process: &str, condition: &FieldCondition, status: Option<InstanceStatus>| {
        let filter = InstanceFilter {
            process: Some(process.to_owned()),
            status,
            fields: vec![condition.clone()],
            ..InstanceFilter::default()
        };
        let folios: Vec<String> = fx.engine.instances("admin", &filter).unwrap().into_iter().map(|i| i.folio).collect();
        let count = fx.engine.count_instances("admin", &filter).unwrap();
        assert_eq!(count, folios.len() as u64, "{process}: {condition}");
        folios
    };
    let probes: [(&str, flowdesk::model::FieldType, Vec<&str>); 5] = [
        ("count", flowdesk::model::FieldType::Integer, [&counts[..], &["3", "-2"]].concat()),
        ("name", flowdesk::model::FieldType::String, [&names[..], &["b", "Ä"]].concat()),
        ("done", flowdesk::model::FieldType::Boolean, vec!["true", "false"]),
        ("due", flowdesk::model::FieldType::Date, [&dues[..], &["2026-12-07", "1970-01-01"]].concat()),
        (
            "at",
            flowdesk::model::FieldType::DateTime,
            [&ats[..], &["1970-01-01T00:00:00Z", "2026-12-06T09:59:59Z"]].concat(),
        ),
    ];
    let mut checked = 0;
    for (field, field_type, values) in &probes {
        for op in Comparison::for_type(*field_type) {
            for value in values {
                let condition = FieldCondition::new(field, op, value);
                for status in [None, Some(InstanceStatus::Completed)] {
                    let expected = found("plain", &condition, status);
                    assert_eq!(found(indexed, &condition, status), expected, "{condition} {status:?}");
                    checked += usize::from(!expected.is_empty());
                }
            }
        }
    }
    assert!(checked > 100, "most probes find something: {checked}");
}

support::on_every_backend! {
    a_searchable_field_finds_what_an_unindexed_one_does,
    filter_by_versions_and_time_ranges,
    filter_by_a_data_fields_value,
    a_malformed_or_unusable_field_filter_is_a_clear_error,
    the_folio_search_ignores_case_in_all_of_unicode,
}
