//! The bulk forms of `retry`, `stop`, `resume`, `goto` and `finish`: one
//! action over every instance or server item a selection names (a filter,
//! a file of ids or serials), through [`Engine::bulk_select`](crate::engine::Engine::bulk_select).
//!
//! The single forms (`flowdesk retry 7`, `flowdesk finish 7_2`) are
//! untouched: a command is bulk only when a selection option is given.
//! A bulk command prints what would be touched with `--dry-run` (the count,
//! then one target a line, then those that would be refused with why) and
//! otherwise a summary ("9,998 done, 2 refused") followed by each refusal
//! with its reason; `--json` says the
//! same per target. Exit code: 0 when every target was done (an empty
//! selection included), 1 when any was refused or failed, 2 for a usage
//! error; so a script can tell "all done" from "look at the list".

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use serde_json::{Value as Json, json};

use super::{Cli, Failure};
use crate::engine::bulk::thousands;
use crate::engine::{
    BulkAction, BulkProgress, BulkReport, EngineError, InstanceFilter, InstanceStatus, ItemFilter, Outcome, Progress,
    Selection, Serial, Target,
};
use crate::runtime::RuntimeEngine;

/// Which instances (or items) a bulk command acts on; any of them makes
/// the command a bulk one.
#[derive(Debug, Args, Default)]
#[group(id = "selection", multiple = true, required = false)]
pub struct SelectArgs {
    /// Bulk: the instances of this process
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
    /// Bulk: the instances in this status (running, active, completed, error, stopped)
    #[arg(long, value_parser = super::parse_status)]
    pub status: Option<InstanceStatus>,
    /// Bulk: the instances whose folio contains this text (or with this id)
    #[arg(long, value_name = "TEXT")]
    pub search: Option<String>,
    /// Bulk: the instances whose ids FILE lists, one a line (`-`: standard input)
    #[arg(long, value_name = "FILE")]
    pub ids: Option<PathBuf>,
}

/// What a bulk command prints.
#[derive(Debug, Args, Default)]
pub struct BulkOutput {
    /// Bulk: print how many and which targets the command would act on, and change nothing
    #[arg(long, requires = "selection")]
    pub dry_run: bool,
    /// Bulk: the report (or the dry run's list) as JSON, per target
    #[arg(long, requires = "selection")]
    pub json: bool,
}

/// The arguments of `retry`, `stop` and `resume`: one instance by id, or
/// every instance a selection names.
#[derive(Debug, Args)]
pub struct InstanceArgs {
    #[arg(required_unless_present = "selection", conflicts_with = "selection")]
    pub id: Option<i64>,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub output: BulkOutput,
}

impl InstanceArgs {
    /// Runs the command: `single` on the instance the id names (its answer
    /// said as "`verb` instance N: ..."), else `action` over the selection.
    pub(super) fn run(
        &self,
        cli: &Cli,
        out: &mut dyn Write,
        action: BulkAction,
        verb: &str,
        single: impl FnOnce(&RuntimeEngine, &str, i64) -> Result<Progress, EngineError>,
    ) -> Result<ExitCode, Failure> {
        match self.id {
            Some(id) => super::operator(cli, verb, |engine, user| single(engine, user, id)),
            None => run(cli, out, &action, &self.select.instances()?, self.output.dry_run, self.output.json),
        }
    }
}

impl SelectArgs {
    /// Whether any option makes the command a bulk one.
    pub fn is_bulk(&self) -> bool {
        self.process.is_some() || self.status.is_some() || self.search.is_some() || self.ids.is_some()
    }

    fn filter(&self) -> InstanceFilter {
        InstanceFilter {
            process: self.process.clone(),
            status: self.status,
            search: self.search.clone(),
            ..InstanceFilter::default()
        }
    }

