//! The schema and its migrations. Append a migration; never edit a shipped one.

use rusqlite::Connection;

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
    // (measured five times slower).
    r#"
CREATE TABLE history (
    id          INTEGER PRIMARY KEY,
    instance_id INTEGER NOT NULL REFERENCES instances(id),
    changes     TEXT NOT NULL
) STRICT;
CREATE INDEX history_by_instance ON history(instance_id, id);

INSERT INTO history (instance_id, changes)
SELECT i.id, json_object(
    'audit', (SELECT json_group_array(json_object('at', at, 'user', user, 'action', action, 'detail', detail))
              FROM (SELECT * FROM audit a WHERE a.instance_id = i.id ORDER BY a.id)),
    'started', (SELECT json_group_array(json_object(
                    'destination_id', destination_id, 'activity_id', activity_id, 'activity', activity,
                    'status', status, 'started_at', started_at, 'finished_at', finished_at))
                FROM (SELECT * FROM activity_instances r WHERE r.instance_id = i.id ORDER BY r.destination_id)),
    'lines', (SELECT json_group_array(json_object(
                  'line_index', line_index, 'from_destination_id', from_destination_id,
                  'fired', json(CASE WHEN fired THEN 'true' ELSE 'false' END), 'at', at))
              FROM (SELECT * FROM line_results l WHERE l.instance_id = i.id ORDER BY l.id)))
FROM instances i;

DROP TABLE audit;
DROP TABLE activity_instances;
DROP TABLE line_results;
"#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

pub fn migrate(connection: &mut Connection) -> rusqlite::Result<()> {
    loop {
        let transaction = connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i64 = transaction.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
                Some(format!(
                    "the database has schema version {version}, newer than this flowdesk ({SCHEMA_VERSION}): upgrade flowdesk"
                )),
            ));
        }
        let Some(migration) = MIGRATIONS.get(version as usize) else {
            return Ok(());
        };
        transaction.execute_batch(migration)?;
        transaction.pragma_update(None, "user_version", version + 1)?;
        transaction.commit()?;
    }
}
