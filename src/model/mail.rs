//! Mail events: checking a draft, the compiled message, and filling it in for
//! one instance.
//!
//! Everything here is pure, as in [`crate::model::http`]: the message is
//! *described* ([`MailMessage`]) and sending it is the engine's business
//! (`engine::outbound`). What can be known from the file is checked when the
//! process is validated (a recipient, literal addresses, placeholders, a
//! line break written into the subject); what depends on an instance's data
//! (an address a field holds, a value with a line break) is checked when the
//! message is filled in, and the instance fails with the reason instead of
//! sending anything.
//!
//! Addresses are lettre's [`Mailbox`]es (`ada@example.com` or
//! `Ada Lovelace <ada@example.com>`), separated by commas.

use std::str::FromStr;

use lettre::message::Mailbox;

use crate::model::definition::MailDraft;
use crate::model::http::checked_template;
use crate::model::template::TemplateValues;
use crate::model::template::{Template, UnknownPlaceholder};

/// A checked mail event, ready to be filled in for an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSpec {
    pub to: Template,
    /// Empty when the mail has no copy.
    pub cc: Template,
    pub subject: Template,
    pub body: Template,
    /// `None`: a plain-text mail.
    pub html: Option<Template>,
}

/// One mail, filled in and ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailMessage {
    pub to: Vec<Mailbox>,
    pub cc: Vec<Mailbox>,
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The HTML alternative to `text`, if the event has one.
    pub html: Option<String>,
}

impl MailMessage {
    /// Every recipient, to and cc, as the audit trail names them.
    pub fn recipients(&self) -> String {
        let all: Vec<String> = self.to.iter().chain(&self.cc).map(|m| m.email.to_string()).collect();
        all.join(", ")
    }
}

/// Which header of a mail a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailHeader {
    To,
    Cc,
    Subject,
}

impl std::fmt::Display for MailHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MailHeader::To => "To",
            MailHeader::Cc => "Cc",
            MailHeader::Subject => "Subject",
        })
    }
}

/// Why a mail could not be filled in for an instance; nothing was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailFillError {
    #[error(transparent)]
    Unknown(#[from] UnknownPlaceholder),
    #[error("the mail has no recipient: To is empty once filled in")]
    NoRecipient,
    #[error("{header}: `{text}` is not an e-mail address")]
    BadAddress { header: MailHeader, text: String },
    /// A line break in a header would let a value add headers (a Bcc, say)
    /// to the mail: refused, not cleaned up.
    #[error(
        "{header} holds a line break or another control character once filled in: refused, since it could add headers to the mail"
    )]
    LineBreak { header: MailHeader },
}

impl MailSpec {
    /// Every problem of a draft, as messages for the event's location; the
    /// spec when there is none. `field_names` are the process's data fields.
    pub fn check(draft: &MailDraft, field_names: &[&str]) -> Result<MailSpec, Vec<String>> {
        let mut problems = Vec::new();
        if !draft.synchronous {
            problems.push(
                "a mail event is always synchronous: it completes when the SMTP server accepts the mail, and nothing \
                 calls back; remove `\"synchronous\": false`"
                    .to_owned(),
            );
        }
        if draft.to.trim().is_empty() {
            problems.push("the mail has no recipient: write an address in To".to_owned());
        }
        let to = checked_template("To", &draft.to, false, field_names, &mut problems);
        let cc = checked_template("Cc", &draft.cc, false, field_names, &mut problems);
        for (header, template) in [(MailHeader::To, &to), (MailHeader::Cc, &cc)] {
            if let Some(template) = template {
                problems.extend(literal_address_problems(header, template));
            }
        }
        let subject = checked_template("Subject", &draft.subject, false, field_names, &mut problems);
        if let Some(subject) = &subject
            && subject.literal_text().chars().any(char::is_control)
        {
            problems.push(MailFillError::LineBreak { header: MailHeader::Subject }.to_string());
        }
        let body = checked_template("body", &draft.body, false, field_names, &mut problems);
        let html = if draft.html.trim().is_empty() {
            Some(None)
        } else {
            checked_template("HTML body", &draft.html, false, field_names, &mut problems).map(Some)
        };
        match (to, cc, subject, body, html, problems.is_empty()) {
            (Some(to), Some(cc), Some(subject), Some(body), Some(html), true) => {
                Ok(MailSpec { to, cc, subject, body, html })
            }
            _ => Err(problems),
        }
    }

    /// The mail for one instance.
    pub fn fill(&self, values: &TemplateValues<'_>) -> Result<MailMessage, MailFillError> {
        let to = fill_addresses(MailHeader::To, &self.to, values)?;
        if to.is_empty() {
            return Err(MailFillError::NoRecipient);
        }
        let cc = fill_addresses(MailHeader::Cc, &self.cc, values)?;
        let subject = self.subject.fill_text(values)?;
        if subject.chars().any(char::is_control) {
            return Err(MailFillError::LineBreak { header: MailHeader::Subject });
        }
        let text = self.body.fill_text(values)?;
        let html = self.html.as_ref().map(|html| html.fill_html(values)).transpose()?;
        Ok(MailMessage { to, cc, subject, text, html })
    }
}

/// The addresses a list holds once filled in; empty pieces (`a@x, , b@y`,
/// a field left empty) are skipped.
fn fill_addresses(
    header: MailHeader,
    template: &Template,
    values: &TemplateValues<'_>,
) -> Result<Vec<Mailbox>, MailFillError> {
    let text = template.fill_text(values)?;
    if text.chars().any(char::is_control) {
        return Err(MailFillError::LineBreak { header });
    }
    split_addresses(&text).map(|piece| parse_address(header, piece)).collect()
}

