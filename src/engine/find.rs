//! Finding instances: the instance list's filters beyond process and status.
//!
//! A data-field condition (`amount > 100`, `name = "x"`, `done = true`) is
//! parsed here from what a person typed ([`FieldCondition::parse`]), read
//! for its field's type by the engine ([`FieldCondition::typed_for`]) and
//! judged on a stored value by [`FieldTest::matches`], the one meaning every
//! store applies (the SQLite store calls it from an SQL function of its
//! own, the memory store directly). The operators a type takes are those
//! that mean something for it: `=` `!=` `<` `<=` `>` `>=` for numbers,
//! dates and date-times, `=` `!=` and `contains` (ignoring case, as the
//! searches do) for text, `=` `!=` for booleans. The value is data, never
//! code: `name = "x' OR 1=1"` looks for that text.
//!
//! A time range ([`TimeRange`]) bounds when instances started or ended;
//! [`parse_instant`] reads the dates and date-times people type for it.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};
use unicase::UniCase;

use crate::engine::{Engine, EngineError, InstanceFilter, InstanceSummary, Millis, Storage, Transaction};
use crate::model::{FieldType, ProcessZone, Value};

/// `needle` as [`contains_ignoring_case`] takes it: case-folded, once per
/// search rather than once per row.
pub fn fold(needle: &str) -> String {
    UniCase::new(needle).to_folded_case()
}

/// Whether `text` contains `needle` (already [`fold`]ed), ignoring case in
/// all of Unicode: what every search of flowdesk means (server items, folios,
/// a `contains` field filter), in every store.
///
/// Both sides are compared in Unicode's case folding, as its caseless
/// matching does: lower case would make the last `Σ` of a typed word a final
/// `ς`, and keep `ß` apart from `SS`. The SQLite store calls it from an SQL
/// function of its own (SQLite's `lower()` and `LIKE` fold ASCII letters
/// only), the memory store directly; so both answer a search alike.
pub fn contains_ignoring_case(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if text.is_ascii() {
        // ASCII text has an ASCII lower case: compare in place, without
        // allocating, which is what almost every row is.
        needle.is_ascii()
            && text.as_bytes().windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
    } else {
        UniCase::unicode(text).to_folded_case().contains(needle)
    }
}

/// Why a filter cannot be used: what is wrong, in words naming the part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("empty field filter: write FIELD OPERATOR VALUE, e.g. amount > 100")]
    Empty,
    #[error("field filter `{text}` has no operator: write FIELD OPERATOR VALUE with one of = != < <= > >= contains")]
    NoOperator { text: String },
    #[error("field filter `{text}` names no field before its operator")]
    NoField { text: String },
    #[error("field filter `{text}`: `{field}` is not a field name (letters, digits and _, not starting with a digit)")]
    BadFieldName { text: String, field: String },
    #[error("field filter `{text}` has no value after its operator")]
    NoValue { text: String },
    #[error("field filter `{text}`: the value's closing quote is missing")]
    UnclosedQuote { text: String },
    #[error("a field filter needs a process: choose the process whose field `{field}` is meant")]
    FieldNeedsProcess { field: String },
    #[error("a version filter needs a process: choose the process whose version {version} is meant")]
    VersionNeedsProcess { version: u32 },
    #[error("process `{process}` has no field `{field}`")]
    UnknownField { process: String, field: String },
    #[error("field `{field}` is a {} field: `{op}` does not apply to it (use {})", field_type.name(), Comparison::names_for(*field_type))]
    OperatorNotFor { field: String, op: Comparison, field_type: FieldType },
    #[error("field filter on `{field}`: {reason}")]
    BadValue { field: String, reason: String },
    #[error("`{text}` is not a date or date-time: write YYYY-MM-DD, YYYY-MM-DD HH:MM (UTC) or RFC 3339")]
    BadInstant { text: String },
}

/// How a field's value is compared with the filter's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Comparison {
    Equal,
    NotEqual,
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    /// Text containing the value, ignoring case.
    Contains,
}

