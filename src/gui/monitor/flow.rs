//! An instance's flow drawn over its process diagram, coloured as K2's View
//! Flow: completed activities green, active blue, in error red, not reached
//! plain; lines that fired green, lines evaluated false red.
//!
//! A colour means a state and nothing else: an event's dot has the colour of
//! where that event stands (done, waiting, failed, not reached), never of its
//! kind, so the legend reads the same for boxes and dots. The event that holds
//! a callback item open is marked on its own row with the item's serial, and
//! what the open item means is said in words: waiting for a callback while
//! the instance runs, staying open while it is in error or stopped (a finish
//! is then recorded and applied after Retry or Resume).
//!
//! Activities with escalations wear a clock in their header, as in the
//! designer; under each activity a card says, for the run shown, when each
//! escalation fires (or that it fired, and what it did) and when a timer
//! event completes (`due::timer_lines`), by the engine's clock.

use std::collections::HashMap;

use egui::{Align2, CornerRadius, FontId, Rect, RichText, Sense, Stroke, StrokeKind, Ui, Vec2, pos2, vec2};

use crate::engine::{ActivityRecord, ActivityStatus, ChildInstance, InstanceDetail, InstanceStatus, Millis, Serial};
use crate::gui::designer::View;
use crate::gui::designer::canvas::{LABEL_PADDING, activity_rect, bounds, draw_curve, draw_label, elide, paint_clock};
use crate::gui::designer::layout::{LabelPlacer, label_leader, line_curves};
use crate::gui::monitor::due::{TimerLine, timer_lines};
use crate::gui::theme::{self, flow, size};
use crate::model::{ActivityDraft, EventDraft};

/// How an activity, or one of its events, stands in this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    NotReached,
    Completed,
    Active,
    Error,
    Cancelled,
}

impl Reached {
    /// Every state, in the legend's order.
    pub const ALL: [Reached; 5] =
        [Reached::Completed, Reached::Active, Reached::Error, Reached::Cancelled, Reached::NotReached];

    /// The one colour of this state, for boxes, dots and the legend.
    pub fn color(self) -> egui::Color32 {
        match self {
            Reached::Completed => flow::COMPLETED,
            Reached::Active => flow::ACTIVE,
            Reached::Error => flow::ERROR,
            Reached::Cancelled => flow::CANCELLED,
            Reached::NotReached => flow::NOT_REACHED,
        }
    }

    fn fill(self) -> egui::Color32 {
        match self {
            Reached::Completed => flow::COMPLETED_FILL,
            Reached::Active => flow::ACTIVE_FILL,
            Reached::Error => flow::ERROR_FILL,
            Reached::Cancelled => flow::CANCELLED_FILL,
            Reached::NotReached => flow::NOT_REACHED_FILL,
        }
    }

    pub fn words(self) -> &'static str {
        match self {
            Reached::Completed => "completed",
            Reached::Active => "active",
            Reached::Error => "in error",
            Reached::Cancelled => "cancelled",
            Reached::NotReached => "not reached",
        }
    }
}

/// The state of each activity (by id) and line (by index) in an instance.
pub fn flow_state(detail: &InstanceDetail) -> (HashMap<String, Reached>, HashMap<usize, bool>) {
    let mut activities = HashMap::new();
    // Records come in destination order: the latest run of an activity wins,
    // except that an active or failed run anywhere is what an operator must see.
    for record in &detail.activities {
        let reached = match record.status {
            ActivityStatus::Completed => Reached::Completed,
            ActivityStatus::Active => Reached::Active,
            ActivityStatus::Cancelled => Reached::Cancelled,
        };
        let entry = activities.entry(record.activity_id.clone()).or_insert(reached);
        if !matches!(*entry, Reached::Active | Reached::Error) {
            *entry = reached;
        }
    }
    if detail.summary.status == InstanceStatus::Error
        && let Some(failure) = &detail.failure
        && let Some(record) = detail.activities.iter().find(|r| r.destination_id == failure.destination_id)
    {
        activities.insert(record.activity_id.clone(), Reached::Error);
    }
    let mut lines = HashMap::new();
    for result in &detail.lines {
        lines.insert(result.line_index, result.fired);
    }
    (activities, lines)
}

