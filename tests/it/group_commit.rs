//! Group commit without savepoints, through the store's public API: calls
//! that meet in one batch share one transaction. A call refused before it
//! wrote anything leaves the others alone; a call that fails after writing
//! gives the whole batch up, and every other member is told to call again.
//!
//! Two calls are brought into one batch without sleeping: the first call's
//! work holds the writer until the second thread is about to call `write`,
//! then yields a while so that it queues. Whether they really met is not
//! assumed but checked: the second call's work looks through a read
//! connection, which sees only committed data, for the first call's grant.
//! An attempt where the second call came too late is run again.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use flowdesk::engine::{EngineError, Storage, StorageErrorKind, Transaction, VersionRecord};
use flowdesk::model::Right;
use flowdesk::store::{Durability, SqliteStore};

const PROCESS: &str = "p";

/// Attempts at bringing two calls into one batch before the test gives up.
const ATTEMPTS: usize = 100;

/// Yields the first call makes after the second thread said it is calling,
/// leaving it time to queue for the writer.
const YIELDS: usize = 10_000;

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("group.db"), Durability::Normal).unwrap();
    let version = VersionRecord {
        process: PROCESS.into(),
        version: 1,
        definition_json: "{}".into(),
        deployed_at: 0,
        deployed_by: "admin".into(),
    };
    store.write(|tx| tx.insert_version(&version)).unwrap();
    (dir, store)
}

fn committed_rights(store: &SqliteStore, user: &str) -> Vec<Right> {
    store.read(|tx| tx.rights(PROCESS, user)).unwrap()
}

/// What a pair of calls in one batch returned.
struct Pair<F, S> {
    first: Result<(), EngineError>,
    second: Result<S, EngineError>,
    /// What the second call's thread saw committed right after its call returned.
    after_second: F,
}

/// Runs a call that grants View to `first_user`, and `second` as a call queued
/// behind it in the same batch. Returns `None` when the second call did not
/// meet the first in one batch (the first had committed already).
fn in_one_batch<S: Send, F: Send>(
    store: &SqliteStore,
    first_user: &str,
    second: impl Fn(&mut dyn Transaction) -> Result<S, EngineError> + Sync,
    after_second: impl Fn() -> F + Sync,
) -> Option<Pair<F, S>> {
    let first_working = AtomicBool::new(false);
    let second_calling = AtomicBool::new(false);
    let shared = AtomicBool::new(false);
    let pair = std::thread::scope(|scope| {
        let first = scope.spawn(|| {
            store.write(|tx| {
                tx.grant(PROCESS, first_user, Right::View)?;
                first_working.store(true, Ordering::SeqCst);
                while !second_calling.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                for _ in 0..YIELDS {
                    std::thread::yield_now();
                }
                Ok(())
            })
        });
        let second = scope.spawn(|| {
            while !first_working.load(Ordering::SeqCst) {
                std::thread::yield_now();
            }
            second_calling.store(true, Ordering::SeqCst);
            let result = store.write(|tx| {
                // Not committed yet only if this call shares the first one's transaction.
                let committed = store.read(|snapshot| snapshot.rights(PROCESS, first_user))?;
                shared.store(committed.is_empty(), Ordering::SeqCst);
                second(tx)
            });
            (result, after_second())
        });
        let (second, after_second) = second.join().unwrap();
        Pair { first: first.join().unwrap(), second, after_second }
    });
    shared.load(Ordering::SeqCst).then_some(pair)
}

static ATTEMPT: AtomicUsize = AtomicUsize::new(0);

/// Runs [`in_one_batch`] until the two calls meet, with fresh users each time.
fn until_in_one_batch<S: Send, F: Send>(
    store: &SqliteStore,
    second: impl Fn(&mut dyn Transaction, &str, &str) -> Result<S, EngineError> + Sync,
    after_second: impl Fn(&str, &str) -> F + Sync,
) -> (String, String, Pair<F, S>) {
    for _ in 0..ATTEMPTS {
        // Users no earlier attempt (or round) touched.
        let attempt = ATTEMPT.fetch_add(1, Ordering::SeqCst);
        let first_user = format!("first-{attempt}");
        let second_user = format!("second-{attempt}");
        let pair = in_one_batch(
            store,
            &first_user,
            |tx| second(tx, &first_user, &second_user),
            || after_second(&first_user, &second_user),
        );
        if let Some(pair) = pair {
            return (first_user, second_user, pair);
        }
    }
    panic!("in {ATTEMPTS} attempts, a second call never joined the batch of a first one that waited for it");
}

