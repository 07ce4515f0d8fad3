//! Where lines run and where their labels go, in canvas units: pure
//! functions of the draft, shared by the designer's canvas and the monitor's
//! View Flow, so both draw the same picture and tests can check it without a
//! window.

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use egui::{Pos2, Rect, Vec2, pos2, vec2};

use crate::gui::designer::canvas::activity_rect;
use crate::model::ProcessDraft;

/// A side of an activity's box, where lines attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Side {
    Left,
    Right,
    Top,
    Bottom,
}

impl Side {
    fn outward(self) -> Vec2 {
        match self {
            Side::Left => vec2(-1.0, 0.0),
            Side::Right => vec2(1.0, 0.0),
            Side::Top => vec2(0.0, -1.0),
            Side::Bottom => vec2(0.0, 1.0),
        }
    }

    /// The point `fraction` of the way along this side of `rect`, top to
    /// bottom or left to right.
    fn point(self, rect: Rect, fraction: f32) -> Pos2 {
        match self {
            Side::Left => pos2(rect.left(), rect.top() + rect.height() * fraction),
            Side::Right => pos2(rect.right(), rect.top() + rect.height() * fraction),
            Side::Top => pos2(rect.left() + rect.width() * fraction, rect.top()),
            Side::Bottom => pos2(rect.left() + rect.width() * fraction, rect.bottom()),
        }
    }

    /// Where along this side a line towards `other` wants to attach: lines
    /// to boxes higher up (or further left) attach higher (further left), so
    /// lines sharing a side do not cross as they leave it.
    fn order_key(self, other: Rect) -> f32 {
        match self {
            Side::Left | Side::Right => other.center().y,
            Side::Top | Side::Bottom => other.center().x,
        }
    }
}

/// The sides a line from `from` to `to` leaves and enters by: those facing
/// each other, so it does not run under its boxes.
fn facing_sides(from: Rect, to: Rect) -> (Side, Side) {
    let d = to.center() - from.center();
    if d.x.abs() * 0.6 >= d.y.abs() {
        if d.x >= 0.0 { (Side::Right, Side::Left) } else { (Side::Left, Side::Right) }
    } else if d.y >= 0.0 {
        (Side::Bottom, Side::Top)
    } else {
        (Side::Top, Side::Bottom)
    }
}

fn curve_between(start: Pos2, start_side: Side, end: Pos2, end_side: Side) -> [Pos2; 4] {
    let reach = ((end - start).length() * 0.4).clamp(30.0, 160.0);
    [start, start + start_side.outward() * reach, end + end_side.outward() * reach, end]
}

/// The four Bézier points of a line from one box to another, leaving and
/// entering at the middle of the sides facing each other.
pub fn line_curve(from: Rect, to: Rect) -> [Pos2; 4] {
    let (start_side, end_side) = facing_sides(from, to);
    curve_between(start_side.point(from, 0.5), start_side, end_side.point(to, 0.5), end_side)
}

/// One line's end on a box side: (its order along the side, the line's
/// index, whether it is the line's start).
type LineEnd = (f32, usize, bool);

/// Every line's curve, by line index; `None` where an end names no activity.
///
/// The lines meeting one side of a box, coming in or going out, attach at
/// points spread evenly along it, in the order of the boxes at their other
/// ends: each can be followed to its own point, and they do not cross there.
/// A side with one line keeps it in the middle.
pub fn line_curves(draft: &ProcessDraft) -> Vec<Option<[Pos2; 4]>> {
    let rects: HashMap<&str, Rect> = draft.activities.iter().map(|a| (a.id.as_str(), activity_rect(a))).collect();
    struct Ends {
        from: Rect,
        to: Rect,
        sides: (Side, Side),
        fractions: (f32, f32),
    }
    let mut lines: Vec<Option<Ends>> = draft
        .lines
        .iter()
        .map(|line| {
            let (from, to) = (*rects.get(line.from.as_str())?, *rects.get(line.to.as_str())?);
            Some(Ends { from, to, sides: facing_sides(from, to), fractions: (0.5, 0.5) })
        })
        .collect();
    // Every line end, grouped by the box side it meets.
    let mut sides: BTreeMap<(&str, Side), Vec<LineEnd>> = BTreeMap::new();
    for (index, (line, ends)) in draft.lines.iter().zip(&lines).enumerate() {
        let Some(ends) = ends else { continue };
        let (start_side, end_side) = ends.sides;
        sides.entry((line.from.as_str(), start_side)).or_default().push((start_side.order_key(ends.to), index, true));
        sides.entry((line.to.as_str(), end_side)).or_default().push((end_side.order_key(ends.from), index, false));
    }
    for mut attached in sides.into_values() {
        attached.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let slots = attached.len() as f32 + 1.0;
        for (slot, (_, index, is_start)) in attached.into_iter().enumerate() {
            if let Some(ends) = &mut lines[index] {
                let fraction = (slot as f32 + 1.0) / slots;
                if is_start {
                    ends.fractions.0 = fraction;
                } else {
                    ends.fractions.1 = fraction;
                }
            }
        }
    }
    lines
        .into_iter()
        .map(|ends| {
            let Ends { from, to, sides: (start_side, end_side), fractions } = ends?;
            Some(curve_between(
                start_side.point(from, fractions.0),
                start_side,
                end_side.point(to, fractions.1),
                end_side,
            ))
        })
        .collect()
}

