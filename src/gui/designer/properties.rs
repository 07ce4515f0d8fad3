//! The properties panel: whatever is selected (or the process itself), with
//! every property editable. Changes come back as [`Edit`]s.

use egui::{ComboBox, Grid, RichText, TextEdit, Ui};

use crate::gui::designer::request_editor::{RequestEditor, locate};
use crate::gui::designer::script_editor::script_editor_ui;
use crate::gui::designer::{Coalesce, Designer, Edit, Element, ops};
use crate::gui::designer::{deadlines, mail_editor};
use crate::gui::theme;
use crate::model::{
    ActivityDraft, EventDraft, FieldDraft, FieldType, HttpRequestDraft, Location, PrecedingRule, ProcessDraft,
    ProcessZone, Right, ScriptContext, ScriptFailure, ServerEventDraft, Severity, Value,
};

/// What the panel asks of the app beyond editing the draft.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Grant { user: String, right: Right },
    Revoke { user: String, right: Right },
}

/// Rights on the deployed process, if it is deployed, for the process page.
pub struct RightsView<'a> {
    pub rights: &'a [(String, Right)],
    /// Text typed in the grant box, kept by the app between frames.
    pub new_user: &'a mut String,
    /// A grant or revoke is on its way: the next waits for its answer.
    pub busy: bool,
}

pub fn properties_ui(ui: &mut Ui, designer: &Designer, rights: Option<RightsView<'_>>) -> (Vec<Edit>, Vec<Request>) {
    let mut edits = Vec::new();
    let mut requests = Vec::new();
    let draft = designer.doc.draft();
    egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| match designer.selection.as_slice() {
        [] => process_ui(ui, draft, rights, &mut edits, &mut requests),
        [Element::Activity(id)] => activity_ui(ui, designer, id, &mut edits),
        [Element::Event { activity, index }] => event_ui(ui, designer, activity, *index, &mut edits),
        [Element::Line(index)] => line_ui(ui, designer, *index, &mut edits),
        many => {
            ui.heading(format!("{} elements selected", many.len()));
            ui.label("Press Delete to remove them, Ctrl+C to copy the activities among them.");
        }
    });
    (edits, requests)
}

/// The problems of the elements `belongs` picks, where the designer is
/// looking: errors in red, warnings in amber.
pub(crate) fn problems_ui(ui: &mut Ui, designer: &Designer, belongs: impl Fn(&Location) -> bool) {
    for problem in designer.doc.known_problems().iter().filter(|p| belongs(&p.location)) {
        let color = if problem.severity == Severity::Error { theme::ERROR } else { theme::WARNING };
        ui.colored_label(color, &problem.message);
    }
}

/// A labelled one-line text field; typing in it is one undo step.
pub(crate) fn text_row(
    ui: &mut Ui,
    label: &str,
    value: &str,
    key: String,
    edits: &mut Vec<Edit>,
    apply: impl FnOnce(&mut ProcessDraft, String) + 'static,
) {
    let label = ui.label(label);
    let mut buffer = value.to_owned();
    let response = ui.add(TextEdit::singleline(&mut buffer).desired_width(f32::INFINITY)).labelled_by(label.id);
    if response.changed() {
        edits.push(Edit::new(Coalesce::Key(key), move |draft| apply(draft, buffer)));
    }
    ui.end_row();
}

