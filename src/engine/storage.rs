//! What the engine needs from persistence, and what a backend must
//! guarantee: the contract every [`Storage`] keeps.
//!
//! The engine is written against these traits so that it never names a
//! database. Two backends exist: SQLite (`store/`, what flowdesk ships) and
//! an in-memory one (`store/memory.rs`, which the scenario suite runs
//! against as well); PostgreSQL is to follow. Each must keep every promise
//! below, and pass the conformance suite (`tests/it/engine_scenarios.rs` and
//! the other suites run `on_every_backend!`), because
//! the engine's own correctness rests on them: it checks whether a command
//! may happen on what a transaction read, and writes the decision in the
//! same transaction, trusting that nothing came in between.
//!
//! # Write transactions
//!
//! - **Atomic.** [`Storage::write`] runs its work in one transaction: if the
//!   work returns `Ok`, all of its writes are committed together; if it
//!   returns `Err` (a refusal, or a failure of the store itself), none of
//!   them is kept. A backend may commit several callers' work in one
//!   transaction (SQLite's group commit, `store/writer.rs`), but then a
//!   failure of that commit fails every one of them, and each is told so:
//!   no caller hears `Ok` for work that was not committed.
//! - **Serializable per instance.** Writes that touch the same instance (its
//!   row, its server items, its history) happen one after the other: each
//!   sees every write to that instance that returned `Ok` before it began,
//!   and no other write to it until it ends. The same holds for the rows
//!   several instances share: rights, deployed versions and the instance id
//!   counter. SQLite gives more, one writer at a time for the whole file
//!   (`BEGIN IMMEDIATE`); a backend may run writes on different instances
//!   at once, as long as the outcome is one that running them one at a time
//!   would have given. A write may also see the uncommitted work of writes
//!   sharing its commit; then it stands or falls with them.
//! - **A refusal is true when it is answered.** An `Err` the work returns is
//!   handed back only once what it read is committed (SQLite makes a
//!   refusal inside a shared commit wait for that commit), so a caller is
//!   never refused on the strength of a write that is then rolled back.
//! - **Durable when acknowledged.** When `write` returns `Ok`, its work is
//!   committed: with `Durability::Full` (the default) it survives a power
//!   loss, with `Durability::Normal` a crash of the process (an explicit
//!   choice, `--sync normal`). Nothing is acknowledged before that.
//!
//! # Revisions and planned writes
//!
//! Every instance has a **revision** ([`Instance::revision`],
//! [`Transaction::instance_revision`]): a number that every write to the
//! instance or to any of its server items increases, including a finish
//! recorded for later without the instance row being rewritten
//! ([`Transaction::write_effects`]). So one revision read stands for
//! everything about an instance: if it has not moved, nothing about the
//! instance has changed.
//!
//! [`Storage::write_planned`] lets a backend run the work first on a read
//! snapshot, outside its write lock, recording what the work read and what
//! it would write. Under the lock it makes a **revision check**: every
//! instance revision the work read (and that an instance it found absent is
//! still absent), and every right, default version, deployed version and
//! newly handed-out instance id it read, must still be what the snapshot
//! showed. If all hold, the recorded writes are applied as they are, and the
//! outcome is the one running the work under the lock would have given. If
//! one does not (another caller got to the instance first), the backend must
//! not apply anything it recorded: it runs the work again inside a write
//! transaction, as [`Storage::write`] would (SQLite's one fallback), or
//! answers [`StorageErrorKind::Conflict`]. So work handed to `write_planned`
//! may run more than once, and must do nothing but read and write through
//! its transaction; `before_commit` is called once per attempt, before the
//! commit that would hold its writes. A refusal computed on the snapshot
//! that wrote nothing may be answered at once: it rests on committed state
//! taken after the call began.
//!
//! # Reads
//!
//! [`Storage::read`] runs on a **consistent snapshot** of committed data: it
//! sees every write that returned `Ok` before the read began, never part of
//! a write, and nothing that is committed while it runs. Reads do not wait
//! for writes (SQLite in WAL mode reads from connections of their own).
//!
//! [`Storage::read_cancellable`] is a read its caller may give up: once
//! its [`CancelToken`] is cancelled the read answers
//! [`EngineError::Cancelled`] (unless it had already ended) and leaves the
//! backend as a read that ended would, ready for the next. SQLite stops the
//! statement running within a thousand steps of its machine (a progress
//! handler on the read connection) and ends the transaction; the memory
//! store only looks at the token before it begins (its reads take
//! microseconds, and nothing in them waits).
//!
//! # Changes
//!
//! [`Storage::data_version`] is a change counter for watchers (the
//! monitor looks at it every few tens of milliseconds and reads its views
//! again only when it moved): a number that is different from the one it
//! answered before whenever a write was committed in between, by this
//! handle or by any other on the same data (another process on the same
//! database file, another clone of a memory store). It may move without a
//! visible change (a heartbeat, a write that changed nothing a view shows),
//! never the other way round, and its values mean nothing but "different":
//! they are compared for equality only, and only between answers of one
//! store value. It must cost next to nothing (no table read) and never wait
//! for a write. SQLite answers `PRAGMA data_version` of one connection kept
//! for it alone (per connection, it moves on every other connection's
//! commit, and never on its own, which makes no writes); the memory store
//! counts its commits.
//!
//! # Ids
//!
//! [`Transaction::next_instance_id`] never hands out an id that a committed
//! instance has, or ever had: serials (`<instance id>_<n>`) name one wait
//! for good, so a callback meant for an old instance can never reach a new
//! one. Ids a rolled-back write took may be handed out again.
//!
//! # Lists
//!
//! The list queries ([`Transaction::instances`], [`Transaction::items`], ...)
//! order text by its UTF-8 bytes (SQLite's `BINARY` collation: `PO` before
//! `po` before `Ü`), statuses by their names, and ties by id in the same
//! direction, so that a page boundary falls in the same place on every
//! backend. A backend whose database sorts by a locale must ask for the
//! byte order explicitly (PostgreSQL: `COLLATE "C"`).
//!
//! # Errors
//!
//! Every failure of the backend itself is an [`EngineError::Storage`]
//! carrying a [`StorageError`]: a kind, which front ends act on, and a
//! message for the operator (which may name the database file, and so is
//! not shown to network clients). A failed write has changed nothing. The
//! kinds divide in two:
//!
//! - **Retryable** ([`StorageError::is_retryable`]): [`StorageErrorKind::Busy`]
//!   (another program held the database longer than the backend waits for
//!   it) and [`StorageErrorKind::Conflict`] (the write was given up because
//!   of another one: a shared commit rolled back over another caller's
//!   failure, a serialization failure). Calling again is the cure; the HTTP
//!   API answers them 503 with `Retry-After`.
//! - **Fatal**: everything else ([`StorageErrorKind::DiskFull`],
//!   [`StorageErrorKind::Corrupt`], [`StorageErrorKind::ReadOnly`], ...).
//!   Calling again fails again until an operator acts (frees disk space,
//!   restores a backup, fixes permissions); the HTTP API answers 500
//!   `storage_failed` and the server's log names the cause.
//!
//! Which backend error is which kind is decided in one place per backend
//! (SQLite's result codes: `store::kind_of`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::engine::error::EngineError;
use crate::engine::find::{FieldCondition, TimeRange};
use crate::engine::instance::{
    ActivityRecord, AuditEntry, Instance, InstanceStatus, ItemStatus, LineResult, Millis, ServerItem,
};
use crate::engine::machine::{Effect, ItemState};
use crate::engine::overview::{Incident, MinuteCount, PendingGroup, ReasonKey, StatusCount};
use crate::engine::runner::RunnerId;
use crate::engine::serial::Serial;
use crate::engine::timer::{DueTimers, Timer};
use crate::model::Right;

