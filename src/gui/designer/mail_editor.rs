//! The properties page of a mail event: recipients, subject and bodies as
//! templates, and the Synchronous toggle shown switched on and disabled,
//! with the reason (a mail event never waits).

use egui::{Grid, RichText, TextEdit, Ui};

use crate::gui::designer::properties::{event_footer_ui, text_row};
use crate::gui::designer::{Coalesce, Designer, Edit};
use crate::model::{ActivityDraft, EventDraft, MailDraft, ProcessDraft};

/// Why the toggle cannot be switched off, as its hover text and the page say.
pub const SYNCHRONOUS_REASON: &str = "A mail event is always synchronous: it completes once the SMTP server has accepted the mail. Nothing outside holds a serial to call back with, so there is nothing to wait for.";

pub(crate) fn mail_ui(
    ui: &mut Ui,
    designer: &Designer,
    activity: &ActivityDraft,
    index: usize,
    event: &MailDraft,
    edits: &mut Vec<Edit>,
) {
    let activity_id = activity.id.as_str();
    let owned = || activity_id.to_owned();
    ui.heading("Mail");
    ui.label(RichText::new(format!("in activity {}", activity.name)).weak());
    Grid::new("mail-properties").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
        type Part = fn(&mut MailDraft) -> &mut String;
        let rows: [(&str, &str, &str, Part); 4] = [
            ("Name", "event-name", event.name.as_str(), |e| &mut e.name),
            ("To", "mail-to", event.to.as_str(), |e| &mut e.to),
            ("Cc", "mail-cc", event.cc.as_str(), |e| &mut e.cc),
            ("Subject", "mail-subject", event.subject.as_str(), |e| &mut e.subject),
        ];
        for (label, key, value, part) in rows {
            let activity = owned();
            text_row(ui, label, value, format!("{key}:{activity_id}:{index}"), edits, move |d, v| {
                with_mail(d, &activity, index, |e| *part(e) = v);
            });
        }
        ui.label("");
        // Shown on and disabled: the property exists for every event, and
        // this one cannot be switched off.
        let mut synchronous = true;
        ui.add_enabled(false, egui::Checkbox::new(&mut synchronous, "Synchronous"))
            .on_disabled_hover_text(SYNCHRONOUS_REASON);
        ui.end_row();
    });
    ui.label(RichText::new(SYNCHRONOUS_REASON).small().weak());
    ui.separator();
    for (label, key, value, html) in [
        ("Body (plain text)", "mail-body", event.body.as_str(), false),
        ("HTML body (optional: sent as the alternative to the text)", "mail-html", event.html.as_str(), true),
    ] {
        let shown = ui.label(label);
        let mut text = value.to_owned();
        let response = ui
            .add(TextEdit::multiline(&mut text).desired_rows(if html { 3 } else { 6 }).desired_width(f32::INFINITY))
            .labelled_by(shown.id);
        if response.changed() {
            let activity = owned();
            edits.push(Edit::new(Coalesce::Key(format!("{key}:{activity_id}:{index}")), move |d| {
                with_mail(d, &activity, index, |e| if html { e.html = text } else { e.body = text });
            }));
        }
    }
    event_footer_ui(ui, designer, activity_id, index, |fields| {
        format!(
            "Addresses: ada@example.com or Ada Lovelace <ada@example.com>, separated by commas. Placeholders: ${{instance_id}}, ${{folio}}, ${{activity}}, ${{event}} and the fields ({fields}); in the HTML body a value is escaped. The SMTP server is set in Settings (or FLOWDESK_SMTP_URL), never in the process."
        )
    });
}

fn with_mail(draft: &mut ProcessDraft, activity: &str, index: usize, change: impl FnOnce(&mut MailDraft)) {
    if let Some(EventDraft::Mail(event)) =
        draft.activities.iter_mut().find(|a| a.id == activity).and_then(|a| a.events.get_mut(index))
    {
        change(event);
    }
}
