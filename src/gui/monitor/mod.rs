//! The monitor: instances, a live flow view, server items, and finishing items
//! by serial by hand.
//!
//! Reads go through [`queries::Queries`] on a worker thread, so a database of
//! a million instances never stalls a frame; the table asks for the page it
//! shows. Operator actions (finish, retry, stop, resume, go to, edit data) are
//! commands made as the connected user, each confirmed first, and written by
//! [`actions::Actions`] on a worker of its own: the panel collects them while
//! it draws, sends them after, and shows them as pending (a spinner, their
//! buttons disabled) until the answer comes. Answers carry what they are about
//! and who acted (`Answer`), so that an answer is shown only while it applies:
//! one that arrives after the operator selected another instance, typed
//! another serial or connected as someone else is not shown at all, but what
//! it changed is read again.

pub mod actions;
pub mod bulk;
pub mod due;
pub mod find;
pub mod flow;
pub mod heat;
pub mod overview;
pub mod queries;
pub mod trail;

use crate::engine::bulk::thousands;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText, TextEdit, Ui};
use egui_extras::{Column, TableBuilder};

use crate::engine::{
    AuditAction, Clock, CommandKind, EngineError, Finished, InstanceColumn, InstanceDetail, InstanceFilter,
    InstanceOrder, InstanceStatus, InstanceSummary, ItemFilter, ItemStatus, OpenedItem, Progress, Rule, format_age,
    format_time, rule,
};
use crate::gui::designer::View;
use crate::gui::theme;
use crate::model::FieldType;
pub use actions::Operation;
use actions::{Actions, Command, Done, Reply as Answered, Ticket};
use queries::{ItemRow, Queries, Query, Reply};

/// How many rows one page request fetches around what is on screen.
const PAGE: usize = 200;
/// How often the views are read again while an Overdue filter is on, even
/// if nothing was committed: what is overdue changes with the time alone
/// (a deadline of a stopped instance falls due and nothing fires it).
const OVERDUE_REFRESH: Duration = Duration::from_secs(10);
/// How often a view whose words change with the time alone is drawn again
/// while nothing else happens: the items' ages count seconds; the due
/// times of the instance list count minutes, hours and days, and seconds
/// only in their last minute, when their timer is about to fire anyway.
/// Changes of the data wake the window at once (the query worker's looks).
const AGES_REPAINT: Duration = Duration::from_secs(1);
const DUE_REPAINT: Duration = Duration::from_secs(5);

/// How an operator action ended, which is how its answer is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did what was asked.
    Done,
    /// It was refused, or the step it ran failed.
    Failed,
}

impl Outcome {
    fn color(self) -> Color32 {
        match self {
            Outcome::Done => theme::SUCCESS,
            Outcome::Failed => theme::ERROR,
        }
    }
}

/// The answer to an operator action, kept with what it is about (an instance
/// id, a serial) and the user who acted. It is shown only while the operator
/// looks at the same thing as the same user: an answer never outlives what it
/// was about, even one that arrives late.
#[derive(Debug, Clone, PartialEq)]
struct Answer<About> {
    about: About,
    user: String,
    text: String,
    outcome: Outcome,
}

impl<About: PartialEq> Answer<About> {
    fn new(about: About, user: &str, (text, outcome): (String, Outcome)) -> Answer<About> {
        Answer { about, user: user.to_owned(), text, outcome }
    }

    fn concerns(&self, about: &About, user: &str) -> bool {
        self.about == *about && self.user == user
    }
}

/// What the monitor asks of the app.
#[derive(Debug, Clone, PartialEq)]
pub enum MonitorRequest {
    StartInstance {
        process: String,
    },
    /// Show the instance list (the overview filtered it, or selected one).
    ShowInstances,
    /// Export CSV…: every instance of this filter, to a file the app asks for.
    ExportCsv {
        filter: InstanceFilter,
    },
}

/// What the wide panel under the instance list shows of the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DetailTab {
    Flow,
    /// The audit trail's table: wide, so it goes where the flow goes.
    Trail,
}

/// The monitor's words for an operator action: the question that confirms
/// it, what is shown while it is pending, and its answer.
impl Operation {
    /// Whether the operation runs the instance on, so that ending in error
    /// means its step failed (saving data or stopping runs nothing).
    fn runs_instance(&self) -> bool {
        matches!(self, Operation::Retry(_) | Operation::Resume(_) | Operation::GoTo(..))
    }

    /// The answer to the operation, in words.
    fn answer(&self, result: Result<Progress, EngineError>) -> (String, Outcome) {
        match result {
            Ok(progress) if progress.status == InstanceStatus::Error && self.runs_instance() => {
                (format!("Failed: instance {} is {}.", progress.instance_id, progress.words()), Outcome::Failed)
            }
            // Saved data leaves an instance in error where it was, waiting for a retry.
            Ok(progress) if progress.status == InstanceStatus::Error => (
                format!("Done. Instance {} is still {}; retry it to run on.", progress.instance_id, progress.words()),
                Outcome::Done,
            ),
            Ok(progress) => {
                (format!("Done. Instance {} is now {}.", progress.instance_id, progress.words()), Outcome::Done)
            }
            Err(err) => (refusal_words(&err), Outcome::Failed),
        }
    }

    /// Said, with a spinner, while the action waits for its answer.
    fn pending_words(&self) -> String {
        match self {
            Operation::Retry(id) => format!("Retrying instance {id}…"),
            Operation::Stop(id) => format!("Stopping instance {id}…"),
            Operation::Resume(id) => format!("Resuming instance {id}…"),
            Operation::GoTo(id, activity) => format!("Moving instance {id} to `{activity}`…"),
            Operation::SetData(id, _) => format!("Saving the data of instance {id}…"),
        }
    }

    fn question(&self) -> String {
        match self {
            Operation::Retry(id) => format!("Retry the failed step of instance {id}?"),
            Operation::Stop(id) => format!("Stop instance {id}? It stays stopped until someone resumes it."),
            Operation::Resume(id) => format!("Resume instance {id}?"),
            Operation::GoTo(id, activity) => format!(
                "Move instance {id} to `{activity}`? Its open activities and pending server items are cancelled."
            ),
            Operation::SetData(id, changes) => format!("Change {} data field(s) of instance {id}?", changes.len()),
        }
    }
}

/// One data field of the opened item: what the operator typed, and the
/// value stored when the item was read (only changed fields are sent).
#[derive(Debug, Clone, PartialEq)]
struct FieldEntry {
    name: String,
    field_type: FieldType,
    text: String,
    stored: String,
}

impl FieldEntry {
    fn edited(&self) -> bool {
        self.text != self.stored
    }
}

/// The finish-by-serial box and the item it shows.
///
/// What is shown below the box (details, inputs, Finish) is always the item of
/// the serial in the box, as the connected user may see it: editing the box
/// closes it until Open is pressed again, and it is read again when another
/// user connects or after a refused finish, so Finish can only act on what is
/// shown.
#[derive(Default)]
struct FinishBox {
    serial: String,
    /// The serial Open was pressed for and the user it is read as, while
    /// the box still holds that serial.
    opened_for: Option<(String, String)>,
    /// The item of `opened_for` was asked for and has not come yet.
    reading: bool,
    opened: Option<OpenedItem>,
    inputs: Vec<FieldEntry>,
    /// About the serial in the box when it was given.
    answer: Option<Answer<String>>,
}

impl FinishBox {
    /// The serial in the box, as it is opened and answered about.
    fn typed(&self) -> String {
        self.serial.trim().to_owned()
    }

    /// The box was edited: what was opened or answered for another serial goes.
    fn serial_edited(&mut self) {
        let typed = self.typed();
        if self.opened_for.as_ref().is_some_and(|(serial, _)| *serial != typed) {
            self.close();
        }
        if self.answer.as_ref().is_some_and(|answer| answer.about != typed) {
            self.answer = None;
        }
    }

    /// The answer about the serial in the box, given to `user`: the one shown.
    fn shown_answer(&self, user: &str) -> Option<&Answer<String>> {
        let typed = self.typed();
        self.answer.as_ref().filter(|answer| answer.concerns(&typed, user))
    }

    fn close(&mut self) {
        self.opened_for = None;
        self.reading = false;
        self.opened = None;
        self.inputs.clear();
    }

    /// Takes in the item read for `serial` as `user`, keeping what the
    /// operator typed into its fields; an answer to an older Open, or one
    /// read as another user, is not this box's any more.
    fn take_item(&mut self, serial: String, user: String, item: Result<OpenedItem, EngineError>) {
        if self.opened_for.as_ref() != Some(&(serial.clone(), user.clone())) || !self.reading {
            return;
        }
        self.reading = false;
        match item {
            Ok(opened) => {
                let typed = std::mem::take(&mut self.inputs);
                self.inputs = opened
                    .fields
                    .iter()
                    .map(|(name, field_type, value)| {
                        let stored = value.to_string();
                        let text = typed
                            .iter()
                            .find(|entry| entry.name == *name && entry.field_type == *field_type && entry.edited())
                            .map_or_else(|| stored.clone(), |entry| entry.text.clone());
                        FieldEntry { name: name.clone(), field_type: *field_type, text, stored }
                    })
                    .collect();
                self.opened = Some(opened);
            }
            Err(err) => {
                // The inputs stay: the item may be read again as a user who may see it.
                self.opened = None;
                // A refused finish has said why already: that answer stays.
                if !self.answer.as_ref().is_some_and(|answer| answer.concerns(&serial, &user)) {
                    let words = (refusal_words(&err), Outcome::Failed);
                    self.answer = Some(Answer::new(serial, &user, words));
                }
            }
        }
    }
}

