//! `flowdesk bench-monitor --live`: how soon the open monitor shows what
//! another process commits, and what the monitor costs while nothing
//! changes.
//!
//! The database is `bench-monitor`'s (the callback sample and synthetic
//! instances, [`prepare_database`]). The monitor runs headless as there,
//! but frames come as an event loop would draw them: when something asks
//! for a repaint (the query worker's wake, an answer) or when the delay the
//! last frame asked for (`request_repaint_after`) is over, never sooner than
//! one 60 Hz period after the frame before. Another process, the flowdesk
//! binary itself (`bench-live-writer`, a hidden command reading orders on
//! its standard input), starts an instance, and once the monitor shows it,
//! finishes its item a random moment later (so that commits fall anywhere
//! in the worker's poll period). Each finish is timed from the moment the
//! writer's `finish` returned (committed; the writer says when, by the
//! system clock both processes share) to the end of the first frame that
//! shows it: on the instance list, the instance's row no longer Active;
//! on the server items view (every other finish), its item gone.
//!
//! Idle CPU is the whole process's (every thread: the window's runtime and
//! its ticker, the query worker and its looks, the frames) over a few
//! seconds of the instance list open while nothing changes, from each
//! thread's `/proc/self/task/*/schedstat` (nanoseconds; Linux).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::engine::{FieldInput, InstanceStatus, Serial};
use crate::gui::bench_monitor::{PROCESS, Setup, bench_database, monitor_app, prepare_database};
use crate::gui::{AppView, FlowdeskApp};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::store::Durability;

/// One frame at 60 Hz: the soonest a frame follows the one before.
const FRAME_PERIOD: Duration = Duration::from_micros(16_667);
/// Longest wait for the monitor to show a change before giving up.
const PATIENCE: Duration = Duration::from_secs(60);
/// The window size the frames are drawn at.
const SCREEN: egui::Vec2 = egui::vec2(1280.0, 800.0);

#[derive(Debug, Clone)]
pub struct LiveBenchOptions {
    pub instances: usize,
    /// Items finished by the other process, each timed.
    pub finishes: usize,
    /// How long the idle CPU is measured.
    pub idle: Duration,
    pub db: Option<PathBuf>,
    pub user: String,
}

#[derive(Debug, Clone)]
pub struct LiveReport {
    pub setup: Setup,
    /// Each finish's delay until the monitor showed it, in milliseconds,
    /// in the order made.
    pub delays_ms: Vec<f64>,
    pub p50_ms: f64,
    pub p95_ms: f64,
    /// The process's CPU time over the idle wall time, in percent of one core.
    pub idle_cpu_pct: f64,
    /// Frames drawn while idle.
    pub idle_frames: usize,
}

/// Runs the live benchmark; `writer` is the flowdesk binary to run as the
/// other process.
pub fn run(options: &LiveBenchOptions, writer: &Path) -> anyhow::Result<LiveReport> {
    let (_temporary, path) = bench_database(&options.db, "flowdesk-bench-live-")?;
    let setup = prepare_database(&path, options.instances, &options.user)?;
    let user = options.user.as_str();
    let mut other = Writer::spawn(writer, &path, user)?;

    let mut driver = Driver::new();
    let mut app = monitor_app(&path, user);
    // The newest items first, as the newest instances are: what the other
    // process starts is on top of both.
    app.monitor.items_filter.newest_first = true;
    driver
        .run_until(&mut app, "the first rows", |app| app.monitor.count_current() && !app.monitor.rows().is_empty())?;

    let mut pause = Pause(0x5eed);
    let mut delays = Vec::with_capacity(options.finishes);
    for round in 0..options.finishes {
        let on_items = round % 2 == 1;
        app.view = if on_items { AppView::Items } else { AppView::Monitor };
        let (id, serial) = other.start()?;
        driver.run_until(&mut app, "the new instance", |app| {
            let monitor = &app.monitor;
            monitor.rows().iter().any(|row| row.id == id)
                && monitor.items().iter().any(|item| item.serial.to_string() == serial)
        })?;
        driver.idle_for(&mut app, pause.next());
        let committed = other.finish(&serial)?;
        let shown = driver.run_until(&mut app, "the finished item", |app| {
            let monitor = &app.monitor;
            if on_items {
                !monitor.items().iter().any(|item| item.serial.to_string() == serial)
            } else {
                monitor.rows().iter().any(|row| row.id == id && row.status != InstanceStatus::Active)
            }
        })?;
        delays.push(shown.duration_since(committed).unwrap_or_default().as_secs_f64() * 1000.0);
    }
    other.close()?;

    // Idle: the instance list, nothing changing; first let what the last
    // change asked for run out.
    app.view = AppView::Monitor;
    driver.idle_for(&mut app, Duration::from_secs(1));
    let frames_before = driver.frames;
    let cpu_before = cpu_time()?;
    let wall = Instant::now();
    driver.idle_for(&mut app, options.idle);
    let cpu = cpu_time()?.saturating_sub(cpu_before);
    let idle_cpu_pct = cpu.as_secs_f64() / wall.elapsed().as_secs_f64() * 100.0;
    let idle_frames = driver.frames - frames_before;
    drop(app);

    let mut sorted = delays.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(LiveReport {
        setup,
        p50_ms: percentile(&sorted, 0.50),
        p95_ms: percentile(&sorted, 0.95),
        delays_ms: delays,
        idle_cpu_pct,
        idle_frames,
    })
}

