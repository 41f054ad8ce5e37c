//! CEL expressions over a FlowFile's attributes: compiling them once, and evaluating them per
//! FlowFile. Shared by the `route` node's rules and the `report` node's product policy.
//!
//! What an expression sees:
//! - `attrs`: every attribute, a map from name to string value (`attrs["classify.label"]`);
//!   test presence with `"camera.verdict" in attrs`;
//! - each attribute also by its dotted name where the dots make a tree: `classify.label`,
//!   `camera.verdict`, `priority` (a name that is both a value and the prefix of others, e.g.
//!   `a` and `a.b`, is only in `attrs`);
//! - `size`: the content size in bytes (an int).
//!
//! Attribute values are strings; CEL's conversions turn them into numbers:
//! `double(classify.score) >= 0.9`, `int(camera.angle) < 4`. A missing attribute, a failed
//! conversion or a result of the wrong type is an evaluation error, with the reason: `route`
//! sends the FlowFile to `failure`, the product policy sends the angle to review.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::objects::Key;
use cel::{Context, Program, Value};

/// A compiled expression with its source, for messages.
pub struct Expression {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Expression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Expression").field(&self.source).finish()
    }
}

/// An expression failed to evaluate, or gave a value of the wrong type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{expression}`: {message}")]
pub struct EvalError {
    /// The expression.
    pub expression: String,
    /// What went wrong.
    pub message: String,
}

