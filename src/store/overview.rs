//! The overview's aggregates on SQLite (`engine::overview`): [`Deltas`],
//! the changes a batch of writes makes to them, summed in Rust and applied
//! with one upsert per key before the batch commits; the reads, each from
//! the aggregates or from an index, never from the instances table; and
//! [`mismatches`], the check that the aggregates agree with a full count of
//! the rows they count.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::overview::{HOUR, Incident, MINUTE, MinuteCount, PendingGroup, ReasonKey, StatusCount};
use crate::engine::{EngineError, Millis, ServerItem};
use crate::store::sql::{collect_rows, db, execute_cached, finish_item, item_from_row, status_from};

/// What writes changed in the counting aggregates (`instance_counts`,
/// `instance_minutes`, `pending_hours`), summed per key until [`Deltas::apply`]
/// writes them: a batch of 64 callback lifecycles touches a handful of keys,
/// where keeping them per statement (migration 9's triggers) cost eight
/// upserts per lifecycle. `failures`, a row per instance in error, is not
/// summed: the store writes it as it writes the instance (`sql.rs`).
#[derive(Debug, Default)]
pub(super) struct Deltas {
    counts: HashMap<(String, u32, &'static str), i64>,
    /// Started and completed.
    minutes: HashMap<(String, u32, i64), (i64, i64)>,
    pending: HashMap<(String, u32, String, i64), i64>,
}

impl Deltas {
    /// An instance row written with `status`, `by` +1 or -1.
    pub(super) fn count(&mut self, process: &str, version: u32, status: &'static str, by: i64) {
        *self.counts.entry((process.to_owned(), version, status)).or_default() += by;
    }

    pub(super) fn started(&mut self, process: &str, version: u32, at: Millis) {
        self.minutes.entry((process.to_owned(), version, at.div_euclid(MINUTE))).or_default().0 += 1;
    }

    pub(super) fn completed(&mut self, process: &str, version: u32, at: Millis) {
        self.minutes.entry((process.to_owned(), version, at.div_euclid(MINUTE))).or_default().1 += 1;
    }

    /// A pending item created at `created_at` opened (+1) or closed (-1).
    pub(super) fn pending(&mut self, process: &str, version: u32, activity: &str, created_at: Millis, by: i64) {
        let key = (process.to_owned(), version, activity.to_owned(), created_at.div_euclid(HOUR));
        *self.pending.entry(key).or_default() += by;
    }

    /// Forgets every change (their writes were rolled back).
    pub(super) fn clear(&mut self) {
        self.counts.clear();
        self.minutes.clear();
        self.pending.clear();
    }

    /// Writes the changes into the aggregates, one upsert per key that
    /// changed (an item opened and closed in the same batch changes
    /// nothing), and forgets them. Runs in the writing transaction.
    pub(super) fn apply(&mut self, tx: &Connection) -> Result<(), EngineError> {
        for ((process, version, status), n) in self.counts.drain() {
            if n != 0 {
                execute_cached(
                    tx,
                    "INSERT INTO instance_counts VALUES (?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                    params![process, version, status, n],
                )?;
            }
        }
        for ((process, version, minute), (started, completed)) in self.minutes.drain() {
            if (started, completed) != (0, 0) {
                execute_cached(
                    tx,
                    "INSERT INTO instance_minutes VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE \
                     SET started = started + excluded.started, completed = completed + excluded.completed",
                    params![process, version, minute, started, completed],
                )?;
            }
        }
        for ((process, version, activity, hour), n) in self.pending.drain() {
            if n == 0 {
                continue;
            }
            execute_cached(
                tx,
                "INSERT INTO pending_hours VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET n = n + excluded.n",
                params![process, version, activity, hour, n],
            )?;
            if n < 0 {
                // An emptied hour goes, so that a group's first key is its
                // oldest item's.
                execute_cached(
                    tx,
                    "DELETE FROM pending_hours WHERE process = ? AND version = ? AND activity = ? AND hour = ? \
                     AND n <= 0",
                    params![process, version, activity, hour],
                )?;
            }
        }
        Ok(())
    }
}

/// The item `serial_id` of instance `instance_id` if it is pending: its
/// process, its instance's version, activity and creation time, read
/// before a statement closes it (what the closing takes off `pending_hours`).
pub(super) fn pending_item(
    tx: &Connection,
    instance_id: i64,
    serial_id: i64,
) -> Result<Option<(String, u32, String, Millis)>, EngineError> {
    tx.prepare_cached(
        "SELECT s.process, i.version, s.activity, s.created_at FROM server_items s JOIN instances i \
         ON i.id = s.instance_id WHERE s.instance_id = ? AND s.serial_id = ? AND s.status = 'Pending'",
    )
    .and_then(|mut s| {
        s.query_row([instance_id, serial_id], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))).optional()
    })
    .map_err(db(tx))
}

