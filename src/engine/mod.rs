//! The workflow engine: deploy, start, run, wait, call back, and operate.
//!
//! One API for every front end (GUI, command line, the client API, later the
//! network): every rule (rights, data types, legal status changes) is enforced
//! here, so no front end can get it wrong. The engine is generic over
//! [`Storage`] and never names a database.
//!
//! Which command may happen in which state, and what it changes, is
//! [`machine`]'s: its table ([`rule`]) is the guard, and each method here
//! reads, hands a [`Command`] to it, and writes the effects it decided.
//!
//! Each call is one or more transactions. A call that reaches an HTTP request
//! event, or an asynchronous server event whose script can call out, commits
//! first (with the new server item, for an asynchronous event, so a fast
//! callback finds it); the request or script then runs outside any transaction
//! and its result is applied in the next one. See `ARCHITECTURE.md` for the
//! whole story.

pub mod bulk;
pub mod error;
mod executor;
pub mod find;
pub mod instance;
mod ipc;
pub mod machine;
pub mod outbound;
pub mod overview;
pub mod runner;
pub mod serial;
pub mod storage;
pub mod timer;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

pub use bulk::{BulkAction, BulkProgress, BulkReport, Outcome, Selection, Target};
pub use error::{EngineError, format_age, format_step, format_time, trail_steps};
pub use find::{Comparison, FieldCondition, FieldTest, FilterError, TimeRange, parse_instant};
pub use instance::{
    ActivityRecord, ActivityStatus, AuditAction, AuditEntry, AuditPlace, ChildLink, FailureInfo, Instance,
    InstanceStatus, ItemStatus, LineResult, Millis, ParentLink, ServerItem, TokenState,
};
pub use ipc::{MAX_CHILDREN_PER_CALL, child_user};
pub use machine::{Command, CommandKind, Effect, ItemPhase, ItemState, RecordedFinish, Refusal, Rule, Why, rule};
pub use outbound::{
    Exchange, HttpOutbound, MAIL_TIMEOUT, MailAccepted, MailDelivery, MailError, Mailer, Outbound, OutboundError,
    OutboundResponse, SmtpMailer, SmtpPassword, SmtpSecurity, SmtpSettings, SmtpSettingsError,
};
pub use overview::{
    ActivityCount, AgeHistogram, Bucket, Incident, OldestWait, Overview, ReasonKey, Span, Throughput, VersionOverview,
    failure_pattern,
};
pub use runner::RunnerId;
pub use serial::{InvalidSerial, Serial};
pub use storage::{
    CancelToken, InstanceColumn, InstanceFilter, InstanceOrder, InstanceSummary, ItemFilter, ProcessSummary,
    RunningInstance, Storage, StorageError, StorageErrorKind, Transaction, VersionRecord, Visibility,
};
pub use timer::{DueTimers, InstanceTimer, PendingTimer, Timer, TimerState};

use crate::engine::executor::{Executor, OutsideResult, OutsideWork, RunEnd};
use crate::engine::instance::FlowState;
use crate::engine::ipc::{ChildStarter, InTransaction};
use crate::engine::machine::{Decision, Notification, State, check_data};
use crate::model::{
    CompiledProcess, EscalationAction, EventAction, FieldType, ProcessDraft, ProcessZone, Right, ScriptHost, Value,
};

/// The time source; tests use a fixed one so trails are stable.
pub trait Clock: Send + Sync {
    fn now(&self) -> Millis;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        chrono::Utc::now().timestamp_millis()
    }
}

/// Moments in a call where a test can step in, e.g. to kill the process there
/// and prove that recovery loses nothing. Production code installs no hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookPoint {
    /// A write transaction's work is done and it is about to commit.
    BeforeCommit,
    /// A write transaction has committed durably.
    AfterCommit,
    /// An event's work that runs outside transactions (an HTTP request, an
    /// asynchronous script that can call out) is committed as due, with its
    /// server item if any, and is about to run.
    BeforeAsyncScript,
    /// A count of instances ([`Engine::count_instances_cancellable`]) has
    /// read the user's rights and is about to count, holding a read
    /// connection: where a test holds a count to make it slow.
    BeforeCount,
}

impl HookPoint {
    pub const ALL: [HookPoint; 4] =
        [HookPoint::BeforeCommit, HookPoint::AfterCommit, HookPoint::BeforeAsyncScript, HookPoint::BeforeCount];

    pub fn name(self) -> &'static str {
        match self {
            HookPoint::BeforeCommit => "before-commit",
            HookPoint::AfterCommit => "after-commit",
            HookPoint::BeforeAsyncScript => "before-async-script",
            HookPoint::BeforeCount => "before-count",
        }
    }
}

pub type Hook = Arc<dyn Fn(HookPoint) + Send + Sync>;

/// A data-field value as a caller supplies it.
#[derive(Debug, Clone)]
pub enum FieldInput {
    /// Text typed by a person (`--set n=5`), parsed by the field's type.
    Text(String),
    /// The JSON text of one value from a machine caller (the HTTP API), read
    /// in each type's one written form and exactly: a decimal keeps every
    /// digit ([`Value::from_json_text`]).
    Json(Box<serde_json::value::RawValue>),
    /// An already typed value; must match the field's type.
    Value(Value),
}

/// `RawValue` has no equality of its own: two inputs are equal when written
/// alike.
impl PartialEq for FieldInput {
    fn eq(&self, other: &FieldInput) -> bool {
        match (self, other) {
            (FieldInput::Text(a), FieldInput::Text(b)) => a == b,
            (FieldInput::Json(a), FieldInput::Json(b)) => a.get() == b.get(),
            (FieldInput::Value(a), FieldInput::Value(b)) => a == b,
            _ => false,
        }
    }
}

impl FieldInput {
    /// The typed value for a field of `field_type`, or why it does not fit.
    /// A date-time written without an offset is read in `zone`, the
    /// process's.
    pub fn to_value(&self, field_type: FieldType, zone: &ProcessZone) -> Result<Value, crate::model::TypeMismatch> {
        match self {
            FieldInput::Text(text) => Value::parse(field_type, text, zone),
            FieldInput::Json(json) => Value::from_json_text(field_type, json, zone),
            FieldInput::Value(value) if value.field_type() == field_type => Ok(value.clone()),
            FieldInput::Value(value) => {
                Err(crate::model::TypeMismatch { expected: field_type, got: format!("a {} value", value.field_type()) })
            }
        }
    }
}

impl From<&str> for FieldInput {
    fn from(text: &str) -> FieldInput {
        FieldInput::Text(text.to_owned())
    }
}
impl From<String> for FieldInput {
    fn from(text: String) -> FieldInput {
        FieldInput::Text(text)
    }
}
impl From<Value> for FieldInput {
    fn from(value: Value) -> FieldInput {
        FieldInput::Value(value)
    }
}
impl From<i64> for FieldInput {
    fn from(value: i64) -> FieldInput {
        FieldInput::Value(Value::Integer(value))
    }
}
impl From<bool> for FieldInput {
    fn from(value: bool) -> FieldInput {
        FieldInput::Value(Value::Boolean(value))
    }
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Operations a script or rule may run before it is stopped as an endless loop.
    pub script_budget: u64,
    /// Synchronous steps one call may take before the instance is put in Error.
    pub max_steps: usize,
    /// How long a runner's claim on an instance mid-script holds, in
    /// milliseconds, before another runner may take it over unless the
    /// runner is heard from (a runtime's heartbeats last as long). A
    /// request's timeout is added to the claims made for it.
    pub lease_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions { script_budget: ScriptHost::DEFAULT_BUDGET, max_steps: 10_000, lease_ms: 30_000 }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployed {
    pub process: String,
    pub version: u32,
    pub warnings: Vec<crate::model::Problem>,
    /// The searchable fields whose index this deploy built (reading every
    /// instance of the process once): those new to the process.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub indexed: Vec<String>,
}

/// Where an instance stands after a call moved it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    pub instance_id: i64,
    pub status: InstanceStatus,
    /// Pending serials the instance now waits on.
    pub waiting: Vec<String>,
    pub failure: Option<FailureInfo>,
}