    /// The selection of instances the options name.
    pub(super) fn instances(&self) -> Result<Selection, Failure> {
        let filtered = self.process.is_some() || self.status.is_some() || self.search.is_some();
        match &self.ids {
            Some(_) if filtered => Err(Failure::Other(anyhow::anyhow!(
                "--ids names the instances itself: it cannot be combined with --process, --status or --search"
            ))),
            Some(file) => Ok(Selection::Instances(read_list(file, "instance id", |line| {
                line.parse::<i64>().map_err(|_| format!("`{line}` is not an instance id"))
            })?)),
            None => Ok(Selection::MatchingInstances(self.filter())),
        }
    }
}

/// The bulk form of `finish`: which items.
#[derive(Debug, Args, Default)]
pub struct FinishSelectArgs {
    /// Bulk: the server items whose serials FILE lists, one a line (`-`: standard input)
    #[arg(long, value_name = "FILE", group = "selection")]
    pub serials: Option<PathBuf>,
    #[command(flatten)]
    pub select: SelectArgs,
}

impl FinishSelectArgs {
    pub fn is_bulk(&self) -> bool {
        self.serials.is_some() || self.select.is_bulk()
    }

    /// The selection of items: the file's serials; the pending items of the
    /// instances the options match when a status or ids say which; else
    /// every pending item matching the process and search.
    pub(super) fn items(&self) -> Result<Selection, Failure> {
        let select = &self.select;
        match &self.serials {
            Some(_) if select.is_bulk() => Err(Failure::Other(anyhow::anyhow!(
                "--serials names the items itself: it cannot be combined with --process, --status, --search or --ids"
            ))),
            Some(file) => Ok(Selection::Serials(read_list(file, "serial", |line| {
                line.parse::<Serial>().map_err(|err| err.to_string())
            })?)),
            None if select.status.is_some() || select.ids.is_some() => select.instances(),
            None => Ok(Selection::MatchingItems(ItemFilter {
                process: select.process.clone(),
                search: select.search.clone(),
                ..ItemFilter::default()
            })),
        }
    }
}

/// Reads one value a line from `file` (`-`: standard input), blank lines
/// and spaces around a value ignored; the first line that does not parse
/// refuses the whole file, naming its line, before anything is done.
fn read_list<T>(file: &Path, what: &str, parse: impl Fn(&str) -> Result<T, String>) -> Result<Vec<T>, Failure> {
    let reader: Box<dyn BufRead> = if file == Path::new("-") {
        Box::new(std::io::stdin().lock())
    } else {
        let opened = std::fs::File::open(file).with_context(|| format!("cannot read {}", file.display()))?;
        Box::new(std::io::BufReader::new(opened))
    };
    let name = if file == Path::new("-") { "standard input".to_owned() } else { file.display().to_string() };
    let mut values = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {name}"))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let value =
            parse(line).map_err(|why| anyhow::anyhow!("{name}, line {}: {why} (one {what} a line)", index + 1))?;
        values.push(value);
    }
    Ok(values)
}

