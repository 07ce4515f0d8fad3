//! The canvas: activities as boxes listing their events, lines as arrows, and
//! every mouse gesture on them (drop templates, drag events, move, connect,
//! select, pan, zoom).
//!
//! Drawing is done with egui's `Painter` from the draft each frame; only what
//! is visible is drawn or made interactive, so a process of hundreds of
//! activities stays smooth. The canvas never edits the draft itself: it returns
//! [`Action`]s that the designer applies after the frame, each as one undo step.

use egui::{
    Align2, Color32, CornerRadius, CursorIcon, FontId, Key, Pos2, Rect, Response, Sense, Shape, Stroke, StrokeKind,
    TextureId, Ui, Vec2, epaint::CubicBezierShape, pos2, vec2,
};

use crate::gui::designer::layout::{LabelPlacer, bezier_point, curve_samples, label_leader, line_curves};
use crate::gui::designer::palette::TemplateIcon;
use crate::gui::designer::{Designer, Element};
use crate::gui::theme::{self, size};
use crate::model::{ActivityDraft, EventDraft, LineDraft, Position, ProcessDraft};

/// Pan and zoom of the canvas.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct View {
    pub pan: Vec2,
    pub zoom: f32,
}

impl Default for View {
    fn default() -> Self {
        View { pan: vec2(40.0, 40.0), zoom: 1.0 }
    }
}

pub const MIN_ZOOM: f32 = 0.2;
pub const MAX_ZOOM: f32 = 3.0;

impl View {
    pub fn to_screen(&self, origin: Pos2, p: Pos2) -> Pos2 {
        origin + self.pan + p.to_vec2() * self.zoom
    }

    pub fn to_canvas(&self, origin: Pos2, s: Pos2) -> Pos2 {
        ((s - origin - self.pan) / self.zoom).to_pos2()
    }

    pub fn rect_to_screen(&self, origin: Pos2, r: Rect) -> Rect {
        Rect::from_min_max(self.to_screen(origin, r.min), self.to_screen(origin, r.max))
    }

    /// Zooms by `factor` keeping the canvas point under `anchor` (screen) still.
    /// Pans by a drag of `response` and, while it is hovered, zooms by
    /// pinch or Ctrl+wheel around the pointer or pans by the wheel: the
    /// read-only diagrams' (View Flow, the overview's) navigation.
    pub fn follow_pointer(&mut self, ui: &egui::Ui, response: &egui::Response, origin: Pos2) {
        if response.dragged() {
            self.pan += response.drag_delta();
        }
        if response.hovered() {
            let (scroll, zoom) = ui.input(|i| (i.smooth_scroll_delta, i.zoom_delta()));
            if zoom != 1.0
                && let Some(p) = ui.ctx().pointer_interact_pos()
            {
                self.zoom_around(origin, p, zoom);
            } else {
                self.pan += scroll;
            }
        }
    }

    pub fn zoom_around(&mut self, origin: Pos2, anchor: Pos2, factor: f32) {
        let before = self.to_canvas(origin, anchor);
        self.zoom = (self.zoom * factor).clamp(MIN_ZOOM, MAX_ZOOM);
        let after = self.to_screen(origin, before);
        self.pan += anchor - after;
    }

    /// Shows all of `bounds` (canvas units) inside `screen` with a margin.
    pub fn fit(&mut self, screen: Rect, bounds: Rect) {
        if !bounds.is_positive() {
            *self = View::default();
            return;
        }
        let margin = 40.0;
        let available = (screen.size() - vec2(2.0 * margin, 2.0 * margin)).max(vec2(50.0, 50.0));
        self.zoom = (available.x / bounds.width()).min(available.y / bounds.height()).clamp(MIN_ZOOM, 1.5);
        let content = bounds.size() * self.zoom;
        self.pan = (screen.size() - content) / 2.0 - bounds.min.to_vec2() * self.zoom;
    }
}

/// Payload of a template dragged from the palette (its index in `TEMPLATES`).
#[derive(Debug, Clone, Copy)]
pub struct TemplatePayload(pub usize);

/// Payload of an event dragged out of an activity.
#[derive(Debug, Clone)]
pub struct EventPayload {
    pub activity: String,
    pub index: usize,
}

/// Why a Wait event's Synchronous toggle cannot be switched on.
pub const WAIT_SYNCHRONOUS_REASON: &str = "A Wait event always waits: it completes when its time comes.";

/// What the user did on the canvas this frame.
#[derive(Debug, Clone)]
pub enum Action {
    Select(Vec<Element>),
    /// Shift-click: add or remove one element.
    ToggleSelect(Element),
    AddActivity {
        at: Position,
        template: usize,
    },
    AppendEvent {
        activity: String,
        template: usize,
    },
    MoveEvent {
        from: (String, usize),
        to: (String, usize),
    },
    /// Positions of activities during a drag (one undo step per drag).
    MoveActivities(Vec<(String, Position)>),
    EndMove,
    Connect {
        from: String,
        to: String,
    },
    ToggleSynchronous {
        activity: String,
        index: usize,
    },
    SetStart(String),
    Delete(Vec<Element>),
    Copy,
    Paste,
}

/// An ongoing mouse gesture that spans frames.
#[derive(Debug, Clone, Default)]
pub enum Gesture {
    #[default]
    None,
    Moving {
        /// Canvas point under the pointer when the drag started.
        grab: Pos2,
        starts: Vec<(String, Position)>,
    },
    Connecting {
        from: String,
    },
    RubberBand {
        start: Pos2,
    },
}

// ----- geometry (canvas units) -------------------------------------------------

