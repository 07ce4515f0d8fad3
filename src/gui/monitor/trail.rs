//! The audit trail of the instance shown, as a table: time, user, action,
//! activity / event, details, and the time since the line before (what an
//! operator reads a slow step or a long wait from).
//!
//! Lines are filtered by their kind, the typed [`AuditAction`] (never by
//! their words), and a row is copied to the clipboard as one line of
//! tab-separated text, so that it pastes into a ticket or a spreadsheet as
//! it is shown. `flowdesk show` prints the same columns.

use egui::{RichText, Ui};
use egui_extras::{Column, TableBuilder};

use crate::engine::{AuditAction, AuditEntry, Millis, format_step, format_time, trail_steps};

/// What the trail table keeps between frames: the kind it is filtered by.
#[derive(Debug, Default)]
pub struct TrailTable {
    /// Only lines of this kind; every line when `None`.
    pub kind: Option<AuditAction>,
}

/// A row as copied: the columns shown, tab-separated (tabs and line breaks
/// inside a column become spaces, so that the row stays one line of
/// columns).
pub fn row_text(entry: &AuditEntry, since_previous: Option<Millis>) -> String {
    let place = entry.place.as_ref().map(|place| place.words()).unwrap_or_default();
    let step = since_previous.map(format_step).unwrap_or_default();
    let cells =
        [format_time(entry.at), entry.user.clone(), entry.action.name().to_owned(), place, entry.detail.clone(), step];
    cells.map(|cell| cell.replace(['\t', '\n', '\r'], " ")).join("\t")
}

impl TrailTable {
    /// The filter and the table of `audit`, oldest line first.
    pub fn ui(&mut self, ui: &mut Ui, audit: &[AuditEntry]) {
        let steps = trail_steps(audit);
        // The kinds this trail has, in the order the engine names them.
        let kinds: Vec<AuditAction> =
            AuditAction::ALL.into_iter().filter(|kind| audit.iter().any(|entry| entry.action == *kind)).collect();
        ui.horizontal(|ui| {
            let label = ui.label("Kind");
            let shown = self.kind.map_or("all", AuditAction::name);
            let combo = egui::ComboBox::from_id_salt("trail-kind").selected_text(shown).show_ui(ui, |ui| {
                if ui.selectable_label(self.kind.is_none(), "all").clicked() {
                    self.kind = None;
                }
                for kind in &kinds {
                    if ui.selectable_label(self.kind == Some(*kind), kind.name()).clicked() {
                        self.kind = Some(*kind);
                    }
                }
            });
            combo.response.labelled_by(label.id);
            let shown = audit.iter().filter(|entry| self.kind.is_none_or(|kind| entry.action == kind)).count();
            ui.label(RichText::new(format!("{shown} of {} line(s)", audit.len())).weak());
        });
        // The rows shown, each with its place in the whole trail: the time
        // since the line before is the trail's, whatever the filter hides.
        let rows: Vec<(usize, &AuditEntry)> =
            audit.iter().enumerate().filter(|(_, entry)| self.kind.is_none_or(|kind| entry.action == kind)).collect();
        let mut copied = None;
        ui.style_mut().interaction.selectable_labels = false;
        // Narrowed together on a small screen, the details first; the
        // time, the action and the step keep their width.
        let widths = super::fitted_widths(
            [50.0, 160.0, 64.0, 140.0, 170.0, 300.0, 96.0],
            [true, true, false, true, false, false, true],
            ui.available_width() - 6.0 * ui.spacing().item_spacing.x - ui.spacing().scroll.allocated_width(),
        );
        let mut table = TableBuilder::new(ui)
            .id_salt("audit-trail")
            .striped(true)
            .sense(egui::Sense::click())
            .auto_shrink([false, false])
            .column(Column::exact(widths[0]));
        for width in &widths[1..widths.len() - 1] {
            table = table.column(Column::initial(*width).resizable(true).clip(true));
        }
        table
            .column(Column::remainder().at_least(widths[6]).clip(true))
            .header(22.0, |mut header| {
                for title in ["", "Time", "User", "Action", "Activity / event", "Details", "Since previous"] {
                    header.col(|ui| {
                        ui.strong(title);
                    });
                }
            })
            .body(|body| {
                body.rows(20.0, rows.len(), |mut row| {
                    let (index, entry) = rows[row.index()];
                    let step = steps.get(index).copied().flatten();
                    row.col(|ui| {
                        let button = ui.small_button("Copy");
                        let label = format!("Copy line {}", index + 1);
                        button.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                        if button.on_hover_text("Copy this line, tab-separated").clicked() {
                            copied = Some(row_text(entry, step));
                        }
                    });
                    row.col(|ui| {
                        ui.label(RichText::new(format_time(entry.at)).weak());
                    });
                    row.col(|ui| {
                        ui.label(RichText::new(&entry.user).strong());
                    });
                    row.col(|ui| {
                        ui.colored_label(super::action_color(entry.action), entry.action.name());
                    });
                    row.col(|ui| {
                        ui.label(entry.place.as_ref().map(|place| place.words()).unwrap_or_default());
                    });
                    row.col(|ui| {
                        // Long details (a log line, a request) in full on hover.
                        ui.label(&entry.detail).on_hover_text(&entry.detail);
                    });
                    row.col(|ui| {
                        ui.label(step.map(format_step).unwrap_or_default());
                    });
                    row.response().context_menu(|ui| {
                        if ui.button("Copy line").clicked() {
                            copied = Some(row_text(entry, step));
                            ui.close();
                        }
                    });
                });
            });
        if let Some(text) = copied {
            ui.ctx().copy_text(text);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::AuditPlace;

    /// A copied line is the columns shown, tab-separated, on one line.
    #[test]
    fn a_copied_line_is_its_columns_tab_separated_on_one_line() {
        let entry = AuditEntry {
            at: 1_795_597_200_000,
            user: "ada".to_owned(),
            action: AuditAction::Log,
            detail: "Ask: first\tsecond\nthird".to_owned(),
            place: Some(AuditPlace { activity: "Call".to_owned(), event: "Ask".to_owned() }),
        };
        assert_eq!(
            row_text(&entry, Some(1_250)),
            "2026-11-25 09:00:00 UTC\tada\tLog\tCall / Ask\tAsk: first second third\t1s 250ms"
        );
        let started = AuditEntry { place: None, action: AuditAction::InstanceStarted, ..entry };
        assert_eq!(row_text(&started, None).split('\t').collect::<Vec<_>>()[3..], ["", "Ask: first second third", ""]);
    }
}
