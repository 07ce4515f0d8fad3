//! An in-memory [`Storage`]: the engine's storage contract kept in plain
//! Rust collections, with nothing of SQLite.
//!
//! It is here for two reasons. It shows that the engine needs nothing
//! SQLite-specific: the engine's scenario suite (the conformance suite,
//! `tests/it/engine_scenarios.rs` and the modules it names) runs every
//! scenario on it and on [`SqliteStore`](super::SqliteStore) alike. And it
//! is the reference a new backend is read against: each method says in a
//! few lines what `sql.rs` says with indexes and query plans (the same
//! orders, filters, visibility, cursors and search).
//!
//! How it keeps the contract: the committed state is one value behind an
//! `Arc`, never changed in place. A read takes the current one and reads it
//! without a lock: a snapshot, which never waits for a writer and never sees
//! half of a write (as a reader of SQLite's write-ahead log). A write holds
//! the write lock and works on its own copy, made on its first change, and
//! the copy becomes the committed state only when the work returns `Ok`: a
//! refusal, an error or a panic leaves nothing behind. Rows are kept behind
//! `Arc`s, so a copy copies pointers, not instances; still, it copies every
//! map once per write and keeps everything in memory, so it is for tests and
//! small embeddings, not for a million instances. Nothing survives the
//! process: "durably" means until the last handle is dropped.
//!
//! A clone of a `MemoryStore` is another handle on the same data, as a
//! second process opening the same database file would have.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::RunnerBeat;
use super::search;
use crate::engine::instance::ActivityStatus;
use crate::engine::machine::{Effect, RecordedFinish};
use crate::engine::overview::{
    HOUR, Incident, MINUTE, MinuteCount, PendingGroup, ReasonKey, StatusCount, failure_pattern,
};
use crate::engine::{
    ActivityRecord, AuditEntry, DueTimers, EngineError, Instance, InstanceColumn, InstanceFilter, InstanceStatus,
    InstanceSummary, ItemFilter, ItemState, ItemStatus, LineResult, Millis, ProcessSummary, RunnerId, RunningInstance,
    Serial, ServerItem, Storage, Timer, TimerState, Transaction, VersionRecord, Visibility,
};
use crate::model::Right;

/// A store that keeps everything in memory; clones share it.
#[derive(Clone, Default)]
pub struct MemoryStore {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    /// The committed state. Held only to take or swap the `Arc`.
    committed: Mutex<Arc<State>>,
    /// Held by the one write in progress, for all of its work.
    writer: Mutex<()>,
    /// The next instance id to hand out, outside the transactional state:
    /// an id handed to work that was then rolled back (whose scripts may
    /// have shown it to someone) is not handed out again, as in the SQLite
    /// store.
    next_id: AtomicI64,
    /// Commits so far: the store's change counter (`Storage::data_version`).
    commits: AtomicU64,
}

