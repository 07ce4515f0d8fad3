//! An instance's flow drawn over its process diagram, coloured as K2's View
//! Flow: completed activities green, active blue, in error red, not reached
//! plain; lines that fired green, lines evaluated false red; pending server
//! items shown on their activity with their serial.

use std::collections::HashMap;

use egui::{Align2, Color32, CornerRadius, FontId, Pos2, Rect, Sense, Shape, Stroke, StrokeKind, Ui, Vec2, pos2, vec2};

use crate::engine::{ActivityStatus, InstanceDetail, InstanceStatus};
use crate::gui::designer::View;
use crate::gui::designer::canvas::{activity_rect, bounds};
use crate::gui::designer::layout::{bezier_point, line_curve};
use crate::gui::theme::{self, flow, size};
use crate::model::EventDraft;

/// How an activity of the definition stands in this instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    NotReached,
    Completed,
    Active,
    Error,
    Cancelled,
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
            ActivityStatus::Error => Reached::Error,
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

pub fn flow_ui(ui: &mut Ui, detail: &InstanceDetail, view: &mut View, fit: &mut bool) {
    let (screen, response) = ui.allocate_exact_size(ui.available_size(), Sense::drag());
    let painter = ui.painter_at(screen);
    painter.rect_filled(screen, CornerRadius::ZERO, theme::CANVAS_BACKGROUND);
    let draft = &detail.definition.draft;
    if *fit {
        view.fit(screen, bounds(draft));
        *fit = false;
    }
    if response.dragged() {
        view.pan += response.drag_delta();
    }
    if response.hovered() {
        let (scroll, zoom) = ui.input(|i| (i.smooth_scroll_delta, i.zoom_delta()));
        if zoom != 1.0
            && let Some(p) = ui.ctx().pointer_interact_pos()
        {
            view.zoom_around(screen.min, p, zoom);
        } else {
            view.pan += scroll;
        }
    }
    let origin = screen.min;
    let (activities, lines) = flow_state(detail);

    for (index, line) in draft.lines.iter().enumerate() {
        let (Some(from), Some(to)) = (draft.activity(&line.from), draft.activity(&line.to)) else { continue };
        let curve = line_curve(activity_rect(from), activity_rect(to)).map(|p| view.to_screen(origin, p));
        let (color, width) = match lines.get(&index) {
            Some(true) => (flow::LINE_FIRED, 2.5),
            Some(false) => (flow::LINE_FALSE, 2.0),
            None => (flow::LINE_NOT_EVALUATED, 1.5),
        };
        let points: Vec<Pos2> = (0..=24).map(|i| bezier_point(&curve, i as f32 / 24.0)).collect();
        painter.add(Shape::line(points, Stroke::new(width * view.zoom.max(0.5), color)));
        let tip = curve[3];
        let direction = (curve[3] - bezier_point(&curve, 0.95)).normalized();
        let side = vec2(-direction.y, direction.x);
        let length = 10.0 * view.zoom.max(0.6);
        painter.add(Shape::convex_polygon(
            vec![tip, tip - direction * length + side * length * 0.5, tip - direction * length - side * length * 0.5],
            color,
            Stroke::NONE,
        ));
        if !line.rule.trim().is_empty() && view.zoom > 0.45 {
            let mid = bezier_point(&curve, 0.5);
            let font = FontId::proportional(size::SMALL_FONT * view.zoom);
            let galley = painter.layout_no_wrap(line.rule.clone(), font, color);
            let rect = Rect::from_center_size(mid, galley.size() + vec2(8.0, 4.0));
            painter.rect(rect, CornerRadius::same(4), Color32::WHITE, Stroke::new(1.0, color), StrokeKind::Inside);
            painter.galley(rect.min + vec2(4.0, 2.0), galley, color);
        }
    }

    for activity in &draft.activities {
        let rect = view.rect_to_screen(origin, activity_rect(activity));
        if !rect.intersects(screen) {
            continue;
        }
        let reached = activities.get(&activity.id).copied().unwrap_or(Reached::NotReached);
        let (border, fill, state) = match reached {
            Reached::Completed => (flow::COMPLETED, flow::COMPLETED_FILL, "completed"),
            Reached::Active => (flow::ACTIVE, flow::ACTIVE_FILL, "active"),
            Reached::Error => (flow::ERROR, flow::ERROR_FILL, "error"),
            Reached::Cancelled => (flow::CANCELLED, Color32::from_gray(235), "cancelled"),
            Reached::NotReached => (flow::NOT_REACHED, Color32::WHITE, ""),
        };
        let zoom = view.zoom;
        painter.rect(rect, CornerRadius::same(6), fill, Stroke::new(2.0, border), StrokeKind::Inside);
        let small = FontId::proportional((size::SMALL_FONT * zoom).max(10.0));
        // Pending serials under the activity that waits for them, at any zoom.
        let pending: Vec<String> = detail
            .pending_items
            .iter()
            .filter(|item| {
                detail
                    .activities
                    .iter()
                    .any(|r| r.destination_id == item.activity_destination_id && r.activity_id == activity.id)
            })
            .map(|item| item.serial.to_string())
            .collect();
        for (row, serial) in pending.iter().enumerate() {
            let galley = painter.layout_no_wrap(format!("waits: {serial}"), small.clone(), Color32::WHITE);
            let at = pos2(rect.left(), rect.bottom() + 4.0 + row as f32 * (galley.size().y + 6.0));
            let badge = Rect::from_min_size(at, galley.size() + vec2(10.0, 4.0));
            painter.rect_filled(badge, CornerRadius::same(6), theme::ASYNC_EVENT);
            painter.galley(badge.min + vec2(5.0, 2.0), galley, Color32::WHITE);
        }
        if zoom < 0.35 {
            continue;
        }
        let font = FontId::proportional(size::FONT * zoom);
        let header_y = rect.top() + size::HEADER * zoom / 2.0;
        painter.text(
            pos2(rect.left() + 10.0 * zoom, header_y),
            Align2::LEFT_CENTER,
            &activity.name,
            font.clone(),
            theme::ACTIVITY_TEXT,
        );
        painter.text(pos2(rect.right() - 8.0 * zoom, header_y), Align2::RIGHT_CENTER, state, small.clone(), border);
        for (index, event) in activity.events.iter().enumerate() {
            let y = rect.top() + (size::HEADER + index as f32 * size::EVENT_ROW + size::EVENT_ROW / 2.0) * zoom;
            let color = match event {
                EventDraft::HttpRequest(_) => theme::HTTP_EVENT,
                _ if event.synchronous() => theme::SYNC_EVENT,
                _ => theme::ASYNC_EVENT,
            };
            painter.circle_filled(pos2(rect.left() + 14.0 * zoom, y), 4.0 * zoom, color);
            painter.text(
                pos2(rect.left() + 24.0 * zoom, y),
                Align2::LEFT_CENTER,
                event.name(),
                font.clone(),
                theme::EVENT_TEXT,
            );
        }
    }
    legend(&painter, screen);
}

fn legend(painter: &egui::Painter, screen: Rect) {
    let entries = [
        (flow::COMPLETED, "completed"),
        (flow::ACTIVE, "active"),
        (flow::ERROR, "error"),
        (flow::NOT_REACHED, "not reached"),
        (flow::LINE_FIRED, "line fired"),
        (flow::LINE_FALSE, "line false"),
    ];
    let mut x = screen.left() + 10.0;
    let y = screen.bottom() - 14.0;
    for (color, text) in entries {
        painter.rect_filled(Rect::from_center_size(pos2(x + 5.0, y), Vec2::splat(10.0)), CornerRadius::same(2), color);
        let galley = painter.layout_no_wrap(text.to_owned(), FontId::proportional(11.0), theme::ACTIVITY_TEXT);
        let width = galley.size().x;
        painter.galley(pos2(x + 14.0, y - galley.size().y / 2.0), galley, theme::ACTIVITY_TEXT);
        x += width + 30.0;
    }
}
