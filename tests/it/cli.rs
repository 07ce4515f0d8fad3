//! End-to-end tests of the `flowdesk` command line: every test runs the real
//! binary on a database in its own temporary directory, with the acting user
//! always given explicitly and `FLOWDESK_DB` / `FLOWDESK_USER` removed from the
//! inherited environment.

use crate::common_cli;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use common_cli::{Out, execute};

const CALLBACK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/callback.process.json");

/// SQL-looking text that must be stored and shown verbatim.
const SQL_TEXT: &str = "'); DROP TABLE instances; --";

/// An asynchronous event, then a synchronous event whose script depends on a
/// data field and fails (`throw`) while it is not positive. `Other` is only
/// reachable with `goto`.
const OPS_PROCESS: &str = r#"{
  "name": "ops",
  "fields": [
    { "name": "amount", "type": "integer", "default": 0 },
    { "name": "ok", "type": "boolean", "default": false },
    { "name": "note", "type": "string" }
  ],
  "activities": [
    { "id": "begin", "name": "Begin", "start": true,
      "events": [ { "kind": "server_event", "name": "Wait", "synchronous": false,
                    "script": "note = \"waiting\";" } ] },
    { "id": "check", "name": "Check",
      "events": [ { "kind": "server_event", "name": "Check amount",
                    "script": "if amount <= 0 { throw \"boom: amount must be positive\"; }\nok = true;" } ] },
    { "id": "other", "name": "Other",
      "events": [ { "kind": "server_event", "name": "Other wait", "synchronous": false,
                    "script": "note = \"moved\";" } ] }
  ],
  "lines": [ { "from": "begin", "to": "check" } ]
}"#;

/// An asynchronous event followed by a synchronous event that never ends.
const SPIN_PROCESS: &str = r#"{
  "name": "spin",
  "fields": [ { "name": "n", "type": "integer", "default": 0 } ],
  "activities": [
    { "id": "wait", "name": "Wait", "start": true,
      "events": [ { "kind": "server_event", "name": "Wait", "synchronous": false, "script": "" } ] },
    { "id": "spin", "name": "Spin",
      "events": [ { "kind": "server_event", "name": "Spin", "script": "loop { n += 1; }" } ] }
  ],
  "lines": [ { "from": "wait", "to": "spin" } ]
}"#;

/// A definition with several problems at once.
const BAD_PROCESS: &str = r#"{
  "name": "bad",
  "fields": [ { "name": "x", "type": "strnig" }, { "name": "x", "type": "integer" } ],
  "activities": [
    { "id": "a", "name": "A",
      "events": [ { "kind": "server_event", "name": "e", "script": "nmae = 1;" } ] }
  ],
  "lines": [ { "from": "a", "to": "zzz" } ]
}"#;

/// A temporary directory holding the database and any process files.
struct Flowdesk {
    dir: TempDir,
}

impl Flowdesk {
    fn new() -> Flowdesk {
        Flowdesk { dir: tempfile::tempdir().expect("temporary directory") }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("flowdesk.db")
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write process file");
        path
    }

    /// The binary with a clean environment: no inherited FLOWDESK_* variables,
    /// and the user data directory pointed into the temporary directory so a
    /// forgotten `--db` can never touch a real database.
    fn command(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowdesk"));
        command
            .env_remove("FLOWDESK_DB")
            .env_remove("FLOWDESK_USER")
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("HOME", self.dir.path())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `flowdesk --db <temp db> --user <user> <args>`.
    fn run(&self, user: &str, args: &[&str]) -> Out {
        let mut command = self.command();
        command.arg("--db").arg(self.db()).arg("--user").arg(user);
        command.args(args);
        execute(command, &format!("--user {user} {}", args.join(" ")))
    }

    /// Runs a command that must succeed; returns its output.
    fn ok(&self, user: &str, args: &[&str]) -> Out {
        let out = self.run(user, args);
        assert_eq!(out.code, Some(0), "`flowdesk {}` as {user} should succeed: {out:?}", args.join(" "));
        out
    }

    /// Runs a command that must succeed and parses its stdout as JSON.
    fn json(&self, user: &str, args: &[&str]) -> Value {
        let out = self.ok(user, args);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("`flowdesk {}` did not print JSON ({e}): {:?}", args.join(" "), out.stdout))
    }

    /// Runs a command that must be refused: exit 1 and exactly one line on
    /// stderr. Returns that line.
    fn refused(&self, user: &str, args: &[&str]) -> String {
        let out = self.run(user, args);
        assert_refused(&out, &format!("--user {user} {}", args.join(" ")))
    }

    /// Runs a command that must be a usage error (exit 2).
    fn usage_error(&self, user: &str, args: &[&str]) -> Out {
        let out = self.run(user, args);
        assert_eq!(out.code, Some(2), "`flowdesk {}` should be a usage error (exit 2): {out:?}", args.join(" "));
        assert!(!out.stderr.trim().is_empty(), "usage error says nothing");
        out
    }

    fn deploy(&self, user: &str, file: &Path) -> Out {
        self.ok(user, &["deploy", path_str(file)])
    }

    fn deploy_callback(&self, user: &str) {
        let out = self.deploy(user, Path::new(CALLBACK));
        assert_eq!(out.stdout.trim(), format!("callback version 1, a new process: {user} holds its Admin right"));
    }

    fn deploy_text(&self, user: &str, file_name: &str, text: &str) {
        let path = self.write(file_name, text);
        self.deploy(user, &path);
    }

    /// Starts an instance; stdout must be just the id.
    fn start(&self, user: &str, args: &[&str]) -> i64 {
        let mut all = vec!["start"];
        all.extend_from_slice(args);
        let out = self.ok(user, &all);
        out.stdout.trim().parse().unwrap_or_else(|_| panic!("start printed {:?}, not just an id", out.stdout))
    }

    fn show(&self, user: &str, id: i64) -> Value {
        self.json(user, &["show", &id.to_string(), "--json"])
    }

    fn status(&self, id: i64) -> String {
        self.show("alice", id)["status"].as_str().expect("status is a string").to_owned()
    }

    fn pending(&self, id: i64) -> Vec<String> {
        self.show("alice", id)["pending"]
            .as_array()
            .expect("pending is an array")
            .iter()
            .map(|s| s.as_str().expect("serial is a string").to_owned())
            .collect()
    }

    /// Everything a refused command must leave unchanged, as `alice` (the
    /// deploying admin) sees it.
    fn snapshot(&self) -> Value {
        let instances = self.json("alice", &["instances", "--limit", "0", "--json"]);
        let shows: Vec<Value> = instances
            .as_array()
            .expect("instances array")
            .iter()
            .map(|i| self.show("alice", i["id"].as_i64().expect("id")))
            .collect();
        let processes = self.json("alice", &["processes", "--json"]);
        let rights: Vec<String> = processes
            .as_array()
            .expect("processes array")
            .iter()
            .map(|p| self.ok("alice", &["rights", p["name"].as_str().expect("name")]).stdout)
            .collect();
        serde_json::json!({
            "instances": instances,
            "shows": shows,
            "items": self.json("alice", &["items", "--all", "--json"]),
            "processes": processes,
            "rights": rights,
        })
    }

    /// Runs a command that must be refused and change nothing; returns the
    /// stderr line.
    fn refused_unchanged(&self, user: &str, args: &[&str]) -> String {
        let before = self.snapshot();
        let line = self.refused(user, args);
        let after = self.snapshot();
        assert_eq!(before, after, "refused `flowdesk {}` changed the database", args.join(" "));
        line
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 temporary path")
}

/// A refusal: exit 1, exactly one line on stderr, nothing on stdout.
fn assert_refused(out: &Out, shown: &str) -> String {
    assert_eq!(out.code, Some(1), "`flowdesk {shown}` should be refused with exit 1: {out:?}");
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "`flowdesk {shown}` should print exactly one line on stderr, got {:?}", out.stderr);
    lines[0].to_owned()
}

fn assert_mentions(line: &str, words: &[&str]) {
    for word in words {
        assert!(line.to_lowercase().contains(&word.to_lowercase()), "expected {word:?} in {line:?}");
    }
}

/// The users recorded in an instance's audit trail for an action.
fn audit_users(show: &Value, action: &str) -> Vec<String> {
    show["audit"]
        .as_array()
        .expect("audit is an array")
        .iter()
        .filter(|a| a["action"] == action)
        .map(|a| a["user"].as_str().expect("audit user").to_owned())
        .collect()
}

fn ids(list: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> =
        list.as_array().expect("a JSON array").iter().map(|i| i["id"].as_i64().expect("id is a number")).collect();
    ids.sort();
    ids
}

fn item<'a>(items: &'a Value, serial: &str) -> Option<&'a Value> {
    items.as_array().expect("items array").iter().find(|i| i["serial"] == serial)
}

// 1. The "done" path -------------------------------------------------------

#[test]
fn callback_done_path() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");

    let id = fd.start("alice", &["callback", "--folio", "PO-1042"]);
    let serial = format!("{id}_2");
    assert_eq!(fd.pending(id), vec![serial.clone()]);
    assert_eq!(fd.status(id), "Active");

    // The text list shows serial, instance, folio, activity and event.
    let table = fd.ok("alice", &["items"]).stdout;
    let row =
        table.lines().find(|l| l.contains(&serial)).unwrap_or_else(|| panic!("serial {serial} not in items: {table}"));
    for column in [&id.to_string(), "PO-1042", "callback", "Call external system"] {
        assert!(row.contains(column), "{column:?} missing from {row:?}");
    }

    let items = fd.json("alice", &["items", "--json"]);
    let pending = item(&items, &serial).expect("pending item in items --json");
    assert_eq!(pending["instance_id"], id);
    assert_eq!(pending["status"], "Pending");
    assert_eq!(pending["event"], "Call external system");
    assert_eq!(pending["activity"], "Call external system");

    fd.ok("alice", &["finish", &serial, "--set", "name=call back value"]);

    let show = fd.show("alice", id);
    assert_eq!(show["id"], id);
    assert_eq!(show["status"], "Completed");
    assert_eq!(show["folio"], "PO-1042");
    assert_eq!(show["data"]["done"], true);
    assert_eq!(show["data"]["name"], "call back value");
    assert_eq!(show["pending"], serde_json::json!([]));
    assert_eq!(audit_users(&show, "Server item finished"), vec!["alice"]);
    let text = fd.ok("alice", &["show", &id.to_string()]).stdout;
    let finished_row = text
        .lines()
        .find(|l| l.contains("finished") && l.contains(&serial))
        .unwrap_or_else(|| panic!("no finish in the audit trail: {text}"));
    assert!(finished_row.contains("alice"), "{finished_row:?}");

    // The item left the pending list; `items --all` shows it finished.
    let items = fd.json("alice", &["items", "--json"]);
    assert!(item(&items, &serial).is_none(), "{items}");
    let all = fd.json("alice", &["items", "--all", "--json"]);
    let closed = item(&all, &serial).expect("finished item in items --all");
    assert_eq!(closed["status"], "Finished");

    // A second finish is refused, saying when and by whom.
    let line = fd.refused_unchanged("alice", &["finish", &serial]);
    assert_mentions(&line, &[&serial, "already finished", "alice"]);
    let closed_at = closed["closed"].as_str().expect("closed time");
    let when = closed_at[..19].replace('T', " ");
    assert!(line.contains(&when), "{line:?} does not say when ({when})");
}

/// Issue 18: `show` prints the trail with the monitor's columns (time,
/// user, action, activity / event, details, since previous), and `--json`
/// carries the same fields.
#[test]
fn issue_18_show_prints_the_trail_with_its_places_and_the_time_between_steps() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback", "--folio", "PO-9"]);
    let serial = format!("{id}_2");
    // The callback comes an hour later.
    let finished = fd.later("3600000", "alice", &["finish", &serial, "--set", "name=no"]);
    assert_eq!(finished.code, Some(0), "{finished:?}");

    let text = fd.ok("alice", &["show", &id.to_string()]).stdout;
    let header = text.lines().find(|l| l.contains("TIME") && l.contains("ACTION")).expect("the trail's header");
    for column in ["TIME", "USER", "ACTION", "ACTIVITY / EVENT", "DETAIL", "SINCE PREVIOUS"] {
        assert!(header.contains(column), "{column} in {header:?}");
    }
    let row = text.lines().find(|l| l.contains("Server item finished")).expect("the finish in the trail");
    for cell in ["alice", "Call external system / Call external system", &serial, "1h"] {
        assert!(row.contains(cell), "{cell:?} in {row:?}");
    }

    let show = fd.show("alice", id);
    let audit = show["audit"].as_array().expect("audit is an array");
    let started = &audit[0];
    assert_eq!(started["action"], "Instance started");
    assert_eq!(
        (&started["activity"], &started["event"], &started["since_previous_ms"]),
        (&Value::Null, &Value::Null, &Value::Null)
    );
    let prepare = audit.iter().find(|a| a["action"] == "Activity started").expect("an activity started");
    assert_eq!((&prepare["activity"], &prepare["event"]), (&Value::from("Prepare"), &Value::Null));
    assert_eq!(prepare["since_previous_ms"], 0, "written with the start");
    let finish = audit.iter().find(|a| a["action"] == "Server item finished").expect("the finish");
    assert_eq!(finish["activity"], "Call external system");
    assert_eq!(finish["event"], "Call external system");
    assert!(finish["since_previous_ms"].as_i64().expect("a number") >= 3_600_000, "{finish}");

    // Filtered by kind, as the window's Kind box (any case); the time
    // since the line before stays the whole trail's.
    let text = fd.ok("alice", &["show", &id.to_string(), "--kind", "server item finished"]).stdout;
    let trail = text.split("Audit trail").nth(1).expect("the trail");
    assert!(trail.contains("Server item finished") && trail.contains("1h"), "{trail}");
    assert!(!trail.contains("Instance started") && !trail.contains("Activity started"), "{trail}");
    let json = fd.ok(
        "alice",
        &["show", &id.to_string(), "--json", "--kind", "Instance started", "--kind", "Server item finished"],
    );
    let json: Value = serde_json::from_str(&json.stdout).expect("JSON");
    let kinds: Vec<&str> = json["audit"].as_array().unwrap().iter().map(|a| a["action"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["Instance started", "Server item finished"]);
    let unknown = fd.run("alice", &["show", &id.to_string(), "--kind", "Finished; DROP TABLE instances"]);
    assert_eq!(unknown.code, Some(2), "{unknown:?}");
    assert!(
        unknown.stderr.contains("no kind of audit line") && unknown.stderr.contains("Server item finished"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn finish_without_server_event_right_is_refused() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]);
    let serial = format!("{id}_2");

    let line = fd.refused_unchanged("bob", &["finish", &serial, "--set", "name=call back value"]);
    assert_mentions(&line, &["permission denied", "bob", "callback", "Server Event"]);

    assert_eq!(fd.status(id), "Active");
    assert_eq!(fd.pending(id), vec![serial.clone()]);
    let items = fd.json("alice", &["items", "--json"]);
    assert_eq!(item(&items, &serial).expect("still listed")["status"], "Pending");
}

