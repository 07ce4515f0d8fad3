//! Persistence: the SQLite store, the only module that touches a database,
//! and the memory store (`memory.rs`), which keeps the same contract in
//! plain collections (for the engine's conformance suite; it uses nothing
//! of SQLite). The rest of this page is about the SQLite store.
//!
//! One file, WAL journal, foreign keys on, `synchronous=FULL` unless asked
//! otherwise, schema versioned by `PRAGMA user_version` with forward-only
//! migrations. Writes take the write lock up front (`BEGIN IMMEDIATE`) and wait
//! for it with a busy timeout, so several processes on one database (the GUI, a
//! terminal, an external system) queue instead of failing with "database is
//! locked".
//!
//! **Group commit** (`writer.rs`): concurrent callers share one
//! transaction, and each returns only after the commit that holds its work.
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
mod fields;
mod floor;
mod memory;
mod overview;
mod plan;
mod runners;
mod schema;
mod search;
mod sql;
mod synthetic;
mod tokens;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;

use crate::engine::{CancelToken, EngineError, Storage, StorageError, StorageErrorKind, Transaction};

pub use floor::{FloorSchema, REPLAY_BATCH, Replayed, replay_lifecycles};
pub use memory::MemoryStore;
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

/// How long a writer waits for another process's write before giving up,
/// unless told otherwise ([`SqliteStore::set_busy_timeout`]).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

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

/// The change watcher's connection reads no table at all.
const WATCHER_CACHE_KIB: i64 = 64;

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
    /// The write connection and group commit.
    writes: writer::GroupCommit,
    /// Read connections: snapshots for queries and for planned writes,
    /// which several callers make at once.
    readers: ReaderPool,
    /// The connection `PRAGMA data_version` is asked on: the number is per
    /// connection (it moves when any other connection commits), so every
    /// answer of [`Storage::data_version`] comes from this one. It never
    /// writes, so no commit of the store's own goes unseen.
    watcher: Mutex<Connection>,
    /// The next instance id to hand out (see `SqliteTransaction::with_ids`),
    /// shared by planning and the writer.
    next_id: Arc<AtomicI64>,
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
    /// is refused untouched (see `schema::identify`).
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
                        EngineError::Storage(StorageError::new(
                            kind_of_io(&e, StorageErrorKind::CannotOpen),
                            format!("cannot create the folder {}: {e}", parent.display()),
                        ))
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
        let watcher = Mutex::new(open_connection(path, durability, WATCHER_CACHE_KIB)?);
        let checkpointer = checkpoint_off(&mut writer, path, durability)?;
        let next_id = Arc::new(AtomicI64::new(0));
        Ok(SqliteStore {
            writes: writer::GroupCommit::new(writer, next_id.clone(), path.to_owned()),
            readers,
            watcher,
            next_id,
            remembered: plan::Remembered::default(),
            _checkpointer: checkpointer,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How long a write waits for another program's write to end before it
    /// fails as [`StorageErrorKind::Busy`] ([`BUSY_TIMEOUT`] unless set).
    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), EngineError> {
        self.writes.exclusive(|connection| connection.busy_timeout(timeout).map_err(|e| describe(&e, &self.path)))
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

/// How many steps of SQLite's machine a cancellable read runs between two
/// looks at its token: a look is a call and an atomic load, a thousand
/// steps a few microseconds of a count.
const CANCEL_CHECK_STEPS: std::ffi::c_int = 1000;

/// A read connection that stops its statements once `cancel` is cancelled
/// (they fail with `SQLITE_INTERRUPT`), until dropped. Dropped, it removes
/// the handler and ends a transaction left open (a `ROLLBACK` the handler
/// stopped), so that the connection goes back to the pool as a read that
/// ended leaves it; the transaction it holds is dropped first.
struct Watched<'c> {
    connection: &'c mut Connection,
}

impl<'c> Watched<'c> {
    fn install(connection: &'c mut Connection, cancel: &CancelToken) -> rusqlite::Result<Watched<'c>> {
        let cancel = cancel.clone();
        connection.progress_handler(CANCEL_CHECK_STEPS, Some(move || cancel.is_cancelled()))?;
        Ok(Watched { connection })
    }

    fn connection(&self) -> &Connection {
        self.connection
    }
}

impl Drop for Watched<'_> {
    fn drop(&mut self) {
        let _ = self.connection.progress_handler(0, None::<fn() -> bool>);
        if !self.connection.is_autocommit() {
            let _ = run_cached(self.connection, "ROLLBACK");
        }
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
            OpenError::Missing(_) => StorageError::new(StorageErrorKind::CannotOpen, err.to_string()).into(),
            OpenError::Storage(err) => err,
        }
    }
}

