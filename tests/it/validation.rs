//! Validation, data-driven: a process file and the problems it must produce, in
//! the order `validate` reports them (errors first, then element order), each
//! written as the `Display` of the `Problem`, i.e. what the designer and the
//! command line show.
//!
//! An expected line ending in `…` only fixes the start of the message: used where
//! the check is wanted but its wording is not settled yet.
//!
//! Tests named `bug_…` describe the correct behaviour where src/ gets it wrong
//! today (each says where and how); they fail until src/ is fixed.

use flowdesk::model::{LoadError, ProcessDraft, ScriptHost, validate};

fn problems(json: &str) -> Vec<String> {
    let draft = ProcessDraft::from_json(json, "test.process.json")
        .unwrap_or_else(|err| panic!("test JSON does not load: {err}\n{json}"));
    validate(&draft, &ScriptHost::default()).iter().map(ToString::to_string).collect()
}

#[track_caller]
fn check(json: &str, expected: &[&str]) {
    let actual = problems(json);
    let matches = actual.len() == expected.len()
        && actual.iter().zip(expected).all(|(actual, expected)| match expected.strip_suffix('…') {
            Some(prefix) => actual.starts_with(prefix),
            None => actual == expected,
        });
    assert!(matches, "\nexpected:\n  {}\nactual:\n  {}\nfor:\n{json}\n", expected.join("\n  "), actual.join("\n  "));
}

// ----- a clean process ---------------------------------------------------------

#[test]
fn a_correct_process_has_no_problems() {
    check(
        r#"{
          "name": "order",
          "fields": [
            { "name": "name", "type": "string", "default": "Ada" },
            { "name": "n", "type": "integer", "default": 3 },
            { "name": "amount", "type": "decimal", "default": "12.50" },
            { "name": "approved", "type": "boolean" },
            { "name": "due", "type": "date", "default": "2026-11-25" }
          ],
          "activities": [
            { "id": "a", "name": "A", "start": true, "events": [
              { "kind": "server_event", "name": "e", "script": "n += 1;\nlog(`${serial} ${instance_id} ${folio} ${activity} ${event}`);" },
              { "kind": "server_event", "name": "f", "synchronous": false, "script": "approved = amount > 10;" }
            ] },
            { "id": "b", "name": "B" },
            { "id": "c", "name": "C" },
            { "id": "d", "name": "D", "preceding_rule": "All" }
          ],
          "lines": [
            { "from": "a", "to": "b", "rule": "approved && n >= 2" },
            { "from": "a", "to": "c", "rule": "!approved || name == \"x\" || due > \"2026-01-01\"" },
            { "from": "b", "to": "d" },
            { "from": "c", "to": "d" }
          ]
        }"#,
        &[],
    );
}

// ----- the process itself --------------------------------------------------------

/// Searchable fields (issue 18): every type whose stored form sorts as its
/// values do may be; a decimal may not, and is told why. A file without the
/// property reads as before (not searchable) and is written without it.
#[test]
fn a_decimal_field_cannot_be_searchable_and_the_rest_can() {
    let fields = |decimal_searchable: bool| {
        format!(
            r#"{{ "name": "p", "fields": [
              {{ "name": "s", "type": "string", "searchable": true }},
              {{ "name": "i", "type": "integer", "searchable": true }},
              {{ "name": "b", "type": "boolean", "searchable": true }},
              {{ "name": "d", "type": "date", "searchable": true }},
              {{ "name": "t", "type": "datetime", "searchable": true }},
              {{ "name": "amount", "type": "decimal", "searchable": {decimal_searchable} }}
            ], "activities": [ {{ "id": "a", "name": "A", "start": true }} ] }}"#
        )
    };
    check(&fields(false), &[]);
    check(
        &fields(true),
        &["error: field `amount`: a decimal field cannot be searchable: a decimal is stored as its digits' text, \
           which does not sort as its number does (10 before 9, 1.0 apart from 1.00), so an index could not answer \
           a filter on it"],
    );
    let old = r#"{ "name": "p", "fields": [ { "name": "n", "type": "integer" } ], "activities": [] }"#;
    let draft = ProcessDraft::from_json(old, "old.process.json").unwrap();
    assert!(!draft.fields[0].searchable);
    assert!(!draft.to_json().contains("searchable"), "written as before: {}", draft.to_json());
    let marked = ProcessDraft::from_json(&fields(false), "p.process.json").unwrap();
    let again = ProcessDraft::from_json(&marked.to_json(), "p.process.json").unwrap();
    assert_eq!(again.fields.iter().filter(|f| f.searchable).count(), 5, "kept when saved");
}

#[test]
fn process_needs_a_name_without_surrounding_spaces() {
    check(
        r#"{"name": "", "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &["error: process: the process has no name"],
    );
    check(
        r#"{"name": "   ", "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &["error: process: the process has no name"],
    );
    for name in [" order", "order ", "or\\u0007der"] {
        check(
            &format!(r#"{{"name": "{name}", "activities": [{{"id": "a", "name": "A", "start": true}}]}}"#),
            &["error: process: the process name must not start or end with spaces or hold control characters"],
        );
    }
}

#[test]
fn process_needs_activities() {
    // No activities: one problem, not also "no start activity".
    check(r#"{"name": "p"}"#, &["error: process: the process has no activities"]);
}

#[test]
fn no_start_activity() {
    check(
        r#"{"name": "p",
            "activities": [{"id": "a", "name": "A"}, {"id": "b", "name": "B"}],
            "lines": [{"from": "a", "to": "b"}]}"#,
        &["error: process: no start activity: mark one activity as start"],
    );
}

#[test]
fn several_start_activities_are_each_reported() {
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "B", "start": true},
              {"id": "c", "name": "C"},
              {"id": "d", "name": "D", "start": true}
            ],
            "lines": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "d"}]}"#,
        &[
            "error: activity `A` (a): 3 activities are marked as start; exactly one may be",
            "error: activity `B` (b): 3 activities are marked as start; exactly one may be",
            "error: activity `D` (d): 3 activities are marked as start; exactly one may be",
        ],
    );
}

// ----- lines between activities -----------------------------------------------

#[test]
fn line_to_or_from_a_missing_activity() {
    check(
        r#"{"name": "p",
            "activities": [{"id": "a", "name": "A", "start": true}, {"id": "b", "name": "B"}],
            "lines": [
              {"from": "a", "to": "b"},
              {"from": "a", "to": "ghost"},
              {"from": "nowhere", "to": "b"},
              {"from": "x", "to": "y"}
            ]}"#,
        &[
            "error: line 2 (A → ghost): goes to `ghost`, which is not an activity",
            "error: line 3 (nowhere → B): starts at `nowhere`, which is not an activity",
            "error: line 4 (x → y): starts at `x`, which is not an activity",
            "error: line 4 (x → y): goes to `y`, which is not an activity",
        ],
    );
}

// ----- activities ------------------------------------------------------------------

#[test]
fn duplicate_activity_ids() {
    // Lines resolve an id to its first activity, so the second one is also unreachable.
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "B"},
              {"id": "b", "name": "Other B"}
            ],
            "lines": [{"from": "a", "to": "b"}]}"#,
        &[
            "error: activity `Other B` (b): duplicate activity id `b`",
            "warning: activity `Other B` (b): unreachable: no path of lines leads here from the start activity",
        ],
    );
}

#[test]
fn duplicate_activity_names() {
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "Check"},
              {"id": "c", "name": "Check"}
            ],
            "lines": [{"from": "a", "to": "b"}, {"from": "a", "to": "c"}]}"#,
        &["error: activity `Check` (c): duplicate activity name `Check`"],
    );
}

#[test]
fn activity_needs_an_id_and_a_name() {
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": " ", "name": "B"},
              {"id": "c", "name": ""}
            ],
            "lines": [{"from": "a", "to": " "}, {"from": "a", "to": "c"}]}"#,
        &["error: activity `B` ( ): the activity has no id", "error: activity `` (c): the activity has no name"],
    );
}

// ----- fields ----------------------------------------------------------------------

#[test]
fn duplicate_field_names() {
    check(
        r#"{"name": "p",
            "fields": [
              {"name": "amount", "type": "decimal"},
              {"name": "requester", "type": "string"},
              {"name": "amount", "type": "integer"}
            ],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &["error: field `amount`: duplicate field name `amount`"],
    );
}

#[test]
fn unknown_field_types() {
    check(
        r#"{"name": "p",
            "fields": [
              {"name": "n", "type": "int"},
              {"name": "s", "type": "String"},
              {"name": "t", "type": ""}
            ],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &[
            "error: field `n`: unknown field type `int` (expected string, integer, decimal, boolean, date or datetime)",
            "error: field `s`: unknown field type `String` (expected string, integer, decimal, boolean, date or datetime)",
            "error: field `t`: unknown field type `` (expected string, integer, decimal, boolean, date or datetime)",
        ],
    );
}

