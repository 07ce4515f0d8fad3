//! The front door: the one way a front end (the command line, the window,
//! the HTTP API, the client API, the benchmarks) gets at a database.
//!
//! [`Runtime::open`] opens the store, builds the engine over it, and starts
//! a **ticker**: a thread for the work that is due now and then rather than
//! in answer to a call. Front ends hold a `Runtime` and call the engine
//! through [`Runtime::engine`]; none of them names the database type, which
//! only this module and `store` do (`tests/layers.rs` checks it). The
//! runtime also owns the HTTP API's tokens, which live in the same file.
//!
//! **Runners and heartbeats.** Each runtime is a runner with a random
//! [`RunnerId`]: the claims its engine makes on instances whose request or
//! script runs outside a transaction carry it (`engine::runner`). While one
//! of its threads runs such work, its ticker writes the runner's row again
//! every [`TICK_PERIOD`], each time good for one lease
//! (`EngineOptions::lease_ms`, 30 s): as long as it beats, no other runtime
//! takes its work over, however long that work takes; once it stops
//! (killed, crashed, its machine gone, or only the thread, by a panic),
//! another takes the work over when the last beat and the claim's lease
//! have run out. A beat is a small write of its own, every few seconds and
//! only while such work runs: no engine call (start, finish) waits for it or
//! writes it. A runtime that never runs outside work (one that only reads)
//! never writes a row; closing removes the row.
//!
//! **What ticks where.** [`Ticking::Host`] (`flowdesk serve`, the window)
//! also takes over instances whose runner stopped, at start and every tick,
//! on a worker thread of its own: a recovered instance may run long (a loop
//! of requests), and beats must go on meanwhile. A host also fires the
//! timers that fall due (escalations' deadlines, timer events), on a third
//! thread that looks every [`TIMER_PERIOD`], so that a timer fires well
//! within a second of its due time whatever recovery is doing
//! (`Engine::fire_due`: oldest first, each firing in a transaction of its
//! own, several at once so that they share commits). [`Ticking::Beat`] (the
//! other commands, the client API, the benchmarks) only beats: a command
//! that took over other runners' work could run as long as that work, and
//! an operator's `stop` meant for a runaway instance would wait behind it;
//! it still beats so that its own long run (a loop of requests started by
//! `flowdesk start`) is not taken for dead; it fires no timer (`flowdesk
//! timers run` does, once, for a cron job when nothing else runs).
//! [`Ticking::Manual`] starts no thread: tests call [`Runtime::tick`] after
//! moving their clock.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::{
    Clock, Engine, EngineError, EngineOptions, FiringRound, Hook, Mailer, Millis, Outbound, Progress, RunnerId,
    SmtpMailer, SmtpPassword, SmtpSettings, SmtpSettingsError, SystemClock,
};
use crate::model::ScriptHost;
use crate::store::{ApiToken, Durability, NewApiToken, OpenError, RunnerBeat, SqliteStore, SyntheticLoad, TokenError};

/// The engine as a runtime runs it: over flowdesk's SQLite store.
pub type RuntimeEngine = Engine<SqliteStore>;

/// How often the ticker beats and, in a host, looks for instances whose
/// runner stopped.
pub const TICK_PERIOD: Duration = Duration::from_secs(5);

/// How often a host's ticker looks for timers that have fallen due: a
/// read of one index's first entries, cheap enough to do often, and what
/// bounds how late a timer fires when the runtime is idle.
pub const TIMER_PERIOD: Duration = Duration::from_millis(200);

/// How long closing waits for the ticker's threads to end the step they
/// are in (a recovered request may take its whole timeout; past this the
/// process leaves it behind, and another runtime takes the instance over
/// once its claim has run out).
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the ticker does besides keeping this runtime's claims alive (its
/// heartbeat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ticking {
    /// Beats while the engine runs outside work, nothing more.
    #[default]
    Beat,
    /// Beats, takes over instances whose runner stopped (at start, then
    /// every tick) and fires the timers that fall due.
    Host,
    /// No thread: the owner calls [`Runtime::tick`].
    Manual,
}