/// A deployed version of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    pub process: String,
    pub version: u32,
    pub definition_json: String,
    pub deployed_at: Millis,
    pub deployed_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessSummary {
    pub name: String,
    pub default_version: u32,
    pub versions: u32,
}

/// One row of the instance list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceSummary {
    pub id: i64,
    pub process: String,
    pub version: u32,
    pub folio: String,
    pub originator: String,
    pub status: InstanceStatus,
    pub started_at: Millis,
    pub updated_at: Millis,
    /// When the instance's next armed timer falls due; `None` when none is.
    pub due_at: Option<Millis>,
    /// The instance whose sub-process (IPC) event started this one.
    pub parent_id: Option<i64>,
}

impl InstanceSummary {
    /// The list's row of an instance, without its next due time (which
    /// its timers hold, read apart).
    pub fn of(instance: &Instance) -> InstanceSummary {
        InstanceSummary {
            id: instance.id,
            process: instance.process.clone(),
            version: instance.version,
            folio: instance.folio.clone(),
            originator: instance.originator.clone(),
            status: instance.status,
            started_at: instance.started_at,
            updated_at: instance.updated_at,
            due_at: None,
            parent_id: instance.flow.parent.as_ref().map(|parent| parent.instance_id),
        }
    }
}

/// Which instances a user may see.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// Processes whose instances are all visible (View, Admin).
    pub all_of: Vec<String>,
    /// Processes whose instances are visible when the user took part (ViewParticipate).
    pub participated_of: Vec<String>,
    pub user: String,
}

