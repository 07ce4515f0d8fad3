//! The monitor and the server items view driven through the UI like an
//! operator: click rows, filters and buttons, type into fields, confirm.
//!
//! Data is prepared with the engine on the database file before the app opens
//! (as other programs would have left it). The monitor reads and writes on
//! worker threads, so after an input the test runs frames until what it sent
//! is answered (`Gui::settle`), or until the answer shows.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use egui::accesskit::Role;
use egui::{Key, Modifiers, Rect};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use flowdesk::engine::{AuditAction, AuditEntry, InstanceStatus, ItemFilter, ItemStatus, format_step, format_time};
use flowdesk::gui::dialogs::ScriptedDialogs;
use flowdesk::gui::monitor::Monitor;
use flowdesk::gui::monitor::Outcome;
use flowdesk::gui::monitor::flow::{Reached, flow_state};
use flowdesk::gui::monitor::queries::{Polling, Queries};
use flowdesk::gui::{AppView, FlowdeskApp, GuiOptions, Settings};
use flowdesk::model::{Right, Value};
use support::{Fixture, s, set};

const MINUTE: i64 = 60_000;

/// How many frames an answer of the query worker may take at most.
const MAX_FRAMES: usize = 500;

/// A fixture whose clock stands an hour before now, so that what it prepares
/// has a real age when the app (on the system clock) shows it.
fn fixture() -> Fixture {
    let fx = Fixture::new();
    fx.clock.0.store(chrono::Utc::now().timestamp_millis() - 60 * MINUTE, Ordering::SeqCst);
    fx
}

/// Deploys a sample as `admin` and lets ada, the operator of the GUI, administer it.
fn deploy(fx: &Fixture, file: &str) {
    fx.deploy_sample("admin", file);
    let name = file.trim_end_matches(".process.json");
    fx.engine.grant("admin", name, "ada", &[Right::Admin]).unwrap();
}

fn deploy_json(fx: &Fixture, json: &str) {
    fx.deploy_json("admin", json);
    let name = flowdesk::model::ProcessDraft::from_json(json, "test").unwrap().name;
    fx.engine.grant("admin", &name, "ada", &[Right::Admin]).unwrap();
}

/// A process whose script fails until its `ready` field is set.
const FAILING: &str = r#"{
  "name": "failing",
  "fields": [{ "name": "ready", "type": "boolean" }],
  "activities": [
    { "id": "work", "name": "Work", "start": true, "events": [
      { "kind": "server_event", "name": "Check", "script": "if !ready { throw \"boom\"; }" } ] },
    { "id": "end", "name": "End", "events": [] }
  ],
  "lines": [{ "from": "work", "to": "end" }]
}"#;

struct Gui {
    fx: Fixture,
    harness: Harness<'static, FlowdeskApp>,
    /// Another connection holds the write lock: the window's writes wait
    /// for it, so inputs do not wait for their answers.
    locked: bool,
}

impl Gui {
    /// The app on the fixture's database, connected as `user`, showing `view`.
    fn open(fx: Fixture, user: &str, view: AppView) -> Gui {
        Gui::open_sized(fx, user, view, [1280.0, 800.0])
    }

    /// The app in a window of `size` points.
    fn open_sized(fx: Fixture, user: &str, view: AppView, size: [f32; 2]) -> Gui {
        let options = GuiOptions { db_path: fx.db_path(), user: user.to_owned(), file: None, view };
        let app = FlowdeskApp::new(options, Settings::default(), Box::new(ScriptedDialogs::default()));
        let harness = Harness::builder().with_size(size).build_ui_state(|ui, app: &mut FlowdeskApp| app.ui(ui), app);
        Gui { fx, harness, locked: false }
    }

    /// The monitor once its first rows have arrived.
    fn monitor(fx: Fixture, user: &str) -> Gui {
        let mut gui = Gui::open(fx, user, AppView::Monitor);
        gui.run_until("the first rows", |app| app.monitor.count().is_some() && !app.monitor.rows().is_empty());
        gui
    }

    fn app(&self) -> &FlowdeskApp {
        self.harness.state()
    }

    fn frame(&mut self) {
        self.harness.run_steps(1);
        std::thread::yield_now();
    }

    /// Runs frames until `done` holds for the app (the worker answers in
    /// milliseconds), then one more so the UI shows what arrived.
    fn run_until_frames(&mut self, what: &str, done: impl Fn(&FlowdeskApp) -> bool, max_frames: usize) {
        for _ in 0..max_frames {
            if done(self.app()) {
                self.frame();
                return;
            }
            self.frame();
        }
        panic!("still waiting for {what} after {max_frames} frames");
    }

    fn run_until(&mut self, what: &str, done: impl Fn(&FlowdeskApp) -> bool) {
        self.run_until_frames(what, done, MAX_FRAMES);
    }

    /// Runs frames until the item asked for with Open is shown and can be
    /// finished.
    fn run_until_finish_is_enabled(&mut self) {
        for _ in 0..MAX_FRAMES {
            if self.enabled("Finish") {
                return;
            }
            self.frame();
        }
        panic!("the opened item never arrived: {:#?}", self.panel_texts());
    }

    /// Lets the frames after an input run out (popups open, modals close...),
    /// and the writes (and item reads) it sent be answered.
    fn settle(&mut self) {
        self.harness.run_steps(4);
        if !self.locked {
            self.run_until("the window's writes to be answered", |app| !app.busy());
            self.harness.run_steps(2);
        }
    }

    /// Clicks the widget with this accessible label (not a plain text, not
    /// a combo box named after its label).
    fn click(&mut self, label: &str) {
        self.harness
            .get_by(|node| {
                !matches!(node.role(), Role::Label | Role::ComboBox) && node.label().as_deref() == Some(label)
            })
            .click();
        self.settle();
    }

    /// Opens a combo box and picks one of its options.
    fn choose(&mut self, combo: &str, option: &str) {
        self.harness.get_by_role_and_label(Role::ComboBox, combo).click();
        self.settle();
        self.click(option);
    }

    /// Replaces the text of a field: click into it, select all, type.
    fn replace_text(&mut self, label: &str, text: &str) {
        self.harness.get_by_role_and_label(Role::TextInput, label).click();
        self.settle();
        assert!(self.harness.get_by_role_and_label(Role::TextInput, label).is_focused(), "{label} has the focus");
        self.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
        self.settle();
        if text.is_empty() {
            self.harness.key_press(Key::Backspace);
        } else {
            self.harness.get_by_role_and_label(Role::TextInput, label).type_text(text);
        }
        self.settle();
        assert_eq!(self.field_value(label), text, "{label} holds what was typed");
    }

    fn field_value(&self, label: &str) -> String {
        self.harness.get_by_role_and_label(Role::TextInput, label).value().unwrap_or_default()
    }

    /// Every text a node shows: plain texts carry it as their value.
    fn texts(&self) -> Vec<(String, Role, Rect)> {
        self.harness
            .query_all_by(|_| true)
            .filter_map(|node| {
                let ak = node.accesskit_node();
                let text = if ak.role() == Role::Label { ak.value() } else { ak.label() }?;
                let rect = ak.bounding_box()?;
                let rect = Rect::from_min_max(
                    egui::pos2(rect.x0 as f32, rect.y0 as f32),
                    egui::pos2(rect.x1 as f32, rect.y1 as f32),
                );
                Some((text, ak.role(), rect))
            })
            .collect()
    }

    fn all_texts(&self) -> Vec<String> {
        self.texts().into_iter().map(|(text, _, _)| text).collect()
    }

    fn shown(&self, text: &str) -> bool {
        self.texts().iter().any(|(t, _, _)| t == text)
    }

    fn texts_containing(&self, part: &str) -> Vec<String> {
        self.texts().into_iter().map(|(text, _, _)| text).filter(|t| t.contains(part)).collect()
    }

    /// Where the right-hand panel (instance detail, finish box) begins.
    fn right_panel_left(&self) -> f32 {
        self.harness
            .query_all_by(|node| node.role() == Role::Splitter)
            .filter_map(|node| node.accesskit_node().bounding_box())
            .filter(|r| r.height() > r.width())
            .map(|r| r.x0 as f32)
            .fold(f32::INFINITY, f32::min)
    }

    /// The texts of the table row that shows `key` (a folio, a serial), left to right.
    fn row(&self, key: &str) -> Vec<String> {
        let right = self.right_panel_left();
        let texts: Vec<(String, Role, Rect)> =
            self.texts().into_iter().filter(|(_, role, rect)| *role == Role::Label && rect.max.x <= right).collect();
        let found: Vec<&Rect> = texts.iter().filter(|(t, _, _)| t == key).map(|(_, _, r)| r).collect();
        assert_eq!(found.len(), 1, "one row shows `{key}`; texts: {:#?}", self.all_texts());
        let y = found[0].center().y;
        let mut cells: Vec<&(String, Role, Rect)> =
            texts.iter().filter(|(_, _, r)| (r.center().y - y).abs() < 4.0).collect();
        cells.sort_by(|a, b| a.2.min.x.total_cmp(&b.2.min.x));
        cells.into_iter().map(|(t, _, _)| t.clone()).collect()
    }

    /// The audit trail entry whose action is `action`: time, user, action,
    /// detail (read in the order of the table's cells: time, user, action,
    /// activity / event, details, since previous).
    fn trail_entry(&self, action: &str) -> Vec<String> {
        let cells = self.trail_row(action);
        vec![cells[0].clone(), cells[1].clone(), cells[2].clone(), cells[4].clone()]
    }

    /// Every cell of the trail table's row whose action is `action`: time,
    /// user, action, activity / event, details, since previous; an empty
    /// cell (no label drawn) as "". Cells go to the column whose header
    /// they sit under.
    fn trail_row(&self, action: &str) -> Vec<String> {
        const TITLES: [&str; 6] = ["Time", "User", "Action", "Activity / event", "Details", "Since previous"];
        let texts: Vec<(String, Rect)> =
            self.texts().into_iter().filter(|(_, role, _)| *role == Role::Label).map(|(t, _, r)| (t, r)).collect();
        let headers: Vec<Rect> = TITLES
            .iter()
            .map(|title| {
                let found: Vec<Rect> = texts.iter().filter(|(t, _)| t == title).map(|(_, r)| *r).collect();
                assert_eq!(found.len(), 1, "one header `{title}`; texts: {texts:#?}");
                found[0]
            })
            .collect();
        let found: Vec<Rect> = texts
            .iter()
            .filter(|(t, r)| t == action && (r.min.x - headers[2].min.x).abs() < 2.0)
            .map(|(_, r)| *r)
            .collect();
        assert_eq!(found.len(), 1, "one trail line is `{action}`; texts: {texts:#?}");
        let y = found[0].center().y;
        let mut cells = vec![String::new(); TITLES.len()];
        for (text, rect) in texts.iter().filter(|(_, r)| (r.center().y - y).abs() < 4.0) {
            if let Some(column) = headers.iter().position(|h| (h.min.x - rect.min.x).abs() < 2.0) {
                cells[column] = text.clone();
            }
        }
        cells
    }

    /// The plain texts of the right-hand panel (instance detail, finish box).
    fn panel_texts(&self) -> Vec<String> {
        let left = self.right_panel_left();
        self.texts()
            .into_iter()
            .filter(|(_, role, rect)| *role == Role::Label && rect.min.x >= left)
            .map(|(t, _, _)| t)
            .collect()
    }

    /// Whether a button with this label is shown and can be pressed.
    fn enabled(&self, button: &str) -> bool {
        self.harness
            .query_by_role_and_label(Role::Button, button)
            .is_some_and(|node| !node.accesskit_node().is_disabled())
    }

    /// Pastes `text` over the content of a field, as Ctrl+A, Ctrl+V do.
    fn paste_into(&mut self, label: &str, text: &str) {
        self.harness.get_by_role_and_label(Role::TextInput, label).click();
        self.settle();
        self.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
        self.harness.event(egui::Event::Paste(text.to_owned()));
        self.settle();
        assert_eq!(self.field_value(label), text, "{label} holds what was pasted");
    }

    /// Connects as another user through the field of the menu bar.
    fn connect_as(&mut self, user: &str) {
        self.replace_text("Connected as", user);
    }

    /// The top of the row showing `key`, to compare the order of rows.
    fn row_y(&self, key: &str) -> f32 {
        let right = self.right_panel_left();
        let rects: Vec<Rect> = self
            .texts()
            .into_iter()
            .filter(|(t, role, rect)| t == key && *role == Role::Label && rect.max.x <= right)
            .map(|(_, _, r)| r)
            .collect();
        assert_eq!(rects.len(), 1, "one row shows `{key}`");
        rects[0].min.y
    }

    fn assert_rows_in_order(&self, keys: &[&str]) {
        let ys: Vec<f32> = keys.iter().map(|k| self.row_y(k)).collect();
        assert!(ys.windows(2).all(|w| w[0] < w[1]), "rows {keys:?} are shown top to bottom: {ys:?}");
    }

    fn row_ids(&self) -> Vec<i64> {
        self.app().monitor.rows().iter().map(|r| r.id).collect()
    }

    /// Clicks a row of the instance table (on its folio) and waits for the instance.
    fn open_instance(&mut self, folio: &str, id: i64) {
        self.harness.get_by(|node| node.role() == Role::Label && node.value().as_deref() == Some(folio)).click();
        self.run_until(&format!("instance {id}"), |app| app.monitor.detail().is_some_and(|d| d.summary.id == id));
        self.settle();
        assert!(self.shown(&format!("Instance {id}")), "the heading names instance {id}");
    }

    fn detail_status(&self) -> InstanceStatus {
        self.app().monitor.detail().expect("an instance is open").summary.status
    }

    /// Waits until the open instance shows `status`.
    fn run_until_status(&mut self, status: InstanceStatus) {
        self.run_until(&format!("the instance to be {status:?}"), |app| {
            app.monitor.detail().is_some_and(|d| d.summary.status == status)
        });
        self.settle();
        assert!(self.shown(status.name()), "the status {} is shown", status.name());
    }

    /// The confirmation modal is up with this question; answers it.
    fn answer_confirmation(&mut self, question: &str, button: &str) {
        assert!(self.shown("Please confirm"), "a confirmation is asked");
        assert!(self.shown(question), "the question is `{question}`; shown: {:#?}", self.all_texts());
        assert!(self.shown("It is recorded in the audit trail as done by ada."));
        self.click(button);
        assert!(!self.shown("Please confirm"), "the confirmation is gone");
    }

    /// The status of an instance as the engine has it.
    fn status_of(&self, id: i64) -> InstanceStatus {
        self.fx.detail("admin", id).summary.status
    }

    /// Everything stored for these instances, for "nothing changed" checks.
    fn snapshot(&self, ids: &[i64]) -> Vec<String> {
        ids.iter().map(|id| self.fx.snapshot(*id)).collect()
    }
}

/// Four instances of two processes: 1 PO-A (Active), 2 PO-B (Completed),
/// 3 PA-C (Active, purchase-approval), 4 INV-D (Active).
fn four_instances() -> Fixture {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    deploy(&fx, "purchase-approval.process.json");
    fx.engine.start("admin", "callback", "PO-A", &[]).unwrap();
    fx.clock.advance(MINUTE);
    let b = fx.engine.start("admin", "callback", "PO-B", &[]).unwrap().instance_id;
    fx.engine.finish("admin", support::parse_serial(&format!("{b}_2")), &set(&[("name", "call back value")])).unwrap();
    fx.clock.advance(MINUTE);
    let data = set(&[("requester", "kim"), ("amount", "120.00"), ("cost_centre", "CC-7")]);
    fx.engine.start("admin", "purchase-approval", "PA-C", &data).unwrap();
    fx.clock.advance(MINUTE);
    fx.engine.start("admin", "callback", "INV-D", &[]).unwrap();
    fx
}

// ----- the instance list -------------------------------------------------------

#[test]
fn the_instance_list_shows_newest_first_with_id_folio_version_and_status() {
    let mut gui = Gui::monitor(four_instances(), "ada");
    gui.run_until("all four rows", |app| app.monitor.rows().len() == 4);
    assert!(gui.shown("4 instance(s)"));
    assert_eq!(gui.row_ids(), [4, 3, 2, 1]);
    gui.assert_rows_in_order(&["INV-D", "PA-C", "PO-B", "PO-A"]);

    let row = gui.row("PO-B");
    assert_eq!(&row[..5], ["2", "PO-B", "callback v1", "Completed", "admin"]);
    let row = gui.row("PA-C");
    assert_eq!(&row[..5], ["3", "PA-C", "purchase-approval v1", "Active", "admin"]);
    // Started and last change, as times.
    let detail = gui.fx.detail("admin", 3);
    assert_eq!(row[5..], [format_time(detail.summary.started_at), format_time(detail.summary.updated_at)]);
    assert!(gui.shown("Select an instance to see its flow, data and audit trail."));
}

