//! The window: menus, the designer's panels, deploy and start, and the dialogs
//! that guard unsaved work.
//!
//! Panels return what they want done; `FlowdeskApp` applies it after drawing,
//! so no panel reaches into the engine or the file system itself. What writes
//! to the database (deploy, start, rights, tokens, and the monitor's actions)
//! is sent to the write worker ([`Actions`]) and drawn as pending until its
//! answer comes, taken in once per frame before drawing: no frame waits for
//! a write.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use egui::{Key, KeyboardShortcut, Modifiers, RichText, Ui};
use serde::{Deserialize, Serialize};

use crate::engine::{Clock, EngineError, SmtpSettings, SystemClock};
use crate::gui::GuiOptions;
use crate::gui::designer::canvas::{TemplatePayload, paint_drawn_icon};
use crate::gui::designer::document::{Sameness, compare_definitions};
use crate::gui::designer::palette::TEMPLATES;
use crate::gui::designer::problems::{Pick, problems_ui};
use crate::gui::designer::properties::{Request, RightsView, properties_ui};
use crate::gui::designer::{Designer, Document, Icons};
use crate::gui::dialogs::{DialogOutcome, FileDialogs, with_bpmn_extension, with_process_extension};
use crate::gui::monitor::actions::{self, Actions, Command, Deploy, Done, Reply, Start, StartRequest, Ticket};
use crate::gui::monitor::queries::Queries;
use crate::gui::monitor::{Monitor, MonitorRequest};
use crate::gui::theme;
use crate::model::{FieldType, ProcessDraft, Right, Severity};
use crate::runtime::{Runtime, RuntimeEngine, RuntimeOptions, Ticking, TimerTicking};

/// The samples shipped with flowdesk, offered under File ▸ Open Sample.
pub const SAMPLES: &[(&str, &str)] = &[
    ("callback", include_str!("../../samples/callback.process.json")),
    ("purchase-approval", include_str!("../../samples/purchase-approval.process.json")),
    ("shipment", include_str!("../../samples/shipment.process.json")),
    ("http-callback", include_str!("../../samples/http-callback.process.json")),
    ("notify-by-mail", include_str!("../../samples/notify-by-mail.process.json")),
];

/// What is kept between runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub recent: Vec<PathBuf>,
    /// Where the Server menu's HTTP API listens; the default when empty.
    pub api_listen: String,
    /// False until the first run has shown the callback sample.
    pub welcomed: bool,
    pub snap_to_grid: Option<bool>,
    /// The SMTP server mail events send through, but for its password
    /// (Settings; `FLOWDESK_SMTP_URL` wins).
    pub smtp: crate::gui::settings::SavedSmtp,
    /// The monitor's saved filters, per user (`monitor::find`).
    pub saved_filters: crate::gui::monitor::find::SavedFilters,
}

const RECENT_LIMIT: usize = 8;

/// Something that replaces the current document; asked about first when there
/// are unsaved changes.
#[derive(Debug, Clone, PartialEq)]
pub enum Replace {
    New,
    Open(Option<PathBuf>),
    Sample(usize),
    /// File ▸ Import BPMN…: a BPMN file's process, as an unsaved draft.
    ImportBpmn(Option<PathBuf>),
    Quit,
}

enum Modal {
    UnsavedChanges(Replace),
    Message {
        title: String,
        text: String,
    },
    StartInstance(StartForm),
    /// The in-window dialog chose a file that exists.
    ConfirmReplace {
        path: PathBuf,
        then: Option<Replace>,
    },
    /// Deploy was asked for a draft identical to this latest version.
    ConfirmRedeploy {
        version: u32,
    },
    CreateToken(TokenForm),
    Tokens(TokenList),
    Settings(crate::gui::settings::SettingsForm),
    /// A BPMN file of several processes: which to open.
    ChooseProcess {
        path: PathBuf,
        /// (id, name) of each process.
        choices: Vec<(String, String)>,
    },
    /// What an import took over differently or not at all.
    ImportReport {
        title: String,
        summary: String,
        entries: Vec<crate::model::bpmn::ReportEntry>,
    },
}

/// The file dialog drawn inside the window, and what its answer is for.
struct InWindowDialog {
    dialog: egui_file::FileDialog,
    purpose: FilePurpose,
}

enum FilePurpose {
    Open,
    /// Save As; `then` happens once saved (New, Open or Quit that asked first).
    Save {
        then: Option<Replace>,
    },
    ImportBpmn,
    ExportBpmn,
}

/// Server ▸ Tokens…: every token, and revoking one (asked twice).
struct TokenList {
    tokens: Vec<crate::store::ApiToken>,
    /// The token whose Revoke was clicked, waiting for Yes.
    confirm: Option<i64>,
    /// The revoke sent, until its answer comes.
    revoking: Option<Ticket>,
    error: Option<String>,
}

/// Server ▸ Create token…: for whom, then the secret, shown once.
#[derive(Default)]
struct TokenForm {
    user: String,
    label: String,
    /// The token made: its id and secret. Only this dialog ever shows it.
    issued: Option<(i64, String)>,
    /// The create sent, until its answer comes.
    creating: Option<Ticket>,
    error: Option<String>,
}

/// A start form field: name, type and the text typed for it.
type FieldEntry = (String, FieldType, String);

/// What the designer's start form says about the draft on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DraftStanding {
    /// The draft has errors, so it cannot be deployed.
    HasErrors,
    /// The process was never deployed; the draft can be.
    NotDeployed,
    /// How the draft compares with the deployed version.
    Compared(Sameness),
}

/// Start instance…: which version starts, the folio and the field values.
struct StartForm {
    process: String,
    /// The default version when the form was made: the one Start starts.
    /// `None` before the process's first deploy.
    version: Option<u32>,
    /// The draft on screen against that version; `None` when the form was
    /// opened from the monitor, which starts deployed versions only.
    draft: Option<DraftStanding>,
    /// Deploy the draft on screen first and start the version that makes.
    deploy_draft: bool,
    deployed_fields: Vec<FieldEntry>,
    draft_fields: Vec<FieldEntry>,
    folio: String,
    /// The fields of the version that starts, as typed.
    values: Vec<FieldEntry>,
    /// The start sent, until its answer comes.
    starting: Option<Ticket>,
    error: Option<String>,
}

impl StartForm {
    fn new(
        process: &str,
        deployed: Option<(u32, ProcessDraft)>,
        draft: Option<DraftStanding>,
        on_screen: Option<&ProcessDraft>,
    ) -> StartForm {
        let deploy_draft = draft == Some(DraftStanding::NotDeployed);
        let deployed_fields = deployed.as_ref().map(|(_, definition)| field_entries(definition)).unwrap_or_default();
        let draft_fields = on_screen.map(field_entries).unwrap_or_default();
        let values = if deploy_draft { draft_fields.clone() } else { deployed_fields.clone() };
        StartForm {
            process: process.to_owned(),
            version: deployed.map(|(version, _)| version),
            draft,
            deploy_draft,
            deployed_fields,
            draft_fields,
            folio: String::new(),
            values,
            starting: None,
            error: None,
        }
    }

    /// Whether the user chooses between the deployed version and the draft.
    fn offers_choice(&self) -> bool {
        self.version.is_some()
            && matches!(self.draft, Some(DraftStanding::Compared(Sameness::LayoutOnly | Sameness::Different)))
    }

    fn can_start(&self) -> bool {
        self.deploy_draft || self.version.is_some()
    }

    /// The version a deploy from this form makes.
    fn next_version(&self) -> u32 {
        self.version.map_or(1, |version| version + 1)
    }

    /// Switches between starting the deployed version and the draft; the
    /// fields become the chosen definition's, keeping what was typed.
    fn choose(&mut self, deploy_draft: bool) {
        if self.deploy_draft == deploy_draft {
            return;
        }
        self.deploy_draft = deploy_draft;
        let fields = if deploy_draft { &self.draft_fields } else { &self.deployed_fields };
        self.values = carry_over(fields, &self.values);
    }

    /// The draft was just deployed as `version`: it is now what starts.
    fn deployed_now(&mut self, version: u32) {
        self.version = Some(version);
        self.draft = Some(DraftStanding::Compared(Sameness::Identical));
        self.deploy_draft = false;
        self.deployed_fields = self.draft_fields.clone();
    }

    /// Keeps the folio and field values typed into `old`.
    fn keep_typed(&mut self, old: &StartForm) {
        self.folio = old.folio.clone();
        self.values = carry_over(&self.values, &old.values);
    }
}

/// `fields` with the text of `typed` where a field of the same name and type was typed.
fn carry_over(fields: &[FieldEntry], typed: &[FieldEntry]) -> Vec<FieldEntry> {
    fields
        .iter()
        .map(|(name, field_type, default)| {
            let text = typed.iter().find(|(n, t, _)| n == name && t == field_type).map_or(default, |(_, _, text)| text);
            (name.clone(), *field_type, text.clone())
        })
        .collect()
}

/// A definition's fields with their default values as text.
fn field_entries(definition: &ProcessDraft) -> Vec<FieldEntry> {
    definition
        .fields
        .iter()
        .filter_map(|f| {
            let field_type = FieldType::from_name(&f.field_type)?;
            let text = match &f.default {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(other) => other.to_string(),
                None if field_type == FieldType::Boolean => "false".to_owned(),
                None => String::new(),
            };
            Some((f.name.clone(), field_type, text))
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq)]
enum StatusKind {
    Info,
    /// A write on its way: drawn with a spinner.
    Pending,
    Success,
    Failure,
}

/// The faces of the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum AppView {
    #[default]
    Designer,
    /// The monitor's first tab: counts, charts, incidents, the diagram's counts.
    Overview,
    Monitor,
    Items,
}