/// What the ticker tells its host.
#[derive(Debug)]
pub enum TickEvent {
    /// An instance whose runner stopped was taken over and run on; where it
    /// now stands.
    Recovered(Progress),
    /// A round of recovery failed; the next tick tries again.
    RecoveryFailed(EngineError),
    /// A heartbeat could not be written; the next tick tries again, and
    /// the claims hold until their leases run out meanwhile.
    BeatFailed(EngineError),
    /// A round of firing timers fired some, or some failed (those stay
    /// armed and are fired again at the next look).
    TimersFired(FiringRound),
    /// A round of firing could not read what is due; the next look tries again.
    FiringFailed(EngineError),
}

pub type TickReport = Arc<dyn Fn(TickEvent) + Send + Sync>;

/// Where a runtime's firing of timers stands, as the window's status bar
/// says it: whether a ticker of this runtime fires them at all, and when
/// timers were last looked for and fired here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimerTicking {
    /// The ticker's timers thread runs: a host's ([`Ticking::Host`]), from
    /// its start until the runtime closes (or the thread died). Otherwise
    /// timers fire only when someone calls [`Runtime::fire_due`] (`flowdesk
    /// timers run`, a test's tick) or another runtime on the database does.
    pub running: bool,
    /// When this runtime last looked for due timers, by its clock.
    pub looked_at: Option<Millis>,
    /// When this runtime last fired any, by its clock, and how many then.
    pub fired: Option<(Millis, usize)>,
}

/// How a runtime opens its database and what it runs.
#[derive(Clone)]
pub struct RuntimeOptions {
    pub durability: Durability,
    /// How long a write waits for another program's write to end before it
    /// fails as busy (`store::BUSY_TIMEOUT`, 30 s, unless a test waits less).
    pub busy_timeout: Duration,
    pub ticking: Ticking,
    /// [`TICK_PERIOD`] unless a test ticks faster; at most half the lease,
    /// so that a claim is beaten for before its lease runs out.
    pub tick_period: Duration,
    /// The engine's options; `lease_ms` is also how long each beat lasts.
    pub engine: EngineOptions,
    pub clock: Arc<dyn Clock>,
    pub script_host: ScriptHost,
    /// How HTTP request events are sent (the engine's default otherwise).
    pub outbound: Option<Arc<dyn Outbound>>,
    /// The SMTP server mail events send through, at first (the window's
    /// Settings change it later: [`Runtime::smtp`]); [`smtp_from_env`]
    /// reads `FLOWDESK_SMTP_URL`.
    pub smtp: Result<Option<SmtpSettings>, SmtpSettingsError>,
    /// Sends mail in place of the runtime's [`SmtpMailer`] (tests).
    pub mailer: Option<Arc<dyn Mailer>>,
    /// Test hook (see `engine::HookPoint`).
    pub hook: Option<Hook>,
    pub report: Option<TickReport>,
}

impl Default for RuntimeOptions {
    fn default() -> RuntimeOptions {
        RuntimeOptions {
            durability: Durability::Full,
            busy_timeout: crate::store::BUSY_TIMEOUT,
            ticking: Ticking::Beat,
            tick_period: TICK_PERIOD,
            engine: EngineOptions::default(),
            clock: Arc::new(SystemClock),
            script_host: ScriptHost::default(),
            outbound: None,
            smtp: Ok(None),
            mailer: None,
            hook: None,
            report: None,
        }
    }
}

impl std::fmt::Debug for RuntimeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeOptions")
            .field("durability", &self.durability)
            .field("busy_timeout", &self.busy_timeout)
            .field("ticking", &self.ticking)
            .field("tick_period", &self.tick_period)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot start the runtime's ticker: {0}")]
    Ticker(std::io::Error),
    #[error(
        "a tick every {} ms cannot keep claims of {lease_ms} ms alive: tick at least twice per lease",
        .tick.as_millis()
    )]
    TickTooSlow { tick: Duration, lease_ms: Millis },
}

impl From<EngineError> for RuntimeError {
    fn from(err: EngineError) -> RuntimeError {
        RuntimeError::Open(OpenError::Storage(err))
    }
}

impl From<RuntimeError> for EngineError {
    fn from(err: RuntimeError) -> EngineError {
        match err {
            RuntimeError::Open(err) => err.into(),
            other => EngineError::Internal(other.to_string()),
        }
    }
}

/// A database opened for a front end: its engine, its tokens, its ticker.
/// Closing (or dropping) stops the ticker and removes the runner's row.
pub struct Runtime {
    shared: Arc<Shared>,
    ticker: Mutex<Option<Ticker>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("path", &self.shared.engine.store().path())
            .field("runner", &self.shared.engine.runner())
            .finish()
    }
}