fn schema_error(err: schema::SchemaError, path: &Path) -> EngineError {
    match err {
        schema::SchemaError::Foreign(foreign) => {
            StorageError::new(StorageErrorKind::Foreign, format!("{} {foreign}", path.display())).into()
        }
        schema::SchemaError::Sqlite(err) => describe(&err, path),
        schema::SchemaError::Io(err) => {
            StorageError::new(kind_of_io(&err, StorageErrorKind::Io), format!("cannot read {}: {err}", path.display()))
                .into()
        }
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
        .map_err(|e| StorageError::new(StorageErrorKind::Other, format!("cannot start the checkpoint thread: {e}")))?;
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

/// Why a batch or a planned write failed, as its members are told it: a
/// storage error keeps its kind; anything else the work failed with (a bug)
/// is a failure of the store's own.
fn reason(err: EngineError) -> StorageError {
    match err {
        EngineError::Storage(err) => err,
        other => StorageError::new(StorageErrorKind::Other, other.to_string()),
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

/// What kind of failure an SQLite error is: the one place the store sorts
/// SQLite's result codes into the kinds of the storage contract (see
/// `engine::storage`, *Errors*). A full disk that SQLite reports as a plain
/// I/O error is found by [`describe`], which knows the file.
pub(crate) fn kind_of(err: &rusqlite::Error) -> StorageErrorKind {
    use rusqlite::ErrorCode;
    match err.sqlite_error_code() {
        // SQLITE_PROTOCOL: the connection lost the write-ahead log's locking
        // race to other connections for seconds on end (SQLite retries it
        // itself first): another program's writes, as a busy database is.
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::FileLockingProtocolFailed) => {
            StorageErrorKind::Busy
        }
        Some(ErrorCode::DiskFull) => StorageErrorKind::DiskFull,
        Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => StorageErrorKind::Corrupt,
        Some(ErrorCode::ReadOnly) => StorageErrorKind::ReadOnly,
        Some(ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => StorageErrorKind::CannotOpen,
        Some(ErrorCode::SystemIoFailure) => StorageErrorKind::Io,
        _ => StorageErrorKind::Other,
    }
}

/// The kind of an I/O error of the store's own (making a folder, reading a
/// header); `otherwise` when it is none of those the contract names.
fn kind_of_io(err: &std::io::Error, otherwise: StorageErrorKind) -> StorageErrorKind {
    match err.kind() {
        std::io::ErrorKind::StorageFull => StorageErrorKind::DiskFull,
        std::io::ErrorKind::ReadOnlyFilesystem => StorageErrorKind::ReadOnly,
        _ => otherwise,
    }
}

/// A database error in words a user can act on, naming the file.
pub(crate) fn describe(err: &rusqlite::Error, path: &Path) -> EngineError {
    let path_shown = path.display();
    let kind = match kind_of(err) {
        StorageErrorKind::Io if disk_is_full(path) => StorageErrorKind::DiskFull,
        kind => kind,
    };
    let message = match kind {
        StorageErrorKind::Busy => {
            format!("{path_shown} stayed busy: another program held a long write on it for longer than flowdesk waits")
        }
        StorageErrorKind::DiskFull => format!("the disk holding {path_shown} is full"),
        StorageErrorKind::Corrupt => format!("the database file {path_shown} is damaged: {err}"),
        StorageErrorKind::ReadOnly => format!("the database file {path_shown} cannot be written: {err}"),
        StorageErrorKind::CannotOpen => format!("cannot open {path_shown} for writing: {err}"),
        StorageErrorKind::Io => format!("the disk failed a read or a write of {path_shown}: {err}"),
        _ => format!("{path_shown}: {err}"),
    };
    StorageError::new(kind, message).into()
}

impl Storage for SqliteStore {
    fn write<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        self.writes.write(self.writes.coming(), |tx| work(tx))
    }

    fn read<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        self.with_reader(|reader| {
            let transaction = ReadTransaction::begin(reader).map_err(|e| describe(&e, &self.path))?;
            work(&mut SqliteTransaction::new(transaction.connection))
        })
    }

    /// The read runs with a progress handler on its connection that stops
    /// the statement running ([`CANCEL_CHECK_STEPS`] steps of SQLite's
    /// machine at most after the cancel); the handler goes, and the read's
    /// transaction ends, before the connection goes back to the pool.
    fn read_cancellable<T>(
        &self,
        cancel: &CancelToken,
        work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        if cancel.is_cancelled() {
            return Err(EngineError::Cancelled);
        }
        let answer = self.with_reader(|reader| {
            let watched = Watched::install(reader, cancel).map_err(|e| describe(&e, &self.path))?;
            let transaction = ReadTransaction::begin(watched.connection()).map_err(|e| describe(&e, &self.path))?;
            work(&mut SqliteTransaction::new(transaction.connection))
        });
        match answer {
            // The interrupted statement failed, or what the work made of it.
            Err(_) if cancel.is_cancelled() => Err(EngineError::Cancelled),
            answer => answer,
        }
    }

    fn data_version(&self) -> Result<u64, EngineError> {
        let watcher = self.watcher.lock().unwrap_or_else(PoisonError::into_inner);
        // Outside a transaction the pragma begins a read of its own, which
        // in WAL mode is where SQLite notices another connection's commit
        // (the log's index header moved).
        let version = watcher
            .prepare_cached("PRAGMA data_version")
            .and_then(|mut statement| statement.query_row([], |row| row.get::<_, i64>(0)))
            .map_err(|e| describe(&e, &self.path))?;
        Ok(version as u64)
    }

    fn write_planned<T>(
        &self,
        work: impl Fn(&mut dyn Transaction) -> Result<T, EngineError>,
        before_commit: impl Fn(),
    ) -> Result<T, EngineError> {
        let coming = self.writes.coming();
        // The one way a planned write falls back: the work runs again in the
        // transaction, under the lock, as an unplanned write would.
        let in_transaction = |coming: writer::Coming<'_>| {
            self.writes.write(coming, |tx| {
                let result = work(tx)?;
                before_commit();
                Ok(result)
            })
        };
        let planned = match self.plan(&work, true) {
            // A refusal may rest on a remembered value that no longer
            // holds: plan again on the snapshot alone before answering it.
            Ok((Err(_), plan)) if plan.used_memory() => self.plan(&work, false),
            planned => planned,
        };
        match planned {
            // Not plannable (or the snapshot failed).
            Err(_) => in_transaction(coming),
            Ok((_, plan)) if !plan.usable() => in_transaction(coming),
            Ok((Ok(value), plan)) => {
                // Called before the plan is handed over rather than between
                // its apply and the commit, which another thread does.
                before_commit();
                match self.writes.submit(plan, coming) {
                    Ok(true) => Ok(value),
                    Err(reason) => Err(EngineError::Storage(reason)),
                    // Someone changed what the plan read: do the work again,
                    // and stop trusting what planning remembered (it may be
                    // what changed).
                    Ok(false) => {
                        self.remembered.forget();
                        in_transaction(self.writes.coming())
                    }
                }
            }
            // A refusal that wrote nothing rests on committed state only, as
            // of a moment after the call began: a true answer.
            Ok((Err(refusal), plan)) if !plan.wrote() && refusal.is_refusal() => {
                drop(coming);
                Err(refusal)
            }
            Ok((Err(_), _)) => in_transaction(coming),
        }
    }

    /// Plans every write on one snapshot, one after another, and hands the
    /// plans of separate instances to the writer as one: a member of a group
    /// commit whose reads are all checked before any of its writes is
    /// applied. A firing costs about what a callback's finish does, and most
    /// of that is per call, not per row: a snapshot begun (and its page
    /// cache, which SQLite empties after every commit, read again), a
    /// handover to the writer and a wake-up after the commit. Those are paid
    /// once here. What cannot go that way (a plan that touches an instance
    /// an earlier one did, or is not plannable, or a refusal resting on a
    /// remembered value), and every write of a plan found stale under the
    /// lock, runs afterwards as [`Storage::write_planned`] alone, in order.
    fn write_planned_each<T>(
        &self,
        count: usize,
        work: impl Fn(usize, &mut dyn Transaction) -> Result<T, EngineError>,
        before_commit: impl Fn(),
        after_commit: impl Fn(),
    ) -> Vec<Result<T, EngineError>> {
        let alone = |index: usize| {
            let result = self.write_planned(|tx| work(index, tx), &before_commit);
            if result.is_ok() {
                after_commit();
            }
            result
        };
        if count < 2 {
            return (0..count).map(alone).collect();
        }
        let planned = self.with_reader(|reader| {
            let transaction = ReadTransaction::begin(reader).map_err(|e| describe(&e, &self.path))?;
            let mut snapshot = SqliteTransaction::new(transaction.connection);
            Ok::<_, EngineError>(
                (0..count)
                    .map(|index| {
                        let mut recorder =
                            plan::Recorder::remembering(&mut snapshot, &self.next_id, &self.remembered, true);
                        let planned = work(index, &mut recorder);
                        (planned, recorder.into_plan())
                    })
                    .collect::<Vec<_>>(),
            )
        });
        let Ok(planned) = planned else {
            // The snapshot failed: each meets it, or not, on its own.
            return (0..count).map(alone).collect();
        };
        let mut results: Vec<Option<Result<T, EngineError>>> = (0..count).map(|_| None).collect();
        let mut merged: Option<plan::Plan> = None;
        let mut in_merged: Vec<(usize, T)> = Vec::new();
        // Instances an earlier write planned on, merged or left for later:
        // a write on one of them was worked out without the earlier one's
        // writes, so it waits for them and runs alone, in order. One left
        // for later whose instances are not known holds back all after it.
        let mut touched: std::collections::HashSet<i64> = std::collections::HashSet::new();
        let mut unknown = false;
        let mut later: Vec<usize> = Vec::new();
        for (index, (result, plan)) in planned.into_iter().enumerate() {
            let instances = plan.instances();
            let apart = !unknown && instances.as_ref().is_some_and(|ids| ids.iter().all(|id| !touched.contains(id)));
            match instances {
                Some(ids) => touched.extend(ids),
                None => unknown = true,
            }
            match result {
                Ok(value) if apart && plan.usable() => {
                    in_merged.push((index, value));
                    match &mut merged {
                        Some(merged) => merged.absorb(plan),
                        None => merged = Some(plan),
                    }
                }
                // A refusal that wrote nothing and rests on the snapshot
                // alone is a true answer, as alone.
                Err(refusal) if apart && !plan.wrote() && !plan.used_memory() && refusal.is_refusal() => {
                    results[index] = Some(Err(refusal));
                }
                _ => later.push(index),
            }
        }
        if let Some(plan) = merged {
            before_commit();
            match self.writes.submit(plan, self.writes.coming()) {
                Ok(true) => {
                    after_commit();
                    for (index, value) in in_merged {
                        results[index] = Some(Ok(value));
                    }
                }
                Err(reason) => {
                    for (index, _) in in_merged {
                        results[index] = Some(Err(EngineError::Storage(reason.clone())));
                    }
                }
                // Someone changed what one of them read: each again alone.
                Ok(false) => {
                    self.remembered.forget();
                    later.extend(in_merged.into_iter().map(|(index, _)| index));
                }
            }
        }
        later.sort_unstable();
        for index in later {
            results[index] = Some(alone(index));
        }
        results
            .into_iter()
            .map(|result| {
                result.unwrap_or_else(|| Err(EngineError::Internal("a planned write was not run".to_owned())))
            })
            .collect()
    }
}

#[cfg(test)]
mod reader_tests {
    use super::*;

    /// A read whose work panics gives its connection back: more panics than
    /// there are readers, and reads still find one.
    #[test]
    fn a_panicking_read_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(SqliteStore::open(&dir.path().join("readers.db"), Durability::Normal).unwrap());
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
        assert_eq!(version.unwrap(), None);
    }
}

