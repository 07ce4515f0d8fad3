//! SQLite persistence: the only module that touches a database.
//!
//! One file, WAL journal, foreign keys on, `synchronous=FULL` unless asked
//! otherwise, schema versioned by `PRAGMA user_version` with forward-only
//! migrations. Writes take the write lock up front (`BEGIN IMMEDIATE`) and wait
//! for it with a busy timeout, so several processes on one database (the GUI, a
//! terminal, an external system) queue instead of failing with "database is
//! locked".
//!
//! **Group commit.** An fsync costs 0.2 to 4 ms on the disks this runs on, so
//! committing each call on its own caps throughput at a few hundred calls per
//! second. Instead, concurrent callers share one transaction, and whoever
//! finds no other caller queued behind it commits the batch for all of them.
//! Every caller still returns only after the commit that holds its work:
//! nothing is acknowledged before it is durable. A lone caller commits at
//! once, so the latency of a single call is unchanged. Members use no
//! savepoints (they cost a page copy per page touched): the engine checks
//! everything before it writes, and the rare call that fails after writing
//! gives up the whole batch, telling every member to call again.
//!
//! **Planned writes.** Only one caller at a time may write, so the hot calls
//! (start, finish) do their reading, scripts and encoding on a snapshot
//! first, outside the write lock, and under it only check that what they read
//! still holds and apply their writes (`plan`). Both cores work; the write
//! lock is held for the writing alone.
//!
//! Reads use a small pool of other connections, so they see only committed
//! data and never wait for a batch being written.

mod checkpoint;
mod floor;
mod plan;
mod runners;
mod schema;
mod sql;
mod synthetic;
mod tokens;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::engine::{EngineError, Storage, Transaction};

pub use floor::{FloorSchema, REPLAY_BATCH, Replayed, replay_lifecycles};
pub use runners::RunnerBeat;
pub use sql::SqliteTransaction;
pub use synthetic::{SYNTHETIC_ORIGINATORS, SyntheticLoad};
pub use tokens::{ApiToken, NewApiToken, TokenError};

/// How hard a commit insists on reaching the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync on every commit: an acknowledged commit survives power loss.
    #[default]
    Full,
    /// fsync at WAL checkpoints only: survives a process crash, not power loss.
    Normal,
}

impl Durability {
    pub fn name(self) -> &'static str {
        match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
        }
    }
}

/// How long a writer waits for another process's write before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Calls one transaction may hold before it is committed even though more
/// callers wait: keeps the latency of the first caller in a busy batch bounded.
const MAX_BATCH: usize = 512;

/// How long a batch with fewer members than the last one waits for the next
/// caller before it commits without them. Callers told a batch's outcome
/// come straight back with their next call, but on a machine with few cores
/// they need a moment to be scheduled: committing without them made batches
/// of a dozen where sixty were on their way, and each commit rewrote the
/// same hot pages (measured: 26 KB written to disk per lifecycle).
const LINGER: Duration = Duration::from_micros(500);

/// What the other members of a batch are told when one of them failed
/// after writing.
const BATCH_FAILED: &str = "another call committed together with this one failed, and the whole commit was rolled \
                            back: nothing of this call was saved; call again";

/// What SQLite keeps in memory for the write connection. The default (2 MiB)
/// is smaller than the indexes a hundred thousand instances touch, which
/// made the cost of a call grow with the database.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

/// Read connections, and what each keeps in memory. A planned write holds
/// its reader while it plans, and a caller finding all of them taken sleeps:
/// with 64 callers, 8 readers carried about a tenth more lifecycles per
/// second than 4 (2 were slower, 16 no better). Together they keep the
/// memory four held before.
const READERS: usize = 8;
const READER_CACHE_KIB: i64 = 4 * 1024;

/// The checkpoint thread reads each page once: it needs no cache to speak of.
const CHECKPOINT_CACHE_KIB: i64 = 1024;

/// The outcome of one batch, which its members wait for.
#[derive(Default)]
struct Batch {
    /// `Some` once the batch is committed (`Ok`) or given up (`Err`, why).
    outcome: Mutex<Option<Result<(), String>>>,
    done: Condvar,
}

impl Batch {
    fn finish(&self, outcome: Result<(), String>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.done.notify_all();
    }

