//! The properties panel's editors for time: an activity's escalations, a
//! timer event's due time and the process's time zone. Like the rest of
//! the panel they return [`Edit`]s and change nothing themselves.

use std::rc::Rc;

use egui::{ComboBox, Grid, RichText, TextEdit, Ui};

use crate::gui::designer::properties::{draft_zone, problems_ui, stored_value, text_row};
use crate::gui::designer::request_editor::{RequestEditor, locate};
use crate::gui::designer::{Coalesce, Designer, Edit, ops};
use crate::gui::theme;
use crate::model::{
    ActivityDraft, EscalationActionDraft, EscalationDraft, EventDraft, FieldType, Location, NotifyDraft, ProcessDraft,
    ProcessZone, TimerDraft,
};

/// The process's time zone, as a row of the process page's grid.
pub fn time_zone_row(ui: &mut Ui, draft: &ProcessDraft, edits: &mut Vec<Edit>) {
    let label = ui.label("Time zone");
    let mut zone = draft.time_zone.clone().unwrap_or_default();
    let response = ui
        .add(TextEdit::singleline(&mut zone).hint_text("UTC").desired_width(f32::INFINITY))
        .labelled_by(label.id)
        .on_hover_text(
            "An IANA name such as Europe/London: where deadlines count days and local date-times are read. Empty: UTC.",
        );
    if response.changed() {
        edits.push(Edit::new(Coalesce::Key("process-time-zone".into()), move |d| {
            d.time_zone = (!zone.trim().is_empty()).then_some(zone);
        }));
    }
    ui.end_row();
}

/// What is wrong with the time zone, under the grid (where it can wrap).
pub fn time_zone_problem_ui(ui: &mut Ui, draft: &ProcessDraft) {
    if let Some(Err(err)) = draft.time_zone.as_deref().map(ProcessZone::named) {
        ui.colored_label(theme::ERROR, err.to_string());
    }
}

/// A widget labelled by the grid row's `label` (which then is not a node of
/// its own for readers), under an accessible `name` that tells it apart
/// from the same row of another escalation ("Escalation 2 action").
fn accessible(response: egui::Response, label: egui::Id, role: egui::Role, name: String) -> egui::Response {
    let response = response.labelled_by(label);
    response.widget_info(|| egui::WidgetInfo::labeled(role, true, &name));
    response
}

/// The date and date-time fields, which a due time may name.
fn time_fields(draft: &ProcessDraft) -> Vec<String> {
    draft
        .fields
        .iter()
        .filter(|f| matches!(FieldType::from_name(&f.field_type), Some(FieldType::Date | FieldType::DateTime)))
        .map(|f| f.name.clone())
        .collect()
}

/// When something falls due: `after` a duration or at a field, as a row of
/// the caller's grid. `set` makes the edit that stores (after, at_field).
fn due_row(
    ui: &mut Ui,
    draft: &ProcessDraft,
    prefix: &str,
    key: &str,
    (after, at_field): (&str, &str),
    set: Rc<dyn Fn(Coalesce, String, String) -> Edit>,
    edits: &mut Vec<Edit>,
) {
    let when = ui.label("When");
    let at = !at_field.is_empty();
    let fields = time_fields(draft);
    ui.vertical(|ui| {
        ui.horizontal(|ui| {
            let after_choice = ui.add(egui::Button::selectable(!at, "after a duration"));
            after_choice.widget_info(|| {
                egui::WidgetInfo::selected(egui::Role::Button, true, !at, format!("{prefix}after a duration"))
            });
            if after_choice.clicked() && at {
                edits.push(set(Coalesce::Never, "1h".to_owned(), String::new()));
            }
            // A field to wait for must exist before the choice makes sense.
            let can = !fields.is_empty() || at;
            let at_choice = ui
                .add_enabled(can, egui::Button::selectable(at, "at a field"))
                .on_disabled_hover_text("Add a date or datetime field to the process first.");
            at_choice
                .widget_info(|| egui::WidgetInfo::selected(egui::Role::Button, can, at, format!("{prefix}at a field")));
            if at_choice.clicked() && !at {
                edits.push(set(Coalesce::Never, String::new(), fields.first().cloned().unwrap_or_default()));
            }
        });
        if at {
            let combo = ComboBox::from_id_salt(("due-field", key)).selected_text(at_field).show_ui(ui, |ui| {
                for field in &fields {
                    if ui.selectable_label(field == at_field, field).clicked() {
                        edits.push(set(Coalesce::Never, String::new(), field.clone()));
                    }
                }
            });
            accessible(combo.response, when.id, egui::Role::ComboBox, format!("{prefix}field"));
        } else {
            let mut text = after.to_owned();
            let response =
                ui.add(TextEdit::singleline(&mut text).hint_text("30m, 2h, 3d, 1h 30m, PT2H").desired_width(140.0));
            let response = accessible(response, when.id, egui::Role::TextInput, format!("{prefix}after"));
            if response.changed() {
                edits.push(set(Coalesce::Key(format!("due-after:{key}")), text, String::new()));
            }
        }
    });
    ui.end_row();
}

