//! Mail events: the engine's scenarios with a fake mailer (sent after the
//! step commits, refused, retried, not sent for bad data, the trail's
//! line), on every backend; then the real thing against aiosmtpd, an SMTP
//! server nobody here wrote (`tests/smtp/server.py`), checking the mail it
//! received as Python's `email` package reads it.
//!
//! The aiosmtpd tests run where `target/smtp-venv` holds it (`.ci/run`
//! installs it and sets `FLOWDESK_REQUIRE_SMTP=1`, which makes them
//! required); elsewhere they are skipped, saying so.

use crate::support;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use flowdesk::engine::{
    InstanceStatus, MailAccepted, MailError, Mailer, Progress, SmtpMailer, SmtpPassword, SmtpSettings,
};
use flowdesk::model::{MailMessage, Value};
use support::{Backend, Fixture, T0, engine_on, set};

/// A process whose start activity sends one mail (`to` and `subject` as
/// given) and then sets `done`.
fn process(to: &str, subject: &str) -> String {
    let event = serde_json::json!({
        "kind": "mail",
        "name": "Tell",
        "to": to,
        "cc": "Boss <boss@example.com>",
        "subject": subject,
        "body": "Hallo ${name},\nBetrag: ${amount} €",
        "html": "<p>Hallo <b>${name}</b></p>",
    });
    format!(
        r#"{{
      "name": "notify-by-mail",
      "fields": [
        {{ "name": "email", "type": "string" }},
        {{ "name": "name", "type": "string" }},
        {{ "name": "amount", "type": "decimal", "default": "12.50" }},
        {{ "name": "done", "type": "boolean" }}
      ],
      "activities": [
        {{ "id": "tell", "name": "Tell", "start": true, "events": [
          {event},
          {{ "kind": "server_event", "name": "Mark done", "script": "done = true;" }}
        ] }}
      ]
    }}"#
    )
}

/// Reads the instance's status from the store, as another engine would.
type ReadStatus = Box<dyn Fn() -> Option<InstanceStatus> + Send + Sync>;

/// What the fake mailer answers each send with, in order; accepted once
/// the list runs out. It also records, at each send, the instance's status
/// as another engine reads it from the store: what was committed.
#[derive(Default)]
struct FakeMailer {
    answers: Mutex<VecDeque<MailError>>,
    sent: Mutex<Vec<(MailMessage, SystemTime, Option<InstanceStatus>)>>,
    committed: Mutex<Option<ReadStatus>>,
}

impl FakeMailer {
    fn sent(&self) -> Vec<MailMessage> {
        self.sent.lock().unwrap().iter().map(|(mail, _, _)| mail.clone()).collect()
    }
}

impl Mailer for FakeMailer {
    fn send_mail(&self, mail: &MailMessage, date: SystemTime) -> Result<MailAccepted, MailError> {
        let committed = self.committed.lock().unwrap().as_ref().and_then(|read| read());
        let mut sent = self.sent.lock().unwrap();
        sent.push((mail.clone(), date, committed));
        match self.answers.lock().unwrap().pop_front() {
            Some(err) => Err(err),
            None => Ok(MailAccepted { message_id: format!("<{}@test>", sent.len()) }),
        }
    }
}

/// A fixture whose engine sends mail through `mailer`.
fn with_mailer<S: Backend>(mailer: Arc<dyn Mailer>) -> Fixture<S> {
    let Fixture { dir, clock, engine } = Fixture::<S>::fresh();
    Fixture { dir, clock, engine: engine.with_mailer(mailer) }
}

fn start<S: Backend>(fixture: &Fixture<S>, email: &str, name: &str) -> Progress {
    fixture.engine.start("admin", "notify-by-mail", "PO-7", &set(&[("email", email), ("name", name)])).unwrap()
}

fn failure(progress: &Progress) -> String {
    progress.failure.as_ref().map(|f| f.message.clone()).unwrap_or_else(|| panic!("no failure in {progress:?}"))
}

