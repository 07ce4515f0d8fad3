//! The instance's whole life as data: what can be asked of an instance, when
//! it may happen, and what it changes.
//!
//! - [`Command`]: everything a caller, an operator or the runtime can ask of
//!   an instance: start, finish an item (by its serial), retry, stop, resume,
//!   go to an activity, set data, recover, fire a timer (an escalation's
//!   deadline or a timer event's wait). A new kind of command starts here.
//! - [`rule`]: the one table from an instance's status and a command (for a
//!   finish or a firing, with the [`ItemPhase`] of its item) to [`Rule::Allowed`],
//!   [`Rule::Held`] (recorded now, applied when the instance runs again) or
//!   [`Rule::Refused`] and why. It is the guard, not a check after the fact:
//!   `decide` consults it before anything changes, and every cell is
//!   written out (no wildcard), so a new status or command does not compile
//!   until each of its cells says what happens. Cells no sequence of
//!   commands reaches are [`Rule::Impossible`]: met only in a damaged
//!   database, answered as an internal error and never acted on.
//! - `decide`: a command applied to the state read under the write lock,
//!   as an ordered list of typed [`Effect`]s (status changed, token moved,
//!   activity started or closed, line evaluated, server item created,
//!   finished, applied or cancelled, audit entry, participant). It is pure:
//!   no storage, no clock of its own and no IO besides the scripts and rules
//!   the executor runs within their budgets. The engine reads before it and
//!   writes after it, and the store writes what the effects say and decides
//!   nothing.
//! - `apply`: the one place an instance's status and tokens change. The
//!   executor emits an effect and applies it in one call
//!   (`Effects::emit`), so the instance a run goes on with is always the one
//!   its effects describe.
//!
//! `tests/it/engine_scenarios.rs` walks every cell of the table through the
//! engine's public methods and checks that the engine answers as it says.
//!
//! What an event's work outside the transaction came to (a request's answer,
//! a script that could call out) is no command: it completes the run of the
//! command that started the work (`outside_work_done`), and applies to the
//! instance whatever happened to it meanwhile. Nor is what a notification
//! (an escalation's request, sent outside the transaction after the firing
//! that claimed it) came to: `notification_sent` records it on the timer.

use std::collections::BTreeMap;

use crate::engine::executor::{Executor, OutsideResult, RunEnd};
use crate::engine::instance::{
    ActivityRecord, ActivityStatus, AuditAction, AuditEntry, AuditPlace, ChildLink, Instance, InstanceStatus,
    ItemStatus, LineResult, Millis, ServerItem, Token, TokenState,
};
use crate::engine::outbound::Exchange;
use crate::engine::serial::Serial;
use crate::engine::timer::{self, Timer, TimerState};
use crate::engine::{EngineError, FieldInput, format_time};
use crate::model::{CompiledProcess, Due, EscalationAction, FillError, HttpRequest, TemplateValues, Value};

/// What is asked of an instance.
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// A new instance (made by the engine with its id, version, folio and
    /// data) runs from its start activity. Not in the table: there is no
    /// status to judge before it exists.
    Start,
    /// A callback: `item` (found by its serial) is finished, setting `data`.
    Finish {
        item: &'a ServerItem,
        data: &'a [(String, FieldInput)],
    },
    /// The failed event (or line rules) runs again, and any work another
    /// branch left due outside when the instance went into error.
    Retry,
    Stop,
    /// A stopped instance runs on; what was held meanwhile is applied.
    Resume,
    /// Every open activity instance and its items are cancelled, and the
    /// activity named starts afresh.
    GoTo {
        activity: &'a str,
    },
    SetData {
        data: &'a [(String, FieldInput)],
    },
    /// Another runner takes over an instance whose runner died mid-script or
    /// mid-request (whether it died is the lease's question, asked before).
    Recover,
    /// A timer fell due (read armed and due in the same transaction): an
    /// escalation of `item`'s activity does what it says, or a timer
    /// event's wait ends. The runtime's ticker asks, not a person.
    Fire {
        timer: &'a Timer,
        item: &'a ServerItem,
    },
}

impl Command<'_> {
    /// The column of the table this command falls in; `None` for a start.
    pub fn kind(&self, instance: &Instance) -> Option<CommandKind> {
        Some(match self {
            Command::Start => return None,
            Command::Finish { item, .. } => CommandKind::Finish(ItemPhase::of(item, instance)),
            Command::Retry => CommandKind::Retry,
            Command::Stop => CommandKind::Stop,
            Command::Resume => CommandKind::Resume,
            Command::GoTo { .. } => CommandKind::GoTo,
            Command::SetData { .. } => CommandKind::SetData,
            Command::Recover => CommandKind::Recover,
            Command::Fire { item, .. } => CommandKind::Fire(ItemPhase::of(item, instance)),
        })
    }
}

/// A command as the table sees it: without its arguments, and for a finish
/// or a firing with the phase its item is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommandKind {
    Finish(ItemPhase),
    Retry,
    Stop,
    Resume,
    GoTo,
    SetData,
    Recover,
    Fire(ItemPhase),
}

impl CommandKind {
    /// Every column of the table.
    pub const ALL: [CommandKind; 16] = [
        CommandKind::Finish(ItemPhase::Pending),
        CommandKind::Finish(ItemPhase::Working),
        CommandKind::Finish(ItemPhase::Recorded),
        CommandKind::Finish(ItemPhase::Finished),
        CommandKind::Finish(ItemPhase::Cancelled),
        CommandKind::Retry,
        CommandKind::Stop,
        CommandKind::Resume,
        CommandKind::GoTo,
        CommandKind::SetData,
        CommandKind::Recover,
        CommandKind::Fire(ItemPhase::Pending),
        CommandKind::Fire(ItemPhase::Working),
        CommandKind::Fire(ItemPhase::Recorded),
        CommandKind::Fire(ItemPhase::Finished),
        CommandKind::Fire(ItemPhase::Cancelled),
    ];

