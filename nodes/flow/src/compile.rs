//! Checks a whole flow against the node registry and reports ALL errors.
//!
//! [`compile_str`] (behind `loupe validate`) loads the YAML with marks ([`crate::yaml`]),
//! reads its shape ([`crate::spec`]), then checks it as a flow:
//! node types exist and their settings are valid, connections name existing nodes and
//! declared relationships, nothing flows into a source, every declared relationship is
//! connected or auto-terminated, there are no duplicate ids or connections, and every cycle
//! has a connection marked `allow_cycle: true`. Every problem is a located [`FlowError`];
//! only a YAML syntax error stops early.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use loupe_sdk::{NodeFactory, Registry, SettingsError};

use crate::model::{CompiledConnection, CompiledFlow, CompiledNode};
use crate::spec::{
    self, ConnectionSpec, FlowSpec, NodeSpec, Problem, Settings, did_you_mean, suggest,
};
use crate::yaml::{self, YamlError};

/// Most offending cycles reported for one flow.
const MAX_CYCLES: usize = 100;
/// Work budget of the cycle search (guards against pathological graphs).
const CYCLE_SEARCH_STEPS: usize = 1_000_000;

/// A located problem in a flow file.
///
/// Displayed as `file:line:column: path: message` (the `path: ` part is left out when the
/// problem concerns no particular place in the flow structure, and `line:column:` when the
/// file could not be read at all).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowError {
    /// The flow file (as given to the compiler).
    pub file: PathBuf,
    /// 1-based line; 0 when there is no position (the file could not be read).
    pub line: usize,
    /// 1-based column; 0 when there is no position.
    pub column: usize,
    /// Where in the flow structure, e.g. `nodes[2].settings.threshold`; may be empty.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FlowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if !self.path.is_empty() {
            write!(f, " {}:", self.path)?;
        }
        write!(f, " {}", self.message)
    }
}

impl std::error::Error for FlowError {}

/// Reads and compiles a flow file (see [`compile_str`]).
pub fn compile_file(path: &Path, registry: &Registry) -> Result<CompiledFlow, Vec<FlowError>> {
    match std::fs::read_to_string(path) {
        Ok(text) => compile_str(&text, path, registry),
        Err(e) => Err(vec![FlowError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read the flow file: {e}"),
        }]),
    }
}

/// Compiles flow-file text.
///
/// `origin` is the file name used in messages; its parent directory becomes
/// [`CompiledFlow::base_dir`] and its stem the default flow name. Returns the compiled flow,
/// or every problem found, sorted by position.
pub fn compile_str(
    text: &str,
    origin: &Path,
    registry: &Registry,
) -> Result<CompiledFlow, Vec<FlowError>> {
    let mut compiler = Compiler {
        file: origin.to_path_buf(),
        registry,
        errors: Vec::new(),
    };
    let loaded = match yaml::load(text) {
        Ok(loaded) => loaded,
        Err(e) => return Err(vec![compiler.yaml_error(e)]),
    };
    for problem in loaded.problems {
        let error = compiler.yaml_error(problem);
        compiler.errors.push(error);
    }
    let (flow, problems) = spec::read_flow(&loaded.root);
    for problem in problems {
        compiler.spec_problem(problem);
    }
    let checked = compiler.check(&flow);
    if compiler.errors.is_empty() {
        Ok(build(&flow, checked, origin))
    } else {
        let mut errors = compiler.errors;
        errors.sort_by_key(|e| (e.line, e.column));
        Err(errors)
    }
}

/// What the checks learned about one node.
struct NodeInfo {
    /// The id (empty when missing).
    id: String,
    /// The type (empty when missing).
    node_type: String,
    /// Settings as JSON (`null` when absent).
    settings: serde_json::Value,
    /// From the registry.
    is_source: bool,
    /// Declared relationships; `None` when unknown (unknown type, invalid settings, or a
    /// remote node without settings).
    declared: Option<Vec<String>>,
    /// A remote node without settings: its relationships are those the flow uses.
    open: bool,
    /// A later node reusing an earlier node's id.
    duplicate: bool,
    /// Relationships connected from this node, in connection order.
    used: Vec<String>,
}

