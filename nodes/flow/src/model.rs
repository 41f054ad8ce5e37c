//! The compiled form of a flow file: what the runner executes.
//!
//! [`crate::compile`] produces a [`CompiledFlow`] from YAML; [`crate::runner`] turns it into
//! queues and tasks. Nothing here does I/O.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How a connection's queue orders FlowFiles (NiFi's prioritizers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Prioritizer {
    /// First in, first out (queue entry order). NiFi `FirstInFirstOutPrioritizer`.
    #[default]
    Fifo,
    /// Oldest lineage start first. NiFi `OldestFlowFileFirstPrioritizer`.
    OldestFirst,
    /// Newest lineage start first. NiFi `NewestFlowFileFirstPrioritizer`.
    NewestFirst,
    /// By the `priority` attribute with NiFi `PriorityAttributePrioritizer` semantics:
    /// present beats absent; an integer beats a non-integer; lower integer first;
    /// otherwise lexical order, lower first. Ties fall back to FIFO.
    PriorityAttribute,
}

impl Prioritizer {
    /// The NiFi class name stored in flow-definition JSON.
    pub fn nifi_class(self) -> &'static str {
        match self {
            Prioritizer::Fifo => "org.apache.nifi.prioritizer.FirstInFirstOutPrioritizer",
            Prioritizer::OldestFirst => {
                "org.apache.nifi.prioritizer.OldestFlowFileFirstPrioritizer"
            }
            Prioritizer::NewestFirst => {
                "org.apache.nifi.prioritizer.NewestFlowFileFirstPrioritizer"
            }
            Prioritizer::PriorityAttribute => {
                "org.apache.nifi.prioritizer.PriorityAttributePrioritizer"
            }
        }
    }
}

/// Default back-pressure object threshold (NiFi's).
pub const DEFAULT_BACK_PRESSURE_OBJECTS: usize = 10_000;
/// Default back-pressure data-size threshold: 1 GB (NiFi's).
pub const DEFAULT_BACK_PRESSURE_BYTES: u64 = 1_000_000_000;

/// How transport errors talking to a node are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts before the FlowFile goes to `failure` with `error.kind=retries_exhausted`.
    /// `None` (the default): retry until the node answers — transport trouble passes, and
    /// meanwhile the FlowFile waits in its queue, back pressure builds and the source stops
    /// being read, so nothing is dropped while a node or its database is down.
    pub max_attempts: Option<u32>,
    /// Penalty after the first failed attempt; doubles each time.
    pub initial_backoff: Duration,
    /// Largest penalty.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: None,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Whether a FlowFile that failed `attempts` times goes to `failure` now.
    pub fn exhausted(&self, attempts: u32) -> bool {
        self.max_attempts.is_some_and(|max| attempts >= max)
    }

    /// Penalty before attempt `attempt + 1` (attempt counts from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// A node of a compiled flow.
#[derive(Debug, Clone)]
pub struct CompiledNode {
    /// Unique id within the flow.
    pub id: String,
    /// Node type name (`capture`, `classify`, ...).
    pub node_type: String,
    /// Settings (validated against the node type), as JSON.
    pub settings: serde_json::Value,
    /// Remote endpoints; empty means hosted in-process.
    pub endpoints: Vec<String>,
    /// Concurrent invocations of this node.
    pub concurrency: usize,
    /// True for source nodes.
    pub is_source: bool,
    /// Relationships the node declares (may be empty for a remote node without settings:
    /// then they are checked against its `Describe` at start).
    pub relationships: Vec<String>,
    /// Relationships whose FlowFiles are dropped (DROP provenance event).
    pub auto_terminate: Vec<String>,
    /// Retry policy for transport errors.
    pub retry: RetryPolicy,
    /// 1-based line of the node in the flow file.
    pub line: usize,
}

/// A connection of a compiled flow.
#[derive(Debug, Clone)]
pub struct CompiledConnection {
    /// Display id, `from.relationship->to`.
    pub id: String,
    /// Index of the source node in [`CompiledFlow::nodes`].
    pub from: usize,
    /// Relationship of the source node.
    pub relationship: String,
    /// Index of the destination node.
    pub to: usize,
    /// Queue ordering.
    pub prioritizer: Prioritizer,
    /// Back pressure engages at this many queued FlowFiles.
    pub back_pressure_objects: usize,
    /// Back pressure engages at this many queued content bytes.
    pub back_pressure_bytes: u64,
    /// FlowFiles older than this (since entering the flow) are dropped with an EXPIRE event.
    pub expiration: Option<Duration>,
}

/// A whole flow, validated.
#[derive(Debug, Clone)]
pub struct CompiledFlow {
    /// Flow name.
    pub name: String,
    /// Directory relative paths in settings resolve against.
    pub base_dir: PathBuf,
    /// Nodes, in file order.
    pub nodes: Vec<CompiledNode>,
    /// Connections, in file order.
    pub connections: Vec<CompiledConnection>,
}

impl CompiledFlow {
    /// Index of a node by id.
    pub fn node_index(&self, id: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy {
            max_attempts: Some(10),
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
        };
        assert_eq!(p.backoff(1), Duration::from_millis(100));
        assert_eq!(p.backoff(2), Duration::from_millis(200));
        assert_eq!(p.backoff(4), Duration::from_millis(800));
        assert_eq!(p.backoff(5), Duration::from_secs(1));
        assert_eq!(p.backoff(60), Duration::from_secs(1));
    }
}
