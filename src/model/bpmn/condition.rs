//! Conditions of other tools as Rhai line rules.
//!
//! BPMN tools write conditions in the language of their engine: JUEL
//! (`${amount > 1000 && approved}`, Camunda 7, Activiti, Flowable), FEEL
//! (`= amount > 1000 and approved`, Camunda 8) or none at all. The simple
//! ones, comparisons of variables with literals joined by and, or and not,
//! mean the same in Rhai once their words are Rhai's; [`to_rhai`] rewrites
//! those and leaves the rest as written, for validation to name. BPMN has
//! no process data, so [`variable_types`] guesses each variable's type from
//! how a rule uses it: a field to check, and the report says so.

use std::collections::BTreeMap;

use crate::model::value::FieldType;

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Ident(String),
    /// A string literal's content.
    Str(String),
    Int(String),
    Decimal(String),
    /// An operator or punctuation, as written.
    Op(String),
}

/// Splits an expression into tokens; `None` for text it cannot split (an
/// unclosed string).
fn tokens(text: &str) -> Option<Vec<Token>> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            out.push(Token::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '_') {
                i += 1;
            }
            if i + 1 < chars.len() && chars[i] == '.' && chars[i + 1].is_ascii_digit() {
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                out.push(Token::Decimal(chars[start..i].iter().collect()));
            } else {
                out.push(Token::Int(chars[start..i].iter().collect()));
            }
        } else if c == '"' || c == '\'' {
            let mut content = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return None,
                    Some('\\') => {
                        content.push(*chars.get(i + 1)?);
                        i += 2;
                    }
                    Some(&q) if q == c => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        content.push(other);
                        i += 1;
                    }
                }
            }
            out.push(Token::Str(content));
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(&two.as_str()) {
                out.push(Token::Op(two));
                i += 2;
            } else {
                out.push(Token::Op(c.to_string()));
                i += 1;
            }
        }
    }
    Some(out)
}

fn render(tokens: &[Token]) -> String {
    let mut out = String::new();
    for (index, token) in tokens.iter().enumerate() {
        let text = match token {
            Token::Ident(t) | Token::Int(t) | Token::Decimal(t) => t.clone(),
            Token::Str(s) => format!("{s:?}"),
            Token::Op(op) => op.clone(),
        };
        let previous = index.checked_sub(1).and_then(|i| tokens.get(i));
        let op = |token: Option<&Token>, ops: &[&str]| matches!(token, Some(Token::Op(o)) if ops.contains(&o.as_str()));
        let tight = op(Some(token), &[")", ".", ","])
            || (op(Some(token), &["("]) && (matches!(previous, Some(Token::Ident(_))) || op(previous, &["!", "("])))
            || op(previous, &["(", ".", "!"]);
        if index > 0 && !tight {
            out.push(' ');
        }
        out.push_str(&text);
    }
    out
}

/// A condition as a Rhai rule: `${…}` and `#{…}` (JUEL) and a leading `=`
/// (FEEL in Camunda 8) taken off, the words `and`, `or`, `not` and JUEL's
/// `eq`, `ne`, `lt`, `gt`, `le`, `ge` as Rhai's operators, FEEL's `=` as
/// `==`, and strings in double quotes. Text it cannot read comes back
/// unchanged.
pub fn to_rhai(text: &str) -> String {
    let trimmed = text.trim();
    let inner = ["${", "#{"]
        .iter()
        .find_map(|open| trimmed.strip_prefix(open).and_then(|rest| rest.strip_suffix('}')))
        .or_else(|| trimmed.strip_prefix('=').filter(|rest| !rest.starts_with('=')))
        .unwrap_or(trimmed)
        .trim();
    let Some(mut tokens) = tokens(inner) else { return trimmed.to_owned() };
    let mut changed = inner != trimmed;
    for token in &mut tokens {
        let replacement = match token {
            Token::Ident(word) => match word.as_str() {
                "and" => "&&",
                "or" => "||",
                "not" => "!",
                "eq" => "==",
                "ne" => "!=",
                "lt" => "<",
                "gt" => ">",
                "le" => "<=",
                "ge" => ">=",
                _ => continue,
            },
            Token::Op(op) if op == "=" => "==",
            _ => continue,
        };
        *token = Token::Op(replacement.to_owned());
        changed = true;
    }
    changed |= tokens.iter().any(|t| matches!(t, Token::Str(_))) && inner.contains('\'');
    // Nothing to change: the text stays as its author wrote it.
    if changed { render(&tokens) } else { trimmed.to_owned() }
}