/// What a pending write is about: where its spinner is drawn and which
/// buttons wait for it.
#[derive(Debug, Clone, PartialEq)]
enum Subject {
    Instance(i64),
    /// The serial in the finish box when Finish was pressed.
    Serial(String),
    /// An incident's Retry all or Stop all.
    Incident(crate::engine::ReasonKey),
    /// A bulk action (one at a time): its progress bar.
    Bulk,
}

/// A command collected while drawing, to be sent once the frame is drawn.
#[derive(Debug)]
struct Intent {
    subject: Subject,
    /// Said, with a spinner, until the answer comes.
    words: String,
    command: Command,
}

/// A command sent to the write worker and not answered yet.
#[derive(Debug)]
struct Acting {
    ticket: Ticket,
    subject: Subject,
    words: String,
}

pub struct Monitor {
    queries: Result<Queries, String>,
    /// The window's runtime's clock: ages and due times are told by it.
    clock: Arc<dyn Clock>,
    user_seen: String,
    pub filter: InstanceFilter,
    /// The filter bar's second row: version, dates, field, saved filters, export.
    pub find: find::FindBar,
    processes: Vec<String>,
    count: Option<u64>,
    /// Why the count of `count_for` failed (the rows say it too).
    count_error: Option<String>,
    count_for: Option<InstanceFilter>,
    rows: Vec<InstanceSummary>,
    rows_offset: usize,
    /// Sub-process children drawn right under their parent (when both are
    /// on the page), indented, instead of in the list's order.
    nest_children: bool,
    rows_for: Option<InstanceFilter>,
    asked_page: Option<(InstanceFilter, usize)>,
    pub selected: Option<i64>,
    detail: Option<InstanceDetail>,
    detail_error: Option<String>,
    tab: DetailTab,
    /// The audit trail tab's table and its filter.
    trail: trail::TrailTable,
    flow_view: View,
    flow_fit: bool,
    /// An instance the operator clicked a parent or child link of, opened
    /// after the frame.
    open_link: Option<i64>,
    data_inputs: Vec<(String, FieldType, String)>,
    data_for: Option<(i64, i64)>,
    goto_target: String,
    pub items_filter: ItemFilter,
    items: Vec<ItemRow>,
    items_error: Option<String>,
    /// How many items the items filter matches (the list holds at most
    /// its limit of them).
    items_matching: Option<u64>,
    finish: FinishBox,
    confirm: Option<Operation>,
    /// The lists' selections and the bulk action running or reported.
    pub bulk: bulk::Bulk,
    /// Commands collected while drawing, sent once the frame is drawn.
    commands: Vec<Intent>,
    /// Commands sent and not answered yet.
    acting: Vec<Acting>,
    /// The answer to the last operator action, about an instance.
    message: Option<Answer<i64>>,
    /// Why the instance list could not be read.
    rows_error: Option<String>,
    /// The query worker's generation the views were last read at
    /// ([`Queries::generation`]); `None` before the first read.
    generation_seen: Option<u64>,
    /// When the views were last read again (for the Overdue filters).
    last_refresh: Option<Instant>,
    /// When the first page of rows arrived, measured from `opened_at`.
    pub first_rows_after: Option<Duration>,
    opened_at: Instant,
    /// The table rows drawn in the last frame, first and last index.
    visible: Option<(usize, usize)>,
    /// The width the instance list's columns were last fitted to: its
    /// columns can be resized, and keep their widths until the table's
    /// width changes (the window or the side panel resized, the first
    /// frames laid out).
    fitted_to: Option<f32>,
    /// The overview tab.
    pub overview: overview::OverviewPanel,
}

impl Monitor {
    pub fn new(queries: Result<Queries, EngineError>, clock: Arc<dyn Clock>) -> Monitor {
        Monitor {
            queries: queries.map_err(|e| e.to_string()),
            clock,
            user_seen: String::new(),
            filter: InstanceFilter::default(),
            find: find::FindBar::default(),
            processes: Vec::new(),
            count: None,
            count_error: None,
            count_for: None,
            rows: Vec::new(),
            rows_offset: 0,
            nest_children: true,
            rows_for: None,
            asked_page: None,
            selected: None,
            detail: None,
            detail_error: None,
            tab: DetailTab::Flow,
            trail: trail::TrailTable::default(),
            flow_view: View::default(),
            flow_fit: true,
            open_link: None,
            data_inputs: Vec::new(),
            data_for: None,
            goto_target: String::new(),
            items_filter: ItemFilter { limit: 1000, ..ItemFilter::default() },
            items: Vec::new(),
            items_error: None,
            items_matching: None,
            finish: FinishBox::default(),
            confirm: None,
            bulk: bulk::Bulk::default(),
            commands: Vec::new(),
            acting: Vec::new(),
            message: None,
            rows_error: None,
            generation_seen: None,
            last_refresh: None,
            first_rows_after: None,
            opened_at: Instant::now(),
            visible: None,
            fitted_to: None,
            overview: overview::OverviewPanel::default(),
        }
    }

    /// The rows shown now (for tests and the benchmark).
    pub fn rows(&self) -> &[InstanceSummary] {
        &self.rows
    }

    pub fn count(&self) -> Option<u64> {
        self.count
    }

    /// The table index of the first row in [`Monitor::rows`].
    pub fn rows_offset(&self) -> usize {
        self.rows_offset
    }

    /// Whether the rows held are those of the current filter and order.
    pub fn rows_current(&self) -> bool {
        self.rows_for.as_ref() == Some(&self.filter)
    }

    /// Whether the count shown is that of the current filter.
    pub fn count_current(&self) -> bool {
        self.count_for.as_ref() == Some(&self.filter) && self.count.is_some()
    }

    /// The table rows drawn in the last frame (first and last index), if any.
    pub fn visible_rows(&self) -> Option<(usize, usize)> {
        self.visible
    }

    /// Whether every row drawn in the last frame was loaded (none drawn as "…").
    pub fn visible_rows_loaded(&self) -> bool {
        let loaded = self.rows_offset..self.rows_offset + self.rows.len();
        self.visible.is_none_or(|(low, high)| self.rows_current() && loaded.contains(&low) && loaded.contains(&high))
    }

    /// Changes the filter (and order) as the filter bar does: back to the top,
    /// asking for the new count and first page.
    pub fn set_filter(&mut self, filter: InstanceFilter, user: &str) {
        self.filter = filter;
        self.filter_changed(user);
    }

    /// How many server items the items view's filter matches, when counted.
    pub fn items_count(&self) -> Option<u64> {
        self.items_matching
    }

    pub fn items(&self) -> &[ItemRow] {
        &self.items
    }

    pub fn detail(&self) -> Option<&InstanceDetail> {
        self.detail.as_ref()
    }

    /// The answer shown beside the selected instance, and how it is coloured.
    pub fn message(&self) -> Option<(&str, Outcome)> {
        self.shown_message().map(|answer| (answer.text.as_str(), answer.outcome))
    }

    /// Whether the monitor waits for an item it asked for, or for the answer
    /// to a write it sent.
    pub fn waiting(&self) -> bool {
        self.finish.reading || !self.acting.is_empty() || !self.commands.is_empty()
    }

    /// What is said, with a spinner, while a write about `subject` is pending.
    fn pending_words(&self, subject: &Subject) -> Option<&str> {
        self.acting.iter().find(|acting| acting.subject == *subject).map(|acting| acting.words.as_str())
    }

    /// Sends the commands collected while drawing; each is shown as pending
    /// until its answer comes. An answer given before about the same thing
    /// goes: it would contradict the spinner.
    fn send_commands(&mut self, actions: Option<&mut Actions>, user: &str) {
        let commands = std::mem::take(&mut self.commands);
        let Some(actions) = actions else { return };
        for Intent { subject, words, command } in commands {
            match &subject {
                Subject::Instance(id) if self.message.as_ref().is_some_and(|m| m.about == *id) => self.message = None,
                Subject::Serial(serial) if self.finish.answer.as_ref().is_some_and(|a| a.about == *serial) => {
                    self.finish.answer = None;
                }
                _ => {}
            }
            let ticket = actions.send(user, command);
            self.acting.push(Acting { ticket, subject, words });
        }
    }

