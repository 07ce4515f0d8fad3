//! The engine benchmarks behind `flowdesk bench`.
//!
//! - [`callback`]: the throughput run of the callback scenario (BENCHMARKS.md
//!   describes it), the one that is compared with other engines;
//! - [`latency`]: how long a callback waits for its acknowledgement under a
//!   steady offered rate, the figure a caller feels;
//! - [`reopen`]: how long a restart takes on a database full of waiting
//!   instances until the first callback is accepted again;
//! - [`bulk`]: one bulk action finishing N pending items, durably, each
//!   instance going on exactly once;
//! - [`timers`]: N deadlines falling due at once, fired durably by the
//!   scheduler, each instance going on exactly once.
//!
//! They share what makes their figures honest and comparable: a fresh database
//! in a temporary folder on the disk being measured, the scenario's process
//! deployed through the normal deploy path, serials read back from the engine
//! (as an external system learns them, never from ids the driver kept), one
//! engine call per callback, and a check of every instance afterwards. Each
//! driver returns a report; the command line prints it and turns instances
//! that failed the check into a loud failure.

pub mod bulk;
pub mod callback;
pub mod floor;
pub mod http;
pub mod latency;
pub mod reopen;
pub mod timers;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::engine::{EngineError, FieldInput, InstanceDetail, InstanceStatus, ItemFilter, Serial};
use crate::model::{ProcessDraft, Value};
use crate::runtime::{Runtime, RuntimeEngine, RuntimeOptions};
use crate::store::Durability;

/// The user every benchmark acts as; deploying makes it the process's Admin,
/// which includes the right to start and to finish server items.
pub const USER: &str = "bench";

/// The value the external system calls back with; step B's line rules send
/// the instance to step C (`done = true`) on it.
pub const CALLBACK_VALUE: &str = "call back value";

/// Callers that start instances while a benchmark sets up its database (not
/// timed): enough to fill the store's group commits.
pub const SETUP_CALLERS: usize = 16;

/// The scenario's process: the callback sample with the field `n` added.
pub const PROCESS_JSON: &str = r#"{
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

/// Why a benchmark could not produce its figures. Instances that ran but ended
/// wrongly are not an error: they are in the report, as [`Unverified`].
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    // The cause is part of the message, not a `#[source]`, so that `{:#}`
    // chains do not print it twice (as `model::LoadError` does).
    #[error("cannot create the benchmark's temporary folder in {}: {cause}", .folder.display())]
    Folder { folder: PathBuf, cause: std::io::Error },
    #[error("the benchmark's process does not load: {0}")]
    Process(String),
    #[error("expected {expected} pending serials after starting the instances, the engine lists {found}")]
    MissingSerials { expected: usize, found: usize },
    #[error(transparent)]
    Serve(#[from] crate::net::ServeError),
    #[error(transparent)]
    Token(#[from] crate::net::token::IssueError),
    #[error("{calls} finish calls are too many for one run (at most {max}): lower the rate or the duration")]
    TooManyCalls { calls: f64, max: usize },
    #[error(
        "--cold needs to empty the kernel's page cache (writing to /proc/sys/vm/drop_caches, Linux as root): {cause}"
    )]
    ColdCache { cause: std::io::Error },
}

/// A fresh database file in its own temporary folder; the folder and
/// everything in it is deleted when this is dropped.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    /// Creates the folder inside `folder`: the figures are about that disk,
    /// so the caller chooses it (next to the user's database by default).
    pub fn new(folder: &Path) -> Result<Scratch, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("flowdesk-bench-")
            .tempdir_in(folder)
            .map_err(|cause| BenchError::Folder { folder: folder.to_owned(), cause })?;
        Ok(Scratch { dir })
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("bench.db")
    }
}

/// Opens a database through a runtime as the client API does (it beats
/// and recovers nothing), without the command line's extras (test hooks):
/// a fresh database has nothing to recover.
pub fn open(path: &Path, durability: Durability) -> Result<Runtime, EngineError> {
    Ok(Runtime::open(path, RuntimeOptions { durability, ..RuntimeOptions::default() })?)
}

