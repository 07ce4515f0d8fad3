//! Work prepared on a snapshot, outside the write lock, then checked and
//! applied under it (optimistic concurrency).
//!
//! Only one caller at a time may write, so whatever a call does while it
//! holds the write lock is paid by every other caller. Most of a start or a
//! finish is not writing: loading the instance, checking rights, running its
//! scripts and rules, and encoding the result. [`Recorder`] runs that work on
//! a read snapshot, notes what it read ([`Read`]) and keeps what it would
//! write ([`Write`]); under the lock, [`Plan::still_holds`] re-reads only
//! those few values, and if none changed the writes are applied as they are.
//! If one did (another caller got to the same instance first), the work runs
//! again inside the transaction, exactly as an unplanned write would.
//!
//! Every write to an instance or its server items bumps the instance's
//! revision, so one revision read stands for everything the work read about
//! an instance.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::engine::overview::{Incident, MinuteCount, PendingGroup, ReasonKey, StatusCount};
use crate::engine::{
    ActivityRecord, AuditEntry, DueTimers, Effect, EngineError, Instance, InstanceFilter, InstanceSummary, ItemFilter,
    ItemState, LineResult, ProcessSummary, RunningInstance, Serial, ServerItem, Timer, Transaction, VersionRecord,
    Visibility,
};
use crate::model::Right;
use crate::store::sql::{EncodedInstance, SqliteTransaction, encode_history};

/// A value the planned work's decisions rest on.
#[derive(Debug, Clone, PartialEq)]
enum Read {
    /// Everything about an instance and its items, through its revision.
    Instance {
        id: i64,
        revision: Option<i64>,
    },
    Rights {
        process: String,
        user: String,
        rights: Vec<Right>,
    },
    RightsOnProcess {
        process: String,
        rights: Vec<(String, Right)>,
    },
    DefaultVersion {
        process: String,
        version: Option<u32>,
    },
    LatestVersion {
        process: String,
        version: Option<u32>,
    },
    Version {
        process: String,
        version: u32,
        record: Option<VersionRecord>,
    },
    /// An instance id handed out while planning: still free.
    NewInstance {
        id: i64,
    },
}

/// A write the planned work made, to be applied under the lock. What can be
/// encoded is encoded when the write is recorded, outside the lock.
enum Write {
    InsertVersion(VersionRecord),
    Grant {
        process: String,
        user: String,
        right: Right,
    },
    Revoke {
        process: String,
        user: String,
        right: Right,
    },
    InsertInstance(EncodedInstance),
    /// With the instance's status as the work found it (`None` when it
    /// did not read it), what the overview's counts change from.
    UpdateInstance(EncodedInstance, Option<&'static str>),
    /// `effects` holds only those written as rows of their own (items and
    /// participants); the history record is in `history`, encoded.
    Effects {
        instance_id: i64,
        effects: Vec<Effect>,
        history: Option<String>,
    },
}

/// What planned work read and would write.
#[derive(Default)]
pub struct Plan {
    reads: Vec<Read>,
    writes: Vec<Write>,
    /// The work read something a plan cannot check cheaply (a list, or
    /// something it had written itself): it must run in the transaction.
    unplannable: bool,
    /// Some of `reads` came from [`Remembered`] rather than the snapshot.
    remembered: bool,
}

/// Users whose rights on one process are remembered at most.
const REMEMBERED_USERS: usize = 4096;

/// Values planning may take from memory instead of reading them on its
/// snapshot: the default version of a process, a user's rights on it, and
/// the next free instance id. They rarely change, and each read costs a
/// statement on a snapshot whose page cache SQLite empties after every
/// commit (in WAL mode a reader keeps no page once the log has moved on).
///
/// Nothing here is trusted: a remembered value is recorded in the plan like
/// any read and checked again under the write lock, so a stale one costs a
/// re-run in the transaction, never a wrong write. A refusal resting on a
/// remembered value is not answered either: the work is planned again on
/// the snapshot alone ([`Plan::used_memory`]), and what it reads there
/// replaces what was remembered.
#[derive(Default)]
pub struct Remembered {
    default_versions: Mutex<HashMap<String, u32>>,
    /// A user's rights on a process, by process, then user (looked up by
    /// `&str`, without building a key per call).
    rights: Mutex<HashMap<String, HashMap<String, Vec<Right>>>>,
}

impl Remembered {
    /// Forgets everything: after a plan turned out stale, something was
    /// changed behind planning's back (another process, an operator's
    /// grant), and the remembered values may be why.
    pub fn forget(&self) {
        self.default_versions.lock().unwrap_or_else(PoisonError::into_inner).clear();
        self.rights.lock().unwrap_or_else(PoisonError::into_inner).clear();
    }

    fn default_version(&self, process: &str) -> Option<u32> {
        self.default_versions.lock().unwrap_or_else(PoisonError::into_inner).get(process).copied()
    }

    fn remember_default_version(&self, process: &str, version: u32) {
        self.default_versions.lock().unwrap_or_else(PoisonError::into_inner).insert(process.to_owned(), version);
    }

    fn rights(&self, process: &str, user: &str) -> Option<Vec<Right>> {
        self.rights.lock().unwrap_or_else(PoisonError::into_inner).get(process)?.get(user).cloned()
    }

    fn remember_rights(&self, process: &str, user: &str, rights: &[Right]) {
        let mut remembered = self.rights.lock().unwrap_or_else(PoisonError::into_inner);
        let users = remembered.entry(process.to_owned()).or_default();
        // Callers name users freely (the command line's `--user`): a
        // long-running server must not keep every name it was ever given.
        if users.len() >= REMEMBERED_USERS && !users.contains_key(user) {
            users.clear();
        }
        users.insert(user.to_owned(), rights.to_vec());
    }
}

impl Plan {
    /// Whether the plan can be applied instead of running the work again.
    pub fn usable(&self) -> bool {
        !self.unplannable
    }