impl Runtime {
    /// Opens the database at `path`, creating it if there is none (the
    /// window, `serve` and `deploy` may be the first to use a database).
    pub fn open(path: &Path, options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let store = SqliteStore::open(path, options.durability)?;
        store.set_busy_timeout(options.busy_timeout)?;
        Runtime::over(store, options)
    }

    /// Opens a database that must exist ([`OpenError::Missing`] otherwise),
    /// for the commands that read or act on what it holds.
    pub fn open_existing(path: &Path, options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let store = SqliteStore::open_existing(path, options.durability)?;
        store.set_busy_timeout(options.busy_timeout)?;
        Runtime::over(store, options)
    }

    fn over(store: SqliteStore, options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let lease_ms = options.engine.lease_ms;
        let tick_ms = Millis::try_from(options.tick_period.as_millis()).unwrap_or(Millis::MAX);
        if options.ticking != Ticking::Manual && tick_ms.saturating_mul(2) > lease_ms {
            return Err(RuntimeError::TickTooSlow { tick: options.tick_period, lease_ms });
        }
        // The engine names itself a random runner, which the runtime beats for.
        let mut engine =
            Engine::with_options(store, options.engine.clone(), options.script_host, options.clock.clone());
        if let Some(outbound) = options.outbound {
            engine = engine.with_outbound(outbound);
        }
        if let Some(hook) = options.hook {
            engine = engine.with_hook(hook);
        }
        let smtp = Arc::new(SmtpMailer::new(options.smtp));
        engine = engine.with_mailer(options.mailer.unwrap_or_else(|| smtp.clone()));
        let shared = Arc::new(Shared {
            smtp,
            engine: Arc::new(engine),
            started_at: options.clock.now(),
            clock: options.clock,
            lease_ms,
            host: whoami::hostname().unwrap_or_default(),
            registered: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            timers: Mutex::new(TimerTicking::default()),
            report: options.report.unwrap_or_else(|| Arc::new(|_| {})),
        });
        let ticker = match options.ticking {
            Ticking::Manual => None,
            ticking => Some(Ticker::start(&shared, ticking, options.tick_period).map_err(RuntimeError::Ticker)?),
        };
        Ok(Runtime { shared, ticker: Mutex::new(ticker) })
    }

    /// The engine, for every call a front end makes.
    pub fn engine(&self) -> &Arc<RuntimeEngine> {
        &self.shared.engine
    }

    /// The SMTP server this runtime's mail events send through: the
    /// window's Settings read and change it here.
    pub fn smtp(&self) -> &SmtpMailer {
        &self.shared.smtp
    }

    /// This runtime's name in the claims it makes and in its heartbeats.
    pub fn runner(&self) -> RunnerId {
        self.shared.engine.runner()
    }

    pub fn path(&self) -> &Path {
        self.shared.engine.store().path()
    }

    /// One tick now, on the caller's thread, whatever [`Ticking`] says:
    /// beats if the engine runs outside work, takes over the instances
    /// whose runner stopped, then fires the timers due now. Returns the
    /// instances taken over, where each now stands.
    pub fn tick(&self) -> Result<Vec<Progress>, EngineError> {
        self.shared.beat()?;
        let recovered = self.shared.recover()?;
        self.fire_due()?;
        Ok(recovered)
    }

    /// Fires every timer due now, oldest first (what a host's ticker does
    /// every [`TIMER_PERIOD`], and `flowdesk timers run` once), until none
    /// is left or the runtime closes.
    pub fn fire_due(&self) -> Result<FiringRound, EngineError> {
        self.shared.fire_due()
    }