/// Everything the store holds; each map is keyed as its table's primary key.
#[derive(Clone, Default)]
struct State {
    /// Process name → its default version.
    processes: BTreeMap<String, u32>,
    versions: BTreeMap<(String, u32), Arc<VersionRecord>>,
    /// (process, user, the right's key) → the right. Keyed by the key's text
    /// so that rights list in the order the SQLite store sorts them.
    rights: BTreeMap<(String, String, &'static str), Right>,
    instances: BTreeMap<i64, Arc<Instance>>,
    /// The highest instance id ever stored (SQLite's `AUTOINCREMENT` counter).
    last_instance_id: i64,
    /// (instance id, serial id) → the item.
    items: BTreeMap<(i64, i64), Arc<ServerItem>>,
    /// Each instance's history, one record per write, oldest first.
    history: BTreeMap<i64, Arc<Vec<HistoryRecord>>>,
    /// (instance id, user) of each participant other than the originator.
    participants: BTreeSet<(i64, String)>,
    /// Runner → when its last heartbeat runs out.
    runners: BTreeMap<RunnerId, Millis>,
    /// (instance id, timer id) → the timer: an instance's timers are a
    /// range, as `timers_by_item` makes them in SQLite.
    timers: BTreeMap<(i64, i64), Timer>,
    /// The highest timer id handed out.
    last_timer_id: i64,
}

/// What one write added to an instance's history (`sql.rs` keeps the same
/// as one JSON row).
#[derive(Clone, Default)]
struct HistoryRecord {
    audit: Vec<AuditEntry>,
    started: Vec<ActivityRecord>,
    closed: Vec<(i64, ActivityStatus, Millis)>,
    lines: Vec<LineResult>,
}

impl HistoryRecord {
    /// The record of a decision's effects, or `None` if they add nothing to
    /// the history.
    fn of(effects: &[Effect]) -> Option<HistoryRecord> {
        let mut record = HistoryRecord::default();
        for effect in effects {
            match effect {
                Effect::Audit(entry) => record.audit.push(entry.clone()),
                Effect::ActivityStarted { record: started, .. } => record.started.push(started.clone()),
                Effect::ActivityClosed { destination_id, status, at } => {
                    record.closed.push((*destination_id, *status, *at))
                }
                Effect::LineEvaluated(line) => record.lines.push(line.clone()),
                _ => {}
            }
        }
        effects.iter().any(Effect::is_history).then_some(record)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> MemoryStore {
        MemoryStore::default()
    }

    fn committed(&self) -> Arc<State> {
        self.shared.committed.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Writes the runner's heartbeat, new or again (what a runtime does
    /// every few seconds while its engine runs outside work).
    pub fn beat_runner(&self, beat: &RunnerBeat) -> Result<(), EngineError> {
        self.change(|state| {
            state.runners.insert(beat.id, beat.expires_at);
        });
        Ok(())
    }

    /// Removes the runner's heartbeat: its claims then hold only until their
    /// leases run out.
    pub fn forget_runner(&self, runner: RunnerId) -> Result<(), EngineError> {
        self.change(|state| {
            state.runners.remove(&runner);
        });
        Ok(())
    }

    /// Applies a change of the store's own (outside the engine's
    /// `Transaction`) as one write.
    fn change(&self, change: impl FnOnce(&mut State)) {
        let _writing = self.shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut state = self.committed();
        change(Arc::make_mut(&mut state));
        *self.shared.committed.lock().unwrap_or_else(PoisonError::into_inner) = state;
        self.shared.commits.fetch_add(1, Ordering::SeqCst);
    }
}

impl Storage for MemoryStore {
    fn write<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        // Poisoned only by a write that panicked, which changed nothing.
        let _writing = self.shared.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let mut tx = MemoryTransaction { state: self.committed(), next_id: &self.shared.next_id };
        let result = work(&mut tx)?;
        *self.shared.committed.lock().unwrap_or_else(PoisonError::into_inner) = tx.state;
        // Counted under the write lock, after the state is in: a watcher
        // that sees the new count reads the new state.
        self.shared.commits.fetch_add(1, Ordering::SeqCst);
        Ok(result)
    }

    fn read<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError> {
        // What a read writes goes to a copy of its own, and is dropped with it.
        work(&mut MemoryTransaction { state: self.committed(), next_id: &self.shared.next_id })
    }

    // No `read_cancellable` of its own: the trait's looks at the token
    // before the read begins, and a read here takes microseconds on a
    // snapshot and waits for nothing, so there is nothing to stop.

    fn data_version(&self) -> Result<u64, EngineError> {
        Ok(self.shared.commits.load(Ordering::SeqCst))
    }
}

/// The engine's storage operations on one snapshot of the state; the first
/// change copies it.
struct MemoryTransaction<'s> {
    state: Arc<State>,
    next_id: &'s AtomicI64,
}

impl MemoryTransaction<'_> {
    fn state(&self) -> &State {
        &self.state
    }

    fn state_mut(&mut self) -> &mut State {
        Arc::make_mut(&mut self.state)
    }
}

/// The engine broke one of the store's keys (a row inserted twice): a bug,
/// which the SQLite store reports as a failed constraint.
fn duplicate(what: String) -> EngineError {
    EngineError::Internal(format!("{what} is stored already"))
}

impl State {
    /// Whether `user` took part in the instance: started it, or acted on it.
    fn took_part(&self, instance_id: i64, user: &str) -> bool {
        self.participants.contains(&(instance_id, user.to_owned()))
            || self.instances.get(&instance_id).is_some_and(|instance| instance.originator == user)
    }

    /// Whether `visibility` shows a row of `process` that belongs to the
    /// instance `instance_id`.
    fn visible(&self, visibility: &Visibility, process: &str, instance_id: i64) -> bool {
        visibility.all_of.iter().any(|p| p == process)
            || (visibility.participated_of.iter().any(|p| p == process)
                && self.took_part(instance_id, &visibility.user))
    }