#[test]
fn default_values_must_fit_the_field_type() {
    check(
        r#"{"name": "p",
            "fields": [
              {"name": "n", "type": "integer", "default": "many"},
              {"name": "m", "type": "integer", "default": 1.5},
              {"name": "s", "type": "string", "default": 5},
              {"name": "d", "type": "decimal", "default": true},
              {"name": "b", "type": "boolean", "default": "maybe"},
              {"name": "day", "type": "date", "default": "2026-02-30"},
              {"name": "when", "type": "date", "default": "25/11/2026"},
              {"name": "list", "type": "string", "default": ["a"]}
            ],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &[
            "error: field `n`: default value: expected integer, got \"many\"",
            "error: field `m`: default value: expected integer, got number 1.5",
            "error: field `s`: default value: expected string, got number 5",
            "error: field `d`: default value: expected decimal, got boolean true",
            "error: field `b`: default value: expected boolean, got \"maybe\"",
            "error: field `day`: default value: expected date, got \"2026-02-30\"",
            "error: field `when`: default value: expected date, got \"25/11/2026\"",
            "error: field `list`: default value: expected string, got a list",
        ],
    );
}

#[test]
fn default_values_given_as_text_are_accepted() {
    check(
        r#"{"name": "p",
            "fields": [
              {"name": "n", "type": "integer", "default": "42"},
              {"name": "d", "type": "decimal", "default": "0.10"},
              {"name": "e", "type": "decimal", "default": 7},
              {"name": "b", "type": "boolean", "default": "yes"},
              {"name": "day", "type": "date", "default": "2026-11-25"},
              {"name": "none", "type": "string", "default": null}
            ],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &[],
    );
}

#[test]
fn invalid_field_names() {
    check(
        r#"{"name": "p",
            "fields": [
              {"name": "first name", "type": "string"},
              {"name": "1st", "type": "string"},
              {"name": "naïve", "type": "string"},
              {"name": "cost-centre", "type": "string"},
              {"name": "", "type": "string"},
              {"name": "_ok_2", "type": "string"}
            ],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &[
            "error: field `first name`: a field name must start with a letter or _ and hold only letters, digits and _",
            "error: field `1st`: a field name must start with a letter or _ and hold only letters, digits and _",
            "error: field `naïve`: a field name must start with a letter or _ and hold only letters, digits and _",
            "error: field `cost-centre`: a field name must start with a letter or _ and hold only letters, digits and _",
            "error: field #5: a field name must start with a letter or _ and hold only letters, digits and _",
        ],
    );
}

#[test]
fn reserved_field_names() {
    // The script context names and script keywords cannot be fields.
    let names = ["serial", "instance_id", "folio", "activity", "event", "if", "true", "let", "print", "type_of"];
    let fields: Vec<String> = names.iter().map(|n| format!(r#"{{"name": "{n}", "type": "string"}}"#)).collect();
    let json = format!(
        r#"{{"name": "p", "fields": [{}], "activities": [{{"id": "a", "name": "A", "start": true}}]}}"#,
        fields.join(", ")
    );
    let expected: Vec<String> =
        names.iter().map(|n| format!("error: field `{n}`: `{n}` is a reserved name in scripts")).collect();
    check(&json, &expected.iter().map(String::as_str).collect::<Vec<_>>());
}

/// BUG (src/model/validate.rs, `is_reserved`): the list holds 30 keywords, but the
/// script language reserves more (`match`, `default`, `var`, `Fn`, `call`, `eval`,
/// `debug`, `static`, `null`, `new`, ...). Such a field passes validation, yet no
/// script or rule can ever use it: `match = 1;` fails to compile with
/// "'match' is a reserved keyword".
#[test]
fn regression_fields_named_like_script_language_keywords_are_reserved() {
    for name in ["match", "default", "var", "Fn", "call", "eval", "debug", "static", "null", "new"] {
        check(
            &format!(
                r#"{{"name": "p", "fields": [{{"name": "{name}", "type": "integer"}}],
                    "activities": [{{"id": "a", "name": "A", "start": true}}]}}"#
            ),
            &[&format!("error: field `{name}`: `{name}` is a reserved name in scripts")],
        );
    }
}

// ----- events and scripts ------------------------------------------------------------

#[test]
fn duplicate_event_names_in_one_activity() {
    // The same event name in two different activities is fine.
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true, "events": [
                {"kind": "server_event", "name": "Notify"},
                {"kind": "server_event", "name": "Wait", "synchronous": false},
                {"kind": "server_event", "name": "Notify"}
              ]},
              {"id": "b", "name": "B", "events": [{"kind": "server_event", "name": "Notify"}]}
            ],
            "lines": [{"from": "a", "to": "b"}]}"#,
        &["error: activity `A`, event 3 `Notify`: duplicate event name `Notify` in this activity"],
    );
}

#[test]
fn event_needs_a_name() {
    check(
        r#"{"name": "p",
            "activities": [{"id": "a", "name": "A", "start": true, "events": [
              {"kind": "server_event", "name": "Ok"},
              {"kind": "server_event", "name": "  "}
            ]}]}"#,
        &["error: activity `A`, event 2 `  `: the event has no name"],
    );
}

#[test]
fn script_syntax_error_names_line_and_column() {
    check(
        r#"{"name": "p",
            "activities": [{"id": "a", "name": "A", "start": true, "events": [
              {"kind": "server_event", "name": "Prepare", "script": "log(\"first\");\nlet x = ;"},
              {"kind": "server_event", "name": "Unclosed", "script": "if true {\n  log(\"x\");\n"}
            ]}]}"#,
        &[
            "error: activity `A`, event 1 `Prepare`: script: line 2, column 9: Unexpected ';'",
            "error: activity `A`, event 2 `Unclosed`: script: line 3, column 1: Expecting '}' to terminate this block",
        ],
    );
}

#[test]
fn misspelt_field_in_a_script_is_an_error() {
    check(
        r#"{"name": "p",
            "fields": [{"name": "name", "type": "string"}],
            "activities": [{"id": "a", "name": "A", "start": true, "events": [
              {"kind": "server_event", "name": "Set", "script": "name = \"ok\";\nlet a = 1;\n  nmae = \"x\";"},
              {"kind": "server_event", "name": "Read", "synchronous": false, "script": "log(`${naem}`);"}
            ]}]}"#,
        &[
            "error: activity `A`, event 1 `Set`: script: line 3, column 3: Undefined variable: nmae",
            "error: activity `A`, event 2 `Read`: script: line 1, column 8: Undefined variable: naem",
        ],
    );
}

/// BUG (src/model/script.rs, `compile_scope`): the context values are pushed as
/// plain variables for compiling, so a script assigning to one compiles, and then
/// fails on every run with "Cannot modify constant folio". Validation should
/// report it at the event.
#[test]
fn regression_assigning_to_a_context_constant_is_an_error() {
    check(
        r#"{"name": "p",
            "fields": [{"name": "n", "type": "integer"}],
            "activities": [{"id": "a", "name": "A", "start": true, "events": [
              {"kind": "server_event", "name": "e", "script": "n = 1;\nfolio = \"PO-1\";"}
            ]}]}"#,
        &["error: activity `A`, event 1 `e`: script: line 2…"],
    );
}

// ----- line rules --------------------------------------------------------------------

const RULE_PROCESS: &str = r#"{"name": "p",
    "fields": [
      {"name": "name", "type": "string", "default": "Ada"},
      {"name": "n", "type": "integer"},
      {"name": "empty", "type": "string"}
    ],
    "activities": [{"id": "a", "name": "A", "start": true}, {"id": "b", "name": "B"}],
    "lines": [{"from": "a", "to": "b", "rule": RULE}]}"#;

/// The problems of a two-activity process whose one line has `rule`.
#[track_caller]
fn check_rule(rule: &str, expected: &[&str]) {
    let rule = serde_json::Value::String(rule.to_owned()).to_string();
    check(&RULE_PROCESS.replace("RULE", &rule), expected);
}

#[test]
fn rule_syntax_errors() {
    check_rule("name = \"x\"", &["error: line 1 (A → B): rule: line 1, column 6: Unexpected '='"]);
    check_rule("let x = 1; x", &["error: line 1 (A → B): rule: line 1, column 1: Unexpected 'let'"]);
    check_rule("n == ", &["error: line 1 (A → B): rule: line 1, column 6: Script is incomplete"]);
}

