//! The engine's storage operations as SQL over one open transaction.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};

use rusqlite::types::Value as SqlValue;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};
use serde::{Deserialize, Serialize};

use super::overview::{self, Deltas};
use super::{fields, search};
use crate::engine::instance::{ActivityStatus, AuditPlace, FlowState};
use crate::engine::machine::{Effect, RecordedFinish};
use crate::engine::overview::{Incident, MinuteCount, PendingGroup, ReasonKey, StatusCount};
use crate::engine::runner::RunnerId;
use crate::engine::storage::item_status_from_name;
use crate::engine::{
    ActivityRecord, AuditEntry, DueTimers, EngineError, FieldTest, Instance, InstanceColumn, InstanceFilter,
    InstanceStatus, InstanceSummary, ItemFilter, ItemState, ItemStatus, LineResult, Millis, ProcessSummary,
    RunningInstance, Serial, ServerItem, StorageError, StorageErrorKind, TimeRange, Timer, TimerState, Transaction,
    VersionRecord, Visibility,
};
use crate::model::{Right, Value};

/// The engine's storage operations on a connection that is inside a
/// transaction; the caller owns begin and commit.
pub struct SqliteTransaction<'c> {
    tx: &'c rusqlite::Connection,
    /// Whether anything was written through this transaction.
    wrote: bool,
    /// The store's next instance id, shared with work planned on snapshots.
    ids: Option<&'c AtomicI64>,
    /// Where the writes' changes to the overview's aggregates go.
    deltas: Sink<'c>,
    /// Instances whose version and stored status this transaction knows
    /// (read or written here, or told by a plan): what an update changes
    /// the counts from, without reading the row again.
    known: Vec<(i64, u32, &'static str)>,
}

/// Where a transaction's changes to the aggregates go.
enum Sink<'c> {
    /// Applied after each write: a transaction outside group commit.
    Now(Deltas),
    /// Summed for the batch, which applies them before it commits.
    Batch(&'c mut Deltas),
}

impl<'c> SqliteTransaction<'c> {
    pub fn new(tx: &'c rusqlite::Connection) -> SqliteTransaction<'c> {
        SqliteTransaction { tx, wrote: false, ids: None, deltas: Sink::Now(Deltas::default()), known: Vec::new() }
    }

    /// Instance ids are handed out from `ids` as well as from the database,
    /// so that work planned on a snapshot and work done in the transaction
    /// never pick the same one.
    pub fn with_ids(tx: &'c rusqlite::Connection, ids: &'c AtomicI64) -> SqliteTransaction<'c> {
        SqliteTransaction { ids: Some(ids), ..SqliteTransaction::new(tx) }
    }

    /// As [`Self::with_ids`], a member of a group commit: the changes to
    /// the aggregates are summed into the batch's `deltas`, which the batch
    /// applies before it commits (and forgets if it rolls back).
    pub(super) fn in_batch(
        tx: &'c rusqlite::Connection,
        ids: &'c AtomicI64,
        deltas: &'c mut Deltas,
    ) -> SqliteTransaction<'c> {
        SqliteTransaction { tx, wrote: false, ids: Some(ids), deltas: Sink::Batch(deltas), known: Vec::new() }
    }

    fn deltas(&mut self) -> &mut Deltas {
        match &mut self.deltas {
            Sink::Now(deltas) => deltas,
            Sink::Batch(deltas) => deltas,
        }
    }

    /// Applies the changes to the aggregates now, outside group commit.
    fn settle(&mut self) -> Result<(), EngineError> {
        match &mut self.deltas {
            Sink::Now(deltas) => deltas.apply(self.tx),
            Sink::Batch(_) => Ok(()),
        }
    }

    /// Notes instance `id`'s version and stored status (a plan read them on
    /// its snapshot, and its revision check vouches they still hold).
    pub(super) fn knows(&mut self, id: i64, version: u32, status: &'static str) {
        match self.known.iter_mut().find(|(known, ..)| *known == id) {
            Some(entry) => *entry = (id, version, status),
            None => self.known.push((id, version, status)),
        }
    }

    /// Instance `id`'s version and stored status: as known, or read.
    fn stored(&mut self, id: i64) -> Result<Option<(u32, &'static str)>, EngineError> {
        if let Some((_, version, status)) = self.known.iter().find(|(known, ..)| *known == id) {
            return Ok(Some((*version, status)));
        }
        let row: Option<(u32, String)> = self
            .tx
            .prepare_cached("SELECT version, status FROM instances WHERE id = ?")
            .and_then(|mut s| s.query_row([id], |row| Ok((row.get(0)?, row.get(1)?))).optional())
            .map_err(db(self.tx))?;
        row.map(|(version, status)| Ok((version, status_from(&status)?.name()))).transpose()
    }

    /// Whether the work wrote anything: a refusal after a write leaves work
    /// behind that only rolling the transaction back undoes.
    pub fn wrote(&self) -> bool {
        self.wrote
    }

    /// The connection, for the store's own statements outside the engine's
    /// `Transaction` (API tokens); they call [`Self::mark_written`] once
    /// they changed something.
    pub(super) fn connection(&self) -> &'c rusqlite::Connection {
        self.tx
    }

    pub(super) fn mark_written(&mut self) {
        self.wrote = true;
    }
}

/// An instance's row as stored: what a planned write keeps of an instance
/// (not the instance itself, whose data and flow it has as text already).
pub(super) struct EncodedInstance {
    id: i64,
    process: String,
    version: u32,
    folio: String,
    originator: String,
    status: &'static str,
    data: String,
    flow: String,
    started_at: Millis,
    updated_at: Millis,
    runner: Option<RunnerId>,
    lease_until: Option<Millis>,
}

impl EncodedInstance {
    pub(super) fn id(&self) -> i64 {
        self.id
    }

    pub(super) fn version(&self) -> u32 {
        self.version
    }

    pub(super) fn of(instance: &Instance) -> Result<EncodedInstance, EngineError> {
        let data = serde_json::to_string(&instance.data).map_err(|e| EngineError::Internal(e.to_string()))?;
        let flow = serde_json::to_string(&instance.flow).map_err(|e| EngineError::Internal(e.to_string()))?;
        Ok(EncodedInstance {
            id: instance.id,
            process: instance.process.clone(),
            version: instance.version,
            folio: instance.folio.clone(),
            originator: instance.originator.clone(),
            status: instance.status.name(),
            data,
            flow,
            started_at: instance.started_at,
            updated_at: instance.updated_at,
            runner: instance.runner,
            lease_until: instance.lease_until,
        })
    }
}

/// The history record of a decision's effects, or `None` if they add
/// nothing to it.
pub(super) fn encode_history(effects: &[Effect]) -> Result<Option<String>, EngineError> {
    if !effects.iter().any(Effect::is_history) {
        return Ok(None);
    }
    serde_json::to_string(&HistoryRecord(effects)).map(Some).map_err(|e| EngineError::Internal(e.to_string()))
}

/// Takes the next instance id from `ids`, or `stored` (the database's next
/// id) if that is higher.
pub(super) fn reserve_id(ids: &AtomicI64, stored: i64) -> i64 {
    let mut id = stored;
    let _ = ids.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |next| {
        id = next.max(stored);
        Some(id + 1)
    });
    id
}

/// What one write did to an instance's history, stored as one JSON row: one
/// insert per call instead of one per audit line, activity and line. Entries
/// are arrays rather than objects (`"a":[[at,"user","action","detail"]]`):
/// the keys repeated in every entry were a third of each row, and the
/// history is most of what a lifecycle writes. Rows written before schema 6,
/// with named fields, are still read ([`StoredHistoryRecord`]).
///
/// Written straight from a decision's effects, each list (`a` audit, `s`
/// activities started, `c` closed, `l` lines) the effects of its kind in
/// order, without collecting them first.
struct HistoryRecord<'a>(&'a [Effect]);

impl Serialize for HistoryRecord<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let effects = self.0;
        let audit = || {
            effects.iter().filter_map(|e| match e {
                Effect::Audit(a) => Some(AuditOut(a)),
                _ => None,
            })
        };
        let started = || {
            effects.iter().filter_map(|e| match e {
                Effect::ActivityStarted { record: r, .. } => {
                    Some((r.destination_id, &r.activity_id, &r.activity, r.status, r.started_at, r.finished_at))
                }
                _ => None,
            })
        };
        let closed = || {
            effects.iter().filter_map(|e| match e {
                Effect::ActivityClosed { destination_id, status, at } => Some((*destination_id, *status, *at)),
                _ => None,
            })
        };
        let lines = || {
            effects.iter().filter_map(|e| match e {
                Effect::LineEvaluated(l) => Some((l.line_index, l.from_destination_id, l.fired, l.at)),
                _ => None,
            })
        };
        let mut map = serializer.serialize_map(None)?;
        if audit().next().is_some() {
            map.serialize_entry("a", &Rows(audit))?;
        }
        if started().next().is_some() {
            map.serialize_entry("s", &Rows(started))?;
        }
        if closed().next().is_some() {
            map.serialize_entry("c", &Rows(closed))?;
        }
        if lines().next().is_some() {
            map.serialize_entry("l", &Rows(lines))?;
        }
        map.end()
    }
}

/// A list serialized from an iterator, made afresh each time.
struct Rows<F>(F);

impl<F, I> Serialize for Rows<F>
where
    F: Fn() -> I,
    I: Iterator,
    I::Item: Serialize,
{
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq((self.0)())
    }
}

/// An audit entry as stored: `[at, "user", "action", "detail"]`, and
/// `"activity", "event"` after them when the entry has a place (entries
/// written before places were recorded have four elements, and read as
/// having none).
struct AuditOut<'a>(&'a AuditEntry);

impl Serialize for AuditOut<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let entry = self.0;
        let mut row = serializer.serialize_tuple(if entry.place.is_some() { 6 } else { 4 })?;
        row.serialize_element(&entry.at)?;
        row.serialize_element(&entry.user)?;
        row.serialize_element(&entry.action)?;
        row.serialize_element(&entry.detail)?;
        if let Some(place) = &entry.place {
            row.serialize_element(&place.activity)?;
            row.serialize_element(&place.event)?;
        }
        row.end()
    }
}

/// An audit entry read back from its array (see [`AuditOut`]).
struct AuditRow(AuditEntry);

impl<'de> Deserialize<'de> for AuditRow {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<AuditRow, D::Error> {
        struct Row;
        impl<'de> serde::de::Visitor<'de> for Row {
            type Value = AuditRow;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an audit entry of 4 or 6 elements")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<AuditRow, A::Error> {
                use serde::de::Error;
                let missing = |n| A::Error::invalid_length(n, &self);
                let at = seq.next_element()?.ok_or_else(|| missing(0))?;
                let user = seq.next_element()?.ok_or_else(|| missing(1))?;
                let action = seq.next_element()?.ok_or_else(|| missing(2))?;
                let detail = seq.next_element()?.ok_or_else(|| missing(3))?;
                let place = match seq.next_element::<String>()? {
                    None => None,
                    Some(activity) => {
                        let event = seq.next_element()?.ok_or_else(|| missing(5))?;
                        Some(AuditPlace { activity, event })
                    }
                };
                Ok(AuditRow(AuditEntry { at, user, action, detail, place }))
            }
        }
        deserializer.deserialize_seq(Row)
    }
}

type StartedRow = (i64, String, String, ActivityStatus, Millis, Option<Millis>);
type LineRow = (usize, i64, bool, Millis);

