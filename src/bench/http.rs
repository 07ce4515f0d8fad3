//! `flowdesk bench http`: callbacks through the HTTP API under load, with bad
//! calls mixed in, and proof that every item was finished exactly once.
//!
//! N instances are started (not timed) until each waits at step B; the API
//! is served on a free loopback port; then `clients` HTTP clients, each with
//! one keep-alive connection as an external system's pool would hold, take
//! the items in turn. Each item gets one good finish; one item in
//! `1 / bad_share` also gets one bad call, cycling through every kind of
//! refusal: a duplicate finish, a malformed serial, an unknown serial, a bad
//! token, a user without the right, data of the wrong type and a body that is
//! not JSON. Bad calls aimed at an item go before its good finish (the item
//! is pending and must stay untouched), except the duplicate, which follows.
//!
//! Afterwards every answer is checked against the status and `code` it
//! should have had, and every instance is re-read: completed as the scenario
//! says, with exactly one "Server item finished" in its trail, by the
//! benchmark's user.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::net::RunningApi;
use crate::net::token;
use crate::runtime::{Runtime, RuntimeEngine};
use crate::store::Durability;

/// A user with no right on the benchmark's process.
const OUTSIDER: &str = "outsider";

#[derive(Debug, Clone)]
pub struct HttpOptions {
    pub instances: usize,
    pub clients: usize,
    /// Bad calls per good one (0.1: one bad call for every ten items).
    pub bad_share: f64,
    pub durability: Durability,
    pub folder: PathBuf,
}

/// The kinds of bad call, in the order they are mixed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadCall {
    Duplicate,
    MalformedSerial,
    UnknownSerial,
    BadToken,
    MissingRight,
    WrongDataType,
    NotJson,
}

impl BadCall {
    const ALL: [BadCall; 7] = [
        BadCall::Duplicate,
        BadCall::MalformedSerial,
        BadCall::UnknownSerial,
        BadCall::BadToken,
        BadCall::MissingRight,
        BadCall::WrongDataType,
        BadCall::NotJson,
    ];

