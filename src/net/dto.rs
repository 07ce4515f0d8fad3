//! What the API sends and receives, as JSON. These types are the contract:
//! the OpenAPI document is generated from them, so it cannot drift from
//! what is served.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, Type};
use utoipa::{IntoParams, ToSchema};

use super::error::rfc3339;
use crate::engine::{AuditEntry, FailureInfo, InstanceDetail, InstanceSummary, OpenedItem, Progress, ServerItem};
use crate::model::{FieldType, Value};

/// Data field values by field name, as the API writes them: each value in
/// its type's one form, [`DataValue`].
pub type DataFields = BTreeMap<String, serde_json::Value>;

/// Data field values by field name, as a caller sent them: each value's JSON
/// text, read by its field's type once the process is known
/// ([`Value::from_json_text`]). Kept as text so that a decimal sent as a
/// JSON number keeps every digit instead of going through a float.
pub type DataInput = BTreeMap<String, Box<RawValue>>;

/// The OpenAPI schema of one data field value (a name for the document;
/// values are [`DataFields`]' JSON).
pub struct DataValue;

impl utoipa::PartialSchema for DataValue {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .description(Some(
                "A data field's value, in the one form of its field's type (`fields` names the types). \
                 `string`: a JSON string without NUL characters. \
                 `integer`: a JSON integer from -9223372036854775808 to 9223372036854775807, without fraction or exponent. \
                 `decimal`: a JSON string of its digits as written, such as \"12.50\" or \"-3\" \
                 (an optional `-`, no `+`, leading zeros, spaces or exponent; at most 28 decimal places and 29 digits); \
                 flowdesk always writes a decimal so, keeping its trailing zeros, and also reads a JSON number \
                 written the same way (`12.50`) exactly, from its text, never through a float. \
                 `boolean`: `true` or `false`. \
                 `date`: a JSON string \"YYYY-MM-DD\", a year from 0001 to 9999. \
                 `datetime`: a JSON string in RFC 3339 such as \"2026-12-06T10:00:00Z\" or \"2026-12-06T11:00:00+01:00\"; \
                 a wall-clock time in the zone it names in brackets (\"2026-12-06T10:00[America/New_York]\"); \
                 or one with neither (\"2026-12-06T10:00\"), read in the process's time zone. Kept to the second, \
                 and always written in UTC (\"2026-12-06T10:00:00Z\"). \
                 Anything else is refused with `invalid_data` naming the field.",
            ))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(
                        "A string, a decimal (\"12.50\"), a date (\"2026-11-25\") or a date-time (\"2026-12-06T10:00:00Z\")",
                    )),
            )
            .item(ObjectBuilder::new().schema_type(Type::Integer).format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))))
            .item(ObjectBuilder::new().schema_type(Type::Boolean))
            .into()
    }
}

impl ToSchema for DataValue {}

/// Reads the `data` object of a request, refusing a field named twice.
/// JSON allows duplicate keys but leaves their meaning open; taking the last
/// one silently would set a value the caller may not have meant.
fn unique_fields<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DataInput, D::Error> {
    struct UniqueFields;

    impl<'de> serde::de::Visitor<'de> for UniqueFields {
        type Value = DataInput;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of data field values")
        }

        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<DataInput, A::Error> {
            let mut fields = DataInput::new();
            while let Some((name, value)) = map.next_entry::<String, Box<RawValue>>()? {
                if fields.contains_key(&name) {
                    return Err(serde::de::Error::custom(format_args!("data field `{name}` is given twice")));
                }
                fields.insert(name, value);
            }
            Ok(fields)
        }
    }

    deserializer.deserialize_map(UniqueFields)
}

fn data_of(fields: &[(String, FieldType, Value)]) -> DataFields {
    fields.iter().map(|(name, _, value)| (name.clone(), value.to_json())).collect()
}