/// A connection whose both ends resolved.
struct Edge {
    /// Index into `FlowSpec::connections`.
    connection: usize,
    /// Source node index.
    from: usize,
    /// Relationship of the source node.
    relationship: String,
    /// Destination node index.
    to: usize,
}

/// The checked flow, ready to build when there were no errors.
struct Checked {
    /// One per `FlowSpec::nodes` item.
    nodes: Vec<NodeInfo>,
    /// The resolved connections, in file order.
    edges: Vec<Edge>,
}

/// Runs the checks, collecting errors.
struct Compiler<'r> {
    /// The file named in errors.
    file: PathBuf,
    /// Known node types.
    registry: &'r Registry,
    /// Everything found so far.
    errors: Vec<FlowError>,
}

impl Compiler<'_> {
    fn error(&mut self, (line, column): (usize, usize), path: &str, message: impl Into<String>) {
        self.errors.push(FlowError {
            file: self.file.clone(),
            line,
            column,
            path: path.to_string(),
            message: message.into(),
        });
    }

    fn yaml_error(&self, e: YamlError) -> FlowError {
        FlowError {
            file: self.file.clone(),
            line: e.line,
            column: e.column,
            path: String::new(),
            message: e.message,
        }
    }

    fn spec_problem(&mut self, p: Problem) {
        self.error((p.line, p.column), &p.path, p.message);
    }

    fn check(&mut self, flow: &FlowSpec<'_>) -> Checked {
        let mut nodes: Vec<NodeInfo> = flow.nodes.iter().map(|n| self.node(n)).collect();
        let index = self.index_ids(flow, &mut nodes);
        let edges = self.connections(flow, &index, &mut nodes);
        self.auto_terminate(flow, &nodes);
        self.unconnected(flow, &nodes);
        self.cycles(flow, &nodes, &edges);
        Checked { nodes, edges }
    }

    fn node(&mut self, node: &NodeSpec<'_>) -> NodeInfo {
        let mut info = NodeInfo {
            id: node
                .id
                .as_ref()
                .map(|i| i.value.clone())
                .unwrap_or_default(),
            node_type: node
                .node_type
                .as_ref()
                .map(|t| t.value.clone())
                .unwrap_or_default(),
            settings: match node.settings {
                Settings::Given(s) => s.to_json(),
                Settings::Absent | Settings::Invalid => serde_json::Value::Null,
            },
            is_source: false,
            declared: None,
            open: false,
            duplicate: false,
            used: Vec::new(),
        };
        let Some(factory) = self.factory(node) else {
            return info;
        };
        info.is_source = factory.is_source();
        match node.settings {
            Settings::Absent if node.remote => info.open = true,
            Settings::Invalid => {}
            Settings::Absent | Settings::Given(_) => match factory.check(&info.settings) {
                Ok(relationships) => {
                    info.declared = Some(relationships.into_iter().map(|r| r.name).collect());
                }
                Err(problems) => self.settings_errors(node, &problems),
            },
        }
        info
    }

    fn factory(&mut self, node: &NodeSpec<'_>) -> Option<Arc<dyn NodeFactory>> {
        let node_type = node.node_type.as_ref()?;
        if let Some(factory) = self.registry.get(&node_type.value) {
            return Some(factory.clone());
        }
        let known = self.registry.types();
        let hint = did_you_mean(&node_type.value, known.iter().copied());
        let message = format!(
            "unknown node type `{}`{hint}; known types: {}",
            node_type.value,
            known.join(", ")
        );
        let at = (node_type.line, node_type.column);
        self.error(at, &format!("{}.type", node.path), message);
        None
    }

    fn settings_errors(&mut self, node: &NodeSpec<'_>, problems: &[SettingsError]) {
        let base = format!("{}.settings", node.path);
        for problem in problems {
            let at = match node.settings {
                Settings::Given(settings) => settings.locate(&problem.path).position(),
                Settings::Absent | Settings::Invalid => (node.line, node.column),
            };
            let path = match problem.path.as_str() {
                "" => base.clone(),
                p if p.starts_with('[') => format!("{base}{p}"),
                p => format!("{base}.{p}"),
            };
            self.error(at, &path, problem.message.clone());
        }
    }

    /// Maps ids to the first node using them, reporting duplicates.
    fn index_ids(&mut self, flow: &FlowSpec<'_>, nodes: &mut [NodeInfo]) -> HashMap<String, usize> {
        let mut index: HashMap<String, usize> = HashMap::new();
        for (i, node) in flow.nodes.iter().enumerate() {
            let Some(id) = &node.id else { continue };
            match index.get(&id.value) {
                Some(&first) => {
                    nodes[i].duplicate = true;
                    let message = format!(
                        "duplicate node id `{}` (first used at line {})",
                        id.value, flow.nodes[first].line
                    );
                    self.error((id.line, id.column), &format!("{}.id", node.path), message);
                }
                None => {
                    index.insert(id.value.clone(), i);
                }
            }
        }
        index
    }

    fn connections(
        &mut self,
        flow: &FlowSpec<'_>,
        index: &HashMap<String, usize>,
        nodes: &mut [NodeInfo],
    ) -> Vec<Edge> {
        let mut edges = Vec::new();
        let mut seen: HashMap<(usize, String, usize), usize> = HashMap::new();
        for (c, connection) in flow.connections.iter().enumerate() {
            let from = self.resolve_from(connection, index, nodes);
            let to = self.resolve_to(connection, index, nodes);
            let (Some((from, relationship)), Some(to)) = (from, to) else {
                continue;
            };
            let key = (from, relationship.clone(), to);
            if let Some(&first) = seen.get(&key) {
                let message = format!(
                    "duplicate connection `{}.{relationship}` -> `{}` (first at line {})",
                    nodes[from].id, nodes[to].id, flow.connections[first].line
                );
                self.error(
                    (connection.line, connection.column),
                    &connection.path,
                    message,
                );
                continue;
            }
            seen.insert(key, c);
            edges.push(Edge {
                connection: c,
                from,
                relationship,
                to,
            });
        }
        edges
    }

    /// Resolves `from` to (node index, relationship) and records the relationship as used.
    fn resolve_from(
        &mut self,
        connection: &ConnectionSpec,
        index: &HashMap<String, usize>,
        nodes: &mut [NodeInfo],
    ) -> Option<(usize, String)> {
        let from = connection.from.as_ref()?;
        let at = (from.line, from.column);
        let path = format!("{}.from", connection.path);
        let Some(&i) = index.get(&from.value.node) else {
            let message = unknown_node("from", &from.value.node, index);
            self.error(at, &path, message);
            return None;
        };
        let relationship = &from.value.relationship;
        let node = &mut nodes[i];
        if !node.used.contains(relationship) {
            node.used.push(relationship.clone());
        }
        if let Some(declared) = &node.declared
            && !declared.contains(relationship)
        {
            // A likely typo: count the intended relationship as connected, so that fixing
            // the typo is the only change needed (no follow-up "unconnected" error).
            let intended = suggest(relationship, declared.iter().map(String::as_str));
            if let Some(intended) = intended.filter(|s| !node.used.iter().any(|u| u == s)) {
                node.used.push(intended.to_string());
            }
            let message = format!(
                "node `{}` (type `{}`) has no relationship `{relationship}`{}; it declares: {}",
                node.id,
                node.node_type,
                did_you_mean(relationship, declared.iter().map(String::as_str)),
                list_or_none(declared)
            );
            self.error(at, &path, message);
            return None;
        }
        Some((i, relationship.clone()))
    }

    fn resolve_to(
        &mut self,
        connection: &ConnectionSpec,
        index: &HashMap<String, usize>,
        nodes: &[NodeInfo],
    ) -> Option<usize> {
        let to = connection.to.as_ref()?;
        let at = (to.line, to.column);
        let path = format!("{}.to", connection.path);
        let Some(&i) = index.get(&to.value) else {
            self.error(at, &path, unknown_node("to", &to.value, index));
            return None;
        };
        if nodes[i].is_source {
            let message = format!(
                "node `{}` is a source (type `{}`) and takes no input",
                nodes[i].id, nodes[i].node_type
            );
            self.error(at, &path, message);
            return None;
        }
        Some(i)
    }

    fn auto_terminate(&mut self, flow: &FlowSpec<'_>, nodes: &[NodeInfo]) {
        for (spec, info) in flow.nodes.iter().zip(nodes) {
            let Some(declared) = &info.declared else {
                continue;
            };
            for (k, name) in spec.auto_terminate.iter().enumerate() {
                if declared.contains(&name.value) {
                    continue;
                }
                let message = format!(
                    "cannot auto-terminate `{}`: node `{}` (type `{}`) has no such relationship{}; \
                     it declares: {}",
                    name.value,
                    info.id,
                    info.node_type,
                    did_you_mean(&name.value, declared.iter().map(String::as_str)),
                    list_or_none(declared)
                );
                let path = format!("{}.auto_terminate[{k}]", spec.path);
                self.error((name.line, name.column), &path, message);
            }
        }
    }

    fn unconnected(&mut self, flow: &FlowSpec<'_>, nodes: &[NodeInfo]) {
        for (spec, info) in flow.nodes.iter().zip(nodes) {
            let Some(declared) = &info.declared else {
                continue;
            };
            if info.duplicate {
                continue;
            }
            for relationship in declared {
                let terminated = spec.auto_terminate.iter().any(|a| &a.value == relationship);
                if terminated || info.used.contains(relationship) {
                    continue;
                }
                let message = format!(
                    "relationship `{relationship}` of node `{}` is neither connected nor \
                     auto-terminated: connect it or list it in `auto_terminate`",
                    info.id
                );
                self.error((spec.line, spec.column), &spec.path, message);
            }
        }
    }

    fn cycles(&mut self, flow: &FlowSpec<'_>, nodes: &[NodeInfo], edges: &[Edge]) {
        let forbidden: Vec<&Edge> = edges
            .iter()
            .filter(|e| !flow.connections[e.connection].allow_cycle)
            .collect();
        let mut adjacency: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for edge in &forbidden {
            adjacency[edge.from].push(edge.to);
        }
        for targets in &mut adjacency {
            targets.sort_unstable();
            targets.dedup();
        }
        let search = find_cycles(&adjacency);
        for cycle in &search.cycles {
            let (first, last) = (cycle[0], cycle[cycle.len() - 1]);
            let Some(closing) = forbidden.iter().find(|e| e.from == last && e.to == first) else {
                continue;
            };
            let connection = &flow.connections[closing.connection];
            let mut names: Vec<&str> = cycle.iter().map(|&n| nodes[n].id.as_str()).collect();
            names.push(&nodes[first].id);
            let message = format!(
                "these connections form a cycle {}: mark one of its connections with \
                 `allow_cycle: true` if the loop is intended",
                names.join(" -> ")
            );
            self.error(
                (connection.line, connection.column),
                &connection.path,
                message,
            );
        }
        if search.cycles.is_empty() && !search.remaining.is_empty() {
            self.unreported_cycles(flow, nodes, &forbidden, &search.remaining);
        }
    }

    /// The search gave up: name the nodes that are on cycles.
    fn unreported_cycles(
        &mut self,
        flow: &FlowSpec<'_>,
        nodes: &[NodeInfo],
        forbidden: &[&Edge],
        remaining: &[usize],
    ) {
        let on_cycle: HashSet<usize> = remaining.iter().copied().collect();
        let Some(edge) = forbidden
            .iter()
            .find(|e| on_cycle.contains(&e.from) && on_cycle.contains(&e.to))
        else {
            return;
        };
        let connection = &flow.connections[edge.connection];
        let names: Vec<&str> = remaining.iter().map(|&n| nodes[n].id.as_str()).collect();
        let message = format!(
            "connections between {} form cycles: mark connections with `allow_cycle: true` \
             where a loop is intended",
            names.join(", ")
        );
        self.error(
            (connection.line, connection.column),
            &connection.path,
            message,
        );
    }
}