    /// Takes in the answer to a write the monitor sent; any other answer is
    /// handed back. An answer is shown only if the operator still looks at
    /// what it is about as the user who acted (`user` is who is connected
    /// now); either way what it changed is read again.
    pub fn answered(&mut self, done: Done, user: &str) -> Option<Done> {
        let Some(index) = self.acting.iter().position(|acting| acting.ticket == done.ticket) else { return Some(done) };
        let acting = self.acting.remove(index);
        match (acting.subject, done.command, done.reply) {
            (Subject::Instance(id), Command::Operate(operation), Answered::Operated(result))
                if self.selected == Some(id) =>
            {
                if done.user == user {
                    self.message = Some(Answer::new(id, &done.user, operation.answer(result)));
                }
                // Read again what the action changed, or what changed under a
                // refused one.
                self.data_for = None;
            }
            (Subject::Serial(about), Command::Finish { serial, .. }, Answered::Finished(result)) => {
                let succeeded = result.is_ok();
                if self.finish.typed() == about && done.user == user {
                    self.finish.answer =
                        Some(Answer::new(about, &done.user, finish_answer(&serial.to_string(), result)));
                    if succeeded {
                        self.finish.close();
                    } else {
                        // Show the item as it is now: finished by someone
                        // else, its instance stopped...
                        self.read_item(user);
                    }
                }
            }
            (Subject::Incident(_), Command::OnIncident { operation, .. }, Answered::OnIncident(result)) => {
                let (words, succeeded) = incident_answer(operation, result);
                self.overview.answered(words, succeeded);
            }
            (Subject::Bulk, Command::Bulk { action, .. }, Answered::Bulk(result)) => {
                self.bulk_answered(&action, result);
            }
            // A command and its answer always match; nothing else is sent.
            _ => {}
        }
        self.refresh(user);
        None
    }

    fn shown_message(&self) -> Option<&Answer<i64>> {
        let selected = self.selected?;
        self.message.as_ref().filter(|answer| answer.concerns(&selected, &self.user_seen))
    }

    fn ask(&self, user: &str, query: Query) {
        if let Ok(queries) = &self.queries {
            queries.ask(user, query);
        }
    }

    /// The query worker, for tests that drive its looks for changes and
    /// count its reads.
    pub fn queries(&self) -> Option<&Queries> {
        self.queries.as_ref().ok()
    }

    /// The generation of the data the views were last read at: views beside
    /// the monitor's own (an overview) read again when
    /// [`Queries::generation`] has moved past the one they read at.
    pub fn data_generation(&self) -> Option<u64> {
        self.generation_seen
    }

    /// Takes in the worker's answers and asks again for what is shown when
    /// the data changed (the worker saw a commit), the user changed, or, with
    /// an Overdue filter on, time passed. `repaint` is how soon the view's
    /// words go stale with the time alone; nothing else draws a frame while
    /// nothing changes.
    pub fn sync(&mut self, ctx: &egui::Context, user: &str, repaint: Duration) {
        let (replies, generation) = match &self.queries {
            Ok(queries) => (queries.poll(), Some(queries.generation())),
            Err(_) => (Vec::new(), None),
        };
        for reply in replies {
            self.take(reply);
        }
        let user_changed = self.user_seen != user;
        if user_changed {
            // Answers go with the user who was answered, and do not come
            // back when that user connects again.
            self.message = None;
            self.finish.answer = None;
        }
        let changed = self.generation_seen.is_none() || generation != self.generation_seen;
        let overdue_due = (self.filter.overdue || self.items_filter.overdue)
            && self.last_refresh.is_none_or(|at| at.elapsed() >= OVERDUE_REFRESH);
        if user_changed || changed || overdue_due {
            self.user_seen = user.to_owned();
            self.generation_seen = generation;
            self.refresh(user);
        }
        if self.filter.overdue || self.items_filter.overdue {
            ctx.request_repaint_after(repaint.min(OVERDUE_REFRESH));
        } else {
            ctx.request_repaint_after(repaint);
        }
    }

    /// Asks for everything shown, afresh.
    pub fn refresh(&mut self, user: &str) {
        self.last_refresh = Some(Instant::now());
        self.ask(user, Query::Processes);
        // The page first: its count begins once it is answered.
        self.ask(user, Query::Page { filter: self.filter.clone(), offset: self.rows_offset, limit: PAGE });
        self.ask(user, Query::Count { filter: self.filter.clone() });
        self.asked_page = Some((self.filter.clone(), self.rows_offset));
        if let Some(id) = self.selected {
            self.ask(user, Query::Detail { id });
        }
        self.ask(user, Query::Items { filter: self.items_filter.clone() });
        for query in self.overview.queries() {
            self.ask(user, query);
        }
    }

    fn take(&mut self, reply: Reply) {
        let Some(reply) = self.overview.take(reply) else { return };
        match reply {
            Reply::Page { filter, offset, rows } => {
                if filter != self.filter {
                    return;
                }
                match rows {
                    Ok(rows) => {
                        if self.first_rows_after.is_none() {
                            self.first_rows_after = Some(self.opened_at.elapsed());
                        }
                        self.rows = if self.nest_children { nest_under_parents(rows) } else { rows };
                        self.rows_offset = offset;
                        self.rows_for = Some(filter);
                        self.rows_error = None;
                    }
                    Err(error) => self.rows_error = Some(error),
                }
            }
            Reply::Count { filter, count } => {
                if filter == self.filter {
                    (self.count, self.count_error) = match count {
                        Ok(n) => (Some(n), None),
                        Err(error) => (None, Some(error)),
                    };
                    self.count_for = Some(filter);
                }
            }
            Reply::Detail { id, detail } => {
                if Some(id) != self.selected {
                    return;
                }
                match *detail {
                    Ok(detail) => {
                        let key = (detail.summary.id, detail.summary.updated_at);
                        // A change stored within the same millisecond keeps the
                        // timestamp: compare the values too, or the inputs go stale.
                        let same_values = self.detail.as_ref().is_some_and(|shown| {
                            shown.summary.id == detail.summary.id && shown.fields == detail.fields
                        });
                        if self.data_for != Some(key) || !same_values {
                            self.data_inputs =
                                detail.fields.iter().map(|(n, t, v)| (n.clone(), *t, v.to_string())).collect();
                            self.data_for = Some(key);
                        }
                        self.detail = Some(detail);
                        self.detail_error = None;
                    }
                    Err(error) => {
                        self.detail = None;
                        self.detail_error = Some(error);
                    }
                }
            }
            Reply::Items { filter, items, matching } => {
                if filter == self.items_filter {
                    match items {
                        Ok(items) => {
                            self.items = items;
                            self.items_matching = matching;
                            self.items_error = None;
                        }
                        Err(error) => self.items_error = Some(error),
                    }
                }
            }
            Reply::Processes(processes) => self.processes = processes.into_iter().map(|p| p.name).collect(),
            Reply::Item { serial, user, item } => self.finish.take_item(serial, user, *item),
            // Taken by the overview above.
            Reply::Overview(_) | Reply::Throughput { .. } | Reply::Diagram { .. } => {}
            // Given up for a newer filter, whose answer follows: the count
            // keeps saying "counting…", the rows shown stay.
            Reply::Abandoned(_) => {}
        }
    }

    fn filter_changed(&mut self, user: &str) {
        // What was selected may not match any more: nothing stays selected
        // that the list does not show.
        self.bulk.instances.clear();
        self.rows_offset = 0;
        self.count = None;
        // A small read (the process's definition, cached once compiled).
        self.find.notes = self.queries.as_ref().map(|q| q.engine().slow_field_notes(&self.filter)).unwrap_or_default();
        self.ask(user, Query::Page { filter: self.filter.clone(), offset: 0, limit: PAGE });
        self.ask(user, Query::Count { filter: self.filter.clone() });
        self.asked_page = Some((self.filter.clone(), 0));
    }

    /// Shows an instance opened elsewhere than by a click on its row (a
    /// link, the flow, the overview): it alone is highlighted in the list.
    fn open(&mut self, id: i64, user: &str) {
        self.bulk.instances.only(id);
        self.select(id, user);
    }

    fn select(&mut self, id: i64, user: &str) {
        if self.selected != Some(id) {
            self.selected = Some(id);
            self.message = None;
            self.detail = None;
            self.detail_error = None;
            self.flow_fit = true;
            self.data_for = None;
        }
        self.ask(user, Query::Detail { id });
    }

    // ----- overview ---------------------------------------------------------------

    /// The overview tab (`overview.rs`). A count or an activity clicked
    /// filters the instance list and asks to show it; an incident's Retry
    /// all or Stop all goes to `actions` once the frame is drawn.
    pub fn overview_ui(&mut self, ui: &mut Ui, actions: Option<&mut Actions>, user: &str) -> Vec<MonitorRequest> {
        self.sync(ui.ctx(), user, AGES_REPAINT);
        if let Err(error) = &self.queries {
            ui.colored_label(theme::ERROR, format!("The monitor cannot start: {error}"));
            return Vec::new();
        }
        let mut requests = Vec::new();
        for action in self.overview.ui(ui, self.clock.now(), user) {
            match action {
                overview::OverviewAction::List(filter) => {
                    self.find.show(&filter);
                    self.set_filter(filter, user);
                    requests.push(MonitorRequest::ShowInstances);
                }
                overview::OverviewAction::Open(id) => {
                    self.open(id, user);
                    requests.push(MonitorRequest::ShowInstances);
                }
                overview::OverviewAction::OnIncident { key, operation, progress } => {
                    let words = format!("{operation:?} all at {}…", key.activity);
                    let command = Command::OnIncident { key: key.clone(), operation, progress };
                    self.commands.push(Intent { subject: Subject::Incident(key), words, command });
                }
            }
        }
        // Asked with every refresh, and at once when what is shown changed.
        if self.overview.take_refresh() {
            self.refresh(user);
        } else if self.overview.take_ask_now() {
            for query in self.overview.queries() {
                self.ask(user, query);
            }
        }
        self.send_commands(actions, user);
        requests
    }

