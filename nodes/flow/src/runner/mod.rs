//! The embedded flow runner: `loupe run FLOW`.
//!
//! A [`CompiledFlow`] becomes:
//! - one [`FlowQueue`] per connection (bounded, prioritized);
//! - per processor node, `concurrency` worker tasks that take the next FlowFile from the
//!   node's incoming queues, call the node through an [`Invoker`] (in-process) or a
//!   [`RemoteNode`] (gRPC), and push the outputs into the queues of the relationship's
//!   connections — waiting while a queue is full, so a slow consumer slows its producers;
//! - per source node, one task that pulls offers only when its queues have room and enqueues
//!   them, each FlowFile holding a claim on its offer ([`crate::ack`]), and one task that
//!   acknowledges an offer only when every FlowFile descended from it reached a final state
//!   (the source deletes its input on acknowledgement, so a crash anywhere means redelivery);
//! - a monitor that ends a `--once` run when every source is exhausted and no offer is
//!   outstanding (it waits for that count to reach zero; nothing polls), and that drains the
//!   flow on shutdown for at most [`RunOptions::drain_timeout`] — what is not finished by then
//!   is not acknowledged, so its input is offered again at the next start.
//!
//! Transport errors (a remote node down, overloaded, draining) are retried: the FlowFile is
//! penalized in its queue with exponential backoff (bounded), until the node answers or, with
//! `retry.max_attempts` set, routed to `failure` when the policy gives up. One warning per
//! episode of trouble, not per retry. Every step is recorded as a provenance event.

mod progress;
pub mod provenance;
pub mod stats;
mod worker;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use loupe_sdk::client::{ClientError, ClientOptions, RemoteNode};
use loupe_sdk::episode::Episode;
use loupe_sdk::{BuildContext, Invoker, NodeError, Registry, Source};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ack::{Ledger, Outstanding};
use crate::model::{CompiledFlow, RetryPolicy};
use crate::queue::FlowQueue;
pub use progress::ProgressMode;
use provenance::Provenance;
use stats::NodeStats;
pub use stats::{NodeSummary, RunSummary};

/// Default [`RunOptions::drain_timeout`]: under the 10 s a container runtime waits between
/// SIGTERM and SIGKILL, with time left to stop the nodes.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(4);

/// How long workers may take to finish the FlowFile in hand once the run is over.
const WORKER_GRACE: Duration = Duration::from_secs(1);

/// How to run a flow.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Stop when every source is exhausted and every queue is empty (batch folders, tests).
    pub once: bool,
    /// Append provenance events to this file as JSON lines.
    pub provenance_file: Option<PathBuf>,
    /// How progress is shown.
    pub progress: ProgressMode,
    /// Interval of plain progress lines.
    pub progress_interval: Duration,
    /// How remote nodes are called.
    pub client: ClientOptions,
    /// Largest FlowFile content accepted by in-process nodes.
    pub max_message_bytes: usize,
    /// Limits on the attributes of every FlowFile given to or returned by a node.
    pub attribute_limits: loupe_sdk::AttributeLimits,
    /// On shutdown, how long the flow may go on finishing what it holds after the sources
    /// stopped. What is not finished by then is not acknowledged: its input stays with its
    /// source and is offered again at the next start.
    pub drain_timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            once: false,
            provenance_file: None,
            progress: ProgressMode::Off,
            progress_interval: Duration::from_secs(10),
            client: ClientOptions::default(),
            max_message_bytes: loupe_sdk::DEFAULT_MAX_MESSAGE_BYTES,
            attribute_limits: loupe_sdk::AttributeLimits::default(),
            drain_timeout: DEFAULT_DRAIN_TIMEOUT,
        }
    }
}

