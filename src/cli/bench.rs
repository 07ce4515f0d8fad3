//! `flowdesk bench <kind>`: the engine benchmarks' arguments and report lines.
//!
//! The drivers live in `crate::bench`; this module only parses, runs them on
//! the folder the user chose, prints their lines on stdout, and turns
//! instances that failed the check into exit code 1 with one loud line on
//! stderr naming them, so that a fast but wrong run is never mistaken for a
//! result.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;

use super::{Cli, Failure};
use crate::bench::bulk::{self, BulkOptions};
use crate::bench::callback::{self, CallbackOptions};
use crate::bench::floor::{self, FloorOptions};
use crate::bench::http::{self, HttpOptions};
use crate::bench::latency::{self, LatencyOptions};
use crate::bench::reopen::{self, ReopenOptions};
use crate::bench::timers::{self, TimerLoad, TimersOptions};
use crate::bench::{BenchError, Unverified};

/// More concurrent callers than this is a typo rather than a benchmark: each
/// is a thread.
const MAX_CLIENTS: usize = 1024;

/// Instances listed by name when the check fails; the rest are counted.
const LISTED: usize = 20;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The callback scenario (BENCHMARKS.md): start N instances, finish every pending
    /// serial with one call each, verify, print one line per run
    #[command(long_about = "The callback scenario, run as other engines' drivers run it so that figures compare \
                            (BENCHMARKS.md, in the source, describes it and quotes theirs).\n\n\
                            Its process (the callback sample's shape, with a field `n`) is deployed through the \
                            normal deploy path on a fresh database (WAL; synchronous=FULL unless --sync normal). \
                            Phase 1 starts N instances from --clients callers; each runs step A's synchronous \
                            event, then waits at step B's asynchronous one. Phase 2 reads the pending serials back \
                            from the engine and finishes each with name = \"call back value\", one call per item, \
                            --clients in flight (the scenario allows up to 64); every call is answered once its \
                            effect is committed. Every instance is then re-read: the run fails (exit 1) unless all \
                            N completed with done = true, name = \"call back value\" and stage = \"waiting\". \
                            One line per run: engine, n, start_s, finish_s, total_per_s = n / (start_s + \
                            finish_s), verified, peak_rss_mb, journal, sync, clients.\n\n\
                            With --timers N, the database is opened as `flowdesk serve` opens it (its ticker \
                            fires timers every 200 ms) and N instances of the same process with a deadline \
                            (finish the item as the callback would) are set up first (not timed), their \
                            deadlines falling due evenly over --timers-over seconds from the moment the callers \
                            begin. Once the callers have ended the run waits for every deadline to fire, and \
                            fails (exit 1) unless each of those instances went on exactly once, by its deadline. \
                            The line then ends with timers, timers_fired (firings in their trails), \
                            timers_in_window (those due before the callers ended) and p99_late_ms (how late \
                            after its due time the 99th percentile of those fired).")]
    Callback {
        /// Instances to run through the whole callback lifecycle
        #[arg(long, short = 'n', default_value_t = 10_000, value_parser = parse_count)]
        instances: usize,
        /// Concurrent callers in each phase (the scenario allows up to 64 in flight)
        #[arg(long, default_value_t = 64, value_parser = parse_clients)]
        clients: usize,
        /// Runs to make, each on a fresh database; more than one adds a line with the median
        #[arg(long, default_value_t = 1, value_parser = parse_count)]
        runs: usize,
        /// Deadlines of other instances falling due while the callers work, fired by the
        /// runtime's ticker; the line then says how late they fired
        #[arg(long, value_parser = parse_count)]
        timers: Option<usize>,
        /// Seconds over which the --timers fall due, evenly, from when the callers begin
        #[arg(long, value_name = "SECONDS", default_value = "1", value_parser = parse_seconds, requires = "timers")]
        timers_over: Duration,
        /// Mark this field of the bench process searchable (name, n, stage, done): the cost of its
        /// index on every write; repeat for several
        #[arg(long, value_name = "FIELD")]
        searchable: Vec<String>,
    },
    /// Finish latency under a steady offered rate (open loop: latency counts from each
    /// call's due time, so stalls show), with p50, p99 and max
    FinishLatency {
        /// Finish calls per second offered, all callers together
        #[arg(long, value_parser = parse_rate)]
        rate: f64,
        /// Callers, i.e. calls in flight at most
        #[arg(long, default_value_t = 4, value_parser = parse_clients)]
        clients: usize,
        /// Seconds of calls to schedule
        #[arg(long, value_name = "SECONDS", value_parser = parse_seconds)]
        duration: Duration,
    },
    /// Callbacks through the HTTP API: concurrent clients finish N pending items, with
    /// bad calls mixed in; checks every answer and that each item was finished exactly once
    Http {
        /// Pending items to finish, one instance each
        #[arg(long, short = 'n', default_value_t = 10_000, value_parser = parse_count)]
        instances: usize,
        /// Concurrent HTTP clients, each with one keep-alive connection
        #[arg(long, default_value_t = 4, value_parser = parse_clients)]
        clients: usize,
        /// Bad calls (duplicates, malformed or unknown serials, bad tokens, missing rights,
        /// wrong data, bodies that are not JSON) per good finish
        #[arg(long, default_value_t = 0.1, value_parser = parse_share)]
        bad_share: f64,
    },
    /// Time to reopen a database holding N waiting instances and accept the first callback
    Reopen {
        /// Waiting instances in the database
        #[arg(long, short = 'n', default_value_t = 10_000, value_parser = parse_count)]
        instances: usize,
        /// Empty the kernel's page cache before the reopen (Linux, as root), as after a reboot
        #[arg(long)]
        cold: bool,
    },
    /// N deadlines falling due at the same moment, fired by the scheduler until none is
    /// left; checks each instance went on exactly once
    #[command(long_about = "N deadlines falling due at the same moment, fired by the scheduler.\n\n\
                            N instances of the callback scenario's process, whose waiting step has one escalation \
                            (after 1 h, finish the item as the callback would), are started while the \
                            engine's clock stands still (not timed); the clock then runs from the moment they \
                            all fall due, and the runtime fires what is due as its ticker does, until nothing is. \
                            Every instance is then re-read: the run fails (exit 1) unless each ended as the \
                            callback scenario checks, by its deadline, with exactly one firing. One line per run: engine, bench, n, fired, \
                            per_s (firings per second, durable), p99_late_ms (how late after its due time the \
                            99th percentile fired), peak_rss_mb, sync.")]
    Timers {
        /// Instances, each with one deadline
        #[arg(long, short = 'n', default_value_t = 100_000, value_parser = parse_count)]
        instances: usize,
        /// Runs to make, each on a fresh database; more than one adds a line with the medians
        #[arg(long, default_value_t = 1, value_parser = parse_count)]
        runs: usize,
    },
    /// One bulk action finishing N pending server items; checks each instance went on
    /// exactly once
    #[command(long_about = "One bulk action finishing N pending server items, as an operator's \"finish all N \
                            matching\" does.\n\n\
                            N instances of the callback scenario's process are started and wait at step B (not \
                            timed); one bulk finish of every pending item of the process, with the callback's \
                            value, is then timed: the selection resolved in the engine, each item finished in \
                            its own transaction, the targets sharing group commits. Every instance is then \
                            re-read: the run fails (exit 1) unless each ended as the callback scenario checks, \
                            with exactly one finish, the bulk action's. One line per run: engine, bench, n, \
                            done, refused, per_s (items finished per second, durable), sync.")]
    Bulk {
        /// Pending items to finish, one instance each
        #[arg(long, short = 'n', default_value_t = 10_000, value_parser = parse_count)]
        instances: usize,
        /// Runs to make, each on a fresh database; more than one adds a line with the median
        #[arg(long, default_value_t = 1, value_parser = parse_count)]
        runs: usize,
    },
    /// The ceiling the schema sets: one lifecycle's rows written again for N instances by
    /// one thread with the engine's statements and nothing else, as shipped and without
    /// the instance list's indexes; a line each
    SqlFloor {
        /// Lifecycles to write
        #[arg(long, short = 'n', default_value_t = 10_000, value_parser = parse_count)]
        instances: usize,
    },
}

