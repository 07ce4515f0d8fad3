//! `flowdesk import` and `flowdesk export`: BPMN 2.0 files to process files
//! and back, and the BPMN side of `flowdesk deploy FILE.bpmn`.
//!
//! Files are written whole or not at all (a temporary file in the same
//! folder, renamed over the target), so a failed write never leaves half a
//! file where a good one was.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;

use super::Failure;
use crate::model::bpmn::{self, ImportOptions, Imported};
use crate::model::{ProcessDraft, Right, ScriptHost, Severity, validate};
use crate::runtime::RuntimeEngine;

/// Reads and imports a BPMN file.
pub fn read(file: &Path, process: Option<&str>) -> anyhow::Result<Imported> {
    let text = bpmn::read_file(file)?;
    let options = ImportOptions { process: process.map(str::to_owned) };
    bpmn::import(&text, &options).with_context(|| format!("cannot import {}", file.display()))
}

/// Where each of `count` imported processes is written: `output` itself
/// for one, else `output` with the process id before `.process.json`.
fn output_for(output: &Path, id: &str, count: usize) -> PathBuf {
    if count == 1 {
        return output.to_owned();
    }
    let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let stem = name.strip_suffix(".process.json").or_else(|| name.strip_suffix(".json")).unwrap_or(&name);
    let safe: String =
        id.chars().map(|c| if c.is_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    output.with_file_name(format!("{stem}.{safe}.process.json"))
}

/// Writes `text` to `path` whole, or leaves `path` as it was.
pub fn write_whole(path: &Path, text: &str) -> anyhow::Result<()> {
    let folder = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut temporary =
        tempfile::NamedTempFile::new_in(&folder).with_context(|| format!("cannot write in {}", folder.display()))?;
    temporary.write_all(text.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    temporary.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Output errors are the caller's `Failure`s (a closed pipe is no error:
/// the work is done); the rest say what could not be read or written.
///
/// `flowdesk import FILE.bpmn -o OUT.process.json`: exit 0 when every
/// imported process validates, 1 when one does not (it is written all the
/// same, for the designer to fix: the report and the problems say what).
pub fn import(
    out: &mut dyn Write,
    file: &Path,
    output: &Path,
    process: Option<&str>,
    as_json: bool,
) -> Result<ExitCode, Failure> {
    let imported = read(file, process)?;
    let host = ScriptHost::default();
    let count = imported.processes.len();
    let mut invalid = Vec::new();
    let mut results = Vec::new();
    for process in &imported.processes {
        let target = output_for(output, &process.id, count);
        write_whole(&target, &process.draft.to_json())?;
        let problems = validate(&process.draft, &host);
        let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
        if errors > 0 {
            invalid.push(format!("{} ({errors} error(s))", target.display()));
        }
        results.push((process, target, problems, errors));
    }
    if as_json {
        let processes: Vec<serde_json::Value> = results
            .iter()
            .map(|(process, target, problems, errors)| {
                json!({
                    "id": process.id,
                    "name": process.draft.name,
                    "output": target.display().to_string(),
                    "activities": process.draft.activities.len(),
                    "lines": process.draft.lines.len(),
                    "valid": *errors == 0,
                    "report": process.report,
                    "rights": process.rights.iter().map(|(user, right)| json!({ "user": user, "right": right.key() })).collect::<Vec<_>>(),
                    "problems": problems,
                })
            })
            .collect();
        let value = json!({ "file": file.display().to_string(), "report": imported.report, "processes": processes });
        writeln!(out, "{}", serde_json::to_string_pretty(&value).unwrap_or_default())?;
    } else {
        for entry in imported.report.entries() {
            writeln!(out, "{entry}")?;
        }
        for (process, target, problems, errors) in &results {
            let draft = &process.draft;
            writeln!(
                out,
                "imported process `{}` (id {}) into {}: {} activities, {} lines, {} report entries",
                draft.name,
                process.id,
                target.display(),
                draft.activities.len(),
                draft.lines.len(),
                process.report.entries().len()
            )?;
            for entry in process.report.entries() {
                writeln!(out, "  {entry}")?;
            }
            if !process.rights.is_empty() {
                writeln!(
                    out,
                    "  {} — granted by `flowdesk deploy` of this BPMN file, when the deploying user holds Admin on the process",
                    rights_line(&process.rights)
                )?;
            }
            for problem in problems {
                writeln!(out, "  {problem}")?;
            }
            if *errors == 0 {
                writeln!(out, "  valid, {} warning(s)", problems.len())?;
            }
        }
    }
    if invalid.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("flowdesk: imported, but not valid yet: {}; the report says what to fix", invalid.join(", "));
        Ok(ExitCode::from(1))
    }
}

/// `flowdesk export FILE.process.json -o OUT.bpmn`, and of `--process NAME`
/// with the `rights` users hold on it.
pub fn export(
    out: &mut dyn Write,
    draft: &ProcessDraft,
    rights: &[(String, Right)],
    output: &Path,
) -> Result<ExitCode, Failure> {
    let text = bpmn::export_with_rights(draft, rights).context("cannot export the process")?;
    write_whole(output, &text)?;
    let errors = validate(draft, &ScriptHost::default()).iter().filter(|p| p.severity == Severity::Error).count();
    writeln!(out, "exported `{}` as BPMN 2.0 to {}", draft.name, output.display())?;
    if errors > 0 {
        eprintln!("flowdesk: note: the process has {errors} error(s); it was exported as it is");
    }
    Ok(ExitCode::SUCCESS)
}

/// `rights: ada Admin, biztalk Server Event`, or `rights: none`.
pub fn rights_line(rights: &[(String, Right)]) -> String {
    if rights.is_empty() {
        return "rights: none".to_owned();
    }
    let listed: Vec<String> = rights.iter().map(|(user, right)| format!("{user} {right}")).collect();
    format!("rights: {}", listed.join(", "))
}

/// Grants the rights a BPMN file carried on `process`, just deployed by
/// `user`, when `user` holds Admin on it (which deploying gives a new
/// process's deployer); each line says what was granted or why not.
pub fn grant_imported(engine: &RuntimeEngine, user: &str, process: &str, rights: &[(String, Right)]) -> Vec<String> {
    if rights.is_empty() {
        return Vec::new();
    }
    let mut said = Vec::new();
    match engine.rights(process, user) {
        Ok(held) if held.contains(&Right::Admin) => {}
        Ok(_) => {
            said.push(format!(
                "{process}: not applied: {} — {user} holds no Admin on the process",
                rights_line(rights)
            ));
            return said;
        }
        Err(err) => {
            said.push(format!("{process}: not applied: {} — {err}", rights_line(rights)));
            return said;
        }
    }
    let (mut granted, mut failed) = (Vec::new(), Vec::new());
    for (target, right) in rights {
        match engine.grant(user, process, target, &[*right]) {
            Ok(()) => granted.push((target.clone(), *right)),
            Err(err) => failed.push(format!("{target} {right} ({err})")),
        }
    }
    if !granted.is_empty() {
        said.push(format!("{process}: granted {}", rights_line(&granted)));
    }
    if !failed.is_empty() {
        said.push(format!("{process}: not applied: {}", failed.join(", ")));
    }
    said
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rights a file carries are granted only by an Admin of the
    /// process, and a refusal is said, never silent.
    #[test]
    fn imported_rights_are_granted_by_an_admin_and_refusals_said() {
        use crate::runtime::{Runtime, RuntimeOptions, Ticking};
        let dir = tempfile::tempdir().unwrap();
        let options = RuntimeOptions { ticking: Ticking::Manual, ..RuntimeOptions::default() };
        let runtime = Runtime::open(&dir.path().join("rights.db"), options).unwrap();
        let engine = runtime.engine();
        let draft = ProcessDraft::load(Path::new("samples/purchase-approval.process.json")).unwrap();
        engine.deploy("ada", &draft).unwrap();
        let rights = vec![("biztalk".to_owned(), Right::ServerEvent)];

        assert!(grant_imported(engine, "ada", &draft.name, &[]).is_empty());
        let refused = grant_imported(engine, "bob", &draft.name, &rights);
        assert_eq!(
            refused,
            ["purchase-approval: not applied: rights: biztalk Server Event — bob holds no Admin on the process"]
        );
        assert!(engine.rights(&draft.name, "biztalk").unwrap().is_empty());

        let granted = grant_imported(engine, "ada", &draft.name, &rights);
        assert_eq!(granted, ["purchase-approval: granted rights: biztalk Server Event"]);
        assert_eq!(engine.rights(&draft.name, "biztalk").unwrap(), [Right::ServerEvent]);
    }

    #[test]
    fn several_processes_go_to_files_named_after_them() {
        let out = Path::new("/tmp/orders.process.json");
        assert_eq!(output_for(out, "Process_1", 1), out);
        assert_eq!(output_for(out, "Process_1", 2), Path::new("/tmp/orders.Process_1.process.json"));
        assert_eq!(output_for(Path::new("x.json"), "a/b", 2), Path::new("x.a_b.process.json"));
    }
}
