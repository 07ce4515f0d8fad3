//! The desktop's file dialogs behind a trait, so tests never open a real one
//! (and never hang on a machine without a desktop portal).

use std::path::{Path, PathBuf};

/// What a file dialog answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogOutcome {
    Chosen(PathBuf),
    /// The user closed the dialog without choosing.
    Cancelled,
    /// No dialog could open: the window shows its own instead.
    Unavailable,
}

pub trait FileDialogs {
    /// Asks for a process file to open, starting in `folder` where given.
    fn open_process(&self, folder: Option<&Path>) -> DialogOutcome;
    /// Asks where to save a process called `suggested_name`.
    fn save_process(&self, suggested_name: &str, folder: Option<&Path>) -> DialogOutcome;
    /// Asks for a BPMN 2.0 file to import.
    fn open_bpmn(&self, folder: Option<&Path>) -> DialogOutcome;
    /// Asks where to export a process called `suggested_name` as BPMN 2.0.
    fn save_bpmn(&self, suggested_name: &str, folder: Option<&Path>) -> DialogOutcome;
    /// Asks where to export the instance list, `suggested_name` as CSV.
    fn save_csv(&self, suggested_name: &str, folder: Option<&Path>) -> DialogOutcome;
}

/// The names a BPMN file goes by.
const BPMN_EXTENSIONS: &[&str] = &["bpmn", "bpmn2", "xml"];

/// The operating system's dialogs, through `rfd` (the XDG desktop portal on
/// Linux, or zenity where no portal runs).
pub struct NativeDialogs;

impl NativeDialogs {
    /// Asks for a file to open, of the kind `filter` names.
    fn pick(title: &str, filter: (&str, &[&str]), folder: Option<&Path>) -> DialogOutcome {
        if !desktop::has_file_dialog() {
            return DialogOutcome::Unavailable;
        }
        let mut dialog = rfd::FileDialog::new().set_title(title).add_filter(filter.0, filter.1);
        if let Some(folder) = folder {
            dialog = dialog.set_directory(folder);
        }
        dialog.pick_file().map_or(DialogOutcome::Cancelled, DialogOutcome::Chosen)
    }

    /// Asks where to write `file_name`; `named` gives the chosen path its extension.
    fn save(
        title: &str,
        filter: (&str, &[&str]),
        file_name: String,
        folder: Option<&Path>,
        named: fn(PathBuf) -> PathBuf,
    ) -> DialogOutcome {
        if !desktop::has_file_dialog() {
            return DialogOutcome::Unavailable;
        }
        let mut dialog =
            rfd::FileDialog::new().set_title(title).add_filter(filter.0, filter.1).set_file_name(file_name);
        if let Some(folder) = folder {
            dialog = dialog.set_directory(folder);
        }
        dialog.save_file().map_or(DialogOutcome::Cancelled, |path| DialogOutcome::Chosen(named(path)))
    }
}

const PROCESS_FILES: (&str, &[&str]) = ("flowdesk process", &["json"]);
const BPMN_FILES: (&str, &[&str]) = ("BPMN 2.0", BPMN_EXTENSIONS);
const CSV_FILES: (&str, &[&str]) = ("CSV", &["csv"]);

impl FileDialogs for NativeDialogs {
    fn open_process(&self, folder: Option<&Path>) -> DialogOutcome {
        NativeDialogs::pick("Open process", PROCESS_FILES, folder)
    }

    fn save_process(&self, suggested_name: &str, folder: Option<&Path>) -> DialogOutcome {
        let file_name = format!("{suggested_name}.process.json");
        NativeDialogs::save("Save process as", PROCESS_FILES, file_name, folder, with_process_extension)
    }

    fn open_bpmn(&self, folder: Option<&Path>) -> DialogOutcome {
        NativeDialogs::pick("Import BPMN", BPMN_FILES, folder)
    }

    fn save_bpmn(&self, suggested_name: &str, folder: Option<&Path>) -> DialogOutcome {
        NativeDialogs::save("Export BPMN", BPMN_FILES, format!("{suggested_name}.bpmn"), folder, with_bpmn_extension)
    }

    fn save_csv(&self, suggested_name: &str, folder: Option<&Path>) -> DialogOutcome {
        NativeDialogs::save("Export CSV", CSV_FILES, format!("{suggested_name}.csv"), folder, with_csv_extension)
    }
}

