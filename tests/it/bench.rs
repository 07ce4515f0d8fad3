//! End-to-end tests of `flowdesk bench`: the real binary, small runs, each in
//! its own temporary folder (given with `--db`, so the benchmark's scratch
//! database goes there too). They check the shape and sense of the report
//! lines, never the speed: figures are for `BENCHMARKS.md`, not assertions.

use crate::common_cli;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use tempfile::TempDir;

use common_cli::{Out, execute};

struct Bench {
    dir: TempDir,
}

impl Bench {
    fn new() -> Bench {
        Bench { dir: tempfile::tempdir().expect("temporary directory") }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("flowdesk.db")
    }

    /// Runs `flowdesk --db <temp db> <args>` with a clean environment, killing
    /// it (and failing) if it hangs.
    fn run(&self, args: &[&str]) -> Out {
        let mut command = Command::new(env!("CARGO_BIN_EXE_flowdesk"));
        command
            .env_remove("FLOWDESK_DB")
            .env_remove("FLOWDESK_USER")
            .env("XDG_DATA_HOME", self.dir.path().join("data"))
            .env("HOME", self.dir.path())
            .arg("--db")
            .arg(self.db())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        execute(command, &args.join(" "))
    }

    /// Runs a benchmark that must succeed; returns its stdout lines.
    fn ok(&self, args: &[&str]) -> Vec<String> {
        let out = self.run(args);
        assert_eq!(out.code, Some(0), "`flowdesk {}` should succeed: {out:?}", args.join(" "));
        assert_eq!(out.stderr, "", "a successful benchmark prints nothing on stderr");
        self.assert_scratch_removed();
        out.stdout.lines().map(str::to_owned).collect()
    }

    /// Runs a command that must be a usage error (clap's exit 2) and returns
    /// the first line of stderr, the one that says what is wrong.
    fn usage_error(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(out.code, Some(2), "`flowdesk {}` should be a usage error: {out:?}", args.join(" "));
        assert_eq!(out.stdout, "", "a usage error runs nothing");
        out.stderr.lines().next().unwrap_or_default().to_owned()
    }

    /// The benchmark's temporary database is gone once it has printed.
    fn assert_scratch_removed(&self) {
        let left: Vec<String> = std::fs::read_dir(self.dir.path())
            .expect("read the temporary folder")
            .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with("flowdesk-bench-"))
            .collect();
        assert!(left.is_empty(), "scratch folders left behind: {left:?}");
    }
}

/// A report line's `key=value` fields, checking that the keys come in the
/// given order and no others.
fn fields(line: &str, keys: &[&str]) -> BTreeMap<String, String> {
    let pairs: Vec<(String, String)> = line
        .split_whitespace()
        .map(|field| {
            let (key, value) =
                field.split_once('=').unwrap_or_else(|| panic!("`{field}` is not key=value in {line:?}"));
            (key.to_owned(), value.to_owned())
        })
        .collect();
    let found: Vec<&str> = pairs.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(found, keys, "fields of {line:?}");
    pairs.into_iter().collect()
}

fn number(fields: &BTreeMap<String, String>, key: &str) -> f64 {
    let text = &fields[key];
    let value: f64 = text.parse().unwrap_or_else(|_| panic!("{key}={text} is not a number"));
    assert!(value.is_finite() && value >= 0.0, "{key}={text}");
    value
}

/// The scenario's report line (BENCHMARKS.md), in its order.
const SCENARIO_KEYS: [&str; 10] =
    ["engine", "n", "start_s", "finish_s", "total_per_s", "verified", "peak_rss_mb", "journal", "sync", "clients"];

#[test]
fn callback_prints_the_scenarios_line_with_every_instance_verified() {
    let bench = Bench::new();
    // `--sync` after the subcommand: the global option works in that position.
    let lines = bench.ok(&["bench", "callback", "--instances", "50", "--clients", "4", "--sync", "normal"]);
    assert_eq!(lines.len(), 1, "one run, one line: {lines:?}");
    let line = fields(&lines[0], &SCENARIO_KEYS);
    assert_eq!(line["engine"], "flowdesk");
    assert_eq!(line["n"], "50");
    assert_eq!(line["verified"], "50");
    assert_eq!(line["journal"], "wal");
    assert_eq!(line["sync"], "normal");
    assert_eq!(line["clients"], "4");
    assert!(number(&line, "total_per_s") > 0.0, "{lines:?}");
    assert!(number(&line, "start_s") > 0.0 && number(&line, "finish_s") > 0.0, "{lines:?}");
    if cfg!(target_os = "linux") {
        assert!(number(&line, "peak_rss_mb") > 0.0, "{lines:?}");
    }
}