#[test]
fn granting_server_event_lets_another_user_finish() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]);
    let serial = format!("{id}_2");
    fd.refused("bob", &["finish", &serial]);

    fd.ok("alice", &["grant", "callback", "bob", "server-event"]);
    let rights = fd.ok("alice", &["rights", "callback"]).stdout;
    assert!(
        rights.lines().any(|l| l.contains("bob") && l.contains("server-event")),
        "bob has no server-event right: {rights}"
    );

    fd.ok("bob", &["finish", &serial, "--set", "name=call back value"]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Completed");
    assert_eq!(show["data"]["done"], true);
    assert_eq!(audit_users(&show, "Server item finished"), vec!["bob"]);
    let text = fd.ok("alice", &["show", &id.to_string()]).stdout;
    assert!(
        text.lines().any(|l| l.contains("finished") && l.contains(&serial) && l.contains("bob")),
        "the audit trail does not name bob: {text}"
    );

    // Revoking takes the right away again.
    fd.ok("alice", &["revoke", "callback", "bob", "server-event"]);
    let second = fd.start("alice", &["callback"]);
    fd.refused("bob", &["finish", &format!("{second}_2")]);
}

#[test]
fn grant_and_revoke_need_admin_of_the_acting_user() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");

    // mallory holds no right at all: granting anything, even to the admin, is refused.
    let line = fd.refused_unchanged("mallory", &["grant", "callback", "alice", "server-event"]);
    assert_mentions(&line, &["permission denied", "mallory", "callback", "Admin"]);
    let line = fd.refused_unchanged("mallory", &["grant", "callback", "mallory", "admin"]);
    assert_mentions(&line, &["mallory", "Admin"]);
    let line = fd.refused_unchanged("mallory", &["revoke", "callback", "alice", "admin"]);
    assert_mentions(&line, &["mallory", "Admin"]);
}

// 2. Refusals: exit 1, one line, nothing changed ---------------------------

#[test]
fn malformed_serials_are_refused() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]);
    for serial in ["abc", "1_", "1_2_3", "0_1", "1; DROP TABLE server_items", "' OR 1=1 --"] {
        let line = fd.refused_unchanged("alice", &["finish", serial]);
        assert_mentions(&line, &[serial, "not a serial number"]);
    }
    assert_eq!(fd.pending(id), vec![format!("{id}_2")]);
    // The tables survived the SQL-looking serials.
    assert_eq!(ids(&fd.json("alice", &["instances", "--json"])), vec![id]);
}

#[test]
fn unknown_serial_is_not_found() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    fd.start("alice", &["callback"]);
    let line = fd.refused_unchanged("alice", &["finish", "999_1"]);
    assert_mentions(&line, &["999_1", "not found"]);
    // Right instance, wrong activity instance.
    let line = fd.refused_unchanged("alice", &["finish", "1_7"]);
    assert_mentions(&line, &["1_7", "not found"]);
}

#[test]
fn invalid_callback_data_is_refused_and_nothing_is_set() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]);
    let serial = format!("{id}_2");

    let line = fd.refused_unchanged("alice", &["finish", &serial, "--set", "nmae=x"]);
    assert_mentions(&line, &["invalid data", "nmae"]);

    let line = fd.refused_unchanged("alice", &["finish", &serial, "--set", "done=maybe"]);
    assert_mentions(&line, &["invalid data", "done", "boolean"]);

    // One bad field refuses the whole callback: the good one is not set either.
    let line = fd.refused_unchanged("alice", &["finish", &serial, "--set", "name=call back value", "--set", "nmae=y"]);
    assert_mentions(&line, &["invalid data", "nmae"]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Active");
    assert_eq!(show["data"]["name"], "");

    // The item can still be finished correctly afterwards.
    fd.ok("alice", &["finish", &serial, "--set", "name=call back value"]);
    assert_eq!(fd.status(id), "Completed");
}

#[test]
fn start_refusals() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");

    let line = fd.refused_unchanged("alice", &["start", "nope"]);
    assert_mentions(&line, &["nope", "not found"]);

    let line = fd.refused_unchanged("bob", &["start", "callback", "--folio", "x"]);
    assert_mentions(&line, &["permission denied", "bob", "callback", "Start"]);

    let line = fd.refused_unchanged("alice", &["start", "callback", "--set", "nmae=x"]);
    assert_mentions(&line, &["invalid data", "nmae"]);

    let line = fd.refused_unchanged("alice", &["start", "callback", "--set", "done=maybe"]);
    assert_mentions(&line, &["invalid data", "done"]);

    assert_eq!(fd.json("alice", &["instances", "--json"]), serde_json::json!([]));
}

#[test]
fn show_retry_and_revoke_refusals() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let active = fd.start("alice", &["callback"]);
    let done = fd.start("alice", &["callback"]);
    fd.ok("alice", &["finish", &format!("{done}_2")]);

    let line = fd.refused_unchanged("alice", &["show", "42"]);
    assert_mentions(&line, &["instance 42", "not found"]);
    let line = fd.refused_unchanged("alice", &["show", "42", "--json"]);
    assert_mentions(&line, &["42", "not found"]);

    let line = fd.refused_unchanged("alice", &["retry", &active.to_string()]);
    assert_mentions(&line, &["retry", &active.to_string(), "Active"]);
    let line = fd.refused_unchanged("alice", &["retry", &done.to_string()]);
    assert_mentions(&line, &["retry", &done.to_string(), "Completed"]);
    let line = fd.refused_unchanged("alice", &["retry", "42"]);
    assert_mentions(&line, &["42", "not found"]);

    let line = fd.refused_unchanged("alice", &["revoke", "callback", "alice", "admin"]);
    assert_mentions(&line, &["callback", "Admin"]);

    let line = fd.refused_unchanged("bob", &["show", &active.to_string()]);
    assert_mentions(&line, &["permission denied", "bob", "callback", "View"]);
}

#[test]
fn operator_commands_need_admin() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]).to_string();
    for args in [
        vec!["stop", id.as_str()],
        vec!["resume", id.as_str()],
        vec!["retry", id.as_str()],
        vec!["goto", id.as_str(), "Approved"],
        vec!["set", id.as_str(), "--set", "name=x"],
    ] {
        let line = fd.refused_unchanged("bob", &args);
        assert_mentions(&line, &["permission denied", "bob", "callback", "Admin"]);
    }
}

#[test]
fn deploy_of_an_invalid_definition_is_one_refusal_line() {
    let fd = Flowdesk::new();
    let bad = fd.write("bad.process.json", BAD_PROCESS);
    let out = fd.run("alice", &["deploy", path_str(&bad)]);
    assert_eq!(fd.json("alice", &["processes", "--json"]), serde_json::json!([]));
    // Every problem is reported somewhere ...
    let all = format!("{}{}", out.stdout, out.stderr);
    for problem in ["strnig", "duplicate field", "no start activity", "nmae", "zzz"] {
        assert!(all.contains(problem), "{problem:?} not reported: {all}");
    }
    // ... but the refusal itself is one line on stderr.
    let line = assert_refused(&out, "deploy bad.process.json");
    assert_mentions(&line, &["bad"]);
}

// 3. Usage errors exit 2 ---------------------------------------------------

#[test]
fn usage_errors_exit_2() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]);
    let before = fd.snapshot();

    fd.usage_error("alice", &["frobnicate"]);
    fd.usage_error("alice", &["finish"]);
    fd.usage_error("alice", &["finish", &format!("{id}_2"), "--set", "name"]);
    fd.usage_error("alice", &["finish", &format!("{id}_2"), "--set", "=x"]);
    fd.usage_error("alice", &["start", "callback", "--set", "done"]);
    fd.usage_error("alice", &["instances", "--status", "Bogus"]);
    fd.usage_error("alice", &["grant", "callback", "bob", "superuser"]);
    fd.usage_error("alice", &["grant", "callback", "bob"]);
    fd.usage_error("alice", &["show", "not-a-number"]);

    assert_eq!(before, fd.snapshot(), "a usage error changed the database");
    assert_eq!(fd.pending(id), vec![format!("{id}_2")]);
}

// 4. validate --------------------------------------------------------------

#[test]
fn validate_a_valid_file() {
    let fd = Flowdesk::new();
    let out = fd.ok("alice", &["validate", CALLBACK]);
    assert!(out.stdout.contains("valid"), "{out:?}");
    // Validating deploys nothing: it does not even open a database.
    assert!(!fd.db().exists());
}

#[test]
fn validate_lists_every_problem() {
    let fd = Flowdesk::new();
    let bad = fd.write("bad.process.json", BAD_PROCESS);
    let out = fd.run("alice", &["validate", path_str(&bad)]);
    let line = assert_refused(&out, "validate bad.process.json");
    assert_mentions(&line, &["bad.process.json", "not valid"]);
    for problem in ["unknown field type `strnig`", "duplicate field name `x`", "no start activity", "nmae", "`zzz`"] {
        assert!(out.stdout.contains(problem), "{problem:?} not listed: {}", out.stdout);
    }
}

#[test]
fn validate_malformed_json_names_line_and_column() {
    let fd = Flowdesk::new();
    let broken = fd.write("broken.process.json", "{\n  \"name\": \"broken\",\n  \"fields\": [ , ]\n}\n");
    let line = fd.refused("alice", &["validate", path_str(&broken)]);
    assert_mentions(&line, &["broken.process.json", "line 3, column 15"]);

    let empty = fd.write("empty.process.json", "");
    let line = fd.refused("alice", &["validate", path_str(&empty)]);
    assert_mentions(&line, &["empty.process.json", "line 1"]);

    let unknown_key = fd.write("typo.process.json", "{\n  \"name\": \"typo\",\n  \"activites\": []\n}\n");
    let line = fd.refused("alice", &["validate", path_str(&unknown_key)]);
    assert_mentions(&line, &["activites", "line 3"]);
}

#[test]
fn validate_a_missing_file() {
    let fd = Flowdesk::new();
    let missing = fd.dir.path().join("missing.process.json");
    let line = fd.refused("alice", &["validate", path_str(&missing)]);
    assert_mentions(&line, &["missing.process.json", "no such file"]);
    // A clear message states the cause once.
    assert_eq!(line.matches("No such file or directory").count(), 1, "the cause is repeated: {line:?}");

    let line = fd.refused("alice", &["deploy", path_str(&missing)]);
    assert_mentions(&line, &["missing.process.json", "no such file"]);
}

// 5. Versioning ------------------------------------------------------------

#[test]
fn redeploying_makes_version_2_and_running_instances_stay_on_1() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let old = fd.start("alice", &["callback", "--folio", "old"]);

    let out = fd.deploy("alice", Path::new(CALLBACK));
    assert_eq!(
        out.stdout.trim(),
        "callback version 2, now the default: new instances start on it, running ones stay on theirs"
    );
    let new = fd.start("alice", &["callback", "--folio", "new"]);

    let list = fd.json("alice", &["instances", "--json"]);
    let version_of = |id: i64| {
        list.as_array()
            .expect("instances array")
            .iter()
            .find(|i| i["id"] == id)
            .unwrap_or_else(|| panic!("instance {id} not listed"))["version"]
            .clone()
    };
    assert_eq!(version_of(old), 1);
    assert_eq!(version_of(new), 2);
    assert_eq!(fd.show("alice", old)["version"], 1);
    assert_eq!(fd.show("alice", new)["version"], 2);

    // The old instance still runs to its end on version 1.
    fd.ok("alice", &["finish", &format!("{old}_2"), "--set", "name=call back value"]);
    let show = fd.show("alice", old);
    assert_eq!(show["status"], "Completed");
    assert_eq!(show["version"], 1);

    // Another user cannot redeploy without Admin.
    let line = fd.refused_unchanged("bob", &["deploy", CALLBACK]);
    assert_mentions(&line, &["permission denied", "bob", "callback", "Admin"]);
    let processes = fd.json("alice", &["processes", "--json"]);
    assert_eq!(processes[0]["name"], "callback");
    assert_eq!(processes[0]["default_version"], 2);
    assert_eq!(processes[0]["versions"], 2);

    let json = fd.json("alice", &["deploy", CALLBACK, "--json"]);
    assert_eq!(json["process"], "callback");
    assert_eq!(json["version"], 3);
    assert_eq!(json["new_process"], false);
    let other = Flowdesk::new();
    let json = other.json("carol", &["deploy", CALLBACK, "--json"]);
    assert_eq!((json["version"].as_i64(), json["new_process"].as_bool()), (Some(1), Some(true)));
}

// 6. Operator commands -----------------------------------------------------

#[test]
fn failing_script_puts_the_instance_in_error_and_retry_after_fixing_data() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let id = fd.start("alice", &["ops", "--folio", "needs-fix"]);
    let ids = id.to_string();
    fd.ok("alice", &["finish", &format!("{id}_1")]);

    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Error");
    assert_eq!(show["error"]["activity"], "Check");
    assert_eq!(show["error"]["event"], "Check amount");
    assert!(show["error"]["message"].as_str().expect("error message").contains("boom"), "{show}");
    let errors = fd.json("alice", &["instances", "--status", "Error", "--json"]);
    assert_eq!(errors[0]["id"], id);

    // Retrying without fixing the data fails the same way.
    fd.run("alice", &["retry", &ids]);
    assert_eq!(fd.status(id), "Error");

    // Fix the field, then retry.
    fd.ok("alice", &["set", &ids, "--set", "amount=5"]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Error");
    assert_eq!(show["data"]["amount"], 5);
    let line = fd.refused_unchanged("alice", &["set", &ids, "--set", "amount=lots"]);
    assert_mentions(&line, &["invalid data", "amount"]);

    fd.ok("alice", &["retry", &ids]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Completed");
    assert_eq!(show["data"]["ok"], true);
    assert_eq!(show["error"], Value::Null);
    assert!(audit_users(&show, "Retried").iter().all(|u| u == "alice"));
    assert!(!audit_users(&show, "Retried").is_empty(), "retry not audited");
    assert_eq!(audit_users(&show, "Data changed"), vec!["alice"]);
}

#[test]
fn endless_loop_hits_the_budget_and_puts_the_instance_in_error() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "spin.process.json", SPIN_PROCESS);
    let id = fd.start("alice", &["spin"]);
    fd.ok("alice", &["finish", &format!("{id}_1")]);

    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Error");
    assert_eq!(show["error"]["activity"], "Spin");
    assert!(show["error"]["message"].as_str().expect("error message").contains("budget"), "{show}");
    // The failed run left nothing half-written: the field keeps its value.
    assert_eq!(show["data"]["n"], 0);
}

