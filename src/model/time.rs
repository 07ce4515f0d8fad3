//! Time in a process: durations as people write them ([`Delay`]), the
//! process's time zone ([`ProcessZone`]) and when a deadline or a timer
//! falls due ([`Due`]).
//!
//! Durations are calendar-aware: `3d` from 09:00 on the Friday before the
//! clocks go back is 09:00 on the Monday, 73 hours later, because a person
//! who writes "three days" means the same time of day. That is why a
//! [`Delay`] keeps `jiff`'s `Span` (days, months) rather than a number of
//! milliseconds, and why every sum is made in the process's zone. The
//! zone database is bundled into the binary (`jiff`'s `tzdb-bundle-always`),
//! so an answer never depends on the host's `/usr/share/zoneinfo`.
//!
//! Instants cross this module's border as [`Millis`] (milliseconds since
//! the epoch, UTC), the engine's unit; `jiff` types stay inside it.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use crate::model::value::Value;

/// Milliseconds since the epoch, UTC (the engine's `Millis`).
pub type Millis = i64;

/// The zone a process that names none is in.
pub const DEFAULT_ZONE: &str = "UTC";

/// A duration as written in a process file: the friendly form (`30m`, `2h`,
/// `3d`, `1h 30m`, `2 hours`) or ISO 8601 (`PT2H`, `P3D`). Always a
/// millisecond or longer.
#[derive(Clone)]
pub struct Delay {
    span: Span,
    text: String,
}

/// Why a text is not a [`Delay`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DelayError {
    #[error("no duration: write one such as 30m, 2h, 3d, 1h 30m or PT2H")]
    Empty,
    #[error("`{text}` is not a duration: write one such as 30m, 2h, 3d, 1h 30m or PT2H")]
    Unreadable { text: String },
    #[error("`{text}` is not longer than zero")]
    NotPositive { text: String },
    #[error("`{text}` is shorter than a millisecond: it would fall due at once")]
    TooShort { text: String },
    #[error("`{text}` is too long: a duration may be at most {MAX_DELAY_YEARS} years")]
    TooLong { text: String },
}

/// The longest [`Delay`], in years: far beyond any wait a process means,
/// and short enough that a wait started on any day flowdesk holds until
/// 9899 can be given its deadline (the calendar ends in 9999).
pub const MAX_DELAY_YEARS: i16 = 100;

impl Delay {
    /// Reads a duration; surrounding spaces do not matter.
    pub fn parse(text: &str) -> Result<Delay, DelayError> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(DelayError::Empty);
        }
        let span: Span = match trimmed.parse() {
            Ok(span) => span,
            // Written right, with a number past what a span holds (`10000000d`).
            Err(_) if readable_with_small_numbers(trimmed) => {
                return Err(DelayError::TooLong { text: trimmed.to_owned() });
            }
            Err(_) => return Err(DelayError::Unreadable { text: trimmed.to_owned() }),
        };
        if span.signum() <= 0 {
            return Err(DelayError::NotPositive { text: trimmed.to_owned() });
        }
        // The engine counts time in milliseconds: less is no time at all.
        // (A span of days or more has no exact length and is long anyway.)
        if SignedDuration::try_from(span).is_ok_and(|exact| exact < SignedDuration::from_millis(1)) {
            return Err(DelayError::TooShort { text: trimmed.to_owned() });
        }
        // Months and years have a length only from a given day: counted from
        // one, the same for every process (an error is a sum past 9999).
        let longest = Span::new().years(MAX_DELAY_YEARS);
        if span.compare((longest, jiff::civil::date(2000, 1, 1))).map_or(true, |order| order.is_gt()) {
            return Err(DelayError::TooLong { text: trimmed.to_owned() });
        }
        Ok(Delay { span, text: trimmed.to_owned() })
    }

    /// The duration as written (without surrounding spaces).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// `times` of this duration after `started`, added in `zone` (so that
    /// days and months keep the time of day across a change of the clocks).
    pub fn after_times(&self, started: Millis, times: u32, zone: &ProcessZone) -> Result<Millis, DueError> {
        let overflow = || DueError::Overflow { delay: self.text.clone(), times };
        let span = self.span.checked_mul(i64::from(times)).map_err(|_| overflow())?;
        let start = Timestamp::from_millisecond(started).map_err(|_| overflow())?;
        let due = start.to_zoned_datetime(zone.tz.clone()).checked_add(span).map_err(|_| overflow())?;
        Ok(due.timestamp().as_millisecond())
    }

    /// This duration after `started`, in `zone`.
    pub fn after(&self, started: Millis, zone: &ProcessZone) -> Result<Millis, DueError> {
        self.after_times(started, 1, zone)
    }
}