    // ----- instances --------------------------------------------------------------

    /// The instance list and the selected instance. Writes go to `actions`
    /// once the frame is drawn.
    pub fn instances_ui(&mut self, ui: &mut Ui, actions: Option<&mut Actions>, user: &str) -> Vec<MonitorRequest> {
        self.sync(ui.ctx(), user, DUE_REPAINT);
        let mut requests = Vec::new();
        if let Err(error) = &self.queries {
            // The error names the database file and what is wrong with it.
            ui.colored_label(theme::ERROR, format!("The monitor cannot start: {error}"));
            return requests;
        }
        let width = side_panel_width(ui, 430.0);
        egui::Panel::right("instance-detail").resizable(true).default_size(width).min_size(340.0).show(ui, |ui| {
            self.detail_ui(ui, user, &mut requests);
        });
        let mut open = None;
        egui::CentralPanel::default().show(ui, |ui| {
            // The flow gets the width of the window, under the list.
            if let Some(detail) = &self.detail {
                egui::Panel::bottom("instance-flow").resizable(true).default_size(360.0).min_size(160.0).show(
                    ui,
                    |ui| {
                        ui.horizontal(|ui| {
                            let flow = format!("Flow of instance {}", detail.summary.id);
                            let flow =
                                ui.selectable_value(&mut self.tab, DetailTab::Flow, RichText::new(flow).strong());
                            let trail = ui.selectable_value(
                                &mut self.tab,
                                DetailTab::Trail,
                                RichText::new("Audit trail").strong(),
                            );
                            // The tab drawn first was drawn as it was before
                            // the click: draw them again, as they are now.
                            if flow.changed() || trail.changed() {
                                ui.ctx().request_repaint();
                            }
                            if self.tab == DetailTab::Flow && ui.small_button("Fit").clicked() {
                                self.flow_fit = true;
                            }
                        });
                        match self.tab {
                            DetailTab::Flow => {
                                let now = self.clock.now();
                                open = flow::flow_ui(ui, detail, now, &mut self.flow_view, &mut self.flow_fit);
                            }
                            DetailTab::Trail => self.trail.ui(ui, &detail.audit),
                        }
                    },
                );
            }
            // Under the list (over the flow), so that rows keep their place.
            egui::Panel::bottom("instance-bulk").show(ui, |ui| self.instances_bulk_bar(ui));
            self.filter_bar(ui, user);
            if self.find.ui(ui, &mut self.filter, user) {
                self.filter_changed(user);
            }
            if self.find.take_export() {
                requests.push(MonitorRequest::ExportCsv { filter: self.filter.clone() });
            }
            if let Some(error) = &self.rows_error {
                ui.colored_label(theme::ERROR, error);
            }
            ui.separator();
            self.instance_table(ui, user);
        });
        if let Some(id) = open.or(self.open_link.take()) {
            self.open(id, user);
        }
        self.confirm_ui(ui.ctx(), user);
        self.bulk_windows(ui.ctx(), user);
        self.send_commands(actions, user);
        requests
    }

