//! The command line: a contract that scripts and other systems call.
//!
//! Output on stdout is for the caller (ids, tables, `--json`); every refusal is
//! one line on stderr saying what and why, with exit code 1. Usage errors exit
//! with 2 (clap's convention). The CLI is thin: it parses, calls the engine,
//! and prints.

mod bench;
mod bpmn;
mod bulk;
mod find;
mod output;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::io::Write;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::engine::{AuditAction, BulkAction, EngineError, FieldInput, InstanceFilter, InstanceStatus, ItemFilter};
use crate::model::{ProcessDraft, Right, Severity};
use crate::runtime::{Runtime, RuntimeEngine, RuntimeError, RuntimeOptions, TickEvent, Ticking};
use crate::store::{Durability, OpenError};

#[derive(Debug, Parser)]
#[command(
    name = "flowdesk",
    version,
    about = "A process designer and monitor with an embedded workflow engine",
    long_about = "flowdesk runs process definitions with server events: synchronous ones run their script and \
                  complete; asynchronous ones run their script and wait for a callback that finishes their server \
                  item by serial number."
)]
pub struct Cli {
    /// Database file (default: `$FLOWDESK_DB`, else `<user data dir>/flowdesk/flowdesk.db`)
    #[arg(long, global = true, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Act as this user [default: $FLOWDESK_USER, else the operating-system user]
    #[arg(long, global = true, value_name = "NAME", value_parser = parse_user)]
    pub user: Option<String>,