#[test]
fn the_process_and_status_filters_and_the_search_narrow_the_list() {
    let mut gui = Gui::monitor(four_instances(), "ada");
    gui.run_until("all four rows", |app| app.monitor.rows().len() == 4);

    gui.choose("Process", "purchase-approval");
    gui.run_until("the purchase-approval rows", |app| app.monitor.count() == Some(1));
    assert_eq!(gui.row_ids(), [3]);
    assert!(gui.shown("1 instance(s)"));
    assert_eq!(
        gui.harness.get_by_role_and_label(Role::ComboBox, "Process").value().as_deref(),
        Some("purchase-approval")
    );
    assert!(!gui.shown("PO-A"), "other processes' rows are gone");

    gui.choose("Process", "callback");
    gui.run_until("the callback rows", |app| app.monitor.count() == Some(3));
    assert_eq!(gui.row_ids(), [4, 2, 1]);
    assert!(gui.shown("3 instance(s)"));

    // Both filters together: completed callbacks.
    gui.choose("Status", "Completed");
    gui.run_until("the completed callbacks", |app| app.monitor.count() == Some(1));
    assert_eq!(gui.row_ids(), [2]);
    assert_eq!(gui.row("PO-B")[3], "Completed");
    assert!(gui.shown("1 instance(s)"));

    gui.choose("Status", "Error");
    gui.run_until("no rows", |app| app.monitor.count() == Some(0));
    assert!(gui.row_ids().is_empty());
    assert!(gui.shown("0 instance(s)"));

    gui.choose("Status", "all");
    gui.choose("Process", "all");
    gui.run_until("all rows again", |app| app.monitor.count() == Some(4));
    assert_eq!(gui.row_ids(), [4, 3, 2, 1]);

    // The search matches folios (contains)...
    gui.replace_text("Folio or id", "PO-");
    gui.run_until("the PO rows", |app| app.monitor.count() == Some(2));
    assert_eq!(gui.row_ids(), [2, 1]);
    assert!(gui.shown("2 instance(s)"));
    gui.assert_rows_in_order(&["PO-B", "PO-A"]);
    // ... and ids.
    gui.replace_text("Folio or id", "3");
    gui.run_until("instance 3", |app| app.monitor.count() == Some(1));
    assert_eq!(gui.row_ids(), [3]);
    assert_eq!(gui.row("PA-C")[0], "3");
    gui.replace_text("Folio or id", "nothing like this");
    gui.run_until("no rows", |app| app.monitor.count() == Some(0));
    assert!(gui.shown("0 instance(s)"));
    gui.replace_text("Folio or id", "");
    gui.run_until("all rows again", |app| app.monitor.count() == Some(4));
    assert!(gui.shown("4 instance(s)"));
}

#[test]
fn clicking_a_column_header_sorts_and_clicking_again_reverses() {
    let mut gui = Gui::monitor(four_instances(), "ada");
    gui.run_until("all four rows", |app| app.monitor.rows().len() == 4);
    assert!(gui.shown("Id (desc)"), "newest first is the id column, descending");

    gui.click("Folio");
    gui.run_until("rows by folio", |app| app.monitor.rows().first().is_some_and(|r| r.folio == "INV-D"));
    assert_eq!(gui.row_ids(), [4, 3, 1, 2]);
    gui.assert_rows_in_order(&["INV-D", "PA-C", "PO-A", "PO-B"]);
    assert!(gui.shown("Folio (asc)"));
    assert!(gui.shown("Id"), "the id column is no longer marked");

    gui.click("Folio (asc)");
    gui.run_until("rows by folio, descending", |app| app.monitor.rows().first().is_some_and(|r| r.folio == "PO-B"));
    assert_eq!(gui.row_ids(), [2, 1, 3, 4]);
    gui.assert_rows_in_order(&["PO-B", "PO-A", "PA-C", "INV-D"]);
    assert!(gui.shown("Folio (desc)"));

    // By status: Active before Completed, ties by id.
    gui.click("Status");
    gui.run_until("rows by status", |app| app.monitor.rows().last().is_some_and(|r| r.folio == "PO-B"));
    assert_eq!(gui.row_ids(), [1, 3, 4, 2]);
    assert!(gui.shown("Status (asc)"));
    gui.assert_rows_in_order(&["PO-A", "PA-C", "INV-D", "PO-B"]);

    gui.click("Process");
    gui.run_until("rows by process", |app| app.monitor.rows().last().is_some_and(|r| r.folio == "PA-C"));
    assert_eq!(gui.row_ids(), [1, 2, 4, 3]);

    gui.click("Id");
    gui.run_until("newest first again", |app| app.monitor.rows().first().is_some_and(|r| r.id == 4));
    assert_eq!(gui.row_ids(), [4, 3, 2, 1]);
    assert!(gui.shown("Id (desc)"));
}

// ----- one instance and its flow ----------------------------------------------

#[test]
fn clicking_a_row_opens_the_instance_and_its_flow_follows_the_callback() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "callback", "PO-1042", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");

    gui.open_instance("PO-1042", id);
    assert_eq!(gui.detail_status(), InstanceStatus::Active);
    assert!(gui.shown("Active"));
    assert!(gui.shown("Waiting for a callback on 1_2"));
    assert!(gui.shown("Flow of instance 1"));
    assert_eq!(gui.texts_containing("PO-1042 · callback version 1 · started by admin at").len(), 1);
    // The data fields, as the engine has them.
    assert_eq!(gui.field_value("stage"), "waiting");
    assert_eq!(gui.field_value("name"), "");

    let (activities, lines) = flow_state(gui.app().monitor.detail().unwrap());
    assert_eq!(activities.get("prepare"), Some(&Reached::Completed));
    assert_eq!(activities.get("call"), Some(&Reached::Active));
    assert_eq!(activities.get("approved"), None, "not reached");
    assert_eq!(activities.get("rejected"), None, "not reached");
    assert_eq!(lines.get(&0), Some(&true), "Prepare → Call fired");
    assert_eq!(lines.get(&1), None, "not evaluated yet");
    assert_eq!(lines.get(&2), None, "not evaluated yet");

    // The external system answers "no"; the operator refreshes.
    gui.fx.engine.finish("admin", support::parse_serial("1_2"), &set(&[("name", "no")])).unwrap();
    gui.click("Refresh");
    gui.run_until_status(InstanceStatus::Completed);
    assert!(gui.texts_containing("Waiting for a callback").is_empty());
    assert_eq!(gui.field_value("name"), "no");
    let (activities, lines) = flow_state(gui.app().monitor.detail().unwrap());
    assert_eq!(activities.get("prepare"), Some(&Reached::Completed));
    assert_eq!(activities.get("call"), Some(&Reached::Completed));
    assert_eq!(activities.get("rejected"), Some(&Reached::Completed));
    assert_eq!(activities.get("approved"), None, "the other branch was never reached");
    assert_eq!(lines.get(&0), Some(&true));
    assert_eq!(lines.get(&1), Some(&false), "the line to Approved was evaluated false");
    assert_eq!(lines.get(&2), Some(&true), "the line to Rejected fired");
    // The list row follows too.
    gui.run_until("the row to be completed", |app| {
        app.monitor.rows().first().is_some_and(|r| r.status == InstanceStatus::Completed)
    });
    assert_eq!(gui.row("PO-1042")[3], "Completed");
}

#[test]
fn an_instance_in_error_shows_red_where_it_failed() {
    let fx = fixture();
    deploy_json(&fx, FAILING);
    let id = fx.engine.start("admin", "failing", "F-1", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("F-1", id);
    assert_eq!(gui.detail_status(), InstanceStatus::Error);
    let errors = gui.texts_containing("Error at `Work` Check:");
    assert_eq!(errors.len(), 1, "{:#?}", gui.all_texts());
    assert!(errors[0].contains("boom"), "{}", errors[0]);
    let (activities, lines) = flow_state(gui.app().monitor.detail().unwrap());
    assert_eq!(activities.get("work"), Some(&Reached::Error));
    assert_eq!(activities.get("end"), None);
    assert!(lines.is_empty());
}

// ----- operator actions ------------------------------------------------------------

#[test]
fn stop_and_resume_are_confirmed_and_recorded_with_the_user_and_cancel_changes_nothing() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "callback", "PO-7", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("PO-7", id);
    let question = format!("Stop instance {id}? It stays stopped until someone resumes it.");

    // Cancel leaves everything as it was.
    let before = gui.snapshot(&[id]);
    gui.click("Stop");
    gui.answer_confirmation(&question, "Cancel");
    gui.settle();
    assert_eq!(gui.snapshot(&[id]), before);
    assert_eq!(gui.detail_status(), InstanceStatus::Active);
    assert!(gui.texts_containing("Done.").is_empty());

    gui.click("Stop");
    gui.answer_confirmation(&question, "Confirm");
    assert_eq!(gui.status_of(id), InstanceStatus::Stopped);
    gui.run_until_status(InstanceStatus::Stopped);
    assert!(gui.shown(&format!("Done. Instance {id} is now stopped.")));
    // A stopped instance keeps its item open, but a callback does not move it on.
    assert!(gui.shown("Stopped (its callback item 1_2 stays open)"));
    assert_eq!(gui.fx.trail(id).last().map(String::as_str), Some("ada: Stopped"));
    let cancelled_resume = gui.snapshot(&[id]);
    gui.click("Resume");
    gui.answer_confirmation(&format!("Resume instance {id}?"), "Cancel");
    gui.settle();
    assert_eq!(gui.snapshot(&[id]), cancelled_resume);

    gui.click("Resume");
    gui.answer_confirmation(&format!("Resume instance {id}?"), "Confirm");
    assert_eq!(gui.status_of(id), InstanceStatus::Active);
    gui.run_until_status(InstanceStatus::Active);
    assert!(gui.shown(&format!("Done. Instance {id} is now waiting for a callback on 1_2.")));
    assert_eq!(gui.fx.trail(id).last().map(String::as_str), Some("ada: Resumed"));

    // The audit trail tab shows both, by the connected user, after the
    // start by the one who prepared the instance.
    gui.click("Audit trail");
    let detail = gui.fx.detail("admin", id);
    for action in ["Stopped", "Resumed"] {
        let entry = detail.audit.iter().find(|a| a.action.name() == action).unwrap();
        assert_eq!(gui.trail_entry(action), [&format_time(entry.at), "ada", action, ""]);
    }
    let started = gui.trail_entry("Instance started");
    assert_eq!(started[1..], ["admin", "Instance started", "folio `PO-7`, callback version 1"]);
}

#[test]
fn an_instance_in_error_is_fixed_in_the_data_tab_and_retried_to_completion() {
    let fx = fixture();
    deploy_json(&fx, FAILING);
    let id = fx.engine.start("admin", "failing", "F-2", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("F-2", id);
    assert_eq!(gui.detail_status(), InstanceStatus::Error);
    assert!(gui.shown("Error"));

    // Nothing edited yet: nothing to save.
    assert!(gui.harness.get_by_role_and_label(Role::Button, "Save data…").accesskit_node().is_disabled());
    gui.click("ready");
    assert!(!gui.harness.get_by_role_and_label(Role::Button, "Save data…").accesskit_node().is_disabled());
    let before = gui.snapshot(&[id]);
    gui.click("Save data…");
    gui.answer_confirmation(&format!("Change 1 data field(s) of instance {id}?"), "Cancel");
    assert_eq!(gui.snapshot(&[id]), before, "cancel saves nothing");
    assert_eq!(gui.fx.field(id, "ready"), Value::Boolean(false));

    gui.click("Save data…");
    gui.answer_confirmation(&format!("Change 1 data field(s) of instance {id}?"), "Confirm");
    assert_eq!(gui.fx.field(id, "ready"), Value::Boolean(true));
    assert!(gui.fx.trail(id).contains(&"ada: Data changed ready: false → true".to_owned()), "{:#?}", gui.fx.trail(id));
    assert_eq!(gui.status_of(id), InstanceStatus::Error, "saving data does not retry");
    gui.run_until("the saved data", |app| {
        app.monitor
            .detail()
            .is_some_and(|d| d.fields.iter().any(|(n, _, v)| n == "ready" && *v == Value::Boolean(true)))
    });

    gui.click("Retry");
    gui.answer_confirmation(&format!("Retry the failed step of instance {id}?"), "Confirm");
    assert_eq!(gui.status_of(id), InstanceStatus::Completed);
    gui.run_until_status(InstanceStatus::Completed);
    assert!(gui.shown(&format!("Done. Instance {id} is now completed.")));
    assert!(gui.texts_containing("Error at").is_empty());
    let trail = gui.fx.trail(id);
    assert!(trail.iter().any(|l| l.starts_with("ada: Retried")), "{trail:#?}");
    assert_eq!(trail.last().map(String::as_str), Some("ada: Instance completed"));
    let (activities, lines) = flow_state(gui.app().monitor.detail().unwrap());
    assert_eq!(activities.get("work"), Some(&Reached::Completed));
    assert_eq!(activities.get("end"), Some(&Reached::Completed));
    assert_eq!(lines.get(&0), Some(&true));
}

#[test]
fn go_to_moves_the_instance_to_another_activity_and_cancel_leaves_it() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "callback", "PO-9", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("PO-9", id);
    let goto = |gui: &mut Gui, activity: &str| {
        gui.harness.get_by(|n| n.role() == Role::ComboBox && n.value().as_deref() == Some("Go to…")).click();
        gui.settle();
        gui.click(activity);
    };

    let before = gui.snapshot(&[id]);
    goto(&mut gui, "Approved");
    gui.answer_confirmation(
        &format!("Move instance {id} to `Approved`? Its open activities and pending server items are cancelled."),
        "Cancel",
    );
    gui.settle();
    assert_eq!(gui.snapshot(&[id]), before);
    assert_eq!(gui.harness.query_all_by_value("Go to…").count(), 1, "the choice is reset");

    goto(&mut gui, "Rejected");
    gui.answer_confirmation(
        &format!("Move instance {id} to `Rejected`? Its open activities and pending server items are cancelled."),
        "Confirm",
    );
    assert_eq!(gui.status_of(id), InstanceStatus::Completed);
    gui.run_until_status(InstanceStatus::Completed);
    assert!(gui.shown(&format!("Done. Instance {id} is now completed.")));
    assert!(gui.fx.trail(id).contains(&"ada: Went to activity Rejected".to_owned()), "{:#?}", gui.fx.trail(id));
    assert_eq!(gui.fx.field(id, "done"), Value::Boolean(false));
    let (activities, _) = flow_state(gui.app().monitor.detail().unwrap());
    assert_eq!(activities.get("call"), Some(&Reached::Cancelled));
    assert_eq!(activities.get("rejected"), Some(&Reached::Completed));
    assert_eq!(activities.get("approved"), None);
    let items = gui.fx.engine.items("admin", &ItemFilter { include_closed: true, ..Default::default() }).unwrap();
    assert_eq!(items[0].status, ItemStatus::Cancelled);
    assert_eq!(items[0].closed_by.as_deref(), Some("ada"));
}

/// Issue 14: "Done. Instance 1 …" stayed on screen after selecting another
/// instance, and bob's refusal stayed after connecting back as ada.
#[test]
fn an_answer_belongs_to_its_instance_and_user_and_goes_when_they_change() {
    let fx = four_instances();
    fx.engine.grant("admin", "callback", "bob", &[Right::View]).unwrap();
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("PO-A", 1);
    gui.click("Stop");
    gui.answer_confirmation("Stop instance 1? It stays stopped until someone resumes it.", "Confirm");
    gui.run_until_status(InstanceStatus::Stopped);
    assert!(gui.shown("Done. Instance 1 is now stopped."));

    gui.open_instance("INV-D", 4);
    assert!(gui.texts_containing("Done.").is_empty(), "{:#?}", gui.panel_texts());
    gui.open_instance("PO-A", 1);
    assert!(gui.texts_containing("Done.").is_empty(), "the answer went with the selection");

    // bob may look but not stop. Meanwhile another program stopped the
    // instance: after the refusal the window shows it as it is now.
    gui.connect_as("bob");
    gui.open_instance("INV-D", 4);
    // The window looks for others' changes only when told: it must not see
    // the stop before bob acts.
    gui.looks_by_hand();
    gui.fx.engine.stop("admin", 4).unwrap();
    assert_eq!(gui.detail_status(), InstanceStatus::Active, "the window has not seen the stop yet");
    gui.click("Stop");
    assert!(gui.shown("It is recorded in the audit trail as done by bob."));
    gui.click("Confirm");
    let refused = "Refused: bob lacks the Admin right on process callback. An Admin of the process can grant it.";
    assert!(gui.shown(refused), "{:#?}", gui.panel_texts());
    gui.run_until_status(InstanceStatus::Stopped);
    assert!(gui.shown(refused), "the refusal stays while bob looks at instance 4");

    gui.connect_as("ada");
    gui.run_until("ada's rows", |app| app.monitor.count() == Some(4));
    assert!(gui.texts_containing("Refused").is_empty(), "bob's refusal went with him: {:#?}", gui.panel_texts());
    assert_eq!(gui.app().monitor.message(), None);
}

/// Issue 14: a retry whose step failed again was shown in green as "Done".
#[test]
fn a_retry_that_fails_again_is_shown_as_failed_with_the_engines_reason() {
    let fx = fixture();
    deploy_json(&fx, FAILING);
    let id = fx.engine.start("admin", "failing", "F-3", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("F-3", id);

    gui.click("Retry");
    gui.answer_confirmation(&format!("Retry the failed step of instance {id}?"), "Confirm");
    assert!(gui.fx.trail(id).iter().any(|l| l.starts_with("ada: Retried")), "the retry ran");
    let said = gui.texts_containing(&format!("instance {id} is in error"));
    assert_eq!(said.len(), 1, "{:#?}", gui.panel_texts());
    assert!(said[0].starts_with(&format!("Failed: instance {id} is in error at `Work` / `Check`: ")), "{said:?}");
    assert!(said[0].contains("boom"), "the engine's reason: {said:?}");
    assert!(gui.texts_containing("Done.").is_empty());
    assert_eq!(gui.app().monitor.message(), Some((said[0].as_str(), Outcome::Failed)), "shown as failed (red)");
}

#[test]
fn start_new_instance_from_an_instance_opens_the_start_form_and_adds_a_row() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "callback", "PO-1", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("PO-1", id);

    // Cancel starts nothing.
    gui.click("Start new instance…");
    assert!(gui.shown("Start an instance of callback"));
    gui.click("Cancel");
    assert!(!gui.shown("Start an instance of callback"));
    assert_eq!(gui.fx.engine.count_instances("admin", &Default::default()).unwrap(), 1);

    gui.click("Start new instance…");
    assert!(gui.shown("Start an instance of callback"));
    for field in ["Folio", "name (string)", "stage (string)"] {
        assert!(gui.harness.query_by_role_and_label(Role::TextInput, field).is_some(), "{field} is asked");
    }
    assert!(gui.harness.query_by_role_and_label(Role::CheckBox, "done (boolean)").is_some());
    gui.replace_text("Folio", "PO-2");
    gui.replace_text("name (string)", "first try");
    gui.click("Start");
    assert!(!gui.shown("Start an instance of callback"), "the form closes");
    assert_eq!(gui.app().status_text(), Some("Started instance 2: waiting for a callback on 2_2"));
    assert_eq!(gui.fx.field(2, "name"), s("first try"));
    assert_eq!(gui.fx.detail("admin", 2).summary.folio, "PO-2");

    // At once, not at the monitor's next periodic refresh (every 2 s).
    gui.run_until_frames("the new row", |app| app.monitor.count() == Some(2) && app.monitor.rows().len() == 2, 100);
    assert!(gui.shown("2 instance(s)"));
    assert_eq!(gui.row_ids(), [2, 1]);
    gui.assert_rows_in_order(&["PO-2", "PO-1"]);
    assert_eq!(&gui.row("PO-2")[..4], ["2", "PO-2", "callback v1", "Active"]);
}

