//! The write side of the store: its one connection, and group commit.
//!
//! An fsync costs 0.2 to 4 ms on the disks this runs on, so committing each
//! call on its own caps throughput at a few hundred calls per second.
//! Instead, concurrent callers share one transaction, and whoever finds no
//! other caller queued behind it commits the batch for all of them. Every
//! caller still returns only after the commit that holds its work: nothing
//! is acknowledged before it is durable. A lone caller commits at once, so
//! the latency of a single call is unchanged. Members use no savepoints
//! (they cost a page copy per page touched): the engine checks everything
//! before it writes, and the rare call that fails after writing gives up the
//! whole batch, telling every member to call again.
//!
//! Two kinds of member share a batch: work run under the lock
//! ([`GroupCommit::write`]), and planned writes (`plan.rs`) handed over to
//! be checked and applied by whoever holds the writer
//! ([`GroupCommit::submit`]), which applies every queued plan in a row
//! (flat combining) rather than the lock passing from thread to thread.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::engine::{EngineError, StorageError, StorageErrorKind};
use crate::store::overview::Deltas;
use crate::store::plan::Plan;
use crate::store::sql::SqliteTransaction;
use crate::store::{describe, reason, run_cached};

/// Calls one transaction may hold before it is committed even though more
/// callers wait: keeps the latency of the first caller in a busy batch bounded.
const MAX_BATCH: usize = 512;

/// How long a batch with fewer members than the last one waits for the next
/// caller before it commits without them. Callers told a batch's outcome
/// come straight back with their next call, but on a machine with few cores
/// they need a moment to be scheduled: committing without them made batches
/// of a dozen where sixty were on their way, and each commit rewrote the
/// same hot pages (measured: 26 KB written to disk per lifecycle).
const LINGER: Duration = Duration::from_micros(500);

/// What the other members of a batch are told when one of them failed
/// after writing: a conflict, since their own work was sound and calling
/// again can succeed (if the cause was the disk, say, they meet it then).
fn batch_failed() -> StorageError {
    StorageError::new(
        StorageErrorKind::Conflict,
        "another call committed together with this one failed, and the whole commit was rolled back: nothing of \
         this call was saved; call again",
    )
}

/// How a batch ended, as its members wait for it: committed, or given up
/// with what its members are told (`None`: it had none to tell, the one
/// caller whose failure ended it returning its own error).
type Outcome = Result<(), Option<StorageError>>;

/// The outcome of one batch, which its members wait for.
#[derive(Default)]
struct Batch {
    /// `Some` once the batch is committed or given up.
    outcome: Mutex<Option<Outcome>>,
    done: Condvar,
}

