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
//! second. Instead, concurrent callers share one transaction: each runs its work
//! inside its own savepoint (a refusal rolls back only its own savepoint), and
//! whoever finds no other caller queued behind it commits the batch for all of
//! them. Every caller still returns only after the commit that holds its work:
//! nothing is acknowledged before it is durable. A lone caller commits at once,
//! so the latency of a single call is unchanged.
//!
//! Reads use a second connection, so they see only committed data and never
//! wait for a batch being written.

mod schema;
mod sql;
mod synthetic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::engine::{EngineError, Storage, Transaction};

pub use sql::SqliteTransaction;
pub use synthetic::{SYNTHETIC_ORIGINATORS, SyntheticLoad};

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

/// The write side: one connection and the batch it may have open.
struct Writer {
    connection: Connection,
    /// A transaction is open and holds the work of `members` callers.
    open: bool,
    members: usize,
    /// Number of the batch being filled; bumped at each commit or rollback.
    batch: u64,
    /// Batches whose commit failed, with the reason, kept until read.
    failed: BTreeMap<u64, String>,
}

/// A flowdesk database file.
pub struct SqliteStore {
    writer: Mutex<Writer>,
    /// Signalled whenever a batch is committed or rolled back.
    batch_done: Condvar,
    /// Callers waiting to take the writer: while any do, a caller leaves the
    /// commit to them.
    queued: AtomicUsize,
    reader: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore").field("path", &self.path).finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) a database and brings its schema up to date.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, EngineError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| EngineError::Storage(format!("cannot create the folder {}: {e}", parent.display())))?;
        }
        let mut writer = Connection::open(path).map_err(|e| describe(&e, path))?;
        configure(&writer, durability).map_err(|e| describe(&e, path))?;
        schema::migrate(&mut writer).map_err(|e| describe(&e, path))?;
        let reader = Connection::open(path).map_err(|e| describe(&e, path))?;
        configure(&reader, durability).map_err(|e| describe(&e, path))?;
        Ok(SqliteStore {
            writer: Mutex::new(Writer {
                connection: writer,
                open: false,
                members: 0,
                batch: 0,
                failed: BTreeMap::new(),
            }),
            batch_done: Condvar::new(),
            queued: AtomicUsize::new(0),
            reader: Mutex::new(reader),
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.queued.fetch_sub(1, Ordering::SeqCst);
        writer
    }

    /// Ends the open batch: commits it, or rolls it back if `rollback`. Every
    /// member waiting for it is woken.
    fn end_batch(&self, writer: &mut Writer, rollback: Option<String>) {
        if !writer.open {
            return;
        }
        let outcome = match rollback {
            Some(reason) => {
                let _ = writer.connection.execute_batch("ROLLBACK");
                Err(reason)
            }
            None => writer.connection.execute_batch("COMMIT").map_err(|e| describe(&e, &self.path).to_string()),
        };
        if let Err(reason) = outcome {
            if !writer.connection.is_autocommit() {
                let _ = writer.connection.execute_batch("ROLLBACK");
            }
            writer.failed.insert(writer.batch, reason);
            // Members read their failure right after waking; old entries are
            // only kept in case a member was slow to wake.
            while writer.failed.len() > 1024 {
                writer.failed.pop_first();
            }
        }
        writer.open = false;
        writer.members = 0;
        writer.batch += 1;
        self.batch_done.notify_all();
    }

    fn write_batched<T>(
        &self,
        work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut writer = self.lock_writer();
        if !writer.open {
            writer.connection.execute_batch("BEGIN IMMEDIATE").map_err(|e| describe(&e, &self.path))?;
            writer.open = true;
        }
        // The first caller of a batch needs no savepoint: if it is refused, the
        // whole (so far only its own) transaction is rolled back. Savepoints
        // cost a sub-journal write per page touched.
        let alone = writer.members == 0;
        if !alone && let Err(e) = run_cached(&writer.connection, "SAVEPOINT call") {
            let error = describe(&e, &self.path);
            self.end_batch(&mut writer, Some(error.to_string()));
            return Err(error);
        }
        // A panic in the work (a bug) must not leave the batch open with other
        // callers waiting on it for ever: give the batch up, then let it go on.
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            work(&mut SqliteTransaction::new(&writer.connection))
        })) {
            Ok(result) => result,
            Err(panic) => {
                self.end_batch(&mut writer, Some("a write failed unexpectedly and was rolled back".to_owned()));
                drop(writer);
                std::panic::resume_unwind(panic);
            }
        };
        let kept = match (&result, alone) {
            (Ok(_), true) => Ok(()),
            (Ok(_), false) => run_cached(&writer.connection, "RELEASE call"),
            (Err(_), true) => {
                self.end_batch(&mut writer, Some(String::new()));
                return result;
            }
            (Err(_), false) => run_cached(&writer.connection, "ROLLBACK TO call")
                .and_then(|()| run_cached(&writer.connection, "RELEASE call")),
        };
        if let Err(e) = kept {
            // The transaction is in an unknown state: give the whole batch up.
            let error = describe(&e, &self.path);
            self.end_batch(&mut writer, Some(error.to_string()));
            return Err(error);
        }
        let member = result.is_ok();
        if member {
            writer.members += 1;
        }
        let my_batch = writer.batch;
        if self.queued.load(Ordering::SeqCst) == 0 || writer.members >= MAX_BATCH {
            self.end_batch(&mut writer, None);
        } else if member {
            // Someone queued behind us will commit this batch; wait for it.
            while writer.batch == my_batch {
                writer = self.batch_done.wait(writer).unwrap_or_else(PoisonError::into_inner);
            }
        }
        if member && let Some(reason) = writer.failed.remove(&my_batch) {
            return Err(EngineError::Storage(reason));
        }
        result
    }
}

/// Runs a fixed statement through the statement cache (no parsing per call).
fn run_cached(connection: &Connection, sql: &str) -> rusqlite::Result<()> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

fn configure(connection: &Connection, durability: Durability) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
    // Room for every statement the engine uses, so none is parsed twice.
    connection.set_prepared_statement_cache_capacity(128);
    // journal_mode answers with the mode in force; WAL sticks to the file.
    let _mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    connection.pragma_update(None, "synchronous", durability.name())?;
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(())
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
        _ => format!("{}: {err}", path.display()),
    };
    EngineError::Storage(message)
}

impl Storage for SqliteStore {
    fn write<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        self.write_batched(work)
    }

    fn read<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let transaction =
            reader.transaction_with_behavior(TransactionBehavior::Deferred).map_err(|e| describe(&e, &self.path))?;
        let result = work(&mut SqliteTransaction::new(&transaction));
        // Dropping the read transaction ends it; it wrote nothing.
        drop(transaction);
        result
    }
}

#[cfg(test)]
mod group_commit_tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::engine::VersionRecord;
    use crate::model::Right;

    /// Regression: a panic inside a batch used to leave the other members of
    /// the batch waiting for a commit that never came.
    #[test]
    fn a_panic_in_a_batch_fails_its_other_members_instead_of_hanging_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("panic.db"), Durability::Normal).unwrap();
        let version = VersionRecord {
            process: "p".into(),
            version: 1,
            definition_json: "{}".into(),
            deployed_at: 0,
            deployed_by: "a".into(),
        };
        store.write(|tx| tx.insert_version(&version)).unwrap();
        let in_batch = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                store.write(|tx| {
                    in_batch.store(true, Ordering::SeqCst);
                    // Stay until the second caller queues behind us, so that we
                    // leave the commit to it and wait.
                    while store.queued.load(Ordering::SeqCst) == 0 {
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