pub fn activity_rect(activity: &ActivityDraft) -> Rect {
    let rows = activity.events.len().max(1) as f32;
    Rect::from_min_size(
        pos2(activity.position.x, activity.position.y),
        vec2(size::ACTIVITY_WIDTH, size::HEADER + rows * size::EVENT_ROW + size::BODY_PADDING),
    )
}

pub fn event_row_rect(activity: &ActivityDraft, index: usize) -> Rect {
    let top = activity.position.y + size::HEADER + index as f32 * size::EVENT_ROW;
    Rect::from_min_size(
        pos2(activity.position.x + 6.0, top + 2.0),
        vec2(size::ACTIVITY_WIDTH - 12.0, size::EVENT_ROW - 4.0),
    )
}

pub fn handle_center(activity: &ActivityDraft) -> Pos2 {
    let rect = activity_rect(activity);
    pos2(rect.right(), rect.top() + size::HEADER / 2.0)
}

/// The bounding box of every activity, in canvas units.
pub fn bounds(draft: &ProcessDraft) -> Rect {
    draft.activities.iter().map(activity_rect).fold(Rect::NOTHING, |acc, r| acc.union(r))
}

/// Distance from `point` to the curve, sampled; good enough for picking.
fn distance_to_curve(curve: &[Pos2; 4], point: Pos2) -> f32 {
    let samples: Vec<Pos2> = curve_samples(curve).collect();
    samples
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0], w[1]);
            let ab = b - a;
            let t = ((point - a).dot(ab) / ab.length_sq().max(1e-6)).clamp(0.0, 1.0);
            (a + ab * t).distance(point)
        })
        .fold(f32::INFINITY, f32::min)
}

pub fn snap(p: Pos2, on: bool) -> Position {
    if on {
        Position { x: (p.x / size::GRID).round() * size::GRID, y: (p.y / size::GRID).round() * size::GRID }
    } else {
        Position { x: p.x, y: p.y }
    }
}

/// The event index a drop at canvas `y` would insert at.
fn insert_index(activity: &ActivityDraft, y: f32) -> usize {
    let first_row = activity.position.y + size::HEADER;
    (((y - first_row) / size::EVENT_ROW) + 0.5).floor().clamp(0.0, activity.events.len() as f32) as usize
}

/// Textures for the event icons, loaded once by the app.
#[derive(Clone, Copy)]
pub struct Icons {
    pub server_event: TextureId,
    pub async_server_event: TextureId,
    pub http_request: TextureId,
}

impl Icons {
    /// The template's texture; `None` for one drawn as shapes ([`paint_clock`]).
    pub fn for_template(&self, icon: TemplateIcon) -> Option<TextureId> {
        match icon {
            TemplateIcon::ServerEvent => Some(self.server_event),
            TemplateIcon::AsyncServerEvent => Some(self.async_server_event),
            TemplateIcon::HttpRequest => Some(self.http_request),
            TemplateIcon::Timer | TemplateIcon::Mail | TemplateIcon::SubProcess => None,
        }
    }
}

/// The icon of a template drawn as shapes rather than a texture (those
/// [`Icons::for_template`] has none for), filling `rect`.
pub(crate) fn paint_drawn_icon(painter: &egui::Painter, icon: TemplateIcon, rect: Rect) {
    match icon {
        TemplateIcon::Mail => paint_envelope(painter, rect, theme::MAIL, Color32::WHITE),
        TemplateIcon::SubProcess => paint_subprocess(painter, rect.shrink(2.0), 1.4),
        TemplateIcon::Timer
        | TemplateIcon::ServerEvent
        | TemplateIcon::AsyncServerEvent
        | TemplateIcon::HttpRequest => {
            paint_clock(painter, rect.center(), rect.width().min(rect.height()) * 0.45, theme::TIMER, Color32::WHITE)
        }
    }
}

/// An envelope on a rounded square: mail events wear it.
pub(crate) fn paint_envelope(painter: &egui::Painter, rect: Rect, face: Color32, lines: Color32) {
    painter.rect_filled(rect, CornerRadius::same(3), face);
    let letter = rect.shrink2(vec2(rect.width() * 0.18, rect.height() * 0.28));
    let stroke = Stroke::new((rect.width() / 14.0).max(1.0), lines);
    painter.rect_stroke(letter, CornerRadius::ZERO, stroke, StrokeKind::Inside);
    let fold = pos2(letter.center().x, letter.top() + letter.height() * 0.55);
    painter.line_segment([letter.left_top(), fold], stroke);
    painter.line_segment([fold, letter.right_top()], stroke);
}

/// A clock face: a filled disc, its rim and two hands (ten past twelve).
/// Timer events, their badges and activities with escalations wear it.
pub(crate) fn paint_clock(painter: &egui::Painter, center: Pos2, radius: f32, face: Color32, hands: Color32) {
    let width = (radius / 5.0).max(1.0);
    painter.circle(center, radius, face, Stroke::new(width, hands));
    painter.line_segment([center, center + vec2(0.0, -radius * 0.7)], Stroke::new(width, hands));
    painter.line_segment([center, center + vec2(radius * 0.55, radius * 0.1)], Stroke::new(width, hands));
}

/// What a timer's badge and accessible label say about when it falls due.
fn due_words(after: &str, at_field: &str) -> String {
    if at_field.trim().is_empty() { after.trim().to_owned() } else { format!("until {}", at_field.trim()) }
}

// ----- the canvas widget ----------------------------------------------------------