impl Expression {
    /// Compiles `source`; the error is CEL's parser message with line and column.
    pub fn compile(source: &str) -> Result<Expression, String> {
        if source.trim().is_empty() {
            return Err("an empty expression".to_string());
        }
        let program = Program::compile(source).map_err(|e| {
            e.to_string()
                .replace("ERROR: <input>:", "CEL syntax error at ")
        })?;
        Ok(Expression {
            source: source.to_string(),
            program,
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    fn evaluate(&self, variables: &Variables) -> Result<Value, EvalError> {
        let mut context = Context::default();
        for (name, value) in &variables.0 {
            context.add_variable_from_value(name.clone(), value.clone());
        }
        self.program
            .execute(&context)
            .map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, message: impl Into<String>) -> EvalError {
        EvalError {
            expression: self.source.clone(),
            message: message.into(),
        }
    }

    /// Evaluates to a boolean (a rule's condition).
    pub fn test(&self, variables: &Variables) -> Result<bool, EvalError> {
        match self.evaluate(variables)? {
            Value::Bool(b) => Ok(b),
            other => Err(self.error(format!(
                "must give true or false, gave {}",
                describe(&other)
            ))),
        }
    }

    /// Evaluates to an attribute value: strings as they are, numbers and booleans in their
    /// usual text form.
    pub fn text(&self, variables: &Variables) -> Result<String, EvalError> {
        match self.evaluate(variables)? {
            Value::String(s) => Ok(s.as_str().to_string()),
            Value::Int(i) => Ok(i.to_string()),
            Value::UInt(u) => Ok(u.to_string()),
            Value::Float(f) => Ok(f.to_string()),
            Value::Bool(b) => Ok(b.to_string()),
            other => Err(self.error(format!(
                "must give a string, number or boolean, gave {}",
                describe(&other)
            ))),
        }
    }
}

fn describe(value: &Value) -> String {
    format!("{:?}", value.type_of())
}

/// The variables of one FlowFile, built once and shared by every expression of a node.
#[derive(Debug, Clone)]
pub struct Variables(Vec<(String, Value)>);

impl Variables {
    /// The variables for a FlowFile with these attributes and content size.
    pub fn new(attributes: &HashMap<String, String>, size: u64) -> Variables {
        let attrs: HashMap<Key, Value> = attributes
            .iter()
            .map(|(k, v)| (Key::from(k.as_str()), Value::String(Arc::new(v.clone()))))
            .collect();
        let mut variables = vec![
            ("attrs".to_string(), Value::from(attrs)),
            (
                "size".to_string(),
                Value::Int(size.min(i64::MAX as u64) as i64),
            ),
        ];
        for (name, tree) in trees(attributes) {
            if name != "attrs" && name != "size" {
                variables.push((name, tree.into_value()));
            }
        }
        Variables(variables)
    }
}

/// Attribute names split on dots into trees; a name that is both a leaf and a branch is
/// left out (it stays reachable through `attrs`).
#[derive(Debug, Default)]
struct Tree {
    value: Option<String>,
    children: BTreeMap<String, Tree>,
    conflict: bool,
}

impl Tree {
    fn insert(&mut self, path: &[&str], value: &str) {
        match path.split_first() {
            None => self.value = Some(value.to_string()),
            Some((first, rest)) => self
                .children
                .entry(first.to_string())
                .or_default()
                .insert(rest, value),
        }
        self.conflict = self.value.is_some() && !self.children.is_empty();
    }

    fn into_value(self) -> Value {
        match self.value {
            Some(v) if self.children.is_empty() => Value::String(Arc::new(v)),
            _ => Value::from(
                self.children
                    .into_iter()
                    .filter(|(_, t)| !t.conflict)
                    .map(|(k, t)| (Key::from(k), t.into_value()))
                    .collect::<HashMap<Key, Value>>(),
            ),
        }
    }
}

fn trees(attributes: &HashMap<String, String>) -> BTreeMap<String, Tree> {
    let mut roots: BTreeMap<String, Tree> = BTreeMap::new();
    for (name, value) in attributes {
        let parts: Vec<&str> = name.split('.').collect();
        // Only names CEL can spell as identifiers and selections.
        if parts.iter().all(|p| is_identifier(p)) {
            roots
                .entry(parts[0].to_string())
                .or_default()
                .insert(&parts[1..], value);
        }
    }
    roots.retain(|_, tree| !tree.conflict);
    roots
}

fn is_identifier(part: &str) -> bool {
    let mut chars = part.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        Variables::new(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            1234,
        )
    }

    #[test]
    fn attributes_by_map_and_by_dotted_name_with_numeric_conversions() {
        let v = vars(&[
            ("classify.label", "loose_wire"),
            ("classify.score", "0.9712"),
            ("camera.angle", "3"),
            ("line", "L1"),
            ("weird-name", "x"),
        ]);
        let t = |src: &str| Expression::compile(src).unwrap().test(&v).unwrap();
        assert!(t(
            r#"classify.label == "loose_wire" && double(classify.score) >= 0.97"#
        ));
        assert!(t(r#"attrs["weird-name"] == "x" && int(camera.angle) < 4"#));
        assert!(t(
            r#""line" in attrs && !("nope" in attrs) && size == 1234"#
        ));
        assert!(!t(r#"line == "L2""#));
    }

    #[test]
    fn a_name_that_is_both_value_and_prefix_stays_in_attrs_only() {
        let v = vars(&[("a", "1"), ("a.b", "2"), ("c.d", "3")]);
        let t = |src: &str| Expression::compile(src).unwrap().test(&v);
        assert_eq!(
            t(r#"attrs["a"] == "1" && attrs["a.b"] == "2" && c.d == "3""#),
            Ok(true)
        );
        assert!(t("a == \"1\"").is_err(), "`a` is ambiguous, not a variable");
    }

    #[test]
    fn errors_say_what_and_where() {
        let err = Expression::compile("classify.label == ").unwrap_err();
        assert!(err.contains("CEL syntax error at 1:"), "{err}");
        assert!(Expression::compile("  ").is_err());
        let v = vars(&[("score", "high")]);
        let e = Expression::compile("double(score) > 0.5")
            .unwrap()
            .test(&v)
            .unwrap_err();
        assert_eq!(e.expression, "double(score) > 0.5");
        let e = Expression::compile("attrs[\"missing\"] == \"x\"")
            .unwrap()
            .test(&v)
            .unwrap_err();
        assert!(e.message.contains("missing"), "{e}");
        let e = Expression::compile("\"text\"")
            .unwrap()
            .test(&v)
            .unwrap_err();
        assert!(e.message.contains("true or false"), "{e}");
        let p = Expression::compile("size > 1000 ? 1 : 5")
            .unwrap()
            .text(&v)
            .unwrap();
        assert_eq!(p, "1");
    }
}
