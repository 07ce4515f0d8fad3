//! Architecture invariants, checked on every `cargo test` (the "tidy" test).
//!
//! The sources are parsed with `syn`, not searched as text. What a layer uses
//! is every path it names: `use` trees with their groups
//! (`use crate::{model, store::SqliteStore}` names `crate::store::SqliteStore`),
//! paths in types, expressions, patterns and attributes, the tokens of macro
//! calls (which syn leaves unparsed) and `extern crate`, with `self::` and
//! `super::` resolved against the file's module. Comments and string literals
//! are never looked at. Each violation is reported as `file:line: path`.

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use proc_macro2::{Delimiter, Group, Ident, Spacing, TokenStream, TokenTree};
use syn::visit::{self, Visit};

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

fn manifest_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The module a file of `src/` is, `crate` left out: `src/engine/mod.rs` is
/// `["engine"]`, `src/engine/executor.rs` is `["engine", "executor"]`.
fn module_of(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(manifest_dir().join("src")).unwrap();
    let mut module: Vec<String> = relative.iter().map(|part| part.to_string_lossy().into_owned()).collect();
    let last = module.pop().unwrap();
    match last.strip_suffix(".rs").unwrap() {
        "mod" | "lib" | "main" => {}
        name => module.push(name.to_owned()),
    }
    module
}

// Line numbers. proc-macro2 knows where a token stood only with its
// `span-locations` feature, and turning that on here changes proc-macro2 for
// every proc macro of the build too (serde's derive and the rest): a rebuild
// of nearly every dependency. So the lines travel in the names instead: each
// line of the source is prefixed with a marker identifier, which the lexer
// sees as a token only where code is (inside a comment or a string literal it
// is text), and every identifier after it is renamed `name__line<N>` before
// syn parses the tokens. Keywords keep their names, or syn could not parse.

const MARK: &str = "__layers_line_";
const TAG: &str = "__line";
/// Rust's keywords, strict, reserved and contextual, and `_`.
const KEYWORDS: &str = "_ as async await break const continue crate dyn else enum extern false fn for if impl in \
    let loop match mod move mut pub ref return self Self static struct super trait true type unsafe use where while \
    abstract become box do final macro override priv typeof unsized virtual yield try gen union macro_rules auto \
    default safe raw";

/// `source` as tokens whose identifiers carry their line (see above).
fn tagged(source: &str) -> Result<TokenStream, proc_macro2::LexError> {
    let marked: String = source.lines().enumerate().map(|(i, line)| format!("{MARK}{} {line}\n", i + 1)).collect();
    let mut line = 0;
    Ok(tag(marked.parse()?, &mut line))
}

fn tag(tokens: TokenStream, line: &mut usize) -> TokenStream {
    let mut out = TokenStream::new();
    for token in tokens {
        out.extend([match token {
            TokenTree::Ident(ident) => {
                let name = ident.to_string();
                if let Some(number) = name.strip_prefix(MARK) {
                    *line = number.parse().unwrap();
                    continue;
                }
                let name = name.strip_prefix("r#").unwrap_or(&name);
                if KEYWORDS.split_whitespace().any(|keyword| keyword == name) {
                    TokenTree::Ident(ident)
                } else {
                    TokenTree::Ident(Ident::new(&format!("{name}{TAG}{line}"), ident.span()))
                }
            }
            TokenTree::Group(group) => TokenTree::Group(Group::new(group.delimiter(), tag(group.stream(), line))),
            other => other,
        }]);
    }
    out
}

/// An identifier's name and line (0 for a keyword, which carries none).
fn untag(ident: &Ident) -> (String, usize) {
    let text = ident.to_string();
    match text.rsplit_once(TAG) {
        Some((name, line)) => (name.to_owned(), line.parse().unwrap()),
        None => (text, 0),
    }
}

fn name(ident: &Ident) -> String {
    untag(ident).0
}

/// One path the code names, resolved: it starts with `crate` when it was
/// written from `crate`, `self` or `super`, else with the name it began with
/// (another crate, or a name in scope).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Named {
    line: usize,
    path: Vec<String>,
}