/// Draws the canvas and returns what the user did.
pub fn canvas_ui(designer: &mut Designer, ui: &mut Ui, icons: Option<&Icons>) -> Vec<Action> {
    let mut actions = Vec::new();
    let (screen, background) = ui.allocate_exact_size(ui.available_size(), Sense::click_and_drag());
    let origin = screen.min;
    designer.canvas_rect = screen;
    let painter = ui.painter_at(screen);
    painter.rect_filled(screen, CornerRadius::ZERO, theme::CANVAS_BACKGROUND);

    if designer.fit_requested {
        designer.fit_requested = false;
        designer.fit_frames = 3;
    }
    if designer.fit_frames > 0 {
        designer.fit_frames -= 1;
        designer.view.fit(screen, bounds(designer.doc.draft()));
    }
    let view = designer.view;
    draw_grid(&painter, screen, &view, origin);

    let draft = designer.doc.draft();
    let pointer = ui.ctx().pointer_interact_pos();
    let pointer_canvas = pointer.map(|p| view.to_canvas(origin, p));
    // Where the button went down: a drag only starts once the pointer has
    // moved a little, and what is dragged must follow from the press.
    let press_canvas = ui.input(|i| i.pointer.press_origin()).map(|p| view.to_canvas(origin, p));
    let shift = ui.input(|i| i.modifiers.shift);

    // Which activity is under the pointer (topmost = last drawn).
    let hovered_activity = pointer_canvas
        .and_then(|p| draft.activities.iter().rev().find(|a| activity_rect(a).contains(p)).map(|a| a.id.clone()));

    // Elements with errors get a red mark, so problems are visible where they are.
    let flagged: Vec<Element> = designer
        .doc
        .known_problems()
        .iter()
        .filter(|p| p.severity == crate::model::Severity::Error)
        .filter_map(|p| Element::from_location(&p.location))
        .collect();

    // --- boxes ---
    let dragging_payload = egui::DragAndDrop::has_any_payload(ui.ctx());
    let mut activity_responses: Vec<(usize, Response)> = Vec::new();
    let mut row_responses: Vec<(usize, usize, Response)> = Vec::new();
    let mut handle_responses: Vec<(usize, Response)> = Vec::new();
    // What line labels must not cover, in canvas units: every box (drawn or
    // not, so labels do not move as the view pans) and the badges on them.
    let mut label_obstacles: Vec<Rect> = draft.activities.iter().map(activity_rect).collect();
    for (index, activity) in draft.activities.iter().enumerate() {
        let rect = view.rect_to_screen(origin, activity_rect(activity));
        if !rect.expand(12.0).intersects(screen) {
            continue;
        }
        let selected = designer.selection.contains(&Element::Activity(activity.id.clone()));
        let drop_target = dragging_payload && hovered_activity.as_deref() == Some(activity.id.as_str());
        draw_activity(&painter, activity, rect, view.zoom, selected, drop_target, &designer.selection, icons);
        let mut has_error = flagged.contains(&Element::Activity(activity.id.clone()));
        for event_index in 0..activity.events.len() {
            if flagged.contains(&Element::Event { activity: activity.id.clone(), index: event_index }) {
                has_error = true;
                let row = view.rect_to_screen(origin, event_row_rect(activity, event_index));
                painter.rect_stroke(row, CornerRadius::same(4), Stroke::new(1.5, theme::ERROR), StrokeKind::Inside);
            }
        }
        if has_error {
            let badge = rect.left_top();
            let radius = 8.0 * view.zoom.max(0.6);
            label_obstacles
                .push(Rect::from_center_size(view.to_canvas(origin, badge), Vec2::splat(2.0 * radius / view.zoom)));
            painter.circle_filled(badge, radius, theme::ERROR);
            painter.text(
                badge,
                Align2::CENTER_CENTER,
                "!",
                FontId::proportional(11.0 * view.zoom.max(0.6)),
                Color32::WHITE,
            );
        }

        let id = ui.make_persistent_id(("activity", &activity.id));
        let response = ui.interact(rect, id, Sense::click_and_drag());
        // Zoomed far out, rows and handles are too small to aim at: the box
        // alone is interactive, which also keeps big processes fast.
        let detailed = view.zoom >= 0.35;
        // The clock in the header says "escalations"; the label names them.
        let label = if activity.escalations.is_empty() {
            format!("Activity {}", activity.name)
        } else {
            let names: Vec<&str> = activity.escalations.iter().map(|e| e.name.as_str()).collect();
            format!("Activity {} (escalations: {})", activity.name, names.join(", "))
        };
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::GenericContainer, true, &label));
        activity_responses.push((index, response));
        for event_index in (0..activity.events.len()).filter(|_| detailed) {
            let row = view.rect_to_screen(origin, event_row_rect(activity, event_index));
            let row_id = ui.make_persistent_id(("event", &activity.id, event_index));
            let response = ui.interact(row, row_id, Sense::click_and_drag());
            // The accessible label says what the badge shows: whether it waits.
            let event = &activity.events[event_index];
            let label = match (event, event.synchronous()) {
                (EventDraft::ServerEvent(_), true) => format!("Event {}", event.name()),
                (EventDraft::ServerEvent(_), false) => format!("Event {} (waits for a callback)", event.name()),
                (EventDraft::HttpRequest(_), true) => format!("Event {} (HTTP request)", event.name()),
                (EventDraft::HttpRequest(_), false) => {
                    format!("Event {} (HTTP request, waits for a callback)", event.name())
                }
                (EventDraft::Timer(timer), _) => {
                    format!("Event {} (timer, waits {})", event.name(), due_words(&timer.after, &timer.at_field))
                }
                (EventDraft::Mail(mail), _) => format!("Event {} (mail to {})", event.name(), mail.to.trim()),
                (EventDraft::Ipc(ipc), _) => format!("Event {} (sub-process, {})", event.name(), ipc.words()),
            };
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ListItem, true, &label));
            row_responses.push((index, event_index, response));
        }
        if !detailed {
            continue;
        }
        let handle = view.to_screen(origin, handle_center(activity));
        let handle_rect =
            Rect::from_center_size(handle, Vec2::splat(size::HANDLE_RADIUS * 2.0 * view.zoom.max(0.8) + 4.0));
        let response = ui
            .interact(handle_rect, ui.make_persistent_id(("handle", &activity.id)), Sense::drag())
            .on_hover_cursor(CursorIcon::Crosshair);
        let label = format!("Connect {}", activity.name);
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, label.clone()));
        handle_responses.push((index, response));
    }

    // --- lines, over the boxes so none is ever hidden; labels beside them ---
    let mut hovered_line = None;
    let mut labels = LabelPlacer::new(label_obstacles);
    // Drawn after every line, so that no line crosses a label.
    let mut label_shapes = Vec::new();
    for (index, (line, curve)) in draft.lines.iter().zip(line_curves(draft)).enumerate() {
        let Some(curve) = curve else { continue };
        let screen_curve = curve.map(|p| view.to_screen(origin, p));
        let reach = Rect::from_points(&screen_curve).expand(20.0);
        if !reach.intersects(screen) {
            continue;
        }
        let selected = designer.selection.contains(&Element::Line(index));
        let stroke = line_stroke(selected, flagged.contains(&Element::Line(index)), view.zoom);
        draw_line(&painter, &screen_curve, stroke, view.zoom);
        let mut on_label = false;
        if let Some(text) = line_text(line)
            && view.zoom >= 0.45
        {
            let color = if line.rule.trim().is_empty() { theme::ACTIVITY_TEXT } else { theme::LINE_RULE_TEXT };
            let galley = painter.layout_no_wrap(text, FontId::proportional(size::SMALL_FONT * view.zoom), color);
            let label = labels.place(&curve, (galley.size() + LABEL_PADDING * 2.0) / view.zoom);
            let leader = label_leader(&curve, label)
                .map(|(on_line, on_label)| [view.to_screen(origin, on_line), view.to_screen(origin, on_label)]);
            let label = view.rect_to_screen(origin, label);
            on_label = pointer.is_some_and(|p| label.contains(p));
            label_shapes.push((galley, label, leader, stroke.color, color));
        }
        if let Some(p) = pointer
            && hovered_line.is_none()
            && (on_label || reach.contains(p) && distance_to_curve(&screen_curve, p) < 6.0)
        {
            hovered_line = Some(index);
        }
    }
    for (galley, rect, leader, line_color, text_color) in label_shapes {
        draw_label(&painter, galley, rect, leader, line_color, text_color);
    }

    for (index, _) in &handle_responses {
        let activity = &draft.activities[*index];
        let center = view.to_screen(origin, handle_center(activity));
        painter.circle(
            center,
            size::HANDLE_RADIUS * view.zoom.max(0.6),
            Color32::WHITE,
            Stroke::new(1.5, theme::SELECTION),
        );
    }

    // --- gestures ---
    // Connecting: drag from a handle to another activity.
    for (index, response) in &handle_responses {
        if response.drag_started() {
            designer.gesture = Gesture::Connecting { from: draft.activities[*index].id.clone() };
        }
    }
    if let Gesture::Connecting { from } = &designer.gesture {
        if let (Some(source), Some(p)) = (draft.activity(from), pointer) {
            let start = view.to_screen(origin, handle_center(source));
            let stroke = Stroke::new(2.0, theme::SELECTION);
            let points = [start, start + vec2(60.0, 0.0), p - vec2(60.0, 0.0), p];
            painter.add(CubicBezierShape::from_points_stroke(points, false, Color32::TRANSPARENT, stroke));
        }
        if ui.input(|i| i.pointer.any_released()) {
            if let Some(target) = &hovered_activity
                && target != from
            {
                actions.push(Action::Connect { from: from.clone(), to: target.clone() });
            }
            designer.gesture = Gesture::None;
        }
    }

    // Events: click selects, right-click offers a menu, drag moves or reorders.
    for (activity_index, event_index, response) in &row_responses {
        let activity = &draft.activities[*activity_index];
        let element = Element::Event { activity: activity.id.clone(), index: *event_index };
        if response.clicked() {
            actions.push(if shift {
                Action::ToggleSelect(element.clone())
            } else {
                Action::Select(vec![element.clone()])
            });
        }
        if response.drag_started() {
            response.dnd_set_drag_payload(EventPayload { activity: activity.id.clone(), index: *event_index });
        }
        // The event's own Synchronous property (an IPC event's means "wait").
        let synchronous = match &activity.events[*event_index] {
            EventDraft::Ipc(ipc) => ipc.synchronous,
            event => event.synchronous(),
        };
        // A mail event cannot wait and a Wait event always does: their
        // toggle is shown disabled, with why.
        let fixed = match &activity.events[*event_index] {
            EventDraft::Mail(_) => Some(crate::gui::designer::mail_editor::SYNCHRONOUS_REASON),
            EventDraft::Timer(_) => Some(WAIT_SYNCHRONOUS_REASON),
            _ => None,
        };
        response.context_menu(|ui| {
            let mut checked = synchronous;
            let toggle = ui.add_enabled(fixed.is_none(), egui::Checkbox::new(&mut checked, "Synchronous"));
            let toggle = match fixed {
                Some(reason) => toggle.on_disabled_hover_text(reason),
                None => toggle,
            };
            if toggle.clicked() {
                actions.push(Action::ToggleSynchronous { activity: activity.id.clone(), index: *event_index });
                ui.close();
            }
            if ui.button("Delete event").clicked() {
                actions.push(Action::Delete(vec![element.clone()]));
                ui.close();
            }
        });
    }

    // Activities: click selects, drag moves the selection, right-click menu.
    for (index, response) in &activity_responses {
        let activity = &draft.activities[*index];
        let element = Element::Activity(activity.id.clone());
        if response.clicked() {
            actions.push(if shift {
                Action::ToggleSelect(element.clone())
            } else {
                Action::Select(vec![element.clone()])
            });
        }
        if response.drag_started()
            && let Some(grab) = press_canvas
        {
            let mut moving: Vec<String> = designer
                .selection
                .iter()
                .filter_map(|e| match e {
                    Element::Activity(id) => Some(id.clone()),
                    _ => None,
                })
                .collect();
            if !moving.contains(&activity.id) {
                moving = vec![activity.id.clone()];
                actions.push(Action::Select(vec![element.clone()]));
            }
            let starts = draft
                .activities
                .iter()
                .filter(|a| moving.contains(&a.id))
                .map(|a| (a.id.clone(), a.position))
                .collect();
            designer.gesture = Gesture::Moving { grab, starts };
        }
        response.context_menu(|ui| {
            if ui.add_enabled(!activity.start, egui::Button::new("Set as start")).clicked() {
                actions.push(Action::SetStart(activity.id.clone()));
                ui.close();
            }
            if ui.button("Copy").clicked() {
                actions.push(Action::Select(vec![element.clone()]));
                actions.push(Action::Copy);
                ui.close();
            }
            if ui.button("Delete activity").clicked() {
                actions.push(Action::Delete(vec![element.clone()]));
                ui.close();
            }
        });
    }
    if let Gesture::Moving { grab, starts } = &designer.gesture {
        if let Some(p) = pointer_canvas {
            let delta = p - *grab;
            if delta != Vec2::ZERO {
                let moves = starts
                    .iter()
                    .map(|(id, start)| (id.clone(), snap(pos2(start.x + delta.x, start.y + delta.y), designer.snap)))
                    .collect();
                actions.push(Action::MoveActivities(moves));
            }
        }
        if ui.input(|i| !i.pointer.any_down()) {
            actions.push(Action::EndMove);
            designer.gesture = Gesture::None;
        }
    }

    // Drops from the palette or of a dragged event.
    let released = ui.input(|i| i.pointer.any_released());
    if released
        && let Some(p) = pointer
        && screen.contains(p)
    {
        let at = view.to_canvas(origin, p);
        // `take_payload` drops a payload of another type too: look first.
        if let Some(template) = egui::DragAndDrop::payload::<TemplatePayload>(ui.ctx()) {
            egui::DragAndDrop::clear_payload(ui.ctx());
            match &hovered_activity {
                Some(activity) => {
                    actions.push(Action::AppendEvent { activity: activity.clone(), template: template.0 })
                }
                None => {
                    let top_left = pos2(at.x - size::ACTIVITY_WIDTH / 2.0, at.y - size::HEADER / 2.0);
                    actions.push(Action::AddActivity { at: snap(top_left, designer.snap), template: template.0 });
                }
            }
        }
        if let Some(event) = egui::DragAndDrop::take_payload::<EventPayload>(ui.ctx())
            && let Some(target) = hovered_activity.as_ref().and_then(|id| draft.activity(id))
        {
            let index = insert_index(target, at.y);
            actions.push(Action::MoveEvent {
                from: (event.activity.clone(), event.index),
                to: (target.id.clone(), index),
            });
        }
    }

    // Background: click selects a line or clears; drag pans; shift-drag selects.
    if background.clicked() {
        match hovered_line {
            Some(line) if shift => actions.push(Action::ToggleSelect(Element::Line(line))),
            Some(line) => actions.push(Action::Select(vec![Element::Line(line)])),
            None if !shift => actions.push(Action::Select(Vec::new())),
            None => {}
        }
    }
    if let Some(line) = hovered_line {
        background.context_menu(|ui| {
            if ui.button("Delete line").clicked() {
                actions.push(Action::Delete(vec![Element::Line(line)]));
                ui.close();
            }
        });
    }
    if background.drag_started()
        && shift
        && let Some(start) = press_canvas
    {
        designer.gesture = Gesture::RubberBand { start };
    }
    match &designer.gesture {
        Gesture::RubberBand { start } => {
            if let Some(p) = pointer_canvas {
                let band = Rect::from_two_pos(*start, p);
                let screen_band = view.rect_to_screen(origin, band);
                painter.rect(
                    screen_band,
                    CornerRadius::ZERO,
                    theme::SELECTION_FILL,
                    Stroke::new(1.0, theme::SELECTION),
                    StrokeKind::Inside,
                );
                if background.drag_stopped() || ui.input(|i| !i.pointer.any_down()) {
                    let picked: Vec<Element> = draft
                        .activities
                        .iter()
                        .filter(|a| band.intersects(activity_rect(a)))
                        .map(|a| Element::Activity(a.id.clone()))
                        .collect();
                    let mut selection = designer.selection.clone();
                    for element in picked {
                        if !selection.contains(&element) {
                            selection.push(element);
                        }
                    }
                    actions.push(Action::Select(selection));
                    designer.gesture = Gesture::None;
                }
            }
        }
        Gesture::None if background.dragged() => {
            designer.fit_frames = 0;
            designer.view.pan += background.drag_delta();
            ui.ctx().set_cursor_icon(CursorIcon::Grabbing);
        }
        _ => {}
    }

    // Wheel: scroll pans, Ctrl+wheel (or pinch) zooms around the pointer.
    if background.hovered() || activity_responses.iter().any(|(_, r)| r.hovered()) {
        let (scroll, zoom) = ui.input(|i| (i.smooth_scroll_delta, i.zoom_delta()));
        if zoom != 1.0
            && let Some(p) = pointer
        {
            designer.fit_frames = 0;
            designer.view.zoom_around(origin, p, zoom);
        } else if scroll != Vec2::ZERO {
            designer.fit_frames = 0;
            designer.view.pan += scroll;
        }
    }

    // Keyboard, unless a text field has the focus.
    if !ui.ctx().egui_wants_keyboard_input() {
        if ui.input(|i| i.key_pressed(Key::Delete) || i.key_pressed(Key::Backspace)) && !designer.selection.is_empty() {
            actions.push(Action::Delete(designer.selection.clone()));
        }
        let (copy, paste) = ui.input(|i| {
            let copy = i.events.iter().any(|e| matches!(e, egui::Event::Copy));
            let paste = i.events.iter().any(|e| matches!(e, egui::Event::Paste(_)))
                || i.modifiers.command && i.key_pressed(Key::V);
            (copy, paste)
        });
        if copy {
            actions.push(Action::Copy);
        }
        if paste {
            actions.push(Action::Paste);
        }
    }
    actions
}