    fn filter_bar(&mut self, ui: &mut Ui, user: &str) {
        let mut changed = false;
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("Process");
            let shown = self.filter.process.clone().unwrap_or_else(|| "all".to_owned());
            let combo = egui::ComboBox::from_id_salt("monitor-process").selected_text(shown).show_ui(ui, |ui| {
                if ui.selectable_label(self.filter.process.is_none(), "all").clicked() {
                    self.filter.process = None;
                    changed = true;
                }
                for process in self.processes.clone() {
                    if ui.selectable_label(self.filter.process.as_deref() == Some(&process), &process).clicked() {
                        // An activity is one of a process's own.
                        if self.filter.process.as_deref() != Some(&process) {
                            self.filter.activity = None;
                        }
                        self.filter.process = Some(process);
                        changed = true;
                    }
                }
            });
            // The combo shows only its value: name it after its label.
            combo.response.labelled_by(label.id);
            let label = ui.label("Status");
            let shown = self.filter.status.map(|s| s.name()).unwrap_or("all");
            let combo = egui::ComboBox::from_id_salt("monitor-status").selected_text(shown).show_ui(ui, |ui| {
                if ui.selectable_label(self.filter.status.is_none(), "all").clicked() {
                    self.filter.status = None;
                    changed = true;
                }
                for status in InstanceStatus::ALL {
                    if ui.selectable_label(self.filter.status == Some(status), status.name()).clicked() {
                        self.filter.status = Some(status);
                        changed = true;
                    }
                }
            });
            combo.response.labelled_by(label.id);
            let label = ui.label("Folio or id");
            let mut search = self.filter.search.clone().unwrap_or_default();
            let response = ui
                .add(TextEdit::singleline(&mut search).desired_width(160.0).hint_text("PO-1042 or 17"))
                .labelled_by(label.id);
            if response.changed() {
                self.filter.search = Some(search).filter(|s| !s.trim().is_empty());
                changed = true;
            }
            changed |= ui
                .checkbox(&mut self.filter.overdue, "Overdue")
                .on_hover_text("Only instances with a deadline or timer that has fallen due")
                .changed();
            // Set by a click on the overview's diagram, with no field of
            // its own: said here, or the list looks short for no reason.
            if let Some(activity) = &self.filter.activity
                && ui
                    .button(format!("At `{activity}` ✕"))
                    .on_hover_text("Only the instances waiting or failed at this activity; click to list every one")
                    .clicked()
            {
                self.filter.activity = None;
                changed = true;
            }
            self.find.toggle_ui(ui);
            if self.rows.iter().any(|row| row.parent_id.is_some())
                && ui
                    .checkbox(&mut self.nest_children, "Children under parents")
                    .on_hover_text("Show each sub-process child under its parent when both are on the page")
                    .changed()
            {
                self.refresh(user);
            }
            if ui.button("Refresh").clicked() {
                self.refresh(user);
            }
            let current = self.count_for.as_ref() == Some(&self.filter);
            match (self.count, &self.count_error) {
                (Some(n), _) if current => {
                    ui.label(RichText::new(format!("{} instance(s)", thousands(n as usize))).weak());
                }
                (None, Some(error)) if current => {
                    ui.label(RichText::new("not counted").color(theme::ERROR)).on_hover_text(error);
                }
                _ => {
                    ui.label(RichText::new("counting…").weak());
                }
            }
        });
        if changed {
            self.filter_changed(user);
        }
    }

    fn instance_table(&mut self, ui: &mut Ui, user: &str) {
        let total = match (&self.count_for, self.count) {
            (Some(filter), Some(n)) if *filter == self.filter => n as usize,
            _ => self.rows_offset + self.rows.len(),
        };
        // Title, the order it sorts by (none: not sortable) and whether its
        // arrow shows that order ("Started" and "Id" share the id order;
        // only Id is marked), and its width where the window has room.
        let all_columns = [
            ("Id", Some(InstanceColumn::Id), true, 64.0),
            // The instance whose sub-process event started this one: shown
            // only where a row on the page has one, so that lists without
            // sub-processes keep their room on a small screen.
            ("Parent", None, false, 56.0),
            ("Folio", Some(InstanceColumn::Folio), true, 92.0),
            ("Process", Some(InstanceColumn::Process), true, 130.0),
            ("Status", Some(InstanceColumn::Status), true, 74.0),
            ("Due", Some(InstanceColumn::Due), true, 98.0),
            ("Originator", Some(InstanceColumn::Originator), true, 84.0),
            ("Started", Some(InstanceColumn::Id), false, 162.0),
            ("Last change", Some(InstanceColumn::LastChange), true, 162.0),
        ];
        let with_parent = self.rows.iter().any(|row| row.parent_id.is_some());
        let depths = if self.nest_children { nesting_depths(&self.rows) } else { HashMap::new() };
        let columns: Vec<_> = all_columns.into_iter().filter(|(title, ..)| with_parent || *title != "Parent").collect();
        // Narrowed together on a small screen, so that every column stays
        // in sight beside the instance panel; the status and the due time
        // keep their width. The table's width as the table reckons it: its
        // scroll bar and the spaces between columns left out.
        let table_width = ui.available_rect_before_wrap().width() - ui.spacing().scroll.allocated_width();
        let spacing = (columns.len() - 1) as f32 * ui.spacing().item_spacing.x;
        let kept: Vec<bool> = columns.iter().map(|(title, _, _, _)| matches!(*title, "Status" | "Due")).collect();
        let widths: Vec<f32> = columns.iter().map(|(_, _, _, width)| *width).collect();
        let widths = fitted_slice(&widths, &kept, table_width - spacing);
        let refit = self.fitted_to.is_none_or(|fitted| (fitted - table_width).abs() > 0.5);
        self.fitted_to = Some(table_width);
        let now = self.clock.now();
        let mut sort_by = None;
        let mut clicked = None;
        let mut visible: Option<(usize, usize)> = None;
        // Rows are clicked to open an instance: labels must not take the click
        // for text selection.
        ui.style_mut().interaction.selectable_labels = false;
        // Column separators are drawn to the bottom of the clip: keep them
        // out of the flow panel below.
        let area = ui.available_rect_before_wrap();
        ui.set_clip_rect(ui.clip_rect().intersect(area));
        // Its own id: the items view's table sits in the same place of the
        // window and would otherwise share its scroll position and widths.
        let mut table = TableBuilder::new(ui)
            .id_salt("instance-list")
            .striped(true)
            .sense(egui::Sense::click())
            .auto_shrink([false, false]);
        if refit {
            table.reset();
        }
        for width in widths {
            table = table.column(Column::initial(width).resizable(true).clip(true));
        }
        table
            .header(22.0, |mut header| {
                for (title, column, marked, _) in &columns {
                    header.col(|ui| {
                        let Some(column) = column else {
                            ui.label(RichText::new(*title).strong());
                            return;
                        };
                        let order = self.filter.order;
                        let arrow = if order.column == *column && *marked {
                            if order.descending { " (desc)" } else { " (asc)" }
                        } else {
                            ""
                        };
                        if ui.button(RichText::new(format!("{title}{arrow}")).strong()).on_hover_text("Sort").clicked()
                        {
                            sort_by = Some(*column);
                        }
                    });
                }
            })
            .body(|body| {
                body.rows(20.0, total, |mut row| {
                    let index = row.index();
                    visible = Some(match visible {
                        Some((low, high)) => (low.min(index), high.max(index)),
                        None => (index, index),
                    });
                    let Some(summary) = index.checked_sub(self.rows_offset).and_then(|i| self.rows.get(i)) else {
                        row.col(|ui| {
                            ui.label(RichText::new("…").weak());
                        });
                        return;
                    };
                    row.set_selected(self.selected == Some(summary.id) || self.bulk.instances.contains(&summary.id));
                    let parent = with_parent.then(|| summary.parent_id.map(|id| id.to_string()).unwrap_or_default());
                    // A child under its parent: indented, with an arrow per level.
                    let depth = depths.get(&summary.id).copied().unwrap_or(0);
                    let id = format!("{}{}", "\u{21b3} ".repeat(depth), summary.id);
                    let texts = std::iter::once(id)
                        .chain(parent)
                        .chain([summary.folio.clone(), format!("{} v{}", summary.process, summary.version)]);
                    for text in texts {
                        row.col(|ui| {
                            ui.label(text);
                        });
                    }
                    row.col(|ui| {
                        ui.colored_label(status_color(summary.status), summary.status.name());
                    });
                    row.col(|ui| due::due_cell(ui, now, summary.due_at));
                    for text in
                        [summary.originator.clone(), format_time(summary.started_at), format_time(summary.updated_at)]
                    {
                        row.col(|ui| {
                            ui.label(text);
                        });
                    }
                    if row.response().clicked() {
                        clicked = Some((index, summary.id, row.response().ctx.input(|i| i.modifiers)));
                    }
                });
            });
        if let Some(column) = sort_by {
            // A new column starts newest first for times of the past, soonest
            // first for the Due column, A to Z for the others.
            let descending = if self.filter.order.column == column {
                !self.filter.order.descending
            } else {
                column == InstanceColumn::Id || column == InstanceColumn::LastChange
            };
            self.filter.order = InstanceOrder { column, descending };
            self.filter_changed(user);
        }
        if let Some((index, id, modifiers)) = clicked {
            let (rows, offset) = (&self.rows, self.rows_offset);
            let loaded = |index: usize| index.checked_sub(offset).and_then(|i| rows.get(i)).map(|r| r.id);
            if self.bulk.instances.click(index, id, modifiers, loaded) {
                self.select(id, user);
            }
        }
        self.visible = visible;
        // Ask for the page around what is on screen when it is not loaded.
        if let Some((low, high)) = visible {
            let loaded = self.rows_offset..self.rows_offset + self.rows.len();
            let shown_loaded = loaded.contains(&low) && (loaded.contains(&high) || high + 1 >= total);
            let offset = low.saturating_sub(PAGE / 4);
            let already_asked = self.asked_page.as_ref() == Some(&(self.filter.clone(), offset));
            if !shown_loaded && !already_asked {
                self.ask(user, Query::Page { filter: self.filter.clone(), offset, limit: PAGE });
                self.asked_page = Some((self.filter.clone(), offset));
            }
        }
    }

    fn detail_ui(&mut self, ui: &mut Ui, user: &str, requests: &mut Vec<MonitorRequest>) {
        let Some(detail) = &self.detail else {
            match (&self.detail_error, self.selected) {
                (Some(error), _) => {
                    ui.colored_label(theme::ERROR, error);
                }
                (None, Some(_)) => {
                    ui.label("Loading…");
                }
                (None, None) => {
                    ui.add_space(20.0);
                    ui.label("Select an instance to see its flow, data and audit trail.");
                }
            }
            return;
        };
        let summary = detail.summary.clone();
        ui.horizontal(|ui| {
            ui.heading(format!("Instance {}", summary.id));
            ui.colored_label(status_color(summary.status), RichText::new(summary.status.name()).strong());
        });
        ui.label(format!(
            "{}{} version {} · started by {} at {}",
            if summary.folio.is_empty() { String::new() } else { format!("{} · ", summary.folio) },
            summary.process,
            summary.version,
            summary.originator,
            format_time(summary.started_at)
        ));
        self.open_link = links_ui(ui, detail).or(self.open_link.take());
        if let Some(failure) = &detail.failure {
            ui.colored_label(
                theme::ERROR,
                format!("Error at `{}` {}: {}", failure.activity, failure.event, failure.message),
            );
        }
        if !detail.pending_items.is_empty() {
            ui.label(flow::waiting_words(detail));
        }
        let activities: Vec<String> = detail.definition.draft.activities.iter().map(|a| a.name.clone()).collect();
        // One action at a time per instance: a second click while one is
        // pending would act on a state nobody has seen yet.
        let pending = self.pending_words(&Subject::Instance(summary.id)).map(str::to_owned);
        let free = pending.is_none();
        // A button is live where the engine's table allows its command.
        let allowed = |command| free && rule(summary.status, command) == Rule::Allowed;
        ui.horizontal_wrapped(|ui| {
            let id = summary.id;
            if ui.add_enabled(allowed(CommandKind::Retry), egui::Button::new("Retry")).clicked() {
                self.confirm = Some(Operation::Retry(id));
            }
            if ui.add_enabled(allowed(CommandKind::Stop), egui::Button::new("Stop")).clicked() {
                self.confirm = Some(Operation::Stop(id));
            }
            if ui.add_enabled(allowed(CommandKind::Resume), egui::Button::new("Resume")).clicked() {
                self.confirm = Some(Operation::Resume(id));
            }
            let open = allowed(CommandKind::GoTo);
            ui.add_enabled_ui(open, |ui| {
                egui::ComboBox::from_id_salt("goto-target")
                    .selected_text(if self.goto_target.is_empty() {
                        "Go to…".to_owned()
                    } else {
                        self.goto_target.clone()
                    })
                    .show_ui(ui, |ui| {
                        for name in &activities {
                            if ui.selectable_label(false, name).clicked() {
                                self.goto_target = name.clone();
                                self.confirm = Some(Operation::GoTo(id, name.clone()));
                            }
                        }
                    });
            });
            if ui.button("Start new instance…").clicked() {
                requests.push(MonitorRequest::StartInstance { process: summary.process.clone() });
            }
        });
        if let Some(words) = &pending {
            pending_ui(ui, words);
        } else if let Some(answer) = self.message.as_ref().filter(|answer| answer.concerns(&summary.id, user)) {
            ui.colored_label(answer.outcome.color(), &answer.text);
        }
        ui.separator();
        ui.strong("Data");
        self.data_ui(ui, summary.id, summary.status, free);
    }

    /// The instance's data; saving waits while another action on the
    /// instance is pending (`free` is false).
    fn data_ui(&mut self, ui: &mut Ui, id: i64, status: InstanceStatus, free: bool) {
        let Some(detail) = &self.detail else { return };
        let editable = rule(status, CommandKind::SetData) == Rule::Allowed;
        egui::Grid::new("instance-data").num_columns(3).striped(true).spacing([10.0, 6.0]).show(ui, |ui| {
            for (name, field_type, text) in &mut self.data_inputs {
                let label = ui.label(RichText::new(name.as_str()).strong());
                ui.label(RichText::new(field_type.name()).weak());
                ui.add_enabled_ui(editable, |ui| field_input(ui, label.id, *field_type, text));
                ui.end_row();
            }
        });
        let changes: Vec<(String, String)> = self
            .data_inputs
            .iter()
            .zip(&detail.fields)
            .filter(|((_, _, text), (_, _, value))| *text != value.to_string())
            .map(|((name, _, text), _)| (name.clone(), text.clone()))
            .collect();
        ui.add_space(6.0);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(free && editable && !changes.is_empty(), egui::Button::new("Save data…"))
                .on_hover_text("Needs the Admin right; recorded in the audit trail")
                .clicked()
            {
                self.confirm = Some(Operation::SetData(id, changes.clone()));
            }
            if ui.add_enabled(!changes.is_empty(), egui::Button::new("Discard")).clicked() {
                self.data_for = None;
                self.data_inputs = detail.fields.iter().map(|(n, t, v)| (n.clone(), *t, v.to_string())).collect();
            }
        });
    }

    fn confirm_ui(&mut self, ctx: &egui::Context, user: &str) {
        let Some(operation) = self.confirm.clone() else { return };
        let decided = confirmation_ui(ctx, "confirm-operation", |ui| {
            ui.label(operation.question());
            ui.label(RichText::new(format!("It is recorded in the audit trail as done by {user}.")).weak());
            true
        });
        if let Some(confirmed) = decided {
            self.confirm = None;
            self.goto_target.clear();
            if confirmed {
                let subject = Subject::Instance(operation.instance_id());
                let words = operation.pending_words();
                self.commands.push(Intent { subject, words, command: Command::Operate(operation) });
            }
        }
    }

    // ----- server items -----------------------------------------------------------

    /// The server items and the finish box. A finish goes to `actions` once
    /// the frame is drawn.
    pub fn items_ui(&mut self, ui: &mut Ui, actions: Option<&mut Actions>, user: &str) {
        let repaint = if self.items.is_empty() { DUE_REPAINT } else { AGES_REPAINT };
        self.sync(ui.ctx(), user, repaint);
        let width = side_panel_width(ui, 440.0);
        egui::Panel::right("finish-item").resizable(true).default_size(width).min_size(340.0).show(ui, |ui| {
            self.finish_ui(ui, user);
        });
        egui::CentralPanel::default().show(ui, |ui| {
            let mut changed = false;
            ui.horizontal_wrapped(|ui| {
                ui.heading("Server items");
                changed |= ui.checkbox(&mut self.items_filter.include_closed, "Show finished").changed();
                let label = ui.label("Find");
                let mut search = self.items_filter.search.clone().unwrap_or_default();
                if ui
                    .add(
                        TextEdit::singleline(&mut search)
                            .desired_width(160.0)
                            .hint_text("serial, folio, process, activity"),
                    )
                    .labelled_by(label.id)
                    .changed()
                {
                    self.items_filter.search = Some(search).filter(|s| !s.trim().is_empty());
                    changed = true;
                }
                changed |= ui
                    .checkbox(&mut self.items_filter.overdue, "Overdue")
                    .on_hover_text("Only items whose deadline or timer has fallen due")
                    .changed();
                let order = match (self.items_filter.by_due, self.items_filter.newest_first) {
                    (false, false) => "Oldest first",
                    (false, true) => "Newest first",
                    (true, false) => "Soonest due first",
                    (true, true) => "Latest due first",
                };
                if ui.button(order).on_hover_text("Sort the other way").clicked() {
                    self.items_filter.newest_first = !self.items_filter.newest_first;
                    changed = true;
                }
                let shown = self.items.len();
                let counted = match self.items_matching {
                    Some(matching) if matching > shown as u64 => {
                        format!("{} of {} item(s)", thousands(shown), thousands(matching as usize))
                    }
                    _ => format!("{} item(s)", thousands(shown)),
                };
                ui.label(RichText::new(counted).weak());
            });
            if changed {
                self.bulk.items.clear();
                self.items_matching = None;
                self.ask(user, Query::Items { filter: self.items_filter.clone() });
            }
            egui::Panel::bottom("items-bulk").show(ui, |ui| self.items_bulk_bar(ui));
            if let Some(error) = &self.items_error {
                ui.colored_label(theme::ERROR, error);
            }
            ui.separator();
            let now = self.clock.now();
            let mut open = None;
            let mut sort_by_due = None;
            let items = self.items.clone();
            ui.style_mut().interaction.selectable_labels = false;
            // Serial, instance, folio, process, activity and event (at least),
            // age, due, status: narrowed together on a small screen, so the
            // status stays in sight beside the finish panel.
            // The due time and the status keep their width.
            let [serial, instance, folio, process, activity, event, age, due, status] = fitted_widths(
                [70.0, 64.0, 100.0, 110.0, 80.0, 80.0, 84.0, 100.0, 66.0],
                [false, false, false, false, false, false, false, true, true],
                ui.available_width() - 64.0 - 10.0 * ui.spacing().item_spacing.x,
            );
            let filter = &self.items_filter;
            // The sorting headers, as the instance list's: the arrow on the order shown.
            let arrow = |by_due: bool| match (filter.by_due == by_due, filter.newest_first) {
                (false, _) => "",
                (true, false) => " (asc)",
                (true, true) => " (desc)",
            };
            let (age_title, due_title) = (format!("Age{}", arrow(false)), format!("Due{}", arrow(true)));
            let mut picked = None;
            TableBuilder::new(ui)
                .id_salt("server-items")
                .striped(true)
                .sense(egui::Sense::click())
                .auto_shrink([false, false])
                .column(Column::exact(64.0))
                .column(Column::initial(serial).clip(true))
                .column(Column::initial(instance).clip(true))
                .column(Column::initial(folio).clip(true))
                .column(Column::initial(process).clip(true))
                // Activity and event share what is left.
                .column(Column::remainder().at_least(activity).clip(true))
                .column(Column::remainder().at_least(event).clip(true))
                .column(Column::initial(age).clip(true))
                .column(Column::initial(due).clip(true))
                .column(Column::initial(status).clip(true))
                .header(22.0, |mut header| {
                    for title in ["", "Serial", "Instance", "Folio", "Process", "Activity", "Event"] {
                        header.col(|ui| {
                            ui.strong(title);
                        });
                    }
                    for (title, by_due) in [(&age_title, false), (&due_title, true)] {
                        header.col(|ui| {
                            if ui.button(RichText::new(title).strong()).on_hover_text("Sort").clicked() {
                                sort_by_due = Some(by_due);
                            }
                        });
                    }
                    header.col(|ui| {
                        ui.strong("Status");
                    });
                })
                .body(|body| {
                    body.rows(24.0, items.len(), |mut row| {
                        let index = row.index();
                        let item = &items[index];
                        row.set_selected(self.bulk.items.contains(&item.serial));
                        row.col(|ui| {
                            if item.status == ItemStatus::Pending {
                                let button = ui.small_button("Open");
                                let label = format!("Open {}", item.serial);
                                button.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
                                if button.clicked() {
                                    open = Some(item.serial.to_string());
                                }
                            }
                        });
                        let cells = [
                            item.serial.to_string(),
                            item.serial.instance_id.to_string(),
                            item.folio.clone(),
                            item.process.clone(),
                            item.activity.clone(),
                            item.event.clone(),
                            format_age(now, item.created_at),
                        ];
                        for text in cells {
                            row.col(|ui| {
                                ui.label(text);
                            });
                        }
                        row.col(|ui| due::due_cell(ui, now, item.due_at));
                        row.col(|ui| {
                            ui.label(item.status_words());
                        });
                        if row.response().clicked() {
                            picked = Some((index, item.serial, row.response().ctx.input(|i| i.modifiers)));
                        }
                    });
                });
            if let Some((index, serial, modifiers)) = picked {
                let loaded = |index: usize| items.get(index).map(|item| item.serial);
                self.bulk.items.click(index, serial, modifiers, loaded);
            }
            if let Some(by_due) = sort_by_due {
                // Again on the same column turns it round; another starts at
                // the oldest, or the soonest due.
                let filter = &mut self.items_filter;
                filter.newest_first = filter.by_due == by_due && !filter.newest_first;
                filter.by_due = by_due;
                self.ask(user, Query::Items { filter: self.items_filter.clone() });
            }
            if let Some(serial) = open {
                self.finish.serial = serial;
                self.open_item(user);
            }
        });
        self.bulk_windows(ui.ctx(), user);
        self.send_commands(actions, user);
    }

    /// Opens the serial in the box afresh (Open, Enter, or a row's Open).
    fn open_item(&mut self, user: &str) {
        self.finish.close();
        self.finish.answer = None;
        let serial = self.finish.typed();
        if serial.is_empty() {
            let words = "Type or paste a serial first, like 1042_7.".to_owned();
            self.finish.answer = Some(Answer::new(serial, user, (words, Outcome::Failed)));
            return;
        }
        self.finish.opened_for = Some((serial, user.to_owned()));
        self.read_item(user);
    }

    /// Asks for the item Open was pressed for, as `user`; what the operator
    /// typed into its fields is kept when it comes.
    fn read_item(&mut self, user: &str) {
        let Some((serial, _)) = self.finish.opened_for.take() else { return };
        self.ask(user, Query::Item { serial: serial.clone() });
        self.finish.opened_for = Some((serial, user.to_owned()));
        self.finish.reading = true;
    }

    /// Finishes the item shown (never the serial in the box as such: they are
    /// the same, or nothing is shown), sending the fields the operator changed.
    fn finish_item(&mut self) {
        let (Some((typed, _)), Some(opened)) = (&self.finish.opened_for, &self.finish.opened) else { return };
        let data: Vec<(String, String)> = self
            .finish
            .inputs
            .iter()
            .filter(|entry| entry.edited())
            .map(|entry| (entry.name.clone(), entry.text.clone()))
            .collect();
        let serial = opened.item.serial;
        let words = format!("Finishing {serial}…");
        let command = Command::Finish { serial, data };
        self.commands.push(Intent { subject: Subject::Serial(typed.clone()), words, command });
    }

    fn finish_ui(&mut self, ui: &mut Ui, user: &str) {
        // Another user is connected: show the item as they may see it.
        if self.finish.opened_for.as_ref().is_some_and(|(_, read_as)| read_as != user) {
            self.read_item(user);
        }
        let finishing = self.pending_words(&Subject::Serial(self.finish.typed())).map(str::to_owned);
        let free = finishing.is_none() && !self.finish.reading;
        ui.heading("Finish by serial");
        ui.label(RichText::new("Paste or type the serial an external system could not call back with.").weak());
        ui.horizontal(|ui| {
            let label = ui.label("Serial");
            let response = ui
                .add(TextEdit::singleline(&mut self.finish.serial).desired_width(140.0).hint_text("1042_7"))
                .labelled_by(label.id);
            if response.changed() {
                self.finish.serial_edited();
            }
            let enter = response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            // Not while a finish of this serial is pending: its answer reads
            // the item again.
            if ui.add_enabled(finishing.is_none(), egui::Button::new("Open")).clicked()
                || (enter && finishing.is_none())
            {
                self.open_item(user);
            }
        });
        ui.separator();
        let finish_button = egui::Button::new(RichText::new("Finish").strong());
        let mut finish = false;
        if let Some(opened) = &self.finish.opened {
            let item = &opened.item;
            egui::Grid::new("opened-item").num_columns(2).spacing([10.0, 4.0]).show(ui, |ui| {
                for (key, value) in [
                    ("Serial", item.serial.to_string()),
                    ("Instance", format!("{} ({})", opened.instance.id, opened.instance.status.name())),
                    ("Folio", opened.instance.folio.clone()),
                    ("Process", format!("{} v{}", opened.instance.process, opened.instance.version)),
                    ("Activity", item.activity.clone()),
                    ("Event", item.event.clone()),
                    ("Waiting since", format_time(item.created_at)),
                    ("Status", item.status.name().to_owned()),
                ] {
                    ui.label(RichText::new(key).weak());
                    ui.label(value);
                    ui.end_row();
                }
                // Its next deadline, if one is armed: finishing first disarms it.
                if let Some(due_at) = item.due_at {
                    let now = self.clock.now();
                    ui.label(RichText::new("Due").weak());
                    let words = format!("{} ({})", due::due_words(now, due_at), format_time(due_at));
                    ui.colored_label(due::due_color(now, due_at, ui.visuals().text_color()), words);
                    ui.end_row();
                }
            });
            ui.add_space(6.0);
            ui.strong("Data fields");
            egui::Grid::new("finish-fields").num_columns(3).spacing([10.0, 6.0]).show(ui, |ui| {
                for entry in &mut self.finish.inputs {
                    let label = ui.label(entry.name.as_str());
                    ui.label(RichText::new(entry.field_type.name()).weak());
                    field_input(ui, label.id, entry.field_type, &mut entry.text);
                    ui.end_row();
                }
            });
            ui.add_space(8.0);
            // Say at once what pressing Finish would be told.
            if item.status != ItemStatus::Pending {
                let when = item.closed_at.map(format_time).unwrap_or_default();
                let by = item.closed_by.clone().unwrap_or_default();
                let verb = if item.status == ItemStatus::Cancelled { "cancelled" } else { "finished" };
                ui.colored_label(theme::WARNING, format!("This item was already {verb} at {when} by {by}."));
            }
            finish = ui.add_enabled(free && item.status == ItemStatus::Pending, finish_button).clicked();
        } else if self.finish.reading {
            let serial = self.finish.opened_for.as_ref().map(|(serial, _)| serial.as_str()).unwrap_or_default();
            pending_ui(ui, &format!("Opening {serial}…"));
            ui.add_space(8.0);
            ui.add_enabled(false, finish_button);
        } else {
            // Not under an answer about this serial: "finish it" would
            // contradict "Finished 1_2" or "not found".
            if self.finish.shown_answer(user).is_none() {
                ui.label(RichText::new("Press Open to see the item of this serial and finish it.").weak());
                ui.add_space(8.0);
            }
            ui.add_enabled(false, finish_button);
        }
        if finish {
            self.finish_item();
        }
        if let Some(words) = &finishing {
            ui.add_space(8.0);
            pending_ui(ui, words);
        } else if let Some(answer) = self.finish.shown_answer(user) {
            ui.add_space(8.0);
            let color = answer.outcome.color();
            egui::Frame::group(ui.style()).stroke(egui::Stroke::new(1.0, color)).show(ui, |ui| {
                ui.colored_label(color, &answer.text);
            });
        }
    }
}

