//! Printing engine answers as tables, sentences or `--json`.

use comfy_table::{Table, presets};
use serde_json::{Value as Json, json};

use crate::engine::{
    Deployed, Finished, InstanceDetail, InstanceStatus, InstanceSummary, ItemStatus, Millis, ProcessSummary, Progress,
    ServerItem, format_time,
};
use crate::model::Right;

fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table.load_style(presets::NOTHING).set_header(header.to_vec());
    table
}

fn print_json(value: &Json) {
    // A `serde_json::Value` always serialises.
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

/// ISO 8601 for machines.
fn iso(at: Millis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// How long ago, to the second, as people read it ("3m 12s").
pub fn age(now: Millis, then: Millis) -> String {
    let seconds = ((now - then).max(0) / 1000) as u64;
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}

pub fn right_list(rights: &[Right]) -> String {
    rights.iter().map(|r| r.title()).collect::<Vec<_>>().join(", ")
}

/// What an instance does now, in words.
pub fn progress_words(progress: &Progress) -> String {
    match progress.status {
        InstanceStatus::Completed => "completed".to_owned(),
        InstanceStatus::Active if !progress.waiting.is_empty() => {
            format!("waiting for a callback on {}", progress.waiting.join(", "))
        }
        InstanceStatus::Error => match &progress.failure {
            Some(f) if f.event.is_empty() => format!("in error at `{}`: {}", f.activity, f.message),
            Some(f) => format!("in error at `{}` / `{}`: {}", f.activity, f.event, f.message),
            None => "in error".to_owned(),
        },
        status => status.name().to_lowercase(),
    }
}

fn progress_json(progress: &Progress) -> Json {
    json!({
        "id": progress.instance_id,
        "status": progress.status.name(),
        "waiting": progress.waiting,
        "error": progress.failure.as_ref().map(|f| json!({
            "activity": f.activity, "event": f.event, "message": f.message, "at": iso(f.at),
        })),
    })
}

pub fn deployed(deployed: &Deployed, as_json: bool) {
    if as_json {
        print_json(&json!({
            "process": deployed.process,
            "version": deployed.version,
            "warnings": deployed.warnings.iter().map(|w| w.to_string()).collect::<Vec<_>>(),
        }));
    } else {
        println!("{} version {}", deployed.process, deployed.version);
    }
}

pub fn processes(processes: &[ProcessSummary], as_json: bool) {
    if as_json {
        print_json(&json!(processes));
        return;
    }
    let mut out = table(&["PROCESS", "DEFAULT VERSION", "VERSIONS"]);
    for p in processes {
        out.add_row(vec![p.name.clone(), p.default_version.to_string(), p.versions.to_string()]);
    }
    println!("{out}");
}

pub fn started(progress: &Progress, as_json: bool) {
    if as_json {
        print_json(&progress_json(progress));
    } else {
        println!("{}", progress.instance_id);
        eprintln!("instance {}: {}", progress.instance_id, progress_words(progress));
    }
}

pub fn instances(instances: &[InstanceSummary], as_json: bool) {
    if as_json {
        let rows: Vec<Json> = instances
            .iter()
            .map(|i| {
                json!({
                    "id": i.id, "status": i.status.name(), "folio": i.folio, "process": i.process,
                    "version": i.version, "originator": i.originator,
                    "started": iso(i.started_at), "updated": iso(i.updated_at),
                })
            })
            .collect();
        print_json(&Json::Array(rows));
        return;
    }
    if instances.is_empty() {
        println!("no instances");
        return;
    }
    let mut out = table(&["ID", "FOLIO", "PROCESS", "STATUS", "ORIGINATOR", "STARTED", "LAST CHANGE"]);
    for i in instances {
        out.add_row(vec![
            i.id.to_string(),
            i.folio.clone(),
            format!("{} v{}", i.process, i.version),
            i.status.name().to_owned(),
            i.originator.clone(),
            format_time(i.started_at),
            format_time(i.updated_at),
        ]);
    }
    println!("{out}");
}

pub fn instance(detail: &InstanceDetail, as_json: bool) {
    let s = &detail.summary;
    if as_json {
        let data: serde_json::Map<String, Json> =
            detail.fields.iter().map(|(name, _, value)| (name.clone(), value.to_json())).collect();
        print_json(&json!({
            "id": s.id, "status": s.status.name(), "folio": s.folio, "process": s.process,
            "version": s.version, "originator": s.originator,
            "started": iso(s.started_at), "updated": iso(s.updated_at),
            "data": data,
            "pending": detail.pending_items.iter().map(|i| i.serial.to_string()).collect::<Vec<_>>(),
            "error": detail.failure.as_ref().map(|f| json!({
                "activity": f.activity, "event": f.event, "message": f.message, "at": iso(f.at),
            })),
            "audit": detail.audit.iter().map(|a| json!({
                "at": iso(a.at), "user": a.user, "action": a.action, "detail": a.detail,
            })).collect::<Vec<_>>(),
        }));
        return;
    }
    println!("Instance {}  {}", s.id, s.status.name());
    if !s.folio.is_empty() {
        println!("  folio       {}", s.folio);
    }
    println!("  process     {} version {}", s.process, s.version);
    println!("  originator  {}", s.originator);
    println!("  started     {}", format_time(s.started_at));
    println!("  last change {}", format_time(s.updated_at));
    if let Some(f) = &detail.failure {
        println!("  error       at `{}` {}: {}", f.activity, f.event, f.message);
    }
    println!();
    println!("Data fields");
    let mut fields = table(&["FIELD", "TYPE", "VALUE"]);
    for (name, field_type, value) in &detail.fields {
        fields.add_row(vec![name.clone(), field_type.name().to_owned(), value.to_string()]);
    }
    println!("{fields}");
    println!();
    if detail.pending_items.is_empty() {
        println!("Pending server items: none");
    } else {
        println!("Pending server items");
        let mut items = table(&["SERIAL", "ACTIVITY", "EVENT", "WAITING SINCE"]);
        for item in &detail.pending_items {
            items.add_row(vec![
                item.serial.to_string(),
                item.activity.clone(),
                item.event.clone(),
                format_time(item.created_at),
            ]);
        }
        println!("{items}");
    }
    println!();
    println!("Audit trail");
    let mut audit = table(&["TIME", "USER", "ACTION", "DETAIL"]);
    for entry in &detail.audit {
        audit.add_row(vec![format_time(entry.at), entry.user.clone(), entry.action.clone(), entry.detail.clone()]);
    }
    println!("{audit}");
}

pub fn items(items: &[ServerItem], now: Millis, all: bool, as_json: bool) {
    if as_json {
        let rows: Vec<Json> = items
            .iter()
            .map(|i| {
                json!({
                    "serial": i.serial.to_string(), "instance_id": i.serial.instance_id,
                    "status": i.status.name(), "event": i.event, "activity": i.activity,
                    "folio": i.folio, "process": i.process, "created": iso(i.created_at),
                    "closed": i.closed_at.map(iso), "closed_by": i.closed_by,
                })
            })
            .collect();
        print_json(&Json::Array(rows));
        return;
    }
    if items.is_empty() {
        println!("{}", if all { "no server items" } else { "no pending server items" });
        return;
    }
    let mut header = vec!["SERIAL", "INSTANCE", "FOLIO", "PROCESS", "ACTIVITY", "EVENT", "AGE"];
    if all {
        header.extend(["STATUS", "CLOSED BY"]);
    }
    let mut out = table(&header);
    for i in items {
        let mut row = vec![
            i.serial.to_string(),
            i.serial.instance_id.to_string(),
            i.folio.clone(),
            i.process.clone(),
            i.activity.clone(),
            i.event.clone(),
            age(now, i.created_at),
        ];
        if all {
            row.push(i.status.name().to_owned());
            row.push(match (&i.closed_by, i.closed_at) {
                (Some(by), Some(at)) if i.status != ItemStatus::Pending => {
                    format!("{by}, {}", format_time(at))
                }
                _ => String::new(),
            });
        }
        out.add_row(row);
    }
    println!("{out}");
}

pub fn finished(finished: &Finished, as_json: bool) {
    if as_json {
        let mut value = progress_json(&finished.progress);
        if let Json::Object(map) = &mut value {
            map.insert("serial".to_owned(), json!(finished.serial));
            map.insert("applied".to_owned(), json!(finished.applied));
        }
        print_json(&value);
        return;
    }
    let progress = &finished.progress;
    if finished.applied {
        println!("finished {}: instance {} {}", finished.serial, progress.instance_id, progress_words(progress));
    } else {
        let why = match progress.status {
            InstanceStatus::Stopped => "the instance is stopped; it is applied when the instance resumes",
            InstanceStatus::Error => "the instance is in error; it is applied when the failed step is retried",
            _ => "the event's script is still running; it is applied when the script ends",
        };
        println!("finished {}: recorded; {why}", finished.serial);
    }
}

pub fn rights(rights: &[(String, Right)]) {
    let mut out = table(&["USER", "RIGHT"]);
    for (user, right) in rights {
        out.add_row(vec![user.clone(), right.key().to_owned()]);
    }
    println!("{out}");
}
