//! YAML loading that keeps line/column marks, so every error can be located.
//!
//! `serde`-based YAML crates forget where a value came from. [`load`] drives the
//! `yaml-rust2` event parser instead and builds a small tree of [`Marked`] nodes, each with
//! the 1-based line and column where it starts.
//!
//! What the loader does beyond plain parsing:
//! - plain (unquoted) scalars are resolved with the YAML 1.2 core schema (`null`/`~`/empty,
//!   `true`/`false`, decimal/`0x`/`0o` integers, floats, `.inf`, `.nan`); quoted and block
//!   scalars are always strings;
//! - the core tags `!!str`, `!!int`, `!!float`, `!!bool`, `!!null`, `!!map`, `!!seq` are
//!   honoured; any other tag is reported and ignored;
//! - anchors and aliases are expanded (an alias is a copy of its anchored node, located at
//!   the alias); `<<` merge keys merge a mapping (or a list of mappings) into a mapping,
//!   explicit keys winning;
//! - duplicate keys in a mapping are reported (the first one is kept);
//! - only one document is read; a second one is reported and ignored.
//!
//! Syntax errors stop loading ([`YamlError`] from [`load`]); the other problems above are
//! collected in [`Loaded::problems`] and loading goes on.

use std::collections::{HashMap, HashSet};

use yaml_rust2::parser::{Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};
use yaml_rust2::{Event, ScanError};

/// Most nodes a document may expand to (guards against alias "billion laughs" bombs).
pub const MAX_NODES: usize = 250_000;

/// The tag prefix `!!` stands for.
const CORE_TAG_HANDLE: &str = "tag:yaml.org,2002:";

/// The value of a [`Marked`] node.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `null`, `~` or nothing.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A float (also integers too large for `i64`).
    Float(f64),
    /// A string: a quoted, block or unresolved plain scalar.
    String(String),
    /// A sequence.
    Seq(Vec<Marked>),
    /// A mapping, entries in file order (keys are unique).
    Map(Vec<(Marked, Marked)>),
}

/// A YAML node with the place it starts in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct Marked {
    /// The value.
    pub kind: Kind,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

/// A located problem found while loading YAML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// A loaded document and the non-fatal problems found in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    /// The document's root node (`Null` at 1:1 for an empty file).
    pub root: Marked,
    /// Duplicate keys, unsupported tags, extra documents, ... (loading went on).
    pub problems: Vec<YamlError>,
}

/// Parses one YAML document into a [`Marked`] tree.
///
/// Returns the syntax error (with its position) if the text is not YAML; other problems are
/// in [`Loaded::problems`].
pub fn load(text: &str) -> Result<Loaded, YamlError> {
    let mut parser = Parser::new_from_str(text);
    let mut builder = Builder::default();
    let mut documents = 0usize;
    loop {
        let (event, marker) = parser.next_token().map_err(scan_error)?;
        match event {
            Event::StreamEnd => break,
            Event::DocumentStart if documents > 0 => {
                builder.problem(
                    mark(marker),
                    "only one YAML document is allowed in a flow file; the rest is ignored",
                );
                break;
            }
            Event::DocumentStart => documents += 1,
            other => builder.event(other, marker)?,
        }
    }
    let root = builder.root.take().unwrap_or(Marked {
        kind: Kind::Null,
        line: 1,
        column: 1,
    });
    Ok(Loaded {
        root,
        problems: builder.problems,
    })
}

fn scan_error(e: ScanError) -> YamlError {
    let (line, column) = mark(*e.marker());
    YamlError {
        line,
        column,
        message: format!("invalid YAML: {}", e.info()),
    }
}

/// 1-based (line, column) of a parser marker (whose column is 0-based).
fn mark(marker: Marker) -> (usize, usize) {
    (marker.line().max(1), marker.col() + 1)
}

impl Marked {
    /// A node of `kind` at `(line, column)`.
    pub fn new(kind: Kind, (line, column): (usize, usize)) -> Self {
        Marked { kind, line, column }
    }

    /// 1-based (line, column).
    pub fn position(&self) -> (usize, usize) {
        (self.line, self.column)
    }

    /// The value of `key` when this is a mapping with that (string) key.
    pub fn get(&self, key: &str) -> Option<&Marked> {
        self.entry(key).map(|(_, value)| value)
    }

