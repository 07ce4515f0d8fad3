//! Issue 18's overview driven like an operator: its counts follow what
//! another connection does, a count and an activity of the diagram open the
//! instance list filtered to them, and an incident's Retry all takes its
//! instances out of Error once the cause is fixed.

use std::sync::atomic::Ordering;

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use flowdesk::engine::{InstanceStatus, Serial};
use flowdesk::gui::dialogs::ScriptedDialogs;
use flowdesk::gui::{AppView, FlowdeskApp, GuiOptions, Settings};
use flowdesk::model::Right;

use crate::support::{Fixture, parse_serial, set};

const MAX_FRAMES: usize = 500;
const WAIT: &str = "Call external system";

/// A process whose script fails until its `ready` field is set; the
/// message carries the instance's number, which the incident masks.
const FAILING: &str = r#"{
  "name": "failing",
  "fields": [{ "name": "ready", "type": "boolean" }, { "name": "n", "type": "integer" }],
  "activities": [
    { "id": "work", "name": "Work", "start": true, "events": [
      { "kind": "server_event", "name": "Check", "script": "if !ready { throw `ledger ${n} offline`; }" } ] },
    { "id": "end", "name": "End", "events": [] }
  ],
  "lines": [{ "from": "work", "to": "end" }]
}"#;

/// Three callback instances waiting and three failing ones, prepared by
/// another program an hour ago; ada administers both processes.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.clock.0.store(chrono::Utc::now().timestamp_millis() - 3_600_000, Ordering::SeqCst);
    fx.deploy_sample("admin", "callback.process.json");
    fx.deploy_json("admin", FAILING);
    for process in ["callback", "failing"] {
        fx.engine.grant("admin", process, "ada", &[Right::Admin]).unwrap();
    }
    for _ in 0..3 {
        fx.engine.start("admin", "callback", "", &[]).unwrap();
    }
    for n in 1..=3 {
        let progress = fx.engine.start("admin", "failing", "", &set(&[("n", &n.to_string())])).unwrap();
        assert_eq!(progress.status, InstanceStatus::Error);
    }
    fx
}

fn serial(id: i64) -> Serial {
    parse_serial(&format!("{id}_2"))
}

struct Gui {
    fx: Fixture,
    harness: Harness<'static, FlowdeskApp>,
}

impl Gui {
    /// The overview as ada, once its counts and diagram have come.
    fn open(fx: Fixture) -> Gui {
        let options = GuiOptions { db_path: fx.db_path(), user: "ada".to_owned(), file: None, view: AppView::Overview };
        let app = FlowdeskApp::new(options, Settings::default(), Box::new(ScriptedDialogs::default()));
        let harness =
            Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut FlowdeskApp| app.ui(ui), app);
        let mut gui = Gui { fx, harness };
        gui.run_until("the overview and its diagram", |app| {
            app.monitor.overview.overview().is_some() && app.monitor.overview.diagram_counts().is_some()
        });
        gui
    }

    fn app(&self) -> &FlowdeskApp {
        self.harness.state()
    }

    fn run_until(&mut self, what: &str, done: impl Fn(&FlowdeskApp) -> bool) {
        for _ in 0..MAX_FRAMES {
            if done(self.app()) {
                self.harness.run_steps(2);
                return;
            }
            self.harness.run_steps(1);
            std::thread::yield_now();
        }
        panic!("still waiting for {what} after {MAX_FRAMES} frames");
    }

    /// Clicks the widget with this accessible label (not a plain text).
    fn click(&mut self, label: &str) {
        let found = self.harness.query_by(|node| node.role() != Role::Label && node.label().as_deref() == Some(label));
        found.unwrap_or_else(|| panic!("no `{label}` to click among {:#?}", self.texts())).click();
        self.harness.run_steps(3);
    }

    /// Clicks a plain text (a table cell).
    fn click_text(&mut self, text: &str) {
        let found = self.harness.query_by(|node| node.role() == Role::Label && node.value().as_deref() == Some(text));
        found.unwrap_or_else(|| panic!("no text `{text}` to click among {:#?}", self.texts())).click();
        self.harness.run_steps(3);
    }

    /// Every label and text shown, for the messages of failed look-ups.
    fn texts(&self) -> Vec<String> {
        self.harness
            .query_all_by(|_| true)
            .filter_map(|node| {
                let node = node.accesskit_node();
                node.value().or_else(|| node.label()).map(|t| format!("{:?}: {t}", node.role()))
            })
            .collect()
    }

    fn labels_starting(&self, start: &str) -> Vec<String> {
        self.harness
            .query_all_by(|node| node.label().is_some_and(|l| l.starts_with(start)))
            .filter_map(|node| node.accesskit_node().label())
            .collect()
    }

    /// Whether some text shown contains `part`.
    fn shows(&self, part: &str) -> bool {
        self.harness
            .query_all_by(|node| node.value().or_else(|| node.label()).is_some_and(|t| t.contains(part)))
            .next()
            .is_some()
    }

    fn count(&self, process: &str, status: InstanceStatus) -> u64 {
        let overview = self.app().monitor.overview.overview().unwrap();
        overview.versions.iter().find(|v| v.process == process).map_or(0, |v| v.count(status))
    }

    /// The instance list's rows once its filter's page has come.
    fn listed(&mut self) -> Vec<i64> {
        self.run_until("the filtered list", |app| app.monitor.rows_current() && app.monitor.count_current());
        self.app().monitor.rows().iter().map(|row| row.id).collect()
    }
}

