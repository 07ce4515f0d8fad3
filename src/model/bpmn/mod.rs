//! BPMN 2.0 in and out: the processes people already draw in other tools
//! become flowdesk drafts ([`import()`]), and flowdesk's drafts become BPMN
//! that any BPMN tool opens and shows as the same diagram ([`export()`]).
//!
//! The mapping is written down in the README's table. In short: a BPMN
//! element that does work (a task, a catch event) or marks a place (start,
//! end) becomes an activity; gateways dissolve into lines with rules and
//! the preceding rule of the activity after a parallel join; boundary timer
//! events become escalations. What BPMN says and flowdesk cannot
//! (Synchronous, HTTP requests, fields, the order of an activity's events,
//! escalation actions) goes into flowdesk's extension namespace
//! ([`FLOWDESK_NS`]), so that export then import gives back an equal draft.
//! Everything imported differently, or not at all, is named in the
//! [`Report`].
//!
//! No IO here beyond reading a file ([`read_file`]); the command line and
//! the window decide where the results go.

mod condition;
mod export;
mod import;
mod report;
pub mod xml;

use std::path::Path;

pub use export::{ExportError, export, export_with_rights};
pub use import::{ImportError, ImportOptions, Imported, ImportedProcess, import};
pub use report::{EntryKind, Report, ReportEntry};

/// BPMN 2.0's semantic model.
pub const BPMN_NS: &str = "http://www.omg.org/spec/BPMN/20100524/MODEL";
/// BPMN 2.0's diagram interchange.
pub const BPMNDI_NS: &str = "http://www.omg.org/spec/BPMN/20100524/DI";
pub const DC_NS: &str = "http://www.omg.org/spec/DD/20100524/DC";
pub const DI_NS: &str = "http://www.omg.org/spec/DD/20100524/DI";
pub const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// flowdesk's own extension elements and attributes.
pub const FLOWDESK_NS: &str = "urn:flowdesk:bpmn:1";
/// Camunda 7's extensions, of which the import reads form fields and external tasks.
pub const CAMUNDA_NS: &str = "http://camunda.org/schema/1.0/bpmn";

/// The most a BPMN file may hold, in bytes: BPMN is wordy, and a process
/// of [`crate::model::definition::limits::ACTIVITIES`] with its diagram
/// fits many times over.
pub const FILE_BYTES: usize = 16 * 1024 * 1024;

/// The designer's activity box, in canvas units: the same sizes as
/// `gui::theme::size` (a test there checks), which the model cannot name.
pub mod geometry {
    pub const ACTIVITY_WIDTH: f32 = 210.0;
    pub const HEADER: f32 = 30.0;
    pub const EVENT_ROW: f32 = 24.0;
    pub const BODY_PADDING: f32 = 8.0;
    pub const GRID: f32 = 20.0;

    /// The height of an activity's box with this many events.
    pub fn activity_height(events: usize) -> f32 {
        HEADER + events.max(1) as f32 * EVENT_ROW + BODY_PADDING
    }
}

/// A BPMN file that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {cause}")]
    Read { path: String, cause: std::io::Error },
    #[error("{path} is larger than the {} MiB a BPMN file may be", FILE_BYTES / 1024 / 1024)]
    TooLarge { path: String },
    #[error("{path} is not UTF-8 text: flowdesk reads BPMN files in UTF-8")]
    NotUtf8 { path: String },
}

/// Reads a BPMN file as text, refusing one larger than [`FILE_BYTES`]
/// before reading it whole.
pub fn read_file(path: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    let shown = || path.display().to_string();
    let read = |cause| ReadError::Read { path: shown(), cause };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(FILE_BYTES as u64 + 1).read_to_end(&mut bytes).map_err(read)?;
    if bytes.len() > FILE_BYTES {
        return Err(ReadError::TooLarge { path: shown() });
    }
    let mut text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 { path: shown() })?;
    if text.starts_with('\u{FEFF}') {
        text.remove(0);
    }
    Ok(text)
}

/// Whether a file is BPMN by its name (`.bpmn`, `.bpmn2`, `.bpmn20.xml`),
/// which is how the command line tells it from a process file.
pub fn is_bpmn_path(path: &Path) -> bool {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    name.ends_with(".bpmn") || name.ends_with(".bpmn2") || name.ends_with(".bpmn20.xml")
}
