//! Sending HTTP request events' requests and mail events' mail: the
//! engine's only network IO.
//!
//! The engine holds an [`Outbound`] and calls it outside any transaction (see
//! `continue_async`). [`HttpOutbound`] is the real one, on `ureq`; tests can use
//! it against a loopback server, or put their own in its place. What happened
//! to one request is an [`Exchange`]: the audit trail's line and, for a
//! failure, the reason an operator reads on the instance in error.
//!
//! Mail goes the same way: a [`Mailer`] sends a filled-in [`MailMessage`]
//! (the real one, [`SmtpMailer`], over lettre's blocking SMTP transport with
//! rustls, to the server its [`SmtpSettings`] name), and a [`MailDelivery`]
//! is what happened: `mail to … accepted as <message id>`, or the server's
//! refusal. The password lives only in [`SmtpSettings`] (its `Debug` hides
//! it) and in the SMTP conversation, never in a line or a reason.

use std::io::Read;
use std::time::{Duration, Instant};

use ureq::RequestExt;

use crate::model::{FillError, HttpRequest, MailFillError, MailMessage};

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

// ---------------------------------------------------------------------------
// Mail: the SMTP half of the door.

/// How long each step of a conversation with the SMTP server may take
/// (connecting, each command and its answer).
pub const MAIL_TIMEOUT: Duration = Duration::from_secs(30);

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS before anything is said;
    /// refused if the server cannot (no downgrade). Port 587.
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS"). Port 465.
    Tls,
    /// No encryption: only for a server on this machine.
    None,
}

impl SmtpSecurity {
    pub const ALL: [SmtpSecurity; 3] = [SmtpSecurity::StartTls, SmtpSecurity::Tls, SmtpSecurity::None];

    /// As `?tls=` writes it.
    pub fn name(self) -> &'static str {
        match self {
            SmtpSecurity::StartTls => "starttls",
            SmtpSecurity::Tls => "tls",
            SmtpSecurity::None => "none",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            SmtpSecurity::StartTls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        }
    }
}

/// An SMTP password. Never written anywhere by flowdesk: not in a process
/// file, the audit trail, a log or the window's saved settings; its `Debug`
/// says `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpPassword(String);

impl SmtpPassword {
    pub fn new(password: String) -> SmtpPassword {
        SmtpPassword(password)
    }
}

impl std::fmt::Debug for SmtpPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where mail goes: the SMTP server, its login and the sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    /// Empty: no login.
    pub user: String,
    pub password: Option<SmtpPassword>,
    /// The From address of every mail.
    pub from: String,
}

/// A server setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SmtpSettingsError {
    #[error("`{url}` is not an SMTP URL: {reason}")]
    BadUrl { url: String, reason: String },
    #[error(
        "the SMTP URL holds a password: give it in FLOWDESK_SMTP_PASSWORD instead, since URLs are shown and logged"
    )]
    PasswordInUrl,
    #[error("the SMTP server has no host")]
    NoHost,
    #[error("`tls={0}` is not one of starttls, tls or none")]
    BadTls(String),
    #[error("an unencrypted connection (tls=none) is only for a server on this machine, not `{0}`")]
    PlainNotLocal(String),
    #[error("the sender `{0}` is not an e-mail address")]
    BadFrom(String),
}