    fn wait(&self) -> Result<(), String> {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = outcome.as_ref() {
                return outcome.clone();
            }
            outcome = self.done.wait(outcome).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A planned write handed to whoever holds the writer. One thread applies
/// the plans of many callers in a row, instead of the lock passing from
/// thread to thread for each (each hand-over woke a sleeping thread, which
/// cost more than applying a plan).
struct Job {
    plan: plan::Plan,
    caller: std::thread::Thread,
    /// Set once: `Ok(true)` applied and committed; `Ok(false)` stale, not
    /// applied (the caller runs its work again); `Err` its batch failed.
    outcome: OnceLock<Result<bool, String>>,
}

impl Job {
    fn finish(&self, outcome: Result<bool, String>) {
        let _ = self.outcome.set(outcome);
        self.caller.unpark();
    }
}

/// The write side: one connection and the batch it may have open.
struct Writer {
    connection: Connection,
    /// A transaction is open and holds the work of `members` callers.
    open: bool,
    members: usize,
    /// The batch being filled. Its members wait on it, not on the writer, so
    /// that waking them does not compete with the next batch for the lock.
    batch: Arc<Batch>,
    /// Planned writes applied in the open batch, told its outcome with it.
    jobs: Vec<Arc<Job>>,
    /// Outcomes of ended batches not yet told to their members: telling
    /// wakes a thread per member, which is done after the lock is let go.
    untold: Vec<Untold>,
    /// Members the last committed batch had: the next one waits (up to
    /// [`LINGER`] per caller) for as many before it commits.
    expected: usize,
    /// [`LINGER`], which tests lengthen.
    linger: Duration,
}

/// A batch's outcome for its members, to be told.
struct Untold {
    batch: Arc<Batch>,
    jobs: Vec<Arc<Job>>,
    outcome: Result<(), String>,
}

impl Untold {
    fn tell(self) {
        for job in self.jobs {
            job.finish(self.outcome.clone().map(|()| true));
        }
        self.batch.finish(self.outcome);
    }
}

/// The read connections. A caller takes any free one, or waits for the first
/// one given back, rather than queueing on one connection while another
/// stands free. The last one given back is taken first: its cache is warm.
struct ReaderPool {
    free: Mutex<Vec<Connection>>,
    given_back: Condvar,
}

impl ReaderPool {
    fn new(connections: Vec<Connection>) -> ReaderPool {
        ReaderPool { free: Mutex::new(connections), given_back: Condvar::new() }
    }

    fn take(&self) -> Connection {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(connection) = free.pop() {
                return connection;
            }
            free = self.given_back.wait(free).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn give_back(&self, connection: Connection) {
        self.free.lock().unwrap_or_else(PoisonError::into_inner).push(connection);
        self.given_back.notify_one();
    }
}

/// A flowdesk database file.
pub struct SqliteStore {
    writer: Mutex<Writer>,
    /// Callers on their way to the writer: waiting for its lock, or planning
    /// a write they will bring to it. While any are, a member leaves the
    /// commit to them, so that a batch gathers everyone in flight.
    coming: AtomicUsize,
    /// Planned writes waiting for whoever holds the writer to apply them.
    queue: Mutex<Vec<Arc<Job>>>,
    /// Signalled (with `queue` locked) when a job is queued or a caller
    /// starts coming, for a writer lingering over a small batch.
    arrivals: Condvar,
    /// A writer lingers on `arrivals`: callers that start coming signal it.
    lingering: AtomicBool,
    /// Read connections: snapshots for queries and for planned writes,
    /// which several callers make at once.
    readers: ReaderPool,
    /// The next instance id to hand out (see `SqliteTransaction::with_ids`).
    next_id: AtomicI64,
    /// What planning takes from memory rather than from its snapshot.
    remembered: plan::Remembered,
    /// Copies the write-ahead log back into the database off the writer;
    /// held for its drop, which stops the thread.
    _checkpointer: checkpoint::Checkpointer,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

impl SqliteStore {
    /// Opens a database and brings its schema up to date, creating it (and
    /// its folder) if there is none. A file that is not a flowdesk database
    /// is refused untouched (see [`schema::identify`]).
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, EngineError> {
        SqliteStore::open_as(path, durability, true).map_err(EngineError::from)
    }

    /// Opens a database that must already exist, for callers that only read
    /// or act on what it holds: a mistyped path is refused instead of
    /// becoming a new, empty database.
    pub fn open_existing(path: &Path, durability: Durability) -> Result<SqliteStore, OpenError> {
        SqliteStore::open_as(path, durability, false)
    }

    fn open_as(path: &Path, durability: Durability, create: bool) -> Result<SqliteStore, OpenError> {
        let found = schema::identify(path).map_err(|e| schema_error(e, path))?;
        match found {
            schema::Found::Nothing | schema::Found::Empty if !create => {
                return Err(OpenError::Missing(path.to_owned()));
            }
            schema::Found::Nothing => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        EngineError::Storage(format!("cannot create the folder {}: {e}", parent.display()))
                    })?;
                }
            }
            schema::Found::Empty | schema::Found::InLog | schema::Found::Flowdesk => {}
        }
        let mut writer = open_connection_as(path, durability, WRITER_CACHE_KIB, create)?;
        schema::migrate(&mut writer).map_err(|e| schema_error(e, path))?;
        let readers = ReaderPool::new(
            (0..READERS).map(|_| open_connection(path, durability, READER_CACHE_KIB)).collect::<Result<_, _>>()?,
        );
        let checkpointer = checkpoint_off(&mut writer, path, durability)?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer {
                connection: writer,
                open: false,
                members: 0,
                batch: Arc::default(),
                jobs: Vec::new(),
                untold: Vec::new(),
                expected: 0,
                linger: LINGER,
            }),
            queue: Mutex::new(Vec::new()),
            arrivals: Condvar::new(),
            lingering: AtomicBool::new(false),
            coming: AtomicUsize::new(0),
            readers,
            next_id: AtomicI64::new(0),
            remembered: plan::Remembered::default(),
            _checkpointer: checkpointer,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on a free read connection, or waits for one.
    fn with_reader<R>(&self, work: impl FnOnce(&mut Connection) -> R) -> R {
        let mut connection = self.readers.take();
        // Given back after a panic too, or the pool would shrink for good.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(&mut connection)));
        self.readers.give_back(connection);
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }

    /// Runs `work` on a read snapshot, recording what it reads and would
    /// write; with `trusting`, values planning remembers are taken from
    /// memory instead of the snapshot.
    fn plan<T>(
        &self,
        work: &impl Fn(&mut dyn Transaction) -> Result<T, EngineError>,
        trusting: bool,
    ) -> Result<(Result<T, EngineError>, plan::Plan), EngineError> {
        self.with_reader(|reader| {
            let transaction = ReadTransaction::begin(reader).map_err(|e| describe(&e, &self.path))?;
            let mut snapshot = SqliteTransaction::new(transaction.connection);
            let mut recorder = plan::Recorder::remembering(&mut snapshot, &self.next_id, &self.remembered, trusting);
            let planned = work(&mut recorder);
            Ok((planned, recorder.into_plan()))
        })
    }

    /// Counts the caller as coming to the writer until it takes the lock or
    /// gives up (the returned guard is dropped).
    fn coming(&self) -> Coming<'_> {
        self.coming.fetch_add(1, Ordering::SeqCst);
        // Paired with `linger`, which sets the flag before it reads
        // `coming`: either it sees this caller, or this caller sees it.
        if self.lingering.load(Ordering::SeqCst) {
            let _queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            self.arrivals.notify_all();
        }
        Coming { store: self, still: true }
    }

    /// Tells the outcomes of ended batches, then waits up to [`LINGER`] for
    /// a caller to come or a job to be queued. Whether one did.
    fn linger(&self, writer: &mut Writer) -> bool {
        // Those told are the callers this wait is for.
        for outcome in std::mem::take(&mut writer.untold) {
            outcome.tell();
        }
        let deadline = Instant::now() + writer.linger;
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        self.lingering.store(true, Ordering::SeqCst);
        let arrived = loop {
            if !queue.is_empty() || self.coming.load(Ordering::SeqCst) > 0 {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            queue = self.arrivals.wait_timeout(queue, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        };
        self.lingering.store(false, Ordering::SeqCst);
        arrived
    }

    /// Ends the open batch: commits it, or rolls it back if `rollback`. Its
    /// members are told the outcome when the lock is let go ([`Self::release`]).
    fn end_batch(&self, writer: &mut Writer, rollback: Option<String>) {
        if !writer.open {
            return;
        }
        let outcome = match rollback {
            Some(reason) => {
                let _ = run_cached(&writer.connection, "ROLLBACK");
                Err(reason)
            }
            None => run_cached(&writer.connection, "COMMIT").map_err(|e| reason(describe(&e, &self.path))),
        };
        if outcome.is_err() && !writer.connection.is_autocommit() {
            let _ = run_cached(&writer.connection, "ROLLBACK");
        }
        writer.open = false;
        writer.members = 0;
        let untold =
            Untold { batch: std::mem::take(&mut writer.batch), jobs: std::mem::take(&mut writer.jobs), outcome };
        writer.untold.push(untold);
    }

    /// Applies every queued planned write in the open batch (opening one if
    /// needed), until the queue is empty.
    fn serve(&self, writer: &mut Writer) {
        loop {
            let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
            if jobs.is_empty() {
                return;
            }
            for job in jobs {
                self.apply_job(writer, job);
            }
        }
    }

    fn apply_job(&self, writer: &mut Writer, job: Arc<Job>) {
        if !writer.open {
            if let Err(e) = run_cached(&writer.connection, "BEGIN IMMEDIATE") {
                job.finish(Err(reason(describe(&e, &self.path))));
                return;
            }
            writer.open = true;
        }
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut transaction = SqliteTransaction::with_ids(&writer.connection, &self.next_id);
            // A read that fails here is answered as stale: the caller runs
            // its work again in the transaction and meets the error itself.
            if !matches!(job.plan.still_holds(&mut transaction), Ok(true)) {
                return Ok(false);
            }
            job.plan.apply(&mut transaction).map(|()| true)
        }));
        match applied {
            Ok(Ok(true)) => {
                writer.members += 1;
                writer.jobs.push(job);
            }
            Ok(Ok(false)) => job.finish(Ok(false)),
            Ok(Err(error)) => {
                job.finish(Err(reason(error)));
                self.end_batch(writer, Some(BATCH_FAILED.to_owned()));
            }
            Err(_) => {
                job.finish(Err("a write failed unexpectedly and nothing was saved; call again".to_owned()));
                self.end_batch(writer, Some(BATCH_FAILED.to_owned()));
            }
        }
    }

    /// Lets go of the writer, the one way every holder does: first apply
    /// what is queued and commit if nobody else is on the way (they will
    /// commit otherwise); and never while a planned write is queued, since
    /// its caller may have found the lock taken and gone to sleep.
    fn release(&self, mut writer: MutexGuard<'_, Writer>) {
        loop {
            self.serve(&mut writer);
            let nobody_coming = self.coming.load(Ordering::SeqCst) == 0;
            let small = writer.members < writer.expected.min(MAX_BATCH);
            if writer.open && nobody_coming && small && self.linger(&mut writer) {
                continue;
            }
            if writer.open && (nobody_coming || writer.members >= MAX_BATCH) {
                // The next batch waits for as many (fewer, if nobody came in
                // time for this one).
                writer.expected = writer.members;
                self.end_batch(&mut writer, None);
            }
            let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.is_empty() {
                let untold = std::mem::take(&mut writer.untold);
                // In this order: a caller queueing after the check finds the
                // writer free.
                drop(writer);
                drop(queue);
                for outcome in untold {
                    outcome.tell();
                }
                return;
            }
        }
    }

    /// Hands a planned write to the writer and waits for its outcome,
    /// applying it (and everyone else's) itself if the writer is free.
    fn submit(&self, plan: plan::Plan, coming: Coming<'_>) -> Result<bool, String> {
        let job = Arc::new(Job { plan, caller: std::thread::current(), outcome: OnceLock::new() });
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.push(job.clone());
            self.arrivals.notify_all();
        }
        coming.arrived();
        loop {
            if let Some(outcome) = job.outcome.get() {
                return outcome.clone();
            }
            match self.writer.try_lock() {
                Ok(writer) => self.release(writer),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => self.release(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if job.outcome.get().is_none() {
                // Unparked when the job is answered; a spurious wake only
                // goes round once more.
                std::thread::park();
            }
        }
    }

    fn write_batched<T>(
        &self,
        coming: Coming<'_>,
        work: impl FnOnce(&mut SqliteTransaction<'_>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut writer = coming.lock_writer();
        if !writer.open {
            if let Err(e) = run_cached(&writer.connection, "BEGIN IMMEDIATE") {
                // Let go the one way, so that queued plans are answered too.
                self.release(writer);
                return Err(describe(&e, &self.path));
            }
            writer.open = true;
        }
        // Members share the transaction without savepoints: a savepoint
        // copies every page its member first touches, which cost a fifth of
        // a call. The engine checks everything before it writes, so a call
        // refused after writing (a bug, or a storage error) is rare, and then
        // the whole batch is given up: every member is told, none is
        // acknowledged, and each can simply call again.
        let alone = writer.members == 0;
        // A panic in the work (a bug) must not leave the batch open with other
        // callers waiting on it for ever: give the batch up, then let it go on.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut transaction = SqliteTransaction::with_ids(&writer.connection, &self.next_id);
            let result = work(&mut transaction);
            (result, transaction.wrote())
        }));
        let (result, wrote) = match outcome {
            Ok(outcome) => outcome,
            Err(panic) => {
                self.end_batch(
                    &mut writer,
                    Some("a write failed unexpectedly and the whole commit was rolled back: nothing was saved; call again".to_owned()),
                );
                self.release(writer);
                std::panic::resume_unwind(panic);
            }
        };
        if result.is_err() && (alone || wrote) {
            let others = if alone { String::new() } else { BATCH_FAILED.to_owned() };
            self.end_batch(&mut writer, Some(others));
            self.release(writer);
            return result;
        }
        if result.is_ok() {
            writer.members += 1;
        }
        let batch = writer.batch.clone();
        self.release(writer);
        // Someone coming after us commits the batch if we did not. A refusal
        // waits too: it may rest on a batch member's work (an item another
        // member just finished), which only stands once committed.
        match batch.wait() {
            Ok(()) => result,
            Err(reason) if result.is_ok() => Err(EngineError::Storage(reason)),
            Err(reason) if !reason.is_empty() => Err(EngineError::Storage(reason)),
            Err(_) => result,
        }
    }
}

