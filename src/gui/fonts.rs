//! The fonts the window draws with: egui's own, then DejaVu Sans for every
//! character they lack.
//!
//! egui's Ubuntu Light has no arrows or geometric shapes, so "→" in the audit
//! trail and "▾" on a menu button were drawn as empty boxes. DejaVu Sans
//! (assets/DejaVuSans.ttf, Bitstream Vera licence) has them, and Greek,
//! Cyrillic, Armenian, Georgian and Hebrew besides, which users type into
//! names and labels. It comes last, so the look of Latin text is unchanged.

use std::sync::Arc;

use egui::{FontData, FontDefinitions, FontFamily};

const FALLBACK: &str = "DejaVuSans";

/// Every font the window loads, in the order egui falls back through them.
pub fn definitions() -> FontDefinitions {
    let mut fonts = FontDefinitions::default();
    fonts
        .font_data
        .insert(FALLBACK.to_owned(), Arc::new(FontData::from_static(include_bytes!("../../assets/DejaVuSans.ttf"))));
    for family in [FontFamily::Proportional, FontFamily::Monospace] {
        fonts.families.entry(family).or_default().push(FALLBACK.to_owned());
    }
    fonts
}

#[cfg(test)]
mod tests {
    //! Every text the window can draw must have glyphs in the fonts it loads:
    //! a missing one is drawn as an empty box ("▯") and nothing else warns.
    //! The texts are the string literals of every module whose words reach
    //! the window, lexed as Rust (so `format!` strings and `#[error]`
    //! messages count, doc comments and tests do not), and every string of
    //! the bundled samples, which the window opens on first start.

    use std::path::{Path, PathBuf};
    use std::str::FromStr;

    use egui::epaint::text::{Fonts, TextOptions};
    use egui::{FontFamily, FontId};
    use proc_macro2::{Delimiter, TokenStream, TokenTree};

    use super::definitions;

    /// The source folders whose text the window shows: its own, the engine's
    /// audit lines and refusals, validation problems, storage and API errors.
    /// The command line and the benchmarks print to a terminal.
    const SHOWN_IN_THE_WINDOW: &[&str] = &["gui", "engine", "model", "store", "net"];

    fn rust_files(path: &Path) -> Vec<PathBuf> {
        if path.is_file() {
            return vec![path.to_owned()];
        }
        let mut files = Vec::new();
        for entry in std::fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(rust_files(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files.sort();
        files
    }

    /// The string literals of `tokens`, leaving out doc comments and whatever
    /// `#[cfg(test)]` marks (the item after it, up to its braces or `;`).
    fn string_literals(tokens: TokenStream, found: &mut Vec<String>) {
        let mut tokens = tokens.into_iter().peekable();
        while let Some(token) = tokens.next() {
            match token {
                TokenTree::Punct(p) if p.as_char() == '#' => {
                    if matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == '!') {
                        tokens.next();
                    }
                    let Some(TokenTree::Group(attribute)) = tokens.next() else { continue };
                    let text = attribute.stream().to_string().replace(' ', "");
                    if text.starts_with("doc") {
                        continue;
                    }
                    if text == "cfg(test)" {
                        for skipped in tokens.by_ref() {
                            match skipped {
                                TokenTree::Group(g) if g.delimiter() == Delimiter::Brace => break,
                                TokenTree::Punct(p) if p.as_char() == ';' => break,
                                _ => {}
                            }
                        }
                        continue;
                    }
                    string_literals(attribute.stream(), found);
                }
                TokenTree::Group(group) => string_literals(group.stream(), found),
                TokenTree::Literal(literal) => {
                    if let syn::Lit::Str(text) = syn::Lit::new(literal) {
                        found.push(text.value());
                    }
                }
                _ => {}
            }
        }
    }

    fn json_strings(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::String(text) => found.push(text.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| json_strings(v, found)),
            serde_json::Value::Object(map) => map.values().for_each(|v| json_strings(v, found)),
            _ => {}
        }
    }

    /// Every text the window can draw, with where it comes from.
    fn shown_texts() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts = Vec::new();
        for folder in SHOWN_IN_THE_WINDOW {
            for file in rust_files(&root.join("src").join(folder)) {
                let source = std::fs::read_to_string(&file).unwrap();
                let tokens = TokenStream::from_str(&source).unwrap();
                let mut found = Vec::new();
                string_literals(tokens, &mut found);
                let name = file.strip_prefix(root).unwrap().display().to_string();
                texts.extend(found.into_iter().map(|text| (name.clone(), text)));
            }
        }
        for entry in std::fs::read_dir(root.join("samples")).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "json") {
                let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
                let mut found = Vec::new();
                json_strings(&value, &mut found);
                let name = path.strip_prefix(root).unwrap().display().to_string();
                texts.extend(found.into_iter().map(|text| (name.clone(), text)));
            }
        }
        texts
    }

    #[test]
    fn the_scan_finds_texts_the_window_is_known_to_draw() {
        let texts = shown_texts();
        let has = |wanted: &str| texts.iter().any(|(_, text)| text.contains(wanted));
        // One of each kind the scan must reach: a label, a `format!` string,
        // an engine audit line, a thiserror message, a sample's event name.
        for wanted in ["Save As", "Granted {right} on {process}", "{request} ", "waiting for callback on serial"] {
            assert!(has(wanted), "the scan lost {wanted:?}");
        }
        assert!(!has("also what the GUI tests drive"), "doc comments are not drawn");
    }

    #[test]
    fn every_text_the_window_can_draw_has_glyphs_in_the_loaded_fonts() {
        let mut fonts = Fonts::new(TextOptions::default(), definitions());
        let mut missing = Vec::new();
        for (place, text) in shown_texts() {
            for family in [FontFamily::Proportional, FontFamily::Monospace] {
                let font = FontId::new(13.0, family.clone());
                let absent: String = text.chars().filter(|c| !c.is_control() && !fonts.has_glyph(&font, *c)).collect();
                if !absent.is_empty() {
                    missing.push(format!("{place}: {text:?} lacks {absent:?} in {family:?}"));
                }
            }
        }
        missing.dedup();
        assert!(missing.is_empty(), "texts drawn as empty boxes:\n{}", missing.join("\n"));
    }
}
