//! Sub-process (IPC) events: a step that starts an instance of another
//! process (the *child*), in the same transaction as the parent's step.
//!
//! The event's **Synchronous** property means here what K2 made it mean for
//! IPC events, the opposite of a server event's: synchronous, the parent
//! *waits* until the child completes (an ordinary server item of the
//! parent, which the child's completion finishes, copying the output
//! mappings back); asynchronous, the parent *starts* the child and goes on.
//!
//! This module is the model's part: the file form ([`IpcDraft`]), the
//! checks that need only the parent ([`IpcSpec::check`]) and those that need
//! the child's fields ([`IpcSpec::check_child`], run against the deployed
//! child when deploying, since the draft alone cannot know it), and filling
//! in a child's folio and data for one instance. Starting the child is the
//! engine's business (`engine::ipc`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::http::checked_template;
use crate::model::template::{Template, TemplateValues};
use crate::model::time::ProcessZone;
use crate::model::value::{FieldType, Value};

/// How deep a chain of sub-processes may go below the instance a person
/// started: its child is at depth 1, a grandchild at 2. Starting a child
/// deeper than this puts the instance that would start it in Error. It
/// bounds a process that calls itself (also asynchronously: every child is
/// started in its parent's transaction, so an endless chain would never
/// commit) and a cycle of processes calling each other.
pub const MAX_DEPTH: u32 = 8;

/// An IPC event as the process file writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpcDraft {
    pub name: String,
    /// True (the default): the parent waits for the child to complete.
    /// False: the parent starts the child and goes on at once.
    #[serde(default = "default_synchronous")]
    pub synchronous: bool,
    /// The child process, by name.
    #[serde(default)]
    pub process: String,
    /// The child's version; none: the default version when the event runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The child's folio, a template (`${field}`); empty: the parent's folio.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub folio: String,
    /// Parent field or template → child field, set when the child starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<MappingDraft>,
    /// Child field → parent field, copied when the child completes (only
    /// when the parent waits for it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<MappingDraft>,
}

impl IpcDraft {
    /// A new event with nothing chosen yet (the palette's template).
    pub fn new(name: &str) -> IpcDraft {
        IpcDraft {
            name: name.to_owned(),
            synchronous: true,
            process: String::new(),
            version: None,
            folio: String::new(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        }
    }

    /// The event in the canvas's words: what the parent does.
    pub fn words(&self) -> &'static str {
        if self.synchronous { "waits for child" } else { "starts child" }
    }
}

fn default_synchronous() -> bool {
    true
}

/// One mapping: `from` → `to`. For an input, `from` is a parent field's
/// name, `${field}`, or a template; for an output it is a child field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingDraft {
    #[serde(default)]
    pub from: String,
    #[serde(default)]
    pub to: String,
}

/// Where an input mapping takes its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    /// A parent field, copied as it is (the types must match).
    Field(String),
    /// A template, filled as text (the child field must be a string).
    Template(Template),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputMapping {
    pub from: InputSource,
    pub to: String,
}

/// A checked IPC event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpcSpec {
    pub process: String,
    pub version: Option<u32>,
    /// Whether the parent waits for the child.
    pub waits: bool,
    /// `None`: the parent's folio.
    pub folio: Option<Template>,
    pub inputs: Vec<InputMapping>,
    /// (child field, parent field).
    pub outputs: Vec<(String, String)>,
}