#[cfg(test)]
mod cancel_tests {
    use super::*;
    use crate::engine::{InstanceFilter, VersionRecord, Visibility};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::mpsc::{Receiver, Sender, channel};

    const ROWS: usize = 5_000;

    /// A store holding [`ROWS`] instances of the callback sample, whose
    /// readers' case-blind search (called once per row a search reads)
    /// holds its first call after `gate` is armed until released, and
    /// counts its calls.
    struct Gated {
        _dir: tempfile::TempDir,
        store: SqliteStore,
        armed: Arc<AtomicBool>,
        calls: Arc<AtomicUsize>,
        held: Receiver<()>,
        release: Sender<()>,
    }

    fn gated() -> Gated {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("cancel.db"), Durability::Normal).unwrap();
        let record = VersionRecord {
            process: "callback".to_owned(),
            version: 1,
            definition_json: include_str!("../../samples/callback.process.json").to_owned(),
            deployed_at: 0,
            deployed_by: "ada".to_owned(),
        };
        store.write(|tx| tx.insert_version(&record)).unwrap();
        store.load_synthetic_instances("callback", 1, ROWS, 1_000_000_000).unwrap();
        let (armed, calls) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let (entered, held) = channel::<()>();
        let (release, released) = channel::<()>();
        let released = Arc::new(Mutex::new(released));
        for reader in store.readers.free.lock().unwrap().iter() {
            let (armed, calls, entered, released) = (armed.clone(), calls.clone(), entered.clone(), released.clone());
            reader
                .create_scalar_function(
                    sql::CONTAINS_IGNORING_CASE,
                    -1,
                    rusqlite::functions::FunctionFlags::SQLITE_UTF8,
                    move |_| {
                        calls.fetch_add(1, Ordering::SeqCst);
                        if armed.swap(false, Ordering::SeqCst) {
                            let _ = entered.send(());
                            let _ = released.lock().unwrap().recv();
                        }
                        Ok(true)
                    },
                )
                .unwrap();
        }
        Gated { _dir: dir, store, armed, calls, held, release }
    }

    fn everyone() -> Visibility {
        Visibility { all_of: vec!["callback".to_owned()], ..Visibility::default() }
    }

    fn searching() -> InstanceFilter {
        InstanceFilter { search: Some("po".to_owned()), ..InstanceFilter::default() }
    }

    /// A count cancelled while it runs stops at once (it reads no more than
    /// a handful of the rows left), answers `Cancelled`, and its connection
    /// goes back to the pool as a finished read leaves it: every reader
    /// answers the same count again.
    #[test]
    fn a_cancelled_count_stops_at_once_and_leaves_its_connection_healthy() {
        let gated = gated();
        let cancel = CancelToken::new();
        gated.armed.store(true, Ordering::SeqCst);
        let answer = std::thread::scope(|scope| {
            let counting = scope
                .spawn(|| gated.store.read_cancellable(&cancel, |tx| tx.count_instances(&everyone(), &searching())));
            gated.held.recv_timeout(std::time::Duration::from_secs(60)).expect("the count reached its first row");
            cancel.cancel();
            gated.release.send(()).unwrap();
            counting.join().unwrap()
        });
        assert!(matches!(answer, Err(EngineError::Cancelled)), "{answer:?}");
        let read = gated.calls.load(Ordering::SeqCst);
        assert!(read < ROWS / 10, "the count went on for {read} of {ROWS} rows");

        // Every connection of the pool, the interrupted one first (the last
        // given back is taken first), counts to the end.
        let connections = std::thread::scope(|scope| {
            let taken: Vec<_> = (0..READERS).map(|_| gated.store.readers.take()).collect();
            let healthy = taken.iter().all(|connection| connection.is_autocommit());
            for connection in taken {
                gated.store.readers.give_back(connection);
            }
            let counts: Vec<_> = (0..READERS)
                .map(|_| {
                    scope.spawn(|| {
                        gated
                            .store
                            .read_cancellable(&CancelToken::new(), |tx| tx.count_instances(&everyone(), &searching()))
                    })
                })
                .collect();
            (healthy, counts.into_iter().map(|count| count.join().unwrap().unwrap()).collect::<Vec<_>>())
        });
        assert!(connections.0, "no reader was left in a transaction");
        assert_eq!(connections.1, vec![ROWS as u64; READERS]);
    }

    /// A token cancelled before the read begins takes no connection and
    /// reads nothing; a read that ended before its cancel answers as it ended.
    #[test]
    fn a_read_cancelled_before_it_begins_reads_nothing() {
        let gated = gated();
        let cancel = CancelToken::new();
        let count =
            gated.store.read_cancellable(&cancel, |tx| tx.count_instances(&everyone(), &InstanceFilter::default()));
        assert_eq!(count.unwrap(), ROWS as u64);
        cancel.cancel();
        let answer = gated.store.read_cancellable(&cancel, |tx| tx.count_instances(&everyone(), &searching()));
        assert!(matches!(answer, Err(EngineError::Cancelled)));
        assert_eq!(gated.calls.load(Ordering::SeqCst), 0);
    }
}