/// Where one event of an activity stands, and the callback item it holds
/// open, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMark {
    pub state: Reached,
    pub open_item: Option<Serial>,
}

/// Each event of `activity` (standing as `reached`) in this instance, in order.
///
/// Events run one after another, so the event that holds an open item (or
/// that failed) splits the list: those before it are done, those after it
/// not reached yet.
pub fn event_marks(detail: &InstanceDetail, activity: &ActivityDraft, reached: Reached) -> Vec<EventMark> {
    let mark = |state| EventMark { state, open_item: None };
    let count = activity.events.len();
    let uniform = |state| vec![mark(state); count];
    let Some(run) = shown_run(detail, activity) else {
        return uniform(Reached::NotReached);
    };
    let open: Vec<(usize, Serial)> = detail
        .pending_items
        .iter()
        .filter(|item| item.activity_destination_id == run.destination_id && item.event_index < count)
        .map(|item| (item.event_index, item.serial))
        .collect();
    let (stopped_at, state) = match reached {
        Reached::NotReached | Reached::Completed | Reached::Cancelled => return uniform(reached),
        Reached::Active => match open.iter().map(|(index, _)| *index).min() {
            Some(index) => (index, Reached::Active),
            // Running outside (a request in flight): which event is not known.
            None => return uniform(Reached::NotReached),
        },
        Reached::Error => {
            let failure = detail.failure.as_ref().filter(|f| f.destination_id == run.destination_id);
            let index = match failure {
                // A line rule failed after every event had run.
                Some(f) if f.event.is_empty() => return uniform(Reached::Completed),
                Some(f) => open
                    .iter()
                    .map(|(index, _)| *index)
                    .min()
                    .or_else(|| activity.events.iter().position(|e| e.name() == f.event)),
                None => None,
            };
            match index {
                Some(index) => (index, Reached::Error),
                None => return uniform(Reached::NotReached),
            }
        }
    };
    (0..count)
        .map(|index| {
            let open_item = open.iter().find(|(i, _)| *i == index).map(|(_, serial)| *serial);
            match index.cmp(&stopped_at) {
                std::cmp::Ordering::Less => mark(Reached::Completed),
                std::cmp::Ordering::Equal => EventMark { state, open_item },
                // A later event can only hold an item in another, parallel run.
                std::cmp::Ordering::Greater => {
                    EventMark { state: open_item.map_or(Reached::NotReached, |_| state), open_item }
                }
            }
        })
        .collect()
}

/// The run of `activity` that the flow shows (as `flow_state` does): a
/// failed or active one, else the latest; `None` when it was not reached.
pub fn shown_run<'a>(detail: &'a InstanceDetail, activity: &ActivityDraft) -> Option<&'a ActivityRecord> {
    let failed_here = |destination_id| {
        detail.summary.status == InstanceStatus::Error
            && detail.failure.as_ref().is_some_and(|f| f.destination_id == destination_id)
    };
    let runs = detail.activities.iter().filter(|r| r.activity_id == activity.id);
    runs.clone()
        .rev()
        .find(|r| r.status == ActivityStatus::Active || failed_here(r.destination_id))
        .or_else(|| runs.clone().next_back())
}

/// What an event's mark means, in words: "completed", "waiting for a
/// callback on 7_2", "in error (its callback item 7_2 stays open)".
pub fn event_words(mark: &EventMark, instance: InstanceStatus) -> String {
    match mark.open_item {
        Some(serial) => open_items_sentence(instance, &[serial.to_string()], false),
        None => mark.state.words().to_owned(),
    }
}

