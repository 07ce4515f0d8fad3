//! The designer driven through its UI like a user: drag, click, type. No
//! display is needed: egui_kittest runs the real app's UI code headless.

use std::path::PathBuf;

use egui::accesskit::Role;
use egui::{Event, Key, Modifiers, PointerButton, Pos2, Rect, pos2, vec2};
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use flowdesk::engine::{Engine, InstanceFilter};
use flowdesk::gui::designer::Element;
use flowdesk::gui::dialogs::ScriptedDialogs;
use flowdesk::gui::{AppView, FlowdeskApp, GuiOptions, Settings};
use flowdesk::model::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, HeaderDraft, HttpRequestDraft, IpcDraft,
    MailDraft, MappingDraft, ProcessDraft, ServerEventDraft, TimerDraft,
};
use flowdesk::store::{Durability, SqliteStore};

struct Gui {
    _dir: tempfile::TempDir,
    harness: Harness<'static, FlowdeskApp>,
}

impl Gui {
    /// The app on a fresh database, first start (the callback sample).
    fn new() -> Gui {
        Gui::with(None, ScriptedDialogs::default())
    }

    fn with(file: Option<PathBuf>, dialogs: ScriptedDialogs) -> Gui {
        let dir = tempfile::tempdir().unwrap();
        let options = GuiOptions {
            db_path: dir.path().join("gui.db"),
            user: "ada".to_owned(),
            file,
            view: flowdesk::gui::AppView::Designer,
        };
        let app = FlowdeskApp::new(options, Settings::default(), Box::new(dialogs));
        let mut harness =
            Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut FlowdeskApp| app.ui(ui), app);
        harness.run_steps(4);
        Gui { _dir: dir, harness }
    }

    fn app(&self) -> &FlowdeskApp {
        self.harness.state()
    }

    /// The window's database, read through an engine of the test's own.
    fn engine(&self) -> Engine<SqliteStore> {
        Engine::new(SqliteStore::open(&self._dir.path().join("gui.db"), Durability::Full).unwrap())
    }

    /// (name, default version, versions) of every deployed process.
    fn deployed(&self) -> Vec<(String, u32, u32)> {
        let processes = self.engine().processes().unwrap();
        processes.into_iter().map(|p| (p.name, p.default_version, p.versions)).collect()
    }

    /// The version each instance runs on, oldest instance first.
    fn started_versions(&self) -> Vec<u32> {
        let filter = InstanceFilter { limit: 100, ..Default::default() };
        let mut instances = self.engine().instances("ada", &filter).unwrap();
        instances.sort_by_key(|i| i.id);
        instances.into_iter().map(|i| i.version).collect()
    }

    fn rect_of(&self, label: &str) -> Rect {
        self.harness.get_by_label(label).rect()
    }

    /// Presses at `from`, moves in steps to `to`, releases: a mouse drag.
    fn drag(&mut self, from: Pos2, to: Pos2) {
        self.harness.hover_at(from);
        self.harness.run_steps(1);
        self.harness.drag_at(from);
        self.harness.run_steps(1);
        for i in 1..=6 {
            let t = i as f32 / 6.0;
            self.harness.hover_at(from + (to - from) * t);
            self.harness.run_steps(1);
        }
        self.harness.drop_at(to);
        self.harness.run_steps(3);
    }

    /// An empty spot of the canvas, left of the sample's boxes.
    fn empty_canvas_spot(&self) -> Pos2 {
        let prepare = self.rect_of("Activity Prepare");
        pos2(prepare.center().x, prepare.bottom() + 220.0)
    }

    // ----- more of what a user does ---------------------------------------------

    /// Lets the frames after an input run out (popups open, grids size...),
    /// and the writes it sent (deploy, start) be answered: the window makes
    /// them on a worker thread, so that no frame waits for the database.
    fn settle(&mut self) {
        self.harness.run_steps(4);
        for _ in 0..500 {
            if !self.harness.state().busy() {
                break;
            }
            self.harness.run_steps(1);
            std::thread::yield_now();
        }
        assert!(!self.harness.state().busy(), "the window's writes are answered within 500 frames");
        self.harness.run_steps(2);
    }

    /// Clicks the widget with this accessible label.
    fn click(&mut self, label: &str) {
        self.harness.get_by_label(label).click();
        self.settle();
    }

    /// Clicks at a point of the screen (the canvas has no widget per line).
    fn click_at(&mut self, pos: Pos2) {
        self.harness.hover_at(pos);
        for pressed in [true, false] {
            self.harness.event(Event::PointerButton {
                pos,
                button: PointerButton::Primary,
                pressed,
                modifiers: Modifiers::NONE,
            });
        }
        self.settle();
    }

    /// Replaces the whole text of the text field that now shows `old`.
    fn replace_value(&mut self, old: &str, new: &str) {
        self.text_field_showing(old).click();
        self.settle();
        self.harness.key_press_modifiers(Modifiers::COMMAND, Key::A);
        self.text_field_showing(old).type_text(new);
        self.settle();
    }

    /// The text field whose text is `value` (not the text run inside it).
    fn text_field_showing(&self, value: &str) -> egui_kittest::Node<'_> {
        let value = value.to_owned();
        self.harness.get_by(move |node| node.role() == Role::TextInput && node.value().as_deref() == Some(&value))
    }

    /// Whether the in-window file dialog is open, and with which title.
    fn file_dialog_title(&self) -> Option<String> {
        let titles = ["Save process as", "Open process"];
        titles.iter().flat_map(|title| self.texts_containing(title)).next()
    }

    /// Clicks the button with this label (other widgets may share it).
    fn click_button(&mut self, label: &str) {
        self.harness.get_by_role_and_label(Role::Button, label).click();
        self.settle();
    }

    /// Opens a menu of the menu bar and clicks one of its items (whose
    /// accessible label includes the shortcut shown: "Undo Ctrl+Z").
    fn menu(&mut self, menu: &str, item: &str) {
        self.click(menu);
        self.click(item);
    }

    fn shortcut(&mut self, modifiers: Modifiers, key: Key) {
        self.harness.key_press_modifiers(modifiers, key);
        self.settle();
    }

    /// A drag with Shift held from before the press until after the release.
    fn shift_drag(&mut self, from: Pos2, to: Pos2) {
        let shift = Modifiers::SHIFT;
        self.harness.event(Event::ModifiersChanged(shift));
        self.harness.hover_at(from);
        self.harness.run_steps(1);
        let button =
            |pos, pressed| Event::PointerButton { pos, button: PointerButton::Primary, pressed, modifiers: shift };
        self.harness.event(button(from, true));
        self.harness.run_steps(1);
        for i in 1..=6 {
            let t = i as f32 / 6.0;
            self.harness.hover_at(from + (to - from) * t);
            self.harness.run_steps(1);
        }
        self.harness.event(button(to, false));
        self.harness.event(Event::ModifiersChanged(Modifiers::NONE));
        self.harness.remove_cursor();
        self.settle();
    }

    /// Clicks in a text field (focusing it) and types.
    fn type_into(&mut self, label: &str, text: &str) {
        self.click(label);
        assert!(self.harness.get_by_label(label).is_focused(), "{label} has the focus after a click");
        self.harness.get_by_label(label).type_text(text);
        self.settle();
    }

    /// A point on the title bar of an activity box (its body holds event rows,
    /// its right edge the connection handle).
    fn header_of(&self, activity_name: &str) -> Pos2 {
        let rect = self.rect_of(&format!("Activity {activity_name}"));
        rect.left_top() + vec2(30.0, 8.0)
    }

    /// Selects an activity by a click on its title bar. Tests that deploy do
    /// this first: with nothing selected, the properties panel shows the
    /// deployed process's rights, whose "Grant ▾" menu needs a glyph egui's
    /// default fonts lack, which kittest treats as a failure.
    fn select(&mut self, activity_name: &str) {
        let header = self.header_of(activity_name);
        self.click_at(header);
    }

    fn draft(&self) -> &ProcessDraft {
        self.app().designer.doc.draft()
    }

    fn activity(&self, id: &str) -> &ActivityDraft {
        self.draft().activity(id).unwrap_or_else(|| panic!("no activity {id}"))
    }

    fn event(&self, activity: &str, index: usize) -> &ServerEventDraft {
        let EventDraft::ServerEvent(event) = &self.activity(activity).events[index] else {
            panic!("event {index} of {activity} is not a server event")
        };
        event
    }

    fn event_names(&self, activity: &str) -> Vec<String> {
        self.activity(activity).events.iter().map(|e| e.name().to_owned()).collect()
    }

    fn selection(&self) -> &[Element] {
        &self.app().designer.selection
    }

    fn exists(&self, label: &str) -> bool {
        self.harness.query_by_label(label).is_some()
    }

    /// Every accessible text (label or, for plain labels, value) holding `part`.
    fn texts_containing(&self, part: &str) -> Vec<String> {
        self.harness
            .query_all_by_label_contains(part)
            .map(|node| {
                let node = node.accesskit_node();
                node.label().or_else(|| node.value()).unwrap_or_default()
            })
            .collect()
    }
}