/// Deploys the scenario's process through the normal deploy path; returns the
/// process name.
pub fn deploy(engine: &RuntimeEngine) -> Result<String, BenchError> {
    deploy_searchable(engine, &[])
}

/// [`deploy`] with `searchable` fields marked searchable, for the cost of
/// their indexes on every write.
pub fn deploy_searchable(engine: &RuntimeEngine, searchable: &[String]) -> Result<String, BenchError> {
    let mut draft =
        ProcessDraft::from_json(PROCESS_JSON, "bench process").map_err(|e| BenchError::Process(e.to_string()))?;
    for name in searchable {
        let field = draft.fields.iter_mut().find(|f| f.name == *name);
        field.ok_or_else(|| BenchError::Process(format!("the bench process has no field `{name}`")))?.searchable = true;
    }
    Ok(engine.deploy(USER, &draft)?.process)
}

/// Starts instance `index` (data `n = index`); returns when it waits at step
/// B and that is committed.
pub fn start_one(engine: &RuntimeEngine, process: &str, index: usize) -> Result<(), EngineError> {
    let data = [("n".to_owned(), FieldInput::Value(Value::Integer(index as i64)))];
    engine.start(USER, process, "", &data).map(|_| ())
}

/// Starts `count` instances from `clients` concurrent callers.
pub fn start_waiting(engine: &RuntimeEngine, process: &str, count: usize, clients: usize) -> Result<(), EngineError> {
    for_each_concurrently(count, clients, |index| start_one(engine, process, index))
}

/// What the external system sends with each callback.
pub fn callback_data() -> [(String, FieldInput); 1] {
    [("name".to_owned(), FieldInput::Text(CALLBACK_VALUE.to_owned()))]
}

/// A pending server item as the external system learns it from the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub serial: Serial,
    pub instance_id: i64,
}

/// The process's pending server items, oldest first, read from the engine.
pub fn pending(engine: &RuntimeEngine, process: &str) -> Result<Vec<Pending>, EngineError> {
    let filter = ItemFilter { process: Some(process.to_owned()), ..ItemFilter::default() };
    Ok(engine
        .items(USER, &filter)?
        .into_iter()
        .map(|item| Pending { serial: item.serial, instance_id: item.serial.instance_id })
        .collect())
}

/// [`pending`], insisting on exactly `expected` items: a benchmark that set up
/// fewer waits than it meant to would measure something else.
pub fn pending_exactly(engine: &RuntimeEngine, process: &str, expected: usize) -> Result<Vec<Pending>, BenchError> {
    let items = pending(engine, process)?;
    if items.len() != expected {
        return Err(BenchError::MissingSerials { expected, found: items.len() });
    }
    Ok(items)
}

/// An instance that did not end as the scenario says, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unverified {
    pub instance_id: i64,
    pub reason: String,
}

/// Why a finished instance is not as the scenario says it must end: completed
/// with `done == true`, `name == "call back value"`, `stage == "waiting"`.
pub fn check_completed(detail: &InstanceDetail) -> Result<(), String> {
    if detail.summary.status != InstanceStatus::Completed {
        return Err(format!("status {}", detail.summary.status.name()));
    }
    let field = |name: &str| detail.fields.iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v.clone());
    let expected = [
        ("done", Value::Boolean(true)),
        ("name", Value::String(CALLBACK_VALUE.to_owned())),
        ("stage", Value::String("waiting".to_owned())),
    ];
    for (name, want) in expected {
        match field(name) {
            Some(got) if got == want => {}
            Some(got) => return Err(format!("{name} is `{got}`")),
            None => return Err(format!("{name} is missing")),
        }
    }
    Ok(())
}

/// Re-reads each instance from the store and lists those that did not
/// complete as the scenario says.
pub fn verify_completed(
    engine: &RuntimeEngine,
    ids: impl IntoIterator<Item = i64>,
) -> Result<Vec<Unverified>, EngineError> {
    let mut unverified = Vec::new();
    for instance_id in ids {
        if let Err(reason) = check_completed(&engine.instance(USER, instance_id)?) {
            unverified.push(Unverified { instance_id, reason });
        }
    }
    Ok(unverified)
}

