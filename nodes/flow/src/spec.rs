//! The flow file's shape: what users write.
//!
//! [`read_flow`] walks a [`Marked`] YAML tree and checks everything that can be checked
//! without the node registry: shapes and types, unknown and missing keys, ids, durations,
//! sizes, prioritizers, `from: node.relationship`. It never stops at the first problem: a
//! broken value is reported and left out (or replaced by its default), and reading goes on.
//! [`crate::compile`] then checks the result against the registry and as a graph.
//!
//! The format is documented in `flows/README.md`.

use std::time::Duration;

use crate::model::{
    DEFAULT_BACK_PRESSURE_BYTES, DEFAULT_BACK_PRESSURE_OBJECTS, Prioritizer, RetryPolicy,
};
use crate::yaml::{Kind, Marked};

/// Keys allowed at the top level of a flow file.
pub const FLOW_KEYS: &[&str] = &["name", "description", "nodes", "connections"];
/// Keys allowed in a node.
pub const NODE_KEYS: &[&str] = &[
    "id",
    "type",
    "settings",
    "endpoint",
    "endpoints",
    "concurrency",
    "auto_terminate",
    "retry",
];
/// Keys allowed in a connection.
pub const CONNECTION_KEYS: &[&str] = &[
    "from",
    "to",
    "prioritizer",
    "back_pressure",
    "expiration",
    "allow_cycle",
];
/// Keys allowed in a node's `retry`.
pub const RETRY_KEYS: &[&str] = &["max_attempts", "initial_backoff", "max_backoff"];
/// Keys allowed in a connection's `back_pressure`.
pub const BACK_PRESSURE_KEYS: &[&str] = &["objects", "bytes"];
/// Prioritizer names, as written in flow files.
pub const PRIORITIZERS: &[&str] = &["fifo", "oldest-first", "newest-first", "priority-attribute"];

/// A located problem with the flow's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Where in the flow structure, e.g. `nodes[2].concurrency`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A value with the place it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Spanned<T> {
    /// The value.
    pub value: T,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl<T> Spanned<T> {
    fn at(value: T, node: &Marked) -> Self {
        Spanned {
            value,
            line: node.line,
            column: node.column,
        }
    }
}

/// A whole flow file as written (broken parts left out).
#[derive(Debug, Clone)]
pub struct FlowSpec<'a> {
    /// `name`, when given.
    pub name: Option<String>,
    /// `description`, when given.
    pub description: Option<String>,
    /// `nodes`, in file order (every item that is a mapping).
    pub nodes: Vec<NodeSpec<'a>>,
    /// `connections`, in file order (every item that is a mapping).
    pub connections: Vec<ConnectionSpec>,
}

/// One item of `nodes`.
#[derive(Debug, Clone)]
pub struct NodeSpec<'a> {
    /// Path for messages: `nodes[2]`.
    pub path: String,
    /// 1-based line of the node's mapping.
    pub line: usize,
    /// 1-based column of the node's mapping.
    pub column: usize,
    /// `id`, when it is a string (an invalid id is reported but kept, to avoid follow-up
    /// errors in connections).
    pub id: Option<Spanned<String>>,
    /// `type`, when it is a string.
    pub node_type: Option<Spanned<String>>,
    /// `settings` as written.
    pub settings: Settings<'a>,
    /// `endpoint` or `endpoints` (empty: in-process).
    pub endpoints: Vec<String>,
    /// True when `endpoint` or `endpoints` was given (even if invalid).
    pub remote: bool,
    /// `concurrency` (default 1).
    pub concurrency: usize,
    /// `auto_terminate` entries.
    pub auto_terminate: Vec<Spanned<String>>,
    /// `retry`, defaults applied.
    pub retry: RetryPolicy,
}

/// A node's `settings` as written.
#[derive(Debug, Clone, Copy)]
pub enum Settings<'a> {
    /// Not given (or null).
    Absent,
    /// A mapping.
    Given(&'a Marked),
    /// Something else (already reported).
    Invalid,
}