/// Runs a bulk command: the dry run's list, or the action and its report.
pub fn run(
    cli: &Cli,
    out: &mut dyn Write,
    action: &BulkAction,
    selection: &Selection,
    dry_run: bool,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let runtime = super::open_runtime(cli)?;
    let engine = runtime.engine();
    let user = cli.acting_user();
    if dry_run {
        let targets = engine.bulk_targets(&user, action, selection)?;
        let foreseen = engine.bulk_foresee(&user, action, &targets)?;
        dry_run_list(out, action, &targets, foreseen, as_json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = engine.bulk_select(&user, action, selection, &BulkProgress::new())?;
    let all_done = report.all_done();
    print_report(out, report, as_json)?;
    Ok(if all_done { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn target_noun(action: &BulkAction, count: usize) -> &'static str {
    match (action.on_items(), count) {
        (true, 1) => "server item",
        (true, _) => "server items",
        (false, 1) => "instance",
        (false, _) => "instances",
    }
}

fn target_json(target: &Target) -> Json {
    match target {
        Target::Instance(id) => json!({ "instance_id": id }),
        Target::Item(serial) => json!({ "serial": serial.to_string(), "instance_id": serial.instance_id }),
    }
}

/// What a dry run prints: the targets the action would act on, then those
/// it would refuse with why (the refusal the action would answer now).
fn dry_run_list(
    out: &mut dyn Write,
    action: &BulkAction,
    targets: &[Target],
    foreseen: Vec<Option<EngineError>>,
    as_json: bool,
) -> std::io::Result<()> {
    let refused = foreseen.iter().flatten().count();
    if as_json {
        let listed: Vec<Json> = targets
            .iter()
            .zip(foreseen)
            .map(|(target, refusal)| {
                let mut value = target_json(target);
                if let (Json::Object(map), Some(err)) = (&mut value, refusal) {
                    map.insert("error".to_owned(), json!(one_line(&err)));
                    map.insert("code".to_owned(), json!(crate::net::error_code(err)));
                }
                value
            })
            .collect();
        let value = json!({
            "action": action.verb(),
            "dry_run": true,
            "count": targets.len(),
            "refused": refused,
            "targets": listed,
        });
        return writeln!(out, "{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    let done = targets.len() - refused;
    let noun = target_noun(action, done);
    let failing = foreseen.iter().flatten().filter(|err| !err.is_refusal()).count();
    let mut refusals = String::new();
    if refused > failing {
        refusals.push_str(&format!(", {} would be refused", thousands(refused - failing)));
    }
    if failing > 0 {
        refusals.push_str(&format!(", {} would fail", thousands(failing)));
    }
    writeln!(out, "would {} {} {noun}{refusals} (dry run: nothing was changed)", action.verb(), thousands(done))?;
    for (target, _) in targets.iter().zip(&foreseen).filter(|(_, refusal)| refusal.is_none()) {
        writeln!(out, "{target}")?;
    }
    for (target, refusal) in targets.iter().zip(&foreseen) {
        if let Some(err) = refusal {
            let fate = if err.is_refusal() { "would be refused" } else { "would fail" };
            writeln!(out, "{fate}: {target}: {}", one_line(err))?;
        }
    }
    Ok(())
}

fn print_report(out: &mut dyn Write, report: BulkReport, as_json: bool) -> std::io::Result<()> {
    if as_json {
        let summary = report.summary();
        let (total, done) = (report.total(), report.done());
        let (refused, failed) = (report.refused().count(), report.failed().count());
        let verb = report.action.verb();
        let results: Vec<Json> = report
            .outcomes
            .into_iter()
            .map(|(target, outcome)| {
                let mut value = target_json(&target);
                if let Json::Object(map) = &mut value {
                    let (result, extra) = outcome_json(outcome);
                    map.insert("result".to_owned(), json!(result));
                    map.extend(extra);
                }
                value
            })
            .collect();
        let value = json!({
            "action": verb,
            "total": total,
            "done": done,
            "refused": refused,
            "failed": failed,
            "summary": summary,
            "results": results,
        });
        return writeln!(out, "{}", serde_json::to_string_pretty(&value).unwrap_or_default());
    }
    writeln!(out, "{}", report.summary())?;
    for (target, err) in report.refused() {
        writeln!(out, "refused: {target}: {}", one_line(err))?;
    }
    for (target, err) in report.failed() {
        writeln!(out, "failed: {target}: {}", one_line(err))?;
    }
    Ok(())
}

fn one_line(err: &EngineError) -> String {
    err.to_string().lines().next().unwrap_or_default().to_owned()
}

/// A target's outcome as JSON: its word and its fields.
fn outcome_json(outcome: Outcome) -> (&'static str, serde_json::Map<String, Json>) {
    let mut map = serde_json::Map::new();
    let word = match outcome {
        Outcome::Done { applied, progress } => {
            map.insert("status".to_owned(), json!(progress.status.name()));
            map.insert("applied".to_owned(), json!(applied));
            "done"
        }
        Outcome::Refused(err) => {
            map.insert("error".to_owned(), json!(one_line(&err)));
            map.insert("code".to_owned(), json!(crate::net::error_code(err)));
            "refused"
        }
        Outcome::Failed(err) => {
            map.insert("error".to_owned(), json!(one_line(&err)));
            map.insert("code".to_owned(), json!(crate::net::error_code(err)));
            "failed"
        }
        Outcome::NotReached => "not_reached",
    };
    (word, map)
}