// ----- live views (issue 18) -------------------------------------------------------

impl Gui {
    /// The query worker looks for changes only when the test says so.
    fn looks_by_hand(&mut self) {
        self.app().monitor.queries().expect("the monitor has its worker").set_polling(Polling::Manual);
    }

    /// Looks made and queries answered by the worker so far.
    fn worker_counts(&self) -> (u64, u64) {
        let queries = self.app().monitor.queries().expect("the monitor has its worker");
        (queries.looks(), queries.answered())
    }

    /// Has the worker look at the change counter once (one poll period), and
    /// runs frames until it has.
    fn look(&mut self) {
        let (looks, _) = self.worker_counts();
        self.app().monitor.queries().expect("the monitor has its worker").look();
        self.run_until("the worker's look", |app| app.monitor.queries().is_some_and(|q| q.looks() > looks));
    }
}

/// Issue 18: a change another program commits (here the fixture's engine,
/// a connection of its own) shows in the instance list, its count, the open
/// instance and the server items after one look at the change counter, and
/// not before: nothing else reads the views again.
#[test]
fn issue_18_a_change_from_another_connection_shows_in_every_view_after_one_look() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "callback", "PO-1", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.looks_by_hand();
    gui.open_instance("PO-1", id);
    gui.run_until("the pending item", |app| app.monitor.items().len() == 1);

    gui.fx.engine.finish("admin", support::parse_serial("1_2"), &set(&[("name", "no")])).unwrap();
    gui.fx.engine.start("admin", "callback", "PO-2", &[]).unwrap();
    // No look, no change: the views keep what they read.
    for _ in 0..20 {
        gui.frame();
    }
    assert_eq!(gui.app().monitor.count(), Some(1));
    assert_eq!(gui.detail_status(), InstanceStatus::Active);
    assert_eq!(gui.app().monitor.items()[0].serial.to_string(), "1_2");

    gui.look();
    gui.run_until("the views to show both changes", |app| {
        let monitor = &app.monitor;
        monitor.count() == Some(2)
            && monitor.rows().iter().any(|row| row.id == id && row.status == InstanceStatus::Completed)
            && monitor.detail().is_some_and(|d| d.summary.status == InstanceStatus::Completed)
            && monitor.items().iter().map(|item| item.serial.to_string()).collect::<Vec<_>>() == ["2_2"]
    });
    gui.settle();
    assert!(gui.shown("2 instance(s)"));
    assert_eq!(gui.row("PO-1")[3], "Completed");
    assert_eq!(gui.row("PO-2")[3], "Active");

    // The server items view shows the same, drawn from the same reads.
    gui.harness.state_mut().view = AppView::Items;
    gui.settle();
    assert!(gui.shown("1 item(s)"), "{:#?}", gui.all_texts());
    assert!(gui.shown("2_2") && !gui.shown("1_2"));
}

/// Issue 18: looking finds nothing changed, so nothing is read again: the
/// worker answers no query however often it looks, until a commit.
#[test]
fn issue_18_nothing_is_read_again_while_nothing_changed() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    fx.engine.start("admin", "callback", "PO-1", &[]).unwrap();
    let mut gui = Gui::monitor(fx, "ada");
    gui.looks_by_hand();
    gui.settle();
    let (_, answered) = gui.worker_counts();
    for _ in 0..5 {
        gui.look();
        gui.harness.run_steps(3);
    }
    assert_eq!(gui.worker_counts().1, answered, "five looks at an unchanged database read nothing");

    gui.fx.engine.start("admin", "callback", "PO-2", &[]).unwrap();
    gui.look();
    gui.run_until("the new instance", |app| app.monitor.count() == Some(2));
    assert!(gui.worker_counts().1 > answered, "a commit is read");
}

/// Issue 18: the window's own write is read again as soon as it is answered,
/// without waiting for a look.
#[test]
fn issue_18_the_windows_own_write_is_read_again_at_once() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "callback", "PO-7", &[]).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.looks_by_hand();
    gui.open_instance("PO-7", id);
    let (looks, _) = gui.worker_counts();
    gui.click("Stop");
    gui.answer_confirmation(&format!("Stop instance {id}? It stays stopped until someone resumes it."), "Confirm");
    gui.run_until("the list to show the stop", |app| {
        app.monitor.rows().iter().any(|row| row.id == id && row.status == InstanceStatus::Stopped)
    });
    gui.run_until_status(InstanceStatus::Stopped);
    assert_eq!(gui.worker_counts().0, looks, "no look was needed");
}

/// Holds the first count of instances that reaches it once armed, until the
/// test releases it (or drops its release, when the test fails): a count
/// as slow as the test wants, with no sleep.
struct CountGate {
    armed: std::sync::atomic::AtomicBool,
    entered: std::sync::Mutex<std::sync::mpsc::Sender<()>>,
    release: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
}

impl CountGate {
    /// The gate, the signal that a count is held, and the release.
    fn new() -> (Arc<CountGate>, std::sync::mpsc::Receiver<()>, std::sync::mpsc::Sender<()>) {
        let (entered, held) = std::sync::mpsc::channel();
        let (release, released) = std::sync::mpsc::channel();
        let gate = CountGate {
            armed: std::sync::atomic::AtomicBool::new(false),
            entered: std::sync::Mutex::new(entered),
            release: std::sync::Mutex::new(released),
        };
        (Arc::new(gate), held, release)
    }

    fn hook(self: &Arc<CountGate>) -> flowdesk::engine::Hook {
        let gate = self.clone();
        Arc::new(move |point| {
            if point == flowdesk::engine::HookPoint::BeforeCount && gate.armed.swap(false, Ordering::SeqCst) {
                let _ = gate.entered.lock().unwrap().send(());
                let _ = gate.release.lock().unwrap().recv();
            }
        })
    }
}

/// The monitor's instance list alone, on a runtime of its own (whose
/// engine the test hooks), drawn as the window draws it.
fn hooked_monitor(
    fx: &Fixture,
    hook: flowdesk::engine::Hook,
) -> (flowdesk::runtime::Runtime, Harness<'static, Monitor>) {
    use flowdesk::runtime::{Runtime, RuntimeOptions, Ticking};
    let options = RuntimeOptions { ticking: Ticking::Manual, hook: Some(hook), ..RuntimeOptions::default() };
    let runtime = Runtime::open(&fx.db_path(), options).unwrap();
    let monitor = Monitor::new(Queries::start(&runtime, || {}), Arc::new(flowdesk::engine::SystemClock));
    let harness = Harness::builder().with_size([1280.0, 800.0]).build_ui_state(
        |ui, monitor: &mut Monitor| {
            monitor.sync(ui.ctx(), "ada", std::time::Duration::from_secs(1));
            let _ = monitor.instances_ui(ui, None, "ada");
        },
        monitor,
    );
    (runtime, harness)
}

fn run_monitor_until(
    harness: &mut Harness<'static, Monitor>,
    what: &str,
    done: impl Fn(&Harness<'static, Monitor>) -> bool,
) {
    for _ in 0..MAX_FRAMES {
        harness.run_steps(1);
        std::thread::yield_now();
        if done(harness) {
            return;
        }
    }
    panic!("still waiting for {what} after {MAX_FRAMES} frames");
}

fn folios(monitor: &Monitor) -> Vec<&str> {
    monitor.rows().iter().map(|row| row.folio.as_str()).collect()
}

/// Types `text` into the search box in place of what it holds.
fn search_for(harness: &mut Harness<'static, Monitor>, text: &str) {
    harness.get_by_role_and_label(Role::TextInput, "Folio or id").click();
    harness.run_steps(2);
    harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
    if text.is_empty() {
        harness.key_press(Key::Backspace);
    } else {
        harness.get_by_role_and_label(Role::TextInput, "Folio or id").type_text(text);
    }
    harness.run_steps(1);
}

/// Issue 18: a count that takes long (a data field, a date range: seconds
/// at a million instances) is answered apart from the rows: while it runs
/// the list shows the rows of its filter, and of the next filter typed,
/// beside "counting…". The count of a filter the operator has left is
/// given up, and neither its number nor an error ever shows; the reads go
/// on (the count of the next filter, of no filter).
#[test]
fn issue_18_a_slow_count_holds_back_no_rows_and_is_abandoned_when_the_filter_changes() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    for folio in ["PO-1", "PO-2", "INV-3"] {
        fx.engine.start("admin", "callback", folio, &[]).unwrap();
    }
    let (gate, held, release) = CountGate::new();
    let (_runtime, mut harness) = hooked_monitor(&fx, gate.hook());
    run_monitor_until(&mut harness, "the first rows and count", |h| {
        h.state().count() == Some(3) && h.state().rows().len() == 3
    });
    harness.state().queries().unwrap().set_polling(Polling::Manual);

    gate.armed.store(true, Ordering::SeqCst);
    search_for(&mut harness, "PO");
    held.recv_timeout(std::time::Duration::from_secs(60)).expect("the count of PO reached the gate");
    run_monitor_until(&mut harness, "the rows of PO while its count is held", |h| {
        folios(h.state()) == ["PO-2", "PO-1"]
    });
    assert!(harness.query_by_label("counting…").is_some(), "the count says it is counting");

    search_for(&mut harness, "INV");
    run_monitor_until(&mut harness, "the rows of INV while the count of PO is held", |h| {
        folios(h.state()) == ["INV-3"]
    });
    assert!(harness.query_by_label("counting…").is_some());
    assert_eq!(harness.state().count(), None);

    release.send(()).unwrap();
    run_monitor_until(&mut harness, "the count of INV", |h| h.state().count() == Some(1));
    harness.run_steps(1);
    assert!(harness.query_by_label("1 instance(s)").is_some());
    let queries = harness.state().queries().unwrap();
    assert_eq!(queries.abandoned(), 1, "the count of PO was given up, not shown");
    assert!(harness.query_by_label("2 instance(s)").is_none());

    // The read connection the given-up count had answers the next reads.
    search_for(&mut harness, "");
    run_monitor_until(&mut harness, "every row and the count again", |h| {
        h.state().count() == Some(3) && h.state().rows().len() == 3
    });
}

/// Issue 18: the audit trail is a table (time, user, action, activity /
/// event, details, since previous), filtered by the kind of line, whose
/// lines copy to the clipboard as tab-separated text.
#[test]
fn issue_18_the_audit_trail_is_a_table_filtered_by_kind_whose_lines_copy_as_text() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "callback", "PO-1", &[]).unwrap().instance_id;
    fx.clock.advance(90_250);
    fx.engine.finish("admin", support::parse_serial("1_2"), &set(&[("name", "no")])).unwrap();
    let audit = fx.detail("admin", id).audit;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("PO-1", id);
    gui.click("Audit trail");
    for title in ["Time", "User", "Action", "Activity / event", "Details", "Since previous"] {
        assert!(gui.shown(title), "the column {title}");
    }
    let copy_buttons = |gui: &Gui| {
        gui.harness
            .query_all_by(|node| {
                node.role() == Role::Button && node.label().is_some_and(|label| label.starts_with("Copy line "))
            })
            .count()
    };
    assert_eq!(copy_buttons(&gui), audit.len(), "a row per line");
    assert!(gui.shown(&format!("{0} of {0} line(s)", audit.len())));

    let finished = audit.iter().find(|e| e.action == AuditAction::ItemFinished).unwrap();
    assert_eq!(
        gui.trail_row("Server item finished"),
        [
            format_time(finished.at).as_str(),
            "admin",
            "Server item finished",
            "Call external system / Call external system",
            finished.detail.as_str(),
            "1m 30s 250ms"
        ],
        "the time since the line before is the wait for the callback"
    );
    assert_eq!(gui.trail_row("Instance started")[3], "", "about the instance as a whole");

    // Filtered by kind: only the activities started are left.
    gui.choose("Kind", "Activity started");
    let started: Vec<(usize, &AuditEntry)> =
        audit.iter().enumerate().filter(|(_, e)| e.action == AuditAction::ActivityStarted).collect();
    assert_eq!(started.len(), 3);
    assert_eq!(copy_buttons(&gui), 3);
    assert!(gui.shown(&format!("3 of {} line(s)", audit.len())));
    assert!(gui.texts_containing("Server item finished").is_empty());
    let places: Vec<String> = ["Prepare", "Call external system", "Rejected"].map(String::from).to_vec();
    for place in &places {
        assert!(gui.shown(place), "{place} started");
    }

    // Copy the second: its columns, tab-separated, go to the clipboard.
    let (index, entry) = started[1];
    let since = entry.at - audit[index - 1].at;
    gui.harness.get_by_role_and_label(Role::Button, &format!("Copy line {}", index + 1)).click();
    gui.harness.step();
    let copied: Vec<String> = gui
        .harness
        .output()
        .platform_output
        .commands
        .iter()
        .filter_map(|command| match command {
            egui::OutputCommand::CopyText(text) => Some(text.clone()),
            _ => None,
        })
        .collect();
    let expected = [
        format_time(entry.at),
        "admin".to_owned(),
        "Activity started".to_owned(),
        "Call external system".to_owned(),
        "Call external system (#2)".to_owned(),
        format_step(since),
    ]
    .join("\t");
    assert_eq!(copied, [expected]);

    // Back to every line.
    gui.choose("Kind", "all");
    assert_eq!(copy_buttons(&gui), audit.len());
}

// ----- server items ----------------------------------------------------------------

/// Items 1_2 (PO-A, callback), 2_2 (PA-B, purchase-approval), 3_2 (SH-C,
/// shipment) pending, ten minutes apart; 4_2 (PO-D) finished by ada. bob may
/// view both processes but has no Server Event right.
fn items_fixture() -> Fixture {
    let fx = fixture();
    for sample in ["callback", "purchase-approval", "shipment"] {
        deploy(&fx, &format!("{sample}.process.json"));
    }
    fx.engine.start("admin", "callback", "PO-A", &[]).unwrap();
    fx.clock.advance(10 * MINUTE);
    let data = set(&[("requester", "kim"), ("amount", "120.00"), ("cost_centre", "CC-7")]);
    fx.engine.start("admin", "purchase-approval", "PA-B", &data).unwrap();
    fx.clock.advance(10 * MINUTE);
    fx.engine.start("admin", "shipment", "SH-C", &set(&[("order_ref", "SO-1")])).unwrap();
    fx.clock.advance(10 * MINUTE);
    fx.engine.start("admin", "callback", "PO-D", &[]).unwrap();
    fx.engine.finish("admin", support::parse_serial("4_2"), &set(&[("name", "call back value")])).unwrap();
    fx.engine.grant("admin", "callback", "bob", &[Right::View]).unwrap();
    fx.engine.grant("admin", "purchase-approval", "bob", &[Right::View]).unwrap();
    fx
}

fn item_gui() -> Gui {
    let mut gui = Gui::open(items_fixture(), "ada", AppView::Monitor);
    gui.settle();
    // From the monitor, through its tab.
    gui.click("Server items");
    assert_eq!(gui.app().view, AppView::Items);
    gui.run_until("the pending items", |app| app.monitor.items().len() == 3);
    gui.settle();
    gui
}

/// The answer box of the finish panel.
fn answers(gui: &Gui) -> Vec<String> {
    let mut texts = gui.texts_containing("Refused");
    texts.extend(gui.texts_containing("Finished "));
    texts.extend(gui.texts_containing("Type or paste"));
    texts
}

fn age_minutes(age: &str) -> i64 {
    let age = humantime::parse_duration(age).unwrap_or_else(|e| panic!("`{age}` is an age: {e}"));
    (age.as_secs() / 60) as i64
}