/// A read transaction on a reader connection, begun and ended through the
/// statement cache: rusqlite's `Transaction` parses `BEGIN` and `ROLLBACK`
/// afresh each time, which was a tenth of the CPU of planning a start.
struct ReadTransaction<'c> {
    connection: &'c Connection,
}

impl<'c> ReadTransaction<'c> {
    fn begin(connection: &'c Connection) -> rusqlite::Result<ReadTransaction<'c>> {
        // One left open (its end failed) would make every `BEGIN` fail.
        if !connection.is_autocommit() {
            run_cached(connection, "ROLLBACK")?;
        }
        run_cached(connection, "BEGIN")?;
        Ok(ReadTransaction { connection })
    }
}

impl Drop for ReadTransaction<'_> {
    /// It wrote nothing: ending it only lets go of its snapshot of the log.
    fn drop(&mut self) {
        let _ = run_cached(self.connection, "ROLLBACK");
    }
}

/// Runs a fixed statement through the statement cache (no parsing per call).
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// A connection to the database at `path`, which exists (the writer's
/// connection is opened first), set up as all of flowdesk's are.
fn open_connection(path: &Path, durability: Durability, cache_kib: i64) -> Result<Connection, EngineError> {
    open_connection_as(path, durability, cache_kib, false)
}

