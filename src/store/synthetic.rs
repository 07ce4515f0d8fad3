//! Synthetic instances in bulk, for benchmarks and tests of large databases.
//!
//! `flowdesk bench-monitor` needs a million instances; starting them through
//! the engine would take an hour. This writes rows the engine reads like any
//! other (data and flow as the engine serialises them, a pending server item
//! where an instance waits, its "Instance started" audit line) in one
//! transaction with prepared statements. It never runs a script: the rows are
//! what a run *could* have left, chosen to look like a busy production system.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::instance::{FlowState, Token};
use crate::engine::{AuditEntry, EngineError, FailureInfo, Millis, TokenState};
use crate::model::{FieldType, ProcessDraft, ProcessZone, Value};
use crate::store::{SqliteStore, describe};

/// The people synthetic instances are started by.
pub const SYNTHETIC_ORIGINATORS: [&str; 8] = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"];

/// How far back synthetic instances were started.
const SPAN: Millis = 365 * 24 * 3600 * 1000;

/// What [`SqliteStore::load_synthetic_instances`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticLoad {
    pub instances: usize,
    /// Instances waiting on a pending server item (the Active and Stopped ones).
    pub pending_items: usize,
    pub first_id: i64,
    pub last_id: i64,
}

/// The mix of statuses, in percent of the instances: 20 % Active and 5 %
/// Stopped (both waiting on a pending server item), 5 % Error, the rest
/// Completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Active,
    Stopped,
    Error,
    Completed,
}

impl Kind {
    fn of(roll: u64) -> Kind {
        match roll % 100 {
            0..20 => Kind::Active,
            20..25 => Kind::Stopped,
            25..30 => Kind::Error,
            _ => Kind::Completed,
        }
    }

    fn status(self) -> &'static str {
        match self {
            Kind::Active => "Active",
            Kind::Stopped => "Stopped",
            Kind::Error => "Error",
            Kind::Completed => "Completed",
        }
    }
}

/// A deterministic, well-mixed pseudo-random number for `n` (splitmix64).
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Where the synthetic instances of one process version stand, worked out
/// once from its definition.
struct Shape {
    /// Data JSON variants: string fields without a default get varied text.
    data: Vec<String>,
    /// The flow of a waiting instance and of a completed one.
    waiting_flow: String,
    completed_flow: String,
    /// The waiting token: activity index, destination id (= serial id),
    /// event index, activity name, event name.
    wait: (usize, i64, usize, String, String),
    /// Where an instance in error failed: start activity, its first event.
    fail: (usize, String, String),
}

impl Shape {
    fn of(draft: &ProcessDraft) -> Result<Shape, EngineError> {
        let internal = |e: serde_json::Error| EngineError::Internal(e.to_string());
        let start = draft
            .activities
            .iter()
            .position(|a| a.start)
            .ok_or_else(|| EngineError::Internal(format!("process {} has no start activity", draft.name)))?;
        let start_activity = &draft.activities[start];
        // Instances wait at the first asynchronous event, looking from the start.
        let order = std::iter::once(start).chain((0..draft.activities.len()).filter(|&i| i != start));
        let wait = order
            .flat_map(|a| {
                draft.activities[a]
                    .events
                    .iter()
                    .enumerate()
                    .filter_map(move |(e, event)| (!event.synchronous()).then_some((a, e)))
            })
            .next()
            .ok_or_else(|| {
                EngineError::Internal(format!(
                    "process {} has no asynchronous event for synthetic instances to wait on",
                    draft.name
                ))
            })?;
        let (wait_activity, wait_event) = wait;
        let wait_destination = if wait_activity == start { 1 } else { 2 };
        let wait_names = (
            draft.activities[wait_activity].name.clone(),
            draft.activities[wait_activity].events[wait_event].name().to_owned(),
        );
        let fail_event = start_activity.events.first().map(|e| e.name().to_owned()).unwrap_or_default();

        let zone = ProcessZone::of(draft.time_zone.as_deref()).map_err(|e| EngineError::Internal(e.to_string()))?;
        let mut data = Vec::new();
        for variant in 0..8 {
            let mut values = BTreeMap::new();
            for field in &draft.fields {
                let field_type = FieldType::from_name(&field.field_type).ok_or_else(|| {
                    EngineError::Internal(format!("field {} has an unknown type {}", field.name, field.field_type))
                })?;
                let value = match (&field.default, field_type) {
                    (Some(json), _) => Value::from_json(field_type, json, &zone)
                        .map_err(|e| EngineError::Internal(format!("field {}: {e}", field.name)))?,
                    (None, FieldType::String) => Value::String(format!("{} {variant}", field.name)),
                    (None, FieldType::Integer) => Value::Integer(variant),
                    (None, other) => other.zero_value(),
                };
                values.insert(field.name.clone(), value);
            }
            data.push(serde_json::to_string(&values).map_err(internal)?);
        }
        let waiting = FlowState {
            tokens: vec![Token {
                destination_id: wait_destination,
                activity: wait_activity,
                next_event: wait_event,
                state: TokenState::Waiting,
                serial_id: Some(wait_destination),
            }],
            next_destination_id: wait_destination + 1,
            ..FlowState::default()
        };
        let completed = FlowState { next_destination_id: wait_destination + 2, ..FlowState::default() };
        Ok(Shape {
            data,
            waiting_flow: serde_json::to_string(&waiting).map_err(internal)?,
            completed_flow: serde_json::to_string(&completed).map_err(internal)?,
            wait: (wait_activity, wait_destination, wait_event, wait_names.0, wait_names.1),
            fail: (start, start_activity.name.clone(), fail_event),
        })
    }

