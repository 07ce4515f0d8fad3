//! The process designer: palette, canvas, properties and problems around one
//! [`Document`].
//!
//! Panels never edit the draft directly: the canvas returns [`Action`]s and
//! the properties panel returns [`Edit`]s; [`Designer::apply`] turns each into
//! one undoable edit after the panels are drawn.

pub mod canvas;
pub mod deadlines;
pub mod document;
pub mod ipc_editor;
pub mod layout;
pub mod mail_editor;
pub mod ops;
pub mod palette;
pub mod problems;
pub mod properties;
pub mod request_editor;
pub mod script_editor;

use egui::Ui;

pub use canvas::{Action, Icons, View};
pub use document::{Coalesce, Document};

use crate::model::{EventDraft, Location, ProcessDraft, ScriptHost};

/// One element of the process a user can select.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Element {
    Activity(String),
    Event { activity: String, index: usize },
    Line(usize),
}

impl Element {
    /// The element a validation problem belongs to, if it is on the canvas.
    pub fn from_location(location: &Location) -> Option<Element> {
        match location {
            Location::Process | Location::Field { .. } => None,
            Location::Activity { id, .. } => Some(Element::Activity(id.clone())),
            Location::Event { activity_id, index, .. } => {
                Some(Element::Event { activity: activity_id.clone(), index: *index })
            }
            // Escalations are edited on their activity's page.
            Location::Escalation { activity_id, .. } => Some(Element::Activity(activity_id.clone())),
            Location::Line { index, .. } => Some(Element::Line(*index)),
        }
    }
}

/// A change made in the properties panel.
pub struct Edit {
    pub coalesce: Coalesce,
    pub apply: Box<dyn FnOnce(&mut ProcessDraft)>,
}

impl Edit {
    pub fn new(coalesce: Coalesce, apply: impl FnOnce(&mut ProcessDraft) + 'static) -> Edit {
        Edit { coalesce, apply: Box::new(apply) }
    }
}

pub struct Designer {
    pub doc: Document,
    pub selection: Vec<Element>,
    pub view: View,
    pub snap: bool,
    pub fit_requested: bool,
    /// Where the canvas was drawn in the last frame, in screen points.
    pub canvas_rect: egui::Rect,
    /// Frames left in which a requested fit is redone: on the first frames
    /// after opening, the panels around the canvas are still settling.
    pub(crate) fit_frames: u8,
    pub(crate) gesture: canvas::Gesture,
    clipboard: Option<ops::Clip>,
    /// How many times the clipboard was pasted, to offset each paste.
    pastes: u32,
    pub host: ScriptHost,
}

impl Designer {
    pub fn new(doc: Document) -> Designer {
        Designer {
            doc,
            selection: Vec::new(),
            view: View::default(),
            snap: true,
            fit_requested: true,
            fit_frames: 0,
            canvas_rect: egui::Rect::NOTHING,
            gesture: canvas::Gesture::None,
            clipboard: None,
            pastes: 0,
            host: ScriptHost::default(),
        }
    }

    /// Replaces the document (New, Open) and shows all of it.
    pub fn open(&mut self, doc: Document) {
        self.doc = doc;
        self.selection.clear();
        self.gesture = canvas::Gesture::None;
        self.fit_requested = true;
    }

    /// The canvas, with its actions applied.
    pub fn canvas_ui(&mut self, ui: &mut Ui, icons: Option<&Icons>) {
        let actions = canvas::canvas_ui(self, ui, icons);
        for action in actions {
            self.apply(action, ui.ctx());
        }
    }

    pub fn edit(&mut self, edit: Edit) {
        self.doc.edit(edit.coalesce, edit.apply);
    }

    pub fn undo(&mut self) {
        if self.doc.undo() {
            self.prune_selection();
        }
    }

    pub fn redo(&mut self) {
        if self.doc.redo() {
            self.prune_selection();
        }
    }

    pub fn select_all(&mut self) {
        self.selection = self.doc.draft().activities.iter().map(|a| Element::Activity(a.id.clone())).collect();
    }

    /// Drops selected elements that no longer exist (after undo, delete...).
    fn prune_selection(&mut self) {
        let draft = self.doc.draft();
        self.selection.retain(|element| match element {
            Element::Activity(id) => draft.activity(id).is_some(),
            Element::Event { activity, index } => draft.activity(activity).is_some_and(|a| *index < a.events.len()),
            Element::Line(index) => *index < draft.lines.len(),
        });
    }

