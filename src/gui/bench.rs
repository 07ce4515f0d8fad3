//! `flowdesk bench-designer`: the designer's frame time on a large process,
//! driven headless (no window, no GPU): egui's full pass plus tessellation,
//! which is the CPU work of a frame.

use std::time::Instant;

use crate::gui::designer::Document;
use crate::gui::dialogs::ScriptedDialogs;
use crate::gui::{FlowdeskApp, GuiOptions, Settings};
use crate::model::{ActivityDraft, EventDraft, LineDraft, Position, PrecedingRule, ProcessDraft, ServerEventDraft};

/// A synthetic process: `activities` boxes on a grid, `lines` lines between
/// near neighbours, a mix of synchronous and asynchronous events.
pub fn large_process(activities: usize, lines: usize) -> ProcessDraft {
    let columns = (activities as f32).sqrt().ceil().max(1.0) as usize;
    let activity_list = (0..activities)
        .map(|i| {
            let events = (0..1 + i % 3)
                .map(|e| {
                    EventDraft::ServerEvent(ServerEventDraft {
                        name: format!("Step {e}"),
                        synchronous: (i + e) % 4 != 0,
                        script: "n += 1;".to_owned(),
                    })
                })
                .collect();
            ActivityDraft {
                id: format!("a{i}"),
                name: format!("Activity {i}"),
                position: Position { x: (i % columns) as f32 * 300.0, y: (i / columns) as f32 * 180.0 },
                start: i == 0,
                preceding_rule: PrecedingRule::Any,
                events,
                escalations: Vec::new(),
            }
        })
        .collect();
    let line_list = (0..lines)
        .map(|k| {
            let from = k % activities;
            let step = if k < activities { 1 } else { columns };
            let to = (from + step) % activities;
            LineDraft {
                from: format!("a{from}"),
                to: format!("a{to}"),
                label: String::new(),
                rule: if k % 5 == 0 { "n > 2".to_owned() } else { String::new() },
            }
        })
        .collect();
    ProcessDraft {
        name: "large".to_owned(),
        description: String::new(),
        script_time_limit_ms: None,
        time_zone: None,
        fields: vec![crate::model::FieldDraft {
            name: "n".into(),
            field_type: "integer".into(),
            default: None,
            searchable: false,
        }],
        activities: activity_list,
        lines: line_list,
    }
}

#[derive(Debug, Clone)]
pub struct FrameStats {
    pub scenario: &'static str,
    pub frames: usize,
    pub median_ms: f64,
    pub p95_ms: f64,
}

/// Runs the designer on a large process through scenarios a user would
/// (everything in view; panning at 100 %; zooming), timing every frame.
pub fn run(activities: usize, lines: usize, frames: usize) -> anyhow::Result<Vec<FrameStats>> {
    let dir = tempfile::tempdir()?;
    let options = GuiOptions {
        db_path: dir.path().join("bench.db"),
        user: "bench".to_owned(),
        file: None,
        view: crate::gui::AppView::Designer,
    };
    let mut app = FlowdeskApp::new(
        options,
        Settings { welcomed: true, ..Settings::default() },
        Box::new(ScriptedDialogs::default()),
    );
    app.designer.open(Document::new(large_process(activities, lines), None));
    let ctx = egui::Context::default();
    let screen = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1280.0, 800.0));
    let frame = |events: Vec<egui::Event>, app: &mut FlowdeskApp| -> f64 {
        let input = egui::RawInput { screen_rect: Some(screen), events, ..egui::RawInput::default() };
        let started = Instant::now();
        let mut output = ctx.run_ui(input, |ui| app.ui(ui));
        // No renderer takes the textures: dropped unapplied, they trip epaint's
        // debug assertion (a debug build of the benchmark panicked here).
        output.textures_delta.clear();
        let _meshes = ctx.tessellate(output.shapes, output.pixels_per_point);
        started.elapsed().as_secs_f64() * 1000.0
    };
    // Warm up: fonts, the fit to the whole process, validation of the draft.
    for _ in 0..5 {
        frame(Vec::new(), &mut app);
    }
    let canvas_point = egui::pos2(560.0, 380.0);
    let mut results = Vec::new();

    let mut times = Vec::new();
    for i in 0..frames {
        let wiggle = egui::pos2(canvas_point.x + (i % 20) as f32, canvas_point.y);
        times.push(frame(vec![egui::Event::PointerMoved(wiggle)], &mut app));
    }
    results.push(stats("all 500 in view, pointer moving", times));

    // At 100 %, grab the background between two boxes and pan back and forth.
    app.designer.view = crate::gui::designer::View { pan: egui::vec2(0.0, 0.0), zoom: 1.0 };
    let origin = app.designer.canvas_rect.min;
    let gap = app.designer.view.to_screen(origin, egui::pos2(255.0, 150.0));
    results.push(stats("100% zoom, dragging the background to pan", drag(&frame, &mut app, gap, frames)));
    // Grab an activity's header and move it around: the edit of every frame.
    app.designer.view = crate::gui::designer::View { pan: egui::vec2(0.0, 0.0), zoom: 1.0 };
    let header = app.designer.view.to_screen(origin, egui::pos2(400.0, 195.0));
    results.push(stats("100% zoom, dragging an activity", drag(&frame, &mut app, header, frames)));

    let mut times = Vec::new();
    for i in 0..frames {
        let zoom_in = (i / 10) % 2 == 0;
        let factor = if zoom_in { 1.05 } else { 1.0 / 1.05 };
        let event = egui::Event::Zoom(factor);
        times.push(frame(vec![egui::Event::PointerMoved(canvas_point), event], &mut app));
    }
    results.push(stats("zooming in and out", times));
    Ok(results)
}

/// Presses at `at`, moves back and forth for `frames` frames, releases.
fn drag(
    frame: &dyn Fn(Vec<egui::Event>, &mut FlowdeskApp) -> f64,
    app: &mut FlowdeskApp,
    at: egui::Pos2,
    frames: usize,
) -> Vec<f64> {
    frame(vec![egui::Event::PointerMoved(at), press(at, true)], app);
    let times = (0..frames)
        .map(|i| {
            let x = at.x + ((i % 40) as f32 - 20.0) * 4.0;
            frame(vec![egui::Event::PointerMoved(egui::pos2(x, at.y + (i % 7) as f32))], app)
        })
        .collect();
    frame(vec![press(at, false)], app);
    times
}

fn press(pos: egui::Pos2, pressed: bool) -> egui::Event {
    egui::Event::PointerButton { pos, button: egui::PointerButton::Primary, pressed, modifiers: egui::Modifiers::NONE }
}

/// The median and 95th percentile of frame times, in milliseconds.
pub(crate) fn stats(scenario: &'static str, mut times: Vec<f64>) -> FrameStats {
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times.get(((times.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(0.0);
    FrameStats { scenario, frames: times.len(), median_ms: at(0.5), p95_ms: at(0.95) }
}