    /// Whether this runtime's ticker fires timers, and when it last looked
    /// and fired (the window's status bar says it).
    pub fn timer_ticking(&self) -> TimerTicking {
        *self.shared.timers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the ticker and removes the runner's row, which `drop` also does.
    pub fn close(self) {}

    // ----- the HTTP API's tokens ---------------------------------------------

    /// Saves a new token (its hash, never its secret); returns its id.
    pub fn create_token(&self, token: &NewApiToken<'_>) -> Result<i64, EngineError> {
        self.shared.engine.store().create_token(token)
    }

    /// Every token, revoked ones included, oldest first.
    pub fn tokens(&self) -> Result<Vec<ApiToken>, EngineError> {
        self.shared.engine.store().tokens()
    }

    /// Revokes a token: it stops working at once, and stays listed.
    pub fn revoke_token(&self, id: i64, by: &str, at: Millis) -> Result<(), TokenError> {
        self.shared.engine.store().revoke_token(id, by, at)
    }

    /// The user a live token acts as, looked up by the token's hash.
    pub fn token_user(&self, hash: &str) -> Result<Option<String>, EngineError> {
        self.shared.engine.store().token_user(hash)
    }

    // ----- benchmarks ----------------------------------------------------------

    /// Writes `count` synthetic instances of a deployed version (see
    /// `store::synthetic`), for benchmarks of large databases.
    pub fn load_synthetic_instances(
        &self,
        process: &str,
        version: u32,
        count: usize,
        now: Millis,
    ) -> Result<SyntheticLoad, EngineError> {
        self.shared.engine.store().load_synthetic_instances(process, version, count, now)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        if let Some(ticker) = self.ticker.get_mut().unwrap_or_else(PoisonError::into_inner).take() {
            ticker.stop();
        }
        if self.shared.registered.load(Ordering::SeqCst)
            && let Err(err) = self.shared.engine.store().forget_runner(self.runner())
        {
            // The row then runs out on its own, one lease from its last beat.
            (self.shared.report)(TickEvent::BeatFailed(err));
        }
    }
}

/// What the runtime and its ticker's threads share.
struct Shared {
    engine: Arc<RuntimeEngine>,
    /// Where mail events' mail goes (unless a test gave its own mailer).
    smtp: Arc<SmtpMailer>,
    clock: Arc<dyn Clock>,
    lease_ms: Millis,
    host: String,
    started_at: Millis,
    /// The runner's row has been written (and is removed on close).
    registered: AtomicBool,
    /// Closing: recovery takes nothing more over and ends where it is.
    stopping: AtomicBool,
    /// Where the firing of timers stands (`Runtime::timer_ticking`).
    timers: Mutex<TimerTicking>,
    report: TickReport,
}

impl Shared {
    /// Writes the runner's row if the engine runs outside work now: each
    /// beat keeps its claims for one more lease. Otherwise nothing is
    /// written, and claims no thread works on any more (it died) run out.
    fn beat(&self) -> Result<(), EngineError> {
        if !self.engine.running_outside() {
            return Ok(());
        }
        let now = self.clock.now();
        self.engine.store().beat_runner(&RunnerBeat {
            id: self.engine.runner(),
            host: self.host.clone(),
            pid: std::process::id(),
            started_at: self.started_at,
            beat_at: now,
            expires_at: now.saturating_add(self.lease_ms),
        })?;
        self.registered.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// One round of recovery, then forgets runners that stopped beating a
    /// lease ago or more.
    fn recover(&self) -> Result<Vec<Progress>, EngineError> {
        let recovered = self.engine.recover_while(&|| !self.stopping.load(Ordering::SeqCst))?;
        let before = self.clock.now().saturating_sub(self.lease_ms);
        self.engine.store().forget_silent_runners(before)?;
        Ok(recovered)
    }

    fn fire_due(&self) -> Result<FiringRound, EngineError> {
        let looked_at = self.clock.now();
        let round = self.engine.fire_due(&|| !self.stopping.load(Ordering::SeqCst))?;
        let mut timers = self.timers.lock().unwrap_or_else(PoisonError::into_inner);
        timers.looked_at = Some(looked_at);
        if round.fired > 0 {
            timers.fired = Some((self.clock.now(), round.fired));
        }
        Ok(round)
    }

    /// Says whether the timers thread runs.
    fn timers_running(&self, running: bool) {
        self.timers.lock().unwrap_or_else(PoisonError::into_inner).running = running;
    }

    fn fire_reporting(&self) {
        match self.fire_due() {
            Ok(round) if round.fired > 0 || !round.failed.is_empty() => (self.report)(TickEvent::TimersFired(round)),
            Ok(_) => {}
            Err(err) => (self.report)(TickEvent::FiringFailed(err)),
        }
    }

    fn beat_reporting(&self) {
        if let Err(err) = self.beat() {
            (self.report)(TickEvent::BeatFailed(err));
        }
    }

    fn recover_reporting(&self) {
        match self.recover() {
            Ok(recovered) => recovered.into_iter().for_each(|progress| (self.report)(TickEvent::Recovered(progress))),
            Err(err) => (self.report)(TickEvent::RecoveryFailed(err)),
        }
    }
}

/// The ticker's threads: one that beats every period and, in a host, asks
/// the second to run a round of recovery, which may take long; and in a
/// host a third that fires timers.
struct Ticker {
    /// Dropped to wake the beating thread and end it.
    wake: Option<mpsc::Sender<()>>,
    beating: Finishing,
    recovering: Option<Finishing>,
    /// Dropped to wake the timers' thread and end it.
    wake_timers: Option<mpsc::Sender<()>>,
    firing: Option<Finishing>,
}

/// Held by the timers thread: says it no longer runs when dropped, as the
/// thread ends or unwinds.
struct Running(Arc<Shared>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.timers_running(false);
    }
}

/// A thread that says when it has ended, so that stopping can wait for it
/// a bounded time.
struct Finishing {
    ended: mpsc::Receiver<()>,
    thread: JoinHandle<()>,
}

impl Finishing {
    fn spawn(name: &str, stack: Option<usize>, work: impl FnOnce() + Send + 'static) -> std::io::Result<Finishing> {
        let (told, ended) = mpsc::channel::<()>();
        let mut builder = std::thread::Builder::new().name(name.to_owned());
        if let Some(stack) = stack {
            builder = builder.stack_size(stack);
        }
        let thread = builder.spawn(move || {
            work();
            let _ = told.send(());
        })?;
        Ok(Finishing { ended, thread })
    }

