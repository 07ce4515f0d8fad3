//! The schema and its migrations, and how a flowdesk database is told from
//! any other file. Append a migration; never edit a shipped one.
//!
//! A file is identified before anything writes to it ([`identify`]): from
//! its header, read as plain bytes, and where that cannot tell, from its
//! tables on a read-only look that creates no journal. Only then is it opened
//! for writing (which switches a file to WAL). [`migrate`] checks the same
//! inside its transaction, where a write-ahead log the header does not show
//! yet has been read.

use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// Migration `i` brings `user_version` from `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE processes (
    name            TEXT PRIMARY KEY,
    default_version INTEGER NOT NULL
) STRICT;

CREATE TABLE versions (
    process     TEXT NOT NULL REFERENCES processes(name),
    version     INTEGER NOT NULL,
    definition  TEXT NOT NULL,
    deployed_at INTEGER NOT NULL,
    deployed_by TEXT NOT NULL,
    PRIMARY KEY (process, version)
) STRICT;

CREATE TABLE rights (
    process TEXT NOT NULL REFERENCES processes(name),
    user    TEXT NOT NULL,
    right   TEXT NOT NULL,
    PRIMARY KEY (process, user, right)
) STRICT, WITHOUT ROWID;
CREATE INDEX rights_by_user ON rights(user);

CREATE TABLE instances (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    process     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    folio       TEXT NOT NULL,
    originator  TEXT NOT NULL,
    status      TEXT NOT NULL,
    data        TEXT NOT NULL,
    flow        TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    runner      INTEGER,
    lease_until INTEGER,
    FOREIGN KEY (process, version) REFERENCES versions(process, version)
) STRICT;
CREATE INDEX instances_by_status ON instances(status, id);
CREATE INDEX instances_by_process ON instances(process, status, id);
CREATE INDEX instances_by_updated ON instances(updated_at);