/// A timer event's mark in words: it waits for its timer, not a callback
/// (though a finish ends it too).
fn timer_event_words(mark: &EventMark, instance: InstanceStatus) -> String {
    match (mark.open_item, instance) {
        (Some(serial), InstanceStatus::Active | InstanceStatus::Running) => {
            format!("waiting for its timer on {serial}")
        }
        _ => event_words(mark, instance),
    }
}

/// The instance's open callback items in words, in the colour of its state:
/// it waits for them while it runs; while it is in error or stopped they only
/// stay open (a finish is recorded and applied after Retry or Resume).
pub fn open_items_words(instance: InstanceStatus, serials: &[String]) -> RichText {
    RichText::new(open_items_sentence(instance, serials, true)).color(open_items_color(instance))
}

/// What an instance waits for, in words, as [`open_items_words`] says it,
/// but "waiting for its timer" while it runs and every open item is a
/// timer event's (a timer, not a callback, ends those).
pub fn waiting_words(detail: &InstanceDetail) -> RichText {
    let serials: Vec<String> = detail.pending_items.iter().map(|item| item.serial.to_string()).collect();
    let runs = matches!(detail.summary.status, InstanceStatus::Active | InstanceStatus::Running);
    if runs && detail.pending_items.iter().all(|item| waits_for_timer(detail, item)) {
        let words = format!("Waiting for its timer on {}", serials.join(", "));
        return RichText::new(words).color(open_items_color(detail.summary.status));
    }
    if let Some(words) = runs.then(|| children_waited_for(detail, &serials)).flatten() {
        return RichText::new(words).color(open_items_color(detail.summary.status));
    }
    open_items_words(detail.summary.status, &serials)
}

/// "Waiting for child instance 12 to complete (7_2)" when every serial is
/// the wait of a sub-process event for its child (whose completion, not a
/// person, ends it); `None` otherwise.
fn children_waited_for(detail: &InstanceDetail, serials: &[String]) -> Option<String> {
    let children: Option<Vec<String>> = serials
        .iter()
        .map(|serial| {
            let child = detail.children.iter().rev().find(|child| {
                child.link.serial_id.is_some_and(|id| format!("{}_{id}", detail.summary.id) == *serial)
            })?;
            Some(child.link.instance_id.to_string())
        })
        .collect();
    let children = children.filter(|c| !c.is_empty())?;
    let noun = if children.len() == 1 { "instance" } else { "instances" };
    Some(format!("Waiting for child {noun} {} to complete ({})", children.join(", "), serials.join(", ")))
}

/// Whether `item` is the wait of a timer event.
fn waits_for_timer(detail: &InstanceDetail, item: &crate::engine::ServerItem) -> bool {
    let draft = &detail.definition.draft;
    detail
        .activities
        .iter()
        .find(|run| run.destination_id == item.activity_destination_id)
        .and_then(|run| draft.activities.iter().find(|a| a.id == run.activity_id))
        .and_then(|activity| activity.events.get(item.event_index))
        .is_some_and(|event| matches!(event, EventDraft::Timer(_)))
}

fn open_items_color(instance: InstanceStatus) -> egui::Color32 {
    match instance {
        InstanceStatus::Error => flow::ERROR,
        InstanceStatus::Stopped => flow::CANCELLED,
        _ => flow::ACTIVE,
    }
}

fn open_items_sentence(instance: InstanceStatus, serials: &[String], capital: bool) -> String {
    let list = serials.join(", ");
    let (item, stays) = if serials.len() == 1 { ("item", "stays") } else { ("items", "stay") };
    let sentence = match instance {
        InstanceStatus::Error => format!("in error (its callback {item} {list} {stays} open)"),
        InstanceStatus::Stopped => format!("stopped (its callback {item} {list} {stays} open)"),
        _ => format!("waiting for a callback on {list}"),
    };
    if capital {
        let mut chars = sentence.chars();
        chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
    } else {
        sentence
    }
}

