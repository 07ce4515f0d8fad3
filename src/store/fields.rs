//! Searchable data fields: the partial expression indexes that let the
//! instance list find a process's instances by a field's value without
//! reading every instance (issue 18, "Find anything").
//!
//! A field marked searchable in a deployed version gets, at that deploy,
//! one index per (process, field, type): on the field's stored value,
//! `json_extract(data, '$."amount"."Integer"')` (a value is stored as
//! serde's tagged JSON, `{"Integer":5}`), limited to the process's rows by
//! `WHERE process = '…'`. Table `field_indexes` records each, so that a
//! query knows which exist without asking SQLite's schema.
//!
//! A query uses one by adding the index's exact expression, compared with
//! the condition's value, as a **necessary** condition beside
//! `flowdesk_field_matches` (which stays: the result is what the field
//! test says, whatever the index holds), and the process as a literal, the
//! only form in which SQLite proves a partial index applies. The
//! comparison is necessary because the searchable types' stored forms
//! sort as their values do (`FieldType::unsearchable_because`): every
//! value the test accepts passes it.
//!
//! Names become SQL text here, never anything else: a process name as a
//! quoted literal (`'` doubled), a field name only when it is an
//! identifier (validation allows no other), an index's name from its row's
//! number.

use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension, params};

use crate::engine::FieldCondition;
use crate::model::{FieldType, Value};

/// The tag serde gives a value of `field_type` in the stored form, when
/// the type can be searchable.
fn stored_tag(field_type: FieldType) -> Option<&'static str> {
    if field_type.unsearchable_because().is_some() {
        return None;
    }
    Some(match field_type {
        FieldType::String => "String",
        FieldType::Integer => "Integer",
        FieldType::Decimal => "Decimal",
        FieldType::Boolean => "Boolean",
        FieldType::Date => "Date",
        FieldType::DateTime => "DateTime",
    })
}

/// `text` as an SQL string literal.
pub(super) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The indexed expression of a field of `field_type`: its stored value as
/// SQLite sees it (text, an integer, 0 or 1). `None` when the field cannot
/// be searchable.
pub(super) fn expression(field: &str, field_type: FieldType) -> Option<String> {
    let tag = stored_tag(field_type)?;
    crate::model::validate::is_identifier(field).then(|| format!("json_extract(data, '$.\"{field}\".\"{tag}\"')"))
}

/// Why a field index cannot be made.
#[derive(Debug, thiserror::Error)]
pub(super) enum FieldIndexError {
    #[error("field `{field}` of type {field_type} cannot be searchable")]
    Unsearchable { field: String, field_type: FieldType },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Makes sure `process`'s instances are indexed by `field`'s value:
/// records and builds the index if it is missing (reading every instance
/// of the process once). Whether it was built now.
pub(super) fn ensure(
    connection: &Connection,
    process: &str,
    field: &str,
    field_type: FieldType,
) -> Result<bool, FieldIndexError> {
    let unsearchable = || FieldIndexError::Unsearchable { field: field.to_owned(), field_type };
    let expression = expression(field, field_type).ok_or_else(unsearchable)?;
    let known: Option<i64> = connection
        .prepare_cached("SELECT id FROM field_indexes WHERE process = ? AND field = ? AND field_type = ?")?
        .query_row(params![process, field, field_type.name()], |row| row.get(0))
        .optional()?;
    if known.is_some() {
        return Ok(false);
    }
    connection.execute(
        "INSERT INTO field_indexes (process, field, field_type) VALUES (?, ?, ?)",
        params![process, field, field_type.name()],
    )?;
    let id = connection.last_insert_rowid();
    connection.execute_batch(&format!(
        "CREATE INDEX IF NOT EXISTS instances_by_field_{id} ON instances({expression}) WHERE process = {}",
        literal(process)
    ))?;
    Ok(true)
}

/// For each condition of a filter on `process`, whether an index of its
/// field, for the type the condition was read for, exists.
pub(super) fn indexed(
    connection: &Connection,
    process: Option<&str>,
    conditions: &[FieldCondition],
) -> rusqlite::Result<Vec<bool>> {
    let Some(process) = process else { return Ok(vec![false; conditions.len()]) };
    let mut statement =
        connection.prepare_cached("SELECT 1 FROM field_indexes WHERE process = ? AND field = ? AND field_type = ?")?;
    conditions
        .iter()
        .map(|condition| match &condition.test {
            Some(test) if test.op.index_serves() => {
                statement.exists(params![process, condition.field, test.value.0.field_type().name()])
            }
            _ => Ok(false),
        })
        .collect()
}

/// How many candidates a page's condition may have before the page walks
/// the order's index instead of the field's (see [`dense`]). A page from
/// the field's index reads each candidate's row; a walk of the order's
/// index reads about `200 × instances / matches` rows: at a million
/// instances the two cost alike near 14,000 matches. Below that the field's
/// index wins, and the probe itself reads at most this many rows (SQLite
/// reads the row of an expression index's entry, so it is no index-only
/// count).
pub(super) const DENSE: i64 = 10_000;

/// Whether at least [`DENSE`] instances of `process` pass `condition`'s
/// necessary condition, told from the field's index alone (no row read).
/// A page of such a condition is found faster by walking the order's
/// index, which stops once the page is full, than from the field's index,
/// whose matches must all be read and sorted first: the page then does
/// what it did before fields were searchable.
pub(super) fn dense(connection: &Connection, process: &str, condition: &FieldCondition) -> rusqlite::Result<bool> {
    let Some((sql, value)) = dense_query(process, condition) else { return Ok(false) };
    let candidates: i64 = connection.prepare_cached(&sql)?.query_row([value], |row| row.get(0))?;
    Ok(candidates >= DENSE)
}

/// [`dense`]'s query and its argument.
pub(super) fn dense_query(process: &str, condition: &FieldCondition) -> Option<(String, SqlValue)> {
    let (necessary, value) = necessary_condition(condition)?;
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM instances WHERE process = {} AND {necessary} LIMIT {DENSE})",
        literal(process)
    );
    Some((sql, value))
}

