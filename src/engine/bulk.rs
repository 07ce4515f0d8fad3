//! Bulk actions: one operator action (retry, stop, resume, go to an
//! activity, finish with data) over many instances or server items.
//!
//! A bulk action is nothing but the single action, once per target: each
//! target is judged by the same table ([`super::rule`]) on its own state,
//! with the acting user's rights checked on its own process, in its own
//! transaction(s), and recorded in its own instance's trail (the line of
//! the action says it was part of a bulk action). One target's refusal
//! ("already finished at … by …") is its answer and nobody else's: the
//! others go on. So a bulk action is never refused as a whole; its
//! [`BulkReport`] answers per target.
//!
//! Targets run on up to [`BULK_WORKERS`] threads at once, so that their
//! commits share the store's group commits (one `fsync` for many targets)
//! instead of paying one each: what lets 10,000 finishes complete in
//! seconds with every commit durable. The order in which targets are
//! acted on is therefore not their order in the list; the report keeps
//! the list's order. Between targets each worker looks at the
//! [`BulkProgress`] it was given: a front end reads how far the action has
//! come there, and cancels there (the targets in progress complete, no
//! other begins).
//!
//! A selection by filter ([`Selection::MatchingInstances`],
//! [`Selection::MatchingItems`]) is resolved here, in one read of the
//! store, from the filter and the acting user's visibility: a front end
//! never carries the ids of 100,000 instances to the engine.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

use super::{Command, Effect, Engine, EngineError, FieldInput, Progress, Storage, Transaction};
use crate::engine::instance::AuditAction;
use crate::engine::serial::Serial;
use crate::engine::storage::{InstanceFilter, ItemFilter};
use crate::model::Right;

/// Threads that act on a bulk action's targets at once: enough callers for
/// group commit to share its commits among them (as the timers' firing).
pub const BULK_WORKERS: usize = 32;

/// How often a target whose write met a busy database or a conflicting
/// batch is tried again before its failure is its answer.
const ATTEMPTS: usize = 3;

/// What a bulk action does to each of its targets.
#[derive(Debug, Clone, PartialEq)]
pub enum BulkAction {
    /// Retry an instance in error ([`Engine::retry`]).
    Retry,
    /// Stop an instance ([`Engine::stop`]).
    Stop,
    /// Resume a stopped instance ([`Engine::resume`]).
    Resume,
    /// Move an instance to an activity ([`Engine::goto`]).
    GoTo { activity: String },
    /// Finish a server item, setting these fields ([`Engine::finish`]).
    Finish { data: Vec<(String, FieldInput)> },
}

impl BulkAction {
    /// The action as a verb: "retry", "go to `Review`", "finish".
    pub fn verb(&self) -> String {
        match self {
            BulkAction::Retry => "retry".to_owned(),
            BulkAction::Stop => "stop".to_owned(),
            BulkAction::Resume => "resume".to_owned(),
            BulkAction::GoTo { activity } => format!("go to `{activity}`"),
            BulkAction::Finish { .. } => "finish".to_owned(),
        }
    }

    /// Whether the action's targets are server items (a finish) rather
    /// than instances.
    pub fn on_items(&self) -> bool {
        matches!(self, BulkAction::Finish { .. })
    }

    /// The trail's line of the single action, which a bulk action marks.
    fn audit_action(&self) -> AuditAction {
        match self {
            BulkAction::Retry => AuditAction::Retried,
            BulkAction::Stop => AuditAction::Stopped,
            BulkAction::Resume => AuditAction::Resumed,
            BulkAction::GoTo { .. } => AuditAction::WentToActivity,
            BulkAction::Finish { .. } => AuditAction::ItemFinished,
        }
    }
}