/// Rewrites instance `id`'s row in `failures` from its row in `instances`:
/// gone unless it is in error with a message. Written with the instance
/// whenever it enters, stays in or leaves Error (rare: not summed).
pub(super) fn refresh_failure(tx: &Connection, id: i64) -> Result<(), EngineError> {
    execute_cached(tx, "DELETE FROM failures WHERE instance_id = ?", [id])?;
    execute_cached(
        tx,
        "INSERT INTO failures SELECT id, process, version, flow ->> '$.failure.activity', \
         flow ->> '$.failure.event', flowdesk_failure_pattern(flow ->> '$.failure.message'), \
         flow ->> '$.failure.message', flow ->> '$.failure.at' \
         FROM instances WHERE id = ? AND status = 'Error' AND flow ->> '$.failure.message' IS NOT NULL",
        [id],
    )
}

/// Adds instances `first..=last`, just written in bulk, to every aggregate
/// (the synthetic loader's way: one statement per aggregate).
pub(super) fn count_range(tx: &Connection, first: i64, last: i64) -> Result<(), EngineError> {
    let statements = [
        "INSERT INTO instance_counts SELECT process, version, status, COUNT(*) FROM instances \
         WHERE id BETWEEN ?1 AND ?2 GROUP BY 1, 2, 3 ON CONFLICT DO UPDATE SET n = n + excluded.n",
        "INSERT INTO instance_minutes SELECT process, version, minute, SUM(started), SUM(completed) FROM ( \
         SELECT process, version, started_at / 60000 AS minute, 1 AS started, 0 AS completed FROM instances \
         WHERE id BETWEEN ?1 AND ?2 UNION ALL \
         SELECT process, version, updated_at / 60000, 0, 1 FROM instances \
         WHERE id BETWEEN ?1 AND ?2 AND status = 'Completed') WHERE true GROUP BY 1, 2, 3 \
         ON CONFLICT DO UPDATE SET started = started + excluded.started, completed = completed + excluded.completed",
        "INSERT INTO pending_hours SELECT s.process, i.version, s.activity, s.created_at / 3600000, COUNT(*) \
         FROM server_items s JOIN instances i ON i.id = s.instance_id \
         WHERE s.instance_id BETWEEN ?1 AND ?2 AND s.status = 'Pending' GROUP BY 1, 2, 3, 4 \
         ON CONFLICT DO UPDATE SET n = n + excluded.n",
        "INSERT INTO failures SELECT id, process, version, flow ->> '$.failure.activity', \
         flow ->> '$.failure.event', flowdesk_failure_pattern(flow ->> '$.failure.message'), \
         flow ->> '$.failure.message', flow ->> '$.failure.at' FROM instances \
         WHERE id BETWEEN ?1 AND ?2 AND status = 'Error' AND flow ->> '$.failure.message' IS NOT NULL",
    ];
    for sql in statements {
        execute_cached(tx, sql, [first, last])?;
    }
    Ok(())
}

/// The SQL function a failure's reason is named with (`failures`).
pub(super) const FAILURE_PATTERN: &str = "flowdesk_failure_pattern";

pub(super) fn status_counts(tx: &Connection) -> Result<Vec<StatusCount>, EngineError> {
    let rows = collect_rows(
        tx,
        "SELECT process, version, status, n FROM instance_counts WHERE n > 0 ORDER BY process, version, status",
        [],
        |row| Ok((row.get::<_, String>(0)?, row.get(1)?, row.get::<_, String>(2)?, row.get::<_, i64>(3)?)),
    )?;
    rows.into_iter()
        .map(|(process, version, status, n)| {
            Ok(StatusCount { process, version, status: status_from(&status)?, n: n.max(0) as u64 })
        })
        .collect()
}

