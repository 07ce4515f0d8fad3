//! A process version's diagram with, on each activity, how many instances
//! stand there: active (running there), waiting (on a pending server item,
//! with how long the oldest has waited) and in error. K2's and Camunda
//! Operate's heat view: the boxes where work piles up wear the biggest
//! numbers, and a box with instances in error is outlined red.
//!
//! Drawn with the same geometry as the designer and View Flow (boxes,
//! line curves), so a version looks the same in all three. Clicking an
//! activity with instances asks for the instance list filtered to them.

use std::collections::HashMap;

use egui::{Align2, CornerRadius, FontId, Rect, Sense, Stroke, StrokeKind, Ui, pos2, vec2};

use crate::engine::{ActivityCount, Millis, format_age};
use crate::gui::designer::View;
use crate::gui::designer::canvas::{activity_rect, bounds, draw_curve, elide};
use crate::gui::designer::layout::line_curves;
use crate::gui::theme::{self, flow, size};
use crate::model::ProcessDraft;

/// The words a count pill says, and what it says to screen readers.
pub fn count_words(count: &ActivityCount, now: Millis) -> String {
    let mut parts = Vec::new();
    if count.active > 0 {
        parts.push(format!("{} active", count.active));
    }
    if count.waiting > 0 {
        let oldest = count.oldest_wait.map(|at| format!(" (oldest {})", minutes_age(now, at))).unwrap_or_default();
        parts.push(format!("{} waiting{oldest}", count.waiting));
    }
    if count.error > 0 {
        parts.push(format!("{} in error", count.error));
    }
    if parts.is_empty() { "none".to_owned() } else { parts.join(", ") }
}

/// How long ago `at` was, in whole minutes ("3m", "2h 5m"; "under 1m"
/// within the minute): a pill has no room for seconds.
pub fn minutes_age(now: Millis, at: Millis) -> String {
    let minutes = (now - at).max(0) / 60_000;
    if minutes == 0 { "under 1m".to_owned() } else { format_age(minutes * 60_000, 0) }
}

/// Draws `draft` with `counts` on its activities; returns the name of the
/// activity clicked, if it has instances.
pub fn heat_ui(
    ui: &mut Ui,
    draft: &ProcessDraft,
    counts: &[ActivityCount],
    now: Millis,
    view: &mut View,
    fit: &mut bool,
) -> Option<String> {
    let (screen, response) = ui.allocate_exact_size(ui.available_size(), Sense::drag());
    let painter = ui.painter_at(screen);
    painter.rect_filled(screen, CornerRadius::ZERO, theme::CANVAS_BACKGROUND);
    if *fit {
        view.fit(screen, bounds(draft));
        *fit = false;
    }
    view.follow_pointer(ui, &response, screen.min);
    let origin = screen.min;
    let zoom = view.zoom;
    let by_name: HashMap<&str, &ActivityCount> = counts.iter().map(|c| (c.activity.as_str(), c)).collect();

    for curve in line_curves(draft).into_iter().flatten() {
        let screen_curve = curve.map(|p| view.to_screen(origin, p));
        draw_curve(&painter, &screen_curve, 24, Stroke::new(1.5 * zoom.max(0.5), flow::LINE_NOT_EVALUATED), zoom);
    }

    let font = FontId::proportional(size::FONT * zoom.max(0.6));
    let small = FontId::proportional((size::SMALL_FONT * zoom).max(10.0));
    let mut clicked = None;
    for activity in &draft.activities {
        let rect = view.rect_to_screen(origin, activity_rect(activity));
        let count = by_name.get(activity.name.as_str()).copied();
        let (border, fill) = match count {
            Some(c) if c.error > 0 => (flow::ERROR, flow::ERROR_FILL),
            Some(c) if c.waiting > 0 || c.active > 0 => (flow::ACTIVE, flow::ACTIVE_FILL),
            _ => (flow::NOT_REACHED, flow::NOT_REACHED_FILL),
        };
        painter.rect(rect, CornerRadius::same(6), fill, Stroke::new(2.0, border), StrokeKind::Inside);
        let name = elide(&painter, &activity.name, &font, rect.width() - 20.0 * zoom);
        painter.text(
            pos2(rect.left() + 10.0 * zoom, rect.top() + size::HEADER * zoom / 2.0),
            Align2::LEFT_CENTER,
            name,
            font.clone(),
            theme::ACTIVITY_TEXT,
        );
        let words = count.map(|c| count_words(c, now)).unwrap_or_else(|| "none".to_owned());
        let id = ui.make_persistent_id(("heat-activity", &activity.id));
        let sense = if count.is_some() { Sense::click() } else { Sense::hover() };
        let response = ui.interact(rect, id, sense).on_hover_text(format!("{}: {words}", activity.name));
        // Screen readers (and tests) hear the activity and its counts.
        let role = if count.is_some() { egui::Role::Button } else { egui::Role::GenericContainer };
        response.widget_info(|| egui::WidgetInfo::labeled(role, true, format!("Activity {}: {words}", activity.name)));
        if response.clicked() {
            clicked = Some(activity.name.clone());
        }
        let Some(count) = count else { continue };
        // The pills, under the header: one per kind with instances.
        let mut x = rect.left() + 8.0 * zoom;
        let y = rect.top() + (size::HEADER + 4.0) * zoom;
        let waiting = match count.oldest_wait {
            Some(at) => format!("waiting, oldest {}", minutes_age(now, at)),
            None => "waiting".to_owned(),
        };
        for (n, color, label) in [
            (count.active, flow::ACTIVE, "active"),
            (count.waiting, theme::ASYNC_EVENT, waiting.as_str()),
            (count.error, flow::ERROR, "in error"),
        ] {
            if n == 0 {
                continue;
            }
            let galley = painter.layout_no_wrap(format!("{n} {label}"), small.clone(), theme::ON_ACCENT);
            let pill = Rect::from_min_size(pos2(x, y), galley.size() + vec2(10.0, 4.0));
            painter.rect_filled(pill, CornerRadius::same(8), color);
            painter.galley(pill.min + vec2(5.0, 2.0), galley, theme::ON_ACCENT);
            x = pill.right() + 4.0;
        }
    }
    clicked
}
