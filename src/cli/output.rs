//! Printing engine answers as tables, sentences or `--json`.

use std::io::{self, Write};

use comfy_table::{Table, presets};
use serde_json::{Value as Json, json};

use crate::engine::instance::ActivityStatus;
use crate::engine::{
    AuditAction, AuditEntry, Deployed, Finished, FiringRound, InstanceDetail, InstanceStatus, InstanceSummary,
    ItemStatus, Millis, ProcessSummary, Progress, ServerItem, format_age, format_step, format_time, trail_steps,
};
use crate::model::Right;

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header.to_vec());
    table
}

fn print_json(out: &mut dyn Write, value: &Json) -> io::Result<()> {
    // A `serde_json::Value` always serialises.
    writeln!(out, "{}", serde_json::to_string_pretty(value).unwrap_or_default())
}

/// ISO 8601 for machines.
fn iso(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// When something falls due, against `now`: "in 2h 5m", "overdue 3m 12s",
/// or nothing when nothing is due.
pub fn due_words(now: Millis, due_at: Option<Millis>) -> String {
    match due_at {
        None => String::new(),
        Some(due) if due > now => format!("in {}", format_age(due, now)),
        Some(due) if now - due < 1_000 => "due now".to_owned(),
        Some(due) => format!("overdue {}", format_age(now, due)),
    }
}

pub fn right_list(rights: &[Right]) -> String {
    rights.iter().map(|r| r.title()).collect::<Vec<_>>().join(", ")
}

/// Where an instance stands by activity, read back after a call moved it:
/// what a user needs to know besides its status (the activity it completed
/// at tells `Approved` from `Rejected`).
#[derive(Debug, Default)]
pub struct Whereabouts {
    /// Activities the instance completed at: those it completed with no line
    /// out of them firing. Empty unless the instance is completed.
    completed_at: Vec<String>,
    /// Each pending serial with its activity and event.
    waiting_at: Vec<WaitingItem>,
}

#[derive(Debug)]
struct WaitingItem {
    serial: String,
    activity: String,
    event: String,
}

impl Whereabouts {
    pub fn of(detail: &InstanceDetail) -> Whereabouts {
        let mut completed_at: Vec<String> = Vec::new();
        if detail.summary.status == InstanceStatus::Completed {
            let mut ends: Vec<_> = detail
                .activities
                .iter()
                .filter(|a| a.status == ActivityStatus::Completed)
                .filter(|a| !detail.lines.iter().any(|l| l.fired && l.from_destination_id == a.destination_id))
                .collect();
            ends.sort_by_key(|a| (a.finished_at, a.destination_id));
            for end in ends {
                if !completed_at.contains(&end.activity) {
                    completed_at.push(end.activity.clone());
                }
            }
        }
        let waiting_at = detail
            .pending_items
            .iter()
            .map(|i| WaitingItem { serial: i.serial.to_string(), activity: i.activity.clone(), event: i.event.clone() })
            .collect();
        Whereabouts { completed_at, waiting_at }
    }

    fn waiting_item(&self, serial: &str) -> Option<&WaitingItem> {
        self.waiting_at.iter().find(|w| w.serial == serial)
    }
}

/// What the instance does now, in words, naming activities where they are
/// known ("completed at `Approved`", "waiting for a callback on 7_2 at `Call
/// external system`"); the engine's own words otherwise.
pub fn progress_words(progress: &Progress, whereabouts: &Whereabouts) -> String {
    let names = |names: &[String]| names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>();
    match progress.status {
        InstanceStatus::Completed if !whereabouts.completed_at.is_empty() => {
            format!("completed at {}", and_list(&names(&whereabouts.completed_at)))
        }
        InstanceStatus::Active if !progress.waiting.is_empty() => {
            let serials: Vec<String> = progress
                .waiting
                .iter()
                .map(|serial| match whereabouts.waiting_item(serial) {
                    // An activity's events are often named as it is: say the
                    // event only when it tells more.
                    Some(w) if w.event != w.activity => format!("{serial} at `{}` / `{}`", w.activity, w.event),
                    Some(w) => format!("{serial} at `{}`", w.activity),
                    None => serial.clone(),
                })
                .collect();
            let callbacks = if serials.len() == 1 { "a callback" } else { "callbacks" };
            format!("waiting for {callbacks} on {}", and_list(&serials))
        }
        _ => progress.words(),
    }
}

/// "a", "a and b", "a, b and c".
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn progress_json(progress: &Progress, whereabouts: &Whereabouts) -> Json {
    let waiting_at: serde_json::Map<String, Json> = progress
        .waiting
        .iter()
        .filter_map(|serial| whereabouts.waiting_item(serial))
        .map(|w| (w.serial.clone(), json!({ "activity": w.activity, "event": w.event })))
        .collect();
    json!({
        "id": progress.instance_id,
        "status": progress.status.name(),
        "waiting": progress.waiting,
        "waiting_at": waiting_at,
        "completed_at": whereabouts.completed_at,
        "error": progress.failure.as_ref().map(|f| json!({
            "activity": f.activity, "event": f.event, "message": f.message, "at": iso(f.at),
        })),
    })
}

/// `user` deployed it. Version 1 is always a new process, whose deployer the
/// engine makes its Admin; a later version needed Admin to deploy.
pub fn deployed(out: &mut dyn Write, deployed: &Deployed, user: &str, as_json: bool) -> io::Result<()> {
    let new_process = deployed.version == 1;
    if as_json {
        print_json(
            out,
            &json!({
                "process": deployed.process,
                "version": deployed.version,
                "new_process": new_process,
                "warnings": deployed.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
                "indexed": deployed.indexed,
            }),
        )?;
        return Ok(());
    }
    if !deployed.indexed.is_empty() {
        writeln!(
            out,
            "indexed searchable fields {} of every instance of {}",
            deployed.indexed.join(", "),
            deployed.process
        )?;
    }
    if new_process {
        writeln!(out, "{} version 1, a new process: {user} holds its Admin right", deployed.process)?;
    } else {
        writeln!(
            out,
            "{} version {}, now the default: new instances start on it, running ones stay on theirs",
            deployed.process, deployed.version
        )?;
    }
    Ok(())
}

pub fn processes(out: &mut dyn Write, processes: &[ProcessSummary], as_json: bool) -> io::Result<()> {
    if as_json {
        print_json(out, &json!(processes))?;
        return Ok(());
    }
    let mut rows = table(&["PROCESS", "DEFAULT VERSION", "VERSIONS"]);
    for p in processes {
        rows.add_row(vec![p.name.clone(), p.default_version.to_string(), p.versions.to_string()]);
    }
    writeln!(out, "{rows}")?;
    Ok(())
}

pub fn started(out: &mut dyn Write, progress: &Progress, whereabouts: &Whereabouts, as_json: bool) -> io::Result<()> {
    if as_json {
        print_json(out, &progress_json(progress, whereabouts))?;
    } else {
        // The id alone on stdout, so `$(flowdesk start …)` captures it.
        writeln!(out, "{}", progress.instance_id)?;
        out.flush()?;
        eprintln!("instance {}: {}", progress.instance_id, progress_words(progress, whereabouts));
    }
    Ok(())
}

pub fn instances(out: &mut dyn Write, instances: &[InstanceSummary], now: Millis, as_json: bool) -> io::Result<()> {
    if as_json {
        let rows: Vec<Json> = instances
            .iter()
            .map(|i| {
                json!({
                    "id": i.id, "status": i.status.name(), "folio": i.folio, "process": i.process,
                    "version": i.version, "originator": i.originator,
                    "started": iso(i.started_at), "updated": iso(i.updated_at), "due": i.due_at.map(iso),
                    "parent": i.parent_id,
                })
            })
            .collect();
        print_json(out, &Json::Array(rows))?;
        return Ok(());
    }
    if instances.is_empty() {
        writeln!(out, "no instances")?;
        return Ok(());
    }
    // A due column only where something is due: most processes have no
    // deadlines, and their lists stay as they were.
    let due = instances.iter().any(|i| i.due_at.is_some());
    let mut header = vec!["ID", "FOLIO", "PROCESS", "STATUS", "ORIGINATOR", "STARTED", "LAST CHANGE"];
    if due {
        header.push("DUE");
    }
    let mut rows = table(&header);
    for i in instances {
        let mut row = vec![
            i.id.to_string(),
            i.folio.clone(),
            format!("{} v{}", i.process, i.version),
            i.status.name().to_owned(),
            i.originator.clone(),
            format_time(i.started_at),
            format_time(i.updated_at),
        ];
        if due {
            row.push(due_words(now, i.due_at));
        }
        rows.add_row(row);
    }
    writeln!(out, "{rows}")?;
    Ok(())
}

/// The instance whose sub-process event started this one, for `--json`.
fn parent_json(detail: &InstanceDetail) -> Json {
    match &detail.parent {
        Some(p) => json!({
            "id": p.instance_id, "process": p.process, "activity": p.activity, "event": p.event,
            "serial": p.serial().map(|s| s.to_string()), "depth": p.depth,
        }),
        None => Json::Null,
    }
}

/// The instances its sub-process events started, for `--json`.
fn children_json(detail: &InstanceDetail) -> Vec<Json> {
    let serial = |id: i64| format!("{}_{id}", detail.summary.id);
    detail
        .children
        .iter()
        .map(|c| {
            json!({
                "id": c.link.instance_id, "process": c.link.process, "version": c.link.version,
                "status": c.summary.as_ref().map(|s| s.status.name()),
                "serial": c.link.serial_id.map(serial), "started": iso(c.link.started_at),
            })
        })
        .collect()
}

/// An instance as `show` prints it; its trail only the lines of `kinds`
/// (every line when empty), each with the time since the line before it in
/// the whole trail.
pub fn instance(
    out: &mut dyn Write,
    detail: &InstanceDetail,
    now: Millis,
    as_json: bool,
    kinds: &[AuditAction],
) -> io::Result<()> {
    let s = &detail.summary;
    let trail: Vec<(&AuditEntry, Option<Millis>)> = detail
        .audit
        .iter()
        .zip(trail_steps(&detail.audit))
        .filter(|(entry, _)| kinds.is_empty() || kinds.contains(&entry.action))
        .collect();
    if as_json {
        let data: serde_json::Map<String, Json> =
            detail.fields.iter().map(|(name, _, value)| (name.clone(), value.to_json())).collect();
        print_json(
            out,
            &json!({
                "id": s.id, "status": s.status.name(), "folio": s.folio, "process": s.process,
                "version": s.version, "originator": s.originator,
                "started": iso(s.started_at), "updated": iso(s.updated_at),
                "data": data,
                "pending": detail.pending_items.iter().map(|i| i.serial.to_string()).collect::<Vec<_>>(),
                "due": s.due_at.map(iso),
                "timers": detail.timers.iter().map(|t| json!({
                    "serial": t.serial, "name": t.name, "action": t.action, "due": iso(t.due_at),
                })).collect::<Vec<_>>(),
                "error": detail.failure.as_ref().map(|f| json!({
                    "activity": f.activity, "event": f.event, "message": f.message, "at": iso(f.at),
                })),
                "parent": parent_json(detail),
                "children": children_json(detail),
                // The trail table's columns (the monitor's, and the text below).
                "audit": trail.iter().map(|(a, step)| json!({
                    "at": iso(a.at), "user": a.user, "action": a.action.name(),
                    "activity": a.place.as_ref().map(|p| p.activity.as_str()),
                    "event": a.place.as_ref().map(|p| p.event.as_str()).filter(|e| !e.is_empty()),
                    "detail": a.detail,
                    "since_previous_ms": step,
                })).collect::<Vec<_>>(),
            }),
        )?;
        return Ok(());
    }
    writeln!(out, "Instance {}  {}", s.id, s.status.name())?;
    if !s.folio.is_empty() {
        writeln!(out, "  folio       {}", s.folio)?;
    }
    writeln!(out, "  process     {} version {}", s.process, s.version)?;
    writeln!(out, "  originator  {}", s.originator)?;
    writeln!(out, "  started     {}", format_time(s.started_at))?;
    writeln!(out, "  last change {}", format_time(s.updated_at))?;
    if let Some(f) = &detail.failure {
        writeln!(out, "  error       at `{}` {}: {}", f.activity, f.event, f.message)?;
    }
    if let Some(parent) = &detail.parent {
        let waits = match parent.serial() {
            Some(serial) => format!(", which waits on {serial}"),
            None => String::new(),
        };
        writeln!(
            out,
            "  started by  instance {} ({}), event `{}` of `{}`{waits}",
            parent.instance_id, parent.process, parent.event, parent.activity
        )?;
    }
    for child in &detail.children {
        let status = child.summary.as_ref().map_or("gone", |s| s.status.name());
        let how = if child.link.serial_id.is_some() { "waited for" } else { "started" };
        writeln!(
            out,
            "  child       instance {} ({} version {}, {status}), {how} at {}",
            child.link.instance_id,
            child.link.process,
            child.link.version,
            format_time(child.link.started_at)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Data fields")?;
    let mut fields = table(&["FIELD", "TYPE", "VALUE"]);
    for (name, field_type, value) in &detail.fields {
        fields.add_row(vec![name.clone(), field_type.name().to_owned(), value.to_string()]);
    }
    writeln!(out, "{fields}")?;
    writeln!(out)?;
    if detail.pending_items.is_empty() {
        writeln!(out, "Pending server items: none")?;
    } else {
        writeln!(out, "Pending server items")?;
        let mut items = table(&["SERIAL", "ACTIVITY", "EVENT", "WAITING SINCE"]);
        for item in &detail.pending_items {
            items.add_row(vec![
                item.serial.to_string(),
                item.activity.clone(),
                item.event.clone(),
                format_time(item.created_at),
            ]);
        }
        writeln!(out, "{items}")?;
    }
    if !detail.timers.is_empty() {
        writeln!(out)?;
        writeln!(out, "Pending timers")?;
        let mut timers = table(&["DUE", "", "SERIAL", "TIMER", "ACTION"]);
        for timer in &detail.timers {
            timers.add_row(vec![
                format_time(timer.due_at),
                due_words(now, Some(timer.due_at)),
                timer.serial.clone(),
                timer.name.clone(),
                timer.action.clone(),
            ]);
        }
        writeln!(out, "{timers}")?;
    }
    writeln!(out)?;
    writeln!(out, "Audit trail")?;
    let mut audit = table(&["TIME", "USER", "ACTION", "ACTIVITY / EVENT", "DETAIL", "SINCE PREVIOUS"]);
    for (entry, step) in &trail {
        audit.add_row(vec![
            format_time(entry.at),
            entry.user.clone(),
            entry.action.to_string(),
            entry.place.as_ref().map(|place| place.words()).unwrap_or_default(),
            entry.detail.clone(),
            step.map(format_step).unwrap_or_default(),
        ]);
    }
    writeln!(out, "{audit}")?;
    Ok(())
}

pub fn items(out: &mut dyn Write, items: &[ServerItem], now: Millis, all: bool, as_json: bool) -> io::Result<()> {
    if as_json {
        let rows: Vec<Json> = items
            .iter()
            .map(|i| {
                json!({
                    "serial": i.serial.to_string(), "instance_id": i.serial.instance_id,
                    "status": i.status.name(), "event": i.event, "activity": i.activity,
                    "folio": i.folio, "process": i.process, "created": iso(i.created_at),
                    "closed": i.closed_at.map(iso), "closed_by": i.closed_by, "due": i.due_at.map(iso),
                })
            })
            .collect();
        print_json(out, &Json::Array(rows))?;
        return Ok(());
    }
    if items.is_empty() {
        writeln!(out, "{}", if all { "no server items" } else { "no pending server items" })?;
        return Ok(());
    }
    let due = items.iter().any(|i| i.due_at.is_some());
    let mut header = vec!["SERIAL", "INSTANCE", "FOLIO", "PROCESS", "ACTIVITY", "EVENT", "AGE"];
    if due {
        header.push("DUE");
    }
    if all {
        header.extend(["STATUS", "CLOSED BY"]);
    }
    let mut rows = table(&header);
    for i in items {
        let mut row = vec![
            i.serial.to_string(),
            i.serial.instance_id.to_string(),
            i.folio.clone(),
            i.process.clone(),
            i.activity.clone(),
            i.event.clone(),
            format_age(now, i.created_at),
        ];
        if due {
            row.push(due_words(now, i.due_at));
        }
        if all {
            row.push(i.status.name().to_owned());
            row.push(match (&i.closed_by, i.closed_at) {
                (Some(by), Some(at)) if i.status != ItemStatus::Pending => {
                    format!("{by}, {}", format_time(at))
                }
                _ => String::new(),
            });
        }
        rows.add_row(row);
    }
    writeln!(out, "{rows}")?;
    Ok(())
}

pub fn finished(out: &mut dyn Write, finished: &Finished, whereabouts: &Whereabouts, as_json: bool) -> io::Result<()> {
    if as_json {
        let mut value = progress_json(&finished.progress, whereabouts);
        if let Json::Object(map) = &mut value {
            map.insert("serial".to_owned(), json!(finished.serial));
            map.insert("applied".to_owned(), json!(finished.applied));
        }
        print_json(out, &value)?;
        return Ok(());
    }
    let progress = &finished.progress;
    if finished.applied {
        let words = progress_words(progress, whereabouts);
        writeln!(out, "finished {}: instance {} {words}", finished.serial, progress.instance_id)?;
    } else {
        let why = match progress.status {
            InstanceStatus::Stopped => "the instance is stopped; it is applied when the instance resumes",
            InstanceStatus::Error => "the instance is in error; it is applied when the failed step is retried",
            _ => "the event's script is still running; it is applied when the script ends",
        };
        writeln!(out, "finished {}: recorded; {why}", finished.serial)?;
    }
    Ok(())
}

/// What `timers run` did: a line per instance a firing moved, then the count.
pub fn fired(out: &mut dyn Write, round: &FiringRound, as_json: bool) -> io::Result<()> {
    if as_json {
        let moved: Vec<Json> = round
            .progress
            .values()
            .map(|p| json!({ "id": p.instance_id, "status": p.status.name(), "waiting": p.waiting }))
            .collect();
        let failed: Vec<Json> =
            round.failed.iter().map(|(timer, err)| json!({ "timer": timer, "error": err.to_string() })).collect();
        return print_json(
            out,
            &json!({ "fired": round.fired, "held": round.held, "instances": moved, "failed": failed }),
        );
    }
    for progress in round.progress.values() {
        writeln!(out, "instance {}: {}", progress.instance_id, progress.words())?;
    }
    let timers = if round.fired == 1 { "timer" } else { "timers" };
    writeln!(out, "fired {} {timers}", round.fired)
}

pub fn rights(out: &mut dyn Write, rights: &[(String, Right)]) -> io::Result<()> {
    let mut rows = table(&["USER", "RIGHT"]);
    for (user, right) in rights {
        rows.add_row(vec![user.clone(), right.key().to_owned()]);
    }
    writeln!(out, "{rows}")?;
    Ok(())
}

pub fn token_created(
    out: &mut dyn Write,
    id: i64,
    user: &str,
    label: &str,
    secret: &str,
    as_json: bool,
) -> io::Result<()> {
    if as_json {
        return print_json(out, &json!({ "id": id, "user": user, "label": label, "secret": secret }));
    }
    // The secret alone on stdout, so `$(flowdesk token create …)` captures it.
    writeln!(out, "{secret}")
}

pub fn tokens(out: &mut dyn Write, tokens: &[crate::store::ApiToken], as_json: bool) -> io::Result<()> {
    if as_json {
        let rows: Vec<Json> = tokens
            .iter()
            .map(|t| {
                json!({
                    "id": t.id, "user": t.user, "label": t.label, "prefix": t.prefix,
                    "created": iso(t.created_at), "created_by": t.created_by,
                    "revoked": t.revoked_at.map(iso), "revoked_by": t.revoked_by,
                })
            })
            .collect();
        return print_json(out, &Json::Array(rows));
    }
    if tokens.is_empty() {
        return writeln!(out, "no tokens (create one with `flowdesk token create USER`)");
    }
    let mut rows = table(&["ID", "USER", "LABEL", "STARTS WITH", "CREATED", "BY", "REVOKED"]);
    for t in tokens {
        let revoked = match (&t.revoked_by, t.revoked_at) {
            (Some(by), Some(at)) => format!("{}, by {by}", format_time(at)),
            _ => String::new(),
        };
        rows.add_row(vec![
            t.id.to_string(),
            t.user.clone(),
            t.label.clone(),
            format!("{}…", t.prefix),
            format_time(t.created_at),
            t.created_by.clone(),
            revoked,
        ]);
    }
    writeln!(out, "{rows}")
}
