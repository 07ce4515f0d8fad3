//! The run loop: moves an instance's tokens forward until it waits or completes.
//!
//! This is a pure function of the compiled process, the loaded instance and the
//! clock: each change it makes is an [`Effect`] it emits (applying it to the
//! in-memory [`Instance`] as it records it), for the store to write in the
//! caller's transaction. It never waits and never does IO, except for running
//! scripts, which are bounded by their operation budget. What may be asked of
//! an instance, and when, is `machine.rs`'s; this is how an instance runs
//! once it may.
//!
//! Two kinds of work cannot run inside a transaction, so the loop stops before
//! them with [`RunEnd::Outside`]: an HTTP request event (IO of unbounded length,
//! synchronous or not), a mail event (the same, and always synchronous), and an asynchronous event's script that may hand its
//! serial to the outside world (its server item must be committed first so a
//! fast callback can find it). The engine commits, does the work
//! ([`Executor::outside_work`], then the request if there is one), and comes
//! back through [`Executor::apply_outside`]. A script that cannot call out (no
//! embedder functions installed) runs in the loop like a synchronous one:
//! nobody can call back before it ends, so nothing is gained by committing
//! first, and a transaction per lifecycle is saved.

use std::collections::BTreeMap;
use std::time::Duration;

#[cfg(doc)]
use crate::engine::instance::FlowState;
use crate::engine::instance::{
    ActivityRecord, ActivityStatus, AuditAction, AuditEntry, AuditPlace, FailureInfo, Instance, InstanceStatus,
    ItemStatus, LineResult, Millis, ServerItem, Token, TokenState,
};
use crate::engine::instance::{ChildLink, ParentLink};
use crate::engine::ipc::{ChildRequest, ChildStarter, child_user};
use crate::engine::machine::{Effect, Effects, ItemState, RecordedFinish};
use crate::engine::outbound::{Exchange, MailDelivery};
use crate::model::IpcSpec;
use crate::model::ipc::MAX_DEPTH;
use crate::model::{
    CompiledProcess, CompiledScript, Due, EventAction, FillError, HttpRequest, MailFillError, MailMessage,
    PrecedingRule, ScriptContext, ScriptFailure, ScriptHost, ScriptOutcome, TemplateValues, Value,
};

/// A script may log more than is worth keeping: one step records its first
/// [`MAX_LOG_LINES_PER_STEP`] lines, each cut to [`MAX_LOG_LINE_CHARS`]
/// characters, and one more line that counts the rest.
pub const MAX_LOG_LINES_PER_STEP: usize = 100;
pub const MAX_LOG_LINE_CHARS: usize = 2_000;

/// About the most history one run may record (what its history row and
/// new server items will hold) before it stops in Error, as an endless loop
/// does. The check comes between steps and each step records a bounded
/// amount (its log lines above; a completed activity a few records per
/// outgoing line, of names of bounded length), so a run stops within one
/// step of it, and one call never writes a row of any size.
pub const MAX_RECORDED_BYTES_PER_RUN: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// Nothing is ready: the instance waits, completed, failed or is stopped.
    Settled,
    /// The token of activity instance `destination_id` is at an event whose
    /// work must run outside any transaction (an HTTP request, or an
    /// asynchronous script that can call out); its server item, if the event
    /// is asynchronous, is created. Commit, then do the work.
    Outside { destination_id: i64 },
}

/// An event's work to do outside any transaction, as [`Executor::outside_work`]
/// finds it.
#[derive(Debug)]
pub enum OutsideWork {
    /// The script has run (on a copy of the data); here is its result.
    ScriptRan(Result<ScriptOutcome, ScriptFailure>),
    /// The request to send, filled in from the instance, or why it cannot be.
    Send(Result<HttpRequest, FillError>),
    /// The mail to send, filled in from the instance, or why it cannot be.
    Mail(Result<MailMessage, MailFillError>),
}