#[test]
fn several_callback_runs_end_with_their_median() {
    let bench = Bench::new();
    let lines = bench.ok(&["bench", "callback", "-n", "20", "--clients", "2", "--runs", "3"]);
    assert_eq!(lines.len(), 4, "three runs and the median: {lines:?}");
    let mut totals: Vec<f64> = lines[..3]
        .iter()
        .map(|l| {
            let run = fields(l, &SCENARIO_KEYS);
            assert_eq!((run["n"].as_str(), run["verified"].as_str(), run["sync"].as_str()), ("20", "20", "full"));
            number(&run, "total_per_s")
        })
        .collect();
    totals.sort_by(f64::total_cmp);
    let last = fields(&lines[3], &["engine", "n", "runs", "median_total_per_s", "sync", "clients"]);
    assert_eq!((last["n"].as_str(), last["runs"].as_str(), last["clients"].as_str()), ("20", "3", "2"));
    // Each run's figure is printed rounded; the median is one of them.
    assert_eq!(number(&last, "median_total_per_s"), totals[1], "{lines:?}");
}

#[test]
fn finish_latency_prints_ordered_percentiles() {
    let bench = Bench::new();
    let lines = bench.ok(&["bench", "finish-latency", "--rate", "200", "--clients", "2", "--duration", "1"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let keys = [
        "engine",
        "bench",
        "rate",
        "achieved_per_s",
        "clients",
        "duration_s",
        "finishes",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "sync",
    ];
    let line = fields(&lines[0], &keys);
    assert_eq!((line["engine"].as_str(), line["bench"].as_str()), ("flowdesk", "finish-latency"));
    assert_eq!((line["rate"].as_str(), line["clients"].as_str()), ("200", "2"));
    assert_eq!((line["duration_s"].as_str(), line["sync"].as_str()), ("1", "full"));
    // One call every 5 ms for one second.
    assert_eq!(line["finishes"], "200");
    assert!(number(&line, "achieved_per_s") > 0.0, "{lines:?}");
    let (p50, p99, max) = (number(&line, "p50_ms"), number(&line, "p99_ms"), number(&line, "max_ms"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{lines:?}");
}

#[test]
fn http_finishes_every_item_once_through_the_api_and_checks_every_bad_answer() {
    let bench = Bench::new();
    // One bad call per ten items: 14 of them, two of each of the seven kinds.
    let lines = bench.ok(&["bench", "http", "--instances", "140", "--clients", "4", "--sync", "normal"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let keys = [
        "engine",
        "bench",
        "instances",
        "clients",
        "calls",
        "bad_calls",
        "seconds",
        "finishes_per_s",
        "calls_per_s",
        "p50_ms",
        "p99_ms",
        "max_ms",
        "sync",
        "wrong_answers",
        "exactly_once",
    ];
    let line = fields(&lines[0], &keys);
    assert_eq!((line["engine"].as_str(), line["bench"].as_str()), ("flowdesk", "http"));
    assert_eq!((line["instances"].as_str(), line["clients"].as_str()), ("140", "4"));
    assert_eq!((line["calls"].as_str(), line["bad_calls"].as_str()), ("154", "14"));
    assert_eq!((line["wrong_answers"].as_str(), line["exactly_once"].as_str()), ("0", "yes"));
    assert!(number(&line, "finishes_per_s") > 0.0, "{lines:?}");
    let (p50, p99, max) = (number(&line, "p50_ms"), number(&line, "p99_ms"), number(&line, "max_ms"));
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{lines:?}");
}

#[test]
fn reopen_prints_its_line() {
    let bench = Bench::new();
    let lines = bench.ok(&["bench", "reopen", "--instances", "200", "--sync", "normal"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let keys = ["engine", "bench", "n", "open_ms", "first_finish_ms", "total_ms", "peak_rss_mb", "sync"];
    let line = fields(&lines[0], &keys);
    assert_eq!((line["bench"].as_str(), line["n"].as_str(), line["sync"].as_str()), ("reopen", "200", "normal"));
    let (open, first, total) = (number(&line, "open_ms"), number(&line, "first_finish_ms"), number(&line, "total_ms"));
    assert!(open > 0.0 && first > 0.0, "{lines:?}");
    // Each is printed to a tenth of a millisecond.
    assert!((open + first - total).abs() <= 0.11, "{lines:?}");
}

/// The floor prints a line per schema; every replayed instance was read
/// back through the engine as completed (the run fails otherwise), so the
/// replay wrote rows the engine understands.
/// Issue 18: `bench-monitor --live` times changes another process (the
/// binary itself) makes until the open monitor shows them, and prints its
/// one line. A debug build ran it into epaint's assertion on textures no
/// renderer took; it runs through now, as `bench-designer` does.
#[test]
fn issue_18_bench_monitor_live_prints_its_line_after_every_finish_showed() {
    let bench = Bench::new();
    let lines = bench.ok(&["bench-monitor", "--live", "-n", "300", "--finishes", "4", "--idle-seconds", "0.5"]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = fields(&lines[0], &["engine", "bench", "n", "p50_ms", "p95_ms", "idle_cpu_pct"]);
    assert_eq!((line["engine"].as_str(), line["bench"].as_str(), line["n"].as_str()), ("flowdesk", "live", "4"));
    assert!(number(&line, "p50_ms") <= number(&line, "p95_ms"), "{lines:?}");
    number(&line, "idle_cpu_pct");

    let lines = bench.ok(&["bench-designer", "--activities", "6", "--lines", "5", "--frames", "3"]);
    assert!(!lines.is_empty());
}

#[test]
fn sql_floor_prints_a_line_per_schema_after_reading_every_instance_back() {
    let bench = Bench::new();
    let lines = bench.ok(&["bench", "sql-floor", "--instances", "150", "--sync", "normal"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let keys = ["engine", "bench", "schema", "n", "seconds", "total_per_s", "batch", "sync"];
    let schemas: Vec<String> = lines
        .iter()
        .map(|line| {
            let line = fields(line, &keys);
            assert_eq!(
                (line["bench"].as_str(), line["n"].as_str(), line["sync"].as_str()),
                ("sql-floor", "150", "normal")
            );
            let (seconds, per_s) = (number(&line, "seconds"), number(&line, "total_per_s"));
            // Seconds are printed to the millisecond: per_s lies within that rounding.
            assert!(seconds > 0.0, "{line:?}");
            assert!(
                150.0 / (seconds + 0.0005) - 1.0 <= per_s && per_s <= 150.0 / (seconds - 0.0005).max(1e-9) + 1.0,
                "{line:?}"
            );
            line["schema"].clone()
        })
        .collect();
    assert_eq!(schemas, ["as-shipped", "without-instance-list-indexes", "without-overview-aggregates"]);
    bench.assert_scratch_removed();
}

/// `--cold` empties the kernel's page cache first: where that is allowed
/// (Linux, root) the run prints its line; elsewhere it is refused in one line
/// that says what it needs, and nothing is left behind.
#[test]
fn a_cold_reopen_runs_or_says_what_it_needs() {
    let bench = Bench::new();
    let out = bench.run(&["bench", "reopen", "--instances", "50", "--cold"]);
    match out.code {
        Some(0) => {
            let keys = ["engine", "bench", "n", "open_ms", "first_finish_ms", "total_ms", "peak_rss_mb", "sync"];
            let line = fields(out.stdout.trim(), &keys);
            assert_eq!((line["bench"].as_str(), line["n"].as_str()), ("reopen", "50"), "{out:?}");
        }
        Some(1) => {
            assert_eq!(out.stderr.lines().count(), 1, "{out:?}");
            assert!(out.stderr.contains("--cold needs to empty the kernel's page cache"), "{out:?}");
        }
        _ => panic!("unexpected outcome: {out:?}"),
    }
    bench.assert_scratch_removed();
}

#[test]
fn bad_benchmark_arguments_are_usage_errors_that_say_what_is_wrong() {
    let bench = Bench::new();
    let cases: [(&[&str], &[&str]); 14] = [
        (&["bench", "callback", "--clients", "0"], &["--clients", "between 1 and 1024"]),
        (&["bench", "callback", "--instances", "0"], &["--instances", "at least 1"]),
        (&["bench", "callback", "--runs", "0"], &["--runs", "at least 1"]),
        (&["bench", "callback", "--instances", "many"], &["--instances", "whole number"]),
        (&["bench", "callback", "--timers", "0"], &["--timers", "at least 1"]),
        (&["bench", "callback", "--timers-over", "2"], &["required"]),
        (&["bench", "finish-latency", "--rate", "0", "--duration", "1"], &["--rate", "greater than 0"]),
        (&["bench", "finish-latency", "--rate", "10", "--duration=-1"], &["--duration", "greater than 0"]),
        (&["bench", "finish-latency", "--rate", "10"], &["required"]),
        (&["bench", "reopen", "--instances", "0"], &["--instances", "at least 1"]),
        (&["bench", "sql-floor", "--instances", "none"], &["--instances", "whole number"]),
        (&["bench", "http", "--bad-share", "2"], &["--bad-share", "between 0 and 1"]),
        (&["bench", "http", "--clients", "0"], &["--clients", "between 1 and 1024"]),
        // The old form, before the benchmarks became subcommands.
        (&["bench", "-n", "10"], &["-n"]),
    ];
    for (args, words) in cases {
        let first = bench.usage_error(args);
        assert!(first.starts_with("error: "), "{args:?}: {first:?}");
        for word in words {
            assert!(first.contains(word), "{args:?}: expected {word:?} in {first:?}");
        }
    }
}

#[test]
fn a_run_too_large_to_set_up_is_refused_in_one_line() {
    let bench = Bench::new();
    let out = bench.run(&["bench", "finish-latency", "--rate", "1000000", "--duration", "60"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert_eq!(out.stdout, "");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{out:?}");
    assert!(lines[0].starts_with("flowdesk: ") && lines[0].contains("too many"), "{out:?}");
}

/// Issue 17: `bench timers` prints its one line, every deadline fired once
/// (the run fails otherwise), and with several runs a line of medians.
#[test]
fn timers_prints_its_line_with_every_deadline_fired_once() {
    let bench = Bench::new();
    let lines = bench.ok(&["bench", "timers", "--instances", "120", "--runs", "2", "--sync", "normal"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    let keys = ["engine", "bench", "n", "fired", "per_s", "p99_late_ms", "peak_rss_mb", "sync"];
    for run in &lines[..2] {
        let line = fields(run, &keys);
        assert_eq!((line["bench"].as_str(), line["n"].as_str(), line["fired"].as_str()), ("timers", "120", "120"));
        assert_eq!(line["sync"], "normal");
        assert!(number(&line, "per_s") > 0.0, "{lines:?}");
        number(&line, "p99_late_ms");
    }
    let medians = ["engine", "bench", "n", "runs", "median_per_s", "median_p99_late_ms", "median_peak_rss_mb", "sync"];
    let line = fields(&lines[2], &medians);
    assert_eq!(line["runs"], "2");
    bench.assert_scratch_removed();
}

/// Issue 17's second figure: `bench callback --timers` runs the scenario
/// with deadlines of other instances falling due meanwhile, fired by the
/// runtime's ticker; its line is the scenario's with how the timers fared
/// after it, every deadline fired once (the run fails otherwise), and the
/// median line gains the median lateness.
#[test]
fn callback_with_timers_adds_how_late_they_fired_to_the_scenarios_line() {
    let bench = Bench::new();
    let args = ["bench", "callback", "-n", "40", "--clients", "4", "--timers", "12", "--timers-over", "0.3"];
    let lines = bench.ok(&[&args[..], &["--runs", "2", "--sync", "normal"]].concat());
    assert_eq!(lines.len(), 3, "two runs and the median: {lines:?}");
    let keys: Vec<&str> =
        SCENARIO_KEYS.iter().copied().chain(["timers", "timers_fired", "timers_in_window", "p99_late_ms"]).collect();
    for run in &lines[..2] {
        let line = fields(run, &keys);
        assert_eq!((line["n"].as_str(), line["verified"].as_str()), ("40", "40"), "{run}");
        assert_eq!((line["timers"].as_str(), line["timers_fired"].as_str()), ("12", "12"), "{run}");
        assert!(number(&line, "timers_in_window") <= 12.0, "{run}");
        number(&line, "p99_late_ms");
    }
    let medians = ["engine", "n", "runs", "median_total_per_s", "sync", "clients", "median_p99_late_ms"];
    let line = fields(&lines[2], &medians);
    assert_eq!(line["runs"], "2");
    number(&line, "median_p99_late_ms");
}