/// A connection to the database at `path`, creating the file if `create`.
fn open_connection_as(
    path: &Path,
    durability: Durability,
    cache_kib: i64,
    create: bool,
) -> Result<Connection, EngineError> {
    use rusqlite::OpenFlags;
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let connection = Connection::open_with_flags(path, flags).map_err(|e| describe(&e, path))?;
    configure(&connection, durability, cache_kib).map_err(|e| describe(&e, path))?;
    Ok(connection)
}

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// No file, or an empty one, where a database must already be: most
    /// likely a mistyped path.
    #[error("no database at {}", .0.display())]
    Missing(PathBuf),
    #[error(transparent)]
    Storage(#[from] EngineError),
}

impl From<OpenError> for EngineError {
    fn from(err: OpenError) -> EngineError {
        match err {
            OpenError::Missing(_) => EngineError::Storage(err.to_string()),
            OpenError::Storage(err) => err,
        }
    }
}

fn schema_error(err: schema::SchemaError, path: &Path) -> EngineError {
    match err {
        schema::SchemaError::Foreign(foreign) => EngineError::Storage(format!("{} {foreign}", path.display())),
        schema::SchemaError::Sqlite(err) => describe(&err, path),
        schema::SchemaError::Io(err) => EngineError::Storage(format!("cannot read {}: {err}", path.display())),
    }
}