    /// Whether nothing the work read has changed since it was planned.
    pub fn still_holds(&self, tx: &mut dyn Transaction) -> Result<bool, EngineError> {
        for read in &self.reads {
            let holds = match read {
                Read::Instance { id, revision } => tx.instance_revision(*id)? == *revision,
                Read::Rights { process, user, rights } => tx.rights(process, user)? == *rights,
                Read::RightsOnProcess { process, rights } => tx.rights_on_process(process)? == *rights,
                Read::DefaultVersion { process, version } => tx.default_version(process)? == *version,
                Read::LatestVersion { process, version } => tx.latest_version(process)? == *version,
                Read::Version { process, version, record } => tx.version(process, *version)? == *record,
                Read::NewInstance { id } => tx.instance_revision(*id)?.is_none(),
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Applies the writes, in the order the work made them.
    pub fn apply(&self, tx: &mut SqliteTransaction<'_>) -> Result<(), EngineError> {
        for write in &self.writes {
            match write {
                Write::InsertVersion(record) => tx.insert_version(record)?,
                Write::Grant { process, user, right } => tx.grant(process, user, *right)?,
                Write::Revoke { process, user, right } => tx.revoke(process, user, *right)?,
                Write::InsertInstance(row) => tx.insert_encoded(row)?,
                Write::UpdateInstance(row, was) => {
                    // The revision checked vouches that the status is still
                    // the one read: no need to read it again.
                    if let Some(was) = was {
                        tx.knows(row.id(), row.version(), was);
                    }
                    tx.update_encoded(row)?
                }
                Write::Effects { instance_id, effects, history } => {
                    tx.write_effects_encoded(*instance_id, effects, history.as_deref())?
                }
            }
        }
        Ok(())
    }

    pub fn wrote(&self) -> bool {
        !self.writes.is_empty()
    }

    /// Whether the work's decisions rest in part on [`Remembered`] values.
    pub fn used_memory(&self) -> bool {
        self.remembered
    }

    /// The instances the work read or wrote, or `None` if it wrote anything
    /// else too (a version, rights, a new instance): what [`Plan::absorb`]
    /// needs to know to keep plans made on one snapshot apart. (What else
    /// it read, a version or rights, only such writes change.)
    pub fn instances(&self) -> Option<Vec<i64>> {
        let mut ids: Vec<i64> = self
            .reads
            .iter()
            .filter_map(|read| match read {
                Read::Instance { id, .. } | Read::NewInstance { id } => Some(*id),
                _ => None,
            })
            .collect();
        for write in &self.writes {
            match write {
                Write::UpdateInstance(row, _) => ids.push(row.id()),
                Write::Effects { instance_id, .. } => ids.push(*instance_id),
                Write::InsertVersion(_) | Write::Grant { .. } | Write::Revoke { .. } | Write::InsertInstance(_) => {
                    return None;
                }
            }
        }
        Some(ids)
    }

    /// Takes in another usable plan made on the same snapshot, so that both
    /// are checked and applied as one, this one's writes first. Only for
    /// plans of separate instances ([`Plan::instances`] shares none): each
    /// was worked out without the other's writes, and the check under the
    /// lock sees neither of them.
    pub fn absorb(&mut self, other: Plan) {
        self.reads.extend(other.reads);
        self.writes.extend(other.writes);
        self.unplannable |= other.unplannable;
        self.remembered |= other.remembered;
    }
}

/// A [`Transaction`] over a read snapshot that records a [`Plan`].
pub struct Recorder<'a> {
    snapshot: &'a mut dyn Transaction,
    /// The store's instance id counter: ids handed out while planning are
    /// taken from it, so that concurrent plans never pick the same one.
    ids: &'a AtomicI64,
    /// Where remembered values are taken from (`Some`) or only written to
    /// (`None`: everything is read on the snapshot).
    memory: Option<&'a Remembered>,
    /// What snapshot reads are remembered in.
    remember: Option<&'a Remembered>,
    plan: Plan,
    /// Each instance's status as the work last saw it (read, or written).
    statuses: Vec<(i64, &'static str)>,
}

impl<'a> Recorder<'a> {
    /// A recorder that reads everything on `snapshot`.
    #[cfg(test)]
    pub fn new(snapshot: &'a mut dyn Transaction, ids: &'a AtomicI64) -> Recorder<'a> {
        Recorder { snapshot, ids, memory: None, remember: None, plan: Plan::default(), statuses: Vec::new() }
    }

    /// A recorder that takes what it can from `memory` (if `trusting`) and
    /// remembers there what it read on the snapshot.
    pub fn remembering(
        snapshot: &'a mut dyn Transaction,
        ids: &'a AtomicI64,
        memory: &'a Remembered,
        trusting: bool,
    ) -> Recorder<'a> {
        Recorder {
            snapshot,
            ids,
            memory: trusting.then_some(memory),
            remember: Some(memory),
            plan: Plan::default(),
            statuses: Vec::new(),
        }
    }

    pub fn into_plan(self) -> Plan {
        self.plan
    }

    /// Called before every read: a read after a write would see the snapshot
    /// without the work's own writes.
    fn reading(&mut self) {
        if self.plan.wrote() {
            self.plan.unplannable = true;
        }
    }

    /// A read a plan does not check: the work must run in the transaction.
    fn unchecked(&mut self) {
        self.plan.unplannable = true;
    }

    fn note_instance(&mut self, id: i64) -> Result<(), EngineError> {
        self.reading();
        let known = self.plan.reads.iter().any(|read| matches!(read, Read::Instance { id: seen, .. } if *seen == id));
        if !known {
            let revision = self.snapshot.instance_revision(id)?;
            self.plan.reads.push(Read::Instance { id, revision });
        }
        Ok(())
    }

    fn write(&mut self, write: Write) {
        self.plan.writes.push(write);
    }

    /// Notes instance `id`'s status as the work now sees it.
    fn saw(&mut self, id: i64, status: &'static str) -> Option<&'static str> {
        match self.statuses.iter_mut().find(|(seen, _)| *seen == id) {
            Some((_, last)) => Some(std::mem::replace(last, status)),
            None => {
                self.statuses.push((id, status));
                None
            }
        }
    }
}

impl Transaction for Recorder<'_> {
    fn latest_version(&mut self, process: &str) -> Result<Option<u32>, EngineError> {
        self.reading();
        let version = self.snapshot.latest_version(process)?;
        self.plan.reads.push(Read::LatestVersion { process: process.to_owned(), version });
        Ok(version)
    }

    fn default_version(&mut self, process: &str) -> Result<Option<u32>, EngineError> {
        self.reading();
        let version = match self.memory.and_then(|memory| memory.default_version(process)) {
            Some(version) => {
                self.plan.remembered = true;
                Some(version)
            }
            None => {
                let version = self.snapshot.default_version(process)?;
                if let (Some(memory), Some(version)) = (self.remember, version) {
                    memory.remember_default_version(process, version);
                }
                version
            }
        };
        self.plan.reads.push(Read::DefaultVersion { process: process.to_owned(), version });
        Ok(version)
    }

    fn version(&mut self, process: &str, version: u32) -> Result<Option<VersionRecord>, EngineError> {
        self.reading();
        let record = self.snapshot.version(process, version)?;
        self.plan.reads.push(Read::Version { process: process.to_owned(), version, record: record.clone() });
        Ok(record)
    }

    fn insert_version(&mut self, record: &VersionRecord) -> Result<(), EngineError> {
        self.write(Write::InsertVersion(record.clone()));
        Ok(())
    }

    fn processes(&mut self) -> Result<Vec<ProcessSummary>, EngineError> {
        self.unchecked();
        self.snapshot.processes()
    }

    fn rights(&mut self, process: &str, user: &str) -> Result<Vec<Right>, EngineError> {
        self.reading();
        let rights = match self.memory.and_then(|memory| memory.rights(process, user)) {
            Some(rights) => {
                self.plan.remembered = true;
                rights
            }
            None => {
                let rights = self.snapshot.rights(process, user)?;
                if let Some(memory) = self.remember {
                    memory.remember_rights(process, user, &rights);
                }
                rights
            }
        };
        self.plan.reads.push(Read::Rights {
            process: process.to_owned(),
            user: user.to_owned(),
            rights: rights.clone(),
        });
        Ok(rights)
    }

    fn rights_of_user(&mut self, user: &str) -> Result<Vec<(String, Right)>, EngineError> {
        self.unchecked();
        self.snapshot.rights_of_user(user)
    }

    fn rights_on_process(&mut self, process: &str) -> Result<Vec<(String, Right)>, EngineError> {
        self.reading();
        let rights = self.snapshot.rights_on_process(process)?;
        self.plan.reads.push(Read::RightsOnProcess { process: process.to_owned(), rights: rights.clone() });
        Ok(rights)
    }

    fn grant(&mut self, process: &str, user: &str, right: Right) -> Result<(), EngineError> {
        self.write(Write::Grant { process: process.to_owned(), user: user.to_owned(), right });
        Ok(())
    }

    fn revoke(&mut self, process: &str, user: &str, right: Right) -> Result<(), EngineError> {
        self.write(Write::Revoke { process: process.to_owned(), user: user.to_owned(), right });
        Ok(())
    }

    fn next_instance_id(&mut self) -> Result<i64, EngineError> {
        self.reading();
        // Once the counter has been set from the database, it is ahead of
        // every id this process handed out; one another process took since
        // is caught by the check of `Read::NewInstance`, which then sends
        // the work to the transaction, where the database's own next id
        // moves the counter past it.
        let stored = if self.memory.is_some() && self.ids.load(Ordering::SeqCst) > 0 {
            0
        } else {
            self.snapshot.next_instance_id()?
        };
        let id = super::sql::reserve_id(self.ids, stored);
        self.plan.reads.push(Read::NewInstance { id });
        Ok(id)
    }

    fn insert_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        self.saw(instance.id, instance.status.name());
        self.write(Write::InsertInstance(EncodedInstance::of(instance)?));
        Ok(())
    }

