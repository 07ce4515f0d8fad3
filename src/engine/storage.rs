//! What the engine needs from persistence, and nothing more.
//!
//! The engine is written against these traits so that it never names a database;
//! the store layer implements them on SQLite. Each call of [`Storage::write`] is
//! one atomic transaction: the engine loads, decides and writes inside it, and a
//! refusal returned from the closure rolls everything back.

use serde::Serialize;

use crate::engine::error::EngineError;
use crate::engine::instance::{
    ActivityRecord, AuditEntry, Instance, InstanceStatus, ItemStatus, LineResult, Millis, ServerItem,
};
use crate::engine::machine::{Effect, ItemState};
use crate::engine::runner::RunnerId;
use crate::engine::serial::Serial;
use crate::model::Right;

/// A deployed version of a process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VersionRecord {
    pub process: String,
    pub version: u32,
    pub definition_json: String,
    pub deployed_at: Millis,
    pub deployed_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessSummary {
    pub name: String,
    pub default_version: u32,
    pub versions: u32,
}

/// One row of the instance list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstanceSummary {
    pub id: i64,
    pub process: String,
    pub version: u32,
    pub folio: String,
    pub originator: String,
    pub status: InstanceStatus,
    pub started_at: Millis,
    pub updated_at: Millis,
}

impl InstanceSummary {
    /// The list's row of an instance.
    pub fn of(instance: &Instance) -> InstanceSummary {
        InstanceSummary {
            id: instance.id,
            process: instance.process.clone(),
            version: instance.version,
            folio: instance.folio.clone(),
            originator: instance.originator.clone(),
            status: instance.status,
            started_at: instance.started_at,
            updated_at: instance.updated_at,
        }
    }
}

/// Which instances a user may see.
#[derive(Debug, Clone, Default)]
pub struct Visibility {
    /// Processes whose instances are all visible (View, Admin).
    pub all_of: Vec<String>,
    /// Processes whose instances are visible when the user took part (ViewParticipate).
    pub participated_of: Vec<String>,
    pub user: String,
}

/// A column the instance list can be sorted by; each is backed by an index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum InstanceColumn {
    /// Instance ids grow with start time (calls starting at the same moment
    /// may take them in either order), so this is also "started".
    #[default]
    Id,
    Folio,
    Process,
    Status,
    Originator,
    LastChange,
}