impl Comparison {
    pub const ALL: [Comparison; 7] = [
        Comparison::Equal,
        Comparison::NotEqual,
        Comparison::Less,
        Comparison::LessOrEqual,
        Comparison::Greater,
        Comparison::GreaterOrEqual,
        Comparison::Contains,
    ];

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Equal => "=",
            Comparison::NotEqual => "!=",
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Contains => "contains",
        }
    }

    /// Whether a field of `field_type` can be compared this way.
    pub fn applies_to(self, field_type: FieldType) -> bool {
        match field_type {
            FieldType::Integer | FieldType::Decimal | FieldType::Date | FieldType::DateTime => {
                self != Comparison::Contains
            }
            FieldType::String => matches!(self, Comparison::Equal | Comparison::NotEqual | Comparison::Contains),
            FieldType::Boolean => matches!(self, Comparison::Equal | Comparison::NotEqual),
        }
    }

    /// Whether an index of a searchable field answers this comparison: a
    /// point or a range of its order. `!=` and `contains` would read most
    /// of the index anyway, so they read the instances.
    pub fn index_serves(self) -> bool {
        matches!(
            self,
            Comparison::Equal
                | Comparison::Less
                | Comparison::LessOrEqual
                | Comparison::Greater
                | Comparison::GreaterOrEqual
        )
    }

    /// The operators a type takes, for a message and the filter bar's menu.
    pub fn for_type(field_type: FieldType) -> impl Iterator<Item = Comparison> {
        Comparison::ALL.into_iter().filter(move |op| op.applies_to(field_type))
    }

    fn names_for(field_type: FieldType) -> String {
        Comparison::for_type(field_type).map(Comparison::symbol).collect::<Vec<_>>().join(" ")
    }
}

impl std::fmt::Display for Comparison {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.symbol())
    }
}

/// One condition on a data field, as a person wrote it, and once the
/// engine has read it for the field's type, its typed form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldCondition {
    pub field: String,
    pub op: Comparison,
    /// The value as typed (quotes taken off).
    pub value: String,
    /// Set by the engine from the process's field type; what a front end
    /// puts here is replaced.
    #[serde(skip)]
    pub test: Option<FieldTest>,
}

impl FieldCondition {
    pub fn new(field: &str, op: Comparison, value: &str) -> FieldCondition {
        FieldCondition { field: field.to_owned(), op, value: value.to_owned(), test: None }
    }

    /// Reads `FIELD OPERATOR VALUE`: the operator one of `=` (or `==`),
    /// `!=` (or `<>`), `<`, `<=`, `>`, `>=`, `contains`; the value the rest
    /// of the text, trimmed, or a text in double quotes (`\"` and `\\`
    /// inside) when it is quoted.
    pub fn parse(text: &str) -> Result<FieldCondition, FilterError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(FilterError::Empty);
        }
        let owned = || trimmed.to_owned();
        // The field runs to the first character that cannot be in a name.
        let name_end = trimmed.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(trimmed.len());
        let field = &trimmed[..name_end];
        let rest = trimmed[name_end..].trim_start();
        if field.is_empty() {
            return Err(if rest.starts_with(['=', '!', '<', '>']) {
                FilterError::NoField { text: owned() }
            } else {
                FilterError::BadFieldName {
                    text: owned(),
                    field: rest.split_whitespace().next().unwrap_or("").to_owned(),
                }
            });
        }
        if field.starts_with(|c: char| c.is_ascii_digit()) || !field.is_ascii() {
            return Err(FilterError::BadFieldName { text: owned(), field: field.to_owned() });
        }
        const OPERATORS: [(&str, Comparison); 9] = [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("!=", Comparison::NotEqual),
            ("<>", Comparison::NotEqual),
            ("==", Comparison::Equal),
            ("=", Comparison::Equal),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
            ("contains", Comparison::Contains),
        ];
        let lower = rest.to_ascii_lowercase();
        let (op, after) = OPERATORS
            .iter()
            .find(|(symbol, op)| {
                lower.starts_with(symbol)
                    // `contains` is a word: `containsx` is no operator.
                    && (*op != Comparison::Contains
                        || rest[symbol.len()..].starts_with(char::is_whitespace)
                        || rest[symbol.len()..].starts_with('"'))
            })
            .map(|(symbol, op)| (*op, &rest[symbol.len()..]))
            .ok_or_else(|| FilterError::NoOperator { text: owned() })?;
        let value = after.trim();
        if value.is_empty() {
            return Err(FilterError::NoValue { text: owned() });
        }
        let value = match value.strip_prefix('"') {
            Some(quoted) => unquote(quoted).ok_or_else(|| FilterError::UnclosedQuote { text: owned() })?,
            None => value.to_owned(),
        };
        Ok(FieldCondition::new(field, op, &value))
    }

    /// The condition read for a field of `field_type` (in `zone` for a
    /// date-time without an offset): refused when the operator does not
    /// apply to the type or the value is not one of it.
    pub fn typed_for(&self, field_type: FieldType, zone: &ProcessZone) -> Result<FieldTest, FilterError> {
        if !self.op.applies_to(field_type) {
            return Err(FilterError::OperatorNotFor { field: self.field.clone(), op: self.op, field_type });
        }
        let value = if self.op == Comparison::Contains {
            Value::String(fold(&self.value))
        } else {
            Value::parse(field_type, &self.value, zone)
                .map_err(|e| FilterError::BadValue { field: self.field.clone(), reason: e.to_string() })?
        };
        Ok(FieldTest { op: self.op, value: Operand(value) })
    }
}