/// One server item.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemDto {
    /// `<instance id>_<activity instance destination id>`.
    #[schema(example = "1042_7")]
    pub serial: String,
    pub instance_id: i64,
    pub process: String,
    pub folio: String,
    pub activity: String,
    pub event: String,
    /// `Pending`, `Finished` or `Cancelled`.
    pub status: String,
    /// RFC 3339.
    pub created_at: String,
    pub closed_at: Option<String>,
    pub closed_by: Option<String>,
    /// RFC 3339: when the item's next deadline (an escalation, or its timer
    /// event's wait) falls due; `null` when none is armed.
    pub due_at: Option<String>,
}

impl From<&ServerItem> for ItemDto {
    fn from(item: &ServerItem) -> ItemDto {
        ItemDto {
            serial: item.serial.to_string(),
            instance_id: item.serial.instance_id,
            process: item.process.clone(),
            folio: item.folio.clone(),
            activity: item.activity.clone(),
            event: item.event.clone(),
            status: item.status.name().to_owned(),
            created_at: rfc3339(item.created_at),
            closed_at: item.closed_at.map(rfc3339),
            closed_by: item.closed_by.clone(),
            due_at: item.due_at.map(rfc3339),
        }
    }
}

/// A page of server items, oldest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ItemList {
    pub items: Vec<ItemDto>,
    /// The serial to pass as `after` for the next page; `null` on the last
    /// page.
    #[schema(example = "1042_7")]
    pub next_after: Option<String>,
}

/// Which server items to list.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    /// `pending` (the default) or `all` (finished and cancelled items too,
    /// in the same oldest-first order).
    pub status: Option<ItemStatusFilter>,
    /// Only items of this process.
    pub process: Option<String>,
    /// Only items of this instance.
    pub instance_id: Option<i64>,
    /// At most this many items.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    pub limit: Option<usize>,
    /// Only items after this one: the previous page's `next_after`.
    /// Items are listed oldest first (by creation time, then serial), pending
    /// and closed alike, and an item keeps its place when it closes, so
    /// paging neither skips nor repeats one.
    #[param(pattern = "^[1-9][0-9]{0,17}_[1-9][0-9]{0,17}$", example = "1042_7")]
    pub after: Option<String>,
    /// `true`: only overdue items, those with a deadline or timer that has
    /// fallen due and not fired yet (their instance is stopped or in error,
    /// or no runtime fired it). The server's clock judges what is due.
    #[param(default = false)]
    pub overdue: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ItemStatusFilter {
    Pending,
    All,
}

/// A data field's name and type.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldDto {
    pub name: String,
    /// `string`, `integer`, `decimal`, `boolean`, `date` or `datetime`.
    #[serde(rename = "type")]
    pub field_type: String,
}

fn fields_of(fields: &[(String, FieldType, Value)]) -> Vec<FieldDto> {
    fields
        .iter()
        .map(|(name, field_type, _)| FieldDto { name: name.clone(), field_type: field_type.name().to_owned() })
        .collect()
}

/// A server item opened for a callback, with its instance's data.
#[derive(Debug, Serialize, ToSchema)]
pub struct OpenedItemDto {
    pub item: ItemDto,
    pub instance: InstanceSummaryDto,
    /// The instance's data field values now.
    #[schema(value_type = BTreeMap<String, DataValue>)]
    pub data: DataFields,
    /// The process's data fields, in design order.
    pub fields: Vec<FieldDto>,
}