    /// The command in words, as a refusal says it: "cannot retry instance 7".
    pub fn words(self) -> &'static str {
        match self {
            CommandKind::Finish(_) => "finish a server item of",
            CommandKind::Retry => "retry",
            CommandKind::Stop => "stop",
            CommandKind::Resume => "resume",
            CommandKind::GoTo => "go to an activity in",
            CommandKind::SetData => "edit the data of",
            CommandKind::Recover => "recover",
            CommandKind::Fire(_) => "fire a timer of",
        }
    }
}

/// Where a server item stands, as the table sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ItemPhase {
    /// Waiting for its callback.
    Pending,
    /// Pending, while its event's script or request still runs outside a
    /// transaction: a finish now is an early callback.
    Working,
    /// Finished, and the finish not applied yet (an early callback, or a
    /// finish while the instance was stopped or in error).
    Recorded,
    /// Finished and applied.
    Finished,
    /// Closed by a go-to.
    Cancelled,
}

impl ItemPhase {
    /// The phase of `item` of `instance`. Whether its work still runs is
    /// told by its token, which every change of the work moves in the same
    /// transaction as the rest of the instance.
    pub fn of(item: &ServerItem, instance: &Instance) -> ItemPhase {
        match item.status {
            ItemStatus::Pending => {
                let working =
                    instance.flow.tokens.iter().any(|t| {
                        t.serial_id == Some(item.serial.destination_id) && t.state == TokenState::RunningOutside
                    });
                if working { ItemPhase::Working } else { ItemPhase::Pending }
            }
            ItemStatus::Finished if item.unapplied.is_some() => ItemPhase::Recorded,
            ItemStatus::Finished => ItemPhase::Finished,
            ItemStatus::Cancelled => ItemPhase::Cancelled,
        }
    }
}

/// A cell of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Allowed,
    /// Recorded now and applied when the instance runs again (on resume, on
    /// retry, or when its event's work ends): nothing is lost, nothing runs
    /// while an operator holds the instance.
    Held,
    Refused(Why),
    /// No sequence of commands reaches this cell.
    Impossible,
}

/// Why the table refuses a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The instance's status does not allow it.
    WrongStatus,
    /// The item was finished before (its finish applied or only recorded).
    AlreadyFinished,
    /// The item was cancelled by a go-to.
    Cancelled,
}

/// The table: what `command` does on an instance in `status`.
pub const fn rule(status: InstanceStatus, command: CommandKind) -> Rule {
    use CommandKind as C;
    use InstanceStatus::{Active, Completed, Error, Running, Stopped};
    use ItemPhase::{Cancelled, Finished, Pending, Recorded, Working};
    use Rule::{Allowed, Held, Impossible, Refused};
    match (command, status) {
        // A finish is judged by its item first: a closed item refuses it
        // whatever its instance does.
        (C::Finish(Finished), Running | Active | Completed | Error | Stopped) => Refused(Why::AlreadyFinished),
        (C::Finish(Recorded), Running | Error | Stopped) => Refused(Why::AlreadyFinished),
        (C::Finish(Cancelled), Running | Active | Completed | Error | Stopped) => Refused(Why::Cancelled),
        // A pending item is finished at once while its instance runs or
        // waits, and held while an operator holds the instance or while the
        // event's own work still runs (the early callback).
        (C::Finish(Pending), Running | Active) => Allowed,
        (C::Finish(Pending), Error | Stopped) => Held,
        (C::Finish(Working), Running | Error | Stopped) => Held,
        // A waiting instance runs nothing outside; a completed one has no
        // open item; and every move into Active is a run, which applies
        // what was recorded before it settles.
        (C::Finish(Working), Active | Completed) => Impossible,
        (C::Finish(Pending | Recorded), Completed) => Impossible,
        (C::Finish(Recorded), Active) => Impossible,

        (C::Retry, Error) => Allowed,
        (C::Retry, Running | Active | Completed | Stopped) => Refused(Why::WrongStatus),
        (C::Stop, Running | Active | Error) => Allowed,
        (C::Stop, Completed | Stopped) => Refused(Why::WrongStatus),
        (C::Resume, Stopped) => Allowed,
        (C::Resume, Running | Active | Completed | Error) => Refused(Why::WrongStatus),
        (C::GoTo, Running | Active | Error | Stopped) => Allowed,
        (C::GoTo, Completed) => Refused(Why::WrongStatus),
        (C::SetData, Running | Active | Error | Stopped) => Allowed,
        (C::SetData, Completed) => Refused(Why::WrongStatus),
        // Only a running instance has a runner that can die.
        (C::Recover, Running) => Allowed,
        (C::Recover, Active | Completed | Error | Stopped) => Refused(Why::WrongStatus),

        // A timer fires as a callback would arrive: at once while its
        // instance runs or waits; held while an operator holds the instance
        // (stopped, or in error and being repaired: resume and retry fire
        // what fell due meanwhile, oldest first) or while its event's own
        // work still runs (it fires once that has ended). Held, a firing
        // changes nothing: the timer stays armed.
        (C::Fire(Pending), Running | Active) => Allowed,
        (C::Fire(Pending), Error | Stopped) => Held,
        (C::Fire(Working), Running | Error | Stopped) => Held,
        (C::Fire(Working), Active | Completed) => Impossible,
        (C::Fire(Pending), Completed) => Impossible,
        // Whatever closes an item disarms its timers in the same
        // transaction, so an armed timer never has a closed item.
        (C::Fire(Recorded | Finished | Cancelled), Running | Active | Completed | Error | Stopped) => Impossible,
    }
}