#[test]
fn rule_with_misspelt_field() {
    check_rule("nmae == \"x\"", &["error: line 1 (A → B): rule: line 1, column 1: Undefined variable: nmae"]);
}

#[test]
fn rule_that_is_not_boolean() {
    check_rule("n + 1", &["error: line 1 (A → B): rule gives integer 1, not true or false"]);
    check_rule("name", &["error: line 1 (A → B): rule gives string \"Ada\", not true or false"]);
}

/// BUG (src/model/script.rs, `eval_rule`): the value is shown with `{}`, so an
/// empty string (or unit) disappears: "rule gives string , not true or false".
#[test]
fn regression_rule_that_is_not_boolean_shows_an_empty_value() {
    check_rule("empty", &["error: line 1 (A → B): rule gives string \"\", not true or false"]);
}

#[test]
fn rule_calling_an_unknown_function_or_operator() {
    check_rule("foo(n)", &["error: line 1 (A → B): rule: line 1: Function not found: foo (i64)"]);
    check_rule(
        "name - 1 > 0",
        &["error: line 1 (A → B): rule: line 1: Function not found: - (&str | ImmutableString | String, i64)"],
    );
}

/// BUG (src/model/validate.rs, `check_lines`): the validator expects a comparison of
/// incompatible types to fail with "Function not found", but the script language
/// defines `>`, `<`, `>=`, `<=`, `==` between a string and a number as plain
/// `false` (and `!=` as `true`). So `name > 3` passes validation and silently never
/// fires at run time.
#[test]
fn regression_rule_comparing_incompatible_types() {
    check_rule("name > 3", &["error: line 1 (A → B): rule…"]);
    check_rule("n == \"3\"", &["error: line 1 (A → B): rule…"]);
}

#[test]
fn rule_failures_that_depend_on_values_are_left_to_run_time() {
    // n is 0 by default, so this divides by zero now, but not for every n.
    check_rule("10 / n > 1", &[]);
}

// ----- the graph: warnings -------------------------------------------------------------

#[test]
fn unreachable_activities_are_warnings() {
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "B"},
              {"id": "c", "name": "Orphan"},
              {"id": "d", "name": "Feeds B"}
            ],
            "lines": [{"from": "a", "to": "b"}, {"from": "d", "to": "b"}]}"#,
        &[
            "warning: activity `Orphan` (c): unreachable: no path of lines leads here from the start activity",
            "warning: activity `Feeds B` (d): unreachable: no path of lines leads here from the start activity",
        ],
    );
}

#[test]
fn all_join_with_a_conditional_incoming_line_is_a_warning() {
    let join = |rule: &str| {
        format!(
            r#"{{"name": "p",
                "fields": [{{"name": "n", "type": "integer"}}],
                "activities": [
                  {{"id": "a", "name": "A", "start": true}},
                  {{"id": "b", "name": "B"}},
                  {{"id": "c", "name": "C"}},
                  {{"id": "d", "name": "Join", "preceding_rule": "{rule}"}}
                ],
                "lines": [
                  {{"from": "a", "to": "b"}},
                  {{"from": "a", "to": "c"}},
                  {{"from": "b", "to": "d", "rule": "n > 0"}},
                  {{"from": "c", "to": "d"}}
                ]}}"#
        )
    };
    check(
        &join("All"),
        &[
            "warning: line 3 (B → Join): this line has a rule but `Join` waits for All incoming lines: if the rule is false the join waits forever",
        ],
    );
    // With Any every arriving line starts the activity: nothing to wait for.
    check(&join("Any"), &[]);
}

/// A loop that waits at a callback each round (an asynchronous event); one
/// with nothing to wait at is an error (see the end of this file).
#[test]
fn endless_unconditional_loop_is_a_warning() {
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "B"},
              {"id": "c", "name": "C", "events": [{"kind": "server_event", "name": "Wait", "synchronous": false}]}
            ],
            "lines": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}, {"from": "c", "to": "b"}]}"#,
        &["warning: activity `B` (b): endless loop: B, C follow each other round with no rule to stop them"],
    );
    // A single activity following itself. (The message says "A follow each other".)
    check(
        r#"{"name": "p", "activities": [{"id": "a", "name": "A", "start": true,
              "events": [{"kind": "server_event", "name": "Wait", "synchronous": false}]}],
            "lines": [{"from": "a", "to": "a"}]}"#,
        &["warning: activity `A` (a): endless loop: A…"],
    );
}

#[test]
fn loops_with_a_rule_are_fine() {
    check(
        r#"{"name": "p",
            "fields": [{"name": "tries", "type": "integer"}],
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "Try", "events": [{"kind": "server_event", "name": "count", "script": "tries += 1;"}]},
              {"id": "c", "name": "Done"}
            ],
            "lines": [
              {"from": "a", "to": "b"},
              {"from": "b", "to": "b", "rule": "tries < 3"},
              {"from": "b", "to": "c", "rule": "tries >= 3"}
            ]}"#,
        &[],
    );
}

/// BUG (src/model/validate.rs, `check_graph`): a loop is only reported when no line
/// leaves it, but every true line fires (parallel branches), so an exit line with no
/// rule or any rule does not stop an unconditional loop: B and C keep starting each
/// other forever. The engine indeed puts such an instance in Error after
/// `max_steps` ("ran 10000 steps without waiting for anything").
#[test]
fn regression_unconditional_loop_with_an_exit_line_is_still_endless() {
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "B"},
              {"id": "c", "name": "C"},
              {"id": "d", "name": "D"}
            ],
            "lines": [
              {"from": "a", "to": "b"},
              {"from": "b", "to": "c"},
              {"from": "c", "to": "b"},
              {"from": "c", "to": "d"}
            ]}"#,
        &["error: activity `B` (b): endless loop: B, C…"],
    );
}

/// BUG (src/model/validate.rs, `check_graph`): the loop check asks whether *all*
/// lines within a strongly connected group are unconditional. Here B ⇄ C loop with no
/// rule, but the group also holds C → D (with a rule) and D → B, so the endless B ⇄ C
/// loop goes unreported. The check should look for cycles made of unconditional lines.
#[test]
fn regression_unconditional_loop_inside_a_larger_conditional_one_is_endless() {
    check(
        r#"{"name": "p",
            "fields": [{"name": "n", "type": "integer"}],
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "B"},
              {"id": "c", "name": "C"},
              {"id": "d", "name": "D"}
            ],
            "lines": [
              {"from": "a", "to": "b"},
              {"from": "b", "to": "c"},
              {"from": "c", "to": "b"},
              {"from": "c", "to": "d", "rule": "n > 0"},
              {"from": "d", "to": "b"}
            ]}"#,
        &["error: activity `B` (b): endless loop: B, C…"],
    );
}

// ----- everything at once --------------------------------------------------------------

#[test]
fn every_problem_is_reported_at_once_errors_first() {
    check(
        r#"{
          "name": "",
          "fields": [
            {"name": "amount", "type": "money"},
            {"name": "n", "type": "integer", "default": "x"},
            {"name": "n", "type": "integer"},
            {"name": "folio", "type": "string"}
          ],
          "activities": [
            {"id": "a", "name": "Start", "start": true, "events": [
              {"kind": "server_event", "name": "e", "script": "let x = ;"},
              {"kind": "server_event", "name": "e", "script": "nn = 1;"}
            ]},
            {"id": "b", "name": "Loop 1"},
            {"id": "c", "name": "Loop 2"},
            {"id": "c", "name": "Lonely"},
            {"id": "j", "name": "Join", "preceding_rule": "All"}
          ],
          "lines": [
            {"from": "a", "to": "b", "rule": "n + 1"},
            {"from": "b", "to": "c"},
            {"from": "c", "to": "b"},
            {"from": "a", "to": "missing"},
            {"from": "a", "to": "j", "rule": "n > 0"},
            {"from": "a", "to": "j"}
          ]
        }"#,
        &[
            "error: process: the process has no name",
            "error: field `amount`: unknown field type `money` (expected string, integer, decimal, boolean, date or datetime)",
            "error: field `n`: default value: expected integer, got \"x\"",
            "error: field `n`: duplicate field name `n`",
            "error: field `folio`: `folio` is a reserved name in scripts",
            "error: activity `Start`, event 1 `e`: script: line 1, column 9: Unexpected ';'",
            "error: activity `Start`, event 2 `e`: duplicate event name `e` in this activity",
            "error: activity `Start`, event 2 `e`: script: line 1, column 1: Undefined variable: nn",
            "error: activity `Lonely` (c): duplicate activity id `c`",
            "error: line 1 (Start → Loop 1): rule gives integer 1, not true or false",
            "error: line 4 (Start → missing): goes to `missing`, which is not an activity",
            "error: activity `Loop 1` (b): endless loop: Loop 1, Loop 2 follow each other round with no rule to stop them and nothing to wait at (no asynchronous event)",
            "warning: activity `Lonely` (c): unreachable: no path of lines leads here from the start activity",
            "warning: line 5 (Start → Join): this line has a rule but `Join` waits for All incoming lines: if the rule is false the join waits forever",
        ],
    );
}

