//! Typed data-field values.
//!
//! A process declares its data fields with one of five types. Values cross three
//! borders: process files and the database (JSON), the command line (`FIELD=VALUE`
//! text) and scripts (Rhai `Dynamic`). Each conversion lives here so that every
//! front end type-checks a value the same way and names the field when it fails.

use std::fmt;

use chrono::NaiveDate;
use rhai::Dynamic;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The type of a process data field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Integer,
    Decimal,
    Boolean,
    Date,
}

impl FieldType {
    pub const ALL: [FieldType; 5] =
        [FieldType::String, FieldType::Integer, FieldType::Decimal, FieldType::Boolean, FieldType::Date];

    /// The name used in process files and messages (`string`, `integer`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
        }
    }

    pub fn from_name(name: &str) -> Option<FieldType> {
        FieldType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The value a field of this type holds when the process gives no default.
    pub fn zero_value(self) -> Value {
        match self {
            FieldType::String => Value::String(String::new()),
            FieldType::Integer => Value::Integer(0),
            FieldType::Decimal => Value::Decimal(Decimal::ZERO),
            FieldType::Boolean => Value::Boolean(false),
            // 1970-01-01 always exists, so this cannot fail.
            FieldType::Date => Value::Date(NaiveDate::default()),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A data-field value of one of the five field types. The serde form (tagged
/// by type) is the storage form; [`Value::to_json`] is the form users read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    String(String),
    Integer(i64),
    Decimal(Decimal),
    Boolean(bool),
    Date(NaiveDate),
}

/// Why a value does not fit a field type. The caller adds the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
pub struct TypeMismatch {
    pub expected: FieldType,
    pub got: String,
}

impl Value {
    pub fn field_type(&self) -> FieldType {
        match self {
            Value::String(_) => FieldType::String,
            Value::Integer(_) => FieldType::Integer,
            Value::Decimal(_) => FieldType::Decimal,
            Value::Boolean(_) => FieldType::Boolean,
            Value::Date(_) => FieldType::Date,
        }
    }

    /// Parses the text a user typed (`--set FIELD=VALUE`, a GUI input box).
    pub fn parse(field_type: FieldType, text: &str) -> Result<Value, TypeMismatch> {
        let mismatch = || TypeMismatch { expected: field_type, got: format!("{text:?}") };
        let trimmed = text.trim();
        match field_type {
            FieldType::String => Ok(Value::String(text.to_owned())),
            FieldType::Integer => trimmed.parse().map(Value::Integer).map_err(|_| mismatch()),
            FieldType::Decimal => trimmed.parse().map(Value::Decimal).map_err(|_| mismatch()),
            FieldType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(Value::Boolean(true)),
                "false" | "no" | "0" => Ok(Value::Boolean(false)),
                _ => Err(mismatch()),
            },
            FieldType::Date => NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").map(Value::Date).map_err(|_| mismatch()),
        }
    }

    /// Reads a JSON value (process file defaults, stored data, `--json` input).
    /// Strings are accepted for every type so that `"12.50"` keeps its precision.
    pub fn from_json(field_type: FieldType, json: &serde_json::Value) -> Result<Value, TypeMismatch> {
        let mismatch = || TypeMismatch { expected: field_type, got: describe_json(json) };
        match (field_type, json) {
            (FieldType::String, serde_json::Value::String(s)) => Ok(Value::String(s.clone())),
            (FieldType::Integer, serde_json::Value::Number(n)) => n.as_i64().map(Value::Integer).ok_or_else(mismatch),
            (FieldType::Decimal, serde_json::Value::Number(n)) => {
                n.to_string().parse().map(Value::Decimal).map_err(|_| mismatch())
            }
            (FieldType::Boolean, serde_json::Value::Bool(b)) => Ok(Value::Boolean(*b)),
            (FieldType::String, _) => Err(mismatch()),
            (_, serde_json::Value::String(s)) => Value::parse(field_type, s).map_err(|_| mismatch()),
            _ => Err(mismatch()),
        }
    }

    /// The JSON form: booleans, numbers, strings, dates as ISO 8601 strings.
    /// Decimals are written as JSON numbers when that loses nothing, else as strings.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Decimal(d) => {
                let text = d.normalize().to_string();
                match text.parse::<f64>() {
                    Ok(f) if f.to_string() == text => serde_json::Value::from(f),
                    _ => serde_json::Value::String(d.to_string()),
                }
            }
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Date(d) => serde_json::Value::String(d.format("%Y-%m-%d").to_string()),
        }
    }

    /// The script form. Dates are ISO strings in scripts: Rhai has no date type and
    /// a string compares and prints the way script authors expect.
    pub fn to_dynamic(&self) -> Dynamic {
        match self {
            Value::String(s) => Dynamic::from(s.clone()),
            Value::Integer(i) => Dynamic::from(*i),
            Value::Decimal(d) => Dynamic::from_decimal(*d),
            Value::Boolean(b) => Dynamic::from(*b),
            Value::Date(d) => Dynamic::from(d.format("%Y-%m-%d").to_string()),
        }
    }

    /// Reads a value a script left in a field's variable.
    pub fn from_dynamic(field_type: FieldType, value: &Dynamic) -> Result<Value, TypeMismatch> {
        let mismatch = || TypeMismatch { expected: field_type, got: describe_dynamic(value) };
        match field_type {
            FieldType::String => {
                value.clone().into_immutable_string().map(|s| Value::String(s.to_string())).map_err(|_| mismatch())
            }
            FieldType::Integer => value.as_int().map(Value::Integer).map_err(|_| mismatch()),
            FieldType::Decimal => {
                if let Ok(d) = value.as_decimal() {
                    Ok(Value::Decimal(d))
                } else if let Ok(i) = value.as_int() {
                    Ok(Value::Decimal(Decimal::from(i)))
                } else if let Ok(f) = value.as_float() {
                    Decimal::try_from(f).map(Value::Decimal).map_err(|_| mismatch())
                } else {
                    Err(mismatch())
                }
            }
            FieldType::Boolean => value.as_bool().map(Value::Boolean).map_err(|_| mismatch()),
            FieldType::Date => value
                .clone()
                .into_immutable_string()
                .ok()
                .and_then(|s| NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok())
                .map(Value::Date)
                .ok_or_else(mismatch),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::String(s) => f.write_str(s),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Decimal(d) => write!(f, "{d}"),
            Value::Boolean(b) => write!(f, "{b}"),
            Value::Date(d) => write!(f, "{}", d.format("%Y-%m-%d")),
        }
    }
}

