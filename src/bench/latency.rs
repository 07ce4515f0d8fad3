//! `flowdesk bench finish-latency`: how long a callback waits for its
//! acknowledgement when callbacks arrive at a steady rate.
//!
//! The load is open: call k is due at `k / rate` seconds after the start,
//! whether or not earlier calls have been answered, and its latency runs from
//! that due time to the acknowledgement. A caller that is late because every
//! caller was busy therefore counts the wait, so a stall in the engine shows
//! in the figures instead of quietly lowering the offered rate (the
//! "coordinated omission" of closed-loop drivers). At most `clients` calls are
//! in flight, as with a real external system's connection pool.
//!
//! Setting up is not timed: the instances are started beforehand until each
//! waits at step B, and their serials are read back from the engine.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::bench::{self, BenchError, Scratch, Unverified};
use crate::store::Durability;

/// Calls one run may schedule: each needs a waiting instance set up first.
pub const MAX_CALLS: usize = 1_000_000;

/// Head start between spawning the callers and the first due time, so that
/// thread start-up is not counted as the engine's latency.
const LEAD: Duration = Duration::from_millis(20);

#[derive(Debug, Clone)]
pub struct LatencyOptions {
    /// Offered callbacks per second, all callers together.
    pub rate: f64,
    pub clients: usize,
    pub duration: Duration,
    pub durability: Durability,
    /// Where the temporary database goes.
    pub folder: PathBuf,
}

#[derive(Debug, Clone)]
pub struct LatencyReport {
    pub rate: f64,
    /// Finishes per second from the first due time to the last acknowledgement.
    pub achieved_per_s: f64,
    pub clients: usize,
    pub duration: Duration,
    pub finishes: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub durability: Durability,
    /// Finished instances that did not complete as the scenario says.
    pub unverified: Vec<Unverified>,
}

impl LatencyReport {
    pub fn line(&self) -> String {
        format!(
            "engine=flowdesk bench=finish-latency rate={} achieved_per_s={:.0} clients={} duration_s={} finishes={} p50_ms={:.3} p99_ms={:.3} max_ms={:.3} sync={}",
            self.rate,
            self.achieved_per_s,
            self.clients,
            self.duration.as_secs_f64(),
            self.finishes,
            bench::millis(self.p50),
            bench::millis(self.p99),
            bench::millis(self.max),
            self.durability.name()
        )
    }
}

/// How many calls a run schedules: one every `1 / rate` seconds, the first at
/// once, for `duration`.
pub fn scheduled_calls(rate: f64, duration: Duration) -> Result<usize, BenchError> {
    let calls = (rate * duration.as_secs_f64()).ceil();
    if calls.is_nan() || calls > MAX_CALLS as f64 {
        return Err(BenchError::TooManyCalls { calls, max: MAX_CALLS });
    }
    Ok((calls as usize).max(1))
}

/// The value below which a share `q` of the sorted latencies lie (nearest
/// rank: always one of the measured values, never an interpolation).
pub fn percentile(sorted: &[Duration], q: f64) -> Duration {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied().unwrap_or_default()
}

/// Runs the measurement once on a fresh database.
pub fn run(options: &LatencyOptions) -> Result<LatencyReport, BenchError> {
    let calls = scheduled_calls(options.rate, options.duration)?;
    let scratch = Scratch::new(&options.folder)?;
    let runtime = bench::open(&scratch.db_path(), options.durability)?;
    let engine = runtime.engine();
    let process = bench::deploy(engine)?;
    bench::start_waiting(engine, &process, calls, bench::SETUP_CALLERS)?;
    let serials = bench::pending_exactly(engine, &process, calls)?;

    let data = bench::callback_data();
    let interval = 1.0 / options.rate;
    // Nanoseconds, one slot per call, written once by the caller that made it.
    let latencies: Vec<AtomicU64> = (0..calls).map(|_| AtomicU64::new(0)).collect();
    let last_ack = AtomicU64::new(0);
    let start = Instant::now() + LEAD;
    bench::for_each_concurrently(calls, options.clients, |index| {
        let Some(item) = serials.get(index) else { return Ok(()) };
        let due = start + Duration::from_secs_f64(index as f64 * interval);
        // A load generator may sleep: the schedule is the point, not a wait
        // for some state.
        if let Some(ahead) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(ahead);
        }
        engine.finish(bench::USER, item.serial, &data)?;
        let acknowledged = Instant::now();
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        if let Some(slot) = latencies.get(index) {
            slot.store(nanos(acknowledged.saturating_duration_since(due)), Ordering::Relaxed);
        }
        last_ack.fetch_max(nanos(acknowledged.saturating_duration_since(start)), Ordering::Relaxed);
        Ok(())
    })?;

    let mut sorted: Vec<Duration> =
        latencies.iter().map(|slot| Duration::from_nanos(slot.load(Ordering::Relaxed))).collect();
    sorted.sort_unstable();
    let elapsed = Duration::from_nanos(last_ack.load(Ordering::Relaxed));
    let unverified = bench::verify_completed(engine, serials.iter().map(|item| item.instance_id))?;
    Ok(LatencyReport {
        rate: options.rate,
        achieved_per_s: calls as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        clients: options.clients,
        duration: options.duration,
        finishes: calls,
        p50: percentile(&sorted, 0.50),
        p99: percentile(&sorted, 0.99),
        max: sorted.last().copied().unwrap_or_default(),
        durability: options.durability,
        unverified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.50), Duration::from_millis(50));
        assert_eq!(percentile(&sorted, 0.99), Duration::from_millis(99));
        assert_eq!(percentile(&sorted, 1.0), Duration::from_millis(100));
        assert_eq!(percentile(&sorted[..1], 0.99), Duration::from_millis(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn the_schedule_covers_the_duration() {
        assert_eq!(scheduled_calls(200.0, Duration::from_secs(1)).unwrap(), 200);
        assert_eq!(scheduled_calls(0.5, Duration::from_secs(1)).unwrap(), 1);
        assert!(matches!(scheduled_calls(1e9, Duration::from_secs(10)), Err(BenchError::TooManyCalls { .. })));
        assert!(matches!(scheduled_calls(f64::INFINITY, Duration::from_secs(1)), Err(BenchError::TooManyCalls { .. })));
    }
}
