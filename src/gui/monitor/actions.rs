//! The window's writes, on a worker thread: the twin of [`super::queries`].
//!
//! A write can wait: for SQLite's write lock while another program holds it
//! (up to the busy timeout, 30 s), for the requests of HTTP request events a
//! retry or a start sends, for scripts. None of that may happen inside a
//! frame. So the window never calls a writing engine function itself: a panel
//! collects a [`Command`] while it draws, the window sends it here after the
//! frame ([`Actions::send`], which hands back a [`Ticket`]), draws it as
//! pending meanwhile (a spinner, its buttons disabled), and takes the answer
//! ([`Done`], with the same ticket) from [`Actions::poll`] once per frame.
//!
//! Every write of the window comes this way, the monitor's (retry, stop,
//! resume, go to, save data, finish, and their bulk forms) and the designer's and menus' (deploy,
//! start, rights, API tokens). One worker serialises them in the order they
//! were given, as SQLite would anyway.
//!
//! Closing the window while a write is pending: the command in progress
//! completes (each engine call is whole: a transaction, or a run the engine
//! itself makes safe to cut short), commands not begun yet are dropped
//! unstarted ([`Actions::close`]), and dropping `Actions` waits for the one in
//! progress. No write is ever left half done by the window going away.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;

use crate::engine::{
    BulkAction, BulkProgress, BulkReport, Deployed, EngineError, FieldInput, Finished, Outcome as BulkOutcome,
    Progress, ReasonKey, Selection, Serial, Target,
};
use crate::gui::designer::document::{Sameness, compare_definitions};
use crate::model::{ProcessDraft, Right};
use crate::runtime::{Runtime, RuntimeEngine};

/// An operator action on one instance, as the monitor asks for it.
#[derive(Debug, Clone, PartialEq)]
pub enum Operation {
    Retry(i64),
    Stop(i64),
    Resume(i64),
    GoTo(i64, String),
    /// Field names and the text typed for them.
    SetData(i64, Vec<(String, String)>),
}

impl Operation {
    pub fn instance_id(&self) -> i64 {
        match self {
            Operation::Retry(id)
            | Operation::Stop(id)
            | Operation::Resume(id)
            | Operation::GoTo(id, _)
            | Operation::SetData(id, _) => *id,
        }
    }
}

/// A start asked for from the start form.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    pub process: String,
    pub folio: String,
    /// Field names and the text typed for them.
    pub data: Vec<(String, String)>,
    /// The draft on screen, deployed first, when the form says so.
    pub deploy: Option<ProcessDraft>,
    /// The version the form names; the start is refused if another one is the
    /// default by now (deployed meanwhile by another program).
    pub version: Option<u32>,
}

/// A bulk action's progress, shared by the worker that runs it (which
/// counts there) and the monitor (which draws it, and cancels there). Two
/// are the same only when they are one.
#[derive(Debug, Clone, Default)]
pub struct BulkHandle(pub Arc<BulkProgress>);

impl PartialEq for BulkHandle {
    fn eq(&self, other: &BulkHandle) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// One write the window asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Operate(Operation),
    /// One action over many instances or items (see `engine::bulk`); the
    /// worker is taken for as long as it runs, and it can be cancelled
    /// between targets through `progress`.
    Bulk {
        action: BulkAction,
        selection: Selection,
        progress: BulkHandle,
    },
    /// Finishes the item of `serial` with the fields the operator changed.
    Finish {
        serial: Serial,
        data: Vec<(String, String)>,
    },
    /// Deploys `draft`; unless `again`, a draft identical to the latest
    /// version is not deployed but answered with [`Deploy::Identical`].
    Deploy {
        draft: Box<ProcessDraft>,
        again: bool,
    },
    Start(Box<StartRequest>),
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
    CreateToken {
        user: String,
        label: String,
    },
    RevokeToken {
        id: i64,
    },
    /// Retry or stop every instance in error for one reason (an incident).
    OnIncident {
        key: ReasonKey,
        operation: IncidentOperation,
        progress: IncidentProgress,
    },
}

/// What Retry all and Stop all do to each instance of an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncidentOperation {
    Retry,
    Stop,
}

/// How far an incident's Retry all or Stop all has come, and where it is
/// cancelled: the engine's bulk progress, which the window reads while the
/// worker counts.
#[derive(Debug, Clone, Default)]
pub struct IncidentProgress(Arc<BulkProgress>);