/// The type each of `names` seems to have in `rule`: compared with a
/// string, a whole number, a decimal or true/false, or standing alone as a
/// condition (boolean). Names the rule uses otherwise are left out.
pub fn variable_types(rule: &str, names: &[String], types: &mut BTreeMap<String, FieldType>) {
    let Some(tokens) = tokens(rule) else { return };
    let literal = |token: Option<&Token>| match token {
        Some(Token::Str(_)) => Some(FieldType::String),
        Some(Token::Int(_)) => Some(FieldType::Integer),
        Some(Token::Decimal(_)) => Some(FieldType::Decimal),
        Some(Token::Ident(word)) if word == "true" || word == "false" => Some(FieldType::Boolean),
        _ => None,
    };
    let is_comparison = |token: Option<&Token>| matches!(token, Some(Token::Op(op)) if matches!(op.as_str(), "==" | "!=" | "<" | ">" | "<=" | ">="));
    let is_joint = |token: Option<&Token>| {
        token.is_none() || matches!(token, Some(Token::Op(op)) if matches!(op.as_str(), "&&" | "||" | "!" | "(" | ")"))
    };
    for (i, token) in tokens.iter().enumerate() {
        let Token::Ident(name) = token else { continue };
        if !names.contains(name) {
            continue;
        }
        let before = i.checked_sub(1).and_then(|j| tokens.get(j));
        let after = tokens.get(i + 1);
        let seen = if is_comparison(after) {
            literal(tokens.get(i + 2))
        } else if is_comparison(before) {
            literal(i.checked_sub(2).and_then(|j| tokens.get(j)))
        } else if is_joint(before) && is_joint(after) {
            Some(FieldType::Boolean)
        } else if matches!(after, Some(Token::Op(op)) if op == ".") {
            Some(FieldType::String)
        } else {
            None
        };
        let Some(seen) = seen else { continue };
        let merged = match types.get(name) {
            None => seen,
            Some(known) if *known == seen => seen,
            Some(FieldType::Integer) if seen == FieldType::Decimal => FieldType::Decimal,
            Some(FieldType::Decimal) if seen == FieldType::Integer => FieldType::Decimal,
            Some(known) => *known,
        };
        types.insert(name.clone(), merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tools_conditions_become_rhai() {
        assert_eq!(to_rhai("approved"), "approved");
        assert_eq!(to_rhai("  amount > 1000 "), "amount > 1000");
        assert_eq!(to_rhai("${amount > 1000}"), "amount > 1000");
        assert_eq!(to_rhai("#{approved}"), "approved");
        assert_eq!(to_rhai("${status == 'open' and not(vip)}"), "status == \"open\" && !(vip)");
        assert_eq!(to_rhai("${amount gt 10 or amount le 2}"), "amount > 10 || amount <= 2");
        assert_eq!(to_rhai("= amount > 1000 and approved = true"), "amount > 1000 && approved == true");
        assert_eq!(to_rhai("=approved"), "approved");
        assert_eq!(to_rhai("count >= 2"), "count >= 2");
        assert_eq!(to_rhai("${unclosed == 'x}"), "${unclosed == 'x}");
    }

    #[test]
    fn variable_types_come_from_their_use() {
        let names: Vec<String> = ["amount", "approved", "status", "rate", "other"].map(String::from).to_vec();
        let mut types = BTreeMap::new();
        variable_types("amount > 1000 && approved", &names, &mut types);
        variable_types("\"open\" == status || !(approved)", &names, &mut types);
        variable_types("rate < 2 || rate >= 0.5", &names, &mut types);
        variable_types("other + 1 > 2", &names, &mut types);
        assert_eq!(types.get("amount"), Some(&FieldType::Integer));
        assert_eq!(types.get("approved"), Some(&FieldType::Boolean));
        assert_eq!(types.get("status"), Some(&FieldType::String));
        assert_eq!(types.get("rate"), Some(&FieldType::Decimal));
        assert_eq!(types.get("other"), None);
    }
}