/// A flow could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// An in-process node could not be built.
    #[error("node `{node}` ({node_type}): {source}")]
    Build {
        /// Node id.
        node: String,
        /// Node type.
        node_type: String,
        /// Why.
        #[source]
        source: NodeError,
    },
    /// A node failed to start (load, warm up).
    #[error("node `{node}` failed to start: {source}")]
    Start {
        /// Node id.
        node: String,
        /// Why.
        #[source]
        source: NodeError,
    },
    /// A remote node could not be reached.
    #[error("node `{node}`: {source}")]
    Connect {
        /// Node id.
        node: String,
        /// Why.
        #[source]
        source: ClientError,
    },
    /// A remote node is not what the flow says.
    #[error("node `{node}` at {endpoints}: {message}")]
    Mismatch {
        /// Node id.
        node: String,
        /// Endpoints.
        endpoints: String,
        /// What differs.
        message: String,
    },
    /// The node type is unknown to this binary.
    #[error("node `{node}`: unknown node type `{node_type}`")]
    UnknownType {
        /// Node id.
        node: String,
        /// The type.
        node_type: String,
    },
    /// The provenance file could not be opened or written.
    #[error("provenance file {path}: {source}")]
    Provenance {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// A node as the runner drives it.
pub(crate) struct NodeRuntime {
    pub(crate) id: String,
    pub(crate) node_type: String,
    pub(crate) invoker: Invoker,
    pub(crate) source: Option<Arc<dyn Source>>,
    /// Acknowledgements owed to the source (sources only).
    pub(crate) ledger: Option<Arc<Ledger>>,
    /// Endpoints of a remote node (for REMOTE_INVOCATION events).
    pub(crate) remote: Option<String>,
    pub(crate) concurrency: usize,
    pub(crate) incoming: Vec<usize>,
    pub(crate) outgoing: Vec<usize>,
    /// Relationship -> queues of its connections.
    pub(crate) routes: HashMap<String, Vec<usize>>,
    pub(crate) auto_terminate: HashSet<String>,
    pub(crate) retry: RetryPolicy,
    pub(crate) wakeup: Arc<Notify>,
    pub(crate) stats: NodeStats,
    /// One warning per episode of trouble with this node (calls, pulls, acknowledgements).
    pub(crate) trouble: Episode,
}

/// State shared by every task of a run.
pub(crate) struct Shared {
    pub(crate) nodes: Vec<NodeRuntime>,
    pub(crate) queues: Vec<Arc<FlowQueue>>,
    pub(crate) provenance: Provenance,
    /// Source offers not yet settled with their source: the flow is idle exactly when this is
    /// zero and no source is reading.
    pub(crate) outstanding: Arc<Outstanding>,
    /// Source tasks still running.
    pub(crate) sources_active: AtomicUsize,
    /// Cancelled to stop pulling from sources (shutdown, or end of a `--once` run).
    pub(crate) stop_sources: CancellationToken,
    /// Cancelled when the flow is drained: workers exit.
    pub(crate) finished: CancellationToken,
    pub(crate) once: bool,
}

impl Shared {
    fn queued(&self) -> usize {
        self.queues.iter().map(|q| q.len()).sum()
    }

    /// Nothing left to do: every source stopped and every offer settled with its source.
    fn drained(&self) -> bool {
        self.sources_active.load(Ordering::SeqCst) == 0 && self.outstanding.get() == 0
    }
}

/// Builds, starts or connects every node; when one fails, the in-process nodes already
/// started are stopped again before the error is returned.
async fn build_nodes(
    flow: &CompiledFlow,
    registry: &Registry,
    options: &RunOptions,
    outstanding: &Arc<Outstanding>,
) -> Result<Vec<NodeRuntime>, RunError> {
    let mut nodes = Vec::with_capacity(flow.nodes.len());
    match build_each(flow, registry, options, outstanding, &mut nodes).await {
        Ok(()) => Ok(nodes),
        Err(e) => {
            stop_local(&nodes).await;
            Err(e)
        }
    }
}

/// Stops the in-process nodes.
async fn stop_local(nodes: &[NodeRuntime]) {
    for node in nodes.iter().filter(|n| n.remote.is_none()) {
        node.invoker.processor().stop().await;
    }
}

async fn build_each(
    flow: &CompiledFlow,
    registry: &Registry,
    options: &RunOptions,
    outstanding: &Arc<Outstanding>,
    nodes: &mut Vec<NodeRuntime>,
) -> Result<(), RunError> {
    for spec in &flow.nodes {
        let (node, remote, max_bytes) = if spec.endpoints.is_empty() {
            let factory = registry
                .get(&spec.node_type)
                .ok_or_else(|| RunError::UnknownType {
                    node: spec.id.clone(),
                    node_type: spec.node_type.clone(),
                })?;
            let ctx = BuildContext {
                node_id: spec.id.clone(),
                base_dir: flow.base_dir.clone(),
                max_message_bytes: options.max_message_bytes,
            };
            let node = factory
                .build(&spec.settings, &ctx)
                .await
                .map_err(|source| RunError::Build {
                    node: spec.id.clone(),
                    node_type: spec.node_type.clone(),
                    source,
                })?;
            node.processor
                .start()
                .await
                .map_err(|source| RunError::Start {
                    node: spec.id.clone(),
                    source,
                })?;
            (node, None, options.max_message_bytes)
        } else {
            let remote = RemoteNode::connect(&spec.endpoints, &options.client)
                .await
                .map_err(|source| RunError::Connect {
                    node: spec.id.clone(),
                    source,
                })?;
            check_remote(flow, spec, &remote)?;
            let limit = match remote.description().max_message_bytes {
                0 => options.client.max_message_bytes,
                n => (n as usize).min(options.client.max_message_bytes),
            };
            let endpoints = remote.endpoints().to_string();
            (remote.into_node(), Some(endpoints), limit)
        };
        nodes.push(NodeRuntime {
            id: spec.id.clone(),
            node_type: spec.node_type.clone(),
            invoker: Invoker::new(node.processor.clone(), &spec.id, max_bytes)
                .with_attribute_limits(options.attribute_limits),
            ledger: node
                .source
                .as_ref()
                .map(|_| Ledger::new(outstanding.clone())),
            source: node.source.clone(),
            remote,
            concurrency: spec.concurrency.max(1),
            incoming: Vec::new(),
            outgoing: Vec::new(),
            routes: HashMap::new(),
            auto_terminate: spec.auto_terminate.iter().cloned().collect(),
            retry: spec.retry.clone(),
            wakeup: Arc::new(Notify::new()),
            stats: NodeStats::default(),
            trouble: Episode::new(format!("node `{}`", spec.id)),
        });
    }
    Ok(())
}

fn check_remote(
    flow: &CompiledFlow,
    spec: &crate::model::CompiledNode,
    remote: &RemoteNode,
) -> Result<(), RunError> {
    let d = remote.description();
    let mismatch = |message: String| RunError::Mismatch {
        node: spec.id.clone(),
        endpoints: remote.endpoints().to_string(),
        message,
    };
    if d.node_type != spec.node_type {
        return Err(mismatch(format!(
            "it is a `{}` node, but the flow says `{}`",
            d.node_type, spec.node_type
        )));
    }
    let declared: HashSet<&str> = d.relationships.iter().map(|r| r.name.as_str()).collect();
    let used = flow
        .connections
        .iter()
        .filter(|c| flow.nodes[c.from].id == spec.id)
        .map(|c| c.relationship.as_str())
        .chain(spec.auto_terminate.iter().map(String::as_str));
    for rel in used {
        if !declared.contains(rel) {
            let mut names: Vec<_> = declared.iter().copied().collect();
            names.sort_unstable();
            return Err(mismatch(format!(
                "it does not declare relationship `{rel}` (it declares: {})",
                names.join(", ")
            )));
        }
    }
    Ok(())
}

/// Runs a flow until `shutdown` resolves (then drains) or, with [`RunOptions::once`], until
/// every source is exhausted and the flow is empty.
pub async fn run(
    flow: &CompiledFlow,
    registry: &Registry,
    options: RunOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<RunSummary, RunError> {
    let outstanding = Arc::new(Outstanding::default());
    let mut nodes = build_nodes(flow, registry, &options, &outstanding).await?;
    let mut queues = Vec::with_capacity(flow.connections.len());
    for (i, c) in flow.connections.iter().enumerate() {
        queues.push(Arc::new(FlowQueue::from_connection(
            c,
            nodes[c.to].wakeup.clone(),
        )));
        nodes[c.to].incoming.push(i);
        nodes[c.from].outgoing.push(i);
        nodes[c.from]
            .routes
            .entry(c.relationship.clone())
            .or_default()
            .push(i);
    }
    let provenance_path = options.provenance_file.clone();
    let (provenance, writer) = match &provenance_path {
        Some(path) => match Provenance::to_file(path).await {
            Ok((p, w)) => (p, Some(w)),
            Err(source) => {
                stop_local(&nodes).await;
                return Err(RunError::Provenance {
                    path: path.clone(),
                    source,
                });
            }
        },
        None => (Provenance::counting(), None),
    };
    let source_count = nodes.iter().filter(|n| n.source.is_some()).count();
    let shared = Arc::new(Shared {
        nodes,
        queues,
        provenance,
        outstanding,
        sources_active: AtomicUsize::new(source_count),
        stop_sources: CancellationToken::new(),
        finished: CancellationToken::new(),
        once: options.once,
    });

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, node) in shared.nodes.iter().enumerate() {
        if node.source.is_some() {
            tasks.spawn(worker::source_loop(shared.clone(), i));
            tasks.spawn(worker::ack_loop(shared.clone(), i));
        } else {
            for _ in 0..node.concurrency {
                tasks.spawn(worker::processor_loop(shared.clone(), i));
            }
        }
    }
    let progress = progress::spawn(shared.clone(), options.progress, options.progress_interval);

    // Drained when no source runs and every offer is settled with its source. Every change
    // of either wakes this loop; it never polls.
    let mut shutdown = std::pin::pin!(shutdown);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let changed = shared.outstanding.changed();
        let mut changed = std::pin::pin!(changed);
        changed.as_mut().enable();
        if shared.drained() {
            break;
        }
        let drain_end = deadline.unwrap_or_else(tokio::time::Instant::now);
        tokio::select! {
            _ = &mut shutdown, if deadline.is_none() => {
                tracing::info!(timeout = ?options.drain_timeout,
                    "shutting down: no more input; finishing what the flow holds");
                shared.stop_sources.cancel();
                deadline = Some(tokio::time::Instant::now() + options.drain_timeout);
            }
            _ = changed => {}
            _ = tokio::time::sleep_until(drain_end), if deadline.is_some() => {
                tracing::warn!(
                    unfinished = shared.outstanding.get(),
                    "drain timeout: inputs not finished are not acknowledged; their sources \
                     offer them again at the next start"
                );
                break;
            }
        }
    }
    shared.finished.cancel();
    // Workers finish the FlowFile in hand; one still busy after the grace period is
    // aborted (its claim is dropped, so its input is offered again).
    let joined = tokio::time::timeout(WORKER_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if joined.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    worker::flush_settlements(&shared).await;
    progress.finish().await;

    stop_local(&shared.nodes).await;
    let elapsed = started.elapsed();
    let summary = RunSummary {
        flow: flow.name.clone(),
        elapsed_s: elapsed.as_secs_f64(),
        nodes: shared
            .nodes
            .iter()
            .map(|n| n.stats.summarize(&n.id, &n.node_type, elapsed))
            .collect(),
        provenance: shared.provenance.counts(),
        left_in_queues: shared.queued(),
        queues: shared
            .queues
            .iter()
            .map(|q| stats::QueueSummary {
                id: q.id().to_string(),
                peak_len: q.peak_len(),
                objects_threshold: q.objects_threshold(),
            })
            .collect(),
        peak_rss_bytes: stats::peak_rss_bytes(),
    };
    let mut shared = Arc::into_inner(shared).expect("every task has finished");
    shared.provenance.close();
    if let (Some(writer), Some(path)) = (writer, provenance_path) {
        let result = writer
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        result.map_err(|source| RunError::Provenance { path, source })?;
    }
    Ok(summary)
}