fn process_ui(
    ui: &mut Ui,
    draft: &ProcessDraft,
    rights: Option<RightsView<'_>>,
    edits: &mut Vec<Edit>,
    requests: &mut Vec<Request>,
) {
    ui.heading("Process");
    Grid::new("process-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        text_row(ui, "Name", &draft.name, "process-name".into(), edits, |d, v| d.name = v);
        deadlines::time_zone_row(ui, draft, edits);
    });
    deadlines::time_zone_problem_ui(ui, draft);
    let label = ui.label("Description");
    let mut description = draft.description.clone();
    if ui
        .add(TextEdit::multiline(&mut description).desired_rows(2).desired_width(f32::INFINITY))
        .labelled_by(label.id)
        .changed()
    {
        edits.push(Edit::new(Coalesce::Key("process-description".into()), move |d| d.description = description));
    }
    ui.separator();
    ui.heading("Data fields");
    let zone = draft_zone(draft);
    Grid::new("fields").num_columns(5).striped(true).spacing([6.0, 4.0]).show(ui, |ui| {
        ui.label(RichText::new("Name").strong());
        ui.label(RichText::new("Type").strong());
        ui.label(RichText::new("Default").strong());
        ui.label(RichText::new("Searchable").strong()).on_hover_text(SEARCHABLE_TIP);
        ui.label("");
        ui.end_row();
        for (index, field) in draft.fields.iter().enumerate() {
            field_row(ui, index, field, &zone, edits);
        }
    });
    if ui.button("Add field").clicked() {
        edits.push(Edit::new(Coalesce::Never, |d| {
            let names: Vec<&str> = d.fields.iter().map(|f| f.name.as_str()).collect();
            let name = crate::gui::designer::palette::unique_name("field", &names).replace(' ', "_");
            d.fields.push(FieldDraft { name, field_type: "string".into(), default: None, searchable: false });
        }));
    }
    ui.separator();
    ui.heading("Rights");
    match rights {
        None => {
            ui.label("Rights are kept per deployed process: deploy it first.");
        }
        Some(view) => rights_ui(ui, view, requests),
    }
}

fn field_row(ui: &mut Ui, index: usize, field: &FieldDraft, zone: &ProcessZone, edits: &mut Vec<Edit>) {
    let mut name = field.name.clone();
    let response = ui.add_sized([120.0, 20.0], TextEdit::singleline(&mut name).hint_text("name"));
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, format!("Field {index} name")));
    if response.changed() {
        edits.push(Edit::new(Coalesce::Key(format!("field-name:{index}")), move |d| {
            if let Some(f) = d.fields.get_mut(index) {
                f.name = name;
            }
        }));
    }
    let known = FieldType::from_name(&field.field_type);
    let shown = known.map(|t| t.name().to_owned()).unwrap_or_else(|| format!("{} (unknown)", field.field_type));
    let combo = ComboBox::from_id_salt(("field-type", index)).selected_text(shown).width(90.0).show_ui(ui, |ui| {
        for field_type in FieldType::ALL {
            if ui.selectable_label(known == Some(field_type), field_type.name()).clicked() {
                edits.push(Edit::new(Coalesce::Never, move |d| {
                    if let Some(f) = d.fields.get_mut(index) {
                        f.field_type = field_type.name().to_owned();
                        // A default of the old type rarely fits the new one.
                        f.default = None;
                    }
                }));
            }
        }
    });
    combo.response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, format!("Field {index} type")));

    let default_text = match &field.default {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    };
    if known == Some(FieldType::Boolean) {
        let mut checked = field.default.as_ref().and_then(|v| v.as_bool()).unwrap_or(false);
        let checkbox = ui.checkbox(&mut checked, "");
        checkbox
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::CheckBox, true, format!("Field {index} default")));
        if checkbox.changed() {
            edits.push(Edit::new(Coalesce::Never, move |d| {
                if let Some(f) = d.fields.get_mut(index) {
                    f.default = Some(serde_json::Value::Bool(checked));
                }
            }));
        }
    } else {
        let mut text = default_text;
        let response = ui.add_sized([100.0, 20.0], TextEdit::singleline(&mut text).hint_text("default"));
        response
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, format!("Field {index} default")));
        if response.changed() {
            let zone = zone.clone();
            edits.push(Edit::new(Coalesce::Key(format!("field-default:{index}")), move |d| {
                if let Some(f) = d.fields.get_mut(index) {
                    f.default = stored_value(known, &text, &zone);
                }
            }));
        }
    }
    searchable_ui(ui, index, field, known, edits);
    if ui.small_button("Remove").on_hover_text("Remove this field").clicked() {
        edits.push(Edit::new(Coalesce::Never, move |d| {
            if index < d.fields.len() {
                d.fields.remove(index);
            }
        }));
    }
    ui.end_row();
}