/// One activity as this frame draws it.
struct Drawn<'a> {
    activity: &'a ActivityDraft,
    /// Screen points.
    rect: Rect,
    reached: Reached,
    events: Vec<EventMark>,
    /// The words under the box about its open items, and where they go (screen).
    badge: Option<(std::sync::Arc<egui::Galley>, Rect, egui::Color32)>,
    /// Under the badge: its escalations' and timer events' lines, laid out,
    /// and the card holding them (screen).
    timers: Option<(Vec<LaidLine>, Rect)>,
    /// Per event, the child its sub-process event started in the run shown.
    children: Vec<Option<&'a ChildInstance>>,
}

/// The child the sub-process event `index` of `activity` started in the
/// run the flow shows, if it did.
pub fn child_of<'a>(detail: &'a InstanceDetail, activity: &ActivityDraft, index: usize) -> Option<&'a ChildInstance> {
    let run = shown_run(detail, activity)?;
    detail.children.iter().rev().find(|c| c.link.destination_id == run.destination_id && c.link.event_index == index)
}

/// A child in a few words: "instance 12 · Active".
pub fn child_words(child: &ChildInstance) -> String {
    match &child.summary {
        Some(summary) => format!("instance {} · {}", child.link.instance_id, summary.status.name()),
        None => format!("instance {}", child.link.instance_id),
    }
}

/// A timer's line and its words laid out.
type LaidLine = (TimerLine, std::sync::Arc<egui::Galley>);

/// The room a timer line's clock takes before its words.
const CLOCK_ROOM: f32 = 16.0;

