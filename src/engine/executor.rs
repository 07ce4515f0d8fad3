//! The run loop: moves an instance's tokens forward until it waits or completes.
//!
//! This is a pure function of the compiled process, the loaded instance and the
//! clock: it mutates the in-memory [`Instance`] and records every other change in
//! [`Changes`] for the store to write in the caller's transaction. It never waits
//! and never does IO, except for running scripts, which are bounded by their
//! operation budget.
//!
//! An asynchronous event's script that may hand its serial to the outside world
//! cannot run inside a transaction: its server item must be committed first so
//! a fast callback can find it. So the loop stops there with
//! [`RunEnd::AsyncScript`], and the engine commits, runs the script, and comes
//! back through [`Executor::apply_async_script`]. A script that cannot call out
//! (no embedder functions installed) runs in the loop like a synchronous one:
//! nobody can call back before it ends, so nothing is gained by committing
//! first, and a transaction per lifecycle is saved.

use std::collections::{BTreeMap, BTreeSet};

use crate::engine::instance::{
    ActivityRecord, ActivityStatus, AuditEntry, Changes, FailureInfo, Instance, InstanceStatus, ItemStatus, Millis,
    ServerItem, Token, TokenState,
};
use crate::model::{CompiledProcess, PrecedingRule, ScriptContext, ScriptFailure, ScriptHost, ScriptOutcome, Value};

/// A finish recorded on a server item that the instance has not applied yet.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedFinish {
    pub data: BTreeMap<String, Value>,
    pub by: String,
}

/// What the executor needs to know about an instance's server items.
#[derive(Debug, Default, Clone)]
pub struct ItemState {
    /// Serial ids of items that are pending or hold an unapplied finish, so a
    /// retried asynchronous event keeps its serial.
    pub pending: BTreeSet<i64>,
    /// Finishes to apply, by serial id.
    pub recorded: BTreeMap<i64, RecordedFinish>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Nothing is ready: the instance waits, completed, failed or is stopped.
    Settled,
    /// An asynchronous event's server item was created; commit, then run its script.
    AsyncScript { serial_id: i64 },
}

pub struct Executor<'a> {
    pub process: &'a CompiledProcess,
    pub host: &'a ScriptHost,
    pub now: Millis,
    /// The user acting: the originator for a start, the caller for a finish.
    pub user: &'a str,
    /// Activity completions and events one run may make before it is taken for an
    /// endless loop of synchronous steps.
    pub max_steps: usize,
    /// Run asynchronous scripts here, in the transaction that creates their
    /// server item, instead of stopping with [`RunEnd::AsyncScript`]. Only
    /// right when no script can hand its serial out (see
    /// [`ScriptHost::can_call_out`]): then no callback can arrive while it
    /// runs, and an item, its script's work and the wait commit as one.
    pub inline_async_scripts: bool,
}