/// The `from` of a connection: `node.relationship`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FromSpec {
    /// Node id (before the first dot).
    pub node: String,
    /// Relationship (after the first dot).
    pub relationship: String,
}

/// One item of `connections`.
#[derive(Debug, Clone)]
pub struct ConnectionSpec {
    /// Path for messages: `connections[0]`.
    pub path: String,
    /// 1-based line of the connection's mapping.
    pub line: usize,
    /// 1-based column of the connection's mapping.
    pub column: usize,
    /// `from`, when valid.
    pub from: Option<Spanned<FromSpec>>,
    /// `to`, when a string.
    pub to: Option<Spanned<String>>,
    /// `prioritizer` (default FIFO).
    pub prioritizer: Prioritizer,
    /// `back_pressure.objects` (default 10000).
    pub back_pressure_objects: usize,
    /// `back_pressure.bytes` (default 1 GB).
    pub back_pressure_bytes: u64,
    /// `expiration`; `None` for never (absent or zero).
    pub expiration: Option<Duration>,
    /// `allow_cycle` (default false).
    pub allow_cycle: bool,
}

/// Reads a flow from its YAML root, returning what could be read and every problem found.
pub fn read_flow(root: &Marked) -> (FlowSpec<'_>, Vec<Problem>) {
    let mut reader = Reader::default();
    let flow = reader.flow(root);
    (flow, reader.problems)
}

/// True for a valid node id: `[A-Za-z0-9_-]+`.
pub fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses a humantime duration (`100ms`, `5s`, `5 min`, `1h 30m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration `{text}`: {e} (expected e.g. `100ms`, `5s`, `5 min`)")
    })
}

/// Parses a data size: `1024`, `512 MB`, `1 GiB`, `1.5 GB`.
///
/// Units (case-insensitive): `B`, `KB`/`MB`/`GB`/`TB` (powers of 1000) and
/// `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024); no unit means bytes. The result must be a
/// whole number of bytes that fits `u64`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let bad = |why: &str| format!("invalid size `{text}`: {why} (expected e.g. `512 MB`, `1 GiB`)");
    let trimmed = text.trim();
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let multiplier = unit_multiplier(unit.trim()).ok_or_else(|| bad("unknown unit"))?;
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(bad("not a number"));
    }
    let digits: u128 = format!("{int}{frac}")
        .parse()
        .map_err(|_| bad("number too large"))?;
    let scale = 10u128
        .checked_pow(u32::try_from(frac.len()).map_err(|_| bad("too many digits"))?)
        .ok_or_else(|| bad("too many digits"))?;
    let scaled = digits
        .checked_mul(u128::from(multiplier))
        .ok_or_else(|| bad("too large"))?;
    if scaled % scale != 0 {
        return Err(bad("not a whole number of bytes"));
    }
    u64::try_from(scaled / scale).map_err(|_| bad("too large"))
}

fn unit_multiplier(unit: &str) -> Option<u64> {
    let multiplier = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        _ => return None,
    };
    Some(multiplier)
}

/// Parses a prioritizer name.
pub fn parse_prioritizer(text: &str) -> Option<Prioritizer> {
    match text {
        "fifo" => Some(Prioritizer::Fifo),
        "oldest-first" => Some(Prioritizer::OldestFirst),
        "newest-first" => Some(Prioritizer::NewestFirst),
        "priority-attribute" => Some(Prioritizer::PriorityAttribute),
        _ => None,
    }
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn suggest<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting insertions, deletions, substitutions and swaps of adjacent
/// characters (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back, one back, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut current = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(before[j - 2] + 1);
            }
            current[j] = best;
        }
        before = std::mem::replace(&mut previous, current);
    }
    previous[b.len()]
}

/// ` (did you mean `x`?)` or nothing.
pub fn did_you_mean<'c>(word: &str, candidates: impl IntoIterator<Item = &'c str>) -> String {
    suggest(word, candidates)
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// The value of an optional key (null counts as absent).
fn optional<'m>(map: &'m Marked, key: &str) -> Option<&'m Marked> {
    map.get(key).filter(|v| !v.is_null())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Walks the tree, collecting problems.