    /// The flow of an instance that failed at `at`; its message is one of a
    /// few reasons, each with the instance's own numbers in it (as real
    /// messages carry ids), so the overview's incidents group them.
    fn error_flow(&self, at: Millis, id: i64, roll: u64) -> Result<String, EngineError> {
        let message = match (roll >> 48) % 4 {
            0 | 1 => format!("the external system answered 503 Service Unavailable for PO-{id} (synthetic)"),
            2 => format!("no answer from the ledger within {} s (synthetic)", 10 + (roll >> 52) % 50),
            _ => format!("field 'amount' is {}.{:02}, more than the limit (synthetic)", id % 9000, id % 100),
        };
        let (activity, name, event) = &self.fail;
        let flow = FlowState {
            tokens: vec![Token {
                destination_id: 1,
                activity: *activity,
                next_event: 0,
                state: TokenState::Failed,
                serial_id: None,
            }],
            next_destination_id: 2,
            failure: Some(FailureInfo { destination_id: 1, activity: name.clone(), event: event.clone(), message, at }),
            ..FlowState::default()
        };
        serde_json::to_string(&flow).map_err(|e| EngineError::Internal(e.to_string()))
    }
}

impl SqliteStore {
    /// Writes `count` synthetic instances of a deployed process version in one
    /// transaction: folios `PO-<id>`, originators from
    /// [`SYNTHETIC_ORIGINATORS`], started over the year before `now` in id
    /// order, statuses mixed (about 20 % Active and 5 % Stopped, each waiting
    /// on a pending server item at the process's first asynchronous event; 5 %
    /// Error, failed at the start activity; the rest Completed), each with its
    /// "Instance started" audit line. The rows are valid for the engine: it can
    /// show, stop, retry or finish them like any other.
    pub fn load_synthetic_instances(
        &self,
        process: &str,
        version: u32,
        count: usize,
        now: Millis,
    ) -> Result<SyntheticLoad, EngineError> {
        self.writes.exclusive(|connection| {
            connection.execute_batch("BEGIN IMMEDIATE").map_err(|e| describe(&e, &self.path))?;
            match write_synthetic(connection, process, version, count, now) {
                Ok(load) => {
                    connection.execute_batch("COMMIT").map_err(|e| describe(&e, &self.path))?;
                    Ok(load)
                }
                Err(error) => {
                    let _ = connection.execute_batch("ROLLBACK");
                    Err(error)
                }
            }
        })
    }
}