    /// The key node and value of `key` when this is a mapping with that key.
    pub fn entry(&self, key: &str) -> Option<(&Marked, &Marked)> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.key_string() == key)
            .map(|(k, v)| (k, v))
    }

    /// The entries when this is a mapping.
    pub fn as_map(&self) -> Option<&[(Marked, Marked)]> {
        match &self.kind {
            Kind::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The items when this is a sequence.
    pub fn as_seq(&self) -> Option<&[Marked]> {
        match &self.kind {
            Kind::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The text when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::String(s) => Some(s),
            _ => None,
        }
    }

    /// The value when this is an integer.
    pub fn as_i64(&self) -> Option<i64> {
        match self.kind {
            Kind::Int(i) => Some(i),
            _ => None,
        }
    }

    /// The value when this is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match self.kind {
            Kind::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// True for `null`.
    pub fn is_null(&self) -> bool {
        self.kind == Kind::Null
    }

    /// What this node is, for messages: "a string", "a mapping", ...
    pub fn type_name(&self) -> &'static str {
        match self.kind {
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Int(_) => "an integer",
            Kind::Float(_) => "a float",
            Kind::String(_) => "a string",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    /// This node as a JSON map key: strings as they are, other scalars as written in JSON,
    /// collections as compact JSON.
    pub fn key_string(&self) -> String {
        match &self.kind {
            Kind::String(s) => s.clone(),
            _ => self.to_json().to_string(),
        }
    }

    /// Converts to JSON (non-finite floats become `null`; keys become [`Marked::key_string`]).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value;
        match &self.kind {
            Kind::Null => Value::Null,
            Kind::Bool(b) => Value::Bool(*b),
            Kind::Int(i) => Value::from(*i),
            Kind::Float(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
            Kind::String(s) => Value::String(s.clone()),
            Kind::Seq(items) => Value::Array(items.iter().map(Marked::to_json).collect()),
            Kind::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.key_string(), v.to_json()))
                    .collect(),
            ),
        }
    }

    /// The node a `serde_path_to_error`-style path (`a.b[2].c`, `""` for this node) points
    /// at: the key node for a mapping entry, the item for a list index. Where the path goes
    /// beyond what exists, the deepest node found is returned.
    pub fn locate(&self, path: &str) -> &Marked {
        let mut here = self;
        let mut found = self;
        for step in path_steps(path) {
            let next = match step {
                Step::Key(key) => here.entry(key),
                Step::Index(i) => here.as_seq().and_then(|items| items.get(i)).map(|v| (v, v)),
            };
            let Some((key, value)) = next else {
                return here;
            };
            found = key;
            here = value;
        }
        found
    }
}

/// One step of a dotted settings path.
#[derive(Debug, PartialEq)]
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// Splits `a.b[2].c` into steps; stops at the first unparseable or unknown (`?`) step.
fn path_steps(path: &str) -> Vec<Step<'_>> {
    let mut steps = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, mut rest) = part.split_at(part.find('[').unwrap_or(part.len()));
        if key == "?" {
            return steps;
        }
        if !key.is_empty() {
            steps.push(Step::Key(key));
        }
        while let Some(inner) = rest.strip_prefix('[') {
            let Some(end) = inner.find(']') else {
                return steps;
            };
            let Ok(index) = inner[..end].parse() else {
                return steps;
            };
            steps.push(Step::Index(index));
            rest = &inner[end + 1..];
        }
    }
    steps
}

/// How a finished node relates to its parent mapping.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Origin {
    /// A plain `<<` key.
    MergeKey,
    /// An empty plain scalar (its parser mark is unreliable).
    Empty,
    /// Anything else.
    Other,
}

/// A mapping key waiting for its value.
#[derive(Debug)]
enum PendingKey {
    Key(Marked),
    Merge,
}

/// A collection being built.
#[derive(Debug)]
enum Frame {
    Seq {
        items: Vec<Marked>,
        anchor: usize,
        at: (usize, usize),
    },
    Map {
        entries: Vec<(Marked, Marked)>,
        key: Option<PendingKey>,
        merges: Vec<Marked>,
        first_key: Option<(usize, usize)>,
        anchor: usize,
        at: (usize, usize),
    },
}

/// An anchored node: `None` while it is still being built.
#[derive(Debug)]
struct Anchor {
    node: Option<Marked>,
    size: usize,
}

/// Builds the tree from parser events.
#[derive(Debug, Default)]
struct Builder {
    stack: Vec<Frame>,
    anchors: HashMap<usize, Anchor>,
    problems: Vec<YamlError>,
    nodes: usize,
    root: Option<Marked>,
}