    fn instance(&mut self, id: i64) -> Result<Option<Instance>, EngineError> {
        self.reading();
        let instance = self.snapshot.instance(id)?;
        if let Some(instance) = &instance {
            self.saw(id, instance.status.name());
        }
        if !self.plan.reads.iter().any(|read| matches!(read, Read::Instance { id: seen, .. } if *seen == id)) {
            let revision = instance.as_ref().map(|instance| instance.revision);
            self.plan.reads.push(Read::Instance { id, revision });
        }
        Ok(instance)
    }

    fn instance_revision(&mut self, id: i64) -> Result<Option<i64>, EngineError> {
        self.note_instance(id)?;
        Ok(self
            .plan
            .reads
            .iter()
            .find_map(|read| match read {
                Read::Instance { id: seen, revision } if *seen == id => Some(*revision),
                _ => None,
            })
            .flatten())
    }

    fn update_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        let was = self.saw(instance.id, instance.status.name());
        self.write(Write::UpdateInstance(EncodedInstance::of(instance)?, was));
        Ok(())
    }

    fn write_effects(&mut self, instance_id: i64, mut effects: Vec<Effect>) -> Result<(), EngineError> {
        let history = encode_history(&effects)?;
        // Kept as they are, without a copy: the rest is in the history.
        effects.retain(Effect::is_row);
        self.write(Write::Effects { instance_id, effects, history });
        Ok(())
    }

    fn item_state(&mut self, instance_id: i64) -> Result<ItemState, EngineError> {
        self.note_instance(instance_id)?;
        self.snapshot.item_state(instance_id)
    }

    fn server_item(&mut self, serial: Serial) -> Result<Option<ServerItem>, EngineError> {
        self.note_instance(serial.instance_id)?;
        self.snapshot.server_item(serial)
    }

    fn running_instances(&mut self) -> Result<Vec<RunningInstance>, EngineError> {
        self.unchecked();
        self.snapshot.running_instances()
    }

