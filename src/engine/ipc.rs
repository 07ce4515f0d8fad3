//! Sub-process (IPC) events as the engine runs them: a child started in the
//! parent's transaction, and a child's completion finishing its waiting
//! parent's item in the child's transaction.
//!
//! The executor stays a function of one instance: at an IPC event it asks a
//! [`ChildStarter`] for the child and records what it was told
//! (`Effect::ChildStarted`, the parent's item, the wait). The engine's
//! starter, [`InTransaction`], holds the call's transaction, so the child's
//! rows commit with the parent's step or not at all: no parent waits for a
//! child that was never started, and no child runs whose parent's step was
//! lost. The child's start runs as any start does (its own IPC events start
//! grandchildren through the same starter, each one level deeper, up to
//! [`crate::model::ipc::MAX_DEPTH`]).
//!
//! A waiting parent's wait is an ordinary server item, and the child's
//! completion is its callback: [`InTransaction::save`] sees a child's save
//! that completes it and, in the same transaction, finishes the parent's
//! item with `Command::Finish` as the child's user ([`child_user`]), with
//! the output mappings' values. The table decides as for any callback:
//! applied while the parent runs or waits, held while it is stopped or in
//! error, refused when an operator finished the item by hand or a go-to
//! cancelled it (the child's trail then says that nothing was copied back).
//! No Server Event right is asked: the engine acts, as for a timer. A child
//! that completes within its own start (it never waited) is handed back to
//! the executor, which applies it as an early callback before the parent's
//! step commits.
//!
//! Whose right: the child runs as the parent's originator (the user the
//! parent instance runs for, whoever moved it on last), who must hold Start
//! on the child's process.

use std::cell::{RefCell, RefMut};
use std::collections::BTreeMap;
use std::sync::Arc;

use crate::engine::executor::{Executor, RunEnd};
use crate::engine::instance::{AuditAction, AuditEntry, FlowState, Instance, InstanceStatus, Millis, ParentLink};
use crate::engine::machine::{self, Command, Decision, Effect, ItemState, State};
use crate::engine::storage::{Storage, Transaction};
use crate::engine::{Engine, EngineError, FieldInput, Step, check_folio, find_item, require};
use crate::model::{
    CompiledProcess, EventAction, FieldType, IpcSpec, Location, Problem, Right, Severity, TemplateValues, Value,
};

/// Starts the child of an IPC event for the executor, in the caller's
/// transaction.
pub(crate) trait ChildStarter {
    /// The child started (and run to its first wait), or why it cannot
    /// start, in words for the parent's error.
    fn start_child(&self, request: &ChildRequest<'_>) -> Result<ChildStarted, String>;
}

/// What starting a child needs of its parent.
pub(crate) struct ChildRequest<'a> {
    pub parent: &'a Instance,
    pub parent_fields: &'a BTreeMap<String, FieldType>,
    pub spec: &'a IpcSpec,
    /// The parent's context and data, which the folio and input mappings are filled from.
    pub values: TemplateValues<'a>,
    pub link: ParentLink,
}

pub(crate) struct ChildStarted {
    pub id: i64,
    pub version: u32,
    pub status: InstanceStatus,
    /// Set when the child completed within its start and its parent waits
    /// for it.
    pub completed: Option<Completed>,
}

/// A completed child's output mappings, for its parent.
pub(crate) struct Completed {
    pub values: BTreeMap<String, Value>,
    /// A line per mapping that could not be copied.
    pub skipped: Vec<String>,
}

/// The most children one call may start, all generations together: depth
/// alone does not bound a process whose activities start many children
/// each (fifty events calling themselves, eight deep, would be 50⁸ starts in
/// one transaction). The event that would start one more fails, and the
/// instance is in Error for an operator to look at.
pub const MAX_CHILDREN_PER_CALL: usize = 1_000;

/// The user a child's completion acts as on its parent's item ("already
/// finished at … by instance 12").
pub fn child_user(id: i64) -> String {
    format!("instance {id}")
}