/// A command refused: nothing changed. Each becomes the [`EngineError`] of
/// the same name.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    WrongStatus {
        id: i64,
        action: &'static str,
        status: InstanceStatus,
    },
    AlreadyFinished {
        serial: Serial,
        at: Millis,
        by: String,
    },
    ItemCancelled {
        serial: Serial,
        at: Millis,
        by: String,
    },
    ActivityNotFound {
        process: String,
        activity: String,
    },
    InvalidData {
        field: String,
        reason: String,
    },
    /// A cell of the table no sequence of commands reaches: the stored
    /// state is damaged, and the engine does not act on it.
    Impossible {
        id: i64,
        status: InstanceStatus,
        command: CommandKind,
    },
}

impl From<Refusal> for EngineError {
    fn from(refusal: Refusal) -> EngineError {
        match refusal {
            Refusal::WrongStatus { id, action, status } => EngineError::WrongStatus { id, action, status },
            Refusal::AlreadyFinished { serial, at, by } => {
                EngineError::AlreadyFinished { serial: serial.to_string(), at, by }
            }
            Refusal::ItemCancelled { serial, at, by } => {
                EngineError::ItemCancelled { serial: serial.to_string(), at, by }
            }
            Refusal::ActivityNotFound { process, activity } => EngineError::ActivityNotFound { process, activity },
            Refusal::InvalidData { field, reason } => EngineError::InvalidData { field, reason },
            Refusal::Impossible { id, status, command } => EngineError::Internal(format!(
                "instance {id} is {status}, where `{}` can never find it ({command:?}): its stored state is damaged",
                command.words()
            )),
        }
    }
}

/// One change a decision makes, in the order it made them.
///
/// The instance's own row (status, data, tokens) is written as the instance
/// ends up, so [`Effect::StatusChanged`] and [`Effect::TokenMoved`] are
/// there for the record and for `apply`; the others are rows the store
/// writes beside it: the history (audit entries, activities, lines), the
/// server items and the participants.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    StatusChanged {
        from: InstanceStatus,
        to: InstanceStatus,
    },
    /// An activity instance started: its token is created, ready at its
    /// first event. `activity` is the activity's index in the process.
    ActivityStarted {
        activity: usize,
        record: ActivityRecord,
    },
    /// A token moved: to another state, or on to its next event.
    TokenMoved {
        destination_id: i64,
        next_event: usize,
        state: TokenState,
    },
    /// An activity instance ended (completed, or cancelled by a go-to): its
    /// token is gone.
    ActivityClosed {
        destination_id: i64,
        status: ActivityStatus,
        at: Millis,
    },
    /// A line was evaluated after its activity completed (fired or not).
    LineEvaluated(LineResult),
    /// A server item was created, pending; its token now names it.
    ItemCreated(Box<ServerItem>),
    /// An item was finished by a callback. `unapplied` keeps the finish's
    /// data until the instance applies it ([`Effect::ItemApplied`]); `None`
    /// when it was applied in the same decision.
    ItemFinished {
        serial_id: i64,
        by: String,
        at: Millis,
        unapplied: Option<BTreeMap<String, Value>>,
    },
    /// A finish recorded earlier was applied.
    ItemApplied {
        serial_id: i64,
    },
    /// An open item (pending, or finished and not applied) was closed by a go-to.
    ItemCancelled {
        serial_id: i64,
        by: String,
        at: Millis,
    },
    Audit(AuditEntry),
    /// A user other than the originator acted on the instance (it shows to
    /// them under View Participate).
    TookPart {
        user: String,
    },
    /// A timer was armed for the wait of item `serial_id`, just created: for
    /// its activity's escalation number `escalation`, or (`None`) for its
    /// timer event's own wait.
    TimerArmed {
        serial_id: i64,
        escalation: Option<usize>,
        due_at: Millis,
    },
    /// Timer `id` fired: its row as it is now (fired, or armed again at
    /// `due_at` for a repeat or a notification's next attempt).
    TimerChanged {
        id: i64,
        due_at: Millis,
        fired_count: u32,
        state: TimerState,
    },
    /// Item `serial_id` closed: its armed timers are disarmed.
    TimersDisarmed {
        serial_id: i64,
    },
    /// An IPC event started a child instance, in this transaction (the
    /// child's own rows are written beside the parent's). Kept in the
    /// parent's flow state, which the instance row carries.
    ChildStarted(Box<ChildLink>),
}

impl Effect {
    /// Whether `apply` changes the instance for it.
    pub(crate) fn changes_instance(&self) -> bool {
        matches!(
            self,
            Effect::StatusChanged { .. }
                | Effect::ActivityStarted { .. }
                | Effect::TokenMoved { .. }
                | Effect::ActivityClosed { .. }
                | Effect::ItemCreated(_)
                | Effect::ChildStarted(_)
        )
    }

    /// Whether the store writes it as a row of its own (server items,
    /// participants), rather than in the history record or the instance row.
    pub(crate) fn is_row(&self) -> bool {
        matches!(
            self,
            Effect::ItemCreated(_)
                | Effect::ItemFinished { .. }
                | Effect::ItemApplied { .. }
                | Effect::ItemCancelled { .. }
                | Effect::TookPart { .. }
                | Effect::TimerArmed { .. }
                | Effect::TimerChanged { .. }
                | Effect::TimersDisarmed { .. }
        )
    }