impl Executor<'_> {
    pub fn audit(&self, changes: &mut Changes, action: &str, detail: String) {
        changes.audit.push(AuditEntry { at: self.now, user: self.user.to_owned(), action: action.to_owned(), detail });
    }

    /// Creates a token for `activity`, recording the activity instance.
    pub fn open_activity(&self, instance: &mut Instance, activity: usize, changes: &mut Changes) {
        let destination_id = instance.flow.next_destination_id;
        instance.flow.next_destination_id += 1;
        instance.flow.tokens.push(Token {
            destination_id,
            activity,
            next_event: 0,
            state: TokenState::Ready,
            serial_id: None,
        });
        let compiled = &self.process.activities[activity];
        changes.activities_started.push(ActivityRecord {
            destination_id,
            activity_id: compiled.id.clone(),
            activity: compiled.name.clone(),
            status: ActivityStatus::Active,
            started_at: self.now,
            finished_at: None,
        });
        self.audit(changes, "Activity started", format!("{} (#{destination_id})", compiled.name));
    }

    fn context(&self, instance: &Instance, token: &Token, serial: Option<i64>) -> ScriptContext {
        let activity = &self.process.activities[token.activity];
        ScriptContext {
            serial: serial.map(|id| instance.serial(id).to_string()),
            instance_id: instance.id,
            folio: instance.folio.clone(),
            activity: activity.name.clone(),
            event: activity.events.get(token.next_event).map(|e| e.name.clone()).unwrap_or_default(),
        }
    }

    /// Runs ready tokens until none is left or an asynchronous script must run.
    pub fn run(&self, instance: &mut Instance, items: &mut ItemState, changes: &mut Changes) -> RunEnd {
        let mut steps = 0;
        loop {
            if instance.status == InstanceStatus::Stopped {
                return RunEnd::Settled;
            }
            self.apply_recorded_finishes(instance, items, changes);
            let Some(position) = instance.flow.tokens.iter().position(|t| t.state == TokenState::Ready) else {
                return RunEnd::Settled;
            };
            steps += 1;
            if steps > self.max_steps {
                let message = format!(
                    "ran {} steps without waiting for anything: an endless loop of activities?",
                    self.max_steps
                );
                self.fail(instance, position, message, changes);
                return RunEnd::Settled;
            }
            let token = instance.flow.tokens[position].clone();
            let activity = &self.process.activities[token.activity];
            let Some(event) = activity.events.get(token.next_event) else {
                self.complete_activity(instance, position, changes);
                continue;
            };
            if event.synchronous {
                let context = self.context(instance, &token, None);
                match self.host.run_script(&event.script, &self.process.field_types, &instance.data, &context) {
                    Ok(outcome) => {
                        self.apply_outcome(instance, outcome, &event.name, changes);
                        instance.flow.tokens[position].next_event += 1;
                    }
                    Err(failure) => {
                        let message = describe_failure(&failure);
                        self.fail(instance, position, message, changes);
                    }
                }
            } else {
                let reused = token.serial_id.filter(|id| items.pending.contains(id));
                let serial_id = match reused {
                    Some(id) => id,
                    None => {
                        let id = match token.serial_id {
                            None => token.destination_id,
                            Some(_) => {
                                let id = instance.flow.next_destination_id;
                                instance.flow.next_destination_id += 1;
                                id
                            }
                        };
                        self.create_item(instance, &token, id, changes);
                        items.pending.insert(id);
                        id
                    }
                };
                let running = &mut instance.flow.tokens[position];
                running.serial_id = Some(serial_id);
                running.state = TokenState::ScriptRunning;
                if !self.inline_async_scripts {
                    return RunEnd::AsyncScript { serial_id };
                }
                let context = self.context(instance, &token, Some(serial_id));
                let result = self.host.run_script(&event.script, &self.process.field_types, &instance.data, &context);
                self.end_script(instance, position, serial_id, result, changes);
            }
        }
    }

    fn create_item(&self, instance: &Instance, token: &Token, serial_id: i64, changes: &mut Changes) {
        let activity = &self.process.activities[token.activity];
        let event = &activity.events[token.next_event];
        let serial = instance.serial(serial_id);
        changes.items_created.push(ServerItem {
            serial,
            activity_destination_id: token.destination_id,
            event_index: token.next_event,
            process: instance.process.clone(),
            folio: instance.folio.clone(),
            activity: activity.name.clone(),
            event: event.name.clone(),
            status: ItemStatus::Pending,
            script_running: !self.inline_async_scripts,
            created_at: self.now,
            closed_at: None,
            closed_by: None,
            unapplied: None,
        });
        self.audit(changes, "Server item created", format!("{serial} for `{}`", event.name));
    }

    /// Runs an asynchronous event's script on a copy of the data, outside any
    /// transaction. The result is applied later by [`Executor::apply_async_script`].
    pub fn run_async_script(
        &self,
        instance: &Instance,
        serial_id: i64,
    ) -> Option<Result<ScriptOutcome, ScriptFailure>> {
        let token = instance
            .flow
            .tokens
            .iter()
            .find(|t| t.serial_id == Some(serial_id) && t.state == TokenState::ScriptRunning)?;
        let event = self.process.activities[token.activity].events.get(token.next_event)?;
        let context = self.context(instance, token, Some(serial_id));
        Some(self.host.run_script(&event.script, &self.process.field_types, &instance.data, &context))
    }

    /// Applies an asynchronous script's result: the token now waits for its
    /// callback, or moves on at once if a finish arrived while the script ran.
    /// Returns false if the token was no longer running that script (another
    /// runner already applied it), in which case nothing changed.
    pub fn apply_async_script(
        &self,
        instance: &mut Instance,
        serial_id: i64,
        result: Result<ScriptOutcome, ScriptFailure>,
        changes: &mut Changes,
    ) -> bool {
        let Some(position) = instance
            .flow
            .tokens
            .iter()
            .position(|t| t.serial_id == Some(serial_id) && t.state == TokenState::ScriptRunning)
        else {
            return false;
        };
        changes.items_script_ended.push(serial_id);
        self.end_script(instance, position, serial_id, result, changes);
        true
    }

    /// The script of the token at `position` ended: it now waits for its
    /// callback, or has failed.
    fn end_script(
        &self,
        instance: &mut Instance,
        position: usize,
        serial_id: i64,
        result: Result<ScriptOutcome, ScriptFailure>,
        changes: &mut Changes,
    ) {
        let token = &instance.flow.tokens[position];
        let activity = &self.process.activities[token.activity];
        let event_name = activity.events.get(token.next_event).map(|e| e.name.clone()).unwrap_or_default();
        match result {
            Ok(outcome) => {
                self.apply_outcome(instance, outcome, &event_name, changes);
                instance.flow.tokens[position].state = TokenState::Waiting;
                let serial = instance.serial(serial_id);
                self.audit(changes, "Waiting for callback", format!("{serial} (`{event_name}`)"));
            }
            Err(failure) => {
                let message = describe_failure(&failure);
                self.fail(instance, position, message, changes);
            }
        }
    }

    fn apply_recorded_finishes(&self, instance: &mut Instance, items: &mut ItemState, changes: &mut Changes) {
        for position in 0..instance.flow.tokens.len() {
            let token = &instance.flow.tokens[position];
            if token.state != TokenState::Waiting {
                continue;
            }
            let Some(serial_id) = token.serial_id else { continue };
            let Some(finish) = items.recorded.remove(&serial_id) else { continue };
            items.pending.remove(&serial_id);
            for (field, value) in finish.data {
                instance.data.insert(field, value);
            }
            changes.items_applied.push(serial_id);
            let serial = instance.serial(serial_id);
            self.audit(changes, "Callback applied", format!("{serial} finished by {}", finish.by));
            let token = &mut instance.flow.tokens[position];
            token.next_event += 1;
            token.state = TokenState::Ready;
        }
    }

    fn apply_outcome(&self, instance: &mut Instance, outcome: ScriptOutcome, event: &str, changes: &mut Changes) {
        for (field, value) in outcome.changed {
            instance.data.insert(field, value);
        }
        for line in outcome.logs {
            self.audit(changes, "Log", format!("{event}: {line}"));
        }
    }

    fn fail(&self, instance: &mut Instance, position: usize, message: String, changes: &mut Changes) {
        let token = &mut instance.flow.tokens[position];
        token.state = TokenState::Failed;
        let activity = &self.process.activities[token.activity];
        let event = activity.events.get(token.next_event).map(|e| e.name.clone()).unwrap_or_default();
        let failure = FailureInfo {
            destination_id: token.destination_id,
            activity: activity.name.clone(),
            event: event.clone(),
            message: message.clone(),
            at: self.now,
        };
        let where_ =
            if event.is_empty() { format!("`{}`", activity.name) } else { format!("`{}` / `{event}`", activity.name) };
        self.audit(changes, "Error", format!("{where_}: {message}"));
        instance.flow.failure = Some(failure);
    }

    fn complete_activity(&self, instance: &mut Instance, position: usize, changes: &mut Changes) {
        let token = instance.flow.tokens.remove(position);
        let activity = &self.process.activities[token.activity];
        changes.activities_closed.push((token.destination_id, ActivityStatus::Completed, self.now));
        self.audit(changes, "Activity completed", format!("{} (#{})", activity.name, token.destination_id));
        let context = ScriptContext {
            serial: None,
            instance_id: instance.id,
            folio: instance.folio.clone(),
            activity: activity.name.clone(),
            event: String::new(),
        };
        for &line_index in &activity.outgoing {
            let line = &self.process.lines[line_index];
            let fired = match &line.rule {
                None => true,
                Some(rule) => match self.host.eval_rule(rule, &instance.data, &context) {
                    Ok(value) => value,
                    Err(failure) => {
                        // A rule that cannot be evaluated is a design error: stop
                        // here so an operator sees it, rather than take a branch.
                        changes.line_results.push(crate::engine::instance::LineResult {
                            line_index,
                            from_destination_id: token.destination_id,
                            fired: false,
                            at: self.now,
                        });
                        let target = &self.process.activities[line.to].name;
                        self.audit(
                            changes,
                            "Error",
                            format!("rule of line {} → {target}: {}", activity.name, describe_failure(&failure)),
                        );
                        instance.flow.failure = Some(FailureInfo {
                            destination_id: token.destination_id,
                            activity: activity.name.clone(),
                            event: String::new(),
                            message: format!("rule `{}`: {}", line.rule_text, describe_failure(&failure)),
                            at: self.now,
                        });
                        // Keep a failed token on the activity's lines so retry
                        // evaluates them again after the data is corrected.
                        instance.flow.tokens.push(Token { state: TokenState::Failed, ..token });
                        return;
                    }
                },
            };
            changes.line_results.push(crate::engine::instance::LineResult {
                line_index,
                from_destination_id: token.destination_id,
                fired,
                at: self.now,
            });
            if fired {
                self.arrive(instance, line.to, line_index, changes);
            }
        }
    }

    /// A line fired into `target`: start it, or count it towards an `All` join.
    fn arrive(&self, instance: &mut Instance, target: usize, line_index: usize, changes: &mut Changes) {
        let activity = &self.process.activities[target];
        if activity.preceding_rule == PrecedingRule::All && activity.incoming.len() > 1 {
            let fired = instance.flow.joins.entry(target).or_default();
            fired.insert(line_index);
            if !activity.incoming.iter().all(|l| fired.contains(l)) {
                return;
            }
            instance.flow.joins.remove(&target);
        }
        self.open_activity(instance, target, changes);
    }
}

/// The status an instance is in after a run, judged from its tokens.
pub fn settled_status(instance: &Instance) -> InstanceStatus {
    if instance.status == InstanceStatus::Stopped {
        return InstanceStatus::Stopped;
    }
    let tokens = &instance.flow.tokens;
    if tokens.iter().any(|t| t.state == TokenState::Failed) {
        InstanceStatus::Error
    } else if tokens.iter().any(|t| t.state == TokenState::ScriptRunning) {
        InstanceStatus::Running
    } else if tokens.iter().any(|t| t.state == TokenState::Waiting) {
        InstanceStatus::Active
    } else if tokens.is_empty() {
        InstanceStatus::Completed
    } else {
        // Ready tokens left over only when a run was cut short.
        InstanceStatus::Running
    }
}

pub fn describe_failure(failure: &ScriptFailure) -> String {
    failure.to_string()
}
