//! Shared fixtures for the engine tests: a temporary database, a clock that
//! only moves when told, and small helpers to read an instance back.

pub mod api;
pub mod external;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use flowdesk::engine::{Clock, Engine, EngineOptions, FieldInput, InstanceDetail, Millis};
use flowdesk::model::{ProcessDraft, ScriptHost, Value};
use flowdesk::runtime::{Runtime, RuntimeOptions, Ticking};
use flowdesk::store::{Durability, SqliteStore};

/// 2026-11-25 09:00:00 UTC.
pub const T0: Millis = 1_795_597_200_000;

pub struct FixedClock(pub AtomicI64);

impl FixedClock {
    pub fn advance(&self, millis: i64) {
        self.0.fetch_add(millis, Ordering::SeqCst);
    }
}

impl Clock for FixedClock {
    fn now(&self) -> Millis {
        self.0.load(Ordering::SeqCst)
    }
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<FixedClock>,
    pub engine: Engine<SqliteStore>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with_host(ScriptHost::default())
    }

    pub fn with_host(host: ScriptHost) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock(AtomicI64::new(T0)));
        let engine = open_engine(&dir.path().join("flowdesk.db"), clock.clone(), host);
        Fixture { dir, clock, engine }
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("flowdesk.db")
    }

    /// A second engine on the same database file, as another process would have.
    pub fn second_engine(&self) -> Engine<SqliteStore> {
        open_engine(&self.db_path(), self.clock.clone(), ScriptHost::default())
    }

    /// A runtime on the same database file, as `flowdesk serve` would open
    /// it, on the fixture's clock; it ticks only when the test says.
    pub fn runtime(&self) -> Runtime {
        open_runtime(&self.db_path(), self.clock.clone(), ScriptHost::default())
    }

    pub fn deploy_sample(&self, user: &str, file: &str) -> u32 {
        let draft = sample(file);
        self.engine.deploy(user, &draft).unwrap().version
    }

    pub fn deploy_json(&self, user: &str, json: &str) -> u32 {
        let draft = ProcessDraft::from_json(json, "test").unwrap();
        self.engine.deploy(user, &draft).unwrap().version
    }

    pub fn detail(&self, user: &str, id: i64) -> InstanceDetail {
        self.engine.instance(user, id).unwrap()
    }

    pub fn field(&self, id: i64, name: &str) -> Value {
        let detail = self.detail("admin", id);
        detail.fields.into_iter().find(|(n, _, _)| n == name).map(|(_, _, v)| v).unwrap()
    }

    /// The audit trail as "user: Action detail" lines.
    pub fn trail(&self, id: i64) -> Vec<String> {
        self.detail("admin", id)
            .audit
            .into_iter()
            .map(|a| format!("{}: {} {}", a.user, a.action, a.detail).trim_end().to_owned())
            .collect()
    }

    /// Everything an instance holds, for "a refusal changes nothing" checks.
    pub fn snapshot(&self, id: i64) -> String {
        let d = self.detail("admin", id);
        let items = self
            .engine
            .items("admin", &flowdesk::engine::ItemFilter { include_closed: true, ..Default::default() })
            .unwrap();
        format!("{:?}|{:?}|{:?}|{:?}|{:?}|{:?}", d.summary, d.fields, d.audit, d.activities, d.lines, items)
    }
}

pub fn open_engine(path: &Path, clock: Arc<FixedClock>, host: ScriptHost) -> Engine<SqliteStore> {
    let store = SqliteStore::open(path, Durability::Normal).unwrap();
    let options = EngineOptions { script_budget: host.operation_budget(), ..EngineOptions::default() };
    Engine::with_options(store, options, host, clock)
}

/// A runtime on `path` that ticks only when the test calls `tick`.
pub fn open_runtime(path: &Path, clock: Arc<FixedClock>, host: ScriptHost) -> Runtime {
    let options = RuntimeOptions {
        durability: Durability::Normal,
        ticking: Ticking::Manual,
        engine: EngineOptions { script_budget: host.operation_budget(), ..EngineOptions::default() },
        clock,
        script_host: host,
        ..RuntimeOptions::default()
    };
    Runtime::open(path, options).unwrap()
}

pub fn sample(file: &str) -> ProcessDraft {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples").join(file);
    ProcessDraft::load(&path).unwrap()
}

pub fn set(pairs: &[(&str, &str)]) -> Vec<(String, FieldInput)> {
    pairs.iter().map(|(k, v)| (k.to_string(), FieldInput::Text(v.to_string()))).collect()
}

/// A serial as a front end parses it before it calls the engine.
pub fn parse_serial(text: &str) -> flowdesk::engine::Serial {
    text.parse().unwrap_or_else(|e| panic!("{e}"))
}

pub fn s(text: &str) -> Value {
    Value::String(text.to_owned())
}