/// A history row as stored: the array form written since schema 6, or the
/// named form of older rows (migration 4 and the builds up to schema 5).
#[derive(Deserialize)]
struct StoredHistoryRecord {
    #[serde(default)]
    a: Vec<AuditRow>,
    #[serde(default)]
    s: Vec<StartedRow>,
    #[serde(default)]
    c: Vec<(i64, ActivityStatus, Millis)>,
    #[serde(default)]
    l: Vec<LineRow>,
    #[serde(default)]
    audit: Vec<AuditEntry>,
    #[serde(default)]
    started: Vec<ActivityRecord>,
    #[serde(default)]
    closed: Vec<(i64, ActivityStatus, Millis)>,
    #[serde(default)]
    lines: Vec<LineResult>,
}

struct OwnedHistoryRecord {
    audit: Vec<AuditEntry>,
    started: Vec<ActivityRecord>,
    closed: Vec<(i64, ActivityStatus, Millis)>,
    lines: Vec<LineResult>,
}

impl From<StoredHistoryRecord> for OwnedHistoryRecord {
    fn from(stored: StoredHistoryRecord) -> OwnedHistoryRecord {
        let StoredHistoryRecord { a, s, c, l, mut audit, mut started, mut closed, mut lines } = stored;
        audit.extend(a.into_iter().map(|AuditRow(entry)| entry));
        started.extend(s.into_iter().map(
            |(destination_id, activity_id, activity, status, started_at, finished_at)| ActivityRecord {
                destination_id,
                activity_id,
                activity,
                status,
                started_at,
                finished_at,
            },
        ));
        closed.extend(c);
        lines.extend(l.into_iter().map(|(line_index, from_destination_id, fired, at)| LineResult {
            line_index,
            from_destination_id,
            fired,
            at,
        }));
        OwnedHistoryRecord { audit, started, closed, lines }
    }
}

/// The history JSON of a synthetic instance's start.
pub(super) fn start_history_json(entry: &AuditEntry) -> Result<String, EngineError> {
    let effects = [Effect::Audit(entry.clone())];
    serde_json::to_string(&HistoryRecord(&effects)).map_err(|e| EngineError::Internal(e.to_string()))
}