/// Why a field is searchable, and why not every field is.
const SEARCHABLE_TIP: &str = "Searchable: the instance list finds this field's value (= < <= > >=) through an index, \
     fast at a million instances. Not every field is, because each searchable field costs a little on every \
     write of this process's instances, and its index is built from every instance at the deploy that adds it.";

/// The field's Searchable checkbox. A decimal cannot be searchable (its
/// stored text does not sort as its number): the box is off for it, unless
/// a file set it, so that it can be cleared.
fn searchable_ui(ui: &mut Ui, index: usize, field: &FieldDraft, known: Option<FieldType>, edits: &mut Vec<Edit>) {
    let mut checked = field.searchable;
    let why_not = known.and_then(FieldType::unsearchable_because);
    let enabled = why_not.is_none() || checked;
    let checkbox = ui.add_enabled(enabled, egui::Checkbox::without_text(&mut checked));
    let checkbox = match why_not {
        Some(why) => checkbox.on_hover_text(format!("Cannot be searchable: {why}")),
        None => checkbox.on_hover_text(SEARCHABLE_TIP),
    };
    checkbox
        .widget_info(|| egui::WidgetInfo::labeled(egui::Role::CheckBox, enabled, format!("Field {index} searchable")));
    if checkbox.changed() {
        edits.push(Edit::new(Coalesce::Never, move |d| {
            if let Some(f) = d.fields.get_mut(index) {
                f.searchable = checked;
            }
        }));
    }
}

/// The zone the draft names, UTC while it names none or one that does not
/// exist (which validation reports).
pub(crate) fn draft_zone(draft: &ProcessDraft) -> ProcessZone {
    ProcessZone::of(draft.time_zone.as_deref()).unwrap_or_else(|_| ProcessZone::utc())
}

/// The stored default for what was typed: typed JSON when it parses, else the
/// text itself, which validation then reports against the field. A
/// date-time stays as typed: without an offset it means a wall-clock time
/// in the process's zone, which may still change.
pub(crate) fn stored_value(field_type: Option<FieldType>, text: &str, zone: &ProcessZone) -> Option<serde_json::Value> {
    if text.is_empty() {
        return None;
    }
    if field_type == Some(FieldType::DateTime) {
        return Some(serde_json::Value::String(text.to_owned()));
    }
    match field_type.map(|t| Value::parse(t, text, zone)) {
        Some(Ok(value)) => Some(value.to_json()),
        _ => Some(serde_json::Value::String(text.to_owned())),
    }
}

fn rights_ui(ui: &mut Ui, view: RightsView<'_>, requests: &mut Vec<Request>) {
    Grid::new("rights").num_columns(3).striped(true).show(ui, |ui| {
        for (user, right) in view.rights {
            ui.label(user);
            ui.label(right.title());
            if ui.add_enabled(!view.busy, egui::Button::new("Revoke").small()).clicked() {
                requests.push(Request::Revoke { user: user.clone(), right: *right });
            }
            ui.end_row();
        }
    });
    ui.horizontal(|ui| {
        let label = ui.label("User");
        ui.add(TextEdit::singleline(view.new_user).desired_width(100.0)).labelled_by(label.id);
        ui.add_enabled_ui(!view.busy, |ui| {
            ui.menu_button("Grant ▾", |ui| {
                for right in Right::ALL {
                    if ui.button(right.title()).clicked() && !view.new_user.trim().is_empty() {
                        requests.push(Request::Grant { user: view.new_user.trim().to_owned(), right });
                        ui.close();
                    }
                }
            })
        });
    });
}

