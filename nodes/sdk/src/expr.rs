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
//!
//! ## Limits
//!
//! An expression is at most [`MAX_EXPRESSION_BYTES`] long and nests at most
//! [`MAX_NESTING_DEPTH`] levels deep. Both are checked by a cheap scan **before** the text is
//! handed to the CEL parser, whose recursion grows with the nesting: an expression of
//! 100 000 nested parentheses would otherwise overflow the stack. The scan counts, at every
//! point, the open brackets (`(`, `[`, `{`), the `?` of conditionals still open in them
//! (`a ? b : c ? d : e` nests), and the current run of unary operators (`!`, `-`); it skips
//! string literals (quoted, triple-quoted, raw) and `//` comments. A refusal is a
//! [`CompileError`] that names the line and column.

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

/// Longest expression accepted, in bytes (UTF-8). A routing rule or policy condition is a
/// line or two; 2 KiB leaves ample room. The length also bounds what the nesting limit does
/// not see, a chain of binary operators (`1+1+1+...`, two bytes a level), which CEL evaluates
/// recursively: measured in a debug build on a 2 MiB stack, a chain of about 1 800 overflows
/// it; 2 KiB allows at most 1 023.
pub const MAX_EXPRESSION_BYTES: usize = 2048;

/// Deepest nesting accepted: open brackets, open conditionals and a run of unary operators
/// together (see the [module documentation](self#limits)). The CEL parser's own recursion
/// limit is 96 nested expressions; 64 stays below it and far below what a 2 MiB thread
/// stack can parse.
pub const MAX_NESTING_DEPTH: usize = 64;

/// Why an expression does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// Nothing but white space.
    #[error("an empty expression")]
    Empty,
    /// Longer than [`MAX_EXPRESSION_BYTES`].
    #[error("the expression is {size} bytes long, over the limit of {limit} bytes")]
    TooLong {
        /// Its length in bytes.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Nested deeper than [`MAX_NESTING_DEPTH`].
    #[error(
        "the expression nests more than {limit} levels deep at line {line}, column {column} \
         (brackets, `? :` conditionals and runs of `!`/`-` count)"
    )]
    TooDeep {
        /// The limit.
        limit: usize,
        /// Line (from 1) where the limit is passed.
        line: usize,
        /// Column (from 1, in characters) where the limit is passed.
        column: usize,
    },
    /// CEL's parser refused it; the message has the line and column
    /// (`CEL syntax error at 1:7: ...`).
    #[error("{0}")]
    Syntax(String),
}