impl Builder {
    fn problem(&mut self, (line, column): (usize, usize), message: impl Into<String>) {
        self.problems.push(YamlError {
            line,
            column,
            message: message.into(),
        });
    }

    fn count(&mut self, nodes: usize, at: (usize, usize)) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(YamlError {
                line: at.0,
                column: at.1,
                message: format!(
                    "the document expands to more than {MAX_NODES} nodes (alias bomb?)"
                ),
            });
        }
        Ok(())
    }

    fn event(&mut self, event: Event, marker: Marker) -> Result<(), YamlError> {
        let at = mark(marker);
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                self.count(1, at)?;
                let origin = scalar_origin(&value, style, tag.as_ref(), anchor);
                let node = Marked::new(self.scalar(value, style, tag.as_ref(), at), at);
                if anchor != 0 {
                    self.set_anchor(anchor, &node);
                }
                self.finish(node, origin);
            }
            Event::SequenceStart(anchor, tag) => {
                self.count(1, at)?;
                self.check_collection_tag(tag.as_ref(), "seq", at);
                self.start_anchor(anchor);
                self.stack.push(Frame::Seq {
                    items: Vec::new(),
                    anchor,
                    at,
                });
            }
            Event::MappingStart(anchor, tag) => {
                self.count(1, at)?;
                self.check_collection_tag(tag.as_ref(), "map", at);
                self.start_anchor(anchor);
                self.stack.push(Frame::Map {
                    entries: Vec::new(),
                    key: None,
                    merges: Vec::new(),
                    first_key: None,
                    anchor,
                    at,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => self.end_collection(),
            Event::Alias(id) => self.alias(id, at)?,
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
        Ok(())
    }

    fn start_anchor(&mut self, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(
                anchor,
                Anchor {
                    node: None,
                    size: 0,
                },
            );
        }
    }

    fn set_anchor(&mut self, anchor: usize, node: &Marked) {
        let size = node_count(node);
        self.anchors.insert(
            anchor,
            Anchor {
                node: Some(node.clone()),
                size,
            },
        );
    }

    fn alias(&mut self, id: usize, at: (usize, usize)) -> Result<(), YamlError> {
        let (node, size) = match self.anchors.get(&id) {
            Some(Anchor {
                node: Some(node),
                size,
            }) => (node.clone(), *size),
            _ => {
                self.problem(at, "an alias may not refer to a node that contains it");
                (Marked::new(Kind::Null, at), 1)
            }
        };
        self.count(size, at)?;
        let node = Marked {
            line: at.0,
            column: at.1,
            ..node
        };
        self.finish(node, Origin::Other);
        Ok(())
    }

    fn scalar(
        &mut self,
        value: String,
        style: TScalarStyle,
        tag: Option<&Tag>,
        at: (usize, usize),
    ) -> Kind {
        let Some(tag) = tag else {
            return if style == TScalarStyle::Plain {
                resolve_plain(value)
            } else {
                Kind::String(value)
            };
        };
        if tag.handle == "!" && tag.suffix.is_empty() {
            return Kind::String(value);
        }
        if tag.handle != CORE_TAG_HANDLE {
            self.problem(
                at,
                format!("unsupported tag `{}{}`", tag.handle, tag.suffix),
            );
            return resolve_plain(value);
        }
        match resolve_tagged(&tag.suffix, &value) {
            Ok(kind) => kind,
            Err(message) => {
                self.problem(at, message);
                Kind::String(value)
            }
        }
    }

    fn check_collection_tag(&mut self, tag: Option<&Tag>, expected: &str, at: (usize, usize)) {
        if let Some(tag) = tag
            && !(tag.handle == CORE_TAG_HANDLE && tag.suffix == expected)
            && !(tag.handle == "!" && tag.suffix.is_empty())
        {
            let shown = display_tag(tag);
            self.problem(at, format!("unsupported tag `{shown}`"));
        }
    }

    fn end_collection(&mut self) {
        let Some(frame) = self.stack.pop() else {
            return;
        };
        let (node, anchor) = match frame {
            Frame::Seq { items, anchor, at } => (Marked::new(Kind::Seq(items), at), anchor),
            Frame::Map {
                entries,
                merges,
                first_key,
                anchor,
                at,
                ..
            } => {
                let entries = self.merge(entries, merges);
                // Block mappings are marked after their first key: use the key instead.
                let at = first_key.filter(|k| *k < at).unwrap_or(at);
                (Marked::new(Kind::Map(entries), at), anchor)
            }
        };
        if anchor != 0 {
            self.set_anchor(anchor, &node);
        }
        self.finish(node, Origin::Other);
    }

    /// Adds merged entries whose keys are not already present (earlier sources win).
    fn merge(
        &mut self,
        mut entries: Vec<(Marked, Marked)>,
        merges: Vec<Marked>,
    ) -> Vec<(Marked, Marked)> {
        let mut seen: HashSet<String> = entries.iter().map(|(k, _)| k.key_string()).collect();
        for source in merges {
            let maps = match source.kind {
                Kind::Map(_) => vec![source],
                Kind::Seq(items) if items.iter().all(|i| i.as_map().is_some()) => items,
                _ => {
                    self.problem(
                        source.position(),
                        "a `<<` merge key needs a mapping or a list of mappings",
                    );
                    continue;
                }
            };
            for map in maps {
                if let Kind::Map(merged) = map.kind {
                    for (k, v) in merged {
                        if seen.insert(k.key_string()) {
                            entries.push((k, v));
                        }
                    }
                }
            }
        }
        entries
    }

    /// Hands a finished node to its parent (or makes it the root).
    fn finish(&mut self, mut node: Marked, origin: Origin) {
        let problem = match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                None
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                None
            }
            Some(Frame::Map {
                entries,
                key,
                merges,
                first_key,
                ..
            }) => match key.take() {
                None => {
                    first_key.get_or_insert(node.position());
                    *key = Some(if origin == Origin::MergeKey {
                        PendingKey::Merge
                    } else {
                        PendingKey::Key(node)
                    });
                    None
                }
                Some(PendingKey::Merge) => {
                    merges.push(node);
                    None
                }
                Some(PendingKey::Key(k)) => {
                    if origin == Origin::Empty {
                        (node.line, node.column) = k.position();
                    }
                    let name = k.key_string();
                    match entries.iter().find(|(e, _)| e.key_string() == name) {
                        Some((first, _)) => Some((
                            k.position(),
                            format!("duplicate key `{name}` (first at line {})", first.line),
                        )),
                        None => {
                            entries.push((k, node));
                            None
                        }
                    }
                }
            },
        };
        if let Some((at, message)) = problem {
            self.problem(at, message);
        }
    }
}