/// A timer event's page.
pub fn timer_ui(
    ui: &mut Ui,
    designer: &Designer,
    activity: &ActivityDraft,
    index: usize,
    timer: &TimerDraft,
    edits: &mut Vec<Edit>,
) {
    let draft = designer.doc.draft();
    let activity_id = activity.id.clone();
    ui.heading("Timer");
    ui.label(RichText::new(format!("in activity {}", activity.name)).weak());
    Grid::new("timer-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        let owned = activity_id.clone();
        text_row(ui, "Name", &timer.name, format!("event-name:{activity_id}:{index}"), edits, move |d, v| {
            with_timer(d, &owned, index, |t| t.name = v);
        });
        let owned = activity_id.clone();
        let set: Rc<dyn Fn(Coalesce, String, String) -> Edit> =
            Rc::new(move |coalesce: Coalesce, after: String, at_field: String| {
                let owned = owned.clone();
                Edit::new(coalesce, move |d| {
                    with_timer(d, &owned, index, |t| {
                        t.after = after;
                        t.at_field = at_field;
                    })
                })
            });
        let key = format!("timer:{activity_id}:{index}");
        due_row(ui, draft, "Timer ", &key, (timer.after.as_str(), timer.at_field.as_str()), set, edits);
    });
    ui.colored_label(
        theme::TIMER,
        "Waits until then, and the activity goes on. The wait starts when the event is reached; a date field means its midnight in the process's time zone.",
    );
    problems_ui(
        ui,
        designer,
        |location| matches!(location, Location::Event { activity_id: a, index: i, .. } if *a == activity_id && *i == index),
    );
}

fn with_timer(draft: &mut ProcessDraft, activity: &str, index: usize, change: impl FnOnce(&mut TimerDraft)) {
    if let Some(EventDraft::Timer(timer)) =
        draft.activities.iter_mut().find(|a| a.id == activity).and_then(|a| a.events.get_mut(index))
    {
        change(timer);
    }
}

fn with_escalation(draft: &mut ProcessDraft, activity: &str, index: usize, change: impl FnOnce(&mut EscalationDraft)) {
    if let Some(escalation) =
        draft.activities.iter_mut().find(|a| a.id == activity).and_then(|a| a.escalations.get_mut(index))
    {
        change(escalation);
    }
}

fn escalation_edit(
    activity: &str,
    index: usize,
    coalesce: Coalesce,
    change: impl FnOnce(&mut EscalationDraft) + 'static,
) -> Edit {
    let activity = activity.to_owned();
    Edit::new(coalesce, move |d| with_escalation(d, &activity, index, change))
}

/// The action kinds, as the action box lists them.
const ACTIONS: [(&str, &str); 5] = [
    ("finish", "Finish the item"),
    ("go_to", "Go to an activity"),
    ("repeat", "Repeat the event"),
    ("notify", "Notify (HTTP request)"),
    ("fail", "Fail the instance"),
];

/// A new action of a kind, ready to fill in.
fn new_action(kind: &str, draft: &ProcessDraft, activity_id: &str) -> EscalationActionDraft {
    match kind {
        "finish" => EscalationActionDraft::Finish { set: Default::default() },
        "go_to" => EscalationActionDraft::GoTo {
            activity: draft.activities.iter().find(|a| a.id != activity_id).map(|a| a.id.clone()).unwrap_or_default(),
        },
        "repeat" => EscalationActionDraft::Repeat { times: Some(3) },
        "notify" => EscalationActionDraft::Notify(NotifyDraft::default()),
        _ => EscalationActionDraft::Fail,
    }
}