#[cfg(test)]
mod watcher_tests {
    use super::*;
    use crate::engine::VersionRecord;

    fn deploy(store: &SqliteStore, version: u32) {
        let record = VersionRecord {
            process: "p".to_owned(),
            version,
            definition_json: "{}".to_owned(),
            deployed_at: 0,
            deployed_by: "ada".to_owned(),
        };
        store.write(|tx| tx.insert_version(&record)).unwrap();
    }

    /// The change counter moves on a commit of this store's own writer, and
    /// on one of another store on the same file (another process), in WAL
    /// mode; reads, and looking again, leave it where it is.
    #[test]
    fn the_data_version_moves_on_every_commit_and_on_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watch.db");
        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let other = SqliteStore::open(&path, Durability::Normal).unwrap();
        let before = store.data_version().unwrap();
        assert_eq!(store.data_version().unwrap(), before, "nothing was committed");
        store.read(|tx| tx.processes()).unwrap();
        assert_eq!(store.data_version().unwrap(), before, "a read changes nothing");

        deploy(&store, 1);
        let after_own = store.data_version().unwrap();
        assert_ne!(after_own, before, "its own writer is another connection");

        deploy(&other, 2);
        let after_other = store.data_version().unwrap();
        assert_ne!(after_other, after_own, "another store's commit");
        assert_eq!(store.data_version().unwrap(), after_other);

