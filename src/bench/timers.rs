//! `flowdesk bench timers`: N deadlines falling due at the same moment, all
//! fired by the scheduler, durably, and every instance checked to have gone
//! on exactly once.
//!
//! Set-up (not timed): N instances of the callback scenario's process, whose
//! step B has one escalation ("Give up", after 1 h: finish the item with the
//! callback's value), are started while the engine's clock stands still,
//! so that every deadline falls due at one moment. The clock is then let run
//! from that moment, and the runtime fires what is due as its ticker does
//! (`Runtime::fire_due`: oldest first, each firing a transaction of its own,
//! several at once sharing commits) until nothing is left. Each instance
//! must then have ended as the callback scenario checks, by its deadline,
//! with exactly one firing in its trail; how late each fired is read from
//! that line's time.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::engine::{AuditAction, Clock, InstanceDetail, InstanceFilter, ItemFilter, Millis, SystemClock};
use crate::model::{EscalationActionDraft, EscalationDraft, ProcessDraft};
use crate::runtime::{Runtime, RuntimeEngine, RuntimeError, RuntimeOptions, Ticking};
use crate::store::Durability;

/// The process: the callback benchmark's, named apart, whose wait has one
/// escalation that finishes the item as the external system would (with
/// the callback's value), an hour on: so every instance must end as the
/// callback scenario checks, by its deadline.
fn process(name: &str) -> Result<ProcessDraft, BenchError> {
    let mut draft = ProcessDraft::from_json(bench::PROCESS_JSON, "bench process")
        .map_err(|e| BenchError::Process(e.to_string()))?;
    draft.name = name.to_owned();
    let waiting = draft.activities.iter_mut().find(|a| a.id == "b");
    let waiting = waiting.ok_or_else(|| BenchError::Process("it has no step B".to_owned()))?;
    let set = [("name".to_owned(), serde_json::Value::from(bench::CALLBACK_VALUE))].into();
    waiting.escalations.push(EscalationDraft {
        name: "Give up".to_owned(),
        after: "1h".to_owned(),
        at_field: String::new(),
        action: EscalationActionDraft::Finish { set },
    });
    Ok(draft)
}

/// The deadline's `after`, in milliseconds.
const AFTER_MS: Millis = 3_600_000;

#[derive(Debug, Clone)]
pub struct TimersOptions {
    pub instances: usize,
    pub durability: Durability,
    /// Where the temporary database goes.
    pub folder: PathBuf,
}

#[derive(Debug, Clone)]
pub struct TimersReport {
    pub instances: usize,
    /// Firings the runtime counted.
    pub fired: usize,
    pub seconds: f64,
    /// How late the 99th percentile of firings was after its due time.
    pub p99_late_ms: f64,
    pub verified: usize,
    /// Instances that did not go on exactly once by their deadline.
    pub unverified: Vec<Unverified>,
    pub peak_rss_mb: f64,
    pub durability: Durability,
}

impl TimersReport {
    pub fn per_s(&self) -> f64 {
        self.fired as f64 / self.seconds
    }

    /// The benchmark's one-line report.
    pub fn line(&self) -> String {
        format!(
            "engine=flowdesk bench=timers n={} fired={} per_s={:.0} p99_late_ms={:.0} peak_rss_mb={:.1} sync={}",
            self.instances,
            self.fired,
            self.per_s(),
            self.p99_late_ms,
            self.peak_rss_mb,
            self.durability.name()
        )
    }
}

/// The closing line of several runs: medians.
pub fn median_line(reports: &[TimersReport]) -> Option<String> {
    let first = reports.first()?;
    let per_s = bench::median(&reports.iter().map(TimersReport::per_s).collect::<Vec<_>>())?;
    let late = bench::median(&reports.iter().map(|r| r.p99_late_ms).collect::<Vec<_>>())?;
    let rss = bench::median(&reports.iter().map(|r| r.peak_rss_mb).collect::<Vec<_>>())?;
    Some(format!(
        "engine=flowdesk bench=timers n={} runs={} median_per_s={per_s:.0} median_p99_late_ms={late:.0} \
         median_peak_rss_mb={rss:.1} sync={}",
        first.instances,
        reports.len(),
        first.durability.name()
    ))
}

/// Stands still at `frozen` while it is set, else runs as the system clock
/// moved by `offset`.
pub struct BenchClock {
    frozen: AtomicI64,
    offset: AtomicI64,
}

/// `frozen` when the clock runs.
const RUNNING: Millis = Millis::MIN;

impl BenchClock {
    /// A clock standing still at `at`.
    pub(super) fn frozen_at(at: Millis) -> Arc<BenchClock> {
        Arc::new(BenchClock { frozen: AtomicI64::new(at), offset: AtomicI64::new(0) })
    }