impl Progress {
    /// What the instance does now, in words ("waiting for a callback on 7_2").
    pub fn words(&self) -> String {
        match self.status {
            InstanceStatus::Completed => "completed".to_owned(),
            InstanceStatus::Active if !self.waiting.is_empty() => {
                format!("waiting for a callback on {}", self.waiting.join(", "))
            }
            InstanceStatus::Error => match &self.failure {
                Some(f) if f.event.is_empty() => format!("in error at `{}`: {}", f.activity, f.message),
                Some(f) => format!("in error at `{}` / `{}`: {}", f.activity, f.event, f.message),
                None => "in error".to_owned(),
            },
            status => status.name().to_lowercase(),
        }
    }
}

/// The answer to a successful finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finished {
    pub serial: String,
    /// False when the finish was recorded but not applied yet: the event's script
    /// was still running (an early callback), or the instance is stopped or in error.
    pub applied: bool,
    pub progress: Progress,
}

/// Threads that fire timers at once (see [`Engine::fire_due`]): while one
/// waits for its commit, another plans the next batch.
pub const FIRING_WORKERS: usize = 4;

/// Timers (of as many instances) fired together by one thread: planned on
/// one snapshot and handed to the writer as one (see
/// [`Engine::fire_due`]).
pub const FIRING_BATCH: usize = 32;

/// Due timers read at once by [`Engine::fire_due`].
const FIRING_PAGE: usize = 4096;

/// What firing one timer came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Firing {
    /// It fired; where its instance now stands.
    Fired(Progress),
    /// The table holds it (its instance is stopped or in error, or its
    /// event's work still runs): it stays armed.
    Held,
    /// It was not armed and due any more: fired, disarmed or moved on by
    /// another firing (another runtime's, perhaps), or not due yet.
    Gone,
}

/// What a round of [`Engine::fire_due`] did.
#[derive(Debug, Default)]
pub struct FiringRound {
    pub fired: usize,
    pub held: usize,
    /// Fired or moved on by someone else meanwhile.
    pub gone: usize,
    /// Firings that failed (their timers stay armed), with why.
    pub failed: Vec<(i64, EngineError)>,
    /// Where each instance a firing moved now stands, by instance id (the
    /// last firing's word).
    pub progress: BTreeMap<i64, Progress>,
}

impl FiringRound {
    fn count(&mut self, timer: &Timer, outcome: Result<Firing, EngineError>) {
        match outcome {
            Ok(Firing::Fired(progress)) => {
                self.fired += 1;
                self.progress.insert(timer.instance_id, progress);
            }
            Ok(Firing::Held) => self.held += 1,
            Ok(Firing::Gone) => self.gone += 1,
            Err(err) => self.failed.push((timer.id, err)),
        }
    }

    fn add(&mut self, other: FiringRound) {
        self.fired += other.fired;
        self.held += other.held;
        self.gone += other.gone;
        self.failed.extend(other.failed);
        self.progress.extend(other.progress);
    }
}

/// A server item opened for a callback: the item, its instance and data.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenedItem {
    pub item: ServerItem,
    pub instance: InstanceSummary,
    /// Field name, type and current value, in the process's field order.
    pub fields: Vec<(String, FieldType, Value)>,
    /// The process's time zone, where a date-time typed without an offset is read.
    pub zone: ProcessZone,
}

/// Everything an operator sees of one instance.
#[derive(Debug, Clone)]
pub struct InstanceDetail {
    pub summary: InstanceSummary,
    pub fields: Vec<(String, FieldType, Value)>,
    pub failure: Option<FailureInfo>,
    pub pending_items: Vec<ServerItem>,
    /// The armed timers of its open items, soonest first.
    pub timers: Vec<PendingTimer>,
    /// Every timer it has had (armed, fired, disarmed), with the wait each
    /// guards, in due order: the monitor's flow view shows them.
    pub every_timer: Vec<InstanceTimer>,
    pub audit: Vec<AuditEntry>,
    pub activities: Vec<ActivityRecord>,
    pub lines: Vec<LineResult>,
    pub definition: Arc<CompiledProcess>,
    /// The instance whose sub-process (IPC) event started this one.
    pub parent: Option<ParentLink>,
    /// The instances its sub-process events started, in the order they
    /// started, each as it is now.
    pub children: Vec<ChildInstance>,
}

/// A child an instance's IPC event started, and where it stands now
/// (`None` when the user may not see it, or it cannot be read any more).
#[derive(Debug, Clone, PartialEq)]
pub struct ChildInstance {
    pub link: ChildLink,
    pub summary: Option<InstanceSummary>,
}

/// What a write transaction committed: the instance as saved, its compiled
/// definition, and how its run ended.
struct Step {
    instance: Instance,
    process: Arc<CompiledProcess>,
    end: RunEnd,
    /// Other instances the transaction left with work outside it (children
    /// an IPC event started, a parent a child's completion moved on).
    later: Vec<Step>,
}

/// What a firing's transaction decided, for what follows its commit.
struct Fired {
    held: bool,
    notify: Option<Notification>,
    /// Who the firing acted as: `deadline` or `timer`.
    user: &'static str,
    step: Step,
}

/// The embedded workflow engine over a storage.
pub struct Engine<S: Storage> {
    store: S,
    host: ScriptHost,
    clock: Arc<dyn Clock>,
    options: EngineOptions,
    /// Compiled definitions by (process, version): compiled once, not per run.
    compiled: Mutex<HashMap<(String, u32), Arc<CompiledProcess>>>,
    hook: Option<Hook>,
    /// Sends HTTP request events' requests, never inside a transaction.
    outbound: Arc<dyn Outbound>,
    /// Sends mail events' mail, never inside a transaction.
    mailer: Arc<dyn Mailer>,
    /// This engine's name in the claims it makes (see [`runner`]).
    runner: RunnerId,
    /// Runs of outside work going on now, which its runtime beats for.
    running_outside: std::sync::atomic::AtomicUsize,
}

impl<S: Storage> Engine<S> {
    pub fn new(store: S) -> Engine<S> {
        Engine::with_options(store, EngineOptions::default(), ScriptHost::default(), Arc::new(SystemClock))
    }

