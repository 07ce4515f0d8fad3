//! The flowdesk window (eframe): the designer today, the monitor next. The only
//! module that uses `egui`/`eframe`.

pub mod app;
pub mod bench;
pub mod bench_live;
pub mod bench_monitor;
pub mod designer;
pub mod dialogs;
pub mod fonts;
pub mod monitor;
pub mod settings;
pub mod theme;

use std::path::PathBuf;

pub use app::{AppView, FlowdeskApp, Settings};

/// What the window opens on.
pub struct GuiOptions {
    pub db_path: PathBuf,
    pub user: String,
    pub file: Option<PathBuf>,
    pub view: AppView,
}

/// Opens the window and runs until it is closed.
pub fn run(options: GuiOptions) -> anyhow::Result<()> {
    let icon = eframe::icon_data::from_png_bytes(include_bytes!("../../assets/flowdesk.png")).ok();
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("flowdesk")
        .with_app_id("flowdesk")
        .with_inner_size([1280.0, 800.0])
        .with_min_inner_size([720.0, 480.0]);
    if let Some(icon) = icon {
        viewport = viewport.with_icon(icon);
    }
    let native = eframe::NativeOptions { viewport, ..eframe::NativeOptions::default() };
    eframe::run_native(
        "flowdesk",
        native,
        Box::new(move |creation| {
            let settings: Settings =
                creation.storage.and_then(|s| eframe::get_value(s, eframe::APP_KEY)).unwrap_or_default();
            let app = FlowdeskApp::new(options, settings, Box::new(dialogs::NativeDialogs));
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