    /// Stands still at `at` from now on.
    fn freeze(&self, at: Millis) {
        self.frozen.store(at, Ordering::SeqCst);
    }

    /// Runs on from `at` as the system clock runs.
    pub(super) fn run_from(&self, at: Millis) {
        // The offset first: a reader that sees the clock running sees it.
        self.offset.store(at - SystemClock.now(), Ordering::SeqCst);
        self.frozen.store(RUNNING, Ordering::SeqCst);
    }
}

impl Clock for BenchClock {
    fn now(&self) -> Millis {
        match self.frozen.load(Ordering::SeqCst) {
            RUNNING => SystemClock.now().saturating_add(self.offset.load(Ordering::SeqCst)),
            frozen => frozen,
        }
    }
}

/// A runtime on `clock` that fires nothing on its own: the benchmark (or
/// its test) says when.
fn manual_runtime(path: &Path, durability: Durability, clock: &Arc<BenchClock>) -> Result<Runtime, RuntimeError> {
    let options =
        RuntimeOptions { durability, ticking: Ticking::Manual, clock: clock.clone(), ..RuntimeOptions::default() };
    Runtime::open(path, options)
}

/// Runs the benchmark once on a fresh database.
pub fn run(options: &TimersOptions) -> Result<TimersReport, BenchError> {
    let scratch = Scratch::new(&options.folder)?;
    let started_at = SystemClock.now();
    let clock = BenchClock::frozen_at(started_at);
    let runtime =
        manual_runtime(&scratch.db_path(), options.durability, &clock).map_err(crate::engine::EngineError::from)?;
    let engine = runtime.engine();
    let process = engine.deploy(bench::USER, &process("timers-bench")?)?.process;
    bench::start_waiting(engine, &process, options.instances, bench::SETUP_CALLERS)?;
    bench::pending_exactly(engine, &process, options.instances)?;

    // The clock runs again from the moment every deadline falls due.
    let due_at = started_at + AFTER_MS;
    clock.run_from(due_at);
    let firing = Instant::now();
    let mut fired = 0;
    loop {
        let round = runtime.fire_due()?;
        fired += round.fired;
        if let Some((_, err)) = round.failed.into_iter().next() {
            return Err(err.into());
        }
        if round.fired == 0 {
            break;
        }
    }
    let seconds = firing.elapsed().as_secs_f64();
    let peak_rss_mb = bench::peak_rss_mb();

    let filter = InstanceFilter { process: Some(process), ..InstanceFilter::default() };
    let ids: Vec<i64> = engine.instances(bench::USER, &filter)?.into_iter().map(|s| s.id).collect();
    let (unverified, mut late) = verify(engine, &ids, due_at)?;
    let p99 = p99(&mut late);
    Ok(TimersReport {
        instances: options.instances,
        fired,
        seconds,
        p99_late_ms: p99,
        verified: ids.len() - unverified.len(),
        unverified,
        peak_rss_mb,
        durability: options.durability,
    })
}

/// Checks each instance went on exactly once, by its deadline; how late
/// each deadline fired.
fn verify(engine: &RuntimeEngine, ids: &[i64], due_at: Millis) -> Result<(Vec<Unverified>, Vec<f64>), BenchError> {
    let mut unverified = Vec::new();
    let mut late = Vec::with_capacity(ids.len());
    for &instance_id in ids {
        let detail = engine.instance(bench::USER, instance_id)?;
        match check(&detail) {
            Ok(fired_at) => late.push((fired_at - due_at) as f64),
            Err(reason) => unverified.push(Unverified { instance_id, reason }),
        }
    }
    Ok((unverified, late))
}

/// When the instance's deadline fired, or why it did not go on as it must:
/// as the callback scenario ends, with one firing and step C once.
fn check(detail: &InstanceDetail) -> Result<Millis, String> {
    bench::check_completed(detail)?;
    let firings: Vec<Millis> =
        detail.audit.iter().filter(|a| a.action == AuditAction::EscalationFired).map(|a| a.at).collect();
    let step_c = detail.activities.iter().filter(|a| a.activity == "Step C").count();
    match (firings.as_slice(), step_c) {
        ([at], 1) => Ok(*at),
        (firings, step_c) => Err(format!("{} firings, step C {step_c} times", firings.len())),
    }
}

/// The 99th percentile of some figures (0 when there are none).
fn p99(figures: &mut [f64]) -> f64 {
    figures.sort_by(f64::total_cmp);
    figures.get((figures.len() * 99).div_ceil(100).saturating_sub(1)).copied().unwrap_or(0.0)
}

// ----- timers falling due while the callback scenario runs -------------------

/// The process of the timers that fall due during `bench callback
/// --timers`: this benchmark's, named apart from the scenario's, whose
/// items the callers finish.
const DURING_PROCESS: &str = "callback-timers-bench";