// ----- reading the file ------------------------------------------------------------------

fn load_error(json: &str) -> LoadError {
    match ProcessDraft::from_json(json, "bad.process.json") {
        Ok(draft) => panic!("loaded: {draft:?}"),
        Err(err) => err,
    }
}

#[test]
fn malformed_json_names_line_and_column() {
    let err = load_error("{\n  \"name\": \"p\"\n  \"activities\": []\n}\n");
    match &err {
        LoadError::Syntax { origin, line, column, message } => {
            assert_eq!(origin, "bad.process.json");
            assert_eq!((*line, *column), (3, 3));
            assert_eq!(message, "expected `,` or `}`");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.to_string(), "bad.process.json: line 3, column 3: expected `,` or `}`");

    assert_eq!(load_error("{\"name\": \"p\",}").to_string(), "bad.process.json: line 1, column 14: trailing comma");
    assert_eq!(
        load_error("{\n  \"name\": \"p\",\n  \"activities\": [\n").to_string(),
        "bad.process.json: line 4, column 0: EOF while parsing a list"
    );
}

#[test]
fn unknown_key_in_an_event_is_reported() {
    let err = load_error(
        "{\n  \"name\": \"p\",\n  \"activities\": [\n    {\n      \"id\": \"a\",\n      \"name\": \"A\",\n      \"start\": true,\n      \"events\": [\n        { \"kind\": \"server_event\", \"name\": \"e\", \"synchronus\": false }\n      ]\n    }\n  ]\n}\n",
    );
    let LoadError::Syntax { origin, line, column, message } = &err else { panic!("{err:?}") };
    assert_eq!(origin, "bad.process.json");
    assert_eq!(message, "unknown field `synchronus`, expected one of `name`, `synchronous`, `script`");
    // serde reports an error inside an event (a tagged enum) only once the
    // enclosing list is read, so the line is that of the list's end, not of the key.
    assert!((9..=10).contains(line) && *column > 0, "line {line}, column {column}");
    assert!(
        err.to_string()
            .starts_with(&format!("bad.process.json: line {line}, column {column}: unknown field `synchronus`"))
    );
}

#[test]
fn unknown_keys_and_values_elsewhere_are_reported() {
    let cases = [
        (r#"{"name": "p", "activites": []}"#, "unknown field `activites`"),
        (r#"{"name": "p", "fields": [{"name": "x", "type": "string", "defualt": 1}]}"#, "unknown field `defualt`"),
        (r#"{"name": "p", "activities": [{"id": "a", "name": "A", "strat": true}]}"#, "unknown field `strat`"),
        (
            r#"{"name": "p", "activities": [{"id": "a", "name": "A", "preceding_rule": "all"}]}"#,
            "unknown variant `all`, expected `Any` or `All`",
        ),
        (
            r#"{"name": "p", "activities": [{"id": "a", "name": "A", "events": [{"kind": "mail_event", "name": "e"}]}]}"#,
            "unknown variant `mail_event`, expected one of `server_event`, `http_request`, `timer`",
        ),
        (
            r#"{"name": "p", "activities": [{"id": "a", "name": "A", "events": [{"name": "e"}]}]}"#,
            "missing field `kind`",
        ),
        (r#"{"name": "p", "lines": [{"from": "a", "to": "b", "rules": "x"}]}"#, "unknown field `rules`"),
        (r#"{"fields": []}"#, "missing field `name`"),
    ];
    for (json, expected) in cases {
        let err = load_error(json);
        let LoadError::Syntax { line, message, .. } = &err else { panic!("{err:?}") };
        assert_eq!(*line, 1, "{json}");
        assert!(message.contains(expected), "{json}: {message}");
        assert!(err.to_string().starts_with("bad.process.json: line 1, column "), "{err}");
    }
}

#[test]
fn loading_a_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.process.json");
    let err = ProcessDraft::load(&path).unwrap_err();
    assert!(matches!(err, LoadError::Read { .. }), "{err:?}");
    assert!(err.to_string().starts_with(&format!("cannot read {}: ", path.display())), "{err}");
}

// ----- HTTP request events ---------------------------------------------------------

/// A process whose start activity holds one HTTP request event made of
/// `properties` (JSON object members besides `kind` and `name`), with the
/// data fields `name` (string) and `n` (integer).
fn http_event(properties: &str) -> String {
    format!(
        r#"{{"name": "p",
            "fields": [{{"name": "name", "type": "string"}}, {{"name": "n", "type": "integer"}}],
            "activities": [{{"id": "a", "name": "A", "start": true, "events": [
              {{"kind": "http_request", "name": "Notify", {properties}}}
            ]}}]}}"#
    )
}

#[test]
fn a_correct_http_request_event_has_no_problems() {
    for properties in [
        r#""url": "http://127.0.0.1:9000/jobs/${instance_id}?n=${n}""#,
        r#""url": "https://example.com/x", "method": "put", "synchronous": false, "timeout_seconds": 300,
           "headers": [{"name": "Authorization", "value": "Bearer abc"}, {"name": "X-Folio", "value": "${folio}"}],
           "body": "{\"serial\": ${serial}, \"name\": ${name}, \"text\": \"${activity}/${event}: ${name}\", \"n\": ${n}}""#,
        r#""url": "http://h/", "method": "DELETE", "body": "[\"$${not a placeholder}\"]", "timeout_seconds": 1"#,
    ] {
        check(&http_event(properties), &[]);
    }
}

#[test]
fn a_synchronous_http_request_has_no_serial_to_send() {
    check(
        &http_event(r#""url": "http://h/${serial}", "body": "{\"s\": ${serial}}""#),
        &[
            "warning: activity `A`, event 1 `Notify`: a synchronous event has no server item: `${serial}` is empty (null in the body); make the event asynchronous to hand out a serial",
        ],
    );
}

#[test]
fn http_request_method_must_be_a_known_one() {
    check(
        &http_event(r#""url": "http://h/", "method": "FETCH""#),
        &["error: activity `A`, event 1 `Notify`: method `FETCH` is not one of GET, POST, PUT, PATCH or DELETE"],
    );
}

#[test]
fn http_request_url_must_be_absolute_http() {
    let cases = [
        (r#""url": """#, "the URL is empty"),
        (r#""method": "GET""#, "the URL is empty"),
        (
            r#""url": "/jobs/${n}""#,
            "the URL `/jobs/0` is not valid once filled in: it is not absolute: write http://host/… or https://host/…",
        ),
        (r#""url": "ftp://h/x""#, "the URL `ftp://h/x` is not valid once filled in: scheme `ftp` is not http or https"),
        (r#""url": "http://h/a b""#, "the URL `http://h/a b` is not valid once filled in: …"),
        (r#""url": "http://h/${serial""#, "URL: `${` at character 10 has no closing `}`"),
    ];
    for (properties, message) in cases {
        check(&http_event(properties), &[&format!("error: activity `A`, event 1 `Notify`: {message}")]);
    }
}

#[test]
fn http_request_unknown_placeholders_are_named() {
    check(
        &http_event(
            r#""url": "http://h/${nmae}", "headers": [{"name": "X-A", "value": "${nope}"}],
               "body": "{\"a\": ${nope}, \"b\": \"${typo} ${nope}\", \"c\": ${n}}""#,
        ),
        &[
            "error: activity `A`, event 1 `Notify`: URL: unknown placeholder `${nmae}`: is neither a data field nor one of serial, instance_id, folio, activity, event",
            "error: activity `A`, event 1 `Notify`: header `X-A`: unknown placeholder `${nope}`: is neither a data field nor one of serial, instance_id, folio, activity, event",
            "error: activity `A`, event 1 `Notify`: body: unknown placeholders `${nope}`, `${typo}`: are neither a data field nor one of serial, instance_id, folio, activity, event",
        ],
    );
}

#[test]
fn http_request_body_must_be_json_once_filled() {
    check(
        &http_event(r#""url": "http://h/", "body": "{\n  \"folio\": ${folio},\n  \"name\": ${name}\n  \"n\": 1\n}""#),
        &[
            "error: activity `A`, event 1 `Notify`: the body is not valid JSON once filled in: expected `,` or `}` at line 4, column 3",
        ],
    );
    // A placeholder inside a string is text: quoting it again breaks the JSON.
    check(
        &http_event(r#""url": "http://h/", "body": "{\"name\": \"\"${name}\"\"}""#),
        &["error: activity `A`, event 1 `Notify`: the body is not valid JSON once filled in: …"],
    );
    check(
        &http_event(r#""url": "http://h/", "method": "GET", "body": "{}""#),
        &[
            "error: activity `A`, event 1 `Notify`: a GET request sends no body: use POST, PUT or PATCH, or empty the body",
        ],
    );
}

#[test]
fn http_request_headers_need_valid_names_and_values() {
    check(
        &http_event(
            r#""url": "http://h/", "headers": [{"name": "", "value": "x"}, {"name": "X Bad", "value": "x"},
               {"name": "X-Ok", "value": "line\nbreak"}]"#,
        ),
        &[
            "error: activity `A`, event 1 `Notify`: header 1 has no name",
            "error: activity `A`, event 1 `Notify`: header name `X Bad` is not valid: letters, digits and !#$%&'*+-.^_`|~ only",
        ],
    );
    check(
        &http_event(r#""url": "http://h/", "headers": [{"name": "X-Ok", "value": "line\nbreak"}]"#),
        &[
            "error: activity `A`, event 1 `Notify`: header `x-ok` cannot be sent: its value holds a line break or another control character",
        ],
    );
}

#[test]
fn http_request_timeout_is_between_1_and_300_seconds() {
    for timeout in [0, 301] {
        check(
            &http_event(&format!(r#""url": "http://h/", "timeout_seconds": {timeout}"#)),
            &[&format!(
                "error: activity `A`, event 1 `Notify`: timeout of {timeout} s is out of range: from 1 to 300 seconds"
            )],
        );
    }
}

#[test]
fn http_request_unknown_properties_are_refused() {
    let err = load_error(
        r#"{"name": "p", "activities": [{"id": "a", "name": "A", "events": [{"kind": "http_request", "name": "e", "uri": "x"}]}]}"#,
    );
    assert!(err.to_string().contains("unknown field `uri`"), "{err}");
}

#[test]
fn http_request_problems_found_by_filling_are_all_listed() {
    check(
        &http_event(
            r#""url": "ftp://h/", "headers": [{"name": "X-A", "value": "a\rb"}], "body": "{\"a\": ${n} ${n}}""#,
        ),
        &[
            "error: activity `A`, event 1 `Notify`: the URL `ftp://h/` is not valid once filled in: scheme `ftp` is not http or https",
            "error: activity `A`, event 1 `Notify`: header `x-a` cannot be sent: its value holds a line break or another control character",
            "error: activity `A`, event 1 `Notify`: the body is not valid JSON once filled in: expected `,` or `}` at line 1, column 9",
        ],
    );
}

// ----- default values: the forms each type takes (issue 15) -----------------------

/// A default in a process file is a JSON value of the field's type or text
/// read as a person types it; before, dates took `2026-1-1`, `-0001-01-01`
/// and `+99999-01-01`, a decimal with 29 places became 0, and a string
/// held NUL.
#[test]
fn default_values_are_refused_in_forms_no_front_end_takes() {
    check(
        r#"{"name": "p",
            "fields": [
              {"name": "a", "type": "date", "default": "2026-1-1"},
              {"name": "b", "type": "date", "default": "-0001-01-01"},
              {"name": "c", "type": "date", "default": "+99999-01-01"},
              {"name": "d", "type": "date", "default": "99999-01-01"},
              {"name": "e", "type": "decimal", "default": "0.00000000000000000000000000001"},
              {"name": "f", "type": "decimal", "default": "1_000"},
              {"name": "g", "type": "integer", "default": "+5"},
              {"name": "h", "type": "string", "default": "a\u0000b"}
            ],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &[
            "error: field `a`: default value: expected date, got \"2026-1-1\"…",
            "error: field `b`: default value: expected date, got \"-0001-01-01\"…",
            "error: field `c`: default value: expected date, got \"+99999-01-01\"…",
            "error: field `d`: default value: expected date, got \"99999-01-01\"…",
            "error: field `e`: default value: expected decimal, got \"0.00000000000000000000000000001\" (more than 28 decimal places)",
            "error: field `f`: default value: expected decimal, got \"1_000\"…",
            "error: field `g`: default value: expected integer, got \"+5\"…",
            "error: field `h`: default value: expected string, got \"a\\0b\" (it holds a NUL character)",
        ],
    );
}

// ----- issue 15: loops with nothing to wait at, scripts' time limit -----------------------

/// Issue 15's process: one activity whose event leads back to it by a line
/// with `rule` (`""` for none). Every true line fires, so without a rule the
/// loop goes round for ever; with nothing asynchronous in it, it does not
/// even wait between rounds (an instance runs until the step guard stops it),
/// which is an error. A loop that waits at a callback each round is only
/// suspicious; one with a rule is left to the rule.
fn request_loop(synchronous: bool, rule: &str) -> String {
    format!(
        r#"{{"name": "p",
            "activities": [{{"id": "a", "name": "Poll", "start": true, "events": [
              {{"kind": "http_request", "name": "Ask", "method": "GET", "url": "http://example.test/", "synchronous": {synchronous}}}
            ]}}],
            "lines": [{{"from": "a", "to": "a", "rule": "{rule}"}}]}}"#
    )
}

#[test]
fn an_unconditional_loop_with_nothing_to_wait_at_is_an_error_and_one_that_waits_a_warning() {
    check(
        &request_loop(true, ""),
        &[
            "error: activity `Poll` (a): endless loop: Poll leads back to itself with no rule to stop it and nothing to wait at (no asynchronous event)",
        ],
    );
    check(
        &request_loop(false, ""),
        &["warning: activity `Poll` (a): endless loop: Poll leads back to itself with no rule to stop it"],
    );
    check(&request_loop(true, "true"), &[]);
}

/// B ⇄ C never wait, though the larger loop through D does: B ⇄ C alone is
/// reported, as an error.
#[test]
fn a_loop_that_never_waits_inside_one_that_does_is_an_error() {
    check(
        r#"{"name": "p",
            "activities": [
              {"id": "a", "name": "A", "start": true},
              {"id": "b", "name": "B"},
              {"id": "c", "name": "C"},
              {"id": "d", "name": "D", "events": [{"kind": "server_event", "name": "Wait", "synchronous": false}]}
            ],
            "lines": [
              {"from": "a", "to": "b"},
              {"from": "b", "to": "c"},
              {"from": "c", "to": "b"},
              {"from": "c", "to": "d"},
              {"from": "d", "to": "b"}
            ]}"#,
        &[
            "error: activity `B` (b): endless loop: B, C follow each other round with no rule to stop them and nothing to wait at (no asynchronous event)",
        ],
    );
}

/// Earlier versions' designer wrote a decimal default as a JSON number,
/// in exponent form when it was very small or large (`1e-5`, `1e+20`);
/// such files, and the definitions deployed from them, still read.
#[test]
fn decimal_defaults_written_as_numbers_by_earlier_versions_still_read() {
    check(
        r#"{"name": "p",
            "fields": [
              {"name": "a", "type": "decimal", "default": 12.5},
              {"name": "b", "type": "decimal", "default": 1e-5},
              {"name": "c", "type": "decimal", "default": 1e+20},
              {"name": "d", "type": "decimal", "default": 7},
              {"name": "e", "type": "decimal", "default": -0.25}
            ],
            "activities": [{"id": "a", "name": "A", "start": true}]}"#,
        &[],
    );
}

#[test]
fn a_script_time_limit_out_of_range_is_an_error() {
    let with = |limit: u64| {
        format!(
            r#"{{"name": "p", "script_time_limit_ms": {limit}, "activities": [{{"id": "a", "name": "A", "start": true}}]}}"#
        )
    };
    check(&with(0), &["error: process: script time limit of 0 ms is out of range: from 1 to 10000 ms"]);
    check(&with(10_001), &["error: process: script time limit of 10001 ms is out of range: from 1 to 10000 ms"]);
    check(&with(1), &[]);
    check(&with(10_000), &[]);
}

// ----- numbers the store can keep, duplicate lines, size limits (issue 15) ---------

/// A process of one start activity at `position` (JSON), so that only the
/// position can be wrong.
fn at_position(position: &str) -> String {
    format!(r#"{{"name": "p", "activities": [{{"id": "a", "name": "A", "start": true, "position": {position}}}]}}"#)
}

/// Regression (issue 15, point 11): `1e39` is beyond `f32` and was read as
/// infinity (now refused as the file is read), passed validation and deploy, and was stored as `null`, after
/// which no instance of the version could start.
#[test]
fn regression_positions_must_be_finite_and_on_the_canvas() {
    // Beyond what a coordinate can hold: refused as the file is read, with
    // its place.
    for position in [r#"{"x": 1e39, "y": 0}"#, r#"{"x": 0, "y": -1e39}"#] {
        let LoadError::Syntax { line, message, .. } = load_error(&at_position(position)) else {
            panic!("{position} was not refused as the file was read")
        };
        assert_eq!((line, message.as_str()), (1, "number out of range"), "{position}");
    }
    for (position, shown) in
        [(r#"{"x": 1000001, "y": 5}"#, "(1000001, 5)"), (r#"{"x": 0, "y": -2e6}"#, "(0, -2000000)")]
    {
        check(
            &at_position(position),
            &[&format!(
                "error: activity `A` (a): position {shown} is off the canvas: each coordinate must be between -1000000 and 1000000"
            )],
        );
    }
    for position in [r#"{"x": 1e6, "y": -1e6}"#, r#"{"x": -0.5, "y": 1e-39}"#] {
        check(&at_position(position), &[]);
    }
}

/// Regression (issue 15, point 12): the same line many times over passed
/// with no problem, and one start then recorded every copy.
#[test]
fn regression_duplicate_lines_are_errors() {
    check(
        r#"{"name": "p",
            "fields": [{"name": "n", "type": "integer"}],
            "activities": [
              {"id": "a", "name": "A", "start": true}, {"id": "b", "name": "B"}
            ],
            "lines": [
              {"from": "a", "to": "b"},
              {"from": "a", "to": "b", "rule": "n > 1"},
              {"from": "a", "to": "b", "label": "again"},
              {"from": "a", "to": "b", "rule": " n > 1 "},
              {"from": "b", "to": "a", "rule": "n > 1"},
              {"from": "a", "to": "b"}
            ]
        }"#,
        &[
            "error: line 3 (A → B): the same line as line 1: same start, end and rule",
            "error: line 4 (A → B): the same line as line 2: same start, end and rule",
            "error: line 6 (A → B): the same line as line 1: same start, end and rule",
        ],
    );
}

/// `count` activities in a row, the first the start, each with a line to the next.
fn chain(count: usize) -> String {
    let activities: Vec<String> =
        (0..count).map(|i| format!(r#"{{"id": "a{i}", "name": "A{i}", "start": {}}}"#, i == 0)).collect();
    let lines: Vec<String> = (1..count).map(|i| format!(r#"{{"from": "a{}", "to": "a{i}"}}"#, i - 1)).collect();
    format!(r#"{{"name": "p", "activities": [{}], "lines": [{}]}}"#, activities.join(","), lines.join(","))
}

#[test]
fn a_process_may_hold_at_most_1000_activities_and_2000_lines() {
    use flowdesk::model::definition::limits;
    assert_eq!((limits::ACTIVITIES, limits::LINES), (1_000, 2_000));
    check(&chain(1_000), &[]);
    check(&chain(1_001), &["error: process: the process has 1001 activities; at most 1000 are allowed"]);

    // Two lines from every activity to the next but one, with different rules.
    let mut draft = ProcessDraft::from_json(&chain(1_000), "t").unwrap();
    let mut extra = Vec::new();
    for i in 0..1_000 {
        for rule in ["true", "!false"] {
            extra.push(flowdesk::model::LineDraft {
                from: format!("a{i}"),
                to: format!("a{}", (i + 2) % 1_000),
                label: String::new(),
                rule: rule.to_owned(),
            });
        }
    }
    draft.lines.extend(extra.into_iter().take(2_001 - draft.lines.len()));
    assert_eq!(draft.lines.len(), 2_001);
    let problems: Vec<String> = validate(&draft, &ScriptHost::default()).iter().map(ToString::to_string).collect();
    assert_eq!(
        problems.first().map(String::as_str),
        Some("error: process: the process has 2001 lines; at most 2000 are allowed")
    );
}

#[test]
fn a_process_may_hold_at_most_200_fields_and_50_events_per_activity() {
    let fields: Vec<String> = (0..201).map(|i| format!(r#"{{"name": "f{i}", "type": "integer"}}"#)).collect();
    check(
        &format!(
            r#"{{"name": "p", "fields": [{}], "activities": [{{"id": "a", "name": "A", "start": true}}]}}"#,
            fields.join(",")
        ),
        &["error: process: the process has 201 fields; at most 200 are allowed"],
    );
    let events = |n: usize| -> String {
        let events: Vec<String> = (0..n).map(|i| format!(r#"{{"kind": "server_event", "name": "e{i}"}}"#)).collect();
        format!(
            r#"{{"name": "p", "activities": [{{"id": "a", "name": "A", "start": true, "events": [{}]}}]}}"#,
            events.join(",")
        )
    };
    check(&events(50), &[]);
    check(&events(51), &["error: activity `A` (a): the activity has 51 events; at most 50 are allowed"]);
}

/// Regression: an activity could hold any number of escalations (tens of
/// thousands fit in a process file), each armed as a timer for every wait
/// of the activity.
#[test]
fn an_activity_may_hold_at_most_50_escalations() {
    let escalations = |n: usize| -> String {
        let escalations: Vec<String> =
            (0..n).map(|i| format!(r#"{{"name": "e{i}", "after": "{}m", "action": "fail"}}"#, i + 1)).collect();
        format!(
            r#"{{"name": "p", "activities": [{{"id": "a", "name": "A", "start": true,
                 "events": [{{"kind": "timer", "name": "Wait", "after": "1d"}}],
                 "escalations": [{}]}}]}}"#,
            escalations.join(",")
        )
    };
    check(&escalations(50), &[]);
    check(&escalations(51), &["error: activity `A` (a): the activity has 51 escalations; at most 50 are allowed"]);
}

#[test]
fn scripts_and_rules_may_be_at_most_64_kib() {
    // A comment keeps the script valid whatever its length.
    let script = |bytes: usize| format!("//{}", "x".repeat(bytes - 2));
    let with_script = |bytes: usize| {
        format!(
            r#"{{"name": "p", "activities": [{{"id": "a", "name": "A", "start": true,
                 "events": [{{"kind": "server_event", "name": "e", "script": "{}"}}]}}]}}"#,
            script(bytes)
        )
    };
    check(&with_script(65_536), &[]);
    check(
        &with_script(65_537),
        &["error: activity `A`, event 1 `e`: the script is 65537 bytes long; at most 65536 are allowed"],
    );
    let rule = format!("true {}", " ".repeat(65_537 - 5));
    check(
        &format!(
            r#"{{"name": "p", "activities": [{{"id": "a", "name": "A", "start": true}}, {{"id": "b", "name": "B"}}],
                 "lines": [{{"from": "a", "to": "b", "rule": "{rule}"}}]}}"#
        ),
        &["error: line 1 (A → B): the rule is 65537 bytes long; at most 65536 are allowed"],
    );
}

/// What is deployed is the file as the designer saves it: that form must
/// stay within the size a process file may have, or it could not be read
/// back as a file.
#[test]
fn a_process_may_be_at_most_2_mib_as_saved() {
    use flowdesk::model::definition::limits;
    assert_eq!(limits::FILE_BYTES, 2 * 1024 * 1024);
    // 40 events per activity of 60 KiB of comment each: within every other limit.
    let mut draft = ProcessDraft::from_json(&chain(2), "t").unwrap();
    for activity in &mut draft.activities {
        for i in 0..20 {
            activity.events.push(flowdesk::model::EventDraft::ServerEvent(flowdesk::model::ServerEventDraft {
                name: format!("e{i}"),
                synchronous: true,
                script: format!("//{}", "x".repeat(60 * 1024)),
            }));
        }
    }
    let saved = draft.to_json().len();
    assert!(saved > limits::FILE_BYTES, "{saved}");
    let problems: Vec<String> = validate(&draft, &ScriptHost::default()).iter().map(ToString::to_string).collect();
    assert_eq!(
        problems,
        [format!("error: process: the process is {} KiB as saved; at most 2048 KiB are allowed", saved.div_ceil(1024))]
    );
}

#[test]
fn reading_a_process_file_larger_than_2_mib_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.process.json");
    // Not even JSON: the size alone refuses it.
    std::fs::write(&path, vec![b' '; 2 * 1024 * 1024 + 1]).unwrap();
    let err = ProcessDraft::load(&path).unwrap_err();
    assert_eq!(err.to_string(), format!("{} is larger than the 2048 KiB a process file may be", path.display()));
    std::fs::write(&path, format!("{}{}", chain(2), " ".repeat(2 * 1024 * 1024 - chain(2).len()))).unwrap();
    assert!(ProcessDraft::load(&path).is_ok());
}

#[test]
fn names_and_ids_may_be_at_most_200_characters() {
    let long = "é".repeat(201);
    let fine = "é".repeat(200);
    check(
        &format!(
            r#"{{"name": "{fine}", "fields": [{{"name": "{long_field}", "type": "integer"}}],
                 "activities": [{{"id": "{long}", "name": "{long}", "start": true,
                                  "events": [{{"kind": "server_event", "name": "{long}"}}]}}]}}"#,
            long_field = "f".repeat(201)
        ),
        &[
            &format!("error: field `{}`: the name is 201 characters long; at most 200 are allowed", "f".repeat(201)),
            &format!("error: activity `{long}` ({long}): the id is 201 characters long; at most 200 are allowed"),
            &format!("error: activity `{long}` ({long}): the name is 201 characters long; at most 200 are allowed"),
            &format!(
                "error: activity `{long}`, event 1 `{long}`: the name is 201 characters long; at most 200 are allowed"
            ),
        ],
    );
    check(
        &format!(r#"{{"name": "{long}", "activities": [{{"id": "a", "name": "A", "start": true}}]}}"#),
        &["error: process: the process name is 201 characters long; at most 200 are allowed"],
    );
}

// ----- deadlines: timers, escalations, the time zone (issue 17) --------------------

/// A process whose start activity `call` waits at an asynchronous server
/// event and holds `escalations` (a JSON list), followed by `done`; its
/// fields: `name` (string), `n` (integer), `reply_by` (datetime) and
/// `book_on` (date). An extra member of the process may be given in `extra`.
fn escalations(escalations: &str, extra: &str) -> String {
    format!(
        r#"{{"name": "p", {extra}
            "fields": [{{"name": "name", "type": "string"}}, {{"name": "n", "type": "integer"}},
                       {{"name": "reply_by", "type": "datetime"}}, {{"name": "book_on", "type": "date"}}],
            "activities": [
              {{"id": "call", "name": "Call", "start": true,
                "events": [{{"kind": "server_event", "name": "Send", "synchronous": false}}],
                "escalations": {escalations}}},
              {{"id": "done", "name": "Done"}}
            ],
            "lines": [{{"from": "call", "to": "done"}}]}}"#
    )
}

#[test]
fn a_process_with_every_kind_of_escalation_and_a_timer_has_no_problems() {
    check(
        &escalations(
            r#"[
              {"name": "Chase up", "after": "1h", "action": {"notify": {"url": "http://example.test/chase/${serial}", "body": "{\"serial\": ${serial}, \"n\": ${n}}"}}},
              {"name": "Give up", "after": "PT3H", "action": {"finish": {"set": {"name": "timed out", "n": 3, "reply_by": "2026-12-06T10:00"}}}},
              {"name": "Again", "after": "1h 30m", "action": {"repeat": {"times": 3}}},
              {"name": "Hand over", "at_field": "reply_by", "action": {"go_to": {"activity": "done"}}},
              {"name": "By the day", "at_field": "book_on", "action": "fail"}
            ]"#,
            r#""time_zone": "Europe/London","#,
        ),
        &[],
    );
    check(
        r#"{"name": "p", "activities": [
             {"id": "a", "name": "A", "start": true, "events": [{"kind": "timer", "name": "Wait", "after": "2h"}],
              "escalations": [{"name": "Late", "after": "3h", "action": "fail"}]}]}"#,
        &[],
    );
}

#[test]
fn an_unknown_time_zone_is_an_error() {
    check(
        &escalations("[]", r#""time_zone": "Europe/Londres","#),
        &[
            "error: process: unknown time zone `Europe/Londres`: write an IANA name such as Europe/London, America/New_York or UTC",
        ],
    );
}

#[test]
fn an_escalation_says_when_exactly_once() {
    check(
        &escalations(
            r#"[{"name": "Never", "action": "fail"},
                {"name": "Twice", "after": "1h", "at_field": "reply_by", "action": "fail"}]"#,
            "",
        ),
        &[
            "error: activity `Call`, escalation 1 `Never`: say when: `after` a duration (such as 1h) or `at_field` a date or datetime field",
            "error: activity `Call`, escalation 2 `Twice`: write either `after` or `at_field`, not both",
        ],
    );
}

#[test]
fn a_duration_must_parse_and_be_longer_than_zero() {
    check(
        &escalations(
            r#"[{"name": "Soon", "after": "soon", "action": "fail"},
                {"name": "Zero", "after": "0m", "action": "fail"},
                {"name": "Past", "after": "-2h", "action": "fail"},
                {"name": "Iso zero", "after": "PT0S", "action": "fail"}]"#,
            "",
        ),
        &[
            "error: activity `Call`, escalation 1 `Soon`: after: `soon` is not a duration: write one such as 30m, 2h, 3d, 1h 30m or PT2H",
            "error: activity `Call`, escalation 2 `Zero`: after: `0m` is not longer than zero",
            "error: activity `Call`, escalation 3 `Past`: after: `-2h` is not longer than zero",
            "error: activity `Call`, escalation 4 `Iso zero`: after: `PT0S` is not longer than zero",
        ],
    );
}

#[test]
fn at_field_names_a_date_or_datetime_field() {
    check(
        &escalations(
            r#"[{"name": "Typo", "at_field": "reply_bye", "action": "fail"},
                {"name": "Count", "at_field": "n", "action": "fail"},
                {"name": "Day", "at_field": "book_on", "action": "fail"}]"#,
            "",
        ),
        &[
            "error: activity `Call`, escalation 1 `Typo`: at_field: `reply_bye` is not a data field",
            "error: activity `Call`, escalation 2 `Count`: at_field: `n` is an integer field; it must be a date or datetime field",
        ],
    );
}

#[test]
fn go_to_names_an_activity() {
    check(
        &escalations(
            r#"[{"name": "Nowhere", "after": "1h", "action": {"go_to": {"activity": "manual"}}},
                {"name": "Blank", "after": "2h", "action": {"go_to": {"activity": ""}}}]"#,
            "",
        ),
        &[
            "error: activity `Call`, escalation 1 `Nowhere`: go to: `manual` is not an activity",
            "error: activity `Call`, escalation 2 `Blank`: go to: no activity: name the activity to go to",
        ],
    );
}

/// An activity only an escalation goes to is reachable (the hand-over to a
/// person); a go-to from an activity no run reaches never runs.
#[test]
fn go_to_an_activity_no_run_reaches_is_a_warning() {
    check(
        r#"{"name": "p", "activities": [
             {"id": "call", "name": "Call", "start": true,
              "events": [{"kind": "server_event", "name": "Send", "synchronous": false}],
              "escalations": [{"name": "Hand over", "after": "1h", "action": {"go_to": {"activity": "manual"}}}]},
             {"id": "manual", "name": "Manual"},
             {"id": "orphan", "name": "Orphan",
              "events": [{"kind": "timer", "name": "Wait", "after": "1h"}],
              "escalations": [{"name": "Nowhere", "after": "2h", "action": {"go_to": {"activity": "lost"}}}]},
             {"id": "lost", "name": "Lost"}]}"#,
        &[
            "warning: activity `Orphan` (orphan): unreachable: no path of lines leads here from the start activity",
            "warning: activity `Lost` (lost): unreachable: no path of lines leads here from the start activity",
            "warning: activity `Orphan`, escalation 1 `Nowhere`: go to: `Lost` cannot be reached from the start activity, so this escalation never runs",
        ],
    );
}

