//! Per-node counters and latencies, and the run summary built from them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::provenance::EventType;

/// Live counters of one node.
pub struct NodeStats {
    /// FlowFiles taken in (for a source: FlowFiles received).
    pub received: AtomicU64,
    /// FlowFiles routed to `failure`.
    pub failed: AtomicU64,
    /// Transport retries.
    pub retries: AtomicU64,
    out: Mutex<BTreeMap<String, u64>>,
    latency_us: Mutex<Histogram<u64>>,
}

impl Default for NodeStats {
    fn default() -> Self {
        NodeStats {
            received: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            out: Mutex::default(),
            // 1 µs .. 1 h, 2 significant digits: a fixed, small footprint.
            latency_us: Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds"),
            ),
        }
    }
}

impl NodeStats {
    /// Counts one output on `relationship`.
    pub fn count_out(&self, relationship: &str) {
        let mut out = self.out.lock().unwrap_or_else(|p| p.into_inner());
        match out.get_mut(relationship) {
            Some(n) => *n += 1,
            None => {
                out.insert(relationship.to_string(), 1);
            }
        }
        if relationship == loupe_sdk::FAILURE {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records one processing latency.
    pub fn record_latency(&self, d: Duration) {
        let us = (d.as_micros() as u64).clamp(1, 3_600_000_000);
        let _ = self
            .latency_us
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .record(us);
    }

    /// A snapshot for the summary.
    pub fn summarize(&self, id: &str, node_type: &str, elapsed: Duration) -> NodeSummary {
        let h = self.latency_us.lock().unwrap_or_else(|p| p.into_inner());
        let received = self.received.load(Ordering::Relaxed);
        let ms = |q: f64| {
            if h.is_empty() {
                None
            } else {
                Some(h.value_at_quantile(q) as f64 / 1000.0)
            }
        };
        NodeSummary {
            id: id.to_string(),
            node_type: node_type.to_string(),
            received,
            out: self.out.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            failed: self.failed.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            per_second: received as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
        }
    }
}

/// What one node did during a run.
#[derive(Debug, Clone, Serialize)]
pub struct NodeSummary {
    /// Node id.
    pub id: String,
    /// Node type.
    pub node_type: String,
    /// FlowFiles in.
    pub received: u64,
    /// FlowFiles out, per relationship.
    pub out: BTreeMap<String, u64>,
    /// FlowFiles routed to `failure`.
    pub failed: u64,
    /// Transport retries.
    pub retries: u64,
    /// FlowFiles in per second of run time.
    pub per_second: f64,
    /// Median processing latency, ms.
    pub p50_ms: Option<f64>,
    /// 99th percentile processing latency, ms.
    pub p99_ms: Option<f64>,
}

/// What a whole run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Flow name.
    pub flow: String,
    /// Wall time of the run.
    pub elapsed_s: f64,
    /// Per node, in flow order.
    pub nodes: Vec<NodeSummary>,
    /// Provenance events per type.
    pub provenance: BTreeMap<EventType, u64>,
    /// FlowFiles still queued when the run ended (0 after a clean drain).
    pub left_in_queues: usize,
    /// Per connection: how full its queue ever got.
    pub queues: Vec<QueueSummary>,
    /// Peak resident memory of the process (Linux `VmHWM`), bytes; 0 where unknown.
    pub peak_rss_bytes: u64,
}

/// What one connection's queue went through.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSummary {
    /// Connection id, `from.relationship->to`.
    pub id: String,
    /// Most FlowFiles it ever held.
    pub peak_len: usize,
    /// Its back-pressure object threshold.
    pub objects_threshold: usize,
}

/// Peak resident set size of this process, from `/proc/self/status` (Linux only).
pub fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

impl RunSummary {
    /// The summary of a node by id.
    pub fn node(&self, id: &str) -> Option<&NodeSummary> {
        self.nodes.iter().find(|n| n.id == id)
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "flow `{}` finished in {:.2}s", self.flow, self.elapsed_s)?;
        writeln!(
            f,
            "{:<16} {:<10} {:>8} {:>8} {:>8} {:>9} {:>9} {:>9}  out",
            "node", "type", "in", "failed", "retries", "per s", "p50 ms", "p99 ms"
        )?;
        let fmt_ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"));
        for n in &self.nodes {
            let out = n
                .out
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ");
            writeln!(
                f,
                "{:<16} {:<10} {:>8} {:>8} {:>8} {:>9.1} {:>9} {:>9}  {}",
                n.id,
                n.node_type,
                n.received,
                n.failed,
                n.retries,
                n.per_second,
                fmt_ms(n.p50_ms),
                fmt_ms(n.p99_ms),
                if out.is_empty() { "-".into() } else { out }
            )?;
        }
        let prov = self
            .provenance
            .iter()
            .map(|(k, v)| format!("{k:?}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        writeln!(f, "provenance: {prov}")?;
        if self.peak_rss_bytes > 0 {
            writeln!(
                f,
                "peak memory: {:.1} MiB",
                self.peak_rss_bytes as f64 / 1048576.0
            )?;
        }
        if self.left_in_queues > 0 {
            writeln!(
                f,
                "WARNING: {} FlowFiles left in queues",
                self.left_in_queues
            )?;
        }
        Ok(())
    }
}