/// Which instances or items a bulk action is for.
#[derive(Debug, Clone, PartialEq)]
pub enum Selection {
    /// These instances (an operator's selection, an incident group).
    Instances(Vec<i64>),
    /// These server items (a file of serials, an API call's list).
    Serials(Vec<Serial>),
    /// Every instance the acting user sees that matches the filter (its
    /// order, limit and offset are ignored): "all N matching".
    MatchingInstances(InstanceFilter),
    /// Every server item the acting user sees that matches the filter (its
    /// order, limit and cursor are ignored).
    MatchingItems(ItemFilter),
}

/// One target of a bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Instance(i64),
    Item(Serial),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Instance(id) => write!(f, "instance {id}"),
            Target::Item(serial) => write!(f, "server item {serial}"),
        }
    }
}

/// What became of one target.
#[derive(Debug)]
pub enum Outcome {
    /// Done: where its instance now stands. `applied` is false for a finish
    /// recorded but not applied yet (its instance is stopped or in error,
    /// or its event's work still runs), as a single finish says.
    Done { applied: bool, progress: Progress },
    /// Refused, with the same typed reason the single action gives
    /// ([`EngineError::is_refusal`]); nothing of it changed.
    Refused(EngineError),
    /// The store or the engine failed for it (after [`ATTEMPTS`] tries where
    /// that may help); nothing of it changed.
    Failed(EngineError),
    /// Not acted on: the action was cancelled first.
    NotReached,
}

/// How far a bulk action has come, and the switch that cancels it: shared
/// between the thread that runs the action and whoever watches it.
#[derive(Debug, Default)]
pub struct BulkProgress {
    total: AtomicUsize,
    done: AtomicUsize,
    refused: AtomicUsize,
    failed: AtomicUsize,
    cancel: AtomicBool,
}

impl BulkProgress {
    pub fn new() -> BulkProgress {
        BulkProgress::default()
    }

    /// Asks the action to begin no further target.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Targets in all (0 until the selection is resolved).
    pub fn total(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Targets answered so far (done, refused or failed).
    pub fn settled(&self) -> usize {
        self.done() + self.refused() + self.failed.load(Ordering::SeqCst)
    }

    pub fn done(&self) -> usize {
        self.done.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }

    fn count(&self, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Done { .. } => &self.done,
            Outcome::Refused(_) => &self.refused,
            Outcome::Failed(_) => &self.failed,
            Outcome::NotReached => return,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a bulk action came to, per target in the order of its list.
#[derive(Debug)]
pub struct BulkReport {
    pub action: BulkAction,
    pub outcomes: Vec<(Target, Outcome)>,
    /// The action was cancelled before every target was reached.
    pub cancelled: bool,
}

impl BulkReport {
    pub fn total(&self) -> usize {
        self.outcomes.len()
    }

    pub fn done(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Done { .. })).count()
    }

    /// The refused targets with why, in the list's order.
    pub fn refused(&self) -> impl Iterator<Item = (&Target, &EngineError)> {
        self.outcomes.iter().filter_map(|(t, o)| match o {
            Outcome::Refused(err) => Some((t, err)),
            _ => None,
        })
    }

    /// The targets the store or engine failed for, with why.
    pub fn failed(&self) -> impl Iterator<Item = (&Target, &EngineError)> {
        self.outcomes.iter().filter_map(|(t, o)| match o {
            Outcome::Failed(err) => Some((t, err)),
            _ => None,
        })
    }

    pub fn not_reached(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::NotReached)).count()
    }

    /// Whether every target was done.
    pub fn all_done(&self) -> bool {
        self.done() == self.total()
    }

    /// Targets done but not applied yet: finishes recorded while their
    /// instance is stopped or in error (or its event's work still runs).
    pub fn recorded(&self) -> usize {
        self.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Done { applied: false, .. })).count()
    }

    /// The report in one line, as an operator reads it: "9,998 done, 2
    /// refused" (failures and targets a cancel left out named only when
    /// there are some, and finishes only recorded, which the single finish
    /// says too).
    pub fn summary(&self) -> String {
        let mut parts =
            vec![format!("{} done", thousands(self.done())), format!("{} refused", thousands(self.refused().count()))];
        let failed = self.failed().count();
        if failed > 0 {
            parts.push(format!("{} failed", thousands(failed)));
        }
        if self.cancelled {
            parts.push(format!("cancelled before {}", thousands(self.not_reached())));
        }
        let mut summary = parts.join(", ");
        match self.recorded() {
            0 => {}
            1 => summary.push_str(" (1 of them recorded, applied when its instance runs again)"),
            n => summary
                .push_str(&format!(" ({} of them recorded, applied when their instances run again)", thousands(n))),
        }
        summary
    }
}

