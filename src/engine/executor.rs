//! The run loop: moves an instance's tokens forward until it waits or completes.
//!
//! This is a pure function of the compiled process, the loaded instance and the
//! clock: it mutates the in-memory [`Instance`] and records every other change in
//! [`Changes`] for the store to write in the caller's transaction. It never waits
//! and never does IO, except for running scripts, which are bounded by their
//! operation budget.
//!
//! Two kinds of work cannot run inside a transaction, so the loop stops before
//! them with [`RunEnd::Outside`]: an HTTP request event (IO of unbounded length,
//! synchronous or not), and an asynchronous event's script that may hand its
//! serial to the outside world (its server item must be committed first so a
//! fast callback can find it). The engine commits, does the work
//! ([`Executor::outside_work`], then the request if there is one), and comes
//! back through [`Executor::apply_outside`]. A script that cannot call out (no
//! embedder functions installed) runs in the loop like a synchronous one:
//! nobody can call back before it ends, so nothing is gained by committing
//! first, and a transaction per lifecycle is saved.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[cfg(doc)]
use crate::engine::instance::FlowState;
use crate::engine::instance::{
    ActivityRecord, ActivityStatus, AuditEntry, Changes, FailureInfo, Instance, InstanceStatus, ItemStatus, Millis,
    ServerItem, Token, TokenState,
};
use crate::engine::outbound::Exchange;
use crate::model::{
    CompiledProcess, CompiledScript, EventAction, FillError, HttpRequest, PrecedingRule, ScriptContext, ScriptFailure,
    ScriptHost, ScriptOutcome, TemplateValues, Value,
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
}

/// What an event's outside work came to, for [`Executor::apply_outside`].
#[derive(Debug)]
pub enum OutsideResult {
    Script(Result<ScriptOutcome, ScriptFailure>),
    Http(Exchange),
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