    /// Whether it goes into the instance's history record.
    pub(crate) fn is_history(&self) -> bool {
        matches!(
            self,
            Effect::Audit(_)
                | Effect::ActivityStarted { .. }
                | Effect::ActivityClosed { .. }
                | Effect::LineEvaluated(_)
        )
    }
}

/// The one place an instance's status and tokens change.
fn apply(instance: &mut Instance, effect: &Effect) {
    fn token(instance: &mut Instance, destination_id: i64) -> Option<&mut Token> {
        instance.flow.tokens.iter_mut().find(|t| t.destination_id == destination_id)
    }
    match effect {
        Effect::StatusChanged { to, .. } => instance.status = *to,
        Effect::ActivityStarted { activity, record } => instance.flow.tokens.push(Token {
            destination_id: record.destination_id,
            activity: *activity,
            next_event: 0,
            state: TokenState::Ready,
            serial_id: None,
        }),
        Effect::TokenMoved { destination_id, next_event, state } => {
            if let Some(token) = token(instance, *destination_id) {
                token.next_event = *next_event;
                token.state = *state;
            }
        }
        Effect::ActivityClosed { destination_id, .. } => {
            instance.flow.tokens.retain(|t| t.destination_id != *destination_id);
        }
        Effect::ItemCreated(item) => {
            if let Some(token) = token(instance, item.activity_destination_id) {
                token.serial_id = Some(item.serial.destination_id);
            }
        }
        Effect::ChildStarted(child) => instance.flow.children.push(child.as_ref().clone()),
        Effect::LineEvaluated(_)
        | Effect::ItemFinished { .. }
        | Effect::ItemApplied { .. }
        | Effect::ItemCancelled { .. }
        | Effect::Audit(_)
        | Effect::TookPart { .. }
        | Effect::TimerArmed { .. }
        | Effect::TimerChanged { .. }
        | Effect::TimersDisarmed { .. } => {}
    }
}

/// The effects of one decision, in order, kept in step with the instance
/// they change.
#[derive(Debug, Default)]
pub(crate) struct Effects(Vec<Effect>);

impl Effects {
    /// Applies `effect` to `instance` and records it.
    pub(crate) fn emit(&mut self, instance: &mut Instance, effect: Effect) {
        apply(instance, &effect);
        self.0.push(effect);
    }

    /// Records an effect on the rows beside the instance (history, items,
    /// participants), which leaves the instance as it is.
    pub(crate) fn note(&mut self, effect: Effect) {
        debug_assert!(!effect.changes_instance(), "{effect:?} changes the instance: emit it");
        self.0.push(effect);
    }

    pub fn as_slice(&self) -> &[Effect] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn get(&self, index: usize) -> Option<&Effect> {
        self.0.get(index)
    }

    /// Forgets the effects from `len` on. Only for effects that leave the
    /// instance as it is (the lines an activity evaluated before one of its
    /// rules failed).
    pub(crate) fn truncate(&mut self, len: usize) {
        debug_assert!(self.0.get(len..).unwrap_or_default().iter().all(|e| !e.changes_instance()));
        self.0.truncate(len);
    }

    pub fn into_vec(self) -> Vec<Effect> {
        self.0
    }
}

/// A finish recorded on a server item that the instance has not applied yet.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedFinish {
    pub data: BTreeMap<String, Value>,
    pub by: String,
}

/// What the machine knows of an instance's open server items: pending ones,
/// and finished ones whose finish the instance has not applied yet.
#[derive(Debug, Default, Clone)]
pub struct ItemState {
    /// Serial id of each open item → the activity instance (destination id)
    /// its event runs in. A retried asynchronous event keeps its open item
    /// (and serial); a go-to cancels the open items of what it closes.
    pub open: BTreeMap<i64, i64>,
    /// Finishes to apply, by serial id.
    pub recorded: BTreeMap<i64, RecordedFinish>,
}

/// What [`decide`] reads: the instance and its open items, as read under
/// the write lock (or on the snapshot a planned write is checked against).
#[derive(Debug)]
pub(crate) struct State<'a> {
    pub instance: &'a mut Instance,
    pub items: ItemState,
}

/// What a command changed.
#[derive(Debug)]
pub(crate) struct Decision {
    pub effects: Vec<Effect>,
    /// How the run ended: with work to do outside the transaction, or not.
    pub end: RunEnd,
    /// The command was held ([`Rule::Held`]): its effects are recorded, and
    /// the instance itself did not change.
    pub held: bool,
    /// A notification to send once this decision is committed (a firing
    /// that claimed it); what came of it goes to [`notification_sent`].
    pub notify: Option<Notification>,
}

impl Decision {
    fn new(effects: Effects, end: RunEnd, held: bool) -> Decision {
        Decision { effects: effects.into_vec(), end, held, notify: None }
    }
}

/// An escalation's request, claimed by the firing that decided to send it:
/// sent outside every transaction, and its outcome recorded by
/// [`notification_sent`] only while the timer is still as the claim left it.
#[derive(Debug)]
pub(crate) struct Notification {
    pub timer: i64,
    /// The timer's `fired_count` as the claim wrote it: this attempt's number.
    pub attempt: u32,
    pub escalation: String,
    pub request: Result<HttpRequest, FillError>,
}