/// A write or read on its way: a spinner and what it is.
/// The instance's parent ("Started by instance 7, event `Pay` of `Take
/// payment`") and children, each a link; the instance clicked, to open.
fn links_ui(ui: &mut Ui, detail: &InstanceDetail) -> Option<i64> {
    let mut open = None;
    if let Some(parent) = &detail.parent {
        ui.horizontal_wrapped(|ui| {
            ui.label("Started by");
            if ui.link(format!("instance {}", parent.instance_id)).clicked() {
                open = Some(parent.instance_id);
            }
            let waits = if parent.serial_id.is_some() { ", which waits for it" } else { "" };
            ui.label(format!("({}), event `{}` of `{}`{waits}", parent.process, parent.event, parent.activity));
        });
    }
    if !detail.children.is_empty() {
        ui.horizontal_wrapped(|ui| {
            ui.label("Children:");
            for child in &detail.children {
                let status = child.summary.as_ref().map(|s| s.status.name()).unwrap_or("gone");
                let text = format!("instance {} ({}, {status})", child.link.instance_id, child.link.process);
                if ui.link(text).clicked() {
                    open = Some(child.link.instance_id);
                }
            }
        });
    }
    open
}

/// What Retry all or Stop all did, in words, and whether all went well.
fn incident_answer(
    operation: actions::IncidentOperation,
    result: Result<actions::IncidentReport, EngineError>,
) -> (String, bool) {
    let verb = match operation {
        actions::IncidentOperation::Retry => "retried",
        actions::IncidentOperation::Stop => "stopped",
    };
    match result {
        Ok(report) if report.not_done.is_empty() && report.not_reached == 0 => {
            (format!("{} instance(s) {verb}.", report.done), true)
        }
        Ok(report) if report.not_done.is_empty() => {
            (format!("{} instance(s) {verb}; cancelled before {} more.", report.done, report.not_reached), false)
        }
        Ok(report) => {
            let listed: Vec<String> =
                report.not_done.iter().take(5).map(|(id, why)| format!("instance {id}: {why}")).collect();
            let more = report.not_done.len().saturating_sub(listed.len());
            let more = if more > 0 { format!(" and {more} more") } else { String::new() };
            (
                format!(
                    "{} instance(s) {verb}, {} not: {}{more}.{}",
                    report.done,
                    report.not_done.len(),
                    listed.join("; "),
                    if report.not_reached > 0 {
                        format!(" Cancelled before {} more.", report.not_reached)
                    } else {
                        String::new()
                    }
                ),
                false,
            )
        }
        Err(error) => (refusal_words(&error), false),
    }
}