CREATE TABLE activity_instances (
    instance_id    INTEGER NOT NULL REFERENCES instances(id),
    destination_id INTEGER NOT NULL,
    activity_id    TEXT NOT NULL,
    activity       TEXT NOT NULL,
    status         TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    finished_at    INTEGER,
    PRIMARY KEY (instance_id, destination_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE server_items (
    instance_id    INTEGER NOT NULL REFERENCES instances(id),
    serial_id      INTEGER NOT NULL,
    activity_destination_id INTEGER NOT NULL,
    event_index    INTEGER NOT NULL,
    process        TEXT NOT NULL,
    folio          TEXT NOT NULL,
    activity       TEXT NOT NULL,
    event          TEXT NOT NULL,
    status         TEXT NOT NULL,
    script_running INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    closed_at      INTEGER,
    closed_by      TEXT,
    unapplied      TEXT,
    PRIMARY KEY (instance_id, serial_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX server_items_by_status ON server_items(status, created_at);

CREATE TABLE audit (
    id          INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    at          INTEGER NOT NULL,
    user        TEXT NOT NULL,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_instance ON audit(instance_id, id);

CREATE TABLE line_results (
    id                  INTEGER PRIMARY KEY,
    instance_id         INTEGER NOT NULL REFERENCES instances(id),
    line_index          INTEGER NOT NULL,
    from_destination_id INTEGER NOT NULL,
    fired               INTEGER NOT NULL,
    at                  INTEGER NOT NULL
) STRICT;
CREATE INDEX line_results_by_instance ON line_results(instance_id, id);

CREATE TABLE participants (
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    user        TEXT NOT NULL,
    PRIMARY KEY (instance_id, user)
) STRICT, WITHOUT ROWID;
"#,
    // 2: the monitor sorts a million instances by any column through an index.
    r#"
CREATE INDEX instances_by_folio ON instances(folio, id);
CREATE INDEX instances_by_originator ON instances(originator, id);
CREATE INDEX instances_by_status_updated ON instances(status, updated_at);
CREATE INDEX server_items_by_instance ON server_items(instance_id, status);
"#,
    // 3: a million instances, paged at any depth. Each order's index leads
    // with its column and carries `id`, `process` and `status`, so a page (at
    // any OFFSET), a count and the filters are answered from one narrow index
    // without reading the table; `instances_by_id` does it for the default
    // order (the table itself is wide: data and flow). The folio index also
    // serves the folio search, which scans it. `participants_by_user` finds
    // the instances a View Participate user took part in without a scan.
    r#"
DROP INDEX instances_by_status;
CREATE INDEX instances_by_status ON instances(status, id, process);
DROP INDEX instances_by_process;
CREATE INDEX instances_by_process ON instances(process, id, status);
DROP INDEX instances_by_folio;
CREATE INDEX instances_by_folio ON instances(folio, id, process, status);
DROP INDEX instances_by_originator;
CREATE INDEX instances_by_originator ON instances(originator, id, process, status);
DROP INDEX instances_by_updated;
CREATE INDEX instances_by_updated ON instances(updated_at, id, process, status);
DROP INDEX instances_by_status_updated;
CREATE INDEX instances_by_status_updated ON instances(status, updated_at, id, process);
CREATE INDEX instances_by_id ON instances(id, process, status);
CREATE INDEX participants_by_user ON participants(user, instance_id);
"#,
    // 4: an instance's history (audit trail, activity instances, line
    // results) as one JSON row per write instead of a row per line of it:
    // a callback lifecycle went from some thirty inserts and updates to two.
    // Rows written before become each instance's first record. A rowid
    // table: rows of a kilobyte appended in id order stay on the last page,
    // where a table clustered by instance would spill them to overflow pages
    // (measured five times slower). Each list is wrapped in json(): a
    // subquery's result loses its JSON type, and would be stored as a string.
    r#"
CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    changes     TEXT NOT NULL
) STRICT;
CREATE INDEX history_by_instance ON history(instance_id, id);

INSERT INTO history (instance_id, changes)
SELECT i.id, json_object(
    'audit', json((SELECT json_group_array(json_object('at', at, 'user', user, 'action', action, 'detail', detail))
              FROM (SELECT * FROM audit a WHERE a.instance_id = i.id ORDER BY a.id))),
    'started', json((SELECT json_group_array(json_object(
                    'destination_id', destination_id, 'activity_id', activity_id, 'activity', activity,
                    'status', status, 'started_at', started_at, 'finished_at', finished_at))
                FROM (SELECT * FROM activity_instances r WHERE r.instance_id = i.id ORDER BY r.destination_id))),
    'lines', json((SELECT json_group_array(json_object(
                  'line_index', line_index, 'from_destination_id', from_destination_id,
                  'fired', json(CASE WHEN fired THEN 'true' ELSE 'false' END), 'at', at))
              FROM (SELECT * FROM line_results l WHERE l.instance_id = i.id ORDER BY l.id))))
FROM instances i;

DROP TABLE audit;
DROP TABLE activity_instances;
DROP TABLE line_results;

-- Bumped by every write to an instance (its row, its server items), so that
-- work prepared outside the write lock can tell whether it is still current.
ALTER TABLE instances ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
"#,
    // 5: bearer tokens for the HTTP API. Only a token's SHA-256 is kept, so a
    // copy of the database hands out no credentials; `prefix` (the first
    // characters of the secret) lets people tell their tokens apart.
    r#"
CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user        TEXT NOT NULL,
    label       TEXT NOT NULL,
    hash        TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    revoked_at  INTEGER,
    revoked_by  TEXT
) STRICT;
"#,
    // 6: every query for an instance's items already walks the primary key
    // (instance_id, serial_id); this index only cost each start and finish
    // two more index writes. From this version on, history rows are written
    // in a shorter form (arrays instead of objects, see `sql::HistoryRecord`)
    // that builds before it would not understand: the version keeps them
    // from opening such a database.
    r#"
DROP INDEX server_items_by_instance;
"#,
    // 7: runners and their heartbeats. An instance mid-request is claimed by
    // a random runner id (it was an OS process id, checked through /proc,
    // which only one host can do) whose runtime writes its row again every
    // few seconds while it works on such an instance; recovery waits for the row's
    // `expires_at`. Claims written before name process ids that have no row
    // here: their leases alone decide, as they always did off Linux. `host`
    // and `pid` are for people reading the table, never for deciding.
    r#"
CREATE TABLE runners (
    id          INTEGER PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    beat_at     INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
"#,
    // 8: timers, the due times of escalations and timer events (issue 17).
    // One row per timer, armed when its item's wait begins and fired or
    // disarmed in the transaction that does so. The ticker walks the armed
    // ones by due time through a partial index (fired and disarmed rows
    // are not in it, so it stays the size of what is pending); an item's
    // or an instance's next due time comes from the second, which covers
    // it. `escalation` is the escalation's index in its activity, NULL for
    // a timer event's own wait.
    r#"
CREATE TABLE timers (
    id          INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    serial_id   INTEGER NOT NULL,
    escalation  INTEGER,
    due_at      INTEGER NOT NULL,
    fired_count INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL
) STRICT;
CREATE INDEX timers_due ON timers(due_at, id) WHERE state = 'Armed';
CREATE INDEX timers_by_item ON timers(instance_id, serial_id, state, due_at);
"#,
    // 9: the overview's aggregates (issue 18), kept by triggers in the
    // transaction that changes what they count, so that no write path (the
    // engine's, planned writes, the synthetic loader) can forget them and a
    // rolled-back write takes its counts with it. Instances per process,
    // version and status; starts and completions per minute; pending server
    // items per activity and creation hour (the youngest are counted exactly
    // from `server_items_by_status`); and the
    // instances in error with their reason (`failures`, the message's
    // pattern made by the store's SQL function, see `engine::overview`),
    // grouped by the index. `server_items_pending_by_activity` finds the
    // instances waiting at an activity for the list's activity filter.
    // Each table starts from the rows already there.
    r#"
CREATE TABLE instance_counts (
    process TEXT NOT NULL,
    version INTEGER NOT NULL,
    status  TEXT NOT NULL,
    n       INTEGER NOT NULL,
    PRIMARY KEY (process, version, status)
) STRICT, WITHOUT ROWID;
CREATE TABLE instance_minutes (
    process   TEXT NOT NULL,
    version   INTEGER NOT NULL,
    minute    INTEGER NOT NULL,
    started   INTEGER NOT NULL,
    completed INTEGER NOT NULL,
    PRIMARY KEY (process, version, minute)
) STRICT, WITHOUT ROWID;
CREATE TABLE pending_hours (
    process  TEXT NOT NULL,
    version  INTEGER NOT NULL,
    activity TEXT NOT NULL,
    hour     INTEGER NOT NULL,
    n        INTEGER NOT NULL,
    PRIMARY KEY (process, version, activity, hour)
) STRICT, WITHOUT ROWID;
CREATE TABLE failures (
    instance_id INTEGER PRIMARY KEY,
    process     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    activity    TEXT NOT NULL,
    event       TEXT NOT NULL,
    pattern     TEXT NOT NULL,
    message     TEXT NOT NULL,
    at          INTEGER NOT NULL
) STRICT;
CREATE INDEX failures_by_reason ON failures(process, version, activity, event, pattern, at);
CREATE INDEX server_items_pending_by_activity ON server_items(process, activity, instance_id)
    WHERE status = 'Pending';

INSERT INTO instance_counts SELECT process, version, status, COUNT(*) FROM instances GROUP BY 1, 2, 3;
INSERT INTO instance_minutes
SELECT process, version, minute, SUM(started), SUM(completed) FROM (
    SELECT process, version, started_at / 60000 AS minute, 1 AS started, 0 AS completed FROM instances
    UNION ALL
    SELECT process, version, updated_at / 60000, 0, 1 FROM instances WHERE status = 'Completed'
) GROUP BY 1, 2, 3;
INSERT INTO pending_hours
SELECT s.process, i.version, s.activity, s.created_at / 3600000, COUNT(*)
FROM server_items s JOIN instances i ON i.id = s.instance_id WHERE s.status = 'Pending' GROUP BY 1, 2, 3, 4;
INSERT INTO failures
SELECT id, process, version, flow ->> '$.failure.activity', flow ->> '$.failure.event',
       flowdesk_failure_pattern(flow ->> '$.failure.message'), flow ->> '$.failure.message', flow ->> '$.failure.at'
FROM instances WHERE status = 'Error' AND flow ->> '$.failure.message' IS NOT NULL;

-- Each trigger does only what its case needs (its WHEN): a statement run
-- inside a trigger costs about what one run by the engine does.
CREATE TRIGGER instances_counted AFTER INSERT ON instances BEGIN
    INSERT INTO instance_counts VALUES (NEW.process, NEW.version, NEW.status, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
    INSERT INTO instance_minutes VALUES (NEW.process, NEW.version, NEW.started_at / 60000, 1, 0)
        ON CONFLICT DO UPDATE SET started = started + 1;
END;
CREATE TRIGGER instances_counted_completed AFTER INSERT ON instances WHEN NEW.status = 'Completed' BEGIN
    INSERT INTO instance_minutes VALUES (NEW.process, NEW.version, NEW.updated_at / 60000, 0, 1)
        ON CONFLICT DO UPDATE SET completed = completed + 1;
END;
CREATE TRIGGER instances_counted_failed AFTER INSERT ON instances
WHEN NEW.status = 'Error' AND NEW.flow ->> '$.failure.message' IS NOT NULL BEGIN
    INSERT INTO failures VALUES (
        NEW.id, NEW.process, NEW.version, NEW.flow ->> '$.failure.activity', NEW.flow ->> '$.failure.event',
        flowdesk_failure_pattern(NEW.flow ->> '$.failure.message'), NEW.flow ->> '$.failure.message',
        NEW.flow ->> '$.failure.at');
END;

CREATE TRIGGER instances_recounted AFTER UPDATE OF status ON instances WHEN OLD.status IS NOT NEW.status BEGIN
    UPDATE instance_counts SET n = n - 1
        WHERE process = OLD.process AND version = OLD.version AND status = OLD.status;
    INSERT INTO instance_counts VALUES (NEW.process, NEW.version, NEW.status, 1)
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER instances_completed AFTER UPDATE OF status ON instances
WHEN NEW.status = 'Completed' AND OLD.status IS NOT 'Completed' BEGIN
    INSERT INTO instance_minutes VALUES (NEW.process, NEW.version, NEW.updated_at / 60000, 0, 1)
        ON CONFLICT DO UPDATE SET completed = completed + 1;
END;
CREATE TRIGGER instances_failed AFTER UPDATE OF status, flow ON instances
WHEN NEW.status = 'Error' OR OLD.status = 'Error' BEGIN
    DELETE FROM failures WHERE instance_id = OLD.id;
    INSERT INTO failures
    SELECT NEW.id, NEW.process, NEW.version, NEW.flow ->> '$.failure.activity', NEW.flow ->> '$.failure.event',
           flowdesk_failure_pattern(NEW.flow ->> '$.failure.message'), NEW.flow ->> '$.failure.message',
           NEW.flow ->> '$.failure.at'
    WHERE NEW.status = 'Error' AND NEW.flow ->> '$.failure.message' IS NOT NULL;
END;

CREATE TRIGGER server_items_counted AFTER INSERT ON server_items WHEN NEW.status = 'Pending' BEGIN
    INSERT INTO pending_hours
    SELECT NEW.process, version, NEW.activity, NEW.created_at / 3600000, 1 FROM instances WHERE id = NEW.instance_id
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER server_items_closed AFTER UPDATE OF status, created_at ON server_items
WHEN OLD.status = 'Pending' AND (NEW.status IS NOT 'Pending' OR NEW.created_at IS NOT OLD.created_at) BEGIN
    UPDATE pending_hours SET n = n - 1
    WHERE process = OLD.process AND activity = OLD.activity AND hour = OLD.created_at / 3600000
      AND version = (SELECT version FROM instances WHERE id = OLD.instance_id);
    -- An emptied hour goes, so that a group's first key is its oldest item's.
    DELETE FROM pending_hours
    WHERE process = OLD.process AND activity = OLD.activity AND hour = OLD.created_at / 3600000 AND n <= 0
      AND version = (SELECT version FROM instances WHERE id = OLD.instance_id);
END;
CREATE TRIGGER server_items_reopened AFTER UPDATE OF status, created_at ON server_items
WHEN NEW.status = 'Pending' AND (OLD.status IS NOT 'Pending' OR NEW.created_at IS NOT OLD.created_at) BEGIN
    INSERT INTO pending_hours
    SELECT NEW.process, version, NEW.activity, NEW.created_at / 3600000, 1 FROM instances WHERE id = NEW.instance_id
        ON CONFLICT DO UPDATE SET n = n + 1;
END;
"#,
    // 10: the aggregates kept by the store instead of triggers: it sums
    // what each write changes and applies one upsert per key per group
    // commit, in the batch's transaction (`store::overview::Deltas`); the
    // triggers' eight statements per callback lifecycle cost a fifth of
    // `bench callback` (BENCHMARKS.md). Counted again from the rows, so that
    // a database migrated starts from exact counts whatever it held.
    r#"
DROP TRIGGER instances_counted;
DROP TRIGGER instances_counted_completed;
DROP TRIGGER instances_counted_failed;
DROP TRIGGER instances_recounted;
DROP TRIGGER instances_completed;
DROP TRIGGER instances_failed;
DROP TRIGGER server_items_counted;
DROP TRIGGER server_items_closed;
DROP TRIGGER server_items_reopened;

DELETE FROM instance_counts;
DELETE FROM instance_minutes;
DELETE FROM pending_hours;
DELETE FROM failures;
INSERT INTO instance_counts SELECT process, version, status, COUNT(*) FROM instances GROUP BY 1, 2, 3;
INSERT INTO instance_minutes
SELECT process, version, minute, SUM(started), SUM(completed) FROM (
    SELECT process, version, started_at / 60000 AS minute, 1 AS started, 0 AS completed FROM instances
    UNION ALL
    SELECT process, version, updated_at / 60000, 0, 1 FROM instances WHERE status = 'Completed'
) GROUP BY 1, 2, 3;
INSERT INTO pending_hours
SELECT s.process, i.version, s.activity, s.created_at / 3600000, COUNT(*)
FROM server_items s JOIN instances i ON i.id = s.instance_id WHERE s.status = 'Pending' GROUP BY 1, 2, 3, 4;
INSERT INTO failures
SELECT id, process, version, flow ->> '$.failure.activity', flow ->> '$.failure.event',
       flowdesk_failure_pattern(flow ->> '$.failure.message'), flow ->> '$.failure.message', flow ->> '$.failure.at'
FROM instances WHERE status = 'Error' AND flow ->> '$.failure.message' IS NOT NULL;
"#,
    // 11: searchable data fields. Each (process, field, type) a deployed
    // version marked searchable has a partial expression index on its
    // stored value, named `instances_by_field_<id>` after its row here, so
    // that queries know which exist (`store::fields`).
    r#"
CREATE TABLE field_indexes (
    id          INTEGER PRIMARY KEY,
    process     TEXT NOT NULL,
    field       TEXT NOT NULL,
    field_type  TEXT NOT NULL,
    UNIQUE (process, field, field_type)
) STRICT;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// flowdesk's `PRAGMA application_id` ("flow" in ASCII), set in every
/// database it creates or opens: other programs' files are told apart by
/// their header alone.
pub const APPLICATION_ID: i32 = 0x666C_6F77;

/// The tables every flowdesk schema (version 1 on) has.
const CORE_TABLES: [&str; 3] = ["processes", "versions", "instances"];

/// What [`identify`] found at a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// No file.
    Nothing,
    /// A file of no bytes, or an SQLite file without tables and without a
    /// write-ahead log that could hold some.
    Empty,
    /// An SQLite file whose own pages hold no tables but whose write-ahead
    /// log is not empty: most likely a flowdesk database that stopped before
    /// its first checkpoint. [`migrate`], which reads the log, decides.
    InLog,
    /// A flowdesk database.
    Flowdesk,
}

/// Why a file is refused; said after its path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Foreign {
    #[error("is not a flowdesk database: {0}")]
    NotFlowdesk(String),
    #[error("has schema version {0}, newer than this flowdesk ({SCHEMA_VERSION}): upgrade flowdesk")]
    Newer(i64),
}

/// Why a file could not be identified or migrated.
#[derive(Debug)]
pub enum SchemaError {
    Foreign(Foreign),
    Sqlite(rusqlite::Error),
    Io(std::io::Error),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(err: rusqlite::Error) -> SchemaError {
        SchemaError::Sqlite(err)
    }
}

impl From<Foreign> for SchemaError {
    fn from(foreign: Foreign) -> SchemaError {
        SchemaError::Foreign(foreign)
    }
}

/// What the file at `path` is, found without writing to it or creating
/// anything beside it: its first 100 bytes (the SQLite header), and where
/// they cannot tell, its tables on a read-only, `immutable` look (which
/// creates no journal, not even for a file in WAL mode).
pub fn identify(path: &Path) -> Result<Found, SchemaError> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(err) => return Err(SchemaError::Io(err)),
    };
    let mut header = Vec::with_capacity(100);
    file.by_ref().take(100).read_to_end(&mut header).map_err(SchemaError::Io)?;
    if header.is_empty() {
        return Ok(Found::Empty);
    }
    if header.len() < 100 || !header.starts_with(b"SQLite format 3\0") {
        return Err(Foreign::NotFlowdesk("it is not an SQLite file".to_owned()).into());
    }
    let number = |at: usize| i32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]);
    let (user_version, application_id) = (number(60), number(68));
    check_ids(i64::from(user_version), application_id)?;
    if application_id == APPLICATION_ID {
        return Ok(Found::Flowdesk);
    }
    // An SQLite file no flowdesk has stamped: older flowdesk databases, and
    // everything else. Its tables tell.
    let connection = Connection::open_with_flags(
        immutable_uri(path),
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let tables = tables(&connection)?;
    match classify(i64::from(user_version), &tables)? {
        Found::Empty if log_holds_pages(path) => Ok(Found::InLog),
        found => Ok(found),
    }
}

