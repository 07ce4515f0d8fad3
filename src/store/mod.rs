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
mod floor;
mod memory;
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

use crate::engine::{EngineError, Storage, Transaction};

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

/// How long a writer waits for another process's write before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

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
        let next_id = Arc::new(AtomicI64::new(0));
        Ok(SqliteStore {
            writes: writer::GroupCommit::new(writer, next_id.clone(), path.to_owned()),
            readers,
            next_id,
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
        self.writes.write(self.writes.coming(), |tx| work(tx))
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