/// A column the instance list can be sorted by; each is backed by an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum InstanceColumn {
    /// Instance ids grow with start time (calls starting at the same moment
    /// may take them in either order), so this is also "started".
    #[default]
    Id,
    Folio,
    Process,
    Status,
    Originator,
    LastChange,
    /// When the instance's next armed timer falls due (its soonest, ties
    /// broken by the timers' ids), from the index of armed timers. Instances
    /// with nothing due come after the others in either direction, newest
    /// first.
    Due,
}

impl InstanceColumn {
    pub const ALL: [InstanceColumn; 7] = [
        InstanceColumn::Id,
        InstanceColumn::Folio,
        InstanceColumn::Process,
        InstanceColumn::Status,
        InstanceColumn::Originator,
        InstanceColumn::LastChange,
        InstanceColumn::Due,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceOrder {
    pub column: InstanceColumn,
    pub descending: bool,
}

impl Default for InstanceOrder {
    fn default() -> Self {
        InstanceOrder::NEWEST_FIRST
    }
}

impl InstanceOrder {
    pub const NEWEST_FIRST: InstanceOrder = InstanceOrder { column: InstanceColumn::Id, descending: true };
    pub const OLDEST_FIRST: InstanceOrder = InstanceOrder { column: InstanceColumn::Id, descending: false };
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct InstanceFilter {
    pub process: Option<String>,
    /// Only this version of [`Self::process`] (ignored without a process).
    pub version: Option<u32>,
    pub status: Option<InstanceStatus>,
    /// Only instances waiting on a pending server item at this activity of
    /// [`Self::process`], failed there or at work there ([`Self::active_at`];
    /// ignored without a process and version): the diagram's counts, clicked. From the pending items' index by activity
    /// and the failures' index.
    pub activity: Option<String>,
    /// The running instances at work at [`Self::activity`], which the
    /// store lists with those waiting or failed there: found by the engine
    /// from their flow (a front end's value is replaced).
    pub active_at: Vec<i64>,
    /// Matches the folio (contains, ignoring case as every search does)
    /// or, if a number, the id.
    pub search: Option<String>,
    /// Only instances started in this range.
    pub started: TimeRange,
    /// Only instances that ended (completed) in this range; an open range
    /// asks nothing.
    pub ended: TimeRange,
    /// Only instances whose data passes every condition; the engine reads
    /// each for its field's type ([`FieldCondition::test`]).
    pub fields: Vec<FieldCondition>,
    /// Only instances with an armed timer due by [`Self::now`]: overdue
    /// ones (held by a stopped instance or one in error, or left while no
    /// ticker ran).
    pub overdue: bool,
    /// The time `overdue` is judged at. The engine sets it from its clock;
    /// what a front end puts here is replaced.
    pub now: Millis,
    pub order: InstanceOrder,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ItemFilter {
    pub include_closed: bool,
    pub process: Option<String>,
    pub instance_id: Option<i64>,
    /// Matches the serial, folio, process, activity or event (contains,
    /// ignoring case).
    pub search: Option<String>,
    /// Newest first instead of oldest first (with [`Self::by_due`]: the
    /// latest due first).
    pub newest_first: bool,
    /// Order by the item's next due time (its soonest armed timer, ties
    /// broken by the timers' ids), from the index of armed timers; the
    /// items with nothing due follow in the age order. Pages only from the
    /// start: not with [`Self::after`].
    pub by_due: bool,
    /// Order by age alone, closed items among pending ones, instead of
    /// pending first: an item keeps its place when it closes, so a client
    /// paging with `after` neither skips nor repeats one. The HTTP API
    /// lists this way.
    pub by_age_only: bool,
    /// Only the items after this one in age order (creation time, then
    /// serial; before it when newest first): the cursor of the next page.
    /// The item must exist ([`EngineError::ItemNotFound`] otherwise). Pages
    /// meet exactly only in an order an item keeps when it closes: pending
    /// items only, or [`Self::by_age_only`].
    pub after: Option<Serial>,
    /// Only items with an armed timer due by [`Self::now`]: overdue ones
    /// (held by a stopped instance or one in error, or left while no
    /// ticker ran).
    pub overdue: bool,
    /// The time `overdue` is judged at. The engine sets it from its clock;
    /// what a front end puts here is replaced.
    pub now: Millis,
    pub limit: usize,
}

/// A `Running` instance's claim: whose it is and until when it holds (see
/// `engine::runner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningInstance {
    pub id: i64,
    pub runner: Option<RunnerId>,
    pub lease_until: Option<Millis>,
    /// When the runner's last heartbeat runs out; `None` when it has none.
    pub runner_expires_at: Option<Millis>,
}

/// The switch a caller flips to give up a read it no longer needs
/// ([`Storage::read_cancellable`]). Clones share the switch; once
/// cancelled it stays so.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Gives up the reads this token was handed to, the running one at once.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Storage errors are reported as [`EngineError::Storage`].
pub type StorageResult<T> = Result<T, EngineError>;

/// What kind of failure of the backend a [`StorageError`] is: what a front
/// end tells its user, and whether calling again can help (see the module's
/// *Errors*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StorageErrorKind {
    /// Another program held the database (a long write) for longer than the
    /// backend waits for it. Retryable.
    Busy,
    /// The write was given up because of another write: the commit it
    /// shared was rolled back over another caller's failure, or the backend
    /// could not order it with a concurrent one. Retryable.
    Conflict,
    /// No room left on the disk holding the database (or its log).
    DiskFull,
    /// The database file, or a value stored in it, is damaged.
    Corrupt,
    /// The database may be read but not written: a read-only file or file
    /// system, or a file the server's user may not write.
    ReadOnly,
    /// The file is not a database this flowdesk can use: another program's,
    /// or one of a newer flowdesk.
    Foreign,
    /// The database cannot be opened: no file where one must be, a folder
    /// that cannot be made, a file the server's user may not open.
    CannotOpen,
    /// The disk or the file system failed a read or a write.
    Io,
    /// Any other failure of the backend (an error of its own, a bug).
    Other,
}

impl StorageErrorKind {
    /// Whether calling again can succeed without anyone acting first.
    pub fn is_retryable(self) -> bool {
        matches!(self, StorageErrorKind::Busy | StorageErrorKind::Conflict)
    }

    /// The kind in plain words, as the window and the HTTP API say it (no
    /// file names: those are in the error's message).
    pub fn words(self) -> &'static str {
        match self {
            StorageErrorKind::Busy => "the database is busy with another program's write",
            StorageErrorKind::Conflict => "the write met another one and was given up",
            StorageErrorKind::DiskFull => "the disk is full",
            StorageErrorKind::Corrupt => "the database file is damaged",
            StorageErrorKind::ReadOnly => "the database file cannot be written (it is read-only)",
            StorageErrorKind::Foreign => "the file is not a database this flowdesk can use",
            StorageErrorKind::CannotOpen => "the database file cannot be opened",
            StorageErrorKind::Io => "the disk failed a read or a write",
            StorageErrorKind::Other => "the database failed",
        }
    }

    /// A stable name for logs and machines (`disk_full`).
    pub fn key(self) -> &'static str {
        match self {
            StorageErrorKind::Busy => "busy",
            StorageErrorKind::Conflict => "conflict",
            StorageErrorKind::DiskFull => "disk_full",
            StorageErrorKind::Corrupt => "corrupt",
            StorageErrorKind::ReadOnly => "read_only",
            StorageErrorKind::Foreign => "foreign",
            StorageErrorKind::CannotOpen => "cannot_open",
            StorageErrorKind::Io => "io",
            StorageErrorKind::Other => "other",
        }
    }
}

