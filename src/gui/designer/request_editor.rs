//! The editor of an HTTP request's parts (method, URL, timeout, headers,
//! body), shared by the HTTP request event's page and a notify
//! escalation's. It returns [`Edit`]s that find the request again in the
//! draft when they are applied, through [`Locate`].

use std::rc::Rc;

use egui::{ComboBox, TextEdit, Ui};

use crate::gui::designer::{Coalesce, Edit};
use crate::model::http::TIMEOUT_SECONDS;
use crate::model::{HeaderDraft, HttpMethod, ProcessDraft, RequestParts, RequestPartsMut};

/// Finds the request being edited in a draft (`None` if it is gone by the
/// time an edit is applied).
pub type Locate = Rc<dyn Fn(&mut ProcessDraft) -> Option<RequestPartsMut<'_>>>;

/// A [`Locate`] from a closure (whose signature this bound lets the
/// compiler infer: what it returns borrows from the draft it is given).
pub fn locate(find: impl Fn(&mut ProcessDraft) -> Option<RequestPartsMut<'_>> + 'static) -> Locate {
    Rc::new(find)
}

/// One request on screen.
pub struct RequestEditor<'a> {
    pub parts: RequestParts<'a>,
    /// Tells this editor's widgets and undo steps apart from any other's.
    pub key: String,
    /// Put before each widget's accessible name: "" for the request event's
    /// own page (`URL`, `Header 1 name`), `Escalation 2 ` for a notify.
    pub prefix: String,
    pub locate: Locate,
}

impl RequestEditor<'_> {
    /// An edit of the request, if it is still there.
    fn edit(&self, coalesce: Coalesce, change: impl FnOnce(RequestPartsMut<'_>) + 'static) -> Edit {
        let locate = Rc::clone(&self.locate);
        Edit::new(coalesce, move |draft| {
            if let Some(parts) = locate(draft) {
                change(parts);
            }
        })
    }

    fn named(&self, what: &str) -> String {
        format!("{}{what}", self.prefix)
    }

    /// Method, URL and timeout, as rows of the caller's two-column grid.
    pub fn rows_ui(&self, ui: &mut Ui, edits: &mut Vec<Edit>) {
        let label = ui.label("Method");
        let known = HttpMethod::parse(self.parts.method);
        let shown = known.map(|m| m.name().to_owned()).unwrap_or_else(|| format!("{} (unknown)", self.parts.method));
        let combo = ComboBox::from_id_salt(("http-method", &self.key)).selected_text(shown).show_ui(ui, |ui| {
            for method in HttpMethod::ALL {
                if ui.selectable_label(known == Some(method), method.name()).clicked() {
                    edits.push(self.edit(Coalesce::Never, move |p| *p.method = method.name().to_owned()));
                }
            }
        });
        let name = self.named("HTTP method");
        let response = combo.response.labelled_by(label.id);
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::ComboBox, true, &name));
        ui.end_row();

        // The visible label names the box for readers; the accessible name
        // carries the prefix, which tells two requests' boxes apart.
        let label = ui.label("URL");
        let mut url = self.parts.url.to_owned();
        let response = ui.add(TextEdit::singleline(&mut url).desired_width(f32::INFINITY)).labelled_by(label.id);
        let name = self.named("URL");
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &name));
        if response.changed() {
            edits.push(self.edit(Coalesce::Key(format!("http-url:{}", self.key)), move |p| *p.url = url));
        }
        ui.end_row();

        let label = ui.label("Timeout");
        let mut timeout = self.parts.timeout_seconds;
        let response = ui
            .add(egui::DragValue::new(&mut timeout).range(TIMEOUT_SECONDS).suffix(" s"))
            .labelled_by(label.id)
            .on_hover_text("For connecting and the whole exchange; past it the instance goes into Error.");
        let name = self.named("Timeout");
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SpinButton, true, &name));
        if response.changed() {
            edits.push(
                self.edit(Coalesce::Key(format!("http-timeout:{}", self.key)), move |p| *p.timeout_seconds = timeout),
            );
        }
        ui.end_row();
    }

    /// The headers, one row each, and the body.
    pub fn headers_and_body_ui(&self, ui: &mut Ui, edits: &mut Vec<Edit>) {
        ui.strong("Headers");
        // One row per header, the value taking what the name and button leave.
        for (row, header) in self.parts.headers.iter().enumerate() {
            ui.horizontal(|ui| {
                let mut name = header.name.clone();
                let response = ui.add_sized([120.0, 20.0], TextEdit::singleline(&mut name).hint_text("name"));
                let label = self.named(&format!("Header {} name", row + 1));
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &label));
                if response.changed() {
                    let key = Coalesce::Key(format!("http-header-name:{}:{row}", self.key));
                    edits.push(self.edit(key, move |p| {
                        if let Some(h) = p.headers.get_mut(row) {
                            h.name = name;
                        }
                    }));
                }
                let mut value = header.value.clone();
                let value_width = (ui.available_width() - 80.0).max(80.0);
                let response = ui.add_sized(
                    [value_width, 20.0],
                    TextEdit::singleline(&mut value).hint_text("value; ${placeholders} allowed"),
                );
                let label = self.named(&format!("Header {} value", row + 1));
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, &label));
                if response.changed() {
                    let key = Coalesce::Key(format!("http-header-value:{}:{row}", self.key));
                    edits.push(self.edit(key, move |p| {
                        if let Some(h) = p.headers.get_mut(row) {
                            h.value = value;
                        }
                    }));
                }
                let remove = ui.button("Remove");
                let label = self.named(&format!("Remove header {}", row + 1));
                remove.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                if remove.clicked() {
                    edits.push(self.edit(Coalesce::Never, move |p| {
                        if row < p.headers.len() {
                            p.headers.remove(row);
                        }
                    }));
                }
            });
        }
        let add = ui.button("Add header");
        let label = self.named("Add header");
        add.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
        if add.clicked() {
            edits.push(self.edit(Coalesce::Never, |p| p.headers.push(HeaderDraft::default())));
        }

        ui.separator();
        let label = ui.label("Body (JSON; empty sends none)");
        let mut body = self.parts.body.to_owned();
        let response = ui
            .add(
                TextEdit::multiline(&mut body)
                    .code_editor()
                    .desired_rows(6)
                    .desired_width(f32::INFINITY)
                    .hint_text("{\"serial\": ${serial}, \"name\": ${name}}"),
            )
            .labelled_by(label.id);
        let label = self.named("Body (JSON; empty sends none)");
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::MultilineTextInput, true, &label));
        if response.changed() {
            edits.push(self.edit(Coalesce::Key(format!("http-body:{}", self.key)), move |p| *p.body = body));
        }
    }
}