impl Named {
    /// `pattern` is `a::b…`: the path begins with those names. A pattern of
    /// one name matches it anywhere in the path (`rusqlite` matches
    /// `rusqlite::Connection` and a re-export `crate::store::rusqlite::Row`).
    fn matches(&self, pattern: &str) -> bool {
        let pattern: Vec<&str> = pattern.split("::").collect();
        match pattern.as_slice() {
            [name] => self.path.iter().any(|segment| segment == name),
            _ => self.path.len() >= pattern.len() && self.path.iter().zip(&pattern).all(|(a, b)| a == b),
        }
    }
}

/// What one file names: every path, and the lines of its `.unwrap()` and
/// `.expect(…)` calls outside items marked `#[cfg(test)]`.
#[derive(Debug, Default)]
struct Findings {
    paths: Vec<Named>,
    unwraps: Vec<usize>,
}

impl Findings {
    /// The paths that match one of `forbidden` (see [`Named::matches`]), as
    /// `line: path (forbidden: pattern)`, in the order of the source.
    fn violations(&self, forbidden: &[&str]) -> Vec<(usize, String)> {
        let mut found: Vec<(usize, String)> = self
            .paths
            .iter()
            .flat_map(|named| {
                forbidden
                    .iter()
                    .filter(|pattern| named.matches(pattern))
                    .map(|pattern| (named.line, format!("{} (forbidden: {pattern})", named.path.join("::"))))
            })
            .collect();
        found.sort();
        found.dedup();
        found
    }
}

/// What `source`, the file of module `module` (see [`module_of`]), names.
fn findings(source: &str, module: &[String]) -> Result<Findings, String> {
    let tokens = tagged(source).map_err(|e| e.to_string())?;
    let file: syn::File = syn::parse2(tokens).map_err(|e| e.to_string())?;
    let mut walker = Walker { module: module.to_vec(), in_test: 0, found: Findings::default() };
    walker.visit_file(&file);
    Ok(walker.found)
}

struct Walker {
    /// The module being walked, `crate` left out; an inline `mod` adds to it.
    module: Vec<String>,
    /// How many `#[cfg(test)]` items the walk is inside of.
    in_test: usize,
    found: Findings,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let syn::Meta::List(list) = &attr.meta else { return false };
        let argument: Vec<TokenTree> = list.tokens.clone().into_iter().collect();
        list.path.get_ident().is_some_and(|ident| name(ident) == "cfg")
            && matches!(argument.as_slice(), [TokenTree::Ident(ident)] if name(ident) == "test")
    })
}

impl Walker {
    /// Records a path written as `segments`, resolving `self` and `super`.
    fn record(&mut self, segments: &[&Ident]) {
        let Some(first) = segments.first() else { return };
        let line = segments.iter().map(|ident| untag(ident).1).find(|line| *line > 0).unwrap_or(0);
        let written: Vec<String> = segments.iter().map(|ident| name(ident)).collect();
        let path = match name(first).as_str() {
            "self" | "super" => {
                let mut resolved = self.module.clone();
                let mut rest = written.into_iter().peekable();
                if rest.next_if(|s| s == "self").is_none() {
                    while rest.next_if(|s| s == "super").is_some() {
                        resolved.pop();
                    }
                }
                std::iter::once("crate".to_owned()).chain(resolved).chain(rest).collect()
            }
            _ => written,
        };
        self.found.paths.push(Named { line, path });
    }

    fn unwrap_at(&mut self, method: &Ident) {
        if self.in_test == 0 {
            self.found.unwraps.push(untag(method).1);
        }
    }