fn activity_element(id: &str) -> Element {
    Element::Activity(id.to_owned())
}

#[test]
fn dragging_a_template_onto_empty_canvas_creates_an_activity_there() {
    let mut gui = Gui::new();
    let before = gui.app().designer.doc.draft().activities.len();
    let template = gui.rect_of("Template Server Event (asynchronous)").center();
    let spot = gui.empty_canvas_spot();
    gui.drag(template, spot);

    let draft = gui.app().designer.doc.draft();
    assert_eq!(draft.activities.len(), before + 1);
    let added = draft.activities.last().unwrap();
    let EventDraft::ServerEvent(event) = &added.events[0] else { panic!("not a server event") };
    assert!(!event.synchronous, "the asynchronous template presets Synchronous off");
    // It landed where it was dropped.
    let drawn = gui.rect_of(&format!("Activity {}", added.name));
    assert!(drawn.expand(30.0).contains(spot), "{drawn:?} does not hold {spot:?}");
}

#[test]
fn dragging_the_synchronous_template_onto_empty_canvas_creates_a_synchronous_event() {
    let mut gui = Gui::new();
    let before = gui.draft().activities.len();
    let template = gui.rect_of("Template Server Event").center();
    let spot = gui.empty_canvas_spot();
    gui.drag(template, spot);

    let draft = gui.draft();
    assert_eq!(draft.activities.len(), before + 1);
    let added = draft.activities.last().unwrap().clone();
    assert_eq!(added.name, "Server Event");
    assert!(!added.start, "the process already has its start");
    assert_eq!(added.events.len(), 1);
    let EventDraft::ServerEvent(event) = &added.events[0] else { panic!("not a server event") };
    assert!(event.synchronous, "the Server Event template presets Synchronous on");
    assert_eq!(gui.selection(), [activity_element(&added.id)]);
    // Drawn where it was dropped, with its event shown as not waiting.
    let drawn = gui.rect_of("Activity Server Event");
    assert!(drawn.expand(30.0).contains(spot), "{drawn:?} does not hold {spot:?}");
    let row = gui.rect_of("Event Server Event");
    assert!(drawn.contains_rect(row), "the event row is inside its box");
}

#[test]
fn dragging_templates_onto_an_activity_appends_events_to_that_activity() {
    let mut gui = Gui::new();
    let before = gui.draft().activities.len();
    let lines_before = gui.draft().lines.len();
    let approved_height = gui.rect_of("Activity Approved").height();

    let template = gui.rect_of("Template Server Event").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    assert_eq!(gui.draft().activities.len(), before, "no new activity");
    assert_eq!(gui.event_names("approved"), ["Mark done", "Server Event"]);
    assert!(gui.event("approved", 1).synchronous);
    assert_eq!(gui.event_names("rejected"), ["Mark not done"], "the other boxes are untouched");
    assert_eq!(gui.selection(), [Element::Event { activity: "approved".into(), index: 1 }]);

    let template = gui.rect_of("Template Server Event (asynchronous)").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    assert_eq!(gui.draft().activities.len(), before);
    assert_eq!(gui.draft().lines.len(), lines_before);
    assert_eq!(gui.event_names("approved"), ["Mark done", "Server Event", "Call external system"]);
    assert!(!gui.event("approved", 2).synchronous, "the asynchronous template presets Synchronous off");

    // The box grew a row per event and lists them, the new one as waiting.
    let approved = gui.rect_of("Activity Approved");
    assert!(approved.height() > approved_height + 20.0, "{approved:?} did not grow");
    let sync_row = gui.rect_of("Event Server Event");
    assert!(approved.contains_rect(sync_row));
    let waiting = gui.harness.get_all_by_label("Event Call external system (waits for a callback)");
    assert!(
        waiting.map(|n| n.rect()).any(|r| approved.contains_rect(r)),
        "the asynchronous event is listed in Approved as waiting for a callback"
    );
}

#[test]
fn synchronous_toggles_from_the_properties_panel_and_the_context_menu() {
    let mut gui = Gui::new();
    assert!(gui.event("prepare", 0).synchronous);

    // Select the event on the canvas, then untick Synchronous in the panel.
    gui.click("Event Set stage");
    assert_eq!(gui.selection(), [Element::Event { activity: "prepare".into(), index: 0 }]);
    assert!(gui.exists("Server event"), "the panel shows the event");
    gui.click("Synchronous");
    assert!(!gui.event("prepare", 0).synchronous);
    assert!(gui.exists("Event Set stage (waits for a callback)"));
    assert!(!gui.exists("Event Set stage"));
    assert!(!gui.texts_containing("Asynchronous: after its script").is_empty(), "the panel explains waiting");

    // And back on.
    gui.click("Synchronous");
    assert!(gui.event("prepare", 0).synchronous);
    assert!(gui.exists("Event Set stage"));
    assert!(!gui.exists("Event Set stage (waits for a callback)"));

    // The context menu of an event, with nothing selected.
    gui.click_at(gui.empty_canvas_spot());
    assert!(gui.selection().is_empty());
    gui.harness.get_by_label("Event Mark done").click_secondary();
    gui.settle();
    assert!(gui.exists("Delete event"), "the event's context menu is open");
    gui.click("Synchronous");
    assert!(!gui.event("approved", 0).synchronous);
    assert!(gui.exists("Event Mark done (waits for a callback)"));
    assert!(!gui.exists("Delete event"), "the menu closes after the toggle");

    gui.harness.get_by_label("Event Mark done (waits for a callback)").click_secondary();
    gui.settle();
    gui.click("Synchronous");
    assert!(gui.event("approved", 0).synchronous);
    assert!(gui.exists("Event Mark done"));
    // Each toggle is one undo step.
    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert!(!gui.event("approved", 0).synchronous);
}

#[test]
fn dragging_a_handle_onto_an_activity_draws_a_line_whose_rule_is_typed_in_the_panel() {
    let mut gui = Gui::new();
    let lines = gui.draft().lines.len();
    let handle = gui.rect_of("Connect Prepare").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(handle, target);

    let draft = gui.draft();
    assert_eq!(draft.lines.len(), lines + 1);
    let line = draft.lines.last().unwrap();
    assert_eq!((line.from.as_str(), line.to.as_str()), ("prepare", "approved"));
    assert!(line.rule.is_empty());
    assert_eq!(gui.selection(), [Element::Line(lines)], "the new line is selected");
    assert!(gui.exists("Prepare -> Approved"), "the panel shows the new line");
    assert!(gui.exists("Always true."));

    gui.type_into("Rule (empty: always true)", "done");
    assert_eq!(gui.draft().lines[lines].rule, "done");
    assert!(gui.exists("OK: a true/false rule"));
    assert!(gui.texts_containing("Error:").is_empty());

    // A rule that does not compile is reported under the field.
    gui.harness.get_by_label("Rule (empty: always true)").type_text(" ==");
    gui.settle();
    assert_eq!(gui.draft().lines[lines].rule, "done ==");
    let errors = gui.texts_containing("Error:");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(!gui.exists("OK: a true/false rule"));

    // Typing in the field was one undo step, and the line is one more.
    gui.click_at(gui.empty_canvas_spot());
    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.draft().lines[lines].rule, "");
    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.draft().lines.len(), lines);
}

#[test]
fn dropping_a_connection_on_empty_canvas_or_its_own_activity_adds_no_line() {
    let mut gui = Gui::new();
    let lines = gui.draft().lines.len();
    let handle = gui.rect_of("Connect Prepare").center();
    let spot = gui.empty_canvas_spot();
    gui.drag(handle, spot);
    assert_eq!(gui.draft().lines.len(), lines);
    let handle = gui.rect_of("Connect Prepare").center();
    let own = gui.header_of("Prepare");
    gui.drag(handle, own);
    assert_eq!(gui.draft().lines.len(), lines);
    assert!(!gui.app().designer.doc.is_dirty());
}