pub struct FlowdeskApp {
    pub designer: Designer,
    pub monitor: Monitor,
    pub view: AppView,
    repaint: Arc<OnceLock<egui::Context>>,
    /// The database's runtime: its ticker takes over instances whose runner
    /// died mid-script or mid-request while the window is open.
    runtime: Result<Arc<Runtime>, String>,
    /// The runtime's engine, for the window's reads.
    engine: Result<Arc<RuntimeEngine>, String>,
    /// The worker that makes every write of the window; `None` when there is
    /// no engine to write with.
    actions: Option<Actions>,
    /// The deploy sent, until its answer comes.
    deploying: Option<Ticket>,
    /// The grant or revoke sent, until its answer comes.
    changing_rights: Option<Ticket>,
    user: String,
    db_path: PathBuf,
    dialogs: Box<dyn FileDialogs>,
    pub settings: Settings,
    icons: Option<Icons>,
    status: Option<(String, StatusKind)>,
    modal: Option<Modal>,
    /// Open while the desktop has no file dialog to offer.
    file_dialog: Option<InWindowDialog>,
    grant_user: String,
    /// Rights on the deployed process of this name, refreshed after changes.
    rights: Option<(String, Vec<(String, Right)>)>,
    close_confirmed: bool,
    pending_close: bool,
    /// Set once the first frame has set up the theme and textures.
    started: bool,
    /// The window title last sent.
    shown_title: String,
    /// The HTTP API, while the Server menu has it running.
    api: Option<crate::net::RunningApi>,
    /// The HTTP API while it stops, on a thread of its own.
    stopping_api: Option<(std::net::SocketAddr, std::thread::JoinHandle<()>)>,
    /// The address typed in the Server menu.
    api_listen: String,
    /// The last firing of timers by the window's ticker the monitor was
    /// told of (it reads again what a firing changed).
    timers_fired: Option<(i64, usize)>,
}

impl FlowdeskApp {
    pub fn new(options: GuiOptions, settings: Settings, dialogs: Box<dyn FileDialogs>) -> FlowdeskApp {
        FlowdeskApp::on_clock(options, settings, dialogs, Arc::new(SystemClock))
    }

    /// The window with its runtime on `clock` instead of the system's: a
    /// test moves it, and the window's ticker fires and its lists say
    /// "in 2 h" or "overdue 5 min" by it.
    pub fn on_clock(
        options: GuiOptions,
        settings: Settings,
        dialogs: Box<dyn FileDialogs>,
        clock: Arc<dyn Clock>,
    ) -> FlowdeskApp {
        // Instances whose runner died mid-script or mid-request run on, beside
        // the window's own calls (the monitor shows where they stand), and
        // timers fire as they fall due.
        // Mail goes through the server FLOWDESK_SMTP_URL names, else the
        // one saved in Settings (its password is asked for each session).
        let smtp = match crate::runtime::smtp_from_env() {
            Ok(None) => settings.smtp.settings(crate::runtime::smtp_password_from_env()),
            from_env => from_env,
        };
        let runtime_options =
            RuntimeOptions { ticking: Ticking::Host, clock: clock.clone(), smtp, ..Default::default() };
        let opened =
            Runtime::open(&options.db_path, runtime_options).map(Arc::new).map_err(crate::engine::EngineError::from);
        // The query worker wakes the window when an answer arrives; the
        // window's context exists only from the first frame on.
        let repaint: Arc<OnceLock<egui::Context>> = Arc::new(OnceLock::new());
        let waker = |repaint: &Arc<OnceLock<egui::Context>>| {
            let wake = repaint.clone();
            move || {
                if let Some(ctx) = wake.get() {
                    ctx.request_repaint();
                }
            }
        };
        // The reads and the writes go through the window's runtime (as its
        // recovery and its API do), so that one store in the process reads
        // and writes.
        let (runtime, queries) = match opened {
            Ok(runtime) => {
                let queries = Queries::start(&runtime, waker(&repaint));
                (Ok(runtime), queries)
            }
            Err(err) => (Err(err.to_string()), Err(err)),
        };
        let engine = runtime.as_ref().map(|runtime| runtime.engine().clone()).map_err(Clone::clone);
        let monitor = Monitor::new(queries, clock);
        let actions = runtime.as_ref().ok().and_then(|runtime| Actions::start(runtime.clone(), waker(&repaint)).ok());
        let mut app = FlowdeskApp {
            designer: Designer::new(Document::untitled()),
            monitor,
            view: options.view,
            repaint,
            runtime,
            engine,
            actions,
            deploying: None,
            changing_rights: None,
            user: options.user,
            db_path: options.db_path,
            dialogs,
            settings,
            icons: None,
            started: false,
            shown_title: String::new(),
            status: None,
            modal: None,
            file_dialog: None,
            grant_user: String::new(),
            rights: None,
            close_confirmed: false,
            pending_close: false,
            api: None,
            stopping_api: None,
            api_listen: String::new(),
            timers_fired: None,
        };
        app.monitor.find.saved = app.settings.saved_filters.clone();
        app.api_listen = match app.settings.api_listen.trim() {
            "" => crate::net::DEFAULT_LISTEN.to_owned(),
            saved => saved.to_owned(),
        };
        if let Some(snap) = app.settings.snap_to_grid {
            app.designer.snap = snap;
        }
        match options.file {
            Some(path) => app.replace(Replace::Open(Some(path))),
            None if !app.settings.welcomed => {
                app.replace(Replace::Sample(0));
                app.settings.welcomed = true;
            }
            None => match app.settings.recent.first().cloned().filter(|p| p.exists()) {
                Some(last) => app.replace(Replace::Open(Some(last))),
                None => app.replace(Replace::Sample(0)),
            },
        }
        if let Err(message) = &app.engine {
            // The message names the database file and what is wrong with it.
            app.status = Some((format!("Not opened: {message}"), StatusKind::Failure));
        }
        app.refresh_rights();
        app
    }

    /// The whole window's content; also what the GUI tests drive.
    pub fn ui(&mut self, ui: &mut Ui) {
        if !self.started {
            self.started = true;
            // The canvas is drawn light; the panels around it match.
            ui.ctx().set_theme(egui::Theme::Light);
            ui.ctx().set_fonts(crate::gui::fonts::definitions());
            self.icons = load_icons(ui.ctx());
            let _ = self.repaint.set(ui.ctx().clone());
        }
        self.take_answers();
        self.take_firings();
        self.take_stopped_api();
        self.shortcuts(ui.ctx());
        self.guard_close(ui.ctx());
        if self.file_dialog.is_some() {
            // Drawn first, so that the keys it leaves unused (Delete, Ctrl+V…)
            // are dropped before the canvas behind it could act on them; the
            // rest of the window waits, greyed, until it is answered.
            self.file_dialog_ui(ui.ctx());
            if self.file_dialog.is_some() {
                ui.ctx().input_mut(|input| {
                    input.events.retain(|event| {
                        !matches!(
                            event,
                            egui::Event::Key { .. } | egui::Event::Copy | egui::Event::Cut | egui::Event::Paste(_)
                        )
                    });
                });
                ui.disable();
            }
        }
        egui::Panel::top("menu").show(ui, |ui| self.menu_bar(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        match self.view {
            AppView::Designer => self.designer_ui(ui),
            AppView::Overview => {
                let requests = self.monitor.overview_ui(ui, self.actions.as_mut(), &self.user);
                self.monitor_requests(requests);
            }
            AppView::Monitor => {
                let requests = self.monitor.instances_ui(ui, self.actions.as_mut(), &self.user);
                self.monitor_requests(requests);
            }
            AppView::Items => {
                self.monitor.items_ui(ui, self.actions.as_mut(), &self.user);
            }
        }
        self.modal_ui(ui.ctx());
        // Sent only when it changes: every viewport command asks for another
        // frame, and sending it each frame kept the window redrawing forever.
        let title = self.title();
        if self.shown_title != title {
            ui.ctx().send_viewport_cmd(egui::ViewportCommand::Title(title.clone()));
            self.shown_title = title;
        }
    }

    fn monitor_requests(&mut self, requests: Vec<MonitorRequest>) {
        for request in requests {
            match request {
                MonitorRequest::StartInstance { process } => self.open_start_form_for(&process),
                MonitorRequest::ShowInstances => self.view = AppView::Monitor,
                MonitorRequest::ExportCsv { filter } => self.export_csv(filter),
            }
        }
    }

    fn designer_ui(&mut self, ui: &mut Ui) {
        egui::Panel::left("palette").resizable(false).exact_size(240.0).show(ui, |ui| self.palette(ui));
        egui::Panel::right("properties").resizable(true).default_size(360.0).min_size(260.0).show(ui, |ui| {
            self.properties(ui);
        });
        egui::Panel::bottom("problems").resizable(true).default_size(130.0).min_size(60.0).show(ui, |ui| {
            let problems = self.designer.doc.problems(&self.designer.host).to_vec();
            if let Some(pick) = problems_ui(ui, &problems) {
                self.designer.selection = match pick {
                    Pick::Element(element) => vec![element],
                    Pick::Process => Vec::new(),
                };
            }
        });
        egui::CentralPanel::default().frame(egui::Frame::NONE).show(ui, |ui| {
            self.designer.canvas_ui(ui, self.icons.as_ref());
        });
    }

    pub fn title(&self) -> String {
        let dirty = if self.designer.doc.is_dirty() { "● " } else { "" };
        format!("{dirty}{} — flowdesk", self.designer.doc.title())
    }

    // ----- menus and shortcuts ------------------------------------------------

    fn menu_bar(&mut self, ui: &mut Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            for (view, title) in [
                (AppView::Designer, "Designer"),
                (AppView::Overview, "Overview"),
                (AppView::Monitor, "Monitor"),
                (AppView::Items, "Server items"),
            ] {
                ui.selectable_value(&mut self.view, view, RichText::new(title).strong());
            }
            ui.separator();
            // Only Quit means something outside the designer; the rest acts
            // on the draft, which the other views do not show.
            let designing = self.view == AppView::Designer;
            ui.menu_button("File", |ui| {
                if designing {
                    self.file_menu_designer_items(ui);
                    ui.separator();
                }
                if ui.button("Settings…").clicked() {
                    self.open_settings();
                    ui.close();
                }
                ui.separator();
                if ui.add(egui::Button::new("Quit").shortcut_text("Ctrl+Q")).clicked() {
                    self.request(Replace::Quit);
                    ui.close();
                }
            });
            if designing {
                self.edit_menu(ui);
            }
            // Stays open while the address is typed; its buttons close it.
            let stays_open =
                egui::containers::menu::MenuConfig::new().close_behavior(egui::PopupCloseBehavior::CloseOnClickOutside);
            egui::containers::menu::MenuButton::new("Server").config(stays_open).ui(ui, |ui| self.server_menu(ui));
            if designing {
                self.designer_commands(ui);
            }
        });
    }

