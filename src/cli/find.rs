//! `flowdesk instances`' filters beyond process, status and search, and its
//! `--csv` export: parsed here into the engine's `InstanceFilter`
//! (`engine::find` says what each means).

use clap::Args;

use crate::engine::{FieldCondition, InstanceFilter, Millis, TimeRange, parse_instant};

#[derive(Args, Debug, Clone, Default)]
pub struct FindArgs {
    /// Only instances of this version of --process
    #[arg(long)]
    pub version: Option<u32>,
    /// Only instances started at or after WHEN (YYYY-MM-DD, YYYY-MM-DD HH:MM in UTC, or RFC 3339)
    #[arg(long, value_name = "WHEN", value_parser = parse_instant)]
    pub started_after: Option<Millis>,
    /// Only instances started before WHEN
    #[arg(long, value_name = "WHEN", value_parser = parse_instant)]
    pub started_before: Option<Millis>,
    /// Only instances that completed at or after WHEN
    #[arg(long, value_name = "WHEN", value_parser = parse_instant)]
    pub ended_after: Option<Millis>,
    /// Only instances that completed before WHEN
    #[arg(long, value_name = "WHEN", value_parser = parse_instant)]
    pub ended_before: Option<Millis>,
    /// A data field's condition, e.g. 'amount > 100', 'name = "x"', 'name contains x' (with --process;
    /// = != < <= > >= for numbers and dates, = != contains for text, = != for booleans); repeat for several
    #[arg(long = "where", value_name = "CONDITION", value_parser = FieldCondition::parse)]
    pub conditions: Vec<FieldCondition>,
    /// Write every matching instance (not only --limit rows) as CSV to standard output; a text cell
    /// starting with = + - @ gets a ' in front so that spreadsheets do not run it
    #[arg(long, conflicts_with = "json")]
    pub csv: bool,
}

impl FindArgs {
    /// `filter` with these filters added.
    pub fn apply(&self, filter: InstanceFilter) -> InstanceFilter {
        InstanceFilter {
            version: self.version,
            started: TimeRange { after: self.started_after, before: self.started_before },
            ended: TimeRange { after: self.ended_after, before: self.ended_before },
            fields: self.conditions.clone(),
            ..filter
        }
    }
}

impl From<crate::engine::find::ExportError> for super::Failure {
    fn from(err: crate::engine::find::ExportError) -> super::Failure {
        match err {
            crate::engine::find::ExportError::Engine(err) => err.into(),
            crate::engine::find::ExportError::Write(err) => err.into(),
        }
    }
}

impl From<csv::Error> for super::Failure {
    fn from(err: csv::Error) -> super::Failure {
        match err.into_kind() {
            csv::ErrorKind::Io(err) => err.into(),
            other => super::Failure::Other(anyhow::anyhow!("cannot write the CSV: {other:?}")),
        }
    }
}