impl IncidentProgress {
    /// (instances settled, instances in all); the total is 0 until known.
    pub fn counts(&self) -> (usize, usize) {
        (self.0.settled(), self.0.total())
    }

    /// Begins no further instance (those in progress complete).
    pub fn cancel(&self) {
        self.0.cancel();
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

impl PartialEq for IncidentProgress {
    fn eq(&self, other: &IncidentProgress) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What Retry all or Stop all did: how many were done, each instance it
/// could not do with why (refused: someone else retried or stopped it
/// meanwhile; retried and failed again; the store failed for it), and how
/// many a cancel left untouched.
#[derive(Debug)]
pub struct IncidentReport {
    pub done: usize,
    pub not_done: Vec<(i64, String)>,
    pub not_reached: usize,
}

/// What a deploy did.
#[derive(Debug, Clone, PartialEq)]
pub enum Deploy {
    /// Nothing: the draft is the same definition as this latest version.
    Identical { version: u32 },
    /// A new version; `layout_only_of` names the previous version when only
    /// the layout differs from it.
    Deployed { deployed: Deployed, layout_only_of: Option<u32> },
}

/// What a start did.
#[derive(Debug)]
pub enum Start {
    /// The instance started (after deploying the draft as `deployed`, if asked).
    Started { deployed: Option<u32>, progress: Progress },
    /// The draft was not deployed, so nothing started.
    NotDeployed(EngineError),
    /// The form named another version than the default one now: nothing
    /// started. `current` is the default version and its definition.
    Moved { current: Option<(u32, ProcessDraft)> },
    /// The start was refused (after deploying the draft as `deployed`, if asked).
    Refused { deployed: Option<u32>, error: EngineError },
}

/// The engine's answer to a command.
#[derive(Debug)]
pub enum Reply {
    Operated(Result<Progress, EngineError>),
    /// What the bulk action came to per target, or why its selection could
    /// not be read.
    Bulk(Result<BulkReport, EngineError>),
    Finished(Result<Finished, EngineError>),
    Deployed(Result<Deploy, EngineError>),
    Started(Start),
    /// A grant or revoke.
    Rights(Result<(), EngineError>),
    /// A token's id and secret.
    TokenCreated(Result<(i64, String), String>),
    TokenRevoked(Result<(), String>),
    OnIncident(Result<IncidentReport, EngineError>),
}

impl Reply {
    /// The answer to `command` when it could not be made at all.
    fn failed(command: &Command, error: EngineError) -> Reply {
        match command {
            Command::Operate(_) => Reply::Operated(Err(error)),
            Command::Bulk { .. } => Reply::Bulk(Err(error)),
            Command::Finish { .. } => Reply::Finished(Err(error)),
            Command::Deploy { .. } => Reply::Deployed(Err(error)),
            Command::Start(_) => Reply::Started(Start::Refused { deployed: None, error }),
            Command::Grant { .. } | Command::Revoke { .. } => Reply::Rights(Err(error)),
            Command::CreateToken { .. } => Reply::TokenCreated(Err(error.to_string())),
            Command::RevokeToken { .. } => Reply::TokenRevoked(Err(error.to_string())),
            Command::OnIncident { .. } => Reply::OnIncident(Err(error)),
        }
    }
}

/// Names one command sent, and its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ticket(u64);

/// A command answered: what was asked, by whom, and the answer.
#[derive(Debug)]
pub struct Done {
    pub ticket: Ticket,
    pub user: String,
    pub command: Command,
    pub reply: Reply,
}

struct Order {
    ticket: Ticket,
    user: String,
    command: Command,
}

/// The handle on the write worker.
pub struct Actions {
    orders: Option<Sender<Order>>,
    done: Receiver<Done>,
    next: u64,
    /// Commands sent and not answered yet.
    pending: usize,
    /// Set when the window closes: what is not begun is not begun at all.
    closing: Arc<AtomicBool>,
    /// How many commands the worker has begun.
    begun: Arc<AtomicU64>,
    worker: Option<JoinHandle<()>>,
}

impl Actions {
    /// Starts the worker on the window's runtime. `wake` is called after
    /// each answer (the window requests a repaint there).
    pub fn start(runtime: Arc<Runtime>, wake: impl Fn() + Send + 'static) -> Result<Actions, EngineError> {
        let (orders, inbox) = channel::<Order>();
        let (outbox, done) = channel();
        let closing = Arc::new(AtomicBool::new(false));
        let begun = Arc::new(AtomicU64::new(0));
        let worker = {
            let (closing, begun) = (closing.clone(), begun.clone());
            std::thread::Builder::new()
                .name("flowdesk-window-writes".to_owned())
                // Retries and starts run scripts here.
                .stack_size(crate::model::script::SCRIPT_THREAD_STACK)
                .spawn(move || {
                    while let Ok(order) = inbox.recv() {
                        if closing.load(Ordering::SeqCst) {
                            return;
                        }
                        begun.fetch_add(1, Ordering::SeqCst);
                        // A panic in an engine call is a bug; the window
                        // says the command failed rather than wait forever.
                        let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            answer(&runtime, &order.user, &order.command)
                        }))
                        .unwrap_or_else(|_| {
                            let error = EngineError::Internal("the write stopped on an unexpected error".to_owned());
                            Reply::failed(&order.command, error)
                        });
                        let done = Done { ticket: order.ticket, user: order.user, command: order.command, reply };
                        if outbox.send(done).is_err() {
                            return;
                        }
                        wake();
                    }
                })
                .map_err(|e| EngineError::Internal(format!("cannot start the window's write thread: {e}")))?
        };
        Ok(Actions { orders: Some(orders), done, next: 0, pending: 0, closing, begun, worker: Some(worker) })
    }

