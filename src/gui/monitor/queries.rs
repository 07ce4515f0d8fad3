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
//! **Counts apart.** A count reads every row its filter may match (a
//! condition on a data field, a date range: seconds at a million
//! instances), where a page stops at its 200 rows. Counts are answered on
//! a thread of their own, so that no page, instance or look at the change
//! counter waits for one; the label says "counting…" meanwhile. A count
//! begins only once no page asked for is waiting ([`PagesAhead`]), so that
//! on two busy cores the page of a new filter does not share the CPU with
//! its count (a folio search's page took twice as long when it did).
//!
//! **Given up when superseded.** Asking for the page or the count of
//! another filter cancels the read of the one asked before
//! ([`CancelToken`]): SQLite stops it within microseconds, its connection
//! goes back to the pool, and the worker reports it
//! [`Reply::Abandoned`] (never a result, never an error). Asking again for
//! the same filter (a refresh after a commit, another page of it while
//! scrolling) cancels nothing: its read goes on and the newer request is
//! answered after it.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::engine::{ActivityCount, CancelToken, Overview, Span, Throughput};
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
    /// selected instance, then the rest (counts do not come here: they have
    /// a thread of their own).
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
    /// A page or count given up: a page or count of another filter was
    /// asked for before it ended. Nothing to show; the newer one's answer
    /// follows.
    Abandoned(Box<Query>),
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

/// A query as the workers get it: who asks, and the token its read gives
/// up on.
struct Asked {
    user: String,
    query: Query,
    cancel: CancelToken,
}

/// What the UI sends the worker.
enum Request {
    /// Boxed: a query is large, a look is nothing.
    Ask(Box<Asked>),
    /// Look at the change counter now.
    Look,
}

/// The filter whose page or count was asked for last, and the token that
/// gives up every read of it still running or waiting.
type Latest = Option<(InstanceFilter, CancelToken)>;

/// What the worker and the UI share besides the channels.
#[derive(Default)]
struct Shared {
    /// Counts the times the change counter was seen to move.
    generation: AtomicU64,
    /// Looks at the change counter made so far.
    looks: AtomicU64,
    /// Queries answered so far (each one read the store).
    answered: AtomicU64,
    /// Pages and counts given up so far (see [`Reply::Abandoned`]).
    abandoned: AtomicU64,
    /// The worker only looks when asked.
    manual: AtomicBool,
    pages: PagesAhead,
}

/// Pages asked for and not answered yet (nor dropped for a newer one): a
/// count begins only when there are none, as when one worker answered the
/// page of a filter before its count. A count already running goes on.
#[derive(Default)]
struct PagesAhead {
    /// How many, and whether the worker has ended (nothing is waited for
    /// then).
    waiting: Mutex<(u64, bool)>,
    none: std::sync::Condvar,
}

impl PagesAhead {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, bool)> {
        self.waiting.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn asked(&self) {
        self.lock().0 += 1;
    }

    fn answered(&self) {
        let mut waiting = self.lock();
        waiting.0 = waiting.0.saturating_sub(1);
        if waiting.0 == 0 {
            self.none.notify_all();
        }
    }

    fn close(&self) {
        self.lock().1 = true;
        self.none.notify_all();
    }