#[test]
fn gui_overview_counts_follow_finishes_made_by_another_connection() {
    let mut gui = Gui::open(fixture());
    assert_eq!(gui.count("callback", InstanceStatus::Active), 3);
    assert_eq!(gui.count("failing", InstanceStatus::Error), 3);
    assert_eq!(gui.labels_starting("callback v1 Active"), vec!["callback v1 Active: 3".to_owned()]);
    // The oldest wait is named, an hour old.
    let oldest = gui.app().monitor.overview.overview().unwrap().versions[0].oldest.clone().unwrap();
    assert_eq!(oldest.serial, serial(1));

    // Another program (the fixture's own connection) finishes two items.
    for id in [1, 2] {
        gui.fx.engine.finish("admin", serial(id), &set(&[("name", "call back value")])).unwrap();
    }
    gui.click("Refresh");
    gui.run_until("the new counts", |app| {
        app.monitor.overview.overview().is_some_and(|o| o.versions[0].count(InstanceStatus::Completed) == 2)
    });
    assert_eq!(gui.count("callback", InstanceStatus::Active), 1);
    assert_eq!(gui.labels_starting("callback v1 Completed"), vec!["callback v1 Completed: 2".to_owned()]);
    assert_eq!(gui.app().monitor.overview.overview().unwrap().versions[0].oldest.as_ref().unwrap().serial, serial(3));
}

#[test]
fn gui_overview_clicking_a_status_count_lists_those_instances() {
    let mut gui = Gui::open(fixture());
    gui.click("failing v1 Error: 3");
    assert_eq!(gui.app().view, AppView::Monitor);
    let filter = &gui.app().monitor.filter;
    assert_eq!(
        (filter.process.as_deref(), filter.version, filter.status),
        (Some("failing"), Some(1), Some(InstanceStatus::Error))
    );
    assert_eq!(gui.listed(), vec![6, 5, 4]);
    assert_eq!(gui.app().monitor.count(), Some(3));
}

#[test]
fn gui_overview_the_diagram_counts_instances_per_activity_and_a_click_lists_them() {
    let fx = fixture();
    fx.engine.finish("admin", serial(1), &set(&[("name", "call back value")])).unwrap();
    let mut gui = Gui::open(fx);
    let (process, version, counts) = gui.app().monitor.overview.diagram_counts().unwrap();
    assert_eq!((process, version), ("callback", 1));
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!((counts[0].activity.as_str(), counts[0].active, counts[0].waiting, counts[0].error), (WAIT, 0, 2, 0));
    // On the diagram: the waiting activity says its count and oldest wait;
    // the others say none.
    let said = gui.labels_starting(&format!("Activity {WAIT}: "));
    assert_eq!(said.len(), 1);
    assert!(said[0].starts_with(&format!("Activity {WAIT}: 2 waiting (oldest 1h")), "{said:?}");
    assert_eq!(gui.labels_starting("Activity Prepare: "), vec!["Activity Prepare: none".to_owned()]);

    // The failing process's diagram counts its errors at Work.
    gui.click("failing v1");
    gui.run_until("the failing diagram", |app| {
        app.monitor.overview.diagram_counts().is_some_and(|(process, _, _)| process == "failing")
    });
    assert_eq!(gui.labels_starting("Activity Work: "), vec!["Activity Work: 3 in error".to_owned()]);

    // Back to the callback diagram; its waiting activity clicked lists the two.
    gui.click("callback v1");
    gui.run_until("the callback diagram", |app| {
        app.monitor.overview.diagram_counts().is_some_and(|(process, _, _)| process == "callback")
    });
    // Its age moves with the wall clock: clicked by what it says now.
    let said_now = gui.labels_starting(&format!("Activity {WAIT}: "));
    gui.click(&said_now[0]);
    assert_eq!(gui.app().view, AppView::Monitor);
    assert_eq!(gui.app().monitor.filter.activity.as_deref(), Some(WAIT));
    assert_eq!(gui.listed(), vec![3, 2]);
}