fn activity_ui(ui: &mut Ui, designer: &Designer, id: &str, edits: &mut Vec<Edit>) {
    let Some(activity) = designer.doc.draft().activity(id) else { return };
    ui.heading("Activity");
    Grid::new("activity-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        let owned = id.to_owned();
        text_row(ui, "Name", &activity.name, format!("activity-name:{id}"), edits, move |d, v| {
            if let Some(a) = d.activities.iter_mut().find(|a| a.id == owned) {
                a.name = v;
            }
        });
        ui.label("Id");
        ui.label(RichText::new(id).monospace());
        ui.end_row();
        ui.label("Preceding rule");
        let current = activity.preceding_rule;
        ui.horizontal(|ui| {
            for (rule, text, hint) in [
                (PrecedingRule::Any, "Any", "Every arriving line starts this activity"),
                (PrecedingRule::All, "All", "Start once every incoming line has fired"),
            ] {
                if ui.selectable_label(current == rule, text).on_hover_text(hint).clicked() && current != rule {
                    let owned = id.to_owned();
                    edits.push(Edit::new(Coalesce::Never, move |d| {
                        if let Some(a) = d.activities.iter_mut().find(|a| a.id == owned) {
                            a.preceding_rule = rule;
                        }
                    }));
                }
            }
        });
        ui.end_row();
        ui.label("Start");
        let mut start = activity.start;
        if ui.checkbox(&mut start, "Start activity").changed() && start {
            let owned = id.to_owned();
            edits.push(Edit::new(Coalesce::Never, move |d| ops::set_start(d, &owned)));
        }
        ui.end_row();
    });
    ui.separator();
    ui.label(format!("{} event(s). Drag templates from the palette onto the box to add more.", activity.events.len()));
    ui.separator();
    deadlines::escalations_ui(ui, designer, activity, edits);
}

fn event_ui(ui: &mut Ui, designer: &Designer, activity_id: &str, index: usize, edits: &mut Vec<Edit>) {
    let draft = designer.doc.draft();
    let Some(activity) = draft.activity(activity_id) else { return };
    match activity.events.get(index) {
        Some(EventDraft::ServerEvent(event)) => server_event_ui(ui, designer, activity, index, event, edits),
        Some(EventDraft::HttpRequest(event)) => http_request_ui(ui, designer, activity, index, event, edits),
        Some(EventDraft::Timer(event)) => deadlines::timer_ui(ui, designer, activity, index, event, edits),
        Some(EventDraft::Mail(event)) => mail_editor::mail_ui(ui, designer, activity, index, event, edits),
        Some(EventDraft::Ipc(event)) => super::ipc_editor::ipc_ui(ui, designer, activity, index, event, edits),
        None => {}
    }
}

fn server_event_ui(
    ui: &mut Ui,
    designer: &Designer,
    activity: &ActivityDraft,
    index: usize,
    event: &ServerEventDraft,
    edits: &mut Vec<Edit>,
) {
    let draft = designer.doc.draft();
    let activity_id = activity.id.as_str();
    ui.heading("Server event");
    ui.label(RichText::new(format!("in activity {}", activity.name)).weak());
    Grid::new("event-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        let owned = activity_id.to_owned();
        text_row(ui, "Name", &event.name, format!("event-name:{activity_id}:{index}"), edits, move |d, v| {
            with_event(d, &owned, index, |e| e.name = v);
        });
        ui.label("");
        let mut synchronous = event.synchronous;
        let hint = "On: the script runs and the event completes. Off: after the script the event waits for a callback on its serial number.";
        if ui.checkbox(&mut synchronous, "Synchronous").on_hover_text(hint).changed() {
            let owned = activity_id.to_owned();
            edits.push(Edit::new(Coalesce::Never, move |d| with_event(d, &owned, index, |e| e.synchronous = synchronous)));
        }
        ui.end_row();
    });
    if !event.synchronous {
        ui.colored_label(theme::ASYNC_EVENT, "Asynchronous: after its script this event waits for a callback. The script can read `serial` and hand it to the external system.");
    }
    ui.separator();
    let field_names: Vec<&str> = draft.fields.iter().map(|f| f.name.as_str()).collect();
    let error = designer.host.compile_script(&event.script, &field_names).err();
    let mut script = event.script.clone();
    let response = script_editor_ui(ui, "Script", &mut script, error.as_ref(), 12);
    if response.changed() {
        let owned = activity_id.to_owned();
        edits.push(Edit::new(Coalesce::Key(format!("script:{activity_id}:{index}")), move |d| {
            with_event(d, &owned, index, |e| e.script = script);
        }));
    }
    ui.label(
        RichText::new(format!(
            "Fields: {}. Read-only: serial, instance_id, folio, activity, event. log(\"text\") writes to the audit trail.",
            if field_names.is_empty() { "none yet".to_owned() } else { field_names.join(", ") }
        ))
        .small()
        .weak(),
    );
}