/// A count as people read it: "10,000".
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl<S: Storage> Engine<S> {
    /// The targets `selection` names for `action`, sorted, each once: for a
    /// finish, server items (an instance stands for its pending items); for
    /// the other actions, instances (an item stands for its instance). A
    /// filter is resolved in one read, on what the acting user may see;
    /// whether the user may act on each target is judged when it is acted
    /// on. Nothing is changed: this is also the dry run.
    pub fn bulk_targets(
        &self,
        user: &str,
        action: &BulkAction,
        selection: &Selection,
    ) -> Result<Vec<Target>, EngineError> {
        let now = self.now();
        let mut targets: Vec<Target> = self.store.read(|tx| {
            Ok(match (selection, action.on_items()) {
                (Selection::Instances(ids), false) => ids.iter().copied().map(Target::Instance).collect(),
                (Selection::Serials(serials), true) => serials.iter().copied().map(Target::Item).collect(),
                (Selection::Serials(serials), false) => {
                    serials.iter().map(|serial| Target::Instance(serial.instance_id)).collect()
                }
                (Selection::Instances(ids), true) => {
                    // Only the items of instances the user may see: their
                    // serials are not told to anyone else (a filter's
                    // selection is what the user sees, likewise).
                    let mut items = Vec::new();
                    for id in ids {
                        let Some(instance) = tx.instance(*id)? else { continue };
                        if super::may_see(tx, &instance.process, *id, user)? {
                            items.extend(tx.pending_items_of(*id)?.into_iter().map(|item| Target::Item(item.serial)));
                        }
                    }
                    items
                }
                (Selection::MatchingInstances(filter), on_items) => {
                    if let Some(process) = &filter.process {
                        super::require_process(tx, process)?;
                    }
                    // Read as the list reads it (a field condition for its
                    // field's type), so that "all N matching" is those N.
                    let filter = self.checked_filter(tx, &InstanceFilter { limit: 0, offset: 0, ..filter.clone() })?;
                    let visibility = self.visibility(tx, user)?;
                    let ids: Vec<i64> = tx.instances(&visibility, &filter)?.iter().map(|i| i.id).collect();
                    if on_items {
                        let mut items = Vec::new();
                        for id in ids {
                            items.extend(tx.pending_items_of(id)?.into_iter().map(|item| Target::Item(item.serial)));
                        }
                        items
                    } else {
                        ids.into_iter().map(Target::Instance).collect()
                    }
                }
                (Selection::MatchingItems(filter), on_items) => {
                    if let Some(process) = &filter.process {
                        super::require_process(tx, process)?;
                    }
                    let visibility = self.visibility(tx, user)?;
                    let filter = ItemFilter { now, limit: 0, after: None, by_due: false, ..filter.clone() };
                    let items = tx.items(&visibility, &filter)?;
                    if on_items {
                        items.into_iter().map(|item| Target::Item(item.serial)).collect()
                    } else {
                        items.into_iter().map(|item| Target::Instance(item.serial.instance_id)).collect()
                    }
                }
            })
        })?;
        targets.sort();
        targets.dedup();
        Ok(targets)
    }

    /// A dry run's foresight, per target in the order of `targets`: the
    /// refusal the action would answer on what the store holds now (the
    /// table, the user's right, an activity or a field that is not there),
    /// or `None` where it would act; a target whose stored state is damaged
    /// is answered with that error, as the action would answer it (only a
    /// failing store fails the whole). Read in one snapshot; runs nothing,
    /// so a retried script may still fail again, and someone may act first.
    pub fn bulk_foresee(
        &self,
        user: &str,
        action: &BulkAction,
        targets: &[Target],
    ) -> Result<Vec<Option<EngineError>>, EngineError> {
        self.store.read(|tx| {
            let mut foreseen = Vec::with_capacity(targets.len());
            for target in targets {
                foreseen.push(match self.foresee_one(tx, user, action, *target) {
                    Ok(()) => None,
                    Err(err @ EngineError::Storage(_)) => return Err(err),
                    Err(err) => Some(err),
                });
            }
            Ok(foreseen)
        })
    }

    fn foresee_one(
        &self,
        tx: &mut dyn Transaction,
        user: &str,
        action: &BulkAction,
        target: Target,
    ) -> Result<(), EngineError> {
        let (instance, right, item) = match target {
            Target::Item(serial) => {
                let (item, instance) = super::find_item(tx, serial)?;
                (instance, Right::ServerEvent, Some(item))
            }
            Target::Instance(id) => (tx.instance(id)?.ok_or(EngineError::InstanceNotFound { id })?, Right::Admin, None),
        };
        super::require(tx, &instance.process, user, right)?;
        let process = self.compiled(tx, &instance.process, instance.version)?;
        let command = match (action, &item) {
            (BulkAction::Finish { data }, Some(item)) => Command::Finish { item, data },
            (BulkAction::Retry, None) => Command::Retry,
            (BulkAction::Stop, None) => Command::Stop,
            (BulkAction::Resume, None) => Command::Resume,
            (BulkAction::GoTo { activity }, None) => Command::GoTo { activity },
            (action, _) => {
                return Err(EngineError::Internal(format!("a bulk {} cannot act on {target}", action.verb())));
            }
        };
        Ok(super::machine::foresee(&process, &instance, &command)?)
    }

    /// Resolves `selection` ([`Engine::bulk_targets`]) and acts on every
    /// target ([`Engine::bulk`]). Fails as a whole only when the selection
    /// cannot be read.
    pub fn bulk_select(
        &self,
        user: &str,
        action: &BulkAction,
        selection: &Selection,
        progress: &BulkProgress,
    ) -> Result<BulkReport, EngineError> {
        let targets = self.bulk_targets(user, action, selection)?;
        Ok(self.bulk(user, action, &targets, progress))
    }

    /// Does `action` to every target as the single action would (the table,
    /// the user's rights on the target's process, its own transactions, its
    /// own trail, the line of the action marked as part of a bulk action),
    /// on up to [`BULK_WORKERS`] threads at once; answers per target, in the
    /// order of `targets`. `progress` counts as targets are answered, and
    /// cancelling it begins no further target.
    pub fn bulk(&self, user: &str, action: &BulkAction, targets: &[Target], progress: &BulkProgress) -> BulkReport {
        progress.total.store(targets.len(), Ordering::SeqCst);
        let note = format!("part of a bulk {} of {}", action.verb(), thousands(targets.len()));
        let next = AtomicUsize::new(0);
        let answers: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..targets.len()).map(|_| None).collect());
        let work = || {
            while !progress.is_cancelled() {
                let index = next.fetch_add(1, Ordering::SeqCst);
                let Some(target) = targets.get(index) else { break };
                let outcome = self.bulk_one(user, action, *target, &note);
                progress.count(&outcome);
                answers.lock().unwrap_or_else(PoisonError::into_inner)[index] = Some(outcome);
            }
        };
        std::thread::scope(|scope| {
            for _ in 1..BULK_WORKERS.min(targets.len()) {
                let builder = std::thread::Builder::new()
                    .name("flowdesk-bulk".to_owned())
                    .stack_size(crate::model::script::SCRIPT_THREAD_STACK);
                // A thread that cannot be made leaves its share to the others.
                let _ = builder.spawn_scoped(scope, work);
            }
            work();
        });
        let answers = answers.into_inner().unwrap_or_else(PoisonError::into_inner);
        let outcomes: Vec<(Target, Outcome)> = targets
            .iter()
            .zip(answers)
            .map(|(target, answer)| (*target, answer.unwrap_or(Outcome::NotReached)))
            .collect();
        let cancelled = outcomes.iter().any(|(_, o)| matches!(o, Outcome::NotReached));
        BulkReport { action: action.clone(), outcomes, cancelled }
    }

    /// One target: its transaction, tried again while it met a busy
    /// database or a batch given up over another member; then what follows
    /// its commit (the instance's work outside, its overdue timers), once.
    /// Committed, the target is done whatever follows fails: trying the
    /// action again then would be refused by its own commit ("cannot resume:
    /// it is Active"), and what is left is the ticker's and recovery's, as
    /// after a single action.
    fn bulk_one(&self, user: &str, action: &BulkAction, target: Target, note: &str) -> Outcome {
        let mut attempt = 1;
        let (applied, step) = loop {
            match self.bulk_write(user, action, target, note) {
                Ok(written) => break written,
                Err(err) if err.is_retryable() && attempt < ATTEMPTS => attempt += 1,
                Err(err) if err.is_refusal() => return Outcome::Refused(err),
                Err(err) => return Outcome::Failed(err),
            }
        };
        let finished = match target {
            Target::Item(serial) if !applied => Some(serial),
            _ => None,
        };
        let committed = super::progress_of(&step.instance, finished);
        let id = step.instance.id;
        let progress = self.continue_async(user, step).map(|instance| super::progress_of(&instance, finished));
        let progress = match (action, progress) {
            (BulkAction::Retry | BulkAction::Resume, Ok(progress)) => self.fire_overdue_of(id, progress),
            (_, progress) => progress,
        };
        Outcome::Done { applied, progress: progress.unwrap_or(committed) }
    }

    /// A target's transaction: whether its action was applied (a finish may
    /// be only recorded), and what it committed.
    fn bulk_write(
        &self,
        user: &str,
        action: &BulkAction,
        target: Target,
        note: &str,
    ) -> Result<(bool, super::Step), EngineError> {
        let marked = Some((action.audit_action(), note));
        let (command, id) = match (action, target) {
            (BulkAction::Finish { data }, Target::Item(serial)) => {
                return self.finish_write(user, serial, data, marked);
            }
            (BulkAction::Retry, Target::Instance(id)) => (Command::Retry, id),
            (BulkAction::Stop, Target::Instance(id)) => (Command::Stop, id),
            (BulkAction::Resume, Target::Instance(id)) => (Command::Resume, id),
            (BulkAction::GoTo { activity }, Target::Instance(id)) => (Command::GoTo { activity }, id),
            (action, target) => {
                return Err(EngineError::Internal(format!("a bulk {} cannot act on {target}", action.verb())));
            }
        };
        Ok((true, self.operate_write(user, id, command, marked)?))
    }
}

/// Marks the trail's line of the action itself (the first line of that
/// kind by the acting user) as part of a bulk action.
pub(super) fn mark(effects: &mut [Effect], user: &str, action: AuditAction, note: &str) {
    let line = effects.iter_mut().find_map(|effect| match effect {
        Effect::Audit(entry) if entry.action == action && entry.user == user => Some(entry),
        _ => None,
    });
    if let Some(entry) = line {
        entry.detail = if entry.detail.is_empty() { note.to_owned() } else { format!("{}; {note}", entry.detail) };
    }
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_are_grouped_by_commas() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(9998), "9,998");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