impl From<&OpenedItem> for OpenedItemDto {
    fn from(opened: &OpenedItem) -> OpenedItemDto {
        OpenedItemDto {
            item: ItemDto::from(&opened.item),
            instance: InstanceSummaryDto::from(&opened.instance),
            data: data_of(&opened.fields),
            fields: fields_of(&opened.fields),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceSummaryDto {
    pub id: i64,
    pub process: String,
    pub version: u32,
    pub folio: String,
    pub originator: String,
    /// `Running`, `Active`, `Completed`, `Error` or `Stopped`.
    pub status: String,
    pub started_at: String,
    pub updated_at: String,
    /// RFC 3339: when the instance's next deadline (an escalation or a
    /// timer event of one of its pending items) falls due; `null` when none
    /// is armed.
    pub due_at: Option<String>,
    /// The instance whose sub-process (IPC) event started this one; `null`
    /// for an instance a person or system started.
    pub parent_id: Option<i64>,
}

impl From<&InstanceSummary> for InstanceSummaryDto {
    fn from(summary: &InstanceSummary) -> InstanceSummaryDto {
        InstanceSummaryDto {
            id: summary.id,
            process: summary.process.clone(),
            version: summary.version,
            folio: summary.folio.clone(),
            originator: summary.originator.clone(),
            status: summary.status.name().to_owned(),
            started_at: rfc3339(summary.started_at),
            updated_at: rfc3339(summary.updated_at),
            due_at: summary.due_at.map(rfc3339),
            parent_id: summary.parent_id,
        }
    }
}

/// The instance whose sub-process (IPC) event started this one.
#[derive(Debug, Serialize, ToSchema)]
pub struct ParentDto {
    pub id: i64,
    pub process: String,
    pub activity: String,
    pub event: String,
    /// The parent's server item that waits for this instance to complete;
    /// `null` when the parent went on without waiting.
    pub serial: Option<String>,
}

/// An instance one of this instance's sub-process (IPC) events started.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChildDto {
    pub id: i64,
    pub process: String,
    pub version: u32,
    /// Its status now; `null` if it cannot be read.
    pub status: Option<String>,
    /// This instance's server item that waits for it; `null` when it did not wait.
    pub serial: Option<String>,
    pub started_at: String,
}

/// Where an instance stopped on a failure.
#[derive(Debug, Serialize, ToSchema)]
pub struct FailureDto {
    pub activity: String,
    pub event: String,
    pub message: String,
    pub at: String,
}

impl From<&FailureInfo> for FailureDto {
    fn from(failure: &FailureInfo) -> FailureDto {
        FailureDto {
            activity: failure.activity.clone(),
            event: failure.event.clone(),
            message: failure.message.clone(),
            at: rfc3339(failure.at),
        }
    }
}

/// Where an instance is after a call.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProgressDto {
    pub instance_id: i64,
    pub status: String,
    /// Serials the instance now waits on.
    pub waiting: Vec<String>,
    pub error: Option<FailureDto>,
}

impl From<&Progress> for ProgressDto {
    fn from(progress: &Progress) -> ProgressDto {
        ProgressDto {
            instance_id: progress.instance_id,
            status: progress.status.name().to_owned(),
            waiting: progress.waiting.clone(),
            error: progress.failure.as_ref().map(FailureDto::from),
        }
    }
}

/// A callback: data fields to set, then the item is finished.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRequest {
    /// Data fields to set before the item is finished.
    #[serde(default, deserialize_with = "unique_fields")]
    #[schema(value_type = BTreeMap<String, DataValue>)]
    pub data: DataInput,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FinishedDto {
    pub serial: String,
    /// False when the finish was recorded but is applied later: the event
    /// was still sending its request or running its script (an early
    /// callback), or the instance is stopped or in error.
    pub applied: bool,
    pub instance: ProgressDto,
}

/// A bulk callback: the same data fields set on each item, then each
/// finished, as one finish call each would.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkFinishRequest {
    /// The serials of the items to finish, each once (a repeated serial is
    /// answered once). Text that is no serial is answered `invalid_serial`
    /// in its place; the others are finished all the same.
    #[schema(max_items = 1000, example = json!(["1042_7", "1043_7"]))]
    pub serials: Vec<String>,
    /// Data fields to set on each item's instance before its item is finished.
    #[serde(default, deserialize_with = "unique_fields")]
    #[schema(value_type = BTreeMap<String, DataValue>)]
    pub data: DataInput,
}