fn scalar_origin(value: &str, style: TScalarStyle, tag: Option<&Tag>, anchor: usize) -> Origin {
    if style != TScalarStyle::Plain || tag.is_some() {
        Origin::Other
    } else if value == "<<" {
        Origin::MergeKey
    } else if value.is_empty() && anchor == 0 {
        Origin::Empty
    } else {
        Origin::Other
    }
}

fn display_tag(tag: &Tag) -> String {
    if tag.handle == CORE_TAG_HANDLE {
        format!("!!{}", tag.suffix)
    } else {
        format!("{}{}", tag.handle, tag.suffix)
    }
}

fn node_count(node: &Marked) -> usize {
    1 + match &node.kind {
        Kind::Seq(items) => items.iter().map(node_count).sum(),
        Kind::Map(entries) => entries
            .iter()
            .map(|(k, v)| node_count(k) + node_count(v))
            .sum(),
        _ => 0,
    }
}

/// Resolves a plain scalar with the YAML 1.2 core schema.
pub fn resolve_plain(value: String) -> Kind {
    if let Some(kind) = resolve_null_bool(&value) {
        return kind;
    }
    if let Some(kind) = resolve_int(&value) {
        return kind;
    }
    match resolve_float(&value) {
        Some(f) => Kind::Float(f),
        None => Kind::String(value),
    }
}

fn resolve_null_bool(value: &str) -> Option<Kind> {
    match value {
        "" | "~" | "null" | "Null" | "NULL" => Some(Kind::Null),
        "true" | "True" | "TRUE" => Some(Kind::Bool(true)),
        "false" | "False" | "FALSE" => Some(Kind::Bool(false)),
        _ => None,
    }
}

/// Core-schema integers: `[-+]?[0-9]+`, `0o[0-7]+`, `0x[0-9a-fA-F]+`. Decimal integers too
/// large for `i64` become floats.
fn resolve_int(value: &str) -> Option<Kind> {
    if let Some(octal) = value.strip_prefix("0o") {
        return radix_int(octal, 8);
    }
    if let Some(hex) = value.strip_prefix("0x") {
        return radix_int(hex, 16);
    }
    let digits = value.strip_prefix(['-', '+']).unwrap_or(value);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match value.parse::<i64>() {
        Ok(i) => Some(Kind::Int(i)),
        Err(_) => value.parse::<f64>().ok().map(Kind::Float),
    }
}