    fn wait_for_none(&self) {
        let mut waiting = self.lock();
        while waiting.0 > 0 && !waiting.1 {
            waiting = self.none.wait(waiting).unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

/// Ends the wait of the counting thread for pages when the worker ends,
/// however it ends.
struct Closing<'a>(&'a PagesAhead);

impl Drop for Closing<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

pub struct Queries {
    requests: Sender<Request>,
    /// The counting thread's requests.
    counts: Sender<Asked>,
    replies: Receiver<Reply>,
    shared: Arc<Shared>,
    /// The latest page and the latest count asked for.
    latest: Mutex<[Latest; 2]>,
    engine: Arc<RuntimeEngine>,
}

impl Queries {
    /// Starts the worker and the counting thread on `runtime`'s database.
    /// `wake` is called after each reply, and when the data changed (the UI
    /// requests a repaint there).
    pub fn start(runtime: &Runtime, wake: impl Fn() + Send + Sync + 'static) -> Result<Queries, EngineError> {
        let wake = Arc::new(wake);
        let (requests, inbox) = channel::<Request>();
        let (counts, count_inbox) = channel::<Asked>();
        let (outbox, replies) = channel();
        let shared = Arc::new(Shared::default());
        let (engine, count_outbox, count_wake, count_shared) =
            (runtime.engine().clone(), outbox.clone(), wake.clone(), shared.clone());
        std::thread::Builder::new()
            .name("flowdesk-monitor-counts".to_owned())
            .spawn(move || counter(engine, count_inbox, count_outbox, move || count_wake(), count_shared))
            .map_err(|e| EngineError::Internal(format!("cannot start the monitor's counting thread: {e}")))?;
        let (engine, worker_shared) = (runtime.engine().clone(), shared.clone());
        std::thread::Builder::new()
            .name("flowdesk-monitor-queries".to_owned())
            .spawn(move || worker(engine, inbox, outbox, move || wake(), worker_shared))
            .map_err(|e| EngineError::Internal(format!("cannot start the monitor's query thread: {e}")))?;
        let engine = runtime.engine().clone();
        Ok(Queries { requests, counts, replies, shared, latest: Mutex::new([None, None]), engine })
    }

    /// The engine the worker reads, for the window's few small reads of
    /// its own (a process's definition, cached once compiled).
    pub fn engine(&self) -> &RuntimeEngine {
        &self.engine
    }

    /// Asks as `user`; the answer arrives through [`Queries::poll`]. A page
    /// or count of another filter than the last one asked for gives up the
    /// reads of that one.
    pub fn ask(&self, user: &str, query: Query) {
        let cancel = self.token_for(&query);
        let asked = Asked { user: user.to_owned(), query, cancel };
        // A closed worker only means no answers: the UI keeps what it has.
        if matches!(asked.query, Query::Count { .. }) {
            let _ = self.counts.send(asked);
        } else {
            if matches!(asked.query, Query::Page { .. }) {
                self.shared.pages.asked();
            }
            let _ = self.requests.send(Request::Ask(Box::new(asked)));
        }
    }

    fn token_for(&self, query: &Query) -> CancelToken {
        token_for(&mut self.latest.lock().unwrap_or_else(std::sync::PoisonError::into_inner), query)
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

    /// Queries the worker and the counting thread have answered so far:
    /// each one read the store (a read given up on the way too).
    pub fn answered(&self) -> u64 {
        self.shared.answered.load(Ordering::SeqCst)
    }

    /// Pages and counts given up so far, because a newer one of another
    /// filter was asked for: none was shown.
    pub fn abandoned(&self) -> u64 {
        self.shared.abandoned.load(Ordering::SeqCst)
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

/// The token a read of `query` gives up on: for a page or count of the
/// filter asked for last, that one's (the read going on is what the newer
/// request wants too); for another filter a new one, and the last one's is
/// cancelled. Other queries are never given up.
fn token_for(latest: &mut [Latest; 2], query: &Query) -> CancelToken {
    let (slot, filter) = match query {
        Query::Page { filter, .. } => (0, filter),
        Query::Count { filter } => (1, filter),
        _ => return CancelToken::new(),
    };
    match &latest[slot] {
        Some((asked, cancel)) if asked == filter => cancel.clone(),
        _ => {
            if let Some((_, cancel)) = &latest[slot] {
                cancel.cancel();
            }
            let cancel = CancelToken::new();
            latest[slot] = Some((filter.clone(), cancel.clone()));
            cancel
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
    let _closing = Closing(&shared.pages);
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
            Ok(Request::Ask(asked)) => *asked,
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
                Request::Ask(asked) => {
                    if let Some(older) = pending.iter().position(|older| older.query.kind() == asked.query.kind())
                        && matches!(pending.remove(older).query, Query::Page { .. })
                    {
                        // Dropped for the newer page: no longer waited for.
                        shared.pages.answered();
                    }
                    pending.push(*asked);
                }
                Request::Look => look = true,
            }
        }
        pending.sort_by_key(|asked| asked.query.urgency());
        for asked in pending {
            let page = matches!(asked.query, Query::Page { .. });
            let sent = reply_to(&engine, asked, &outbox, &shared);
            if page {
                shared.pages.answered();
            }
            if !sent {
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

/// The counting thread: the newest count asked for, one at a time.
fn counter(
    engine: Arc<RuntimeEngine>,
    inbox: Receiver<Asked>,
    outbox: Sender<Reply>,
    wake: impl Fn(),
    shared: Arc<Shared>,
) {
    while let Ok(mut asked) = inbox.recv() {
        // Counts asked for meanwhile replace each other: only the newest
        // filter's number is shown.
        while let Ok(newer) = inbox.try_recv() {
            asked = newer;
        }
        shared.pages.wait_for_none();
        // Counts asked for while the pages were read: the newest again.
        while let Ok(newer) = inbox.try_recv() {
            asked = newer;
        }
        if !reply_to(&engine, asked, &outbox, &shared) {
            return;
        }
        wake();
    }
}

/// Answers `asked`, or reports it abandoned when it was given up before or
/// while it was read; false when the UI is gone.
fn reply_to(engine: &RuntimeEngine, asked: Asked, outbox: &Sender<Reply>, shared: &Shared) -> bool {
    let Asked { user, query, cancel } = asked;
    let reply = if cancel.is_cancelled() {
        None
    } else {
        let reply = answer(engine, &user, query.clone(), &cancel);
        shared.answered.fetch_add(1, Ordering::SeqCst);
        // A read that ended before its cancel arrived is as stale as one
        // cut short: neither is shown.
        reply.filter(|_| !cancel.is_cancelled())
    };
    let reply = reply.unwrap_or_else(|| {
        shared.abandoned.fetch_add(1, Ordering::SeqCst);
        Reply::Abandoned(Box::new(query))
    });
    outbox.send(reply).is_ok()
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

/// The answer to `query`; `None` when its read was given up (`cancel`).
fn answer(engine: &RuntimeEngine, user: &str, query: Query, cancel: &CancelToken) -> Option<Reply> {
    let text = |e: EngineError| e.to_string();
    Some(match query {
        Query::Page { filter, offset, limit } => {
            let paged = InstanceFilter { offset, limit, ..filter.clone() };
            let rows = match engine.instances_cancellable(user, &paged, cancel) {
                Err(EngineError::Cancelled) => return None,
                rows => rows.map_err(text),
            };
            Reply::Page { rows, filter, offset }
        }
        Query::Count { filter } => {
            let count = match engine.count_instances_cancellable(user, &filter, cancel) {
                Err(EngineError::Cancelled) => return None,
                count => count.map_err(text),
            };
            Reply::Count { count, filter }
        }
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
    })
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

#[cfg(test)]
mod tests {
    use super::*;

    fn searching(text: &str) -> InstanceFilter {
        InstanceFilter { search: Some(text.to_owned()), ..InstanceFilter::default() }
    }

    /// Another page of the same filter (scrolling) and the same count again
    /// (a refresh) give up nothing; a page or count of another filter gives
    /// up those of the last one, and only of its own kind.
    #[test]
    fn only_a_page_or_count_of_another_filter_gives_up_the_last_one() {
        let mut latest = [None, None];
        let page = |text: &str, offset| Query::Page { filter: searching(text), offset, limit: 200 };
        let count = |text: &str| Query::Count { filter: searching(text) };
        let first_page = token_for(&mut latest, &page("po", 0));
        let first_count = token_for(&mut latest, &count("po"));
        let scrolled = token_for(&mut latest, &page("po", 400));
        let again = token_for(&mut latest, &count("po"));
        token_for(&mut latest, &Query::Detail { id: 7 }).cancel();
        assert!(![&first_page, &first_count, &scrolled, &again].iter().any(|t| t.is_cancelled()));

        let next_count = token_for(&mut latest, &count("inv"));
        assert!(first_count.is_cancelled() && again.is_cancelled(), "the count of po is given up");
        assert!(!first_page.is_cancelled() && !scrolled.is_cancelled(), "its rows are not, yet");
        let next_page = token_for(&mut latest, &page("inv", 0));
        assert!(first_page.is_cancelled() && scrolled.is_cancelled());
        assert!(!next_count.is_cancelled() && !next_page.is_cancelled());
    }
}