    /// Waits up to [`STOP_GRACE`] for the thread; past that, leaves it.
    fn wait(self) {
        // Told, or its sender gone (a panic): either way it has ended.
        if !matches!(self.ended.recv_timeout(STOP_GRACE), Err(RecvTimeoutError::Timeout)) {
            let _ = self.thread.join();
        }
    }
}

impl Ticker {
    fn start(shared: &Arc<Shared>, ticking: Ticking, period: Duration) -> std::io::Result<Ticker> {
        // Rounds are asked for through a channel of one: a round asked for
        // while one runs is run once after it, never queued up.
        let (rounds, recovering) = if ticking == Ticking::Host {
            let (ask, asked) = mpsc::sync_channel::<()>(1);
            let _ = ask.try_send(());
            let shared = shared.clone();
            // Recovered instances run their scripts on this thread.
            let stack = Some(crate::model::script::SCRIPT_THREAD_STACK);
            let thread = Finishing::spawn("flowdesk-recovery", stack, move || {
                while asked.recv().is_ok() && !shared.stopping.load(Ordering::SeqCst) {
                    shared.recover_reporting();
                }
            })?;
            (Some(ask), Some(thread))
        } else {
            (None, None)
        };
        let (wake_timers, firing) = if ticking == Ticking::Host {
            let (wake, woken) = mpsc::channel::<()>();
            // Firings run scripts (a repeat, the run after a deadline) here.
            let stack = Some(crate::model::script::SCRIPT_THREAD_STACK);
            // Running from here, so that the window says so from its first frame.
            shared.timers_running(true);
            // Not running once the thread ends, however it ends (a panic too).
            let running = Running(shared.clone());
            let thread = Finishing::spawn("flowdesk-timers", stack, move || {
                let shared = running.0.clone();
                let _running = running;
                loop {
                    shared.fire_reporting();
                    if !matches!(woken.recv_timeout(TIMER_PERIOD), Err(RecvTimeoutError::Timeout)) {
                        break;
                    }
                }
            });
            // A thread that could not start dropped its `Running` with the closure.
            let thread = thread?;
            (Some(wake), Some(thread))
        } else {
            (None, None)
        };
        let (wake, woken) = mpsc::channel::<()>();
        let shared = shared.clone();
        let beating = Finishing::spawn("flowdesk-ticker", None, move || {
            // Woken (or its sender dropped) only to end.
            while let Err(RecvTimeoutError::Timeout) = woken.recv_timeout(period) {
                shared.beat_reporting();
                if let Some(rounds) = &rounds {
                    let _ = rounds.try_send(());
                }
            }
            // Dropping `rounds` here ends the recovery thread after its round.
        })?;
        Ok(Ticker { wake: Some(wake), beating, recovering, wake_timers, firing })
    }