/// Whether the write-ahead log beside `path` holds more than its header.
fn log_holds_pages(path: &Path) -> bool {
    let mut log = path.as_os_str().to_owned();
    log.push("-wal");
    // A log's header is 32 bytes; every frame after it holds a page.
    std::fs::metadata(log).is_ok_and(|m| m.len() > 32)
}

/// Refuses what the header's numbers alone rule out.
fn check_ids(user_version: i64, application_id: i32) -> Result<(), Foreign> {
    if application_id != 0 && application_id != APPLICATION_ID {
        return Err(Foreign::NotFlowdesk(format!("it belongs to another program (application id {application_id})")));
    }
    if user_version < 0 {
        return Err(Foreign::NotFlowdesk(format!("its schema version is {user_version}")));
    }
    if user_version > SCHEMA_VERSION {
        return Err(Foreign::Newer(user_version));
    }
    Ok(())
}

/// An SQLite file by its schema version and tables.
fn classify(user_version: i64, tables: &[String]) -> Result<Found, SchemaError> {
    let listed = |names: &[String]| if names.is_empty() { "none".to_owned() } else { names.join(", ") };
    if user_version == 0 {
        return match tables {
            [] => Ok(Found::Empty),
            _ => Err(Foreign::NotFlowdesk(format!("it holds other tables ({})", listed(tables))).into()),
        };
    }
    let missing: Vec<String> =
        CORE_TABLES.iter().filter(|core| !tables.iter().any(|t| t == *core)).map(|t| (*t).to_owned()).collect();
    if !missing.is_empty() {
        return Err(Foreign::NotFlowdesk(format!(
            "it lacks flowdesk's tables {} (it holds {})",
            missing.join(", "),
            listed(tables)
        ))
        .into());
    }
    Ok(Found::Flowdesk)
}

