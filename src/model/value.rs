//! Typed data-field values.
//!
//! A process declares its data fields with one of six types. Values cross three
//! borders: process files and the database (JSON), the command line (`FIELD=VALUE`
//! text) and scripts (Rhai `Dynamic`). Each conversion lives here so that every
//! front end type-checks a value the same way and names the field when it fails.
//!
//! A date-time is an instant, held in UTC and written as RFC 3339 in UTC
//! (`2026-12-06T10:00:00Z`). What people and machines send may carry an
//! offset, or be a wall-clock time read in the process's time zone: the
//! conversions from text take the zone ([`ProcessZone`]). Scripts are
//! code, read by no zone: a script writes the offset.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use rhai::Dynamic;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::model::time::{ProcessZone, datetime_from_text, datetime_text, datetime_with_offset};

/// The type of a process data field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    String,
    Integer,
    Decimal,
    Boolean,
    Date,
    DateTime,
}

impl FieldType {
    pub const ALL: [FieldType; 6] = [
        FieldType::String,
        FieldType::Integer,
        FieldType::Decimal,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::DateTime,
    ];

    /// The name used in process files and messages (`string`, `integer`, ...).
    pub fn name(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Integer => "integer",
            FieldType::Decimal => "decimal",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
        }
    }

    /// How a value of this type is typed, for a hint in an input box
    /// (empty where the box says enough).
    pub fn hint(self) -> &'static str {
        match self {
            FieldType::String | FieldType::Boolean => "",
            FieldType::Integer => "whole number",
            FieldType::Decimal => "number",
            FieldType::Date => "YYYY-MM-DD",
            // Local to the process's zone, or with Z / an offset.
            FieldType::DateTime => "YYYY-MM-DD HH:MM",
        }
    }

    /// Why a field of this type cannot be searchable, or `None` when it
    /// can. A searchable field is found through an SQLite index of its
    /// stored value, which answers `=` `<` `>` in SQLite's order: only
    /// types whose stored form sorts as their values do qualify (text by
    /// its bytes, as Rust compares strings; integers; booleans as 0 and 1;
    /// dates and date-times as fixed-width UTC text, years 0001 to 9999).
    pub fn unsearchable_because(self) -> Option<&'static str> {
        match self {
            FieldType::String | FieldType::Integer | FieldType::Boolean | FieldType::Date | FieldType::DateTime => None,
            FieldType::Decimal => Some(
                "a decimal is stored as its digits' text, which does not sort as its number does \
                 (10 before 9, 1.0 apart from 1.00), so an index could not answer a filter on it",
            ),
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
            // 1970-01-01T00:00:00Z, which a deadline takes as unset.
            FieldType::DateTime => Value::DateTime(DateTime::<Utc>::default()),
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A data-field value of one of the six field types. The serde form (tagged
/// by type) is the storage form; [`Value::to_json`] is the form users read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    String(String),
    Integer(i64),
    Decimal(Decimal),
    Boolean(bool),
    Date(NaiveDate),
    /// An instant, to the second.
    DateTime(DateTime<Utc>),
}

/// The most decimal places a decimal holds (`rust_decimal`'s largest scale).
pub const MAX_DECIMAL_PLACES: usize = 28;

/// Why a value does not fit a field type. The caller adds the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, got {got}")]
pub struct TypeMismatch {
    pub expected: FieldType,
    pub got: String,
}

/// Why a text is not a value of a type: `None` when it is not written in the
/// type's form at all, else what is wrong with a text that is.
type Unfit = Option<&'static str>;

impl Value {
    pub fn field_type(&self) -> FieldType {
        match self {
            Value::String(_) => FieldType::String,
            Value::Integer(_) => FieldType::Integer,
            Value::Decimal(_) => FieldType::Decimal,
            Value::Boolean(_) => FieldType::Boolean,
            Value::Date(_) => FieldType::Date,
            Value::DateTime(_) => FieldType::DateTime,
        }
    }

    /// Parses the text a person typed (`--set FIELD=VALUE`, the window's input
    /// boxes, a default in the designer or written as text in a process file).
    /// Each type is written as over the API, with surrounding whitespace
    /// ignored (people paste); a boolean is also `yes`/`no`/`1`/`0`, in any
    /// case. A string is taken as typed, spaces included. A date-time
    /// without an offset is a wall-clock time in `zone`.
    pub fn parse(field_type: FieldType, text: &str, zone: &ProcessZone) -> Result<Value, TypeMismatch> {
        let trimmed = text.trim();
        let parsed = match field_type {
            FieldType::String => string_from_text(text).map(|s| Value::String(s.to_owned())),
            FieldType::Integer => integer_from_text(trimmed).map(Value::Integer),
            FieldType::Decimal => decimal_from_text(trimmed).map(Value::Decimal),
            FieldType::Boolean => match trimmed.to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(Value::Boolean(true)),
                "false" | "no" | "0" => Ok(Value::Boolean(false)),
                _ => Err(None),
            },
            FieldType::Date => date_from_text(trimmed).map(Value::Date),
            FieldType::DateTime => datetime_from_text(trimmed, zone).map(Value::DateTime),
        };
        parsed.map_err(|unfit| mismatch(field_type, shorten(format!("{text:?}")), unfit))
    }

    /// Reads a value a machine sent (the API, [`crate::engine::FieldInput::Json`]):
    /// the JSON text of one value, so that a number keeps every digit it was
    /// written with. Each type has one form, and nothing else is coerced:
    /// a string is a JSON string without NUL; an integer a JSON integer; a
    /// decimal a JSON string of its digits (`"12.50"`, `"-3"`), or a JSON
    /// number written the same way, read from its text; a boolean `true` or
    /// `false`; a date a string `"YYYY-MM-DD"` with a year from 0001 to 9999;
    /// a date-time a string in RFC 3339 (`"2026-12-06T10:00:00Z"`), or
    /// without an offset, read in the zone it names in brackets or else in
    /// `zone`.
    pub fn from_json_text(field_type: FieldType, json: &RawValue, zone: &ProcessZone) -> Result<Value, TypeMismatch> {
        let text = json.get();
        let described = || describe_json_text(text);
        let unfit = |unfit: Unfit| mismatch(field_type, described(), unfit);
        match text.as_bytes().first() {
            Some(b'"') => {
                // `RawValue` holds valid JSON, so a string decodes.
                let string: String = serde_json::from_str(text).map_err(|_| unfit(None))?;
                let parsed = match field_type {
                    FieldType::String => string_from_text(&string).map(drop).map(|()| Value::String(string)),
                    FieldType::Decimal => decimal_from_text(&string).map(Value::Decimal),
                    FieldType::Date => date_from_text(&string).map(Value::Date),
                    FieldType::DateTime => datetime_from_text(&string, zone).map(Value::DateTime),
                    FieldType::Integer | FieldType::Boolean => Err(None),
                };
                parsed.map_err(unfit)
            }
            Some(b'-' | b'0'..=b'9') => match field_type {
                FieldType::Integer => integer_from_text(text).map(Value::Integer).map_err(unfit),
                FieldType::Decimal if text.contains(['e', 'E']) => {
                    Err(unfit(Some("write a decimal without an exponent, best as a string such as \"0.001\"")))
                }
                FieldType::Decimal => decimal_from_text(text).map(Value::Decimal).map_err(unfit),
                _ => Err(unfit(None)),
            },
            _ => match (field_type, text) {
                (FieldType::Boolean, "true") => Ok(Value::Boolean(true)),
                (FieldType::Boolean, "false") => Ok(Value::Boolean(false)),
                _ => Err(unfit(None)),
            },
        }
    }

    /// Reads a default value of a process file (also a definition deployed by
    /// an earlier version). A JSON value of the field's type, or text read as
    /// a person typed it ([`Value::parse`]). A decimal may be a JSON number,
    /// as earlier versions' designer wrote it (`12.5`, `1e-5`); such a number
    /// has been through a float already, so the designer now writes strings.
    /// A date-time without an offset is read in `zone`, the process's.
    pub fn from_json(
        field_type: FieldType,
        json: &serde_json::Value,
        zone: &ProcessZone,
    ) -> Result<Value, TypeMismatch> {
        let unfit = |unfit: Unfit| mismatch(field_type, describe_json(json), unfit);
        match (field_type, json) {
            (FieldType::String, serde_json::Value::String(s)) => {
                string_from_text(s).map(|_| Value::String(s.clone())).map_err(unfit)
            }
            (FieldType::Integer, serde_json::Value::Number(n)) => {
                n.as_i64().map(Value::Integer).ok_or_else(|| unfit(None))
            }
            (FieldType::Decimal, serde_json::Value::Number(n)) => match n.as_i64() {
                Some(whole) => Ok(Value::Decimal(Decimal::from(whole))),
                // Exact for the text the float prints as (`12.5`, `1e-5`,
                // `1e+20`), or refused: a number too small or too precise for
                // a decimal is not rounded.
                None => {
                    let text = n.to_string();
                    let exact = if text.contains(['e', 'E']) {
                        Decimal::from_scientific(&text).map_err(|_| Some("too many digits for a decimal"))
                    } else {
                        decimal_from_text(&text)
                    };
                    exact.map(Value::Decimal).map_err(unfit)
                }
            },
            (FieldType::Boolean, serde_json::Value::Bool(b)) => Ok(Value::Boolean(*b)),
            (FieldType::String, _) => Err(unfit(None)),
            (_, serde_json::Value::String(s)) => Value::parse(field_type, s, zone),
            _ => Err(unfit(None)),
        }
    }

    /// The JSON form users read (API, `show --json`, HTTP request bodies):
    /// booleans, integers as numbers, strings, dates as `"YYYY-MM-DD"`,
    /// date-times as `"2026-12-06T10:00:00Z"` (RFC 3339 in UTC), and
    /// decimals as strings in their written form (`"12.50"`): a JSON number
    /// would lose the trailing zeros, and most readers take it as a float.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::String(s) => serde_json::Value::String(s.clone()),
            Value::Integer(i) => serde_json::Value::from(*i),
            Value::Decimal(d) => serde_json::Value::String(d.to_string()),
            Value::Boolean(b) => serde_json::Value::Bool(*b),
            Value::Date(d) => serde_json::Value::String(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(at) => serde_json::Value::String(datetime_text(at)),
        }
    }

    /// The script form. Dates and date-times are ISO strings in scripts: Rhai
    /// has no date type and a string compares and prints the way script
    /// authors expect (date-times are all written in UTC with four-digit
    /// years, so they compare as strings in time order).
    pub fn to_dynamic(&self) -> Dynamic {
        match self {
            Value::String(s) => Dynamic::from(s.clone()),
            Value::Integer(i) => Dynamic::from(*i),
            Value::Decimal(d) => Dynamic::from_decimal(*d),
            Value::Boolean(b) => Dynamic::from(*b),
            Value::Date(d) => Dynamic::from(d.format("%Y-%m-%d").to_string()),
            Value::DateTime(at) => Dynamic::from(datetime_text(at)),
        }
    }

    /// Reads a value a script left in a field's variable. Strings and dates
    /// follow the API's rules: no NUL, dates as `"YYYY-MM-DD"`. A date-time
    /// must carry its offset (`"2026-12-06T10:00:00Z"`): a script has no
    /// time zone of its own.
    pub fn from_dynamic(field_type: FieldType, value: &Dynamic) -> Result<Value, TypeMismatch> {
        let unfit = |unfit: Unfit| mismatch(field_type, describe_dynamic(value), unfit);
        match field_type {
            FieldType::String => {
                let text = value.clone().into_immutable_string().map_err(|_| unfit(None))?;
                string_from_text(&text).map(|s| Value::String(s.to_owned())).map_err(unfit)
            }
            FieldType::Integer => value.as_int().map(Value::Integer).map_err(|_| unfit(None)),
            FieldType::Decimal => {
                if let Ok(d) = value.as_decimal() {
                    Ok(Value::Decimal(d))
                } else if let Ok(i) = value.as_int() {
                    Ok(Value::Decimal(Decimal::from(i)))
                } else if let Ok(f) = value.as_float() {
                    Decimal::try_from(f).map(Value::Decimal).map_err(|_| unfit(None))
                } else {
                    Err(unfit(None))
                }
            }
            FieldType::Boolean => value.as_bool().map(Value::Boolean).map_err(|_| unfit(None)),
            FieldType::Date => {
                let text = value.clone().into_immutable_string().map_err(|_| unfit(None))?;
                date_from_text(&text).map(Value::Date).map_err(unfit)
            }
            FieldType::DateTime => {
                let text = value.clone().into_immutable_string().map_err(|_| unfit(None))?;
                datetime_with_offset(&text).map(Value::DateTime).map_err(unfit)
            }
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
            Value::DateTime(at) => f.write_str(&datetime_text(at)),
        }
    }
}