fn pending_ui(ui: &mut Ui, words: &str) {
    ui.horizontal(|ui| {
        ui.add(egui::Spinner::new());
        ui.label(words);
    });
}

/// The answer to a finish of `serial`, in words.
fn finish_answer(serial: &str, result: Result<Finished, EngineError>) -> (String, Outcome) {
    match result {
        Ok(finished) if !finished.applied => (
            format!(
                "Finished {serial}: recorded; it is applied when the instance runs on ({}).",
                finished.progress.status
            ),
            Outcome::Done,
        ),
        // The item is finished, but the step the instance ran on to failed.
        Ok(finished) if finished.progress.status == InstanceStatus::Error => (
            format!(
                "Finished {serial}, but instance {} is now {}.",
                finished.progress.instance_id,
                finished.progress.words()
            ),
            Outcome::Failed,
        ),
        Ok(finished) => (
            format!("Finished {serial}: instance {} {}.", finished.progress.instance_id, finished.progress.words()),
            Outcome::Done,
        ),
        Err(err) => (refusal_words(&err), Outcome::Failed),
    }
}

/// An input fitting a field's type; the text stays text until the engine
/// checks it, so a wrong value is answered by the engine, in words.
fn field_input(ui: &mut Ui, label: egui::Id, field_type: FieldType, text: &mut String) {
    match field_type {
        FieldType::Boolean => {
            let mut checked = text == "true";
            if ui.checkbox(&mut checked, "").labelled_by(label).changed() {
                *text = checked.to_string();
            }
        }
        other => {
            ui.add(TextEdit::singleline(text).desired_width(200.0).hint_text(other.hint())).labelled_by(label);
        }
    }
}