/// The names of a database's own tables, sorted.
fn tables(connection: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut statement = connection.prepare(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
    )?;
    let names = statement.query_map([], |row| row.get(0))?;
    names.collect()
}

/// A URI that opens `path` read-only as `immutable`: SQLite then takes no
/// locks and creates no `-wal` or `-shm` file beside it.
fn immutable_uri(path: &Path) -> String {
    use percent_encoding::{AsciiSet, CONTROLS, percent_encode};
    // What a URI's path may not hold as it is; SQLite decodes the rest.
    const ESCAPED: &AsciiSet = &CONTROLS.add(b'%').add(b'?').add(b'#').add(b' ');
    let encoded = percent_encode(path.as_os_str().as_encoded_bytes(), ESCAPED);
    // An absolute path gets an empty authority, so that one starting with
    // `//` is not read as a host.
    let authority = if path.has_root() { "//" } else { "" };
    format!("file:{authority}{encoded}?immutable=1")
}

/// Brings the schema up to date, one migration per transaction, after the
/// same checks as [`identify`] on what the database holds now (a write-ahead
/// log included). Stamps [`APPLICATION_ID`] on a database that lacks it.
pub fn migrate(connection: &mut Connection) -> Result<(), SchemaError> {
    // Migration 9's triggers and its first counts call the store's own SQL
    // functions: defined here too, whoever opened the connection.
    super::sql::define_functions(connection)?;
    loop {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let application_id: i32 = transaction.query_row("PRAGMA application_id", [], |row| row.get(0))?;
        check_ids(version, application_id)?;
        if application_id != APPLICATION_ID {
            classify(version, &tables(&transaction)?)?;
            transaction.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        let Some(migration) = usize::try_from(version).ok().and_then(|v| MIGRATIONS.get(v)) else {
            transaction.commit()?;
            return Ok(());
        };
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", version + 1)?;
        transaction.commit()?;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use rusqlite::{Connection, params};

    use super::{MIGRATIONS, SCHEMA_VERSION, migrate};
    use crate::engine::instance::{FlowState, Token};
    use crate::engine::{ActivityRecord, ActivityStatus, AuditEntry, LineResult, Storage, TokenState};
    use crate::model::Value;
    use crate::store::{Durability, SqliteStore};

    /// A database as flowdesk left it at schema version 3: the migrations
    /// before history, applied the way `migrate` applies them.
    fn database_at_version_3(path: &std::path::Path) -> Connection {
        database_at_version(path, 3)
    }

    /// A database as flowdesk left it at schema `version`.
    fn database_at_version(path: &std::path::Path, version: usize) -> Connection {
        let mut connection = Connection::open(path).unwrap();
        for (before, migration) in MIGRATIONS[..version].iter().enumerate() {
            let transaction = connection.transaction().unwrap();
            transaction.execute_batch(migration).unwrap();
            transaction.pragma_update(None, "user_version", before as i64 + 1).unwrap();
            transaction.commit().unwrap();
        }
        let found: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(found, version as i64);
        connection
    }

    fn insert_instance(connection: &Connection, id: i64, folio: &str) {
        let data = BTreeMap::from([("name".to_owned(), Value::String(folio.to_owned()))]);
        let flow = FlowState {
            tokens: vec![Token {
                destination_id: 2,
                activity: 1,
                next_event: 0,
                state: TokenState::Waiting,
                serial_id: Some(2),
            }],
            next_destination_id: 3,
            ..FlowState::default()
        };
        connection
            .execute(
                "INSERT INTO instances (id, process, version, folio, originator, status, data, flow, started_at,
                                        updated_at, runner, lease_until)
                 VALUES (?, 'callback', 1, ?, 'alice', 'Active', ?, ?, 100, 300, NULL, NULL)",
                params![id, folio, serde_json::to_string(&data).unwrap(), serde_json::to_string(&flow).unwrap()],
            )
            .unwrap();
    }

    fn table_exists(connection: &Connection, name: &str) -> bool {
        connection
            .query_row("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?", [name], |row| {
                row.get::<_, i64>(0)
            })
            .unwrap()
            == 1
    }

    /// A path SQLite would otherwise read as a URI's query, fragment,
    /// escape or host is identified as the file it names.
    #[test]
    fn identify_reads_files_whose_paths_look_like_uri_parts() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["a?b#c%20d e.db", "plain.db"] {
            let path = dir.path().join(name);
            Connection::open(&path).unwrap().execute_batch("CREATE TABLE notes (x);").unwrap();
            let found = super::identify(&path);
            assert!(
                matches!(&found, Err(super::SchemaError::Foreign(super::Foreign::NotFlowdesk(why))) if why.contains("notes")),
                "{name}: {found:?}"
            );
        }
        // `//` at the start of an absolute path is a folder, not a host.
        let doubled = std::path::PathBuf::from(format!("/{}", dir.path().join("plain.db").display()));
        assert!(matches!(super::identify(&doubled), Err(super::SchemaError::Foreign(_))));
    }

    #[test]
    fn migration_4_moves_old_history_rows_into_one_record_per_instance() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("version3.db");
        let mut connection = database_at_version_3(&path);
        connection
            .execute_batch(
                "INSERT INTO processes (name, default_version) VALUES ('callback', 1);
                 INSERT INTO versions (process, version, definition, deployed_at, deployed_by)
                     VALUES ('callback', 1, '{}', 50, 'alice');",
            )
            .unwrap();
        insert_instance(&connection, 1, "with history");
        insert_instance(&connection, 2, "without history");
        insert_instance(&connection, 3, "other");
        // Ids define the order, not the order of insertion; instance 1's rows
        // are interleaved with another instance's.
        for (id, instance_id, at, action, detail) in [
            (3, 1, 300, "Waiting for callback", "1_2 (`Call`)"),
            (1, 1, 100, "Instance started", "callback version 1"),
            (4, 3, 100, "Instance started", "someone else's"),
            (2, 1, 200, "Server item created", "1_2 for `Call`"),
        ] {
            connection
                .execute(
                    "INSERT INTO audit (id, instance_id, at, user, action, detail) VALUES (?, ?, ?, 'alice', ?, ?)",
                    params![id, instance_id, at, action, detail],
                )
                .unwrap();
        }
        connection
            .execute_batch(
                "INSERT INTO activity_instances (instance_id, destination_id, activity_id, activity, status,
                                                 started_at, finished_at)
                     VALUES (1, 2, 'call', 'Call', 'Active', 200, NULL),
                            (1, 1, 'prepare', 'Prepare', 'Completed', 100, 200);
                 INSERT INTO line_results (id, instance_id, line_index, from_destination_id, fired, at)
                     VALUES (8, 1, 2, 1, 0, 200),
                            (7, 1, 0, 1, 1, 200);",
            )
            .unwrap();

        migrate(&mut connection).unwrap();
        let version: i64 = connection.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        for old in ["audit", "activity_instances", "line_results"] {
            assert!(!table_exists(&connection, old), "table {old} is still there");
        }
        assert!(table_exists(&connection, "history"));
        let records: Vec<i64> = connection
            .prepare("SELECT instance_id FROM history ORDER BY instance_id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records, [1, 2, 3], "one history record per instance");
        let revisions: Vec<i64> = connection
            .prepare("SELECT revision FROM instances ORDER BY id")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(revisions, [0, 0, 0]);
        drop(connection);

        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let entry = |at, action: &str, detail: &str| AuditEntry {
            at,
            user: "alice".to_owned(),
            action: action.parse().unwrap(),
            detail: detail.to_owned(),
            place: None,
        };
        let (instance, audit, activities, lines) =
            store.read(|tx| Ok((tx.instance(1)?, tx.audit(1)?, tx.activity_records(1)?, tx.line_results(1)?))).unwrap();
        let instance = instance.unwrap();
        assert_eq!(instance.data["name"], Value::String("with history".to_owned()));
        assert_eq!(instance.flow.tokens.len(), 1);
        assert_eq!(
            audit,
            [
                entry(100, "Instance started", "callback version 1"),
                entry(200, "Server item created", "1_2 for `Call`"),
                entry(300, "Waiting for callback", "1_2 (`Call`)"),
            ]
        );
        assert_eq!(
            activities,
            [
                ActivityRecord {
                    destination_id: 1,
                    activity_id: "prepare".to_owned(),
                    activity: "Prepare".to_owned(),
                    status: ActivityStatus::Completed,
                    started_at: 100,
                    finished_at: Some(200),
                },
                ActivityRecord {
                    destination_id: 2,
                    activity_id: "call".to_owned(),
                    activity: "Call".to_owned(),
                    status: ActivityStatus::Active,
                    started_at: 200,
                    finished_at: None,
                },
            ]
        );
        assert_eq!(
            lines,
            [
                LineResult { line_index: 0, from_destination_id: 1, fired: true, at: 200 },
                LineResult { line_index: 2, from_destination_id: 1, fired: false, at: 200 },
            ]
        );

        let other = store.read(|tx| tx.audit(3)).unwrap();
        assert_eq!(other, [entry(100, "Instance started", "someone else's")]);
        let (audit, activities, lines) =
            store.read(|tx| Ok((tx.audit(2)?, tx.activity_records(2)?, tx.line_results(2)?))).unwrap();
        assert!(audit.is_empty(), "{audit:?}");
        assert!(activities.is_empty(), "{activities:?}");
        assert!(lines.is_empty(), "{lines:?}");
    }

    /// Version 6 claimed instances by OS process id; version 7 names random
    /// runners that beat. A claim written before has no runner's row, so
    /// its lease alone decides: an old runner killed mid-request is taken
    /// over once its lease has run out, and not before.
    #[test]
    fn migration_7_adds_runners_and_an_old_process_id_claim_is_judged_by_its_lease() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("version6.db");
        let connection = database_at_version(&path, 6);
        assert!(!table_exists(&connection, "runners"));
        connection
            .execute_batch(
                "INSERT INTO processes (name, default_version) VALUES ('callback', 1);
                 INSERT INTO versions (process, version, definition, deployed_at, deployed_by)
                     VALUES ('callback', 1, '{}', 50, 'alice');
                 INSERT INTO instances (id, process, version, folio, originator, status, data, flow, started_at,
                                        updated_at, runner, lease_until)
                     VALUES (1, 'callback', 1, '', 'alice', 'Running', '{}', '{}', 100, 100, 4242, 60100);",
            )
            .unwrap();
        drop(connection);

        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let claims = store.read(|tx| tx.running_instances()).unwrap();
        let runner = crate::engine::RunnerId::from(4242);
        let claim = crate::engine::RunningInstance {
            id: 1,
            runner: Some(runner),
            lease_until: Some(60_100),
            runner_expires_at: None,
        };
        assert_eq!(claims, [claim]);
        assert!(!crate::engine::runner::abandoned(&claim, 60_100));
        assert!(crate::engine::runner::abandoned(&claim, 60_101));
        assert_eq!(store.runner(runner).unwrap(), None);
    }

    /// Version 8 adds timers. A wait from before has none (no deadline is
    /// made up for it): its item and instance are due at no time, and the
    /// ticker finds nothing to fire.
    #[test]
    fn migration_8_adds_timers_and_waits_from_before_have_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("version7.db");
        let connection = database_at_version(&path, 7);
        assert!(!table_exists(&connection, "timers"));
        connection
            .execute_batch(
                "INSERT INTO processes (name, default_version) VALUES ('callback', 1);
                 INSERT INTO versions (process, version, definition, deployed_at, deployed_by)
                     VALUES ('callback', 1, '{}', 50, 'alice');",
            )
            .unwrap();
        insert_instance(&connection, 1, "PO-1");
        connection
            .execute(
                "INSERT INTO server_items (instance_id, serial_id, activity_destination_id, event_index, process,
                     folio, activity, event, status, script_running, created_at)
                 VALUES (1, 2, 2, 0, 'callback', 'PO-1', 'Call', 'Call', 'Pending', 0, 100)",
                [],
            )
            .unwrap();
        drop(connection);

        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let serial = crate::engine::Serial { instance_id: 1, destination_id: 2 };
        let item = store.read(|tx| tx.server_item(serial)).unwrap().unwrap();
        assert_eq!(item.due_at, None);
        assert_eq!(store.read(|tx| tx.timers_of(1)).unwrap(), []);
        let due = crate::engine::DueTimers { by: i64::MAX, after: None, held: Vec::new(), limit: 0 };
        assert_eq!(store.read(|tx| tx.due_timers(&due)).unwrap(), []);
    }

    /// Migration 9 counts the instances, items and failures already there,
    /// as the triggers would have: the aggregates agree with a full count.
    #[test]
    fn migration_9_counts_what_a_database_held_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("version8.db");
        let connection = database_at_version(&path, 8);
        connection
            .execute_batch(
                "INSERT INTO processes (name, default_version) VALUES ('callback', 1);
                 INSERT INTO versions (process, version, definition, deployed_at, deployed_by)
                     VALUES ('callback', 1, '{}', 50, 'alice');",
            )
            .unwrap();
        for id in 1..=3 {
            insert_instance(&connection, id, &format!("PO-{id}"));
            connection
                .execute(
                    "INSERT INTO server_items (instance_id, serial_id, activity_destination_id, event_index,
                         process, folio, activity, event, status, script_running, created_at)
                     VALUES (?1, 2, 2, 0, 'callback', 'PO', 'Call', 'Call', 'Pending', 0, ?1 * 7200000)",
                    [id],
                )
                .unwrap();
        }
        let failed = r#"{"tokens":[],"next_destination_id":2,"failure":
            {"destination_id":1,"activity":"Call","event":"Call","message":"HTTP 503 for 12_2","at":900}}"#;
        connection
            .execute("UPDATE instances SET status = 'Error', flow = ?1 WHERE id = 3", [failed.replace('\n', "")])
            .unwrap();
        connection.execute("UPDATE instances SET status = 'Completed', updated_at = 120000 WHERE id = 2", []).unwrap();
        connection.execute("UPDATE server_items SET status = 'Finished' WHERE instance_id = 2", []).unwrap();
        drop(connection);

        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        assert_eq!(store.read(|tx| tx.aggregate_mismatches()).unwrap(), Vec::<String>::new());
        let counts = store.read(|tx| tx.status_counts()).unwrap();
        let by_status: Vec<(String, u64)> = counts.iter().map(|c| (c.status.name().to_owned(), c.n)).collect();
        let expected = [("Active", 1), ("Completed", 1), ("Error", 1)].map(|(s, n)| (s.to_owned(), n));
        assert_eq!(by_status, expected);
        let incidents = store.read(|tx| tx.failure_groups()).unwrap();
        assert_eq!(incidents.len(), 1);
        assert_eq!((incidents[0].key.pattern.as_str(), incidents[0].example_id), ("HTTP # for #", 3));
        let pending = store.read(|tx| tx.pending_groups(0)).unwrap();
        assert_eq!((pending.len(), pending[0].n, pending[0].oldest_hour), (1, 2, 2));
    }

    /// Migration 10 drops migration 9's triggers and counts again from the
    /// rows: a count that had gone wrong is right afterwards, and writes
    /// through the store keep the counts without any trigger.
    #[test]
    fn migration_10_drops_the_triggers_and_counts_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("version9.db");
        let mut connection = database_at_version(&path, 8);
        crate::store::sql::define_functions(&connection).unwrap();
        {
            let transaction = connection.transaction().unwrap();
            transaction.execute_batch(MIGRATIONS[8]).unwrap();
            transaction.pragma_update(None, "user_version", 9).unwrap();
            transaction.commit().unwrap();
        }
        connection
            .execute_batch(
                "INSERT INTO processes (name, default_version) VALUES ('callback', 1);
                 INSERT INTO versions (process, version, definition, deployed_at, deployed_by)
                     VALUES ('callback', 1, '{}', 50, 'alice');",
            )
            .unwrap();
        for id in 1..=2 {
            insert_instance(&connection, id, &format!("PO-{id}"));
        }
        // Counted by the triggers, then damaged behind their back.
        connection.execute("UPDATE instance_counts SET n = 7", []).unwrap();
        drop(connection);

        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let triggers: i64 = Connection::open(&path)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM sqlite_schema WHERE type = 'trigger'", [], |row| row.get(0))
            .unwrap();
        assert_eq!(triggers, 0);
        assert_eq!(store.read(|tx| tx.aggregate_mismatches()).unwrap(), Vec::<String>::new());
        let counts = store.read(|tx| tx.status_counts()).unwrap();
        assert_eq!(counts.iter().map(|c| c.n).collect::<Vec<_>>(), [2]);
        // A write through the store counts without the triggers.
        store
            .write(|tx| {
                let mut instance = tx.instance(1)?.unwrap();
                instance.status = crate::engine::InstanceStatus::Completed;
                tx.update_instance(&instance)
            })
            .unwrap();
        assert_eq!(store.read(|tx| tx.aggregate_mismatches()).unwrap(), Vec::<String>::new());
        let counts = store.read(|tx| tx.status_counts()).unwrap();
        assert_eq!(
            counts.iter().map(|c| (c.status.name(), c.n)).collect::<Vec<_>>(),
            [("Active", 1), ("Completed", 1)]
        );
    }
}
