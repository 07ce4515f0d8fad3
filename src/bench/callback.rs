//! `flowdesk bench callback`: the callback scenario that BENCHMARKS.md
//! describes, run the way other engines' drivers run it.
//!
//! Phase 1 starts N instances from C concurrent callers until each waits at
//! step B; phase 2 plays the external system: it reads the pending serials
//! from the engine and finishes each one with its own call, C in flight. Every
//! call is answered only after its effect is committed. Then every instance is
//! re-read and checked, and the scenario's one report line is printed, in the
//! same words as the other engines' drivers so that figures sit side by side.
//!
//! With timers (`--timers N`, issue 17), deadlines of other instances fall
//! due while the callers work ([`TimersDuring`]), fired by the runtime's
//! own ticker as `flowdesk serve` fires them: the line then also says how
//! late they fired, so that the callback figure can be set beside a run
//! without them.

use std::path::PathBuf;
use std::time::Instant;

use crate::bench::timers::{BenchClock, TimerLoad, TimersDuring, TimersDuringReport};
use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::engine::{Clock, InstanceFilter, SystemClock};
use crate::store::Durability;

#[derive(Debug, Clone)]
pub struct CallbackOptions {
    pub instances: usize,
    pub clients: usize,
    pub durability: Durability,
    /// Where the temporary database goes.
    pub folder: PathBuf,
    /// Timers falling due while the callers work; none if `None`.
    pub timers: Option<TimerLoad>,
    /// Fields of the bench process marked searchable (indexed on every write).
    pub searchable: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct CallbackReport {
    pub instances: usize,
    pub start_seconds: f64,
    pub finish_seconds: f64,
    pub verified: usize,
    /// Instances that did not end as the scenario says (empty when all did).
    pub unverified: Vec<Unverified>,
    pub peak_rss_mb: f64,
    pub durability: Durability,
    pub clients: usize,
    /// What became of the timers that fell due meanwhile, if any did.
    pub timers: Option<TimersDuringReport>,
}

impl CallbackReport {
    /// Whole lifecycles per second, both phases together.
    pub fn total_per_s(&self) -> f64 {
        self.instances as f64 / (self.start_seconds + self.finish_seconds)
    }

    /// The scenario's one-line report; with timers, their fields after it.
    pub fn line(&self) -> String {
        let line = format!(
            "engine=flowdesk n={} start_s={:.3} finish_s={:.3} total_per_s={:.0} verified={} peak_rss_mb={:.1} journal=wal sync={} clients={}",
            self.instances,
            self.start_seconds,
            self.finish_seconds,
            self.total_per_s(),
            self.verified,
            self.peak_rss_mb,
            self.durability.name(),
            self.clients
        );
        match &self.timers {
            Some(timers) => format!("{line} {}", timers.fields()),
            None => line,
        }
    }
}

/// The closing line of several runs: the median, which one slow run on a
/// noisy disk does not drag as a mean would.
pub fn median_line(reports: &[CallbackReport]) -> Option<String> {
    let first = reports.first()?;
    let totals: Vec<f64> = reports.iter().map(CallbackReport::total_per_s).collect();
    let median = bench::median(&totals)?;
    let line = format!(
        "engine=flowdesk n={} runs={} median_total_per_s={median:.0} sync={} clients={}",
        first.instances,
        reports.len(),
        first.durability.name(),
        first.clients
    );
    let late: Vec<f64> = reports.iter().filter_map(|r| r.timers.as_ref()).map(|t| t.p99_late_ms).collect();
    match bench::median(&late) {
        Some(late) => Some(format!("{line} median_p99_late_ms={late:.0}")),
        None => Some(line),
    }
}

/// Runs the scenario once on a fresh database.
pub fn run(options: &CallbackOptions) -> Result<CallbackReport, BenchError> {
    let scratch = Scratch::new(&options.folder)?;
    // With timers the runtime is a host on a clock the set-up holds still;
    // without, it opens as the client API does.
    let clock = BenchClock::frozen_at(SystemClock.now());
    let runtime = match options.timers {
        Some(_) => TimersDuring::open(&scratch.db_path(), options.durability, clock.clone())?,
        None => bench::open(&scratch.db_path(), options.durability)?,
    };
    let engine = runtime.engine();
    let process = bench::deploy_searchable(engine, &options.searchable)?;
    let clients = options.clients.max(1);
    let timers = match options.timers {
        Some(load) => Some(TimersDuring::arm(engine, &clock, clock.now(), load)?),
        None => None,
    };
    if let Some(timers) = &timers {
        timers.start(&clock);
    }

    let started = Instant::now();
    bench::start_waiting(engine, &process, options.instances, clients)?;
    let start_seconds = started.elapsed().as_secs_f64();

    let finishing = Instant::now();
    // Reading the serials is part of the phase: the external system learns
    // them from the engine, not from the driver.
    let serials = bench::pending(engine, &process)?;
    let data = bench::callback_data();
    bench::for_each_concurrently(serials.len(), clients, |index| match serials.get(index) {
        Some(item) => engine.finish(bench::USER, item.serial, &data).map(|_| ()),
        None => Ok(()),
    })?;
    let finish_seconds = finishing.elapsed().as_secs_f64();
    let timers = match timers {
        Some(timers) => Some(timers.finish(engine, engine.now())?),
        None => None,
    };

    // Every instance of the process, not only those whose serial was read:
    // one that never reached the wait must count as unverified too.
    let filter = InstanceFilter { process: Some(process), ..InstanceFilter::default() };
    let ids: Vec<i64> = engine.instances(bench::USER, &filter)?.into_iter().map(|s| s.id).collect();
    let unverified = bench::verify_completed(engine, ids.iter().copied())?;
    Ok(CallbackReport {
        instances: options.instances,
        start_seconds,
        finish_seconds,
        verified: ids.len() - unverified.len(),
        unverified,
        peak_rss_mb: bench::peak_rss_mb(),
        durability: options.durability,
        clients,
        timers,
    })
}
