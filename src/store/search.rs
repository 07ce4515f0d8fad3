//! What the server items' search means, for every store: whether a text
//! contains what was typed, ignoring case in all of Unicode.
//!
//! Both sides are compared in Unicode's case folding, as its caseless
//! matching does: lower case would make the last `Σ` of a typed word a final
//! `ς`, and keep `ß` apart from `SS`. The SQLite store calls it from an SQL
//! function of its own (SQLite's `lower()` and `LIKE` fold ASCII letters
//! only), the memory store directly; so both answer a search alike.

use unicase::UniCase;

/// `needle` as [`contains_ignoring_case`] takes it: case-folded, once per
/// search rather than once per row.
pub(super) fn fold(needle: &str) -> String {
    UniCase::new(needle).to_folded_case()
}

/// Whether `text` contains `needle` (already [`fold`]ed), ignoring case.
pub(super) fn contains_ignoring_case(text: &str, needle: &str) -> bool {
    if needle.is_empty() {
        return true;
    }
    if text.is_ascii() {
        // ASCII text has an ASCII lower case: compare in place, without
        // allocating, which is what almost every row is.
        needle.is_ascii()
            && text.as_bytes().windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
    } else {
        UniCase::unicode(text).to_folded_case().contains(needle)
    }
}