fn http_request_ui(
    ui: &mut Ui,
    designer: &Designer,
    activity: &ActivityDraft,
    index: usize,
    event: &HttpRequestDraft,
    edits: &mut Vec<Edit>,
) {
    let activity_id = activity.id.as_str();
    let owned = || activity_id.to_owned();
    let located = owned();
    let editor = RequestEditor {
        parts: event.parts(),
        key: format!("{activity_id}:{index}"),
        prefix: String::new(),
        locate: locate(move |d| match d.activities.iter_mut().find(|a| a.id == located)?.events.get_mut(index)? {
            EventDraft::HttpRequest(request) => Some(request.parts_mut()),
            _ => None,
        }),
    };
    ui.heading("HTTP request");
    ui.label(RichText::new(format!("in activity {}", activity.name)).weak());
    Grid::new("http-request-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        let activity = owned();
        text_row(ui, "Name", &event.name, format!("event-name:{activity_id}:{index}"), edits, move |d, v| {
            with_http_request(d, &activity, index, |e| e.name = v);
        });
        ui.label("");
        let mut synchronous = event.synchronous;
        let hint = "On: the request is sent and the event completes when it succeeds. Off: after the request the event waits for a callback on its serial number.";
        if ui.checkbox(&mut synchronous, "Synchronous").on_hover_text(hint).changed() {
            let activity = owned();
            edits.push(Edit::new(Coalesce::Never, move |d| {
                with_http_request(d, &activity, index, |e| e.synchronous = synchronous)
            }));
        }
        ui.end_row();

        editor.rows_ui(ui, edits);
    });
    if !event.synchronous {
        ui.colored_label(
            theme::ASYNC_EVENT,
            "Asynchronous: the server item is saved before the request goes out; put ${serial} in the request so the external system can call back with it.",
        );
    }

    ui.separator();
    editor.headers_and_body_ui(ui, edits);

    event_footer_ui(ui, designer, activity_id, index, |fields| {
        format!(
            "Placeholders: ${{serial}}, ${{instance_id}}, ${{folio}}, ${{activity}}, ${{event}} and the fields ({fields}). In the body a placeholder is a JSON value, or text inside \"...\"; in the URL it is percent-encoded. $${{ writes ${{."
        )
    });
}

/// The foot of an event's page: its own problems, where the designer is
/// looking, and `help`, given the process's field names (or "none yet").
pub(crate) fn event_footer_ui(
    ui: &mut Ui,
    designer: &Designer,
    activity_id: &str,
    index: usize,
    help: impl FnOnce(&str) -> String,
) {
    problems_ui(
        ui,
        designer,
        |location| matches!(location, Location::Event { activity_id: a, index: i, .. } if a == activity_id && *i == index),
    );
    let draft = designer.doc.draft();
    let field_names: Vec<&str> = draft.fields.iter().map(|f| f.name.as_str()).collect();
    let fields = if field_names.is_empty() { "none yet".to_owned() } else { field_names.join(", ") };
    ui.label(RichText::new(help(&fields)).small().weak());
}