/// Runs a cached statement that writes.
pub(super) fn execute_cached(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<(), EngineError> {
    connection.prepare_cached(sql).and_then(|mut s| s.execute(params)).map_err(db(connection))?;
    Ok(())
}

/// Runs a cached statement and collects every row `map` makes of it.
pub(super) fn collect_rows<T>(
    connection: &rusqlite::Connection,
    sql: &str,
    params: impl rusqlite::Params,
    map: impl FnMut(&Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, EngineError> {
    let mut statement = connection.prepare_cached(sql).map_err(db(connection))?;
    let rows = statement.query_map(params, map).map_err(db(connection))?;
    rows.collect::<Result<_, _>>().map_err(db(connection))
}

/// How an error of a statement on `connection` is reported: as
/// `store::describe` words it, naming the connection's file.
pub(super) fn db(connection: &rusqlite::Connection) -> impl Fn(rusqlite::Error) -> EngineError + '_ {
    move |err| super::describe(&err, std::path::Path::new(connection.path().unwrap_or_default()))
}

fn corrupt(what: &str, detail: impl std::fmt::Display) -> EngineError {
    StorageError::new(StorageErrorKind::Corrupt, format!("the database holds an unreadable {what}: {detail}")).into()
}

// Column lists as macros, so that the hot reads' statements are whole
// constants: formatting them per call cost an allocation and a hash of
// the text for the statement cache's lookup.
macro_rules! instance_columns {
    () => {
        "id, process, version, folio, originator, status, data, flow, started_at, updated_at, runner, lease_until, revision"
    };
}
const SELECT_INSTANCE: &str = concat!("SELECT ", instance_columns!(), " FROM instances WHERE id = ?");

pub(super) fn status_from(text: &str) -> Result<InstanceStatus, EngineError> {
    text.parse().map_err(|e| corrupt("instance status", e))
}

fn instance_from_row(row: &Row<'_>) -> rusqlite::Result<(Instance, String, String, String)> {
    Ok((
        Instance {
            id: row.get(0)?,
            process: row.get(1)?,
            version: row.get(2)?,
            folio: row.get(3)?,
            originator: row.get(4)?,
            status: InstanceStatus::Running,
            data: BTreeMap::new(),
            flow: FlowState::default(),
            started_at: row.get(8)?,
            updated_at: row.get(9)?,
            runner: row.get(10)?,
            lease_until: row.get(11)?,
            revision: row.get(12)?,
        },
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
    ))
}

fn summary_from_row(row: &Row<'_>) -> rusqlite::Result<(InstanceSummary, String)> {
    Ok((
        InstanceSummary {
            id: row.get(0)?,
            process: row.get(1)?,
            version: row.get(2)?,
            folio: row.get(3)?,
            originator: row.get(4)?,
            status: InstanceStatus::Running,
            started_at: row.get(5)?,
            updated_at: row.get(6)?,
            due_at: row.get(8)?,
            parent_id: row.get(9)?,
        },
        row.get(7)?,
    ))
}

// An item's next due time: the soonest of its armed timers, from the
// index that covers them (`timers_by_item`).
macro_rules! item_columns {
    () => {
        "instance_id, serial_id, activity_destination_id, event_index, process, folio, activity, event, status, \
         created_at, closed_at, closed_by, unapplied, (SELECT MIN(t.due_at) FROM timers t \
         WHERE t.instance_id = server_items.instance_id AND t.serial_id = server_items.serial_id \
         AND t.state = 'Armed')"
    };
}
pub(super) const ITEM_COLUMNS: &str = item_columns!();
const SELECT_ITEM: &str =
    concat!("SELECT ", item_columns!(), " FROM server_items WHERE instance_id = ? AND serial_id = ?");
const SELECT_PENDING_ITEMS_OF: &str = concat!(
    "SELECT ",
    item_columns!(),
    " FROM server_items WHERE instance_id = ? AND status = 'Pending' ORDER BY serial_id"
);

// The statements of a callback lifecycle, named so that `floor.rs` replays
// exactly what the engine writes.
pub(super) const INSERT_INSTANCE: &str = "INSERT INTO instances (id, process, version, folio, originator, status, data, \
     flow, started_at, updated_at, runner, lease_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
pub(super) const UPDATE_INSTANCE: &str = "UPDATE instances SET status = ?, data = ?, flow = ?, updated_at = ?, \
     runner = ?, lease_until = ?, revision = revision + 1 WHERE id = ?";
/// `script_running` is no longer written or read (whether an item's work
/// still runs is told by its token): always 0, as builds that read it
/// expect of an item whose work has ended; they also look at the token.
pub(super) const INSERT_ITEM: &str = "INSERT INTO server_items (instance_id, serial_id, activity_destination_id, \
     event_index, process, folio, activity, event, status, script_running, created_at, closed_at, closed_by, unapplied) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, NULL, NULL, NULL)";
pub(super) const FINISH_ITEM: &str = "UPDATE server_items SET status = 'Finished', closed_at = ?, closed_by = ?, \
     unapplied = ? WHERE instance_id = ? AND serial_id = ?";
const CANCEL_ITEM: &str = "UPDATE server_items SET status = 'Cancelled', closed_at = ?, closed_by = ?, \
     unapplied = NULL WHERE instance_id = ? AND serial_id = ?";
/// An instance's open items: pending, or finished with the finish not applied yet.
const SELECT_OPEN_ITEMS: &str = "SELECT serial_id, activity_destination_id, unapplied, closed_by FROM server_items \
     WHERE instance_id = ? AND (status = 'Pending' OR unapplied IS NOT NULL)";
pub(super) const INSERT_HISTORY: &str = "INSERT INTO history (instance_id, changes) VALUES (?, ?)";
const ARM_TIMER: &str = "INSERT INTO timers (instance_id, serial_id, escalation, due_at, fired_count, state) \
     VALUES (?, ?, ?, ?, 0, 'Armed')";
const CHANGE_TIMER: &str = "UPDATE timers SET due_at = ?, fired_count = ?, state = ? WHERE id = ?";
const DISARM_TIMERS: &str =
    "UPDATE timers SET state = 'Disarmed' WHERE instance_id = ? AND serial_id = ? AND state = 'Armed'";
macro_rules! timer_columns {
    () => {
        "t.id, t.instance_id, t.serial_id, t.escalation, t.due_at, t.fired_count, t.state"
    };
}
const TIMER_COLUMNS: &str = timer_columns!();
const SELECT_TIMERS_OF: &str =
    concat!("SELECT ", timer_columns!(), " FROM timers t WHERE t.instance_id = ? ORDER BY t.due_at, t.id");

fn timer_from_row(row: &Row<'_>) -> rusqlite::Result<(Timer, String)> {
    Ok((
        Timer {
            id: row.get(0)?,
            instance_id: row.get(1)?,
            serial_id: row.get(2)?,
            escalation: row.get(3)?,
            due_at: row.get(4)?,
            fired_count: row.get(5)?,
            state: TimerState::Armed,
        },
        row.get(6)?,
    ))
}

fn finish_timer((mut timer, state): (Timer, String)) -> Result<Timer, EngineError> {
    timer.state = TimerState::from_name(&state).ok_or_else(|| corrupt("timer state", &state))?;
    Ok(timer)
}

/// The query of a page of due timers, with its arguments: a walk of the
/// partial index of armed timers (`timers_due`) from the page before's
/// last one, which stops at the limit; a held instance's timers are
/// skipped by its status, read by its primary key.
fn due_query(query: &DueTimers) -> (String, Vec<SqlValue>) {
    let (after_due, after_id) = query.after.unwrap_or((Millis::MIN, i64::MIN));
    let mut args = vec![SqlValue::Integer(query.by), SqlValue::Integer(after_due), SqlValue::Integer(after_id)];
    let held = if query.held.is_empty() {
        String::new()
    } else {
        args.extend(query.held.iter().map(|status| SqlValue::Text(status.name().to_owned())));
        format!(
            " AND (SELECT status FROM instances i WHERE i.id = t.instance_id) NOT IN ({})",
            vec!["?"; query.held.len()].join(", ")
        )
    };
    let limit = if query.limit == 0 { i64::MAX } else { query.limit as i64 };
    args.push(SqlValue::Integer(limit));
    let sql = format!(
        "SELECT {TIMER_COLUMNS} FROM timers t WHERE t.state = 'Armed' AND t.due_at <= ? \
         AND (t.due_at, t.id) > (?, ?){held} ORDER BY t.due_at, t.id LIMIT ?"
    );
    (sql, args)
}
const INSERT_PARTICIPANT: &str = "INSERT OR IGNORE INTO participants (instance_id, user) VALUES (?, ?)";

pub(super) fn item_from_row(row: &Row<'_>) -> rusqlite::Result<(ServerItem, String, Option<String>)> {
    Ok((
        ServerItem {
            serial: Serial { instance_id: row.get(0)?, destination_id: row.get(1)? },
            activity_destination_id: row.get(2)?,
            event_index: row.get(3)?,
            process: row.get(4)?,
            folio: row.get(5)?,
            activity: row.get(6)?,
            event: row.get(7)?,
            status: ItemStatus::Pending,
            created_at: row.get(9)?,
            closed_at: row.get(10)?,
            closed_by: row.get(11)?,
            unapplied: None,
            due_at: row.get(13)?,
        },
        row.get(8)?,
        row.get(12)?,
    ))
}

pub(super) fn finish_item(
    (mut item, status, unapplied): (ServerItem, String, Option<String>),
) -> Result<ServerItem, EngineError> {
    item.status = item_status_from_name(&status).ok_or_else(|| corrupt("item status", &status))?;
    item.unapplied = match unapplied {
        Some(json) => Some(serde_json::from_str(&json).map_err(|e| corrupt("item data", e))?),
        None => None,
    };
    Ok(item)
}

fn right_from(text: &str) -> Result<Right, EngineError> {
    text.parse().map_err(|e| corrupt("right", e))
}

/// Builds the condition that limits rows to what a user may see, or `None`
/// when the user sees every process (then no condition costs a check per
/// row). `id_column` is the column holding the instance id.
///
/// The process is written `+process`: the unary plus keeps the planner from
/// choosing an index on it. Without statistics SQLite takes `process IN (…)`
/// for a selective lookup, and on a million instances of a few processes it
/// then sorts every row to show the first page; as a plain filter, the index
/// that matches the wanted order is walked instead, and the walk stops at the
/// page. A user who sees a small process among many pays a longer walk.
fn visibility_clause(
    visibility: &Visibility,
    everything: bool,
    id_column: &str,
    args: &mut Vec<SqlValue>,
) -> Option<String> {
    if everything {
        return None;
    }
    let placeholders = |n: usize| vec!["?"; n].join(", ");
    let mut parts = Vec::new();
    if !visibility.all_of.is_empty() {
        parts.push(format!("+process IN ({})", placeholders(visibility.all_of.len())));
        args.extend(visibility.all_of.iter().map(|p| SqlValue::Text(p.clone())));
    }
    if !visibility.participated_of.is_empty() {
        // An originator takes part in the instances it started without a
        // participants row (a row less to write per start): those come from
        // the originator's index.
        parts.push(format!(
            "(+process IN ({}) AND {id_column} IN (SELECT instance_id FROM participants WHERE user = ? \
             UNION ALL SELECT id FROM instances WHERE originator = ?))",
            placeholders(visibility.participated_of.len())
        ));
        args.extend(visibility.participated_of.iter().map(|p| SqlValue::Text(p.clone())));
        args.push(SqlValue::Text(visibility.user.clone()));
        args.push(SqlValue::Text(visibility.user.clone()));
    }
    Some(if parts.is_empty() { "0".to_owned() } else { format!("({})", parts.join(" OR ")) })
}

/// What the instance conditions are for; it decides which of them may lead
/// the planner to an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// Counting: every filter may use its index (each count index covers the
    /// other filter columns).
    Count,
    /// A page in this order: only filters whose index also gives the order
    /// may use it; the others are checked on the order's index as it is
    /// walked, so a page never sorts the whole table.
    Page(InstanceColumn),
}

/// The `WHERE` conditions of the instance list (empty: every row).
///
/// Each sort column has an index that leads with it and carries `id`,
/// `process` and `status` (schema migration 3), so a page is an index walk
/// that stops after `OFFSET + LIMIT` entries without reading the table, and
/// the filters are checked from the index. A folio search cannot use an
/// index (it matches anywhere in the folio); it scans the narrow folio index
/// once and the rest of the query works on the ids found.
///
/// `indexed` says, for each of the filter's field conditions, whether an
/// index of its field serves it (`fields::indexed`); such a condition
/// leads the planner to that index (see `store::fields`).
fn instance_where(
    visibility: &Visibility,
    everything: bool,
    filter: &InstanceFilter,
    indexed_fields: &[bool],
    purpose: Purpose,
    args: &mut Vec<SqlValue>,
) -> Vec<String> {
    let search = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    // The conditions an index of a searchable field serves, with the
    // process they index: they, not the process's index, lead a count.
    let necessary: Vec<(String, SqlValue)> = match &filter.process {
        Some(_) => filter
            .fields
            .iter()
            .zip(indexed_fields)
            .filter(|(_, indexed)| **indexed)
            .filter_map(|(condition, _)| fields::necessary_condition(condition))
            .collect(),
        None => Vec::new(),
    };
    // `+column` keeps a condition off the planner's index choice.
    let indexed = |column: InstanceColumn| {
        search.is_none()
            && match purpose {
                Purpose::Count => true,
                Purpose::Page(order) => {
                    order == InstanceColumn::Id
                        || order == column
                        || (order == InstanceColumn::LastChange && column == InstanceColumn::Status)
                }
            }
    };
    let plus = |column| if indexed(column) { "" } else { "+" };
    let mut conditions = Vec::new();
    conditions.extend(visibility_clause(visibility, everything, "id", args));
    if let Some(process) = &filter.process {
        let plus = if necessary.is_empty() { plus(InstanceColumn::Process) } else { "+" };
        conditions.push(format!("{plus}process = ?"));
        args.push(SqlValue::Text(process.clone()));
        if !necessary.is_empty() {
            // A literal: SQLite uses a partial index only where it can
            // prove the query's rows are within the index's `WHERE`.
            conditions.push(format!("process = {}", fields::literal(process)));
            for (condition, value) in &necessary {
                conditions.push(condition.clone());
                args.push(value.clone());
            }
        }
    }
    if let (Some(process), Some(version)) = (&filter.process, filter.version) {
        // No index has the version: read on the rows the others found.
        conditions.push("+version = ?".to_owned());
        args.push(SqlValue::Integer(i64::from(version)));
        if let Some(activity) = &filter.activity {
            // Waiting there (the partial index of pending items by
            // activity) or failed there (`failures_by_reason`).
            // At work there: the few ids the engine read from their flow,
            // one more member of the same list (so the plan stays a lookup
            // by id of what the list holds).
            let active = if filter.active_at.is_empty() {
                String::new()
            } else {
                format!(" UNION ALL VALUES {}", vec!["(?)"; filter.active_at.len()].join(", "))
            };
            conditions.push(format!(
                "id IN (SELECT instance_id FROM server_items WHERE status = 'Pending' AND process = ? \
                 AND activity = ? UNION ALL SELECT instance_id FROM failures WHERE process = ? AND version = ? \
                 AND activity = ?{active})"
            ));
            args.extend([
                SqlValue::Text(process.clone()),
                SqlValue::Text(activity.clone()),
                SqlValue::Text(process.clone()),
                SqlValue::Integer(i64::from(version)),
                SqlValue::Text(activity.clone()),
            ]);
            args.extend(filter.active_at.iter().map(|id| SqlValue::Integer(*id)));
        }
    }
    if let Some(status) = filter.status {
        let plus = if necessary.is_empty() { plus(InstanceColumn::Status) } else { "+" };
        conditions.push(format!("{plus}status = ?"));
        args.push(SqlValue::Text(status.name().to_owned()));
    }
    // The filters below are checked on each row as the order's index (or
    // the search's ids) is walked: no index holds them, and a page stops
    // walking once full.
    if let Some(version) = filter.version {
        conditions.push("+version = ?".to_owned());
        args.push(SqlValue::Integer(i64::from(version)));
    }
    let mut range = |column: &str, range: &TimeRange| {
        if let Some(after) = range.after {
            conditions.push(format!("+{column} >= ?"));
            args.push(SqlValue::Integer(after));
        }
        if let Some(before) = range.before {
            conditions.push(format!("+{column} < ?"));
            args.push(SqlValue::Integer(before));
        }
    };
    range("started_at", &filter.started);
    if !filter.ended.is_open() {
        // An instance ends when it completes; its last change is then when.
        range("updated_at", &filter.ended);
        conditions.push("+status = 'Completed'".to_owned());
    }
    for condition in &filter.fields {
        // The engine has read every condition for its field's type (the
        // store refuses a filter where it has not): one left unread
        // matches nothing rather than everything.
        let Some(test) = condition.test.as_ref().and_then(|test| serde_json::to_string(test).ok()) else {
            conditions.push("0".to_owned());
            continue;
        };
        // The field's stored value (`{"Integer":5}`), found by a path
        // bound as an argument; the engine checked the field is the
        // process's, so its name is an identifier.
        conditions.push(format!("{FIELD_MATCHES}(data -> ?, ?)"));
        args.push(SqlValue::Text(format!("$.\"{}\"", condition.field)));
        args.push(SqlValue::Text(test));
    }
    if let Some(search) = search {
        let folio_matches = match purpose {
            Purpose::Count => format!("{CONTAINS_IGNORING_CASE}(?, folio)"),
            Purpose::Page(_) => format!("id IN (SELECT id FROM instances WHERE {CONTAINS_IGNORING_CASE}(?, folio))"),
        };
        match search.parse::<i64>() {
            Ok(id) => {
                conditions.push(format!("(id = ? OR {folio_matches})"));
                args.push(SqlValue::Integer(id));
            }
            Err(_) => conditions.push(folio_matches),
        }
        args.push(SqlValue::Text(search.to_owned()));
    }
    if filter.overdue {
        // The overdue are few (held instances, or a runtime down for a
        // while): found from the index of armed timers by due time, the
        // page's order made of them.
        conditions.push(format!("id IN ({OVERDUE_INSTANCES})"));
        args.push(SqlValue::Integer(filter.now));
    }
    conditions
}

/// The instances with an armed timer due by `?`, from the partial index of
/// armed timers (`timers_due`).
const OVERDUE_INSTANCES: &str = "SELECT instance_id FROM timers WHERE state = 'Armed' AND due_at <= ?";

fn where_clause(conditions: &[String]) -> String {
    if conditions.is_empty() { String::new() } else { format!("WHERE {}", conditions.join(" AND ")) }
}

/// The query of one page of the instance list, with its arguments.
fn page_query(
    visibility: &Visibility,
    everything: bool,
    filter: &InstanceFilter,
    indexed: &[bool],
) -> (String, Vec<SqlValue>) {
    let mut args = Vec::new();
    let conditions =
        instance_where(visibility, everything, filter, indexed, Purpose::Page(filter.order.column), &mut args);
    let column = match filter.order.column {
        InstanceColumn::Id => "id",
        InstanceColumn::Folio => "folio",
        InstanceColumn::Process => "process",
        InstanceColumn::Status => "status",
        InstanceColumn::Originator => "originator",
        InstanceColumn::LastChange => "updated_at",
        // Paged by `due_page_queries` instead; the id order if asked here.
        InstanceColumn::Due => "id",
    };
    let direction = if filter.order.descending { "DESC" } else { "ASC" };
    let order =
        if column == "id" { format!("id {direction}") } else { format!("{column} {direction}, id {direction}") };
    let limit = if filter.limit == 0 { i64::MAX } else { filter.limit as i64 };
    args.push(SqlValue::Integer(limit));
    args.push(SqlValue::Integer(filter.offset as i64));
    // The page's ids come from walking one narrow index (deep offsets
    // included); only the rows of the page are then read from the table.
    // Each row's next due time from the index covering the timers.
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM instances
         WHERE id IN (SELECT id FROM instances {} ORDER BY {order} LIMIT ? OFFSET ?)
         ORDER BY {order}",
        where_clause(&conditions)
    );
    (sql, args)
}

// A row of the instance list; its next due time from the index covering
// the timers (`timers_by_item`).
macro_rules! summary_columns {
    () => {
        "id, process, version, folio, originator, started_at, updated_at, status, \
         (SELECT MIN(t.due_at) FROM timers t WHERE t.instance_id = instances.id AND t.state = 'Armed'), \
         json_extract(flow, '$.parent.instance_id')"
    };
}
const SUMMARY_COLUMNS: &str = summary_columns!();
const SELECT_SUMMARY: &str = concat!("SELECT ", summary_columns!(), " FROM instances WHERE id = ?");

/// A statement's text and its arguments.
type Query = (String, Vec<SqlValue>);

