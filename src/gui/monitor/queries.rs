//! The monitor's reads, on a worker thread of their own, through the
//! window's runtime (its store's pool of read connections, which never wait
//! for a write).
//!
//! A million instances must not stall a frame: the UI asks for what it needs
//! (a page of rows, a count, an instance, the items) and draws what it has;
//! the worker answers and wakes the UI. Only the newest request of each kind
//! is answered, so fast scrolling or typing in a filter never builds a queue.
//! Writes go through [`super::actions`], the twin of this module.
//!
//! **Live views.** Between requests the worker looks at the store's change
//! counter ([`RuntimeEngine::data_version`]: SQLite's `PRAGMA data_version`
//! on a connection of its own, a few microseconds) every [`POLL_PERIOD`],
//! and only when it moved (anyone committed: another process, this
//! window's writes, its ticker's firings) does it count a new
//! [`Queries::generation`] and wake the UI. The views compare the
//! generation with the one they last read at and ask again for what they
//! show; nothing is read again while nothing changed, and what is read is
//! the page, count, instance and items on screen, never a whole table.
//! Tests drive the looks themselves ([`Polling::Manual`], [`Queries::look`]).

use std::collections::HashMap;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::time::{Duration, Instant};

use crate::engine::{ActivityCount, Overview, Span, Throughput};
use crate::engine::{
    CommandKind, EngineError, InstanceDetail, InstanceFilter, InstanceStatus, InstanceSummary, ItemFilter, ItemPhase,
    ItemStatus, OpenedItem, ProcessSummary, Rule, ServerItem, rule,
};
use crate::model::CompiledProcess;
use crate::runtime::{Runtime, RuntimeEngine};

#[derive(Debug, Clone, PartialEq)]
pub enum Query {
    Page {
        filter: InstanceFilter,
        offset: usize,
        limit: usize,
    },
    Count {
        filter: InstanceFilter,
    },
    Detail {
        id: i64,
    },
    Items {
        filter: ItemFilter,
    },
    Processes,
    /// The server item of a serial, opened for a finish (as the connected
    /// user may see it).
    Item {
        serial: String,
    },
    /// The overview: counts, ages, incidents.
    Overview,
    /// Instances started and completed over a span (of one process
    /// version, or all).
    Throughput {
        version: Option<(String, u32)>,
        span: Span,
    },
    /// A version's definition and the counts on its diagram.
    Diagram {
        process: String,
        version: u32,
    },
}

impl Query {
    /// Requests of the same kind replace each other in the queue.
    fn kind(&self) -> u8 {
        match self {
            Query::Page { .. } => 0,
            Query::Count { .. } => 1,
            Query::Detail { .. } => 2,
            Query::Items { .. } => 3,
            Query::Processes => 4,
            Query::Item { .. } => 5,
            Query::Overview => 6,
            Query::Throughput { .. } => 7,
            Query::Diagram { .. } => 8,
        }
    }

    /// Answering order within a batch: the rows on screen first, then the
    /// selected instance, then the rest (a count over a million rows takes
    /// longer than the page it labels).
    fn urgency(&self) -> u8 {
        match self {
            // What a click asked for, then the rows on screen.
            Query::Item { .. } | Query::Page { .. } => 0,
            Query::Detail { .. } => 1,
            Query::Count { .. } => 2,
            Query::Items { .. } | Query::Overview | Query::Diagram { .. } => 3,
            Query::Processes | Query::Throughput { .. } => 4,
        }
    }
}

pub enum Reply {
    Page {
        filter: InstanceFilter,
        offset: usize,
        rows: Result<Vec<InstanceSummary>, String>,
    },
    Count {
        filter: InstanceFilter,
        count: Result<u64, String>,
    },
    Detail {
        id: i64,
        detail: Box<Result<InstanceDetail, String>>,
    },
    Items {
        filter: ItemFilter,
        items: Result<Vec<ItemRow>, String>,
        /// How many items the filter matches, the list holding at most its
        /// limit of them (`None` when they could not be counted).
        matching: Option<u64>,
    },
    Processes(Vec<ProcessSummary>),
    /// The item of `serial` as `user` may see it; the error is the engine's,
    /// so that a refusal is said in the operator's words.
    Item {
        serial: String,
        user: String,
        item: Box<Result<OpenedItem, EngineError>>,
    },
    Overview(Box<Result<Overview, String>>),
    Throughput {
        version: Option<(String, u32)>,
        span: Span,
        throughput: Result<Throughput, String>,
    },
    Diagram {
        process: String,
        version: u32,
        diagram: Result<(Arc<CompiledProcess>, Vec<ActivityCount>), String>,
    },
}