/// The value at `fraction` of sorted values (nearest rank).
fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (fraction * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Pauses of 0 to 100 ms, the same sequence every run, so that commits fall
/// anywhere in the query worker's poll period.
struct Pause(u64);

impl Pause {
    fn next(&mut self) -> Duration {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        Duration::from_millis((self.0 >> 33) % 101)
    }
}

/// The CPU time of every thread of this process so far.
fn cpu_time() -> anyhow::Result<Duration> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task").context("reading /proc/self/task (Linux only)")? {
        let schedstat = std::fs::read_to_string(task?.path().join("schedstat"));
        // A thread that ended meanwhile has no file any more.
        let Ok(schedstat) = schedstat else { continue };
        nanos += schedstat.split_whitespace().next().and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    }
    Ok(Duration::from_nanos(nanos))
}

/// Draws the whole app's frames as an event loop would (see the module doc).
struct Driver {
    ctx: egui::Context,
    started: Instant,
    /// A message for each request to repaint at once, from any thread.
    wakes: Receiver<()>,
    /// When the last frame asked for the next one; `None`: not at all.
    next_frame: Option<Instant>,
    last_frame: Option<Instant>,
    frames: usize,
}

impl Driver {
    fn new() -> Driver {
        let ctx = egui::Context::default();
        let (wake, wakes) = channel();
        ctx.set_request_repaint_callback(move |info| {
            if info.delay.is_zero() {
                let _ = wake.send(());
            }
        });
        Driver { ctx, started: Instant::now(), wakes, next_frame: Some(Instant::now()), last_frame: None, frames: 0 }
    }

    fn frame(&mut self, app: &mut FlowdeskApp) {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, SCREEN)),
            time: Some(self.started.elapsed().as_secs_f64()),
            ..egui::RawInput::default()
        };
        // Wakes sent before this frame are answered by it.
        while self.wakes.try_recv().is_ok() {}
        let began = Instant::now();
        let mut output = self.ctx.run_ui(input, |ui| app.ui(ui));
        // No renderer takes the textures: dropped unapplied, they trip epaint's
        // debug assertion (a debug build of the benchmark panicked here).
        output.textures_delta.clear();
        let _meshes = self.ctx.tessellate(output.shapes, output.pixels_per_point);
        let delay = output.viewport_output.get(&egui::ViewportId::ROOT).map(|v| v.repaint_delay);
        self.next_frame = delay.and_then(|delay| Instant::now().checked_add(delay));
        self.last_frame = Some(began);
        self.frames += 1;
    }

    /// Waits for the next frame (a wake, or the delay asked for) but not
    /// past `until`; draws it if it came. Returns whether it drew one.
    fn step(&mut self, app: &mut FlowdeskApp, until: Instant) -> bool {
        let due = self.next_frame.map_or(until, |at| at.min(until));
        let woken = match due.checked_duration_since(Instant::now()) {
            Some(wait) if !wait.is_zero() => self.wakes.recv_timeout(wait).is_ok(),
            _ => false,
        };
        let now = Instant::now();
        if !woken && self.next_frame.is_none_or(|at| at > now) {
            return false;
        }
        // As a display would: not sooner than one period after the last frame.
        if let Some(rest) = self.last_frame.and_then(|last| (last + FRAME_PERIOD).checked_duration_since(now)) {
            std::thread::sleep(rest);
        }
        self.frame(app);
        true
    }

    /// Runs the event loop until `shown` holds after a frame; returns the
    /// time (system clock) that frame ended.
    fn run_until(
        &mut self,
        app: &mut FlowdeskApp,
        what: &str,
        shown: impl Fn(&FlowdeskApp) -> bool,
    ) -> anyhow::Result<SystemTime> {
        let started = Instant::now();
        loop {
            anyhow::ensure!(
                started.elapsed() < PATIENCE,
                "the monitor did not show {what} in {} s",
                PATIENCE.as_secs()
            );
            if self.step(app, Instant::now() + Duration::from_millis(100)) && shown(app) {
                return Ok(SystemTime::now());
            }
        }
    }

    /// Runs the event loop for `span`.
    fn idle_for(&mut self, app: &mut FlowdeskApp, span: Duration) {
        let until = Instant::now() + span;
        while Instant::now() < until {
            self.step(app, until);
        }
    }
}

