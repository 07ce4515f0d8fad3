//! Text templates with `${name}` placeholders, as HTTP request and mail events use them.
//!
//! A template is parsed once (when a definition is validated or compiled) into
//! literal text and placeholders, and filled at run time from the instance's
//! context and data fields. How a value is written depends on where it goes:
//!
//! - in a JSON body ([`Template::parse_json`]) a placeholder outside a string
//!   literal becomes the value as JSON, as the API writes it (`"12_3"`, `42`,
//!   `true`, `null`, a decimal as the string `"12.50"`), and one
//!   inside a string literal (`"id: ${serial}"`) becomes the text escaped for a
//!   JSON string, so no value can break the body's structure;
//! - in a URL ([`Template::fill_url`]) the text is percent-encoded, so a value
//!   cannot add a path segment or a query parameter;
//! - in a mail's HTML part ([`Template::fill_html`]) the text is escaped, so
//!   a value cannot add markup;
//! - anywhere else ([`Template::fill_text`]) it is the plain text.
//!
//! `$${` writes a literal `${`; a `$` not followed by `{` is plain text.
//! Placeholder names are `serial`, `instance_id`, `folio`, `activity`, `event`
//! (see [`CONTEXT_NAMES`]) or a data field's name.

use std::collections::BTreeMap;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::model::script::{CONTEXT_NAMES, ScriptContext};
use crate::model::value::Value;

/// Everything but RFC 3986's unreserved characters is encoded.
const URL_VALUE: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    /// `in_string`: the placeholder stands inside a JSON string literal.
    Placeholder {
        name: String,
        in_string: bool,
    },
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    segments: Vec<Segment>,
}

/// A template that cannot be parsed. Positions count characters from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("`${{` at character {at} has no closing `}}`")]
    Unclosed { at: usize },
    #[error("`${{{name}}}` at character {at} is not a placeholder name (letters, digits and _)")]
    BadName { name: String, at: usize },
}

/// A placeholder the values do not hold (a field the process does not have).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placeholder `${{{0}}}`")]
pub struct UnknownPlaceholder(pub String);

/// What placeholders are filled from: the event's context and the data fields.
#[derive(Debug, Clone, Copy)]
pub struct TemplateValues<'a> {
    pub context: &'a ScriptContext,
    pub data: &'a BTreeMap<String, Value>,
}

impl TemplateValues<'_> {
    /// The value of a placeholder as JSON; `serial` is `null` for a
    /// synchronous event, which has no server item.
    pub fn json(&self, name: &str) -> Option<serde_json::Value> {
        let context = self.context;
        let text = |s: &str| Some(serde_json::Value::String(s.to_owned()));
        match name {
            "serial" => Some(context.serial.clone().map_or(serde_json::Value::Null, serde_json::Value::String)),
            "instance_id" => Some(serde_json::Value::from(context.instance_id)),
            "folio" => text(&context.folio),
            "activity" => text(&context.activity),
            "event" => text(&context.event),
            field => self.data.get(field).map(Value::to_json),
        }
    }

    /// The value as plain text: strings unquoted, `null` as nothing.
    pub fn text(&self, name: &str) -> Option<String> {
        // A data field is written as its own text (a decimal as written,
        // `12.50`), not as its JSON form, which quotes strings.
        if !CONTEXT_NAMES.contains(&name) {
            return self.data.get(name).map(Value::to_string);
        }
        self.json(name).map(|json| match json {
            serde_json::Value::String(s) => s,
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        })
    }
}