/// Whether `rfd` can show a dialog on this desktop.
///
/// On Linux and the BSDs `rfd` asks the XDG desktop portal's FileChooser
/// over the session D-Bus and, failing that, runs `zenity`. Where neither
/// exists it returns `None` at once, exactly as when the user cancels, so the
/// two are told apart here, before asking: a cancel must not open a second
/// dialog, and a desktop without either must still let the work be saved.
#[cfg(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
))]
mod desktop {
    use std::ffi::OsStr;
    use std::path::Path;
    use std::time::Duration;

    use zbus::blocking::connection::Builder;

    const PORTAL: &str = "org.freedesktop.portal.Desktop";
    const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";
    const FILE_CHOOSER: &str = "org.freedesktop.portal.FileChooser";
    const PROPERTIES: &str = "org.freedesktop.DBus.Properties";
    /// Long enough for the bus to start the portal on demand.
    const PORTAL_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn has_file_dialog() -> bool {
        let path = std::env::var_os("PATH").unwrap_or_default();
        executable_on_path("zenity", &path) || Builder::session().is_ok_and(file_chooser_reachable)
    }

    /// Whether the bus has a portal that serves FileChooser. The portal runs
    /// without one when no backend (GTK, KDE, GNOME…) is installed, as on a
    /// bare window manager; reading its `version` property asks exactly that,
    /// and starts the portal if the bus starts it on demand.
    pub fn file_chooser_reachable(bus: Builder<'_>) -> bool {
        let ask = || -> zbus::Result<()> {
            let connection = bus.method_timeout(PORTAL_TIMEOUT).build()?;
            let property = (FILE_CHOOSER, "version");
            connection.call_method(Some(PORTAL), PORTAL_PATH, Some(PROPERTIES), "Get", &property)?;
            Ok(())
        };
        ask().is_ok()
    }

    /// Whether a file called `name` that may be run is in one of `path`'s folders.
    pub fn executable_on_path(name: &str, path: &OsStr) -> bool {
        std::env::split_paths(path).any(|folder| is_executable(&folder.join(name)))
    }

    fn is_executable(file: &Path) -> bool {
        use std::os::unix::fs::PermissionsExt;
        file.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    }
}

/// Windows and macOS always have their own dialogs.
#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "dragonfly",
    target_os = "netbsd",
    target_os = "openbsd"
)))]
mod desktop {
    pub fn has_file_dialog() -> bool {
        true
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

/// `name` → `name.bpmn`; a name already ending in a BPMN file's extension is kept.
/// `path`, ending in `.csv`.
pub fn with_csv_extension(path: PathBuf) -> PathBuf {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        path
    } else {
        path.with_added_extension("csv")
    }
}

pub fn with_bpmn_extension(path: PathBuf) -> PathBuf {
    if path.extension().is_some_and(|e| BPMN_EXTENSIONS.iter().any(|b| e.eq_ignore_ascii_case(b))) {
        path
    } else {
        let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        name.push(".bpmn");
        path.with_file_name(name)
    }
}

/// Dialogs that answer from a script: for tests. An empty script answers
/// "cancelled"; `unavailable` plays a desktop with no dialog at all.
#[derive(Default)]
pub struct ScriptedDialogs {
    pub open: std::cell::RefCell<Vec<PathBuf>>,
    pub save: std::cell::RefCell<Vec<PathBuf>>,
    /// Answers to File ▸ Import BPMN… and File ▸ Export BPMN….
    pub import_bpmn: std::cell::RefCell<Vec<PathBuf>>,
    pub export_bpmn: std::cell::RefCell<Vec<PathBuf>>,
    /// Answers to the monitor's Export CSV….
    pub export_csv: std::cell::RefCell<Vec<PathBuf>>,
    pub unavailable: bool,
}

impl ScriptedDialogs {
    /// A desktop where no file dialog can open.
    pub fn unavailable() -> ScriptedDialogs {
        ScriptedDialogs { unavailable: true, ..ScriptedDialogs::default() }
    }

    fn answer(&self, script: &std::cell::RefCell<Vec<PathBuf>>) -> DialogOutcome {
        if self.unavailable {
            return DialogOutcome::Unavailable;
        }
        script.borrow_mut().pop().map_or(DialogOutcome::Cancelled, DialogOutcome::Chosen)
    }
}

impl FileDialogs for ScriptedDialogs {
    fn open_process(&self, _folder: Option<&Path>) -> DialogOutcome {
        self.answer(&self.open)
    }