/// The other process: the flowdesk binary running `bench-live-writer` on
/// the same database.
struct Writer {
    child: Child,
    orders: ChildStdin,
    answers: Receiver<String>,
}

impl Writer {
    fn spawn(binary: &Path, db: &Path, user: &str) -> anyhow::Result<Writer> {
        let mut child = Command::new(binary)
            .arg("--db")
            .arg(db)
            .args(["--user", user, "bench-live-writer"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {} as the other process", binary.display()))?;
        let orders = child.stdin.take().context("the writer's standard input")?;
        let output = child.stdout.take().context("the writer's standard output")?;
        let (send, answers) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines() {
                let Ok(line) = line else { return };
                if send.send(line).is_err() {
                    return;
                }
            }
        });
        Ok(Writer { child, orders, answers })
    }

    fn ask(&mut self, order: &str) -> anyhow::Result<Vec<String>> {
        writeln!(self.orders, "{order}")?;
        self.orders.flush()?;
        let answer = self.answers.recv_timeout(PATIENCE).context("the writer did not answer")?;
        let words: Vec<String> = answer.split_whitespace().map(str::to_owned).collect();
        anyhow::ensure!(words.first().map(String::as_str) == Some("ok"), "the writer failed: {answer}");
        Ok(words[1..].to_vec())
    }

    /// Starts an instance; its id and the serial it waits on.
    fn start(&mut self) -> anyhow::Result<(i64, String)> {
        match self.ask("start")?.as_slice() {
            [id, serial] => Ok((id.parse()?, serial.clone())),
            other => anyhow::bail!("the writer answered {other:?} to a start"),
        }
    }

    /// Finishes the item of `serial`; when it was committed.
    fn finish(&mut self, serial: &str) -> anyhow::Result<SystemTime> {
        match self.ask(&format!("finish {serial}"))?.as_slice() {
            [micros] => Ok(UNIX_EPOCH + Duration::from_micros(micros.parse()?)),
            other => anyhow::bail!("the writer answered {other:?} to a finish"),
        }
    }

    fn close(mut self) -> anyhow::Result<()> {
        drop(self.orders);
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the writer ended with {status}");
        Ok(())
    }
}

/// `flowdesk bench-live-writer`: the other process of the live benchmark.
/// Reads orders, one a line, and answers each on a line of its own:
/// `start` → `ok ID SERIAL` (an instance of the callback sample, waiting on
/// SERIAL); `finish SERIAL` → `ok MICROS` (the system clock's microseconds
/// since 1970 when the finish was committed); a failure → `error WORDS`.
/// Ends at the end of its input.
pub fn writer(db: &Path, user: &str, input: impl BufRead, mut output: impl Write) -> anyhow::Result<()> {
    let options = RuntimeOptions { durability: Durability::Normal, ..RuntimeOptions::default() };
    let runtime = Runtime::open_existing(db, options)?;
    let engine = runtime.engine();
    let mut started = 0;
    for line in input.lines() {
        let line = line?;
        let answer = match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["start"] => {
                started += 1;
                engine.start(user, PROCESS, &format!("LIVE-{started}"), &[]).map_err(anyhow::Error::from).and_then(
                    |progress| {
                        let serial = progress.waiting.first().context("the instance waits on nothing")?;
                        Ok(format!("ok {} {serial}", progress.instance_id))
                    },
                )
            }
            ["finish", serial] => serial.parse::<Serial>().map_err(anyhow::Error::from).and_then(|serial| {
                let data = [("name".to_owned(), FieldInput::Text("no".to_owned()))];
                engine.finish(user, serial, &data)?;
                let micros = SystemTime::now().duration_since(UNIX_EPOCH)?.as_micros();
                Ok(format!("ok {micros}"))
            }),
            other => Err(anyhow::anyhow!("unknown order {other:?}")),
        };
        let answer = answer.unwrap_or_else(|err| format!("error {err:#}"));
        writeln!(output, "{answer}")?;
        output.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.50), 10.0);
        assert_eq!(percentile(&sorted, 0.95), 19.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn pauses_stay_within_a_tenth_of_a_second() {
        let mut pause = Pause(1);
        assert!((0..1000).map(|_| pause.next()).all(|p| p <= Duration::from_millis(100)));
    }
}