impl Template {
    /// Parses plain text (a URL or a header value).
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        Template::parse_with(text, false)
    }

    /// Parses a JSON body, noting for each placeholder whether it stands
    /// inside a string literal.
    pub fn parse_json(text: &str) -> Result<Template, TemplateError> {
        Template::parse_with(text, true)
    }

    fn parse_with(text: &str, json: bool) -> Result<Template, TemplateError> {
        let chars: Vec<char> = text.chars().collect();
        let mut segments = Vec::new();
        let mut literal = String::new();
        let mut in_string = false;
        let mut escaped = false;
        let mut index = 0;
        while index < chars.len() {
            let c = chars[index];
            if c == '$' && chars.get(index + 1) == Some(&'$') && chars.get(index + 2) == Some(&'{') {
                literal.push_str("${");
                index += 3;
                continue;
            }
            if c == '$' && chars.get(index + 1) == Some(&'{') {
                let at = index + 1;
                let close = chars[index + 2..]
                    .iter()
                    .position(|&c| c == '}')
                    .map(|offset| index + 2 + offset)
                    .ok_or(TemplateError::Unclosed { at })?;
                let name: String = chars[index + 2..close].iter().collect();
                if !is_placeholder_name(&name) {
                    return Err(TemplateError::BadName { name, at });
                }
                if !literal.is_empty() {
                    segments.push(Segment::Text(std::mem::take(&mut literal)));
                }
                segments.push(Segment::Placeholder { name, in_string: json && in_string });
                index = close + 1;
                continue;
            }
            if json {
                if escaped {
                    escaped = false;
                } else if in_string && c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = !in_string;
                }
            }
            literal.push(c);
            index += 1;
        }
        if !literal.is_empty() {
            segments.push(Segment::Text(literal));
        }
        Ok(Template { segments })
    }

    pub fn is_empty(&self) -> bool {
        self.segments.is_empty()
    }

    /// The placeholder names, in order of appearance, each once.
    pub fn placeholders(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for segment in &self.segments {
            if let Segment::Placeholder { name, .. } = segment
                && !names.contains(&name.as_str())
            {
                names.push(name);
            }
        }
        names
    }

    /// The template as written, placeholders as `${name}` (a literal `$${`
    /// comes back as `${`).
    pub fn written(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Text(text) => text.clone(),
                Segment::Placeholder { name, .. } => format!("${{{name}}}"),
            })
            .collect()
    }

    /// The literal text, without placeholders (to check it on its own).
    pub fn literal_text(&self) -> String {
        self.segments
            .iter()
            .filter_map(|s| match s {
                Segment::Text(text) => Some(text.as_str()),
                Segment::Placeholder { .. } => None,
            })
            .collect()
    }

    fn fill(
        &self,
        mut write: impl FnMut(&str, bool, &mut String) -> Result<(), UnknownPlaceholder>,
    ) -> Result<String, UnknownPlaceholder> {
        let mut out = String::new();
        for segment in &self.segments {
            match segment {
                Segment::Text(text) => out.push_str(text),
                Segment::Placeholder { name, in_string } => write(name, *in_string, &mut out)?,
            }
        }
        Ok(out)
    }

    /// Fills a template parsed with [`Template::parse_json`].
    pub fn fill_json(&self, values: &TemplateValues<'_>) -> Result<String, UnknownPlaceholder> {
        self.fill(|name, in_string, out| {
            let json = values.json(name).ok_or_else(|| UnknownPlaceholder(name.to_owned()))?;
            if in_string {
                let text = values.text(name).unwrap_or_default();
                let quoted = serde_json::Value::String(text).to_string();
                // The quoted form always starts and ends with `"`.
                out.push_str(&quoted[1..quoted.len() - 1]);
            } else {
                out.push_str(&json.to_string());
            }
            Ok(())
        })
    }

    /// Fills a URL template, percent-encoding each value.
    pub fn fill_url(&self, values: &TemplateValues<'_>) -> Result<String, UnknownPlaceholder> {
        self.fill(|name, _, out| {
            let text = values.text(name).ok_or_else(|| UnknownPlaceholder(name.to_owned()))?;
            out.extend(utf8_percent_encode(&text, URL_VALUE));
            Ok(())
        })
    }

    /// Fills a template with each value's plain text.
    pub fn fill_text(&self, values: &TemplateValues<'_>) -> Result<String, UnknownPlaceholder> {
        self.fill(|name, _, out| {
            out.push_str(&values.text(name).ok_or_else(|| UnknownPlaceholder(name.to_owned()))?);
            Ok(())
        })
    }

    /// Fills an HTML template (a mail's HTML part), escaping each value's
    /// text so that no value can add markup.
    pub fn fill_html(&self, values: &TemplateValues<'_>) -> Result<String, UnknownPlaceholder> {
        self.fill(|name, _, out| {
            let text = values.text(name).ok_or_else(|| UnknownPlaceholder(name.to_owned()))?;
            for c in text.chars() {
                match c {
                    '&' => out.push_str("&amp;"),
                    '<' => out.push_str("&lt;"),
                    '>' => out.push_str("&gt;"),
                    '"' => out.push_str("&quot;"),
                    '\'' => out.push_str("&#39;"),
                    c => out.push(c),
                }
            }
            Ok(())
        })
    }
}