/// A failure of the backend: its kind, and a message for the operator that
/// says the kind in plain words and names what failed (the database file,
/// the backend's own error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct StorageError {
    pub kind: StorageErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn new(kind: StorageErrorKind, message: impl Into<String>) -> StorageError {
        StorageError { kind, message: message.into() }
    }

    /// See [`StorageErrorKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind.is_retryable()
    }
}

/// Operations inside one transaction.
pub trait Transaction {
    fn latest_version(&mut self, process: &str) -> StorageResult<Option<u32>>;
    fn default_version(&mut self, process: &str) -> StorageResult<Option<u32>>;
    fn version(&mut self, process: &str, version: u32) -> StorageResult<Option<VersionRecord>>;
    /// Stores a new version and makes it the process's default.
    fn insert_version(&mut self, record: &VersionRecord) -> StorageResult<()>;
    /// Has the store find `process`'s instances by the value of `field`
    /// (of `field_type`, a searchable type) fast: the SQLite store builds an
    /// index of it if there is none (reading every instance of the process
    /// once; see `store::fields`). Whether one was built now. A store that
    /// finds fast without one (the memory store) does nothing.
    fn ensure_field_index(
        &mut self,
        process: &str,
        field: &str,
        field_type: crate::model::FieldType,
    ) -> StorageResult<bool> {
        let _ = (process, field, field_type);
        Ok(false)
    }
    fn processes(&mut self) -> StorageResult<Vec<ProcessSummary>>;