impl std::fmt::Display for FieldCondition {
    /// As [`FieldCondition::parse`] reads it back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {}", self.field, self.op, serde_json::Value::String(self.value.clone()))
    }
}

/// The text inside double quotes, `\"` and `\\` read as escapes; `None`
/// when the closing quote is missing or text follows it.
fn unquote(quoted: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return chars.as_str().trim().is_empty().then_some(out),
            c => out.push(c),
        }
    }
    None
}

/// A condition read for its field's type: what a store applies to each
/// instance's stored value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldTest {
    pub op: Comparison,
    /// For `contains`, the text already case-folded.
    pub value: Operand,
}

impl FieldTest {
    /// Whether a stored value passes. A value of another type (the field
    /// changed type in another version) or no value at all never does,
    /// whatever the operator.
    pub fn matches(&self, stored: Option<&Value>) -> bool {
        let Some(stored) = stored else { return false };
        if self.op == Comparison::Contains {
            return match (stored, &self.value.0) {
                (Value::String(text), Value::String(needle)) => contains_ignoring_case(text, needle),
                _ => false,
            };
        }
        let ordering = match (stored, &self.value.0) {
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (Value::Integer(a), Value::Integer(b)) => a.cmp(b),
            (Value::Decimal(a), Value::Decimal(b)) => a.cmp(b),
            (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
            (Value::Date(a), Value::Date(b)) => a.cmp(b),
            (Value::DateTime(a), Value::DateTime(b)) => a.cmp(b),
            _ => return false,
        };
        match self.op {
            Comparison::Equal => ordering == Ordering::Equal,
            Comparison::NotEqual => ordering != Ordering::Equal,
            Comparison::Less => ordering == Ordering::Less,
            Comparison::LessOrEqual => ordering != Ordering::Greater,
            Comparison::Greater => ordering == Ordering::Greater,
            Comparison::GreaterOrEqual => ordering != Ordering::Less,
            Comparison::Contains => false,
        }
    }
}

/// A filter's value, compared and hashed as values compare (`1.0` equals
/// `1.00`), so that a filter can key the monitor's caches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Operand(pub Value);

// Values hold no NaN (decimals are exact): equality is an equivalence.
impl Eq for Operand {}

impl Hash for Operand {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match &self.0 {
            Value::String(s) => s.hash(state),
            Value::Integer(i) => i.hash(state),
            // `Decimal`'s hash agrees with its equality (scale ignored).
            Value::Decimal(d) => d.hash(state),
            Value::Boolean(b) => b.hash(state),
            Value::Date(d) => d.hash(state),
            Value::DateTime(at) => at.hash(state),
        }
    }
}

impl InstanceFilter {
    /// Refuses a filter holding a field condition the engine has not read
    /// for its field's type: a store answers only filters the engine checked.
    pub fn check_fields_read(&self) -> Result<(), EngineError> {
        match self.fields.iter().find(|condition| condition.test.is_none()) {
            Some(condition) => {
                Err(EngineError::Internal(format!("the field condition `{condition}` reached the store unchecked")))
            }
            None => Ok(()),
        }
    }
}

/// A span of time: from `after` (included) to `before` (excluded), either
/// end open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeRange {
    pub after: Option<Millis>,
    pub before: Option<Millis>,
}

impl TimeRange {
    pub fn is_open(&self) -> bool {
        self.after.is_none() && self.before.is_none()
    }

    pub fn contains(&self, at: Millis) -> bool {
        self.after.is_none_or(|after| at >= after) && self.before.is_none_or(|before| at < before)
    }
}