#[test]
fn repeat_needs_a_limit() {
    check(
        &escalations(
            r#"[{"name": "Forever", "after": "10m", "action": {"repeat": {}}},
                {"name": "Never", "after": "10m", "action": {"repeat": {"times": 0}}}]"#,
            "",
        ),
        &[
            "error: activity `Call`, escalation 1 `Forever`: repeat without a limit: write `times`, how often at most",
            "error: activity `Call`, escalation 2 `Never`: repeat 0 times does nothing: `times` must be 1 or more",
        ],
    );
}

#[test]
fn finish_sets_known_fields_with_values_of_their_type() {
    check(
        &escalations(
            r#"[{"name": "Give up", "after": "3h",
                 "action": {"finish": {"set": {"nmae": "timed out", "n": "three", "reply_by": "tomorrow"}}}}]"#,
            "",
        ),
        &[
            // In the order of the field names (a finish's values are a map).
            r#"error: activity `Call`, escalation 1 `Give up`: finish: `n`: expected integer, got "three""#,
            "error: activity `Call`, escalation 1 `Give up`: finish: sets `nmae`, which is not a data field",
            r#"error: activity `Call`, escalation 1 `Give up`: finish: `reply_by`: expected datetime, got "tomorrow""#,
        ],
    );
}

#[test]
fn a_notify_request_is_checked_as_a_request_event_is() {
    check(
        &escalations(
            r#"[{"name": "Chase up", "after": "1h",
                 "action": {"notify": {"method": "SEND", "url": "http://h/${nmae}", "timeout_seconds": 0}}}]"#,
            "",
        ),
        &[
            "error: activity `Call`, escalation 1 `Chase up`: notify: method `SEND` is not one of GET, POST, PUT, PATCH or DELETE",
            "error: activity `Call`, escalation 1 `Chase up`: notify: timeout of 0 s is out of range: from 1 to 300 seconds",
            "error: activity `Call`, escalation 1 `Chase up`: notify: URL: unknown placeholder `${nmae}`: is neither a data field nor one of serial, instance_id, folio, activity, event",
        ],
    );
    check(
        &escalations(r#"[{"name": "Chase up", "after": "1h", "action": {"notify": {}}}]"#, ""),
        &["error: activity `Call`, escalation 1 `Chase up`: notify: the URL is empty"],
    );
}