    fn due_timers(&mut self, query: &DueTimers) -> Result<Vec<Timer>, EngineError> {
        self.unchecked();
        self.snapshot.due_timers(query)
    }

    /// Covered by the instance's revision: every change of a timer is
    /// written together with its instance.
    fn timers_of(&mut self, instance_id: i64) -> Result<Vec<Timer>, EngineError> {
        self.note_instance(instance_id)?;
        self.snapshot.timers_of(instance_id)
    }

    fn instances(
        &mut self,
        visibility: &Visibility,
        filter: &InstanceFilter,
    ) -> Result<Vec<InstanceSummary>, EngineError> {
        self.unchecked();
        self.snapshot.instances(visibility, filter)
    }

    fn count_instances(&mut self, visibility: &Visibility, filter: &InstanceFilter) -> Result<u64, EngineError> {
        self.unchecked();
        self.snapshot.count_instances(visibility, filter)
    }

    fn items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> Result<Vec<ServerItem>, EngineError> {
        self.unchecked();
        self.snapshot.items(visibility, filter)
    }

    fn count_items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> Result<u64, EngineError> {
        self.unchecked();
        self.snapshot.count_items(visibility, filter)
    }

    fn pending_items_of(&mut self, instance_id: i64) -> Result<Vec<ServerItem>, EngineError> {
        self.note_instance(instance_id)?;
        self.snapshot.pending_items_of(instance_id)
    }

    fn audit(&mut self, instance_id: i64) -> Result<Vec<AuditEntry>, EngineError> {
        self.note_instance(instance_id)?;
        self.snapshot.audit(instance_id)
    }

    fn activity_records(&mut self, instance_id: i64) -> Result<Vec<ActivityRecord>, EngineError> {
        self.note_instance(instance_id)?;
        self.snapshot.activity_records(instance_id)
    }

    fn line_results(&mut self, instance_id: i64) -> Result<Vec<LineResult>, EngineError> {
        self.note_instance(instance_id)?;
        self.snapshot.line_results(instance_id)
    }

    fn is_participant(&mut self, instance_id: i64, user: &str) -> Result<bool, EngineError> {
        self.note_instance(instance_id)?;
        self.snapshot.is_participant(instance_id, user)
    }

    // The overview's reads: no planned write makes them, and none could be
    // checked again under the lock.
    fn status_counts(&mut self) -> Result<Vec<StatusCount>, EngineError> {
        self.unchecked();
        self.snapshot.status_counts()
    }

    fn pending_groups(&mut self, since_hour: i64) -> Result<Vec<PendingGroup>, EngineError> {
        self.unchecked();
        self.snapshot.pending_groups(since_hour)
    }

    fn pending_since(&mut self, since: crate::engine::Millis) -> Result<Vec<(String, u32, u64)>, EngineError> {
        self.unchecked();
        self.snapshot.pending_since(since)
    }

    fn instance_minutes(&mut self, since_minute: i64) -> Result<Vec<MinuteCount>, EngineError> {
        self.unchecked();
        self.snapshot.instance_minutes(since_minute)
    }

    fn failure_groups(&mut self) -> Result<Vec<Incident>, EngineError> {
        self.unchecked();
        self.snapshot.failure_groups()
    }

    fn failure_ids(&mut self, key: &ReasonKey) -> Result<Vec<i64>, EngineError> {
        self.unchecked();
        self.snapshot.failure_ids(key)
    }

    fn pending_oldest(
        &mut self,
        process: &str,
        version: u32,
        activity: Option<&str>,
        from: crate::engine::Millis,
    ) -> Result<Option<ServerItem>, EngineError> {
        self.unchecked();
        self.snapshot.pending_oldest(process, version, activity, from)
    }
}

#[cfg(test)]
mod tests {
    //! A plan is only as good as its check: each test plans work on a
    //! snapshot, lets another write commit, and asks whether the plan still
    //! holds under the write lock, as `Storage::write_planned` does.

    use std::collections::BTreeMap;

    use rusqlite::TransactionBehavior;

    use super::*;
    use crate::engine::instance::{ActivityStatus, FlowState, Token, TokenState};
    use crate::engine::{InstanceStatus, ItemStatus, Storage};
    use crate::model::Value;
    use crate::store::{Durability, SqliteStore, SqliteTransaction};

    const P: &str = "p";
    const Q: &str = "q";

    fn version(process: &str, version: u32) -> VersionRecord {
        VersionRecord {
            process: process.to_owned(),
            version,
            definition_json: format!("{{\"name\":\"{process}\",\"v\":{version}}}"),
            deployed_at: 1_000 + i64::from(version),
            deployed_by: "admin".to_owned(),
        }
    }

    fn instance(id: i64, folio: &str) -> Instance {
        Instance {
            id,
            process: P.to_owned(),
            version: 1,
            folio: folio.to_owned(),
            originator: "alice".to_owned(),
            status: InstanceStatus::Active,
            data: BTreeMap::from([("name".to_owned(), Value::String(folio.to_owned()))]),
            flow: FlowState {
                tokens: vec![Token {
                    destination_id: 2,
                    activity: 1,
                    next_event: 0,
                    state: TokenState::Waiting,
                    serial_id: Some(2),
                }],
                next_destination_id: 3,
                ..FlowState::default()
            },
            started_at: 2_000,
            updated_at: 2_000,
            runner: None,
            lease_until: None,
            revision: 0,
        }
    }

    fn item(instance_id: i64, destination_id: i64) -> ServerItem {
        ServerItem {
            serial: Serial { instance_id, destination_id },
            activity_destination_id: destination_id,
            event_index: 0,
            process: P.to_owned(),
            folio: format!("folio {instance_id}"),
            activity: "Call".to_owned(),
            event: "Call external system".to_owned(),
            status: ItemStatus::Pending,
            created_at: 2_000,
            closed_at: None,
            closed_by: None,
            unapplied: None,
            due_at: None,
        }
    }