/// Whether `text` reads as a duration once each whole number in it is 1:
/// then only its numbers kept it from reading (too big for a span). The
/// digits after a decimal point stay as they are.
fn readable_with_small_numbers(text: &str) -> bool {
    let mut small = String::with_capacity(text.len());
    // In a whole number, whose digits after its first are left out.
    let mut whole = false;
    let mut previous = ' ';
    for c in text.chars() {
        if !c.is_ascii_digit() {
            small.push(c);
        } else if !previous.is_ascii_digit() {
            whole = !matches!(previous, '.' | ',');
            small.push(if whole { '1' } else { c });
        } else if !whole {
            small.push(c);
        }
        previous = c;
    }
    small.parse::<Span>().is_ok()
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Delay({:?})", self.text)
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Two delays are equal when written alike: `jiff` does not compare spans
/// (is `1d` equal to `24h`? only in a zone, on a day).
impl PartialEq for Delay {
    fn eq(&self, other: &Delay) -> bool {
        self.text == other.text
    }
}

impl Eq for Delay {}

/// The time zone a process states (`time_zone`), [`DEFAULT_ZONE`] if none:
/// where days are added and where a local date-time or a date is read.
#[derive(Clone)]
pub struct ProcessZone {
    name: String,
    tz: TimeZone,
}

/// A `time_zone` the bundled zone database does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown time zone `{name}`: write an IANA name such as Europe/London, America/New_York or UTC")]
pub struct ZoneError {
    pub name: String,
}

impl ProcessZone {
    pub fn utc() -> ProcessZone {
        ProcessZone { name: DEFAULT_ZONE.to_owned(), tz: TimeZone::UTC }
    }

    /// The zone of an IANA name (`Europe/London`), from the bundled database.
    pub fn named(name: &str) -> Result<ProcessZone, ZoneError> {
        let tz = TimeZone::get(name.trim()).map_err(|_| ZoneError { name: name.to_owned() })?;
        Ok(ProcessZone { name: name.trim().to_owned(), tz })
    }

    /// The zone a process file names, UTC when it names none.
    pub fn of(time_zone: Option<&str>) -> Result<ProcessZone, ZoneError> {
        match time_zone {
            None => Ok(ProcessZone::utc()),
            Some(name) => ProcessZone::named(name),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Midnight at the start of `date` in this zone (on a day that starts
    /// at 01:00 because the clocks went forward at midnight, 01:00).
    pub fn midnight(&self, date: NaiveDate) -> Result<Millis, DueError> {
        let shown = || date.format("%Y-%m-%d").to_string();
        // Month and day from chrono are 1..=12 and 1..=31; the year may be
        // any chrono holds, which jiff refuses past ±9999.
        let civil = i16::try_from(chrono::Datelike::year(&date))
            .ok()
            .and_then(|year| {
                jiff::civil::Date::new(year, chrono::Datelike::month(&date) as i8, chrono::Datelike::day(&date) as i8)
                    .ok()
            })
            .ok_or_else(|| DueError::OutOfRange { value: shown() })?;
        match civil.to_zoned_datetime(self.tz.clone()) {
            Ok(zoned) => Ok(zoned.timestamp().as_millisecond()),
            // The last day or two of 9999 lie past jiff's last instant
            // (9999-12-30T22:00Z), yet a date field holds them (9999-12-31
            // is many a system's "never"): the zone's offset at that
            // instant holds to the end of the year, no rule changes after.
            Err(_) if civil.year() == 9999 => {
                let utc = date.and_time(chrono::NaiveTime::MIN).and_utc().timestamp_millis();
                Ok(utc - i64::from(self.tz.to_offset(Timestamp::MAX).seconds()) * 1000)
            }
            Err(_) => Err(DueError::OutOfRange { value: shown() }),
        }
    }

    /// Reads a date-time written without an offset as a wall-clock time in
    /// this zone. A time the clocks skip (02:30 when they go from 02:00 to
    /// 03:00) is read as the same length of time after the jump (03:30);
    /// a time they pass twice, as the first of the two.
    pub(crate) fn local(&self, civil: jiff::civil::DateTime) -> Option<Timestamp> {
        self.tz.to_ambiguous_zoned_datetime(civil).compatible().ok().map(|zoned| zoned.timestamp())
    }

    /// An instant as a person in this zone reads it:
    /// `2026-12-06 10:00:00 GMT`.
    pub fn show(&self, at: Millis) -> String {
        match Timestamp::from_millisecond(at) {
            Ok(instant) => instant.to_zoned_datetime(self.tz.clone()).strftime("%Y-%m-%d %H:%M:%S %Z").to_string(),
            Err(_) => format!("{at} ms"),
        }
    }
}

impl fmt::Debug for ProcessZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProcessZone({:?})", self.name)
    }
}

/// Two zones are equal when named alike.
impl PartialEq for ProcessZone {
    fn eq(&self, other: &ProcessZone) -> bool {
        self.name == other.name
    }
}

impl Eq for ProcessZone {}

/// When an escalation or a timer falls due, relative to the wait it guards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Due {
    /// A duration after the wait started.
    After(Delay),
    /// The date-time (or the midnight of the date, in the process's zone)
    /// a data field holds.
    AtField(String),
}

impl Due {
    /// When `due` falls for a wait that started at `started`, given the
    /// instance's data. A date or date-time field that still holds its zero
    /// value (1970-01-01: no default, never set) counts as unset.
    pub fn at(&self, started: Millis, data: &BTreeMap<String, Value>, zone: &ProcessZone) -> Result<Millis, DueError> {
        match self {
            Due::After(delay) => delay.after(started, zone),
            Due::AtField(field) => {
                let unset = || DueError::Unset { field: field.clone() };
                match data.get(field) {
                    Some(Value::DateTime(at)) if at.timestamp() == 0 => Err(unset()),
                    Some(Value::DateTime(at)) => Ok(at.timestamp_millis()),
                    Some(Value::Date(date)) if *date == NaiveDate::default() => Err(unset()),
                    Some(Value::Date(date)) => zone.midnight(*date),
                    Some(other) => Err(DueError::NotATime { field: field.clone(), got: other.field_type().name() }),
                    None => Err(unset()),
                }
            }
        }
    }
}

impl fmt::Display for Due {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Due::After(delay) => write!(f, "after {delay}"),
            Due::AtField(field) => write!(f, "at {field}"),
        }
    }
}