fn a_mail_goes_out_after_the_step_commits_and_the_trail_says_it_was_accepted<S: Backend>() {
    let mailer = Arc::new(FakeMailer::default());
    let fixture = with_mailer::<S>(mailer.clone());
    let reader = engine_on(fixture.engine.store().share(), fixture.clock.clone(), Default::default());
    *mailer.committed.lock().unwrap() =
        Some(Box::new(move || reader.instance("admin", 1).ok().map(|detail| detail.summary.status)));
    fixture.deploy_json("admin", &process("${email}", "Order ${folio} for ${name}"));

    let progress = start(&fixture, "ada@example.com", "Ada");

    assert_eq!(progress.status, InstanceStatus::Completed);
    assert_eq!(fixture.field(progress.instance_id, "done"), Value::Boolean(true));
    let sent = mailer.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    let (mail, date, committed) = &sent[0];
    // Sent outside the transaction: the instance was already in the store, running.
    assert_eq!(*committed, Some(InstanceStatus::Running));
    assert_eq!(*date, SystemTime::UNIX_EPOCH + Duration::from_millis(T0 as u64), "dated by the engine's clock");
    assert_eq!(mail.recipients(), "ada@example.com, boss@example.com");
    assert_eq!(mail.subject, "Order PO-7 for Ada");
    assert_eq!(mail.text, "Hallo Ada,\nBetrag: 12.50 €");
    assert_eq!(mail.html.as_deref(), Some("<p>Hallo <b>Ada</b></p>"));
    let trail = fixture.trail(progress.instance_id);
    assert!(
        trail.contains(&"admin: Mail to ada@example.com, boss@example.com accepted as <1@test>".to_owned()),
        "{trail:#?}"
    );
}