    pub fn with_options(store: S, options: EngineOptions, host: ScriptHost, clock: Arc<dyn Clock>) -> Engine<S> {
        let host = if host.operation_budget() == options.script_budget {
            host
        } else {
            host.with_operation_budget(options.script_budget)
        };
        Engine {
            store,
            host,
            clock,
            options,
            compiled: Mutex::new(HashMap::new()),
            hook: None,
            outbound: Arc::new(HttpOutbound::default()),
            // No SMTP server until one is given: a mail event fails saying so.
            mailer: Arc::new(SmtpMailer::default()),
            runner: RunnerId::random(),
            running_outside: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Makes claims as `runner` (a runtime's, which beats for it) instead
    /// of the random id the engine was made with.
    pub fn with_runner(mut self, runner: RunnerId) -> Engine<S> {
        self.runner = runner;
        self
    }

    /// The runner this engine makes its claims as.
    pub fn runner(&self) -> RunnerId {
        self.runner
    }

    /// Whether a thread of this engine is running an instance's outside
    /// work (a request, a script that can call out) now: what a runtime's
    /// heartbeat stands for. A claim whose thread died (a panic) is not
    /// beaten for, and is taken over once it runs out.
    pub fn running_outside(&self) -> bool {
        self.running_outside.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Replaces how HTTP request events are sent (the default is [`HttpOutbound`]).
    pub fn with_outbound(mut self, outbound: Arc<dyn Outbound>) -> Engine<S> {
        self.outbound = outbound;
        self
    }

    /// Replaces how mail events' mail is sent (the default, an
    /// [`SmtpMailer`] with no server, refuses every mail).
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Engine<S> {
        self.mailer = mailer;
        self
    }

    /// Installs a hook called at each [`HookPoint`] (for crash tests).
    pub fn with_hook(mut self, hook: Hook) -> Engine<S> {
        self.hook = Some(hook);
        self
    }

    fn reach(&self, point: HookPoint) {
        if let Some(hook) = &self.hook {
            hook(point);
        }
    }

    /// One write transaction, with the hook points around its commit.
    fn write<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        let result = self.store.write(|tx| {
            let result = work(tx)?;
            self.reach(HookPoint::BeforeCommit);
            Ok(result)
        })?;
        self.reach(HookPoint::AfterCommit);
        Ok(result)
    }

    /// A write whose work the store may first run on a snapshot, outside the
    /// write lock, and then only check and apply under it (see
    /// [`Storage::write_planned`]); the hot calls (start, finish) go this way.
    ///
    /// Planned work may run twice (on the snapshot, and again if that turned
    /// out stale), so only when its scripts cannot reach the outside world.
    fn write_planned<T>(
        &self,
        work: impl Fn(&mut dyn Transaction) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if self.host.can_call_out() {
            return self.write(work);
        }
        let result = self.store.write_planned(|tx| work(tx), || self.reach(HookPoint::BeforeCommit))?;
        self.reach(HookPoint::AfterCommit);
        Ok(result)
    }

    /// Replaces the script host, e.g. to add an embedder's script functions.
    pub fn with_script_host(mut self, host: ScriptHost) -> Engine<S> {
        self.host = host;
        self
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn script_host(&self) -> &ScriptHost {
        &self.host
    }

    /// The time by the engine's clock, which every id, timestamp and due
    /// time comes from (front ends show ages and due times against it).
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    // ----- definitions -------------------------------------------------------

    /// Every problem of a draft (errors and warnings), and those of its
    /// sub-process events against the processes deployed now (which
    /// deploying checks too; a draft alone cannot know them).
    pub fn validate(&self, draft: &ProcessDraft) -> Result<Vec<crate::model::Problem>, EngineError> {
        let mut problems = crate::model::validate(draft, &self.host);
        if let Ok(compiled) = CompiledProcess::compile_validated(draft, &self.host, problems.clone()) {
            problems.extend(self.store.read(|tx| ipc::deployed_child_problems(self, tx, &compiled))?);
        }
        Ok(problems)
    }

    /// Deploys a draft as the process's next version, which becomes the default.
    /// A new process's deployer gets `Admin`; redeploying needs `Admin`.
    pub fn deploy(&self, user: &str, draft: &ProcessDraft) -> Result<Deployed, EngineError> {
        let compiled = CompiledProcess::compile(draft, &self.host)
            .map_err(|problems| EngineError::InvalidDefinition { name: draft.name.clone(), problems })?;
        let now = self.now();
        let (version, indexed) = self.write(|tx| {
            let latest = tx.latest_version(&draft.name)?;
            if latest.is_some() {
                require(tx, &draft.name, user, Right::Admin)?;
            }
            let children = ipc::deployed_child_problems(self, tx, &compiled)?;
            if !children.is_empty() {
                let mut problems = compiled.warnings.clone();
                problems.extend(children);
                problems.sort_by_key(|p| p.severity);
                return Err(EngineError::InvalidDefinition { name: draft.name.clone(), problems });
            }
            let version = latest.unwrap_or(0) + 1;
            tx.insert_version(&VersionRecord {
                process: draft.name.clone(),
                version,
                definition_json: draft.to_json(),
                deployed_at: now,
                deployed_by: user.to_owned(),
            })?;
            read_back(tx, draft, version)?;
            if latest.is_none() {
                tx.grant(&draft.name, user, Right::Admin)?;
            }
            // In the deploy's transaction: a version whose searchable
            // fields are not indexed is never seen.
            let mut indexed = Vec::new();
            for field in draft.fields.iter().filter(|field| field.searchable) {
                if let Some(field_type) = compiled.field_types.get(&field.name)
                    && tx.ensure_field_index(&draft.name, &field.name, *field_type)?
                {
                    indexed.push(field.name.clone());
                }
            }
            Ok((version, indexed))
        })?;
        let warnings = compiled.warnings.clone();
        self.cache().insert((draft.name.clone(), version), Arc::new(compiled));
        Ok(Deployed { process: draft.name.clone(), version, warnings, indexed })
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), Arc<CompiledProcess>>> {
        self.compiled.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn compiled(
        &self,
        tx: &mut dyn Transaction,
        process: &str,
        version: u32,
    ) -> Result<Arc<CompiledProcess>, EngineError> {
        if let Some(found) = self.cache().get(&(process.to_owned(), version)) {
            return Ok(found.clone());
        }
        let record = tx
            .version(process, version)?
            .ok_or_else(|| EngineError::ProcessNotFound { name: format!("{process} version {version}") })?;
        let draft = ProcessDraft::from_json(&record.definition_json, &format!("{process} version {version}"))
            .map_err(|e| EngineError::Internal(format!("stored definition does not parse: {e}")))?;
        let compiled = CompiledProcess::compile_deployed(&draft, &self.host).map_err(|problems| {
            EngineError::Internal(format!(
                "stored definition {process} version {version} no longer compiles: {}",
                problems.first().map(|p| p.to_string()).unwrap_or_default()
            ))
        })?;
        let compiled = Arc::new(compiled);
        self.cache().insert((process.to_owned(), version), compiled.clone());
        Ok(compiled)
    }

    /// The default version's compiled definition.
    pub fn definition(&self, process: &str) -> Result<Arc<CompiledProcess>, EngineError> {
        self.store.read(|tx| {
            let version = tx
                .default_version(process)?
                .ok_or_else(|| EngineError::ProcessNotFound { name: process.to_owned() })?;
            self.compiled(tx, process, version)
        })
    }

    /// Version `version` of a process (the default one when `None`), with its number.
    pub fn version_definition(
        &self,
        process: &str,
        version: Option<u32>,
    ) -> Result<(u32, Arc<CompiledProcess>), EngineError> {
        self.store.read(|tx| {
            let version = match version {
                Some(version) => version,
                None => tx
                    .default_version(process)?
                    .ok_or_else(|| EngineError::ProcessNotFound { name: process.to_owned() })?,
            };
            Ok((version, self.compiled(tx, process, version)?))
        })
    }

    pub fn processes(&self) -> Result<Vec<ProcessSummary>, EngineError> {
        self.store.read(|tx| tx.processes())
    }

    /// The store's change counter ([`Storage::data_version`]): different
    /// from its last answer whenever anyone committed a write since. It
    /// says nothing about what changed, so it needs no right: a watcher
    /// reads its views again, as its user, when it moves.
    pub fn data_version(&self) -> Result<u64, EngineError> {
        self.store.data_version()
    }

    // ----- rights ------------------------------------------------------------

    pub fn grant(&self, user: &str, process: &str, target: &str, rights: &[Right]) -> Result<(), EngineError> {
        self.write(|tx| {
            require_process(tx, process)?;
            require(tx, process, user, Right::Admin)?;
            for right in rights {
                tx.grant(process, target, *right)?;
            }
            Ok(())
        })
    }

    pub fn revoke(&self, user: &str, process: &str, target: &str, rights: &[Right]) -> Result<(), EngineError> {
        self.write(|tx| {
            require_process(tx, process)?;
            require(tx, process, user, Right::Admin)?;
            // Checked before anything is written: a write is never refused
            // after it started (see the store's group commit).
            let admin_left = tx
                .rights_on_process(process)?
                .iter()
                .any(|(user, right)| *right == Right::Admin && !(user == target && rights.contains(&Right::Admin)));
            if !admin_left {
                return Err(EngineError::LastAdmin { process: process.to_owned() });
            }
            for right in rights {
                tx.revoke(process, target, *right)?;
            }
            Ok(())
        })
    }

    pub fn rights_on_process(&self, process: &str) -> Result<Vec<(String, Right)>, EngineError> {
        self.store.read(|tx| tx.rights_on_process(process))
    }

    pub fn rights(&self, process: &str, user: &str) -> Result<Vec<Right>, EngineError> {
        self.store.read(|tx| tx.rights(process, user))
    }

    // ----- running -----------------------------------------------------------
    //
    // Each call reads what it needs, lets `machine::decide` apply its command
    // (the table says whether it may), and writes the decision's effects.

    fn executor<'a>(
        &'a self,
        process: &'a CompiledProcess,
        user: &'a str,
        now: Millis,
        children: Option<&'a dyn ChildStarter>,
    ) -> Executor<'a> {
        Executor {
            process,
            host: &self.host,
            now,
            user,
            max_steps: self.options.max_steps,
            inline_async_scripts: !self.host.can_call_out(),
            children,
        }
    }

    /// Writes what a decision changed: the instance (unless the decision was
    /// held), claimed for this runner if work is left to run outside the
    /// transaction, and the effects' rows. `new` inserts the instance
    /// instead of updating it.
    fn save(
        &self,
        tx: &mut dyn Transaction,
        instance: &mut Instance,
        decision: Decision,
        executor: &Executor<'_>,
        new: bool,
    ) -> Result<(), EngineError> {
        if !decision.held {
            if instance.status == InstanceStatus::Running {
                instance.runner = Some(self.runner);
                // A request may take its whole timeout: the claim must outlast it,
                // or recovery would send it again while it is still on its way.
                let longest_request = instance
                    .flow
                    .tokens
                    .iter()
                    .filter(|t| t.state == TokenState::RunningOutside)
                    .filter_map(|t| executor.process.activities[t.activity].events.get(t.next_event))
                    .filter_map(|event| match &event.action {
                        EventAction::Http(spec) => Some(spec.timeout.as_millis()),
                        EventAction::Mail(_) => Some(MAIL_TIMEOUT.as_millis()),
                        EventAction::Script(_) | EventAction::Wait(_) | EventAction::Ipc(_) => None,
                    })
                    .max()
                    .unwrap_or(0);
                let longest_request = Millis::try_from(longest_request).unwrap_or(Millis::MAX / 2);
                instance.lease_until = Some(executor.now + self.options.lease_ms + longest_request);
            } else {
                instance.runner = None;
                instance.lease_until = None;
            }
            instance.updated_at = executor.now;
            if new {
                tx.insert_instance(instance)?;
            } else {
                tx.update_instance(instance)?;
            }
        }
        tx.write_effects(instance.id, decision.effects)
    }

    /// Does the work that runs outside transactions (HTTP requests,
    /// asynchronous scripts that can call out), applying each result in its
    /// own transaction, until the instance settles.
    ///
    /// `step` is what the previous transaction committed: the instance as saved
    /// and how its run ended. Returns the instance as finally saved.
    fn continue_async(&self, user: &str, step: Step) -> Result<Instance, EngineError> {
        self.continue_async_while(user, step, &|| true)
    }

    /// [`Engine::continue_async`] that also ends, leaving the instance to
    /// recovery, once `keep_going` says no (a host shutting down).
    ///
    /// Before each piece of outside work the instance is read again: an
    /// operator who stopped it since the last transaction (between two
    /// requests of a loop, say) is obeyed at once, and no request goes out
    /// for an instance that is stopped. Its `RunningOutside` token is left
    /// as it is, and resuming sends the request then.
    fn continue_async_while(
        &self,
        user: &str,
        step: Step,
        keep_going: &dyn Fn() -> bool,
    ) -> Result<Instance, EngineError> {
        let Step { mut instance, process, mut end, mut later } = step;
        let instance_id = instance.id;
        // Counted only when there is outside work, so that the calls that
        // have none (most starts and finishes) touch no shared counter.
        let _running = matches!(end, RunEnd::Outside { .. }).then(|| runner::Running::enter(&self.running_outside));
        while let RunEnd::Outside { destination_id } = end {
            if !keep_going() {
                return Ok(instance);
            }
            let now = self.store.read(|tx| tx.instance(instance_id))?;
            match now {
                Some(now) if now.status == InstanceStatus::Running => {}
                Some(now) => return Ok(now),
                None => return Err(EngineError::InstanceNotFound { id: instance_id }),
            }
            self.reach(HookPoint::BeforeAsyncScript);
            let work = {
                let executor = self.executor(&process, user, self.now(), None);
                executor.outside_work(&instance, destination_id)
            };
            let result = match work {
                None => return Ok(instance),
                Some(OutsideWork::ScriptRan(result)) => OutsideResult::Script(result),
                Some(OutsideWork::Send(request)) => OutsideResult::Http(Exchange::run(self.outbound.as_ref(), request)),
                Some(OutsideWork::Mail(mail)) => {
                    let date = std::time::UNIX_EPOCH
                        + std::time::Duration::from_millis(u64::try_from(self.now()).unwrap_or_default());
                    OutsideResult::Mail(MailDelivery::run(self.mailer.as_ref(), mail, date))
                }
            };
            let more;
            (instance, end, more) = self.write(|tx| {
                // Reloaded: others (a callback, an operator) may have written since.
                let mut instance =
                    tx.instance(instance_id)?.ok_or(EngineError::InstanceNotFound { id: instance_id })?;
                let items = tx.item_state(instance_id)?;
                let children = InTransaction::new(self, tx, self.now());
                let executor = children.executor(&process, user);
                let state = State { instance: &mut instance, items };
                let Some(decision) = machine::outside_work_done(&executor, state, destination_id, result) else {
                    return Ok((instance, RunEnd::Settled, Vec::new()));
                };
                let end = decision.end;
                children.save(&mut instance, decision, &executor, false)?;
                Ok((instance, end, children.into_later()?))
            })?;
            later.extend(more);
        }
        // Children and parents the run moved with work outside, each as
        // the user it runs for.
        for other in later {
            let user = other.instance.originator.clone();
            self.continue_async_while(&user, other, keep_going)?;
        }
        Ok(instance)
    }

    /// Starts a new instance of the default version and runs it to its first
    /// wait state or completion. Needs `Start`.
    pub fn start(
        &self,
        user: &str,
        process: &str,
        folio: &str,
        data: &[(String, FieldInput)],
    ) -> Result<Progress, EngineError> {
        check_folio(folio)?;
        let step = self.write_planned(|tx| {
            let version = tx
                .default_version(process)?
                .ok_or_else(|| EngineError::ProcessNotFound { name: process.to_owned() })?;
            require(tx, process, user, Right::Start)?;
            let compiled = self.compiled(tx, process, version)?;
            let mut values = compiled.defaults.clone();
            values.extend(check_data(&compiled, data)?);
            let now = self.now();
            let mut instance = Instance {
                // Known before the run, so the instance is written once, as it
                // ends up, and its scripts see their instance id.
                id: tx.next_instance_id()?,
                process: process.to_owned(),
                version,
                folio: folio.to_owned(),
                originator: user.to_owned(),
                status: InstanceStatus::Running,
                data: values,
                flow: FlowState { next_destination_id: 1, ..FlowState::default() },
                started_at: now,
                updated_at: now,
                runner: None,
                lease_until: None,
                revision: 0,
            };
            let children = InTransaction::new(self, tx, now);
            let executor = children.executor(&compiled, user);
            let state = State { instance: &mut instance, items: ItemState::default() };
            let decision = machine::decide(&executor, state, Command::Start)?;
            let end = decision.end;
            children.save(&mut instance, decision, &executor, true)?;
            Ok(Step { instance, process: compiled, end, later: children.into_later()? })
        })?;
        let instance = self.continue_async(user, step)?;
        Ok(progress_of(&instance, None))
    }

    /// Opens a server item for a callback. Needs `Server Event` on its process.
    ///
    /// A front end parses the serial it was given (`text.parse::<Serial>()`,
    /// strict) before it calls: text that is no serial is its refusal to say.
    pub fn open_server_item(&self, user: &str, serial: Serial) -> Result<OpenedItem, EngineError> {
        self.store.read(|tx| {
            let (item, instance) = find_item(tx, serial)?;
            require(tx, &instance.process, user, Right::ServerEvent)?;
            let process = self.compiled(tx, &instance.process, instance.version)?;
            let mut summary = InstanceSummary::of(&instance);
            summary.due_at = tx.timers_of(instance.id)?.iter().find(|t| t.state == TimerState::Armed).map(|t| t.due_at);
            Ok(OpenedItem {
                item,
                fields: field_list(&process, &instance.data),
                zone: process.time_zone.clone(),
                instance: summary,
            })
        })
    }

    /// Finishes a server item by serial, optionally setting data fields, and
    /// runs the instance on to its next wait state, all in one transaction.
    /// Needs `Server Event` on the item's process. A refusal changes nothing.
    ///
    /// While the item's event still runs outside a transaction (an early
    /// callback), or an operator holds the instance (stopped, in error), the
    /// finish is recorded and applied when the instance runs again
    /// ([`machine::rule`]: held).
    pub fn finish(&self, user: &str, serial: Serial, data: &[(String, FieldInput)]) -> Result<Finished, EngineError> {
        self.finish_marked(user, serial, data, None)
    }

    /// [`Engine::finish`], its trail's line of `marked`'s kind marked with
    /// its words (a bulk action's).
    fn finish_marked(
        &self,
        user: &str,
        serial: Serial,
        data: &[(String, FieldInput)],
        marked: Option<(AuditAction, &str)>,
    ) -> Result<Finished, EngineError> {
        let (applied, step) = self.finish_write(user, serial, data, marked)?;
        let instance = self.continue_async(user, step)?;
        let finished = if applied { None } else { Some(serial) };
        Ok(Finished { serial: serial.to_string(), applied, progress: progress_of(&instance, finished) })
    }

    /// The transaction of [`Engine::finish_marked`]: whether the finish was
    /// applied, and what it committed (a bulk action tries this again on a
    /// busy database, and never what follows its commit).
    fn finish_write(
        &self,
        user: &str,
        serial: Serial,
        data: &[(String, FieldInput)],
        marked: Option<(AuditAction, &str)>,
    ) -> Result<(bool, Step), EngineError> {
        self.write_planned(|tx| {
            let (item, mut instance) = find_item(tx, serial)?;
            require(tx, &instance.process, user, Right::ServerEvent)?;
            let process = self.compiled(tx, &instance.process, instance.version)?;
            let items = tx.item_state(instance.id)?;
            let children = InTransaction::new(self, tx, self.now());
            let executor = children.executor(&process, user);
            let state = State { instance: &mut instance, items };
            let mut decision = machine::decide(&executor, state, Command::Finish { item: &item, data })?;
            if let Some((action, note)) = marked {
                bulk::mark(&mut decision.effects, user, action, note);
            }
            let (applied, end) = (!decision.held, decision.end);
            children.save(&mut instance, decision, &executor, false)?;
            Ok((applied, Step { instance, process, end, later: children.into_later()? }))
        })
    }

    // ----- operator actions --------------------------------------------------

    /// Applies an operator's command (which needs `Admin`) to an instance,
    /// runs the instance on as far as the command moves it, and saves, in
    /// one transaction.
    fn operate(&self, user: &str, id: i64, command: Command<'_>) -> Result<Progress, EngineError> {
        self.operate_marked(user, id, command, None)
    }

    /// [`Engine::operate`], its trail's line of `marked`'s kind marked with
    /// its words (a bulk action's).
    fn operate_marked(
        &self,
        user: &str,
        id: i64,
        command: Command<'_>,
        marked: Option<(AuditAction, &str)>,
    ) -> Result<Progress, EngineError> {
        let step = self.operate_write(user, id, command, marked)?;
        let instance = self.continue_async(user, step)?;
        Ok(progress_of(&instance, None))
    }

    /// The transaction of [`Engine::operate_marked`] (see
    /// [`Engine::finish_write`]).
    fn operate_write(
        &self,
        user: &str,
        id: i64,
        command: Command<'_>,
        marked: Option<(AuditAction, &str)>,
    ) -> Result<Step, EngineError> {
        self.write(|tx| {
            let mut instance = tx.instance(id)?.ok_or(EngineError::InstanceNotFound { id })?;
            require(tx, &instance.process, user, Right::Admin)?;
            let process = self.compiled(tx, &instance.process, instance.version)?;
            let items = tx.item_state(id)?;
            let children = InTransaction::new(self, tx, self.now());
            let executor = children.executor(&process, user);
            let mut decision = machine::decide(&executor, State { instance: &mut instance, items }, command)?;
            if let Some((action, note)) = marked {
                bulk::mark(&mut decision.effects, user, action, note);
            }
            let end = decision.end;
            children.save(&mut instance, decision, &executor, false)?;
            Ok(Step { instance, process, end, later: children.into_later()? })
        })
    }

    /// Retries the failed event (or line rules) of an instance in Error,
    /// then fires its timers that fell due while it was in error, oldest
    /// first (each in a transaction of its own).
    pub fn retry(&self, user: &str, id: i64) -> Result<Progress, EngineError> {
        let progress = self.operate(user, id, Command::Retry)?;
        self.fire_overdue_of(id, progress)
    }

    /// Stops an instance: it runs nothing until resumed, and callbacks that
    /// arrive meanwhile are recorded.
    pub fn stop(&self, user: &str, id: i64) -> Result<Progress, EngineError> {
        self.operate(user, id, Command::Stop)
    }

    /// Resumes a stopped instance, applying what arrived while it was
    /// stopped, then fires its timers that fell due meanwhile, oldest first
    /// (each in a transaction of its own).
    pub fn resume(&self, user: &str, id: i64) -> Result<Progress, EngineError> {
        let progress = self.operate(user, id, Command::Resume)?;
        self.fire_overdue_of(id, progress)
    }

    /// Moves an instance to an activity: every open activity instance and pending
    /// server item is cancelled, and the activity starts afresh.
    pub fn goto(&self, user: &str, id: i64, activity: &str) -> Result<Progress, EngineError> {
        self.operate(user, id, Command::GoTo { activity })
    }

    /// Sets data fields of an instance by hand (Admin), recorded in the trail.
    pub fn set_data(&self, user: &str, id: i64, data: &[(String, FieldInput)]) -> Result<Progress, EngineError> {
        self.operate(user, id, Command::SetData { data })
    }

    /// The instances [`Engine::recover`] would take over now, without
    /// taking them over: one read, for a front end to say so.
    pub fn awaiting_recovery(&self) -> Result<Vec<i64>, EngineError> {
        let now = self.now();
        let candidates = self.store.read(|tx| tx.running_instances())?;
        Ok(candidates.iter().filter(|c| runner::abandoned(c, now)).map(|c| c.id).collect())
    }

    /// The `Running` instances whose claims still hold, each with the last
    /// moment it holds unless its runner is heard from again: after that,
    /// recovery takes it over.
    pub fn held_claims(&self) -> Result<Vec<(i64, Millis)>, EngineError> {
        let now = self.now();
        let candidates = self.store.read(|tx| tx.running_instances())?;
        Ok(candidates
            .iter()
            .filter(|c| !runner::abandoned(c, now))
            .filter_map(|c| runner::held_until(c).map(|until| (c.id, until)))
            .collect())
    }

    /// Picks up instances whose runner died in the middle of an asynchronous
    /// script or an HTTP request (killed, crashed, power lost) and runs them
    /// on: the script runs again, the request is sent again (at least once,
    /// never exactly once). Returns their ids.
    ///
    /// Each instance runs on only as far as any run does: until it waits,
    /// ends, fails (the step guard counts on from where its runner was), or
    /// is stopped. It is work for a host of its own (`flowdesk recover`, or
    /// the ticker of a `crate::runtime::Runtime` in `flowdesk serve` and the
    /// window), never a side effect of another call, which it could hold up
    /// for as long.
    pub fn recover(&self) -> Result<Vec<i64>, EngineError> {
        Ok(self.recover_while(&|| true)?.into_iter().map(|progress| progress.instance_id).collect())
    }

    /// [`Engine::recover`] that stops taking instances over, and running
    /// one on, once `keep_going` says no (a host shutting down): an instance
    /// left in the middle keeps the claim, and is taken over again once the
    /// claim runs out or this process has ended. Returns where each instance
    /// it took over stands.
    pub fn recover_while(&self, keep_going: &dyn Fn() -> bool) -> Result<Vec<Progress>, EngineError> {
        let now = self.now();
        let candidates = self.store.read(|tx| tx.running_instances())?;
        let mut recovered = Vec::new();
        for candidate in candidates {
            if !keep_going() {
                break;
            }
            if !runner::abandoned(&candidate, now) {
                continue;
            }
            // Claim it in a transaction so two recovering runners do not both
            // run it, and only if nobody has claimed it, nor its runner beaten,
            // since it was read.
            let claimed = self.write(|tx| {
                if !tx.running_instances()?.contains(&candidate) {
                    return Ok(None);
                }
                let Some(mut instance) = tx.instance(candidate.id)? else {
                    return Ok(None);
                };
                let process = self.compiled(tx, &instance.process, instance.version)?;
                let executor = self.executor(&process, "flowdesk", now, None);
                let state = State { instance: &mut instance, items: ItemState::default() };
                // Refused when it is no longer running: nothing to take over.
                let Ok(decision) = machine::decide(&executor, state, Command::Recover) else {
                    return Ok(None);
                };
                instance.runner = Some(self.runner);
                instance.lease_until = Some(now + self.options.lease_ms);
                tx.update_instance(&instance)?;
                tx.write_effects(instance.id, decision.effects)?;
                Ok(Some(instance))
            })?;
            let Some(mut instance) = claimed else { continue };
            let running: Vec<i64> = instance
                .flow
                .tokens
                .iter()
                .filter(|t| t.state == TokenState::RunningOutside)
                .map(|t| t.destination_id)
                .collect();
            let process = self.store.read(|tx| self.compiled(tx, &instance.process, instance.version))?;
            for destination_id in running {
                let step = Step {
                    instance: instance.clone(),
                    process: process.clone(),
                    end: RunEnd::Outside { destination_id },
                    later: Vec::new(),
                };
                instance = self.continue_async_while(&instance.originator, step, keep_going)?;
            }
            recovered.push(progress_of(&instance, None));
        }
        Ok(recovered)
    }

    // ----- timers ------------------------------------------------------------

    /// Fires one timer of instance `instance_id` if it is armed and due
    /// now, as the transition table says (`Command::Fire`), in one
    /// transaction with its effects. A notification is then sent outside
    /// every transaction and what came of it recorded in another; work the
    /// firing left to run outside (a repeated request) runs as after any
    /// command.
    ///
    /// Another runtime's firing of the same timer finds it fired in its own
    /// transaction ([`Firing::Gone`]): one timer never fires twice.
    pub fn fire_timer(&self, instance_id: i64, timer_id: i64) -> Result<Firing, EngineError> {
        let now = self.now();
        let fired = self.write_planned(|tx| self.fire_in(tx, instance_id, timer_id, now))?;
        self.after_firing(instance_id, fired)
    }

    /// Fires timers of separate instances at once, each as
    /// [`Engine::fire_timer`] does (in one transaction with its effects,
    /// answered on its own), planned together so that they share one
    /// commit and what planning reads (see [`Storage::write_planned_each`]).
    fn fire_timers(&self, timers: &[Timer]) -> Vec<Result<Firing, EngineError>> {
        let now = self.now();
        let fire = |index: usize, tx: &mut dyn Transaction| {
            let timer = &timers[index];
            self.fire_in(tx, timer.instance_id, timer.id, now)
        };
        let fired = if self.host.can_call_out() {
            // Planned work may run twice: only where scripts cannot call out.
            (0..timers.len()).map(|index| self.write(|tx| fire(index, tx))).collect()
        } else {
            self.store.write_planned_each(
                timers.len(),
                fire,
                || self.reach(HookPoint::BeforeCommit),
                || self.reach(HookPoint::AfterCommit),
            )
        };
        timers
            .iter()
            .zip(fired)
            .map(|(timer, fired)| fired.and_then(|fired| self.after_firing(timer.instance_id, fired)))
            .collect()
    }

    /// A firing's work in its transaction: the timer is read there, and acts
    /// only while it is armed and due; `None` if it is not. The instance is
    /// read first, so that a planned write notes its revision (which covers
    /// its timers) with it rather than in a query of its own.
    fn fire_in(
        &self,
        tx: &mut dyn Transaction,
        instance_id: i64,
        timer_id: i64,
        now: Millis,
    ) -> Result<Option<Fired>, EngineError> {
        let Some(mut instance) = tx.instance(instance_id)? else {
            return Ok(None);
        };
        let timers = tx.timers_of(instance_id)?;
        let Some(timer) = timers.into_iter().find(|t| t.id == timer_id) else {
            return Ok(None);
        };
        if timer.state != TimerState::Armed || timer.due_at > now {
            return Ok(None);
        }
        let item = tx.server_item(timer.serial())?.ok_or_else(|| {
            EngineError::Internal(format!("timer {timer_id} is armed for {}, which does not exist", timer.serial()))
        })?;
        let process = self.compiled(tx, &instance.process, instance.version)?;
        let user = if timer.escalation.is_some() { timer::DEADLINE_USER } else { timer::TIMER_USER };
        let items = tx.item_state(instance_id)?;
        let children = InTransaction::new(self, tx, now);
        let executor = children.executor(&process, user);
        let state = State { instance: &mut instance, items };
        let mut decision = machine::decide(&executor, state, Command::Fire { timer: &timer, item: &item })?;
        let (held, end) = (decision.held, decision.end);
        let notify = decision.notify.take();
        if held {
            // Held: nothing to write, the timer stays armed.
        } else if notify.is_some() {
            // Nothing of the instance changed: its row is written as it
            // was read (which bumps its revision, as every timer change
            // does), its claim and last change left as they are.
            children.tx().update_instance(&instance)?;
            children.tx().write_effects(instance_id, decision.effects)?;
        } else {
            children.save(&mut instance, decision, &executor, false)?;
        }
        let later = children.into_later()?;
        Ok(Some(Fired { held, notify, user, step: Step { instance, process, end, later } }))
    }

    /// What follows a firing's commit: its notification sent, or the
    /// instance run on outside the transaction as after any command.
    fn after_firing(&self, instance_id: i64, fired: Option<Fired>) -> Result<Firing, EngineError> {
        let Some(Fired { held, notify, user, step }) = fired else {
            return Ok(Firing::Gone);
        };
        if held {
            return Ok(Firing::Held);
        }
        if let Some(notification) = notify {
            let progress = self.notify(instance_id, &step.process, notification)?;
            return Ok(Firing::Fired(progress));
        }
        let instance = self.continue_async(user, step)?;
        Ok(Firing::Fired(progress_of(&instance, None)))
    }

    /// Sends a notification a firing claimed, outside every transaction,
    /// and records what came of it on its timer and in the trail.
    fn notify(
        &self,
        instance_id: i64,
        process: &Arc<CompiledProcess>,
        notification: Notification,
    ) -> Result<Progress, EngineError> {
        self.reach(HookPoint::BeforeAsyncScript);
        let exchange = Exchange::run(self.outbound.as_ref(), notification.request.clone());
        self.write(|tx| {
            let timer = tx.timers_of(instance_id)?.into_iter().find(|t| t.id == notification.timer);
            let instance = tx.instance(instance_id)?.ok_or(EngineError::InstanceNotFound { id: instance_id })?;
            let executor = self.executor(process, timer::DEADLINE_USER, self.now(), None);
            let decision = machine::notification_sent(&executor, timer.as_ref(), &notification, &exchange);
            tx.update_instance(&instance)?;
            tx.write_effects(instance_id, decision.effects)?;
            Ok(progress_of(&instance, None))
        })
    }

    /// Fires every timer due now, oldest first, each in a transaction of
    /// its own, until none is left that is due or `keep_going` says no.
    /// Timers of stopped instances and instances in error are left armed
    /// (they fire on resume or retry). A firing that fails (the database)
    /// is counted and its timer stays armed for the next round.
    ///
    /// Firings run on up to [`FIRING_WORKERS`] threads, each taking the
    /// timers of up to [`FIRING_BATCH`] instances at a time and firing one
    /// timer of each together ([`Engine::fire_timers`]: planned on one
    /// snapshot, one member of a group commit); all timers of one instance
    /// are fired by one thread, in due order, so that an earlier escalation
    /// always acts before a later one.
    pub fn fire_due(&self, keep_going: &(dyn Fn() -> bool + Sync)) -> Result<FiringRound, EngineError> {
        let now = self.now();
        let held: Vec<InstanceStatus> = InstanceStatus::ALL
            .into_iter()
            .filter(|status| rule(*status, CommandKind::Fire(ItemPhase::Pending)) == Rule::Held)
            .collect();
        let mut round = FiringRound::default();
        let mut after = None;
        while keep_going() {
            let query = DueTimers { by: now, after, held: held.clone(), limit: FIRING_PAGE };
            let page = self.store.read(|tx| tx.due_timers(&query))?;
            let Some(last) = page.last() else { break };
            after = Some((last.due_at, last.id));
            // One group per instance, in the order its first timer is due.
            let mut groups: Vec<Vec<Timer>> = Vec::new();
            let mut group_of: HashMap<i64, usize> = HashMap::new();
            for timer in page {
                let index = *group_of.entry(timer.instance_id).or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
                groups[index].push(timer);
            }
            let batches = groups.len().div_ceil(FIRING_BATCH);
            let queue = Mutex::new(groups.into_iter());
            let outcomes = Mutex::new(FiringRound::default());
            let work = || {
                loop {
                    let batch: Vec<std::vec::IntoIter<Timer>> = {
                        let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
                        queue.by_ref().take(FIRING_BATCH).map(Vec::into_iter).collect()
                    };
                    if batch.is_empty() {
                        break;
                    }
                    let mut batch = batch;
                    loop {
                        if !keep_going() {
                            return;
                        }
                        // The next timer of each instance: one each, so that
                        // they can be fired together.
                        let wave: Vec<Timer> = batch.iter_mut().filter_map(Iterator::next).collect();
                        if wave.is_empty() {
                            break;
                        }
                        let fired = self.fire_timers(&wave);
                        let mut outcomes = outcomes.lock().unwrap_or_else(PoisonError::into_inner);
                        for (timer, outcome) in wave.iter().zip(fired) {
                            outcomes.count(timer, outcome);
                        }
                    }
                }
            };
            std::thread::scope(|scope| {
                for _ in 1..FIRING_WORKERS.min(batches) {
                    let builder = std::thread::Builder::new()
                        .name("flowdesk-firing".to_owned())
                        .stack_size(crate::model::script::SCRIPT_THREAD_STACK);
                    // A thread that cannot be made leaves its share to the others.
                    let _ = builder.spawn_scoped(scope, work);
                }
                // This thread works too (its scripts run on the stack
                // `stacker` gives every run).
                work();
            });
            round.add(outcomes.into_inner().unwrap_or_else(PoisonError::into_inner));
        }
        Ok(round)
    }

    /// Fires the armed timers of instance `id` that are due, oldest first;
    /// where the instance stands after them (`progress` if none fired).
    fn fire_overdue_of(&self, id: i64, progress: Progress) -> Result<Progress, EngineError> {
        let now = self.now();
        let due: Vec<Timer> = self
            .store
            .read(|tx| tx.timers_of(id))?
            .into_iter()
            .filter(|timer| timer.state == TimerState::Armed && timer.due_at <= now)
            .collect();
        let mut progress = progress;
        for timer in due {
            if let Firing::Fired(after) = self.fire_timer(id, timer.id)? {
                progress = after;
            }
        }
        Ok(progress)
    }

    // ----- queries -----------------------------------------------------------

    fn visibility(&self, tx: &mut dyn Transaction, user: &str) -> Result<Visibility, EngineError> {
        let mut visibility = Visibility { user: user.to_owned(), ..Visibility::default() };
        let mut by_process: BTreeMap<String, Vec<Right>> = BTreeMap::new();
        for (process, right) in tx.rights_of_user(user)? {
            by_process.entry(process).or_default().push(right);
        }
        for (process, rights) in by_process {
            if rights.iter().any(|r| matches!(r, Right::Admin | Right::View | Right::ServerEvent)) {
                visibility.all_of.push(process);
            } else if rights.contains(&Right::ViewParticipate) {
                visibility.participated_of.push(process);
            }
        }
        Ok(visibility)
    }

    /// Instances the user may see, filtered and paged; overdue ones judged
    /// by the engine's clock.
    /// A malformed or unusable filter is refused with
    /// [`EngineError::Filter`], naming what is wrong.
    pub fn instances(&self, user: &str, filter: &InstanceFilter) -> Result<Vec<InstanceSummary>, EngineError> {
        self.store.read(|tx| {
            let filter = self.checked_filter(tx, filter)?;
            let visibility = self.visibility(tx, user)?;
            tx.instances(&visibility, &filter)
        })
    }

    pub fn count_instances(&self, user: &str, filter: &InstanceFilter) -> Result<u64, EngineError> {
        self.store.read(|tx| self.count_in(tx, user, filter))
    }

    /// [`Engine::instances`], given up as soon as `cancel` is cancelled:
    /// then [`EngineError::Cancelled`] (see [`Storage::read_cancellable`]).
    /// For a front end whose reader moved on (the monitor, when the
    /// operator changed the filter): the read stops, and its connection is
    /// free for the next one.
    pub fn instances_cancellable(
        &self,
        user: &str,
        filter: &InstanceFilter,
        cancel: &CancelToken,
    ) -> Result<Vec<InstanceSummary>, EngineError> {
        self.store.read_cancellable(cancel, |tx| {
            let filter = self.checked_filter(tx, filter)?;
            let visibility = self.visibility(tx, user)?;
            tx.instances(&visibility, &filter)
        })
    }

    /// [`Engine::count_instances`], given up as soon as `cancel` is
    /// cancelled (as [`Engine::instances_cancellable`]). A count with a
    /// condition on a data field or a time range reads every row: seconds
    /// at a million instances.
    pub fn count_instances_cancellable(
        &self,
        user: &str,
        filter: &InstanceFilter,
        cancel: &CancelToken,
    ) -> Result<u64, EngineError> {
        self.store.read_cancellable(cancel, |tx| self.count_in(tx, user, filter))
    }

    fn count_in(&self, tx: &mut dyn Transaction, user: &str, filter: &InstanceFilter) -> Result<u64, EngineError> {
        let filter = self.checked_filter(tx, filter)?;
        let visibility = self.visibility(tx, user)?;
        self.reach(HookPoint::BeforeCount);
        tx.count_instances(&visibility, &filter)
    }

    /// Server items the user may see: pending ones, oldest first, or all;
    /// overdue ones judged by the engine's clock.
    pub fn items(&self, user: &str, filter: &ItemFilter) -> Result<Vec<ServerItem>, EngineError> {
        if filter.by_due && filter.after.is_some() {
            // No front end asks this (the API pages by age): a bug to say.
            return Err(EngineError::Internal("a cursor (`after`) pages items by age, not by due time".to_owned()));
        }
        let filter = ItemFilter { now: self.now(), ..filter.clone() };
        self.store.read(|tx| {
            let visibility = self.visibility(tx, user)?;
            tx.items(&visibility, &filter)
        })
    }

    /// How many server items [`Engine::items`] lists for `filter` without
    /// its limit and cursor: the count beside a capped list, and the N of
    /// "all N matching".
    pub fn count_items(&self, user: &str, filter: &ItemFilter) -> Result<u64, EngineError> {
        let filter = ItemFilter { now: self.now(), ..filter.clone() };
        self.store.read(|tx| {
            let visibility = self.visibility(tx, user)?;
            tx.count_items(&visibility, &filter)
        })
    }

    /// One instance with its data, trail and flow. Needs `View`, or
    /// `View Participate` on an instance the user took part in.
    pub fn instance(&self, user: &str, id: i64) -> Result<InstanceDetail, EngineError> {
        self.store.read(|tx| {
            let instance = tx.instance(id)?.ok_or(EngineError::InstanceNotFound { id })?;
            if !may_see(tx, &instance.process, id, user)? {
                return Err(EngineError::PermissionDenied {
                    user: user.to_owned(),
                    process: instance.process.clone(),
                    right: Right::View,
                });
            }
            let process = self.compiled(tx, &instance.process, instance.version)?;
            let pending_items = tx.pending_items_of(id)?;
            let all_timers = tx.timers_of(id)?;
            let mut every_timer = Vec::with_capacity(all_timers.len());
            for timer in &all_timers {
                let serial = timer.serial();
                // An armed timer's item is open; a spent one's is read by its key.
                let item = match pending_items.iter().find(|item| item.serial == serial) {
                    Some(item) => Some((item.activity_destination_id, item.event_index)),
                    None => tx.server_item(serial)?.map(|item| (item.activity_destination_id, item.event_index)),
                };
                if let Some((activity_destination_id, event_index)) = item {
                    every_timer.push(InstanceTimer { timer: timer.clone(), activity_destination_id, event_index });
                }
            }
            let timers = pending_timers(&process, &instance, &pending_items, all_timers);
            let mut children = Vec::with_capacity(instance.flow.children.len());
            for link in &instance.flow.children {
                // Only a child the user may see says how it stands.
                let summary = match may_see(tx, &link.process, link.instance_id, user)? {
                    true => tx.instance(link.instance_id)?.map(|child| InstanceSummary::of(&child)),
                    false => None,
                };
                children.push(ChildInstance { link: link.clone(), summary });
            }
            let mut summary = InstanceSummary::of(&instance);
            summary.due_at = timers.first().map(|t| t.due_at);
            Ok(InstanceDetail {
                summary,
                fields: field_list(&process, &instance.data),
                failure: instance.flow.failure.clone(),
                pending_items,
                timers,
                every_timer,
                audit: tx.audit(id)?,
                activities: tx.activity_records(id)?,
                lines: tx.line_results(id)?,
                definition: process,
                parent: instance.flow.parent.clone(),
                children,
            })
        })
    }
}

/// Where a saved instance stands. `finished` is a serial finished but not
/// applied yet, which the instance no longer waits on.
fn progress_of(instance: &Instance, finished: Option<Serial>) -> Progress {
    let mut waiting: Vec<Serial> = instance
        .flow
        .tokens
        .iter()
        .filter(|t| t.state == TokenState::Waiting)
        .filter_map(|t| t.serial_id.map(|id| instance.serial(id)))
        .filter(|serial| Some(*serial) != finished)
        .collect();
    waiting.sort();
    Progress {
        instance_id: instance.id,
        status: instance.status,
        waiting: waiting.iter().map(Serial::to_string).collect(),
        failure: instance.flow.failure.clone(),
    }
}

/// Reads back the version just stored, in the transaction that stored it,
/// and refuses (so that nothing is stored) unless it is the draft that was
/// deployed. Every start of the version reads it this way: a definition the
/// store kept otherwise (a number written as `null`) would strand them all.
fn read_back(tx: &mut dyn Transaction, draft: &ProcessDraft, version: u32) -> Result<(), EngineError> {
    let stored = format!("{} version {version}", draft.name);
    let refused = |why: String| {
        EngineError::Internal(format!("{stored} does not read back as it was deployed ({why}): nothing was deployed"))
    };
    let record = tx.version(&draft.name, version)?.ok_or_else(|| refused("it is not there".to_owned()))?;
    let read = ProcessDraft::from_json(&record.definition_json, &stored).map_err(|e| refused(e.to_string()))?;
    if read != *draft {
        return Err(refused("it differs".to_owned()));
    }
    Ok(())
}

/// Whether `user` may see instance `id` of `process`: `View` (or `Admin`,
/// `Server Event`), or `View Participate` on one they took part in.
fn may_see(tx: &mut dyn Transaction, process: &str, id: i64, user: &str) -> Result<bool, EngineError> {
    let rights = tx.rights(process, user)?;
    let sees_all = rights.iter().any(|r| matches!(r, Right::Admin | Right::View | Right::ServerEvent));
    Ok(sees_all || (rights.contains(&Right::ViewParticipate) && tx.is_participant(id, user)?))
}

fn require_process(tx: &mut dyn Transaction, process: &str) -> Result<(), EngineError> {
    match tx.latest_version(process)? {
        Some(_) => Ok(()),
        None => Err(EngineError::ProcessNotFound { name: process.to_owned() }),
    }
}

/// Refuses unless `user` holds `right` (or `Admin`) on `process`.
fn require(tx: &mut dyn Transaction, process: &str, user: &str, right: Right) -> Result<(), EngineError> {
    let rights = tx.rights(process, user)?;
    if rights.contains(&Right::Admin) || rights.contains(&right) {
        Ok(())
    } else {
        Err(EngineError::PermissionDenied { user: user.to_owned(), process: process.to_owned(), right })
    }
}

fn find_item(tx: &mut dyn Transaction, serial: Serial) -> Result<(ServerItem, Instance), EngineError> {
    let not_found = || EngineError::ItemNotFound { serial: serial.to_string() };
    // The instance first: a planned write notes the revision it read with
    // it, where reading the item first would cost a query for the revision.
    let instance = tx.instance(serial.instance_id)?.ok_or_else(not_found)?;
    let item = tx.server_item(serial)?.ok_or_else(not_found)?;
    Ok((item, instance))
}

/// A folio is a label people read in lists, audit lines and requests: it
/// may hold tabs and line breaks, but no other control character (NUL cuts
/// the text short in C and SQLite's C interface; escape sequences recolour
/// a terminal; a carriage return overwrites what a log line shows).
fn check_folio(folio: &str) -> Result<(), EngineError> {
    match folio.chars().find(|&c| c.is_control() && c != '\t' && c != '\n') {
        Some(c) => Err(EngineError::InvalidFolio {
            reason: format!(
                "it holds the control character U+{:04X}; a folio may hold tabs and line breaks, no other control character",
                u32::from(c)
            ),
        }),
        None => Ok(()),
    }
}

fn field_list(process: &CompiledProcess, data: &BTreeMap<String, Value>) -> Vec<(String, FieldType, Value)> {
    process
        .draft
        .fields
        .iter()
        .filter_map(|field| {
            let field_type = *process.field_types.get(&field.name)?;
            let value = data.get(&field.name).cloned().unwrap_or_else(|| field_type.zero_value());
            Some((field.name.clone(), field_type, value))
        })
        .collect()
}

/// The armed timers of an instance's open items, as a person reads them,
/// soonest first (`timers` come in that order).
fn pending_timers(
    process: &CompiledProcess,
    instance: &Instance,
    items: &[ServerItem],
    timers: Vec<Timer>,
) -> Vec<PendingTimer> {
    timers
        .into_iter()
        .filter(|timer| timer.state == TimerState::Armed)
        .map(|timer| {
            let serial = timer.serial();
            let event = items.iter().find(|item| item.serial == serial).map(|item| item.event.clone());
            let escalation = timer.escalation.and_then(|index| {
                let destination_id = items.iter().find(|item| item.serial == serial)?.activity_destination_id;
                let token = instance.flow.tokens.iter().find(|t| t.destination_id == destination_id)?;
                process.activities.get(token.activity)?.escalations.get(index)
            });
            let (name, action) = match (timer.escalation, escalation) {
                (None, _) => (event.unwrap_or_default(), "end the wait".to_owned()),
                (Some(index), None) => (format!("escalation {}", index + 1), String::new()),
                (Some(_), Some(escalation)) => {
                    let action = match &escalation.action {
                        EscalationAction::Finish(_) => "finish the item".to_owned(),
                        EscalationAction::GoTo(target) => format!(
                            "go to `{}`",
                            process.activities.get(*target).map(|a| a.name.as_str()).unwrap_or_default()
                        ),
                        EscalationAction::Repeat { times } => {
                            format!("repeat the event ({} of {times} done)", timer.fired_count)
                        }
                        EscalationAction::Notify(_) if timer.fired_count > 0 => {
                            format!("notify (attempt {})", timer.fired_count + 1)
                        }
                        EscalationAction::Notify(_) => "notify".to_owned(),
                        EscalationAction::Fail => "put the instance in error".to_owned(),
                    };
                    (escalation.name.clone(), action)
                }
            };
            PendingTimer { id: timer.id, serial: serial.to_string(), name, action, due_at: timer.due_at }
        })
        .collect()
}