    fn serial(instance_id: i64) -> Serial {
        Serial { instance_id, destination_id: 2 }
    }

    fn data(name: &str) -> BTreeMap<String, Value> {
        BTreeMap::from([("name".to_owned(), Value::String(name.to_owned()))])
    }

    /// Inserts instance `id` waiting on its item `<id>_2`.
    fn insert_waiting(tx: &mut dyn Transaction, id: i64) -> Result<(), EngineError> {
        tx.insert_instance(&instance(id, &format!("folio {id}")))?;
        tx.write_effects(id, vec![Effect::ItemCreated(Box::new(item(id, 2)))])
    }

    /// Finishes item `<id>_2`, keeping `unapplied` for later.
    fn record_finish(
        tx: &mut dyn Transaction,
        id: i64,
        unapplied: Option<BTreeMap<String, Value>>,
        by: &str,
        at: i64,
    ) -> Result<(), EngineError> {
        tx.write_effects(id, vec![Effect::ItemFinished { serial_id: 2, by: by.to_owned(), at, unapplied }])
    }

    /// A database with processes `p` and `q` (version 1 each), alice holding
    /// ServerEvent on `p`, and instances 1 and 2 of `p`, each waiting on `<id>_2`.
    fn store(dir: &tempfile::TempDir) -> SqliteStore {
        let store = SqliteStore::open(&dir.path().join("plan.db"), Durability::Normal).unwrap();
        store
            .write(|tx| {
                tx.insert_version(&version(P, 1))?;
                tx.insert_version(&version(Q, 1))?;
                tx.grant(P, "alice", Right::ServerEvent)?;
                insert_waiting(tx, 1)?;
                insert_waiting(tx, 2)
            })
            .unwrap();
        store
    }

    /// Runs `work` on a read snapshot through a [`Recorder`], as
    /// `write_planned` does, and returns what it recorded.
    fn plan(store: &SqliteStore, work: impl FnOnce(&mut dyn Transaction) -> Result<(), EngineError>) -> Plan {
        store.with_reader(|reader| {
            let transaction = reader.transaction_with_behavior(TransactionBehavior::Deferred).unwrap();
            let mut snapshot = SqliteTransaction::new(&transaction);
            let mut recorder = Recorder::new(&mut snapshot, &store.next_id);
            work(&mut recorder).unwrap();
            recorder.into_plan()
        })
    }

    /// Runs `work` in a write transaction of its own connection (`BEGIN
    /// IMMEDIATE`: the write lock), sharing the store's id counter, and
    /// commits it.
    fn under_lock<R>(
        store: &SqliteStore,
        work: impl FnOnce(&mut SqliteTransaction<'_>) -> Result<R, EngineError>,
    ) -> R {
        let mut connection = rusqlite::Connection::open(store.path()).unwrap();
        connection.pragma_update(None, "foreign_keys", true).unwrap();
        // The aggregates' triggers call them, as on every connection the store opens.
        crate::store::sql::define_functions(&connection).unwrap();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).unwrap();
        let result = work(&mut SqliteTransaction::with_ids(&transaction, &store.next_id)).unwrap();
        transaction.commit().unwrap();
        result
    }

    /// The check `write_planned` makes under the write lock.
    fn holds(store: &SqliteStore, plan: &Plan) -> bool {
        under_lock(store, |tx| plan.still_holds(tx))
    }

    fn bump(store: &SqliteStore, id: i64) {
        store
            .write(|tx| {
                let mut loaded = tx.instance(id)?.unwrap();
                loaded.updated_at += 1;
                tx.update_instance(&loaded)
            })
            .unwrap();
    }

    /// Every per-instance read the engine makes, each standing for the
    /// instance's revision.
    type InstanceRead = fn(&mut dyn Transaction, i64) -> Result<(), EngineError>;
    const INSTANCE_READS: [(&str, InstanceRead); 9] = [
        ("instance", |tx, id| tx.instance(id).map(drop)),
        ("instance_revision", |tx, id| tx.instance_revision(id).map(drop)),
        ("item_state", |tx, id| tx.item_state(id).map(drop)),
        ("server_item", |tx, id| tx.server_item(serial(id)).map(drop)),
        ("pending_items_of", |tx, id| tx.pending_items_of(id).map(drop)),
        ("audit", |tx, id| tx.audit(id).map(drop)),
        ("activity_records", |tx, id| tx.activity_records(id).map(drop)),
        ("line_results", |tx, id| tx.line_results(id).map(drop)),
        ("is_participant", |tx, id| tx.is_participant(id, "alice").map(drop)),
    ];