/// Reads a moment typed for a date range: `YYYY-MM-DD` (its midnight),
/// `YYYY-MM-DD HH:MM[:SS]` (both in UTC), or RFC 3339 with an offset.
pub fn parse_instant(text: &str) -> Result<Millis, FilterError> {
    let trimmed = text.trim();
    let bad = || FilterError::BadInstant { text: trimmed.to_owned() };
    let utc = ProcessZone::utc();
    let value = Value::parse(FieldType::Date, trimmed, &utc)
        .or_else(|_| Value::parse(FieldType::DateTime, trimmed, &utc))
        .map_err(|_| bad())?;
    match value {
        Value::Date(date) => date.and_hms_opt(0, 0, 0).map(|at| at.and_utc().timestamp_millis()).ok_or_else(bad),
        Value::DateTime(at) => Ok(at.timestamp_millis()),
        _ => Err(bad()),
    }
}

impl<S: Storage> Engine<S> {
    /// What a filter's field conditions cost, in a person's words, for the
    /// place where they are typed: a note for each condition that reads
    /// every instance of the process, because its field is not searchable
    /// in the process's default version or its operator is one no index
    /// serves. Empty where every condition is served, or the filter names
    /// no process or no field the process has (the query then says what
    /// is wrong).
    pub fn slow_field_notes(&self, filter: &InstanceFilter) -> Vec<String> {
        let Some(process) = filter.process.as_deref() else { return Vec::new() };
        if filter.fields.is_empty() {
            return Vec::new();
        }
        let Ok(compiled) = self.definition(process) else { return Vec::new() };
        let mut notes = Vec::new();
        for condition in &filter.fields {
            let Some(field) = compiled.draft.fields.iter().find(|f| f.name == condition.field) else { continue };
            let Some(field_type) = compiled.field_types.get(&condition.field) else { continue };
            if condition.typed_for(*field_type, &compiled.time_zone).is_err() {
                // Refused: the query says why, and that is all there is to say.
                continue;
            }
            let name = &condition.field;
            let note = if !field.searchable {
                match field_type.unsearchable_because() {
                    Some(_) => format!(
                        "{name} is a {field_type} field, which cannot be searchable: this reads every instance of the process"
                    ),
                    None => format!("{name} is not searchable: this reads every instance of the process"),
                }
            } else if !condition.op.index_serves() {
                format!(
                    "{name} is searchable, but its index serves = < <= > >= only: `{}` reads every instance of the process",
                    condition.op
                )
            } else {
                continue;
            };
            notes.push(note);
        }
        notes
    }

    /// `filter` as a store takes it: `now` from the engine's clock, and each
    /// field condition read for its field's type in the filtered process
    /// (its version, or else its default one).
    pub(super) fn checked_filter(
        &self,
        tx: &mut dyn Transaction,
        filter: &InstanceFilter,
    ) -> Result<InstanceFilter, EngineError> {
        let mut filter = InstanceFilter { now: self.now(), active_at: Vec::new(), ..filter.clone() };
        // An activity filter lists the instances at work there too, which
        // only their flow says: found here, named to the store by id.
        if let (Some(process), Some(version), Some(activity)) = (&filter.process, filter.version, &filter.activity)
            && tx.version(process, version)?.is_some()
        {
            let active = self.active_at(tx, process, version)?;
            filter.active_at = active.into_iter().filter(|(name, _)| name == activity).map(|(_, id)| id).collect();
        }
        let Some(process) = filter.process.clone() else {
            if let Some(version) = filter.version {
                return Err(FilterError::VersionNeedsProcess { version }.into());
            }
            if let Some(condition) = filter.fields.first() {
                return Err(FilterError::FieldNeedsProcess { field: condition.field.clone() }.into());
            }
            return Ok(filter);
        };
        if filter.fields.is_empty() {
            return Ok(filter);
        }
        // The fields of the version asked for, or of the default one when
        // none is asked or it does not exist (no instance then matches).
        let default =
            tx.default_version(&process)?.ok_or_else(|| EngineError::ProcessNotFound { name: process.clone() })?;
        let version = match filter.version {
            Some(version) if tx.version(&process, version)?.is_some() => version,
            _ => default,
        };
        let compiled = self.compiled(tx, &process, version)?;
        for condition in &mut filter.fields {
            let field_type = *compiled.field_types.get(&condition.field).ok_or_else(|| FilterError::UnknownField {
                process: process.clone(),
                field: condition.field.clone(),
            })?;
            condition.test = Some(condition.typed_for(field_type, &compiled.time_zone)?);
        }
        Ok(filter)
    }

