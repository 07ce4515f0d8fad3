//! The callback benchmark of `shared/bench/SCENARIO.md`, as `flowdesk bench`.
//!
//! Phase 1 starts N instances of a `callback` process (deployed through the
//! normal deploy path) from C concurrent callers until each waits at step B;
//! phase 2 plays the external system: it reads the pending serials from the
//! engine and finishes each one with its own call, C in flight. Every call is
//! answered only after its effect is committed. Then every instance is re-read
//! and checked.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use crate::engine::{Engine, EngineError, FieldInput, InstanceFilter, ItemFilter};
use crate::model::{ProcessDraft, Value};
use crate::store::{Durability, SqliteStore};

/// The scenario's process: the callback sample with the field `n` added.
const PROCESS: &str = r#"{
  "name": "callback-bench",
  "fields": [
    { "name": "name", "type": "string" },
    { "name": "n", "type": "integer" },
    { "name": "stage", "type": "string" },
    { "name": "done", "type": "boolean" }
  ],
  "activities": [
    { "id": "a", "name": "Step A", "start": true, "events": [
      { "kind": "server_event", "name": "Initialise", "script": "name = \"initial\";" } ] },
    { "id": "b", "name": "Step B", "events": [
      { "kind": "server_event", "name": "Call external system", "synchronous": false,
        "script": "stage = \"waiting\";" } ] },
    { "id": "c", "name": "Step C", "events": [
      { "kind": "server_event", "name": "Approve", "script": "done = true;" } ] },
    { "id": "d", "name": "Step D", "events": [
      { "kind": "server_event", "name": "Reject", "script": "done = false;" } ] }
  ],
  "lines": [
    { "from": "a", "to": "b" },
    { "from": "b", "to": "c", "rule": "name == \"call back value\"" },
    { "from": "b", "to": "d", "rule": "name != \"call back value\"" }
  ]
}"#;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub instances: usize,
    pub clients: usize,
    pub durability: Durability,
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub instances: usize,
    pub start_seconds: f64,
    pub finish_seconds: f64,
    pub verified: usize,
    pub peak_rss_mb: f64,
    pub durability: Durability,
    pub clients: usize,
}

impl BenchReport {
    /// The scenario's one-line report.
    pub fn line(&self) -> String {
        let total = self.instances as f64 / (self.start_seconds + self.finish_seconds);
        format!(
            "engine=flowdesk n={} start_s={:.3} finish_s={:.3} total_per_s={:.0} verified={} peak_rss_mb={:.1} journal=wal sync={} clients={}",
            self.instances,
            self.start_seconds,
            self.finish_seconds,
            total,
            self.verified,
            self.peak_rss_mb,
            self.durability.name(),
            self.clients
        )
    }
}

/// Runs the scenario on a fresh database at `path`.
pub fn run(path: &Path, options: &BenchOptions) -> Result<BenchReport, EngineError> {
    let store = SqliteStore::open(path, options.durability)?;
    let engine = Engine::new(store);
    let user = "bench";
    let draft = ProcessDraft::from_json(PROCESS, "bench process")
        .map_err(|e| EngineError::Internal(format!("bench process: {e}")))?;
    let process = engine.deploy(user, &draft)?.process;
    let clients = options.clients.max(1);

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let failure = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= options.instances {
                        break;
                    }
                    let data = [("n".to_owned(), FieldInput::Value(Value::Integer(index as i64)))];
                    if let Err(err) = engine.start(user, &process, "", &data) {
                        *failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(err);
                        break;
                    }
                }
            });
        }
    });
    let start_seconds = started.elapsed().as_secs_f64();
    if let Some(err) = failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        return Err(err);
    }

    let finishing = Instant::now();
    // The external system learns the serials from the engine, not from the driver.
    let serials: Vec<String> = engine
        .items(user, &ItemFilter { process: Some(process.clone()), ..ItemFilter::default() })?
        .into_iter()
        .map(|item| item.serial.to_string())
        .collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..clients {
            scope.spawn(|| {
                let data = [("name".to_owned(), FieldInput::Text("call back value".to_owned()))];
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    let Some(serial) = serials.get(index) else { break };
                    if let Err(err) = engine.finish(user, serial, &data) {
                        *failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(err);
                        break;
                    }
                }
            });
        }
    });
    let finish_seconds = finishing.elapsed().as_secs_f64();
    if let Some(err) = failure.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take() {
        return Err(err);
    }

    let verified = verify(&engine, user, &process)?;
    Ok(BenchReport {
        instances: options.instances,
        start_seconds,
        finish_seconds,
        verified,
        peak_rss_mb: peak_rss_mb(),
        durability: options.durability,
        clients,
    })
}

/// Re-reads every instance from the store and counts the correct ones.
fn verify(engine: &Engine<SqliteStore>, user: &str, process: &str) -> Result<usize, EngineError> {
    let filter = InstanceFilter { process: Some(process.to_owned()), ..InstanceFilter::default() };
    let mut verified = 0;
    for summary in engine.instances(user, &filter)? {
        let detail = engine.instance(user, summary.id)?;
        let field = |name: &str| detail.fields.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone());
        let correct = summary.status == crate::engine::InstanceStatus::Completed
            && field("done") == Some(Value::Boolean(true))
            && field("name") == Some(Value::String("call back value".to_owned()))
            && field("stage") == Some(Value::String("waiting".to_owned()));
        if correct {
            verified += 1;
        }
    }
    Ok(verified)
}

/// Peak resident memory of this process, from the kernel (Linux only).
fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}