/// The two walks of the Due order (`InstanceColumn::Due`), each a query of
/// ids with its arguments, its `LIMIT` and `OFFSET` left for the caller.
///
/// First the instances with an armed timer, each met once, at its soonest
/// timer (ties by the timers' ids: the index's order): a walk of the
/// partial index of armed timers (`timers_due`) in the order asked for,
/// where an instance's other armed timers are looked up in the index
/// covering them (`timers_by_item`) and its conditions checked on its row,
/// found by its key; the walk stops at the page. Then, unless only the
/// overdue are asked for, the instances with nothing due, newest first,
/// from the id index as the id order walks it.
fn due_page_queries(
    visibility: &Visibility,
    everything: bool,
    filter: &InstanceFilter,
    indexed: &[bool],
) -> (Query, Option<Query>) {
    // Overdue means due by now: a bound of the walk, not a condition.
    let plain = InstanceFilter { overdue: false, ..filter.clone() };
    let mut args = Vec::new();
    let overdue = if filter.overdue {
        args.push(SqlValue::Integer(filter.now));
        " AND t.due_at <= ?"
    } else {
        ""
    };
    let conditions =
        instance_where(visibility, everything, &plain, indexed, Purpose::Page(InstanceColumn::Due), &mut args);
    let instance = if conditions.is_empty() {
        String::new()
    } else {
        format!(
            " AND EXISTS (SELECT 1 FROM instances WHERE instances.id = t.instance_id AND {})",
            conditions.join(" AND ")
        )
    };
    let direction = if filter.order.descending { "DESC" } else { "ASC" };
    let with_due = format!(
        "SELECT t.instance_id FROM timers t WHERE t.state = 'Armed'{overdue} \
         AND NOT EXISTS (SELECT 1 FROM timers e WHERE e.instance_id = t.instance_id AND e.state = 'Armed' \
         AND (e.due_at, e.id) < (t.due_at, t.id)){instance} \
         ORDER BY t.due_at {direction}, t.id {direction}"
    );
    let without_due = (!filter.overdue).then(|| {
        let mut args = Vec::new();
        let mut conditions =
            instance_where(visibility, everything, &plain, indexed, Purpose::Page(InstanceColumn::Id), &mut args);
        conditions.push(
            "NOT EXISTS (SELECT 1 FROM timers t WHERE t.instance_id = instances.id AND t.state = 'Armed')".to_owned(),
        );
        (format!("SELECT id FROM instances {} ORDER BY id DESC", where_clause(&conditions)), args)
    });
    ((with_due, args), without_due)
}

/// The query counting the instances of a filter, with its arguments.
fn count_query(
    visibility: &Visibility,
    everything: bool,
    filter: &InstanceFilter,
    indexed: &[bool],
) -> (String, Vec<SqlValue>) {
    let mut args = Vec::new();
    let conditions = instance_where(visibility, everything, filter, indexed, Purpose::Count, &mut args);
    // Without a WHERE clause SQLite counts the entries of its smallest index
    // page by page, without decoding them: several times faster.
    (format!("SELECT COUNT(*) FROM instances {}", where_clause(&conditions)), args)
}

/// The SQL function `name(needle, text...)`: whether any text contains the
/// needle, ignoring case in all of Unicode (SQLite's own `lower()` and `LIKE`
/// fold ASCII letters only, so `ÜBER` would not find `über`), as
/// `search.rs` says for every store.
pub(super) const CONTAINS_IGNORING_CASE: &str = "flowdesk_contains_ignoring_case";

/// The SQL function `name(stored, test)`: whether a data field's stored
/// value (its JSON, `{"Integer":5}`, or NULL) passes a field condition's
/// test (a [`FieldTest`]'s JSON), as [`FieldTest::matches`] says for every
/// store.
pub(super) const FIELD_MATCHES: &str = "flowdesk_field_matches";

/// Defines the store's own SQL functions on a connection.
pub(super) fn define_functions(connection: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC | FunctionFlags::SQLITE_INNOCUOUS;
    connection.create_scalar_function(FIELD_MATCHES, 2, flags, |context| {
        // The test is the same for every row of a statement: read once.
        let test = context.get_or_create_aux(1, |test| -> Result<FieldTest, rusqlite::types::FromSqlError> {
            serde_json::from_str(test.as_str()?).map_err(|e| rusqlite::types::FromSqlError::Other(Box::new(e)))
        })?;
        let stored = context.get_raw(0).as_str().ok().and_then(|json| serde_json::from_str::<Value>(json).ok());
        Ok(test.matches(stored.as_ref()))
    })?;
    connection.create_scalar_function(CONTAINS_IGNORING_CASE, -1, flags, |context| {
        // The needle is the same for every row of a statement: folded once.
        let needle = context.get_or_create_aux(0, |needle| -> Result<String, rusqlite::types::FromSqlError> {
            Ok(search::fold(needle.as_str()?))
        })?;
        for index in 1..context.len() {
            if let Ok(text) = context.get_raw(index).as_str()
                && search::contains_ignoring_case(text, &needle)
            {
                return Ok(true);
            }
        }
        Ok(false)
    })?;
    // A failure's reason, as `failures` keeps it (see `overview::refresh_failure`).
    connection.create_scalar_function(super::overview::FAILURE_PATTERN, 1, flags, |context| {
        Ok(context.get_raw(0).as_str().map(crate::engine::failure_pattern).ok())
    })
}

/// The query of the server item list, with its arguments.
fn item_query(visibility: &Visibility, everything: bool, filter: &ItemFilter) -> (String, Vec<SqlValue>) {
    item_query_and(visibility, everything, filter, None)
}

/// The query of the server item list with one more condition.
fn item_query_and(
    visibility: &Visibility,
    everything: bool,
    filter: &ItemFilter,
    condition: Option<&str>,
) -> (String, Vec<SqlValue>) {
    let mut args = Vec::new();
    let mut conditions = item_conditions(visibility, everything, filter, &mut args);
    conditions.extend(condition.map(str::to_owned));
    let age = if filter.newest_first { "DESC" } else { "ASC" };
    let limit = if filter.limit == 0 { i64::MAX } else { filter.limit as i64 };
    args.push(SqlValue::Integer(limit));
    // Pending first, then oldest first: the items most likely stuck lead.
    // When only pending items are asked for, the first key is the same for
    // all of them and is left out, so that the (status, created_at) index
    // gives the order and the query stops at the limit instead of sorting
    // every pending item.
    let pending_first = if filter.include_closed && !filter.by_age_only { "status = 'Pending' DESC, " } else { "" };
    let sql = format!(
        "SELECT {ITEM_COLUMNS} FROM server_items {}
         ORDER BY {pending_first}created_at {age}, instance_id {age}, serial_id {age} LIMIT ?",
        where_clause(&conditions)
    );
    (sql, args)
}

/// The two walks of the items' due order (`ItemFilter::by_due`), each with
/// its arguments but for the last, its `LIMIT`, which the caller gives.
///
/// First the keys of the items with an armed timer, each met once, at its
/// soonest timer (ties by the timers' ids): a walk of the partial index of
/// armed timers (`timers_due`), where an item's other armed timers are
/// looked up in the index covering them (`timers_by_item`) and its
/// conditions checked on its row, found by its key. Then, unless only the
/// overdue are asked for, the items with nothing due, in the age order.
fn due_item_queries(visibility: &Visibility, everything: bool, filter: &ItemFilter) -> (Query, Option<Query>) {
    let plain = ItemFilter { overdue: false, by_due: false, ..filter.clone() };
    let mut args = Vec::new();
    let overdue = if filter.overdue {
        args.push(SqlValue::Integer(filter.now));
        " AND t.due_at <= ?"
    } else {
        ""
    };
    let mut conditions =
        vec!["server_items.instance_id = t.instance_id".to_owned(), "server_items.serial_id = t.serial_id".to_owned()];
    conditions.extend(item_conditions(visibility, everything, &plain, &mut args));
    let direction = if filter.newest_first { "DESC" } else { "ASC" };
    let with_due = format!(
        "SELECT t.instance_id, t.serial_id FROM timers t WHERE t.state = 'Armed'{overdue} \
         AND NOT EXISTS (SELECT 1 FROM timers e WHERE e.instance_id = t.instance_id AND e.serial_id = t.serial_id \
         AND e.state = 'Armed' AND (e.due_at, e.id) < (t.due_at, t.id)) \
         AND EXISTS (SELECT 1 FROM server_items WHERE {}) \
         ORDER BY t.due_at {direction}, t.id {direction} LIMIT ?",
        conditions.join(" AND ")
    );
    let without_due = (!filter.overdue).then(|| {
        let nothing_due = "NOT EXISTS (SELECT 1 FROM timers t WHERE t.instance_id = server_items.instance_id \
             AND t.serial_id = server_items.serial_id AND t.state = 'Armed')";
        let (sql, mut args) = item_query_and(visibility, everything, &plain, Some(nothing_due));
        // The caller gives the limit.
        args.pop();
        (sql, args)
    });
    ((with_due, args), without_due)
}

/// The `WHERE` conditions of the server item list.
fn item_conditions(
    visibility: &Visibility,
    everything: bool,
    filter: &ItemFilter,
    args: &mut Vec<SqlValue>,
) -> Vec<String> {
    let mut conditions: Vec<String> =
        visibility_clause(visibility, everything, "instance_id", args).into_iter().collect();
    if !filter.include_closed {
        // One instance's items are a handful found by the primary key; the
        // status index would walk every pending item of every instance.
        let status = if filter.instance_id.is_some() { "+status" } else { "status" };
        conditions.push(format!("{status} = 'Pending'"));
    }
    if let Some(process) = &filter.process {
        conditions.push("process = ?".to_owned());
        args.push(SqlValue::Text(process.clone()));
    }
    if let Some(id) = filter.instance_id {
        conditions.push("instance_id = ?".to_owned());
        args.push(SqlValue::Integer(id));
    }
    if let Some(search) = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // Every text the items view shows in a row, in one call per row.
        conditions.push(format!(
            "{CONTAINS_IGNORING_CASE}(?, instance_id || '_' || serial_id, folio, process, activity, event)"
        ));
        args.push(SqlValue::Text(search.to_owned()));
    }
    if filter.overdue {
        conditions.push(
            "EXISTS (SELECT 1 FROM timers t WHERE t.instance_id = server_items.instance_id \
             AND t.serial_id = server_items.serial_id AND t.state = 'Armed' AND t.due_at <= ?)"
                .to_owned(),
        );
        args.push(SqlValue::Integer(filter.now));
    }
    if let Some(after) = filter.after {
        // A row value, so that the (status, created_at) index, which also
        // holds the primary key, both finds the page's start and orders it.
        let beyond = if filter.newest_first { "<" } else { ">" };
        conditions.push(format!(
            "(created_at, instance_id, serial_id) {beyond} \
             ((SELECT created_at FROM server_items WHERE instance_id = ? AND serial_id = ?), ?, ?)"
        ));
        for _ in 0..2 {
            args.push(SqlValue::Integer(after.instance_id));
            args.push(SqlValue::Integer(after.destination_id));
        }
    }
    conditions
}