#[test]
fn the_items_view_lists_pending_items_oldest_first_and_show_finished_adds_the_rest() {
    let mut gui = item_gui();
    assert!(gui.shown("3 item(s)"));
    assert!(gui.shown("Oldest first"));
    gui.assert_rows_in_order(&["1_2", "2_2", "3_2"]);

    let row = gui.row("1_2");
    assert_eq!(&row[..6], ["1_2", "1", "PO-A", "callback", "Call external system", "Call external system"]);
    assert_eq!(row[7], "Pending");
    let row = gui.row("2_2");
    assert_eq!(&row[..6], ["2_2", "2", "PA-B", "purchase-approval", "Check budget", "Ask finance"]);
    let row = gui.row("3_2");
    assert_eq!(&row[..4], ["3_2", "3", "SH-C", "shipment"]);
    // Ages: an hour, fifty and forty minutes (the test takes seconds, not minutes).
    let ages: Vec<i64> = ["1_2", "2_2", "3_2"].iter().map(|s| age_minutes(&gui.row(s)[6])).collect();
    assert!((60..=61).contains(&ages[0]) && (50..=51).contains(&ages[1]) && (40..=41).contains(&ages[2]), "{ages:?}");
    for serial in ["1_2", "2_2", "3_2"] {
        assert!(gui.harness.query_by_role_and_label(Role::Button, &format!("Open {serial}")).is_some());
    }
    assert!(!gui.shown("4_2"), "finished items are not listed");

    gui.click("Show finished");
    gui.run_until("all items", |app| app.monitor.items().len() == 4);
    assert!(gui.shown("4 item(s)"));
    gui.assert_rows_in_order(&["1_2", "2_2", "3_2", "4_2"]);
    let row = gui.row("4_2");
    assert_eq!(&row[..3], ["4_2", "4", "PO-D"]);
    assert_eq!(row.last().map(String::as_str), Some("Finished"));
    assert!(gui.harness.query_by_role_and_label(Role::Button, "Open 4_2").is_none(), "a finished item is not offered");

    // Pending items lead either way; the finished one stays last.
    gui.click("Oldest first");
    gui.run_until("newest first", |app| app.monitor.items().first().is_some_and(|i| i.folio == "SH-C"));
    assert!(gui.shown("Newest first"));
    gui.assert_rows_in_order(&["3_2", "2_2", "1_2", "4_2"]);

    gui.click("Show finished");
    gui.run_until("the pending items", |app| app.monitor.items().len() == 3);
    assert!(!gui.shown("4_2"));
}

#[test]
fn the_find_box_filters_items_by_serial_folio_or_activity() {
    let mut gui = item_gui();
    gui.replace_text("Find", "PA-");
    gui.run_until("PA-B's item", |app| app.monitor.items().len() == 1);
    assert!(gui.shown("1 item(s)"));
    assert_eq!(gui.row("2_2")[2], "PA-B");
    assert!(!gui.shown("1_2") && !gui.shown("3_2"));

    gui.replace_text("Find", "Call external");
    gui.run_until("the callback item", |app| app.monitor.items().first().is_some_and(|i| i.folio == "PO-A"));
    assert_eq!(gui.app().monitor.items().len(), 1);
    assert_eq!(gui.row("1_2")[2], "PO-A");

    gui.replace_text("Find", "3_2");
    gui.run_until("item 3_2", |app| app.monitor.items().first().is_some_and(|i| i.folio == "SH-C"));
    assert_eq!(gui.app().monitor.items().len(), 1);

    gui.replace_text("Find", "no such thing");
    gui.run_until("no items", |app| app.monitor.items().is_empty());
    assert!(gui.shown("0 item(s)"));

    gui.replace_text("Find", "");
    gui.run_until("every pending item", |app| app.monitor.items().len() == 3);
}

#[test]
fn an_item_opened_from_the_list_is_finished_with_data() {
    let mut gui = item_gui();
    gui.click("Open 1_2");
    for (key, value) in [
        ("Serial", "1_2"),
        ("Instance", "1 (Active)"),
        ("Folio", "PO-A"),
        ("Process", "callback v1"),
        ("Activity", "Call external system"),
        ("Event", "Call external system"),
        ("Status", "Pending"),
    ] {
        assert!(gui.shown(key), "the row {key}");
        assert!(gui.shown(value), "{key}: {value}");
    }
    // One input per data field, holding its value.
    assert_eq!(gui.field_value("name"), "");
    assert_eq!(gui.field_value("stage"), "waiting");
    assert!(gui.harness.query_by_role_and_label(Role::CheckBox, "done").is_some());

    gui.replace_text("name", "call back value");
    gui.click("Finish");
    assert_eq!(answers(&gui), ["Finished 1_2: instance 1 completed."]);
    assert_eq!(gui.status_of(1), InstanceStatus::Completed);
    assert_eq!(gui.fx.field(1, "name"), s("call back value"));
    assert_eq!(gui.fx.field(1, "done"), Value::Boolean(true));
    assert!(
        gui.fx.trail(1).contains(&"ada: Server item finished 1_2; set name = \"call back value\"".to_owned()),
        "{:#?}",
        gui.fx.trail(1)
    );
    // The item leaves the pending list; the form is closed.
    gui.run_until("the item to leave the list", |app| app.monitor.items().len() == 2);
    assert!(!gui.shown("1_2"));
    assert!(gui.harness.query_by_role_and_label(Role::TextInput, "name").is_none());
}

#[test]
fn a_typed_serial_is_opened_and_finished() {
    let mut gui = item_gui();
    gui.replace_text("Serial", "2_2");
    gui.click("Open");
    assert!(gui.shown("PA-B"));
    assert!(gui.shown("Ask finance"));
    assert_eq!(gui.field_value("budget_checked_on"), "1970-01-01");
    assert_eq!(gui.field_value("requester"), "kim");
    gui.click("budget_ok");
    gui.replace_text("budget_checked_on", "2026-12-31");
    gui.click("Finish");
    let answer = answers(&gui);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].starts_with("Finished 2_2: instance 2 "), "{answer:?}");
    assert_eq!(gui.fx.field(2, "budget_ok"), Value::Boolean(true));
    assert_eq!(gui.fx.field(2, "budget_checked_on").to_string(), "2026-12-31");
    assert_eq!(gui.fx.field(2, "approved"), Value::Boolean(true), "both checks passed: the request is approved");
}

#[test]
fn every_refused_finish_is_said_in_plain_words_and_changes_nothing() {
    let mut gui = item_gui();
    let all = [1, 2, 3, 4];
    let before = gui.snapshot(&all);

    // Nothing typed.
    gui.click("Open");
    assert_eq!(answers(&gui), ["Type or paste a serial first, like 1042_7."]);

    // Malformed.
    gui.replace_text("Serial", "abc");
    gui.click("Open");
    assert_eq!(
        answers(&gui),
        [
            "Refused: `abc` is not a serial number: it must be two numbers joined by one underscore (a serial looks like 1042_7)."
        ]
    );
    assert!(!gui.enabled("Finish"), "nothing opened");

    // Well-formed but unknown.
    gui.replace_text("Serial", "999_1");
    gui.click("Open");
    assert_eq!(answers(&gui), ["Refused: server item 999_1 not found."]);

    // Already finished: says when and by whom.
    gui.replace_text("Serial", "4_2");
    gui.click("Open");
    assert!(gui.shown("Finished"), "the opened item says it is finished");
    let item = gui.fx.engine.items("admin", &ItemFilter { include_closed: true, ..Default::default() }).unwrap();
    let finished = item.iter().find(|i| i.folio == "PO-D").unwrap();
    // Said at once, before anyone presses Finish, which cannot be pressed.
    let said = format!("This item was already finished at {} by admin.", format_time(finished.closed_at.unwrap()));
    assert!(gui.shown(&said), "{said}");
    let item_before = gui.snapshot(&[4]);
    gui.click("Finish");
    assert_eq!(gui.snapshot(&[4]), item_before, "a disabled Finish changes nothing");

    // Invalid data: the field is named.
    gui.click("Open 2_2");
    gui.replace_text("budget_checked_on", "31/12/2026");
    gui.click("Finish");
    let answer = answers(&gui);
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(answer[0].starts_with("Refused: invalid data for field `budget_checked_on`: "), "{answer:?}");
    assert_eq!(gui.field_value("budget_checked_on"), "31/12/2026", "the form keeps what was typed");
    assert_eq!(gui.snapshot(&all), before);

    // Permission denied, for a finish on an opened item and for opening one.
    gui.replace_text("budget_checked_on", "2026-12-31");
    gui.replace_text("Connected as", "bob");
    gui.run_until("bob's items", |app| app.monitor.items().len() == 2);
    gui.click("Finish");
    let denied = "Refused: bob lacks the Server Event right on process purchase-approval. \
                  An Admin of the process can grant it.";
    assert_eq!(answers(&gui), [denied]);
    gui.click("Open 1_2");
    assert_eq!(
        answers(&gui),
        ["Refused: bob lacks the Server Event right on process callback. An Admin of the process can grant it."]
    );
    assert!(gui.harness.query_by_role_and_label(Role::TextInput, "budget_checked_on").is_none(), "nothing opened");

    assert_eq!(gui.snapshot(&all), before, "no refusal changed anything");
    assert_eq!(gui.status_of(2), InstanceStatus::Active);
}

/// Issue 14: with 1_2 open, pasting 2_2 into the box and pressing Finish
/// finished 1_2. Editing the box closes the opened item; Finish acts only on
/// the item opened from the serial in the box.
#[test]
fn editing_the_serial_closes_the_opened_item_and_finish_waits_for_open() {
    let mut gui = item_gui();
    let all = [1, 2, 3, 4];
    gui.replace_text("Serial", "1_2");
    gui.click("Open");
    assert!(gui.panel_texts().contains(&"PO-A".to_owned()), "1_2 is open: {:#?}", gui.panel_texts());
    assert!(gui.enabled("Finish"));
    let before = gui.snapshot(&all);
    let trail_of_1 = gui.fx.trail(1);

    gui.paste_into("Serial", "2_2");
    let panel = gui.panel_texts();
    assert!(!panel.contains(&"PO-A".to_owned()) && !panel.contains(&"1_2".to_owned()), "1_2 is closed: {panel:#?}");
    assert!(!panel.contains(&"PA-B".to_owned()), "2_2 is not open before Open is pressed: {panel:#?}");
    assert!(gui.harness.query_by_role_and_label(Role::TextInput, "name").is_none(), "no data fields of 1_2");
    assert!(!gui.enabled("Finish"), "nothing to finish until Open is pressed");
    gui.click("Finish");
    assert_eq!(gui.snapshot(&all), before, "pressing the disabled Finish changes nothing");
    assert!(answers(&gui).is_empty(), "{:?}", answers(&gui));

    gui.click("Open");
    assert!(gui.panel_texts().contains(&"PA-B".to_owned()));
    gui.click("budget_ok");
    gui.click("Finish");
    let answer = answers(&gui);
    assert!(answer.len() == 1 && answer[0].starts_with("Finished 2_2: instance 2 "), "{answer:?}");
    assert_eq!(gui.status_of(1), InstanceStatus::Active, "1_2 still waits");
    assert_eq!(gui.fx.trail(1), trail_of_1, "nothing of instance 1 changed");
}

/// Issue 14: after a refused finish the panel still said Active and Pending.
#[test]
fn a_refused_finish_shows_the_item_as_it_is_now_and_the_answer_goes_with_the_serial() {
    let mut gui = item_gui();
    gui.click("Open 1_2");
    assert!(gui.panel_texts().contains(&"Pending".to_owned()));
    // Another program finishes it first.
    gui.fx.engine.finish("admin", support::parse_serial("1_2"), &set(&[("name", "yes")])).unwrap();
    gui.click("Finish");
    let answer = answers(&gui);
    assert!(answer.len() == 1 && answer[0].starts_with("Refused: server item 1_2 "), "{answer:?}");
    let panel = gui.panel_texts();
    for now in ["1 (Completed)", "Finished"] {
        assert!(panel.contains(&now.to_owned()), "{now}: {panel:#?}");
    }
    assert!(!panel.contains(&"Pending".to_owned()) && !panel.contains(&"1 (Active)".to_owned()), "{panel:#?}");
    assert!(gui.texts_containing("This item was already finished at").len() == 1);
    assert!(!gui.enabled("Finish"));

    // The answer is about 1_2: it goes when the box holds another serial.
    gui.paste_into("Serial", "2_2");
    assert!(answers(&gui).is_empty(), "{:?}", answers(&gui));
}

/// Issue 14: "Refused: bob lacks …" stayed after connecting back as ada.
#[test]
fn the_finish_panel_shows_the_item_as_the_connected_user_may_see_it() {
    let mut gui = item_gui();
    gui.click("Open 2_2");
    gui.replace_text("budget_checked_on", "2026-12-31");
    gui.connect_as("bob");
    let denied = "Refused: bob lacks the Server Event right on process purchase-approval. \
                  An Admin of the process can grant it.";
    assert_eq!(answers(&gui), [denied], "said as soon as bob is connected");
    assert!(!gui.enabled("Finish"));

    gui.connect_as("ada");
    assert!(answers(&gui).is_empty(), "bob's refusal went with him: {:?}", answers(&gui));
    assert!(gui.enabled("Finish"));
    assert_eq!(gui.field_value("budget_checked_on"), "2026-12-31", "what ada typed is kept");
}

/// An answer goes with the user who was answered, as the monitor's do: it
/// does not come back when that user connects again later (it came back,
/// say "Finished 1_2" long after bob had been at the window in between).
#[test]
fn a_finish_answer_does_not_come_back_when_its_user_connects_again() {
    let mut gui = item_gui();
    gui.click("Open 1_2");
    gui.click("Finish");
    let answer = answers(&gui);
    assert!(answer.len() == 1 && answer[0].starts_with("Finished 1_2: instance 1 "), "{answer:?}");

    gui.connect_as("bob");
    assert!(answers(&gui).is_empty(), "{:?}", answers(&gui));
    gui.connect_as("ada");
    assert!(answers(&gui).is_empty(), "ada's answer went when bob connected: {:?}", answers(&gui));
    assert_eq!(gui.field_value("Serial"), "1_2", "the box keeps its serial");
}

/// Under "Finished 1_2" the panel went on saying "Press Open to see the item
/// of this serial and finish it.", as if it still had to be finished; so it
/// did under "Refused: server item 999_1 not found".
#[test]
fn the_panel_asks_to_press_open_only_while_nothing_is_said_about_the_serial() {
    let press_open = "Press Open to see the item of this serial and finish it.";
    let mut gui = item_gui();
    gui.replace_text("Serial", "1_2");
    assert!(gui.shown(press_open), "a serial typed, not opened yet");
    gui.click("Open");
    gui.click("Finish");
    assert!(gui.texts_containing("Finished 1_2").len() == 1, "{:?}", answers(&gui));
    assert!(!gui.shown(press_open), "1_2 is finished: {:#?}", gui.panel_texts());

    gui.replace_text("Serial", "999_1");
    assert!(gui.shown(press_open));
    gui.click("Open");
    assert_eq!(answers(&gui), ["Refused: server item 999_1 not found."]);
    assert!(!gui.shown(press_open), "{:#?}", gui.panel_texts());
}

/// Issue 14: the server items list shared its scroll position with the
/// instance list, so the oldest items, which it puts on top, were hidden.
#[test]
fn the_items_list_keeps_its_own_scroll_position() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    for n in 1..=60 {
        fx.engine.start("admin", "callback", &format!("PO-{n:02}"), &[]).unwrap();
        fx.clock.advance(1000);
    }
    let mut gui = Gui::monitor(fx, "ada");
    gui.run_until("every row", |app| app.monitor.rows().len() == 60);
    for _ in 0..6 {
        let (top, _) = gui.app().monitor.visible_rows().expect("rows are drawn");
        let folio = format!("PO-{:02}", 60 - top);
        gui.harness.get_by(|node| node.role() == Role::Label && node.value() == Some(folio.clone())).scroll_down();
        gui.settle();
    }
    let (top, _) = gui.app().monitor.visible_rows().unwrap();
    assert!(top >= 20, "the instance list is scrolled down: its first row drawn is {top}");

    gui.click("Server items");
    gui.run_until("every item", |app| app.monitor.items().len() == 60);
    assert!(gui.shown("1_2"), "the oldest item is in sight, on top");
    gui.assert_rows_in_order(&["1_2", "2_2"]);

    gui.click("Monitor");
    gui.settle();
    assert_eq!(gui.app().monitor.visible_rows().map(|(low, _)| low), Some(top), "the instance list stayed put");
}

/// Issue 14: Find was case-sensitive and did not search process names.
#[test]
fn the_find_box_ignores_case_and_matches_the_process_too() {
    let fx = items_fixture();
    fx.engine.start("admin", "callback", "Überweisung-9", &[]).unwrap();
    let mut gui = Gui::open(fx, "ada", AppView::Items);
    gui.run_until("the pending items", |app| app.monitor.items().len() == 4);
    for (search, found) in [
        ("po-a", &["1_2"][..]),
        ("SHIPMENT", &["3_2"]),
        ("Purchase-Approval", &["2_2"]),
        ("call EXTERNAL", &["1_2", "5_2"]),
        ("ask FINANCE", &["2_2"]),
        ("überweisung", &["5_2"]),
        ("ÜBERWEISUNG", &["5_2"]),
        ("5_2", &["5_2"]),
    ] {
        gui.replace_text("Find", search);
        gui.run_until_frames(
            &format!("the items found by `{search}`: {found:?}"),
            |app| app.monitor.items().iter().map(|i| i.serial.to_string()).collect::<Vec<_>>() == found,
            MAX_FRAMES,
        );
        assert!(gui.shown(&format!("{} item(s)", found.len())), "{search}");
    }
}

