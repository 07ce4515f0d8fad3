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

use std::collections::BTreeMap;
use std::sync::atomic::AtomicI64;

use crate::engine::instance::Changes;
use crate::engine::{
    ActivityRecord, AuditEntry, EngineError, Instance, InstanceFilter, InstanceSummary, ItemFilter, ItemState,
    LineResult, Millis, ProcessSummary, RunningInstance, Serial, ServerItem, Transaction, VersionRecord, Visibility,
};
use crate::model::{Right, Value};

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

/// A write the planned work made, to be applied under the lock.
#[derive(Debug, Clone)]
enum Write {
    InsertVersion(VersionRecord),
    Grant { process: String, user: String, right: Right },
    Revoke { process: String, user: String, right: Right },
    InsertInstance(Instance),
    UpdateInstance(Instance),
    Changes { instance_id: i64, changes: Changes },
    RecordFinish { serial: Serial, unapplied: Option<BTreeMap<String, Value>>, by: String, at: Millis },
}

/// What planned work read and would write.
#[derive(Debug, Default)]
pub struct Plan {
    reads: Vec<Read>,
    writes: Vec<Write>,
    /// The work read something a plan cannot check cheaply (a list, or
    /// something it had written itself): it must run in the transaction.
    unplannable: bool,
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
    pub fn apply(&self, tx: &mut dyn Transaction) -> Result<(), EngineError> {
        for write in &self.writes {
            match write {
                Write::InsertVersion(record) => tx.insert_version(record)?,
                Write::Grant { process, user, right } => tx.grant(process, user, *right)?,
                Write::Revoke { process, user, right } => tx.revoke(process, user, *right)?,
                Write::InsertInstance(instance) => tx.insert_instance(instance)?,
                Write::UpdateInstance(instance) => tx.update_instance(instance)?,
                Write::Changes { instance_id, changes } => tx.write_changes(*instance_id, changes)?,
                Write::RecordFinish { serial, unapplied, by, at } => {
                    tx.record_finish(*serial, unapplied.as_ref(), by, *at)?
                }
            }
        }
        Ok(())
    }

    pub fn wrote(&self) -> bool {
        !self.writes.is_empty()
    }
}

/// A [`Transaction`] over a read snapshot that records a [`Plan`].
pub struct Recorder<'a> {
    snapshot: &'a mut dyn Transaction,
    /// The store's instance id counter: ids handed out while planning are
    /// taken from it, so that concurrent plans never pick the same one.
    ids: &'a AtomicI64,
    plan: Plan,
}

impl<'a> Recorder<'a> {
    pub fn new(snapshot: &'a mut dyn Transaction, ids: &'a AtomicI64) -> Recorder<'a> {
        Recorder { snapshot, ids, plan: Plan::default() }
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
        let version = self.snapshot.default_version(process)?;
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
        let rights = self.snapshot.rights(process, user)?;
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
        let stored = self.snapshot.next_instance_id()?;
        let id = super::sql::reserve_id(self.ids, stored);
        self.plan.reads.push(Read::NewInstance { id });
        Ok(id)
    }

    fn insert_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        self.write(Write::InsertInstance(instance.clone()));
        Ok(())
    }

    fn instance(&mut self, id: i64) -> Result<Option<Instance>, EngineError> {
        self.reading();
        let instance = self.snapshot.instance(id)?;
        if !self.plan.reads.iter().any(|read| matches!(read, Read::Instance { id: seen, .. } if *seen == id)) {
            let revision = instance.as_ref().map(|instance| instance.revision);
            self.plan.reads.push(Read::Instance { id, revision });
        }
        Ok(instance)
    }

    fn instance_revision(&mut self, id: i64) -> Result<Option<i64>, EngineError> {
        self.note_instance(id)?;
        self.snapshot.instance_revision(id)
    }

    fn update_instance(&mut self, instance: &Instance) -> Result<(), EngineError> {
        self.write(Write::UpdateInstance(instance.clone()));
        Ok(())
    }

    fn write_changes(&mut self, instance_id: i64, changes: &Changes) -> Result<(), EngineError> {
        self.write(Write::Changes { instance_id, changes: changes.clone() });
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

    fn record_finish(
        &mut self,
        serial: Serial,
        unapplied: Option<&BTreeMap<String, Value>>,
        by: &str,
        at: Millis,
    ) -> Result<(), EngineError> {
        self.write(Write::RecordFinish { serial, unapplied: unapplied.cloned(), by: by.to_owned(), at });
        Ok(())
    }

    fn running_instances(&mut self) -> Result<Vec<RunningInstance>, EngineError> {
        self.unchecked();
        self.snapshot.running_instances()
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
}