/// Applies `command` to `state`: consults [`rule`], then works out every
/// effect, running the instance on (scripts, rules) where the command moves
/// it. On a refusal nothing changed; otherwise `state.instance` is the
/// instance as the effects leave it.
pub(crate) fn decide(run: &Executor<'_>, state: State<'_>, command: Command<'_>) -> Result<Decision, Refusal> {
    let State { instance, mut items } = state;
    let held = verdict(instance, &command)?;
    let mut effects = Effects::default();
    let runs = match command {
        Command::Start => {
            let folio = if instance.folio.is_empty() { String::new() } else { format!("folio `{}`, ", instance.folio) };
            let mut detail = format!("{folio}{} version {}", instance.process, instance.version);
            if let Some(parent) = &instance.flow.parent {
                detail.push_str(&format!(
                    "; started by instance {}, event `{}` of `{}`",
                    parent.instance_id, parent.event, parent.activity
                ));
            }
            run.audit(&mut effects, AuditAction::InstanceStarted, detail);
            run.open_activity(instance, run.process.start, &mut effects);
            true
        }
        Command::Finish { item, data } => {
            let values = check_data(run.process, data)?;
            let serial = item.serial;
            let place = AuditPlace { activity: item.activity.clone(), event: item.event.clone() };
            run.audit_at(&mut effects, place, AuditAction::ItemFinished, with_values(serial.to_string(), &values));
            let finished = |unapplied| Effect::ItemFinished {
                serial_id: serial.destination_id,
                by: run.user.to_owned(),
                at: run.now,
                unapplied,
            };
            if held {
                effects.note(finished(Some(values)));
                effects.note(Effect::TimersDisarmed { serial_id: serial.destination_id });
                took_part(run, instance, &mut effects);
                return Ok(Decision::new(effects, RunEnd::Settled, true));
            }
            let end = finish_and_run_on(run, instance, &mut items, serial.destination_id, values, &mut effects);
            settle(run, instance, &mut effects);
            took_part(run, instance, &mut effects);
            return Ok(Decision::new(effects, end, false));
        }
        Command::Retry => {
            // The failed event runs again; and so does work left due outside
            // in another branch: its runner stopped when the instance went
            // into error (a runner goes on only while the instance runs), and
            // nobody else would pick it up before its lease ran out.
            let mut again = tokens_in(instance, TokenState::Failed);
            again.extend(tokens_in(instance, TokenState::RunningOutside));
            for (destination_id, next_event) in again {
                effects.emit(instance, Effect::TokenMoved { destination_id, next_event, state: TokenState::Ready });
            }
            let what =
                instance.flow.failure.take().map(|f| format!("`{}` {}", f.activity, f.event)).unwrap_or_default();
            run.audit(&mut effects, AuditAction::Retried, what.trim().to_owned());
            set_status(instance, InstanceStatus::Running, &mut effects);
            true
        }
        Command::Stop => {
            set_status(instance, InstanceStatus::Stopped, &mut effects);
            run.audit(&mut effects, AuditAction::Stopped, String::new());
            false
        }
        Command::Resume => {
            set_status(instance, InstanceStatus::Running, &mut effects);
            // A script or request that was running when the instance was
            // stopped has lost its runner's claim: run or send it again (its
            // server item and serial are kept).
            for (destination_id, next_event) in tokens_in(instance, TokenState::RunningOutside) {
                effects.emit(instance, Effect::TokenMoved { destination_id, next_event, state: TokenState::Ready });
            }
            run.audit(&mut effects, AuditAction::Resumed, String::new());
            true
        }
        Command::GoTo { activity } => {
            let target = run.process.find_activity(activity).ok_or_else(|| Refusal::ActivityNotFound {
                process: instance.process.clone(),
                activity: activity.to_owned(),
            })?;
            go_to(run, instance, &mut items, target, &mut effects);
            true
        }
        Command::SetData { data } => {
            for (field, value) in check_data(run.process, data)? {
                let before = instance.data.get(&field).map(shown).unwrap_or_default();
                run.audit(&mut effects, AuditAction::DataChanged, format!("{field}: {before} → {}", shown(&value)));
                instance.data.insert(field, value);
            }
            false
        }
        Command::Recover => {
            let detail = "its runner stopped mid-script or mid-request; running it again".to_owned();
            run.audit(&mut effects, AuditAction::Recovered, detail);
            // The runtime acts here, not a user: nobody takes part.
            return Ok(Decision::new(effects, RunEnd::Settled, false));
        }
        Command::Fire { timer, item } => {
            if held {
                // Nothing is written: the timer stays armed, and fires when
                // the instance runs again (resume, retry) or its event's
                // work has ended.
                return Ok(Decision::new(effects, RunEnd::Settled, true));
            }
            // A deadline or a timer acts, not a user: nobody takes part.
            return fire(run, instance, items, timer, item, effects);
        }
    };
    let end = if runs { run_on(run, instance, &mut items, &mut effects) } else { RunEnd::Settled };
    settle(run, instance, &mut effects);
    took_part(run, instance, &mut effects);
    Ok(Decision::new(effects, end, held))
}

/// Item `serial_id` is finished with `values` (by a callback, a deadline
/// or its timer) and the instance runs on from it, in this decision: the
/// item is written finished with nothing left to apply, in one statement,
/// and its timers are disarmed.
fn finish_and_run_on(
    run: &Executor<'_>,
    instance: &mut Instance,
    items: &mut ItemState,
    serial_id: i64,
    values: BTreeMap<String, Value>,
    effects: &mut Effects,
) -> RunEnd {
    set_status(instance, InstanceStatus::Running, effects);
    items.recorded.insert(serial_id, RecordedFinish { data: values, by: run.user.to_owned() });
    let end = run_on(run, instance, items, effects);
    let unapplied = items.recorded.remove(&serial_id).map(|finish| finish.data);
    effects.0.retain(|e| !matches!(e, Effect::ItemApplied { serial_id: applied } if *applied == serial_id));
    effects.note(Effect::ItemFinished { serial_id, by: run.user.to_owned(), at: run.now, unapplied });
    effects.note(Effect::TimersDisarmed { serial_id });
    end
}