    /// Sends `command`, made as `user`; its answer comes with the ticket
    /// returned, through [`Actions::poll`].
    pub fn send(&mut self, user: &str, command: Command) -> Ticket {
        self.next += 1;
        let ticket = Ticket(self.next);
        let order = Order { ticket, user: user.to_owned(), command };
        // A worker that is gone answers nothing; the window keeps showing the
        // command as pending rather than pretending it was done.
        if self.orders.as_ref().is_some_and(|orders| orders.send(order).is_ok()) {
            self.pending += 1;
        }
        ticket
    }

    /// Every answer that has arrived, in the order the commands were sent.
    pub fn poll(&mut self) -> Vec<Done> {
        // Empty or disconnected: nothing more has arrived.
        let answered: Vec<Done> = std::iter::from_fn(|| self.done.try_recv().ok()).collect();
        self.pending -= answered.len().min(self.pending);
        answered
    }

    /// How many commands were sent and not answered yet.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// How many commands the worker has begun (answered or not).
    pub fn begun(&self) -> u64 {
        self.begun.load(Ordering::SeqCst)
    }

    /// The window closes: the command in progress completes, the ones not
    /// begun are dropped. Returns at once; dropping `Actions` waits.
    pub fn close(&mut self) {
        self.closing.store(true, Ordering::SeqCst);
        self.orders = None;
    }
}

impl Drop for Actions {
    fn drop(&mut self) {
        self.close();
        if let Some(worker) = self.worker.take() {
            // The worker's only way out is through its loop; a panic in it
            // (a bug) has nothing left to tell a closing window.
            let _ = worker.join();
        }
    }
}

fn answer(runtime: &Runtime, user: &str, command: &Command) -> Reply {
    let engine = runtime.engine();
    let inputs = |data: &[(String, String)]| -> Vec<(String, FieldInput)> {
        data.iter().map(|(name, text)| (name.clone(), FieldInput::Text(text.clone()))).collect()
    };
    match command {
        Command::Operate(operation) => Reply::Operated(match operation {
            Operation::Retry(id) => engine.retry(user, *id),
            Operation::Stop(id) => engine.stop(user, *id),
            Operation::Resume(id) => engine.resume(user, *id),
            Operation::GoTo(id, activity) => engine.goto(user, *id, activity),
            Operation::SetData(id, changes) => engine.set_data(user, *id, &inputs(changes)),
        }),
        Command::Bulk { action, selection, progress } => {
            Reply::Bulk(engine.bulk_select(user, action, selection, &progress.0))
        }
        Command::Finish { serial, data } => Reply::Finished(engine.finish(user, *serial, &inputs(data))),
        Command::Deploy { draft, again } => Reply::Deployed(deploy(engine, user, draft, *again)),
        Command::Start(request) => Reply::Started(start(engine, user, request, &inputs(&request.data))),
        Command::Grant { process, user: target, right } => {
            Reply::Rights(engine.grant(user, process, target, &[*right]))
        }
        Command::Revoke { process, user: target, right } => {
            Reply::Rights(engine.revoke(user, process, target, &[*right]))
        }
        Command::CreateToken { user: acting_as, label } => {
            let now = crate::engine::Clock::now(&crate::engine::SystemClock);
            let issued = crate::net::token::issue(runtime, acting_as, label, user, now);
            Reply::TokenCreated(issued.map(|issued| (issued.id, issued.secret)).map_err(|e| e.to_string()))
        }
        Command::RevokeToken { id } => {
            let now = crate::engine::Clock::now(&crate::engine::SystemClock);
            Reply::TokenRevoked(runtime.revoke_token(*id, user, now).map_err(|e| e.to_string()))
        }
        Command::OnIncident { key, operation, progress } => {
            Reply::OnIncident(on_incident(engine, user, key, *operation, progress))
        }
    }
}