/// The message, for callers that report problems as text (settings errors).
impl From<CompileError> for String {
    fn from(e: CompileError) -> String {
        e.to_string()
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
    /// Compiles `source`: checks the [limits](self#limits) first, then parses; a syntax
    /// error is CEL's parser message with line and column.
    pub fn compile(source: &str) -> Result<Expression, CompileError> {
        if source.trim().is_empty() {
            return Err(CompileError::Empty);
        }
        check_limits(source, MAX_EXPRESSION_BYTES, MAX_NESTING_DEPTH)?;
        let program = Program::compile(source).map_err(|e| {
            CompileError::Syntax(
                e.to_string()
                    .replace("ERROR: <input>:", "CEL syntax error at "),
            )
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

/// Checks `source` against a length limit and a nesting limit without parsing it (see the
/// [module documentation](self#limits)). Linear in the length, no recursion.
pub fn check_limits(source: &str, max_bytes: usize, max_depth: usize) -> Result<(), CompileError> {
    if source.len() > max_bytes {
        return Err(CompileError::TooLong {
            size: source.len(),
            limit: max_bytes,
        });
    }
    NestingScan::new(max_depth).run(source)
}

/// The state of [`check_limits`]'s scan.
struct NestingScan {
    max_depth: usize,
    /// One entry per open bracket: the conditionals (`?`) opened inside it and still open
    /// (those outside any bracket stay open to the end).
    brackets: Vec<usize>,
    /// Brackets plus open conditionals.
    nested: usize,
    /// Length of the current run of `!`/`-`.
    unary_run: usize,
    line: usize,
    column: usize,
}

impl NestingScan {
    fn new(max_depth: usize) -> Self {
        NestingScan {
            max_depth,
            brackets: Vec::new(),
            nested: 0,
            unary_run: 0,
            line: 1,
            column: 0,
        }
    }

    fn check(&self) -> Result<(), CompileError> {
        if self.nested + self.unary_run > self.max_depth {
            Err(CompileError::TooDeep {
                limit: self.max_depth,
                line: self.line,
                column: self.column,
            })
        } else {
            Ok(())
        }
    }

    fn run(mut self, source: &str) -> Result<(), CompileError> {
        let chars: Vec<char> = source.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            self.advance(c);
            match c {
                '/' if chars.get(i + 1) == Some(&'/') => {
                    // A comment, to the end of the line.
                    while i + 1 < chars.len() && chars[i + 1] != '\n' {
                        i += 1;
                        self.advance(chars[i]);
                    }
                    self.unary_run = 0;
                }
                '"' | '\'' => {
                    i = self.skip_string(&chars, i);
                    self.unary_run = 0;
                }
                '(' | '[' | '{' => {
                    self.unary_run = 0;
                    self.brackets.push(0);
                    self.nested += 1;
                    self.check()?;
                }
                ')' | ']' | '}' => {
                    self.unary_run = 0;
                    // An unbalanced closer is left to the parser to report.
                    if let Some(conditionals) = self.brackets.pop() {
                        self.nested -= 1 + conditionals;
                    }
                }
                '?' => {
                    self.unary_run = 0;
                    if let Some(conditionals) = self.brackets.last_mut() {
                        *conditionals += 1;
                    }
                    self.nested += 1;
                    self.check()?;
                }
                '!' if chars.get(i + 1) != Some(&'=') => {
                    self.unary_run += 1;
                    self.check()?;
                }
                '-' => {
                    self.unary_run += 1;
                    self.check()?;
                }
                c if c.is_whitespace() => {}
                _ => self.unary_run = 0,
            }
            i += 1;
        }
        Ok(())
    }

    /// Moves the line and column past `c`.
    fn advance(&mut self, c: char) {
        if c == '\n' {
            self.line += 1;
            self.column = 0;
        } else {
            self.column += 1;
        }
    }

    /// Skips the string literal whose opening quote is at `start`; returns the index of its
    /// closing quote (or the last character, for a literal that never ends).
    fn skip_string(&mut self, chars: &[char], start: usize) -> usize {
        let quote = chars[start];
        let raw = is_raw_prefix(chars, start);
        let triple = chars.get(start + 1) == Some(&quote) && chars.get(start + 2) == Some(&quote);
        let mut i = start;
        if triple {
            for _ in 0..2 {
                i += 1;
                self.advance(chars[i]);
            }
        }
        while i + 1 < chars.len() {
            i += 1;
            let c = chars[i];
            self.advance(c);
            if c == '\\' && !raw {
                // The escaped character is part of the literal.
                if i + 1 < chars.len() {
                    i += 1;
                    self.advance(chars[i]);
                }
            } else if c == quote
                && (!triple
                    || (chars.get(i + 1) == Some(&quote) && chars.get(i + 2) == Some(&quote)))
            {
                if triple {
                    for _ in 0..2 {
                        i += 1;
                        self.advance(chars[i]);
                    }
                }
                return i;
            }
        }
        i
    }
}

/// Whether the quote at `quote` opens a raw string: `r"..."`, `R'...'`, `br"..."`, `rb"..."`
/// (the prefix not being the end of an identifier).
fn is_raw_prefix(chars: &[char], quote: usize) -> bool {
    let before = |n: usize| quote.checked_sub(n).map(|i| chars[i]);
    let is_ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    match (before(2), before(1)) {
        (p, Some('r' | 'R')) if !is_ident(p) => true,
        (Some('b' | 'B'), Some('r' | 'R')) => !is_ident(before(3)),
        (Some('r' | 'R'), Some('b' | 'B')) => !is_ident(before(3)),
        _ => false,
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

    /// Compiles on a thread with the default 2 MiB stack, as a runtime worker would.
    fn compile_on_small_stack(source: String) -> Result<(), CompileError> {
        std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || Expression::compile(&source).map(|_| ()))
            .unwrap()
            .join()
            .expect("no panic, no stack overflow")
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let parens = format!("{}1{}", "(".repeat(100_000), ")".repeat(100_000));
        let nots = format!("{}true", "!".repeat(100_000));
        let minuses = format!("{}1 == 1", "-".repeat(100_000));
        for source in [parens, nots, minuses] {
            // Over the length limit first; the nesting check alone refuses it too.
            let e = compile_on_small_stack(source.clone()).unwrap_err();
            assert!(matches!(e, CompileError::TooLong { .. }), "{e}");
            let e = check_limits(&source, usize::MAX, MAX_NESTING_DEPTH).unwrap_err();
            assert_eq!(
                e,
                CompileError::TooDeep {
                    limit: 64,
                    line: 1,
                    column: 65
                }
            );
        }
        // Within the length limit, each kind of nesting on its own.
        for source in [
            format!("{}1{} == 1", "(".repeat(65), ")".repeat(65)),
            format!("size({}1{}) > 0", "[".repeat(65), "]".repeat(65)),
            format!("{}true", "!".repeat(65)),
            format!("{}1 == 1", "- ".repeat(65)),
            format!("{}1", "true ? 1 : ".repeat(65)),
            format!("size({}1{}) > 0", "{1: ".repeat(65), "}".repeat(65)),
        ] {
            let e = compile_on_small_stack(source.clone()).unwrap_err();
            assert!(
                matches!(e, CompileError::TooDeep { limit: 64, .. }),
                "{source}: {e}"
            );
            assert!(e.to_string().contains("more than 64 levels"), "{e}");
        }
        // At the limit it compiles, and runs.
        let at_limit = format!("{}1{} == 1", "(".repeat(64), ")".repeat(64));
        let v = vars(&[]);
        assert_eq!(Expression::compile(&at_limit).unwrap().test(&v), Ok(true));
        let nots = format!("{}true", "!".repeat(64));
        assert_eq!(Expression::compile(&nots).unwrap().test(&v), Ok(true));
        // Long flat expressions within the length limit compile and run on a small stack.
        for source in [
            format!("{}1 == 1020", "1+".repeat(1019)),
            format!("{}1 == 1", "1*".repeat(1019)),
            format!("{}1", "1<".repeat(1022)),
            format!("{}true", "a||".repeat(681)),
            format!("a{} == 1", ".b".repeat(1020)),
            format!("a{} == 1", "[0]".repeat(680)),
            format!("{}1{}", "(1+".repeat(64), ")".repeat(64)) + &"+1".repeat(850),
        ] {
            assert!(source.len() <= MAX_EXPRESSION_BYTES, "{}", source.len());
            let run = std::thread::Builder::new()
                .stack_size(2 * 1024 * 1024)
                .spawn(move || {
                    let e = Expression::compile(&source).map_err(|e| e.to_string())?;
                    // Evaluating may fail (no such variable); it must not overflow.
                    let _ = e.test(&vars(&[]));
                    Ok::<_, String>(())
                })
                .unwrap()
                .join();
            run.expect("no stack overflow").unwrap();
        }
    }

    #[test]
    fn nesting_is_counted_where_it_nests() {
        let ok = |s: &str| check_limits(s, MAX_EXPRESSION_BYTES, 3);
        // Siblings do not add up; closed brackets and finished runs no longer count.
        assert_eq!(ok("(1) + (2) + ((3)) + [(1), (2)]"), Ok(()));
        assert_eq!(ok("!a && !b && --c > 0 && a != b"), Ok(()));
        assert_eq!(ok("(a ? b : c) + (a ? b : c) + (a ? b : c)"), Ok(()));
        // Brackets, conditionals and unary runs add up.
        assert!(ok("((!!a))").is_err());
        assert!(ok("(a ? (b) : e)").is_ok());
        assert!(ok("(a ? (b ? c : d) : e)").is_err());
        assert!(ok("a ? b : c ? d : e ? f : g ? h : i").is_err());
        // Brackets and operators inside strings and comments do not count.
        assert_eq!(ok(r#"attrs["(((("] == '[[[[' && a == """)))"""#), Ok(()));
        assert_eq!(ok("a == \"\\\"((((\" // ((((\n && b"), Ok(()));
        assert_eq!(ok(r#"r"\" == "\\" && b == r'(((('"#), Ok(()));
        // The position is where the limit is passed.
        assert_eq!(
            ok("a &&\n  ((((b))))"),
            Err(CompileError::TooDeep {
                limit: 3,
                line: 2,
                column: 6
            })
        );
        assert_eq!(
            check_limits("1 + 1", 4, 64),
            Err(CompileError::TooLong { size: 5, limit: 4 })
        );
    }

    #[test]
    fn errors_say_what_and_where() {
        let err = Expression::compile("classify.label == ").unwrap_err();
        assert!(
            matches!(&err, CompileError::Syntax(m) if m.contains("CEL syntax error at 1:")),
            "{err}"
        );
        assert_eq!(Expression::compile("  ").unwrap_err(), CompileError::Empty);
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