    /// Every path a `use` tree names, groups flattened.
    fn record_use<'a>(&mut self, tree: &'a syn::UseTree, prefix: &mut Vec<&'a Ident>) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(&path.ident);
                self.record_use(&path.tree, prefix);
                prefix.pop();
            }
            // `use crate::store::{self}` and `use crate::store::*` name `crate::store`.
            syn::UseTree::Name(leaf) if leaf.ident == "self" => self.record(prefix),
            syn::UseTree::Glob(_) => self.record(prefix),
            syn::UseTree::Name(syn::UseName { ident }) | syn::UseTree::Rename(syn::UseRename { ident, .. }) => {
                prefix.push(ident);
                self.record(prefix);
                prefix.pop();
            }
            syn::UseTree::Group(group) => {
                for tree in &group.items {
                    self.record_use(tree, prefix);
                }
            }
        }
    }

    /// The paths in the tokens of a macro call or an attribute, which syn
    /// leaves unparsed: every run `name :: name …` (a string literal is a
    /// token of its own, never looked into), and `.unwrap()` / `.expect(…)`.
    fn record_tokens(&mut self, tokens: &TokenStream) {
        let tokens: Vec<TokenTree> = tokens.clone().into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(group) => self.record_tokens(&group.stream()),
                TokenTree::Punct(dot) if dot.as_char() == '.' => {
                    if let (Some(TokenTree::Ident(method)), Some(TokenTree::Group(arguments))) =
                        (tokens.get(i + 1), tokens.get(i + 2))
                        && matches!(name(method).as_str(), "unwrap" | "expect")
                        && arguments.delimiter() == Delimiter::Parenthesis
                    {
                        self.unwrap_at(method);
                    }
                }
                TokenTree::Ident(first) => {
                    let mut segments = vec![first];
                    while let (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b)), Some(TokenTree::Ident(next))) =
                        (tokens.get(i + 1), tokens.get(i + 2), tokens.get(i + 3))
                        && a.as_char() == ':'
                        && a.spacing() == Spacing::Joint
                        && b.as_char() == ':'
                    {
                        segments.push(next);
                        i += 3;
                    }
                    self.record(&segments);
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// Walks an item, outside the unwrap check if it is `#[cfg(test)]`.
    fn item(&mut self, attrs: &[syn::Attribute], walk: impl FnOnce(&mut Walker)) {
        let test = usize::from(is_cfg_test(attrs));
        self.in_test += test;
        walk(self);
        self.in_test -= test;
    }
}

impl<'ast> Visit<'ast> for Walker {
    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<&Ident> = path.segments.iter().map(|segment| &segment.ident).collect();
        self.record(&segments);
        visit::visit_path(self, path);
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.item(&item.attrs, |walker| walker.record_use(&item.tree, &mut Vec::new()));
    }

    fn visit_item_extern_crate(&mut self, item: &'ast syn::ItemExternCrate) {
        if item.ident != "self" {
            self.record(&[&item.ident]);
        }
        visit::visit_item_extern_crate(self, item);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        visit::visit_macro(self, mac);
        self.record_tokens(&mac.tokens);
    }

    fn visit_meta_list(&mut self, list: &'ast syn::MetaList) {
        visit::visit_meta_list(self, list);
        self.record_tokens(&list.tokens);
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.module.push(name(&item.ident));
        self.item(&item.attrs, |walker| visit::visit_item_mod(walker, item));
        self.module.pop();
    }

    fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
        self.item(&item.attrs, |walker| visit::visit_item_fn(walker, item));
    }

    fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
        self.item(&item.attrs, |walker| visit::visit_item_impl(walker, item));
    }

    fn visit_item_const(&mut self, item: &'ast syn::ItemConst) {
        self.item(&item.attrs, |walker| visit::visit_item_const(walker, item));
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        self.item(&item.attrs, |walker| visit::visit_item_static(walker, item));
    }

    fn visit_item_macro(&mut self, item: &'ast syn::ItemMacro) {
        self.item(&item.attrs, |walker| visit::visit_item_macro(walker, item));
    }

    fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
        self.item(&item.attrs, |walker| visit::visit_impl_item_fn(walker, item));
    }

    fn visit_trait_item_fn(&mut self, item: &'ast syn::TraitItemFn) {
        self.item(&item.attrs, |walker| visit::visit_trait_item_fn(walker, item));
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let method = name(&call.method);
        if method == "unwrap" && call.args.is_empty() || method == "expect" {
            self.unwrap_at(&call.method);
        }
        visit::visit_expr_method_call(self, call);
    }
}

/// Every file of `src/`, parsed once for all the checks.
static SOURCES: LazyLock<Vec<(PathBuf, Findings)>> = LazyLock::new(|| {
    rust_files(&manifest_dir().join("src"))
        .into_iter()
        .map(|file| {
            let source = std::fs::read_to_string(&file).unwrap();
            let found = findings(&source, &module_of(&file)).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            (file, found)
        })
        .collect()
});

