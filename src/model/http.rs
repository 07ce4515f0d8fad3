//! HTTP request events: checking a draft, the compiled request, and filling it
//! in for one instance.
//!
//! Everything here is pure: the request is *described* ([`HttpRequest`]) and
//! sending it is the engine's business (`engine::outbound`). Checking and
//! filling share one code path, so a request that validates with sample values
//! fails at run time only for reasons that depend on the instance's data
//! (a header value holding a line break, a URL made invalid by a value).

use std::time::Duration;

use crate::model::definition::RequestParts;
use crate::model::script::ScriptContext;
use crate::model::template::{Template, TemplateValues, UnknownPlaceholder, is_known_placeholder};

/// The methods an HTTP request event may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl HttpMethod {
    pub const ALL: [HttpMethod; 5] =
        [HttpMethod::Get, HttpMethod::Post, HttpMethod::Put, HttpMethod::Patch, HttpMethod::Delete];

    pub fn name(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }

    /// Reads a method as written in a process file; case and surrounding
    /// spaces do not matter, so a hand-written `post` is not an error.
    pub fn parse(text: &str) -> Option<HttpMethod> {
        HttpMethod::ALL.into_iter().find(|m| m.name().eq_ignore_ascii_case(text.trim()))
    }
}

impl std::fmt::Display for HttpMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The range of `timeout_seconds`.
pub const TIMEOUT_SECONDS: std::ops::RangeInclusive<u64> = 1..=300;

/// A checked HTTP request event, ready to be filled in for an instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestSpec {
    pub method: HttpMethod,
    pub url: Template,
    pub headers: Vec<(http::HeaderName, Template)>,
    /// `None` when the event sends no body.
    pub body: Option<Template>,
    pub timeout: Duration,
}

/// One request, filled in and ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: HttpMethod,
    pub url: http::Uri,
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// A JSON document, sent with `Content-Type: application/json` unless a
    /// header says otherwise.
    pub body: Option<String>,
    pub timeout: Duration,
}

/// Why a request could not be filled in for an instance.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FillError {
    #[error(transparent)]
    Unknown(#[from] UnknownPlaceholder),
    #[error("the URL `{url}` is not valid once filled in: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("header `{name}` cannot be sent: its value holds a line break or another control character")]
    BadHeaderValue { name: String },
    #[error("the body is not valid JSON once filled in: {message} at line {line}, column {column}")]
    BadBody { message: String, line: usize, column: usize },
}

impl HttpRequestSpec {
    /// Every problem of a draft, as messages for the event's location; the
    /// spec when there is none. `field_names` are the process's data fields,
    /// `sample` values of their types that the templates are tried with.
    pub fn check(
        draft: RequestParts<'_>,
        field_names: &[&str],
        sample: &TemplateValues<'_>,
    ) -> Result<HttpRequestSpec, Vec<String>> {
        let mut problems = Vec::new();
        let method = HttpMethod::parse(draft.method);
        if method.is_none() {
            problems.push(format!("method `{}` is not one of GET, POST, PUT, PATCH or DELETE", draft.method));
        }
        if !TIMEOUT_SECONDS.contains(&draft.timeout_seconds) {
            problems.push(format!(
                "timeout of {} s is out of range: from {} to {} seconds",
                draft.timeout_seconds,
                TIMEOUT_SECONDS.start(),
                TIMEOUT_SECONDS.end()
            ));
        }
        let url = if draft.url.trim().is_empty() {
            problems.push("the URL is empty".to_owned());
            None
        } else {
            checked_template("URL", draft.url, false, field_names, &mut problems)
        };
        let mut headers = Vec::new();
        for (index, header) in draft.headers.iter().enumerate() {
            let name = match http::HeaderName::from_bytes(header.name.trim().as_bytes()) {
                Ok(name) => Some(name),
                Err(_) if header.name.trim().is_empty() => {
                    problems.push(format!("header {} has no name", index + 1));
                    None
                }
                Err(_) => {
                    problems.push(format!(
                        "header name `{}` is not valid: letters, digits and !#$%&'*+-.^_`|~ only",
                        header.name
                    ));
                    None
                }
            };
            let value = checked_template(
                &format!("header `{}`", header.name.trim()),
                &header.value,
                false,
                field_names,
                &mut problems,
            );
            if let (Some(name), Some(value)) = (name, value) {
                headers.push((name, value));
            }
        }
        let body = if draft.body.trim().is_empty() {
            None
        } else {
            if method == Some(HttpMethod::Get) {
                problems.push("a GET request sends no body: use POST, PUT or PATCH, or empty the body".to_owned());
            }
            checked_template("body", draft.body, true, field_names, &mut problems)
        };
        // Every part missing above has pushed its problem.
        let (Some(method), Some(url), true) = (method, url, problems.is_empty()) else {
            return Err(problems);
        };
        let spec = HttpRequestSpec { method, url, headers, body, timeout: Duration::from_secs(draft.timeout_seconds) };
        // Filling each part with sample values finds a URL that is not
        // absolute http(s), a literal control character in a header and a
        // body that is not JSON, all of them.
        let problems: Vec<String> = std::iter::once(spec.fill_url(sample).err())
            .chain(spec.headers.iter().map(|(name, template)| fill_header(name, template, sample).err()))
            .chain(std::iter::once(spec.fill_body(sample).err()))
            .flatten()
            .map(|err| err.to_string())
            .collect();
        if problems.is_empty() { Ok(spec) } else { Err(problems) }
    }

