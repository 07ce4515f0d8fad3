//! Bulk actions in the monitor: many instances or server items selected in
//! their lists, one action for them all.
//!
//! Selecting: a click selects a row (and opens it, as before), Ctrl+click
//! adds or removes one, Shift+click selects the rows from the last one
//! clicked (those loaded: the page around what is on screen), Ctrl+A or
//! "Select all N matching" selects every row the filter matches, however
//! many: the selection is then the filter itself, resolved by the engine
//! when the action runs (`engine::Selection::MatchingInstances`), so no
//! row beyond the page on screen is ever loaded into the window.
//!
//! Acting: Retry, Stop, Resume, Go to (instances) and Finish with data
//! (items) are confirmed with the count and the acting user ("Retry 3
//! instances as ada?"), then sent to the write worker as one
//! [`Command::Bulk`]; the window draws its progress (done of total) from
//! the [`BulkHandle`] it shares with the worker, offers Cancel (no further
//! target begins), and shows the report ("9,998 done, 2 refused", each
//! refusal with why) when the answer comes. No frame waits for any of it.

use std::collections::BTreeSet;

use egui::{Modifiers, RichText, TextEdit, Ui};

use super::actions::{BulkHandle, Command};
use super::{Intent, Monitor, Subject};
use crate::engine::bulk::thousands;
use crate::engine::{BulkAction, BulkReport, EngineError, FieldInput, InstanceFilter, ItemFilter, Selection, Serial};
use crate::gui::theme;

/// Refusals listed in the report window; the rest are counted.
const LISTED: usize = 1000;

/// The rows selected in one list: some by key, or every row the filter
/// matches.
#[derive(Debug, Clone, PartialEq)]
pub struct Picked<K: Ord + Copy> {
    keys: BTreeSet<K>,
    /// Every row the list's filter matches, loaded or not.
    all_matching: bool,
    /// The table index of the row a Shift+click ranges from.
    anchor: Option<usize>,
}

impl<K: Ord + Copy> Default for Picked<K> {
    fn default() -> Self {
        Picked { keys: BTreeSet::new(), all_matching: false, anchor: None }
    }
}

impl<K: Ord + Copy> Picked<K> {
    pub fn contains(&self, key: &K) -> bool {
        self.all_matching || self.keys.contains(key)
    }

    pub fn is_all_matching(&self) -> bool {
        self.all_matching
    }