fn write_synthetic(
    connection: &Connection,
    process: &str,
    version: u32,
    count: usize,
    now: Millis,
) -> Result<SyntheticLoad, EngineError> {
    let db = || crate::store::sql::db(connection);
    let definition: String = connection
        .query_row(
            "SELECT definition FROM versions WHERE process = ? AND version = ?",
            params![process, version],
            |r| r.get(0),
        )
        .optional()
        .map_err(db())?
        .ok_or_else(|| EngineError::ProcessNotFound { name: format!("{process} version {version}") })?;
    let draft = ProcessDraft::from_json(&definition, &format!("{process} version {version}"))
        .map_err(|e| EngineError::Internal(format!("stored definition does not parse: {e}")))?;
    let shape = Shape::of(&draft)?;
    // Ids go on from the highest ever handed out (AUTOINCREMENT never reuses one).
    let last: i64 = connection
        .query_row(
            "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'instances'), 0),
                        COALESCE((SELECT MAX(id) FROM instances), 0))",
            [],
            |r| r.get(0),
        )
        .map_err(db())?;
    let mut insert_instance = connection
        .prepare(
            "INSERT INTO instances (id, process, version, folio, originator, status, data, flow, started_at,
                                    updated_at, runner, lease_until)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
        )
        .map_err(db())?;
    let mut insert_item = connection
        .prepare(
            "INSERT INTO server_items (instance_id, serial_id, activity_destination_id, event_index, process, folio,
                                       activity, event, status, script_running, created_at, closed_at, closed_by,
                                       unapplied)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'Pending', 0, ?, NULL, NULL, NULL)",
        )
        .map_err(db())?;
    let mut insert_history =
        connection.prepare("INSERT INTO history (instance_id, changes) VALUES (?, ?)").map_err(db())?;
    let (_, wait_destination, wait_event, wait_activity, wait_event_name) = &shape.wait;
    let step = SPAN / count.max(1) as Millis;
    let mut pending_items = 0;
    let mut folio = String::new();
    let mut detail = String::new();
    for n in 0..count {
        use std::fmt::Write;
        let id = last + 1 + n as i64;
        let roll = mix(id as u64);
        let kind = Kind::of(roll);
        let originator = SYNTHETIC_ORIGINATORS[(roll >> 8) as usize % SYNTHETIC_ORIGINATORS.len()];
        let started_at = now - SPAN + n as Millis * step + (roll >> 16) as Millis % step.max(1);
        let later = |most: Millis| (started_at + 1 + (roll >> 24) as Millis % most).min(now);
        let updated_at = match kind {
            Kind::Active => later(10_000),
            Kind::Stopped => later(2 * 24 * 3600 * 1000),
            Kind::Error => later(3600 * 1000),
            Kind::Completed => later(5 * 24 * 3600 * 1000),
        };
        folio.clear();
        let _ = write!(folio, "PO-{id}");
        let error_flow;
        let flow = match kind {
            Kind::Active | Kind::Stopped => &shape.waiting_flow,
            Kind::Completed => &shape.completed_flow,
            Kind::Error => {
                error_flow = shape.error_flow(updated_at, id, roll)?;
                &error_flow
            }
        };
        let data = &shape.data[(roll >> 40) as usize % shape.data.len()];
        insert_instance
            .execute(params![
                id,
                process,
                version,
                folio,
                originator,
                kind.status(),
                data,
                flow,
                started_at,
                updated_at
            ])
            .map_err(db())?;
        if matches!(kind, Kind::Active | Kind::Stopped) {
            insert_item
                .execute(params![
                    id,
                    wait_destination,
                    wait_destination,
                    wait_event,
                    process,
                    folio,
                    wait_activity,
                    wait_event_name,
                    started_at
                ])
                .map_err(db())?;
            pending_items += 1;
        }
        detail.clear();
        let _ = write!(detail, "folio `{folio}`, {process} version {version}");
        let started = AuditEntry {
            at: started_at,
            user: originator.to_owned(),
            action: crate::engine::AuditAction::InstanceStarted,
            detail: detail.clone(),
            place: None,
        };
        insert_history.execute(params![id, super::sql::start_history_json(&started)?]).map_err(db())?;
    }
    if count > 0 {
        super::overview::count_range(connection, last + 1, last + count as i64)?;
    }
    Ok(SyntheticLoad { instances: count, pending_items, first_id: last + 1, last_id: last + count as i64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Engine, InstanceFilter, InstanceStatus, ItemFilter};
    use crate::store::Durability;

    fn engine_with_callback() -> (tempfile::TempDir, Engine<SqliteStore>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("synthetic.db"), Durability::Normal).unwrap();
        let engine = Engine::new(store);
        let draft = ProcessDraft::from_json(include_str!("../../samples/callback.process.json"), "callback").unwrap();
        engine.deploy("admin", &draft).unwrap();
        (dir, engine)
    }

    #[test]
    fn synthetic_instances_are_instances_the_engine_reads_and_runs() {
        let (_dir, engine) = engine_with_callback();
        // One real instance first: synthetic ids go on after it.
        let real = engine.start("admin", "callback", "real", &[]).unwrap().instance_id;
        let now = 1_700_000_000_000;
        let load = engine.store().load_synthetic_instances("callback", 1, 1000, now).unwrap();
        assert_eq!((load.instances, load.first_id, load.last_id), (1000, real + 1, real + 1000));
        assert_eq!(engine.count_instances("admin", &InstanceFilter::default()).unwrap(), 1001);
        // The overview's aggregates count them too.
        assert_eq!(engine.check_aggregates().unwrap(), Vec::<String>::new());

        let count = |status| {
            engine.count_instances("admin", &InstanceFilter { status: Some(status), ..Default::default() }).unwrap()
        };
        let (active, stopped, error) =
            (count(InstanceStatus::Active) - 1, count(InstanceStatus::Stopped), count(InstanceStatus::Error));
        assert_eq!(active + stopped, load.pending_items as u64);
        assert!((200..300).contains(&load.pending_items), "{load:?}");
        assert!(error > 20 && count(InstanceStatus::Completed) > 600);
        let pending = ItemFilter { limit: 0, ..ItemFilter::default() };
        assert_eq!(engine.items("admin", &pending).unwrap().len(), load.pending_items + 1);

        // Every row reads back, in the newest-first order of the monitor.
        let all = engine.instances("admin", &InstanceFilter::default()).unwrap();
        assert_eq!(all.len(), 1001);
        assert_eq!(all[0].folio, format!("PO-{}", load.last_id));
        let synthetic: Vec<_> = all.iter().filter(|s| s.id != real).collect();
        assert!(synthetic.windows(2).all(|w| w[0].started_at >= w[1].started_at && w[0].id > w[1].id));
        assert!(synthetic.iter().all(|s| s.started_at <= s.updated_at && s.updated_at <= now));

        // A waiting one: detail, then a callback runs it to its end.
        let waiting = all.iter().find(|s| s.status == InstanceStatus::Active && s.id != real).unwrap();
        let detail = engine.instance("admin", waiting.id).unwrap();
        assert_eq!(detail.summary.folio, format!("PO-{}", waiting.id));
        assert_eq!(detail.fields.len(), 3);
        assert_eq!(detail.pending_items.len(), 1);
        assert_eq!(detail.audit.len(), 1);
        let finished =
            engine.finish("admin", crate::engine::Serial { instance_id: waiting.id, destination_id: 2 }, &[]).unwrap();
        assert_eq!(finished.progress.status, InstanceStatus::Completed);

        // A failed one shows where it failed and can be retried.
        let failed = all.iter().find(|s| s.status == InstanceStatus::Error).unwrap();
        let detail = engine.instance("admin", failed.id).unwrap();
        assert_eq!(detail.failure.as_ref().map(|f| f.activity.as_str()), Some("Prepare"));
        assert_eq!(engine.retry("admin", failed.id).unwrap().status, InstanceStatus::Active);

        // A stopped one resumes.
        let stopped = all.iter().find(|s| s.status == InstanceStatus::Stopped).unwrap();
        assert_eq!(engine.resume("admin", stopped.id).unwrap().status, InstanceStatus::Active);
    }

    #[test]
    fn an_unknown_version_is_refused_and_nothing_is_written() {
        let (_dir, engine) = engine_with_callback();
        let refused = engine.store().load_synthetic_instances("callback", 2, 10, 1_700_000_000_000);
        assert!(matches!(refused, Err(EngineError::ProcessNotFound { .. })), "{refused:?}");
        assert_eq!(engine.count_instances("admin", &InstanceFilter::default()).unwrap(), 0);
    }

    /// The reworked list queries (visibility as a plain filter, pages through
    /// an index, the folio search through the folio index) return what a plain
    /// reading of the filter says, for each kind of user.
    #[test]
    fn every_user_sees_exactly_the_instances_their_rights_allow_in_every_order() {
        use crate::engine::{InstanceColumn, InstanceOrder, InstanceSummary};
        use crate::model::Right;

        let (_dir, engine) = engine_with_callback();
        let mut other = ProcessDraft::from_json(include_str!("../../samples/callback.process.json"), "x").unwrap();
        other.name = "callback2".to_owned();
        engine.deploy("bob", &other).unwrap();
        engine.grant("admin", "callback", "bob", &[Right::Start, Right::ViewParticipate]).unwrap();
        engine.grant("admin", "callback", "carol", &[Right::View]).unwrap();
        engine.grant("bob", "callback2", "carol", &[Right::View]).unwrap();
        let now = chrono::Utc::now().timestamp_millis();
        engine.store().load_synthetic_instances("callback", 1, 300, now).unwrap();
        engine.start("bob", "callback", "PO-bob", &[]).unwrap();
        engine.store().load_synthetic_instances("callback2", 1, 300, now).unwrap();

        // Carol sees everything: the reference.
        let all = engine.instances("carol", &InstanceFilter::default()).unwrap();
        assert_eq!(all.len(), 601);
        let may_see = |user: &str, i: &InstanceSummary| match user {
            "admin" => i.process == "callback",
            // View Participate on `callback`: what bob started, the
            // synthetic instances with bob as originator included.
            "bob" => i.process == "callback2" || i.originator == "bob",
            _ => true,
        };
        let key = |i: &InstanceSummary, column: InstanceColumn| match column {
            InstanceColumn::Id => String::new(),
            InstanceColumn::Folio => i.folio.clone(),
            InstanceColumn::Process => i.process.clone(),
            InstanceColumn::Status => i.status.name().to_owned(),
            InstanceColumn::Originator => i.originator.clone(),
            InstanceColumn::LastChange => format!("{:020}", i.updated_at),
            // Nothing is due here: the Due order is newest first.
            InstanceColumn::Due => String::new(),
        };
        for user in ["admin", "bob", "carol"] {
            for column in InstanceColumn::ALL {
                for (process, status, search) in [
                    (None, None, None),
                    (Some("callback2"), None, None),
                    (None, Some(InstanceStatus::Active), None),
                    (Some("callback"), Some(InstanceStatus::Completed), None),
                    (None, None, Some("PO-1")),
                    (None, Some(InstanceStatus::Error), Some("2")),
                    (None, None, Some("bob")),
                ] {
                    let descending = matches!(column, InstanceColumn::LastChange | InstanceColumn::Due);
                    let filter = InstanceFilter {
                        process: process.map(str::to_owned),
                        status,
                        search: search.map(str::to_owned),
                        order: InstanceOrder { column, descending },
                        limit: 25,
                        offset: 10,
                        ..InstanceFilter::default()
                    };
                    let mut expected: Vec<&InstanceSummary> = all
                        .iter()
                        .filter(|i| may_see(user, i))
                        .filter(|i| process.is_none_or(|p| i.process == p))
                        .filter(|i| status.is_none_or(|s| i.status == s))
                        .filter(|i| {
                            search.is_none_or(|s| i.folio.contains(s) || s.parse::<i64>().is_ok_and(|id| id == i.id))
                        })
                        .collect();
                    expected.sort_by_key(|a| (key(a, column), a.id));
                    if descending {
                        expected.reverse();
                    }
                    let count = engine.count_instances(user, &filter).unwrap();
                    assert_eq!(count, expected.len() as u64, "{user} {filter:?}");
                    let page: Vec<i64> = engine.instances(user, &filter).unwrap().iter().map(|i| i.id).collect();
                    let wanted: Vec<i64> = expected.iter().skip(10).take(25).map(|i| i.id).collect();
                    assert_eq!(page, wanted, "{user} {filter:?}");
                }
            }
        }
    }
}