fn draw_grid(painter: &egui::Painter, screen: Rect, view: &View, origin: Pos2) {
    // Zoomed out, a coarser grid: the same look with far fewer dots to draw.
    let coarseness = if view.zoom < 0.3 {
        8.0
    } else if view.zoom < 0.5 {
        4.0
    } else {
        1.0
    };
    let step = size::GRID * view.zoom * coarseness;
    if step < 12.0 {
        return;
    }
    let first = view.to_screen(origin, Pos2::ZERO);
    let start_x = screen.left() + (first.x - screen.left()).rem_euclid(step);
    let start_y = screen.top() + (first.y - screen.top()).rem_euclid(step);
    let mut shapes = Vec::new();
    let mut y = start_y;
    while y < screen.bottom() {
        let mut x = start_x;
        while x < screen.right() {
            shapes.push(Shape::rect_filled(
                Rect::from_center_size(pos2(x, y), Vec2::splat(1.5)),
                CornerRadius::ZERO,
                theme::GRID_DOT,
            ));
            x += step;
        }
        y += step;
    }
    painter.extend(shapes);
}

#[allow(clippy::too_many_arguments)]
fn draw_activity(
    painter: &egui::Painter,
    activity: &ActivityDraft,
    rect: Rect,
    zoom: f32,
    selected: bool,
    drop_target: bool,
    selection: &[Element],
    icons: Option<&Icons>,
) {
    let radius = CornerRadius::same((6.0 * zoom).round().clamp(1.0, 255.0) as u8);
    let border = if drop_target {
        Stroke::new(2.5, theme::DROP_TARGET)
    } else if selected {
        Stroke::new(2.5, theme::SELECTION)
    } else {
        Stroke::new(1.0, theme::ACTIVITY_BORDER)
    };
    painter.rect(rect, radius, theme::ACTIVITY_FILL, border, StrokeKind::Inside);
    let header = Rect::from_min_size(rect.min, vec2(rect.width(), size::HEADER * zoom));
    painter.rect_filled(header.shrink(1.0), CornerRadius { sw: 0, se: 0, ..radius }, theme::ACTIVITY_HEADER);
    if activity.start {
        let stripe = Rect::from_min_size(rect.min, vec2(5.0 * zoom, rect.height()));
        painter.rect_filled(stripe, CornerRadius { ne: 0, se: 0, ..radius }, theme::START_MARK);
    }
    if zoom < 0.35 {
        return; // too small to read: boxes only
    }
    let font = FontId::proportional(size::FONT * zoom);
    let small = FontId::proportional(size::SMALL_FONT * zoom);
    let text_left = rect.left() + 12.0 * zoom;
    let escalates = !activity.escalations.is_empty();
    let title_width = rect.width()
        - 24.0 * zoom
        - if activity.start { 44.0 * zoom } else { 0.0 }
        - if escalates { 20.0 * zoom } else { 0.0 };
    let title = elide(painter, &activity.name, &font, title_width);
    painter.text(pos2(text_left, header.center().y), Align2::LEFT_CENTER, title, font.clone(), theme::ACTIVITY_TEXT);
    // The connection handle sits on the header's right edge, and zoomed out
    // it shrinks less than the box: marks keep clear of it.
    let clear = (12.0 * zoom).max(size::HANDLE_RADIUS * zoom.max(0.6) + 4.0);
    if activity.start {
        painter.text(
            pos2(header.right() - clear, header.center().y),
            Align2::RIGHT_CENTER,
            "START",
            small.clone(),
            theme::START_MARK,
        );
    }
    if escalates {
        let right = header.right() - clear - if activity.start { 44.0 * zoom } else { 0.0 };
        let center = pos2(right - 7.0 * zoom, header.center().y);
        paint_clock(painter, center, 7.0 * zoom, theme::TIMER, Color32::WHITE);
    }
    if activity.events.is_empty() {
        let y = rect.top() + (size::HEADER + size::EVENT_ROW / 2.0) * zoom;
        painter.text(pos2(text_left, y), Align2::LEFT_CENTER, "drop an event here", small, theme::ACTIVITY_BORDER);
        return;
    }
    for (index, event) in activity.events.iter().enumerate() {
        let synchronous = event.synchronous();
        let is_http = matches!(event, EventDraft::HttpRequest(_));
        // A mail's badge says in words what it does, as "waits" does; whom
        // it tells is in its accessible label and on its properties page
        // (recipients, often templates, would crowd out the event's name).
        let mail_to = match event {
            EventDraft::Mail(_) => Some("sends mail".to_owned()),
            _ => None,
        };
        let timer = match event {
            EventDraft::Timer(timer) => Some(timer),
            _ => None,
        };
        let ipc = match event {
            EventDraft::Ipc(ipc) => Some(ipc),
            _ => None,
        };
        let row = Rect::from_min_size(
            pos2(rect.left() + 6.0 * zoom, rect.top() + (size::HEADER + index as f32 * size::EVENT_ROW + 2.0) * zoom),
            vec2(rect.width() - 12.0 * zoom, (size::EVENT_ROW - 4.0) * zoom),
        );
        let event_selected = selection.contains(&Element::Event { activity: activity.id.clone(), index });
        let (accent, fill) = if timer.is_some() {
            (theme::TIMER, theme::TIMER_ROW_FILL)
        } else if ipc.is_some() {
            (theme::IPC_EVENT, theme::IPC_ROW_FILL)
        } else if synchronous {
            (theme::SYNC_EVENT, Color32::TRANSPARENT)
        } else {
            (theme::ASYNC_EVENT, theme::ASYNC_ROW_FILL)
        };
        let row_stroke = if event_selected { Stroke::new(2.0, theme::SELECTION) } else { Stroke::NONE };
        painter.rect(row, CornerRadius::same(4), fill, row_stroke, StrokeKind::Inside);
        let icon_rect =
            Rect::from_center_size(pos2(row.left() + 10.0 * zoom, row.center().y), Vec2::splat(14.0 * zoom));
        match icons {
            _ if timer.is_some() => paint_clock(painter, icon_rect.center(), 6.0 * zoom, theme::TIMER, Color32::WHITE),
            _ if mail_to.is_some() => paint_envelope(painter, icon_rect, theme::MAIL, Color32::WHITE),
            _ if ipc.is_some() => paint_subprocess(painter, icon_rect, zoom),
            Some(icons) if is_http => {
                let rect = Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0));
                painter.image(icons.http_request, icon_rect, rect, Color32::WHITE);
            }
            // Without textures (tests) the request's icon is drawn: an arrow
            // leaving a square, told apart from a script by shape, not only colour.
            None if is_http => {
                painter.rect_filled(icon_rect, CornerRadius::same(3), theme::HTTP_EVENT);
                let arrow_stroke = Stroke::new(1.5 * zoom.max(0.6), Color32::WHITE);
                let start = icon_rect.left_bottom() + vec2(3.5, -3.5) * zoom;
                painter.arrow(start, vec2(7.0, -7.0) * zoom, arrow_stroke);
            }
            Some(icons) => {
                let texture = if synchronous { icons.server_event } else { icons.async_server_event };
                painter.image(texture, icon_rect, Rect::from_min_max(Pos2::ZERO, pos2(1.0, 1.0)), Color32::WHITE);
            }
            None => {
                painter.circle_filled(icon_rect.center(), 5.0 * zoom, accent);
            }
        }
        // A timer's badge says when, and widens for it up to half the row;
        // an IPC event's says in words whether the parent waits.
        let when = timer.map(|t| due_words(&t.after, &t.at_field));
        let ipc_words = ipc.map(|ipc| ipc.words());
        let badge_width = match (&when, &mail_to, ipc_words) {
            (_, Some(to), _) => {
                let text = painter.layout_no_wrap(to.clone(), small.clone(), Color32::WHITE).size().x;
                (text + 18.0 * zoom).clamp(40.0 * zoom, row.width() * 0.5)
            }
            (_, _, Some(words)) => {
                let text = painter.layout_no_wrap(words.to_owned(), small.clone(), Color32::WHITE).size().x;
                (text + 12.0 * zoom).clamp(52.0 * zoom, row.width() * 0.5)
            }
            _ if synchronous => 0.0,
            (Some(when), None, None) => {
                let text = painter.layout_no_wrap(when.clone(), small.clone(), Color32::WHITE).size().x;
                (text + 27.0 * zoom).clamp(52.0 * zoom, row.width() * 0.5)
            }
            (None, None, None) => 52.0 * zoom,
        };
        let name = elide(painter, event.name(), &font, row.width() - 26.0 * zoom - badge_width);
        painter.text(
            pos2(row.left() + 22.0 * zoom, row.center().y),
            Align2::LEFT_CENTER,
            name,
            font.clone(),
            theme::EVENT_TEXT,
        );
        if let Some(words) = ipc_words {
            let badge = Rect::from_min_size(
                pos2(row.right() - badge_width, row.top() + 3.0 * zoom),
                vec2(badge_width - 4.0 * zoom, row.height() - 6.0 * zoom),
            );
            painter.rect_filled(badge, CornerRadius::same(6), theme::IPC_EVENT);
            let words = elide(painter, words, &small, badge.width() - 6.0 * zoom);
            painter.text(badge.center(), Align2::CENTER_CENTER, words, small.clone(), Color32::WHITE);
        } else if !synchronous {
            let badge = Rect::from_min_size(
                pos2(row.right() - badge_width, row.top() + 3.0 * zoom),
                vec2(badge_width - 4.0 * zoom, row.height() - 6.0 * zoom),
            );
            if let Some(when) = &when {
                // A clock and when: a glance tells a timer from a callback.
                painter.rect_filled(badge, CornerRadius::same(6), theme::TIMER);
                let clock = pos2(badge.left() + 8.0 * zoom, badge.center().y);
                paint_clock(painter, clock, 4.5 * zoom, theme::TIMER, Color32::WHITE);
                let when = elide(painter, when, &small, badge.width() - 21.0 * zoom);
                painter.text(
                    pos2(badge.left() + 17.0 * zoom, badge.center().y),
                    Align2::LEFT_CENTER,
                    when,
                    small.clone(),
                    Color32::WHITE,
                );
            } else {
                painter.rect_filled(badge, CornerRadius::same(6), theme::ASYNC_EVENT);
                painter.text(badge.center(), Align2::CENTER_CENTER, "waits", small.clone(), Color32::WHITE);
            }
        } else if let Some(to) = &mail_to {
            let badge = Rect::from_min_size(
                pos2(row.right() - badge_width, row.top() + 3.0 * zoom),
                vec2(badge_width - 4.0 * zoom, row.height() - 6.0 * zoom),
            );
            painter.rect_filled(badge, CornerRadius::same(6), theme::MAIL);
            let to = elide(painter, to, &small, badge.width() - 8.0 * zoom);
            painter.text(badge.center(), Align2::CENTER_CENTER, to, small.clone(), Color32::WHITE);
        }
    }
}