    /// The instances of the list that match `filter` and `visibility`, in no
    /// particular order.
    fn listed<'a>(
        &'a self,
        visibility: &'a Visibility,
        filter: &'a InstanceFilter,
    ) -> impl Iterator<Item = &'a Instance> + 'a {
        let search = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
        // A search matches the folio (contains, ignoring case) or, if it is
        // a number, the id.
        let id = search.and_then(|s| s.parse::<i64>().ok());
        let needle = search.map(search::fold);
        self.instances.values().map(Arc::as_ref).filter(move |instance| {
            self.visible(visibility, &instance.process, instance.id)
                && filter.process.as_ref().is_none_or(|p| *p == instance.process)
                && (filter.process.is_none() || filter.version.is_none_or(|v| v == instance.version))
                && (filter.process.is_none()
                    || filter
                        .activity
                        .as_ref()
                        .is_none_or(|a| self.stands_at(instance, a) || filter.active_at.contains(&instance.id)))
                && filter.status.is_none_or(|s| s == instance.status)
                && filter.version.is_none_or(|v| v == instance.version)
                && filter.started.contains(instance.started_at)
                && (filter.ended.is_open()
                    || (instance.status == InstanceStatus::Completed && filter.ended.contains(instance.updated_at)))
                && filter.fields.iter().all(|condition| {
                    condition.test.as_ref().is_some_and(|test| test.matches(instance.data.get(&condition.field)))
                })
                && needle.as_deref().is_none_or(|needle| {
                    id == Some(instance.id) || search::contains_ignoring_case(&instance.folio, needle)
                })
                && (!filter.overdue || self.due_at(instance.id, None).is_some_and(|due| due <= filter.now))
        })
    }

    /// Whether the instance waits on a pending item at `activity` or failed
    /// there: the list's activity filter.
    fn stands_at(&self, instance: &Instance, activity: &str) -> bool {
        let failed_there = instance.status == InstanceStatus::Error
            && instance.flow.failure.as_ref().is_some_and(|f| f.activity == activity);
        failed_there
            || self.items_of(instance.id).any(|item| item.status == ItemStatus::Pending && item.activity == activity)
    }

    fn history(&self, instance_id: i64) -> &[HistoryRecord] {
        self.history.get(&instance_id).map(|records| records.as_slice()).unwrap_or_default()
    }

    /// An instance's items, by serial id.
    fn items_of(&self, instance_id: i64) -> impl Iterator<Item = &ServerItem> {
        self.items.range((instance_id, i64::MIN)..=(instance_id, i64::MAX)).map(|(_, item)| item.as_ref())
    }

    /// An instance's timers, by id.
    fn timers_of(&self, instance_id: i64) -> impl Iterator<Item = &Timer> {
        self.timers.range((instance_id, i64::MIN)..=(instance_id, i64::MAX)).map(|(_, timer)| timer)
    }

    /// When the instance's next armed timer (of item `serial_id`, or of any
    /// item) falls due.
    fn due_at(&self, instance_id: i64, serial_id: Option<i64>) -> Option<Millis> {
        self.soonest(instance_id, serial_id).map(|(due_at, _)| due_at)
    }

    /// The soonest armed timer of an instance (of item `serial_id`, or of
    /// any item) as the due orders rank it: its due time, then its id, as
    /// `timers_due` orders them in SQLite.
    fn soonest(&self, instance_id: i64, serial_id: Option<i64>) -> Option<(Millis, i64)> {
        self.timers_of(instance_id)
            .filter(|t| t.state == TimerState::Armed && serial_id.is_none_or(|s| s == t.serial_id))
            .map(|t| (t.due_at, t.id))
            .min()
    }

    /// An item as the store reads it: with its next due time.
    fn item(&self, item: &ServerItem) -> ServerItem {
        ServerItem { due_at: self.due_at(item.serial.instance_id, Some(item.serial.destination_id)), ..item.clone() }
    }
}

/// An item's place in age order: creation time, then serial.
fn age(item: &ServerItem) -> (Millis, i64, i64) {
    (item.created_at, item.serial.instance_id, item.serial.destination_id)
}

/// `limit` as the store reads it: 0 is no limit.
fn limit(limit: usize) -> usize {
    if limit == 0 { usize::MAX } else { limit }
}