/// How finely the due times of [`TimersDuring`] are spread: instances
/// whose deadlines fall due within one slot are started together.
const SLOT_MS: Millis = 10;

/// How long after the last due time [`TimersDuring::finish`] waits for
/// the ticker to have fired them all; what is left then is reported unfired.
const FIRE_LIMIT_MS: Millis = 60_000;

/// How many timers fall due while the callback scenario runs, and over
/// how long (from the moment its callers begin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerLoad {
    pub count: usize,
    pub over: Duration,
}

/// Timers that fall due, spread evenly, while the callback scenario's
/// callers work, fired by the runtime's own ticker as `flowdesk serve`
/// fires them.
///
/// Set-up (not timed): `count` instances of the scenario's process with
/// `bench timers`' escalation (an hour on, finish the item as the callback
/// would) wait at step B, each started while the engine's clock stands
/// still at a moment a little later than the one before, so that their
/// deadlines fall due [`TimerLoad::over`] apart from first to last (in
/// slots of [`SLOT_MS`]). [`Self::start`] lets the clock run from the first
/// one's due time; [`Self::finish`] waits until the ticker has fired them
/// all, and checks each instance went on exactly once, by its deadline.
#[derive(Debug)]
pub struct TimersDuring {
    count: usize,
    first_due: Millis,
    last_due: Millis,
}

/// What became of [`TimersDuring`]'s timers.
#[derive(Debug, Clone)]
pub struct TimersDuringReport {
    pub timers: usize,
    /// Firings in the instances' trails: `timers` when each fired once.
    pub fired: usize,
    /// Timers due before the callers had ended, those whose lateness counts.
    pub in_window: usize,
    /// How late after its due time the 99th percentile of those fired.
    pub p99_late_ms: f64,
    /// Instances whose deadline did not fire exactly once.
    pub unverified: Vec<Unverified>,
}

impl TimersDuringReport {
    /// The fields the callback scenario's line gains.
    pub fn fields(&self) -> String {
        format!(
            "timers={} timers_fired={} timers_in_window={} p99_late_ms={:.0}",
            self.timers, self.fired, self.in_window, self.p99_late_ms
        )
    }
}

impl TimersDuring {
    /// Opens the benchmark's database as a host (its ticker fires timers)
    /// on `clock`, which must stand still.
    pub fn open(path: &std::path::Path, durability: Durability, clock: Arc<BenchClock>) -> Result<Runtime, BenchError> {
        let options = RuntimeOptions { durability, ticking: Ticking::Host, clock, ..RuntimeOptions::default() };
        Runtime::open(path, options).map_err(|e| BenchError::Engine(e.into()))
    }

    /// Sets the timers up on `engine`, whose clock `clock` stands still at `base`.
    pub fn arm(
        engine: &RuntimeEngine,
        clock: &BenchClock,
        base: Millis,
        load: TimerLoad,
    ) -> Result<TimersDuring, BenchError> {
        let process = engine.deploy(bench::USER, &process(DURING_PROCESS)?)?.process;
        let over_ms = Millis::try_from(load.over.as_millis()).unwrap_or(Millis::MAX);
        let count = load.count.max(1);
        // Instance i falls due i/count of the way through, rounded down to its slot.
        let slot_of = |i: usize| {
            let share = i128::from(over_ms) * i as i128 / count as i128;
            Millis::try_from(share).unwrap_or(Millis::MAX) / SLOT_MS * SLOT_MS
        };
        let mut i = 0;
        while i < load.count {
            let slot = slot_of(i);
            let together = (i..load.count).take_while(|&j| slot_of(j) == slot).count();
            clock.freeze(base + slot);
            bench::start_waiting(engine, &process, together, bench::SETUP_CALLERS)?;
            i += together;
        }
        bench::pending_exactly(engine, &process, load.count)?;
        clock.freeze(base);
        Ok(TimersDuring {
            count: load.count,
            first_due: base + AFTER_MS,
            last_due: base + AFTER_MS + slot_of(load.count.saturating_sub(1)),
        })
    }

    /// Lets the clock run from the moment the first timer falls due: the
    /// callers begin now.
    pub fn start(&self, clock: &BenchClock) {
        clock.run_from(self.first_due);
    }