    /// The request for one instance.
    pub fn fill(&self, values: &TemplateValues<'_>) -> Result<HttpRequest, FillError> {
        let url = self.fill_url(values)?;
        let headers = self
            .headers
            .iter()
            .map(|(name, template)| fill_header(name, template, values))
            .collect::<Result<Vec<_>, _>>()?;
        let body = self.fill_body(values)?;
        Ok(HttpRequest { method: self.method, url, headers, body, timeout: self.timeout })
    }

    fn fill_url(&self, values: &TemplateValues<'_>) -> Result<http::Uri, FillError> {
        let url = self.url.fill_url(values)?;
        parse_url(&url).map_err(|reason| FillError::BadUrl { url, reason })
    }

    fn fill_body(&self, values: &TemplateValues<'_>) -> Result<Option<String>, FillError> {
        let Some(template) = &self.body else { return Ok(None) };
        let text = template.fill_json(values)?;
        if let Err(err) = serde_json::from_str::<serde_json::Value>(&text) {
            // serde_json ends its message with the position; it is given apart.
            let message = err.to_string();
            let message = message.rfind(" at line ").map_or(message.clone(), |cut| message[..cut].to_owned());
            return Err(FillError::BadBody { message, line: err.line(), column: err.column() });
        }
        Ok(Some(text))
    }
}

fn fill_header(
    name: &http::HeaderName,
    template: &Template,
    values: &TemplateValues<'_>,
) -> Result<(http::HeaderName, http::HeaderValue), FillError> {
    let text = template.fill_text(values)?;
    // `HeaderValue` accepts tabs and visible characters only; a line break
    // would let a value inject further headers.
    let value = http::HeaderValue::from_str(&text).map_err(|_| FillError::BadHeaderValue { name: name.to_string() })?;
    Ok((name.clone(), value))
}

/// Parses a template, noting a syntax error or unknown placeholders (all of
/// them, by name) as a problem of `what`. Mail events' templates are
/// checked the same way (`model::mail`), as are a sub-process event's
/// folio and input templates.
pub(crate) fn checked_template(
    what: &str,
    text: &str,
    json: bool,
    field_names: &[&str],
    problems: &mut Vec<String>,
) -> Option<Template> {
    let parsed = if json { Template::parse_json(text) } else { Template::parse(text) };
    let template = match parsed {
        Ok(template) => template,
        Err(err) => {
            problems.push(format!("{what}: {err}"));
            return None;
        }
    };
    let unknown: Vec<String> = template
        .placeholders()
        .into_iter()
        .filter(|name| !is_known_placeholder(name, field_names))
        .map(|name| format!("`${{{name}}}`"))
        .collect();
    if unknown.is_empty() {
        return Some(template);
    }
    let (noun, verb) = if unknown.len() == 1 { ("placeholder", "is") } else { ("placeholders", "are") };
    problems.push(format!(
        "{what}: unknown {noun} {}: {verb} neither a data field nor one of serial, instance_id, folio, activity, event",
        unknown.join(", ")
    ));
    None
}

fn parse_url(text: &str) -> Result<http::Uri, String> {
    let url: http::Uri = text.trim().parse().map_err(|err: http::uri::InvalidUri| err.to_string())?;
    match url.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => return Err(format!("scheme `{other}` is not http or https")),
        None => return Err("it is not absolute: write http://host/… or https://host/…".to_owned()),
    }
    if url.host().is_none_or(str::is_empty) {
        return Err("it names no host".to_owned());
    }
    Ok(url)
}

/// The context templates are checked with: what an instance would see.
pub fn sample_context(activity: &str, event: &str, synchronous: bool) -> ScriptContext {
    ScriptContext {
        serial: (!synchronous).then(|| "1_1".to_owned()),
        instance_id: 1,
        folio: "PO-1".to_owned(),
        activity: activity.to_owned(),
        event: event.to_owned(),
    }
}