    /// Runs ready tokens until none is left or an event's work must run outside
    /// the transaction ([`RunEnd::Outside`]; one at a time, so requests in
    /// parallel branches go out one after another).
    pub fn run(&self, instance: &mut Instance, items: &mut ItemState, changes: &mut Changes) -> RunEnd {
        let mut recorded = Recorded::default();
        loop {
            if instance.status == InstanceStatus::Stopped {
                return RunEnd::Settled;
            }
            self.apply_recorded_finishes(instance, items, changes);
            let Some(position) = instance.flow.tokens.iter().position(|t| t.state == TokenState::Ready) else {
                return RunEnd::Settled;
            };
            if let Some(message) = recorded.past_bound(changes) {
                self.fail(instance, position, message, changes);
                return RunEnd::Settled;
            }
            instance.flow.steps += 1;
            if instance.flow.steps > self.max_steps {
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
            let script = match &event.action {
                EventAction::Script(script) => script,
                EventAction::Http(_) => {
                    // Requests are IO: always sent outside the transaction.
                    if !event.synchronous {
                        self.open_item(instance, items, position, true, changes);
                    }
                    instance.flow.tokens[position].state = TokenState::RunningOutside;
                    return RunEnd::Outside { destination_id: token.destination_id };
                }
            };
            if event.synchronous {
                let context = self.context(instance, &token, None);
                match self.run_script(script, &instance.data, &context) {
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
                let serial_id = self.open_item(instance, items, position, !self.inline_async_scripts, changes);
                instance.flow.tokens[position].state = TokenState::RunningOutside;
                if !self.inline_async_scripts {
                    return RunEnd::Outside { destination_id: token.destination_id };
                }
                let context = self.context(instance, &token, Some(serial_id));
                let result = self.run_script(script, &instance.data, &context);
                let result = result.map_err(|failure| describe_failure(&failure));
                self.end_script(instance, position, serial_id, result, changes);
            }
        }
    }

    /// The server item of the asynchronous event the token at `position` is
    /// at: the one it already has when the event is retried (so the serial
    /// stays the same), else a new one. Returns its serial id.
    fn open_item(
        &self,
        instance: &mut Instance,
        items: &mut ItemState,
        position: usize,
        outside: bool,
        changes: &mut Changes,
    ) -> i64 {
        let token = instance.flow.tokens[position].clone();
        if let Some(id) = token.serial_id.filter(|id| items.pending.contains(id)) {
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
        self.create_item(instance, &token, id, outside, changes);
        items.pending.insert(id);
        instance.flow.tokens[position].serial_id = Some(id);
        id
    }

    /// `outside`: the event's work runs outside the transaction, so a finish
    /// arriving meanwhile is an early callback, to be recorded.
    fn create_item(&self, instance: &Instance, token: &Token, serial_id: i64, outside: bool, changes: &mut Changes) {
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
            script_running: outside,
            created_at: self.now,
            closed_at: None,
            closed_by: None,
            unapplied: None,
        });
        self.audit(changes, "Server item created", format!("{serial} for `{}`", event.name));
    }

    /// The outside work of the token of activity instance `destination_id`:
    /// its script run on a copy of the data, or its request filled in. `None`
    /// if the token is no longer running outside (another runner applied it).
    pub fn outside_work(&self, instance: &Instance, destination_id: i64) -> Option<OutsideWork> {
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
        })
    }

    /// Applies the result of a token's outside work. A synchronous event
    /// completes; an asynchronous one waits for its callback, or moves on at
    /// once when [`Executor::run`] finds a finish that arrived meanwhile (an
    /// early callback); a failure puts the token in error. Returns false if
    /// the token was no longer running outside (another runner already
    /// applied it, or an operator moved the instance on): nothing changed.
    pub fn apply_outside(
        &self,
        instance: &mut Instance,
        destination_id: i64,
        result: OutsideResult,
        changes: &mut Changes,
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
        if let Some(serial_id) = serial_id {
            changes.items_script_ended.push(serial_id);
        }
        let result = match result {
            OutsideResult::Script(result) => result.map_err(|failure| describe_failure(&failure)),
            OutsideResult::Http(exchange) => {
                self.audit(changes, "HTTP request", exchange.summary());
                match exchange.failure() {
                    None => Ok(ScriptOutcome::default()),
                    Some(message) => Err(message),
                }
            }
        };
        match serial_id {
            Some(serial_id) => self.end_script(instance, position, serial_id, result, changes),
            None => match result {
                Ok(outcome) => {
                    let event = self.context(instance, &instance.flow.tokens[position], None).event;
                    self.apply_outcome(instance, outcome, &event, changes);
                    let token = &mut instance.flow.tokens[position];
                    token.next_event += 1;
                    token.state = TokenState::Ready;
                }
                Err(message) => self.fail(instance, position, message, changes),
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
            Err(message) => self.fail(instance, position, message, changes),
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
        let logged = outcome.logs.len();
        for line in outcome.logs.iter().take(MAX_LOG_LINES_PER_STEP) {
            self.audit(changes, "Log", format!("{event}: {}", shortened(line)));
        }
        if logged > MAX_LOG_LINES_PER_STEP {
            let more = logged - MAX_LOG_LINES_PER_STEP;
            self.audit(
                changes,
                "Log",
                format!(
                    "{event}: {more} more log lines not recorded: one step records at most {MAX_LOG_LINES_PER_STEP} lines"
                ),
            );
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
                Some(rule) => match self.host.eval_rule_within(rule, &instance.data, &context, self.time_budget()) {
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
    /// Entries of each list already counted: audit, activities started and
    /// closed, lines, items created.
    counted: [usize; 5],
    bytes: usize,
}

impl Recorded {
    /// Why the run must stop, once what it recorded is past
    /// [`MAX_RECORDED_BYTES_PER_RUN`].
    fn past_bound(&mut self, changes: &Changes) -> Option<String> {
        // Each entry's text, and a little for its numbers and punctuation.
        const FRAME: usize = 32;
        fn added<T>(list: &[T], counted: &mut usize, size: impl Fn(&T) -> usize) -> usize {
            let new = list.get(*counted..).unwrap_or_default();
            *counted = list.len();
            new.iter().map(|entry| size(entry) + FRAME).sum()
        }
        let [audit, started, closed, lines, items] = &mut self.counted;
        self.bytes += added(&changes.audit, audit, |e| e.user.len() + e.action.len() + e.detail.len())
            + added(&changes.activities_started, started, |r| r.activity_id.len() + r.activity.len())
            + added(&changes.activities_closed, closed, |_| 0)
            + added(&changes.line_results, lines, |_| 0)
            + added(&changes.items_created, items, |i| {
                i.process.len() + i.folio.len() + i.activity.len() + i.event.len()
            });
        (self.bytes > MAX_RECORDED_BYTES_PER_RUN).then(|| {
            format!(
                "recorded more than {} MiB of history without waiting for anything: too many activities or log lines at once?",
                MAX_RECORDED_BYTES_PER_RUN / (1024 * 1024)
            )
        })
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
    } else if tokens.iter().any(|t| t.state == TokenState::RunningOutside) {
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