pub(super) fn pending_groups(tx: &Connection, since_hour: i64) -> Result<Vec<PendingGroup>, EngineError> {
    // Each group's rows are a range of the primary key, oldest hour first
    // (emptied hours are deleted): a few thousand at most per year.
    let rows = collect_rows(
        tx,
        "SELECT process, version, activity, hour, n FROM pending_hours WHERE n > 0 ORDER BY 1, 2, 3, 4",
        [],
        |row| {
            Ok((
                (row.get::<_, String>(0)?, row.get::<_, u32>(1)?, row.get::<_, String>(2)?),
                row.get::<_, i64>(3)?,
                row.get::<_, i64>(4)?.max(0) as u64,
            ))
        },
    )?;
    let mut groups: Vec<PendingGroup> = Vec::new();
    for ((process, version, activity), hour, n) in rows {
        let same =
            groups.last().is_some_and(|g| g.process == process && g.version == version && g.activity == activity);
        if !same {
            groups.push(PendingGroup { process, version, activity, n: 0, oldest_hour: hour, recent: Vec::new() });
        }
        if let Some(group) = groups.last_mut() {
            group.n += n;
            if hour >= since_hour {
                group.recent.push((hour, n));
            }
        }
    }
    Ok(groups)
}

pub(super) fn pending_since(tx: &Connection, since: Millis) -> Result<Vec<(String, u32, u64)>, EngineError> {
    collect_rows(
        tx,
        "SELECT s.process, i.version, COUNT(*) FROM server_items s JOIN instances i ON i.id = s.instance_id \
         WHERE s.status = 'Pending' AND s.created_at >= ? GROUP BY 1, 2",
        [since],
        |row| Ok((row.get(0)?, row.get(1)?, row.get::<_, i64>(2)?.max(0) as u64)),
    )
}

pub(super) fn instance_minutes(tx: &Connection, since_minute: i64) -> Result<Vec<MinuteCount>, EngineError> {
    // Per process version, a range of the primary key.
    let versions = collect_rows(tx, "SELECT process, version FROM versions ORDER BY 1, 2", [], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, u32>(1)?))
    })?;
    let mut out = Vec::new();
    for (process, version) in versions {
        out.extend(collect_rows(
            tx,
            "SELECT minute, started, completed FROM instance_minutes WHERE process = ? AND version = ? \
             AND minute >= ? ORDER BY minute",
            params![process, version, since_minute],
            |row| {
                Ok(MinuteCount {
                    process: process.clone(),
                    version,
                    minute: row.get(0)?,
                    started: row.get::<_, i64>(1)?.max(0) as u64,
                    completed: row.get::<_, i64>(2)?.max(0) as u64,
                })
            },
        )?);
    }
    Ok(out)
}

pub(super) fn failure_groups(tx: &Connection) -> Result<Vec<Incident>, EngineError> {
    // Walks `failures_by_reason` (which holds every column but the
    // message) in its order; one message per group is read by key.
    let groups = collect_rows(
        tx,
        "SELECT process, version, activity, event, pattern, COUNT(*), MIN(at), MAX(at), MIN(instance_id) \
         FROM failures GROUP BY process, version, activity, event, pattern",
        [],
        |row| {
            Ok((
                Incident {
                    key: ReasonKey {
                        process: row.get(0)?,
                        version: row.get(1)?,
                        activity: row.get(2)?,
                        event: row.get(3)?,
                        pattern: row.get(4)?,
                    },
                    count: row.get::<_, i64>(5)?.max(0) as u64,
                    first_at: row.get(6)?,
                    last_at: row.get(7)?,
                    example_id: row.get(8)?,
                    example: String::new(),
                },
                row.get::<_, i64>(8)?,
            ))
        },
    )?;
    let mut out = Vec::with_capacity(groups.len());
    for (mut incident, id) in groups {
        incident.example =
            collect_rows(tx, "SELECT message FROM failures WHERE instance_id = ?", [id], |row| row.get(0))?
                .into_iter()
                .next()
                .unwrap_or_default();
        out.push(incident);
    }
    Ok(out)
}