/// Every open activity instance and its items are cancelled (their timers
/// disarmed), and activity `target` starts afresh.
fn go_to(run: &Executor<'_>, instance: &mut Instance, items: &mut ItemState, target: usize, effects: &mut Effects) {
    let closing: Vec<i64> = instance.flow.tokens.iter().map(|t| t.destination_id).collect();
    for destination_id in closing {
        for (&serial_id, _) in items.open.iter().filter(|(_, d)| **d == destination_id) {
            effects.note(Effect::ItemCancelled { serial_id, by: run.user.to_owned(), at: run.now });
            effects.note(Effect::TimersDisarmed { serial_id });
        }
        let closed = Effect::ActivityClosed { destination_id, status: ActivityStatus::Cancelled, at: run.now };
        effects.emit(instance, closed);
    }
    *items = ItemState::default();
    instance.flow.joins.clear();
    instance.flow.failure = None;
    let activity = run.process.activities[target].name.clone();
    let place = AuditPlace { activity: activity.clone(), event: String::new() };
    run.audit_at(effects, place, AuditAction::WentToActivity, activity);
    set_status(instance, InstanceStatus::Running, effects);
    run.open_activity(instance, target, effects);
}

/// A timer the table allows to fire, on a pending item: what its
/// escalation says, or the end of its timer event's wait. The executor's
/// user is [`timer::DEADLINE_USER`] or [`timer::TIMER_USER`].
fn fire(
    run: &Executor<'_>,
    instance: &mut Instance,
    mut items: ItemState,
    timer: &Timer,
    item: &ServerItem,
    mut effects: Effects,
) -> Result<Decision, Refusal> {
    let serial = item.serial;
    let impossible = || Refusal::Impossible {
        id: instance.id,
        status: instance.status,
        command: CommandKind::Fire(ItemPhase::Pending),
    };
    // A pending item's token waits for it (were its work running, the item
    // would be `Working`, and held).
    let Some(position) = instance
        .flow
        .tokens
        .iter()
        .position(|t| t.serial_id == Some(serial.destination_id) && t.state == TokenState::Waiting)
    else {
        return Err(impossible());
    };
    let token = instance.flow.tokens[position].clone();
    let activity = &run.process.activities[token.activity];
    let event = activity.events.get(token.next_event).map(|e| e.name.as_str()).unwrap_or_default();
    let fired_count = timer.fired_count.saturating_add(1);
    let spent = Effect::TimerChanged { id: timer.id, due_at: timer.due_at, fired_count, state: TimerState::Fired };
    let Some(index) = timer.escalation else {
        // A timer event's wait is over: its item finishes, and the instance
        // goes on as after a callback.
        let detail = format!("`{event}`: {serial} waited until {}", format_time(timer.due_at));
        run.audit_at(&mut effects, run.place_of(&token, true), AuditAction::TimerFired, detail);
        effects.note(spent);
        let end = finish_and_run_on(run, instance, &mut items, serial.destination_id, BTreeMap::new(), &mut effects);
        settle(run, instance, &mut effects);
        return Ok(Decision::new(effects, end, false));
    };
    let Some(escalation) = activity.escalations.get(index) else {
        return Err(impossible());
    };
    let name = &escalation.name;
    let fired = |effects: &mut Effects, what: String| {
        let due = format_time(timer.due_at);
        let detail = format!("`{name}` on {serial}, due {due}: {what}");
        run.audit_at(effects, run.place_of(&token, true), AuditAction::EscalationFired, detail);
    };
    let end = match &escalation.action {
        EscalationAction::Finish(set) => {
            let values: BTreeMap<String, Value> = set.iter().cloned().collect();
            fired(&mut effects, with_values("finished the item".to_owned(), &values));
            effects.note(spent);
            finish_and_run_on(run, instance, &mut items, serial.destination_id, values, &mut effects)
        }
        EscalationAction::GoTo(target) => {
            let Some(target_activity) = run.process.activities.get(*target) else {
                return Err(impossible());
            };
            fired(&mut effects, format!("going to `{}`", target_activity.name));
            effects.note(spent);
            go_to(run, instance, &mut items, *target, &mut effects);
            run_on(run, instance, &mut items, &mut effects)
        }
        EscalationAction::Repeat { times } => {
            fired(&mut effects, format!("running `{event}` again ({fired_count} of {times})"));
            // At `after`, 2 × `after`, …: the next one `after` past this
            // one's due time, as long as repeats are left. Repeats missed
            // while nothing ran are not caught up in a burst: the next one
            // comes a whole `after` from now. A repeat on a date (a field)
            // has no next time.
            let after = |from: Millis| run.process.due_at(&escalation.due, from, &instance.data).ok();
            let next = match &escalation.due {
                Due::After(_) if fired_count < *times => {
                    after(timer.due_at).and_then(|next| if next > run.now { Some(next) } else { after(run.now) })
                }
                Due::After(_) | Due::AtField(_) => None,
            };
            effects.note(match next {
                Some(due_at) => Effect::TimerChanged { id: timer.id, due_at, fired_count, state: TimerState::Armed },
                None => spent,
            });
            // The same event again, on the same item and serial (its token
            // keeps them): the script runs again, the request goes again.
            set_status(instance, InstanceStatus::Running, &mut effects);
            let again = Effect::TokenMoved {
                destination_id: token.destination_id,
                next_event: token.next_event,
                state: TokenState::Ready,
            };
            effects.emit(instance, again);
            run_on(run, instance, &mut items, &mut effects)
        }
        EscalationAction::Notify(spec) => {
            fired(&mut effects, format!("notifying (attempt {fired_count})"));
            // The claim: armed still, due again only once the request has
            // had its time, so that nobody else sends it meanwhile.
            let timeout = Millis::try_from(spec.timeout.as_millis()).unwrap_or(Millis::MAX / 4);
            let due_at = run.now.saturating_add(timer::NOTIFY_CLAIM_MS).saturating_add(timeout);
            effects.note(Effect::TimerChanged { id: timer.id, due_at, fired_count, state: TimerState::Armed });
            let context = run.context(instance, &token, Some(serial.destination_id));
            let request = spec.fill(&TemplateValues { context: &context, data: &instance.data });
            let mut decision = Decision::new(effects, RunEnd::Settled, false);
            decision.notify =
                Some(Notification { timer: timer.id, attempt: fired_count, escalation: name.clone(), request });
            return Ok(decision);
        }
        EscalationAction::Fail => {
            fired(&mut effects, "putting the instance in error".to_owned());
            effects.note(spent);
            let message = format!("deadline passed at {} (escalation `{name}`)", format_time(timer.due_at));
            run.fail(instance, position, message, &mut effects);
            RunEnd::Settled
        }
    };
    settle(run, instance, &mut effects);
    Ok(Decision::new(effects, end, false))
}

