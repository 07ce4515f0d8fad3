//! `flowdesk bench reopen`: how long a restart takes before callbacks are
//! accepted again, on a database holding N waiting instances.
//!
//! After N instances wait at step B, the engine and its store are dropped (a
//! clean shutdown: SQLite checkpoints the WAL when its last connection
//! closes). The timed part is what a restarted front end does: open the
//! database the way the command line opens it (the caller passes that very
//! function), then accept one callback. The serial is read
//! from the engine before the shutdown, as an external system that already
//! holds its serial would call back at once: reading it afterwards would warm
//! the caches the first finish is meant to find cold.
//!
//! With `--cold` the kernel's page cache is emptied before the reopen, so the
//! database comes from the disk, as after a reboot.
//!
//! The peak memory is measured from the reopen on where the kernel allows it
//! (see [`bench::reset_peak_rss`]), so that it is the restarted engine's and
//! not the set-up's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::engine::{EngineError, Serial};
use crate::runtime::{Runtime, RuntimeError};
use crate::store::Durability;

#[derive(Debug, Clone)]
pub struct ReopenOptions {
    pub instances: usize,
    pub durability: Durability,
    /// Where the temporary database goes.
    pub folder: PathBuf,
    /// Empty the kernel's page cache before the reopen, so that the database
    /// is read from the disk as after a reboot.
    pub cold: bool,
}

#[derive(Debug, Clone)]
pub struct ReopenReport {
    pub instances: usize,
    pub open_ms: f64,
    pub first_finish_ms: f64,
    pub peak_rss_mb: f64,
    pub durability: Durability,
    /// The finished instance if it did not complete as the scenario says, and
    /// any other instance that no longer waits after the reopen.
    pub unverified: Vec<Unverified>,
}

impl ReopenReport {
    pub fn line(&self) -> String {
        format!(
            "engine=flowdesk bench=reopen n={} open_ms={:.1} first_finish_ms={:.1} total_ms={:.1} peak_rss_mb={:.1} sync={}",
            self.instances,
            self.open_ms,
            self.first_finish_ms,
            self.open_ms + self.first_finish_ms,
            self.peak_rss_mb,
            self.durability.name()
        )
    }
}

/// Runs the measurement once on a fresh database; `open` is how the front end
/// opens a database.
pub fn run(
    options: &ReopenOptions,
    open: impl Fn(&Path, Durability) -> Result<Runtime, RuntimeError>,
) -> Result<ReopenReport, BenchError> {
    let scratch = Scratch::new(&options.folder)?;
    let path = scratch.db_path();
    let runtime = bench::open(&path, options.durability)?;
    let engine = runtime.engine();
    let process = bench::deploy(engine)?;
    bench::start_waiting(engine, &process, options.instances, bench::SETUP_CALLERS)?;
    let waiting = bench::pending_exactly(engine, &process, options.instances)?;
    let Some(first) = waiting.first().cloned() else {
        return Err(BenchError::MissingSerials { expected: options.instances, found: 0 });
    };
    drop(runtime);
    if options.cold {
        drop_page_cache()?;
    }

    bench::reset_peak_rss();
    let opening = Instant::now();
    let runtime = open(&path, options.durability).map_err(EngineError::from)?;
    let engine = runtime.engine();
    let open_ms = bench::millis(opening.elapsed());
    let finishing = Instant::now();
    engine.finish(bench::USER, first.serial, &bench::callback_data())?;
    let first_finish_ms = bench::millis(finishing.elapsed());
    let peak_rss_mb = bench::peak_rss_mb();

    let mut unverified = bench::verify_completed(engine, [first.instance_id])?;
    // The others must still wait, each on its own serial: a reopen that lost
    // or moved a wait would make the figure meaningless.
    let still: BTreeSet<Serial> = bench::pending(engine, &process)?.into_iter().map(|item| item.serial).collect();
    for item in waiting.iter().skip(1).filter(|item| !still.contains(&item.serial)) {
        unverified.push(Unverified {
            instance_id: item.instance_id,
            reason: format!("no longer waits on {} after the reopen", item.serial),
        });
    }
    Ok(ReopenReport {
        instances: options.instances,
        open_ms,
        first_finish_ms,
        peak_rss_mb,
        durability: options.durability,
        unverified,
    })
}

/// Writes the database's pages out and asks the kernel to forget every
/// cached page, as a reboot would.
fn drop_page_cache() -> Result<(), BenchError> {
    let flushed = std::process::Command::new("sync").status();
    if let Err(cause) = flushed {
        return Err(BenchError::ColdCache { cause });
    }
    std::fs::write("/proc/sys/vm/drop_caches", "3\n").map_err(|cause| BenchError::ColdCache { cause })
}
