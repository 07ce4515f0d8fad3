//! The operator's cockpit as the engine answers it: instances by status per
//! process and version, pending server items by age, starts and completions
//! over time, errors grouped by reason (incidents), and per activity of a
//! version how many instances are active, waiting and in error there.
//!
//! Every answer comes from aggregates the store keeps in the same
//! transaction as the change they count (SQLite: triggers, migration 9), or
//! from indexes, never from a walk of the instances: a million instances
//! answer as fast as ten. What a user sees follows the instance list's
//! rule for processes seen whole (View, Server Event, Admin); processes the
//! user sees only partly (View Participate) are left out, since their counts
//! would have to be made instance by instance.
//!
//! **Reasons.** An error's reason is its process version, activity, event
//! and its message's *pattern*: the message with every quoted value
//! (`'…'`, `"…"`, `` `…` ``) replaced by `'…'` and every number (a serial
//! `12_3`, a decimal `4.50`, an integer) by `#`, so that "HTTP 503 for
//! order 1042" and "HTTP 503 for order 7" are one incident and "HTTP 404
//! …" another only when its words differ (numbers masked, 503 and 404
//! are one reason too: the words around them tell them apart, or not).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::engine::instance::{InstanceStatus, Millis, ServerItem, TokenState};
use crate::engine::serial::Serial;
use crate::engine::storage::{Storage, Transaction, Visibility};
use crate::engine::{Engine, EngineError};

/// A minute of the clock: milliseconds since the epoch divided by 60,000.
/// The aggregates count by the minute a thing happened in.
pub const MINUTE: Millis = 60_000;
/// An hour of the clock: pending items are kept counted by the hour they
/// were created in.
pub const HOUR: Millis = 3_600_000;

/// How many instances of a process version are in one status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusCount {
    pub process: String,
    pub version: u32,
    pub status: InstanceStatus,
    pub n: u64,
}

/// The pending server items of one activity of a process version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PendingGroup {
    pub process: String,
    pub version: u32,
    pub activity: String,
    /// How many are pending.
    pub n: u64,
    /// The hour (milliseconds / [`HOUR`]) the oldest of them was created in.
    pub oldest_hour: i64,
    /// How many were created in each hour from the asked one on, oldest
    /// first (hours with none left out).
    pub recent: Vec<(i64, u64)>,
}

/// Instances of a process version started and completed in one minute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MinuteCount {
    pub process: String,
    pub version: u32,
    pub minute: i64,
    pub started: u64,
    pub completed: u64,
}

/// What makes errors one incident (see the module's *Reasons*).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ReasonKey {
    pub process: String,
    pub version: u32,
    pub activity: String,
    pub event: String,
    pub pattern: String,
}

/// Instances in error for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Incident {
    pub key: ReasonKey,
    pub count: u64,
    /// When the earliest and the latest of them failed.
    pub first_at: Millis,
    pub last_at: Millis,
    /// One of the instances (the lowest id) and its message as written.
    pub example_id: i64,
    pub example: String,
}

/// Pending server items by how long they have waited. Under a minute and
/// under an hour are exact (the youngest items, read from the index by
/// creation time); the bound at a day is kept to the hour of the clock,
/// which is what the aggregates count by (an item created at 10:30 counts
/// as under a day old until 10:00 the next day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct AgeHistogram {
    pub under_minute: u64,
    pub under_hour: u64,
    pub under_day: u64,
    pub older: u64,
}

impl AgeHistogram {
    pub fn total(&self) -> u64 {
        self.under_minute + self.under_hour + self.under_day + self.older
    }
}

/// The oldest pending server item of a process version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OldestWait {
    pub serial: Serial,
    pub activity: String,
    pub created_at: Millis,
}

/// One process version on the overview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionOverview {
    pub process: String,
    pub version: u32,
    /// Instances per status, in [`InstanceStatus::ALL`]'s order.
    pub counts: [u64; 5],
    pub pending: AgeHistogram,
    pub oldest: Option<OldestWait>,
}

impl VersionOverview {
    pub fn count(&self, status: InstanceStatus) -> u64 {
        InstanceStatus::ALL.iter().position(|s| *s == status).map_or(0, |i| self.counts[i])
    }
}

/// The overview: every process version the user sees whole, and the
/// incidents among them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Overview {
    /// When it was read (the engine's clock): ages are judged at it.
    pub now: Millis,
    pub versions: Vec<VersionOverview>,
    pub incidents: Vec<Incident>,
}

