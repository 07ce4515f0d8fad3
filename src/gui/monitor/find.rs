//! The instance list's finding tools (issue 18): the filter bar's second
//! row (version, started and ended date ranges, a data field's condition),
//! saved filters, and the CSV export of the whole list.
//!
//! What the operator types is kept as text ([`FilterText`]) and read into
//! the engine's [`InstanceFilter`] only when every part reads: a half-typed
//! date shows what is wrong under the bar and leaves the list as it was.
//! The engine then reads a field condition for the field's type; what it
//! refuses (no such field, a value of the wrong type) comes back as the
//! list's error. Saved filters are that text, named, kept per user in the
//! window's settings (`Settings::saved_filters`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, channel};

use egui::{RichText, TextEdit, Ui};
use serde::{Deserialize, Serialize};

use crate::engine::{FieldCondition, FilterError, InstanceFilter, InstanceStatus, TimeRange, parse_instant};
use crate::gui::theme;
use crate::runtime::RuntimeEngine;

/// A filter as the operator typed it: what a saved filter keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct FilterText {
    pub process: Option<String>,
    pub status: Option<String>,
    pub search: String,
    pub overdue: bool,
    pub version: String,
    pub started_after: String,
    pub started_before: String,
    pub ended_after: String,
    pub ended_before: String,
    /// A data field's condition, `amount > 100`.
    pub field: String,
}

/// A filter saved under a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedFilter {
    pub name: String,
    pub filter: FilterText,
}

/// Saved filters by the user they belong to, each user's by name.
pub type SavedFilters = BTreeMap<String, Vec<SavedFilter>>;

/// How an export ended: the rows written to the file, or why not.
pub type ExportOutcome = Result<(u64, PathBuf), String>;

#[derive(Default)]
pub struct FindBar {
    text: FilterText,
    /// Why the typed text does not read, naming the part.
    error: Option<String>,
    /// What the field condition costs where it reads every instance of
    /// the process (`Engine::slow_field_notes`), said under the bar.
    pub notes: Vec<String>,
    /// Every user's saved filters, as the settings keep them.
    pub saved: SavedFilters,
    save_name: String,
    /// Whether the rows show (the filter bar's "More filters").
    open: bool,
    /// The saved filter last recalled or saved, which Delete deletes;
    /// forgotten when the filter is edited.
    recalled: Option<String>,
    export_asked: bool,
    exporting: Option<Receiver<ExportOutcome>>,
    exported: Option<ExportOutcome>,
}

impl FindBar {
    /// The filter bar's toggle of these rows ("More filters"); closed,
    /// they keep filtering by what they hold.
    pub fn toggle_ui(&mut self, ui: &mut Ui) {
        self.open ^= ui
            .selectable_label(self.open, "More filters")
            .on_hover_text("Version, when started or ended, a data field's value; saved filters; export to CSV")
            .clicked();
    }

    /// Draws the rows under the filter bar while they are open; returns
    /// whether `filter` changed.
    pub fn ui(&mut self, ui: &mut Ui, filter: &mut InstanceFilter, user: &str) -> bool {
        if !self.open {
            return false;
        }
        let mut edited = false;
        ui.horizontal_wrapped(|ui| {
            let mut field = |ui: &mut Ui, label: &str, text: &mut String, hint: &str, width: f32| {
                // A label goes to the next line with its box rather than
                // stay behind alone (its width told from its length).
                let needed = width + 8.0 * label.chars().count() as f32 + 3.0 * ui.spacing().item_spacing.x;
                if ui.available_size_before_wrap().x < needed {
                    ui.end_row();
                }
                let label = ui.label(label);
                edited |= ui
                    .add(TextEdit::singleline(text).desired_width(width).hint_text(hint))
                    .labelled_by(label.id)
                    .changed();
            };
            field(ui, "Version", &mut self.text.version, "all", 36.0);
            field(ui, "Started from", &mut self.text.started_after, "YYYY-MM-DD", 96.0);
            field(ui, "to", &mut self.text.started_before, "YYYY-MM-DD", 96.0);
            field(ui, "Ended from", &mut self.text.ended_after, "YYYY-MM-DD", 96.0);
            field(ui, "until", &mut self.text.ended_before, "YYYY-MM-DD", 96.0);
            field(ui, "Field", &mut self.text.field, "amount > 100", 150.0);
        });
        let mut changed = false;
        if edited {
            self.recalled = None;
            changed = self.read_into(filter);
        }
        ui.horizontal_wrapped(|ui| {
            changed |= self.saved_ui(ui, filter, user);
            if ui.button("Export CSV…").on_hover_text("Every instance matching the filter, to a CSV file").clicked() {
                self.export_asked = true;
            }
            self.export_ui(ui);
        });
        if let Some(error) = &self.error {
            ui.colored_label(theme::ERROR, error);
        }
        for note in &self.notes {
            ui.colored_label(theme::WARNING, note).on_hover_text(
                "Mark the field Searchable in the designer and deploy: its index then finds = < <= > >= fast",
            );
        }
        changed
    }

