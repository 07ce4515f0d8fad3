//! The ceiling the schema puts on callback lifecycles: the rows of one real
//! lifecycle written again N times, by one thread, with nothing else done.
//!
//! `flowdesk bench sql-floor` runs one lifecycle through the engine, then
//! [`replay_lifecycles`] copies what it left in the database
//! (its instance row as started and as completed, its server item, its two
//! history records) to N new instances, with the engine's own statements
//! (`sql::INSERT_INSTANCE` and the rest), in commits of [`REPLAY_BATCH`],
//! on a connection set up as the engine's writer is. No planning, no
//! scripts, no checks, no other thread: no engine built on this schema can
//! carry more lifecycles per second on the same disk and CPU.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::EngineError;
use crate::store::overview::{Deltas, pending_item};
use crate::store::sql::{
    FINISH_ITEM, INSERT_HISTORY, INSERT_INSTANCE, INSERT_ITEM, UPDATE_INSTANCE, db, execute_cached,
};
use crate::store::{Durability, WRITER_CACHE_KIB, checkpoint_off, describe, open_connection, run_cached};

/// Lifecycles per commit: what the engine's batches hold with 64 callers.
pub const REPLAY_BATCH: usize = 64;

/// The instance list's indexes (migration 3): the monitor's sorts and
/// filters at a million instances. Each carries the status, so a finish
/// rewrites an entry in every one of them.
const INSTANCE_LIST_INDEXES: [&str; 7] = [
    "instances_by_status",
    "instances_by_process",
    "instances_by_folio",
    "instances_by_originator",
    "instances_by_updated",
    "instances_by_status_updated",
    "instances_by_id",
];

/// Which schema the replay writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloorSchema {
    /// The schema as this build creates it.
    AsShipped,
    /// Without the instance list's seven indexes: what the acknowledgement
    /// path would write if the monitor's list were kept up off it.
    WithoutInstanceList,
    /// Without the overview's aggregates (the changes summed per batch and
    /// written before its commit, as the store's group commit does): what
    /// keeping them in the writing transaction costs.
    WithoutOverview,
}

impl FloorSchema {
    pub fn name(self) -> &'static str {
        match self {
            FloorSchema::AsShipped => "as-shipped",
            FloorSchema::WithoutInstanceList => "without-instance-list-indexes",
            FloorSchema::WithoutOverview => "without-overview-aggregates",
        }
    }
}

/// What [`replay_lifecycles`] wrote, and how long it took.
#[derive(Debug, Clone)]
pub struct Replayed {
    /// The new instances' ids.
    pub ids: std::ops::Range<i64>,
    pub took: Duration,
}

/// One lifecycle's rows, as the engine wrote them.
struct Template {
    process: String,
    version: i64,
    folio: String,
    originator: String,
    waiting_data: String,
    waiting_flow: String,
    completed_data: String,
    completed_flow: String,
    started_at: i64,
    item_serial_id: i64,
    item_activity_destination_id: i64,
    item_event_index: i64,
    item_activity: String,
    item_event: String,
    closed_by: String,
    start_history: String,
    finish_history: String,
}

impl Template {
    /// Reads instance `id`, which has completed, and instance `waiting` of
    /// the same process, which waits at the same step: its row shows what
    /// `id`'s looked like then.
    fn read(connection: &Connection, id: i64, waiting: i64) -> Result<Template, EngineError> {
        let fail = |what: &str| EngineError::Internal(format!("the template instance {id} has no {what}"));
        let (waiting_data, waiting_flow) = connection
            .query_row("SELECT data, flow FROM instances WHERE id = ? AND status = 'Active'", [waiting], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()
            .map_err(db(connection))?
            .ok_or_else(|| EngineError::Internal(format!("the template instance {waiting} does not wait")))?;
        let instance = connection
            .query_row(
                "SELECT process, version, folio, originator, data, flow, started_at FROM instances
                 WHERE id = ? AND status = 'Completed'",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?, row.get(6)?)),
            )
            .optional()
            .map_err(db(connection))?
            .ok_or_else(|| fail("completed instance row"))?;
        let item = connection
            .query_row(
                "SELECT serial_id, activity_destination_id, event_index, activity, event, closed_by FROM server_items
                 WHERE instance_id = ? AND status = 'Finished'",
                [id],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?, row.get(5)?)),
            )
            .optional()
            .map_err(db(connection))?
            .ok_or_else(|| fail("finished server item"))?;
        let mut statement = connection
            .prepare("SELECT changes FROM history WHERE instance_id = ? ORDER BY id")
            .map_err(db(connection))?;
        let history: Vec<String> = statement
            .query_map([id], |row| row.get(0))
            .map_err(db(connection))?
            .collect::<Result<_, _>>()
            .map_err(db(connection))?;
        let [start_history, finish_history] =
            <[String; 2]>::try_from(history).map_err(|_| fail("two history records (start and finish)"))?;
        let (process, version, folio, originator, completed_data, completed_flow, started_at) = instance;
        let (item_serial_id, item_activity_destination_id, item_event_index, item_activity, item_event, closed_by) =
            item;
        Ok(Template {
            process,
            version,
            folio,
            originator,
            waiting_data,
            waiting_flow,
            completed_data,
            completed_flow,
            started_at,
            item_serial_id,
            item_activity_destination_id,
            item_event_index,
            item_activity,
            item_event,
            closed_by,
            start_history,
            finish_history,
        })
    }
}