/// A sub-process event's icon: a box that holds a smaller box, as BPMN
/// draws a call activity's marker, in the IPC colour.
fn paint_subprocess(painter: &egui::Painter, rect: Rect, zoom: f32) {
    painter.rect_filled(rect, CornerRadius::same(3), theme::IPC_EVENT);
    let stroke = Stroke::new(1.3 * zoom.max(0.6), Color32::WHITE);
    let inner = Rect::from_center_size(rect.center() + vec2(0.0, 1.5 * zoom), vec2(7.0, 5.0) * zoom);
    painter.rect_stroke(inner, CornerRadius::same(1), stroke, StrokeKind::Inside);
    let top = pos2(rect.center().x, rect.top() + 2.5 * zoom);
    painter.line_segment([top, pos2(top.x, inner.top())], stroke);
}

/// Inside a line's label, around its text (screen points).
pub(crate) const LABEL_PADDING: Vec2 = vec2(4.0, 2.0);

fn line_stroke(selected: bool, has_error: bool, zoom: f32) -> Stroke {
    let mut stroke = theme::line_stroke(zoom, selected);
    if has_error && !selected {
        stroke.color = theme::ERROR;
    }
    stroke
}

/// What a line's label says, if anything: its name, its rule, or both.
fn line_text(line: &LineDraft) -> Option<String> {
    match (line.label.is_empty(), line.rule.trim().is_empty()) {
        (true, true) => None,
        (false, true) => Some(line.label.clone()),
        (true, false) => Some(line.rule.clone()),
        (false, false) => Some(format!("{}: {}", line.label, line.rule)),
    }
}