/// Runs `work(index)` for every index below `count` on `clients` threads, each
/// taking the next index as it becomes free, so the calls go out in order with
/// up to `clients` in flight. The first error stops every caller and is
/// returned: a benchmark with a failed call has no figures worth printing.
pub fn for_each_concurrently(
    count: usize,
    clients: usize,
    work: impl Fn(usize) -> Result<(), EngineError> + Sync,
) -> Result<(), EngineError> {
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<EngineError>> = Mutex::new(None);
    // No more threads than calls: an idle caller would only add start-up time.
    let threads = clients.clamp(1, count.max(1));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            // The stack scripts need, so that no run has to allocate one.
            let caller = std::thread::Builder::new().stack_size(crate::model::script::SCRIPT_THREAD_STACK);
            let spawned = caller.spawn_scoped(scope, || {
                while !stop.load(Ordering::Relaxed) {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= count {
                        break;
                    }
                    if let Err(err) = work(index) {
                        stop.store(true, Ordering::Relaxed);
                        failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(err);
                        break;
                    }
                }
            });
            if let Err(err) = spawned {
                let err = EngineError::Internal(format!("cannot start a caller thread: {err}"));
                failure.lock().unwrap_or_else(PoisonError::into_inner).get_or_insert(err);
                stop.store(true, Ordering::Relaxed);
            }
        }
    });
    match failure.into_inner().unwrap_or_else(PoisonError::into_inner) {
        Some(err) => Err(err),
        None => Ok(()),
    }
}

/// Peak resident memory of this process, from the kernel (Linux only; 0
/// elsewhere).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// Lowers the kernel's peak-memory mark to the current resident size (Linux
/// 4.0 and later), so that [`peak_rss_mb`] measures from here on rather than
/// including a set-up phase. Returns false where that is not possible.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The median of some figures; the mean of the middle two for an even count.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => sorted.get(middle).copied(),
        _ => Some((sorted.get(middle - 1)? + sorted.get(middle)?) / 2.0),
    }
}

/// Milliseconds with microsecond resolution, as the report lines print them.
pub fn millis(duration: std::time::Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_an_odd_and_an_even_count() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    }

    #[test]
    fn the_process_is_the_scenarios() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = open(&dir.path().join("bench.db"), Durability::Normal).unwrap();
        let engine = runtime.engine();
        let process = deploy(engine).unwrap();
        start_waiting(engine, &process, 3, 2).unwrap();
        let items = pending_exactly(engine, &process, 3).unwrap();
        for item in &items {
            engine.finish(USER, item.serial, &callback_data()).unwrap();
        }
        assert_eq!(verify_completed(engine, items.iter().map(|i| i.instance_id)).unwrap(), []);
    }

    #[test]
    fn a_callback_with_another_value_is_not_verified() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = open(&dir.path().join("bench.db"), Durability::Normal).unwrap();
        let engine = runtime.engine();
        let process = deploy(engine).unwrap();
        start_one(engine, &process, 0).unwrap();
        let waiting = pending_exactly(engine, &process, 1).unwrap();
        let other = [("name".to_owned(), FieldInput::Text("something else".to_owned()))];
        engine.finish(USER, waiting[0].serial, &other).unwrap();
        let unverified = verify_completed(engine, [waiting[0].instance_id]).unwrap();
        assert_eq!(unverified.len(), 1);
        assert!(unverified[0].reason.starts_with("done is"), "{:?}", unverified[0]);
    }

    #[test]
    fn the_first_error_stops_the_callers() {
        let calls = AtomicUsize::new(0);
        let result = for_each_concurrently(1000, 4, |index| {
            calls.fetch_add(1, Ordering::Relaxed);
            if index == 10 { Err(EngineError::Internal("boom".to_owned())) } else { Ok(()) }
        });
        assert!(matches!(result, Err(EngineError::Internal(_))));
        assert!(calls.load(Ordering::Relaxed) < 1000);
    }
}
