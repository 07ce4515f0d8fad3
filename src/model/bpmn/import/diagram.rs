//! Where the imported activities go on the canvas: the diagram's shapes
//! (exactly, in flowdesk's own files; scaled and snapped to the grid in
//! other tools'), and a layout by depth for what the file does not draw.

use std::collections::{HashMap, HashSet, VecDeque};

use super::{Builder, is_task};
use crate::model::bpmn::geometry::{ACTIVITY_WIDTH, GRID, activity_height};
use crate::model::bpmn::xml::Element;
use crate::model::bpmn::{BPMN_NS, BPMNDI_NS, DC_NS};
use crate::model::definition::{ActivityDraft, LineDraft, Position, limits};

/// How many columns a layout by depth draws before it goes on below.
const BAND_COLUMNS: usize = 40;
/// How foreign diagrams are scaled: BPMN tools draw a task 100 wide and
/// 80 high, flowdesk's box is 210 wide and 62 or more high; this keeps
/// boxes apart where the tool kept its shapes apart.
const SCALE_X: f64 = 2.1;
const SCALE_Y: f64 = 1.4;

impl Builder<'_> {
    /// The diagram's bounds of each element of this process, by BPMN id.
    pub(super) fn shapes(&self) -> HashMap<String, (f64, f64, f64, f64)> {
        let process_id = self.process.attr("id").unwrap_or_default();
        let collaborations: HashSet<&str> = self
            .root
            .children_named(BPMN_NS, "collaboration")
            .filter(|c| c.children_named(BPMN_NS, "participant").any(|p| p.attr("processRef") == Some(process_id)))
            .filter_map(|c| c.attr("id"))
            .collect();
        let planes: Vec<&Element> = self
            .root
            .children_named(BPMNDI_NS, "BPMNDiagram")
            .flat_map(|d| d.children_named(BPMNDI_NS, "BPMNPlane"))
            .collect();
        let mine: Vec<&Element> = planes
            .iter()
            .copied()
            .filter(|p| p.attr("bpmnElement").is_some_and(|e| e == process_id || collaborations.contains(e)))
            .collect();
        let chosen = if mine.is_empty() && planes.len() == 1 { planes } else { mine };
        let mut shapes = HashMap::new();
        for plane in chosen {
            for shape in plane.children_named(BPMNDI_NS, "BPMNShape") {
                let (Some(element), Some(bounds)) = (shape.attr("bpmnElement"), shape.child(DC_NS, "Bounds")) else {
                    continue;
                };
                let number =
                    |name| bounds.attr(name).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite());
                if let (Some(x), Some(y), Some(w), Some(h)) =
                    (number("x"), number("y"), number("width"), number("height"))
                {
                    shapes.entry(element.to_owned()).or_insert((x, y, w, h));
                }
            }
        }
        shapes
    }

    pub(super) fn place(
        &mut self,
        drafts: &mut [ActivityDraft],
        activity_at: &HashMap<usize, usize>,
        lines: &[LineDraft],
    ) {
        let shapes = self.shapes();
        let mut placed = vec![false; drafts.len()];
        for (&node, &a) in activity_at {
            let element = self.nodes[node].element;
            // Elements of a called process are drawn in a diagram of their own.
            if !self.nodes[node].prefix.is_empty() {
                continue;
            }
            let Some(&(x, y, w, h)) = element.attr("id").and_then(|id| shapes.get(id)) else { continue };
            let box_height = f64::from(activity_height(drafts[a].events.len()));
            let half_width = f64::from(ACTIVITY_WIDTH) / 2.0;
            let is_box = is_task(&element.name) || element.name == "callActivity";
            let (px, py) = if self.ours {
                // flowdesk's own diagram: exact, in canvas units.
                if is_box { (x, y) } else { (x + w / 2.0 - half_width, y + h / 2.0 - box_height / 2.0) }
            } else {
                let (cx, cy) = ((x + w / 2.0) * SCALE_X, (y + h / 2.0) * SCALE_Y);
                let grid = f64::from(GRID);
                (((cx - half_width) / grid).round() * grid, ((cy - box_height / 2.0) / grid).round() * grid)
            };
            let limit = f64::from(limits::COORDINATE);
            drafts[a].position = Position { x: px.clamp(-limit, limit) as f32, y: py.clamp(-limit, limit) as f32 };
            placed[a] = true;
        }
        if placed.iter().all(|p| *p) {
            return;
        }
        // The rest by depth from the start, left to right, below what the
        // diagram placed.
        let top = drafts
            .iter()
            .zip(&placed)
            .filter(|(_, p)| **p)
            .map(|(a, _)| a.position.y + activity_height(a.events.len()) + 80.0)
            .fold(60.0f32, f32::max);
        let index: HashMap<&str, usize> = drafts.iter().enumerate().map(|(i, a)| (a.id.as_str(), i)).collect();
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); drafts.len()];
        for line in lines {
            if let (Some(&f), Some(&t)) = (index.get(line.from.as_str()), index.get(line.to.as_str())) {
                next[f].push(t);
            }
        }
        let mut depth: Vec<Option<usize>> = vec![None; drafts.len()];
        let roots = (0..drafts.len()).filter(|&i| drafts[i].start).chain(0..drafts.len());
        for root in roots {
            if depth[root].is_some() {
                continue;
            }
            depth[root] = Some(0);
            let mut queue = VecDeque::from([root]);
            while let Some(at) = queue.pop_front() {
                for &to in &next[at] {
                    if depth[to].is_none() {
                        depth[to] = Some(depth[at].unwrap_or(0) + 1);
                        queue.push_back(to);
                    }
                }
            }
        }
        // A process deeper than `BAND_COLUMNS` goes on in bands below, as
        // lines of text do, so that it stays on the canvas.
        let mut rows: HashMap<usize, usize> = HashMap::new();
        let mut slots = Vec::new();
        for a in 0..drafts.len() {
            if placed[a] {
                continue;
            }
            let column = depth[a].unwrap_or(0);
            let row = rows.entry(column).or_insert(0);
            slots.push((a, column, *row));
            *row += 1;
        }
        let band_rows = rows.values().copied().max().unwrap_or(1) + 1;
        for (a, column, row) in slots {
            let (band, column) = (column / BAND_COLUMNS, column % BAND_COLUMNS);
            let y = top + ((band * band_rows + row) as f32) * 140.0;
            drafts[a].position = Position { x: 60.0 + column as f32 * 280.0, y: y.min(limits::COORDINATE) };
        }
    }
}