pub fn bezier_point(p: &[Pos2; 4], t: f32) -> Pos2 {
    let u = 1.0 - t;
    let v = p[0].to_vec2() * (u * u * u)
        + p[1].to_vec2() * (3.0 * u * u * t)
        + p[2].to_vec2() * (3.0 * u * t * t)
        + p[3].to_vec2() * (t * t * t);
    v.to_pos2()
}

/// Points along the curve, enough to pick it or measure to it.
pub fn curve_samples(curve: &[Pos2; 4]) -> impl Iterator<Item = Pos2> + '_ {
    (0..=24).map(move |i| bezier_point(curve, i as f32 / 24.0))
}

/// The gap a label keeps from boxes, badges and other labels; also clears
/// the connect handle on a box's side.
const LABEL_CLEARANCE: f32 = 6.0;
/// How far from its line's middle a label may move to find room.
const LABEL_REACH: f32 = 180.0;
const LABEL_STEP: f32 = 6.0;

/// The offsets a label tries, nearest first; among equally near ones, up or
/// down before sideways, since labels are wide and lines mostly run across.
static LABEL_OFFSETS: LazyLock<Vec<Vec2>> = LazyLock::new(|| {
    let steps = (LABEL_REACH / LABEL_STEP) as i32;
    let mut offsets: Vec<Vec2> = (-steps..=steps)
        .flat_map(|x| (-steps..=steps).map(move |y| vec2(x as f32, y as f32) * LABEL_STEP))
        .filter(|offset| offset.length() <= LABEL_REACH)
        .collect();
    offsets.sort_by(|a, b| a.length_sq().total_cmp(&b.length_sq()).then(a.x.abs().total_cmp(&b.x.abs())));
    offsets
});

/// Places line labels one after another, each clear of the obstacles and of
/// the labels placed before it.
pub struct LabelPlacer {
    taken: Vec<Rect>,
}

impl LabelPlacer {
    /// `obstacles`: what no label may cover (activity boxes, badges).
    pub fn new(obstacles: Vec<Rect>) -> LabelPlacer {
        LabelPlacer { taken: obstacles }
    }

    /// The rect of a label of `size` for the line `curve`: on the line's
    /// middle when that is clear, else the nearest clear spot around it; if
    /// nothing within reach is clear, the spot that covers the least.
    pub fn place(&mut self, curve: &[Pos2; 4], size: Vec2) -> Rect {
        let middle = bezier_point(curve, 0.5);
        let region = Rect::from_center_size(middle, size + Vec2::splat(2.0 * (LABEL_REACH + LABEL_CLEARANCE)));
        let near: Vec<Rect> =
            self.taken.iter().filter(|r| r.intersects(region)).map(|r| r.expand(LABEL_CLEARANCE)).collect();
        let covered = |rect: Rect| -> f32 {
            near.iter().map(|o| o.intersect(rect)).filter(|i| i.is_positive()).map(|i| i.area()).sum()
        };
        let mut best = (f32::INFINITY, Rect::from_center_size(middle, size));
        for offset in LABEL_OFFSETS.iter() {
            let rect = Rect::from_center_size(middle + *offset, size);
            let cover = covered(rect);
            if cover < best.0 {
                best = (cover, rect);
                if cover == 0.0 {
                    break;
                }
            }
        }
        self.taken.push(best.1);
        best.1
    }
}