fn mismatch(expected: FieldType, got: String, unfit: Unfit) -> TypeMismatch {
    let got = match unfit {
        Some(reason) => format!("{got} ({reason})"),
        None => got,
    };
    TypeMismatch { expected, got }
}

/// A string value holds no NUL: SQLite's C interface, C and many receiving
/// systems take it for the end of the text, so what was stored is not what
/// is read back or sent on.
fn string_from_text(text: &str) -> Result<&str, Unfit> {
    if text.contains('\0') { Err(Some("it holds a NUL character")) } else { Ok(text) }
}

/// A whole number as JSON writes it: `-?(0|[1-9][0-9]*)`. No `+`, no
/// leading zeros, no `_`, no spaces: one text for each number.
fn is_whole_number(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'))
}

fn integer_from_text(text: &str) -> Result<i64, Unfit> {
    if !is_whole_number(text) {
        return Err(None);
    }
    text.parse().map_err(|_| Some("out of the integer range"))
}

/// A decimal as JSON writes a number without an exponent:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, at most [`MAX_DECIMAL_PLACES`] places.
/// Exact or refused: `rust_decimal` alone reads `+`, `_` and exponents and
/// rounds what does not fit, so the form is checked first and the result
/// compared with the text.
fn decimal_from_text(text: &str) -> Result<Decimal, Unfit> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, fraction),
        None => (text, ""),
    };
    let fraction_written =
        !text.contains('.') || (!fraction.is_empty() && fraction.bytes().all(|b| b.is_ascii_digit()));
    if !is_whole_number(whole) || !fraction_written {
        return Err(None);
    }
    if fraction.len() > MAX_DECIMAL_PLACES {
        return Err(Some("more than 28 decimal places"));
    }
    let too_many_digits = Some("too many digits for a decimal");
    let decimal = Decimal::from_str_exact(text).map_err(|_| too_many_digits)?;
    let significant = format!("{}{fraction}", whole.trim_start_matches('-')).trim_start_matches('0').to_owned();
    let held = decimal.mantissa().unsigned_abs();
    let exact = decimal.scale() as usize == fraction.len()
        && (held.to_string() == significant || (held == 0 && significant.is_empty()));
    if exact { Ok(decimal) } else { Err(too_many_digits) }
}