fn parse_count(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_owned()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("expected a whole number, got `{text}`")),
    }
}

fn parse_clients(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=MAX_CLIENTS).contains(&n) => Ok(n),
        Ok(_) => Err(format!("must be between 1 and {MAX_CLIENTS}")),
        Err(_) => Err(format!("expected a whole number, got `{text}`")),
    }
}

/// A positive, finite number: rates and durations may have fractions.
fn parse_positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
        Ok(_) => Err("must be a number greater than 0".to_owned()),
        Err(_) => Err(format!("expected a number, got `{text}`")),
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if (0.0..=1.0).contains(&x) => Ok(x),
        Ok(_) => Err("must be between 0 and 1".to_owned()),
        Err(_) => Err(format!("expected a number, got `{text}`")),
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    parse_positive(text)
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(parse_positive(text)?).map_err(|e| e.to_string())
}

impl From<BenchError> for Failure {
    fn from(err: BenchError) -> Failure {
        match err {
            BenchError::Engine(err) => Failure::Refused(err),
            other => Failure::Other(anyhow::Error::new(other)),
        }
    }
}

/// Where benchmark databases go: `--db`'s folder if given, else the system's
/// temporary folder.
fn folder(cli: &Cli) -> PathBuf {
    match &cli.db {
        Some(path) if path.is_dir() => path.clone(),
        // `--db bench.db` has an empty parent: the current folder.
        Some(path) => match path.parent() {
            Some(parent) if parent.as_os_str().is_empty() => PathBuf::from("."),
            Some(parent) => parent.to_path_buf(),
            None => std::env::temp_dir(),
        },
        None => std::env::temp_dir(),
    }
}