        // A refused write commits nothing.
        let refused: Result<(), EngineError> = other.write(|tx| {
            tx.grant("p", "bob", crate::model::Right::View)?;
            Err(EngineError::Internal("no".to_owned()))
        });
        assert!(refused.is_err());
        assert_eq!(store.data_version().unwrap(), after_other, "a rolled-back write is no change");
    }
}

#[cfg(test)]
mod error_tests {
    use super::*;
    use crate::engine::VersionRecord;
    use crate::model::Right;

    fn sqlite_error(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    /// The one table from SQLite's result codes to the contract's kinds;
    /// extended codes go with their primary one.
    #[test]
    fn sqlite_result_codes_map_to_the_contracts_kinds() {
        use rusqlite::ffi;
        for (code, kind) in [
            (ffi::SQLITE_BUSY, StorageErrorKind::Busy),
            (ffi::SQLITE_BUSY_SNAPSHOT, StorageErrorKind::Busy),
            (ffi::SQLITE_LOCKED, StorageErrorKind::Busy),
            // Regression: a connection that lost WAL's locking race for
            // seconds on end (two runtimes starting writes on one file) was
            // told a fatal error; it is another program's write, as busy is.
            (ffi::SQLITE_PROTOCOL, StorageErrorKind::Busy),
            (ffi::SQLITE_FULL, StorageErrorKind::DiskFull),
            (ffi::SQLITE_CORRUPT, StorageErrorKind::Corrupt),
            (ffi::SQLITE_CORRUPT_INDEX, StorageErrorKind::Corrupt),
            (ffi::SQLITE_NOTADB, StorageErrorKind::Corrupt),
            (ffi::SQLITE_READONLY, StorageErrorKind::ReadOnly),
            (ffi::SQLITE_READONLY_DBMOVED, StorageErrorKind::ReadOnly),
            (ffi::SQLITE_CANTOPEN, StorageErrorKind::CannotOpen),
            (ffi::SQLITE_PERM, StorageErrorKind::CannotOpen),
            (ffi::SQLITE_IOERR, StorageErrorKind::Io),
            (ffi::SQLITE_IOERR_FSYNC, StorageErrorKind::Io),
            (ffi::SQLITE_CONSTRAINT, StorageErrorKind::Other),
            (ffi::SQLITE_ERROR, StorageErrorKind::Other),
        ] {
            assert_eq!(kind_of(&sqlite_error(code)), kind, "code {code}");
        }
        assert_eq!(kind_of(&rusqlite::Error::QueryReturnedNoRows), StorageErrorKind::Other);
        let retryable: Vec<StorageErrorKind> = [
            StorageErrorKind::Busy,
            StorageErrorKind::Conflict,
            StorageErrorKind::DiskFull,
            StorageErrorKind::Corrupt,
            StorageErrorKind::ReadOnly,
            StorageErrorKind::Foreign,
            StorageErrorKind::CannotOpen,
            StorageErrorKind::Io,
            StorageErrorKind::Other,
        ]
        .into_iter()
        .filter(|kind| kind.is_retryable())
        .collect();
        assert_eq!(retryable, [StorageErrorKind::Busy, StorageErrorKind::Conflict]);
    }

    /// An error's message names the file and says the kind in plain words,
    /// once.
    #[test]
    fn a_described_error_names_the_file_and_the_kind_once() {
        let path = Path::new("/srv/flowdesk/flowdesk.db");
        for (code, kind, words) in [
            (
                rusqlite::ffi::SQLITE_FULL,
                StorageErrorKind::DiskFull,
                "the disk holding /srv/flowdesk/flowdesk.db is full",
            ),
            (
                rusqlite::ffi::SQLITE_CORRUPT,
                StorageErrorKind::Corrupt,
                "the database file /srv/flowdesk/flowdesk.db is damaged",
            ),
            (rusqlite::ffi::SQLITE_BUSY, StorageErrorKind::Busy, "/srv/flowdesk/flowdesk.db stayed busy"),
            (rusqlite::ffi::SQLITE_READONLY, StorageErrorKind::ReadOnly, "/srv/flowdesk/flowdesk.db cannot be written"),
        ] {
            match describe(&sqlite_error(code), path) {
                EngineError::Storage(err) => {
                    assert_eq!(err.kind, kind);
                    assert!(err.message.contains(words), "{err}");
                    assert_eq!(err.message.matches("flowdesk.db").count(), 1, "{err}");
                }
                other => panic!("not a storage error: {other:?}"),
            }
        }
    }

    fn version(definition_json: String) -> VersionRecord {
        VersionRecord { process: "p".into(), version: 1, definition_json, deployed_at: 0, deployed_by: "a".into() }
    }

    /// A store in a temporary folder with version 1 of process `p`.
    fn store_with_process() -> (tempfile::TempDir, PathBuf, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flowdesk.db");
        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        store.write(|tx| tx.insert_version(&version("{}".into()))).unwrap();
        (dir, path, store)
    }

    fn kind(result: Result<impl std::fmt::Debug, EngineError>) -> StorageErrorKind {
        match result {
            Err(EngineError::Storage(err)) => err.kind,
            other => panic!("expected a storage error, got {other:?}"),
        }
    }

    /// Another program holding the write lock past the busy timeout is a
    /// busy database, for a write and for a planned write alike (whose
    /// failure travels through the group commit's outcome); once it lets
    /// go, calling again succeeds.
    #[test]
    fn a_write_lock_held_by_another_program_is_busy_and_retryable() {
        let (_dir, path, store) = store_with_process();
        store.set_busy_timeout(Duration::from_millis(50)).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();

        let unplanned = store.write(|tx| tx.grant("p", "u", Right::View));
        assert_eq!(kind(unplanned), StorageErrorKind::Busy);
        let planned = store.write_planned(|tx| tx.grant("p", "u", Right::Start), || {});
        assert_eq!(kind(planned), StorageErrorKind::Busy);

        other.execute_batch("ROLLBACK").unwrap();
        store.write(|tx| tx.grant("p", "u", Right::View)).unwrap();
        assert_eq!(store.read(|tx| tx.rights("p", "u")).unwrap(), [Right::View]);
    }

    /// A write that needs more room than there is fails as a full disk,
    /// planned or not, and leaves the database as it was. SQLite's page
    /// limit stands in for the disk here; `tests/it/cli.rs` fills a real
    /// one.
    #[test]
    fn a_write_past_the_room_left_is_a_full_disk_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("full.db"), Durability::Normal).unwrap();
        let pages =
            store.writes.exclusive(|c| c.query_row("PRAGMA page_count", [], |row| row.get(0)).map_err(sql::db(c)));
        set_pragma(&store, "max_page_count", pages.unwrap());
        let large = version(format!("{{\"padding\": \"{}\"}}", "x".repeat(1 << 20)));
        assert_eq!(kind(store.write(|tx| tx.insert_version(&large))), StorageErrorKind::DiskFull);
        assert_eq!(kind(store.write_planned(|tx| tx.insert_version(&large), || {})), StorageErrorKind::DiskFull);
        assert_eq!(store.read(|tx| tx.version("p", 1)).unwrap(), None);
        // Room again: the store goes on.
        set_pragma(&store, "max_page_count", 1 << 30);
        store.write(|tx| tx.insert_version(&large)).unwrap();
        assert!(store.read(|tx| tx.version("p", 1)).unwrap().is_some());
    }

    fn set_pragma(store: &SqliteStore, pragma: &str, value: i64) {
        store.writes.exclusive(|c| c.pragma_update(None, pragma, value).map_err(sql::db(c))).unwrap();
    }

    /// A write connection that may not write fails as read-only, planned
    /// or not, and changes nothing. SQLite's `query_only` stands in for a
    /// file the server may not write, which `tests/it/cli.rs` makes by
    /// running the server as a user who may only read it.
    #[test]
    fn a_write_the_database_refuses_is_read_only_and_changes_nothing() {
        let (_dir, _, store) = store_with_process();
        set_pragma(&store, "query_only", 1);
        assert_eq!(kind(store.write(|tx| tx.grant("p", "u", Right::View))), StorageErrorKind::ReadOnly);
        assert_eq!(kind(store.write_planned(|tx| tx.grant("p", "u", Right::View), || {})), StorageErrorKind::ReadOnly);
        assert!(store.read(|tx| tx.rights("p", "u")).unwrap().is_empty());
        set_pragma(&store, "query_only", 0);
        store.write(|tx| tx.grant("p", "u", Right::View)).unwrap();
    }

    /// A table whose page is damaged is a corrupt database, not some
    /// other failure.
    #[test]
    fn a_damaged_page_is_a_corrupt_database() {
        let (_dir, path, store) = store_with_process();
        drop(store);
        damage_table(&path, "versions");
        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let read = store.read(|tx| tx.version("p", 1));
        assert_eq!(kind(read), StorageErrorKind::Corrupt);
    }

    /// Overwrites the first page of `table` with bytes no page can hold.
    fn damage_table(path: &Path, table: &str) {
        use std::io::{Seek, SeekFrom, Write};
        let connection = Connection::open(path).unwrap();
        connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        let page_size: u64 = connection.query_row("PRAGMA page_size", [], |row| row.get(0)).unwrap();
        let root: u64 = connection
            .query_row("SELECT rootpage FROM sqlite_schema WHERE name = ?", [table], |row| row.get(0))
            .unwrap();
        drop(connection);
        let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.seek(SeekFrom::Start((root - 1) * page_size)).unwrap();
        file.write_all(&vec![0xff; page_size as usize]).unwrap();
    }
}
