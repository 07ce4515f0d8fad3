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

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Instant;

use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::engine::{AuditAction, Clock, EngineOptions, InstanceDetail, InstanceFilter, Millis, SystemClock};
use crate::model::{EscalationActionDraft, EscalationDraft, ProcessDraft};
use crate::runtime::{Runtime, RuntimeEngine, RuntimeOptions, Ticking};
use crate::store::Durability;

/// The process: the callback benchmark's, named apart, whose wait has one
/// escalation that finishes the item as the external system would (with
/// the callback's value), an hour on: so every instance must end as the
/// callback scenario checks, by its deadline.
fn process() -> Result<ProcessDraft, BenchError> {
    let mut draft = ProcessDraft::from_json(bench::PROCESS_JSON, "bench process")
        .map_err(|e| BenchError::Process(e.to_string()))?;
    draft.name = "timers-bench".to_owned();
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
struct BenchClock {
    frozen: AtomicI64,
    offset: AtomicI64,
}

/// `frozen` when the clock runs.
const RUNNING: Millis = Millis::MIN;

impl Clock for BenchClock {
    fn now(&self) -> Millis {
        match self.frozen.load(Ordering::SeqCst) {
            RUNNING => SystemClock.now().saturating_add(self.offset.load(Ordering::SeqCst)),
            frozen => frozen,
        }
    }
}

/// Runs the benchmark once on a fresh database.
pub fn run(options: &TimersOptions) -> Result<TimersReport, BenchError> {
    let scratch = Scratch::new(&options.folder)?;
    let started_at = SystemClock.now();
    let clock = Arc::new(BenchClock { frozen: AtomicI64::new(started_at), offset: AtomicI64::new(0) });
    // The runtime fires nothing on its own: the benchmark says when.
    let runtime_options = RuntimeOptions {
        durability: options.durability,
        ticking: Ticking::Manual,
        engine: EngineOptions::default(),
        clock: clock.clone(),
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::open(&scratch.db_path(), runtime_options).map_err(crate::engine::EngineError::from)?;
    let engine = runtime.engine();
    let process = engine.deploy(bench::USER, &process()?)?.process;
    bench::start_waiting(engine, &process, options.instances, bench::SETUP_CALLERS)?;
    bench::pending_exactly(engine, &process, options.instances)?;

    // The clock runs again from the moment every deadline falls due.
    let due_at = started_at + AFTER_MS;
    clock.offset.store(due_at - SystemClock.now(), Ordering::SeqCst);
    clock.frozen.store(RUNNING, Ordering::SeqCst);
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
    late.sort_by(f64::total_cmp);
    let p99 = late.get((late.len() * 99).div_ceil(100).saturating_sub(1)).copied().unwrap_or(0.0);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// An instance the external system called back before its deadline
    /// went on, but not by its deadline: the check refuses it, as it does
    /// one that did not go on at all; one its deadline finished passes.
    #[test]
    fn only_an_instance_that_went_on_once_by_its_deadline_passes_the_check() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(BenchClock { frozen: AtomicI64::new(1_000), offset: AtomicI64::new(0) });
        let options = RuntimeOptions {
            durability: Durability::Normal,
            ticking: Ticking::Manual,
            clock: clock.clone(),
            ..RuntimeOptions::default()
        };
        let runtime = Runtime::open(&dir.path().join("check.db"), options).unwrap();
        let engine = runtime.engine();
        let process = engine.deploy(bench::USER, &process().unwrap()).unwrap().process;
        bench::start_waiting(engine, &process, 3, 1).unwrap();
        let waiting = bench::pending_exactly(engine, &process, 3).unwrap();
        engine.finish(bench::USER, waiting[0].serial, &bench::callback_data()).unwrap();
        engine.stop(bench::USER, waiting[1].instance_id).unwrap();
        clock.frozen.store(1_000 + AFTER_MS, Ordering::SeqCst);
        assert_eq!(runtime.fire_due().unwrap().fired, 1);

        let checked: Vec<Result<Millis, String>> =
            waiting.iter().map(|w| check(&engine.instance(bench::USER, w.instance_id).unwrap())).collect();
        assert_eq!(checked[0], Err("0 firings, step C 1 times".to_owned()));
        assert_eq!(checked[1], Err("status Stopped".to_owned()));
        assert_eq!(checked[2], Ok(1_000 + AFTER_MS));
    }
}