impl SqliteTransaction<'_> {
    /// Called before every write.
    fn writing(&mut self) -> Result<(), EngineError> {
        self.wrote = true;
        Ok(())
    }

    /// Inserts a new instance whose data and flow are already encoded
    /// (planned writes encode them outside the write lock).
    pub(super) fn insert_encoded(&mut self, row: &EncodedInstance) -> Result<(), EngineError> {
        self.writing()?;
        let deltas = self.deltas();
        deltas.count(&row.process, row.version, row.status, 1);
        deltas.started(&row.process, row.version, row.started_at);
        if row.status == InstanceStatus::Completed.name() {
            deltas.completed(&row.process, row.version, row.updated_at);
        }
        self.knows(row.id, row.version, row.status);
        execute_cached(
            self.tx,
            INSERT_INSTANCE,
            params![
                row.id,
                row.process,
                row.version,
                row.folio,
                row.originator,
                row.status,
                row.data,
                row.flow,
                row.started_at,
                row.updated_at,
                row.runner,
                row.lease_until,
            ],
        )?;
        if row.status == InstanceStatus::Error.name() {
            overview::refresh_failure(self.tx, row.id)?;
        }
        self.settle()
    }

    pub(super) fn update_encoded(&mut self, row: &EncodedInstance) -> Result<(), EngineError> {
        self.writing()?;
        let was = self.stored(row.id)?.map(|(_, status)| status);
        execute_cached(
            self.tx,
            UPDATE_INSTANCE,
            params![row.status, row.data, row.flow, row.updated_at, row.runner, row.lease_until, row.id],
        )?;
        // No row, nothing updated: nothing to count.
        let Some(was) = was else { return Ok(()) };
        if was != row.status {
            let deltas = self.deltas();
            deltas.count(&row.process, row.version, was, -1);
            deltas.count(&row.process, row.version, row.status, 1);
            if row.status == InstanceStatus::Completed.name() {
                deltas.completed(&row.process, row.version, row.updated_at);
            }
        }
        let error = InstanceStatus::Error.name();
        if was == error || row.status == error {
            overview::refresh_failure(self.tx, row.id)?;
        }
        self.knows(row.id, row.version, row.status);
        self.settle()
    }

    /// Writes the rows of a decision's effects, with its history record
    /// already encoded by [`encode_history`]. Each item statement names its
    /// row by key and does what the effect says: whether it may happen was
    /// decided by the engine, on the state it read in this transaction (or,
    /// for a planned write, checked by the instance's revision under the
    /// write lock).
    pub(super) fn write_effects_encoded(
        &mut self,
        instance_id: i64,
        effects: &[Effect],
        history: Option<&str>,
    ) -> Result<(), EngineError> {
        if history.is_none() && !effects.iter().any(Effect::is_row) {
            return Ok(());
        }
        self.writing()?;
        let tx = self.tx;
        for effect in effects {
            match effect {
                Effect::ItemCreated(item) => {
                    execute_cached(
                        tx,
                        INSERT_ITEM,
                        params![
                            item.serial.instance_id,
                            item.serial.destination_id,
                            item.activity_destination_id,
                            item.event_index,
                            item.process,
                            item.folio,
                            item.activity,
                            item.event,
                            item.status.name(),
                            item.created_at
                        ],
                    )?;
                    if item.status == ItemStatus::Pending
                        && let Some((version, _)) = self.stored(item.serial.instance_id)?
                    {
                        self.deltas().pending(&item.process, version, &item.activity, item.created_at, 1);
                    }
                }
                Effect::ItemFinished { serial_id, by, at, unapplied } => {
                    let json = unapplied
                        .as_ref()
                        .map(serde_json::to_string)
                        .transpose()
                        .map_err(|e| EngineError::Internal(e.to_string()))?;
                    self.closing(instance_id, *serial_id)?;
                    execute_cached(tx, FINISH_ITEM, params![at, by, json, instance_id, serial_id])?;
                    // A finish kept for later changes what the instance will
                    // do without its row being written now: bump its revision
                    // all the same.
                    if unapplied.is_some() {
                        execute_cached(tx, "UPDATE instances SET revision = revision + 1 WHERE id = ?", [instance_id])?;
                    }
                }
                Effect::ItemApplied { serial_id } => execute_cached(
                    tx,
                    "UPDATE server_items SET unapplied = NULL WHERE instance_id = ? AND serial_id = ?",
                    params![instance_id, serial_id],
                )?,
                Effect::ItemCancelled { serial_id, by, at } => {
                    self.closing(instance_id, *serial_id)?;
                    execute_cached(tx, CANCEL_ITEM, params![at, by, instance_id, serial_id])?
                }
                Effect::TookPart { user } => execute_cached(tx, INSERT_PARTICIPANT, params![instance_id, user])?,
                Effect::TimerArmed { serial_id, escalation, due_at } => {
                    let escalation = escalation.map(|index| index as i64);
                    execute_cached(tx, ARM_TIMER, params![instance_id, serial_id, escalation, due_at])?
                }
                Effect::TimerChanged { id, due_at, fired_count, state } => {
                    execute_cached(tx, CHANGE_TIMER, params![due_at, fired_count, state.name(), id])?
                }
                Effect::TimersDisarmed { serial_id } => {
                    execute_cached(tx, DISARM_TIMERS, params![instance_id, serial_id])?
                }
                Effect::StatusChanged { .. }
                | Effect::ActivityStarted { .. }
                | Effect::TokenMoved { .. }
                | Effect::ActivityClosed { .. }
                | Effect::LineEvaluated(_)
                | Effect::Audit(_)
                // The parent's flow state (its row) keeps the link; the
                // child's rows are written by its own save.
                | Effect::ChildStarted(_) => {}
            }
        }
        if let Some(json) = history {
            execute_cached(tx, INSERT_HISTORY, params![instance_id, json])?;
        }
        self.settle()
    }

    /// Before a statement closes item `serial_id`: a pending one leaves
    /// `pending_hours`.
    fn closing(&mut self, instance_id: i64, serial_id: i64) -> Result<(), EngineError> {
        if let Some((process, version, activity, created_at)) = overview::pending_item(self.tx, instance_id, serial_id)?
        {
            self.deltas().pending(&process, version, &activity, created_at, -1);
        }
        Ok(())
    }

    /// An instance's history records, oldest first.
    fn history(&mut self, instance_id: i64) -> Result<Vec<OwnedHistoryRecord>, EngineError> {
        let rows: Vec<String> = collect_rows(
            self.tx,
            "SELECT changes FROM history WHERE instance_id = ? ORDER BY id",
            [instance_id],
            |row| row.get(0),
        )?;
        rows.iter()
            .map(|json| {
                serde_json::from_str::<StoredHistoryRecord>(json)
                    .map(OwnedHistoryRecord::from)
                    .map_err(|e| corrupt("instance history", e))
            })
            .collect()
    }

    /// Whether `visibility` covers every process there is (so every instance,
    /// since an instance's process must exist).
    /// For each field condition of `filter`, whether an index of a
    /// searchable field serves it (`store::fields`).
    fn indexed_fields(&self, filter: &InstanceFilter) -> Result<Vec<bool>, EngineError> {
        fields::indexed(self.tx, filter.process.as_deref(), &filter.fields).map_err(db(self.tx))
    }

    /// [`Self::indexed_fields`] for a page: a condition that many
    /// instances pass (`fields::dense`) leaves the page to the order's
    /// index, unless it is an equality in the id order, which the field's
    /// index gives in that order (its entries are sorted by id within a
    /// value).
    fn page_indexed_fields(&self, filter: &InstanceFilter) -> Result<Vec<bool>, EngineError> {
        let mut indexed = self.indexed_fields(filter)?;
        let Some(process) = filter.process.as_deref() else { return Ok(indexed) };
        for (condition, indexed) in filter.fields.iter().zip(indexed.iter_mut()) {
            let in_order = filter.order.column == InstanceColumn::Id
                && condition.test.as_ref().is_some_and(|t| t.op == crate::engine::Comparison::Equal);
            if *indexed && !in_order && fields::dense(self.tx, process, condition).map_err(db(self.tx))? {
                *indexed = false;
            }
        }
        Ok(indexed)
    }

    /// The ids of a page of the instance list in the Due order: from the
    /// walk of the instances with something due, and where that walk ends
    /// within or before the page, from the walk of those with nothing due
    /// (`due_page_queries`).
    fn due_page(
        &self,
        visibility: &Visibility,
        everything: bool,
        filter: &InstanceFilter,
    ) -> Result<Vec<i64>, EngineError> {
        let indexed = self.page_indexed_fields(filter)?;
        let ((with_due, args), without_due) = due_page_queries(visibility, everything, filter, &indexed);
        let limit = if filter.limit == 0 { i64::MAX } else { filter.limit as i64 };
        let offset = filter.offset as i64;
        let page = |sql: &str, mut args: Vec<SqlValue>, limit: i64, offset: i64| {
            args.extend([SqlValue::Integer(limit), SqlValue::Integer(offset)]);
            collect_rows(self.tx, &format!("{sql} LIMIT ? OFFSET ?"), params_from_iter(args), |row| row.get(0))
        };
        let mut ids: Vec<i64> = page(&with_due, args.clone(), limit, offset)?;
        let Some((sql, rest_args)) = without_due else { return Ok(ids) };
        let wanted = limit.saturating_sub(ids.len() as i64);
        if wanted == 0 {
            return Ok(ids);
        }
        // The page begins among those with nothing due: how far in takes
        // counting those with something due (the walk to its end).
        let skipped = if ids.is_empty() && offset > 0 {
            let count = format!("SELECT COUNT(*) FROM ({with_due})");
            let with_due: i64 = self
                .tx
                .prepare_cached(&count)
                .and_then(|mut s| s.query_row(params_from_iter(args), |row| row.get(0)))
                .map_err(db(self.tx))?;
            offset.saturating_sub(with_due)
        } else {
            0
        };
        ids.extend(page(&sql, rest_args, wanted, skipped)?);
        Ok(ids)
    }

    fn sees_everything(&self, visibility: &Visibility) -> Result<bool, EngineError> {
        let mut statement = self.tx.prepare_cached("SELECT name FROM processes").map_err(db(self.tx))?;
        let names = statement.query_map([], |row| row.get::<_, String>(0)).map_err(db(self.tx))?;
        for name in names {
            if !visibility.all_of.contains(&name.map_err(db(self.tx))?) {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

impl Transaction for SqliteTransaction<'_> {
    fn latest_version(&mut self, process: &str) -> Result<Option<u32>, EngineError> {
        self.tx
            .prepare_cached("SELECT MAX(version) FROM versions WHERE process = ?")
            .and_then(|mut s| s.query_row([process], |row| row.get(0)))
            .map_err(db(self.tx))
    }

    fn default_version(&mut self, process: &str) -> Result<Option<u32>, EngineError> {
        self.tx
            .prepare_cached("SELECT default_version FROM processes WHERE name = ?")
            .and_then(|mut s| s.query_row([process], |row| row.get(0)).optional())
            .map_err(db(self.tx))
    }

    fn version(&mut self, process: &str, version: u32) -> Result<Option<VersionRecord>, EngineError> {
        self.tx
            .prepare_cached(
                "SELECT definition, deployed_at, deployed_by FROM versions WHERE process = ? AND version = ?",
            )
            .and_then(|mut s| {
                s.query_row(params![process, version], |row| {
                    Ok(VersionRecord {
                        process: process.to_owned(),
                        version,
                        definition_json: row.get(0)?,
                        deployed_at: row.get(1)?,
                        deployed_by: row.get(2)?,
                    })
                })
                .optional()
            })
            .map_err(db(self.tx))
    }

    fn insert_version(&mut self, record: &VersionRecord) -> Result<(), EngineError> {
        self.writing()?;
        self.tx
            .execute(
                "INSERT INTO processes (name, default_version) VALUES (?1, ?2)
                 ON CONFLICT (name) DO UPDATE SET default_version = excluded.default_version",
                params![record.process, record.version],
            )
            .map_err(db(self.tx))?;
        self.tx
            .execute(
                "INSERT INTO versions (process, version, definition, deployed_at, deployed_by) VALUES (?, ?, ?, ?, ?)",
                params![record.process, record.version, record.definition_json, record.deployed_at, record.deployed_by],
            )
            .map_err(db(self.tx))?;
        Ok(())
    }

    fn ensure_field_index(
        &mut self,
        process: &str,
        field: &str,
        field_type: crate::model::FieldType,
    ) -> Result<bool, EngineError> {
        self.writing()?;
        super::fields::ensure(self.tx, process, field, field_type).map_err(|error| match error {
            super::fields::FieldIndexError::Sqlite(error) => db(self.tx)(error),
            unsearchable => EngineError::Internal(unsearchable.to_string()),
        })
    }

    fn processes(&mut self) -> Result<Vec<ProcessSummary>, EngineError> {
        collect_rows(
            self.tx,
            "SELECT p.name, p.default_version, (SELECT COUNT(*) FROM versions v WHERE v.process = p.name)
             FROM processes p ORDER BY p.name",
            [],
            |row| Ok(ProcessSummary { name: row.get(0)?, default_version: row.get(1)?, versions: row.get(2)? }),
        )
    }

    fn rights(&mut self, process: &str, user: &str) -> Result<Vec<Right>, EngineError> {
        let names: Vec<String> = collect_rows(
            self.tx,
            "SELECT right FROM rights WHERE process = ? AND user = ? ORDER BY right",
            [process, user],
            |row| row.get(0),
        )?;
        names.iter().map(|n| right_from(n)).collect()
    }

    fn rights_of_user(&mut self, user: &str) -> Result<Vec<(String, Right)>, EngineError> {
        let rows: Vec<(String, String)> = collect_rows(
            self.tx,
            "SELECT process, right FROM rights WHERE user = ? ORDER BY process, right",
            [user],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        rows.into_iter().map(|(p, r)| Ok((p, right_from(&r)?))).collect()
    }

    fn rights_on_process(&mut self, process: &str) -> Result<Vec<(String, Right)>, EngineError> {
        let rows: Vec<(String, String)> = collect_rows(
            self.tx,
            "SELECT user, right FROM rights WHERE process = ? ORDER BY user, right",
            [process],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        rows.into_iter().map(|(u, r)| Ok((u, right_from(&r)?))).collect()
    }

    fn grant(&mut self, process: &str, user: &str, right: Right) -> Result<(), EngineError> {
        self.writing()?;
        self.tx
            .execute(
                "INSERT OR IGNORE INTO rights (process, user, right) VALUES (?, ?, ?)",
                params![process, user, right.key()],
            )
            .map_err(db(self.tx))?;
        Ok(())
    }

    fn revoke(&mut self, process: &str, user: &str, right: Right) -> Result<(), EngineError> {
        self.writing()?;
        self.tx
            .execute(
                "DELETE FROM rights WHERE process = ? AND user = ? AND right = ?",
                params![process, user, right.key()],
            )
            .map_err(db(self.tx))?;
        Ok(())
    }

    fn next_instance_id(&mut self) -> Result<i64, EngineError> {
        // AUTOINCREMENT's counter, so an id is never handed out twice even
        // after deletes; MAX(id) covers rows inserted around the counter.
        let stored: i64 = self
            .tx
            .prepare_cached(
                "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'instances'), 0),
                            COALESCE((SELECT MAX(id) FROM instances), 0)) + 1",
            )
            .and_then(|mut s| s.query_row([], |row| row.get(0)))
            .map_err(db(self.tx))?;
        Ok(match self.ids {
            Some(ids) => reserve_id(ids, stored),
            None => stored,
        })
    }

    fn insert_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        self.insert_encoded(&EncodedInstance::of(instance)?)
    }

    fn instance(&mut self, id: i64) -> Result<Option<Instance>, EngineError> {
        let row = self
            .tx
            .prepare_cached(SELECT_INSTANCE)
            .and_then(|mut s| s.query_row([id], instance_from_row).optional())
            .map_err(db(self.tx))?;
        let Some((mut instance, status, data, flow)) = row else {
            return Ok(None);
        };
        instance.status = status_from(&status)?;
        self.knows(id, instance.version, instance.status.name());
        instance.data = serde_json::from_str(&data).map_err(|e| corrupt("instance data", e))?;
        instance.flow = serde_json::from_str(&flow).map_err(|e| corrupt("instance flow", e))?;
        Ok(Some(instance))
    }

    fn instance_revision(&mut self, id: i64) -> Result<Option<i64>, EngineError> {
        self.tx
            .prepare_cached("SELECT revision FROM instances WHERE id = ?")
            .and_then(|mut s| s.query_row([id], |row| row.get(0)).optional())
            .map_err(db(self.tx))
    }

    fn update_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        self.update_encoded(&EncodedInstance::of(instance)?)
    }

    fn write_effects(&mut self, instance_id: i64, effects: Vec<Effect>) -> Result<(), EngineError> {
        self.write_effects_encoded(instance_id, &effects, encode_history(&effects)?.as_deref())
    }

    fn item_state(&mut self, instance_id: i64) -> Result<ItemState, EngineError> {
        let rows: Vec<(i64, i64, Option<String>, Option<String>)> =
            collect_rows(self.tx, SELECT_OPEN_ITEMS, [instance_id], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
            })?;
        let mut state = ItemState::default();
        for (serial_id, destination_id, unapplied, closed_by) in rows {
            state.open.insert(serial_id, destination_id);
            if let Some(json) = unapplied {
                let data: BTreeMap<String, Value> = serde_json::from_str(&json).map_err(|e| corrupt("item data", e))?;
                state.recorded.insert(serial_id, RecordedFinish { data, by: closed_by.unwrap_or_default() });
            }
        }
        Ok(state)
    }

    fn server_item(&mut self, serial: Serial) -> Result<Option<ServerItem>, EngineError> {
        let row = self
            .tx
            .prepare_cached(SELECT_ITEM)
            .and_then(|mut s| s.query_row([serial.instance_id, serial.destination_id], item_from_row).optional())
            .map_err(db(self.tx))?;
        row.map(finish_item).transpose()
    }

    fn running_instances(&mut self) -> Result<Vec<RunningInstance>, EngineError> {
        collect_rows(
            self.tx,
            "SELECT i.id, i.runner, i.lease_until, r.expires_at FROM instances i \
             LEFT JOIN runners r ON r.id = i.runner WHERE i.status = 'Running' ORDER BY i.id",
            [],
            |row| {
                Ok(RunningInstance {
                    id: row.get(0)?,
                    runner: row.get(1)?,
                    lease_until: row.get(2)?,
                    runner_expires_at: row.get(3)?,
                })
            },
        )
    }

    fn due_timers(&mut self, query: &DueTimers) -> Result<Vec<Timer>, EngineError> {
        let (sql, args) = due_query(query);
        let rows = collect_rows(self.tx, &sql, params_from_iter(args), timer_from_row)?;
        rows.into_iter().map(finish_timer).collect()
    }

    fn timers_of(&mut self, instance_id: i64) -> Result<Vec<Timer>, EngineError> {
        let rows = collect_rows(self.tx, SELECT_TIMERS_OF, [instance_id], timer_from_row)?;
        rows.into_iter().map(finish_timer).collect()
    }

    fn instances(
        &mut self,
        visibility: &Visibility,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceSummary>, EngineError> {
        filter.check_fields_read()?;
        let everything = self.sees_everything(visibility)?;
        let rows = if filter.order.column == InstanceColumn::Due {
            let mut rows = Vec::new();
            for id in self.due_page(visibility, everything, filter)? {
                rows.extend(collect_rows(self.tx, SELECT_SUMMARY, [id], summary_from_row)?);
            }
            rows
        } else {
            let indexed = self.page_indexed_fields(filter)?;
            let (sql, args) = page_query(visibility, everything, filter, &indexed);
            collect_rows(self.tx, &sql, params_from_iter(args), summary_from_row)?
        };
        rows.into_iter()
            .map(|(mut summary, status)| {
                summary.status = status_from(&status)?;
                Ok(summary)
            })
            .collect()
    }

    fn count_instances(&mut self, visibility: &Visibility, filter: &InstanceFilter) -> Result<u64, EngineError> {
        filter.check_fields_read()?;
        let everything = self.sees_everything(visibility)?;
        let indexed = self.indexed_fields(filter)?;
        let (sql, args) = count_query(visibility, everything, filter, &indexed);
        self.tx
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(params_from_iter(args), |row| row.get(0)))
            .map_err(db(self.tx))
    }

    fn count_items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> Result<u64, EngineError> {
        let everything = self.sees_everything(visibility)?;
        let mut args = Vec::new();
        let plain = ItemFilter { after: None, ..filter.clone() };
        let conditions = item_conditions(visibility, everything, &plain, &mut args);
        let sql = format!("SELECT COUNT(*) FROM server_items {}", where_clause(&conditions));
        self.tx
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(params_from_iter(args), |row| row.get(0)))
            .map_err(db(self.tx))
    }

    fn items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> Result<Vec<ServerItem>, EngineError> {
        if let Some(after) = filter.after {
            let cursor = self
                .tx
                .prepare_cached("SELECT 1 FROM server_items WHERE instance_id = ? AND serial_id = ?")
                .and_then(|mut s| s.exists(params![after.instance_id, after.destination_id]))
                .map_err(db(self.tx))?;
            if !cursor {
                return Err(EngineError::ItemNotFound { serial: after.to_string() });
            }
        }
        let everything = self.sees_everything(visibility)?;
        let rows = if filter.by_due {
            let ((with_due, mut args), without_due) = due_item_queries(visibility, everything, filter);
            let limit = if filter.limit == 0 { i64::MAX } else { filter.limit as i64 };
            args.push(SqlValue::Integer(limit));
            let keys: Vec<(i64, i64)> =
                collect_rows(self.tx, &with_due, params_from_iter(args), |row| Ok((row.get(0)?, row.get(1)?)))?;
            let mut rows = Vec::new();
            for key in &keys {
                rows.extend(collect_rows(self.tx, SELECT_ITEM, [key.0, key.1], item_from_row)?);
            }
            let wanted = limit.saturating_sub(keys.len() as i64);
            if let Some((sql, mut args)) = without_due.filter(|_| wanted > 0) {
                args.push(SqlValue::Integer(wanted));
                rows.extend(collect_rows(self.tx, &sql, params_from_iter(args), item_from_row)?);
            }
            rows
        } else {
            let (sql, args) = item_query(visibility, everything, filter);
            collect_rows(self.tx, &sql, params_from_iter(args), item_from_row)?
        };
        rows.into_iter().map(finish_item).collect()
    }

    fn pending_items_of(&mut self, instance_id: i64) -> Result<Vec<ServerItem>, EngineError> {
        let rows = collect_rows(self.tx, SELECT_PENDING_ITEMS_OF, [instance_id], item_from_row)?;
        rows.into_iter().map(finish_item).collect()
    }

    fn audit(&mut self, instance_id: i64) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(self.history(instance_id)?.into_iter().flat_map(|record| record.audit).collect())
    }

    fn activity_records(&mut self, instance_id: i64) -> Result<Vec<ActivityRecord>, EngineError> {
        let mut records: BTreeMap<i64, ActivityRecord> = BTreeMap::new();
        for record in self.history(instance_id)? {
            for started in record.started {
                records.insert(started.destination_id, started);
            }
            for (destination_id, status, at) in record.closed {
                if let Some(closed) = records.get_mut(&destination_id) {
                    closed.status = status;
                    closed.finished_at = Some(at);
                }
            }
        }
        Ok(records.into_values().collect())
    }

    fn line_results(&mut self, instance_id: i64) -> Result<Vec<LineResult>, EngineError> {
        Ok(self.history(instance_id)?.into_iter().flat_map(|record| record.lines).collect())
    }

    fn status_counts(&mut self) -> Result<Vec<StatusCount>, EngineError> {
        super::overview::status_counts(self.tx)
    }

    fn pending_groups(&mut self, since_hour: i64) -> Result<Vec<PendingGroup>, EngineError> {
        super::overview::pending_groups(self.tx, since_hour)
    }

    fn pending_since(&mut self, since: Millis) -> Result<Vec<(String, u32, u64)>, EngineError> {
        super::overview::pending_since(self.tx, since)
    }

    fn instance_minutes(&mut self, since_minute: i64) -> Result<Vec<MinuteCount>, EngineError> {
        super::overview::instance_minutes(self.tx, since_minute)
    }

    fn failure_groups(&mut self) -> Result<Vec<Incident>, EngineError> {
        super::overview::failure_groups(self.tx)
    }

    fn failure_ids(&mut self, key: &ReasonKey) -> Result<Vec<i64>, EngineError> {
        super::overview::failure_ids(self.tx, key)
    }

    fn pending_oldest(
        &mut self,
        process: &str,
        version: u32,
        activity: Option<&str>,
        from: Millis,
    ) -> Result<Option<ServerItem>, EngineError> {
        super::overview::pending_oldest(self.tx, process, version, activity, from)
    }

    fn aggregate_mismatches(&mut self) -> Result<Vec<String>, EngineError> {
        super::overview::mismatches(self.tx)
    }

    fn is_participant(&mut self, instance_id: i64, user: &str) -> Result<bool, EngineError> {
        self.tx
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM participants WHERE instance_id = ?1 AND user = ?2) \
                 OR EXISTS (SELECT 1 FROM instances WHERE id = ?1 AND originator = ?2)",
            )
            .and_then(|mut s| s.query_row(params![instance_id, user], |row| row.get(0)))
            .map_err(db(self.tx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{InstanceOrder, InstanceStatus};
    use crate::store::{Durability, SqliteStore};

    /// `(parent, detail)` of each step of a query's plan.
    fn plan(connection: &rusqlite::Connection, sql: &str, args: &[SqlValue]) -> Vec<(i64, String)> {
        let mut statement = connection.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        statement
            .query_map(params_from_iter(args), |row| Ok((row.get(1)?, row.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn visibilities() -> Vec<(&'static str, Visibility, bool)> {
        let user = "ada".to_owned();
        vec![
            (
                "sees everything",
                Visibility { all_of: vec!["a".into()], user: user.clone(), ..Default::default() },
                true,
            ),
            (
                "sees some processes",
                Visibility { all_of: vec!["a".into(), "b".into()], user: user.clone(), ..Default::default() },
                false,
            ),
            (
                "sees where it took part",
                Visibility { all_of: vec!["a".into()], participated_of: vec!["c".into()], user },
                false,
            ),
        ]
    }

    /// The finding filters (version, time ranges, a data field's value)
    /// are checked on each row as the order's index is walked, so a page
    /// of them stops walking once full: no plan sorts the table for them.
    #[test]
    fn finding_filters_are_checked_on_the_walk_and_never_sort_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plans.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        let test = FieldTest {
            op: crate::engine::Comparison::Greater,
            value: crate::engine::find::Operand(Value::Integer(1)),
        };
        let field = crate::engine::FieldCondition {
            test: Some(test),
            ..crate::engine::FieldCondition::new("amount", crate::engine::Comparison::Greater, "1")
        };
        let range = TimeRange { after: Some(1), before: Some(2) };
        let finding = [
            InstanceFilter { version: Some(2), ..InstanceFilter::default() },
            InstanceFilter { started: range, ..InstanceFilter::default() },
            InstanceFilter { ended: range, ..InstanceFilter::default() },
            InstanceFilter { fields: vec![field], ..InstanceFilter::default() },
        ];
        for (name, visibility, everything) in visibilities() {
            for column in InstanceColumn::ALL.into_iter().filter(|c| *c != InstanceColumn::Due) {
                for descending in [false, true] {
                    for filter in &finding {
                        let filter = InstanceFilter {
                            process: Some("a".to_owned()),
                            order: InstanceOrder { column, descending },
                            limit: 200,
                            ..filter.clone()
                        };
                        let (sql, args) = page_query(&visibility, everything, &filter, &[]);
                        let steps = plan(&connection, &sql, &args);
                        for (parent, detail) in &steps {
                            if detail.starts_with("USE TEMP B-TREE") {
                                assert_eq!(*parent, 0, "{name}, {filter:?}:\n{steps:#?}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// A condition on a searchable field (`store::fields`) is found through
    /// its index, in a count and in a page, for every operator the index
    /// serves; the others read the rows as before. The process's name is
    /// SQL-looking on purpose: it is a literal in the index and the query.
    #[test]
    fn a_searchable_fields_index_serves_its_counts_and_pages() {
        use crate::engine::Comparison;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plans.db");
        let store = SqliteStore::open(&path, Durability::Normal).unwrap();
        let process = "a'); DROP TABLE instances; --";
        let writer = rusqlite::Connection::open(&path).unwrap();
        assert!(fields::ensure(&writer, process, "amount", crate::model::FieldType::Integer).unwrap());
        assert!(!fields::ensure(&writer, process, "amount", crate::model::FieldType::Integer).unwrap(), "once");
        drop(writer);
        let connection = store.readers.take();
        let condition = |op: Comparison| crate::engine::FieldCondition {
            test: Some(FieldTest { op, value: crate::engine::find::Operand(Value::Integer(5)) }),
            ..crate::engine::FieldCondition::new("amount", op, "5")
        };
        for op in Comparison::ALL.into_iter().filter(|op| *op != Comparison::Contains) {
            for status in [None, Some(InstanceStatus::Error)] {
                let filter = InstanceFilter {
                    process: Some(process.to_owned()),
                    status,
                    fields: vec![condition(op)],
                    limit: 50,
                    ..InstanceFilter::default()
                };
                let indexed = fields::indexed(&connection, filter.process.as_deref(), &filter.fields).unwrap();
                assert_eq!(indexed, [op.index_serves()], "{op}");
                let (page, page_args) = page_query(&Visibility::default(), true, &filter, &indexed);
                let (count, count_args) = count_query(&Visibility::default(), true, &filter, &indexed);
                for (what, steps) in
                    [("page", plan(&connection, &page, &page_args)), ("count", plan(&connection, &count, &count_args))]
                {
                    let uses = steps.iter().any(|(_, detail)| detail.contains("instances_by_field_1"));
                    assert_eq!(uses, op.index_serves(), "{what}, {op}, {status:?}:\n{steps:#?}");
                }
                // Whether a page's condition is dense is told from the index alone.
                if let Some((probe, value)) = fields::dense_query(process, &filter.fields[0]) {
                    let steps = plan(&connection, &probe, &[value]);
                    let probed = steps.iter().any(|(_, d)| d.contains("INDEX instances_by_field_1"));
                    assert!(probed, "{op}:\n{steps:#?}");
                }
            }
        }
        let other = InstanceFilter {
            process: Some("b".to_owned()),
            fields: vec![condition(Comparison::Equal)],
            ..InstanceFilter::default()
        };
        assert_eq!(fields::indexed(&connection, Some("b"), &other.fields).unwrap(), [false], "another process's field");
    }

    /// A million instances are only fast to page, count and filter if no
    /// query reads or sorts the whole table: every page walks one index in the
    /// wanted order (at most the page itself is sorted again), and every count
    /// reads an index only. Plans do not depend on the table's size here (no
    /// statistics), so an empty database shows them.
    #[test]
    fn instance_queries_walk_an_index_in_order_and_never_sort_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plans.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        let filters = [
            (None, None),
            (Some("a"), None),
            (None, Some(InstanceStatus::Error)),
            (Some("a"), Some(InstanceStatus::Error)),
        ];
        for (name, visibility, everything) in visibilities() {
            // The Due order pages by walks of its own (tested below).
            for column in InstanceColumn::ALL.into_iter().filter(|c| *c != InstanceColumn::Due) {
                for descending in [false, true] {
                    for (process, status) in filters {
                        for search in [None, Some("PO-12"), Some("42")] {
                            let filter = InstanceFilter {
                                process: process.map(str::to_owned),
                                status,
                                search: search.map(str::to_owned),
                                order: InstanceOrder { column, descending },
                                limit: 200,
                                offset: 500_000,
                                ..InstanceFilter::default()
                            };
                            let (sql, args) = page_query(&visibility, everything, &filter, &[]);
                            let steps = plan(&connection, &sql, &args);
                            let shown = format!("{name}, {filter:?}:\n{steps:#?}");
                            for (parent, detail) in &steps {
                                if detail.contains(" instances")
                                    && (detail.starts_with("SCAN") || detail.starts_with("SEARCH"))
                                {
                                    assert!(
                                        detail.contains("COVERING INDEX") || detail.contains("PRIMARY KEY"),
                                        "{shown}"
                                    );
                                }
                                if detail.contains("participants") {
                                    assert!(detail.starts_with("SEARCH"), "{shown}");
                                }
                                // Only the page itself, or the ids a folio search found, are sorted.
                                if detail.starts_with("USE TEMP B-TREE") && search.is_none() {
                                    assert_eq!(*parent, 0, "{shown}");
                                }
                            }
                            let (sql, args) = count_query(&visibility, everything, &filter, &[]);
                            let steps = plan(&connection, &sql, &args);
                            let shown = format!("count, {name}, {filter:?}:\n{steps:#?}");
                            for (_, detail) in &steps {
                                if detail.contains(" instances") {
                                    assert!(detail.contains("COVERING INDEX"), "{shown}");
                                }
                                assert!(!detail.starts_with("USE TEMP B-TREE"), "{shown}");
                            }
                        }
                    }
                }
            }
        }
    }

    /// The pending items (the items view's default) come in the order of
    /// their index, oldest or newest first, and the query stops at its limit,
    /// with a search too; a page after a cursor starts at its place in the index.
    #[test]
    fn pending_items_are_read_in_index_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plans.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        for (name, visibility, everything) in visibilities() {
            let searches = [(false, None), (true, None), (false, Some("po-a")), (true, Some("ÜBER"))];
            let pages = [None, Some(Serial { instance_id: 7, destination_id: 2 })];
            for ((newest_first, search), after) in searches.into_iter().flat_map(|s| pages.map(|a| (s, a))) {
                let search = search.map(str::to_owned);
                let filter = ItemFilter { newest_first, search, after, limit: 1000, ..ItemFilter::default() };
                let (sql, args) = item_query(&visibility, everything, &filter);
                let steps = plan(&connection, &sql, &args);
                let shown = format!("{name}, {filter:?}:\n{steps:#?}");
                let walk = match after {
                    None => "server_items_by_status (status=?)",
                    Some(_) if newest_first => {
                        "server_items_by_status (status=? AND (created_at,instance_id,serial_id)<(?,?,?))"
                    }
                    Some(_) => "server_items_by_status (status=? AND (created_at,instance_id,serial_id)>(?,?,?))",
                };
                assert!(steps.iter().any(|(_, d)| d.contains(walk)), "{shown}");
                assert!(steps.iter().all(|(_, d)| !d.starts_with("USE TEMP B-TREE")), "{shown}");
            }
        }
    }

    /// Issue 14: the items view's Find was case-sensitive. The function it
    /// uses ignores case beyond ASCII too, skips what is not text, and is
    /// defined on every connection the store opens.
    #[test]
    fn the_items_search_function_ignores_case_in_all_of_unicode() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("search.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        let sql = format!("SELECT {CONTAINS_IGNORING_CASE}(?1, ?2, NULL, 7, ?3)");
        for (needle, first, second, found) in [
            ("po-a", "PO-A", "", true),
            ("APPROVAL", "x", "purchase-approval", true),
            ("überweisung", "ÜBERWEISUNG-9", "", true),
            ("ÜBER", "", "Überweisung", true),
            ("ΣΟΦΊΑ", "σοφία", "", true),
            ("3_2", "13_2", "", true),
            ("ask finance ", "Ask finance", "", false),
            ("über", "uber", "UBER", false),
            ("7", "", "", false),
        ] {
            let answer: bool = connection.query_row(&sql, params![needle, first, second], |row| row.get(0)).unwrap();
            assert_eq!(answer, found, "`{needle}` in `{first}` or `{second}`");
        }
    }

    /// Lower-casing is not ignoring case: it turns the last `Σ` of a typed
    /// word into a final `ς`, so the start of an upper-case Greek word did
    /// not find it, and `ß` never met `SS`. Unicode's case folding (what its
    /// caseless matching uses) maps both sigmas to `σ` and `ß` to `ss`.
    #[test]
    fn the_items_search_folds_case_as_unicode_caseless_matching_does() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("search.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        let sql = format!("SELECT {CONTAINS_IGNORING_CASE}(?1, ?2)");
        for (needle, text, found) in [
            ("ΟΔΥΣ", "Οδυσσέας Ελύτης", true),
            ("οδυσ", "ΟΔΥΣΣΕΑΣ", true),
            ("ΑΘΗΝΑΣ", "Αθήνας", false),
            ("ΠΑΡΙΣ", "Παρις-7", true),
            ("STRASSE", "Hauptstraße 5", true),
            ("hauptstraße", "HAUPTSTRASSE 5", true),
            ("ẞ", "Straße", true),
            ("İstanbul", "İSTANBUL", true),
        ] {
            let answer: bool = connection.query_row(&sql, params![needle, text], |row| row.get(0)).unwrap();
            assert_eq!(answer, found, "`{needle}` in `{text}`");
        }
    }

    /// History rows are written as arrays, and rows in the named form of
    /// schemas 4 and 5 are still read, in order with the new ones.
    #[test]
    fn history_rows_of_both_forms_are_read_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("history.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        let old = r#"{"audit":[{"at":1,"user":"ann","action":"Instance started","detail":"p version 1"}],
            "started":[{"destination_id":1,"activity_id":"a","activity":"A","status":"Active","started_at":1,"finished_at":null}],
            "lines":[{"line_index":0,"from_destination_id":1,"fired":true,"at":1}]}"#;
        let effects = [
            Effect::Audit(AuditEntry {
                at: 2,
                user: "bob".into(),
                action: crate::engine::AuditAction::ItemFinished,
                detail: "9_1".into(),
                place: None,
            }),
            // With its place, two elements more.
            Effect::Audit(AuditEntry {
                at: 2,
                user: "bob".into(),
                action: crate::engine::AuditAction::CallbackApplied,
                detail: "9_1 finished by bob".into(),
                place: Some(AuditPlace { activity: "Call".into(), event: "Ask".into() }),
            }),
            Effect::ActivityStarted {
                activity: 1,
                record: ActivityRecord {
                    destination_id: 2,
                    activity_id: "b".into(),
                    activity: "B \"quoted\"".into(),
                    status: ActivityStatus::Active,
                    started_at: 2,
                    finished_at: None,
                },
            },
            Effect::ActivityClosed { destination_id: 1, status: ActivityStatus::Completed, at: 2 },
            Effect::LineEvaluated(LineResult { line_index: 1, from_destination_id: 2, fired: false, at: 2 }),
        ];
        let new = encode_history(&effects).unwrap().unwrap();
        assert!(
            new.starts_with(
                r#"{"a":[[2,"bob","Server item finished","9_1"],[2,"bob","Callback applied","9_1 finished by bob","Call","Ask"]],"s":[[2,"b","#
            ),
            "{new}"
        );
        // No instance 9: only its history rows matter here.
        connection.pragma_update(None, "foreign_keys", false).unwrap();
        for json in [old, new.as_str()] {
            connection.execute("INSERT INTO history (instance_id, changes) VALUES (9, ?)", [json]).unwrap();
        }
        let mut tx = SqliteTransaction::new(&connection);
        let audit = tx.audit(9).unwrap();
        assert_eq!(
            audit.iter().map(|e| (e.at, e.user.as_str())).collect::<Vec<_>>(),
            [(1, "ann"), (2, "bob"), (2, "bob")]
        );
        let places: Vec<Option<String>> = audit.iter().map(|e| e.place.as_ref().map(AuditPlace::words)).collect();
        assert_eq!(places, [None, None, Some("Call / Ask".to_owned())], "entries without a place read as before");
        let activities = tx.activity_records(9).unwrap();
        assert_eq!(
            activities.iter().map(|r| (r.destination_id, r.status, r.finished_at)).collect::<Vec<_>>(),
            [(1, ActivityStatus::Completed, Some(2)), (2, ActivityStatus::Active, None)]
        );
        assert_eq!(activities[1].activity, "B \"quoted\"");
        let lines = tx.line_results(9).unwrap();
        assert_eq!(lines.iter().map(|l| (l.line_index, l.fired)).collect::<Vec<_>>(), [(0, true), (1, false)]);
    }

    /// The ticker's walk through what is due reads the partial index of
    /// armed timers in due order, from the last one seen, and stops at its
    /// limit (no sort); a held instance's status is read by its key. An
    /// item's and an instance's next due time come from the index that
    /// covers an item's timers.
    #[test]
    fn due_timers_walk_the_index_of_armed_timers_and_due_times_are_covered_lookups() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plans.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        for after in [None, Some((5, 7))] {
            let query =
                DueTimers { by: 1_000, after, held: vec![InstanceStatus::Error, InstanceStatus::Stopped], limit: 100 };
            let (sql, args) = due_query(&query);
            let steps = plan(&connection, &sql, &args);
            let shown = format!("{query:?}:\n{steps:#?}");
            assert!(steps.iter().any(|(_, d)| d.starts_with("SEARCH t USING INDEX timers_due")), "{shown}");
            assert!(steps.iter().any(|(_, d)| d.contains("SEARCH i USING INTEGER PRIMARY KEY")), "{shown}");
            assert!(steps.iter().all(|(_, d)| !d.starts_with("USE TEMP B-TREE")), "{shown}");
        }
        let item = (SELECT_ITEM.to_owned(), [7, 2].map(SqlValue::Integer).to_vec());
        let (_, visibility, everything) = visibilities().remove(0);
        let page = page_query(&visibility, everything, &InstanceFilter { limit: 50, ..InstanceFilter::default() }, &[]);
        for (sql, args) in [item, page] {
            let steps = plan(&connection, &sql, &args);
            let shown = format!("{sql}:\n{steps:#?}");
            assert!(steps.iter().any(|(_, d)| d.contains("USING COVERING INDEX timers_by_item")), "{shown}");
        }
    }

    /// The Due orders and the overdue filters read the partial index of
    /// armed timers in order (each instance or item met once, at its
    /// soonest timer, from the index covering its timers) and stop at the
    /// page: no sort of the table, of the timers or of the instances; the
    /// instances with nothing due come from the id index, the items with
    /// nothing due from the status index. An overdue filter in another
    /// order starts from the armed timers due by now, and sorts the page's
    /// rows among the overdue only.
    #[test]
    fn due_orders_and_overdue_filters_walk_the_index_of_armed_timers() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plans.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        let checked = |what: String, sql: &str, args: &[SqlValue]| {
            let steps = plan(&connection, sql, args);
            let shown = format!("{what}:\n{sql}\n{steps:#?}");
            for (_, detail) in &steps {
                if detail.contains(" instances") && (detail.starts_with("SCAN") || detail.starts_with("SEARCH")) {
                    assert!(detail.contains("COVERING INDEX") || detail.contains("PRIMARY KEY"), "{shown}");
                }
                // Timers are walked by due time, or looked up per instance.
                if detail.starts_with("SCAN t") || detail.starts_with("SCAN e") {
                    assert!(detail.contains("USING INDEX timers_due"), "{shown}");
                }
            }
            steps
        };
        for (name, visibility, everything) in visibilities() {
            for overdue in [false, true] {
                for descending in [false, true] {
                    for (process, status, search) in
                        [(None, None, None), (Some("a"), Some(InstanceStatus::Error), None), (None, None, Some("PO"))]
                    {
                        let filter = InstanceFilter {
                            process: process.map(str::to_owned),
                            status,
                            search: search.map(str::to_owned),
                            overdue,
                            now: 1_000,
                            order: InstanceOrder { column: InstanceColumn::Due, descending },
                            ..InstanceFilter::default()
                        };
                        let ((with_due, args), without_due) = due_page_queries(&visibility, everything, &filter, &[]);
                        let steps = checked(format!("{name}, {filter:?}"), &with_due, &args);
                        // A folio search starts from the ids it found, and sorts them.
                        if search.is_none() {
                            assert!(steps.iter().any(|(_, d)| d.contains("t USING INDEX timers_due")), "{steps:#?}");
                            assert!(steps.iter().all(|(_, d)| !d.starts_with("USE TEMP B-TREE")), "{steps:#?}");
                        }
                        assert_eq!(without_due.is_none(), overdue, "nothing is overdue without a due time");
                        if let Some((sql, args)) = without_due {
                            let steps = checked(format!("nothing due, {name}, {filter:?}"), &sql, &args);
                            let sorted = steps.iter().any(|(_, d)| d.starts_with("USE TEMP B-TREE"));
                            assert!(!sorted || search.is_some(), "{steps:#?}");
                        }
                        if overdue {
                            for column in [InstanceColumn::Id, InstanceColumn::Folio, InstanceColumn::LastChange] {
                                let filter = InstanceFilter {
                                    order: InstanceOrder { column, descending },
                                    limit: 200,
                                    ..filter.clone()
                                };
                                let (sql, args) = page_query(&visibility, everything, &filter, &[]);
                                let steps = checked(format!("{name}, {filter:?}"), &sql, &args);
                                assert!(steps.iter().any(|(_, d)| d.contains("USING INDEX timers_due")), "{steps:#?}");
                                let (sql, args) = count_query(&visibility, everything, &filter, &[]);
                                let steps = checked(format!("count, {name}, {filter:?}"), &sql, &args);
                                assert!(steps.iter().any(|(_, d)| d.contains("USING INDEX timers_due")), "{steps:#?}");
                            }
                        }
                    }
                    for include_closed in [false, true] {
                        let filter = ItemFilter {
                            include_closed,
                            by_due: true,
                            newest_first: descending,
                            overdue,
                            now: 1_000,
                            limit: 1000,
                            ..ItemFilter::default()
                        };
                        let ((with_due, mut args), without_due) = due_item_queries(&visibility, everything, &filter);
                        args.push(SqlValue::Integer(1000));
                        let steps = checked(format!("{name}, {filter:?}"), &with_due, &args);
                        assert!(steps.iter().any(|(_, d)| d.contains("USING INDEX timers_due")), "{steps:#?}");
                        assert!(steps.iter().all(|(_, d)| !d.starts_with("USE TEMP B-TREE")), "{steps:#?}");
                        if let Some((sql, mut args)) = without_due {
                            args.push(SqlValue::Integer(1000));
                            let steps = checked(format!("nothing due, {name}, {filter:?}"), &sql, &args);
                            // As the list without the due order: all items are sorted, pending ones not.
                            let sorted = steps.iter().any(|(_, d)| d.starts_with("USE TEMP B-TREE"));
                            assert_eq!(sorted, include_closed, "only pending items come in index order: {steps:#?}");
                            let scanned = steps.iter().any(|(_, d)| d.starts_with("SCAN server_items"));
                            assert_eq!(scanned, include_closed, "{steps:#?}");
                        }
                    }
                }
            }
        }
    }

    /// Every read of one instance's items finds them by the primary key's
    /// first column, never by scanning (schema 6 dropped the other index).
    #[test]
    fn an_instances_items_are_found_by_the_primary_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("plans.db"), Durability::Normal).unwrap();
        let connection = store.readers.take();
        let one = [SqlValue::Integer(7)];
        let mut queries = vec![
            (SELECT_PENDING_ITEMS_OF.to_owned(), one.to_vec()),
            (SELECT_OPEN_ITEMS.to_owned(), one.to_vec()),
            (CANCEL_ITEM.to_owned(), [1, 2, 7, 2].map(SqlValue::Integer).to_vec()),
            (FINISH_ITEM.to_owned(), [1, 2, 3, 7, 2].map(SqlValue::Integer).to_vec()),
        ];
        for include_closed in [false, true] {
            let filter = ItemFilter { instance_id: Some(7), include_closed, limit: 100, ..ItemFilter::default() };
            let (_, visibility, everything) = visibilities().remove(0);
            queries.push(item_query(&visibility, everything, &filter));
        }
        for (sql, args) in queries {
            let steps = plan(&connection, &sql, &args);
            let shown = format!("{sql}:\n{steps:#?}");
            assert!(steps.iter().any(|(_, d)| d.contains("USING PRIMARY KEY (instance_id=?")), "{shown}");
        }
    }
}
