//! Shared fixtures for the engine tests: a store of either backend (a
//! temporary SQLite database, or the memory store), a clock that only moves
//! when told, small helpers to read an instance back, and
//! [`on_every_backend!`], which runs a scenario once per backend (see
//! `engine_scenarios.rs`: the conformance suite).

pub mod api;
pub mod external;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use flowdesk::engine::{Clock, Engine, EngineOptions, FieldInput, InstanceDetail, Millis, RunnerId, Storage};
use flowdesk::model::{ProcessDraft, ScriptHost, Value};
use flowdesk::runtime::{Runtime, RuntimeOptions, Ticking};
use flowdesk::store::{Durability, MemoryStore, RunnerBeat, SqliteStore};

/// A storage backend the conformance suite runs on. A new backend
/// implements this (and [`on_every_backend!`] gets a module for it).
pub trait Backend: Storage + Sized + 'static {
    /// A new, empty store. `dir` is the test's own temporary folder, for a
    /// backend that keeps files.
    fn create(dir: &Path) -> Self;
    /// Another handle on the same data, as a second process opening the
    /// same database would have.
    fn share(&self) -> Self;
    /// Writes a runner's heartbeat, as a runtime does while it runs
    /// outside work: its claims hold until `expires_at`.
    fn beat(&self, runner: RunnerId, expires_at: Millis);
}

impl Backend for SqliteStore {
    fn create(dir: &Path) -> SqliteStore {
        SqliteStore::open(&dir.join("flowdesk.db"), Durability::Normal).unwrap()
    }

    fn share(&self) -> SqliteStore {
        SqliteStore::open(self.path(), Durability::Normal).unwrap()
    }

    fn beat(&self, runner: RunnerId, expires_at: Millis) {
        self.beat_runner(&beat_of(runner, expires_at)).unwrap();
    }
}

impl Backend for MemoryStore {
    fn create(_dir: &Path) -> MemoryStore {
        MemoryStore::new()
    }

    fn share(&self) -> MemoryStore {
        self.clone()
    }

    fn beat(&self, runner: RunnerId, expires_at: Millis) {
        self.beat_runner(&beat_of(runner, expires_at)).unwrap();
    }
}

fn beat_of(runner: RunnerId, expires_at: Millis) -> RunnerBeat {
    RunnerBeat { id: runner, host: "test".to_owned(), pid: 1, started_at: 0, beat_at: 0, expires_at }
}

/// Emits `mod sqlite` and `mod memory`, each with one `#[test]` per
/// scenario named, which runs the generic function of that name on its
/// backend: `scenario::<SqliteStore>()` and `scenario::<MemoryStore>()`.
/// So `cargo test --test it engine_scenarios::memory::` runs a module's
/// scenarios on the memory store. A scenario left out of the list is never
/// instantiated, and the build warns of it as dead code.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        /// The scenarios above, on the SQLite store (a temporary file).
        mod sqlite {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario::<flowdesk::store::SqliteStore>();
                }
            )*
        }

        /// The scenarios above, on the memory store.
        mod memory {
            $(
                #[test]
                fn $scenario() {
                    super::$scenario::<flowdesk::store::MemoryStore>();
                }
            )*
        }
    };
}
pub(crate) use on_every_backend;

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

/// An engine on a fresh store of backend `S` (SQLite unless said), on a
/// clock that moves when the test says.
pub struct Fixture<S: Backend = SqliteStore> {
    pub dir: tempfile::TempDir,
    pub clock: Arc<FixedClock>,
    pub engine: Engine<S>,
}

impl Fixture<SqliteStore> {
    /// On a temporary SQLite file.
    pub fn new() -> Fixture<SqliteStore> {
        Fixture::fresh()
    }

    pub fn db_path(&self) -> PathBuf {
        self.dir.path().join("flowdesk.db")
    }

    /// A runtime on the same database file, as `flowdesk serve` would open
    /// it, on the fixture's clock; it ticks only when the test says.
    pub fn runtime(&self) -> Runtime {
        open_runtime(&self.db_path(), self.clock.clone(), ScriptHost::default())
    }
}

impl<S: Backend> Fixture<S> {
    /// On a fresh store of backend `S`.
    pub fn fresh() -> Fixture<S> {
        Fixture::fresh_with_host(ScriptHost::default())
    }

    pub fn fresh_with_host(host: ScriptHost) -> Fixture<S> {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(FixedClock(AtomicI64::new(T0)));
        let engine = engine_on(S::create(dir.path()), clock.clone(), host);
        Fixture { dir, clock, engine }
    }

    /// A second engine on the same store, as another process would have.
    pub fn second_engine(&self) -> Engine<S> {
        self.engine_with_host(ScriptHost::default())
    }

    /// Another engine on the same store, with its own script host.
    pub fn engine_with_host(&self, host: ScriptHost) -> Engine<S> {
        engine_on(self.engine.store().share(), self.clock.clone(), host)
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
    engine_on(SqliteStore::open(path, Durability::Normal).unwrap(), clock, host)
}

/// An engine on `store`, on the test's clock.
pub fn engine_on<S: Storage>(store: S, clock: Arc<FixedClock>, host: ScriptHost) -> Engine<S> {
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