impl Batch {
    fn finish(&self, outcome: Outcome) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(outcome);
        self.done.notify_all();
    }

    fn wait(&self) -> Outcome {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(outcome) = outcome.as_ref() {
                return outcome.clone();
            }
            outcome = self.done.wait(outcome).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// A planned write handed to whoever holds the writer. One thread applies
/// the plans of many callers in a row, instead of the lock passing from
/// thread to thread for each (each hand-over woke a sleeping thread, which
/// cost more than applying a plan).
struct Job {
    plan: Plan,
    caller: std::thread::Thread,
    /// Set once: `Ok(true)` applied and committed; `Ok(false)` stale, not
    /// applied (the caller runs its work again); `Err` its batch failed.
    outcome: OnceLock<Result<bool, StorageError>>,
}

impl Job {
    fn finish(&self, outcome: Result<bool, StorageError>) {
        let _ = self.outcome.set(outcome);
        self.caller.unpark();
    }
}

/// The write side: one connection and the batch it may have open.
struct Writer {
    connection: Connection,
    /// A transaction is open and holds the work of `members` callers.
    open: bool,
    members: usize,
    /// The batch being filled. Its members wait on it, not on the writer, so
    /// that waking them does not compete with the next batch for the lock.
    batch: Arc<Batch>,
    /// Planned writes applied in the open batch, told its outcome with it.
    jobs: Vec<Arc<Job>>,
    /// Outcomes of ended batches not yet told to their members: telling
    /// wakes a thread per member, which is done after the lock is let go.
    untold: Vec<Untold>,
    /// Members the last committed batch had: the next one waits (up to
    /// [`LINGER`] per caller) for as many before it commits.
    expected: usize,
    /// [`LINGER`], which tests lengthen.
    linger: Duration,
    /// The open batch's changes to the overview's aggregates, applied just
    /// before it commits: one upsert per key per batch.
    deltas: Deltas,
}

/// A batch's outcome for its members, to be told.
struct Untold {
    batch: Arc<Batch>,
    jobs: Vec<Arc<Job>>,
    outcome: Outcome,
}

impl Untold {
    fn tell(self) {
        for job in self.jobs {
            // A batch with jobs in it is never given up with nobody to tell.
            job.finish(self.outcome.clone().map(|()| true).map_err(|told| told.unwrap_or_else(batch_failed)));
        }
        self.batch.finish(self.outcome);
    }
}
/// The writer and everyone on the way to it.
pub(super) struct GroupCommit {
    writer: Mutex<Writer>,
    /// Callers on their way to the writer: waiting for its lock, or planning
    /// a write they will bring to it. While any are, a member leaves the
    /// commit to them, so that a batch gathers everyone in flight.
    coming: AtomicUsize,
    /// Planned writes waiting for whoever holds the writer to apply them.
    queue: Mutex<Vec<Arc<Job>>>,
    /// Signalled (with `queue` locked) when a job is queued or a caller
    /// starts coming, for a writer lingering over a small batch.
    arrivals: Condvar,
    /// A writer lingers on `arrivals`: callers that start coming signal it.
    lingering: AtomicBool,
    /// The store's next instance id, shared with planning (see
    /// `SqliteTransaction::with_ids`).
    next_id: Arc<AtomicI64>,
    /// The database, as errors name it.
    path: PathBuf,
}

impl GroupCommit {
    /// Group commit on `connection`, the store's one write connection.
    pub(super) fn new(connection: Connection, next_id: Arc<AtomicI64>, path: PathBuf) -> GroupCommit {
        GroupCommit {
            writer: Mutex::new(Writer {
                connection,
                open: false,
                members: 0,
                batch: Arc::default(),
                jobs: Vec::new(),
                untold: Vec::new(),
                expected: 0,
                linger: LINGER,
                deltas: Deltas::default(),
            }),
            coming: AtomicUsize::new(0),
            queue: Mutex::new(Vec::new()),
            arrivals: Condvar::new(),
            lingering: AtomicBool::new(false),
            next_id,
            path,
        }
    }

    /// Counts the caller as coming to the writer until it takes the lock or
    /// gives up (the returned guard is dropped).
    /// Runs `work` on the write connection alone, with no batch open (one
    /// left open is committed first), for bulk loads that begin and commit
    /// their own transactions.
    pub(super) fn exclusive<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut writer = self.coming().lock_writer();
        self.end_batch(&mut writer, None);
        for outcome in std::mem::take(&mut writer.untold) {
            outcome.tell();
        }
        let result = work(&writer.connection);
        self.release(writer);
        result
    }

    pub(super) fn coming(&self) -> Coming<'_> {
        self.coming.fetch_add(1, Ordering::SeqCst);
        // Paired with `linger`, which sets the flag before it reads
        // `coming`: either it sees this caller, or this caller sees it.
        if self.lingering.load(Ordering::SeqCst) {
            let _queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            self.arrivals.notify_all();
        }
        Coming { writes: self, still: true }
    }

    /// Tells the outcomes of ended batches, then waits up to [`LINGER`] for
    /// a caller to come or a job to be queued. Whether one did.
    fn linger(&self, writer: &mut Writer) -> bool {
        // Those told are the callers this wait is for.
        for outcome in std::mem::take(&mut writer.untold) {
            outcome.tell();
        }
        let deadline = Instant::now() + writer.linger;
        let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
        self.lingering.store(true, Ordering::SeqCst);
        let arrived = loop {
            if !queue.is_empty() || self.coming.load(Ordering::SeqCst) > 0 {
                break true;
            }
            let now = Instant::now();
            if now >= deadline {
                break false;
            }
            queue = self.arrivals.wait_timeout(queue, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
        };
        self.lingering.store(false, Ordering::SeqCst);
        arrived
    }

    /// Ends the open batch: commits it, or rolls it back if `rollback`. Its
    /// members are told the outcome when the lock is let go ([`Self::release`]).
    fn end_batch(&self, writer: &mut Writer, rollback: Option<Option<StorageError>>) {
        if !writer.open {
            return;
        }
        let outcome = match rollback {
            Some(reason) => {
                let _ = run_cached(&writer.connection, "ROLLBACK");
                Err(reason)
            }
            None => match writer.deltas.apply(&writer.connection) {
                Ok(()) => run_cached(&writer.connection, "COMMIT").map_err(|e| Some(reason(describe(&e, &self.path)))),
                Err(error) => Err(Some(reason(error))),
            },
        };
        // Applied, or rolled back with the writes they came from.
        writer.deltas.clear();
        if outcome.is_err() && !writer.connection.is_autocommit() {
            let _ = run_cached(&writer.connection, "ROLLBACK");
        }
        writer.open = false;
        writer.members = 0;
        let untold =
            Untold { batch: std::mem::take(&mut writer.batch), jobs: std::mem::take(&mut writer.jobs), outcome };
        writer.untold.push(untold);
    }

    /// Applies every queued planned write in the open batch (opening one if
    /// needed), until the queue is empty.
    fn serve(&self, writer: &mut Writer) {
        loop {
            let jobs = std::mem::take(&mut *self.queue.lock().unwrap_or_else(PoisonError::into_inner));
            if jobs.is_empty() {
                return;
            }
            for job in jobs {
                self.apply_job(writer, job);
            }
        }
    }

    fn apply_job(&self, writer: &mut Writer, job: Arc<Job>) {
        if !writer.open {
            if let Err(e) = run_cached(&writer.connection, "BEGIN IMMEDIATE") {
                job.finish(Err(reason(describe(&e, &self.path))));
                return;
            }
            writer.open = true;
        }
        let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let Writer { connection, deltas, .. } = &mut *writer;
            let mut transaction = SqliteTransaction::in_batch(connection, &self.next_id, deltas);
            // A read that fails here is answered as stale: the caller runs
            // its work again in the transaction and meets the error itself.
            if !matches!(job.plan.still_holds(&mut transaction), Ok(true)) {
                return Ok(false);
            }
            job.plan.apply(&mut transaction).map(|()| true)
        }));
        match applied {
            Ok(Ok(true)) => {
                writer.members += 1;
                writer.jobs.push(job);
            }
            Ok(Ok(false)) => job.finish(Ok(false)),
            Ok(Err(error)) => {
                job.finish(Err(reason(error)));
                self.end_batch(writer, Some(Some(batch_failed())));
            }
            Err(_) => {
                // A bug in applying its own plan: calling again meets it again.
                job.finish(Err(StorageError::new(
                    StorageErrorKind::Other,
                    "a write failed unexpectedly and nothing was saved",
                )));
                self.end_batch(writer, Some(Some(batch_failed())));
            }
        }
    }

    /// Lets go of the writer, the one way every holder does: first apply
    /// what is queued and commit if nobody else is on the way (they will
    /// commit otherwise); and never while a planned write is queued, since
    /// its caller may have found the lock taken and gone to sleep.
    fn release(&self, mut writer: MutexGuard<'_, Writer>) {
        loop {
            self.serve(&mut writer);
            let nobody_coming = self.coming.load(Ordering::SeqCst) == 0;
            let small = writer.members < writer.expected.min(MAX_BATCH);
            if writer.open && nobody_coming && small && self.linger(&mut writer) {
                continue;
            }
            if writer.open && (nobody_coming || writer.members >= MAX_BATCH) {
                // The next batch waits for as many (fewer, if nobody came in
                // time for this one).
                writer.expected = writer.members;
                self.end_batch(&mut writer, None);
            }
            let queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            if queue.is_empty() {
                let untold = std::mem::take(&mut writer.untold);
                // In this order: a caller queueing after the check finds the
                // writer free.
                drop(writer);
                drop(queue);
                for outcome in untold {
                    outcome.tell();
                }
                return;
            }
        }
    }

    /// Hands a planned write to the writer and waits for its outcome,
    /// applying it (and everyone else's) itself if the writer is free.
    pub(super) fn submit(&self, plan: Plan, coming: Coming<'_>) -> Result<bool, StorageError> {
        let job = Arc::new(Job { plan, caller: std::thread::current(), outcome: OnceLock::new() });
        {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.push(job.clone());
            self.arrivals.notify_all();
        }
        coming.arrived();
        loop {
            if let Some(outcome) = job.outcome.get() {
                return outcome.clone();
            }
            match self.writer.try_lock() {
                Ok(writer) => self.release(writer),
                Err(std::sync::TryLockError::Poisoned(poisoned)) => self.release(poisoned.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => {}
            }
            if job.outcome.get().is_none() {
                // Unparked when the job is answered; a spurious wake only
                // goes round once more.
                std::thread::park();
            }
        }
    }

    pub(super) fn write<T>(
        &self,
        coming: Coming<'_>,
        work: impl FnOnce(&mut SqliteTransaction<'_>) -> Result<T, EngineError>,
    ) -> Result<T, EngineError> {
        let mut writer = coming.lock_writer();
        if !writer.open {
            if let Err(e) = run_cached(&writer.connection, "BEGIN IMMEDIATE") {
                // Let go the one way, so that queued plans are answered too.
                self.release(writer);
                return Err(describe(&e, &self.path));
            }
            writer.open = true;
        }
        // Members share the transaction without savepoints: a savepoint
        // copies every page its member first touches, which cost a fifth of
        // a call. The engine checks everything before it writes, so a call
        // refused after writing (a bug, or a storage error) is rare, and then
        // the whole batch is given up: every member is told, none is
        // acknowledged, and each can simply call again.
        let alone = writer.members == 0;
        // A panic in the work (a bug) must not leave the batch open with other
        // callers waiting on it for ever: give the batch up, then let it go on.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let Writer { connection, deltas, .. } = &mut *writer;
            let mut transaction = SqliteTransaction::in_batch(connection, &self.next_id, deltas);
            let result = work(&mut transaction);
            (result, transaction.wrote())
        }));
        let (result, wrote) = match outcome {
            Ok(outcome) => outcome,
            Err(panic) => {
                // The others are told a conflict: their work was sound.
                self.end_batch(&mut writer, Some(Some(batch_failed())));
                self.release(writer);
                std::panic::resume_unwind(panic);
            }
        };
        if result.is_err() && (alone || wrote) {
            let others = if alone { None } else { Some(batch_failed()) };
            self.end_batch(&mut writer, Some(others));
            self.release(writer);
            return result;
        }
        if result.is_ok() {
            writer.members += 1;
        }
        let batch = writer.batch.clone();
        self.release(writer);
        // Someone coming after us commits the batch if we did not. A refusal
        // waits too: it may rest on a batch member's work (an item another
        // member just finished), which only stands once committed.
        match batch.wait() {
            Ok(()) => result,
            Err(Some(reason)) => Err(EngineError::Storage(reason)),
            Err(None) if result.is_ok() => Err(EngineError::Storage(batch_failed())),
            Err(None) => result,
        }
    }
}

