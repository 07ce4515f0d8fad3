//! Every colour and size the GUI draws with, in one place.

use egui::{Color32, Stroke};

pub const CANVAS_BACKGROUND: Color32 = Color32::from_rgb(246, 247, 250);
pub const GRID_DOT: Color32 = Color32::from_rgb(214, 218, 226);

pub const ACTIVITY_FILL: Color32 = Color32::from_rgb(255, 255, 255);
pub const ACTIVITY_HEADER: Color32 = Color32::from_rgb(232, 238, 247);
pub const ACTIVITY_BORDER: Color32 = Color32::from_rgb(150, 162, 184);
pub const ACTIVITY_TEXT: Color32 = Color32::from_rgb(30, 38, 52);
pub const START_MARK: Color32 = Color32::from_rgb(34, 148, 86);

pub const SYNC_EVENT: Color32 = Color32::from_rgb(47, 111, 223);
pub const ASYNC_EVENT: Color32 = Color32::from_rgb(224, 138, 0);
/// HTTP request events: teal, apart from both kinds of server event.
pub const HTTP_EVENT: Color32 = Color32::from_rgb(0, 150, 136);
pub const ASYNC_ROW_FILL: Color32 = Color32::from_rgb(255, 244, 222);
/// Timer events and the clock of an activity with escalations: violet,
/// apart from the event kinds and from errors.
pub const TIMER: Color32 = Color32::from_rgb(126, 87, 194);
pub const TIMER_ROW_FILL: Color32 = Color32::from_rgb(240, 234, 250);
/// Mail events: brown, apart from the other event kinds, errors and timers.
pub const MAIL: Color32 = Color32::from_rgb(121, 85, 72);
/// A sub-process (IPC) event: its icon, badge and row (blue-grey, apart
/// from the other kinds, from the start mark's green and from errors).
pub const IPC_EVENT: Color32 = Color32::from_rgb(69, 90, 100);
pub const IPC_ROW_FILL: Color32 = Color32::from_rgb(236, 239, 241);
pub const EVENT_TEXT: Color32 = Color32::from_rgb(40, 48, 62);

pub const SELECTION: Color32 = Color32::from_rgb(0, 122, 255);
pub const SELECTION_FILL: Color32 = Color32::from_rgba_premultiplied(0, 60, 128, 30);
pub const DROP_TARGET: Color32 = Color32::from_rgb(0, 160, 120);

pub const LINE: Color32 = Color32::from_rgb(96, 108, 130);
pub const LINE_LABEL_FILL: Color32 = Color32::from_rgb(255, 255, 255);
pub const LINE_RULE_TEXT: Color32 = Color32::from_rgb(110, 70, 160);

pub const ERROR: Color32 = Color32::from_rgb(200, 40, 40);
pub const ERROR_LINE_FILL: Color32 = Color32::from_rgb(255, 222, 222);
pub const WARNING: Color32 = Color32::from_rgb(190, 120, 0);
pub const SUCCESS: Color32 = Color32::from_rgb(30, 140, 70);
/// Text on a badge filled with one of the colours above.
pub const ON_ACCENT: Color32 = Color32::WHITE;

pub fn line_stroke(zoom: f32, selected: bool) -> Stroke {
    if selected { Stroke::new(2.5 * zoom.max(0.5), SELECTION) } else { Stroke::new(1.6 * zoom.max(0.5), LINE) }
}

/// Canvas geometry, in canvas units (before zoom).
pub mod size {
    pub const ACTIVITY_WIDTH: f32 = 210.0;
    pub const HEADER: f32 = 30.0;
    pub const EVENT_ROW: f32 = 24.0;
    pub const BODY_PADDING: f32 = 8.0;
    pub const HANDLE_RADIUS: f32 = 6.0;
    pub const GRID: f32 = 20.0;
    pub const FONT: f32 = 13.0;
    pub const SMALL_FONT: f32 = 11.0;
}

/// K2's View Flow colours: where an instance has been and where it is. Each
/// means one state, for activities and events alike, and nothing else: the
/// kind of an event is not coloured in View Flow.
pub mod flow {
    use egui::Color32;

    pub const COMPLETED: Color32 = Color32::from_rgb(46, 160, 67);
    pub const COMPLETED_FILL: Color32 = Color32::from_rgb(222, 245, 227);
    pub const ACTIVE: Color32 = Color32::from_rgb(31, 111, 235);
    pub const ACTIVE_FILL: Color32 = Color32::from_rgb(221, 235, 255);
    pub const ERROR: Color32 = Color32::from_rgb(207, 34, 46);
    pub const ERROR_FILL: Color32 = Color32::from_rgb(255, 225, 225);
    pub const CANCELLED: Color32 = Color32::from_rgb(140, 140, 140);
    pub const CANCELLED_FILL: Color32 = Color32::from_gray(235);
    pub const NOT_REACHED: Color32 = Color32::from_rgb(170, 178, 192);
    pub const NOT_REACHED_FILL: Color32 = Color32::WHITE;
    pub const LINE_FIRED: Color32 = Color32::from_rgb(46, 160, 67);
    pub const LINE_FALSE: Color32 = Color32::from_rgb(207, 34, 46);
    pub const LINE_NOT_EVALUATED: Color32 = Color32::from_rgb(180, 186, 198);
}

#[cfg(test)]
mod tests {
    /// BPMN export and import draw flowdesk's boxes in the model, which
    /// cannot name this module: their sizes must stay the same.
    #[test]
    fn the_bpmn_diagram_boxes_are_the_canvas_boxes() {
        use crate::model::bpmn::geometry;
        assert_eq!(super::size::ACTIVITY_WIDTH, geometry::ACTIVITY_WIDTH);
        assert_eq!(super::size::HEADER, geometry::HEADER);
        assert_eq!(super::size::EVENT_ROW, geometry::EVENT_ROW);
        assert_eq!(super::size::BODY_PADDING, geometry::BODY_PADDING);
        assert_eq!(super::size::GRID, geometry::GRID);
    }
}