/// What an event's outside work came to, for [`Executor::apply_outside`].
#[derive(Debug)]
pub enum OutsideResult {
    Script(Result<ScriptOutcome, ScriptFailure>),
    Http(Exchange),
    Mail(MailDelivery),
}

pub struct Executor<'a> {
    pub process: &'a CompiledProcess,
    pub host: &'a ScriptHost,
    pub now: Millis,
    /// The user acting: the originator for a start, the caller for a finish.
    pub user: &'a str,
    /// Activity completions and events an instance may make between two
    /// callbacks or operator actions ([`FlowState::steps`]) before it is
    /// taken for an endless loop: whatever its events, it never waited.
    pub max_steps: usize,
    /// Run asynchronous scripts here, in the transaction that creates their
    /// server item, instead of stopping with [`RunEnd::Outside`]. Only
    /// right when no script can hand its serial out (see
    /// [`ScriptHost::can_call_out`]): then no callback can arrive while it
    /// runs, and an item, its script's work and the wait commit as one.
    pub inline_async_scripts: bool,
    /// Starts the children of IPC events, in the caller's transaction;
    /// `None` where no run can reach one (a notification's record).
    pub children: Option<&'a dyn ChildStarter>,
}

impl Executor<'_> {
    /// An audit line about the instance as a whole.
    pub(crate) fn audit(&self, effects: &mut Effects, action: AuditAction, detail: String) {
        effects.note(Effect::Audit(AuditEntry {
            at: self.now,
            user: self.user.to_owned(),
            action,
            detail,
            place: None,
        }));
    }

    /// An audit line about an activity, or one of its events.
    pub(crate) fn audit_at(&self, effects: &mut Effects, place: AuditPlace, action: AuditAction, detail: String) {
        let place = Some(place);
        effects.note(Effect::Audit(AuditEntry { at: self.now, user: self.user.to_owned(), action, detail, place }));
    }

    /// Where `token` is: its activity, and its event when `at_event` (and it
    /// is at one, not past its last).
    pub(crate) fn place_of(&self, token: &Token, at_event: bool) -> AuditPlace {
        let activity = &self.process.activities[token.activity];
        let event = if at_event { activity.events.get(token.next_event).map(|e| e.name.clone()) } else { None };
        AuditPlace { activity: activity.name.clone(), event: event.unwrap_or_default() }
    }

    /// Starts an activity instance of `activity`: a new token, ready at its
    /// first event.
    pub(crate) fn open_activity(&self, instance: &mut Instance, activity: usize, effects: &mut Effects) {
        let destination_id = instance.flow.next_destination_id;
        instance.flow.next_destination_id += 1;
        let compiled = &self.process.activities[activity];
        let record = ActivityRecord {
            destination_id,
            activity_id: compiled.id.clone(),
            activity: compiled.name.clone(),
            status: ActivityStatus::Active,
            started_at: self.now,
            finished_at: None,
        };
        effects.emit(instance, Effect::ActivityStarted { activity, record });
        let place = AuditPlace { activity: compiled.name.clone(), event: String::new() };
        self.audit_at(effects, place, AuditAction::ActivityStarted, format!("{} (#{destination_id})", compiled.name));
    }

    /// Moves the token at `position` to `state` at event `next_event`.
    fn move_token(
        &self,
        instance: &mut Instance,
        position: usize,
        next_event: usize,
        state: TokenState,
        effects: &mut Effects,
    ) {
        let destination_id = instance.flow.tokens[position].destination_id;
        effects.emit(instance, Effect::TokenMoved { destination_id, next_event, state });
    }

    /// How long each script or rule may run: the process's budget, or the host's.
    fn time_budget(&self) -> Duration {
        self.process.script_time_budget.unwrap_or_else(|| self.host.time_budget())
    }

    fn run_script(
        &self,
        script: &CompiledScript,
        data: &BTreeMap<String, Value>,
        context: &ScriptContext,
    ) -> Result<ScriptOutcome, ScriptFailure> {
        self.host.run_script_within(script, &self.process.field_types, data, context, self.time_budget())
    }

    pub(crate) fn context(&self, instance: &Instance, token: &Token, serial: Option<i64>) -> ScriptContext {
        let activity = &self.process.activities[token.activity];
        ScriptContext {
            serial: serial.map(|id| instance.serial(id).to_string()),
            instance_id: instance.id,
            folio: instance.folio.clone(),
            activity: activity.name.clone(),
            event: activity.events.get(token.next_event).map(|e| e.name.clone()).unwrap_or_default(),
        }
    }

    /// Runs ready tokens until none is left or an event's work must run outside
    /// the transaction ([`RunEnd::Outside`]; one at a time, so requests in
    /// parallel branches go out one after another).
    pub(crate) fn run(&self, instance: &mut Instance, items: &mut ItemState, effects: &mut Effects) -> RunEnd {
        let mut recorded = Recorded::default();
        loop {
            if instance.status == InstanceStatus::Stopped {
                return RunEnd::Settled;
            }
            self.apply_recorded_finishes(instance, items, effects);
            let Some(position) = instance.flow.tokens.iter().position(|t| t.state == TokenState::Ready) else {
                return RunEnd::Settled;
            };
            if let Some(message) = recorded.past_bound(effects.as_slice()) {
                self.fail(instance, position, message, effects);
                return RunEnd::Settled;
            }
            instance.flow.steps += 1;
            if instance.flow.steps > self.max_steps {
                let message = format!(
                    "ran {} steps without waiting for anything: an endless loop of activities?",
                    self.max_steps
                );
                self.fail(instance, position, message, effects);
                return RunEnd::Settled;
            }
            let token = instance.flow.tokens[position].clone();
            let activity = &self.process.activities[token.activity];
            let Some(event) = activity.events.get(token.next_event) else {
                self.complete_activity(instance, position, effects);
                continue;
            };
            let script = match &event.action {
                EventAction::Script(script) => script,
                EventAction::Http(_) | EventAction::Mail(_) => {
                    // Requests and mail are IO: always sent outside the
                    // transaction (a mail event is synchronous: no item).
                    if !event.synchronous {
                        self.open_item(instance, items, position, effects);
                    }
                    self.move_token(instance, position, token.next_event, TokenState::RunningOutside, effects);
                    return RunEnd::Outside { destination_id: token.destination_id };
                }
                EventAction::Wait(due) => {
                    self.wait(instance, items, position, due, effects);
                    continue;
                }
                EventAction::Ipc(spec) => {
                    self.start_child(instance, items, position, spec, effects);
                    continue;
                }
            };
            if event.synchronous {
                let context = self.context(instance, &token, None);
                match self.run_script(script, &instance.data, &context) {
                    Ok(outcome) => {
                        self.apply_outcome(instance, outcome, &self.place_of(&token, true), effects);
                        self.move_token(instance, position, token.next_event + 1, TokenState::Ready, effects);
                    }
                    Err(failure) => {
                        let message = describe_failure(&failure);
                        self.fail(instance, position, message, effects);
                    }
                }
            } else {
                let serial_id = self.open_item(instance, items, position, effects);
                self.move_token(instance, position, token.next_event, TokenState::RunningOutside, effects);
                if !self.inline_async_scripts {
                    return RunEnd::Outside { destination_id: token.destination_id };
                }
                let context = self.context(instance, &token, Some(serial_id));
                let result = self.run_script(script, &instance.data, &context);
                let result = result.map_err(|failure| describe_failure(&failure));
                self.end_script(instance, position, serial_id, result, effects);
            }
        }
    }

    /// The server item of the asynchronous event the token at `position` is
    /// at: the one it already has when the event is retried (so the serial
    /// stays the same), else a new one. Returns its serial id.
    fn open_item(&self, instance: &mut Instance, items: &mut ItemState, position: usize, effects: &mut Effects) -> i64 {
        let token = instance.flow.tokens[position].clone();
        if let Some(id) = token.serial_id.filter(|id| items.open.contains_key(id)) {
            return id;
        }
        let id = match token.serial_id {
            None => token.destination_id,
            Some(_) => {
                let id = instance.flow.next_destination_id;
                instance.flow.next_destination_id += 1;
                id
            }
        };
        self.create_item(instance, &token, id, effects);
        items.open.insert(id, token.destination_id);
        id
    }

    /// A timer event: its item waits until the time its due says, when the
    /// item's timer fires (or a callback finishes it first). A due that
    /// cannot be worked out (its date field is empty) is the event's
    /// failure, which a retry after the data is set runs again.
    fn wait(&self, instance: &mut Instance, items: &mut ItemState, position: usize, due: &Due, effects: &mut Effects) {
        let due_at = match self.process.due_at(due, self.now, &instance.data) {
            Ok(due_at) => due_at,
            Err(err) => {
                return self.fail(instance, position, format!("cannot tell when the wait ends: {err}"), effects);
            }
        };
        let token = instance.flow.tokens[position].clone();
        // A wait run again (a repeat) keeps its item and the timer it has.
        let fresh = token.serial_id.is_none_or(|id| !items.open.contains_key(&id));
        let serial_id = self.open_item(instance, items, position, effects);
        if fresh {
            effects.note(Effect::TimerArmed { serial_id, escalation: None, due_at });
        }
        self.move_token(instance, position, token.next_event, TokenState::Waiting, effects);
        let serial = instance.serial(serial_id);
        let event = self.context(instance, &token, None).event;
        let until = crate::engine::format_time(due_at);
        let place = self.place_of(&token, true);
        self.audit_at(effects, place, AuditAction::WaitingForCallback, format!("{serial} (`{event}`) until {until}"));
    }

    /// An IPC event: the child starts now, in this transaction (so there is
    /// never a parent waiting for a child that was not started, nor a
    /// child whose parent's step was lost). A parent that waits gets a
    /// server item first, whose serial the child's link names; the child's
    /// completion finishes it. A child that completed within this very step
    /// (it never waited) is applied as an early callback is. A child that
    /// cannot start (no right, its process gone, a chain too deep, a
    /// mapping that does not fit) fails the event; a retry starts it again
    /// on the same item.
    fn start_child(
        &self,
        instance: &mut Instance,
        items: &mut ItemState,
        position: usize,
        spec: &IpcSpec,
        effects: &mut Effects,
    ) {
        let token = instance.flow.tokens[position].clone();
        let serial_id = spec.waits.then(|| self.open_item(instance, items, position, effects));
        let context = self.context(instance, &token, serial_id);
        let depth = instance.flow.parent.as_ref().map_or(0, |parent| parent.depth).saturating_add(1);
        if depth > MAX_DEPTH {
            let message = format!(
                "cannot start `{}`: sub-processes may nest {MAX_DEPTH} deep, and this child would be at depth {depth} (a process that calls itself without end?)",
                spec.process
            );
            return self.fail(instance, position, message, effects);
        }
        let Some(children) = self.children else {
            let message = "internal: no child can be started here".to_owned();
            return self.fail(instance, position, message, effects);
        };
        let link = ParentLink {
            instance_id: instance.id,
            process: instance.process.clone(),
            activity: context.activity.clone(),
            event: context.event.clone(),
            serial_id,
            depth,
        };
        let values = TemplateValues { context: &context, data: &instance.data };
        let started = match children.start_child(&ChildRequest {
            parent: instance,
            parent_fields: &self.process.field_types,
            spec,
            values,
            link,
        }) {
            Ok(started) => started,
            Err(message) => return self.fail(instance, position, message, effects),
        };
        let child = ChildLink {
            instance_id: started.id,
            process: spec.process.clone(),
            version: started.version,
            destination_id: token.destination_id,
            event_index: token.next_event,
            serial_id,
            started_at: self.now,
        };
        effects.emit(instance, Effect::ChildStarted(Box::new(child)));
        let event = &context.event;
        let detail = format!(
            "instance {} of `{}` version {} for `{event}` ({})",
            started.id,
            spec.process,
            started.version,
            started.status.name().to_lowercase()
        );
        self.audit(effects, AuditAction::ChildStarted, detail);
        let Some(serial_id) = serial_id else {
            self.move_token(instance, position, token.next_event + 1, TokenState::Ready, effects);
            return;
        };
        self.move_token(instance, position, token.next_event, TokenState::Waiting, effects);
        let serial = instance.serial(serial_id);
        let until = format!("{serial} (`{event}`) until instance {} completes", started.id);
        self.audit(effects, AuditAction::WaitingForCallback, until);
        if let Some(completed) = started.completed {
            // The child completed before this step commits: its finish is
            // recorded on the item and applied by the loop, as an early
            // callback's is.
            for line in completed.skipped {
                self.audit(effects, AuditAction::ParentNotified, line);
            }
            let by = child_user(started.id);
            let at = self.now;
            let unapplied = Some(completed.values.clone());
            effects.note(Effect::ItemFinished { serial_id, by: by.clone(), at, unapplied });
            effects.note(Effect::TimersDisarmed { serial_id });
            items.recorded.insert(serial_id, RecordedFinish { data: completed.values, by });
        }
    }

    /// A new pending item for the event the token is at, and its wait's
    /// timers: one per escalation of its activity, each due from now. While
    /// the token then runs the event's work outside, a finish arriving is an
    /// early callback (`ItemPhase::Working`), recorded and applied when it ends.
    fn create_item(&self, instance: &mut Instance, token: &Token, serial_id: i64, effects: &mut Effects) {
        let activity = &self.process.activities[token.activity];
        let event = &activity.events[token.next_event];
        let serial = instance.serial(serial_id);
        let item = ServerItem {
            serial,
            activity_destination_id: token.destination_id,
            event_index: token.next_event,
            process: instance.process.clone(),
            folio: instance.folio.clone(),
            activity: activity.name.clone(),
            event: event.name.clone(),
            status: ItemStatus::Pending,
            created_at: self.now,
            closed_at: None,
            closed_by: None,
            unapplied: None,
            due_at: None,
        };
        effects.emit(instance, Effect::ItemCreated(Box::new(item)));
        let place = self.place_of(token, true);
        self.audit_at(effects, place.clone(), AuditAction::ItemCreated, format!("{serial} for `{}`", event.name));
        for (index, escalation) in activity.escalations.iter().enumerate() {
            match self.process.due_at(&escalation.due, self.now, &instance.data) {
                Ok(due_at) => effects.note(Effect::TimerArmed { serial_id, escalation: Some(index), due_at }),
                // Said in the trail, where an operator looks: the wait goes
                // on, without this escalation.
                Err(err) => self.audit_at(
                    effects,
                    place.clone(),
                    AuditAction::EscalationNotArmed,
                    format!("`{}` on {serial}: {err}", escalation.name),
                ),
            }
        }
    }

    /// The outside work of the token of activity instance `destination_id`:
    /// its script run on a copy of the data, or its request filled in. `None`
    /// if the token is no longer running outside (another runner applied it).
    pub(crate) fn outside_work(&self, instance: &Instance, destination_id: i64) -> Option<OutsideWork> {
        let token = instance
            .flow
            .tokens
            .iter()
            .find(|t| t.destination_id == destination_id && t.state == TokenState::RunningOutside)?;
        let event = self.process.activities[token.activity].events.get(token.next_event)?;
        let serial = if event.synchronous { None } else { token.serial_id };
        let context = self.context(instance, token, serial);
        Some(match &event.action {
            EventAction::Script(script) => OutsideWork::ScriptRan(self.run_script(script, &instance.data, &context)),
            EventAction::Http(spec) => {
                OutsideWork::Send(spec.fill(&TemplateValues { context: &context, data: &instance.data }))
            }
            EventAction::Mail(spec) => {
                OutsideWork::Mail(spec.fill(&TemplateValues { context: &context, data: &instance.data }))
            }
            // A wait has no work outside, nor has a child's start (it is
            // started in the transaction): their tokens never run there.
            EventAction::Wait(_) | EventAction::Ipc(_) => return None,
        })
    }

    /// Applies the result of a token's outside work. A synchronous event
    /// completes; an asynchronous one waits for its callback, or moves on at
    /// once when [`Executor::run`] finds a finish that arrived meanwhile (an
    /// early callback); a failure puts the token in error. Returns false if
    /// the token was no longer running outside (another runner already
    /// applied it, or an operator moved the instance on): nothing changed.
    pub(crate) fn apply_outside(
        &self,
        instance: &mut Instance,
        destination_id: i64,
        result: OutsideResult,
        effects: &mut Effects,
    ) -> bool {
        let Some(position) = instance
            .flow
            .tokens
            .iter()
            .position(|t| t.destination_id == destination_id && t.state == TokenState::RunningOutside)
        else {
            return false;
        };
        let token = &instance.flow.tokens[position];
        let synchronous =
            self.process.activities[token.activity].events.get(token.next_event).is_none_or(|e| e.synchronous);
        let serial_id = if synchronous { None } else { token.serial_id };
        let place = self.place_of(token, true);
        let result = match result {
            OutsideResult::Script(result) => result.map_err(|failure| describe_failure(&failure)),
            OutsideResult::Http(exchange) => {
                self.audit_at(effects, place.clone(), AuditAction::HttpRequest, exchange.summary());
                match exchange.failure() {
                    None => Ok(ScriptOutcome::default()),
                    Some(message) => Err(message),
                }
            }
            OutsideResult::Mail(delivery) => {
                self.audit(effects, AuditAction::Mail, delivery.summary());
                match delivery.failure() {
                    None => Ok(ScriptOutcome::default()),
                    Some(message) => Err(message),
                }
            }
        };
        match serial_id {
            Some(serial_id) => self.end_script(instance, position, serial_id, result, effects),
            None => match result {
                Ok(outcome) => {
                    let token = instance.flow.tokens[position].clone();
                    self.apply_outcome(instance, outcome, &place, effects);
                    self.move_token(instance, position, token.next_event + 1, TokenState::Ready, effects);
                }
                Err(message) => self.fail(instance, position, message, effects),
            },
        }
        true
    }

    /// The script of the token at `position` ended: it now waits for its
    /// callback, or has failed.
    fn end_script(
        &self,
        instance: &mut Instance,
        position: usize,
        serial_id: i64,
        result: Result<ScriptOutcome, String>,
        effects: &mut Effects,
    ) {
        let token = &instance.flow.tokens[position];
        let next_event = token.next_event;
        let place = self.place_of(token, true);
        match result {
            Ok(outcome) => {
                self.apply_outcome(instance, outcome, &place, effects);
                self.move_token(instance, position, next_event, TokenState::Waiting, effects);
                let serial = instance.serial(serial_id);
                let detail = format!("{serial} (`{}`)", place.event);
                self.audit_at(effects, place, AuditAction::WaitingForCallback, detail);
            }
            Err(message) => self.fail(instance, position, message, effects),
        }
    }

    fn apply_recorded_finishes(&self, instance: &mut Instance, items: &mut ItemState, effects: &mut Effects) {
        if items.recorded.is_empty() {
            return;
        }
        for position in 0..instance.flow.tokens.len() {
            let token = &instance.flow.tokens[position];
            if token.state != TokenState::Waiting {
                continue;
            }
            let place = self.place_of(token, true);
            let Some(serial_id) = token.serial_id else { continue };
            let next_event = token.next_event;
            let Some(finish) = items.recorded.remove(&serial_id) else { continue };
            items.open.remove(&serial_id);
            for (field, value) in finish.data {
                instance.data.insert(field, value);
            }
            effects.note(Effect::ItemApplied { serial_id });
            let serial = instance.serial(serial_id);
            self.audit_at(effects, place, AuditAction::CallbackApplied, format!("{serial} finished by {}", finish.by));
            self.move_token(instance, position, next_event + 1, TokenState::Ready, effects);
        }
    }

    /// The data a script changed, and its log lines, at `place` (its event).
    fn apply_outcome(
        &self,
        instance: &mut Instance,
        outcome: ScriptOutcome,
        place: &AuditPlace,
        effects: &mut Effects,
    ) {
        for (field, value) in outcome.changed {
            instance.data.insert(field, value);
        }
        let event = &place.event;
        let logged = outcome.logs.len();
        for line in outcome.logs.iter().take(MAX_LOG_LINES_PER_STEP) {
            self.audit_at(effects, place.clone(), AuditAction::Log, format!("{event}: {}", shortened(line)));
        }
        if logged > MAX_LOG_LINES_PER_STEP {
            let more = logged - MAX_LOG_LINES_PER_STEP;
            self.audit_at(
                effects,
                place.clone(),
                AuditAction::Log,
                format!(
                    "{event}: {more} more log lines not recorded: one step records at most {MAX_LOG_LINES_PER_STEP} lines"
                ),
            );
        }
    }

    /// The token at `position` failed at its event (or its lines): it waits
    /// in [`TokenState::Failed`] for a retry, and the instance says where.
    pub(crate) fn fail(&self, instance: &mut Instance, position: usize, message: String, effects: &mut Effects) {
        let token = instance.flow.tokens[position].clone();
        let activity = &self.process.activities[token.activity];
        let event = activity.events.get(token.next_event).map(|e| e.name.clone()).unwrap_or_default();
        let where_ =
            if event.is_empty() { format!("`{}`", activity.name) } else { format!("`{}` / `{event}`", activity.name) };
        let place = AuditPlace { activity: activity.name.clone(), event: event.clone() };
        self.audit_at(effects, place, AuditAction::Error, format!("{where_}: {message}"));
        instance.flow.failure = Some(FailureInfo {
            destination_id: token.destination_id,
            activity: activity.name.clone(),
            event,
            message,
            at: self.now,
        });
        self.move_token(instance, position, token.next_event, TokenState::Failed, effects);
    }

    /// The token at `position` is past its last event: its lines are
    /// evaluated, in order, and the activity completes and each line that
    /// fired starts its target. A rule that cannot be evaluated is a design
    /// error: the activity stays open, its token failed, and nothing fires,
    /// so that a retry (after the data is corrected) evaluates every line
    /// once more and none twice.
    fn complete_activity(&self, instance: &mut Instance, position: usize, effects: &mut Effects) {
        let token = instance.flow.tokens[position].clone();
        let activity = &self.process.activities[token.activity];
        let context = ScriptContext {
            serial: None,
            instance_id: instance.id,
            folio: instance.folio.clone(),
            activity: activity.name.clone(),
            event: String::new(),
        };
        let destination_id = token.destination_id;
        // Each line's result is noted as it is evaluated, and the lines that
        // fired are read back from the notes: no list of its own per step.
        let first = effects.len();
        for &line_index in &activity.outgoing {
            let line = &self.process.lines[line_index];
            let result = match &line.rule {
                None => Ok(true),
                Some(rule) => self.host.eval_rule_within(rule, &instance.data, &context, self.time_budget()),
            };
            let fired = match result {
                Ok(fired) => fired,
                Err(failure) => {
                    // Only the failing line shows as evaluated: nothing fired.
                    effects.truncate(first);
                    effects.note(Effect::LineEvaluated(LineResult {
                        line_index,
                        from_destination_id: destination_id,
                        fired: false,
                        at: self.now,
                    }));
                    let target = &self.process.activities[line.to].name;
                    let described = describe_failure(&failure);
                    self.audit_at(
                        effects,
                        self.place_of(&token, false),
                        AuditAction::Error,
                        format!("rule of line {} → {target}: {described}", activity.name),
                    );
                    instance.flow.failure = Some(FailureInfo {
                        destination_id,
                        activity: activity.name.clone(),
                        event: String::new(),
                        message: format!("rule `{}`: {described}", line.rule_text),
                        at: self.now,
                    });
                    self.move_token(instance, position, token.next_event, TokenState::Failed, effects);
                    return;
                }
            };
            effects.note(Effect::LineEvaluated(LineResult {
                line_index,
                from_destination_id: destination_id,
                fired,
                at: self.now,
            }));
        }
        let last = effects.len();
        effects
            .emit(instance, Effect::ActivityClosed { destination_id, status: ActivityStatus::Completed, at: self.now });
        let detail = format!("{} (#{destination_id})", activity.name);
        self.audit_at(effects, self.place_of(&token, false), AuditAction::ActivityCompleted, detail);
        for index in first..last {
            if let Some(Effect::LineEvaluated(LineResult { line_index, fired: true, .. })) = effects.get(index) {
                let line_index = *line_index;
                self.arrive(instance, self.process.lines[line_index].to, line_index, effects);
            }
        }
    }

    /// A line fired into `target`: start it, or count it towards an `All` join.
    fn arrive(&self, instance: &mut Instance, target: usize, line_index: usize, effects: &mut Effects) {
        let activity = &self.process.activities[target];
        if activity.preceding_rule == PrecedingRule::All && activity.incoming.len() > 1 {
            let fired = instance.flow.joins.entry(target).or_default();
            fired.insert(line_index);
            if !activity.incoming.iter().all(|l| fired.contains(l)) {
                return;
            }
            instance.flow.joins.remove(&target);
        }
        self.open_activity(instance, target, effects);
    }
}

