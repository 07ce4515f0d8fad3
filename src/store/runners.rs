//! Runners' heartbeats (migration 7, `runners`): the rows through which a
//! runtime says it still runs the work it has claimed.
//!
//! The engine only reads them, joined to the instances' claims
//! (`Transaction::running_instances`); the runtime writes its own row while
//! its engine runs outside work and removes it when it closes
//! (`crate::runtime`). These
//! writes are callers of their own in the group commit, never part of an
//! engine call.

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{OptionalExtension, params};

use super::{SqliteStore, describe};
use crate::engine::{EngineError, Millis, RunnerId};

impl ToSql for RunnerId {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.get()))
    }
}

impl FromSql for RunnerId {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<RunnerId> {
        i64::column_result(value).map(RunnerId::from)
    }
}

/// One heartbeat: the runner's row as it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerBeat {
    pub id: RunnerId,
    /// Where the runner runs, for people reading the table.
    pub host: String,
    pub pid: u32,
    pub started_at: Millis,
    pub beat_at: Millis,
    /// Its claims hold until then without another beat.
    pub expires_at: Millis,
}

impl SqliteStore {
    /// Writes the runner's row, new or again.
    pub fn beat_runner(&self, beat: &RunnerBeat) -> Result<(), EngineError> {
        self.writes.write(self.writes.coming(), |tx| {
            tx.connection()
                .prepare_cached(
                    "INSERT INTO runners (id, host, pid, started_at, beat_at, expires_at) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
                     ON CONFLICT (id) DO UPDATE SET beat_at = excluded.beat_at, expires_at = excluded.expires_at",
                )
                .and_then(|mut statement| {
                    statement.execute(params![
                        beat.id,
                        beat.host,
                        beat.pid,
                        beat.started_at,
                        beat.beat_at,
                        beat.expires_at
                    ])
                })
                .map_err(|e| describe(&e, &self.path))?;
            tx.mark_written();
            Ok(())
        })
    }

    /// The runner's row, if it has one.
    pub fn runner(&self, runner: RunnerId) -> Result<Option<RunnerBeat>, EngineError> {
        self.with_reader(|connection| {
            connection
                .prepare_cached("SELECT host, pid, started_at, beat_at, expires_at FROM runners WHERE id = ?1")
                .and_then(|mut statement| {
                    statement
                        .query_row([runner], |row| {
                            Ok(RunnerBeat {
                                id: runner,
                                host: row.get(0)?,
                                pid: row.get(1)?,
                                started_at: row.get(2)?,
                                beat_at: row.get(3)?,
                                expires_at: row.get(4)?,
                            })
                        })
                        .optional()
                })
                .map_err(|e| describe(&e, &self.path))
        })
    }

    /// Removes the runner's row: it beats no more. Its claims, if any are
    /// left, then hold only until their leases run out.
    pub fn forget_runner(&self, runner: RunnerId) -> Result<(), EngineError> {
        self.writes.write(self.writes.coming(), |tx| {
            tx.connection()
                .prepare_cached("DELETE FROM runners WHERE id = ?1")
                .and_then(|mut statement| statement.execute([runner]))
                .map_err(|e| describe(&e, &self.path))?;
            tx.mark_written();
            Ok(())
        })
    }

    /// Removes the rows of runners whose heartbeats ran out before
    /// `before` (they were killed, or lost their disk); returns how many.
    /// A runner without a row is judged by its claims' leases alone, which
    /// is what an expired row says too, so this changes no decision. Only
    /// writes when there is something to remove, so that an idle host does
    /// not write every tick.
    pub fn forget_silent_runners(&self, before: Millis) -> Result<usize, EngineError> {
        let any: bool = self.with_reader(|connection| {
            connection
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM runners WHERE expires_at < ?1)")
                .and_then(|mut statement| statement.query_row([before], |row| row.get(0)))
                .map_err(|e| describe(&e, &self.path))
        })?;
        if !any {
            return Ok(0);
        }
        self.writes.write(self.writes.coming(), |tx| {
            let removed = tx
                .connection()
                .prepare_cached("DELETE FROM runners WHERE expires_at < ?1")
                .and_then(|mut statement| statement.execute([before]))
                .map_err(|e| describe(&e, &self.path))?;
            tx.mark_written();
            Ok(removed)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Durability;

    fn beat(id: i64, at: Millis) -> RunnerBeat {
        RunnerBeat {
            id: RunnerId::from(id),
            host: "here".to_owned(),
            pid: 42,
            started_at: 100,
            beat_at: at,
            expires_at: at + 1_000,
        }
    }

    #[test]
    fn a_runner_beats_again_into_its_one_row_and_silent_runners_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db"), Durability::Normal).unwrap();
        store.beat_runner(&beat(1, 200)).unwrap();
        store.beat_runner(&beat(1, 500)).unwrap();
        store.beat_runner(&beat(2, 300)).unwrap();
        assert_eq!(store.runner(RunnerId::from(1)).unwrap(), Some(beat(1, 500)));

        // Runner 2's beat ran out at 1,300; runner 1's holds until 1,500.
        assert_eq!(store.forget_silent_runners(1_400).unwrap(), 1);
        assert_eq!(store.forget_silent_runners(1_400).unwrap(), 0);
        assert_eq!(store.runner(RunnerId::from(2)).unwrap(), None);

        store.forget_runner(RunnerId::from(1)).unwrap();
        assert_eq!(store.runner(RunnerId::from(1)).unwrap(), None);
    }
}
