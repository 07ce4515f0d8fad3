//! SQLite persistence: the only module that touches a database.
//!
//! One file, WAL journal, foreign keys on, `synchronous=FULL` unless asked
//! otherwise, schema versioned by `PRAGMA user_version` with forward-only
//! migrations. Writes take the write lock up front (`BEGIN IMMEDIATE`) and wait
//! for it with a busy timeout, so several processes on one database (the GUI, a
//! terminal, an external system) queue instead of failing with "database is
//! locked".

mod schema;
mod sql;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::engine::{EngineError, Storage, Transaction};

pub use sql::SqliteTransaction;

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

/// A flowdesk database file.
pub struct SqliteStore {
    connection: Mutex<Connection>,
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
        let mut connection = Connection::open(path).map_err(|e| describe(&e, path))?;
        configure(&connection, durability).map_err(|e| describe(&e, path))?;
        schema::migrate(&mut connection).map_err(|e| describe(&e, path))?;
        Ok(SqliteStore { connection: Mutex::new(connection), path: path.to_owned() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn run<T>(
        &self,
        behavior: TransactionBehavior,
        commit: bool,
        work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut connection = self.connection.lock().unwrap_or_else(PoisonError::into_inner);
        let transaction = connection.transaction_with_behavior(behavior).map_err(|e| describe(&e, &self.path))?;
        let mut tx = SqliteTransaction::new(&transaction);
        let result = work(&mut tx)?;
        if commit {
            transaction.commit().map_err(|e| describe(&e, &self.path))?;
        }
        // Dropping an uncommitted transaction rolls it back (a read, or a refusal).
        Ok(result)
    }
}

fn configure(connection: &Connection, durability: Durability) -> rusqlite::Result<()> {
    connection.busy_timeout(BUSY_TIMEOUT)?;
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
        self.run(TransactionBehavior::Immediate, true, work)
    }

    fn read<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        self.run(TransactionBehavior::Deferred, false, work)
    }
}