fn radix_int(digits: &str, radix: u32) -> Option<Kind> {
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    i64::from_str_radix(digits, radix).ok().map(Kind::Int)
}

/// Core-schema floats: `[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?`, `.inf`, `.nan`.
fn resolve_float(value: &str) -> Option<f64> {
    let unsigned = value.strip_prefix(['-', '+']).unwrap_or(value);
    let negative = value.starts_with('-');
    match unsigned {
        ".inf" | ".Inf" | ".INF" => {
            return Some(if negative {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            });
        }
        ".nan" | ".NaN" | ".NAN" if unsigned.len() == value.len() => return Some(f64::NAN),
        _ => {}
    }
    if !is_core_float(unsigned) {
        return None;
    }
    value.parse().ok()
}

fn is_core_float(unsigned: &str) -> bool {
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(i) => (&unsigned[..i], Some(&unsigned[i + 1..])),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some((int, frac)) => {
            all_digits(int) && all_digits(frac) && (!int.is_empty() || !frac.is_empty())
        }
        None => !mantissa.is_empty() && all_digits(mantissa),
    };
    let exponent_ok = exponent.is_none_or(|e| {
        let digits = e.strip_prefix(['-', '+']).unwrap_or(e);
        !digits.is_empty() && all_digits(digits)
    });
    mantissa_ok && exponent_ok
}