/// A short line from a label moved off its line back to the line, so that
/// it is clear which line it names; `None` when the label is on its line.
pub fn label_leader(curve: &[Pos2; 4], label: Rect) -> Option<(Pos2, Pos2)> {
    let nearest =
        curve_samples(curve).min_by(|a, b| label.distance_sq_to_pos(*a).total_cmp(&label.distance_sq_to_pos(*b)))?;
    if label.distance_to_pos(nearest) <= 2.0 {
        return None;
    }
    Some((nearest, nearest.clamp(label.min, label.max)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use egui::epaint::text::{Fonts, TextOptions};
    use egui::{Color32, FontId};

    use super::*;
    use crate::gui::fonts;
    use crate::gui::theme::size;
    use crate::model::{EventDraft, LineDraft, ServerEventDraft};

    fn callback_sample() -> ProcessDraft {
        ProcessDraft::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/callback.process.json")).unwrap()
    }

    /// The callback sample after a user drops a second event onto "Call
    /// external system": the box grows and its lines' labels met it.
    fn callback_with_an_event_dropped_on_call() -> ProcessDraft {
        let mut draft = callback_sample();
        let call = draft.activities.iter_mut().find(|a| a.id == "call").unwrap();
        call.events.push(EventDraft::ServerEvent(ServerEventDraft {
            name: "Server event".to_owned(),
            synchronous: true,
            script: String::new(),
        }));
        draft
    }

    /// The size the canvas gives a line's label at 100 %: its text laid out
    /// with the window's fonts, plus the label's padding.
    fn label_size(line: &LineDraft) -> Vec2 {
        let mut fonts = Fonts::new(TextOptions::default(), fonts::definitions());
        let text = format!("{}: {}", line.label, line.rule);
        let galley = fonts.with_pixels_per_point(1.0).layout_no_wrap(
            text,
            FontId::proportional(size::SMALL_FONT),
            Color32::BLACK,
        );
        galley.size() + vec2(8.0, 4.0)
    }

    fn placed_labels(draft: &ProcessDraft) -> Vec<Rect> {
        let curves = line_curves(draft);
        let mut placer = LabelPlacer::new(draft.activities.iter().map(activity_rect).collect());
        draft
            .lines
            .iter()
            .zip(&curves)
            .filter(|(line, _)| !line.rule.is_empty())
            .map(|(line, curve)| placer.place(curve.as_ref().unwrap(), label_size(line)))
            .collect()
    }

    #[test]
    fn issue_14_labels_stay_clear_of_the_boxes_after_an_event_is_dropped_on_call() {
        for draft in [callback_sample(), callback_with_an_event_dropped_on_call()] {
            let labels = placed_labels(&draft);
            assert_eq!(labels.len(), 2);
            for label in &labels {
                for activity in &draft.activities {
                    assert!(
                        !label.intersects(activity_rect(activity)),
                        "a label at {label:?} covers {:?} at {:?}",
                        activity.name,
                        activity_rect(activity)
                    );
                }
            }
            assert!(!labels[0].intersects(labels[1]), "the two labels cover each other: {labels:?}");
        }
    }

    #[test]
    fn a_label_stays_beside_its_line() {
        let draft = callback_with_an_event_dropped_on_call();
        let curves = line_curves(&draft);
        for (label, curve) in placed_labels(&draft).iter().zip(&curves[1..]) {
            let middle = bezier_point(curve.as_ref().unwrap(), 0.5);
            assert!(label.distance_to_pos(middle) < 120.0, "{label:?} is far from its line's middle {middle:?}");
        }
    }

    #[test]
    fn a_label_with_room_sits_on_the_middle_of_its_line() {
        let from = Rect::from_min_size(pos2(0.0, 0.0), vec2(200.0, 60.0));
        let to = Rect::from_min_size(pos2(600.0, 0.0), vec2(200.0, 60.0));
        let curve = line_curve(from, to);
        let label = LabelPlacer::new(vec![from, to]).place(&curve, vec2(80.0, 16.0));
        assert_eq!(label.center(), bezier_point(&curve, 0.5));
    }

    #[test]
    fn a_label_moved_off_its_line_gets_a_leader_back_to_it() {
        let from = Rect::from_min_size(pos2(0.0, 0.0), vec2(200.0, 60.0));
        let to = Rect::from_min_size(pos2(600.0, 0.0), vec2(200.0, 60.0));
        let curve = line_curve(from, to);
        let middle = bezier_point(&curve, 0.5);
        let on_it = LabelPlacer::new(vec![from, to]).place(&curve, vec2(80.0, 16.0));
        assert_eq!(label_leader(&curve, on_it), None);

        let badge = Rect::from_center_size(middle, vec2(30.0, 30.0));
        let moved = LabelPlacer::new(vec![from, to, badge]).place(&curve, vec2(80.0, 16.0));
        let (on_line, on_label) = label_leader(&curve, moved).expect("a label off its line has a leader");
        assert!(curve_samples(&curve).any(|p| p == on_line));
        assert!(moved.distance_to_pos(on_label) < 1e-3 && moved.distance_to_pos(on_line) > 2.0);

        // In the sample, each label either touches its line or has a leader to it.
        let draft = callback_with_an_event_dropped_on_call();
        let curves = line_curves(&draft);
        for (label, curve) in placed_labels(&draft).iter().zip(&curves[1..]) {
            let curve = curve.as_ref().unwrap();
            let touches = curve_samples(curve).any(|p| label.distance_to_pos(p) <= 2.0);
            assert_eq!(label_leader(curve, *label).is_none(), touches);
        }
    }

    #[test]
    fn labels_keep_clear_of_badges_too() {
        let from = Rect::from_min_size(pos2(0.0, 0.0), vec2(200.0, 60.0));
        let to = Rect::from_min_size(pos2(600.0, 0.0), vec2(200.0, 60.0));
        let curve = line_curve(from, to);
        let badge = Rect::from_center_size(bezier_point(&curve, 0.5), vec2(30.0, 30.0));
        let label = LabelPlacer::new(vec![from, to, badge]).place(&curve, vec2(80.0, 16.0));
        for obstacle in [from, to, badge] {
            assert!(!label.intersects(obstacle));
        }
    }

    /// The point where `line` meets each end box.
    fn ends(draft: &ProcessDraft, index: usize) -> (Pos2, Pos2) {
        let curve = line_curves(draft)[index].unwrap();
        (curve[0], curve[3])
    }

    #[test]
    fn issue_14_lines_on_one_side_of_a_box_attach_at_distinct_points() {
        // Two lines leave "call" to the right, one enters it on the left.
        let draft = callback_with_an_event_dropped_on_call();
        let (approved_start, _) = ends(&draft, 1);
        let (rejected_start, _) = ends(&draft, 2);
        assert_ne!(approved_start, rejected_start);
        // In the order of the boxes they go to, so they do not cross.
        assert!(approved_start.y < rejected_start.y);
        let call = activity_rect(draft.activity("call").unwrap());
        for p in [approved_start, rejected_start] {
            assert_eq!(p.x, call.right());
            assert!(call.y_range().contains(p.y));
        }

        // A line back: one enters and one leaves on the same sides.
        let mut draft = callback_sample();
        draft.lines.push(LineDraft {
            from: "call".to_owned(),
            to: "prepare".to_owned(),
            label: String::new(),
            rule: String::new(),
        });
        let (there_start, there_end) = ends(&draft, 0);
        let (back_start, back_end) = ends(&draft, 3);
        assert_ne!(there_start, back_end, "prepare's right side");
        assert_ne!(there_end, back_start, "call's left side");
    }

    #[test]
    fn a_lone_line_attaches_at_the_middle_of_the_side() {
        let draft = callback_sample();
        let (start, end) = ends(&draft, 0);
        assert_eq!(start, activity_rect(draft.activity("prepare").unwrap()).right_center());
        assert_eq!(end, activity_rect(draft.activity("call").unwrap()).left_center());
    }

    #[test]
    fn lines_leave_on_the_facing_sides() {
        let a = Rect::from_min_size(pos2(0.0, 0.0), vec2(100.0, 50.0));
        let right = Rect::from_min_size(pos2(300.0, 0.0), vec2(100.0, 50.0));
        let below = Rect::from_min_size(pos2(0.0, 300.0), vec2(100.0, 50.0));
        assert_eq!(line_curve(a, right)[0], a.right_center());
        assert_eq!(line_curve(a, below)[0], a.center_bottom());
        assert_eq!(line_curve(right, a)[3], a.right_center());
    }
}
