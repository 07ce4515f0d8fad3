//! The designer driven through its UI like a user: drag, click, type. No
//! display is needed: egui_kittest runs the real app's UI code headless.

use std::path::PathBuf;

use egui::{Pos2, Rect, pos2};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use flowdesk::gui::dialogs::ScriptedDialogs;
use flowdesk::gui::{FlowdeskApp, GuiOptions, Settings};
use flowdesk::model::EventDraft;

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
        let options = GuiOptions { db_path: dir.path().join("gui.db"), user: "ada".to_owned(), file };
        let app = FlowdeskApp::new(options, Settings::default(), Box::new(dialogs));
        let mut harness = Harness::builder().with_size([1280.0, 800.0]).build_ui_state(|ui, app: &mut FlowdeskApp| app.ui(ui), app);
        harness.run_steps(4);
        Gui { _dir: dir, harness }
    }

    fn app(&self) -> &FlowdeskApp {
        self.harness.state()
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
    let EventDraft::ServerEvent(event) = &added.events[0];
    assert!(!event.synchronous, "the asynchronous template presets Synchronous off");
    // It landed where it was dropped.
    let drawn = gui.rect_of(&format!("Activity {}", added.name));
    assert!(drawn.expand(30.0).contains(spot), "{drawn:?} does not hold {spot:?}");
}