/// A server item as the items list shows it: the item, and its instance's
/// status when that holds a finish back.
///
/// It reads as the item it wraps (`Deref`), so the list draws its columns as
/// before and only the status cell asks for more.
#[derive(Debug, Clone)]
pub struct ItemRow {
    pub item: ServerItem,
    /// `Error` or `Stopped` when the instance of a pending item is held there:
    /// a finish is then only recorded, and applied after Retry or Resume.
    pub held: Option<InstanceStatus>,
}

impl ItemRow {
    /// The status cell: a pending item of a held instance is not simply
    /// pending, since nothing moves when it is finished.
    pub fn status_words(&self) -> &'static str {
        match (self.item.status, self.held) {
            (ItemStatus::Pending, Some(InstanceStatus::Error)) => "In error",
            (ItemStatus::Pending, Some(InstanceStatus::Stopped)) => "Stopped",
            (status, _) => status.name(),
        }
    }
}

impl Deref for ItemRow {
    type Target = ServerItem;

    fn deref(&self) -> &ServerItem {
        &self.item
    }
}

/// How often the worker looks at the store's change counter while no
/// request keeps it busy: a change shows within this and the time its
/// views take to read (the goal is a quarter of a second; `flowdesk
/// bench-monitor --live` measures it). A look costs a few microseconds, so
/// twenty a second cost nothing to speak of.
pub const POLL_PERIOD: Duration = Duration::from_millis(50);

/// When the worker looks for changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polling {
    /// Every [`POLL_PERIOD`], as the window does.
    Periodic,
    /// Only when [`Queries::look`] asks (tests: no change shows before the
    /// test says so).
    Manual,
}

/// What the UI sends the worker.
enum Request {
    /// Boxed: a query is large, a look is nothing.
    Ask(String, Box<Query>),
    /// Look at the change counter now.
    Look,
}

/// What the worker and the UI share besides the channels.
#[derive(Default)]
struct Shared {
    /// Counts the times the change counter was seen to move.
    generation: AtomicU64,
    /// Looks at the change counter made so far.
    looks: AtomicU64,
    /// Queries answered so far (each one read the store).
    answered: AtomicU64,
    /// The worker only looks when asked.
    manual: AtomicBool,
}

pub struct Queries {
    requests: Sender<Request>,
    replies: Receiver<Reply>,
    shared: Arc<Shared>,
    engine: Arc<RuntimeEngine>,
}

impl Queries {
    /// Starts the worker on `runtime`'s database. `wake` is called after each
    /// reply, and when the data changed (the UI requests a repaint there).
    pub fn start(runtime: &Runtime, wake: impl Fn() + Send + 'static) -> Result<Queries, EngineError> {
        let engine = runtime.engine().clone();
        let worker_engine = engine.clone();
        let (requests, inbox) = channel::<Request>();
        let (outbox, replies) = channel();
        let shared = Arc::new(Shared::default());
        let worker_shared = shared.clone();
        std::thread::Builder::new()
            .name("flowdesk-monitor-queries".to_owned())
            .spawn(move || worker(worker_engine, inbox, outbox, wake, worker_shared))
            .map_err(|e| EngineError::Internal(format!("cannot start the monitor's query thread: {e}")))?;
        Ok(Queries { requests, replies, shared, engine })
    }

    /// The engine the worker reads, for the window's few small reads of
    /// its own (a process's definition, cached once compiled).
    pub fn engine(&self) -> &RuntimeEngine {
        &self.engine
    }