/// The activity page's escalations: each with its due time, action and
/// problems; add, remove and reorder.
pub fn escalations_ui(ui: &mut Ui, designer: &Designer, activity: &ActivityDraft, edits: &mut Vec<Edit>) {
    let draft = designer.doc.draft();
    let activity_id = activity.id.as_str();
    ui.heading("Escalations");
    ui.label(
        RichText::new(
            "When a wait of this activity (an asynchronous event or a timer) goes on too long, each escalation acts in turn.",
        )
        .small()
        .weak(),
    );
    let count = activity.escalations.len();
    for (index, escalation) in activity.escalations.iter().enumerate() {
        let prefix = format!("Escalation {} ", index + 1);
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.strong(format!("{}. {}", index + 1, escalation.name));
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    let remove = ui.small_button("Remove");
                    remove.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, format!("Remove escalation {}", index + 1))
                    });
                    if remove.clicked() {
                        let owned = activity_id.to_owned();
                        edits.push(Edit::new(Coalesce::Never, move |d| ops::remove_escalation(d, &owned, index)));
                    }
                    for (arrow, to, words) in [("↓", index + 1, "down"), ("↑", index.wrapping_sub(1), "up")] {
                        let button = ui.add_enabled(to < count, egui::Button::new(arrow).small());
                        button.widget_info(|| {
                            egui::WidgetInfo::labeled(
                                egui::Role::Button,
                                to < count,
                                format!("Move escalation {} {words}", index + 1),
                            )
                        });
                        if button.clicked() {
                            let owned = activity_id.to_owned();
                            edits.push(Edit::new(Coalesce::Never, move |d| ops::move_escalation(d, &owned, index, to)));
                        }
                    }
                });
            });
            escalation_ui(ui, draft, activity, index, escalation, &prefix, edits);
            problems_ui(ui, designer, |location| {
                matches!(location, Location::Escalation { activity_id: a, index: i, .. } if a == activity_id && *i == index)
            });
        });
    }
    if ui.button("Add escalation").clicked() {
        let owned = activity_id.to_owned();
        edits.push(Edit::new(Coalesce::Never, move |d| {
            ops::add_escalation(d, &owned);
        }));
    }
    // The activity's own problems (escalations where nothing waits, say).
    problems_ui(ui, designer, |location| matches!(location, Location::Activity { id, .. } if id == activity_id));
}

fn escalation_ui(
    ui: &mut Ui,
    draft: &ProcessDraft,
    activity: &ActivityDraft,
    index: usize,
    escalation: &EscalationDraft,
    prefix: &str,
    edits: &mut Vec<Edit>,
) {
    let activity_id = activity.id.as_str();
    let key = format!("{activity_id}:{index}");
    Grid::new(("escalation", &key)).num_columns(2).spacing([8.0, 6.0]).min_col_width(56.0).show(ui, |ui| {
        let label = ui.label("Name");
        let mut name = escalation.name.clone();
        let response = ui.add(TextEdit::singleline(&mut name).desired_width(f32::INFINITY));
        let response = accessible(response, label.id, egui::Role::TextInput, format!("{prefix}name"));
        if response.changed() {
            edits.push(escalation_edit(activity_id, index, Coalesce::Key(format!("esc-name:{key}")), move |e| {
                e.name = name
            }));
        }
        ui.end_row();

        let owned = activity_id.to_owned();
        let set: Rc<dyn Fn(Coalesce, String, String) -> Edit> =
            Rc::new(move |coalesce: Coalesce, after: String, at_field: String| {
                escalation_edit(&owned, index, coalesce, move |e| {
                    e.after = after;
                    e.at_field = at_field;
                })
            });
        due_row(ui, draft, prefix, &key, (escalation.after.as_str(), escalation.at_field.as_str()), set, edits);

        let label = ui.label("Action");
        let kind = escalation.action.kind();
        let shown = ACTIONS.iter().find(|(k, _)| *k == kind).map_or(kind, |(_, words)| *words);
        let combo = ComboBox::from_id_salt(("esc-action", &key)).selected_text(shown).show_ui(ui, |ui| {
            for (choice, words) in ACTIONS {
                if ui.selectable_label(choice == kind, words).clicked() && choice != kind {
                    let action = new_action(choice, draft, activity_id);
                    edits.push(escalation_edit(activity_id, index, Coalesce::Never, move |e| e.action = action));
                }
            }
        });
        accessible(combo.response, label.id, egui::Role::ComboBox, format!("{prefix}action"));
        ui.end_row();

        match &escalation.action {
            EscalationActionDraft::GoTo { activity: target } => {
                let label = ui.label("Go to");
                let shown = draft.activity(target).map_or_else(|| target.clone(), |a| a.name.clone());
                let combo = ComboBox::from_id_salt(("esc-go-to", &key)).selected_text(shown).show_ui(ui, |ui| {
                    for other in &draft.activities {
                        if ui.selectable_label(other.id == *target, &other.name).clicked() {
                            let id = other.id.clone();
                            edits.push(escalation_edit(activity_id, index, Coalesce::Never, move |e| {
                                e.action = EscalationActionDraft::GoTo { activity: id }
                            }));
                        }
                    }
                });
                accessible(combo.response, label.id, egui::Role::ComboBox, format!("{prefix}go to"));
                ui.end_row();
            }
            EscalationActionDraft::Repeat { times } => {
                let label = ui.label("Times");
                let mut value = times.unwrap_or(0);
                let response = ui
                    .add(egui::DragValue::new(&mut value).range(1..=1000))
                    .on_hover_text("At most this many times, at after, 2 × after, …; then the next escalations apply.");
                let response = accessible(response, label.id, egui::Role::SpinButton, format!("{prefix}times"));
                if response.changed() {
                    edits.push(escalation_edit(
                        activity_id,
                        index,
                        Coalesce::Key(format!("esc-times:{key}")),
                        move |e| e.action = EscalationActionDraft::Repeat { times: Some(value) },
                    ));
                }
                ui.end_row();
            }
            EscalationActionDraft::Notify(notify) => {
                notify_editor(activity_id, index, notify, prefix, &key).rows_ui(ui, edits);
            }
            EscalationActionDraft::Finish { .. } | EscalationActionDraft::Fail => {}
        }
    });
    match &escalation.action {
        EscalationActionDraft::Finish { set } => finish_values_ui(ui, draft, activity_id, index, set, prefix, edits),
        EscalationActionDraft::Notify(notify) => {
            notify_editor(activity_id, index, notify, prefix, &key).headers_and_body_ui(ui, edits);
        }
        EscalationActionDraft::Fail => {
            ui.label(RichText::new("Puts the instance in Error, for an operator to repair.").small().weak());
        }
        EscalationActionDraft::GoTo { .. } => {
            ui.label(RichText::new("Cancels the waiting item and goes to that activity.").small().weak());
        }
        EscalationActionDraft::Repeat { .. } => {
            ui.label(RichText::new("Runs the event's script or request again, with the same serial.").small().weak());
        }
    }
}