/// The engine's [`ChildStarter`]: one call's transaction, shared by the
/// run of the instance the call is about and every child, and parent
/// finished by a child, in it.
pub(crate) struct InTransaction<'e, 't, S: Storage> {
    engine: &'e Engine<S>,
    tx: RefCell<&'t mut dyn Transaction>,
    now: Millis,
    /// Instances other than the call's own that this transaction left with
    /// work to do outside it (a child at an HTTP request, say): the call
    /// runs it once committed.
    later: RefCell<Vec<Step>>,
    /// A failure of the store met while starting a child: the call fails
    /// with it, and nothing is written.
    failure: RefCell<Option<EngineError>>,
    /// Children started, written after the call's own instance: a planned
    /// write reads everything before it writes anything (a read after a
    /// write sends it to run again in the transaction), so the reads of a
    /// second child must not follow the first child's rows.
    started: RefCell<Vec<Started>>,
    /// Children started by this call so far ([`MAX_CHILDREN_PER_CALL`]).
    count: std::cell::Cell<usize>,
}

/// A child started in this transaction, to write.
struct Started {
    instance: Instance,
    decision: Decision,
    process: Arc<CompiledProcess>,
}

impl<'e, 't, S: Storage> InTransaction<'e, 't, S> {
    pub(crate) fn new(engine: &'e Engine<S>, tx: &'t mut dyn Transaction, now: Millis) -> Self {
        InTransaction {
            engine,
            tx: RefCell::new(tx),
            now,
            later: RefCell::new(Vec::new()),
            failure: RefCell::new(None),
            started: RefCell::new(Vec::new()),
            count: std::cell::Cell::new(0),
        }
    }

    pub(crate) fn tx(&self) -> RefMut<'_, &'t mut dyn Transaction> {
        self.tx.borrow_mut()
    }