    fn save_process(&self, _suggested_name: &str, _folder: Option<&Path>) -> DialogOutcome {
        self.answer(&self.save)
    }

    fn open_bpmn(&self, _folder: Option<&Path>) -> DialogOutcome {
        self.answer(&self.import_bpmn)
    }

    fn save_bpmn(&self, _suggested_name: &str, _folder: Option<&Path>) -> DialogOutcome {
        self.answer(&self.export_bpmn)
    }

    fn save_csv(&self, _suggested_name: &str, _folder: Option<&Path>) -> DialogOutcome {
        self.answer(&self.export_csv)
    }
}

#[cfg(test)]
#[cfg(target_os = "linux")]
mod tests {
    use std::io::BufRead;
    use std::process::{Child, Command, Stdio};

    use zbus::blocking::connection::Builder;

    use super::desktop::{executable_on_path, file_chooser_reachable};

    #[test]
    fn zenity_counts_only_as_a_file_that_may_be_run_in_a_folder_of_the_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (dir.path().join("first"), dir.path().join("second"));
        std::fs::create_dir_all(first.join("zenity")).unwrap(); // a folder of that name
        std::fs::create_dir(&second).unwrap();
        let path = std::env::join_paths([&first, &second]).unwrap();
        assert!(!executable_on_path("zenity", &path));

        let zenity = second.join("zenity");
        std::fs::write(&zenity, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&zenity, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(!executable_on_path("zenity", &path), "not executable");
        std::fs::set_permissions(&zenity, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(executable_on_path("zenity", &path));
        assert!(!executable_on_path("zenity", std::ffi::OsStr::new("")), "an empty PATH");
    }

    /// A private bus run by the real `dbus-daemon`, that starts no service on demand.
    struct PrivateBus {
        daemon: Child,
        address: String,
        _dir: tempfile::TempDir,
    }

    impl PrivateBus {
        fn start() -> PrivateBus {
            let dir = tempfile::tempdir().unwrap();
            let config = dir.path().join("bus.conf");
            let listen = format!("unix:dir={}", dir.path().display());
            std::fs::write(
                &config,
                format!(
                    r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>{listen}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>"#
                ),
            )
            .unwrap();
            let mut daemon = Command::new("dbus-daemon")
                .arg(format!("--config-file={}", config.display()))
                .args(["--nofork", "--print-address=1"])
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("these tests run the real dbus-daemon (Debian package dbus-daemon)");
            let mut address = String::new();
            let stdout = daemon.stdout.take().unwrap();
            std::io::BufReader::new(stdout).read_line(&mut address).unwrap();
            PrivateBus { daemon, address: address.trim().to_owned(), _dir: dir }
        }

        fn builder(&self) -> Builder<'static> {
            Builder::address(self.address.as_str()).unwrap()
        }
    }

    impl Drop for PrivateBus {
        fn drop(&mut self) {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }

    struct FileChooser;

    #[zbus::interface(name = "org.freedesktop.portal.FileChooser")]
    impl FileChooser {
        #[zbus(property, name = "version")]
        fn version(&self) -> u32 {
            4
        }
    }

    /// What the portal serves with no backend installed: other interfaces only.
    struct Settings;

    #[zbus::interface(name = "org.freedesktop.portal.Settings")]
    impl Settings {
        #[zbus(property, name = "version")]
        fn version(&self) -> u32 {
            2
        }
    }

    const PORTAL: &str = "org.freedesktop.portal.Desktop";
    const PORTAL_PATH: &str = "/org/freedesktop/portal/desktop";

    #[test]
    fn the_portal_counts_only_when_it_serves_a_file_chooser() {
        assert!(!file_chooser_reachable(Builder::address("unix:path=/nonexistent/bus").unwrap()), "no bus");

        let bus = PrivateBus::start();
        assert!(!file_chooser_reachable(bus.builder()), "a bus without the portal");

        let without_backend =
            bus.builder().name(PORTAL).unwrap().serve_at(PORTAL_PATH, Settings).unwrap().build().unwrap();
        assert!(!file_chooser_reachable(bus.builder()), "a portal without a file chooser");
        drop(without_backend);

        let _portal = bus.builder().name(PORTAL).unwrap().serve_at(PORTAL_PATH, FileChooser).unwrap().build().unwrap();
        assert!(file_chooser_reachable(bus.builder()));
    }
}