#[test]
fn moving_an_activity_is_one_undo_step_undone_and_redone_by_keys_and_menu() {
    let mut gui = Gui::new();
    let start = gui.activity("approved").position;
    let drawn = gui.rect_of("Activity Approved");
    let grab = gui.header_of("Approved");
    gui.drag(grab, grab + vec2(60.0, 120.0));

    let moved = gui.activity("approved").position;
    assert!(moved.y > start.y + 100.0 && moved.x > start.x + 40.0, "{start:?} -> {moved:?}");
    assert_eq!(gui.selection(), [activity_element("approved")]);
    let drawn_moved = gui.rect_of("Activity Approved");
    let shift = drawn_moved.min - drawn.min;
    assert!((shift - vec2(60.0, 120.0)).length() < 20.0, "drawn {shift:?} off the drag");
    assert!(gui.app().title().starts_with("● "), "{}", gui.app().title());

    // One Ctrl+Z takes the whole drag back, not one of its frames.
    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.activity("approved").position, start);
    assert_eq!(gui.rect_of("Activity Approved"), drawn);
    assert!(!gui.app().designer.doc.can_undo(), "the drag was a single step");
    assert!(!gui.app().designer.doc.is_dirty());

    gui.shortcut(Modifiers::COMMAND | Modifiers::SHIFT, Key::Z);
    assert_eq!(gui.activity("approved").position, moved);
    assert_eq!(gui.rect_of("Activity Approved"), drawn_moved);

    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.activity("approved").position, start);
    gui.shortcut(Modifiers::COMMAND, Key::Y);
    assert_eq!(gui.activity("approved").position, moved);

    gui.menu("Edit", "Undo Ctrl+Z");
    assert_eq!(gui.activity("approved").position, start);
    assert_eq!(gui.rect_of("Activity Approved"), drawn);
    gui.menu("Edit", "Redo Ctrl+Shift+Z");
    assert_eq!(gui.activity("approved").position, moved);
    assert_eq!(gui.rect_of("Activity Approved"), drawn_moved);
}

#[test]
fn adding_an_event_is_undone_and_redone_by_keys_and_menu() {
    let mut gui = Gui::new();
    let template = gui.rect_of("Template Server Event").center();
    let target = gui.rect_of("Activity Rejected").center();
    gui.drag(template, target);
    assert_eq!(gui.event_names("rejected"), ["Mark not done", "Server Event"]);
    assert!(gui.exists("Event Server Event"));

    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.event_names("rejected"), ["Mark not done"]);
    assert!(!gui.exists("Event Server Event"));
    assert!(gui.selection().is_empty(), "the undone event is no longer selected");

    gui.shortcut(Modifiers::COMMAND, Key::Y);
    assert_eq!(gui.event_names("rejected"), ["Mark not done", "Server Event"]);
    assert!(gui.exists("Event Server Event"));

    gui.menu("Edit", "Undo Ctrl+Z");
    assert_eq!(gui.event_names("rejected"), ["Mark not done"]);
    assert!(!gui.exists("Event Server Event"));
    gui.menu("Edit", "Redo Ctrl+Shift+Z");
    assert_eq!(gui.event_names("rejected"), ["Mark not done", "Server Event"]);
    assert!(gui.exists("Event Server Event"));
}

#[test]
fn ctrl_s_saves_to_the_chosen_file_and_file_open_reads_the_same_draft_back() {
    let files = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    dialogs.save.borrow_mut().push(files.path().join("saved"));
    let saved_path = files.path().join("saved.process.json");
    dialogs.open.borrow_mut().push(saved_path.clone());
    let mut gui = Gui::with(None, dialogs);

    // An edit: an event added to Approved.
    let template = gui.rect_of("Template Server Event (asynchronous)").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    assert!(gui.app().title().starts_with("● "), "{}", gui.app().title());
    let edited = gui.draft().clone();

    gui.shortcut(Modifiers::COMMAND, Key::S);
    assert!(saved_path.exists(), "saved with the .process.json extension added");
    assert_eq!(gui.app().title(), "saved.process.json — flowdesk");
    assert!(!gui.app().designer.doc.is_dirty());
    assert_eq!(ProcessDraft::load(&saved_path).unwrap(), edited, "the file holds the draft");
    assert!(gui.texts_containing("Saved ").iter().any(|t| t.contains("saved.process.json")), "status bar");

    // Away to a new process, then back through File ▸ Open….
    gui.menu("File", "New Ctrl+N");
    assert_ne!(*gui.draft(), edited);
    assert!(!gui.exists("Save changes?"), "nothing unsaved to ask about");
    gui.menu("File", "Open… Ctrl+O");
    assert_eq!(*gui.draft(), edited);
    assert_eq!(gui.app().title(), "saved.process.json — flowdesk");
    assert_eq!(gui.event_names("approved"), ["Mark done", "Call external system"]);
    let waiting = gui.harness.query_all_by_label("Event Call external system (waits for a callback)").count();
    assert_eq!(waiting, 2, "the added event is drawn again, as waiting");
    assert_eq!(gui.app().settings.recent.first(), Some(&saved_path.canonicalize().unwrap()));
}

#[test]
fn replacing_unsaved_work_asks_first_and_cancel_keeps_it() {
    let mut gui = Gui::new();
    let grab = gui.header_of("Approved");
    gui.drag(grab, grab + vec2(0.0, 100.0));
    let edited = gui.draft().clone();

    gui.menu("File", "New Ctrl+N");
    assert!(gui.exists("Save changes?"));
    assert_eq!(*gui.draft(), edited, "nothing replaced while asking");
    gui.click("Cancel");
    assert!(!gui.exists("Save changes?"));
    assert_eq!(*gui.draft(), edited);
    assert!(gui.app().designer.doc.is_dirty());
    assert!(gui.exists("Activity Approved"));

    gui.menu("File", "New Ctrl+N");
    assert!(gui.exists("Save changes?"));
    gui.click("Don't save");
    assert!(!gui.exists("Save changes?"));
    let draft = gui.draft();
    assert_eq!(draft.name, "untitled");
    assert_eq!(draft.activities.len(), 1);
    assert!(!gui.app().designer.doc.is_dirty());
    assert!(gui.exists("Activity Start"));
    assert!(!gui.exists("Activity Approved"));
}

#[test]
fn a_file_that_does_not_parse_shows_its_line_and_keeps_the_current_work() {
    let files = tempfile::tempdir().unwrap();
    let broken = files.path().join("broken.process.json");
    std::fs::write(&broken, "{\n  \"name\": \"broken\",\n  \"activities\": [ oops ]\n}\n").unwrap();
    let dialogs = ScriptedDialogs::default();
    dialogs.open.borrow_mut().push(broken);
    let mut gui = Gui::with(None, dialogs);
    let before = gui.draft().clone();
    let title = gui.app().title();

    gui.menu("File", "Open… Ctrl+O");
    assert!(gui.exists("Cannot open the process file"), "an error dialog");
    let details = gui.texts_containing("line 3");
    assert!(details.iter().any(|t| t.contains("broken.process.json")), "{details:?}");
    assert_eq!(*gui.draft(), before);
    assert_eq!(gui.app().title(), title);

    gui.click("OK");
    assert!(!gui.exists("Cannot open the process file"));
    assert_eq!(*gui.draft(), before);
    assert!(gui.exists("Activity Prepare"));
}

#[test]
fn the_delete_key_removes_the_selected_activity_with_its_lines() {
    let mut gui = Gui::new();
    assert_eq!(gui.draft().lines.len(), 3);
    gui.click_at(gui.header_of("Call external system"));
    assert_eq!(gui.selection(), [activity_element("call")]);
    gui.harness.key_press(Key::Delete);
    gui.settle();

    let draft = gui.draft();
    assert!(draft.activity("call").is_none());
    assert_eq!(draft.activities.len(), 3);
    assert!(draft.lines.is_empty(), "every line touched the deleted activity");
    assert!(gui.selection().is_empty());
    assert!(!gui.exists("Activity Call external system"));
    assert!(!gui.exists("Connect Call external system"));
    assert!(gui.exists("Activity Prepare"));

    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.draft().lines.len(), 3);
    assert!(gui.exists("Activity Call external system"));
}