fn parse_address(header: MailHeader, text: &str) -> Result<Mailbox, MailFillError> {
    let bad = || MailFillError::BadAddress { header, text: text.to_owned() };
    let mailbox = Mailbox::from_str(text).map_err(|_| bad())?;
    // lettre's parser stops at the first mailbox and ignores what follows
    // (`a@x.org b@y.org`): the text must be exactly what it read.
    let bare = mailbox.email.to_string();
    let whole = text.trim();
    let exact = whole == bare || (whole.ends_with('>') && whole.contains(&format!("<{bare}>")));
    if exact { Ok(mailbox) } else { Err(bad()) }
}

/// The pieces of a comma-separated list, trimmed, without the empty ones; a
/// comma inside a quoted display name (`"Doe, Jo" <jo@x.org>`) separates
/// nothing.
fn split_addresses(text: &str) -> impl Iterator<Item = &str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (at, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                pieces.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    pieces.push(&text[start..]);
    pieces.into_iter().map(str::trim).filter(|piece| !piece.is_empty())
}

/// The problems of the addresses written out in a list; a piece holding a
/// placeholder is checked once filled in.
fn literal_address_problems(header: MailHeader, template: &Template) -> Vec<String> {
    let written = template.written();
    split_addresses(&written)
        .filter(|piece| !piece.contains("${"))
        .filter_map(|piece| parse_address(header, piece).err())
        .map(|err| err.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::model::script::ScriptContext;
    use crate::model::value::Value;

    fn draft() -> MailDraft {
        MailDraft {
            name: "Tell".to_owned(),
            synchronous: true,
            to: "${email}, Boss <boss@example.com>".to_owned(),
            cc: "\"Doe, Jo\" <jo@example.com>".to_owned(),
            subject: "Order ${folio}: ${name}".to_owned(),
            body: "Dear ${name},\nyour order is ${n}.".to_owned(),
            html: "<p>Dear ${name}</p>".to_owned(),
        }
    }

    fn fill(spec: &MailSpec, data: &[(&str, &str)]) -> Result<MailMessage, MailFillError> {
        let context = ScriptContext { folio: "PO-7".to_owned(), instance_id: 7, ..ScriptContext::default() };
        let mut values: BTreeMap<String, Value> =
            data.iter().map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned()))).collect();
        values.insert("n".to_owned(), Value::Integer(3));
        spec.fill(&TemplateValues { context: &context, data: &values })
    }

    const FIELDS: [&str; 3] = ["email", "name", "n"];

    #[test]
    fn a_mail_is_filled_with_the_instances_values() {
        let spec = MailSpec::check(&draft(), &FIELDS).unwrap();
        let mail = fill(&spec, &[("email", "ada@example.com"), ("name", "Ada <b>")]).unwrap();
        assert_eq!(mail.recipients(), "ada@example.com, boss@example.com, jo@example.com");
        assert_eq!(mail.cc[0].name.as_deref(), Some("Doe, Jo"));
        assert_eq!(mail.subject, "Order PO-7: Ada <b>");
        assert_eq!(mail.text, "Dear Ada <b>,\nyour order is 3.");
        assert_eq!(mail.html.as_deref(), Some("<p>Dear Ada &lt;b&gt;</p>"));
    }

    #[test]
    fn every_problem_of_a_draft_is_named() {
        let bad = MailDraft {
            name: "Tell".to_owned(),
            synchronous: false,
            to: "  ".to_owned(),
            cc: "not an address, ${nobody}".to_owned(),
            subject: "Hello\r\nBcc: all@example.com".to_owned(),
            body: "${missing}".to_owned(),
            html: String::new(),
        };
        let problems = MailSpec::check(&bad, &FIELDS).unwrap_err();
        let all = problems.join("\n");
        for expected in [
            "always synchronous",
            "no recipient: write an address in To",
            "Cc: unknown placeholder `${nobody}`",
            "Subject holds a line break",
            "body: unknown placeholder `${missing}`",
        ] {
            assert!(all.contains(expected), "{expected} not in:\n{all}");
        }
        let literal = MailDraft { to: "ada@example.com, bob@".to_owned(), ..draft() };
        let problems = MailSpec::check(&literal, &FIELDS).unwrap_err();
        assert_eq!(problems, ["To: `bob@` is not an e-mail address"]);
    }

    #[test]
    fn addresses_from_data_are_checked_when_filled() {
        let spec = MailSpec::check(&draft(), &FIELDS).unwrap();
        for (email, expected) in [
            ("ada", MailFillError::BadAddress { header: MailHeader::To, text: "ada".to_owned() }),
            (
                "a@x.org b@y.org",
                MailFillError::BadAddress { header: MailHeader::To, text: "a@x.org b@y.org".to_owned() },
            ),
            ("a@x.org\r\nBcc: eve@x.org", MailFillError::LineBreak { header: MailHeader::To }),
        ] {
            assert_eq!(fill(&spec, &[("email", email), ("name", "n")]), Err(expected), "{email}");
        }
        let only_data = MailSpec::check(&MailDraft { to: "${email}".to_owned(), ..draft() }, &FIELDS).unwrap();
        assert_eq!(fill(&only_data, &[("email", " "), ("name", "n")]), Err(MailFillError::NoRecipient));
    }

    #[test]
    fn a_line_break_from_data_in_the_subject_is_refused() {
        let spec = MailSpec::check(&draft(), &FIELDS).unwrap();
        let err = fill(&spec, &[("email", "a@x.org"), ("name", "x\nBcc: eve@x.org")]).unwrap_err();
        assert_eq!(err, MailFillError::LineBreak { header: MailHeader::Subject });
        assert!(err.to_string().starts_with("Subject holds a line break"), "{err}");
    }
}