    /// An executor for `process` acting as `user` that starts children here.
    pub(crate) fn executor<'a>(&'a self, process: &'a CompiledProcess, user: &'a str) -> Executor<'a> {
        self.engine.executor(process, user, self.now, Some(self))
    }

    /// Fails with the store's failure if starting a child met one (the
    /// decision made meanwhile is not to be written).
    pub(crate) fn check(&self) -> Result<(), EngineError> {
        match self.failure.borrow_mut().take() {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }

    /// The instances to run on once the transaction committed (the
    /// children started are written by now).
    pub(crate) fn into_later(self) -> Result<Vec<Step>, EngineError> {
        self.check()?;
        self.write_started()?;
        Ok(self.later.into_inner())
    }

    /// Writes the children started so far, as any start is written.
    fn write_started(&self) -> Result<(), EngineError> {
        let started = std::mem::take(&mut *self.started.borrow_mut());
        for Started { mut instance, decision, process } in started {
            let end = decision.end;
            let user = instance.originator.clone();
            let executor = self.engine.executor(&process, &user, self.now, None);
            self.engine.save(&mut **self.tx(), &mut instance, decision, &executor, true)?;
            self.run_later(&instance, &process, end);
        }
        Ok(())
    }

    /// Writes a decision as [`Engine::save`] does; when it completes a child
    /// whose parent waits for it, the parent's item is finished first, in
    /// this transaction, and the child's trail says how that went.
    pub(crate) fn save(
        &self,
        instance: &mut Instance,
        mut decision: Decision,
        executor: &Executor<'_>,
        new: bool,
    ) -> Result<(), EngineError> {
        self.check()?;
        let completes = !decision.held
            && decision
                .effects
                .iter()
                .any(|e| matches!(e, Effect::StatusChanged { to: InstanceStatus::Completed, .. }));
        if completes {
            for detail in self.notify_parent(instance)? {
                let entry = AuditEntry {
                    at: self.now,
                    user: executor.user.to_owned(),
                    action: AuditAction::ParentNotified,
                    detail,
                    place: None,
                };
                decision.effects.push(Effect::Audit(entry));
            }
        }
        self.engine.save(&mut **self.tx(), instance, decision, executor, new)?;
        self.write_started()
    }

    /// Finishes the item the completed `child`'s parent waits on, with the
    /// output mappings; the lines for the child's trail.
    fn notify_parent(&self, child: &Instance) -> Result<Vec<String>, EngineError> {
        let Some(serial) = child.flow.parent.as_ref().and_then(ParentLink::serial) else {
            return Ok(Vec::new());
        };
        let found = find_item(&mut **self.tx(), serial);
        let (item, mut parent) = match found {
            Ok(found) => found,
            Err(EngineError::ItemNotFound { .. }) => {
                return Ok(vec![format!("{serial} of instance {} is gone: nothing copied back", serial.instance_id)]);
            }
            Err(other) => return Err(other),
        };
        let process = self.engine.compiled(&mut **self.tx(), &parent.process, parent.version)?;
        let spec = process
            .activities
            .iter()
            .find(|activity| activity.name == item.activity)
            .and_then(|activity| activity.events.get(item.event_index))
            .and_then(|event| match &event.action {
                EventAction::Ipc(spec) => Some(spec),
                EventAction::Script(_) | EventAction::Http(_) | EventAction::Mail(_) | EventAction::Wait(_) => None,
            });
        let (values, mut lines) = match spec {
            Some(spec) => spec.fill_outputs(&child.data, &process.field_types),
            None => (BTreeMap::new(), Vec::new()),
        };
        let data: Vec<(String, FieldInput)> = values.into_iter().map(|(k, v)| (k, FieldInput::Value(v))).collect();
        let user = child_user(child.id);
        let executor = self.executor(&process, &user);
        let items = self.tx().item_state(parent.id)?;
        let state = State { instance: &mut parent, items };
        match machine::decide(&executor, state, Command::Finish { item: &item, data: &data }) {
            Ok(mut decision) => {
                // The engine acts, not a person: nobody takes part.
                decision.effects.retain(|e| !matches!(e, Effect::TookPart { .. }));
                let (held, end) = (decision.held, decision.end);
                self.save(&mut parent, decision, &executor, false)?;
                self.run_later(&parent, &process, end);
                let applied = if held { "; applied when it runs again" } else { "" };
                lines.insert(0, format!("finished {serial} of instance {}{applied}", parent.id));
            }
            Err(refusal) => {
                let why = EngineError::from(refusal);
                lines.insert(0, format!("{serial} of instance {}: {why}: nothing copied back", parent.id));
            }
        }
        Ok(lines)
    }

    fn run_later(&self, instance: &Instance, process: &Arc<CompiledProcess>, end: RunEnd) {
        if matches!(end, RunEnd::Outside { .. }) {
            let step = Step { instance: instance.clone(), process: process.clone(), end, later: Vec::new() };
            self.later.borrow_mut().push(step);
        }
    }

    /// [`ChildStarter::start_child`], with the store's failures apart from
    /// the reasons a child cannot start.
    fn try_start(&self, request: &ChildRequest<'_>) -> Result<Result<ChildStarted, String>, EngineError> {
        let spec = request.spec;
        let child = &spec.process;
        let user = &request.parent.originator;
        if self.count.get() >= MAX_CHILDREN_PER_CALL {
            return Ok(Err(format!(
                "cannot start `{child}`: this step has started {MAX_CHILDREN_PER_CALL} sub-processes already, the most one step may"
            )));
        }
        self.count.set(self.count.get() + 1);
        let version = {
            let mut tx = self.tx();
            let version = match spec.version {
                Some(version) if tx.version(child, version)?.is_some() => version,
                Some(version) => return Ok(Err(format!("process `{child}` has no version {version}"))),
                None => match tx.default_version(child)? {
                    Some(version) => version,
                    None => return Ok(Err(format!("process `{child}` is not deployed"))),
                },
            };
            match require(&mut **tx, child, user, Right::Start) {
                Ok(()) => {}
                Err(refused @ EngineError::PermissionDenied { .. }) => {
                    return Ok(Err(format!("cannot start `{child}`: {refused}")));
                }
                Err(other) => return Err(other),
            }
            version
        };
        let compiled = self.engine.compiled(&mut **self.tx(), child, version)?;
        let folio = match spec.fill_folio(&request.values) {
            Ok(folio) => folio,
            Err(message) => return Ok(Err(message)),
        };
        if let Err(refused) = check_folio(&folio) {
            return Ok(Err(format!("the child's folio: {refused}")));
        }
        let inputs = match spec.fill_inputs(&request.values, &compiled.field_types, &compiled.time_zone) {
            Ok(inputs) => inputs,
            Err(message) => return Ok(Err(message)),
        };
        let mut data = compiled.defaults.clone();
        data.extend(inputs);
        let id = self.tx().next_instance_id()?;
        let mut instance = Instance {
            id,
            process: child.clone(),
            version,
            folio,
            originator: user.clone(),
            status: InstanceStatus::Running,
            data,
            flow: FlowState { next_destination_id: 1, parent: Some(request.link.clone()), ..FlowState::default() },
            started_at: self.now,
            updated_at: self.now,
            runner: None,
            lease_until: None,
            revision: 0,
        };
        let executor = self.executor(&compiled, user);
        let state = State { instance: &mut instance, items: ItemState::default() };
        let decision = machine::decide(&executor, state, Command::Start)?;
        self.check()?;
        // Written as any start is, after the parent: a child that completed
        // here is handed back to its parent rather than notifying it.
        let completed = (instance.status == InstanceStatus::Completed && request.link.serial_id.is_some()).then(|| {
            let (values, skipped) = spec.fill_outputs(&instance.data, request.parent_fields);
            Completed { values, skipped }
        });
        let status = instance.status;
        self.started.borrow_mut().push(Started { instance, decision, process: compiled });
        Ok(Ok(ChildStarted { id, version, status, completed }))
    }
}