pub(super) fn failure_ids(tx: &Connection, key: &ReasonKey) -> Result<Vec<i64>, EngineError> {
    collect_rows(
        tx,
        "SELECT instance_id FROM failures WHERE process = ? AND version = ? AND activity = ? AND event = ? \
         AND pattern = ? ORDER BY at, instance_id",
        params![key.process, key.version, key.activity, key.event, key.pattern],
        |row| row.get(0),
    )
}

pub(super) fn pending_oldest(
    tx: &Connection,
    process: &str,
    version: u32,
    activity: Option<&str>,
    from: Millis,
) -> Result<Option<ServerItem>, EngineError> {
    // Walks `server_items_by_status` from the oldest item's hour: the first
    // of the version (and activity) is within that hour.
    let sql = format!(
        "SELECT {} FROM server_items WHERE status = 'Pending' AND created_at >= ?1 AND +process = ?2 \
         AND (?4 IS NULL OR +activity = ?4) \
         AND (SELECT version FROM instances i WHERE i.id = server_items.instance_id) = ?3 \
         ORDER BY created_at, instance_id, serial_id LIMIT 1",
        crate::store::sql::ITEM_COLUMNS
    );
    let rows = collect_rows(tx, &sql, params![from, process, version, activity], item_from_row)?;
    rows.into_iter().next().map(finish_item).transpose()
}

/// Each aggregate against a full count of its rows; every difference in
/// words. Reads whole tables: for tests and `flowdesk check`, not for the
/// window.
pub(super) fn mismatches(tx: &Connection) -> Result<Vec<String>, EngineError> {
    let checks = [
        (
            "instances by status",
            "SELECT process || ' v' || version || ' ' || status, n FROM instance_counts WHERE n != 0",
            "SELECT process || ' v' || version || ' ' || status, COUNT(*) FROM instances GROUP BY 1",
        ),
        (
            "instances started per minute",
            "SELECT process || ' v' || version || ' @' || minute, started FROM instance_minutes WHERE started != 0",
            "SELECT process || ' v' || version || ' @' || (started_at / 60000), COUNT(*) FROM instances GROUP BY 1",
        ),
        (
            "instances completed per minute",
            "SELECT process || ' v' || version || ' @' || minute, completed FROM instance_minutes \
             WHERE completed != 0",
            "SELECT process || ' v' || version || ' @' || (updated_at / 60000), COUNT(*) FROM instances \
             WHERE status = 'Completed' GROUP BY 1",
        ),
        (
            "pending items per hour",
            "SELECT process || ' v' || version || ' ' || activity || ' @' || hour, n FROM pending_hours WHERE n != 0",
            "SELECT s.process || ' v' || i.version || ' ' || s.activity || ' @' || (s.created_at / 3600000), \
             COUNT(*) FROM server_items s JOIN instances i ON i.id = s.instance_id WHERE s.status = 'Pending' \
             GROUP BY 1",
        ),
        (
            "failures",
            "SELECT instance_id || ' ' || process || ' v' || version || ' ' || activity || ' ' || event || ' ' \
             || pattern, 1 FROM failures",
            "SELECT id || ' ' || process || ' v' || version || ' ' || (flow ->> '$.failure.activity') || ' ' \
             || (flow ->> '$.failure.event') || ' ' || flowdesk_failure_pattern(flow ->> '$.failure.message'), 1 \
             FROM instances WHERE status = 'Error' AND flow ->> '$.failure.message' IS NOT NULL",
        ),
    ];
    let mut out = Vec::new();
    for (what, kept, counted) in checks {
        let read = |sql: &str| -> Result<std::collections::BTreeMap<String, i64>, EngineError> {
            Ok(collect_rows(tx, sql, [], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)))?
                .into_iter()
                .collect())
        };
        let (kept, counted) = (read(kept)?, read(counted)?);
        for key in kept.keys().chain(counted.keys()).collect::<std::collections::BTreeSet<_>>() {
            let (k, c) = (kept.get(key).copied().unwrap_or(0), counted.get(key).copied().unwrap_or(0));
            if k != c {
                out.push(format!("{what}: {key}: kept {k}, counted {c}"));
            }
        }
    }
    Ok(out)
}
