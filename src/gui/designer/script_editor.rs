//! A monospace editor for scripts and rules: Rust-like highlighting (Rhai reads
//! like Rust) and the compile error marked on its line, as you type.

use std::sync::Arc;

use egui::text::{ByteIndex, LayoutJob, LayoutSection};
use egui::{Response, TextBuffer, TextEdit, Ui};
use egui_extras::syntax_highlighting::{CodeTheme, highlight};

use crate::gui::theme;
use crate::model::script::CompileError;

/// Shows the editor and, below it, the error in words. Returns the editor's
/// response (`changed()` after each keystroke).
pub fn script_editor_ui(
    ui: &mut Ui,
    label: &str,
    text: &mut String,
    error: Option<&CompileError>,
    rows: usize,
) -> Response {
    let theme = CodeTheme::from_memory(ui.ctx(), ui.style());
    let error_line = error.and_then(|e| e.line);
    let mut layouter = |ui: &Ui, buffer: &dyn TextBuffer, wrap_width: f32| -> Arc<egui::Galley> {
        let mut job = highlight(ui.ctx(), ui.style(), &theme, buffer.as_str(), "rs");
        if let Some(line) = error_line {
            mark_line(&mut job, buffer.as_str(), line);
        }
        job.wrap.max_width = wrap_width;
        ui.fonts_mut(|fonts| fonts.layout_job(job))
    };
    let label_response = ui.label(label);
    let response = ui
        .add(
            TextEdit::multiline(text)
                .code_editor()
                .desired_rows(rows)
                .desired_width(f32::INFINITY)
                .lock_focus(true)
                .layouter(&mut layouter),
        )
        .labelled_by(label_response.id);
    match error {
        Some(error) => {
            ui.colored_label(theme::ERROR, format!("Error: {error}"));
        }
        None => {
            ui.colored_label(theme::SUCCESS, "Compiles.");
        }
    }
    response
}

/// Gives the sections of 1-based `line` an error background, splitting
/// sections that cross the line's edges.
fn mark_line(job: &mut LayoutJob, text: &str, line: usize) {
    let start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    if start > text.len() {
        return;
    }
    let end = start + text[start..].find('\n').unwrap_or(text.len() - start);
    let mut sections = Vec::with_capacity(job.sections.len() + 2);
    for section in job.sections.drain(..) {
        let (first, last) = (section.byte_range.start.0, section.byte_range.end.0);
        let cuts = [first, start.clamp(first, last), end.clamp(first, last), last];
        for window in cuts.windows(2) {
            if window[0] >= window[1] {
                continue;
            }
            let mut part = LayoutSection { byte_range: ByteIndex(window[0])..ByteIndex(window[1]), ..section.clone() };
            if window[0] >= start && window[1] <= end {
                part.format.background = theme::ERROR_LINE_FILL;
            }
            sections.push(part);
        }
    }
    job.sections = sections;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_error_line_is_marked() {
        let text = "let a = 1;\nbad line\nlet c = 3;";
        let mut job = LayoutJob::single_section(text.to_owned(), egui::TextFormat::default());
        mark_line(&mut job, text, 2);
        let marked: Vec<&str> = job
            .sections
            .iter()
            .filter(|s| s.format.background == theme::ERROR_LINE_FILL)
            .map(|s| &text[s.byte_range.start.0..s.byte_range.end.0])
            .collect();
        assert_eq!(marked, ["bad line"]);
    }
}