/// A log line cut to [`MAX_LOG_LINE_CHARS`] characters, ending in `…` if cut.
fn shortened(line: &str) -> std::borrow::Cow<'_, str> {
    match line.char_indices().nth(MAX_LOG_LINE_CHARS) {
        None => std::borrow::Cow::Borrowed(line),
        Some((cut, _)) => std::borrow::Cow::Owned(format!("{}…", &line[..cut])),
    }
}

/// What a run has recorded so far, in about the bytes the store will write
/// for it. Counts only what was added since it last looked, so checking
/// before every step costs nothing that grows with the run.
#[derive(Default)]
struct Recorded {
    /// Effects already counted.
    counted: usize,
    bytes: usize,
}

impl Recorded {
    /// Why the run must stop, once what it recorded is past
    /// [`MAX_RECORDED_BYTES_PER_RUN`].
    fn past_bound(&mut self, effects: &[Effect]) -> Option<String> {
        // Each entry's text, and a little for its numbers and punctuation.
        const FRAME: usize = 32;
        let new = effects.get(self.counted..).unwrap_or_default();
        self.counted = effects.len();
        self.bytes += new
            .iter()
            .map(|effect| match effect {
                Effect::Audit(e) => e.user.len() + e.action.name().len() + e.detail.len() + FRAME,
                Effect::ActivityStarted { record, .. } => record.activity_id.len() + record.activity.len() + FRAME,
                Effect::ActivityClosed { .. } | Effect::LineEvaluated(_) => FRAME,
                Effect::ItemCreated(i) => i.process.len() + i.folio.len() + i.activity.len() + i.event.len() + FRAME,
                Effect::StatusChanged { .. }
                | Effect::TokenMoved { .. }
                | Effect::ItemFinished { .. }
                | Effect::ItemApplied { .. }
                | Effect::ItemCancelled { .. }
                | Effect::TookPart { .. }
                | Effect::TimerArmed { .. }
                | Effect::TimerChanged { .. }
                | Effect::TimersDisarmed { .. }
                | Effect::ChildStarted(_) => 0,
            })
            .sum::<usize>();
        (self.bytes > MAX_RECORDED_BYTES_PER_RUN).then(|| {
            format!(
                "recorded more than {} MiB of history without waiting for anything: too many activities or log lines at once?",
                MAX_RECORDED_BYTES_PER_RUN / (1024 * 1024)
            )
        })
    }
}

pub(crate) fn describe_failure(failure: &ScriptFailure) -> String {
    failure.to_string()
}