/// Why no due time can be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DueError {
    #[error("field `{field}` holds no date or date-time yet")]
    Unset { field: String },
    #[error("field `{field}` holds a value of type {got}, not a date or date-time")]
    NotATime { field: String, got: &'static str },
    #[error("{times} × {delay} from then is past the last time flowdesk can hold")]
    Overflow { delay: String, times: u32 },
    #[error("{value} cannot be placed in the process's time zone")]
    OutOfRange { value: String },
}

/// A UTC date-time of a [`Value::DateTime`] from an instant: whole seconds
/// (a fraction dropped, towards the past), a year from 0001 to 9999 (as
/// dates), or `None`.
pub(crate) fn utc_seconds(instant: Timestamp) -> Option<DateTime<Utc>> {
    // jiff counts an instant's seconds towards zero, so before 1970 a
    // fraction left over is a negative one: one second less.
    let seconds = instant.as_second() - i64::from(instant.subsec_nanosecond() < 0);
    let at = DateTime::<Utc>::from_timestamp(seconds, 0)?;
    (1..=9999).contains(&chrono::Datelike::year(&at)).then_some(at)
}

/// Reads a date-time as typed or sent: RFC 3339 with an offset
/// (`2026-12-06T10:00:00Z`, `2026-12-06T11:00:00+01:00`), a wall-clock
/// date-time in the zone it names in brackets
/// (`2026-12-06T10:00[America/New_York]`), or a wall-clock date-time
/// without either (`2026-12-06T10:00`, `2026-12-06 10:00:00`) read in
/// `zone`. Kept to the second: a fraction is dropped (JavaScript sends
/// milliseconds whether they mean anything or not). `Err(None)` when the
/// text is no date-time at all, `Err(Some(why))` when it is one that cannot
/// be held.
pub(crate) fn datetime_from_text(text: &str, zone: &ProcessZone) -> Result<DateTime<Utc>, Option<&'static str>> {
    // A date alone is a date, not a date-time: refused rather than guessed.
    if text.len() < "YYYY-MM-DDTHH:MM".len() {
        return Err(None);
    }
    if let Ok(instant) = text.parse::<Timestamp>() {
        return utc_seconds(instant).ok_or(YEAR_RANGE);
    }
    let civil: jiff::civil::DateTime = text.parse().map_err(|_| None)?;
    // A zone named in brackets (RFC 9557: `2026-07-06T10:00[America/New_York]`,
    // as java.time and Temporal write it) says where the wall-clock time is;
    // reading the civil date-time alone would ignore it.
    if text.contains('[') {
        let zoned = text.parse::<jiff::ZonedDateTime>().map_err(|_| Some(UNKNOWN_ZONE_IN_BRACKETS))?;
        return utc_seconds(zoned.timestamp()).ok_or(YEAR_RANGE);
    }
    let instant = zone.local(civil).ok_or(Some("it cannot be placed in the process's time zone"))?;
    utc_seconds(instant).ok_or(YEAR_RANGE)
}