/// Starts the thread that checkpoints `writer`'s log and hooks the writer's
/// commits to it. Drop the writer first, then the returned checkpointer
/// (which stops the thread).
fn checkpoint_off(
    writer: &mut Connection,
    path: &Path,
    durability: Durability,
) -> Result<checkpoint::Checkpointer, EngineError> {
    let connection = open_connection(path, durability, CHECKPOINT_CACHE_KIB)?;
    let checkpointer = checkpoint::Checkpointer::start(connection, checkpoint::Thresholds::default())
        .map_err(|e| EngineError::Storage(format!("cannot start the checkpoint thread: {e}")))?;
    writer.wal_hook(Some(checkpointer.hook())).map_err(|e| describe(&e, path))?;
    Ok(checkpointer)
}

fn configure(connection: &Connection, durability: Durability, cache_kib: i64) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // Room for every statement the engine uses, so none is parsed twice.
    connection.set_prepared_statement_cache_capacity(128);
    // journal_mode answers with the mode in force; WAL sticks to the file.
    let _mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    connection.pragma_update(None, "synchronous", durability.name())?;
    connection.pragma_update(None, "foreign_keys", true)?;
    connection.pragma_update(None, "cache_size", -cache_kib)?;
    // Temporary tables and indexes (sorts of large queries) in memory.
    connection.pragma_update(None, "temp_store", "MEMORY")?;
    // SQLite (built with STAT4) otherwise re-plans a statement each time a
    // bound value changes, which for the engine's point lookups is a full
    // re-parse per call and never a better plan.
    connection.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    sql::define_functions(connection)
}

/// Why a batch or a planned write failed, as its members are told it and
/// as it goes back into [`EngineError::Storage`]: without the "database: "
/// that the error's own wording starts with, which would be said twice.
fn reason(err: EngineError) -> String {
    match err {
        EngineError::Storage(message) => message,
        other => other.to_string(),
    }
}

/// Free space under which an I/O error is taken for a full disk. SQLite
/// reports as a full disk only the writes that fail for want of room in the
/// database or its log; others, such as growing the `-shm` file when a
/// connection opens, fail as plain I/O errors.
const FULL_BELOW_BYTES: u64 = 1024 * 1024;

/// Whether the disk holding `path` has less than [`FULL_BELOW_BYTES`] free.
fn disk_is_full(path: &Path) -> bool {
    #[cfg(unix)]
    {
        let folder = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        rustix::fs::statvfs(folder).is_ok_and(|disk| disk.f_bavail.saturating_mul(disk.f_frsize) < FULL_BELOW_BYTES)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// A database error in words a user can act on.
pub(crate) fn describe(err: &rusqlite::Error, path: &Path) -> EngineError {
    use rusqlite::ErrorCode;
    let message = match err.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => format!(
            "{} stayed busy for {} s: another program holds a long write on it",
            path.display(),
            BUSY_TIMEOUT.as_secs()
        ),
        Some(ErrorCode::NotADatabase) => format!("{} is not a flowdesk database", path.display()),
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly) => {
            format!("cannot open {} for writing: {err}", path.display())
        }
        Some(ErrorCode::DiskFull) => format!("the disk holding {} is full", path.display()),
        Some(ErrorCode::SystemIoFailure) if disk_is_full(path) => {
            format!("the disk holding {} is full", path.display())
        }
        _ => format!("{}: {err}", path.display()),
    };
    EngineError::Storage(message)
}