/// A date as ISO 8601's calendar date: `YYYY-MM-DD`, a year from 0001 to
/// 9999, a day that exists. No other width or sign of year (`+99999`,
/// `-0001`), no single-digit month or day.
fn date_from_text(text: &str) -> Result<NaiveDate, Unfit> {
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = bytes.get(range)?;
        part.iter().all(u8::is_ascii_digit).then(|| part.iter().fold(0, |n, b| n * 10 + u32::from(b - b'0')))
    };
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(None);
    }
    let (Some(year), Some(month), Some(day)) = (digits(0..4), digits(5..7), digits(8..10)) else {
        return Err(None);
    };
    if year == 0 {
        return Err(None);
    }
    // A four-digit year always fits `i32`.
    NaiveDate::from_ymd_opt(year as i32, month, day).ok_or(None)
}

/// A value's JSON text as messages show it: strings as text in quotes,
/// numbers as written.
fn describe_json_text(text: &str) -> String {
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .map_or_else(|_| shorten(text.to_owned()), |s| shorten(format!("{s:?}"))),
        Some(b'-' | b'0'..=b'9') => shorten(format!("number {text}")),
        Some(b't' | b'f') => format!("boolean {text}"),
        Some(b'[') => "a list".to_owned(),
        Some(b'{') => "an object".to_owned(),
        _ => text.to_owned(),
    }
}