impl InstanceColumn {
    pub const ALL: [InstanceColumn; 6] = [
        InstanceColumn::Id,
        InstanceColumn::Folio,
        InstanceColumn::Process,
        InstanceColumn::Status,
        InstanceColumn::Originator,
        InstanceColumn::LastChange,
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InstanceOrder {
    pub column: InstanceColumn,
    pub descending: bool,
}

impl Default for InstanceOrder {
    fn default() -> Self {
        InstanceOrder::NEWEST_FIRST
    }
}

impl InstanceOrder {
    pub const NEWEST_FIRST: InstanceOrder = InstanceOrder { column: InstanceColumn::Id, descending: true };
    pub const OLDEST_FIRST: InstanceOrder = InstanceOrder { column: InstanceColumn::Id, descending: false };
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct InstanceFilter {
    pub process: Option<String>,
    pub status: Option<InstanceStatus>,
    /// Matches the folio (contains) or, if a number, the id.
    pub search: Option<String>,
    pub order: InstanceOrder,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ItemFilter {
    pub include_closed: bool,
    pub process: Option<String>,
    pub instance_id: Option<i64>,
    /// Matches the serial, folio, process, activity or event (contains,
    /// ignoring case).
    pub search: Option<String>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
    /// Order by age alone, closed items among pending ones, instead of
    /// pending first: an item keeps its place when it closes, so a client
    /// paging with `after` neither skips nor repeats one. The HTTP API
    /// lists this way.
    pub by_age_only: bool,
    /// Only the items after this one in age order (creation time, then
    /// serial; before it when newest first): the cursor of the next page.
    /// The item must exist ([`EngineError::ItemNotFound`] otherwise). Pages
    /// meet exactly only in an order an item keeps when it closes: pending
    /// items only, or [`Self::by_age_only`].
    pub after: Option<Serial>,
    pub limit: usize,
}

/// A `Running` instance's claim: whose it is and until when it holds (see
/// `engine::runner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningInstance {
    pub id: i64,
    pub runner: Option<RunnerId>,
    pub lease_until: Option<Millis>,
    /// When the runner's last heartbeat runs out; `None` when it has none.
    pub runner_expires_at: Option<Millis>,
}

/// Storage errors are reported as [`EngineError::Storage`].
pub type StorageResult<T> = Result<T, EngineError>;

/// Operations inside one transaction.
pub trait Transaction {
    fn latest_version(&mut self, process: &str) -> StorageResult<Option<u32>>;
    fn default_version(&mut self, process: &str) -> StorageResult<Option<u32>>;
    fn version(&mut self, process: &str, version: u32) -> StorageResult<Option<VersionRecord>>;
    /// Stores a new version and makes it the process's default.
    fn insert_version(&mut self, record: &VersionRecord) -> StorageResult<()>;
    fn processes(&mut self) -> StorageResult<Vec<ProcessSummary>>;

    fn rights(&mut self, process: &str, user: &str) -> StorageResult<Vec<Right>>;
    /// Every (process, right) the user holds.
    fn rights_of_user(&mut self, user: &str) -> StorageResult<Vec<(String, Right)>>;
    /// Every (user, right) on a process.
    fn rights_on_process(&mut self, process: &str) -> StorageResult<Vec<(String, Right)>>;
    fn grant(&mut self, process: &str, user: &str, right: Right) -> StorageResult<()>;
    fn revoke(&mut self, process: &str, user: &str, right: Right) -> StorageResult<()>;

    /// The id the next new instance gets: never one used before.
    fn next_instance_id(&mut self) -> StorageResult<i64>;
    /// Inserts a new instance with the id [`Transaction::next_instance_id`] gave.
    fn insert_instance(&mut self, instance: &Instance) -> StorageResult<()>;
    fn instance(&mut self, id: i64) -> StorageResult<Option<Instance>>;
    /// The instance's [`Instance::revision`], `None` if there is no such instance.
    fn instance_revision(&mut self, id: i64) -> StorageResult<Option<i64>>;
    fn update_instance(&mut self, instance: &Instance) -> StorageResult<()>;
    /// Writes the rows a decision's effects stand for beside the instance
    /// row: its history record (audit entries, activities, lines), its
    /// server items as created, finished, applied or cancelled, and its
    /// participants. The store writes what each effect says and decides
    /// nothing (which item may be finished is the engine's question,
    /// answered on the state it read in the same transaction); effects that
    /// only change the instance are in its row already.
    ///
    /// The engine writes the instance in the same transaction
    /// ([`Transaction::update_instance`] or [`Transaction::insert_instance`]),
    /// except for a finish it holds for later ([`Effect::ItemFinished`] with
    /// data left to apply), whose write must bump the instance's revision
    /// all the same: planned writes rely on every write to an instance or its
    /// items doing so.
    fn write_effects(&mut self, instance_id: i64, effects: Vec<Effect>) -> StorageResult<()>;
    /// The instance's open server items (pending, or finished with the
    /// finish not applied yet) and the finishes left to apply.
    fn item_state(&mut self, instance_id: i64) -> StorageResult<ItemState>;
    fn server_item(&mut self, serial: Serial) -> StorageResult<Option<ServerItem>>;
    /// Every `Running` instance's claim, with its runner's heartbeat expiry.
    fn running_instances(&mut self) -> StorageResult<Vec<RunningInstance>>;

    fn instances(&mut self, visibility: &Visibility, filter: &InstanceFilter) -> StorageResult<Vec<InstanceSummary>>;
    fn count_instances(&mut self, visibility: &Visibility, filter: &InstanceFilter) -> StorageResult<u64>;
    fn items(&mut self, visibility: &Visibility, filter: &ItemFilter) -> StorageResult<Vec<ServerItem>>;
    fn pending_items_of(&mut self, instance_id: i64) -> StorageResult<Vec<ServerItem>>;
    fn audit(&mut self, instance_id: i64) -> StorageResult<Vec<AuditEntry>>;
    fn activity_records(&mut self, instance_id: i64) -> StorageResult<Vec<ActivityRecord>>;
    fn line_results(&mut self, instance_id: i64) -> StorageResult<Vec<LineResult>>;
    /// Whether `user` took part in the instance: started it, or acted on it
    /// (a participant recorded by [`Effect::TookPart`]).
    fn is_participant(&mut self, instance_id: i64, user: &str) -> StorageResult<bool>;
}

/// A database the engine can open transactions on.
pub trait Storage: Send + Sync {
    /// Runs `work` in a write transaction; commits if it returns `Ok`, durably
    /// before returning, and rolls back otherwise.
    fn write<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError>;
    /// Runs `work` on a consistent read snapshot.
    fn read<T>(&self, work: impl FnOnce(&mut dyn Transaction) -> Result<T, EngineError>) -> Result<T, EngineError>;

    /// Like [`Storage::write`], for work that may be run more than once. A
    /// store may run it first on a snapshot, recording what it read and what
    /// it would write, and then, under the write lock, only check that what
    /// it read still holds and apply the writes; when it no longer holds, the
    /// work runs again inside the transaction. `before_commit` is called in
    /// the transaction once the writes are in, just before the commit.
    fn write_planned<T>(
        &self,
        work: impl Fn(&mut dyn Transaction) -> Result<T, EngineError>,
        before_commit: impl Fn(),
    ) -> Result<T, EngineError> {
        self.write(|tx| {
            let result = work(tx)?;
            before_commit();
            Ok(result)
        })
    }
}

/// Item status names as stored.
pub(crate) fn item_status_from_name(name: &str) -> Option<ItemStatus> {
    [ItemStatus::Pending, ItemStatus::Finished, ItemStatus::Cancelled].into_iter().find(|s| s.name() == name)
}