/// A caller counted in [`GroupCommit::coming`].
pub(super) struct Coming<'s> {
    writes: &'s GroupCommit,
    /// Not yet at the lock.
    still: bool,
}

impl<'s> Coming<'s> {
    /// The caller's planned write is queued: it is no longer coming (the
    /// queue itself keeps the batch open until it is applied).
    fn arrived(mut self) {
        self.still = false;
        self.writes.coming.fetch_sub(1, Ordering::SeqCst);
    }

    /// Takes the write lock; the caller is no longer coming.
    fn lock_writer(mut self) -> MutexGuard<'s, Writer> {
        let writer = self.writes.writer.lock().unwrap_or_else(PoisonError::into_inner);
        self.still = false;
        self.writes.coming.fetch_sub(1, Ordering::SeqCst);
        writer
    }
}

impl Drop for Coming<'_> {
    /// A caller that gives up on the way (a refusal, or a panic while
    /// planning) may be the one the open batch's members left the commit
    /// to: if nobody else is coming, it commits the batch for them.
    fn drop(&mut self) {
        if !self.still {
            return;
        }
        if self.writes.coming.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.writes.release(self.writes.writer.lock().unwrap_or_else(PoisonError::into_inner));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;
    use crate::engine::Storage;
    use crate::engine::VersionRecord;
    use crate::model::Right;
    use crate::store::{Durability, SqliteStore};
    use std::path::Path;

    /// A fresh store with a process `p` deployed, so rights can be granted on it.
    fn store_with_process(path: &Path) -> SqliteStore {
        let store = SqliteStore::open(path, Durability::Normal).unwrap();
        let version = VersionRecord {
            process: "p".into(),
            version: 1,
            definition_json: "{}".into(),
            deployed_at: 0,
            deployed_by: "a".into(),
        };
        store.write(|tx| tx.insert_version(&version)).unwrap();
        store
    }

    /// A planned write queued while another caller holds the writer finds it
    /// taken and sleeps; the holder must apply it when it lets go, or the
    /// caller sleeps for ever. Both writes end up in one commit.
    #[test]
    fn a_plan_queued_while_the_writer_is_held_is_applied_by_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_process(&dir.path().join("queued.db")));
        let holding = Arc::new(AtomicBool::new(false));
        let (done, finished) = std::sync::mpsc::channel();
        // Plain threads, not scoped ones: if a caller hangs, the test fails
        // instead of waiting for it for ever.
        {
            let (store, holding, done) = (store.clone(), holding.clone(), done.clone());
            std::thread::spawn(move || {
                let held = store.write(|tx| {
                    holding.store(true, Ordering::SeqCst);
                    // Keep the writer until the other caller's plan is queued.
                    while store.writes.queue.lock().unwrap().is_empty() {
                        std::thread::yield_now();
                    }
                    tx.grant("p", "holder", Right::View)
                });
                let _ = done.send(("holder", held));
            });
        }
        {
            let store = store.clone();
            std::thread::spawn(move || {
                while !holding.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                let planned = store.write_planned(|tx| tx.grant("p", "planner", Right::Start), || {});
                let _ = done.send(("planner", planned));
            });
        }
        for _ in 0..2 {
            let (who, outcome) = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("a caller hung");
            assert!(outcome.is_ok(), "{who}: {outcome:?}");
        }
        assert_eq!(store.read(|tx| tx.rights("p", "holder")).unwrap(), [Right::View]);
        assert_eq!(store.read(|tx| tx.rights("p", "planner")).unwrap(), [Right::Start]);
    }

    /// A batch waits for as many members as the last one had; when fewer
    /// come, it commits once the wait runs out, and expects that many next.
    #[test]
    fn a_batch_expecting_more_callers_than_come_still_commits() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_process(&dir.path().join("linger.db")));
        store.writes.writer.lock().unwrap().expected = 50;
        let (done, finished) = std::sync::mpsc::channel();
        {
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = done.send(store.write_planned(|tx| tx.grant("p", "alone", Right::Start), || {}));
            });
        }
        let outcome = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("the lone caller hung");
        assert!(outcome.is_ok(), "{outcome:?}");
        assert_eq!(store.read(|tx| tx.rights("p", "alone")).unwrap(), [Right::Start]);
        assert_eq!(store.writes.writer.lock().unwrap().expected, 1);
    }

    /// A caller arriving while the writer waits over a small batch joins it.
    #[test]
    fn a_caller_arriving_while_the_writer_lingers_joins_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(store_with_process(&dir.path().join("join.db")));
        {
            let mut writer = store.writes.writer.lock().unwrap();
            writer.expected = 2;
            // Long enough for any machine to bring the second caller.
            writer.linger = std::time::Duration::from_secs(60);
        }
        let (done, finished) = std::sync::mpsc::channel();
        {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                let _ = done.send(store.write_planned(|tx| tx.grant("p", "first", Right::Start), || {}));
            });
        }
        while !store.writes.lingering.load(Ordering::SeqCst) {
            if let Ok(outcome) = finished.try_recv() {
                panic!("the first caller committed without waiting: {outcome:?}");
            }
            std::thread::yield_now();
        }
        {
            let store = store.clone();
            std::thread::spawn(move || {
                let _ = done.send(store.write_planned(|tx| tx.grant("p", "second", Right::Start), || {}));
            });
        }
        for _ in 0..2 {
            let outcome = finished.recv_timeout(std::time::Duration::from_secs(60)).expect("a caller hung");
            assert!(outcome.is_ok(), "{outcome:?}");
        }
        assert_eq!(store.read(|tx| tx.rights("p", "second")).unwrap(), [Right::Start]);
        assert_eq!(store.writes.writer.lock().unwrap().expected, 2, "both calls were committed together");
    }

    /// Regression: a panic inside a batch used to leave the other members of
    /// the batch waiting for a commit that never came.
    #[test]
    fn a_panic_in_a_batch_fails_its_other_members_instead_of_hanging_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_process(&dir.path().join("panic.db"));
        let in_batch = AtomicBool::new(false);
        let outcome = std::thread::scope(|scope| {
            let first = scope.spawn(|| {
                store.write(|tx| {
                    in_batch.store(true, Ordering::SeqCst);
                    // Stay until the second caller queues behind us, so that we
                    // leave the commit to it and wait.
                    while store.writes.coming.load(Ordering::SeqCst) == 0 {
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
        assert!(
            matches!(&outcome, Err(EngineError::Storage(err)) if err.kind == StorageErrorKind::Conflict),
            "{outcome:?}"
        );
        assert!(store.read(|tx| tx.rights("p", "u")).unwrap().is_empty());
        // The store keeps working.
        store.write(|tx| tx.grant("p", "u", Right::View)).unwrap();
        assert_eq!(store.read(|tx| tx.rights("p", "u")).unwrap(), [Right::View]);
    }
}