impl Storage for SqliteStore {
    fn write<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        self.write_batched(self.coming(), |tx| work(tx))
    }

    fn read<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        self.with_reader(|reader| {
            let transaction = ReadTransaction::begin(reader).map_err(|e| describe(&e, &self.path))?;
            work(&mut SqliteTransaction::new(transaction.connection))
        })
    }

    fn write_planned<T>(
        &self,
        work: impl Fn(&mut dyn Transaction) -> Result<T, EngineError>,
        before_commit: impl Fn(),
    ) -> Result<T, EngineError> {
        let coming = self.coming();
        let planned = match self.plan(&work, true) {
            // A refusal may rest on a remembered value that no longer
            // holds: plan again on the snapshot alone before answering it.
            Ok((Err(_), plan)) if plan.used_memory() => self.plan(&work, false),
            planned => planned,
        };
        let (planned, plan) = match planned {
            Ok((planned, plan)) if plan.usable() => (planned, plan),
            // Not plannable (or the snapshot failed): work in the transaction.
            _ => {
                return self.write_batched(coming, |tx| {
                    let result = work(tx)?;
                    before_commit();
                    Ok(result)
                });
            }
        };
        match planned {
            Ok(value) => {
                // Called before the plan is handed over rather than between
                // its apply and the commit, which another thread does.
                before_commit();
                match self.submit(plan, coming) {
                    Ok(true) => Ok(value),
                    Err(reason) => Err(EngineError::Storage(reason)),
                    // Someone changed what the plan read: do the work again,
                    // in the transaction, and stop trusting what planning
                    // remembered (it may be what changed).
                    Ok(false) => {
                        self.remembered.forget();
                        self.write_batched(self.coming(), |tx| {
                            let result = work(tx)?;
                            before_commit();
                            Ok(result)
                        })
                    }
                }
            }
            // A refusal that wrote nothing rests on committed state only, as
            // of a moment after the call began: a true answer.
            Err(refusal) if !plan.wrote() && !matches!(refusal, EngineError::Storage(_) | EngineError::Internal(_)) => {
                drop(coming);
                Err(refusal)
            }
            Err(_) => self.write_batched(coming, |tx| {
                let result = work(tx)?;
                before_commit();
                Ok(result)
            }),
        }
    }
}

/// A caller counted in [`SqliteStore::coming`].
struct Coming<'s> {
    store: &'s SqliteStore,
    /// Not yet at the lock.
    still: bool,
}

impl<'s> Coming<'s> {
    /// The caller's planned write is queued: it is no longer coming (the
    /// queue itself keeps the batch open until it is applied).
    fn arrived(mut self) {
        self.still = false;
        self.store.coming.fetch_sub(1, Ordering::SeqCst);
    }

    /// Takes the write lock; the caller is no longer coming.
    fn lock_writer(mut self) -> MutexGuard<'s, Writer> {
        let writer = self.store.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.still = false;
        self.store.coming.fetch_sub(1, Ordering::SeqCst);
        writer
    }
}