/// What became of one serial of a bulk finish: what the single finish of
/// that serial would have answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkFinishResult {
    pub serial: String,
    /// The status the single finish would have answered: 200, or its
    /// refusal's (400, 403, 404, 409, 500, 503).
    pub status: u16,
    /// With 200: false when the finish was recorded but is applied later
    /// (the instance is stopped or in error, or its event still runs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub applied: Option<bool>,
    /// With 200: where the instance now stands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<ProgressDto>,
    /// Otherwise: the refusal, with the single finish's `code` and details.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<super::error::ApiErrorBody>,
}

/// The answer to a bulk finish: the counts, and one result per serial in
/// the order sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkFinishedDto {
    /// Serials finished (status 200).
    pub done: usize,
    /// Serials refused (4xx: nothing of them changed).
    pub refused: usize,
    /// Serials the server failed for (5xx: nothing of them changed; call again for those).
    pub failed: usize,
    pub results: Vec<BulkFinishResult>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// A label people use for the instance, such as `PO-1042`: any text
    /// without control characters other than tab and line break.
    #[serde(default)]
    pub folio: String,
    /// Data fields to set; the others keep their defaults.
    #[serde(default, deserialize_with = "unique_fields")]
    #[schema(value_type = BTreeMap<String, DataValue>)]
    pub data: DataInput,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditDto {
    pub at: String,
    pub user: String,
    pub action: String,
    pub detail: String,
    /// The activity the line is about; absent for what happens to the
    /// instance as a whole (started, stopped, data changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub activity: Option<String>,
    /// The event of that activity the line is about; absent when it is
    /// about the activity itself (started, completed, a line's rule).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
}

impl From<&AuditEntry> for AuditDto {
    fn from(entry: &AuditEntry) -> AuditDto {
        let place = entry.place.as_ref();
        AuditDto {
            at: rfc3339(entry.at),
            user: entry.user.clone(),
            action: entry.action.name().to_owned(),
            detail: entry.detail.clone(),
            activity: place.map(|place| place.activity.clone()),
            event: place.map(|place| place.event.clone()).filter(|event| !event.is_empty()),
        }
    }
}

/// One instance: its data, what it waits on, its audit trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstanceDto {
    #[serde(flatten)]
    pub summary: InstanceSummaryDto,
    #[schema(value_type = BTreeMap<String, DataValue>)]
    pub data: DataFields,
    pub fields: Vec<FieldDto>,
    /// Pending server items.
    pub pending: Vec<ItemDto>,
    pub error: Option<FailureDto>,
    /// Set when a sub-process (IPC) event of another instance started this one.
    pub parent: Option<ParentDto>,
    /// The instances its sub-process events started, oldest first.
    pub children: Vec<ChildDto>,
    pub audit: Vec<AuditDto>,
}

impl From<&InstanceDetail> for InstanceDto {
    fn from(detail: &InstanceDetail) -> InstanceDto {
        InstanceDto {
            summary: InstanceSummaryDto::from(&detail.summary),
            data: data_of(&detail.fields),
            fields: fields_of(&detail.fields),
            pending: detail.pending_items.iter().map(ItemDto::from).collect(),
            error: detail.failure.as_ref().map(FailureDto::from),
            parent: detail.parent.as_ref().map(|p| ParentDto {
                id: p.instance_id,
                process: p.process.clone(),
                activity: p.activity.clone(),
                event: p.event.clone(),
                serial: p.serial().map(|s| s.to_string()),
            }),
            children: detail
                .children
                .iter()
                .map(|c| ChildDto {
                    id: c.link.instance_id,
                    process: c.link.process.clone(),
                    version: c.link.version,
                    status: c.summary.as_ref().map(|s| s.status.name().to_owned()),
                    serial: c.link.serial_id.map(|id| format!("{}_{id}", detail.summary.id)),
                    started_at: rfc3339(c.link.started_at),
                })
                .collect(),
            audit: detail.audit.iter().map(AuditDto::from).collect(),
        }
    }
}