#[test]
fn escalations_where_nothing_waits_are_a_warning() {
    check(
        r#"{"name": "p", "activities": [
             {"id": "a", "name": "A", "start": true,
              "events": [{"kind": "server_event", "name": "Quick"}],
              "escalations": [{"name": "Late", "after": "1h", "action": "fail"}]}]}"#,
        &[
            "warning: activity `A` (a): the activity has escalations but nothing in it waits (no asynchronous event or timer): they can never fire",
        ],
    );
}

#[test]
fn escalations_need_distinct_names() {
    check(
        &escalations(
            r#"[{"after": "1h", "action": "fail"},
                {"name": "Late", "after": "1h", "action": "fail"},
                {"name": "Late", "after": "2h", "action": "fail"}]"#,
            "",
        ),
        &[
            "error: activity `Call`, escalation 1 ``: the escalation has no name",
            "error: activity `Call`, escalation 3 `Late`: duplicate escalation name `Late` in this activity",
        ],
    );
}

#[test]
fn a_timer_event_with_a_bad_due_is_an_error() {
    check(
        r#"{"name": "p", "fields": [{"name": "n", "type": "integer"}], "activities": [
             {"id": "a", "name": "A", "start": true, "events": [
               {"kind": "timer", "name": "Never"},
               {"kind": "timer", "name": "Zero", "after": "0s"},
               {"kind": "timer", "name": "Count", "at_field": "n"},
               {"kind": "timer", "name": "Both", "after": "1h", "at_field": "n"}]}]}"#,
        &[
            "error: activity `A`, event 1 `Never`: say when: `after` a duration (such as 1h) or `at_field` a date or datetime field",
            "error: activity `A`, event 2 `Zero`: after: `0s` is not longer than zero",
            "error: activity `A`, event 3 `Count`: at_field: `n` is an integer field; it must be a date or datetime field",
            "error: activity `A`, event 4 `Both`: write either `after` or `at_field`, not both",
        ],
    );
}