    /// Reads the typed text into `filter`; leaves it as it was and says
    /// why when a part does not read. Whether it changed.
    fn read_into(&mut self, filter: &mut InstanceFilter) -> bool {
        match self.text.read() {
            Ok(found) => {
                self.error = None;
                let before = filter.clone();
                filter.version = found.version;
                filter.started = found.started;
                filter.ended = found.ended;
                filter.fields = found.fields;
                *filter != before
            }
            Err(error) => {
                self.error = Some(error);
                false
            }
        }
    }

    fn saved_ui(&mut self, ui: &mut Ui, filter: &mut InstanceFilter, user: &str) -> bool {
        let mut changed = false;
        let label = ui.label("Saved filters");
        let mine = self.saved.entry(user.to_owned()).or_default();
        let mut recall = None;
        let shown =
            self.recalled.clone().unwrap_or_else(|| if mine.is_empty() { "none" } else { "recall…" }.to_owned());
        let combo = egui::ComboBox::from_id_salt("monitor-saved-filters").selected_text(shown).show_ui(ui, |ui| {
            for (index, saved) in mine.iter().enumerate() {
                if ui.selectable_label(self.recalled.as_ref() == Some(&saved.name), &saved.name).clicked() {
                    recall = Some(index);
                }
            }
        });
        combo.response.labelled_by(label.id);
        if let Some(index) = recall {
            let saved = mine[index].clone();
            self.recall(saved.filter, filter);
            self.recalled = Some(saved.name);
            changed = true;
        }
        // Deletes the saved filter shown (recalled or just saved).
        let delete = egui::Button::new("Delete");
        if ui.add_enabled(self.recalled.is_some(), delete).on_hover_text("Delete the saved filter shown").clicked()
            && let Some(name) = self.recalled.take()
        {
            self.saved.entry(user.to_owned()).or_default().retain(|s| s.name != name);
        }
        let label = ui.label("Name");
        ui.add(TextEdit::singleline(&mut self.save_name).desired_width(110.0).hint_text("big orders"))
            .labelled_by(label.id);
        let name = self.save_name.trim().to_owned();
        if ui.add_enabled(!name.is_empty(), egui::Button::new("Save filter")).clicked() {
            let saved = SavedFilter { name: name.clone(), filter: self.text_of(filter) };
            let mine = self.saved.entry(user.to_owned()).or_default();
            // A name saved again is replaced, keeping its place.
            match mine.iter_mut().find(|s| s.name == name) {
                Some(existing) => *existing = saved,
                None => mine.push(saved),
            }
            mine.sort_by(|a, b| a.name.cmp(&b.name));
            self.recalled = Some(name);
            self.save_name.clear();
        }
        changed
    }

    /// The current filter as text: the first row's choices and this row's text.
    fn text_of(&self, filter: &InstanceFilter) -> FilterText {
        FilterText {
            process: filter.process.clone(),
            status: filter.status.map(|s| s.name().to_owned()),
            search: filter.search.clone().unwrap_or_default(),
            overdue: filter.overdue,
            ..self.text.clone()
        }
    }

    /// Shows a saved filter and filters by it.
    pub fn recall(&mut self, text: FilterText, filter: &mut InstanceFilter) {
        filter.process = text.process.clone();
        filter.status = text.status.as_deref().and_then(|s| s.parse::<InstanceStatus>().ok());
        filter.search = Some(text.search.clone()).filter(|s| !s.trim().is_empty());
        filter.overdue = text.overdue;
        self.text = text;
        self.read_into(filter);
    }

    /// Shows `filter`, set from elsewhere (a count or an activity of the
    /// overview clicked): its version in this row, and none of the dates
    /// or field typed before, which it does not hold.
    pub fn show(&mut self, filter: &InstanceFilter) {
        self.text = FilterText {
            process: filter.process.clone(),
            status: filter.status.map(|s| s.name().to_owned()),
            search: filter.search.clone().unwrap_or_default(),
            overdue: filter.overdue,
            version: filter.version.map(|v| v.to_string()).unwrap_or_default(),
            ..FilterText::default()
        };
        self.recalled = None;
        self.error = None;
    }