#[test]
fn stop_and_resume() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let id = fd.start("alice", &["ops", "--set", "amount=3"]);
    let ids = id.to_string();
    let serial = format!("{id}_1");

    fd.ok("alice", &["stop", &ids]);
    assert_eq!(fd.status(id), "Stopped");
    let line = fd.refused_unchanged("alice", &["stop", &ids]);
    assert_mentions(&line, &["stop", &ids, "Stopped"]);

    fd.ok("alice", &["resume", &ids]);
    assert_eq!(fd.status(id), "Active");
    assert_eq!(fd.pending(id), vec![serial.clone()]);
    let line = fd.refused_unchanged("alice", &["resume", &ids]);
    assert_mentions(&line, &["resume", &ids, "Active"]);

    fd.ok("alice", &["finish", &serial]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Completed");
    assert_eq!(audit_users(&show, "Stopped"), vec!["alice"]);
    assert_eq!(audit_users(&show, "Resumed"), vec!["alice"]);
}

#[test]
fn a_callback_on_a_stopped_instance_is_applied_on_resume() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let id = fd.start("alice", &["ops"]);
    let ids = id.to_string();
    fd.ok("alice", &["stop", &ids]);

    fd.ok("alice", &["finish", &format!("{id}_1"), "--set", "amount=2"]);
    assert_eq!(fd.status(id), "Stopped");

    fd.ok("alice", &["resume", &ids]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Completed");
    assert_eq!(show["data"]["amount"], 2);
    assert_eq!(show["data"]["ok"], true);
}

#[test]
fn goto_moves_the_instance_and_cancels_the_pending_item() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let id = fd.start("alice", &["ops", "--folio", "move-me"]);
    let ids = id.to_string();
    let old = format!("{id}_1");

    let line = fd.refused_unchanged("alice", &["goto", &ids, "Nowhere"]);
    assert_mentions(&line, &["Nowhere"]);

    fd.ok("alice", &["goto", &ids, "Other"]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Active");
    assert_eq!(show["data"]["note"], "moved");
    let pending = fd.pending(id);
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_ne!(pending[0], old);
    assert_eq!(audit_users(&show, "Went to activity"), vec!["alice"]);

    let items = fd.json("alice", &["items", "--json"]);
    assert!(item(&items, &old).is_none(), "old item still pending");
    let new_item = item(&items, &pending[0]).expect("new item pending");
    assert_eq!(new_item["activity"], "Other");
    let all = fd.json("alice", &["items", "--all", "--json"]);
    assert_ne!(item(&all, &old).expect("old item")["status"], "Pending");

    let line = fd.refused_unchanged("alice", &["finish", &old]);
    assert_mentions(&line, &[&old, "cancelled"]);

    // The new item finishes normally.
    fd.ok("alice", &["finish", &pending[0]]);
    assert_eq!(fd.status(id), "Completed");
}

// 7. Filters and SQL-looking text -----------------------------------------

#[test]
fn instance_filters() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let completed = fd.start("alice", &["callback", "--folio", "c1"]);
    fd.ok("alice", &["finish", &format!("{completed}_2")]);
    let active = fd.start("alice", &["callback", "--folio", "c2"]);
    let ops = fd.start("alice", &["ops", "--folio", "o1"]);

    let all = fd.json("alice", &["instances", "--json"]);
    assert_eq!(ids(&all), vec![completed, active, ops]);
    for row in all.as_array().expect("array") {
        for key in ["id", "status", "folio", "process"] {
            assert!(row.get(key).is_some(), "{key} missing from {row}");
        }
    }

    let actives = fd.json("alice", &["instances", "--status", "Active", "--json"]);
    assert_eq!(ids(&actives), vec![active, ops]);
    assert!(actives.as_array().expect("array").iter().all(|i| i["status"] == "Active"));

    let done = fd.json("alice", &["instances", "--status", "Completed", "--json"]);
    assert_eq!(ids(&done), vec![completed]);
    assert_eq!(done[0]["folio"], "c1");

    let only_ops = fd.json("alice", &["instances", "--process", "ops", "--json"]);
    assert_eq!(ids(&only_ops), vec![ops]);
    assert_eq!(only_ops[0]["process"], "ops");

    let both = fd.json("alice", &["instances", "--process", "callback", "--status", "Active", "--json"]);
    assert_eq!(ids(&both), vec![active]);

    let none = fd.json("alice", &["instances", "--process", "nope", "--json"]);
    assert_eq!(none, serde_json::json!([]));

    // Someone without View sees nothing.
    let bobs = fd.json("bob", &["instances", "--json"]);
    assert_eq!(bobs, serde_json::json!([]));
}

#[test]
fn sql_looking_text_is_stored_verbatim() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let name = format!("name={SQL_TEXT}");
    let id = fd.start("alice", &["callback", "--folio", SQL_TEXT, "--set", &name]);

    let show = fd.show("alice", id);
    assert_eq!(show["folio"], SQL_TEXT);
    assert_eq!(show["data"]["name"], SQL_TEXT);
    let text = fd.ok("alice", &["show", &id.to_string()]).stdout;
    assert!(text.contains(SQL_TEXT), "{text}");

    let list = fd.json("alice", &["instances", "--json"]);
    assert_eq!(list[0]["folio"], SQL_TEXT);
    let found = fd.json("alice", &["instances", "--search", SQL_TEXT, "--json"]);
    assert_eq!(ids(&found), vec![id]);

    let items = fd.json("alice", &["items", "--json"]);
    assert_eq!(items[0]["folio"], SQL_TEXT);

    // A callback value with quotes is stored as it is, too.
    let quoted = "x' OR '1'='1";
    fd.ok("alice", &["finish", &format!("{id}_2"), "--set", &format!("name={quoted}")]);
    let show = fd.show("alice", id);
    assert_eq!(show["data"]["name"], quoted);
    assert_eq!(show["status"], "Completed");
    assert_eq!(show["data"]["done"], false, "the other-answer branch ran");
    assert_eq!(ids(&fd.json("alice", &["instances", "--json"])), vec![id]);
}

// 8. No command, JSON shapes, environment -----------------------------------

#[test]
fn help_lists_every_command() {
    let fd = Flowdesk::new();
    let mut command = fd.command();
    command.arg("--help");
    let out = execute(command, "--help");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("Usage"), "{}", out.stdout);
    for command in [
        "validate",
        "deploy",
        "start",
        "instances",
        "show",
        "items",
        "finish",
        "grant",
        "revoke",
        "retry",
        "stop",
        "resume",
        "goto",
        "gui",
    ] {
        assert!(out.stdout.contains(command), "help lacks {command}");
    }
    // Help alone opens no database.
    assert!(!fd.db().exists());
}

#[test]
fn start_json_and_data_types() {
    let fd = Flowdesk::new();
    fd.deploy_text(
        "alice",
        "types.process.json",
        r#"{
          "name": "types",
          "fields": [
            { "name": "s", "type": "string", "default": "x" },
            { "name": "i", "type": "integer", "default": 3 },
            { "name": "d", "type": "decimal", "default": "1.50" },
            { "name": "b", "type": "boolean", "default": true },
            { "name": "t", "type": "date" }
          ],
          "activities": [
            { "id": "a", "name": "A", "start": true,
              "events": [ { "kind": "server_event", "name": "W", "synchronous": false } ] }
          ]
        }"#,
    );
    let started =
        fd.json("alice", &["start", "types", "--json", "--set", "t=2024-05-06", "--set", "d=2.25", "--set", "i=-4"]);
    let id = started["id"].as_i64().expect("start --json has an id");
    let data = &fd.show("alice", id)["data"];
    assert_eq!(data["s"], "x");
    assert_eq!(data["i"], -4);
    assert_eq!(data["d"], "2.25", "a decimal is a string in its written form");
    assert_eq!(data["b"], true);
    assert_eq!(data["t"], "2024-05-06");

    let line = fd.refused_unchanged("alice", &["finish", &format!("{id}_1"), "--set", "t=2024-02-30"]);
    assert_mentions(&line, &["invalid data", "`t`"]);
    let line = fd.refused_unchanged("alice", &["finish", &format!("{id}_1"), "--set", "i=1.5"]);
    assert_mentions(&line, &["invalid data", "`i`"]);
}

#[test]
fn database_and_user_from_the_environment() {
    let fd = Flowdesk::new();
    let env_run = |user: &str, args: &[&str]| {
        let mut command = fd.command();
        command.env("FLOWDESK_DB", fd.db()).env("FLOWDESK_USER", user);
        command.args(args);
        execute(command, &args.join(" "))
    };
    let out = env_run("erin", &["deploy", CALLBACK]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = env_run("erin", &["start", "callback"]);
    assert_eq!(out.code, Some(0), "{out:?}");
    let id: i64 = out.stdout.trim().parse().expect("id");

    // The same database through --db; erin is the originator and the admin.
    let show = fd.show("erin", id);
    assert_eq!(show["originator"], "erin");
    fd.refused("alice", &["show", &id.to_string()]);

    // --user wins over FLOWDESK_USER.
    let mut command = fd.command();
    command.env("FLOWDESK_DB", fd.db()).env("FLOWDESK_USER", "erin").args(["--user", "alice", "show", &id.to_string()]);
    let out = execute(command, "--user alice show");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_mentions(&out.stderr, &["alice"]);
}

/// Regression: `flowdesk show 1 | head` panicked with "failed printing to
/// stdout: Broken pipe" once `head` stopped reading.
#[test]
fn output_to_a_closed_pipe_is_not_a_panic() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]);
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut command = fd.command();
    command.arg("--db").arg(fd.db()).args(["--user", "alice", "show", &id.to_string()]).stdout(writer);
    let out = command.output().expect("run flowdesk");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn an_empty_user_name_is_a_usage_error() {
    let fd = Flowdesk::new();
    let out = fd.usage_error("", &["items"]);
    assert!(out.stderr.contains("user name cannot be empty"), "{out:?}");
}

// The HTTP API's tokens and listener -----------------------------------------

#[test]
fn token_create_prints_the_secret_once_and_stores_only_its_hash() {
    let t = Flowdesk::new();
    // Only deploy (and serve) create a database.
    t.deploy_callback("alice");
    let created = t.ok("alice", &["token", "create", "biztalk", "--label", "billing"]);
    let secret = created.stdout.trim();
    assert!(secret.starts_with("fdk_") && !secret.contains(char::is_whitespace), "{:?}", created.stdout);
    assert_mentions(&created.stderr, &["biztalk", "cannot be shown again", "holds no right on any process"]);
    t.ok("alice", &["grant", "callback", "biztalk", "server-event"]);
    let second = t.ok("alice", &["token", "create", "biztalk"]);
    assert!(!second.stderr.contains("holds no right"), "{:?}", second.stderr);

    let listed = t.json("alice", &["token", "list", "--json"]);
    assert_eq!(listed[0]["user"], "biztalk");
    assert_eq!(listed[0]["label"], "billing");
    assert_eq!(listed[0]["created_by"], "alice");
    assert!(secret.starts_with(listed[0]["prefix"].as_str().unwrap()));
    let table = t.ok("alice", &["token", "list"]).stdout;
    assert!(!table.contains(secret) && !listed.to_string().contains(secret), "a list shows no secret");
    let file = std::fs::read(t.db()).unwrap();
    assert!(!file.windows(secret.len()).any(|w| w == secret.as_bytes()), "the database holds no secret");

    assert_eq!(t.json("alice", &["token", "list", "--json"]).as_array().unwrap().len(), 2);
    assert_eq!(t.ok("alice", &["token", "revoke", "1"]).stdout.trim(), "revoked token 1");
    let listed = t.json("alice", &["token", "list", "--json"]);
    assert_eq!(listed[0]["revoked_by"], "alice");
    assert_mentions(&t.refused("alice", &["token", "revoke", "1"]), &["token 1", "already revoked", "alice"]);
    assert_mentions(&t.refused("alice", &["token", "revoke", "7"]), &["token 7", "not found"]);
    t.usage_error("alice", &["token", "create", " "]);
}

/// A running `flowdesk serve`, terminated when dropped.
struct Served {
    child: std::process::Child,
    base_url: String,
    /// The server's standard error, line by line, as it writes them.
    log: std::sync::mpsc::Receiver<String>,
}

impl Served {
    fn start(t: &Flowdesk, listen: &str) -> Served {
        let mut command = t.command();
        command.arg("--db").arg(t.db()).arg("--user").arg("alice").args(["serve", "--listen", listen]);
        Served::spawn(command).expect("serve printed nothing")
    }

