//! BPMN 2.0 in and out: every sample survives export then import unchanged,
//! each row of the README's mapping table imports as it says (from the
//! files in `tests/data/bpmn/`, written for these tests in the shapes
//! BPMN tools write), malformed files are refused with a clear error, and
//! the exported files load in bpmn-moddle, the model library under bpmn.io,
//! without a warning (when Node.js is on the machine).

use std::path::{Path, PathBuf};

use flowdesk::model::bpmn::{self, EntryKind, ImportOptions, Imported, ImportedProcess};
use flowdesk::model::{
    EscalationActionDraft, EventDraft, PrecedingRule, ProcessDraft, ScriptHost, Severity, validate,
};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn data(name: &str) -> PathBuf {
    root().join("tests/data/bpmn").join(name)
}

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("samples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".process.json"))
        .collect();
    files.sort();
    files
}

fn import_text(text: &str) -> Imported {
    bpmn::import(text, &ImportOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The only process of a test file.
fn import_file(name: &str) -> ImportedProcess {
    let text = bpmn::read_file(&data(name)).unwrap();
    let mut imported = import_text(&text);
    assert_eq!(imported.processes.len(), 1, "{name}");
    imported.processes.remove(0)
}

fn round_trip(draft: &ProcessDraft) -> ProcessDraft {
    let text = bpmn::export(draft).unwrap();
    let mut imported = import_text(&text);
    assert_eq!(imported.processes.len(), 1);
    let process = imported.processes.remove(0);
    assert!(process.report.is_empty(), "{:#?}", process.report);
    process.draft
}

#[test]
fn bpmn_every_sample_survives_export_then_import() {
    for path in samples() {
        let draft = ProcessDraft::load(&path).unwrap();
        let again = round_trip(&draft);
        assert_eq!(again, draft, "{}", path.display());
    }
}