/// Writes `count` copies of the lifecycle of instance `template`, which
/// has completed (`waiting`: an instance of the same process waiting
/// where it waited), into the database at `path`, which no store may
/// hold open:
/// first every start, then every finish, [`REPLAY_BATCH`] per commit.
/// Returns the new instances and the time the writing took.
pub fn replay_lifecycles(
    path: &Path,
    durability: Durability,
    schema: FloorSchema,
    template: i64,
    waiting: i64,
    count: usize,
) -> Result<Replayed, EngineError> {
    let fail = |e: rusqlite::Error| describe(&e, path);
    let mut connection = open_connection(path, durability, WRITER_CACHE_KIB)?;
    // Checkpoints on a thread of their own, as the engine's writer has
    // them: copying the log back into the database is part of the cost
    // of writing, but not of this thread's.
    let checkpointer = checkpoint_off(&mut connection, path, durability)?;
    if schema == FloorSchema::WithoutInstanceList {
        for index in INSTANCE_LIST_INDEXES {
            connection.execute_batch(&format!("DROP INDEX {index}")).map_err(fail)?;
        }
    }
    // The aggregates as the store keeps them: changes summed per commit.
    let counted = schema != FloorSchema::WithoutOverview;
    let mut deltas = Deltas::default();
    let t = Template::read(&connection, template, waiting)?;
    let version = u32::try_from(t.version).map_err(|_| EngineError::Internal("a version out of range".to_owned()))?;
    let first_id: i64 =
        connection.query_row("SELECT max(id) + 1 FROM instances", [], |row| row.get(0)).map_err(fail)?;
    let end = first_id + count as i64;
    let ids: Vec<i64> = (first_id..end).collect();
    let began = Instant::now();
    // Timestamps as the engine's clock gives them at ten calls per
    // millisecond: never decreasing, so that the indexes on them grow at
    // their right edge as they do in a real run.
    let clock = |call: i64| t.started_at + call / 10;
    // The engine's own way of running them, too.
    let run = |sql: &str, values: &[&dyn rusqlite::ToSql]| execute_cached(&connection, sql, values);
    for batch in ids.chunks(REPLAY_BATCH) {
        run_cached(&connection, "BEGIN IMMEDIATE").map_err(fail)?;
        for id in batch {
            let at = clock(id - first_id);
            run(
                INSERT_INSTANCE,
                params![
                    id,
                    t.process,
                    t.version,
                    t.folio,
                    t.originator,
                    "Active",
                    t.waiting_data,
                    t.waiting_flow,
                    at,
                    at,
                    None::<i64>,
                    None::<i64>
                ],
            )?;
            run(
                INSERT_ITEM,
                params![
                    id,
                    t.item_serial_id,
                    t.item_activity_destination_id,
                    t.item_event_index,
                    t.process,
                    t.folio,
                    t.item_activity,
                    t.item_event,
                    "Pending",
                    at
                ],
            )?;
            run(INSERT_HISTORY, params![id, t.start_history])?;
            if counted {
                deltas.count(&t.process, version, "Active", 1);
                deltas.started(&t.process, version, at);
                deltas.pending(&t.process, version, &t.item_activity, at, 1);
            }
        }
        deltas.apply(&connection)?;
        run_cached(&connection, "COMMIT").map_err(fail)?;
    }
    for batch in ids.chunks(REPLAY_BATCH) {
        run_cached(&connection, "BEGIN IMMEDIATE").map_err(fail)?;
        for id in batch {
            let at = clock(count as i64 + id - first_id);
            if counted {
                // What the store reads before it closes an item.
                if let Some((process, version, activity, created_at)) =
                    pending_item(&connection, *id, t.item_serial_id)?
                {
                    deltas.pending(&process, version, &activity, created_at, -1);
                }
            }
            run(
                UPDATE_INSTANCE,
                params!["Completed", t.completed_data, t.completed_flow, at, None::<i64>, None::<i64>, id],
            )?;
            run(FINISH_ITEM, params![at, t.closed_by, None::<String>, id, t.item_serial_id])?;
            run(INSERT_HISTORY, params![id, t.finish_history])?;
            if counted {
                deltas.count(&t.process, version, "Active", -1);
                deltas.count(&t.process, version, "Completed", 1);
                deltas.completed(&t.process, version, at);
            }
        }
        deltas.apply(&connection)?;
        run_cached(&connection, "COMMIT").map_err(fail)?;
    }
    let took = began.elapsed();
    // As the store does: the connection whose hook asks the thread goes
    // first, then the thread.
    drop(connection);
    drop(checkpointer);
    Ok(Replayed { ids: first_id..end, took })
}