/// A timer waits: an unconditional loop through one is the external
/// world's business, as with a callback (a warning, not an error).
#[test]
fn a_loop_through_a_timer_waits_each_round() {
    check(
        r#"{"name": "p", "activities": [
             {"id": "a", "name": "A", "start": true, "events": [{"kind": "timer", "name": "Wait", "after": "1d"}]},
             {"id": "b", "name": "B"}],
            "lines": [{"from": "a", "to": "b"}, {"from": "b", "to": "a"}]}"#,
        &["warning: activity `A` (a): endless loop: A, B follow each other round with no rule to stop them"],
    );
}

// ----- mail events -----------------------------------------------------------------

/// A process whose start activity holds one mail event made of `properties`
/// (JSON object members besides `kind` and `name`), with the data fields
/// `name` (string) and `email` (string).
fn mail_event(properties: &str) -> String {
    format!(
        r#"{{"name": "p",
            "fields": [{{"name": "name", "type": "string"}}, {{"name": "email", "type": "string"}}],
            "activities": [{{"id": "a", "name": "A", "start": true, "events": [
              {{"kind": "mail", "name": "Tell", {properties}}}
            ]}}]}}"#
    )
}

#[test]
fn a_correct_mail_event_has_no_problems() {
    for properties in [
        r#""to": "${email}", "subject": "Hello ${name}", "body": "Dear ${name}""#,
        r#""to": "Ada Lovelace <ada@example.com>, ${email}", "cc": "\"Doe, Jo\" <jo@example.com>",
           "subject": "${folio}", "body": "", "html": "<p>${name}</p>", "synchronous": true"#,
    ] {
        check(&mail_event(properties), &[]);
    }
}