    /// Whether Export CSV… was clicked since the last call.
    pub fn take_export(&mut self) -> bool {
        std::mem::take(&mut self.export_asked)
    }

    /// An export has begun; its outcome arrives on `outcome`.
    pub fn exporting(&mut self, outcome: Receiver<ExportOutcome>) {
        self.exporting = Some(outcome);
        self.exported = None;
    }

    /// An export that did not begin (no file chosen, no dialog).
    pub fn export_ended(&mut self, outcome: ExportOutcome) {
        self.exporting = None;
        self.exported = Some(outcome);
    }

    /// The last export's outcome, once it has ended.
    pub fn exported(&self) -> Option<&ExportOutcome> {
        self.exported.as_ref()
    }

    fn export_ui(&mut self, ui: &mut Ui) {
        if let Some(outcome) = self.exporting.as_ref().and_then(|r| r.try_recv().ok()) {
            self.export_ended(outcome);
        }
        if self.exporting.is_some() {
            ui.spinner();
            ui.label("Exporting…");
        }
        match &self.exported {
            Some(Ok((rows, path))) => {
                ui.label(RichText::new(format!("Exported {rows} instance(s) to {}", path.display())).weak());
            }
            Some(Err(error)) => {
                ui.colored_label(theme::ERROR, error);
            }
            None => {}
        }
    }

    /// Whether an export is running (the window keeps drawing until it ends).
    pub fn busy(&self) -> bool {
        self.exporting.is_some()
    }
}

/// The parts of a filter read from [`FilterText`].
struct Found {
    version: Option<u32>,
    started: TimeRange,
    ended: TimeRange,
    fields: Vec<FieldCondition>,
}

impl FilterText {
    /// Reads the typed parts; the error names the part that does not read.
    fn read(&self) -> Result<Found, String> {
        let version = match self.version.trim() {
            "" => None,
            text => Some(text.parse::<u32>().map_err(|_| format!("Version: `{text}` is not a version number"))?),
        };
        let instant = |label: &str, text: &str| -> Result<Option<i64>, String> {
            match text.trim() {
                "" => Ok(None),
                text => parse_instant(text).map(Some).map_err(|e| format!("{label}: {e}")),
            }
        };
        // A day typed as the end of a range is included: up to its end.
        let end = |label: &str, text: &str| -> Result<Option<i64>, String> {
            let day = text.trim().len() == "YYYY-MM-DD".len();
            Ok(instant(label, text)?.map(|at| if day { at + 86_400_000 } else { at }))
        };
        let started = TimeRange {
            after: instant("Started from", &self.started_after)?,
            before: end("Started to", &self.started_before)?,
        };
        let ended = TimeRange {
            after: instant("Ended from", &self.ended_after)?,
            before: end("Ended until", &self.ended_before)?,
        };
        let fields = match FieldCondition::parse(&self.field) {
            Ok(condition) => vec![condition],
            Err(FilterError::Empty) => Vec::new(),
            Err(error) => return Err(format!("Field: {error}")),
        };
        Ok(Found { version, started, ended, fields })
    }
}

/// Writes every instance of `filter` the user sees to `path` as CSV
/// (`engine::find::write_csv`'s columns and escaping) on a thread of its
/// own, whole or not at all (through a temporary file in the same folder);
/// `wake` is called when it ends.
pub fn export(
    engine: Arc<RuntimeEngine>,
    user: &str,
    filter: InstanceFilter,
    path: PathBuf,
    wake: impl Fn() + Send + 'static,
) -> Receiver<ExportOutcome> {
    let (outcome, receiver) = channel();
    let user = user.to_owned();
    let work = move || {
        let written = (|| -> Result<u64, String> {
            let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let mut file = tempfile::NamedTempFile::new_in(folder)
                .map_err(|e| format!("Cannot write in {}: {e}", folder.display()))?;
            let rows = {
                let mut out = std::io::BufWriter::new(file.as_file_mut());
                let rows = engine.export_instances(&user, &filter, &mut out).map_err(|e| e.to_string())?;
                out.flush().map_err(|e| format!("Cannot write {}: {e}", path.display()))?;
                rows
            };
            file.persist(&path).map_err(|e| format!("Cannot write {}: {e}", path.display()))?;
            Ok(rows)
        })();
        let _ = outcome.send(written.map(|rows| (rows, path)));
        wake();
    };
    if let Err(error) = std::thread::Builder::new().name("flowdesk-export".to_owned()).spawn(work) {
        let (failed, receiver) = channel();
        let _ = failed.send(Err(format!("Cannot start the export: {error}")));
        return receiver;
    }
    receiver
}