impl Transaction for MemoryTransaction<'_> {
    fn latest_version(&mut self, process: &str) -> Result<Option<u32>, EngineError> {
        let of_process = (process.to_owned(), u32::MIN)..=(process.to_owned(), u32::MAX);
        Ok(self.state().versions.range(of_process).next_back().map(|((_, version), _)| *version))
    }

    fn default_version(&mut self, process: &str) -> Result<Option<u32>, EngineError> {
        Ok(self.state().processes.get(process).copied())
    }

    fn version(&mut self, process: &str, version: u32) -> Result<Option<VersionRecord>, EngineError> {
        Ok(self.state().versions.get(&(process.to_owned(), version)).map(|record| record.as_ref().clone()))
    }

    fn insert_version(&mut self, record: &VersionRecord) -> Result<(), EngineError> {
        let key = (record.process.clone(), record.version);
        if self.state().versions.contains_key(&key) {
            return Err(duplicate(format!("version {} of process `{}`", record.version, record.process)));
        }
        let state = self.state_mut();
        state.processes.insert(record.process.clone(), record.version);
        state.versions.insert(key, Arc::new(record.clone()));
        Ok(())
    }

    fn processes(&mut self) -> Result<Vec<ProcessSummary>, EngineError> {
        let state = self.state();
        Ok(state
            .processes
            .iter()
            .map(|(name, default_version)| ProcessSummary {
                name: name.clone(),
                default_version: *default_version,
                versions: state.versions.keys().filter(|(process, _)| process == name).count() as u32,
            })
            .collect())
    }

    fn rights(&mut self, process: &str, user: &str) -> Result<Vec<Right>, EngineError> {
        let state = self.state();
        Ok(state.rights.iter().filter(|((p, u, _), _)| p == process && u == user).map(|(_, right)| *right).collect())
    }

    fn rights_of_user(&mut self, user: &str) -> Result<Vec<(String, Right)>, EngineError> {
        // The map's order is (process, user, right): for one user, by process, then right.
        Ok(self
            .state()
            .rights
            .iter()
            .filter(|((_, u, _), _)| u == user)
            .map(|((p, _, _), r)| (p.clone(), *r))
            .collect())
    }

    fn rights_on_process(&mut self, process: &str) -> Result<Vec<(String, Right)>, EngineError> {
        // The map's order is (process, user, right): for one process, by user, then right.
        Ok(self
            .state()
            .rights
            .iter()
            .filter(|((p, _, _), _)| p == process)
            .map(|((_, u, _), r)| (u.clone(), *r))
            .collect())
    }

    fn grant(&mut self, process: &str, user: &str, right: Right) -> Result<(), EngineError> {
        self.state_mut().rights.insert((process.to_owned(), user.to_owned(), right.key()), right);
        Ok(())
    }

    fn revoke(&mut self, process: &str, user: &str, right: Right) -> Result<(), EngineError> {
        self.state_mut().rights.remove(&(process.to_owned(), user.to_owned(), right.key()));
        Ok(())
    }

    fn next_instance_id(&mut self) -> Result<i64, EngineError> {
        let stored = self.state().last_instance_id + 1;
        let mut id = stored;
        let _ = self.next_id.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |next| {
            id = next.max(stored);
            Some(id + 1)
        });
        Ok(id)
    }

    fn insert_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        if self.state().instances.contains_key(&instance.id) {
            return Err(duplicate(format!("instance {}", instance.id)));
        }
        let state = self.state_mut();
        // A new row's revision is 0, whatever the instance says.
        state.instances.insert(instance.id, Arc::new(Instance { revision: 0, ..instance.clone() }));
        state.last_instance_id = state.last_instance_id.max(instance.id);
        Ok(())
    }

    fn instance(&mut self, id: i64) -> Result<Option<Instance>, EngineError> {
        Ok(self.state().instances.get(&id).map(|instance| instance.as_ref().clone()))
    }

    fn instance_revision(&mut self, id: i64) -> Result<Option<i64>, EngineError> {
        Ok(self.state().instances.get(&id).map(|instance| instance.revision))
    }

    fn update_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        // What changes over an instance's life; the rest is written once,
        // and the revision is the store's to count.
        if let Some(row) = self.state_mut().instances.get_mut(&instance.id) {
            let row = Arc::make_mut(row);
            row.status = instance.status;
            row.data = instance.data.clone();
            row.flow = instance.flow.clone();
            row.updated_at = instance.updated_at;
            row.runner = instance.runner;
            row.lease_until = instance.lease_until;
            row.revision += 1;
        }
        Ok(())
    }

    fn write_effects(&mut self, instance_id: i64, effects: Vec<Effect>) -> Result<(), EngineError> {
        let history = HistoryRecord::of(&effects);
        if history.is_none() && !effects.iter().any(Effect::is_row) {
            return Ok(());
        }
        let state = self.state_mut();
        for effect in effects {
            match effect {
                Effect::ItemCreated(item) => {
                    let key = (item.serial.instance_id, item.serial.destination_id);
                    if state.items.contains_key(&key) {
                        return Err(duplicate(format!("server item {}", item.serial)));
                    }
                    let row = ServerItem { closed_at: None, closed_by: None, unapplied: None, ..*item };
                    state.items.insert(key, Arc::new(row));
                }
                Effect::ItemFinished { serial_id, by, at, unapplied } => {
                    // A finish kept for later changes what the instance will
                    // do without its row being written now: its revision
                    // goes up all the same.
                    if unapplied.is_some()
                        && let Some(instance) = state.instances.get_mut(&instance_id)
                    {
                        Arc::make_mut(instance).revision += 1;
                    }
                    if let Some(item) = state.items.get_mut(&(instance_id, serial_id)) {
                        let item = Arc::make_mut(item);
                        item.status = ItemStatus::Finished;
                        item.closed_at = Some(at);
                        item.closed_by = Some(by);
                        item.unapplied = unapplied;
                    }
                }
                Effect::ItemApplied { serial_id } => {
                    if let Some(item) = state.items.get_mut(&(instance_id, serial_id)) {
                        Arc::make_mut(item).unapplied = None;
                    }
                }
                Effect::ItemCancelled { serial_id, by, at } => {
                    if let Some(item) = state.items.get_mut(&(instance_id, serial_id)) {
                        let item = Arc::make_mut(item);
                        item.status = ItemStatus::Cancelled;
                        item.closed_at = Some(at);
                        item.closed_by = Some(by);
                        item.unapplied = None;
                    }
                }
                Effect::TookPart { user } => {
                    state.participants.insert((instance_id, user));
                }
                Effect::TimerArmed { serial_id, escalation, due_at } => {
                    state.last_timer_id += 1;
                    let id = state.last_timer_id;
                    let timer = Timer {
                        id,
                        instance_id,
                        serial_id,
                        escalation,
                        due_at,
                        fired_count: 0,
                        state: TimerState::Armed,
                    };
                    state.timers.insert((instance_id, id), timer);
                }
                Effect::TimerChanged { id, due_at, fired_count, state: timer_state } => {
                    if let Some(timer) = state.timers.get_mut(&(instance_id, id)) {
                        (timer.due_at, timer.fired_count, timer.state) = (due_at, fired_count, timer_state);
                    }
                }
                Effect::TimersDisarmed { serial_id } => {
                    let of_instance = (instance_id, i64::MIN)..=(instance_id, i64::MAX);
                    for (_, timer) in state.timers.range_mut(of_instance) {
                        if timer.serial_id == serial_id && timer.state == TimerState::Armed {
                            timer.state = TimerState::Disarmed;
                        }
                    }
                }
                Effect::StatusChanged { .. }
                | Effect::ActivityStarted { .. }
                | Effect::TokenMoved { .. }
                | Effect::ActivityClosed { .. }
                | Effect::LineEvaluated(_)
                | Effect::Audit(_)
                // The parent's flow state (its row) keeps the link; the
                // child's rows are written by its own save.
                | Effect::ChildStarted(_) => {}
            }
        }
        if let Some(record) = history {
            Arc::make_mut(state.history.entry(instance_id).or_default()).push(record);
        }
        Ok(())
    }

    fn item_state(&mut self, instance_id: i64) -> Result<ItemState, EngineError> {
        let mut state = ItemState::default();
        for item in self.state().items_of(instance_id) {
            if item.status != ItemStatus::Pending && item.unapplied.is_none() {
                continue;
            }
            let serial_id = item.serial.destination_id;
            state.open.insert(serial_id, item.activity_destination_id);
            if let Some(data) = &item.unapplied {
                let by = item.closed_by.clone().unwrap_or_default();
                state.recorded.insert(serial_id, RecordedFinish { data: data.clone(), by });
            }
        }
        Ok(state)
    }

    fn server_item(&mut self, serial: Serial) -> Result<Option<ServerItem>, EngineError> {
        let key = (serial.instance_id, serial.destination_id);
        let state = self.state();
        Ok(state.items.get(&key).map(|item| state.item(item)))
    }

    fn running_instances(&mut self) -> Result<Vec<RunningInstance>, EngineError> {
        let state = self.state();
        Ok(state
            .instances
            .values()
            .filter(|instance| instance.status == InstanceStatus::Running)
            .map(|instance| RunningInstance {
                id: instance.id,
                runner: instance.runner,
                lease_until: instance.lease_until,
                runner_expires_at: instance.runner.and_then(|runner| state.runners.get(&runner).copied()),
            })
            .collect())
    }

    fn due_timers(&mut self, query: &DueTimers) -> Result<Vec<Timer>, EngineError> {
        let state = self.state();
        let after = query.after.unwrap_or((Millis::MIN, i64::MIN));
        let mut due: Vec<&Timer> = state
            .timers
            .values()
            .filter(|t| t.state == TimerState::Armed && t.due_at <= query.by && (t.due_at, t.id) > after)
            .filter(|t| state.instances.get(&t.instance_id).is_none_or(|i| !query.held.contains(&i.status)))
            .collect();
        due.sort_by_key(|t| (t.due_at, t.id));
        Ok(due.into_iter().take(limit(query.limit)).cloned().collect())
    }

    fn timers_of(&mut self, instance_id: i64) -> Result<Vec<Timer>, EngineError> {
        let mut timers: Vec<Timer> = self.state().timers_of(instance_id).cloned().collect();
        timers.sort_by_key(|t| (t.due_at, t.id));
        Ok(timers)
    }

    fn instances(
        &mut self,
        visibility: &Visibility,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceSummary>, EngineError> {
        filter.check_fields_read()?;
        let state = self.state();
        let mut listed: Vec<&Instance> = state.listed(visibility, filter).collect();
        if filter.order.column == InstanceColumn::Due {
            // Those with something due by their soonest timer, in the order
            // asked for; then those with nothing due, newest first.
            listed.sort_by(|a, b| match (state.soonest(a.id, None), state.soonest(b.id, None)) {
                (Some(a), Some(b)) if filter.order.descending => b.cmp(&a),
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => b.id.cmp(&a.id),
            });
        } else {
            // By the column, then by id, both in the order asked for; text as
            // its bytes (SQLite's BINARY collation), a status by its name.
            listed.sort_by(|a, b| {
                let by_column = match filter.order.column {
                    InstanceColumn::Id | InstanceColumn::Due => std::cmp::Ordering::Equal,
                    InstanceColumn::Folio => a.folio.cmp(&b.folio),
                    InstanceColumn::Process => a.process.cmp(&b.process),
                    InstanceColumn::Status => a.status.name().cmp(b.status.name()),
                    InstanceColumn::Originator => a.originator.cmp(&b.originator),
                    InstanceColumn::LastChange => a.updated_at.cmp(&b.updated_at),
                };
                let ascending = by_column.then(a.id.cmp(&b.id));
                if filter.order.descending { ascending.reverse() } else { ascending }
            });
        }
        Ok(listed
            .into_iter()
            .skip(filter.offset)
            .take(limit(filter.limit))
            .map(|instance| InstanceSummary {
                due_at: state.due_at(instance.id, None),
                ..InstanceSummary::of(instance)
            })
            .collect())
    }

    fn count_instances(&mut self, visibility: &Visibility, filter: &InstanceFilter) -> Result<u64, EngineError> {
        filter.check_fields_read()?;
        Ok(self.state().listed(visibility, filter).count() as u64)
    }

    fn count_items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> Result<u64, EngineError> {
        // What the list holds without its limit and cursor, counted.
        let all = ItemFilter { limit: 0, after: None, ..filter.clone() };
        Ok(self.items(visibility, &all)?.len() as u64)
    }

    fn items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> Result<Vec<ServerItem>, EngineError> {
        let state = self.state();
        // Where a page starts: after the cursor's place in age order.
        let cursor = match filter.after {
            Some(after) => {
                let cursor = state
                    .items
                    .get(&(after.instance_id, after.destination_id))
                    .ok_or_else(|| EngineError::ItemNotFound { serial: after.to_string() })?;
                Some(age(cursor))
            }
            None => None,
        };
        let needle = filter.search.as_deref().map(str::trim).filter(|s| !s.is_empty()).map(search::fold);
        let mut listed: Vec<&ServerItem> = state
            .items
            .values()
            .map(Arc::as_ref)
            .filter(|item| {
                state.visible(visibility, &item.process, item.serial.instance_id)
                    && (filter.include_closed || item.status == ItemStatus::Pending)
                    && filter.process.as_ref().is_none_or(|p| *p == item.process)
                    && filter.instance_id.is_none_or(|id| id == item.serial.instance_id)
                    && (!filter.overdue
                        || state
                            .due_at(item.serial.instance_id, Some(item.serial.destination_id))
                            .is_some_and(|due| due <= filter.now))
                    && needle.as_deref().is_none_or(|needle| {
                        // Every text the items view shows in a row.
                        [&item.serial.to_string(), &item.folio, &item.process, &item.activity, &item.event]
                            .iter()
                            .any(|text| search::contains_ignoring_case(text, needle))
                    })
                    && cursor.is_none_or(
                        |cursor| {
                            if filter.newest_first { age(item) < cursor } else { age(item) > cursor }
                        },
                    )
            })
            .collect();
        // Pending first (unless by age alone), then by age, oldest or newest first.
        let pending_first = filter.include_closed && !filter.by_age_only;
        listed.sort_by(|a, b| {
            let by_status = if pending_first {
                (b.status == ItemStatus::Pending).cmp(&(a.status == ItemStatus::Pending))
            } else {
                std::cmp::Ordering::Equal
            };
            let by_age = if filter.newest_first { age(b).cmp(&age(a)) } else { age(a).cmp(&age(b)) };
            by_status.then(by_age)
        });
        if filter.by_due {
            // Those with something due by their soonest timer, soonest or
            // latest first, ahead of the rest in the order above (stable).
            let soonest = |item: &ServerItem| state.soonest(item.serial.instance_id, Some(item.serial.destination_id));
            listed.sort_by(|a, b| match (soonest(a), soonest(b)) {
                (Some(a), Some(b)) if filter.newest_first => b.cmp(&a),
                (Some(a), Some(b)) => a.cmp(&b),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (None, None) => std::cmp::Ordering::Equal,
            });
        }
        Ok(listed.into_iter().take(limit(filter.limit)).map(|item| state.item(item)).collect())
    }

    fn pending_items_of(&mut self, instance_id: i64) -> Result<Vec<ServerItem>, EngineError> {
        let state = self.state();
        Ok(state
            .items_of(instance_id)
            .filter(|item| item.status == ItemStatus::Pending)
            .map(|i| state.item(i))
            .collect())
    }

    fn audit(&mut self, instance_id: i64) -> Result<Vec<AuditEntry>, EngineError> {
        Ok(self.state().history(instance_id).iter().flat_map(|record| record.audit.iter().cloned()).collect())
    }

    fn activity_records(&mut self, instance_id: i64) -> Result<Vec<ActivityRecord>, EngineError> {
        // Record by record, as `sql.rs` reads its history rows: a closing
        // reaches only an activity instance started before it.
        let mut records: BTreeMap<i64, ActivityRecord> = BTreeMap::new();
        for record in self.state().history(instance_id) {
            for started in &record.started {
                records.insert(started.destination_id, started.clone());
            }
            for (destination_id, status, at) in &record.closed {
                if let Some(closed) = records.get_mut(destination_id) {
                    closed.status = *status;
                    closed.finished_at = Some(*at);
                }
            }
        }
        Ok(records.into_values().collect())
    }

    fn line_results(&mut self, instance_id: i64) -> Result<Vec<LineResult>, EngineError> {
        Ok(self.state().history(instance_id).iter().flat_map(|record| record.lines.iter().cloned()).collect())
    }

    fn is_participant(&mut self, instance_id: i64, user: &str) -> Result<bool, EngineError> {
        Ok(self.state().took_part(instance_id, user))
    }

    // The overview's answers, counted from the collections each time (what
    // SQLite's aggregates must agree with): this store is for tests and
    // small embeddings.

    fn status_counts(&mut self) -> Result<Vec<StatusCount>, EngineError> {
        let mut counts: BTreeMap<(String, u32, &'static str), (InstanceStatus, u64)> = BTreeMap::new();
        for instance in self.state().instances.values() {
            let key = (instance.process.clone(), instance.version, instance.status.name());
            counts.entry(key).or_insert((instance.status, 0)).1 += 1;
        }
        Ok(counts
            .into_iter()
            .map(|((process, version, _), (status, n))| StatusCount { process, version, status, n })
            .collect())
    }

    fn pending_groups(&mut self, since_hour: i64) -> Result<Vec<PendingGroup>, EngineError> {
        let state = self.state();
        let mut groups: BTreeMap<(String, u32, String), BTreeMap<i64, u64>> = BTreeMap::new();
        for item in state.items.values().filter(|item| item.status == ItemStatus::Pending) {
            let Some(instance) = state.instances.get(&item.serial.instance_id) else { continue };
            let key = (item.process.clone(), instance.version, item.activity.clone());
            *groups.entry(key).or_default().entry(item.created_at.div_euclid(HOUR)).or_default() += 1;
        }
        Ok(groups
            .into_iter()
            .map(|((process, version, activity), hours)| PendingGroup {
                process,
                version,
                activity,
                n: hours.values().sum(),
                oldest_hour: hours.keys().next().copied().unwrap_or(0),
                recent: hours.range(since_hour..).map(|(h, n)| (*h, *n)).collect(),
            })
            .collect())
    }

    fn pending_since(&mut self, since: Millis) -> Result<Vec<(String, u32, u64)>, EngineError> {
        let state = self.state();
        let mut counts: BTreeMap<(String, u32), u64> = BTreeMap::new();
        for item in state.items.values().filter(|i| i.status == ItemStatus::Pending && i.created_at >= since) {
            if let Some(instance) = state.instances.get(&item.serial.instance_id) {
                *counts.entry((item.process.clone(), instance.version)).or_default() += 1;
            }
        }
        Ok(counts.into_iter().map(|((process, version), n)| (process, version, n)).collect())
    }

    fn instance_minutes(&mut self, since_minute: i64) -> Result<Vec<MinuteCount>, EngineError> {
        let mut minutes: BTreeMap<(String, u32, i64), (u64, u64)> = BTreeMap::new();
        for instance in self.state().instances.values() {
            let (process, version) = (instance.process.clone(), instance.version);
            minutes.entry((process.clone(), version, instance.started_at.div_euclid(MINUTE))).or_default().0 += 1;
            if instance.status == InstanceStatus::Completed {
                minutes.entry((process, version, instance.updated_at.div_euclid(MINUTE))).or_default().1 += 1;
            }
        }
        Ok(minutes
            .into_iter()
            .filter(|((_, _, minute), _)| *minute >= since_minute)
            .map(|((process, version, minute), (started, completed))| MinuteCount {
                process,
                version,
                minute,
                started,
                completed,
            })
            .collect())
    }

    fn failure_groups(&mut self) -> Result<Vec<Incident>, EngineError> {
        let mut groups: BTreeMap<ReasonKey, Incident> = BTreeMap::new();
        // Instances by id: the first of a group is its example, as SQLite's.
        for (key, id, at, message) in self.state().failures() {
            let incident = groups.entry(key.clone()).or_insert_with(|| Incident {
                key,
                count: 0,
                first_at: at,
                last_at: at,
                example_id: id,
                example: message.to_owned(),
            });
            incident.count += 1;
            incident.first_at = incident.first_at.min(at);
            incident.last_at = incident.last_at.max(at);
        }
        Ok(groups.into_values().collect())
    }

    fn failure_ids(&mut self, key: &ReasonKey) -> Result<Vec<i64>, EngineError> {
        let state = self.state();
        let mut ids: Vec<(Millis, i64)> = state
            .instances
            .values()
            .filter(|i| i.status == InstanceStatus::Error)
            .filter_map(|i| {
                let failure = i.flow.failure.as_ref()?;
                (State::reason(i, failure) == *key).then_some((failure.at, i.id))
            })
            .collect();
        ids.sort_unstable();
        Ok(ids.into_iter().map(|(_, id)| id).collect())
    }

    fn pending_oldest(
        &mut self,
        process: &str,
        version: u32,
        activity: Option<&str>,
        from: Millis,
    ) -> Result<Option<ServerItem>, EngineError> {
        let state = self.state();
        let of_version = state.items.values().map(Arc::as_ref).filter(|item| {
            item.status == ItemStatus::Pending
                && item.process == process
                && activity.is_none_or(|a| a == item.activity)
                && item.created_at >= from
                && state.instances.get(&item.serial.instance_id).is_some_and(|i| i.version == version)
        });
        Ok(crate::engine::overview::oldest_of(of_version).cloned())
    }
}

impl State {
    /// An instance's reason for its failure (see `engine::overview`).
    fn reason(instance: &Instance, failure: &crate::engine::FailureInfo) -> ReasonKey {
        ReasonKey {
            process: instance.process.clone(),
            version: instance.version,
            activity: failure.activity.clone(),
            event: failure.event.clone(),
            pattern: failure_pattern(&failure.message),
        }
    }

    /// Every instance in error with its reason, when it failed and why.
    fn failures(&self) -> impl Iterator<Item = (ReasonKey, i64, Millis, &str)> {
        self.instances.values().filter(|i| i.status == InstanceStatus::Error).filter_map(|i| {
            let failure = i.flow.failure.as_ref()?;
            Some((State::reason(i, failure), i.id, failure.at, failure.message.as_str()))
        })
    }
}