fn shown(file: &Path) -> String {
    file.strip_prefix(manifest_dir()).unwrap_or(file).display().to_string()
}

/// Every path named in the files of `src/` that `which` picks and that
/// matches one of `forbidden`, as `file:line: path (forbidden: pattern)`.
fn offenders_in(which: impl Fn(&Path) -> bool, forbidden: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for (file, findings) in SOURCES.iter().filter(|(file, _)| which(file)) {
        for (line, violation) in findings.violations(forbidden) {
            found.push(format!("{}:{line}: {violation}", shown(file)));
        }
    }
    found
}

/// [`offenders_in`] the files of `src/<layer>/`.
fn offenders(layer: &str, forbidden: &[&str]) -> Vec<String> {
    let root = manifest_dir().join("src").join(layer);
    offenders_in(|file| file.starts_with(&root), forbidden)
}

#[test]
fn model_and_engine_know_nothing_of_sqlite_or_the_gui() {
    let forbidden =
        ["rusqlite", "egui", "eframe", "crate::store", "crate::gui", "crate::cli", "SqliteStore", "MemoryStore"];
    for layer in ["model", "engine"] {
        let found = offenders(layer, &forbidden);
        assert!(found.is_empty(), "the {layer} layer must not depend on storage or GUI:\n{}", found.join("\n"));
    }
}

/// The memory store shows that the engine needs nothing of SQLite, which
/// only holds while it uses none itself: neither `rusqlite` nor the SQLite
/// store's modules.
#[test]
fn the_memory_store_uses_nothing_of_sqlite() {
    let memory = manifest_dir().join("src").join("store").join("memory.rs");
    assert!(SOURCES.iter().any(|(file, _)| *file == memory), "{} is gone: move this check", memory.display());
    let sqlite_modules = ["sql", "schema", "writer", "plan", "checkpoint", "floor", "synthetic", "tokens"];
    let mut forbidden = vec!["rusqlite".to_owned(), "SqliteStore".to_owned(), "SqliteTransaction".to_owned()];
    forbidden.extend(sqlite_modules.iter().map(|module| format!("crate::store::{module}")));
    let forbidden: Vec<&str> = forbidden.iter().map(String::as_str).collect();
    let found = offenders_in(|file| file == memory, &forbidden);
    assert!(found.is_empty(), "the memory store must not use SQLite:\n{}", found.join("\n"));
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
    let store = manifest_dir().join("src").join("store");
    let found = offenders_in(|file| !file.starts_with(&store), &["rusqlite"]);
    assert!(found.is_empty(), "rusqlite used outside src/store:\n{}", found.join("\n"));
}

#[test]
fn only_the_gui_uses_the_window_crates() {
    let gui = manifest_dir().join("src").join("gui");
    let window_crates = ["egui", "eframe", "egui_extras", "egui_file", "egui_plot", "winit", "rfd"];
    let found = offenders_in(|file| !file.starts_with(&gui), &window_crates);
    assert!(found.is_empty(), "window crates used outside src/gui:\n{}", found.join("\n"));
}

#[test]
fn library_code_does_not_unwrap() {
    let mut found = Vec::new();
    for (file, findings) in SOURCES.iter() {
        found.extend(findings.unwraps.iter().map(|line| format!("{}:{line}", shown(file))));
    }
    assert!(found.is_empty(), "unwrap/expect outside tests:\n{}", found.join("\n"));
}

/// One front door: front ends (the command line, the window, the HTTP API,
/// the client API, the benchmarks) hold a `Runtime` and never name the
/// database type, so that the store can change behind it.
#[test]
fn the_store_type_is_named_only_by_the_runtime_and_the_store() {
    let src = manifest_dir().join("src");
    let (store, runtime) = (src.join("store"), src.join("runtime.rs"));
    let stores = ["SqliteStore", "MemoryStore"];
    let mut found = offenders_in(|file| !file.starts_with(&store) && file != runtime, &stores);
    for file in rust_files(&manifest_dir().join("benches")) {
        let source = std::fs::read_to_string(&file).unwrap();
        let named = findings(&source, &[]).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        found.extend(named.violations(&stores).into_iter().map(|(line, v)| format!("{}:{line}: {v}", shown(&file))));
    }
    assert!(found.is_empty(), "a store type named outside runtime.rs and src/store:\n{}", found.join("\n"));
}