    fn file_menu_designer_items(&mut self, ui: &mut Ui) {
        if ui.add(egui::Button::new("New").shortcut_text("Ctrl+N")).clicked() {
            self.request(Replace::New);
            ui.close();
        }
        if ui.add(egui::Button::new("Open…").shortcut_text("Ctrl+O")).clicked() {
            self.request(Replace::Open(None));
            ui.close();
        }
        ui.menu_button("Open Sample", |ui| {
            for (index, (name, _)) in SAMPLES.iter().enumerate() {
                if ui.add(egui::Button::new(*name).shortcut_text(format!("Alt+{}", index + 1))).clicked() {
                    self.request(Replace::Sample(index));
                    ui.close();
                }
            }
        });
        ui.menu_button("Open Recent", |ui| {
            if self.settings.recent.is_empty() {
                ui.label("No recent files");
            }
            for (index, path) in self.settings.recent.clone().into_iter().enumerate() {
                let shortcut = if index < 9 { format!("Ctrl+{}", index + 1) } else { String::new() };
                if ui.add(egui::Button::new(path.display().to_string()).shortcut_text(shortcut)).clicked() {
                    self.request(Replace::Open(Some(path)));
                    ui.close();
                }
            }
        });
        if ui.button("Import BPMN…").clicked() {
            self.request(Replace::ImportBpmn(None));
            ui.close();
        }
        ui.separator();
        if ui.add(egui::Button::new("Save").shortcut_text("Ctrl+S")).clicked() {
            self.save(false, None);
            ui.close();
        }
        if ui.add(egui::Button::new("Save As…").shortcut_text("Ctrl+Shift+S")).clicked() {
            self.save(true, None);
            ui.close();
        }
        if ui.button("Export BPMN…").clicked() {
            self.export_bpmn();
            ui.close();
        }
    }

    fn edit_menu(&mut self, ui: &mut Ui) {
        ui.menu_button("Edit", |ui| {
            if ui.add_enabled(self.designer.doc.can_undo(), egui::Button::new("Undo").shortcut_text("Ctrl+Z")).clicked()
            {
                self.designer.undo();
                ui.close();
            }
            if ui
                .add_enabled(self.designer.doc.can_redo(), egui::Button::new("Redo").shortcut_text("Ctrl+Shift+Z"))
                .clicked()
            {
                self.designer.redo();
                ui.close();
            }
            ui.separator();
            if ui.add(egui::Button::new("Select all").shortcut_text("Ctrl+A")).clicked() {
                self.designer.select_all();
                ui.close();
            }
            let has_selection = !self.designer.selection.is_empty();
            if ui.add_enabled(has_selection, egui::Button::new("Delete").shortcut_text("Del")).clicked() {
                let selection = self.designer.selection.clone();
                self.designer.apply(crate::gui::designer::Action::Delete(selection), ui.ctx());
                ui.close();
            }
        });
    }

    /// The View menu, Deploy and Start instance…: what acts on the draft on screen.
    fn designer_commands(&mut self, ui: &mut Ui) {
        ui.menu_button("View", |ui| {
            if ui.add(egui::Button::new("Zoom to fit").shortcut_text("Ctrl+0")).clicked() {
                self.designer.fit_requested = true;
                ui.close();
            }
            if ui.checkbox(&mut self.designer.snap, "Snap to grid").changed() {
                self.settings.snap_to_grid = Some(self.designer.snap);
            }
        });
        ui.separator();
        let has_errors = self.designer.doc.known_problems().iter().any(|p| p.severity == Severity::Error);
        let deploy = ui
            .add_enabled(!has_errors && self.engine.is_ok() && self.deploying.is_none(), egui::Button::new("Deploy"))
            .on_hover_text("Deploy as the process's next version (Ctrl+D)")
            .on_disabled_hover_text("Fix the errors in the problems panel first");
        if deploy.clicked() {
            self.deploy();
        }
        // Not while a deploy is on its way: the form names the version that starts.
        let start = ui
            .add_enabled(self.engine.is_ok() && self.deploying.is_none(), egui::Button::new("Start instance…"))
            .on_hover_text("Start an instance of this process: its deployed version, or the draft deployed first");
        if start.clicked() {
            self.open_start_form();
        }
    }

    /// Starting and stopping the HTTP API that external systems call back on.
    fn server_menu(&mut self, ui: &mut Ui) {
        if let Some(api) = &self.api {
            ui.label(format!("HTTP API listening on {}", api.base_url()));
            if ui.button("Stop HTTP API").clicked() {
                self.stop_api();
                ui.close();
            }
        } else if let Some((address, _)) = &self.stopping_api {
            ui.horizontal(|ui| {
                ui.add(egui::Spinner::new());
                ui.label(format!("Stopping the HTTP API on {address}…"));
            });
        } else {
            ui.horizontal(|ui| {
                ui.label("Listen on");
                let edit = ui.add(egui::TextEdit::singleline(&mut self.api_listen).desired_width(150.0));
                edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Listen on"));
            });
            let start = ui
                .add_enabled(self.engine.is_ok(), egui::Button::new("Start HTTP API"))
                .on_hover_text("Serve callbacks, starts and reads over HTTP on this address");
            if start.clicked() {
                self.start_api();
                ui.close();
            }
        }
        ui.separator();
        let create = ui
            .add_enabled(self.engine.is_ok(), egui::Button::new("Create token…"))
            .on_hover_text("A bearer token for an external system; it acts as a user, with that user's rights");
        if create.clicked() {
            self.modal = Some(Modal::CreateToken(TokenForm::default()));
            ui.close();
        }
        let list = ui
            .add_enabled(self.engine.is_ok(), egui::Button::new("Tokens…"))
            .on_hover_text("Every token, and revoking one that leaked or is no longer used");
        if list.clicked() {
            self.modal = Some(Modal::Tokens(self.token_list()));
            ui.close();
        }
        ui.label(RichText::new("or: flowdesk token create USER").monospace().weak());
    }

    pub fn start_api(&mut self) {
        let Ok(runtime) = &self.runtime else { return };
        let text = self.api_listen.trim().to_owned();
        let address = match text.parse::<std::net::SocketAddr>() {
            Ok(address) => address,
            Err(_) => {
                let message = format!("`{text}` is not an address and port, such as {}", crate::net::DEFAULT_LISTEN);
                self.set_status(format!("HTTP API not started: {message}"), StatusKind::Failure);
                return;
            }
        };
        match crate::net::RunningApi::start(runtime.clone(), address) {
            Ok(api) => {
                self.set_status(format!("HTTP API listening on {}", api.base_url()), StatusKind::Success);
                self.settings.api_listen = text;
                self.api = Some(api);
            }
            Err(e) => self.set_status(format!("HTTP API not started: {e}"), StatusKind::Failure),
        }
    }

    /// Stops the API; calls in flight get a few seconds to end, on a thread
    /// of its own, so that no frame waits for them.
    pub fn stop_api(&mut self) {
        let Some(api) = self.api.take() else { return };
        let address = api.address();
        let wake = self.repaint.clone();
        let stopping = std::thread::Builder::new().name("flowdesk-api-stop".to_owned()).spawn(move || {
            api.stop();
            if let Some(ctx) = wake.get() {
                ctx.request_repaint();
            }
        });
        match stopping {
            Ok(thread) => {
                self.stopping_api = Some((address, thread));
                self.set_status(format!("Stopping the HTTP API on {address}…"), StatusKind::Pending);
            }
            // The thread was not made: the API, handed back in its closure and
            // dropped with it, stopped here.
            Err(_) => self.set_status(format!("HTTP API on {address} stopped"), StatusKind::Info),
        }
    }

    /// Says so once the API being stopped has stopped.
    fn take_stopped_api(&mut self) {
        if self.stopping_api.as_ref().is_some_and(|(_, thread)| thread.is_finished())
            && let Some((address, thread)) = self.stopping_api.take()
        {
            // Its only work is stopping; a panic there left nothing to stop.
            let _ = thread.join();
            self.set_status(format!("HTTP API on {address} stopped"), StatusKind::Info);
        }
    }