    /// Writes every instance of `filter` the user may see (not one page:
    /// `limit` and `offset` are ignored) as CSV to `out`, in the filter's
    /// order, all read from one snapshot; returns how many rows it wrote.
    /// See [`write_csv`] for the columns and the cells' escaping.
    pub fn export_instances(
        &self,
        user: &str,
        filter: &InstanceFilter,
        out: &mut dyn std::io::Write,
    ) -> Result<u64, ExportError> {
        let mut csv = CsvRows::new(out)?;
        let read = self.store.read(|tx| {
            let filter = self.checked_filter(tx, filter)?;
            let visibility = self.visibility(tx, user)?;
            // In chunks, so that a million rows are never held at once.
            let mut offset = 0;
            loop {
                let chunk = InstanceFilter { limit: EXPORT_CHUNK, offset, ..filter.clone() };
                let rows = tx.instances(&visibility, &chunk)?;
                for row in &rows {
                    if let Err(error) = csv.row(row) {
                        return Ok(Err(error));
                    }
                }
                if rows.len() < EXPORT_CHUNK {
                    return Ok(Ok(()));
                }
                offset += EXPORT_CHUNK;
            }
        });
        read??;
        csv.finish()
    }
}

/// Rows read per query of an export.
const EXPORT_CHUNK: usize = 20_000;

/// Why an export stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("could not write the CSV: {0}")]
    Write(#[from] csv::Error),
}

/// The CSV columns of an exported instance list.
pub const CSV_HEADER: [&str; 9] =
    ["id", "folio", "process", "version", "status", "originator", "started", "last_change", "due"];

/// Writes instance rows as CSV (RFC 4180, through the `csv` crate: a cell
/// with a comma, quote or line break is quoted, quotes doubled), times in
/// RFC 3339 UTC. A text cell that a spreadsheet would take for a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a
/// `'` in front, as OWASP's advice on CSV injection says: a folio
/// `=HYPERLINK(...)` is shown as text, never run.
pub fn write_csv(rows: &[InstanceSummary], out: &mut dyn std::io::Write) -> Result<u64, csv::Error> {
    let mut csv = CsvRows::new(out)?;
    for row in rows {
        csv.row(row)?;
    }
    csv.finish().map_err(|e| match e {
        ExportError::Write(e) => e,
        ExportError::Engine(e) => csv::Error::from(std::io::Error::other(e.to_string())),
    })
}

struct CsvRows<'a> {
    writer: csv::Writer<&'a mut dyn std::io::Write>,
    rows: u64,
}

impl<'a> CsvRows<'a> {
    fn new(out: &'a mut dyn std::io::Write) -> Result<CsvRows<'a>, csv::Error> {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(CSV_HEADER)?;
        Ok(CsvRows { writer, rows: 0 })
    }

    fn row(&mut self, row: &InstanceSummary) -> Result<(), csv::Error> {
        let time = |at: Millis| {
            chrono::DateTime::from_timestamp_millis(at)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
                .unwrap_or_default()
        };
        self.writer.write_record([
            row.id.to_string(),
            spreadsheet_safe(&row.folio),
            spreadsheet_safe(&row.process),
            row.version.to_string(),
            row.status.name().to_owned(),
            spreadsheet_safe(&row.originator),
            time(row.started_at),
            time(row.updated_at),
            row.due_at.map(time).unwrap_or_default(),
        ])?;
        self.rows += 1;
        Ok(())
    }

    fn finish(mut self) -> Result<u64, ExportError> {
        self.writer.flush().map_err(csv::Error::from)?;
        Ok(self.rows)
    }
}

/// A text cell as a spreadsheet must not run it (OWASP, CSV injection).
pub fn spreadsheet_safe(text: &str) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(text: &str, field_type: FieldType) -> Result<FieldTest, FilterError> {
        FieldCondition::parse(text)?.typed_for(field_type, &ProcessZone::utc())
    }