impl<S: Storage> ChildStarter for InTransaction<'_, '_, S> {
    fn start_child(&self, request: &ChildRequest<'_>) -> Result<ChildStarted, String> {
        match self.try_start(request) {
            Ok(answer) => answer,
            Err(failure) => {
                let message = failure.to_string();
                self.failure.borrow_mut().get_or_insert(failure);
                Err(message)
            }
        }
    }
}

/// The problems of a draft's IPC events that only the deployed processes
/// tell: a child that is not deployed (or lacks the version named), and
/// mappings to fields the child lacks or of other types. Checked against
/// the child's version the event names, or its default version now (a
/// later default is checked again when the event runs). A process calling
/// itself is checked by validation against its own fields.
pub(crate) fn deployed_child_problems<S: Storage>(
    engine: &Engine<S>,
    tx: &mut dyn Transaction,
    compiled: &CompiledProcess,
) -> Result<Vec<Problem>, EngineError> {
    let mut problems = Vec::new();
    for (activity_index, activity) in compiled.activities.iter().enumerate() {
        for (index, event) in activity.events.iter().enumerate() {
            let EventAction::Ipc(spec) = &event.action else { continue };
            let child = &spec.process;
            if *child == compiled.draft.name {
                continue;
            }
            let draft_activity = &compiled.draft.activities[activity_index];
            let location = Location::Event {
                activity_id: draft_activity.id.clone(),
                activity_name: draft_activity.name.clone(),
                index,
                name: event.name.clone(),
            };
            let mut error = |message: String| {
                problems.push(Problem { severity: Severity::Error, location: location.clone(), message })
            };
            let version = match spec.version {
                Some(version) if tx.version(child, version)?.is_some() => version,
                Some(version) => {
                    error(format!("process `{child}` has no version {version}"));
                    continue;
                }
                None => match tx.default_version(child)? {
                    Some(version) => version,
                    None => {
                        error(format!("child process `{child}` is not deployed: deploy it first"));
                        continue;
                    }
                },
            };
            let child_process = engine.compiled(tx, child, version)?;
            for message in spec.check_child(&child_process.field_types, &compiled.field_types) {
                error(format!("{message} (version {version})"));
            }
        }
    }
    Ok(problems)
}