    /// Starts a prepared `serve` command; its stderr if it exits before
    /// saying where it listens.
    fn spawn(mut command: Command) -> Result<Served, String> {
        use std::io::BufRead;
        let mut child = command.spawn().expect("spawn flowdesk serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        let (line_sent, line) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = std::io::BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = line_sent.send(first);
            // Keep reading, so the server never writes into a closed pipe.
            lines.for_each(drop);
        });
        let (logged, log) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                // Read on after the test stopped listening, for the same reason.
                let _ = logged.send(line);
            }
        });
        let first = line.recv_timeout(common_cli::HANG_LIMIT).expect("serve printed nothing");
        let Some(address) = first.split_whitespace().find(|w| w.starts_with("http://")) else {
            let _ = child.wait();
            // Its stderr ends with it.
            return Err(log.iter().collect::<Vec<_>>().join("\n"));
        };
        let base_url = address.to_owned();
        Ok(Served { child, base_url, log })
    }

    /// The first line the server logs from now on that contains `text`
    /// (it is written before the answer it explains is sent).
    fn logged(&self, text: &str) -> String {
        let mut seen = Vec::new();
        loop {
            match self.log.recv_timeout(common_cli::HANG_LIMIT) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("the server never logged {text:?}; it logged {seen:#?}"),
            }
        }
    }

    /// SIGTERM, then the exit code.
    fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let (done, exited) = std::sync::mpsc::channel();
        let mut child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        std::thread::spawn(move || {
            let _ = done.send(child.wait().map(|s| s.code()));
        });
        exited.recv_timeout(common_cli::HANG_LIMIT).expect("serve did not stop on SIGTERM").unwrap()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn serve_lets_an_external_system_finish_an_item_and_stops_on_sigterm() {
    let t = Flowdesk::new();
    t.deploy_callback("alice");
    let id = t.start("alice", &["callback", "--folio", "PO-7"]);
    t.ok("alice", &["grant", "callback", "biztalk", "server-event"]);
    let token = t.ok("alice", &["token", "create", "biztalk"]).stdout.trim().to_owned();

    let served = Served::start(&t, "127.0.0.1:0");
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut answer = agent
        .post(format!("{}/serveritems/{id}_2/finish", served.base_url))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(r#"{"data": {"name": "call back value"}}"#)
        .unwrap();
    assert_eq!(answer.status(), 200, "{:?}", answer.body_mut().read_to_string());
    assert_eq!(served.terminate(), Some(0));

    let show = t.show("alice", id);
    assert_eq!(show["status"], "Completed");
    assert_eq!(audit_users(&show, "Server item finished"), ["biztalk"]);
}

#[test]
fn serve_on_an_address_in_use_is_refused_in_one_line() {
    let t = Flowdesk::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let line = t.refused("alice", &["serve", "--listen", &address]);
    assert_mentions(&line, &[&address, "in use", "--listen"]);
    t.usage_error("alice", &["serve", "--listen", "localhost"]);
}

// What `serve` answers when the database fails ------------------------------

/// A callback instance waiting on `<id>_2`, and a token of `biztalk`, who
/// may start `callback` and finish its items. The database at `db`.
fn waiting_instance(t: &Flowdesk, db: &Path) -> (i64, String) {
    let run = |args: &[&str]| {
        let mut command = t.command();
        command.arg("--db").arg(db).arg("--user").arg("alice").args(args);
        let out = execute(command, &args.join(" "));
        assert_eq!(out.code, Some(0), "{out:?}");
        out.stdout
    };
    run(&["deploy", CALLBACK]);
    let id = run(&["start", "callback"]).trim().parse().unwrap();
    run(&["grant", "callback", "biztalk", "start", "server-event"]);
    let token = run(&["token", "create", "biztalk"]).trim().to_owned();
    (id, token)
}

/// `serve` on `db`, as `alice`, with `env` set.
fn serve_command(t: &Flowdesk, db: &Path, env: &[(&str, &str)]) -> Command {
    let mut command = t.command();
    command.arg("--db").arg(db).arg("--user").arg("alice").args(["serve", "--listen", "127.0.0.1:0"]);
    command.envs(env.iter().copied());
    command
}

/// A POST with `token` and a JSON body: status, `Retry-After`, body.
fn post_json(base_url: &str, path: &str, token: &str, body: &str) -> (u16, Option<String>, Value) {
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let mut answer = agent
        .post(format!("{base_url}{path}"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let text = answer.body_mut().read_to_string().unwrap();
    (answer.status().as_u16(), retry_after, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A fatal storage failure as a client hears it: 500 `storage_failed`, the
/// kind in plain words, and no file name.
fn assert_storage_failed(answer: &(u16, Option<String>, Value), words: &str, db: &Path) {
    let (status, retry_after, body) = answer;
    assert_eq!((*status, body["code"].as_str()), (500, Some("storage_failed")), "{body}");
    assert_eq!(*retry_after, None, "calling again does not help: no Retry-After");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(words), "{message}");
    let folder = db.parent().unwrap().to_str().unwrap();
    assert!(!message.contains(folder) && !message.contains("flowdesk.db"), "the answer names the file: {message}");
}

/// While another program holds the database's write lock past the busy
/// timeout, a finish is answered 503 `storage_unavailable` with
/// `Retry-After`, nothing changes, and the same call succeeds once the
/// lock is let go. The server's log says what happened.
#[test]
fn serve_answers_503_while_another_program_holds_the_database_and_the_call_succeeds_after() {
    let t = Flowdesk::new();
    let (id, token) = waiting_instance(&t, &t.db());
    let before = t.snapshot();
    let served = Served::spawn(serve_command(&t, &t.db(), &[("FLOWDESK_BUSY_TIMEOUT_MS", "200")])).unwrap();
    let holder = rusqlite::Connection::open(t.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();

    let finish = format!("/serveritems/{id}_2/finish");
    let (status, retry_after, body) = post_json(&served.base_url, &finish, &token, "{}");
    assert_eq!((status, body["code"].as_str()), (503, Some("storage_unavailable")), "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(body["message"].as_str().unwrap().contains("call again"), "{body}");
    let line = served.logged("storage_unavailable");
    assert_mentions(&line, &["503", "(busy)", &t.db().display().to_string(), "stayed busy"]);

    holder.execute_batch("ROLLBACK").unwrap();
    assert_eq!(t.snapshot(), before, "a call answered 503 changed the database");
    let (status, _, body) = post_json(&served.base_url, &finish, &token, "{}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.terminate(), Some(0));
    assert_eq!(t.status(id), "Completed");
}

/// Overwrites the first page of each of `tables` with bytes no page can
/// hold, after copying the write-ahead log into the file.
fn damage_tables(db: &Path, tables: &[&str]) {
    use std::io::{Seek, SeekFrom, Write};
    let connection = rusqlite::Connection::open(db).unwrap();
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let page_size: u64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
    let roots: Vec<u64> = tables
        .iter()
        .map(|table| {
            connection
                .query_row("SELECT rootpage FROM sqlite_schema WHERE name = ?", [table], |row| row.get(0))
                .unwrap()
        })
        .collect();
    drop(connection);
    let mut file = std::fs::OpenOptions::new().write(true).open(db).unwrap();
    for root in roots {
        file.seek(SeekFrom::Start((root - 1) * page_size)).unwrap();
        file.write_all(&vec![0xff; page_size as usize]).unwrap();
    }
}

/// A damaged database is no reason to call again: a finish is answered
/// 500 `storage_failed` saying the file is damaged, and the server's log
/// names the file and SQLite's own words. `show` says the same.
#[test]
fn serve_answers_500_storage_failed_on_a_damaged_database_and_its_log_names_the_cause() {
    let t = Flowdesk::new();
    let (id, token) = waiting_instance(&t, &t.db());
    damage_tables(&t.db(), &["instances", "server_items"]);
    // The command line says it as plainly.
    let line = t.refused("alice", &["show", &id.to_string()]);
    assert_mentions(&line, &[&format!("the database file {} is damaged", t.db().display())]);
    let served = Served::spawn(serve_command(&t, &t.db(), &[])).unwrap();

    let answer = post_json(&served.base_url, &format!("/serveritems/{id}_2/finish"), &token, "{}");
    assert_storage_failed(&answer, "the database file is damaged", &t.db());
    let line = served.logged("storage_failed");
    assert_mentions(&line, &["500", "(corrupt)", &t.db().display().to_string(), "is damaged", "malformed"]);
    assert_eq!(served.terminate(), Some(0));
}

/// A full disk is no reason to call again either: a start that needs more
/// room than is left is answered 500 `storage_failed` saying the disk is
/// full, the log names the disk's file, nothing is left behind, and once
/// there is room again the server goes on. Needs root (a small tmpfs).
#[test]
fn serve_answers_500_storage_failed_on_a_full_disk_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount(2048) else { return };
    let t = Flowdesk::new();
    let db = disk.path().join("flowdesk.db");
    let (id, token) = waiting_instance(&t, &db);
    let logs = t.write("logs.process.json", &logging_process(1, 100, 1_900));
    let run = |args: &[&str]| {
        let mut command = t.command();
        command.arg("--db").arg(&db).arg("--user").arg("alice").args(args);
        execute(command, &args.join(" "))
    };
    assert_eq!(run(&["deploy", path_str(&logs)]).code, Some(0));
    assert_eq!(run(&["grant", "logs", "biztalk", "start"]).code, Some(0));
    let served = Served::spawn(serve_command(&t, &db, &[])).unwrap();
    let before = run(&["instances", "--json"]).stdout;

    // A start that records 200 KB, with 100 KB free.
    disk.fill_leaving(100 * 1024);
    let answer = post_json(&served.base_url, "/processes/logs/instances", &token, "{}");
    assert_storage_failed(&answer, "the disk is full", &db);
    let line = served.logged("storage_failed");
    assert_mentions(&line, &["500", "(disk_full)", "full"]);

    disk.empty_filler();
    assert_eq!(run(&["instances", "--json"]).stdout, before, "a failed start left something behind");
    let (status, _, body) = post_json(&served.base_url, &format!("/serveritems/{id}_2/finish"), &token, "{}");
    assert_eq!(status, 200, "{body}");
    assert_eq!(served.terminate(), Some(0));
}

/// A database the server's user may not write is no reason to call again
/// either: `serve` starts (it reads), a finish is answered 500
/// `storage_failed` saying the file cannot be written, the log names the
/// file, and nothing changes. Needs root, to run the server as `nobody`
/// on a file root owns (root itself may write any file).
#[test]
fn serve_answers_500_storage_failed_on_a_database_its_user_may_not_write() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    use std::os::unix::process::CommandExt;
    // `/proc/self` belongs to whoever this process runs as.
    if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
        eprintln!("SKIPPED: running the server as another user needs root");
        return;
    }
    let t = Flowdesk::new();
    let (id, token) = waiting_instance(&t, &t.db());
    let before = t.snapshot();
    // `nobody` may enter the folder and make the log files there, and read
    // the database, but not write it.
    std::fs::set_permissions(t.dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(t.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = serve_command(&t, &t.db(), &[]);
    command.uid(65534).gid(65534);
    let served = Served::spawn(command).unwrap();

    let answer = post_json(&served.base_url, &format!("/serveritems/{id}_2/finish"), &token, "{}");
    assert_storage_failed(&answer, "cannot be written", &t.db());
    let line = served.logged("storage_failed");
    assert_mentions(&line, &["500", "(read_only)", &t.db().display().to_string(), "cannot be written", "readonly"]);
    assert_eq!(served.terminate(), Some(0));
    assert_eq!(t.snapshot(), before, "a refused write changed the database");
}

// 10. What the answers say, and the README's tour ---------------------------

const SHIPMENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/shipment.process.json");

#[test]
fn finish_says_at_which_activity_the_instance_completed() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let approved = fd.start("alice", &["callback"]);
    let rejected = fd.start("alice", &["callback"]);

    let out = fd.ok("alice", &["finish", &format!("{approved}_2"), "--set", "name=call back value"]);
    assert_eq!(out.stdout.trim(), format!("finished {approved}_2: instance {approved} completed at `Approved`"));
    let json = fd.json("alice", &["finish", &format!("{rejected}_2"), "--set", "name=no", "--json"]);
    assert_eq!(json["status"], "Completed");
    assert_eq!(json["completed_at"], serde_json::json!(["Rejected"]));
    assert_eq!(json["waiting_at"], serde_json::json!({}));
}

#[test]
fn start_and_finish_say_which_serial_the_instance_waits_on_and_where() {
    let fd = Flowdesk::new();
    fd.deploy("alice", Path::new(SHIPMENT));
    let id = fd.start("alice", &["shipment", "--folio", "S-1"]);
    // `start` prints the id alone on stdout; where the instance went is said on stderr.
    let out = fd.ok("alice", &["start", "shipment", "--folio", "S-2"]);
    let second: i64 = out.stdout.trim().parse().expect("an id");
    assert_eq!(
        out.stderr.trim(),
        format!("instance {second}: waiting for a callback on {second}_2 at `Book carrier` / `Request booking`")
    );

    // Booking done: the same activity's next event waits now.
    let out = fd.ok("alice", &["finish", &format!("{id}_2")]);
    assert_eq!(
        out.stdout.trim(),
        format!("finished {id}_2: instance {id} waiting for a callback on {id}_3 at `Book carrier` / `Request pickup`")
    );
    // Pickup done: the instance moved on to the next activity.
    let json = fd.json("alice", &["finish", &format!("{id}_3"), "--json"]);
    let waiting = json["waiting"].as_array().expect("waiting").clone();
    assert_eq!(waiting.len(), 1, "{json}");
    let serial = waiting[0].as_str().expect("a serial").to_owned();
    assert_eq!(json["waiting_at"][&serial], serde_json::json!({"activity": "Await delivery", "event": "Track parcel"}));
    assert_eq!(json["completed_at"], serde_json::json!([]));

    let out = fd.ok("alice", &["finish", &serial, "--set", "delivery_status=lost"]);
    assert_eq!(out.stdout.trim(), format!("finished {serial}: instance {id} completed at `Open claim`"));
}

#[test]
fn bench_callback_help_describes_the_scenario_from_within_the_repository() {
    let fd = Flowdesk::new();
    let mut command = fd.command();
    command.args(["bench", "callback", "--help"]);
    let out = execute(command, "bench callback --help");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains("SCENARIO.md"), "help points at a file users do not have: {}", out.stdout);
    assert_mentions(&out.stdout, &["BENCHMARKS.md", "verif", "64"]);
}

/// One `$ command` of a README console block and what it printed there.
#[derive(Debug)]
struct TourStep {
    command: String,
    printed: Vec<String>,
}

/// The first ```console block after `heading` in the README, as steps.
fn readme_console_block(heading: &str) -> Vec<TourStep> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).expect("README.md");
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("README lacks {heading:?}"))..];
    let block = section.split("```console\n").nth(1).expect("a console block").split("\n```").next().unwrap();
    let mut steps: Vec<TourStep> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push(TourStep { command: command.to_owned(), printed: Vec::new() }),
            None => steps.last_mut().expect("the block starts with a command").printed.push(line.to_owned()),
        }
    }
    steps
}