/// Draws the flow; returns the child instance the operator clicked on a
/// sub-process event, to open it.
pub fn flow_ui(ui: &mut Ui, detail: &InstanceDetail, now: Millis, view: &mut View, fit: &mut bool) -> Option<i64> {
    let (screen, response) = ui.allocate_exact_size(ui.available_size(), Sense::drag());
    response.widget_info(|| {
        egui::WidgetInfo::labeled(egui::Role::GenericContainer, true, format!("Flow of instance {}", detail.summary.id))
    });
    let painter = ui.painter_at(screen);
    painter.rect_filled(screen, CornerRadius::ZERO, theme::CANVAS_BACKGROUND);
    let draft = &detail.definition.draft;
    if *fit {
        view.fit(screen, bounds(draft));
        *fit = false;
    }
    view.follow_pointer(ui, &response, screen.min);
    let origin = screen.min;
    let zoom = view.zoom;
    let (activities, lines) = flow_state(detail);
    let instance = detail.summary.status;
    let small = FontId::proportional((size::SMALL_FONT * zoom).max(10.0));

    // Boxes and their badges first: line labels must stay clear of both.
    let drawn: Vec<Drawn> = draft
        .activities
        .iter()
        .map(|activity| {
            let rect = view.rect_to_screen(origin, activity_rect(activity));
            let reached = activities.get(&activity.id).copied().unwrap_or(Reached::NotReached);
            let events = event_marks(detail, activity, reached);
            let serials: Vec<String> = events.iter().filter_map(|m| m.open_item).map(|s| s.to_string()).collect();
            // A wait only a timer ends is said as such.
            let timers_only = events
                .iter()
                .zip(&activity.events)
                .all(|(mark, event)| mark.open_item.is_none() || matches!(event, EventDraft::Timer(_)));
            // Open items under their activity at any zoom, where the rows are too small to read.
            let badge = (!serials.is_empty()).then(|| {
                let words = match instance {
                    InstanceStatus::Active | InstanceStatus::Running if timers_only => {
                        format!("Waiting for its timer on {}", serials.join(", "))
                    }
                    InstanceStatus::Active | InstanceStatus::Running => children_waited_for(detail, &serials)
                        .unwrap_or_else(|| open_items_sentence(instance, &serials, true)),
                    _ => open_items_sentence(instance, &serials, true),
                };
                let galley = painter.layout_no_wrap(words, small.clone(), theme::ON_ACCENT);
                let at = pos2(rect.left(), rect.bottom() + 4.0);
                (galley.clone(), Rect::from_min_size(at, galley.size() + vec2(10.0, 4.0)), open_items_color(instance))
            });
            // When the run's escalations and timer events fire, under the badge.
            let lines = shown_run(detail, activity)
                .map(|run| timer_lines(detail, activity, run.destination_id, now))
                .unwrap_or_default();
            let timers = (!lines.is_empty()).then(|| {
                let laid: Vec<LaidLine> = lines
                    .into_iter()
                    .map(|line| {
                        let galley = painter.layout_no_wrap(line.text.clone(), small.clone(), line.standing.color());
                        (line, galley)
                    })
                    .collect();
                let width = laid.iter().map(|(_, g)| g.size().x).fold(0.0, f32::max) + CLOCK_ROOM + 10.0;
                let height: f32 = laid.iter().map(|(_, g)| g.size().y + 2.0).sum::<f32>() + 6.0;
                let top = badge.as_ref().map_or(rect.bottom() + 4.0, |(_, badge, _)| badge.bottom() + 3.0);
                (laid, Rect::from_min_size(pos2(rect.left(), top), vec2(width, height)))
            });
            let children = (0..activity.events.len()).map(|index| child_of(detail, activity, index)).collect();
            Drawn { activity, rect, reached, events, badge, timers, children }
        })
        .collect();
    let mut obstacles: Vec<Rect> = draft.activities.iter().map(activity_rect).collect();
    obstacles.extend(
        drawn
            .iter()
            .flat_map(|d| {
                d.badge.as_ref().map(|(_, badge, _)| *badge).into_iter().chain(d.timers.as_ref().map(|t| t.1))
            })
            .map(|shown| Rect::from_min_max(view.to_canvas(origin, shown.min), view.to_canvas(origin, shown.max))),
    );
    let mut labels = LabelPlacer::new(obstacles);
    // Drawn after every line, so that no line crosses a label.
    let mut label_shapes = Vec::new();

    for (index, (line, curve)) in draft.lines.iter().zip(line_curves(draft)).enumerate() {
        let Some(curve) = curve else { continue };
        let screen_curve = curve.map(|p| view.to_screen(origin, p));
        let (color, width) = match lines.get(&index) {
            Some(true) => (flow::LINE_FIRED, 2.5),
            Some(false) => (flow::LINE_FALSE, 2.0),
            None => (flow::LINE_NOT_EVALUATED, 1.5),
        };
        draw_curve(&painter, &screen_curve, 24, Stroke::new(width * zoom.max(0.5), color), zoom);
        if !line.rule.trim().is_empty() && zoom > 0.45 {
            let galley =
                painter.layout_no_wrap(line.rule.clone(), FontId::proportional(size::SMALL_FONT * zoom), color);
            let label = labels.place(&curve, (galley.size() + LABEL_PADDING * 2.0) / zoom);
            let leader = label_leader(&curve, label)
                .map(|(on_line, on_label)| [view.to_screen(origin, on_line), view.to_screen(origin, on_label)]);
            label_shapes.push((galley, view.rect_to_screen(origin, label), leader, color));
        }
    }
    for (galley, rect, leader, color) in label_shapes {
        draw_label(&painter, galley, rect, leader, color, color);
    }

    let mut open = None;
    for box_ in &drawn {
        if box_.rect.intersects(screen) {
            open = activity_ui(ui, &painter, box_, instance, zoom).or(open);
        }
    }
    for (galley, badge, color) in drawn.iter().filter_map(|d| d.badge.as_ref()) {
        painter.rect_filled(*badge, CornerRadius::same(6), *color);
        painter.galley(badge.min + vec2(5.0, 2.0), galley.clone(), theme::ON_ACCENT);
    }
    for box_ in &drawn {
        if let Some((lines, card)) = &box_.timers {
            timers_ui(ui, &painter, &box_.activity.id, lines, *card);
        }
    }
    legend(&painter, screen);
    open
}