    /// The keys picked one by one (none when all matching).
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.keys.iter()
    }

    pub fn is_empty(&self) -> bool {
        !self.all_matching && self.keys.is_empty()
    }

    /// How many rows: `matching` when all matching (if known).
    pub fn count(&self, matching: Option<u64>) -> Option<u64> {
        if self.all_matching { matching } else { Some(self.keys.len() as u64) }
    }

    pub fn clear(&mut self) {
        *self = Picked::default();
    }

    /// Only `key`, as an instance opened elsewhere than by a click in the
    /// list (a link, the flow, the overview): the row shown is the one
    /// highlighted, and a Shift+click ranges from no row of before.
    pub fn only(&mut self, key: K) {
        *self = Picked::default();
        self.keys.insert(key);
    }

    pub fn select_all_matching(&mut self) {
        self.keys.clear();
        self.all_matching = true;
    }

    /// A click on the row at table index `index` showing `key`, with the
    /// modifiers held; `loaded` gives the key of a loaded row by its table
    /// index (for a Shift range). Returns whether it was a plain click,
    /// which also opens the row.
    pub fn click(&mut self, index: usize, key: K, modifiers: Modifiers, loaded: impl Fn(usize) -> Option<K>) -> bool {
        self.all_matching = false;
        if modifiers.shift
            && let Some(anchor) = self.anchor
        {
            let (low, high) = (anchor.min(index), anchor.max(index));
            if !modifiers.command {
                self.keys.clear();
            }
            self.keys.extend((low..=high).filter_map(&loaded));
            return false;
        }
        self.anchor = Some(index);
        if modifiers.command {
            if !self.keys.remove(&key) {
                self.keys.insert(key);
            }
            return false;
        }
        self.keys.clear();
        self.keys.insert(key);
        true
    }

    /// Draws the part of a list's bulk bar both lists share: Ctrl+A, how many are selected (of `matching` when
    /// all match), the list's own buttons (`actions`, told whether any row
    /// is selected), "Select all matching" (naming `named`, when given) and
    /// "Clear selection"; these two and Ctrl+A change the selection at once.
    fn bar_ui(&mut self, ui: &mut Ui, matching: Option<u64>, named: Option<u64>, actions: impl FnOnce(&mut Ui, bool)) {
        if !ui.ctx().egui_wants_keyboard_input()
            && ui.input_mut(|i| i.consume_shortcut(&egui::KeyboardShortcut::new(Modifiers::COMMAND, egui::Key::A)))
        {
            self.select_all_matching();
        }
        let count = self.count(matching);
        let (all_matching, empty) = (self.is_all_matching(), self.is_empty());
        let (mut select_all, mut clear) = (false, false);
        ui.horizontal_wrapped(|ui| {
            let selected = match (all_matching, count) {
                (true, Some(n)) => format!("All {} matching selected", thousands(n as usize)),
                (true, None) => "All matching selected".to_owned(),
                (false, Some(n)) => format!("{} selected", thousands(n as usize)),
                (false, None) => String::new(),
            };
            ui.label(RichText::new(selected).weak());
            actions(ui, !empty && count != Some(0));
            let all = match named {
                Some(n) => format!("Select all {} matching", thousands(n as usize)),
                None => "Select all matching".to_owned(),
            };
            select_all = ui.add_enabled(!all_matching, egui::Button::new(all)).clicked();
            clear = ui.add_enabled(!empty, egui::Button::new("Clear selection")).clicked();
        });
        if select_all {
            self.select_all_matching();
        }
        if clear {
            self.clear();
        }
    }

    /// The selection an action is for and its words for the confirmation
    /// ("3 instances", "all 100 instances matching the filter"): the list's
    /// filter (`all`) when all match, else the keys (`by_key`).
    fn proposed(
        &self,
        matching: Option<u64>,
        (one, many): (&str, &str),
        all: impl FnOnce() -> Selection,
        by_key: impl FnOnce(Vec<K>) -> Selection,
    ) -> (Selection, String) {
        if self.all_matching {
            let what = match matching {
                Some(n) => format!("all {} matching the filter", counted(n, one, many)),
                None => format!("all {many} matching the filter"),
            };
            return (all(), what);
        }
        let keys: Vec<K> = self.keys.iter().copied().collect();
        let what = counted(keys.len() as u64, one, many);
        (by_key(keys), what)
    }
}

/// Which action a bulk button asks for, before its arguments are typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Retry,
    Stop,
    Resume,
    GoTo,
    Finish,
}

impl Kind {
    fn verb(self) -> &'static str {
        match self {
            Kind::Retry => "Retry",
            Kind::Stop => "Stop",
            Kind::Resume => "Resume",
            Kind::GoTo => "Move",
            Kind::Finish => "Finish",
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Kind::Retry => "Retrying",
            Kind::Stop => "Stopping",
            Kind::Resume => "Resuming",
            Kind::GoTo => "Moving",
            Kind::Finish => "Finishing",
        }
    }
}

/// An action waiting for the operator's confirmation.
#[derive(Debug, Clone)]
struct Proposal {
    kind: Kind,
    selection: Selection,
    /// "3 instances", "all 100,000 instances matching the filter".
    what: String,
}

/// A bulk action sent and not answered yet.
#[derive(Debug, Clone)]
struct Running {
    progress: BulkHandle,
    words: String,
    /// The question confirmed, without its question mark: the report's title.
    asked: String,
}