    /// The Create token dialog; false once it is closed.
    fn token_dialog(&mut self, ctx: &egui::Context, form: &mut TokenForm) -> bool {
        let mut open = true;
        let mut create = false;
        egui::Modal::new(egui::Id::unique("create-token")).show(ctx, |ui| {
            ui.heading("Create an API token");
            match &form.issued {
                None => {
                    ui.label("The token acts as this user, with the user's process rights (Server Event to finish).");
                    egui::Grid::new("token-form").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
                        let label = ui.label("User");
                        ui.add(egui::TextEdit::singleline(&mut form.user).hint_text("e.g. biztalk"))
                            .labelled_by(label.id);
                        ui.end_row();
                        let label = ui.label("Label");
                        ui.add(egui::TextEdit::singleline(&mut form.label).hint_text("what it is for"))
                            .labelled_by(label.id);
                        ui.end_row();
                    });
                    if let Some(error) = &form.error {
                        ui.colored_label(theme::ERROR, error);
                    }
                    ui.add_space(8.0);
                    let free = form.creating.is_none();
                    ui.horizontal(|ui| {
                        create = ui.add_enabled(free, egui::Button::new("Create")).clicked();
                        // The token would be made all the same, and its secret lost.
                        if ui.add_enabled(free, egui::Button::new("Cancel")).clicked() {
                            open = false;
                        }
                        if !free {
                            ui.add(egui::Spinner::new());
                            ui.label("Creating…");
                        }
                    });
                }
                Some((id, secret)) => {
                    ui.label(format!(
                        "Token {id} acts as {}. Copy it now: only its hash is kept, so it cannot be shown again.",
                        form.user.trim()
                    ));
                    let mut shown = secret.clone();
                    let field = ui.add(
                        egui::TextEdit::singleline(&mut shown).font(egui::TextStyle::Monospace).desired_width(560.0),
                    );
                    field.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Secret"));
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button("Copy").clicked() {
                            ui.ctx().copy_text(secret.clone());
                        }
                        if ui.button("Done").clicked() {
                            open = false;
                        }
                    });
                }
            }
        });
        if create {
            self.create_token(form);
        }
        open
    }

    fn token_list(&self) -> TokenList {
        let (tokens, error) = match &self.runtime {
            Ok(runtime) => match runtime.tokens() {
                Ok(tokens) => (tokens, None),
                Err(e) => (Vec::new(), Some(format!("The tokens could not be read: {e}"))),
            },
            Err(e) => (Vec::new(), Some(e.clone())),
        };
        TokenList { tokens, confirm: None, revoking: None, error }
    }

    /// The Tokens dialog; false once it is closed.
    fn tokens_dialog(&mut self, ctx: &egui::Context, list: &mut TokenList) -> bool {
        let mut open = true;
        let mut revoke = None;
        egui::Modal::new(egui::Id::unique("api-tokens")).show(ctx, |ui| {
            ui.heading("API tokens");
            if list.tokens.is_empty() {
                ui.label("No tokens yet: Server ▸ Create token… makes one.");
            }
            egui::Grid::new("token-list").num_columns(6).striped(true).spacing([12.0, 6.0]).show(ui, |ui| {
                if !list.tokens.is_empty() {
                    for title in ["Id", "User", "Label", "Starts with", "Created", ""] {
                        ui.label(RichText::new(title).strong());
                    }
                    ui.end_row();
                }
                for token in &list.tokens {
                    ui.label(token.id.to_string());
                    ui.label(&token.user);
                    ui.label(&token.label);
                    ui.label(RichText::new(format!("{}…", token.prefix)).monospace());
                    ui.label(format!("{} by {}", crate::engine::format_time(token.created_at), token.created_by));
                    match (token.revoked_at, &token.revoked_by) {
                        (Some(at), by) => {
                            ui.label(
                                RichText::new(format!(
                                    "revoked {} by {}",
                                    crate::engine::format_time(at),
                                    by.as_deref().unwrap_or("?")
                                ))
                                .weak(),
                            );
                        }
                        (None, _) if list.confirm == Some(token.id) => {
                            ui.horizontal(|ui| {
                                ui.colored_label(theme::ERROR, "Revoke? Calls with it fail at once.");
                                let free = list.revoking.is_none();
                                if ui.add_enabled(free, egui::Button::new("Yes, revoke")).clicked() {
                                    revoke = Some(token.id);
                                }
                                if ui.add_enabled(free, egui::Button::new("No")).clicked() {
                                    list.confirm = None;
                                }
                                if !free {
                                    ui.add(egui::Spinner::new());
                                }
                            });
                        }
                        (None, _) => {
                            if ui.button(format!("Revoke {}", token.id)).clicked() {
                                list.confirm = Some(token.id);
                            }
                        }
                    }
                    ui.end_row();
                }
            });
            if let Some(error) = &list.error {
                ui.colored_label(theme::ERROR, error);
            }
            ui.add_space(8.0);
            if ui.button("Close").clicked() {
                open = false;
            }
        });
        if let Some(id) = revoke {
            self.revoke_token(id, list);
        }
        open
    }

    fn revoke_token(&mut self, id: i64, list: &mut TokenList) {
        let Some(actions) = &mut self.actions else { return };
        list.revoking = Some(actions.send(&self.user, Command::RevokeToken { id }));
        list.error = None;
    }

    fn create_token(&mut self, form: &mut TokenForm) {
        let Some(actions) = &mut self.actions else { return };
        let user = form.user.trim().to_owned();
        if user.is_empty() {
            form.error = Some("Name the user the token acts as.".to_owned());
            return;
        }
        let label = form.label.trim().to_owned();
        form.creating = Some(actions.send(&self.user, Command::CreateToken { user, label }));
        form.error = None;
    }

    /// Where the HTTP API answers, while it runs.
    pub fn api_url(&self) -> Option<String> {
        self.api.as_ref().map(crate::net::RunningApi::base_url)
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        let command = |key| KeyboardShortcut::new(Modifiers::COMMAND, key);
        let command_shift = |key| KeyboardShortcut::new(Modifiers::COMMAND | Modifiers::SHIFT, key);
        // A dialog is answered first: nothing behind it moves meanwhile.
        if self.modal.is_some() || self.file_dialog.is_some() {
            return;
        }
        if ctx.input_mut(|i| i.consume_shortcut(&command(Key::Q))) {
            self.request(Replace::Quit);
        }
        // The rest acts on the draft, which only the designer shows.
        if self.view != AppView::Designer {
            return;
        }
        let typing = ctx.egui_wants_keyboard_input();
        if ctx.input_mut(|i| i.consume_shortcut(&command_shift(Key::S))) {
            self.save(true, None);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&command(Key::S))) {
            self.save(false, None);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&command(Key::O))) {
            self.request(Replace::Open(None));
        }
        if ctx.input_mut(|i| i.consume_shortcut(&command(Key::N))) {
            self.request(Replace::New);
        }
        // Alt+1.. opens a sample, Ctrl+1.. a recent file.
        let digits =
            [Key::Num1, Key::Num2, Key::Num3, Key::Num4, Key::Num5, Key::Num6, Key::Num7, Key::Num8, Key::Num9];
        for (index, key) in digits.into_iter().enumerate() {
            if index < SAMPLES.len()
                && ctx.input_mut(|i| i.consume_shortcut(&KeyboardShortcut::new(Modifiers::ALT, key)))
            {
                self.request(Replace::Sample(index));
            }
            if let Some(path) = self.settings.recent.get(index).cloned()
                && ctx.input_mut(|i| i.consume_shortcut(&command(key)))
            {
                self.request(Replace::Open(Some(path)));
            }
        }
        if ctx.input_mut(|i| i.consume_shortcut(&command(Key::D))) {
            self.deploy();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&command(Key::Num0))) {
            self.designer.fit_requested = true;
        }
        if typing {
            return; // text fields keep their own undo and select-all
        }
        let redo =
            ctx.input_mut(|i| i.consume_shortcut(&command_shift(Key::Z)) || i.consume_shortcut(&command(Key::Y)));
        if redo {
            self.designer.redo();
        } else if ctx.input_mut(|i| i.consume_shortcut(&command(Key::Z))) {
            self.designer.undo();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&command(Key::A))) {
            self.designer.select_all();
        }
    }

    // ----- panels --------------------------------------------------------------

    fn palette(&mut self, ui: &mut Ui) {
        ui.add_space(6.0);
        ui.heading("Event templates");
        ui.label(
            RichText::new("Drag onto the canvas for a new activity, or onto an activity to add an event.")
                .small()
                .weak(),
        );
        ui.add_space(6.0);
        for (index, template) in TEMPLATES.iter().enumerate() {
            let id = ui.make_persistent_id(("template", index));
            let response = ui
                .dnd_drag_source(id, TemplatePayload(index), |ui| {
                    egui::Frame::group(ui.style()).inner_margin(6.0).show(ui, |ui| {
                        ui.set_width(ui.available_width());
                        ui.horizontal(|ui| {
                            match self.icons.as_ref().map(|icons| icons.for_template(template.icon)) {
                                Some(Some(texture)) => {
                                    ui.add(egui::Image::new((texture, egui::vec2(22.0, 22.0))));
                                }
                                Some(None) => {
                                    let (rect, _) =
                                        ui.allocate_exact_size(egui::vec2(22.0, 22.0), egui::Sense::hover());
                                    paint_drawn_icon(ui.painter(), template.icon, rect);
                                }
                                None => {}
                            }
                            // Not selectable: pressing on the name must drag the template.
                            ui.add(egui::Label::new(RichText::new(template.name).strong()).selectable(false));
                        });
                    });
                })
                .response;
            let label = format!("Template {}", template.name);
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
            response.on_hover_text(template.description);
            ui.add_space(4.0);
        }
        ui.add_space(12.0);
        ui.separator();
        ui.label(RichText::new("Canvas").strong());
        for hint in [
            "Drag the round handle of an activity to another one to draw a line.",
            "Drag the background to pan; Shift+drag to select.",
            "Ctrl+wheel zooms; Ctrl+0 fits.",
            "Right-click an event to toggle Synchronous.",
        ] {
            ui.label(RichText::new(hint).small().weak());
        }
    }

    fn properties(&mut self, ui: &mut Ui) {
        let process = self.designer.doc.draft().name.clone();
        let rights = match (&self.rights, self.designer.selection.is_empty()) {
            (Some((name, rights)), true) if *name == process => {
                let busy = self.changing_rights.is_some();
                Some(RightsView { rights: rights.as_slice(), new_user: &mut self.grant_user, busy })
            }
            _ => None,
        };
        let (edits, requests) = properties_ui(ui, &self.designer, rights);
        for edit in edits {
            self.designer.edit(edit);
        }
        for request in requests {
            self.apply_request(request);
        }
    }

    fn status_bar(&mut self, ui: &mut Ui) {
        ui.horizontal(|ui| {
            if let Some((text, kind)) = &self.status {
                let color = match kind {
                    StatusKind::Info | StatusKind::Pending => ui.visuals().text_color(),
                    StatusKind::Success => theme::SUCCESS,
                    StatusKind::Failure => theme::ERROR,
                };
                if *kind == StatusKind::Pending {
                    ui.add(egui::Spinner::new());
                }
                ui.colored_label(color, text);
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                ui.label(RichText::new(self.db_path.display().to_string()).small().weak());
                match &self.api {
                    Some(api) => {
                        ui.label(RichText::new(format!("API on {}", api.base_url())).small().color(theme::SUCCESS))
                            .on_hover_text("The HTTP API is running; Server menu to stop it");
                    }
                    None => {
                        ui.label(RichText::new("API off").small().weak())
                            .on_hover_text("Server menu to start the HTTP API");
                    }
                }
                if let Ok(runtime) = &self.runtime {
                    let (text, color, hover) = timers_words(runtime.timer_ticking());
                    ui.label(RichText::new(text).small().color(color)).on_hover_text(hover);
                }
                ui.separator();
                // Every action is taken as this user; change it to see what
                // another user (an integration account) may do.
                let mut user = self.user.clone();
                let edit = ui.add(egui::TextEdit::singleline(&mut user).desired_width(110.0));
                edit.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Connected as"));
                if edit.changed() && !user.trim().is_empty() {
                    self.user = user.trim().to_owned();
                    self.refresh_rights();
                }
                ui.label(RichText::new("connected as").small());
            });
        });
    }

    // ----- documents -----------------------------------------------------------

    /// Replaces the document now, or asks first if there is unsaved work.
    pub fn request(&mut self, replace: Replace) {
        if self.designer.doc.is_dirty() {
            self.modal = Some(Modal::UnsavedChanges(replace));
        } else {
            self.replace(replace);
        }
    }

    fn replace(&mut self, replace: Replace) {
        match replace {
            Replace::New => self.designer.open(Document::untitled()),
            Replace::Sample(index) => {
                let Some((name, text)) = SAMPLES.get(index) else { return };
                match ProcessDraft::from_json(text, name) {
                    Ok(draft) => self.designer.open(Document::new(draft, None)),
                    Err(err) => self.fail("Cannot open the sample", err.to_string()),
                }
            }
            Replace::Open(path) => {
                let path = match path {
                    Some(path) => path,
                    None => match self.dialogs.open_process(self.dialog_folder().as_deref()) {
                        DialogOutcome::Chosen(path) => path,
                        DialogOutcome::Cancelled => return,
                        DialogOutcome::Unavailable => return self.open_file_dialog(FilePurpose::Open),
                    },
                };
                self.open_file(&path);
            }
            Replace::ImportBpmn(path) => {
                let path = match path {
                    Some(path) => path,
                    None => match self.dialogs.open_bpmn(self.dialog_folder().as_deref()) {
                        DialogOutcome::Chosen(path) => path,
                        DialogOutcome::Cancelled => return,
                        DialogOutcome::Unavailable => return self.open_file_dialog(FilePurpose::ImportBpmn),
                    },
                };
                self.import_bpmn(&path, None);
            }
            Replace::Quit => {
                self.close_confirmed = true;
                self.pending_close = true;
            }
        }
        self.refresh_rights();
    }

    fn open_file(&mut self, path: &Path) {
        match ProcessDraft::load(path) {
            Ok(draft) => {
                self.designer.open(Document::new(draft, Some(path.to_owned())));
                self.remember(path);
                self.set_status(format!("Opened {}", path.display()), StatusKind::Info);
            }
            // The current work stays as it was.
            Err(err) => self.fail("Cannot open the process file", err.to_string()),
        }
    }

    /// Opens a BPMN file's process (`process`, or the only one; for a file
    /// of several, asks which) as an unsaved draft and shows the import's
    /// report; the current work stays if the file cannot be read.
    fn import_bpmn(&mut self, path: &Path, process: Option<String>) {
        use crate::model::bpmn;
        let options = bpmn::ImportOptions { process };
        let imported = bpmn::read_file(path)
            .map_err(|e| e.to_string())
            .and_then(|text| bpmn::import(&text, &options).map_err(|e| e.to_string()));
        let mut imported = match imported {
            Ok(imported) => imported,
            Err(err) => return self.fail("Cannot import the BPMN file", err),
        };
        if imported.processes.len() > 1 {
            let choices = imported.processes.iter().map(|p| (p.id.clone(), p.draft.name.clone())).collect();
            self.modal = Some(Modal::ChooseProcess { path: path.to_owned(), choices });
            return;
        }
        let process = imported.processes.remove(0);
        let mut entries = imported.report.0;
        entries.extend(process.report.0);
        let name = process.draft.name.clone();
        let problems = crate::model::validate(&process.draft, &self.designer.host);
        let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
        let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut summary = format!(
            "{file}: process `{name}`, {} activities and {} lines, as a draft that is not saved yet. ",
            process.draft.activities.len(),
            process.draft.lines.len()
        );
        summary.push_str(&match errors {
            0 => "It is valid.".to_owned(),
            n => format!("It has {n} error(s) to fix: the problems panel lists them."),
        });
        self.designer.open(Document::unsaved(process.draft));
        self.set_status(format!("Imported `{name}` from {file}: not saved yet"), StatusKind::Info);
        self.modal = Some(Modal::ImportReport { title: format!("Imported {file}"), summary, entries });
    }

    /// File ▸ Export BPMN…: asks where, then writes the draft as BPMN 2.0.
    fn export_bpmn(&mut self) {
        let name = self.designer.doc.draft().name.clone();
        match self.dialogs.save_bpmn(&name, self.dialog_folder().as_deref()) {
            DialogOutcome::Chosen(path) => self.write_bpmn(&with_bpmn_extension(path)),
            DialogOutcome::Cancelled => {}
            DialogOutcome::Unavailable => self.open_file_dialog(FilePurpose::ExportBpmn),
        }
    }

    fn write_bpmn(&mut self, path: &Path) {
        let written = crate::model::bpmn::export(self.designer.doc.draft())
            .map_err(|e| e.to_string())
            .and_then(|text| std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display())));
        match written {
            Ok(()) => self.set_status(format!("Exported as BPMN to {}", path.display()), StatusKind::Success),
            Err(err) => self.fail("Cannot export as BPMN", err),
        }
    }

    /// Saves to the document's file, or asks where (always, for Save As);
    /// `then` happens once the draft is saved, and not at all if it is not.
    /// What is kept between runs, as it stands now (eframe saves it).
    pub fn kept_settings(&mut self) -> Settings {
        self.settings.saved_filters = self.monitor.find.saved.clone();
        self.settings.clone()
    }

    /// Export CSV…: asks where, then writes every instance of `filter` on
    /// a thread of its own (a million rows take seconds).
    fn export_csv(&mut self, filter: crate::engine::InstanceFilter) {
        let name = filter.process.clone().unwrap_or_else(|| "instances".to_owned());
        let chosen = self.dialogs.save_csv(&name, self.dialog_folder().as_deref());
        let find = &mut self.monitor.find;
        match chosen {
            DialogOutcome::Chosen(path) => match &self.engine {
                Ok(engine) => {
                    let wake = self.repaint.clone();
                    let wake = move || {
                        if let Some(ctx) = wake.get() {
                            ctx.request_repaint();
                        }
                    };
                    find.exporting(crate::gui::monitor::find::export(engine.clone(), &self.user, filter, path, wake));
                }
                Err(error) => find.export_ended(Err(error.clone())),
            },
            DialogOutcome::Cancelled => {}
            DialogOutcome::Unavailable => find.export_ended(Err(
                "This desktop has no file dialog; `flowdesk instances --csv` exports the same list".to_owned(),
            )),
        }
    }

    fn save(&mut self, save_as: bool, then: Option<Replace>) {
        let path = match (save_as, self.designer.doc.path()) {
            (false, Some(path)) => path.to_owned(),
            _ => {
                let name = self.designer.doc.draft().name.clone();
                match self.dialogs.save_process(&name, self.dialog_folder().as_deref()) {
                    DialogOutcome::Chosen(path) => with_process_extension(path),
                    DialogOutcome::Cancelled => return,
                    DialogOutcome::Unavailable => return self.open_file_dialog(FilePurpose::Save { then }),
                }
            }
        };
        self.write_draft(&path, then);
    }

    fn write_draft(&mut self, path: &Path, then: Option<Replace>) {
        match std::fs::write(path, self.designer.doc.draft().to_json()) {
            Ok(()) => {
                self.designer.doc.mark_saved(path.to_owned());
                self.remember(path);
                self.set_status(format!("Saved {}", path.display()), StatusKind::Success);
                if let Some(then) = then {
                    self.replace(then);
                }
            }
            Err(err) => self.fail("Cannot save", format!("{}: {err}", path.display())),
        }
    }

    /// Where a file dialog starts: the document's folder, else the last
    /// file's, else the user's documents.
    fn dialog_folder(&self) -> Option<PathBuf> {
        let folder_of = |path: &Path| path.parent().filter(|folder| folder.is_dir()).map(Path::to_owned);
        self.designer
            .doc
            .path()
            .and_then(folder_of)
            .or_else(|| self.settings.recent.first().and_then(|path| folder_of(path)))
            .or_else(|| {
                let user = directories::UserDirs::new()?;
                Some(user.document_dir().unwrap_or(user.home_dir()).to_owned())
            })
    }

    /// Opens the dialog inside the window: the desktop has none to offer.
    fn open_file_dialog(&mut self, purpose: FilePurpose) {
        let mut dialog = match &purpose {
            FilePurpose::Open => egui_file::FileDialog::open_file()
                .title("Open process")
                .show_new_folder(false)
                .filename_filter(Box::new(|name: &str| name.ends_with(".json"))),
            FilePurpose::Save { .. } => egui_file::FileDialog::save_file()
                .title("Save process as")
                .default_filename(format!("{}.process.json", self.designer.doc.draft().name)),
            FilePurpose::ImportBpmn => egui_file::FileDialog::open_file().title("Import BPMN").show_new_folder(false),
            FilePurpose::ExportBpmn => egui_file::FileDialog::save_file()
                .title("Export BPMN")
                .default_filename(format!("{}.bpmn", self.designer.doc.draft().name)),
        }
        .id(egui::Id::unique("in-window-file-dialog"))
        .anchor(egui::Align2::CENTER_CENTER, [0.0, 0.0])
        .default_size([560.0, 420.0])
        .show_rename(false)
        .keep_on_top(true)
        .show_files_filter(match &purpose {
            FilePurpose::Open | FilePurpose::Save { .. } => {
                Box::new(|path: &Path| path.extension().is_some_and(|e| e == "json"))
            }
            FilePurpose::ImportBpmn | FilePurpose::ExportBpmn => {
                Box::new(|path: &Path| crate::model::bpmn::is_bpmn_path(path))
            }
        });
        if let Some(folder) = self.dialog_folder() {
            dialog = dialog.initial_path(folder);
        }
        dialog.open();
        self.file_dialog = Some(InWindowDialog { dialog, purpose });
        self.set_status(
            "This desktop has no file dialog (no XDG desktop portal file chooser, no zenity): choose the file here."
                .to_owned(),
            StatusKind::Info,
        );
    }

    /// Draws the in-window file dialog and acts on its answer.
    fn file_dialog_ui(&mut self, ctx: &egui::Context) {
        let Some(mut open) = self.file_dialog.take() else { return };
        open.dialog.show(ctx);
        match open.dialog.state() {
            egui_file::State::Open => self.file_dialog = Some(open),
            egui_file::State::Selected => {
                let Some(chosen) = open.dialog.path().map(Path::to_owned) else { return };
                match open.purpose {
                    FilePurpose::Open => {
                        self.open_file(&chosen);
                        self.refresh_rights();
                    }
                    FilePurpose::Save { then } => {
                        let path = with_process_extension(chosen);
                        // A desktop dialog asks before replacing a file; this one does not.
                        if path.exists() && self.designer.doc.path() != Some(path.as_path()) {
                            self.modal = Some(Modal::ConfirmReplace { path, then });
                        } else {
                            self.write_draft(&path, then);
                        }
                    }
                    FilePurpose::ImportBpmn => self.import_bpmn(&chosen, None),
                    FilePurpose::ExportBpmn => self.write_bpmn(&with_bpmn_extension(chosen)),
                }
            }
            egui_file::State::Cancelled | egui_file::State::Closed => {
                self.set_status("Nothing was saved or opened.".to_owned(), StatusKind::Info);
            }
        }
    }

    fn remember(&mut self, path: &Path) {
        let path = path.canonicalize().unwrap_or_else(|_| path.to_owned());
        self.settings.recent.retain(|p| *p != path);
        self.settings.recent.insert(0, path);
        self.settings.recent.truncate(RECENT_LIMIT);
    }

    // ----- engine --------------------------------------------------------------

    /// Whether a write the window sent, or an item the monitor asked for, has
    /// not been answered yet, or the HTTP API is still stopping.
    pub fn busy(&self) -> bool {
        self.actions.as_ref().is_some_and(|actions| actions.pending() > 0)
            || self.monitor.waiting()
            || self.stopping_api.is_some()
    }

    /// The write worker, for tests that watch what it has begun.
    pub fn actions(&self) -> Option<&Actions> {
        self.actions.as_ref()
    }

    /// The window closes: a write in progress completes, writes not begun
    /// yet are not begun at all (dropping the app waits for the first).
    pub fn closing(&mut self) {
        if let Some(actions) = &mut self.actions {
            actions.close();
        }
    }

    /// Takes in the answers of the write worker; the monitor takes its own.
    /// The window's ticker fired timers since the last frame: the monitor
    /// reads again what they changed, at once rather than at its next
    /// refresh.
    fn take_firings(&mut self) {
        let Some(ticking) = self.timer_ticking() else { return };
        if ticking.fired != self.timers_fired {
            self.timers_fired = ticking.fired;
            self.monitor.refresh(&self.user);
        }
    }

    /// Whether the window's runtime fires timers, and when it last did
    /// (what the status bar says); `None` without a database.
    pub fn timer_ticking(&self) -> Option<TimerTicking> {
        self.runtime.as_ref().ok().map(|runtime| runtime.timer_ticking())
    }

    fn take_answers(&mut self) {
        let Some(actions) = &mut self.actions else { return };
        for done in actions.poll() {
            if let Some(done) = self.monitor.answered(done, &self.user) {
                self.answered(done);
            }
        }
    }

    fn answered(&mut self, done: Done) {
        let Done { ticket, command, reply, .. } = done;
        match (command, reply) {
            (Command::Deploy { .. }, Reply::Deployed(result)) => self.deployed(ticket, result),
            (Command::Start(request), Reply::Started(start)) => self.started(ticket, &request, start),
            (Command::Grant { process, user, right }, Reply::Rights(result)) => {
                let words = format!("Granted {right} on {process} to {user}");
                self.rights_changed(ticket, words, result);
            }
            (Command::Revoke { process, user, right }, Reply::Rights(result)) => {
                let words = format!("Revoked {right} on {process} from {user}");
                self.rights_changed(ticket, words, result);
            }
            (Command::CreateToken { user, label }, Reply::TokenCreated(result)) => {
                self.token_created(ticket, user, label, result);
            }
            (Command::RevokeToken { id }, Reply::TokenRevoked(result)) => self.token_revoked(ticket, id, result),
            // The monitor's commands are answered to the monitor, and a
            // command is always answered in its own kind.
            _ => {}
        }
    }

    /// Deploys the draft on screen as its process's next version; a draft
    /// identical to the latest version is deployed only once confirmed.
    pub fn deploy(&mut self) {
        self.send_deploy(false);
    }

    /// Sends the draft on screen to be deployed; `again` deploys it even if
    /// it is identical to the latest version.
    fn send_deploy(&mut self, again: bool) {
        let Some(actions) = &mut self.actions else { return };
        if self.deploying.is_some() {
            return;
        }
        let draft = self.designer.doc.draft().clone();
        let words = format!("Deploying {}…", draft.name);
        self.deploying = Some(actions.send(&self.user, Command::Deploy { draft: Box::new(draft), again }));
        self.set_status(words, StatusKind::Pending);
    }

    fn deployed(&mut self, ticket: Ticket, result: Result<Deploy, EngineError>) {
        if self.deploying == Some(ticket) {
            self.deploying = None;
        }
        match result {
            // Asked in a dialog, unless another one came up meanwhile.
            Ok(Deploy::Identical { version }) if self.modal.is_none() => {
                self.status = None;
                self.modal = Some(Modal::ConfirmRedeploy { version });
            }
            Ok(Deploy::Identical { version }) => {
                let process = &self.designer.doc.draft().name;
                let words = format!("Not deployed: the draft is the same definition as {process} version {version}");
                self.set_status(words, StatusKind::Info);
            }
            Ok(Deploy::Deployed { deployed, layout_only_of }) => {
                let mut notes = Vec::new();
                if let Some(previous) = layout_only_of {
                    notes.push(format!("only the layout differs from version {previous}"));
                }
                if !deployed.warnings.is_empty() {
                    notes.push(format!("{} warning(s)", deployed.warnings.len()));
                }
                if !deployed.indexed.is_empty() {
                    notes.push(format!("indexed searchable {}", deployed.indexed.join(", ")));
                }
                let notes = if notes.is_empty() { String::new() } else { format!(" ({})", notes.join("; ")) };
                self.set_status(
                    format!("Deployed {} version {}{notes}", deployed.process, deployed.version),
                    StatusKind::Success,
                );
                self.refresh_rights();
            }
            Err(err) => self.fail_answered("Cannot deploy", err.to_string()),
        }
    }

    /// The default (latest) version of a deployed process and its definition;
    /// `None` if it was never deployed. A read, which never waits for a write
    /// (write-ahead log).
    fn deployed_version(&self, process: &str) -> Result<Option<(u32, ProcessDraft)>, String> {
        let engine = self.engine.as_ref().map_err(Clone::clone)?;
        actions::latest(engine, process).map_err(|e| e.to_string())
    }

    /// Start instance… in the designer: the deployed version, or the draft
    /// on screen deployed first.
    fn open_start_form(&mut self) {
        let process = self.designer.doc.draft().name.clone();
        match self.deployed_version(&process) {
            Ok(deployed) => self.modal = Some(Modal::StartInstance(self.start_form(&process, deployed, true))),
            Err(err) => self.fail("Cannot start an instance", err),
        }
    }

    /// The start form for a deployed process (the monitor's Start new instance…).
    fn open_start_form_for(&mut self, process: &str) {
        match self.deployed_version(process) {
            Ok(Some(deployed)) => {
                self.modal = Some(Modal::StartInstance(self.start_form(process, Some(deployed), false)));
            }
            Ok(None) => self.fail("Cannot start an instance", format!("{process} is not deployed")),
            Err(err) => self.fail("Cannot start an instance", err),
        }
    }

    /// The start form of `process`, whose default version is `deployed`;
    /// from the designer, it also compares the draft on screen (which is of
    /// that process) with it.
    fn start_form(&self, process: &str, deployed: Option<(u32, ProcessDraft)>, from_designer: bool) -> StartForm {
        if !from_designer {
            return StartForm::new(process, deployed, None, None);
        }
        let has_errors = self.designer.doc.known_problems().iter().any(|p| p.severity == Severity::Error);
        let draft = self.designer.doc.draft();
        let standing = match &deployed {
            _ if has_errors => DraftStanding::HasErrors,
            None => DraftStanding::NotDeployed,
            Some((_, definition)) => DraftStanding::Compared(compare_definitions(draft, definition)),
        };
        StartForm::new(process, deployed, Some(standing), Some(draft))
    }

    /// Sends the start the form asks for; the form waits for its answer.
    fn start_instance(&mut self, form: &mut StartForm) {
        let Some(actions) = &mut self.actions else { return };
        let data: Vec<(String, String)> = form
            .values
            .iter()
            .filter(|(_, field_type, text)| !(text.is_empty() && *field_type != FieldType::String))
            .map(|(name, _, text)| (name.clone(), text.clone()))
            .collect();
        let request = StartRequest {
            process: form.process.clone(),
            folio: form.folio.clone(),
            data,
            deploy: form.deploy_draft.then(|| self.designer.doc.draft().clone()),
            version: form.version,
        };
        form.starting = Some(actions.send(&self.user, Command::Start(Box::new(request))));
        form.error = None;
    }

    /// Takes in the answer to a start: the form closes once the instance
    /// started, and says why otherwise. The status line says what happened
    /// also when the form is no longer there.
    fn started(&mut self, ticket: Ticket, request: &StartRequest, start: Start) {
        // The form waiting for this answer, taken out while it is updated.
        let mut form = match self.modal.take() {
            Some(Modal::StartInstance(mut form)) if form.starting == Some(ticket) => {
                form.starting = None;
                Some(form)
            }
            other => {
                self.modal = other;
                None
            }
        };
        let process = &request.process;
        let error = match start {
            Start::Started { deployed, progress } => {
                let next = match progress.status {
                    crate::engine::InstanceStatus::Active => {
                        format!("waiting for a callback on {}", progress.waiting.join(", "))
                    }
                    crate::engine::InstanceStatus::Error => {
                        let why = progress.failure.map(|f| f.message).unwrap_or_default();
                        format!("in error: {why}")
                    }
                    status => status.name().to_lowercase(),
                };
                let started = match deployed {
                    Some(version) => {
                        format!("Deployed {process} version {version} and started instance {}", progress.instance_id)
                    }
                    None => format!("Started instance {}", progress.instance_id),
                };
                // The form closes: it stays taken out.
                self.set_status(format!("{started}: {next}"), StatusKind::Success);
                if deployed.is_some() {
                    self.refresh_rights();
                }
                // The monitor lists the new instance now, not at its next refresh.
                self.monitor.refresh(&self.user);
                return;
            }
            Start::NotDeployed(err) => format!("{process} was not deployed: {err}"),
            Start::Refused { deployed: Some(version), error } => {
                // A start refused is tried again without a second deploy.
                if let Some(form) = &mut form {
                    form.deployed_now(version);
                }
                self.refresh_rights();
                format!("Deployed as version {version}, but the instance did not start: {error}")
            }
            Start::Refused { deployed: None, error } => error.to_string(),
            Start::Moved { current } => {
                let Some(old) = form else {
                    return self.set_status(format!("Not started: {process} was deployed again"), StatusKind::Failure);
                };
                let mut fresh = self.start_form_again(&old, current);
                fresh.error = Some(match fresh.version {
                    Some(version) => format!(
                        "{process} version {version} was deployed since this dialog opened; check the fields and start again."
                    ),
                    None => format!("{process} is no longer deployed."),
                });
                self.modal = Some(Modal::StartInstance(fresh));
                return;
            }
        };
        match form {
            Some(mut form) => {
                form.error = Some(error);
                self.modal = Some(Modal::StartInstance(form));
            }
            None => self.set_status(format!("Not started: {error}"), StatusKind::Failure),
        }
    }

    /// The start form made again on the version now deployed, keeping what
    /// was typed into `old`.
    fn start_form_again(&self, old: &StartForm, current: Option<(u32, ProcessDraft)>) -> StartForm {
        let mut fresh = self.start_form(&old.process, current, old.draft.is_some());
        fresh.keep_typed(old);
        fresh
    }

    fn apply_request(&mut self, request: Request) {
        let Some(actions) = &mut self.actions else { return };
        if self.changing_rights.is_some() {
            return;
        }
        let process = self.designer.doc.draft().name.clone();
        let (words, command) = match request {
            Request::Grant { user, right } => {
                (format!("Granting {right} on {process} to {user}…"), Command::Grant { process, user, right })
            }
            Request::Revoke { user, right } => {
                (format!("Revoking {right} on {process} from {user}…"), Command::Revoke { process, user, right })
            }
        };
        self.changing_rights = Some(actions.send(&self.user, command));
        self.set_status(words, StatusKind::Pending);
    }

    fn rights_changed(&mut self, ticket: Ticket, words: String, result: Result<(), EngineError>) {
        if self.changing_rights == Some(ticket) {
            self.changing_rights = None;
        }
        match result {
            Ok(()) => {
                self.set_status(words, StatusKind::Success);
                self.grant_user.clear();
            }
            Err(err) => self.fail_answered("Rights not changed", err.to_string()),
        }
        self.refresh_rights();
    }

    fn token_created(&mut self, ticket: Ticket, user: String, label: String, result: Result<(i64, String), String>) {
        if let Ok((id, _)) = &result {
            self.set_status(format!("Created token {id} for {user}"), StatusKind::Success);
        }
        match &mut self.modal {
            Some(Modal::CreateToken(form)) if form.creating == Some(ticket) => {
                form.creating = None;
                match result {
                    Ok(issued) => form.issued = Some(issued),
                    Err(e) => form.error = Some(format!("No token was made: {e}")),
                }
            }
            // The dialog cannot be closed while it waits, but another
            // answer's message may have taken its place: the secret is shown
            // only once, so its dialog comes back.
            _ => match result {
                Ok(issued) => {
                    let form = TokenForm { user, label, issued: Some(issued), creating: None, error: None };
                    self.modal = Some(Modal::CreateToken(form));
                }
                Err(e) => self.set_status(format!("No token was made: {e}"), StatusKind::Failure),
            },
        }
    }

    fn token_revoked(&mut self, ticket: Ticket, id: i64, result: Result<(), String>) {
        let fresh = self.token_list();
        match &result {
            Ok(()) => self.set_status(format!("Revoked token {id}"), StatusKind::Success),
            Err(e) => self.set_status(format!("Token {id} not revoked: {e}"), StatusKind::Failure),
        }
        if let Some(Modal::Tokens(list)) = &mut self.modal
            && list.revoking == Some(ticket)
        {
            match result {
                Ok(()) => *list = fresh,
                Err(e) => {
                    list.revoking = None;
                    list.error = Some(format!("Not revoked: {e}"));
                    list.confirm = None;
                }
            }
        }
    }

    fn refresh_rights(&mut self) {
        let process = self.designer.doc.draft().name.clone();
        self.rights = match &self.engine {
            Ok(engine) if engine.processes().is_ok_and(|ps| ps.iter().any(|p| p.name == process)) => {
                engine.rights_on_process(&process).ok().map(|rights| (process, rights))
            }
            _ => None,
        };
    }

    /// File ▸ Settings…: the SMTP server mail events send through.
    pub fn open_settings(&mut self) {
        let from_env = std::env::var("FLOWDESK_SMTP_URL").ok().filter(|url| !url.trim().is_empty());
        self.modal = Some(Modal::Settings(crate::gui::settings::SettingsForm::new(&self.settings.smtp, from_env)));
    }

    /// Saves the Settings dialog's server: from now on mail goes there.
    /// False (and the form says why) when it cannot be used.
    fn save_settings(&mut self, form: &mut crate::gui::settings::SettingsForm) -> bool {
        let (saved, settings) = match form.read() {
            Ok(read) => read,
            Err(message) => {
                form.error = Some(message);
                return false;
            }
        };
        let shown = settings.as_ref().map(SmtpSettings::url);
        if let Ok(runtime) = &self.runtime {
            runtime.smtp().set_settings(Ok(settings));
        }
        self.settings.smtp = saved;
        let text = match shown {
            Some(url) => format!("Mail goes through {url}"),
            None => "No SMTP server: mail events fail until one is set".to_owned(),
        };
        self.set_status(text, StatusKind::Success);
        true
    }

    fn set_status(&mut self, text: String, kind: StatusKind) {
        self.status = Some((text, kind));
    }

    fn fail(&mut self, title: &str, text: String) {
        self.status = Some((format!("{title}: {}", text.lines().next().unwrap_or_default()), StatusKind::Failure));
        self.modal = Some(Modal::Message { title: title.to_owned(), text });
    }

    /// A failure answered by the write worker: said in a dialog, unless
    /// another dialog came up meanwhile, which it does not replace (the
    /// status line says it then).
    fn fail_answered(&mut self, title: &str, text: String) {
        if self.modal.is_none() {
            self.fail(title, text);
        } else {
            self.set_status(format!("{title}: {}", text.lines().next().unwrap_or_default()), StatusKind::Failure);
        }
    }

    pub fn status_text(&self) -> Option<&str> {
        self.status.as_ref().map(|(text, _)| text.as_str())
    }

    // ----- closing and dialogs -------------------------------------------------

    fn guard_close(&mut self, ctx: &egui::Context) {
        if ctx.input(|i| i.viewport().close_requested()) && !self.close_confirmed && self.designer.doc.is_dirty() {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
            self.modal = Some(Modal::UnsavedChanges(Replace::Quit));
        }
        if self.pending_close {
            self.pending_close = false;
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn modal_ui(&mut self, ctx: &egui::Context) {
        let Some(modal) = self.modal.take() else { return };
        let mut keep = true;
        let mut then: Option<Replace> = None;
        let mut next_modal = None;
        let mut save_then = None;
        match modal {
            Modal::UnsavedChanges(replace) => {
                egui::Modal::new(egui::Id::unique("unsaved-changes")).show(ctx, |ui| {
                    ui.heading("Save changes?");
                    ui.label(format!("{} has changes that are not saved.", self.designer.doc.title()));
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button("Save").clicked() {
                            save_then = Some(replace.clone());
                            keep = false;
                        }
                        if ui.button("Don't save").clicked() {
                            then = Some(replace.clone());
                            keep = false;
                        }
                        if ui.button("Cancel").clicked() {
                            keep = false;
                        }
                    });
                });
                if keep {
                    next_modal = Some(Modal::UnsavedChanges(replace));
                }
            }
            Modal::Message { title, text } => {
                egui::Modal::new(egui::Id::unique("message")).show(ctx, |ui| {
                    ui.heading(&title);
                    ui.label(&text);
                    ui.add_space(8.0);
                    if ui.button("OK").clicked() {
                        keep = false;
                    }
                });
                if keep {
                    next_modal = Some(Modal::Message { title, text });
                }
            }
            Modal::StartInstance(mut form) => {
                let mut start = false;
                egui::Modal::new(egui::Id::unique("start-instance")).show(ctx, |ui| {
                    ui.heading(format!("Start an instance of {}", form.process));
                    start_form_summary(ui, &mut form);
                    ui.add_space(6.0);
                    egui::Grid::new("start-form").num_columns(2).spacing([8.0, 6.0]).show(ui, |ui| {
                        let label = ui.label("Folio");
                        ui.add(egui::TextEdit::singleline(&mut form.folio).hint_text("e.g. PO-1042"))
                            .labelled_by(label.id);
                        ui.end_row();
                        for (name, field_type, text) in &mut form.values {
                            let label = ui.label(format!("{name} ({field_type})"));
                            if *field_type == FieldType::Boolean {
                                let mut checked = text == "true";
                                if ui.checkbox(&mut checked, "").labelled_by(label.id).changed() {
                                    *text = checked.to_string();
                                }
                            } else {
                                ui.add(egui::TextEdit::singleline(text).hint_text(field_type.hint()))
                                    .labelled_by(label.id);
                            }
                            ui.end_row();
                        }
                    });
                    if let Some(error) = &form.error {
                        ui.colored_label(theme::ERROR, error);
                    }
                    ui.add_space(8.0);
                    // Nothing can be changed or cancelled while the start is
                    // on its way: it would start all the same.
                    let free = form.starting.is_none();
                    ui.horizontal(|ui| {
                        let label = if form.deploy_draft { "Deploy and start" } else { "Start" };
                        if ui.add_enabled(free && form.can_start(), egui::Button::new(label)).clicked() {
                            start = true;
                        }
                        if ui.add_enabled(free, egui::Button::new("Cancel")).clicked() {
                            keep = false;
                        }
                        if !free {
                            ui.add(egui::Spinner::new());
                            ui.label(if form.deploy_draft { "Deploying and starting…" } else { "Starting…" });
                        }
                    });
                });
                if start {
                    self.start_instance(&mut form);
                }
                if keep {
                    next_modal = Some(Modal::StartInstance(form));
                }
            }
            Modal::ConfirmReplace { path, then } => {
                let mut replace = false;
                egui::Modal::new(egui::Id::unique("confirm-replace")).show(ctx, |ui| {
                    ui.heading("Replace the file?");
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    ui.label(format!("{name} already exists. Replace it?"));
                    ui.label(RichText::new(path.display().to_string()).small().weak());
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button("Replace").clicked() {
                            replace = true;
                            keep = false;
                        }
                        if ui.button("Cancel").clicked() {
                            keep = false;
                        }
                    });
                });
                if replace {
                    self.write_draft(&path, then);
                } else if keep {
                    next_modal = Some(Modal::ConfirmReplace { path, then });
                }
            }
            Modal::ConfirmRedeploy { version } => {
                let mut deploy = false;
                let process = self.designer.doc.draft().name.clone();
                egui::Modal::new(egui::Id::unique("confirm-redeploy")).show(ctx, |ui| {
                    ui.heading("Deploy an identical version?");
                    ui.label(format!(
                        "The draft on screen is the same definition as {process} version {version}. \
                         Deploying it makes version {}, identical to version {version}.",
                        version + 1
                    ));
                    ui.add_space(8.0);
                    ui.horizontal(|ui| {
                        if ui.button(format!("Deploy version {}", version + 1)).clicked() {
                            deploy = true;
                            keep = false;
                        }
                        if ui.button("Cancel").clicked() {
                            keep = false;
                        }
                    });
                });
                if deploy {
                    self.send_deploy(true);
                } else if keep {
                    next_modal = Some(Modal::ConfirmRedeploy { version });
                }
            }
            Modal::Settings(mut form) => {
                keep = match crate::gui::settings::settings_dialog_ui(ctx, &mut form) {
                    crate::gui::settings::SettingsAnswer::Open => true,
                    crate::gui::settings::SettingsAnswer::Cancel => false,
                    crate::gui::settings::SettingsAnswer::Save => !self.save_settings(&mut form),
                };
                if keep {
                    next_modal = Some(Modal::Settings(form));
                }
            }
            Modal::CreateToken(mut form) => {
                keep = self.token_dialog(ctx, &mut form);
                if keep {
                    next_modal = Some(Modal::CreateToken(form));
                }
            }
            Modal::ChooseProcess { path, choices } => {
                let mut chosen = None;
                egui::Modal::new(egui::Id::unique("choose-process")).show(ctx, |ui| {
                    ui.heading("Which process?");
                    let file = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    ui.label(format!("{file} holds {} processes. Open one of them:", choices.len()));
                    ui.add_space(6.0);
                    for (id, name) in &choices {
                        if ui.button(format!("{name} ({id})")).clicked() {
                            chosen = Some(id.clone());
                            keep = false;
                        }
                    }
                    ui.add_space(8.0);
                    if ui.button("Cancel").clicked() {
                        keep = false;
                    }
                });
                if let Some(id) = chosen {
                    self.import_bpmn(&path, Some(id));
                } else if keep {
                    next_modal = Some(Modal::ChooseProcess { path, choices });
                }
            }
            Modal::ImportReport { title, summary, entries } => {
                egui::Modal::new(egui::Id::unique("import-report")).show(ctx, |ui| {
                    ui.set_max_width(720.0);
                    ui.heading(&title);
                    ui.label(&summary);
                    ui.add_space(6.0);
                    if entries.is_empty() {
                        ui.label("Every element was taken over as it is.");
                    } else {
                        ui.label(format!("{} element(s) were imported differently or not at all:", entries.len()));
                        egui::ScrollArea::vertical().max_height(360.0).show(ui, |ui| {
                            for entry in &entries {
                                let colour = match entry.kind {
                                    crate::model::bpmn::EntryKind::Problem => theme::ERROR,
                                    crate::model::bpmn::EntryKind::Changed
                                    | crate::model::bpmn::EntryKind::Flattened => theme::WARNING,
                                    crate::model::bpmn::EntryKind::Ignored => ui.visuals().weak_text_color(),
                                };
                                ui.colored_label(colour, entry.to_string());
                            }
                        });
                    }
                    ui.add_space(8.0);
                    if ui.button("OK").clicked() {
                        keep = false;
                    }
                });
                if keep {
                    next_modal = Some(Modal::ImportReport { title, summary, entries });
                }
            }
            Modal::Tokens(mut list) => {
                keep = self.tokens_dialog(ctx, &mut list);
                if keep {
                    next_modal = Some(Modal::Tokens(list));
                }
            }
        }
        if self.modal.is_none() {
            self.modal = next_modal;
        }
        if let Some(replace) = save_then {
            self.save(false, Some(replace));
        }
        if let Some(replace) = then {
            self.replace(replace);
        }
    }
}