fn with_http_request(
    draft: &mut ProcessDraft,
    activity: &str,
    index: usize,
    change: impl FnOnce(&mut HttpRequestDraft),
) {
    if let Some(EventDraft::HttpRequest(event)) =
        draft.activities.iter_mut().find(|a| a.id == activity).and_then(|a| a.events.get_mut(index))
    {
        change(event);
    }
}

fn with_event(
    draft: &mut ProcessDraft,
    activity: &str,
    index: usize,
    change: impl FnOnce(&mut crate::model::ServerEventDraft),
) {
    if let Some(EventDraft::ServerEvent(event)) =
        draft.activities.iter_mut().find(|a| a.id == activity).and_then(|a| a.events.get_mut(index))
    {
        change(event);
    }
}

fn line_ui(ui: &mut Ui, designer: &Designer, index: usize, edits: &mut Vec<Edit>) {
    let draft = designer.doc.draft();
    let Some(line) = draft.lines.get(index) else { return };
    let name = |id: &str| draft.activity(id).map(|a| a.name.clone()).unwrap_or_else(|| id.to_owned());
    ui.heading("Line");
    ui.label(format!("{} -> {}", name(&line.from), name(&line.to)));
    Grid::new("line-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        text_row(ui, "Label", &line.label, format!("line-label:{index}"), edits, move |d, v| {
            if let Some(l) = d.lines.get_mut(index) {
                l.label = v;
            }
        });
    });
    let error = rule_problem(designer, &line.rule);
    let mut rule = line.rule.clone();
    let label = ui.label("Rule (empty: always true)");
    let response = ui
        .add(
            TextEdit::multiline(&mut rule)
                .code_editor()
                .desired_rows(2)
                .desired_width(f32::INFINITY)
                .hint_text("name == \"call back value\""),
        )
        .labelled_by(label.id);
    if response.changed() {
        edits.push(Edit::new(Coalesce::Key(format!("line-rule:{index}")), move |d| {
            if let Some(l) = d.lines.get_mut(index) {
                l.rule = rule;
            }
        }));
    }
    match error {
        Some(message) => ui.colored_label(theme::ERROR, format!("Error: {message}")),
        None if line.rule.trim().is_empty() => ui.label("Always true."),
        None => ui.colored_label(theme::SUCCESS, "OK: a true/false rule"),
    };
}

/// What is wrong with a rule, checked live: it must compile and, with the
/// fields' default values, give true or false.
fn rule_problem(designer: &Designer, rule: &str) -> Option<String> {
    if rule.trim().is_empty() {
        return None;
    }
    let draft = designer.doc.draft();
    let names: Vec<&str> = draft.fields.iter().map(|f| f.name.as_str()).collect();
    let ast = match designer.host.compile_rule(rule, &names) {
        Ok(ast) => ast,
        Err(err) => return Some(err.to_string()),
    };
    let zone = draft_zone(draft);
    let defaults = draft
        .fields
        .iter()
        .filter_map(|f| {
            let field_type = FieldType::from_name(&f.field_type)?;
            let value = f
                .default
                .as_ref()
                .and_then(|j| Value::from_json(field_type, j, &zone).ok())
                .unwrap_or_else(|| field_type.zero_value());
            Some((f.name.clone(), value))
        })
        .collect();
    match designer.host.eval_rule(&ast, &defaults, &ScriptContext::default()) {
        Err(ScriptFailure::RuleNotBoolean { got }) => Some(format!("gives {got}, not true or false")),
        Err(ScriptFailure::Runtime(message))
            if message.contains("Function not found") || message.contains("cannot compare") =>
        {
            Some(message)
        }
        _ => None,
    }
}
