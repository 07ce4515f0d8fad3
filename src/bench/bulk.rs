//! `flowdesk bench bulk`: one bulk action finishing N pending server items,
//! durably, and every instance checked to have gone on exactly once.
//!
//! Set-up (not timed): N instances of the callback scenario's process wait
//! at step B. Timed: one [`Engine::bulk_select`](crate::engine::Engine::bulk_select)
//! call, as an operator's "finish all N matching" makes it: the selection
//! (every pending item of the process) resolved in the engine, then each
//! item finished with the callback's value, in its own transaction, the
//! targets sharing group commits. Each instance must then have ended as the
//! callback scenario checks, with exactly one finish in its trail, marked as
//! part of the bulk action, and step C once.

use std::path::PathBuf;
use std::time::Instant;

use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::engine::{AuditAction, BulkAction, BulkProgress, InstanceDetail, InstanceFilter, ItemFilter, Selection};
use crate::store::Durability;

#[derive(Debug, Clone)]
pub struct BulkOptions {
    pub instances: usize,
    pub durability: Durability,
    /// Where the temporary database goes.
    pub folder: PathBuf,
}

#[derive(Debug, Clone)]
pub struct BulkBenchReport {
    pub instances: usize,
    pub done: usize,
    pub refused: usize,
    pub seconds: f64,
    pub verified: usize,
    /// Instances that did not go on exactly once.
    pub unverified: Vec<Unverified>,
    pub durability: Durability,
}

impl BulkBenchReport {
    /// Items finished per second, durably, the selection included.
    pub fn per_s(&self) -> f64 {
        self.done as f64 / self.seconds
    }

    /// The benchmark's one-line report.
    pub fn line(&self) -> String {
        format!(
            "engine=flowdesk bench=bulk n={} done={} refused={} per_s={:.0} sync={}",
            self.instances,
            self.done,
            self.refused,
            self.per_s(),
            self.durability.name()
        )
    }
}

/// The closing line of several runs: the median rate.
pub fn median_line(reports: &[BulkBenchReport]) -> Option<String> {
    let first = reports.first()?;
    let per_s = bench::median(&reports.iter().map(BulkBenchReport::per_s).collect::<Vec<_>>())?;
    Some(format!(
        "engine=flowdesk bench=bulk n={} runs={} median_per_s={per_s:.0} sync={}",
        first.instances,
        reports.len(),
        first.durability.name()
    ))
}

/// Runs the benchmark once on a fresh database.
pub fn run(options: &BulkOptions) -> Result<BulkBenchReport, BenchError> {
    let scratch = Scratch::new(&options.folder)?;
    let runtime = bench::open(&scratch.db_path(), options.durability)?;
    let engine = runtime.engine();
    let process = bench::deploy(engine)?;
    bench::start_waiting(engine, &process, options.instances, bench::SETUP_CALLERS)?;
    bench::pending_exactly(engine, &process, options.instances)?;

    let action = BulkAction::Finish { data: bench::callback_data().to_vec() };
    let selection = Selection::MatchingItems(ItemFilter { process: Some(process.clone()), ..ItemFilter::default() });
    let progress = BulkProgress::new();
    let began = Instant::now();
    let report = engine.bulk_select(bench::USER, &action, &selection, &progress)?;
    let seconds = began.elapsed().as_secs_f64();
    if let Some((_, err)) = report.failed().next() {
        return Err(BenchError::Engine(crate::engine::EngineError::Internal(format!(
            "{} of the bulk action's targets failed, the first: {err}",
            report.failed().count()
        ))));
    }

    let filter = InstanceFilter { process: Some(process), ..InstanceFilter::default() };
    let ids: Vec<i64> = engine.instances(bench::USER, &filter)?.into_iter().map(|s| s.id).collect();
    let mut unverified = Vec::new();
    for &instance_id in &ids {
        if let Err(reason) = check(&engine.instance(bench::USER, instance_id)?) {
            unverified.push(Unverified { instance_id, reason });
        }
    }
    Ok(BulkBenchReport {
        instances: options.instances,
        done: report.done(),
        refused: report.refused().count(),
        seconds,
        verified: ids.len() - unverified.len(),
        unverified,
        durability: options.durability,
    })
}

/// Why an instance did not go on exactly once, by the bulk action: as the
/// callback scenario ends, with one finish (the bulk action's) and step C
/// once.
fn check(detail: &InstanceDetail) -> Result<(), String> {
    bench::check_completed(detail)?;
    let finishes: Vec<&str> =
        detail.audit.iter().filter(|a| a.action == AuditAction::ItemFinished).map(|a| a.detail.as_str()).collect();
    let step_c = detail.activities.iter().filter(|a| a.activity == "Step C").count();
    match (finishes.as_slice(), step_c) {
        ([detail], 1) if detail.contains("part of a bulk finish") => Ok(()),
        ([detail], 1) => Err(format!("finished, not by the bulk action: {detail}")),
        (finishes, step_c) => Err(format!("{} finishes, step C {step_c} times", finishes.len())),
    }
}