#[derive(Debug, Default)]
struct Reader {
    /// Everything found so far, in reading order.
    problems: Vec<Problem>,
}

impl Reader {
    fn problem(&mut self, node: &Marked, path: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: node.line,
            column: node.column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn expected(&mut self, node: &Marked, path: &str, what: &str) {
        let found = node.type_name();
        self.problem(node, path, format!("expected {what}, found {found}"));
    }

    /// Checks that `node` is a mapping with only `allowed` keys.
    fn mapping<'m>(
        &mut self,
        node: &'m Marked,
        path: &str,
        allowed: &[&str],
    ) -> Option<&'m Marked> {
        let Some(entries) = node.as_map() else {
            self.expected(node, path, "a mapping");
            return None;
        };
        for (key, _) in entries {
            match key.as_str() {
                Some(k) if allowed.contains(&k) => {}
                Some(k) => {
                    let hint = did_you_mean(k, allowed.iter().copied());
                    let message = format!(
                        "unknown key `{k}`{hint}; allowed keys: {}",
                        allowed.join(", ")
                    );
                    self.problem(key, &join(path, k), message);
                }
                None => {
                    let k = key.key_string();
                    self.problem(key, &join(path, &k), format!("unknown key `{k}`"));
                }
            }
        }
        Some(node)
    }

    /// The value of a required key, or a problem located at the mapping.
    fn required<'m>(&mut self, map: &'m Marked, path: &str, key: &str) -> Option<&'m Marked> {
        match map.entry(key) {
            Some((_, value)) if !value.is_null() => Some(value),
            Some((k, _)) => {
                self.problem(k, &join(path, key), format!("`{key}` needs a value"));
                None
            }
            None => {
                self.problem(map, path, format!("missing required key `{key}`"));
                None
            }
        }
    }

    fn string(&mut self, node: &Marked, path: &str) -> Option<Spanned<String>> {
        match node.as_str() {
            Some(s) => Some(Spanned::at(s.to_string(), node)),
            None => {
                self.expected(node, path, "a string");
                None
            }
        }
    }

    fn non_empty_string(&mut self, node: &Marked, path: &str) -> Option<Spanned<String>> {
        let s = self.string(node, path)?;
        if s.value.trim().is_empty() {
            self.problem(node, path, "must not be empty");
            return None;
        }
        Some(s)
    }

    fn list<'m>(&mut self, node: &'m Marked, path: &str) -> &'m [Marked] {
        match node.as_seq() {
            Some(items) => items,
            None => {
                self.expected(node, path, "a list");
                &[]
            }
        }
    }

    /// An integer in `min..=u32::MAX as u64` style bounds.
    fn integer(&mut self, node: &Marked, path: &str, min: u64, max: u64) -> Option<u64> {
        let Some(value) = node.as_i64() else {
            self.expected(node, path, "an integer");
            return None;
        };
        match u64::try_from(value) {
            Ok(v) if (min..=max).contains(&v) => Some(v),
            _ if value < 0 || u64::try_from(value).is_ok_and(|v| v < min) => {
                self.problem(node, path, format!("must be at least {min}, found {value}"));
                None
            }
            _ => {
                self.problem(node, path, format!("must be at most {max}, found {value}"));
                None
            }
        }
    }

    fn boolean(&mut self, node: &Marked, path: &str) -> Option<bool> {
        let value = node.as_bool();
        if value.is_none() {
            self.expected(node, path, "`true` or `false`");
        }
        value
    }

    fn duration(&mut self, node: &Marked, path: &str) -> Option<Duration> {
        match &node.kind {
            Kind::Int(0) => Some(Duration::ZERO),
            Kind::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(message) => {
                    self.problem(node, path, message);
                    None
                }
            },
            Kind::Int(_) | Kind::Float(_) => {
                let message = "a duration needs a unit, e.g. `100ms`, `5s`, `5 min`";
                self.problem(node, path, message);
                None
            }
            _ => {
                self.expected(node, path, "a duration such as `5s`");
                None
            }
        }
    }

    fn bytes(&mut self, node: &Marked, path: &str) -> Option<u64> {
        let parsed = match &node.kind {
            Kind::Int(i) => u64::try_from(*i).map_err(|_| format!("must not be negative: {i}")),
            Kind::String(s) => parse_bytes(s),
            _ => Err(format!(
                "expected a size such as `512 MB` or a number of bytes, found {}",
                node.type_name()
            )),
        };
        match parsed {
            Ok(0) => {
                self.problem(node, path, "must be at least 1 byte");
                None
            }
            Ok(bytes) => Some(bytes),
            Err(message) => {
                self.problem(node, path, message);
                None
            }
        }
    }

    fn flow<'a>(&mut self, root: &'a Marked) -> FlowSpec<'a> {
        let mut flow = FlowSpec {
            name: None,
            description: None,
            nodes: Vec::new(),
            connections: Vec::new(),
        };
        if root.is_null() {
            self.problem(
                root,
                "",
                "the flow file is empty; expected a mapping with `nodes`",
            );
            return flow;
        }
        let Some(map) = self.mapping(root, "", FLOW_KEYS) else {
            return flow;
        };
        flow.name = self.optional_text(map, "name");
        flow.description = self.optional_text(map, "description");
        if let Some(nodes) = self.required(map, "", "nodes") {
            let items = self.list(nodes, "nodes");
            if items.is_empty() && nodes.as_seq().is_some() {
                self.problem(nodes, "nodes", "a flow needs at least one node");
            }
            for (i, item) in items.iter().enumerate() {
                if let Some(node) = self.node(item, &format!("nodes[{i}]")) {
                    flow.nodes.push(node);
                }
            }
        }
        if let Some(connections) = optional(map, "connections") {
            for (i, item) in self.list(connections, "connections").iter().enumerate() {
                if let Some(c) = self.connection(item, &format!("connections[{i}]")) {
                    flow.connections.push(c);
                }
            }
        }
        flow
    }

    fn optional_text(&mut self, map: &Marked, key: &str) -> Option<String> {
        let value = optional(map, key)?;
        self.non_empty_string(value, key).map(|s| s.value)
    }

    fn node<'a>(&mut self, item: &'a Marked, path: &str) -> Option<NodeSpec<'a>> {
        let map = self.mapping(item, path, NODE_KEYS)?;
        let id = self.node_id(map, path);
        let node_type = self
            .required(map, path, "type")
            .and_then(|t| self.non_empty_string(t, &join(path, "type")));
        let settings = self.settings(map, path);
        let (endpoints, remote) = self.endpoints(map, path);
        let concurrency = optional(map, "concurrency").map_or(Some(1), |c| {
            let max = u64::from(u16::MAX);
            self.integer(c, &join(path, "concurrency"), 1, max)
        });
        let auto_terminate = self.auto_terminate(map, path);
        let retry = self.retry(map, path);
        Some(NodeSpec {
            path: path.to_string(),
            line: map.line,
            column: map.column,
            id,
            node_type,
            settings,
            endpoints,
            remote,
            concurrency: concurrency
                .and_then(|c| usize::try_from(c).ok())
                .unwrap_or(1),
            auto_terminate,
            retry,
        })
    }

    fn node_id(&mut self, map: &Marked, path: &str) -> Option<Spanned<String>> {
        let node = self.required(map, path, "id")?;
        let id_path = join(path, "id");
        let id = self.string(node, &id_path)?;
        if !is_valid_id(&id.value) {
            let message = format!(
                "invalid node id `{}`: use letters, digits, `_` and `-` only",
                id.value
            );
            self.problem(node, &id_path, message);
        }
        Some(id)
    }

    fn settings<'a>(&mut self, map: &'a Marked, path: &str) -> Settings<'a> {
        let Some(settings) = optional(map, "settings") else {
            return Settings::Absent;
        };
        if settings.as_map().is_none() {
            self.expected(settings, &join(path, "settings"), "a mapping");
            return Settings::Invalid;
        }
        Settings::Given(settings)
    }

    /// `endpoint` / `endpoints`: the valid URLs, and whether either key was given.
    fn endpoints(&mut self, map: &Marked, path: &str) -> (Vec<String>, bool) {
        let one = optional(map, "endpoint");
        let many = optional(map, "endpoints");
        if let (Some(_), Some(m)) = (one, many) {
            let message = "give either `endpoint` or `endpoints`, not both";
            self.problem(m, &join(path, "endpoints"), message);
        }
        let mut urls = Vec::new();
        if let Some(one) = one {
            urls.extend(self.url(one, &join(path, "endpoint")));
        }
        if let Some(many) = many {
            let many_path = join(path, "endpoints");
            let items = self.list(many, &many_path);
            if items.is_empty() && many.as_seq().is_some() {
                self.problem(many, &many_path, "needs at least one endpoint");
            }
            for (i, item) in items.iter().enumerate() {
                urls.extend(self.url(item, &format!("{many_path}[{i}]")));
            }
        }
        (urls, one.is_some() || many.is_some())
    }

    fn url(&mut self, node: &Marked, path: &str) -> Option<String> {
        let url = self.non_empty_string(node, path)?.value;
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        if rest.is_none_or(str::is_empty) {
            let message = format!(
                "invalid endpoint `{url}`: expected an http:// or https:// URL, \
                 e.g. `http://127.0.0.1:50051`"
            );
            self.problem(node, path, message);
            return None;
        }
        Some(url)
    }

    fn auto_terminate(&mut self, map: &Marked, path: &str) -> Vec<Spanned<String>> {
        let Some(list) = optional(map, "auto_terminate") else {
            return Vec::new();
        };
        let list_path = join(path, "auto_terminate");
        let mut names: Vec<Spanned<String>> = Vec::new();
        for (i, item) in self.list(list, &list_path).iter().enumerate() {
            let item_path = format!("{list_path}[{i}]");
            let Some(name) = self.non_empty_string(item, &item_path) else {
                continue;
            };
            if names.iter().any(|n| n.value == name.value) {
                let message = format!("relationship `{}` is listed twice", name.value);
                self.problem(item, &item_path, message);
                continue;
            }
            names.push(name);
        }
        names
    }

    fn retry(&mut self, map: &Marked, path: &str) -> RetryPolicy {
        let mut retry = RetryPolicy::default();
        let Some(node) = optional(map, "retry") else {
            return retry;
        };
        let path = join(path, "retry");
        let Some(node) = self.mapping(node, &path, RETRY_KEYS) else {
            return retry;
        };
        if let Some(v) = optional(node, "max_attempts") {
            let max = u64::from(u32::MAX);
            let attempts = self.integer(v, &join(&path, "max_attempts"), 1, max);
            if let Some(a) = attempts.and_then(|a| u32::try_from(a).ok()) {
                retry.max_attempts = Some(a);
            }
        }
        let initial = optional(node, "initial_backoff");
        if let Some(d) = initial.and_then(|v| self.duration(v, &join(&path, "initial_backoff"))) {
            retry.initial_backoff = d;
        }
        let max = optional(node, "max_backoff");
        if let Some(d) = max.and_then(|v| self.duration(v, &join(&path, "max_backoff"))) {
            retry.max_backoff = d;
        }
        if retry.initial_backoff > retry.max_backoff {
            let message = format!(
                "initial_backoff ({}) exceeds max_backoff ({})",
                humantime::format_duration(retry.initial_backoff),
                humantime::format_duration(retry.max_backoff)
            );
            self.problem(node, &path, message);
        }
        retry
    }

    fn connection(&mut self, item: &Marked, path: &str) -> Option<ConnectionSpec> {
        let map = self.mapping(item, path, CONNECTION_KEYS)?;
        let from = self.from(map, path);
        let to = self
            .required(map, path, "to")
            .and_then(|t| self.non_empty_string(t, &join(path, "to")));
        let prioritizer = self.prioritizer(map, path);
        let (objects, bytes) = self.back_pressure(map, path);
        let expiration = optional(map, "expiration")
            .and_then(|e| self.duration(e, &join(path, "expiration")))
            .filter(|d| !d.is_zero());
        let allow_cycle = optional(map, "allow_cycle")
            .and_then(|a| self.boolean(a, &join(path, "allow_cycle")))
            .unwrap_or(false);
        Some(ConnectionSpec {
            path: path.to_string(),
            line: map.line,
            column: map.column,
            from,
            to,
            prioritizer,
            back_pressure_objects: objects,
            back_pressure_bytes: bytes,
            expiration,
            allow_cycle,
        })
    }

    fn from(&mut self, map: &Marked, path: &str) -> Option<Spanned<FromSpec>> {
        let node = self.required(map, path, "from")?;
        let from_path = join(path, "from");
        let text = self.non_empty_string(node, &from_path)?.value;
        match text.split_once('.') {
            Some((n, r)) if !n.is_empty() && !r.is_empty() => Some(Spanned::at(
                FromSpec {
                    node: n.to_string(),
                    relationship: r.to_string(),
                },
                node,
            )),
            _ => {
                let message =
                    format!("expected `node.relationship` (e.g. `camera.success`), found `{text}`");
                self.problem(node, &from_path, message);
                None
            }
        }
    }

    fn prioritizer(&mut self, map: &Marked, path: &str) -> Prioritizer {
        let Some(node) = optional(map, "prioritizer") else {
            return Prioritizer::default();
        };
        let p_path = join(path, "prioritizer");
        let Some(name) = self.string(node, &p_path) else {
            return Prioritizer::default();
        };
        parse_prioritizer(&name.value).unwrap_or_else(|| {
            let hint = did_you_mean(&name.value, PRIORITIZERS.iter().copied());
            let message = format!(
                "unknown prioritizer `{}`{hint}; one of: {}",
                name.value,
                PRIORITIZERS.join(", ")
            );
            self.problem(node, &p_path, message);
            Prioritizer::default()
        })
    }

    fn back_pressure(&mut self, map: &Marked, path: &str) -> (usize, u64) {
        let defaults = (DEFAULT_BACK_PRESSURE_OBJECTS, DEFAULT_BACK_PRESSURE_BYTES);
        let Some(node) = optional(map, "back_pressure") else {
            return defaults;
        };
        let path = join(path, "back_pressure");
        let Some(node) = self.mapping(node, &path, BACK_PRESSURE_KEYS) else {
            return defaults;
        };
        let objects = optional(node, "objects")
            .and_then(|o| self.integer(o, &join(&path, "objects"), 1, u64::MAX))
            .and_then(|o| usize::try_from(o).ok())
            .unwrap_or(defaults.0);
        let bytes = optional(node, "bytes")
            .and_then(|b| self.bytes(b, &join(&path, "bytes")))
            .unwrap_or(defaults.1);
        (objects, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::load;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert_eq!(parse_bytes("512 MB"), Ok(512_000_000));
        assert_eq!(parse_bytes("1 GB"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("1GiB"), Ok(1 << 30));
        assert_eq!(parse_bytes("2 kib"), Ok(2048));
        assert_eq!(parse_bytes("1.5 KB"), Ok(1500));
        assert_eq!(parse_bytes("0.5 KiB"), Ok(512));
        assert_eq!(parse_bytes("10 B"), Ok(10));
        assert!(parse_bytes("1.5 B").is_err());
        assert!(parse_bytes("1 XB").is_err());
        assert!(parse_bytes("MB").is_err());
        assert!(parse_bytes("-1 MB").is_err());
        assert_eq!(parse_bytes("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_bytes("18446744073709551616").is_err());
        assert!(parse_bytes("1.2.3 MB").is_err());
        assert!(parse_bytes("100000000 TB").is_err());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("5 min"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("0 sec"), Ok(Duration::ZERO));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn suggestions_catch_typos_only() {
        assert_eq!(suggest("sucess", ["success", "failure"]), Some("success"));
        assert_eq!(suggest("conections", CONNECTION_KEYS.iter().copied()), None);
        assert_eq!(
            suggest("conections", FLOW_KEYS.iter().copied()),
            Some("connections")
        );
        assert_eq!(suggest("zzz", ["success"]), None);
        assert_eq!(suggest("snik", ["sink", "src"]), Some("sink"));
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("ab", "ba"), 1);
    }

    #[test]
    fn ids_are_checked() {
        assert!(is_valid_id("camera_1-a"));
        assert!(!is_valid_id("cam.era"));
        assert!(!is_valid_id("my camera"));
        assert!(!is_valid_id(""));
    }

    fn problems(text: &str) -> Vec<(usize, String, String)> {
        let loaded = load(text).expect("valid YAML");
        let (_, problems) = read_flow(&loaded.root);
        problems
            .into_iter()
            .map(|p| (p.line, p.path, p.message))
            .collect()
    }

    #[test]
    fn shape_problems_are_all_reported_and_located() {
        let text = "\
nodes:
  - id: a
    type: src
    concurrency: 0
    endpoint: http://x:1
    endpoints: [ftp://y]
    colour: red
    retry: {max_attempts: 3, initial_backoff: 10s, max_backoff: 1s}
  - type: proc
connections:
  - from: a
    to: b
    prioritizer: lifo
    back_pressure: {objects: -1, bytes: 1 XB}
    expiration: 5
    allow_cycle: yes
";
        let found = problems(text);
        let paths: Vec<(usize, &str)> = found.iter().map(|(l, p, _)| (*l, p.as_str())).collect();
        assert_eq!(
            paths,
            vec![
                (7, "nodes[0].colour"),
                (6, "nodes[0].endpoints"),
                (6, "nodes[0].endpoints[0]"),
                (4, "nodes[0].concurrency"),
                (8, "nodes[0].retry"),
                (9, "nodes[1]"),
                (11, "connections[0].from"),
                (13, "connections[0].prioritizer"),
                (14, "connections[0].back_pressure.objects"),
                (14, "connections[0].back_pressure.bytes"),
                (15, "connections[0].expiration"),
                (16, "connections[0].allow_cycle"),
            ]
        );
        assert!(
            found[0].2.contains("unknown key `colour`"),
            "{}",
            found[0].2
        );
        assert!(
            found[5].2.contains("missing required key `id`"),
            "{}",
            found[5].2
        );
        assert!(found[8].2.contains("at least 1"), "{}", found[8].2);
        assert!(found[3].2.contains("at least 1"), "{}", found[3].2);
    }

    #[test]
    fn defaults_apply() {
        let text = "nodes:\n  - {id: a, type: t}\nconnections:\n  - {from: a.x.y, to: a}\n";
        let loaded = load(text).expect("valid YAML");
        let (flow, problems) = read_flow(&loaded.root);
        assert!(problems.is_empty(), "{problems:?}");
        let node = &flow.nodes[0];
        assert_eq!(node.concurrency, 1);
        assert_eq!(node.retry, RetryPolicy::default());
        assert!(!node.remote);
        let c = &flow.connections[0];
        let from = c.from.as_ref().map(|f| &f.value);
        assert_eq!(
            from,
            Some(&FromSpec {
                node: "a".into(),
                relationship: "x.y".into()
            })
        );
        assert_eq!(c.back_pressure_objects, DEFAULT_BACK_PRESSURE_OBJECTS);
        assert_eq!(c.back_pressure_bytes, DEFAULT_BACK_PRESSURE_BYTES);
        assert_eq!(c.expiration, None);
        assert_eq!(c.prioritizer, Prioritizer::Fifo);
    }

    #[test]
    fn wrong_root_shapes() {
        assert_eq!(problems("").len(), 1);
        assert_eq!(problems("- a\n")[0].2, "expected a mapping, found a list");
        assert_eq!(problems("name: x\n")[0].2, "missing required key `nodes`");
        assert_eq!(
            problems("nodes: []\n")[0].2,
            "a flow needs at least one node"
        );
    }
}