    fn rights(&mut self, process: &str, user: &str) -> StorageResult<Vec<Right>>;
    /// Every (process, right) the user holds.
    fn rights_of_user(&mut self, user: &str) -> StorageResult<Vec<(String, Right)>>;
    /// Every (user, right) on a process.
    fn rights_on_process(&mut self, process: &str) -> StorageResult<Vec<(String, Right)>>;
    fn grant(&mut self, process: &str, user: &str, right: Right) -> StorageResult<()>;
    fn revoke(&mut self, process: &str, user: &str, right: Right) -> StorageResult<()>;

    /// The id the next new instance gets: never one used before.
    fn next_instance_id(&mut self) -> StorageResult<i64>;
    /// Inserts a new instance with the id [`Transaction::next_instance_id`] gave.
    fn insert_instance(&mut self, instance: &Instance) -> StorageResult<()>;
    fn instance(&mut self, id: i64) -> StorageResult<Option<Instance>>;
    /// The instance's [`Instance::revision`], `None` if there is no such instance.
    fn instance_revision(&mut self, id: i64) -> StorageResult<Option<i64>>;
    fn update_instance(&mut self, instance: &Instance) -> StorageResult<()>;
    /// Writes the rows a decision's effects stand for beside the instance
    /// row: its history record (audit entries, activities, lines), its
    /// server items as created, finished, applied or cancelled, and its
    /// participants. The store writes what each effect says and decides
    /// nothing (which item may be finished is the engine's question,
    /// answered on the state it read in the same transaction); effects that
    /// only change the instance are in its row already.
    ///
    /// The engine writes the instance in the same transaction
    /// ([`Transaction::update_instance`] or [`Transaction::insert_instance`]),
    /// except for a finish it holds for later ([`Effect::ItemFinished`] with
    /// data left to apply), whose write must bump the instance's revision
    /// all the same: planned writes rely on every write to an instance or its
    /// items doing so.
    fn write_effects(&mut self, instance_id: i64, effects: Vec<Effect>) -> StorageResult<()>;
    /// The instance's open server items (pending, or finished with the
    /// finish not applied yet) and the finishes left to apply.
    fn item_state(&mut self, instance_id: i64) -> StorageResult<ItemState>;
    fn server_item(&mut self, serial: Serial) -> StorageResult<Option<ServerItem>>;
    /// Every `Running` instance's claim, with its runner's heartbeat expiry.
    fn running_instances(&mut self) -> StorageResult<Vec<RunningInstance>>;