pub(super) fn execute(cli: &Cli, command: &BenchCommand, out: &mut impl Write) -> Result<ExitCode, Failure> {
    match *command {
        BenchCommand::Callback { instances, clients, runs, timers, timers_over, ref searchable } => {
            let timers = timers.map(|count| TimerLoad { count, over: timers_over });
            let options = CallbackOptions {
                instances,
                clients,
                durability: cli.sync,
                folder: folder(cli),
                timers,
                searchable: searchable.clone(),
            };
            let mut reports = Vec::with_capacity(runs);
            for _ in 0..runs {
                let report = callback::run(&options)?;
                writeln!(out, "{}", report.line())?;
                if report.verified != report.instances {
                    return Ok(verification_failed(report.instances, report.verified, &report.unverified));
                }
                if let Some(timers) = report.timers.as_ref().filter(|t| !t.unverified.is_empty()) {
                    // The instances named are the timers' own, not the callers'.
                    let verified = timers.timers.saturating_sub(timers.unverified.len());
                    eprintln!(
                        "flowdesk: timers: {}",
                        verification_message(timers.timers, verified, &timers.unverified)
                    );
                    return Ok(ExitCode::from(1));
                }
                reports.push(report);
            }
            if runs > 1
                && let Some(line) = callback::median_line(&reports)
            {
                writeln!(out, "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::FinishLatency { rate, clients, duration } => {
            let options = LatencyOptions { rate, clients, duration, durability: cli.sync, folder: folder(cli) };
            let report = latency::run(&options)?;
            writeln!(out, "{}", report.line())?;
            if !report.unverified.is_empty() {
                let verified = report.finishes - report.unverified.len();
                return Ok(verification_failed(report.finishes, verified, &report.unverified));
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Http { instances, clients, bad_share } => {
            let options = HttpOptions { instances, clients, bad_share, durability: cli.sync, folder: folder(cli) };
            let report = http::run(&options)?;
            writeln!(out, "{}", report.line())?;
            if !report.wrong_answers.is_empty() {
                let shown: Vec<&str> = report.wrong_answers.iter().take(LISTED).map(String::as_str).collect();
                eprintln!(
                    "flowdesk: VERIFICATION FAILED: {} call(s) got the wrong answer: {}",
                    report.wrong_answers.len(),
                    shown.join("; ")
                );
                return Ok(ExitCode::from(1));
            }
            if !report.unverified.is_empty() {
                let verified = report.instances - report.unverified.len();
                return Ok(verification_failed(report.instances, verified, &report.unverified));
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Timers { instances, runs } => {
            let options = TimersOptions { instances, durability: cli.sync, folder: folder(cli) };
            let mut reports = Vec::with_capacity(runs);
            for _ in 0..runs {
                let report = timers::run(&options)?;
                writeln!(out, "{}", report.line())?;
                if report.verified != report.instances {
                    return Ok(verification_failed(report.instances, report.verified, &report.unverified));
                }
                reports.push(report);
            }
            if runs > 1
                && let Some(line) = timers::median_line(&reports)
            {
                writeln!(out, "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Bulk { instances, runs } => {
            let options = BulkOptions { instances, durability: cli.sync, folder: folder(cli) };
            let mut reports = Vec::with_capacity(runs);
            for _ in 0..runs {
                let report = bulk::run(&options)?;
                writeln!(out, "{}", report.line())?;
                if report.verified != report.instances {
                    return Ok(verification_failed(report.instances, report.verified, &report.unverified));
                }
                reports.push(report);
            }
            if runs > 1
                && let Some(line) = bulk::median_line(&reports)
            {
                writeln!(out, "{line}")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::SqlFloor { instances } => {
            let options = FloorOptions { instances, durability: cli.sync, folder: folder(cli) };
            for report in floor::run(&options)? {
                writeln!(out, "{}", report.line())?;
                if !report.unverified.is_empty() {
                    let verified = report.instances - report.unverified.len();
                    return Ok(verification_failed(report.instances, verified, &report.unverified));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        BenchCommand::Reopen { instances, cold } => {
            let options = ReopenOptions { instances, durability: cli.sync, folder: folder(cli), cold };
            let report = reopen::run(&options, super::open_database)?;
            writeln!(out, "{}", report.line())?;
            if !report.unverified.is_empty() {
                let verified = report.instances - report.unverified.len();
                return Ok(verification_failed(report.instances, verified, &report.unverified));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// One line on stderr that cannot be missed, naming the instances that did not
/// end as they should and how they ended; exit code 1.
fn verification_failed(expected: usize, verified: usize, unverified: &[Unverified]) -> ExitCode {
    eprintln!("flowdesk: {}", verification_message(expected, verified, unverified));
    ExitCode::from(1)
}

fn verification_message(expected: usize, verified: usize, unverified: &[Unverified]) -> String {
    let mut named: Vec<String> =
        unverified.iter().take(LISTED).map(|u| format!("{} ({})", u.instance_id, u.reason)).collect();
    if unverified.len() > LISTED {
        named.push(format!("and {} more", unverified.len() - LISTED));
    }
    // Instances the engine no longer lists at all have no id to name.
    let missing = expected.saturating_sub(verified + unverified.len());
    if missing > 0 {
        named.push(format!("{missing} instance(s) missing"));
    }
    format!("VERIFICATION FAILED: only {verified} of {expected} instances verified; not verified: {}", named.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rates_and_durations_must_be_positive() {
        assert_eq!(parse_count("5"), Ok(5));
        assert!(parse_count("0").unwrap_err().contains("at least 1"));
        assert!(parse_count("-1").is_err());
        assert!(parse_clients("1025").unwrap_err().contains("between 1 and 1024"));
        assert_eq!(parse_rate("0.5"), Ok(0.5));
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("NaN").is_err());
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
    }

    #[test]
    fn a_failed_check_names_the_instances_and_counts_the_rest() {
        let unverified: Vec<Unverified> =
            (1..=22).map(|id| Unverified { instance_id: id, reason: "status Active".to_owned() }).collect();
        let message = verification_message(30, 7, &unverified);
        assert!(message.starts_with("VERIFICATION FAILED: only 7 of 30 instances verified; not verified: 1 (status Active), 2 (status Active)"), "{message}");
        assert!(message.contains("20 (status Active), and 2 more, 1 instance(s) missing"), "{message}");
        assert!(!message.contains("21 (status"), "{message}");
        assert_eq!(message.lines().count(), 1);
    }

    #[test]
    fn a_relative_db_puts_the_benchmark_in_the_current_folder() {
        let cli = <Cli as clap::Parser>::parse_from(["flowdesk", "--db", "bench.db", "bench", "reopen"]);
        assert_eq!(folder(&cli), std::path::Path::new("."));
    }
}
