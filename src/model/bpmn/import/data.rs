//! The process's data: fields from Camunda's forms and from the variables
//! conditions use, and each condition as a Rhai rule.

use std::collections::{BTreeMap, HashSet};

use super::*;
use crate::model::bpmn::condition::{to_rhai, variable_types};
use crate::model::script::CONTEXT_NAMES;

impl Builder<'_> {
    /// Camunda 7's generated forms name the data a user task collects.
    pub(super) fn camunda_form_fields(&mut self) {
        let mut added = Vec::new();
        for node in &self.nodes {
            let Some(extension) = node.element.child(BPMN_NS, "extensionElements") else { continue };
            for form in extension.children_named(CAMUNDA_NS, "formData") {
                for field in form.children_named(CAMUNDA_NS, "formField") {
                    let Some(name) = field.attr("id") else { continue };
                    let field_type = match field.attr("type").unwrap_or_default() {
                        "long" => FieldType::Integer,
                        "boolean" => FieldType::Boolean,
                        "date" => FieldType::Date,
                        _ => FieldType::String,
                    };
                    let task = node.element.attr("id").unwrap_or_default().to_owned();
                    added.push((name.to_owned(), field_type, task, node.name().to_owned()));
                }
            }
        }
        for (name, field_type, task, task_name) in added {
            let why = format!("became the {field_type} field `{name}`, from the form of `{task_name}` ({task})");
            self.add_field(&name, field_type, "form field", why);
        }
    }

    /// Adds a field the BPMN did not declare (BPMN has no process data),
    /// saying where it came from; a name already taken is left as it is.
    pub(super) fn add_field(&mut self, name: &str, field_type: FieldType, element: &str, why: String) {
        if self.fields.iter().any(|f| f.name == name) {
            return;
        }
        self.fields.push(FieldDraft {
            name: name.to_owned(),
            field_type: field_type.name().to_owned(),
            default: None,
            searchable: false,
        });
        self.report.add(EntryKind::Changed, element, name, "", why);
    }

    /// Every condition as a rule; the variables the rules use that are no
    /// field yet become fields, typed by their use.
    pub(super) fn read_conditions(&mut self) {
        let language = self.root.attr("expressionLanguage").unwrap_or_default().to_owned();
        let mut candidates: Vec<Option<(String, String, bool)>> = Vec::new();
        for edge in &self.edges {
            let Some(condition) = edge.element.and_then(|e| e.child(BPMN_NS, "conditionExpression")) else {
                candidates.push(None);
                continue;
            };
            let written = condition.text.clone();
            let language = condition.attr("language").unwrap_or(&language).to_ascii_lowercase();
            if language == "rhai" {
                candidates.push(Some((written.clone(), written, true)));
            } else {
                candidates.push(Some((to_rhai(&written), written.trim().to_owned(), false)));
            }
        }
        if !self.ours {
            self.infer_fields(candidates.iter().flatten().map(|(rule, _, _)| rule.as_str()));
        }
        let names: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut seen = HashSet::new();
        for (edge, candidate) in self.edges.iter_mut().zip(candidates) {
            let Some((rule, written, is_rhai)) = candidate else { continue };
            let first = seen.insert(edge.id.clone());
            let name = edge.element.and_then(|e| e.attr("name")).unwrap_or_default();
            if is_rhai || self.host.compile_rule(&rule, &names).is_ok() {
                if !is_rhai && rule != written && first {
                    self.report.add(
                        EntryKind::Changed,
                        "condition",
                        &edge.id,
                        name,
                        format!("`{written}` became the Rhai rule `{rule}`"),
                    );
                }
                edge.rule = Some(Rule { text: rule, unread: None });
            } else {
                if first {
                    self.report.add(
                        EntryKind::Problem,
                        "condition",
                        &edge.id,
                        name,
                        format!(
                            "`{written}` is not a Rhai rule flowdesk can read: it is kept as the line's label and \
                             rule; write the rule in Rhai"
                        ),
                    );
                }
                edge.rule = Some(Rule { text: written.clone(), unread: Some(written) });
            }
        }
    }

    /// Adds a field for every variable `rules` use that is not one yet.
    pub(super) fn infer_fields<'r>(&mut self, rules: impl Iterator<Item = &'r str>) {
        let mut types = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for rule in rules {
            let mut names: Vec<String> = self.fields.iter().map(|f| f.name.clone()).collect();
            let mut found = Vec::new();
            // Each compile names the first variable it does not know; a
            // rule that does not compile once they are all known is not
            // Rhai, and its words are no variables.
            let mut compiles = false;
            for _ in 0..64 {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                match self.host.compile_rule(rule, &known) {
                    Err(err) => match err.message.strip_prefix("Undefined variable: ") {
                        Some(name) if !names.iter().any(|n| n == name) && !CONTEXT_NAMES.contains(&name) => {
                            names.push(name.to_owned());
                            found.push(name.to_owned());
                        }
                        _ => break,
                    },
                    Ok(_) => {
                        compiles = true;
                        break;
                    }
                }
            }
            if !compiles {
                continue;
            }
            variable_types(rule, &found, &mut types);
            for name in found {
                if !order.contains(&name) {
                    order.push(name);
                }
            }
        }
        for name in order {
            let field_type = types.get(&name).copied().unwrap_or(FieldType::String);
            let guessed = if types.contains_key(&name) { "by its use" } else { "as text, its use says no type" };
            let why = format!(
                "became the {field_type} field `{name}` (typed {guessed}): BPMN has no process data; check the type"
            );
            self.add_field(&name, field_type, "variable", why);
        }
    }
}
