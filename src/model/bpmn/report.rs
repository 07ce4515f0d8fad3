//! The import report: every element of a BPMN file that flowdesk did not
//! take over as it was, with its kind, id, name and why. Nothing is dropped
//! without an entry here; the command line prints it (or gives it as data
//! with `--json`) and the window shows it beside the imported draft.

use std::fmt;

use serde::Serialize;

/// How an element was taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Something to fix before the process does what the BPMN meant (a
    /// condition that is not Rhai, a script in another language).
    Problem,
    /// Imported with a different meaning or shape, said in the entry.
    Changed,
    /// A sub-process or call activity whose elements became part of the process.
    Flattened,
    /// Not imported: flowdesk has nothing it could become.
    Ignored,
}

impl EntryKind {
    pub fn word(self) -> &'static str {
        match self {
            EntryKind::Problem => "problem",
            EntryKind::Changed => "changed",
            EntryKind::Flattened => "flattened",
            EntryKind::Ignored => "ignored",
        }
    }
}

/// One element and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportEntry {
    pub kind: EntryKind,
    /// The element's kind in words: `lane`, `user task`, `camunda:inputOutput`.
    pub element: String,
    /// The element's BPMN id; empty for an element that has none.
    pub id: String,
    /// The element's name; empty for an unnamed one.
    pub name: String,
    /// Why, and what flowdesk did instead.
    pub why: String,
}

impl fmt::Display for ReportEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.word(), self.element)?;
        if !self.name.is_empty() {
            write!(f, " `{}`", self.name)?;
        }
        if !self.id.is_empty() {
            write!(f, " (id {})", self.id)?;
        }
        write!(f, ": {}", self.why)
    }
}

/// The entries of one import, in the order the file holds the elements.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Report(pub Vec<ReportEntry>);

impl Report {
    pub fn add(&mut self, kind: EntryKind, element: impl Into<String>, id: &str, name: &str, why: impl Into<String>) {
        self.0.push(ReportEntry {
            kind,
            element: element.into(),
            id: id.to_owned(),
            name: name.to_owned(),
            why: why.into(),
        });
    }

    pub fn entries(&self) -> &[ReportEntry] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn count(&self, kind: EntryKind) -> usize {
        self.0.iter().filter(|e| e.kind == kind).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_says_kind_name_id_and_why() {
        let mut report = Report::default();
        report.add(EntryKind::Ignored, "lane", "Lane_1", "Sales", "flowdesk has no lanes");
        report.add(EntryKind::Ignored, "association", "Association_1", "", "it joins an annotation");
        assert_eq!(report.0[0].to_string(), "ignored: lane `Sales` (id Lane_1): flowdesk has no lanes");
        assert_eq!(report.0[1].to_string(), "ignored: association (id Association_1): it joins an annotation");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json[0]["kind"], "ignored");
        assert_eq!(json[0]["element"], "lane");
    }
}