#[test]
fn copy_and_paste_duplicate_an_activity_with_a_new_id_and_name() {
    let mut gui = Gui::new();
    gui.click_at(gui.header_of("Prepare"));
    assert_eq!(gui.selection(), [activity_element("prepare")]);

    gui.harness.event(Event::Copy);
    gui.harness.run_steps(1);
    let copied = gui
        .harness
        .output()
        .platform_output
        .commands
        .iter()
        .find_map(|c| match c {
            egui::OutputCommand::CopyText(text) => Some(text.clone()),
            _ => None,
        })
        .expect("Copy puts the activity on the system clipboard");
    assert!(copied.contains("\"flowdesk_clip\""), "{copied}");
    gui.settle();

    gui.harness.event(Event::Paste(copied));
    gui.settle();
    let draft = gui.draft();
    assert_eq!(draft.activities.len(), 5);
    let original = draft.activity("prepare").unwrap();
    let pasted = draft.activities.last().unwrap();
    assert_ne!(pasted.id, original.id);
    assert_eq!(pasted.name, "Prepare 2");
    assert!(!pasted.start, "only one start activity");
    assert_eq!(pasted.events, original.events);
    assert!(pasted.position.x > original.position.x && pasted.position.y > original.position.y, "offset");
    assert_eq!(gui.selection(), [activity_element(&pasted.id.clone())]);
    assert!(gui.exists("Activity Prepare 2"));
    assert!(gui.exists("Activity Prepare"));

    // The app's own clipboard works without the system's text too.
    gui.harness.event(Event::Paste(String::new()));
    gui.settle();
    assert_eq!(gui.draft().activities.len(), 6);
    assert!(gui.exists("Activity Prepare 3"));
}

#[test]
fn shift_dragging_the_background_selects_the_activities_in_the_band() {
    let mut gui = Gui::new();
    let view = gui.app().designer.view;
    let approved = gui.rect_of("Activity Approved");
    let rejected = gui.rect_of("Activity Rejected");
    gui.shift_drag(approved.left_top() - vec2(12.0, 12.0), rejected.right_bottom() + vec2(30.0, 12.0));

    let mut selection = gui.selection().to_vec();
    selection.sort();
    assert_eq!(selection, [activity_element("approved"), activity_element("rejected")]);
    assert_eq!(gui.app().designer.view, view, "a shift-drag does not pan");
    assert!(!gui.app().designer.doc.is_dirty());
    assert!(gui.exists("2 elements selected"), "the panel shows the multi-selection");

    // Delete then removes both.
    gui.harness.key_press(Key::Delete);
    gui.settle();
    assert!(gui.draft().activity("approved").is_none() && gui.draft().activity("rejected").is_none());
    assert_eq!(gui.draft().activities.len(), 2);
}

#[test]
fn a_plain_drag_on_the_background_pans_without_selecting() {
    let mut gui = Gui::new();
    let prepare = gui.rect_of("Activity Prepare");
    let spot = gui.empty_canvas_spot();
    gui.drag(spot, spot + vec2(50.0, -30.0));
    let moved = gui.rect_of("Activity Prepare");
    assert!((moved.min - prepare.min - vec2(50.0, -30.0)).length() < 2.0, "{prepare:?} -> {moved:?}");
    assert!(gui.selection().is_empty());
    assert!(!gui.app().designer.doc.is_dirty(), "panning is no edit");
}

#[test]
fn dragging_an_event_row_onto_another_activity_moves_it_there() {
    let mut gui = Gui::new();
    let row = gui.rect_of("Event Mark done").center();
    let rejected = gui.rect_of("Activity Rejected");
    // The lower half of Rejected's last row: after it.
    gui.drag(row, pos2(rejected.center().x, rejected.bottom() - 6.0));

    assert!(gui.activity("approved").events.is_empty());
    assert_eq!(gui.event_names("rejected"), ["Mark not done", "Mark done"]);
    assert_eq!(gui.selection(), [Element::Event { activity: "rejected".into(), index: 1 }]);
    let rejected = gui.rect_of("Activity Rejected");
    assert!(rejected.contains_rect(gui.rect_of("Event Mark done")), "drawn in Rejected");
    assert!(gui.rect_of("Event Mark not done").top() < gui.rect_of("Event Mark done").top());
    assert!(!gui.rect_of("Activity Approved").contains_rect(gui.rect_of("Event Mark done")));

    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.event_names("approved"), ["Mark done"]);
    assert_eq!(gui.event_names("rejected"), ["Mark not done"]);
}

#[test]
fn dragging_an_event_row_within_its_activity_reorders_it() {
    let mut gui = Gui::new();
    let template = gui.rect_of("Template Server Event").center();
    let target = gui.rect_of("Activity Prepare").center();
    gui.drag(template, target);
    assert_eq!(gui.event_names("prepare"), ["Set stage", "Server Event"]);

    let second = gui.rect_of("Event Server Event").center();
    let first = gui.rect_of("Event Set stage");
    gui.drag(second, pos2(first.center().x, first.top() + 2.0));

    assert_eq!(gui.event_names("prepare"), ["Server Event", "Set stage"]);
    assert_eq!(gui.selection(), [Element::Event { activity: "prepare".into(), index: 0 }]);
    assert!(gui.rect_of("Event Server Event").top() < gui.rect_of("Event Set stage").top());

    // And back down: dropped on the lower half of the last row.
    let first = gui.rect_of("Event Server Event").center();
    let last = gui.rect_of("Event Set stage");
    gui.drag(first, pos2(last.center().x, last.bottom() - 1.0));
    assert_eq!(gui.event_names("prepare"), ["Set stage", "Server Event"]);
}

#[test]
fn a_broken_rule_is_listed_in_problems_and_clicking_it_selects_the_line() {
    let mut gui = Gui::new();
    assert!(gui.texts_containing("Undefined variable").is_empty());
    // The first line runs straight from Prepare to Call external system.
    let prepare = gui.rect_of("Activity Prepare");
    let call = gui.rect_of("Activity Call external system");
    gui.click_at(pos2((prepare.right() + call.left()) / 2.0, prepare.center().y));
    assert_eq!(gui.selection(), [Element::Line(0)]);
    assert!(gui.exists("Prepare -> Call external system"));

    gui.type_into("Rule (empty: always true)", "nmae == 1");
    assert_eq!(gui.draft().lines[0].rule, "nmae == 1");
    assert!(gui.texts_containing("Error:").iter().any(|t| t.contains("Undefined variable")), "panel error");

    // Away from the line, then back through the problems panel.
    gui.click_at(gui.empty_canvas_spot());
    assert!(gui.selection().is_empty());
    let problems = gui.texts_containing("Undefined variable");
    assert_eq!(problems.len(), 1, "{problems:?}");
    gui.click(&problems[0]);
    assert_eq!(gui.selection(), [Element::Line(0)]);
    assert!(gui.exists("Prepare -> Call external system"), "the panel shows the picked line");
}

#[test]
fn an_http_request_event_is_added_from_the_palette_edited_and_saved() {
    let files = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    dialogs.save.borrow_mut().push(files.path().join("notify"));
    let mut gui = Gui::with(None, dialogs);

    let template = gui.rect_of("Template HTTP request").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    assert_eq!(gui.event_names("approved"), ["Mark done", "HTTP request"]);

    // A new request has no URL yet: the problems panel says so, and picking
    // the problem selects the event and shows its properties.
    gui.click_at(gui.empty_canvas_spot());
    assert!(gui.selection().is_empty());
    let problems = gui.texts_containing("the URL is empty");
    assert_eq!(problems, ["Error  activity `Approved`, event 2 `HTTP request`: the URL is empty"]);
    gui.click(&problems[0]);
    let event = Element::Event { activity: "approved".to_owned(), index: 1 };
    assert_eq!(gui.selection(), [event]);
    assert!(gui.exists("URL"), "the properties panel shows the request");

    gui.type_into("URL", "http://127.0.0.1:9000/done/${serial}");
    gui.click("Synchronous");
    gui.click("HTTP method");
    gui.click("PUT");
    gui.click("Add header");
    gui.type_into("Header 1 name", "X-Token");
    gui.type_into("Header 1 value", "abc");
    gui.type_into("Body (JSON; empty sends none)", "{\"serial\": ${serial}, \"folio\": ${folio}}");
    assert!(gui.texts_containing("the URL is empty").is_empty(), "the problem is gone");
    // Canvas row: says what kind of event it is and that it now waits.
    assert!(gui.exists("Event HTTP request (HTTP request, waits for a callback)"));

    gui.shortcut(Modifiers::COMMAND, Key::S);
    let saved = ProcessDraft::load(&files.path().join("notify.process.json")).unwrap();
    let expected = HttpRequestDraft {
        name: "HTTP request".to_owned(),
        synchronous: false,
        method: "PUT".to_owned(),
        url: "http://127.0.0.1:9000/done/${serial}".to_owned(),
        headers: vec![HeaderDraft { name: "X-Token".to_owned(), value: "abc".to_owned() }],
        body: "{\"serial\": ${serial}, \"folio\": ${folio}}".to_owned(),
        timeout_seconds: 10,
    };
    assert_eq!(saved.activity("approved").unwrap().events[1], EventDraft::HttpRequest(expected));
}