/// Records what an escalation's notification came to, in the transaction
/// after it was sent: the exchange in the trail, and the timer fired or,
/// refused, armed again for its next attempt ([`timer::notify_retry_at`]).
/// `timer` is the row as read now: when it is no longer as the claim left
/// it (its item closed meanwhile, or a runtime that took it for abandoned
/// sent it again), only the exchange is recorded.
pub(crate) fn notification_sent(
    run: &Executor<'_>,
    timer: Option<&Timer>,
    sent: &Notification,
    exchange: &Exchange,
) -> Decision {
    let mut effects = Effects::default();
    let name = &sent.escalation;
    run.audit(&mut effects, AuditAction::HttpRequest, format!("`{name}`: {}", exchange.summary()));
    let claimed = timer.filter(|t| t.state == TimerState::Armed && t.fired_count == sent.attempt);
    if let Some(timer) = claimed {
        let (due_at, state) = match exchange.failure() {
            None => (timer.due_at, TimerState::Fired),
            Some(reason) => {
                let again = timer::notify_retry_at(run.now, sent.attempt);
                let detail = format!("`{name}`: {reason}; trying again at {}", format_time(again));
                run.audit(&mut effects, AuditAction::NotifyFailed, detail);
                (again, TimerState::Armed)
            }
        };
        effects.note(Effect::TimerChanged { id: timer.id, due_at, fired_count: sent.attempt, state });
    }
    Decision::new(effects, RunEnd::Settled, false)
}

/// Applies what an event's work outside the transaction came to, and runs
/// the instance on. `None` when the work's token is no longer running
/// outside (another runner applied it, or an operator moved the instance
/// on): nothing changed.
pub(crate) fn outside_work_done(
    run: &Executor<'_>,
    state: State<'_>,
    destination_id: i64,
    result: OutsideResult,
) -> Option<Decision> {
    let State { instance, mut items } = state;
    let mut effects = Effects::default();
    if !run.apply_outside(instance, destination_id, result, &mut effects) {
        return None;
    }
    let end = run.run(instance, &mut items, &mut effects);
    settle(run, instance, &mut effects);
    took_part(run, instance, &mut effects);
    Some(Decision::new(effects, end, false))
}

/// A command moved the instance on: a new count of steps begins, and it runs
/// until it waits, ends, fails or has work to do outside.
fn run_on(run: &Executor<'_>, instance: &mut Instance, items: &mut ItemState, effects: &mut Effects) -> RunEnd {
    instance.flow.steps = 0;
    run.run(instance, items, effects)
}

fn set_status(instance: &mut Instance, to: InstanceStatus, effects: &mut Effects) {
    if instance.status != to {
        effects.emit(instance, Effect::StatusChanged { from: instance.status, to });
    }
}

/// The destination ids and events of the tokens in `state`.
fn tokens_in(instance: &Instance, state: TokenState) -> Vec<(i64, usize)> {
    instance.flow.tokens.iter().filter(|t| t.state == state).map(|t| (t.destination_id, t.next_event)).collect()
}

/// The status a run leaves the instance in, judged from its tokens (a
/// stopped instance stays stopped), with the audit line of an ending.
fn settle(run: &Executor<'_>, instance: &mut Instance, effects: &mut Effects) {
    let to = settled_status(instance);
    if to != instance.status {
        match to {
            InstanceStatus::Completed => run.audit(effects, AuditAction::InstanceCompleted, String::new()),
            InstanceStatus::Error => run.audit(effects, AuditAction::InstanceInError, String::new()),
            InstanceStatus::Running | InstanceStatus::Active | InstanceStatus::Stopped => {}
        }
        set_status(instance, to, effects);
    }
    if to == InstanceStatus::Completed {
        instance.flow.joins.clear();
    }
}

/// The originator takes part in its instance without being recorded (see
/// `Transaction::is_participant`); anyone else acting is.
fn took_part(run: &Executor<'_>, instance: &Instance, effects: &mut Effects) {
    if run.user != instance.originator {
        effects.note(Effect::TookPart { user: run.user.to_owned() });
    }
}