/// Times (`2026-12-01 09:30:00 UTC`) differ from run to run: each becomes `<time>`.
fn without_times(line: &str) -> String {
    let shape = "dddd-dd-dd dd:dd:dd UTC";
    let chars: Vec<char> = line.chars().collect();
    let is_time = |at: usize| {
        chars.len() >= at + shape.len()
            && shape.chars().zip(&chars[at..]).all(|(s, c)| if s == 'd' { c.is_ascii_digit() } else { s == *c })
    };
    let (mut plain, mut at) = (String::new(), 0);
    while at < chars.len() {
        if is_time(at) {
            plain.push_str("<time>");
            at += shape.len();
        } else {
            plain.push(chars[at]);
            at += 1;
        }
    }
    plain.trim_end().to_owned()
}

/// A printed line as the README shows it, where `…` stands for any text.
fn line_as_shown(shown: &str, printed: &str) -> bool {
    let (shown, printed) = (without_times(shown), without_times(printed));
    let mut parts = shown.split('…');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = printed.strip_prefix(first) else { return false };
    let mut parts: Vec<&str> = parts.collect();
    let Some(last) = parts.pop() else { return rest.is_empty() };
    for part in parts {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[test]
fn the_readme_tour_prints_what_the_readme_shows() {
    let fd = Flowdesk::new();
    let steps = readme_console_block("## A first process, from the command line");
    let alias = "alias flowdesk=target/release/flowdesk";
    assert_eq!(steps[0].command, alias, "the tour starts by naming the binary");

    // The block runs in one shell, as a reader would type it: the alias names
    // the binary under test, and `mktemp -d` makes its folder in ours.
    let mut script = String::from("shopt -s expand_aliases\nexec 2>&1\n");
    for (index, step) in steps.iter().enumerate() {
        let command = if step.command == alias {
            format!("alias flowdesk='{}'", env!("CARGO_BIN_EXE_flowdesk"))
        } else {
            step.command.clone()
        };
        script.push_str(&format!("echo '<step {index}>'\n{command}\n"));
    }
    let mut bash = Command::new("bash");
    bash.arg(fd.write("tour.sh", &script))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("FLOWDESK_DB")
        .env_remove("FLOWDESK_USER")
        .env("TMPDIR", fd.dir.path())
        .env("XDG_DATA_HOME", fd.dir.path().join("data"))
        .env("HOME", fd.dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = execute(bash, "the README tour");
    assert_eq!(out.code, Some(0), "{out:?}");

    let mut printed: Vec<Vec<String>> = Vec::new();
    for line in out.stdout.lines() {
        if line.starts_with("<step ") {
            printed.push(Vec::new());
        } else {
            printed.last_mut().expect("a step marker first").push(line.to_owned());
        }
    }
    assert_eq!(printed.len(), steps.len(), "{}", out.stdout);
    for (step, printed) in steps.iter().zip(&printed) {
        let same = step.printed.len() == printed.len()
            && step.printed.iter().zip(printed).all(|(shown, printed)| line_as_shown(shown, printed));
        assert!(
            same,
            "`$ {}` prints\n{}\nbut the README shows\n{}",
            step.command,
            printed.join("\n"),
            step.printed.join("\n")
        );
    }
}

/// One field of each type, and a wait so that a finish can set them.
const TYPES_PROCESS: &str = r#"{
  "name": "types",
  "fields": [
    { "name": "s", "type": "string" },
    { "name": "i", "type": "integer" },
    { "name": "d", "type": "decimal", "default": "1.50" },
    { "name": "b", "type": "boolean" },
    { "name": "t", "type": "date" }
  ],
  "activities": [
    { "id": "a", "name": "A", "start": true,
      "events": [ { "kind": "server_event", "name": "W", "synchronous": false } ] }
  ]
}"#;

/// Issue 15, point 2: `show --json` wrote `12.50` as the number `12.5` but
/// `1234567890.123456789` as a string. A decimal is always a string in its
/// written form.
#[test]
fn show_json_writes_every_decimal_as_a_string_in_its_written_form() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "types.process.json", TYPES_PROCESS);
    let id = fd.start("alice", &["types"]);
    assert_eq!(fd.show("alice", id)["data"]["d"], "1.50", "the default");
    for written in ["12.50", "1234567890.123456789", "0.000", "100000000000000000000"] {
        let id = fd.start("alice", &["types", "--set", &format!("d={written}")]);
        assert_eq!(fd.show("alice", id)["data"]["d"], written);
        let table = fd.ok("alice", &["show", &id.to_string()]).stdout;
        assert!(table.lines().any(|l| l.contains(" d ") && l.contains(written)), "{table}");
    }
}

/// Issue 15, point 8: what a person may type for each type at the command
/// line (the window reads the same way): the API's form, with surrounding
/// spaces ignored, and booleans also as yes/no/1/0 in any case. Before,
/// dates took `2026-1-1` and `+99999-01-01`, integers `+5`, and a decimal
/// with 29 places became 0.
#[test]
fn each_type_takes_what_a_person_types_at_the_command_line() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "types.process.json", TYPES_PROCESS);
    let accepted: &[(&str, &str, Value)] = &[
        ("s", "  keeps its spaces ", Value::from("  keeps its spaces ")),
        ("i", " 5 ", Value::from(5)),
        ("i", "-4", Value::from(-4)),
        ("d", " 12.50 ", Value::from("12.50")),
        ("b", "yes", Value::from(true)),
        ("b", "No", Value::from(false)),
        ("b", " TRUE", Value::from(true)),
        ("b", "0", Value::from(false)),
        ("t", " 2026-01-01 ", Value::from("2026-01-01")),
    ];
    let refused: &[(&str, &str)] = &[
        ("i", "+5"),
        ("i", "5.0"),
        ("i", "1_000"),
        ("d", "1_000"),
        ("d", "1e3"),
        ("d", ".5"),
        ("d", "0.00000000000000000000000000001"),
        ("b", "maybe"),
        ("t", "2026-1-1"),
        ("t", "-0001-01-01"),
        ("t", "+99999-01-01"),
        ("t", "99999-01-01"),
        ("t", "0000-01-01"),
    ];
    let mut wrong = Vec::new();
    for (field, typed, kept) in accepted {
        let out = fd.run("alice", &["start", "types", "--set", &format!("{field}={typed}")]);
        let Ok(id) = out.stdout.trim().parse::<i64>() else {
            wrong.push(format!("{field}={typed:?} was refused: {}", out.stderr.trim()));
            continue;
        };
        let data = fd.show("alice", id)["data"][field].clone();
        if data != *kept {
            wrong.push(format!("{field}={typed:?} became {data}, not {kept}"));
        }
    }
    let before = fd.json("alice", &["instances", "--limit", "0", "--json"]);
    for (field, typed) in refused {
        let out = fd.run("alice", &["start", "types", "--set", &format!("{field}={typed}")]);
        let said = out.stderr.trim();
        if out.code != Some(1) || !(said.contains("invalid data") && said.contains(&format!("`{field}`"))) {
            wrong.push(format!("{field}={typed:?} was answered {:?}: {said}", out.code));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    assert_eq!(fd.json("alice", &["instances", "--limit", "0", "--json"]), before, "nothing started");
}

/// Issue 15, point 8: `finish 0<id>_2` finished the item `<id>_2`. A person
/// may paste a serial with spaces around it; leading zeros are a different
/// text for the same item and are refused.
#[test]
fn finish_trims_a_pasted_serial_but_refuses_leading_zeros() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let id = fd.start("alice", &["callback"]);
    let serial = format!("{id}_2");
    for bad in [format!("0{serial}"), format!("{id}_02")] {
        let line = fd.refused_unchanged("alice", &["finish", &bad]);
        assert_mentions(&line, &["not a serial number", "leading zero"]);
    }
    fd.ok("alice", &["finish", &format!(" {serial}\n")]);
    assert_eq!(fd.status(id), "Completed");
}

/// Issue 15, point 14: the folio check is the engine's, so the command line
/// refuses what the API refuses.
#[test]
fn start_refuses_a_folio_with_control_characters() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    for folio in ["PO\u{7}1", "PO\r1", "\u{1b}[31mred"] {
        let line = fd.refused_unchanged("alice", &["start", "callback", "--folio", folio]);
        assert_mentions(&line, &["folio", "control character"]);
    }
    let id = fd.start("alice", &["callback", "--folio", "PO 1\tsecond"]);
    assert_eq!(fd.show("alice", id)["folio"], "PO 1\tsecond");
}

// 10. Issue 15: scripts that recurse too deep, loops through requests, recovery

use crate::support::external;

/// A process whose only event recurses as deep as `depth` says (1000 by
/// default), each call nested in parentheses (issue 15's script).
fn deep_recursion_process() -> String {
    let nested = format!("{}f(n - 1){}", "(".repeat(10), " + 1)".repeat(10));
    let script = format!("fn f(n) {{ if n <= 0 {{ 0 }} else {{ {nested} }} }}\nstage = f(depth).to_string();");
    serde_json::json!({
        "name": "deep",
        "fields": [{ "name": "stage", "type": "string" }, { "name": "depth", "type": "integer", "default": 1000 }],
        "activities": [{ "id": "nest", "name": "Nest", "start": true, "events": [
            { "kind": "server_event", "name": "Recurse", "script": script }
        ] }]
    })
    .to_string()
}

const TOO_DEEP: &str = "calls nested more than 64 levels deep (an endless recursion?)";

fn api_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(60)))
        .build()
        .new_agent()
}

/// A call to the served API as `token`'s user: status and JSON body.
fn api_call(served: &Served, token: &str, method: &str, path: &str) -> (u16, Value) {
    let url = format!("{}{path}", served.base_url);
    let agent = api_agent();
    let answer = match method {
        "POST" => agent
            .post(&url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send("{}"),
        _ => agent.get(&url).header("Authorization", format!("Bearer {token}")).call(),
    };
    let mut answer = answer.unwrap_or_else(|e| panic!("{method} {path}: no answer from the server: {e}"));
    let text = answer.body_mut().read_to_string().unwrap_or_default();
    (answer.status().as_u16(), serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `flowdesk start` ran such a script on the main thread and put the
/// instance in Error, but `flowdesk serve` ran it on an API worker thread,
/// whose stack overflowed and aborted the server.
#[test]
fn a_script_that_recurses_too_deep_fails_its_instance_from_start_and_through_serve() {
    let t = Flowdesk::new();
    t.deploy_text("alice", "deep.process.json", &deep_recursion_process());
    let id = t.start("alice", &["deep"]);
    let show = t.show("alice", id);
    assert_eq!(show["status"], "Error");
    assert!(show["error"]["message"].as_str().unwrap_or_default().ends_with(TOO_DEEP), "{show}");

    let token = t.ok("alice", &["token", "create", "alice"]).stdout.trim().to_owned();
    let served = Served::start(&t, "127.0.0.1:0");
    let (status, started) = api_call(&served, &token, "POST", "/processes/deep/instances");
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["status"], "Error");
    assert!(started["error"]["message"].as_str().unwrap_or_default().ends_with(TOO_DEEP), "{started}");
    let (status, shown) = api_call(&served, &token, "GET", &format!("/instances/{}", started["instance_id"]));
    assert_eq!((status, shown["status"].as_str()), (200, Some("Error")), "the server still serves");
    assert_eq!(served.terminate(), Some(0));
}

/// One start activity whose synchronous `GET` leads back to the activity
/// itself; the line's rule always holds (without a rule the definition is
/// refused: an endless loop with nothing to wait for).
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

/// An hour, in milliseconds: far more than any claim's lease.
const HOUR_MS: &str = "3600000";

/// Deploys the request loop against `external` and starts it with a binary
/// that kills itself just before its third request: instance 1 is left
/// `Running`, its runner dead, two requests sent. The runner's clock was an
/// hour back, so its claim has run out for everyone else.
fn killed_in_a_request_loop(t: &Flowdesk, external: &external::ExternalSystem) {
    killed_in_a_request_loop_at(t, external, &format!("-{HOUR_MS}"));
}

/// [`killed_in_a_request_loop`] with the runner's clock `offset_ms` away.
fn killed_in_a_request_loop_at(t: &Flowdesk, external: &external::ExternalSystem, offset_ms: &str) {
    t.deploy_text("alice", "poll.process.json", &request_loop(&external.url("/status")));
    let mut command = t.command();
    command.env("FLOWDESK_KILL_AT", "before-async-script:3").env("FLOWDESK_CLOCK_OFFSET_MS", offset_ms);
    command.arg("--db").arg(t.db()).args(["--user", "alice", "start", "poll"]);
    let killed = execute(command, "start poll (killed before its third request)");
    assert_eq!(killed.code, None, "killed by its signal: {killed:?}");
    assert_eq!(external.requests().len(), 2);
}

/// Answers 200 to the first `limit` requests and 500 after, so that a loop
/// that nothing stops still ends, in a failure the test tells apart.
fn ok_until(limit: usize) -> impl Fn(&external::ReceivedRequest) -> external::Reply + Send + Sync + 'static {
    let answered = std::sync::atomic::AtomicUsize::new(0);
    move |_| {
        if answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < limit {
            external::Reply::ok()
        } else {
            external::Reply::status(500, "enough")
        }
    }
}

/// Every command used to take such an instance over when it opened the
/// database and run its loop on, so that `instances`, `show`, even `stop`
/// hung. Reading commands now do no recovery work (they say an instance
/// waits for it), and `stop` reaches the instance.
#[test]
fn a_runner_killed_in_a_request_loop_holds_up_no_later_command_and_stop_reaches_it() {
    let t = Flowdesk::new();
    let external = external::ExternalSystem::start(ok_until(100));
    killed_in_a_request_loop(&t, &external);

    let listed = t.ok("alice", &["instances", "--json"]);
    let listed: Value = serde_json::from_str(&listed.stdout).unwrap();
    assert_eq!(listed[0]["status"], "Running", "{listed}");
    for args in [&["show", "1", "--json"][..], &["items", "--json"], &["processes"], &["instances"]] {
        let out = t.ok("alice", args);
        assert_eq!(out.stderr_lines().len(), 1, "{out:?}");
        assert_mentions(&out.stderr, &["instance 1", "runner", "flowdesk recover"]);
    }
    assert_eq!(external.requests().len(), 2, "no command ran the loop on");

    let stopped = t.ok("alice", &["stop", "1"]);
    assert_eq!(stopped.stdout.trim(), "stopped instance 1: stopped");
    assert_eq!(t.status(1), "Stopped");
    assert!(t.ok("alice", &["instances"]).stderr.is_empty(), "a stopped instance waits for no recovery");
    assert_eq!(external.requests().len(), 2);
}

/// `flowdesk recover` takes the instance over in the foreground and says
/// where each one it ran on stands.
#[test]
fn recover_runs_a_killed_runners_instance_on_and_says_where_it_stands() {
    let t = Flowdesk::new();
    let external = external::ExternalSystem::start(ok_until(3));
    killed_in_a_request_loop(&t, &external);

    let recovered = t.ok("alice", &["recover"]);

    assert_eq!(external.requests().len(), 4, "the third request sent again, then a fourth that failed");
    let line = format!("recovered instance 1: in error at `Poll` / `Ask`: GET {}", external.url("/status"));
    assert_eq!(recovered.stdout.trim(), format!("{line} answered 500 Internal Server Error: enough"), "{recovered:?}");
    assert_eq!(t.status(1), "Error");
    assert_eq!(t.ok("alice", &["recover"]).stdout.trim(), "nothing to recover");
}

/// A runner killed a moment ago looks no different from a live one until
/// its claim runs out (there is no asking the operating system whether it
/// lives: it may run on another host). `recover` leaves it alone and says
/// until when it is held; once that has passed, it takes the instance over.
#[test]
fn recover_leaves_a_just_killed_runners_instance_until_its_claim_runs_out() {
    let t = Flowdesk::new();
    let external = external::ExternalSystem::start(ok_until(3));
    killed_in_a_request_loop_at(&t, &external, "0");

    let held = t.ok("alice", &["recover"]);
    assert_eq!(held.stdout.trim(), "nothing to recover");
    assert_eq!(held.stderr_lines().len(), 1, "{held:?}");
    assert_mentions(&held.stderr, &["instance 1", "held by its runner until", "recovery takes it over"]);
    assert!(t.ok("alice", &["instances"]).stderr.is_empty(), "no instance waits for recovery yet");
    assert_eq!(external.requests().len(), 2);

    let mut later = t.command();
    later.env("FLOWDESK_CLOCK_OFFSET_MS", HOUR_MS).arg("--db").arg(t.db()).args(["--user", "alice", "recover"]);
    let recovered = execute(later, "recover (an hour later)");
    assert_eq!(recovered.code, Some(0), "{recovered:?}");
    assert!(recovered.stdout.starts_with("recovered instance 1: in error"), "{recovered:?}");
    assert_eq!(external.requests().len(), 4, "the third request sent again, then a fourth that failed");
}

/// `serve` takes such an instance over on a thread of its own: it answers
/// calls while the recovered loop's request is out, and an operator's stop
/// (from another command) ends the loop at its next step.
#[test]
fn serve_runs_a_killed_runners_loop_on_in_the_background_and_a_stop_reaches_it() {
    let t = Flowdesk::new();
    let (arrived, request_arrived) = std::sync::mpsc::channel::<usize>();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (arrived, released) = (std::sync::Mutex::new(arrived), std::sync::Mutex::new(released));
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let external = external::ExternalSystem::start(move |_| {
        let n = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        if n == 3 {
            let _ = arrived.lock().unwrap().send(n);
            // Held until the test has made its calls (bounded, so that a
            // server that never gets there still ends the test).
            let _ = released.lock().unwrap().recv_timeout(std::time::Duration::from_secs(20));
        }
        if n > 100 { external::Reply::status(500, "enough") } else { external::Reply::ok() }
    });
    killed_in_a_request_loop(&t, &external);
    let token = t.ok("alice", &["token", "create", "alice"]).stdout.trim().to_owned();

    let served = Served::start(&t, "127.0.0.1:0");
    assert_eq!(request_arrived.recv_timeout(common_cli::HANG_LIMIT).unwrap(), 3, "recovery sent the request again");
    let (status, shown) = api_call(&served, &token, "GET", "/instances/1");
    assert_eq!((status, shown["status"].as_str()), (200, Some("Running")), "answered while the request is out");
    let stopped = t.ok("alice", &["stop", "1"]);
    assert_eq!(stopped.stdout.trim(), "stopped instance 1: stopped");
    release.send(()).unwrap();
    assert_eq!(served.terminate(), Some(0));

    assert_eq!(t.status(1), "Stopped");
    assert_eq!(external.requests().len(), 3, "the loop ended at the stop");
}

// Issue 15: numbers the store keeps, duplicate lines, what a run records, and
// opening databases. ------------------------------------------------------------

const PURCHASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/purchase-approval.process.json");

fn sample_json(path: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("sample")).expect("sample JSON")
}