#[test]
fn a_mail_event_is_added_from_the_palette_edited_and_shows_why_it_is_always_synchronous() {
    let files = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    dialogs.save.borrow_mut().push(files.path().join("tell"));
    let mut gui = Gui::with(None, dialogs);

    let template = gui.rect_of("Template Mail").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    assert_eq!(gui.event_names("approved"), ["Mark done", "Send mail"]);

    // A new mail has no recipient yet: the problems panel says so, and
    // picking the problem shows the event's properties.
    gui.click_at(gui.empty_canvas_spot());
    let problems = gui.texts_containing("no recipient");
    assert_eq!(
        problems,
        ["Error  activity `Approved`, event 2 `Send mail`: the mail has no recipient: write an address in To"]
    );
    gui.click(&problems[0]);
    assert_eq!(gui.selection(), [Element::Event { activity: "approved".to_owned(), index: 1 }]);

    // The toggle is there, on and disabled, and the page says why.
    let toggle = gui.harness.get_by_label("Synchronous");
    assert!(toggle.accesskit_node().is_disabled(), "a mail event cannot be made asynchronous");
    assert!(!gui.texts_containing("A mail event is always synchronous").is_empty(), "the reason is on the page");

    gui.type_into("To", "boss@example.com, bob@");
    assert_eq!(gui.texts_containing("is not an e-mail address").len(), 2, "beside the event and in the panel");
    gui.replace_value("boss@example.com, bob@", "boss@example.com, Bob <bob@example.com>");
    assert!(gui.texts_containing("is not an e-mail address").is_empty());
    gui.type_into("Cc", "${nobody}");
    assert!(!gui.texts_containing("Cc: unknown placeholder `${nobody}`").is_empty());
    gui.replace_value("${nobody}", "carol@example.com");
    gui.replace_value("${folio}", "Approved: ${folio}");
    gui.type_into("Body (plain text)", "Instance ${instance_id} was approved.");
    // The canvas row names whom it tells.
    let row = "Event Send mail (mail to boss@example.com, Bob <bob@example.com>)";
    assert!(gui.exists(row));
    // Its right-click menu shows the toggle disabled too.
    gui.harness.get_by_label(row).click_secondary();
    gui.settle();
    let toggles = gui.harness.get_all_by_label("Synchronous").collect::<Vec<_>>();
    assert!(toggles.len() == 2 && toggles.iter().all(|t| t.accesskit_node().is_disabled()), "{toggles:?}");
    gui.harness.key_press(Key::Escape);
    gui.settle();

    gui.shortcut(Modifiers::COMMAND, Key::S);
    let saved = ProcessDraft::load(&files.path().join("tell.process.json")).unwrap();
    let expected = MailDraft {
        name: "Send mail".to_owned(),
        synchronous: true,
        to: "boss@example.com, Bob <bob@example.com>".to_owned(),
        cc: "carol@example.com".to_owned(),
        subject: "Approved: ${folio}".to_owned(),
        body: "Instance ${instance_id} was approved.".to_owned(),
        html: String::new(),
    };
    assert_eq!(saved.activity("approved").unwrap().events[1], EventDraft::Mail(expected));
}

#[test]
fn the_settings_dialog_sets_the_smtp_server_and_keeps_no_password() {
    let mut gui = Gui::new();
    gui.menu("File", "Settings…");
    gui.type_into("Host", "mail.example.com");
    gui.type_into("Port", "twenty-five");
    gui.click_button("Save");
    assert!(!gui.texts_containing("port `twenty-five` is not a number").is_empty(), "said in the dialog");
    assert!(gui.exists("Host"), "the dialog stays open");

    gui.replace_value("twenty-five", "2525");
    gui.click("Security");
    gui.click("None (a server on this machine only)");
    gui.click_button("Save");
    assert!(!gui.texts_containing("only for a server on this machine").is_empty());

    gui.replace_value("mail.example.com", "localhost");
    gui.type_into("User", "flowdesk");
    gui.type_into("Password", "pa55-word");
    gui.type_into("From", "flowdesk@example.org");
    gui.click_button("Save");
    assert!(!gui.exists("Host"), "closed once saved");
    assert!(
        !gui.texts_containing("Mail goes through smtp://flowdesk@localhost:2525?tls=none").is_empty(),
        "the status line says where mail goes"
    );
    let smtp = &gui.app().settings.smtp;
    assert_eq!((smtp.host.as_str(), smtp.port, smtp.user.as_str()), ("localhost", Some(2525), "flowdesk"));
    let kept = serde_json::to_string(&gui.app().settings).unwrap();
    assert!(!kept.contains("pa55-word"), "the password is not kept between runs: {kept}");
}

/// Issue 19: the sub-process (IPC) template is dragged from the palette,
/// its properties set in the panel, and the canvas says in words whether
/// the parent waits for its child.
#[test]
fn a_sub_process_event_is_dragged_from_the_palette_and_its_properties_set() {
    let files = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    dialogs.save.borrow_mut().push(files.path().join("calls"));
    let mut gui = Gui::with(None, dialogs);

    let template = gui.rect_of("Template Sub-process (IPC)").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    assert_eq!(gui.event_names("approved"), ["Mark done", "Sub-process"]);
    assert!(gui.exists("Event Sub-process (sub-process, waits for child)"), "synchronous by default: it waits");

    gui.click_at(gui.empty_canvas_spot());
    let problems = gui.texts_containing("no child process");
    assert_eq!(
        problems,
        ["Error  activity `Approved`, event 2 `Sub-process`: no child process: name the process this event starts"]
    );
    gui.click(&problems[0]);
    assert!(gui.exists("Child process"), "the properties panel shows the event");
    assert!(!gui.texts_containing("Synchronous means WAIT").is_empty(), "the help says what Synchronous means here");

    gui.type_into("Child process", "payment");
    gui.type_into("Child folio", "PAY-${name}");
    gui.click("Add input mapping");
    gui.type_into("Input 1 from", "name");
    gui.type_into("Input 1 to", "order_id");
    gui.click("Add output mapping");
    gui.type_into("Output 1 from", "paid");
    gui.type_into("Output 1 to", "done");
    assert!(gui.texts_containing("no child process").is_empty(), "the problem is gone");

    gui.click("Synchronous (wait for the child)");
    assert!(gui.exists("Event Sub-process (sub-process, starts child)"));
    assert!(!gui.texts_containing("output mappings need a parent that waits").is_empty(), "said where it is");
    gui.click("Synchronous (wait for the child)");
    assert!(gui.exists("Event Sub-process (sub-process, waits for child)"));

    gui.shortcut(Modifiers::COMMAND, Key::S);
    let saved = ProcessDraft::load(&files.path().join("calls.process.json")).unwrap();
    let mapping = |from: &str, to: &str| MappingDraft { from: from.to_owned(), to: to.to_owned() };
    let expected = IpcDraft {
        name: "Sub-process".to_owned(),
        synchronous: true,
        process: "payment".to_owned(),
        version: None,
        folio: "PAY-${name}".to_owned(),
        inputs: vec![mapping("name", "order_id")],
        outputs: vec![mapping("paid", "done")],
    };
    assert_eq!(saved.activity("approved").unwrap().events[1], EventDraft::Ipc(expected));
}

// ----- designer commands, deploy and start ------------------------------------------

const DESIGNER_ONLY: [&str; 4] = ["Deploy", "Start instance…", "Edit", "View"];