    /// Once the callers have ended at `window_end` (by the engine's
    /// clock): waits until the ticker has fired every timer (or
    /// [`FIRE_LIMIT_MS`] past the last due time), then checks each.
    pub fn finish(&self, engine: &RuntimeEngine, window_end: Millis) -> Result<TimersDuringReport, BenchError> {
        let waiting = ItemFilter { process: Some(DURING_PROCESS.to_owned()), limit: 1, ..ItemFilter::default() };
        while !engine.items(bench::USER, &waiting)?.is_empty() && engine.now() < self.last_due + FIRE_LIMIT_MS {
            // Polling a benchmark's own progress, not synchronising a test.
            std::thread::sleep(Duration::from_millis(10));
        }
        let filter = InstanceFilter { process: Some(DURING_PROCESS.to_owned()), ..InstanceFilter::default() };
        let mut unverified = Vec::new();
        let mut late = Vec::new();
        let mut fired = 0;
        for summary in engine.instances(bench::USER, &filter)? {
            let detail = engine.instance(bench::USER, summary.id)?;
            fired += detail.audit.iter().filter(|a| a.action == AuditAction::EscalationFired).count();
            let due_at = summary.started_at + AFTER_MS;
            match check(&detail) {
                Ok(fired_at) if due_at <= window_end => late.push((fired_at - due_at) as f64),
                Ok(_) => {}
                Err(reason) => unverified.push(Unverified { instance_id: summary.id, reason }),
            }
        }
        Ok(TimersDuringReport {
            timers: self.count,
            fired,
            in_window: late.len(),
            p99_late_ms: p99(&mut late),
            unverified,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance the external system called back before its deadline
    /// went on, but not by its deadline: the check refuses it, as it does
    /// one that did not go on at all; one its deadline finished passes.
    #[test]
    fn only_an_instance_that_went_on_once_by_its_deadline_passes_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let clock = BenchClock::frozen_at(1_000);
        let runtime = manual_runtime(&dir.path().join("check.db"), Durability::Normal, &clock).unwrap();
        let engine = runtime.engine();
        let process = engine.deploy(bench::USER, &process("timers-bench").unwrap()).unwrap().process;
        bench::start_waiting(engine, &process, 3, 1).unwrap();
        let waiting = bench::pending_exactly(engine, &process, 3).unwrap();
        engine.finish(bench::USER, waiting[0].serial, &bench::callback_data()).unwrap();
        engine.stop(bench::USER, waiting[1].instance_id).unwrap();
        clock.freeze(1_000 + AFTER_MS);
        assert_eq!(runtime.fire_due().unwrap().fired, 1);

        let checked: Vec<Result<Millis, String>> =
            waiting.iter().map(|w| check(&engine.instance(bench::USER, w.instance_id).unwrap())).collect();
        assert_eq!(checked[0], Err("0 firings, step C 1 times".to_owned()));
        assert_eq!(checked[1], Err("status Stopped".to_owned()));
        assert_eq!(checked[2], Ok(1_000 + AFTER_MS));
    }

    /// The timers of `bench callback --timers` fall due a slot apart, and
    /// the report counts a timer's lateness only if it fell due before the
    /// callers ended; one that never fired (its instance stopped, or no
    /// ticker fired it) is reported, which fails the run.
    #[test]
    fn timers_during_callbacks_fall_due_spread_and_one_unfired_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let clock = BenchClock::frozen_at(1_000);
        let runtime = manual_runtime(&dir.path().join("during.db"), Durability::Normal, &clock).unwrap();
        let engine = runtime.engine();
        let load = TimerLoad { count: 4, over: Duration::from_millis(40) };
        let timers = TimersDuring::arm(engine, &clock, 1_000, load).unwrap();
        assert_eq!((timers.first_due, timers.last_due), (1_000 + AFTER_MS, 1_030 + AFTER_MS));
        let filter = InstanceFilter { process: Some(DURING_PROCESS.to_owned()), ..InstanceFilter::default() };
        let mut instances = engine.instances(bench::USER, &filter).unwrap();
        instances.sort_by_key(|i| i.id);
        let started: Vec<Millis> = instances.iter().map(|i| i.started_at).collect();
        assert_eq!(started, [1_000, 1_010, 1_020, 1_030]);

        // The callers end 15 ms after the first deadline, which fired then
        // with the second; the third's instance is stopped, the fourth's
        // deadline fires after the callers, and then no more fire.
        engine.stop(bench::USER, instances[2].id).unwrap();
        clock.freeze(1_015 + AFTER_MS);
        assert_eq!(runtime.fire_due().unwrap().fired, 2);
        let window_end = engine.now();
        clock.freeze(1_040 + AFTER_MS);
        assert_eq!(runtime.fire_due().unwrap().fired, 1);
        clock.freeze(timers.last_due + FIRE_LIMIT_MS);
        let report = timers.finish(engine, window_end).unwrap();
        assert_eq!((report.timers, report.fired, report.in_window), (4, 3, 2));
        assert_eq!(report.p99_late_ms, 15.0);
        let unverified: Vec<(i64, &str)> =
            report.unverified.iter().map(|u| (u.instance_id, u.reason.as_str())).collect();
        assert_eq!(unverified, [(instances[2].id, "status Stopped")]);
        assert_eq!(report.fields(), "timers=4 timers_fired=3 timers_in_window=2 p99_late_ms=15");
    }
}
