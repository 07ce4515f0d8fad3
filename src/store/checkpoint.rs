//! Checkpoints on a thread of their own.
//!
//! In WAL mode every commit appends pages to the `-wal` file, and a
//! checkpoint copies them back into the database file so that the log can
//! start over. SQLite's automatic checkpoint runs inside the commit that
//! crosses its threshold, on the writer's thread and under the write lock: it
//! copies thousands of pages and waits for two `fsync`s, and every caller of
//! the batches queued behind it waits too (measured: the cores stood idle a
//! quarter of the callback benchmark, mostly in those waits). Here the
//! writer's commit hook only asks; a thread with its own connection does the
//! copying while the writer goes on appending. A checkpoint that cannot keep
//! up (a slow disk) is caught by a backstop: past [`Thresholds::backstop`] the
//! writer checkpoints itself, as SQLite would have, so the log stays bounded.

use std::ffi::c_int;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;

/// When checkpoints happen, in pages of the log.
#[derive(Debug, Clone, Copy)]
pub(super) struct Thresholds {
    /// Pages appended since the last checkpoint that make the thread copy
    /// them.
    pub start: c_int,
    /// Pages at which the writer stops relying on the thread and
    /// checkpoints itself.
    pub backstop: c_int,
}

impl Default for Thresholds {
    /// SQLite's own threshold to start, and 64 MiB of 4 KiB pages.
    fn default() -> Thresholds {
        Thresholds { start: 1000, backstop: 16_384 }
    }
}

#[derive(Default)]
struct Request {
    wanted: bool,
    stop: bool,
}

#[derive(Default)]
struct Shared {
    request: Mutex<Request>,
    wake: Condvar,
    /// Log frames the last checkpoint reached (0 after the log restarted).
    checkpointed: AtomicI32,
    /// Times the thread was asked (while not already asked), and
    /// checkpoints it has run since: each ask is followed by one run.
    asked: AtomicU64,
    runs: AtomicU64,
    finished_run: Condvar,
}

impl Shared {
    fn ask(&self) {
        let mut request = self.request.lock().unwrap_or_else(PoisonError::into_inner);
        if !request.wanted {
            request.wanted = true;
            self.asked.fetch_add(1, Ordering::SeqCst);
            self.wake.notify_one();
        }
    }
}

/// The checkpoint thread; stopped and joined when dropped.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    thresholds: Thresholds,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread on `connection` (one of its own, on the same file).
    pub(super) fn start(connection: Connection, thresholds: Thresholds) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new().name("flowdesk-checkpoint".to_owned()).spawn({
            let shared = shared.clone();
            move || run(&connection, &shared)
        })?;
        Ok(Checkpointer { shared, thresholds, thread: Some(thread) })
    }

    /// The writer's commit hook: asks for a checkpoint once enough pages
    /// were appended, and checkpoints itself past the backstop. Installing
    /// it turns SQLite's automatic checkpoint off for that connection.
    pub(super) fn hook(&self) -> impl FnMut(&mut Wal, c_int) -> rusqlite::Result<()> + Send + 'static {
        let shared = self.shared.clone();
        let Thresholds { start, backstop } = self.thresholds;
        move |wal, pages| {
            let done = shared.checkpointed.load(Ordering::Relaxed);
            // Fewer pages than were checkpointed: the log has started over.
            let fresh = if pages >= done { pages - done } else { pages };
            if pages >= backstop {
                // A busy reader keeps part of the log; what it does not
                // hold is copied, and the next commit tries again.
                let _ = wal.checkpoint_v2(CheckpointMode::PASSIVE);
            } else if fresh >= start {
                shared.ask();
            }
            Ok(())
        }
    }

    /// How many checkpoints the thread has run.
    #[cfg(test)]
    pub(super) fn runs(&self) -> u64 {
        self.shared.runs.load(Ordering::SeqCst)
    }

    /// Waits until the thread has run every checkpoint it was asked for, or
    /// `timeout` passed; whether it had.
    #[cfg(test)]
    pub(super) fn wait_caught_up(&self, timeout: std::time::Duration) -> bool {
        let shared = &self.shared;
        let request = shared.request.lock().unwrap_or_else(PoisonError::into_inner);
        let (_request, result) = shared
            .finished_run
            .wait_timeout_while(request, timeout, |_| {
                shared.runs.load(Ordering::SeqCst) < shared.asked.load(Ordering::SeqCst)
            })
            .unwrap_or_else(PoisonError::into_inner);
        !result.timed_out()
    }
}