impl IpcSpec {
    /// Every problem of a draft that the parent alone tells, as messages
    /// for the event's location; the spec when there is none.
    pub fn check(draft: &IpcDraft, parent_fields: &BTreeMap<String, FieldType>) -> Result<IpcSpec, Vec<String>> {
        let mut problems = Vec::new();
        let names: Vec<&str> = parent_fields.keys().map(String::as_str).collect();
        if draft.process.trim().is_empty() {
            problems.push("no child process: name the process this event starts".to_owned());
        }
        if draft.version == Some(0) {
            problems
                .push("version 0 does not exist: versions count from 1 (or leave it empty for the default)".to_owned());
        }
        let folio = if draft.folio.trim().is_empty() {
            None
        } else {
            checked_template("folio", &draft.folio, false, &names, &mut problems)
        };
        let mut inputs = Vec::with_capacity(draft.inputs.len());
        for (index, mapping) in draft.inputs.iter().enumerate() {
            let to = mapping.to.trim();
            let what = format!("input mapping {} (→ `{to}`)", index + 1);
            if to.is_empty() {
                problems.push(format!("input mapping {} has no child field", index + 1));
            } else if draft.inputs[..index].iter().any(|m| m.to.trim() == to) {
                problems.push(format!("{what}: another input mapping already sets `{to}`"));
            }
            let from = mapping.from.trim();
            let source = if from.is_empty() {
                problems.push(format!("{what} takes nothing: write a parent field, `${{field}}` or a template"));
                None
            } else if let Some(field) = single_field(from, parent_fields) {
                Some(InputSource::Field(field.to_owned()))
            } else {
                checked_template(&what, from, false, &names, &mut problems).map(InputSource::Template)
            };
            if let Some(from) = source {
                inputs.push(InputMapping { from, to: to.to_owned() });
            }
        }
        let mut outputs = Vec::with_capacity(draft.outputs.len());
        for (index, mapping) in draft.outputs.iter().enumerate() {
            let (from, to) = (mapping.from.trim(), mapping.to.trim());
            let what = format!("output mapping {} (`{from}` → `{to}`)", index + 1);
            if from.is_empty() {
                problems.push(format!("{what} names no child field"));
            }
            if to.is_empty() {
                problems.push(format!("{what} names no field of this process"));
            } else if !parent_fields.contains_key(to) {
                problems.push(format!("{what}: this process has no field `{to}`"));
            } else if draft.outputs[..index].iter().any(|m| m.to.trim() == to) {
                problems.push(format!("{what}: another output mapping already sets `{to}`"));
            }
            outputs.push((from.to_owned(), to.to_owned()));
        }
        if !draft.synchronous && !draft.outputs.is_empty() {
            problems.push(
                "output mappings need a parent that waits: an asynchronous IPC event goes on at once, so nothing is copied back; make it synchronous or remove them"
                    .to_owned(),
            );
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(IpcSpec {
            process: draft.process.trim().to_owned(),
            version: draft.version,
            waits: draft.synchronous,
            folio,
            inputs,
            outputs,
        })
    }

    /// The problems of the mappings against the child's fields: a field the
    /// child lacks, and types that differ.
    pub fn check_child(
        &self,
        child_fields: &BTreeMap<String, FieldType>,
        parent_fields: &BTreeMap<String, FieldType>,
    ) -> Vec<String> {
        let child = &self.process;
        let mut problems = Vec::new();
        for (index, mapping) in self.inputs.iter().enumerate() {
            let what = format!("input mapping {} (→ `{}`)", index + 1, mapping.to);
            let Some(&to_type) = child_fields.get(&mapping.to) else {
                problems.push(format!("{what}: process `{child}` has no field `{}`", mapping.to));
                continue;
            };
            match &mapping.from {
                InputSource::Field(field) => {
                    if let Some(&from_type) = parent_fields.get(field)
                        && from_type != to_type
                    {
                        problems.push(format!(
                            "{what}: type mismatch: `{field}` ({from_type}) into `{}` of `{child}` ({to_type})",
                            mapping.to
                        ));
                    }
                }
                InputSource::Template(_) if to_type != FieldType::String => problems.push(format!(
                    "{what}: a template makes text, and `{}` of `{child}` is {to_type}: map a single field of that type",
                    mapping.to
                )),
                InputSource::Template(_) => {}
            }
        }
        for (index, (from, to)) in self.outputs.iter().enumerate() {
            let what = format!("output mapping {} (`{from}` → `{to}`)", index + 1);
            let Some(&from_type) = child_fields.get(from) else {
                problems.push(format!("{what}: process `{child}` has no field `{from}`"));
                continue;
            };
            if let Some(&to_type) = parent_fields.get(to)
                && from_type != to_type
            {
                problems.push(format!(
                    "{what}: type mismatch: `{from}` of `{child}` ({from_type}) into `{to}` ({to_type})"
                ));
            }
        }
        problems
    }

    /// The child's folio for one instance: the template filled, or the
    /// parent's folio.
    pub fn fill_folio(&self, values: &TemplateValues<'_>) -> Result<String, String> {
        match &self.folio {
            None => Ok(values.context.folio.clone()),
            Some(template) => template.fill_text(values).map_err(|e| format!("folio: {e}")),
        }
    }

    /// The child's data set by the input mappings, typed by the child's
    /// fields (read in the child's time zone); why not, naming the mapping.
    pub fn fill_inputs(
        &self,
        values: &TemplateValues<'_>,
        child_fields: &BTreeMap<String, FieldType>,
        child_zone: &ProcessZone,
    ) -> Result<Vec<(String, Value)>, String> {
        let mut data = Vec::with_capacity(self.inputs.len());
        for mapping in &self.inputs {
            let to = &mapping.to;
            let Some(&to_type) = child_fields.get(to) else {
                return Err(format!("input mapping → `{to}`: process `{}` has no field `{to}`", self.process));
            };
            let value = match &mapping.from {
                InputSource::Field(field) => {
                    let value = values.data.get(field).cloned().unwrap_or_else(|| to_type.zero_value());
                    if value.field_type() != to_type {
                        return Err(format!(
                            "input mapping `{field}` → `{to}`: a value of type {} does not fit `{to}` ({to_type})",
                            value.field_type()
                        ));
                    }
                    value
                }
                InputSource::Template(template) => {
                    let text = template.fill_text(values).map_err(|e| format!("input mapping → `{to}`: {e}"))?;
                    Value::parse(to_type, &text, child_zone)
                        .map_err(|mismatch| format!("input mapping → `{to}`: {mismatch}"))?
                }
            };
            data.push((to.clone(), value));
        }
        Ok(data)
    }

    /// The parent's data set by the output mappings from a completed
    /// child's data, and a line per mapping that could not be copied (the
    /// child's version changed its fields since the parent was deployed).
    pub fn fill_outputs(
        &self,
        child_data: &BTreeMap<String, Value>,
        parent_fields: &BTreeMap<String, FieldType>,
    ) -> (BTreeMap<String, Value>, Vec<String>) {
        let mut values = BTreeMap::new();
        let mut skipped = Vec::new();
        for (from, to) in &self.outputs {
            match (child_data.get(from), parent_fields.get(to)) {
                (Some(value), Some(&to_type)) if value.field_type() == to_type => {
                    values.insert(to.clone(), value.clone());
                }
                (Some(value), Some(to_type)) => skipped.push(format!(
                    "`{from}` → `{to}` not copied: a value of type {} does not fit `{to}` ({to_type})",
                    value.field_type()
                )),
                (None, _) => skipped.push(format!("`{from}` → `{to}` not copied: the child has no field `{from}`")),
                (Some(_), None) => skipped.push(format!("`{from}` → `{to}` not copied: no field `{to}` here")),
            }
        }
        (values, skipped)
    }
}

/// `from` names one parent field: its bare name, or `${name}` alone.
fn single_field<'a>(from: &'a str, parent_fields: &BTreeMap<String, FieldType>) -> Option<&'a str> {
    let name = from.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')).unwrap_or(from);
    parent_fields.contains_key(name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(list: &[(&str, FieldType)]) -> BTreeMap<String, FieldType> {
        list.iter().map(|(name, ty)| ((*name).to_owned(), *ty)).collect()
    }

    fn mapping(from: &str, to: &str) -> MappingDraft {
        MappingDraft { from: from.to_owned(), to: to.to_owned() }
    }

    #[test]
    fn a_field_name_or_a_lone_placeholder_is_a_typed_copy_anything_else_a_template() {
        let parent = fields(&[("amount", FieldType::Decimal), ("name", FieldType::String)]);
        let mut draft = IpcDraft::new("Pay");
        draft.process = "payment".to_owned();
        draft.inputs = vec![mapping("amount", "total"), mapping("${name}", "who"), mapping("order ${name}", "memo")];
        let spec = IpcSpec::check(&draft, &parent).unwrap();
        assert_eq!(spec.inputs[0].from, InputSource::Field("amount".to_owned()));
        assert_eq!(spec.inputs[1].from, InputSource::Field("name".to_owned()));
        assert!(matches!(spec.inputs[2].from, InputSource::Template(_)));
    }

    #[test]
    fn the_parent_alone_tells_these_problems() {
        let parent = fields(&[("amount", FieldType::Decimal)]);
        let mut draft = IpcDraft::new("Pay");
        draft.version = Some(0);
        draft.inputs = vec![mapping("", "a"), mapping("${nope}", "b"), mapping("amount", "")];
        draft.outputs = vec![mapping("paid", "missing")];
        let problems = IpcSpec::check(&draft, &parent).unwrap_err().join("\n");
        for expected in [
            "no child process",
            "version 0 does not exist",
            "input mapping 1 (→ `a`) takes nothing",
            "unknown placeholder `${nope}`",
            "input mapping 3 has no child field",
            "this process has no field `missing`",
        ] {
            assert!(problems.contains(expected), "{expected} in:\n{problems}");
        }
        draft.synchronous = false;
        draft.outputs = vec![mapping("paid", "amount")];
        let problems = IpcSpec::check(&draft, &parent).unwrap_err().join("\n");
        assert!(problems.contains("output mappings need a parent that waits"), "{problems}");
    }

    #[test]
    fn the_child_tells_missing_fields_and_type_mismatches() {
        let parent = fields(&[("amount", FieldType::Decimal), ("paid", FieldType::Boolean)]);
        let child = fields(&[("total", FieldType::Integer), ("ok", FieldType::String), ("memo", FieldType::Date)]);
        let mut draft = IpcDraft::new("Pay");
        draft.process = "payment".to_owned();
        draft.inputs = vec![mapping("amount", "total"), mapping("x ${amount}", "memo"), mapping("amount", "gone")];
        draft.outputs = vec![mapping("ok", "paid"), mapping("absent", "paid2")];
        let parent_with = {
            let mut p = parent.clone();
            p.insert("paid2".to_owned(), FieldType::Boolean);
            p
        };
        let spec = IpcSpec::check(&draft, &parent_with).unwrap();
        let problems = spec.check_child(&child, &parent_with).join("\n");
        for expected in [
            "type mismatch: `amount` (decimal) into `total` of `payment` (integer)",
            "a template makes text, and `memo` of `payment` is date",
            "process `payment` has no field `gone`",
            "type mismatch: `ok` of `payment` (string) into `paid` (boolean)",
            "process `payment` has no field `absent`",
        ] {
            assert!(problems.contains(expected), "{expected} in:\n{problems}");
        }
    }
}