    #[test]
    fn a_plan_on_an_instance_is_stale_once_that_instance_is_written_and_not_when_another_is() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        for (name, read) in INSTANCE_READS {
            let plan = plan(&store, |tx| {
                read(tx, 1)?;
                tx.update_instance(&instance(1, "planned"))
            });
            assert!(plan.usable(), "{name}");
            assert!(holds(&store, &plan), "{name}: nothing changed yet");
            bump(&store, 2);
            assert!(holds(&store, &plan), "{name}: another instance's write must not make the plan stale");
            bump(&store, 1);
            assert!(!holds(&store, &plan), "{name}: the instance was written since the plan read it");
        }
    }

    /// A finish kept for later writes the item only, not the instance row:
    /// the instance's revision moves all the same.
    #[test]
    fn a_plan_on_an_item_is_stale_once_a_finish_is_recorded_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let plan = plan(&store, |tx| {
            let found = tx.server_item(serial(1))?.unwrap();
            assert_eq!(found.status, ItemStatus::Pending);
            record_finish(tx, 1, None, "alice", 3_000)
        });
        store.write(|tx| record_finish(tx, 2, Some(data("other")), "bob", 2_500)).unwrap();
        assert!(holds(&store, &plan));
        store.write(|tx| record_finish(tx, 1, Some(data("first")), "bob", 2_500)).unwrap();
        assert!(!holds(&store, &plan));
    }

    #[test]
    fn a_plan_that_found_no_instance_is_stale_once_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let plan = plan(&store, |tx| {
            assert_eq!(tx.instance(7)?, None);
            Ok(())
        });
        store.write(|tx| insert_waiting(tx, 6)).unwrap();
        assert!(holds(&store, &plan));
        store.write(|tx| insert_waiting(tx, 7)).unwrap();
        assert!(!holds(&store, &plan));
    }

    #[test]
    fn a_plan_that_read_rights_is_stale_after_a_grant_or_revoke_on_that_process_and_user() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let read_rights = |store: &SqliteStore| {
            plan(store, |tx| {
                assert_eq!(tx.rights(P, "alice")?, [Right::ServerEvent]);
                record_finish(tx, 1, None, "alice", 3_000)
            })
        };

        let planned = read_rights(&store);
        store.write(|tx| tx.grant(P, "bob", Right::ServerEvent)).unwrap();
        store.write(|tx| tx.grant(Q, "alice", Right::Admin)).unwrap();
        assert!(holds(&store, &planned), "rights of another user or on another process");
        store.write(|tx| tx.grant(P, "alice", Right::View)).unwrap();
        assert!(!holds(&store, &planned), "granted");
        store.write(|tx| tx.revoke(P, "alice", Right::View)).unwrap();

        let planned = read_rights(&store);
        store.write(|tx| tx.revoke(P, "bob", Right::ServerEvent)).unwrap();
        store.write(|tx| tx.revoke(Q, "alice", Right::Admin)).unwrap();
        assert!(holds(&store, &planned), "rights of another user or on another process");
        store.write(|tx| tx.revoke(P, "alice", Right::ServerEvent)).unwrap();
        assert!(!holds(&store, &planned), "revoked");
    }

    #[test]
    fn a_plan_that_read_every_right_on_a_process_is_stale_after_any_grant_on_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let planned = plan(&store, |tx| {
            assert_eq!(tx.rights_on_process(P)?, [("alice".to_owned(), Right::ServerEvent)]);
            tx.revoke(P, "alice", Right::ServerEvent)
        });
        store.write(|tx| tx.grant(Q, "bob", Right::Start)).unwrap();
        assert!(holds(&store, &planned));
        store.write(|tx| tx.grant(P, "bob", Right::Start)).unwrap();
        assert!(!holds(&store, &planned));
    }

    #[test]
    fn a_plan_that_read_the_default_version_is_stale_after_a_redeploy() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let on_default = plan(&store, |tx| {
            assert_eq!(tx.default_version(P)?, Some(1));
            tx.insert_instance(&instance(3, "started"))
        });
        let on_latest = plan(&store, |tx| {
            assert_eq!(tx.latest_version(P)?, Some(1));
            tx.grant(P, "bob", Right::Start)
        });
        let on_version_1 = plan(&store, |tx| {
            assert_eq!(tx.version(P, 1)?, Some(version(P, 1)));
            tx.grant(P, "bob", Right::Start)
        });
        store.write(|tx| tx.insert_version(&version(Q, 2))).unwrap();
        assert!(holds(&store, &on_default) && holds(&store, &on_latest), "another process was redeployed");

        store.write(|tx| tx.insert_version(&version(P, 2))).unwrap();
        assert_eq!(store.read(|tx| tx.default_version(P)).unwrap(), Some(2));
        assert!(!holds(&store, &on_default), "the default version moved on");
        assert!(!holds(&store, &on_latest), "the latest version moved on");
        // A deployed version never changes: a plan that only read version 1
        // itself does not care that version 2 exists.
        assert!(holds(&store, &on_version_1));
    }

    #[test]
    fn a_plan_whose_new_instance_id_was_taken_since_is_stale() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let mut reserved = 0;
        let planned = plan(&store, |tx| {
            reserved = tx.next_instance_id()?;
            tx.insert_instance(&instance(reserved, "planned"))
        });
        assert_eq!(reserved, 3, "the first id after instances 1 and 2");
        assert!(planned.usable());
        assert!(holds(&store, &planned));

        // Work in this store's transactions shares the counter: it does not
        // pick the id a plan holds.
        let taken_here = store
            .write(|tx| {
                let id = tx.next_instance_id()?;
                insert_waiting(tx, id)?;
                Ok(id)
            })
            .unwrap();
        assert_eq!(taken_here, reserved + 1);
        assert!(holds(&store, &planned));

        // Another process (another store on the file) has its own counter and
        // takes the same id: the plan must notice.
        let other = SqliteStore::open(store.path(), Durability::Normal).unwrap();
        let taken_there = other
            .write(|tx| {
                let id = tx.next_instance_id()?;
                tx.insert_instance(&instance(id, "other process"))?;
                Ok(id)
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(taken_there, taken_here + 1, "the database's own next id");
        let collide = plan(&other, |tx| {
            assert_eq!(tx.next_instance_id()?, taken_there + 1);
            Ok(())
        });
        store.write(|tx| insert_waiting(tx, taken_there + 1)).unwrap();
        assert!(!holds(&other, &collide));

        // And the first plan's id, taken directly:
        store.write(|tx| tx.insert_instance(&instance(reserved, "taken"))).unwrap();
        assert!(!holds(&store, &planned));
    }

    #[test]
    fn a_read_after_a_write_makes_the_plan_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        type Work = fn(&mut dyn Transaction) -> Result<(), EngineError>;
        let after_writes: [(&str, Work); 4] = [
            ("rights after a grant", |tx| {
                tx.grant(P, "bob", Right::View)?;
                tx.rights(P, "bob").map(drop)
            }),
            ("an instance after its update", |tx| {
                tx.update_instance(&instance(1, "changed"))?;
                tx.instance(1).map(drop)
            }),
            ("an item after its finish", |tx| {
                record_finish(tx, 1, None, "alice", 3_000)?;
                tx.server_item(serial(1)).map(drop)
            }),
            ("a new id after an insert", |tx| {
                tx.insert_instance(&instance(3, "new"))?;
                tx.next_instance_id().map(drop)
            }),
        ];
        for (name, work) in after_writes {
            assert!(!plan(&store, work).usable(), "{name}");
        }

        // The same reads before the writes are what a plan is for.
        let reads_first = plan(&store, |tx| {
            tx.rights(P, "bob")?;
            tx.instance(1)?;
            tx.server_item(serial(1))?;
            let id = tx.next_instance_id()?;
            tx.grant(P, "bob", Right::View)?;
            tx.update_instance(&instance(1, "changed"))?;
            record_finish(tx, 1, None, "alice", 3_000)?;
            tx.insert_instance(&instance(id, "new"))
        });
        assert!(reads_first.usable());
        assert!(reads_first.wrote());
    }

    #[test]
    fn list_reads_make_the_plan_unusable() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let everyone = Visibility { all_of: vec![P.to_owned(), Q.to_owned()], ..Visibility::default() };
        type List<'v> = Box<dyn Fn(&mut dyn Transaction) -> Result<(), EngineError> + 'v>;
        let lists: [(&str, List<'_>); 6] = [
            ("instances", Box::new(|tx| tx.instances(&everyone, &InstanceFilter::default()).map(drop))),
            ("count_instances", Box::new(|tx| tx.count_instances(&everyone, &InstanceFilter::default()).map(drop))),
            ("items", Box::new(|tx| tx.items(&everyone, &ItemFilter::default()).map(drop))),
            ("processes", Box::new(|tx| tx.processes().map(drop))),
            ("running_instances", Box::new(|tx| tx.running_instances().map(drop))),
            ("rights_of_user", Box::new(|tx| tx.rights_of_user("alice").map(drop))),
        ];
        for (name, list) in &lists {
            // Even with nothing written: a list cannot be re-checked cheaply.
            assert!(!plan(&store, |tx| list(tx)).usable(), "{name}");
            let planned = plan(&store, |tx| {
                list(tx)?;
                tx.grant(P, "bob", Right::View)
            });
            assert!(!planned.usable(), "{name} before a write");
        }
        // Point reads alone leave the plan usable.
        let point_reads = plan(&store, |tx| {
            for (_, read) in INSTANCE_READS {
                read(tx, 1)?;
            }
            tx.rights(P, "alice")?;
            tx.rights_on_process(P)?;
            tx.default_version(P)?;
            tx.latest_version(P)?;
            tx.version(P, 1)?;
            tx.next_instance_id().map(drop)
        });
        assert!(point_reads.usable());
        assert!(!point_reads.wrote());
    }

    /// Work that reads first and then makes writes whose order matters: a
    /// revoke after a grant of the same right, an update after an insert, a
    /// finish after its item's creation.
    fn ordered_work(tx: &mut dyn Transaction) -> Result<i64, EngineError> {
        assert_eq!(tx.rights(P, "bob")?, []);
        let waiting = tx.instance(1)?.unwrap();
        let id = tx.next_instance_id()?;
        tx.insert_version(&version(P, 2))?;
        tx.grant(P, "bob", Right::View)?;
        tx.grant(P, "bob", Right::Start)?;
        tx.revoke(P, "bob", Right::View)?;

        let mut new = instance(id, "new");
        new.version = 2;
        new.status = InstanceStatus::Running;
        tx.insert_instance(&new)?;
        let started = vec![
            Effect::ActivityStarted {
                activity: 1,
                record: ActivityRecord {
                    destination_id: 2,
                    activity_id: "call".to_owned(),
                    activity: "Call".to_owned(),
                    status: ActivityStatus::Active,
                    started_at: 3_000,
                    finished_at: None,
                },
            },
            Effect::ItemCreated(Box::new(item(id, 2))),
            Effect::Audit(AuditEntry {
                at: 3_000,
                user: "bob".to_owned(),
                action: crate::engine::AuditAction::InstanceStarted,
                detail: "p version 2".to_owned(),
                place: None,
            }),
            Effect::LineEvaluated(LineResult { line_index: 0, from_destination_id: 1, fired: true, at: 3_000 }),
            Effect::TookPart { user: "bob".to_owned() },
        ];
        tx.write_effects(id, started)?;
        new.status = InstanceStatus::Active;
        new.data = data("updated");
        new.updated_at = 3_001;
        tx.update_instance(&new)?;
        record_finish(tx, id, Some(data("early")), "carol", 3_002)?;

        // The waiting instance is finished and applied at once.
        let mut finished = waiting;
        finished.status = InstanceStatus::Completed;
        finished.flow.tokens.clear();
        finished.updated_at = 3_003;
        tx.update_instance(&finished)?;
        let closing = vec![
            Effect::ActivityClosed { destination_id: 2, status: ActivityStatus::Completed, at: 3_003 },
            Effect::Audit(AuditEntry {
                at: 3_003,
                user: "alice".to_owned(),
                action: crate::engine::AuditAction::ItemFinished,
                detail: "1_2".to_owned(),
                place: None,
            }),
            Effect::ItemFinished { serial_id: 2, by: "alice".to_owned(), at: 3_003, unapplied: None },
        ];
        tx.write_effects(1, closing)?;
        Ok(id)
    }

    /// Everything the work could have changed, read back through the
    /// Transaction API.
    fn everything(store: &SqliteStore, new_id: i64) -> String {
        store
            .read(|tx| {
                let mut out = format!(
                    "{:?}\n{:?} {:?}\n{:?}\n{:?}\n{:?}\n",
                    tx.processes()?,
                    tx.default_version(P)?,
                    tx.latest_version(P)?,
                    tx.version(P, 2)?,
                    tx.rights_on_process(P)?,
                    tx.rights_of_user("bob")?,
                );
                for id in [1, 2, new_id] {
                    out += &format!(
                        "{id}: {:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?} {:?}\n",
                        tx.instance(id)?,
                        tx.instance_revision(id)?,
                        tx.item_state(id)?,
                        tx.server_item(serial(id))?,
                        tx.pending_items_of(id)?,
                        tx.audit(id)?,
                        tx.activity_records(id)?,
                        tx.line_results(id)?,
                        tx.is_participant(id, "bob")?,
                        tx.is_participant(id, "alice")?,
                    );
                }
                Ok(out)
            })
            .unwrap()
    }

    #[test]
    fn apply_replays_the_writes_in_order_with_the_effect_of_the_work_itself() {
        let planned_dir = tempfile::tempdir().unwrap();
        let planned_store = store(&planned_dir);
        let direct_dir = tempfile::tempdir().unwrap();
        let direct_store = store(&direct_dir);

        let mut planned_id = 0;
        let planned = plan(&planned_store, |tx| {
            planned_id = ordered_work(tx)?;
            Ok(())
        });
        assert!(planned.usable());
        // Planning wrote nothing to the database.
        assert_eq!(planned_store.read(|tx| tx.instance(planned_id)).unwrap(), None);
        assert_eq!(planned_store.read(|tx| tx.default_version(P)).unwrap(), Some(1));
        under_lock(&planned_store, |tx| {
            assert!(planned.still_holds(tx)?);
            planned.apply(tx)
        });

        let direct_id = direct_store.write(ordered_work).unwrap();
        assert_eq!(planned_id, direct_id);
        let applied = everything(&planned_store, planned_id);
        assert_eq!(applied, everything(&direct_store, direct_id));

        // And the work did what it says, so the comparison is not between two
        // stores where nothing happened.
        planned_store
            .read(|tx| {
                assert_eq!(tx.default_version(P)?, Some(2));
                assert_eq!(tx.rights(P, "bob")?, [Right::Start]);
                let new = tx.instance(planned_id)?.unwrap();
                assert_eq!((new.version, new.status, new.data), (2, InstanceStatus::Active, data("updated")));
                assert_eq!(tx.instance_revision(planned_id)?, Some(2), "an update and a kept finish");
                let kept = tx.server_item(serial(planned_id))?.unwrap();
                assert_eq!(kept.status, ItemStatus::Finished);
                assert_eq!(kept.unapplied, Some(data("early")));
                assert_eq!(kept.closed_by.as_deref(), Some("carol"));
                let finished = tx.server_item(serial(1))?.unwrap();
                assert_eq!((finished.status, finished.unapplied), (ItemStatus::Finished, None));
                assert_eq!(tx.instance(1)?.unwrap().status, InstanceStatus::Completed);
                assert_eq!(tx.audit(1)?.len(), 1);
                assert!(tx.is_participant(planned_id, "bob")?);
                Ok(())
            })
            .unwrap();
        // Instance 2 was not touched by either.
        assert!(applied.contains("2: Some(Instance { id: 2"));
    }

    /// Rights are remembered for a bounded number of users per process: a
    /// server given ever new user names does not grow for ever.
    #[test]
    fn remembered_rights_stay_bounded_and_keep_the_newest_user() {
        let memory = Remembered::default();
        for user in 0..REMEMBERED_USERS + 10 {
            memory.remember_rights(P, &format!("user{user}"), &[Right::View]);
        }
        let remembered = memory.rights.lock().unwrap();
        let users = &remembered[P];
        assert!(users.len() <= REMEMBERED_USERS, "{} users remembered", users.len());
        assert!(users.contains_key(&format!("user{}", REMEMBERED_USERS + 9)));
        drop(remembered);
        memory.remember_rights(Q, "alice", &[Right::Start]);
        assert_eq!(memory.rights(Q, "alice"), Some(vec![Right::Start]), "another process is remembered apart");
    }

    /// Writes `works` together (`write_planned_each`), each one adding a
    /// millisecond to its instance's `updated_at`; the commits they took.
    fn touch_each(store: &SqliteStore, works: &[i64], before_commit: impl Fn()) -> usize {
        let commits = std::sync::atomic::AtomicUsize::new(0);
        let results = store.write_planned_each(
            works.len(),
            |index, tx| {
                let mut loaded = tx.instance(works[index])?.unwrap();
                loaded.updated_at += 1;
                tx.update_instance(&loaded)
            },
            before_commit,
            || {
                commits.fetch_add(1, Ordering::SeqCst);
            },
        );
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        commits.into_inner()
    }

    fn updated_at(store: &SqliteStore, id: i64) -> i64 {
        store.read(|tx| tx.instance(id)).unwrap().unwrap().updated_at
    }

    /// Planned on one snapshot, writes of separate instances share one
    /// commit; a write on an instance an earlier one of them wrote was
    /// worked out without that write, so it runs after it, alone, and
    /// builds on it instead of undoing it.
    #[test]
    fn writes_planned_together_share_a_commit_and_a_second_on_one_instance_runs_after_the_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let before = (updated_at(&store, 1), updated_at(&store, 2));
        assert_eq!(touch_each(&store, &[1, 2, 1], || {}), 2, "1 and 2 together, then 1 again");
        assert_eq!((updated_at(&store, 1), updated_at(&store, 2)), (before.0 + 2, before.1 + 1));
        assert_eq!(touch_each(&store, &[1, 2], || {}), 1);
        assert_eq!((updated_at(&store, 1), updated_at(&store, 2)), (before.0 + 3, before.1 + 2));
    }

    /// Another caller writes one of the instances between planning and the
    /// commit: the plans together are stale, so each write runs again alone
    /// on what is committed, and none is lost or applied twice.
    #[test]
    fn writes_planned_together_found_stale_run_again_each_alone() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(&dir);
        let before = (updated_at(&store, 1), updated_at(&store, 2));
        let meddled = std::sync::atomic::AtomicBool::new(false);
        let commits = touch_each(&store, &[1, 2], || {
            if !meddled.swap(true, Ordering::SeqCst) {
                bump(&store, 2);
            }
        });
        assert_eq!(commits, 2, "each alone");
        assert_eq!((updated_at(&store, 1), updated_at(&store, 2)), (before.0 + 1, before.1 + 2));
    }
}