    /// Armed timers due by `query.by`, oldest first (by due time, then id),
    /// after `query.after` in that order, leaving out those of instances in
    /// a status of `query.held`, at most `query.limit` (0: all). What the
    /// ticker fires; timers are armed, fired and disarmed only through
    /// [`Transaction::write_effects`] ([`Effect::TimerArmed`],
    /// [`Effect::TimerChanged`], [`Effect::TimersDisarmed`]), always
    /// together with a write of their instance, whose revision so covers
    /// them for planned writes.
    fn due_timers(&mut self, query: &DueTimers) -> StorageResult<Vec<Timer>>;
    /// Every timer of an instance, armed or not, oldest due first (then by
    /// id): what a firing reads its timer from, and what `show` lists.
    fn timers_of(&mut self, instance_id: i64) -> StorageResult<Vec<Timer>>;

    fn instances(&mut self, visibility: &Visibility, filter: &InstanceFilter) -> StorageResult<Vec<InstanceSummary>>;
    fn count_instances(&mut self, visibility: &Visibility, filter: &InstanceFilter) -> StorageResult<u64>;
    fn items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> StorageResult<Vec<ServerItem>>;
    /// How many items [`Transaction::items`] lists for `filter` without its
    /// limit, order and cursor.
    fn count_items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> StorageResult<u64>;
    fn pending_items_of(&mut self, instance_id: i64) -> StorageResult<Vec<ServerItem>>;
    fn audit(&mut self, instance_id: i64) -> StorageResult<Vec<AuditEntry>>;
    fn activity_records(&mut self, instance_id: i64) -> StorageResult<Vec<ActivityRecord>>;
    fn line_results(&mut self, instance_id: i64) -> StorageResult<Vec<LineResult>>;
    /// Whether `user` took part in the instance: started it, or acted on it
    /// (a participant recorded by [`Effect::TookPart`]).
    fn is_participant(&mut self, instance_id: i64, user: &str) -> StorageResult<bool>;

    // The overview's aggregates (`engine::overview`). A backend keeps them
    // in the same transaction as the changes they count, or answers them
    // from indexes: never by walking every instance.

