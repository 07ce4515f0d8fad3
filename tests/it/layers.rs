//! Architecture invariants, checked on every `cargo test` (the "tidy" test).

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
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

fn offenders(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(layer);
    let mut found = Vec::new();
    for file in rust_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            for word in forbidden {
                if line.contains(word) {
                    found.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
                }
            }
        }
    }
    found
}

#[test]
fn model_and_engine_know_nothing_of_sqlite_or_the_gui() {
    for layer in ["model", "engine"] {
        let found = offenders(layer, &["rusqlite", "egui", "eframe", "crate::store", "crate::gui", "crate::cli"]);
        assert!(found.is_empty(), "the {layer} layer must not depend on storage or GUI:\n{}", found.join("\n"));
    }
}

#[test]
fn the_http_api_is_a_front_end_and_nothing_below_it_serves_http() {
    let found = offenders("net", &["egui", "eframe", "crate::gui", "crate::cli", "rusqlite"]);
    assert!(found.is_empty(), "the net layer must use only the engine and the store's API:\n{}", found.join("\n"));
    for layer in ["model", "engine", "store"] {
        let found = offenders(layer, &["axum", "hyper", "utoipa", "crate::net"]);
        assert!(found.is_empty(), "the {layer} layer must not serve HTTP:\n{}", found.join("\n"));
    }
}

#[test]
fn only_the_store_touches_sqlite() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let store = root.join("store");
    let found: Vec<String> = rust_files(&root)
        .into_iter()
        .filter(|f| !f.starts_with(&store))
        .filter(|f| std::fs::read_to_string(f).unwrap().contains("rusqlite"))
        .map(|f| f.display().to_string())
        .collect();
    assert!(found.is_empty(), "rusqlite used outside src/store: {found:?}");
}

#[test]
fn library_code_does_not_unwrap() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in rust_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        // Unit tests live at the end of a file, after `#[cfg(test)]`.
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (number, line) in code.lines().enumerate() {
            if line.contains(".unwrap()") || line.contains(".expect(") {
                found.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "unwrap/expect outside tests:\n{}", found.join("\n"));
}

/// One front door: front ends (the command line, the window, the HTTP API,
/// the client API, the benchmarks) hold a `Runtime` and never name the
/// database type, so that the store can change behind it.
#[test]
fn the_store_type_is_named_only_by_the_runtime_and_the_store() {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (src, store) = (manifest.join("src"), manifest.join("src").join("store"));
    let allowed = |file: &Path| file.starts_with(&store) || file == src.join("runtime.rs");
    let mut found = Vec::new();
    for file in rust_files(&src).into_iter().chain(rust_files(&manifest.join("benches"))) {
        if allowed(&file) {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for (number, line) in text.lines().enumerate() {
            if line.contains("SqliteStore") {
                found.push(format!("{}:{}: {}", file.display(), number + 1, line.trim()));
            }
        }
    }
    assert!(found.is_empty(), "SqliteStore named outside runtime.rs and src/store:\n{}", found.join("\n"));
}