#[test]
fn the_server_menu_starts_and_stops_the_http_api_and_the_status_bar_shows_where() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let serial = fx.engine.start("admin", "callback", "PO-1", &[]).unwrap().waiting[0].clone();
    let secret = flowdesk::net::token::issue(&fx.runtime(), "ada", "test", "admin", 0).unwrap();
    let mut gui = Gui::open(fx, "ada", AppView::Items);
    assert!(gui.shown("API off"));

    // A typo is refused in the status bar; nothing starts.
    gui.click("Server");
    gui.replace_text("Listen on", "localhost");
    gui.click("Start HTTP API");
    assert!(gui.app().api_url().is_none());
    let refused = gui.app().status_text().unwrap().to_owned();
    assert!(refused.contains("`localhost` is not an address and port"), "{refused}");

    gui.click("Server");
    gui.replace_text("Listen on", "127.0.0.1:0");
    gui.click("Start HTTP API");
    let url = gui.app().api_url().expect("the API runs");
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/api/v1"), "{url}");
    assert_eq!(gui.app().status_text(), Some(format!("HTTP API listening on {url}").as_str()));
    assert!(gui.shown(&format!("API on {url}")));

    // An external system finishes the item through the window's API.
    let agent = ureq::Agent::config_builder().http_status_as_error(false).build().new_agent();
    let answer = agent
        .post(format!("{url}/serveritems/{serial}/finish"))
        .header("Authorization", format!("Bearer {}", secret.secret))
        .send_empty()
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(gui.status_of(1), InstanceStatus::Completed);

    gui.click("Server");
    assert!(gui.shown(&format!("HTTP API listening on {url}")));
    gui.click("Stop HTTP API");
    assert!(gui.app().api_url().is_none());
    assert!(gui.shown("API off"));
    assert!(agent.get(format!("{url}/openapi.json")).call().is_err(), "nothing listens any more");
}

#[test]
fn the_server_menu_creates_a_token_and_shows_its_secret_once() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let mut gui = Gui::open(fx, "ada", AppView::Items);
    gui.click("Server");
    gui.click("Create token…");
    gui.click("Create");
    assert!(gui.shown("Name the user the token acts as."), "an empty user is refused");
    assert!(gui.fx.engine.store().tokens().unwrap().is_empty());

    gui.replace_text("User", "biztalk");
    gui.replace_text("Label", "billing");
    gui.click("Create");
    let secret = gui.field_value("Secret");
    assert!(secret.starts_with("fdk_"), "{secret}");
    let store = gui.fx.engine.store();
    assert_eq!(store.token_user(&flowdesk::net::token::hash(&secret)).unwrap().as_deref(), Some("biztalk"));
    let tokens = store.tokens().unwrap();
    assert_eq!((tokens[0].label.as_str(), tokens[0].created_by.as_str()), ("billing", "ada"));
    assert_eq!(gui.app().status_text(), Some("Created token 1 for biztalk"));

    gui.click("Done");
    assert!(gui.harness.query_by_role_and_label(Role::TextInput, "Secret").is_none(), "the secret is gone");
}

#[test]
fn the_tokens_dialog_lists_tokens_and_revokes_one_after_asking() {
    let fx = fixture();
    let runtime = fx.runtime();
    let leaked = flowdesk::net::token::issue(&runtime, "biztalk", "billing", "admin", 0).unwrap();
    let kept = flowdesk::net::token::issue(&runtime, "shipper", "parcels", "admin", 0).unwrap();
    drop(runtime);
    let mut gui = Gui::open(fx, "ada", AppView::Items);
    gui.click("Server");
    gui.click("Tokens…");
    assert!(gui.shown("billing") && gui.shown("parcels"));
    assert!(gui.shown(&format!("{}…", &leaked.secret[..12])), "the start of the secret tells tokens apart");
    assert!(!gui.texts_containing(&leaked.secret).iter().any(|t| t.len() >= leaked.secret.len()), "no secret is shown");

    gui.click(&format!("Revoke {}", leaked.id));
    gui.click("No");
    let valid = |gui: &Gui, secret: &str| {
        gui.fx.engine.store().token_user(&flowdesk::net::token::hash(secret)).unwrap().is_some()
    };
    assert!(valid(&gui, &leaked.secret), "No keeps the token");

    gui.click(&format!("Revoke {}", leaked.id));
    gui.click("Yes, revoke");
    assert!(!valid(&gui, &leaked.secret), "the token stops working");
    assert!(valid(&gui, &kept.secret), "the other token still works");
    assert_eq!(gui.app().status_text(), Some(format!("Revoked token {}", leaked.id).as_str()));
    assert_eq!(gui.texts_containing("revoked").len(), 1, "{:?}", gui.all_texts());
    assert!(gui.texts_containing("revoked")[0].ends_with("by ada"));
    gui.click("Close");
    assert!(!gui.shown("API tokens"));
}

// ----- issue 14: View Flow colours mean one thing ----------------------------------

/// An activity of two events: "Prepare" completes at once, then "Ask" hands
/// out its serial and waits; its script fails until `ready` is set, which
/// leaves the instance in Error with Ask's callback item still open.
const TWO_EVENTS: &str = r#"{
  "name": "two-events",
  "fields": [{ "name": "ready", "type": "boolean" }],
  "activities": [
    { "id": "call", "name": "Call", "start": true, "events": [
      { "kind": "server_event", "name": "Prepare", "synchronous": true, "script": "log(\"prepared\");" },
      { "kind": "server_event", "name": "Ask", "synchronous": false,
        "script": "if !ready { throw \"no answer\"; }" } ] },
    { "id": "end", "name": "End", "events": [] }
  ],
  "lines": [{ "from": "call", "to": "end" }]
}"#;

/// The flow's event dots (filled circles on its canvas), top to bottom.
fn flow_dots(gui: &Gui) -> Vec<(egui::Pos2, egui::Color32)> {
    fn walk(shape: &egui::Shape, found: &mut Vec<egui::Shape>) {
        match shape {
            egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| walk(s, found)),
            other => found.push(other.clone()),
        }
    }
    let mut shapes = Vec::new();
    for clipped in &gui.harness.output().shapes {
        walk(&clipped.shape, &mut shapes);
    }
    let canvas = shapes
        .iter()
        .find_map(|shape| match shape {
            egui::Shape::Rect(rect) if rect.fill == flowdesk::gui::theme::CANVAS_BACKGROUND => Some(rect.rect),
            _ => None,
        })
        .expect("the flow's canvas is drawn");
    let mut dots: Vec<(egui::Pos2, egui::Color32)> = shapes
        .iter()
        .filter_map(|shape| match shape {
            egui::Shape::Circle(circle) if canvas.contains(circle.center) && circle.fill.a() > 0 => {
                Some((circle.center, circle.fill))
            }
            _ => None,
        })
        .collect();
    dots.sort_by(|a, b| a.0.y.total_cmp(&b.0.y));
    dots
}

#[test]
fn issue_14_view_flow_colours_events_by_state_and_marks_the_one_that_waits() {
    use flowdesk::gui::theme::flow;
    let fx = fixture();
    deploy_json(&fx, TWO_EVENTS);
    let id = fx.engine.start("admin", "two-events", "TE-1", &set(&[("ready", "true")])).unwrap().instance_id;
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("TE-1", id);
    assert_eq!(gui.detail_status(), InstanceStatus::Active);
    assert!(gui.shown("Waiting for a callback on 1_1"), "{:#?}", gui.all_texts());

    // Blue is "active" in the legend: a dot is blue only if its event is.
    let dots = flow_dots(&gui);
    let colours: Vec<egui::Color32> = dots.iter().map(|(_, c)| *c).collect();
    assert_eq!(colours, [flow::COMPLETED, flow::ACTIVE], "Prepare completed, Ask waits");
    // The event that waits says so itself, with its serial.
    assert!(gui.shown("Event Prepare: completed"), "{:#?}", gui.all_texts());
    assert!(gui.shown("Event Ask: waiting for a callback on 1_1"));
}

#[test]
fn issue_14_an_instance_in_error_says_its_callback_item_stays_open_instead_of_waiting() {
    use flowdesk::gui::theme::flow;
    let fx = fixture();
    deploy_json(&fx, TWO_EVENTS);
    let id = fx.engine.start("admin", "two-events", "TE-2", &[]).unwrap().instance_id;
    assert_eq!(fx.detail("admin", id).pending_items.len(), 1, "Ask's item stays open");
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("TE-2", id);
    assert_eq!(gui.detail_status(), InstanceStatus::Error);

    assert!(gui.texts_containing("aiting for a callback").is_empty(), "it waits for nothing: {:#?}", gui.all_texts());
    assert!(gui.shown("In error (its callback item 1_1 stays open)"), "{:#?}", gui.all_texts());
    let colours: Vec<egui::Color32> = flow_dots(&gui).iter().map(|(_, c)| *c).collect();
    assert_eq!(colours, [flow::COMPLETED, flow::ERROR], "Prepare completed, Ask failed");
    assert!(gui.shown("Event Prepare: completed"));
    assert!(gui.shown("Event Ask: in error (its callback item 1_1 stays open)"));

    // The items list does not call it pending as if all were well.
    gui.click("Server items");
    gui.run_until("the open item", |app| app.monitor.items().len() == 1);
    gui.settle();
    assert_eq!(gui.row("1_1").last().map(String::as_str), Some("In error"));
}

/// A process whose only event recurses as deep as its `depth` field says,
/// each call nested in parentheses (issue 15's script).
fn deep_recursion_process() -> String {
    let nested = format!("{}f(n - 1){}", "(".repeat(10), " + 1)".repeat(10));
    let script = format!("fn f(n) {{ if n <= 0 {{ 0 }} else {{ {nested} }} }}\nstage = f(depth).to_string();");
    serde_json::json!({
        "name": "deep",
        "fields": [{ "name": "stage", "type": "string" }, { "name": "depth", "type": "integer" }],
        "activities": [{ "id": "nest", "name": "Nest", "start": true, "events": [
            { "kind": "server_event", "name": "Recurse", "script": script }
        ] }]
    })
    .to_string()
}

/// Started from the window, a script that recurses without end runs on the
/// window's own thread: the instance must fail with a clear reason, and the
/// window go on, not overflow the thread's stack and close.
#[test]
fn a_script_started_from_the_window_that_recurses_too_deep_fails_its_instance() {
    let fx = fixture();
    deploy_json(&fx, &deep_recursion_process());
    let shallow = fx.engine.start("admin", "deep", "shallow", &[]).unwrap();
    assert_eq!(shallow.status, InstanceStatus::Completed);
    let mut gui = Gui::monitor(fx, "ada");
    gui.open_instance("shallow", shallow.instance_id);

    gui.click("Start new instance…");
    gui.replace_text("Folio", "bottomless");
    gui.replace_text("depth (integer)", "1000");
    gui.click("Start");

    let status = gui.app().status_text().unwrap_or_default().to_owned();
    assert!(status.starts_with("Started instance 2: in error: "), "{status}");
    assert!(status.ends_with("calls nested more than 64 levels deep (an endless recursion?)"), "{status}");
    assert_eq!(gui.status_of(2), InstanceStatus::Error);
    gui.run_until_frames("the new row", |app| app.monitor.count() == Some(2), 100);
    assert_eq!(&gui.row("bottomless")[..4], ["2", "bottomless", "deep v1", "Error"]);
}

/// Regression (issue 15): a file that is no flowdesk database was shown as
/// "No database: database: …" in the status line and "The monitor cannot
/// read the database: database: …" in the monitor.
#[test]
fn regression_a_database_that_cannot_be_opened_is_named_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, "not a database, but longer than an SQLite header of a hundred bytes\n".repeat(3)).unwrap();
    let options = GuiOptions { db_path: path, user: "ada".to_owned(), file: None, view: AppView::Monitor };
    let app = FlowdeskApp::new(options, Settings::default(), Box::new(ScriptedDialogs::default()));
    let mut harness =
        Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut FlowdeskApp| app.ui(ui), app);
    harness.run_steps(4);
    let texts: Vec<String> = harness
        .query_all_by(|_| true)
        .filter_map(|node| {
            let ak = node.accesskit_node();
            if ak.role() == Role::Label { ak.value() } else { ak.label() }
        })
        .filter(|text| text.contains("is not a flowdesk database"))
        .collect();
    assert_eq!(texts.len(), 2, "the status line and the monitor say why: {texts:?}");
    for text in texts {
        assert!(!text.to_lowercase().contains("database: database"), "{text}");
    }
}

/// Issue 14 (looked at in the window at 1024×640): the server items' Status
/// and Age columns were cut off by the finish panel on a small screen.
/// Columns narrow together instead.
#[test]
fn on_a_small_screen_the_last_columns_stay_in_sight_beside_the_side_panel() {
    let fx = items_fixture();
    let mut gui = Gui::open_sized(fx, "ada", AppView::Items, [1024.0, 640.0]);
    gui.run_until("the pending items", |app| app.monitor.items().len() == 3);
    gui.settle();
    // The finish panel's heading (and its hint, which names it too).
    let panel_left = gui
        .harness
        .get_all_by(|node| node.value().as_deref() == Some("Finish by serial"))
        .map(|node| node.rect().min.x)
        .fold(f32::INFINITY, f32::min);
    assert!(panel_left < 1024.0, "the finish panel is in sight");
    // Age sorts (a button, its arrow on the order shown), Status is a title.
    for header in ["Age (asc)", "Due", "Status"] {
        let right = gui
            .harness
            .get_by(|node| node.value().as_deref() == Some(header) || node.label().as_deref() == Some(header))
            .rect()
            .max
            .x;
        assert!(right <= panel_left, "{header} ends at {right}, under the finish panel at {panel_left}");
    }
    let statuses: Vec<egui::Rect> =
        gui.harness.get_all_by(|node| node.value().as_deref() == Some("Pending")).map(|node| node.rect()).collect();
    assert_eq!(statuses.len(), 3);
    for status in statuses {
        assert!(status.max.x <= panel_left, "a status is under the finish panel: {status:?}");
    }
}

// ----- issue 16: no frame waits for the database ---------------------------------

/// Another program's write transaction on the database file: while it is
/// open, every write of the window waits for it (SQLite's busy timeout, 30 s),
/// and reads go on (write-ahead log).
struct HeldLock(rusqlite::Connection);

impl Gui {
    /// Takes the write lock from another connection.
    fn hold_lock(&mut self) -> HeldLock {
        let connection = rusqlite::Connection::open(self.fx.db_path()).unwrap();
        connection.execute_batch("BEGIN IMMEDIATE").unwrap();
        self.locked = true;
        HeldLock(connection)
    }

    fn release(&mut self, lock: HeldLock) {
        lock.0.execute_batch("ROLLBACK").unwrap();
        self.locked = false;
    }

    /// Runs `n` frames, checking `each` after every one; returns how many
    /// frames the window drew meanwhile.
    fn frames_while(&mut self, n: usize, each: impl Fn(&Gui)) -> u64 {
        let first = self.harness.ctx.cumulative_frame_nr();
        for _ in 0..n {
            self.frame();
            each(self);
        }
        self.harness.ctx.cumulative_frame_nr() - first
    }

    /// Clicks a button and runs the frame that takes the click and sends
    /// what it asks, and the one that shows it pending.
    fn press(&mut self, label: &str) {
        self.harness.get_by_role_and_label(Role::Button, label).click();
        self.harness.run_steps(2);
    }

    /// Opens F-4 (see `fixable_instance`), takes the write lock and retries
    /// the instance: the retry waits for the lock.
    fn retry_while_locked(&mut self, id: i64) -> HeldLock {
        self.open_instance("F-4", id);
        let lock = self.hold_lock();
        self.click("Retry");
        self.press("Confirm");
        lock
    }

    /// Waits until every write the window sent is answered.
    fn run_until_answered(&mut self) {
        self.run_until("the window's writes to be answered", |app| !app.busy());
        self.harness.run_steps(2);
    }
}

/// The instance F-4 in error (its script threw), its data since fixed, so
/// that a retry completes it; and PO-5, waiting for a callback. bob may
/// view both.
fn fixable_instance() -> (Fixture, i64) {
    let fx = fixture();
    deploy_json(&fx, FAILING);
    deploy(&fx, "callback.process.json");
    let id = fx.engine.start("admin", "failing", "F-4", &[]).unwrap().instance_id;
    fx.engine.set_data("admin", id, &set(&[("ready", "true")])).unwrap();
    assert_eq!(fx.detail("admin", id).summary.status, InstanceStatus::Error);
    fx.engine.start("admin", "callback", "PO-5", &[]).unwrap();
    for process in ["failing", "callback"] {
        fx.engine.grant("admin", process, "bob", &[Right::View]).unwrap();
    }
    (fx, id)
}

/// Issue 16: Confirm called the engine inside the drawing code, so a retry
/// waiting for a lock another program held froze the window for up to the
/// busy timeout (30 s). The window now draws on while the retry waits, says
/// what it waits for, takes no second action on the instance, and shows the
/// answer once the lock goes.
#[test]
fn issue_16_a_retry_waiting_for_a_busy_database_keeps_the_window_drawing_and_answers_when_the_lock_goes() {
    let (fx, id) = fixable_instance();
    let mut gui = Gui::monitor(fx, "ada");
    let lock = gui.retry_while_locked(id);
    let pending = format!("Retrying instance {id}…");
    let drawn = gui.frames_while(30, |gui| {
        assert!(gui.shown(&pending), "the panel says what it waits for: {:#?}", gui.panel_texts());
        for button in ["Retry", "Stop", "Save data…"] {
            assert!(!gui.enabled(button), "no second action while one is pending: {button}");
        }
    });
    assert!(drawn >= 30, "the window drew {drawn} frames while the retry waited");
    assert_eq!(gui.status_of(id), InstanceStatus::Error, "the retry is still waiting for the lock");
    // A second click asks nothing.
    gui.harness.get_by_role_and_label(Role::Button, "Retry").click();
    gui.harness.run_steps(4);
    assert!(!gui.shown("Please confirm"));

    gui.release(lock);
    gui.run_until("the retry's answer", |app| app.monitor.message().is_some());
    assert!(gui.shown(&format!("Done. Instance {id} is now completed.")), "{:#?}", gui.panel_texts());
    assert!(!gui.shown(&pending));
    gui.run_until_status(InstanceStatus::Completed);
    let retries = gui.fx.trail(id).iter().filter(|line| line.starts_with("ada: Retried")).count();
    assert_eq!(retries, 1, "one retry: {:#?}", gui.fx.trail(id));
}