/// The span of the started/completed chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub enum Span {
    #[default]
    Hour,
    Day,
    Week,
}

impl Span {
    pub const ALL: [Span; 3] = [Span::Hour, Span::Day, Span::Week];

    pub fn words(self) -> &'static str {
        match self {
            Span::Hour => "Last hour",
            Span::Day => "Last day",
            Span::Week => "Last week",
        }
    }

    /// How many minutes the span covers and how many make one bar.
    fn minutes(self) -> (i64, i64) {
        match self {
            Span::Hour => (60, 1),
            Span::Day => (1440, 15),
            Span::Week => (7 * 1440, 60),
        }
    }
}

/// Starts and completions in one bucket of a [`Span`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Bucket {
    /// When the bucket begins.
    pub start: Millis,
    pub started: u64,
    pub completed: u64,
}

/// Instances started and completed over a span, in buckets oldest first
/// (every bucket present, empty ones with zeros).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throughput {
    pub span: Span,
    pub bucket_ms: Millis,
    pub buckets: Vec<Bucket>,
}

/// How many instances of a version stand at one activity.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ActivityCount {
    pub activity: String,
    /// Running there (its event's work under way).
    pub active: u64,
    /// Waiting on a pending server item there.
    pub waiting: u64,
    /// When the oldest of those waits began.
    pub oldest_wait: Option<Millis>,
    /// Failed there (the instance in Error).
    pub error: u64,
}

/// How many `Running` instances the diagram reads one by one for its
/// active counts: running is a moment between waits, so there are few; past
/// this the count says "at least".
pub const ACTIVE_READ_LIMIT: usize = 2_000;

