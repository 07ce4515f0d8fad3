//! Timers: the due times of escalations and timer events, kept in the
//! database so that they survive every restart.
//!
//! A **wait** starts when a server item is created (an asynchronous server
//! event, an asynchronous HTTP request, a timer event). In the same decision
//! the executor arms one timer per escalation of the item's activity, each
//! due from the item's creation, and one for a timer event's own wait
//! ([`Effect::TimerArmed`]). Whatever closes the item (a callback, a go-to, a
//! firing that finishes it) disarms its timers in the same transaction
//! ([`Effect::TimersDisarmed`]), so a timer that is armed always belongs to
//! an open item.
//!
//! Firing a timer is a command like any other (`machine::Command::Fire`),
//! judged by the transition table on the instance's status and the item's
//! phase and committed in one transaction with its effects, among them the
//! timer's own row ([`Effect::TimerChanged`]): fired, or armed again for a
//! repeat or a notification's next attempt. The firing reads the row in its
//! transaction and acts only while it is armed and due, which is how two
//! runtimes on one database never fire one timer twice: the second one's
//! transaction finds it fired.
//!
//! [`Effect::TimerArmed`]: crate::engine::Effect::TimerArmed
//! [`Effect::TimersDisarmed`]: crate::engine::Effect::TimersDisarmed
//! [`Effect::TimerChanged`]: crate::engine::Effect::TimerChanged

use std::fmt;

use serde::Serialize;

use crate::engine::instance::{InstanceStatus, Millis};
use crate::engine::serial::Serial;

/// Where a timer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum TimerState {
    /// Waiting for its due time (a notification being sent is armed too,
    /// with its due time moved past the send: see [`NOTIFY_CLAIM_MS`]).
    Armed,
    /// Fired for the last time.
    Fired,
    /// Its item closed before it fell due.
    Disarmed,
}

impl TimerState {
    pub const ALL: [TimerState; 3] = [TimerState::Armed, TimerState::Fired, TimerState::Disarmed];

    /// The state as stored and shown.
    pub fn name(self) -> &'static str {
        match self {
            TimerState::Armed => "Armed",
            TimerState::Fired => "Fired",
            TimerState::Disarmed => "Disarmed",
        }
    }

    /// The state of a stored name.
    pub fn from_name(name: &str) -> Option<TimerState> {
        TimerState::ALL.into_iter().find(|state| state.name() == name)
    }
}

impl fmt::Display for TimerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One timer row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timer {
    /// Given by the store when the timer is armed.
    pub id: i64,
    pub instance_id: i64,
    /// The item whose wait it guards: `<instance_id>_<serial_id>`.
    pub serial_id: i64,
    /// The escalation's index among its activity's escalations; `None` for
    /// a timer event's own wait.
    pub escalation: Option<usize>,
    pub due_at: Millis,
    /// How often it has fired (a repeat fires up to its `times`; a
    /// notification counts its attempts).
    pub fired_count: u32,
    pub state: TimerState,
}

impl Timer {
    pub fn serial(&self) -> Serial {
        Serial { instance_id: self.instance_id, destination_id: self.serial_id }
    }
}

/// Which due timers `Transaction::due_timers` reads: a page of the
/// ticker's walk through what is due.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTimers {
    /// Due at or before this time.
    pub by: Millis,
    /// After this (due time, id) in the walk's order: the last one of the
    /// page before.
    pub after: Option<(Millis, i64)>,
    /// Instances in these statuses hold their timers (the table's held
    /// cells): left out, so that the walk does not meet them again and again.
    pub held: Vec<InstanceStatus>,
    /// At most this many; 0 for all.
    pub limit: usize,
}

/// A timer a person reads about: what it belongs to and what it will do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingTimer {
    pub id: i64,
    pub serial: String,
    /// The escalation's name, or the timer event's.
    pub name: String,
    /// What it does when it fires, in words ("finish", "go to `Manual`",
    /// "repeat (2 of 3 done)", "notify", "fail", "end the wait").
    pub action: String,
    pub due_at: Millis,
}

/// A timer of an instance with the wait it guards (or guarded): the item's
/// activity run and event. Every timer an instance has had, armed, fired or
/// disarmed, so that a front end can say per activity when each escalation
/// fires, or that it fired, and when a timer event completes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceTimer {
    pub timer: Timer,
    /// The activity run (`ActivityRecord::destination_id`) of its item.
    pub activity_destination_id: i64,
    /// Its item's event among the activity's events.
    pub event_index: usize,
}

/// How long a notification's firing holds its timer before another runtime
/// may send it again: the firing moves the timer's due time this far (plus
/// the request's timeout) past the moment it is sent, in the transaction
/// that claims it. A runtime killed while sending leaves it to be sent
/// again once that has passed (at least once, as every request).
pub const NOTIFY_CLAIM_MS: Millis = 60_000;

/// A refused notification is tried again after this long, doubled at each
/// attempt up to [`NOTIFY_RETRY_MAX_MS`], for as long as its item stays
/// open: it is never dropped.
pub const NOTIFY_RETRY_FIRST_MS: Millis = 60_000;
pub const NOTIFY_RETRY_MAX_MS: Millis = 3_600_000;

/// When a notification that has been tried `attempts` times and refused
/// each time is tried again, counted from `now`.
pub fn notify_retry_at(now: Millis, attempts: u32) -> Millis {
    let doublings = attempts.saturating_sub(1).min(16);
    let wait = NOTIFY_RETRY_FIRST_MS.saturating_mul(1 << doublings).min(NOTIFY_RETRY_MAX_MS);
    now.saturating_add(wait)
}

/// The user a firing acts as, as the audit trail and the item's
/// `closed_by` say: an escalation's deadline, or a timer event's timer. A
/// callback after a deadline finished the item is answered "already
/// finished at … by deadline".
pub const DEADLINE_USER: &str = "deadline";
pub const TIMER_USER: &str = "timer";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_notification_waits_longer_each_time_up_to_an_hour() {
        let waits: Vec<Millis> = (1..=9).map(|attempts| notify_retry_at(0, attempts) / 60_000).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(notify_retry_at(0, u32::MAX), NOTIFY_RETRY_MAX_MS);
    }

    #[test]
    fn states_read_back_by_their_names() {
        for state in TimerState::ALL {
            assert_eq!(TimerState::from_name(state.name()), Some(state));
        }
        assert_eq!(TimerState::from_name("armed"), None);
    }
}