/// The bulk actions' state in the monitor.
#[derive(Debug, Default)]
pub struct Bulk {
    pub instances: Picked<i64>,
    pub items: Picked<Serial>,
    confirm: Option<Proposal>,
    /// Go to's activity, as typed in the confirmation.
    activity: String,
    /// Finish's fields, one `field=value` a line, as typed.
    data: String,
    /// Why [`Bulk::data`] does not read, shown until it is corrected.
    data_error: Option<String>,
    running: Option<Running>,
    /// The last report, with what it was about, until closed.
    report: Option<(String, Result<BulkReport, EngineError>)>,
}

impl Bulk {
    /// The progress of the bulk action running now: settled and total.
    pub fn progress(&self) -> Option<(usize, usize)> {
        self.running.as_ref().map(|r| (r.progress.0.settled(), r.progress.0.total()))
    }

    /// The report shown: its title and summary (or error).
    pub fn report(&self) -> Option<(&str, String)> {
        self.report.as_ref().map(|(title, report)| {
            let summary = match report {
                Ok(report) => report.summary(),
                Err(err) => err.to_string(),
            };
            (title.as_str(), summary)
        })
    }
}

/// "3 instances" / "1 server item".
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n as usize), if n == 1 { one } else { many })
}

impl Monitor {
    /// The bar over the instance list: how many are selected, the actions
    /// for them, "select all N matching".
    pub(super) fn instances_bulk_bar(&mut self, ui: &mut Ui) {
        let matching = self.count_current().then_some(self.count).flatten();
        let free = self.bulk.running.is_none();
        let mut chosen = None;
        self.bulk.instances.bar_ui(ui, matching, matching, |ui, some| {
            for kind in [Kind::Retry, Kind::Stop, Kind::Resume] {
                let label = format!("{} selected", kind.verb());
                if ui.add_enabled(free && some, egui::Button::new(label)).clicked() {
                    chosen = Some(kind);
                }
            }
            if ui.add_enabled(free && some, egui::Button::new("Go to… selected")).clicked() {
                chosen = Some(Kind::GoTo);
            }
        });
        if let Some(kind) = chosen {
            let (selection, what) = self.bulk.instances.proposed(
                matching,
                ("instance", "instances"),
                || Selection::MatchingInstances(InstanceFilter { limit: 0, offset: 0, ..self.filter.clone() }),
                Selection::Instances,
            );
            self.bulk.confirm = Some(Proposal { kind, selection, what });
        }
        self.bulk_progress_ui(ui);
    }

    /// The bar over the server items: how many are selected, Finish with
    /// data, "select all matching".
    pub(super) fn items_bulk_bar(&mut self, ui: &mut Ui) {
        // The list holds at most its limit: past that, the worker counted
        // them all.
        let matching = self.items_matching;
        let free = self.bulk.running.is_none();
        let mut finish = false;
        self.bulk.items.bar_ui(ui, matching, matching, |ui, some| {
            finish = ui.add_enabled(free && some, egui::Button::new("Finish selected…")).clicked();
        });
        if finish {
            let (selection, what) = self.bulk.items.proposed(
                matching,
                ("server item", "server items"),
                || Selection::MatchingItems(ItemFilter { limit: 0, after: None, ..self.items_filter.clone() }),
                Selection::Serials,
            );
            self.bulk.confirm = Some(Proposal { kind: Kind::Finish, selection, what });
        }
        self.bulk_progress_ui(ui);
    }

    /// The running action's progress bar and Cancel.
    fn bulk_progress_ui(&mut self, ui: &mut Ui) {
        let Some(running) = &self.bulk.running else { return };
        let (settled, total) = (running.progress.0.settled(), running.progress.0.total());
        let cancelled = running.progress.0.is_cancelled();
        ui.horizontal(|ui| {
            ui.add(egui::Spinner::new());
            let words = if cancelled { format!("{} (cancelling)", running.words) } else { running.words.clone() };
            ui.label(words);
            let fraction = if total == 0 { 0.0 } else { settled as f32 / total as f32 };
            ui.add(egui::ProgressBar::new(fraction).desired_width(220.0).text(format!(
                "{} of {}",
                thousands(settled),
                thousands(total)
            )));
            if ui.add_enabled(!cancelled, egui::Button::new("Cancel bulk action")).clicked() {
                running.progress.0.cancel();
            }
        });
        // Progress moves on the worker: draw it again soon, without input.
        ui.ctx().request_repaint_after(std::time::Duration::from_millis(100));
    }