fn notify_editor<'a>(
    activity_id: &str,
    index: usize,
    notify: &'a NotifyDraft,
    prefix: &str,
    key: &str,
) -> RequestEditor<'a> {
    let owned = activity_id.to_owned();
    RequestEditor {
        parts: notify.parts(),
        key: format!("esc:{key}"),
        prefix: prefix.to_owned(),
        locate: locate(move |d| {
            let escalation = d.activities.iter_mut().find(|a| a.id == owned)?.escalations.get_mut(index)?;
            match &mut escalation.action {
                EscalationActionDraft::Notify(notify) => Some(notify.parts_mut()),
                _ => None,
            }
        }),
    }
}

/// The values a `finish` sets: one row each, and a box to add a field.
fn finish_values_ui(
    ui: &mut Ui,
    draft: &ProcessDraft,
    activity_id: &str,
    index: usize,
    set: &std::collections::BTreeMap<String, serde_json::Value>,
    prefix: &str,
    edits: &mut Vec<Edit>,
) {
    let zone = draft_zone(draft);
    ui.label("Sets, as a callback would:");
    for (field, json) in set {
        ui.horizontal(|ui| {
            ui.label(format!("{field} ="));
            let mut text = match json {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let response = ui.add(TextEdit::singleline(&mut text).desired_width(160.0));
            response.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::TextInput, true, format!("{prefix}value of {field}"))
            });
            if response.changed() {
                let field_type =
                    draft.fields.iter().find(|f| f.name == *field).and_then(|f| FieldType::from_name(&f.field_type));
                let stored = stored_value(field_type, &text, &zone).unwrap_or(serde_json::Value::String(text));
                let field = field.clone();
                let key = Coalesce::Key(format!("esc-set:{activity_id}:{index}:{field}"));
                edits.push(escalation_edit(activity_id, index, key, move |e| {
                    if let EscalationActionDraft::Finish { set } = &mut e.action {
                        set.insert(field, stored);
                    }
                }));
            }
            let remove = ui.small_button("Remove");
            remove
                .widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, format!("{prefix}remove {field}")));
            if remove.clicked() {
                let field = field.clone();
                edits.push(escalation_edit(activity_id, index, Coalesce::Never, move |e| {
                    if let EscalationActionDraft::Finish { set } = &mut e.action {
                        set.remove(&field);
                    }
                }));
            }
        });
    }
    let unset: Vec<&str> =
        draft.fields.iter().map(|f| f.name.as_str()).filter(|name| !set.contains_key(*name)).collect();
    if unset.is_empty() {
        return;
    }
    let combo =
        ComboBox::from_id_salt(("esc-set-field", activity_id, index)).selected_text("Set a field…").show_ui(ui, |ui| {
            for name in unset {
                if ui.selectable_label(false, name).clicked() {
                    let field = name.to_owned();
                    edits.push(escalation_edit(activity_id, index, Coalesce::Never, move |e| {
                        if let EscalationActionDraft::Finish { set } = &mut e.action {
                            set.insert(field, serde_json::Value::String(String::new()));
                        }
                    }));
                }
            }
        });
    combo
        .response
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, format!("{prefix}set a field")));
}