fn describe_json(json: &serde_json::Value) -> String {
    match json {
        serde_json::Value::Null => "null".to_owned(),
        serde_json::Value::Bool(b) => format!("boolean {b}"),
        serde_json::Value::Number(n) => format!("number {n}"),
        serde_json::Value::String(s) => format!("{s:?}"),
        serde_json::Value::Array(_) => "a list".to_owned(),
        serde_json::Value::Object(_) => "an object".to_owned(),
    }
}

pub(crate) fn describe_dynamic(value: &Dynamic) -> String {
    let shorten = |text: String| {
        if text.chars().count() > 40 { format!("{}…", text.chars().take(40).collect::<String>()) } else { text }
    };
    if value.is_unit() {
        "nothing (unit)".to_owned()
    } else if value.is_string() {
        format!("string {:?}", shorten(value.to_string()))
    } else if value.is_int() {
        format!("integer {value}")
    } else if value.is_decimal() {
        format!("decimal {value}")
    } else if value.is_float() {
        format!("number {value}")
    } else if value.is_bool() {
        format!("boolean {value}")
    } else {
        format!("{} {}", value.type_name(), shorten(value.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_type_from_text() {
        assert_eq!(Value::parse(FieldType::Integer, " 42 "), Ok(Value::Integer(42)));
        assert_eq!(Value::parse(FieldType::Boolean, "Yes"), Ok(Value::Boolean(true)));
        assert_eq!(Value::parse(FieldType::Decimal, "12.50").map(|v| v.to_string()), Ok("12.50".to_owned()));
        assert!(Value::parse(FieldType::Date, "2026-02-30").is_err());
        assert!(Value::parse(FieldType::Integer, "4.2").is_err());
        assert_eq!(Value::parse(FieldType::String, " keep spaces "), Ok(Value::String(" keep spaces ".into())));
    }

    #[test]
    fn json_round_trip_keeps_type() {
        for (ty, text) in [
            (FieldType::String, "O'Brien; DROP TABLE instances"),
            (FieldType::Integer, "-7"),
            (FieldType::Decimal, "0.1"),
            (FieldType::Boolean, "false"),
            (FieldType::Date, "2026-11-25"),
        ] {
            let value = Value::parse(ty, text).unwrap();
            assert_eq!(Value::from_json(ty, &value.to_json()), Ok(value));
        }
    }

    #[test]
    fn script_values_are_type_checked() {
        let err = Value::from_dynamic(FieldType::Integer, &Dynamic::from("x".to_string())).unwrap_err();
        assert_eq!(err.expected, FieldType::Integer);
        assert!(err.got.contains("string"), "{}", err.got);
        assert_eq!(
            Value::from_dynamic(FieldType::Decimal, &Dynamic::from(3_i64)),
            Ok(Value::Decimal(Decimal::from(3)))
        );
        assert!(Value::from_dynamic(FieldType::Date, &Dynamic::from("25/11/2026".to_string())).is_err());
    }
}