/// The status an instance is in after a run, judged from its tokens.
fn settled_status(instance: &Instance) -> InstanceStatus {
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

/// What the table says of `command` on `instance`: whether it is held, or
/// why it is refused.
fn verdict(instance: &Instance, command: &Command<'_>) -> Result<bool, Refusal> {
    match command.kind(instance).map(|kind| (kind, rule(instance.status, kind))) {
        None | Some((_, Rule::Allowed)) => Ok(false),
        Some((_, Rule::Held)) => Ok(true),
        Some((kind, Rule::Refused(why))) => Err(refusal(why, kind, instance, command)),
        Some((kind, Rule::Impossible)) => {
            Err(Refusal::Impossible { id: instance.id, status: instance.status, command: kind })
        }
    }
}

/// The refusal [`decide`] would answer `command` on `instance` with, told
/// without running anything: the table's, then a go-to's unknown activity
/// or a finish's data that does not read. A bulk dry run's foresight: a
/// command it passes may still meet a script that fails.
pub(crate) fn foresee(process: &CompiledProcess, instance: &Instance, command: &Command<'_>) -> Result<(), Refusal> {
    verdict(instance, command)?;
    match command {
        Command::GoTo { activity } => {
            process.find_activity(activity).ok_or_else(|| Refusal::ActivityNotFound {
                process: instance.process.clone(),
                activity: (*activity).to_owned(),
            })?;
        }
        Command::Finish { data, .. } | Command::SetData { data } => {
            check_data(process, data)?;
        }
        _ => {}
    }
    Ok(())
}

fn refusal(why: Why, kind: CommandKind, instance: &Instance, command: &Command<'_>) -> Refusal {
    let closed = |item: &ServerItem| (item.closed_at.unwrap_or_default(), item.closed_by.clone().unwrap_or_default());
    match (why, command) {
        (Why::AlreadyFinished, Command::Finish { item, .. }) => {
            let (at, by) = closed(item);
            Refusal::AlreadyFinished { serial: item.serial, at, by }
        }
        (Why::Cancelled, Command::Finish { item, .. }) => {
            let (at, by) = closed(item);
            Refusal::ItemCancelled { serial: item.serial, at, by }
        }
        _ => Refusal::WrongStatus { id: instance.id, action: kind.words(), status: instance.status },
    }
}

/// Type-checks caller data against the process's fields, naming the first bad field.
pub(crate) fn check_data(
    process: &CompiledProcess,
    data: &[(String, FieldInput)],
) -> Result<BTreeMap<String, Value>, Refusal> {
    let mut values = BTreeMap::new();
    for (field, input) in data {
        let field_type = process.field_types.get(field).ok_or_else(|| Refusal::InvalidData {
            field: field.clone(),
            reason: format!("process `{}` has no such field", process.name()),
        })?;
        let value = input
            .to_value(*field_type, &process.time_zone)
            .map_err(|mismatch| Refusal::InvalidData { field: field.clone(), reason: mismatch.to_string() })?;
        values.insert(field.clone(), value);
    }
    Ok(values)
}

/// `what`, then the values set, as the audit trail says them.
fn with_values(what: String, values: &BTreeMap<String, Value>) -> String {
    if values.is_empty() {
        return what;
    }
    let set: Vec<String> = values.iter().map(|(k, v)| format!("{k} = {}", shown(v))).collect();
    format!("{what}; set {}", set.join(", "))
}

/// A value as written in the audit trail: strings quoted so spaces show.
fn shown(value: &Value) -> String {
    match value {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is total and says one thing per cell; these are the cells
    /// a reader would check first.
    #[test]
    fn the_table_holds_a_finish_while_an_operator_holds_the_instance() {
        for status in [InstanceStatus::Stopped, InstanceStatus::Error] {
            assert_eq!(rule(status, CommandKind::Finish(ItemPhase::Pending)), Rule::Held);
            assert_eq!(rule(status, CommandKind::Finish(ItemPhase::Working)), Rule::Held);
        }
        assert_eq!(rule(InstanceStatus::Running, CommandKind::Finish(ItemPhase::Working)), Rule::Held);
        assert_eq!(rule(InstanceStatus::Active, CommandKind::Finish(ItemPhase::Pending)), Rule::Allowed);
        for status in InstanceStatus::ALL {
            assert_eq!(rule(status, CommandKind::Finish(ItemPhase::Cancelled)), Rule::Refused(Why::Cancelled));
            assert_eq!(rule(status, CommandKind::Finish(ItemPhase::Finished)), Rule::Refused(Why::AlreadyFinished));
        }
    }

    #[test]
    fn a_completed_instance_refuses_every_operator_action() {
        let operator = |c: &CommandKind| !matches!(c, CommandKind::Finish(_) | CommandKind::Fire(_));
        for command in CommandKind::ALL.into_iter().filter(operator) {
            assert_eq!(rule(InstanceStatus::Completed, command), Rule::Refused(Why::WrongStatus), "{command:?}");
        }
    }

    /// A timer fires where a callback would be applied, and is held where
    /// a callback would be; an armed timer never has a closed item.
    #[test]
    fn a_timer_fires_and_is_held_as_a_callback_would_be() {
        for status in InstanceStatus::ALL {
            for phase in [ItemPhase::Pending, ItemPhase::Working] {
                let (finish, fire) = (rule(status, CommandKind::Finish(phase)), rule(status, CommandKind::Fire(phase)));
                assert_eq!(fire, finish, "{status} × {phase:?}");
            }
            for phase in [ItemPhase::Recorded, ItemPhase::Finished, ItemPhase::Cancelled] {
                assert_eq!(rule(status, CommandKind::Fire(phase)), Rule::Impossible, "{status} × {phase:?}");
            }
        }
    }
}
