//! The properties of a sub-process (IPC) event: the child process and
//! version, the child's folio, the input and output mappings, and
//! *Synchronous*, whose help says what it means here (wait for the child),
//! unlike a server event's (do not wait).

use egui::{Grid, RichText, Ui};

use crate::gui::designer::properties::{problems_ui, text_row};
use crate::gui::designer::{Coalesce, Designer, Edit};
use crate::gui::theme;
use crate::model::{ActivityDraft, EventDraft, IpcDraft, Location, MappingDraft, ProcessDraft};

/// The help of the Synchronous box: K2 users know both meanings.
pub const SYNCHRONOUS_HELP: &str = "For an IPC event Synchronous means WAIT: on, the parent waits until the child completes, then copies the output mappings back and goes on; off, it starts the child and goes on at once. (For a server event it is the other way round: synchronous means it does not wait.)";

pub fn ipc_ui(
    ui: &mut Ui,
    designer: &Designer,
    activity: &ActivityDraft,
    index: usize,
    event: &IpcDraft,
    edits: &mut Vec<Edit>,
) {
    let activity_id = activity.id.as_str();
    let owned = || activity_id.to_owned();
    ui.heading("Sub-process (IPC) event");
    ui.label(RichText::new(format!("in activity {}", activity.name)).weak());
    Grid::new("ipc-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        let key = |what: &str| format!("ipc-{what}:{activity_id}:{index}");
        let a = owned();
        text_row(ui, "Name", &event.name, key("name"), edits, move |d, v| with_ipc(d, &a, index, |e| e.name = v));
        let a = owned();
        text_row(ui, "Child process", &event.process, key("process"), edits, move |d, v| {
            with_ipc(d, &a, index, |e| e.process = v)
        });
        let a = owned();
        let version = event.version.map(|v| v.to_string()).unwrap_or_default();
        text_row(ui, "Version", &version, key("version"), edits, move |d, v| {
            // Empty: the default version when the event runs. Text that is
            // no number keeps the version as it was.
            let parsed = if v.trim().is_empty() { Some(None) } else { v.trim().parse().ok().map(Some) };
            if let Some(version) = parsed {
                with_ipc(d, &a, index, |e| e.version = version);
            }
        });
        let a = owned();
        text_row(ui, "Child folio", &event.folio, key("folio"), edits, move |d, v| {
            with_ipc(d, &a, index, |e| e.folio = v)
        });
        ui.label("");
        let mut synchronous = event.synchronous;
        if ui.checkbox(&mut synchronous, "Synchronous (wait for the child)").on_hover_text(SYNCHRONOUS_HELP).changed() {
            let a = owned();
            edits.push(Edit::new(Coalesce::Never, move |d| with_ipc(d, &a, index, |e| e.synchronous = synchronous)));
        }
        ui.end_row();
    });
    ui.label(RichText::new("Version empty: the default version when the event runs. Folio empty: the parent's folio; ${field} placeholders are filled in.").small().weak());
    ui.colored_label(theme::IPC_EVENT, SYNCHRONOUS_HELP);
    ui.separator();
    mappings_ui(ui, activity_id, index, event, Side::Inputs, edits);
    if event.synchronous {
        ui.separator();
        mappings_ui(ui, activity_id, index, event, Side::Outputs, edits);
    }
    problems_ui(
        ui,
        designer,
        |location| matches!(location, Location::Event { activity_id: a, index: i, .. } if *a == activity_id && *i == index),
    );
}

#[derive(Clone, Copy)]
enum Side {
    Inputs,
    Outputs,
}

impl Side {
    fn of(self, event: &mut IpcDraft) -> &mut Vec<MappingDraft> {
        match self {
            Side::Inputs => &mut event.inputs,
            Side::Outputs => &mut event.outputs,
        }
    }
}

fn mappings_ui(ui: &mut Ui, activity_id: &str, index: usize, event: &IpcDraft, side: Side, edits: &mut Vec<Edit>) {
    let (title, hint, list) = match side {
        Side::Inputs => (
            "Input mappings",
            "When the child starts: from a field of this process (or a template) to a child field.",
            &event.inputs,
        ),
        Side::Outputs => (
            "Output mappings",
            "When the child completes: from a child field to a field of this process.",
            &event.outputs,
        ),
    };
    ui.label(RichText::new(title).strong());
    ui.label(RichText::new(hint).small().weak());
    let word = match side {
        Side::Inputs => "Input",
        Side::Outputs => "Output",
    };
    Grid::new(("ipc-mappings", word)).num_columns(2).spacing([8.0, 4.0]).show(ui, |ui| {
        for (row, mapping) in list.iter().enumerate() {
            let key = |end: &str| format!("ipc-{word}-{end}:{activity_id}:{index}:{row}");
            let a = activity_id.to_owned();
            text_row(ui, &format!("{word} {} from", row + 1), &mapping.from, key("from"), edits, move |d, v| {
                with_ipc(d, &a, index, |e| {
                    if let Some(m) = side.of(e).get_mut(row) {
                        m.from = v;
                    }
                })
            });
            let a = activity_id.to_owned();
            text_row(ui, &format!("{word} {} to", row + 1), &mapping.to, key("to"), edits, move |d, v| {
                with_ipc(d, &a, index, |e| {
                    if let Some(m) = side.of(e).get_mut(row) {
                        m.to = v;
                    }
                })
            });
            ui.label("");
            if ui.small_button(format!("Remove {} {}", word.to_lowercase(), row + 1)).clicked() {
                let a = activity_id.to_owned();
                edits.push(Edit::new(Coalesce::Never, move |d| {
                    with_ipc(d, &a, index, |e| {
                        let list = side.of(e);
                        if row < list.len() {
                            list.remove(row);
                        }
                    })
                }));
            }
            ui.end_row();
        }
    });
    if ui.button(format!("Add {} mapping", word.to_lowercase())).clicked() {
        let a = activity_id.to_owned();
        edits.push(Edit::new(Coalesce::Never, move |d| {
            with_ipc(d, &a, index, |e| side.of(e).push(MappingDraft::default()))
        }));
    }
}

fn with_ipc(draft: &mut ProcessDraft, activity: &str, index: usize, change: impl FnOnce(&mut IpcDraft)) {
    if let Some(EventDraft::Ipc(event)) =
        draft.activities.iter_mut().find(|a| a.id == activity).and_then(|a| a.events.get_mut(index))
    {
        change(event);
    }
}