// The checks themselves, on sources written here.

fn engine_violations(source: &str, forbidden: &[&str]) -> Vec<(usize, String)> {
    findings(source, &["engine".to_owned()]).unwrap().violations(forbidden)
}

/// What the check was before it parsed: a line that contains the word.
fn substring_offenders(source: &str, word: &str) -> Vec<usize> {
    source.lines().enumerate().filter(|(_, line)| line.contains(word)).map(|(i, _)| i + 1).collect()
}

#[test]
fn grouped_multiline_and_relative_uses_are_seen_where_a_line_search_missed_them() {
    let source = "\
use crate::{
    model::ProcessDraft,
    store::SqliteStore,
};
use super::store::Durability as D;
use crate::store::{self};
";
    assert_eq!(
        engine_violations(source, &["crate::store"]),
        [
            (3, "crate::store::SqliteStore (forbidden: crate::store)".to_owned()),
            (5, "crate::store::Durability (forbidden: crate::store)".to_owned()),
            (6, "crate::store (forbidden: crate::store)".to_owned()),
        ]
    );
    // The line search saw only the last of the three.
    assert_eq!(substring_offenders(source, "crate::store"), [6]);
}

#[test]
fn paths_in_code_in_macros_and_extern_crate_are_seen() {
    let source = "\
extern crate rusqlite;
fn count() -> usize {
    let n = crate::store::count();
    format!(\"{:?}\", ::egui::Color32::RED).len() + n
}
#[derive(utoipa::ToSchema)]
struct Body;
";
    assert_eq!(
        engine_violations(source, &["rusqlite", "crate::store", "egui", "utoipa"]),
        [
            (1, "rusqlite (forbidden: rusqlite)".to_owned()),
            (3, "crate::store::count (forbidden: crate::store)".to_owned()),
            (4, "egui::Color32::RED (forbidden: egui)".to_owned()),
            (6, "utoipa::ToSchema (forbidden: utoipa)".to_owned()),
        ]
    );
}

#[test]
fn comments_doc_links_and_strings_are_not_code() {
    let source = "\
// The store (crate::store) is where rusqlite is used.
/// Unlike [`crate::gui::FlowdeskApp`], knows no egui.
const SQL: &str = \"use crate::store; rusqlite\";
const RAW: &str = r#\"
egui::Context
\"#;
/* crate::cli
   rusqlite */
fn after_them() -> crate::model::Value { todo!() }
";
    assert_eq!(engine_violations(source, &["rusqlite", "egui", "crate::store", "crate::gui", "crate::cli"]), []);
    // The line search took all of them for code.
    assert_eq!(substring_offenders(source, "rusqlite"), [1, 3, 8]);
    // And lines stay right past literals and comments that span lines.
    let paths = findings(source, &[]).unwrap().paths;
    assert!(
        paths.contains(&Named { line: 9, path: vec!["crate".into(), "model".into(), "Value".into()] }),
        "{paths:?}"
    );
}

#[test]
fn unwrap_is_allowed_only_inside_cfg_test_items() {
    let source = "\
fn a(x: Option<u8>) -> u8 { x.unwrap() }
#[cfg(test)]
fn helper(y: Option<u8>) -> u8 { y.unwrap() }
fn b(z: Option<u8>) -> u8 { z.expect(\"why\") }
#[cfg(test)]
mod tests { fn t(w: Option<u8>) { w.unwrap(); } }
fn c(v: Option<bool>) { assert!(v.unwrap()); }
impl S { #[cfg(test)] fn d(&self) { self.0.unwrap(); } fn e(&self) { self.0.unwrap_or(1); } }
";
    assert_eq!(findings(source, &[]).unwrap().unwraps, [1, 4, 7]);
    // The line search stopped at the first `#[cfg(test)]`: it saw line 1 only.
    let before_tests = source.split("#[cfg(test)]").next().unwrap_or_default();
    assert_eq!(
        substring_offenders(before_tests, ".unwrap()").len() + substring_offenders(before_tests, ".expect(").len(),
        1
    );
}