/// The answer to a retry arrives after the operator selected another
/// instance: it is not shown against that one, nor when the first is
/// selected again (it went with the selection), but the list and the
/// details show what the retry did.
#[test]
fn issue_16_an_answer_that_arrives_after_another_instance_was_selected_is_not_shown_but_the_views_refresh() {
    let (fx, id) = fixable_instance();
    let mut gui = Gui::monitor(fx, "ada");
    let lock = gui.retry_while_locked(id);
    assert!(gui.shown(&format!("Retrying instance {id}…")));

    gui.open_instance("PO-5", 2);
    assert!(gui.texts_containing("Retrying").is_empty(), "{:#?}", gui.panel_texts());
    assert!(gui.enabled("Stop"), "instance 2 has nothing pending");
    gui.release(lock);
    gui.run_until_answered();
    assert_eq!(gui.status_of(id), InstanceStatus::Completed);
    assert!(gui.texts_containing("Done.").is_empty(), "{:#?}", gui.panel_texts());
    assert_eq!(gui.app().monitor.message(), None);
    gui.run_until("the list to show the retry", |app| {
        app.monitor.rows().iter().any(|row| row.id == id && row.status == InstanceStatus::Completed)
    });
    assert_eq!(gui.row("F-4")[3], "Completed");

    gui.open_instance("F-4", id);
    assert_eq!(gui.detail_status(), InstanceStatus::Completed);
    assert!(gui.texts_containing("Done.").is_empty(), "the answer went with the selection");
}

/// The answer arrives after another user connected: not shown to them, nor
/// to the one who acted when they connect again; the views still refresh.
/// The instance shows its pending retry to whoever is connected, and takes
/// no other action meanwhile.
#[test]
fn issue_16_an_answer_that_arrives_after_the_user_changed_is_not_shown_but_the_views_refresh() {
    let (fx, id) = fixable_instance();
    let mut gui = Gui::monitor(fx, "ada");
    let lock = gui.retry_while_locked(id);

    gui.connect_as("bob");
    gui.run_until("bob's view of the instance", |app| app.monitor.detail().is_some_and(|d| d.summary.id == id));
    gui.harness.run_steps(2);
    assert!(gui.shown(&format!("Retrying instance {id}…")), "{:#?}", gui.panel_texts());
    assert!(!gui.enabled("Stop"));
    gui.release(lock);
    gui.run_until_answered();
    gui.run_until_status(InstanceStatus::Completed);
    assert!(gui.texts_containing("Done.").is_empty(), "ada's answer is not bob's: {:#?}", gui.panel_texts());

    gui.connect_as("ada");
    gui.run_until_status(InstanceStatus::Completed);
    assert!(gui.texts_containing("Done.").is_empty(), "{:#?}", gui.panel_texts());
}

/// A finish waiting for the lock: the box says so and takes no second
/// Finish or Open of its serial; once the operator has put another serial in
/// the box, the answer about the first is not shown there, and the list
/// shows what the finish did.
#[test]
fn issue_16_a_finish_waiting_for_the_lock_is_shown_pending_and_its_answer_goes_with_its_serial() {
    let mut gui = item_gui();
    gui.click("Open 1_2");
    gui.run_until_finish_is_enabled();
    let lock = gui.hold_lock();
    gui.press("Finish");
    let drawn = gui.frames_while(20, |gui| {
        assert!(gui.shown("Finishing 1_2…"), "{:#?}", gui.panel_texts());
        assert!(!gui.enabled("Finish") && !gui.enabled("Open"));
    });
    assert!(drawn >= 20);
    gui.release(lock);
    gui.run_until_answered();
    assert_eq!(answers(&gui), ["Finished 1_2: instance 1 completed."]);

    gui.click("Open 2_2");
    gui.run_until_finish_is_enabled();
    let lock = gui.hold_lock();
    gui.press("Finish");
    assert!(gui.shown("Finishing 2_2…"), "{:#?}", gui.panel_texts());
    gui.paste_into("Serial", "3_2");
    assert!(!gui.shown("Finishing 2_2…"), "the spinner is about 2_2");
    gui.release(lock);
    gui.run_until_answered();
    assert!(answers(&gui).is_empty(), "the answer about 2_2 is not shown under 3_2: {:?}", answers(&gui));
    let items = gui.fx.engine.items("admin", &ItemFilter { include_closed: true, ..Default::default() }).unwrap();
    let item = items.iter().find(|item| item.serial.to_string() == "2_2").unwrap();
    assert_eq!((item.status, item.closed_by.as_deref()), (ItemStatus::Finished, Some("ada")), "the finish was made");
    gui.run_until("the finished item to leave the list", |app| {
        app.monitor.items().iter().all(|item| item.serial.to_string() != "2_2")
    });
}

/// Closing the window while a retry waits for the lock: the retry completes
/// once the lock goes (never half), and a write sent after it and not begun
/// yet (a token) is not made at all.
#[test]
fn issue_16_closing_the_window_lets_the_write_in_progress_complete_and_begins_no_other() {
    let (fx, id) = fixable_instance();
    let mut gui = Gui::monitor(fx, "ada");
    let lock = gui.retry_while_locked(id);
    gui.run_until("the retry to begin", |app| app.actions().is_some_and(|actions| actions.begun() == 1));
    gui.click("Server");
    gui.click("Create token…");
    gui.replace_text("User", "biztalk");
    gui.press("Create");
    assert!(gui.shown("Creating…"));

    gui.harness.state_mut().closing();
    gui.release(lock);
    let Gui { fx, harness, .. } = gui;
    // Dropping the window waits for the retry in progress.
    drop(harness);
    assert_eq!(fx.detail("admin", id).summary.status, InstanceStatus::Completed);
    assert!(fx.trail(id).iter().any(|line| line.starts_with("ada: Retried")), "{:#?}", fx.trail(id));
    assert!(fx.engine.store().tokens().unwrap().is_empty(), "the token was not begun, so not made");
}

/// Deploy and Start instance… wait for the lock like any write: the
/// designer draws on, says what it waits for, and takes no second deploy.
#[test]
fn issue_16_deploy_and_start_waiting_for_the_lock_keep_the_window_drawing() {
    let fx = fixture();
    let mut gui = Gui::open(fx, "ada", AppView::Designer);
    gui.settle();
    let lock = gui.hold_lock();
    gui.press("Deploy");
    let drawn = gui.frames_while(20, |gui| {
        assert_eq!(gui.app().status_text(), Some("Deploying callback…"));
        assert!(!gui.enabled("Deploy"), "one deploy at a time");
    });
    assert!(drawn >= 20);
    gui.release(lock);
    gui.run_until_answered();
    assert_eq!(gui.app().status_text(), Some("Deployed callback version 1"));

    gui.click("Start instance…");
    gui.replace_text("Folio", "PO-9");
    let lock = gui.hold_lock();
    gui.press("Start");
    let drawn = gui.frames_while(20, |gui| {
        assert!(gui.shown("Starting…"));
        assert!(!gui.enabled("Start") && !gui.enabled("Cancel"), "the start cannot be taken back");
    });
    assert!(drawn >= 20);
    assert_eq!(gui.fx.engine.count_instances("admin", &Default::default()).unwrap(), 0);
    gui.release(lock);
    gui.run_until_answered();
    assert!(!gui.shown("Start an instance of callback"), "the form closes");
    assert_eq!(gui.app().status_text(), Some("Started instance 1: waiting for a callback on 1_2"));
}

/// Granting a right in the designer waits for the lock like any write: the
/// status line says so and the rights panel takes no second change meanwhile.
#[test]
fn issue_16_a_grant_waiting_for_the_lock_keeps_the_rights_panel_still_until_answered() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let mut gui = Gui::open(fx, "ada", AppView::Designer);
    gui.settle();
    gui.replace_text("User", "bob");
    let lock = gui.hold_lock();
    gui.click("Grant ▾");
    gui.press("Server Event");
    let drawn = gui.frames_while(20, |gui| {
        assert_eq!(gui.app().status_text(), Some("Granting Server Event on callback to bob…"));
        assert!(!gui.enabled("Grant ▾"), "one change of rights at a time");
        let revokes: Vec<bool> = gui
            .harness
            .query_all_by_role_and_label(Role::Button, "Revoke")
            .map(|node| node.accesskit_node().is_disabled())
            .collect();
        assert!(!revokes.is_empty() && revokes.iter().all(|disabled| *disabled), "{revokes:?}");
    });
    assert!(drawn >= 20);
    gui.release(lock);
    gui.run_until_answered();
    assert_eq!(gui.app().status_text(), Some("Granted Server Event on callback to bob"));
    let rights = gui.fx.engine.rights_on_process("callback").unwrap();
    assert!(rights.contains(&("bob".to_owned(), Right::ServerEvent)), "{rights:?}");
    assert!(gui.shown("bob"), "the rights panel lists the grant");
}

/// The instance's buttons, and its data's editing, follow the engine's table
/// for every status an instance can be in: a button is live exactly where
/// `engine::rule` allows its command, so the window never offers what the
/// engine would refuse, nor hides what it would do.
#[test]
fn issue_16_the_instance_buttons_are_live_exactly_where_the_engines_table_allows_their_command() {
    use flowdesk::engine::{CommandKind, Rule, rule};

    let fx = fixture();
    deploy(&fx, "callback.process.json");
    deploy_json(&fx, FAILING);
    let active = fx.engine.start("admin", "callback", "S-ACTIVE", &[]).unwrap().instance_id;
    let stopped = fx.engine.start("admin", "callback", "S-STOPPED", &[]).unwrap().instance_id;
    fx.engine.stop("admin", stopped).unwrap();
    let completed = fx.engine.start("admin", "callback", "S-COMPLETED", &[]).unwrap().instance_id;
    let serial = fx.detail("admin", completed).pending_items[0].serial;
    fx.engine.finish("admin", serial, &set(&[("name", "yes")])).unwrap();
    let error = fx.engine.start("admin", "failing", "S-ERROR", &[]).unwrap().instance_id;

    let mut gui = Gui::monitor(fx, "ada");
    let cases = [
        ("S-ACTIVE", active, InstanceStatus::Active),
        ("S-STOPPED", stopped, InstanceStatus::Stopped),
        ("S-COMPLETED", completed, InstanceStatus::Completed),
        ("S-ERROR", error, InstanceStatus::Error),
    ];
    let mut seen_live = std::collections::BTreeSet::new();
    let mut seen_dead = std::collections::BTreeSet::new();
    for (folio, id, status) in cases {
        gui.open_instance(folio, id);
        assert_eq!(gui.detail_status(), status, "{folio}");
        for (button, command) in
            [("Retry", CommandKind::Retry), ("Stop", CommandKind::Stop), ("Resume", CommandKind::Resume)]
        {
            let allowed = rule(status, command) == Rule::Allowed;
            assert_eq!(gui.enabled(button), allowed, "{button} on a {status:?} instance");
            if allowed { &mut seen_live } else { &mut seen_dead }.insert(button);
        }
        let go_to = gui
            .harness
            .query_by(|node| {
                node.role() == Role::ComboBox
                    && [node.label(), node.value()].iter().any(|text| text.as_deref() == Some("Go to…"))
            })
            .unwrap_or_else(|| panic!("a Go to… box on the {status:?} instance: {:#?}", gui.all_texts()));
        let go_to_allowed = rule(status, CommandKind::GoTo) == Rule::Allowed;
        assert_eq!(!go_to.accesskit_node().is_disabled(), go_to_allowed, "Go to… on a {status:?} instance");
        let data_allowed = rule(status, CommandKind::SetData) == Rule::Allowed;
        let fields: Vec<String> =
            gui.app().monitor.detail().expect("an instance is open").fields.iter().map(|f| f.0.clone()).collect();
        assert!(!fields.is_empty(), "the {status:?} instance has data to edit");
        // A field is a text box, or a check box for a boolean, labelled with its name.
        let editable: Vec<bool> = fields
            .iter()
            .map(|name| {
                let input = gui
                    .harness
                    .query_by(|node| {
                        matches!(node.role(), Role::TextInput | Role::CheckBox)
                            && node.label().as_deref() == Some(name.as_str())
                    })
                    .unwrap_or_else(|| panic!("an input for `{name}`"));
                !input.accesskit_node().is_disabled()
            })
            .collect();
        assert!(
            editable.iter().all(|e| *e == data_allowed),
            "the data of a {status:?} instance is editable: {editable:?}"
        );
    }
    // Each button was seen both live and not, so the loop above tells the
    // table's cells apart rather than agreeing with a window that shows all
    // or nothing.
    assert_eq!(seen_live, seen_dead, "every button was both live and dead somewhere");
}

// ----- issue 17: deadlines seen in the monitor -------------------------------------

/// A wait with two deadlines: `Give up` at the date in `reply_by` (it
/// finishes the item, and the instance cools off for two hours), and
/// `Escalate` a day after the wait began.
const DEADLINES: &str = r#"{
  "name": "deadline",
  "fields": [
    { "name": "reply_by", "type": "datetime" },
    { "name": "outcome", "type": "string" }
  ],
  "activities": [
    { "id": "call", "name": "Call external system", "start": true, "position": { "x": 40, "y": 40 },
      "events": [ { "kind": "server_event", "name": "Send", "synchronous": false, "script": "" } ],
      "escalations": [
        { "name": "Give up", "at_field": "reply_by", "action": { "finish": { "set": { "outcome": "timed out" } } } },
        { "name": "Escalate", "after": "1d", "action": "fail" } ] },
    { "id": "cool", "name": "Cool off", "position": { "x": 420, "y": 40 },
      "events": [ { "kind": "timer", "name": "Wait 2 hours", "after": "2h" } ] }
  ],
  "lines": [ { "from": "call", "to": "cool" } ]
}"#;

/// `reply_by` `minutes` from the fixture's start (`T0`, 09:00 UTC).
fn reply_by(minutes: i64) -> Vec<(String, flowdesk::engine::FieldInput)> {
    let at = chrono::DateTime::from_timestamp_millis(support::T0 + minutes * MINUTE).unwrap();
    set(&[("reply_by", &at.to_rfc3339())])
}

/// At 09:00 on the fixture's clock: `PO-soon` (1) due in two hours,
/// `PO-late` (2) five minutes overdue and held (stopped, so that the
/// window's ticker leaves it), and `PO-none` (3), a callback with nothing due.
fn deadline_fixture() -> Fixture {
    let fx = Fixture::new();
    deploy_json(&fx, DEADLINES);
    deploy(&fx, "callback.process.json");
    fx.engine.start("admin", "deadline", "PO-soon", &reply_by(120)).unwrap();
    fx.engine.start("admin", "deadline", "PO-late", &reply_by(-5)).unwrap();
    fx.engine.stop("admin", 2).unwrap();
    fx.engine.start("admin", "callback", "PO-none", &[]).unwrap();
    fx
}

impl Gui {
    /// The window on the fixture's clock: its ticker fires and its lists
    /// tell due times by it, so the test moves time instead of waiting.
    fn on_fixture_clock(fx: Fixture, view: AppView, size: [f32; 2]) -> Gui {
        let options = GuiOptions { db_path: fx.db_path(), user: "ada".to_owned(), file: None, view };
        let clock = fx.clock.clone();
        let app = FlowdeskApp::on_clock(options, Settings::default(), Box::new(ScriptedDialogs::default()), clock);
        let harness = Harness::builder().with_size(size).build_ui_state(|ui, app: &mut FlowdeskApp| app.ui(ui), app);
        let mut gui = Gui { fx, harness, locked: false };
        gui.run_until("the first rows", |app| app.monitor.count().is_some() && !app.monitor.rows().is_empty());
        gui
    }

    /// A label of the flow view (an activity, an event, a timer's line).
    fn flow_label(&self, start: &str) -> String {
        let found: Vec<String> = self.all_texts().into_iter().filter(|t| t.starts_with(start)).collect();
        assert_eq!(found.len(), 1, "one label starts `{start}`: {:#?}", self.all_texts());
        found[0].clone()
    }
}

/// Issue 17: the instance list says when each instance's next deadline
/// falls due, "in 2 h" or "overdue 5 min", nothing when none is armed; the
/// Due column sorts soonest first, then the other way.
#[test]
fn issue_17_the_due_column_says_when_each_instance_falls_due_and_sorts_by_it() {
    let mut gui = Gui::on_fixture_clock(deadline_fixture(), AppView::Monitor, [1280.0, 800.0]);
    gui.settle();
    // Beside the status, before the originator.
    assert_eq!(gui.row("PO-soon")[..6], ["1", "PO-soon", "deadline v1", "Active", "in 2 h", "admin"]);
    assert_eq!(gui.row("PO-late")[..6], ["2", "PO-late", "deadline v1", "Stopped", "overdue 5 min", "admin"]);
    assert_eq!(gui.row("PO-none")[..5], ["3", "PO-none", "callback v1", "Active", "admin"], "nothing is due");
    gui.assert_rows_in_order(&["PO-none", "PO-late", "PO-soon"]);

    gui.click("Due");
    gui.run_until("the Due order", |app| app.monitor.rows_current() && app.monitor.rows()[0].id == 2);
    gui.settle();
    gui.assert_rows_in_order(&["PO-late", "PO-soon", "PO-none"]);
    gui.click("Due (asc)");
    gui.run_until("the latest first", |app| app.monitor.rows_current() && app.monitor.rows()[0].id == 1);
    gui.settle();
    assert!(gui.shown("Due (desc)"));
    gui.assert_rows_in_order(&["PO-soon", "PO-late", "PO-none"]);
}