#[test]
fn members_of_a_batch_share_one_transaction() {
    let (_dir, store) = store();
    let (first_user, second_user, pair) = until_in_one_batch(
        &store,
        |tx, first_user, second_user| {
            // The first member's uncommitted grant is visible to the second.
            let seen = tx.rights(PROCESS, first_user)?;
            tx.grant(PROCESS, second_user, Right::Start)?;
            Ok(seen)
        },
        |first_user, second_user| (committed_rights(&store, first_user), committed_rights(&store, second_user)),
    );
    pair.first.unwrap();
    assert_eq!(pair.second.unwrap(), [Right::View]);
    // Each member returns only once the batch holding its work is committed.
    assert_eq!(pair.after_second, (vec![Right::View], vec![Right::Start]));
    assert_eq!(committed_rights(&store, &first_user), [Right::View]);
    assert_eq!(committed_rights(&store, &second_user), [Right::Start]);
}

#[test]
fn a_member_refused_before_writing_leaves_the_others_committed() {
    let (_dir, store) = store();
    let (first_user, second_user, pair) = until_in_one_batch(
        &store,
        |tx, _, second_user| -> Result<(), EngineError> {
            // Reads, decides, refuses: nothing written.
            tx.rights(PROCESS, second_user)?;
            Err(EngineError::PermissionDenied {
                user: second_user.to_owned(),
                process: PROCESS.to_owned(),
                right: Right::Admin,
            })
        },
        |first_user, _| committed_rights(&store, first_user),
    );
    pair.first.unwrap();
    match pair.second {
        Err(EngineError::PermissionDenied { user, process, right }) => {
            assert_eq!((user.as_str(), process.as_str(), right), (second_user.as_str(), PROCESS, Right::Admin));
        }
        other => panic!("the refusal should come back as it was, got {other:?}"),
    }
    // The refused call returned after the batch it was in was committed.
    assert_eq!(pair.after_second, [Right::View]);
    assert_eq!(committed_rights(&store, &first_user), [Right::View]);
    assert!(committed_rights(&store, &second_user).is_empty());
}

#[test]
fn a_member_failing_after_writing_rolls_the_batch_back_and_the_others_are_told_to_call_again() {
    let (_dir, store) = store();
    let (first_user, second_user, pair) = until_in_one_batch(
        &store,
        |tx, _, second_user| -> Result<(), EngineError> {
            tx.grant(PROCESS, second_user, Right::Start)?;
            Err(EngineError::Internal("refused after writing".to_owned()))
        },
        |first_user, second_user| (committed_rights(&store, first_user), committed_rights(&store, second_user)),
    );
    // The failing call gets its own error.
    match pair.second {
        Err(EngineError::Internal(message)) => assert_eq!(message, "refused after writing"),
        other => panic!("the failing member should get its own error, got {other:?}"),
    }
    // The other member is not acknowledged, and is told why and what to do.
    match pair.first {
        Err(EngineError::Storage(err)) => {
            assert!(err.message.contains("call again"), "{err}");
            assert_eq!(err.kind, StorageErrorKind::Conflict, "its own work was sound: calling again can succeed");
        }
        other => panic!("the other member should be told to call again, got {other:?}"),
    }
    // Nothing of the batch was saved.
    assert_eq!(pair.after_second, (vec![], vec![]));
    assert!(committed_rights(&store, &first_user).is_empty());
    assert!(committed_rights(&store, &second_user).is_empty());

    // The store keeps working: alone, and in a batch again.
    store.write(|tx| tx.grant(PROCESS, &first_user, Right::View)).unwrap();
    assert_eq!(committed_rights(&store, &first_user), [Right::View]);
    let (first_user, second_user, pair) =
        until_in_one_batch(&store, |tx, _, second_user| tx.grant(PROCESS, second_user, Right::Start), |_, _| ());
    pair.first.unwrap();
    pair.second.unwrap();
    assert_eq!(committed_rights(&store, &first_user), [Right::View]);
    assert_eq!(committed_rights(&store, &second_user), [Right::Start]);
}