impl eframe::App for FlowdeskApp {
    fn ui(&mut self, ui: &mut Ui, _frame: &mut eframe::Frame) {
        FlowdeskApp::ui(self, ui);
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        self.closing();
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.kept_settings());
    }
}

/// What the start form starts and how that stands against the draft on
/// screen, with the choice between the two where there is one.
fn start_form_summary(ui: &mut Ui, form: &mut StartForm) {
    let process = form.process.clone();
    if form.deploy_draft {
        let next = form.next_version();
        ui.label(
            RichText::new(format!("The draft on screen will be deployed as {process} version {next}, then started."))
                .strong(),
        );
    } else if let Some(version) = form.version {
        ui.label(RichText::new(format!("{process} version {version} will start.")).strong());
    }
    let errors = "The draft on screen has errors, so it cannot be deployed.";
    match (form.draft, form.version) {
        (None, _) => {}
        (Some(DraftStanding::NotDeployed), _) => {
            ui.label(format!("{process} has not been deployed yet."));
        }
        (Some(DraftStanding::HasErrors), None) => {
            ui.label(format!("{process} has not been deployed yet."));
            ui.colored_label(theme::ERROR, errors);
        }
        (Some(DraftStanding::HasErrors), Some(_)) => {
            ui.colored_label(theme::WARNING, errors);
        }
        (Some(DraftStanding::Compared(Sameness::Identical)), _) => {
            ui.label("It is the same definition as the draft on screen.");
        }
        (Some(DraftStanding::Compared(Sameness::LayoutOnly)), Some(version)) => {
            ui.label(format!("The draft on screen differs from {process} version {version} only in layout."));
        }
        (Some(DraftStanding::Compared(Sameness::Different)), Some(version)) => {
            ui.colored_label(theme::WARNING, format!("The draft on screen differs from {process} version {version}."));
        }
        (Some(DraftStanding::Compared(_)), None) => {}
    }
    if form.offers_choice()
        && let Some(version) = form.version
    {
        let next = form.next_version();
        if ui.radio(!form.deploy_draft, format!("Start version {version}, as deployed")).clicked() {
            form.choose(false);
        }
        if ui.radio(form.deploy_draft, format!("Deploy the draft as version {next} and start it")).clicked() {
            form.choose(true);
        }
    }
}

