//! Micro-benchmarks of the engine's hot path, with criterion:
//! `cargo bench --bench engine` (add `-- --quick` for a fast look).
//!
//! They split the callback scenario's cost into its parts, so that a change to
//! one part shows on its own: evaluating step B's line rule, running step B's
//! script, one engine call on a real database (start to the wait, finish to
//! completion), and a batch of concurrent finishes, which the store commits
//! together. The data and the process are the scenario's
//! (BENCHMARKS.md describes it; deployed from `flowdesk::bench`). Engine calls
//! run with `synchronous=NORMAL` unless a name says `full`, so that the
//! figures are about the CPU's work rather than this machine's noisy disk;
//! `flowdesk bench callback` measures the durable whole.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use flowdesk::bench;
use flowdesk::engine::{FieldInput, Serial};
use flowdesk::model::{FieldType, ScriptContext, ScriptHost, Value};
use flowdesk::runtime::{Runtime, RuntimeEngine};
use flowdesk::store::Durability;

/// The scenario's fields, in the process's order.
const FIELDS: [(&str, FieldType); 4] = [
    ("name", FieldType::String),
    ("n", FieldType::Integer),
    ("stage", FieldType::String),
    ("done", FieldType::Boolean),
];

/// Concurrent finishes in one `commit_batch` measurement: the scenario's
/// largest number of callers in flight.
const BATCH: usize = 64;

fn field_names() -> Vec<&'static str> {
    FIELDS.iter().map(|(name, _)| *name).collect()
}

/// An instance's data when step B's lines are evaluated: the callback has set
/// `name`, step B's script has set `stage`.
fn scenario_data() -> BTreeMap<String, Value> {
    BTreeMap::from([
        ("name".to_owned(), Value::String(bench::CALLBACK_VALUE.to_owned())),
        ("n".to_owned(), Value::Integer(42)),
        ("stage".to_owned(), Value::String("waiting".to_owned())),
        ("done".to_owned(), Value::Boolean(false)),
    ])
}

fn step_b_context() -> ScriptContext {
    ScriptContext {
        serial: Some("42_2".to_owned()),
        instance_id: 42,
        folio: String::new(),
        activity: "Step B".to_owned(),
        event: "Call external system".to_owned(),
    }
}

fn rule_evaluation(c: &mut Criterion) {
    let host = ScriptHost::default();
    let rule = host.compile_rule(r#"name == "call back value""#, &field_names()).expect("the scenario's rule compiles");
    let (data, context) = (scenario_data(), step_b_context());
    assert!(host.eval_rule(&rule, &data, &context).expect("the rule runs"), "the rule must hold on the data");
    let mut group = c.benchmark_group("rule_evaluation");
    group.bench_function("name == \"call back value\"", |b| {
        b.iter(|| host.eval_rule(black_box(&rule), black_box(&data), &context))
    });
    group.finish();
}

fn script_execution(c: &mut Criterion) {
    let host = ScriptHost::default();
    let script = host.compile_script(r#"stage = "waiting";"#, &field_names()).expect("step B's script compiles");
    let types: BTreeMap<String, FieldType> = FIELDS.iter().map(|(name, t)| ((*name).to_owned(), *t)).collect();
    // The data before step B's script: `stage` is still empty, so the run
    // changes one field, as in the scenario.
    let mut data = scenario_data();
    data.insert("name".to_owned(), Value::String("initial".to_owned()));
    data.insert("stage".to_owned(), Value::String(String::new()));
    let context = step_b_context();
    let mut group = c.benchmark_group("script_execution");
    group.bench_function("stage = \"waiting\";", |b| {
        b.iter(|| host.run_script(black_box(&script), &types, black_box(&data), &context))
    });
    group.finish();
}

/// A fresh database with the scenario's process deployed.
struct Database {
    _dir: tempfile::TempDir,
    runtime: Runtime,
    process: String,
}

impl Database {
    fn new(durability: Durability) -> Database {
        let dir = tempfile::tempdir().expect("temporary folder");
        let runtime = bench::open(&dir.path().join("bench.db"), durability).expect("open the database");
        let process = bench::deploy(runtime.engine()).expect("deploy the scenario's process");
        Database { _dir: dir, runtime, process }
    }

    fn engine(&self) -> &RuntimeEngine {
        self.runtime.engine()
    }

    /// Starts one instance and returns the serial it waits on.
    fn start(&self, n: i64) -> Serial {
        let data = [("n".to_owned(), FieldInput::Value(Value::Integer(n)))];
        let progress = self.engine().start(bench::USER, &self.process, "", &data).expect("start");
        progress.waiting.first().expect("the instance waits at step B").parse().expect("a serial")
    }
}

fn engine_step(c: &mut Criterion) {
    let db = Database::new(Durability::Normal);
    let callback = bench::callback_data();
    let mut group = c.benchmark_group("engine_step");
    let mut n = 0;
    group.bench_function("start_to_wait", |b| {
        b.iter(|| {
            n += 1;
            db.start(n)
        })
    });
    group.bench_function("finish_to_completion", |b| {
        b.iter_batched(
            || {
                n += 1;
                db.start(n)
            },
            |serial| db.engine().finish(bench::USER, serial, &callback).expect("finish"),
            // Each input is a row in the database: make them one at a time.
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Finishes every serial from its own thread, all released at once, and
/// returns the time until the last one is acknowledged: the store commits
/// callers that arrive together in shared transactions.
fn finish_together(engine: &RuntimeEngine, serials: &[bench::Pending]) -> Duration {
    let callback = bench::callback_data();
    let go = Barrier::new(serials.len() + 1);
    let started = std::thread::scope(|scope| {
        for item in serials {
            let (go, callback) = (&go, &callback);
            scope.spawn(move || {
                go.wait();
                engine.finish(bench::USER, item.serial, callback).expect("finish");
            });
        }
        go.wait();
        Instant::now()
        // The scope joins every caller before returning.
    });
    started.elapsed()
}

fn commit_batch(c: &mut Criterion) {
    let mut group = c.benchmark_group("commit_batch");
    group.throughput(Throughput::Elements(BATCH as u64));
    for durability in [Durability::Normal, Durability::Full] {
        let db = Database::new(durability);
        let name = format!("{BATCH}_concurrent_finishes/{}", durability.name());
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    // Not timed: the batch's instances, waiting at step B.
                    bench::start_waiting(db.engine(), &db.process, BATCH, bench::SETUP_CALLERS)
                        .expect("start the batch");
                    let serials = bench::pending(db.engine(), &db.process).expect("read the serials");
                    assert_eq!(serials.len(), BATCH, "every earlier batch was finished");
                    total += finish_together(db.engine(), &serials);
                }
                total
            })
        });
    }
    group.finish();
}

fn config() -> Criterion {
    // The engine calls take milliseconds on a 2-core machine: ten samples over
    // a couple of seconds give stable medians and keep the run short.
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = rule_evaluation, script_execution, engine_step, commit_batch
}
criterion_main!(benches);