/// Retry all or Stop all: the engine's bulk action over the incident's
/// instances (as read now), so each is judged, checked for rights and
/// recorded as the lists' bulk actions are, and their commits are shared.
fn on_incident(
    engine: &RuntimeEngine,
    user: &str,
    key: &ReasonKey,
    operation: IncidentOperation,
    progress: &IncidentProgress,
) -> Result<IncidentReport, EngineError> {
    let targets: Vec<Target> = engine.incident_instances(user, key)?.into_iter().map(Target::Instance).collect();
    let action = match operation {
        IncidentOperation::Retry => BulkAction::Retry,
        IncidentOperation::Stop => BulkAction::Stop,
    };
    let bulk = engine.bulk(user, &action, &targets, &progress.0);
    let mut report = IncidentReport { done: 0, not_done: Vec::new(), not_reached: 0 };
    for (target, outcome) in bulk.outcomes {
        let Target::Instance(id) = target else { continue };
        match outcome {
            // A retry whose step fails again leaves the instance in error.
            BulkOutcome::Done { progress, .. } if progress.status == crate::engine::InstanceStatus::Error => {
                let why = progress.failure.map_or_else(String::new, |f| format!(": {}", f.message));
                report.not_done.push((id, format!("failed again{why}")));
            }
            BulkOutcome::Done { .. } => report.done += 1,
            BulkOutcome::Refused(error) | BulkOutcome::Failed(error) => {
                report.not_done.push((id, super::refusal_words(&error)));
            }
            BulkOutcome::NotReached => report.not_reached += 1,
        }
    }
    Ok(report)
}

/// The default (latest) version of a deployed process and its definition;
/// `None` if it was never deployed.
pub fn latest(engine: &RuntimeEngine, process: &str) -> Result<Option<(u32, ProcessDraft)>, EngineError> {
    let processes = engine.processes()?;
    let Some(summary) = processes.into_iter().find(|p| p.name == process) else { return Ok(None) };
    let compiled = engine.definition(process)?;
    Ok(Some((summary.default_version, compiled.draft.clone())))
}

/// Compares the draft with the latest version (here, so that what is
/// compared is what is there when the deploy is made) and deploys it.
fn deploy(engine: &RuntimeEngine, user: &str, draft: &ProcessDraft, again: bool) -> Result<Deploy, EngineError> {
    let compared = latest(engine, &draft.name)?.map(|(version, definition)| {
        let sameness = compare_definitions(draft, &definition);
        (version, sameness)
    });
    if let Some((version, Sameness::Identical)) = compared
        && !again
    {
        return Ok(Deploy::Identical { version });
    }
    let deployed = engine.deploy(user, draft)?;
    let layout_only_of = match compared {
        Some((version, Sameness::LayoutOnly)) => Some(version),
        _ => None,
    };
    Ok(Deploy::Deployed { deployed, layout_only_of })
}

fn start(engine: &RuntimeEngine, user: &str, request: &StartRequest, data: &[(String, FieldInput)]) -> Start {
    let deployed = match &request.deploy {
        Some(draft) => match engine.deploy(user, draft) {
            Ok(deployed) => Some(deployed.version),
            Err(error) => return Start::NotDeployed(error),
        },
        None => {
            // The version the form names is the one that starts: another
            // deploy (the command line, another window) may have come since.
            match latest(engine, &request.process) {
                Ok(current) if current.as_ref().map(|(version, _)| *version) != request.version => {
                    return Start::Moved { current };
                }
                Ok(_) => None,
                Err(error) => return Start::Refused { deployed: None, error },
            }
        }
    };
    match engine.start(user, &request.process, &request.folio, data) {
        Ok(progress) => Start::Started { deployed, progress },
        Err(error) => Start::Refused { deployed, error },
    }
}