#[test]
fn designer_commands_appear_only_in_the_designer_view() {
    let mut gui = Gui::new();
    for label in DESIGNER_ONLY {
        assert!(gui.exists(label), "{label} in the designer");
    }
    for (view, title) in [(AppView::Monitor, "Monitor"), (AppView::Items, "Server items")] {
        gui.click(title);
        assert_eq!(gui.app().view, view);
        for label in DESIGNER_ONLY {
            assert!(!gui.exists(label), "{label} is not offered in {title}");
        }
        gui.click("File");
        assert!(gui.exists("Quit Ctrl+Q"), "Quit stays everywhere");
        for item in ["New Ctrl+N", "Open… Ctrl+O", "Open Sample", "Open Recent", "Save Ctrl+S", "Save As… Ctrl+Shift+S"]
        {
            assert!(!gui.exists(item), "File ▸ {item} is not offered in {title}");
        }
        gui.click("File");
        assert!(!gui.exists("Quit Ctrl+Q"), "the menu closed");

        // Nor do their shortcuts act on the draft out of sight.
        gui.shortcut(Modifiers::COMMAND, Key::D);
        assert_eq!(gui.deployed(), [], "Ctrl+D deployed nothing from {title}");
        gui.shortcut(Modifiers::COMMAND, Key::N);
        assert_eq!(gui.draft().name, "callback", "Ctrl+N replaced nothing from {title}");
        assert!(!gui.exists("Save changes?"));
    }
    gui.click("Designer");
    for label in DESIGNER_ONLY {
        assert!(gui.exists(label), "{label} back in the designer");
    }
    gui.select("Prepare");
    gui.shortcut(Modifiers::COMMAND, Key::D);
    assert_eq!(gui.deployed(), [("callback".to_owned(), 1, 1)], "Ctrl+D deploys in the designer");
}

#[test]
fn start_instance_names_the_version_that_starts_and_offers_to_deploy_a_changed_draft() {
    let mut gui = Gui::new();
    gui.select("Prepare");

    // Never deployed: the dialog says so, and its button deploys first.
    gui.click("Start instance…");
    assert!(gui.exists("Start an instance of callback"));
    assert!(gui.exists("callback has not been deployed yet."));
    assert!(gui.exists("The draft on screen will be deployed as callback version 1, then started."));
    let plain_start = gui.harness.query_by_role_and_label(Role::Button, "Start");
    assert!(plain_start.is_none(), "no plain Start: there is nothing deployed to start");
    gui.click("Deploy and start");
    assert!(!gui.exists("Start an instance of callback"), "the form closes");
    assert_eq!(gui.deployed(), [("callback".to_owned(), 1, 1)]);
    assert_eq!(gui.started_versions(), [1]);

    // Unchanged: version 1 starts, and the dialog says it is the draft on screen.
    gui.click("Start instance…");
    assert!(gui.exists("callback version 1 will start."));
    assert!(gui.exists("It is the same definition as the draft on screen."));
    gui.click_button("Start");
    assert_eq!(gui.started_versions(), [1, 1]);

    // Changed: the deployed version starts unless the user picks the draft.
    let template = gui.rect_of("Template Server Event (asynchronous)").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    gui.select("Prepare");
    gui.click("Start instance…");
    assert!(gui.exists("The draft on screen differs from callback version 1."));
    assert!(gui.exists("callback version 1 will start."), "the deployed version is the default choice");
    gui.click_button("Start");
    assert_eq!(gui.started_versions(), [1, 1, 1]);
    assert_eq!(gui.deployed(), [("callback".to_owned(), 1, 1)], "starting deployed nothing");

    gui.click("Start instance…");
    gui.click("Deploy the draft as version 2 and start it");
    assert!(gui.exists("The draft on screen will be deployed as callback version 2, then started."));
    gui.click("Deploy and start");
    assert_eq!(gui.deployed(), [("callback".to_owned(), 2, 2)]);
    assert_eq!(gui.started_versions(), [1, 1, 1, 2]);
    let version_2 = gui.engine().definition("callback").unwrap();
    assert_eq!(version_2.draft, *gui.draft(), "version 2 is the draft on screen");

    // A draft with errors cannot be deployed: the dialog says the deployed version starts.
    let prepare = gui.rect_of("Activity Prepare");
    let call = gui.rect_of("Activity Call external system");
    gui.click_at(pos2((prepare.right() + call.left()) / 2.0, prepare.center().y));
    gui.type_into("Rule (empty: always true)", "nmae == 1");
    gui.click("Start instance…");
    assert!(gui.exists("The draft on screen has errors, so it cannot be deployed."));
    assert!(gui.exists("callback version 2 will start."));
    assert!(!gui.exists("Deploy the draft as version 3 and start it"));
    gui.click_button("Start");
    assert_eq!(gui.started_versions(), [1, 1, 1, 2, 2]);
}

#[test]
fn deploying_an_unchanged_draft_asks_first_and_a_moved_box_deploys_at_once() {
    let mut gui = Gui::new();
    gui.select("Prepare");
    gui.click("Deploy");
    assert_eq!(gui.deployed(), [("callback".to_owned(), 1, 1)]);

    // The same definition again: asked, and Cancel makes no version.
    gui.click("Deploy");
    assert!(gui.exists("Deploy an identical version?"));
    assert!(gui.exists(
        "The draft on screen is the same definition as callback version 1. Deploying it makes version 2, identical to version 1."
    ));
    gui.click("Cancel");
    assert!(!gui.exists("Deploy an identical version?"));
    assert_eq!(gui.deployed(), [("callback".to_owned(), 1, 1)]);

    // The shortcut asks too; confirming makes the version.
    gui.shortcut(Modifiers::COMMAND, Key::D);
    assert!(gui.exists("Deploy an identical version?"));
    gui.click("Deploy version 2");
    assert!(!gui.exists("Deploy an identical version?"));
    assert_eq!(gui.deployed(), [("callback".to_owned(), 2, 2)]);

    // A moved box is a change the monitor shows (instances are drawn on their
    // version's layout): deployed without asking, and the status says what changed.
    let grab = gui.header_of("Approved");
    gui.drag(grab, grab + vec2(0.0, 100.0));
    gui.click("Deploy");
    assert!(!gui.exists("Deploy an identical version?"));
    assert_eq!(gui.deployed(), [("callback".to_owned(), 3, 3)]);
    assert_eq!(gui.app().status_text(), Some("Deployed callback version 3 (only the layout differs from version 2)"));
}

#[test]
fn a_version_deployed_while_the_start_dialog_is_open_is_named_before_it_starts() {
    let mut gui = Gui::new();
    gui.select("Prepare");
    gui.click("Deploy");
    gui.click("Start instance…");
    assert!(gui.exists("callback version 1 will start."));

    // Another window or the command line deploys version 2 meanwhile.
    let mut changed = gui.draft().clone();
    changed.activities[1].name = "Call the supplier".to_owned();
    gui.engine().deploy("ada", &changed).unwrap();

    gui.click_button("Start");
    assert!(gui.started_versions().is_empty(), "nothing started on a version the dialog did not name");
    assert!(gui.exists("callback version 2 will start."));
    assert!(gui.exists("The draft on screen differs from callback version 2."));
    assert!(gui.exists("callback version 2 was deployed since this dialog opened; check the fields and start again."));
    gui.click_button("Start");
    assert_eq!(gui.started_versions(), [2]);
}

// ----- file dialogs where the desktop has none ---------------------------------------

const CALLBACK_SAMPLE: &str = include_str!("../../samples/callback.process.json");

/// A folder holding the callback sample, which the window opens first.
fn folder_with_sample() -> (tempfile::TempDir, PathBuf) {
    let files = tempfile::tempdir().unwrap();
    let sample = files.path().canonicalize().unwrap().join("callback.process.json");
    std::fs::write(&sample, CALLBACK_SAMPLE).unwrap();
    (files, sample)
}