fn draw_line(painter: &egui::Painter, curve: &[Pos2; 4], stroke: Stroke, zoom: f32) {
    // Flattened here with as few segments as its length on screen needs:
    // cheaper to tessellate than a Bézier shape, and as smooth.
    let length = (curve[3] - curve[0]).length() + (curve[1] - curve[0]).length() + (curve[3] - curve[2]).length();
    let segments = (length / 12.0).clamp(4.0, 32.0) as usize;
    draw_curve(painter, curve, segments, stroke, zoom);
}

/// A line along `curve` (screen points) flattened into `segments`, with its
/// arrowhead: the designer's, View Flow's and the overview diagram's lines.
pub(crate) fn draw_curve(painter: &egui::Painter, curve: &[Pos2; 4], segments: usize, stroke: Stroke, zoom: f32) {
    let points: Vec<Pos2> = (0..=segments).map(|i| bezier_point(curve, i as f32 / segments as f32)).collect();
    painter.add(Shape::line(points, stroke));
    // Arrowhead along the curve's last tangent.
    let tip = curve[3];
    let direction = (curve[3] - bezier_point(curve, 0.95)).normalized();
    let side = vec2(-direction.y, direction.x);
    let length = 10.0 * zoom.max(0.6);
    let arrow =
        vec![tip, tip - direction * length + side * length * 0.5, tip - direction * length - side * length * 0.5];
    painter.add(Shape::convex_polygon(arrow, stroke.color, Stroke::NONE));
}