    /// Asks as `user`; the answer arrives through [`Queries::poll`].
    pub fn ask(&self, user: &str, query: Query) {
        // A closed worker only means no answers: the UI keeps what it has.
        let _ = self.requests.send(Request::Ask(user.to_owned(), Box::new(query)));
    }

    /// Sets when the worker looks for changes. From [`Polling::Manual`] on,
    /// it makes no look of its own, not even one it was about to make.
    pub fn set_polling(&self, polling: Polling) {
        self.shared.manual.store(polling == Polling::Manual, Ordering::SeqCst);
        if polling == Polling::Periodic {
            // Wakes the worker, so that its looks start again at once.
            let _ = self.requests.send(Request::Look);
        }
    }

    /// Has the worker look at the change counter now (after the requests
    /// sent before); [`Queries::looks`] counts it once made.
    pub fn look(&self) {
        let _ = self.requests.send(Request::Look);
    }

    /// **The hook for views that show what the database holds**: a number
    /// that grows each time the worker saw a commit (anyone's). A view
    /// remembers the generation it last read at and reads again when this
    /// one differs; the UI is woken when it grows.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::SeqCst)
    }

    /// Looks at the change counter made so far.
    pub fn looks(&self) -> u64 {
        self.shared.looks.load(Ordering::SeqCst)
    }

    /// Queries the worker has answered so far: each one read the store.
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Every reply that has arrived.
    pub fn poll(&self) -> Vec<Reply> {
        let mut replies = Vec::new();
        loop {
            match self.replies.try_recv() {
                Ok(reply) => replies.push(reply),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return replies,
            }
        }
    }
}

/// How long the worker waits for the rest of a burst of requests.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(1);