impl SmtpSettings {
    /// Reads `FLOWDESK_SMTP_URL`'s form:
    /// `smtp://[user@]host[:port][?tls=starttls|tls|none][&from=address]`
    /// (`smtps://` means `tls=tls`). The security defaults to STARTTLS and
    /// the port to the security's; the sender to the user if it is an
    /// address, else `flowdesk@host`. A password is refused here: it comes
    /// apart (`password`, from `FLOWDESK_SMTP_PASSWORD`).
    pub fn from_url(text: &str, password: Option<SmtpPassword>) -> Result<SmtpSettings, SmtpSettingsError> {
        let bad = |reason: String| SmtpSettingsError::BadUrl { url: text.to_owned(), reason };
        let url = url::Url::parse(text.trim()).map_err(|err| bad(err.to_string()))?;
        if url.password().is_some() {
            return Err(SmtpSettingsError::PasswordInUrl);
        }
        let mut security = match url.scheme() {
            "smtp" => SmtpSecurity::StartTls,
            "smtps" => SmtpSecurity::Tls,
            other => return Err(bad(format!("the scheme is `{other}`, not smtp or smtps"))),
        };
        let mut from = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "tls" => {
                    security = SmtpSecurity::ALL
                        .into_iter()
                        .find(|s| s.name() == value)
                        .ok_or_else(|| SmtpSettingsError::BadTls(value.to_string()))?;
                }
                "from" => from = Some(value.to_string()),
                other => return Err(bad(format!("unknown parameter `{other}`: only tls and from"))),
            }
        }
        // `url` keeps IPv6 hosts in brackets; lettre connects to the bare address.
        let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']').to_owned();
        let user = percent_encoding::percent_decode_str(url.username()).decode_utf8_lossy().into_owned();
        let port = url.port().unwrap_or(security.default_port());
        let from = from.unwrap_or_else(|| if user.contains('@') { user.clone() } else { format!("flowdesk@{host}") });
        SmtpSettings { host, port, security, user, password, from }.checked()
    }

    /// The settings, or why they cannot be used.
    pub fn checked(self) -> Result<SmtpSettings, SmtpSettingsError> {
        if self.host.trim().is_empty() {
            return Err(SmtpSettingsError::NoHost);
        }
        if self.security == SmtpSecurity::None && !is_loopback(&self.host) {
            return Err(SmtpSettingsError::PlainNotLocal(self.host));
        }
        if self.from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(SmtpSettingsError::BadFrom(self.from));
        }
        Ok(self)
    }

    /// The settings as a URL without the password: what the window and
    /// the trail may show.
    pub fn url(&self) -> String {
        // RFC 3986's unreserved characters stay as they are: `a%40x.org`.
        const PART: &percent_encoding::AsciiSet =
            &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');
        let user: String = percent_encoding::utf8_percent_encode(&self.user, PART).collect();
        let at = if self.user.is_empty() { String::new() } else { format!("{user}@") };
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let from: String = percent_encoding::utf8_percent_encode(&self.from, PART).collect();
        format!("smtp://{at}{host}:{}?tls={}&from={from}", self.port, self.security.name())
    }

    /// `host:port`, as failures name the server.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The server's word for a mail it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailAccepted {
    /// The `Message-ID` the mail carries (`<…@domain>`).
    pub message_id: String,
}

/// A mail that was not accepted. Each reads after "mail to a@x.org".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    #[error("not sent: no SMTP server is set (set one in the window's Settings, or FLOWDESK_SMTP_URL)")]
    NotSet,
    #[error("not sent: {0}")]
    Settings(SmtpSettingsError),
    #[error("not sent: could not connect to {server}: {reason}")]
    Connect { server: String, reason: String },
    /// A 4xx or 5xx answer: `answer` is the server's code and text.
    #[error("refused by {server}: {answer}")]
    Refused { server: String, answer: String },
    #[error("failed at {server}: {reason}")]
    Other { server: String, reason: String },
}

/// Sends mail. Implementations must bound how long a send may take (the
/// real one: [`MAIL_TIMEOUT`] per step).
pub trait Mailer: Send + Sync {
    /// Sends `mail`, dated `date` (the engine's clock).
    fn send_mail(&self, mail: &MailMessage, date: std::time::SystemTime) -> Result<MailAccepted, MailError>;
}

/// What happened to one mail event's mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailDelivery {
    /// The mail could not be made from the instance's data.
    NotSent(MailFillError),
    /// Handed to the server; `outcome` is its answer.
    Sent { recipients: String, outcome: Result<MailAccepted, MailError> },
}

impl MailDelivery {
    /// Sends `mail` (if it could be filled in) through `mailer`.
    pub fn run(
        mailer: &dyn Mailer,
        mail: Result<MailMessage, MailFillError>,
        date: std::time::SystemTime,
    ) -> MailDelivery {
        match mail {
            Err(err) => MailDelivery::NotSent(err),
            Ok(mail) => MailDelivery::Sent { recipients: mail.recipients(), outcome: mailer.send_mail(&mail, date) },
        }
    }

    /// The audit trail's detail, after its action `Mail`: `to a@x.org
    /// accepted as <…@x.org>`, so that the line reads "Mail to …".
    pub fn summary(&self) -> String {
        match self {
            MailDelivery::NotSent(err) => format!("not sent: {err}"),
            MailDelivery::Sent { recipients, outcome: Ok(accepted) } => {
                format!("to {recipients} accepted as {}", accepted.message_id)
            }
            MailDelivery::Sent { recipients, outcome: Err(err) } => format!("to {recipients} {err}"),
        }
    }

    /// Why the event failed, for an operator (`mail to a@x.org refused by
    /// …`); `None` once accepted.
    pub fn failure(&self) -> Option<String> {
        match self {
            MailDelivery::Sent { outcome: Ok(_), .. } => None,
            _ => Some(format!("mail {}", self.summary())),
        }
    }
}

/// The real [`Mailer`], over lettre's blocking SMTP transport: one
/// connection per mail (mail events are rare next to the connection's
/// cost, and a pool would hold connections the server may drop). Its
/// settings may change while it runs (the window's Settings); settings that
/// could not be read (a malformed `FLOWDESK_SMTP_URL`) are kept as their
/// error, which every mail then fails with.
pub struct SmtpMailer {
    settings: std::sync::RwLock<Result<Option<SmtpSettings>, SmtpSettingsError>>,
}