/// At most 60 characters of a text for a message; a value may be long.
fn shorten(text: String) -> String {
    if text.chars().count() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
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

    fn utc() -> ProcessZone {
        ProcessZone::utc()
    }

    #[test]
    fn parses_each_type_from_text() {
        assert_eq!(Value::parse(FieldType::Integer, " 42 ", &utc()), Ok(Value::Integer(42)));
        assert_eq!(Value::parse(FieldType::Boolean, "Yes", &utc()), Ok(Value::Boolean(true)));
        assert_eq!(Value::parse(FieldType::Decimal, "12.50", &utc()).map(|v| v.to_string()), Ok("12.50".to_owned()));
        assert!(Value::parse(FieldType::Date, "2026-02-30", &utc()).is_err());
        assert!(Value::parse(FieldType::Integer, "4.2", &utc()).is_err());
        assert_eq!(Value::parse(FieldType::String, " keep spaces ", &utc()), Ok(Value::String(" keep spaces ".into())));
    }

    #[test]
    fn json_round_trip_keeps_type() {
        for (ty, text) in [
            (FieldType::String, "O'Brien; DROP TABLE instances"),
            (FieldType::Integer, "-7"),
            (FieldType::Decimal, "0.1"),
            (FieldType::Boolean, "false"),
            (FieldType::Date, "2026-11-25"),
            (FieldType::DateTime, "2026-12-06T10:00:00Z"),
        ] {
            let value = Value::parse(ty, text, &utc()).unwrap();
            assert_eq!(Value::from_json(ty, &value.to_json(), &utc()), Ok(value));
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

    /// What a person may type (command line, window), type by type: the
    /// API's written form with surrounding spaces ignored, and booleans
    /// also as yes/no/1/0 in any case (issue 15, point 8).
    #[test]
    fn typed_text_takes_each_types_one_form_with_spaces_around_it() {
        let accepted: &[(FieldType, &str, &str)] = &[
            (FieldType::String, " as typed\t", " as typed\t"),
            (FieldType::Integer, " 42 ", "42"),
            (FieldType::Integer, "-9223372036854775808", "-9223372036854775808"),
            (FieldType::Integer, "0", "0"),
            (FieldType::Decimal, "12.50", "12.50"),
            (FieldType::Decimal, " -0.5\n", "-0.5"),
            (FieldType::Decimal, "0.0000000000000000000000000001", "0.0000000000000000000000000001"),
            (FieldType::Decimal, "79228162514264337593543950335", "79228162514264337593543950335"),
            (FieldType::Boolean, "Yes", "true"),
            (FieldType::Boolean, "TRUE", "true"),
            (FieldType::Boolean, "1", "true"),
            (FieldType::Boolean, " no ", "false"),
            (FieldType::Boolean, "0", "false"),
            (FieldType::Date, " 2026-11-25 ", "2026-11-25"),
            (FieldType::Date, "0001-01-01", "0001-01-01"),
            (FieldType::Date, "9999-12-31", "9999-12-31"),
            (FieldType::DateTime, " 2026-12-06T10:00:00Z ", "2026-12-06T10:00:00Z"),
            (FieldType::DateTime, "2026-12-06T11:30:00+01:30", "2026-12-06T10:00:00Z"),
            (FieldType::DateTime, "2026-12-06T10:00", "2026-12-06T10:00:00Z"),
            (FieldType::DateTime, "2026-12-06 10:00:59.999", "2026-12-06T10:00:59Z"),
        ];
        let refused: &[(FieldType, &str)] = &[
            (FieldType::String, "nul\0inside"),
            (FieldType::Integer, "+5"),
            (FieldType::Integer, "4.2"),
            (FieldType::Integer, "1_000"),
            (FieldType::Integer, "007"),
            (FieldType::Integer, "9223372036854775808"),
            (FieldType::Integer, ""),
            (FieldType::Decimal, "+1.5"),
            (FieldType::Decimal, "1_000"),
            (FieldType::Decimal, "1e3"),
            (FieldType::Decimal, ".5"),
            (FieldType::Decimal, "1."),
            (FieldType::Decimal, "01.5"),
            (FieldType::Decimal, "1,5"),
            (FieldType::Decimal, "0.00000000000000000000000000001"),
            (FieldType::Decimal, "79228162514264337593543950336"),
            (FieldType::Decimal, "7922816251426433759354395033.59"),
            (FieldType::Boolean, "maybe"),
            (FieldType::Boolean, "y"),
            (FieldType::Date, "2026-1-1"),
            (FieldType::Date, "-0001-01-01"),
            (FieldType::Date, "+99999-01-01"),
            (FieldType::Date, "99999-01-01"),
            (FieldType::Date, "0000-01-01"),
            (FieldType::Date, "2026-02-30"),
            (FieldType::Date, "2026-01-01T00:00"),
            (FieldType::Date, "25/11/2026"),
            (FieldType::DateTime, "2026-12-06"),
            (FieldType::DateTime, "10:00"),
            (FieldType::DateTime, "2026-12-06T24:01"),
            (FieldType::DateTime, "0000-12-06T10:00Z"),
            (FieldType::DateTime, "06/12/2026 10:00"),
        ];
        let mut wrong = Vec::new();
        for (field_type, typed, kept) in accepted {
            match Value::parse(*field_type, typed, &utc()) {
                Ok(value) if value.to_string() == *kept => {}
                other => wrong.push(format!("{field_type} {typed:?}: {other:?}, not {kept}")),
            }
        }
        for (field_type, typed) in refused {
            if let Ok(value) = Value::parse(*field_type, typed, &utc()) {
                wrong.push(format!("{field_type} {typed:?} was taken as {value}"));
            }
        }
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    /// The stored form (the database of every earlier version) is the serde
    /// form, a decimal as its text; it reads back exactly.
    #[test]
    fn the_stored_form_reads_back_exactly() {
        let stored = r#"{"a":{"Decimal":"1234567890.123456789"},"b":{"Decimal":"12.50"},"c":{"Date":"2026-11-25"},"d":{"Integer":-7}}"#;
        let values: std::collections::BTreeMap<String, Value> = serde_json::from_str(stored).unwrap();
        let shown: Vec<String> = values.values().map(Value::to_string).collect();
        assert_eq!(shown, ["1234567890.123456789", "12.50", "2026-11-25", "-7"]);
        assert_eq!(serde_json::to_string(&values).unwrap(), stored);
    }

    fn from_json_text(field_type: FieldType, text: &str) -> Result<Value, TypeMismatch> {
        let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
        Value::from_json_text(field_type, &raw, &utc())
    }

    /// What a machine sends, type by type: each type's one JSON form, and a
    /// decimal also as a JSON number written the same way, exactly.
    #[test]
    fn json_text_takes_each_types_one_form_exactly() {
        let accepted: &[(FieldType, &str, &str)] = &[
            (FieldType::String, r#""a\tb\nc""#, "a\tb\nc"),
            (FieldType::Integer, "-9223372036854775808", "-9223372036854775808"),
            (FieldType::Decimal, "1234567890.123456789", "1234567890.123456789"),
            (FieldType::Decimal, r#""12.50""#, "12.50"),
            (FieldType::Decimal, "12.50", "12.50"),
            (FieldType::Boolean, "false", "false"),
            (FieldType::Date, r#""2026-11-25""#, "2026-11-25"),
            (FieldType::DateTime, r#""2026-12-06T10:00:00.123Z""#, "2026-12-06T10:00:00Z"),
        ];
        for (field_type, text, kept) in accepted {
            assert_eq!(from_json_text(*field_type, text).map(|v| v.to_string()).as_deref(), Ok(*kept), "{text}");
        }
        let refused: &[(FieldType, &str, &str)] = &[
            (FieldType::String, r#""a\u0000b""#, r#"expected string, got "a\0b" (it holds a NUL character)"#),
            (FieldType::Integer, r#""5""#, r#"expected integer, got "5""#),
            (
                FieldType::Integer,
                "9223372036854775808",
                "expected integer, got number 9223372036854775808 (out of the integer range)",
            ),
            (
                FieldType::Decimal,
                "0.00000000000000000000000000001",
                "expected decimal, got number 0.00000000000000000000000000001 (more than 28 decimal places)",
            ),
            (
                FieldType::Decimal,
                r#""79228162514264337593543950336""#,
                r#"expected decimal, got "79228162514264337593543950336" (too many digits for a decimal)"#,
            ),
            (
                FieldType::Decimal,
                "1e-3",
                r#"expected decimal, got number 1e-3 (write a decimal without an exponent, best as a string such as "0.001")"#,
            ),
            (FieldType::Boolean, r#""true""#, r#"expected boolean, got "true""#),
            (FieldType::Boolean, "1", "expected boolean, got number 1"),
            (FieldType::Date, r#""+99999-01-01""#, r#"expected date, got "+99999-01-01""#),
            (FieldType::Date, "null", "expected date, got null"),
            (FieldType::String, "[1]", "expected string, got a list"),
            (FieldType::DateTime, "1765015200", "expected datetime, got number 1765015200"),
            (FieldType::DateTime, r#""2026-12-06""#, r#"expected datetime, got "2026-12-06""#),
        ];
        for (field_type, text, message) in refused {
            assert_eq!(
                from_json_text(*field_type, text).map_err(|e| e.to_string()),
                Err(message.to_string()),
                "{text}"
            );
        }
    }

    /// Scripts set strings and dates by the API's rules.
    #[test]
    fn script_strings_hold_no_nul_and_dates_are_four_digit_years() {
        assert!(Value::from_dynamic(FieldType::String, &Dynamic::from("a\0b".to_string())).is_err());
        assert!(Value::from_dynamic(FieldType::Date, &Dynamic::from("2026-1-1".to_string())).is_err());
        assert!(Value::from_dynamic(FieldType::Date, &Dynamic::from(" 2026-01-01".to_string())).is_err());
        assert_eq!(
            Value::from_dynamic(FieldType::Date, &Dynamic::from("2026-01-01".to_string())).map(|v| v.to_string()),
            Ok("2026-01-01".to_owned())
        );
    }

    /// A date-time without an offset is a wall-clock time in the process's
    /// zone, from whichever border it comes; a script must write the offset.
    #[test]
    fn datetimes_without_an_offset_are_read_in_the_process_zone() {
        let london = ProcessZone::named("Europe/London").unwrap();
        let summer = "2026-07-06T10:00";
        assert_eq!(Value::parse(FieldType::DateTime, summer, &london).unwrap().to_string(), "2026-07-06T09:00:00Z");
        let raw: Box<RawValue> = serde_json::from_str(&format!("{summer:?}")).unwrap();
        assert_eq!(
            Value::from_json_text(FieldType::DateTime, &raw, &london).unwrap().to_string(),
            "2026-07-06T09:00:00Z"
        );
        let default = serde_json::Value::String(summer.to_owned());
        assert_eq!(
            Value::from_json(FieldType::DateTime, &default, &london).unwrap().to_string(),
            "2026-07-06T09:00:00Z"
        );
        let script = |text: &str| Value::from_dynamic(FieldType::DateTime, &Dynamic::from(text.to_owned()));
        assert_eq!(script("2026-07-06T10:00:00+01:00").unwrap().to_string(), "2026-07-06T09:00:00Z");
        let refused = script(summer).unwrap_err().to_string();
        assert!(refused.contains("write the offset"), "{refused}");
        // A script reads the one written form, which compares as time does.
        let value = Value::parse(FieldType::DateTime, "2026-07-06T10:00:00Z", &london).unwrap();
        assert_eq!(value.to_dynamic().into_string().unwrap(), "2026-07-06T10:00:00Z");
        assert_eq!(serde_json::to_string(&value).unwrap(), r#"{"DateTime":"2026-07-06T10:00:00Z"}"#, "the stored form");
    }
}