fn unknown_node(end: &str, id: &str, index: &HashMap<String, usize>) -> String {
    let mut known: Vec<&str> = index.keys().map(String::as_str).collect();
    known.sort_unstable();
    let hint = did_you_mean(id, known.iter().copied());
    format!(
        "`{end}` names unknown node `{id}`{hint}; nodes: {}",
        list_or_none(&known)
    )
}

fn list_or_none<S: AsRef<str>>(items: &[S]) -> String {
    if items.is_empty() {
        "none".to_string()
    } else {
        items
            .iter()
            .map(AsRef::as_ref)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Result of [`find_cycles`].
struct CycleSearch {
    /// Elementary cycles, each starting at its smallest node.
    cycles: Vec<Vec<usize>>,
    /// Nodes left after trimming nodes that cannot be on a cycle (empty: acyclic).
    remaining: Vec<usize>,
}

/// Finds the elementary cycles of a small directed graph (at most [`MAX_CYCLES`], within
/// [`CYCLE_SEARCH_STEPS`]). `remaining` is non-empty exactly when the graph has a cycle, even
/// if the search gave up.
fn find_cycles(adjacency: &[Vec<usize>]) -> CycleSearch {
    let alive = trim_acyclic(adjacency);
    let remaining: Vec<usize> = (0..adjacency.len()).filter(|&n| alive[n]).collect();
    let mut cycles = Vec::new();
    let mut budget = CYCLE_SEARCH_STEPS;
    for &start in &remaining {
        if budget == 0 || cycles.len() >= MAX_CYCLES {
            break;
        }
        let reaches = reaching(start, adjacency, &alive, &mut budget);
        cycles_through(start, adjacency, &reaches, &mut budget, &mut cycles);
    }
    CycleSearch { cycles, remaining }
}

/// Repeatedly removes nodes without incoming or without outgoing edges; what is left lies
/// on or between cycles.
fn trim_acyclic(adjacency: &[Vec<usize>]) -> Vec<bool> {
    let n = adjacency.len();
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (from, targets) in adjacency.iter().enumerate() {
        for &to in targets {
            incoming[to].push(from);
        }
    }
    let mut in_degree: Vec<usize> = incoming.iter().map(Vec::len).collect();
    let mut out_degree: Vec<usize> = adjacency.iter().map(Vec::len).collect();
    let mut alive = vec![true; n];
    let mut queue: Vec<usize> = (0..n)
        .filter(|&i| in_degree[i] == 0 || out_degree[i] == 0)
        .collect();
    while let Some(node) = queue.pop() {
        if !alive[node] {
            continue;
        }
        alive[node] = false;
        for &to in &adjacency[node] {
            in_degree[to] -= 1;
            if in_degree[to] == 0 && alive[to] {
                queue.push(to);
            }
        }
        for &from in &incoming[node] {
            out_degree[from] -= 1;
            if out_degree[from] == 0 && alive[from] {
                queue.push(from);
            }
        }
    }
    alive
}

/// Alive nodes numbered at least `start` that reach `start` through such nodes.
fn reaching(
    start: usize,
    adjacency: &[Vec<usize>],
    alive: &[bool],
    budget: &mut usize,
) -> Vec<bool> {
    let n = adjacency.len();
    *budget = budget.saturating_sub(n);
    let mut incoming: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (from, targets) in adjacency.iter().enumerate() {
        if from >= start && alive[from] {
            for &to in targets {
                incoming[to].push(from);
            }
        }
    }
    let mut reaches = vec![false; n];
    let mut queue = vec![start];
    while let Some(node) = queue.pop() {
        for &from in &incoming[node] {
            *budget = budget.saturating_sub(1);
            if !reaches[from] {
                reaches[from] = true;
                queue.push(from);
            }
        }
    }
    reaches
}

/// Depth-first search for the elementary cycles whose smallest node is `start`.
fn cycles_through(
    start: usize,
    adjacency: &[Vec<usize>],
    reaches: &[bool],
    budget: &mut usize,
    cycles: &mut Vec<Vec<usize>>,
) {
    let mut path = vec![start];
    let mut next_edge = vec![0usize];
    let mut on_path = vec![false; adjacency.len()];
    on_path[start] = true;
    while let (Some(&node), Some(edge)) = (path.last(), next_edge.last_mut()) {
        if *budget == 0 || cycles.len() >= MAX_CYCLES {
            return;
        }
        *budget -= 1;
        let Some(&to) = adjacency[node].get(*edge) else {
            on_path[node] = false;
            path.pop();
            next_edge.pop();
            continue;
        };
        *edge += 1;
        if to == start {
            cycles.push(path.clone());
        } else if to > start && !on_path[to] && reaches[to] {
            on_path[to] = true;
            path.push(to);
            next_edge.push(0);
        }
    }
}

/// Builds the compiled flow from a flow that passed every check.
fn build(flow: &FlowSpec<'_>, checked: Checked, origin: &Path) -> CompiledFlow {
    let base_dir = match origin.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = flow.name.clone().unwrap_or_else(|| {
        origin
            .file_stem()
            .map_or_else(|| "flow".to_string(), |s| s.to_string_lossy().into_owned())
    });
    let connections = checked
        .edges
        .iter()
        .map(|edge| compiled_connection(&flow.connections[edge.connection], edge, &checked.nodes))
        .collect();
    let nodes = flow
        .nodes
        .iter()
        .zip(checked.nodes)
        .map(|(spec, info)| compiled_node(spec, info))
        .collect();
    CompiledFlow {
        name,
        base_dir,
        nodes,
        connections,
    }
}

fn compiled_node(spec: &NodeSpec<'_>, info: NodeInfo) -> CompiledNode {
    let auto_terminate: Vec<String> = spec
        .auto_terminate
        .iter()
        .map(|a| a.value.clone())
        .collect();
    let relationships = match info.declared {
        Some(declared) => declared,
        None => {
            // A remote node without settings: the relationships this flow uses.
            let mut used = info.used;
            for name in &auto_terminate {
                if !used.contains(name) {
                    used.push(name.clone());
                }
            }
            used
        }
    };
    CompiledNode {
        id: info.id,
        node_type: info.node_type,
        settings: info.settings,
        endpoints: spec.endpoints.clone(),
        concurrency: spec.concurrency,
        is_source: info.is_source,
        relationships,
        auto_terminate,
        retry: spec.retry.clone(),
        line: spec.line,
    }
}

fn compiled_connection(
    spec: &ConnectionSpec,
    edge: &Edge,
    nodes: &[NodeInfo],
) -> CompiledConnection {
    CompiledConnection {
        id: format!(
            "{}.{}->{}",
            nodes[edge.from].id, edge.relationship, nodes[edge.to].id
        ),
        from: edge.from,
        relationship: edge.relationship.clone(),
        to: edge.to,
        prioritizer: spec.prioritizer,
        back_pressure_objects: spec.back_pressure_objects,
        back_pressure_bytes: spec.back_pressure_bytes,
        expiration: spec.expiration,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cycles(edges: &[(usize, usize)], n: usize) -> Vec<Vec<usize>> {
        let mut adjacency = vec![Vec::new(); n];
        for &(a, b) in edges {
            adjacency[a].push(b);
        }
        find_cycles(&adjacency).cycles
    }

    #[test]
    fn acyclic_graphs_have_no_cycles() {
        let search = find_cycles(&[vec![1, 2], vec![2], vec![]]);
        assert!(search.cycles.is_empty());
        assert!(search.remaining.is_empty());
    }

    #[test]
    fn every_elementary_cycle_is_found_once() {
        assert_eq!(cycles(&[(0, 0)], 1), vec![vec![0]]);
        assert_eq!(cycles(&[(0, 1), (1, 0)], 2), vec![vec![0, 1]]);
        let found = cycles(&[(0, 1), (1, 0), (0, 2), (2, 0), (3, 0)], 4);
        assert_eq!(found, vec![vec![0, 1], vec![0, 2]]);
        let found = cycles(&[(0, 1), (1, 2), (2, 0), (1, 3), (3, 1)], 4);
        assert_eq!(found, vec![vec![0, 1, 2], vec![1, 3]]);
    }

    #[test]
    fn display_has_file_line_column_path_message() {
        let e = FlowError {
            file: PathBuf::from("flows/demo.yaml"),
            line: 3,
            column: 5,
            path: "nodes[0].type".into(),
            message: "unknown node type `x`".into(),
        };
        assert_eq!(
            e.to_string(),
            "flows/demo.yaml:3:5: nodes[0].type: unknown node type `x`"
        );
        let e = FlowError {
            line: 0,
            column: 0,
            path: String::new(),
            ..e
        };
        assert_eq!(e.to_string(), "flows/demo.yaml: unknown node type `x`");
    }
}