    /// Commit durability: `full` fsyncs every commit, `normal` only at checkpoints
    #[arg(long, global = true, value_name = "MODE", default_value = "full", value_parser = parse_durability)]
    pub sync: Durability,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the flowdesk window (the default when no command is given)
    Gui {
        /// A process file to open in the designer
        file: Option<PathBuf>,
        /// The view to open on
        #[arg(long, value_parser = parse_view, default_value = "designer")]
        view: crate::gui::AppView,
    },
    /// Check a process file and list every problem with where it is
    Validate { file: PathBuf },
    /// Deploy a process file, or the processes of a BPMN 2.0 file (`.bpmn`), as the next version
    Deploy {
        file: PathBuf,
        /// Of a BPMN file, only the process with this id
        #[arg(long, value_name = "ID")]
        process: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Import a BPMN 2.0 file as a process file, with a report of what became of each element
    #[command(long_about = "Import a BPMN 2.0 file (Camunda Modeler, bpmn.io, Signavio, …) as a flowdesk process \
                            file, with a report naming every element that was imported differently or not at \
                            all (kind, id, name and why). A file with several executable processes gives one \
                            file each, named OUT with the process id before `.process.json`. Exit 0 when \
                            every imported process is valid, 1 when one is not (it is written all the same: \
                            the report and the problems say what to fix), 2 for a usage error.")]
    Import {
        /// The BPMN file
        file: PathBuf,
        /// Where to write the process file
        #[arg(short = 'o', long = "output", value_name = "OUT.process.json")]
        output: PathBuf,
        /// Only the process with this id (also one that is not executable)
        #[arg(long, value_name = "ID")]
        process: Option<String>,
        /// The report and the problems as JSON
        #[arg(long)]
        json: bool,
    },
    /// Export a process file, or a deployed version with its rights, as BPMN 2.0 with its diagram
    Export {
        /// The process file
        #[arg(required_unless_present = "process", conflicts_with = "process")]
        file: Option<PathBuf>,
        /// A deployed process instead, with the rights users hold on it
        #[arg(long, value_name = "NAME")]
        process: Option<String>,
        /// Of `--process`, this version rather than the default one
        #[arg(long, value_name = "N", requires = "process")]
        version: Option<u32>,
        /// Where to write the BPMN file
        #[arg(short = 'o', long = "output", value_name = "OUT.bpmn")]
        output: PathBuf,
    },
    /// List deployed processes
    Processes {
        #[arg(long)]
        json: bool,
    },
    /// Start an instance of a process; prints the new instance id
    Start {
        process: String,
        #[arg(long, default_value = "")]
        folio: String,
        #[command(flatten)]
        data: DataArgs,
        #[arg(long)]
        json: bool,
    },
    /// List instances
    Instances {
        #[arg(long)]
        process: Option<String>,
        #[arg(long, value_parser = parse_status)]
        status: Option<InstanceStatus>,
        /// Folio text or instance id to look for
        #[arg(long)]
        search: Option<String>,
        /// At most this many rows (newest first; default 200, or every row with --csv); 0 for all
        #[arg(long)]
        limit: Option<usize>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        find: find::FindArgs,
    },
    /// Show an instance: status, data fields, pending serials, audit trail
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
        /// Only the audit trail's lines of this kind ("Server item finished",
        /// any case; again for more kinds), as the monitor's Kind box
        #[arg(long = "kind", value_name = "KIND", value_parser = audit_kind)]
        kinds: Vec<AuditAction>,
    },
    /// List server items: pending ones, oldest first
    Items {
        /// Include finished and cancelled items
        #[arg(long)]
        all: bool,
        /// Only items with a deadline or timer that is due and has not fired (their
        /// instance is stopped or in error, or nothing has run the timers)
        #[arg(long)]
        overdue: bool,
        #[arg(long)]
        json: bool,
    },
    /// Finish a server item by serial (a callback), optionally setting data fields; or many
    /// (--serials FILE, --process, --status, --search, --ids)
    #[command(long_about = "Finish a server item by serial (a callback), optionally setting data fields.\n\n\
                            Bulk: with --serials FILE (one serial a line, `-` for standard input), or --process, \
                            --search (pending items matching), --status or --ids (the pending items of the \
                            instances matching), every item selected is finished with the same --set values, \
                            each as the single finish would be (its own refusal, its own transaction). \
                            --dry-run prints how many and which items, and which would be refused with why, \
                            changing nothing. The report is a summary (\"9,998 done, 2 refused\") and each \
                            refusal with its reason; --json per item. \
                            Exit 0 when every item was finished, 1 when any was refused or failed.")]
    Finish {
        #[arg(required_unless_present = "selection", conflicts_with = "selection")]
        serial: Option<String>,
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        select: bulk::FinishSelectArgs,
        /// Bulk: print how many and which items would be finished, and change nothing
        #[arg(long, requires = "selection")]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// Grant rights on a process: admin, start, view, view-participate, server-event
    Grant {
        process: String,
        /// The user who receives the rights
        #[arg(value_name = "USER")]
        target: String,
        #[arg(required = true, value_parser = parse_right)]
        rights: Vec<Right>,
    },
    /// Revoke rights on a process
    Revoke {
        process: String,
        /// The user who loses the rights
        #[arg(value_name = "USER")]
        target: String,
        #[arg(required = true, value_parser = parse_right)]
        rights: Vec<Right>,
    },
    /// Show who holds which rights on a process
    Rights { process: String },
    /// Retry the failed event of an instance in Error; or of many (--process, --status,
    /// --search, --ids; see --help)
    #[command(long_about = BULK_ABOUT)]
    Retry(bulk::InstanceArgs),
    /// Stop an instance; or many (--process, --status, --search, --ids; see --help)
    #[command(long_about = BULK_ABOUT)]
    Stop(bulk::InstanceArgs),
    /// Resume a stopped instance; or many (--process, --status, --search, --ids; see --help)
    #[command(long_about = BULK_ABOUT)]
    Resume(bulk::InstanceArgs),
    /// Move an instance to an activity (by id or name): `goto ID ACTIVITY`; or many:
    /// `goto --process … ACTIVITY`
    #[command(long_about = BULK_ABOUT)]
    Goto {
        /// ID ACTIVITY, or only ACTIVITY with a selection
        #[arg(required = true, num_args = 1..=2, value_name = "ID ACTIVITY")]
        args: Vec<String>,
        #[command(flatten)]
        select: bulk::SelectArgs,
        #[command(flatten)]
        output: bulk::BulkOutput,
    },
    /// Run on the instances whose runner stopped mid-request or mid-script
    #[command(long_about = "Run on the instances whose runner stopped in the middle of an HTTP request or an \
                            asynchronous script (killed, crashed, power lost): the request is sent again, the \
                            script run again, and each instance runs on as any run does, until it waits, ends, \
                            fails or is stopped. A runner is taken for stopped once its claim (30 s from its \
                            last step, plus the request's timeout) and its last heartbeat (written every 5 s \
                            while it runs) have run out; until then its instance is left alone, and this says \
                            until when. `flowdesk serve` and the window do this on their own, in the \
                            background; other commands only say when an instance waits for it.")]
    Recover,
    /// Measure the engine on a fresh temporary database: callback throughput,
    /// finish latency under a steady rate, callbacks through the HTTP API, the
    /// time to reopen, or the schema's ceiling
    Bench {
        #[command(subcommand)]
        kind: bench::BenchCommand,
    },
    /// Time the designer's frames on a large process, headless, and print the figures
    BenchDesigner {
        #[arg(long, default_value_t = 500)]
        activities: usize,
        #[arg(long, default_value_t = 1000)]
        lines: usize,
        /// Frames per scenario
        #[arg(long, default_value_t = 300)]
        frames: usize,
    },
    /// Time the monitor's frames and the time to its first rows on a database of
    /// a million instances, headless, and print the figures
    #[command(long_about = "Time the monitor's frames and the time to its first rows on a database of a million \
                            instances, headless, and print the figures.\n\n\
                            The database is the callback sample deployed by the acting user (default `bench`) \
                            and filled with synthetic instances. Without --db it is built in a temporary folder \
                            and deleted afterwards (loading a million takes about 20 s). With an explicit --db \
                            PATH ($FLOWDESK_DB is not used) it is kept: a database that already holds at least \
                            N instances the user can see is reused as it is, so repeated runs skip the loading; \
                            one with fewer is topped up.\n\n\
                            With --live it measures instead how soon the open monitor shows what another process \
                            commits: the flowdesk binary, run again as that process, starts instances and finishes \
                            their items, and each finish is timed until the monitor's view shows it; then the \
                            process's CPU over a few idle seconds. It prints `engine=flowdesk bench=live n=… \
                            p50_ms=… p95_ms=… idle_cpu_pct=…`.")]
    BenchMonitor {
        /// Instances in the database
        #[arg(long, short = 'n', default_value_t = 1_000_000)]
        instances: usize,
        /// Frames per scenario
        #[arg(long, default_value_t = 300)]
        frames: usize,
        /// Time the changes another process makes until the monitor shows them
        #[arg(long)]
        live: bool,
        /// With --live: how many items the other process finishes
        #[arg(long, default_value_t = 100)]
        finishes: usize,
        /// With --live: seconds over which the idle CPU is measured
        #[arg(long, default_value_t = 5.0)]
        idle_seconds: f64,
    },
    /// The other process of `bench-monitor --live` (orders on standard input)
    #[command(hide = true)]
    BenchLiveWriter,
    /// Set data fields of an instance by hand (needs Admin)
    Set {
        id: i64,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Serve the HTTP API (callbacks, starts, reads) until interrupted
    #[command(long_about = "Serve the HTTP API until interrupted (Ctrl-C or SIGTERM).\n\n\
                            Every call needs a bearer token (`flowdesk token create USER`) and acts as that \
                            user, with that user's process rights. The API is described at \
                            /api/v1/openapi.json. The default address answers this machine only; listening on \
                            another interface exposes the API to the network without TLS, so put a TLS proxy \
                            in front of it there.")]
    Serve {
        /// Address and port to listen on (port 0 picks a free one)
        #[arg(long, value_name = "ADDRESS:PORT", default_value = crate::net::DEFAULT_LISTEN)]
        listen: std::net::SocketAddr,
    },
    /// Create, list and revoke the HTTP API's bearer tokens
    Token {
        #[command(subcommand)]
        action: TokenCommand,
    },
    /// Fire the timers that are due (escalations' deadlines, timer events)
    Timers {
        #[command(subcommand)]
        action: TimersCommand,
    },
}

/// The long help of the operator actions that have a bulk form.
const BULK_ABOUT: &str = "Act on one instance by id; or, with any of --process, --status, --search (a filter, \
                          as `flowdesk instances` takes it) or --ids FILE (one instance id a line, `-` for \
                          standard input), on every instance selected that the acting user sees, each as the \
                          single action would be: judged on its own status, the user's Admin right checked on \
                          its process, in its own transaction, recorded in its own trail. --dry-run prints how \
                          many and which instances, and which would be refused with why, changing nothing. The \
                          report is a summary (\"9,998 done, 2 refused\") and each refusal with its reason; \
                          --json per instance. Exit 0 when every \
                          instance selected was done (none selected included), 1 when any was refused or \
                          failed, 2 for a usage error.";

#[derive(Debug, Subcommand)]
pub enum TimersCommand {
    /// Fire every timer due now, oldest first, once, and exit
    #[command(long_about = "Fire every timer due now (escalations' deadlines, timer events' waits), oldest first, \
                            each in a transaction of its own, and exit. `flowdesk serve` and the window do this \
                            on their own all the time; this is for a cron job on a database nothing else runs \
                            on. Timers of stopped instances and instances in error wait for Resume or Retry. \
                            Several of these (or a serve) on one database never fire one timer twice.")]
    Run {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token that acts as USER; prints its secret, once
    Create {
        /// The user the token acts as (its process rights apply)
        #[arg(value_name = "USER", value_parser = parse_user)]
        target: String,
        /// What the token is for, to tell tokens apart ("billing system")
        #[arg(long, default_value = "")]
        label: String,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (their secrets are not stored and cannot be shown)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id: it stops working at once
    Revoke { id: i64 },
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Set a data field, FIELD=VALUE (repeatable)
    #[arg(long = "set", value_name = "FIELD=VALUE", value_parser = parse_assignment)]
    pub set: Vec<(String, String)>,
}

impl DataArgs {
    fn inputs(&self) -> Vec<(String, FieldInput)> {
        self.set.iter().map(|(field, value)| (field.clone(), FieldInput::Text(value.clone()))).collect()
    }
}

fn parse_assignment(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((field, value)) if !field.trim().is_empty() => Ok((field.trim().to_owned(), value.to_owned())),
        _ => Err(format!("expected FIELD=VALUE, got `{text}`")),
    }
}

fn parse_user(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() { Err("a user name cannot be empty".to_owned()) } else { Ok(name.to_owned()) }
}

fn parse_view(text: &str) -> Result<crate::gui::AppView, String> {
    match text {
        "designer" => Ok(crate::gui::AppView::Designer),
        "overview" => Ok(crate::gui::AppView::Overview),
        "monitor" => Ok(crate::gui::AppView::Monitor),
        "items" => Ok(crate::gui::AppView::Items),
        _ => Err(format!("expected designer, overview, monitor or items, got `{text}`")),
    }
}

fn parse_status(text: &str) -> Result<InstanceStatus, String> {
    text.parse().map_err(|e: crate::engine::instance::UnknownStatus| e.to_string())
}

fn parse_right(text: &str) -> Result<Right, String> {
    text.parse().map_err(|e: crate::model::rights::UnknownRight| e.to_string())
}

fn parse_durability(text: &str) -> Result<Durability, String> {
    match text {
        "full" => Ok(Durability::Full),
        "normal" => Ok(Durability::Normal),
        _ => Err(format!("expected full or normal, got `{text}`")),
    }
}

/// The database used when neither `--db` nor `$FLOWDESK_DB` says otherwise.
pub fn default_db_path() -> PathBuf {
    directories::BaseDirs::new()
        .map(|dirs| dirs.data_dir().join("flowdesk").join("flowdesk.db"))
        .unwrap_or_else(|| PathBuf::from("flowdesk.db"))
}

/// The acting user when neither `--user` nor `$FLOWDESK_USER` says otherwise.
pub fn default_user() -> String {
    whoami::username().unwrap_or_else(|_| "unknown".to_owned())
}

impl Cli {
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .or_else(|| std::env::var_os("FLOWDESK_DB").filter(|v| !v.is_empty()).map(PathBuf::from))
            .unwrap_or_else(default_db_path)
    }

    pub fn acting_user(&self) -> String {
        self.user
            .clone()
            .or_else(|| std::env::var("FLOWDESK_USER").ok().filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(default_user)
    }
}

/// Why a command did not succeed: refused (exit 1) or failed (exit 1 too, but
/// worded as a failure of flowdesk rather than of the request).
enum Failure {
    Refused(EngineError),
    Other(anyhow::Error),
    /// Whoever read our output stopped reading (`flowdesk show 1 | head`):
    /// not an error, the work is done.
    OutputClosed,
}

impl From<EngineError> for Failure {
    fn from(err: EngineError) -> Failure {
        Failure::Refused(err)
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Failure {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Failure::OutputClosed
        } else {
            Failure::Other(anyhow::Error::new(err).context("cannot write the output"))
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(err: anyhow::Error) -> Failure {
        Failure::Other(err)
    }
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let gui = Command::Gui { file: None, view: crate::gui::AppView::Designer };
    let command = cli.command.as_ref().unwrap_or(&gui);
    match execute(&cli, command) {
        Ok(code) => code,
        Err(Failure::Refused(err)) => {
            eprintln!("flowdesk: {}", one_line(&err.to_string()));
            ExitCode::from(1)
        }
        Err(Failure::OutputClosed) => ExitCode::SUCCESS,
        Err(Failure::Other(err)) => {
            eprintln!("flowdesk: {}", one_line(&format!("{err:#}")));
            ExitCode::from(1)
        }
    }
}

/// A usage error clap cannot see (what a positional argument means depends
/// on the others): said on stderr, exit code 2 as clap's own.
fn usage(message: &str) -> ExitCode {
    eprintln!("flowdesk: {message}");
    ExitCode::from(2)
}

/// Refusals are one line on stderr; a multi-line message (a definition's
/// problems) is printed in full by the command itself before this.
fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

/// Opens the database for a command that reads or acts on what it holds:
/// a path with no database is refused, never made into a new, empty one.
/// It says on stderr which instances wait for recovery. No command does
/// recovery's work on the side: it can take as long as the instances' runs
/// (a loop of requests), and the command, even a `stop` meant for such an
/// instance, would wait that long. That is the work of `recover`, `serve`
/// and the window. The runtime only beats while the command runs an
/// instance's request itself ([`Ticking::Beat`]).
fn open_runtime(cli: &Cli) -> Result<Runtime, Failure> {
    let runtime = open_database(&cli.db_path(), cli.sync).map_err(refusal)?;
    // A database that cannot be read says so at the command's own call.
    if let Ok(ids) = runtime.engine().awaiting_recovery()
        && !ids.is_empty()
    {
        eprintln!("flowdesk: {}", awaiting_recovery_note(&ids));
    }
    Ok(runtime)
}

/// A missing database is the caller's mistake about the path; anything
/// else the database answered is a refusal.
fn refusal(err: RuntimeError) -> Failure {
    match err {
        RuntimeError::Open(OpenError::Storage(err)) => Failure::Refused(err),
        other => Failure::Other(anyhow::Error::new(other)),
    }
}

fn awaiting_recovery_note(ids: &[i64]) -> String {
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let (which, them) = match ids {
        [id] => (format!("instance {id} is Running but its runner has stopped"), "it"),
        _ => (format!("instances {} are Running but their runners have stopped", list.join(", ")), "them"),
    };
    format!(
        "{which} mid-request or mid-script; `flowdesk recover` runs {them} on (so do `flowdesk serve` and the window)"
    )
}

/// What `recover` says of an instance whose runner still holds it: a
/// runner that was killed a moment ago looks no different from one that
/// is alive until its claim has run out.
fn held_claim_note(id: i64, until: crate::engine::Millis) -> String {
    format!(
        "instance {id} is Running, held by its runner until {}; if that runner has stopped, recovery takes it over \
         after that",
        crate::engine::format_time(until)
    )
}

/// Opens the database for a command that may be the first to use it
/// (deploy), creating it if there is none.
fn create_runtime(cli: &Cli) -> Result<Runtime, Failure> {
    Runtime::open(&cli.db_path(), runtime_options(cli.sync, Ticking::Beat)).map_err(refusal)
}

/// Opens an existing database as every command but deploy and serve does.
/// `bench reopen` times this very function.
fn open_database(path: &Path, sync: Durability) -> Result<Runtime, RuntimeError> {
    Runtime::open_existing(path, runtime_options(sync, Ticking::Beat))
}

/// The runtime's options for a command: the SMTP server of
/// `FLOWDESK_SMTP_URL` (a malformed one fails each mail, saying why), the crash tests' kill hook when
/// `FLOWDESK_KILL_AT` asks for it, a clock moved by
/// `FLOWDESK_CLOCK_OFFSET_MS`, and a busy timeout set by
/// `FLOWDESK_BUSY_TIMEOUT_MS`.
fn runtime_options(sync: Durability, ticking: Ticking) -> RuntimeOptions {
    let mut options = RuntimeOptions {
        durability: sync,
        ticking,
        hook: kill_hook(),
        smtp: crate::runtime::smtp_from_env(),
        ..RuntimeOptions::default()
    };
    if let Some(offset) = clock_offset() {
        options.clock = std::sync::Arc::new(OffsetClock(offset));
    }
    if let Some(timeout) = busy_timeout() {
        options.busy_timeout = timeout;
    }
    options
}

/// `FLOWDESK_BUSY_TIMEOUT_MS=<n>`: how long this process's writes wait for
/// another program's write (30 s otherwise). It exists for the tests of a
/// busy database, which hold the write lock and would otherwise wait the
/// whole 30 s for the answer.
fn busy_timeout() -> Option<std::time::Duration> {
    let millis: u64 = std::env::var("FLOWDESK_BUSY_TIMEOUT_MS").ok()?.trim().parse().ok()?;
    Some(std::time::Duration::from_millis(millis))
}

/// `FLOWDESK_CLOCK_OFFSET_MS=<n>` moves this process's clock by n
/// milliseconds (negative: back). It exists for the tests of claims and
/// recovery, which move time instead of waiting for a claim to run out:
/// a runner killed with its clock an hour back left claims that ran out
/// an hour ago.
fn clock_offset() -> Option<crate::engine::Millis> {
    std::env::var("FLOWDESK_CLOCK_OFFSET_MS").ok()?.trim().parse().ok()
}

struct OffsetClock(crate::engine::Millis);

impl crate::engine::Clock for OffsetClock {
    fn now(&self) -> crate::engine::Millis {
        crate::engine::SystemClock.now().saturating_add(self.0)
    }
}

/// `FLOWDESK_KILL_AT=<point>[:<n>]` makes this process SIGKILL itself the n-th
/// time (default: first) it reaches a hook point. It exists for the crash tests,
/// which prove that a `kill -9` at any of these moments loses nothing.
fn kill_hook() -> Option<crate::engine::Hook> {
    let spec = std::env::var("FLOWDESK_KILL_AT").ok()?;
    let (name, nth) = match spec.split_once(':') {
        Some((name, n)) => (name.to_owned(), n.parse::<usize>().ok()?),
        None => (spec.clone(), 1),
    };
    let point = crate::engine::HookPoint::ALL.into_iter().find(|p| p.name() == name)?;
    let seen = std::sync::atomic::AtomicUsize::new(0);
    Some(std::sync::Arc::new(move |reached| {
        if reached == point && seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1 == nth {
            let pid = std::process::id().to_string();
            let _ = std::process::Command::new("kill").args(["-9", &pid]).status();
        }
    }))
}

fn load(file: &Path) -> Result<ProcessDraft, Failure> {
    ProcessDraft::load(file).context("cannot load the process file").map_err(Failure::Other)
}

fn execute(cli: &Cli, command: &Command) -> Result<ExitCode, Failure> {
    let user = cli.acting_user();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        Command::Gui { file, view } => {
            let options = crate::gui::GuiOptions { db_path: cli.db_path(), user, file: file.clone(), view: *view };
            crate::gui::run(options)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { file } => {
            let draft = load(file)?;
            let problems = crate::model::validate(&draft, &crate::model::ScriptHost::default());
            let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
            let warnings = problems.len() - errors;
            for problem in &problems {
                writeln!(out, "{problem}")?;
            }
            if errors > 0 {
                eprintln!("flowdesk: {} is not valid: {errors} error(s), {warnings} warning(s)", file.display());
                return Ok(ExitCode::from(1));
            }
            writeln!(out, "{}: valid, {warnings} warning(s)", file.display())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy { file, process, json } => {
            let drafts = if crate::model::bpmn::is_bpmn_path(file) {
                let imported = bpmn::read(file, process.as_deref())?;
                for entry in imported.report.entries() {
                    eprintln!("flowdesk: {entry}");
                }
                let mut drafts = Vec::new();
                for process in imported.processes {
                    for entry in process.report.entries() {
                        eprintln!("flowdesk: {} ({}): {entry}", process.draft.name, process.id);
                    }
                    drafts.push((process.draft, process.rights));
                }
                drafts
            } else {
                vec![(load(file)?, Vec::new())]
            };
            let runtime = create_runtime(cli)?;
            let engine = runtime.engine();
            for (draft, rights) in &drafts {
                deploy_one(engine, &user, draft, *json, &mut out)?;
                let said = bpmn::grant_imported(engine, &user, &draft.name, rights);
                for line in said {
                    // With --json, stdout is the JSON answer alone.
                    if *json {
                        eprintln!("flowdesk: {line}");
                    } else {
                        writeln!(out, "{line}")?;
                    }
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Import { file, output, process, json } => {
            bpmn::import(&mut out, file, output, process.as_deref(), *json)
        }
        Command::Export { file: Some(file), output, .. } => bpmn::export(&mut out, &load(file)?, &[], output),
        Command::Export { file: None, process, version, output } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            let process = process.as_deref().unwrap_or_default();
            let (version, compiled) = engine.version_definition(process, *version)?;
            let rights = engine.rights_on_process(process)?;
            let code = bpmn::export(&mut out, &compiled.draft, &rights, output)?;
            writeln!(out, "version {version}, {}", bpmn::rights_line(&rights))?;
            Ok(code)
        }
        Command::Processes { json } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            output::processes(&mut out, &engine.processes()?, *json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Start { process, folio, data, json } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            let progress = engine.start(&user, process, folio, &data.inputs())?;
            let whereabouts = whereabouts(engine, &user, progress.instance_id);
            output::started(&mut out, &progress, &whereabouts, *json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Instances { process, status, search, limit, json, find } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            let filter = find.apply(InstanceFilter {
                process: process.clone(),
                status: *status,
                search: search.clone(),
                limit: limit.unwrap_or(if find.csv { 0 } else { 200 }),
                ..InstanceFilter::default()
            });
            // Said where the condition was typed, before the answer it slows.
            for note in engine.slow_field_notes(&filter) {
                eprintln!("flowdesk: {note}");
            }
            if find.csv {
                let mut stdout = std::io::stdout().lock();
                if filter.limit == 0 {
                    engine.export_instances(&user, &filter, &mut stdout)?;
                } else {
                    crate::engine::find::write_csv(&engine.instances(&user, &filter)?, &mut stdout)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            output::instances(&mut out, &engine.instances(&user, &filter)?, engine.now(), *json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id, json, kinds } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            output::instance(&mut out, &engine.instance(&user, *id)?, engine.now(), *json, kinds)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Items { all, overdue, json } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            let filter = ItemFilter { include_closed: *all, overdue: *overdue, ..ItemFilter::default() };
            output::items(&mut out, &engine.items(&user, &filter)?, engine.now(), *all, *json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Finish { serial: None, data, select, dry_run, json } => {
            let action = BulkAction::Finish { data: data.inputs() };
            bulk::run(cli, &mut out, &action, &select.items()?, *dry_run, *json)
        }
        Command::Finish { serial: Some(serial), data, json, .. } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            // A person pastes a serial, perhaps with the spaces around it;
            // the engine itself takes only the exact text.
            let serial = serial.trim().parse().map_err(EngineError::from)?;
            let finished = engine.finish(&user, serial, &data.inputs())?;
            let whereabouts = whereabouts(engine, &user, finished.progress.instance_id);
            output::finished(&mut out, &finished, &whereabouts, *json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Grant { process, target, rights } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            engine.grant(&user, process, target, rights)?;
            writeln!(out, "granted {} on {process} to {target}", output::right_list(rights))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Revoke { process, target, rights } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            engine.revoke(&user, process, target, rights)?;
            writeln!(out, "revoked {} on {process} from {target}", output::right_list(rights))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rights { process } => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            if engine.processes()?.iter().all(|p| &p.name != process) {
                return Err(EngineError::ProcessNotFound { name: process.clone() }.into());
            }
            output::rights(&mut out, &engine.rights_on_process(process)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench { kind } => bench::execute(cli, kind, &mut out),
        Command::BenchDesigner { activities, lines, frames } => {
            for result in crate::gui::bench::run(*activities, *lines, *frames)? {
                writeln!(
                    out,
                    "designer activities={activities} lines={lines} scenario=\"{}\" frames={} median_ms={:.2} p95_ms={:.2}",
                    result.scenario, result.frames, result.median_ms, result.p95_ms
                )?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchMonitor { instances, live: true, finishes, idle_seconds, .. } => {
            let options = crate::gui::bench_live::LiveBenchOptions {
                instances: *instances,
                finishes: *finishes,
                idle: std::time::Duration::from_secs_f64(idle_seconds.max(0.5)),
                db: cli.db.clone(),
                user: cli.user.clone().unwrap_or_else(|| "bench".to_owned()),
            };
            let report = crate::gui::bench_live::run(&options, &std::env::current_exe()?)?;
            writeln!(
                out,
                "engine=flowdesk bench=live n={} p50_ms={:.1} p95_ms={:.1} idle_cpu_pct={:.2}",
                report.delays_ms.len(),
                report.p50_ms,
                report.p95_ms,
                report.idle_cpu_pct
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchLiveWriter => {
            let db = cli.db.clone().context("bench-live-writer needs --db")?;
            let user = cli.user.clone().unwrap_or_else(|| "bench".to_owned());
            crate::gui::bench_live::writer(&db, &user, std::io::stdin().lock(), std::io::stdout().lock())?;
            Ok(ExitCode::SUCCESS)
        }
        Command::BenchMonitor { instances, frames, .. } => {
            let options = crate::gui::bench_monitor::MonitorBenchOptions {
                instances: *instances,
                frames: *frames,
                db: cli.db.clone(),
                user: cli.user.clone().unwrap_or_else(|| "bench".to_owned()),
            };
            let report = crate::gui::bench_monitor::run(&options)?;
            let setup = &report.setup;
            let n = setup.instances;
            let made = if setup.loaded == 0 {
                format!("reused {}", setup.path.display())
            } else {
                format!("loaded {} synthetic instances ({} pending items)", setup.loaded, setup.pending_items)
            };
            writeln!(out, "monitor instances={n} setup=\"{made}\" seconds={:.1}", setup.seconds)?;
            writeln!(
                out,
                "monitor instances={n} first_rows_ms={:.1} frames={} first_count_ms={:.1}",
                report.first_rows_ms, report.first_rows_frames, report.first_count_ms
            )?;
            for s in &report.scenarios {
                writeln!(
                    out,
                    "monitor instances={n} scenario=\"{}\" frames={} median_ms={:.2} p95_ms={:.2} pages_shown={} \
                     stale_frames={} deepest_row={} settle_ms={:.0}",
                    s.frames.scenario,
                    s.frames.frames,
                    s.frames.median_ms,
                    s.frames.p95_ms,
                    s.pages_shown,
                    s.stale_frames,
                    s.deepest_row,
                    s.settle_ms
                )?;
            }
            for f in &report.filters {
                writeln!(
                    out,
                    "monitor instances={n} filter=\"{}\" rows_ms={:.1} count_ms={:.1} frames={} rows={} count={}",
                    f.label, f.rows_ms, f.count_ms, f.frames, f.rows, f.count
                )?;
            }
            if let Some(ms) = report.indexing_ms {
                writeln!(out, "monitor instances={n} searchable=\"name done\" deploy_indexing_ms={ms:.1}")?;
            }
            let o = &report.overview;
            for (what, ms) in &o.answers {
                writeln!(out, "monitor instances={n} overview=\"{what}\" answer_median_ms={ms:.1}")?;
            }
            writeln!(
                out,
                "monitor instances={n} overview_shown_ms={:.1} diagram_shown_ms={:.1} versions={} incidents={}",
                o.shown_ms, o.diagram_shown_ms, o.versions, o.incidents
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Retry(args) => args.run(cli, &mut out, BulkAction::Retry, "retried", |e, u, id| e.retry(u, id)),
        Command::Stop(args) => args.run(cli, &mut out, BulkAction::Stop, "stopped", |e, u, id| e.stop(u, id)),
        Command::Resume(args) => args.run(cli, &mut out, BulkAction::Resume, "resumed", |e, u, id| e.resume(u, id)),
        Command::Goto { args, select, output } => match (args.as_slice(), select.is_bulk()) {
            ([id, activity], false) => match id.trim().parse::<i64>() {
                Ok(id) => operator(cli, "moved", |e, u| e.goto(u, id, activity)),
                Err(_) => Ok(usage(&format!("`{id}` is not an instance id (goto ID ACTIVITY)"))),
            },
            ([activity], true) => {
                let action = BulkAction::GoTo { activity: activity.clone() };
                bulk::run(cli, &mut out, &action, &select.instances()?, output.dry_run, output.json)
            }
            (_, false) => Ok(usage("goto takes an instance id and an activity: goto ID ACTIVITY")),
            (_, true) => Ok(usage("with a selection, goto takes the activity alone: goto --process NAME ACTIVITY")),
        },
        Command::Recover => {
            let runtime = open_runtime(cli)?;
            let engine = runtime.engine();
            let recovered = engine.recover_while(&|| true)?;
            if recovered.is_empty() {
                writeln!(out, "nothing to recover")?;
            }
            for progress in &recovered {
                writeln!(out, "recovered instance {}: {}", progress.instance_id, progress.words())?;
            }
            for (id, until) in engine.held_claims()? {
                eprintln!("flowdesk: {}", held_claim_note(id, until));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Set { id, data } => operator(cli, "updated", |e, u| e.set_data(u, *id, &data.inputs())),
        Command::Serve { listen } => serve(cli, *listen, &mut out),
        Command::Token { action } => token(cli, action, &mut out),
        Command::Timers { action: TimersCommand::Run { json } } => {
            let runtime = open_runtime(cli)?;
            let round = runtime.fire_due()?;
            output::fired(&mut out, &round, *json)?;
            for (timer, err) in &round.failed {
                eprintln!("flowdesk: timer {timer} did not fire, to be fired again: {}", one_line(&err.to_string()));
            }
            Ok(if round.failed.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// Deploys one draft: its version, or every problem on stdout and the refusal.
fn deploy_one(
    engine: &RuntimeEngine,
    user: &str,
    draft: &ProcessDraft,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let searchable: Vec<&str> = draft.fields.iter().filter(|f| f.searchable).map(|f| f.name.as_str()).collect();
    if !searchable.is_empty() {
        // A field new to being searchable is indexed from every instance
        // of the process within the deploy: on a big table, a while.
        eprintln!(
            "flowdesk: deploying {} with searchable fields {}: a field not indexed yet is indexed now",
            draft.name,
            searchable.join(", ")
        );
    }
    match engine.deploy(user, draft) {
        Ok(deployed) => {
            for warning in &deployed.warnings {
                eprintln!("{warning}");
            }
            output::deployed(out, &deployed, user, json)?;
            Ok(())
        }
        Err(EngineError::InvalidDefinition { name, problems }) => {
            // The problems are the answer's detail, on stdout like
            // `validate`; stderr keeps its one line.
            for problem in &problems {
                writeln!(out, "{problem}")?;
            }
            Err(EngineError::InvalidDefinition { name, problems }.into())
        }
        Err(err) => Err(err.into()),
    }
}

/// Serves the API until Ctrl-C or SIGTERM, then stops it gracefully.
/// Instances whose runner stopped are run on in the background meanwhile
/// ([`Ticking::Host`]).
fn serve(cli: &Cli, listen: std::net::SocketAddr, out: &mut dyn Write) -> Result<ExitCode, Failure> {
    let mut options = runtime_options(cli.sync, Ticking::Host);
    options.report = Some(std::sync::Arc::new(|event| match event {
        TickEvent::Recovered(progress) => {
            eprintln!("flowdesk: recovered instance {}: {}", progress.instance_id, progress.words())
        }
        TickEvent::RecoveryFailed(err) => {
            eprintln!("flowdesk: recovery failed, to be tried again: {}", one_line(&err.to_string()))
        }
        TickEvent::BeatFailed(err) => {
            eprintln!("flowdesk: the heartbeat failed, to be tried again: {}", one_line(&err.to_string()))
        }
        TickEvent::TimersFired(round) => {
            if round.fired > 0 {
                let timers = if round.fired == 1 { "timer" } else { "timers" };
                eprintln!("flowdesk: fired {} {timers} that fell due", round.fired);
            }
            for (timer, err) in &round.failed {
                eprintln!("flowdesk: timer {timer} did not fire, to be fired again: {}", one_line(&err.to_string()))
            }
        }
        TickEvent::FiringFailed(err) => {
            eprintln!("flowdesk: firing timers failed, to be tried again: {}", one_line(&err.to_string()))
        }
    }));
    let runtime = std::sync::Arc::new(Runtime::open(&cli.db_path(), options).map_err(refusal)?);
    let api = crate::net::RunningApi::start(runtime.clone(), listen).map_err(|e| Failure::Other(e.into()))?;
    let banner = format!(
        "flowdesk API listening on {} (database {})\ndescribed at {}/openapi.json; Ctrl-C stops it\n",
        api.base_url(),
        cli.db_path().display(),
        api.base_url()
    );
    // A server goes on serving when whoever started it stops reading its
    // output (`flowdesk serve | head -1`).
    let _ = out.write_all(banner.as_bytes()).and_then(|()| out.flush());
    wait_for_interrupt().context("cannot wait for Ctrl-C")?;
    eprintln!("flowdesk: stopping: letting calls in flight end");
    api.stop();
    drop(runtime);
    Ok(ExitCode::SUCCESS)
}

fn wait_for_interrupt() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                interrupted = tokio::signal::ctrl_c() => interrupted,
                _ = terminate.recv() => Ok(()),
            }
        }
        #[cfg(not(unix))]
        {
            tokio::signal::ctrl_c().await
        }
    })
}

fn token(cli: &Cli, action: &TokenCommand, out: &mut dyn Write) -> Result<ExitCode, Failure> {
    let runtime = open_runtime(cli)?;
    let engine = runtime.engine();
    match action {
        TokenCommand::Create { target, label, json } => {
            let now = crate::engine::Clock::now(&crate::engine::SystemClock);
            let issued =
                crate::net::token::issue(&runtime, target, label, &cli.acting_user(), now).map_err(|e| match e {
                    crate::net::token::IssueError::Storage(e) => Failure::Refused(e),
                    other => Failure::Other(other.into()),
                })?;
            let id = issued.id;
            output::token_created(out, id, target, label, &issued.secret, *json)?;
            if !*json {
                eprintln!(
                    "flowdesk: token {id} acts as `{target}` with that user's process rights; keep the secret now: \
                     only its hash is stored, it cannot be shown again"
                );
            }
            let mut holds_rights = false;
            for process in engine.processes()? {
                holds_rights |= !engine.rights(&process.name, target)?.is_empty();
            }
            if !holds_rights {
                eprintln!(
                    "flowdesk: note: `{target}` holds no right on any process yet, so the token can do nothing; \
                     grant some, e.g. `flowdesk grant PROCESS {target} server-event`"
                );
            }
        }
        TokenCommand::List { json } => output::tokens(out, &runtime.tokens()?, *json)?,
        TokenCommand::Revoke { id } => {
            runtime
                .revoke_token(*id, &cli.acting_user(), crate::engine::Clock::now(&crate::engine::SystemClock))
                .map_err(|e| match e {
                    crate::store::TokenError::Storage(e) => Failure::Refused(e),
                    other => Failure::Other(other.into()),
                })?;
            writeln!(out, "revoked token {id}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn operator(
    cli: &Cli,
    verb: &str,
    act: impl FnOnce(&RuntimeEngine, &str) -> Result<crate::engine::Progress, EngineError>,
) -> Result<ExitCode, Failure> {
    let runtime = open_runtime(cli)?;
    let engine = runtime.engine();
    let user = cli.acting_user();
    let progress = act(engine, &user)?;
    let whereabouts = whereabouts(engine, &user, progress.instance_id);
    let mut out = std::io::stdout().lock();
    writeln!(out, "{verb} instance {}: {}", progress.instance_id, output::progress_words(&progress, &whereabouts))?;
    Ok(ExitCode::SUCCESS)
}

/// Where an instance stands by activity, read after the call that moved it
/// was committed. The call succeeded whatever this read does: when it is
/// refused (a user who may start instances but not view them) or fails, the
/// answer is given without activities rather than turned into an error.
fn whereabouts(engine: &RuntimeEngine, user: &str, id: i64) -> output::Whereabouts {
    engine.instance(user, id).map(|detail| output::Whereabouts::of(&detail)).unwrap_or_default()
}

/// A kind of audit line by its name, in any case (`--kind`); an unknown one
/// is refused naming every kind.
fn audit_kind(text: &str) -> Result<AuditAction, String> {
    let wanted = text.trim();
    AuditAction::ALL.into_iter().find(|kind| kind.name().eq_ignore_ascii_case(wanted)).ok_or_else(|| {
        let names: Vec<&str> = AuditAction::ALL.iter().map(|kind| kind.name()).collect();
        format!("no kind of audit line is called that; the kinds are: {}", names.join(", "))
    })
}
