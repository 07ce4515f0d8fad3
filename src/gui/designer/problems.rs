//! The problems panel: every validation error and warning of the draft, as you
//! edit; clicking one selects the element it is about.

use egui::{RichText, Ui};

use crate::gui::designer::Element;
use crate::gui::theme;
use crate::model::{Location, Problem, Severity};

/// What the user clicked: the element to select, or the process (clear the
/// selection to show the process's properties).
pub enum Pick {
    Element(Element),
    Process,
}

pub fn problems_ui(ui: &mut Ui, problems: &[Problem]) -> Option<Pick> {
    let errors = problems.iter().filter(|p| p.severity == Severity::Error).count();
    let warnings = problems.len() - errors;
    let mut picked = None;
    ui.horizontal(|ui| {
        ui.strong("Problems");
        if problems.is_empty() {
            ui.colored_label(theme::SUCCESS, "none: ready to deploy");
        } else {
            ui.colored_label(theme::ERROR, format!("{errors} error(s)"));
            ui.colored_label(theme::WARNING, format!("{warnings} warning(s)"));
        }
    });
    egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
        for problem in problems {
            let (icon, color) = match problem.severity {
                Severity::Error => ("Error", theme::ERROR),
                Severity::Warning => ("Warning", theme::WARNING),
            };
            let location = problem.location.to_string();
            let text = RichText::new(format!("{icon}  {location}: {}", problem.message)).color(color);
            if ui.selectable_label(false, text).on_hover_text("Select it").clicked() {
                picked = Some(match Element::from_location(&problem.location) {
                    Some(element) => Pick::Element(element),
                    None => match &problem.location {
                        Location::Process | Location::Field { .. } => Pick::Process,
                        _ => Pick::Process,
                    },
                });
            }
        }
    });
    picked
}