    /// The confirmation and the report, over the window.
    pub(super) fn bulk_windows(&mut self, ctx: &egui::Context, user: &str) {
        self.bulk_confirm_ui(ctx, user);
        self.bulk_report_ui(ctx);
    }

    fn bulk_confirm_ui(&mut self, ctx: &egui::Context, user: &str) {
        let Some(proposal) = self.bulk.confirm.clone() else { return };
        let asked = format!("{} {} as {user}", proposal.kind.verb(), proposal.what);
        let decided = super::confirmation_ui(ctx, "confirm-bulk", |ui| {
            ui.label(format!("{}?", asked));
            match proposal.kind {
                Kind::GoTo => {
                    ui.label(RichText::new("Their open activities and pending server items are cancelled.").weak());
                    ui.horizontal(|ui| {
                        let label = ui.label("To activity");
                        ui.add(TextEdit::singleline(&mut self.bulk.activity).desired_width(200.0))
                            .labelled_by(label.id);
                    });
                }
                Kind::Finish => {
                    let label = ui.label("Set fields (one field=value a line)");
                    ui.add(TextEdit::multiline(&mut self.bulk.data).desired_rows(3).desired_width(280.0))
                        .labelled_by(label.id);
                    if let Some(error) = &self.bulk.data_error {
                        ui.colored_label(theme::ERROR, error);
                    }
                }
                _ => {}
            }
            ui.label(
                RichText::new(format!(
                    "Each is judged on its own and recorded in its own audit trail as done by {user}."
                ))
                .weak(),
            );
            proposal.kind != Kind::GoTo || !self.bulk.activity.trim().is_empty()
        });
        let Some(confirmed) = decided else { return };
        let action = match proposal.kind {
            Kind::Retry => BulkAction::Retry,
            Kind::Stop => BulkAction::Stop,
            Kind::Resume => BulkAction::Resume,
            Kind::GoTo => BulkAction::GoTo { activity: self.bulk.activity.trim().to_owned() },
            Kind::Finish if confirmed => match assignments(&self.bulk.data) {
                Ok(data) => BulkAction::Finish { data },
                // A line that does not read would finish every item without
                // the value meant: the question stays up to be corrected.
                Err(why) => {
                    self.bulk.data_error = Some(why);
                    return;
                }
            },
            Kind::Finish => BulkAction::Finish { data: Vec::new() },
        };
        self.bulk.confirm = None;
        self.bulk.data_error = None;
        if !confirmed {
            return;
        }
        let words = format!("{} {}…", proposal.kind.doing(), proposal.what);
        let progress = BulkHandle::default();
        self.bulk.running = Some(Running { progress: progress.clone(), words: words.clone(), asked });
        self.bulk.report = None;
        let command = Command::Bulk { action, selection: proposal.selection, progress };
        self.commands.push(Intent { subject: Subject::Bulk, words, command });
    }

    /// Takes in a bulk action's answer: its report is shown, the selection
    /// it acted on is cleared.
    pub(super) fn bulk_answered(&mut self, action: &BulkAction, result: Result<BulkReport, EngineError>) {
        let title = self.bulk.running.take().map(|r| r.asked).unwrap_or_else(|| format!("Bulk {}", action.verb()));
        if action.on_items() {
            self.bulk.items.clear();
        } else {
            self.bulk.instances.clear();
        }
        self.bulk.report = Some((title, result));
    }

