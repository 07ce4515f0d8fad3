//! The process being designed: the draft, where it is saved, its undo history
//! and its problems.
//!
//! Undo keeps whole snapshots of the draft. A draft of 500 activities is a few
//! hundred kilobytes, so this is cheap, and it makes every edit undoable by
//! construction, moves and multi-element pastes included. Consecutive edits
//! with the same coalescing key (one drag, typing in one field) make a single
//! undo step.

use std::path::{Path, PathBuf};

use crate::model::{Position, Problem, ProcessDraft, ScriptHost, validate};

/// How the draft on screen compares with a deployed version of its process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sameness {
    /// The same definition: deploying it again would make an identical version.
    Identical,
    /// Only where the boxes sit differs. Instances would run the same way,
    /// but the monitor draws an instance on its own version's layout, so a
    /// new version is still a change a user can see.
    LayoutOnly,
    /// Activities, events, lines, rules, fields or names differ.
    Different,
}

/// Compares two definitions as flowdesk stores them: their serialised
/// `.process.json` form, so whitespace, key order and defaults left out of a
/// file never make two definitions differ.
pub fn compare_definitions(draft: &ProcessDraft, deployed: &ProcessDraft) -> Sameness {
    if draft.to_json() == deployed.to_json() {
        return Sameness::Identical;
    }
    let without_layout = |definition: &ProcessDraft| {
        let mut definition = definition.clone();
        for activity in &mut definition.activities {
            activity.position = Position::default();
        }
        definition.to_json()
    };
    if without_layout(draft) == without_layout(deployed) { Sameness::LayoutOnly } else { Sameness::Different }
}

/// Which consecutive edits merge into one undo step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Coalesce {
    /// Every edit is its own step.
    Never,
    /// Edits with the same key in a row are one step (a drag, typing in a field).
    Key(String),
    /// Moving boxes: one step per drag, and only the layout changes, so the
    /// draft is not validated again on every frame of the drag.
    Layout,
}

#[derive(Debug, Clone)]
struct Snapshot {
    draft: ProcessDraft,
    revision: u64,
    content_revision: u64,
}

pub struct Document {
    draft: ProcessDraft,
    path: Option<PathBuf>,
    /// Bumped on every edit; compared with `saved_revision` for the dirty mark.
    revision: u64,
    /// The revision of the last edit that changed more than positions.
    content_revision: u64,
    saved_revision: u64,
    undo: Vec<Snapshot>,
    redo: Vec<Snapshot>,
    last_coalesce: Option<String>,
    problems: Vec<Problem>,
    /// The revision `problems` were computed for.
    checked_revision: Option<u64>,
    next_revision: u64,
}

/// Keeps memory bounded on long sessions.
const UNDO_LIMIT: usize = 500;

impl Document {
    pub fn new(draft: ProcessDraft, path: Option<PathBuf>) -> Document {
        Document {
            draft,
            path,
            revision: 0,
            content_revision: 0,
            saved_revision: 0,
            undo: Vec::new(),
            redo: Vec::new(),
            last_coalesce: None,
            problems: Vec::new(),
            checked_revision: None,
            next_revision: 1,
        }
    }

