//! `flowdesk bench-monitor`: the monitor's frame time and the time its rows
//! take to show on a database of a million instances, driven headless like
//! `bench-designer` (egui's full pass plus tessellation, no window, no GPU).
//!
//! The database is the callback sample deployed through the engine, then
//! filled with synthetic instances ([`Runtime::load_synthetic_instances`]).
//! Frames with input come at 60 per second, as a display would take them;
//! while the monitor waits for its query worker, a frame is drawn when the
//! worker's answer asks for one (or at the next period if the app asked for
//! another frame at once), as an event loop would. The time to rows is thus
//! the worker's time plus at most a frame.
//!
//! Each scenario also says what the table did: pages shown (a new page of
//! rows arrived and was drawn), stale frames (a frame drew at least one row
//! still loading, as "…"), the deepest row drawn, and how long after the last
//! input every row on screen was loaded.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::engine::{FieldCondition, InstanceColumn, InstanceFilter, InstanceOrder, InstanceStatus, TimeRange};
use crate::gui::app::SAMPLES;
use crate::gui::bench::{FrameStats, stats};
use crate::gui::dialogs::ScriptedDialogs;
use crate::gui::{AppView, FlowdeskApp, GuiOptions, Settings};
use crate::model::{ProcessDraft, Right};
use crate::runtime::{Runtime, RuntimeOptions};
use crate::store::Durability;

/// The process the synthetic instances belong to.
pub const PROCESS: &str = "callback";
/// One frame at 60 Hz.
const FRAME_PERIOD: Duration = Duration::from_micros(16_667);
/// Longest wait for an answer before the benchmark gives up.
const PATIENCE: Duration = Duration::from_secs(120);
/// The window size the frames are drawn at.
const SCREEN: egui::Vec2 = egui::vec2(1280.0, 800.0);
/// A point over the instance table (left of the detail panel, under the filter bar).
const OVER_TABLE: egui::Pos2 = egui::pos2(320.0, 420.0);

#[derive(Debug, Clone)]
pub struct MonitorBenchOptions {
    pub instances: usize,
    /// Frames per scenario.
    pub frames: usize,
    /// A database to reuse (and top up to `instances`); a temporary one if `None`.
    pub db: Option<PathBuf>,
    pub user: String,
}

/// How the database was made ready.
#[derive(Debug, Clone)]
pub struct Setup {
    pub path: PathBuf,
    /// Instances the user sees in it.
    pub instances: u64,
    /// Synthetic instances written this run (0 when an existing database had enough).
    pub loaded: usize,
    pub pending_items: usize,
    pub seconds: f64,
}

/// A scenario's frame times and what the table did meanwhile.
#[derive(Debug, Clone)]
pub struct ScenarioReport {
    pub frames: FrameStats,
    /// Times a different page of rows was shown.
    pub pages_shown: usize,
    /// Frames that drew at least one row not loaded yet (as "…").
    pub stale_frames: usize,
    /// The deepest table row drawn.
    pub deepest_row: usize,
    /// After the last input, how long until every row on screen was loaded.
    pub settle_ms: f64,
}

/// One filter or order change: how long until its rows and count showed.
#[derive(Debug, Clone)]
pub struct FilterReport {
    pub label: &'static str,
    pub rows_ms: f64,
    pub count_ms: f64,
    /// Frames drawn while waiting for the rows.
    pub frames: usize,
    pub rows: usize,
    pub count: u64,
}

#[derive(Debug, Clone)]
pub struct MonitorReport {
    pub setup: Setup,
    /// From creating the app until the first rows were shown.
    pub first_rows_ms: f64,
    /// Frames drawn until then.
    pub first_rows_frames: usize,
    /// From creating the app until the instance count was shown.
    pub first_count_ms: f64,
    pub scenarios: Vec<ScenarioReport>,
    pub filters: Vec<FilterReport>,
    /// How long the deploy took that made the callback sample's `name`
    /// and `done` searchable (building their indexes over every instance),
    /// between the filter lines without and with them; `None` when an
    /// earlier run on the same database had made them searchable already.
    pub indexing_ms: Option<f64>,
    pub overview: OverviewReport,
}