/// Regression (issue 15, point 11): a position of `1e39` passed `validate`
/// and `deploy`, was stored as `null`, and every `start` of the version then
/// failed with "stored definition does not parse".
#[test]
fn regression_a_position_beyond_the_canvas_is_refused_by_validate_and_deploy() {
    let fd = Flowdesk::new();
    let text = serde_json::to_string(&sample_json(CALLBACK)).unwrap();
    let file = fd.write("far.process.json", &text.replacen("60.0", "1e39", 1));
    assert!(std::fs::read_to_string(&file).unwrap().contains("1e39"));

    // Beyond what a position's number can hold: refused as the file is read.
    let out = fd.run("alice", &["validate", path_str(&file)]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_mentions(&out.stderr, &["far.process.json", "line 1, column", "number out of range"]);
    let line = fd.refused("alice", &["deploy", path_str(&file)]);
    assert_mentions(&line, &["number out of range"]);

    // A number it can hold, but off the canvas: refused by validation.
    let file = fd.write("off.process.json", &text.replacen("60.0", "2e6", 1));
    let out = fd.run("alice", &["validate", path_str(&file)]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_mentions(&out.stdout, &["position (2000000, 160) is off the canvas", "between -1000000 and 1000000"]);
    let line = fd.refused("alice", &["deploy", path_str(&file)]);
    assert_mentions(&line, &["process `callback` is not valid", "off the canvas"]);
    assert_eq!(fd.json("alice", &["processes", "--json"]), serde_json::json!([]));
}

/// Deploy answers only once what it stored reads back as what it was given;
/// otherwise nothing is deployed. A trigger stands in for a store that keeps
/// something else than it was handed (as `1e39` became `null`).
#[test]
fn regression_deploy_reads_back_what_it_stored_and_keeps_nothing_that_does_not() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    {
        let connection = rusqlite::Connection::open(fd.db()).unwrap();
        connection
            .execute_batch(
                "CREATE TRIGGER lose_a_number AFTER INSERT ON versions BEGIN
                   UPDATE versions SET definition = json_set(definition, '$.activities[0].position.x', json('null'))
                    WHERE process = new.process AND version = new.version;
                 END;",
            )
            .unwrap();
    }
    let line = fd.refused_unchanged("alice", &["deploy", CALLBACK]);
    assert_mentions(&line, &["callback version 2", "does not read back", "nothing was deployed"]);
    let processes = fd.json("alice", &["processes", "--json"]);
    assert_eq!(processes[0]["default_version"], 1, "{processes}");
    fd.start("alice", &["callback"]);
}

/// Versions deployed before duplicate lines and the size limits were refused
/// keep running: the limits keep new versions out, they do not strand the
/// instances of old ones.
#[test]
fn a_version_deployed_before_the_new_limits_still_starts_and_finishes() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    {
        let connection = rusqlite::Connection::open(fd.db()).unwrap();
        let changed = connection
            .execute(
                "UPDATE versions SET definition = json_insert(definition, '$.lines[#]', json('{\"from\": \"prepare\", \"to\": \"call\"}'))
                  WHERE process = 'callback'",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let id = fd.start("alice", &["callback"]);
    assert_eq!(fd.status(id), "Active");
    // The duplicate line starts `call` twice, as it did when it was deployed.
    assert_eq!(fd.pending(id).len(), 2);
}

/// Regression (issue 15, point 12): the purchase-approval sample with 6,000
/// copies of its first two lines validated with no problem, and one start
/// took 12.9 s and 2.8 GB.
#[test]
fn regression_the_purchase_sample_with_thousands_of_duplicate_lines_is_refused() {
    let fd = Flowdesk::new();
    let mut process = sample_json(PURCHASE);
    let first_two: Vec<Value> = process["lines"].as_array().unwrap()[..2].to_vec();
    let lines = process["lines"].as_array_mut().unwrap();
    for _ in 0..6_000 {
        lines.extend(first_two.iter().cloned());
    }
    let file = fd.write("copies.process.json", &serde_json::to_string(&process).unwrap());
    let out = fd.run("alice", &["validate", path_str(&file)]);
    assert_eq!(out.code, Some(1), "{:?}", out.stderr);
    let problems: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(problems[0], "error: process: the process has 12006 lines; at most 2000 are allowed");
    assert_eq!(
        problems[1],
        "error: line 7 (Submit request → Check budget): the same line as line 1: same start, end and rule"
    );
    assert_eq!(problems.iter().filter(|p| p.contains("the same line as")).count(), 12_000);
    let line = fd.refused("alice", &["deploy", path_str(&file)]);
    assert_mentions(&line, &["process `purchase-approval` is not valid", "12001 error(s)", "12006 lines"]);
    assert_eq!(fd.json("alice", &["processes", "--json"]), serde_json::json!([]));
}

/// A process whose start activity fans out to `branches` activities, each
/// of whose script logs `lines` lines of `width` characters.
fn logging_process(branches: usize, lines: usize, width: usize) -> String {
    let script = format!(
        "let text = \\\"\\\"; text.pad({width}, \\\"x\\\"); for i in 0..{lines} {{ log(`${{i}} ${{text}}`); }}"
    );
    let mut activities = vec![r#"{"id": "s", "name": "S", "start": true}"#.to_owned()];
    let mut arrows = Vec::new();
    for b in 0..branches {
        activities.push(format!(
            r#"{{"id": "b{b}", "name": "B{b}", "events": [{{"kind": "server_event", "name": "Log", "script": "{script}"}}]}}"#
        ));
        arrows.push(format!(r#"{{"from": "s", "to": "b{b}"}}"#));
    }
    format!(r#"{{"name": "logs", "activities": [{}], "lines": [{}]}}"#, activities.join(","), arrows.join(","))
}

fn log_details(show: &Value) -> Vec<String> {
    show["audit"]
        .as_array()
        .expect("audit is an array")
        .iter()
        .filter(|a| a["action"] == "Log")
        .map(|a| a["detail"].as_str().expect("detail").to_owned())
        .collect()
}

/// One step (here one script) records at most 100 log lines of at most 2,000
/// characters; what it logged beyond is counted in one more line.
#[test]
fn regression_one_step_records_a_bounded_number_of_log_lines() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "logs.process.json", &logging_process(1, 1_000, 5_000));
    let id = fd.start("alice", &["logs"]);
    assert_eq!(fd.status(id), "Completed");
    let logs = log_details(&fd.show("alice", id));
    assert_eq!(logs.len(), 101, "{:?}", logs.iter().map(|l| l.len()).collect::<Vec<_>>());
    assert!(
        logs[..100].iter().all(|l| l.chars().count() <= "Log: ".len() + 2_000 + "…".len()),
        "a line was kept whole"
    );
    assert!(logs[0].starts_with("Log: 0 xxx") && logs[0].ends_with('…'), "{}", &logs[0][..40]);
    assert_eq!(logs[100], "Log: 900 more log lines not recorded: one step records at most 100 lines");
}

/// A run that records more than 4 MiB of history without waiting stops in
/// Error, as an endless loop does, instead of writing a row of any size.
#[test]
fn regression_a_run_that_records_too_much_stops_in_error() {
    let fd = Flowdesk::new();
    // 40 branches of 100 lines of about 2,000 characters: 8 MB if kept.
    fd.deploy_text("alice", "logs.process.json", &logging_process(40, 100, 2_000));
    let id = fd.start("alice", &["logs"]);
    let show = fd.show("alice", id);
    assert_eq!(show["status"], "Error", "{}", show["error"]);
    let failure = show["error"]["message"].as_str().unwrap_or_default();
    assert_mentions(failure, &["recorded more than 4 MiB", "without waiting"]);
    let kept: usize = show["audit"].as_array().unwrap().iter().map(|a| a["detail"].as_str().unwrap().len()).sum();
    assert!(kept < 5 * 1024 * 1024, "{kept} bytes of audit");
}

/// Every command that works on an existing database refuses a path where
/// there is none, instead of creating an empty one (a mistyped `--db`).
#[test]
fn regression_a_mistyped_db_path_is_refused_and_nothing_is_created() {
    let fd = Flowdesk::new();
    let commands: &[&[&str]] = &[
        &["processes"],
        &["start", "callback"],
        &["instances"],
        &["show", "1"],
        &["items"],
        &["finish", "1_2"],
        &["grant", "callback", "bob", "view"],
        &["revoke", "callback", "bob", "view"],
        &["rights", "callback"],
        &["retry", "1"],
        &["stop", "1"],
        &["resume", "1"],
        &["goto", "1", "call"],
        &["set", "1", "--set", "name=x"],
        &["token", "list"],
        &["token", "create", "bob"],
        &["token", "revoke", "1"],
    ];
    for typo in [fd.dir.path().join("flowdesk.dbb"), fd.dir.path().join("no-such-folder").join("flowdesk.db")] {
        for args in commands {
            let mut command = fd.command();
            command.arg("--db").arg(&typo).arg("--user").arg("alice").args(*args);
            let out = execute(command, &args.join(" "));
            let line = assert_refused(&out, &args.join(" "));
            assert_eq!(line, format!("flowdesk: no database at {}", typo.display()), "{args:?}");
            assert!(!typo.exists(), "`{}` created {}", args.join(" "), typo.display());
            assert!(!fd.dir.path().join("no-such-folder").exists(), "`{}` created a folder", args.join(" "));
        }
    }
    // Deploying creates the database (and its folder).
    let db = fd.dir.path().join("new-folder").join("flowdesk.db");
    let mut command = fd.command();
    command.arg("--db").arg(&db).arg("--user").arg("alice").args(["deploy", CALLBACK]);
    assert_eq!(execute(command, "deploy").code, Some(0));
    assert!(db.exists());
}

/// The database's file and every file beside it named after it (its
/// journals), each with its length and the SHA-256 of its bytes.
fn files_of(db: &Path) -> Vec<(String, usize, String)> {
    use sha2::Digest;
    let name = db.file_name().unwrap().to_string_lossy().into_owned();
    let mut files: Vec<(String, usize, String)> = std::fs::read_dir(db.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.file_name().unwrap().to_string_lossy().starts_with(&name))
        .map(|path| {
            let bytes = std::fs::read(&path).unwrap();
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            (file, bytes.len(), hex::encode(sha2::Sha256::digest(&bytes)))
        })
        .collect();
    files.sort();
    files
}

/// Runs `args` on the database at `db`, which must be refused, leaving every
/// byte of it as it was and no journal beside it; returns the stderr line.
fn refused_untouched(fd: &Flowdesk, db: &Path, args: &[&str]) -> String {
    let before = files_of(db);
    let mut command = fd.command();
    command.arg("--db").arg(db).arg("--user").arg("alice").args(args);
    let out = execute(command, &args.join(" "));
    let line = assert_refused(&out, &args.join(" "));
    assert_eq!(files_of(db), before, "`flowdesk {}` on {} touched it: {line}", args.join(" "), db.display());
    line
}

/// Regression (issue 15, point 14): a foreign SQLite file was refused, but
/// only after flowdesk had switched it to WAL. Its identity is now checked
/// on a read-only look first, and nothing is written to a file refused.
#[test]
fn regression_a_foreign_database_is_refused_without_being_touched() {
    let fd = Flowdesk::new();
    let make = |name: &str, sql: &str| -> PathBuf {
        let path = fd.dir.path().join(name);
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.execute_batch(sql).unwrap();
        drop(connection);
        path
    };
    let cases = [
        (make("notes.db", "CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES ('keep me');"), "notes"),
        (make("versioned.db", "CREATE TABLE notes (text TEXT); PRAGMA user_version = 3;"), "notes"),
        (make("other-app.db", "PRAGMA application_id = 1196444237; CREATE TABLE t (x);"), "application id 1196444237"),
        (
            make("wal-app.db", "PRAGMA journal_mode = WAL; CREATE TABLE processes (x); PRAGMA user_version = 2;"),
            "versions",
        ),
    ];
    for (db, why) in &cases {
        for args in [&["processes"][..], &["deploy", CALLBACK], &["instances"]] {
            let line = refused_untouched(&fd, db, args);
            assert_mentions(&line, &[&format!("{} is not a flowdesk database", db.display()), why]);
        }
    }
    let text = fd.write(
        "notes.txt",
        "not a database at all, but long enough to have a header of a hundred bytes\n".repeat(3).as_str(),
    );
    let line = refused_untouched(&fd, &text, &["deploy", CALLBACK]);
    assert_mentions(&line, &[&format!("{} is not a flowdesk database", text.display()), "not an SQLite file"]);
}

/// Regression (issue 15, point 14): `user_version = -1` was taken for a
/// database that needs no migration.
#[test]
fn regression_a_schema_version_this_build_does_not_know_is_refused_with_the_number() {
    for (version, expected) in [
        (-1, "is not a flowdesk database: its schema version is -1".to_owned()),
        (99, "has schema version 99, newer than this flowdesk (".to_owned()),
    ] {
        let fd = Flowdesk::new();
        fd.deploy_callback("alice");
        let connection = rusqlite::Connection::open(fd.db()).unwrap();
        connection.pragma_update(None, "user_version", version).unwrap();
        drop(connection);
        for args in [&["processes"][..], &["deploy", CALLBACK], &["start", "callback"]] {
            let line = refused_untouched(&fd, &fd.db(), args);
            assert_mentions(&line, &[&format!("{} {expected}", fd.db().display())]);
        }
    }
}

/// No part of an error message is said twice in a row ("database: database:").
fn assert_no_repeated_prefix(stderr: &str) {
    for line in stderr.lines() {
        let parts: Vec<String> = line.split(": ").map(|p| p.trim().to_lowercase()).collect();
        for pair in parts.windows(2) {
            assert!(pair[0] != pair[1], "`{}` is said twice in {line:?}", pair[0]);
        }
    }
}

/// A tmpfs of `kib` KiB mounted for a test, unmounted when dropped.
struct SmallDisk {
    dir: TempDir,
}

impl SmallDisk {
    /// `None` (and a note on stderr) where mounting is impossible: the
    /// test needs root, as CI has.
    fn mount(kib: usize) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => Some(SmallDisk { dir }),
            Ok(out) => {
                eprintln!("SKIPPED: cannot mount a small tmpfs (needs root): {}", String::from_utf8_lossy(&out.stderr));
                None
            }
            Err(err) => {
                eprintln!("SKIPPED: cannot run mount: {err}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the disk with a file up to its last byte, then gives back
    /// `free` bytes of it.
    fn fill_leaving(&self, free: u64) {
        use std::io::Write;
        let filler = self.path().join("filler");
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&filler).unwrap();
        let block = vec![0u8; 4096];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(err) if err.raw_os_error() == Some(28) => break,
                Err(err) => panic!("filling the disk: {err}"),
            }
        }
        let length = file.metadata().unwrap().len();
        file.set_len(length.saturating_sub(free)).unwrap();
    }

    fn empty_filler(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Regression (issue 15, point 14): a disk already full when a command
/// started was reported as "disk I/O error"; a disk that filled during a
/// commit as "database: database: the disk … is full". Both now say the
/// disk is full, once, and lose nothing.
#[test]
fn regression_a_full_disk_is_named_once_and_loses_nothing() {
    let Some(disk) = SmallDisk::mount(2048) else { return };
    let fd = Flowdesk::new();
    let db = disk.path().join("flowdesk.db");
    let run = |args: &[&str]| {
        let mut command = fd.command();
        command.arg("--db").arg(&db).arg("--user").arg("alice").args(args);
        execute(command, &args.join(" "))
    };
    assert_eq!(run(&["deploy", CALLBACK]).code, Some(0));
    let logs = fd.write("logs.process.json", &logging_process(1, 100, 1_900));
    assert_eq!(run(&["deploy", path_str(&logs)]).code, Some(0));
    let started = run(&["start", "callback"]);
    assert_eq!(started.code, Some(0), "{started:?}");
    let before = run(&["instances", "--json"]).stdout;

    // Full before the command starts.
    disk.fill_leaving(0);
    for args in [&["start", "callback"][..], &["instances"], &["finish", "1_2"]] {
        let out = run(args);
        let line = assert_refused(&out, &args.join(" "));
        assert_mentions(&line, &[&format!("the disk holding {} is full", db.display())]);
        assert_no_repeated_prefix(&out.stderr);
    }

    // Full during the commit: a start that records 200 KB, with 100 KB free.
    disk.empty_filler();
    disk.fill_leaving(100 * 1024);
    let out = run(&["start", "logs"]);
    let line = assert_refused(&out, "start logs");
    assert_mentions(&line, &[&format!("the disk holding {} is full", db.display())]);
    assert_no_repeated_prefix(&out.stderr);

    disk.empty_filler();
    assert_eq!(run(&["instances", "--json"]).stdout, before, "a refused start left something behind");
    assert_eq!(run(&["finish", "1_2"]).code, Some(0));
}

/// Refusals of every kind say each part of their message once.
#[test]
fn refusals_of_every_kind_say_each_part_of_their_message_once() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    let notes = fd.dir.path().join("notes.db");
    rusqlite::Connection::open(&notes).unwrap().execute_batch("CREATE TABLE notes (x);").unwrap();
    let runs: Vec<Out> = vec![
        fd.run("alice", &["deploy", "missing.process.json"]),
        fd.run("alice", &["start", "nope"]),
        fd.run("alice", &["finish", "9_2"]),
        {
            let mut command = fd.command();
            command.arg("--db").arg(&notes).args(["--user", "alice", "processes"]);
            execute(command, "processes")
        },
        {
            let mut command = fd.command();
            command.arg("--db").arg(fd.dir.path().join("typo.db")).args(["--user", "alice", "processes"]);
            execute(command, "processes")
        },
    ];
    for out in runs {
        assert_eq!(out.code, Some(1), "{out:?}");
        assert_no_repeated_prefix(&out.stderr);
    }
}

/// A wait whose deadline, three hours on, finishes it.
const DEADLINE_PROCESS: &str = r#"{
  "name": "deadline",
  "fields": [ { "name": "name", "type": "string" } ],
  "activities": [
    { "id": "wait", "name": "Wait", "start": true,
      "events": [ { "kind": "server_event", "name": "Call", "synchronous": false, "script": "" } ],
      "escalations": [
        { "name": "Give up", "after": "3h", "action": { "finish": { "set": { "name": "timed out" } } } } ] }
  ]
}"#;

impl Flowdesk {
    /// Runs a command with this process's clock moved on by `offset_ms`.
    fn later(&self, offset_ms: &str, user: &str, args: &[&str]) -> Out {
        let mut command = self.command();
        command.env("FLOWDESK_CLOCK_OFFSET_MS", offset_ms).arg("--db").arg(self.db()).arg("--user").arg(user);
        command.args(args);
        execute(command, &format!("(at +{offset_ms} ms) {}", args.join(" ")))
    }
}

/// Issue 17: `serve` runs the ticker, so a deadline that has fallen due
/// fires while it serves, without `timers run`, and its log says so.
#[test]
fn serve_fires_a_deadline_that_has_fallen_due_without_timers_run() {
    let t = Flowdesk::new();
    t.deploy_text("alice", "deadline.process.json", DEADLINE_PROCESS);
    let id = t.start("alice", &["deadline"]);
    let served = Served::spawn(serve_command(&t, &t.db(), &[("FLOWDESK_CLOCK_OFFSET_MS", "14400000")])).unwrap();
    // Logged once the firing's round has committed.
    served.logged("fired 1 timer that fell due");
    let detail = t.show("alice", id);
    assert_eq!((detail["status"].as_str(), detail["data"]["name"].as_str()), (Some("Completed"), Some("timed out")));
    assert_eq!(audit_users(&detail, "Escalation fired"), ["deadline"]);
    assert_eq!(served.terminate(), Some(0));
}

/// Issue 17 on the command line: `show` lists the pending timer, `items`
/// says when it is due and `--overdue` which are late, `timers run` fires
/// what is due once and exits, and the instance goes on by its deadline.
#[test]
fn timers_run_fires_what_is_due_and_show_and_items_say_when_things_fall_due() {
    let t = Flowdesk::new();
    t.deploy_text("alice", "deadline.process.json", DEADLINE_PROCESS);
    let id = t.start("alice", &["deadline"]);

    let shown = t.ok("alice", &["show", &id.to_string()]).stdout;
    assert_mentions(&shown, &["Pending timers", "Give up", "finish the item", "in 2h 59m"]);
    let detail = t.show("alice", id);
    assert_eq!(detail["timers"][0]["name"], "Give up");
    assert_eq!(detail["timers"][0]["serial"], format!("{id}_1"));
    let items = t.json("alice", &["items", "--json"]);
    assert!(items[0]["due"].is_string(), "{items}");
    assert_eq!(t.ok("alice", &["items", "--overdue"]).stdout.trim(), "no pending server items");

    let early = t.ok("alice", &["timers", "run"]);
    assert_eq!(early.stdout.trim(), "fired 0 timers");
    let four_hours = "14400000";
    let overdue = t.later(four_hours, "alice", &["items", "--overdue"]);
    assert_mentions(&overdue.stdout, &[&format!("{id}_1"), "overdue 1h"]);

    let fired = t.later(four_hours, "alice", &["timers", "run"]);
    assert_eq!(fired.code, Some(0), "{fired:?}");
    assert_eq!(fired.stdout.trim(), format!("instance {id}: completed\nfired 1 timer"));
    let detail = t.show("alice", id);
    assert_eq!(detail["status"], "Completed");
    assert_eq!(detail["data"]["name"], "timed out");
    assert_eq!(detail["timers"].as_array().unwrap().len(), 0);
    let again = t.later(four_hours, "alice", &["timers", "run"]);
    assert_eq!(again.stdout.trim(), "fired 0 timers", "fired once");
    let late = t.refused("alice", &["finish", &format!("{id}_1")]);
    assert_mentions(&late, &["already finished at", "by deadline"]);
}

/// Issue 19: `show` names a child's parent and a parent's children, in
/// words and in `--json`; `instances --json` carries the parent's id; and
/// deploying a process before the child it calls is refused with the place.
#[test]
fn show_links_a_parent_and_its_children() {
    let fd = Flowdesk::new();
    let sample = |name: &str| format!("{}/samples/{name}.process.json", env!("CARGO_MANIFEST_DIR"));
    let refused = fd.run("alice", &["deploy", &sample("order")]);
    assert_ne!(refused.code, Some(0));
    assert_mentions(&refused.stderr, &["2 error(s)", "`Log the order`", "child process `audit-log` is not deployed"]);
    for name in ["payment", "audit-log", "order"] {
        fd.deploy("alice", Path::new(&sample(name)));
    }
    let order = fd.start("alice", &["order", "--folio", "ORDER-9"]);
    let (log, payment) = (order + 1, order + 2);

    let parent = fd.ok("alice", &["show", &order.to_string()]).stdout;
    assert!(
        parent.contains(&format!("child       instance {log} (audit-log version 1, Completed), started at")),
        "{parent}"
    );
    assert!(
        parent.contains(&format!("child       instance {payment} (payment version 1, Active), waited for at")),
        "{parent}"
    );
    let child = fd.ok("alice", &["show", &payment.to_string()]).stdout;
    let line = format!("started by  instance {order} (order), event `Pay` of `Take payment`, which waits on {order}_2");
    assert!(child.contains(&line), "{child}");

    let json = fd.show("alice", payment);
    assert_eq!(json["parent"]["id"], order);
    assert_eq!(json["parent"]["serial"], format!("{order}_2"));
    assert_eq!(json["parent"]["depth"], 1);
    let json = fd.show("alice", order);
    assert_eq!(json["parent"], Value::Null);
    let children: Vec<(i64, String)> = json["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["id"].as_i64().unwrap(), c["status"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(children, [(log, "Completed".to_owned()), (payment, "Active".to_owned())]);
    let list = fd.json("alice", &["instances", "--json"]);
    let parents: Vec<(i64, Value)> =
        list.as_array().unwrap().iter().map(|i| (i["id"].as_i64().unwrap(), i["parent"].clone())).collect();
    assert!(parents.contains(&(payment, Value::from(order))) && parents.contains(&(order, Value::Null)), "{parents:?}");
}

// ----- bulk actions (issue 18) -------------------------------------------------

/// Four `ops` instances: the first three in error at `Check` (their wait
/// finished with no amount), the fourth still waiting.
fn three_in_error_one_waiting(fd: &Flowdesk) -> Vec<i64> {
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let ids: Vec<i64> = (0..4).map(|_| fd.start("alice", &["ops"])).collect();
    for id in &ids[..3] {
        fd.ok("alice", &["finish", &format!("{id}_1")]);
        assert_eq!(fd.status(*id), "Error");
    }
    ids
}

#[test]
fn bulk_retry_by_filter_dry_run_then_partial_refusals_exit_1() {
    let fd = Flowdesk::new();
    let ids = three_in_error_one_waiting(&fd);
    fd.ok("alice", &["set", &ids[0].to_string(), "--set", "amount=5"]);

    let before = fd.snapshot();
    let out = fd.ok("alice", &["retry", "--process", "ops", "--status", "error", "--dry-run"]);
    let expected: Vec<String> = std::iter::once("would retry 3 instances (dry run: nothing was changed)".to_owned())
        .chain(ids[..3].iter().map(|id| format!("instance {id}")))
        .collect();
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected);
    let listed = fd.json("alice", &["retry", "--process", "ops", "--status", "error", "--dry-run", "--json"]);
    assert_eq!(listed["count"], 3);
    assert_eq!(listed["targets"][0]["instance_id"], ids[0]);
    assert_eq!(fd.snapshot(), before, "a dry run changed the database");

    // Every instance of the process: the waiting one refuses, the rest are retried.
    let out = fd.run("alice", &["retry", "--process", "ops"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        [
            "3 done, 1 refused".to_owned(),
            format!("refused: instance {}: cannot retry instance {}: it is Active", ids[3], ids[3])
        ]
    );
    assert_eq!(fd.status(ids[0]), "Completed");
    assert_eq!(fd.status(ids[1]), "Error");
    let trail = fd.show("alice", ids[0]);
    let retried: Vec<String> = trail["audit"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|line| line["action"] == "Retried")
        .map(|line| line["detail"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(retried, ["`Check` Check amount; part of a bulk retry of 4"]);

    // All done is exit 0, as JSON per instance.
    let report = fd.json("alice", &["retry", "--status", "error", "--search", &ids[1].to_string(), "--json"]);
    assert_eq!((report["total"].as_u64(), report["done"].as_u64()), (Some(1), Some(1)));
    assert_eq!(report["results"][0]["result"], "done");
    assert_eq!(report["results"][0]["status"], "Error");
    // Admin is checked per instance: bob may act on none.
    let out = fd.run("bob", &["stop", "--ids", "-"]);
    assert_eq!((out.code, out.stdout.trim()), (Some(0), "0 done, 0 refused"), "{out:?}");
}

#[test]
fn bulk_dry_run_says_which_targets_would_be_refused_and_why() {
    let fd = Flowdesk::new();
    let ids = three_in_error_one_waiting(&fd);
    let before = fd.snapshot();
    // Three in error would be retried; the waiting one would be refused,
    // and the dry run says so rather than "would retry 4".
    let out = fd.ok("alice", &["retry", "--process", "ops", "--dry-run"]);
    let mut expected = vec!["would retry 3 instances, 1 would be refused (dry run: nothing was changed)".to_owned()];
    expected.extend(ids[..3].iter().map(|id| format!("instance {id}")));
    expected.push(format!("would be refused: instance {0}: cannot retry instance {0}: it is Active", ids[3]));
    assert_eq!(out.stdout.lines().collect::<Vec<_>>(), expected);
    let listed = fd.json("alice", &["retry", "--process", "ops", "--dry-run", "--json"]);
    assert_eq!((listed["count"].as_u64(), listed["refused"].as_u64()), (Some(4), Some(1)), "{listed}");
    assert_eq!(listed["targets"][3]["code"], "wrong_status", "{listed}");
    assert!(listed["targets"][0].get("code").is_none(), "{listed}");

    // Rights, an activity that is not there and data that does not read
    // are foreseen the same way.
    let file = fd.write("ids.txt", &format!("{}\n", ids[0]));
    let out = fd.ok("bob", &["stop", "--ids", path_str(&file), "--dry-run"]);
    assert!(out.stdout.contains("lacks the Admin right on process `ops`"), "{out:?}");
    let out = fd.ok("alice", &["goto", "--process", "ops", "--dry-run", "Nowhere"]);
    assert!(out.stdout.starts_with("would go to `Nowhere` 0 instances, 4 would be refused"), "{out:?}");
    assert!(out.stdout.contains("process `ops` has no activity `Nowhere`"), "{out:?}");
    let out = fd.ok("alice", &["finish", "--process", "ops", "--set", "amount=lots", "--dry-run"]);
    assert!(out.stdout.starts_with("would finish 0 server items, 1 would be refused"), "{out:?}");
    assert!(out.stdout.contains("`amount`"), "{out:?}");
    assert_eq!(fd.snapshot(), before, "a dry run changed the database");
}

#[test]
fn bulk_finish_of_a_file_of_serials_answers_per_serial() {
    let fd = Flowdesk::new();
    fd.deploy_callback("alice");
    fd.ok("alice", &["grant", "callback", "bob", "server-event"]);
    let ids: Vec<i64> = (0..3).map(|_| fd.start("alice", &["callback"])).collect();
    fd.ok("bob", &["finish", &format!("{}_2", ids[1])]);
    let serials = fd.write("serials.txt", &format!("{}_2\n {}_2 \n\n{}_2\n999_2\n", ids[0], ids[1], ids[2]));
    let file = path_str(&serials);

    let dry = fd.ok("alice", &["finish", "--serials", file, "--dry-run"]);
    assert!(
        dry.stdout.starts_with("would finish 2 server items, 2 would be refused (dry run: nothing was changed)\n"),
        "{dry:?}"
    );

    let out = fd.run("alice", &["finish", "--serials", file, "--set", "name=call back value"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "2 done, 2 refused");
    assert!(
        lines[1]
            .starts_with(&format!("refused: server item {0}_2: server item {0}_2 was already finished at ", ids[1])),
        "{lines:?}"
    );
    assert!(lines[1].ends_with("by bob"), "{lines:?}");
    assert_eq!(lines[2], "refused: server item 999_2: server item 999_2 not found");
    assert_eq!(fd.status(ids[0]), "Completed");
    assert_eq!(fd.show("alice", ids[2])["data"]["done"], true);

    // From standard input, as JSON: the same codes as the single finish's.
    let mut command = fd.command();
    command.arg("--db").arg(fd.db()).arg("--user").arg("alice");
    command.args(["finish", "--serials", "-", "--json"]);
    command.stdin(std::fs::File::open(&serials).unwrap());
    let out = execute(command, "finish --serials - --json");
    assert_eq!(out.code, Some(1), "{out:?}");
    let report: Value = serde_json::from_str(&out.stdout).unwrap();
    let codes: Vec<&str> = report["results"].as_array().unwrap().iter().map(|r| r["code"].as_str().unwrap()).collect();
    assert_eq!(codes, ["already_finished", "already_finished", "already_finished", "item_not_found"]);

    // A line that is no serial refuses the whole file, before anything is done.
    let bad = fd.write("bad.txt", &format!("{}_2\nabc\n", ids[0]));
    let line = fd.refused("alice", &["finish", "--serials", path_str(&bad)]);
    assert!(line.contains("line 2"), "{line}");
}

#[test]
fn bulk_usage_errors_exit_2_and_the_single_forms_stay() {
    let fd = Flowdesk::new();
    let ids = three_in_error_one_waiting(&fd);
    fd.usage_error("alice", &["retry"]);
    fd.usage_error("alice", &["retry", "1", "--process", "ops"]);
    fd.usage_error("alice", &["retry", "1", "--dry-run"]);
    fd.usage_error("alice", &["finish", "1_1", "--serials", "x"]);
    fd.usage_error("alice", &["goto", "--process", "ops", "1", "Other"]);
    fd.usage_error("alice", &["goto", "Other"]);
    let out = fd.ok("alice", &["goto", "--process", "ops", "--status", "active", "Other"]);
    assert_eq!(out.stdout.trim(), "1 done, 0 refused");
    assert_eq!(fd.pending(ids[3]), [format!("{}_2", ids[3])]);
    let out = fd.ok("alice", &["stop", &ids[3].to_string()]);
    assert_eq!(out.stdout.trim(), format!("stopped instance {}: stopped", ids[3]));
}

// Issue 18, "Find anything": the instance list's filters and its CSV export.

/// Issue 18: a searchable field is indexed at deploy, and the answer says
/// so; a condition on a field that is not searchable says, where it was
/// typed, that it reads every instance. The process's name is SQL-looking:
/// it goes into the index as a literal, and works.
#[test]
fn deploy_indexes_searchable_fields_and_a_slow_condition_says_so() {
    let fd = Flowdesk::new();
    let name = "o'); DROP TABLE instances; --";
    let process = format!(
        r#"{{ "name": {}, "fields": [
          {{ "name": "n", "type": "integer", "searchable": true }},
          {{ "name": "note", "type": "string" }}
        ], "activities": [ {{ "id": "w", "name": "Wait", "start": true, "events": [
          {{ "kind": "server_event", "name": "Ask", "synchronous": false, "script": "" }} ] }} ] }}"#,
        serde_json::Value::String(name.to_owned())
    );
    let path = fd.write("o.process.json", &process);
    let out = fd.deploy("alice", &path);
    assert!(out.stdout.contains("indexed searchable fields n of every instance of"), "{out:?}");
    assert!(out.stderr.contains("searchable fields n: a field not indexed yet is indexed now"), "{out:?}");
    let again = fd.json("alice", &["deploy", path_str(&path), "--json"]);
    assert_eq!(again["indexed"], serde_json::json!([]), "built once");
    let first = fd.start("alice", &[name, "--folio", "a", "--set", "n=5", "--set", "note=x"]);
    fd.start("alice", &[name, "--folio", "b", "--set", "n=7"]);
    let served = fd.ok("alice", &["instances", "--process", name, "--where", "n = 5", "--json"]);
    assert_eq!(served.stderr, "", "a served condition says nothing");
    assert_eq!(ids(&serde_json::from_str(&served.stdout).unwrap()), vec![first]);
    let slow = fd.ok("alice", &["instances", "--process", name, "--where", "note = x", "--json"]);
    assert_eq!(slow.stderr.trim(), "flowdesk: note is not searchable: this reads every instance of the process");
    assert_eq!(ids(&serde_json::from_str(&slow.stdout).unwrap()), vec![first]);
    let unserved = fd.ok("alice", &["instances", "--process", name, "--where", "n != 5"]);
    assert!(unserved.stderr.contains("`!=` reads every instance of the process"), "{unserved:?}");
}

#[test]
fn instances_filter_by_version_dates_and_field_values_and_export_csv() {
    let fd = Flowdesk::new();
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let small = fd.start("alice", &["ops", "--folio", "=HYPERLINK(\"http://x\")", "--set", "amount=5"]);
    fd.deploy_text("alice", "ops.process.json", OPS_PROCESS);
    let big = fd.start("alice", &["ops", "--folio", "Big, \"quoted\"\nline", "--set", "amount=500"]);
    let sql = fd.start("alice", &["ops", "--folio", "ÄRGER"]);

    let listed = |args: &[&str]| {
        let mut all = vec!["instances", "--json"];
        all.extend_from_slice(args);
        ids(&fd.json("alice", &all))
    };
    assert_eq!(listed(&["--process", "ops", "--where", "amount > 100"]), vec![big]);
    assert_eq!(listed(&["--process", "ops", "--where", "amount >= 5", "--where", "amount < 100"]), vec![small]);
    // The start's script wrote `note`; SQL-looking text is a value like any other.
    assert!(listed(&["--process", "ops", "--where", &format!("note = \"{SQL_TEXT}\"")]).is_empty());
    assert_eq!(listed(&["--process", "ops", "--where", "note contains WAIT"]), vec![small, big, sql]);
    assert_eq!(listed(&["--process", "ops", "--version", "1"]), vec![small]);
    assert_eq!(listed(&["--started-after", "2000-01-01", "--started-before", "2999-01-01 00:00"]).len(), 3);
    assert!(listed(&["--started-after", "2999-01-01"]).is_empty());
    assert!(listed(&["--ended-after", "2000-01-01"]).is_empty(), "nothing has completed");
    assert_eq!(listed(&["--search", "ärger"]), vec![sql], "the folio search ignores case");

    // Malformed filters: a clear refusal or usage error, never a panic.
    let unknown = fd.refused("alice", &["instances", "--process", "ops", "--where", "nope = 1"]);
    assert!(unknown.contains("process `ops` has no field `nope`"), "{unknown}");
    let wrong = fd.refused("alice", &["instances", "--process", "ops", "--where", "amount > lots"]);
    assert!(wrong.contains("`amount`") && wrong.contains("integer"), "{wrong}");
    let no_process = fd.refused("alice", &["instances", "--where", "amount > 1"]);
    assert!(no_process.contains("needs a process"), "{no_process}");
    let no_operator = fd.usage_error("alice", &["instances", "--where", "amount 100"]);
    assert!(no_operator.stderr.contains("no operator"), "{no_operator:?}");
    let bad_date = fd.usage_error("alice", &["instances", "--started-after", "yesterday"]);
    assert!(bad_date.stderr.contains("not a date"), "{bad_date:?}");

    // Every matching row as CSV, read back with the csv crate: quotes,
    // commas and line breaks kept, a formula neutralised.
    let out = fd.ok("alice", &["instances", "--process", "ops", "--csv"]);
    let mut reader = csv::Reader::from_reader(out.stdout.as_bytes());
    assert_eq!(
        reader.headers().unwrap().iter().collect::<Vec<_>>(),
        ["id", "folio", "process", "version", "status", "originator", "started", "last_change", "due"]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let folios: Vec<&str> = rows.iter().map(|row| &row[1]).collect();
    assert_eq!(folios, ["ÄRGER", "Big, \"quoted\"\nline", "'=HYPERLINK(\"http://x\")"]);
    assert_eq!(rows[2][0], small.to_string());
    assert_eq!(&rows[0][3], "2");
    let limited = fd.ok("alice", &["instances", "--csv", "--limit", "1"]);
    assert_eq!(csv::Reader::from_reader(limited.stdout.as_bytes()).records().count(), 1);
}