/// The colour of an action in the audit trail: failures red, what the
/// clock did in the timers' colour (the designer's clocks wear it), what
/// needs a look (a deadline that cannot fire, a notification to be tried
/// again) as a warning, the rest as text.
pub fn action_color(action: AuditAction) -> Color32 {
    match action {
        AuditAction::Error => theme::ERROR,
        AuditAction::EscalationFired | AuditAction::TimerFired => theme::TIMER,
        AuditAction::EscalationNotArmed | AuditAction::NotifyFailed => theme::WARNING,
        AuditAction::InstanceStarted
        | AuditAction::ActivityStarted
        | AuditAction::ActivityCompleted
        | AuditAction::ItemCreated
        | AuditAction::WaitingForCallback
        | AuditAction::ItemFinished
        | AuditAction::CallbackApplied
        | AuditAction::Log
        | AuditAction::HttpRequest
        | AuditAction::Mail
        | AuditAction::InstanceCompleted
        | AuditAction::InstanceInError
        | AuditAction::Retried
        | AuditAction::Stopped
        | AuditAction::Resumed
        | AuditAction::WentToActivity
        | AuditAction::DataChanged
        | AuditAction::Recovered
        | AuditAction::ChildStarted
        | AuditAction::ParentNotified => theme::ACTIVITY_TEXT,
    }
}

fn status_color(status: InstanceStatus) -> Color32 {
    match status {
        InstanceStatus::Completed => theme::flow::COMPLETED,
        InstanceStatus::Active | InstanceStatus::Running => theme::flow::ACTIVE,
        InstanceStatus::Error => theme::flow::ERROR,
        InstanceStatus::Stopped => theme::flow::CANCELLED,
    }
}

/// A refusal, or a failure of the database, in the words an operator needs.
pub fn refusal_words(err: &EngineError) -> String {
    match err {
        EngineError::PermissionDenied { user, process, right } => format!(
            "Refused: {user} lacks the {right} right on process {process}. An Admin of the process can grant it."
        ),
        // Not a refusal: the database failed. Whether trying again helps is
        // what the operator needs to know first; the message names the file.
        EngineError::Storage(err) => {
            let advice = if err.is_retryable() {
                "Nothing was saved; try again."
            } else {
                "Nothing was saved, and trying again fails until the cause is dealt with."
            };
            format!("Failed: {}. {advice} ({err})", err.kind.words())
        }
        other => format!("Refused: {other}."),
    }
}

/// The default width of a view's side panel: `preferred`, or 40 % of the
/// window on a small screen (down to the panel's 340 minimum), so that the
/// table beside it keeps room for its columns.
fn side_panel_width(ui: &Ui, preferred: f32) -> f32 {
    (ui.available_width() * 0.4).clamp(340.0, preferred)
}

/// Column widths narrowed in proportion when they add up to more than
/// `available`, so that a table's last columns (the items' status) are not
/// cut off on a small screen; never below 40 points a column. The columns
/// `kept` keep their width (a due time or a status cut short says nothing),
/// and the others share what is left. For a list of columns whose length
/// varies; [`fitted_widths`] for a fixed one.
fn fitted_slice(widths: &[f32], kept: &[bool], available: f32) -> Vec<f32> {
    let fixed: f32 = widths.iter().zip(kept).filter(|(_, kept)| **kept).map(|(width, _)| width).sum();
    let flexible: f32 = widths.iter().sum::<f32>() - fixed;
    let room = available - fixed;
    let scale = if flexible > room && room > 0.0 { room / flexible } else { 1.0 };
    widths.iter().zip(kept).map(|(width, keep)| if *keep { *width } else { (width * scale).max(40.0) }).collect()
}

fn fitted_widths<const N: usize>(widths: [f32; N], kept: [bool; N], available: f32) -> [f32; N] {
    let fitted = fitted_slice(&widths, &kept, available);
    // As long as `widths`: one width out per width in.
    std::array::from_fn(|index| fitted.get(index).copied().unwrap_or_default())
}

/// The page's rows with every child whose parent is on the page moved to
/// right after that parent (its own children after it, and so on); the
/// rest keep the list's order. A child whose parent is on another page
/// stays where the order put it.
fn nest_under_parents(rows: Vec<InstanceSummary>) -> Vec<InstanceSummary> {
    let on_page: HashSet<i64> = rows.iter().map(|row| row.id).collect();
    let mut children: HashMap<i64, Vec<InstanceSummary>> = HashMap::new();
    let mut roots = Vec::new();
    for row in rows {
        match row.parent_id.filter(|parent| on_page.contains(parent) && *parent != row.id) {
            Some(parent) => children.entry(parent).or_default().push(row),
            None => roots.push(row),
        }
    }
    let mut nested = Vec::with_capacity(on_page.len());
    let mut stack: Vec<InstanceSummary> = roots.into_iter().rev().collect();
    while let Some(row) = stack.pop() {
        if let Some(mut under) = children.remove(&row.id) {
            // Under its parent, the children in the order they started.
            under.sort_by_key(|child| child.id);
            stack.extend(under.into_iter().rev());
        }
        nested.push(row);
    }
    // A child is younger than its parent, so there is no cycle; still, no
    // row is ever dropped.
    nested.extend(children.into_values().flatten());
    nested
}

/// How many of each row's ancestors are on the page (0 for a row whose
/// parent is not), for the indent.
fn nesting_depths(rows: &[InstanceSummary]) -> HashMap<i64, usize> {
    let parents: HashMap<i64, i64> =
        rows.iter().filter_map(|row| row.parent_id.map(|parent| (row.id, parent))).collect();
    let on_page: HashSet<i64> = rows.iter().map(|row| row.id).collect();
    rows.iter()
        .map(|row| {
            let mut depth = 0;
            let mut at = row.id;
            while let Some(parent) = parents.get(&at).filter(|parent| on_page.contains(*parent)) {
                depth += 1;
                at = *parent;
                if depth > rows.len() {
                    break;
                }
            }
            (row.id, depth)
        })
        .collect()
}

/// A confirmation the monitor asks for: "Please confirm", what `body`
/// draws (the question, and what else it takes), then Confirm, enabled when
/// `body` answers true, and Cancel. Whether it was confirmed, once either
/// is clicked.
fn confirmation_ui(ctx: &egui::Context, id: &'static str, body: impl FnOnce(&mut Ui) -> bool) -> Option<bool> {
    let mut decided = None;
    egui::Modal::new(egui::Id::unique(id)).show(ctx, |ui| {
        ui.heading("Please confirm");
        let ready = body(ui);
        ui.add_space(8.0);
        ui.horizontal(|ui| {
            if ui.add_enabled(ready, egui::Button::new("Confirm")).clicked() {
                decided = Some(true);
            }
            if ui.button("Cancel").clicked() {
                decided = Some(false);
            }
        });
    });
    decided
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{StorageError, StorageErrorKind};

    /// A failure of the database is no refusal: the window says what kind
    /// it is in plain words, and whether trying again can help.
    #[test]
    fn a_storage_failure_is_said_as_a_failure_in_plain_words() {
        let full =
            EngineError::Storage(StorageError::new(StorageErrorKind::DiskFull, "the disk holding /d/f.db is full"));
        let words = refusal_words(&full);
        assert!(words.starts_with("Failed: the disk is full."), "{words}");
        assert!(words.contains("trying again fails") && words.contains("/d/f.db"), "{words}");
        let busy = EngineError::Storage(StorageError::new(StorageErrorKind::Busy, "/d/f.db stayed busy"));
        let words = refusal_words(&busy);
        assert!(words.starts_with("Failed: the database is busy") && words.contains("try again."), "{words}");
    }

    /// The trail colours what the clock did as the designer's clocks are
    /// coloured, and what needs a look as a warning.
    #[test]
    fn the_trail_colours_firings_in_the_timers_colour() {
        assert_eq!(action_color(AuditAction::EscalationFired), theme::TIMER);
        assert_eq!(action_color(AuditAction::TimerFired), theme::TIMER);
        assert_eq!(action_color(AuditAction::NotifyFailed), theme::WARNING);
        assert_eq!(action_color(AuditAction::EscalationNotArmed), theme::WARNING);
        assert_eq!(action_color(AuditAction::Error), theme::ERROR);
        assert_eq!(action_color(AuditAction::ItemFinished), theme::ACTIVITY_TEXT);
    }
}