fn load_icons(ctx: &egui::Context) -> Option<Icons> {
    let load = |name: &str, bytes: &[u8]| -> Option<egui::TextureHandle> {
        let image = image::load_from_memory_with_format(bytes, image::ImageFormat::Png).ok()?.to_rgba8();
        let size = [image.width() as usize, image.height() as usize];
        let color = egui::ColorImage::from_rgba_unmultiplied(size, image.as_raw());
        Some(ctx.load_texture(name, color, egui::TextureOptions::LINEAR))
    };
    let server_event = load("server-event", include_bytes!("../../assets/server-event.png"))?;
    let async_server_event = load("server-event-async", include_bytes!("../../assets/server-event-async.png"))?;
    let http_request = load("http-request", include_bytes!("../../assets/http-request.png"))?;
    let icons = Icons {
        server_event: server_event.id(),
        async_server_event: async_server_event.id(),
        http_request: http_request.id(),
    };
    // The handles free their textures when dropped; these live as long as the app.
    std::mem::forget(server_event);
    std::mem::forget(async_server_event);
    std::mem::forget(http_request);
    Some(icons)
}

/// What the status bar says about the window's timers: whether its
/// runtime's ticker fires them and when it last did, its colour, and the
/// words on hover.
fn timers_words(ticking: TimerTicking) -> (String, egui::Color32, String) {
    let at = |millis| {
        chrono::DateTime::from_timestamp_millis(millis)
            .map(|t| t.format("%H:%M:%S UTC").to_string())
            .unwrap_or_default()
    };
    if !ticking.running {
        let hover = "Nothing in this window fires escalations or timer events: they fire when a window or \
                     `flowdesk serve` runs on this database, or `flowdesk timers run` is called.";
        return ("Timers not running".to_owned(), theme::WARNING, hover.to_owned());
    }
    let text = match ticking.fired {
        Some((fired_at, count)) => format!("Timers ticking · last fired {} ({count})", at(fired_at)),
        None => "Timers ticking · none fired yet".to_owned(),
    };
    let looked = ticking.looked_at.map(|looked| format!(" Last looked at {}.", at(looked))).unwrap_or_default();
    let hover = format!("This window fires escalations and timer events as they fall due.{looked}");
    (text, theme::SUCCESS, hover)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The status bar says whether the window's ticker fires timers, and
    /// when it last did; a window whose ticker stopped says so, as a warning.
    #[test]
    fn the_status_bar_says_whether_timers_tick_and_when_they_last_fired() {
        let idle = TimerTicking { running: true, looked_at: Some(1_795_597_200_000), fired: None };
        let (text, color, hover) = timers_words(idle);
        assert_eq!((text.as_str(), color), ("Timers ticking · none fired yet", theme::SUCCESS));
        assert!(hover.ends_with("Last looked at 09:00:00 UTC."), "{hover}");
        let fired = TimerTicking { fired: Some((1_795_604_400_000, 3)), ..idle };
        assert_eq!(timers_words(fired).0, "Timers ticking · last fired 11:00:00 UTC (3)");
        let (text, color, _) = timers_words(TimerTicking::default());
        assert_eq!((text.as_str(), color), ("Timers not running", theme::WARNING));
    }
}