    #[test]
    fn conditions_parse_with_every_operator_and_quoted_values() {
        let cases = [
            ("amount > 100", ("amount", Comparison::Greater, "100")),
            ("amount>=100", ("amount", Comparison::GreaterOrEqual, "100")),
            (" name = \"x\" ", ("name", Comparison::Equal, "x")),
            ("name == x y", ("name", Comparison::Equal, "x y")),
            ("name != \"say \\\"hi\\\"\"", ("name", Comparison::NotEqual, "say \"hi\"")),
            ("name <> x", ("name", Comparison::NotEqual, "x")),
            ("d < 2026-12-01", ("d", Comparison::Less, "2026-12-01")),
            ("d <= 2026-12-01", ("d", Comparison::LessOrEqual, "2026-12-01")),
            ("name CONTAINS über", ("name", Comparison::Contains, "über")),
            ("name contains \"x' OR 1=1 --\"", ("name", Comparison::Contains, "x' OR 1=1 --")),
        ];
        for (text, (field, op, value)) in cases {
            assert_eq!(FieldCondition::parse(text), Ok(FieldCondition::new(field, op, value)), "{text}");
        }
    }

    #[test]
    fn a_malformed_condition_says_what_is_wrong() {
        type Expected = fn(&FilterError) -> bool;
        let cases: [(&str, Expected); 7] = [
            ("", |e| matches!(e, FilterError::Empty)),
            ("amount 100", |e| matches!(e, FilterError::NoOperator { .. })),
            ("= 3", |e| matches!(e, FilterError::NoField { .. })),
            ("amount >", |e| matches!(e, FilterError::NoValue { .. })),
            ("name = \"open", |e| matches!(e, FilterError::UnclosedQuote { .. })),
            ("9lives = 1", |e| matches!(e, FilterError::BadFieldName { .. })),
            ("name containsx", |e| matches!(e, FilterError::NoOperator { .. })),
        ];
        for (text, expected) in cases {
            let error = FieldCondition::parse(text).unwrap_err();
            assert!(expected(&error), "{text}: {error}");
        }
    }

    #[test]
    fn operators_apply_by_type_and_values_are_read_for_it() {
        assert!(matches!(typed("done > true", FieldType::Boolean), Err(FilterError::OperatorNotFor { .. })));
        assert!(matches!(typed("name < x", FieldType::String), Err(FilterError::OperatorNotFor { .. })));
        assert!(matches!(typed("amount contains 1", FieldType::Integer), Err(FilterError::OperatorNotFor { .. })));
        let error = typed("amount > lots", FieldType::Integer).unwrap_err();
        assert!(error.to_string().contains("amount") && error.to_string().contains("integer"), "{error}");
        let message = typed("done < 1", FieldType::Boolean).unwrap_err().to_string();
        assert_eq!(message, "field `done` is a boolean field: `<` does not apply to it (use = !=)");
    }

    #[test]
    fn tests_compare_values_of_their_type_only() {
        let over = typed("amount > 100", FieldType::Decimal).unwrap();
        assert!(over.matches(Some(&Value::Decimal("100.01".parse().unwrap()))));
        assert!(!over.matches(Some(&Value::Decimal("100.00".parse().unwrap()))));
        assert!(!over.matches(Some(&Value::Integer(500))), "another type never matches");
        assert!(!over.matches(None));
        let not = typed("name != x", FieldType::String).unwrap();
        assert!(not.matches(Some(&Value::String("y".into()))) && !not.matches(None));
        let contains = typed("name contains ÜBER", FieldType::String).unwrap();
        assert!(contains.matches(Some(&Value::String("Rechnung über 5".into()))));
        let day = typed("d >= 2026-12-01", FieldType::Date).unwrap();
        assert!(day.matches(Some(&Value::Date("2026-12-01".parse().unwrap()))));
        let done = typed("done = yes", FieldType::Boolean).unwrap();
        assert!(done.matches(Some(&Value::Boolean(true))));
    }

    #[test]
    fn equal_decimals_make_equal_filters() {
        let a = typed("amount = 1.0", FieldType::Decimal).unwrap();
        let b = typed("amount = 1.00", FieldType::Decimal).unwrap();
        let hash = |t: &FieldTest| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            t.hash(&mut h);
            h.finish()
        };
        assert_eq!(a, b);
        assert_eq!(hash(&a), hash(&b));
    }

    #[test]
    fn instants_are_dates_or_date_times() {
        assert_eq!(parse_instant("1970-01-02"), Ok(86_400_000));
        assert_eq!(parse_instant("1970-01-01 00:01"), Ok(60_000));
        assert_eq!(parse_instant("1970-01-01T01:00:00+01:00"), Ok(0));
        assert!(matches!(parse_instant("yesterday"), Err(FilterError::BadInstant { .. })));
    }
}