    fn bulk_report_ui(&mut self, ctx: &egui::Context) {
        let Some((title, result)) = &self.bulk.report else { return };
        let mut open = true;
        let mut close = false;
        egui::Window::new("Bulk action report")
            .id(egui::Id::unique("bulk-report"))
            .open(&mut open)
            .collapsible(false)
            .default_width(520.0)
            .pivot(egui::Align2::CENTER_CENTER)
            .default_pos(ctx.content_rect().center())
            .show(ctx, |ui| {
                ui.label(RichText::new(title).weak());
                match result {
                    Err(err) => {
                        ui.colored_label(theme::ERROR, super::refusal_words(err));
                    }
                    Ok(report) => {
                        let color = if report.all_done() { theme::SUCCESS } else { theme::WARNING };
                        ui.colored_label(color, RichText::new(report.summary()).strong());
                        let refused: Vec<String> = report
                            .refused()
                            .chain(report.failed())
                            .map(|(target, err)| format!("{target}: {err}"))
                            .collect();
                        if !refused.is_empty() {
                            ui.separator();
                            egui::ScrollArea::vertical().max_height(260.0).show_rows(
                                ui,
                                18.0,
                                refused.len().min(LISTED),
                                |ui, rows| {
                                    for line in &refused[rows] {
                                        ui.label(line);
                                    }
                                },
                            );
                            if refused.len() > LISTED {
                                ui.label(RichText::new(format!("and {} more", refused.len() - LISTED)).weak());
                            }
                        }
                    }
                }
                if ui.button("Close report").clicked() {
                    close = true;
                }
            });
        if !open || close {
            self.bulk.report = None;
        }
    }
}

/// The fields typed as `field=value` lines, blank lines left out; a line
/// without `=` or without a field name is refused, naming it (the engine
/// then names an unknown field or a wrong value).
fn assignments(text: &str) -> Result<Vec<(String, FieldInput)>, String> {
    let mut data = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((field, value)) if !field.trim().is_empty() => {
                data.push((field.trim().to_owned(), FieldInput::Text(value.trim().to_owned())))
            }
            _ => return Err(format!("line {}, `{}`: write field=value", index + 1, line.trim())),
        }
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clicks_select_one_toggle_and_range() {
        let rows = [10, 11, 12, 13, 14];
        let loaded = |index: usize| rows.get(index).copied();
        let mut picked = Picked::default();
        assert!(picked.click(1, 11, Modifiers::NONE, loaded));
        assert!(!picked.click(3, 13, Modifiers::COMMAND, loaded));
        assert_eq!(picked.keys().copied().collect::<Vec<_>>(), [11, 13]);
        assert!(!picked.click(3, 13, Modifiers::COMMAND, loaded));
        assert_eq!(picked.keys().copied().collect::<Vec<_>>(), [11]);
        // From the last row clicked (3) to this one.
        assert!(!picked.click(0, 10, Modifiers::SHIFT, loaded));
        assert_eq!(picked.keys().copied().collect::<Vec<_>>(), [10, 11, 12, 13]);
        picked.select_all_matching();
        assert!(picked.contains(&99));
        assert_eq!(picked.count(Some(100_000)), Some(100_000));
        assert!(picked.click(4, 14, Modifiers::NONE, loaded));
        assert_eq!((picked.is_all_matching(), picked.count(Some(5))), (false, Some(1)));
    }

    #[test]
    fn assignments_are_field_value_lines() {
        let data = assignments("name = call back value\n\nn=5");
        assert_eq!(
            data,
            Ok(vec![
                ("name".to_owned(), FieldInput::Text("call back value".to_owned())),
                ("n".to_owned(), FieldInput::Text("5".to_owned()))
            ])
        );
        assert_eq!(assignments("n=5\nbad line"), Err("line 2, `bad line`: write field=value".to_owned()));
        assert_eq!(assignments(" = 5"), Err("line 1, `= 5`: write field=value".to_owned()));
    }
}