#[test]
fn without_a_desktop_file_dialog_save_save_as_and_open_use_one_in_the_window() {
    let (_files, sample) = folder_with_sample();
    let folder = sample.parent().unwrap().to_owned();
    let mut gui = Gui::with(Some(sample.clone()), ScriptedDialogs::unavailable());

    // A new process, edited: it has no file yet, so Save asks where.
    gui.shortcut(Modifiers::COMMAND, Key::N);
    let template = gui.rect_of("Template Server Event (asynchronous)").center();
    let target = gui.rect_of("Activity Start").center();
    gui.drag(template, target);
    assert!(gui.app().title().starts_with("● "), "{}", gui.app().title());
    let edited = gui.draft().clone();

    gui.shortcut(Modifiers::COMMAND, Key::S);
    assert_eq!(gui.file_dialog_title().as_deref(), Some("💾  Save process as"));
    let status = gui.app().status_text().unwrap_or_default();
    assert!(status.contains("no file dialog"), "the status bar says why: {status}");
    gui.text_field_showing(folder.to_str().unwrap()); // it opens in the last file's folder
    gui.replace_value("untitled.process.json", "drafted");
    gui.click_button("Save");
    let drafted = folder.join("drafted.process.json");
    assert_eq!(ProcessDraft::load(&drafted).unwrap(), edited, "saved, with .process.json added");
    assert_eq!(gui.file_dialog_title(), None, "the dialog closed");
    assert_eq!(gui.app().title(), "drafted.process.json — flowdesk", "no ● once saved");

    // Save As onto an existing file asks first; Cancel leaves it alone.
    gui.shortcut(Modifiers::COMMAND | Modifiers::SHIFT, Key::S);
    assert_eq!(gui.file_dialog_title().as_deref(), Some("💾  Save process as"));
    gui.replace_value("untitled.process.json", "callback");
    gui.click_button("Save");
    assert!(gui.exists("callback.process.json already exists. Replace it?"));
    gui.click("Cancel");
    assert_eq!(std::fs::read_to_string(&sample).unwrap(), CALLBACK_SAMPLE);
    assert_eq!(gui.app().title(), "drafted.process.json — flowdesk");

    gui.menu("File", "Save As… Ctrl+Shift+S");
    gui.replace_value("untitled.process.json", "callback.process.json");
    gui.click_button("Save");
    gui.click("Replace");
    assert_eq!(ProcessDraft::load(&sample).unwrap(), edited);
    assert_eq!(gui.app().title(), "callback.process.json — flowdesk");

    // Open lists the folder's process files.
    gui.shortcut(Modifiers::COMMAND, Key::N);
    assert_ne!(*gui.draft(), edited);
    gui.menu("File", "Open… Ctrl+O");
    assert_eq!(gui.file_dialog_title().as_deref(), Some("📂  Open process"));
    gui.click("🗋 drafted.process.json");
    gui.click_button("Open");
    assert_eq!(gui.file_dialog_title(), None);
    assert_eq!(*gui.draft(), edited);
    assert_eq!(gui.app().title(), "drafted.process.json — flowdesk");
    assert_eq!(gui.app().settings.recent.first(), Some(&drafted));
}

#[test]
fn saving_before_new_goes_through_the_in_window_dialog_and_then_starts_the_new_process() {
    let (_files, sample) = folder_with_sample();
    let folder = sample.parent().unwrap().to_owned();
    let mut gui = Gui::with(Some(sample.clone()), ScriptedDialogs::unavailable());
    gui.shortcut(Modifiers::COMMAND, Key::N);
    let template = gui.rect_of("Template Server Event (asynchronous)").center();
    let target = gui.rect_of("Activity Start").center();
    gui.drag(template, target);
    let edited = gui.draft().clone();

    gui.menu("File", "New Ctrl+N");
    gui.click("Save");
    assert_eq!(gui.file_dialog_title().as_deref(), Some("💾  Save process as"));
    assert_eq!(*gui.draft(), edited, "nothing replaced before it is saved");
    // The window behind the dialog waits for it.
    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(*gui.draft(), edited, "Ctrl+Z did not reach the draft");

    gui.replace_value("untitled.process.json", "kept");
    gui.click_button("Save");
    assert_eq!(ProcessDraft::load(&folder.join("kept.process.json")).unwrap(), edited);
    assert_eq!(gui.app().title(), "untitled (not saved) — flowdesk", "then the new process");
    assert_eq!(gui.draft().activities.len(), 1);
}

#[test]
fn cancelling_the_desktop_file_dialog_opens_no_second_one() {
    let mut gui = Gui::new();
    let grab = gui.header_of("Approved");
    gui.drag(grab, grab + vec2(0.0, 100.0));
    gui.shortcut(Modifiers::COMMAND, Key::S);
    assert_eq!(gui.file_dialog_title(), None);
    gui.menu("File", "Open… Ctrl+O");
    assert_eq!(gui.file_dialog_title(), None);
    assert!(gui.app().title().starts_with("● "), "still unsaved: {}", gui.app().title());
}

// ----- issue 14: what the window draws ------------------------------------------

#[test]
fn the_window_loads_fonts_that_draw_its_arrows_and_menu_triangles() {
    let gui = Gui::new();
    // "Grant ▾" in the rights, "→" in every HTTP audit line and data change,
    // "▸" in the Server menu's hints: each was drawn as an empty box.
    for family in [egui::FontFamily::Proportional, egui::FontFamily::Monospace] {
        let font = egui::FontId::new(13.0, family);
        for symbol in ['▾', '→', '▸'] {
            let drawn = gui.harness.ctx.fonts_mut(|fonts| fonts.has_glyph(&font, symbol));
            assert!(drawn, "{symbol:?} has no glyph in the window's {:?} fonts", font.family);
        }
    }
}

// ----- deadlines: escalations and timers (issue 17) ----------------------------------

#[test]
fn an_activity_s_escalations_are_added_edited_reordered_and_removed() {
    let mut gui = Gui::new();
    gui.select("Call external system");
    gui.click("Add escalation");
    assert_eq!(gui.activity("call").escalations.len(), 1);
    // The canvas marks the activity and names its escalations.
    assert!(gui.exists("Activity Call external system (escalations: Escalation)"));

    gui.replace_value("Escalation", "Give up");
    gui.replace_value("1h", "3h");
    gui.click("Escalation 1 action");
    gui.click("Finish the item");
    gui.click("Escalation 1 set a field");
    gui.click("name");
    gui.type_into("Escalation 1 value of name", "timed out");

    // A problem shows beside the escalation, and in the problems panel.
    gui.replace_value("3h", "0m");
    let mut shown = gui.texts_containing("is not longer than zero");
    shown.sort();
    assert_eq!(
        shown,
        [
            "Error  activity `Call external system`, escalation 1 `Give up`: after: `0m` is not longer than zero",
            "after: `0m` is not longer than zero",
        ],
        "in the problems panel and beside the escalation"
    );
    gui.replace_value("0m", "3h");
    assert!(gui.texts_containing("is not longer than zero").is_empty());

    // A second one, moved first, then removed again.
    gui.click("Add escalation");
    gui.click("Move escalation 2 up");
    let names: Vec<&str> = gui.activity("call").escalations.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["Escalation", "Give up"]);
    assert!(gui.exists("Activity Call external system (escalations: Escalation, Give up)"));
    gui.click("Remove escalation 1");

    let expected = EscalationDraft {
        name: "Give up".to_owned(),
        after: "3h".to_owned(),
        at_field: String::new(),
        action: EscalationActionDraft::Finish {
            set: [("name".to_owned(), serde_json::json!("timed out"))].into_iter().collect(),
        },
    };
    assert_eq!(gui.activity("call").escalations, [expected]);
    // Every edit is one undo step: the removal first.
    gui.shortcut(Modifiers::COMMAND, Key::Z);
    assert_eq!(gui.activity("call").escalations.len(), 2);
}

#[test]
fn a_wait_event_is_added_from_the_palette_and_its_due_time_edited() {
    let mut gui = Gui::new();
    let template = gui.rect_of("Template Wait").center();
    let spot = gui.empty_canvas_spot();
    gui.drag(template, spot);
    let added = gui.draft().activities.last().unwrap().clone();
    assert_eq!(added.name, "Wait");
    let timer = TimerDraft { name: "Wait".to_owned(), after: "1h".to_owned(), at_field: String::new() };
    assert_eq!(added.events, [EventDraft::Timer(timer)]);
    // The canvas row wears the clock badge with when it falls due.
    gui.click("Event Wait (timer, waits 1h)");
    assert_eq!(gui.selection(), [Element::Event { activity: added.id.clone(), index: 0 }]);

    gui.replace_value("1h", "2h 30m");
    assert!(gui.exists("Event Wait (timer, waits 2h 30m)"));
    assert!(
        gui.harness.get_by_label("Timer at a field").accesskit_node().is_disabled(),
        "the sample has no date field to wait for"
    );
    // A Wait event always waits: its right-click menu shows the toggle
    // disabled, as the mail event's, not one that does nothing.
    gui.harness.get_by_label("Event Wait (timer, waits 2h 30m)").click_secondary();
    gui.settle();
    let toggle = gui.harness.get_by_label("Synchronous");
    assert!(toggle.accesskit_node().is_disabled(), "{toggle:?}");
}