const YEAR_RANGE: Option<&str> = Some("the year must be from 0001 to 9999");
const UNKNOWN_ZONE_IN_BRACKETS: &str = "the time zone in brackets is unknown: write an IANA name such as Europe/London";

/// Reads a date-time that must carry its offset (what a script writes: a
/// script has no time zone of its own).
pub(crate) fn datetime_with_offset(text: &str) -> Result<DateTime<Utc>, Option<&'static str>> {
    match text.parse::<Timestamp>() {
        Ok(instant) => utc_seconds(instant).ok_or(YEAR_RANGE),
        Err(_) if text.parse::<jiff::civil::DateTime>().is_ok() => {
            Err(Some("write the offset, as in \"2026-12-06T10:00:00Z\": a script has no time zone"))
        }
        Err(_) => Err(None),
    }
}

/// The one written form of a date-time: RFC 3339 in UTC, to the second.
pub(crate) fn datetime_text(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn millis(text: &str) -> Millis {
        text.parse::<Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn delays_are_read_in_both_forms() {
        let zone = ProcessZone::utc();
        let start = millis("2026-12-06T10:00:00Z");
        for (text, after) in [
            ("30m", "2026-12-06T10:30:00Z"),
            ("2h", "2026-12-06T12:00:00Z"),
            ("3d", "2026-12-09T10:00:00Z"),
            ("1h 30m", "2026-12-06T11:30:00Z"),
            (" 1h30m ", "2026-12-06T11:30:00Z"),
            ("2 hours", "2026-12-06T12:00:00Z"),
            ("PT2H", "2026-12-06T12:00:00Z"),
            ("P3D", "2026-12-09T10:00:00Z"),
            ("PT1H30M", "2026-12-06T11:30:00Z"),
            ("45s", "2026-12-06T10:00:45Z"),
        ] {
            let delay = Delay::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(delay.text(), text.trim());
            assert_eq!(delay.after(start, &zone), Ok(millis(after)), "{text}");
        }
    }

    #[test]
    fn bad_delays_say_why() {
        assert_eq!(Delay::parse("  "), Err(DelayError::Empty));
        for text in ["soon", "3 fortnights", "2x", "h", "PT", "1.5.3h", "30"] {
            assert_eq!(
                Delay::parse(text).map(|d| d.text().to_owned()),
                Err(DelayError::Unreadable { text: text.to_owned() }),
                "{text}"
            );
        }
        for text in ["0m", "PT0S", "-2h", "2h ago"] {
            assert_eq!(
                Delay::parse(text).map(|d| d.text().to_owned()),
                Err(DelayError::NotPositive { text: text.to_owned() }),
                "{text}"
            );
        }
    }

    /// The clocks go back in London at 02:00 BST on 25 October 2026: three
    /// days from 09:00 on the Friday before is 09:00 on the Monday, which is
    /// 73 hours later; 72h is 08:00.
    #[test]
    fn days_keep_the_time_of_day_across_a_change_of_the_clocks() {
        let london = ProcessZone::named("Europe/London").unwrap();
        let friday = millis("2026-10-23T08:00:00Z"); // 09:00 BST
        let days = Delay::parse("3d").unwrap().after(friday, &london).unwrap();
        assert_eq!(days, millis("2026-10-26T09:00:00Z")); // 09:00 GMT
        assert_eq!(london.show(days), "2026-10-26 09:00:00 GMT");
        let hours = Delay::parse("72h").unwrap().after(friday, &london).unwrap();
        assert_eq!(london.show(hours), "2026-10-26 08:00:00 GMT");
        // In UTC a day is 24 hours.
        assert_eq!(Delay::parse("3d").unwrap().after(friday, &ProcessZone::utc()), Ok(friday + 72 * 3_600_000));
    }

    #[test]
    fn repeats_add_the_delay_again() {
        let zone = ProcessZone::utc();
        let delay = Delay::parse("10m").unwrap();
        assert_eq!(delay.after_times(0, 3, &zone), Ok(30 * 60_000));
        let late = millis("9950-01-01T00:00:00Z");
        assert!(matches!(Delay::parse("100y").unwrap().after(late, &zone), Err(DueError::Overflow { .. })));
        assert!(matches!(Delay::parse("1d").unwrap().after_times(0, u32::MAX, &zone), Err(DueError::Overflow { .. })));
    }

    #[test]
    fn zones_come_from_the_bundled_database() {
        assert_eq!(ProcessZone::of(None).unwrap().name(), "UTC");
        assert!(ProcessZone::named("America/New_York").is_ok());
        assert_eq!(
            ProcessZone::named("Europe/Londres").map(|z| z.name().to_owned()),
            Err(ZoneError { name: "Europe/Londres".to_owned() })
        );
    }

    #[test]
    fn a_date_field_is_due_at_midnight_in_the_process_zone() {
        let london = ProcessZone::named("Europe/London").unwrap();
        let summer = NaiveDate::from_ymd_opt(2026, 7, 1).unwrap();
        let winter = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let data = BTreeMap::from([
            ("summer".to_owned(), Value::Date(summer)),
            ("winter".to_owned(), Value::Date(winter)),
            ("never".to_owned(), Value::Date(NaiveDate::default())),
            ("count".to_owned(), Value::Integer(3)),
        ]);
        let at = |field: &str| Due::AtField(field.to_owned()).at(0, &data, &london);
        assert_eq!(at("summer"), Ok(millis("2026-06-30T23:00:00Z")));
        assert_eq!(at("winter"), Ok(millis("2026-12-01T00:00:00Z")));
        assert_eq!(Due::AtField("summer".into()).at(0, &data, &ProcessZone::utc()), Ok(millis("2026-07-01T00:00:00Z")));
        assert_eq!(at("never"), Err(DueError::Unset { field: "never".into() }));
        assert_eq!(at("missing"), Err(DueError::Unset { field: "missing".into() }));
        assert_eq!(at("count"), Err(DueError::NotATime { field: "count".into(), got: "integer" }));
    }

    #[test]
    fn a_datetime_field_is_due_at_its_instant() {
        let at = DateTime::<Utc>::from_timestamp(millis("2026-12-06T10:00:00Z") / 1000, 0).unwrap();
        let data = BTreeMap::from([
            ("reply_by".to_owned(), Value::DateTime(at)),
            ("unset".to_owned(), Value::DateTime(DateTime::<Utc>::default())),
        ]);
        let london = ProcessZone::named("Europe/London").unwrap();
        assert_eq!(Due::AtField("reply_by".into()).at(0, &data, &london), Ok(millis("2026-12-06T10:00:00Z")));
        assert_eq!(Due::AtField("unset".into()).at(0, &data, &london), Err(DueError::Unset { field: "unset".into() }));
    }

    #[test]
    fn datetimes_are_read_with_an_offset_or_in_the_zone() {
        let london = ProcessZone::named("Europe/London").unwrap();
        let read = |text: &str| datetime_from_text(text, &london).map(|at| datetime_text(&at));
        for (text, utc) in [
            ("2026-12-06T10:00:00Z", "2026-12-06T10:00:00Z"),
            ("2026-12-06T11:00:00+01:00", "2026-12-06T10:00:00Z"),
            ("2026-12-06T10:00:00.750Z", "2026-12-06T10:00:00Z"),
            // Winter: London is on UTC; summer: an hour ahead.
            ("2026-12-06T10:00", "2026-12-06T10:00:00Z"),
            ("2026-07-06 10:00:00", "2026-07-06T09:00:00Z"),
            // Skipped by the clocks (01:00 → 02:00 on 29 March 2026).
            ("2026-03-29T01:30", "2026-03-29T01:30:00Z"),
        ] {
            assert_eq!(read(text).as_deref(), Ok(utc), "{text}");
        }
        for text in ["2026-12-06", "tomorrow", "2026-13-01T10:00", "2026-12-06T25:00Z", "", "10:00"] {
            assert_eq!(read(text), Err(None), "{text}");
        }
        assert_eq!(read("0000-12-06T10:00:00Z"), Err(Some("the year must be from 0001 to 9999")));
    }

    /// Regression: a fraction of a second before 1970 was rounded up, not
    /// dropped (jiff counts an earlier instant's seconds towards zero), and
    /// half a second before 1970 became 1970-01-01T00:00:00Z, which a
    /// deadline takes for "never set".
    #[test]
    fn a_fraction_of_a_second_before_1970_is_dropped_too() {
        let utc = ProcessZone::utc();
        let read = |text: &str| datetime_from_text(text, &utc).map(|at| datetime_text(&at));
        assert_eq!(read("1969-12-31T23:59:58.500Z").as_deref(), Ok("1969-12-31T23:59:58Z"));
        assert_eq!(read("1969-12-31T23:59:59.5Z").as_deref(), Ok("1969-12-31T23:59:59Z"));
        assert_eq!(read("1900-01-01T00:00:00.999Z").as_deref(), Ok("1900-01-01T00:00:00Z"));
        let script = datetime_with_offset("1969-12-31T23:59:59.250Z").map(|at| datetime_text(&at));
        assert_eq!(script.as_deref(), Ok("1969-12-31T23:59:59Z"));
    }

    /// Regression: a date-time that names its zone in brackets (RFC 9557,
    /// as `java.time` and Temporal write it) but no offset was read in the
    /// process's zone, the bracket ignored: 10:00 in New York became 10:00
    /// UTC, four hours early.
    #[test]
    fn a_datetime_naming_its_zone_is_read_in_that_zone() {
        let utc = ProcessZone::utc();
        let read = |text: &str| datetime_from_text(text, &utc).map(|at| datetime_text(&at));
        assert_eq!(read("2026-07-06T10:00:00[America/New_York]").as_deref(), Ok("2026-07-06T14:00:00Z"));
        assert_eq!(read("2026-07-06T10:00[Europe/London]").as_deref(), Ok("2026-07-06T09:00:00Z"));
        // With an offset too, the offset says which instant, as before.
        assert_eq!(read("2026-07-06T10:00:00-04:00[America/New_York]").as_deref(), Ok("2026-07-06T14:00:00Z"));
        assert_eq!(
            read("2026-07-06T10:00:00[Mars/Olympus_Mons]"),
            Err(Some("the time zone in brackets is unknown: write an IANA name such as Europe/London"))
        );
    }

    /// Regression: a duration shorter than a millisecond (`1ns`, `500µs`)
    /// passed as "longer than zero", yet came to no time at all in the
    /// engine's milliseconds: a deadline due the moment its wait began.
    #[test]
    fn a_duration_shorter_than_a_millisecond_is_refused() {
        for text in ["1ns", "999µs", "PT0.0001S", "0.5ms"] {
            assert_eq!(
                Delay::parse(text).map(|d| d.text().to_owned()).map_err(|e| e.to_string()),
                Err(format!("`{text}` is shorter than a millisecond: it would fall due at once")),
            );
        }
        assert_eq!(Delay::parse("1ms").unwrap().after(0, &ProcessZone::utc()), Ok(1));
        assert_eq!(Delay::parse("1d 1ns").unwrap().after(0, &ProcessZone::utc()), Ok(86_400_000));
    }

    /// Regression: `9000y` passed validation though no wait can ever be
    /// given that deadline (it ends past the last time flowdesk holds), and
    /// `10000000d` was called "not a duration".
    #[test]
    fn a_duration_longer_than_a_hundred_years_is_refused() {
        for text in ["9000y", "101y", "1000000d", "10000000d", "99999999999999999999h", "P19999Y", "1201mo"] {
            assert_eq!(
                Delay::parse(text).map(|d| d.text().to_owned()).map_err(|e| e.to_string()),
                Err(format!("`{text}` is too long: a duration may be at most 100 years")),
            );
        }
        for text in ["100y", "P100Y", "36500d", "1200mo", "5200w", "876000h"] {
            assert!(Delay::parse(text).is_ok(), "{text}");
        }
        // Still unreadable, not too long.
        for text in ["1.5.3h", "30", "0.9999999999999h"] {
            assert!(matches!(Delay::parse(text), Err(DelayError::Unreadable { .. })), "{text}");
        }
    }

    /// Regression: 9999-12-31, the last date a date field holds (and the
    /// "never" of many a business system), had no midnight: past jiff's
    /// last instant, so a deadline at that field could not be worked out.
    #[test]
    fn the_last_date_a_field_holds_still_has_a_midnight() {
        let last = NaiveDate::from_ymd_opt(9999, 12, 31).unwrap();
        let data = BTreeMap::from([("until".to_owned(), Value::Date(last))]);
        let at = |zone: &str| Due::AtField("until".into()).at(0, &data, &ProcessZone::named(zone).unwrap());
        assert_eq!(at("UTC"), Ok(253_402_214_400_000));
        // Eight hours behind UTC in December.
        assert_eq!(at("America/Los_Angeles"), Ok(253_402_214_400_000 + 8 * 3_600_000));
        // Eleven hours ahead (summer there).
        assert_eq!(at("Australia/Sydney"), Ok(253_402_214_400_000 - 11 * 3_600_000));
    }
}
