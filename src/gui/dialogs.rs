//! Native file dialogs behind a trait, so tests never open a real one (and
//! never hang on a machine without a desktop portal).

use std::path::PathBuf;

pub trait FileDialogs {
    fn open_process(&self) -> Option<PathBuf>;
    fn save_process(&self, suggested_name: &str) -> Option<PathBuf>;
}

/// The operating system's dialogs, through `rfd` (XDG portal on Linux; where
/// no portal runs it falls back to zenity, or answers "cancelled" at once).
pub struct NativeDialogs;

impl FileDialogs for NativeDialogs {
    fn open_process(&self) -> Option<PathBuf> {
        rfd::FileDialog::new().set_title("Open process").add_filter("flowdesk process", &["json"]).pick_file()
    }

    fn save_process(&self, suggested_name: &str) -> Option<PathBuf> {
        let path = rfd::FileDialog::new()
            .set_title("Save process as")
            .add_filter("flowdesk process", &["json"])
            .set_file_name(format!("{suggested_name}.process.json"))
            .save_file()?;
        Some(with_process_extension(path))
    }
}

/// `name` → `name.process.json`; a name already ending in `.json` is kept.
pub fn with_process_extension(path: PathBuf) -> PathBuf {
    if path.extension().is_some_and(|e| e == "json") {
        path
    } else {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".process.json");
        path.with_file_name(name)
    }
}

/// Dialogs that answer from a script: for tests.
#[derive(Default)]
pub struct ScriptedDialogs {
    pub open: std::cell::RefCell<Vec<PathBuf>>,
    pub save: std::cell::RefCell<Vec<PathBuf>>,
}

impl FileDialogs for ScriptedDialogs {
    fn open_process(&self) -> Option<PathBuf> {
        self.open.borrow_mut().pop()
    }

    fn save_process(&self, _suggested_name: &str) -> Option<PathBuf> {
        self.save.borrow_mut().pop()
    }
}