impl Default for SmtpMailer {
    fn default() -> SmtpMailer {
        SmtpMailer::new(Ok(None))
    }
}

impl SmtpMailer {
    pub fn new(settings: Result<Option<SmtpSettings>, SmtpSettingsError>) -> SmtpMailer {
        SmtpMailer { settings: std::sync::RwLock::new(settings) }
    }

    pub fn settings(&self) -> Result<Option<SmtpSettings>, SmtpSettingsError> {
        self.settings.read().map(|s| s.clone()).unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn set_settings(&self, settings: Result<Option<SmtpSettings>, SmtpSettingsError>) {
        match self.settings.write() {
            Ok(mut held) => *held = settings,
            Err(poisoned) => *poisoned.into_inner() = settings,
        }
    }
}

impl Mailer for SmtpMailer {
    fn send_mail(&self, mail: &MailMessage, date: std::time::SystemTime) -> Result<MailAccepted, MailError> {
        use lettre::Transport;
        use lettre::transport::smtp::client::{Tls, TlsParameters};

        let settings = self.settings().map_err(MailError::Settings)?.ok_or(MailError::NotSet)?;
        let settings = settings.checked().map_err(MailError::Settings)?;
        let server = settings.server();
        let from: lettre::message::Mailbox = settings
            .from
            .parse()
            .map_err(|_| MailError::Settings(SmtpSettingsError::BadFrom(settings.from.clone())))?;
        let message_id = new_message_id(from.email.domain());
        let mut builder = lettre::Message::builder()
            .from(from)
            .subject(mail.subject.as_str())
            .date(date)
            .message_id(Some(message_id.clone()))
            .user_agent(concat!("flowdesk/", env!("CARGO_PKG_VERSION")).to_owned());
        for to in &mail.to {
            builder = builder.to(to.clone());
        }
        for cc in &mail.cc {
            builder = builder.cc(cc.clone());
        }
        let built = match &mail.html {
            None => builder.singlepart(lettre::message::SinglePart::plain(mail.text.clone())),
            Some(html) => {
                builder.multipart(lettre::message::MultiPart::alternative_plain_html(mail.text.clone(), html.clone()))
            }
        };
        let other = |reason: String| MailError::Other { server: server.clone(), reason };
        let message = built.map_err(|err| other(err.to_string()))?;
        let tls = |host: &str| TlsParameters::new(host.to_owned()).map_err(|err| other(err.to_string()));
        let tls = match settings.security {
            SmtpSecurity::StartTls => Tls::Required(tls(&settings.host)?),
            SmtpSecurity::Tls => Tls::Wrapper(tls(&settings.host)?),
            SmtpSecurity::None => Tls::None,
        };
        let mut transport = lettre::SmtpTransport::builder_dangerous(settings.host.as_str())
            .port(settings.port)
            .tls(tls)
            .timeout(Some(MAIL_TIMEOUT));
        // EHLO with this machine's name, as RFC 5321 asks (lettre, built
        // without its `hostname` feature, would say [127.0.0.1]).
        if let Some(name) = whoami::hostname().ok().filter(|name| !name.is_empty() && name.is_ascii()) {
            transport = transport.hello_name(lettre::transport::smtp::extension::ClientId::Domain(name));
        }
        if !settings.user.is_empty() {
            let password = settings.password.map(|p| p.0).unwrap_or_default();
            transport = transport.credentials(lettre::transport::smtp::authentication::Credentials::new(
                settings.user.clone(),
                password,
            ));
        }
        match transport.build().send(&message) {
            Ok(_) => Ok(MailAccepted { message_id }),
            Err(err) => Err(describe_smtp_error(&err, server)),
        }
    }
}

/// A fresh `Message-ID`: 128 random bits at the sender's domain.
fn new_message_id(domain: &str) -> String {
    let mut bytes = [0u8; 16];
    // Without the system's randomness the clock's nanoseconds still make
    // ids that differ between mails; a duplicate id only confuses threading.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        bytes = nanos.as_nanos().to_le_bytes();
    }
    format!("<{}@{domain}>", hex::encode(bytes))
}

fn describe_smtp_error(err: &lettre::transport::smtp::Error, server: String) -> MailError {
    use std::error::Error as _;
    let reason = err.source().map_or_else(|| err.to_string(), |source| source.to_string());
    if let Some(code) = err.status() {
        return MailError::Refused { server, answer: format!("{code} {reason}").trim().to_owned() };
    }
    // lettre says "Connection error" for a failure to connect (refused,
    // unreachable, timed out, no such host) and "network error" once talking.
    if err.to_string().starts_with("Connection error") {
        return MailError::Connect { server, reason };
    }
    MailError::Other { server, reason: err.to_string() }
}