/// Resolves a scalar tagged `!!suffix`.
fn resolve_tagged(suffix: &str, value: &str) -> Result<Kind, String> {
    let bad = || format!("`{value}` is not a valid !!{suffix}");
    match suffix {
        "str" => Ok(Kind::String(value.to_string())),
        "null" => match resolve_null_bool(value) {
            Some(Kind::Null) => Ok(Kind::Null),
            _ => Err(bad()),
        },
        "bool" => match resolve_null_bool(value) {
            Some(b @ Kind::Bool(_)) => Ok(b),
            _ => Err(bad()),
        },
        "int" => match resolve_int(value) {
            Some(i @ Kind::Int(_)) => Ok(i),
            _ => Err(bad()),
        },
        "float" => match resolve_int(value) {
            Some(Kind::Int(i)) => Ok(Kind::Float(i as f64)),
            _ => resolve_float(value).map(Kind::Float).ok_or_else(bad),
        },
        other => Err(format!("unsupported tag `!!{other}` on a scalar")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(text: &str) -> Marked {
        let loaded = load(text).expect("valid YAML");
        assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
        loaded.root
    }

    #[test]
    fn plain_scalars_use_the_core_schema() {
        let cases = [
            ("~", Kind::Null),
            ("null", Kind::Null),
            ("TRUE", Kind::Bool(true)),
            ("false", Kind::Bool(false)),
            ("42", Kind::Int(42)),
            ("-7", Kind::Int(-7)),
            ("0x1F", Kind::Int(31)),
            ("0o17", Kind::Int(15)),
            ("1.5", Kind::Float(1.5)),
            ("-.5e1", Kind::Float(-5.0)),
            ("1e3", Kind::Float(1000.0)),
            ("-.inf", Kind::Float(f64::NEG_INFINITY)),
            ("yes", Kind::String("yes".into())),
            ("1 GB", Kind::String("1 GB".into())),
            ("inf", Kind::String("inf".into())),
            ("0x", Kind::String("0x".into())),
            ("1.2.3", Kind::String("1.2.3".into())),
            ("99999999999999999999", Kind::Float(1e20)),
        ];
        for (text, expected) in cases {
            assert_eq!(resolve_plain(text.to_string()), expected, "{text}");
        }
        assert!(matches!(resolve_plain(".nan".into()), Kind::Float(f) if f.is_nan()));
    }

    #[test]
    fn quoted_and_tagged_scalars() {
        let r = root("a: \"12\"\nb: '~'\nc: !!str true\nd: !!float 3\ne: |\n  x\n");
        assert_eq!(
            r.get("a").map(|m| &m.kind),
            Some(&Kind::String("12".into()))
        );
        assert_eq!(r.get("b").map(|m| &m.kind), Some(&Kind::String("~".into())));
        assert_eq!(
            r.get("c").map(|m| &m.kind),
            Some(&Kind::String("true".into()))
        );
        assert_eq!(r.get("d").map(|m| &m.kind), Some(&Kind::Float(3.0)));
        assert_eq!(
            r.get("e").map(|m| &m.kind),
            Some(&Kind::String("x\n".into()))
        );
    }

    #[test]
    fn nodes_are_marked_one_based() {
        let r = root("name: demo\nnodes:\n  - id: a\n    settings: {t: 1}\n");
        assert_eq!(r.position(), (1, 1));
        let nodes = r.get("nodes").expect("nodes");
        assert_eq!(nodes.position(), (3, 3));
        let node = &nodes.as_seq().expect("seq")[0];
        assert_eq!(node.position(), (3, 5));
        assert_eq!(node.get("id").map(Marked::position), Some((3, 9)));
        let settings = node.get("settings").expect("settings");
        assert_eq!(settings.position(), (4, 15));
        assert_eq!(settings.get("t").map(Marked::position), Some((4, 19)));
    }

    #[test]
    fn empty_values_are_located_at_their_key() {
        let r = root("a: 1\nb:\n");
        let (k, v) = r.entry("b").expect("b");
        assert!(v.is_null());
        assert_eq!(v.position(), k.position());
    }

    #[test]
    fn syntax_errors_are_located() {
        let e = load("a: [1, 2\nb: 3\n").expect_err("invalid");
        assert_eq!((e.line, e.column), (2, 2));
        assert!(e.message.starts_with("invalid YAML"), "{}", e.message);
        let e = load("a:\n  b: 1\n c: 2\n").expect_err("invalid");
        assert_eq!(e.line, 3);
    }

    #[test]
    fn duplicate_keys_are_reported_and_the_first_kept() {
        let loaded = load("a: 1\nb: 2\na: 3\n").expect("valid");
        assert_eq!(loaded.problems.len(), 1);
        assert_eq!(loaded.problems[0].line, 3);
        assert!(loaded.problems[0].message.contains("duplicate key `a`"));
        assert_eq!(loaded.root.get("a").and_then(Marked::as_i64), Some(1));
    }

    #[test]
    fn aliases_and_merge_keys_expand() {
        let r = root("base: &b {x: 1, y: 2}\ncopy: *b\nmerged:\n  <<: *b\n  y: 3\n");
        let copy = r.get("copy").expect("copy");
        assert_eq!(copy.position(), (2, 7));
        assert_eq!(copy.to_json(), serde_json::json!({"x": 1, "y": 2}));
        let merged = r.get("merged").expect("merged");
        assert_eq!(merged.to_json(), serde_json::json!({"x": 1, "y": 3}));
        assert_eq!(merged.position(), (4, 3));
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let e = load(&text).expect_err("bomb");
        assert!(e.message.contains("more than"), "{}", e.message);
    }

    #[test]
    fn unsupported_tags_and_extra_documents_are_problems() {
        let loaded = load("a: !foo 1\nb: !!int x\n---\nc: 1\n").expect("valid");
        let lines: Vec<_> = loaded.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![1, 2, 3]);
        assert_eq!(loaded.root.get("a").and_then(Marked::as_i64), Some(1));
    }

    #[test]
    fn empty_document_is_null() {
        assert!(root("").is_null());
        assert!(root("# only a comment\n").is_null());
    }

    #[test]
    fn locate_follows_settings_paths() {
        let r = root("s:\n  a: 1\n  inner:\n    b: [10, {c: 2}]\n");
        let s = r.get("s").expect("s");
        assert_eq!(s.locate("a").position(), (2, 3));
        assert_eq!(s.locate("inner").position(), (3, 3));
        assert_eq!(s.locate("inner.b").position(), (4, 5));
        assert_eq!(s.locate("inner.b[0]").position(), (4, 9));
        assert_eq!(s.locate("inner.b[1].c").position(), (4, 14));
        assert_eq!(s.locate("inner.zzz").position(), (4, 5));
        assert_eq!(s.locate("").position(), (2, 3));
        assert_eq!(s.locate("?.a").position(), (2, 3));
    }

    #[test]
    fn to_json_converts_everything() {
        let r = root("a: [1, 2.5, true, ~, x]\n1: y\n");
        assert_eq!(
            r.to_json(),
            serde_json::json!({"a": [1, 2.5, true, null, "x"], "1": "y"})
        );
    }
}