    /// The status and error code the API must answer.
    fn expected(self) -> (u16, &'static str) {
        match self {
            BadCall::Duplicate => (409, "already_finished"),
            BadCall::MalformedSerial => (400, "invalid_serial"),
            BadCall::UnknownSerial => (404, "item_not_found"),
            BadCall::BadToken => (401, "invalid_token"),
            BadCall::MissingRight => (403, "permission_denied"),
            BadCall::WrongDataType => (400, "invalid_data"),
            BadCall::NotJson => (400, "invalid_body"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct HttpReport {
    pub instances: usize,
    pub clients: usize,
    pub calls: usize,
    pub bad_calls: usize,
    pub elapsed: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub durability: Durability,
    /// Calls whose answer was not the one they should have had.
    pub wrong_answers: Vec<String>,
    /// Instances not completed exactly once as the scenario says.
    pub unverified: Vec<Unverified>,
}

impl HttpReport {
    pub fn finishes_per_s(&self) -> f64 {
        self.instances as f64 / self.elapsed.as_secs_f64()
    }

    pub fn line(&self) -> String {
        format!(
            "engine=flowdesk bench=http instances={} clients={} calls={} bad_calls={} seconds={:.2} finishes_per_s={:.0} calls_per_s={:.0} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} sync={} wrong_answers={} exactly_once={}",
            self.instances,
            self.clients,
            self.calls,
            self.bad_calls,
            self.elapsed.as_secs_f64(),
            self.finishes_per_s(),
            self.calls as f64 / self.elapsed.as_secs_f64(),
            bench::millis(self.p50),
            bench::millis(self.p99),
            bench::millis(self.max),
            self.durability.name(),
            self.wrong_answers.len(),
            if self.unverified.is_empty() { "yes" } else { "NO" }
        )
    }
}

/// What one client saw.
#[derive(Default)]
struct ClientLog {
    latencies: Vec<Duration>,
    bad_calls: usize,
    wrong_answers: Vec<String>,
}

struct Secrets {
    caller: String,
    outsider: String,
}

pub fn run(options: &HttpOptions) -> Result<HttpReport, BenchError> {
    let scratch = Scratch::new(&options.folder)?;
    let runtime = Arc::new(bench::open(&scratch.db_path(), options.durability)?);
    let engine = runtime.engine();
    let process = bench::deploy(engine)?;
    bench::start_waiting(engine, &process, options.instances, bench::SETUP_CALLERS)?;
    let pending = bench::pending_exactly(engine, &process, options.instances)?;
    let secrets = Secrets { caller: new_token(&runtime, bench::USER)?, outsider: new_token(&runtime, OUTSIDER)? };
    let api = RunningApi::start(runtime.clone(), std::net::SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let base_url = api.base_url();
    let every = if options.bad_share > 0.0 { (1.0 / options.bad_share).round().max(1.0) as usize } else { usize::MAX };

    let next = AtomicUsize::new(0);
    let started = Instant::now();
    let logs: Vec<ClientLog> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..options.clients.clamp(1, pending.len().max(1)))
            .map(|_| {
                scope.spawn(|| {
                    let client = Client::new(&base_url);
                    let mut log = ClientLog::default();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = pending.get(index) else { break };
                        let bad =
                            (index % every == every - 1).then(|| BadCall::ALL[(index / every) % BadCall::ALL.len()]);
                        if let Some(kind) = bad.filter(|k| *k != BadCall::Duplicate) {
                            client.bad(kind, &item.serial.to_string(), item.instance_id, &secrets, &mut log);
                        }
                        let (status, code, took) = client.finish(&secrets.caller, &item.serial.to_string(), GOOD_BODY);
                        log.latencies.push(took);
                        if status != 200 {
                            log.wrong_answers.push(format!("finish {}: {status} {code}", item.serial));
                        }
                        if bad == Some(BadCall::Duplicate) {
                            client.bad(
                                BadCall::Duplicate,
                                &item.serial.to_string(),
                                item.instance_id,
                                &secrets,
                                &mut log,
                            );
                        }
                    }
                    log
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap_or_default()).collect()
    });
    let elapsed = started.elapsed();
    api.stop();

    let mut latencies: Vec<Duration> = logs.iter().flat_map(|l| l.latencies.iter().copied()).collect();
    latencies.sort();
    let percentile = |q: f64| crate::bench::latency::percentile(&latencies, q);
    let bad_calls = logs.iter().map(|l| l.bad_calls).sum::<usize>();
    let wrong_answers = logs.into_iter().flat_map(|l| l.wrong_answers).collect();
    Ok(HttpReport {
        instances: pending.len(),
        clients: options.clients,
        calls: latencies.len(),
        bad_calls,
        elapsed,
        p50: percentile(0.50),
        p99: percentile(0.99),
        max: latencies.last().copied().unwrap_or_default(),
        durability: options.durability,
        wrong_answers,
        unverified: verify_exactly_once(engine, pending.iter().map(|p| p.instance_id))?,
    })
}

const GOOD_BODY: &str = r#"{"data": {"name": "call back value"}}"#;

fn new_token(runtime: &Runtime, user: &str) -> Result<String, BenchError> {
    Ok(token::issue(runtime, user, "bench http", bench::USER, 0)?.secret)
}

/// Completed as the scenario says, finished once, by the benchmark's user.
fn verify_exactly_once(
    engine: &RuntimeEngine,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<Unverified>, BenchError> {
    let mut unverified = Vec::new();
    for instance_id in ids {
        let detail = engine.instance(bench::USER, instance_id)?;
        let finishes: Vec<&str> = detail
            .audit
            .iter()
            .filter(|a| a.action == crate::engine::AuditAction::ItemFinished)
            .map(|a| a.user.as_str())
            .collect();
        let reason = match bench::check_completed(&detail) {
            Err(reason) => Some(reason),
            Ok(()) if finishes != [bench::USER] => {
                Some(format!("finished {} time(s), by {finishes:?}", finishes.len()))
            }
            Ok(()) => None,
        };
        if let Some(reason) = reason {
            unverified.push(Unverified { instance_id, reason });
        }
    }
    Ok(unverified)
}

/// One HTTP client with its own keep-alive connection.
struct Client {
    agent: ureq::Agent,
    base_url: String,
}

impl Client {
    fn new(base_url: &str) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .new_agent();
        Client { agent, base_url: base_url.to_owned() }
    }

    /// POSTs a finish; returns the status, the error code (if any) and how
    /// long the call took. A transport failure is status 0.
    fn finish(&self, token: &str, serial: &str, body: &str) -> (u16, String, Duration) {
        let started = Instant::now();
        let answer = self
            .agent
            .post(format!("{}/serveritems/{serial}/finish", self.base_url))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body);
        let took = started.elapsed();
        match answer {
            Ok(mut response) => {
                let status = response.status().as_u16();
                let text = response.body_mut().read_to_string().unwrap_or_default();
                let code = serde_json::from_str::<serde_json::Value>(&text)
                    .ok()
                    .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_owned))
                    .unwrap_or_default();
                (status, code, took)
            }
            Err(e) => (0, e.to_string(), took),
        }
    }

    fn bad(&self, kind: BadCall, serial: &str, instance_id: i64, secrets: &Secrets, log: &mut ClientLog) {
        let unknown = format!("{}_2", instance_id + 1_000_000_000);
        let malformed = format!("{instance_id}_2_x");
        let (token, serial, body) = match kind {
            BadCall::Duplicate => (secrets.caller.as_str(), serial, GOOD_BODY),
            BadCall::MalformedSerial => (secrets.caller.as_str(), malformed.as_str(), GOOD_BODY),
            BadCall::UnknownSerial => (secrets.caller.as_str(), unknown.as_str(), GOOD_BODY),
            BadCall::BadToken => ("fdk_not-a-token", serial, GOOD_BODY),
            BadCall::MissingRight => (secrets.outsider.as_str(), serial, GOOD_BODY),
            BadCall::WrongDataType => (secrets.caller.as_str(), serial, r#"{"data": {"n": "many"}}"#),
            BadCall::NotJson => (secrets.caller.as_str(), serial, r#"{"data": {"name": "#),
        };
        let (status, code, took) = self.finish(token, serial, body);
        log.latencies.push(took);
        log.bad_calls += 1;
        let (want_status, want_code) = kind.expected();
        if (status, code.as_str()) != (want_status, want_code) {
            log.wrong_answers
                .push(format!("{kind:?} on {serial}: {status} {code}, expected {want_status} {want_code}"));
        }
    }
}