/// The pattern of an error message (see the module's *Reasons*).
pub fn failure_pattern(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut chars = message.chars().peekable();
    let mut previous: Option<char> = None;
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' | '`' => {
                // A quote opens a value only where a word does not go on
                // (the apostrophe of "can't" stays).
                let opens = previous.is_none_or(|p| !p.is_alphanumeric());
                let rest: String = chars.clone().collect();
                match rest.find(c) {
                    Some(end) if opens => {
                        out.push_str("'…'");
                        for _ in rest[..end].chars() {
                            chars.next();
                        }
                        chars.next();
                        previous = Some(c);
                        continue;
                    }
                    _ => out.push(c),
                }
            }
            c if c.is_ascii_digit() && previous.is_none_or(|p| !p.is_alphabetic()) => {
                // A number: digits with `_`, `.` or `,` between them.
                while let Some(&next) = chars.peek() {
                    let joins = matches!(next, '_' | '.' | ',') && {
                        let mut ahead = chars.clone();
                        ahead.next();
                        ahead.peek().is_some_and(char::is_ascii_digit)
                    };
                    if next.is_ascii_digit() || joins {
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push('#');
            }
            c => out.push(c),
        }
        previous = Some(c);
    }
    out
}

impl<S: Storage> Engine<S> {
    /// Where the store's aggregates disagree with a full count of the rows
    /// they count, in words; empty when they agree. Reads whole tables:
    /// for tests and checks, never for a window.
    pub fn check_aggregates(&self) -> Result<Vec<String>, EngineError> {
        self.store.read(|tx| tx.aggregate_mismatches())
    }

    /// The overview as `user` sees it (see the module doc).
    pub fn overview(&self, user: &str) -> Result<Overview, EngineError> {
        let now = self.now();
        self.store.read(|tx| {
            let visibility = self.visibility(tx, user)?;
            let sees = |process: &str| visibility.all_of.iter().any(|p| p == process);
            let mut versions: BTreeMap<(String, u32), VersionOverview> = BTreeMap::new();
            for count in tx.status_counts()? {
                if count.n == 0 || !sees(&count.process) {
                    continue;
                }
                let slot = InstanceStatus::ALL.iter().position(|s| *s == count.status).unwrap_or(0);
                entry(&mut versions, &count.process, count.version).counts[slot] += count.n;
            }
            // Pending items: under a minute and under an hour exactly, from
            // the index by creation time; under a day from the hours counted
            // since the start of the hour a day ago; the rest are older.
            let exact =
                |tx: &mut dyn Transaction, since: Millis| -> Result<BTreeMap<(String, u32), u64>, EngineError> {
                    Ok(tx.pending_since(since)?.into_iter().map(|(p, v, n)| ((p, v), n)).collect())
                };
            let last_minute = exact(tx, now - MINUTE + 1)?;
            let last_hour = exact(tx, now - HOUR + 1)?;
            let mut oldest_hour: BTreeMap<(String, u32), i64> = BTreeMap::new();
            for group in tx.pending_groups(now.div_euclid(HOUR) - 23)? {
                if group.n == 0 || !sees(&group.process) {
                    continue;
                }
                let pending = &mut entry(&mut versions, &group.process, group.version).pending;
                let last_day: u64 = group.recent.iter().map(|(_, n)| n).sum();
                pending.under_day += last_day;
                pending.older += group.n.saturating_sub(last_day);
                let oldest = oldest_hour.entry((group.process.clone(), group.version)).or_insert(i64::MAX);
                *oldest = (*oldest).min(group.oldest_hour);
            }
            for ((process, version), pending) in versions.iter_mut().map(|(key, v)| (key.clone(), &mut v.pending)) {
                let minute = last_minute.get(&(process.clone(), version)).copied().unwrap_or(0);
                let hour = last_hour.get(&(process, version)).copied().unwrap_or(0).max(minute);
                pending.under_minute = minute;
                pending.under_hour = hour - minute;
                pending.under_day = pending.under_day.saturating_sub(hour);
            }
            for ((process, version), hour) in oldest_hour {
                if let Some(item) = tx.pending_oldest(&process, version, None, hour * HOUR)? {
                    entry(&mut versions, &process, version).oldest =
                        Some(OldestWait { serial: item.serial, activity: item.activity, created_at: item.created_at });
                }
            }
            let incidents = incidents_of(tx, &visibility)?;
            Ok(Overview { now, versions: versions.into_values().collect(), incidents })
        })
    }

    /// Instances started and completed over `span` up to now, of one
    /// process (and version) or of every process the user sees whole.
    pub fn throughput(
        &self,
        user: &str,
        process: Option<&str>,
        version: Option<u32>,
        span: Span,
    ) -> Result<Throughput, EngineError> {
        let (minutes, per_bucket) = span.minutes();
        let now_minute = self.now().div_euclid(MINUTE);
        // Buckets end with the current minute's bucket.
        let last = now_minute.div_euclid(per_bucket);
        let first = last - minutes / per_bucket + 1;
        let mut buckets: Vec<Bucket> =
            (first..=last).map(|b| Bucket { start: b * per_bucket * MINUTE, started: 0, completed: 0 }).collect();
        self.store.read(|tx| {
            let visibility = self.visibility(tx, user)?;
            for row in tx.instance_minutes(first * per_bucket)? {
                let wanted = visibility.all_of.contains(&row.process)
                    && process.is_none_or(|p| p == row.process)
                    && version.is_none_or(|v| v == row.version);
                let index = row.minute.div_euclid(per_bucket) - first;
                if let (true, Ok(index)) = (wanted, usize::try_from(index))
                    && let Some(bucket) = buckets.get_mut(index)
                {
                    bucket.started += row.started;
                    bucket.completed += row.completed;
                }
            }
            Ok(())
        })?;
        Ok(Throughput { span, bucket_ms: per_bucket * MINUTE, buckets })
    }

    /// The incidents `user` sees: errors grouped by reason, most frequent
    /// first.
    pub fn incidents(&self, user: &str) -> Result<Vec<Incident>, EngineError> {
        self.store.read(|tx| {
            let visibility = self.visibility(tx, user)?;
            incidents_of(tx, &visibility)
        })
    }

    /// The ids of the instances in error for one reason, oldest failure
    /// first: what Retry all and Stop all act on.
    pub fn incident_instances(&self, user: &str, key: &ReasonKey) -> Result<Vec<i64>, EngineError> {
        self.store.read(|tx| {
            let visibility = self.visibility(tx, user)?;
            if !visibility.all_of.contains(&key.process) {
                return Ok(Vec::new());
            }
            tx.failure_ids(key)
        })
    }

    /// Per activity of a process version, how many instances are active,
    /// waiting and in error there: the diagram's counts. Activities with
    /// none are left out.
    pub fn activity_counts(&self, user: &str, process: &str, version: u32) -> Result<Vec<ActivityCount>, EngineError> {
        self.store.read(|tx| {
            let visibility = self.visibility(tx, user)?;
            if !visibility.all_of.iter().any(|p| p == process) {
                return Ok(Vec::new());
            }
            let mut counts: BTreeMap<String, ActivityCount> = BTreeMap::new();
            for group in tx.pending_groups(i64::MAX)? {
                if group.process == process && group.version == version && group.n > 0 {
                    let oldest =
                        tx.pending_oldest(process, version, Some(&group.activity), group.oldest_hour * HOUR)?;
                    let count = counts
                        .entry(group.activity.clone())
                        .or_insert_with(|| ActivityCount { activity: group.activity.clone(), ..Default::default() });
                    count.waiting += group.n;
                    count.oldest_wait = oldest.map(|item| item.created_at);
                }
            }
            for incident in tx.failure_groups()? {
                if incident.key.process == process && incident.key.version == version {
                    let activity = incident.key.activity.clone();
                    counts
                        .entry(activity.clone())
                        .or_insert_with(|| ActivityCount { activity, ..Default::default() })
                        .error += incident.count;
                }
            }
            for (name, _) in self.active_at(tx, process, version)? {
                counts
                    .entry(name.clone())
                    .or_insert_with(|| ActivityCount { activity: name, ..Default::default() })
                    .active += 1;
            }
            Ok(counts.into_values().collect())
        })
    }

    /// The running instances of a process version with a token at work at
    /// an activity, as (activity name, instance id): the diagram's active
    /// counts, and what its activity filter lists beside those waiting and
    /// failed there. Running instances are few (running is the moment
    /// between two waits): found from the index by status (the claims'
    /// list), their tokens read one by one, at most [`ACTIVE_READ_LIMIT`].
    pub(super) fn active_at(
        &self,
        tx: &mut dyn Transaction,
        process: &str,
        version: u32,
    ) -> Result<Vec<(String, i64)>, EngineError> {
        let compiled = self.compiled(tx, process, version)?;
        let mut active = Vec::new();
        for running in tx.running_instances()?.into_iter().take(ACTIVE_READ_LIMIT) {
            let Some(instance) = tx.instance(running.id)? else { continue };
            if instance.process != process || instance.version != version {
                continue;
            }
            for token in &instance.flow.tokens {
                if matches!(token.state, TokenState::Ready | TokenState::RunningOutside)
                    && let Some(activity) = compiled.activities.get(token.activity)
                {
                    active.push((activity.name.clone(), instance.id));
                }
            }
        }
        Ok(active)
    }
}

fn entry<'a>(
    versions: &'a mut BTreeMap<(String, u32), VersionOverview>,
    process: &str,
    version: u32,
) -> &'a mut VersionOverview {
    versions.entry((process.to_owned(), version)).or_insert_with(|| VersionOverview {
        process: process.to_owned(),
        version,
        counts: [0; 5],
        pending: AgeHistogram::default(),
        oldest: None,
    })
}

fn incidents_of(tx: &mut dyn Transaction, visibility: &Visibility) -> Result<Vec<Incident>, EngineError> {
    let mut incidents: Vec<Incident> =
        tx.failure_groups()?.into_iter().filter(|i| visibility.all_of.contains(&i.key.process)).collect();
    incidents.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    Ok(incidents)
}

/// The oldest pending item of `items` (by creation, then serial).
pub(crate) fn oldest_of<'a>(items: impl Iterator<Item = &'a ServerItem>) -> Option<&'a ServerItem> {
    items.min_by_key(|item| (item.created_at, item.serial.instance_id, item.serial.destination_id))
}

#[cfg(test)]
mod tests {
    use super::failure_pattern;

    #[test]
    fn a_pattern_masks_numbers_serials_and_quoted_values() {
        let cases = [
            ("HTTP 503 for order 1042", "HTTP # for order #"),
            ("serial 12_3 not found", "serial # not found"),
            ("field 'amount' is 4.50, want \"x y\"", "field '…' is #, want '…'"),
            ("can't reach `host:8080`", "can't reach '…'"),
            ("item2 failed", "item2 failed"),
            ("no digits at all", "no digits at all"),
            ("1,000,000 rows", "# rows"),
            ("unclosed 'quote 7", "unclosed 'quote #"),
        ];
        for (message, pattern) in cases {
            assert_eq!(failure_pattern(message), pattern, "{message}");
        }
    }
}