fn a_refused_mail_puts_the_instance_in_error_and_retry_sends_it_again<S: Backend>() {
    let mailer = Arc::new(FakeMailer::default());
    mailer.answers.lock().unwrap().push_back(MailError::Refused {
        server: "smtp.example.com:587".to_owned(),
        answer: "550 5.1.1 no such user".to_owned(),
    });
    let fixture = with_mailer::<S>(mailer.clone());
    fixture.deploy_json("admin", &process("${email}", "Hello"));

    let failed = start(&fixture, "ada@example.com", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    let reason = "mail to ada@example.com, boss@example.com refused by smtp.example.com:587: 550 5.1.1 no such user";
    assert_eq!(failure(&failed), reason);
    // The trail's line reads the same after its action, "Mail".
    let line = format!("admin: Mail {}", reason.strip_prefix("mail ").unwrap());
    assert!(fixture.trail(failed.instance_id).contains(&line), "{line}");
    assert_eq!(fixture.field(failed.instance_id, "done"), Value::Boolean(false));

    let retried = fixture.engine.retry("admin", failed.instance_id).unwrap();

    assert_eq!(retried.status, InstanceStatus::Completed);
    assert_eq!(mailer.sent().len(), 2, "Retry sends the mail again");
    let trail = fixture.trail(failed.instance_id);
    assert!(trail.iter().any(|l| l.ends_with("accepted as <2@test>")), "{trail:#?}");
}

fn a_connection_refused_puts_the_instance_in_error<S: Backend>() {
    let mailer = Arc::new(FakeMailer::default());
    mailer.answers.lock().unwrap().push_back(MailError::Connect {
        server: "127.0.0.1:2525".to_owned(),
        reason: "Connection refused (os error 111)".to_owned(),
    });
    let fixture = with_mailer::<S>(mailer.clone());
    fixture.deploy_json("admin", &process("${email}", "Hello"));

    let failed = start(&fixture, "ada@example.com", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    assert!(failure(&failed).contains("not sent: could not connect to 127.0.0.1:2525: Connection refused"));
}

/// An address a field holds is checked when the mail is filled in: the
/// instance fails naming it and nothing is sent; fixed, Retry sends.
fn a_malformed_address_from_data_fails_the_instance_and_sends_nothing<S: Backend>() {
    let mailer = Arc::new(FakeMailer::default());
    let fixture = with_mailer::<S>(mailer.clone());
    fixture.deploy_json("admin", &process("${email}", "Hello"));

    let failed = start(&fixture, "ada at example", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    assert_eq!(failure(&failed), "mail not sent: To: `ada at example` is not an e-mail address");
    assert!(mailer.sent().is_empty());
    fixture.engine.set_data("admin", failed.instance_id, &set(&[("email", "ada@example.com")])).unwrap();
    assert_eq!(fixture.engine.retry("admin", failed.instance_id).unwrap().status, InstanceStatus::Completed);
    assert_eq!(mailer.sent().len(), 1);
}

/// Header injection: a value with a line break in the subject (or an
/// address) would add headers; it is refused, not sent.
fn a_line_break_in_a_filled_subject_or_address_is_refused_not_sent<S: Backend>() {
    let mailer = Arc::new(FakeMailer::default());
    let fixture = with_mailer::<S>(mailer.clone());
    fixture.deploy_json("admin", &process("${email}", "Order for ${name}"));

    let subject = start(&fixture, "ada@example.com", "Ada\r\nBcc: eve@example.com");
    let address = start(&fixture, "ada@example.com\nBcc: eve@example.com", "Ada");

    assert_eq!(subject.status, InstanceStatus::Error);
    assert!(failure(&subject).starts_with("mail not sent: Subject holds a line break"), "{}", failure(&subject));
    assert!(failure(&address).starts_with("mail not sent: To holds a line break"), "{}", failure(&address));
    assert!(mailer.sent().is_empty());
}

/// An engine given no SMTP server says so on the instance.
fn with_no_smtp_server_the_instance_fails_saying_how_to_set_one<S: Backend>() {
    let fixture = Fixture::<S>::fresh();
    fixture.deploy_json("admin", &process("${email}", "Hello"));

    let failed = start(&fixture, "ada@example.com", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    assert!(
        failure(&failed).contains("no SMTP server is set (set one in the window's Settings, or FLOWDESK_SMTP_URL)")
    );
}

/// The password is given to the server and to nobody else: not to the
/// trail, not to the failure an operator reads (here the server cannot
/// even be reached, and the login is refused by the real server below).
fn the_password_is_never_in_the_trail_or_the_failure<S: Backend>() {
    let password = "s3cr3t-pass-word";
    let port = free_port();
    let settings = SmtpSettings::from_url(
        &format!("smtp://mailer%40example.com@127.0.0.1:{port}?tls=none"),
        Some(SmtpPassword::new(password.to_owned())),
    )
    .unwrap();
    assert!(!format!("{settings:?}").contains(password), "{settings:?}");
    assert!(!settings.url().contains(password));
    let fixture = with_mailer::<S>(Arc::new(SmtpMailer::new(Ok(Some(settings)))));
    fixture.deploy_json("admin", &process("${email}", "Hello"));

    let failed = start(&fixture, "ada@example.com", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    let everything = format!("{}\n{}", failure(&failed), fixture.snapshot(failed.instance_id));
    assert!(everything.contains("could not connect to 127.0.0.1:"), "{everything}");
    assert!(!everything.contains(password), "{everything}");
}

support::on_every_backend! {
    a_mail_goes_out_after_the_step_commits_and_the_trail_says_it_was_accepted,
    a_refused_mail_puts_the_instance_in_error_and_retry_sends_it_again,
    a_connection_refused_puts_the_instance_in_error,
    a_malformed_address_from_data_fails_the_instance_and_sends_nothing,
    a_line_break_in_a_filled_subject_or_address_is_refused_not_sent,
    with_no_smtp_server_the_instance_fails_saying_how_to_set_one,
    the_password_is_never_in_the_trail_or_the_failure,
}

#[test]
fn smtp_urls_are_read_with_secure_defaults() {
    let read = |url: &str| SmtpSettings::from_url(url, None);
    let settings = read("smtp://ada%40example.com@mail.example.com").unwrap();
    assert_eq!((settings.host.as_str(), settings.port), ("mail.example.com", 587));
    assert_eq!(settings.security, flowdesk::engine::SmtpSecurity::StartTls);
    assert_eq!((settings.user.as_str(), settings.from.as_str()), ("ada@example.com", "ada@example.com"));
    assert_eq!(read("smtps://mail.example.com").unwrap().port, 465);
    let local = read("smtp://localhost:2525?tls=none&from=flowdesk%40example.org").unwrap();
    assert_eq!((local.port, local.from.as_str()), (2525, "flowdesk@example.org"));
    assert_eq!(local.url(), "smtp://localhost:2525?tls=none&from=flowdesk%40example.org");
    assert_eq!(read(&local.url()).unwrap(), local, "the shown URL reads back");
    for (url, expected) in [
        ("smtp://u:pw@mail.example.com", "holds a password"),
        ("smtp://mail.example.com?tls=none", "only for a server on this machine"),
        ("smtp://mail.example.com?tls=maybe", "`tls=maybe` is not one of"),
        ("http://mail.example.com", "not smtp or smtps"),
        ("smtp://mail.example.com?from=nobody", "the sender `nobody` is not an e-mail address"),
    ] {
        let err = read(url).unwrap_err().to_string();
        assert!(err.contains(expected), "{url}: {err}");
    }
}

// ----- against aiosmtpd ---------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python that has aiosmtpd, or `None` (and the test is skipped) where
/// it is not installed and not required.
fn smtp_python() -> Option<PathBuf> {
    let python = root().join("target/smtp-venv/bin/python");
    let required = std::env::var_os("FLOWDESK_REQUIRE_SMTP").is_some();
    let has_aiosmtpd = Command::new(&python).args(["-c", "import aiosmtpd"]).output().is_ok_and(|o| o.status.success());
    if !has_aiosmtpd {
        assert!(!required, "aiosmtpd is required here: `.ci/run` installs it into target/smtp-venv");
        eprintln!(
            "skipped: no aiosmtpd (`python3 -m venv target/smtp-venv && target/smtp-venv/bin/pip install -r tests/smtp/requirements.txt` installs it)"
        );
        return None;
    }
    Some(python)
}

/// aiosmtpd listening on 127.0.0.1:`port`, with the mails it accepted.
struct SmtpServer {
    child: Child,
    mails: mpsc::Receiver<serde_json::Value>,
}

impl SmtpServer {
    fn start(python: &PathBuf, port: u16) -> SmtpServer {
        let mut child = Command::new(python)
            .arg(root().join("tests/smtp/server.py"))
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        let (tell, mails) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tell.send(serde_json::from_str(&line).unwrap());
            }
        });
        SmtpServer { child, mails }
    }

    /// The next mail the server accepted; the engine's send returned only
    /// after the server had answered it, so it has been printed.
    fn mail(&self) -> serde_json::Value {
        self.mails.recv_timeout(Duration::from_secs(30)).expect("a mail")
    }

    fn stop(mut self) {
        // Closing its standard input ends it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.child.stdin.take() {
            let _ = stdin.flush();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_fixture(port: u16) -> Fixture {
    let url = format!("smtp://127.0.0.1:{port}?tls=none&from=flowdesk%40example.org");
    let settings = SmtpSettings::from_url(&url, None).unwrap();
    with_mailer::<flowdesk::store::SqliteStore>(Arc::new(SmtpMailer::new(Ok(Some(settings)))))
}

#[test]
fn aiosmtpd_receives_the_mail_with_its_headers_encoded_and_placeholders_filled() {
    let Some(python) = smtp_python() else { return };
    let port = free_port();
    let server = SmtpServer::start(&python, port);
    let fixture = smtp_fixture(port);
    fixture.deploy_json("admin", &process("${email}", "Bestellung ${folio} für ${name} ✓"));

    let progress = start(&fixture, "ada@example.com", "Zoë <Ada>");

    assert_eq!(progress.status, InstanceStatus::Completed, "{:?}", progress.failure);
    let mail = server.mail();
    assert_eq!(mail["mail_from"], "flowdesk@example.org");
    assert_eq!(mail["rcpt_tos"], serde_json::json!(["ada@example.com", "boss@example.com"]));
    assert_eq!(mail["from"], "flowdesk@example.org");
    assert_eq!(mail["to"], "ada@example.com");
    assert_eq!(mail["cc"], "Boss <boss@example.com>");
    // RFC 2047: sent as encoded words, decoded by Python to what was filled in.
    assert_eq!(mail["subject"], "Bestellung PO-7 für Zoë <Ada> ✓");
    let raw_subject = mail["raw_subject"].as_str().unwrap().to_ascii_lowercase();
    assert!(raw_subject.contains("=?utf-8?"), "{raw_subject}");
    assert_eq!(mail["date"].as_f64(), Some((T0 / 1000) as f64), "dated by the engine's clock");
    assert_eq!(mail["mime_version"], "1.0");
    assert_eq!(mail["content_type"], "multipart/alternative");
    // Line ends travel as CRLF, as RFC 5322 has them.
    let part = |kind: &str| mail["parts"][kind].as_str().unwrap().replace("\r\n", "\n");
    assert_eq!(part("text/plain"), "Hallo Zoë <Ada>,\nBetrag: 12.50 €");
    assert_eq!(part("text/html"), "<p>Hallo <b>Zoë &lt;Ada&gt;</b></p>");
    assert_eq!(mail["defects"], serde_json::json!([]));
    let message_id = mail["message_id"].as_str().unwrap();
    assert!(message_id.starts_with('<') && message_id.ends_with("@example.org>"), "{message_id}");
    let trail = fixture.trail(progress.instance_id);
    let line = format!("admin: Mail to ada@example.com, boss@example.com accepted as {message_id}");
    assert!(trail.contains(&line), "{line} not in {trail:#?}");
    server.stop();
}

#[test]
fn aiosmtpd_refusing_a_recipient_puts_the_instance_in_error_with_its_answer() {
    let Some(python) = smtp_python() else { return };
    let port = free_port();
    let server = SmtpServer::start(&python, port);
    let fixture = smtp_fixture(port);
    fixture.deploy_json("admin", &process("${email}", "Hello"));

    let failed = start(&fixture, "refused@example.com", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    let message = failure(&failed);
    assert!(
        message.starts_with(&format!("mail to refused@example.com, boss@example.com refused by 127.0.0.1:{port}: 550")),
        "{message}"
    );
    assert!(message.contains("no such user here"), "{message}");
    assert!(server.mails.try_recv().is_err(), "nothing was delivered");
    server.stop();
}

#[test]
fn a_mail_refused_for_want_of_a_server_is_sent_by_retry_once_the_server_is_up() {
    let Some(python) = smtp_python() else { return };
    let port = free_port();
    let fixture = smtp_fixture(port);
    fixture.deploy_json("admin", &process("${email}", "Hello ${name}"));

    let failed = start(&fixture, "ada@example.com", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    assert!(
        failure(&failed).contains(&format!("not sent: could not connect to 127.0.0.1:{port}")),
        "{}",
        failure(&failed)
    );

    let server = SmtpServer::start(&python, port);
    let retried = fixture.engine.retry("admin", failed.instance_id).unwrap();

    assert_eq!(retried.status, InstanceStatus::Completed, "{:?}", retried.failure);
    assert_eq!(server.mail()["subject"], "Hello Ada");
    assert_eq!(fixture.field(failed.instance_id, "done"), Value::Boolean(true));
    server.stop();
}

/// The login's password: aiosmtpd offers no login without TLS, so lettre
/// gives up before saying anything secret; the failure says why and holds
/// no password.
#[test]
fn aiosmtpd_without_a_login_fails_the_mail_and_the_password_stays_out_of_the_trail() {
    let Some(python) = smtp_python() else { return };
    let port = free_port();
    let server = SmtpServer::start(&python, port);
    let password = "an0ther-s3cret";
    let url = format!("smtp://mailer@127.0.0.1:{port}?tls=none&from=flowdesk%40example.org");
    let settings = SmtpSettings::from_url(&url, Some(SmtpPassword::new(password.to_owned()))).unwrap();
    let fixture = with_mailer::<flowdesk::store::SqliteStore>(Arc::new(SmtpMailer::new(Ok(Some(settings)))));
    fixture.deploy_json("admin", &process("${email}", "Hello"));

    let failed = start(&fixture, "ada@example.com", "Ada");

    assert_eq!(failed.status, InstanceStatus::Error);
    let everything = format!("{}\n{}", failure(&failed), fixture.snapshot(failed.instance_id));
    assert!(!everything.contains(password), "{everything}");
    server.stop();
}

/// The command line reads the server from `FLOWDESK_SMTP_URL`.
#[test]
fn the_command_line_sends_through_the_server_flowdesk_smtp_url_names() {
    let Some(python) = smtp_python() else { return };
    let port = free_port();
    let server = SmtpServer::start(&python, port);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("notify.process.json");
    std::fs::write(&file, process("${email}", "Hello ${name}")).unwrap();
    let run = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowdesk"));
        command.arg("--db").arg(dir.path().join("db.sqlite")).arg("--user").arg("admin").args(args);
        command.env("FLOWDESK_SMTP_URL", format!("smtp://127.0.0.1:{port}?tls=none&from=cli%40example.org"));
        crate::common_cli::execute(command, &args.join(" "))
    };
    let deployed = run(&["deploy", file.to_str().unwrap()]);
    assert_eq!(deployed.code, Some(0), "{deployed:?}");
    let started =
        run(&["start", "notify-by-mail", "--folio", "PO-1", "--set", "email=ada@example.com", "--set", "name=Ada"]);
    assert_eq!(started.code, Some(0), "{started:?}");
    let mail = server.mail();
    assert_eq!((mail["from"].as_str(), mail["subject"].as_str()), (Some("cli@example.org"), Some("Hello Ada")));
    server.stop();
}