    pub fn apply(&mut self, action: Action, ctx: &egui::Context) {
        match action {
            Action::Select(elements) => self.selection = elements,
            Action::ToggleSelect(element) => match self.selection.iter().position(|e| *e == element) {
                Some(at) => {
                    self.selection.remove(at);
                }
                None => self.selection.push(element),
            },
            Action::AddActivity { at, template } => {
                let Some(template) = palette::TEMPLATES.get(template) else { return };
                let mut new_id = String::new();
                self.doc.edit(Coalesce::Never, |draft| {
                    new_id = ops::add_activity(draft, at, vec![(template.make)(&[])]);
                });
                self.selection = vec![Element::Activity(new_id)];
            }
            Action::AppendEvent { activity, template } => {
                let Some(template) = palette::TEMPLATES.get(template) else { return };
                let mut index = None;
                self.doc.edit(Coalesce::Never, |draft| {
                    let existing: Vec<String> = draft
                        .activity(&activity)
                        .map(|a| a.events.iter().map(|e| e.name().to_owned()).collect())
                        .unwrap_or_default();
                    let names: Vec<&str> = existing.iter().map(String::as_str).collect();
                    index = ops::append_event(draft, &activity, (template.make)(&names));
                });
                if let Some(index) = index {
                    self.selection = vec![Element::Event { activity, index }];
                }
            }
            Action::MoveEvent { from, to } => {
                if from.0 == to.0 && (to.1 == from.1 || to.1 == from.1 + 1) {
                    return; // dropped where it was
                }
                let mut landed = None;
                self.doc.edit(Coalesce::Never, |draft| {
                    landed = ops::move_event(draft, (&from.0, from.1), (&to.0, to.1));
                });
                if let Some(index) = landed {
                    self.selection = vec![Element::Event { activity: to.0, index }];
                }
            }
            Action::MoveActivities(moves) => {
                self.doc.edit(Coalesce::Layout, move |draft| {
                    for (id, position) in moves {
                        if let Some(activity) = draft.activities.iter_mut().find(|a| a.id == id) {
                            activity.position = position;
                        }
                    }
                });
            }
            Action::EndMove => self.doc.seal(),
            Action::Connect { from, to } => {
                let mut index = None;
                self.doc.edit(Coalesce::Never, |draft| index = ops::connect(draft, &from, &to));
                if let Some(index) = index {
                    self.selection = vec![Element::Line(index)];
                }
            }
            Action::ToggleSynchronous { activity, index } => self.toggle_synchronous(&activity, index),
            Action::SetStart(id) => self.doc.edit(Coalesce::Never, |draft| ops::set_start(draft, &id)),
            Action::Delete(elements) => {
                if elements.is_empty() {
                    return;
                }
                self.doc.edit(Coalesce::Never, |draft| ops::delete(draft, &elements));
                self.selection.clear();
            }
            Action::Copy => {
                if let Some(clip) = ops::copy(self.doc.draft(), &self.selection) {
                    // Also on the system clipboard, as JSON another flowdesk can paste.
                    if let Ok(text) = serde_json::to_string_pretty(&clip) {
                        ctx.copy_text(text);
                    }
                    self.clipboard = Some(clip);
                    self.pastes = 0;
                }
            }
            Action::Paste => {
                let from_system = ctx.input(|i| {
                    i.events.iter().find_map(|e| match e {
                        egui::Event::Paste(text) => serde_json::from_str::<ops::Clip>(text).ok(),
                        _ => None,
                    })
                });
                let Some(clip) = from_system.or_else(|| self.clipboard.clone()) else { return };
                self.pastes += 1;
                let offset = 40.0 * self.pastes as f32;
                let mut pasted = Vec::new();
                self.doc.edit(Coalesce::Never, |draft| pasted = ops::paste(draft, &clip, (offset, offset)));
                self.selection = pasted.into_iter().map(Element::Activity).collect();
            }
        }
    }

    pub fn toggle_synchronous(&mut self, activity: &str, index: usize) {
        let activity = activity.to_owned();
        self.doc.edit(Coalesce::Never, move |draft| {
            match draft.activities.iter_mut().find(|a| a.id == activity).and_then(|a| a.events.get_mut(index)) {
                Some(EventDraft::ServerEvent(event)) => event.synchronous = !event.synchronous,
                Some(EventDraft::HttpRequest(event)) => event.synchronous = !event.synchronous,
                Some(EventDraft::Ipc(event)) => event.synchronous = !event.synchronous,
                // A timer always waits; a mail never does.
                Some(EventDraft::Timer(_) | EventDraft::Mail(_)) | None => {}
            }
        });
    }
}
