//! The Settings dialog: the SMTP server mail events send through.
//!
//! The server is the window's, not a process's: it is kept with the
//! window's other settings between runs, all but the password, which is
//! kept for this session only (`FLOWDESK_SMTP_PASSWORD` gives it at every
//! start). When `FLOWDESK_SMTP_URL` is set, the environment wins and the
//! dialog shows what it says.

use egui::{ComboBox, Grid, RichText, TextEdit};
use serde::{Deserialize, Serialize};

use crate::engine::{SmtpPassword, SmtpSecurity, SmtpSettings, SmtpSettingsError};
use crate::gui::theme;

/// The SMTP server as the window keeps it between runs: everything but the
/// password. No host: no server.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedSmtp {
    pub host: String,
    /// None: the security's usual port.
    pub port: Option<u16>,
    pub security: SmtpSecurity,
    pub user: String,
    pub from: String,
}

impl SavedSmtp {
    /// The settings these make with `password`; `Ok(None)` without a host.
    pub fn settings(&self, password: Option<SmtpPassword>) -> Result<Option<SmtpSettings>, SmtpSettingsError> {
        if self.host.trim().is_empty() {
            return Ok(None);
        }
        let host = self.host.trim().to_owned();
        let user = self.user.trim().to_owned();
        let from = match self.from.trim() {
            "" if user.contains('@') => user.clone(),
            "" => format!("flowdesk@{host}"),
            from => from.to_owned(),
        };
        SmtpSettings {
            port: self.port.unwrap_or(self.security.default_port()),
            host,
            security: self.security,
            password: password.filter(|_| !user.is_empty()),
            user,
            from,
        }
        .checked()
        .map(Some)
    }
}

/// The dialog's state while it is open.
#[derive(Debug, Clone, Default)]
pub struct SettingsForm {
    pub smtp: SavedSmtp,
    pub port: String,
    /// Typed for this session; never saved. Empty: `FLOWDESK_SMTP_PASSWORD`'s.
    pub password: String,
    /// What `FLOWDESK_SMTP_URL` says, when it is set (it wins).
    pub from_env: Option<String>,
    pub error: Option<String>,
}

impl SettingsForm {
    pub fn new(smtp: &SavedSmtp, from_env: Option<String>) -> SettingsForm {
        SettingsForm {
            smtp: smtp.clone(),
            port: smtp.port.map(|p| p.to_string()).unwrap_or_default(),
            password: String::new(),
            from_env,
            error: None,
        }
    }

    /// The server the form describes, or why it cannot be used.
    pub fn read(&self) -> Result<(SavedSmtp, Option<SmtpSettings>), String> {
        let mut smtp = self.smtp.clone();
        smtp.port = match self.port.trim() {
            "" => None,
            port => Some(port.parse().map_err(|_| format!("port `{port}` is not a number from 1 to 65535"))?),
        };
        // Typed here, else FLOWDESK_SMTP_PASSWORD's.
        let password = match self.password.as_str() {
            "" => crate::runtime::smtp_password_from_env(),
            typed => Some(SmtpPassword::new(typed.to_owned())),
        };
        let settings = smtp.settings(password).map_err(|err| err.to_string())?;
        Ok((smtp, settings))
    }
}

/// What the user did with the dialog this frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsAnswer {
    Open,
    Save,
    Cancel,
}

fn security_words(security: SmtpSecurity) -> &'static str {
    match security {
        SmtpSecurity::StartTls => "STARTTLS (port 587)",
        SmtpSecurity::Tls => "TLS (port 465)",
        SmtpSecurity::None => "None (a server on this machine only)",
    }
}

/// Draws the dialog.
pub fn settings_dialog_ui(ctx: &egui::Context, form: &mut SettingsForm) -> SettingsAnswer {
    let mut answer = SettingsAnswer::Open;
    egui::Modal::new(egui::Id::unique("settings")).show(ctx, |ui| {
        ui.set_width(460.0);
        ui.heading("Settings");
        ui.label(RichText::new("Mail: the SMTP server that mail events send through").strong());
        if let Some(url) = &form.from_env {
            ui.colored_label(theme::WARNING, format!("FLOWDESK_SMTP_URL is set and wins: {url}"));
        }
        let editable = form.from_env.is_none();
        ui.add_enabled_ui(editable, |ui| {
            Grid::new("smtp-settings").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
                let row = |ui: &mut egui::Ui, label: &str, text: &mut String, hint: &str, password: bool| {
                    let shown = ui.label(label);
                    ui.add(TextEdit::singleline(text).hint_text(hint).password(password).desired_width(280.0))
                        .labelled_by(shown.id);
                    ui.end_row();
                };
                row(ui, "Host", &mut form.smtp.host, "smtp.example.com", false);
                let shown = ui.label("Security");
                ComboBox::from_id_salt("smtp-security")
                    .selected_text(security_words(form.smtp.security))
                    .width(280.0)
                    .show_ui(ui, |ui| {
                        for security in SmtpSecurity::ALL {
                            ui.selectable_value(&mut form.smtp.security, security, security_words(security));
                        }
                    })
                    .response
                    .labelled_by(shown.id);
                ui.end_row();
                let port_hint = form.smtp.security.default_port().to_string();
                row(ui, "Port", &mut form.port, &port_hint, false);
                row(ui, "User", &mut form.smtp.user, "empty: no login", false);
                row(ui, "Password", &mut form.password, "kept for this session only", true);
                row(ui, "From", &mut form.smtp.from, "flowdesk@example.com", false);
            });
        });
        ui.label(
            RichText::new(
                "Kept with the window's settings, but for the password: left empty, it is FLOWDESK_SMTP_PASSWORD's. Never in a process file or the audit trail.",
            )
            .small()
            .weak(),
        );
        if let Some(error) = &form.error {
            ui.colored_label(theme::ERROR, error);
        }
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.add_enabled(editable, egui::Button::new("Save")).clicked() {
                answer = SettingsAnswer::Save;
            }
            if ui.button("Cancel").clicked() {
                answer = SettingsAnswer::Cancel;
            }
        });
    });
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_reads_as_the_settings_it_shows() {
        let mut form = SettingsForm::new(&SavedSmtp::default(), None);
        assert_eq!(form.read().unwrap().1, None, "no host: no server");
        form.smtp.host = "mail.example.com".to_owned();
        form.smtp.user = "ada@example.com".to_owned();
        form.password = "secret".to_owned();
        let (saved, settings) = form.read().unwrap();
        let settings = settings.unwrap();
        assert_eq!((settings.port, settings.from.as_str()), (587, "ada@example.com"));
        assert!(settings.password.is_some());
        assert_eq!(saved.port, None);
        form.port = "99999".to_owned();
        assert!(form.read().unwrap_err().contains("port `99999`"));
        form.port = String::new();
        form.smtp.security = SmtpSecurity::None;
        assert!(form.read().unwrap_err().contains("only for a server on this machine"));
    }
}