impl Drop for Coming<'_> {
    /// A caller that gives up on the way (a refusal, or a panic while
    /// planning) may be the one the open batch's members left the commit
    /// to: if nobody else is coming, it commits the batch for them.
    fn drop(&mut self) {
        if !self.still {
            return;
        }
        if self.store.coming.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.store.release(self.store.writer.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

#[cfg(test)]
mod group_commit_tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::engine::VersionRecord;
    use crate::model::Right;

    /// A fresh store with a process `p` deployed, so rights can be granted on it.
    fn store_with_process(path: &Path) -> SqliteStore {
        let store = SqliteStore::open(path, Durability::Normal).unwrap();
        let version = VersionRecord {
            process: "p".into(),
            version: 1,
            definition_json: "{}".into(),
            deployed_at: 0,
            deployed_by: "a".into(),
        };
        store.write(|tx| tx.insert_version(&version)).unwrap();
        store
    }

    /// A planned write queued while another caller holds the writer finds it
    /// taken and sleeps; the holder must apply it when it lets go, or the
    /// caller sleeps for ever. Both writes end up in one commit.
    #[test]
    fn a_plan_queued_while_the_writer_is_held_is_applied_by_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_process(&dir.path().join("queued.db")));
        let holding = Arc::new(AtomicBool::new(false));
        let (done, finished) = std::sync::mpsc::channel();
        // Plain threads, not scoped ones: if a caller hangs, the test fails
        // instead of waiting for it for ever.
        {
            let (store, holding, done) = (store.clone(), holding.clone(), done.clone());
            std::thread::spawn(move || {
                let held = store.write(|tx| {
                    holding.store(true, Ordering::SeqCst);
                    // Keep the writer until the other caller's plan is queued.
                    while store.queue.lock().unwrap().is_empty() {
                        std::thread::yield_now();
                    }
                    tx.grant("p", "holder", Right::View)
                });
                let _ = done.send(("holder", held));
            });
        }
        {
            let store = store.clone();
            std::thread::spawn(move || {
                while !holding.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                let planned = store.write_planned(|tx| tx.grant("p", "planner", Right::Start), || {});
                let _ = done.send(("planner", planned));
            });
        }
        for _ in 0..2 {
            let (who, outcome) = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("a caller hung");
            assert!(outcome.is_ok(), "{who}: {outcome:?}");
        }
        assert_eq!(store.read(|tx| tx.rights("p", "holder")).unwrap(), [Right::View]);
        assert_eq!(store.read(|tx| tx.rights("p", "planner")).unwrap(), [Right::Start]);
    }

    /// A batch waits for as many members as the last one had; when fewer
    /// come, it commits once the wait runs out, and expects that many next.
    #[test]
    fn a_batch_expecting_more_callers_than_come_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_process(&dir.path().join("linger.db")));
        store.writer.lock().unwrap().expected = 50;
        let (done, finished) = std::sync::mpsc::channel();
        {
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = done.send(store.write_planned(|tx| tx.grant("p", "alone", Right::Start), || {}));
            });
        }
        let outcome = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("the lone caller hung");
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(store.read(|tx| tx.rights("p", "alone")).unwrap(), [Right::Start]);
        assert_eq!(store.writer.lock().unwrap().expected, 1);
    }

    /// A caller arriving while the writer waits over a small batch joins it.
    #[test]
    fn a_caller_arriving_while_the_writer_lingers_joins_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_process(&dir.path().join("join.db")));
        {
            let mut writer = store.writer.lock().unwrap();
            writer.expected = 2;
            // Long enough for any machine to bring the second caller.
            writer.linger = std::time::Duration::from_secs(60);
        }
        let (done, finished) = std::sync::mpsc::channel();
        {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let _ = done.send(store.write_planned(|tx| tx.grant("p", "first", Right::Start), || {}));
            });
        }
        while !store.lingering.load(Ordering::SeqCst) {
            if let Ok(outcome) = finished.try_recv() {
                panic!("the first caller committed without waiting: {outcome:?}");
            }
            std::thread::yield_now();
        }
        {
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = done.send(store.write_planned(|tx| tx.grant("p", "second", Right::Start), || {}));
            });
        }
        for _ in 0..2 {
            let outcome = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("a caller hung");
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        assert_eq!(store.read(|tx| tx.rights("p", "second")).unwrap(), [Right::Start]);
        assert_eq!(store.writer.lock().unwrap().expected, 2, "both calls were committed together");
    }

    /// A read whose work panics gives its connection back: more panics than
    /// there are readers, and reads still find one.
    #[test]
    fn a_panicking_read_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_process(&dir.path().join("readers.db")));
        for _ in 0..READERS * 2 {
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.read(|_| -> Result<(), EngineError> { panic!("a bug in a read") })
            }));
            assert!(panicked.is_err());
        }
        let (done, read) = std::sync::mpsc::channel();
        {
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = done.send(store.read(|tx| tx.default_version("p")));
            });
        }
        let version = read.recv_timeout(std::time::Duration::from_secs(60)).expect("no reader was left");
        assert_eq!(version.unwrap(), Some(1));
    }

    /// Regression: a panic inside a batch used to leave the other members of
    /// the batch waiting for a commit that never came.
    #[test]
    fn a_panic_in_a_batch_fails_its_other_members_instead_of_hanging_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_process(&dir.path().join("panic.db"));
        let in_batch = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                store.write(|tx| {
                    in_batch.store(true, Ordering::SeqCst);
                    // Stay until the second caller queues behind us, so that we
                    // leave the commit to it and wait.
                    while store.coming.load(Ordering::SeqCst) == 0 {
                        std::thread::yield_now();
                    }
                    tx.grant("p", "u", Right::View)
                })
            });
            while !in_batch.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            let second = scope.spawn(|| store.write(|_| -> Result<(), EngineError> { panic!("a bug in the work") }));
            assert!(second.join().is_err(), "the panic reaches its own caller");
            first.join().unwrap()
        });
        // The first member's work was rolled back with the batch, and it is told so.
        assert!(matches!(outcome, Err(EngineError::Storage(_))), "{outcome:?}");
        assert!(store.read(|tx| tx.rights("p", "u")).unwrap().is_empty());
        // The store keeps working.
        store.write(|tx| tx.grant("p", "u", Right::View)).unwrap();
        assert_eq!(store.read(|tx| tx.rights("p", "u")).unwrap(), [Right::View]);
    }
}