fn run(connection: &Connection, shared: &Shared) {
    loop {
        {
            let mut request = shared.request.lock().unwrap_or_else(PoisonError::into_inner);
            while !request.wanted && !request.stop {
                request = shared.wake.wait(request).unwrap_or_else(PoisonError::into_inner);
            }
            if request.stop {
                return;
            }
            request.wanted = false;
        }
        // PASSIVE never waits for readers or the writer. An error (the disk
        // full, say) leaves the log as it is: the writer's backstop and the
        // next request try again.
        if let Ok((_log, checkpointed)) = connection.wal_checkpoint_v2(None::<&str>, CheckpointMode::PASSIVE) {
            shared.checkpointed.store(checkpointed.max(0), Ordering::Relaxed);
        }
        let _request = shared.request.lock().unwrap_or_else(PoisonError::into_inner);
        shared.runs.fetch_add(1, Ordering::SeqCst);
        shared.finished_run.notify_all();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.request.lock().unwrap_or_else(PoisonError::into_inner).stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::*;

    fn connection(path: &Path) -> Connection {
        let connection = Connection::open(path).unwrap();
        let _mode: String = connection.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0)).unwrap();
        connection
    }

    /// A writer with the checkpointer's hook, and a table of wide rows.
    fn writer(path: &Path, thresholds: Thresholds) -> (Connection, Checkpointer) {
        let mut writer = connection(path);
        writer.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT NOT NULL)").unwrap();
        let checkpointer = Checkpointer::start(connection(path), thresholds).unwrap();
        writer.wal_hook(Some(checkpointer.hook())).unwrap();
        (writer, checkpointer)
    }

    /// Commits `commits` transactions of about four pages each.
    fn write(writer: &Connection, commits: usize) {
        for _ in 0..commits {
            writer.execute("INSERT INTO t (body) VALUES (?)", [&"x".repeat(16_000)]).unwrap();
        }
    }

    fn wal_bytes(path: &Path) -> u64 {
        std::fs::metadata(path.with_extension("db-wal")).unwrap().len()
    }

    #[test]
    fn the_thread_copies_the_log_into_the_database_once_it_is_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let (writer, checkpointer) = writer(&path, Thresholds { start: 40, backstop: 100_000 });
        write(&writer, 5);
        assert_eq!(checkpointer.runs(), 0, "twenty pages are not enough to ask");
        let before = std::fs::metadata(&path).unwrap().len();
        write(&writer, 10);
        assert!(checkpointer.wait_caught_up(Duration::from_secs(30)), "the checkpoint did not end");
        assert!(checkpointer.runs() >= 1, "no checkpoint ran");
        assert!(std::fs::metadata(&path).unwrap().len() > before + 20 * 4096, "the pages reached the database file");
        // And the log starts over instead of growing: sixty more commits
        // (about 300 pages) fit in the file the first ones left. (Its size
        // is the most the log ever held, which depends on how far the
        // writer got while the first checkpoint ran: compared with itself,
        // not with a fixed size, so that a loaded machine does not fail it.)
        let first = wal_bytes(&path);
        for _ in 0..60 {
            write(&writer, 1);
            assert!(checkpointer.wait_caught_up(Duration::from_secs(30)), "the checkpoint did not end");
        }
        assert!(checkpointer.runs() >= 5, "{} checkpoints for 300 pages", checkpointer.runs());
        // Were the log not starting over, the sixty commits would add more
        // than 1 MB to it. A little growth is allowed: a commit may meet the
        // checkpoint still running (the thread is asked at the threshold
        // and is slow on a loaded machine), and then goes past the end of
        // the log instead of to its start; it was seen to add a commit and
        // a half on a 2-core machine at load 10.
        let one_commit = 8 * (4096 + 24);
        let allowed = first + 4 * one_commit;
        assert!(wal_bytes(&path) <= allowed, "the log grew from {first} to {} bytes", wal_bytes(&path));
        let rows: i64 = writer.query_row("SELECT count(*) FROM t", [], |row| row.get(0)).unwrap();
        assert_eq!(rows, 75);
    }

    #[test]
    fn past_the_backstop_the_writer_checkpoints_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        // The thread is never asked: only the backstop keeps the log short.
        let (writer, checkpointer) = writer(&path, Thresholds { start: c_int::MAX, backstop: 30 });
        write(&writer, 200);
        assert_eq!(checkpointer.runs(), 0);
        assert!(wal_bytes(&path) < 60 * 4096, "the log grew to {} bytes", wal_bytes(&path));
        let rows: i64 = writer.query_row("SELECT count(*) FROM t", [], |row| row.get(0)).unwrap();
        assert_eq!(rows, 200);
    }
}