    fn stop(mut self) {
        drop(self.wake.take());
        drop(self.wake_timers.take());
        self.beating.wait();
        if let Some(recovering) = self.recovering {
            recovering.wait();
        }
        if let Some(firing) = self.firing {
            firing.wait();
        }
    }
}

/// The SMTP server the environment names: `FLOWDESK_SMTP_URL`
/// (`smtp://[user@]host[:port][?tls=starttls|tls|none][&from=address]`, see
/// [`SmtpSettings::from_url`]) and its password, `FLOWDESK_SMTP_PASSWORD`
/// (never in the URL). `Ok(None)` when the URL is not set.
pub fn smtp_from_env() -> Result<Option<SmtpSettings>, SmtpSettingsError> {
    let Some(url) = std::env::var("FLOWDESK_SMTP_URL").ok().filter(|u| !u.trim().is_empty()) else {
        return Ok(None);
    };
    SmtpSettings::from_url(&url, smtp_password_from_env()).map(Some)
}

/// `FLOWDESK_SMTP_PASSWORD`: the SMTP password, for the server of
/// `FLOWDESK_SMTP_URL` or of the window's Settings.
pub fn smtp_password_from_env() -> Option<SmtpPassword> {
    std::env::var("FLOWDESK_SMTP_PASSWORD").ok().filter(|p| !p.is_empty()).map(SmtpPassword::new)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, AtomicUsize};

    use super::*;
    use crate::engine::{HookPoint, InstanceStatus};
    use crate::model::ProcessDraft;
    use crate::model::script::rhai;

    struct TestClock(AtomicI64);

    impl Clock for TestClock {
        fn now(&self) -> Millis {
            self.0.load(Ordering::SeqCst)
        }
    }