/// How likely the planner is told a searchable field's condition is.
const SELECTIVITY: &str = "0.000001";

/// The necessary condition on an indexed field's value, `expression op ?`,
/// and its argument: the value in its stored form. `None` when the
/// condition has no test, an operator no index serves, or a type that
/// cannot be searchable.
pub(super) fn necessary_condition(condition: &FieldCondition) -> Option<(String, SqlValue)> {
    let test = condition.test.as_ref()?;
    if !test.op.index_serves() {
        return None;
    }
    let value = &test.value.0;
    let expression = expression(&condition.field, value.field_type())?;
    let argument = stored_value(value)?;
    // Without statistics SQLite takes a range for a quarter of the table
    // and `process = ?` for a few rows, and would walk the process's
    // index; the likelihood says what the designer said by marking the
    // field searchable: its conditions are the ones that narrow.
    Some((format!("likelihood({expression} {} ?, {SELECTIVITY})", test.op.symbol()), argument))
}

/// A value as `json_extract` reads it from its stored form: taken from the
/// stored form itself, so that the two cannot differ.
fn stored_value(value: &Value) -> Option<SqlValue> {
    let serde_json::Value::Object(tagged) = serde_json::to_value(value).ok()? else { return None };
    match tagged.into_iter().next()?.1 {
        serde_json::Value::String(text) => Some(SqlValue::Text(text)),
        serde_json::Value::Bool(b) => Some(SqlValue::Integer(i64::from(b))),
        serde_json::Value::Number(n) => n.as_i64().map(SqlValue::Integer),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_sql_text_only_as_literals_or_identifiers() {
        assert_eq!(literal("x'); DROP TABLE instances; --"), "'x''); DROP TABLE instances; --'");
        assert_eq!(
            expression("amount", FieldType::Integer).as_deref(),
            Some(r#"json_extract(data, '$."amount"."Integer"')"#)
        );
        assert_eq!(expression("a\"b", FieldType::Integer), None, "not an identifier");
        assert_eq!(expression("a'b", FieldType::String), None);
        assert_eq!(expression("amount", FieldType::Decimal), None, "a decimal cannot be searchable");
    }

    #[test]
    fn a_value_is_compared_in_its_stored_form() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 12, 6).unwrap();
        assert_eq!(stored_value(&Value::Date(date)), Some(SqlValue::Text("2026-12-06".to_owned())));
        assert_eq!(stored_value(&Value::Boolean(true)), Some(SqlValue::Integer(1)));
        assert_eq!(stored_value(&Value::Integer(i64::MIN)), Some(SqlValue::Integer(i64::MIN)));
        assert_eq!(stored_value(&Value::String("x'".to_owned())), Some(SqlValue::Text("x'".to_owned())));
    }
}