#[test]
fn mail_events_are_always_synchronous() {
    check(
        &mail_event(r#""to": "a@example.com", "synchronous": false"#),
        &[
            "error: activity `A`, event 1 `Tell`: a mail event is always synchronous: it completes when the SMTP server accepts the mail, and nothing calls back; remove `\"synchronous\": false`",
        ],
    );
}

#[test]
fn mail_event_problems_are_named() {
    let cases = [
        (r#""to": " ""#, "the mail has no recipient: write an address in To"),
        (r#""to": "ada@example.com, bob@""#, "To: `bob@` is not an e-mail address"),
        (r#""to": "a@example.com", "cc": "not an address""#, "Cc: `not an address` is not an e-mail address"),
        (
            r#""to": "${mail}""#,
            "To: unknown placeholder `${mail}`: is neither a data field nor one of serial, instance_id, folio, activity, event",
        ),
        (
            r#""to": "a@example.com", "subject": "Hi\r\nBcc: eve@example.com""#,
            "Subject holds a line break or another control character once filled in: refused, since it could add headers to the mail",
        ),
        (r#""to": "a@example.com", "html": "<p>${nom}</p>""#, "HTML body: unknown placeholder `${nom}`…"),
    ];
    for (properties, message) in cases {
        check(&mail_event(properties), &[&format!("error: activity `A`, event 1 `Tell`: {message}")]);
    }
}

// ----- sub-process (IPC) events (issue 19) ----------------------------------------

/// What the draft alone tells of a sub-process event, each at the event:
/// no child named, mappings to fields this process lacks, unknown
/// placeholders, outputs on an event that does not wait; a process calling
/// itself is checked against its own fields and warned of the depth limit.
/// Whether another child is deployed is deploy's to say.
#[test]
fn sub_process_events_name_their_problems_at_the_event() {
    check(
        r#"{
          "name": "parent",
          "fields": [ { "name": "n", "type": "integer" }, { "name": "s", "type": "string" } ],
          "activities": [
            { "id": "a", "name": "A", "start": true, "events": [
              { "kind": "ipc", "name": "Nothing" },
              { "kind": "ipc", "name": "Bad maps", "process": "child",
                "inputs": [ { "from": "${nope}", "to": "x" }, { "from": "n", "to": "" } ],
                "outputs": [ { "from": "y", "to": "missing" } ] },
              { "kind": "ipc", "name": "Async out", "synchronous": false, "process": "child",
                "outputs": [ { "from": "y", "to": "n" } ] },
              { "kind": "ipc", "name": "Again", "process": "parent",
                "inputs": [ { "from": "s", "to": "n" } ], "outputs": [ { "from": "n", "to": "s" } ] },
              { "kind": "ipc", "name": "Not deployed", "process": "somewhere-else" }
            ] }
          ]
        }"#,
        &[
            "error: activity `A`, event 1 `Nothing`: no child process: name the process this event starts",
            "error: activity `A`, event 2 `Bad maps`: input mapping 1 (→ `x`): unknown placeholder `${nope}`…",
            "error: activity `A`, event 2 `Bad maps`: input mapping 2 has no child field",
            "error: activity `A`, event 2 `Bad maps`: output mapping 1 (`y` → `missing`): this process has no field `missing`",
            "error: activity `A`, event 3 `Async out`: output mappings need a parent that waits…",
            "error: activity `A`, event 4 `Again`: input mapping 1 (→ `n`): type mismatch: `s` (string) into `n` of `parent` (integer)",
            "error: activity `A`, event 4 `Again`: output mapping 1 (`n` → `s`): type mismatch: `n` of `parent` (integer) into `s` (string)",
            "warning: activity `A`, event 4 `Again`: the process starts itself: allowed, but a chain of sub-processes deeper than 8 puts the instance that would start the next one in Error",
        ],
    );
}