    /// An asynchronous event whose script calls out (`tell`), so that it
    /// runs after its claim is committed.
    const CALLING_OUT: &str = r#"{
      "name": "out",
      "fields": [],
      "activities": [{ "id": "a", "name": "A", "start": true, "events": [
        { "kind": "server_event", "name": "Call", "synchronous": false, "script": "tell();" } ] }]
    }"#;

    fn options(clock: Arc<TestClock>, tell: impl Fn() + Send + Sync + 'static, hook: Option<Hook>) -> RuntimeOptions {
        let tell = Arc::new(tell);
        let host = ScriptHost::default().with_extension(Arc::new(move |engine: &mut rhai::Engine| {
            let tell = tell.clone();
            engine.register_fn("tell", move || tell());
        }));
        RuntimeOptions {
            durability: Durability::Normal,
            ticking: Ticking::Manual,
            clock,
            script_host: host,
            hook,
            ..RuntimeOptions::default()
        }
    }

    fn deploy(runtime: &Runtime) {
        let draft = ProcessDraft::from_json(CALLING_OUT, "test").unwrap();
        runtime.engine().deploy("ops", &draft).unwrap();
    }

    /// A runtime writes a heartbeat only while one of its threads runs an
    /// instance's outside work, good for one lease from the beat, and
    /// removes it when it closes.
    #[test]
    fn a_runtime_beats_only_while_it_runs_outside_work_and_removes_its_row_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("beats.db");
        let clock = Arc::new(TestClock(AtomicI64::new(1_000)));
        let (entered, inside) = mpsc::channel::<()>();
        let (release, released) = mpsc::channel::<()>();
        let (entered, released) = (Mutex::new(entered), Mutex::new(released));
        let tell = move || {
            entered.lock().unwrap().send(()).unwrap();
            released.lock().unwrap().recv().unwrap();
        };
        let runtime = Arc::new(Runtime::open(&path, options(clock.clone(), tell, None)).unwrap());
        let runner = runtime.runner();
        deploy(&runtime);
        runtime.tick().unwrap();
        assert_eq!(runtime.engine().store().runner(runner).unwrap(), None, "no outside work, no beat");

        let starting = std::thread::spawn({
            let runtime = runtime.clone();
            move || runtime.engine().start("ops", "out", "", &[]).map(|progress| progress.status)
        });
        inside.recv().unwrap();
        clock.0.store(5_000, Ordering::SeqCst);
        assert_eq!(runtime.tick().unwrap(), [], "its own live claim is not taken over");
        let beat = runtime.engine().store().runner(runner).unwrap().expect("a heartbeat while the script runs");
        let lease = EngineOptions::default().lease_ms;
        assert_eq!((beat.beat_at, beat.expires_at, beat.pid), (5_000, 5_000 + lease, std::process::id()));

        release.send(()).unwrap();
        assert_eq!(starting.join().unwrap().unwrap(), InstanceStatus::Active);
        clock.0.store(9_000, Ordering::SeqCst);
        runtime.tick().unwrap();
        let after = runtime.engine().store().runner(runner).unwrap().expect("the row stays until closing");
        assert_eq!(after.beat_at, 5_000, "no beat once the work has ended");

        let runtime = Arc::into_inner(runtime).expect("the thread has let go");
        runtime.close();
        let reopened = Runtime::open(&path, options(clock, || {}, None)).unwrap();
        assert_eq!(reopened.engine().store().runner(runner).unwrap(), None, "closing removed the row");
    }

    /// A thread that dies (a panic) in the middle of an instance's outside
    /// work leaves a claim nobody works on: its runtime, alive, does not
    /// beat for it, and takes it over itself once its lease has run out.
    #[test]
    fn a_claim_whose_thread_died_is_not_beaten_for_and_is_taken_over_once_it_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(TestClock(AtomicI64::new(1_000)));
        let reached = Arc::new(AtomicUsize::new(0));
        let hook: Hook = Arc::new(move |point| {
            if point == HookPoint::BeforeAsyncScript && reached.fetch_add(1, Ordering::SeqCst) == 0 {
                panic!("the script's thread dies");
            }
        });
        let runtime = Runtime::open(&dir.path().join("died.db"), options(clock.clone(), || {}, Some(hook))).unwrap();
        deploy(&runtime);
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            runtime.engine().start("ops", "out", "", &[]).map(drop)
        }));
        assert!(died.is_err());
        assert_eq!(runtime.engine().instance("ops", 1).unwrap().summary.status, InstanceStatus::Running);

        let lease = EngineOptions::default().lease_ms;
        clock.0.store(1_000 + lease, Ordering::SeqCst);
        assert_eq!(runtime.tick().unwrap(), [], "the claim's lease still holds");
        assert_eq!(runtime.engine().store().runner(runtime.runner()).unwrap(), None, "nothing was beaten for");
        clock.0.store(1_000 + lease + 1, Ordering::SeqCst);
        let recovered = runtime.tick().unwrap();
        assert_eq!(
            recovered.iter().map(|p| (p.instance_id, p.status)).collect::<Vec<_>>(),
            [(1, InstanceStatus::Active)]
        );
    }

    /// The window's status bar says whether timers fire and when they last
    /// did: a host's ticker runs from its start; another runtime's fire only
    /// when asked, and say when they looked and when they fired.
    #[test]
    fn a_runtime_says_whether_its_ticker_fires_timers_and_when_it_last_did() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("timers.db");
        let clock = Arc::new(TestClock(AtomicI64::new(1_000)));
        let runtime = Runtime::open(&path, options(clock.clone(), || {}, None)).unwrap();
        let waiting = r#"{ "name": "wait", "fields": [], "activities": [{ "id": "a", "name": "A", "start": true,
            "events": [{ "kind": "timer", "name": "Wait an hour", "after": "1h" }] }] }"#;
        runtime.engine().deploy("ops", &ProcessDraft::from_json(waiting, "test").unwrap()).unwrap();
        runtime.engine().start("ops", "wait", "", &[]).unwrap();
        assert_eq!(runtime.timer_ticking(), TimerTicking::default(), "no ticker, nothing looked for yet");

        clock.0.store(2_000, Ordering::SeqCst);
        runtime.fire_due().unwrap();
        assert_eq!(runtime.timer_ticking(), TimerTicking { running: false, looked_at: Some(2_000), fired: None });
        clock.0.store(1_000 + 3_600_000, Ordering::SeqCst);
        assert_eq!(runtime.fire_due().unwrap().fired, 1);
        let fired = Some((1_000 + 3_600_000, 1));
        assert_eq!(runtime.timer_ticking(), TimerTicking { running: false, looked_at: fired.map(|f| f.0), fired });

        let host = RuntimeOptions { ticking: Ticking::Host, ..options(clock, || {}, None) };
        let host = Runtime::open(&path, host).unwrap();
        assert!(host.timer_ticking().running, "a host's ticker runs from its start");
    }

    #[test]
    fn a_ticker_too_slow_for_the_lease_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let options = RuntimeOptions {
            ticking: Ticking::Beat,
            tick_period: Duration::from_secs(20),
            ..RuntimeOptions::default()
        };
        let refused = Runtime::open(&dir.path().join("slow.db"), options);
        assert!(matches!(refused, Err(RuntimeError::TickTooSlow { lease_ms: 30_000, .. })), "{refused:?}");
    }
}