/// The card of an activity's escalations and timer events: a clock and the
/// words of each, in the colour of where it stands; each line says more to
/// screen readers (and tests), with the exact time.
fn timers_ui(ui: &Ui, painter: &egui::Painter, activity: &str, lines: &[LaidLine], card: Rect) {
    painter.rect(card, CornerRadius::same(6), theme::ACTIVITY_FILL, Stroke::new(1.0, theme::TIMER), StrokeKind::Inside);
    let mut y = card.top() + 3.0;
    for (index, (line, galley)) in lines.iter().enumerate() {
        let height = galley.size().y + 2.0;
        let row = Rect::from_min_size(pos2(card.left(), y), vec2(card.width(), height));
        let color = line.standing.color();
        paint_clock(
            painter,
            pos2(row.left() + 5.0 + CLOCK_ROOM / 2.0 - 3.0, row.center().y),
            4.5,
            color,
            theme::ON_ACCENT,
        );
        painter.galley(pos2(row.left() + 5.0 + CLOCK_ROOM, y + 1.0), galley.clone(), color);
        let id = ui.make_persistent_id(("flow-timer", activity, index));
        let response = ui.interact(row, id, Sense::hover()).on_hover_text(&line.label);
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::GenericContainer, true, line.label.clone()));
        y += height;
    }
}