    /// An empty process with one start activity, ready to draw on.
    pub fn untitled() -> Document {
        let draft = ProcessDraft::from_json(
            r#"{ "name": "untitled", "activities": [
                 { "id": "start", "name": "Start", "start": true, "position": { "x": 80.0, "y": 120.0 } } ] }"#,
            "new process",
        );
        // The literal above is valid; fall back to an empty draft rather than panic.
        let draft = draft.unwrap_or_else(|_| ProcessDraft {
            name: "untitled".to_owned(),
            description: String::new(),
            script_time_limit_ms: None,
            time_zone: None,
            fields: Vec::new(),
            activities: Vec::new(),
            lines: Vec::new(),
        });
        Document::new(draft, None)
    }

    pub fn draft(&self) -> &ProcessDraft {
        &self.draft
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn is_dirty(&self) -> bool {
        self.revision != self.saved_revision
    }

    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A short name for the title bar and dialogs.
    pub fn title(&self) -> String {
        match &self.path {
            Some(path) => path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            None => format!("{} (not saved)", self.draft.name),
        }
    }

    /// Applies an edit as one undo step (or part of the current one).
    pub fn edit(&mut self, coalesce: Coalesce, apply: impl FnOnce(&mut ProcessDraft)) {
        let layout_only = coalesce == Coalesce::Layout;
        let key = match coalesce {
            Coalesce::Never => None,
            Coalesce::Key(key) => Some(key),
            Coalesce::Layout => Some("layout".to_owned()),
        };
        let merge = key.is_some() && key == self.last_coalesce;
        if !merge {
            self.undo.push(self.snapshot());
            if self.undo.len() > UNDO_LIMIT {
                self.undo.remove(0);
            }
        }
        self.redo.clear();
        apply(&mut self.draft);
        self.last_coalesce = key;
        self.revision = self.next_revision;
        self.next_revision += 1;
        if !layout_only {
            self.content_revision = self.revision;
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot { draft: self.draft.clone(), revision: self.revision, content_revision: self.content_revision }
    }

    fn restore(&mut self, snapshot: Snapshot) -> Snapshot {
        let current = self.snapshot();
        self.draft = snapshot.draft;
        self.revision = snapshot.revision;
        self.content_revision = snapshot.content_revision;
        self.last_coalesce = None;
        current
    }

    /// Ends the current coalesced step: the next edit starts a new one.
    pub fn seal(&mut self) {
        self.last_coalesce = None;
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    pub fn undo(&mut self) -> bool {
        let Some(previous) = self.undo.pop() else { return false };
        let current = self.restore(previous);
        self.redo.push(current);
        true
    }

    pub fn redo(&mut self) -> bool {
        let Some(next) = self.redo.pop() else { return false };
        let current = self.restore(next);
        self.undo.push(current);
        true
    }

    /// Records that the draft was written to `path`.
    pub fn mark_saved(&mut self, path: PathBuf) {
        self.path = Some(path);
        self.saved_revision = self.revision;
        self.last_coalesce = None;
    }

    /// Every problem of the draft, recomputed only when it changed.
    pub fn problems(&mut self, host: &ScriptHost) -> &[Problem] {
        if self.checked_revision != Some(self.content_revision) {
            self.problems = validate(&self.draft, host);
            self.checked_revision = Some(self.content_revision);
        }
        &self.problems
    }

    /// The last computed problems, without recomputing.
    pub fn known_problems(&self) -> &[Problem] {
        &self.problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definitions_compare_by_content_then_by_layout() {
        let file = include_str!("../../../samples/callback.process.json");
        let draft = ProcessDraft::from_json(file, "callback").unwrap();
        // The same definition written differently: one line, keys reordered.
        let value: serde_json::Value = serde_json::from_str(file).unwrap();
        let compact = ProcessDraft::from_json(&serde_json::to_string(&value).unwrap(), "compact").unwrap();
        assert_eq!(compare_definitions(&draft, &compact), Sameness::Identical);

        let mut moved = draft.clone();
        moved.activities[1].position.x += 40.0;
        assert_eq!(compare_definitions(&moved, &draft), Sameness::LayoutOnly);

        let mut renamed = moved.clone();
        renamed.activities[1].name.push_str(" again");
        assert_eq!(compare_definitions(&renamed, &draft), Sameness::Different);
        let mut rule = draft.clone();
        rule.lines[0].rule = "true".to_owned();
        assert_eq!(compare_definitions(&rule, &draft), Sameness::Different);
    }

    #[test]
    fn coalesced_edits_undo_as_one_step() {
        let mut doc = Document::untitled();
        for x in [10.0, 20.0, 30.0] {
            doc.edit(Coalesce::Key("move".into()), |d| d.activities[0].position.x = x);
        }
        doc.seal();
        doc.edit(Coalesce::Never, |d| d.name = "renamed".into());
        assert!(doc.is_dirty());
        assert!(doc.undo());
        assert_eq!(doc.draft().name, "untitled");
        assert_eq!(doc.draft().activities[0].position.x, 30.0);
        assert!(doc.undo());
        assert_eq!(doc.draft().activities[0].position.x, 80.0);
        assert!(!doc.is_dirty(), "back at the opened state");
        assert!(doc.redo() && doc.redo());
        assert_eq!(doc.draft().name, "renamed");
    }
}