fn is_placeholder_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `name` can be filled for a process with these data fields.
pub fn is_known_placeholder(name: &str, field_names: &[&str]) -> bool {
    CONTEXT_NAMES.contains(&name) || field_names.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> (ScriptContext, BTreeMap<String, Value>) {
        let context = ScriptContext {
            serial: Some("12_3".to_owned()),
            instance_id: 12,
            folio: "PO-1".to_owned(),
            activity: "A".to_owned(),
            event: "e".to_owned(),
        };
        let mut data = BTreeMap::new();
        data.insert("name".to_owned(), Value::String("Ada \"the\" Łovelace\n".to_owned()));
        data.insert("n".to_owned(), Value::Integer(42));
        data.insert("ok".to_owned(), Value::Boolean(true));
        (context, data)
    }

    fn json(template: &str) -> String {
        let (context, data) = values();
        Template::parse_json(template).unwrap().fill_json(&TemplateValues { context: &context, data: &data }).unwrap()
    }

    #[test]
    fn json_values_outside_strings_are_json() {
        assert_eq!(json(r#"{"s": ${serial}, "n": ${n}, "ok": ${ok}}"#), r#"{"s": "12_3", "n": 42, "ok": true}"#);
        assert_eq!(json(r#"{"name": ${name}}"#), r#"{"name": "Ada \"the\" Łovelace\n"}"#);
    }

    #[test]
    fn json_values_inside_strings_are_escaped_text() {
        assert_eq!(json(r#"{"t": "id ${serial}: ${name} ${n}"}"#), r#"{"t": "id 12_3: Ada \"the\" Łovelace\n 42"}"#);
        // An escaped quote does not end the string literal.
        assert_eq!(json(r#"{"t": "\"${n}"}"#), r#"{"t": "\"42"}"#);
    }

    #[test]
    fn a_synchronous_event_has_a_null_serial() {
        let (mut context, data) = values();
        context.serial = None;
        let values = TemplateValues { context: &context, data: &data };
        assert_eq!(Template::parse_json("[${serial}]").unwrap().fill_json(&values).unwrap(), "[null]");
        assert_eq!(Template::parse("s=${serial}").unwrap().fill_text(&values).unwrap(), "s=");
    }

    #[test]
    fn url_values_are_percent_encoded() {
        let (context, data) = values();
        let values = TemplateValues { context: &context, data: &data };
        let url = Template::parse("http://h/x/${serial}?who=${name}").unwrap().fill_url(&values).unwrap();
        assert_eq!(url, "http://h/x/12_3?who=Ada%20%22the%22%20%C5%81ovelace%0A");
    }

    #[test]
    fn dollar_dollar_brace_is_a_literal() {
        assert_eq!(json(r#"["$${serial}", "$5", ${n}]"#), r#"["${serial}", "$5", 42]"#);
    }

    #[test]
    fn malformed_placeholders_say_where() {
        assert_eq!(Template::parse("ab${serial").unwrap_err(), TemplateError::Unclosed { at: 3 });
        assert_eq!(Template::parse("${a b}").unwrap_err(), TemplateError::BadName { name: "a b".to_owned(), at: 1 });
    }

    #[test]
    fn unknown_placeholders_are_refused() {
        let (context, data) = values();
        let values = TemplateValues { context: &context, data: &data };
        let err = Template::parse("${nope}").unwrap().fill_text(&values).unwrap_err();
        assert_eq!(err.to_string(), "unknown placeholder `${nope}`");
    }

    /// Issue 15, point 2: a decimal outside a string was the JSON number
    /// `12.5` (trailing zeros lost, `1e20` for large ones); it is the string
    /// of its written form, as in the API and `show --json`.
    #[test]
    fn decimals_in_a_body_are_strings_in_their_written_form() {
        let (context, mut data) = values();
        for (written, body) in [
            ("12.50", r#"{"a": "12.50"}"#),
            ("100000000000000000000", r#"{"a": "100000000000000000000"}"#),
            ("0.00001", r#"{"a": "0.00001"}"#),
        ] {
            data.insert(
                "amount".to_owned(),
                Value::parse(crate::model::FieldType::Decimal, written, &crate::model::ProcessZone::utc()).unwrap(),
            );
            let values = TemplateValues { context: &context, data: &data };
            assert_eq!(Template::parse_json(r#"{"a": ${amount}}"#).unwrap().fill_json(&values).unwrap(), body);
        }
    }
}