#[test]
fn gui_overview_retry_all_of_an_incident_takes_its_instances_out_of_error_once_fixed() {
    let fx = fixture();
    let mut gui = Gui::open(fx);
    let pattern = gui.app().monitor.overview.overview().unwrap().incidents[0].key.pattern.clone();
    assert!(pattern.ends_with("ledger # offline"), "{pattern}");
    // The external system is fixed (here: the data each instance needed).
    for id in 4..=6 {
        gui.fx.engine.set_data("admin", id, &set(&[("ready", "true")])).unwrap();
    }
    gui.click_text(&pattern);
    gui.click("Retry all");
    assert!(gui.shows("Retry the failed step of the 3 instance(s) of failing v1"), "Retry all asks first");
    assert!(gui.shows("Each is recorded in its audit trail as done by ada."));
    gui.click("Confirm");
    gui.run_until("Retry all to be answered", |app| app.monitor.overview.report.is_some() && !app.busy());
    let (words, succeeded) = gui.app().monitor.overview.report.clone().unwrap();
    assert_eq!((words.as_str(), succeeded), ("3 instance(s) retried.", true));
    for id in 4..=6 {
        assert_eq!(gui.fx.detail("admin", id).summary.status, InstanceStatus::Completed);
        let trail = gui.fx.trail(id);
        // One bulk action through the engine's bulk path, as the lists' Retry.
        assert!(
            trail.iter().any(|line| line.starts_with("ada: Retried") && line.ends_with("part of a bulk retry of 3")),
            "{trail:#?}"
        );
    }
    gui.run_until("the incident to go", |app| app.monitor.overview.overview().is_some_and(|o| o.incidents.is_empty()));
    assert_eq!(gui.count("failing", InstanceStatus::Completed), 3);
}

#[test]
fn gui_overview_the_activity_and_version_a_click_filters_by_show_in_the_filter_bar_and_clear() {
    let fx = fixture();
    fx.engine.finish("admin", serial(1), &set(&[("name", "call back value")])).unwrap();
    let mut gui = Gui::open(fx);
    let said = gui.labels_starting(&format!("Activity {WAIT}: "));
    gui.click(&said[0]);
    assert_eq!(gui.listed(), vec![3, 2]);
    // The list is narrowed to an activity and a version: the bar says both,
    // or the operator sees two instances of three with no reason why.
    let chip = format!("At `{WAIT}` ✕");
    assert!(gui.shows(&chip), "the activity filter is shown: {:#?}", gui.texts());
    gui.click("More filters");
    let version = gui.harness.get_by_role_and_label(Role::TextInput, "Version").value();
    assert_eq!(version.as_deref(), Some("1"), "the version filter is shown");
    // Cleared, every instance of the version is listed again.
    gui.click(&chip);
    assert_eq!(gui.app().monitor.filter.activity, None);
    assert_eq!(gui.listed(), vec![3, 2, 1]);
    assert!(!gui.shows("At `"), "{:#?}", gui.texts());
}

#[test]
fn gui_overview_retry_all_of_an_incident_can_be_cancelled_and_says_how_far_it_came() {
    let fx = fixture();
    // 40 instances in the incident: more than the bulk action begins at once.
    for n in 4..=40 {
        fx.engine.start("admin", "failing", "", &set(&[("n", &n.to_string())])).unwrap();
    }
    let failing: Vec<i64> = (4..=6).chain(7..=43).collect();
    for id in &failing {
        fx.engine.set_data("admin", *id, &set(&[("ready", "true")])).unwrap();
    }
    let mut gui = Gui::open(fx);
    let pattern = gui.app().monitor.overview.overview().unwrap().incidents[0].key.pattern.clone();
    gui.click_text(&pattern);
    gui.click("Retry all");
    assert!(gui.shows("Retry the failed step of the 40 instance(s) of failing v1"), "{:#?}", gui.texts());
    // Another program holds the write lock: the retries wait, the window does not.
    let lock = rusqlite::Connection::open(gui.fx.db_path()).unwrap();
    lock.execute_batch("BEGIN IMMEDIATE").unwrap();
    gui.click("Confirm");
    for _ in 0..MAX_FRAMES {
        if gui.shows("0 of 40 instance(s)") {
            break;
        }
        gui.harness.run_steps(1);
        std::thread::yield_now();
    }
    assert!(gui.shows("Retrying at Work: 0 of 40 instance(s)…"), "{:#?}", gui.texts());
    gui.click("Cancel");
    assert!(gui.shows("Cancelling…"), "{:#?}", gui.texts());
    lock.execute_batch("ROLLBACK").unwrap();
    gui.run_until("Retry all to be answered", |app| app.monitor.overview.report.is_some() && !app.busy());
    let (words, succeeded) = gui.app().monitor.overview.report.clone().unwrap();
    let retried = failing.iter().filter(|id| gui.fx.detail("admin", **id).summary.status == InstanceStatus::Completed);
    let retried = retried.count();
    assert!(retried < 40, "{words}");
    assert_eq!(words, format!("{retried} instance(s) retried; cancelled before {} more.", 40 - retried));
    assert!(!succeeded);
    // The ones not reached are still in error, and still the incident's.
    let untouched = failing.iter().filter(|id| gui.fx.detail("admin", **id).summary.status == InstanceStatus::Error);
    assert_eq!(untouched.count(), 40 - retried);
}
