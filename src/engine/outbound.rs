//! Sending HTTP request events' requests: the engine's only network IO.
//!
//! The engine holds an [`Outbound`] and calls it outside any transaction (see
//! `continue_async`). [`HttpOutbound`] is the real one, on `ureq`; tests can use
//! it against a loopback server, or put their own in its place. What happened
//! to one request is an [`Exchange`]: the audit trail's line and, for a
//! failure, the reason an operator reads on the instance in error.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::RequestExt;

use crate::model::{FillError, HttpRequest};

/// How much of an error response's body is kept for the failure's reason.
const BODY_EXCERPT_CHARS: usize = 200;
/// How much of a response body is read at most; the rest is not waited for.
const BODY_READ_LIMIT: u64 = 16 * 1024;

/// An answer from the external system, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    /// The status's standard reason phrase (`Internal Server Error`), if any.
    pub reason: String,
    /// The start of the body, as text, cut at `BODY_EXCERPT_CHARS`.
    pub body_excerpt: String,
}

impl OutboundResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// `200 OK`, or the bare number for a status without a standard phrase.
    pub fn status_line(&self) -> String {
        if self.reason.is_empty() { self.status.to_string() } else { format!("{} {}", self.status, self.reason) }
    }
}

/// A request that got no answer. Each reads after "POST http://host/path".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    #[error("timed out after {} s", .0.as_secs())]
    Timeout(Duration),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("failed: {0}")]
    Other(String),
}

/// Sends requests. Implementations must honour [`HttpRequest::timeout`] for
/// the whole exchange, connecting included: the engine relies on it to bound
/// how long an instance stays `Running`.
pub trait Outbound: Send + Sync {
    fn send(&self, request: &HttpRequest) -> Result<OutboundResponse, OutboundError>;
}

/// What happened to one request event's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exchange {
    /// The request could not be made from the instance's data.
    NotSent(FillError),
    /// Sent; `outcome` is the answer or why there was none.
    Sent { request: String, outcome: Result<OutboundResponse, OutboundError>, elapsed: Duration },
}

impl Exchange {
    /// Sends `request` (if it could be filled in) through `outbound`, timing it.
    pub fn run(outbound: &dyn Outbound, request: Result<HttpRequest, FillError>) -> Exchange {
        match request {
            Err(err) => Exchange::NotSent(err),
            Ok(request) => {
                let started = Instant::now();
                let outcome = outbound.send(&request);
                let request = format!("{} {}", request.method, shown_url(&request.url));
                Exchange::Sent { request, outcome, elapsed: started.elapsed() }
            }
        }
    }

    /// The audit trail's line: `POST http://h/p → 200 OK in 12 ms`.
    pub fn summary(&self) -> String {
        match self {
            Exchange::NotSent(err) => format!("not sent: {err}"),
            Exchange::Sent { request, outcome: Ok(response), elapsed } => {
                format!("{request} → {} in {} ms", response.status_line(), elapsed.as_millis())
            }
            Exchange::Sent { request, outcome: Err(err), .. } => format!("{request} → {err}"),
        }
    }

    /// Why the event failed, for an operator; `None` for a 2xx answer.
    pub fn failure(&self) -> Option<String> {
        match self {
            Exchange::NotSent(err) => Some(format!("request not sent: {err}")),
            Exchange::Sent { outcome: Ok(response), .. } if response.is_success() => None,
            Exchange::Sent { request, outcome: Ok(response), .. } => {
                let status = response.status_line();
                Some(if response.body_excerpt.trim().is_empty() {
                    format!("{request} answered {status}")
                } else {
                    format!("{request} answered {status}: {}", response.body_excerpt.trim())
                })
            }
            Exchange::Sent { request, outcome: Err(err), .. } => Some(format!("{request} {err}")),
        }
    }
}

/// A URL as the audit trail and failure reasons show it: a password in it
/// (`http://user:secret@host/`) is replaced by `***`, since everyone who may
/// view the instance reads those.
fn shown_url(url: &http::Uri) -> String {
    let text = url.to_string();
    let Some(authority) = url.authority().map(http::uri::Authority::as_str) else { return text };
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return text };
    let Some((user, _password)) = userinfo.split_once(':') else { return text };
    text.replacen(authority, &format!("{user}:***@{host}"), 1)
}

/// The real [`Outbound`], over `ureq`. Redirects are not followed: a 3xx is
/// reported like any other non-2xx answer, because silently re-sending a POST
/// elsewhere is not something a process designer asked for.
pub struct HttpOutbound {
    agent: ureq::Agent,
}

impl Default for HttpOutbound {
    fn default() -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_redirects_will_error(false)
            .user_agent(concat!("flowdesk/", env!("CARGO_PKG_VERSION")))
            .build();
        HttpOutbound { agent: ureq::Agent::new_with_config(config) }
    }
}

impl Outbound for HttpOutbound {
    fn send(&self, request: &HttpRequest) -> Result<OutboundResponse, OutboundError> {
        let mut builder = http::Request::builder().method(request.method.name()).uri(request.url.clone());
        let mut has_content_type = false;
        for (name, value) in &request.headers {
            has_content_type |= name == http::header::CONTENT_TYPE;
            builder = builder.header(name, value);
        }
        if request.body.is_some() && !has_content_type {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let body = request.body.clone().unwrap_or_default().into_bytes();
        let http_request = builder.body(body).map_err(|err| OutboundError::Other(err.to_string()))?;
        let timeout = Some(request.timeout);
        let mut response = http_request
            .with_agent(&self.agent)
            .configure()
            .timeout_global(timeout)
            .timeout_connect(timeout)
            .build()
            .run()
            .map_err(|err| describe_error(err, request.timeout))?;
        let status = response.status();
        let mut bytes = Vec::new();
        // A body that cannot be read (cut off, timed out) is reported as an
        // empty excerpt: the status has already said what happened.
        let _ = response.body_mut().as_reader().take(BODY_READ_LIMIT).read_to_end(&mut bytes);
        let body_excerpt = String::from_utf8_lossy(&bytes).chars().take(BODY_EXCERPT_CHARS).collect();
        Ok(OutboundResponse {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or_default().to_owned(),
            body_excerpt,
        })
    }
}

fn describe_error(err: ureq::Error, timeout: Duration) -> OutboundError {
    match err {
        ureq::Error::Timeout(_) => OutboundError::Timeout(timeout),
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => OutboundError::Timeout(timeout),
        ureq::Error::Io(io) if is_connect_error(io.kind()) => OutboundError::Connect(io.to_string()),
        ureq::Error::HostNotFound => OutboundError::Connect("host not found".to_owned()),
        ureq::Error::ConnectionFailed => OutboundError::Connect("connection failed".to_owned()),
        other => OutboundError::Other(other.to_string()),
    }
}

fn is_connect_error(kind: std::io::ErrorKind) -> bool {
    use std::io::ErrorKind::*;
    matches!(kind, ConnectionRefused | AddrNotAvailable | HostUnreachable | NetworkUnreachable | NotFound)
}