/// The overview tab on the same database: how long its reads take (each
/// the median of [`ANSWER_RUNS`] calls of the engine, as the query worker
/// makes them) and how long after the tab opened its counts and its
/// diagram's counts showed; its frame times are among the scenarios.
#[derive(Debug, Clone)]
pub struct OverviewReport {
    /// (what, median milliseconds): the overview (counts, ages, incidents),
    /// the chart of a week, the diagram's counts.
    pub answers: Vec<(&'static str, f64)>,
    pub shown_ms: f64,
    pub diagram_shown_ms: f64,
    /// Incidents and process versions the overview showed.
    pub incidents: usize,
    pub versions: usize,
}

/// How many times each of the overview's reads is timed.
const ANSWER_RUNS: usize = 7;

/// Makes `path` hold at least `instances` instances of the callback sample that
/// `user` may see: deploys it if needed (the deployer gets Admin), then writes
/// the missing ones as synthetic instances.
pub fn prepare_database(path: &Path, instances: usize, user: &str) -> anyhow::Result<Setup> {
    let started = Instant::now();
    let runtime = Runtime::open(path, RuntimeOptions { durability: Durability::Normal, ..RuntimeOptions::default() })?;
    let engine = runtime.engine();
    if engine.processes()?.iter().all(|p| p.name != PROCESS) {
        let (_, json) = SAMPLES.iter().find(|(name, _)| *name == PROCESS).context("the callback sample is missing")?;
        let draft = ProcessDraft::from_json(json, PROCESS)?;
        engine.deploy(user, &draft)?;
    }
    let rights = engine.rights(PROCESS, user)?;
    if !rights.iter().any(|r| matches!(r, Right::Admin | Right::View)) {
        anyhow::bail!(
            "{user} may not see the instances of `{PROCESS}` in {}: run as its deployer (--user) or use another database",
            path.display()
        );
    }
    let visible = engine.count_instances(user, &InstanceFilter::default())?;
    let missing = instances.saturating_sub(visible as usize);
    let mut pending_items = 0;
    if missing > 0 {
        let version = engine
            .processes()?
            .into_iter()
            .find(|p| p.name == PROCESS)
            .map(|p| p.default_version)
            .context("the callback process vanished")?;
        let now = chrono::Utc::now().timestamp_millis();
        pending_items = runtime.load_synthetic_instances(PROCESS, version, missing, now)?.pending_items;
    }
    let total = engine.count_instances(user, &InstanceFilter::default())?;
    // Closing the last connection checkpoints the write-ahead log into the
    // database file: the monitor starts on a settled file, as after a restart.
    drop(runtime);
    Ok(Setup {
        path: path.to_owned(),
        instances: total,
        loaded: missing,
        pending_items,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The database a monitor benchmark works on: `db`, kept, or `monitor.db`
/// in a new temporary folder named after `prefix`, deleted with the
/// returned `TempDir`.
pub fn bench_database(db: &Option<PathBuf>, prefix: &str) -> anyhow::Result<(Option<tempfile::TempDir>, PathBuf)> {
    match db {
        Some(path) => Ok((None, path.clone())),
        None => {
            let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
            let path = dir.path().join("monitor.db");
            Ok((Some(dir), path))
        }
    }
}

/// The window on `path` as `user`, showing the monitor, as a user who has
/// seen the welcome opens it.
pub fn monitor_app(path: &Path, user: &str) -> FlowdeskApp {
    FlowdeskApp::new(
        GuiOptions { db_path: path.to_owned(), user: user.to_owned(), file: None, view: AppView::Monitor },
        Settings { welcomed: true, ..Settings::default() },
        Box::new(ScriptedDialogs::default()),
    )
}

/// Runs the monitor on a database of `options.instances` instances.
pub fn run(options: &MonitorBenchOptions) -> anyhow::Result<MonitorReport> {
    let (_temporary, path) = bench_database(&options.db, "flowdesk-bench-monitor-")?;
    let setup = prepare_database(&path, options.instances, &options.user)?;
    let user = options.user.as_str();

    // Time to first rows: from creating the app (it opens the database and
    // starts the query worker) until the table has rows, drawing frames meanwhile.
    let driver = Driver::new();
    let created = Instant::now();
    let mut app = monitor_app(&path, user);
    let mut first_rows = None;
    let mut first_count = None;
    let mut frames = 0;
    while first_rows.is_none() || first_count.is_none() {
        anyhow::ensure!(created.elapsed() < PATIENCE, "no rows after {} s", PATIENCE.as_secs());
        let started = Instant::now();
        driver.frame(&mut app, Vec::new());
        if first_rows.is_none() {
            frames += 1;
        }
        if first_rows.is_none() && !app.monitor.rows().is_empty() {
            first_rows = Some(created.elapsed());
        }
        if first_count.is_none() && app.monitor.count_current() {
            first_count = Some(created.elapsed());
        }
        driver.wait_for_wake(started);
    }
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or_default();
    // Warm up: fonts, the table's layout.
    for _ in 0..10 {
        driver.paced(&mut app, Vec::new());
    }

    let frames_per = options.frames.max(10);
    let mut scenarios = Vec::new();
    scenarios.push(idle(&driver, &mut app, frames_per));
    // Gentle: a wheel notch (40 points, two rows) each frame.
    scenarios.push(scroll(&driver, &mut app, frames_per, "wheel scrolling, a notch per frame", |_| {
        wheel(egui::MouseWheelUnit::Line, -1.0)
    }));
    // Fast: 100 rows a frame, half a page of the worker's 200 rows.
    scenarios.push(scroll(&driver, &mut app, frames_per, "fling scrolling, 100 rows per frame", |_| {
        wheel(egui::MouseWheelUnit::Point, -2000.0)
    }));
    // Deep: to the end of the table in the first half, back to the top in the second.
    let total = app.monitor.count().unwrap_or(setup.instances) as f32;
    let half = (frames_per / 2).max(1);
    let per_frame = total * 20.0 * 1.2 / half as f32 / SCREEN.y;
    scenarios.push(scroll(&driver, &mut app, frames_per, "jumping to the end of the table and back", move |i| {
        let direction = if i < half { -1.0 } else { 1.0 };
        wheel(egui::MouseWheelUnit::Page, direction * per_frame)
    }));
    // Each pass starts from the monitor's first filter, not from the last
    // step of the one before.
    let first_filter = app.monitor.filter.clone();
    let (filter_frames, mut filters) = filtering(&driver, &mut app, &first_filter, user, frames_per, false)?;
    scenarios.push(filter_frames);
    // The same field filters once `name` and `done` are searchable.
    let indexing_ms = make_searchable(&path, user, &["name", "done"])?;
    let (_, searchable) = filtering(&driver, &mut app, &first_filter, user, frames_per, true)?;
    filters.extend(searchable);
    let (overview_frames, overview) = overview(&driver, &mut app, &path, user, frames_per)?;
    scenarios.push(overview_frames);
    drop(app);
    Ok(MonitorReport {
        setup,
        first_rows_ms: ms(first_rows),
        first_rows_frames: frames,
        first_count_ms: ms(first_count),
        scenarios,
        filters,
        indexing_ms,
        overview,
    })
}

/// Deploys a version of the callback sample with `fields` searchable, which
/// builds their indexes over every instance of the process; how long it
/// took, or `None` when the default version had them searchable already.
fn make_searchable(path: &Path, user: &str, fields: &[&str]) -> anyhow::Result<Option<f64>> {
    let runtime = Runtime::open(path, RuntimeOptions { durability: Durability::Normal, ..RuntimeOptions::default() })?;
    let engine = runtime.engine();
    let mut draft = engine.definition(PROCESS)?.draft.clone();
    if draft.fields.iter().filter(|f| fields.contains(&f.name.as_str())).all(|f| f.searchable) {
        return Ok(None);
    }
    for field in draft.fields.iter_mut().filter(|f| fields.contains(&f.name.as_str())) {
        field.searchable = true;
    }
    let started = Instant::now();
    engine.deploy(user, &draft)?;
    Ok(Some(started.elapsed().as_secs_f64() * 1000.0))
}

/// The overview: its reads timed on their own, then the tab opened in the
/// app until its counts and diagram show, then frames with the pointer
/// moving over it.
fn overview(
    driver: &Driver,
    app: &mut FlowdeskApp,
    path: &Path,
    user: &str,
    frames: usize,
) -> anyhow::Result<(ScenarioReport, OverviewReport)> {
    let runtime =
        Runtime::open_existing(path, RuntimeOptions { durability: Durability::Normal, ..RuntimeOptions::default() })?;
    let engine = runtime.engine();
    let version = engine.version_definition(PROCESS, None)?.0;
    let median = |work: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        let mut times = Vec::with_capacity(ANSWER_RUNS);
        for _ in 0..ANSWER_RUNS {
            let started = Instant::now();
            work()?;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    let answers = vec![
        ("overview (counts, ages, incidents)", median(&|| Ok(engine.overview(user).map(drop)?))?),
        (
            "chart of the last week",
            median(&|| Ok(engine.throughput(user, None, None, crate::engine::Span::Week).map(drop)?))?,
        ),
        ("diagram counts", median(&|| Ok(engine.activity_counts(user, PROCESS, version).map(drop)?))?),
    ];
    drop(runtime);

    app.view = AppView::Overview;
    let opened = Instant::now();
    let (mut shown, mut diagram) = (None, None);
    let mut times = Vec::new();
    while shown.is_none() || diagram.is_none() {
        anyhow::ensure!(opened.elapsed() < PATIENCE, "no overview after {} s", PATIENCE.as_secs());
        let started = Instant::now();
        times.push(driver.frame(app, Vec::new()));
        if shown.is_none() && app.monitor.overview.overview().is_some() {
            shown = Some(opened.elapsed());
        }
        if diagram.is_none() && app.monitor.overview.diagram_counts().is_some() {
            diagram = Some(opened.elapsed());
        }
        driver.wait_for_wake(started);
    }
    for i in 0..frames {
        let at = egui::pos2(200.0 + (i % 40) as f32 * 20.0, 150.0 + (i % 25) as f32 * 20.0);
        times.push(driver.paced(app, vec![egui::Event::PointerMoved(at)]));
    }
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or_default();
    let (incidents, versions) =
        app.monitor.overview.overview().map_or((0, 0), |o| (o.incidents.len(), o.versions.len()));
    let report = ScenarioReport {
        frames: stats("overview: counts, charts, incidents and the diagram shown", times),
        pages_shown: 0,
        stale_frames: 0,
        deepest_row: 0,
        settle_ms: 0.0,
    };
    Ok((report, OverviewReport { answers, shown_ms: ms(shown), diagram_shown_ms: ms(diagram), incidents, versions }))
}

/// Draws frames of the whole app as a window would, timing each.
struct Driver {
    ctx: egui::Context,
    started: Instant,
    /// A message for each request to repaint at once (the query worker makes
    /// one with each answer), as a window's event loop would be woken.
    wakes: Receiver<()>,
    /// The last frame asked to be followed by another at once.
    again: Cell<bool>,
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
        Driver { ctx, started: Instant::now(), wakes, again: Cell::new(false) }
    }

    /// After a frame that began at `started`, waits as a vsync'd event loop
    /// would: to the next frame period if the frame asked for another at once
    /// (the app does, every frame: it sends the window title), else until
    /// something asks for a repaint (the worker, with an answer) or the frame
    /// period is over.
    fn wait_for_wake(&self, started: Instant) {
        // Requests made while drawing are in the frame's output.
        while self.wakes.try_recv().is_ok() {}
        if let Some(rest) = FRAME_PERIOD.checked_sub(started.elapsed()) {
            if self.again.get() {
                std::thread::sleep(rest);
            } else {
                let _ = self.wakes.recv_timeout(rest);
            }
        }
    }

    /// One frame with `events`; returns its time in milliseconds.
    fn frame(&self, app: &mut FlowdeskApp, events: Vec<egui::Event>) -> f64 {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, SCREEN)),
            time: Some(self.started.elapsed().as_secs_f64()),
            events,
            ..egui::RawInput::default()
        };
        let started = Instant::now();
        let mut output = self.ctx.run_ui(input, |ui| app.ui(ui));
        // No renderer takes the textures: dropped unapplied, they trip epaint's
        // debug assertion (a debug build of the benchmark panicked here).
        output.textures_delta.clear();
        let _meshes = self.ctx.tessellate(output.shapes, output.pixels_per_point);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let root = output.viewport_output.get(&egui::ViewportId::ROOT);
        self.again.set(root.is_some_and(|v| v.repaint_delay.is_zero()));
        ms
    }

    /// A frame, then the rest of its 60 Hz period idle (input keeps coming
    /// at the display's pace).
    fn paced(&self, app: &mut FlowdeskApp, events: Vec<egui::Event>) -> f64 {
        let started = Instant::now();
        let ms = self.frame(app, events);
        if let Some(rest) = FRAME_PERIOD.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
        ms
    }
}

/// A wheel event; a negative `delta_y` scrolls down (moves the content up).
fn wheel(unit: egui::MouseWheelUnit, delta_y: f32) -> egui::Event {
    egui::Event::MouseWheel {
        unit,
        delta: egui::vec2(0.0, delta_y),
        phase: egui::TouchPhase::Move,
        source: egui::MouseWheelSource::Wheel,
        modifiers: egui::Modifiers::NONE,
    }
}

/// Rows shown, the pointer moving over them.
fn idle(driver: &Driver, app: &mut FlowdeskApp, frames: usize) -> ScenarioReport {
    let mut times = Vec::with_capacity(frames);
    let mut stale = 0;
    for i in 0..frames {
        let at = egui::pos2(OVER_TABLE.x + (i % 20) as f32 * 3.0, OVER_TABLE.y + (i % 40) as f32 * 4.0);
        times.push(driver.paced(app, vec![egui::Event::PointerMoved(at)]));
        stale += usize::from(!app.monitor.visible_rows_loaded());
    }
    ScenarioReport {
        frames: stats("idle, rows shown, pointer moving over them", times),
        pages_shown: 0,
        stale_frames: stale,
        deepest_row: app.monitor.visible_rows().map(|(_, high)| high).unwrap_or(0),
        settle_ms: 0.0,
    }
}

/// The pointer over the table, `input(i)` in frame `i`; then frames without
/// input until every row on screen is loaded.
fn scroll(
    driver: &Driver,
    app: &mut FlowdeskApp,
    frames: usize,
    scenario: &'static str,
    input: impl Fn(usize) -> egui::Event,
) -> ScenarioReport {
    let mut times = Vec::with_capacity(frames);
    let mut shown = (app.monitor.rows_offset(), app.monitor.rows().first().map(|r| r.id));
    let mut pages_shown = 0;
    let mut stale_frames = 0;
    let mut deepest_row = 0;
    let mut observe = |app: &FlowdeskApp| {
        let now = (app.monitor.rows_offset(), app.monitor.rows().first().map(|r| r.id));
        if now != shown {
            shown = now;
            pages_shown += 1;
        }
        let loaded = app.monitor.visible_rows_loaded();
        if let Some((_, high)) = app.monitor.visible_rows() {
            deepest_row = deepest_row.max(high);
        }
        loaded
    };
    for i in 0..frames {
        times.push(driver.paced(app, vec![egui::Event::PointerMoved(OVER_TABLE), input(i)]));
        if !observe(app) {
            stale_frames += 1;
        }
    }
    // Let the smoothed scrolling run out, then wait for the rows on screen.
    let settling = Instant::now();
    let mut settled_at = settling;
    let mut quiet = 0;
    while quiet < 10 && settling.elapsed() < PATIENCE {
        driver.paced(app, Vec::new());
        let before = app.monitor.visible_rows();
        let loaded = observe(app);
        if loaded && before == app.monitor.visible_rows() {
            quiet += 1;
        } else {
            quiet = 0;
            settled_at = Instant::now();
        }
    }
    ScenarioReport {
        frames: stats(scenario, times),
        pages_shown,
        stale_frames,
        deepest_row,
        settle_ms: settled_at.duration_since(settling).as_secs_f64() * 1000.0,
    }
}

/// Filter and order changes as a user makes them, one after another; each
/// waits for its rows and count, then shows them for a few frames. The last
/// two of the full list do not wait for the count between them: the
/// operator changes the filter while a slow count (a data field's, seconds
/// at a million rows) still runs, and the second's `rows_ms` says whether
/// its rows waited.
///
/// `searchable`: only the field filters, once their fields are searchable.
fn filtering(
    driver: &Driver,
    app: &mut FlowdeskApp,
    first_filter: &InstanceFilter,
    user: &str,
    frames: usize,
    searchable: bool,
) -> anyhow::Result<(ScenarioReport, Vec<FilterReport>)> {
    let base = InstanceFilter { order: InstanceOrder::NEWEST_FIRST, ..first_filter.clone() };
    let status = |s| InstanceFilter { status: Some(s), ..base.clone() };
    let with_process = |f: InstanceFilter| InstanceFilter { process: Some(PROCESS.to_owned()), ..f };
    let search = |text: &str| InstanceFilter { search: Some(text.to_owned()), ..base.clone() };
    let order = |column, descending| InstanceFilter { order: InstanceOrder { column, descending }, ..base.clone() };
    let field = |text: &str| -> anyhow::Result<InstanceFilter> {
        Ok(InstanceFilter { fields: vec![FieldCondition::parse(text)?], ..base.clone() })
    };
    let now = chrono::Utc::now().timestamp_millis();
    let since = |days: i64| TimeRange { after: Some(now - days * 24 * 3_600_000), before: None };
    let mut steps: Vec<(&'static str, InstanceFilter)> = if searchable {
        vec![
            ("process=callback where name = \"name 3\" (searchable)", with_process(field("name = \"name 3\"")?)),
            (
                "process=callback where name = \"nobody\" (searchable, none match)",
                with_process(field("name = \"nobody\"")?),
            ),
            ("process=callback where done = true (searchable, none match)", with_process(field("done = true")?)),
            ("no filter, newest first", base.clone()),
        ]
    } else {
        vec![
            ("status=Error", status(InstanceStatus::Error)),
            ("status=Error process=callback", with_process(status(InstanceStatus::Error))),
            ("status=Active process=callback", with_process(status(InstanceStatus::Active))),
            ("process=callback search=PO-12345", with_process(search("PO-12345"))),
            ("search=777 (id or folio)", search("777")),
            ("search=PO-99 (many matches)", search("PO-99")),
            ("order=folio asc", order(InstanceColumn::Folio, false)),
            ("order=last change desc", order(InstanceColumn::LastChange, true)),
            ("order=originator asc", order(InstanceColumn::Originator, false)),
            (
                "status=Completed order=last change desc",
                InstanceFilter { status: Some(InstanceStatus::Completed), ..order(InstanceColumn::LastChange, true) },
            ),
            ("search=po-99 (lower case, many matches)", search("po-99")),
            ("process=callback where name = \"name 3\"", with_process(field("name = \"name 3\"")?)),
            ("process=callback where name contains AME 7", with_process(field("name contains AME 7")?)),
            ("process=callback where name = \"nobody\" (none match)", with_process(field("name = \"nobody\"")?)),
            ("process=callback where done = true (none match)", with_process(field("done = true")?)),
            ("process=callback version=1", InstanceFilter { version: Some(1), ..with_process(base.clone()) }),
            ("started in the last 30 days", InstanceFilter { started: since(30), ..base.clone() }),
            ("ended in the last 30 days", InstanceFilter { ended: since(30), ..base.clone() }),
            ("no filter, newest first", base.clone()),
        ]
    };
    // Labels the cli prints as they are: the first's count is not waited
    // for (count_ms=0 count=0).
    let slow_count = "process=callback where name = \"name 3\" (rows only, its count not waited for)";
    if !searchable {
        steps.push((slow_count, with_process(field("name = \"name 3\"")?)));
        steps.push((
            "started in the last 30 days, during that count",
            InstanceFilter { started: since(30), ..base.clone() },
        ));
    }
    let after = (frames / steps.len()).max(5);
    let mut times = Vec::new();
    let mut reports = Vec::new();
    let mut stale_frames = 0;
    for (label, filter) in steps {
        let asked = Instant::now();
        app.monitor.set_filter(filter, user);
        let (mut rows_at, mut count_at) = (None, None);
        let mut waited = 0;
        let count_waited = label != slow_count;
        while rows_at.is_none() || (count_waited && count_at.is_none()) {
            anyhow::ensure!(asked.elapsed() < PATIENCE, "no rows for `{label}` after {} s", PATIENCE.as_secs());
            // No input while waiting (input asks for frames at once): the
            // frames are the ones the worker's answers and egui ask for.
            let started = Instant::now();
            times.push(driver.frame(app, Vec::new()));
            if rows_at.is_none() {
                waited += 1;
                stale_frames += 1;
            }
            if rows_at.is_none() && app.monitor.rows_current() {
                rows_at = Some(asked.elapsed());
            }
            if count_at.is_none() && app.monitor.count_current() {
                count_at = Some(asked.elapsed());
            }
            driver.wait_for_wake(started);
        }
        for _ in 0..if count_waited { after } else { 0 } {
            times.push(driver.paced(app, vec![egui::Event::PointerMoved(OVER_TABLE)]));
        }
        let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0).unwrap_or_default();
        reports.push(FilterReport {
            label,
            rows_ms: ms(rows_at),
            count_ms: ms(count_at),
            frames: waited,
            rows: app.monitor.rows().len(),
            count: if count_waited { app.monitor.count().unwrap_or(0) } else { 0 },
        });
    }
    let report = ScenarioReport {
        frames: stats("filtering and sorting, until the rows show", times),
        pages_shown: reports.len(),
        stale_frames,
        deepest_row: 0,
        settle_ms: 0.0,
    };
    Ok((report, reports))
}