/// Issue 17: the Overdue filter keeps the instances, and in Server items
/// the items, whose deadline has passed: here the stopped instance's, held
/// five minutes past its date.
#[test]
fn issue_17_the_overdue_filters_keep_what_has_fallen_due() {
    let mut gui = Gui::on_fixture_clock(deadline_fixture(), AppView::Monitor, [1280.0, 800.0]);
    gui.settle();
    gui.click("Overdue");
    gui.run_until("the overdue", |app| app.monitor.rows_current() && app.monitor.count_current());
    gui.settle();
    assert_eq!(gui.row_ids(), [2]);
    assert!(gui.shown("1 instance(s)"), "{:#?}", gui.all_texts());
    assert!(gui.row("PO-late").contains(&"overdue 5 min".to_owned()));

    gui.click("Server items");
    gui.run_until("the pending items", |app| app.monitor.items().len() == 3);
    gui.settle();
    gui.click("Overdue");
    gui.run_until("the overdue item", |app| app.monitor.items().len() == 1);
    gui.settle();
    assert_eq!(
        gui.row("2_1")[1..],
        ["2", "PO-late", "deadline", "Call external system", "Send", "0s", "overdue 5 min", "Stopped"]
    );
    assert!(gui.shown("1 item(s)"));
    // Opened for a finish, it says when its deadline fell due.
    gui.click("Open 2_1");
    gui.run_until_finish_is_enabled();
    assert!(
        gui.panel_texts().contains(&"overdue 5 min (2026-11-25 08:55:00 UTC)".to_owned()),
        "{:#?}",
        gui.panel_texts()
    );
}

/// Issue 17: Server items say when each pending item's deadline falls due;
/// the Due header sorts soonest first (those with nothing due after them,
/// oldest first), again latest first; Age sorts by age again.
#[test]
fn issue_17_server_items_say_when_each_falls_due_and_sort_by_it() {
    let fx = deadline_fixture();
    // A second wait with nothing due, younger than the others.
    fx.clock.advance(MINUTE);
    fx.engine.start("admin", "callback", "PO-young", &[]).unwrap();
    let mut gui = Gui::on_fixture_clock(fx, AppView::Items, [1280.0, 800.0]);
    gui.run_until("the pending items", |app| app.monitor.items().len() == 4);
    gui.settle();
    assert_eq!(gui.row("1_1")[6..], ["1m", "in 2 h", "Pending"], "two hours from 09:00, seen at 09:01");
    assert_eq!(gui.row("3_2")[6..], ["1m", "Pending"], "nothing due");
    gui.assert_rows_in_order(&["1_1", "2_1", "3_2", "4_2"]);

    gui.click("Due");
    gui.run_until("the due order", |app| app.monitor.items().first().is_some_and(|i| i.serial.to_string() == "2_1"));
    gui.settle();
    assert!(gui.shown("Soonest due first"), "{:#?}", gui.all_texts());
    gui.assert_rows_in_order(&["2_1", "1_1", "3_2", "4_2"]);
    gui.click("Due (asc)");
    gui.run_until("latest first", |app| app.monitor.items().first().is_some_and(|i| i.serial.to_string() == "1_1"));
    gui.settle();
    assert!(gui.shown("Latest due first"));
    gui.assert_rows_in_order(&["1_1", "2_1", "4_2", "3_2"]);
    gui.click("Age");
    gui.run_until("oldest first", |app| app.monitor.items().first().is_some_and(|i| i.serial.to_string() == "1_1"));
    gui.settle();
    assert!(gui.shown("Age (asc)") && gui.shown("Oldest first"));
    gui.assert_rows_in_order(&["1_1", "2_1", "3_2", "4_2"]);
}

/// Issue 17, looked at in the window at 1024×640: with the Due column,
/// every column of the instance list and of Server items stays in sight
/// beside the side panel.
#[test]
fn issue_17_at_1024_by_640_every_column_of_both_lists_stays_in_sight() {
    // How wide the due time is where nothing narrows it.
    let mut wide = Gui::on_fixture_clock(deadline_fixture(), AppView::Monitor, [1600.0, 800.0]);
    wide.settle();
    let whole = |gui: &Gui| gui.harness.get_by(|node| node.value().as_deref() == Some("overdue 5 min")).rect();
    let full_width = whole(&wide).width();
    let mut gui = Gui::on_fixture_clock(deadline_fixture(), AppView::Monitor, [1024.0, 640.0]);
    gui.settle();
    let headers = |gui: &Gui, titles: &[&str]| {
        let panel = gui.right_panel_left();
        assert!(panel < 1024.0, "the side panel is in sight");
        for title in titles {
            let rect = gui.harness.get_by_role_and_label(Role::Button, title).rect();
            assert!(rect.min.x >= 0.0 && rect.max.x <= panel, "{title} at {rect:?}, the panel at {panel}");
        }
    };
    headers(&gui, &["Id (desc)", "Folio", "Process", "Status", "Due", "Originator", "Started", "Last change"]);
    let due = whole(&gui);
    assert!(due.max.x <= gui.right_panel_left(), "the due time is in sight: {due:?}");
    assert!(due.width() >= full_width - 0.5, "the due time is not cut short: {due:?}, whole {full_width}");

    gui.click("Server items");
    gui.run_until("the pending items", |app| app.monitor.items().len() == 3);
    gui.settle();
    headers(&gui, &["Age (asc)", "Due"]);
    for text in ["Serial", "Folio", "Status"] {
        let panel = gui.right_panel_left();
        let shown = gui.harness.get_all_by(|node| node.value().as_deref() == Some(text)).map(|node| node.rect());
        assert!(shown.into_iter().any(|rect| rect.max.x <= panel), "{text} is in sight, left of {panel}");
    }
    let due = whole(&gui);
    assert!(due.max.x <= gui.right_panel_left(), "the due time is in sight: {due:?}");
    assert!(due.width() >= full_width - 0.5, "the due time is not cut short: {due:?}, whole {full_width}");
}

/// Issue 17: View Flow marks the activity with escalations with a clock and
/// says when each fires for this instance; once the window's ticker has
/// fired one, that it fired and what it did, and the timer event the
/// instance went on to says when it completes. The trail records the
/// firing with its rule, and the status bar when the ticker last fired.
#[test]
fn issue_17_the_flow_says_when_each_escalation_fires_and_what_it_did() {
    let mut gui = Gui::on_fixture_clock(deadline_fixture(), AppView::Monitor, [1280.0, 800.0]);
    gui.settle();
    assert_eq!(gui.app().timer_ticking().map(|t| (t.running, t.fired)), Some((true, None)));
    assert!(gui.shown("Timers ticking · none fired yet"), "{:#?}", gui.all_texts());
    gui.open_instance("PO-soon", 1);
    assert_eq!(
        gui.flow_label("Activity Call external system"),
        "Activity Call external system: active, with escalations"
    );
    assert_eq!(gui.flow_label("Activity Cool off"), "Activity Cool off: not reached");
    assert_eq!(
        gui.flow_label("Escalation Give up"),
        "Escalation Give up · fires in 2 h; due 2026-11-25 11:00:00 UTC (at reply_by)"
    );
    assert_eq!(
        gui.flow_label("Escalation Escalate"),
        "Escalation Escalate · fires in 24 h; due 2026-11-26 09:00:00 UTC (after 1d)"
    );

    gui.fx.clock.advance(2 * 60 * MINUTE);
    gui.run_until("the ticker to fire", |app| app.timer_ticking().is_some_and(|t| t.fired.is_some()));
    gui.run_until("the instance to cool off", |app| {
        app.monitor.detail().is_some_and(|d| d.activities.iter().any(|a| a.activity == "Cool off"))
    });
    gui.settle();
    assert!(gui.shown("Timers ticking · last fired 11:00:00 UTC (1)"), "{:#?}", gui.all_texts());
    assert_eq!(
        gui.flow_label("Escalation Give up"),
        "Escalation Give up · fired: finished the item; due 2026-11-25 11:00:00 UTC (at reply_by)"
    );
    assert_eq!(
        gui.flow_label("Escalation Escalate"),
        "Escalation Escalate · not needed; its item closed before 2026-11-26 09:00:00 UTC",
        "disarmed with its item"
    );
    assert_eq!(
        gui.flow_label("Timer Wait 2 hours"),
        "Timer Wait 2 hours · completes in 2 h; due 2026-11-25 13:00:00 UTC"
    );
    assert_eq!(gui.flow_label("Event Wait 2 hours"), "Event Wait 2 hours: waiting for its timer on 1_2");
    assert!(gui.shown("Waiting for its timer on 1_2"));
    // Instances: the next due time is the timer event's.
    assert!(gui.row("PO-soon").contains(&"in 2 h".to_owned()), "{:?}", gui.row("PO-soon"));

    gui.click("Audit trail");
    let fired = gui.trail_entry("Escalation fired");
    assert_eq!(
        fired[1..],
        [
            "deadline",
            "Escalation fired",
            "`Give up` on 1_1, due 2026-11-25 11:00:00 UTC: finished the item; set outcome = \"timed out\""
        ]
    );
}

/// Issue 17: a deadline held by a stopped instance says it is overdue and
/// held; one whose date field was empty when the wait began says it was not
/// armed, and the trail's warning says why.
#[test]
fn issue_17_the_flow_says_a_deadline_is_held_or_was_not_armed() {
    let fx = deadline_fixture();
    let id = fx.engine.start("admin", "deadline", "PO-undated", &[]).unwrap().instance_id;
    let mut gui = Gui::on_fixture_clock(fx, AppView::Monitor, [1280.0, 800.0]);
    gui.settle();
    gui.open_instance("PO-late", 2);
    assert_eq!(
        gui.flow_label("Escalation Give up"),
        "Escalation Give up · overdue 5 min; due 2026-11-25 08:55:00 UTC (at reply_by), held while the instance is stopped"
    );

    gui.open_instance("PO-undated", id);
    assert_eq!(
        gui.flow_label("Escalation Give up"),
        "Escalation Give up · not armed; at reply_by could not be worked out when the wait began"
    );
    assert!(gui.flow_label("Escalation Escalate").starts_with("Escalation Escalate · fires in 24 h;"));
    gui.click("Audit trail");
    let entry = gui.trail_entry("Escalation not armed");
    assert_eq!(entry[1..3], ["admin".to_owned(), "Escalation not armed".to_owned()]);
}

/// Issue 19: the parent's flow shows its child's id and status on the
/// sub-process event, one click opens the child, and the child's panel
/// says which instance and event started it, with a link back.
#[test]
fn issue_19_the_flow_links_a_parent_to_its_child_and_back() {
    let fx = fixture();
    deploy(&fx, "payment.process.json");
    deploy(&fx, "audit-log.process.json");
    deploy(&fx, "order.process.json");
    let order = fx.engine.start("admin", "order", "ORDER-1", &[]).unwrap().instance_id;
    let payment = order + 2;
    let mut gui = Gui::monitor(fx, "ada");
    assert!(gui.shown("Parent"), "the list has a Parent column where a row has a parent");
    // The children are drawn under their parent, indented, oldest first,
    // though the list is newest first; unticked, the list's order again.
    let nested = |gui: &Gui| -> Vec<String> {
        gui.harness
            .query_all_by(|node| node.role() == Role::Label && node.value().is_some_and(|v| v.starts_with('\u{21b3}')))
            .filter_map(|node| node.value())
            .collect()
    };
    assert_eq!(nested(&gui), [format!("\u{21b3} {}", order + 1), format!("\u{21b3} {payment}")]);
    gui.click("Children under parents");
    gui.run_until("the list's order", |app| app.monitor.rows().first().is_some_and(|row| row.id == payment));
    gui.settle();
    assert!(nested(&gui).is_empty(), "no indent in the list's order");
    gui.click("Children under parents");
    gui.run_until("nested again", |app| app.monitor.rows().first().is_some_and(|row| row.id == order));
    gui.settle();
    // The audit-log child has its parent's folio: the order's row is the
    // first of the two (its children under it).
    let rows: Vec<_> = gui
        .harness
        .query_all_by(|node| node.role() == Role::Label && node.value().as_deref() == Some("ORDER-1"))
        .collect();
    assert_eq!(rows.len(), 2);
    rows[0].click();
    gui.run_until("the order", |app| app.monitor.detail().is_some_and(|d| d.summary.id == order));
    gui.settle();

    gui.harness.get_by_label(&format!("Child instance {payment} · Active")).click();
    gui.run_until("the child", |app| app.monitor.detail().is_some_and(|d| d.summary.id == payment));
    gui.settle();
    assert!(gui.shown(&format!("Instance {payment}")));
    assert!(gui.shown("Started by"));
    assert!(gui.shown("(order), event `Pay` of `Take payment`, which waits for it"));
    // Only the instance shown is highlighted (and picked for a bulk action):
    // the order's row, clicked before, no longer is.
    let picked = &gui.app().monitor.bulk.instances;
    assert!(picked.contains(&payment) && !picked.contains(&order), "{picked:?}");

    gui.harness.get_by_label(&format!("instance {order}")).click();
    gui.run_until("the parent again", |app| app.monitor.detail().is_some_and(|d| d.summary.id == order));
    gui.settle();
    assert!(gui.shown(&format!("instance {payment} (payment, Active)")), "the parent lists its children");
    let picked = &gui.app().monitor.bulk.instances;
    assert!(picked.contains(&order) && !picked.contains(&payment), "{picked:?}");
}

// ----- bulk actions (issue 18) -------------------------------------------------

/// `n` instances of FAILING in error, folios F-0, F-1…; the first `ready`
/// of them have their field set, so that a retry completes them.
fn failing_instances(fx: &Fixture, n: usize, ready: usize) -> Vec<i64> {
    deploy_json(fx, FAILING);
    (0..n)
        .map(|i| {
            let id = fx.engine.start("admin", "failing", &format!("F-{i}"), &[]).unwrap().instance_id;
            if i < ready {
                fx.engine.set_data("admin", id, &set(&[("ready", "true")])).unwrap();
            }
            id
        })
        .collect()
}

impl Gui {
    /// Clicks the row showing `folio` with modifiers held.
    fn click_row(&mut self, folio: &str, modifiers: Modifiers) {
        self.harness
            .get_by(|node| node.role() == Role::Label && node.value().as_deref() == Some(folio))
            .click_modifiers(modifiers);
        self.settle();
    }

    /// Confirms a bulk action after checking its question.
    fn confirm_bulk(&mut self, question: &str) {
        assert!(self.shown("Please confirm"), "a confirmation is asked");
        assert!(self.shown(question), "the question is `{question}`; shown: {:#?}", self.all_texts());
        self.click("Confirm");
    }

    /// Waits for the bulk action's report and returns its summary.
    fn bulk_report(&mut self) -> String {
        self.run_until("the bulk action's report", |app| app.monitor.bulk.report().is_some());
        let (_, summary) = self.app().monitor.bulk.report().unwrap();
        assert!(self.shown(&summary), "the report shows `{summary}`: {:#?}", self.all_texts());
        summary
    }
}

#[test]
fn select_three_instances_and_retry_them() {
    let fx = fixture();
    let ids = failing_instances(&fx, 4, 3);
    let mut gui = Gui::monitor(fx, "ada");
    gui.click_row("F-0", Modifiers::NONE);
    gui.click_row("F-2", Modifiers::COMMAND);
    gui.click_row("F-1", Modifiers::COMMAND);
    assert!(gui.shown("3 selected"), "{:#?}", gui.all_texts());
    // A fourth, then taken out again.
    gui.click_row("F-3", Modifiers::COMMAND);
    assert!(gui.shown("4 selected"));
    gui.click_row("F-3", Modifiers::COMMAND);
    assert!(gui.shown("3 selected"));

    gui.click("Retry selected");
    let before = gui.snapshot(&ids);
    gui.click("Cancel");
    assert_eq!(gui.snapshot(&ids), before, "cancel retries nothing");
    gui.click("Retry selected");
    gui.confirm_bulk("Retry 3 instances as ada?");
    assert_eq!(gui.bulk_report(), "3 done, 0 refused");
    for id in &ids[..3] {
        assert_eq!(gui.status_of(*id), InstanceStatus::Completed);
        assert!(gui.fx.trail(*id).contains(&"ada: Retried `Work` Check; part of a bulk retry of 3".to_owned()));
    }
    assert_eq!(gui.status_of(ids[3]), InstanceStatus::Error, "the one not selected is left alone");
    assert!(gui.app().monitor.bulk.instances.is_empty(), "what was acted on is no longer selected");
    gui.click("Close report");
    assert!(gui.app().monitor.bulk.report().is_none());

    // Shift+click selects the rows between; a partial refusal is listed.
    gui.click_row("F-0", Modifiers::NONE);
    gui.click_row("F-3", Modifiers::SHIFT);
    assert!(gui.shown("4 selected"));
    gui.click("Resume selected");
    gui.confirm_bulk("Resume 4 instances as ada?");
    assert_eq!(gui.bulk_report(), "0 done, 4 refused");
    assert!(
        gui.shown(&format!("instance {0}: cannot resume instance {0}: it is Error", ids[3])),
        "{:#?}",
        gui.all_texts()
    );
}

#[test]
fn select_all_matching_a_filter_then_stop_them() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let waiting: Vec<i64> =
        (0..5).map(|i| fx.engine.start("admin", "callback", &format!("PO-{i}"), &[]).unwrap().instance_id).collect();
    let failing = failing_instances(&fx, 2, 0);
    let mut gui = Gui::monitor(fx, "ada");
    gui.choose("Status", "Active");
    gui.run_until("the filtered count", |app| app.monitor.count_current() && app.monitor.count() == Some(5));
    gui.click("Select all 5 matching");
    assert!(gui.shown("All 5 matching selected"), "{:#?}", gui.all_texts());
    gui.click("Clear selection");
    assert!(!gui.shown("All 5 matching selected"));
    // Ctrl+A selects them all too, the page loaded or not.
    gui.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
    gui.settle();
    assert!(gui.shown("All 5 matching selected"), "{:#?}", gui.all_texts());
    gui.click("Stop selected");
    gui.confirm_bulk("Stop all 5 instances matching the filter as ada?");
    assert_eq!(gui.bulk_report(), "5 done, 0 refused");
    for id in &waiting {
        assert_eq!(gui.status_of(*id), InstanceStatus::Stopped);
    }
    for id in &failing {
        assert_eq!(gui.status_of(*id), InstanceStatus::Error, "what the filter left out is left alone");
    }
}