    /// Instances per (process, version, status); groups may be listed with 0.
    fn status_counts(&mut self) -> StorageResult<Vec<StatusCount>>;
    /// Pending server items per (process, version, activity), each with the
    /// hour of its oldest and its counts per hour of creation from
    /// `since_hour` on.
    fn pending_groups(&mut self, since_hour: i64) -> StorageResult<Vec<PendingGroup>>;
    /// Pending server items created at `since` or later, per (process,
    /// version): exact, where [`Transaction::pending_groups`] counts by the
    /// hour. The youngest, read from the index by creation time.
    fn pending_since(&mut self, since: Millis) -> StorageResult<Vec<(String, u32, u64)>>;
    /// Instances started and completed per (process, version, minute), from
    /// `since_minute` on.
    fn instance_minutes(&mut self, since_minute: i64) -> StorageResult<Vec<MinuteCount>>;
    /// Instances in error grouped by reason (`overview::failure_pattern`).
    fn failure_groups(&mut self) -> StorageResult<Vec<Incident>>;
    /// The instances in error for one reason, oldest failure first.
    fn failure_ids(&mut self, key: &ReasonKey) -> StorageResult<Vec<i64>>;
    /// The oldest pending item of a process version (at an activity, if
    /// given) created at `from` or later (by creation time, then serial).
    fn pending_oldest(
        &mut self,
        process: &str,
        version: u32,
        activity: Option<&str>,
        from: Millis,
    ) -> StorageResult<Option<ServerItem>>;
    /// Where the aggregates disagree with a full count of what they count,
    /// in words (empty: they agree). A backend that counts from its rows
    /// each time has nothing to disagree and says so.
    fn aggregate_mismatches(&mut self) -> StorageResult<Vec<String>> {
        Ok(Vec::new())
    }
}

/// A database the engine can open transactions on.
pub trait Storage: Send + Sync {
    /// Runs `work` in a write transaction; commits if it returns `Ok`, durably
    /// before returning, and rolls back otherwise.
    fn write<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError>;
    /// Runs `work` on a consistent read snapshot.
    fn read<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError>;

    /// Like [`Storage::read`], given up when `cancel` is cancelled: then
    /// [`EngineError::Cancelled`], whatever the work was doing (see
    /// *Reads* above). A read that ended before the cancel answers as it
    /// ended. This default only looks before it begins: right for a
    /// backend whose reads never wait and take microseconds (the memory
    /// store); SQLite stops a running read.
    fn read_cancellable<T>(
        &self,
        cancel: &CancelToken,
        work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        self.read(work)
    }

    /// The change counter: different from its last answer whenever a write
    /// was committed since, by anyone (see *Changes* above). Cheap enough
    /// to ask many times a second.
    fn data_version(&self) -> Result<u64, EngineError>;

    /// Like [`Storage::write`], for work that may be run more than once. A
    /// store may run it first on a snapshot, recording what it read and what
    /// it would write, and then, under the write lock, only check that what
    /// it read still holds and apply the writes; when it no longer holds, the
    /// work runs again inside the transaction. `before_commit` is called in
    /// the transaction once the writes are in, just before the commit.
    fn write_planned<T>(
        &self,
        work: impl Fn(&mut dyn Transaction) -> Result<T, EngineError>,
        before_commit: impl Fn(),
    ) -> Result<T, EngineError> {
        self.write(|tx| {
            let result = work(tx)?;
            before_commit();
            Ok(result)
        })
    }

    /// `count` writes, the `i`-th running `work(i, …)`, each as
    /// [`Storage::write_planned`] would run it alone: its own unit of work,
    /// applied whole or not at all, answered on its own (a refusal or a
    /// failure of one is that one's answer). A store may plan several on one
    /// snapshot and hand them to the writer together, so that they share
    /// one commit and what planning reads; a write that reads or writes an
    /// instance an earlier one of them planned on then runs after those
    /// committed, as it would alone. `before_commit` is called before each
    /// commit that holds some of them, `after_commit` after each that held
    /// one that succeeded.
    fn write_planned_each<T>(
        &self,
        count: usize,
        work: impl Fn(usize, &mut dyn Transaction) -> Result<T, EngineError>,
        before_commit: impl Fn(),
        after_commit: impl Fn(),
    ) -> Vec<Result<T, EngineError>> {
        (0..count)
            .map(|index| {
                let result = self.write_planned(|tx| work(index, tx), &before_commit);
                if result.is_ok() {
                    after_commit();
                }
                result
            })
            .collect()
    }
}

/// Item status names as stored.
pub(crate) fn item_status_from_name(name: &str) -> Option<ItemStatus> {
    [ItemStatus::Pending, ItemStatus::Finished, ItemStatus::Cancelled].into_iter().find(|s| s.name() == name)
}