fn worker(
    engine: Arc<RuntimeEngine>,
    inbox: Receiver<Request>,
    outbox: Sender<Reply>,
    wake: impl Fn(),
    shared: Arc<Shared>,
) {
    let mut watch = Watch { seen: engine.data_version().ok() };
    let mut next_look = Instant::now() + POLL_PERIOD;
    loop {
        let manual = shared.manual.load(Ordering::SeqCst);
        let received = if manual {
            inbox.recv().map_err(|_| RecvTimeoutError::Disconnected)
        } else {
            inbox.recv_timeout(next_look.saturating_duration_since(Instant::now()))
        };
        let first = match received {
            Ok(Request::Ask(user, query)) => (user, *query),
            Ok(Request::Look) => {
                watch.look(&engine, &shared, &wake);
                next_look = Instant::now() + POLL_PERIOD;
                continue;
            }
            Err(RecvTimeoutError::Timeout) => {
                // Not if a test turned the looks off meanwhile.
                if !shared.manual.load(Ordering::SeqCst) {
                    watch.look(&engine, &shared, &wake);
                }
                next_look = Instant::now() + POLL_PERIOD;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return,
        };
        // The UI asks in bursts (a filter change asks for a count and a page):
        // take the whole burst, so that the page is answered first.
        std::thread::sleep(COALESCE);
        // Keep only the newest request of each kind; a look asked for
        // meanwhile is made after the answers.
        let mut pending = vec![first];
        let mut look = false;
        while let Ok(next) = inbox.try_recv() {
            match next {
                Request::Ask(user, query) => {
                    pending.retain(|(_, q)| q.kind() != query.kind());
                    pending.push((user, *query));
                }
                Request::Look => look = true,
            }
        }
        pending.sort_by_key(|(_, query)| query.urgency());
        for (user, query) in pending {
            let reply = answer(&engine, &user, query);
            shared.answered.fetch_add(1, Ordering::SeqCst);
            if outbox.send(reply).is_err() {
                return;
            }
            wake();
        }
        // A stream of requests (scrolling) must not hold the looks back.
        let due = !shared.manual.load(Ordering::SeqCst) && Instant::now() >= next_look;
        if look || due {
            watch.look(&engine, &shared, &wake);
            next_look = Instant::now() + POLL_PERIOD;
        }
    }
}

/// The change counter as the worker last saw it.
struct Watch {
    /// `None` until it could be read (a failing look is tried again at the
    /// next one; the views' own reads say what is wrong).
    seen: Option<u64>,
}

impl Watch {
    /// Looks at the change counter; when it moved, counts a generation and
    /// wakes the UI.
    fn look(&mut self, engine: &RuntimeEngine, shared: &Shared, wake: &impl Fn()) {
        let now = engine.data_version().ok();
        shared.looks.fetch_add(1, Ordering::SeqCst);
        if now.is_some() && now != self.seen {
            // The first answer after a failed look counts as a change too:
            // whatever happened meanwhile is read again.
            self.seen = now;
            shared.generation.fetch_add(1, Ordering::SeqCst);
            wake();
        }
    }
}

fn answer(engine: &RuntimeEngine, user: &str, query: Query) -> Reply {
    let text = |e: EngineError| e.to_string();
    match query {
        Query::Page { filter, offset, limit } => {
            let paged = InstanceFilter { offset, limit, ..filter.clone() };
            Reply::Page { rows: engine.instances(user, &paged).map_err(text), filter, offset }
        }
        Query::Count { filter } => Reply::Count { count: engine.count_instances(user, &filter).map_err(text), filter },
        Query::Detail { id } => Reply::Detail { id, detail: Box::new(engine.instance(user, id).map_err(text)) },
        Query::Items { filter } => {
            let items = engine.items(user, &filter).map(|items| item_rows(engine, user, items));
            // A full list may be the first of more: only then are they counted.
            let matching = match &items {
                Ok(rows) if filter.limit > 0 && rows.len() >= filter.limit => engine.count_items(user, &filter).ok(),
                Ok(rows) => Some(rows.len() as u64),
                Err(_) => None,
            };
            Reply::Items { items: items.map_err(text), filter, matching }
        }
        Query::Processes => Reply::Processes(engine.processes().unwrap_or_default()),
        Query::Item { serial } => {
            // The box's text, trimmed: the engine takes only a serial.
            let parsed = serial.parse().map_err(EngineError::from);
            let item = Box::new(parsed.and_then(|parsed| engine.open_server_item(user, parsed)));
            Reply::Item { serial, user: user.to_owned(), item }
        }
        Query::Overview => Reply::Overview(Box::new(engine.overview(user).map_err(text))),
        Query::Throughput { version, span } => {
            let (process, number) = match &version {
                Some((process, number)) => (Some(process.as_str()), Some(*number)),
                None => (None, None),
            };
            let throughput = engine.throughput(user, process, number, span).map_err(text);
            Reply::Throughput { version, span, throughput }
        }
        Query::Diagram { process, version } => {
            let diagram = engine
                .version_definition(&process, Some(version))
                .and_then(|(_, definition)| Ok((definition, engine.activity_counts(user, &process, version)?)))
                .map_err(text);
            Reply::Diagram { process, version, diagram }
        }
    }
}

/// The items with their instances' holds, looked up once per instance of a
/// pending item (closed items cannot be finished, so their hold says nothing).
fn item_rows(engine: &RuntimeEngine, user: &str, items: Vec<ServerItem>) -> Vec<ItemRow> {
    let mut holds: HashMap<i64, Option<InstanceStatus>> = HashMap::new();
    items
        .into_iter()
        .map(|item| {
            let held = if item.status == ItemStatus::Pending {
                *holds.entry(item.serial.instance_id).or_insert_with(|| hold_of(engine, user, &item))
            } else {
                None
            };
            ItemRow { item, held }
        })
        .collect()
}

/// Whether the instance of `item` holds finishes back (the engine's table
/// holds a finish of a pending item there). Opening the item reads its
/// instance's row by key, the cheapest read that has the status. A user who
/// may not open the item (no Server Event right) cannot finish it either,
/// and sees it as it is.
fn hold_of(engine: &RuntimeEngine, user: &str, item: &ServerItem) -> Option<InstanceStatus> {
    let status = engine.open_server_item(user, item.serial).ok()?.instance.status;
    (rule(status, CommandKind::Finish(ItemPhase::Pending)) == Rule::Held).then_some(status)
}