#[test]
fn a_bulk_action_shows_its_progress_and_can_be_cancelled() {
    let fx = fixture();
    let ids = failing_instances(&fx, 40, 40);
    let mut gui = Gui::monitor(fx, "ada");
    gui.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
    gui.settle();
    gui.click("Retry selected");
    assert!(gui.shown("Retry all 40 instances matching the filter as ada?"), "{:#?}", gui.all_texts());
    // Another program holds the write lock: the action waits, the window does not.
    let lock = gui.hold_lock();
    gui.click("Confirm");
    gui.run_until("the progress bar", |app| app.monitor.bulk.progress() == Some((0, 40)));
    assert!(gui.shown("Retrying all 40 instances matching the filter…"), "{:#?}", gui.all_texts());
    assert!(gui.shown("0 of 40"), "{:#?}", gui.all_texts());
    gui.click("Cancel bulk action");
    assert!(gui.shown("Retrying all 40 instances matching the filter… (cancelling)"));
    gui.release(lock);
    let summary = gui.bulk_report();
    let report_done = ids.iter().filter(|id| gui.status_of(**id) == InstanceStatus::Completed).count();
    assert!(report_done < 40, "{summary}");
    assert_eq!(summary, format!("{report_done} done, 0 refused, cancelled before {}", 40 - report_done));
}

// ----- issue 18, "Find anything": field filters, saved filters, CSV ----------

/// Orders with an amount, for the field filter.
const ORDERS: &str = r#"{
  "name": "orders",
  "fields": [{ "name": "amount", "type": "integer" }],
  "activities": [
    { "id": "wait", "name": "Wait", "start": true, "events": [
      { "kind": "server_event", "name": "Ask", "synchronous": false, "script": "" } ] } ]
}"#;

/// Five orders of growing amounts (50, 100, ... 250); one folio a formula,
/// one with a comma, quotes and a line break.
fn five_orders() -> Fixture {
    let fx = fixture();
    deploy_json(&fx, ORDERS);
    let folios = ["=SUM(A1:A2)", "O-2", "Big, \"quoted\"\nline", "O-4", "O-5"];
    for (n, folio) in folios.into_iter().enumerate() {
        let amount = ((n + 1) * 50).to_string();
        fx.engine.start("admin", "orders", folio, &set(&[("amount", &amount)])).unwrap();
    }
    fx
}

/// The monitor with these settings and file dialogs.
fn monitor_with(fx: Fixture, settings: Settings, dialogs: ScriptedDialogs) -> Gui {
    let options = GuiOptions { db_path: fx.db_path(), user: "ada".to_owned(), file: None, view: AppView::Monitor };
    let app = FlowdeskApp::new(options, settings, Box::new(dialogs));
    let harness =
        Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut FlowdeskApp| app.ui(ui), app);
    let mut gui = Gui { fx, harness, locked: false };
    gui.run_until("the first rows", |app| app.monitor.count().is_some() && !app.monitor.rows().is_empty());
    gui
}

#[test]
fn a_field_filter_narrows_the_list_and_a_malformed_one_says_why() {
    let mut gui = Gui::monitor(five_orders(), "ada");
    gui.run_until("all five", |app| app.monitor.count() == Some(5));
    gui.choose("Process", "orders");
    gui.click("More filters");
    gui.replace_text("Field", "amount > 150");
    gui.run_until("the big orders", |app| app.monitor.count() == Some(2));
    assert_eq!(gui.row_ids(), [5, 4]);
    assert!(gui.shown("2 instance(s)"));
    // Half typed: the bar says what is wrong, the list stays as it was.
    gui.replace_text("Field", "amount >");
    assert!(gui.shown("Field: field filter `amount >` has no value after its operator"), "{:?}", gui.all_texts());
    assert_eq!(gui.row_ids(), [5, 4]);
    // Read for the field's type by the engine: its refusal is the list's error.
    gui.replace_text("Field", "amount > lots");
    gui.run_until("the refusal", |app| app.monitor.filter.fields.first().is_some_and(|f| f.value == "lots"));
    gui.run_until_frames("the error shown", |_| true, 20);
    let texts = gui.all_texts();
    assert!(texts.iter().any(|t| t.contains("invalid filter") && t.contains("`amount`")), "{texts:?}");
    gui.replace_text("Field", "amount <= 100");
    gui.run_until("the small orders", |app| app.monitor.count() == Some(2) && app.monitor.rows().len() == 2);
    assert_eq!(gui.row_ids(), [2, 1]);
    // Versions and dates on the same row.
    gui.replace_text("Version", "2");
    gui.run_until("no version 2", |app| app.monitor.count() == Some(0));
    gui.replace_text("Version", "");
    gui.replace_text("Started from", "2999-01-01");
    gui.run_until("nothing started yet", |app| app.monitor.count() == Some(0));
    gui.replace_text("Started from", "tomorrow");
    assert!(gui.all_texts().iter().any(|t| t.starts_with("Started from: `tomorrow` is not a date")));
}

/// Issue 18: where a field condition is typed, the monitor says when it
/// reads every instance of the process (the field is not searchable), and
/// says nothing once the field is searchable.
#[test]
fn a_condition_on_a_field_that_is_not_searchable_says_it_reads_every_instance() {
    let mut gui = Gui::monitor(five_orders(), "ada");
    gui.choose("Process", "orders");
    gui.click("More filters");
    gui.replace_text("Field", "amount > 150");
    gui.run_until("the big orders", |app| app.monitor.count() == Some(2));
    let note = "amount is not searchable: this reads every instance of the process";
    assert!(gui.shown(note), "{:?}", gui.all_texts());

    deploy_json(&gui.fx, &ORDERS.replace(r#""type": "integer""#, r#""type": "integer", "searchable": true"#));
    gui.replace_text("Field", "amount >= 150");
    gui.run_until("the bigger list", |app| app.monitor.count() == Some(3));
    assert!(!gui.shown(note), "searchable now: {:?}", gui.all_texts());
}

#[test]
fn select_all_matching_a_field_filter_then_stop_them() {
    let mut gui = Gui::monitor(five_orders(), "ada");
    gui.run_until("all five", |app| app.monitor.count() == Some(5));
    gui.choose("Process", "orders");
    gui.click("More filters");
    gui.replace_text("Field", "amount > 150");
    gui.run_until("the big orders", |app| app.monitor.count_current() && app.monitor.count() == Some(2));
    gui.click("Select all 2 matching");
    gui.click("Stop selected");
    gui.confirm_bulk("Stop all 2 instances matching the filter as ada?");
    // The two the list counts, not an internal error about the field.
    assert_eq!(gui.bulk_report(), "2 done, 0 refused");
    for id in [4, 5] {
        assert_eq!(gui.status_of(id), InstanceStatus::Stopped);
    }
    for id in [1, 2, 3] {
        assert_ne!(gui.status_of(id), InstanceStatus::Stopped, "what the filter left out is left alone");
    }
}

#[test]
fn select_all_matching_a_filter_the_list_refuses_stops_nothing() {
    let mut gui = Gui::monitor(five_orders(), "ada");
    gui.run_until("all five", |app| app.monitor.count() == Some(5));
    // A version with every process: the list refuses it, and so does the
    // action, saying why (it answered "0 done, 0 refused" and no more).
    gui.click("More filters");
    gui.replace_text("Version", "2");
    gui.run_until("the list's refusal", |app| app.monitor.filter.version == Some(2));
    gui.run_until_frames("the refusal shown", |_| true, 20);
    assert!(gui.all_texts().iter().any(|t| t.contains("version filter needs a process")), "{:#?}", gui.all_texts());
    // The count that failed says so (it said "counting…" for ever).
    assert!(gui.shown("not counted") && !gui.shown("counting…"), "{:#?}", gui.all_texts());
    gui.click("Select all matching");
    gui.click("Stop selected");
    gui.confirm_bulk("Stop all instances matching the filter as ada?");
    gui.run_until("the bulk action's report", |app| app.monitor.bulk.report().is_some());
    let (_, summary) = gui.app().monitor.bulk.report().unwrap();
    assert!(summary.contains("version filter needs a process"), "{summary}");
    for id in 1..=5 {
        assert_ne!(gui.status_of(id), InstanceStatus::Stopped, "instance {id} was stopped");
    }
}

#[test]
fn a_saved_filter_is_recalled_after_a_restart_and_can_be_deleted() {
    let mut gui = monitor_with(five_orders(), Settings::default(), ScriptedDialogs::default());
    gui.choose("Process", "orders");
    gui.click("More filters");
    gui.replace_text("Field", "amount >= 200");
    gui.run_until("the big orders", |app| app.monitor.count() == Some(2));
    gui.replace_text("Name", "big orders");
    gui.click("Save filter");
    gui.replace_text("Field", "");
    gui.run_until("all orders", |app| app.monitor.count() == Some(5));

    gui.choose("Saved filters", "big orders");
    gui.run_until("the big orders again", |app| app.monitor.count() == Some(2));
    assert_eq!(gui.field_value("Field"), "amount >= 200");
    assert_eq!(gui.row_ids(), [5, 4]);

    // Another run of the window, with the settings this one kept.
    let settings = gui.harness.state_mut().kept_settings();
    assert_eq!(settings.saved_filters["ada"].len(), 1);
    let fx = gui.fx;
    let mut gui = monitor_with(fx, settings.clone(), ScriptedDialogs::default());
    gui.run_until("all five", |app| app.monitor.count() == Some(5));
    assert!(gui.harness.query_by_label("Saved filters").is_none(), "the rows start closed");
    gui.click("More filters");
    gui.choose("Saved filters", "big orders");
    gui.run_until("the big orders after a restart", |app| app.monitor.count() == Some(2));
    assert_eq!(gui.app().monitor.filter.process.as_deref(), Some("orders"));

    // Saved per user: another user of the same settings has none.
    let other = settings.saved_filters.get("bob").map_or(0, Vec::len);
    assert_eq!(other, 0);

    gui.click("Delete");
    assert!(gui.harness.state_mut().kept_settings().saved_filters["ada"].is_empty());
}

#[test]
fn export_csv_writes_every_matching_instance_through_the_file_dialog() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("orders.csv");
    let dialogs = ScriptedDialogs { export_csv: std::cell::RefCell::new(vec![path.clone()]), ..Default::default() };
    let mut gui = monitor_with(five_orders(), Settings::default(), dialogs);
    gui.choose("Process", "orders");
    gui.click("More filters");
    gui.replace_text("Field", "amount != 200");
    gui.run_until("four orders", |app| app.monitor.count() == Some(4));
    gui.click("Export CSV…");
    gui.run_until("the export", |app| app.monitor.find.exported().is_some());
    let exported = gui.app().monitor.find.exported().cloned().unwrap();
    assert_eq!(exported, Ok((4, path.clone())));
    assert!(gui.shown(&format!("Exported 4 instance(s) to {}", path.display())));

    let mut reader = csv::Reader::from_path(&path).unwrap();
    assert_eq!(&reader.headers().unwrap()[1], "folio");
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    let folios: Vec<&str> = rows.iter().map(|row| &row[1]).collect();
    // Newest first, as the list; a formula is shown as text (OWASP).
    assert_eq!(folios, ["O-5", "Big, \"quoted\"\nline", "O-2", "'=SUM(A1:A2)"]);
    assert!(rows.iter().all(|row| &row[2] == "orders" && &row[4] == "Active"));

    // Cancelled: nothing is written and nothing said.
    gui.click("Export CSV…");
    assert_eq!(gui.app().monitor.find.exported().cloned().unwrap(), Ok((4, path)));
}

#[test]
fn a_bulk_finish_whose_data_line_is_not_field_value_says_so_and_finishes_nothing() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let ids: Vec<i64> =
        (0..2).map(|i| fx.engine.start("admin", "callback", &format!("PO-{i}"), &[]).unwrap().instance_id).collect();
    let mut gui = Gui::open(fx, "ada", AppView::Items);
    gui.run_until("the items", |app| app.monitor.items().len() == 2);
    gui.click_row(&format!("{}_2", ids[0]), Modifiers::NONE);
    gui.click_row(&format!("{}_2", ids[1]), Modifiers::COMMAND);
    gui.click("Finish selected…");
    let fields = "Set fields (one field=value a line)";
    gui.harness.get_by_role_and_label(Role::MultilineTextInput, fields).click();
    gui.settle();
    // A colon for the equals sign: the items must not be finished without
    // the value the operator meant to set.
    gui.harness.get_by_role_and_label(Role::MultilineTextInput, fields).type_text("done: true");
    gui.settle();
    let before = gui.snapshot(&ids);
    gui.click("Confirm");
    assert!(gui.shown("line 1, `done: true`: write field=value"), "{:#?}", gui.all_texts());
    assert!(gui.shown("Finish 2 server items as ada?"), "the question stays up to be corrected");
    assert_eq!(gui.snapshot(&ids), before, "nothing was finished");
    assert!(gui.app().monitor.bulk.report().is_none());
}

#[test]
fn server_items_selected_are_finished_with_data_in_one_action() {
    let (mut gui, ids) = three_pending_items();
    gui.click_row(&format!("{}_2", ids[0]), Modifiers::NONE);
    gui.click_row(&format!("{}_2", ids[2]), Modifiers::COMMAND);
    assert!(gui.shown("2 selected"), "{:#?}", gui.all_texts());
    gui.click("Finish selected…");
    assert!(gui.shown("Finish 2 server items as ada?"), "{:#?}", gui.all_texts());
    let fields = "Set fields (one field=value a line)";
    gui.harness.get_by_role_and_label(Role::MultilineTextInput, fields).click();
    gui.settle();
    gui.harness.get_by_role_and_label(Role::MultilineTextInput, fields).type_text("name=call back value");
    gui.settle();
    let typed = gui.harness.get_by_role_and_label(Role::MultilineTextInput, fields).value().unwrap_or_default();
    assert_eq!(typed, "name=call back value");
    gui.click("Confirm");
    assert_eq!(gui.bulk_report(), "2 done, 0 refused");
    for id in [ids[0], ids[2]] {
        assert_eq!(gui.status_of(id), InstanceStatus::Completed);
        assert_eq!(gui.fx.field(id, "done"), Value::Boolean(true), "finished with the data typed");
    }
    assert_eq!(gui.status_of(ids[1]), InstanceStatus::Active);
}

/// The server items view as ada sees it, over three callback instances
/// each waiting on one item; their ids.
fn three_pending_items() -> (Gui, Vec<i64>) {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let ids: Vec<i64> =
        (0..3).map(|i| fx.engine.start("admin", "callback", &format!("PO-{i}"), &[]).unwrap().instance_id).collect();
    let mut gui = Gui::open(fx, "ada", AppView::Items);
    gui.run_until("the items", |app| app.monitor.items().len() == 3);
    (gui, ids)
}

#[test]
fn all_server_items_matching_are_finished_in_one_action() {
    let (mut gui, ids) = three_pending_items();
    gui.click("Select all 3 matching");
    assert!(gui.shown("All 3 matching selected"), "{:#?}", gui.all_texts());
    gui.click("Clear selection");
    assert!(gui.shown("Select all 3 matching"), "{:#?}", gui.all_texts());
    assert!(!gui.shown("All 3 matching selected"));
    gui.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
    gui.settle();
    assert!(gui.shown("All 3 matching selected"), "{:#?}", gui.all_texts());
    gui.click("Finish selected…");
    gui.confirm_bulk("Finish all 3 server items matching the filter as ada?");
    assert_eq!(gui.bulk_report(), "3 done, 0 refused");
    for id in ids {
        assert_eq!(gui.status_of(id), InstanceStatus::Completed);
    }
}

/// Issue 18: the server items list holds at most its limit; past it, the
/// count says how many match, and "all matching" is confirmed with that
/// count, as the instances' is.
#[test]
fn server_items_past_the_lists_limit_are_counted_and_all_matching_is_confirmed_with_the_count() {
    let fx = fixture();
    deploy(&fx, "callback.process.json");
    let ids: Vec<i64> =
        (0..5).map(|i| fx.engine.start("admin", "callback", &format!("PO-{i}"), &[]).unwrap().instance_id).collect();
    let mut gui = Gui::open(fx, "ada", AppView::Items);
    gui.run_until("the items", |app| app.monitor.items().len() == 5);
    // A list of three at most (the window's is 1,000).
    gui.harness.state_mut().monitor.items_filter.limit = 3;
    gui.harness.state_mut().monitor.refresh("ada");
    gui.run_until("the first three", |app| app.monitor.items().len() == 3);
    gui.run_until("the count", |app| app.monitor.items_count() == Some(5));
    assert!(gui.shown("3 of 5 item(s)"), "{:#?}", gui.all_texts());
    gui.click("Select all 5 matching");
    assert!(gui.shown("All 5 matching selected"), "{:#?}", gui.all_texts());
    gui.click("Finish selected…");
    gui.confirm_bulk("Finish all 5 server items matching the filter as ada?");
    assert_eq!(gui.bulk_report(), "5 done, 0 refused");
    for id in ids {
        assert_eq!(gui.status_of(id), InstanceStatus::Completed);
    }
}
