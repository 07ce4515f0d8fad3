//! Who runs an instance's outside work, and when another runner may take it
//! over.
//!
//! While an HTTP request or an asynchronous script that can call out runs
//! outside any transaction, its instance is `Running` and carries a
//! **claim**: the [`RunnerId`] of the engine doing the work and a *lease*,
//! the moment the claim lapses unless its runner is still heard from
//! (written with every step, stretched by the longest request's timeout).
//! A runner that keeps running says so with a **heartbeat**: a row of its
//! own that its runtime writes again every few seconds while one of its
//! threads runs such work ([`Engine::running_outside`]), each time with a
//! new expiry (see `crate::runtime`).
//!
//! [`Engine::running_outside`]: crate::engine::Engine::running_outside
//!
//! Recovery takes a claim over only once *both* have run out ([`abandoned`]):
//! the lease, which covers a runner that has not beaten yet (its first beat
//! comes a tick after its first claim) or never does (an engine used without
//! a runtime), and the runner's last heartbeat, which keeps a live runner's
//! work its own for as long as it runs. Nothing here asks the operating
//! system whether a process lives: a runner id means the same on every host
//! that shares the database.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::engine::instance::Millis;
use crate::engine::storage::RunningInstance;

/// One engine's name as a runner: random, so that runners on one database
/// (threads of other processes, later other hosts) never share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunnerId(i64);

impl RunnerId {
    /// A new random id. Should the operating system have no random bytes to
    /// give, one made of the time and the process id is still unlikely to
    /// meet another runner's.
    pub fn random() -> RunnerId {
        let bits = getrandom::u64().unwrap_or_else(|_| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|elapsed| elapsed.as_nanos() as u64)
                .unwrap_or_default();
            nanos.rotate_left(17) ^ u64::from(std::process::id())
        });
        RunnerId(i64::from_ne_bytes(bits.to_ne_bytes()))
    }

    /// The id as stored.
    pub fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for RunnerId {
    fn from(stored: i64) -> RunnerId {
        RunnerId(stored)
    }
}

impl std::fmt::Display for RunnerId {
    /// Sixteen hex digits: the same width for every id, easy to compare by eye.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// Whether recovery may take this claim over at `now`: its lease has run
/// out and its runner has not been heard from since its last heartbeat's
/// expiry (or never beat at all).
pub fn abandoned(claim: &RunningInstance, now: Millis) -> bool {
    held_until(claim).is_none_or(|until| until < now)
}

/// The last moment at which the claim still holds: the later of its lease
/// and its runner's heartbeat expiry.
pub fn held_until(claim: &RunningInstance) -> Option<Millis> {
    match (claim.lease_until, claim.runner_expires_at) {
        (Some(lease), Some(beat)) => Some(lease.max(beat)),
        (lease, beat) => lease.or(beat),
    }
}

/// One run of outside work, counted while it lasts: also when it ends in
/// a panic, so that a thread that died is not beaten for.
pub(crate) struct Running<'e>(&'e AtomicUsize);

impl<'e> Running<'e> {
    pub(crate) fn enter(count: &'e AtomicUsize) -> Running<'e> {
        count.fetch_add(1, Ordering::SeqCst);
        Running(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(lease_until: Option<Millis>, runner_expires_at: Option<Millis>) -> RunningInstance {
        RunningInstance { id: 1, runner: Some(RunnerId(7)), lease_until, runner_expires_at }
    }

    #[test]
    fn a_claim_is_abandoned_only_once_its_lease_and_its_runners_heartbeat_have_run_out() {
        // (lease, heartbeat expiry, now, abandoned)
        let cases = [
            (Some(100), None, 100, false),
            (Some(100), None, 101, true),
            (Some(100), Some(200), 150, false),
            (Some(100), Some(200), 201, true),
            (Some(300), Some(200), 250, false),
            (Some(300), Some(200), 301, true),
            (None, Some(200), 200, false),
            (None, None, 0, true),
        ];
        for (lease, beat, now, expected) in cases {
            assert_eq!(abandoned(&claim(lease, beat), now), expected, "lease {lease:?}, beat {beat:?}, at {now}");
        }
    }

    #[test]
    fn runner_ids_are_random_and_shown_at_one_width() {
        let (a, b) = (RunnerId::random(), RunnerId::random());
        assert_ne!(a, b);
        assert_eq!(RunnerId(1).to_string(), "0000000000000001");
        assert_eq!(RunnerId(-1).to_string(), "ffffffffffffffff");
        assert_eq!(RunnerId::from(a.get()), a);
    }
}