/// A line's label in its place (screen points), with a dashed leader back
/// to the line when it had to move off it to stay clear of the boxes.
pub(crate) fn draw_label(
    painter: &egui::Painter,
    galley: std::sync::Arc<egui::Galley>,
    rect: Rect,
    leader: Option<[Pos2; 2]>,
    line_color: Color32,
    text_color: Color32,
) {
    if let Some(leader) = leader {
        painter.extend(Shape::dashed_line(&leader, Stroke::new(1.0, line_color), 3.0, 2.0));
    }
    painter.rect(rect, CornerRadius::same(4), theme::LINE_LABEL_FILL, Stroke::new(1.0, line_color), StrokeKind::Inside);
    painter.galley(rect.min + LABEL_PADDING, galley, text_color);
}

/// The text cut with "…" to fit `width` pixels.
pub(crate) fn elide(painter: &egui::Painter, text: &str, font: &FontId, width: f32) -> String {
    let fits = |t: &str| painter.layout_no_wrap(t.to_owned(), font.clone(), Color32::BLACK).size().x <= width;
    if fits(text) {
        return text.to_owned();
    }
    let chars: Vec<char> = text.chars().collect();
    let mut keep = chars.len();
    while keep > 0 {
        keep -= 1;
        let candidate: String = chars[..keep].iter().collect::<String>() + "…";
        if fits(&candidate) {
            return candidate;
        }
    }
    "…".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_round_trips_and_zooms_around_the_anchor() {
        let mut view = View { pan: vec2(10.0, 20.0), zoom: 1.5 };
        let origin = pos2(100.0, 50.0);
        let p = pos2(33.0, 44.0);
        assert!((view.to_canvas(origin, view.to_screen(origin, p)) - p).length() < 1e-3);
        let anchor = pos2(400.0, 300.0);
        let under = view.to_canvas(origin, anchor);
        view.zoom_around(origin, anchor, 2.0);
        assert!((view.to_canvas(origin, anchor) - under).length() < 1e-3);
    }
}