#[test]
fn a_wait_event_can_wait_for_a_datetime_field_in_the_process_s_time_zone() {
    let mut gui = Gui::new();
    // The process page: a time zone and a datetime field.
    gui.click_at(gui.empty_canvas_spot());
    gui.type_into("Time zone", "Europe/Londres");
    assert_eq!(gui.texts_containing("unknown time zone").len(), 2, "beside the box and in the problems panel");
    gui.replace_value("Europe/Londres", "Europe/London");
    assert!(gui.texts_containing("unknown time zone").is_empty());
    gui.click("Add field");
    let index = gui.draft().fields.len() - 1;
    gui.click(&format!("Field {index} type"));
    gui.click("datetime");
    let field = gui.draft().fields[index].name.clone();

    let template = gui.rect_of("Template Wait").center();
    let target = gui.rect_of("Activity Approved").center();
    gui.drag(template, target);
    gui.click("Event Wait (timer, waits 1h)");
    gui.click("Timer at a field");
    assert!(gui.exists(&format!("Event Wait (timer, waits until {field})")));
    let EventDraft::Timer(timer) = &gui.activity("approved").events[1] else { panic!("not a timer") };
    assert_eq!((timer.after.as_str(), timer.at_field.as_str()), ("", field.as_str()));
    assert_eq!(gui.draft().time_zone.as_deref(), Some("Europe/London"));
}

/// Issue 18: a data field's Searchable checkbox, clicked by its label, is
/// saved in the file and read back; a decimal field's box is off.
#[test]
fn a_field_is_made_searchable_with_its_checkbox_and_saved() {
    let files = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    dialogs.save.borrow_mut().push(files.path().join("found"));
    let mut gui = Gui::with(None, dialogs);
    gui.click_at(gui.empty_canvas_spot());
    gui.click("Add field");
    let index = gui.draft().fields.len() - 1;
    let searchable = format!("Field {index} searchable");
    gui.click(&format!("Field {index} type"));
    gui.click("decimal");
    assert!(gui.harness.get_by_label(&searchable).accesskit_node().is_disabled(), "a decimal cannot be");
    gui.click(&format!("Field {index} type"));
    gui.click("integer");
    assert!(!gui.draft().fields[index].searchable);
    gui.click(&searchable);
    assert!(gui.draft().fields[index].searchable);

    gui.shortcut(Modifiers::COMMAND, Key::S);
    let saved = ProcessDraft::load(&files.path().join("found.process.json")).unwrap();
    assert!(saved.fields[index].searchable, "the file says so");
    assert_eq!(saved.fields.iter().filter(|f| f.searchable).count(), 1, "only the field checked");

    // Deploying builds its index, and the status bar says so.
    let name = saved.fields[index].name.clone();
    gui.click("Deploy");
    assert_eq!(gui.deployed(), [("callback".to_owned(), 1, 1)]);
    assert_eq!(
        gui.app().status_text(),
        Some(format!("Deployed callback version 1 (indexed searchable {name})").as_str())
    );
}

#[test]
fn file_import_bpmn_opens_an_unsaved_draft_and_shows_the_report() {
    let bpmn = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bpmn/order-camunda.bpmn");
    let dialogs = ScriptedDialogs::default();
    dialogs.import_bpmn.borrow_mut().push(bpmn);
    let mut gui = Gui::with(None, dialogs);

    gui.menu("File", "Import BPMN…");
    assert_eq!(gui.draft().name, "Order handling");
    assert!(gui.exists("Activity Ship order"), "the imported process is on the canvas");
    assert!(gui.app().designer.doc.is_dirty(), "an unsaved draft: leaving it asks first");
    assert_eq!(gui.app().title(), "● Order handling (not saved) — flowdesk");
    // The report names what was not taken over as it was.
    assert!(gui.exists("Imported order-camunda.bpmn"));
    assert!(!gui.texts_containing("ignored: lane `Sales` (id Lane_sales)").is_empty());
    assert!(!gui.texts_containing("problem: script task `Tell the customer`").is_empty());
    gui.click("OK");
    assert!(!gui.exists("Imported order-camunda.bpmn"));

    gui.menu("File", "New Ctrl+N");
    assert!(gui.exists("Save changes?"), "the import is work not saved yet");
}

#[test]
fn file_export_bpmn_writes_what_import_reads_back() {
    let files = tempfile::tempdir().unwrap();
    let dialogs = ScriptedDialogs::default();
    dialogs.export_bpmn.borrow_mut().push(files.path().join("callback"));
    let broken = files.path().join("broken.bpmn");
    std::fs::write(&broken, "<bpmn:definitions").unwrap();
    dialogs.import_bpmn.borrow_mut().push(broken);
    let mut gui = Gui::with(None, dialogs);
    let draft = gui.draft().clone();

    gui.menu("File", "Export BPMN…");
    let written = files.path().join("callback.bpmn");
    assert!(written.exists(), "the .bpmn extension is added");
    let text = std::fs::read_to_string(&written).unwrap();
    let imported = flowdesk::model::bpmn::import(&text, &Default::default()).unwrap();
    assert_eq!(imported.processes[0].draft, draft);
    assert!(!gui.texts_containing("Exported as BPMN to").is_empty(), "status bar");

    // A file that is not BPMN: said, and the work stays.
    gui.menu("File", "Import BPMN…");
    assert!(gui.exists("Cannot import the BPMN file"));
    assert_eq!(*gui.draft(), draft);
}

#[test]
fn file_import_bpmn_of_several_processes_asks_which() {
    let bpmn = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/bpmn/two-pools.bpmn");
    let dialogs = ScriptedDialogs::default();
    dialogs.import_bpmn.borrow_mut().push(bpmn);
    let mut gui = Gui::with(None, dialogs);
    let before = gui.draft().clone();

    gui.menu("File", "Import BPMN…");
    assert!(gui.exists("Which process?"));
    assert_eq!(*gui.draft(), before, "nothing replaced while asking");
    gui.click("Selling (Process_seller)");
    assert_eq!(gui.draft().name, "Selling");
    assert!(gui.exists("Activity Deliver"));
    assert!(gui.exists("Imported two-pools.bpmn"));
}

/// Regression: showing an escalation changed it. The repeat's and the
/// notify's number boxes clamp a value outside their range as they are
/// drawn, which the designer took for an edit: selecting the activity of a
/// file with `"repeat": {}` (or `"times": 5000`, or a notify timeout of
/// 1000 s) rewrote it to 1 (1000, 300), marked the file modified and hid
/// the problem validation names, without the user touching anything.
#[test]
fn looking_at_an_escalation_changes_nothing_in_it() {
    let files = tempfile::tempdir().unwrap();
    let file = files.path().canonicalize().unwrap().join("limits.process.json");
    std::fs::write(
        &file,
        r#"{"name": "limits",
            "activities": [
              {"id": "call", "name": "Call", "start": true, "position": {"x": 60.0, "y": 60.0},
               "events": [{"kind": "server_event", "name": "Send", "synchronous": false}],
               "escalations": [
                 {"name": "Again", "after": "10m", "action": {"repeat": {"times": 5000}}},
                 {"name": "Forever", "after": "20m", "action": {"repeat": {}}},
                 {"name": "Chase", "after": "1h", "action": {"notify": {"url": "http://h/", "timeout_seconds": 1000}}}
               ]}]}"#,
    )
    .unwrap();
    let loaded = ProcessDraft::load(&file).unwrap();
    let mut gui = Gui::with(Some(file), ScriptedDialogs::unavailable());
    assert_eq!(*gui.draft(), loaded);
    let header = gui.rect_of("Activity Call (escalations: Again, Forever, Chase)").left_top() + vec2(30.0, 8.0);
    gui.click_at(header);
    assert!(gui.exists("Escalation 3 Timeout"), "the activity's escalations are on screen");
    assert_eq!(*gui.draft(), loaded, "only looked at");
    assert!(!gui.app().title().starts_with("● "), "{}", gui.app().title());
    assert!(!gui.texts_containing("repeat without a limit").is_empty(), "the problem is still named");
}