/// One activity's box: its state, and each event's dot in the colour of
/// where that event stands; the event holding an item open is outlined and
/// carries the serial. Boxes and rows also say their state to screen
/// readers (and tests).
fn activity_ui(ui: &Ui, painter: &egui::Painter, drawn: &Drawn, instance: InstanceStatus, zoom: f32) -> Option<i64> {
    let Drawn { activity, rect, reached, events, children, .. } = drawn;
    let rect = *rect;
    let border = reached.color();
    painter.rect(rect, CornerRadius::same(6), reached.fill(), Stroke::new(2.0, border), StrokeKind::Inside);
    let state = if *reached == Reached::NotReached { "" } else { reached.words() };
    let id = ui.make_persistent_id(("flow-activity", &activity.id));
    let escalates = !activity.escalations.is_empty();
    ui.interact(rect, id, Sense::hover()).widget_info(|| {
        let clock = if escalates { ", with escalations" } else { "" };
        egui::WidgetInfo::labeled(
            egui::Role::GenericContainer,
            true,
            format!("Activity {}: {}{clock}", activity.name, reached.words()),
        )
    });
    if zoom < 0.35 {
        return None;
    }
    let mut open = None;
    let font = FontId::proportional(size::FONT * zoom);
    let small = FontId::proportional((size::SMALL_FONT * zoom).max(10.0));
    let header_y = rect.top() + size::HEADER * zoom / 2.0;
    let state_galley = painter.layout_no_wrap(state.to_owned(), small.clone(), border);
    let clock_width = if escalates { 20.0 * zoom } else { 0.0 };
    let name_width = rect.width() - 26.0 * zoom - state_galley.size().x - clock_width;
    let name = elide(painter, &activity.name, &font, name_width);
    if escalates {
        // As in the designer: this activity's waits have deadlines.
        let center = pos2(rect.right() - 8.0 * zoom - state_galley.size().x - 11.0 * zoom, header_y);
        paint_clock(painter, center, 7.0 * zoom, theme::TIMER, theme::ON_ACCENT);
    }
    painter.text(
        pos2(rect.left() + 10.0 * zoom, header_y),
        Align2::LEFT_CENTER,
        name,
        font.clone(),
        theme::ACTIVITY_TEXT,
    );
    painter.galley(
        pos2(rect.right() - 8.0 * zoom - state_galley.size().x, header_y - state_galley.size().y / 2.0),
        state_galley,
        border,
    );
    for (index, (event, mark)) in activity.events.iter().zip(events).enumerate() {
        let row = Rect::from_min_size(
            pos2(rect.left() + 6.0 * zoom, rect.top() + (size::HEADER + index as f32 * size::EVENT_ROW + 2.0) * zoom),
            vec2(rect.width() - 12.0 * zoom, (size::EVENT_ROW - 4.0) * zoom),
        );
        let color = mark.state.color();
        let mut text_right = row.right() - 4.0 * zoom;
        if let Some(serial) = mark.open_item {
            painter.rect(row, CornerRadius::same(4), mark.state.fill(), Stroke::new(1.5, color), StrokeKind::Inside);
            let galley = painter.layout_no_wrap(serial.to_string(), small.clone(), theme::ON_ACCENT);
            let pill = Rect::from_min_size(
                pos2(row.right() - galley.size().x - 12.0 * zoom, row.center().y - galley.size().y / 2.0 - 1.0),
                galley.size() + vec2(8.0 * zoom, 2.0),
            );
            painter.rect_filled(pill, CornerRadius::same(6), color);
            painter.galley(pill.min + vec2(4.0 * zoom, 1.0), galley, theme::ON_ACCENT);
            text_right = pill.left() - 4.0 * zoom;
        }
        // A sub-process event's child: its id and status, a click opens it.
        if let Some(child) = children.get(index).copied().flatten() {
            let words = child_words(child);
            let galley = painter.layout_no_wrap(words.clone(), small.clone(), theme::IPC_EVENT);
            let pill = Rect::from_min_size(
                pos2(text_right - galley.size().x - 8.0 * zoom, row.center().y - galley.size().y / 2.0 - 1.0),
                galley.size() + vec2(8.0 * zoom, 2.0),
            );
            let id = ui.make_persistent_id(("flow-child", &activity.id, index));
            let response = ui.interact(pill, id, Sense::click()).on_hover_text("Open the child instance");
            let stroke = Stroke::new(if response.hovered() { 2.0 } else { 1.0 }, theme::IPC_EVENT);
            painter.rect(pill, CornerRadius::same(6), theme::CANVAS_BACKGROUND, stroke, StrokeKind::Inside);
            painter.galley(pill.min + vec2(4.0 * zoom, 1.0), galley, theme::IPC_EVENT);
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Link, true, format!("Child {words}")));
            if response.clicked() {
                open = Some(child.link.instance_id);
            }
            text_right = pill.left() - 4.0 * zoom;
        }
        painter.circle_filled(pos2(row.left() + 8.0 * zoom, row.center().y), 4.0 * zoom, color);
        let text_left = row.left() + 18.0 * zoom;
        let name = elide(painter, event.name(), &font, text_right - text_left);
        painter.text(pos2(text_left, row.center().y), Align2::LEFT_CENTER, name, font.clone(), theme::EVENT_TEXT);
        let id = ui.make_persistent_id(("flow-event", &activity.id, index));
        let words = match event {
            EventDraft::Timer(_) => timer_event_words(mark, instance),
            _ => event_words(mark, instance),
        };
        ui.interact(row, id, Sense::hover()).widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::GenericContainer, true, format!("Event {}: {words}", event.name()))
        });
    }
    open
}

fn legend(painter: &egui::Painter, screen: Rect) {
    let states = Reached::ALL.map(|state| (state.color(), state.words()));
    let lines = [
        (flow::LINE_FIRED, "line fired"),
        (flow::LINE_FALSE, "line false"),
        (flow::LINE_NOT_EVALUATED, "line not evaluated"),
    ];
    let mut x = screen.left() + 10.0;
    let y = screen.bottom() - 14.0;
    for (color, text) in states.into_iter().chain(lines) {
        painter.rect_filled(Rect::from_center_size(pos2(x + 5.0, y), Vec2::splat(10.0)), CornerRadius::same(2), color);
        let galley = painter.layout_no_wrap(text.to_owned(), FontId::proportional(11.0), theme::ACTIVITY_TEXT);
        let width = galley.size().x;
        painter.galley(pos2(x + 14.0, y - galley.size().y / 2.0), galley, theme::ACTIVITY_TEXT);
        x += width + 30.0;
    }
}
